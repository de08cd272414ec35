"""Fuzzing against the real runtimes: mutated models through stock TFLite + our delegate.

The libFuzzer harnesses of ``tflite/fuzz/`` drive the delegate through a stand-in
for TFLite; this one runs the real interpreters, so it reaches what the stand-in
does not model (TFLite's graph partitioner, XNNPACK's reshape, re-allocation after
a failed prepare). Each execution takes a seed model (a converted ``.tflite`` from
the test goldens), applies 1-3 structure-aware mutations (``mutate.Mutator``:
graph edits, tensor shapes/types/quantization, flexbuffer option maps: keys, types,
values and byte widths, SBF1 headers and payloads, constants) and runs the file in
a worker subprocess through:

- ``tf`` / ``litert``: ``check_model`` then ``tf.lite.Interpreter`` or
  ``ai_edge_litert``'s interpreter with ``load_delegate()`` (what a user who screens
  a file does);
- ``sbnn``: ``sbnn_keras.Interpreter``.

A process death or hang is re-run alone, then under gdb for a native backtrace, and
triaged: *ours* when the crashing frame is in ``libsbnn_delegate.so`` (or our
Python), *stock* otherwise (TFLite, XNNPACK, LiteRT). Each crashing file is kept in
``--findings``. Exit status 1 when a crash reproduces alone (one that does not was
left behind by an earlier execution and is only reported).

    python scripts/reliability/fuzz_runtime.py --seconds 300 --findings /tmp/findings
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import mutate as mu  # noqa: E402
import runner  # noqa: E402

SEED_GLOBS = ("tests/golden/e2e/vgg-*.tflite", "tests/golden/e2e/resnet-*.tflite",
              "tests/golden/e2e/quicknet-*.tflite", "tests/golden/e2e/grouped-*.tflite",
              "tests/golden/runtime/*.tflite")


def seeds() -> list:
    files = sorted({p for g in SEED_GLOBS for p in ROOT.glob(g)})
    return [(p.name, p.read_bytes()) for p in files]


def triage(trace: str) -> str:
    frames = runner.top_frames(trace)
    if not frames:
        return "unknown"
    lib = frames[0][1]
    if "sbnn" in lib:
        return "ours"
    return "stock"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--max-execs", type=int, default=0, help="stop after this many executions (0: no limit)")
    ap.add_argument("--paths", default="tf,litert,sbnn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--work", default="/tmp/sbnn-fuzz-runtime")
    ap.add_argument("--findings", default=None, help="directory for crashing files (default: WORK/findings)")
    ap.add_argument("--no-gdb", action="store_true", help="skip the backtraces")
    ap.add_argument("--json", help="write the summary here")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.work)
    (work / "cur").mkdir(parents=True, exist_ok=True)
    findings = Path(args.findings or work / "findings")
    findings.mkdir(parents=True, exist_ok=True)
    corpus = seeds()
    mutator = mu.Mutator(rng)
    paths = args.paths.split(",")
    counts = collections.defaultdict(collections.Counter)
    crashes = []
    worker = runner.Worker(str(work / "worker.log"))
    t0 = time.time()
    execs = 0
    try:
        while time.time() - t0 < args.seconds and not (args.max_execs and execs >= args.max_execs):
            name, base = rng.choice(corpus)
            try:
                data, done = mutator.mutate(base)
            except Exception as err:  # noqa: BLE001 - a mutation the object API cannot write
                counts["mutator"][type(err).__name__] += 1
                continue
            f = work / "cur" / f"{execs % 64}.tflite"
            f.write_bytes(data)
            for p in paths:
                job = {"id": execs, "file": str(f), "path": p, "action": rng.choice(["run", "run", "empty_batch"])}
                r = worker.run(job, args.timeout)
                execs += 1
                counts[p][r["outcome"]] += 1
                if r["outcome"] in ("death", "hang", "unclean"):
                    digest = hashlib.sha1(data).hexdigest()[:12]
                    keep = findings / f"{p}-{r['outcome']}-{digest}.tflite"
                    keep.write_bytes(data)
                    rec = {"file": str(keep), "seed": name, "mutations": done, "path": p,
                           "action": job["action"], "outcome": r["outcome"], "detail": r.get("detail", "")}
                    if r["outcome"] in ("death", "hang"):
                        alone = runner.Worker(str(work / "worker.log"))
                        try:
                            rec["isolated"] = alone.run(dict(job, file=str(keep)), args.timeout)["outcome"]
                        finally:
                            alone.kill()
                        if rec["isolated"] == "death" and not args.no_gdb:
                            trace = runner.backtrace(dict(job, file=str(keep)))
                            rec["backtrace"] = trace
                            rec["owner"] = triage(trace)
                    keep.with_suffix(".json").write_text(json.dumps(rec, indent=1))
                    crashes.append(rec)
                    print(f"  {r['outcome']} on {p} ({job['action']}): {name} + {done}"
                          f" -> {keep.name} alone={rec.get('isolated')} owner={rec.get('owner')}", flush=True)
    finally:
        worker.kill()
    seconds = time.time() - t0
    summary = {"seconds": seconds, "executions": execs, "paths": paths, "seed": args.seed,
               "outcomes": {p: dict(c) for p, c in counts.items()},
               "crashes": [{k: v for k, v in c.items() if k != "backtrace"} for c in crashes],
               "ours": sum(1 for c in crashes if c.get("owner") == "ours")}
    print(f"{execs} executions in {seconds:.0f} s; outcomes: {summary['outcomes']}")
    print(f"crashes: {len(crashes)} ({summary['ours']} ours)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    # A crash that does not happen again in a fresh process came from heap damage an
    # earlier execution left in the worker: it is reported (and its file kept), but only
    # a crash that reproduces alone fails the run, since the damaging input is unknown.
    return 1 if any(c.get("isolated") in ("death", "hang") for c in crashes) else 0


if __name__ == "__main__":
    sys.exit(main())
