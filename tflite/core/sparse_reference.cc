// bconv2d_sparse__reference: the portable reference sparse kernel. prepare() builds the
// connection lists (sparse_format.h); run() computes Q(p) once per pixel and S(p, o) by
// walking o's connection list: dot = u_o * Q(p) - 2 * u_o * S(p, o). Obviously correct
// and slow (one bit read per connection and output), the oracle of the sparse kernels.
#include "bconv2d_kernels.h"
#include "bconv2d_pack.h"
#include "sparse_bitplane.h"
#include "sparse_format.h"

namespace sbnn {
namespace internal {
namespace {

constexpr int kKindReference = 1;

bool sparse_reference_supported(const BConv2DShape& s) { return shape_is_valid(s); }

void* sparse_reference_prepare(const BConv2DShape& s, const int32_t* filter) {
  return make_sparse_prepared(s, filter, kKindReference, 8, 0, false);
}

void sparse_reference_run(const BConv2DShape& s, const void* prepared, const int32_t* input,
                          const int32_t* filter, int32_t* dot, int row_begin, int row_end) {
  if (row_begin < 0) row_begin = 0;
  if (row_end > s.batch * s.out_h) row_end = s.batch * s.out_h;
  if (row_end <= row_begin || s.out_w <= 0 || !shape_is_valid(s)) return;
  const auto* sp = static_cast<const SparsePrepared*>(prepared);
  if (sp != nullptr && sp->magic == kSparsePreparedMagic && sparse_filter_matches(sp->filter, s)) {
    run_sparse_reference(s, *sp->filter, input, dot, row_begin, row_end);
    return;
  }
  if (filter == nullptr) return;
  SparseFilter* f = build_sparse_filter(s, filter);
  if (f == nullptr) {
    run_reference(s, input, filter, dot, row_begin, row_end);
    return;
  }
  run_sparse_reference(s, *f, input, dot, row_begin, row_end);
  release_sparse_filter(f);
}

}  // namespace
}  // namespace internal

const BConv2DKernel kBConv2DKernel_sparse_reference = {
    "bconv2d_sparse__reference", BConv2DFamily::kSparseReference,
    internal::sparse_reference_supported,
    internal::sparse_reference_prepare, internal::sparse_reference_run,
    internal::release_sparse_prepared};

}  // namespace sbnn
