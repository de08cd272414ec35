"""Read the operator list of a .tflite flatbuffer (for conversion reports and checks).

Uses the TFLite schema bindings of the installed interpreter (``ai_edge_litert``'s,
else TensorFlow's), loaded on first use so that importing this module imports neither.
Corrupt or truncated input raises ``ValueError``; nothing here executes the model.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

__all__ = ["Op", "TFLiteGraph", "read_tflite", "schema"]

_SCHEMA_MODULES = ("ai_edge_litert.schema_py_generated", "tensorflow.lite.python.schema_py_generated")
_SCHEMA: list = []


def schema():
    """The flatc-generated TFLite schema module of the installed interpreter.

    Raises:
        ImportError: neither ai-edge-litert nor TensorFlow is installed.
    """
    if not _SCHEMA:
        import importlib

        for name in _SCHEMA_MODULES:
            try:
                _SCHEMA.append(importlib.import_module(name))
                break
            except ImportError:
                continue
        else:
            raise ImportError(
                "reading a .tflite needs a TFLite interpreter package: pip install ai-edge-litert"
            )
    return _SCHEMA[0]


def _builtin_names() -> dict:
    ops = schema().BuiltinOperator
    return {value: name for name, value in vars(ops).items() if not name.startswith("_")}


@dataclasses.dataclass(frozen=True)
class Op:
    """One operator of the main subgraph."""

    index: int
    name: str  # builtin name (e.g. "CONV_2D") or custom code (e.g. "LceBconv2d")
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    output_names: tuple[str, ...]
    custom_options: bytes

    @property
    def is_custom(self) -> bool:
        return self.name[:1].isalpha() and not self.name.isupper()


@dataclasses.dataclass
class TFLiteGraph:
    """The operators and tensors of a model's first subgraph."""

    ops: list[Op]
    tensor_names: list[str]
    tensor_shapes: list[tuple[int, ...]]
    size_bytes: int

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(op.name for op in self.ops))


def read_tflite(data: bytes) -> TFLiteGraph:
    """Parse ``data`` (the bytes of a .tflite file).

    Raises:
        ValueError: if ``data`` is not bytes or not a valid TFLite flatbuffer.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise ValueError(f"read_tflite: argument `data` must be bytes, got {type(data).__name__}.")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(
            f"read_tflite: not a TFLite flatbuffer ({len(data)} bytes, file identifier "
            f"{data[4:8]!r}, expected b'TFL3')."
        )
    builtin_names = _builtin_names()
    try:
        model = schema().Model.GetRootAs(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("the model has no subgraph")
        graph = model.Subgraphs(0)
        codes = []
        for i in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(i)
            custom = code.CustomCode()
            if custom:
                codes.append(custom.decode("utf-8", "replace"))
            else:
                builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
                codes.append(builtin_names.get(builtin, f"BUILTIN_{builtin}"))
        names, shapes = [], []
        for i in range(graph.TensorsLength()):
            tensor = graph.Tensors(i)
            names.append((tensor.Name() or b"").decode("utf-8", "replace"))
            shapes.append(tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ())
        ops = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code_index = op.OpcodeIndex()
            if not 0 <= code_index < len(codes):
                raise ValueError(f"operator {i} has opcode index {code_index} out of range")
            inputs = tuple(int(t) for t in op.InputsAsNumpy()) if op.InputsLength() else ()
            outputs = tuple(int(t) for t in op.OutputsAsNumpy()) if op.OutputsLength() else ()
            for t in inputs + outputs:
                if t >= len(names) or t < -1:
                    raise ValueError(f"operator {i} refers to tensor {t} of {len(names)}")
            options = bytes(op.CustomOptionsAsNumpy()) if op.CustomOptionsLength() else b""
            ops.append(
                Op(
                    index=i,
                    name=codes[code_index],
                    inputs=inputs,
                    outputs=outputs,
                    output_names=tuple(names[t] for t in outputs if t >= 0),
                    custom_options=options,
                )
            )
    except ValueError as err:
        raise ValueError(f"read_tflite: invalid TFLite model: {err}") from err
    except Exception as err:  # flatbuffers raises IndexError/struct.error on bad offsets
        raise ValueError(
            f"read_tflite: invalid or truncated TFLite model ({type(err).__name__}: {err})."
        ) from err
    return TFLiteGraph(ops=ops, tensor_names=names, tensor_shapes=shapes, size_bytes=len(data))
