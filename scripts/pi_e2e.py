"""End to end on an emulated Raspberry Pi OS (64-bit): the aarch64 sbnn-runtime wheel,
pip-installed into Debian bookworm arm64's Python 3.11 under qemu-user, runs converted
models, and their outputs must match the x86-64 runtime's (docs/deployment.md).

    python scripts/pi_e2e.py [--work DIR] [--wheel-dir dist]

Steps:
1. (x86-64, TensorFlow) a Fashion-MNIST SBNN (the demo's CNN, trained briefly on real
   data) and an SBNN ResNet-18 (CIFAR layout, random weights, 5% connections) are
   converted to the lce, sparse and auto flavours; the x86-64 runtime (sbnn_runtime with
   ai-edge-litert, kernel "auto") computes their outputs on fixed inputs.
2. (emulated Pi, scripts/pi_userland.sh) a venv of the userland pip-installs the
   aarch64 wheel from --wheel-dir (`make wheels`), which brings numpy and ai-edge-litert
   from PyPI; this script's `device` step runs there: the same files on the same inputs
   (kernel "auto": the NEON kernels), plus the runtime's `inspect` and `bench`.
3. Outputs compared: |pi - x86| <= 1e-5 * max|x86| per output (float logits; the
   kernels' integer paths are exact, the float epilogues may round differently only
   through a different summation order).
Prints one row per model and flavour; exits 1 on any mismatch or failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FLAVORS = ("lce", "sparse", "auto")
MODELS = ("fmnist_sbnn", "resnet18_sbnn")
RTOL = 1e-5


# ---- step 1: x86-64, with the training stack ---------------------------------------
def _fmnist_model():
    import tensorflow as tf

    from sbnn_zoo import datasets, models

    (x, y), (x_test, _) = datasets.load_fashion_mnist()
    tf.keras.utils.set_random_seed(0)
    model = models.fashion_mnist_cnn()
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:6000], y[:6000], batch_size=128, epochs=1, verbose=0)
    return model, x_test[:8].astype(np.float32)


def _resnet_model():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import models as bench_models  # benchmarks/models.py

    model = bench_models.resnet18("sbnn", "cifar")
    bench_models.randomize(model, seed=0, connections=0.05)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    return model, x


def prepare(work: Path) -> None:
    import sbnn_keras
    from sbnn_runtime import Interpreter

    for name, build in (("fmnist_sbnn", _fmnist_model), ("resnet18_sbnn", _resnet_model)):
        model, x = build()
        np.save(work / f"{name}.inputs.npy", x)
        for flavor in FLAVORS:
            path = work / f"{name}.{flavor}.tflite"
            path.write_bytes(sbnn_keras.convert(model, flavor=flavor))
            interp = Interpreter(path, num_threads=1, kernel="auto", runtime="ai_edge_litert")
            np.save(work / f"{name}.{flavor}.x86.npy", interp.predict(x))
        print(f"prepared {name}: {', '.join(FLAVORS)}", flush=True)


# ---- step 2: on the device, with the runtime only -----------------------------------
def device(work: Path) -> int:
    """Runs in the emulated Pi: numpy, ai-edge-litert and sbnn_runtime only."""
    import platform

    import sbnn_runtime
    from sbnn_runtime import Interpreter

    info = {"machine": platform.machine(), "python": platform.python_version(),
            "libc": platform.libc_ver(), "library": sbnn_runtime.library_path(),
            "kernels": sbnn_runtime.available_kernels(), "runs": {}}
    for name in MODELS:
        x = np.load(work / f"{name}.inputs.npy")
        for flavor in FLAVORS:
            path = work / f"{name}.{flavor}.tflite"
            start = time.perf_counter()
            interp = Interpreter(path, num_threads=1, kernel="auto", runtime="ai_edge_litert")
            y = interp.predict(x)
            np.save(work / f"{name}.{flavor}.pi.npy", y)
            info["runs"][f"{name}.{flavor}"] = {
                "seconds": round(time.perf_counter() - start, 2),
                "delegate": interp.describe()}
    (work / "pi_info.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: v for k, v in info.items() if k != "runs"}))
    return 0


# ---- step 3 -------------------------------------------------------------------------
def compare(work: Path) -> int:
    bad = 0
    print(f"{'model':<16} {'flavor':<7} {'max |pi - x86|':>15} {'max |x86|':>10}  result")
    for name in MODELS:
        for flavor in FLAVORS:
            ref = np.load(work / f"{name}.{flavor}.x86.npy")
            pi_file = work / f"{name}.{flavor}.pi.npy"
            if not pi_file.exists():
                print(f"{name:<16} {flavor:<7} {'-':>15} {'-':>10}  MISSING")
                bad += 1
                continue
            got = np.load(pi_file)
            diff = float(np.max(np.abs(got.astype(np.float64) - ref)))
            scale = float(np.max(np.abs(ref)))
            ok = got.shape == ref.shape and diff <= RTOL * scale
            bad += not ok
            print(f"{name:<16} {flavor:<7} {diff:>15.3g} {scale:>10.3g}  {'ok' if ok else 'MISMATCH'}")
    return 1 if bad else 0


def _pi(*args, check=True, **kwargs):
    cmd = ["bash", str(ROOT / "scripts" / "pi_userland.sh"), *map(str, args)]
    return subprocess.run(cmd, check=check, **kwargs)


def run_all(work: Path, wheel_dir: Path, venv: Path) -> int:
    wheels = sorted(wheel_dir.glob("sbnn_runtime-*-py3-none-manylinux_*_aarch64.whl"))
    if not wheels:
        print(f"no aarch64 wheel in {wheel_dir}: run `make wheels` first", file=sys.stderr)
        return 1
    t0 = time.time()
    prepare(work)
    t1 = time.time()
    _pi("venv", venv)
    # As a user would: pip installs the wheel and what it requires (numpy and
    # ai-edge-litert are already in the cached venv, so nothing is downloaded again).
    # A wheel of the same version from an earlier run is removed first.
    _pi("run", venv / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", "sbnn-runtime")
    _pi("run", venv / "bin" / "python", "-m", "pip", "install", "-q", wheels[-1])
    _pi("run", venv / "bin" / "python", __file__, "device", "--work", work)
    for flavor in ("sparse",):
        model = work / f"fmnist_sbnn.{flavor}.tflite"
        _pi("run", venv / "bin" / "python", "-m", "sbnn_runtime", "inspect", model)
        _pi("run", venv / "bin" / "python", "-m", "sbnn_runtime", "bench", model,
            "--runs", "3", "--warmup", "1")
    t2 = time.time()
    rc = compare(work)
    print(f"time: x86 prepare {t1 - t0:.0f} s, emulated Pi {t2 - t1:.0f} s")
    return rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", nargs="?", default="all", choices=("all", "prepare", "device", "compare"))
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "pi-e2e")
    ap.add_argument("--wheel-dir", type=Path, default=ROOT / "dist")
    ap.add_argument("--venv", type=Path,
                    default=Path(os.environ.get("SBNN_PI_VENV", Path.home() / ".cache" / "sbnn" / "pi-venv")))
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "prepare":
        prepare(args.work)
        return 0
    if args.step == "device":
        return device(args.work)
    if args.step == "compare":
        return compare(args.work)
    return run_all(args.work, args.wheel_dir, args.venv)


if __name__ == "__main__":
    sys.exit(main())
