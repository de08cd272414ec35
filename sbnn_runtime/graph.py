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
- a builtin op (other than the recurrent ones) has tensors for its inputs 0 and 1;
- no tensor has a zero dimension, and none needs more than ``MAX_TENSOR_BYTES``;
- convolutions and poolings (TFLite's and the binary ops) have strides, dilations,
  windows and paddings in range, and their declared output shape is the one their
  input shape and options give (shapes consistent along each edge).
"""

from __future__ import annotations

import math
import numpy as np

MAX_TENSOR_BYTES = 1 << 31
MAX_STRIDE = 1 << 16  # the delegate's kMaxStrideOrDilation / kMaxWindow bounds

ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 11: 16, 16: 4}

#: builtin recurrent ops (LSTM, RNN and their sequence forms, SVDF), whose many
#: optional inputs may be -1 anywhere; every other builtin needs inputs 0 and 1 when it
#: lists them (TFLite's reduce ops, e.g. MEAN, dereference a missing axis tensor)
_RECURRENT = {16, 24, 27, 35, 44, 46, 52}

#: builtin codes with a 2-D window: CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, MAX_POOL_2D
_CONV, _DEPTHWISE, _AVG_POOL, _MAX_POOL = 3, 4, 1, 17
_BINARY_CONVS = ("LceBconv2d", "SbnnBconv2d")


class GraphError(ValueError):
    """The graph of a ``.tflite`` model is inconsistent (message names op and tensor)."""


def _op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return code.customCode.decode(errors="replace")
    return f"builtin {max(code.builtinCode, code.deprecatedBuiltinCode)}"


def _builtin(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return -1 if code.customCode else int(max(code.builtinCode, code.deprecatedBuiltinCode))


def _tname(sg, k) -> str:
    name = sg.tensors[k].name
    name = name.decode(errors="replace") if isinstance(name, bytes) else str(name or "")
    return f"tensor {k} ({name[:60]!r})" if name else f"tensor {k}"


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


def _window_op(model, sg, j, op, name, builtin):
    """(stride_h, stride_w, dil_h, dil_w, window_h, window_w, same) or None if not a window op."""
    if builtin in (_CONV, _DEPTHWISE, _AVG_POOL, _MAX_POOL):
        o = op.builtinOptions
        fields = ("strideH", "strideW", "padding") + (
            ("dilationHFactor", "dilationWFactor") if builtin in (_CONV, _DEPTHWISE) else ("filterHeight", "filterWidth"))
        if o is None or not all(isinstance(getattr(o, f, None), int) for f in fields):
            return None  # options of another op type: TFLite's own prepare reports it
        if builtin in (_CONV, _DEPTHWISE):
            if op.inputs is None or len(op.inputs) < 2 or op.inputs[1] < 0:
                return None
            if op.inputs[1] >= len(sg.tensors):
                return None
            fs = _shape(sg, op.inputs[1])
            if len(fs) != 4:
                return None
            kh, kw = fs[1], fs[2]
            return (o.strideH, o.strideW, o.dilationHFactor, o.dilationWFactor, kh, kw, o.padding == 0)
        return (o.strideH, o.strideW, 1, 1, o.filterHeight, o.filterWidth, o.padding == 0)
    if name in _BINARY_CONVS + ("LceBMaxPool2d",):
        from flatbuffers import flexbuffers

        try:
            opts = flexbuffers.Loads(bytes(op.customOptions if op.customOptions is not None else b""))
        except Exception:  # noqa: BLE001 - the delegate reports bad option bytes itself
            return None
        if not isinstance(opts, dict):
            return None

        def get(key, default):
            # Read values the way the delegate's option reader does: it converts bools
            # and floats to integers, so the bounds below must see them too (a bool
            # padding used to skip the stride check here and reach a stock crash).
            v = opts.get(key, default)
            if isinstance(v, float):  # integral floats only; the delegate names others
                return int(v) if math.isfinite(v) and v == int(v) and abs(v) < 2**63 else None
            return int(v) if isinstance(v, int) else None

        sh, sw, pad = get("stride_height", None), get("stride_width", None), get("padding", None)
        if name == "LceBMaxPool2d":
            kh, kw, dh, dw = get("filter_height", None), get("filter_width", None), 1, 1
            if kh is None or kw is None:
                return None  # missing or mistyped window: the delegate names it
        else:
            if op.inputs is None or len(op.inputs) < 2 or op.inputs[1] < 0:
                return None
            fs = _shape(sg, op.inputs[1]) if op.inputs[1] < len(sg.tensors) else []
            if name == "LceBconv2d" and len(fs) == 4:
                kh, kw = fs[1], fs[2]
            else:  # SbnnBconv2d: the shape is in the SBF1 header, checked by the delegate
                kh = kw = None
            dh, dw = get("dilation_height_factor", 1), get("dilation_width_factor", 1)
        if None in (sh, sw, pad, dh, dw) or pad not in (0, 1):
            return None  # missing or mistyped options: the delegate names them
        if not all(1 <= v <= MAX_STRIDE for v in (sh, sw, dh, dw) + ((kh, kw) if kh is not None else ())):
            return None  # out of the delegate's bounds: it names the option and the node
        return (sh, sw, dh, dw, kh, kw, pad == 0)
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
        if builtin >= 0 and builtin not in _RECURRENT and op.inputs is not None:
            for slot, k in enumerate(list(op.inputs)[:2]):
                if int(k) < 0:
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
    sh, sw, dh, dw, kh, kw, same = w
    for label, v in (("stride height", sh), ("stride width", sw), ("dilation height", dh),
                     ("dilation width", dw)):
        if not 1 <= v <= MAX_STRIDE:
            raise GraphError(f"the .tflite graph is inconsistent: {where} has {label} {v} "
                             f"(must be in 1..{MAX_STRIDE})")
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
