"""Fuzzing findings stay fixed (docs/reliability.md).

* The four native fuzz harnesses (tflite/fuzz/) are compiled with g++ and ASan/UBSan
  as plain programs (tflite/fuzz/replay_main.cc instead of libFuzzer) and replay the
  seed corpus and every crash input ever found (tflite/fuzz/regressions/<harness>/).
  The op and model harnesses link the library Python loads
  (``sbnn_runtime.library_path()``), so the shipped build is what is checked.
* Findings reachable from Python are also checked through ``sbnn_keras.Interpreter``.
* The SBF1 corpus is decoded by the native decoder and the Python reference: they
  must agree on every file (accept/reject and the decoded filter).

The libFuzzer runs themselves are ``scripts/fuzz.sh`` (not part of pytest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _runtime_helpers import cached_convert, set_options  # noqa: E402

import sbnn_runtime as runtime
from sbnn_runtime.sparse_format import SparseFilterError, decode_filter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "tflite" / "fuzz"
HARNESSES = ("flexbuffer", "sbf1", "ops", "model")

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")

_SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
# The compiler and the replay programs must not inherit a sanitizer preload (when
# this file runs under tflite/scripts/asan_pytest.sh): the programs link ASan themselves.
_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """harness name -> path of its replay executable (built in parallel)."""
    out = tmp_path_factory.mktemp("fuzz_replay")
    lib = Path(runtime.library_path()).resolve()
    extra = {
        "flexbuffer": [str(ROOT / "tflite/delegate/flexbuffer.cc")],
        "sbf1": [],
        "ops": [str(lib), f"-Wl,-rpath,{lib.parent}"],
        "model": [str(lib), f"-Wl,-rpath,{lib.parent}"],
    }
    procs = {}
    for h in HARNESSES:
        exe = out / f"replay_{h}"
        cmd = ["g++", "-std=c++17", "-O0", "-g", "-ffp-contract=off", *_SAN,
               f"-I{ROOT / 'tflite'}", f"-I{ROOT / 'tflite/include'}",
               str(FUZZ / f"fuzz_{h}.cc"), str(FUZZ / "replay_main.cc"), *extra[h],
               "-lpthread", "-o", str(exe)]
        procs[h] = (exe, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                          env=_ENV))
    exes = {}
    for h, (exe, proc) in procs.items():
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"building the {h} replay harness failed:\n{log[-3000:]}"
        exes[h] = exe
    return exes


def _inputs(harness):
    dirs = [FUZZ / "corpus" / harness, FUZZ / "regressions" / harness]
    return [d for d in dirs if d.is_dir()]


# Every allocation starts as 0xFF junk (ASan fills only the first 4 KB by default), so
# a read of memory nobody wrote changes results at once.
_FILL = "malloc_fill_byte=255:max_malloc_fill_size=1073741824"
# Environment that keeps the replays off code with an open finding (none open now;
# e.g. {"SBNN_DISABLE_ISA": "avx512"} while an AVX-512 kernel is broken).
# tflite/fuzz/regressions/ops/sparse_bitplane512_uninitialized_work (the AVX-512
# bit-plane kernel read scratch nobody wrote when the input is narrower than the
# stride) fails without the fix on CPUs with AVX-512 VPOPCNTDQ/VBMI/GFNI.
_OPEN_FINDING_WORKAROUND: dict = {}


@pytest.mark.parametrize("harness", HARNESSES)
def test_corpus_and_regressions_replay_cleanly(replay, harness):
    dirs = _inputs(harness)
    if not dirs:
        pytest.skip(f"no corpus for {harness}")
    env = dict(_ENV, ASAN_OPTIONS=f"detect_leaks=0:halt_on_error=1:{_FILL}", UBSAN_OPTIONS="print_stacktrace=1",
               **_OPEN_FINDING_WORKAROUND)
    proc = subprocess.run([str(replay[harness]), *map(str, dirs)], capture_output=True, text=True,
                          timeout=600, env=env)
    last = [line for line in proc.stderr.splitlines() if line.startswith("replay: ")][-1:]
    assert proc.returncode == 0, (
        f"fuzz_{harness} failed on {last} (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    )
    assert "replayed" in proc.stdout


@pytest.mark.xfail(reason="tflite/fuzz/findings/README.md: open findings (XPASS once fixed)", strict=False)
def test_open_findings_still_fail(replay):
    findings = FUZZ / "findings" / "ops"
    if not findings.is_dir() or not any(findings.iterdir()):
        pytest.skip("no open findings")
    env = dict(_ENV, ASAN_OPTIONS=f"detect_leaks=0:halt_on_error=1:{_FILL}")
    proc = subprocess.run([str(replay["ops"]), str(findings)], capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_regression_inputs_are_kept_per_harness():
    """Every regression input sits in a folder named after an existing harness."""
    reg = FUZZ / "regressions"
    for d in reg.iterdir() if reg.is_dir() else []:
        if d.is_dir():
            assert d.name in HARNESSES, d
            assert (FUZZ / f"fuzz_{d.name}.cc").is_file()


# ---- findings that are reachable from Python --------------------------------------


def _chain():
    from test_runtime_ops import build_bitpacked_chain

    return cached_convert("bitpacked_chain", build_bitpacked_chain)[1]


def test_empty_option_map_reports_the_missing_option():
    """fuzz_flexbuffer finding: flexbuffers writes an empty map with root offset 0,
    which the reader took for a corrupt buffer; an LceBconv2d whose options are an
    empty map must say which option is missing."""
    from flatbuffers import flexbuffers

    empty = flexbuffers.Dumps({})
    assert bytes(empty) == bytes([0, 0, 1, 0, 0, 36, 1])
    model = set_options(_chain(), "LceBconv2d", raw=empty)
    with pytest.raises(RuntimeError, match="custom option 'channels_in' is missing"):
        runtime.Interpreter(model)


# ---- SBF1: native decoder == Python reference on the whole corpus -----------------


@pytest.fixture(scope="module")
def sbf1_tool(tmp_path_factory):
    exe = tmp_path_factory.mktemp("sbf1_tool") / "sbf1_tool"
    subprocess.run(["g++", "-std=c++17", "-O1", "-g", *_SAN, str(ROOT / "tflite/format/sbf1_tool.cc"),
                    "-o", str(exe)], check=True, capture_output=True, env=_ENV)
    return exe


def _pack(wb):
    o, h, w, c = wb.shape
    words = (c + 31) // 32
    bits = np.zeros((o, h, w, words * 32), dtype=np.uint64)
    bits[..., :c] = wb < 0
    return (bits.reshape(o, h, w, words, 32) << np.arange(32, dtype=np.uint64)).sum(-1).astype(
        np.uint32
    ).view(np.int32).ravel()


def test_sbf1_corpus_native_matches_python(sbf1_tool, tmp_path):
    files = [f for d in _inputs("sbf1") for f in sorted(d.iterdir()) if f.is_file() and f.suffix != ".md"]
    assert len(files) >= 20
    accepted = 0
    for f in files:
        data = f.read_bytes()
        try:
            ref = _pack(decode_filter(data))
        except SparseFilterError:
            ref = None
        out = tmp_path / "out.bin"
        proc = subprocess.run([str(sbf1_tool), str(f), str(out)], capture_output=True, text=True, env=_ENV)
        assert proc.returncode in (0, 2), f"{f.name}: native decoder crashed: {proc.stderr[-2000:]}"
        if ref is None:
            assert proc.returncode == 2, f"{f.name}: Python rejects, native accepts"
            continue
        assert proc.returncode == 0, f"{f.name}: Python accepts, native rejects: {proc.stderr}"
        np.testing.assert_array_equal(np.fromfile(out, np.int32), ref, err_msg=f.name)
        accepted += 1
    assert accepted >= 20


def test_sbf1_shape_whose_product_wraps_is_rejected():
    """fuzz_sbf1 finding (regressions/sbf1/shape_product_wraps_uint64): a header whose
    filter_h * filter_w * channels overflows 64 bits wrapped to 0 and passed the SBF1
    parser's size check, so its decoder wrote past an empty buffer (the delegate's own
    dimension limits happened to reject this header before decoding; sbf1_tool and the
    harness did not). The parser now rejects it; in a .tflite the delegate reports it."""
    import numpy as np_

    from _runtime_helpers import read, write

    hostile = (FUZZ / "regressions" / "sbf1" / "shape_product_wraps_uint64").read_bytes()
    with pytest.raises(SparseFilterError):
        decode_filter(hostile)
    model = read(sbnn_keras_sparse_chain())
    graph = model.subgraphs[0]
    op = next(
        op
        for op in graph.operators
        if model.operatorCodes[op.opcodeIndex].customCode
        and bytes(model.operatorCodes[op.opcodeIndex].customCode) == b"SbnnBconv2d"
    )
    tensor = graph.tensors[op.inputs[1]]
    model.buffers[tensor.buffer].data = np_.frombuffer(hostile, dtype=np_.uint8).copy()
    tensor.shape = np_.array([len(hostile)], dtype=np_.int32)
    with pytest.raises(RuntimeError, match="too large"):
        runtime.Interpreter(write(model))


def sbnn_keras_sparse_chain():
    import sbnn_keras
    import tensorflow as tf

    x = tf.keras.Input((6, 6, 40))
    y = sbnn_keras.QuantConv2D(8, 3, padding="same", kernel_quantizer="sbnn_learned")(x)
    return sbnn_keras.convert(tf.keras.Model(x, y), flavor="sparse")
