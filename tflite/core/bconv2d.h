// sbnn_keras native core: the contract between binary-convolution kernels and the
// delegate. Header only, no TFLite includes. Every kernel computes the same thing
// (the signed binary dot product of LceBconv2d, before any output transform);
// the delegate turns `dot` into float / int8 / bitpacked outputs.
//
// Layouts (LCE's):
//   input  int32 [batch, in_h, in_w, in_words]        bitpacked along channels,
//          little-endian bit order, bit = 1 means -1, padding bits are 0.
//   filter int32 OHWI [out_channels, filter_h, filter_w, filter_words],
//          filter_words = ceil(in_channels / groups / 32) words per tap.
//   dot    int32 [batch, out_h, out_w, out_channels]
//          dot = sum over taps inside the input of sum_c x_c * w_c (in {-1,+1}),
//          plus, when pad_values == 1, the taps outside the input count as x = +1;
//          when pad_values == 0 they contribute nothing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sbnn {

struct BConv2DOutput;  // bconv2d_output.h: a fused output stage instead of `dot`

struct BConv2DShape {
  int batch = 0;
  int in_h = 0, in_w = 0;
  int in_channels = 0;   // channels_in (true channel count, not words)
  int in_words = 0;      // ceil(in_channels / 32): words per input pixel
  int groups = 1;
  int out_h = 0, out_w = 0;
  int out_channels = 0;
  int filter_h = 0, filter_w = 0;
  int filter_words = 0;  // ceil(in_channels / groups / 32): words per tap
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int pad_top = 0, pad_left = 0;  // resolved padding (0 for VALID)
  int pad_values = 0;             // 0: outside taps contribute 0; 1: they are +1
};

// What a kernel is, for the code that chooses and runs kernels (never told by name).
enum class BConv2DFamily : uint8_t {
  kDenseReference,   // the dense reference: direct loops, accepts every valid shape
  kDense,            // dense tiles: select_bconv2d_kernel()'s preference list
  kSparseBitplane,   // sparse, bit-plane format (sparse_bitplane.h): one kernel per ISA
  kSparseK01,        // sparse, K0/K1 kernel lists (sparse_format.h)
  kSparseReference,  // sparse, the portable reference
};

// Sparse kernels build a sparse format in prepare() and run on whole images (the
// delegate gives them larger row chunks than dense kernels).
constexpr bool is_sparse_family(BConv2DFamily f) {
  return f == BConv2DFamily::kSparseBitplane || f == BConv2DFamily::kSparseK01 ||
         f == BConv2DFamily::kSparseReference;
}

// A kernel computes dot for output rows [row_begin, row_end) of the flattened
// (batch * out_h) row range, so the caller can split work across threads.
struct BConv2DKernel {
  const char* name;  // e.g. "bconv2d_dot_6x32__avx512vpopcnt"
  BConv2DFamily family;
  // True when the CPU has the instructions and the kernel handles this shape.
  bool (*supported)(const BConv2DShape& shape);
  // Optional one-time repacking of the filter (nullptr: run gets the raw filter).
  // Returns an object released with `release`; nullptr on allocation failure.
  void* (*prepare)(const BConv2DShape& shape, const int32_t* filter);
  void (*run)(const BConv2DShape& shape, const void* prepared, const int32_t* input,
              const int32_t* filter, int32_t* dot, int row_begin, int row_end);
  void (*release)(void* prepared);
  // Optional (nullptr: the caller runs `run` and a transform of core/transform.h): the
  // same rows written as the output `out` describes (bitpacked words or float) instead
  // of `dot`, bit-identical to `run` followed by the scalar transform (bconv2d_output.h).
  void (*run_output)(const BConv2DShape& shape, const void* prepared, const int32_t* input,
                     const int32_t* filter, const BConv2DOutput& out, int row_begin,
                     int row_end) = nullptr;
};

// The one place that chooses a kernel: the fastest supported one, or the one named
// `force` ("reference", or a kernel name) when not null. Returns nullptr when
// `force` names no supported kernel.
const BConv2DKernel* select_bconv2d_kernel(const BConv2DShape& shape, const char* force);

// All kernels compiled in (for tests and benchmarks), nullptr-terminated.
const BConv2DKernel* const* all_bconv2d_kernels();

}  // namespace sbnn
