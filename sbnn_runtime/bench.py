"""Latency of a converted ``.tflite`` in each runtime that can run it.

Rows (``sbnn-keras bench``, ``python -m sbnn_runtime bench``):

- ``sbnn``: the model in a TFLite interpreter with the sbnn delegate (ai-edge-litert when
  installed, else TensorFlow's ``tf.lite``).
- ``lce``: Larq Compute Engine's own interpreter in its fastest configuration, XNNPACK
  for the float ops and the indirect BGEMM kernel for the binary convolutions
  (``use_xnnpack=True, use_indirect_bgemm=True``; its defaults are neither). It runs in
  a child process, so that a crash of LCE's interpreter is a row that says so. Files
  with ops LCE does not know (``SbnnBconv2d``) get the row "not supported by LCE".
- ``xnnpack float``: with ``float_model``, that float model in the stock interpreter,
  whose default delegate is XNNPACK.

Exit status of :func:`main`: 0 when every runtime that was asked for ran (rows "not
supported" or, for LCE chosen automatically, "not installed" are not failures), 1 when
one failed or crashed. Imports no TensorFlow unless the interpreter used is ``tf.lite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["LCE_FASTEST", "Row", "lce_support", "run", "main"]

#: Options of LCE's ``Interpreter`` for its fastest configuration.
LCE_FASTEST = {"use_xnnpack": True, "use_indirect_bgemm": True}
LCE_LABEL = "lce xnnpack+indirect-bgemm"
STATUS_OK, NOT_SUPPORTED, NOT_INSTALLED, FAILED, CRASHED = (
    "ok", "not supported", "not installed", "failed", "crashed")


@dataclasses.dataclass
class Row:
    runtime: str
    threads: int
    status: str = STATUS_OK
    median_ms: float | None = None
    min_ms: float | None = None
    detail: str = ""


def interpreter_backend() -> str:
    """"ai_edge_litert" when installed (no TensorFlow import), else "tensorflow"."""
    import importlib.util

    return "ai_edge_litert" if importlib.util.find_spec("ai_edge_litert") else "tensorflow"


def lce_support(content: bytes) -> tuple[bool, str]:
    """Whether LCE's interpreter knows every custom op of the model, and if not why."""
    from sbnn_runtime.tflite_model import read_tflite

    try:
        counts = read_tflite(content).op_counts()
    except (ValueError, ImportError) as err:
        return False, f"cannot read the model: {err}"
    # Builtin ops are named in upper case by read_tflite; custom ops keep their name.
    foreign = sorted(n for n in counts if not n.isupper() and not n.startswith("Lce"))
    if foreign:
        return False, f"not supported by LCE ({', '.join(foreign)})"
    return True, ""


def _input(details) -> np.ndarray:
    d = details[0]
    shape = [1 if int(s) <= 0 else int(s) for s in d["shape"]]
    x = np.random.default_rng(0).uniform(0, 1, shape)
    return x.astype(np.dtype(d["dtype"]))


def _time(call, runs: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def _bench_sbnn(content: bytes, threads: int, runs: int, warmup: int, kernel: str, backend: str) -> Row:
    from sbnn_runtime import Interpreter

    label = f"sbnn ({backend})"
    try:
        interp = Interpreter(content, num_threads=threads, kernel=kernel, runtime=backend)
        x = _input(interp.input_details)
        med, mn = _time(lambda: interp.predict(x), runs, warmup)
    except Exception as err:  # the row reports any failure of the runtime
        return Row(label, threads, FAILED, detail=str(err).splitlines()[0])
    return Row(label, threads, median_ms=med, min_ms=mn)


def _bench_float(path: Path, threads: int, runs: int, warmup: int, backend: str) -> Row:
    label = "xnnpack float"
    try:
        if backend == "ai_edge_litert":
            from ai_edge_litert.interpreter import Interpreter as Stock
        else:
            import tensorflow as tf

            Stock = tf.lite.Interpreter
        interp = Stock(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
        details = interp.get_input_details()
        x = _input(details)

        def call():
            interp.set_tensor(details[0]["index"], x)
            interp.invoke()

        med, mn = _time(call, runs, warmup)
    except Exception as err:
        return Row(label, threads, FAILED, detail=str(err).splitlines()[0])
    return Row(label, threads, median_ms=med, min_ms=mn)


def _lce_child(path: str, threads: int, runs: int, warmup: int) -> int:
    """Runs in the child process: times LCE's interpreter, prints one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        from larq_compute_engine.tflite.python.interpreter import Interpreter as Lce
    except ImportError:
        print(json.dumps({"status": NOT_INSTALLED}))
        return 0
    interp = Lce(Path(path).read_bytes(), num_threads=threads, **LCE_FASTEST)
    shape = [1 if d in (None, -1) else int(d) for d in interp.input_shapes[0]]
    x = np.random.default_rng(0).uniform(0, 1, shape).astype(interp.input_types[0])
    med, mn = _time(lambda: interp.predict(x), runs, warmup)
    print(json.dumps({"status": STATUS_OK, "median_ms": med, "min_ms": mn}))
    return 0


def _bench_lce(path: Path, threads: int, runs: int, warmup: int, timeout: float) -> Row:
    cmd = [sys.executable, "-m", "sbnn_runtime.bench", "--lce-child", str(path),
           str(threads), str(runs), str(warmup)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Row(LCE_LABEL, threads, FAILED, detail=f"no result within {timeout:.0f} s")
    if r.returncode < 0:
        name = signal.Signals(-r.returncode).name
        return Row(LCE_LABEL, threads, CRASHED, detail=f"LCE's interpreter died ({name})")
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        err = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        return Row(LCE_LABEL, threads, FAILED, detail=err[-1] if err else f"exit {r.returncode}")
    out = json.loads(lines[-1])
    if out["status"] != STATUS_OK:
        return Row(LCE_LABEL, threads, out["status"], detail="larq-compute-engine is not installed")
    return Row(LCE_LABEL, threads, median_ms=out["median_ms"], min_ms=out["min_ms"])


def run(path, threads=(1,), runs=50, warmup=5, lce="auto", float_model=None, kernel="auto",
        backend=None, lce_timeout=600.0):
    """Benchmarks ``path``; returns ``(rows, exit_status)``.

    Args:
        lce: "auto" (when the file is LCE-compatible), "yes" (always; an unsupported
            file is a failure) or "no".
    """
    msg = _check_run_arguments(path, threads, runs, warmup)
    if msg:
        raise ValueError(f"bench.run: {msg}")
    path = Path(path)
    content = path.read_bytes()
    backend = backend or interpreter_backend()
    supported, why = lce_support(content) if lce != "no" else (False, "")
    rows, failed = [], False
    for t in threads:
        row = _bench_sbnn(content, t, runs, warmup, kernel, backend)
        rows.append(row)
        failed |= row.status != STATUS_OK
        if lce != "no":
            if supported:
                row = _bench_lce(path, t, runs, warmup, lce_timeout)
                asked_lce = lce == "yes" or row.status != NOT_INSTALLED
                failed |= row.status != STATUS_OK and asked_lce
            else:
                row = Row(LCE_LABEL, t, NOT_SUPPORTED, detail=why)
                failed |= lce == "yes"
            rows.append(row)
        if float_model is not None:
            row = _bench_float(Path(float_model), t, runs, warmup, backend)
            rows.append(row)
            failed |= row.status != STATUS_OK
    return rows, int(failed)


def format_rows(rows) -> str:
    width = max(len(r.runtime) for r in rows)
    lines = [f"{'runtime':<{width}} {'threads':>7} {'median ms':>10} {'min ms':>8}"]
    for r in rows:
        if r.status == STATUS_OK:
            lines.append(f"{r.runtime:<{width}} {r.threads:>7} {r.median_ms:>10.3f} {r.min_ms:>8.3f}")
        else:
            what = r.detail if r.detail.startswith(r.status) else f"{r.status}: {r.detail}"
            lines.append(f"{r.runtime:<{width}} {r.threads:>7}  {what}")
    ok = [r for r in rows if r.status == STATUS_OK]
    sbnn = {r.threads: r.median_ms for r in ok if r.runtime.startswith("sbnn")}
    for r in ok:
        if not r.runtime.startswith("sbnn") and r.threads in sbnn:
            lines.append(f"sbnn vs {r.runtime} at {r.threads} thread(s): "
                         f"{r.median_ms / sbnn[r.threads]:.2f}x")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="converted .tflite")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--kernel", default="auto", help='sbnn kernel: "auto" or a kernel name')
    p.add_argument("--lce", choices=("auto", "yes", "no"), default="auto",
                   help="time LCE's interpreter (fastest configuration): auto = when the "
                        "file has only ops LCE knows")
    p.add_argument("--no-lce", dest="lce", action="store_const", const="no",
                   help="same as --lce no")
    p.add_argument("--float-model", help="a float .tflite of the same network, timed with XNNPACK")
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.add_argument("-q", "--quiet", action="store_true", help="print the table only (no ratios)")


def _check_run_arguments(path, threads, runs, warmup, dashes: str = "") -> str | None:
    """A message naming the bad argument (``dashes`` + its name) and value, or None."""
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        return f"model {str(path)!r} does not exist"
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        return f"model {str(path)!r} is not a .tflite file (no 'TFL3' identifier)"
    if not threads or any(isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= 64 for t in threads):
        return f"{dashes}threads must be 1..64 each, got {list(threads)}"
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        return f"{dashes}runs must be >= 1, got {runs!r}"
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        return f"{dashes}warmup must be >= 0, got {warmup!r}"
    return None


def validate(args) -> str | None:
    """A message naming the bad argument, or None."""
    if args.float_model is not None and not Path(args.float_model).is_file():
        return f"--float-model {args.float_model!r} does not exist"
    return _check_run_arguments(args.model, args.threads, args.runs, args.warmup, "--")


def execute(args) -> int:
    rows, status = run(args.model, args.threads, args.runs, args.warmup, args.lce,
                       args.float_model, args.kernel)
    text = format_rows(rows)
    if getattr(args, "quiet", False):
        text = "\n".join(line for line in text.splitlines() if not line.startswith("sbnn vs "))
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"model": str(args.model), "rows": [dataclasses.asdict(r) for r in rows]}, indent=2) + "\n")
    return status


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--lce-child"]:
        _, path, threads, runs, warmup = argv
        return _lce_child(path, int(threads), int(runs), int(warmup))
    p = argparse.ArgumentParser(prog="python -m sbnn_runtime.bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    args = p.parse_args(argv)
    msg = validate(args)
    if msg:
        print(f"{p.prog}: error: {msg}", file=sys.stderr)
        return 2
    return execute(args)


if __name__ == "__main__":
    sys.exit(main())
