// End-to-end test of the delegate without TensorFlow: the stand-in for the TFLite
// runtime that the fuzz harnesses use too (tests/support/fake_runtime.h: the
// TfLiteContext callbacks the delegate uses, tensors, nodes, delegate partitioning,
// ResizeTensor, arena allocation after prepare) runs small LCE graphs through the
// delegate, and the outputs are compared with a naive float computation on
// sign(x) and +-1 weights. It runs wherever the library builds, e.g. under
// qemu-aarch64 for the NEON kernels, and under SBNN_SANITIZE=ON.
//
// Graphs:  x(float) -> LceQuantize -> LceBconv2d -> float / int8 / bitpacked
//          x(float) -> LceQuantize -> LceBMaxPool2d -> LceDequantize -> float
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "abi/tflite_abi.h"
#include "sbnn_delegate.h"
#include "tests/support/fake_runtime.h"
#include "tests/support/writers.h"

namespace {

using namespace sbnn::abi;
using sbnn_test::FakeRuntime;

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

// Custom options: a flexbuffer map of ints (keys sorted, as flexbuffers requires).
std::vector<uint8_t> flex_map(const std::map<std::string, int>& entries) {
  std::vector<sbnn_test::FlexEntry> e;
  for (const auto& kv : entries) {
    sbnn_test::FlexEntry f;
    f.key = kv.first;
    f.value = kv.second;
    e.push_back(f);
  }
  return sbnn_test::BuildFlexMap(e, 4, 4);
}

// Delegates the graph, prepares it (allocating the arena), writes `input` into tensor
// `tx`, invokes. False on any error (the runtime's `errors` say which).
bool run_graph(FakeRuntime& rt, int threads, const char* kernel, int tx,
               const std::vector<float>& input) {
  if (!rt.ApplyDelegate(threads, kernel) || !rt.Prepare()) return false;
  std::memcpy(rt.storage[tx].data(), input.data(), input.size() * sizeof(float));
  return rt.Invoke();
}

template <typename T>
const T* data(const FakeRuntime& rt, int t) {
  return reinterpret_cast<const T*>(rt.storage[t].data());
}
int dim(const FakeRuntime& rt, int t, int i) { return rt.tensors[t].dims->data[i]; }

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
  const int tx = rt.AddTensor(kFloat32, {cc.batch, cc.h, cc.w, cc.cin});
  const int tq = rt.AddTensor(kInt32, {cc.batch, cc.h, cc.w, words});
  const int tf = rt.AddTensor(kInt32, {cc.cout, cc.kh, cc.kw, fwords}, filter.data(),
                              filter.size() * sizeof(int32_t));
  const int tm = rt.AddTensor(kFloat32, {cc.cout}, mul.data(), mul.size() * sizeof(float));
  const int tb = rt.AddTensor(kFloat32, {cc.cout}, bias.data(), bias.size() * sizeof(float));
  const int tt = rt.AddTensor(kInt32, {cc.cout}, thr.data(), thr.size() * sizeof(int32_t));
  // declared N, H, W as a converter writes them (the delegate's graph check compares
  // them with what the options give); the channel count is the delegate's to set
  const int to = rt.AddTensor(cc.out_type, {cc.batch, oh, ow, 1}, nullptr, 0, out_scale, out_zp);
  rt.Finalize();
  rt.AddNode(kBuiltinCustom, "LceQuantize", {tx}, {tq}, {});
  const auto opts = flex_map({{"channels_in", cc.cin},
                              {"dilation_height_factor", cc.dilation},
                              {"dilation_width_factor", cc.dilation},
                              {"fused_activation_function", cc.act},
                              {"pad_values", cc.pad_values},
                              {"padding", cc.padding},
                              {"stride_height", cc.stride},
                              {"stride_width", cc.stride}});
  if (cc.out_type == kInt32)
    rt.AddNode(kBuiltinCustom, "LceBconv2d", {tq, tf, -1, -1, tt}, {to}, opts);
  else
    rt.AddNode(kBuiltinCustom, "LceBconv2d", {tq, tf, tm, tb, -1}, {to}, opts);

  char what[256];
  std::snprintf(what, sizeof(what),
                "%dx%dx%dx%d->%d k%dx%d s%d d%d g%d %s pv%d act%d %s threads %d kernel %s",
                cc.batch, cc.h, cc.w, cc.cin, cc.cout, cc.kh, cc.kw, cc.stride, cc.dilation,
                cc.groups, cc.padding ? "VALID" : "SAME", cc.pad_values, cc.act,
                type_str(cc.out_type), threads, kernel);
  if (!run_graph(rt, threads, kernel, tx, x)) {
    // A forced kernel may legitimately not support a shape or this CPU.
    const bool unsupported = std::strstr(rt.errors.c_str(), "supports this shape") != nullptr;
    EXPECT(unsupported && std::strcmp(kernel, "auto") != 0 && std::strcmp(kernel, "reference") != 0,
           "%s: %s", what, rt.errors.c_str());
    ++g_conv_unsupported;
    return;
  }
  ++g_conv_runs;
  EXPECT(dim(rt, to, 1) == oh && dim(rt, to, 2) == ow, "%s: output shape", what);
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
        const float got = data<float>(rt, to)[p * cc.cout + o];
        // LCE's fused form x*(-mul) + (bias + K*mul) cancels K*mul: allow its rounding.
        const double tol = 1e-5 * std::max(1.0, std::fabs(y)) + 4e-7 * K * std::fabs(mul[o]);
        if (std::fabs(got - y) > tol) ++bad;
      } else if (cc.out_type == kInt8) {
        const double q = std::min(127.0, std::max(-128.0, std::round(y / out_scale) + out_zp));
        const int got = data<int8_t>(rt, to)[p * cc.cout + o];
        if (std::fabs(got - q) > 1) ++bad;
      } else {
        const int owords = (cc.cout + 31) / 32;
        const uint32_t word = static_cast<uint32_t>(data<int32_t>(rt, to)[p * owords + o / 32]);
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
    const int oh = padding == 0 ? (h + s - 1) / s : (h - fh) / s + 1;
    const int ow = padding == 0 ? (w + s - 1) / s : (w - fw) / s + 1;
    FakeRuntime rt;
    const int tx = rt.AddTensor(kFloat32, {n, h, w, c});
    const int tq = rt.AddTensor(kInt32, {n, h, w, 1});
    const int tp = rt.AddTensor(kInt32, {n, oh, ow, 1});  // declared N, H, W (graph check)
    const int to = rt.AddTensor(kFloat32, {n, 1, 1, c});  // last dim: channel count
    rt.Finalize();
    rt.AddNode(kBuiltinCustom, "LceQuantize", {tx}, {tq}, {});
    rt.AddNode(kBuiltinCustom, "LceBMaxPool2d", {tq}, {tp},
               flex_map({{"filter_height", fh}, {"filter_width", fw}, {"padding", padding},
                         {"stride_height", s}, {"stride_width", s}}));
    rt.AddNode(kBuiltinCustom, "LceDequantize", {tp}, {to}, {});
    const bool ok = run_graph(rt, threads, "auto", tx, x);
    EXPECT(ok, "pool chain padding %d: %s", padding, rt.errors.c_str());
    if (!ok) continue;
    const int pt = padding == 0 ? std::max(0, (oh - 1) * s + fh - h) / 2 : 0;
    const int pl = padding == 0 ? std::max(0, (ow - 1) * s + fw - w) / 2 : 0;
    EXPECT(dim(rt, to, 1) == oh && dim(rt, to, 2) == ow && dim(rt, to, 3) == c, "pool shape");
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
            if (data<float>(rt, to)[((static_cast<size_t>(b) * oh + y) * ow + xo) * c + ch] != m) ++bad;
          }
    EXPECT(bad == 0, "pool chain padding %d threads %d: %d wrong", padding, threads, bad);
  }
}

void test_bad_options() {
  FakeRuntime rt;
  const int tq = rt.AddTensor(kInt32, {1, 4, 4, 1});
  std::vector<int32_t> filter(2 * 9, 0);
  const int tf = rt.AddTensor(kInt32, {2, 3, 3, 1}, filter.data(), filter.size() * sizeof(int32_t));
  const int to = rt.AddTensor(kFloat32, {1, 1, 1, 1});
  rt.Finalize();
  rt.AddNode(kBuiltinCustom, "LceBconv2d", {tq, tf, -1, -1, -1}, {to},
             flex_map({{"channels_in", 3}, {"dilation_height_factor", 1},
                       {"dilation_width_factor", 1}, {"fused_activation_function", 0},
                       {"pad_values", 0}, {"padding", 0}, {"stride_height", 0},
                       {"stride_width", 1}}));
  EXPECT(!(rt.ApplyDelegate(1, "auto") && rt.Prepare()), "stride 0 accepted");
  EXPECT(std::strstr(rt.errors.c_str(), "stride_height") != nullptr, "message: %s",
         rt.errors.c_str());
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  std::vector<std::string> kernels = {"auto", "reference"};
  for (const std::string& k : sbnn_test::KernelNames())
    if (k != "reference") kernels.push_back(k);
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
