"""Quantizers: forward values, gradients against closed-form NumPy derivatives,
serialization, larq compatibility and bad input."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
from sbnn_keras import math as sm
from sbnn_keras.quantizers import SbnnQuantizer, SiBnnQuantizer, optimal_scales_tf


def grads(quantizer, w, dy):
    w = tf.Variable(w)
    with tf.GradientTape() as tape:
        out = quantizer(w)
        loss = tf.reduce_sum(out * dy)
    sources = [w] + list(quantizer.trainable_weights)
    return out.numpy(), [g.numpy() for g in tape.gradient(loss, sources)]


@pytest.fixture
def w():
    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 0.7, size=(3, 3, 4, 6)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # sign(0) = +1
    x[1, 1, 1, 1] = 1.7  # outside the STE window
    return x


@pytest.mark.parametrize("per_channel", [False, True])
def test_closed_form_forward_and_gradient(w, per_channel):
    q = SbnnQuantizer("closed_form", per_channel=per_channel)
    dy = np.random.default_rng(1).normal(size=w.shape).astype(np.float32)
    out, (gw,) = grads(q, w, dy)
    tau, phi = sm.optimal_scales(w, per_channel=per_channel)
    wb = sm.binarize(w)
    np.testing.assert_allclose(out, tau * wb + phi, rtol=1e-5, atol=1e-6)
    # STE, scales held constant: dL/dw = tau * dy inside |w| <= 1
    np.testing.assert_allclose(gw, np.where(np.abs(w) <= 1, tau * dy, 0), rtol=1e-5, atol=1e-6)
    # only two values per scale group
    vals = out.reshape(-1, w.shape[-1]) if per_channel else out.reshape(-1, 1)
    assert all(len(np.unique(np.round(col, 6))) <= 2 for col in vals.T)


@pytest.mark.parametrize("per_channel", [False, True])
def test_learned_forward_and_gradients(w, per_channel):
    q = SbnnQuantizer("learned", per_channel=per_channel)
    q.build(w.shape)
    shape = (w.shape[-1],) if per_channel else ()
    tau = np.full(shape, 0.8, np.float32) + (np.arange(w.shape[-1]) * 0.1 if per_channel else 0)
    phi = np.full(shape, -0.3, np.float32)
    q.tau.assign(tau)
    q.phi.assign(phi)
    dy = np.random.default_rng(2).normal(size=w.shape).astype(np.float32)
    out, (gw, gtau, gphi) = grads(q, w, dy)
    wb = sm.binarize(w)
    np.testing.assert_allclose(out, tau * wb + phi, rtol=1e-6)
    axes = (0, 1, 2) if per_channel else None
    np.testing.assert_allclose(gtau, np.sum(dy * wb, axis=axes), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gphi, np.sum(dy, axis=axes), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gw, np.where(np.abs(w) <= 1, tau * dy, 0), rtol=1e-5, atol=1e-6)


def test_learned_initialisation_is_authors():
    q = SbnnQuantizer("learned")
    q.build((3, 3, 2, 2))
    assert float(q.tau.numpy()) == 1.0 and float(q.phi.numpy()) == 0.0


def test_symmetric_forward_and_gradient(w):
    q = SbnnQuantizer("symmetric")
    dy = np.ones_like(w)
    out, (gw,) = grads(q, w, dy)
    beta = np.mean(np.abs(w))
    np.testing.assert_allclose(out, beta * sm.binarize(w), rtol=1e-5)
    np.testing.assert_allclose(gw, np.where(np.abs(w) <= 1, beta, 0), rtol=1e-5)


def test_clip_value_none_passes_all_gradients(w):
    q = SbnnQuantizer("symmetric", clip_value=None)
    _, (gw,) = grads(q, w, np.ones_like(w))
    assert np.all(gw > 0)


@pytest.mark.parametrize("per_channel", [False, True])
def test_tf_scales_equal_numpy(w, per_channel):
    tau, phi = optimal_scales_tf(tf.constant(w, tf.float64), per_channel=per_channel)
    np.testing.assert_allclose((tau.numpy(), phi.numpy()), sm.optimal_scales(w, per_channel=per_channel), rtol=1e-10)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_all_one_sign_weights_give_finite_scales(sign):
    w = sign * np.abs(np.random.default_rng(3).normal(size=(3, 3, 2, 4))).astype(np.float32) + sign * 0.01
    for scale in ("closed_form", "symmetric"):
        for per_channel in (False, True):
            q = SbnnQuantizer(scale, per_channel=per_channel)
            out, (gw,) = grads(q, w, np.ones_like(w))
            assert np.all(np.isfinite(out)) and np.all(np.isfinite(gw))
            s = q.scales(w)
            assert all(np.all(np.isfinite(v)) for v in s.values())
    # closed form reproduces the mean exactly (least squares with one group)
    out = SbnnQuantizer("closed_form")(tf.constant(w)).numpy()
    np.testing.assert_allclose(out, np.full_like(w, w.mean()), rtol=1e-5)


def test_scales_are_inspectable(w):
    s = SbnnQuantizer("closed_form").scales(w)
    tau, phi = sm.optimal_scales(w)
    np.testing.assert_allclose([s["tau"], s["phi"], s["alpha"], s["beta"]], [tau, phi, phi - tau, phi + tau], rtol=1e-5)


def test_si_bnn_forward_and_gradients():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    q = SiBnnQuantizer(clip_value=0.5)
    q.build(x.shape)
    t = np.array([-0.2, 0.0, 0.4], np.float32)
    q.threshold.assign(t)
    xv = tf.Variable(x)
    dy = rng.normal(size=x.shape).astype(np.float32)
    with tf.GradientTape() as tape:
        y = q(xv)
        loss = tf.reduce_sum(y * dy)
    gx, gt = tape.gradient(loss, [xv, q.threshold])
    np.testing.assert_array_equal(y.numpy(), (x >= t).astype(np.float32))
    window = np.abs(x - t) <= 0.5
    np.testing.assert_allclose(gx.numpy(), np.where(window, dy, 0), rtol=1e-6)
    np.testing.assert_allclose(gt.numpy(), -np.sum(np.where(window, dy, 0), axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    assert set(np.unique(y.numpy())) <= {0.0, 1.0}


def test_si_bnn_scalar_threshold():
    q = SiBnnQuantizer(per_channel=False)
    x = tf.Variable(np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(q(x))
    gt = tape.gradient(loss, q.threshold)
    assert gt.shape == () and float(gt) == -np.sum(np.abs(x.numpy()) <= 1)


@pytest.mark.parametrize(
    "alias, cls, scale",
    [
        ("sbnn", SbnnQuantizer, "closed_form"),
        ("sbnn_learned", SbnnQuantizer, "learned"),
        ("sbnn_symmetric", SbnnQuantizer, "symmetric"),
        ("si_bnn", SiBnnQuantizer, None),
    ],
)
def test_string_aliases_via_larq(alias, cls, scale):
    q = lq.quantizers.get(alias)
    assert isinstance(q, cls) and q.precision == 1
    if scale:
        assert q.scale == scale


@pytest.mark.parametrize(
    "q",
    [
        SbnnQuantizer("learned", per_channel=True, clip_value=1.5),
        SbnnQuantizer("closed_form"),
        SbnnQuantizer("symmetric", clip_value=None),
        SiBnnQuantizer(per_channel=False, clip_value=0.5),
    ],
)
def test_serialization_round_trip(q):
    config = lq.quantizers.serialize(q)
    q2 = lq.quantizers.get(config)
    assert type(q2) is type(q) and q2.get_config() == q.get_config()
    q3 = type(q).from_config(q.get_config())
    assert q3.get_config() == q.get_config()
    x = tf.constant(np.random.default_rng(5).normal(size=(3, 3, 2, 4)).astype(np.float32))
    np.testing.assert_array_equal(q(x).numpy(), q2(x).numpy())


def test_usable_in_larq_layers_and_summary(capsys):
    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 3)),
            lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign", kernel_quantizer="sbnn_learned",
                                  kernel_constraint="weight_clip"),
            lq.layers.QuantConv2D(4, 3, input_quantizer="si_bnn", kernel_quantizer="sbnn",
                                  kernel_constraint="weight_clip"),
        ]
    )
    names = [v.name for v in model.trainable_weights]
    assert any("tau" in n for n in names) and any("threshold" in n for n in names)
    lq.models.summary(model)
    out = capsys.readouterr().out
    assert "1-bit" in out
    # the two binary layers hold 1-bit kernels in the summary (3*3*3*4 + 3*3*4*4 = 252)
    assert "252" in out


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": "bogus"}, "`scale` must be one of"),
        ({"clip_value": -1.0}, "`clip_value`"),
        ({"clip_value": "x"}, "`clip_value`"),
        ({"per_channel": "yes"}, "`per_channel`"),
    ],
)
def test_sbnn_quantizer_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SbnnQuantizer(**kwargs)


def test_si_bnn_bad_arguments():
    with pytest.raises(ValueError, match="`clip_value`"):
        SiBnnQuantizer(clip_value=0)
    with pytest.raises(ValueError, match="channel axis"):
        SiBnnQuantizer().build(tf.TensorShape([None, None]))


def test_unknown_alias_is_an_error():
    with pytest.raises(ValueError):
        sbnn_keras.QuantConv2D(4, 3, kernel_quantizer="sbnn_bogus")


def test_centred_closed_form_is_eq15_on_zero_mean_weights():
    rng = np.random.default_rng(5)
    w = (rng.normal(size=(3, 3, 8, 8)) - 0.8).astype(np.float32)
    q = SbnnQuantizer(scale="closed_form", center=True)
    s = q.scales(w)
    p = np.mean(w >= 0)
    tau, phi = sm.optimal_scales(w - w.mean(), wb=sm.binarize(w))
    assert float(s["tau"]) == pytest.approx(tau, rel=1e-5) and float(s["phi"]) == pytest.approx(phi, abs=1e-6)
    # zero mean: p * beta + (1 - p) * alpha = 0
    assert float(s["alpha"]) == pytest.approx(-p / (1 - p) * float(s["beta"]), rel=1e-4)
    assert SbnnQuantizer.from_config(q.get_config()).center is True
    assert "center" not in SbnnQuantizer().get_config()
    with pytest.raises(ValueError, match="`center=True` needs scale='closed_form', got scale='learned'"):
        SbnnQuantizer(scale="learned", center=True)
    with pytest.raises(ValueError, match="`center` must be a bool, got 'yes'"):
        SbnnQuantizer(center="yes")
