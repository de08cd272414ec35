// sbnn_keras native core: portable building blocks shared by the optimized bconv2d
// kernels (compiled once, without ISA flags): shape checks, filter repacking, word
// helpers. Patch gathering and the pad_values == 0 border correction live in
// bconv2d_gemm_driver.h, compiled with each kernel's ISA flags.
//
// Formulation used by every optimized kernel ("gathered bgemm"):
//   For group g, each output pixel's receptive field is gathered into a patch of
//   k64 = ceil(taps * filter_words / 2) 64-bit words: the tap-major, word-minor
//   concatenation of the group's 32-bit channel words (masked to the group's real
//   channels), zeros for taps outside the input and for the odd tail word. The
//   filter of each output channel is flattened the same way, so
//       acc(p, o) = sum_k popcount(patch[p][k] ^ filter[o][k])
//       dot(p, o) = taps * cg - 2 * acc(p, o)
//   is exact for pad_values == 1 (an outside tap is x = +1, bits 0) and for every
//   pixel whose window lies inside the input. For pad_values == 0 the outside taps
//   must contribute nothing; fixup_pad0() adds  2 * popcount(w[o][t]) - cg  for each
//   outside tap t (the zero patch word added popcount(w) to acc; the tap's cg must
//   leave the count).
#pragma once

#include <cstddef>
#include <cstdint>

#include "bconv2d.h"

namespace sbnn {
namespace internal {

// True when the shape is self-consistent (positive sizes, groups dividing both
// channel counts, word counts matching the channel counts). Every kernel requires it.
bool shape_is_valid(const BConv2DShape& s);

// Derived sizes used by the gathered-bgemm kernels.
struct GemmDims {
  int cg = 0;       // input channels per group
  int og = 0;       // output channels per group
  int taps = 0;     // filter_h * filter_w
  int k32 = 0;      // taps * filter_words
  int k64 = 0;      // ceil(k32 / 2)
  int32_t kfull = 0;  // taps * cg: the dot of a window with zero accumulated popcount
};
GemmDims gemm_dims(const BConv2DShape& s);

// How the packed filter stores each block's words.
enum class PlaneMode {
  kPlain,        // [k][block_width]            uint64 words
  kNibbleSplit,  // [k][2][block_width]         low nibbles (w & 0x0f..), high nibbles
                 //                              ((w >> 4) & 0x0f..): for vpshufb LUT kernels
};

// A repacked filter. One allocation; `weights` and `tap_popcount` point into it.
struct PackedFilter {
  uint32_t magic;          // kPackedMagic, checked in debug paths
  BConv2DShape shape;      // the shape it was packed for
  GemmDims dims;
  int block_width;         // output channels per block (lanes * vectors of the kernel)
  int blocks_per_group;    // ceil(og / block_width)
  PlaneMode mode;
  size_t block_stride;     // uint64 words per block: k64 * block_width * (1 or 2)
  uint64_t* weights;       // [groups][blocks_per_group][block_stride], 64-byte aligned;
                           // channels past og in the last block of a group are zero
  int32_t* tap_popcount;   // [taps][out_channels]: popcount of the masked filter words of
                           // that tap (for the pad_values == 0 correction)
};
constexpr uint32_t kPackedMagic = 0x53424e4eu;  // "SBNN"

// Allocates and fills a PackedFilter (nullptr on allocation failure or bad shape).
PackedFilter* pack_filter(const BConv2DShape& s, const int32_t* filter, int block_width,
                          PlaneMode mode);
void release_packed_filter(void* packed);

// Runs the whole range with the reference kernel: the fallback when a kernel cannot
// get scratch memory.
void run_reference(const BConv2DShape& s, const int32_t* input, const int32_t* filter,
                   int32_t* dot, int row_begin, int row_end);

// Mask of the real channels of filter word j of a group with cg channels.
static inline uint32_t word_mask(int cg, int j) {
  const int nbits = cg - 32 * j;
  return nbits >= 32 ? 0xffffffffu : ((1u << nbits) - 1u);
}

// (static: this header is included by files compiled with different ISA flags, so no
// inline function of it may be merged across them by the linker.)
// Reads word j (32 channels) of group g's channels of one input pixel, masked to the
// group's real channels. Handles groups whose channel range is not word aligned.
static inline uint32_t group_word(const uint32_t* px, int in_words, int cg, int g, int j) {
  const int bit = g * cg + 32 * j;
  const int w = bit >> 5, sh = bit & 31;
  uint32_t v = px[w] >> sh;
  if (sh != 0 && w + 1 < in_words) v |= px[w + 1] << (32 - sh);
  const int nbits = cg - 32 * j;
  if (nbits < 32) v &= (1u << nbits) - 1u;
  return v;
}

}  // namespace internal
}  // namespace sbnn
