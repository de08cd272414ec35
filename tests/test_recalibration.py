"""BatchNorm recalibration against a NumPy reference of the same network.

The reference recomputes, batch by batch, the training-mode forward pass of a
small float -> binary -> float network in float64 NumPy (1x1 convolutions are
matrix products), takes each BatchNorm input's batch statistics with the variance
Keras' update uses (Bessel-corrected for 4-D inputs, plain for 2-D) and averages
them over the batches.
"""

import numpy as np
import pytest

import sbnn_keras  # noqa: F401  (selects legacy Keras)
import tensorflow as tf

from sbnn_keras.training.recalibration import batchnorm_layers, recalibrate_batchnorm

EPS = 1e-3


def _model(seed=0):
    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((5, 5, 3))
    x = tf.keras.layers.Conv2D(4, 1, use_bias=False, name="float_conv")(inp)
    x = tf.keras.layers.BatchNormalization(epsilon=EPS, name="bn_a")(x)
    x = sbnn_keras.QuantConv2D(
        6, 1, use_bias=False, input_quantizer="ste_sign", kernel_quantizer="sbnn_learned",
        name="bconv",
    )(x)
    x = tf.keras.layers.BatchNormalization(epsilon=EPS, name="bn_b")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(5, name="dense")(x)
    out = tf.keras.layers.BatchNormalization(epsilon=EPS, name="bn_c")(x)
    model = tf.keras.Model(inp, out)
    rng = np.random.default_rng(seed)
    for layer in batchnorm_layers(model):  # non-trivial affine parameters
        c = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
        layer.beta.assign(rng.uniform(-0.5, 0.5, c).astype(np.float32))
    q = model.get_layer("bconv").kernel_quantizer
    q.tau.assign(0.7)
    q.phi.assign(-0.2)
    return model


def _reference(model, x, batch_size):
    """Mean over batches of each BatchNorm input's batch statistics (float64)."""
    w1 = model.get_layer("float_conv").kernel.numpy()[0, 0].astype(np.float64)
    bconv = model.get_layer("bconv")
    q = bconv.kernel_quantizer
    wl = bconv.kernel.numpy()[0, 0].astype(np.float64)
    w2 = float(q.tau.numpy()) * np.where(wl >= 0, 1.0, -1.0) + float(q.phi.numpy())
    dense = model.get_layer("dense")
    w3, b3 = (v.numpy().astype(np.float64) for v in dense.weights)
    bn = {n: model.get_layer(n) for n in ("bn_a", "bn_b", "bn_c")}

    def norm(h, name, axes):
        layer = bn[name]
        m = h.mean(axis=axes)
        v = h.var(axis=axes)  # training mode normalizes with the plain variance
        g, b = layer.gamma.numpy(), layer.beta.numpy()
        return g * (h - m) / np.sqrt(v + EPS) + b

    stats = {n: [] for n in bn}
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].astype(np.float64)
        h1 = xb @ w1
        stats["bn_a"].append((h1.mean((0, 1, 2)), h1.var((0, 1, 2), ddof=1)))
        s = np.where(norm(h1, "bn_a", (0, 1, 2)) >= 0, 1.0, -1.0)
        h2 = s @ w2
        stats["bn_b"].append((h2.mean((0, 1, 2)), h2.var((0, 1, 2), ddof=1)))
        g = norm(h2, "bn_b", (0, 1, 2)).mean((1, 2))
        h3 = g @ w3 + b3
        stats["bn_c"].append((h3.mean(0), h3.var(0)))  # 2-D: non-fused, plain variance
    return {n: (np.mean([m for m, _ in v], 0), np.mean([s for _, s in v], 0)) for n, v in stats.items()}


@pytest.mark.parametrize("batch_size", [64, 200])
def test_moving_stats_equal_numpy_batch_statistics(batch_size):
    model = _model()
    x = np.random.default_rng(1).normal(0.3, 2.0, (200, 5, 5, 3)).astype(np.float32)
    before = [w.numpy().copy() for w in model.trainable_weights]
    info = recalibrate_batchnorm(model, x, batch_size=batch_size)
    assert info["batches"] == -(-200 // batch_size) and info["samples"] == 200
    assert info["layers"] == ["bn_a", "bn_b", "bn_c"] and info["skipped"] == []
    ref = _reference(model, x, batch_size)
    for name, (mean, var) in ref.items():
        layer = model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=2e-4, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=2e-4, atol=2e-5, err_msg=name)
        assert layer.momentum == 0.99  # restored
    for w, b in zip(model.trainable_weights, before):  # nothing else changed
        np.testing.assert_array_equal(w.numpy(), b)


def test_whole_data_as_one_batch_gives_population_statistics():
    """One batch: the first BatchNorm's moving stats are the mean and (n-1) variance
    of its input over all data; inference then normalizes that input to mean 0."""
    model = _model(seed=3)
    x = np.random.default_rng(2).normal(-1.0, 3.0, (50, 5, 5, 3)).astype(np.float32)
    recalibrate_batchnorm(model, x, batch_size=50)
    h1 = x.astype(np.float64) @ model.get_layer("float_conv").kernel.numpy()[0, 0]
    bn = model.get_layer("bn_a")
    np.testing.assert_allclose(bn.moving_mean.numpy(), h1.mean((0, 1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), h1.var((0, 1, 2), ddof=1), rtol=1e-4)


def test_stale_statistics_are_replaced():
    """Stale moving statistics (as after the regularizer flipped weights) give a
    different inference output; recalibration makes inference match the stats."""
    model = _model(seed=4)
    x = np.random.default_rng(5).normal(0.0, 1.0, (64, 5, 5, 3)).astype(np.float32)
    for layer in batchnorm_layers(model):
        layer.moving_mean.assign(layer.moving_mean + 5.0)
    recalibrate_batchnorm(model, x, batch_size=64)
    # with one batch, inference == training-mode output up to the (n-1)/n variance factor
    y_inf = model(x, training=False).numpy()
    y_train = model(x, training=True).numpy()
    assert np.max(np.abs(y_inf - y_train)) < 0.05


def test_dataset_and_steps():
    model = _model()
    x = np.random.default_rng(1).normal(0.3, 2.0, (200, 5, 5, 3)).astype(np.float32)
    y = np.zeros(200, np.int64)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    info = recalibrate_batchnorm(model, ds, steps=2)
    assert info["batches"] == 2 and info["samples"] == 128
    ref = _reference(model, x[:128], 64)
    np.testing.assert_allclose(model.get_layer("bn_b").moving_variance.numpy(), ref["bn_b"][1], rtol=2e-4)
    info = recalibrate_batchnorm(model, (x, y), batch_size=100)
    assert info["batches"] == 2


def test_frozen_layers_are_skipped():
    model = _model()
    model.get_layer("bn_c").trainable = False
    before = model.get_layer("bn_c").moving_mean.numpy().copy()
    info = recalibrate_batchnorm(model, np.ones((8, 5, 5, 3), np.float32))
    assert info["skipped"] == ["bn_c"]
    np.testing.assert_array_equal(model.get_layer("bn_c").moving_mean.numpy(), before)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"steps": 0}, "steps"),
        ({"data": np.zeros((0, 5, 5, 3), np.float32)}, "no samples"),
    ],
)
def test_bad_arguments(kwargs, match):
    model = _model()
    args = {"data": np.ones((4, 5, 5, 3), np.float32), **kwargs}
    with pytest.raises(ValueError, match=match):
        recalibrate_batchnorm(model, **args)


def test_no_batchnorm_and_all_frozen():
    plain = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no BatchNormalization"):
        recalibrate_batchnorm(plain, np.ones((4, 3), np.float32))
    model = _model()
    model.trainable = False
    with pytest.raises(ValueError, match="frozen"):
        recalibrate_batchnorm(model, np.ones((4, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="Keras model"):
        recalibrate_batchnorm("model", np.ones((4, 3)))


def test_callback_recalibrates_when_ec_is_reached_and_at_the_end():
    """EC 0.5 with a threshold of 0.6: satisfied after the first epoch (connections
    start near 0.5); the pass at the end follows the last training step."""
    from sbnn_keras.training.recalibration import BatchNormRecalibration
    from sbnn_keras.regularizer import SparsityRegularizer

    model = _model()
    x = np.random.default_rng(1).normal(0.3, 2.0, (64, 5, 5, 3)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 5, 64)
    reg = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        expected_connections=0.5, gamma=0.1, lambda_threshold=0.6,
    )
    model.compile(tf.keras.optimizers.Adam(1e-3), loss=reg.bind(model))
    cb = BatchNormRecalibration(x, regularizer=reg, batch_size=32)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb])
    assert [tag for tag, _ in cb.events] == [1, "end"]
    assert history.history["bn_recalibrated"] == [1.0]  # logged once, at epoch 1
    ref = _reference(model, x, 32)  # the end pass: statistics of the final weights
    np.testing.assert_allclose(model.get_layer("bn_b").moving_mean.numpy(), ref["bn_b"][0], rtol=2e-4, atol=2e-5)
    with pytest.raises(ValueError, match="subset"):
        BatchNormRecalibration(x, when=("start",))
    with pytest.raises(ValueError, match="batch_size"):
        BatchNormRecalibration(x, batch_size=0)
    with pytest.raises(ValueError, match="steps"):
        BatchNormRecalibration(x, steps=-1)
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(ValueError, match="regularizer"):  # at the start, before any step
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BatchNormRecalibration(x, when="ec")])
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), b)


def test_callback_not_reached_runs_only_at_the_end():
    from sbnn_keras.training.recalibration import BatchNormRecalibration
    from sbnn_keras.regularizer import SparsityRegularizer

    model = _model()
    x = np.random.default_rng(1).normal(0.3, 2.0, (32, 5, 5, 3)).astype(np.float32)
    y = np.zeros(32, np.int64)
    reg = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        expected_connections=0.01, gamma=0.1,
    )
    model.compile(tf.keras.optimizers.Adam(1e-3), loss=reg.bind(model))
    cb = BatchNormRecalibration(x, regularizer=reg)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    assert [tag for tag, _ in cb.events] == ["end"]


def _fit_with_sparsity_callback(model, x, y, extra=()):
    from sbnn_keras.metrics.callbacks import SparsityCallback
    from sbnn_keras.regularizer import SparsityRegularizer
    from sbnn_keras.training.recalibration import BatchNormRecalibration

    reg = SparsityRegularizer(
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        expected_connections=0.5, gamma=0.1, lambda_threshold=0.6,
    )
    model.compile(tf.keras.optimizers.Adam(1e-3), loss=reg.bind(model))
    recal = BatchNormRecalibration(x, batch_size=32)  # no regularizer: the callback's is used
    cb = SparsityCallback(regularizer=reg, recalibrate=recal)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb, *extra])
    return history, recal


def test_sparsity_callback_recalibrates_before_later_callbacks():
    """SparsityCallback(recalibrate=...): the pass runs the epoch EC is reached and at
    the end; a callback listed after it (a checkpoint, say) already sees moving
    statistics equal to the NumPy batch statistics of the weights of that moment."""
    model = _model()
    x = np.random.default_rng(1).normal(0.3, 2.0, (64, 5, 5, 3)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 5, 64)
    seen = {}

    def later(epoch, logs):
        seen[epoch] = (
            {n: model.get_layer(n).moving_mean.numpy().copy() for n in ("bn_a", "bn_b", "bn_c")},
            _reference(model, x, 32),
            dict(logs),
        )

    history, recal = _fit_with_sparsity_callback(
        model, x, y, extra=[tf.keras.callbacks.LambdaCallback(on_epoch_end=later)]
    )
    assert [tag for tag, _ in recal.events] == [1, "end"]
    moving, ref, logs = seen[0]
    assert logs["bn_recalibrated"] == 1.0 and "connections" in logs
    for name in moving:
        np.testing.assert_allclose(moving[name], ref[name][0], rtol=2e-4, atol=2e-5, err_msg=name)
    assert history.history["bn_recalibrated"] == [1.0]
    ref = _reference(model, x, 32)  # after the end pass: the final weights' statistics
    for name, (mean, var) in ref.items():
        np.testing.assert_allclose(model.get_layer(name).moving_mean.numpy(), mean, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(model.get_layer(name).moving_variance.numpy(), var, rtol=2e-4, atol=2e-5)


def test_sparsity_callback_without_recalibration_leaves_statistics_stale():
    """The same run without ``recalibrate``: the moving statistics differ from the
    batch statistics of the final weights (so the test above can fail)."""
    from sbnn_keras.metrics.callbacks import SparsityCallback

    model = _model()
    x = np.random.default_rng(1).normal(0.3, 2.0, (64, 5, 5, 3)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 5, 64)
    model.compile(tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[SparsityCallback()])
    ref = _reference(model, x, 32)
    assert not np.allclose(model.get_layer("bn_b").moving_mean.numpy(), ref["bn_b"][0], rtol=2e-4, atol=2e-5)
    with pytest.raises(ValueError, match="recalibrate"):
        SparsityCallback(recalibrate=x)
