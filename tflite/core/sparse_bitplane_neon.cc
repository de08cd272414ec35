// bconv2d_sparse_bitplane_128__neon: the bit-plane carry-save sparse kernel on 128-bit
// Advanced SIMD vectors (128 output pixels per register), see sparse_bitplane.h.
#include "bconv2d_kernels.h"
#include "cpu_features.h"
#include "sparse_bitplane_driver.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindNeon = 13;
constexpr size_t kYBudget = 48 * 1024;

struct NeonImpl : BitplanePortable<2> {};

bool supported(const BConv2DShape& s) { return cpu_features().arm_neon && shape_is_valid(s); }

void* prepare(const BConv2DShape& s, const int32_t* filter) {
  return make_sparse_prepared(s, filter, kKindNeon, NeonImpl::kNW * 8, kYBudget, true);
}

void run(const BConv2DShape& s, const void* prepared, const int32_t* input,
         const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  run_bitplane<NeonImpl>(s, prepared, input, filter, dot, row_begin, row_end, kKindNeon, kYBudget);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_bitplane_neon = {
    "bconv2d_sparse_bitplane_128__neon", BConv2DFamily::kSparseBitplane,
    internal::supported, internal::prepare, internal::run,
    internal::release_sparse_prepared};

}  // namespace sbnn
