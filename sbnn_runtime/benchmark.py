"""Latency of a converted model with the sbnn runtime (what ``sbnn-keras bench`` runs)."""

from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

import numpy as np

from sbnn_runtime.interpreter import _MAX_THREADS, Interpreter, ModelSource

__all__ = ["bench", "time_predict", "random_input"]


def random_input(input_shape, seed: int = 0) -> np.ndarray:
    """A float32 batch for a model input (unknown dimensions become 1)."""
    shape = [1 if d in (None, -1) else int(d) for d in input_shape]
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def time_predict(predict: Callable, x, runs: int, warmup: int,
                 progress: Optional[Callable[[Iterable], Iterable]] = None) -> dict:
    """Median and minimum wall time of ``predict(x)`` over ``runs`` calls after ``warmup``.

    Args:
        progress: wraps the timed range (e.g. a progress bar); identity by default.

    Returns:
        ``{"median_ms": ..., "min_ms": ...}``.
    """
    for _ in range(warmup):
        predict(x)
    times = []
    for _ in (progress or iter)(range(runs)):
        t = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - t)
    return {"median_ms": 1e3 * float(np.median(times)), "min_ms": 1e3 * float(np.min(times))}


def _check_counts(threads, runs, warmup) -> list:
    threads = [threads] if isinstance(threads, (int, np.integer)) else list(threads)
    if not threads or any(isinstance(t, bool) or not isinstance(t, (int, np.integer))
                          or not 1 <= t <= _MAX_THREADS for t in threads):
        raise ValueError(f"bench: argument `threads`: each must be an integer in 1..{_MAX_THREADS}, got {threads!r}")
    for name, value, low in (("runs", runs, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"bench: argument `{name}` must be an integer >= {low}, got {value!r}")
    return [int(t) for t in threads]


def bench(model: ModelSource, threads=(1,), runs: int = 50, warmup: int = 5, kernel: str = "auto",
          *, runtime: str = "auto", progress=None) -> list:
    """Times single-batch invokes of a model in the sbnn runtime.

    Args:
        model: the ``.tflite`` bytes or a path.
        threads: thread counts to time (each 1..64).
        runs: timed invokes per thread count (>= 1); warmup: untimed ones before (>= 0).
        kernel, runtime: as for ``Interpreter``.
        progress: optional wrapper of each timed range, called with
            ``(iterable, description)`` (e.g. a tqdm bar).

    Returns:
        One dict per thread count: ``runtime`` ("sbnn"), ``threads``, ``median_ms``,
        ``min_ms``.

    Raises:
        ValueError: bad arguments or an unreadable model (see ``Interpreter``).
    """
    threads = _check_counts(threads, runs, warmup)
    rows = []
    for t in threads:
        interp = Interpreter(model, num_threads=t, kernel=kernel, runtime=runtime)
        x = random_input(interp.input_details[0]["shape"])
        wrap = None if progress is None else (lambda it, t=t: progress(it, f"sbnn x{t}"))
        rows.append({"runtime": "sbnn", "threads": t, **time_predict(interp.predict, x, runs, warmup, wrap)})
    return rows
