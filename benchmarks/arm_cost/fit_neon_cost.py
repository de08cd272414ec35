#!/usr/bin/env python3
"""Refits the aarch64 cost model of the sparse NEON kernel (estimate_neon_bconv2d_cost in
tflite/core/sparse_select.cc) to a run of the ARM cost benchmark, and rewrites the
measured table its test checks (tflite/tests/core/neon_cost_measured.inc).

The model rates each stage of the sparse kernel as coefficients x counts of its units of
work (the "features" below, the same formulas as sparse_features() in
sparse_select.cc); the coefficients are non-negative least-squares fits of the
benchmark's per-stage A76~N1 model cycles over the ResNet-18 layers, sparsities and
filter generators of the run. The dense kernel's coefficients are not refitted (the
dense kernel did not change); their error is reported.

    python3 benchmarks/arm_cost/arm_cost.py --network resnet18 --kernel neon \\
        --json docs/data/arm_cost_neon.json
    .venv/bin/python benchmarks/arm_cost/fit_neon_cost.py docs/data/arm_cost_neon.json \\
        --write-table tflite/tests/core/neon_cost_measured.inc

It prints the C++ constants to paste into sparse_select.cc and the modelled vs measured
sparse/dense ratio of every point (docs/sparse_kernels.md, "NEON cost model"). A kernel
change that moves the costs needs this refit: sbnn_sparse_tests fails until then.
`--evaluate` fits nothing: it rates every point of the run (any network or sparsity,
e.g. layers outside the fit) with the coefficients now in sparse_select.cc.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import numpy as np
from scipy.optimize import nnls

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import arm_cost  # noqa: E402  (NETWORKS: the layer shapes of the run)

SPARSE = "bconv2d_sparse_bitplane_128__neon"
DENSE = "bconv2d_dot_4x8__neon"
CPU = "A76~N1"
Y_BUDGET = 48 * 1024

# Stage groups of the benchmark -> (features, C++ constant names), fitted separately.
GROUPS = (
    (("transpose",), ("tr_chunks", "tr_bytes", "ext_rows", "direct_rows", "stage_rows", "stage_planes", "hb"),
     ("kTrChunk", "kTrByte", "kExtRow", "kDirectRow", "kStageRow", "kStagePlane", "kHb")),
    (("count",), ("count1", "count2", "count4", "chan_vec"), ("kCount1", "kCount2", "kCount4", "kCountVec")),
    (("convert", "channels"), ("chan_vec",), ("kConvert",)),
    (("output", "setup", "other"), ("outputs16", "setup"), ("kOutput16", "kSetup")),
)
# Dense coefficients (sparse_select.cc; not refitted here).
DENSE_COEF = {"tile": 134, "tile_k": 27.08, "pixel": 71.35, "pixel_word": 1.261}


def layer_shape(h, c, o, k, stride):
    """SAME zero padding, square, as the benchmark's layers (LayerShape in sparse_test.cc)."""
    out = (h + stride - 1) // stride
    pad = max((out - 1) * stride + k - h, 0) // 2
    return dict(h=h, w=h, c=c, o=o, kh=k, kw=k, sh=stride, sw=stride, out_h=out, out_w=out,
                pad_top=pad, dil=1, groups=1)


def features(s, conns, max_conns):
    """sparse_features() of sparse_select.cc (keep the two in step)."""
    kh, kw, sh = s["kh"], s["kw"], s["sh"]
    cg, og = s["c"] // s["groups"], s["o"] // s["groups"]
    R = 8
    if s["out_w"] <= 64:
        while R < s["out_w"]:
            R *= 2
    else:
        R = (s["out_w"] + 63) // 64 * 64
    qs = [math.floor((fy * s["dil"] - s["pad_top"]) / sh) for fy in range(kh)]
    qspan, rb = max(qs) - min(qs), R // 8

    def plane(nb):
        return (sh * (nb + qspan) * rb + 7) // 8 * 8

    unit = 128 // R if R <= 128 else 1
    nb = s["out_h"]
    if s["out_h"] * R > 128 and kw * cg * plane(nb) > Y_BUDGET:
        nb = unit
        while nb + unit <= s["out_h"] and kw * cg * plane(nb + unit) <= Y_BUDGET:
            nb += unit
        nb = min(nb, s["out_h"])
    nbands = (s["out_h"] + nb - 1) // nb
    band_bits = nb * R
    G = 1 if band_bits > 64 else 2 if band_bits > 32 else 4
    nv = (band_bits + 127) // 128 if G == 1 else 1
    groups, P = s["groups"], s["out_h"] * s["out_w"]
    rows = nbands * (nb + qspan) * sh
    f = dict.fromkeys(("tr_chunks", "tr_bytes", "ext_rows", "direct_rows", "stage_rows", "stage_planes", "hb",
                       "count1", "count2", "count4", "chan_vec", "outputs16", "setup"), 0.0)
    f["tr_chunks"] = rows * ((s["w"] + 7) // 8 + s["sw"] - 1) * ((cg + 127) // 128) * groups
    f["tr_bytes"] = rows * s["w"] * ((cg + 7) // 8) * groups
    direct = R == 8 and (s["w"] + s["sw"] - 1) // s["sw"] <= 8 and s["w"] >= s["sw"]
    if direct and plane(nb) <= 16:
        f["stage_rows"] = rows * kw * cg * groups
        f["stage_planes"] = nbands * kw * cg * groups
    else:
        f["direct_rows" if direct else "ext_rows"] = rows * kw * cg * groups
    f["hb"] = rows * s["out_w"] * kw + P * kh
    f["count%d" % G] = conns * nv * nbands / G
    f["chan_vec"] = math.ceil(og / (16.0 * G)) * groups * nv * nbands
    f["outputs16"] = P * math.ceil(og / 16.0) * groups
    f["setup"] = P + nbands * groups * 64
    return f


def coefficients_in_source():
    """The k* constants of sparse_select.cc."""
    src = open(os.path.join(HERE, "..", "..", "tflite", "core", "sparse_select.cc")).read()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"\b(k[A-Z]\w*) = ([0-9.eE+-]+)", src)}


def dense_model(s):
    P = s["out_h"] * s["out_w"]
    taps = s["kh"] * s["kw"]
    words = (s["c"] + 31) // 32
    k64 = taps * math.ceil(words / 2.0)
    tiles = math.ceil(P / 4) * math.ceil(s["o"] / 8.0)
    return tiles * (DENSE_COEF["tile"] + DENSE_COEF["tile_k"] * k64) + P * (
        DENSE_COEF["pixel"] + DENSE_COEF["pixel_word"] * taps * words)


def points(doc):
    """(layer spec, gen, sparsity, connections, max_conns, dense cycles, sparse result)."""
    specs = {l[0]: l for net in arm_cost.NETWORKS.values() for l in net}
    dense = {}
    for r in doc["results"]:
        if r["kernel"] == DENSE:
            dense[r["layer"]] = r["cycles"][CPU]
    out = []
    for r in doc["results"]:
        if r["kernel"] != SPARSE or r["layer"] not in dense:
            continue
        if "max_conns" not in r:
            sys.exit("%s: no max_conns in the results (rerun arm_cost.py on this commit)" % r["layer"])
        out.append((specs[r["layer"]], r["gen"], r["sparsity"], r["connections"], r["max_conns"],
                    dense[r["layer"]], r))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="arm_cost.py --json output (dot, NEON kernels, ResNet-18)")
    ap.add_argument("--write-table", metavar="PATH", help="write the measured table (.inc) here")
    ap.add_argument("--evaluate", action="store_true",
                    help="no fit: rate the run's points with sparse_select.cc's coefficients")
    args = ap.parse_args(argv)
    doc = json.load(open(args.json))
    if doc.get("output", "dot") != "dot":
        sys.exit("the cost model is fitted to the kernels' dot runs (--output dot)")
    pts = points(doc)
    if not pts:
        sys.exit("no %s / %s results in %s" % (SPARSE, DENSE, args.json))
    feats = [features(layer_shape(p[0][1], p[0][3], p[0][4], p[0][5], p[0][6]), p[3], p[4]) for p in pts]
    coef = coefficients_in_source() if args.evaluate else {}
    for stages, names, consts in () if args.evaluate else GROUPS:
        A = np.array([[f[n] for n in names] for f in feats])
        y = np.array([sum(p[6]["stage_cycles"][CPU].get(st, 0.0) for st in stages) for p in pts])
        keep = A.any(axis=0)
        x = np.zeros(len(names))
        x[keep], _ = nnls(A[:, keep], y)
        for c, v in zip(consts, x):
            coef[c] = v
    print("// Cost model coefficients (cycles per unit, see estimate_neon_bconv2d_cost).")
    for stages, names, consts in GROUPS:
        print("// %s: %s" % ("+".join(stages), ", ".join("%s = %.4g" % (c, coef[c]) for c in consts)))
    errs = []
    rows = []
    for p, f in zip(pts, feats):
        spec, gen, sp, conns, maxc, dense_cyc, r = p
        s = layer_shape(spec[1], spec[3], spec[4], spec[5], spec[6])
        sparse_model = sum(coef[c] * f[n] for _, names, consts in GROUPS for n, c in zip(names, consts))
        dm = dense_model(s)
        measured, model = r["cycles"][CPU] / dense_cyc, sparse_model / dm
        errs.append(abs(model / measured - 1))
        print("%-18s %-9s %.2f  measured %.3f  model %.3f  (%+.1f%%; dense model %+.1f%%)"
              % (spec[0], gen, sp, measured, model, 100 * (model / measured - 1), 100 * (dm / dense_cyc - 1)))
        rows.append("{%d, %d, %d, %d, %.2f, %d, %d, %.0f, %.0f},  // %s %s"
                    % (spec[1], spec[3], spec[4], spec[6], sp, conns, maxc, dense_cyc, r["cycles"][CPU], spec[0], gen))
    print("modelled sparse/dense within %.1f%% of the measured ratio (mean %.1f%%) on %d points"
          % (100 * max(errs), 100 * sum(errs) / len(errs), len(errs)))
    if args.write_table:
        with open(args.write_table, "w") as fh:
            fh.write("// {h, c, o, stride, sparsity, connections, max_conns, dense cycles, sparse cycles}: "
                     "Bernoulli\n// and K0/K1 filters of the instruction-count benchmark (llvm-mca "
                     "Neoverse-N1 model cycles;\n// benchmarks/arm_cost/fit_neon_cost.py, commit %s).\n"
                     % doc.get("commit", "?"))
            fh.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
