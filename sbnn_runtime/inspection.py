"""What a converted ``.tflite`` holds: its operators and how each binary filter is stored.

Reads the flatbuffer with the installed interpreter's schema (``tflite_model``) and
decodes SBF1 filters (``sparse_format``); nothing here runs the model.
"""

from __future__ import annotations

import os
from pathlib import Path

from sbnn_runtime import sparse_format, tflite_model
from sbnn_runtime.interpreter import ModelSource

__all__ = ["inspect", "format_inspection"]

#: ops whose input 1 is a binary filter
BINARY_FILTER_OPS = ("LceBconv2d", sparse_format.SPARSE_OP)


def _read(model: ModelSource) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "<bytes>"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"inspect: argument `model`: no file at {str(path)!r}")
        return path.read_bytes(), str(path)
    raise ValueError(f"inspect: argument `model` must be bytes or a path, got {type(model).__name__}")


def _lce_filter(graph, op, tensor, raw: bytes) -> dict:
    from flatbuffers import flexbuffers

    o, kh, kw, words = (int(d) for d in tensor.ShapeAsNumpy())
    in_words = graph.tensor_shapes[op.inputs[0]][-1]
    options = flexbuffers.Loads(op.custom_options)
    channels = int(options["channels_in"]) // max(1, in_words // words)
    return {"format": "lce", "shape": [o, kh, kw, channels],
            "bits_per_weight": 8 * len(raw) / (o * kh * kw * channels)}


def _sbf1_filter(raw: bytes) -> dict:
    wb = sparse_format.decode_filter(raw)
    return {"format": "sbf1", "shape": list(wb.shape), "connections": float((wb > 0).mean()),
            "bits_per_weight": 8 * len(raw) / wb.size}


def inspect(model: ModelSource) -> dict:
    """The operators of a converted model and the storage of its binary filters.

    Args:
        model: the ``.tflite`` bytes or a path to the file.

    Returns:
        ``{"file", "size_bytes", "op_counts": {op: n}, "binary_filters": [...]}``; each
        filter entry has ``op`` (index), ``type``, ``stored_bytes``, ``format``
        (``"lce"`` bitpacked or ``"sbf1"``), ``shape`` (OHWI), ``bits_per_weight`` and,
        for SBF1, the fraction of ``connections``.

    Raises:
        ValueError: the file is missing, not a ``.tflite``, or a filter is corrupt (the
            message says which op).
    """
    data, name = _read(model)
    graph = tflite_model.read_tflite(data)
    info = {"file": name, "size_bytes": len(data), "op_counts": graph.op_counts(), "binary_filters": []}
    root = tflite_model.schema().Model.GetRootAs(data, 0)
    sub = root.Subgraphs(0)
    for op in graph.ops:
        if op.name not in BINARY_FILTER_OPS or len(op.inputs) < 2:
            continue
        try:
            tensor = sub.Tensors(op.inputs[1])
            buf = root.Buffers(tensor.Buffer())
            raw = bytes(buf.DataAsNumpy()) if buf.DataLength() else b""
            entry = {"op": op.index, "type": op.name, "stored_bytes": len(raw)}
            if raw:
                entry.update(_sbf1_filter(raw) if op.name == sparse_format.SPARSE_OP
                             else _lce_filter(graph, op, tensor, raw))
        except sparse_format.SparseFilterError as err:
            raise ValueError(f"{name}: op {op.index}: corrupt SBF1 filter: {err}") from None
        except (KeyError, ValueError, IndexError, ZeroDivisionError, TypeError) as err:
            raise ValueError(
                f"{name}: op {op.index}: cannot read the binary filter ({type(err).__name__}: {err})"
            ) from None
        info["binary_filters"].append(entry)
    return info


def format_inspection(info: dict) -> str:
    """``inspect``'s result as the table ``sbnn-keras inspect`` prints.

    Raises:
        ValueError: ``info`` is not a result of ``inspect``.
    """
    keys = ("file", "size_bytes", "op_counts", "binary_filters")
    if not isinstance(info, dict) or any(k not in info for k in keys):
        raise ValueError(f"format_inspection: argument `info` must be a result of inspect() with keys "
                         f"{', '.join(keys)}, got {info!r}"[:300])
    lines = [f"{info['file']}: {info['size_bytes']:,} bytes",
             "ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(info["op_counts"].items()))]
    for f in info["binary_filters"]:
        extra = f" p={f['connections']:.3f}" if "connections" in f else ""
        lines.append(
            f"  op {f['op']:>3} {f['type']:<12} {f.get('format', '-'):<5} {f['stored_bytes']:>9,} bytes"
            f"  {f.get('bits_per_weight', 0):.3f} bits/weight{extra}"
        )
    return "\n".join(lines)
