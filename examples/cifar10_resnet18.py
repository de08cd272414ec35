"""CIFAR-10, binarized ResNet-18 (IR-Net style) with SBNN kernels: the paper's Table 2 recipe.

    python examples/cifar10_resnet18.py --quick               # smoke run: ~1 min on a laptop CPU
    python examples/cifar10_resnet18.py --pair 2              # EC 0.05, gamma 0.07, 500 epochs
    python examples/cifar10_resnet18.py --ec 0.01             # gamma from the authors' table (0.10)
    python examples/cifar10_resnet18.py --ec 0.5 --gamma 0    # no sparsity term (IR-Net baseline)

The authors' recipe (DESIGN.md section 1, paper section 4): Adam, learning rate 1e-3
with cosine decay to 0, batch 512, mixup (alpha = 1), 500 epochs, random crops
(zero padding 4), horizontal flips and per-channel normalization; the binarized
ResNet-18 of IR-Net (``sbnn_zoo.zoo.irnet_resnet18``: shortcut around every binary
convolution, EDE gradients moved by ``zoo.EdeSchedule``, learned {alpha, beta}
kernels) with float stem, classifier and 1x1 shortcuts; one global sparsity
constraint over the 16 binary convolutions (``SparsityRegularizer``) with one of the
authors' EC/gamma pairs:

    --pair  0     1     2     3     4     5     6
    EC      0.25  0.10  0.05  0.04  0.03  0.02  0.01
    gamma   0.02  0.04  0.07  0.07  0.08  0.08  0.10

At the end: test accuracy, the sparsity report (connections, bits/weight, K0/K1,
BOPs, BParams), conversion with ``sbnn_keras.convert(flavor="sparse")`` and the
.tflite size, and the converted model's accuracy with ``sbnn_keras.Interpreter`` on
(part of) the test set next to Keras'. Written under ``--out``:

    model.keras  model.tflite  sparsity_report.json  conversion_report.json
    history.csv  results.json

CIFAR-10 comes from tensorflow-datasets (``--data-dir``; downloaded there on first
use, about 160 MB). ``--quick`` trains one epoch of a width-16 network on 512 images
and checks the pipeline end to end, not the accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import sbnn_keras  # first: selects legacy Keras (tf_keras) for larq
import numpy as np
import tensorflow as tf

from sbnn_zoo import zoo

DATASET = "cifar10"
NUM_CLASSES = 10
PAIRS = zoo.CIFAR10_PAIRS
EPOCHS = 500
DEFAULT_OUT = "artifacts/cifar10_resnet18"
QUICK = {
    "epochs": 1,
    "width": 16,
    "batch_size": 64,
    "train_limit": 512,
    "test_limit": 256,
    "tflite_check": 128,
}


def build_model(args):
    """The binarized ResNet-18 of IR-Net with SBNN kernels (``sbnn_zoo.zoo``)."""
    return zoo.irnet_resnet18(num_classes=NUM_CLASSES, width=args.width, normalize=DATASET)


def extra_callbacks(args):
    """IR-Net's EDE: ``t`` from 0.1 to 10 over the run, one step per epoch."""
    return [zoo.EdeSchedule(args.epochs)]


def parse_args(
    argv=None, *, description=__doc__, pairs=PAIRS, epochs=EPOCHS, default_out=DEFAULT_OUT
):
    parser = argparse.ArgumentParser(
        description=description.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="EC/gamma pairs: " + ", ".join(f"{i}: ({e}, {g})" for i, (e, g) in enumerate(pairs)),
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--pair", type=int, help="index of the authors' (EC, gamma) pair")
    choice.add_argument("--ec", type=float, help="expected connections (gamma from the table)")
    parser.add_argument("--gamma", type=float, help="override gamma (0 turns the term off)")
    defaults = {"epochs": epochs, "batch_size": 512, "width": 64, "tflite_check": 1000}
    parser.add_argument("--epochs", type=int, help=f"default {epochs}")
    parser.add_argument("--batch-size", type=int, help="default 512")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam, cosine decay to 0")
    parser.add_argument("--mixup", type=float, default=1.0, help="mixup alpha (0: off)")
    parser.add_argument("--no-augment", action="store_true", help="no crops/flips")
    parser.add_argument("--width", type=int, help="channels of the first stage (default 64)")
    parser.add_argument("--train-limit", type=int, help="use the first N training images")
    parser.add_argument("--test-limit", type=int, help="use the first N test images")
    parser.add_argument(
        "--tflite-check",
        type=int,
        help="test images run through the converted model (0: skip; default 1000)",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads of the TFLite check")
    parser.add_argument("--data-dir", help="tensorflow-datasets data directory")
    parser.add_argument("--out", default=default_out, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--verbose", type=int, default=2, choices=[0, 1, 2], help="Keras fit verbosity"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    args = parser.parse_args(argv)
    for key, value in {**defaults, **(QUICK if args.quick else {})}.items():
        if getattr(args, key) is None:  # values given on the command line win
            setattr(args, key, value)
    try:
        args.ec, args.gamma = zoo.select_pair(pairs, ec=args.ec, pair=args.pair, gamma=args.gamma)
    except ValueError as err:
        parser.error(str(err))
    for name in ("epochs", "batch_size", "width"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
            )
    return args


def tflite_accuracy(tflite: bytes, x, y, threads: int, batch: int = 250):
    """Top-1 accuracy and predicted classes of the converted model (our delegate)."""
    interp = sbnn_keras.Interpreter(tflite, num_threads=threads)
    preds = [
        np.argmax(interp.predict(x[i : i + batch].astype(np.float32)), axis=-1)
        for i in range(0, len(x), batch)
    ]
    preds = np.concatenate(preds)
    return float(np.mean(preds == y)), preds


def run(
    args,
    *,
    dataset=DATASET,
    num_classes=NUM_CLASSES,
    build=build_model,
    callbacks=extra_callbacks,
    pairs=PAIRS,
):
    """Train, report, convert and check; returns the results dict (also in results.json)."""
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(args.seed)
    timings = {}

    # 1. Data (uint8 images; the model normalizes them itself).
    t = time.time()
    x_train, y_train = zoo.load_cifar(dataset, "train", args.data_dir, args.train_limit)
    x_test, y_test = zoo.load_cifar(dataset, "test", args.data_dir, args.test_limit)
    timings["data_s"] = time.time() - t
    print(f"{dataset}: {len(x_train)} training and {len(x_test)} test images")

    # 2. Model and loss: the sparsity term wraps the task loss (one-hot labels: mixup).
    model = build(args)
    reg = sbnn_keras.SparsityRegularizer(
        tf.keras.losses.CategoricalCrossentropy(from_logits=True),
        expected_connections=args.ec,
        gamma=args.gamma,
    )
    reg.bind(model)  # finds the SBNN layers (the float stem, shortcuts, classifier are not)
    in_table = [i for i, (e, g) in enumerate(pairs) if (e, g) == (args.ec, args.gamma)]
    origin = f"the authors' pair {in_table[0]}" if in_table else "not one of the authors' pairs"
    print(
        f"model {model.name}: {model.count_params():,} parameters, {len(reg.layer_names)} "
        f"SBNN layers; EC {args.ec}, gamma {args.gamma} ({origin})"
    )
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    schedule = tf.keras.optimizers.schedules.CosineDecay(args.lr, args.epochs * steps_per_epoch)
    model.compile(tf.keras.optimizers.Adam(schedule), loss=reg, metrics=["accuracy"])

    # 3. Train.
    train = zoo.train_dataset(
        x_train,
        y_train,
        num_classes,
        args.batch_size,
        augment=not args.no_augment,
        mixup_alpha=args.mixup,
        seed=args.seed,
    )
    test = zoo.eval_dataset(x_test, y_test, num_classes, args.batch_size)
    cbs = callbacks(args) + [
        sbnn_keras.SparsityCallback(regularizer=reg),  # connections, K0/K1, lambda in the logs
        tf.keras.callbacks.CSVLogger(str(out / "history.csv")),  # after SparsityCallback
    ]
    if not args.quick:  # resume an interrupted run from the last finished epoch
        cbs.append(tf.keras.callbacks.BackupAndRestore(str(out / "backup")))
    t = time.time()
    model.fit(train, epochs=args.epochs, validation_data=test, callbacks=cbs, verbose=args.verbose)
    timings["train_s"] = time.time() - t
    _, accuracy = model.evaluate(test, verbose=0)
    print(f"test accuracy (Keras): {accuracy:.4f}; last step: {reg.values()}")

    # 4. Sparsity: connections, bits/weight, K0/K1, BOPs, BParams.
    report = sbnn_keras.sparsity_report(model)
    report.print()
    report.to_json(out / "sparsity_report.json")
    total = report.total
    print(
        f"connections {total.connections:.4f} ({total.bits_per_weight:.3f} bits/weight), "
        f"K0 {total.k0:.4f}, K1 {total.k1:.4f}, BOPs reduction {total.bops_reduction:.4f}, "
        f"BParams reduction {total.bparams_reduction:.4f}"
    )
    model.save(out / "model.keras")

    # 5. Convert: SbnnBconv2d with SBF1 filters near h(p) bits/weight.
    t = time.time()
    tflite, conversion = sbnn_keras.convert_with_report(model, flavor="sparse")
    timings["convert_s"] = time.time() - t
    (out / "model.tflite").write_bytes(tflite)
    conversion.to_json(out / "conversion_report.json")
    print(str(conversion).splitlines()[-1])
    print(
        f"model.tflite: {len(tflite):,} bytes ({len(tflite) / 2**20:.2f} MiB), "
        f"{conversion.op_counts.get('SbnnBconv2d', 0)} SbnnBconv2d ops"
    )

    # 6. Run the converted model with the project's delegate on test images.
    results_tflite = {}
    n_check = min(args.tflite_check, len(x_test))
    if n_check:
        t = time.time()
        acc_tflite, preds = tflite_accuracy(
            tflite, x_test[:n_check], y_test[:n_check], args.threads
        )
        keras_preds = np.argmax(model.predict(x_test[:n_check].astype(np.float32), verbose=0), -1)
        acc_keras = float(np.mean(keras_preds == y_test[:n_check]))
        agree = float(np.mean(keras_preds == preds))
        timings["tflite_check_s"] = time.time() - t
        print(
            f"first {n_check} test images: Keras accuracy {acc_keras:.4f}, "
            f"TFLite {acc_tflite:.4f}, same class for {100 * agree:.1f}%"
        )
        results_tflite = {
            "images": n_check,
            "keras_accuracy": acc_keras,
            "tflite_accuracy": acc_tflite,
            "agreement": agree,
        }

    timings["total_s"] = time.time() - started
    results = {
        "dataset": dataset,
        "model": model.name,
        "args": {k: v for k, v in vars(args).items()},
        "test_accuracy": float(accuracy),
        "connections": total.connections,
        "bits_per_weight": total.bits_per_weight,
        "k0": total.k0,
        "k1": total.k1,
        "bops_reduction": total.bops_reduction,
        "bparams_reduction": total.bparams_reduction,
        "tflite_bytes": len(tflite),
        "tflite_check": results_tflite,
        "timings": timings,
        "machine": {
            "python": sys.version.split()[0],
            "tensorflow": tf.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"done in {timings['total_s']:.0f} s; results in {out / 'results.json'}")
    return results


def main(argv=None):
    args = parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
