#!/usr/bin/env python3
"""Builds and runs sbnn_bconv_bench, then prints a Markdown table of the results.

    python3 benchmarks/run_bconv_kernels.py                 # build, run, print table
    python3 benchmarks/run_bconv_kernels.py --json out.json -- --min-time 1 --threads 2

Everything after ``--`` goes to the benchmark binary. The JSON (default
build/bench/bconv_kernels.json) records the CPU, the commit and every timing; the
Markdown table has one row per layer: the reference and the fastest kernel of each
instruction set, in milliseconds (median) with GBOPS.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, cpu_model, git_commit, run  # noqa: E402


def isa_of(kernel):
    return kernel.split("__", 1)[1] if "__" in kernel else kernel


def markdown(data):
    by_layer = {}
    for r in data["results"]:
        by_layer.setdefault((r["model"], r["layer"]), []).append(r)
    isas = []
    for r in data["results"]:
        isa = isa_of(r["kernel"])
        if isa not in isas:
            isas.append(isa)
    lines = ["| model | layer | MMACs | " + " | ".join(isas) + " | best vs reference |",
             "|---|---|---:|" + "---:|" * len(isas) + "---:|"]
    for (model, layer), rows in by_layer.items():
        cells = []
        best = None
        for isa in isas:
            cand = [r for r in rows if isa_of(r["kernel"]) == isa]
            if not cand:
                cells.append("")
                continue
            r = min(cand, key=lambda r: r["median_ms"])
            cells.append("%.3f ms (%.0f)" % (r["median_ms"], r["gbops"]))
            if best is None or r["median_ms"] < best["median_ms"]:
                best = r
        lines.append("| %s | %s | %.0f | %s | %.0fx |" % (
            model, layer, rows[0]["macs"] / 1e6, " | ".join(cells),
            best["speedup_vs_reference"]))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build", "core"))
    p.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "bconv_kernels.json"))
    p.add_argument("--no-build", action="store_true")
    p.add_argument("bench_args", nargs="*", help="arguments for sbnn_bconv_bench (after --)")
    a = p.parse_args()

    if not a.no_build:
        run(["cmake", "-S", os.path.join(ROOT, "tflite"), "-B", a.build_dir,
             "-DCMAKE_BUILD_TYPE=Release", "-DSBNN_BUILD_BENCH=ON",
             "-DSBNN_BUILD_TESTS=OFF"], stdout=subprocess.DEVNULL)
        run(["cmake", "--build", a.build_dir, "-j2", "--target", "sbnn_bconv_bench"],
            stdout=subprocess.DEVNULL)
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    commit = git_commit()
    cmd = [os.path.join(a.build_dir, "benchmarks", "sbnn_bconv_bench"), "--json", a.json,
           "--commit", commit] + a.bench_args
    run(cmd)
    with open(a.json) as f:
        data = json.load(f)
    data["lscpu_model"] = cpu_model()
    data["command"] = " ".join(["sbnn_bconv_bench"] + cmd[1:])
    with open(a.json, "w") as f:
        json.dump(data, f, indent=1)
    print()
    print("Machine: %s; commit %s; %d thread(s); cells: median ms (GBOPS)" % (
        data["lscpu_model"], commit, data["threads"]))
    print()
    print(markdown(data))


if __name__ == "__main__":
    main()
