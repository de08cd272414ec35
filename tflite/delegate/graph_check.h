// The delegate's own graph check, run in its Prepare before it asks TFLite to
// partition the graph.
//
// TFLite's interpreters trust the graph: an op that reads its own output or a tensor
// written later makes the partitioner (called by ReplaceNodeSubsetsWithDelegateKernels)
// crash, and an op whose declared output shape disagrees with what its input and
// options give makes later kernels (XNNPACK's pooling) run on shapes they were not
// prepared for. A user of the stock tf.lite.Interpreter + load_delegate() who never
// calls sbnn_runtime.check_model must get a clear error instead.
//
// The rules and their messages are those of sbnn_runtime/graph.py, word for word, so
// that both refuse the same file naming the same op and tensor
// (tests/test_graph_agreement.py runs both on one corpus of mutated files). The Python
// validator also knows the model's inputs and outputs, which a TfLiteContext does not
// show; the rules that need them are Python's only (graph.py lists which).
#pragma once

#include <string>
#include <vector>

#include "abi/tflite_abi.h"

namespace sbnn {

// Checks the nodes of `plan` (node indices, in execution order) against the rules.
// Returns "" or the message ("the .tflite graph is inconsistent: op 3 (LceBconv2d) ...").
std::string check_graph(abi::Context* ctx, const std::vector<int>& plan);

}  // namespace sbnn
