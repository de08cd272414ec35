"""Modules that moved into rooms (docs/architecture.md) keep their old import paths."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sbnn_keras
from sbnn_keras import _aliases

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("old", sorted(_aliases.MOVED))
def test_old_path_is_the_moved_module(old):
    module = importlib.import_module(old)
    new = _aliases.MOVED[old]
    assert module is importlib.import_module(new)
    assert module.__name__ == new and module.__spec__.name == new  # its own identity
    assert sys.modules[old] is module
    assert getattr(sbnn_keras, old.rpartition(".")[2]) is not None


def test_from_imports_and_attributes_of_old_paths():
    from sbnn_keras.convert import convert_with_report
    from sbnn_keras.recalibration import recalibrate_batchnorm
    from sbnn_keras.report import sparsity_report
    from sbnn_keras.runtime import Interpreter
    from sbnn_keras.tuner import SbnnTuner

    import sbnn_keras.convert  # noqa: F401  (importing the old module keeps the function)
    import sbnn_runtime
    from sbnn_keras.training import recalibration
    from sbnn_keras.tuning.tuner import SbnnTuner as new_tuner

    assert callable(sbnn_keras.convert) and not hasattr(sbnn_keras.convert, "__path__")
    assert sbnn_keras.convert.__module__ == "sbnn_keras.export.convert"
    assert convert_with_report is sbnn_keras.convert_with_report
    assert sparsity_report is sbnn_keras.sparsity_report
    assert Interpreter is sbnn_runtime.Interpreter is sbnn_keras.Interpreter
    assert sbnn_keras.runtime is sbnn_runtime
    assert SbnnTuner is new_tuner
    assert recalibrate_batchnorm is recalibration.recalibrate_batchnorm
    with pytest.raises(AttributeError, match="no_such_module"):
        sbnn_keras.no_such_module  # noqa: B018


def test_zoo_classes_reach_custom_objects_without_a_backward_import():
    """The library does not import the zoo; the zoo's classes come through its entry
    point (package metadata) or its own registration when imported (old or new path)."""
    code = (
        "import sys, sbnn_keras\n"
        "from sbnn_keras import regularizer\n"
        "assert 'sbnn_zoo' not in sys.modules, 'the library imported the apps'\n"
        "assert regularizer._REGISTERED == {}\n"
        "objs = sbnn_keras.custom_objects()\n"
        "from sbnn_keras.zoo import EdeSign, RPReLU\n"
        "assert objs['EdeSign'] is EdeSign and objs['RPReLU'] is RPReLU\n"
        "assert regularizer._REGISTERED['EdeSign'] is EdeSign\n"
        "print('ok')\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_python_m_old_demo_path_runs_the_demo():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for name in ("sbnn_keras.demo", "sbnn_zoo.demo"):
        out = subprocess.run([sys.executable, "-m", name, "--help"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "--epochs" in out.stdout and "--quick" in out.stdout


def test_runtime_package_exports_the_interpreter_names():
    """``sbnn_runtime``'s public names are ``sbnn_runtime.interpreter``'s and inspection's
    entry points, the same objects."""
    import sbnn_runtime
    from sbnn_runtime import inspection, interpreter

    assert sbnn_runtime.__all__ == [*interpreter.__all__, "format_inspection", "inspect"]
    for name in sbnn_runtime.__all__:
        home = inspection if name in ("format_inspection", "inspect") else interpreter
        assert getattr(sbnn_runtime, name) == getattr(home, name), name
