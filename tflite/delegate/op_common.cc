// Shared parts of the op kernels: node bookkeeping, tensor access, errors.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "delegate/flexbuffer.h"
#include "delegate/ops.h"

namespace sbnn {

// Factories (one per op file).
std::unique_ptr<Op> make_quantize_op(int node_index, const DelegateShared* shared);
std::unique_ptr<Op> make_dequantize_op(int node_index, const DelegateShared* shared);
std::unique_ptr<Op> make_bconv2d_op(int node_index, const DelegateShared* shared, bool sparse);
std::unique_ptr<Op> make_bmaxpool2d_op(int node_index, const DelegateShared* shared);

const char* op_kind_name(OpKind kind) {
  switch (kind) {
    case OpKind::kQuantize:
      return "LceQuantize";
    case OpKind::kDequantize:
      return "LceDequantize";
    case OpKind::kBconv2d:
      return "LceBconv2d";
    case OpKind::kBMaxPool2d:
      return "LceBMaxPool2d";
    case OpKind::kSbnnBconv2d:
      return "SbnnBconv2d";
  }
  return "?";
}

bool op_kind_from_name(const char* name, OpKind* kind) {
  if (name == nullptr) return false;
  for (OpKind k : {OpKind::kQuantize, OpKind::kDequantize, OpKind::kBconv2d, OpKind::kBMaxPool2d,
                  OpKind::kSbnnBconv2d}) {
    if (std::strcmp(name, op_kind_name(k)) == 0) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::unique_ptr<Op> create_op(OpKind kind, int node_index, const abi::Node& node,
                              const DelegateShared* shared) {
  std::unique_ptr<Op> op;
  switch (kind) {
    case OpKind::kQuantize:
      op = make_quantize_op(node_index, shared);
      break;
    case OpKind::kDequantize:
      op = make_dequantize_op(node_index, shared);
      break;
    case OpKind::kBconv2d:
      op = make_bconv2d_op(node_index, shared, false);
      break;
    case OpKind::kSbnnBconv2d:
      op = make_bconv2d_op(node_index, shared, true);
      break;
    case OpKind::kBMaxPool2d:
      op = make_bmaxpool2d_op(node_index, shared);
      break;
  }
  constexpr int kMaxTensorsPerNode = 64;
  for (const auto& [arr, dst] : {std::make_pair(node.inputs, &op->inputs_),
                                 std::make_pair(node.outputs, &op->outputs_)}) {
    if (arr == nullptr || arr->size < 0 || arr->size > kMaxTensorsPerNode) {
      op->init_error_ = "the node's input/output list is missing or implausible";
      return op;
    }
    dst->assign(arr->data, arr->data + arr->size);
  }
  const int opt_size = node.custom_initial_data_size;
  op->parse_options(opt_size > 0 ? node.custom_initial_data : nullptr,
                    opt_size > 0 ? static_cast<size_t>(opt_size) : 0);
  return op;
}

abi::Status Op::fail(abi::Context* ctx, const char* fmt, ...) const {
  char msg[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(msg, sizeof(msg), fmt, args);
  va_end(args);
  if (ctx != nullptr && ctx->ReportError != nullptr)
    ctx->ReportError(ctx, "%s (node %d): %s\n", op_kind_name(kind_), node_index_, msg);
  return abi::kError;
}

abi::Status Op::prepare(abi::Context* ctx) {
  prepared_ = false;
  if (!init_error_.empty()) return fail(ctx, "%s", init_error_.c_str());
  const abi::Status s = do_prepare(ctx);
  prepared_ = (s == abi::kOk);
  return s;
}

abi::Status Op::invoke(abi::Context* ctx) {
  if (!prepared_) return fail(ctx, "invoked before a successful prepare");
  return do_invoke(ctx);
}

abi::Tensor* Op::input(abi::Context* ctx, int i, bool optional, bool* absent) const {
  if (absent != nullptr) *absent = false;
  const int idx = i < static_cast<int>(inputs_.size()) ? inputs_[i] : abi::kOptionalTensor;
  if (idx == abi::kOptionalTensor) {
    if (optional) {
      if (absent != nullptr) *absent = true;
      return nullptr;
    }
    fail(ctx, "input %d is missing (the node has %zu inputs)", i, inputs_.size());
    return nullptr;
  }
  if (idx < 0 || static_cast<size_t>(idx) >= ctx->tensors_size) {
    fail(ctx, "input %d refers to tensor %d, outside the %zu tensors", i, idx, ctx->tensors_size);
    return nullptr;
  }
  return &ctx->tensors[idx];
}

abi::Tensor* Op::output(abi::Context* ctx, int i) const {
  const int idx = i < static_cast<int>(outputs_.size()) ? outputs_[i] : -1;
  if (idx < 0 || static_cast<size_t>(idx) >= ctx->tensors_size) {
    fail(ctx, "output %d is missing or outside the tensors", i);
    return nullptr;
  }
  return &ctx->tensors[idx];
}

bool Op::single_io(abi::Context* ctx, abi::Tensor** in, abi::Tensor** out) const {
  if (inputs_.size() != 1 || outputs_.size() != 1) {
    fail(ctx, "expects 1 input and 1 output, got %zu and %zu", inputs_.size(), outputs_.size());
    return false;
  }
  *in = input(ctx, 0, false);
  *out = output(ctx, 0);
  return *in != nullptr && *out != nullptr;
}

bool checked_num_elements(const abi::Tensor* t, int64_t limit, int64_t* count) {
  *count = 0;
  if (t == nullptr || t->dims == nullptr || t->dims->size < 0) return false;
  int64_t n = 1;
  for (int d = 0; d < t->dims->size; ++d) {
    const int v = t->dims->data[d];
    if (v < 0) return false;
    n *= v;
    if (n > limit) return false;
  }
  *count = n;
  return true;
}

abi::IntArray* make_int_array(const int* data, int size) {
  auto* arr = static_cast<abi::IntArray*>(std::malloc(sizeof(int) * (1 + size)));
  if (arr == nullptr) return nullptr;
  arr->size = size;
  for (int i = 0; i < size; ++i) arr->data[i] = data[i];
  return arr;
}

abi::Status resize_output(abi::Context* ctx, abi::Tensor* t, const int* dims, int rank) {
  if (t->dims != nullptr && t->dims->size == rank) {
    bool same = true;
    for (int i = 0; i < rank; ++i) same = same && (t->dims->data[i] == dims[i]);
    if (same) return abi::kOk;
  }
  abi::IntArray* arr = make_int_array(dims, rank);
  if (arr == nullptr) return abi::kError;
  return ctx->ResizeTensor(ctx, t, arr);  // takes ownership
}

const char* type_name(int type) {
  switch (type) {
    case abi::kNoType:
      return "notype";
    case abi::kFloat32:
      return "float32";
    case abi::kInt32:
      return "int32";
    case abi::kUInt8:
      return "uint8";
    case abi::kInt64:
      return "int64";
    case abi::kString:
      return "string";
    case abi::kBool:
      return "bool";
    case abi::kInt16:
      return "int16";
    case abi::kInt8:
      return "int8";
    case abi::kFloat16:
      return "float16";
    case abi::kFloat64:
      return "float64";
    default:
      return "other";
  }
}

bool has_bytes(const abi::Tensor* t, uint64_t bytes) {
  if (bytes == 0) return true;
  return t != nullptr && t->data != nullptr && static_cast<uint64_t>(t->bytes) >= bytes;
}

std::string read_int_options(const void* data, size_t size, const IntOption* options, size_t n,
                             flex::MapReader* map) {
  *map = flex::MapReader(data, size);
  if (!map->ok()) return std::string("bad custom options: ") + map->error();
  for (size_t i = 0; i < n; ++i) {
    const IntOption& f = options[i];
    int64_t v = 0;
    switch (map->get_int(f.key, &v)) {
      case flex::Lookup::kMissing:
        return std::string("custom option '") + f.key + "' is missing";
      case flex::Lookup::kNotInt:
        return std::string("custom option '") + f.key + "' is not an integer";
      case flex::Lookup::kOk:
        break;
    }
    if (v < f.lo || v > f.hi)
      return std::string("custom option '") + f.key + "' = " + std::to_string(v) +
             " is outside [" + std::to_string(f.lo) + ", " + std::to_string(f.hi) + "]" +
             (f.note != nullptr ? f.note : "");
    *f.dst = static_cast<int>(v);
  }
  return "";
}

}  // namespace sbnn
