"""Lower binary Keras layers to a form Larq Compute Engine turns into LceBconv2d.

LCE's converter makes a binary convolution only from ``conv(sign(x), filter)`` whose
every output channel is ``+-scale``. An SBNN kernel ``tau*wb + phi`` with ``phi != 0``
is not, and LCE silently keeps such a layer as a float CONV_2D. The algebra of the
binary domain (docs/concepts.md) fixes it:

    conv(xb, tau*wb + phi) = conv(xb, tau*wb) + phi * conv(xb, 1)

so the lowered layer is one binary convolution with the filter ``tau*wb`` plus one
all-(+1) output channel per group (``q = conv(xb, 1)``, shared by the group's
channels), followed by ``main + phi * q``. Si-BNN {0, +1} inputs use
``x01 = (1 + s) / 2`` with ``s = sign(x - t)``:

    conv(x01, w) = conv(1, w) / 2 + conv(s, w) / 2

where ``conv(1, w)`` is a constant map (it depends on the padding at the borders).
QuantDense becomes a 1x1 convolution on a ``[N, 1, 1, Cin]`` view.
"""

from __future__ import annotations

import dataclasses

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import math as sbnn_math  # noqa: E402
from sbnn_keras import quantizers as sbnn_quantizers  # noqa: E402
from sbnn_keras.layers import latent_kernel  # noqa: E402

__all__ = ["BinaryLayerPlan", "LoweringError", "plan_layer", "LoweredBinaryConv", "is_binary_layer"]

_SIGN_QUANTIZERS = (lq.quantizers.SteSign, lq.quantizers.ApproxSign, lq.quantizers.SwishSign)
_SIGN_FUNCTIONS = (lq.quantizers.ste_sign, lq.quantizers.approx_sign, lq.quantizers.swish_sign)


class LoweringError(ValueError):
    """A layer cannot be lowered to a binary TFLite op (the message names it)."""


def _precision(quantizer):
    return getattr(quantizer, "precision", None)


def is_binary_layer(layer) -> bool:
    """A layer with 1-bit kernels (larq or SBNN quantizer with ``precision == 1``)."""
    kq = getattr(layer, "kernel_quantizer", None)
    return kq is not None and _precision(kq) == 1 and not isinstance(kq, lq.quantizers.NoOp)


@dataclasses.dataclass
class BinaryLayerPlan:
    """What the lowered layer computes, in NumPy (see the module docstring)."""

    name: str
    kind: str  # "conv" or "dense"
    wb: np.ndarray  # {-1, +1} kernel [kh, kw, cin/groups, cout]
    tau: np.ndarray  # [cout]
    phi: np.ndarray  # [cout]
    bias: np.ndarray  # [cout]
    input_mode: str  # "pm1" ({-1,+1} input) or "01" ({0,1} input)
    sigma: float  # +1: x01 = 1[x >= t];  -1: x01 = 1[x > t]
    threshold: np.ndarray  # [cin] or scalar, only for "01"
    activation: object
    strides: tuple
    dilation: tuple
    padding: str  # "same" | "valid"
    pad_values: float
    groups: int
    input_shape: tuple  # of the original layer (with batch None)

    @property
    def cout(self) -> int:
        return int(self.wb.shape[-1])

    @property
    def has_q(self) -> bool:
        return bool(np.any(self.phi != 0))

    def quantized_kernel(self) -> np.ndarray:
        return self.tau * self.wb + self.phi

    @property
    def pads_with_minus_one(self) -> bool:
        """A {0,1} input with 'same' zero padding and no q channel: lowered on the
        negated input padded with +1 (see ``LoweredBinaryConv.call``).

        Zero padding of ``x01`` is padding ``s = 2*x01 - 1`` with -1, and then
        ``conv(x01, w) = conv_{pad -1}(s, w) / 2 + sum(w) / 2`` with a per-channel
        constant: ``conv_{pad -1}(s, w) = -conv_{pad +1}(-s, w)``, and LceBconv2d pads
        with +1. The other form, ``conv_{pad 0}(s, w) / 2 + conv(1, w) / 2``, adds a
        constant that varies at the borders ([H, W, C]); with nothing between the
        binary conv and that add, LCE's converter folds it into
        ``post_activation_bias``, which must be [C]: neither runtime could run the
        file. With a q channel (phi != 0) the slice and multiply in between keep the
        add a float op, and those layers keep the form they have always had.
        """
        return (self.input_mode == "01" and self.kind == "conv" and self.padding == "same"
                and self.pad_values == 0 and not self.has_q)

    def ones_map(self, out_hw) -> np.ndarray:
        """``conv(1, w_q)`` over the padded input: [out_h, out_w, cout] (or [cout])."""
        wq = self.quantized_kernel()
        tap = wq.sum(axis=2)  # [kh, kw, cout]: sum over the input channels of a group
        if self.kind == "dense" or self.padding == "valid" or self.pad_values == 1:
            return tap.sum(axis=(0, 1))
        kh, kw = tap.shape[:2]
        in_h, in_w = self.input_shape[1:3]
        out_h, out_w = out_hw
        (sh, sw), (dh, dw) = self.strides, self.dilation
        pads = []
        for size_in, size_out, k, s, d in ((in_h, out_h, kh, sh, dh), (in_w, out_w, kw, sw, dw)):
            total = max((size_out - 1) * s + (k - 1) * d + 1 - size_in, 0)
            pads.append(total // 2)
        result = np.zeros((out_h, out_w, self.cout))
        for oy in range(out_h):
            for ox in range(out_w):
                for ky in range(kh):
                    iy = oy * sh - pads[0] + ky * dh
                    if not 0 <= iy < in_h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw - pads[1] + kx * dw
                        if 0 <= ix < in_w:
                            result[oy, ox] += tap[ky, kx]
        return result


def _kernel_code_and_scales(layer):
    kq = layer.kernel_quantizer
    w = latent_kernel(layer).numpy().astype(np.float64)
    cout = w.shape[-1]
    wb = sbnn_math.binarize(w)
    if isinstance(kq, sbnn_quantizers.SbnnQuantizer):
        s = kq.scales(w)
        tau, phi = s["tau"], s["phi"]
    elif isinstance(kq, _SIGN_QUANTIZERS) or kq in _SIGN_FUNCTIONS:
        tau, phi = 1.0, 0.0
    elif isinstance(kq, lq.quantizers.MagnitudeAwareSign):
        tau, phi = np.mean(np.abs(w), axis=tuple(range(w.ndim - 1))), 0.0
    else:
        raise LoweringError(
            f"layer {layer.name!r}: kernel quantizer {type(kq).__name__} has no known "
            "binary form (supported: SbnnQuantizer, ste_sign, approx_sign, swish_sign, "
            "magnitude_aware_sign)."
        )
    tau = np.broadcast_to(np.asarray(tau, np.float64), (cout,)).copy()
    phi = np.broadcast_to(np.asarray(phi, np.float64), (cout,)).copy()
    return wb, tau, phi


def _input_mode(layer):
    iq = getattr(layer, "input_quantizer", None)
    if iq is None:
        raise LoweringError(
            f"layer {layer.name!r} has binary weights but a float input (input_quantizer=None), "
            "so no binary op can compute it; give it an input quantizer (e.g. 'ste_sign') or "
            "keep it float on purpose with convert(..., float_layers=[...])."
        )
    if isinstance(iq, _SIGN_QUANTIZERS) or iq in _SIGN_FUNCTIONS:
        return "pm1", 1.0, np.zeros(())
    if isinstance(iq, sbnn_quantizers.SiBnnQuantizer):
        return "01", 1.0, iq.threshold.numpy().astype(np.float64)
    if isinstance(iq, lq.quantizers.SteHeaviside) or iq is lq.quantizers.ste_heaviside:
        return "01", -1.0, np.zeros(())
    raise LoweringError(
        f"layer {layer.name!r}: input quantizer {type(iq).__name__} has no binary form "
        "(supported: ste_sign, approx_sign, swish_sign, si_bnn, ste_heaviside)."
    )


def plan_layer(layer) -> BinaryLayerPlan:
    """Describe how to lower a binary larq/SBNN ``QuantConv2D`` or ``QuantDense``.

    Raises:
        LoweringError: for unsupported layer types, quantizers or options.
    """
    if isinstance(layer, lq.layers.QuantConv2D):
        kind = "conv"
    elif isinstance(layer, lq.layers.QuantDense):
        kind = "dense"
    else:
        raise LoweringError(
            f"layer {layer.name!r} ({type(layer).__name__}) has binary weights but no binary "
            "TFLite op exists for it (supported: QuantConv2D, QuantDense); keep it float with "
            "convert(..., float_layers=[...]) or change the layer."
        )
    mode, sigma, threshold = _input_mode(layer)
    wb, tau, phi = _kernel_code_and_scales(layer)
    if kind == "dense":
        if len(layer.input_shape) != 2:
            raise LoweringError(
                f"layer {layer.name!r}: QuantDense on a rank-{len(layer.input_shape)} input is not "
                "supported (only [batch, features]); flatten the input first."
            )
        wb = wb[None, None]
    bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else np.zeros(wb.shape[-1])
    strides = tuple(getattr(layer, "strides", (1, 1)))
    dilation = tuple(getattr(layer, "dilation_rate", (1, 1)))
    padding = getattr(layer, "padding", "valid")
    pad_values = float(tf.keras.backend.get_value(getattr(layer, "pad_values", 0.0)))
    groups = int(getattr(layer, "groups", 1) or 1)
    if kind == "conv":
        if layer.data_format != "channels_last":
            raise LoweringError(f"layer {layer.name!r}: only data_format='channels_last' is supported.")
        if padding not in ("same", "valid"):
            raise LoweringError(f"layer {layer.name!r}: padding={padding!r} is not supported.")
        if padding == "same" and pad_values not in (0.0, 1.0):
            raise LoweringError(
                f"layer {layer.name!r}: pad_values={pad_values!r} is not supported (LceBconv2d pads "
                "with 0 or +1)."
            )
        if mode == "01" and padding == "same" and pad_values == 1.0 and sigma < 0:
            raise LoweringError(
                f"layer {layer.name!r}: ste_heaviside input with pad_values=1 has no binary form."
            )
        if mode == "01" and padding == "same" and pad_values == 0.0:
            if None in tuple(layer.input_shape[1:3]):
                raise LoweringError(
                    f"layer {layer.name!r}: a {{0,1}} input with 'same' zero padding needs a "
                    "known spatial input size (give the model a fixed Input shape)."
                )
    return BinaryLayerPlan(
        name=layer.name,
        kind=kind,
        wb=wb,
        tau=tau,
        phi=phi,
        bias=bias,
        input_mode=mode,
        sigma=sigma,
        threshold=threshold,
        activation=layer.activation,
        strides=strides,
        dilation=dilation,
        padding=padding if kind == "conv" else "valid",
        pad_values=pad_values if kind == "conv" else 0.0,
        groups=groups,
        input_shape=tuple(layer.input_shape),
    )


class LoweredBinaryConv(tf.keras.layers.Layer):
    """The lowered form of one binary layer (only used inside ``convert``)."""

    def __init__(self, plan: BinaryLayerPlan, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan
        p = plan
        cout, g = p.cout, p.groups
        k = cout // g
        self._fold_tau = bool(np.all(np.abs(p.tau) > 1e-12))
        main = p.wb * (p.tau if self._fold_tau else 1.0)
        if p.has_q:
            kh, kw, cin_g = p.wb.shape[:3]
            blocks = []
            for gi in range(g):
                blocks.append(main[..., gi * k : (gi + 1) * k])
                blocks.append(np.ones((kh, kw, cin_g, 1)))
            filt = np.concatenate(blocks, axis=-1)
        else:
            filt = main
        self._filter = filt.astype(np.float32)
        self.conv = lq.layers.QuantConv2D(
            filt.shape[-1],
            p.wb.shape[:2],
            strides=p.strides,
            padding=p.padding,
            pad_values=1.0 if p.pads_with_minus_one else (
                p.pad_values if p.input_mode == "pm1" or p.sigma > 0 else 0.0),
            dilation_rate=p.dilation,
            groups=g,
            use_bias=False,
            input_quantizer="ste_sign",
            kernel_quantizer=None,
            name="bconv",
        )

    def build(self, input_shape):
        p = self.plan
        shape = tf.TensorShape(input_shape)
        conv_in = shape if p.kind == "conv" else tf.TensorShape([shape[0], 1, 1, shape[-1]])
        self.conv.build(conv_in)
        self.conv.set_weights([self._filter])
        out = self.conv.compute_output_shape(conv_in)
        self._out_hw = (out[1], out[2])
        super().build(input_shape)

    def call(self, inputs):
        p = self.plan
        x = inputs
        if p.pads_with_minus_one:
            # -s: +1 where x01 = 0, i.e. t' - x >= 0 (LceQuantize maps +-0 to +1), with
            # t' the float32 below t for 1[x >= t] (x <= t' <=> x < t) and t itself for
            # ste_heaviside's 1[x > t]
            t = np.asarray(p.threshold, np.float32)
            if p.sigma > 0:
                t = np.nextafter(t, np.float32(-np.inf))
            x = tf.constant(t, x.dtype) - x
        elif p.input_mode == "01":
            x = p.sigma * (x - tf.constant(p.threshold, x.dtype))
        if p.kind == "dense":
            x = tf.reshape(x, [-1, 1, 1, x.shape[-1]])
        y = self.conv(x)
        cout, g = p.cout, p.groups
        k = cout // g
        if p.has_q:
            if g == 1:
                main, q = y[..., :cout], y[..., cout:]
                z = main if self._fold_tau else main * tf.constant(p.tau, y.dtype)
                z = z + q * tf.constant(p.phi, y.dtype)
            else:
                # Batch -1: a tf.shape(y)[:3] would be folded by the converter into a
                # constant batch of 1 and break batch > 1 (RESHAPE's prepare).
                hw = tf.shape(y)[1:3]
                y5 = tf.reshape(y, tf.concat([[-1], hw, [g, k + 1]], 0))
                main = y5[..., :k]
                if not self._fold_tau:
                    main = main * tf.constant(p.tau.reshape(g, k), y.dtype)
                z = main + y5[..., k:] * tf.constant(p.phi.reshape(g, k), y.dtype)
                z = tf.reshape(z, tf.concat([[-1], hw, [cout]], 0))
        else:
            z = y if self._fold_tau else y * tf.constant(p.tau, y.dtype)
        if p.pads_with_minus_one:
            total = p.quantized_kernel().sum(axis=(0, 1, 2))  # [cout]
            z = -0.5 * z + tf.constant(0.5 * total, z.dtype)
        elif p.input_mode == "01":
            ones = p.ones_map(self._out_hw)
            z = (0.5 * p.sigma) * z + tf.constant(0.5 * ones, z.dtype)
        if np.any(p.bias != 0):
            z = z + tf.constant(p.bias, z.dtype)
        z = tf.keras.activations.get(p.activation)(z)
        if p.kind == "dense":
            z = tf.reshape(z, [-1, cout])
        return z
