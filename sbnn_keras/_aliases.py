"""The package's names loaded on first use, and the old paths of moved modules.

``sbnn_keras.report``, ``sbnn_keras.runtime``, ``sbnn_keras.zoo``, ... keep working:
importing an old name returns the module at its new place (the same object, so
``monkeypatch`` and ``isinstance`` see one module). A meta-path finder resolves them
on demand, so ``import sbnn_keras`` stays cheap and ``python -m sbnn_keras.demo``
still runs the demo. ``sbnn_keras.convert`` is both the function and the old module
name: importing the module never replaces the function on the package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

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
    "sbnn_keras.recalibration": "sbnn_keras.training.recalibration",
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
        # the new module's file as origin: runpy puts it in sys.argv[0] (python -m OLD)
        origin = getattr(importlib.util.find_spec(new), "origin", None)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new), origin=origin)


class _Package(types.ModuleType):
    """The package's module type: a submodule import does not hide a function."""

    _keep: frozenset = frozenset()

    def __setattr__(self, name, value):
        if name in self._keep and isinstance(value, types.ModuleType):
            return  # the import system binding sbnn_keras.convert (module) on the package
        super().__setattr__(name, value)


def install(package: str, exports: dict, modules: dict) -> None:
    """Registers the finder and protects exported names that are also old module names."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
    module = sys.modules[package]
    module.__class__ = _Package
    _Package._keep = frozenset(
        name for name in exports if f"{package}.{name}" in MOVED and name not in modules
    )


def load_attribute(name: str, exports: dict, modules: dict):
    """``sbnn_keras.<name>`` on first use: an exported name, a room, or a moved module."""
    package = sys.modules[__name__.rpartition(".")[0]]
    if name in exports:
        value = getattr(importlib.import_module(exports[name]), name)
    elif name in modules:
        value = importlib.import_module(modules[name])
    elif f"{package.__name__}.{name}" in MOVED:
        value = importlib.import_module(f"{package.__name__}.{name}")
    else:
        raise AttributeError(f"module {package.__name__!r} has no attribute {name!r}")
    types.ModuleType.__setattr__(package, name, value)
    return value
