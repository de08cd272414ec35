"""Golden ``.tflite`` files: committed conversions that no test run writes.

``tests/golden/<suite>/<stem>-<key>.tflite`` holds the conversion of one test model;
``key`` hashes what the bytes depend on besides the converter: the model builder's
source, the conversion arguments, and the larq, LCE and TensorFlow versions. A test
reads the file whose key matches; a missing one (a builder or a version changed) fails
the test with the command that regenerates them: ``make goldens`` (sets
``SBNN_WRITE_GOLDENS=1`` and runs the suites that use goldens; the only writer). The
converter itself is not in the key: ``test_end_to_end.py``'s slow
``test_goldens_equal_fresh_conversions`` converts every e2e model again and compares
the bytes, so a converter change that alters its output is caught, and one that does
not (a refactoring) leaves the goldens alone (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_ROOT = ROOT / "tests" / "golden"
WRITE = os.environ.get("SBNN_WRITE_GOLDENS") == "1"


def key(*parts) -> str:
    """10 hex digits of the parts plus the larq, LCE and TensorFlow versions."""
    versions = [importlib.metadata.version(d) for d in ("larq", "larq-compute-engine", "tensorflow")]
    return hashlib.sha256(repr((parts, versions)).encode()).hexdigest()[:10]


def golden(suite: str, stem: str, file_key: str, make: Callable[[], bytes]) -> bytes:
    """The committed bytes of ``suite/stem`` for ``file_key``; with SBNN_WRITE_GOLDENS=1
    ``make()`` is run and its bytes become the golden (older keys of the stem go)."""
    directory = GOLDEN_ROOT / suite
    path = directory / f"{stem}-{file_key}.tflite"
    if WRITE:
        data = make()
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob(f"{stem}-*.tflite"):
            old.unlink()
        path.write_bytes(data)
        return data
    if path.is_file():
        return path.read_bytes()
    others = sorted(p.name for p in directory.glob(f"{stem}-*.tflite"))
    pytest.fail(
        f"golden {path.relative_to(ROOT)} is missing ({'committed: ' + ', '.join(others) if others else 'none committed'}): "
        "its builder or the larq/LCE/TensorFlow versions changed. Regenerate the goldens "
        "with `make goldens` and commit them."
    )
