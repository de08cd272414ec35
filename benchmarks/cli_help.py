"""Wall time of `--help` for every command and subcommand of the two CLIs (goal: < 1 s;
no TensorFlow import on these paths).

    python benchmarks/cli_help.py [--repeat 5] [--json docs/data/cli_help.json]

Each row runs a fresh `python -m ...` process `--repeat` times and reports the median
and the minimum; it also records whether the process imported TensorFlow (from
`python -X importtime`). Prints a table; the JSON keeps machine, commit and command.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = [
    ("sbnn-keras --help", ["-m", "sbnn_keras.cli", "--help"]),
    ("sbnn-keras convert --help", ["-m", "sbnn_keras.cli", "convert", "--help"]),
    ("sbnn-keras inspect --help", ["-m", "sbnn_keras.cli", "inspect", "--help"]),
    ("sbnn-keras bench --help", ["-m", "sbnn_keras.cli", "bench", "--help"]),
    ("sbnn-keras demo --help", ["-m", "sbnn_keras.cli", "demo", "--help"]),
    ("sbnn-runtime --help", ["-m", "sbnn_runtime", "--help"]),
    ("sbnn-runtime inspect --help", ["-m", "sbnn_runtime", "inspect", "--help"]),
    ("sbnn-runtime bench --help", ["-m", "sbnn_runtime", "bench", "--help"]),
]


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def measure(args, repeat):
    times, rc = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - t)
        rc |= r.returncode
    imp = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                         text=True, cwd=ROOT)
    tf = any(line.rsplit("|", 1)[-1].strip() == "tensorflow" for line in imp.stderr.splitlines())
    return {"median_s": statistics.median(times), "min_s": min(times), "exit": rc,
            "imports_tensorflow": tf}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rows = []
    print(f"{'command':<30} {'median s':>9} {'min s':>7} {'exit':>5}  TensorFlow imported")
    for name, cmd in COMMANDS:
        r = {"command": name, **measure(cmd, args.repeat)}
        rows.append(r)
        print(f"{name:<30} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {r['exit']:>5}  "
              f"{'yes' if r['imports_tensorflow'] else 'no'}")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": f"{platform.machine()} {platform.processor() or ''} "
                       f"{platform.python_version()}".strip(),
            "commit": _commit(),
            "command": "python benchmarks/cli_help.py " + " ".join(argv or sys.argv[1:]),
            "rows": rows}, indent=2) + "\n")
    slow = [r["command"] for r in rows if r["min_s"] >= 1.0 or r["exit"] != 0]
    if slow:
        print("over 1 s or failing:", ", ".join(slow))
    return 0


if __name__ == "__main__":
    sys.exit(main())
