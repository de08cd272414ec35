"""Store the binary filters of a converted model in SBF1 form (flavors "sparse"/"auto").

Rewrites ``LceBconv2d`` operators of a .tflite produced by the "lce" flavor into the
project's ``SbnnBconv2d`` operator: same inputs and custom options, but the filter
tensor (int32 bitpacked OHWI) is replaced by a uint8 tensor holding the filter in
SBF1 form (``sbnn_runtime.sparse_format``), near h(p) bits per weight. The delegate
(``sbnn_keras.load_delegate``) decodes it at load time; LCE's own runtime does not
know ``SbnnBconv2d``.

With ``fuse_q=True`` (flavors "sparse"/"auto") the float ops that follow an
{alpha, beta} layer's convolution (the lowering's ``main + phi * q``: two
STRIDED_SLICE, MUL, ADD, and the BatchNorm / bias MUL and ADD by per-channel
constants after them, up to an activation) are folded into the ``SbnnBconv2d``
(custom option ``fused_q = 1``, docs/runtime.md): the op computes
``clamp(A * dot + D * dot[q] + B)`` with the q channel (the filter's last, all +1)
kept in the filter and never written out. Coefficients are folded in float64 and
stored as float32. Grouped convolutions (q interleaved per group) keep the float ops.
A residual ``ADD`` that is the only consumer of such a fused op's float output (same
shape, no activation on the ADD) is folded in too (option ``fused_add = 1``, the other
summand as input 6): the op writes ``y + residual`` once instead of ``y`` for the ADD
to read back.
"""

from __future__ import annotations

import copy
import dataclasses

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

from larq_compute_engine.mlir.python import tflite_schema as _schema  # noqa: E402

from sbnn_keras import math as sbnn_math  # noqa: E402
from sbnn_runtime.sparse_format import SPARSE_OP, encode_filter  # noqa: E402

__all__ = ["FilterStorage", "compress_filters", "SPARSE_OP", "unpack_filter"]

_UINT8 = 3
_CUSTOM = 32


@dataclasses.dataclass
class FilterStorage:
    """How one binary filter is stored."""

    op_index: int
    filter_shape: tuple  # (out_channels, kh, kw, channels per group)
    connections: float  # share of +1 weights (the minority may be -1 per channel)
    minority: float  # share of each channel's minority value, averaged
    entropy_bits: float  # h(p) per weight of the per-channel minority shares
    dense_bytes: int
    stored_bytes: int
    format: str  # "sbf1" or "lce"
    fused_ops: list = dataclasses.field(default_factory=list)  # float ops folded in (fuse_q)

    @property
    def bits_per_weight(self) -> float:
        n = int(np.prod(self.filter_shape))
        return 8 * self.stored_bytes / n


def unpack_filter(words: np.ndarray, channels: int) -> np.ndarray:
    """LCE bitpacked OHWI int32 words ``[O, H, W, ceil(C/32)]`` -> {-1, +1} int8 OHWI."""
    o, h, w, nwords = words.shape
    bits = np.unpackbits(
        words.astype("<i4").view(np.uint8).reshape(o, h, w, nwords * 4), axis=-1, bitorder="little"
    )
    return np.where(bits[..., :channels] == 1, -1, 1).astype(np.int8)


def _opcode_index(model, name):
    for i, code in enumerate(model.operatorCodes):
        if code.customCode is not None and bytes(code.customCode).decode() == name:
            return i
    code = _schema.OperatorCodeT()
    code.builtinCode = _CUSTOM
    code.deprecatedBuiltinCode = _CUSTOM
    code.customCode = name
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def compress_filters(
    data: bytes, *, only_if_smaller: bool, fuse_q: bool = False
) -> tuple[bytes, list[FilterStorage]]:
    """Rewrite every constant-filter ``LceBconv2d`` of ``data`` as ``SbnnBconv2d``.

    Args:
        data: a .tflite from ``convert(..., flavor="lce")``.
        only_if_smaller: keep the LCE op (1 bit/weight) when SBF1 would not be smaller.
        fuse_q: fold the float ops after each SbnnBconv2d with a q channel into it
            (module docstring); FilterStorage.fused_ops lists them.

    Returns:
        The new .tflite bytes and one ``FilterStorage`` per binary convolution.
    """
    model = _schema.ModelT.InitFromObj(_schema.Model.GetRootAsModel(data, 0))
    model = copy.deepcopy(model)
    graph = model.subgraphs[0]
    lce_index = None
    for i, code in enumerate(model.operatorCodes):
        if code.customCode is not None and bytes(code.customCode).decode() == "LceBconv2d":
            lce_index = i
    storages = []
    if lce_index is None:
        return data, storages
    sparse_index = None
    q_candidates = {}  # op number -> its FilterStorage (last filter channel all +1, 1 group)
    for op_number, op in enumerate(graph.operators):
        if op.opcodeIndex != lce_index:
            continue
        options = flexbuffers.Loads(bytes(op.customOptions))
        filt = graph.tensors[op.inputs[1]]
        buffer = model.buffers[filt.buffer]
        if buffer.data is None or len(buffer.data) == 0:
            continue  # filter not constant: leave it to LCE's op
        in_words = int(graph.tensors[op.inputs[0]].shape[-1])
        o, kh, kw, fwords = (int(d) for d in filt.shape)
        groups = max(1, in_words // fwords)
        channels = int(options["channels_in"]) // groups
        words = np.frombuffer(bytes(np.asarray(buffer.data, np.uint8)), dtype="<i4").reshape(o, kh, kw, fwords)
        wb = unpack_filter(words, channels)
        encoded = encode_filter(wb)
        plus = wb > 0
        per_channel = plus.reshape(o, -1).mean(axis=1)
        minority = np.minimum(per_channel, 1 - per_channel)
        entropy = float(np.mean(sbnn_math.binary_entropy(minority)))
        dense_bytes = words.nbytes
        use_sparse = not only_if_smaller or len(encoded) < dense_bytes
        storages.append(
            FilterStorage(
                op_index=op_number,
                filter_shape=(o, kh, kw, channels),
                connections=float(plus.mean()),
                minority=float(minority.mean()),
                entropy_bits=entropy,
                dense_bytes=dense_bytes,
                stored_bytes=len(encoded) if use_sparse else dense_bytes,
                format="sbf1" if use_sparse else "lce",
            )
        )
        if not use_sparse:
            continue
        if groups == 1 and o >= 2 and bool(np.all(wb[-1] == 1)):
            q_candidates[op_number] = storages[-1]
        if sparse_index is None:
            sparse_index = _opcode_index(model, SPARSE_OP)
        _use_sparse_filter(model, graph, op, encoded, sparse_index)
    if fuse_q and q_candidates:
        _fuse_float_ops(model, graph, storages, q_candidates, sparse_index)
    _drop_unused_tensors(model)
    builder = flatbuffers.Builder(max(1024, len(data)))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), storages


def _use_sparse_filter(model, graph, op, encoded: bytes, sparse_index: int) -> None:
    """Turns the LceBconv2d ``op`` into SbnnBconv2d reading the SBF1 bytes ``encoded``
    from a new uint8 tensor (the dense filter tensor is dropped later if unused)."""
    filt = graph.tensors[op.inputs[1]]
    new_buffer = _schema.BufferT()
    new_buffer.data = np.frombuffer(encoded, dtype=np.uint8).copy()
    model.buffers.append(new_buffer)
    tensor = _schema.TensorT()
    tensor.shape = np.array([len(encoded)], dtype=np.int32)
    tensor.type = _UINT8
    tensor.buffer = len(model.buffers) - 1
    tensor.name = (bytes(filt.name) if filt.name else b"filter") + b"/sbf1"
    graph.tensors.append(tensor)
    op.inputs = np.array(op.inputs, dtype=np.int32)
    op.inputs[1] = len(graph.tensors) - 1
    op.opcodeIndex = sparse_index


def _fuse_float_ops(model, graph, storages, q_candidates, sparse_index) -> None:
    """Folds the float ops after the q-channel convolutions, then the residual ADDs,
    into their SbnnBconv2d (module docstring); ``storages`` follow the new op order."""
    remap = _fuse_q_ops(model, graph, q_candidates)
    if remap is not None:
        for storage in storages:
            storage.op_index = remap[storage.op_index]
    by_op = {s.op_index: s for s in storages}
    remap = _fuse_residual_adds(model, graph, sparse_index, by_op)
    if remap is not None:
        for storage in storages:
            storage.op_index = remap[storage.op_index]


_ADD, _MUL, _RELU, _RELU_N1_TO_1, _RELU6, _SUB, _STRIDED_SLICE = 0, 18, 19, 20, 21, 41, 45
_FLOAT32 = 0
_ACT_CODES = {0: 0, 1: 1, 2: 2, 3: 3}  # TFLite fused activation -> fused_activation_function
_ACT_OPS = {_RELU: 1, _RELU_N1_TO_1: 2, _RELU6: 3}
_OP_NAMES = {_ADD: "ADD", _MUL: "MUL", _SUB: "SUB", _STRIDED_SLICE: "STRIDED_SLICE",
             _RELU: "RELU", _RELU_N1_TO_1: "RELU_N1_TO_1", _RELU6: "RELU6"}


def _builtin(model, op):
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode is not None:
        return None
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def _const(model, graph, t):
    """The constant value of tensor t (float32 / int32), or None."""
    if t < 0:
        return None
    tensor = graph.tensors[t]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dtype = {0: "<f4", 2: "<i4"}.get(int(tensor.type))
    if dtype is None:
        return None
    shape = [int(d) for d in tensor.shape] if tensor.shape is not None else []
    arr = np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype=dtype)
    if arr.size != int(np.prod(shape)):
        return None
    return arr.reshape(shape).astype(np.float64 if dtype == "<f4" else np.int64)


def _channel_vector(value, channels):
    """A constant that broadcasts along the last axis only -> float64 [channels], or None."""
    v = np.asarray(value)
    if v.size == 1:
        return np.full(channels, float(v.reshape(-1)[0]))
    if v.shape[-1] == channels and v.size == channels:
        return v.reshape(channels).astype(np.float64)
    return None


def _slice_range(model, graph, op, in_shape):
    """Channel range [b, e) of a STRIDED_SLICE that keeps every other axis whole."""
    opts = op.builtinOptions
    if opts is None or len(op.inputs) != 4:
        return None
    if opts.ellipsisMask or opts.newAxisMask or opts.shrinkAxisMask or getattr(opts, "offset", False):
        return None
    begin, end, strides = (_const(model, graph, int(t)) for t in op.inputs[1:4])
    rank = len(in_shape)
    if begin is None or end is None or strides is None or begin.shape != (rank,) or end.shape != (rank,):
        return None
    if strides.shape != (rank,) or np.any(strides != 1):
        return None
    for axis in range(rank):
        b = 0 if opts.beginMask >> axis & 1 else int(begin[axis])
        e = in_shape[axis] if opts.endMask >> axis & 1 else int(end[axis])
        b = b + in_shape[axis] if b < 0 else b
        e = e + in_shape[axis] if e < 0 else e
        b, e = max(0, min(b, in_shape[axis])), max(0, min(e, in_shape[axis]))
        if axis < rank - 1 and (b, e) != (0, in_shape[axis]):
            return None
    return b, e


def _consumers(graph):
    """tensor -> numbers of the operators that read it."""
    consumers = {}
    for i, op in enumerate(graph.operators):
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(int(t), []).append(i)
    return consumers


def _set_custom_options(op, options):
    op.customOptions = np.frombuffer(flexbuffers.Dumps(options), dtype=np.uint8).copy()


def _append_name(graph, tensor, other):
    """Add tensor `other`'s name to `tensor`'s (``a;b``) unless it is in it already: the
    report attributes an op to the layers named in its output (the fused op's output
    keeps the name the unfused file gives it, first)."""
    own = bytes(graph.tensors[tensor].name or b"")
    extra = bytes(graph.tensors[other].name or b"")
    if extra and extra not in own:
        graph.tensors[tensor].name = own + b";" + extra


def _fuse_q_ops(model, graph, candidates):
    """Fold the float ops after each candidate SbnnBconv2d into it (module docstring).
    Removes the folded operators; returns the old -> new operator numbers (None if
    nothing was fused)."""
    consumers = _consumers(graph)
    graph_outputs = set(int(t) for t in graph.outputs)
    removed = set()
    for conv_index, storage in sorted(candidates.items()):
        conv = graph.operators[conv_index]
        fused = _plan_q_fusion(model, graph, conv_index, consumers, graph_outputs)
        if fused is None:
            continue
        region, exit_tensor, A, D, B, act, names = fused
        options = flexbuffers.Loads(bytes(conv.customOptions))
        options["fused_q"] = 1
        options["fused_activation_function"] = act
        _set_custom_options(conv, options)
        inputs = [int(conv.inputs[0]), int(conv.inputs[1])]
        for name, vec in (("A", A), ("B", B)):
            inputs.append(_add_const(model, graph, vec, conv, name))
        inputs.append(-1)
        inputs.append(_add_const(model, graph, D, conv, "D"))
        conv_out = int(conv.outputs[0])
        conv.inputs = np.array(inputs, dtype=np.int32)
        conv.outputs = np.array([exit_tensor], dtype=np.int32)
        _append_name(graph, exit_tensor, conv_out)
        removed.update(region)
        storage.fused_ops = names
    if not removed:
        return None
    remap, kept = {}, []
    for i, op in enumerate(graph.operators):
        if i not in removed:
            remap[i] = len(kept)
            kept.append(op)
    graph.operators = kept
    return remap


def _fuse_residual_adds(model, graph, sparse_index, storages):
    """Fold ``ADD(y, r)`` into each fused-q SbnnBconv2d whose float output y only that
    ADD reads (module docstring). The op moves to the ADD's place in the operator order
    (its inputs are produced before its old place, the residual before the ADD).
    Returns the old -> new operator numbers, or None if nothing was fused."""
    consumers = _consumers(graph)
    graph_outputs = set(int(t) for t in graph.outputs)
    moves = {}  # ADD op number -> conv op number
    for conv_index, conv in enumerate(graph.operators):
        if conv.opcodeIndex != sparse_index:
            continue
        options = flexbuffers.Loads(bytes(conv.customOptions))
        if int(options.get("fused_q", 0)) != 1 or int(options.get("fused_add", 0)) != 0:
            continue
        y = int(conv.outputs[0])
        users = consumers.get(y, [])
        if y in graph_outputs or len(users) != 1:
            continue
        add = graph.operators[users[0]]
        if _builtin(model, add) != _ADD or len(add.inputs) != 2 or len(add.outputs) != 1:
            continue
        opts = add.builtinOptions
        if opts is not None and int(getattr(opts, "fusedActivationFunction", 0) or 0) != 0:
            continue
        ins = [int(t) for t in add.inputs]
        if ins.count(y) != 1:
            continue
        r = ins[1] if ins[0] == y else ins[0]
        rt, yt, ot = graph.tensors[r], graph.tensors[y], graph.tensors[int(add.outputs[0])]
        shape = [int(d) for d in yt.shape]
        if (
            _const(model, graph, r) is not None
            or any(int(t.type) != _FLOAT32 for t in (rt, yt, ot))
            or [int(d) for d in rt.shape] != shape
            or [int(d) for d in ot.shape] != shape
        ):
            continue
        options["fused_add"] = 1
        _set_custom_options(conv, options)
        inputs = [int(t) for t in conv.inputs] + [-1] * (6 - len(conv.inputs))
        conv.inputs = np.array(inputs[:6] + [r], dtype=np.int32)
        out = int(add.outputs[0])
        conv.outputs = np.array([out], dtype=np.int32)
        _append_name(graph, out, y)
        moves[users[0]] = conv_index
        if conv_index in storages:
            storages[conv_index].fused_ops = list(storages[conv_index].fused_ops) + ["ADD (residual)"]
    if not moves:
        return None
    moved = set(moves.values())
    order = []  # new operator list: each fused ADD's place taken by its conv
    for i in range(len(graph.operators)):
        if i in moved:
            continue
        order.append(moves.get(i, i))
    remap = {old: new for new, old in enumerate(order)}
    graph.operators = [graph.operators[i] for i in order]
    return remap


def _add_const(model, graph, values, conv, what):
    buffer = _schema.BufferT()
    buffer.data = np.frombuffer(np.asarray(values, "<f4").tobytes(), dtype=np.uint8).copy()
    model.buffers.append(buffer)
    tensor = _schema.TensorT()
    tensor.shape = np.array([len(values)], dtype=np.int32)
    tensor.type = _FLOAT32
    tensor.buffer = len(model.buffers) - 1
    out_name = bytes(graph.tensors[int(conv.outputs[0])].name or b"bconv")
    tensor.name = out_name[:200] + b"/fused_q_" + what.encode()
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _q_slices(model, graph, conv_index, consumers, graph_outputs):
    """The start of a q fusion after SbnnBconv2d ``conv_index``: its float output split
    by two STRIDED_SLICEs into the channels [0, cq) and the q channel. Returns
    ``(shape, cq, exprs, region)`` (``exprs``: each slice's output as (A, D, B) over
    dot[c], dot[q], 1; ``region``: the two slices) or None."""
    conv = graph.operators[conv_index]
    options = flexbuffers.Loads(bytes(conv.customOptions))
    if int(options.get("fused_activation_function", 0)) != 0 or int(options.get("fused_q", 0)):
        return None
    if len(conv.inputs) > 4 and int(conv.inputs[4]) >= 0:
        return None
    conv_out = int(conv.outputs[0])
    out_t = graph.tensors[conv_out]
    if int(out_t.type) != _FLOAT32 or conv_out in graph_outputs:
        return None
    shape = [int(d) for d in out_t.shape]
    cq = shape[-1] - 1  # the q channel; the output keeps channels [0, cq)
    if cq < 1:
        return None
    mul = _const(model, graph, int(conv.inputs[2])) if len(conv.inputs) > 2 and conv.inputs[2] >= 0 else np.ones(cq + 1)
    bias = _const(model, graph, int(conv.inputs[3])) if len(conv.inputs) > 3 and conv.inputs[3] >= 0 else np.zeros(cq + 1)
    if mul is None or bias is None or mul.shape != (cq + 1,) or bias.shape != (cq + 1,):
        return None
    # conv output channel c = mul[c] * dot[c] + bias[c] (float output, no activation)
    zero = np.zeros(cq)
    exprs = {}  # tensor -> (A, D, B) over dot[c], dot[q], 1 (vectors of cq; q slice broadcast)
    region = []
    slices = consumers.get(conv_out, [])
    if len(slices) != 2:
        return None
    for i in slices:
        op = graph.operators[i]
        if _builtin(model, op) != _STRIDED_SLICE or int(op.inputs[0]) != conv_out:
            return None
        rng = _slice_range(model, graph, op, shape)
        if rng == (0, cq):
            exprs[int(op.outputs[0])] = (mul[:cq].copy(), zero.copy(), bias[:cq].copy())
        elif rng == (cq, cq + 1):
            exprs[int(op.outputs[0])] = (zero.copy(), np.full(cq, mul[cq]), np.full(cq, bias[cq]))
        else:
            return None
        region.append(i)
    if len(exprs) != 2:
        return None
    return shape, cq, exprs, region


def _affine_step(model, graph, op, code, ins, exprs, cq):
    """``(A, D, B), activation`` of the output of the binary ADD/MUL/SUB ``op`` whose
    inputs are expressions of ``exprs`` or per-channel constants, or None when it is
    not affine in them (a product of two expressions, an activation TFLite cannot
    fuse, a constant that is not per channel)."""
    zero = np.zeros(cq)
    if len(ins) != 2:
        return None
    opts = op.builtinOptions
    new_act = int(getattr(opts, "fusedActivationFunction", 0) or 0) if opts is not None else 0
    if new_act not in _ACT_CODES:
        return None
    new_act = _ACT_CODES[new_act]
    x, y = ins
    ex, ey = exprs.get(x), exprs.get(y)
    cx = None if ex is not None else _const(model, graph, x)
    cy = None if ey is not None else _const(model, graph, y)
    if ex is None:
        cx = _channel_vector(cx, cq) if cx is not None else None
        if cx is None:
            return None
    if ey is None:
        cy = _channel_vector(cy, cq) if cy is not None else None
        if cy is None:
            return None
    if code == _MUL:
        if ex is not None and ey is not None:
            return None  # product of two expressions: not affine
        e, k = (ex, cy) if ex is not None else (ey, cx)
        return (e[0] * k, e[1] * k, e[2] * k), new_act
    sign = -1.0 if code == _SUB else 1.0
    ax = ex if ex is not None else (zero, zero, cx)
    ay = ey if ey is not None else (zero, zero, cy)
    return (ax[0] + sign * ay[0], ax[1] + sign * ay[1], ax[2] + sign * ay[2]), new_act


def _plan_q_fusion(model, graph, conv_index, consumers, graph_outputs):
    """The ops after SbnnBconv2d conv_index that form ``clamp(A*dot + D*dot[q] + B)``:
    (region op numbers, exit tensor, A, D, B, activation code, op names) or None."""
    start = _q_slices(model, graph, conv_index, consumers, graph_outputs)
    if start is None:
        return None
    shape, cq, exprs, region = start
    names = ["STRIDED_SLICE"] * len(region)
    best = None
    for i in range(max(region) + 1, len(graph.operators)):
        op = graph.operators[i]
        ins = [int(t) for t in op.inputs]
        if not any(t in exprs for t in ins):
            continue
        code = _builtin(model, op)
        if code not in (_ADD, _MUL, _SUB, _RELU, _RELU_N1_TO_1, _RELU6) or len(op.outputs) != 1:
            break
        out = int(op.outputs[0])
        out_t = graph.tensors[out]
        if int(out_t.type) != _FLOAT32 or [int(d) for d in out_t.shape][-1:] not in ([cq], [1]):
            break
        if code in _ACT_OPS:
            if len(ins) != 1:
                break
            new, new_act = exprs[ins[0]], _ACT_OPS[code]
        else:
            step = _affine_step(model, graph, op, code, ins, exprs, cq)
            if step is None:
                break
            new, new_act = step
        exprs[out] = new
        region.append(i)
        names.append(_OP_NAMES[code])
        # a valid stopping point: every tensor of the region but `out` used only inside
        inside = set(region)
        produced = set(exprs)
        ok = all(
            t == out or (t not in graph_outputs and all(c in inside for c in consumers.get(t, [])))
            for t in produced
        )
        full = [int(d) for d in graph.tensors[out].shape] == shape[:-1] + [cq]
        if ok and full:
            best = (list(region), out, new, new_act, list(names))
        if new_act != 0:
            break  # clamped: no longer affine
    if best is None:
        return None
    region, out, (A, D, B), act, names = best
    return region, out, A, D, B, act, names


def _drop_unused_tensors(model):
    """Remove tensors no operator, graph input/output or signature uses any more (the
    old dense filters), renumber the rest, and empty the buffers they held."""
    for graph_index, graph in enumerate(model.subgraphs):
        used = set(int(t) for t in graph.inputs) | set(int(t) for t in graph.outputs)
        for op in graph.operators:
            for field in (op.inputs, op.outputs, op.intermediates):
                if field is not None:
                    used.update(int(t) for t in field if t >= 0)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == graph_index:
                used.update(m.tensorIndex for m in list(sig.inputs or []) + list(sig.outputs or []))
        keep = sorted(used)
        if len(keep) == len(graph.tensors):
            continue
        remap = {old: new for new, old in enumerate(keep)}

        def renumber(values):
            if values is None:
                return None
            return np.array([remap[int(t)] if t >= 0 else -1 for t in values], dtype=np.int32)

        dropped = [graph.tensors[i] for i in range(len(graph.tensors)) if i not in used]
        graph.tensors = [graph.tensors[i] for i in keep]
        graph.inputs = renumber(graph.inputs)
        graph.outputs = renumber(graph.outputs)
        for op in graph.operators:
            op.inputs = renumber(op.inputs)
            op.outputs = renumber(op.outputs)
            op.intermediates = renumber(op.intermediates)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == graph_index:
                for m in list(sig.inputs or []) + list(sig.outputs or []):
                    m.tensorIndex = remap[m.tensorIndex]
        still_used = {t.buffer for g in model.subgraphs for t in g.tensors}
        for tensor in dropped:
            if tensor.buffer not in still_used and tensor.buffer != 0:
                model.buffers[tensor.buffer].data = None
