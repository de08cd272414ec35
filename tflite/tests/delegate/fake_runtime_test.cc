// End-to-end test of the delegate without TensorFlow: a minimal stand-in for the
// TFLite runtime (the few TfLiteContext callbacks the delegate uses, tensors,
// nodes, delegate partitioning, ResizeTensor) runs small LCE graphs through the
// delegate, and the outputs are compared with a naive float computation on
// sign(x) and +-1 weights. It runs wherever the library builds, e.g. under
// qemu-aarch64 for the NEON kernels, and under SBNN_SANITIZE=ON.
//
// Graphs:  x(float) -> LceQuantize -> LceBconv2d -> float / int8 / bitpacked
//          x(float) -> LceQuantize -> LceBMaxPool2d -> LceDequantize -> float
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "abi/tflite_abi.h"
#include "sbnn_delegate.h"

namespace {

using namespace sbnn::abi;

int g_failures = 0;
int g_checks = 0;
int g_conv_runs = 0;         // conv cases that ran and were compared
int g_conv_unsupported = 0;  // forced kernel that does not support the shape / CPU

#define EXPECT(cond, ...)                                            \
  do {                                                               \
    ++g_checks;                                                      \
    if (!(cond)) {                                                   \
      ++g_failures;                                                  \
      std::fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                             \
      std::fprintf(stderr, "\n");                                    \
    }                                                                \
  } while (0)

IntArray* new_int_array(const std::vector<int>& v) {
  auto* a = static_cast<IntArray*>(std::malloc(sizeof(int) * (1 + v.size())));
  a->size = static_cast<int>(v.size());
  for (size_t i = 0; i < v.size(); ++i) a->data[i] = v[i];
  return a;
}

// ---- a tiny flexbuffer map writer (ints only, every width 4 bytes) -----------

std::vector<uint8_t> flex_map(const std::map<std::string, int>& entries) {
  std::vector<uint8_t> b;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  std::vector<size_t> key_at;
  for (const auto& e : entries) {  // std::map: keys sorted, as flexbuffers requires
    key_at.push_back(b.size());
    b.insert(b.end(), e.first.begin(), e.first.end());
    b.push_back(0);
  }
  while (b.size() % 4) b.push_back(0);
  put32(static_cast<uint32_t>(entries.size()));  // key vector size
  const size_t keys = b.size();
  for (size_t i = 0; i < key_at.size(); ++i) put32(static_cast<uint32_t>(b.size() - key_at[i]));
  const size_t keys_offset_at = b.size();
  put32(static_cast<uint32_t>(keys_offset_at - keys));  // offset back to the keys
  put32(4);                                              // key vector byte width
  put32(static_cast<uint32_t>(entries.size()));          // map size
  const size_t values = b.size();
  for (const auto& e : entries) put32(static_cast<uint32_t>(e.second));
  for (size_t i = 0; i < entries.size(); ++i) b.push_back((1 << 2) | 2);  // INT, width 4
  const size_t root = b.size();
  put32(static_cast<uint32_t>(root - values));
  b.push_back((9 << 2) | 2);  // MAP with 4-byte slots
  b.push_back(4);             // root width
  return b;
}

// ---- the fake runtime -------------------------------------------------------

void report_error(Context* c, const char* fmt, ...);

struct FakeRuntime {
  Context ctx;  // first member: callbacks cast Context* back to FakeRuntime*
  std::vector<Tensor> tensor_array;
  std::vector<std::vector<uint8_t>> storage;
  struct NodeRec {
    Node node;
    Registration reg;
    std::vector<uint8_t> options;
  };
  std::deque<NodeRec> nodes;
  std::vector<int> plan;
  IntArray* plan_array = nullptr;
  std::string errors;
  Delegate* delegate = nullptr;

  FakeRuntime() {
    std::memset(&ctx, 0, sizeof(ctx));
    ctx.GetExecutionPlan = [](Context* c, IntArray** out) {
      auto* rt = reinterpret_cast<FakeRuntime*>(c);
      std::free(rt->plan_array);
      rt->plan_array = new_int_array(rt->plan);
      *out = rt->plan_array;
      return kOk;
    };
    ctx.GetNodeAndRegistration = [](Context* c, int i, Node** n, Registration** r) {
      auto* rt = reinterpret_cast<FakeRuntime*>(c);
      if (i < 0 || i >= static_cast<int>(rt->nodes.size())) return kError;
      *n = &rt->nodes[i].node;
      *r = &rt->nodes[i].reg;
      return kOk;
    };
    ctx.ResizeTensor = [](Context* c, Tensor* t, IntArray* dims) {
      auto* rt = reinterpret_cast<FakeRuntime*>(c);
      std::free(t->dims);
      t->dims = dims;
      size_t n = type_size(t->type);
      for (int i = 0; i < dims->size; ++i) n *= static_cast<size_t>(dims->data[i]);
      t->bytes = n;
      const size_t idx = static_cast<size_t>(t - rt->ctx.tensors);
      rt->storage[idx].assign(n, 0xAB);  // garbage: every output byte must be written
      t->data = n ? rt->storage[idx].data() : nullptr;
      return kOk;
    };
    ctx.ReportError = report_error;
    ctx.ReplaceNodeSubsetsWithDelegateKernels = [](Context* c, Registration reg,
                                                   const IntArray* replace, Delegate* d) {
      auto* rt = reinterpret_cast<FakeRuntime*>(c);
      if (replace->size != 1) return kError;
      const int original = replace->data[0];
      NodeRec rec;
      std::memset(&rec.node, 0, sizeof(rec.node));
      rec.reg = reg;
      rec.node.inputs = new_int_array({});
      rec.node.outputs = new_int_array({});
      rt->nodes.push_back(rec);
      const int index = static_cast<int>(rt->nodes.size()) - 1;
      DelegateParams params{d, new_int_array({original}), new_int_array({}), new_int_array({})};
      rt->nodes[index].node.user_data =
          reg.init(c, reinterpret_cast<const char*>(&params), 0);
      std::free(params.nodes_to_replace);
      std::free(params.input_tensors);
      std::free(params.output_tensors);
      for (int& p : rt->plan)
        if (p == original) p = index;
      return kOk;
    };
  }

  ~FakeRuntime() {
    for (auto& n : nodes) {
      if (n.reg.free != nullptr && n.node.user_data != nullptr) n.reg.free(&ctx, n.node.user_data);
      std::free(n.node.inputs);
      std::free(n.node.outputs);
    }
    for (auto& t : tensor_array) std::free(t.dims);
    std::free(plan_array);
    if (delegate != nullptr) sbnn_delegate_delete(reinterpret_cast<TfLiteDelegate*>(delegate));
  }

  // Tensors must all be added before finalize().
  int add_tensor(Type type, std::vector<int> dims, const void* constant = nullptr,
                 float scale = 0.0f, int zero_point = 0) {
    Tensor t;
    std::memset(&t, 0, sizeof(t));
    t.type = type;
    t.dims = new_int_array(dims);
    size_t n = type_size(type);
    for (int d : dims) n *= static_cast<size_t>(d);
    t.bytes = n;
    t.params.scale = scale;
    t.params.zero_point = zero_point;
    t.allocation_type = constant ? kMmapRo : kArenaRw;
    tensor_array.push_back(t);
    storage.emplace_back(n);
    if (constant) std::memcpy(storage.back().data(), constant, n);
    return static_cast<int>(tensor_array.size()) - 1;
  }

  void finalize() {
    ctx.tensors = tensor_array.data();
    ctx.tensors_size = tensor_array.size();
    for (size_t i = 0; i < tensor_array.size(); ++i)
      tensor_array[i].data = storage[i].empty() ? nullptr : storage[i].data();
  }

  void add_custom_node(const char* name, std::vector<int> ins, std::vector<int> outs,
                       std::vector<uint8_t> options = {}) {
    NodeRec rec;
    std::memset(&rec.node, 0, sizeof(rec.node));
    std::memset(&rec.reg, 0, sizeof(rec.reg));
    rec.reg.builtin_code = kBuiltinCustom;
    rec.reg.custom_name = name;
    rec.options = std::move(options);
    rec.node.inputs = new_int_array(ins);
    rec.node.outputs = new_int_array(outs);
    nodes.push_back(std::move(rec));
    NodeRec& r = nodes.back();
    r.node.custom_initial_data = r.options.empty() ? nullptr : r.options.data();
    r.node.custom_initial_data_size = static_cast<int>(r.options.size());
    plan.push_back(static_cast<int>(nodes.size()) - 1);
  }

  // Delegate, prepare every node, invoke every node. Returns false on any error.
  bool run(int threads, const char* kernel) {
    SbnnDelegateOptions o = sbnn_delegate_options_default();
    o.num_threads = threads;
    o.kernel = kernel;
    o.runtime = "tflite";
    o.runtime_version = "2.16.2";
    delegate = reinterpret_cast<Delegate*>(sbnn_delegate_create(&o));
    if (delegate == nullptr) {
      errors += sbnn_delegate_last_error();
      return false;
    }
    if (delegate->Prepare(&ctx, delegate) != kOk) return false;
    for (int i : plan) {
      NodeRec& n = nodes[i];
      if (n.reg.prepare == nullptr || n.reg.prepare(&ctx, &n.node) != kOk) return false;
    }
    for (int i : plan) {
      NodeRec& n = nodes[i];
      if (n.reg.invoke(&ctx, &n.node) != kOk) return false;
    }
    return true;
  }

  template <typename T>
  const T* data(int t) const { return static_cast<const T*>(tensor_array[t].data); }
  int dim(int t, int i) const { return tensor_array[t].dims->data[i]; }
};

void report_error(Context* c, const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  reinterpret_cast<FakeRuntime*>(c)->errors += buf;
}

// ---- reference computations ---------------------------------------------------

std::vector<int32_t> pack_signs(const std::vector<int>& signs, int rows, int channels) {
  const int words = (channels + 31) / 32;
  std::vector<int32_t> out(static_cast<size_t>(rows) * words, 0);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < channels; ++c)
      if (signs[static_cast<size_t>(r) * channels + c] < 0)
        out[static_cast<size_t>(r) * words + c / 32] |= static_cast<int32_t>(1u << (c % 32));
  return out;
}

struct ConvCase {
  int batch, h, w, cin, cout, kh, kw, stride, dilation, groups, padding, pad_values, act;
  Type out_type;
};

const char* type_str(Type t) {
  return t == kFloat32 ? "float" : t == kInt8 ? "int8" : "bitpacked";
}

void test_conv(const ConvCase& cc, int threads, const char* kernel, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  const int cg = cc.cin / cc.groups, og = cc.cout / cc.groups;
  const int fwords = (cg + 31) / 32;
  std::vector<float> x(static_cast<size_t>(cc.batch) * cc.h * cc.w * cc.cin);
  for (auto& v : x) v = normal(rng);
  std::vector<int> wsign(static_cast<size_t>(cc.cout) * cc.kh * cc.kw * cg);
  for (auto& v : wsign) v = uni(rng) < 0 ? -1 : 1;
  const std::vector<int32_t> filter = pack_signs(wsign, cc.cout * cc.kh * cc.kw, cg);
  std::vector<float> mul(cc.cout), bias(cc.cout);
  std::vector<int32_t> thr(cc.cout);
  const int K = cc.kh * cc.kw * cg;
  for (int o = 0; o < cc.cout; ++o) {
    mul[o] = uni(rng) * 0.5f;
    bias[o] = uni(rng) * 3.0f;
    thr[o] = static_cast<int32_t>(std::lround(K / 2.0 + uni(rng) * std::sqrt(K)));
  }
  const float out_scale = 0.05f;
  const int out_zp = -7;

  // Naive reference on signs, in double.
  const int eff_h = (cc.kh - 1) * cc.dilation + 1, eff_w = (cc.kw - 1) * cc.dilation + 1;
  const int oh = cc.padding == 0 ? (cc.h + cc.stride - 1) / cc.stride : (cc.h - eff_h) / cc.stride + 1;
  const int ow = cc.padding == 0 ? (cc.w + cc.stride - 1) / cc.stride : (cc.w - eff_w) / cc.stride + 1;
  const int pad_t = cc.padding == 0 ? std::max(0, ((oh - 1) * cc.stride + eff_h - cc.h)) / 2 : 0;
  const int pad_l = cc.padding == 0 ? std::max(0, ((ow - 1) * cc.stride + eff_w - cc.w)) / 2 : 0;
  std::vector<int> dot(static_cast<size_t>(cc.batch) * oh * ow * cc.cout);
  for (int b = 0; b < cc.batch; ++b)
    for (int y = 0; y < oh; ++y)
      for (int xo = 0; xo < ow; ++xo)
        for (int o = 0; o < cc.cout; ++o) {
          const int g = o / og;
          int s = 0;
          for (int fy = 0; fy < cc.kh; ++fy)
            for (int fx = 0; fx < cc.kw; ++fx) {
              const int iy = y * cc.stride - pad_t + fy * cc.dilation;
              const int ix = xo * cc.stride - pad_l + fx * cc.dilation;
              const bool inside = iy >= 0 && iy < cc.h && ix >= 0 && ix < cc.w;
              for (int c = 0; c < cg; ++c) {
                const int wv = wsign[((static_cast<size_t>(o) * cc.kh + fy) * cc.kw + fx) * cg + c];
                int xv;
                if (inside)
                  xv = x[((static_cast<size_t>(b) * cc.h + iy) * cc.w + ix) * cc.cin + g * cg + c] < 0 ? -1 : 1;
                else
                  xv = cc.pad_values == 1 ? 1 : 0;
                s += xv * wv;
              }
            }
          dot[((static_cast<size_t>(b) * oh + y) * ow + xo) * cc.cout + o] = s;
        }

  FakeRuntime rt;
  const int words = (cc.cin + 31) / 32;
  const int tx = rt.add_tensor(kFloat32, {cc.batch, cc.h, cc.w, cc.cin});
  const int tq = rt.add_tensor(kInt32, {cc.batch, cc.h, cc.w, words});
  const int tf = rt.add_tensor(kInt32, {cc.cout, cc.kh, cc.kw, fwords}, filter.data());
  const int tm = rt.add_tensor(kFloat32, {cc.cout}, mul.data());
  const int tb = rt.add_tensor(kFloat32, {cc.cout}, bias.data());
  const int tt = rt.add_tensor(kInt32, {cc.cout}, thr.data());
  const int to = rt.add_tensor(cc.out_type, {1, 1, 1, 1}, nullptr, out_scale, out_zp);
  rt.finalize();
  std::memcpy(rt.storage[tx].data(), x.data(), x.size() * sizeof(float));
  rt.add_custom_node("LceQuantize", {tx}, {tq});
  const auto opts = flex_map({{"channels_in", cc.cin},
                              {"dilation_height_factor", cc.dilation},
                              {"dilation_width_factor", cc.dilation},
                              {"fused_activation_function", cc.act},
                              {"pad_values", cc.pad_values},
                              {"padding", cc.padding},
                              {"stride_height", cc.stride},
                              {"stride_width", cc.stride}});
  if (cc.out_type == kInt32)
    rt.add_custom_node("LceBconv2d", {tq, tf, -1, -1, tt}, {to}, opts);
  else
    rt.add_custom_node("LceBconv2d", {tq, tf, tm, tb, -1}, {to}, opts);

  char what[256];
  std::snprintf(what, sizeof(what),
                "%dx%dx%dx%d->%d k%dx%d s%d d%d g%d %s pv%d act%d %s threads %d kernel %s",
                cc.batch, cc.h, cc.w, cc.cin, cc.cout, cc.kh, cc.kw, cc.stride, cc.dilation,
                cc.groups, cc.padding ? "VALID" : "SAME", cc.pad_values, cc.act,
                type_str(cc.out_type), threads, kernel);
  if (!rt.run(threads, kernel)) {
    // A forced kernel may legitimately not support a shape or this CPU.
    const bool unsupported = std::strstr(rt.errors.c_str(), "supports this shape") != nullptr;
    EXPECT(unsupported && std::strcmp(kernel, "auto") != 0 && std::strcmp(kernel, "reference") != 0,
           "%s: %s", what, rt.errors.c_str());
    ++g_conv_unsupported;
    return;
  }
  ++g_conv_runs;
  EXPECT(rt.dim(to, 1) == oh && rt.dim(to, 2) == ow, "%s: output shape", what);
  int act_lo = -K, act_hi = K;
  if (cc.act == 1) act_lo = 0;
  if (cc.act == 2) act_lo = -1, act_hi = 1;
  if (cc.act == 3) act_lo = 0, act_hi = 6;
  int bad = 0;
  const size_t pixels = static_cast<size_t>(cc.batch) * oh * ow;
  for (size_t p = 0; p < pixels; ++p) {
    for (int o = 0; o < cc.cout; ++o) {
      const int d = dot[p * cc.cout + o];
      const double y = std::min(act_hi, std::max(act_lo, d)) * static_cast<double>(mul[o]) + bias[o];
      if (cc.out_type == kFloat32) {
        const float got = rt.data<float>(to)[p * cc.cout + o];
        // LCE's fused form x*(-mul) + (bias + K*mul) cancels K*mul: allow its rounding.
        const double tol = 1e-5 * std::max(1.0, std::fabs(y)) + 4e-7 * K * std::fabs(mul[o]);
        if (std::fabs(got - y) > tol) ++bad;
      } else if (cc.out_type == kInt8) {
        const double q = std::min(127.0, std::max(-128.0, std::round(y / out_scale) + out_zp));
        const int got = rt.data<int8_t>(to)[p * cc.cout + o];
        if (std::fabs(got - q) > 1) ++bad;
      } else {
        const int owords = (cc.cout + 31) / 32;
        const uint32_t word = static_cast<uint32_t>(rt.data<int32_t>(to)[p * owords + o / 32]);
        const int got = (word >> (o % 32)) & 1;
        const int want = (K - d) > 2 * thr[o] ? 1 : 0;
        if (got != want) ++bad;
        if (o == cc.cout - 1 && cc.cout % 32 != 0 && (word >> (cc.cout % 32)) != 0) ++bad;
      }
    }
  }
  EXPECT(bad == 0, "%s: %d wrong outputs", what, bad);
}

void test_pool_chain(int threads) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int n = 2, h = 7, w = 6, c = 45, fh = 3, fw = 2, s = 2;
  for (int padding : {0, 1}) {
    std::vector<float> x(static_cast<size_t>(n) * h * w * c);
    for (auto& v : x) v = normal(rng);
    FakeRuntime rt;
    const int tx = rt.add_tensor(kFloat32, {n, h, w, c});
    const int tq = rt.add_tensor(kInt32, {1, 1, 1, 1});
    const int tp = rt.add_tensor(kInt32, {1, 1, 1, 1});
    const int to = rt.add_tensor(kFloat32, {n, 1, 1, c});  // last dim: channel count
    rt.finalize();
    std::memcpy(rt.storage[tx].data(), x.data(), x.size() * sizeof(float));
    rt.add_custom_node("LceQuantize", {tx}, {tq});
    rt.add_custom_node("LceBMaxPool2d", {tq}, {tp},
                       flex_map({{"filter_height", fh}, {"filter_width", fw}, {"padding", padding},
                                 {"stride_height", s}, {"stride_width", s}}));
    rt.add_custom_node("LceDequantize", {tp}, {to});
    const bool ok = rt.run(threads, "auto");
    EXPECT(ok, "pool chain padding %d: %s", padding, rt.errors.c_str());
    if (!ok) continue;
    const int oh = padding == 0 ? (h + s - 1) / s : (h - fh) / s + 1;
    const int ow = padding == 0 ? (w + s - 1) / s : (w - fw) / s + 1;
    const int pt = padding == 0 ? std::max(0, (oh - 1) * s + fh - h) / 2 : 0;
    const int pl = padding == 0 ? std::max(0, (ow - 1) * s + fw - w) / 2 : 0;
    EXPECT(rt.dim(to, 1) == oh && rt.dim(to, 2) == ow && rt.dim(to, 3) == c, "pool shape");
    int bad = 0;
    for (int b = 0; b < n; ++b)
      for (int y = 0; y < oh; ++y)
        for (int xo = 0; xo < ow; ++xo)
          for (int ch = 0; ch < c; ++ch) {
            float m = -1.0f;
            for (int fy = 0; fy < fh; ++fy)
              for (int fx = 0; fx < fw; ++fx) {
                const int iy = y * s - pt + fy, ix = xo * s - pl + fx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                const float v = x[((static_cast<size_t>(b) * h + iy) * w + ix) * c + ch] < 0 ? -1.0f : 1.0f;
                m = std::max(m, v);
              }
            if (rt.data<float>(to)[((static_cast<size_t>(b) * oh + y) * ow + xo) * c + ch] != m) ++bad;
          }
    EXPECT(bad == 0, "pool chain padding %d threads %d: %d wrong", padding, threads, bad);
  }
}

void test_bad_options() {
  FakeRuntime rt;
  const int tq = rt.add_tensor(kInt32, {1, 4, 4, 1});
  std::vector<int32_t> filter(2 * 9, 0);
  const int tf = rt.add_tensor(kInt32, {2, 3, 3, 1}, filter.data());
  const int to = rt.add_tensor(kFloat32, {1, 1, 1, 1});
  rt.finalize();
  rt.add_custom_node("LceBconv2d", {tq, tf, -1, -1, -1}, {to},
                     flex_map({{"channels_in", 3}, {"dilation_height_factor", 1},
                               {"dilation_width_factor", 1}, {"fused_activation_function", 0},
                               {"pad_values", 0}, {"padding", 0}, {"stride_height", 0},
                               {"stride_width", 1}}));
  EXPECT(!rt.run(1, "auto"), "stride 0 accepted");
  EXPECT(std::strstr(rt.errors.c_str(), "stride_height") != nullptr, "message: %s",
         rt.errors.c_str());
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  std::vector<std::string> kernels = {"auto", "reference"};
  {
    std::string all = sbnn_delegate_kernels();
    size_t start = 0;
    while (start < all.size()) {
      size_t end = all.find(',', start);
      if (end == std::string::npos) end = all.size();
      const std::string k = all.substr(start, end - start);
      if (k != "reference") kernels.push_back(k);
      start = end + 1;
    }
  }
  const ConvCase cases[] = {
      // batch h w cin cout kh kw stride dil groups padding pad_values act out
      {1, 6, 6, 1, 3, 3, 3, 1, 1, 1, 0, 1, 0, kFloat32},
      {2, 7, 5, 33, 40, 3, 3, 1, 1, 1, 0, 0, 0, kFloat32},   // odd channels, zero padding
      {1, 8, 8, 64, 33, 3, 3, 2, 1, 1, 0, 1, 1, kFloat32},
      {1, 9, 7, 20, 65, 3, 2, 1, 2, 1, 1, 1, 3, kFloat32},
      {2, 6, 6, 128, 64, 3, 3, 1, 1, 4, 0, 0, 2, kFloat32},  // groups 4
      {1, 5, 5, 130, 31, 5, 5, 1, 1, 1, 0, 0, 0, kInt8},
      {1, 7, 7, 40, 100, 3, 3, 1, 1, 1, 0, 1, 0, kInt32},    // bitpacked, 4 words
      {3, 6, 6, 64, 96, 1, 1, 1, 1, 2, 1, 1, 0, kInt32},
  };
  for (const ConvCase& cc : cases)
    for (int threads : {1, 2})
      for (const std::string& k : kernels) test_conv(cc, threads, k.c_str(), rng);
  test_pool_chain(1);
  test_pool_chain(2);
  test_bad_options();
  if (g_failures != 0) {
    std::fprintf(stderr, "%d of %d checks failed\n", g_failures, g_checks);
    return 1;
  }
  std::printf(
      "sbnn_delegate_fake_runtime_test: %d checks passed; %d conv runs compared, %d skipped "
      "(forced kernel unsupported here); kernels: %s\n",
      g_checks, g_conv_runs, g_conv_unsupported, sbnn_delegate_kernels());
  return 0;
}
