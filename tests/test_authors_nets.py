"""The authors' CIFAR networks against a written specification of their PyTorch code.

The specification below is written from the authors' public code (CIFAR-10:
``resnet_learn.py`` BasicBlock/ResNet18, ``ir_1w1a_learn.py`` IRConv2d; CIFAR-100:
``birealnetBNN.py`` BasicBlock/birealnet18), one entry per layer: its kind, the
layers it reads, its output shape and, for convolutions, precision, kernel,
channels and stride. Parameter counts are those of PyTorch's ``parameters()``
(trainable values; BatchNorm running statistics are buffers), summed by hand from
the same code: ResNet-18 11,175,018, ReActNet-18 (100 classes) 11,235,076.
"""

import math

import numpy as np
import pytest

import sbnn_keras  # noqa: F401
import larq as lq
import tensorflow as tf

from sbnn_zoo import authors, zoo
from sbnn_keras.metrics.report import sparsity_report
from sbnn_keras.quantizers import SbnnQuantizer

RESNET18_PARAMS = 11_175_018
REACTNET18_PARAMS = 11_235_076


def resnet18_spec(num_classes=10, width=64):
    """resnet_learn.py: name -> (kind, inputs, output HxWxC or C, extra)."""
    spec = {}
    w = [width, 2 * width, 4 * width, 8 * width]
    spec["normalize"] = ("norm", ["image"], (32, 32, 3), {})
    spec["stem_conv"] = ("conv_float", ["normalize"], (32, 32, w[0]), {"k": 3, "s": 1, "cin": 3})
    spec["stem_bn"] = ("bn", ["stem_conv"], (32, 32, w[0]), {})
    x, size, cin = "stem_bn", 32, w[0]
    for s, planes in enumerate(w):
        for b in range(2):
            stride = 2 if s > 0 and b == 0 else 1
            t = f"s{s + 1}b{b + 1}"
            size //= stride
            out = (size, size, planes)
            spec[f"{t}c1_bconv"] = ("conv_binary_ede", [x], out, {"k": 3, "s": stride, "cin": cin})
            spec[f"{t}c1_bn"] = ("bn", [f"{t}c1_bconv"], out, {})
            spec[f"{t}c1_htanh"] = ("hardtanh", [f"{t}c1_bn"], out, {})
            spec[f"{t}c2_bconv"] = ("conv_binary_ede", [f"{t}c1_htanh"], out, {"k": 3, "s": 1, "cin": planes})
            spec[f"{t}c2_bn"] = ("bn", [f"{t}c2_bconv"], out, {})
            short = x
            if stride != 1 or cin != planes:
                spec[f"{t}_short_conv"] = ("conv_float", [x], out, {"k": 1, "s": stride, "cin": cin})
                spec[f"{t}_short_bn"] = ("bn", [f"{t}_short_conv"], out, {})
                short = f"{t}_short_bn"
            spec[f"{t}_add"] = ("add", [f"{t}c2_bn", short], out, {})
            spec[f"{t}_htanh"] = ("hardtanh", [f"{t}_add"], out, {})
            x, cin = f"{t}_htanh", planes
    spec["avgpool"] = ("avgpool4", [x], (1, 1, w[3]), {})
    spec["flatten"] = ("flatten", ["avgpool"], (w[3],), {})
    spec["head_bn"] = ("bn", ["flatten"], (w[3],), {})
    spec["classifier"] = ("dense", ["head_bn"], (num_classes,), {})
    return spec


def reactnet18_spec(num_classes=100, width=64):
    """birealnetBNN.py: name -> (kind, inputs, output, extra)."""
    spec = {}
    w = [width, 2 * width, 4 * width, 8 * width]
    spec["normalize"] = ("norm", ["image"], (32, 32, 3), {})
    spec["stem_conv"] = ("conv_float", ["normalize"], (32, 32, w[0]), {"k": 3, "s": 1, "cin": 3})
    spec["stem_bn"] = ("bn", ["stem_conv"], (32, 32, w[0]), {})
    spec["stem_maxpool"] = ("maxpool_torch", ["stem_bn"], (16, 16, w[0]), {})
    x, size, cin, unit = "stem_maxpool", 16, w[0], 0
    for s, planes in enumerate(w):
        for b in range(4):
            unit += 1
            t = f"u{unit}"
            stride = 2 if s > 0 and b == 0 else 1
            size //= stride
            out = (size, size, planes)
            spec[f"{t}_move0"] = ("bias", [x], (size * stride, size * stride, cin), {})
            spec[f"{t}_bconv"] = ("conv_binary_approx", [f"{t}_move0"], out, {"k": 3, "s": stride, "cin": cin})
            spec[f"{t}_bn"] = ("bn", [f"{t}_bconv"], out, {})
            short = x
            if stride != 1 or cin != planes:
                spec[f"{t}_short_pool"] = ("avgpool2", [x], (size, size, cin), {})
                spec[f"{t}_short_conv"] = ("conv_float", [f"{t}_short_pool"], out, {"k": 1, "s": 1, "cin": cin})
                spec[f"{t}_short_bn"] = ("bn", [f"{t}_short_conv"], out, {})
                short = f"{t}_short_bn"
            spec[f"{t}_add"] = ("add", [f"{t}_bn", short], out, {})
            spec[f"{t}_rprelu"] = ("rprelu", [f"{t}_add"], out, {})
            x, cin = f"{t}_rprelu", planes
    spec["gap"] = ("gap", [x], (w[3],), {})
    spec["classifier"] = ("dense", ["gap"], (num_classes,), {})
    return spec


def _kind(layer):
    if isinstance(layer, sbnn_keras.QuantConv2D):
        iq, kq = layer.input_quantizer, layer.kernel_quantizer
        if isinstance(iq, zoo.EdeSign) and isinstance(kq, zoo.IrNetSbnnQuantizer):
            return "conv_binary_ede"
        if isinstance(iq, lq.quantizers.ApproxSign):
            return "conv_binary_approx"
        return "conv_binary_other"
    table = [
        (tf.keras.layers.Normalization, "norm"),
        (tf.keras.layers.Conv2D, "conv_float"),
        (tf.keras.layers.BatchNormalization, "bn"),
        (zoo.HardTanh, "hardtanh"),
        (tf.keras.layers.Add, "add"),
        (tf.keras.layers.Flatten, "flatten"),
        (tf.keras.layers.Dense, "dense"),
        (tf.keras.layers.GlobalAveragePooling2D, "gap"),
        (authors.TorchMaxPool2D, "maxpool_torch"),
        (zoo.LearnableBias, "bias"),
        (zoo.RPReLU, "rprelu"),
    ]
    if isinstance(layer, tf.keras.layers.AveragePooling2D):
        return f"avgpool{layer.pool_size[0]}"
    for cls, name in table:
        if isinstance(layer, cls):
            return name
    return type(layer).__name__


def _inputs(layer):
    tensors = layer.input if isinstance(layer.input, list) else [layer.input]
    return [t._keras_history.layer.name for t in tensors]


def _check(model, spec):
    layers = {layer.name: layer for layer in model.layers if not isinstance(layer, tf.keras.layers.InputLayer)}
    assert sorted(layers) == sorted(spec), set(layers) ^ set(spec)
    for name, (kind, inputs, out, extra) in spec.items():
        layer = layers[name]
        assert _kind(layer) == kind, name
        assert _inputs(layer) == inputs, name
        assert tuple(layer.output.shape[1:]) == out, name
        if kind.startswith("conv"):
            k, cin = extra["k"], extra["cin"]
            assert tuple(layer.kernel.shape) == (k, k, cin, out[-1]), name
            assert layer.strides == (extra["s"], extra["s"]) and not layer.use_bias, name
        if kind == "bn":
            assert layer.epsilon == 1e-5 and layer.momentum == 0.9, name
    return layers


def _binary(layers):
    return [layer for layer in layers.values() if isinstance(layer, sbnn_keras.QuantConv2D)]


def _trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_authors_resnet18_matches_spec():
    tf.keras.utils.set_random_seed(0)
    model = authors.authors_resnet18()
    layers = _check(model, resnet18_spec())
    binary = _binary(layers)
    assert len(binary) == 16
    floats = [layer for layer in layers.values() if _kind(layer) == "conv_float"]
    assert len(floats) == 4  # stem + three 1x1 shortcuts
    for layer in binary:
        kq = layer.kernel_quantizer
        assert kq.scale == "learned" and kq.standardize == "none" and not kq.per_channel
        assert kq.tau.shape == () and float(kq.tau.numpy()) == 1.0 and float(kq.phi.numpy()) == 0.0
        assert isinstance(layer.kernel_constraint, lq.constraints.WeightClip)
        assert layer.kernel_constraint.clip_value == 1.5
        fan_in = 9 * layer.kernel.shape[2]
        w = layer.kernel.numpy()
        assert np.abs(w).max() <= 1 / math.sqrt(fan_in) + 1e-7  # PyTorch's default init
        assert abs(w.std() - 1 / math.sqrt(3 * fan_in)) < 0.1 / math.sqrt(3 * fan_in)
    assert sum(_kind(v) == "hardtanh" for v in layers.values()) == 16
    assert sum(_kind(v) == "bn" for v in layers.values()) == 21
    assert _trainable_count(model) == RESNET18_PARAMS
    out = model(tf.zeros((2, 32, 32, 3)))
    assert out.shape == (2, 10)


def test_authors_reactnet18_matches_spec():
    tf.keras.utils.set_random_seed(0)
    model = authors.authors_reactnet18()
    layers = _check(model, reactnet18_spec())
    binary = _binary(layers)
    assert len(binary) == 16
    assert sum(_kind(v) == "conv_float" for v in layers.values()) == 4
    for layer in binary:
        kq = layer.kernel_quantizer
        assert isinstance(kq, SbnnQuantizer) and kq.scale == "learned" and kq.clip_value == 1.5
        assert kq.tau.shape == () and float(kq.tau.numpy()) == 1.0 and float(kq.phi.numpy()) == 0.0
        w = layer.kernel.numpy()
        assert w.min() >= 0.0 and w.max() < 0.001  # rand * 0.001: every weight a connection
        assert layer.kernel_constraint.clip_value == 1.5
    for layer in layers.values():
        if isinstance(layer, zoo.RPReLU):
            np.testing.assert_array_equal(layer.alpha.numpy(), 0.25)  # nn.PReLU(planes)
    assert sparsity_report(model).total.connections == 1.0
    assert _trainable_count(model) == REACTNET18_PARAMS
    assert model(tf.zeros((2, 32, 32, 3))).shape == (2, 100)


def test_torch_maxpool_matches_numpy():
    x = np.random.default_rng(0).normal(-3.0, 1.0, (2, 8, 8, 3)).astype(np.float32)
    got = authors.TorchMaxPool2D(3, 2, 1)(x).numpy()
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=-np.inf)
    want = np.empty((2, 4, 4, 3), np.float32)
    for i in range(4):
        for j in range(4):
            want[:, i, j] = padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2))
    np.testing.assert_array_equal(got, want)


def test_epoch_cosine_matches_cosine_annealing():
    sched = authors.EpochCosineDecay(1e-3, epochs=10, steps_per_epoch=7)
    for step in (0, 6, 7, 30, 69):
        e = step // 7
        assert float(sched(step)) == pytest.approx(1e-3 * (1 + math.cos(math.pi * e / 10)) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="epochs"):
        authors.EpochCosineDecay(1e-3, 0, 7)


def test_recipes_are_the_authors():
    c10, c100 = authors.AUTHORS_RECIPES["cifar10"], authors.AUTHORS_RECIPES["cifar100"]
    assert (c10["epochs"], c10["batch_size"], c10["rotation_degrees"], c10["ede"]) == (500, 512, 0, True)
    assert (c100["epochs"], c100["batch_size"], c100["rotation_degrees"], c100["ede"]) == (300, 512, 15, False)
    assert c10["pairs"][2] == (0.05, 0.07) and c100["pairs"][0] == (0.05, 0.05)


def test_rotation_pipeline_rotates_and_fills_black():
    x = np.full((4, 32, 32, 3), 200, np.uint8)
    y = np.arange(4)
    ds = authors.train_dataset(x, y, 10, batch_size=4, rotation_degrees=15, mixup_alpha=0, seed=1)
    images, labels = next(iter(ds))
    images = images.numpy()
    assert set(np.unique(images)) <= {0.0, 200.0}  # nearest neighbour, black fill
    assert labels.shape == (4, 10)
    # a crop of the zero-padded image blackens at most two adjacent sides, so at
    # least one corner stays 200; a rotation blackens all four corners
    corners = images[:, [0, 0, -1, -1], [0, -1, 0, -1], 0]
    assert (corners == 0).all(axis=1).any()
    plain = authors.train_dataset(x, y, 10, batch_size=4, rotation_degrees=0, mixup_alpha=0, seed=1)
    plain_corners = next(iter(plain))[0].numpy()[:, [0, 0, -1, -1], [0, -1, 0, -1], 0]
    assert not (plain_corners == 0).all(axis=1).any()


def test_ede_schedule_moves_every_t_and_save_keeps_them(tmp_path):
    """The authors' ResNet has 32 EDE quantizers (16 EdeSign inputs, 16
    IrNetSbnnQuantizer kernels): every ``t`` is among the model's weights, ``fit``
    with EdeSchedule moves all 32, a traced function reads the moved value (its
    gradient is the NumPy EDE formula at that ``t``), and save/load keeps them."""
    model = authors.authors_resnet18(num_classes=3, width=2)
    assert len(sbnn_keras.sbnn_layers(model)) == 16
    ts = [w for w in model.weights if w.name.endswith("ede_t:0")]
    assert len(ts) == 32 and len({id(t) for t in ts}) == 32
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model.compile(tf.keras.optimizers.Adam(1e-3),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[zoo.EdeSchedule(4)])
    t_now = zoo.ede_t(1, 4)  # set at the start of the second epoch
    assert t_now != pytest.approx(zoo.EDE_T_MIN)
    np.testing.assert_allclose([float(t.numpy()) for t in ts], t_now, rtol=1e-6)

    v = tf.constant(np.linspace(-2.0, 2.0, 41), tf.float32)
    q_in = model.get_layer("s3b1c1_bconv").input_quantizer
    q_w = model.get_layer("s3b1c1_bconv").kernel_quantizer

    @tf.function
    def grads(v):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(v)
            a, b = tf.reduce_sum(q_in(v)), tf.reduce_sum(q_w(tf.reshape(v, (41, 1))))
        return tape.gradient(a, v), tape.gradient(b, v)

    def ede(t, tau=1.0):
        return tau * max(1.0 / t, 1.0) * t * (1.0 - np.tanh(t * v.numpy()) ** 2)

    for epoch in (1, 3):  # the same traced function follows the schedule
        schedule = zoo.EdeSchedule(4)
        schedule.set_model(model)
        schedule.on_epoch_begin(epoch)
        t = zoo.ede_t(epoch, 4)
        g_in, g_w = grads(v)
        np.testing.assert_allclose(g_in.numpy(), ede(t), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g_w.numpy(), ede(t, float(q_w.tau.numpy())), rtol=1e-4, atol=1e-5)

    path = tmp_path / "authors.keras"
    model.save(path)
    loaded = sbnn_keras.load_model(path)
    loaded_ts = [w for w in loaded.weights if w.name.endswith("ede_t:0")]
    assert len(loaded_ts) == 32
    np.testing.assert_allclose([float(t.numpy()) for t in loaded_ts], zoo.ede_t(3, 4), rtol=1e-6)
