"""Structured vs unstructured sparsity on Fashion-MNIST: accuracy, K0/K1, file size, latency.

Trains the demo CNN recipe (learned {alpha, beta}, EC 0.05, gamma 0.7,
lambda_threshold 3e-3, Adam 1e-3 cosine, batch 128) once per
``SparsityRegularizer(structure=...)`` and then measures every trained model side by
side in one process::

    # one training run per structure (each saves a .keras model and a JSON)
    python benchmarks/structured_sparsity.py train --structure none   --epochs 8 --models DIR
    python benchmarks/structured_sparsity.py train --structure kernel --epochs 8 --models DIR
    python benchmarks/structured_sparsity.py train --structure word   --epochs 8 --models DIR
    # then all models together: conversion, TFLite accuracy, bits/weight, latency
    python benchmarks/structured_sparsity.py measure --models DIR

``measure`` converts each model with ``flavor="lce"``, ``"sparse"`` and ``"auto"``, runs
the files in stock TFLite with the project's delegate (1 thread, batch 1) and times,
interleaved in rounds so that every configuration sees the same machine load:

* each file with the delegate's ``kernel="auto"`` (per-layer timed choice between
  dense and sparse kernels);
* the SBF1 ("sparse") file with a kernel forced for every binary layer: the best dense
  kernel, the bit-plane sparse kernel (cost per connection) and
  ``bconv2d_sparse_k01__scalar`` (skips all-alpha kernels, K0; the only kernel that
  can profit from kernel structure).

It writes ``docs/data/structured_sparsity.json`` (``--json``) and prints a Markdown table.
Training runs also write ``structured_sparsity_train_<structure>.json`` next to it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import sbnn_keras  # noqa: F401  (selects legacy Keras before TensorFlow is imported)

import numpy as np  # noqa: E402

from sbnn_keras import math as sbnn_math  # noqa: E402
from sbnn_keras.metrics import stats  # noqa: E402
from sbnn_zoo.datasets import load_fashion_mnist  # noqa: E402
from sbnn_zoo.demo import RECIPE, machine_info, quick_data, train_variant  # noqa: E402
from sbnn_keras.layers import latent_kernel, sbnn_layers  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "data"
STRUCTURES = sbnn_math.STRUCTURES
#: kernels forced on the SBF1 file (skipped when the delegate does not know them)
FORCED = (
    "bconv2d_dot_6x32__avx512vpopcnt",
    "bconv2d_sparse_bitplane_512__avx512",
    "bconv2d_sparse_k01__scalar",
)


def structure_stats(model, word_size: int = 32) -> dict:
    """Connections, K0/K1 (3x3 kernels) and W0 (all-alpha 32-channel words) of the SBNN layers."""
    hist, words, empty_words, per_layer = None, 0, 0, {}
    u = n = 0
    for layer in sbnn_layers(model):
        w01 = stats.connection_mask(latent_kernel(layer).numpy())
        h = stats.hamming_histogram(w01)
        hist = h if hist is None else hist + h
        wc = sbnn_math.group_connection_counts(w01, "word", word_size)
        words += wc.size
        empty_words += int(np.sum(wc == 0))
        u += int(w01.sum())
        n += w01.size
        k0, k1 = stats.k_shares(h)
        per_layer[layer.name] = {
            "connections": float(w01.mean()),
            "k0": k0,
            "k1": k1,
            "w0": float(np.mean(wc == 0)),
            "hamming_histogram": h.tolist(),
        }
    k0, k1 = stats.k_shares(hist)
    p = u / n
    kernels = [sum(lay["hamming_histogram"]) for lay in per_layer.values()]
    iid = [(1 - lay["connections"]) ** (len(lay["hamming_histogram"]) - 1) for lay in per_layer.values()]
    k0_iid = float(np.dot(kernels, iid) / np.sum(kernels))
    from sbnn_keras.metrics.report import sparsity_report

    total = sparsity_report(model).total
    return {
        # paper Tables 2-3: BOPs with K0 skipped / K1 as shifted copies, BParams storage
        "bops_kernel_skip_ratio": total.bops_kernel_skip_ratio,
        "bops_sparse_ratio": total.bops_sparse_ratio,
        "bparams_ratio": total.bparams_ratio,
        "connections": p,
        "entropy_bits_per_weight": float(sbnn_math.binary_entropy(p)),
        "k0": k0,
        "k1": k1,
        # K0 share if each layer's connections were placed independently (Bernoulli)
        "k0_iid": k0_iid,
        "w0": empty_words / words,
        "hamming_histogram": hist.tolist(),
        "per_layer": per_layer,
    }


# --------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    data = load_fashion_mnist(data_dir=args.data_dir)
    epochs, val_size = args.epochs, RECIPE["val_size"]
    if args.quick:
        data, epochs, val_size = quick_data(data), 1, 128
    kwargs = {"structure": args.structure}
    if args.structure == "word":
        kwargs["word_size"] = args.word_size
    if args.structure != "none":
        kwargs["group_epsilon"] = args.group_epsilon
    t0 = time.perf_counter()
    model, result = train_variant(
        "learned", data, epochs=epochs, val_size=val_size, seed=args.seed,
        ec=args.ec, gamma=args.gamma, lambda_threshold=args.lambda_threshold,
        regularizer_kwargs=kwargs, printer=lambda s: print(s, flush=True),
    )
    result["run_wall_s"] = time.perf_counter() - t0
    result["structure"] = args.structure
    result["structure_stats"] = structure_stats(model)
    result["machine"] = machine_info()
    result["command"] = "python benchmarks/structured_sparsity.py " + " ".join(sys.argv[1:])
    result["quick"] = bool(args.quick)
    models = Path(args.models)
    models.mkdir(parents=True, exist_ok=True)
    tag = args.structure + ("_quick" if args.quick else "")
    model.save(models / f"{tag}.keras")
    (models / f"{tag}.json").write_text(json.dumps(result, indent=2))
    out = Path(args.json_dir) / f"structured_sparsity_train_{tag}.json"
    out.write_text(json.dumps(result, indent=2))
    s = result["structure_stats"]
    print(f"== {args.structure}: test acc {result['test_accuracy']:.4f}, connections {s['connections']:.4f}, "
          f"K0 {s['k0']:.3f} (iid {s['k0_iid']:.3f}), K1 {s['k1']:.3f}, W0 {s['w0']:.3f} -> {out}", flush=True)
    return 0


# --------------------------------------------------------------------------- measure
def _bits(report) -> float:
    storage = [s for layer in report.layers for s in layer.storage]
    if not storage:
        return 1.0
    weights = sum(int(np.prod(s["filter_shape"])) for s in storage)
    return 8 * sum(s["stored_bytes"] for s in storage) / weights


def cmd_measure(args) -> int:
    import sbnn_runtime as runtime
    from sbnn_keras.export.convert import convert_with_report
    from sbnn_keras.regularizer import load_model

    lib = Path(runtime.library_path())
    data = load_fashion_mnist(data_dir=args.data_dir)
    (_, _), (x_test, y_test) = data
    x_test = x_test.astype("float32")
    if args.quick:
        x_test, y_test = x_test[:256], y_test[:256]
    models_dir = Path(args.models)
    suffix = "_quick" if args.quick else ""
    names = [s for s in args.structures.split(",") if (models_dir / f"{s}{suffix}.keras").is_file()]
    if not names:
        print(f"no trained model in {models_dir}", file=sys.stderr)
        return 1
    known = set(runtime.available_kernels())
    forced = []
    for k in FORCED:
        try:
            runtime.load_delegate(kernel=k)
            forced.append(k)
        except ValueError:
            print(f"the delegate does not accept kernel {k!r}; skipped", flush=True)
    rows, configs = [], []
    for name in names:
        model = load_model(models_dir / f"{name}{suffix}.keras", compile=False)
        train = json.loads((models_dir / f"{name}{suffix}.json").read_text())
        st = structure_stats(model)
        files = {}
        for flavor in ("lce", "sparse", "auto"):
            blob, report = convert_with_report(model, flavor=flavor)
            files[flavor] = {"bytes": len(blob), "bits_per_weight": _bits(report), "data": blob}
        # TFLite accuracy of the SBF1 file (delegate "auto")
        interp = runtime.Interpreter(files["sparse"]["data"], num_threads=1)
        logits = np.concatenate([interp.predict(x_test[i:i + 500]) for i in range(0, len(x_test), 500)])
        tfl_acc = float(np.mean(np.argmax(logits, -1) == y_test))
        kernels_auto = interp.describe()
        # forced kernels give the same outputs (checked on a few images)
        agree = {}
        for k in forced:
            it = runtime.Interpreter(files["sparse"]["data"], num_threads=1, kernel=k)
            agree[k] = float(np.max(np.abs(it.predict(x_test[:16]) - interp.predict(x_test[:16]))))
        row = {
            "structure": name,
            "keras_test_accuracy": train["test_accuracy"],
            "tflite_test_accuracy": tfl_acc,
            "train_wall_s": train["train_wall_s"],
            "train_command": train.get("command"),
            "train_commit": train.get("machine", {}).get("commit"),
            "regularizer_kwargs": train["config"].get("regularizer_kwargs"),
            "stats": st,
            "files": {f: {"bytes": v["bytes"], "bits_per_weight": v["bits_per_weight"]} for f, v in files.items()},
            "kernels_auto": kernels_auto,
            "forced_max_abs_diff_vs_auto": agree,
            "latency_ms": {},
        }
        rows.append(row)
        for flavor in ("lce", "sparse", "auto"):
            configs.append((row, f"{flavor}/auto", files[flavor]["data"], "auto"))
        for k in forced:
            configs.append((row, f"sparse/{k}", files["sparse"]["data"], k))
        print(f"{name}: converted; TFLite acc {tfl_acc:.4f}; K0 {st['k0']:.3f}", flush=True)

    # latency: interleaved rounds, batch 1, 1 thread
    interps = []
    for row, label, blob, kernel in configs:
        it = runtime.Interpreter(blob, num_threads=1, kernel=kernel)
        for _ in range(3):
            it.predict(x_test[:1])
        interps.append((row, label, it))
    samples = {(id(r), label): [] for r, label, _ in interps}
    sample = x_test[:1]
    for _ in range(args.rounds):
        for row, label, it in interps:
            times = []
            for _ in range(args.reps):
                t = time.perf_counter()
                it.predict(sample)
                times.append(time.perf_counter() - t)
            samples[(id(row), label)].append(1e3 * float(np.median(times)))
    for row, label, _ in interps:
        v = samples[(id(row), label)]
        row["latency_ms"][label] = {"median": float(np.median(v)), "min": float(np.min(v)), "rounds": v}

    result = {
        "what": "SparsityRegularizer(structure=...) on Fashion-MNIST: demo CNN recipe, learned {alpha,beta}",
        "command": "python benchmarks/structured_sparsity.py " + " ".join(sys.argv[1:]),
        "machine": {**machine_info(), "loadavg_end": os.getloadavg(), "delegate_library": str(lib),
                    "delegate_sha256": hashlib.sha256(lib.read_bytes()).hexdigest()[:16]},
        "settings": {"rounds": args.rounds, "reps_per_round": args.reps, "threads": 1, "batch": 1,
                     "test_images": int(len(x_test)), "forced_kernels": forced},
        "rows": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    print(f"-> {out}")
    return 0


def markdown(result: dict) -> str:
    rows = result["rows"]
    lines = [
        "| structure | test acc. (Keras / TFLite) | connections | K0 (iid) | K1 | W0 | SBF1 bits/w | "
        + " | ".join(rows[0]["latency_ms"]) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(rows[0]["latency_ms"]),
    ]
    for r in rows:
        s = r["stats"]
        lat = " | ".join(f"{v['median']:.3f}" for v in r["latency_ms"].values())
        lines.append(
            f"| {r['structure']} | {100 * r['keras_test_accuracy']:.2f} / {100 * r['tflite_test_accuracy']:.2f} "
            f"| {s['connections']:.4f} | {100 * s['k0']:.1f}% ({100 * s['k0_iid']:.1f}%) | {100 * s['k1']:.1f}% "
            f"| {100 * s['w0']:.1f}% | {r['files']['sparse']['bits_per_weight']:.3f} | {lat} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one structure, save the model")
    t.add_argument("--structure", choices=STRUCTURES, required=True)
    t.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    t.add_argument("--ec", type=float, default=RECIPE["ec"])
    t.add_argument("--gamma", type=float, default=RECIPE["gamma"])
    t.add_argument("--lambda-threshold", type=float, default=RECIPE["lambda_threshold"])
    t.add_argument("--group-epsilon", type=float, default=1.0)
    t.add_argument("--word-size", type=int, default=32)
    t.add_argument("--seed", type=int, default=RECIPE["seed"])
    t.add_argument("--json-dir", default=str(DATA))
    m = sub.add_parser("measure", help="convert and time all trained models side by side")
    m.add_argument("--structures", default=",".join(STRUCTURES))
    m.add_argument("--rounds", type=int, default=15)
    m.add_argument("--reps", type=int, default=20)
    m.add_argument("--json", default=str(DATA / "structured_sparsity.json"))
    for q in (t, m):
        q.add_argument("--models", required=True, help="directory of the trained models (.keras + .json)")
        q.add_argument("--data-dir", default=None)
        q.add_argument("--quick", action="store_true", help="tiny subset, 1 epoch / few images (smoke run)")
    args = p.parse_args(argv)
    if args.cmd == "measure" and args.quick:
        args.rounds, args.reps = 2, 3
    return cmd_train(args) if args.cmd == "train" else cmd_measure(args)


if __name__ == "__main__":
    sys.exit(main())
