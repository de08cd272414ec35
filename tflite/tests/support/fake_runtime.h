// A stand-in for the TFLite runtime, for testing and fuzzing the delegate without
// TensorFlow (tests/delegate/fake_runtime_test.cc, the fuzz harnesses in tflite/fuzz/).
//
// It behaves like TFLite 2.16 where the delegate can tell: constant tensors point
// at exact-size copies of their buffers (kMmapRo, never resizable), other tensors
// are arena tensors whose data is null during prepare and allocated after it
// (like AllocateTensors), ResizeTensor takes ownership of a malloc'd dims array,
// custom options are visible on the original node only, delegate Prepare replaces
// one node per call, kernel init gets TfLiteDelegateParams. Beyond TFLite, it
// checks the delegate's promises and aborts (a crash for libFuzzer, a failed test)
// when one breaks:
//   * every failing prepare/invoke reported a message through ReportError;
//   * a node's invoke writes nothing but its own outputs (constants included);
//   * no tensor is resized to more than kMaxTensorBytes (a runtime would fail the
//     allocation cleanly; the delegate must then report, not crash).
#pragma once

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "abi/tflite_abi.h"
#include "sbnn_delegate.h"

namespace sbnn_test {

using namespace sbnn::abi;

// What the fake runtime allocates at most (larger tensors: it refuses, like a
// runtime whose allocation fails). Small enough to keep executions fast.
constexpr size_t kMaxTensorBytes = size_t{16} << 20;
constexpr size_t kMaxTotalBytes = size_t{64} << 20;

[[noreturn]] inline void Die(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  std::fprintf(stderr, "sbnn fake runtime: ");
  std::vfprintf(stderr, fmt, args);
  std::fprintf(stderr, "\n");
  va_end(args);
  std::abort();
}

inline IntArray* NewIntArray(const std::vector<int>& v) {
  auto* a = static_cast<IntArray*>(std::malloc(sizeof(int) * (1 + v.size())));
  a->size = static_cast<int>(v.size());
  for (size_t i = 0; i < v.size(); ++i) a->data[i] = v[i];
  return a;
}

// Element size of a TfLiteType, as TFLite defines it (0 for strings and the types
// the delegate never sees). Our own copy: the harnesses also link against the
// shipped library, which exports only its C API.
inline size_t TypeSize(int type) {
  switch (type) {
    case kFloat32: case kInt32: return 4;
    case kUInt8: case kInt8: case kBool: return 1;
    case kInt16: case kFloat16: return 2;
    case kInt64: case kFloat64: case kComplex64: return 8;
    default: return 0;
  }
}

// Bytes a tensor of `type` and `dims` needs; false on overflow or above `limit`.
inline bool TensorBytes(int type, const std::vector<int>& dims, size_t limit, size_t* bytes) {
  uint64_t n = TypeSize(type);
  for (int d : dims) {
    if (d < 0) return false;
    n *= static_cast<uint64_t>(d);
    if (n > limit) return false;
  }
  *bytes = static_cast<size_t>(n);
  return true;
}

inline void ReportErrorThunk(Context* c, const char* fmt, ...);

struct FakeRuntime {
  Context ctx;  // first member: the callbacks cast Context* back to FakeRuntime*
  std::vector<Tensor> tensors;
  std::vector<std::vector<uint8_t>> storage;
  std::vector<bool> constant;
  struct NodeRec {
    Node node;
    Registration reg;
    std::vector<uint8_t> options;
    std::string name;
    bool delegated = false;  // a delegate kernel node (created by the delegate)
  };
  std::deque<NodeRec> nodes;
  std::vector<int> plan;
  IntArray* plan_array = nullptr;
  std::string errors;
  TfLiteDelegate* delegate = nullptr;
  size_t allocated = 0;

  FakeRuntime() {
    std::memset(&ctx, 0, sizeof(ctx));
    ctx.GetExecutionPlan = [](Context* c, IntArray** out) {
      auto* rt = reinterpret_cast<FakeRuntime*>(c);
      std::free(rt->plan_array);
      rt->plan_array = NewIntArray(rt->plan);
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
      const size_t idx = static_cast<size_t>(t - rt->ctx.tensors);
      if (idx >= rt->tensors.size()) Die("ResizeTensor of a pointer that is not a tensor");
      if (dims == nullptr || dims->size < 0 || dims->size > 16) Die("ResizeTensor: bad dims");
      if (rt->constant[idx]) {  // TFLite: "Attempting to resize a fixed-size tensor."
        std::free(dims);
        ReportErrorThunk(c, "Attempting to resize a fixed-size tensor.");
        return kError;
      }
      std::vector<int> d(dims->data, dims->data + dims->size);
      size_t bytes = 0;
      if (!TensorBytes(t->type, d, kMaxTensorBytes, &bytes)) {
        std::free(dims);
        ReportErrorThunk(c, "fake runtime: tensor %zu would be too large", idx);
        return kError;
      }
      std::free(t->dims);
      t->dims = dims;
      t->bytes = bytes;
      rt->storage[idx].clear();  // arena data is planned after prepare
      rt->storage[idx].shrink_to_fit();
      t->data = nullptr;
      return kOk;
    };
    ctx.ReportError = ReportErrorThunk;
    ctx.ReplaceNodeSubsetsWithDelegateKernels = [](Context* c, Registration reg,
                                                   const IntArray* replace, Delegate* d) {
      auto* rt = reinterpret_cast<FakeRuntime*>(c);
      if (replace == nullptr || replace->size != 1) Die("delegate replaced %d nodes at once",
                                                        replace ? replace->size : -1);
      const int original = replace->data[0];
      if (original < 0 || original >= static_cast<int>(rt->nodes.size()) ||
          rt->nodes[original].delegated)
        Die("delegate replaced node %d, which is not an original node", original);
      NodeRec rec;
      std::memset(&rec.node, 0, sizeof(rec.node));
      rec.reg = reg;
      rec.delegated = true;
      rec.node.inputs = NewIntArray(std::vector<int>(rt->nodes[original].node.inputs->data,
                                                     rt->nodes[original].node.inputs->data +
                                                         rt->nodes[original].node.inputs->size));
      rec.node.outputs = NewIntArray(std::vector<int>(rt->nodes[original].node.outputs->data,
                                                      rt->nodes[original].node.outputs->data +
                                                          rt->nodes[original].node.outputs->size));
      rt->nodes.push_back(rec);
      const int index = static_cast<int>(rt->nodes.size()) - 1;
      DelegateParams params{d, NewIntArray({original}), NewIntArray({}), NewIntArray({})};
      NodeRec& n = rt->nodes[index];
      n.node.user_data = reg.init != nullptr
                             ? reg.init(c, reinterpret_cast<const char*>(&params), 0)
                             : nullptr;
      std::free(params.nodes_to_replace);
      std::free(params.input_tensors);
      std::free(params.output_tensors);
      for (int& p : rt->plan)
        if (p == original) p = index;
      return kOk;
    };
  }

  FakeRuntime(const FakeRuntime&) = delete;
  FakeRuntime& operator=(const FakeRuntime&) = delete;

  ~FakeRuntime() {
    for (auto& n : nodes) {
      if (n.delegated && n.reg.free != nullptr && n.node.user_data != nullptr)
        n.reg.free(&ctx, n.node.user_data);
      std::free(n.node.inputs);
      std::free(n.node.outputs);
    }
    for (auto& t : tensors) std::free(t.dims);
    std::free(plan_array);
    if (delegate != nullptr) sbnn_delegate_delete(delegate);
  }

  // A tensor; `constant_data` (exactly `constant_bytes` bytes) makes it kMmapRo.
  // Returns -1 when the runtime would refuse it (like TFLite's model building).
  int AddTensor(int type, const std::vector<int>& dims, const void* constant_data = nullptr,
                size_t constant_bytes = 0, float scale = 0.0f, int zero_point = 0) {
    Tensor t;
    std::memset(&t, 0, sizeof(t));
    t.type = static_cast<Type>(type);
    t.dims = NewIntArray(dims);
    // Constants must fit the fake runtime; arena tensors may declare any size that
    // does not overflow (TFLite's BytesRequired): allocation fails later, cleanly.
    size_t bytes = 0;
    if (!TensorBytes(type, dims, constant_data ? kMaxTensorBytes : (size_t{1} << 62), &bytes)) {
      std::free(t.dims);
      return -1;
    }
    t.params.scale = scale;
    t.params.zero_point = zero_point;
    const bool is_const = constant_data != nullptr;
    t.allocation_type = is_const ? kMmapRo : kArenaRw;
    t.bytes = is_const ? constant_bytes : bytes;
    tensors.push_back(t);
    constant.push_back(is_const);
    storage.emplace_back();
    if (is_const) {
      const auto* p = static_cast<const uint8_t*>(constant_data);
      storage.back().assign(p, p + constant_bytes);
    }
    return static_cast<int>(tensors.size()) - 1;
  }

  // Call after the last AddTensor.
  void Finalize() {
    ctx.tensors = tensors.data();
    ctx.tensors_size = tensors.size();
    for (size_t i = 0; i < tensors.size(); ++i)
      tensors[i].data = storage[i].empty() ? nullptr : storage[i].data();
  }

  void AddNode(int builtin_code, const std::string& custom_name, const std::vector<int>& ins,
               const std::vector<int>& outs, std::vector<uint8_t> options) {
    NodeRec rec;
    std::memset(&rec.node, 0, sizeof(rec.node));
    std::memset(&rec.reg, 0, sizeof(rec.reg));
    rec.name = custom_name;
    rec.options = std::move(options);
    rec.node.inputs = NewIntArray(ins);
    rec.node.outputs = NewIntArray(outs);
    nodes.push_back(std::move(rec));
    NodeRec& r = nodes.back();
    r.reg.builtin_code = builtin_code;
    r.reg.custom_name = builtin_code == kBuiltinCustom ? r.name.c_str() : nullptr;
    r.node.custom_initial_data = r.options.empty() ? nullptr : r.options.data();
    r.node.custom_initial_data_size = static_cast<int>(r.options.size());
    plan.push_back(static_cast<int>(nodes.size()) - 1);
  }

  // Creates the delegate and runs its Prepare (TFLite: ModifyGraphWithDelegate).
  bool ApplyDelegate(int threads, const char* kernel) {
    SbnnDelegateOptions o = sbnn_delegate_options_default();
    o.num_threads = threads;
    o.kernel = kernel;
    o.runtime = "tflite";
    o.runtime_version = "2.16.2";
    delegate = sbnn_delegate_create(&o);
    if (delegate == nullptr) Die("delegate creation failed: %s", sbnn_delegate_last_error());
    auto* d = reinterpret_cast<Delegate*>(delegate);
    const size_t before = errors.size();
    if (d->Prepare(&ctx, d) != kOk) {
      if (errors.size() == before) Die("delegate Prepare failed without a message");
      return false;
    }
    return true;
  }

  // Prepares the delegated nodes in plan order, then allocates every arena tensor
  // (TFLite: AllocateTensors). Non-delegated nodes keep their outputs as declared.
  bool Prepare() {
    for (int i : plan) {
      NodeRec& n = nodes[i];
      if (!n.delegated) continue;
      const size_t before = errors.size();
      if (n.reg.prepare(&ctx, &n.node) != kOk) {
        if (errors.size() == before) Die("node %d: prepare failed without a message", i);
        return false;
      }
    }
    allocated = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (constant[i]) continue;
      Tensor& t = tensors[i];
      allocated += t.bytes;
      if (t.bytes > kMaxTensorBytes || allocated > kMaxTotalBytes) {
        errors += "fake runtime: arena too large";
        return false;
      }
      storage[i].assign(t.bytes, 0xAB);  // garbage: outputs must be written
      t.data = t.bytes ? storage[i].data() : nullptr;
    }
    return true;
  }

  // Fills every arena tensor with bytes from a small generator: data read by the
  // graph (its inputs, outputs of non-delegated nodes, anything a delegated node
  // reads before one writes it) comes from `seed`; tensors a delegated node writes
  // before any reads them get garbage from `seed ^ salt` (two runs with different
  // salts show bytes an op forgot to write).
  void FillArena(uint64_t seed, uint64_t salt) {
    std::vector<bool> delegated_output(tensors.size(), false), read_first(tensors.size(), false);
    auto valid = [&](int t) { return t >= 0 && static_cast<size_t>(t) < tensors.size(); };
    for (int i : plan) {
      const NodeRec& n = nodes[i];
      if (!n.delegated) continue;
      for (int k = 0; k < n.node.inputs->size; ++k) {
        const int t = n.node.inputs->data[k];
        if (valid(t) && !delegated_output[t]) read_first[t] = true;
      }
      for (int k = 0; k < n.node.outputs->size; ++k) {
        const int o = n.node.outputs->data[k];
        if (valid(o)) delegated_output[o] = true;
      }
    }
    for (size_t t = 0; t < tensors.size(); ++t)
      if (read_first[t]) delegated_output[t] = false;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (constant[i]) continue;
      uint64_t s = (delegated_output[i] ? seed ^ salt : seed) + 0x9e3779b97f4a7c15ull * (i + 1);
      uint8_t* p = storage[i].data();
      const size_t n = storage[i].size();
      for (size_t k = 0; k < n; k += 8) {  // 8 bytes per step
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const uint64_t v = s ^ (s >> 29);
        std::memcpy(p + k, &v, n - k < 8 ? n - k : 8);
      }
    }
  }

  // Invokes the delegated nodes in plan order, checking that each writes only its
  // outputs. Returns false at the first failing node.
  bool Invoke() {
    for (int i : plan) {
      NodeRec& n = nodes[i];
      if (!n.delegated) continue;
      std::vector<bool> is_output(tensors.size(), false);
      for (int k = 0; k < n.node.outputs->size; ++k) {
        const int o = n.node.outputs->data[k];
        if (o >= 0 && static_cast<size_t>(o) < tensors.size()) is_output[o] = true;
      }
      std::vector<std::vector<uint8_t>> before_bytes(tensors.size());
      for (size_t t = 0; t < tensors.size(); ++t)
        if (!is_output[t]) before_bytes[t] = storage[t];
      const size_t before = errors.size();
      const Status s = n.reg.invoke(&ctx, &n.node);
      for (size_t t = 0; t < tensors.size(); ++t)
        if (!is_output[t] && before_bytes[t] != storage[t])
          Die("node %d (%s) wrote into tensor %zu, which is not its output%s", i,
              n.reg.custom_name ? n.reg.custom_name : "?", t,
              constant[t] ? " (a constant)" : "");
      if (s != kOk) {
        if (errors.size() == before) Die("node %d: invoke failed without a message", i);
        return false;
      }
    }
    return true;
  }

  // Resizes a graph input (TFLite: resize_tensor_input; TF 2.16 then re-runs the
  // delegate's kernels' prepare). Returns false if the runtime refuses.
  bool ResizeInput(int tensor, const std::vector<int>& dims) {
    if (tensor < 0 || static_cast<size_t>(tensor) >= tensors.size() || constant[tensor])
      return false;
    size_t bytes = 0;
    if (!TensorBytes(tensors[tensor].type, dims, kMaxTensorBytes, &bytes)) return false;
    return ctx.ResizeTensor(&ctx, &tensors[tensor], NewIntArray(dims)) == kOk;
  }

  // Output bytes of every delegated node, for differential comparisons.
  std::vector<std::vector<uint8_t>> DelegatedOutputs() const {
    std::vector<std::vector<uint8_t>> out;
    for (int i : plan) {
      const NodeRec& n = nodes[i];
      if (!n.delegated) continue;
      for (int k = 0; k < n.node.outputs->size; ++k) {
        const int o = n.node.outputs->data[k];
        if (o >= 0 && static_cast<size_t>(o) < tensors.size()) out.push_back(storage[o]);
      }
    }
    return out;
  }
};

inline void ReportErrorThunk(Context* c, const char* fmt, ...) {
  char buf[2048];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  auto* rt = reinterpret_cast<FakeRuntime*>(c);
  rt->errors += buf;
  rt->errors += "\n";
}

// Names of the compiled bconv2d kernels ("reference" first).
inline std::vector<std::string> KernelNames() {
  std::vector<std::string> names;
  const std::string all = sbnn_delegate_kernels();
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find(',', start);
    if (end == std::string::npos) end = all.size();
    names.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  // The bit-plane sparse kernels (not in the dense list), so that forced runs also cover
  // their fused output stages (core/bconv2d_output.h).
#if defined(__x86_64__)
  names.push_back("bconv2d_sparse_bitplane_512__avx512");
  names.push_back("bconv2d_sparse_bitplane_256__avx2");
#elif defined(__aarch64__)
  names.push_back("bconv2d_sparse_bitplane_128__neon");
#endif
  names.push_back("bconv2d_sparse_bitplane_64__scalar");
  return names;
}

// Deterministic 64-bit hash of the input (FNV-1a), for choices that must not
// depend on particular bytes (threads, kernel, input data).
inline uint64_t Hash(const uint8_t* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
  return h;
}

}  // namespace sbnn_test
