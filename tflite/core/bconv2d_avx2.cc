// AVX2 gathered-bgemm kernel with a nibble-LUT popcount (vpshufb).
//   bconv2d_dot_3x8__avx2_lut  3 pixels x 8 output channels (2 YMM of 4 channels).
// Both operands are stored nibble-split: the filter at prepare time (plane 0: w & 0x0f..,
// plane 1: (w >> 4) & 0x0f..), the patch after gathering. Then per (pixel, 4 channels,
// word): 2 XOR + 2 VPSHUFB + 2 byte ADD = 6 instructions per 256 binary MACs, with no
// masking or shifting in the inner loop. Byte counters take at most 8 per word, so they
// are folded into 64-bit counters (VPSADBW) every 31 words.
// Compiled with -mavx2 -mpopcnt -mfma.
#include <immintrin.h>

#include "bconv2d_gemm_driver.h"
#include "bconv2d_kernels.h"
#include "cpu_features.h"

namespace sbnn {
namespace internal {
namespace {

constexpr uint64_t kLowNibbles = 0x0f0f0f0f0f0f0f0full;

template <int kMR_, int kNV_>
struct Avx2LutUK {
  static constexpr int kMR = kMR_, kNV = kNV_, kLanes = 4, kPatchPlanes = 2;
  static constexpr int kChunkBytes = 24576;

  // Expands each row of k64 gathered words in place into [k][2] nibble planes
  // (walking backwards so no word is overwritten before it is read).
  static void transform_patch(uint64_t* patch, int count, size_t stride, int k64) {
    for (int i = 0; i < count; ++i) {
      uint64_t* row = patch + i * stride;
      for (int k = k64 - 1; k >= 0; --k) {
        const uint64_t v = row[k];
        row[2 * k + 1] = (v >> 4) & kLowNibbles;
        row[2 * k] = v & kLowNibbles;
      }
    }
  }

  template <int MR, int NV>
  static void tile(const TileArgs& a) {
    constexpr int kBlockWidth = kNV * kLanes;
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i zero = _mm256_setzero_si256();
    __m256i acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = zero;
    const u64_alias* x = a.patch;
    const size_t ps = a.patch_stride;
    for (int k0 = 0; k0 < a.k64; k0 += 31) {
      const int k1 = a.k64 - k0 < 31 ? a.k64 : k0 + 31;
      __m256i bytes[MR][NV];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NV; ++j) bytes[i][j] = zero;
      const uint64_t* w = a.w + static_cast<size_t>(k0) * 2 * kBlockWidth;
      for (int k = k0; k < k1; ++k, w += 2 * kBlockWidth) {
        __m256i wl[NV], wh[NV];
        for (int j = 0; j < NV; ++j) {
          wl[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 4 * j));
          wh[j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + kBlockWidth + 4 * j));
        }
        for (int i = 0; i < MR; ++i) {
          const __m256i xl = _mm256_set1_epi64x(static_cast<long long>(x[i * ps + 2 * k]));
          const __m256i xh = _mm256_set1_epi64x(static_cast<long long>(x[i * ps + 2 * k + 1]));
          for (int j = 0; j < NV; ++j) {
            const __m256i cl = _mm256_shuffle_epi8(lut, _mm256_xor_si256(xl, wl[j]));
            const __m256i ch = _mm256_shuffle_epi8(lut, _mm256_xor_si256(xh, wh[j]));
            bytes[i][j] = _mm256_add_epi8(bytes[i][j], _mm256_add_epi8(cl, ch));
          }
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NV; ++j)
          acc[i][j] = _mm256_add_epi64(acc[i][j], _mm256_sad_epu8(bytes[i][j], zero));
    }
    const __m256i kfull = _mm256_set1_epi64x(a.kfull);
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);
    for (int i = 0; i < MR; ++i) {
      int32_t* d = a.dot + i * a.dot_stride;
      for (int j = 0; j < NV; ++j) {
        const __m256i r = _mm256_sub_epi64(kfull, _mm256_add_epi64(acc[i][j], acc[i][j]));
        const __m128i r32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(r, even));
        const int rem = a.n_valid - 4 * j;
        if (rem >= 4) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 4 * j), r32);
        } else {
          alignas(16) int32_t tmp[4];
          _mm_store_si128(reinterpret_cast<__m128i*>(tmp), r32);
          for (int c = 0; c < rem; ++c) d[4 * j + c] = tmp[c];
        }
      }
    }
  }
};

bool avx2_supported(const BConv2DShape& s) {
  return cpu_features().x86_avx2 && shape_is_valid(s);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_avx2_lut_3x8 =
    internal::make_gemm_kernel<internal::Avx2LutUK<3, 2>>("bconv2d_dot_3x8__avx2_lut",
                                                          internal::avx2_supported);

}  // namespace sbnn
