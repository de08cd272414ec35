// sbnn_keras native core: output stages fused into a binary-convolution kernel.
//
// The base contract (bconv2d.h) has kernels write `dot`, one int32 per output pixel and
// channel, which the caller then turns into the layer's output (transform.h). For the
// sparse bit-plane kernels that int32 array is the floor at high sparsity
// (docs/sparse_kernels.md, "Where the time goes"): their counts are bit-sliced, so the
// output can be made straight from the count planes. A kernel with a `run_output` entry
// (BConv2DKernel::run_output) writes one of these outputs of rows [row_begin, row_end)
// instead of `dot`:
//
//   kBits    bitpacked, bit o of pixel p = dot(p, o) < limit[o]: transform.h's to_bits,
//            i.e. LCE's bitpacked output `K - dot > 2 * threshold` with
//            limit = bitpack_limit(K, threshold). Sign flips (negative multipliers, a
//            BatchNorm with negative scale) are in the thresholds and the filter, as LCE's
//            converter puts them; nothing here depends on their sign.
//   kFloat   float, transform.h's to_float with `t` (x = clamp(K - dot), x * m + b).
//   kQFloat  float, transform.h's q_to_float with `q`: the filter's last output channel
//            is q (its dot is the `dot[q]` of every pixel and is not written out), the
//            output has out_channels - 1 channels; q.add (optional) is the residual of
//            the *full* output tensor (pixel p's channels at q.add + p * channels).
//            Needs groups == 1 and out_channels >= 2.
//   kQBits   bitpacked from the fused q float: bit c = y < 0.0f with y as kQFloat
//            computes it (without a residual: q.add must be null), transform.h's
//            q_to_bits; the same conditions as kQFloat.
//
// `out` is the base of the full output tensor [batch * out_h * out_w] pixels of
// `channels` floats (kFloat, kQFloat) or ceil(channels / 32) int32 words (kBits,
// kQBits; bits past the last channel are 0). Like `run`, `run_output` writes exactly the pixels of
// its rows (so callers may shift `out` so that only their chunk is real memory), is
// reentrant on one prepared object and needs no alignment. Results are bit-identical to
// `run` followed by the scalar reference transform (run_output_reference below, which
// is also what a caller does for a kernel without `run_output`).
#pragma once

#include <cstdint>

#include "bconv2d.h"
#include "transform.h"

namespace sbnn {

enum class BConv2DOutputKind : int { kBits = 1, kFloat = 2, kQFloat = 3, kQBits = 4 };

struct BConv2DOutput {
  BConv2DOutputKind kind = BConv2DOutputKind::kBits;
  int channels = 0;                // out_channels (kQFloat, kQBits: out_channels - 1)
  const int32_t* limit = nullptr;  // kBits: [channels]
  TransformParams t;               // kFloat
  QTransformParams q;              // kQFloat, kQBits
  void* out = nullptr;             // full-tensor base (see above)
};

// True when `out` fits `shape` (channel count, parameters present, kQFloat's groups
// and channel conditions). Kernels compute nothing for an output that does not.
bool bconv2d_output_is_valid(const BConv2DShape& shape, const BConv2DOutput& out);

// True for the bitpacked kinds.
inline bool bconv2d_output_is_bits(BConv2DOutputKind k) {
  return k == BConv2DOutputKind::kBits || k == BConv2DOutputKind::kQBits;
}

// Words of one pixel of a bitpacked output.
inline int bconv2d_output_words(int channels) { return (channels + 31) / 32; }

// The reference: `kernel.run` into a scratch `dot` (in chunks of rows), then the scalar
// reference transform of those rows. Works for every kernel (with or without
// run_output). Returns false (writing nothing) when `out` is invalid for the shape or
// scratch memory could not be allocated.
bool run_output_reference(const BConv2DKernel& kernel, const BConv2DShape& shape,
                          const void* prepared, const int32_t* input, const int32_t* filter,
                          const BConv2DOutput& out, int row_begin, int row_end);

// The one call for callers: `kernel.run_output` when the kernel has one, else
// run_output_reference with the fastest transform of this CPU (transform_kernels()).
bool run_bconv2d_output(const BConv2DKernel& kernel, const BConv2DShape& shape,
                        const void* prepared, const int32_t* input, const int32_t* filter,
                        const BConv2DOutput& out, int row_begin, int row_end);

namespace internal {
// Applies `out`'s transform (with the implementation `tk`) to rows [r0, r1) whose dot
// is at `dot` (pixel-major, shape.out_channels per pixel, first pixel = row r0's).
void apply_output_transform(const TransformKernels& tk, const BConv2DShape& shape,
                            const BConv2DOutput& out, const int32_t* dot, int64_t r0,
                            int64_t r1);
}  // namespace internal

}  // namespace sbnn
