// Our own declarations of the few TfLite C structs the delegate touches.
//
// No TFLite headers ship with the Python wheels, so the delegate declares the
// structs itself (docs/runtime.md, "Our own ABI declarations"). Only the fields we read
// or write are
// named; everything else is reserved space, so that sizes and offsets match the
// runtime's. The layout is the same in TensorFlow 2.16 and ai_edge_litert 2.3
// (64-bit targets). Every offset is pinned by a static_assert below, and
// abi_self_check() / abi_check_context() check them again at run time.
//
// Everything lives in namespace sbnn::abi so that these names never clash with a
// real TFLite header a native app may include next to ours.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sbnn {
namespace abi {

static_assert(sizeof(void*) == 8, "the declared TfLite layout is for 64-bit targets");

// TfLiteStatus
enum Status : int { kOk = 0, kError = 1 };

// TfLiteType (values used here)
enum Type : int {
  kNoType = 0,
  kFloat32 = 1,
  kInt32 = 2,
  kUInt8 = 3,
  kInt64 = 4,
  kString = 5,
  kBool = 6,
  kInt16 = 7,
  kComplex64 = 8,
  kInt8 = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kLastKnownType = 20,  // plausibility bound for the run-time check
};

// TfLiteAllocationType
enum AllocationType : int {
  kMemNone = 0,
  kMmapRo = 1,
  kArenaRw = 2,
  kArenaRwPersistent = 3,
  kDynamic = 4,
  kPersistentRo = 5,
  kCustom = 6,
  kVariantObject = 7,
};

// TfLiteQuantizationType
enum QuantizationType : int { kNoQuantization = 0, kAffineQuantization = 1 };

// TfLiteDelegateFlags
enum DelegateFlags : int64_t {
  kFlagsNone = 0,
  kFlagsAllowDynamicTensors = 1,
  kFlagsRequirePropagatedShapes = 2,  // never set: construction fails with it
};

constexpr int32_t kBuiltinCustom = 32;  // BuiltinOperator_CUSTOM
constexpr int kOptionalTensor = -1;

struct IntArray {  // TfLiteIntArray
  int size;
  int data[];  // flexible array member (GNU extension in C++)
};
static_assert(sizeof(IntArray) == 4, "TfLiteIntArray");

struct QuantizationParams {  // TfLiteQuantizationParams
  float scale;
  int32_t zero_point;
};
static_assert(sizeof(QuantizationParams) == 8, "TfLiteQuantizationParams");

struct Quantization {  // TfLiteQuantization
  QuantizationType type;
  void* params;
};
static_assert(sizeof(Quantization) == 16, "TfLiteQuantization");

struct Tensor {  // TfLiteTensor (non-static-memory variant)
  Type type;                     // @0
  void* data;                    // @8  (TfLitePtrUnion)
  IntArray* dims;                // @16
  QuantizationParams params;     // @24
  AllocationType allocation_type;  // @32
  size_t bytes;                  // @40
  const void* allocation;        // @48
  const char* name;              // @56
  void* delegate;                // @64
  int buffer_handle;             // @72
  bool data_is_stale;            // @76
  bool is_variable;              // @77
  Quantization quantization;     // @80
  void* sparsity;                // @96
  const IntArray* dims_signature;  // @104
};
static_assert(offsetof(Tensor, type) == 0, "TfLiteTensor.type");
static_assert(offsetof(Tensor, data) == 8, "TfLiteTensor.data");
static_assert(offsetof(Tensor, dims) == 16, "TfLiteTensor.dims");
static_assert(offsetof(Tensor, params) == 24, "TfLiteTensor.params");
static_assert(offsetof(Tensor, allocation_type) == 32, "TfLiteTensor.allocation_type");
static_assert(offsetof(Tensor, bytes) == 40, "TfLiteTensor.bytes");
static_assert(offsetof(Tensor, name) == 56, "TfLiteTensor.name");
static_assert(offsetof(Tensor, quantization) == 80, "TfLiteTensor.quantization");
static_assert(offsetof(Tensor, dims_signature) == 104, "TfLiteTensor.dims_signature");
static_assert(sizeof(Tensor) == 112, "TfLiteTensor is the stride of context->tensors");

struct Node {  // TfLiteNode
  IntArray* inputs;               // @0
  IntArray* outputs;              // @8
  IntArray* intermediates;        // @16
  IntArray* temporaries;          // @24
  void* user_data;                // @32
  void* builtin_data;             // @40
  const void* custom_initial_data;  // @48
  int custom_initial_data_size;   // @56
  void* delegate;                 // @64
  bool might_have_side_effect;    // @72
};
static_assert(offsetof(Node, inputs) == 0, "TfLiteNode.inputs");
static_assert(offsetof(Node, outputs) == 8, "TfLiteNode.outputs");
static_assert(offsetof(Node, user_data) == 32, "TfLiteNode.user_data");
static_assert(offsetof(Node, builtin_data) == 40, "TfLiteNode.builtin_data");
static_assert(offsetof(Node, custom_initial_data) == 48, "TfLiteNode.custom_initial_data");
static_assert(offsetof(Node, custom_initial_data_size) == 56,
              "TfLiteNode.custom_initial_data_size");

// Builtin option structs of the window ops (node->builtin_data of CONV_2D,
// DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D), read by the graph check only.
// TFLite value-initialises them (all zero) when the file's options are missing or of
// another op's type. Only the leading fields are declared: we never allocate one.
enum Padding : int { kPaddingUnknown = 0, kPaddingSame = 1, kPaddingValid = 2 };  // TfLitePadding
constexpr int32_t kBuiltinAveragePool2d = 1;
constexpr int32_t kBuiltinConv2d = 3;
constexpr int32_t kBuiltinDepthwiseConv2d = 4;
constexpr int32_t kBuiltinMaxPool2d = 17;

struct ConvParams {  // TfLiteConvParams (prefix)
  Padding padding;             // @0
  int stride_width;            // @4
  int stride_height;           // @8
  int activation;              // @12
  int dilation_width_factor;   // @16
  int dilation_height_factor;  // @20
};
static_assert(offsetof(ConvParams, dilation_height_factor) == 20, "TfLiteConvParams");

struct DepthwiseConvParams {  // TfLiteDepthwiseConvParams (prefix)
  Padding padding;             // @0
  int stride_width;            // @4
  int stride_height;           // @8
  int depth_multiplier;        // @12
  int activation;              // @16
  int dilation_width_factor;   // @20
  int dilation_height_factor;  // @24
};
static_assert(offsetof(DepthwiseConvParams, dilation_height_factor) == 24,
              "TfLiteDepthwiseConvParams");

struct PoolParams {  // TfLitePoolParams (prefix)
  Padding padding;     // @0
  int stride_width;    // @4
  int stride_height;   // @8
  int filter_width;    // @12
  int filter_height;   // @16
};
static_assert(offsetof(PoolParams, filter_height) == 16, "TfLitePoolParams");

struct Context;
struct Delegate;

struct Registration {  // TfLiteRegistration (TF 2.16 / LiteRT 2.3: 88 bytes)
  void* (*init)(Context* context, const char* buffer, size_t length);  // @0
  void (*free)(Context* context, void* buffer);                        // @8
  Status (*prepare)(Context* context, Node* node);                     // @16
  Status (*invoke)(Context* context, Node* node);                      // @24
  const char* (*profiling_string)(const Context* context, const Node* node);  // @32
  int32_t builtin_code;                                                // @40
  const char* custom_name;                                             // @48
  int version;                                                         // @56
  void* registration_external;                                         // @64 (NULL)
  void* async_kernel;                                                  // @72 (NULL)
  uint64_t inplace_operator;                                           // @80
};
static_assert(offsetof(Registration, init) == 0, "TfLiteRegistration.init");
static_assert(offsetof(Registration, free) == 8, "TfLiteRegistration.free");
static_assert(offsetof(Registration, prepare) == 16, "TfLiteRegistration.prepare");
static_assert(offsetof(Registration, invoke) == 24, "TfLiteRegistration.invoke");
static_assert(offsetof(Registration, builtin_code) == 40, "TfLiteRegistration.builtin_code");
static_assert(offsetof(Registration, custom_name) == 48, "TfLiteRegistration.custom_name");
static_assert(offsetof(Registration, version) == 56, "TfLiteRegistration.version");
static_assert(offsetof(Registration, registration_external) == 64,
              "TfLiteRegistration.registration_external");
static_assert(offsetof(Registration, async_kernel) == 72, "TfLiteRegistration.async_kernel");
static_assert(offsetof(Registration, inplace_operator) == 80,
              "TfLiteRegistration.inplace_operator");
static_assert(sizeof(Registration) == 88, "TfLiteRegistration is passed by value: 88 bytes");

struct DelegateParams {  // TfLiteDelegateParams (builtin_data/init buffer of a delegate node)
  Delegate* delegate;
  IntArray* nodes_to_replace;
  IntArray* input_tensors;
  IntArray* output_tensors;
};
static_assert(sizeof(DelegateParams) == 32, "TfLiteDelegateParams");

struct Context {  // TfLiteContext (prefix: only the members up to @72 are used)
  size_t tensors_size;                                                  // @0
  Status (*GetExecutionPlan)(Context* context, IntArray** execution_plan);  // @8
  Tensor* tensors;                                                      // @16
  void* impl_;                                                          // @24
  Status (*ResizeTensor)(Context* context, Tensor* tensor, IntArray* new_size);  // @32
  void (*ReportError)(Context* context, const char* msg, ...);          // @40
  Status (*AddTensors)(Context* context, int tensors_to_add, int* first_new_index);  // @48
  Status (*GetNodeAndRegistration)(Context* context, int node_index, Node** node,
                                   Registration** registration);        // @56
  Status (*ReplaceNodeSubsetsWithDelegateKernels)(Context* context, Registration registration,
                                                  const IntArray* nodes_to_replace,
                                                  Delegate* delegate);  // @64
  int recommended_num_threads;                                          // @72
  // ... further members are never touched: we never allocate a Context.
};
static_assert(offsetof(Context, tensors_size) == 0, "TfLiteContext.tensors_size");
static_assert(offsetof(Context, GetExecutionPlan) == 8, "TfLiteContext.GetExecutionPlan");
static_assert(offsetof(Context, tensors) == 16, "TfLiteContext.tensors");
static_assert(offsetof(Context, ResizeTensor) == 32, "TfLiteContext.ResizeTensor");
static_assert(offsetof(Context, ReportError) == 40, "TfLiteContext.ReportError");
static_assert(offsetof(Context, GetNodeAndRegistration) == 56,
              "TfLiteContext.GetNodeAndRegistration");
static_assert(offsetof(Context, ReplaceNodeSubsetsWithDelegateKernels) == 64,
              "TfLiteContext.ReplaceNodeSubsetsWithDelegateKernels");
static_assert(offsetof(Context, recommended_num_threads) == 72,
              "TfLiteContext.recommended_num_threads");

struct Delegate {  // TfLiteDelegate
  void* data_;                                                          // @0
  Status (*Prepare)(Context* context, Delegate* delegate);              // @8
  void* CopyFromBufferHandle;                                           // @16 (NULL)
  void* CopyToBufferHandle;                                             // @24 (NULL)
  void* FreeBufferHandle;                                               // @32 (NULL)
  int64_t flags;                                                        // @40
  void* opaque_delegate_builder;                                        // @48 (NULL)
};
static_assert(offsetof(Delegate, data_) == 0, "TfLiteDelegate.data_");
static_assert(offsetof(Delegate, Prepare) == 8, "TfLiteDelegate.Prepare");
static_assert(offsetof(Delegate, flags) == 40, "TfLiteDelegate.flags");
static_assert(offsetof(Delegate, opaque_delegate_builder) == 48,
              "TfLiteDelegate.opaque_delegate_builder");
static_assert(sizeof(Delegate) == 56, "TfLiteDelegate");

// Room allocated (zeroed) for a Delegate, in case a runtime reads members that
// later versions append.
constexpr size_t kDelegateAllocBytes = 256;

// Element size of a tensor type (0 for types the delegate never handles).
size_t type_size(int type);

// Checks, at run time, the facts the static_asserts above pin at compile time,
// plus what they cannot (byte order, bool size). Returns nullptr when all hold,
// otherwise a message naming the failed check.
const char* abi_self_check();

// Plausibility of a live context, run in the delegate's Prepare before anything
// else: the function pointers we call are set, the tensor array is there, and
// the first tensors and execution-plan nodes look like what we declared (types
// in range, ranks sane, byte counts matching dims). A layout mismatch shows up
// here as garbage. Writes a message to `err` and returns false on failure.
bool abi_check_context(Context* context, char* err, size_t err_size);

// Whether context->ReportError can be called (readable context, callback in
// executable memory): after abi_check_context fails, the refusal is reported only then.
bool abi_can_report(Context* context);

}  // namespace abi
}  // namespace sbnn
