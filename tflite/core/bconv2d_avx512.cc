// AVX-512 VPOPCNTDQ gathered-bgemm kernels. A ZMM register holds word k of 8 output
// channels (one 64-bit lane each); the pixel's word k is broadcast, XORed, counted with
// VPOPCNTQ and added: 3 instructions per 512 binary MACs, and the accumulators end up
// holding whole per-channel counts (no horizontal reduction).
//   bconv2d_dot_6x32__avx512vpopcnt  6 pixels x 32 channels: 24 accumulators
// (Partial blocks use the same template with fewer vectors, so few output channels cost
// no wasted lanes; why 6x32: docs/kernels.md, Tiles.)
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq.
#include <immintrin.h>

#include "bconv2d_gemm_driver.h"
#include "bconv2d_kernels.h"
#include "cpu_features.h"

namespace sbnn {
namespace internal {
namespace {

template <int kMR_, int kNV_>
struct Avx512UK {
  static constexpr int kMR = kMR_, kNV = kNV_, kLanes = 8, kPatchPlanes = 1;
  static constexpr int kChunkBytes = 24576;
  static void transform_patch(uint64_t*, int, size_t, int) {}

  template <int MR, int NV>
  static void tile(const TileArgs& a) {
    constexpr int kBlockWidth = kNV * kLanes;
    __m512i acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_si512();
    const u64_alias* x = a.patch;
    const size_t ps = a.patch_stride;
    const uint64_t* w = a.w;
    for (int k = 0; k < a.k64; ++k, w += kBlockWidth) {
      __m512i wv[NV];
      for (int j = 0; j < NV; ++j) wv[j] = _mm512_load_si512(w + 8 * j);
      for (int i = 0; i < MR; ++i) {
        const __m512i xv = _mm512_set1_epi64(static_cast<long long>(x[i * ps + k]));
        for (int j = 0; j < NV; ++j)
          acc[i][j] =
              _mm512_add_epi64(acc[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(xv, wv[j])));
      }
    }
    const __m512i kfull = _mm512_set1_epi64(a.kfull);
    for (int i = 0; i < MR; ++i) {
      int32_t* d = a.dot + i * a.dot_stride;
      for (int j = 0; j < NV; ++j) {
        const __m512i r = _mm512_sub_epi64(kfull, _mm512_add_epi64(acc[i][j], acc[i][j]));
        const int rem = a.n_valid - 8 * j;
        const __mmask8 m = rem >= 8 ? static_cast<__mmask8>(0xff)
                                    : static_cast<__mmask8>((1u << rem) - 1u);
        _mm512_mask_cvtepi64_storeu_epi32(d + 8 * j, m, r);  // VPMOVQD to memory
      }
    }
  }
};

bool avx512_supported(const BConv2DShape& s) {
  return cpu_features().x86_avx512_vpopcnt && shape_is_valid(s);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_avx512vpopcnt_6x32 =
    internal::make_gemm_kernel<internal::Avx512UK<6, 4>>("bconv2d_dot_6x32__avx512vpopcnt",
                                                         internal::avx512_supported);

}  // namespace sbnn
