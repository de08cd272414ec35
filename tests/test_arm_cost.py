"""benchmarks/arm_cost: the ARM cost benchmark (AArch64 instruction counts under
qemu-aarch64 + llvm-mca cycle estimates, docs/benchmarks.md "ARM cost").

The end-to-end test cross-builds the core library, runs one layer under qemu with the
project's plugin and checks what the numbers must satisfy whatever the kernels look
like: repeated runs count exactly the same, a dense kernel does the same work on every
filter, the sparse kernels' counts fall as the sparsity rises, the stage attribution
accounts for every instruction. It needs the cross toolchain, qemu-user and llvm-mca
(installed with apt-get when run as root, as in CI); elsewhere it is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "arm_cost" / "arm_cost.py"


def _load_driver():
    spec = importlib.util.spec_from_file_location("arm_cost_driver", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_layer_tables_match_the_benchmark_models():
    """The driver's layer tables are the binary 3x3 convs of benchmarks/models.py."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import models
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    drv = _load_driver()
    for net, model in (("resnet18", models.resnet18("binary", "cifar")), ("quicknet", models.quicknet("binary"))):
        expected = {}
        for name, h, w, cin, oh, ow, cout, k, stride, _ in models.binary_convs(model):
            conv = model.get_layer(name)
            pad = int(getattr(conv, "pad_values", 0.0) or 0)
            key = (h, w, cin, cout, k, stride, pad)
            expected[key] = expected.get(key, 0) + 1
        got = {tuple(l[1:8]): l[8] for l in drv.NETWORKS[net]}
        assert got == expected, net


def test_short_names_and_stages():
    drv = _load_driver()
    lam = ("sbnn::internal::(anonymous namespace)::BitplanePortable<2>::process_channels("
           "sbnn::internal::(anonymous namespace)::BandCtx&, int, int)::<lambda(int, uint64_t*)>"
           "::operator()(int, uint64_t*) const")
    acc = ("accumulate_portable<2, sbnn::internal::(anonymous namespace)::BitplanePortable<2>::"
           "process_channels(sbnn::internal::(anonymous namespace)::BandCtx&, int, int)::"
           "<lambda(int, uint64_t*)> >(int, Load&&, Vec<2>*)")
    assert drv.short_name(lam) == "process_channels.lambda"
    assert drv.short_name(acc) == "accumulate_portable"
    assert drv.short_name("void ns::tile_entry<UK, 4, 2>(ns::TileArgs const&)") == "tile_entry"
    chain = [drv.short_name(f) for f in (lam, acc, "ns::process_channels(int)", "ns::run_bitplane<I>(x)")]
    # the lambda works for its caller (counting), not for the function defining it
    assert drv.stage_of(chain, drv.SPARSE_STAGES) == "count"
    assert drv.stage_of(["mystery_stage", "run_bitplane"], drv.SPARSE_STAGES) == "setup"
    assert drv.stage_of(["mystery_stage"], drv.SPARSE_STAGES) == "other"
    # a generic helper takes its caller's stage: a byte transpose is input transposition
    # only when the input transposition calls it
    assert drv.stage_of(["transpose_bytes16", "transpose_row_neon"], drv.SPARSE_STAGES) == "transpose"
    assert drv.stage_of(["transpose_bytes16", "planes_to_counts"], drv.SPARSE_STAGES) == "convert"
    assert drv.stage_of(["operator", "count_segments", "process_channels"], drv.SPARSE_STAGES) == "count"
    assert drv.stage_of(["to_bits"], drv.DENSE_STAGES) == "output"


def test_page_split_blocks_are_modelled_as_one():
    """A translation block cut at a 4 KB page boundary and the block after it are one
    block for llvm-mca (the estimate must not depend on where the linker put a loop)."""
    drv = _load_driver()
    a, b, c, d = (0x1000 - 32, 8), (0x1000, 5), (0x1000, 2), (0x2000 + 16, 3)
    joins = drv.page_joins({a, b, c, d})
    assert joins[a] == ((0x1000 - 32, 13), 8 / 13)  # joined with the longest block there
    assert joins[b] == ((0x1000 - 32, 13), 5 / 13)
    assert c not in joins and d not in joins
    assert drv.page_joins({(0x2000, 4), (0x2010, 4)}) == {}  # not at a page boundary


def test_bad_arguments_are_named():
    for args, word in ((["--sparsity", "1.5"], "--sparsity"), (["--layer", "no-such-layer"], "--layer"),
                       (["--reps", "0"], "--reps")):
        r = subprocess.run([sys.executable, str(SCRIPT)] + args, capture_output=True, text=True)
        assert r.returncode == 2, (args, r.stderr)
        assert word in r.stderr


def _tools_available():
    if os.geteuid() == 0 and shutil.which("apt-get"):
        return True
    return all(shutil.which(t) for t in ("aarch64-linux-gnu-g++", "qemu-aarch64", "cmake"))


@pytest.mark.slow
@pytest.mark.skipif(not _tools_available(), reason="needs root (apt-get) or the aarch64 toolchain and qemu-user")
def test_one_layer_end_to_end(tmp_path):
    doc = _one_layer(tmp_path, "dot")
    _check_counts(doc)
    # A layer's bitpacked output: for a dense kernel, its run followed by the output
    # transform, which costs more than the dot alone and is attributed to the output
    # stage. (A sparse kernel may make it straight from its count planes, cheaper.)
    bits = _one_layer(tmp_path, "bits")
    _check_counts(bits)
    dot_by = {(x["kernel"], x["sparsity"]): x for x in doc["results"]}
    for x in bits["results"]:
        d = dot_by[(x["kernel"], x["sparsity"])]
        if not x["sparse"]:
            assert x["instructions"] > d["instructions"], x["kernel"]
            assert x["stages"].get("output", 0) > 0, (x["kernel"], x["stages"])


def _one_layer(tmp_path, output):
    out = tmp_path / ("arm_cost_%s.json" % output)
    cmd = [sys.executable, str(SCRIPT), "--network", "resnet18", "--layer", "4x4x512", "--gen", "bernoulli",
           "--sparsity", "0.9", "--sparsity", "0.99", "--reps", "2", "--output", output, "--json", str(out)]
    if os.geteuid() != 0:
        cmd.append("--no-install")
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["output"] == output
    return doc


def _check_counts(doc):
    res = doc["results"]
    kernels = {x["kernel"] for x in res}
    # every non-reference kernel of the table that supports the layer, dense and sparse
    assert any(not x["sparse"] for x in res) and any(x["sparse"] for x in res), kernels
    assert not any("reference" in k for k in kernels)
    by = {(x["kernel"], round(x["sparsity"], 2)): x for x in res}
    for x in res:
        assert len(x["runs"]) == 2 and x["runs"][0] == x["runs"][1] and x["deterministic"], x["kernel"]
        assert x["instructions"] > 10_000
        # every counted instruction is in some stage (the markers' few are "other")
        assert abs(sum(x["stages"].values()) - x["instructions"]) < 200, (x["kernel"], x["stages"])
        if doc["llvm_mca"]:
            for lab in ("A72", "A76~N1"):
                assert x["cycles"][lab] > 0
    for k in kernels:
        lo, hi = by[(k, 0.9)], by[(k, 0.99)]
        if lo["sparse"]:
            assert hi["instructions"] < lo["instructions"], k
        elif doc["output"] == "dot":
            assert hi["instructions"] == lo["instructions"], k
        else:  # the output call allocates scratch: malloc's path depends on the heap's history
            assert abs(hi["instructions"] - lo["instructions"]) < 1e-3 * lo["instructions"], k
    assert doc["network_totals"] == []  # one layer is not a network
