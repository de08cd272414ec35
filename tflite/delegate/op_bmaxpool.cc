// LceBMaxPool2d: max pooling on bitpacked input. Bit 1 means -1, so the max of
// a window is the AND of its words. The window is clipped to the input (SAME
// padding never pads with a value), as in LCE.
// Options (flexbuffer ints): filter_height, filter_width, stride_height,
// stride_width, padding (0 SAME, 1 VALID).
#include <algorithm>
#include <cstring>

#include "delegate/flexbuffer.h"
#include "delegate/ops.h"
#include "delegate/parallel.h"

namespace sbnn {
namespace {

constexpr int64_t kMaxWindow = int64_t{1} << 16;

class BMaxPool2dOp : public Op {
 public:
  BMaxPool2dOp(int node_index, const DelegateShared* shared)
      : Op(OpKind::kBMaxPool2d, node_index, shared) {}

 protected:
  void parse_options(const void* data, size_t size) override {
    const IntOption options[] = {
        {"filter_height", &filter_h_, 1, kMaxWindow, nullptr},
        {"filter_width", &filter_w_, 1, kMaxWindow, nullptr},
        {"stride_height", &stride_h_, 1, kMaxWindow, nullptr},
        {"stride_width", &stride_w_, 1, kMaxWindow, nullptr},
        {"padding", &padding_, 0, 1, nullptr},
    };
    flex::MapReader map(nullptr, 0);
    init_error_ = read_int_options(data, size, options, sizeof(options) / sizeof(options[0]), &map);
  }

  abi::Status do_prepare(abi::Context* ctx) override {
    abi::Tensor *in = nullptr, *out = nullptr;
    if (!single_io(ctx, &in, &out)) return abi::kError;
    if (in->type != abi::kInt32) return fail(ctx, "input type %s is not int32", type_name(in->type));
    if (out->type != abi::kInt32)
      return fail(ctx, "output type %s is not int32", type_name(out->type));
    int64_t n = 0;
    if (!checked_num_elements(in, kMaxElements, &n) || in->dims->size != 4)
      return fail(ctx, "input must have rank 4 and a valid shape");
    const int* d = in->dims->data;
    for (int i = 0; i < 4; ++i)
      if (d[i] < 1) return fail(ctx, "input dimension %d is %d", i, d[i]);
    batch_ = d[0];
    in_h_ = d[1];
    in_w_ = d[2];
    words_ = d[3];
    int64_t oh, ow;
    if (padding_ == 0) {
      oh = (in_h_ + int64_t{stride_h_} - 1) / stride_h_;
      ow = (in_w_ + int64_t{stride_w_} - 1) / stride_w_;
    } else {
      oh = in_h_ >= filter_h_ ? (in_h_ - filter_h_) / stride_h_ + 1 : 0;
      ow = in_w_ >= filter_w_ ? (in_w_ - filter_w_) / stride_w_ + 1 : 0;
    }
    if (oh < 1 || ow < 1)
      return fail(ctx, "VALID padding: the %dx%d window is larger than the %dx%d input", filter_h_,
                  filter_w_, in_h_, in_w_);
    out_h_ = static_cast<int>(oh);
    out_w_ = static_cast<int>(ow);
    pad_top_ = static_cast<int>(std::max<int64_t>(0, (oh - 1) * stride_h_ + filter_h_ - in_h_) / 2);
    pad_left_ = static_cast<int>(std::max<int64_t>(0, (ow - 1) * stride_w_ + filter_w_ - in_w_) / 2);
    n_in_ = n;
    const int dims[4] = {batch_, out_h_, out_w_, words_};
    return resize_output(ctx, out, dims, 4);
  }

  abi::Status do_invoke(abi::Context* ctx) override {
    abi::Tensor *in = nullptr, *out = nullptr;
    if (!single_io(ctx, &in, &out)) return abi::kError;
    const uint64_t n_out = static_cast<uint64_t>(batch_) * out_h_ * out_w_ * words_;
    if (!has_bytes(in, static_cast<uint64_t>(n_in_) * 4) || !has_bytes(out, n_out * 4))
      return fail(ctx, "tensor data is missing or smaller than its shape");
    const int32_t* src = static_cast<const int32_t*>(in->data);
    int32_t* dst = static_cast<int32_t*>(out->data);
    const int64_t rows = int64_t{batch_} * out_h_;
    parallel_rows(shared_->pool, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int b = static_cast<int>(r / out_h_);
        const int oy = static_cast<int>(r % out_h_);
        const int y0 = std::max(0, oy * stride_h_ - pad_top_);
        const int y1 = std::min(in_h_, oy * stride_h_ - pad_top_ + filter_h_);
        for (int ox = 0; ox < out_w_; ++ox) {
          const int x0 = std::max(0, ox * stride_w_ - pad_left_);
          const int x1 = std::min(in_w_, ox * stride_w_ - pad_left_ + filter_w_);
          int32_t* o = dst + ((r * out_w_) + ox) * words_;
          for (int w = 0; w < words_; ++w) o[w] = -1;  // all ones
          for (int y = y0; y < y1; ++y) {
            for (int x = x0; x < x1; ++x) {
              const int32_t* p = src + ((int64_t{b} * in_h_ + y) * in_w_ + x) * words_;
              for (int w = 0; w < words_; ++w) o[w] &= p[w];
            }
          }
        }
      }
    });
    return abi::kOk;
  }

 private:
  int filter_h_ = 0, filter_w_ = 0, stride_h_ = 1, stride_w_ = 1, padding_ = 0;
  int batch_ = 0, in_h_ = 0, in_w_ = 0, words_ = 0;
  int out_h_ = 0, out_w_ = 0, pad_top_ = 0, pad_left_ = 0;
  int64_t n_in_ = 0;
};

}  // namespace

std::unique_ptr<Op> make_bmaxpool2d_op(int node_index, const DelegateShared* shared) {
  return std::unique_ptr<Op>(new BMaxPool2dOp(node_index, shared));
}

}  // namespace sbnn
