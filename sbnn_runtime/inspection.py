"""What a converted ``.tflite`` holds: op counts and its binary filters (format, bytes,
bits/weight, connections), read with the runtime alone (no TensorFlow, Keras or LCE).

Used by ``sbnn-keras inspect`` and ``python -m sbnn_runtime inspect``. A hostile file
gives ``ValueError`` naming the op and the field, never a crash.
"""

from __future__ import annotations

from pathlib import Path

from sbnn_runtime import tflite_model
from sbnn_runtime.sparse_format import SPARSE_OP, SparseFilterError, decode_filter

__all__ = ["binary_filters", "format_inspection", "inspect", "summarize"]

_BINARY_OPS = ("LceBconv2d", SPARSE_OP)


def _positive_int_option(op, name: str):
    from flatbuffers import flexbuffers

    opts = flexbuffers.Loads(op.custom_options)
    if not isinstance(opts, dict):
        raise ValueError(f"op {op.index} ({op.name}): custom options are not a map "
                         f"(read as {type(opts).__name__})")
    value = opts.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"op {op.index} ({op.name}): option {name} is {value!r}")
    return value


def _lce_entry(op, tensor, raw: bytes, graph) -> dict:
    o, kh, kw, words = (int(d) for d in tensor.ShapeAsNumpy())
    in_words = graph.tensor_shapes[op.inputs[0]][-1]
    channels_in = _positive_int_option(op, "channels_in")
    channels = channels_in // max(1, in_words // max(1, words))
    if channels < 1 or min(o, kh, kw) < 1:
        raise ValueError(f"op {op.index} ({op.name}): filter shape {[o, kh, kw, words]} and "
                         f"channels_in {channels_in} do not fit")
    return {"format": "lce", "shape": [o, kh, kw, channels],
            "bits_per_weight": 8 * len(raw) / (o * kh * kw * channels)}


def binary_filters(data: bytes, graph=None) -> list[dict]:
    """One entry per binary convolution: ``op``, ``type``, ``stored_bytes`` and, for a
    stored filter, ``format`` ("sbf1" or "lce"), ``shape``, ``bits_per_weight`` (and
    ``connections`` for SBF1).

    Raises:
        ValueError: the file or a filter is corrupt; the message names the op.
    """
    graph = graph or tflite_model.read_tflite(data)
    schema = tflite_model.schema()
    entries = []
    try:
        model = schema.Model.GetRootAs(data, 0)
        sub = model.Subgraphs(0)
        for op in graph.ops:
            if op.name not in _BINARY_OPS or len(op.inputs) < 2:
                continue
            if not 0 <= op.inputs[1] < sub.TensorsLength():
                raise ValueError(f"op {op.index} ({op.name}) has no filter (input 1 is tensor {op.inputs[1]})")
            tensor = sub.Tensors(op.inputs[1])
            buf = model.Buffers(tensor.Buffer())
            raw = bytes(buf.DataAsNumpy()) if buf is not None and buf.DataLength() else b""
            entry = {"op": op.index, "type": op.name, "stored_bytes": len(raw)}
            if op.name == SPARSE_OP and raw:
                wb = decode_filter(raw)
                entry.update(format="sbf1", shape=list(wb.shape), connections=float((wb > 0).mean()),
                             bits_per_weight=8 * len(raw) / wb.size)
            elif raw:
                entry.update(_lce_entry(op, tensor, raw, graph))
            entries.append(entry)
    except SparseFilterError as err:
        raise ValueError(f"corrupt SBF1 filter: {err}") from None
    except ValueError:
        raise
    except (KeyError, IndexError, ZeroDivisionError, TypeError, AttributeError) as err:
        raise ValueError(f"cannot read the binary filters ({type(err).__name__}: {err})") from None
    return entries


def inspect(model) -> dict:
    """``{"file", "size_bytes", "op_counts", "binary_filters"}`` of a ``.tflite`` (a path
    or its bytes; ``file`` is ``"<bytes>"`` for bytes).

    Raises:
        ValueError: ``model`` is neither a path nor bytes, does not exist, or is not a
            readable ``.tflite`` (the message names the file and why).
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        name, data = "<bytes>", bytes(model)
    elif isinstance(model, (str, Path)):
        name = str(model)
        if not Path(model).is_file():
            raise ValueError(f"inspect: argument `model` {name!r} does not exist or is not a file")
        data = Path(model).read_bytes()
    else:
        raise ValueError(f"inspect: argument `model` must be a path or bytes, got {type(model).__name__}")
    return summarize(data, name)


def summarize(data: bytes, name: str) -> dict:
    """``inspect`` of bytes already read; ``name`` is the ``file`` entry and starts
    every error message.

    Raises:
        ValueError: not a readable ``.tflite``.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{name}: not a .tflite flatbuffer (no 'TFL3' file identifier at offset 4)")
    try:
        graph = tflite_model.read_tflite(data)
        filters = binary_filters(data, graph)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return {"file": name, "size_bytes": len(data), "op_counts": graph.op_counts(),
            "binary_filters": filters}


def format_inspection(info: dict) -> str:
    """The human-readable form of ``inspect``'s result.

    Raises:
        ValueError: ``info`` lacks a key ``inspect`` returns.
    """
    keys = ("file", "size_bytes", "op_counts", "binary_filters")
    missing = [k for k in keys if not isinstance(info, dict) or k not in info]
    if missing:
        raise ValueError(f"format_inspection: argument `info` must be what inspect() returns; "
                         f"missing {', '.join(missing)}")
    lines = [f"{info['file']}: {info['size_bytes']:,} bytes",
             "ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(info["op_counts"].items()))]
    for f in info["binary_filters"]:
        extra = f" p={f['connections']:.3f}" if "connections" in f else ""
        lines.append(f"  op {f['op']:>3} {f['type']:<12} {f.get('format', '-'):<5} "
                     f"{f['stored_bytes']:>9,} bytes  {f.get('bits_per_weight', 0):.3f} bits/weight{extra}")
    return "\n".join(lines)
