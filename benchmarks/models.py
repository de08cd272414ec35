"""Benchmark architectures: binary ResNet-18 (32x32 CIFAR and 224x224 ImageNet layouts)
and a QuickNet-like 224x224 layout (``quicknet``).

One builder, four variants of the same layout, so that latencies are comparable:

* ``"binary"``: larq ``QuantConv2D`` 3x3 convs with ``ste_sign`` inputs and kernels
  (what LCE's converter and ``sbnn_keras.convert`` make ``LceBconv2d``), each followed by
  BatchNorm and added to a float shortcut (Bi-Real-Net style: one shortcut per binary
  conv, as in the binary ResNet-18s of the SBNN paper's CIFAR experiments).
* ``"sbnn"``: the same with ``sbnn_keras.QuantConv2D`` ({alpha, beta} kernels, learned
  per-layer tau and phi != 0) and latent weights with a given share of connections,
  for ``flavor="sparse"``.
* ``"float"``: plain ``Conv2D`` in place of the binary convs (for TFLite + XNNPACK).
* ``"skeleton"``: the binary branches removed (stem, float 1x1 downsampling
  shortcuts, pooling and classifier only): the latency of everything that is not a
  binary conv branch.

Layout (``stem="cifar"``, 32x32 input): 3x3 float conv 64 + BN; four stages of
64/128/256/512 channels with two basic blocks each (two binary 3x3 convs per block,
16 in all); the first conv of stages 2-4 has stride 2 and its shortcut is a float
1x1 conv with stride 2 + BN; global average pooling; float dense classifier.
``stem="imagenet"`` (224x224): 7x7/2 float conv 64 + BN + 3x3/2 max-pool, then the
same body (56, 28, 14, 7 pixels per stage) and 1000 classes.
"""

from __future__ import annotations

import sbnn_keras  # noqa: F401  (selects legacy Keras before TensorFlow)
import larq as lq
import numpy as np
import tensorflow as tf

__all__ = ["KINDS", "LAYOUTS", "build", "resnet18", "quicknet", "single_conv", "binary_convs", "randomize"]

KINDS = ("binary", "sbnn", "float", "skeleton")
STAGES = (64, 128, 256, 512)


def _conv3x3(kind, filters, strides, name, pad_values=0.0):
    if kind == "binary":
        return lq.layers.QuantConv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            use_bias=False,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            pad_values=pad_values,
            name=name,
        )
    if kind == "sbnn":
        return sbnn_keras.QuantConv2D(
            filters,
            3,
            strides=strides,
            padding="same",
            use_bias=False,
            kernel_quantizer="sbnn_learned",
            pad_values=pad_values,
            name=name,
        )
    if kind == "float":
        return tf.keras.layers.Conv2D(
            filters, 3, strides=strides, padding="same", use_bias=False, name=name
        )
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def resnet18(kind="binary", stem="cifar", num_classes=None, name=None) -> tf.keras.Model:
    """Binary ResNet-18 (module docstring) with weights from the initializers.

    Args:
        kind: ``"binary"``, ``"sbnn"``, ``"float"`` or ``"skeleton"``.
        stem: ``"cifar"`` (32x32x3 input) or ``"imagenet"`` (224x224x3).
        num_classes: default 10 (cifar) or 1000 (imagenet).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
    size = 32 if stem == "cifar" else 224
    num_classes = num_classes or (10 if stem == "cifar" else 1000)
    inp = tf.keras.Input((size, size, 3), name="image")
    if stem == "cifar":
        x = tf.keras.layers.Conv2D(64, 3, padding="same", use_bias=False, name="stem_conv")(inp)
        x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    else:
        x = tf.keras.layers.Conv2D(
            64, 7, strides=2, padding="same", use_bias=False, name="stem_conv"
        )(inp)
        x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
        x = tf.keras.layers.MaxPool2D(3, strides=2, padding="same", name="stem_pool")(x)
    for s, filters in enumerate(STAGES, start=1):
        for c in range(4):  # two basic blocks of two convs
            strides = 2 if s > 1 and c == 0 else 1
            tag = f"s{s}c{c + 1}"
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = tf.keras.layers.Conv2D(
                    filters, 1, strides=strides, use_bias=False, name=f"{tag}_down"
                )(x)
                shortcut = tf.keras.layers.BatchNormalization(name=f"{tag}_down_bn")(shortcut)
            if kind == "skeleton":
                x = shortcut
                continue
            y = _conv3x3(kind, filters, strides, f"{tag}_conv")(x)
            y = tf.keras.layers.BatchNormalization(name=f"{tag}_bn")(y)
            x = tf.keras.layers.Add(name=f"{tag}_add")([shortcut, y])
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    out = tf.keras.layers.Dense(num_classes, name="classifier")(x)
    return tf.keras.Model(inp, out, name=name or f"resnet18_{stem}_{kind}")


def quicknet(kind="binary", num_classes=1000, name=None) -> tf.keras.Model:
    """QuickNet-like layout for 224x224 inputs (larq-zoo's ``QuickNet``, the model LCE
    was tuned on), with weights from the initializers.

    Stem: 3x3/2 float conv to 8 channels, 3x3/2 depthwise conv with depth multiplier 8
    (64 channels at 56x56) + BN. Four sections of 64/128/256/512 channels with four
    residual blocks each (binary 3x3 conv with pad value 1, ReLU, BN, added to the block
    input); sections 2-4 start with a transition: ReLU, 3x3/1 max-pool, fixed 3x3/2
    depthwise blur, float 1x1 conv + BN. ReLU, global average pooling, dense classifier.
    ``kind="skeleton"`` keeps everything but the binary residual branches.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    layers = tf.keras.layers
    inp = tf.keras.Input((224, 224, 3), name="image")
    x = layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = layers.DepthwiseConv2D(
        3, depth_multiplier=8, strides=2, padding="same", use_bias=False, name="stem_dw"
    )(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    for s, filters in enumerate(STAGES, start=1):
        if s > 1:
            x = layers.Activation("relu", name=f"t{s}_relu")(x)
            x = layers.MaxPool2D(3, strides=1, padding="same", name=f"t{s}_pool")(x)
            x = layers.DepthwiseConv2D(
                3, strides=2, padding="same", use_bias=False, name=f"t{s}_blur"
            )(x)
            x = layers.Conv2D(filters, 1, use_bias=False, name=f"t{s}_down")(x)
            x = layers.BatchNormalization(name=f"t{s}_down_bn")(x)
        for b in range(4):
            if kind == "skeleton":
                continue
            tag = f"s{s}b{b + 1}"
            if kind in ("binary", "sbnn"):
                conv = _conv3x3(kind, filters, 1, f"{tag}_conv", pad_values=1.0)
            else:
                conv = _conv3x3(kind, filters, 1, f"{tag}_conv")
            y = conv(x)
            y = layers.Activation("relu", name=f"{tag}_relu")(y)
            y = layers.BatchNormalization(name=f"{tag}_bn")(y)
            x = layers.Add(name=f"{tag}_add")([x, y])
    x = layers.Activation("relu", name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(num_classes, name="classifier")(x)
    return tf.keras.Model(inp, out, name=name or f"quicknet_{kind}")


LAYOUTS = {
    "cifar": ((32, 32, 3), lambda kind: resnet18(kind, "cifar")),
    "imagenet": ((224, 224, 3), lambda kind: resnet18(kind, "imagenet")),
    "quicknet": ((224, 224, 3), quicknet),
}


def build(kind, layout) -> tf.keras.Model:
    """The benchmark model ``layout`` (a key of ``LAYOUTS``) in variant ``kind``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    return LAYOUTS[layout][1](kind)


def single_conv(kind, in_size, in_channels, out_channels, strides=1) -> tf.keras.Model:
    """One 3x3 conv (binary: ``LceQuantize`` + ``LceBconv2d`` with float output) on a
    float input, for per-layer timings."""
    inp = tf.keras.Input((in_size, in_size, in_channels))
    out = _conv3x3(kind, out_channels, strides, "conv")(inp)
    return tf.keras.Model(
        inp, out, name=f"conv_{kind}_{in_size}x{in_channels}_{out_channels}_s{strides}"
    )


def binary_convs(model) -> list:
    """(name, in_h, in_w, in_channels, out_h, out_w, out_channels, kernel, stride, MACs)
    of the 3x3 convs of the body (binary or their float stand-ins)."""
    rows = []
    for layer in model.layers:
        if (
            isinstance(layer, tf.keras.layers.Conv2D)
            and not isinstance(layer, tf.keras.layers.DepthwiseConv2D)
            and layer.kernel_size == (3, 3)
            and "stem" not in layer.name
        ):
            _, h, w, cin = layer.input_shape
            _, oh, ow, cout = layer.output_shape
            macs = oh * ow * cout * 9 * cin
            rows.append((layer.name, h, w, cin, oh, ow, cout, 3, layer.strides[0], macs))
    return rows


def randomize(model, seed=0, connections=0.5):
    """Random weights with outputs of order 1 (BN statistics matched to each layer's
    fan-in); binary latent weights with the given share of +1 (connections)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n).astype(np.float32),
                    rng.normal(0, 0.1, n).astype(np.float32),
                    rng.normal(0, 1, n).astype(np.float32),
                    rng.uniform(0.5, 2, n).astype(np.float32),
                ]
            )
        elif isinstance(layer, lq.layers.QuantConv2D):
            kernel = layer.kernel
            latent = getattr(kernel, "latent_variable", kernel)
            signs = np.where(rng.uniform(size=latent.shape) < connections, 1.0, -1.0)
            latent.assign((signs * rng.uniform(0.05, 1.0, latent.shape)).astype(np.float32))
            kq = layer.kernel_quantizer
            if isinstance(kq, sbnn_keras.SbnnQuantizer) and kq.scale == "learned":
                kq.tau.assign(np.full(kq.tau.shape, rng.uniform(0.5, 1.5), np.float32))
                kq.phi.assign(np.full(kq.phi.shape, rng.uniform(-0.5, 0.5), np.float32))
        elif isinstance(layer, tf.keras.layers.DepthwiseConv2D):
            shape = layer.depthwise_kernel.shape
            if layer.name.endswith("_blur"):  # fixed anti-aliasing blur
                k = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
                kernel = np.broadcast_to(k[:, :, None, None], shape)
            else:
                fan_in = int(shape[0] * shape[1])
                kernel = rng.normal(0, 1 / np.sqrt(fan_in), shape)
            layer.depthwise_kernel.assign(kernel.astype(np.float32))
        elif isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense)):
            weights = layer.get_weights()
            fan_in = int(np.prod(weights[0].shape[:-1]))
            weights[0] = rng.normal(0, 1 / np.sqrt(fan_in), weights[0].shape).astype(np.float32)
            layer.set_weights(weights)
    return model
