// AVX2 transforms (core/transform.h): 8 channels per YMM (32 bytes per compare in the
// int8 / bool packers), remainders by the scalar reference code (transform_impl.h).
// Compiled with -mavx2 -mpopcnt -mfma -ffp-contract=off (no FMA contraction of the
// multiply and add); used when CpuFeatures::x86_avx2.
#include <immintrin.h>

#include "transform_impl.h"

namespace sbnn {
namespace {

using namespace transform_internal;

struct Consts {
  __m256i K, lo, hi;
  explicit Consts(const TransformParams& p)
      : K(_mm256_set1_epi32(p.K)), lo(_mm256_set1_epi32(p.x_min)), hi(_mm256_set1_epi32(p.x_max)) {}
};

inline __m256 affine8(const int32_t* d, const float* m, const float* b, const Consts& k) {
  __m256i x = _mm256_sub_epi32(k.K, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d)));
  x = _mm256_min_epi32(k.hi, _mm256_max_epi32(k.lo, x));
  const __m256 prod = _mm256_mul_ps(_mm256_cvtepi32_ps(x), _mm256_loadu_ps(m));
  return _mm256_add_ps(prod, _mm256_loadu_ps(b));
}

void to_float(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
              float* out) {
  const Consts k(p);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    float* o = out + i * channels;
    int c = 0;
    for (; c + 8 <= channels; c += 8) _mm256_storeu_ps(o + c, affine8(d + c, p.m + c, p.b + c, k));
    float_span(d, c, channels, p, o);
  }
}

// std::round (half away from zero), NaN -> 0, clamped to [-128, 127], as int32 lanes.
inline __m256i round_clamp8(__m256 y) {
  const __m256 t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_sub_ps(y, t);  // exact
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
  const __m256 up = _mm256_cmp_ps(_mm256_andnot_ps(sign, frac), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(sign, y));
  __m256 r = _mm256_add_ps(t, _mm256_and_ps(up, one));  // t + (+-1 or +0)
  r = _mm256_and_ps(r, _mm256_cmp_ps(y, y, _CMP_ORD_Q));  // NaN -> +0
  r = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(_mm256_set1_ps(-128.0f), r));
  return _mm256_cvttps_epi32(r);
}

void to_int8(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
             int8_t* out) {
  const Consts k(p);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    int8_t* o = out + i * channels;
    int c = 0;
    for (; c + 32 <= channels; c += 32) {
      const __m256i v0 = round_clamp8(affine8(d + c, p.m + c, p.b + c, k));
      const __m256i v1 = round_clamp8(affine8(d + c + 8, p.m + c + 8, p.b + c + 8, k));
      const __m256i v2 = round_clamp8(affine8(d + c + 16, p.m + c + 16, p.b + c + 16, k));
      const __m256i v3 = round_clamp8(affine8(d + c + 24, p.m + c + 24, p.b + c + 24, k));
      const __m256i w = _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + c), _mm256_permutevar8x32_epi32(w, order));
    }
    for (; c + 8 <= channels; c += 8) {
      const __m256i v = round_clamp8(affine8(d + c, p.m + c, p.b + c, k));
      const __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(o + c), _mm_packs_epi16(h, h));
    }
    int8_span(d, c, channels, p, o);
  }
}

void to_bits(const int32_t* dot, int64_t pixels, int channels, const int32_t* limit,
             int32_t* out) {
  const int words = words_for(channels);
  const int full = channels / kBits;
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    int32_t* o = out + i * words;
    for (int w = 0; w < full; ++w) {
      uint32_t word = 0;
      for (int q = 0; q < 4; ++q) {
        const int c = w * kBits + 8 * q;
        const __m256i lt = _mm256_cmpgt_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(limit + c)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + c)));
        word |= static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(lt))) << (8 * q);
      }
      o[w] = static_cast<int32_t>(word);
    }
    bits_span(d, full * kBits, channels, limit, o);
  }
}

void pack_float(const float* in, int64_t rows, int channels, int32_t* out) {
  for_rows(in, rows, channels, out, [](const float* r, int64_t n, int32_t* o) {
    const __m256 zero = _mm256_setzero_ps();
    const int64_t full = n / kBits * kBits;
    for (int64_t c = 0; c < full; c += kBits) {
      uint32_t word = 0;
      for (int q = 0; q < 4; ++q) {
        const __m256 lt = _mm256_cmp_ps(_mm256_loadu_ps(r + c + 8 * q), zero, _CMP_LT_OQ);
        word |= static_cast<uint32_t>(_mm256_movemask_ps(lt)) << (8 * q);
      }
      o[c / kBits] = static_cast<int32_t>(word);
    }
    pack_span(r, full, n, o, FloatNeg{});
  });
}

void pack_int8(const int8_t* in, int64_t rows, int channels, int32_t zero_point, int32_t* out) {
  if (zero_point < -128 || zero_point > 127) {
    transform_kernels_scalar().pack_int8(in, rows, channels, zero_point, out);
    return;
  }
  for_rows(in, rows, channels, out, [zero_point](const int8_t* r, int64_t n, int32_t* o) {
    const __m256i zp = _mm256_set1_epi8(static_cast<char>(zero_point));
    const int64_t full = n / kBits * kBits;
    for (int64_t c = 0; c < full; c += kBits) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + c));
      o[c / kBits] = _mm256_movemask_epi8(_mm256_cmpgt_epi8(zp, x));
    }
    pack_span(r, full, n, o, Int8Neg{zero_point});
  });
}

void pack_bool(const uint8_t* in, int64_t rows, int channels, int32_t* out) {
  for_rows(in, rows, channels, out, [](const uint8_t* r, int64_t n, int32_t* o) {
    const __m256i zero = _mm256_setzero_si256();
    const int64_t full = n / kBits * kBits;
    for (int64_t c = 0; c < full; c += kBits) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + c));
      o[c / kBits] = _mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero));
    }
    pack_span(r, full, n, o, BoolNeg{});
  });
}

// The fused q transform (QTransformParams) of 8 channels; fq = float(dot[q]) broadcast.
struct QConsts {
  __m256 fq, lo, hi;
  QConsts(const QTransformParams& p, float q)
      : fq(_mm256_set1_ps(q)), lo(_mm256_set1_ps(p.lo)), hi(_mm256_set1_ps(p.hi)) {}
};

inline __m256 q_affine8(const int32_t* d, const QTransformParams& p, int c, const QConsts& k) {
  const __m256 t = _mm256_mul_ps(
      _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + c))),
      _mm256_loadu_ps(p.a + c));
  const __m256 u = _mm256_mul_ps(k.fq, _mm256_loadu_ps(p.d + c));
  __m256 y = _mm256_add_ps(_mm256_add_ps(t, u), _mm256_loadu_ps(p.b + c));
  y = _mm256_max_ps(k.lo, y);  // lo > y ? lo : y  (NaN y passes)
  return _mm256_min_ps(k.hi, y);  // hi < y ? hi : y
}

void q_to_float(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
                float* out) {
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    float* o = out + i * channels;
    const QConsts k(p, static_cast<float>(d[channels]));
    int c = 0;
    if (p.add != nullptr) {
      const float* r = p.add + i * channels;
      for (; c + 8 <= channels; c += 8)
        _mm256_storeu_ps(o + c, _mm256_add_ps(q_affine8(d, p, c, k), _mm256_loadu_ps(r + c)));
      q_float_span(d, channels, c, channels, p, o, r);
      continue;
    }
    for (; c + 8 <= channels; c += 8) _mm256_storeu_ps(o + c, q_affine8(d, p, c, k));
    q_float_span(d, channels, c, channels, p, o);
  }
}

void q_to_int8(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int8_t* out) {
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    int8_t* o = out + i * channels;
    const QConsts k(p, static_cast<float>(d[channels]));
    int c = 0;
    for (; c + 8 <= channels; c += 8) {
      const __m256i v = round_clamp8(q_affine8(d, p, c, k));
      const __m128i h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(o + c), _mm_packs_epi16(h, h));
    }
    q_int8_span(d, channels, c, channels, p, o);
  }
}

void q_to_bits(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int32_t* out) {
  const int words = words_for(channels);
  const int full = channels / kBits;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    int32_t* o = out + i * words;
    const QConsts k(p, static_cast<float>(d[channels]));
    for (int w = 0; w < full; ++w) {
      uint32_t word = 0;
      for (int q = 0; q < 4; ++q) {
        const __m256 lt = _mm256_cmp_ps(q_affine8(d, p, w * kBits + 8 * q, k), zero, _CMP_LT_OQ);
        word |= static_cast<uint32_t>(_mm256_movemask_ps(lt)) << (8 * q);
      }
      o[w] = static_cast<int32_t>(word);
    }
    q_bits_span(d, channels, full * kBits, p, o);
  }
}

}  // namespace

extern const TransformKernels kTransformKernels_avx2 = {
    "avx2", to_float, to_int8, to_bits, pack_float, pack_int8, pack_bool,
    q_to_float, q_to_int8, q_to_bits};

}  // namespace sbnn
