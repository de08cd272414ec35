"""Data-parallel SBNN training with tf.distribute: MirroredStrategy (one machine, several
GPUs or CPU devices) and MultiWorkerMirroredStrategy (several machines, TF_CONFIG).

    python examples/distributed_training.py --quick                # 2 logical CPUs: ~40 s
    python examples/distributed_training.py                        # every GPU of this machine
    python examples/distributed_training.py --cpu-replicas 4       # 4 logical CPU devices

    # two workers (here both on localhost; use host names and open ports for real):
    TF_CONFIG='{"cluster": {"worker": ["localhost:12345", "localhost:12346"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/distributed_training.py --strategy multiworker &
    TF_CONFIG='{"cluster": {"worker": ["localhost:12345", "localhost:12346"]},
                "task": {"type": "worker", "index": 1}}' \\
        python examples/distributed_training.py --strategy multiworker

The rule (docs/training.md, "Distribution"): create the model and the
``SparsityRegularizer``, and call ``bind``, inside ``strategy.scope()``; then
``compile`` and ``fit`` as usual. Each replica computes lambda from its share of the
loss, and the sum over replicas is the single-device gradient (the formula is
linear in the task loss); ``reg.values()`` shows the first replica's view of the
last step. ``--batch-size`` is per replica: the global batch is that times the
number of replicas (scale the learning rate with it if you change it).

Multi-worker notes: every worker runs the same command with its own
``task.index``; worker 0 is the chief. The strategy must be created before any other
TensorFlow operation (this script does that first). The input is sharded by
element (``AutoShardPolicy.DATA``, with the same shuffling seed on every worker).
``BackupAndRestore`` in ``--out/backup`` lets a restarted worker resume from the
last epoch. All workers call ``model.save`` (saving reads the variables
collectively); only the chief writes to ``--out``, the others to a scratch
directory. The chief then writes the sparsity report and the converted model.

The network is the demo CNN on Fashion-MNIST (``sbnn_zoo.models``); the
distribution code is the same for the CIFAR models of ``sbnn_zoo.zoo``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strategy", choices=["mirrored", "multiworker"], default="mirrored")
    parser.add_argument(
        "--cpu-replicas",
        type=int,
        default=0,
        help="split the CPU into N logical devices and mirror over them (no GPU needed)",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64, help="per replica")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ec", type=float, default=0.05)
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--lambda-threshold", type=float, default=3e-3)
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument(
        "--no-convert", action="store_true", help="skip the conversion on the chief"
    )
    parser.add_argument("--out", default="artifacts/distributed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 logical CPU devices, 1 epoch on 2048 images, 1000 test images",
    )
    args = parser.parse_args(argv)
    if args.quick:
        if args.strategy == "mirrored" and not args.cpu_replicas:
            args.cpu_replicas = 2
        if args.epochs == parser.get_default("epochs"):
            args.epochs = 1
        args.train_limit = args.train_limit or 2048
        args.test_limit = args.test_limit or 1000
    if args.cpu_replicas < 0 or (args.cpu_replicas and args.strategy != "mirrored"):
        parser.error("--cpu-replicas needs --strategy mirrored and a positive count")
    return args


def make_strategy(args):
    """Create the strategy first: logical devices and collectives must be set up before
    TensorFlow initializes its devices (any op, even a constant, does that)."""
    import tensorflow as tf

    if args.strategy == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise SystemExit("--strategy multiworker needs TF_CONFIG (see the docstring)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if args.cpu_replicas:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_replicas
        )
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.MirroredStrategy()  # all GPUs, or the CPU if there is none


def is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return True
    return (
        resolver.task_type in ("chief", "worker")
        and resolver.task_id == 0
        and (resolver.task_type == "chief" or "chief" not in resolver.cluster_spec().as_dict())
    )


def main(argv=None):
    args = parse_args(argv)
    import sbnn_keras  # first: selects legacy Keras (tf_keras) for larq
    import numpy as np
    import tensorflow as tf

    strategy = make_strategy(args)  # before any other TensorFlow operation

    from sbnn_zoo.datasets import load_fashion_mnist
    from sbnn_zoo.models import fashion_mnist_cnn

    started = time.time()
    chief = is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    print(
        f"{type(strategy).__name__}: {replicas} replicas "
        f"({', '.join(strategy.extended.worker_devices)}); chief: {chief}"
    )
    tf.keras.utils.set_random_seed(args.seed)  # same initial weights and shuffling everywhere

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x_train, y_train = x_train[: args.train_limit], y_train[: args.train_limit]
    x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]
    global_batch = args.batch_size * replicas
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=args.seed)
        .batch(global_batch)
        .with_options(options)
    )
    test = (
        tf.data.Dataset.from_tensor_slices((x_test, y_test))
        .batch(global_batch)
        .with_options(options)
    )

    # Model, regularizer and bind inside the scope: their variables are mirrored.
    with strategy.scope():
        model = fashion_mnist_cnn(kernel_quantizer="sbnn_learned")
        reg = sbnn_keras.SparsityRegularizer(
            "sparse_categorical_crossentropy",
            expected_connections=args.ec,
            gamma=args.gamma,
            lambda_threshold=args.lambda_threshold,
        ).bind(model)
        steps = args.epochs * -(-len(x_train) // global_batch)
        optimizer = tf.keras.optimizers.Adam(
            tf.keras.optimizers.schedules.CosineDecay(args.lr, steps)
        )
        model.compile(optimizer, loss=reg, metrics=["accuracy"])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    callbacks = [sbnn_keras.SparsityCallback(regularizer=reg)]
    if args.strategy == "multiworker":
        callbacks.append(tf.keras.callbacks.BackupAndRestore(str(out / "backup")))
    model.fit(train, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose if chief else 0)
    # evaluate() runs on the replicas, each with its own BatchNorm moving statistics
    # (ON_READ variables); calling the model outside the replicas reads their mean,
    # which is what model.save and convert see.
    _, accuracy = model.evaluate(test, verbose=0)
    merged = np.concatenate(
        [
            np.argmax(model(x_test[i : i + 500], training=False), -1)
            for i in range(0, len(x_test), 500)
        ]
    )
    merged_accuracy = float(np.mean(merged == y_test))
    report = sbnn_keras.sparsity_report(model)
    print(
        f"test accuracy {accuracy:.4f} (distributed evaluate), {merged_accuracy:.4f} (replicas' "
        f"mean BatchNorm statistics, as saved); connections {report.total.connections:.4f}; "
        f"last step (first replica): {reg.values()}"
    )

    # Every worker saves and reads the weights (both are collective for the BatchNorm
    # statistics); only the chief keeps its copy.
    save_dir = out if chief else Path(tempfile.mkdtemp(prefix="sbnn_worker_"))
    model.save(save_dir / "model.keras")
    weights = model.get_weights()
    results = {
        "strategy": type(strategy).__name__,
        "replicas": replicas,
        "global_batch": global_batch,
        "test_accuracy": float(accuracy),
        "test_accuracy_saved": merged_accuracy,
        "connections": report.total.connections,
        "bits_per_weight": report.total.bits_per_weight,
        "k0": report.total.k0,
        "k1": report.total.k1,
        "last_step": reg.values(),
    }
    if chief:
        report.print()
        report.to_json(out / "sparsity_report.json")
        if not args.no_convert:
            # Convert a plain copy: no collective reads that would wait for the workers.
            plain = fashion_mnist_cnn(kernel_quantizer="sbnn_learned")
            plain.set_weights(weights)
            tflite = sbnn_keras.convert(plain, flavor="sparse")
            (out / "model.tflite").write_bytes(tflite)
            interp = sbnn_keras.Interpreter(tflite, num_threads=2)
            tflite_acc = float(np.mean(interp.predict(x_test).argmax(-1) == y_test))
            print(f"model.tflite: {len(tflite):,} bytes; TFLite test accuracy {tflite_acc:.4f}")
            results.update(tflite_bytes=len(tflite), tflite_accuracy=tflite_acc)
        results["seconds"] = time.time() - started
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"done in {results['seconds']:.0f} s; results in {out / 'results.json'}")
    # Workers wait for the chief here, so none leaves while the others still run (a
    # worker that exits early shows up as a heartbeat error in the chief's log).
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
