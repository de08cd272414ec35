// sbnn_keras native core: the sparse view of a binary filter, shared by every sparse
// bconv2d kernel (portable, compiled once).
//
// Algebra (docs/sparse_kernels.md, "The algebra"; LCE's bit convention: bit 1 means -1).
// For output
// channel o, the filter bits of its group (taps x cg channels) take the *minority* value
// mb_o on a set M_o of "connections" (|M_o| = m_o <= taps*cg/2) and the majority value
// everywhere else. With u_o = 2*mb_o - 1 (the majority weight: -1 when the minority
// bit is 0, i.e. the minority weights are +1, the SBNN case) and for an output pixel p:
//
//   dot(p, o) = u_o * Q(p) - 2 * u_o * S(p, o)
//   Q(p)    = sum of x over the effective taps x channels of the window
//   S(p, o) = sum of x over the connections of o in the effective taps
//
// "effective" = inside the input, plus (pad_values == 1) the outside taps with x = +1.
// With x = 1 - 2b (b the input bit) and the outside taps reading b = 0:
//
//   dot(p, o) = u_o * (A(p) - 2 * E(p, o) + 4 * C(p, o))
//   A(p)    = N(p) - 2 * B(p),  N(p) = effective taps * cg,  B(p) = input bits set in the window
//   E(p, o) = number of connections of o in effective taps (m_o unless pad_values == 0
//             and the window crosses the border: then m_o - sum over outside taps t of m_t[o])
//   C(p, o) = number of connections of o whose input bit is 1 (this is the only term
//             that costs per connection; A is shared by all output channels)
//
// Everything a sparse kernel needs from the filter is here; kernels derive their own
// execution formats (offsets, tables) from the connection lists.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bconv2d.h"

namespace sbnn {
namespace internal {

struct SparseFilter {
  uint32_t magic;        // kSparseMagic
  BConv2DShape shape;    // the shape it was built for (only the filter fields matter)
  int cg = 0;            // input channels per group
  int og = 0;            // output channels per group
  int taps = 0;          // filter_h * filter_w
  int32_t kfull = 0;     // taps * cg
  int8_t* sign;          // [out_channels] u_o in {-1, +1}
  int32_t* minority;     // [out_channels] m_o = |M_o|
  int32_t* tap_minority; // [taps][out_channels] connections of o at tap t
  uint32_t* conn_begin;  // [out_channels + 1] o's connections are conns[conn_begin[o] ..)
  uint32_t* conns;       // connection codes k = c * taps + t (channel-major, then tap),
                         // ascending within a channel: a kernel's taps are adjacent
  int max_conns = 0;     // max over o of m_o
  int64_t total_conns = 0;
  // Kernel (o, c) statistics: kernels_by_weight[h] = number of (o, c) kernels with h
  // connections (h = 0 .. taps; the paper's K_h for 3x3 filters).
  int64_t* kernels_by_weight;  // [taps + 1]
};
constexpr uint32_t kSparseMagic = 0x53425350u;  // "SBSP"

// Builds the sparse view of a bitpacked OHWI filter (nullptr on allocation failure or
// an invalid shape). Padding bits beyond a group's channels are ignored.
SparseFilter* build_sparse_filter(const BConv2DShape& s, const int32_t* filter);
void release_sparse_filter(SparseFilter* f);

// True when `f` was built for a shape with the same filter geometry as `s` (spatial
// sizes, strides, dilation and padding may differ).
bool sparse_filter_matches(const SparseFilter* f, const BConv2DShape& s);

// The reference computation from a SparseFilter: direct loops, Q(p) once per pixel and
// S(p, o) by walking o's connection list. Writes dot rows [row_begin, row_end).
void run_sparse_reference(const BConv2DShape& s, const SparseFilter& f, const int32_t* input,
                          int32_t* dot, int row_begin, int row_end);

// Minority statistics of a filter without building the lists: the fraction of
// connections (sum of m_o / (out_channels * taps * cg)) and the largest m_o. Cheap
// (one pass over the filter words); used by the selection cost model.
struct SparsityStats {
  double density = 0;     // connections / dense weights, in [0, 0.5]
  int max_conns = 0;      // largest m_o
  int64_t conns = 0;      // sum of m_o
  int64_t weights = 0;    // out_channels * taps * cg
  double k0_share = 0;    // share of (o, c) kernels without connections (K0)
  double k1_share = 0;    // share with exactly one (K1)
};
SparsityStats sparsity_stats(const BConv2DShape& s, const int32_t* filter);

}  // namespace internal
}  // namespace sbnn
