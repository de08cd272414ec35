// Run-time checks of the declared TfLite ABI (see tflite_abi.h).
#include "abi/tflite_abi.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <initializer_list>

#if defined(__linux__)
#include <fcntl.h>
#include <unistd.h>
#endif

namespace sbnn {
namespace abi {

size_t type_size(int type) {
  switch (type) {
    case kFloat32:
    case kInt32:
      return 4;
    case kUInt8:
    case kInt8:
    case kBool:
      return 1;
    case kInt16:
    case kFloat16:
      return 2;
    case kInt64:
    case kFloat64:
    case kComplex64:
      return 8;
    default:
      return 0;
  }
}

const char* abi_self_check() {
  const uint32_t probe = 0x01020304u;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  if (first != 0x04) return "byte order is not little-endian";
  if (sizeof(bool) != 1) return "sizeof(bool) != 1";
  if (sizeof(int) != 4 || sizeof(size_t) != 8 || sizeof(void*) != 8)
    return "int/size_t/pointer sizes are not 4/8/8";
  if (sizeof(Tensor) != 112 || offsetof(Tensor, bytes) != 40 || offsetof(Tensor, params) != 24)
    return "TfLiteTensor layout";
  if (sizeof(Registration) != 88 || offsetof(Registration, custom_name) != 48)
    return "TfLiteRegistration layout";
  if (offsetof(Context, ReplaceNodeSubsetsWithDelegateKernels) != 64 ||
      offsetof(Context, ReportError) != 40)
    return "TfLiteContext layout";
  if (offsetof(Node, custom_initial_data_size) != 56) return "TfLiteNode layout";
  if (offsetof(Delegate, flags) != 40) return "TfLiteDelegate layout";
  return nullptr;
}

namespace {

bool fail(char* err, size_t err_size, const char* fmt, ...) {
  if (err != nullptr && err_size > 0) {
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(err, err_size, fmt, args);
    va_end(args);
  }
  return false;
}

// With a layout mismatch, the pointers read from the context are garbage: every
// pointer is probed before it is dereferenced, and every callback must point into
// executable memory before it is called, so that the check itself never faults.
// Readability: write(2) of the bytes into a pipe fails with EFAULT instead of
// faulting. Executability: /proc/self/maps. Where neither is available (not Linux),
// only null and tiny or misaligned pointers are refused.
class Probe {
 public:
  Probe() {
#if defined(__linux__)
    if (pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) fds_[0] = fds_[1] = -1;
#endif
  }
  ~Probe() {
#if defined(__linux__)
    if (fds_[0] >= 0) close(fds_[0]);
    if (fds_[1] >= 0) close(fds_[1]);
#endif
  }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  bool readable(const void* p, size_t n, size_t align = 1) const {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    if (a < 4096 || a % align != 0 || n > (size_t{1} << 30) || a + n < a) return false;
#if defined(__linux__)
    if (fds_[1] < 0) return true;
    char sink[4096];
    for (size_t done = 0; done < n;) {
      const size_t k = n - done < sizeof(sink) ? n - done : sizeof(sink);
      const ssize_t w = write(fds_[1], static_cast<const char*>(p) + done, k);
      if (w <= 0) return false;  // EFAULT: not mapped readable
      if (read(fds_[0], sink, static_cast<size_t>(w)) != w) return false;
      done += static_cast<size_t>(w);
    }
#endif
    return true;
  }

  // True when every pointer lies in an executable mapping (one pass over the maps).
  bool executable(std::initializer_list<const void*> fns) const {
    for (const void* fn : fns)
      if (reinterpret_cast<uintptr_t>(fn) < 4096) return false;
#if defined(__linux__)
    std::FILE* maps = std::fopen("/proc/self/maps", "re");
    if (maps == nullptr) return true;
    bool ok[8] = {false};
    const size_t n = fns.size() < 8 ? fns.size() : 8;
    char line[512];
    while (std::fgets(line, sizeof(line), maps) != nullptr) {
      unsigned long lo = 0, hi = 0;
      char perms[8] = {0};
      if (std::sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[2] == 'x') {
        size_t i = 0;
        for (const void* fn : fns) {
          const uintptr_t a = reinterpret_cast<uintptr_t>(fn);
          if (i < n && a >= lo && a < hi) ok[i] = true;
          ++i;
        }
      }
      // Skip the rest of an over-long line.
      while (std::strchr(line, '\n') == nullptr && std::fgets(line, sizeof(line), maps) != nullptr) {
      }
    }
    std::fclose(maps);
    for (size_t i = 0; i < n; ++i)
      if (!ok[i]) return false;
#endif
    return true;
  }

  // A readable IntArray: its size field, then `size` (at most `max_read`) elements.
  bool int_array(const IntArray* arr, int max_size, int max_read) const {
    if (!readable(arr, sizeof(int), alignof(int))) return false;
    if (arr->size < 0 || arr->size > max_size) return false;
    const int n = arr->size < max_read ? arr->size : max_read;
    return readable(arr->data, sizeof(int) * static_cast<size_t>(n));
  }

 private:
  int fds_[2] = {-1, -1};
};

// A bounded, printable, NUL-terminated string (op names are short ASCII).
bool plausible_name(const Probe& probe, const char* s) {
  for (int i = 0; i < 256; ++i) {
    if (!probe.readable(s + i, 1)) return false;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return true;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return false;
}

// The TfLiteContext functions the delegate calls: present and pointing to code.
bool check_functions(const Probe& probe, Context* context, char* err, size_t err_size) {
  if (context->GetExecutionPlan == nullptr || context->ResizeTensor == nullptr ||
      context->ReportError == nullptr || context->GetNodeAndRegistration == nullptr ||
      context->ReplaceNodeSubsetsWithDelegateKernels == nullptr)
    return fail(err, err_size, "a TfLiteContext function pointer we need is null");
  if (!probe.executable({reinterpret_cast<const void*>(context->GetExecutionPlan),
                         reinterpret_cast<const void*>(context->ResizeTensor),
                         reinterpret_cast<const void*>(context->ReportError),
                         reinterpret_cast<const void*>(context->GetNodeAndRegistration),
                         reinterpret_cast<const void*>(
                             context->ReplaceNodeSubsetsWithDelegateKernels)}))
    return fail(err, err_size, "a TfLiteContext function pointer does not point to code");
  return true;
}

// Tensor i: type and allocation type in range, dims readable, and a memory-mapped
// constant's byte size matching its dims.
bool check_tensor(const Probe& probe, const Tensor& t, size_t i, char* err, size_t err_size) {
  if (static_cast<int>(t.type) < 0 || static_cast<int>(t.type) > kLastKnownType)
    return fail(err, err_size, "tensor %zu: type %d out of range", i, static_cast<int>(t.type));
  if (static_cast<int>(t.allocation_type) < 0 || static_cast<int>(t.allocation_type) > 16)
    return fail(err, err_size, "tensor %zu: allocation_type %d out of range", i,
                static_cast<int>(t.allocation_type));
  if (t.dims == nullptr) return true;
  if (!probe.readable(t.dims, sizeof(int), alignof(int)))
    return fail(err, err_size, "tensor %zu: dims is not readable memory", i);
  if (t.dims->size < 0 || t.dims->size > 16)
    return fail(err, err_size, "tensor %zu: rank %d out of range", i, t.dims->size);
  if (!probe.readable(t.dims->data, sizeof(int) * static_cast<size_t>(t.dims->size)))
    return fail(err, err_size, "tensor %zu: dims is not readable memory", i);
  uint64_t count = 1;
  bool overflow = false;
  for (int d = 0; d < t.dims->size; ++d) {
    if (t.dims->data[d] < 0)
      return fail(err, err_size, "tensor %zu: negative dimension", i);
    count *= static_cast<uint64_t>(t.dims->data[d]);
    if (count > (uint64_t{1} << 40)) overflow = true;
  }
  const size_t es = type_size(t.type);
  // Sparse constants store fewer bytes than their dense dims: skip those.
  if (!overflow && es != 0 && t.allocation_type == kMmapRo && t.data != nullptr &&
      t.sparsity == nullptr && t.bytes != count * es)
    return fail(err, err_size, "tensor %zu: bytes %zu does not match dims (%llu elements)", i,
                t.bytes, static_cast<unsigned long long>(count));
  return true;
}

// The tensor array: a plausible size, and its first 256 tensors (check_tensor).
bool check_tensors(const Probe& probe, Context* context, char* err, size_t err_size) {
  if (context->tensors_size > (size_t{1} << 28))
    return fail(err, err_size, "tensors_size %zu is implausible", context->tensors_size);
  if (context->tensors_size > 0 && context->tensors == nullptr)
    return fail(err, err_size, "tensors is null with tensors_size %zu", context->tensors_size);
  const size_t n_check = context->tensors_size < 256 ? context->tensors_size : 256;
  if (n_check > 0 && !probe.readable(context->tensors, n_check * sizeof(Tensor), alignof(Tensor)))
    return fail(err, err_size, "the tensor array is not readable memory");
  for (size_t i = 0; i < n_check; ++i)
    if (!check_tensor(probe, context->tensors[i], i, err, err_size)) return false;
  return true;
}

// The execution plan and its first 64 nodes: readable node and registration, a
// plausible builtin code and custom name, tensor indices in range.
bool check_plan(const Probe& probe, Context* context, char* err, size_t err_size) {
  IntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kOk || plan == nullptr)
    return fail(err, err_size, "GetExecutionPlan failed");
  if (!probe.int_array(plan, 1 << 24, 64))
    return fail(err, err_size, "the execution plan is not readable or its size is implausible");
  const int n_nodes = plan->size < 64 ? plan->size : 64;
  for (int k = 0; k < n_nodes; ++k) {
    Node* node = nullptr;
    Registration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[k], &node, &reg) != kOk ||
        node == nullptr || reg == nullptr)
      return fail(err, err_size, "GetNodeAndRegistration(%d) failed", plan->data[k]);
    if (!probe.readable(node, sizeof(Node), alignof(Node)) ||
        !probe.readable(reg, sizeof(Registration), alignof(Registration)))
      return fail(err, err_size, "node %d: node or registration is not readable memory",
                  plan->data[k]);
    if (reg->builtin_code < 0 || reg->builtin_code > 4096)
      return fail(err, err_size, "node %d: builtin_code %d is implausible", plan->data[k],
                  reg->builtin_code);
    if (reg->custom_name != nullptr && !plausible_name(probe, reg->custom_name))
      return fail(err, err_size, "node %d: custom_name is not a short printable string",
                  plan->data[k]);
    for (const IntArray* arr : {node->inputs, node->outputs}) {
      if (arr == nullptr) return fail(err, err_size, "node %d: inputs/outputs null", plan->data[k]);
      if (!probe.int_array(arr, 4096, 4096))
        return fail(err, err_size, "node %d: inputs/outputs are not readable or implausible",
                    plan->data[k]);
      for (int j = 0; j < arr->size; ++j) {
        const int idx = arr->data[j];
        if (idx < kOptionalTensor || (idx >= 0 && static_cast<size_t>(idx) >= context->tensors_size))
          return fail(err, err_size, "node %d: tensor index %d out of range", plan->data[k], idx);
      }
    }
    if (node->custom_initial_data_size < 0)
      return fail(err, err_size, "node %d: negative custom_initial_data_size", plan->data[k]);
  }
  return true;
}

}  // namespace

bool abi_check_context(Context* context, char* err, size_t err_size) {
  const Probe probe;
  if (context == nullptr) return fail(err, err_size, "context is null");
  if (!probe.readable(context, sizeof(Context), alignof(Context)))
    return fail(err, err_size, "context is not readable memory");
  return check_functions(probe, context, err, err_size) &&
         check_tensors(probe, context, err, err_size) && check_plan(probe, context, err, err_size);
}

bool abi_can_report(Context* context) {
  const Probe probe;
  return probe.readable(context, sizeof(Context), alignof(Context)) &&
         context->ReportError != nullptr &&
         probe.executable({reinterpret_cast<const void*>(context->ReportError)});
}

}  // namespace abi
}  // namespace sbnn
