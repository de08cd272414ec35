"""Tune EC and gamma of a sparse binary CNN on Fashion-MNIST; print and save the Pareto front.

    python examples/tune_fashion_mnist.py            # 8 trials on a subset: a few minutes
    python examples/tune_fashion_mnist.py --quick    # smoke run, about a minute
    python examples/tune_fashion_mnist.py --tuner bayesian --objective score --trials 12

Every trial trains the demo CNN (``sbnn_zoo.models.fashion_mnist_cnn``, learned
{alpha, beta}) with a ``SparsityRegularizer`` at the trial's EC and gamma, on a
training subset, and is scored on a validation split taken from the training set
(the test set is not used for the search). The front's models are then evaluated
on the test set. Written under ``--out`` (default ``artifacts/tuning/``):

    front.txt    the table of all trials, front marked with *
    front.json   the front and all trials (hyperparameters, metrics, run info)
    front.png    accuracy vs BOPs: all trials and the front
    project/     the KerasTuner project (trials, checkpoints); rerun to reload it

Short schedules need a larger gamma to reach the sparsity target (see
docs/results.md), hence the default gamma range (0.1, 0.9) and the demo's
``lambda_threshold`` 3e-3 (``--lambda-threshold``; the paper's value is 1e-4).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import sbnn_keras  # first: selects legacy Keras (tf_keras) for larq
import numpy as np
import tensorflow as tf

from sbnn_keras.tuning import tuner as sbnn_tuner
from sbnn_zoo.datasets import load_fashion_mnist
from sbnn_zoo.models import fashion_mnist_cnn

TUNERS = {
    "random": sbnn_tuner.RandomSearch,
    "bayesian": sbnn_tuner.BayesianOptimization,
    "hyperband": sbnn_tuner.Hyperband,
}
SMALL_BLOCKS = ((32, False), (32, True), (64, False), (64, True))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tuner", choices=sorted(TUNERS), default="random")
    parser.add_argument("--trials", type=int, default=8, help="max trials (random, bayesian)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (hyperband: max)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--train", type=int, default=12000, help="training images used")
    parser.add_argument("--val", type=int, default=3000, help="validation images (from train)")
    parser.add_argument("--test", type=int, default=10000, help="test images for the front")
    parser.add_argument("--ec", type=float, nargs=2, default=(0.01, 0.25), metavar=("LOW", "HIGH"))
    parser.add_argument("--gamma", type=float, nargs=2, default=(0.1, 0.9),
                        metavar=("LOW", "HIGH"))
    parser.add_argument("--lambda-threshold", type=float, default=3e-3,
                        help="SparsityRegularizer lambda_threshold (the demo's recipe)")
    parser.add_argument("--cost", choices=["bops_kernel_skip", "bops_sparse"],
                        default="bops_kernel_skip")
    parser.add_argument("--objective", default="val_accuracy",
                        help="what the oracle optimises: val_accuracy, score, cost, ...")
    parser.add_argument("--small", action="store_true", help="half-width CNN")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=os.path.join("artifacts", "tuning"))
    parser.add_argument("--resume", action="store_true",
                        help="reload the project under --out instead of starting over")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 trials, 1 epoch, 2000/1000/2000 images, small CNN")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.epochs, args.small = 3, 1, True
        args.train, args.val, args.test = 2000, 1000, 2000
    return args


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sbnn_keras", "sbnn_zoo", "examples"],
                               cwd=here, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "platform": platform.platform(),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.time()
    tf.keras.utils.set_random_seed(args.seed)

    (x_all, y_all), (x_test, y_test) = load_fashion_mnist()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x_all))
    train_idx, val_idx = order[: args.train], order[args.train : args.train + args.val]
    x_train, y_train = x_all[train_idx], y_all[train_idx]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    x_test, y_test = x_test[: args.test], y_test[: args.test]
    print(f"train {len(x_train)}, validation {len(x_val)} (from train), test {len(x_test)}")

    blocks = SMALL_BLOCKS if args.small else None

    def build_model(hp):
        kwargs = {"kernel_quantizer": sbnn_tuner.kernel_quantizer(hp, default="learned")}
        if blocks is not None:
            kwargs.update(blocks=blocks, stem_filters=16)
        return fashion_mnist_cnn(**kwargs)

    tuner_kwargs = dict(
        objective=args.objective,
        loss="sparse_categorical_crossentropy",
        optimizer=lambda: tf.keras.optimizers.Adam(args.lr),
        metrics=["accuracy"],
        ec=tuple(args.ec),
        gamma=tuple(args.gamma),
        cost=args.cost,
        regularizer_kwargs={"lambda_threshold": args.lambda_threshold},
        seed=args.seed,
        directory=args.out,
        project_name="project",
        overwrite=not args.resume,
    )
    if args.tuner == "hyperband":
        tuner = TUNERS[args.tuner](build_model, max_epochs=args.epochs, factor=3, **tuner_kwargs)
    else:
        tuner = TUNERS[args.tuner](build_model, max_trials=args.trials, **tuner_kwargs)

    tuner.search_space_summary()
    tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs,
                 batch_size=args.batch_size, verbose=2)
    search_seconds = time.time() - start

    front = tuner.pareto_front()
    # Evaluate the front's models on the test set (not used by the search).
    for record in front.front:
        model = tuner.load_model(tuner.oracle.get_trial(record["id"]))
        _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
        record["metrics"]["test_accuracy"] = float(accuracy)
    for record in front.records:
        record["run"] = {k: v for k, v in tuner.trial_info(record["id"]).items()
                         if k in ("tuner_id", "seconds", "epochs_run")}
    front.meta.update(
        command="python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
        commit=git_commit(),
        machine=machine(),
        data={"train": len(x_train), "validation": len(x_val), "test": len(x_test)},
        settings={k: v for k, v in vars(args).items() if k != "out"},
        search_seconds=round(search_seconds, 1),
    )

    metrics = ["val_accuracy", "test_accuracy", "connections", "bits_per_weight", "bops_ratio",
               args.cost]
    params = [sbnn_tuner.EC, sbnn_tuner.GAMMA]
    table_front = front.table(params=params, metrics=metrics)
    table_all = front.table(all_records=True, params=params,
                            metrics=[m for m in metrics if m != "test_accuracy"])
    print()
    print(table_front)
    print()
    print(table_all)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "front.txt"), "w", encoding="utf-8") as handle:
        handle.write(table_front + "\n\n" + table_all + "\n")
    front.to_json(os.path.join(args.out, "front.json"))
    front.plot(
        os.path.join(args.out, "front.png"),
        annotate={sbnn_tuner.EC: "EC", sbnn_tuner.GAMMA: "gamma"},
        title=f"Fashion-MNIST, {args.tuner} search, {len(front.records)} trials",
    )
    print(f"\nwrote {args.out}/front.txt, front.json, front.png "
          f"(search {search_seconds:.0f} s, total {time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
