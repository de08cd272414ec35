"""Summary of every Fashion-MNIST Table-1 run: mean and spread over seeds per row.

Reads ``docs/data/table1_*.json`` (the first runs) and
``docs/data/table1_seeds/*.json`` (``benchmarks/table1_seeds.sh``), groups them by
network and variant and prints the markdown tables of docs/results.md: one row per
(network, variant) with the seeds present, each seed's test accuracy, the mean,
the sample standard deviation (n >= 2) and the connections, and one row per file
with the commit and the CPU model its JSON records.

    python benchmarks/table1_summary.py            # the tables
    python benchmarks/table1_summary.py --json     # the same as JSON
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["bnn", "symmetric", "closed_form", "closed_form_centered", "learned"]
QUANTIZER = {"bnn": "`ste_sign`", "symmetric": "`sbnn_symmetric`", "closed_form": "`sbnn` (eq. 15)",
             "closed_form_centered": "`sbnn_centered` (this project's)", "learned": "`sbnn_learned`"}


def load():
    runs = []
    for f in sorted(glob.glob(str(ROOT / "docs/data/table1_*.json")) + glob.glob(str(ROOT / "docs/data/table1_seeds/*.json"))):
        d = json.loads(Path(f).read_text())
        if d.get("quick"):
            continue
        c = d["config"]
        runs.append({"file": str(Path(f).relative_to(ROOT / "docs")), "arch": c.get("arch", "cnn"),
                     "variant": d["variant"], "seed": c["seed"], "test_accuracy": d["test_accuracy"],
                     "val_accuracy": d.get("val_accuracy"), "connections": d["connections"],
                     "commit": d["machine"].get("commit", ""), "cpu": d["machine"].get("cpu", ""),
                     "epochs": c["epochs"]})
    return runs


def rows(runs):
    out = []
    for arch in ("cnn", "resnet"):
        for v in ORDER:
            sel = sorted((r for r in runs if r["arch"] == arch and r["variant"] == v), key=lambda r: r["seed"])
            if not sel:
                continue
            accs = [100 * r["test_accuracy"] for r in sel]
            out.append({"arch": arch, "variant": v, "seeds": [r["seed"] for r in sel], "test": accs,
                        "mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else None,
                        "connections": [r["connections"] for r in sel]})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    runs = load()
    table = rows(runs)
    if args.json:
        print(json.dumps({"rows": table, "runs": runs}, indent=1))
        return 0
    print("| Network | Variant (`--variant`) | Kernel quantizer | Seeds | Test accuracy per seed | Mean | Std | Connections |")
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        std = f"{r['std']:.2f}" if r["std"] is not None else "n/a (1 seed)"
        print(f"| {r['arch']} | `{r['variant']}` | {QUANTIZER[r['variant']]} | {', '.join(map(str, r['seeds']))} | "
              f"{' / '.join(f'{a:.2f}' for a in r['test'])} | {r['mean']:.2f} % | {std} | "
              f"{' / '.join(f'{c:.4f}' for c in r['connections'])} |")
    print()
    print("| JSON | Network | Variant | Seed | Test accuracy | Connections | Commit recorded | CPU recorded |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| [`{r['file']}`]({r['file']}) | {r['arch']} | `{r['variant']}` | {r['seed']} | "
              f"{100 * r['test_accuracy']:.2f} % | {r['connections']:.4f} | `{r['commit']}` | {r['cpu']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
