// aarch64 Advanced SIMD transforms (core/transform.h): 4 channels per Q register (16
// bytes per compare in the int8 / bool packers), remainders by the scalar reference code
// (transform_impl.h). Compiled with -ffp-contract=off, so vmulq + vaddq stay two
// roundings (aarch64 would otherwise fuse them into FMLA); used when CpuFeatures::arm_neon.
#include <arm_neon.h>

#include "transform_impl.h"

namespace sbnn {
namespace {

using namespace transform_internal;

inline float32x4_t affine4(const int32_t* d, const float* m, const float* b, int32x4_t K,
                           int32x4_t lo, int32x4_t hi) {
  int32x4_t x = vsubq_s32(K, vld1q_s32(d));
  x = vminq_s32(hi, vmaxq_s32(lo, x));
  const float32x4_t prod = vmulq_f32(vcvtq_f32_s32(x), vld1q_f32(m));
  return vaddq_f32(prod, vld1q_f32(b));
}

void to_float(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
              float* out) {
  const int32x4_t K = vdupq_n_s32(p.K), lo = vdupq_n_s32(p.x_min), hi = vdupq_n_s32(p.x_max);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    float* o = out + i * channels;
    int c = 0;
    for (; c + 4 <= channels; c += 4) vst1q_f32(o + c, affine4(d + c, p.m + c, p.b + c, K, lo, hi));
    float_span(d, c, channels, p, o);
  }
}

void to_int8(const int32_t* dot, int64_t pixels, int channels, const TransformParams& p,
             int8_t* out) {
  const int32x4_t K = vdupq_n_s32(p.K), lo = vdupq_n_s32(p.x_min), hi = vdupq_n_s32(p.x_max);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    int8_t* o = out + i * channels;
    int c = 0;
    // FCVTAS: round half away from zero, NaN -> 0, saturating; then saturating narrows:
    // the same as std::round, NaN -> 0, clamp to [-128, 127].
    for (; c + 8 <= channels; c += 8) {
      const int32x4_t a = vcvtaq_s32_f32(affine4(d + c, p.m + c, p.b + c, K, lo, hi));
      const int32x4_t b = vcvtaq_s32_f32(affine4(d + c + 4, p.m + c + 4, p.b + c + 4, K, lo, hi));
      vst1_s8(o + c, vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));
    }
    int8_span(d, c, channels, p, o);
  }
}

const uint32_t kBit4[4] = {1, 2, 4, 8};
const uint8_t kBit8[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};

// 16 byte-masks (0xff / 0) -> 16 bits.
inline uint32_t movemask16(uint8x16_t m) {
  const uint8x16_t v = vandq_u8(m, vld1q_u8(kBit8));
  return static_cast<uint32_t>(vaddv_u8(vget_low_u8(v))) |
         (static_cast<uint32_t>(vaddv_u8(vget_high_u8(v))) << 8);
}

void to_bits(const int32_t* dot, int64_t pixels, int channels, const int32_t* limit,
             int32_t* out) {
  const int words = words_for(channels);
  const int full = channels / kBits;
  const uint32x4_t bit4 = vld1q_u32(kBit4);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * channels;
    int32_t* o = out + i * words;
    for (int w = 0; w < full; ++w) {
      uint32_t word = 0;
      for (int q = 0; q < 8; ++q) {
        const int c = w * kBits + 4 * q;
        const uint32x4_t lt = vcltq_s32(vld1q_s32(d + c), vld1q_s32(limit + c));
        word |= vaddvq_u32(vandq_u32(lt, bit4)) << (4 * q);
      }
      o[w] = static_cast<int32_t>(word);
    }
    bits_span(d, full * kBits, channels, limit, o);
  }
}

void pack_float(const float* in, int64_t rows, int channels, int32_t* out) {
  for_rows(in, rows, channels, out, [](const float* r, int64_t n, int32_t* o) {
    const uint32x4_t bit4 = vld1q_u32(kBit4);
    const float32x4_t zero = vdupq_n_f32(0.0f);
    const int64_t full = n / kBits * kBits;
    for (int64_t c = 0; c < full; c += kBits) {
      uint32_t word = 0;
      for (int q = 0; q < 8; ++q) {
        const uint32x4_t lt = vcltq_f32(vld1q_f32(r + c + 4 * q), zero);  // NaN: false
        word |= vaddvq_u32(vandq_u32(lt, bit4)) << (4 * q);
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
    const int8x16_t zp = vdupq_n_s8(static_cast<int8_t>(zero_point));
    const int64_t full = n / kBits * kBits;
    for (int64_t c = 0; c < full; c += kBits) {
      const uint32_t lo = movemask16(vcltq_s8(vld1q_s8(r + c), zp));
      const uint32_t hi = movemask16(vcltq_s8(vld1q_s8(r + c + 16), zp));
      o[c / kBits] = static_cast<int32_t>(lo | (hi << 16));
    }
    pack_span(r, full, n, o, Int8Neg{zero_point});
  });
}

void pack_bool(const uint8_t* in, int64_t rows, int channels, int32_t* out) {
  for_rows(in, rows, channels, out, [](const uint8_t* r, int64_t n, int32_t* o) {
    const int64_t full = n / kBits * kBits;
    for (int64_t c = 0; c < full; c += kBits) {
      const uint32_t lo = movemask16(vceqzq_u8(vld1q_u8(r + c)));
      const uint32_t hi = movemask16(vceqzq_u8(vld1q_u8(r + c + 16)));
      o[c / kBits] = static_cast<int32_t>(lo | (hi << 16));
    }
    pack_span(r, full, n, o, BoolNeg{});
  });
}

// The fused q transform (QTransformParams) of 4 channels; fq = float(dot[q]) broadcast.
// The clamps are selects (FMAX/FMIN would turn a NaN y into lo / hi).
inline float32x4_t q_affine4(const int32_t* d, const QTransformParams& p, int c, float32x4_t fq,
                             float32x4_t lo, float32x4_t hi) {
  const float32x4_t t = vmulq_f32(vcvtq_f32_s32(vld1q_s32(d + c)), vld1q_f32(p.a + c));
  const float32x4_t u = vmulq_f32(fq, vld1q_f32(p.d + c));
  float32x4_t y = vaddq_f32(vaddq_f32(t, u), vld1q_f32(p.b + c));
  y = vbslq_f32(vcltq_f32(y, lo), lo, y);
  return vbslq_f32(vcgtq_f32(y, hi), hi, y);
}

void q_to_float(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
                float* out) {
  const float32x4_t lo = vdupq_n_f32(p.lo), hi = vdupq_n_f32(p.hi);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    float* o = out + i * channels;
    const float32x4_t fq = vdupq_n_f32(static_cast<float>(d[channels]));
    int c = 0;
    if (p.add != nullptr) {
      const float* r = p.add + i * channels;
      for (; c + 4 <= channels; c += 4)
        vst1q_f32(o + c, vaddq_f32(q_affine4(d, p, c, fq, lo, hi), vld1q_f32(r + c)));
      q_float_span(d, channels, c, channels, p, o, r);
      continue;
    }
    for (; c + 4 <= channels; c += 4) vst1q_f32(o + c, q_affine4(d, p, c, fq, lo, hi));
    q_float_span(d, channels, c, channels, p, o);
  }
}

void q_to_int8(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int8_t* out) {
  const float32x4_t lo = vdupq_n_f32(p.lo), hi = vdupq_n_f32(p.hi);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    int8_t* o = out + i * channels;
    const float32x4_t fq = vdupq_n_f32(static_cast<float>(d[channels]));
    int c = 0;
    for (; c + 8 <= channels; c += 8) {
      const int32x4_t a = vcvtaq_s32_f32(q_affine4(d, p, c, fq, lo, hi));
      const int32x4_t b = vcvtaq_s32_f32(q_affine4(d, p, c + 4, fq, lo, hi));
      vst1_s8(o + c, vqmovn_s16(vcombine_s16(vqmovn_s32(a), vqmovn_s32(b))));
    }
    q_int8_span(d, channels, c, channels, p, o);
  }
}

void q_to_bits(const int32_t* dot, int64_t pixels, int channels, const QTransformParams& p,
               int32_t* out) {
  const int words = words_for(channels);
  const int full = channels / kBits;
  const float32x4_t lo = vdupq_n_f32(p.lo), hi = vdupq_n_f32(p.hi);
  const uint32x4_t bit4 = vld1q_u32(kBit4);
  for (int64_t i = 0; i < pixels; ++i) {
    const int32_t* d = dot + i * (channels + 1);
    int32_t* o = out + i * words;
    const float32x4_t fq = vdupq_n_f32(static_cast<float>(d[channels]));
    for (int w = 0; w < full; ++w) {
      uint32_t word = 0;
      for (int q = 0; q < 8; ++q) {
        const uint32x4_t lt = vcltzq_f32(q_affine4(d, p, w * kBits + 4 * q, fq, lo, hi));
        word |= vaddvq_u32(vandq_u32(lt, bit4)) << (4 * q);
      }
      o[w] = static_cast<int32_t>(word);
    }
    q_bits_span(d, channels, full * kBits, p, o);
  }
}

}  // namespace

extern const TransformKernels kTransformKernels_neon = {
    "neon", to_float, to_int8, to_bits, pack_float, pack_int8, pack_bool,
    q_to_float, q_to_int8, q_to_bits};

}  // namespace sbnn
