#!/usr/bin/env python3
"""Model latency: our delegate vs LCE's kernels vs float TFLite + XNNPACK.

    . .venv/bin/activate
    python benchmarks/latency.py                       # everything (~30-40 min on 2 busy cores)
    python benchmarks/latency.py --quick               # a smoke run (few repetitions)
    python benchmarks/latency.py --models cifar --threads 1

Models (``benchmarks/models.py``, batch 1): the binary ResNet-18 for 32x32 inputs
(``cifar``) and for 224x224 inputs (``imagenet``), and a QuickNet-like 224x224 layout
(``quicknet``: larq-zoo's QuickNet, whose cheap strided stem suits binary bodies), converted with
``sbnn_keras.convert`` (flavor ``"lce"``; the same bytes run in every binary
runtime), the same layout in float (``tf.lite.TFLiteConverter``) and the float
"skeleton" (the layout with the binary branches removed). Configurations:

=====================  ==============================================================
``ours``               ``sbnn_keras.Interpreter`` (stock ``tf.lite.Interpreter`` + our
                       delegate, kernel ``"auto"``; float ops in XNNPACK)
``lce_bgemm``          LCE 0.16's interpreter, default options (bgemm kernel, TFLite's
                       builtin float kernels)
``lce_indirect``       ``use_indirect_bgemm=True``
``lce_indirect_xnn``   ``use_indirect_bgemm=True, use_xnnpack=True`` (float ops in XNNPACK)
``lce_reference``      ``use_reference_bconv=True``
``float_xnnpack``      the float model in ``tf.lite.Interpreter`` (XNNPACK applied by
                       default)
``skeleton``           the float skeleton in ``tf.lite.Interpreter``
=====================  ==============================================================

Method: all configurations of one model and thread count are created first and
kept alive; each gets a warm-up; then rounds run every configuration once, in a
new random order each round (interleaved, so that load changes on this shared
machine hit all alike); slow ones (LCE reference) take part in fewer rounds.
Each sample is one invoke (set input, invoke, read output) timed by wall clock
and by the process's CPU time (all threads). Reported: median wall, median CPU.
With 2 threads a short pause follows each sample, so that thread pools that
spin after their work (XNNPACK's) do not steal the next configuration's core.

Per-layer profile (``--layers``): every distinct binary 3x3 conv shape as its own
one-layer model (LceQuantize + LceBconv2d with float output) for ours and LCE,
and the float conv for XNNPACK, timed the same way; with the layer counts of the
model this shows where the time goes, and the achieved binary ops per second
(BOPS = 2 * MACs / s) against the popcount peak measured by
``benchmarks/popcount_peak.c`` (compiled with ``cc`` on the fly).

Sparse (``--sparse``): the ResNet-18 layout with SBNN layers (learned {alpha, beta},
phi != 0) and synthetic 5% connections (95% sparsity), converted with flavors
``"lce"`` and ``"sparse"``: file sizes, SBF1 bits/weight, latency with our delegate,
and what ``describe()`` says about the kernels.

Writes ``docs/data/latency.json`` (``--json``) and prints Markdown tables.
Converted models are cached in ``build/latency/``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import sbnn_keras  # noqa: E402  (before tensorflow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter  # noqa: E402

import models  # noqa: E402  (benchmarks/models.py)
import sbnn_runtime as runtime
from sbnn_runtime.tflite_model import read_tflite  # noqa: E402

CACHE = ROOT / "build" / "latency"
#: the dense kernel forced in the "..._dense" configurations (None: not on this CPU)
DENSE_KERNEL = "bconv2d_dot_6x32__avx512vpopcnt"
STEMS = tuple(models.LAYOUTS)  # cifar, imagenet (ResNet-18 layouts), quicknet
LCE_CONFIGS = {
    "lce_bgemm": {},
    "lce_indirect": {"use_indirect_bgemm": True},
    "lce_indirect_xnn": {"use_indirect_bgemm": True, "use_xnnpack": True},
    "lce_reference": {"use_reference_bconv": True},
}


# ---- environment ---------------------------------------------------------------------


def sh(*cmd) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine() -> dict:
    lscpu = sh("lscpu")
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = fields.get("Flags", "")
    commit = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = sh(
        "git", "-C", str(ROOT), "status", "--porcelain", "--", "tflite", "sbnn_keras", "sbnn_runtime",
        "benchmarks"
    )
    lib = runtime.library_path()
    return {
        "cpu": fields.get("Model name", platform.processor()).strip(),
        "cpu_family": fields.get("CPU family", "").strip(),
        "cores": os.cpu_count(),
        "hypervisor": fields.get("Hypervisor vendor", "").strip(),
        "avx512_vpopcntdq": "avx512_vpopcntdq" in flags,
        "commit": commit + ("+dirty" if dirty else ""),
        "delegate_library": lib,
        "delegate_sha256": hashlib.sha256(Path(lib).read_bytes()).hexdigest()[:16],
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("tensorflow", "larq", "larq-compute-engine", "ai-edge-litert", "numpy")
        },
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def build_delegate_at_head() -> Path:
    """libsbnn_delegate.so built from the committed tflite/ of HEAD (Release, as
    setup.py builds it), independent of uncommitted edits in the work tree."""
    commit = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    out = CACHE / f"delegate-{commit}"
    lib = out / "build" / "libsbnn_delegate.so"
    if lib.is_file():
        return lib
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "HEAD", "tflite"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DSBNN_BUILD_TESTS=OFF", "-DSBNN_BUILD_BENCH=OFF"]
    print(f"building the delegate of {commit} in {out}", flush=True)
    subprocess.run(
        ["cmake", "-S", str(src / "tflite"), "-B", str(out / "build"), *flags],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        ["cmake", "--build", str(out / "build"), "--target", "sbnn_delegate", "-j2"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return lib


# ---- conversion (cached) -------------------------------------------------------------------


def _key(*parts) -> str:
    pkg = ROOT / "sbnn_keras" / "export"
    text = repr(parts) + (ROOT / "benchmarks" / "models.py").read_text()
    text += "".join((pkg / f).read_text() for f in ("convert.py", "lowering.py", "compress.py"))
    text += tf.__version__ + importlib.metadata.version("larq-compute-engine")
    return hashlib.sha256(text.encode()).hexdigest()[:10]


PATHS: dict = {}  # name -> cached file


def cached(name, make, *key_parts) -> bytes:
    path = CACHE / f"{name}-{_key(name, *key_parts)}.tflite"
    PATHS[name] = path
    if path.is_file():
        return path.read_bytes()
    t0 = time.perf_counter()
    data = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(
        f"  converted {name} in {time.perf_counter() - t0:.0f} s ({len(data) / 1e6:.2f} MB)",
        flush=True,
    )
    return data


def input_shape(stem):
    return models.LAYOUTS[stem][0]


def float_tflite(model) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def build(kind, stem, connections=0.5):
    tf.keras.backend.clear_session()
    return models.randomize(models.build(kind, stem), seed=1, connections=connections)


def model_files(stem) -> dict:
    return {
        "binary": cached(f"{stem}-binary", lambda: sbnn_keras.convert(build("binary", stem)), stem),
        "float": cached(f"{stem}-float", lambda: float_tflite(build("float", stem)), stem),
        "skeleton": cached(f"{stem}-skeleton", lambda: float_tflite(build("skeleton", stem)), stem),
    }


# ---- runners ---------------------------------------------------------------------------------


class Runner:
    """One configuration: `call()` runs one batch-1 inference (input in, output out)."""

    def __init__(self, name, make, x):
        self.name = name
        self.x = x
        self.interp = make()
        if isinstance(self.interp, LceInterpreter):
            lite = self.interp.interpreter
            self.call = lambda: lite.predict([self.x])
        else:
            interp = (
                self.interp.interpreter
                if isinstance(self.interp, runtime.Interpreter)
                else self.interp
            )
            if not isinstance(self.interp, runtime.Interpreter):
                interp.allocate_tensors()
            inp = interp.get_input_details()[0]["index"]
            out = interp.get_output_details()[0]["index"]

            def call():
                interp.set_tensor(inp, self.x)
                interp.invoke()
                return interp.get_tensor(out)

            self.call = call
        self.wall, self.cpu = [], []

    def timed_call(self) -> tuple:
        """(wall seconds, process CPU seconds) of one call."""
        c0, w0 = time.process_time(), time.perf_counter()
        self.call()
        w1, c1 = time.perf_counter(), time.process_time()
        return w1 - w0, c1 - c0

    def sample(self):
        wall, cpu = self.timed_call()
        self.wall.append(wall)
        self.cpu.append(cpu)

    def summary(self) -> dict:
        wall, cpu = np.array(self.wall) * 1e3, np.array(self.cpu) * 1e3
        return {
            "median_ms": float(np.median(wall)),
            "min_ms": float(wall.min()),
            "p90_ms": float(np.percentile(wall, 90)),
            "cpu_median_ms": float(np.median(cpu)),
            "samples": len(wall),
        }


BASELINE = None  # private copy of the --baseline library (None: no "_prev" runners)
BASELINE_FILES: dict = {}  # --baseline-file: cache name -> .tflite bytes the baseline runs


def _with_library(path, make):
    """make() with SBNN_DELEGATE_LIB pointing at `path` (the delegate is loaded while the
    interpreter is created; the library stays loaded after)."""
    old = os.environ.get("SBNN_DELEGATE_LIB")
    os.environ["SBNN_DELEGATE_LIB"] = str(path)
    try:
        return make()
    finally:
        if old is None:
            del os.environ["SBNN_DELEGATE_LIB"]
        else:
            os.environ["SBNN_DELEGATE_LIB"] = old


def make_runners(files, threads, x, lce=True, which=None, prev_files=None):
    """Runner factories by configuration name for one model (``prev_files``: the file the
    baseline library runs instead, by file name, e.g. one converted before a format
    change the baseline cannot read)."""
    prev_files = prev_files or {}
    out = {}
    if "binary" in files:
        out["ours"] = lambda: runtime.Interpreter(files["binary"], num_threads=threads)
        if BASELINE:  # the same model with the --baseline library, side by side
            out["ours_prev"] = lambda: _with_library(
                BASELINE, lambda: runtime.Interpreter(files["binary"], num_threads=threads)
            )
        if DENSE_KERNEL:  # the dense kernel forced (no per-layer sparse choice)
            out["ours_dense"] = lambda: runtime.Interpreter(
                files["binary"], num_threads=threads, kernel=DENSE_KERNEL
            )
        if threads > 1:  # threads in our ops only; XNNPACK (float ops) single-threaded
            out["ours_delegate_mt"] = lambda: tf.lite.Interpreter(
                model_content=files["binary"],
                num_threads=1,
                experimental_delegates=[runtime.load_delegate(num_threads=threads)],
            )
        if lce:
            for name, kwargs in LCE_CONFIGS.items():
                out[name] = lambda kw=kwargs: LceInterpreter(
                    files["binary"], num_threads=threads, **kw
                )
    for name in ("float", "skeleton"):
        if name in files:
            key = "float_xnnpack" if name == "float" else name
            out[key] = lambda data=files[name]: tf.lite.Interpreter(
                model_content=data, num_threads=threads
            )
    for name, data in files.items():
        if name.startswith("ours_"):
            out[name] = lambda data=data: runtime.Interpreter(data, num_threads=threads)
            if BASELINE:
                out[name + "_prev"] = lambda data=prev_files.get(name, data): _with_library(
                    BASELINE, lambda: runtime.Interpreter(data, num_threads=threads)
                )
            if DENSE_KERNEL:
                out[name + "_dense"] = lambda data=data: runtime.Interpreter(
                    data, num_threads=threads, kernel=DENSE_KERNEL
                )
    if which:
        out = {k: v for k, v in out.items() if k in which}
    return {name: Runner(name, make, x) for name, make in out.items()}


def measure(runners, rounds, threads, budget_s=20.0, warmup_s=0.3, seed=0):
    """Interleaved rounds (module docstring); returns {name: summary}."""
    for r in runners.values():  # warm-up: at least 3 calls and warmup_s
        t0 = time.perf_counter()
        n = 0
        while n < 3 or (time.perf_counter() - t0 < warmup_s and n < 200):
            r.call()
            n += 1
        r.estimate = (time.perf_counter() - t0) / n
    reps = {
        name: int(min(rounds, max(5, budget_s / max(r.estimate, 1e-6))))
        for name, r in runners.items()
    }
    rng = random.Random(seed)
    pause = 0.03 if threads > 1 else 0.0
    for i in range(rounds):
        order = [
            name for name in runners if i * reps[name] // rounds != (i + 1) * reps[name] // rounds
        ]
        rng.shuffle(order)
        for name in order:
            runners[name].sample()
            if pause:
                time.sleep(pause)
    return {name: r.summary() for name, r in runners.items()}


# ---- per-layer profile --------------------------------------------------------------------


def layer_shapes(stem):
    """Distinct binary 3x3 convs of the model: (in_size, cin, cout, stride) -> count."""
    counts = {}
    for _, h, _, cin, _, _, cout, _, stride, _ in models.binary_convs(models.build("float", stem)):
        counts[(h, cin, cout, stride)] = counts.get((h, cin, cout, stride), 0) + 1
    return counts


def layer_files(shape) -> dict:
    size, cin, cout, stride = shape
    tag = f"conv{size}x{cin}-{cout}s{stride}"

    def make(kind):
        tf.keras.backend.clear_session()
        return models.randomize(models.single_conv(kind, size, cin, cout, stride), seed=2)

    return {
        "binary": cached(f"{tag}-binary", lambda: sbnn_keras.convert(make("binary")), shape),
        "float": cached(f"{tag}-float", lambda: float_tflite(make("float")), shape),
    }


def popcount_peak() -> dict:
    exe = CACHE / "popcount_peak"
    src = ROOT / "benchmarks" / "popcount_peak.c"
    CACHE.mkdir(parents=True, exist_ok=True)
    if not exe.is_file() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(
            ["cc", "-O2", "-mavx512f", "-mavx512vpopcntdq", str(src), "-o", str(exe)], check=True
        )
    return json.loads(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)


# ---- report -------------------------------------------------------------------------------------

NAMES = {
    "ours": "ours (delegate, auto)",
    "ours_dense": "ours, dense kernel forced (6x32 avx512vpopcnt)",
    "ours_delegate_mt": "ours, threads in the delegate only (XNNPACK 1 thread)",
    "ours_prev": "ours, --baseline delegate (previous commit)",
    "lce_bgemm": "LCE default (bgemm)",
    "lce_indirect": "LCE indirect bgemm",
    "lce_indirect_xnn": "LCE indirect bgemm + XNNPACK",
    "lce_reference": "LCE reference",
    "float_xnnpack": "float TFLite + XNNPACK",
    "skeleton": "float skeleton (no binary branches)",
}


def model_table(res) -> str:
    ours = res["ours"]
    lines = [
        "| configuration | median ms | CPU ms | p90 ms | samples | ours faster by (wall / CPU) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in res.items():
        ratio = f"{s['median_ms'] / ours['median_ms']:.1f}x / {s['cpu_median_ms'] / ours['cpu_median_ms']:.1f}x"
        lines.append(
            f"| {NAMES.get(name, name)} | {s['median_ms']:.3f} | {s['cpu_median_ms']:.3f} | "
            f"{s['p90_ms']:.3f} | {s['samples']} | {'' if name == 'ours' else ratio} |"
        )
    return "\n".join(lines)


def goals(res) -> dict:
    ours = res["ours"]
    lce = {k: v for k, v in res.items() if k.startswith("lce_") and k != "lce_reference"}
    best_lce = min(lce, key=lambda k: lce[k]["median_ms"]) if lce else None
    out = {}
    if best_lce:
        out["lce_fastest"] = best_lce
        out["vs_lce_fastest_wall"] = lce[best_lce]["median_ms"] / ours["median_ms"]
        best_lce_cpu = min(lce, key=lambda k: lce[k]["cpu_median_ms"])
        out["vs_lce_fastest_cpu"] = lce[best_lce_cpu]["cpu_median_ms"] / ours["cpu_median_ms"]
    if "float_xnnpack" in res:
        out["vs_float_xnnpack_wall"] = res["float_xnnpack"]["median_ms"] / ours["median_ms"]
        out["vs_float_xnnpack_cpu"] = res["float_xnnpack"]["cpu_median_ms"] / ours["cpu_median_ms"]
    if "skeleton" in res:
        out["binary_branches_ms"] = ours["median_ms"] - res["skeleton"]["median_ms"]
        out["binary_branches_cpu_ms"] = ours["cpu_median_ms"] - res["skeleton"]["cpu_median_ms"]
        out["skeleton_share_of_ours"] = res["skeleton"]["cpu_median_ms"] / ours["cpu_median_ms"]
    out["goal_3x_lce_met"] = (
        bool(best_lce) and out["vs_lce_fastest_wall"] >= 3 and out["vs_lce_fastest_cpu"] >= 3
    )
    out["goal_8x_float_met"] = (
        out.get("vs_float_xnnpack_wall", 0) >= 8 and out.get("vs_float_xnnpack_cpu", 0) >= 8
    )
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["cifar", "imagenet", "quicknet"], choices=STEMS)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument(
        "--rounds", type=int, default=60, help="interleaved rounds per model and thread count"
    )
    p.add_argument("--budget", type=float, default=30.0, help="seconds per slow configuration")
    p.add_argument(
        "--no-layers", dest="layers", action="store_false", help="skip the per-layer profile"
    )
    p.add_argument(
        "--no-sparse", dest="sparse", action="store_false", help="skip the sparse SBNN run"
    )
    p.add_argument(
        "--no-perf", dest="perf", action="store_false", help="skip the perf profile of ours"
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 5 rounds, small budgets")
    p.add_argument(
        "--delegate",
        default="installed",
        help="'installed' (sbnn_runtime.library_path()), 'head' (build tflite/ of the "
        "git HEAD commit into build/latency/delegate-<commit>/), or a path",
    )
    p.add_argument(
        "--baseline",
        metavar="PATH",
        help="a second libsbnn_delegate.so (e.g. a build of the previous commit), run side by "
        "side as 'ours_prev' (and '<sparse file>_prev') in the same interleaved rounds",
    )
    p.add_argument(
        "--baseline-file",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="the .tflite the --baseline library runs for a sparse-run file instead of the "
        "current conversion, by cache name (e.g. cifar-sbnn05-sparse=build/latency/"
        "cifar-sbnn05-sparse-<old key>.tflite: a file of the previous converter)",
    )
    p.add_argument("--json", default=str(ROOT / "docs" / "data" / "latency.json"))
    p.add_argument("--markdown", metavar="JSON", help="only print the tables of a result JSON")
    p.add_argument(
        "--perf-only",
        action="store_true",
        help="only redo the perf profiles (and binary ops/s) of the models in --json",
    )
    a = p.parse_args()
    if a.markdown:
        print(markdown(json.loads(Path(a.markdown).read_text())))
        return
    if a.quick:
        a.rounds, a.budget = 5, 1.0

    # a private copy of the delegate: a rebuild in place (setup.py copies over the
    # file) must not change or crash the library under test mid-run
    CACHE.mkdir(parents=True, exist_ok=True)
    if a.delegate == "head":
        source = build_delegate_at_head()
        stale = []
    else:
        source = Path(runtime.library_path() if a.delegate == "installed" else a.delegate)
        stale = [
            str(f.relative_to(ROOT))
            for f in (ROOT / "tflite").rglob("*")
            if f.is_file() and f.stat().st_mtime > source.stat().st_mtime
        ]
    private = CACHE / "libsbnn_delegate.so"
    private.write_bytes(source.read_bytes())
    os.environ["SBNN_DELEGATE_LIB"] = str(private)
    global BASELINE
    for spec in a.baseline_file:
        name, _, path = spec.partition("=")
        BASELINE_FILES[name] = Path(path).read_bytes()
    if a.baseline:
        BASELINE = CACHE / "libsbnn_delegate_baseline.so"
        BASELINE.write_bytes(Path(a.baseline).read_bytes())
    result = {
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/latency.py"] + sys.argv[1:]),
    }
    global DENSE_KERNEL
    if not result["machine"]["avx512_vpopcntdq"]:
        DENSE_KERNEL = None
    if a.perf_only:
        return redo_perf(a, source)
    result["machine"]["delegate_copied_from"] = str(source)
    result["machine"]["delegate_option"] = a.delegate
    if a.baseline:
        result["machine"]["baseline_delegate"] = a.baseline
        result["machine"]["baseline_sha256"] = hashlib.sha256(
            Path(a.baseline).read_bytes()
        ).hexdigest()[:16]
    result["machine"]["tflite_sources_newer_than_library"] = stale[:20]
    result["settings"] = {
        "rounds": a.rounds,
        "budget_s": a.budget,
        "threads": a.threads,
        "batch": 1,
    }
    print(
        f"machine: {result['machine']['cpu']} ({result['machine']['cores']} cores), "
        f"commit {result['machine']['commit']}, load {result['machine']['loadavg_start']}",
        flush=True,
    )
    result["popcount_peak"] = popcount_peak()
    print("popcount peak:", json.dumps(result["popcount_peak"]), flush=True)

    rng = np.random.default_rng(0)
    result["models"] = {}
    for stem in a.models:
        files = model_files(stem)
        x = rng.normal(size=(1, *input_shape(stem))).astype(np.float32)
        convs = models.binary_convs(models.build("float", stem))
        entry = {
            "binary_convs": len(convs),
            "binary_macs": int(sum(c[-1] for c in convs)),
            "file_bytes": {k: len(v) for k, v in files.items()},
            "threads": {},
        }
        for threads in a.threads:
            print(f"\n== {stem}, {threads} thread(s) ==", flush=True)
            runners = make_runners(files, threads, x)
            load0 = os.getloadavg()
            res = measure(runners, a.rounds, threads, budget_s=a.budget)
            # after the invokes: "auto" chooses per layer at the first invoke
            describe = runners["ours"].interp.describe()
            g = goals(res)
            if "binary_branches_cpu_ms" in g:
                g["binary_branches_gbops_cpu"] = (
                    2 * entry["binary_macs"] / (g["binary_branches_cpu_ms"] * 1e-3) / 1e9
                )
            entry["threads"][threads] = {
                "results": res,
                "goals": g,
                "ours_kernels": kernel_counts(describe),
                "ours_describe": describe,
                "loadavg": [load0, os.getloadavg()],
            }
            print(model_table(res))
            print("goals:", json.dumps(g), flush=True)
            del runners
        if a.perf:
            prof = entry["perf_profile"] = perf_profile(PATHS[f"{stem}-binary"], a)
            if prof:
                entry["binary_ops_per_second"] = binary_ops(entry, prof, result["popcount_peak"])
                print("binary ops/s:", json.dumps(entry["binary_ops_per_second"]), flush=True)
        if a.layers:
            entry["layers"] = profile_layers(stem, a)
        result["models"][stem] = entry
        write(result, a.json)

    if a.sparse:
        result["sparse"] = sparse_run(a)
        write(result, a.json)
    result["machine"]["loadavg_end"] = os.getloadavg()
    write(result, a.json)
    print("\n" + markdown(json.loads(Path(a.json).read_text())))


def binary_ops(entry, prof, peak) -> dict:
    """Achieved binary ops per second (2 * binary MACs / s) at 1 thread, three ways:
    the dot kernel's share of the perf profile (tiles only, and tiles + patch
    gather), and the whole binary branches (ours - skeleton, CPU time), each also
    as a share of the measured XOR + POPCNT + ADD peak."""
    cats = prof["categories"]
    cpu_ms = prof["cpu_ms_per_invoke"]
    ops = 2 * entry["binary_macs"]
    out = {"peak_bops": peak["xor_popcnt_add"]["bops"]}
    tiles = cats.get("bconv dot: popcount tiles", 0) / 100 * cpu_ms
    gather = cats.get("bconv patch gather / driver", 0) / 100 * cpu_ms
    sparse = cats.get("sparse bit-plane kernel", 0) / 100 * cpu_ms
    one = entry["threads"].get(1) or entry["threads"].get("1") or {}  # "1" once read from JSON
    branches = one.get("goals", {}).get("binary_branches_cpu_ms")
    # dense layers only when no layer chose a sparse kernel
    rows = [("dot_tiles", tiles), ("dot_tiles_and_gather", tiles + gather)] if not sparse else []
    rows += [("all_conv_kernels", tiles + gather + sparse), ("binary_branches", branches)]
    for name, ms in rows:
        if ms:
            out[name] = {
                "ms": ms,
                "bops": ops / (ms * 1e-3),
                "share_of_peak": ops / (ms * 1e-3) / out["peak_bops"],
            }
    return out


def redo_perf(a, source):
    """--perf-only: new perf profiles for the models of an existing result JSON."""
    result = json.loads(Path(a.json).read_text())
    for stem, entry in result["models"].items():
        files = model_files(stem)  # cached: the same bytes
        assert len(files["binary"]) == entry["file_bytes"]["binary"]
        entry["perf_profile"] = prof = perf_profile(PATHS[f"{stem}-binary"], a)
        entry["perf_profile"]["note"] = (
            f"redone with --perf-only (delegate {source}, load {os.getloadavg()[0]:.1f})"
        )
        entry["binary_ops_per_second"] = binary_ops(entry, prof, result["popcount_peak"])
    write(result, a.json)
    print(markdown(result))


def perf_profile(path, a) -> dict:
    """benchmarks/perf_profile.py on ours at 1 thread (None if perf is unavailable)."""
    out = CACHE / "perf_profile.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "perf_profile.py"),
        str(path),
        "--json",
        str(out),
    ]
    cmd += ["--seconds", "3" if a.quick else "10"]
    print(f"\n== perf profile of ours, 1 thread: {path.name} ==", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print("perf profile failed:", proc.stderr.strip()[-500:])
        return None
    print(proc.stdout, flush=True)
    return json.loads(out.read_text())


def profile_layers(stem, a) -> list:
    """Per-layer timings at 1 thread (module docstring)."""
    print(f"\n== {stem}: per-layer binary convs, 1 thread ==", flush=True)
    rows = []
    peak = None
    for shape, count in layer_shapes(stem).items():
        size, cin, cout, stride = shape
        files = layer_files(shape)
        x = np.random.default_rng(1).normal(size=(1, size, size, cin)).astype(np.float32)
        runners = make_runners(
            files, 1, x, which=("ours", "ours_dense", "lce_bgemm", "lce_indirect", "float_xnnpack")
        )
        res = measure(runners, max(10, a.rounds // 2), 1, budget_s=a.budget / 3)
        describe = runners["ours"].interp.describe()
        out = (size + stride - 1) // stride
        macs = out * out * cout * 9 * cin
        row = {
            "layer": f"{size}x{size}x{cin}->{cout}" + ("/2" if stride == 2 else ""),
            "count": count,
            "macs": macs,
            "kernel": list(kernel_counts(describe)),
            "results": res,
            "ours_gbops": 2 * macs / (res["ours"]["median_ms"] * 1e-3) / 1e9,
            "ours_gbops_cpu": 2 * macs / (res["ours"]["cpu_median_ms"] * 1e-3) / 1e9,
        }
        rows.append(row)
        del runners
    lines = [
        "| layer | count | MMACs | ours ms | ours GBOPS | LCE bgemm ms | LCE indirect ms | float XNNPACK ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        res = r["results"]
        lines.append(
            f"| {r['layer']} | {r['count']} | {r['macs'] / 1e6:.0f} | {res['ours']['median_ms']:.3f} | "
            f"{r['ours_gbops']:.0f} | {res['lce_bgemm']['median_ms']:.3f} | {res['lce_indirect']['median_ms']:.3f} | "
            f"{res['float_xnnpack']['median_ms']:.3f} |"
        )
    total = {
        k: sum(r["count"] * r["results"][k]["median_ms"] for r in rows) for k in rows[0]["results"]
    }
    total_cpu = {
        k: sum(r["count"] * r["results"][k]["cpu_median_ms"] for r in rows)
        for k in rows[0]["results"]
    }
    lines.append(
        f"| sum x count | {sum(r['count'] for r in rows)} | {sum(r['count'] * r['macs'] for r in rows) / 1e6:.0f} | "
        f"{total['ours']:.3f} | | {total['lce_bgemm']:.3f} | {total['lce_indirect']:.3f} | {total['float_xnnpack']:.3f} |"
    )
    print("\n".join(lines))
    print("sums (CPU ms):", json.dumps({k: round(v, 3) for k, v in total_cpu.items()}), flush=True)
    del peak
    return {"rows": rows, "sum_ms": total, "sum_cpu_ms": total_cpu}


def sparse_run(a) -> dict:
    """SBNN ResNet-18 at 95% sparsity: sizes, SBF1 bits/weight, latency, kernels."""
    out = {}
    for stem in a.models:
        print(f"\n== {stem}: SBNN layers, 5% connections, flavors lce and sparse ==", flush=True)
        reports = {}

        def conv(flavor):
            data, report = sbnn_keras.convert_with_report(
                build("sbnn", stem, connections=0.05), flavor=flavor
            )
            reports[flavor] = report
            return data

        files = {
            "ours_sbnn_lce": cached(f"{stem}-sbnn05-lce", lambda: conv("lce"), stem, 0.05),
            "ours_sbnn_sparse": cached(f"{stem}-sbnn05-sparse", lambda: conv("sparse"), stem, 0.05),
        }
        graph_ops = {k: read_tflite(v).op_counts() for k, v in files.items()}
        storage = filter_storage(files, stem)
        x = np.random.default_rng(0).normal(size=(1, *input_shape(stem))).astype(np.float32)
        entry = {
            "file_bytes": {k: len(v) for k, v in files.items()},
            "ops": graph_ops,
            "storage": storage,
        }
        entry["threads"] = {}
        cache_names = {"ours_sbnn_lce": f"{stem}-sbnn05-lce", "ours_sbnn_sparse": f"{stem}-sbnn05-sparse"}
        prev_files = {k: BASELINE_FILES[n] for k, n in cache_names.items() if n in BASELINE_FILES}
        if prev_files:
            entry["baseline_files"] = {
                k: len(v) for k, v in prev_files.items()
            }
        for threads in a.threads:
            runners = make_runners(files, threads, x, prev_files=prev_files)
            res = measure(runners, max(10, a.rounds // 2), threads, budget_s=a.budget / 2)
            # (describe() goes through the current library: not for the baseline's delegates)
            describe = {
                k: r.interp.describe() for k, r in runners.items() if not k.endswith("_prev")
            }
            entry["threads"][threads] = {"results": res, "describe": describe}
            print(
                f"{threads} thread(s):",
                json.dumps({k: round(v["median_ms"], 3) for k, v in res.items()}),
            )
            del runners
        print("sizes:", entry["file_bytes"], "storage:", json.dumps(storage))
        print(entry["threads"][a.threads[0]]["describe"]["ours_sbnn_sparse"])
        out[stem] = entry
    return out


def filter_storage(files, stem) -> dict:
    """Binary filter bytes of each file (input 1 of LceBconv2d / SbnnBconv2d: int32
    words or SBF1 uint8) and bits per weight of the layers' weights."""
    weights = sum(9 * c[3] * c[6] for c in models.binary_convs(models.build("float", stem)))
    out = {"binary_weights": weights}
    for name, data in files.items():
        g = read_tflite(data)
        size = {"LceBconv2d": 4, "SbnnBconv2d": 1}
        n = sum(
            int(np.prod(g.tensor_shapes[op.inputs[1]])) * size[op.name]
            for op in g.ops
            if op.name in size
        )
        out[name] = {"filter_bytes": n, "bits_per_weight": 8 * n / weights}
    return out


def short_kernel(names) -> str:
    """'sparse' / 'dense' for a list of kernel names of one layer."""
    return "/".join(sorted({"sparse" if "sparse" in n else "dense" for n in names})) or "?"


def kernel_counts(describe) -> dict:
    """{kernel name: number of nodes} from a describe() text."""
    counts = {}
    for line in describe.splitlines():
        if "kernel=" in line and not line.startswith("runtime="):
            name = line.split("kernel=")[1].split()[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def markdown(result) -> str:
    """The Markdown tables of docs/benchmarks.md from a result JSON."""
    out = []
    for stem, entry in result.get("models", {}).items():
        for threads, t in entry["threads"].items():
            out.append(
                f"\n**{stem}, {threads} thread(s)** (batch 1; load average {t['loadavg'][0][0]:.1f})\n"
            )
            out.append(model_table(t["results"]))
            g = t["goals"]
            out.append(
                f"\nours vs fastest LCE ({g.get('lce_fastest')}): {g.get('vs_lce_fastest_cpu', 0):.2f}x CPU, "
                f"{g.get('vs_lce_fastest_wall', 0):.2f}x wall; vs float XNNPACK: "
                f"{g.get('vs_float_xnnpack_cpu', 0):.2f}x CPU, {g.get('vs_float_xnnpack_wall', 0):.2f}x wall; "
                "kernels: " + ", ".join(f"{k} x{n}" for k, n in t["ours_kernels"].items())
            )
        prof = entry.get("perf_profile")
        if prof:
            out.append(
                f"\n**{stem}: perf profile of ours, 1 thread** ({prof['cpu_ms_per_invoke']:.3f} CPU ms per invoke)\n"
            )
            out.append("| category | share | CPU ms |\n|---|---:|---:|")
            for name, pct in sorted(prof["categories"].items(), key=lambda kv: -kv[1]):
                out.append(f"| {name} | {pct:.1f}% | {pct / 100 * prof['cpu_ms_per_invoke']:.3f} |")
        bops = entry.get("binary_ops_per_second")
        if bops:
            out.append(
                f"\n**{stem}: binary ops per second** ({entry['binary_macs'] / 1e6:.0f} M binary MACs per image)\n"
            )
            out.append("| measured over | ms | TBOPS | share of peak |\n|---|---:|---:|---:|")
            for name in (
                "dot_tiles",
                "dot_tiles_and_gather",
                "all_conv_kernels",
                "binary_branches",
            ):
                if name in bops:
                    b = bops[name]
                    out.append(
                        f"| {name} | {b['ms']:.3f} | {b['bops'] / 1e12:.2f} | {100 * b['share_of_peak']:.0f}% |"
                    )
        layers = entry.get("layers")
        if layers:
            out.append(
                f"\n**{stem}: one-layer models, 1 thread** (median wall ms; GBOPS = 2 MACs / wall)\n"
            )
            out.append(
                "| layer | count | MMACs | ours (kernel) | ours GBOPS | ours dense | LCE bgemm | "
                "LCE indirect | float XNNPACK |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            )
            for r in layers["rows"]:
                res = r["results"]
                out.append(
                    f"| {r['layer']} | {r['count']} | {r['macs'] / 1e6:.0f} | {res['ours']['median_ms']:.3f} "
                    f"({short_kernel(r['kernel'])}) | {r['ours_gbops']:.0f} | "
                    f"{res.get('ours_dense', {}).get('median_ms', float('nan')):.3f} | "
                    f"{res['lce_bgemm']['median_ms']:.3f} | "
                    f"{res['lce_indirect']['median_ms']:.3f} | {res['float_xnnpack']['median_ms']:.3f} |"
                )
            tot, cpu = layers["sum_ms"], layers["sum_cpu_ms"]
            out.append(
                f"| sum x count (CPU) | 16 | | {tot['ours']:.2f} ({cpu['ours']:.2f}) | | "
                f"{tot.get('ours_dense', float('nan')):.2f} ({cpu.get('ours_dense', float('nan')):.2f}) | "
                f"{tot['lce_bgemm']:.2f} "
                f"({cpu['lce_bgemm']:.2f}) | {tot['lce_indirect']:.2f} ({cpu['lce_indirect']:.2f}) | "
                f"{tot['float_xnnpack']:.2f} ({cpu['float_xnnpack']:.2f}) |"
            )
    for stem, entry in result.get("sparse", {}).items():
        st = entry["storage"]
        out.append(
            f"\n**{stem}: SBNN layers at 95% sparsity (synthetic), flavors lce and sparse**\n"
        )
        out.append(
            "| file | bytes | binary filter bytes | bits/weight | "
            + " | ".join(f"{t} thread(s) median ms (CPU)" for t in entry["threads"])
            + " |"
        )
        out.append("|---|---:|---:|---:|" + "---:|" * len(entry["threads"]))
        for name in next(iter(entry["threads"].values()))["results"]:
            file = name.replace("_dense", "").replace("_prev", "")
            cells = [
                f"{entry['threads'][t]['results'][name]['median_ms']:.3f} "
                f"({entry['threads'][t]['results'][name]['cpu_median_ms']:.3f})"
                for t in entry["threads"]
            ]
            out.append(
                f"| {name} | {entry['file_bytes'][file]} | {st[file]['filter_bytes']} | "
                f"{st[file]['bits_per_weight']:.3f} | " + " | ".join(cells) + " |"
            )
        first = next(iter(entry["threads"].values()))["describe"]["ours_sbnn_sparse"].splitlines()
        kernels = kernel_counts("\n".join(first))
        out.append(
            f"\n`describe()` of the sparse flavor: {sum('SbnnBconv2d' in line for line in first)} "
            f"SbnnBconv2d nodes, kernels {kernels}"
        )
    return "\n".join(out)


def write(result, path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
