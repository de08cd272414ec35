#!/usr/bin/env python3
"""Thread scaling of the delegate, one process per configuration.

    python benchmarks/threads.py [MODEL.tflite ...] [--runs 100] [--json PATH]

For each model (default: the ResNet-18 32x32 binary model and the 56x56x64 one-layer
model that ``benchmarks/latency.py`` caches in ``build/latency/``) and each
configuration — delegate 1 thread; delegate 2 threads with TFLite/XNNPACK at 1; both at
2 — a fresh Python process loads the model, warms up and times ``runs`` invokes
(median wall ms). Separate processes keep other interpreters' thread pools from
competing for the cores, which the interleaved latency benchmark cannot avoid.
Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"1 thread": (1, 1), "delegate 2, TFLite 1": (2, 1), "both 2": (2, 2)}

CHILD = r"""
import sys, time, json
import sbnn_keras, numpy as np, tensorflow as tf
path, dthreads, tthreads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
it = tf.lite.Interpreter(model_path=path, num_threads=tthreads,
                         experimental_delegates=[sbnn_keras.load_delegate(num_threads=dthreads)])
it.allocate_tensors()
d = it.get_input_details()[0]
x = np.random.default_rng(0).normal(size=d["shape"]).astype(np.float32)
for _ in range(5):
    it.set_tensor(d["index"], x); it.invoke()
ts = []
for _ in range(runs):
    t0 = time.perf_counter(); it.set_tensor(d["index"], x); it.invoke(); ts.append(time.perf_counter() - t0)
print(json.dumps(1e3 * float(np.median(ts))))
"""


def newest(pattern):
    files = glob.glob(str(ROOT / "build" / "latency" / pattern))
    return max(files, key=os.path.getmtime) if files else None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--json", default=str(ROOT / "docs" / "data" / "threads.json"))
    a = p.parse_args()
    models = a.models or [m for m in (newest("cifar-binary-*.tflite"),
                                      newest("conv56x64-64s1-binary-*.tflite")) if m]
    if not models:
        p.error("no models given and none cached: run benchmarks/latency.py first")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    result = {"runs": a.runs, "models": {}}
    print("| model | " + " | ".join(CONFIGS) + " |\n|---|" + "---:|" * len(CONFIGS))
    for m in models:
        row = {}
        for name, (dt, tt) in CONFIGS.items():
            out = subprocess.run([sys.executable, "-c", CHILD, m, str(dt), str(tt), str(a.runs)],
                                 capture_output=True, text=True, env=env, check=True)
            row[name] = json.loads(out.stdout.strip().splitlines()[-1])
        result["models"][Path(m).name] = row
        print(f"| {Path(m).name} | " + " | ".join(f"{v:.3f}" for v in row.values()) + " |")
    Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
