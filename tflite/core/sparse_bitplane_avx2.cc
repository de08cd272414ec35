// bconv2d_sparse_bitplane_256__avx2: the bit-plane carry-save sparse kernel on 256-bit
// vectors (256 output pixels per register), see sparse_bitplane.h.
// Compiled with -mavx2 -mpopcnt -mfma.
#include "bconv2d_kernels.h"
#include "cpu_features.h"
#include "sparse_bitplane_driver.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindAvx2 = 12;
constexpr size_t kYBudget = 48 * 1024;

struct Avx2Impl : BitplanePortable<4> {};

bool supported(const BConv2DShape& s) { return cpu_features().x86_avx2 && shape_is_valid(s); }

void* prepare(const BConv2DShape& s, const int32_t* filter) {
  return make_sparse_prepared(s, filter, kKindAvx2, Avx2Impl::kNW * 8, kYBudget, true);
}

void run(const BConv2DShape& s, const void* prepared, const int32_t* input,
         const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  run_bitplane<Avx2Impl>(s, prepared, input, filter, dot, row_begin, row_end, kKindAvx2, kYBudget);
}

void run_output(const BConv2DShape& s, const void* prepared, const int32_t* input,
                const int32_t* filter, const BConv2DOutput& out, int row_begin, int row_end) {
  run_bitplane_output<Avx2Impl>(s, prepared, input, filter, out, row_begin, row_end, kKindAvx2,
                              kYBudget);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_bitplane_avx2 = {
    "bconv2d_sparse_bitplane_256__avx2", BConv2DFamily::kSparseBitplane,
    internal::supported, internal::prepare, internal::run,
    internal::release_sparse_prepared, internal::run_output};

}  // namespace sbnn
