"""Smoke test of `python -m sbnn_zoo.demo --quick` (tiny subset, 1 epoch)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sbnn_zoo import datasets

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    datasets.find_idx_dir() is None,
    reason="Fashion-MNIST IDX files not found (apt-get install dataset-fashion-mnist "
    "or set SBNN_FASHION_MNIST_DIR)",
)


def test_demo_quick(tmp_path):
    out = tmp_path / "artifacts"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "sbnn_zoo.demo", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    bnn = re.search(r"BNN .*test accuracy: (0\.\d+|1\.0+)", text)
    sbnn = re.search(r"SBNN .*test accuracy: (0\.\d+|1\.0+)\s+connections: (0\.\d+)", text)
    assert bnn and sbnn, text
    assert 0.0 <= float(sbnn.group(1)) <= 1.0
    report_path = out / "sparsity_report.json"
    assert report_path.exists() and str(report_path) in text
    report = json.loads(report_path.read_text())
    assert json.dumps(report).count("connections") >= 1
    results = json.loads((out / "demo_results.json").read_text())
    assert set(results) >= {"bnn", "sbnn", "machine"}
    assert 0.0 <= results["sbnn"]["connections"] <= 1.0
    png = out / "hamming_histograms.png"
    if png.exists():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(png) in text
    for key in ("bnn", "sbnn"):  # BatchNorm recalibrated over every training image
        r = results[key]
        n, bs = r["config"]["train_size"], r["config"]["batch_size"]
        assert r["recalibration"]["samples"] == n and r["recalibration"]["batches"] == -(-n // bs)
        assert r["recalibration"]["test_accuracy"] == r["test_accuracy"]
        assert 0.0 <= r["test_accuracy_before_recalibration"] <= 1.0
    assert "BatchNorm recalibrated" in text
