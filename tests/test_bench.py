"""`sbnn-keras bench` / sbnn_runtime.bench: rows and exit codes against real runtimes.

The sbnn row runs the model with the delegate; the LCE row runs LCE's interpreter in
its fastest configuration in a child process; an SbnnBconv2d file gets "not supported
by LCE" instead of an error; a runtime that was asked for and failed makes the exit
status 1.
"""

import json
import re

import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
from sbnn_keras.cli import main
from _runtime_helpers import small_sbnn_model
from sbnn_runtime import bench


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    model = small_sbnn_model()
    d = tmp_path_factory.mktemp("bench")
    paths = {}
    for flavor in ("lce", "sparse"):
        paths[flavor] = d / f"{flavor}.tflite"
        paths[flavor].write_bytes(sbnn_keras.convert(model, flavor=flavor))
    float_model = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.Conv2D(8, 3)])
    paths["float"] = d / "float.tflite"
    paths["float"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(float_model).convert())
    return paths


def _rows(path):
    return {(r["runtime"].split()[0], r["threads"]): r for r in json.loads(path.read_text())["rows"]}


def test_sparse_file_lce_row_says_not_supported(models, tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert main(["bench", str(models["sparse"]), "--runs", "2", "--warmup", "0", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not supported by LCE (SbnnBconv2d)" in text
    rows = _rows(out)
    assert rows[("sbnn", 1)]["status"] == "ok" and rows[("sbnn", 1)]["median_ms"] > 0
    assert rows[("lce", 1)]["status"] == "not supported"
    # Asked for explicitly, LCE's refusal is a failure.
    assert main(["bench", str(models["sparse"]), "--runs", "1", "--warmup", "0", "--lce", "yes"]) == 1


def test_lce_file_times_lce_fastest_in_a_child(models, tmp_path, capsys):
    out = tmp_path / "rows.json"
    rc = main(["bench", str(models["lce"]), "--runs", "3", "--warmup", "1", "--json", str(out),
               "--float-model", str(models["float"])])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "lce xnnpack+indirect-bgemm" in text
    rows = _rows(out)
    assert rows[("lce", 1)]["status"] == "ok" and rows[("lce", 1)]["median_ms"] > 0
    assert rows[("xnnpack", 1)]["status"] == "ok"
    assert "sbnn vs lce xnnpack+indirect-bgemm at 1 thread(s):" in text


def test_failing_runtime_exits_1(models, capsys):
    # A kernel the delegate does not have: the sbnn row fails and says why.
    assert main(["bench", str(models["lce"]), "--runs", "1", "--warmup", "0", "--no-lce",
                 "--kernel", "no_such_kernel"]) == 1
    assert "failed:" in capsys.readouterr().out


def test_lce_child_crash_is_a_row(models, monkeypatch):
    # The child is a real process that dies by a signal, as LCE's interpreter does on
    # some files (docs/reliability.md): the row says so and the status is 1.
    real_run = bench.subprocess.run

    def crashing_child(cmd, **kwargs):
        return real_run([bench.sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                        **kwargs)

    monkeypatch.setattr(bench.subprocess, "run", crashing_child)
    rows, status = bench.run(models["lce"], runs=1, warmup=0)
    lce = [r for r in rows if r.runtime.startswith("lce")][0]
    assert (lce.status, lce.detail) == ("crashed", "LCE's interpreter died (SIGSEGV)")
    assert status == 1



def test_a_file_that_kills_lce_is_a_row_not_a_dead_cli(tmp_path, capsys):
    """A real LCE crash: the VGG golden with its LceBMaxPool2d stride set to 10 makes
    LCE's interpreter (TF 2.16's XNNPACK max-pool) corrupt its heap ("double free or
    corruption": SIGABRT, or SIGSEGV when the damage faults first). bench keeps running: the LCE row says it died, the sbnn row says
    check_model refused the file, and the exit status is 1."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "reliability"))
    import mutate as mu

    base = sorted((Path(__file__).parent / "golden" / "e2e").glob("vgg-lce-*.tflite"))[0]
    m = mu.read(base.read_bytes())
    pool = next(i for i, op in mu.custom_ops(m) if mu.op_name(m, op) == "LceBMaxPool2d")
    mu.set_option(m, pool, "stride_height", 10)
    path = tmp_path / "kills_lce.tflite"
    path.write_bytes(mu.write(m))
    assert main(["bench", str(path), "--lce", "yes", "--runs", "1", "--warmup", "0"]) == 1
    out = capsys.readouterr()
    lce = next(line for line in out.out.splitlines() if line.startswith("lce"))
    # heap corruption: glibc aborts (SIGABRT) or the damage faults first (SIGSEGV)
    assert "crashed" in lce and re.search(r"LCE's interpreter died \(SIG(ABRT|SEGV)\)", lce), out.out
    sbnn = next(line for line in out.out.splitlines() if line.startswith("sbnn"))
    assert "stride" in sbnn and "failed" in sbnn, out.out

def test_bad_arguments(models, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", str(models["lce"]), "--threads", "0"])
    assert exc.value.code == 2 and "--threads" in capsys.readouterr().err
    assert main(["bench", str(models["lce"]), "--float-model", "missing.tflite"]) == 1
    assert "--float-model 'missing.tflite' does not exist" in capsys.readouterr().err
