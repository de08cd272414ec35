"""Deployment comparison for the demo: dense BNN vs sparse SBNN as .tflite files.

Converts each trained Keras model, runs it in stock TFLite with the project's
delegate on this machine and reports, side by side: TFLite accuracy (and agreement
with Keras), file size, bits per binary weight, and latency (median of repeated
single-image invokes, 1 thread, the models' invokes interleaved). The BNN is converted with the "lce" flavor (LCE's
1 bit/weight filters); the SBNN with "sparse" (SBF1 filters). The delegate picks
the kernel of every layer by timing ("auto"): dense for the BNN's 50% filters, the
sparse kernels where they are faster.
"""

from __future__ import annotations

import time

import numpy as np

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

from sbnn_keras.export.convert import convert_with_report  # noqa: E402
from sbnn_runtime import Interpreter  # noqa: E402

__all__ = ["deployment_rows", "format_rows"]


def _latencies_ms(interps: dict, x, runs: int, warmup: int = 3) -> dict:
    """Median single-image invoke time of each interpreter, measured side by side:
    every round runs each model once, in alternating order, so that load changes on a
    shared machine hit them alike (a model measured minutes after another can look
    1.5x slower or faster for no reason of its own)."""
    sample = x[:1]
    for interp in interps.values():
        for _ in range(warmup):
            interp.predict(sample)
    times = {name: [] for name in interps}
    order = list(interps)
    for r in range(runs):
        for name in order if r % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            interps[name].predict(sample)
            times[name].append(time.perf_counter() - t)
    return {name: 1e3 * float(np.median(v)) for name, v in times.items()}


def deployment_rows(models: dict, x_test, y_test, *, n_eval: int = 1000, runs: int = 50) -> list:
    """One row per (name, (keras_model, flavor)) in ``models``; latencies measured
    side by side (interleaved invokes, median wall time of single-image invokes)."""
    x_eval, y_eval = x_test[:n_eval], y_test[:n_eval]
    rows, interps = [], {}
    for name, (model, flavor) in models.items():
        data, report = convert_with_report(model, flavor=flavor)
        interp = interps[name] = Interpreter(data, num_threads=1)
        logits = np.concatenate([interp.predict(x_eval[i : i + 100]) for i in range(0, len(x_eval), 100)])
        keras_logits = model.predict(x_eval, verbose=0, batch_size=100)
        storage = [s for layer in report.layers for s in layer.storage]
        if storage:
            weights = sum(int(np.prod(s["filter_shape"])) for s in storage)
            bits = 8 * sum(s["stored_bytes"] for s in storage) / weights
        else:  # "lce" flavor: 1 bit per binary weight
            bits = 1.0
        rows.append(
            {
                "model": name,
                "flavor": flavor,
                "tflite_accuracy": float(np.mean(np.argmax(logits, -1) == y_eval)),
                "agreement_with_keras": float(np.mean(np.argmax(logits, -1) == np.argmax(keras_logits, -1))),
                "file_bytes": len(data),
                "binary_bits_per_weight": float(bits),
            }
        )
    latencies = _latencies_ms(interps, x_eval, runs)
    for row in rows:
        row["latency_ms"] = latencies[row["model"]]
        row["kernels"] = interps[row["model"]].describe()
    return rows


def format_rows(rows: list) -> str:
    header = f"{'model':<6} {'flavor':<7} {'TFLite acc':>10} {'= Keras':>8} {'file KiB':>9} {'bits/w':>7} {'latency ms':>11}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['model']:<6} {r['flavor']:<7} {r['tflite_accuracy']:>10.4f} {r['agreement_with_keras']:>8.3f} "
            f"{r['file_bytes'] / 1024:>9.1f} {r['binary_bits_per_weight']:>7.3f} {r['latency_ms']:>11.3f}"
        )
    if len(rows) == 2:
        a, b = rows
        lines.append(
            f"{b['model']} vs {a['model']}: file {a['file_bytes'] / b['file_bytes']:.2f}x smaller, "
            f"latency {a['latency_ms'] / b['latency_ms']:.2f}x"
        )
    return "\n".join(lines)
