"""Every command's --help works (demo's included), and TensorFlow's Python warnings
stay hidden unless --verbose. Run as real processes, as a user types them. The < 1 s goal
for --help is measured by benchmarks/cli_help.py, not asserted here."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras

HELP = [
    (["sbnn_keras.cli", "--help"], "convert"),
    (["sbnn_keras.cli", "convert", "--help"], "--flavor"),
    (["sbnn_keras.cli", "inspect", "--help"], "--json"),
    (["sbnn_keras.cli", "bench", "--help"], "--float-model"),
    (["sbnn_keras.cli", "demo", "--help"], "--epochs"),
    (["sbnn_runtime", "--help"], "inspect"),
    (["sbnn_runtime", "bench", "--help"], "--lce"),
]


@pytest.mark.parametrize("argv, expect", HELP, ids=[" ".join(a) for a, _ in HELP])
def test_help(argv, expect):
    r = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout


def test_convert_hides_tensorflow_warnings(tmp_path):
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 3)),
        tf.keras.layers.Conv2D(8, 3, padding="same"),
        tf.keras.layers.BatchNormalization(),
        sbnn_keras.QuantConv2D(8, 3, padding="same"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(2),
    ])
    model(np.zeros((1, 8, 8, 3), np.float32))
    path = tmp_path / "m.keras"
    model.save(path)
    # A user's shell: no TF_CPP_MIN_LOG_LEVEL (the test session sets one; a user's own
    # setting is respected by the CLI).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-m", "sbnn_keras.cli", "convert", str(path), "-o",
                        str(tmp_path / "m.tflite"), "-q"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    # TensorFlow's Python warnings (SavedModel, "compiled metrics") are hidden. Its C++
    # start-up lines (CUDA probing) come while `import sbnn_keras` loads TensorFlow,
    # before the CLI runs, and are not covered here.
    noise = [ln for ln in r.stderr.splitlines() if "WARNING:tensorflow" in ln or "WARNING:absl" in ln]
    assert noise == [], noise
