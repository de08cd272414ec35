// LceQuantize (float / int8 / bool -> bitpacked int32) and LceDequantize
// (bitpacked int32 -> float / int8 / bool), both along the last axis.
//
// Semantics (LCE's quantization kernels):
//   quantize   float: bit = x < 0 (so -0.0 and +0.0 give +1, NaN gives +1)
//              int8:  bit = x < zero_point of the input tensor
//              bool:  bit = !x (false is -1, true is +1)
//   dequantize float: +1.0 / -1.0
//              int8:  zero_point +- round(1 / scale), saturated to int8
//              bool:  bit 0 -> true, bit 1 -> false
#include <cmath>
#include <cstring>

#include "core/transform.h"
#include "delegate/bitpack.h"
#include "delegate/ops.h"
#include "delegate/parallel.h"

namespace sbnn {
namespace {

// Rows are cheap: hand at least this many elements to a task (dequantize, scalar).
constexpr int64_t kMinElementsPerTask = 1 << 14;
// The vectorised packers take ~0.1 ns per element (AVX-512), so waking a worker (a few
// microseconds) only pays from ~0.5 M elements per task: below that quantize runs on
// the calling thread (all of ResNet-18's LceQuantize ops at 224x224).
constexpr int64_t kMinPackElementsPerTask = 1 << 19;

class QuantizeOp : public Op {
 public:
  QuantizeOp(int node_index, const DelegateShared* shared)
      : Op(OpKind::kQuantize, node_index, shared) {}

 protected:
  void parse_options(const void*, size_t) override {}  // no options

  abi::Status do_prepare(abi::Context* ctx) override {
    abi::Tensor *in = nullptr, *out = nullptr;
    if (!single_io(ctx, &in, &out)) return abi::kError;
    if (in->type != abi::kFloat32 && in->type != abi::kInt8 && in->type != abi::kBool)
      return fail(ctx, "input type %s is not float32, int8 or bool", type_name(in->type));
    if (out->type != abi::kInt32)
      return fail(ctx, "output type %s is not int32 (bitpacked)", type_name(out->type));
    int64_t n = 0;
    if (!checked_num_elements(in, kMaxElements, &n))
      return fail(ctx, "input shape is missing, negative or too large");
    const int rank = in->dims->size;
    if (rank < 1 || rank > 8) return fail(ctx, "input rank %d is not in [1, 8]", rank);
    int dims[8];
    for (int i = 0; i < rank; ++i) dims[i] = in->dims->data[i];
    channels_ = dims[rank - 1];
    rows_ = channels_ == 0 ? 0 : n / channels_;
    dims[rank - 1] = packed_words(channels_);
    return resize_output(ctx, out, dims, rank);
  }

  abi::Status do_invoke(abi::Context* ctx) override {
    abi::Tensor *in = nullptr, *out = nullptr;
    if (!single_io(ctx, &in, &out)) return abi::kError;
    const int words = packed_words(channels_);
    const uint64_t n_in = static_cast<uint64_t>(rows_) * channels_;
    if (!has_bytes(in, n_in * abi::type_size(in->type)) ||
        !has_bytes(out, static_cast<uint64_t>(rows_) * words * 4))
      return fail(ctx, "tensor data is missing or smaller than its shape");
    const int c = channels_;
    int32_t* dst = static_cast<int32_t*>(out->data);
    const int64_t min_rows = std::max<int64_t>(1, kMinPackElementsPerTask / std::max(1, c));
    // Vectorised packers of core/transform.h (bit-identical to their scalar reference).
    const TransformKernels& k = transform_kernels();
    switch (in->type) {
      case abi::kFloat32: {
        const float* src = static_cast<const float*>(in->data);
        parallel_rows(shared_->pool, rows_, min_rows, [&](int64_t b, int64_t e) {
          k.pack_float(src + b * c, e - b, c, dst + b * words);
        });
        break;
      }
      case abi::kInt8: {
        const int8_t* src = static_cast<const int8_t*>(in->data);
        const int32_t zp = in->params.zero_point;
        parallel_rows(shared_->pool, rows_, min_rows, [&](int64_t b, int64_t e) {
          k.pack_int8(src + b * c, e - b, c, zp, dst + b * words);
        });
        break;
      }
      case abi::kBool: {
        // Read bools as bytes: any non-zero byte is true.
        const uint8_t* src = static_cast<const uint8_t*>(in->data);
        parallel_rows(shared_->pool, rows_, min_rows, [&](int64_t b, int64_t e) {
          k.pack_bool(src + b * c, e - b, c, dst + b * words);
        });
        break;
      }
      default:
        return fail(ctx, "input type changed after prepare");
    }
    return abi::kOk;
  }

 private:
  int channels_ = 0;
  int64_t rows_ = 0;
};

class DequantizeOp : public Op {
 public:
  DequantizeOp(int node_index, const DelegateShared* shared)
      : Op(OpKind::kDequantize, node_index, shared) {}

 protected:
  void parse_options(const void*, size_t) override {}

  abi::Status do_prepare(abi::Context* ctx) override {
    abi::Tensor *in = nullptr, *out = nullptr;
    if (!single_io(ctx, &in, &out)) return abi::kError;
    if (in->type != abi::kInt32)
      return fail(ctx, "input type %s is not int32 (bitpacked)", type_name(in->type));
    if (out->type != abi::kFloat32 && out->type != abi::kInt8 && out->type != abi::kBool)
      return fail(ctx, "output type %s is not float32, int8 or bool", type_name(out->type));
    int64_t n = 0;
    if (!checked_num_elements(in, kMaxElements, &n))
      return fail(ctx, "input shape is missing, negative or too large");
    const int rank = in->dims->size;
    if (rank < 1 || rank > 8) return fail(ctx, "input rank %d is not in [1, 8]", rank);
    // The unpacked channel count is only known from the output's last dim.
    if (out->dims == nullptr || out->dims->size != rank)
      return fail(ctx, "output rank %d does not match input rank %d",
                  out->dims == nullptr ? -1 : out->dims->size, rank);
    const int channels = out->dims->data[rank - 1];
    const int words = in->dims->data[rank - 1];
    if (channels < 0 || packed_words(channels) != words)
      return fail(ctx, "output has %d channels, which packs into %d words, but the input has %d",
                  channels, channels < 0 ? -1 : packed_words(channels), words);
    int dims[8];
    for (int i = 0; i < rank; ++i) dims[i] = in->dims->data[i];
    dims[rank - 1] = channels;
    int64_t n_out = 1;
    for (int i = 0; i < rank; ++i) {
      n_out *= dims[i];
      if (n_out > kMaxElements) return fail(ctx, "output shape is too large");
    }
    channels_ = channels;
    rows_ = words == 0 ? 0 : n / words;
    if (out->type == abi::kInt8) {
      const float scale = out->params.scale;
      if (!(scale > 0.0f) || !std::isfinite(scale))
        return fail(ctx, "int8 output needs a positive, finite scale (got %g)", scale);
      const int32_t zp = out->params.zero_point;
      if (zp < -128 || zp > 127) return fail(ctx, "int8 output zero point %d is out of range", zp);
      // offset = round(1 / scale), computed in float like LCE, kept in range.
      const double offset = std::round(static_cast<double>(1.0f / scale));
      const double hi = std::min(127.0, zp + offset);
      const double lo = std::max(-128.0, zp - offset);
      zero_bit_i8_ = static_cast<int8_t>(hi);
      one_bit_i8_ = static_cast<int8_t>(lo);
    }
    return resize_output(ctx, out, dims, rank);
  }

  abi::Status do_invoke(abi::Context* ctx) override {
    abi::Tensor *in = nullptr, *out = nullptr;
    if (!single_io(ctx, &in, &out)) return abi::kError;
    const int c = channels_;
    const int words = packed_words(c);
    const uint64_t n_out = static_cast<uint64_t>(rows_) * c;
    if (!has_bytes(in, static_cast<uint64_t>(rows_) * words * 4) ||
        !has_bytes(out, n_out * abi::type_size(out->type)))
      return fail(ctx, "tensor data is missing or smaller than its shape");
    const int32_t* src = static_cast<const int32_t*>(in->data);
    const int64_t min_rows = std::max<int64_t>(1, kMinElementsPerTask / std::max(1, c));
    switch (out->type) {
      case abi::kFloat32: {
        float* dst = static_cast<float*>(out->data);
        parallel_rows(shared_->pool, rows_, min_rows, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) unpack_row(src + r * words, c, dst + r * c, 1.0f, -1.0f);
        });
        break;
      }
      case abi::kInt8: {
        int8_t* dst = static_cast<int8_t*>(out->data);
        const int8_t zero_bit = zero_bit_i8_, one_bit = one_bit_i8_;
        parallel_rows(shared_->pool, rows_, min_rows, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r)
            unpack_row(src + r * words, c, dst + r * c, zero_bit, one_bit);
        });
        break;
      }
      case abi::kBool: {
        // Write bools as bytes 1 / 0.
        uint8_t* dst = static_cast<uint8_t*>(out->data);
        parallel_rows(shared_->pool, rows_, min_rows, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r)
            unpack_row<uint8_t>(src + r * words, c, dst + r * c, 1, 0);
        });
        break;
      }
      default:
        return fail(ctx, "output type changed after prepare");
    }
    return abi::kOk;
  }

 private:
  int channels_ = 0;
  int64_t rows_ = 0;
  int8_t zero_bit_i8_ = 0;
  int8_t one_bit_i8_ = 0;
};

}  // namespace

std::unique_ptr<Op> make_quantize_op(int node_index, const DelegateShared* shared) {
  return std::unique_ptr<Op>(new QuantizeOp(node_index, shared));
}

std::unique_ptr<Op> make_dequantize_op(int node_index, const DelegateShared* shared) {
  return std::unique_ptr<Op>(new DequantizeOp(node_index, shared));
}

}  // namespace sbnn
