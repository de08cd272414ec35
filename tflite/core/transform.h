// sbnn_keras native core: the elementwise passes around the binary convolution,
// vectorised per ISA with a portable scalar reference beside them.
//
//   output transforms (LceBconv2d / SbnnBconv2d): int32 `dot` [pixels, channels]
//     (core/bconv2d.h) -> float, int8 or bitpacked output of the same pixels;
//   bit packing (LceQuantize): float / int8 / bool rows -> bitpacked int32 words.
//
// Every implementation gives bit-identical results to the scalar one (float: the same
// operations in the same order per element, compiled with -ffp-contract=off, so no FMA
// contraction; tests/core/transform_test.cc checks this on odd lengths, tails, NaN, inf,
// -0.0, clamping and saturation extremes). Bitpacking follows LCE: int32 words, bit i of
// word w is channel 32*w + i, bit 1 means -1 (negative), bits past the last channel are 0.
#pragma once

#include <cstdint>

namespace sbnn {

// Per-channel parameters of the float / int8 output transform:
//   x = clamp(K - dot, x_min, x_max)      (int32; x = 2 * XOR-popcount accumulator)
//   y = float(x) * m[c] + b[c]            (float multiply, then float add)
//   float output: y
//   int8 output:  round half away from zero (std::round), NaN -> 0, clamped to
//                 [-128, 127]
struct TransformParams {
  int32_t K = 0;
  int32_t x_min = 0, x_max = 0;
  const float* m = nullptr;  // [channels]
  const float* b = nullptr;  // [channels]
};

// Per-channel parameters of the fused "q" transform (SbnnBconv2d with fused_q = 1):
// `dot` rows have channels + 1 values, the last one is dot[q] (the window sum of the
// input signs, an all-(+1) filter channel); output channel c, in this order:
//   t = float(dot[c]) * a[c];  u = float(dot[q]) * d[c];  y = (t + u) + b[c]
//   y = y < lo ? lo : y;  y = y > hi ? hi : y     (NaN passes; lo/hi may be -+inf)
//   float output: y
//   int8 output:  round half away from zero, NaN -> 0, clamped to [-128, 127]
//   bitpacked:    bit c = y < 0.0f            (what LceQuantize makes of the float y)
struct QTransformParams {
  const float* a = nullptr;  // [channels]
  const float* d = nullptr;  // [channels]
  const float* b = nullptr;  // [channels]
  float lo = 0.0f, hi = 0.0f;
  // q_to_float only, optional: a pixels x channels float tensor added after the clamp
  // (a residual ADD folded into the op, option fused_add): y = y + add[p][c], one float
  // addition, as TFLite's ADD computes it.
  const float* add = nullptr;
};

struct TransformKernels {
  const char* isa;  // "avx512", "avx2", "neon", "scalar"
  // pixels x channels (row-major, channels contiguous); out has the same layout.
  void (*to_float)(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
                   float* out);
  void (*to_int8)(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
                  int8_t* out);
  // Bitpacked output: bit c of pixel p = dot[p][c] < limit[c]; out has
  // ceil(channels / 32) words per pixel. (LceBconv2d's `K - dot > 2 * threshold`
  // is `dot < K - 2 * threshold`; see bitpack_limit.)
  void (*to_bits)(const int32_t* dot, int64_t pixels, int channels, const int32_t* limit,
                  int32_t* out);
  // LceQuantize: `rows` rows of `channels` values -> ceil(channels / 32) words per row.
  //   float: bit = x < 0.0f (-0.0, +0.0 and NaN give 0)
  //   int8:  bit = int32(x) < zero_point
  //   bool:  bit = (byte == 0)  (any non-zero byte is true, +1)
  void (*pack_float)(const float* in, int64_t rows, int channels, int32_t* out);
  void (*pack_int8)(const int8_t* in, int64_t rows, int channels, int32_t zero_point,
                    int32_t* out);
  void (*pack_bool)(const uint8_t* in, int64_t rows, int channels, int32_t* out);
  // The fused q transforms (QTransformParams): `dot` is pixels x (channels + 1), the
  // output pixels x channels (bits: ceil(channels / 32) words per pixel).
  void (*q_to_float)(const int32_t* dot, int64_t pixels, int channels,
                     const QTransformParams& p, float* out);
  void (*q_to_int8)(const int32_t* dot, int64_t pixels, int channels,
                    const QTransformParams& p, int8_t* out);
  void (*q_to_bits)(const int32_t* dot, int64_t pixels, int channels,
                    const QTransformParams& p, int32_t* out);
};

// `dot < limit` is `K - dot > 2 * threshold` for every dot in [INT32_MIN, INT32_MAX - 1]
// (kernels produce |dot| <= K <= 2^28): limit = K - 2 * threshold clamped to int32.
inline int32_t bitpack_limit(int32_t K, int32_t threshold) {
  const int64_t v = int64_t{K} - 2 * int64_t{threshold};
  if (v > INT32_MAX) return INT32_MAX;
  if (v < INT32_MIN) return INT32_MIN;
  return static_cast<int32_t>(v);
}

// The one place that chooses: the widest implementation the CPU supports (read once,
// honours SBNN_DISABLE_ISA like the bconv2d kernels, see cpu_features.h).
const TransformKernels& transform_kernels();

// Every implementation compiled in and supported by this CPU, widest first, the scalar
// reference last; nullptr-terminated (for tests and benchmarks).
const TransformKernels* const* all_transform_kernels();

// The portable scalar reference.
const TransformKernels& transform_kernels_scalar();

}  // namespace sbnn
