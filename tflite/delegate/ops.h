// The op kernels the delegate runs in place of LCE's custom ops.
//
// Life cycle (per claimed node; see delegate.cc):
//   create_op()  at kernel init: copies the original node's tensor indices and
//                parses its flexbuffer options (errors are kept, reported in prepare);
//   prepare()    validates types/shapes/options, resizes the output; idempotent
//                (TF 2.16 runs it again after every resize_tensor_input);
//   invoke()     checks data pointers/sizes again and computes.
// Every failure is reported through context->ReportError with the op name and
// node index, and returns kError; nothing reads outside a tensor's bytes.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abi/tflite_abi.h"

namespace sbnn {

class ThreadPool;
namespace flex {
class MapReader;
}

// kSbnnBconv2d: the project's LceBconv2d with its filter stored in SBF1 form
// (uint8 tensor; tflite/format/sparse_filter.h), written by convert(flavor="sparse").
enum class OpKind { kQuantize, kDequantize, kBconv2d, kBMaxPool2d, kSbnnBconv2d };

// Name of the custom op ("LceBconv2d", ...).
const char* op_kind_name(OpKind kind);
bool op_kind_from_name(const char* custom_name, OpKind* kind);

// What the delegate shares with its kernels.
struct DelegateShared {
  ThreadPool* pool = nullptr;
  std::string kernel = "auto";  // "auto", "reference" or a kernel name
  // Records which bconv2d kernel a node uses (for sbnn_delegate_describe).
  void (*record_kernel)(void* owner, int node_index, const char* kernel_name) = nullptr;
  void* owner = nullptr;
};

class Op {
 public:
  virtual ~Op() = default;

  OpKind kind() const { return kind_; }
  int node_index() const { return node_index_; }

  // Validates, resizes outputs. Called again after every resize.
  abi::Status prepare(abi::Context* ctx);
  abi::Status invoke(abi::Context* ctx);

  // Formats "<Op> (node N): message" and reports it. Always returns kError.
  abi::Status fail(abi::Context* ctx, const char* fmt, ...) const
      __attribute__((format(printf, 3, 4)));

 protected:
  Op(OpKind kind, int node_index, const DelegateShared* shared)
      : kind_(kind), node_index_(node_index), shared_(shared) {}

  virtual abi::Status do_prepare(abi::Context* ctx) = 0;
  virtual abi::Status do_invoke(abi::Context* ctx) = 0;
  // Parses the custom options; on failure sets init_error_.
  virtual void parse_options(const void* data, size_t size) = 0;

  // Tensor i of the original node's inputs/outputs. Returns nullptr (and
  // reports) when the index is out of range; *absent is set for an optional
  // input that is not given (index -1 or beyond the node's input count).
  abi::Tensor* input(abi::Context* ctx, int i, bool optional, bool* absent = nullptr) const;
  abi::Tensor* output(abi::Context* ctx, int i) const;
  // The tensors of an op with exactly one input and one output (LceQuantize,
  // LceDequantize, LceBMaxPool2d). False, after reporting, when the node has other
  // counts or an index is outside the tensors.
  bool single_io(abi::Context* ctx, abi::Tensor** in, abi::Tensor** out) const;

  const OpKind kind_;
  const int node_index_;
  const DelegateShared* shared_;
  std::vector<int> inputs_;
  std::vector<int> outputs_;
  std::string init_error_;
  bool prepared_ = false;

  friend std::unique_ptr<Op> create_op(OpKind, int, const abi::Node&, const DelegateShared*);
};

// Creates the kernel for original node `node` (never nullptr; parsing errors
// are stored and reported by prepare()).
std::unique_ptr<Op> create_op(OpKind kind, int node_index, const abi::Node& node,
                              const DelegateShared* shared);

// ---- helpers shared by the ops -------------------------------------------

// Product of dims (0 for null dims); false when it overflows `limit`.
bool checked_num_elements(const abi::Tensor* t, int64_t limit, int64_t* count);
// malloc'd TfLiteIntArray (the runtime frees it after ResizeTensor).
abi::IntArray* make_int_array(const int* data, int size);
// Resizes `t` to `dims` unless it has that shape already.
abi::Status resize_output(abi::Context* ctx, abi::Tensor* t, const int* dims, int rank);
const char* type_name(int type);
// Checks that a tensor has data and at least `bytes` bytes.
bool has_bytes(const abi::Tensor* t, uint64_t bytes);

// A required integer custom option, read into *dst and checked against [lo, hi]; `note`
// (or nullptr) is appended to the out-of-range message, e.g. " (0 SAME, 1 VALID)".
struct IntOption {
  const char* key;
  int* dst;
  int64_t lo, hi;
  const char* note;
};
// Reads the options from the custom-option bytes. Returns "" or the error message, which
// names the option and its value.
std::string read_int_options(const void* data, size_t size, const IntOption* options, size_t n,
                             flex::MapReader* map);

// Largest number of elements a tensor may have here (fits int32 indexing of
// bytes with room to spare).
constexpr int64_t kMaxElements = int64_t{1} << 30;

}  // namespace sbnn
