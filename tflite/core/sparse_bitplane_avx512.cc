// bconv2d_sparse_bitplane_512__avx512: the bit-plane carry-save sparse kernel on 512-bit
// vectors (512 output pixels per register), see sparse_bitplane.h.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq.
#include <immintrin.h>

#include "bconv2d_kernels.h"
#include "cpu_features.h"
#include "sparse_bitplane_driver.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindAvx512 = 14;
constexpr size_t kYBudget = 48 * 1024;

struct Avx512Impl : BitplanePortable<8> {};

bool supported(const BConv2DShape& s) {
  return cpu_features().x86_avx512_vpopcnt && shape_is_valid(s);
}

void* prepare(const BConv2DShape& s, const int32_t* filter) {
  return make_sparse_prepared(s, filter, kKindAvx512, Avx512Impl::kNW * 8, kYBudget, true);
}

void run(const BConv2DShape& s, const void* prepared, const int32_t* input,
         const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  run_bitplane<Avx512Impl>(s, prepared, input, filter, dot, row_begin, row_end, kKindAvx512,
                           kYBudget);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_bitplane_avx512 = {
    "bconv2d_sparse_bitplane_512__avx512", internal::supported, internal::prepare, internal::run,
    internal::release_sparse_prepared};

}  // namespace sbnn
