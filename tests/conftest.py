"""Shared test set-up: import sbnn_keras first so TensorFlow gets legacy Keras."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sbnn_keras  # noqa: E402,F401  (must precede tensorflow)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seeds and a fresh Keras name scope."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
