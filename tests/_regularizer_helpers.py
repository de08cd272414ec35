"""What the regularizer tests share: a small SBNN network, its data, and the gradients
of the task loss and of the regularized loss with respect to the latent kernels."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import sbnn_keras


def small_model(kernel_quantizer="sbnn_learned", dense_l2=None):
    """Float conv, two SBNN convs, a Dense head (with an L2 kernel penalty if given)."""
    regularizer = tf.keras.regularizers.L2(dense_l2) if dense_l2 is not None else None
    return tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1)),
            tf.keras.layers.Conv2D(8, 3, padding="same"),
            tf.keras.layers.BatchNormalization(),
            sbnn_keras.QuantConv2D(16, 3, padding="same", kernel_quantizer=kernel_quantizer),
            tf.keras.layers.BatchNormalization(),
            sbnn_keras.QuantConv2D(16, 3, kernel_quantizer=kernel_quantizer),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(4, kernel_regularizer=regularizer),
        ]
    )


def data(n=64, seed=0, shape=(8, 8, 1)):
    """Gaussian images with four classes read off their mean and first pixel."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int64) + 2 * (x[:, 0, 0, 0] > 0)
    return x, y


def loss_gradients(reg, model, x, y, kernels):
    """``(task, total, g_task, g_total)``: the task loss and the regularized loss of one
    training-mode batch, and their gradients with respect to ``kernels``."""
    with tf.GradientTape(persistent=True) as tape:
        y_pred = model(x, training=True)
        task = reg.task_loss(y, y_pred)
        total = reg(y, y_pred)
    return task, total, tape.gradient(task, kernels), tape.gradient(total, kernels)
