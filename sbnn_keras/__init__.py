"""sbnn_keras: sparse binary neural networks (SBNN) for Keras, larq and TFLite.

Importing this package selects legacy Keras (``TF_USE_LEGACY_KERAS=1``) before
TensorFlow is imported; if TensorFlow was already imported with Keras 3 it raises
an ``ImportError`` that says what to do.
"""

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

from sbnn_keras import math  # noqa: E402
from sbnn_keras import quantizers  # noqa: E402
from sbnn_keras.layers import QuantConv2D, QuantDense, sbnn_layers  # noqa: E402
from sbnn_keras.quantizers import SbnnQuantizer, SiBnnQuantizer  # noqa: E402
from sbnn_keras.regularizer import SparsityRegularizer, custom_objects, load_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "QuantConv2D",
    "QuantDense",
    "SbnnQuantizer",
    "SiBnnQuantizer",
    "SparsityRegularizer",
    "custom_objects",
    "load_model",
    "math",
    "quantizers",
    "sbnn_layers",
]
