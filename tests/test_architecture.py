"""The import graph follows the rooms of docs/architecture.md.

Every ``import`` statement of the three packages (at module level or inside a
function: a lazy import is still a dependency) is checked against the room ranks
below: a module may import its own room and rooms of lower rank, never a room of
higher or equal rank (two rooms of one rank are siblings that do not know each other).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sbnn_runtime", "sbnn_keras", "sbnn_zoo")

#: room -> rank. Data flows math -> quantizers -> layers -> regularizer -> metrics ->
#: export -> runtime; the runtime is its own package below the library (it imports
#: nothing of it), so export may use its readers; apps sit above the library.
RANKS = {
    "sbnn_runtime": 0,
    "sbnn_keras._compat": 1,
    "sbnn_keras._checks": 1,
    "sbnn_keras.math": 1,
    "sbnn_keras.quantizers": 2,
    "sbnn_keras.layers": 3,
    "sbnn_keras.regularizer": 4,
    "sbnn_keras.metrics": 5,
    "sbnn_keras.export": 6,
    "sbnn_keras.tuning": 6,
    "sbnn_keras.training": 6,  # steps around fit (BatchNorm recalibration): uses metrics
    "sbnn_keras": 7,  # the package itself: its __init__ re-exports the rooms
    "sbnn_keras._aliases": 7,  # old import paths (names only, imported on demand)
    "sbnn_zoo": 8,
    "sbnn_keras.cli": 9,  # the command line dispatches to every room and to the demo
}

#: third-party packages that the standalone runtime must not import at all
TRAINING_ONLY = ("tensorflow", "tf_keras", "keras", "larq", "larq_compute_engine", "keras_tuner")
#: ... except these lazy imports: the TFLite interpreter / schema inside tensorflow,
#: used only when the caller asks for runtime="tensorflow" (a training install), and
#: LCE's interpreter, which bench times in a child process when it is installed (its
#: row says "not installed" otherwise)
RUNTIME_LAZY_ALLOWED = {"tensorflow", "tensorflow.lite.python.schema_py_generated",
                        "larq_compute_engine.tflite.python.interpreter"}


def room(module: str) -> str | None:
    """The room a module belongs to: the longest prefix in RANKS."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return prefix
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import statement."""
    tree = ast.parse(source)
    top = {id(n) for n in tree.body}
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = ".".join(base[: len(base) - node.level + 1])
                target = f"{parent}.{node.module}" if node.module else parent
            else:
                target = node.module
            # `from package import submodule` depends on the submodule only (the
            # package's __init__ runs for any submodule import anyway)
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            found += [(t, node.lineno, id(node) in top) for t in (subs or [target])]
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """What is wrong with one module's imports (empty when it follows the rooms)."""
    own = room(module)
    bad = {}
    for target, line, at_top in imports(source, module, is_package):
        where = f"{module}:{line} imports {target}"
        if own == "sbnn_runtime":
            if target.split(".")[0] in ("sbnn_keras", "sbnn_zoo"):
                bad[line] = f"{where}: the runtime imports nothing of the library or the apps"
            if target.split(".")[0] in TRAINING_ONLY and (at_top or target not in RUNTIME_LAZY_ALLOWED):
                bad[line] = f"{where}: the runtime must not need TensorFlow/LCE/Keras"
            continue
        other = room(target)
        if other is None or other == own or target.split(".")[0] not in PACKAGES:
            continue
        if own == "sbnn_keras" and is_package:
            continue  # the package __init__ re-exports the rooms
        if RANKS[other] >= RANKS[own]:
            bad[line] = (f"{where}: room {own} (rank {RANKS[own]}) may not import room {other} "
                         f"(rank {RANKS[other]})")
    return list(bad.values())


def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield module_name(path), path


def test_every_module_has_a_room():
    homeless = [m for m, _ in _sources() if room(m) is None]
    assert not homeless, f"modules outside every room of RANKS / docs/architecture.md: {homeless}"


def test_imports_follow_the_rooms():
    bad = []
    for module, path in _sources():
        bad += violations(module, path.read_text(encoding="utf-8"), path.name == "__init__.py")
    assert not bad, "imports against the direction of the rooms:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("sbnn_keras.layers", "from sbnn_keras.metrics import report\n", "may not import room sbnn_keras.metrics"),
        ("sbnn_keras.math", "def f():\n    from sbnn_keras import quantizers\n", "may not import"),
        ("sbnn_keras.export.convert", "from sbnn_keras.tuning import pareto\n", "sbnn_keras.tuning"),
        ("sbnn_keras.regularizer", "from sbnn_zoo import zoo\n", "room sbnn_zoo"),
        ("sbnn_keras.metrics.report", "import sbnn_keras\n", "room sbnn_keras "),
        ("sbnn_runtime.interpreter", "from sbnn_keras import math\n", "imports nothing of the library"),
        ("sbnn_runtime.interpreter", "import tensorflow as tf\n", "must not need TensorFlow"),
        ("sbnn_runtime.tflite_model", "def f():\n    import larq_compute_engine\n", "must not need"),
        ("sbnn_runtime.sparse_format", "from . import interpreter\nimport numpy\n", None),
        ("sbnn_runtime.interpreter", "def f():\n    import tensorflow as tf\n", None),
        ("sbnn_keras.export.convert", "from sbnn_runtime.tflite_model import read_tflite\n", None),
        ("sbnn_zoo.demo", "from sbnn_keras.metrics.report import sparsity_report\n", None),
        ("sbnn_keras.cli", "def f():\n    from sbnn_zoo import demo\n", None),
    ],
)
def test_the_checker_sees_backward_imports(module, source, expected):
    found = violations(module, source)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_runtime_imports_without_tensorflow():
    """``import sbnn_runtime`` (and its readers) loads no training package."""
    code = (
        "import sys, sbnn_runtime, sbnn_runtime.tflite_model, sbnn_runtime.sparse_format\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING_ONLY!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"sbnn_runtime imported {out.stdout.strip()}"
