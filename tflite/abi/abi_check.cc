// Run-time checks of the declared TfLite ABI (see tflite_abi.h).
#include "abi/tflite_abi.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <initializer_list>

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

// A bounded, printable, NUL-terminated string (op names are short ASCII).
bool plausible_name(const char* s) {
  for (int i = 0; i < 256; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return true;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return false;
}

}  // namespace

bool abi_check_context(Context* context, char* err, size_t err_size) {
  if (context == nullptr) return fail(err, err_size, "context is null");
  if (context->GetExecutionPlan == nullptr || context->ResizeTensor == nullptr ||
      context->ReportError == nullptr || context->GetNodeAndRegistration == nullptr ||
      context->ReplaceNodeSubsetsWithDelegateKernels == nullptr)
    return fail(err, err_size, "a TfLiteContext function pointer we need is null");
  if (context->tensors_size > (size_t{1} << 28))
    return fail(err, err_size, "tensors_size %zu is implausible", context->tensors_size);
  if (context->tensors_size > 0 && context->tensors == nullptr)
    return fail(err, err_size, "tensors is null with tensors_size %zu", context->tensors_size);

  const size_t n_check = context->tensors_size < 256 ? context->tensors_size : 256;
  for (size_t i = 0; i < n_check; ++i) {
    const Tensor& t = context->tensors[i];
    if (static_cast<int>(t.type) < 0 || static_cast<int>(t.type) > kLastKnownType)
      return fail(err, err_size, "tensor %zu: type %d out of range", i, static_cast<int>(t.type));
    if (static_cast<int>(t.allocation_type) < 0 || static_cast<int>(t.allocation_type) > 16)
      return fail(err, err_size, "tensor %zu: allocation_type %d out of range", i,
                  static_cast<int>(t.allocation_type));
    if (t.dims == nullptr) continue;
    if (t.dims->size < 0 || t.dims->size > 16)
      return fail(err, err_size, "tensor %zu: rank %d out of range", i, t.dims->size);
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
  }

  IntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kOk || plan == nullptr)
    return fail(err, err_size, "GetExecutionPlan failed");
  if (plan->size < 0 || plan->size > (1 << 24))
    return fail(err, err_size, "execution plan size %d is implausible", plan->size);
  const int n_nodes = plan->size < 64 ? plan->size : 64;
  for (int k = 0; k < n_nodes; ++k) {
    Node* node = nullptr;
    Registration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[k], &node, &reg) != kOk ||
        node == nullptr || reg == nullptr)
      return fail(err, err_size, "GetNodeAndRegistration(%d) failed", plan->data[k]);
    if (reg->builtin_code < 0 || reg->builtin_code > 4096)
      return fail(err, err_size, "node %d: builtin_code %d is implausible", plan->data[k],
                  reg->builtin_code);
    if (reg->custom_name != nullptr && !plausible_name(reg->custom_name))
      return fail(err, err_size, "node %d: custom_name is not a short printable string",
                  plan->data[k]);
    for (const IntArray* arr : {node->inputs, node->outputs}) {
      if (arr == nullptr) return fail(err, err_size, "node %d: inputs/outputs null", plan->data[k]);
      if (arr->size < 0 || arr->size > 4096)
        return fail(err, err_size, "node %d: %d inputs/outputs is implausible", plan->data[k],
                    arr->size);
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

}  // namespace abi
}  // namespace sbnn
