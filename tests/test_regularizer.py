"""SparsityRegularizer: the per-step identity, its gradient, Keras integration,
distribution, save/resume and bad input."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
from sbnn_keras import SparsityRegularizer
from sbnn_keras import math as sm
from sbnn_keras.layers import latent_kernel, sbnn_layers

from _regularizer_helpers import data, loss_gradients, small_model


def connections(model):
    ws = [latent_kernel(layer).numpy() for layer in sbnn_layers(model)]
    return sum(np.sum(w >= 0) for w in ws) / sum(w.size for w in ws)


class Recorder(tf.keras.callbacks.Callback):
    def __init__(self, reg):
        super().__init__()
        self.reg, self.steps = reg, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self.reg.values())


def test_identity_holds_at_every_step_and_sparsity_is_reached():
    model = small_model(dense_l2=1e-3)
    gamma, ec = 0.5, 0.1
    reg = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), expected_connections=ec, gamma=gamma
    )
    model.compile(tf.keras.optimizers.Adam(0.05), loss=reg.bind(model))
    rec = Recorder(reg)
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=12, verbose=0, callbacks=[rec])
    active = [s for s in rec.steps if s["j"] > reg.lambda_threshold]
    assert len(active) >= 5
    for s in active:
        # lambda*j / L_SBNN == gamma exactly, with L_SBNN the total loss of that same step
        assert s["lambda"] * s["j"] / s["total_loss"] == pytest.approx(gamma, rel=1e-5)
        assert s["total_loss"] == pytest.approx(s["task_loss"] / (1 - gamma), rel=1e-5)
    for s in rec.steps:
        if s["j"] <= reg.lambda_threshold:
            assert s["lambda"] == 0.0
    # the uniform push makes the net sparser (reaching EC takes many more steps)
    assert rec.steps[0]["connections"] > 0.45 and connections(model) < 0.3
    assert rec.steps[-1]["connections"] == pytest.approx(connections(model), abs=0.02)


def test_gradient_is_task_gradient_plus_uniform_push():
    model = small_model("sbnn", dense_l2=1e-3)
    reg = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        expected_connections=0.2,
        gamma=0.1,
        include_model_losses=False,
    ).bind(model)
    x, y = data(16)
    kernels = [latent_kernel(layer) for layer in sbnn_layers(model)]
    task, total, g_task, g_total = loss_gradients(reg, model, x, y, kernels)
    v = reg.values()
    n = sum(k.shape.num_elements() for k in kernels)
    p = connections(model)
    assert v["j"] == pytest.approx(p - 0.2, abs=1e-6)
    lam = 0.1 * float(task) / (0.9 * v["j"])
    assert v["lambda"] == pytest.approx(lam, rel=1e-5)
    for k, gt, gtask in zip(kernels, g_total, g_task):
        # d(lambda * relu(U/N - EC))/dw = lambda / (2N) inside the STE window
        push = np.where(np.abs(k.numpy()) <= 1, lam / (2 * n), 0.0)
        np.testing.assert_allclose(gt.numpy(), gtask.numpy() + push, rtol=1e-4, atol=1e-7)


def test_per_layer_constraint():
    model = small_model("sbnn", dense_l2=1e-3)
    reg = SparsityRegularizer("mse", expected_connections=0.3, gamma=0.2, per_layer=True).bind(model)
    x = np.zeros((2, 8, 8, 1), np.float32)
    y_pred = model(x)
    reg(np.ones((2, 4), np.float32), y_pred)
    ps = [np.mean(latent_kernel(layer).numpy() >= 0) for layer in sbnn_layers(model)]
    assert reg.values()["j"] == pytest.approx(sum(max(p - 0.3, 0) for p in ps), abs=1e-6)


def test_bits_per_weight_target_maps_to_ec():
    reg = SparsityRegularizer(bits_per_weight=float(sm.binary_entropy(0.05)), gamma=0.1)
    assert reg.expected_connections == pytest.approx(0.05, abs=1e-9)
    assert SparsityRegularizer.from_config(reg.get_config()).expected_connections == pytest.approx(0.05)


def test_gamma_zero_equals_task_loss_and_below_threshold_lambda_is_zero():
    model = small_model("sbnn", dense_l2=1e-3)
    x, y = data(8)
    y_pred = model(x)
    reg0 = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), expected_connections=0.1, gamma=0.0
    ).bind(model)
    task = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, y_pred)
    assert float(reg0(y, y_pred)) == pytest.approx(float(task), rel=1e-6)
    reg_met = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), expected_connections=0.99, gamma=0.5
    ).bind(model)
    assert float(reg_met(y, y_pred)) == pytest.approx(float(task), rel=1e-6)
    assert reg_met.values()["lambda"] == 0.0


def test_nan_task_loss_is_a_clear_error():
    model = small_model("sbnn", dense_l2=1e-3)
    reg = SparsityRegularizer("mse", expected_connections=0.1, gamma=0.1).bind(model)
    model.compile("sgd", loss=reg)
    x = np.full((4, 8, 8, 1), np.nan, np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="task loss is NaN or Inf"):
        model.fit(x, np.zeros((4, 4), np.float32), verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"expected_connections": 0.0}, "`expected_connections` must be in \\(0, 1\\), got 0.0"),
        ({"expected_connections": 1.0}, "`expected_connections` must be in \\(0, 1\\), got 1.0"),
        ({"expected_connections": float("nan")}, "`expected_connections` must be a finite number"),
        ({"expected_connections": "0.1"}, "`expected_connections` must be a finite number, got '0.1'"),
        ({"expected_connections": 0.1, "gamma": 1.0}, "`gamma` must be in \\[0, 1\\), got 1.0"),
        ({"expected_connections": 0.1, "gamma": -0.1}, "`gamma` must be in \\[0, 1\\), got -0.1"),
        ({"bits_per_weight": 1.0}, "`bits_per_weight` must be in \\(0, 1\\), got 1.0"),
        ({"bits_per_weight": 0.2, "expected_connections": 0.1}, "exactly one of"),
        ({}, "exactly one of"),
        ({"expected_connections": 0.1, "lambda_threshold": -1}, "`lambda_threshold`"),
        ({"expected_connections": 0.1, "per_layer": "yes"}, "`per_layer` must be a bool, got 'yes'"),
        ({"expected_connections": 0.1, "loss": "no_such_loss"}, "unknown `loss` 'no_such_loss'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparsityRegularizer(**kwargs)


def test_model_without_sbnn_layer_is_an_error():
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)], name="plain_net")
    with pytest.raises(ValueError, match="'plain_net' has no SBNN layer"):
        SparsityRegularizer(expected_connections=0.1).bind(model)
    with pytest.raises(ValueError, match="`model` must be a tf.keras.Model"):
        SparsityRegularizer(expected_connections=0.1).bind("model")


def test_unbound_regularizer_is_an_error():
    reg = SparsityRegularizer(expected_connections=0.1)
    with pytest.raises(RuntimeError, match="not bound"):
        reg(np.zeros(2), np.zeros((2, 3)))


def test_config_round_trip():
    reg = SparsityRegularizer(
        tf.keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
        expected_connections=0.05,
        gamma=0.07,
        per_layer=True,
        lambda_threshold=0.0,
    )
    config = reg.get_config()
    json.dumps(config)
    def strip(c):
        # tf_keras adds an 'fn' key when it deserializes a built-in loss class
        c = dict(c)
        loss = c.pop("loss")
        return c, loss["class_name"], loss["config"]["label_smoothing"]

    clone = SparsityRegularizer.from_config(config)
    assert strip(clone.get_config()) == strip(config)
    again = tf.keras.losses.deserialize(tf.keras.losses.serialize(reg))
    assert isinstance(again, SparsityRegularizer) and strip(again.get_config()) == strip(config)


@pytest.mark.parametrize("fmt", [".keras", ".h5"])
def test_save_load_resume(tmp_path, fmt):
    model = small_model(dense_l2=1e-3)
    reg = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), expected_connections=0.1, gamma=0.5
    )
    model.compile(tf.keras.optimizers.Adam(0.05), loss=reg.bind(model))
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = str(tmp_path / f"m{fmt}")
    model.save(path)
    loaded = sbnn_keras.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    lreg = loaded.loss
    assert isinstance(lreg, SparsityRegularizer) and lreg.get_config() == reg.get_config()
    # bound to the loaded model's own variables
    assert [k for _, k, _ in lreg._entries] == [latent_kernel(layer) for layer in sbnn_layers(loaded)]
    before = connections(loaded)
    loaded.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert connections(loaded) < before - 0.01
    assert lreg.values()["lambda"] > 0 and lreg.values()["connections"] == pytest.approx(connections(loaded), abs=0.01)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import sbnn_keras
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    def build():
        return tf.keras.Sequential([
            tf.keras.Input((6, 6, 1)),
            tf.keras.layers.Conv2D(4, 3, padding="same"),
            sbnn_keras.QuantConv2D(8, 3, padding="same"),
            sbnn_keras.QuantConv2D(8, 3, kernel_quantizer="sbnn"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(3),
        ])

    tf.keras.utils.set_random_seed(0)
    init = build().get_weights()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 16)

    def step(strategy, gamma):
        with strategy.scope():
            model = build()
            model.set_weights(init)
            reg = sbnn_keras.SparsityRegularizer(
                tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                expected_connections=0.1, gamma=gamma, structure=sys.argv[1])
            model.compile(tf.keras.optimizers.SGD(1.0), loss=reg.bind(model))
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        return [(a - b).tolist() for a, b in zip(init, model.get_weights())]

    one = step(tf.distribute.OneDeviceStrategy("/cpu:0"), 0.2)
    two = step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), 0.2)
    none = step(tf.distribute.OneDeviceStrategy("/cpu:0"), 0.0)
    json.dump({"one": one, "two": two, "none": none}, sys.stdout)
    """
)


@pytest.mark.parametrize("structure", ["none", "kernel"])
def test_mirrored_strategy_gives_single_device_gradients(structure):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, structure],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for a, b, c in zip(res["one"], res["two"], res["none"]):
        np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-4, atol=1e-6)
    # the regularizer really contributes (so the comparison above can fail)
    kernel_delta_diff = np.abs(np.array(res["one"][2]) - np.array(res["none"][2])).max()
    assert kernel_delta_diff > 1e-4
