"""The sbnn-keras command: each subcommand on success and on bad input."""

import json

import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
from sbnn_keras.cli import main
from _runtime_helpers import small_sbnn_model


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = small_sbnn_model()
    path = tmp_path_factory.mktemp("cli") / "model.keras"
    model.save(path)
    return path


def test_convert_and_inspect(saved_model, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    report = tmp_path / "report.json"
    assert main(["convert", str(saved_model), "-o", str(out), "--flavor", "sparse", "--report-json", str(report)]) == 0
    text = capsys.readouterr().out
    assert "SbnnBconv2d" in text and f"wrote {out}" in text
    assert json.loads(report.read_text())["op_counts"]["SbnnBconv2d"] == 1
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    (filt,) = info["binary_filters"]
    assert filt["format"] == "sbf1" and filt["bits_per_weight"] < 0.5 and abs(filt["connections"] - 0.05) < 0.03
    lce = tmp_path / "lce.tflite"
    assert main(["convert", str(saved_model), "-o", str(lce), "-q"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(lce)]) == 0
    assert "LceBconv2d" in capsys.readouterr().out


def test_inspect_keras_model(saved_model, capsys):
    assert main(["inspect", str(saved_model)]) == 0
    out = capsys.readouterr().out
    assert "Total" in out and "quant_conv2d" in out
    assert main(["inspect", str(saved_model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["connections"] < 0.1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["convert", "missing.keras", "-o", "x.tflite"], "model 'missing.keras' does not exist"),
        (["inspect", "missing.tflite"], "file 'missing.tflite' does not exist"),
        (["bench", "missing.tflite"], "model 'missing.tflite' does not exist"),
    ],
)
def test_missing_files(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"sbnn-keras: error: {message}"


def test_wrong_formats(tmp_path, capsys):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    assert main(["convert", str(junk), "-o", str(tmp_path / "o.tflite")]) == 1
    assert capsys.readouterr().err.startswith("sbnn-keras: error: cannot load")
    assert main(["inspect", str(junk)]) == 1
    assert "cannot load" in capsys.readouterr().err
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00\x00\x00\x00TFL3" + b"\xff" * 30)
    assert main(["inspect", str(bad)]) == 1
    assert "invalid" in capsys.readouterr().err
    assert main(["bench", str(junk)]) == 1
    assert "is not a .tflite file" in capsys.readouterr().err


def test_unsupported_model(tmp_path, capsys):
    model = tf.keras.Sequential([tf.keras.Input((6, 4)),
                                 sbnn_keras.QuantDense(3, input_quantizer=None, name="float_in")])
    path = tmp_path / "float_in.keras"
    model.save(path)
    assert main(["convert", str(path), "-o", str(tmp_path / "o.tflite")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'float_in' has binary weights but a float input" in err
    plain = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2, name="d")], name="plain")
    plain_path = tmp_path / "plain.keras"
    plain.save(plain_path)
    assert main(["inspect", str(plain_path)]) == 1
    assert "no SBNN layer" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["bench", "m.tflite", "--runs", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["convert", "m.keras", "-o", "x", "--flavor", "fast"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "convert" in capsys.readouterr().out


def test_bench_runs_both_runtimes(saved_model, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    assert main(["convert", str(saved_model), "-o", str(out), "-q"]) == 0
    result = tmp_path / "bench.json"
    assert main(["bench", str(out), "--runs", "3", "--warmup", "1", "-q", "--json", str(result)]) == 0
    rows = json.loads(result.read_text())["rows"]
    # LCE's row is its fastest configuration, named in the table (tests/test_bench.py).
    assert {r["runtime"] for r in rows} == {"sbnn (ai_edge_litert)", "lce xnnpack+indirect-bgemm"}
    assert all(r["status"] == "ok" and r["median_ms"] > 0 for r in rows)
