// bconv2d_sparse_bitplane_64__scalar: the bit-plane carry-save sparse kernel in portable
// C++ with 64-bit words (64 output pixels per word), see sparse_bitplane.h.
#include "bconv2d_kernels.h"
#include "sparse_bitplane_driver.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindScalar = 10;
constexpr size_t kYBudget = 48 * 1024;

struct ScalarImpl : BitplanePortable<1> {};

bool supported(const BConv2DShape& s) { return shape_is_valid(s); }

void* prepare(const BConv2DShape& s, const int32_t* filter) {
  return make_sparse_prepared(s, filter, kKindScalar, ScalarImpl::kNW * 8, kYBudget, true);
}

void run(const BConv2DShape& s, const void* prepared, const int32_t* input,
         const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  run_bitplane<ScalarImpl>(s, prepared, input, filter, dot, row_begin, row_end, kKindScalar,
                           kYBudget);
}

void run_output(const BConv2DShape& s, const void* prepared, const int32_t* input,
                const int32_t* filter, const BConv2DOutput& out, int row_begin, int row_end) {
  run_bitplane_output<ScalarImpl>(s, prepared, input, filter, out, row_begin, row_end, kKindScalar,
                              kYBudget);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_bitplane_scalar = {
    "bconv2d_sparse_bitplane_64__scalar", BConv2DFamily::kSparseBitplane,
    internal::supported, internal::prepare, internal::run,
    internal::release_sparse_prepared, internal::run_output};

}  // namespace sbnn
