"""SbnnBconv2d with ``fused_q = 1`` (convert's flavor "sparse"): the {alpha, beta}
arithmetic and BatchNorm/activation folded into the op (docs/conversion.md).

Small SBNN layers (both paddings, pad_values 0 and 1 at the borders, strides, odd
spatial sizes, channel counts that are not multiples of 32, ReLU) are converted with
flavor "lce" (plain LCE ops: the lowering's slices, muls and adds) and "sparse"
(fused); our delegate's fused file is compared with LCE's reference interpreter on
the "lce" file and with Keras. The int8 and bitpacked outputs of the fused op are
checked against its float output.
"""

from __future__ import annotations

import numpy as np
import pytest

from _runtime_helpers import op_names, ops, options, read, set_options, set_tensor_type, write

import sbnn_keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import sbnn_runtime as runtime
from sbnn_runtime.tflite_model import read_tflite

CASES = {
    # name: (input hwc, filters, kernel, strides, padding, pad_values, relu)
    "same0": ((9, 10, 40), 24, 3, 1, "same", 0.0, False),
    "same1_relu": ((9, 10, 40), 33, 3, 2, "same", 1.0, True),
    "valid": ((8, 7, 64), 16, 3, 1, "valid", 0.0, False),
    "same0_k5_s2": ((11, 9, 6), 8, 5, 2, "same", 0.0, True),
}


def build(case):
    shape, filters, k, s, padding, pad_values, relu = CASES[case]
    inp = tf.keras.Input(shape)
    x = sbnn_keras.QuantConv2D(
        filters,
        k,
        strides=s,
        padding=padding,
        pad_values=pad_values,
        kernel_quantizer=sbnn_keras.quantizers.SbnnQuantizer(scale="closed_form", per_channel=True),
        name="sconv",
    )(inp)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    if relu:
        x = tf.keras.layers.ReLU(name="relu")(x)
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(sum(map(ord, case)))
    conv = model.get_layer("sconv")
    kernel = rng.normal(size=conv.kernel.shape).astype(np.float32)
    kernel += 0.4  # asymmetric: phi != 0
    conv.kernel.assign(np.clip(kernel, -1, 1))
    conv.bias.assign(rng.normal(size=filters).astype(np.float32))
    bn = model.get_layer("bn")
    bn.set_weights(
        [
            rng.uniform(0.5, 2.0, filters) * rng.choice([-1, 1], filters),
            rng.normal(size=filters),
            rng.normal(size=filters) * 3,
            rng.uniform(0.5, 4.0, filters),
        ]
    )
    return model


_CACHE: dict = {}


def converted(case):
    if case not in _CACHE:
        model = build(case)
        lce = sbnn_keras.convert(model, flavor="lce")
        sparse, report = sbnn_keras.convert_with_report(model, flavor="sparse")
        _CACHE[case] = (model, lce, sparse, report)
    return _CACHE[case]


def inputs(model, batch=2, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, *model.input_shape[1:])).astype(np.float32)
    x.flat[::7] = 0.0
    return x


def _scale_close(a, b, what, rtol=2e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    tol = rtol * max(1.0, np.abs(b).max())
    assert np.abs(a - b).max() <= tol, f"{what}: max diff {np.abs(a - b).max()} > {tol}"


@pytest.mark.parametrize("case", list(CASES))
def test_fused_matches_lce_reference_and_keras(case):
    from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

    model, lce, sparse, report = converted(case)
    names = op_names(sparse)
    assert names.count("SbnnBconv2d") == 1 and "STRIDED_SLICE" not in names, names
    m = read(sparse)
    (_, op), = ops(m, "SbnnBconv2d")
    assert options(m, op)["fused_q"] == 1
    layer = next(layer for layer in report.layers if layer.name == "sconv")
    assert layer.storage[0]["fused_ops"][:2] == ["STRIDED_SLICE", "STRIDED_SLICE"]
    assert "SbnnBconv2d" in layer.ops and layer.status == "binary"
    x = inputs(model)
    ref = LceInterpreter(lce, use_reference_bconv=True).predict(x)
    for threads, kernel in ((1, "auto"), (2, "auto"), (1, "reference")):
        ours = runtime.Interpreter(sparse, num_threads=threads, kernel=kernel).predict(x)
        _scale_close(ours, ref, f"{case} t{threads} {kernel} vs LCE reference")
    _scale_close(ours, model(x, training=False).numpy(), f"{case} vs Keras", rtol=1e-4)


def _fused_output_index(fb):
    m = read(fb)
    (_, op), = ops(m, "SbnnBconv2d")
    return int(op.outputs[0])


@pytest.mark.parametrize("case", ["same0", "same1_relu"])
def test_fused_int8_and_bitpacked_outputs(case):
    model, _, sparse, _ = converted(case)
    x = inputs(model, batch=3, seed=9)
    y = np.asarray(runtime.Interpreter(sparse, num_threads=1).predict(x))
    out = _fused_output_index(sparse)
    # bitpacked: bit c = y[c] < 0, LCE's word layout
    bits = np.asarray(
        runtime.Interpreter(set_tensor_type(sparse, out, "int32"), num_threads=1).predict(x)
    )
    c = y.shape[-1]
    words = (c + 31) // 32
    neg = np.zeros(y.shape[:-1] + (32 * words,), bool)
    neg[..., :c] = y < 0
    want = (neg.reshape(*y.shape[:-1], words, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(-1)
    assert bits.dtype == np.int32 and bits.shape == want.shape
    np.testing.assert_array_equal(bits.view(np.uint32), want.astype(np.uint32))
    # int8: y / scale + zero point, rounded (coefficients folded in the op: off by one at most)
    scale, zp = float(np.abs(y).max() / 100), -7
    q = np.asarray(
        runtime.Interpreter(
            set_tensor_type(sparse, out, "int8", scale=scale, zero_point=zp), num_threads=1
        ).predict(x)
    )
    want8 = np.clip(np.round(y.astype(np.float64) / scale + zp), -128, 127)
    assert q.dtype == np.int8
    assert np.abs(q.astype(np.int32) - want8).max() <= 1


# ---- fused residual ADD (option fused_add) ------------------------------------------------


def build_residual(case):
    """An SBNN conv + BN added to a float residual: the model input itself ("input"), a
    float 1x1 conv of it ("conv"), or the same with ReLU after the ADD ("relu": TFLite
    fuses the ReLU into the ADD, which must then stay an op)."""
    inp = tf.keras.Input((7, 9, 48))
    y = sbnn_keras.QuantConv2D(
        48,
        3,
        padding="same",
        kernel_quantizer=sbnn_keras.quantizers.SbnnQuantizer(scale="learned", per_channel=True),
        name="sconv",
    )(inp)
    y = tf.keras.layers.BatchNormalization(name="bn")(y)
    r = inp if case == "input" else tf.keras.layers.Conv2D(48, 1, name="shortcut")(inp)
    x = tf.keras.layers.Add(name="add")([r, y])
    if case == "relu":
        x = tf.keras.layers.ReLU(name="relu")(x)
    x = tf.keras.layers.Conv2D(5, 1, name="head")(x)  # the ADD's result is not the output
    model = tf.keras.Model(inp, x)
    rng = np.random.default_rng(sum(map(ord, case)) + 1)
    for layer in model.layers:
        for w in layer.weights:
            if "moving_variance" in w.name:
                w.assign(rng.uniform(0.5, 4.0, w.shape).astype(np.float32))
            elif "tau" in w.name:
                w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
            else:
                w.assign(rng.normal(size=w.shape).astype(np.float32))
    return model


@pytest.mark.parametrize("case", ["input", "conv", "relu"])
def test_fused_residual_add(case):
    from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

    model = build_residual(case)
    lce = sbnn_keras.convert(model, flavor="lce")
    sparse, report = sbnn_keras.convert_with_report(model, flavor="sparse")
    m = read(sparse)
    (_, op), = ops(m, "SbnnBconv2d")
    opts = options(m, op)
    names = [o.name for o in read_tflite(sparse).ops]
    layer = next(layer for layer in report.layers if layer.name == "sconv")
    if case == "relu":
        assert "fused_add" not in opts and "ADD" in names, names
        assert "ADD (residual)" not in layer.storage[0]["fused_ops"]
    else:
        assert opts["fused_q"] == 1 and opts["fused_add"] == 1, opts
        assert "ADD" not in names, names
        assert len(op.inputs) == 7 and int(op.inputs[6]) >= 0
        assert layer.storage[0]["fused_ops"][-1] == "ADD (residual)"
    x = inputs(model, batch=3, seed=5)
    ref = LceInterpreter(lce, use_reference_bconv=True).predict(x)
    for threads, kernel in ((1, "auto"), (2, "auto"), (1, "reference")):
        ours = runtime.Interpreter(sparse, num_threads=threads, kernel=kernel).predict(x)
        _scale_close(ours, ref, f"{case} t{threads} {kernel} vs LCE reference")
    _scale_close(ours, model(x, training=False).numpy(), f"{case} vs Keras", rtol=1e-4)


@pytest.mark.parametrize(
    "change,expect",
    [
        (dict(fused_add=2), "'fused_add' = 2"),
        (dict(fused_add="yes"), "'fused_add' is not an integer"),
        (dict(fused_q=0), "fused_add' = 1 needs fused_q = 1"),
        ("no_residual", "needs input 6"),
        ("int_residual", "input 6) type"),
    ],
)
def test_fused_add_bad_input(change, expect):
    """A hostile fused_add option or residual input: a clear error at load, no crash."""
    sparse = sbnn_keras.convert(build_residual("input"), flavor="sparse")
    if isinstance(change, dict):
        bad = set_options(sparse, "SbnnBconv2d", **change)
    else:
        m = read(sparse)
        (_, op), = ops(m, "SbnnBconv2d")
        inputs_ = [int(t) for t in op.inputs]
        inputs_[6] = -1 if change == "no_residual" else inputs_[0]  # bitpacked int32 input
        op.inputs = np.array(inputs_, dtype=np.int32)
        bad = write(m)
    with pytest.raises((RuntimeError, ValueError)) as err:
        runtime.Interpreter(bad).predict(inputs(build_residual("input")))
    assert expect in str(err.value), str(err.value)
