"""BatchNorm recalibration on a short SBNN run stopped the epoch EC is reached.

The held-out setting of docs/results.md ("BatchNorm recalibration"): a Fashion-MNIST
network that is *not* the demo's (float stem, three binary 3x3 convolutions), the
first 20 000 training images, batch 128, Adam 2e-3 (constant), learned {alpha, beta}
kernels, ``SparsityRegularizer(EC=0.05, gamma=0.7, lambda_threshold=3e-3)``, Keras'
default BatchNorm momentum (0.99). Training runs epoch by epoch and stops at the end
of the first epoch whose connections are within ``lambda_threshold`` of EC (the
regularizer is satisfied: lambda = 0). Then, for that model:

* the last epoch's training accuracy (Keras' running figure) and the test accuracy
  with the moving BatchNorm statistics as training left them;
* the test accuracy after :func:`sbnn_keras.training.recalibration.recalibrate_batchnorm` over
  the training images (10, 50 batches and all 157), and the training-set accuracy
  in inference mode before and after.

Usage::

    python benchmarks/bn_recalibration.py                    # seeds 1 2 3, JSON below
    python benchmarks/bn_recalibration.py --seeds 1 --quick  # smoke run (2k images)
    python benchmarks/bn_recalibration.py --net demo --seeds 1 \
        --out docs/data/bn_recalibration_demo.json           # the demo's SBNN and recipe

Writes ``docs/data/bn_recalibration.json`` (``--out``) with the command, commit and
machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sbnn_keras  # noqa: F401  (selects legacy Keras before TensorFlow)
import numpy as np
import tensorflow as tf

from sbnn_zoo.datasets import load_fashion_mnist
from sbnn_keras.training.recalibration import recalibrate_batchnorm
from sbnn_keras.regularizer import SparsityRegularizer
from sbnn_keras.metrics.report import sparsity_report

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def machine_info() -> dict:
    import os
    import platform
    import subprocess

    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=ROOT, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "commit": git("rev-parse", "--short", "HEAD"),
            # uncommitted changes to tracked files at the start of the run
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "load_average": list(os.getloadavg())}


def heldout_net(seed: int) -> tf.keras.Model:
    """Float 3x3 stem (32) + BN + max-pool, binary 3x3 convs 64, 96 (+ max-pool), 128,
    each followed by BN (default momentum 0.99), global average pooling, Dense(10)."""
    tf.keras.utils.set_random_seed(seed)
    L = tf.keras.layers

    def bconv(filters):
        return sbnn_keras.QuantConv2D(filters, 3, padding="same", use_bias=False,
                                      input_quantizer="ste_sign", kernel_quantizer="sbnn_learned",
                                      kernel_constraint="weight_clip")

    inp = tf.keras.Input((28, 28, 1))
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = L.MaxPool2D()(L.BatchNormalization()(x))
    x = L.BatchNormalization()(bconv(64)(x))
    x = L.MaxPool2D()(L.BatchNormalization()(bconv(96)(x)))
    x = L.BatchNormalization()(bconv(128)(x))
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10)(x)
    return tf.keras.Model(inp, out, name="heldout_3bconv")


def demo_net(seed: int) -> tf.keras.Model:
    """The demo's SBNN: ``sbnn_zoo.models.fashion_mnist_cnn`` (BN momentum 0.9),
    learned {alpha, beta}, latent clamp +-1, softmax output."""
    from sbnn_zoo.models import build

    tf.keras.utils.set_random_seed(seed)
    return build("cnn", kernel_quantizer="sbnn_learned", kernel_constraint="weight_clip",
                 name="fmnist_learned")


def run(seed, data, args):
    (x_tr, y_tr), (x_te, y_te) = data
    if args.net == "demo":
        model = demo_net(seed)
        task = "sparse_categorical_crossentropy"
        steps = int(np.ceil(len(x_tr) / args.batch_size))
        lr = tf.keras.optimizers.schedules.CosineDecay(args.lr, args.schedule_epochs * steps)
    else:
        model = heldout_net(seed)
        task = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        lr = args.lr
    reg = SparsityRegularizer(task, expected_connections=args.ec, gamma=args.gamma,
                              lambda_threshold=args.lambda_threshold)
    model.compile(tf.keras.optimizers.Adam(lr), loss=reg.bind(model), metrics=["accuracy"])
    epochs = []
    t0 = time.perf_counter()
    for epoch in range(args.max_epochs):
        h = model.fit(x_tr, y_tr, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0)
        conn = sparsity_report(model).total.connections
        row = {"epoch": epoch + 1, "train_accuracy_running": float(h.history["accuracy"][0]),
               "connections": float(conn), "elapsed_s": time.perf_counter() - t0}
        epochs.append(row)
        print(f"[seed {seed}] epoch {epoch + 1}: train acc {row['train_accuracy_running']:.4f} "
              f"connections {conn:.4f}", flush=True)
        if conn - args.ec <= args.lambda_threshold:
            break
    reached = epochs[-1]["connections"] - args.ec <= args.lambda_threshold

    def acc(x, y):
        return float(model.evaluate(x, y, batch_size=512, verbose=0)[1])

    result = {"seed": seed, "epochs": epochs, "ec_reached": bool(reached),
              "stopped_at_epoch": epochs[-1]["epoch"],
              "train_accuracy_running": epochs[-1]["train_accuracy_running"],
              "stale": {"test_accuracy": acc(x_te, y_te), "train_accuracy_inference": acc(x_tr, y_tr)},
              "recalibrated": {}}
    for steps in args.steps:
        t = time.perf_counter()
        info = recalibrate_batchnorm(model, x_tr, batch_size=args.batch_size,
                                     steps=None if steps == 0 else steps)
        key = str(info["batches"])
        result["recalibrated"][key] = {"test_accuracy": acc(x_te, y_te), "seconds": time.perf_counter() - t}
        if steps == 0:
            result["recalibrated"][key]["train_accuracy_inference"] = acc(x_tr, y_tr)
    best = result["recalibrated"][max(result["recalibrated"], key=int)]
    result["gap_points_stale"] = 100 * (result["train_accuracy_running"] - result["stale"]["test_accuracy"])
    result["gap_points_recalibrated"] = 100 * (result["train_accuracy_running"] - best["test_accuracy"])
    print(f"[seed {seed}] stopped at epoch {result['stopped_at_epoch']} (EC reached: {reached}): "
          f"train {result['train_accuracy_running']:.4f}, test stale {result['stale']['test_accuracy']:.4f}, "
          f"recalibrated " + ", ".join(f"{k} batches {v['test_accuracy']:.4f}"
                                       for k, v in result["recalibrated"].items()), flush=True)
    return result


def table(runs) -> str:
    """The markdown table of docs/results.md for a list of runs."""
    lines = ["| seed | stopped at epoch | connections | train acc., Keras' running figure | "
             "train acc., inference, stale BN | test acc., stale BN | train acc., inference, recalibrated | "
             "test acc., recalibrated | test - train (inference), recalibrated |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        best = r["recalibrated"][max(r["recalibrated"], key=int)]
        tr = best.get("train_accuracy_inference")
        lines.append(
            f"| {r['seed']} | {r['stopped_at_epoch']} | {r['epochs'][-1]['connections']:.4f} | "
            f"{100 * r['train_accuracy_running']:.2f} | {100 * r['stale']['train_accuracy_inference']:.2f} | "
            f"{100 * r['stale']['test_accuracy']:.2f} | {100 * tr:.2f} | {100 * best['test_accuracy']:.2f} | "
            f"{100 * (best['test_accuracy'] - tr):+.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ec", type=float, default=0.05)
    p.add_argument("--gamma", type=float, default=0.7)
    p.add_argument("--lambda-threshold", type=float, default=3e-3)
    p.add_argument("--max-epochs", type=int, default=12)
    p.add_argument("--steps", type=int, nargs="+", default=[10, 50, 0],
                   help="recalibration batches to try in turn (0: all)")
    p.add_argument("--net", default="heldout", choices=["heldout", "demo"],
                   help="heldout: the 3-binary-conv network above; demo: the demo's SBNN with its "
                        "recipe (55 000 training images, Adam 1e-3 with cosine decay over 6 epochs)")
    p.add_argument("--schedule-epochs", type=int, default=6, help="--net demo: cosine decay length")
    p.add_argument("--quick", action="store_true", help="2000 training / 1000 test images, 2 epochs")
    p.add_argument("--out", default=str(ROOT / "docs" / "data" / "bn_recalibration.json"))
    p.add_argument("--table", metavar="JSON", help="only print the table of a result file")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["runs"]))
        return 0
    if args.net == "demo":  # the demo's recipe unless given on the command line
        given = set(sys.argv[1:] if argv is None else argv)
        if "--train-size" not in given:
            args.train_size = 55000  # the demo holds out the last 5 000 for validation
        if "--lr" not in given:
            args.lr = 1e-3
    (x, y), (xt, yt) = load_fashion_mnist()
    if args.quick:
        args.train_size, args.max_epochs = 2000, 2
        xt, yt = xt[:1000], yt[:1000]
    data = ((x[: args.train_size], y[: args.train_size]), (xt, yt))
    machine = machine_info()  # at the start: the commit of the code that runs
    runs = [run(s, data, args) for s in args.seeds]
    out = {"benchmark": "bn_recalibration", "config": {k: v for k, v in vars(args).items() if k != "out"},
           "command": "python benchmarks/bn_recalibration.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "machine": machine, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(table(runs))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
