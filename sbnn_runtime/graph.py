"""Graph-level checks of a decoded ``.tflite`` model, before any runtime builds it.

``check_model`` runs ``validate`` on every subgraph after its table checks (indices
in range), so the rules here may index tensors freely.

TFLite's interpreters trust the graph: an op that reads its own output or a tensor
written later makes the graph partitioner (called when a delegate claims nodes)
crash, and an output tensor whose declared shape disagrees with what its op
computes makes later kernels (XNNPACK's pooling) work on shapes they were not
prepared for. These rules refuse such files with a message naming the op and the
tensor:

- every tensor an op reads is a model input, a constant, a variable, or the output
  of an *earlier* op (no self-reads, no reads of later tensors: the order TFLite
  runs ops in is the file's order);
- every tensor is written at most once, and never a model input or a constant;
- every model output is produced;
- a builtin op (other than the recurrent ones) has tensors for its inputs 0 and 1, and
  the ops of ``MIN_INPUTS`` have as many inputs as they need;
- no tensor has a zero dimension, and none needs more than ``MAX_TENSOR_BYTES``;
- convolutions and poolings (TFLite's and the binary ops) have strides, dilations,
  windows and paddings in range, and their declared output shape is the one their
  input shape and options give (shapes consistent along each edge).

The delegate runs the same rules with the same messages before it asks TFLite to
partition a graph (``tflite/delegate/graph_check.cc``), so that stock
``tf.lite.Interpreter`` + ``load_delegate()`` refuses what ``check_model`` refuses; change
both together (``tests/test_graph_agreement.py`` runs both on one corpus). A
``TfLiteContext`` does not show the model's inputs and outputs, so three rules are
Python's only: no op writes a model input, every tensor read is written by some op
unless it is a model input, a constant or a variable, and every model output is
produced. Options are read as TFLite and the delegate read them: a builtin op's
options of another op's type are all zeros (TFLite's parser leaves its struct zeroed),
a custom option is an integer only when stored as an int, uint or bool.
"""

from __future__ import annotations

import numpy as np

MAX_TENSOR_BYTES = 1 << 31
MAX_STRIDE = 1 << 16  # the delegate's kMaxStrideOrDilation / kMaxWindow bounds

#: bytes per element by schema TensorType (1 for types without a fixed size); the delegate
#: keeps the same table by TfLiteType (graph_check.cc element_bytes)
ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 7: 2, 8: 8, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}

#: builtin recurrent ops (LSTM, RNN and their sequence forms, SVDF), whose many
#: optional inputs may be -1 anywhere; every other builtin needs inputs 0 and 1 when it
#: lists them (TFLite's reduce ops, e.g. MEAN, dereference a missing axis tensor)
_RECURRENT = {16, 24, 27, 35, 44, 46, 52}

#: builtin code -> inputs the op needs (all tensors), for the ops converted models hold
#: and their neighbours: a STRIDED_SLICE without its strides crashed LiteRT 2.3
#: (SIGSEGV, found by fuzz_runtime.py); the delegate keeps the same table
#: (graph_check.cc kMinInputs)
MIN_INPUTS = {0: 2, 1: 1, 2: 1, 3: 2, 4: 2, 6: 1, 9: 2, 14: 1, 17: 1, 18: 2, 19: 1, 21: 1,
              22: 1, 25: 1, 28: 1, 34: 2, 36: 2, 39: 2, 40: 2, 41: 2, 42: 2, 43: 1, 45: 4,
              49: 2, 53: 1, 55: 2, 57: 2, 60: 3, 65: 3, 67: 3, 74: 2, 82: 2, 89: 2, 102: 3,
              114: 1, 117: 1}

#: builtin codes with a 2-D window: CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D
_CONV, _DEPTHWISE, _AVG_POOL, _MAX_POOL = 3, 4, 1, 17
_BINARY_CONVS = ("LceBconv2d", "SbnnBconv2d")


class GraphError(ValueError):
    """The graph of a ``.tflite`` model is inconsistent (message names op and tensor)."""


def _printable(raw, limit: int) -> str:
    """Bytes 0x20..0x7e except the quote, anything else '?', up to the first NUL (the
    delegate prints names the same way)."""
    raw = raw if isinstance(raw, (bytes, bytearray)) else str(raw or "").encode()
    raw = bytes(raw).split(b"\0", 1)[0][:limit]
    return "".join(chr(c) if 0x20 <= c <= 0x7E and c != 0x27 else "?" for c in raw)


def _op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return _printable(code.customCode, 256)
    return f"builtin {max(code.builtinCode, code.deprecatedBuiltinCode)}"


def _builtin(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return -1 if code.customCode else int(max(code.builtinCode, code.deprecatedBuiltinCode))


def _tname(sg, k) -> str:
    name = _printable(sg.tensors[k].name, 60)
    return f"tensor {k} ('{name}')" if name else f"tensor {k}"


def _shape(sg, k) -> list:
    s = sg.tensors[k].shape
    return [] if s is None else [int(d) for d in s]


def _is_constant(model, sg, k) -> bool:
    t = sg.tensors[k]
    if not 0 <= t.buffer < len(model.buffers or []):
        return False
    buf = model.buffers[t.buffer]
    return (buf.data is not None and len(buf.data) > 0) or (buf.offset or 0) > 1


def _out_size(size: int, window: int, stride: int, dilation: int, same: bool) -> int:
    eff = (window - 1) * dilation + 1
    if same:
        return (size + stride - 1) // stride
    return (size - eff) // stride + 1 if size >= eff else 0


#: schema BuiltinOptions of the window ops: Conv2DOptions, DepthwiseConv2DOptions, Pool2DOptions
_OPTIONS_TYPE = {_CONV: 1, _DEPTHWISE: 2, _AVG_POOL: 5, _MAX_POOL: 5}


def _custom_int_reader(raw):
    """A lookup ``get(key) -> int | None`` over a custom-option map read the way the
    delegate's flex::MapReader reads it: the first entry with that key; ints, uints and
    bools (their stored value, not a truth value) directly or indirect; anything else is
    not an integer (None). Returns None when the bytes are not a map."""
    from flatbuffers import flexbuffers

    try:
        m = flexbuffers.GetRoot(bytearray(raw)).AsMap
        entries = [(bytes(k.AsKeyBytes), v) for k, v in zip(m.Keys, m.Values)]
    except Exception:  # noqa: BLE001 - the delegate reports bad option bytes itself
        return None

    def get(key):
        for k, v in entries:
            if k != key.encode():
                continue
            try:
                if v.IsBool:  # its stored bytes: a 2 is 2 to the delegate
                    return int.from_bytes(bytes(v._Bytes), "little")  # noqa: SLF001
                if v.IsInt:  # INT, UINT and their indirect forms
                    return int(v.AsInt)
            except Exception:  # noqa: BLE001 - unreadable value: not an integer
                return None
            return None
        return "missing"

    return get


def _window_op(model, sg, j, op, name, builtin):
    """(stride_h, stride_w, dil_h, dil_w, window_h, window_w, padding) or None if not a
    window op or its options are for its own prepare to report; padding 0 SAME,
    1 VALID, 2 unknown. The delegate's custom_window / builtin_window read the same."""
    if builtin in (_CONV, _DEPTHWISE, _AVG_POOL, _MAX_POOL):
        o = op.builtinOptions if op.builtinOptionsType == _OPTIONS_TYPE[builtin] else None
        pad = (lambda p: p if p in (0, 1) else 2)
        if builtin in (_CONV, _DEPTHWISE):
            if op.inputs is None or len(op.inputs) < 2 or not 0 <= op.inputs[1] < len(sg.tensors):
                return None
            fs = _shape(sg, op.inputs[1])
            if len(fs) != 4:
                return None
            kh, kw = fs[1], fs[2]
            if o is None:  # TFLite's parser leaves the struct zeroed
                return (0, 0, 0, 0, kh, kw, 2)
            return (o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor, kh, kw, pad(o.padding))
        if o is None:
            return (0, 0, 1, 1, 0, 0, 2)
        return (o.strideH, o.strideW, 1, 1, o.filterHeight, o.filterWidth, pad(o.padding))
    if name in _BINARY_CONVS + ("LceBMaxPool2d",):
        get = _custom_int_reader(op.customOptions if op.customOptions is not None else b"")
        if get is None:
            return None
        sh, sw, pad = get("stride_height"), get("stride_width"), get("padding")
        dh = dw = 1
        kh = kw = None
        if name == "LceBMaxPool2d":
            kh, kw = get("filter_height"), get("filter_width")
            if kh in (None, "missing") or kw in (None, "missing"):
                return None  # missing or mistyped window: the delegate names it
        else:
            if op.inputs is None or len(op.inputs) < 2 or op.inputs[1] < 0:
                return None
            fs = _shape(sg, op.inputs[1]) if op.inputs[1] < len(sg.tensors) else []
            if name == "LceBconv2d" and len(fs) == 4:
                kh, kw = fs[1], fs[2]
            # SbnnBconv2d: the window is in the SBF1 header, checked by the delegate
            dh, dw = get("dilation_height_factor"), get("dilation_width_factor")
            dh, dw = (1 if v == "missing" else v for v in (dh, dw))
        if any(v in (None, "missing") for v in (sh, sw, pad, dh, dw)) or pad not in (0, 1):
            return None  # missing or mistyped options: the delegate names them
        if not all(1 <= v <= MAX_STRIDE for v in (sh, sw, dh, dw) + ((kh, kw) if kh is not None else ())):
            return None  # out of the delegate's bounds: it names the option and the node
        return (sh, sw, dh, dw, kh, kw, pad)
    return None


def validate(model, g: int = 0) -> None:
    """Raises GraphError when subgraph `g` of a decoded model breaks a rule above."""
    sg = model.subgraphs[g]
    n_t = len(sg.tensors or [])
    ops = sg.operators or []
    inputs = set(int(k) for k in (sg.inputs if sg.inputs is not None else []))

    def bad(msg):
        raise GraphError(f"the .tflite graph is inconsistent: {msg}")

    for k, t in enumerate(sg.tensors or []):
        shape = _shape(sg, k)
        if any(d == 0 for d in shape):
            bad(f"{_tname(sg, k)} has a zero dimension (shape {shape})")
        n = int(np.prod(shape, dtype=np.float64)) if shape else 1
        if n * ELEMENT_BYTES.get(t.type, 1) > MAX_TENSOR_BYTES:
            bad(f"{_tname(sg, k)} of shape {shape} needs more than {MAX_TENSOR_BYTES} bytes")

    producer = {}
    for j, op in enumerate(ops):
        for k in [] if op.outputs is None else op.outputs:
            k = int(k)
            if not 0 <= k < n_t:
                continue  # indices out of range: check_model's table checks name them
            where = f"op {j} ({_op_name(model, op)})"
            if k in producer:
                bad(f"{_tname(sg, k)} is written by op {producer[k]} and by {where}")
            if k in inputs:
                bad(f"{where} writes the model input {_tname(sg, k)}")
            if _is_constant(model, sg, k):
                bad(f"{where} writes the constant {_tname(sg, k)}")
            producer[k] = j

    for j, op in enumerate(ops):
        name = _op_name(model, op)
        where = f"op {j} ({name})"
        outs = set(int(k) for k in ([] if op.outputs is None else op.outputs))
        builtin = _builtin(model, op)
        if builtin >= 0 and builtin not in _RECURRENT:
            listed = [] if op.inputs is None else [int(k) for k in op.inputs]
            need = MIN_INPUTS.get(builtin, 0)
            if len(listed) < need:
                bad(f"{where} has {len(listed)} inputs; builtin {builtin} needs {need}")
            for slot, k in enumerate(listed[:max(2, need)]):
                if k < 0:
                    bad(f"{where} has no tensor for its required input {slot}")
        for k in [] if op.inputs is None else op.inputs:
            k = int(k)
            if not 0 <= k < n_t:
                continue
            if k in outs:
                bad(f"{where} reads its own output {_tname(sg, k)}")
            if k in inputs or _is_constant(model, sg, k) or sg.tensors[k].isVariable:
                continue
            p = producer.get(k)
            if p is None:
                bad(f"{where} reads {_tname(sg, k)}, which no op writes and which is neither a "
                    "model input nor a constant")
            if p > j:
                bad(f"{where} reads {_tname(sg, k)} before op {p} writes it (ops out of order)")
        _check_window(model, sg, j, op, name)

    for k in [] if sg.outputs is None else sg.outputs:
        k = int(k)
        if 0 <= k < n_t and k not in producer and k not in inputs and not _is_constant(model, sg, k):
            bad(f"the model output {_tname(sg, k)} is written by no op")


def _check_window(model, sg, j, op, name) -> None:
    builtin = _builtin(model, op)
    w = _window_op(model, sg, j, op, name, builtin)
    if w is None:
        return
    where = f"op {j} ({name})"
    sh, sw, dh, dw, kh, kw, padding = w
    for label, v in (("stride height", sh), ("stride width", sw), ("dilation height", dh),
                     ("dilation width", dw)):
        if not 1 <= v <= MAX_STRIDE:
            raise GraphError(f"the .tflite graph is inconsistent: {where} has {label} {v} "
                             f"(must be in 1..{MAX_STRIDE})")
    if padding == 2:
        raise GraphError(f"the .tflite graph is inconsistent: {where} has an unknown padding "
                         "(must be SAME or VALID)")
    same = padding == 0
    if op.inputs is None or not len(op.inputs) or op.inputs[0] < 0 or op.outputs is None or not len(op.outputs) or op.outputs[0] < 0:
        return
    x, y = int(op.inputs[0]), int(op.outputs[0])
    if max(x, y) >= len(sg.tensors):
        return
    xs, ys = _shape(sg, x), _shape(sg, y)
    if len(xs) != 4 or len(ys) != 4:
        return  # rank errors: the op's own prepare names them
    if kh is None:  # SbnnBconv2d: window from the SBF1 header, checked at prepare
        if same:
            kh = kw = 1
        else:
            return
    if kh < 1 or kw < 1:
        raise GraphError(f"the .tflite graph is inconsistent: {where} has a {kh}x{kw} window")
    oh = _out_size(xs[1], kh, sh, dh, same)
    ow = _out_size(xs[2], kw, sw, dw, same)
    if (oh < 1 or ow < 1) and builtin < 0:
        return  # a binary op's window larger than its input: the delegate says so, naming it
    if oh < 1 or ow < 1:
        raise GraphError(
            f"the .tflite graph is inconsistent: {where}: its {kh}x{kw} window (dilation {dh}x{dw}) "
            f"does not fit the {xs[1]}x{xs[2]} input {_tname(sg, x)} with VALID padding")
    if (ys[0], ys[1], ys[2]) != (xs[0], oh, ow):
        raise GraphError(
            f"the .tflite graph is inconsistent: {where} computes a {xs[0]}x{oh}x{ow} output from "
            f"{_tname(sg, x)} of shape {xs} (stride {sh}x{sw}, dilation {dh}x{dw}, window {kh}x{kw}, "
            f"{'SAME' if same else 'VALID'}), but its output {_tname(sg, y)} is declared {ys}")
