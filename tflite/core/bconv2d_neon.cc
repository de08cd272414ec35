// aarch64 NEON gathered-bgemm kernel.
//   bconv2d_dot_4x8__neon  4 pixels x 8 output channels (4 Q registers of 2 channels).
// Per (pixel, 2 channels, word): EOR + CNT (bytes) + UADALP (pairwise add into 16-bit
// counters) = 3 instructions per 128 binary MACs. A 16-bit counter takes at most 16 per
// word, so the counters are widened to 64 bits every 4095 words (and at the end).
#include <arm_neon.h>

#include "bconv2d_gemm_driver.h"
#include "bconv2d_kernels.h"
#include "cpu_features.h"

namespace sbnn {
namespace internal {
namespace {

template <int kMR_, int kNV_>
struct NeonUK {
  static constexpr int kMR = kMR_, kNV = kNV_, kLanes = 2, kPatchPlanes = 1;
  static constexpr int kChunkBytes = 16384;
  static void transform_patch(uint64_t*, int, size_t, int) {}

  template <int MR, int NV>
  static void tile(const TileArgs& a) {
    constexpr int kBlockWidth = kNV * kLanes;
    constexpr int kSpan = 4095;
    uint64x2_t acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = vdupq_n_u64(0);
    const u64_alias* x = a.patch;
    const size_t ps = a.patch_stride;
    for (int k0 = 0; k0 < a.k64; k0 += kSpan) {
      const int k1 = a.k64 - k0 < kSpan ? a.k64 : k0 + kSpan;
      uint16x8_t cnt[MR][NV];
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NV; ++j) cnt[i][j] = vdupq_n_u16(0);
      const uint64_t* w = a.w + static_cast<size_t>(k0) * kBlockWidth;
      for (int k = k0; k < k1; ++k, w += kBlockWidth) {
        uint8x16_t wv[NV];
        for (int j = 0; j < NV; ++j) wv[j] = vreinterpretq_u8_u64(vld1q_u64(w + 2 * j));
        for (int i = 0; i < MR; ++i) {
          const uint8x16_t xv = vreinterpretq_u8_u64(vdupq_n_u64(x[i * ps + k]));
          for (int j = 0; j < NV; ++j)
            cnt[i][j] = vpadalq_u8(cnt[i][j], vcntq_u8(veorq_u8(xv, wv[j])));
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NV; ++j)
          acc[i][j] = vaddq_u64(acc[i][j], vpaddlq_u32(vpaddlq_u16(cnt[i][j])));
    }
    const int64x2_t kfull = vdupq_n_s64(a.kfull);
    for (int i = 0; i < MR; ++i) {
      int32_t* d = a.dot + i * a.dot_stride;
      for (int j = 0; j < NV; ++j) {
        const int64x2_t c = vreinterpretq_s64_u64(acc[i][j]);
        const int32x2_t r = vmovn_s64(vsubq_s64(kfull, vaddq_s64(c, c)));
        if (a.n_valid - 2 * j >= 2) {
          vst1_s32(d + 2 * j, r);
        } else {
          vst1_lane_s32(d + 2 * j, r, 0);
        }
      }
    }
  }
};

bool neon_supported(const BConv2DShape& s) {
  return cpu_features().arm_neon && shape_is_valid(s);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_neon_4x8 = internal::make_gemm_kernel<internal::NeonUK<4, 4>>(
    "bconv2d_dot_4x8__neon", internal::neon_supported);

}  // namespace sbnn
