// LceBconv2d: binary 2D convolution on bitpacked input.
//
// Inputs (LCE converter order): 0 input int32 [N, H, W, ceil(Cin/32)],
// 1 filter int32 OHWI [Cout, kh, kw, ceil(Cin/groups/32)],
// 2 post_activation_multiplier f32[Cout] (optional, default 1),
// 3 post_activation_bias f32[Cout] (optional, default 0),
// 4 output_threshold int32[Cout] (required for bitpacked output).
// Options (flexbuffer map of ints): channels_in, stride_height, stride_width,
// dilation_height_factor, dilation_width_factor, padding (0 SAME, 1 VALID),
// pad_values (0|1), fused_activation_function (0 none, 1 relu, 2 relu_n1_to_1,
// 3 relu6).
//
// A kernel from sbnn_core computes `dot` (the signed +-1 dot product, see
// core/bconv2d.h); this file turns it into the output like LCE does (a kernel with a
// fused output stage, core/bconv2d_output.h, writes the float or bitpacked output
// itself, bit-identical, from the parameters computed here):
//   K = kh * kw * Cin/groups,  x = K - dot  (= 2 * XOR-popcount accumulator)
//   float:  clamp x to the activation range (mapped into x space, intersected
//           with [-K, K]), then x * m + b with m = -mul, b = bias + K * mul
//           (m and b computed in double and stored as float, as LCE does)
//   int8:   same with m, b divided by the output scale and the zero point added
//           to b, then round-half-away-from-zero and saturate
//   bitpacked: bit o = x > 2 * threshold[o]   (LCE: accum > threshold)
// With pad_values == 0 and SAME padding, taps outside the input contribute 0 to
// dot (exact for every channel count; LCE's reference accepts only even
// channel counts there and agrees with this for those).
//
// SbnnBconv2d (the project's op, convert(flavor="sparse")) is the same op with
// input 1 a uint8 tensor holding the filter in SBF1 form; it is decoded (checked
// by tflite/format/sparse_filter.h) into the bitpacked OHWI filter once, at
// prepare, and then runs exactly like LceBconv2d.
//
// SbnnBconv2d option fused_q (optional int, default 0; 1 = on): the lowering's float
// ops of an {alpha, beta} layer (slice, mul, add) fused into the op. The filter has
// cout + 1 output channels, the last one all +1 (q: the window sum of the input signs,
// computed by the kernel like any channel and never written out); the output has cout
// channels:
//   y[c] = clamp(A[c] * dot[c] + D[c] * dot[q] + B[c])   (core/transform.h,
//          QTransformParams: float, in this order, clamp to the activation's range
//          *in output units*: relu [0, inf), relu_n1_to_1 [-1, 1], relu6 [0, 6])
// with A = input 2 (post_activation_multiplier), B = input 3 (post_activation_bias),
// D = input 5 (q_multiplier), all f32[cout] and required; input 4 (output_threshold)
// must be absent. int8 output: y / scale + zero_point, rounded and saturated;
// bitpacked (int32) output: bit c = y[c] < 0 (LceQuantize of the float y). Only for
// groups == 1.
//
// SbnnBconv2d option fused_add (optional int, default 0; 1 = on; needs fused_q = 1 and a
// float output): a residual ADD folded into the op. Input 6 is a float tensor of the
// output's shape, added after the clamp: out = y + input6 (one float addition, what
// TFLite's ADD without activation computes).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/bconv2d.h"
#include "core/bconv2d_output.h"
#include "core/bconv2d_select.h"
#include "core/transform.h"
#include "delegate/bitpack.h"
// (gcc 12 flags false "may be used uninitialized" positives inside the decoder)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "format/sparse_filter.h"
#pragma GCC diagnostic pop
#include "delegate/flexbuffer.h"
#include "delegate/ops.h"
#include "delegate/parallel.h"

namespace sbnn {
namespace {

enum Padding { kSame = 0, kValid = 1 };
enum Activation { kActNone = 0, kActRelu = 1, kActReluN1To1 = 2, kActRelu6 = 3 };

// Bounds on options: far beyond any real model, small enough that every
// product below stays in int64 and every tensor stays addressable with int.
constexpr int64_t kMaxChannels = int64_t{1} << 24;
constexpr int64_t kMaxStrideOrDilation = int64_t{1} << 16;
constexpr int64_t kMaxK = int64_t{1} << 28;
// Scratch `dot` values per chunk handed to a dense kernel: 16 KB, so the output
// transform reads them from L1 right after the kernel wrote them (the measured choice:
// docs/kernels.md, Fusion).
constexpr int64_t kDotChunkElements = 1 << 12;
// Largest dot chunk for sparse kernels (they prefer whole images per run() call).
constexpr int64_t kMaxSparseChunkElements = 1 << 20;

struct Options {
  int channels_in = 0;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;
  int padding = kSame;
  int pad_values = 0;
  int activation = kActNone;
  int fused_q = 0;    // SbnnBconv2d only (see the header comment)
  int fused_add = 0;  // SbnnBconv2d only, with fused_q
};

class Bconv2dOp : public Op {
 public:
  Bconv2dOp(int node_index, const DelegateShared* shared, bool sparse)
      : Op(sparse ? OpKind::kSbnnBconv2d : OpKind::kBconv2d, node_index, shared),
        sparse_(sparse) {}

  ~Bconv2dOp() override { release_prepared(); }

 protected:
  void parse_options(const void* data, size_t size) override {
    const IntOption options[] = {
        {"channels_in", &opt_.channels_in, 1, kMaxChannels, nullptr},
        {"stride_height", &opt_.stride_h, 1, kMaxStrideOrDilation, nullptr},
        {"stride_width", &opt_.stride_w, 1, kMaxStrideOrDilation, nullptr},
        {"dilation_height_factor", &opt_.dilation_h, 1, kMaxStrideOrDilation, nullptr},
        {"dilation_width_factor", &opt_.dilation_w, 1, kMaxStrideOrDilation, nullptr},
        {"padding", &opt_.padding, 0, 1, " (0 SAME, 1 VALID)"},
        {"pad_values", &opt_.pad_values, 0, 1, nullptr},
        {"fused_activation_function", &opt_.activation, 0, 3, nullptr},
    };
    flex::MapReader map(nullptr, 0);
    init_error_ = read_int_options(data, size, options, sizeof(options) / sizeof(options[0]), &map);
    if (!init_error_.empty()) return;
    int64_t fq = 0, fa = 0;
    if (!read_switch(map, "fused_q", &fq) || !read_switch(map, "fused_add", &fa)) return;
    if (fq == 1 && !sparse_) {
      init_error_ = "custom option 'fused_q' is an SbnnBconv2d option (LceBconv2d has none)";
      return;
    }
    if (fa == 1 && fq != 1) {
      init_error_ = "custom option 'fused_add' = 1 needs fused_q = 1 (SbnnBconv2d only)";
      return;
    }
    opt_.fused_q = static_cast<int>(fq);
    opt_.fused_add = static_cast<int>(fa);
  }

  // An optional 0/1 option (missing: 0). False with init_error_ set when it is not.
  bool read_switch(const flex::MapReader& map, const char* key, int64_t* v) {
    switch (map.get_int(key, v)) {
      case flex::Lookup::kMissing:
        *v = 0;
        return true;
      case flex::Lookup::kNotInt:
        init_error_ = std::string("custom option '") + key + "' is not an integer";
        return false;
      case flex::Lookup::kOk:
        break;
    }
    if (*v < 0 || *v > 1) {
      init_error_ = std::string("custom option '") + key + "' = " + std::to_string(*v) +
                    " is outside [0, 1]";
      return false;
    }
    return true;
  }

  // prepare: input checks, the filter, the shape and the output's size, the output
  // parameters, the kernel; every step reports its own errors (in this order).
  abi::Status do_prepare(abi::Context* ctx) override {
    fused_q_ = opt_.fused_q == 1;
    fused_add_ = opt_.fused_add == 1;
    Tensors t;
    int fd[4];  // filter [out_channels, kh, kw, words per tap]
    int sparse_channels = 0;
    int64_t n_in = 0, n_filter = 0, K = 0;
    BConv2DShape shape;
    if (check_inputs(ctx, &t, &n_in) != abi::kOk ||
        read_filter(ctx, t.filter, fd, &sparse_channels, &n_filter) != abi::kOk ||
        size_output(ctx, t.in->dims->data, fd, sparse_channels, &shape, &K) != abi::kOk ||
        check_output_params(ctx, t, shape) != abi::kOk || set_up_kernel(ctx, shape) != abi::kOk)
      return abi::kError;
    K_ = static_cast<int32_t>(K);
    set_activation_range(K);
    n_in_ = n_in;
    n_filter_ = n_filter;
    return resize(ctx, t);
  }

  // invoke: the data present, the kernel's prepared filter and the output transform's
  // parameters up to date, then the rows in chunks over the threads.
  abi::Status do_invoke(abi::Context* ctx) override {
    Tensors t;
    if (invoke_tensors(ctx, &t) != abi::kOk) return abi::kError;
    const int32_t* filter_data =
        sparse_ ? decoded_filter_.data() : static_cast<const int32_t*>(t.filter->data);
    const bool filter_constant = sparse_ || t.filter->allocation_type == abi::kMmapRo ||
                                 t.filter->allocation_type == abi::kPersistentRo;
    if (prepare_kernel(ctx, filter_data, filter_constant) != abi::kOk) return abi::kError;
    prepare_transform(t);
    return run_chunks(ctx, static_cast<const int32_t*>(t.in->data), filter_data, t.out->data,
                      t.res != nullptr ? static_cast<const float*>(t.res->data) : nullptr);
  }

 private:
  // The node's tensors; an optional one that is absent is nullptr with its flag set.
  struct Tensors {
    abi::Tensor *in = nullptr, *filter = nullptr, *mul = nullptr, *bias = nullptr;
    abi::Tensor *thr = nullptr, *qmul = nullptr, *res = nullptr, *out = nullptr;
    bool no_mul = false, no_bias = false, no_thr = false, no_qmul = true, no_res = true;
  };

  // prepare, input checks: the tensor count, which optional inputs the options need,
  // the input's type and shape. Fills *t and *n_in (the input's element count).
  abi::Status check_inputs(abi::Context* ctx, Tensors* t, int64_t* n_in) {
    const size_t max_inputs = fused_add_ ? 7 : fused_q_ ? 6 : 5;
    if (inputs_.size() < 2 || inputs_.size() > max_inputs || outputs_.size() != 1)
      return fail(ctx, "expects 2 to %zu inputs and 1 output, got %zu and %zu", max_inputs,
                  inputs_.size(), outputs_.size());
    t->in = input(ctx, 0, false);
    t->filter = input(ctx, 1, false);
    t->mul = input(ctx, 2, true, &t->no_mul);
    t->bias = input(ctx, 3, true, &t->no_bias);
    t->thr = input(ctx, 4, true, &t->no_thr);
    t->qmul = fused_q_ ? input(ctx, 5, true, &t->no_qmul) : nullptr;
    t->out = output(ctx, 0);
    if (t->in == nullptr || t->filter == nullptr || t->out == nullptr ||
        (t->mul == nullptr && !t->no_mul) || (t->bias == nullptr && !t->no_bias) ||
        (t->thr == nullptr && !t->no_thr) || (t->qmul == nullptr && !t->no_qmul))
      return abi::kError;
    if (fused_q_ && (t->no_mul || t->no_bias || t->no_qmul || !t->no_thr))
      return fail(ctx,
                  "fused_q needs inputs 2 (multiplier), 3 (bias) and 5 (q_multiplier), and no "
                  "output_threshold (input 4)");
    if (fused_add_) {
      t->res = input(ctx, 6, true, &t->no_res);
      if (t->no_res || t->res == nullptr)
        return fail(ctx, "fused_add needs input 6 (the residual)");
      if (t->out->type != abi::kFloat32)
        return fail(ctx, "fused_add needs a float32 output (got %s)", type_name(t->out->type));
      if (t->res->type != abi::kFloat32)
        return fail(ctx, "fused_add residual (input 6) type %s is not float32",
                    type_name(t->res->type));
    }
    const abi::Tensor* in = t->in;
    if (in->type != abi::kInt32) return fail(ctx, "input type %s is not int32", type_name(in->type));
    if (!checked_num_elements(in, kMaxElements, n_in) || in->dims->size != 4)
      return fail(ctx, "input must have rank 4 and a valid shape");
    for (int i = 0; i < 4; ++i)
      if (in->dims->data[i] < 1) return fail(ctx, "input dimension %d is %d", i, in->dims->data[i]);
    return abi::kOk;
  }

  // prepare, filter reading: fd = {out_channels, kh, kw, words per tap} of the bitpacked
  // OHWI filter (LceBconv2d: the tensor; SbnnBconv2d: the decoded SBF1 filter, whose
  // channel count goes to *sparse_channels), *n_filter its element count.
  abi::Status read_filter(abi::Context* ctx, const abi::Tensor* filter, int fd[4],
                          int* sparse_channels, int64_t* n_filter) {
    if (sparse_) {
      if (decode_filter(ctx, filter, fd, sparse_channels) != abi::kOk) return abi::kError;
      *n_filter = int64_t{fd[0]} * fd[1] * fd[2] * fd[3];
      return abi::kOk;
    }
    if (filter->type != abi::kInt32)
      return fail(ctx, "filter type %s is not int32", type_name(filter->type));
    if (!checked_num_elements(filter, kMaxElements, n_filter) || filter->dims->size != 4)
      return fail(ctx, "filter must have rank 4 and a valid shape");
    for (int i = 0; i < 4; ++i) {
      fd[i] = filter->dims->data[i];
      if (fd[i] < 1) return fail(ctx, "filter dimension %d is %d", i, fd[i]);
    }
    return abi::kOk;
  }

  // prepare, shape: the groups the filter's depth implies, checked against channels_in.
  abi::Status resolve_groups(abi::Context* ctx, int in_words, int filter_words, int cout,
                             int* groups) {
    const int cin = opt_.channels_in;
    if (packed_words(cin) != in_words)
      return fail(ctx,
                  "channels_in = %d packs into %d words, but the input has %d words per pixel",
                  cin, packed_words(cin), in_words);
    *groups = 1;
    if (filter_words == in_words) return abi::kOk;
    if (in_words % filter_words != 0)
      return fail(ctx, "filter has %d words per tap, which does not divide the input's %d",
                  filter_words, in_words);
    *groups = in_words / filter_words;
    if (cin % *groups != 0 || (cin / *groups) % kBitsPerWord != 0)
      return fail(ctx, "grouped conv: channels_in %d is not %d groups of a multiple of 32", cin,
                  *groups);
    if (fused_q_) return fail(ctx, "fused_q is only for groups == 1 (got %d groups)", *groups);
    if (cout % *groups != 0)
      return fail(ctx, "grouped conv: %d output channels are not divisible into %d groups", cout,
                  *groups);
    return abi::kOk;
  }

  // prepare, shape and output sizing: the kernels' BConv2DShape from the input dims `id`,
  // the filter dims `fd` and the options, with the output size and padding TFLite
  // computes (dilation included); *K = kh * kw * channels per group. Sets out_channels_.
  abi::Status size_output(abi::Context* ctx, const int* id, const int fd[4],
                          int sparse_channels, BConv2DShape* shape, int64_t* K) {
    const int in_h = id[1], in_w = id[2];
    const int fh = fd[1], fw = fd[2];
    // fused_q: the filter's last channel is q, the output has one channel less
    const int cout = fused_q_ ? fd[0] - 1 : fd[0];
    if (cout < 1) return fail(ctx, "fused_q needs a filter of at least 2 output channels");
    int groups = 1;
    if (resolve_groups(ctx, id[3], fd[3], cout, &groups) != abi::kOk) return abi::kError;
    const int64_t cin_per_group = opt_.channels_in / groups;
    if (sparse_ && cin_per_group != sparse_channels)
      return fail(ctx, "the SBF1 filter has %d channels per group, the op %lld", sparse_channels,
                  static_cast<long long>(cin_per_group));
    *K = int64_t{fh} * fw * cin_per_group;
    if (*K > kMaxK) return fail(ctx, "filter depth kh*kw*channels = %lld is too large",
                                static_cast<long long>(*K));
    const int64_t eff_h = int64_t{fh - 1} * opt_.dilation_h + 1;
    const int64_t eff_w = int64_t{fw - 1} * opt_.dilation_w + 1;
    int64_t out_h, out_w;
    if (opt_.padding == kSame) {
      out_h = (in_h + int64_t{opt_.stride_h} - 1) / opt_.stride_h;
      out_w = (in_w + int64_t{opt_.stride_w} - 1) / opt_.stride_w;
    } else {
      out_h = in_h >= eff_h ? (in_h - eff_h) / opt_.stride_h + 1 : 0;
      out_w = in_w >= eff_w ? (in_w - eff_w) / opt_.stride_w + 1 : 0;
    }
    if (out_h < 1 || out_w < 1)
      return fail(ctx, "VALID padding: the %lldx%lld (dilated) filter is larger than the %dx%d input",
                  static_cast<long long>(eff_h), static_cast<long long>(eff_w), in_h, in_w);
    const int64_t pad_h_total = std::max<int64_t>(0, (out_h - 1) * opt_.stride_h + eff_h - in_h);
    const int64_t pad_w_total = std::max<int64_t>(0, (out_w - 1) * opt_.stride_w + eff_w - in_w);
    BConv2DShape& s = *shape;
    s.batch = id[0];
    s.in_h = in_h;
    s.in_w = in_w;
    s.in_channels = opt_.channels_in;
    s.in_words = id[3];
    s.groups = groups;
    s.out_h = static_cast<int>(out_h);
    s.out_w = static_cast<int>(out_w);
    s.out_channels = fd[0];
    s.filter_h = fh;
    s.filter_w = fw;
    s.filter_words = fd[3];
    s.stride_h = opt_.stride_h;
    s.stride_w = opt_.stride_w;
    s.dilation_h = opt_.dilation_h;
    s.dilation_w = opt_.dilation_w;
    s.pad_top = opt_.padding == kSame ? static_cast<int>(pad_h_total / 2) : 0;
    s.pad_left = opt_.padding == kSame ? static_cast<int>(pad_w_total / 2) : 0;
    s.pad_values = opt_.padding == kSame ? opt_.pad_values : 1;
    out_channels_ = cout;
    return abi::kOk;
  }

  // prepare, output parameters: the output type and size, the per-channel vectors the
  // output type needs (multiplier, bias, threshold, q_multiplier), the int8 quantization.
  abi::Status check_output_params(abi::Context* ctx, const Tensors& t, const BConv2DShape& s) {
    const int cout = out_channels_;
    out_type_ = t.out->type;
    if (out_type_ != abi::kFloat32 && out_type_ != abi::kInt8 && out_type_ != abi::kInt32)
      return fail(ctx, "output type %s is not float32, int8 or int32 (bitpacked)",
                  type_name(out_type_));
    if (int64_t{s.batch} * s.out_h * s.out_w * cout > kMaxElements)
      return fail(ctx, "output is too large");
    has_mul_ = !t.no_mul;
    has_bias_ = !t.no_bias;
    if (fused_q_) {
      if (!check_vector(ctx, t.mul, abi::kFloat32, "post_activation_multiplier") ||
          !check_vector(ctx, t.bias, abi::kFloat32, "post_activation_bias") ||
          !check_vector(ctx, t.qmul, abi::kFloat32, "q_multiplier"))
        return abi::kError;
    } else if (out_type_ == abi::kInt32) {
      if (t.no_thr) return fail(ctx, "bitpacked (int32) output needs output_threshold (input 4)");
      if (!check_vector(ctx, t.thr, abi::kInt32, "output_threshold")) return abi::kError;
    } else {
      if (has_mul_ && !check_vector(ctx, t.mul, abi::kFloat32, "post_activation_multiplier"))
        return abi::kError;
      if (has_bias_ && !check_vector(ctx, t.bias, abi::kFloat32, "post_activation_bias"))
        return abi::kError;
    }
    out_scale_ = 1.0;
    out_zero_point_ = 0;
    if (out_type_ == abi::kInt8) {
      const float scale = t.out->params.scale;
      if (!(scale > 0.0f) || !std::isfinite(scale))
        return fail(ctx, "int8 output needs a positive, finite scale (got %g)", scale);
      if (t.out->params.zero_point < -128 || t.out->params.zero_point > 127)
        return fail(ctx, "int8 output zero point %d is out of range", t.out->params.zero_point);
      out_scale_ = scale;
      out_zero_point_ = t.out->params.zero_point;
    }
    return abi::kOk;
  }

  // A per-output-channel vector: `type`, shape [out_channels]. False (reported) if not.
  bool check_vector(abi::Context* ctx, const abi::Tensor* t, int type, const char* what) const {
    if (t->type != type) {
      fail(ctx, "%s type %s is not %s", what, type_name(t->type), type_name(type));
      return false;
    }
    if (t->dims == nullptr || t->dims->size != 1 || t->dims->data[0] != out_channels_) {
      fail(ctx, "%s must have shape [%d] (the output channels)", what, out_channels_);
      return false;
    }
    return true;
  }

  // The activation range (in dot units) intersected with [-K, K], mapped to x = K - dot.
  void set_activation_range(int64_t K) {
    int64_t act_min = -K, act_max = K;
    switch (opt_.activation) {
      case kActRelu:
        act_min = 0;
        break;
      case kActReluN1To1:
        act_min = -1;
        act_max = 1;
        break;
      case kActRelu6:
        act_min = 0;
        act_max = 6;
        break;
      default:
        break;
    }
    act_min = std::max(act_min, -K);
    act_max = std::min(act_max, K);
    x_min_ = static_cast<int32_t>(K - act_max);
    x_max_ = static_cast<int32_t>(K - act_min);
  }

  // prepare, kernel set-up: the kernel for this shape (forced by name, or the dense
  // default until "auto" chooses on the real filter at invoke), the dense row chunks.
  abi::Status set_up_kernel(abi::Context* ctx, const BConv2DShape& shape) {
    const char* force = shared_->kernel == "auto" ? nullptr : shared_->kernel.c_str();
    const BConv2DKernel* kernel = select_bconv2d_kernel(shape, force);
    if (kernel == nullptr || kernel->run == nullptr)
      return fail(ctx, "no binary conv kernel%s%s%s supports this shape",
                  force ? " named '" : "", force ? force : "", force ? "'" : "");
    if (kernel != kernel_ || !same_shape(shape, shape_)) release_prepared();
    kernel_ = kernel;
    selected_ = false;  // "auto" selects again at the next invoke (cached decisions)
    shape_ = shape;
    if (shared_->record_kernel != nullptr)
      shared_->record_kernel(shared_->owner, node_index_, kernel->name);
    // Row-chunked scratch for dot: one chunk per task, kDotChunkElements each.
    const int64_t row_elems = int64_t{shape.out_w} * shape.out_channels;
    rows_per_chunk_ = std::max<int64_t>(1, kDotChunkElements / row_elems);
    dense_rows_per_chunk_ = rows_per_chunk_;
    transform_ready_ = false;
    limits_for_ = nullptr;
    return abi::kOk;
  }

  // prepare, output sizing: the residual of fused_add must have the output's shape; the
  // output is resized to [batch, out_h, out_w, channels or packed words].
  abi::Status resize(abi::Context* ctx, const Tensors& t) {
    const BConv2DShape& s = shape_;
    const int out_c = out_type_ == abi::kInt32 ? packed_words(out_channels_) : out_channels_;
    n_out_packed_ = int64_t{s.batch} * s.out_h * s.out_w * out_c;
    const int out_dims[4] = {s.batch, s.out_h, s.out_w, out_c};
    if (fused_add_) {
      const abi::Tensor* res = t.res;
      if (res == nullptr || res->dims == nullptr || res->dims->size != 4 ||
          !std::equal(out_dims, out_dims + 4, res->dims->data))
        return fail(ctx, "fused_add residual (input 6) must have the output's shape %dx%dx%dx%d",
                    out_dims[0], out_dims[1], out_dims[2], out_dims[3]);
    }
    if (resize_output(ctx, t.out, out_dims, 4) != abi::kOk)
      return fail(ctx, "ResizeTensor failed for the output");
    return abi::kOk;
  }

  // invoke, input checks: the tensors again, with data of at least their prepared sizes
  // (a runtime may reallocate between prepare and invoke).
  abi::Status invoke_tensors(abi::Context* ctx, Tensors* t) {
    t->in = input(ctx, 0, false);
    t->filter = input(ctx, 1, false);
    t->mul = input(ctx, 2, true, &t->no_mul);
    t->bias = input(ctx, 3, true, &t->no_bias);
    t->thr = input(ctx, 4, true, &t->no_thr);
    t->out = output(ctx, 0);
    if (fused_q_) t->qmul = input(ctx, 5, true, &t->no_qmul);
    if (t->in == nullptr || t->filter == nullptr || t->out == nullptr) return abi::kError;
    const uint64_t vec_bytes = static_cast<uint64_t>(out_channels_) * 4;
    if (sparse_ && (t->filter->data != sbf1_source_ || t->filter->bytes != sbf1_bytes_))
      return fail(ctx, "the SBF1 filter changed after prepare (it must be a constant)");
    if (!has_bytes(t->in, static_cast<uint64_t>(n_in_) * 4) ||
        (!sparse_ && !has_bytes(t->filter, static_cast<uint64_t>(n_filter_) * 4)) ||
        !has_bytes(t->out, static_cast<uint64_t>(n_out_packed_) * abi::type_size(out_type_)))
      return fail(ctx, "tensor data is missing or smaller than its shape");
    if (fused_q_) {
      if (t->mul == nullptr || t->bias == nullptr || t->qmul == nullptr ||
          !has_bytes(t->mul, vec_bytes) || !has_bytes(t->bias, vec_bytes) ||
          !has_bytes(t->qmul, vec_bytes))
        return fail(ctx, "multiplier/bias/q_multiplier data is missing");
    } else if (out_type_ == abi::kInt32) {
      if (t->thr == nullptr || !has_bytes(t->thr, vec_bytes))
        return fail(ctx, "output_threshold data is missing");
    } else {
      if ((has_mul_ && (t->mul == nullptr || !has_bytes(t->mul, vec_bytes))) ||
          (has_bias_ && (t->bias == nullptr || !has_bytes(t->bias, vec_bytes))))
        return fail(ctx, "post_activation_multiplier/bias data is missing");
    }
    return invoke_residual(ctx, t);
  }

  // invoke, fused_add: input 6 with the output's size (else t->res stays nullptr).
  abi::Status invoke_residual(abi::Context* ctx, Tensors* t) {
    if (!fused_add_) return abi::kOk;
    t->res = input(ctx, 6, true, &t->no_res);
    if (t->res == nullptr || t->no_res || t->res->type != abi::kFloat32 ||
        !has_bytes(t->res, static_cast<uint64_t>(n_out_packed_) * 4))
      return fail(ctx, "fused_add residual (input 6) data is missing or smaller than its shape");
    return abi::kOk;
  }

  // invoke, kernel set-up: with "auto" and a constant filter, the per-layer choice
  // between the dense and the sparse kernels, timed on this shape and filter once
  // (core/bconv2d_select.h, decisions cached per shape and filter); else the chosen
  // kernel's prepared filter, made again when the filter data changed. Sparse kernels
  // run in larger row chunks than dense ones (docs/sparse_kernels.md).
  abi::Status prepare_kernel(abi::Context* ctx, const int32_t* filter_data,
                             bool filter_constant) {
    if (shared_->kernel == "auto" && filter_constant) {
      if (selected_ && prepared_for_ == filter_data) return abi::kOk;
      release_prepared();
      const int64_t sparse_rows = sparse_rows_per_chunk();
      BConv2DSelectOptions so;
      so.policy = "auto";
      so.rows_per_call = static_cast<int>(sparse_rows);
      so.dense_rows_per_call = static_cast<int>(dense_rows_per_chunk_);
      BConv2DSelection sel;
      if (!select_bconv2d(shape_, filter_data, so, &sel))
        return fail(ctx, "no binary conv kernel supports this shape (or prepare failed)");
      kernel_ = sel.kernel;
      prepared_filter_ = sel.prepared;  // released with kernel_->release
      prepared_for_ = filter_data;
      selected_ = true;
      rows_per_chunk_ = is_sparse_family(kernel_->family) ? sparse_rows : dense_rows_per_chunk_;
      if (shared_->record_kernel != nullptr)
        shared_->record_kernel(shared_->owner, node_index_, kernel_->name);
      return abi::kOk;
    }
    if (kernel_->prepare == nullptr ||
        (prepared_filter_ != nullptr && filter_constant && prepared_for_ == filter_data))
      return abi::kOk;
    release_prepared();
    prepared_filter_ = kernel_->prepare(shape_, filter_data);
    if (prepared_filter_ == nullptr)
      return fail(ctx, "kernel %s could not prepare the filter (out of memory?)", kernel_->name);
    prepared_for_ = filter_data;
    // A sparse kernel forced by name runs in the same row chunks as when "auto" picks it.
    rows_per_chunk_ =
        is_sparse_family(kernel_->family) ? sparse_rows_per_chunk() : dense_rows_per_chunk_;
    return abi::kOk;
  }

  // invoke, transform set-up: the output transform's per-channel parameters, computed
  // once for constant tensors and again on every invoke for others.
  void prepare_transform(const Tensors& t) {
    const int cout = out_channels_;
    if (fused_q_) {
      const bool params_constant = t.mul->allocation_type == abi::kMmapRo &&
                                   t.bias->allocation_type == abi::kMmapRo &&
                                   t.qmul->allocation_type == abi::kMmapRo;
      if (!transform_ready_ || !params_constant) {
        compute_q_transform(static_cast<const float*>(t.mul->data),
                            static_cast<const float*>(t.bias->data),
                            static_cast<const float*>(t.qmul->data));
        transform_ready_ = true;
      }
    } else if (out_type_ == abi::kInt32) {
      const auto* thr = static_cast<const int32_t*>(t.thr->data);
      if (limits_for_ != thr || t.thr->allocation_type != abi::kMmapRo) {
        limits_.resize(cout);
        for (int c = 0; c < cout; ++c) limits_[c] = bitpack_limit(K_, thr[c]);
        limits_for_ = thr;
      }
    } else {
      const bool params_constant =
          (!has_mul_ || t.mul->allocation_type == abi::kMmapRo) &&
          (!has_bias_ || t.bias->allocation_type == abi::kMmapRo);
      if (!transform_ready_ || !params_constant) {
        compute_transform(has_mul_ ? static_cast<const float*>(t.mul->data) : nullptr,
                          has_bias_ ? static_cast<const float*>(t.bias->data) : nullptr);
        transform_ready_ = true;
      }
    }
  }

  // invoke, chunked execution: the batch*out_h rows split over the threads, each task
  // running the kernel and the output transform chunk by chunk (Run::rows).
  abi::Status run_chunks(abi::Context* ctx, const int32_t* input, const int32_t* filter,
                         void* output, const float* residual) {
    Run run{this, input, filter, output, residual};
    // A kernel with a fused output stage (bconv2d_output.h: the sparse bit-plane
    // kernels) writes the output itself, without the int32 dot chunks.
    BConv2DOutput fused;
    if (kernel_->run_output != nullptr && fused_output(output, residual, &fused))
      run.fused = &fused;
    const int64_t rows = int64_t{shape_.batch} * shape_.out_h;
    const int threads = shared_->pool == nullptr ? 1 : shared_->pool->num_threads();
    // Enough tasks to balance, each at least one chunk of rows.
    const int64_t min_rows = threads == 1 ? rows : std::max<int64_t>(1, rows_per_chunk_);
    parallel_rows(shared_->pool, rows, min_rows,
                  [&](int64_t begin, int64_t end) { run.rows(begin, end); });
    return run.ok.load() ? abi::kOk : fail(ctx, "out of memory for the scratch buffer");
  }

  struct Run {
    Bconv2dOp* op;
    const int32_t* input;
    const int32_t* filter;
    void* output;
    const float* residual;  // fused_add: input 6, else nullptr
    const BConv2DOutput* fused = nullptr;  // the kernel writes the output (run_output)
    std::atomic<bool> ok{true};

    void rows(int64_t begin, int64_t end) {
      const BConv2DShape& s = op->shape_;
      if (fused != nullptr) {
        for (int64_t r0 = begin; r0 < end; r0 += op->rows_per_chunk_) {
          const int64_t r1 = std::min(end, r0 + op->rows_per_chunk_);
          op->kernel_->run_output(s, op->prepared_filter_, input, filter, *fused,
                                  static_cast<int>(r0), static_cast<int>(r1));
        }
        return;
      }
      const int64_t row_elems = int64_t{s.out_w} * s.out_channels;
      // Per-thread scratch, grown once and reused by later invokes.
      thread_local std::vector<int32_t> dot;
      const size_t need =
          static_cast<size_t>(std::min<int64_t>(op->rows_per_chunk_, end - begin) * row_elems);
      if (dot.size() < need) {
        try {
          dot.resize(need);
        } catch (...) {
          ok = false;
          return;
        }
      }
      for (int64_t r0 = begin; r0 < end; r0 += op->rows_per_chunk_) {
        const int64_t r1 = std::min(end, r0 + op->rows_per_chunk_);
        // The kernel writes dot for rows [r0, r1) at their place in the full
        // [batch*out_h, out_w, out_channels] array; hand it a base pointer
        // shifted so that those rows land in our chunk buffer.
        op->kernel_->run(s, op->prepared_filter_, input, filter, dot.data() - r0 * row_elems,
                         static_cast<int>(r0), static_cast<int>(r1));
        op->transform(dot.data(), r0, r1, output, residual);
      }
    }
  };

  // SbnnBconv2d: validates the SBF1 bytes and decodes them into decoded_filter_
  // (once per constant buffer). Fills fd = {out_channels, kh, kw, words per tap}.
  abi::Status decode_filter(abi::Context* ctx, const abi::Tensor* filter, int fd[4],
                            int* channels) {
    if (filter->type != abi::kUInt8)
      return fail(ctx, "SBF1 filter type %s is not uint8", type_name(filter->type));
    if (filter->dims == nullptr || filter->dims->size != 1 || filter->dims->data[0] < 0 ||
        static_cast<size_t>(filter->dims->data[0]) != filter->bytes)
      return fail(ctx, "SBF1 filter must be a 1-D uint8 tensor of its byte count");
    if (filter->data == nullptr)
      return fail(ctx, "SBF1 filter has no data at prepare (it must be a constant)");
    const auto* bytes = static_cast<const uint8_t*>(filter->data);
    char err[256] = {0};
    sbf1::Header h;
    if (!sbf1::ParseHeader(bytes, filter->bytes, &h, err, sizeof(err)))
      return fail(ctx, "%s", err);
    if (h.out_channels > (1u << 24) || h.filter_h > (1u << 16) || h.filter_w > (1u << 16) ||
        h.channels > static_cast<uint32_t>(kMaxChannels))
      return fail(ctx, "SBF1 filter shape %ux%ux%ux%u is out of range", h.out_channels,
                  h.filter_h, h.filter_w, h.channels);
    fd[0] = static_cast<int>(h.out_channels);
    fd[1] = static_cast<int>(h.filter_h);
    fd[2] = static_cast<int>(h.filter_w);
    fd[3] = packed_words(static_cast<int>(h.channels));
    *channels = static_cast<int>(h.channels);
    if (sbf1_source_ == filter->data && sbf1_bytes_ == filter->bytes && !decoded_filter_.empty())
      return abi::kOk;  // already decoded (prepare runs again on every resize)
    const uint64_t words = sbf1::PackedWords(h);
    decoded_filter_.assign(static_cast<size_t>(words), 0);
    if (!sbf1::DecodeToPacked(bytes, filter->bytes, h, decoded_filter_.data(), words, err,
                              sizeof(err))) {
      decoded_filter_.clear();
      sbf1_source_ = nullptr;
      return fail(ctx, "%s", err);
    }
    sbf1_source_ = filter->data;
    sbf1_bytes_ = filter->bytes;
    release_prepared();  // a repacked filter from other data is stale
    return abi::kOk;
  }

  static bool same_shape(const BConv2DShape& a, const BConv2DShape& b) {
    return std::memcmp(&a, &b, sizeof(BConv2DShape)) == 0;
  }

  void release_prepared() {
    if (prepared_filter_ != nullptr && kernel_ != nullptr && kernel_->release != nullptr)
      kernel_->release(prepared_filter_);
    prepared_filter_ = nullptr;
    prepared_for_ = nullptr;
    selected_ = false;
  }

  void compute_transform(const float* mul, const float* bias) {
    const int cout = out_channels_;
    m_.resize(cout);
    b_.resize(cout);
    for (int c = 0; c < cout; ++c) {
      const double pm = mul != nullptr ? static_cast<double>(mul[c]) : 1.0;
      const double pb = bias != nullptr ? static_cast<double>(bias[c]) : 0.0;
      m_[c] = static_cast<float>(-pm / out_scale_);
      b_[c] = static_cast<float>((pb + static_cast<double>(K_) * pm) / out_scale_ +
                                 static_cast<double>(out_zero_point_));
    }
  }

  // fused_q: y = A * dot + D * dot[q] + B, clamped to the activation's range, in output
  // units (int8: divided by the scale, the zero point added; double, stored as float).
  void compute_q_transform(const float* mul, const float* bias, const float* qmul) {
    const int cout = out_channels_;
    a_.resize(cout);
    d_.resize(cout);
    b_.resize(cout);
    const double zp = static_cast<double>(out_zero_point_);
    for (int c = 0; c < cout; ++c) {
      a_[c] = static_cast<float>(static_cast<double>(mul[c]) / out_scale_);
      d_[c] = static_cast<float>(static_cast<double>(qmul[c]) / out_scale_);
      b_[c] = static_cast<float>(static_cast<double>(bias[c]) / out_scale_ + zp);
    }
    const double inf = std::numeric_limits<double>::infinity();
    double lo = -inf, hi = inf;
    switch (opt_.activation) {
      case kActRelu:
        lo = 0.0;
        break;
      case kActReluN1To1:
        lo = -1.0;
        hi = 1.0;
        break;
      case kActRelu6:
        lo = 0.0;
        hi = 6.0;
        break;
      default:
        break;
    }
    q_lo_ = static_cast<float>(lo / out_scale_ + zp);
    q_hi_ = static_cast<float>(hi / out_scale_ + zp);
  }

  // The fused output stage for this invoke's output (false: the output has no fused
  // form: int8); the same values as transform().
  bool fused_output(void* output, const float* residual, BConv2DOutput* o) const {
    if (fused_q_) {
      if (out_type_ != abi::kFloat32 && out_type_ != abi::kInt32) return false;
      o->kind = out_type_ == abi::kInt32 ? BConv2DOutputKind::kQBits : BConv2DOutputKind::kQFloat;
      o->q.a = a_.data();
      o->q.d = d_.data();
      o->q.b = b_.data();
      o->q.lo = q_lo_;
      o->q.hi = q_hi_;
      o->q.add = residual;
    } else if (out_type_ == abi::kInt32) {
      o->kind = BConv2DOutputKind::kBits;
      o->limit = limits_.data();
    } else if (out_type_ == abi::kFloat32) {
      o->kind = BConv2DOutputKind::kFloat;
      o->t.K = K_;
      o->t.x_min = x_min_;
      o->t.x_max = x_max_;
      o->t.m = m_.data();
      o->t.b = b_.data();
    } else {
      return false;
    }
    o->channels = out_channels_;
    o->out = output;
    return bconv2d_output_is_valid(shape_, *o);
  }

  // dot of rows [r0, r1) -> output, by the vectorised transforms of core/transform.h
  // (bit-identical to their scalar reference; chosen once per process).
  void transform(const int32_t* dot, int64_t r0, int64_t r1, void* output,
                 const float* residual = nullptr) const {
    const int cout = out_channels_;
    const int64_t pixels = (r1 - r0) * shape_.out_w;
    const int64_t first_pixel = r0 * shape_.out_w;
    const TransformKernels& k = *transforms_;
    if (fused_q_) {
      QTransformParams q;
      q.a = a_.data();
      q.d = d_.data();
      q.b = b_.data();
      q.lo = q_lo_;
      q.hi = q_hi_;
      q.add = residual != nullptr ? residual + first_pixel * cout : nullptr;
      if (out_type_ == abi::kFloat32)
        k.q_to_float(dot, pixels, cout, q, static_cast<float*>(output) + first_pixel * cout);
      else if (out_type_ == abi::kInt8)
        k.q_to_int8(dot, pixels, cout, q, static_cast<int8_t*>(output) + first_pixel * cout);
      else
        k.q_to_bits(dot, pixels, cout, q,
                    static_cast<int32_t*>(output) + first_pixel * packed_words(cout));
      return;
    }
    if (out_type_ == abi::kInt32) {
      k.to_bits(dot, pixels, cout, limits_.data(),
                static_cast<int32_t*>(output) + first_pixel * packed_words(cout));
      return;
    }
    TransformParams p;
    p.K = K_;
    p.x_min = x_min_;
    p.x_max = x_max_;
    p.m = m_.data();
    p.b = b_.data();
    if (out_type_ == abi::kFloat32)
      k.to_float(dot, pixels, cout, p, static_cast<float*>(output) + first_pixel * cout);
    else
      k.to_int8(dot, pixels, cout, p, static_cast<int8_t*>(output) + first_pixel * cout);
  }

  Options opt_;
  const bool sparse_;
  std::vector<int32_t> decoded_filter_;  // SbnnBconv2d: the SBF1 filter, bitpacked
  const void* sbf1_source_ = nullptr;
  size_t sbf1_bytes_ = 0;
  BConv2DShape shape_;
  const BConv2DKernel* kernel_ = nullptr;
  void* prepared_filter_ = nullptr;
  const int32_t* prepared_for_ = nullptr;
  int out_type_ = abi::kNoType;
  bool has_mul_ = false, has_bias_ = false;
  double out_scale_ = 1.0;
  int32_t out_zero_point_ = 0;
  int32_t K_ = 0;
  int32_t x_min_ = 0, x_max_ = 0;
  std::vector<float> m_, b_;
  bool fused_q_ = false;
  bool fused_add_ = false;
  int out_channels_ = 0;  // output channels (fused_q: the filter's minus q)
  std::vector<float> a_, d_;  // fused_q: A and D (b_ is B)
  float q_lo_ = 0.0f, q_hi_ = 0.0f;
  bool transform_ready_ = false;
  // bitpacked output: bit = dot < limits_[c] (core/transform.h, bitpack_limit)
  std::vector<int32_t> limits_;
  const int32_t* limits_for_ = nullptr;
  const TransformKernels* transforms_ = &transform_kernels();
  // Row chunk for sparse kernels: whole images (split over the threads), at most
  // kMaxSparseChunkElements dot values, at least the dense chunk.
  int64_t sparse_rows_per_chunk() const {
    const int threads = shared_->pool == nullptr ? 1 : shared_->pool->num_threads();
    const int64_t rows = int64_t{shape_.batch} * shape_.out_h;
    const int64_t row_elems = int64_t{shape_.out_w} * shape_.out_channels;
    return std::max<int64_t>(
        dense_rows_per_chunk_,
        std::min<int64_t>({int64_t{shape_.out_h}, (rows + threads - 1) / threads,
                           std::max<int64_t>(1, kMaxSparseChunkElements / row_elems)}));
  }

  int64_t rows_per_chunk_ = 1;
  int64_t dense_rows_per_chunk_ = 1;  // rows_per_chunk_ of the dense kernels
  bool selected_ = false;             // "auto" chose kernel_ for prepared_for_
  int64_t n_in_ = 0, n_filter_ = 0, n_out_packed_ = 0;
};

}  // namespace

std::unique_ptr<Op> make_bconv2d_op(int node_index, const DelegateShared* shared, bool sparse) {
  return std::unique_ptr<Op>(new Bconv2dOp(node_index, shared, sparse));
}

}  // namespace sbnn
