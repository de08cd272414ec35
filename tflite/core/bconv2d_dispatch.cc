// Kernel table and run-time dispatch for bconv2d (the functions declared in bconv2d.h).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bconv2d.h"
#include "bconv2d_kernels.h"
#include "bconv2d_select.h"
#include "cpu_features.h"

namespace sbnn {
namespace {

#define SBNN_KERNEL_ADDRESS(id) &kBConv2DKernel_##id,
const BConv2DKernel* const kKernels[] = {SBNN_BCONV2D_KERNELS(SBNN_KERNEL_ADDRESS) nullptr};
#undef SBNN_KERNEL_ADDRESS

bool log_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("SBNN_LOG_KERNEL");
    return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

// The ISA part of a kernel name: what follows "__" ("avx2_lut", "reference", ...).
const char* isa_part(const char* name) {
  const char* p = std::strstr(name, "__");
  return p ? p + 2 : name;
}

// force matches a kernel by full name, or by the start of its ISA part
// ("reference", "scalar", "scalar_popcnt", "avx2", "avx512bw", "avx512vpopcnt", "neon").
// Sparse kernels (bconv2d_select.h) are found by their full name only.
const BConv2DKernel* find_forced(const BConv2DShape& shape, const char* force) {
  for (const BConv2DKernel* const* k = kKernels; *k; ++k)
    if (std::strcmp((*k)->name, force) == 0) return (*k)->supported(shape) ? *k : nullptr;
  for (const BConv2DKernel* const* k = all_sparse_bconv2d_kernels(); *k; ++k)
    if (std::strcmp((*k)->name, force) == 0) return (*k)->supported(shape) ? *k : nullptr;
  for (const BConv2DKernel* const* k = kKernels; *k; ++k)
    if (std::strcmp(isa_part((*k)->name), force) == 0 && (*k)->supported(shape)) return *k;
  const size_t n = std::strlen(force);
  for (const BConv2DKernel* const* k = kKernels; *k; ++k)
    if (std::strncmp(isa_part((*k)->name), force, n) == 0 && (*k)->supported(shape)) return *k;
  return nullptr;
}

}  // namespace

const BConv2DKernel* const* all_bconv2d_kernels() { return kKernels; }

const BConv2DKernel* select_bconv2d_kernel(const BConv2DShape& shape, const char* force) {
  const BConv2DKernel* chosen = nullptr;
  if (force != nullptr && force[0] != '\0') {
    chosen = find_forced(shape, force);
  } else {
    for (const BConv2DKernel* const* k = kKernels; *k && !chosen; ++k)
      if ((*k)->supported(shape)) chosen = *k;
  }
  if (log_enabled()) {
    const CpuFeatures& f = cpu_features();
    std::fprintf(stderr,
                 "sbnn: bconv2d %dx%dx%dx%d -> %d, filter %dx%d, stride %d,%d, dilation %d,%d, "
                 "groups %d, pad %d,%d (values %d)%s%s: %s [cpu:%s%s%s%s%s]\n",
                 shape.batch, shape.in_h, shape.in_w, shape.in_channels, shape.out_channels,
                 shape.filter_h, shape.filter_w, shape.stride_h, shape.stride_w,
                 shape.dilation_h, shape.dilation_w, shape.groups, shape.pad_top,
                 shape.pad_left, shape.pad_values, force ? ", forced " : "", force ? force : "",
                 chosen ? chosen->name : "(none)", f.x86_popcnt ? " popcnt" : "",
                 f.x86_avx2 ? " avx2" : "", f.x86_avx512bw ? " avx512bw" : "",
                 f.x86_avx512_vpopcnt ? " avx512vpopcntdq" : "", f.arm_neon ? " neon" : "");
  }
  return chosen;
}

}  // namespace sbnn
