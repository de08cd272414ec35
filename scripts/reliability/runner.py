"""Runs model files through every runtime path in worker subprocesses, survives their deaths.

A *job* is one model file on one *path*:

- ``sbnn``: ``sbnn_keras.Interpreter`` (check_model, the delegate, ``predict``)
- ``tf``: stock ``tf.lite.Interpreter`` + ``load_delegate()``, for files that pass
  ``check_model`` (a file it refuses is a clean error: the documented way to screen
  a file before a runtime reads it)
- ``litert``: ``ai_edge_litert``'s interpreter + ``load_delegate(runtime=...)``, the same
- ``tf_raw`` / ``litert_raw``: the same without ``check_model`` (a user who never screens
  the file: the delegate's own graph check must refuse what would crash the runtime)
- ``cli_inspect`` / ``cli_inspect_json`` / ``cli_bench`` / ``cli_convert``: the
  ``sbnn-keras`` subcommands, in-process through ``sbnn_keras.cli.main``

with an *action*: ``run`` (batch of the model's shape, zeros and then normal noise),
``construct`` (stock paths: only build the interpreter, which applies the delegate and
its graph check, and allocate its tensors; the whole message is kept), ``empty_batch`` (a batch of 0, then a batch of 1 on the same interpreter; for the
``sbnn`` path only: resizing a raw TF 2.16 interpreter to a batch of 0 crashes it
whatever the model, a bug of that runtime outside our API, which
``sbnn_keras.Interpreter.predict`` guards; the stock paths run such a case as ``run``).

Outcomes: ``ok``; ``error`` (a documented exception with a message, or the CLI's exit
code 1/2 with one ``error:`` line); ``unclean`` (any other exception type: a
traceback for a user); ``death`` (the process died: signal or abort); ``hang`` (no
answer within the timeout; the worker is killed). A death or hang is re-run in a
fresh worker to tell a case's own crash from one left behind by earlier cases.

The parent keeps one worker alive across jobs (TensorFlow's import costs seconds)
and restarts it after a death or a hang.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

# The checkout this script belongs to, after everything else on the path (an installed
# or PYTHONPATH copy of the packages wins; a checkout run from its own venv finds them).
sys.path.append(str(Path(__file__).resolve().parents[2]))

PATHS = ("sbnn", "tf", "litert", "tf_raw", "litert_raw", "cli_inspect", "cli_inspect_json", "cli_bench")
MARK = "@@R "
CLEAN_ERRORS = ("ValueError", "RuntimeError", "UnsupportedRuntimeError", "SparseFilterError",
                "ConversionError", "FileNotFoundError", "FileExistsError")


# ---- worker side ---------------------------------------------------------------------


def _inputs(details, batch, noise):
    import numpy as np

    rng = np.random.default_rng(0)
    xs = []
    for d in details:
        shape = [batch] + [int(s) for s in d["shape"][1:]]
        dtype = np.dtype(d["dtype"])
        if noise and dtype.kind == "f":
            xs.append(rng.normal(size=shape).astype(dtype))
        else:
            xs.append(np.zeros(shape, dtype))
    return xs


def _run_sbnn(path, action):
    from sbnn_keras.runtime import Interpreter

    interp = Interpreter(Path(path).read_bytes(), num_threads=2)
    details = interp.input_details
    if any(int(s) > 4096 for d in details for s in d["shape"][1:]) or any(
        int(s) <= 0 for d in details for s in d["shape"][1:]
    ):
        return "ok", "input too large/odd to feed; constructed"
    if action == "empty_batch":
        try:
            interp.predict([x for x in _inputs(details, 0, False)])
        except Exception as err:  # noqa: BLE001 - an error here is fine, the next call must work
            first = f"{type(err).__name__}: {err}"[:200]
        else:
            first = "accepted"
        interp.predict(_inputs(details, 1, True))
        return "ok", f"batch 0: {first}; batch 1 ran"
    interp.predict(_inputs(details, 1, False))
    interp.predict(_inputs(details, 1, True))
    return "ok", ""


def _run_stock(path, action, runtime, screen=True):
    from sbnn_keras import runtime as rt

    data = Path(path).read_bytes()
    if screen:
        try:
            rt.check_model(data, runtime)
        except ValueError as err:
            return "error", f"check_model refused: {err}"[:300]
    delegate = rt.load_delegate(num_threads=2, runtime=runtime)
    if runtime == "tensorflow":
        import tensorflow as tf

        cls = tf.lite.Interpreter
    else:
        from ai_edge_litert.interpreter import Interpreter as cls
    interp = cls(model_content=data, experimental_delegates=[delegate], num_threads=2)
    interp.allocate_tensors()
    if action == "construct":  # the delegate's graph check runs when it is applied
        return "ok", ""
    details = interp.get_input_details()
    if any(int(s) > 4096 or int(s) <= 0 for d in details for s in d["shape"][1:]):
        return "ok", "input too large/odd to feed; allocated"

    def invoke(batch, noise):
        for d, x in zip(details, _inputs(details, batch, noise)):
            if list(x.shape) != [int(s) for s in d["shape"]]:
                interp.resize_tensor_input(d["index"], list(x.shape))
        interp.allocate_tensors()
        for d, x in zip(interp.get_input_details(), _inputs(details, batch, noise)):
            interp.set_tensor(d["index"], x)
        interp.invoke()

    invoke(1, False)
    invoke(1, True)
    return "ok", ""


def _run_cli(path, which):
    from sbnn_keras import cli

    argv = {
        "cli_inspect": ["inspect", path],
        "cli_inspect_json": ["inspect", path, "--json"],
        "cli_bench": ["bench", path, "--no-lce", "--runs", "1", "--warmup", "0", "-q"],
        "cli_bench_lce": ["bench", path, "--runs", "1", "--warmup", "0", "-q"],
        "cli_convert": ["convert", path, "-o", path + ".out.tflite", "-q"],
    }[which]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    text = err.getvalue().strip().splitlines()
    if code == 0:
        return "ok", ""
    if code in (1, 2) and text and "error:" in text[-1]:
        return "error", text[-1][:300]
    return "unclean", f"exit {code}: {' | '.join(text[-3:])[:300]}"


def run_job(job: dict) -> dict:
    path, which, action = job["file"], job["path"], job.get("action", "run")
    try:
        if which == "sbnn":
            outcome, detail = _run_sbnn(path, action)
        elif which == "tf":
            outcome, detail = _run_stock(path, action, "tensorflow")
        elif which == "litert":
            outcome, detail = _run_stock(path, action, "ai_edge_litert")
        elif which == "tf_raw":
            outcome, detail = _run_stock(path, action, "tensorflow", screen=False)
        elif which == "litert_raw":
            outcome, detail = _run_stock(path, action, "ai_edge_litert", screen=False)
        else:
            outcome, detail = _run_cli(path, which)
    except Exception as err:  # noqa: BLE001 - classify every exception
        name = type(err).__name__
        outcome = "error" if name in CLEAN_ERRORS and str(err) else "unclean"
        detail = f"{name}: {err}"[:2000 if action == "construct" else 300]
    return {"id": job["id"], "outcome": outcome, "detail": detail}


def worker_main() -> None:
    """Reads one JSON job per stdin line, answers one MARK line per job."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import sbnn_keras  # noqa: F401  (before tensorflow)
    import tensorflow  # noqa: F401

    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        pass
    out = os.fdopen(os.dup(1), "w", buffering=1)
    print(MARK + json.dumps({"ready": True}), file=out, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        result = run_job(json.loads(line))
        print(MARK + json.dumps(result), file=out, flush=True)


# ---- parent side ---------------------------------------------------------------------


class Worker:
    """One worker subprocess; `run` returns a result dict, also for deaths and hangs."""

    def __init__(self, log_path: str, env: dict | None = None):
        self.log_path = log_path
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
        self.proc = None

    def _start(self, timeout: float = 300):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", __file__, "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self.env,
            start_new_session=True,
        )
        log.close()
        msg = self._read(timeout)
        if msg is None or not msg.get("ready"):
            raise RuntimeError(f"worker did not start (see {self.log_path})")

    def _read(self, timeout: float):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                line = self.proc.stdout.readline()
                if not line:
                    return {"eof": True}
                line = line.decode(errors="replace")
                if line.startswith(MARK):
                    return json.loads(line[len(MARK):])
        finally:
            sel.close()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def run(self, job: dict, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        t0 = time.monotonic()
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        msg = self._read(timeout)
        if msg is None:
            self.kill()
            return {"id": job["id"], "outcome": "hang", "detail": f"no answer in {timeout:.0f} s"}
        if msg.get("eof"):
            code = self.proc.wait()
            self.proc = None
            sig = -code if code < 0 else None
            name = signal.Signals(sig).name if sig else f"exit {code}"
            return {"id": job["id"], "outcome": "death", "detail": name,
                    "seconds": time.monotonic() - t0}
        msg["seconds"] = time.monotonic() - t0
        return msg


def run_jobs(jobs: list, log_path: str, timeout: float = 60.0, progress=None, confirm=True) -> list:
    """Runs every job; deaths/hangs are re-run alone in a fresh worker (`isolated`)."""
    worker = Worker(log_path)
    results = []
    try:
        for n, job in enumerate(jobs):
            r = worker.run(job, timeout)
            if confirm and r["outcome"] in ("death", "hang"):
                alone = Worker(log_path)
                try:
                    again = alone.run(job, timeout)
                finally:
                    alone.kill()
                r["isolated"] = again["outcome"]
                r["isolated_detail"] = again.get("detail", "")
            r.update({k: job[k] for k in job if k != "id"})
            results.append(r)
            if progress:
                progress(n, r)
    finally:
        worker.kill()
    return results


def backtrace(job: dict, timeout: float = 300) -> str:
    """The native backtrace of a job that kills its process (gdb), or '' if it did not."""
    cmd = ["gdb", "-q", "-batch", "-ex", "run", "-ex", "bt 25",
           "--args", sys.executable, __file__, "--one", json.dumps(job)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except (subprocess.TimeoutExpired, FileNotFoundError) as err:
        return f"(no backtrace: {err})"
    lines = p.stdout.splitlines()
    start = next((k for k, l in enumerate(lines) if "received signal" in l), None)
    return "" if start is None else "\n".join(lines[start:start + 30])


def top_frames(trace: str) -> list:
    """[(function, library)] of the '#N' lines of a gdb backtrace."""
    import re

    out = []
    for line in trace.splitlines():
        m = re.match(r"#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) .*?(?:from (\S+)|at (\S+))?$", line)
        if m:
            out.append((m.group(1), m.group(2) or m.group(3) or ""))
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker_main()
    elif len(sys.argv) == 3 and sys.argv[1] == "--one":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import sbnn_keras  # noqa: F401
        print(json.dumps(run_job(json.loads(sys.argv[2]))))
