"""Small demo networks: a binary CNN for 28x28x1 images (Fashion-MNIST, MNIST).

The layout follows the SBNN authors' practice: the first convolution (stem) and
the classifier stay full precision; every convolution in between is binary
(``ste_sign`` inputs, binary kernels) and followed by BatchNorm, which absorbs
the overall scale of the kernels. Pooling comes before the BatchNorm, as larq's
examples do, so the max is taken on the raw popcount-like outputs.

``fashion_mnist_cnn(kernel_quantizer=...)`` builds the same architecture for every
weight domain, so accuracies are comparable:

- ``"sbnn_learned"`` (default): SBNN, learned {alpha, beta} (paper's best).
- ``"sbnn"``: SBNN, closed-form {alpha, beta} (paper eq. 15).
- ``"sbnn_symmetric"``: {-beta, +beta} with beta = mean|w| (XNOR-Net).
- ``"ste_sign"``: the plain larq BNN, weights in {-1, +1} (see :func:`fashion_mnist_bnn`).
"""

from __future__ import annotations

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import layers as sbnn_layers  # noqa: E402

__all__ = ["fashion_mnist_cnn", "fashion_mnist_bnn", "fashion_mnist_resnet", "DEFAULT_FILTERS", "ARCHITECTURES", "build"]

#: (filters, pool after this block) of the binary blocks.
DEFAULT_FILTERS = ((64, False), (64, True), (128, False), (128, True))


def _fresh(q):
    """A quantizer for one layer: strings are resolved per layer by larq; objects must
    not be shared between layers (learned scales are per layer), so each gets a copy."""
    if isinstance(q, str) or q is None:
        return q
    return q.__class__.from_config(q.get_config())


def _image_input(input_shape, rescale: bool):
    """``(inputs, x)``: the ``image`` input and, with ``rescale``, uint8 values mapped to
    [-1, 1]."""
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = inputs
    if rescale:
        x = tf.keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(x)
    return inputs, x


def fashion_mnist_cnn(
    kernel_quantizer="sbnn_learned",
    input_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    blocks=DEFAULT_FILTERS,
    stem_filters: int = 32,
    num_classes: int = 10,
    input_shape=(28, 28, 1),
    rescale: bool = True,
    bn_momentum: float = 0.9,
    dropout: float = 0.0,
    name: str | None = None,
) -> tf.keras.Model:
    """A small binary CNN for 28x28x1 inputs.

    Layout::

        [Rescaling uint8 0..255 -> -1..1]
        Conv2D(stem_filters, 3) float -> BatchNorm -> MaxPool 2      (28 -> 14)
        for filters, pool in blocks:
            QuantConv2D(filters, 3, binary inputs and kernels) [-> MaxPool 2] -> BatchNorm
        GlobalAveragePooling -> [Dropout] -> Dense(num_classes) float -> softmax

    Args:
        kernel_quantizer: the binary layers' kernel quantizer (name or object);
            an ``SbnnQuantizer`` makes them SBNN layers (seen by
            ``SparsityRegularizer`` and ``sparsity_report``). A string is resolved
            afresh for every layer (each layer gets its own learned scales).
        input_quantizer: activation quantizer of the binary layers.
        kernel_constraint: constraint on the latent kernels (``"weight_clip"``:
            [-1, 1]; the authors clamp to +-1.5, ``lq.constraints.WeightClip(1.5)``).
        blocks: sequence of ``(filters, pool)`` for the binary convolutions.
        stem_filters: filters of the full-precision first convolution.
        num_classes: output classes.
        input_shape: input image shape.
        rescale: include a ``Rescaling`` layer so the model takes raw uint8 pixels.
        bn_momentum: BatchNorm momentum (0.9 adapts faster in short runs).
        dropout: dropout rate before the classifier.
        name: model name (default derived from the quantizer).

    Returns:
        An uncompiled ``tf.keras.Model`` (built).
    """
    if isinstance(kernel_quantizer, str):
        q_name = kernel_quantizer
    else:
        q_name = type(kernel_quantizer).__name__
    if name is None:
        name = f"fmnist_cnn_{q_name}".replace(" ", "_")

    inputs, x = _image_input(input_shape, rescale)
    x = tf.keras.layers.Conv2D(stem_filters, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = tf.keras.layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = tf.keras.layers.MaxPool2D(2, name="stem_pool")(x)
    for i, (filters, pool) in enumerate(blocks, start=1):
        x = sbnn_layers.QuantConv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            input_quantizer=input_quantizer,
            kernel_quantizer=_fresh(kernel_quantizer),
            kernel_constraint=kernel_constraint,
            name=f"bconv{i}",
        )(x)
        if pool:
            x = tf.keras.layers.MaxPool2D(2, name=f"pool{i}")(x)
        x = tf.keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = tf.keras.layers.Dropout(dropout, name="dropout")(x)
    x = tf.keras.layers.Dense(num_classes, name="classifier")(x)
    outputs = tf.keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def fashion_mnist_resnet(
    kernel_quantizer="sbnn_learned",
    input_quantizer="ste_sign",
    kernel_constraint="weight_clip",
    stages=((64, 2), (128, 2)),
    num_classes: int = 10,
    input_shape=(28, 28, 1),
    rescale: bool = True,
    bn_momentum: float = 0.9,
    name: str | None = None,
) -> tf.keras.Model:
    """A small binary ResNet (Bi-Real-Net style shortcuts) for 28x28x1 inputs.

    Closer to the paper's binarized ResNet-18 than :func:`fashion_mnist_cnn`: every
    binary 3x3 convolution has a shortcut around it, so information that a
    convolution loses (e.g. when a sparse {-beta, +beta} kernel is dominated by
    its all-(-beta) part) still flows on. Layout::

        Conv2D(stages[0][0], 3) float -> BatchNorm -> MaxPool 2          (28 -> 14)
        for stage s, (filters, n) in stages:
            n x [ x = x + BatchNorm(QuantConv2D(filters, 3)(x)) ]
            (first block of later stages: stride 2; shortcut AvgPool 2 ->
             float 1x1 Conv -> BatchNorm, excluded from sparsification as the
             authors exclude 1x1 shortcut convolutions)
        GlobalAveragePooling -> Dense(num_classes) float -> softmax

    Args: as :func:`fashion_mnist_cnn`; ``stages`` is ``((filters, blocks), ...)``.
    """
    if name is None:
        q_name = kernel_quantizer if isinstance(kernel_quantizer, str) else type(kernel_quantizer).__name__
        name = f"fmnist_resnet_{q_name}"

    inputs, x = _image_input(input_shape, rescale)
    x = tf.keras.layers.Conv2D(stages[0][0], 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = tf.keras.layers.BatchNormalization(momentum=bn_momentum, name="stem_bn")(x)
    x = tf.keras.layers.MaxPool2D(2, name="stem_pool")(x)
    k = 0
    for s, (filters, n_blocks) in enumerate(stages):
        for b in range(n_blocks):
            k += 1
            down = s > 0 and b == 0
            shortcut = x
            if down or x.shape[-1] != filters:
                if down:
                    shortcut = tf.keras.layers.AveragePooling2D(2, name=f"short{k}_pool")(shortcut)
                shortcut = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"short{k}_conv")(shortcut)
                shortcut = tf.keras.layers.BatchNormalization(momentum=bn_momentum, name=f"short{k}_bn")(shortcut)
            y = sbnn_layers.QuantConv2D(
                filters,
                3,
                strides=2 if down else 1,
                padding="same",
                use_bias=False,
                input_quantizer=input_quantizer,
                kernel_quantizer=_fresh(kernel_quantizer),
                kernel_constraint=kernel_constraint,
                name=f"bconv{k}",
            )(x)
            y = tf.keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{k}")(y)
            x = tf.keras.layers.Add(name=f"add{k}")([y, shortcut])
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = tf.keras.layers.Dense(num_classes, name="classifier")(x)
    outputs = tf.keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)
    return tf.keras.Model(inputs, outputs, name=name)


#: Architectures by name (``build(arch, **kwargs)``).
ARCHITECTURES = {"cnn": fashion_mnist_cnn, "resnet": fashion_mnist_resnet}


def build(arch: str = "cnn", **kwargs) -> tf.keras.Model:
    """Build one of :data:`ARCHITECTURES` (``"cnn"`` is the demo network)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"build: `arch` must be one of {sorted(ARCHITECTURES)}, got {arch!r}.")
    return ARCHITECTURES[arch](**kwargs)


def fashion_mnist_bnn(**kwargs) -> tf.keras.Model:
    """The plain larq BNN baseline: same network, kernels ``ste_sign`` in {-1, +1}."""
    kwargs.setdefault("name", "fmnist_cnn_bnn")
    return fashion_mnist_cnn(kernel_quantizer="ste_sign", **kwargs)


# Keep lq referenced for users who read this module as an example.
_ = lq
