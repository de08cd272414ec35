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

// The sparse kernels (same BConv2DKernel contract, prepare() builds a sparse execution
// format from the dense filter). They are NOT in the dense preference list above:
// select_bconv2d_kernel() without `force` never returns one; the per-layer choice
// between dense and sparse is made by select_bconv2d() (bconv2d_select.h), which times
// or models them on the real filter. Order: fastest first, reference last.
#if defined(__x86_64__) || defined(_M_X64)
#define SBNN_SPARSE_BCONV2D_ISA_KERNELS(X) \
  X(sparse_bitplane_avx512)                \
  X(sparse_bitplane_avx2)
#elif defined(__aarch64__)
#define SBNN_SPARSE_BCONV2D_ISA_KERNELS(X) X(sparse_bitplane_neon)
#else
#define SBNN_SPARSE_BCONV2D_ISA_KERNELS(X)
#endif

#define SBNN_SPARSE_BCONV2D_KERNELS(X) \
  SBNN_SPARSE_BCONV2D_ISA_KERNELS(X)   \
  X(sparse_bitplane_scalar)            \
  X(sparse_k01_scalar)                 \
  X(sparse_reference)

namespace sbnn {

#define SBNN_DECLARE_BCONV2D_KERNEL(id) extern const BConv2DKernel kBConv2DKernel_##id;
SBNN_BCONV2D_KERNELS(SBNN_DECLARE_BCONV2D_KERNEL)
SBNN_SPARSE_BCONV2D_KERNELS(SBNN_DECLARE_BCONV2D_KERNEL)
#undef SBNN_DECLARE_BCONV2D_KERNEL

}  // namespace sbnn
