"""The runtime without the training side.

Default run: ``import sbnn_runtime`` and the CLI's help, ``inspect`` and ``bench`` load
no TensorFlow (subprocesses of this interpreter). Slow: a fresh virtualenv with only
NumPy and ai-edge-litert (from pip's cache or index) plus a copy of ``sbnn_runtime/``
and its shared library runs a converted model with the same output as the training
install's TensorFlow interpreter, ``python -m sbnn_runtime inspect|bench`` work, and
``python -X importtime`` lists no TensorFlow module. An unsupported platform or Python
is refused at import with the supported list; a model with Flex ops names them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sbnn_runtime

ROOT = Path(__file__).resolve().parent.parent
TRAINING = ("tensorflow", "tf_keras", "keras", "larq", "larq_compute_engine", "keras_tuner")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0")


def _model_file() -> Path:
    files = sorted((ROOT / "tests" / "golden" / "e2e").glob("sbnn-sparse*.tflite"))
    assert files, "tests/golden/e2e has no sparse-flavour SBNN model"
    return files[0]


def _loaded_after(code: str, python=sys.executable, env=None) -> tuple[list, str]:
    """(training modules in sys.modules after running code, stdout)."""
    probe = code + f"\nimport sys\nprint('LOADED=' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in {TRAINING!r})))\n"
    out = subprocess.run([str(python), "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=env or ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = out.stdout.strip().splitlines()[-1].removeprefix("LOADED=")
    return [m for m in loaded.split(",") if m], out.stdout


@pytest.mark.parametrize("argv", [
    ["--help"], ["convert", "--help"], ["inspect", "--help"], ["bench", "--help"], ["demo", "--help"],
    ["inspect", "MODEL"], ["bench", "MODEL", "--no-lce", "--runs", "2", "--warmup", "0", "-q"],
])
def test_cli_help_inspect_bench_import_no_tensorflow(argv):
    argv = [str(_model_file()) if a == "MODEL" else a for a in argv]
    code = (
        "import contextlib, io\nfrom sbnn_keras.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try:\n        rc = main({argv!r})\n    except SystemExit as e:\n        rc = e.code\n"
        "assert rc == 0, rc\n"
    )
    loaded, _ = _loaded_after(code)
    assert loaded == [], f"sbnn-keras {' '.join(argv)} imported {loaded[:5]}"


def test_import_sbnn_keras_imports_no_tensorflow_until_used():
    loaded, _ = _loaded_after("import sbnn_keras")
    assert loaded == []
    loaded, _ = _loaded_after("import sbnn_keras\nsbnn_keras.QuantConv2D")
    assert "tensorflow" in loaded and "larq" in loaded


def _with_flex_op(content: bytes) -> bytes:
    """The model with its first custom op code renamed to a Flex op."""
    from sbnn_runtime import tflite_model

    schema = tflite_model.schema()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(content), 0))
    custom = [c for c in model.operatorCodes if c.customCode]
    custom[0].customCode = b"FlexConv2DBackpropInput"
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_flex_ops_are_named():
    data = _with_flex_op(_model_file().read_bytes())
    with pytest.raises(ValueError, match="TensorFlow-only \\(Flex\\) ops: FlexConv2DBackpropInput"):
        sbnn_runtime.check_model(data, runtime="ai_edge_litert")
    with pytest.raises(ValueError, match="FlexConv2DBackpropInput"):
        sbnn_runtime.Interpreter(data, runtime="ai_edge_litert")
    sbnn_runtime.check_model(_model_file().read_bytes(), runtime="ai_edge_litert")


# ---- a fresh virtualenv with the runtime only ------------------------------------------
@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory):
    """A venv with numpy + ai-edge-litert and a copy of sbnn_runtime (with the library)."""
    base = tmp_path_factory.mktemp("runtime-venv")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    pins = [f"numpy=={importlib.metadata.version('numpy')}",
            f"ai-edge-litert=={importlib.metadata.version('ai-edge-litert')}"]
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *pins],
                         capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    site = base / "site"
    shutil.copytree(ROOT / "sbnn_runtime", site / "sbnn_runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(sbnn_runtime.library_path(), site / "sbnn_runtime" / "_native" / "libsbnn_delegate.so")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SBNN_DELEGATE_LIB")}
    env.update(PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="0")
    return python, env


@pytest.mark.slow
def test_standalone_runtime_runs_a_model_like_the_training_install(runtime_venv, tmp_path):
    python, env = runtime_venv
    model = _model_file()
    from sbnn_runtime import Interpreter

    x = np.random.default_rng(3).normal(size=[2, *Interpreter(model).input_details[0]["shape"][1:]])
    x = x.astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    reference = Interpreter(model, runtime="tensorflow").predict(x)  # the training install
    code = (
        "import numpy as np, sbnn_runtime\n"
        f"interp = sbnn_runtime.Interpreter({str(model)!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, interp.predict(np.load({str(tmp_path / 'x.npy')!r})))\n"
        "print(sbnn_runtime.resolve_runtime(), sbnn_runtime.library_path())\n"
    )
    loaded, stdout = _loaded_after(code, python, env)
    assert loaded == [], f"the standalone runtime imported {loaded}"
    assert stdout.startswith("ai_edge_litert "), stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_standalone_cli_inspect_bench_and_importtime(runtime_venv, tmp_path):
    python, env = runtime_venv
    model = str(_model_file())

    def run(*args):
        out = subprocess.run([str(python), *args], capture_output=True, text=True, timeout=600,
                             env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        return out

    info = json.loads(run("-m", "sbnn_runtime", "inspect", model, "--json").stdout)
    assert info["op_counts"].get("SbnnBconv2d", 0) >= 1
    assert all(f["format"] == "sbf1" for f in info["binary_filters"] if f["type"] == "SbnnBconv2d")
    bench = run("-m", "sbnn_runtime", "bench", model, "--runs", "3", "--warmup", "1", "-q",
                "--lce", "no", "--json", str(tmp_path / "b.json"))
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["runtime"].startswith("sbnn"), bench.stdout
    assert rows[0]["status"] == "ok" and rows[0]["median_ms"] > 0, bench.stdout
    importtime = run("-X", "importtime", "-c", "import sbnn_runtime; sbnn_runtime.Interpreter(%r)" % model)
    modules = [line.split("|")[-1].strip() for line in importtime.stderr.splitlines() if "|" in line]
    assert "ai_edge_litert.interpreter" in modules
    assert not [m for m in modules if m.split(".")[0] in TRAINING], "TensorFlow imported"
