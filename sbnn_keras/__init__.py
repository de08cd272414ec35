"""sbnn_keras: sparse binary neural networks (SBNN) for Keras, larq and TFLite.

Importing this package selects legacy Keras (``TF_USE_LEGACY_KERAS=1``) before
TensorFlow is imported; if TensorFlow was already imported with Keras 3 it raises
an ``ImportError`` that says what to do.

Rooms (docs/architecture.md): ``math``, ``quantizers``, ``layers``, ``regularizer``
at the top, then ``metrics``, ``export`` and ``tuning``; the runtime is the separate
package ``sbnn_runtime`` (``sbnn_keras.runtime``), the zoo and the demo are in
``sbnn_zoo``. Modules that moved keep their old import paths (``sbnn_keras._aliases``).
"""

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import sbnn_runtime as runtime  # noqa: E402
from sbnn_keras import _aliases, math, quantizers  # noqa: E402
from sbnn_keras.metrics import callbacks, plot, report, stats  # noqa: E402
from sbnn_keras.metrics.callbacks import SparsityCallback  # noqa: E402
from sbnn_keras.export.convert import ConversionError, ConversionReport, convert, convert_with_report  # noqa: E402
from sbnn_keras.metrics.plot import plot_hamming_histograms  # noqa: E402
from sbnn_keras.metrics.report import SparsityReport, sparsity_report  # noqa: E402
from sbnn_runtime.interpreter import Interpreter, load_delegate  # noqa: E402
from sbnn_keras.layers import QuantConv2D, QuantDense, sbnn_layers  # noqa: E402
from sbnn_keras.quantizers import SbnnQuantizer, SiBnnQuantizer  # noqa: E402
from sbnn_keras.regularizer import SparsityRegularizer, custom_objects, load_model  # noqa: E402

__version__ = "0.1.0"

_aliases.install()


def __getattr__(name):
    return _aliases.resolve(name)


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
