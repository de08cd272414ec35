"""Larq-compatible quantizers of SBNN (weights) and Si-BNN (activations).

Each quantizer is a differentiable TensorFlow function plus a thin, serializable
``larq.quantizers.Quantizer`` class with ``precision = 1``, so it works as
``kernel_quantizer=`` / ``input_quantizer=`` in larq's own layers, in
``sbnn_keras.QuantConv2D`` / ``QuantDense``, and shows in ``lq.models.summary``.

String aliases (usable wherever larq accepts a quantizer name):

=================== ==============================================================
``"sbnn"``          ``SbnnQuantizer(scale="closed_form")``: {alpha, beta}, eq. 15
``"sbnn_learned"``  ``SbnnQuantizer(scale="learned")``: trainable tau and phi
``"sbnn_symmetric"`` ``SbnnQuantizer(scale="symmetric")``: {-beta, +beta} (XNOR-Net)
``"sbnn_centered"`` ``SbnnQuantizer(scale="closed_form", center=True)``: eq. 15 on w - mean(w)
``"si_bnn"``        ``SiBnnQuantizer()``: activations to {0, +1}
=================== ==============================================================
"""

from __future__ import annotations


from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import _checks  # noqa: E402
from sbnn_keras import math as sbnn_math  # noqa: E402

__all__ = [
    "SCALE_MODES",
    "SbnnQuantizer",
    "SiBnnQuantizer",
    "optimal_scales_tf",
    "sbnn_quantize",
    "si_bnn_heaviside",
]

SCALE_MODES = ("closed_form", "learned", "symmetric")
_PACKAGE = "sbnn_keras"


def _register(cls):
    """Register under the package namespace (``sbnn_keras>Name``) and plain name."""
    cls = tf.keras.utils.register_keras_serializable(package=_PACKAGE)(cls)
    tf.keras.utils.get_custom_objects()[cls.__name__] = cls
    return cls


def _check_clip(clip_value, argument="clip_value"):
    return _checks.positive_or_none(clip_value, argument)


def _initializer(value, owner, argument):
    try:
        return tf.keras.initializers.get(value)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{owner}: argument `{argument}` is not an initializer, got {value!r} ({err}).") from None


def _axes(rank: int, per_channel: bool):
    return sbnn_math.reduction_axes(rank, per_channel)


def optimal_scales_tf(w: tf.Tensor, wb: tf.Tensor | None = None, per_channel: bool = False):
    """TensorFlow version of :func:`sbnn_keras.math.optimal_scales` (same conventions).

    Returns ``(tau, phi)`` as tensors of ``w.dtype``, scalars or shape ``[w.shape[-1]]``.
    """
    w = tf.convert_to_tensor(w)
    if wb is None:
        wb = lq.math.sign(w)
    axes = _axes(w.shape.rank, per_channel)
    pos = tf.cast(wb > 0, w.dtype)
    neg = 1.0 - pos
    n_pos = tf.reduce_sum(pos, axis=axes)
    n_neg = tf.reduce_sum(neg, axis=axes)
    sum_pos = tf.reduce_sum(w * pos, axis=axes)
    sum_neg = tf.reduce_sum(w * neg, axis=axes)
    mean = (sum_pos + sum_neg) / (n_pos + n_neg)
    beta = tf.math.divide_no_nan(sum_pos, n_pos)
    alpha = tf.math.divide_no_nan(sum_neg, n_neg)
    tau = (beta - alpha) / 2
    phi = (beta + alpha) / 2
    all_pos = n_neg == 0
    all_neg = n_pos == 0
    tau = tf.where(all_pos, mean / 2, tf.where(all_neg, -mean / 2, tau))
    phi = tf.where(all_pos | all_neg, mean / 2, phi)
    return tau, phi


def sbnn_quantize(w: tf.Tensor, tau, phi, clip_value: float | None = 1.0) -> tf.Tensor:
    """``tau * ste_sign(w) + phi``: the SBNN weight in {alpha, beta}.

    The gradient reaches ``w`` through larq's clipped straight-through estimator
    (``dw = tau * dy`` where ``|w| <= clip_value``, else 0) and ``tau`` / ``phi``
    through the ordinary product rule (``dtau = sum(dy * wb)``, ``dphi = sum(dy)``).
    """
    clip_value = _check_clip(clip_value)
    return tau * lq.quantizers.ste_sign(w, clip_value=clip_value) + phi


@_register
class SbnnQuantizer(lq.quantizers.Quantizer):
    r"""Weight quantizer onto a general binary domain {alpha, beta} (SBNN paper).

    \[ q(\tilde w) = \tau\,\mathrm{sign}(\tilde w) + \phi,\quad
       \alpha = \phi - \tau,\ \beta = \phi + \tau \]

    Weights with ``sign(w) = +1`` are the *connections* (value beta); all others
    take the value alpha. The gradient w.r.t. the latent weights is larq's clipped
    straight-through estimator, scaled by tau.

    Args:
        scale: how tau and phi are chosen.
            ``"closed_form"``: the least-squares optimum of paper eq. 15, recomputed
            from the latent weights at every call (treated as a constant in the
            backward pass, as XNOR-Net and IR-Net do with their scales).
            ``"learned"``: tau and phi are trainable variables (the paper's best
            result and the authors' only mode). They start as tau=1, phi=0, the
            authors' initialisation; BatchNorm after the layer absorbs the overall
            scale.
            ``"symmetric"``: the {-beta, +beta} baseline of XNOR-Net,
            ``phi = 0, tau = mean(|w|)``.
        per_channel: one (tau, phi) per output channel (last kernel axis) instead of
            one per layer (the paper's choice).
        center: ``scale="closed_form"`` only: evaluate eq. 15 on the mean-centred
            latent weights ``w - mean(w)`` (mean over the layer, or per output
            channel with ``per_channel``), keeping the code ``sign(w)``. This
            project's variant, in neither the paper nor the authors' code (their
            binary convolutions binarize the raw latent weights, without IR-Net's
            mean subtraction or standardization; ``sbnn_zoo.zoo``'s
            ``IrNetSbnnQuantizer`` keeps only the standardization, to place its
            gradient window). Then ``p * beta + (1 - p) * alpha = 0``, i.e.
            ``alpha = -p / (1 - p) * beta``: at low ``p`` the domain is nearly
            {0, beta}. Default False (eq. 15 on the raw latent weights, as the
            paper writes it).
        clip_value: the straight-through estimator passes gradients where
            ``|w| <= clip_value`` (larq's ``ste_sign`` convention); ``None`` never clips.
        tau_initializer, phi_initializer: initializers of the learned scales.

    Raises:
        ValueError: for an unknown ``scale`` or a bad ``clip_value``.

    Example:
        >>> import sbnn_keras, larq as lq
        >>> layer = lq.layers.QuantConv2D(8, 3, input_quantizer="ste_sign",
        ...                               kernel_quantizer="sbnn_learned")
    """

    precision = 1

    def __init__(
        self,
        scale: str = "closed_form",
        per_channel: bool = False,
        clip_value: float | None = 1.0,
        tau_initializer="ones",
        phi_initializer="zeros",
        center: bool = False,
        **kwargs,
    ):
        if not isinstance(center, (bool, np.bool_)):
            raise ValueError(f"SbnnQuantizer: `center` must be a bool, got {center!r}.")
        if center and scale != "closed_form":
            raise ValueError(
                f"SbnnQuantizer: `center=True` needs scale='closed_form', got scale={scale!r}."
            )
        self.center = bool(center)
        if scale not in SCALE_MODES:
            raise ValueError(
                f"SbnnQuantizer: argument `scale` must be one of {SCALE_MODES}, got {scale!r}."
            )
        if not isinstance(per_channel, (bool, np.bool_)):
            raise ValueError(f"SbnnQuantizer: `per_channel` must be a bool, got {per_channel!r}.")
        self.scale = scale
        self.per_channel = bool(per_channel)
        self.clip_value = _check_clip(clip_value)
        self.tau_initializer = _initializer(tau_initializer, "SbnnQuantizer", "tau_initializer")
        self.phi_initializer = _initializer(phi_initializer, "SbnnQuantizer", "phi_initializer")
        super().__init__(**kwargs)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if self.per_channel and (input_shape.rank is None or input_shape.rank < 1):
            raise ValueError(
                "SbnnQuantizer(per_channel=True) needs a kernel with a channel axis, "
                f"got shape {input_shape}."
            )
        shape = (input_shape[-1],) if self.per_channel else ()
        if self.scale == "learned":
            self.tau = self.add_weight(
                name="tau", shape=shape, initializer=self.tau_initializer, trainable=True
            )
            self.phi = self.add_weight(
                name="phi", shape=shape, initializer=self.phi_initializer, trainable=True
            )
        super().build(input_shape)

    def _scales(self, w: tf.Tensor):
        if self.scale == "learned":
            return tf.cast(self.tau, w.dtype), tf.cast(self.phi, w.dtype)
        if self.scale == "closed_form" and self.center:
            axes = _axes(w.shape.rank, self.per_channel)
            centred = w - tf.reduce_mean(w, axis=axes)
            tau, phi = optimal_scales_tf(centred, wb=lq.math.sign(w), per_channel=self.per_channel)
        elif self.scale == "closed_form":
            tau, phi = optimal_scales_tf(w, per_channel=self.per_channel)
        else:  # symmetric
            tau = tf.reduce_mean(tf.abs(w), axis=_axes(w.shape.rank, self.per_channel))
            phi = tf.zeros_like(tau)
        return tf.stop_gradient(tau), tf.stop_gradient(phi)

    def call(self, inputs):
        tau, phi = self._scales(inputs)
        return sbnn_quantize(inputs, tau, phi, clip_value=self.clip_value)

    def scales(self, latent_weights) -> dict:
        """Current ``tau, phi, alpha, beta`` (NumPy) for the given latent weights.

        For ``scale="learned"`` the latent weights only fix the shape; the values
        are the trained variables. ``alpha`` is the value of ``sign(w) = -1``,
        ``beta`` the value of a connection.
        """
        w = tf.convert_to_tensor(latent_weights)
        if not self.built:
            self.build(w.shape)
        tau, phi = (np.asarray(t, dtype=np.float64) for t in self._scales(w))
        return {"tau": tau, "phi": phi, "alpha": phi - tau, "beta": phi + tau}

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "per_channel": self.per_channel,
            "clip_value": self.clip_value,
            **({"center": True} if self.center else {}),
            "tau_initializer": tf.keras.initializers.serialize(self.tau_initializer),
            "phi_initializer": tf.keras.initializers.serialize(self.phi_initializer),
        }


def si_bnn_heaviside(x: tf.Tensor, threshold: tf.Tensor, clip_value: float | None = 1.0):
    """Si-BNN activation binarization ``1[x >= t]`` in {0, +1}.

    Backward: the step is replaced by a ramp of slope 1 on the window
    ``|x - t| <= clip_value`` centred on the threshold, so the trainable threshold
    moves the window through which gradients pass: ``dx = dy * 1[|x - t| <= c]``
    and ``dt = -sum(dy * 1[|x - t| <= c])`` (summed over broadcast axes).
    ``clip_value=None`` passes gradients everywhere (plain STE).
    """
    clip_value = _check_clip(clip_value)
    x = tf.convert_to_tensor(x)
    threshold = tf.cast(tf.convert_to_tensor(threshold), x.dtype)

    @tf.custom_gradient
    def _call(x, t):
        shifted = x - t
        y = tf.cast(shifted >= 0, x.dtype)

        def grad(dy):
            if clip_value is None:
                gx = dy
            else:
                gx = tf.where(tf.abs(shifted) <= clip_value, dy, tf.zeros_like(dy))
            gt = -gx
            # reduce the threshold gradient to the threshold's shape
            t_rank = t.shape.rank
            lead = x.shape.rank - t_rank
            axes = list(range(lead)) + [
                lead + i for i in range(t_rank) if t.shape[i] == 1 and x.shape[lead + i] != 1
            ]
            gt = tf.reshape(tf.reduce_sum(gt, axis=axes), tf.shape(t))
            return gx, gt

        return y, grad

    return _call(x, threshold)


@_register
class SiBnnQuantizer(lq.quantizers.Quantizer):
    r"""Si-BNN activation quantizer: {0, +1} with trainable thresholds.

    \[ q(x) = \mathbb{1}[x \ge t] \]

    Si-BNN binarizes activations to {0, +1}, a 1-bit ReLU, instead of {-1, +1}.
    ``t`` is trainable (one per channel of the last axis by default) and also
    positions the backward window (see :func:`si_bnn_heaviside`). Our reading of
    the Si-BNN abstract: forward step at ``t``, gradient window ``|x - t| <= c``.

    Args:
        per_channel: one threshold per channel (last axis) rather than one per layer.
        clip_value: half-width of the gradient window; ``None`` never clips.
        threshold_initializer: initializer of ``t`` (zeros: a 1-bit ReLU).

    Example:
        >>> import sbnn_keras
        >>> layer = sbnn_keras.QuantConv2D(8, 3, input_quantizer="si_bnn")
    """

    precision = 1

    def __init__(
        self,
        per_channel: bool = True,
        clip_value: float | None = 1.0,
        threshold_initializer="zeros",
        **kwargs,
    ):
        if not isinstance(per_channel, (bool, np.bool_)):
            raise ValueError(f"SiBnnQuantizer: `per_channel` must be a bool, got {per_channel!r}.")
        self.per_channel = bool(per_channel)
        self.clip_value = _check_clip(clip_value)
        self.threshold_initializer = _initializer(threshold_initializer, "SiBnnQuantizer", "threshold_initializer")
        super().__init__(**kwargs)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if self.per_channel:
            if input_shape.rank is None or input_shape[-1] is None:
                raise ValueError(
                    f"SiBnnQuantizer(per_channel=True) needs a known channel axis, got shape {input_shape}."
                )
            shape = (input_shape[-1],)
        else:
            shape = ()
        self.threshold = self.add_weight(
            name="threshold", shape=shape, initializer=self.threshold_initializer, trainable=True
        )
        super().build(input_shape)

    def call(self, inputs):
        return si_bnn_heaviside(inputs, self.threshold, clip_value=self.clip_value)

    def get_config(self):
        return {
            **super().get_config(),
            "per_channel": self.per_channel,
            "clip_value": self.clip_value,
            "threshold_initializer": tf.keras.initializers.serialize(self.threshold_initializer),
        }


class _Alias:
    """A registered name that builds a quantizer with some arguments preset."""

    def __init__(self, cls, **preset):
        self.cls = cls
        self.preset = preset

    def from_config(self, config):
        return self.cls(**{**self.preset, **config})

    def __call__(self, **kwargs):
        return self.from_config(kwargs)


for _name, _alias in {
    "sbnn": _Alias(SbnnQuantizer, scale="closed_form"),
    "sbnn_learned": _Alias(SbnnQuantizer, scale="learned"),
    "sbnn_symmetric": _Alias(SbnnQuantizer, scale="symmetric"),
    "sbnn_centered": _Alias(SbnnQuantizer, scale="closed_form", center=True),
    "si_bnn": _Alias(SiBnnQuantizer),
}.items():
    tf.keras.utils.get_custom_objects()[_name] = _alias
