"""Soak tests of the sbnn delegate: no memory growth, shared delegates across threads.

* Create / invoke / destroy cycles of ``sbnn_keras.Interpreter`` (delegate loaded,
  SBF1 filters decoded, kernels prepared, thread pool started and stopped each time).
* Many invokes of one interpreter, and invokes with a batch resize every few calls
  (TF 2.16 undoes the delegates on a resize and runs the delegate's Prepare again).
* Several interpreters sharing one delegate object (one thread pool), each driven
  by its own Python thread (TFLite releases the GIL in ``invoke``), must all give
  the single-threaded results.

Memory is the resident set size from ``/proc/self/statm``, read after a warm-up
(allocator pools, XNNPACK's weight cache, lazily loaded code are then in place)
and after ``gc.collect()``. The bound is a few MB for the whole run (RSS moves in
pages and the allocator keeps some slack), and the growth over the second half of
a run is also checked, which a steady leak cannot pass (the numbers are printed:
``pytest -s``). The full counts (1,000 cycles, 10,000 invokes, 2,000 invokes
with a resize every 5) are ``slow``; the default run does 40, 500 and 60.

The models come from ``tests/test_end_to_end.py`` (golden conversions in
``tests/golden/e2e/``): ``vgg`` (LceQuantize, LceBconv2d, LceBMaxPool2d, float and
bitpacked outputs) and ``sbnn`` in flavor ``"sparse"`` (SbnnBconv2d: SBF1 decoded
at prepare).
"""

from __future__ import annotations

import gc
import importlib.util
import os
import mmap
import threading
import time

import numpy as np
import pytest

import sbnn_keras
import sbnn_runtime as runtime
from test_end_to_end import converted, image_batch, keras_model

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
RUNTIMES = ["tensorflow"] + (["ai_edge_litert"] if HAS_LITERT else [])
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1 << 20
#: allowed RSS growth over a whole run after the warm-up, and over its second half
MAX_GROWTH = 4 * MB
MAX_GROWTH_SECOND_HALF = 2 * MB


def rss() -> int:
    """Resident set size in bytes (after a full garbage collection)."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def models(runtime_name):
    """(name, .tflite bytes, a batch-1 input, expected output) of the soak models.

    Expected: the same runtime with the reference kernel (the runtimes' float ops
    differ in the last bits, TF 2.16's XNNPACK vs LiteRT 2.3's)."""
    out = []
    for arch, path in (("vgg", "lce"), ("sbnn", "sparse")):
        data = converted(arch, path)
        x = image_batch(keras_model(arch).input_shape[1:], batch=1, seed=11)
        interp = runtime.Interpreter(data, kernel="reference", runtime=runtime_name)
        out.append((f"{arch}-{path}", data, x, interp.predict(x)))
    return out


_MODELS: dict = {}


@pytest.fixture(params=RUNTIMES)
def soak(request):
    """(runtime name, soak models) for each runtime."""
    if request.param not in _MODELS:
        _MODELS[request.param] = models(request.param)
    return request.param, _MODELS[request.param]


class Memory:
    """Samples RSS after a warm-up; `check` asserts bounded, non-steady growth."""

    def __init__(self, what):
        self.what = what
        self.samples = []  # (step, rss)

    def sample(self, step):
        self.samples.append((step, rss()))

    def check(self):
        steps, values = zip(*self.samples)
        base, mid, last = values[0], values[len(values) // 2], values[-1]
        growth, second_half = last - base, last - mid
        slope = np.polyfit(steps, values, 1)[0] if len(steps) > 2 else 0.0
        print(
            f"\n{self.what}: RSS {base / MB:.1f} MB after warm-up, {last / MB:.1f} MB after "
            f"{steps[-1]} steps: growth {growth / 1024:+.0f} KB (second half {second_half / 1024:+.0f} KB, "
            f"fit {slope:+.1f} bytes/step); samples (MB): "
            + " ".join(f"{v / MB:.1f}" for v in values)
        )
        assert growth < MAX_GROWTH, f"{self.what}: RSS grew {growth / MB:.2f} MB"
        assert second_half < MAX_GROWTH_SECOND_HALF, (
            f"{self.what}: RSS grew {second_half / MB:.2f} MB in the second half (a steady leak?)"
        )


def test_memory_probe_sees_a_leak():
    """The probe is not blind: 8 MB kept over 100 steps fails the checks."""
    kept = []
    mem = Memory("a deliberate 80 KB/step leak")
    for i in range(101):
        if i % 10 == 0:
            mem.sample(i)
        # a fresh anonymous mapping, fully written: new resident pages that no
        # allocator free list can hide (np.ones could reuse memory freed earlier)
        block = mmap.mmap(-1, 80 * 1024)
        block.write(b"\x01" * (80 * 1024))
        kept.append(block)
    with pytest.raises(AssertionError, match="RSS grew"):
        mem.check()


def _cycles(soak, n):
    """n create/invoke/destroy cycles, alternating models and 1/2 threads."""
    runtime_name, soak_models = soak
    mem = Memory(f"{n} create/invoke/destroy cycles ({runtime_name})")
    warmup = 20
    t0 = time.perf_counter()
    for i in range(warmup + n):
        if i >= warmup and (i - warmup) % max(1, n // 10) == 0:
            mem.sample(i - warmup)
        name, data, x, expected = soak_models[i % len(soak_models)]
        interp = sbnn_keras.Interpreter(data, num_threads=1 + i % 2, runtime=runtime_name)
        out = interp.predict(x)
        assert np.array_equal(out, expected), f"{name} cycle {i}"
        del interp
    mem.sample(n)
    print(f"{n} cycles in {time.perf_counter() - t0:.1f} s")  # with the warm-up
    mem.check()


def _invokes(soak, n, resize_every=0):
    """n invokes on one interpreter per model; with resize_every, the batch changes
    (1 <-> 2) every so many invokes (re-prepare).

    One thread: on this shared 2-core machine a 2-thread pool waits for a descheduled
    worker now and then (median invoke 0.1 ms alone, ~10 ms under load), and
    the thread pool itself is soaked by the cycles and the shared-delegate test."""
    runtime_name, soak_models = soak
    for name, data, x, expected in soak_models:
        interp = sbnn_keras.Interpreter(data, num_threads=1, runtime=runtime_name)
        x2 = np.concatenate([x, x])
        kind = f"resize every {resize_every}" if resize_every else "fixed batch"
        mem = Memory(f"{n} invokes of {name} ({runtime_name}, {kind})")
        t0 = time.perf_counter()
        warmup = 50
        batch2 = False
        for i in range(warmup + n):
            if i >= warmup and (i - warmup) % max(1, n // 10) == 0:
                mem.sample(i - warmup)
            if resize_every and i % resize_every == 0:
                batch2 = not batch2
            out = interp.predict(x2 if batch2 else x)
            if i % 97 == 0:  # checking costs more than invoking
                want = np.concatenate([expected, expected]) if batch2 else expected
                assert np.array_equal(out, want), f"{name} invoke {i}"
        mem.sample(n)
        print(f"{n} invokes in {time.perf_counter() - t0:.1f} s")
        mem.check()
        del interp


def test_create_destroy_cycles_short(soak):
    _cycles(soak, 30)


@pytest.mark.slow
def test_create_destroy_cycles(soak):
    _cycles(soak, 1000)


def test_invokes_short(soak):
    _invokes(soak, 300)
    _invokes(soak, 60, resize_every=5)


@pytest.mark.slow
def test_invokes(soak):
    _invokes(soak, 10000)
    _invokes(soak, 2000, resize_every=5)


def _interpreter_with(delegate, data, runtime_name, threads):
    if runtime_name == "tensorflow":
        import tensorflow as tf

        cls = tf.lite.Interpreter
    else:
        from ai_edge_litert.interpreter import Interpreter as cls
    interp = cls(model_content=data, num_threads=threads, experimental_delegates=[delegate])
    interp.allocate_tensors()
    return interp


@pytest.mark.parametrize("delegate_threads", [1, 2])
def test_shared_delegate_from_python_threads(soak, delegate_threads):
    """6 interpreters (3 per model) share one delegate; 6 Python threads invoke them
    concurrently with their own inputs; every result equals the single-threaded one."""
    runtime_name, soak_models = soak
    delegate = runtime.load_delegate(num_threads=delegate_threads, runtime=runtime_name)
    rng = np.random.default_rng(3)
    jobs = []
    for k in range(6):
        name, data, x, _ = soak_models[k % len(soak_models)]
        inputs = [rng.integers(-4, 5, x.shape).astype(np.float32) for _ in range(4)]
        solo = runtime.Interpreter(data, kernel="reference", runtime=runtime_name)
        expected = [solo.predict(v) for v in inputs]
        jobs.append((name, _interpreter_with(delegate, data, runtime_name, 1), inputs, expected))
    assert "kernel=" in runtime.describe(delegate)  # (the last prepared interpreter's nodes)

    errors, start = [], threading.Barrier(len(jobs))
    rounds = 300

    def work(job):
        name, interp, inputs, expected = job
        inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
        try:
            start.wait()
            for r in range(rounds):
                i = r % len(inputs)
                interp.set_tensor(inp, inputs[i])
                interp.invoke()
                if not np.array_equal(interp.get_tensor(out), expected[i]):
                    errors.append(f"{name}: round {r} differs")
                    return
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=work, args=(job,)) for job in jobs]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hangs (deadlock in the shared pool?)"
    print(f"\n{len(jobs)} threads x {rounds} invokes in {time.perf_counter() - t0:.2f} s")
    assert not errors, errors
    for _, interp, _, _ in jobs:
        del interp
