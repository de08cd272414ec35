"""Old import paths of modules that moved into rooms (docs/architecture.md).

``sbnn_keras.report``, ``sbnn_keras.runtime``, ``sbnn_keras.zoo``, ... keep working:
importing an old name returns the module at its new place (the same object, so
``monkeypatch`` and ``isinstance`` see one module). Modules that the package imports
anyway are entered in ``sys.modules`` at once; the others (the tuner, the apps) are
found on demand by a meta-path finder, so ``import sbnn_keras`` stays as cheap as
before and ``python -m sbnn_keras.demo`` still runs the demo.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

#: old module name -> its new place
MOVED = {
    "sbnn_keras.stats": "sbnn_keras.metrics.stats",
    "sbnn_keras.report": "sbnn_keras.metrics.report",
    "sbnn_keras.callbacks": "sbnn_keras.metrics.callbacks",
    "sbnn_keras.plot": "sbnn_keras.metrics.plot",
    "sbnn_keras.convert": "sbnn_keras.export.convert",
    "sbnn_keras.lowering": "sbnn_keras.export.lowering",
    "sbnn_keras.compress": "sbnn_keras.export.compress",
    "sbnn_keras.tuner": "sbnn_keras.tuning.tuner",
    "sbnn_keras.pareto": "sbnn_keras.tuning.pareto",
    "sbnn_keras.runtime": "sbnn_runtime",
    "sbnn_keras.sparse_format": "sbnn_runtime.sparse_format",
    "sbnn_keras.tflite_model": "sbnn_runtime.tflite_model",
    "sbnn_keras.zoo": "sbnn_zoo.zoo",
    "sbnn_keras.authors": "sbnn_zoo.authors",
    "sbnn_keras.models": "sbnn_zoo.models",
    "sbnn_keras.datasets": "sbnn_zoo.datasets",
    "sbnn_keras.demo": "sbnn_zoo.demo",
    "sbnn_keras.deploy_report": "sbnn_zoo.deploy_report",
}


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name as the module at its new place."""

    def __init__(self, target: str):
        self.target = target
        self._spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        # The import system stamped the alias spec on the shared module; the
        # module keeps its own (its name and file are the new ones).
        module.__spec__ = self._spec

    def get_code(self, fullname):
        """The new module's code, for ``python -m OLD.NAME`` (runpy)."""
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)

    def is_package(self, fullname):
        return False


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Register the finder and alias the moved modules that are already imported."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
    for old, new in MOVED.items():
        if new in sys.modules:
            sys.modules.setdefault(old, sys.modules[new])


def resolve(name: str):
    """``sbnn_keras.<name>`` for a moved module not imported yet (module ``__getattr__``)."""
    if f"sbnn_keras.{name}" not in MOVED:
        raise AttributeError(f"module 'sbnn_keras' has no attribute {name!r}")
    return importlib.import_module(f"sbnn_keras.{name}")
