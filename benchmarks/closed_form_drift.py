"""Why eq. 15 on the raw latent weights fails in the Table-1 recipe: alpha, beta and
the latent-weight means through training.

Trains the Table-1 CNN (``sbnn_zoo.models.fashion_mnist_cnn``) with the documented
recipe (Adam 1e-3 with cosine decay over 8 epochs, batch 128, EC 0.05, gamma 0.7,
lambda_threshold 3e-3, latent clamp +-1, seed 1, last 5 000 training images held out)
exactly as ``examples/table1_fashion_mnist.py`` does, for the first ``--epochs``
epochs (the decay still spans 8, so these epochs are those of the full run), and
every ``--every`` steps records for each binary layer:

* the latent-weight mean and the connections (share of latent weights >= 0);
* the domain in use (``alpha``, ``beta`` of the variant's quantizer) and, from the
  same latent weights, eq. 15 on the raw weights and on the mean-centred weights;
* the share of the shared term ``|alpha| / (beta - alpha)`` (see docs/results.md);
* the running training accuracy of the epoch.

Usage::

    python benchmarks/closed_form_drift.py --variant closed_form            # raw eq. 15
    python benchmarks/closed_form_drift.py --variant closed_form_centered   # the centred one

Writes ``docs/data/closed_form_drift_<variant>.json`` (command, commit, machine).
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

from sbnn_keras import layers as sbnn_layers
from sbnn_zoo.datasets import load_fashion_mnist
from sbnn_zoo.demo import RECIPE, VARIANTS, machine_info
from sbnn_keras.math import optimal_scales
from sbnn_zoo.models import build as build_model
from sbnn_keras.regularizer import SparsityRegularizer

ROOT = Path(__file__).resolve().parent.parent


def _domain(w):
    """(alpha, beta) of eq. 15 for latent weights ``w`` with code sign(w)."""
    tau, phi = optimal_scales(w)
    return float(phi - tau), float(phi + tau)


class Tracker(tf.keras.callbacks.Callback):
    def __init__(self, every):
        super().__init__()
        self.every, self.rows, self.epoch = every, [], 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every:
            return
        row = {"step": step, "epoch": self.epoch + 1, "train_accuracy_running": float(logs.get("accuracy", np.nan)),
               "layers": {}}
        for layer in sbnn_layers.sbnn_layers(self.model):
            w = sbnn_layers.latent_kernel(layer).numpy().astype(np.float64)
            used = layer.kernel_quantizer.scales(w)
            a_raw, b_raw = _domain(w)
            a_c, b_c = _domain(w - w.mean())
            a_c, b_c = a_c, b_c
            alpha, beta = float(np.mean(used["alpha"])), float(np.mean(used["beta"]))
            row["layers"][layer.name] = {
                "latent_mean": float(w.mean()),
                "latent_mean_negative": float(w[w < 0].mean()) if (w < 0).any() else None,
                "latent_mean_positive": float(w[w >= 0].mean()) if (w >= 0).any() else None,
                "connections": float((w >= 0).mean()),
                "alpha": alpha, "beta": beta,
                "shared_share": abs(alpha) / (beta - alpha) if beta > alpha else None,
                "eq15_raw": [a_raw, b_raw],
                "eq15_centred": [a_c, b_c],
            }
        self.rows.append(row)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="closed_form", choices=["closed_form", "closed_form_centered", "learned", "symmetric"])
    p.add_argument("--epochs", type=int, default=3, help="epochs to run of the 8-epoch schedule")
    p.add_argument("--every", type=int, default=50, help="record every N steps")
    p.add_argument("--seed", type=int, default=RECIPE["seed"])
    p.add_argument("--quick", action="store_true", help="1024 training images, 1 epoch")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    (x, y), (xt, yt) = load_fashion_mnist()
    val = RECIPE["val_size"]
    if args.quick:
        x, y, val, args.epochs, args.every = x[:1024], y[:1024], 128, 1, 2
    x_val, y_val, x_tr, y_tr = x[-val:], y[-val:], x[:-val], y[:-val]
    spec = VARIANTS[args.variant]
    # as sbnn_zoo.demo.train_variant: same seed, model, schedule, loss, fit arguments
    tf.keras.utils.set_random_seed(args.seed)
    model = build_model("cnn", kernel_quantizer=spec["kernel_quantizer"], kernel_constraint="weight_clip",
                        name=f"fmnist_{args.variant}")
    steps = int(np.ceil(len(x_tr) / RECIPE["batch_size"]))
    schedule = tf.keras.optimizers.schedules.CosineDecay(RECIPE["lr"], decay_steps=RECIPE["epochs"] * steps)
    reg = SparsityRegularizer("sparse_categorical_crossentropy", expected_connections=RECIPE["ec"],
                              gamma=RECIPE["gamma"], lambda_threshold=RECIPE["lambda_threshold"])
    model.compile(optimizer=tf.keras.optimizers.Adam(schedule), loss=reg.bind(model), metrics=["accuracy"])
    tracker = Tracker(args.every)
    machine = machine_info()  # at the start: the commit of the code that runs
    t0 = time.perf_counter()
    hist = model.fit(x_tr, y_tr, batch_size=RECIPE["batch_size"], epochs=args.epochs,
                     validation_data=(x_val, y_val), shuffle=True, verbose=0, callbacks=[tracker])
    out = {
        "benchmark": "closed_form_drift", "variant": args.variant,
        "config": {**{k: RECIPE[k] for k in ("lr", "batch_size", "ec", "gamma", "lambda_threshold", "val_size")},
                   "schedule_epochs": RECIPE["epochs"], "epochs_run": args.epochs, "seed": args.seed,
                   "every": args.every, "quick": args.quick},
        "history": {k: [float(v) for v in vals] for k, vals in hist.history.items()},
        "trajectory": tracker.rows, "train_wall_s": time.perf_counter() - t0,
        "command": "python benchmarks/closed_form_drift.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine,
    }
    path = Path(args.out or ROOT / "docs" / "data" / f"closed_form_drift_{args.variant}{'_quick' if args.quick else ''}.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print("step  epoch  acc    | per layer: latent mean, connections, alpha, beta, shared share")
    for row in tracker.rows[:: max(1, len(tracker.rows) // 25)]:
        parts = [f"{v['latent_mean']:+.3f} {v['connections']:.3f} {v['alpha']:+.3f} {v['beta']:+.3f} "
                 f"{v['shared_share'] if v['shared_share'] is None else round(v['shared_share'], 2)}"
                 for v in row["layers"].values()]
        print(f"{row['step']:5d} {row['epoch']:3d} {row['train_accuracy_running']:.3f} | " + " | ".join(parts))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
