"""Si-BNN on Fashion-MNIST: {0, +1} activations with trainable thresholds, sparse
{alpha, beta} kernels, converted and run with the project's TFLite delegate.

    python examples/si_bnn_fashion_mnist.py --quick     # smoke run: ~30 s
    python examples/si_bnn_fashion_mnist.py             # 6 epochs: a few minutes on 2 cores

Si-BNN (seeds/si-bnn-abstract.txt) binarizes activations to {0, +1},
``x01 = 1[x >= t]``, a 1-bit ReLU, with a trainable threshold ``t`` per channel
that also places the backward window (``sbnn_keras.SiBnnQuantizer``, alias
``"si_bnn"``). Together with SBNN's {alpha, beta} kernels, whose connections are
the weights equal to beta, a layer's core is ``popcount(x01 AND w01)`` on two
sparse bit vectors.

The network is the demo CNN (``sbnn_zoo.models.fashion_mnist_cnn``: float stem
and classifier, four binary 3x3 convolutions) with ``input_quantizer="si_bnn"``,
trained with the ``SparsityRegularizer`` at EC = 0.05 (the demo's short-run
recipe: gamma 0.7, lambda threshold 3e-3, Adam 1e-3 with cosine decay). Then:

1. the sparsity report (weight connections, K0/K1) and, per binary layer, the
   learned thresholds and the share of activations that are 1;
2. conversion with ``sbnn_keras.convert(flavor="sparse")`` (the {0,1} input
   is lowered to ``x01 = (1 + sign(x - t)) / 2``, docs/conversion.md);
3. the converted model on the test set with ``sbnn_keras.Interpreter``; the
   example fails (exit status 1) if its accuracy differs from Keras' by more
   than ``--tolerance`` (default 0.5 percentage points).

Fashion-MNIST comes from ``sbnn_zoo.datasets.load_fashion_mnist()`` (Debian's
``dataset-fashion-mnist`` files, tensorflow-datasets, or ``$SBNN_FASHION_MNIST_DIR``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sbnn_keras  # first: selects legacy Keras (tf_keras) for larq
import numpy as np
import tensorflow as tf

from sbnn_zoo.datasets import load_fashion_mnist
from sbnn_keras.layers import sbnn_layers
from sbnn_zoo.models import fashion_mnist_cnn

QUICK = {
    "epochs": 1,
    "train_limit": 3000,
    "test_limit": 1000,
    "blocks": ((32, False), (32, True), (64, False), (64, True)),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ec", type=float, default=0.05, help="expected connections")
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--lambda-threshold", type=float, default=3e-3)
    parser.add_argument("--train-limit", type=int, help="use the first N training images")
    parser.add_argument("--test-limit", type=int, help="use the first N test images")
    parser.add_argument("--threads", type=int, default=2, help="threads of the TFLite run")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.005,
        help="largest accepted |TFLite accuracy - Keras accuracy|",
    )
    parser.add_argument("--out", default="artifacts/si_bnn_fashion_mnist")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 epoch on 3000 images, narrower network, 1000 test images",
    )
    args = parser.parse_args(argv)
    args.blocks = None
    if args.quick:
        if args.epochs == parser.get_default("epochs"):
            args.epochs = QUICK["epochs"]
        args.train_limit = args.train_limit or QUICK["train_limit"]
        args.test_limit = args.test_limit or QUICK["test_limit"]
        args.blocks = QUICK["blocks"]
    return args


def activation_density(model, x, batch_size=500):
    """Per binary layer: the share of its {0, 1} input activations that are 1."""
    layers = sbnn_layers(model)
    probe = tf.keras.Model(model.inputs, [layer.input for layer in layers])
    ones = np.zeros(len(layers))
    total = np.zeros(len(layers))
    for i in range(0, len(x), batch_size):
        outs = probe(x[i : i + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for k, (layer, a) in enumerate(zip(layers, outs)):
            a01 = layer.input_quantizer(a)
            ones[k] += float(tf.reduce_sum(a01))
            total[k] += float(tf.size(a01, out_type=tf.int64))
    return {layer.name: float(o / n) for layer, o, n in zip(layers, ones, total)}


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]
    print(f"Fashion-MNIST: {len(x_train)} training and {len(x_test)} test images")

    # Binary layers with {0, +1} inputs ("si_bnn", trainable thresholds) and learned
    # {alpha, beta} kernels ("sbnn_learned"); stem and classifier stay float.
    kwargs = {"blocks": args.blocks} if args.blocks else {}
    model = fashion_mnist_cnn(
        kernel_quantizer="sbnn_learned", input_quantizer="si_bnn", name="si_bnn_cnn", **kwargs
    )
    reg = sbnn_keras.SparsityRegularizer(
        "sparse_categorical_crossentropy",
        expected_connections=args.ec,
        gamma=args.gamma,
        lambda_threshold=args.lambda_threshold,
    )
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    optimizer = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(args.lr, steps))
    model.compile(optimizer, loss=reg.bind(model), metrics=["accuracy"])
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=[sbnn_keras.SparsityCallback(regularizer=reg)],
    )
    _, keras_accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    print(f"test accuracy (Keras): {keras_accuracy:.4f}")

    # Sparsity of the weights and of the activations; the learned thresholds.
    report = sbnn_keras.sparsity_report(model)
    report.print()
    report.to_json(out / "sparsity_report.json")
    density = activation_density(model, x_test)
    thresholds = {}
    print("binary layer    threshold t (min / mean / max)   activations = 1")
    for layer in sbnn_layers(model):
        t = layer.input_quantizer.threshold.numpy()
        thresholds[layer.name] = {
            "min": float(t.min()),
            "mean": float(t.mean()),
            "max": float(t.max()),
        }
        print(
            f"{layer.name:<15} {t.min():+.3f} / {t.mean():+.3f} / {t.max():+.3f}"
            f"{100 * density[layer.name]:>21.1f}%"
        )

    # Convert (SbnnBconv2d with SBF1 filters) and run with the project's delegate.
    tflite, conversion = sbnn_keras.convert_with_report(model, flavor="sparse")
    (out / "model.tflite").write_bytes(tflite)
    print(str(conversion).splitlines()[-1])
    print(
        f"model.tflite: {len(tflite):,} bytes, "
        f"{conversion.op_counts.get('SbnnBconv2d', 0)} SbnnBconv2d ops"
    )
    interp = sbnn_keras.Interpreter(tflite, num_threads=args.threads)
    probs = np.concatenate(
        [interp.predict(x_test[i : i + 500]) for i in range(0, len(x_test), 500)]
    )
    tflite_pred = probs.argmax(-1)
    keras_pred = model.predict(x_test, batch_size=500, verbose=0).argmax(-1)
    tflite_accuracy = float(np.mean(tflite_pred == y_test))
    agreement = float(np.mean(tflite_pred == keras_pred))
    difference = abs(tflite_accuracy - float(keras_accuracy))
    ok = difference <= args.tolerance
    print(
        f"test accuracy (TFLite, sbnn delegate): {tflite_accuracy:.4f}; "
        f"Keras {keras_accuracy:.4f}; same class for {100 * agreement:.2f}% of the images "
        f"-> {'OK' if ok else 'MISMATCH'} (tolerance {args.tolerance})"
    )

    results = {
        "keras_accuracy": float(keras_accuracy),
        "tflite_accuracy": tflite_accuracy,
        "agreement": agreement,
        "accuracy_matches": ok,
        "connections": report.total.connections,
        "bits_per_weight": report.total.bits_per_weight,
        "k0": report.total.k0,
        "k1": report.total.k1,
        "activation_density": density,
        "thresholds": thresholds,
        "tflite_bytes": len(tflite),
        "seconds": time.time() - started,
        "args": {k: v for k, v in vars(args).items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"done in {results['seconds']:.0f} s; results in {out / 'results.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
