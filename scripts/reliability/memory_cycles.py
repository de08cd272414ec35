"""Memory per create / invoke / destroy cycle: ours, or the stock runtime's?

Runs N cycles in a fresh process per configuration and samples the resident set
size (``/proc/self/statm`` after ``gc.collect()``) and glibc's bytes in use every
``--every`` cycles after a warm-up; the growth per cycle is the median over the
intervals (robust to a one-off step):

- ``stock``: ``tf.lite.Interpreter`` on a float-only model (no delegate at all)
- ``stock_inproc``: the same, with the float model built and converted by Keras in
  the measuring process itself (what ``stock`` did before: the Python heap that the
  build frees hides TF's per-interpreter leak, see docs/reliability.md)
- ``stock+delegate``: the same float model with ``load_delegate()`` (the delegate
  is created and destroyed every cycle but claims no node)
- ``delegate``: ``tf.lite.Interpreter`` + ``load_delegate()`` on the converted
  VGG-like model (LCE ops run by the delegate)
- ``sbnn``: ``sbnn_keras.Interpreter`` on the same file (check_model + predict)
- ``delegate_only``: ``load_delegate()`` and its release, no interpreter

    python scripts/reliability/memory_cycles.py --cycles 1000 --json out.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.append(str(ROOT))  # the checkout, after any installed copy
MODES = ("stock", "stock_inproc", "stock+delegate", "delegate", "sbnn", "delegate_only")
THREADS = int(os.environ.get("SBNN_MEMORY_THREADS", "2"))


def rss_kb() -> int:
    gc.collect()
    if os.environ.get("SBNN_MEMORY_TRIM") == "1":  # give free heap pages back first
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def malloc_in_use_kb() -> int:
    """Bytes the C heap has handed out and not taken back (glibc mallinfo2: arena
    blocks in use + mmapped blocks): a leak shows here, fragmentation does not."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                   "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    gc.collect()
    m = libc.mallinfo2()
    return (m.uordblks + m.hblkhd) // 1024


def float_model() -> bytes:
    import tensorflow as tf

    inp = tf.keras.Input((16, 16, 3))
    x = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = tf.keras.layers.Conv2D(32, 3, padding="same")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(10)(x)
    return tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out)).convert()


def child(mode: str, cycles: int, warmup: int, every: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np

    import sbnn_keras  # noqa: F401
    import tensorflow as tf
    from sbnn_keras import runtime

    # SBNN_MEMORY_MODEL: another converted file for the delegate modes (e.g. one with
    # LCE ops only, to separate the delegate's kernels from TFLite's float ops)
    model = os.environ.get("SBNN_MEMORY_MODEL")
    if model:
        vgg = Path(model)
    else:
        (vgg,) = sorted((ROOT / "tests" / "golden" / "e2e").glob("vgg-lce-*.tflite"))
    if mode in ("delegate", "sbnn"):
        data = vgg.read_bytes()
    elif mode == "stock_inproc":
        data = float_model()
    else:  # built by another process: every mode starts from the same heap
        data = Path(os.environ["SBNN_MEMORY_FLOAT"]).read_bytes()

    def cycle():
        if mode == "delegate_only":
            d = runtime.load_delegate(num_threads=THREADS)
            del d
            return
        if mode == "sbnn":
            it = runtime.Interpreter(data, num_threads=THREADS)
            it.predict(np.zeros([1] + [int(s) for s in it.input_details[0]["shape"][1:]], np.float32))
            del it
            return
        delegates = [runtime.load_delegate(num_threads=THREADS)] if mode != "stock" else []
        it = tf.lite.Interpreter(model_content=data, experimental_delegates=delegates, num_threads=THREADS)
        it.allocate_tensors()
        d = it.get_input_details()[0]
        it.set_tensor(d["index"], np.zeros(d["shape"], np.float32))
        it.invoke()
        del it, delegates

    for _ in range(warmup):
        cycle()
    samples, heap = [], []
    for n in range(cycles + 1):
        if n % every == 0:
            samples.append((n, rss_kb()))
            heap.append(malloc_in_use_kb())
        if n < cycles:
            cycle()
    xs = np.array([s[0] for s in samples], float)
    ys = np.array([s[1] for s in samples], float)
    # The median growth per interval, not a least-squares line: a one-off step (a
    # runtime allocating ~1.9 MB once, some hundred cycles in) is no per-cycle growth,
    # and a fitted line turns it into one.
    slope = float(np.median(np.diff(ys) / np.diff(xs))) if len(xs) > 1 else 0.0
    heap_slope = float(np.median(np.diff(np.array(heap, float)) / np.diff(xs))) if len(xs) > 1 else 0.0
    return {"mode": mode, "heap_growth_kb": heap[-1] - heap[0], "heap_slope_kb_per_1000": 1000 * heap_slope, "cycles": cycles, "warmup": warmup, "rss_start_kb": samples[0][1],
            "rss_end_kb": samples[-1][1], "growth_kb": samples[-1][1] - samples[0][1],
            "slope_kb_per_1000": 1000 * slope, "samples": samples}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--cycles", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "build_float":
        import sbnn_keras  # noqa: F401  (legacy Keras first)

        Path(os.environ["SBNN_MEMORY_FLOAT"]).write_bytes(float_model())
        return 0
    if args.child:
        print("@@" + json.dumps(child(args.child, args.cycles, args.warmup, args.every)))
        return 0
    import tempfile

    float_path = Path(tempfile.mkdtemp()) / "float.tflite"
    os.environ["SBNN_MEMORY_FLOAT"] = str(float_path)
    subprocess.run([sys.executable, __file__, "--child", "build_float"], check=True,
                   capture_output=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    rows = []
    for mode in args.modes.split(","):
        p = subprocess.run([sys.executable, __file__, "--child", mode, "--cycles", str(args.cycles),
                            "--warmup", str(args.warmup), "--every", str(args.every)],
                           capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        line = [l for l in p.stdout.splitlines() if l.startswith("@@")]
        if p.returncode or not line:
            print(f"{mode}: failed ({p.returncode}): {p.stderr[-800:]}")
            continue
        r = json.loads(line[0][2:])
        rows.append(r)
        print(f"{mode:<16} {r['cycles']:>6} cycles  RSS {r['rss_start_kb'] / 1024:8.1f} -> "
              f"{r['rss_end_kb'] / 1024:8.1f} MB  growth {r['growth_kb']:+6d} KB  "
              f"slope {r['slope_kb_per_1000']:+8.1f} KB / 1000 cycles; malloc in use "
              f"{r['heap_growth_kb']:+6d} KB (slope {r['heap_slope_kb_per_1000']:+8.1f} KB / 1000)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
