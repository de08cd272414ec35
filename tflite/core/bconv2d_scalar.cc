// Scalar gathered-bgemm kernels: 2 pixels x 4 output channels per tile, one 64-bit
// XOR + popcount per (pixel, channel, word).
//   bconv2d_dot_2x4__scalar         portable (__builtin_popcountll; on x86-64 without
//                                   -mpopcnt that is a libgcc routine, on aarch64 it is
//                                   cnt + addv)
//   bconv2d_dot_2x4__scalar_popcnt  x86-64 only: the same code compiled for the POPCNT
//                                   instruction (function target attribute, checked at
//                                   run time), no vector instructions
#include "bconv2d_gemm_driver.h"
#include "bconv2d_kernels.h"
#include "cpu_features.h"

namespace sbnn {
namespace internal {
namespace {

template <int MR, int NV, int kBlockWidth>
__attribute__((always_inline)) inline void scalar_tile(const TileArgs& a) {
  uint64_t acc[MR][NV] = {};
  const u64_alias* x = a.patch;
  const size_t ps = a.patch_stride;
  for (int k = 0; k < a.k64; ++k) {
    const uint64_t* wk = a.w + static_cast<size_t>(k) * kBlockWidth;
    uint64_t wv[NV];
    for (int j = 0; j < NV; ++j) wv[j] = wk[j];
    for (int i = 0; i < MR; ++i) {
      const uint64_t xi = x[i * ps + k];
      for (int j = 0; j < NV; ++j) acc[i][j] += __builtin_popcountll(xi ^ wv[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j)
      a.dot[i * a.dot_stride + j] = a.kfull - 2 * static_cast<int32_t>(acc[i][j]);
}

struct ScalarUK {
  static constexpr int kMR = 2, kNV = 4, kLanes = 1, kPatchPlanes = 1;
  static constexpr int kChunkBytes = 16384;
  static void transform_patch(uint64_t*, int, size_t, int) {}
  template <int MR, int NV>
  static void tile(const TileArgs& a) {
    scalar_tile<MR, NV, kNV * kLanes>(a);
  }
};

bool scalar_supported(const BConv2DShape& s) { return shape_is_valid(s); }

#if defined(__x86_64__)
struct ScalarPopcntUK : ScalarUK {
  template <int MR, int NV>
  __attribute__((target("popcnt"))) static void tile(const TileArgs& a) {
    scalar_tile<MR, NV, kNV * kLanes>(a);
  }
};

bool scalar_popcnt_supported(const BConv2DShape& s) {
  return cpu_features().x86_popcnt && shape_is_valid(s);
}
#endif

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_scalar_2x4 = internal::make_gemm_kernel<internal::ScalarUK>(
    "bconv2d_dot_2x4__scalar", internal::scalar_supported);

#if defined(__x86_64__)
const BConv2DKernel kBConv2DKernel_scalar_popcnt_2x4 =
    internal::make_gemm_kernel<internal::ScalarPopcntUK>("bconv2d_dot_2x4__scalar_popcnt",
                                                         internal::scalar_popcnt_supported);
#endif

}  // namespace sbnn
