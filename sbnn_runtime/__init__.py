"""sbnn_runtime: run converted SBNN/BNN ``.tflite`` models with the sbnn delegate.

The deployment half of the project, installable on its own (a Raspberry Pi needs no
TensorFlow, LCE or Keras): it imports only the standard library and NumPy, and a
TFLite interpreter (``ai_edge_litert``, or ``tf.lite`` in a training install) when a
model is loaded. ``sbnn_keras.runtime`` is this package.

    >>> from sbnn_runtime import Interpreter
    >>> interp = Interpreter("model.tflite", num_threads=2)   # doctest: +SKIP
    >>> y = interp.predict(x)                                   # doctest: +SKIP

Modules: ``interpreter`` (the delegate and the interpreter around it),
``tflite_model`` (reading a ``.tflite``'s operators), ``sparse_format`` (the SBF1
filter format of ``SbnnBconv2d``), ``inspection`` and ``bench`` (what a file holds,
and its latency; ``python -m sbnn_runtime inspect|bench``). See docs/runtime.md and docs/architecture.md.
"""

from sbnn_runtime import _platform

_platform.check()  # a wheel on the wrong machine says so here, with the supported list

from sbnn_runtime import interpreter  # noqa: E402
from sbnn_runtime.inspection import format_inspection, inspect  # noqa: E402
from sbnn_runtime.interpreter import (  # noqa: E402
    RUNTIMES,
    Interpreter,
    UnsupportedRuntimeError,
    available_kernels,
    check_model,
    describe,
    library_path,
    load_delegate,
    resolve_runtime,
    runtime_version,
    tested_runtimes,
)

#: the interpreter module's public names (TESTED_RUNTIMES through __getattr__) and
#: inspection's two entry points
__all__ = [*interpreter.__all__, "format_inspection", "inspect"]


def _version() -> str:
    """The project's version: the VERSION file of a source tree, else the installed
    distribution's metadata (built from the same file)."""
    from pathlib import Path

    source = Path(__file__).resolve().parent.parent / "VERSION"
    if source.is_file():
        return source.read_text(encoding="utf-8").strip()
    import importlib.metadata

    for dist in ("sbnn_keras", "sbnn-runtime", "sbnn_runtime"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


__version__ = _version()


def __getattr__(name):
    if name == "TESTED_RUNTIMES":
        return tested_runtimes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
