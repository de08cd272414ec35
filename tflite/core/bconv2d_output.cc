// Fused output stages (bconv2d_output.h): validity, the reference composition.
#include "bconv2d_output.h"

#include <algorithm>
#include <cstdlib>

namespace sbnn {

bool bconv2d_output_is_valid(const BConv2DShape& s, const BConv2DOutput& o) {
  if (o.out == nullptr || s.out_channels < 1) return false;
  switch (o.kind) {
    case BConv2DOutputKind::kBits:
      return o.channels == s.out_channels && o.limit != nullptr;
    case BConv2DOutputKind::kFloat:
      return o.channels == s.out_channels && o.t.m != nullptr && o.t.b != nullptr;
    case BConv2DOutputKind::kQFloat:
    case BConv2DOutputKind::kQBits:
      return s.groups == 1 && s.out_channels >= 2 && o.channels == s.out_channels - 1 &&
             o.q.a != nullptr && o.q.d != nullptr && o.q.b != nullptr &&
             (o.kind == BConv2DOutputKind::kQFloat || o.q.add == nullptr);
  }
  return false;
}

namespace internal {

void apply_output_transform(const TransformKernels& tk, const BConv2DShape& s,
                            const BConv2DOutput& o, const int32_t* dot, int64_t r0, int64_t r1) {
  const int64_t pixels = (r1 - r0) * s.out_w;
  const int64_t p0 = r0 * s.out_w;
  const int C = o.channels;
  switch (o.kind) {
    case BConv2DOutputKind::kBits:
      tk.to_bits(dot, pixels, C, o.limit,
                 static_cast<int32_t*>(o.out) + p0 * bconv2d_output_words(C));
      break;
    case BConv2DOutputKind::kFloat:
      tk.to_float(dot, pixels, C, o.t, static_cast<float*>(o.out) + p0 * C);
      break;
    case BConv2DOutputKind::kQFloat: {
      QTransformParams q = o.q;
      if (q.add != nullptr) q.add += p0 * C;
      tk.q_to_float(dot, pixels, C, q, static_cast<float*>(o.out) + p0 * C);
      break;
    }
    case BConv2DOutputKind::kQBits:
      tk.q_to_bits(dot, pixels, C, o.q,
                   static_cast<int32_t*>(o.out) + p0 * bconv2d_output_words(C));
      break;
  }
}

namespace {

bool compose(const TransformKernels& tk, const BConv2DKernel& k, const BConv2DShape& s,
             const void* prepared, const int32_t* input, const int32_t* filter,
             const BConv2DOutput& o, int row_begin, int row_end) {
  if (!bconv2d_output_is_valid(s, o)) return false;
  row_begin = std::max(row_begin, 0);
  row_end = std::min(row_end, s.batch * s.out_h);
  if (row_end <= row_begin || s.out_w <= 0) return true;
  const int64_t row_elems = int64_t{s.out_w} * s.out_channels;
  // 16 KB of dot per chunk (as the delegate's dense path: the transform reads it from L1).
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 12) / row_elems);
  // (the core is built without exceptions: plain malloc)
  int32_t* dot = static_cast<int32_t*>(std::malloc(
      sizeof(int32_t) * static_cast<size_t>(std::min<int64_t>(chunk, row_end - row_begin) * row_elems)));
  if (dot == nullptr) return false;
  for (int64_t r0 = row_begin; r0 < row_end; r0 += chunk) {
    const int64_t r1 = std::min<int64_t>(row_end, r0 + chunk);
    k.run(s, prepared, input, filter, dot - r0 * row_elems, static_cast<int>(r0),
          static_cast<int>(r1));
    internal::apply_output_transform(tk, s, o, dot, r0, r1);
  }
  std::free(dot);
  return true;
}

}  // namespace
}  // namespace internal

bool run_output_reference(const BConv2DKernel& k, const BConv2DShape& s, const void* prepared,
                          const int32_t* input, const int32_t* filter, const BConv2DOutput& o,
                          int row_begin, int row_end) {
  return internal::compose(transform_kernels_scalar(), k, s, prepared, input, filter, o,
                           row_begin, row_end);
}

bool run_bconv2d_output(const BConv2DKernel& k, const BConv2DShape& s, const void* prepared,
                        const int32_t* input, const int32_t* filter, const BConv2DOutput& o,
                        int row_begin, int row_end) {
  if (!bconv2d_output_is_valid(s, o)) return false;
  if (k.run_output != nullptr) {
    k.run_output(s, prepared, input, filter, o, row_begin, row_end);
    return true;
  }
  return internal::compose(transform_kernels(), k, s, prepared, input, filter, o, row_begin,
                           row_end);
}

}  // namespace sbnn
