"""Store the binary filters of a converted model in SBF1 form (flavors "sparse"/"auto").

Rewrites ``LceBconv2d`` operators of a .tflite produced by the "lce" flavor into the
project's ``SbnnBconv2d`` operator: same inputs and custom options, but the filter
tensor (int32 bitpacked OHWI) is replaced by a uint8 tensor holding the filter in
SBF1 form (``sbnn_keras.sparse_format``), near h(p) bits per weight. The delegate
(``sbnn_keras.load_delegate``) decodes it at load time; LCE's own runtime does not
know ``SbnnBconv2d``.
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
from sbnn_keras.sparse_format import encode_filter  # noqa: E402

__all__ = ["FilterStorage", "compress_filters", "SPARSE_OP", "unpack_filter"]

SPARSE_OP = "SbnnBconv2d"
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


def compress_filters(data: bytes, *, only_if_smaller: bool) -> tuple[bytes, list[FilterStorage]]:
    """Rewrite every constant-filter ``LceBconv2d`` of ``data`` as ``SbnnBconv2d``.

    Args:
        data: a .tflite from ``convert(..., flavor="lce")``.
        only_if_smaller: keep the LCE op (1 bit/weight) when SBF1 would not be smaller.

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
        if sparse_index is None:
            sparse_index = _opcode_index(model, SPARSE_OP)
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
    _drop_unused_tensors(model)
    builder = flatbuffers.Builder(max(1024, len(data)))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), storages


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
