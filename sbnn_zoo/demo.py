"""End-to-end demo: a BNN and an SBNN on Fashion-MNIST, side by side.

Run::

    python -m sbnn_zoo.demo                 # 6 epochs per network (about 7-8 minutes on 2 idle cores)
    python -m sbnn_zoo.demo --quick         # smoke run on a tiny subset (< 1 minute)
    python -m sbnn_zoo.demo --ec 0.05 --gamma 0.7 --epochs 8 --out artifacts/

It loads Fashion-MNIST (:func:`sbnn_zoo.datasets.load_fashion_mnist`), trains the
plain larq BNN (``ste_sign`` kernels), then the SBNN with learned {alpha, beta}
and the :class:`~sbnn_keras.SparsityRegularizer` at the target EC, prints both
test accuracies and the sparsity report, and writes into ``--out``:
``sparsity_report.json``, ``hamming_histograms.png`` and ``demo_results.json``.
``--out`` is checked before training; an earlier run's files there are kept (this
run goes to a new ``run-*`` subdirectory) unless ``--force``.

The training function :func:`train_variant` is shared with
``examples/table1_fashion_mnist.py`` (the paper's Table 1 on Fashion-MNIST).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and "--verbose" not in sys.argv[1:]:
    # python -m sbnn_zoo.demo: TensorFlow's and absl's log lines stay hidden unless
    # --verbose (set before TensorFlow loads; `sbnn-keras demo` does the same).
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for _name in ("tensorflow", "absl"):
        logging.getLogger(_name).setLevel(logging.ERROR)

from sbnn_zoo.recipe import DEMO_EPOCHS, RECIPE, parser as _parser  # noqa: E402  (no TensorFlow)

if __name__ == "__main__" and {"-h", "--help"} & set(sys.argv[1:]):
    _parser().parse_args()  # prints the help and exits before TensorFlow loads

from sbnn_keras import _compat  # noqa: E402

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import layers as sbnn_layers_mod  # noqa: E402
from sbnn_keras import math as sbnn_math  # noqa: E402
from sbnn_zoo.datasets import load_fashion_mnist  # noqa: E402
from sbnn_zoo.models import build as build_model  # noqa: E402
from sbnn_keras.regularizer import SparsityRegularizer  # noqa: E402
from sbnn_keras.training.recalibration import recalibrate_batchnorm  # noqa: E402

__all__ = ["VARIANTS", "RECIPE", "DEMO_EPOCHS", "train_variant", "binary_connections", "machine_info", "main"]

#: Table 1 variants: kernel quantizer and whether the sparsity regularizer is on.
VARIANTS = {
    # the plain larq BNN: kernels sign(w) in {-1, +1}, no sparsity constraint
    "bnn": {"kernel_quantizer": "ste_sign", "sparse": False,
            "label": "Baseline BNN (larq ste_sign, {-1,+1})"},
    # paper's Table 1 baseline: {-beta, +beta} (XNOR-Net scale), no sparsity constraint
    "symmetric_dense": {"kernel_quantizer": "sbnn_symmetric", "sparse": False,
                        "label": "Baseline {-beta,+beta}, no constraint"},
    "symmetric": {"kernel_quantizer": "sbnn_symmetric", "sparse": True,
                  "label": "{-beta,+beta}"},
    "closed_form": {"kernel_quantizer": "sbnn", "sparse": True,
                    "label": "{alpha,beta} closed form (eq. 15)"},
    # eq. 15 on the mean-centred latent weights, code sign(w): this project's variant
    # (neither the paper's nor the authors' code, which binarizes the raw latent weights)
    "closed_form_centered": {"kernel_quantizer": "sbnn_centered", "sparse": True,
                             "label": "{alpha,beta} closed form on w - mean(w)"},
    "learned": {"kernel_quantizer": "sbnn_learned", "sparse": True,
                "label": "Learned {alpha,beta}"},
    "learned_dense": {"kernel_quantizer": "sbnn_learned", "sparse": False,
                      "label": "Learned {alpha,beta}, no constraint"},
}

# ----------------------------------------------------------------------------- helpers
def binary_connections(model) -> dict:
    """Global and per-layer fraction of connections (latent weight >= 0).

    Counts every larq quantized layer with a kernel quantizer (SBNN layers and the
    plain ``ste_sign`` BNN layers alike), so the baseline gets a number too.
    """
    # NOTE(switch): for SBNN models `sbnn_keras.metrics.report.sparsity_report(model).total`
    # gives the same global figure (plus K0/K1, BOPs); this helper also covers the
    # plain BNN, which has no SbnnQuantizer and hence no report.
    per_layer, total_u, total_n, max_abs = {}, 0, 0, 0.0
    for layer in model.layers:
        if getattr(layer, "kernel_quantizer", None) is None or not hasattr(layer, "kernel"):
            continue
        w = sbnn_layers_mod.latent_kernel(layer).numpy()
        u = int((w >= 0).sum())
        max_abs = max(max_abs, float(np.abs(w).max()))
        per_layer[layer.name] = u / w.size
        total_u += u
        total_n += w.size
    frac = total_u / total_n if total_n else float("nan")
    return {
        "connections": frac,
        "bits_per_weight": float(sbnn_math.binary_entropy(frac)) if total_n else float("nan"),
        "n_binary_weights": int(total_n),
        "per_layer": per_layer,
        "max_abs_latent": max_abs,
    }


def _scales(model) -> dict:
    out = {}
    for layer in sbnn_layers_mod.sbnn_layers(model):
        s = layer.kernel_quantizer.scales(sbnn_layers_mod.latent_kernel(layer))
        out[layer.name] = {k: float(np.mean(v)) for k, v in s.items()}
    return out


def machine_info() -> dict:
    model_name = platform.processor() or ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                model_name = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu": model_name,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "larq": lq.__version__ if hasattr(lq, "__version__") else "",
        "commit": commit,
    }


class _EpochLog(tf.keras.callbacks.Callback):
    """Adds connections / lambda / elapsed to the logs and prints one line per epoch."""

    def __init__(self, reg=None, printer=print, tag=""):
        super().__init__()
        self.reg, self.printer, self.tag = reg, printer, tag

    def on_train_begin(self, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["connections"] = binary_connections(self.model)["connections"]
        if self.reg is not None:
            v = self.reg.values()
            logs["lambda"], logs["j"] = v["lambda"], v["j"]
        logs["elapsed_s"] = time.perf_counter() - self.t0
        keys = ["loss", "accuracy", "val_accuracy", "connections", "lambda", "elapsed_s"]
        parts = [f"{k}={logs[k]:.4g}" for k in keys if k in logs]
        self.printer(f"[{self.tag}] epoch {epoch + 1}: " + " ".join(parts))


# ----------------------------------------------------------------------------- training
def _recalibrate(model, x_train, batch_size, test, test_acc_before) -> dict:
    """BatchNorm statistics of the final weights over the training images (the
    variant's training batch size), then the test accuracy again."""
    t0 = time.perf_counter()
    info = recalibrate_batchnorm(model, x_train, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    _, test_acc = model.evaluate(*test, batch_size=512, verbose=0)
    return {**info, "seconds": seconds, "test_accuracy_before": float(test_acc_before),
            "test_accuracy": float(test_acc)}


def _hold_out(x, y, val_size: int):
    """``(x_train, y_train, validation)``: the last ``val_size`` images held out for
    validation (``validation`` None when ``val_size`` is 0)."""
    if not val_size:
        return x, y, None
    return x[:-val_size], y[:-val_size], (x[-val_size:], y[-val_size:])


def _compiled_model(variant, arch, model_kwargs, latent_clip, lr, epochs, steps_per_epoch, ec, gamma,
                    lambda_threshold, regularizer_kwargs):
    """``(model, regularizer or None)``: the variant's network compiled with Adam on a
    cosine decay to 0 and, for a sparse variant, the bound SparsityRegularizer."""
    spec = VARIANTS[variant]
    constraint = "weight_clip" if latent_clip == 1.0 else lq.constraints.WeightClip(latent_clip)
    model = build_model(
        arch,
        kernel_quantizer=spec["kernel_quantizer"],
        kernel_constraint=constraint,
        name=f"fmnist_{variant}",
        **(model_kwargs or {}),
    )
    schedule = tf.keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, epochs * steps_per_epoch))
    optimizer = tf.keras.optimizers.Adam(schedule)
    reg = None
    if spec["sparse"]:
        reg = SparsityRegularizer(
            "sparse_categorical_crossentropy",
            expected_connections=ec,
            gamma=gamma,
            lambda_threshold=lambda_threshold,
            **(regularizer_kwargs or {}),
        )
        loss = reg.bind(model)
    else:
        loss = "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model, reg


def train_variant(
    variant: str,
    data,
    epochs: int = RECIPE["epochs"],
    batch_size: int = RECIPE["batch_size"],
    lr: float = RECIPE["lr"],
    ec: float = RECIPE["ec"],
    gamma: float = RECIPE["gamma"],
    latent_clip: float = RECIPE["latent_clip"],
    lambda_threshold: float = RECIPE["lambda_threshold"],
    val_size: int = RECIPE["val_size"],
    seed: int = RECIPE["seed"],
    model_kwargs: dict | None = None,
    arch: str = "cnn",
    verbose: int = 1,
    printer=print,
    regularizer_kwargs: dict | None = None,
    recalibrate: bool = False,
):
    """Train one Table-1 variant; return ``(model, result_dict)``.

    Args:
        variant: a key of :data:`VARIANTS`.
        data: ``((x_train, y_train), (x_test, y_test))`` as from ``load_fashion_mnist``.
        epochs, batch_size, lr: Adam with cosine decay from ``lr`` to 0.
        ec, gamma: SparsityRegularizer target and share (sparse variants only).
        latent_clip: clamp of the latent kernels after each step (1.0 = larq's
            ``weight_clip``; the authors use 1.5).
        lambda_threshold: the regularizer's lambda cut-off (authors: 1e-4).
        val_size: the last ``val_size`` training images are held out for
            validation (used for tuning decisions); 0 trains on all of them.
        seed: seeds Python, NumPy and TensorFlow.
        model_kwargs: extra arguments of the model builder.
        arch: ``"cnn"`` (:func:`sbnn_zoo.models.fashion_mnist_cnn`, the demo
            network) or ``"resnet"`` (:func:`sbnn_zoo.models.fashion_mnist_resnet`).
        verbose: 0 silent, 1 one line per epoch.
        regularizer_kwargs: extra arguments of the ``SparsityRegularizer`` (sparse
            variants only), e.g. ``{"structure": "kernel"}``.
        recalibrate: after training, recompute every BatchNorm's moving statistics
            over the training images (``sbnn_keras.training.recalibration``) before
            the test accuracy is taken; the result then also holds
            ``test_accuracy_before_recalibration`` and ``recalibration``. Off by
            default, so that the Table-1 runs measure what they always measured.
    """
    if variant not in VARIANTS:
        raise ValueError(f"train_variant: `variant` must be one of {sorted(VARIANTS)}, got {variant!r}.")
    spec = VARIANTS[variant]
    (x_train, y_train), (x_test, y_test) = data
    x_train, y_train, validation = _hold_out(x_train, y_train, val_size)
    tf.keras.utils.set_random_seed(seed)
    model, reg = _compiled_model(
        variant, arch, model_kwargs, latent_clip, lr, epochs, int(np.ceil(len(x_train) / batch_size)),
        ec, gamma, lambda_threshold, regularizer_kwargs,
    )
    t0 = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=validation,
        shuffle=True,
        verbose=0,
        callbacks=[_EpochLog(reg, printer if verbose else (lambda *_: None), tag=variant)],
    )
    train_s = time.perf_counter() - t0
    _, test_acc = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
    recal = _recalibrate(model, x_train, batch_size, (x_test, y_test), test_acc) if recalibrate else None
    if recal is not None:
        test_acc = recal["test_accuracy"]
    conn = binary_connections(model)
    result = {
        "variant": variant,
        "label": spec["label"],
        "kernel_quantizer": spec["kernel_quantizer"],
        "sparsity_regularizer": spec["sparse"],
        "test_accuracy": float(test_acc),
        "val_accuracy": float(history.history["val_accuracy"][-1]) if validation else None,
        "connections": conn["connections"],
        "bits_per_weight": conn["bits_per_weight"],
        "connections_per_layer": conn["per_layer"],
        "n_binary_weights": conn["n_binary_weights"],
        "max_abs_latent": conn["max_abs_latent"],
        "scales": _scales(model),
        "train_wall_s": train_s,
        "config": {
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "schedule": "cosine to 0",
            "optimizer": "Adam", "ec": ec if spec["sparse"] else None,
            "gamma": gamma if spec["sparse"] else None, "latent_clip": latent_clip,
            "lambda_threshold": lambda_threshold if spec["sparse"] else None,
            "val_size": val_size, "train_size": int(len(x_train)), "test_size": int(len(x_test)),
            "seed": seed, "arch": arch, "model_kwargs": {k: repr(v) for k, v in (model_kwargs or {}).items()},
            "regularizer_kwargs": dict(regularizer_kwargs or {}) if spec["sparse"] else None,
        },
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    if recal is not None:
        result["test_accuracy_before_recalibration"] = recal["test_accuracy_before"]
        result["recalibration"] = recal
    return model, result


def quick_data(data, n_train: int = 1024, n_test: int = 256):
    """A small deterministic subset for smoke runs."""
    (x, y), (xt, yt) = data
    return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])


# ----------------------------------------------------------------------------- report
def write_report(model, out_dir: Path, printer=print) -> dict:
    """Print the sparsity report, write its JSON and the Hamming-weight histogram PNG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    json_path = out_dir / "sparsity_report.json"
    png_path = out_dir / "hamming_histograms.png"
    try:
        from sbnn_keras.metrics.report import sparsity_report
    except ImportError:  # NOTE(switch): fallback while sbnn_keras.metrics.report is missing
        sparsity_report = None
    if sparsity_report is not None:
        report = sparsity_report(model)
        report.print(printer)
        report.to_json(json_path)
        totals = {k: getattr(report.total, k) for k in ("connections", "bits_per_weight", "k0", "k1")}
    else:
        conn = binary_connections(model)
        printer(json.dumps(conn, indent=2))
        json_path.write_text(json.dumps(conn, indent=2))
        report = model
        totals = {k: conn[k] for k in ("connections", "bits_per_weight")}
    paths["report_json"] = str(json_path)
    try:
        from sbnn_keras.metrics.plot import plot_hamming_histograms
    except ImportError:  # NOTE(switch): fallback while sbnn_keras.metrics.plot is missing
        plot_hamming_histograms = None
    if plot_hamming_histograms is not None:
        plot_hamming_histograms(report, png_path)
        paths["hamming_png"] = str(png_path)
    return {"paths": paths, "totals": totals}


# ----------------------------------------------------------------------------- CLI
DEMO_FILES = ("sparsity_report.json", "hamming_histograms.png", "demo_results.json")


def output_dir(out: str, force: bool) -> Path:
    """The directory this run writes to, checked before any training.

    An earlier run's files are kept: unless ``force``, a directory that already holds
    them gets a new ``run-YYYYmmdd-HHMMSS`` subdirectory for this run.

    Raises:
        ValueError: ``out`` is a file, or the directory cannot be created or written.
    """
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--out {out!r} is a file, not a directory")
    if not force and p.is_dir() and any((p / n).exists() for n in DEMO_FILES):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        k, q = 0, p / f"run-{stamp}"
        while q.exists():
            k += 1
            q = p / f"run-{stamp}-{k}"
        print(f"{out} holds an earlier run (kept); this run writes to {q} (--force replaces it)")
        p = q
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as err:
        raise ValueError(f"--out {out!r}: cannot write there ({err.strerror or err})") from None
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        out_dir = output_dir(args.out, args.force)
    except ValueError as err:
        parser.error(str(err))
    data = load_fashion_mnist(data_dir=args.data_dir)
    epochs, val_size = args.epochs, RECIPE["val_size"]
    if args.quick:
        data, epochs, val_size = quick_data(data), 1, 128
    info = machine_info()
    print(f"Fashion-MNIST: {len(data[0][0])} train / {len(data[1][0])} test images; "
          f"{epochs} epoch(s); machine: {info['cpu']} x{info['cores']}")
    # BatchNorm statistics recomputed for the final weights before testing and export
    # (the regularizer may have flipped many weights in the last epochs: docs/training.md)
    common = dict(epochs=epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, val_size=val_size,
                  recalibrate=args.recalibrate)
    results = {}
    if not args.skip_bnn:
        bnn_model, results["bnn"] = train_variant("bnn", data, **common)
    model, results["sbnn"] = train_variant(
        "learned", data, ec=args.ec, gamma=args.gamma, lambda_threshold=args.lambda_threshold, **common
    )

    print()
    for key, r in results.items():
        if "recalibration" in r:
            print(f"{key.upper():4s} BatchNorm recalibrated ({r['recalibration']['batches']} batches, "
                  f"{r['recalibration']['seconds']:.0f} s): test accuracy "
                  f"{r['test_accuracy_before_recalibration']:.4f} -> {r['test_accuracy']:.4f}")
    if "bnn" in results:
        r = results["bnn"]
        print(f"BNN  (larq ste_sign)            test accuracy: {r['test_accuracy']:.4f}  "
              f"({r['train_wall_s']:.0f} s)")
    r = results["sbnn"]
    print(f"SBNN (learned {{alpha,beta}}, EC={args.ec:g}) test accuracy: {r['test_accuracy']:.4f}  "
          f"connections: {r['connections']:.4f}  ({r['train_wall_s']:.0f} s)")
    print()
    written = write_report(model, out_dir)
    results["sparsity_totals"] = written["totals"]
    results["machine"] = info
    results["argv"] = sys.argv[1:] if argv is None else list(argv)
    if "bnn" in results and not args.no_deploy:
        from sbnn_zoo.deploy_report import deployment_rows, format_rows

        print()
        print("Deployment on this machine (stock TFLite + the sbnn delegate, 1 thread, batch 1):")
        x_test, y_test = data[1]
        rows = deployment_rows(
            {"BNN": (bnn_model, "lce"), "SBNN": (model, "sparse")},
            x_test.astype("float32"),
            y_test,
            n_eval=256 if args.quick else 2000,
            runs=10 if args.quick else 500,
        )
        print(format_rows(rows))
        results["deployment"] = rows
    demo_json = out_dir / "demo_results.json"
    demo_json.write_text(json.dumps(results, indent=2, default=float))
    print(f"sparsity report JSON: {written['paths']['report_json']}")
    if "hamming_png" in written["paths"]:
        print(f"Hamming-weight histograms: {written['paths']['hamming_png']}")
    print(f"results: {demo_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
