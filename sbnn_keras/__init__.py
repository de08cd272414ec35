"""sbnn_keras: sparse binary neural networks (SBNN) for Keras, larq and TFLite.

Importing this package selects legacy Keras (``TF_USE_LEGACY_KERAS=1``) before
TensorFlow is imported; if TensorFlow was already imported with Keras 3 it raises
an ``ImportError`` that says what to do.

Rooms (docs/architecture.md): ``math``, ``quantizers``, ``layers``, ``regularizer``
at the top, then ``metrics``, ``export``, ``tuning`` and ``training``; the runtime is
the separate package ``sbnn_runtime`` (``sbnn_keras.runtime``), the zoo and the demo
are in ``sbnn_zoo``. Modules that moved keep their old import paths (``sbnn_keras._aliases``).

The names below are loaded on first use (PEP 562), so ``import sbnn_keras`` itself
imports no TensorFlow: the command line answers ``--help`` and runs the runtime's
commands without it. Each room applies the legacy-Keras rules
(``_compat.ensure_legacy_keras``) when it is loaded.
"""

from sbnn_keras import _aliases, _compat

_compat.select_legacy_keras()

#: public name -> the module that defines it (loaded by ``__getattr__``)
_EXPORTS = {
    "QuantConv2D": "sbnn_keras.layers",
    "QuantDense": "sbnn_keras.layers",
    "sbnn_layers": "sbnn_keras.layers",
    "SbnnQuantizer": "sbnn_keras.quantizers",
    "SiBnnQuantizer": "sbnn_keras.quantizers",
    "SparsityRegularizer": "sbnn_keras.regularizer",
    "custom_objects": "sbnn_keras.regularizer",
    "load_model": "sbnn_keras.regularizer",
    "SparsityCallback": "sbnn_keras.metrics.callbacks",
    "plot_hamming_histograms": "sbnn_keras.metrics.plot",
    "SparsityReport": "sbnn_keras.metrics.report",
    "sparsity_report": "sbnn_keras.metrics.report",
    "ConversionError": "sbnn_keras.export.convert",
    "ConversionReport": "sbnn_keras.export.convert",
    "convert": "sbnn_keras.export.convert",
    "convert_with_report": "sbnn_keras.export.convert",
    "declare_quantizer": "sbnn_keras.export.convert",
    "Interpreter": "sbnn_runtime.interpreter",
    "load_delegate": "sbnn_runtime.interpreter",
}

#: public module attributes -> module
_MODULES = {
    "math": "sbnn_keras.math",
    "quantizers": "sbnn_keras.quantizers",
    "layers": "sbnn_keras.layers",
    "regularizer": "sbnn_keras.regularizer",
    "metrics": "sbnn_keras.metrics",
    "export": "sbnn_keras.export",
    "tuning": "sbnn_keras.tuning",
    "training": "sbnn_keras.training",
    "callbacks": "sbnn_keras.metrics.callbacks",
    "plot": "sbnn_keras.metrics.plot",
    "report": "sbnn_keras.metrics.report",
    "stats": "sbnn_keras.metrics.stats",
    "runtime": "sbnn_runtime",
}

__all__ = sorted(
    set(_EXPORTS) | {"callbacks", "math", "plot", "quantizers", "report", "runtime", "stats"}
)

_aliases.install(__name__, _EXPORTS, _MODULES)


def __getattr__(name):
    if name == "__version__":  # one home: VERSION (read by sbnn_runtime)
        import sbnn_runtime

        return sbnn_runtime.__version__
    return _aliases.load_attribute(name, _EXPORTS, _MODULES)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_MODULES))
