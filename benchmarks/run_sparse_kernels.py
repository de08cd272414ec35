#!/usr/bin/env python3
"""Builds and runs sbnn_sparse_bench, prints Markdown tables, writes JSON to docs/data/.

    python3 benchmarks/run_sparse_kernels.py                  # build, run, print tables
    python3 benchmarks/run_sparse_kernels.py -- --min-time 1  # arguments for the binary
    python3 benchmarks/run_sparse_kernels.py --no-run         # tables from the JSON only
    python3 benchmarks/run_sparse_kernels.py --no-run --stat min  # minimum CPU times

Everything after ``--`` goes to the benchmark binary. Tables (CPU time medians, the
kernels interleaved in one run so that they see the same machine load):

1. per layer of binary ResNet-18 for 32x32 inputs, generator and sparsity: the best
   dense kernel, each sparse kernel, the speed-up of the best sparse kernel over dense,
   the ideal speed-up (dense weights / connections) and the fraction of it reached,
   and what select_bconv2d("auto") chose;
2. the network (16 binary 3x3 convs, each layer times its multiplicity): dense total,
   all-sparse total, and "auto" = each layer with the kernel select_bconv2d chose.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, cpu_model, git_commit, load_average, run  # noqa: E402


def short(name):
    """bconv2d_sparse_bitplane_512__avx512 -> bitplane avx512."""
    n = name.replace("bconv2d_sparse_", "").replace("bconv2d_dot_", "dense ")
    return n.replace("__", " ")


STAT = "cpu_ms"  # or "cpu_min_ms" (--stat min)


def per_layer_table(data):
    sparse_names = []
    for r in data["results"]:
        for k in r["kernels"][1:]:
            if k["name"] not in sparse_names:
                sparse_names.append(k["name"])
    head = ("| layer | filters | sparsity | dense ms | " +
            " | ".join(short(n) + " ms" for n in sparse_names) +
            " | speed-up | ideal | of ideal | auto |")
    lines = [head, "|---|---|---:|---:|" + "---:|" * len(sparse_names) + "---:|---:|---:|---|"]
    for r in data["results"]:
        dense = r["kernels"][0][STAT]
        cells, best = [], None
        for n in sparse_names:
            k = next((k for k in r["kernels"][1:] if k["name"] == n), None)
            if k is None:
                cells.append("")
                continue
            cells.append("%.4f" % k[STAT])
            if best is None or k[STAT] < best:
                best = k[STAT]
        ideal = 1.0 / r["density"] if r["density"] > 0 else float("inf")
        speed = dense / best if best else 0.0
        auto = short(r["auto"]) if r.get("auto") else ""
        lines.append("| %s | %s | %.2f | %.4f | %s | %.2fx | %.0fx | %.0f%% | %s |" % (
            r["layer"], r["gen"], r["sparsity"], dense, " | ".join(cells), speed, ideal,
            100.0 * speed / ideal, auto))
    return "\n".join(lines)


def kernel_ms(r, name):
    for k in r["kernels"]:
        if k["name"] == name:
            return k[STAT]
    return None


def network_table(data):
    groups = {}
    for r in data["results"]:
        groups.setdefault((r["gen"], r["sparsity"]), []).append(r)
    lines = ["| filters | sparsity | layers | dense ms | best sparse ms | speed-up | auto ms | "
             "auto speed-up | ideal |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (gen, sp), rows in sorted(groups.items()):
        dense = sum(r["count"] * r["kernels"][0][STAT] for r in rows)
        best = sum(r["count"] * min(k[STAT] for k in r["kernels"][1:]) for r in rows
                   if len(r["kernels"]) > 1)
        auto = 0.0
        for r in rows:
            t = kernel_ms(r, r.get("auto")) if r.get("auto") else None
            auto += r["count"] * (t if t is not None else r["kernels"][0][STAT])
        weights = sum(r["count"] * r["macs"] for r in rows)
        conns = sum(r["count"] * r["macs"] * r["density"] for r in rows)
        n = sum(r["count"] for r in rows)
        lines.append("| %s | %.2f | %d | %.4f | %.4f | %.2fx | %.4f | %.2fx | %.0fx |" % (
            gen, sp, n, dense, best, dense / best if best else 0.0, auto,
            dense / auto if auto else 0.0, weights / conns if conns else 0.0))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build", "sparse"))
    p.add_argument("--json", default=os.path.join(ROOT, "docs", "data", "sparse_kernels.json"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--no-run", action="store_true", help="only print the tables of --json")
    p.add_argument("--stat", choices=["median", "min"], default="median",
                   help="per-kernel statistic of the thread CPU times (default median)")
    p.add_argument("bench_args", nargs="*", help="arguments for sbnn_sparse_bench (after --)")
    a = p.parse_args()
    global STAT
    STAT = "cpu_min_ms" if a.stat == "min" else "cpu_ms"

    if not a.no_run:
        if not a.no_build:
            run(["cmake", "-S", os.path.join(ROOT, "tflite"), "-B", a.build_dir,
                 "-DCMAKE_BUILD_TYPE=Release", "-DSBNN_BUILD_BENCH=ON",
                 "-DSBNN_BUILD_TESTS=OFF"], stdout=subprocess.DEVNULL)
            run(["cmake", "--build", a.build_dir, "-j2", "--target", "sbnn_sparse_bench"],
                stdout=subprocess.DEVNULL)
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        commit = git_commit()
        load0 = load_average()
        cmd = [os.path.join(a.build_dir, "benchmarks", "sbnn_sparse_bench"), "--json", a.json,
               "--commit", commit] + a.bench_args
        run(cmd)
        with open(a.json) as f:
            data = json.load(f)
        data["lscpu_model"] = cpu_model()
        data["command"] = " ".join(["sbnn_sparse_bench"] + cmd[1:])
        data["load_average"] = [load0, load_average()]
        with open(a.json, "w") as f:
            json.dump(data, f, indent=1)
    with open(a.json) as f:
        data = json.load(f)
    print()
    print("Machine: %s; commit %s; %d thread(s); batch 1; load average %s; cells: %s "
          "thread CPU ms" % (data.get("lscpu_model", "?"), data.get("commit", "?"),
                             data.get("threads", 1), data.get("load_average"), a.stat))
    print()
    print(per_layer_table(data))
    print()
    print(network_table(data))


if __name__ == "__main__":
    main()
