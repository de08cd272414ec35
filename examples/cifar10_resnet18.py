"""CIFAR-10, the SBNN authors' binarized ResNet-18 and recipe (the paper's Table 2).

    python examples/cifar10_resnet18.py --quick               # smoke run: ~1 min on a laptop CPU
    python examples/cifar10_resnet18.py --pair 2              # EC 0.05, gamma 0.07, 500 epochs
    python examples/cifar10_resnet18.py --ec 0.01             # gamma from the authors' table (0.10)
    python examples/cifar10_resnet18.py --ec 0.5 --gamma 0    # no sparsity term (IR-Net baseline)
    python examples/cifar10_resnet18.py --arch project        # this project's variant instead

``--arch authors`` (default) is the network and recipe of the authors' public code
(``sbnn_zoo.authors``; specification in docs/examples.md): IR-Net's ResNet-18
(BasicBlock: binary 3x3 conv -> BN -> hardtanh -> binary 3x3 conv -> BN, plus an
identity or float 1x1-conv + BN shortcut, then hardtanh; float stem conv + BN; 4x4
average pooling, BatchNorm, linear classifier) with IR-Net's EDE gradients on raw
weights and activations (``zoo.EdeSchedule``: t from 0.1 to 10) and one learned
(tau, phi) per layer; Adam 1e-3 with cosine annealing stepped once per epoch, batch
512, 500 epochs, random crops (zero padding 4) and flips, mixup alpha 1, the
authors' normalization constants, latent clamp +-1.5, lambda threshold 1e-4.

``--arch project`` is this project's earlier variant (``zoo.irnet_resnet18``: a
shortcut around every binary convolution, EDE window in units of the weights'
standard deviation, cosine decay per step, the data set's true normalization
constants); it is not the authors' network.

One global sparsity constraint over the 16 binary convolutions
(``SparsityRegularizer``) with one of the authors' EC/gamma pairs:

    --pair  0     1     2     3     4     5     6
    EC      0.25  0.10  0.05  0.04  0.03  0.02  0.01
    gamma   0.02  0.04  0.07  0.07  0.08  0.08  0.10

At the end: test accuracy; the BatchNorm statistics recomputed for the final
weights over the training images (``sbnn_keras.training.recalibration``; ``--no-recalibrate``
skips it) and the test accuracy again; the sparsity report (connections,
bits/weight, K0/K1, BOPs, BParams); conversion with
``sbnn_keras.convert(flavor="sparse")`` and the .tflite size; the converted model's
accuracy with ``sbnn_keras.Interpreter`` on (part of) the test set next to Keras'.
Written under ``--out``:

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

from sbnn_zoo import authors, zoo
from sbnn_keras.training.recalibration import recalibrate_batchnorm

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


ARCHS = ("authors", "project")


def build_model(args):
    """The authors' ResNet-18 (``--arch authors``) or this project's variant."""
    if args.arch == "authors":
        return authors.authors_resnet18(num_classes=NUM_CLASSES, width=args.width, normalize=DATASET)
    return zoo.irnet_resnet18(num_classes=NUM_CLASSES, width=args.width, normalize=DATASET)


def extra_callbacks(args):
    """IR-Net's EDE: ``t`` from 0.1 to 10 over the run, one step per epoch (both archs)."""
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
    parser.add_argument("--arch", choices=ARCHS, default="authors",
                        help="authors: the authors' network and recipe (default); "
                             "project: this project's variant")
    parser.add_argument("--no-recalibrate", dest="recalibrate", action="store_false",
                        help="skip the BatchNorm recalibration before export")
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
    rotation_degrees=0.0,
):
    """Train, report, convert and check; returns the results dict (also in results.json).

    ``rotation_degrees``: the random rotation of the authors' CIFAR-100 pipeline
    (``--arch authors`` only).
    """
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
    if args.arch == "authors":  # PyTorch's CosineAnnealingLR, stepped once per epoch
        schedule = authors.EpochCosineDecay(args.lr, args.epochs, steps_per_epoch)
    else:
        schedule = tf.keras.optimizers.schedules.CosineDecay(args.lr, args.epochs * steps_per_epoch)
    model.compile(tf.keras.optimizers.Adam(schedule), loss=reg, metrics=["accuracy"])

    # 3. Train.
    if args.arch == "authors":
        train = authors.train_dataset(
            x_train, y_train, num_classes, args.batch_size, rotation_degrees=rotation_degrees,
            mixup_alpha=args.mixup, augment=not args.no_augment, seed=args.seed,
        )
    else:
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
    accuracy_trained = float(accuracy)
    recalibration = None
    if args.recalibrate:
        # BatchNorm statistics for the final binary weights, over the training
        # images without augmentation, before anything is saved or exported
        t = time.time()
        recalibration = recalibrate_batchnorm(
            model, zoo.eval_dataset(x_train, y_train, num_classes, args.batch_size)
        )
        timings["recalibrate_s"] = time.time() - t
        _, accuracy = model.evaluate(test, verbose=0)
        print(
            f"test accuracy after BatchNorm recalibration ({recalibration['batches']} batches): "
            f"{accuracy:.4f}"
        )

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
        "arch": args.arch,
        "test_accuracy": float(accuracy),
        "test_accuracy_before_recalibration": accuracy_trained,
        "recalibration": recalibration,
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
