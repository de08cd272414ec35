// sbnn_keras native core: the pixel-parallel bit-plane formulation of the sparse binary
// convolution (docs/sparse_kernels.md, "The bit-plane kernels"), shared by the
// sparse_bitplane_* kernels.
//
// With the filter fixed and sparse, output channel o is a sum of *shifted input bit
// planes*, one per connection (see sparse_format.h for the algebra):
//
//   C(p, o) = sum over connections (t, c) of o of  b(p + offset(t), c)
//
// computed for many output pixels p at once: a SIMD register holds one bit per output
// pixel, and the count is kept bit-sliced (carry-save, Harley-Seal style: 8 inputs cost
// 7 full adders = 14 VPTERNLOG on AVX-512). Cost is proportional to the number of
// connections, independent of the channel count, with no popcount.
//
// Layout. Output rows are processed in bands of `nb` rows of one image. A stored row
// has R bits (R = the smallest power of two >= out_w, at least 8; or out_w rounded up
// to 64), output pixel (oy, ox) of the band is bit (oy - oy0) * R + ox. For the band the
// input is transposed into
//
//   Y[fx][c][phase][j] : R bits, bit ox = b(iy, ox*stride_w + fx*dilation_w - pad_left, c)
//                        with iy = j*stride_h + phase (zero outside the input)
//
// (one horizontally shifted/decimated copy per filter column fx, input rows split into
// stride_h phases), so that for tap (fy, fx) the band's nb rows are *contiguous*:
// rows j = oy + q0(fy) of phase ph(fy), q0 = floor((fy*dil_h - pad_top) / stride_h).
// A connection is then one byte offset into Y, and its contribution to the band is an
// unaligned vector load. Strides, dilations, padding of any size and groups need no
// special code. The plan below holds everything that depends on the spatial shape.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bconv2d.h"
#include "sparse_format.h"

namespace sbnn {
namespace internal {

struct BitplanePlan {
  uint32_t magic;            // kBitplaneMagic
  BConv2DShape shape;        // the full shape this plan is for
  int R = 0;                 // bits per stored row
  int rb = 0;                // bytes per stored row (R / 8)
  int nb = 0;                // output rows per band
  int qmin = 0, qmax = 0;    // range of q0(fy)
  int rows_pp = 0;           // stored rows per phase per band: nb + qmax - qmin
  int sh = 1;                // vertical phases (stride_h)
  size_t plane_bytes = 0;    // bytes per (fx, c) block of Y (all phases, + slack)
  size_t y_bytes = 0;        // bytes of Y for one group (kw * cg * plane_bytes + slack)
  int read_bytes = 0;        // most bytes a kernel may load from a connection's row start
  // Horizontal geometry: tap column fx reads phase phx[fx] of the transposed input row
  // at pixel offset qx[fx] (ox -> j = ox + qx[fx]).
  int sw = 1;                // horizontal phases (stride_w)
  int tmargin = 0;           // zero bits before pixel 0 of a transposed row (multiple of 64)
  int tq = 0;                // 64-bit words per transposed row (per phase)
  int* qx = nullptr;         // [filter_w]
  int* phx = nullptr;        // [filter_w]
  int* tap_row = nullptr;    // [taps] byte offset of tap t's first band row within (fx, c)
                             // block: (ph(fy) * rows_pp + q0(fy) - qmin) * rb
  int* tap_fx = nullptr;     // [taps] fx of tap t
  // Border classes: output row oy has the inside tap rows [vlo, vhi] (class vclass[oy]),
  // column ox the inside tap columns [hlo, hhi] (class hclass[ox]). With pad_values 1
  // every pixel is class 0 (all taps effective).
  int nvc = 1, nhc = 1;
  int* vclass = nullptr;     // [out_h]
  int* hclass = nullptr;     // [out_w]
  // base[cl][o] = u_o * (N(cl) - 2 * E(cl, o)), cl = vc * nhc + hc: then
  //   dot(p, o) = base[cl(p)][o] + u_o * (4 * C(p, o) - 2 * B(p)).
  int32_t* base = nullptr;   // [nvc * nhc][out_channels]
  // N(cl) = effective taps * cg, per class (for B(p) bookkeeping and tests).
  int32_t* ntaps = nullptr;  // [nvc * nhc] effective taps of the class
  uint32_t* off = nullptr;   // [total connections] byte offset of each connection in Y
  uint32_t* zero_off = nullptr;  // offset of an all-zero region of Y (>= read_bytes long)
};
constexpr uint32_t kBitplaneMagic = 0x53425042u;  // "SBPB"

// Builds the plan for shape `s` (spatial fields included). `vector_bytes` is the
// kernel's vector width: bands are sized so a channel's band fills whole vectors when
// the image allows, `y_budget` bounds Y per group (bytes). nullptr on failure.
BitplanePlan* build_bitplane_plan(const BConv2DShape& s, const SparseFilter& f, int vector_bytes,
                                  size_t y_budget);
void release_bitplane_plan(BitplanePlan* p);

// The object `prepare` returns for every sparse kernel: the sparse filter and, when the
// kernel uses one, a plan for the prepared shape. `run` rebuilds a temporary plan when
// the spatial shape differs (correct, slower), and recomputes everything from the raw
// filter when the object does not match the filter geometry.
struct SparsePrepared {
  uint32_t magic;            // kSparsePreparedMagic
  int kind;                  // which kernel family built it (kernels check it)
  SparseFilter* filter;
  BitplanePlan* plan;        // may be nullptr
  void* extra = nullptr;     // kernel-specific execution data (e.g. a permute schedule)
  void (*free_extra)(void*) = nullptr;
};
constexpr uint32_t kSparsePreparedMagic = 0x53425052u;  // "SBPR"

SparsePrepared* make_sparse_prepared(const BConv2DShape& s, const int32_t* filter, int kind,
                                     int vector_bytes, size_t y_budget, bool with_plan);
void release_sparse_prepared(void* p);

// Scratch memory for one run() call: a per-thread buffer that grows and is reused.
void* sparse_scratch(size_t bytes);

// Bit helpers shared by the kernels.
// Transposes the 8x8 bit matrix held in x (row i = byte i, column j = bit j).
static inline uint64_t transpose8x8(uint64_t x) {
  uint64_t t;
  t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAull;
  x = x ^ t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCull;
  x = x ^ t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ull;
  x = x ^ t ^ (t << 28);
  return x;
}

}  // namespace internal
}  // namespace sbnn
