// The delegate's graph check (graph_check.h). Every rule and message here has its
// twin in sbnn_runtime/graph.py; change both together.
#include "delegate/graph_check.h"

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "delegate/flexbuffer.h"
#include "delegate/ops.h"

namespace sbnn {
namespace {

constexpr double kMaxTensorBytes = 2147483648.0;  // graph.py MAX_TENSOR_BYTES
constexpr int64_t kMaxStride = int64_t{1} << 16;  // graph.py MAX_STRIDE (the ops' bounds)

// Builtin recurrent ops (LSTM, RNN, their sequence forms, SVDF): optional inputs may
// be -1 anywhere. Every other builtin needs inputs 0 and 1 when it lists them.
bool is_recurrent(int code) {
  for (int c : {16, 24, 27, 35, 44, 46, 52})
    if (code == c) return true;
  return false;
}

// Builtin code -> inputs the op needs (all tensors), for the ops converted models hold
// and their neighbours (graph.py MIN_INPUTS; a STRIDED_SLICE without its strides
// crashed LiteRT 2.3). 0 for other ops.
int min_inputs(int code) {
  static const std::pair<int, int> kMinInputs[] = {
      {0, 2},  {1, 1},  {2, 1},  {3, 2},  {4, 2},  {6, 1},  {9, 2},  {14, 1}, {17, 1},
      {18, 2}, {19, 1}, {21, 1}, {22, 1}, {25, 1}, {28, 1}, {34, 2}, {36, 2}, {39, 2},
      {40, 2}, {41, 2}, {42, 2}, {43, 1}, {45, 4}, {49, 2}, {53, 1}, {55, 2}, {57, 2},
      {60, 3}, {65, 3}, {67, 3}, {74, 2}, {82, 2}, {89, 2}, {102, 3}, {114, 1}, {117, 1}};
  for (const auto& [c, n] : kMinInputs)
    if (c == code) return n;
  return 0;
}

// Element size per TfLiteType, as graph.py ELEMENT_BYTES gives it per schema type
// (1 for types without a fixed size).
double element_bytes(int type) {
  switch (type) {
    case 1: case 2: case 16: return 4;   // float32, int32, uint32
    case 4: case 8: case 11: case 13: return 8;  // int64, complex64, float64, uint64
    case 7: case 10: case 17: return 2;  // int16, float16, uint16
    case 12: return 16;                  // complex128
    default: return 1;
  }
}

// Bytes 0x20..0x7e except the quote; anything else becomes '?' (graph.py _printable).
std::string printable(const char* s, size_t limit) {
  std::string out;
  for (size_t i = 0; s != nullptr && s[i] != '\0' && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c <= 0x7e && c != '\'') ? static_cast<char>(c) : '?';
  }
  return out;
}

struct Graph {
  abi::Context* ctx;
  // The tensors have been allocated before: TFLite applies the delegate again after a
  // resize (TF 2.16 undoes and redoes every delegate), when the resized inputs and the
  // not yet propagated shapes after them disagree legitimately. The shape rules are for
  // the file's declared shapes, which the first application sees (before any arena
  // tensor has memory); later, TFLite's prepares propagate shapes themselves.
  bool allocated = false;
  std::string fail;  // first message

  const abi::Tensor& tensor(int k) const { return ctx->tensors[k]; }
  bool valid(int k) const { return k >= 0 && static_cast<size_t>(k) < ctx->tensors_size; }

  std::string tname(int k) const {
    const std::string name = printable(tensor(k).name, 60);
    return name.empty() ? "tensor " + std::to_string(k)
                        : "tensor " + std::to_string(k) + " ('" + name + "')";
  }
  std::vector<int64_t> shape(int k) const {
    const abi::IntArray* d = tensor(k).dims;
    if (d == nullptr || d->size < 0) return {};
    return std::vector<int64_t>(d->data, d->data + d->size);
  }
  bool constant(int k) const { return tensor(k).allocation_type == abi::kMmapRo; }

  bool bad(const std::string& msg) {
    if (fail.empty()) fail = "the .tflite graph is inconsistent: " + msg;
    return false;
  }
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int> ints(const abi::IntArray* a) {
  if (a == nullptr || a->size <= 0) return {};
  return std::vector<int>(a->data, a->data + a->size);
}

struct NodeInfo {
  int index = 0;
  std::string name;  // "LceBconv2d" or "builtin 3"
  int builtin = -1;  // -1 for custom ops
  std::vector<int> inputs, outputs;
  const abi::Node* node = nullptr;
  std::string where() const { return "op " + std::to_string(index) + " (" + name + ")"; }
};

// Rules on every tensor: no zero dimension, at most kMaxTensorBytes.
bool check_tensors(Graph* g) {
  for (size_t k = 0; k < g->ctx->tensors_size; ++k) {
    const int i = static_cast<int>(k);
    const std::vector<int64_t> s = g->shape(i);
    for (int64_t d : s)
      if (d == 0) return g->bad(g->tname(i) + " has a zero dimension (shape " + shape_str(s) + ")");
    double n = 1;  // in double like graph.py's float64 product, so both round alike
    for (int64_t d : s) n *= static_cast<double>(d);
    if (n * element_bytes(g->tensor(i).type) > kMaxTensorBytes)
      return g->bad(g->tname(i) + " of shape " + shape_str(s) + " needs more than 2147483648 bytes");
  }
  return true;
}

// One writer per tensor, never a constant. Fills producer (tensor -> op index).
bool check_writers(Graph* g, const std::vector<NodeInfo>& nodes, std::map<int, int>* producer) {
  for (const NodeInfo& n : nodes) {
    for (int k : n.outputs) {
      if (!g->valid(k)) continue;
      auto it = producer->find(k);
      if (it != producer->end())
        return g->bad(g->tname(k) + " is written by op " + std::to_string(it->second) + " and by " +
                      n.where());
      if (g->constant(k)) return g->bad(n.where() + " writes the constant " + g->tname(k));
      (*producer)[k] = n.index;
    }
  }
  return true;
}

// Output size of one spatial dimension, as TFLite computes it (graph.py _out_size).
int64_t out_size(int64_t size, int64_t window, int64_t stride, int64_t dilation, bool same) {
  const int64_t eff = (window - 1) * dilation + 1;
  if (same) return (size + stride - 1) / stride;
  return size >= eff ? (size - eff) / stride + 1 : 0;
}

struct Window {
  int64_t sh = 0, sw = 0, dh = 1, dw = 1, kh = -1, kw = -1;  // kh < 0: unknown (SBF1)
  int padding = 0;  // 0 SAME, 1 VALID, 2 unknown
};

// The window of a builtin conv/pool from its builtin_data (zeros when TFLite had no
// options of the right type: graph.py reads such options as zeros too).
bool builtin_window(const Graph& g, const NodeInfo& n, Window* w) {
  const void* data = n.node->builtin_data;
  auto pad = [](abi::Padding p) { return p == abi::kPaddingSame ? 0 : p == abi::kPaddingValid ? 1 : 2; };
  if (n.builtin == abi::kBuiltinConv2d || n.builtin == abi::kBuiltinDepthwiseConv2d) {
    if (n.inputs.size() < 2 || !g.valid(n.inputs[1])) return false;
    const std::vector<int64_t> fs = g.shape(n.inputs[1]);
    if (fs.size() != 4) return false;
    w->kh = fs[1];
    w->kw = fs[2];
    if (data == nullptr) return true;  // all zero
    if (n.builtin == abi::kBuiltinConv2d) {
      const auto* p = static_cast<const abi::ConvParams*>(data);
      *w = {p->stride_height, p->stride_width, p->dilation_height_factor, p->dilation_width_factor,
            w->kh, w->kw, pad(p->padding)};
    } else {
      const auto* p = static_cast<const abi::DepthwiseConvParams*>(data);
      *w = {p->stride_height, p->stride_width, p->dilation_height_factor, p->dilation_width_factor,
            w->kh, w->kw, pad(p->padding)};
    }
    return true;
  }
  if (n.builtin == abi::kBuiltinAveragePool2d || n.builtin == abi::kBuiltinMaxPool2d) {
    *w = {0, 0, 1, 1, 0, 0, 2};
    if (data == nullptr) return true;
    const auto* p = static_cast<const abi::PoolParams*>(data);
    *w = {p->stride_height, p->stride_width, 1, 1, p->filter_height, p->filter_width, pad(p->padding)};
    return true;
  }
  return false;
}

// The window of a binary conv or max-pool from its custom options, read the way the
// op reads them (flex::MapReader: ints, uints and bools). Missing, mistyped or
// out-of-bounds options: false (the op's prepare names them).
bool custom_window(const Graph& g, const NodeInfo& n, Window* w) {
  const bool pool = n.name == "LceBMaxPool2d";
  if (!pool && n.name != "LceBconv2d" && n.name != "SbnnBconv2d") return false;
  const int size = n.node->custom_initial_data_size;
  flex::MapReader map(size > 0 ? n.node->custom_initial_data : nullptr,
                      size > 0 ? static_cast<size_t>(size) : 0);
  if (!map.ok()) return false;
  auto get = [&](const char* key, int64_t dflt, bool required, int64_t* v) {
    switch (map.get_int(key, v)) {
      case flex::Lookup::kOk: return true;
      case flex::Lookup::kMissing: *v = dflt; return !required;
      default: return false;
    }
  };
  int64_t pad = 0;
  if (!get("stride_height", 0, true, &w->sh) || !get("stride_width", 0, true, &w->sw) ||
      !get("padding", 0, true, &pad) || (pad != 0 && pad != 1))
    return false;
  w->padding = static_cast<int>(pad);
  if (pool) {
    if (!get("filter_height", 0, true, &w->kh) || !get("filter_width", 0, true, &w->kw)) return false;
  } else {
    if (n.inputs.size() < 2 || n.inputs[1] < 0) return false;
    const std::vector<int64_t> fs = g.valid(n.inputs[1]) ? g.shape(n.inputs[1]) : std::vector<int64_t>{};
    if (n.name == "LceBconv2d" && fs.size() == 4) {
      w->kh = fs[1];
      w->kw = fs[2];
    }  // SbnnBconv2d: the window is in the SBF1 header, checked at prepare
    if (!get("dilation_height_factor", 1, false, &w->dh) ||
        !get("dilation_width_factor", 1, false, &w->dw))
      return false;
  }
  for (int64_t v : {w->sh, w->sw, w->dh, w->dw})
    if (v < 1 || v > kMaxStride) return false;
  if (w->kh >= 0 && (w->kh < 1 || w->kh > kMaxStride || w->kw < 1 || w->kw > kMaxStride)) return false;
  return true;
}

// Strides, dilations, windows and paddings in range; the declared output shape is the
// one the input shape and options give (graph.py _check_window).
bool check_window(Graph* g, const NodeInfo& n) {
  Window w;
  const bool builtin = n.builtin >= 0;
  if (!(builtin ? builtin_window(*g, n, &w) : custom_window(*g, n, &w))) return true;
  const std::pair<const char*, int64_t> bounds[] = {
      {"stride height", w.sh}, {"stride width", w.sw}, {"dilation height", w.dh}, {"dilation width", w.dw}};
  for (const auto& [label, v] : bounds)
    if (v < 1 || v > kMaxStride)
      return g->bad(n.where() + " has " + label + " " + std::to_string(v) + " (must be in 1.." +
                    std::to_string(kMaxStride) + ")");
  if (w.padding == 2) return g->bad(n.where() + " has an unknown padding (must be SAME or VALID)");
  if (n.inputs.empty() || n.inputs[0] < 0 || n.outputs.empty() || n.outputs[0] < 0) return true;
  const int x = n.inputs[0], y = n.outputs[0];
  if (!g->valid(x) || !g->valid(y) || g->allocated) return true;
  const std::vector<int64_t> xs = g->shape(x), ys = g->shape(y);
  if (xs.size() != 4 || ys.size() != 4) return true;  // rank errors: the op's prepare names them
  const bool same = w.padding == 0;
  if (w.kh < 0) {  // SbnnBconv2d
    if (!same) return true;
    w.kh = w.kw = 1;
  }
  const std::string win = std::to_string(w.kh) + "x" + std::to_string(w.kw);
  if (w.kh < 1 || w.kw < 1) return g->bad(n.where() + " has a " + win + " window");
  const int64_t oh = out_size(xs[1], w.kh, w.sh, w.dh, same);
  const int64_t ow = out_size(xs[2], w.kw, w.sw, w.dw, same);
  if ((oh < 1 || ow < 1) && !builtin) return true;  // the binary op's prepare names it
  if (oh < 1 || ow < 1)
    return g->bad(n.where() + ": its " + win + " window (dilation " + std::to_string(w.dh) + "x" +
                  std::to_string(w.dw) + ") does not fit the " + std::to_string(xs[1]) + "x" +
                  std::to_string(xs[2]) + " input " + g->tname(x) + " with VALID padding");
  if (ys[0] != xs[0] || ys[1] != oh || ys[2] != ow)
    return g->bad(n.where() + " computes a " + std::to_string(xs[0]) + "x" + std::to_string(oh) + "x" +
                  std::to_string(ow) + " output from " + g->tname(x) + " of shape " + shape_str(xs) +
                  " (stride " + std::to_string(w.sh) + "x" + std::to_string(w.sw) + ", dilation " +
                  std::to_string(w.dh) + "x" + std::to_string(w.dw) + ", window " + win + ", " +
                  (same ? "SAME" : "VALID") + "), but its output " + g->tname(y) + " is declared " +
                  shape_str(ys));
  return true;
}

// Per op: required inputs present, no self-reads, no reads of a later op's output.
bool check_reads(Graph* g, const NodeInfo& n, const std::map<int, int>& producer) {
  if (n.builtin >= 0 && !is_recurrent(n.builtin)) {
    const size_t need = static_cast<size_t>(min_inputs(n.builtin));
    if (n.inputs.size() < need)
      return g->bad(n.where() + " has " + std::to_string(n.inputs.size()) + " inputs; builtin " +
                    std::to_string(n.builtin) + " needs " + std::to_string(need));
    for (size_t slot = 0; slot < n.inputs.size() && slot < std::max<size_t>(2, need); ++slot)
      if (n.inputs[slot] < 0)
        return g->bad(n.where() + " has no tensor for its required input " + std::to_string(slot));
  }
  const std::set<int> outs(n.outputs.begin(), n.outputs.end());
  for (int k : n.inputs) {
    if (!g->valid(k)) continue;
    if (outs.count(k)) return g->bad(n.where() + " reads its own output " + g->tname(k));
    if (g->constant(k) || g->tensor(k).is_variable) continue;
    auto p = producer.find(k);
    if (p != producer.end() && p->second > n.index)
      return g->bad(n.where() + " reads " + g->tname(k) + " before op " + std::to_string(p->second) +
                    " writes it (ops out of order)");
  }
  return check_window(g, n);
}

}  // namespace

std::string check_graph(abi::Context* ctx, const std::vector<int>& plan) {
  Graph g{ctx, false, ""};
  for (size_t k = 0; k < ctx->tensors_size; ++k)
    g.allocated = g.allocated || (ctx->tensors[k].allocation_type == abi::kArenaRw &&
                                  ctx->tensors[k].data != nullptr);
  std::vector<NodeInfo> nodes;
  for (int index : plan) {
    abi::Node* node = nullptr;
    abi::Registration* reg = nullptr;
    if (ctx->GetNodeAndRegistration(ctx, index, &node, &reg) != abi::kOk || node == nullptr ||
        reg == nullptr)
      return "cannot read node " + std::to_string(index);
    NodeInfo n;
    n.index = index;
    n.node = node;
    if (reg->builtin_code == abi::kBuiltinCustom) {
      n.name = printable(reg->custom_name, 256);
    } else {
      n.builtin = reg->builtin_code;
      n.name = "builtin " + std::to_string(reg->builtin_code);
    }
    n.inputs = ints(node->inputs);
    n.outputs = ints(node->outputs);
    nodes.push_back(std::move(n));
  }
  std::map<int, int> producer;
  if (!check_tensors(&g) || !check_writers(&g, nodes, &producer)) return g.fail;
  for (const NodeInfo& n : nodes)
    if (!check_reads(&g, n, producer)) return g.fail;
  return "";
}

}  // namespace sbnn
