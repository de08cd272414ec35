"""sbnn_keras: sparse binary neural networks (SBNN) for Keras, larq and TFLite.

Importing this package selects legacy Keras (``TF_USE_LEGACY_KERAS=1``) before
TensorFlow is imported; if TensorFlow was already imported with Keras 3 it raises
an ``ImportError`` that says what to do.
"""

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

from sbnn_keras import callbacks, math, plot, quantizers, report, stats  # noqa: E402
from sbnn_keras.callbacks import SparsityCallback  # noqa: E402
from sbnn_keras.convert import ConversionError, ConversionReport, convert, convert_with_report  # noqa: E402
from sbnn_keras.plot import plot_hamming_histograms  # noqa: E402
from sbnn_keras.report import SparsityReport, sparsity_report  # noqa: E402
from sbnn_keras import runtime  # noqa: E402
from sbnn_keras.runtime import Interpreter, load_delegate  # noqa: E402
from sbnn_keras.layers import QuantConv2D, QuantDense, sbnn_layers  # noqa: E402
from sbnn_keras.quantizers import SbnnQuantizer, SiBnnQuantizer  # noqa: E402
from sbnn_keras.regularizer import SparsityRegularizer, custom_objects, load_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "QuantConv2D",
    "QuantDense",
    "SbnnQuantizer",
    "SiBnnQuantizer",
    "ConversionError",
    "Interpreter",
    "ConversionReport",
    "SparsityCallback",
    "SparsityRegularizer",
    "SparsityReport",
    "callbacks",
    "convert",
    "convert_with_report",
    "plot",
    "plot_hamming_histograms",
    "report",
    "runtime",
    "sparsity_report",
    "stats",
    "custom_objects",
    "load_delegate",
    "load_model",
    "math",
    "quantizers",
    "sbnn_layers",
]
