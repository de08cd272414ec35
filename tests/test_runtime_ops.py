"""Op-level tests of the sbnn delegate against LCE's reference interpreter.

Small larq models are converted with LCE's converter (a few multi-branch models
cover the sweep), every LCE op's output is exposed as a model output (so
bitpacked tensors are compared bit for bit), and our delegate's outputs inside
stock TFLite (and ai_edge_litert when installed) are compared with
``larq_compute_engine``'s reference interpreter (``use_reference_bconv=True``):
float within 1e-4 relative, bitpacked and bool exact, int8 off by one at most.
Each comparison runs batch 1, then 3, then 2 (resize after invoke), with 1 and
2 threads and the "auto" and "reference" kernels.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from _runtime_helpers import (
    assert_outputs_match,
    cached_convert,
    expose_lce_outputs,
    lce_reference,
    op_names,
    ops,
    qconv,
    random_inputs,
    randomize,
    read,
    set_options,
    set_tensor_type,
    sparsify_filters,
    write,
)
import larq as lq  # noqa: E402
import tensorflow as tf  # noqa: E402  (after sbnn_keras, via the helpers)

import sbnn_runtime as runtime

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
RUNTIMES = ["tensorflow"] + (["ai_edge_litert"] if HAS_LITERT else [])
CONFIGS = [
    (rt, threads, kernel)
    for rt in RUNTIMES
    for threads in (1, 2)
    for kernel in ("auto", "reference")
]
CONFIG_IDS = [f"{rt}-t{t}-{k}" for rt, t, k in CONFIGS]
BATCHES = (1, 3, 2)

_REFERENCE_CACHE: dict = {}


def _reference(fb, xs, key):
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = lce_reference(fb, xs)
    return _REFERENCE_CACHE[key]


def check_against_lce(fb, config, name, ref_fb=None, seed=0):
    """Runs `fb` with our delegate and `ref_fb` (default: fb) with LCE's reference."""
    rt, threads, kernel = config
    interp = runtime.Interpreter(fb, num_threads=threads, kernel=kernel, runtime=rt)
    rng = np.random.default_rng(seed)
    for batch in BATCHES:
        xs = random_inputs(interp.input_details, batch, rng)
        ours = interp.predict(xs if len(xs) > 1 else xs[0])
        ours = ours if isinstance(ours, list) else [ours]
        ref = _reference(ref_fb or fb, xs, (name, seed, batch))
        assert_outputs_match(ours, ref, f"{name} {config} batch {batch}")
    return interp


def _bn(x):
    return tf.keras.layers.BatchNormalization()(x)


# ---- models (converted once, cached as golden files: _runtime_helpers) ---------

FLOAT_SWEEP = {  # input (h, w, c): list of (filters, kernel, conv kwargs)
    (7, 7, 1): [(8, 3, dict(padding="same", pad_values=1)), (3, 1, dict(padding="valid"))],
    (8, 8, 20): [
        (40, 3, dict(padding="same", pad_values=0)),
        (33, 3, dict(padding="valid", strides=2)),
        (1, 3, dict(padding="same", pad_values=1, dilation_rate=2)),
        (16, 3, dict(padding="same", pad_values=0, strides=2)),
    ],
    (7, 7, 31): [
        (32, 3, dict(padding="same", pad_values=1, strides=2)),
        (65, 2, dict(padding="valid")),
    ],
    (9, 9, 33): [
        (64, 3, dict(padding="same", pad_values=1, strides=(1, 2))),
        (5, (1, 3), dict(padding="valid", dilation_rate=(1, 2))),
    ],
    (8, 8, 64): [
        (64, 3, dict(padding="same", pad_values=0, groups=2)),
        (31, (3, 1), dict(padding="valid", dilation_rate=(2, 1))),
        (96, 3, dict(padding="same", pad_values=1, groups=2, strides=2)),
        (16, 5, dict(padding="same", pad_values=0)),
    ],
    (6, 6, 130): [
        (70, 3, dict(padding="same", pad_values=0)),
        (2, 5, dict(padding="valid", strides=3)),
    ],
    (5, 5, 128): [
        (64, 3, dict(padding="same", pad_values=1, groups=4)),
        (8, 3, dict(padding="same", pad_values=0, groups=2)),
    ],
}
N_FLOAT_SWEEP_CONVS = sum(len(c) for c in FLOAT_SWEEP.values())


def build_float_sweep():
    """Bconv2d with float output over channels 1..130, padding, strides, dilations, groups."""
    inputs, outputs = [], []
    for shape, convs in FLOAT_SWEEP.items():
        x = tf.keras.Input(shape)
        inputs.append(x)
        for filters, k, kw in convs:
            outputs.append(_bn(qconv(filters, k, **kw)(x)))
    return randomize(tf.keras.Model(inputs, outputs), seed=1)


def build_bitpacked_chain():
    """Bconv2d with bitpacked output (thresholds) feeding Bconv2d, and LceBMaxPool2d."""
    x = tf.keras.Input((8, 8, 40))
    outs = []
    a = _bn(qconv(1, 3, padding="same", pad_values=1)(x))
    outs.append(_bn(qconv(4, 3, padding="same", pad_values=1)(a)))
    b = _bn(qconv(33, 3, padding="same", pad_values=0, strides=2)(x))
    outs.append(_bn(qconv(8, 1)(b)))
    c = _bn(qconv(64, 3, padding="valid")(x))
    c = tf.keras.layers.MaxPool2D(2)(c)
    outs.append(_bn(qconv(16, 3, padding="same", pad_values=1)(c)))
    d = _bn(qconv(100, 3, padding="same", pad_values=1)(x))
    d = tf.keras.layers.MaxPool2D(3, strides=1, padding="same")(d)
    outs.append(_bn(qconv(8, 3, padding="same", pad_values=1)(d)))
    e = _bn(qconv(31, 3, padding="same", pad_values=1)(x))
    e = tf.keras.layers.MaxPool2D(3, strides=2, padding="same")(e)
    outs.append(_bn(qconv(8, 1)(e)))
    return randomize(tf.keras.Model(x, outs), seed=2)


def _fake_quant(lo, hi):
    return tf.keras.layers.Lambda(lambda t: tf.quantization.fake_quant_with_min_max_args(t, lo, hi))


def build_int8():
    """int8 model input and outputs: LceQuantize of int8, Bconv2d int8 outputs, int8 dequantize."""
    x = tf.keras.Input((8, 8, 24))
    xq = _fake_quant(-3.0, 5.0)(x)
    outs = [
        _fake_quant(-2.0, 4.0)(_bn(qconv(40, 3, padding="same", pad_values=0)(xq))),
        _fake_quant(-2.0, 4.0)(_bn(qconv(33, 3, padding="valid", strides=2)(xq))),
        _fake_quant(-3.0, 3.0)(
            _bn(qconv(17, 3, padding="same", pad_values=1, dilation_rate=2)(xq))
        ),
        _fake_quant(-2.0, 4.0)(lq.quantizers.SteSign()(xq)),
    ]
    return randomize(tf.keras.Model(x, outs), seed=3)


def build_quant():
    """LceQuantize -> LceDequantize pairs (x -> ste_sign) for 1, 32, 33 and 100 channels."""
    inputs = [tf.keras.Input(s) for s in [(7, 7, 1), (5, 5, 32), (4, 4, 33), (3, 3, 100)]]
    return tf.keras.Model(inputs, [lq.quantizers.SteSign()(x) for x in inputs])


def build_odd_zero_padding():
    """pad_values=0 SAME convs with odd channel counts (LCE's reference refuses these)."""
    a, b = tf.keras.Input((7, 7, 33)), tf.keras.Input((6, 6, 5))
    outs = [
        _bn(qconv(24, 3, padding="same", pad_values=0)(a)),
        _bn(qconv(7, 3, padding="same", pad_values=0, strides=2)(b)),
    ]
    return randomize(tf.keras.Model([a, b], outs), seed=4)


@pytest.fixture(scope="module")
def float_sweep():
    _, fb = cached_convert("float_sweep", build_float_sweep)
    names = op_names(fb)
    assert names.count("LceBconv2d") == N_FLOAT_SWEEP_CONVS, names
    return expose_lce_outputs(fb)


@pytest.fixture(scope="module")
def bitpacked_chain():
    _, fb = cached_convert("bitpacked_chain", build_bitpacked_chain)
    fb = expose_lce_outputs(fb)
    names = op_names(fb)
    assert names.count("LceBMaxPool2d") == 3, names
    m = read(fb)
    sg = m.subgraphs[0]
    bitpacked_out = [op for _, op in ops(m, "LceBconv2d") if sg.tensors[op.outputs[0]].type == 2]
    assert len(bitpacked_out) >= 2, "the converter produced no bitpacked Bconv2d outputs"
    return fb


@pytest.fixture(scope="module")
def int8_model():
    _, fb = cached_convert(
        "int8", build_int8, inference_input_type=tf.int8, inference_output_type=tf.int8
    )
    names = op_names(fb)
    assert "LceDequantize" in names and names.count("LceBconv2d") == 3, names
    return expose_lce_outputs(fb)


@pytest.fixture(scope="module")
def quant_model():
    _, fb = cached_convert("quant", build_quant)
    names = op_names(fb)
    assert names.count("LceQuantize") == 4 and names.count("LceDequantize") == 4, names
    return expose_lce_outputs(fb)


# ---- tests --------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_bconv2d_float_sweep(float_sweep, config):
    interp = check_against_lce(float_sweep, config, "float_sweep")
    text = interp.describe()
    assert text.count("LceBconv2d kernel=") == 18, text
    if config[2] == "reference":
        assert "bconv2d_dot__reference" in text


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_bconv2d_bitpacked_and_bmaxpool(bitpacked_chain, config):
    check_against_lce(bitpacked_chain, config, "bitpacked_chain")


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_int8_quantize_bconv2d_dequantize(int8_model, config):
    check_against_lce(int8_model, config, "int8")


@pytest.mark.parametrize("activation", [1, 2, 3], ids=["relu", "relu_n1_to_1", "relu6"])
@pytest.mark.parametrize("which", ["float", "int8"])
def test_bconv2d_fused_activation(float_sweep, int8_model, activation, which):
    fb = set_options(
        float_sweep if which == "float" else int8_model,
        "LceBconv2d",
        fused_activation_function=activation,
    )
    for config in [(RUNTIMES[-1], 2, "auto"), ("tensorflow", 1, "reference")]:
        check_against_lce(fb, config, f"act{activation}-{which}")


def _replace_post_activation(fb, drop_multiplier, drop_bias):
    """(ours, reference): ours has absent inputs, the reference has 1 / 0 constants."""
    ours, ref = read(fb), read(fb)
    from tensorflow.lite.python import schema_py_generated as schema_fb

    for (_, op_o), (_, op_r) in zip(ops(ours, "LceBconv2d"), ops(ref, "LceBconv2d")):
        inputs = list(op_o.inputs)
        for slot, drop, value in ((2, drop_multiplier, 1.0), (3, drop_bias, 0.0)):
            if not drop or len(inputs) <= slot or inputs[slot] < 0:
                continue
            t = ref.subgraphs[0].tensors[inputs[slot]]
            buf = schema_fb.BufferT()
            n = int(np.prod(t.shape))
            buf.data = np.full(n, value, np.float32).view(np.uint8)
            ref.buffers.append(buf)
            t.buffer = len(ref.buffers) - 1
            inputs[slot] = -1
        op_o.inputs = inputs
    return write(ours), write(ref)


@pytest.mark.parametrize(
    "drop", [(True, False), (False, True), (True, True)], ids=["no_mul", "no_bias", "neither"]
)
def test_bconv2d_absent_multiplier_and_bias(float_sweep, drop):
    ours, ref = _replace_post_activation(float_sweep, *drop)
    check_against_lce(ours, ("tensorflow", 2, "auto"), f"absent{drop}", ref_fb=ref)


@pytest.mark.parametrize(
    "variant",
    ["float", "bool_in", "bool_out", "bool_both", "int8_in", "int8_out"],
)
def test_quantize_dequantize(quant_model, variant):
    fb = quant_model
    m = read(fb)
    quant = [op for _, op in ops(m, "LceQuantize")]
    dequant = [op for _, op in ops(m, "LceDequantize")]
    for q, d in zip(quant, dequant):
        if variant in ("bool_in", "bool_both"):
            fb = set_tensor_type(fb, q.inputs[0], "bool")
        if variant in ("bool_out", "bool_both"):
            fb = set_tensor_type(fb, d.outputs[0], "bool")
        if variant == "int8_in":
            fb = set_tensor_type(fb, q.inputs[0], "int8", scale=0.1, zero_point=3)
        if variant == "int8_out":
            fb = set_tensor_type(fb, d.outputs[0], "int8", scale=0.3, zero_point=-5)
    for config in CONFIGS[:: max(1, len(CONFIGS) // 4)]:
        check_against_lce(fb, config, f"quant-{variant}")


@pytest.mark.parametrize("connections", [0.5, 0.05])
@pytest.mark.parametrize("config", CONFIGS[::3], ids=CONFIG_IDS[::3])
def test_sbnn_bconv2d_sbf1_filters(float_sweep, bitpacked_chain, connections, config):
    """SbnnBconv2d (filters stored as SBF1, convert(flavor="sparse")) equals LceBconv2d."""
    from sbnn_keras.export.compress import compress_filters

    for name, dense in [("float_sweep", float_sweep), ("bitpacked_chain", bitpacked_chain)]:
        dense = sparsify_filters(dense, connections, seed=7)
        sparse, _ = compress_filters(dense, only_if_smaller=False)
        assert op_names(sparse).count("SbnnBconv2d") == op_names(dense).count("LceBconv2d")
        assert "LceBconv2d" not in op_names(sparse)
        interp = check_against_lce(
            sparse, config, f"sbf1-{name}-{connections}", ref_fb=dense, seed=11
        )
        assert "SbnnBconv2d" in interp.describe()


def test_zero_padding_odd_channels_matches_keras():
    """pad_values=0 with an odd channel count: exact in our kernels; compared with Keras."""
    model, fb = cached_convert("odd_zero_padding", build_odd_zero_padding, need_model=True)
    interp = runtime.Interpreter(fb, num_threads=2)
    xs = random_inputs(interp.input_details, 3, np.random.default_rng(5))
    ours = interp.predict(xs)
    by_shape = {o.shape: o for o in ours}  # TFLite may order the outputs differently
    by_in_shape = {x.shape[1:]: x for x in xs}
    keras_inputs = [by_in_shape[tuple(i.shape[1:])] for i in model.inputs]
    for k in model(keras_inputs, training=False):
        k = k.numpy()
        o = by_shape[k.shape]
        np.testing.assert_allclose(o, k, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(k).max()))


def test_raw_runtime_interpreters(quant_model, bitpacked_chain):
    """load_delegate() works with the runtimes' own Interpreter classes."""
    x_details = None
    for rt in RUNTIMES:
        delegate = runtime.load_delegate(num_threads=2, runtime=rt)
        if rt == "tensorflow":
            cls = tf.lite.Interpreter
        else:
            from ai_edge_litert.interpreter import Interpreter as cls
        interp = cls(model_content=bitpacked_chain, experimental_delegates=[delegate])
        interp.allocate_tensors()
        x_details = interp.get_input_details()
        x = random_inputs(x_details, 1, np.random.default_rng(0))[0]
        interp.set_tensor(x_details[0]["index"], x)
        interp.invoke()
        ours = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
        assert_outputs_match(ours, lce_reference(bitpacked_chain, [x]), f"raw {rt}")
        text = runtime.describe(delegate)
        assert f"runtime={rt}" in text and "LceBMaxPool2d" in text


def test_interpreter_api(quant_model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(quant_model)
    interp = runtime.Interpreter(str(path))
    assert len(interp.input_details) == 4
    assert [d["dtype"] for d in interp.output_details[:4]] == [np.float32] * 4
    xs = [np.ones((2,) + tuple(d["shape"][1:]), np.float32) for d in interp.input_details]
    out = {o.shape: o for o in interp.predict(xs) if o.dtype == np.float32}
    assert np.all(out[(2, 7, 7, 1)] == 1.0) and np.all(out[(2, 3, 3, 100)] == 1.0)
    assert interp.input_details[0]["shape"][0] == 2
    assert "auto" in runtime.available_kernels()
    assert runtime.runtime_version() == tf.__version__
