"""SBNN layers against larq's signatures and float Keras layers; save/load."""

import inspect
import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
from sbnn_keras import math as sm
from sbnn_keras.layers import latent_kernel, sbnn_layers

SBNN_DEFAULTS = {
    "input_quantizer": "ste_sign",
    "kernel_quantizer": "sbnn_learned",
    "kernel_constraint": "weight_clip",
}


@pytest.mark.parametrize(
    "ours, parent", [(sbnn_keras.QuantConv2D, lq.layers.QuantConv2D), (sbnn_keras.QuantDense, lq.layers.QuantDense)]
)
def test_signature_matches_larq(ours, parent):
    a = inspect.signature(ours.__init__).parameters
    b = inspect.signature(parent.__init__).parameters
    assert list(a) == list(b)
    for name in a:
        expected = SBNN_DEFAULTS.get(name, b[name].default)
        assert a[name].default == expected, name


def quantized(layer, w):
    return layer.kernel_quantizer(tf.constant(w)).numpy()


@pytest.mark.parametrize("scale", ["closed_form", "learned", "symmetric"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_equals_float_conv_on_sign_input(scale, padding):
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 5)).astype(np.float32)
    layer = sbnn_keras.QuantConv2D(
        7, 3, strides=2, padding=padding, kernel_quantizer=sbnn_keras.SbnnQuantizer(scale)
    )
    y = layer(x).numpy()
    w = latent_kernel(layer).numpy()
    if scale == "learned":
        layer.kernel_quantizer.tau.assign(0.7)
        layer.kernel_quantizer.phi.assign(-0.2)
        y = layer(x).numpy()
        wq = 0.7 * sm.binarize(w) - 0.2
    else:
        s = layer.kernel_quantizer.scales(w)
        wq = s["tau"] * sm.binarize(w) + s["phi"]
    ref_layer = tf.keras.layers.Conv2D(7, 3, strides=2, padding=padding)
    ref_layer.build(x.shape)
    ref_layer.set_weights([wq.astype(np.float32), layer.bias.numpy()])
    ref = ref_layer(np.where(x >= 0, 1.0, -1.0).astype(np.float32)).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_dense_equals_float_dense_on_sign_input():
    x = np.random.default_rng(1).normal(size=(4, 13)).astype(np.float32)
    layer = sbnn_keras.QuantDense(6, kernel_quantizer="sbnn")
    y = layer(x).numpy()
    w = latent_kernel(layer).numpy()
    tau, phi = sm.optimal_scales(w)
    ref = np.where(x >= 0, 1.0, -1.0) @ (tau * sm.binarize(w) + phi) + layer.bias.numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_si_bnn_input_layer_equals_float_conv_on_heaviside():
    x = np.random.default_rng(2).normal(size=(1, 6, 6, 3)).astype(np.float32)
    layer = sbnn_keras.QuantConv2D(4, 3, input_quantizer="si_bnn", kernel_quantizer="sbnn_symmetric")
    layer.build(x.shape)
    layer.input_quantizer.build(x.shape)
    layer.input_quantizer.threshold.assign([0.1, -0.3, 0.5])
    y = layer(x).numpy()
    w = latent_kernel(layer).numpy()
    wq = np.mean(np.abs(w)) * sm.binarize(w)
    x01 = (x >= np.array([0.1, -0.3, 0.5])).astype(np.float32)
    ref = tf.nn.conv2d(x01, wq.astype(np.float32), 1, "VALID").numpy() + layer.bias.numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def build_model():
    return tf.keras.Sequential(
        [
            tf.keras.Input((10, 10, 2)),
            tf.keras.layers.Conv2D(8, 3, padding="same"),
            tf.keras.layers.BatchNormalization(),
            sbnn_keras.QuantConv2D(8, 3, padding="same", kernel_quantizer=sbnn_keras.SbnnQuantizer("learned", per_channel=True)),
            tf.keras.layers.BatchNormalization(),
            sbnn_keras.QuantConv2D(8, 3, input_quantizer="si_bnn", kernel_quantizer="sbnn"),
            tf.keras.layers.Flatten(),
            sbnn_keras.QuantDense(5, kernel_quantizer="sbnn_symmetric"),
        ]
    )


def test_sbnn_layers_finds_ours_and_larqs():
    model = build_model()
    inner = tf.keras.Sequential([tf.keras.Input((4,)), lq.layers.QuantDense(3, kernel_quantizer="sbnn", input_quantizer="ste_sign")])
    outer = tf.keras.Sequential([tf.keras.Input((4,)), inner, tf.keras.layers.Dense(2)])
    assert [layer.name for layer in sbnn_layers(model)] == [model.layers[i].name for i in (2, 4, 6)]
    assert sbnn_layers(outer) == [inner.layers[0]]


class Block(tf.keras.layers.Layer):
    """A residual block keeping its binary conv as an attribute (no `.layers`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = sbnn_keras.QuantConv2D(2, 3, padding="same")

    def call(self, x):
        return x + self.conv(x)


def test_sbnn_layers_inside_custom_layers():
    block = Block()
    model = tf.keras.Sequential([tf.keras.Input((5, 5, 2)), block, sbnn_keras.QuantConv2D(3, 1)])
    assert sbnn_layers(model) == [block.conv, model.layers[-1]]


@pytest.mark.parametrize("fmt", [".keras", ".h5", "savedmodel"])
def test_save_load_round_trip(tmp_path, fmt):
    model = build_model()
    x = np.random.default_rng(3).normal(size=(3, 10, 10, 2)).astype(np.float32)
    # make the learned scales and thresholds non-default so a lost weight shows
    for v in model.trainable_weights:
        if "tau" in v.name or "phi" in v.name or "threshold" in v.name:
            v.assign(np.random.default_rng(4).normal(size=v.shape).astype(np.float32))
    ref = model(x).numpy()
    path = str(tmp_path / ("model" + (fmt if fmt != "savedmodel" else "")))
    model.save(path)
    loaded = sbnn_keras.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), ref, rtol=1e-6, atol=1e-6)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers] or fmt == "savedmodel"
    # layer configs round-trip
    for a, b in zip(model.layers, loaded.layers):
        if fmt != "savedmodel":
            assert norm(a.get_config()) == norm(b.get_config())


def norm(config):
    """Configs compare equal up to tuple/list (JSON) differences."""
    return json.loads(json.dumps(config, default=str))


def test_layer_config_round_trip():
    for layer in build_model().layers:
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
