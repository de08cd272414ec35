"""Training-step time: the demo SBNN vs the same network as a plain larq BNN.

Measured side by side in one process, on the same fixed batch:

* ``bnn``      the demo CNN with larq ``ste_sign`` kernels and the plain loss;
* ``sbnn``     the same CNN with ``"sbnn_learned"`` kernels and the
               ``SparsityRegularizer`` (EC 0.05, gamma 0.07): the demo SBNN;
* extras (``--variants``): ``sbnn_noreg`` (learned kernels, plain loss) and
  ``sbnn_closed_form`` (eq. 15 kernels + regularizer), to split the overhead.

Each variant's compiled Keras train function (``model.make_train_function()``,
one optimizer step per call) is warmed up, then the variants run in interleaved
rounds (the order alternates every round) of ``--steps`` steps each; the per-step
time of a round is its wall time / steps, and the reported figure is the median
over rounds. The ratio is median(sbnn) / median(bnn); the goal is <= 1.2. The
median of the per-round ratios (``paired``) is printed too: on a shared CPU it is
steadier, since the two variants of a round run seconds apart.

    python benchmarks/train_step.py                      # writes docs/data/train_step.json
    python benchmarks/train_step.py --rounds 5 --steps 5 --out /tmp/ts.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import sbnn_keras  # noqa: F401  (legacy Keras before TensorFlow)
import numpy as np
import tensorflow as tf

from sbnn_zoo.demo import machine_info
from sbnn_zoo.models import fashion_mnist_cnn

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {
    "bnn": ("ste_sign", False),
    "sbnn": ("sbnn_learned", True),
    "sbnn_noreg": ("sbnn_learned", False),
    "sbnn_closed_form": ("sbnn", True),
}


def build(variant: str, ec: float, gamma: float):
    quantizer, regularized = VARIANTS[variant]
    tf.keras.utils.set_random_seed(0)
    model = fashion_mnist_cnn(kernel_quantizer=quantizer, name=f"bench_{variant}")
    if regularized:
        loss = sbnn_keras.SparsityRegularizer(
            "sparse_categorical_crossentropy", expected_connections=ec, gamma=gamma
        ).bind(model)
    else:
        loss = "sparse_categorical_crossentropy"
    model.compile(tf.keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="SBNN vs BNN training-step time (median of interleaved rounds).")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=10, help="warm-up steps per variant")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=10, help="steps per variant per round")
    p.add_argument("--variants", default="bnn,sbnn,sbnn_noreg",
                   help=f"comma-separated subset of {sorted(VARIANTS)} (bnn and sbnn always included)")
    p.add_argument("--ec", type=float, default=0.05)
    p.add_argument("--gamma", type=float, default=0.07)
    p.add_argument("--out", default=str(ROOT / "docs" / "data" / "train_step.json"))
    args = p.parse_args(argv)

    names = ["bnn", "sbnn"] + [v for v in args.variants.split(",") if v not in ("bnn", "sbnn")]
    for v in names:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(args.batch_size, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=(args.batch_size,), dtype=np.uint8)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()

    runners = {}
    for v in names:
        model = build(v, args.ec, args.gamma)
        fn = model.make_train_function()
        it = iter(data)
        runners[v] = (model, fn, it)

    def run(v, steps):
        _, fn, it = runners[v]
        t0 = time.perf_counter()
        for _ in range(steps):
            logs = fn(it)
        float(logs["loss"])  # make sure the work is done
        return (time.perf_counter() - t0) / steps

    for v in names:  # warm-up: tracing, first allocations
        run(v, args.warmup)
    per_step = {v: [] for v in names}
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for v in order:
            per_step[v].append(run(v, args.steps))

    med = {v: statistics.median(t) for v, t in per_step.items()}
    ratio = {v: med[v] / med["bnn"] for v in names}
    # per-round ratios (both measured seconds apart): robust when the CPU is shared
    paired = {
        v: statistics.median(a / b for a, b in zip(per_step[v], per_step["bnn"])) for v in names
    }
    print(f"batch {args.batch_size}, {args.rounds} interleaved rounds x {args.steps} steps, "
          f"warm-up {args.warmup}; median per step")
    print(f"{'variant':<18}{'ms/step':>10}{'min':>10}{'max':>10}{'vs bnn':>9}{'paired':>9}")
    for v in names:
        t = per_step[v]
        print(f"{v:<18}{1e3 * med[v]:>10.1f}{1e3 * min(t):>10.1f}{1e3 * max(t):>10.1f}"
              f"{ratio[v]:>8.2f}x{paired[v]:>8.2f}x")
    goal = ratio["sbnn"] <= 1.2
    print(f"SBNN / BNN = {ratio['sbnn']:.3f}x (ratio of medians; median of per-round ratios "
          f"{paired['sbnn']:.3f}x). Goal <= 1.2x: {'met' if goal else 'NOT met'}")

    result = {
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "ec": args.ec,
        "gamma": args.gamma,
        "median_s_per_step": med,
        "ratio_vs_bnn": ratio,
        "paired_ratio_vs_bnn": paired,
        "per_round_s_per_step": per_step,
        "goal_ratio": 1.2,
        "goal_met": goal,
        "params": {v: int(runners[v][0].count_params()) for v in names},
        "tf_threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "machine": machine_info(),
        "command": "python benchmarks/train_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
