// The kernels of the one kernel list (core/bconv2d_kernels.h) by their X-macro id, for
// the tests and benchmarks that run a single kernel (`--kernel-id ID`). CTest registers
// one test per id from the same macros (tests/CMakeLists.txt), so a kernel added to the
// list is tested and benchmarked without further registration.
#pragma once

#include <cstring>
#include <vector>

#include "bconv2d.h"
#include "bconv2d_kernels.h"

namespace sbnn {
namespace testing {

struct KernelId {
  const char* id;  // the X-macro id, e.g. "avx2_lut_3x8"
  const BConv2DKernel* kernel;
};

#define SBNN_KERNEL_ID_ENTRY(id) KernelId{#id, &kBConv2DKernel_##id},
inline const KernelId kDenseKernelIds[] = {SBNN_BCONV2D_KERNELS(SBNN_KERNEL_ID_ENTRY)};
inline const KernelId kSparseKernelIds[] = {SBNN_SPARSE_BCONV2D_KERNELS(SBNN_KERNEL_ID_ENTRY)};
#undef SBNN_KERNEL_ID_ENTRY

// The kernels of `list` (nullptr-terminated) to test: all of them when `id` is null,
// else the one whose X-macro id is `id` (in `ids`). The result is nullptr-terminated;
// it holds only the terminator when `id` names no kernel of `list`.
template <size_t N>
std::vector<const BConv2DKernel*> kernels_to_test(const BConv2DKernel* const* list,
                                                  const KernelId (&ids)[N], const char* id) {
  std::vector<const BConv2DKernel*> out;
  for (const BConv2DKernel* const* k = list; *k; ++k) {
    bool selected = id == nullptr;
    for (const KernelId& e : ids)
      selected = selected || (e.kernel == *k && std::strcmp(e.id, id) == 0);
    if (selected) out.push_back(*k);
  }
  out.push_back(nullptr);
  return out;
}

}  // namespace testing
}  // namespace sbnn
