"""Conversion matrix: every kernel quantizer x input quantizer x padding x layer type.

For each kernel quantizer, one tiny model holds every combination of the other axes as
parallel branches on one input: input quantizer (ste_sign, Si-BNN, ste_heaviside) x
layer (sbnn_keras.QuantConv2D and larq's own QuantConv2D with padding valid, same with
pad_values 0 and same with pad_values 1; sbnn_keras.QuantDense and larq's QuantDense),
their outputs flattened and concatenated into one output. ``convert`` must make every
branch binary (LceBconv2d), and the file must run in our runtime
(``sbnn_keras.Interpreter``) and in LCE's reference interpreter and match the float
Keras model. One conversion per kernel quantizer keeps the matrix within the default
test budget.

Tolerance: the binary ops compute the same bits as Keras' sign/step and integer dot
products, so only float rounding differs (scales, biases, the lowering's affine
corrections): atol 2e-5 x max(1, |output|), rtol 1e-4, as in tests/test_convert.py.

ste_heaviside with pad_values 1 has no binary form (the {0, 1} input would be padded
with a value that is not a code); ``convert`` must refuse it naming the layer.
"""

from __future__ import annotations

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

import sbnn_keras
from sbnn_keras.export.convert import ConversionError, convert_with_report
from sbnn_keras.layers import latent_kernel, sbnn_layers

KERNELS = {
    "ste_sign": lambda: "ste_sign",
    "approx_sign": lambda: "approx_sign",
    "swish_sign": lambda: "swish_sign",
    "magnitude_aware_sign": lambda: "magnitude_aware_sign",
    "sbnn_closed_form": lambda: sbnn_keras.SbnnQuantizer("closed_form"),
    "sbnn_closed_form_centered": lambda: sbnn_keras.SbnnQuantizer("closed_form", center=True),
    "sbnn_closed_form_per_channel": lambda: sbnn_keras.SbnnQuantizer("closed_form", per_channel=True),
    "sbnn_learned": lambda: sbnn_keras.SbnnQuantizer("learned", per_channel=True),
    "sbnn_learned_phi_0": lambda: sbnn_keras.SbnnQuantizer("learned"),  # before phi moves
    "sbnn_symmetric": lambda: sbnn_keras.SbnnQuantizer("symmetric"),
}
INPUTS = {
    "ste_sign": lambda: "ste_sign",
    "si_bnn": lambda: sbnn_keras.SiBnnQuantizer(per_channel=True),
    "ste_heaviside": lambda: "ste_heaviside",
}
CONVS = {"sbnn": sbnn_keras.QuantConv2D, "larq": lq.layers.QuantConv2D}
DENSES = {"sbnn": sbnn_keras.QuantDense, "larq": lq.layers.QuantDense}
PADDINGS = (("valid", 0.0), ("same", 0.0), ("same", 1.0))
SHAPE = (7, 6, 6)  # odd height: SAME padding pads unevenly; an even channel count, which
# LCE's zero padding needs (tests/test_convert.py checks odd counts with pad_values 1)


def _branch_layers(kernel):
    """(name, layer) of every branch the converter must make binary."""
    out = []
    for iq_name, iq in INPUTS.items():
        for cls_name, cls in CONVS.items():
            for padding, pad_values in PADDINGS:
                if iq_name == "ste_heaviside" and pad_values == 1.0:
                    continue  # no binary form: test_heaviside_with_pad_values_1_is_refused
                name = f"conv_{cls_name}_{iq_name}_{padding}_{int(pad_values)}"
                out.append((name, cls(6, 3, padding=padding, pad_values=pad_values, strides=(1, 2),
                                      input_quantizer=iq(), kernel_quantizer=KERNELS[kernel](),
                                      name=name)))
        for cls_name, cls in DENSES.items():
            name = f"dense_{cls_name}_{iq_name}"
            out.append((name, cls(5, input_quantizer=iq(), kernel_quantizer=KERNELS[kernel](),
                                  name=name)))
    return out


def matrix_model(kernel: str, seed: int = 0):
    inp = tf.keras.Input(SHAPE)
    flat = tf.keras.layers.Flatten()(inp)
    outs = []
    for name, layer in _branch_layers(kernel):
        y = layer(flat if name.startswith("dense") else inp)
        outs.append(tf.keras.layers.Flatten()(y) if name.startswith("conv") else y)
    model = tf.keras.Model(inp, tf.keras.layers.Concatenate()(outs))
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if "threshold" in v.name:
            v.assign(rng.normal(size=v.shape).astype("float32") * 0.3)
        elif "tau" in v.name:
            v.assign(rng.uniform(0.5, 1.5, size=v.shape).astype("float32"))
        elif "phi" in v.name and kernel != "sbnn_learned_phi_0":
            v.assign(rng.normal(size=v.shape).astype("float32") * 0.3)
        elif "bias" in v.name:
            v.assign(rng.normal(size=v.shape).astype("float32"))
    for layer in sbnn_layers(model):
        w = latent_kernel(layer)
        w.assign((rng.normal(size=w.shape) * 0.5 - 0.2).astype("float32"))
    for layer in model.layers:  # larq's own layers keep their kernel in `kernel`
        if isinstance(layer, (lq.layers.QuantConv2D, lq.layers.QuantDense)) and layer not in sbnn_layers(model):
            layer.kernel.assign((rng.normal(size=layer.kernel.shape) * 0.5 - 0.2).astype("float32"))
    return model


# The quantizers whose layers have no q channel (phi = 0) plus a learned one run by
# default (~10 s each on 2 loaded cores); the rest of the matrix is `slow`.
DEFAULT = ("ste_sign", "magnitude_aware_sign", "sbnn_learned", "sbnn_learned_phi_0", "sbnn_symmetric")


@pytest.mark.parametrize("kernel", [k if k in DEFAULT else pytest.param(k, marks=pytest.mark.slow)
                                    for k in sorted(KERNELS)])
def test_every_branch_is_binary_and_both_runtimes_match_keras(kernel):
    model = matrix_model(kernel)
    data, report = convert_with_report(model)
    binary = {layer.name: layer.status for layer in report.layers if layer.binary}
    expected = {name for name, _ in _branch_layers(kernel)}
    assert set(binary) == expected and set(binary.values()) == {"binary"}, binary
    assert report.op_counts.get("LceBconv2d") == len(expected), report.op_counts
    assert "CONV_2D" not in report.op_counts and "FULLY_CONNECTED" not in report.op_counts

    x = np.random.default_rng(1).normal(size=(3, *SHAPE)).astype("float32")
    ref = model(x).numpy()
    tol = dict(atol=2e-5 * max(1.0, float(np.abs(ref).max())), rtol=1e-4)
    lce_out = LceInterpreter(data, use_reference_bconv=True).predict(x)
    np.testing.assert_allclose(lce_out, ref, **tol, err_msg="LCE's interpreter")
    ours = sbnn_keras.Interpreter(data).predict(x)
    np.testing.assert_allclose(ours, ref, **tol, err_msg="sbnn_keras.Interpreter")


@pytest.mark.parametrize("cls", sorted(CONVS))
def test_heaviside_with_pad_values_1_is_refused(cls):
    inp = tf.keras.Input(SHAPE)
    y = CONVS[cls](4, 3, padding="same", pad_values=1.0, input_quantizer="ste_heaviside",
                   kernel_quantizer="ste_sign", name="heavi_pad1")(inp)
    with pytest.raises(ConversionError, match="heavi_pad1"):
        convert_with_report(tf.keras.Model(inp, y))
