"""Importing sbnn_keras selects legacy Keras, or says exactly what to do."""

import os
import subprocess
import sys

import pytest


def run(code, **env):
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    full_env.pop("TF_USE_LEGACY_KERAS", None)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)


def test_import_first_gives_tf_keras():
    out = run("import sbnn_keras, tensorflow as tf; print(tf.keras.Model.__module__)")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("tf_keras")


def test_tensorflow_imported_first_with_keras3_is_a_clear_error():
    out = run("import tensorflow as tf; tf.keras.Model; import sbnn_keras")
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "import sbnn_keras before tensorflow" in out.stderr and "TF_USE_LEGACY_KERAS=1" in out.stderr


@pytest.mark.parametrize("value", ["0", "false"])
def test_legacy_keras_disabled_explicitly_is_a_clear_error(value):
    out = run("import sbnn_keras", TF_USE_LEGACY_KERAS=value)
    assert out.returncode != 0
    assert f"TF_USE_LEGACY_KERAS is set to {value!r}" in out.stderr


def test_env_var_set_by_user_works_with_tensorflow_first():
    out = run("import tensorflow as tf; import sbnn_keras; print(tf.keras.Model.__module__)", TF_USE_LEGACY_KERAS="1")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("tf_keras")
