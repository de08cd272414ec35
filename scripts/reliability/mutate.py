"""Structure-aware mutations of converted ``.tflite`` models (graphs and custom options).

Used by the reliability campaign (``campaign.py``: a fixed, enumerated reproducer set)
and by the real-runtime fuzzer (``fuzz_runtime.py``: random stacks of the same
mutations). Every mutation works on TensorFlow's generated flatbuffer object API, so
it edits what the runtime reads (op order, tensor indices, shapes, types,
quantization, opcodes, custom-option maps, constant buffers) rather than raw bytes;
byte-level mutations are there too, for what the object API cannot express.

Custom options are flexbuffer maps. ``write_options`` re-encodes a map with a chosen
minimum byte width and per-value encodings (inline / indirect / unsigned / float /
bool / string / vector), so the mutator reaches every layout the option reader must
handle, not only the one the converter writes.
"""

from __future__ import annotations

import random
import struct
from typing import Any, Callable

import flatbuffers
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

#: TFLite tensor types (schema.TensorType) the mutator assigns.
TENSOR_TYPES = (0, 1, 2, 3, 4, 6, 7, 9, 10, 16)

INTERESTING_INTS = (
    0, 1, 2, 3, -1, -2, 7, 31, 32, 33, 63, 64, 65, 255, 256, 4095, 4096, 32767, 32768,
    65535, 65536, 2**31 - 1, 2**31, -(2**31), 2**32 - 1, 2**32, 2**40, 2**62, -(2**63),
)
INTERESTING_DIMS = (0, 1, 2, 3, 31, 33, 64, 255, 65536, 2**20, 2**31 - 1, -1, -2**31)
INTERESTING_FLOATS = (0.0, -0.0, 1e-45, 1e-30, 1.0, -1.0, 1e30, 3.4e38, float("inf"),
                      float("-inf"), float("nan"))


# ---- flatbuffer object API --------------------------------------------------------


def read(data: bytes):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))


def write(model) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return code.customCode.decode(errors="replace")
    return f"builtin_{max(code.builtinCode, code.deprecatedBuiltinCode)}"


def custom_ops(model) -> list:
    """(index, op) of the ops with custom options, in the first subgraph."""
    return [(i, op) for i, op in enumerate(model.subgraphs[0].operators or [])
            if op.customOptions is not None and len(op.customOptions)]


def options(op) -> dict:
    return flexbuffers.Loads(bytes(op.customOptions))


# ---- flexbuffer option maps with chosen encodings ---------------------------------

#: Encodings of one map value: how write_options stores it.
ENCODINGS = ("int", "uint", "indirect_int", "float", "indirect_float", "bool", "string",
             "null", "vector", "map")


def write_options(items: list, min_width: int = 1, widths: dict | None = None) -> bytes:
    """A flexbuffer map from ``[(key, value, encoding)]``.

    ``min_width`` (1, 2, 4, 8) is the smallest byte width of every offset and scalar
    (flexbuffers' ``force_min_bit_width``); ``widths[key]`` forces one value's width.
    Keys are sorted by the builder, as the format requires.
    """
    bit = {1: flexbuffers.BitWidth.W8, 2: flexbuffers.BitWidth.W16,
           4: flexbuffers.BitWidth.W32, 8: flexbuffers.BitWidth.W64}[min_width]
    b = flexbuffers.Builder(force_min_bit_width=bit)
    widths = widths or {}
    with b.Map():
        for key, value, enc in items:
            w = widths.get(key, 0)
            b.Key(key)
            if enc == "int":
                b.Int(int(value), w)
            elif enc == "uint":
                b.UInt(int(value) & (2**64 - 1), w)
            elif enc == "indirect_int":
                b.IndirectInt(int(value), w)
            elif enc == "float":
                b.Float(float(value), w if w in (4, 8) else 0)
            elif enc == "indirect_float":
                b.IndirectFloat(float(value), w if w in (4, 8) else 0)
            elif enc == "bool":
                b.Bool(bool(value))
            elif enc == "string":
                b.String(str(value))
            elif enc == "null":
                b.Null()
            elif enc == "vector":
                b.VectorFromElements([int(value), int(value)])
            elif enc == "map":
                b.MapFromElements({"v": int(value)})
            else:
                raise ValueError(f"unknown encoding {enc!r}")
    return bytes(b.Finish())


def option_items(opts: dict) -> list:
    """The converter's map as write_options items (ints as ints, floats as floats)."""
    items = []
    for k, v in sorted(opts.items()):
        if isinstance(v, bool):
            items.append((k, v, "bool"))
        elif isinstance(v, int):
            items.append((k, v, "int"))
        elif isinstance(v, float):
            items.append((k, v, "float"))
        elif isinstance(v, str):
            items.append((k, v, "string"))
        else:
            items.append((k, 0, "null"))
    return items


# ---- mutation primitives (each edits a ModelT in place) ----------------------------


def swap_ops(m, i: int, j: int) -> None:
    """Swaps ops i and j: a reader may now run before its producer."""
    ops = m.subgraphs[0].operators
    ops[i], ops[j] = ops[j], ops[i]


def self_read(m, i: int, slot: int = 0) -> None:
    """Op i reads its own output in input `slot`."""
    op = m.subgraphs[0].operators[i]
    inputs = list(op.inputs)
    if slot < len(inputs):
        inputs[slot] = int(op.outputs[0])
        op.inputs = inputs


def read_later(m, i: int, slot: int = 0) -> None:
    """Op i reads the output of the last op (a tensor produced later)."""
    ops = m.subgraphs[0].operators
    inputs = list(ops[i].inputs)
    if slot < len(inputs) and i + 1 < len(ops):
        inputs[slot] = int(ops[-1].outputs[0])
        ops[i].inputs = inputs


def set_input(m, i: int, slot: int, tensor: int) -> None:
    op = m.subgraphs[0].operators[i]
    inputs = list(op.inputs)
    if slot < len(inputs):
        inputs[slot] = tensor
    else:
        inputs.append(tensor)
    op.inputs = inputs


def set_output(m, i: int, slot: int, tensor: int) -> None:
    op = m.subgraphs[0].operators[i]
    outputs = list(op.outputs)
    if slot < len(outputs):
        outputs[slot] = tensor
        op.outputs = outputs


def drop_input(m, i: int) -> None:
    op = m.subgraphs[0].operators[i]
    op.inputs = list(op.inputs)[:-1]


def set_opcode(m, i: int, code_index: int) -> None:
    m.subgraphs[0].operators[i].opcodeIndex = code_index


def set_shape(m, t: int, shape: list) -> None:
    tensor = m.subgraphs[0].tensors[t]
    tensor.shape = list(shape)
    tensor.shapeSignature = None


def set_signature(m, t: int, shape: list) -> None:
    m.subgraphs[0].tensors[t].shapeSignature = list(shape)


def set_type(m, t: int, type_code: int) -> None:
    m.subgraphs[0].tensors[t].type = type_code


def set_quantization(m, t: int, scale: list | None, zero_point: list | None, dim: int = 0) -> None:
    q = schema.QuantizationParametersT()
    q.scale = scale
    q.zeroPoint = zero_point
    q.quantizedDimension = dim
    m.subgraphs[0].tensors[t].quantization = q


def set_option(m, i: int, key: str, value: Any, enc: str = "int", min_width: int = 1) -> None:
    """Sets (or adds) one option of op i's map, written with `enc`, other values kept."""
    op = m.subgraphs[0].operators[i]
    items = [it for it in option_items(options(op)) if it[0] != key]
    items.append((key, value, enc))
    op.customOptions = list(write_options(items, min_width))


def drop_option(m, i: int, key: str) -> None:
    op = m.subgraphs[0].operators[i]
    items = [it for it in option_items(options(op)) if it[0] != key]
    op.customOptions = list(write_options(items))


def rename_option(m, i: int, key: str, new_key: str) -> None:
    op = m.subgraphs[0].operators[i]
    items = [(new_key if k == key else k, v, e) for k, v, e in option_items(options(op))]
    op.customOptions = list(write_options(items))


def reencode_options(m, i: int, min_width: int) -> None:
    """The same map written with a wider byte width (must still be read the same)."""
    op = m.subgraphs[0].operators[i]
    op.customOptions = list(write_options(option_items(options(op)), min_width))


def raw_options(m, i: int, data: bytes) -> None:
    m.subgraphs[0].operators[i].customOptions = list(data)


def buffer_of(m, t: int):
    return m.buffers[m.subgraphs[0].tensors[t].buffer]


def set_buffer(m, t: int, data: bytes) -> None:
    """Tensor t gets a new buffer holding `data`."""
    buf = schema.BufferT()
    buf.data = list(data)
    m.buffers.append(buf)
    m.subgraphs[0].tensors[t].buffer = len(m.buffers) - 1


def sbf1_filters(m) -> list:
    """(op index, tensor index, bytes) of every SbnnBconv2d filter."""
    out = []
    for i, op in enumerate(m.subgraphs[0].operators or []):
        if op_name(m, op) == "SbnnBconv2d" and len(op.inputs) > 1:
            buf = buffer_of(m, op.inputs[1])
            if buf.data is not None:
                out.append((i, int(op.inputs[1]), bytes(bytearray(buf.data))))
    return out


def sbf1_set_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
    return bytes(b)


#: SBF1 header fields: name -> (offset, struct format)
SBF1_FIELDS = {"magic": (0, "<I"), "version": (4, "<B"), "rice_k": (5, "<B"), "reserved": (6, "<H"),
               "out_channels": (8, "<I"), "filter_h": (12, "<I"), "filter_w": (16, "<I"),
               "channels": (20, "<I"), "total": (24, "<I"), "payload_bits": (28, "<I")}


# ---- random stacked mutation (the fuzzer) ------------------------------------------


class Mutator:
    """Random structure-aware mutations of a model, stacked 1..`depth` at a time."""

    def __init__(self, rng: random.Random, depth: int = 3):
        self.rng = rng
        self.depth = depth
        self.kinds: list[tuple[str, Callable]] = [
            ("graph", self._graph), ("tensor", self._tensor), ("options", self._options),
            ("options", self._options), ("options", self._options), ("sbf1", self._sbf1),
            ("buffer", self._buffer),
        ]

    def mutate(self, data: bytes) -> tuple[bytes, list]:
        """(mutated bytes, list of what was done)."""
        m = read(data)
        done = []
        for _ in range(self.rng.randint(1, self.depth)):
            kind, fn = self.rng.choice(self.kinds)
            what = fn(m)
            if what:
                done.append(what)
        out = write(m)
        if self.rng.random() < 0.05:  # a few raw byte flips of the whole file
            b = bytearray(out)
            for _ in range(self.rng.randint(1, 4)):
                p = self.rng.randrange(len(b))
                b[p] ^= 1 << self.rng.randrange(8)
            out = bytes(b)
            done.append("file byte flips")
        return out, done

    def _op(self, m):
        ops = m.subgraphs[0].operators
        return self.rng.randrange(len(ops))

    def _tensor_index(self, m):
        n = len(m.subgraphs[0].tensors)
        return self.rng.choice([self.rng.randrange(n), -1, n, n + 7, 2**31 - 1])

    def _graph(self, m):
        r = self.rng
        ops = m.subgraphs[0].operators
        i = self._op(m)
        c = r.randrange(8)
        if c == 0 and len(ops) > 1:
            j = self._op(m)
            swap_ops(m, i, j)
            return f"swap ops {i} {j}"
        if c == 1:
            slot = r.randrange(max(1, len(ops[i].inputs)))
            self_read(m, i, slot)
            return f"op {i} reads its own output (slot {slot})"
        if c == 2:
            read_later(m, i, r.randrange(max(1, len(ops[i].inputs))))
            return f"op {i} reads a later tensor"
        if c == 3:
            slot = r.randrange(len(ops[i].inputs) + 1)
            t = self._tensor_index(m)
            set_input(m, i, slot, t)
            return f"op {i} input {slot} = {t}"
        if c == 4:
            t = self._tensor_index(m)
            set_output(m, i, 0, t)
            return f"op {i} output 0 = {t}"
        if c == 5:
            drop_input(m, i)
            return f"op {i} drops its last input"
        if c == 6:
            k = r.randrange(len(m.operatorCodes))
            set_opcode(m, i, k)
            return f"op {i} opcode index {k}"
        sg = m.subgraphs[0]
        sg.inputs = [self._tensor_index(m)] if r.random() < 0.5 else list(sg.inputs) + list(sg.outputs)
        return f"subgraph inputs {list(sg.inputs)}"

    def _tensor(self, m):
        r = self.rng
        t = r.randrange(len(m.subgraphs[0].tensors))
        tensor = m.subgraphs[0].tensors[t]
        c = r.randrange(5)
        shape = list(tensor.shape if tensor.shape is not None else [])
        if c == 0 and shape:
            k = r.randrange(len(shape))
            shape[k] = r.choice(INTERESTING_DIMS)
            set_shape(m, t, shape)
            return f"tensor {t} shape {shape}"
        if c == 1:
            shape = shape[:-1] if shape and r.random() < 0.5 else shape + [1]
            set_shape(m, t, shape)
            return f"tensor {t} rank -> {shape}"
        if c == 2:
            code = r.choice(TENSOR_TYPES)
            set_type(m, t, code)
            return f"tensor {t} type {code}"
        if c == 3:
            scale = [r.choice(INTERESTING_FLOATS) for _ in range(r.choice((0, 1, 1, 2, 64)))]
            zp = [r.choice(INTERESTING_INTS) % 256 - 128 for _ in range(r.choice((0, 1, 1, 3)))]
            set_quantization(m, t, scale, zp, r.choice((0, 0, 3, 9)))
            return f"tensor {t} quantization {scale[:2]} {zp[:2]}"
        sig = shape[:] if shape else [1]
        sig[0] = -1
        if len(sig) > 2 and r.random() < 0.5:
            sig[1] = sig[2] = -1
        set_signature(m, t, sig)
        return f"tensor {t} signature {sig}"

    def _options(self, m):
        r = self.rng
        cops = custom_ops(m)
        if not cops:
            return None
        i, op = r.choice(cops)
        try:
            opts = options(op)
        except Exception:  # noqa: BLE001 - already corrupt: flip bytes instead
            opts = {}
        keys = sorted(opts) or ["padding"]
        key = r.choice(keys)
        c = r.randrange(8)
        if c <= 2:
            enc = r.choice(("int", "int", "uint", "indirect_int", "float", "bool"))
            value = r.choice(INTERESTING_INTS) if enc != "float" else r.choice(INTERESTING_FLOATS)
            set_option(m, i, key, value, enc, r.choice((1, 1, 2, 4, 8)))
            return f"op {i} option {key}={value!r} as {enc}"
        if c == 3:
            enc = r.choice(ENCODINGS)
            set_option(m, i, key, r.choice((0, 1, 3)), enc, r.choice((1, 2, 4, 8)))
            return f"op {i} option {key} type {enc}"
        if c == 4:
            drop_option(m, i, key)
            return f"op {i} option {key} dropped"
        if c == 5:
            new = r.choice((key[:-1], key + "_", key.upper(), "", "x" * 300, key[::-1]))
            rename_option(m, i, key, new)
            return f"op {i} option {key} renamed {new[:20]!r}"
        if c == 6:
            w = r.choice((2, 4, 8))
            reencode_options(m, i, w)
            return f"op {i} options re-encoded at width {w}"
        data = bytearray(op.customOptions)
        how = r.randrange(3)
        if how == 0 and data:
            for _ in range(r.randint(1, 3)):
                p = r.randrange(len(data))
                data[p] = r.randrange(256)
        elif how == 1:
            data = data[: r.randrange(len(data) + 1)]
        else:
            p = r.randrange(len(data) + 1)
            data[p:p] = bytes(r.randrange(256) for _ in range(r.randint(1, 4)))
        raw_options(m, i, bytes(data))
        return f"op {i} option bytes mutated ({how})"

    def _sbf1(self, m):
        r = self.rng
        filters = sbf1_filters(m)
        if not filters:
            return self._options(m)
        i, t, data = r.choice(filters)
        c = r.randrange(4)
        if c == 0:
            name = r.choice(sorted(SBF1_FIELDS))
            off, fmt = SBF1_FIELDS[name]
            v = r.choice(INTERESTING_INTS)
            set_buffer(m, t, sbf1_set_field(data, off, fmt, v))
            return f"op {i} SBF1 {name}={v}"
        if c == 1:
            n = r.choice((0, 4, 31, 32, 33, len(data) - 1, len(data) // 2))
            set_buffer(m, t, data[: max(0, n)])
            set_shape(m, t, [max(0, n)])
            return f"op {i} SBF1 truncated to {n}"
        if c == 2 and len(data) > 32:
            b = bytearray(data)
            for _ in range(r.randint(1, 3)):
                p = r.randrange(32, len(b))
                b[p] ^= 1 << r.randrange(8)
            set_buffer(m, t, bytes(b))
            return f"op {i} SBF1 payload bit flips"
        extra = bytes(r.randrange(256) for _ in range(r.choice((1, 4, 64))))
        set_buffer(m, t, data + extra)
        set_shape(m, t, [len(data) + len(extra)])
        return f"op {i} SBF1 {len(extra)} trailing bytes"

    def _buffer(self, m):
        r = self.rng
        sg = m.subgraphs[0]
        consts = [k for k, t in enumerate(sg.tensors) if m.buffers[t.buffer].data is not None]
        if not consts:
            return None
        t = r.choice(consts)
        data = bytearray(bytes(bytearray(m.buffers[sg.tensors[t].buffer].data)))
        c = r.randrange(3)
        if c == 0 and data:
            for _ in range(r.randint(1, 8)):
                data[r.randrange(len(data))] = r.randrange(256)
        elif c == 1:
            data = data[: r.randrange(len(data) + 1)]
        else:
            fill = struct.pack("<f", r.choice(INTERESTING_FLOATS))
            data = bytearray(fill * (len(data) // 4))
        set_buffer(m, t, bytes(data))
        return f"tensor {t} constant mutated ({c})"
