"""sparsity_report, SparsityReport (table, JSON), SparsityCallback and plot_hamming_histograms."""

import json
import math

import numpy as np
import pytest

import sbnn_keras  # noqa: F401  (before tensorflow)
import larq as lq
import tensorflow as tf

from sbnn_keras import math as sbnn_math
from sbnn_keras.metrics.callbacks import SparsityCallback
from sbnn_keras.layers import latent_kernel
from sbnn_keras.metrics.plot import plot_hamming_histograms
from sbnn_keras.metrics.report import SparsityReport, sparsity_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- a model with known answers


def _known_model():
    """Input(6,6,2) -> QuantConv2D(3, 3x3, valid) -> Flatten -> QuantDense(2), hand-set weights.

    Conv kernel [3, 3, 2, 3], 6 kernels (input i, output o):
        (0,0) HW 0   (0,1) HW 0   (0,2) HW 2
        (1,0) HW 1   (1,1) HW 9   (1,2) HW 1 (its connection is a latent 0.0)
    Dense kernel [48, 2]: 12 connections, all in column 0. Closed-form scales.
    """
    model = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 2)),
            sbnn_keras.QuantConv2D(3, 3, name="conv_a"),
            tf.keras.layers.Flatten(name="flat"),
            sbnn_keras.QuantDense(2, kernel_quantizer="sbnn", name="dense_b"),
        ],
        name="known",
    )
    conv = np.full((3, 3, 2, 3), -0.5, dtype=np.float32)
    conv[1, 1, 1, 0] = 0.5
    conv[..., 1, 1] = 0.25
    conv[0, 0, 0, 2] = conv[2, 2, 0, 2] = 0.75
    conv[0, 2, 1, 2] = 0.0  # sign(0) = +1: a connection
    latent_kernel(model.get_layer("conv_a")).assign(conv)
    dense = np.full((48, 2), -0.25, dtype=np.float32)
    dense[:12, 0] = np.linspace(0.1, 0.9, 12)
    latent_kernel(model.get_layer("dense_b")).assign(dense)
    quantizer = model.get_layer("conv_a").kernel_quantizer
    quantizer.tau.assign(0.5)
    quantizer.phi.assign(0.25)
    return model, conv, dense


def test_known_model_per_layer():
    model, _, dense = _known_model()
    report = sparsity_report(model)
    assert [e.name for e in report.layers] == ["conv_a", "dense_b"]
    conv, dn = report.layers

    assert conv.class_name == "QuantConv2D"
    assert conv.kernel_shape == (3, 3, 2, 3)
    assert conv.out_pixels == 16
    assert (conv.n, conv.u) == (54, 13)
    assert conv.connections == 13 / 54
    assert conv.bits_per_weight == pytest.approx(float(sbnn_math.binary_entropy(13 / 54)))
    assert conv.hamming_histogram == [2, 2, 1, 0, 0, 0, 0, 0, 0, 1]
    assert (conv.k0, conv.k1) == (2 / 6, 2 / 6)
    assert (conv.tau, conv.phi, conv.alpha, conv.beta) == (0.5, 0.25, -0.25, 0.75)
    assert conv.bops_dense == 2 * 54 * 16
    assert conv.bops_kernel_skip == 2 * 9 * 2 * 16  # two kernels with HW >= 2
    assert conv.bops_sparse == (13 + 9 * 2) * 16
    assert conv.bparams_bits == 6 * 2 + 2 * 4 + 2 * 9
    assert conv.dense_bits == 54

    assert dn.class_name == "QuantDense"
    assert dn.kernel_shape == (48, 2)
    assert dn.out_pixels == 1
    assert (dn.n, dn.u) == (96, 12)
    assert dn.hamming_histogram is None and dn.k0 is None and dn.k1 is None
    tau, phi = sbnn_math.optimal_scales(dense)
    assert dn.tau == pytest.approx(float(tau)) and dn.phi == pytest.approx(float(phi))
    assert dn.beta == pytest.approx(float(np.mean(dense[:12, 0])), rel=1e-6)
    assert dn.alpha == pytest.approx(-0.25, rel=1e-6)
    assert (dn.bops_dense, dn.bops_kernel_skip, dn.bops_sparse) == (192, 24, 12 + 48)
    assert dn.bparams_bits == dn.dense_bits == 96


def test_known_model_totals():
    model, _, _ = _known_model()
    t = sparsity_report(model).total
    assert (t.layers, t.n, t.u) == (2, 150, 25)
    assert t.connections == 25 / 150
    assert t.bits_per_weight == pytest.approx(float(sbnn_math.binary_entropy(1 / 6)))
    assert t.conv_kernels == 6
    assert (t.k0, t.k1) == (1 / 3, 1 / 3)
    assert (t.bops_dense, t.bops_kernel_skip, t.bops_sparse) == (1920, 600, 556)
    assert t.bops_kernel_skip_ratio == 600 / 1920
    assert t.bops_sparse_ratio == 556 / 1920
    assert t.bops_reduction == pytest.approx(1 - 600 / 1920)
    assert (t.bparams_bits, t.dense_bits) == (38 + 96, 150)
    assert t.bparams_ratio == 134 / 150


def test_per_channel_scales_are_lists_and_larq_layers_count():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((10, 3)),
            lq.layers.QuantConv1D(
                4,
                3,
                strides=2,
                kernel_quantizer=sbnn_keras.SbnnQuantizer("closed_form", per_channel=True),
                name="larq_conv1d",
            ),
            tf.keras.layers.Conv1D(2, 1, name="plain_conv"),  # not an SBNN layer
        ],
        name="seq1d",
    )
    report = sparsity_report(model)
    (entry,) = report.layers
    assert entry.name == "larq_conv1d"
    assert entry.out_pixels == 4
    assert len(entry.hamming_histogram) == 4 and sum(entry.hamming_histogram) == 12
    assert isinstance(entry.tau, list) and len(entry.tau) == 4
    latent = latent_kernel(model.get_layer("larq_conv1d")).numpy()
    tau, phi = sbnn_math.optimal_scales(latent, per_channel=True)
    np.testing.assert_allclose(entry.tau, tau, rtol=1e-5)
    np.testing.assert_allclose(entry.phi, phi, rtol=1e-5, atol=1e-7)
    assert entry.bops_dense == 2 * 36 * 4


def test_unknown_spatial_size_gives_no_bops():
    model = tf.keras.Sequential(
        [tf.keras.Input((None, None, 2)), sbnn_keras.QuantConv2D(3, 3)], name="fcn"
    )
    report = sparsity_report(model)
    assert report.layers[0].out_pixels is None and report.layers[0].bops_dense is None
    assert report.total.bops_dense is None and report.total.bops_kernel_skip_ratio is None
    assert report.total.k0 is not None
    assert "Total" in str(report)  # the table still renders


# ---------------------------------------------------------------- export


def test_json_round_trip(tmp_path):
    model, _, _ = _known_model()
    report = sparsity_report(model)
    text = report.to_json()
    data = json.loads(text)
    assert data == report.to_dict()
    assert data["model"] == "known"
    assert data["layers"][0]["hamming_histogram"] == [2, 2, 1, 0, 0, 0, 0, 0, 0, 1]
    assert data["total"]["u"] == 25
    assert SparsityReport.from_json(text) == report
    path = tmp_path / "report.json"
    assert report.to_json(path) == text
    assert SparsityReport.from_json(path) == report
    assert SparsityReport.from_json(str(path)).layers == report.layers


def test_json_converts_numpy_and_per_channel_lists():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((4,)),
            sbnn_keras.QuantDense(
                3, kernel_quantizer=sbnn_keras.SbnnQuantizer("symmetric", per_channel=True)
            ),
        ],
        name="pc",
    )
    data = json.loads(sparsity_report(model).to_json())
    (layer,) = data["layers"]
    assert isinstance(layer["beta"], list) and len(layer["beta"]) == 3
    assert layer["phi"] == [0.0, 0.0, 0.0]
    assert all(isinstance(v, float) for v in layer["tau"])


def test_table_has_every_layer_and_total():
    model, _, _ = _known_model()
    report = sparsity_report(model)
    text = str(report)
    lines = text.splitlines()
    for name in ("conv_a", "dense_b"):
        assert any(line.startswith(f"| {name} ") for line in lines), text
    assert any(line.startswith("| Total ") for line in lines)
    assert "flat" not in text  # only SBNN layers
    table = lines[: lines.index(next(ln for ln in lines if ln.startswith("+known totals")))]
    assert len({len(line) for line in table}) == 1, "boxed table lines differ in width"
    assert "16.67%" in text and "33.33%" in text
    printed = []
    report.print(printed.append)
    assert printed == [text]


def test_long_layer_name_widens_the_name_column():
    model = tf.keras.Sequential(
        [tf.keras.Input((4,)), sbnn_keras.QuantDense(2, name="a_really_long_layer_name_here")],
        name="long",
    )
    lines = str(sparsity_report(model)).splitlines()
    row = next(ln for ln in lines if "a_really_long_layer_name_here" in ln)
    total = next(ln for ln in lines if ln.startswith("| Total"))
    assert len(row) == len(total) == len(lines[0])


# ---------------------------------------------------------------- errors


def test_model_without_sbnn_layer_names_the_model():
    model = tf.keras.Sequential(
        [tf.keras.Input((4,)), tf.keras.layers.Dense(2)], name="plain_model"
    )
    with pytest.raises(ValueError, match="'plain_model' has no SBNN layer"):
        sparsity_report(model)


def test_unbuilt_model_names_the_model():
    model = tf.keras.Sequential([sbnn_keras.QuantDense(2)], name="not_built_yet")
    with pytest.raises(ValueError, match="'not_built_yet' is not built"):
        sparsity_report(model)


def test_not_a_model():
    with pytest.raises(ValueError, match="`model` must be a tf.keras.Model"):
        sparsity_report("model.keras")


# ---------------------------------------------------------------- callback


def _callback_model():
    return tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1)),
            tf.keras.layers.Conv2D(4, 3, padding="same", name="stem"),
            tf.keras.layers.BatchNormalization(name="bn"),
            sbnn_keras.QuantConv2D(8, 3, padding="same", name="sbnn_conv"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(3, name="head"),
        ],
        name="cb_model",
    )


def test_callback_writes_history(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, size=(32,))
    model = _callback_model()
    reg = sbnn_keras.SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        expected_connections=0.1,
        gamma=0.1,
    )
    model.compile(optimizer="adam", loss=reg.bind(model))
    callback = SparsityCallback(per_layer=True, regularizer=reg)
    csv_path = tmp_path / "log.csv"
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        verbose=0,
        callbacks=[callback, tf.keras.callbacks.CSVLogger(str(csv_path))],
    )
    logged = history.history
    for key in (
        "connections",
        "bits_per_weight",
        "k0",
        "k1",
        "bops_ratio",
        "connections/sbnn_conv",
        "lambda",
        "j",
    ):
        assert key in logged, f"{key} missing from {sorted(logged)}"
        assert len(logged[key]) == 1 and math.isfinite(logged[key][0])
    total = callback.last_report.total
    assert logged["connections"][0] == pytest.approx(total.connections)
    assert logged["connections/sbnn_conv"][0] == pytest.approx(total.connections)
    assert logged["bops_ratio"][0] == pytest.approx(total.bops_kernel_skip_ratio)
    assert logged["lambda"][0] == pytest.approx(reg.values()["lambda"])
    assert logged["j"][0] >= 0
    header = csv_path.read_text().splitlines()[0]
    assert "connections" in header and "bits_per_weight" in header


def test_callback_prefix_and_arguments():
    model = _callback_model()
    callback = SparsityCallback(prefix="sbnn/")
    callback.set_model(model)
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)
    assert set(logs) == {
        "loss",
        "sbnn/connections",
        "sbnn/bits_per_weight",
        "sbnn/k0",
        "sbnn/k1",
        "sbnn/bops_ratio",
    }
    with pytest.raises(ValueError, match="`regularizer`"):
        SparsityCallback(regularizer="l2")
    with pytest.raises(ValueError, match="`prefix`"):
        SparsityCallback(prefix=3)


def test_callback_unbound_regularizer_fails_at_train_begin():
    model = _callback_model()
    reg = sbnn_keras.SparsityRegularizer(expected_connections=0.1)
    callback = SparsityCallback(regularizer=reg)
    callback.set_model(model)
    with pytest.raises(ValueError, match="not bound"):
        callback.on_train_begin()


# ---------------------------------------------------------------- plot


def test_plot_writes_png(tmp_path):
    model, _, _ = _known_model()
    path = plot_hamming_histograms(model, tmp_path / "all.png")
    assert path == str(tmp_path / "all.png")
    data = (tmp_path / "all.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000

    report = sparsity_report(_callback_model())
    out = plot_hamming_histograms(report, str(tmp_path / "one.png"), layers="sbnn_conv")
    with open(out, "rb") as handle:
        assert handle.read(8) == PNG_SIGNATURE


def test_plot_bad_layers(tmp_path):
    model, _, _ = _known_model()
    with pytest.raises(ValueError, match=r"`layers` names 'nope'.*'known'"):
        plot_hamming_histograms(model, tmp_path / "x.png", layers=["conv_a", "nope"])
    with pytest.raises(ValueError, match=r"`layers` selects 'dense_b'.*no Hamming histogram"):
        plot_hamming_histograms(model, tmp_path / "x.png", layers="dense_b")
    with pytest.raises(ValueError, match=r"`layers` index 5 is out of range"):
        plot_hamming_histograms(model, tmp_path / "x.png", layers=[5])
    dense_only = tf.keras.Sequential(
        [tf.keras.Input((4,)), sbnn_keras.QuantDense(2)], name="dense_only"
    )
    with pytest.raises(ValueError, match=r"'dense_only' has no convolutional SBNN layer"):
        plot_hamming_histograms(dense_only, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
