#!/usr/bin/env python3
"""Trains the Fashion-MNIST demo network at several sparsities, as weight sources
for ``benchmarks/sparse_model.py`` (the model-level sparse benchmark).

    . .venv/bin/activate; export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=3
    python benchmarks/train_sparse_models.py --out runs/models            # 4 models, 3 epochs each
    python benchmarks/train_sparse_models.py --out /tmp/m --quick         # smoke run (< 1 min)

Models (``sbnn_zoo.demo.train_variant``, the demo network
``sbnn_zoo.models.fashion_mnist_cnn``; Adam, cosine decay, batch 128, seed 1):

=========  ======================================================================
``p50``    the plain larq BNN (``ste_sign`` kernels, no sparsity constraint):
           ~50% of the weights are +1
``p90``    SBNN, learned {alpha, beta}, ``SparsityRegularizer`` EC 0.10
``p95``    the same at EC 0.05
``p99``    the same at EC 0.01
=========  ======================================================================

The SBNN recipe is the demo's (``sbnn_zoo.demo.RECIPE``: gamma 0.7,
lambda_threshold 3e-3) with a reduced budget (``--epochs``, default 3): what the
benchmark needs is the *structure* of trained sparse filters (which kernels are
empty, how connections spread over output channels), which the regularizer
produces in the first two epochs; the test accuracy is recorded anyway.

Writes per model into ``--out``: ``<name>.keras`` (the Keras model),
``<name>.npz`` (the latent kernels of the binary layers, ``(3, 3, cin, cout)``
each, a connection is a latent weight >= 0; plus per layer tau and phi where
learned) and ``<name>.json`` (accuracy, connections, K0/K1, training config);
and ``summary.json`` for all models.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sbnn_keras  # noqa: E402,F401  (before tensorflow)
import numpy as np  # noqa: E402

from sbnn_zoo import demo  # noqa: E402
from sbnn_keras import layers as sbnn_layers  # noqa: E402
from sbnn_zoo.datasets import load_fashion_mnist  # noqa: E402

#: name -> (demo variant, EC of the regularizer or None)
MODELS = {
    "p50": ("bnn", None),
    "p90": ("learned", 0.10),
    "p95": ("learned", 0.05),
    "p99": ("learned", 0.01),
}


def kernel_stats(latent: np.ndarray) -> dict:
    """Connections, K0 and K1 shares of a (kh, kw, cin, cout) latent kernel."""
    conn = latent >= 0
    hw = conn.reshape(-1, *conn.shape[2:]).sum(axis=0)  # (cin, cout) Hamming weights
    return {
        "connections": float(conn.mean()),
        "k0": float((hw == 0).mean()),
        "k1": float((hw == 1).mean()),
        "weights": int(conn.size),
    }


def export(model, name: str, result: dict, out: Path) -> dict:
    arrays, layers = {}, {}
    for layer in model.layers:
        if getattr(layer, "kernel_quantizer", None) is None or not hasattr(layer, "kernel"):
            continue
        latent = sbnn_layers.latent_kernel(layer).numpy()
        arrays[f"{layer.name}/kernel"] = latent
        kq = layer.kernel_quantizer
        for attr in ("tau", "phi"):
            if hasattr(kq, attr) and getattr(kq, attr) is not None:
                arrays[f"{layer.name}/{attr}"] = np.asarray(getattr(kq, attr).numpy())
        layers[layer.name] = kernel_stats(latent)
    np.savez_compressed(out / f"{name}.npz", **arrays)
    model.save(out / f"{name}.keras")
    allw = np.concatenate([arrays[k].ravel() for k in arrays if k.endswith("/kernel")])
    info = {
        "name": name,
        "variant": result["variant"],
        "ec": result["config"]["ec"],
        "test_accuracy": result["test_accuracy"],
        "val_accuracy": result["val_accuracy"],
        "connections": float((allw >= 0).mean()),
        "layers": layers,
        "train_wall_s": result["train_wall_s"],
        "config": result["config"],
        "history": result["history"],
    }
    (out / f"{name}.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="directory for the models (outside the repo)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--quick", action="store_true", help="1 epoch on a 1024-image subset")
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_fashion_mnist(data_dir=a.data_dir)
    epochs, val_size = a.epochs, demo.RECIPE["val_size"]
    if a.quick:
        data, epochs, val_size = demo.quick_data(data), 1, 128
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for name in a.models:
        variant, ec = MODELS[name]
        t0 = time.time()
        kwargs = {"ec": ec} if ec is not None else {}
        model, result = demo.train_variant(
            variant, data, epochs=epochs, val_size=val_size, printer=print, **kwargs
        )
        info = export(model, name, result, out)
        info["machine"] = demo.machine_info()
        info["quick"] = a.quick
        summary[name] = {k: v for k, v in info.items() if k not in ("history",)}
        summary_path.write_text(json.dumps(summary, indent=1) + "\n")
        print(
            f"{name}: test accuracy {info['test_accuracy']:.4f}, connections "
            f"{info['connections']:.4f}, {time.time() - t0:.0f} s -> {out / name}.*",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
