"""SparsityRegularizer(structure="kernel" | "word"): the group push, its exact gradient,
the unchanged lambda identity, K0 gain over the paper's term, config and save/load."""

import json

import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
from sbnn_keras import SparsityRegularizer
from sbnn_keras.metrics import stats
from sbnn_keras import math as sm
from sbnn_keras.layers import latent_kernel, sbnn_layers

from _regularizer_helpers import data, loss_gradients, small_model


def model_with_dense():
    return tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 3)),
            sbnn_keras.QuantConv2D(8, 3, padding="same", kernel_quantizer="sbnn"),
            tf.keras.layers.BatchNormalization(),
            sbnn_keras.QuantConv2D(40, 3, kernel_quantizer="sbnn_learned"),
            sbnn_keras.QuantConv2D(6, 1, kernel_quantizer="sbnn"),
            tf.keras.layers.Flatten(),
            sbnn_keras.QuantDense(4, kernel_quantizer="sbnn"),
        ]
    )


def connections(model):
    ws = [latent_kernel(layer).numpy() for layer in sbnn_layers(model)]
    return sum(np.sum(w >= 0) for w in ws) / sum(w.size for w in ws)


def k0_share(model):
    hist = sum(
        stats.hamming_histogram(stats.connection_mask(latent_kernel(layer).numpy()))
        for layer in sbnn_layers(model)
    )
    return stats.k_shares(hist)[0]


def loss():
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# ----------------------------------------------------------------------------- NumPy math
def test_group_counts_kernel_and_word():
    rng = np.random.default_rng(1)
    w01 = (rng.random((3, 3, 40, 5)) < 0.3).astype(np.uint8)
    k = sm.group_connection_counts(w01, "kernel")
    np.testing.assert_array_equal(k, stats.hamming_weights(w01))
    w = sm.group_connection_counts(w01, "word", word_size=32)
    assert w.shape == (3, 3, 2, 5)
    np.testing.assert_array_equal(w[:, :, 0], w01[:, :, :32].sum(axis=2))
    np.testing.assert_array_equal(w[:, :, 1], w01[:, :, 32:].sum(axis=2))  # short last word
    assert sm.group_connection_counts(w01, "none") is not None
    dense = (rng.random((70, 3)) < 0.2).astype(np.uint8)
    assert sm.group_connection_counts(dense, "word", word_size=64).shape == (2, 3)


def test_structured_push_concentrates_on_almost_empty_groups():
    w01 = np.zeros((3, 3, 1, 3))
    w01[0, 0, 0, 0] = 1  # one connection
    w01[:, :2, 0, 1] = 1  # six connections; kernel 2 is empty
    f = sm.structured_push(w01, "kernel", epsilon=1.0)
    c = np.array([1 / 2, 1 / 7, 1 / 1])
    s = 7 / (1 * c[0] + 6 * c[1])
    np.testing.assert_allclose(f[:, :, 0, :], np.broadcast_to(s * c, (3, 3, 3)))
    # the push summed over the connections equals the unstructured one (U)
    assert np.sum(f * w01) == pytest.approx(w01.sum())
    assert f[0, 0, 0, 0] / f[0, 0, 0, 1] == pytest.approx(7 / 2)
    # single-weight groups (dense layer, "kernel") and "none": the uniform push
    np.testing.assert_array_equal(sm.structured_push(np.eye(4), "kernel"), np.ones((4, 4)))
    np.testing.assert_array_equal(sm.structured_push(w01, "none"), np.ones_like(w01))
    # no connection at all: factor 1
    np.testing.assert_array_equal(sm.structured_push(np.zeros((3, 3, 2, 2)), "word"), np.ones((3, 3, 2, 2)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"structure": "rows"}, "`structure` must be one of \\('none', 'kernel', 'word'\\), got 'rows'"),
        ({"word_size": 0}, "`word_size` must be a positive integer, got 0"),
        ({"epsilon": 0.0}, "`epsilon` must be a positive number, got 0.0"),
    ],
)
def test_math_bad_arguments(kwargs, match):
    args = {"structure": "kernel", **kwargs}
    with pytest.raises(ValueError, match=match):
        sm.structured_push(np.zeros((3, 3, 2, 2)), **args)


# ----------------------------------------------------------------------------- gradient
@pytest.mark.parametrize("structure, per_layer", [("kernel", False), ("word", False), ("kernel", True)])
def test_gradient_equals_numpy_reference(structure, per_layer):
    tf.keras.utils.set_random_seed(3)
    model = model_with_dense()
    ec, gamma, word = 0.1, 0.3, 16
    reg = SparsityRegularizer(
        loss(), expected_connections=ec, gamma=gamma, include_model_losses=False,
        structure=structure, word_size=word, group_epsilon=0.5, per_layer=per_layer,
    ).bind(model)
    x, y = data(8, shape=(6, 6, 3))
    kernels = [latent_kernel(layer) for layer in sbnn_layers(model)]
    # make some kernels almost empty so the group weights differ a lot
    for k in kernels:
        v = k.numpy()
        v[..., : v.shape[-1] // 2] -= 0.4
        k.assign(np.clip(v, -1.2, 1.2))
    task, total, g_task, g_total = loss_gradients(reg, model, x, y, kernels)
    v = reg.values()
    ws = [k.numpy() for k in kernels]
    ns = [w.size for w in ws]
    ps = [np.mean(w >= 0) for w in ws]
    if per_layer:
        j = sum(max(p - ec, 0) for p in ps)
    else:
        j = sum(np.sum(w >= 0) for w in ws) / sum(ns) - ec
    assert v["j"] == pytest.approx(j, abs=1e-6) and j > 0
    lam = gamma * float(task) / ((1 - gamma) * j)
    assert v["lambda"] == pytest.approx(lam, rel=1e-5)
    # the value of the loss is the unstructured one: the identity holds exactly
    assert v["lambda"] * v["j"] / v["total_loss"] == pytest.approx(gamma, rel=1e-6)
    for w, n, p, gt, gtask, layer in zip(ws, ns, ps, g_total, g_task, sbnn_layers(model)):
        factor = sm.structured_push(stats.connection_mask(w), structure, word_size=word, epsilon=0.5)
        if structure == "kernel" and (len(w.shape) == 2 or w.shape[0] * w.shape[1] == 1):
            assert np.all(factor == 1.0), layer.name  # single-weight groups: uniform push
        active = (p > ec) if per_layer else True
        push = np.where(np.abs(w) <= 1, lam / (2 * n if per_layer else 2 * sum(ns)), 0.0) * factor * active
        np.testing.assert_allclose(gt.numpy(), gtask.numpy() + push, rtol=2e-4, atol=1e-7, err_msg=layer.name)


def test_none_is_the_paper_term():
    tf.keras.utils.set_random_seed(4)
    model = model_with_dense()
    x, y = data(8, shape=(6, 6, 3))
    kernels = [latent_kernel(layer) for layer in sbnn_layers(model)]
    grads = []
    for structure in ("none", "kernel"):
        reg = SparsityRegularizer(loss(), expected_connections=0.1, gamma=0.3, structure=structure).bind(model)
        with tf.GradientTape() as tape:
            total = reg(y, model(x, training=False))
        grads.append(tape.gradient(total, kernels))
    # the dense layer (1 weight per kernel) is unstructured in both; the 3x3 ones differ
    np.testing.assert_allclose(grads[0][-1].numpy(), grads[1][-1].numpy(), rtol=1e-5, atol=1e-8)
    assert np.abs(grads[0][1].numpy() - grads[1][1].numpy()).max() > 1e-6


# ----------------------------------------------------------------------------- training
def fit(structure, epochs, lr=0.005, stop_below=None):
    """Train the small model; stop at the first epoch end with connections <= stop_below."""
    tf.keras.utils.set_random_seed(0)
    model = small_model()
    reg = SparsityRegularizer(
        loss(), expected_connections=0.1, gamma=0.5, lambda_threshold=3e-3, structure=structure
    )
    model.compile(tf.keras.optimizers.Adam(lr), loss=reg.bind(model))
    steps = []

    class Rec(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(reg.values())

        def on_epoch_end(self, epoch, logs=None):
            if stop_below is not None and connections(self.model) <= stop_below:
                self.model.stop_training = True

    x, y = data(256)
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[Rec()])
    return model, reg, steps


def test_kernel_structure_gives_more_all_alpha_kernels_at_no_fewer_connections():
    structured, reg, steps = fit("kernel", 30)  # 240 steps
    active = [s for s in steps if s["j"] > reg.lambda_threshold]
    assert len(active) > 100
    for s in active:
        assert s["lambda"] * s["j"] / s["total_loss"] == pytest.approx(0.5, rel=1e-5)
    p_struct, k0_struct = connections(structured), k0_share(structured)
    # the paper's term, trained until it is at least as sparse as the structured model
    plain, _, _ = fit("none", 100, stop_below=p_struct)
    p_plain, k0_plain = connections(plain), k0_share(plain)
    assert p_plain <= p_struct, (p_plain, p_struct)
    # more empty 3x3 kernels although the paper's term has as few or fewer connections
    assert k0_struct > k0_plain + 0.06, (k0_struct, k0_plain, p_struct, p_plain)
    # and far more than independent placement of the same connections would give
    assert k0_struct > (1 - p_struct) ** 9 + 0.1


# ----------------------------------------------------------------------------- config, save
def test_bad_arguments():
    with pytest.raises(ValueError, match="`structure` must be one of .*got 'kernels'"):
        SparsityRegularizer(expected_connections=0.1, structure="kernels")
    with pytest.raises(ValueError, match="`word_size` must be a positive integer, got 0"):
        SparsityRegularizer(expected_connections=0.1, structure="word", word_size=0)
    with pytest.raises(ValueError, match="`word_size` must be a positive integer, got 32.0"):
        SparsityRegularizer(expected_connections=0.1, word_size=32.0)
    with pytest.raises(ValueError, match="`group_epsilon` must be in \\(0, inf\\), got -1"):
        SparsityRegularizer(expected_connections=0.1, group_epsilon=-1)


def test_config_round_trip_and_old_configs():
    reg = SparsityRegularizer(
        "sparse_categorical_crossentropy", expected_connections=0.05, gamma=0.7,
        structure="word", word_size=64, group_epsilon=0.25,
    )
    config = reg.get_config()
    json.dumps(config)
    clone = SparsityRegularizer.from_config(config)
    assert (clone.structure, clone.word_size, clone.group_epsilon) == ("word", 64, 0.25)
    assert clone.get_config() == config
    old = {k: v for k, v in config.items() if k not in ("structure", "word_size", "group_epsilon")}
    assert SparsityRegularizer.from_config(old).structure == "none"


@pytest.mark.parametrize("fmt", [".keras", ".h5"])
def test_save_load_resume_keeps_the_structure(tmp_path, fmt):
    tf.keras.utils.set_random_seed(0)
    model = small_model()
    reg = SparsityRegularizer(loss(), expected_connections=0.1, gamma=0.5, structure="kernel", group_epsilon=0.5)
    model.compile(tf.keras.optimizers.Adam(0.02), loss=reg.bind(model))
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    path = str(tmp_path / f"m{fmt}")
    model.save(path)
    loaded = sbnn_keras.load_model(path)
    lreg = loaded.loss
    assert isinstance(lreg, SparsityRegularizer) and lreg.get_config() == reg.get_config()
    assert lreg.structure == "kernel" and lreg.group_epsilon == 0.5
    before = connections(loaded)
    loaded.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert connections(loaded) < before - 0.01
    assert lreg.values()["connections"] == pytest.approx(connections(loaded), abs=0.01)


@pytest.mark.slow
def test_benchmark_script_quick(tmp_path):
    """benchmarks/structured_sparsity.py: train (quick) two structures, measure side by side."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "structured_sparsity.py"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    common = ["--models", str(tmp_path), "--quick"]
    for structure in ("none", "kernel"):
        out = subprocess.run(
            [sys.executable, str(script), "train", "--structure", structure, "--json-dir", str(tmp_path), *common],
            capture_output=True, text=True, env=env, timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
    result = tmp_path / "result.json"
    out = subprocess.run(
        [sys.executable, str(script), "measure", "--json", str(result), *common],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(result.read_text())
    assert [r["structure"] for r in data["rows"]] == ["none", "kernel"]
    for row in data["rows"]:
        assert row["tflite_test_accuracy"] == pytest.approx(row["keras_test_accuracy"], abs=0.02)
        assert {"lce/auto", "sparse/auto", "auto/auto"} <= set(row["latency_ms"])
        assert 0 <= row["stats"]["k0"] <= 1 and row["files"]["sparse"]["bits_per_weight"] > 0
