"""SBNN layers: larq's quantized layers with SBNN defaults.

``sbnn_keras.QuantConv2D`` and ``sbnn_keras.QuantDense`` are larq's layers (same
signature, same behaviour, same serialization), with defaults that make them SBNN
layers: binary inputs (``ste_sign``), kernels on a learned {alpha, beta} domain
(``"sbnn_learned"``) and latent weights clipped to [-1, 1] (``"weight_clip"``, so
the straight-through estimator never starves them).
"""

from __future__ import annotations

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import quantizers  # noqa: E402

__all__ = ["QuantConv2D", "QuantDense", "is_sbnn_layer", "sbnn_layers", "latent_kernel"]

DEFAULT_INPUT_QUANTIZER = "ste_sign"
DEFAULT_KERNEL_QUANTIZER = "sbnn_learned"
DEFAULT_KERNEL_CONSTRAINT = "weight_clip"


@tf.keras.utils.register_keras_serializable(package="sbnn_keras")
class QuantConv2D(lq.layers.QuantConv2D):
    """2D convolution with binary inputs and {alpha, beta} kernels (SBNN).

    Same arguments as ``larq.layers.QuantConv2D``; only the defaults differ:
    ``input_quantizer="ste_sign"``, ``kernel_quantizer="sbnn_learned"``,
    ``kernel_constraint="weight_clip"``.

    Example:
        >>> import sbnn_keras, tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)),
        ...     sbnn_keras.QuantConv2D(16, 3, input_quantizer=None, padding="same")])
    """

    # larq's whole signature, written out: positional arguments keep larq's order and
    # help() and the API docs show every default (QuantDense likewise).
    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        pad_values=0.0,
        data_format=None,
        dilation_rate=(1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        input_quantizer=DEFAULT_INPUT_QUANTIZER,
        kernel_quantizer=DEFAULT_KERNEL_QUANTIZER,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=DEFAULT_KERNEL_CONSTRAINT,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            pad_values=pad_values,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
            activation=activation,
            use_bias=use_bias,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )


@tf.keras.utils.register_keras_serializable(package="sbnn_keras")
class QuantDense(lq.layers.QuantDense):
    """Densely connected layer with binary inputs and {alpha, beta} kernels (SBNN).

    Same arguments as ``larq.layers.QuantDense``; only the defaults differ:
    ``input_quantizer="ste_sign"``, ``kernel_quantizer="sbnn_learned"``,
    ``kernel_constraint="weight_clip"``.

    Example:
        >>> import sbnn_keras
        >>> layer = sbnn_keras.QuantDense(10)
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        input_quantizer=DEFAULT_INPUT_QUANTIZER,
        kernel_quantizer=DEFAULT_KERNEL_QUANTIZER,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=DEFAULT_KERNEL_CONSTRAINT,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            use_bias=use_bias,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )


def is_sbnn_layer(layer) -> bool:
    """True for any layer (ours or larq's) whose kernel quantizer is an SbnnQuantizer."""
    return isinstance(getattr(layer, "kernel_quantizer", None), quantizers.SbnnQuantizer)


def _walk(model):
    """Every layer reachable from ``model``, nested models and custom layers included."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        yield from flatten(include_self=True, recursive=True)
        return
    yield model  # pragma: no cover - every tf_keras Layer has _flatten_layers


def sbnn_layers(model) -> list:
    """All SBNN layers of a model in model order (deduplicated), including those
    inside nested models and inside custom layers (e.g. residual blocks).

    Raises:
        ValueError: if ``model`` is not a Keras model or layer.
    """
    if not isinstance(model, tf.keras.layers.Layer):
        raise ValueError(f"sbnn_layers: argument `model` must be a Keras model or layer, got {model!r}.")
    seen, found = set(), []
    for layer in _walk(model):
        if is_sbnn_layer(layer) and id(layer) not in seen:
            seen.add(id(layer))
            found.append(layer)
    return found


def latent_kernel(layer) -> tf.Variable:
    """The float (latent) kernel variable of a larq/SBNN layer.

    Raises:
        ValueError: if ``layer`` has no kernel (not a built conv/dense layer).
    """
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        shown = f"layer {layer.name!r} ({type(layer).__name__})" if isinstance(layer, tf.keras.layers.Layer) else repr(layer)
        raise ValueError(f"latent_kernel: argument `layer` has no kernel (a built conv or dense layer), got {shown}.")
    return getattr(kernel, "latent_variable", kernel)
