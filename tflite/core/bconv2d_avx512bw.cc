// AVX-512BW gathered-bgemm kernel with a nibble-LUT popcount (VPSHUFB on ZMM), for
// AVX-512 CPUs without VPOPCNTDQ (Skylake-SP / Cascade Lake class).
//   bconv2d_dot_4x16__avx512bw_lut  4 pixels x 16 output channels (2 ZMM of 8 channels).
// Same scheme as bconv2d_dot_3x8__avx2_lut (nibble-split operands, 2 XOR + 2 VPSHUFB +
// 2 byte ADD per 512 binary MACs, VPSADBW folding every 31 words) at twice the width.
// Compiled with -mavx512f -mavx512bw -mavx512vl (no VPOPCNTDQ in this file).
#include <immintrin.h>

#include "bconv2d_gemm_driver.h"
#include "bconv2d_kernels.h"
#include "cpu_features.h"

namespace sbnn {
namespace internal {
namespace {

constexpr uint64_t kLowNibbles = 0x0f0f0f0f0f0f0f0full;

// popcount of a nibble, repeated in each 128-bit lane (VPSHUFB looks up within lanes)
alignas(64) const uint8_t kNibbleCount[64] = {
    0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
    0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};

template <int kMR_, int kNV_>
struct Avx512BwLutUK {
  static constexpr int kMR = kMR_, kNV = kNV_, kLanes = 8, kPatchPlanes = 2;
  static constexpr int kChunkBytes = 24576;

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
    const __m512i lut = _mm512_load_si512(kNibbleCount);
    const __m512i zero = _mm512_setzero_si512();
    __m512i acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = zero;
    const u64_alias* x = a.patch;
    const size_t ps = a.patch_stride;
    for (int k0 = 0; k0 < a.k64; k0 += 31) {
      const int k1 = a.k64 - k0 < 31 ? a.k64 : k0 + 31;
      __m512i bytes[MR][NV];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NV; ++j) bytes[i][j] = zero;
      const uint64_t* w = a.w + static_cast<size_t>(k0) * 2 * kBlockWidth;
      for (int k = k0; k < k1; ++k, w += 2 * kBlockWidth) {
        __m512i wl[NV], wh[NV];
        for (int j = 0; j < NV; ++j) {
          wl[j] = _mm512_load_si512(w + 8 * j);
          wh[j] = _mm512_load_si512(w + kBlockWidth + 8 * j);
        }
        for (int i = 0; i < MR; ++i) {
          const __m512i xl = _mm512_set1_epi64(static_cast<long long>(x[i * ps + 2 * k]));
          const __m512i xh = _mm512_set1_epi64(static_cast<long long>(x[i * ps + 2 * k + 1]));
          for (int j = 0; j < NV; ++j) {
            const __m512i cl = _mm512_shuffle_epi8(lut, _mm512_xor_si512(xl, wl[j]));
            const __m512i ch = _mm512_shuffle_epi8(lut, _mm512_xor_si512(xh, wh[j]));
            bytes[i][j] = _mm512_add_epi8(bytes[i][j], _mm512_add_epi8(cl, ch));
          }
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NV; ++j)
          acc[i][j] = _mm512_add_epi64(acc[i][j], _mm512_sad_epu8(bytes[i][j], zero));
    }
    const __m512i kfull = _mm512_set1_epi64(a.kfull);
    for (int i = 0; i < MR; ++i) {
      int32_t* d = a.dot + i * a.dot_stride;
      for (int j = 0; j < NV; ++j) {
        const __m512i r = _mm512_sub_epi64(kfull, _mm512_add_epi64(acc[i][j], acc[i][j]));
        const int rem = a.n_valid - 8 * j;
        const __mmask8 m = rem >= 8 ? static_cast<__mmask8>(0xff)
                                    : static_cast<__mmask8>((1u << rem) - 1u);
        _mm512_mask_cvtepi64_storeu_epi32(d + 8 * j, m, r);
      }
    }
  }
};

bool avx512bw_supported(const BConv2DShape& s) {
  return cpu_features().x86_avx512bw && shape_is_valid(s);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_avx512bw_lut_4x16 =
    internal::make_gemm_kernel<internal::Avx512BwLutUK<4, 2>>("bconv2d_dot_4x16__avx512bw_lut",
                                                              internal::avx512bw_supported);

}  // namespace sbnn
