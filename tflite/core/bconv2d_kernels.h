// sbnn_keras native core: THE list of bconv2d kernels. Declarations, the dispatch table
// (all_bconv2d_kernels / select_bconv2d_kernel), the tests and the benchmark all come
// from this one list; to add a kernel, add one X(...) line here and define the object
// kBConv2DKernel_<id> in its ISA file (see docs/kernels.md).
//
// Order is preference: select_bconv2d_kernel() returns the first kernel whose
// `supported(shape)` is true (each kernel checks the CPU features it needs).
#pragma once

#include "bconv2d.h"

#if defined(__x86_64__) || defined(_M_X64)
#define SBNN_BCONV2D_ISA_KERNELS(X) \
  X(avx512vpopcnt_6x32)             \
  X(avx512bw_lut_4x16)              \
  X(avx2_lut_3x8)                   \
  X(scalar_popcnt_2x4)
#elif defined(__aarch64__)
#define SBNN_BCONV2D_ISA_KERNELS(X) X(neon_4x8)
#else
#define SBNN_BCONV2D_ISA_KERNELS(X)
#endif

#define SBNN_BCONV2D_KERNELS(X) \
  SBNN_BCONV2D_ISA_KERNELS(X)   \
  X(scalar_2x4)                 \
  X(reference)

namespace sbnn {

#define SBNN_DECLARE_BCONV2D_KERNEL(id) extern const BConv2DKernel kBConv2DKernel_##id;
SBNN_BCONV2D_KERNELS(SBNN_DECLARE_BCONV2D_KERNEL)
#undef SBNN_DECLARE_BCONV2D_KERNEL

}  // namespace sbnn
