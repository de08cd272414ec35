"""Model zoo of the reproduction examples: binarized ResNet-18 (IR-Net style) and
ReActNet-18 for 32x32 images, with SBNN {alpha, beta} kernels, plus their building
blocks and the CIFAR input pipeline of the SBNN authors' recipe.

Both networks keep the stem convolution, the classifier and the 1x1 shortcut
convolutions in float (the SBNN authors exclude them from binarization and from the
sparsity constraint); every 3x3 convolution in between is a binary
``sbnn_keras.QuantConv2D`` with learned {alpha, beta} kernels, seen by
``SparsityRegularizer``, ``sparsity_report`` and ``convert``.

Building blocks (all serializable, all convertible with ``sbnn_keras.convert``):

=========================== =========================================================
``EdeSign``                 IR-Net's activation binarization: ``sign`` forward, the
                            Error Decay Estimator (EDE) backward,
                            ``k t (1 - tanh^2(t x))`` with ``t`` from 0.1 to 10
``IrNetSbnnQuantizer``      SBNN kernel quantizer (learned tau, phi) whose backward
                            pass is IR-Net's EDE, its window measured in units of
                            the per-channel standard deviation
``EdeSchedule``             callback that moves ``t`` (and ``k = max(1/t, 1)``)
                            along IR-Net's schedule, once per epoch
``HardTanh``                ``clip(x, -1, 1)``, IR-Net's activation after each add
``LearnableBias``           per-channel shift: ReActNet's RSign is
                            ``LearnableBias -> sign`` (the sign is the conv's
                            ``input_quantizer``)
``RPReLU``                  ReActNet's shifted PReLU: ``PReLU(x - gamma) + zeta``
=========================== =========================================================

IR-Net simplification (forced by SBNN, not by larq): IR-Net's Libra-PB *balances*
the weights (subtracts the per-channel mean) before the sign, which pins every
channel at about 50% positive weights, exactly what the SBNN regularizer has to move,
and would make the stored binary code differ from ``sign(latent weight)`` that
``SparsityRegularizer``, ``sparsity_report`` and ``convert`` read. So
``IrNetSbnnQuantizer`` keeps IR-Net's *standardization* (the per-channel standard
deviation, which does not change any sign) to place the EDE's window, drops the
mean subtraction, and replaces IR-Net's power-of-two scale by the SBNN domain
``tau * sign(w) + phi`` with learned ``tau`` and ``phi``. By default the division
by the standard deviation does not enter the gradient's size (see
``IrNetSbnnQuantizer(standardize=...)``): with it, the regularizer could not move
the connections.

Data: :func:`load_cifar` (tensorflow-datasets), :func:`train_dataset` (random crop
with 4-pixel zero padding, horizontal flip, mixup) and :func:`eval_dataset`; the
models normalize their uint8-range float inputs themselves, so converted models take
raw pixels.
"""

from __future__ import annotations

import math as _pymath

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import layers as sbnn_layers  # noqa: E402
from sbnn_keras.regularizer import register_custom_objects  # noqa: E402
from sbnn_keras.export.convert import declare_quantizer  # noqa: E402
from sbnn_keras import quantizers as sbnn_quantizers  # noqa: E402

__all__ = [
    "CIFAR10_PAIRS",
    "CIFAR100_PAIRS",
    "CIFAR_STATS",
    "EdeSchedule",
    "EdeSign",
    "HardTanh",
    "IrNetSbnnQuantizer",
    "LearnableBias",
    "RPReLU",
    "custom_objects",
    "ede_sign",
    "ede_t",
    "eval_dataset",
    "exclude_tf_keras_from_autograph",
    "irnet_resnet18",
    "load_cifar",
    "mixup",
    "reactnet18",
    "select_pair",
    "train_dataset",
]

_PACKAGE = "sbnn_keras"

#: (EC, gamma) pairs of the SBNN authors' code, CIFAR-10 / binarized ResNet-18.
CIFAR10_PAIRS = (
    (0.25, 0.02),
    (0.10, 0.04),
    (0.05, 0.07),
    (0.04, 0.07),
    (0.03, 0.08),
    (0.02, 0.08),
    (0.01, 0.10),
)
#: (EC, gamma) pairs of the SBNN authors' code, CIFAR-100 / ReActNet-18.
CIFAR100_PAIRS = ((0.05, 0.05), (0.04, 0.05), (0.03, 0.05), (0.02, 0.06), (0.01, 0.07))

#: Per-channel mean and standard deviation of the training images (0..1 scale).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

#: IR-Net's EDE schedule bounds.
EDE_T_MIN, EDE_T_MAX = 0.1, 10.0


#: kept for existing callers; applied by ``import sbnn_keras`` (see sbnn_keras._compat)
exclude_tf_keras_from_autograph = _compat.exclude_tf_keras_from_autograph


def _register(cls):
    cls = tf.keras.utils.register_keras_serializable(package=_PACKAGE)(cls)
    tf.keras.utils.get_custom_objects()[cls.__name__] = cls
    return cls


def select_pair(pairs, ec=None, pair=None, gamma=None):
    """The ``(EC, gamma)`` to train with, from a table of the authors' pairs.

    Args:
        pairs: the table (``CIFAR10_PAIRS`` or ``CIFAR100_PAIRS``).
        ec: pick the pair with this EC (``gamma`` from the table unless given);
            an EC not in the table needs ``gamma``.
        pair: pick the pair at this index (default 2 for CIFAR-10, i.e. (0.05, 0.07),
            and 0 for CIFAR-100, when neither ``ec`` nor ``pair`` is given).
        gamma: override the table's gamma.

    Returns:
        ``(ec, gamma)`` as floats.

    Raises:
        ValueError: both ``ec`` and ``pair``, an index out of range, or an EC not in
            the table without ``gamma``.
    """
    if ec is not None and pair is not None:
        raise ValueError(f"select_pair: give `ec` ({ec!r}) or `pair` ({pair!r}), not both.")
    if ec is None:
        if pair is None:
            pair = 2 if pairs is CIFAR10_PAIRS else 0
        if not 0 <= pair < len(pairs):
            raise ValueError(f"select_pair: `pair` must be in 0..{len(pairs) - 1}, got {pair!r}.")
        ec_value, gamma_value = pairs[pair]
    else:
        matches = [g for e, g in pairs if abs(e - ec) < 1e-9]
        if not matches and gamma is None:
            raise ValueError(
                f"select_pair: EC {ec!r} is not one of the authors' pairs "
                f"{[e for e, _ in pairs]}; give gamma too (e.g. --gamma 0.05)."
            )
        ec_value, gamma_value = float(ec), (matches[0] if matches else None)
    if gamma is not None:
        gamma_value = gamma
    return float(ec_value), float(gamma_value)


# --------------------------------------------------------------------- IR-Net's EDE
def ede_t(epoch: int, epochs: int, t_min: float = EDE_T_MIN, t_max: float = EDE_T_MAX) -> float:
    """IR-Net's EDE parameter at the start of ``epoch`` (0-based) of ``epochs``:
    ``t = t_min * 10 ** (epoch / epochs * log10(t_max / t_min))``."""
    if epochs <= 0:
        raise ValueError(f"ede_t: `epochs` must be positive, got {epochs!r}.")
    return float(t_min * 10 ** (epoch / epochs * _pymath.log10(t_max / t_min)))


def ede_sign(x, t, scale=None):
    """``sign(x)`` (larq convention, ``sign(0) = +1``) with IR-Net's EDE gradient.

    Backward: ``dx = dy * k * t * (1 - tanh(t x / scale)^2)`` with
    ``k = max(1/t, 1)``: at small ``t`` nearly the identity (everything learns), at
    large ``t`` close to the derivative of ``sign``. ``scale`` (default 1, broadcast
    against ``x``) measures ``x`` in other units for the window only, without the
    ``1/scale`` gain a division before the call would add. ``t`` and ``scale`` get
    no gradient.
    """
    x = tf.convert_to_tensor(x)
    t = tf.cast(tf.convert_to_tensor(t), x.dtype)
    scale = tf.ones([], x.dtype) if scale is None else tf.cast(scale, x.dtype)

    @tf.custom_gradient
    def _call(x, t, scale):
        def grad(dy):
            k = tf.maximum(1.0 / t, 1.0)
            gx = dy * k * t * (1.0 - tf.square(tf.tanh(t * x / scale)))
            return gx, tf.zeros_like(t), tf.zeros_like(scale)

        return lq.math.sign(x), grad

    return _call(x, t, scale)


def _t_weight(layer, t_min):
    return layer.add_weight(
        name="ede_t",
        shape=(),
        initializer=tf.keras.initializers.Constant(t_min),
        trainable=False,
    )


@_register
@declare_quantizer
class EdeSign(lq.quantizers.SteSign):
    r"""IR-Net's activation quantizer: ``sign`` forward, EDE backward.

    A subclass of larq's ``SteSign`` (same forward, ``sign(0) = +1``), declared so
    with ``sbnn_keras.declare_quantizer``: ``sbnn_keras.convert`` treats it as a
    {-1, +1} input. Its ``t`` is a
    non-trainable variable moved by :class:`EdeSchedule`.

    Args:
        t_min: starting value of ``t`` (IR-Net: 0.1).
        t_max: final value of ``t`` (IR-Net: 10).

    Example:
        >>> import sbnn_keras
        >>> from sbnn_zoo.zoo import EdeSign
        >>> layer = sbnn_keras.QuantConv2D(8, 3, input_quantizer=EdeSign())
    """

    def __init__(self, t_min: float = EDE_T_MIN, t_max: float = EDE_T_MAX, **kwargs):
        kwargs.pop("clip_value", None)
        if not (0 < t_min <= t_max):
            raise ValueError(
                f"EdeSign: need 0 < t_min <= t_max, got t_min={t_min!r}, t_max={t_max!r}."
            )
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        super().__init__(clip_value=None, **kwargs)

    def build(self, input_shape):
        self.t = _t_weight(self, self.t_min)
        super().build(input_shape)

    def call(self, inputs):
        return ede_sign(inputs, self.t)

    @property
    def non_trainable_weights(self):
        # larq's SteSign reports no non-trainable weights (it hides the state of its
        # flip-ratio metric); ``t`` is schedule state that ``model.weights``,
        # ``save`` and ``load_model`` must carry, as IrNetSbnnQuantizer's ``t`` is.
        t = getattr(self, "t", None)
        return [t] if t is not None else []

    def get_config(self):
        config = super().get_config()
        config.pop("clip_value", None)
        return {**config, "t_min": self.t_min, "t_max": self.t_max}


@_register
@declare_quantizer
class IrNetSbnnQuantizer(sbnn_quantizers.SbnnQuantizer):
    r"""SBNN kernel quantizer with IR-Net's backward pass.

    Forward: ``tau * sign(w) + phi`` (learned ``tau``, ``phi`` by default), exactly
    :class:`sbnn_keras.SbnnQuantizer` (declared with ``sbnn_keras.declare_quantizer``,
    so ``sbnn_keras.convert`` lowers it as that). Backward: the EDE of :func:`ede_sign` on the
    weights measured in units of their per-output-channel standard deviation
    (IR-Net's standardization). The mean is not subtracted (see the module
    docstring): the binary code stays ``sign(w)``.

    ``standardize`` says how:

    * ``"window"`` (default): the EDE's window is ``t * w / std(w)``, but the
      gradient keeps the size of the STE's (``std`` is a constant of the step).
    * ``"full"``: IR-Net's literal ``EDE(w / std(w))`` with the gradient through the
      division and through ``std``. Its ``1/std`` gain (about 10 at initialisation)
      makes the task gradient outweigh the sparsity term's uniform push: in a test
      run (ResNet-18 of width 8, 64 Adam steps at gamma 0.5 on random data) the
      connections stayed at 50.0%, while ``"window"`` and ``"none"`` moved them to
      49.4%, about as plain SBNN layers with ``ste_sign`` (49.1%).
    * ``"none"``: the EDE on the raw latent weights.

    ``clip_value`` (default 1.5, the authors' latent clamp) is only used by
    ``SparsityRegularizer``, which counts connections through larq's STE.

    Args:
        scale: ``"learned"`` (default), ``"closed_form"`` or ``"symmetric"``.
        t_min, t_max: the EDE schedule's bounds (moved by :class:`EdeSchedule`).
        standardize: ``"window"``, ``"full"`` or ``"none"`` (above).
        **kwargs: as :class:`sbnn_keras.SbnnQuantizer`.

    Raises:
        ValueError: bad ``t_min``/``t_max`` or ``standardize``.
    """

    STANDARDIZE = ("window", "full", "none")

    def __init__(
        self,
        scale: str = "learned",
        t_min: float = EDE_T_MIN,
        t_max: float = EDE_T_MAX,
        standardize: str = "window",
        clip_value: float | None = 1.5,
        **kwargs,
    ):
        if not (0 < t_min <= t_max):
            raise ValueError(
                "IrNetSbnnQuantizer: need 0 < t_min <= t_max, "
                f"got t_min={t_min!r}, t_max={t_max!r}."
            )
        self.t_min = float(t_min)
        self.t_max = float(t_max)
        if standardize not in self.STANDARDIZE:
            raise ValueError(
                f"IrNetSbnnQuantizer: `standardize` must be one of {self.STANDARDIZE}, "
                f"got {standardize!r}."
            )
        self.standardize = standardize
        super().__init__(scale=scale, clip_value=clip_value, **kwargs)

    def build(self, input_shape):
        self.t = _t_weight(self, self.t_min)
        super().build(input_shape)

    def call(self, inputs):
        tau, phi = self._scales(inputs)
        w = inputs
        if self.standardize == "none":
            return tau * ede_sign(w, self.t) + phi
        axes = list(range(w.shape.rank - 1))
        _, var = tf.nn.moments(w, axes=axes, keepdims=True)
        std = tf.sqrt(var + 1e-12)
        if self.standardize == "full":
            return tau * ede_sign(w / std, self.t) + phi
        return tau * ede_sign(w, self.t, tf.stop_gradient(std)) + phi

    def get_config(self):
        return {
            **super().get_config(),
            "t_min": self.t_min,
            "t_max": self.t_max,
            "standardize": self.standardize,
        }


class EdeSchedule(tf.keras.callbacks.Callback):
    """Sets ``t`` of every :class:`EdeSign` / :class:`IrNetSbnnQuantizer` of the
    model at the start of each epoch, following IR-Net (:func:`ede_t`).

    Args:
        epochs: the total number of epochs of the schedule.
        verbose: print ``t`` at every epoch.
    """

    def __init__(self, epochs: int, verbose: bool = False):
        super().__init__()
        if not isinstance(epochs, int) or epochs <= 0:
            raise ValueError(f"EdeSchedule: `epochs` must be a positive int, got {epochs!r}.")
        self.epochs = epochs
        self.verbose = verbose
        self.t = None

    @staticmethod
    def quantizers(model) -> list:
        """Every EDE quantizer of ``model`` (inputs and kernels)."""
        found = []
        for layer in model._flatten_layers(include_self=True, recursive=True):
            for attr in ("input_quantizer", "kernel_quantizer"):
                q = getattr(layer, attr, None)
                if isinstance(q, (EdeSign, IrNetSbnnQuantizer)) and getattr(q, "built", False):
                    found.append(q)
        return found

    def on_epoch_begin(self, epoch, logs=None):
        for q in self.quantizers(self.model):
            value = ede_t(epoch, self.epochs, q.t_min, q.t_max)
            q.t.assign(value)
            self.t = value
        if self.verbose and self.t is not None:
            print(f"EDE: epoch {epoch + 1}, t = {self.t:.4g}, k = {max(1 / self.t, 1):.4g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.t is not None:
            logs["ede_t"] = float(self.t)


# ------------------------------------------------------------------- small layers
@_register
class HardTanh(tf.keras.layers.Layer):
    """``clip(x, -1, 1)`` (IR-Net's activation after each residual add)."""

    def call(self, inputs):
        return tf.clip_by_value(inputs, -1.0, 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape


@_register
class LearnableBias(tf.keras.layers.Layer):
    """``x + b`` with one trainable ``b`` per channel (last axis), initialised to 0.

    Before a binary convolution whose ``input_quantizer`` is a sign, it makes
    ReActNet's RSign, ``sign(x + b)`` (a learned threshold per channel).
    """

    def build(self, input_shape):
        self.bias = self.add_weight(
            name="bias", shape=(int(input_shape[-1]),), initializer="zeros", trainable=True
        )
        super().build(input_shape)

    def call(self, inputs):
        return inputs + tf.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


@_register
class RPReLU(tf.keras.layers.Layer):
    r"""ReActNet's RPReLU: ``PReLU(x - gamma) + zeta`` with per-channel ``gamma``,
    ``zeta`` (zeros) and slopes (``alpha_initializer``, default 0.25).

    Written as ``relu(y) + (-alpha) * relu(-y)``, the form of Keras' ``PReLU`` that
    the TFLite converter fuses into one ``PRELU`` op.
    """

    def __init__(self, alpha_initializer=0.25, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = float(alpha_initializer)

    def build(self, input_shape):
        c = int(input_shape[-1])
        self.shift_in = self.add_weight(name="shift_in", shape=(c,), initializer="zeros")
        # alpha shaped (1, 1, C) like PReLU(shared_axes=[1, 2]): the converter fuses
        # the PReLU pattern only with a slope of the input's rank minus one
        alpha_shape = (1,) * max(len(input_shape) - 2, 0) + (c,)
        self.alpha = self.add_weight(
            name="alpha",
            shape=alpha_shape,
            initializer=tf.keras.initializers.Constant(self.alpha_initializer),
        )
        self.shift_out = self.add_weight(name="shift_out", shape=(c,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        y = inputs + tf.cast(self.shift_in, inputs.dtype)
        y = tf.nn.relu(y) + (-self.alpha) * tf.nn.relu(-y)
        return y + tf.cast(self.shift_out, y.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": self.alpha_initializer}


def custom_objects() -> dict:
    """The zoo's classes by name (for ``tf.keras.models.load_model``)."""
    return {
        cls.__name__: cls for cls in (EdeSign, IrNetSbnnQuantizer, HardTanh, LearnableBias, RPReLU)
    }


register_custom_objects(custom_objects())


# ------------------------------------------------------------------------- models
def _normalization(dataset, input_shape):
    mean, std = CIFAR_STATS[dataset]
    mean = [255.0 * m for m in mean]
    var = [(255.0 * s) ** 2 for s in std]
    if input_shape[-1] != len(mean):
        raise ValueError(
            f"normalization of {dataset!r} needs 3 channels, got input_shape {input_shape}."
        )
    return tf.keras.layers.Normalization(mean=mean, variance=var, name="normalize")


def _stage_widths(width: int):
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"`width` must be a positive int, got {width!r}.")
    return (width, 2 * width, 4 * width, 8 * width)


def irnet_resnet18(
    num_classes: int = 10,
    width: int = 64,
    input_shape=(32, 32, 3),
    normalize: str | None = "cifar10",
    kernel_quantizer=None,
    input_quantizer=None,
    kernel_constraint=None,
    bn_momentum: float = 0.9,
    name: str = "irnet_resnet18",
) -> tf.keras.Model:
    """Binarized ResNet-18 for 32x32 inputs with IR-Net's binarization (SBNN kernels).

    IR-Net's CIFAR ResNet-18: a shortcut around *every* binary convolution
    (Bi-Real style), hardtanh after each add, 4 stages of 2 basic blocks
    (16 binary 3x3 convolutions)::

        [Normalization of uint8-range pixels]
        Conv2D(width, 3) float -> BN -> HardTanh                          (32x32)
        stages width x (1, 2, 4, 8), strides (1, 2, 2, 2), 2 blocks each:
            y = BN(QuantConv2D(c, 3, stride)(x)) + shortcut(x) -> HardTanh
            y = BN(QuantConv2D(c, 3)(y)) + y -> HardTanh
            shortcut: identity, or float Conv2D(c, 1, stride) -> BN
        GlobalAveragePooling -> BN -> Dense(num_classes) float (logits)

    Args:
        num_classes: classes of the float classifier.
        width: channels of the first stage (64 in the paper; 16 is a quick run).
        input_shape: image shape.
        normalize: ``"cifar10"`` / ``"cifar100"`` (normalize raw 0..255 pixels with
            that data set's statistics inside the model) or ``None``.
        kernel_quantizer: factory of the binary kernels' quantizer (a callable or a
            quantizer to copy); default :class:`IrNetSbnnQuantizer` (learned
            {alpha, beta}, EDE backward).
        input_quantizer: activation quantizer (callable/quantizer to copy); default
            :class:`EdeSign`.
        kernel_constraint: latent weight constraint; default the authors' clamp
            ``lq.constraints.WeightClip(1.5)``.
        bn_momentum: BatchNorm momentum.
        name: model name.

    Returns:
        An uncompiled, built ``tf.keras.Model`` that outputs logits.
    """
    widths = _stage_widths(width)
    kq = _factory(kernel_quantizer, IrNetSbnnQuantizer)
    iq = _factory(input_quantizer, EdeSign)
    kc = _factory(kernel_constraint, lambda: lq.constraints.WeightClip(1.5))

    def bn(x, tag):
        return tf.keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{tag}_bn")(x)

    inputs, x = _image_stem(input_shape, normalize, widths[0])
    x = HardTanh(name="stem_htanh")(bn(x, "stem"))
    for s, filters in enumerate(widths):
        for b in range(2):
            stride = 2 if s > 0 and b == 0 else 1
            for u in range(2):
                tag = f"s{s + 1}b{b + 1}c{u + 1}"
                strides = stride if u == 0 else 1
                shortcut = x
                if strides != 1 or x.shape[-1] != filters:
                    shortcut = tf.keras.layers.Conv2D(
                        filters, 1, strides=strides, use_bias=False, name=f"{tag}_short_conv"
                    )(x)
                    shortcut = bn(shortcut, f"{tag}_short")
                y = bn(_bconv3x3(x, filters, strides, tag, iq, kq, kc), tag)
                x = tf.keras.layers.Add(name=f"{tag}_add")([y, shortcut])
                x = HardTanh(name=f"{tag}_htanh")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = tf.keras.layers.BatchNormalization(momentum=bn_momentum, name="head_bn")(x)
    outputs = tf.keras.layers.Dense(num_classes, name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def reactnet18(
    num_classes: int = 100,
    width: int = 64,
    input_shape=(32, 32, 3),
    normalize: str | None = "cifar100",
    kernel_quantizer=None,
    input_quantizer="approx_sign",
    kernel_constraint=None,
    bn_momentum: float = 0.9,
    name: str = "reactnet18",
) -> tf.keras.Model:
    """ReActNet-18 for 32x32 inputs with SBNN kernels (single training step, no teacher).

    Bi-Real-Net-18 with ReActNet's generalized activations: every binary 3x3
    convolution sees ``RSign`` inputs (``LearnableBias`` then the conv's
    ``approx_sign``) and is followed by BatchNorm, the shortcut add and ``RPReLU``::

        [Normalization of uint8-range pixels]
        Conv2D(width, 3) float -> BN                                       (32x32)
        16 units, width x (1, 2, 4, 8), 4 per stage, stride 2 at the first
        unit of stages 2-4:
            y = BN(QuantConv2D(c, 3, stride)(LearnableBias(x))) + shortcut(x)
            x = RPReLU(y)
            shortcut: identity, or AvgPool(2) -> float Conv2D(c, 1) -> BN
        GlobalAveragePooling -> Dense(num_classes) float (logits)

    Arguments not listed below are those of :func:`irnet_resnet18`.

    Args:
        input_quantizer: the sign of RSign (default ``"approx_sign"``, Bi-Real's
            polynomial gradient, as ReActNet); a name, or a callable/quantizer to copy.
        kernel_quantizer: default ``SbnnQuantizer("learned", clip_value=1.5)``.
        kernel_constraint: default ``lq.constraints.WeightClip(1.5)``.

    Returns:
        An uncompiled, built ``tf.keras.Model`` that outputs logits.
    """
    widths = _stage_widths(width)
    kq = _factory(
        kernel_quantizer, lambda: sbnn_quantizers.SbnnQuantizer("learned", clip_value=1.5)
    )
    iq = _factory(input_quantizer, None)
    kc = _factory(kernel_constraint, lambda: lq.constraints.WeightClip(1.5))

    def bn(x, tag):
        return tf.keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{tag}_bn")(x)

    inputs, x = _image_stem(input_shape, normalize, widths[0])
    x = bn(x, "stem")
    unit = 0
    for s, filters in enumerate(widths):
        for u in range(4):
            unit += 1
            tag = f"u{unit}"
            strides = 2 if s > 0 and u == 0 else 1
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                if strides != 1:
                    shortcut = tf.keras.layers.AveragePooling2D(2, name=f"{tag}_short_pool")(
                        shortcut
                    )
                shortcut = tf.keras.layers.Conv2D(
                    filters, 1, use_bias=False, name=f"{tag}_short_conv"
                )(shortcut)
                shortcut = bn(shortcut, f"{tag}_short")
            y = LearnableBias(name=f"{tag}_rsign_bias")(x)
            y = _bconv3x3(y, filters, strides, tag, iq, kq, kc)
            y = bn(y, tag)
            y = tf.keras.layers.Add(name=f"{tag}_add")([y, shortcut])
            x = RPReLU(name=f"{tag}_rprelu")(y)
    x = tf.keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = tf.keras.layers.Dense(num_classes, name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def _image_stem(input_shape, normalize, filters):
    """``(inputs, x)``: the ``image`` input, the optional normalization and the float 3x3
    stem conv of both networks (its BatchNorm follows)."""
    inputs = tf.keras.Input(shape=input_shape, name="image")
    x = _normalization(normalize, input_shape)(inputs) if normalize else inputs
    x = tf.keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name="stem_conv")(x)
    return inputs, x


def _bconv3x3(x, filters, strides, tag, iq, kq, kc):
    """The binary 3x3 conv of both networks (SAME, no bias, ``<tag>_bconv``), with a
    fresh input quantizer, kernel quantizer and constraint from the factories."""
    return sbnn_layers.QuantConv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        input_quantizer=iq(),
        kernel_quantizer=kq(),
        kernel_constraint=kc(),
        name=f"{tag}_bconv",
    )(x)


def _factory(spec, default):
    """A zero-argument callable giving a fresh quantizer/constraint per layer."""
    if spec is None:
        return default if default is not None else (lambda: None)
    if isinstance(spec, str):
        return lambda: spec  # larq resolves names per layer
    if callable(spec) and not isinstance(
        spec, (tf.keras.layers.Layer, tf.keras.constraints.Constraint)
    ):
        return spec
    if hasattr(spec, "get_config"):
        return lambda: spec.__class__.from_config(spec.get_config())
    raise ValueError(f"expected a name, a quantizer/constraint or a factory, got {spec!r}.")


# --------------------------------------------------------------------------- data
def load_cifar(
    name: str = "cifar10", split: str = "train", data_dir=None, limit: int | None = None
):
    """A CIFAR split from tensorflow-datasets as NumPy ``(x uint8 [N,32,32,3], y int64 [N])``.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        split: ``"train"`` or ``"test"``.
        data_dir: tensorflow-datasets' data directory (downloaded there if missing).
        limit: take only the first ``limit`` examples (``split[:limit]``).
    """
    if name not in CIFAR_STATS:
        raise ValueError(f"load_cifar: `name` must be one of {sorted(CIFAR_STATS)}, got {name!r}.")
    import tensorflow_datasets as tfds

    spec = f"{split}[:{int(limit)}]" if limit else split
    ds = tfds.load(name, split=spec, data_dir=data_dir, as_supervised=True)
    if limit:  # tfds' mock data (tests) ignores slicing
        ds = ds.take(int(limit))
    # batches rather than batch_size=-1, which aborts on datasets of unknown size
    xs, ys = [], []
    for x, y in tfds.as_numpy(ds.batch(5000)):
        xs.append(np.asarray(x, np.uint8))
        ys.append(np.asarray(y, np.int64))
    if not xs:
        raise ValueError(f"load_cifar: split {spec!r} of {name!r} is empty.")
    return np.concatenate(xs), np.concatenate(ys)


def mixup(images, labels, alpha: float = 1.0):
    """Mixup of a batch with a permutation of itself (one ``lambda ~ Beta(alpha, alpha)``
    per batch, as Zhang et al.'s code): ``lam*x + (1-lam)*x[perm]``, same for the
    one-hot labels."""
    g1 = tf.random.gamma([], alpha)
    g2 = tf.random.gamma([], alpha)
    lam = g1 / (g1 + g2)
    perm = tf.random.shuffle(tf.range(tf.shape(images)[0]))
    images = lam * images + (1.0 - lam) * tf.gather(images, perm)
    labels = lam * labels + (1.0 - lam) * tf.gather(labels, perm)
    return images, labels


def _augment(image):
    """Random crop of the image zero-padded by 4 pixels, random horizontal flip."""
    image = tf.image.pad_to_bounding_box(image, 4, 4, 40, 40)
    image = tf.image.random_crop(image, [32, 32, 3])
    return tf.image.random_flip_left_right(image)


def train_dataset(
    x,
    y,
    num_classes: int,
    batch_size: int = 512,
    augment: bool = True,
    mixup_alpha: float = 1.0,
    seed: int | None = None,
) -> tf.data.Dataset:
    """The training pipeline: shuffle, crop (padding 4) and flip, batch, mixup.

    Images stay in the 0..255 range (the models normalize them); labels become
    one-hot (mixed by mixup), for ``CategoricalCrossentropy``. ``mixup_alpha=0``
    disables mixup.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(min(len(x), 50000), seed=seed, reshuffle_each_iteration=True)

    def prepare(image, label):
        image = tf.cast(image, tf.float32)
        if augment:
            image = _augment(image)
        return image, tf.one_hot(label, num_classes)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if mixup_alpha:
        ds = ds.map(lambda a, b: mixup(a, b, mixup_alpha), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(x, y, num_classes: int, batch_size: int = 512) -> tf.data.Dataset:
    """Test pipeline: float images in 0..255, one-hot labels."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), tf.one_hot(b, num_classes)))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
