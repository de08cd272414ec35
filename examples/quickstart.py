"""Quickstart: train a sparse binary network (SBNN) on Fashion-MNIST in ~40 lines.

    python examples/quickstart.py            # about 5 minutes on 2 CPU cores
"""

import sbnn_keras  # first: selects legacy Keras (tf_keras) for larq
import tensorflow as tf

from sbnn_zoo.datasets import load_fashion_mnist
from sbnn_zoo.models import fashion_mnist_cnn
from sbnn_keras.metrics.report import sparsity_report
from sbnn_keras.metrics.plot import plot_hamming_histograms

EPOCHS, BATCH, EC, GAMMA = 6, 128, 0.05, 0.7  # the recipe of docs/results.md

# 1. Data: uint8 images (N, 28, 28, 1); the model rescales them itself.
(x_train, y_train), (x_test, y_test) = load_fashion_mnist()

# 2. Model: float stem and classifier, binary sbnn_keras.QuantConv2D blocks with
#    learned {alpha, beta} kernels ("sbnn_learned").
tf.keras.utils.set_random_seed(1)
model = fashion_mnist_cnn(kernel_quantizer="sbnn_learned")

# 3. Loss: the task loss plus the adaptive sparsity term; at most EC of the
#    binary weights may be connections (value beta).
reg = sbnn_keras.SparsityRegularizer(
    "sparse_categorical_crossentropy", expected_connections=EC, gamma=GAMMA,
    lambda_threshold=3e-3)  # caps lambda as U/N nears EC (short runs; paper: 1e-4)
steps = EPOCHS * -(-len(x_train) // BATCH)
optimizer = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(1e-3, steps))
model.compile(optimizer, loss=reg.bind(model), metrics=["accuracy"])

# 4. Train, then evaluate.
model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=2)
_, accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
print(f"test accuracy {accuracy:.4f}, last step: {reg.values()}")

# 5. How sparse is it? Connections, bits/weight, K0/K1, BOPs per layer.
report = sparsity_report(model)
report.print()
print("connections:", report.total.connections)
print("histograms:", plot_hamming_histograms(report, "hamming_histograms.png"))
