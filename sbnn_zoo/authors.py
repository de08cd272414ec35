"""The SBNN authors' CIFAR networks and training recipes, as their public code has them.

Written from the authors' PyTorch code (the repository the paper links,
``CIFAR-10/resnet_learn.py``, ``ir_1w1a_learn.py``, ``binaryfunction.py``,
``main_learn.py``; ``CIFAR-100/birealnetBNN.py``, ``mainBNN.py``): the layer order,
activations, precisions, stems, pooling, initialisations, normalization constants,
augmentation, optimizer, schedule, EC/gamma pairs and the latent clamp. The
specification, layer by layer, with parameter counts, is in docs/examples.md
("The authors' networks"); ``tests/test_authors_nets.py`` checks the models against it.

``authors_resnet18`` (CIFAR-10, IR-Net's ResNet-18 with learned {alpha, beta})::

    normalize (mean 0.4914 0.4822 0.4465, std 0.2023 0.1994 0.2010)
    Conv2D(64, 3) float -> BN                       no activation      32x32
    4 stages x 2 BasicBlocks, 64/128/256/512 channels, stride 2 at the first
    block of stages 2-4; BasicBlock(x):
        y = HardTanh(BN(BinConv3x3(x, stride)))
        y = BN(BinConv3x3(y))
        y = HardTanh(y + shortcut(x))
        shortcut: identity, or float Conv2D(1x1, stride) -> BN
    AveragePooling2D(4) -> Flatten -> BatchNorm (1-d) -> Dense(10)

    BinConv3x3: activations sign(x) and weights tau * sign(w) + phi (one learned
    tau, phi per layer, starting at 1 and 0), both with IR-Net's EDE gradient
    k t (1 - tanh^2(t x)) on the *raw* values (no balancing, no standardization),
    t from 0.1 to 10 over the run (EdeSchedule); latent weights clamped to +-1.5.

``authors_reactnet18`` (CIFAR-100, ReActNet-18 = Bi-Real-Net-18 with RSign and
RPReLU, one training step, no teacher)::

    normalize (mean 0.5071 0.4867 0.4408, std 0.2675 0.2565 0.2761)
    Conv2D(64, 3) float -> BN -> MaxPool(3, stride 2, padding 1)      16x16
    4 stages x 4 blocks, 64/128/256/512 channels, stride 2 at the first block
    of stages 2-4; block(x):
        y = BN(BinConv3x3(sign(x + b0), stride))     b0: LearnableBias
        y = y + shortcut(x)
        y = LearnableBias -> PReLU (per channel, 0.25) -> LearnableBias
        shortcut: identity, or AvgPool(2) -> float Conv2D(1x1) -> BN
    GlobalAveragePooling -> Dense(100)

    BinConv3x3: weights tau * sign(w) + phi (learned per layer, 1 and 0) with the
    plain straight-through gradient; activations sign with Bi-Real's piecewise
    polynomial gradient (larq's approx_sign); latent weights start at
    uniform[0, 0.001) (all positive: every weight is a connection at the start)
    and are clamped to +-1.5.

Both: float convolutions and the classifier start as PyTorch's defaults (uniform
+-1/sqrt(fan_in) for weights and biases); BatchNorm epsilon 1e-5 and momentum 0.9
(PyTorch's 0.1); the networks output logits (the CIFAR-10 code's LogSoftmax
followed by CrossEntropyLoss is the same loss).

Known difference from the PyTorch code (forced by Keras/TFLite, not chosen):
a 3x3 convolution with stride 2 pads (0, 1) rows/columns in TensorFlow's "same"
(the only zero padding that larq, LCE and our converter lower to a binary op) where
PyTorch's ``padding=1`` pads (1, 1): on even-sized inputs the strided binary
convolutions (3 per network) sample windows shifted by one pixel. ``sign(0)`` is
+1 here (larq) and 0 in PyTorch, which only matters for inputs exactly 0.
The max-pool of the ReActNet stem is exact (explicit padding with the lowest float).
"""

from __future__ import annotations

import math as _pymath

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import layers as sbnn_layers  # noqa: E402
from sbnn_keras import quantizers as sbnn_quantizers  # noqa: E402
from sbnn_zoo import zoo  # noqa: E402

__all__ = [
    "AUTHORS_NORMALIZATION",
    "AUTHORS_RECIPES",
    "EpochCosineDecay",
    "TorchMaxPool2D",
    "authors_reactnet18",
    "authors_resnet18",
    "custom_objects",
    "torch_default_initializer",
    "train_dataset",
]

_PACKAGE = "sbnn_keras"

#: Normalization constants of the authors' data pipelines (0..1 scale). The
#: CIFAR-10 standard deviations are the widely copied (0.2023, 0.1994, 0.2010),
#: not the data set's (about 0.247, 0.243, 0.261).
AUTHORS_NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}

#: The authors' training recipes (their README commands and main scripts).
AUTHORS_RECIPES = {
    "cifar10": {
        "model": "authors_resnet18",
        "epochs": 500,
        "batch_size": 512,
        "optimizer": "Adam, lr 1e-3, no weight decay",
        "schedule": "cosine annealing stepped once per epoch (CosineAnnealingLR, T_max = epochs)",
        "augmentation": "random crop 32 with zero padding 4, horizontal flip, mixup alpha 1",
        "rotation_degrees": 0,
        "mixup": 1.0,
        "lambda_threshold": 1e-4,
        "latent_clamp": 1.5,
        "ede": True,
        "pairs": zoo.CIFAR10_PAIRS,
    },
    "cifar100": {
        "model": "authors_reactnet18",
        "epochs": 300,
        "batch_size": 512,
        "optimizer": "Adam, lr 1e-3, no weight decay",
        "schedule": "cosine annealing stepped once per epoch (CosineAnnealingLR, T_max = epochs)",
        "augmentation": "random crop 32 with zero padding 4, horizontal flip, "
        "random rotation +-15 degrees, mixup alpha 1",
        "rotation_degrees": 15,
        "mixup": 1.0,
        "lambda_threshold": 1e-4,
        "latent_clamp": 1.5,
        "ede": False,
        "pairs": zoo.CIFAR100_PAIRS,
    },
}

#: PyTorch's BatchNorm defaults in Keras terms.
BN_EPSILON, BN_MOMENTUM = 1e-5, 0.9


def _register(cls):
    cls = tf.keras.utils.register_keras_serializable(package=_PACKAGE)(cls)
    tf.keras.utils.get_custom_objects()[cls.__name__] = cls
    return cls


def torch_default_initializer():
    """PyTorch's default for ``Conv2d``/``Linear`` weights, ``kaiming_uniform(a=sqrt(5))``:
    uniform on +-1/sqrt(fan_in), i.e. Keras' ``VarianceScaling(1/3, "fan_in", "uniform")``."""
    return tf.keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_bias_initializer(fan_in: int):
    bound = 1.0 / _pymath.sqrt(fan_in)
    return tf.keras.initializers.RandomUniform(-bound, bound)


@_register
class TorchMaxPool2D(tf.keras.layers.Layer):
    """Max pooling with PyTorch's symmetric padding (``nn.MaxPool2d(k, s, padding=p)``).

    Pads ``padding`` rows and columns on every side with the lowest float (never
    the maximum), then pools with ``"valid"`` padding. Keras' ``"same"`` pads
    (0, 1) for a 3x3 window of stride 2 on an even input, a different window.
    """

    def __init__(self, pool_size: int = 3, strides: int = 2, padding: int = 1, **kwargs):
        super().__init__(**kwargs)
        for arg, value, low in (("pool_size", pool_size, 1), ("strides", strides, 1), ("padding", padding, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TorchMaxPool2D: `{arg}` must be an int >= {low}, got {value!r}.")
        self.pool_size, self.strides, self.padding = pool_size, strides, padding

    def call(self, inputs):
        p = self.padding
        x = inputs
        if p:
            x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=x.dtype.min)
        return tf.nn.max_pool2d(x, self.pool_size, self.strides, "VALID")

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        for i in (1, 2):
            if shape[i] is not None:
                shape[i] = (shape[i] + 2 * self.padding - self.pool_size) // self.strides + 1
        return tf.TensorShape(shape)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding}


@_register
class EpochCosineDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's ``CosineAnnealingLR(T_max=epochs)`` stepped once per epoch:
    ``lr(step) = lr0 * (1 + cos(pi * floor(step / steps_per_epoch) / epochs)) / 2``.

    Constant within an epoch (Keras' ``CosineDecay`` decays at every step).
    """

    def __init__(self, initial_learning_rate: float, epochs: int, steps_per_epoch: int):
        for arg, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"EpochCosineDecay: `{arg}` must be a positive int, got {value!r}.")
        if not initial_learning_rate > 0:
            raise ValueError(
                f"EpochCosineDecay: `initial_learning_rate` must be > 0, got {initial_learning_rate!r}."
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch

    def __call__(self, step):
        epoch = tf.math.floordiv(tf.cast(step, tf.float32), float(self.steps_per_epoch))
        return self.initial_learning_rate * 0.5 * (1.0 + tf.cos(_pymath.pi * epoch / self.epochs))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch}


def _normalization(dataset, input_shape):
    if dataset not in AUTHORS_NORMALIZATION:
        raise ValueError(
            f"`normalize` must be one of {sorted(AUTHORS_NORMALIZATION)} or None, got {dataset!r}."
        )
    mean, std = AUTHORS_NORMALIZATION[dataset]
    if input_shape[-1] != len(mean):
        raise ValueError(f"normalization of {dataset!r} needs 3 channels, got input_shape {input_shape}.")
    return tf.keras.layers.Normalization(
        mean=[255.0 * m for m in mean], variance=[(255.0 * s) ** 2 for s in std], name="normalize"
    )


def _widths(width):
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be a positive int, got {width!r}.")
    return (width, 2 * width, 4 * width, 8 * width)


def _bn(x, name):
    return tf.keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _float_conv(x, filters, kernel, strides, name):
    return tf.keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same" if kernel > 1 else "valid", use_bias=False,
        kernel_initializer=torch_default_initializer(), name=name,
    )(x)


def _classifier(x, num_classes):
    fan_in = int(x.shape[-1])
    return tf.keras.layers.Dense(
        num_classes, kernel_initializer=torch_default_initializer(),
        bias_initializer=_torch_bias_initializer(fan_in), name="classifier",
    )(x)


def authors_resnet18(
    num_classes: int = 10,
    width: int = 64,
    input_shape=(32, 32, 3),
    normalize: str | None = "cifar10",
    name: str = "authors_resnet18",
) -> tf.keras.Model:
    """The authors' CIFAR-10 network: IR-Net's ResNet-18 with learned {alpha, beta}.

    See the module docstring for the layer list. 16 binary 3x3 convolutions
    (``sbnn_keras.QuantConv2D`` with ``zoo.EdeSign`` inputs and
    ``zoo.IrNetSbnnQuantizer(scale="learned", standardize="none", clip_value=1.5)``
    kernels under ``WeightClip(1.5)``); float stem, 3 float 1x1 shortcut
    convolutions, float classifier. Train with ``zoo.EdeSchedule(epochs)``.

    Args:
        num_classes: outputs of the classifier (logits).
        width: channels of the first stage (64 in the authors' code).
        input_shape: image shape (raw 0..255 pixels when ``normalize`` is set).
        normalize: ``"cifar10"``/``"cifar100"`` (the authors' constants, inside the
            model) or ``None``.
        name: model name.

    Returns:
        An uncompiled, built ``tf.keras.Model``.
    """
    widths = _widths(width)

    def bconv(x, filters, strides, tag):
        return sbnn_layers.QuantConv2D(
            filters, 3, strides=strides, padding="same", use_bias=False,
            input_quantizer=zoo.EdeSign(),
            kernel_quantizer=zoo.IrNetSbnnQuantizer("learned", standardize="none", clip_value=1.5),
            kernel_constraint=lq.constraints.WeightClip(1.5),
            kernel_initializer=torch_default_initializer(), name=f"{tag}_bconv",
        )(x)

    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = _normalization(normalize, input_shape)(inputs) if normalize else inputs
    x = _bn(_float_conv(x, widths[0], 3, 1, "stem_conv"), "stem_bn")
    in_planes = widths[0]
    for s, planes in enumerate(widths):
        for b in range(2):
            stride = 2 if s > 0 and b == 0 else 1
            tag = f"s{s + 1}b{b + 1}"
            y = _bn(bconv(x, planes, stride, f"{tag}c1"), f"{tag}c1_bn")
            y = zoo.HardTanh(name=f"{tag}c1_htanh")(y)
            y = _bn(bconv(y, planes, 1, f"{tag}c2"), f"{tag}c2_bn")
            shortcut = x
            if stride != 1 or in_planes != planes:
                shortcut = _bn(_float_conv(x, planes, 1, stride, f"{tag}_short_conv"), f"{tag}_short_bn")
            x = tf.keras.layers.Add(name=f"{tag}_add")([y, shortcut])
            x = zoo.HardTanh(name=f"{tag}_htanh")(x)
            in_planes = planes
    x = tf.keras.layers.AveragePooling2D(4, name="avgpool")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    x = _bn(x, "head_bn")
    outputs = _classifier(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=name)


def authors_reactnet18(
    num_classes: int = 100,
    width: int = 64,
    input_shape=(32, 32, 3),
    normalize: str | None = "cifar100",
    name: str = "authors_reactnet18",
) -> tf.keras.Model:
    """The authors' CIFAR-100 network: ReActNet-18 with learned {alpha, beta}.

    See the module docstring for the layer list. 16 binary 3x3 convolutions
    (``sbnn_keras.QuantConv2D`` with ``approx_sign`` inputs after a
    ``zoo.LearnableBias`` and ``SbnnQuantizer("learned", clip_value=1.5)`` kernels
    starting at uniform[0, 0.001) under ``WeightClip(1.5)``); float stem with
    max-pool, 3 float 1x1 shortcut convolutions after 2x2 average pooling, float
    classifier.

    Args: as :func:`authors_resnet18` (``normalize`` default ``"cifar100"``).

    Returns:
        An uncompiled, built ``tf.keras.Model``.
    """
    widths = _widths(width)
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = _normalization(normalize, input_shape)(inputs) if normalize else inputs
    x = _bn(_float_conv(x, widths[0], 3, 1, "stem_conv"), "stem_bn")
    x = TorchMaxPool2D(3, 2, 1, name="stem_maxpool")(x)
    in_planes = widths[0]
    unit = 0
    for s, planes in enumerate(widths):
        for b in range(4):
            unit += 1
            tag = f"u{unit}"
            stride = 2 if s > 0 and b == 0 else 1
            y = zoo.LearnableBias(name=f"{tag}_move0")(x)
            y = sbnn_layers.QuantConv2D(
                planes, 3, strides=stride, padding="same", use_bias=False,
                input_quantizer="approx_sign",
                kernel_quantizer=sbnn_quantizers.SbnnQuantizer("learned", clip_value=1.5),
                kernel_constraint=lq.constraints.WeightClip(1.5),
                kernel_initializer=tf.keras.initializers.RandomUniform(0.0, 0.001),
                name=f"{tag}_bconv",
            )(y)
            y = _bn(y, f"{tag}_bn")
            shortcut = x
            if stride != 1 or in_planes != planes:
                shortcut = tf.keras.layers.AveragePooling2D(2, strides=stride, name=f"{tag}_short_pool")(x)
                shortcut = _bn(_float_conv(shortcut, planes, 1, 1, f"{tag}_short_conv"), f"{tag}_short_bn")
            y = tf.keras.layers.Add(name=f"{tag}_add")([y, shortcut])
            x = zoo.RPReLU(name=f"{tag}_rprelu")(y)
            in_planes = planes
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = _classifier(x, num_classes)
    return tf.keras.Model(inputs, outputs, name=name)


def train_dataset(
    x,
    y,
    num_classes: int,
    batch_size: int = 512,
    rotation_degrees: float = 0.0,
    mixup_alpha: float = 1.0,
    augment: bool = True,
    seed: int | None = None,
) -> tf.data.Dataset:
    """The authors' training pipeline: shuffle, random crop (zero padding 4),
    horizontal flip, random rotation (CIFAR-100: +-15 degrees, nearest neighbour,
    filled with 0 as torchvision's ``RandomRotation(15)``), batch, mixup.

    Images stay raw 0..255 floats (the models normalize them), so the rotation's
    fill is a black pixel, as torchvision's before ``Normalize``. Labels become
    one-hot (mixed by mixup).
    """
    if rotation_degrees < 0:
        raise ValueError(f"train_dataset: `rotation_degrees` must be >= 0, got {rotation_degrees!r}.")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(min(len(x), 50000), seed=seed, reshuffle_each_iteration=True)
    rotate = None
    if augment and rotation_degrees:
        rotate = tf.keras.layers.RandomRotation(
            rotation_degrees / 360.0, fill_mode="constant", interpolation="nearest", fill_value=0.0,
            seed=seed,
        )

    def prepare(image, label):
        image = tf.cast(image, tf.float32)
        if augment:
            image = zoo._augment(image)  # crop with zero padding 4, flip
            if rotate is not None:
                image = rotate(image, training=True)
        return image, tf.one_hot(label, num_classes)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if mixup_alpha:
        ds = ds.map(lambda a, b: zoo.mixup(a, b, mixup_alpha), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def custom_objects() -> dict:
    """This module's classes by name (for ``tf.keras.models.load_model``)."""
    return {cls.__name__: cls for cls in (TorchMaxPool2D, EpochCosineDecay)}
