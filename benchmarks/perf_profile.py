#!/usr/bin/env python3
"""Where the time of a model goes inside the TFLite runtime: a sampled profile.

TFLite's Python interpreter cannot profile ops, so this runs the model's invoke
loop in a child process and attaches Linux ``perf record`` to it after the
warm-up (imports and model loading are not sampled), then groups the samples by
function into categories: the binary dot product (popcount tiles), the patch
gather of the gathered-bgemm driver, the sparse bit-plane kernels, the bconv2d
output transform, quantize (float -> bits), other delegate code, XNNPACK (float
ops), other TFLite code, Python, the kernel.

    python benchmarks/perf_profile.py build/latency/cifar-binary-*.tflite --seconds 10
    python benchmarks/perf_profile.py MODEL.tflite --threads 2 --json out.json
    python benchmarks/perf_profile.py MODEL.tflite --kernel bconv2d_dot_6x32__avx512vpopcnt

Needs ``perf`` (Debian: linux-perf) with permission to attach (root, or
kernel.perf_event_paranoid <= 1).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: (category, regular expression on "dso symbol"), first match wins
CATEGORIES = [
    ("XNNPACK (float ops)", r"\bxnn_|pthreadpool"),
    ("bconv dot: popcount tiles", r"::tile<|bconv2d_dot|reference_dot|Bconv2dReference"),
    ("bconv patch gather / driver", r"run_gemm|gather|make_gemm_kernel|pack_filter"),
    (
        "sparse bit-plane kernel",
        r"bitplane|Bitplane|count_(planes|permute|segments)|process_channels|emit_run|build_band|Avx512Impl|sparse",
    ),
    (
        "bconv output transform",
        r"Bconv2dOp|bconv2d.*transform|OutputTransform|\b(q_)?to_(float|int8|bits)\b|round_clamp|(q_)?affine\d",
    ),
    ("quantize (float -> bits)", r"QuantizeOp|bitpack|\bpack_(float|int8|bool)\b|pack_stream"),
    ("bmaxpool / dequantize", r"BMaxPool|DequantizeOp"),
    ("other delegate code", r"sbnn|libsbnn_delegate"),
    ("other TFLite runtime", r"tensorflow|tflite|_pywrap"),
    ("Python / NumPy", r"libpython|python3|numpy|_multiarray"),
    ("kernel", r"\[kernel"),
]


def child(args):
    import numpy as np

    sys.path.insert(0, str(ROOT))
    import sbnn_runtime as runtime

    data = Path(args.model).read_bytes()
    interp = runtime.Interpreter(data, num_threads=args.threads, kernel=args.kernel).interpreter
    d = interp.get_input_details()[0]
    interp.set_tensor(
        d["index"], np.random.default_rng(0).normal(size=d["shape"]).astype(np.float32)
    )
    for _ in range(20):
        interp.invoke()
    # TensorFlow's import leaves a large heap: a full collection costs ~0.1 s and
    # would show up as "Python" (gc_collect_main); keep it out of the profile
    gc.collect()
    gc.freeze()
    print("ready", flush=True)
    n, c0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        interp.invoke()
        n += 1
    print(
        json.dumps({"invokes": n, "cpu_ms_per_invoke": (time.process_time() - c0) / n * 1e3}),
        flush=True,
    )


def categorize(report: str) -> dict:
    shares = {name: 0.0 for name, _ in CATEGORIES}
    shares["other"] = 0.0
    top = []
    for line in report.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)", line) or re.match(
            r"\s*([\d.]+)%\s+(\S+)\s+(.*)", line
        )
        if not m or line.lstrip().startswith("#"):
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        text = f"{dso} {sym}"
        for name, pattern in CATEGORIES:
            if re.search(pattern, text):
                shares[name] += pct
                break
        else:
            shares["other"] += pct
        top.append((pct, dso, sym[:120]))
    return {
        "categories": {k: round(v, 2) for k, v in shares.items() if v > 0},
        "top": top[:15],
        "functions": [t for t in top if t[0] >= 0.05],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--kernel", default="auto", help="the delegate's kernel option (default auto)")
    p.add_argument("--frequency", type=int, default=4000)
    p.add_argument("--json")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        __file__,
        a.model,
        "--threads",
        str(a.threads),
        "--seconds",
        str(a.seconds),
        "--kernel",
        a.kernel,
        "--child",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if line.strip() == "ready":
            break
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        rec = subprocess.run(
            [
                "perf",
                "record",
                "-q",
                "-F",
                str(a.frequency),
                "-p",
                str(proc.pid),
                "-o",
                data,
                "--",
                "sleep",
                str(max(1.0, a.seconds - 1)),
            ],
            capture_output=True,
            text=True,
        )
        stats = json.loads(proc.stdout.readline())
        proc.wait()
        if rec.returncode != 0:
            sys.exit(f"perf record failed: {rec.stderr.strip()}")
        report = subprocess.run(
            ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result = {"model": a.model, "threads": a.threads, **stats, **categorize(report)}
    print(
        f"{Path(a.model).name}: {stats['cpu_ms_per_invoke']:.3f} CPU ms per invoke ({stats['invokes']} invokes)"
    )
    for name, pct in sorted(result["categories"].items(), key=lambda kv: -kv[1]):
        print(f"  {pct:6.2f}%  {name}")
    print("  top functions:")
    for pct, dso, sym in result["top"]:
        print(f"  {pct:6.2f}%  {Path(dso).name}  {sym}")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
