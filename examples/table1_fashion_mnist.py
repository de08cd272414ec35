"""The SBNN paper's Table 1 (role of the binary domain), on Fashion-MNIST.

Variants (same network, same recipe, only the weight domain and the constraint differ):

    bnn              baseline: plain larq BNN, kernels sign(w) in {-1,+1}, no constraint
    symmetric_dense  baseline as in the paper: {-beta,+beta}, beta = mean|w|, no constraint
    symmetric        {-beta,+beta} with the sparsity constraint (EC)
    closed_form      {alpha,beta} from paper eq. 15, with the constraint
    learned          learned {alpha,beta} (trainable tau, phi), with the constraint

Usage::

    python examples/table1_fashion_mnist.py                    # the four Table-1 rows
    python examples/table1_fashion_mnist.py --variant learned --epochs 6
    python examples/table1_fashion_mnist.py --quick            # smoke run on a subset

Each run writes ``docs/data/table1_<variant>[_<tag>].json`` (or ``--out``); the
numbers are collected in ``docs/results.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sbnn_keras  # noqa: F401  (selects legacy Keras before TensorFlow is imported)
from sbnn_zoo.datasets import load_fashion_mnist
from sbnn_zoo.demo import RECIPE, VARIANTS, machine_info, quick_data, train_variant

TABLE1 = ["bnn", "symmetric", "closed_form", "learned"]
ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="table1",
                   help=f"one of {sorted(VARIANTS)}, a comma-separated list, or 'table1' ({', '.join(TABLE1)})")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    p.add_argument("--lr", type=float, default=RECIPE["lr"])
    p.add_argument("--ec", type=float, default=RECIPE["ec"])
    p.add_argument("--gamma", type=float, default=RECIPE["gamma"])
    p.add_argument("--latent-clip", type=float, default=RECIPE["latent_clip"],
                   help="clamp of the latent kernels (1.0 = larq weight_clip; authors 1.5)")
    p.add_argument("--lambda-threshold", type=float, default=RECIPE["lambda_threshold"])
    p.add_argument("--val-size", type=int, default=RECIPE["val_size"],
                   help="training images held out for validation (default %(default)s)")
    p.add_argument("--seed", type=int, default=RECIPE["seed"])
    p.add_argument("--arch", default="cnn", choices=["cnn", "resnet"],
                   help="cnn: the demo CNN; resnet: the same with Bi-Real-style shortcuts")
    p.add_argument("--quick", action="store_true", help="1024 train (128 of them held out) / 256 test images, 1 epoch")
    p.add_argument("--tag", default="", help="suffix of the JSON file name")
    p.add_argument("--out", default=str(ROOT / "docs" / "data"), help="output directory (default docs/data)")
    args = p.parse_args(argv)

    variants = TABLE1 if args.variant == "table1" else args.variant.split(",")
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; choose from {sorted(VARIANTS)} or 'table1'")
    data = load_fashion_mnist()
    epochs, val_size = args.epochs, args.val_size
    if args.quick:
        data, epochs, val_size = quick_data(data), 1, 128
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    rows = []
    for v in variants:
        t0 = time.perf_counter()
        _, r = train_variant(
            v, data, epochs=epochs, batch_size=args.batch_size, lr=args.lr, ec=args.ec,
            gamma=args.gamma, latent_clip=args.latent_clip, lambda_threshold=args.lambda_threshold,
            val_size=val_size, seed=args.seed, arch=args.arch,
            printer=lambda s: print(s, flush=True),
        )
        r["run_wall_s"] = time.perf_counter() - t0
        r["machine"] = info
        r["command"] = "python examples/table1_fashion_mnist.py " + " ".join(sys.argv[1:] if argv is None else argv)
        r["quick"] = bool(args.quick)
        name = f"table1_{v}" + (f"_{args.tag}" if args.tag else "") + ("_quick" if args.quick else "")
        path = out / f"{name}.json"
        path.write_text(json.dumps(r, indent=2))
        rows.append(r)
        print(f"== {v}: test acc {r['test_accuracy']:.4f}, connections {r['connections']:.4f}, "
              f"train {r['train_wall_s']:.0f} s -> {path}", flush=True)

    base = next((r["test_accuracy"] for r in rows if r["variant"] in ("bnn", "symmetric_dense")), None)
    print("\n| Domain | Sparsity constraint | Test accuracy | Delta | Connections | Train time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cons = f"EC {r['config']['ec']:g}" if r["sparsity_regularizer"] else "/"
        delta = f"{100 * (r['test_accuracy'] - base):+.2f}" if base is not None else "n/a"
        print(f"| {r['label']} | {cons} | {100 * r['test_accuracy']:.2f}% | {delta} | "
              f"{r['connections']:.4f} | {r['train_wall_s']:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
