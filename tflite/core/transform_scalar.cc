// The portable scalar reference of the transforms (core/transform.h). Compiled with
// -ffp-contract=off (core/CMakeLists.txt): float results are those of the C++ source,
// whatever the target's FMA support.
#include "transform_impl.h"

namespace sbnn {
namespace {

using namespace transform_internal;

void to_float(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
              float* out) {
  for (int64_t i = 0; i < pixels; ++i)
    float_span(dot + i * channels, 0, channels, p, out + i * channels);
}

void to_int8(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
             int8_t* out) {
  for (int64_t i = 0; i < pixels; ++i)
    int8_span(dot + i * channels, 0, channels, p, out + i * channels);
}

void to_bits(const int32_t* dot, int64_t pixels, int channels, const int32_t* limit,
             int32_t* out) {
  const int words = words_for(channels);
  for (int64_t i = 0; i < pixels; ++i) bits_span(dot + i * channels, 0, channels, limit, out + i * words);
}

void pack_float(const float* in, int64_t rows, int channels, int32_t* out) {
  for_rows(in, rows, channels, out,
           [](const float* r, int64_t n, int32_t* o) { pack_span(r, 0, n, o, FloatNeg{}); });
}

void pack_int8(const int8_t* in, int64_t rows, int channels, int32_t zero_point, int32_t* out) {
  for_rows(in, rows, channels, out, [zero_point](const int8_t* r, int64_t n, int32_t* o) {
    pack_span(r, 0, n, o, Int8Neg{zero_point});
  });
}

void pack_bool(const uint8_t* in, int64_t rows, int channels, int32_t* out) {
  for_rows(in, rows, channels, out,
           [](const uint8_t* r, int64_t n, int32_t* o) { pack_span(r, 0, n, o, BoolNeg{}); });
}

void q_to_float(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
                float* out) {
  for (int64_t i = 0; i < pixels; ++i)
    q_float_span(dot + i * (channels + 1), channels, 0, channels, p, out + i * channels,
                 p.add != nullptr ? p.add + i * channels : nullptr);
}

void q_to_int8(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int8_t* out) {
  for (int64_t i = 0; i < pixels; ++i)
    q_int8_span(dot + i * (channels + 1), channels, 0, channels, p, out + i * channels);
}

void q_to_bits(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int32_t* out) {
  const int words = words_for(channels);
  for (int64_t i = 0; i < pixels; ++i)
    q_bits_span(dot + i * (channels + 1), channels, 0, p, out + i * words);
}

}  // namespace

extern const TransformKernels kTransformKernels_scalar = {
    "scalar", to_float, to_int8, to_bits, pack_float, pack_int8, pack_bool,
    q_to_float, q_to_int8, q_to_bits};

}  // namespace sbnn
