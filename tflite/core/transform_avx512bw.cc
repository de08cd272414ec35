// AVX-512 transforms (core/transform.h): 16 channels per ZMM, tails with lane masks, so
// no scalar tail is needed. Compiled with -mavx512f -mavx512bw -mavx512vl
// -ffp-contract=off; used when CpuFeatures::x86_avx512bw.
// GCC 12 warns about the deliberately undefined registers inside some intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "transform_impl.h"

namespace sbnn {
namespace {

using namespace transform_internal;

inline __mmask16 lanes16(int n) {  // first n (0..16) lanes
  return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1);
}

// y = float(clamp(K - dot)) * m + b for 16 lanes (masked-off lanes: anything).
inline __m512 affine16(const int32_t* d, const float* m, const float* b, __mmask16 k,
                       __m512i K, __m512i lo, __m512i hi) {
  __m512i x = _mm512_sub_epi32(K, _mm512_maskz_loadu_epi32(k, d));
  x = _mm512_min_epi32(hi, _mm512_max_epi32(lo, x));
  const __m512 prod = _mm512_mul_ps(_mm512_cvtepi32_ps(x), _mm512_maskz_loadu_ps(k, m));
  return _mm512_add_ps(prod, _mm512_maskz_loadu_ps(k, b));
}

void to_float(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
              float* out) {
  const __m512i K = _mm512_set1_epi32(p.K), lo = _mm512_set1_epi32(p.x_min),
                hi = _mm512_set1_epi32(p.x_max);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    float* o = out + i * channels;
    int c = 0;
    for (; c + 16 <= channels; c += 16)
      _mm512_storeu_ps(o + c, affine16(d + c, p.m + c, p.b + c, 0xffff, K, lo, hi));
    if (c < channels) {
      const __mmask16 k = lanes16(channels - c);
      _mm512_mask_storeu_ps(o + c, k, affine16(d + c, p.m + c, p.b + c, k, K, lo, hi));
    }
  }
}

// std::round (half away from zero), NaN -> 0, clamp to [-128, 127], as int32 lanes.
inline __m512i round_clamp16(__m512 y) {
  const __m512 t = _mm512_roundscale_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  // y - trunc(y) is exact; |frac| >= 0.5 moves one away from zero (inf: frac is NaN,
  // the compare is false and inf stays, clamped below).
  const __m512 frac = _mm512_sub_ps(y, t);
  const __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(frac), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_castps_si512(_mm512_set1_ps(1.0f)),
      _mm512_and_si512(_mm512_castps_si512(y), _mm512_set1_epi32(INT32_MIN))));
  __m512 r = _mm512_mask_add_ps(t, up, t, one);
  const __mmask16 ordered = _mm512_cmp_ps_mask(y, y, _CMP_ORD_Q);
  r = _mm512_maskz_mov_ps(ordered, r);
  r = _mm512_min_ps(_mm512_set1_ps(127.0f), _mm512_max_ps(_mm512_set1_ps(-128.0f), r));
  return _mm512_cvttps_epi32(r);
}

void to_int8(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
             int8_t* out) {
  const __m512i K = _mm512_set1_epi32(p.K), lo = _mm512_set1_epi32(p.x_min),
                hi = _mm512_set1_epi32(p.x_max);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    int8_t* o = out + i * channels;
    for (int c = 0; c < channels; c += 16) {
      const __mmask16 k = lanes16(channels - c);
      const __m512i v = round_clamp16(affine16(d + c, p.m + c, p.b + c, k, K, lo, hi));
      _mm_mask_storeu_epi8(o + c, k, _mm512_cvtsepi32_epi8(v));
    }
  }
}

void to_bits(const int32_t* dot, int64_t pixels, int channels, const int32_t* limit,
             int32_t* out) {
  const int words = words_for(channels);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    int32_t* o = out + i * words;
    for (int w = 0; w < words; ++w) {
      const int c = w * kBits;
      const __mmask16 k0 = lanes16(channels - c);
      const __mmask16 k1 = lanes16(channels - c - 16 > 0 ? channels - c - 16 : 0);
      const __mmask16 b0 = _mm512_mask_cmplt_epi32_mask(k0, _mm512_maskz_loadu_epi32(k0, d + c),
                                                        _mm512_maskz_loadu_epi32(k0, limit + c));
      const __mmask16 b1 =
          _mm512_mask_cmplt_epi32_mask(k1, _mm512_maskz_loadu_epi32(k1, d + c + 16),
                                       _mm512_maskz_loadu_epi32(k1, limit + c + 16));
      o[w] = static_cast<int32_t>(static_cast<uint32_t>(b0) | (static_cast<uint32_t>(b1) << 16));
    }
  }
}

inline uint64_t lanes64(int64_t n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

// Writes the bits of n values as ceil(n / 32) words; bits(mask_of_valid, offset) gives
// up to 64 bits of the values at offset (invalid lanes 0).
template <typename Bits64>
inline void pack_stream(int64_t n, int32_t* out, Bits64 bits) {
  int64_t c = 0;
  for (; c + 64 <= n; c += 64) {
    const uint64_t v = bits(~uint64_t{0}, c);
    out[c / 32] = static_cast<int32_t>(static_cast<uint32_t>(v));
    out[c / 32 + 1] = static_cast<int32_t>(static_cast<uint32_t>(v >> 32));
  }
  if (c < n) {
    const uint64_t v = bits(lanes64(n - c), c);
    out[c / 32] = static_cast<int32_t>(static_cast<uint32_t>(v));
    if (n - c > 32) out[c / 32 + 1] = static_cast<int32_t>(static_cast<uint32_t>(v >> 32));
  }
}

void pack_float(const float* in, int64_t rows, int channels, int32_t* out) {
  const __m512 zero = _mm512_setzero_ps();
  for_rows(in, rows, channels, out, [zero](const float* r, int64_t n, int32_t* o) {
    pack_stream(n, o, [r, zero](uint64_t valid, int64_t c) -> uint64_t {
      uint64_t v = 0;
      for (int q = 0; q < 4; ++q) {
        const __mmask16 k = static_cast<__mmask16>(valid >> (16 * q));
        if (k == 0) break;
        const __m512 x = _mm512_maskz_loadu_ps(k, r + c + 16 * q);
        v |= uint64_t{_mm512_mask_cmp_ps_mask(k, x, zero, _CMP_LT_OQ)} << (16 * q);
      }
      return v;
    });
  });
}

void pack_int8(const int8_t* in, int64_t rows, int channels, int32_t zero_point, int32_t* out) {
  if (zero_point < -128 || zero_point > 127) {  // all or nothing: the reference does it
    transform_kernels_scalar().pack_int8(in, rows, channels, zero_point, out);
    return;
  }
  const __m512i zp = _mm512_set1_epi8(static_cast<char>(zero_point));
  for_rows(in, rows, channels, out, [zp](const int8_t* r, int64_t n, int32_t* o) {
    pack_stream(n, o, [r, zp](uint64_t valid, int64_t c) -> uint64_t {
      const __m512i x = _mm512_maskz_loadu_epi8(valid, r + c);
      return _mm512_mask_cmpgt_epi8_mask(valid, zp, x);
    });
  });
}

void pack_bool(const uint8_t* in, int64_t rows, int channels, int32_t* out) {
  for_rows(in, rows, channels, out, [](const uint8_t* r, int64_t n, int32_t* o) {
    pack_stream(n, o, [r](uint64_t valid, int64_t c) -> uint64_t {
      const __m512i x = _mm512_maskz_loadu_epi8(valid, r + c);
      return _mm512_mask_cmpeq_epi8_mask(valid, x, _mm512_setzero_si512());
    });
  });
}

// The fused q transform (QTransformParams) of 16 lanes (masked-off lanes: anything).
inline __m512 q_affine16(const int32_t* d, const QTransformParams& p, int c, __mmask16 k,
                         __m512 fq, __m512 lo, __m512 hi) {
  const __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, d + c)),
                                 _mm512_maskz_loadu_ps(k, p.a + c));
  const __m512 u = _mm512_mul_ps(fq, _mm512_maskz_loadu_ps(k, p.d + c));
  __m512 y = _mm512_add_ps(_mm512_add_ps(t, u), _mm512_maskz_loadu_ps(k, p.b + c));
  y = _mm512_max_ps(lo, y);  // lo > y ? lo : y  (NaN y passes)
  return _mm512_min_ps(hi, y);  // hi < y ? hi : y
}

void q_to_float(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
                float* out) {
  const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    float* o = out + i * channels;
    const __m512 fq = _mm512_set1_ps(static_cast<float>(d[channels]));
    int c = 0;
    if (p.add != nullptr) {
      const float* r = p.add + i * channels;
      for (; c + 16 <= channels; c += 16)
        _mm512_storeu_ps(o + c, _mm512_add_ps(q_affine16(d, p, c, 0xffff, fq, lo, hi),
                                              _mm512_loadu_ps(r + c)));
      if (c < channels) {
        const __mmask16 k = lanes16(channels - c);
        _mm512_mask_storeu_ps(o + c, k, _mm512_add_ps(q_affine16(d, p, c, k, fq, lo, hi),
                                                      _mm512_maskz_loadu_ps(k, r + c)));
      }
      continue;
    }
    for (; c + 16 <= channels; c += 16)
      _mm512_storeu_ps(o + c, q_affine16(d, p, c, 0xffff, fq, lo, hi));
    if (c < channels) {
      const __mmask16 k = lanes16(channels - c);
      _mm512_mask_storeu_ps(o + c, k, q_affine16(d, p, c, k, fq, lo, hi));
    }
  }
}

void q_to_int8(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int8_t* out) {
  const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    int8_t* o = out + i * channels;
    const __m512 fq = _mm512_set1_ps(static_cast<float>(d[channels]));
    for (int c = 0; c < channels; c += 16) {
      const __mmask16 k = lanes16(channels - c);
      const __m512i v = round_clamp16(q_affine16(d, p, c, k, fq, lo, hi));
      _mm_mask_storeu_epi8(o + c, k, _mm512_cvtsepi32_epi8(v));
    }
  }
}

void q_to_bits(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int32_t* out) {
  const int words = words_for(channels);
  const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi);
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    int32_t* o = out + i * words;
    const __m512 fq = _mm512_set1_ps(static_cast<float>(d[channels]));
    for (int w = 0; w < words; ++w) {
      uint32_t word = 0;
      for (int h = 0; h < 2; ++h) {
        const int c = w * kBits + 16 * h;
        if (c >= channels) break;
        const __mmask16 k = lanes16(channels - c);
        const __mmask16 lt =
            _mm512_mask_cmp_ps_mask(k, q_affine16(d, p, c, k, fq, lo, hi), zero, _CMP_LT_OQ);
        word |= static_cast<uint32_t>(lt) << (16 * h);
      }
      o[w] = static_cast<int32_t>(word);
    }
  }
}

}  // namespace

extern const TransformKernels kTransformKernels_avx512 = {
    "avx512", to_float, to_int8, to_bits, pack_float, pack_int8, pack_bool,
    q_to_float, q_to_int8, q_to_bits};

}  // namespace sbnn
