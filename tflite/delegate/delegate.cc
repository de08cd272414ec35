// The delegate: creation (options, version gate, ABI self-check), graph
// partitioning (one claimed node per partition) and the kernel glue that
// forwards init/prepare/invoke/free to the ops. Claimed: the custom ops
// LceQuantize, LceDequantize, LceBconv2d, LceBMaxPool2d and the project's
// SbnnBconv2d (LceBconv2d with an SBF1-compressed filter).
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "abi/tflite_abi.h"
#include "core/bconv2d.h"
#include "core/bconv2d_select.h"
#include "delegate/graph_check.h"
#include "delegate/ops.h"
#include "delegate/thread_pool.h"
#include "sbnn_delegate.h"

#ifndef SBNN_VERSION
#error "SBNN_VERSION is defined by tflite/CMakeLists.txt from the repository's VERSION file"
#endif

namespace sbnn {
namespace {

// Runtime/version pairs whose ABI was checked against abi/tflite_abi.h.
struct TestedRuntime {
  const char* runtime;
  const char* version;
};
constexpr TestedRuntime kTestedRuntimes[] = {
    {"tensorflow", "2.16.1"}, {"tensorflow", "2.16.2"}, {"tflite", "2.16.1"},
    {"tflite", "2.16.2"},     {"ai_edge_litert", "2.3.0"},
};
constexpr const char* kKnownRuntimes[] = {"tensorflow", "tflite", "ai_edge_litert"};

constexpr int kMaxThreads = 64;

struct Config {
  int num_threads = 1;
  std::string kernel = "auto";
  std::string runtime;
  std::string runtime_version;
  bool allow_untested = false;
};

// Everything a delegate owns; abi::Delegate::data_ points here.
struct State {
  explicit State(const Config& c) : config(c), pool(c.num_threads) {
    shared.pool = &pool;
    shared.kernel = c.kernel;
    shared.owner = this;
    shared.record_kernel = [](void* owner, int node, const char* name) {
      auto* s = static_cast<State*>(owner);
      std::lock_guard<std::mutex> lock(s->mutex);
      s->kernels[node] = name;
    };
  }
  Config config;
  ThreadPool pool;
  DelegateShared shared;
  std::mutex mutex;
  std::map<int, std::string> claimed;  // original node index -> op name
  std::map<int, std::string> kernels;  // original node index -> bconv2d kernel
};

thread_local std::string g_last_error;

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  return buf;
}

std::string tested_runtimes_string() {
  std::string s;
  for (const auto& t : kTestedRuntimes) {
    if (!s.empty()) s += ",";
    s += std::string(t.runtime) + " " + t.version;
  }
  return s;
}

std::string kernels_string() {
  std::string s = "reference";
  for (const BConv2DKernel* const* k = all_bconv2d_kernels(); k != nullptr && *k != nullptr; ++k) {
    if ((*k)->name == nullptr || std::strcmp((*k)->name, "reference") == 0) continue;
    s += ",";
    s += (*k)->name;
  }
  return s;
}

// Accepts what select_bconv2d_kernel can match: "auto", "reference", a full
// kernel name (dense or sparse), or the start of the ISA part of a dense one (after
// "__", e.g. "avx2").
bool known_kernel(const std::string& name) {
  if (name == "auto" || name == "reference") return true;
  if (name.empty() || name.size() > 128) return false;
  for (const BConv2DKernel* const* k = all_bconv2d_kernels(); k != nullptr && *k != nullptr; ++k) {
    if ((*k)->name == nullptr) continue;
    const std::string full = (*k)->name;
    if (name == full) return true;
    const size_t sep = full.find("__");
    if (sep != std::string::npos && full.compare(sep + 2, name.size(), name) == 0) return true;
  }
  // Sparse kernels (bconv2d_select.h) by their full name only, as find_forced matches
  // them: e.g. "bconv2d_sparse_k01__scalar" to measure the K0-skipping kernel.
  for (const BConv2DKernel* const* k = all_sparse_bconv2d_kernels(); k != nullptr && *k != nullptr;
       ++k)
    if ((*k)->name != nullptr && name == (*k)->name) return true;
  return false;
}

// Validates a configuration; returns an error message or "".
std::string validate(const Config& c) {
  if (const char* abi_error = abi::abi_self_check())
    return std::string("sbnn delegate: ABI self-check failed: ") + abi_error;
  if (c.num_threads < 1 || c.num_threads > kMaxThreads)
    return format("sbnn delegate: num_threads must be in [1, %d], got %d", kMaxThreads,
                  c.num_threads);
  if (!known_kernel(c.kernel))
    return "sbnn delegate: unknown kernel '" + c.kernel +
           "'; use 'auto' or one of: " + kernels_string();
  if (c.runtime.empty() || c.runtime_version.empty())
    return "sbnn delegate: the options 'runtime' and 'runtime_version' are required (e.g. "
           "runtime=tensorflow runtime_version=2.16.2); tested: " +
           tested_runtimes_string();
  bool known_runtime = false;
  for (const char* r : kKnownRuntimes) known_runtime = known_runtime || c.runtime == r;
  if (!known_runtime)
    return "sbnn delegate: unknown runtime '" + c.runtime +
           "' (expected tensorflow, tflite or ai_edge_litert)";
  bool tested = false;
  for (const auto& t : kTestedRuntimes)
    tested = tested || (c.runtime == t.runtime && c.runtime_version == t.version);
  if (!tested && !c.allow_untested)
    return "sbnn delegate: " + c.runtime + " " + c.runtime_version +
           " is not a tested runtime version; the delegate declares TFLite's ABI itself and "
           "only runs where it was checked (" +
           tested_runtimes_string() + ")";
  return "";
}

// ---- kernel glue ------------------------------------------------------------

struct KernelRegistration {
  OpKind kind;
  const char* name;
};

void* kernel_init(abi::Context* ctx, const char* buffer, size_t /*length*/, OpKind kind) {
  const auto* params = reinterpret_cast<const abi::DelegateParams*>(buffer);
  if (params == nullptr || params->nodes_to_replace == nullptr ||
      params->nodes_to_replace->size != 1 || params->delegate == nullptr ||
      params->delegate->data_ == nullptr) {
    if (ctx != nullptr && ctx->ReportError != nullptr)
      ctx->ReportError(ctx, "sbnn delegate: unexpected delegate kernel parameters\n");
    return nullptr;
  }
  auto* state = static_cast<State*>(params->delegate->data_);
  const int node_index = params->nodes_to_replace->data[0];
  abi::Node* node = nullptr;
  abi::Registration* reg = nullptr;
  if (ctx->GetNodeAndRegistration(ctx, node_index, &node, &reg) != abi::kOk || node == nullptr) {
    ctx->ReportError(ctx, "sbnn delegate: cannot read node %d\n", node_index);
    return nullptr;
  }
  try {
    return create_op(kind, node_index, *node, &state->shared).release();
  } catch (const std::bad_alloc&) {
    ctx->ReportError(ctx, "sbnn delegate: out of memory creating node %d\n", node_index);
    return nullptr;
  }
}

void kernel_free(abi::Context*, void* buffer) { delete static_cast<Op*>(buffer); }

abi::Status kernel_prepare(abi::Context* ctx, abi::Node* node) {
  auto* op = static_cast<Op*>(node->user_data);
  if (op == nullptr) {
    ctx->ReportError(ctx, "sbnn delegate: node was not initialised (see the previous error)\n");
    return abi::kError;
  }
  try {
    return op->prepare(ctx);
  } catch (const std::exception& e) {
    return op->fail(ctx, "exception in prepare: %s", e.what());
  }
}

abi::Status kernel_invoke(abi::Context* ctx, abi::Node* node) {
  auto* op = static_cast<Op*>(node->user_data);
  if (op == nullptr) return abi::kError;
  try {
    return op->invoke(ctx);
  } catch (const std::exception& e) {
    return op->fail(ctx, "exception in invoke: %s", e.what());
  }
}

template <OpKind kKind>
void* kernel_init_for(abi::Context* ctx, const char* buffer, size_t length) {
  return kernel_init(ctx, buffer, length, kKind);
}

abi::Registration make_registration(OpKind kind) {
  abi::Registration r;
  std::memset(&r, 0, sizeof(r));
  switch (kind) {
    case OpKind::kQuantize:
      r.init = kernel_init_for<OpKind::kQuantize>;
      r.custom_name = "SbnnDelegate/LceQuantize";
      break;
    case OpKind::kDequantize:
      r.init = kernel_init_for<OpKind::kDequantize>;
      r.custom_name = "SbnnDelegate/LceDequantize";
      break;
    case OpKind::kBconv2d:
      r.init = kernel_init_for<OpKind::kBconv2d>;
      r.custom_name = "SbnnDelegate/LceBconv2d";
      break;
    case OpKind::kBMaxPool2d:
      r.init = kernel_init_for<OpKind::kBMaxPool2d>;
      r.custom_name = "SbnnDelegate/LceBMaxPool2d";
      break;
    case OpKind::kSbnnBconv2d:
      r.init = kernel_init_for<OpKind::kSbnnBconv2d>;
      r.custom_name = "SbnnDelegate/SbnnBconv2d";
      break;
  }
  r.free = kernel_free;
  r.prepare = kernel_prepare;
  r.invoke = kernel_invoke;
  r.builtin_code = abi::kBuiltinCustom;
  r.version = 1;
  return r;
}

// ---- delegate Prepare: claim the LCE nodes, one partition each ------------------

abi::Status delegate_prepare(abi::Context* ctx, abi::Delegate* delegate) {
  char err[256];
  if (!abi::abi_check_context(ctx, err, sizeof(err))) {
    if (abi::abi_can_report(ctx))
      ctx->ReportError(ctx,
                       "sbnn delegate: the runtime's TfLiteContext does not look like the "
                       "declared ABI (%s); refusing to run\n",
                       err);
    return abi::kError;
  }
  auto* state = static_cast<State*>(delegate->data_);
  abi::IntArray* plan = nullptr;
  if (ctx->GetExecutionPlan(ctx, &plan) != abi::kOk || plan == nullptr) return abi::kError;
  // Copy first: replacing nodes invalidates the plan array.
  std::vector<int> nodes(plan->data, plan->data + plan->size);
  // The graph's own consistency first: TFLite's partitioner and kernels crash on some
  // graphs they accept (graph_check.h); refuse those before asking it to partition.
  const std::string graph_error = check_graph(ctx, nodes);
  if (!graph_error.empty()) {
    ctx->ReportError(ctx, "sbnn delegate: %s\n", graph_error.c_str());
    return abi::kError;
  }
  std::vector<std::pair<int, OpKind>> claims;
  for (int node_index : nodes) {
    abi::Node* node = nullptr;
    abi::Registration* reg = nullptr;
    if (ctx->GetNodeAndRegistration(ctx, node_index, &node, &reg) != abi::kOk || reg == nullptr)
      return abi::kError;
    OpKind kind;
    if (reg->builtin_code == abi::kBuiltinCustom && op_kind_from_name(reg->custom_name, &kind))
      claims.emplace_back(node_index, kind);
  }
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    state->claimed.clear();
    state->kernels.clear();
    for (const auto& c : claims) state->claimed[c.first] = op_kind_name(c.second);
  }
  for (const auto& c : claims) {
    // Each call makes one partition: adjacent claimed nodes are not merged
    // (a merged partition would leave its inner tensors unallocated).
    const int idx = c.first;
    abi::IntArray* to_replace = make_int_array(&idx, 1);
    if (to_replace == nullptr) return abi::kError;
    const abi::Status s = ctx->ReplaceNodeSubsetsWithDelegateKernels(
        ctx, make_registration(c.second), to_replace, delegate);
    std::free(to_replace);
    if (s != abi::kOk) return s;
  }
  return abi::kOk;
}

abi::Delegate* create(const Config& config, std::string* error) {
  *error = validate(config);
  if (!error->empty()) return nullptr;
  void* mem = std::calloc(1, abi::kDelegateAllocBytes);
  if (mem == nullptr) {
    *error = "sbnn delegate: out of memory";
    return nullptr;
  }
  State* state = nullptr;
  try {
    state = new State(config);
  } catch (const std::exception& e) {
    std::free(mem);
    *error = std::string("sbnn delegate: cannot start: ") + e.what();
    return nullptr;
  }
  auto* d = static_cast<abi::Delegate*>(mem);
  d->data_ = state;
  d->Prepare = delegate_prepare;
  d->flags = abi::kFlagsAllowDynamicTensors;
  return d;
}

void destroy(abi::Delegate* d) {
  if (d == nullptr) return;
  delete static_cast<State*>(d->data_);
  std::free(d);
}

bool parse_int(const char* s, int* out) {
  if (s == nullptr || *s == '\0') return false;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < -1000000 || v > 1000000) return false;
  *out = static_cast<int>(v);
  return true;
}

}  // namespace
}  // namespace sbnn

using sbnn::abi::Delegate;

extern "C" {

SBNN_API SbnnDelegateOptions sbnn_delegate_options_default(void) {
  SbnnDelegateOptions o;
  o.num_threads = 1;
  o.kernel = "auto";
  o.runtime = "tflite";
  o.runtime_version = nullptr;
  o.allow_untested_runtime = 0;
  return o;
}

SBNN_API struct TfLiteDelegate* sbnn_delegate_create(const SbnnDelegateOptions* options) {
  const SbnnDelegateOptions o = options != nullptr ? *options : sbnn_delegate_options_default();
  sbnn::Config c;
  c.num_threads = o.num_threads;
  c.kernel = o.kernel != nullptr ? o.kernel : "auto";
  c.runtime = o.runtime != nullptr ? o.runtime : "";
  c.runtime_version = o.runtime_version != nullptr ? o.runtime_version : "";
  c.allow_untested = o.allow_untested_runtime != 0;
  std::string error;
  Delegate* d = nullptr;
  try {
    d = sbnn::create(c, &error);
  } catch (const std::exception& e) {
    error = std::string("sbnn delegate: ") + e.what();
  }
  sbnn::g_last_error = error;
  return reinterpret_cast<struct TfLiteDelegate*>(d);
}

SBNN_API void sbnn_delegate_delete(struct TfLiteDelegate* delegate) {
  sbnn::destroy(reinterpret_cast<Delegate*>(delegate));
}

SBNN_API const char* sbnn_delegate_last_error(void) { return sbnn::g_last_error.c_str(); }

SBNN_API const char* sbnn_delegate_version(void) { return SBNN_VERSION; }

SBNN_API const char* sbnn_delegate_tested_runtimes(void) {
  static const std::string s = sbnn::tested_runtimes_string();
  return s.c_str();
}

SBNN_API const char* sbnn_delegate_kernels(void) {
  static const std::string s = sbnn::kernels_string();
  return s.c_str();
}

SBNN_API int sbnn_delegate_kernel_known(const char* name) {
  return name != nullptr && sbnn::known_kernel(name) ? 1 : 0;
}

SBNN_API size_t sbnn_delegate_describe(const struct TfLiteDelegate* delegate, char* buf,
                                       size_t size) {
  std::string text;
  if (delegate != nullptr) {
    auto* state =
        static_cast<sbnn::State*>(reinterpret_cast<const Delegate*>(delegate)->data_);
    std::lock_guard<std::mutex> lock(state->mutex);
    text += sbnn::format("runtime=%s %s num_threads=%d kernel=%s\n",
                         state->config.runtime.c_str(), state->config.runtime_version.c_str(),
                         state->config.num_threads, state->config.kernel.c_str());
    for (const auto& [node, name] : state->claimed) {
      text += sbnn::format("node %d %s", node, name.c_str());
      auto k = state->kernels.find(node);
      if (k != state->kernels.end()) text += " kernel=" + k->second;
      text += "\n";
    }
  }
  if (buf != nullptr && size > 0) {
    const size_t n = text.size() < size - 1 ? text.size() : size - 1;
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return text.size();
}

SBNN_API struct TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values,
                                                              int num_options,
                                                              void (*report_error)(const char*)) {
  auto report = [&](const std::string& msg) {
    sbnn::g_last_error = msg;
    if (report_error != nullptr) report_error(msg.c_str());
  };
  if (num_options < 0 || num_options > 64 || (num_options > 0 && (keys == nullptr || values == nullptr))) {
    report("sbnn delegate: invalid option list");
    return nullptr;
  }
  sbnn::Config c;
  try {
    for (int i = 0; i < num_options; ++i) {
      if (keys[i] == nullptr || values[i] == nullptr) {
        report("sbnn delegate: null option key or value");
        return nullptr;
      }
      const std::string key = keys[i];
      const char* value = values[i];
      if (key == "num_threads") {
        if (!sbnn::parse_int(value, &c.num_threads)) {
          report(std::string("sbnn delegate: num_threads must be an integer, got '") + value + "'");
          return nullptr;
        }
      } else if (key == "kernel") {
        c.kernel = value;
      } else if (key == "runtime") {
        c.runtime = value;
      } else if (key == "runtime_version") {
        c.runtime_version = value;
      } else if (key == "allow_untested_runtime") {
        c.allow_untested = std::strcmp(value, "1") == 0 || std::strcmp(value, "true") == 0 ||
                           std::strcmp(value, "True") == 0;
      } else {
        report("sbnn delegate: unknown option '" + key +
               "' (known: num_threads, kernel, runtime, runtime_version, "
               "allow_untested_runtime)");
        return nullptr;
      }
    }
    std::string error;
    Delegate* d = sbnn::create(c, &error);
    if (d == nullptr) {
      report(error);
      return nullptr;
    }
    sbnn::g_last_error.clear();
    return reinterpret_cast<struct TfLiteDelegate*>(d);
  } catch (const std::exception& e) {
    report(std::string("sbnn delegate: ") + e.what());
    return nullptr;
  }
}

SBNN_API void tflite_plugin_destroy_delegate(struct TfLiteDelegate* delegate) {
  sbnn::destroy(reinterpret_cast<Delegate*>(delegate));
}

}  // extern "C"
