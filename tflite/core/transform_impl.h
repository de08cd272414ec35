// Per-element and per-row scalar code of the transforms (core/transform.h), shared by
// the scalar reference and the tails of the vector implementations, so that tails are
// the reference. Only for transform_*.cc, which are compiled with -ffp-contract=off.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "transform.h"

namespace sbnn {
namespace transform_internal {

constexpr int kBits = 32;

inline int words_for(int channels) { return (channels + kBits - 1) / kBits; }

inline float float_one(int32_t d, const TransformParams& p, int c) {
  const int32_t x = std::min(p.x_max, std::max(p.x_min, p.K - d));
  return static_cast<float>(x) * p.m[c] + p.b[c];
}

inline int8_t int8_one(int32_t d, const TransformParams& p, int c) {
  float r = std::round(float_one(d, p, c));  // half away from zero, like TfLiteRound
  if (!(r == r)) r = 0.0f;                   // NaN (from NaN parameters)
  r = std::min(127.0f, std::max(-128.0f, r));
  return static_cast<int8_t>(r);
}

// Channels [c0, c1) of one pixel.
inline void float_span(const int32_t* d, int c0, int c1, const TransformParams& p, float* o) {
  for (int c = c0; c < c1; ++c) o[c] = float_one(d[c], p, c);
}
inline void int8_span(const int32_t* d, int c0, int c1, const TransformParams& p, int8_t* o) {
  for (int c = c0; c < c1; ++c) o[c] = int8_one(d[c], p, c);
}
// Bits of channels [c0, c1) (c0 a multiple of 32), word by word.
inline void bits_span(const int32_t* d, int c0, int c1, const int32_t* limit, int32_t* o) {
  for (int w0 = c0; w0 < c1; w0 += kBits) {
    const int end = std::min(c1, w0 + kBits);
    uint32_t word = 0;
    for (int c = w0; c < end; ++c) word |= static_cast<uint32_t>(d[c] < limit[c]) << (c - w0);
    o[w0 / kBits] = static_cast<int32_t>(word);
  }
}

// The fused q transform of one channel (QTransformParams); fq = float(dot[q]).
inline float q_float_one(int32_t d, float fq, const QTransformParams& p, int c) {
  const float t = static_cast<float>(d) * p.a[c];
  const float u = fq * p.d[c];
  float y = (t + u) + p.b[c];
  y = y < p.lo ? p.lo : y;
  y = y > p.hi ? p.hi : y;
  return y;
}
inline int8_t round_int8(float y) {
  float r = std::round(y);  // half away from zero, like TfLiteRound
  if (!(r == r)) r = 0.0f;
  r = std::min(127.0f, std::max(-128.0f, r));
  return static_cast<int8_t>(r);
}
// Channels [c0, c1) of one pixel (d: the pixel's channels + 1 dot values).
// r: the pixel's row of QTransformParams::add (nullptr: none).
inline void q_float_span(const int32_t* d, int channels, int c0, int c1,
                         const QTransformParams& p, float* o, const float* r = nullptr) {
  const float fq = static_cast<float>(d[channels]);
  if (r != nullptr) {
    for (int c = c0; c < c1; ++c) o[c] = q_float_one(d[c], fq, p, c) + r[c];
  } else {
    for (int c = c0; c < c1; ++c) o[c] = q_float_one(d[c], fq, p, c);
  }
}
inline void q_int8_span(const int32_t* d, int channels, int c0, int c1,
                        const QTransformParams& p, int8_t* o) {
  const float fq = static_cast<float>(d[channels]);
  for (int c = c0; c < c1; ++c) o[c] = round_int8(q_float_one(d[c], fq, p, c));
}
// Bits of channels [c0, channels) (c0 a multiple of 32), word by word.
inline void q_bits_span(const int32_t* d, int channels, int c0, const QTransformParams& p,
                        int32_t* o) {
  const float fq = static_cast<float>(d[channels]);
  for (int w0 = c0; w0 < channels; w0 += kBits) {
    const int end = std::min(channels, w0 + kBits);
    uint32_t word = 0;
    for (int c = w0; c < end; ++c)
      word |= static_cast<uint32_t>(q_float_one(d[c], fq, p, c) < 0.0f) << (c - w0);
    o[w0 / kBits] = static_cast<int32_t>(word);
  }
}

// Packs values [c0, c1) of one row (c0 a multiple of 32) into words c0/32...
template <typename T, typename IsNegative>
inline void pack_span(const T* in, int64_t c0, int64_t c1, int32_t* out, IsNegative neg) {
  for (int64_t w0 = c0; w0 < c1; w0 += kBits) {
    const int64_t end = std::min<int64_t>(c1, w0 + kBits);
    uint32_t word = 0;
    for (int64_t c = w0; c < end; ++c) word |= static_cast<uint32_t>(neg(in[c]) ? 1 : 0) << (c - w0);
    out[w0 / kBits] = static_cast<int32_t>(word);
  }
}

struct FloatNeg {
  bool operator()(float x) const { return x < 0.0f; }
};
struct Int8Neg {
  int32_t zp;
  bool operator()(int8_t x) const { return static_cast<int32_t>(x) < zp; }
};
struct BoolNeg {
  bool operator()(uint8_t x) const { return x == 0; }
};

// Runs row_fn(in_row, length, out_row) over the rows; when channels is a multiple of 32
// the rows are one contiguous stream of words, packed as a single long row.
template <typename T, typename RowFn>
inline void for_rows(const T* in, int64_t rows, int channels, int32_t* out, RowFn row_fn) {
  if (rows <= 0 || channels <= 0) return;
  if (channels % kBits == 0) {
    row_fn(in, rows * channels, out);
    return;
  }
  const int words = words_for(channels);
  for (int64_t r = 0; r < rows; ++r) row_fn(in + r * channels, int64_t{channels}, out + r * words);
}

}  // namespace transform_internal
}  // namespace sbnn
