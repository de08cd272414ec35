// libFuzzer harness: the delegate's ops driven through the fake runtime with
// structured fuzz input (options, shapes, types, tensor data, node wiring).
//
// The bytes choose a small graph
//   x (float32 | int8 | bool) -> LceQuantize -> [LceBMaxPool2d] -> LceBconv2d | SbnnBconv2d
//     -> float32 | int8 | bitpacked [-> LceDequantize]
// or  x -> LceQuantize -> [LceBMaxPool2d] -> LceDequantize -> float32 | int8 | bool,
// with valid shapes and options, flexbuffer options in every encoding (byte widths,
// inline / indirect / unsigned / bool values), and then, when the bytes ask for it,
// corruptions: out-of-range or missing options, raw option bytes, wrong dims or
// types of any tensor, rewired or missing inputs, an output aliasing an input,
// flipped SBF1 bytes. After the first invoke the input is resized and the graph
// prepared and invoked again.
//
// Oracles (besides ASan/UBSan and the fake runtime's checks):
//  * the graph runs with the reference kernel on 1 thread and with "auto" or a
//    forced kernel on 2 threads (different garbage in the outputs): same outcome,
//    byte-identical outputs;
//  * uncorrupted graphs must succeed, and the same graph with the filter stored as
//    SBF1 (SbnnBconv2d) must give byte-identical outputs;
//  * uncorrupted conv graphs (with or without LceBMaxPool2d before the conv) and
//    quantize graphs without pooling are checked against a naive computation on
//    signs (float within rounding, int8 within 1, bitpacked and bool exact);
//  * uncorrupted conv graphs with one group are also run as SbnnBconv2d with
//    fused_q = 1 (the filter plus an all-(+1) q channel, a random q multiplier):
//    reference/1 thread vs the other kernel/threads byte-identical, and the naive
//    computation y = clamp(A*dot + D*dot[q] + B) (bitpacked: y < 0, except within
//    rounding of 0); with a float output also with fused_add = 1 and a constant
//    residual (y + residual).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "tests/support/fake_runtime.h"
#include "tests/support/writers.h"

namespace sbnn_fuzz {

using namespace sbnn_test;  // the TFLite stand-in and the writers

namespace {

// Reads the input byte by byte; once it is used up, continues with a generator
// seeded from the whole input, so that short inputs still choose every field.
struct Cursor {
  const uint8_t* p;
  size_t n;
  uint64_t s;
  Cursor(const uint8_t* data, size_t size) : p(data), n(size), s(Hash(data, size) | 1) {}
  uint8_t u8() {
    if (n) return --n, *p++;
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint8_t>(s >> 56);
  }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{u8()} << (8 * i);
    return v;
  }
  int range(int lo, int hi) { return lo + static_cast<int>(u8() % static_cast<uint32_t>(hi - lo + 1)); }
  bool chance(int per256) { return u8() < per256; }
  std::vector<uint8_t> bytes(size_t k) {
    std::vector<uint8_t> b;
    for (size_t i = 0; i < k; ++i) b.push_back(u8());
    return b;
  }
};

struct Rng {
  uint64_t s;
  uint32_t next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(s >> 33);
  }
  float uniform() { return (next() & 0xFFFFFF) / float(1 << 24) * 2.0f - 1.0f; }
};

// An "interesting" integer for a corrupted option or dimension.
int64_t WildInt(Cursor& c) {
  static const int64_t kWild[] = {0,          -1,         1,        2,        31,       32,
                                  33,         64,         65535,    65536,    1 << 24,  (1 << 24) + 1,
                                  1 << 28,    INT32_MAX,  INT32_MIN, int64_t{1} << 32,
                                  INT64_MAX,  INT64_MIN};
  const uint8_t k = c.u8();
  if (k < 128) return kWild[k % (sizeof(kWild) / sizeof(kWild[0]))];
  return static_cast<int32_t>(c.u32());
}

struct TensorSpec {
  int type = kFloat32;
  std::vector<int> dims;
  bool constant = false;
  std::vector<uint8_t> data;  // constants: exactly the bytes of dims
  float scale = 0.0f;
  int zero_point = 0;
};

struct NodeSpec {
  std::string op;
  std::vector<int> inputs, outputs;
  std::map<std::string, int64_t> options;  // written with `encoding`
  std::vector<uint8_t> raw_options;        // used instead when non-empty
  bool drop_options = false;
};

struct Graph {
  std::vector<TensorSpec> tensors;
  std::vector<NodeSpec> nodes;
  int input = 0;
  // Option encoding: slot width, key width, per-key type choice.
  int width = 1, key_width = 1;
  std::vector<uint8_t> type_choice;
};

std::vector<uint8_t> EncodeOptions(const Graph& g, const NodeSpec& n) {
  if (!n.raw_options.empty()) return n.raw_options;
  if (n.drop_options || n.options.empty()) return {};
  std::vector<FlexEntry> entries;
  size_t i = 0;
  for (const auto& kv : n.options) {
    FlexEntry e;
    e.key = kv.first;
    e.value = kv.second;
    const uint8_t t = g.type_choice.empty() ? 0 : g.type_choice[i++ % g.type_choice.size()];
    // Mostly INT (what LCE writes); other integer encodings that read the same.
    static const int kTypes[] = {kFlexInt, kFlexInt, kFlexInt, kFlexInt, kFlexUInt,
                                 kFlexIndirectInt, kFlexIndirectUInt, kFlexBool};
    e.type = kTypes[t % 8];
    e.child_width = 8;
    if ((e.type == kFlexUInt || e.type == kFlexIndirectUInt) && e.value < 0) e.type = kFlexInt;
    if (e.type == kFlexBool && (e.value < 0 || e.value > 1)) e.type = kFlexInt;
    if (t == 255) e.type = kFlexFloat;  // not an integer: must be refused
    entries.push_back(e);
  }
  // Values that do not fit a narrow slot are written wider.
  int width = g.width;
  for (const FlexEntry& e : entries) {
    while (width < 8 && (e.value < -(int64_t{1} << (8 * width - 1)) ||
                         e.value >= (int64_t{1} << (8 * width - 1))))
      width *= 2;
  }
  return BuildFlexMap(entries, width, g.key_width);
}

struct Built {
  std::vector<int> index;  // spec tensor -> runtime tensor (-1: refused)
};

// Builds the runtime graph; false when the fake runtime refuses a tensor.
bool Build(FakeRuntime& rt, const Graph& g) {
  for (const TensorSpec& t : g.tensors) {
    const int idx = t.constant ? rt.AddTensor(t.type, t.dims, t.data.data(), t.data.size(),
                                              t.scale, t.zero_point)
                               : rt.AddTensor(t.type, t.dims, nullptr, 0, t.scale, t.zero_point);
    if (idx < 0) return false;
  }
  rt.Finalize();
  for (const NodeSpec& n : g.nodes)
    rt.AddNode(kBuiltinCustom, n.op, n.inputs, n.outputs, EncodeOptions(g, n));
  return true;
}

struct Outcome {
  int stage = 0;  // 0 refused, 1 delegate, 2 prepare, 3 invoke, 4 resize, 5 prepare2, 6 invoke2, 7 done
  std::string errors;
  std::vector<std::vector<uint8_t>> outputs;
};

Outcome Run(const Graph& g, int threads, const char* kernel, uint64_t seed, uint64_t salt,
            const std::vector<int>& resize_to, std::vector<uint8_t>* first_outputs_of = nullptr,
            int watch_tensor = -1) {
  Outcome out;
  FakeRuntime rt;
  if (!Build(rt, g)) return out;
  out.stage = 1;
  if (!rt.ApplyDelegate(threads, kernel)) return out.errors = rt.errors, out;
  out.stage = 2;
  if (!rt.Prepare()) return out.errors = rt.errors, out;
  rt.FillArena(seed, salt);
  out.stage = 3;
  if (!rt.Invoke()) return out.errors = rt.errors, out;
  out.outputs = rt.DelegatedOutputs();
  if (first_outputs_of != nullptr && watch_tensor >= 0) {
    *first_outputs_of = rt.storage[watch_tensor];
    first_outputs_of->insert(first_outputs_of->end(), rt.storage[g.input].begin(),
                             rt.storage[g.input].end());
  }
  out.stage = 4;
  if (resize_to.empty() || !rt.ResizeInput(g.input, resize_to)) return out;
  out.stage = 5;
  if (!rt.Prepare()) return out.errors = rt.errors, out;
  rt.FillArena(seed + 7, salt);
  out.stage = 6;
  if (!rt.Invoke()) return out.errors = rt.errors, out;
  for (auto& o : rt.DelegatedOutputs()) out.outputs.push_back(std::move(o));
  out.stage = 7;
  if (std::getenv("SBNN_FUZZ_VERBOSE") != nullptr) {  // which kernels "auto" chose
    char buf[2048];
    sbnn_delegate_describe(rt.delegate, buf, sizeof(buf));
    std::fprintf(stderr, "  run with %s, %d threads:\n%s", kernel, threads, buf);
  }
  return out;
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

size_t Elements(const std::vector<int>& dims) {
  size_t n = 1;
  for (int d : dims) n *= static_cast<size_t>(std::max(d, 0));
  return n;
}

// Fills a constant with bytes for its current dims and type.
void Refill(TensorSpec& t, Rng& rng) {
  if (!t.constant) return;
  size_t bytes = 0;
  if (!TensorBytes(t.type, t.dims, 1 << 20, &bytes)) {
    t.constant = false;
    t.data.clear();
    return;
  }
  t.data.resize(bytes);
  for (auto& b : t.data) b = static_cast<uint8_t>(rng.next());
}

// ---- the conv graph ------------------------------------------------------------

struct Conv {
  int in_type, batch, h, w, cin, cout, kh, kw, sh, sw, dh, dw, groups, padding, pad_values, act;
  int out_type;  // kFloat32, kInt8, kInt32 (bitpacked)
  bool has_mul, has_bias, pool, dequant;
  int pool_fh, pool_fw, pool_sh, pool_sw, pool_padding;
  float in_scale, out_scale;
  int in_zp, out_zp;
  std::vector<bool> connection;  // [cout][kh][kw][cin/groups]
  std::vector<float> mul, bias;
  std::vector<int32_t> thr;
  uint32_t rice_k;
  std::vector<uint8_t> modes;
};

int OutSize(int in, int k, int stride, int dil, int padding) {
  const int eff = (k - 1) * dil + 1;
  return padding == 0 ? (in + stride - 1) / stride : (in >= eff ? (in - eff) / stride + 1 : 0);
}

Conv MakeConv(Cursor& c, Rng& rng) {
  Conv v{};
  static const int kInTypes[] = {kFloat32, kFloat32, kInt8, kBool};
  v.in_type = kInTypes[c.u8() % 4];
  v.batch = c.range(1, 3);
  v.groups = c.chance(48) ? (c.chance(128) ? 2 : 4) : 1;
  static const int kCin[] = {1, 2, 3, 7, 16, 31, 32, 33, 40, 63, 64, 65, 96, 100, 127, 128, 130};
  v.cin = v.groups > 1 ? v.groups * 32 * c.range(1, 2) : kCin[c.u8() % 17];
  static const int kCout[] = {1, 2, 3, 8, 17, 31, 32, 33, 40, 64, 65, 70};
  v.cout = kCout[c.u8() % 12];
  if (v.groups > 1) v.cout = v.groups * std::max(1, v.cout / v.groups);
  v.kh = c.range(1, 5);
  v.kw = c.range(1, 5);
  v.sh = c.range(1, 3);
  v.sw = c.range(1, 3);
  v.dh = c.chance(40) ? c.range(2, 3) : 1;
  v.dw = c.chance(40) ? c.range(2, 3) : 1;
  v.padding = c.u8() % 2;
  v.pad_values = c.u8() % 2;
  v.act = c.u8() % 4;
  static const int kOut[] = {kFloat32, kFloat32, kInt8, kInt32};
  v.out_type = kOut[c.u8() % 4];
  v.has_mul = !c.chance(40);
  v.has_bias = !c.chance(40);
  v.pool = c.chance(50);
  v.pool_fh = c.range(1, 3);
  v.pool_fw = c.range(1, 3);
  v.pool_sh = c.range(1, 2);
  v.pool_sw = c.range(1, 2);
  v.pool_padding = c.u8() % 2;
  v.h = c.range(1, 9);
  v.w = c.range(1, 9);
  // Large enough for VALID padding (pool and conv).
  auto need = [](int k, int d) { return (k - 1) * d + 1; };
  if (v.pool && v.pool_padding == 1) {
    v.h = std::max(v.h, v.pool_fh);
    v.w = std::max(v.w, v.pool_fw);
  }
  int ph = v.pool ? OutSize(v.h, v.pool_fh, v.pool_sh, 1, v.pool_padding) : v.h;
  int pw = v.pool ? OutSize(v.w, v.pool_fw, v.pool_sw, 1, v.pool_padding) : v.w;
  if (v.padding == 1) {
    while (ph < need(v.kh, v.dh)) ph = OutSize(++v.h, v.pool ? v.pool_fh : 1, v.pool ? v.pool_sh : 1, 1, v.pool ? v.pool_padding : 0);
    while (pw < need(v.kw, v.dw)) pw = OutSize(++v.w, v.pool ? v.pool_fw : 1, v.pool ? v.pool_sw : 1, 1, v.pool ? v.pool_padding : 0);
  }
  v.dequant = v.out_type == kInt32 && c.chance(128);
  v.in_scale = 0.01f + (c.u8() % 50) / 100.0f;
  v.in_zp = static_cast<int8_t>(c.u8());
  v.out_scale = 0.01f + (c.u8() % 100) / 50.0f;
  v.out_zp = static_cast<int8_t>(c.u8());
  static const uint32_t kPermille[] = {0, 10, 50, 100, 500, 900, 990, 1000};
  const uint32_t permille = kPermille[c.u8() % 8];
  const int cg = v.cin / v.groups;
  v.connection.resize(static_cast<size_t>(v.cout) * v.kh * v.kw * cg);
  for (size_t i = 0; i < v.connection.size(); ++i) v.connection[i] = rng.next() % 1000 < permille;
  const int K = v.kh * v.kw * cg;
  for (int o = 0; o < v.cout; ++o) {
    v.mul.push_back(rng.uniform() * 0.5f);
    v.bias.push_back(rng.uniform() * 3.0f);
    v.thr.push_back(static_cast<int32_t>(K / 2 + rng.uniform() * std::sqrt(static_cast<float>(K))));
  }
  v.rice_k = c.u8() % 8;
  v.modes = c.bytes(4);
  return v;
}

// Tensor slots of the conv graph.
enum { kX, kQ, kP, kF, kM, kB, kT, kO, kD, kNumConvTensors };

Graph ConvGraph(const Conv& v, bool sparse, Rng& rng) {
  Graph g;
  g.tensors.resize(kNumConvTensors);
  const int cg = v.cin / v.groups;
  g.tensors[kX] = {v.in_type, {v.batch, v.h, v.w, v.cin}, false, {}, v.in_scale, v.in_zp};
  // Declared N, H, W as a converter writes them: the delegate's graph check refuses a
  // conv or pool whose declared output disagrees with its input and options. The
  // channel counts stay 1: the ops set them.
  const int ph = v.pool ? OutSize(v.h, v.pool_fh, v.pool_sh, 1, v.pool_padding) : v.h;
  const int pw = v.pool ? OutSize(v.w, v.pool_fw, v.pool_sw, 1, v.pool_padding) : v.w;
  const int oh = OutSize(ph, v.kh, v.sh, v.dh, v.padding);
  const int ow = OutSize(pw, v.kw, v.sw, v.dw, v.padding);
  g.tensors[kQ] = {kInt32, {v.batch, v.h, v.w, 1}};
  g.tensors[kP] = {kInt32, {v.batch, ph, pw, 1}};
  if (sparse) {
    const std::vector<uint8_t> sbf1 =
        EncodeSbf1(v.connection, v.cout, v.kh, v.kw, cg, v.rice_k, v.modes);
    g.tensors[kF] = {kUInt8, {static_cast<int>(sbf1.size())}, true, sbf1};
  } else {
    const std::vector<int32_t> packed = PackFilter(v.connection, v.cout, v.kh, v.kw, cg);
    g.tensors[kF] = {kInt32, {v.cout, v.kh, v.kw, (cg + 31) / 32}, true, Bytes(packed)};
  }
  g.tensors[kM] = {kFloat32, {v.cout}, true, Bytes(v.mul)};
  g.tensors[kB] = {kFloat32, {v.cout}, true, Bytes(v.bias)};
  g.tensors[kT] = {kInt32, {v.cout}, true, Bytes(v.thr)};
  g.tensors[kO] = {v.out_type, {v.batch, oh, ow, 1}, false, {}, v.out_scale, v.out_zp};
  g.tensors[kD] = {kFloat32, {1, 1, 1, v.cout}};
  (void)rng;
  g.input = kX;
  g.nodes.push_back({"LceQuantize", {kX}, {kQ}});
  int conv_in = kQ;
  if (v.pool) {
    g.nodes.push_back({"LceBMaxPool2d", {kQ}, {kP},
                       {{"filter_height", v.pool_fh}, {"filter_width", v.pool_fw},
                        {"padding", v.pool_padding}, {"stride_height", v.pool_sh},
                        {"stride_width", v.pool_sw}}});
    conv_in = kP;
  }
  NodeSpec conv{sparse ? "SbnnBconv2d" : "LceBconv2d", {}, {kO},
                {{"channels_in", v.cin},
                 {"dilation_height_factor", v.dh},
                 {"dilation_width_factor", v.dw},
                 {"fused_activation_function", v.act},
                 {"pad_values", v.pad_values},
                 {"padding", v.padding},
                 {"stride_height", v.sh},
                 {"stride_width", v.sw}}};
  if (v.out_type == kInt32)
    conv.inputs = {conv_in, kF, -1, -1, kT};
  else
    conv.inputs = {conv_in, kF, v.has_mul ? kM : -1, v.has_bias ? kB : -1};
  g.nodes.push_back(conv);
  if (v.dequant) g.nodes.push_back({"LceDequantize", {kO}, {kD}});
  return g;
}

// The conv graph as SbnnBconv2d with fused_q = 1: filter channel `cout` (the last) is
// q, all +1; inputs 2, 3 and 5 are A = mul, B = bias, D = qmul (all [cout]).
Graph FusedGraph(const Conv& v, const std::vector<float>& qmul, Rng& rng) {
  Conv f = v;
  f.cout = v.cout + 1;
  const size_t per_channel = static_cast<size_t>(v.kh) * v.kw * (v.cin / v.groups);
  f.connection.insert(f.connection.end(), per_channel, true);
  f.mul.push_back(1.0f);
  f.bias.push_back(0.0f);
  f.thr.push_back(0);
  Graph g = ConvGraph(f, true, rng);
  g.tensors[kM] = {kFloat32, {v.cout}, true, Bytes(v.mul)};
  g.tensors[kB] = {kFloat32, {v.cout}, true, Bytes(v.bias)};
  g.tensors[kT] = {kFloat32, {v.cout}, true, Bytes(qmul)};  // slot reused for D
  g.tensors[kD] = {kFloat32, {1, 1, 1, v.cout}};
  for (NodeSpec& n : g.nodes)
    if (n.op == "SbnnBconv2d") {
      n.options["fused_q"] = 1;
      n.inputs = {n.inputs[0], kF, kM, kB, -1, kT};
    }
  return g;
}

// Applies the corruptions the bytes ask for. Returns true if any was applied.
bool Corrupt(Graph& g, Cursor& c, Rng& rng) {
  bool any = false;
  const int rounds = c.u8() % 4 == 0 ? c.range(1, 3) : 0;
  for (int r = 0; r < rounds; ++r) {
    any = true;
    const int what = c.u8() % 8;
    NodeSpec& n = g.nodes[c.u8() % g.nodes.size()];
    TensorSpec& t = g.tensors[c.u8() % g.tensors.size()];
    switch (what) {
      case 0: {  // an option out of range / a new key
        if (n.options.empty()) break;
        auto it = n.options.begin();
        std::advance(it, c.u8() % n.options.size());
        if (c.chance(32))
          n.options.erase(it);
        else
          it->second = WildInt(c);
        break;
      }
      case 1:  // raw option bytes
        n.raw_options = c.bytes(c.range(0, 64));
        if (n.raw_options.empty()) n.drop_options = true;
        break;
      case 2: {  // dims of a tensor
        if (c.chance(64)) {
          t.dims.resize(c.range(0, 6), 1);
        } else if (!t.dims.empty()) {
          const int64_t w = WildInt(c);
          t.dims[c.u8() % t.dims.size()] =
              c.chance(200) ? c.range(0, 9) : static_cast<int>(std::max<int64_t>(std::min<int64_t>(w, INT32_MAX), INT32_MIN));
        }
        Refill(t, rng);
        break;
      }
      case 3: {  // type of a tensor
        static const int kTypes[] = {kNoType, kFloat32, kInt32, kUInt8, kInt64, kBool,
                                     kInt16,  kInt8,    kFloat16, kFloat64, 17};
        t.type = kTypes[c.u8() % 11];
        Refill(t, rng);
        break;
      }
      case 4: {  // rewire an input or output
        std::vector<int>& list = c.chance(200) ? n.inputs : n.outputs;
        if (c.chance(40))
          list.resize(c.range(0, 6), -1);
        else if (!list.empty())
          list[c.u8() % list.size()] = c.range(-2, static_cast<int>(g.tensors.size()));
        break;
      }
      case 5:  // quantization parameters
        t.scale = c.chance(128) ? 0.0f : (c.chance(128) ? std::numeric_limits<float>::infinity()
                                                        : -1.0f);
        t.zero_point = static_cast<int>(WildInt(c));
        break;
      case 6: {  // flip bytes of a constant (SBF1 filters included)
        if (!t.constant || t.data.empty()) break;
        const int flips = c.range(1, 4);
        for (int i = 0; i < flips; ++i) t.data[c.u32() % t.data.size()] ^= static_cast<uint8_t>(1u << (c.u8() % 8));
        break;
      }
      case 7:  // a constant that is not constant (and the other way round)
        t.constant = !t.constant;
        Refill(t, rng);
        if (!t.constant) t.data.clear();
        break;
    }
  }
  return any;
}

// ---- naive reference for uncorrupted conv graphs (with or without pooling) -------

// The conv's input size (x, or x max-pooled) and output size.
void ConvGeometry(const Conv& v, int* ih, int* iw, int* oh, int* ow) {
  *ih = v.pool ? OutSize(v.h, v.pool_fh, v.pool_sh, 1, v.pool_padding) : v.h;
  *iw = v.pool ? OutSize(v.w, v.pool_fw, v.pool_sw, 1, v.pool_padding) : v.w;
  *oh = OutSize(*ih, v.kh, v.sh, v.dh, v.padding);
  *ow = OutSize(*iw, v.kw, v.sw, v.dw, v.padding);
}

void CheckNaive(const Conv& v, const std::vector<uint8_t>& out_and_x,
                const std::vector<float>* qmul = nullptr,
                const std::vector<float>* residual = nullptr) {
  const int cg = v.cin / v.groups, og = v.cout / v.groups;
  // The conv's input: x, or x max-pooled (windows clipped to x, SAME padding ignored).
  int ih = 0, iw = 0, oh = 0, ow = 0;
  ConvGeometry(v, &ih, &iw, &oh, &ow);
  const int qt = v.pool && v.pool_padding == 0 ? std::max(0, (ih - 1) * v.pool_sh + v.pool_fh - v.h) / 2 : 0;
  const int ql = v.pool && v.pool_padding == 0 ? std::max(0, (iw - 1) * v.pool_sw + v.pool_fw - v.w) / 2 : 0;
  const int eff_h = (v.kh - 1) * v.dh + 1, eff_w = (v.kw - 1) * v.dw + 1;
  const int pt = v.padding == 0 ? std::max(0, (oh - 1) * v.sh + eff_h - ih) / 2 : 0;
  const int pl = v.padding == 0 ? std::max(0, (ow - 1) * v.sw + eff_w - iw) / 2 : 0;
  const size_t out_elems = static_cast<size_t>(v.batch) * oh * ow *
                           (v.out_type == kInt32 ? (v.cout + 31) / 32 : v.cout);
  const size_t out_bytes = out_elems * TypeSize(v.out_type);
  const uint8_t* out = out_and_x.data();
  const uint8_t* x = out_and_x.data() + out_bytes;
  const size_t in_elems = static_cast<size_t>(v.batch) * v.h * v.w * v.cin;
  if (out_and_x.size() != out_bytes + in_elems * TypeSize(v.in_type))
    Die("naive check: buffer sizes do not match the shapes");
  auto sign = [&](size_t i) {
    if (v.in_type == kFloat32) {
      float f;
      std::memcpy(&f, x + 4 * i, 4);
      return f < 0.0f ? -1 : 1;
    }
    if (v.in_type == kInt8) return static_cast<int>(static_cast<int8_t>(x[i])) < v.in_zp ? -1 : 1;
    return x[i] == 0 ? -1 : 1;
  };
  // Sign of the conv input at (b, iy, ix, c): max over the pooling window (+1 unless all -1).
  auto conv_in = [&](int b, int iy, int ix, int c) {
    const auto at = [&](int y, int xx) { return sign(((static_cast<size_t>(b) * v.h + y) * v.w + xx) * v.cin + c); };
    if (!v.pool) return at(iy, ix);
    const int y0 = std::max(0, iy * v.pool_sh - qt), y1 = std::min(v.h, iy * v.pool_sh - qt + v.pool_fh);
    const int x0 = std::max(0, ix * v.pool_sw - ql), x1 = std::min(v.w, ix * v.pool_sw - ql + v.pool_fw);
    for (int y = y0; y < y1; ++y)
      for (int xx = x0; xx < x1; ++xx)
        if (at(y, xx) > 0) return 1;
    return -1;
  };
  const int K = v.kh * v.kw * cg;
  int lo = -K, hi = K;
  if (v.act == 1) lo = 0;
  if (v.act == 2) lo = -1, hi = 1;
  if (v.act == 3) lo = 0, hi = 6;
  lo = std::max(lo, -K);
  hi = std::min(hi, K);
  for (int b = 0; b < v.batch; ++b)
    for (int y = 0; y < oh; ++y)
      for (int xo = 0; xo < ow; ++xo) {
        const size_t pix = (static_cast<size_t>(b) * oh + y) * ow + xo;
        for (int o = 0; o < v.cout; ++o) {
          const int g = o / og;
          int dot = 0, dq = 0;
          for (int fy = 0; fy < v.kh; ++fy)
            for (int fx = 0; fx < v.kw; ++fx) {
              const int iy = y * v.sh - pt + fy * v.dh, ix = xo * v.sw - pl + fx * v.dw;
              const bool inside = iy >= 0 && iy < ih && ix >= 0 && ix < iw;
              for (int ch = 0; ch < cg; ++ch) {
                const int wv = v.connection[((static_cast<size_t>(o) * v.kh + fy) * v.kw + fx) * cg + ch] ? 1 : -1;
                const int xv = inside ? conv_in(b, iy, ix, g * cg + ch) : (v.pad_values == 1 ? 1 : 0);
                dot += xv * wv;
                dq += xv;
              }
            }
          double mul = v.has_mul ? v.mul[o] : 1.0, bias = v.has_bias ? v.bias[o] : 0.0;
          double want = std::min(hi, std::max(lo, dot)) * mul + bias;
          if (qmul != nullptr) {  // fused_q: clamp in output units
            mul = std::fabs(v.mul[o]) + std::fabs((*qmul)[o]);
            want = static_cast<double>(v.mul[o]) * dot + static_cast<double>((*qmul)[o]) * dq +
                   v.bias[o];
            const double flo = v.act == 1 || v.act == 3 ? 0.0 : v.act == 2 ? -1.0 : -HUGE_VAL;
            const double fhi = v.act == 2 ? 1.0 : v.act == 3 ? 6.0 : HUGE_VAL;
            want = std::min(fhi, std::max(flo, want));
            if (residual != nullptr)  // fused_add: float(y) + residual, one float add
              want = static_cast<double>(static_cast<float>(want) + (*residual)[pix * v.cout + o]);
          }
          if (v.out_type == kFloat32) {
            float got;
            std::memcpy(&got, out + 4 * (pix * v.cout + o), 4);
            const double tol = 1e-5 * std::max(1.0, std::fabs(want)) + 4e-7 * K * std::fabs(mul);
            if (!(std::fabs(got - want) <= tol))
              Die("naive check: float output %zu/%d is %g, expected %g", pix, o, got, want);
          } else if (v.out_type == kInt8) {
            const double q = std::min(127.0, std::max(-128.0, std::round(want / v.out_scale) + v.out_zp));
            const int got = static_cast<int8_t>(out[pix * v.cout + o]);
            if (std::fabs(got - q) > 1)
              Die("naive check: int8 output %zu/%d is %d, expected %g", pix, o, got, q);
          } else {
            const int words = (v.cout + 31) / 32;
            uint32_t word;
            std::memcpy(&word, out + 4 * (pix * words + o / 32), 4);
            const int got = (word >> (o % 32)) & 1;
            int wantbit = (K - dot) > 2 * static_cast<int64_t>(v.thr[o]) ? 1 : 0;
            bool check = true;
            if (qmul != nullptr) {
              wantbit = want < 0.0 ? 1 : 0;
              check = std::fabs(want) > 1e-5 * std::max(1.0, std::fabs(static_cast<double>(v.bias[o]))) + 4e-7 * K * mul;
            }
            if (check && got != wantbit)
              Die("naive check: bit %zu/%d is %d, expected %d", pix, o, got, wantbit);
            if (o == v.cout - 1 && v.cout % 32 != 0 && (word >> (v.cout % 32)) != 0)
              Die("naive check: padding bits set in the bitpacked output");
          }
        }
      }
}

// ---- the quantize/dequantize graph ----------------------------------------------

Graph QuantGraph(Cursor& c, std::vector<int>* x_dims, int* out_type, float* out_scale,
                 int* out_zp, int* in_type, int* in_zp, bool* pooled) {
  Graph g;
  static const int kTypes[] = {kFloat32, kInt8, kBool};
  *in_type = kTypes[c.u8() % 3];
  *out_type = kTypes[c.u8() % 3];
  const int rank = c.range(1, 5);
  x_dims->clear();
  for (int i = 0; i < rank; ++i) x_dims->push_back(c.range(1, i == rank - 1 ? 130 : 5));
  *in_zp = static_cast<int8_t>(c.u8());
  *out_scale = c.chance(30) ? 0.9f + (c.u8() % 4) : 0.003f * (1 + c.u8());
  *out_zp = static_cast<int8_t>(c.u8());
  *pooled = rank == 4 && c.chance(100);
  const int ch = x_dims->back();
  g.tensors.push_back({*in_type, *x_dims, false, {}, 0.1f, *in_zp});
  g.tensors.push_back({kInt32, {1}});
  g.tensors.push_back({kInt32, {1, 1, 1, 1}});
  std::vector<int> od(x_dims->size(), 1);
  od.back() = ch;
  g.tensors.push_back({*out_type, od, false, {}, *out_scale, *out_zp});
  g.input = 0;
  g.nodes.push_back({"LceQuantize", {0}, {1}});
  if (*pooled) {
    g.nodes.push_back({"LceBMaxPool2d", {1}, {2},
                       {{"filter_height", c.range(1, 3)}, {"filter_width", c.range(1, 3)},
                        {"padding", 0}, {"stride_height", c.range(1, 2)},
                        {"stride_width", c.range(1, 2)}}});
    g.nodes.push_back({"LceDequantize", {2}, {3}});
  } else {
    g.nodes.push_back({"LceDequantize", {1}, {3}});
  }
  return g;
}

void CheckQuantNaive(const std::vector<uint8_t>& out_and_x, const std::vector<int>& dims,
                     int in_type, int in_zp, int out_type, float out_scale, int out_zp) {
  const size_t n = Elements(dims);
  const size_t out_bytes = n * TypeSize(out_type);
  if (out_and_x.size() != out_bytes + n * TypeSize(in_type)) Die("quant naive: sizes");
  const uint8_t* out = out_and_x.data();
  const uint8_t* x = out + out_bytes;
  const double offset = std::round(static_cast<double>(1.0f / out_scale));
  const int8_t zero_bit = static_cast<int8_t>(std::min(127.0, out_zp + offset));
  const int8_t one_bit = static_cast<int8_t>(std::max(-128.0, out_zp - offset));
  for (size_t i = 0; i < n; ++i) {
    bool negative;
    if (in_type == kFloat32) {
      float f;
      std::memcpy(&f, x + 4 * i, 4);
      negative = f < 0.0f;
    } else if (in_type == kInt8) {
      negative = static_cast<int8_t>(x[i]) < in_zp;
    } else {
      negative = x[i] == 0;
    }
    if (out_type == kFloat32) {
      float f;
      std::memcpy(&f, out + 4 * i, 4);
      if (f != (negative ? -1.0f : 1.0f)) Die("quantize/dequantize: element %zu is %g", i, f);
    } else if (out_type == kInt8) {
      if (static_cast<int8_t>(out[i]) != (negative ? one_bit : zero_bit))
        Die("quantize/dequantize int8: element %zu is %d", i, static_cast<int8_t>(out[i]));
    } else if (out[i] != (negative ? 0 : 1)) {
      Die("quantize/dequantize bool: element %zu is %d", i, out[i]);
    }
  }
}

void Compare(const Outcome& a, const Outcome& b, const char* what) {
  const bool forced_refused = b.errors.find("supports this shape") != std::string::npos;
  if (a.stage != b.stage && !forced_refused)
    Die("%s: outcomes differ (stage %d vs %d)\nfirst: %s\nsecond: %s", what, a.stage, b.stage,
        a.errors.c_str(), b.errors.c_str());
  if (a.stage == b.stage && a.outputs != b.outputs) {
    for (size_t i = 0; i < a.outputs.size() && i < b.outputs.size(); ++i)
      if (a.outputs[i] != b.outputs[i]) Die("%s: output %zu differs", what, i);
    Die("%s: output counts differ", what);
  }
}

}  // namespace
}  // namespace sbnn_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sbnn_fuzz;
  static const std::vector<std::string> kernels = KernelNames();
  Cursor c(data, size);
  Rng rng{Hash(data, size) | 1};
  const bool conv = c.u8() % 4 != 0;
  const int threads = c.range(2, 3);
  std::string kernel = "auto";
  if (c.chance(64)) kernel = kernels[c.u8() % kernels.size()];
  if (const char* forced = std::getenv("SBNN_FUZZ_KERNEL")) kernel = forced;  // for triage
  const uint64_t seed = rng.next();
  Graph g;
  Conv v{};
  std::vector<int> x_dims;
  int out_type = 0, in_type = 0, in_zp = 0, out_zp = 0;
  float out_scale = 1.0f;
  bool pooled = false;
  bool sparse_first = false;
  if (conv) {
    v = MakeConv(c, rng);
    sparse_first = c.chance(64);
    // Bitpacked outputs of the bit-plane kernels (compared on the count planes,
    // core/sparse_bitplane_bits.h): a quarter of the bitpacked conv graphs that would run
    // "auto" (which picks dense on these small shapes) force one, chosen from the
    // input's hash so that the corpus decodes as before.
    if (v.out_type == kInt32 && kernel == "auto" && std::getenv("SBNN_FUZZ_KERNEL") == nullptr) {
      const uint64_t h = Hash(data, size) >> 7;
      std::vector<const std::string*> bitplane;
      for (const std::string& k : kernels)
        if (k.find("bitplane") != std::string::npos) bitplane.push_back(&k);
      if (h % 4 == 0 && !bitplane.empty()) kernel = *bitplane[(h / 4) % bitplane.size()];
    }
    g = ConvGraph(v, sparse_first, rng);
    x_dims = g.tensors[kX].dims;
  } else {
    g = QuantGraph(c, &x_dims, &out_type, &out_scale, &out_zp, &in_type, &in_zp, &pooled);
  }
  g.width = 1 << (c.u8() % 4);
  g.key_width = 1 << (c.u8() % 4);
  g.type_choice = c.bytes(3);
  // A type choice of 255 writes one option as a float, which must be refused.
  const bool float_option =
      std::find(g.type_choice.begin(), g.type_choice.end(), 255) != g.type_choice.end();
  const bool corrupted = Corrupt(g, c, rng) || float_option;
  // Resize the input: another batch size and, sometimes, spatial size.
  std::vector<int> resize_to = g.tensors[g.input].dims;
  if (!resize_to.empty()) {
    resize_to[0] = resize_to[0] % 3 + 1 == resize_to[0] ? resize_to[0] + 1 : resize_to[0] % 3 + 1;
    if (resize_to.size() == 4 && c.chance(100)) {
      resize_to[1] = c.range(1, 10);
      resize_to[2] = c.range(1, 10);
    }
  }

  if (std::getenv("SBNN_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "fuzz_ops: %s graph, kernel %s, %d threads, %scorrupted\n",
                 conv ? "conv" : "quantize", kernel.c_str(), threads, corrupted ? "" : "not ");
    if (conv)
      std::fprintf(stderr,
                   "  conv: in %d %dx%dx%dx%d cout %d k %dx%d s %dx%d d %dx%d g %d pad %d pv %d act %d "
                   "out %d mul %d bias %d pool %d (%dx%d s%dx%d p%d) dequant %d sparse %d\n",
                   v.in_type, v.batch, v.h, v.w, v.cin, v.cout, v.kh, v.kw, v.sh, v.sw, v.dh, v.dw,
                   v.groups, v.padding, v.pad_values, v.act, v.out_type, v.has_mul, v.has_bias, v.pool,
                   v.pool_fh, v.pool_fw, v.pool_sh, v.pool_sw, v.pool_padding, v.dequant, sparse_first);
    for (size_t i = 0; i < g.tensors.size(); ++i) {
      std::fprintf(stderr, "  tensor %zu: type %d%s dims", i, g.tensors[i].type,
                   g.tensors[i].constant ? " const" : "");
      for (int d : g.tensors[i].dims) std::fprintf(stderr, " %d", d);
      std::fprintf(stderr, "\n");
    }
    for (const NodeSpec& n : g.nodes) {
      std::fprintf(stderr, "  %s in", n.op.c_str());
      for (int k : n.inputs) std::fprintf(stderr, " %d", k);
      std::fprintf(stderr, " out");
      for (int k : n.outputs) std::fprintf(stderr, " %d", k);
      for (const auto& kv : n.options) std::fprintf(stderr, " %s=%lld", kv.first.c_str(), (long long)kv.second);
      std::fprintf(stderr, "%s\n", n.raw_options.empty() ? "" : " (raw options)");
    }
  }
  if (std::getenv("SBNN_FUZZ_VERBOSE") != nullptr) {
    std::fprintf(stderr, "  resize input to");
    for (int d : resize_to) std::fprintf(stderr, " %d", d);
    std::fprintf(stderr, "\n");
  }
  const int watch = conv ? kO : 3;
  std::vector<uint8_t> first;
  const Outcome a = Run(g, 1, "reference", seed, 0, resize_to, &first, watch);
  const Outcome b = Run(g, threads, kernel.c_str(), seed, 0x5bd1e995u, resize_to);
  Compare(a, b, "reference/1 thread vs other kernel/threads");
  if (corrupted) return 0;
  if (a.stage < 4) Die("an uncorrupted graph failed at stage %d: %s", a.stage, a.errors.c_str());
  if (conv) {
    // The same graph with the other filter storage (dense <-> SBF1).
    const Graph other = ConvGraph(v, !sparse_first, rng);
    Graph g2 = other;
    g2.width = g.width;
    g2.key_width = g.key_width;
    g2.type_choice = g.type_choice;
    const Outcome s = Run(g2, threads, kernel.c_str(), seed, 0x1234567u, resize_to);
    Compare(a, s, "LceBconv2d vs SbnnBconv2d");
    if (!v.dequant) CheckNaive(v, first);
    if (v.groups == 1) {
      // The same conv with fused_q (the {alpha, beta} arithmetic folded into the op).
      std::vector<float> qmul;
      for (int o = 0; o < v.cout; ++o) qmul.push_back(rng.uniform() * 0.5f);
      Conv fv = v;
      fv.has_mul = fv.has_bias = true;  // fused_q requires A and B
      Graph gf = FusedGraph(fv, qmul, rng);
      gf.width = g.width;
      gf.key_width = g.key_width;
      gf.type_choice = g.type_choice;
      std::vector<uint8_t> fused_first;
      const Outcome fa = Run(gf, 1, "reference", seed, 0, resize_to, &fused_first, kO);
      const Outcome fb = Run(gf, threads, kernel.c_str(), seed, 0x5bd1e995u, resize_to);
      Compare(fa, fb, "fused_q: reference/1 thread vs other kernel/threads");
      if (fa.stage < 4) Die("fused_q graph failed at stage %d: %s", fa.stage, fa.errors.c_str());
      if (!v.dequant) CheckNaive(fv, fused_first, &qmul);
      if (v.out_type == kFloat32 && !v.dequant) {
        // The same with a residual added in the op (fused_add = 1, input 6): a constant
        // of the first invoke's output shape, so that the resize after it must fail
        // cleanly at prepare (the shapes no longer match) in every run alike.
        int ih = 0, iw = 0, oh = 0, ow = 0;
        ConvGeometry(fv, &ih, &iw, &oh, &ow);
        std::vector<float> residual(static_cast<size_t>(v.batch) * oh * ow * v.cout);
        for (float& r : residual) r = rng.uniform() * 4.0f;
        Graph ga = gf;
        const int kR = static_cast<int>(ga.tensors.size());
        ga.tensors.push_back({kFloat32, {v.batch, oh, ow, v.cout}, true, Bytes(residual)});
        for (NodeSpec& n : ga.nodes)
          if (n.op == "SbnnBconv2d") {
            n.options["fused_add"] = 1;
            n.inputs.resize(6, -1);
            n.inputs.push_back(kR);
          }
        std::vector<uint8_t> added_first;
        const Outcome aa = Run(ga, 1, "reference", seed, 0, resize_to, &added_first, kO);
        const Outcome ab = Run(ga, threads, kernel.c_str(), seed, 0x5bd1e995u, resize_to);
        Compare(aa, ab, "fused_add: reference/1 thread vs other kernel/threads");
        if (aa.stage < 4) Die("fused_add graph failed at stage %d: %s", aa.stage, aa.errors.c_str());
        CheckNaive(fv, added_first, &qmul, &residual);
      }
    }
  } else if (!pooled) {
    CheckQuantNaive(first, x_dims, in_type, in_zp, out_type, out_scale, out_zp);
  }
  return 0;
}
