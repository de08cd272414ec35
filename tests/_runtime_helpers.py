"""Helpers for the delegate tests: small larq models, conversion, flatbuffer surgery.

The .tflite surgery (expose tensors as outputs, change custom options, types or
inputs of a node) goes through TensorFlow's generated schema object API, so the
tests can build variants the converter never emits (bool tensors, fused
activations, absent multipliers) and corrupted models.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sbnn_keras  # noqa: E402,F401  (before tensorflow)
import _goldens  # noqa: E402
import larq as lq  # noqa: E402
import larq_compute_engine as lce  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from flatbuffers import flexbuffers  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema_fb  # noqa: E402

# The .tflite object-API reader and writer are the reliability mutator's (one copy).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "reliability"))
from mutate import read, write  # noqa: E402,F401

LCE_OPS = ("LceQuantize", "LceDequantize", "LceBconv2d", "LceBMaxPool2d")
TFL_TYPES = {"float32": 0, "int32": 2, "bool": 6, "int8": 9}


def qconv(filters, kernel_size=3, **kwargs):
    """A binary conv as larq/LCE expect it (ste_sign on input and kernel)."""
    return lq.layers.QuantConv2D(
        filters,
        kernel_size,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        **kwargs,
    )


def randomize(model, seed=0):
    """Random binary weights and batch-norm statistics with outputs of order 1.

    The moving mean sits inside the conv's range so that thresholds (bitpacked
    outputs) and activation clamps actually cut; some gammas are negative.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantConv2D):
            (w,) = layer.get_weights()
            layer.set_weights([rng.uniform(-1, 1, w.shape).astype(np.float32)])
        elif isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            fan_in = max(1.0, float(np.prod(layer.input_shape[-1:])))
            n = gamma.shape[0]
            sign = np.where(rng.uniform(size=n) < 0.2, -1.0, 1.0)
            layer.set_weights(
                [
                    (sign * rng.uniform(0.5, 1.5, n)).astype(np.float32),
                    rng.uniform(-0.5, 0.5, n).astype(np.float32),
                    rng.normal(0, 2.0, n).astype(np.float32),
                    rng.uniform(0.5, 2.0, n).astype(np.float32) * np.float32(fan_in / 8),
                ]
            )
    return model


def convert(model, **kwargs) -> bytes:
    return lce.convert_keras_model(model, **kwargs)


def cached_convert(name: str, build, need_model: bool = False, **kwargs) -> tuple:
    """(keras model or None, converted bytes): the golden in tests/golden/runtime/.

    LCE's converter costs seconds per model, so the converted models are goldens
    (``tests/_goldens.py``) keyed by the builder's source, the conversion arguments
    and the larq / LCE versions; ``make goldens`` regenerates them. The
    Keras model is only built when needed (``need_model`` or a regeneration).
    """
    model = None
    if need_model:
        tf.keras.backend.clear_session()
        model = build()

    def make():
        m = model
        if m is None:
            tf.keras.backend.clear_session()
            m = build()
        return convert(m, **kwargs)

    file_key = hashlib.sha256(
        (
            inspect.getsource(build)
            + repr(sorted(kwargs.items()))
            + lq.__version__
            + importlib.metadata.version("larq-compute-engine")
        ).encode()
    ).hexdigest()[:10]
    return model, _goldens.golden("runtime", name, file_key, make)


def op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    if code.customCode:
        return code.customCode.decode()
    return str(max(code.builtinCode, code.deprecatedBuiltinCode))


def ops(model, name=None):
    """(index, op) of the first subgraph's ops, optionally only those named `name`."""
    return [
        (i, op)
        for i, op in enumerate(model.subgraphs[0].operators)
        if name is None or op_name(model, op) == name
    ]


def op_names(fb: bytes) -> list:
    m = read(fb)
    return [op_name(m, op) for _, op in ops(m)]


def expose_lce_outputs(fb: bytes) -> bytes:
    """Adds the output of every LCE op to the model outputs (bitpacked ones too)."""
    m = read(fb)
    sg = m.subgraphs[0]
    outs = list(sg.outputs)
    for _, op in ops(m):
        if op_name(m, op) in LCE_OPS:
            for t in op.outputs:
                if t not in outs:
                    outs.append(int(t))
    sg.outputs = outs
    return write(m)


def options(model, op) -> dict:
    return flexbuffers.Loads(bytes(op.customOptions))


def set_options(fb: bytes, name: str, raw: bytes = None, **changes) -> bytes:
    """Changes custom options of every op `name` (or replaces them with `raw`)."""
    m = read(fb)
    for _, op in ops(m, name):
        if raw is not None:
            op.customOptions = list(raw)
        else:
            opts = options(m, op)
            opts.update(changes)
            op.customOptions = list(flexbuffers.Dumps(opts))
    return write(m)


def set_tensor_type(fb: bytes, tensor_index: int, type_name: str, scale=None, zero_point=None):
    m = read(fb)
    t = m.subgraphs[0].tensors[tensor_index]
    t.type = TFL_TYPES[type_name]
    if scale is not None:
        q = schema_fb.QuantizationParametersT()
        q.scale = [float(scale)]
        q.zeroPoint = [int(zero_point)]
        t.quantization = q
    return write(m)


def sparsify_filters(fb: bytes, connections: float, seed: int = 0) -> bytes:
    """Rewrites every LceBconv2d filter so that only `connections` of its weights are +1.

    Output channel 0 of each filter becomes all +1 and channel 1 all -1 (the
    SBF1 "all" / "none" channel modes); padding bits stay 0.
    """
    rng = np.random.default_rng(seed)
    m = read(fb)
    sg = m.subgraphs[0]
    for _, op in ops(m, "LceBconv2d"):
        cin = options(m, op)["channels_in"]
        in_words = int(sg.tensors[op.inputs[0]].shape[-1])
        t = sg.tensors[op.inputs[1]]
        o, kh, kw, fwords = (int(d) for d in t.shape)
        cg = cin // max(1, in_words // fwords)
        valid = np.array(
            [(1 << min(32, cg - 32 * j)) - 1 for j in range(fwords)], dtype=np.uint64
        ).astype(np.uint32)
        bits = rng.uniform(size=(o, kh, kw, fwords, 32)) >= connections  # 1 = -1 (no connection)
        words = (bits.astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(-1)
        words = words.astype(np.uint32) & valid
        if o > 2:
            words[0] = 0
            words[1] = valid
        buf = schema_fb.BufferT()
        buf.data = words.astype("<u4").view(np.uint8).reshape(-1)
        m.buffers.append(buf)
        t.buffer = len(m.buffers) - 1
    return write(m)


def lce_reference(fb: bytes, xs):
    """Outputs of LCE's reference interpreter (one sample at a time), as a list."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interp = Interpreter(fb, use_reference_bconv=True)
    out = interp.predict(xs if len(xs) > 1 else xs[0])
    return out if isinstance(out, list) else [out]


def random_inputs(details, batch, rng):
    xs = []
    for d in details:
        shape = (batch,) + tuple(int(s) for s in d["shape"][1:])
        dtype = np.dtype(d["dtype"])
        if dtype == np.float32:
            x = rng.normal(0, 1, shape).astype(np.float32)
            x.flat[::7] = 0.0  # exact zeros are +1 in LCE's convention
            x.flat[::11] = -0.0
        elif dtype == np.int8:
            x = rng.integers(-128, 128, shape).astype(np.int8)
        elif dtype == np.bool_:
            x = rng.uniform(size=shape) < 0.5
        else:
            raise AssertionError(dtype)
        xs.append(x)
    return xs


def assert_outputs_match(ours, ref, what=""):
    """Float: 1e-4 relative; bitpacked int32 and bool: exact; int8: off by one at most.

    Float outputs are computed like LCE's (same fused multiplier/bias in float),
    so only FMA contraction in either build can differ; int8 rounding of values
    that land on .5 can then differ by one step.
    """
    assert len(ours) == len(ref), what
    for i, (a, b) in enumerate(zip(ours, ref)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what} output {i}: {a.shape} vs {b.shape}"
        assert a.dtype == b.dtype, f"{what} output {i}: {a.dtype} vs {b.dtype}"
        if a.dtype == np.float32:
            bad = np.abs(a - b) > 1e-4 * np.maximum(1.0, np.abs(b))
            assert not bad.any(), (
                f"{what} output {i}: {bad.sum()} of {a.size} differ, first at "
                f"{np.argwhere(bad)[0]}: {a[bad][0]} vs {b[bad][0]}"
            )
        elif a.dtype == np.int8:
            diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
            assert diff.max() <= 1, f"{what} output {i}: int8 off by {diff.max()}"
        else:
            neq = a != b
            assert not neq.any(), (
                f"{what} output {i} ({a.dtype}): {neq.sum()} of {a.size} differ, "
                f"first at {np.argwhere(neq)[0]}"
            )


def small_sbnn_model():
    """The CLI and bench tests' model: float stem, one SBNN conv at 5% connections."""
    from sbnn_keras.layers import latent_kernel, sbnn_layers

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 3)),
        tf.keras.layers.Conv2D(32, 3, padding="same"),
        tf.keras.layers.BatchNormalization(),
        sbnn_keras.QuantConv2D(32, 3, padding="same", kernel_quantizer="sbnn"),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(4),
    ])
    rng = np.random.default_rng(0)
    for layer in sbnn_layers(model):
        w = latent_kernel(layer)
        w.assign(np.where(rng.random(w.shape) < 0.05, 0.3, -0.3).astype("float32"))
    return model
