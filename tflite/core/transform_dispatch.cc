// The one place that chooses the transform implementation (core/transform.h).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cpu_features.h"
#include "transform.h"

namespace sbnn {

extern const TransformKernels kTransformKernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const TransformKernels kTransformKernels_avx512;
extern const TransformKernels kTransformKernels_avx2;
#elif defined(__aarch64__)
extern const TransformKernels kTransformKernels_neon;
#endif

namespace {

struct Table {
  const TransformKernels* list[4] = {nullptr, nullptr, nullptr, nullptr};
  Table() {
    const CpuFeatures& f = cpu_features();
    int n = 0;
#if defined(__x86_64__) || defined(_M_X64)
    if (f.x86_avx512bw) list[n++] = &kTransformKernels_avx512;
    if (f.x86_avx2) list[n++] = &kTransformKernels_avx2;
#elif defined(__aarch64__)
    if (f.arm_neon) list[n++] = &kTransformKernels_neon;
#endif
    (void)f;
    list[n++] = &kTransformKernels_scalar;
    const char* v = std::getenv("SBNN_LOG_KERNEL");
    if (v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0)
      std::fprintf(stderr, "sbnn: transforms (output transform, quantize): %s\n", list[0]->isa);
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

const TransformKernels& transform_kernels() { return *table().list[0]; }
const TransformKernels* const* all_transform_kernels() { return table().list; }
const TransformKernels& transform_kernels_scalar() { return kTransformKernels_scalar; }

}  // namespace sbnn
