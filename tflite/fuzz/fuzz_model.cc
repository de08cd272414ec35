// libFuzzer harness: whole .tflite models through the delegate.
//
// The input is a .tflite flatbuffer (seeds: real models converted by
// sbnn_keras.convert, LCE and sparse flavours, tflite/fuzz/corpus/model/). Subgraph 0
// is read with a bounds-checked reader (tflite_reader.h) and rebuilt in the fake
// runtime (fake_runtime.h) the way TFLite's InterpreterBuilder would (models TFLite
// rejects are skipped): constant tensors from buffers, arena tensors, one node per
// operator with its custom options. Then, like tf.lite.Interpreter with the delegate:
// delegate Prepare (claims the Lce*/Sbnn* nodes), AllocateTensors (kernel prepare),
// invoke, resize_tensor_input of the first input (batch + 1), prepare and invoke again.
//
// Oracles besides ASan/UBSan and the fake runtime's checks (messages on every error,
// no writes outside a node's outputs): the graph runs twice, with the reference
// kernel on 1 thread and with "auto" (or a forced kernel) on 2 threads, with
// different garbage in the output buffers; both must succeed or fail alike (a
// forced kernel may refuse a shape) and produce byte-identical outputs.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/fake_runtime.h"
#include "fuzz/tflite_reader.h"

namespace sbnn_fuzz {

using namespace sbnn_test;  // the TFLite stand-in and the writers

namespace {

// schema TensorType -> TfLiteType (-1: a type this harness does not model).
int TfliteType(int schema_type) {
  static const int kMap[] = {kFloat32, kFloat16, kInt32, kUInt8, kInt64, kString, kBool,
                             kInt16,   kComplex64, kInt8, kFloat64};
  if (schema_type < 0 || schema_type >= static_cast<int>(sizeof(kMap) / sizeof(kMap[0])))
    return -1;
  return kMap[schema_type];
}

struct Outcome {
  enum Stage { kRejected, kDelegateFailed, kPrepareFailed, kInvokeFailed, kResizeRefused,
               kPrepare2Failed, kInvoke2Failed, kDone } stage = kRejected;
  std::string errors;
  std::vector<std::vector<uint8_t>> outputs;
};

const char* StageName(int s) {
  static const char* kNames[] = {"rejected",        "delegate failed",  "prepare failed",
                                 "invoke failed",   "resize refused",   "prepare 2 failed",
                                 "invoke 2 failed", "done"};
  return kNames[s];
}

Outcome Run(const TfliteModel& m, int threads, const char* kernel, uint64_t seed, uint64_t salt) {
  Outcome out;
  FakeRuntime rt;
  for (const TfliteTensor& t : m.tensors) {
    const int type = TfliteType(t.type);
    if (type < 0 || t.buffer >= m.buffers.size()) return out;
    for (int d : t.shape)
      if (d < 0) return out;
    const std::vector<uint8_t>& buf = m.buffers[t.buffer];
    const float scale = t.has_scale ? t.scale : 0.0f;
    const int zp = static_cast<int>(t.zero_point);
    int idx;
    if (!buf.empty()) {
      // TFLite: a constant's buffer must hold exactly what its shape needs.
      size_t need = 0;
      if (TypeSize(type) != 0 &&
          (!TensorBytes(type, t.shape, kMaxTensorBytes, &need) || need != buf.size()))
        return out;
      idx = rt.AddTensor(type, t.shape, buf.data(), buf.size(), scale, zp);
    } else {
      idx = rt.AddTensor(type, t.shape, nullptr, 0, scale, zp);
    }
    if (idx < 0) return out;
  }
  rt.Finalize();
  const int n_tensors = static_cast<int>(m.tensors.size());
  for (const TfliteOperator& op : m.operators) {
    if (op.opcode_index >= m.opcodes.size()) return out;
    for (const std::vector<int>* list : {&op.inputs, &op.outputs})
      for (int k : *list)
        if (k < -1 || k >= n_tensors) return out;
    const TfliteOpCode& oc = m.opcodes[op.opcode_index];
    if (oc.builtin_code < 0 || oc.builtin_code > 4096) return out;
    rt.AddNode(oc.builtin_code, oc.custom_code, op.inputs, op.outputs, op.custom_options);
  }
  out.stage = Outcome::kDelegateFailed;
  if (!rt.ApplyDelegate(threads, kernel)) return out.errors = rt.errors, out;
  out.stage = Outcome::kPrepareFailed;
  if (!rt.Prepare()) return out.errors = rt.errors, out;
  rt.FillArena(seed, salt);
  out.stage = Outcome::kInvokeFailed;
  if (!rt.Invoke()) return out.errors = rt.errors, out;
  out.outputs = rt.DelegatedOutputs();
  // resize_tensor_input(first input, batch + 1), then allocate and invoke again.
  out.stage = Outcome::kResizeRefused;
  if (m.inputs.empty()) return out;
  const int in = m.inputs[0];
  if (in < 0 || in >= n_tensors) return out;
  std::vector<int> dims(rt.tensors[in].dims->data,
                        rt.tensors[in].dims->data + rt.tensors[in].dims->size);
  if (dims.empty()) return out;
  dims[0] = dims[0] % 3 + 1 == dims[0] ? dims[0] + 1 : dims[0] % 3 + 1;
  if (!rt.ResizeInput(in, dims)) return out;
  out.stage = Outcome::kPrepare2Failed;
  if (!rt.Prepare()) return out.errors = rt.errors, out;
  rt.FillArena(seed + 1, salt);
  out.stage = Outcome::kInvoke2Failed;
  if (!rt.Invoke()) return out.errors = rt.errors, out;
  for (auto& o : rt.DelegatedOutputs()) out.outputs.push_back(std::move(o));
  out.stage = Outcome::kDone;
  return out;
}

}  // namespace
}  // namespace sbnn_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sbnn_fuzz;
  if (size > (1u << 20)) return 0;
  TfliteModel m;
  std::string error;
  if (!ParseTflite(data, size, &m, &error)) return 0;
  static const std::vector<std::string> kernels = KernelNames();
  const uint64_t h = Hash(data, size);
  std::string kernel = "auto";
  if ((h >> 8) % 4 == 0) kernel = kernels[(h >> 16) % kernels.size()];
  const Outcome a = Run(m, 1, "reference", h, 0);
  if (a.stage == Outcome::kRejected) return 0;
  const Outcome b = Run(m, 2, kernel.c_str(), h, 0x5bd1e995u);
  static const bool verbose = std::getenv("SBNN_FUZZ_VERBOSE") != nullptr;
  if (verbose)
    std::fprintf(stderr, "fuzz_model: %zu ops; reference: %s; %s/2 threads: %s\n%s",
                 m.operators.size(), StageName(a.stage), kernel.c_str(), StageName(b.stage),
                 a.errors.c_str());
  const bool forced_refused = b.errors.find("supports this shape") != std::string::npos;
  if (a.stage != b.stage && !forced_refused)
    Die("reference/1 thread ended with '%s', %s/2 threads with '%s'\nreference: %s\nother: %s",
        StageName(a.stage), kernel.c_str(), StageName(b.stage), a.errors.c_str(),
        b.errors.c_str());
  if (a.stage == b.stage && a.outputs != b.outputs) {
    for (size_t i = 0; i < a.outputs.size() && i < b.outputs.size(); ++i)
      if (a.outputs[i] != b.outputs[i])
        Die("output %zu differs between the reference kernel and %s (2 threads)", i,
            kernel.c_str());
    Die("output counts differ between the reference kernel and %s", kernel.c_str());
  }
  return 0;
}
