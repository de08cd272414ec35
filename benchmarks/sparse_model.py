#!/usr/bin/env python3
"""Sparse flavor at model level: binary ResNet-18 (32x32) with SBNN weights at
50/90/95/99% sparsity, trained and synthetic, sparse vs our dense vs LCE.

    . .venv/bin/activate; export PYTHONPATH=$PWD TF_CPP_MIN_LOG_LEVEL=3
    python benchmarks/train_sparse_models.py --out runs/models     # the trained weights (once)
    python benchmarks/sparse_model.py --trained runs/models         # ~10-15 min on 2 busy cores
    python benchmarks/sparse_model.py --quick                       # smoke run (synthetic 95% only)
    python benchmarks/sparse_model.py --markdown docs/data/sparse_model.json

Weights (the 16 binary 3x3 convs of ``benchmarks/models.py``'s ResNet-18, kind
``"sbnn"``: ``sbnn_keras.QuantConv2D`` with learned per-layer {alpha, beta} and
phi != 0; everything else random as ``models.randomize``):

* ``synthetic``: every (output, input) 3x3 kernel gets a Hamming weight drawn so
  that the layer has exactly the paper's Table 2 shares of K0 (no connection) and
  K1 (one connection) kernels -- 50%: 5.6/6.8%, 90%: 61.8/15.5%, 95%: 77.1/11.8%,
  99%: 94.6/3.3% -- and the other kernels 2 + Binomial(7, q) connections, q such
  that the expected density is 1 - sparsity; connections at random taps.
  (:func:`synthetic_mask`)
* ``trained``: filters resampled from the Fashion-MNIST models of
  ``benchmarks/train_sparse_models.py`` (``p50``: the plain larq BNN, ``p90``/
  ``p95``/``p99``: SBNN at EC 0.10/0.05/0.01). A *row* is one trained output
  channel: its ``cin_t`` 3x3 connection kernels. Every output channel of a ResNet
  layer copies a row drawn from the pool of all rows of the 4 trained binary
  layers (probability proportional to ``cin_t``, so the expected density is the
  trained network's global connection fraction); its ``cin`` kernels are the
  row's kernels in random order, repeated with a new order as often as needed
  (``cin >= cin_t`` here) or a random subset. This keeps what matters for the
  kernels: the trained kernels themselves (Hamming-weight mix, K0/K1, tap
  patterns), and how connections spread over output channels (some channels
  dense, many nearly empty), which decides the lane balance of the bit-plane
  kernel and the per-channel minority flip. What it cannot keep is a mapping of
  trained layers onto ResNet stages, since the demo network has 4 binary layers
  of 64-128 channels; the sparsity is the trained one, not exactly the target.
  (:func:`trained_mask`)

Conversions (cached in ``build/sparse_model/``): ``flavor="auto"`` (SBF1 where it is
smaller, i.e. every layer from 90% on) and ``flavor="lce"`` (LCE's bitpacked
filters). Configurations, all created first and timed interleaved in one run
(``latency.measure``: rounds in random order, 1 thread, batch 1, wall and process
CPU time per invoke):

=================  ===========================================================
``sparse``         our delegate, kernel ``"auto"`` (per layer: dense or sparse
                   bit-plane kernel, chosen by timing at the first invoke), on the
                   auto-flavor file
``dense``          our delegate forced to the dense kernel (``latency.DENSE_KERNEL``)
``sparse_all``     our delegate forced to the AVX-512 bit-plane kernel on every layer
                   (by name: the delegate then runs it in the dense kernel's row
                   chunks of a few rows, not in the larger chunks "auto" gives a
                   sparse kernel, so this is slower than the kernel allows)
``lce_bgemm``      LCE 0.16's interpreter, default (bgemm), on the lce-flavor file
``lce_indirect``   ``use_indirect_bgemm=True``
``lce_indirect_xnn``  ``use_indirect_bgemm=True, use_xnnpack=True``
``skeleton``       the float skeleton (stem, 1x1 shortcuts, pooling, classifier)
``bnn_dense``      reference: the plain larq BNN layout (``models.resnet18("binary")``,
                   phi = 0: no q channel, BatchNorm fused by the converter), dense
                   kernel; shows what the SBNN lowering's float ops cost
=================  ===========================================================

Each sample of a configuration times its first invoke after the other configurations
ran ("cold": the other 40-odd models have evicted its filters, execution formats and
scratch from the caches) and, after ``--warm - 1`` untimed invokes, one more ("warm": as
when one model runs back to back). The warm CPU medians are the headline (goals, conv
split), the cold ones are reported beside them.

"LCE fastest" = the smallest median of the three LCE configurations. "ideal" =
binary weights / connections that the kernels see (per output channel the
minority value, as the converter stores them): the operation-count reduction of
a kernel whose cost is proportional to connections. "of ideal" = achieved
speed-up / ideal.

Binary convs alone (``--perf``, default on): ``benchmarks/perf_profile.py`` samples
``sparse`` and ``dense`` of each weight set in a child process; the conv kernels'
share of the samples (functions of ``tflite/core``'s kernels: dense popcount tiles,
gemm driver and patch gather, the bit-plane stages; :data:`CONV_FUNCTIONS`), scaled
to the warm CPU medians (the child runs one model back to back), is the binary-conv time. The rest of the network (quantize, output
transform, float shortcuts, BN, the q-channel ops of the lowering) is the same
for all and bounds the model speed-up (Amdahl): ``dense total / dense rest``.

Writes ``docs/data/sparse_model.json`` (``--json``) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import latency  # noqa: E402  (benchmarks/latency.py: imports sbnn_keras before tensorflow)
import models  # noqa: E402  (benchmarks/models.py)
import numpy as np  # noqa: E402
import sbnn_keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter  # noqa: E402

from sbnn_runtime import interpreter as runtime  # _c_api too
from sbnn_keras.layers import latent_kernel  # noqa: E402
from sbnn_keras.math import binary_entropy  # noqa: E402

SPARSITIES = (0.50, 0.90, 0.95, 0.99)
#: paper Table 2 (binarized ResNet-18, CIFAR-10): sparsity -> (K0, K1)
PAPER_K0K1 = {
    0.50: (0.056, 0.068),
    0.75: (0.307, 0.159),
    0.90: (0.618, 0.155),
    0.95: (0.771, 0.118),
    0.96: (0.810, 0.101),
    0.97: (0.848, 0.087),
    0.98: (0.893, 0.065),
    0.99: (0.946, 0.033),
}
#: sparsity -> model name of benchmarks/train_sparse_models.py
TRAINED = {0.50: "p50", 0.90: "p90", 0.95: "p95", 0.99: "p99"}
SOURCES = ("trained", "synthetic")
GOALS = {0.95: {"vs_dense": 4.0, "vs_lce": 12.0}, 0.99: {"vs_dense": 10.0}}
STEM = "cifar"
#: binary conv kernel functions in a perf profile: the kernels of tflite/core live in
#: namespace sbnn::internal (dense tiles, gemm driver and patch gather, the bit-plane
#: stages); the delegate's ops, the output transform and quantize do not
CONV_FUNCTIONS = re.compile(
    r"^sbnn::internal::|::tile<|bconv2d_dot|run_gemm|bitplane|Bitplane|count_planes|"
    r"count_permute|process_channels|emit_run|build_band"
)


def is_conv_function(dso, sym) -> bool:
    return "libsbnn_delegate" in dso and bool(CONV_FUNCTIONS.search(sym))


GROUPS = (
    "binary conv kernels",
    "other delegate code (output transform, quantize, ops)",
    "XNNPACK (float ops)",
    "other (TFLite runtime, Python, libc, kernel)",
)


def group_of(dso, sym) -> str:
    if is_conv_function(dso, sym):
        return GROUPS[0]
    if "libsbnn_delegate" in dso:
        return GROUPS[1]
    if re.search(r"\bxnn_|pthreadpool", sym):
        return GROUPS[2]
    return GROUPS[3]


# ---- weight construction -----------------------------------------------------------------------


def synthetic_mask(shape, sparsity, k0, k1, rng) -> np.ndarray:
    """(kh, kw, cin, cout) uint8 connections: exactly round(k0 * n) kernels with no
    connection and round(k1 * n) with one (n = cin * cout kernels), the others
    2 + Binomial(kh*kw - 2, q) connections with q chosen for density 1 - sparsity;
    kernels in random order, connections at random taps."""
    kh, kw, cin, cout = shape
    taps, n = kh * kw, cin * cout
    n0, n1 = int(round(k0 * n)), int(round(k1 * n))
    rest = n - n0 - n1
    if rest < 0:
        raise ValueError(f"k0 + k1 = {k0 + k1} > 1")
    density = 1.0 - sparsity
    q = (density * taps - k1 - 2 * (1 - k0 - k1)) / ((taps - 2) * max(1 - k0 - k1, 1e-12))
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"K0 {k0}, K1 {k1} and sparsity {sparsity} are inconsistent (q = {q:.3f})")
    hw = np.concatenate(
        [np.zeros(n0, np.int64), np.ones(n1, np.int64), 2 + rng.binomial(taps - 2, q, rest)]
    )
    rng.shuffle(hw)
    # connections at random taps: rank random keys per kernel, keep the hw smallest
    keys = rng.random((n, taps))
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    mask = (ranks < hw[:, None]).astype(np.uint8)  # (n, taps), kernel index = i * cout + o
    return mask.reshape(cin, cout, kh, kw).transpose(2, 3, 0, 1).copy()


def trained_rows(npz_path) -> tuple:
    """Rows of a trained model (one per output channel of each binary 3x3 layer):
    a list of (kh, kw, cin_t) uint8 connection arrays and the layer names."""
    rows, names = [], []
    with np.load(npz_path) as z:
        for key in sorted(k for k in z.files if k.endswith("/kernel")):
            w = z[key]
            if w.ndim != 4 or w.shape[:2] != (3, 3):
                continue
            conn = (w >= 0).astype(np.uint8)
            for o in range(conn.shape[3]):
                rows.append(conn[:, :, :, o])
                names.append(key.split("/")[0])
    if not rows:
        raise ValueError(f"{npz_path}: no 3x3 binary kernels")
    return rows, names


def trained_mask(shape, rows, rng) -> np.ndarray:
    """(kh, kw, cin, cout) connections resampled from trained rows (module docstring)."""
    kh, kw, cin, cout = shape
    p = np.array([r.shape[2] for r in rows], np.float64)
    pick = rng.choice(len(rows), size=cout, p=p / p.sum())
    out = np.empty(shape, np.uint8)
    for o, r in enumerate(pick):
        row = rows[r]
        cin_t = row.shape[2]
        order = np.concatenate([rng.permutation(cin_t) for _ in range(-(-cin // cin_t))])[:cin]
        out[:, :, :, o] = row[:, :, order]
    return out


def mask_stats(masks) -> dict:
    """Connections, K0/K1 shares, minority connections per output channel and the
    entropy bounds of a {layer: (kh, kw, cin, cout) mask} set."""
    weights = conn = minority = k0 = k1 = kernels = 0
    bound_bits = 0.0
    for m in masks.values():
        kh, kw, cin, cout = m.shape
        per_o = m.reshape(-1, cout).sum(axis=0)
        n_o = kh * kw * cin
        weights += m.size
        conn += int(per_o.sum())
        minority += int(np.minimum(per_o, n_o - per_o).sum())
        bound_bits += float(n_o * binary_entropy(per_o / n_o).sum())
        hw = m.reshape(kh * kw, cin, cout).sum(axis=0)
        k0 += int((hw == 0).sum())
        k1 += int((hw == 1).sum())
        kernels += hw.size
    p = conn / weights
    return {
        "weights": weights,
        "connections": p,
        "sparsity": 1 - p,
        "k0": k0 / kernels,
        "k1": k1 / kernels,
        "minority_connections": minority / weights,
        "ideal": weights / max(minority, 1),
        "h_p": float(binary_entropy(p)),
        "h_per_channel": bound_bits / weights,
    }


def layer_shapes() -> dict:
    """{layer name: (3, 3, cin, cout)} of the 16 binary convs, in model order."""
    tf.keras.backend.clear_session()
    return {c[0]: (3, 3, c[3], c[6]) for c in models.binary_convs(models.resnet18("float", STEM))}


def make_masks(source, sparsity, trained_dir=None, seed=0) -> dict:
    """{layer name: mask} for one weight set."""
    rng = np.random.default_rng([seed, int(round(sparsity * 1000)), SOURCES.index(source)])
    shapes = layer_shapes()
    if source == "synthetic":
        k0, k1 = PAPER_K0K1[sparsity]
        return {n: synthetic_mask(s, sparsity, k0, k1, rng) for n, s in shapes.items()}
    rows, _ = trained_rows(Path(trained_dir) / f"{TRAINED[sparsity]}.npz")
    return {n: trained_mask(s, rows, rng) for n, s in shapes.items()}


def build_model(masks, seed=1):
    """The ResNet-18 "sbnn" model with the given connections (latent weights +-U(0.05, 1))."""
    tf.keras.backend.clear_session()
    model = models.randomize(models.resnet18("sbnn", STEM), seed=seed, connections=0.5)
    rng = np.random.default_rng(seed + 100)
    for name, mask in masks.items():
        latent = latent_kernel(model.get_layer(name))
        mag = rng.uniform(0.05, 1.0, mask.shape)
        latent.assign(np.where(mask == 1, mag, -mag).astype(np.float32))
    return model


def masks_key(masks) -> str:
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(np.packbits(masks[name]).tobytes())
    return h.hexdigest()[:12]


# ---- measurement ------------------------------------------------------------------------------


def convert_set(tag, masks) -> dict:
    key = masks_key(masks)
    return {
        "auto": latency.cached(
            f"{tag}-auto",
            lambda: sbnn_keras.convert(build_model(masks), flavor="auto"),
            key,
        ),
        "lce": latency.cached(
            f"{tag}-lce", lambda: sbnn_keras.convert(build_model(masks), flavor="lce"), key
        ),
    }


#: the bit-plane kernel forced on every layer (``sparse_all``), if compiled
SPARSE_KERNEL = "bconv2d_sparse_bitplane_512__avx512"


def runner_factories(files, dense_kernel) -> dict:
    out = {"sparse": lambda: runtime.Interpreter(files["auto"], num_threads=1, kernel="auto")}
    if dense_kernel:
        out["dense"] = lambda: runtime.Interpreter(
            files["auto"], num_threads=1, kernel=dense_kernel
        )
        if runtime._c_api().sbnn_delegate_kernel_known(SPARSE_KERNEL.encode()):
            out["sparse_all"] = lambda: runtime.Interpreter(
                files["auto"], num_threads=1, kernel=SPARSE_KERNEL
            )
    for name, kwargs in latency.LCE_CONFIGS.items():
        if name != "lce_reference":
            out[name] = lambda kw=kwargs: LceInterpreter(files["lce"], num_threads=1, **kw)
    return out


class WarmRunner(latency.Runner):
    """latency.Runner whose every sample also times a *warm* invoke: the first call of a
    sample follows other configurations (caches hold their data: "cold"), then
    ``warm - 1`` untimed calls, then one more timed call (the model's data in cache, as
    when one model runs back to back: "warm")."""

    def __init__(self, name, make, x, warm=2):
        super().__init__(name, make, x)
        self.warm, self.wall_warm, self.cpu_warm = warm, [], []

    def sample(self):
        super().sample()
        for _ in range(self.warm - 1):
            self.call()
        wall, cpu = self.timed_call()
        self.wall_warm.append(wall)
        self.cpu_warm.append(cpu)

    def summary(self) -> dict:
        out = super().summary()
        if self.cpu_warm:
            wall, cpu = np.array(self.wall_warm) * 1e3, np.array(self.cpu_warm) * 1e3
            out["warm"] = {
                "median_ms": float(np.median(wall)),
                "min_ms": float(wall.min()),
                "cpu_median_ms": float(np.median(cpu)),
                "samples": len(cpu),
            }
        return out


def perf_conv_ms(path, kernel, seconds) -> dict:
    """benchmarks/perf_profile.py on one file and kernel: CPU ms per invoke, the
    binary conv kernels' ms (None if perf is unavailable)."""
    out = latency.CACHE / "sparse_model_perf.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "perf_profile.py"), str(path)]
    cmd += ["--kernel", kernel, "--seconds", str(seconds), "--json", str(out)]
    for attempt in range(3):  # perf record fails now and then on this shared machine
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode == 0:
            break
        print(f"perf profile failed ({attempt + 1}/3):", proc.stderr.strip()[-200:], flush=True)
    else:
        return None
    prof = json.loads(out.read_text())
    cpu = prof["cpu_ms_per_invoke"]
    groups = {g: 0.0 for g in GROUPS}
    for pct, dso, sym in prof["functions"]:
        groups[group_of(dso, sym)] += pct / 100
    share = groups["binary conv kernels"]
    return {
        "cpu_ms_per_invoke": cpu,
        "conv_share": share,
        "conv_ms": share * cpu,
        "rest_ms": (1 - share) * cpu,
        "groups": groups,
        "categories": prof["categories"],
        "invokes": prof.get("invokes"),
    }


def analyse(entry) -> dict:
    """Speed-ups, fraction of ideal and goals of one weight set from its results."""
    res, st = entry["results"], entry["stats"]
    out = {}
    warm = "warm" in res["sparse"]
    clocks = [("cpu", "cpu_median_ms", False), ("wall", "median_ms", False)]
    if warm:
        clocks += [("cpu_warm", "cpu_median_ms", True), ("wall_warm", "median_ms", True)]
    for clock, key, w in clocks:
        val = {k: (v["warm"] if w else v)[key] for k, v in res.items()}
        lce = {k: v for k, v in val.items() if k.startswith("lce_")}
        best = min(lce, key=lce.get)
        s = val["sparse"]
        out[clock] = {
            "sparse_ms": s,
            "dense_ms": val.get("dense"),
            "lce_fastest": best,
            "lce_fastest_ms": lce[best],
            "vs_dense": val["dense"] / s if "dense" in val else None,
            "vs_lce": lce[best] / s,
        }
        if "dense" in val:
            out[clock]["of_ideal"] = out[clock]["vs_dense"] / st["ideal"]
    head = "cpu_warm" if warm else "cpu"  # the headline clock (goals, conv split)
    out["headline"] = head
    perf = entry.get("perf")
    if perf and perf.get("dense") and perf.get("sparse"):
        d, s = perf["dense"], perf["sparse"]
        # scale the profile's shares (the perf child runs one model back to back: warm)
        # to the headline CPU medians
        dense_ms, sparse_ms = out[head]["dense_ms"], out[head]["sparse_ms"]
        conv_d, conv_s = d["conv_share"] * dense_ms, s["conv_share"] * sparse_ms
        rest = (1 - d["conv_share"]) * dense_ms
        out["convs"] = {
            "dense_conv_ms": conv_d,
            "sparse_conv_ms": conv_s,
            "speedup": conv_d / conv_s if conv_s else None,
            "of_ideal": conv_d / conv_s / st["ideal"] if conv_s else None,
            "rest_ms": rest,
            "amdahl_bound": dense_ms / rest if rest else None,
            "bound_at_ideal": dense_ms / (rest + conv_d / st["ideal"]),
        }
    sp = entry["sparsity"]
    if sp in GOALS:
        g = GOALS[sp]
        out["goals"] = {
            f"{k} >= {v:g}x": bool((out[head].get(k) or 0) >= v) for k, v in g.items()
        }
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trained", help="directory of benchmarks/train_sparse_models.py's models")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--sparsities", nargs="+", type=float, default=list(SPARSITIES))
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--budget", type=float, default=20.0, help="seconds per slow configuration")
    p.add_argument(
        "--warm",
        type=int,
        default=2,
        help="calls per sample: the first is timed as 'cold', the last as 'warm' (default 2)",
    )
    p.add_argument("--no-perf", dest="perf", action="store_false")
    p.add_argument("--perf-seconds", type=float, default=6.0)
    p.add_argument("--quick", action="store_true", help="smoke run: synthetic 95%%, 5 rounds")
    p.add_argument("--delegate", default="installed", help="as latency.py: installed|head|PATH")
    p.add_argument("--cache", default=str(ROOT / "build" / "sparse_model"))
    p.add_argument("--json", default=str(ROOT / "docs" / "data" / "sparse_model.json"))
    p.add_argument("--markdown", metavar="JSON", help="only print the tables of a result JSON")
    a = p.parse_args(argv)
    if a.markdown:
        print(markdown(json.loads(Path(a.markdown).read_text())))
        return None
    if a.quick:
        a.rounds, a.budget, a.perf = 5, 1.0, False
        if a.sparsities == list(SPARSITIES):
            a.sparsities = [0.95]
        if a.sources == list(SOURCES) and not a.trained:
            a.sources = ["synthetic"]
    if "trained" in a.sources and not a.trained:
        p.error("--trained DIR is needed for the trained weights (or --sources synthetic)")
    for sp in a.sparsities:
        if sp not in PAPER_K0K1 or ("trained" in a.sources and sp not in TRAINED):
            p.error(f"sparsity {sp} has no paper K0/K1 shares or trained model")

    latency.CACHE = Path(a.cache)
    latency.CACHE.mkdir(parents=True, exist_ok=True)
    if a.delegate == "head":
        source = latency.build_delegate_at_head()
    else:
        source = Path(runtime.library_path() if a.delegate == "installed" else a.delegate)
    stale = [
        str(f.relative_to(ROOT))
        for f in (ROOT / "tflite").rglob("*")
        if a.delegate != "head" and f.is_file() and f.stat().st_mtime > source.stat().st_mtime
    ]
    private = latency.CACHE / "libsbnn_delegate.so"  # a rebuild mid-run must not change it
    private.write_bytes(source.read_bytes())
    os.environ["SBNN_DELEGATE_LIB"] = str(private)
    info = latency.machine()
    info["delegate_copied_from"] = str(source)
    info["tflite_sources_newer_than_library"] = stale[:20]
    dense_kernel = latency.DENSE_KERNEL if info["avx512_vpopcntdq"] else None
    result = {
        "machine": info,
        "command": " ".join(["python", "benchmarks/sparse_model.py"] + sys.argv[1:]),
        "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "settings": {
            "rounds": a.rounds,
            "budget_s": a.budget,
            "threads": 1,
            "batch": 1,
            "warm": a.warm,
        },
        "dense_kernel": dense_kernel,
        "paper_k0k1": {str(k): v for k, v in PAPER_K0K1.items()},
        "sets": {},
    }
    print(
        f"machine: {info['cpu']} ({info['cores']} cores), commit {info['commit']}, "
        f"load {info['loadavg_start']}",
        flush=True,
    )
    if "trained" in a.sources:
        summary = Path(a.trained) / "summary.json"
        if summary.is_file():
            tr = json.loads(summary.read_text())
            result["trained_models"] = {
                k: {f: v.get(f) for f in ("variant", "ec", "test_accuracy", "connections", "layers", "config", "quick")}
                for k, v in tr.items()
            }

    # weight sets and conversions
    sets, files, runners = result["sets"], {}, {}
    for src in a.sources:
        for sp in a.sparsities:
            tag = f"{src}-{int(round(sp * 100))}"
            t0 = time.perf_counter()
            masks = make_masks(src, sp, a.trained)
            st = mask_stats(masks)
            files[tag] = convert_set(tag, masks)
            sets[tag] = {
                "source": src,
                "sparsity": sp,
                "stats": st,
                "paper_k0k1": PAPER_K0K1[sp],
                "file_bytes": {k: len(v) for k, v in files[tag].items()},
                "storage": latency.filter_storage(files[tag], STEM),
            }
            if src == "trained":
                sets[tag]["trained_model"] = TRAINED[sp]
            print(
                f"{tag}: p {st['connections']:.4f}, K0 {st['k0']:.3f}, K1 {st['k1']:.3f}, "
                f"ideal {st['ideal']:.1f}x ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    skeleton = latency.cached(
        "cifar-skeleton", lambda: latency.float_tflite(latency.build("skeleton", STEM)), STEM
    )

    # one interleaved run over every configuration of every weight set
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    for tag in sets:
        for name, make in runner_factories(files[tag], dense_kernel).items():
            runners[f"{tag}|{name}"] = WarmRunner(f"{tag}|{name}", make, x, warm=a.warm)
    runners["skeleton"] = latency.Runner(
        "skeleton", lambda: tf.lite.Interpreter(model_content=skeleton, num_threads=1), x
    )
    bnn = None
    if not a.quick and dense_kernel:  # the plain BNN layout: no q channel, BN fused by LCE
        bnn = latency.cached(
            "cifar-binary", lambda: sbnn_keras.convert(latency.build("binary", STEM)), STEM
        )
        runners["bnn_dense"] = WarmRunner(
            "bnn_dense",
            lambda: runtime.Interpreter(bnn, num_threads=1, kernel=dense_kernel),
            x,
            warm=a.warm,
        )
    load0 = os.getloadavg()
    print(f"\n== timing {len(runners)} configurations interleaved, load {load0} ==", flush=True)
    t0 = time.perf_counter()
    res = latency.measure(runners, a.rounds, 1, budget_s=a.budget)
    result["timing"] = {
        "loadavg": [load0, os.getloadavg()],
        "seconds": time.perf_counter() - t0,
        "skeleton": res["skeleton"],
        "bnn_dense": res.get("bnn_dense"),
    }
    for tag, entry in sets.items():
        entry["results"] = {
            k.split("|", 1)[1]: v for k, v in res.items() if k.startswith(tag + "|")
        }
        desc = runners[f"{tag}|sparse"].interp.describe()
        entry["kernels"] = latency.kernel_counts(desc)
        entry["describe"] = desc
        entry["analysis"] = analyse(entry)
    del runners

    if a.perf:
        print("\n== perf profiles (binary conv kernels vs the rest) ==", flush=True)
        for tag, entry in sets.items():
            path = latency.PATHS[f"{tag}-auto"]
            entry["perf"] = {
                "sparse": perf_conv_ms(path, "auto", a.perf_seconds),
                "dense": perf_conv_ms(path, dense_kernel, a.perf_seconds) if dense_kernel else None,
            }
            entry["analysis"] = analyse(entry)
            print(tag, json.dumps(entry["analysis"].get("convs")), flush=True)
        if bnn is not None:
            prof = perf_conv_ms(latency.PATHS["cifar-binary"], dense_kernel, a.perf_seconds)
            result["timing"]["bnn_dense_perf"] = prof
    info["loadavg_end"] = os.getloadavg()
    result["finished_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=1, default=float) + "\n"
    Path(a.json).write_text(text.replace(str(ROOT) + "/", ""))  # repository-relative paths
    print("\n" + markdown(result))
    print(f"\nwrote {a.json}")
    return result


# ---- report -----------------------------------------------------------------------------------


def _x(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}x"


def markdown(result) -> str:
    sets = result["sets"]
    out = []
    t = result.get("timing", {})
    load = t.get("loadavg", [[float("nan")]])[0][0]
    warm = any("warm" in e.get("analysis", {}).get("headline", "") for e in sets.values())
    second = "cold" if warm else "wall"
    out.append(
        f"**Model latency, 1 thread, batch 1** (CPU-time medians, ms"
        + (", warm: the model's data in cache; in parentheses the cold ratios, first invoke "
           "after other models" if warm else "; in parentheses the wall-clock ratios")
        + f"; all in the JSON; load average {load:.1f}; skeleton "
        f"{t.get('skeleton', {}).get('cpu_median_ms', float('nan')):.3f} ms)\n"
    )
    out.append(
        "| weights | sparsity | sparse (auto) | bit-plane forced* | our dense | LCE fastest | "
        f"sparse vs dense ({second}) | sparse vs LCE ({second}) | ideal | of ideal | goals |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for tag, e in sets.items():
        an, st = e.get("analysis", {}), e["stats"]
        c = an.get(an.get("headline", "cpu"))
        if not c:
            continue
        goals = ", ".join(
            f"{k.replace('vs_', 'vs ').replace('lce', 'LCE')}: {'met' if v else 'not met'}"
            for k, v in an.get("goals", {}).items()
        )
        w = an["cpu"] if warm else an["wall"]
        lce_name = c["lce_fastest"].replace("lce_", "").replace("_xnn", "+xnn")
        all_res = e["results"].get("sparse_all", {})
        all_ms = (all_res.get("warm", {}) if warm else all_res).get("cpu_median_ms")
        out.append(
            f"| {e['source']} | {100 * st['sparsity']:.1f}% | {c['sparse_ms']:.3f} | "
            f"{'-' if all_ms is None else f'{all_ms:.3f}'} | "
            f"{c['dense_ms']:.3f} | {c['lce_fastest_ms']:.3f} ({lce_name}) | "
            f"**{_x(c['vs_dense'], 2)}** ({_x(w['vs_dense'], 2)}) | **{_x(c['vs_lce'])}** "
            f"({_x(w['vs_lce'])}) | {_x(st['ideal'])} | {100 * c.get('of_ideal', 0):.1f}% | {goals} |"
        )
    out.append(
        "\n\\* the bit-plane kernel forced by name on every layer (`kernel=` of the delegate). "
        "Delegates before commit 53cd4a6 ran a forced sparse kernel in the dense kernel's "
        "small row chunks (hence 1.2-7x slower than \"auto\" with the same kernel in runs "
        "of those); since then in the same whole-image chunks as \"auto\". Ratios and "
        "goals use \"sparse (auto)\"."
    )
    if any("convs" in e.get("analysis", {}) for e in sets.values()):
        out.append(
            "\n**Binary convs alone** (perf profile shares of the conv kernels, scaled to the "
            "CPU medians above; rest = quantize, output transform, float ops; ms)\n"
        )
        out.append(
            "| weights | sparsity | dense convs | sparse convs | convs speed-up | ideal | of ideal | "
            "rest | model bound (convs free) | bound at ideal convs | model achieved |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for tag, e in sets.items():
            an, st = e["analysis"], e["stats"]
            cv = an.get("convs")
            if not cv:
                continue
            out.append(
                f"| {e['source']} | {100 * st['sparsity']:.1f}% | {cv['dense_conv_ms']:.3f} | "
                f"{cv['sparse_conv_ms']:.3f} | {_x(cv['speedup'], 2)} | {_x(st['ideal'])} | "
                f"{100 * (cv['of_ideal'] or 0):.1f}% | {cv['rest_ms']:.3f} | "
                f"{_x(cv['amdahl_bound'], 2)} | {_x(cv['bound_at_ideal'], 2)} | "
                f"{_x(an[an.get('headline', 'cpu')]['vs_dense'], 2)} |"
            )
    if any((e.get("perf") or {}).get("dense") for e in sets.values()):
        out.append(
            "\n**Where the time goes** (perf profile groups, shares of the CPU time per invoke "
            "scaled to the CPU medians above; ms)\n"
        )
        out.append("| weights | sparsity | kernel | " + " | ".join(GROUPS) + " |")
        out.append("|---|---:|---|" + "---:|" * len(GROUPS))
        for tag, e in sets.items():
            for cfg in ("dense", "sparse"):
                prof = (e.get("perf") or {}).get(cfg)
                if not prof or "groups" not in prof:
                    continue
                r = e["results"][cfg]
                ms = (r.get("warm", r) if warm else r)["cpu_median_ms"]
                cells = " | ".join(f"{prof['groups'][g] * ms:.3f}" for g in GROUPS)
                name = "dense (forced)" if cfg == "dense" else "auto"
                out.append(
                    f"| {e['source']} | {100 * e['stats']['sparsity']:.1f}% | {name} | {cells} |"
                )
    bnn, prof = t.get("bnn_dense"), t.get("bnn_dense_perf")
    if bnn and warm and "warm" in bnn:
        bnn = bnn["warm"]
    if bnn and prof and "groups" in prof:
        ms = bnn["cpu_median_ms"]
        cells = " | ".join(f"{prof['groups'][g] * ms:.3f}" for g in GROUPS)
        out.append(f"| plain BNN layout (larq, no q channel) | 50% | dense (forced) | {cells} |")
    if bnn:
        out.append(
            f"\nReference in the same run: the plain larq BNN ResNet-18 (`benchmarks/models.py` "
            f"kind \"binary\": phi = 0, no q channel, BN fused into the conv by the converter), "
            f"dense kernel: {bnn['cpu_median_ms']:.3f} ms CPU."
        )
    out.append(
        "\n**Weights and storage** (binary 3x3 convs: 10.99 M weights; p = connections; "
        "h = binary entropy; SBF1 = flavor auto)\n"
    )
    out.append(
        "| weights | sparsity | p | K0 (paper) | K1 (paper) | minority p | h(p) | h per channel | "
        "auto b/w | / h(p) | lce b/w | auto file | lce file | kernels (auto) |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for tag, e in sets.items():
        st, sto = e["stats"], e["storage"]
        k0p, k1p = e["paper_k0k1"]
        kern = ", ".join(
            f"{'sparse' if 'sparse' in k else 'dense'} x{n}" for k, n in e.get("kernels", {}).items()
        )
        bw = sto["auto"]["bits_per_weight"]
        out.append(
            f"| {e['source']} | {100 * st['sparsity']:.1f}% | {st['connections']:.4f} | "
            f"{100 * st['k0']:.1f}% ({100 * k0p:.1f}%) | {100 * st['k1']:.1f}% ({100 * k1p:.1f}%) | "
            f"{st['minority_connections']:.4f} | {st['h_p']:.3f} | {st['h_per_channel']:.3f} | "
            f"{bw:.3f} | {bw / st['h_p']:.2f} | {sto['lce']['bits_per_weight']:.3f} | "
            f"{e['file_bytes']['auto'] / 1e6:.2f} MB | {e['file_bytes']['lce'] / 1e6:.2f} MB | {kern} |"
        )
    tm = result.get("trained_models")
    if tm:
        out.append("\n**Trained weight sources** (Fashion-MNIST demo network)\n")
        out.append("| model | variant | EC | epochs | test accuracy | connections | per layer |")
        out.append("|---|---|---:|---:|---:|---:|---|")
        for name, m in tm.items():
            per = " / ".join(f"{v['connections']:.3f}" for v in (m.get("layers") or {}).values())
            cfg = m.get("config") or {}
            out.append(
                f"| {name} | {m['variant']} | {m['ec'] if m['ec'] is not None else '-'} | "
                f"{cfg.get('epochs', '?')} | {100 * m['test_accuracy']:.2f}% | "
                f"{m['connections']:.4f} | {per} |"
            )
    return "\n".join(out)


if __name__ == "__main__":
    main()
