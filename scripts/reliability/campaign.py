"""The reliability campaign's reproducer set: every mutation class, every runtime path.

Rebuilds, deterministically, the hostile-user campaign of docs/reliability.md on the
``lce`` and ``sparse`` conversions of a VGG-like and a ResNet-like model (the
end-to-end tests' golden files), writes each mutated file to a directory and runs it
through every path of ``runner.py`` (``sbnn_keras.Interpreter``, stock
``tf.lite.Interpreter`` and ``ai_edge_litert`` + ``load_delegate()``, the CLI's
``inspect`` and ``bench``), each in a worker subprocess; prints the counts per
outcome (ok / error / unclean / death / hang) per path and per class, and saves
every result as JSON.

    python scripts/reliability/campaign.py --out /tmp/campaign          # everything
    python scripts/reliability/campaign.py --per-class 5 --paths sbnn,tf  # a quick subset

Exit status 1 if any job died, hung or ended in an unclean error.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import mutate as mu  # noqa: E402
import runner  # noqa: E402

BASES = ("vgg-lce", "vgg-sparse", "resnet-lce", "resnet-sparse")
BCONV = ("LceBconv2d", "SbnnBconv2d")
CLASSES = ("op_order", "strides", "empty_batch", "shapes", "types", "quantization",
           "indices", "opcodes", "option_values", "option_bytes", "sbf1", "huge_dims")


def base_models() -> dict:
    out = {}
    for name in BASES:
        arch, flavor = name.split("-")
        found = sorted((ROOT / "tests" / "golden" / "e2e").glob(f"{arch}-{flavor}-*.tflite"))
        if not found:
            raise SystemExit(f"no golden file for {name} (run tests/test_end_to_end.py once)")
        out[name] = found[0].read_bytes()
    return out


def _edit(data: bytes, fn) -> bytes:
    m = mu.read(data)
    fn(m)
    return mu.write(m)


def cases_for(base: bytes, rng: random.Random) -> dict:
    """class -> list of (name, make, action); make() gives the mutated bytes."""
    m0 = mu.read(base)
    sg = m0.subgraphs[0]
    n_ops, n_t, n_codes = len(sg.operators), len(sg.tensors), len(m0.operatorCodes)
    names = [mu.op_name(m0, op) for op in sg.operators]
    bconvs = [i for i, n in enumerate(names) if n in BCONV]
    pools = [i for i, n in enumerate(names) if n == "LceBMaxPool2d"]
    customs = [i for i, _ in mu.custom_ops(m0)]
    out = collections.defaultdict(list)

    def add(cls, name, fn, action="run"):
        out[cls].append((name, lambda: _edit(base, fn), action))

    # Op order and self-reads.
    for i in range(1, n_ops):
        add("op_order", f"swap_{i-1}_{i}", lambda m, i=i: mu.swap_ops(m, i - 1, i))
    for i in range(n_ops):
        for slot in range(len(sg.operators[i].inputs)):
            add("op_order", f"self_read_op{i}_in{slot}", lambda m, i=i, s=slot: mu.self_read(m, i, s))
        add("op_order", f"read_later_op{i}", lambda m, i=i: mu.read_later(m, i))

    # Strides, dilations, paddings and pool sizes.
    for i in bconvs + pools:
        keys = ["stride_height", "stride_width"] + (
            ["dilation_height_factor", "dilation_width_factor", "padding", "pad_values"]
            if i in bconvs else ["filter_height", "filter_width", "padding"])
        for key in keys:
            for v in (2, 3, 17, 33, 64, 65, 65536, 2**31 - 1):
                add("strides", f"op{i}_{key}_{v}", lambda m, i=i, k=key, v=v: mu.set_option(m, i, k, v))

    # Empty batch then predict: the unmodified model and some strided variants.
    out["empty_batch"].append(("unmodified", lambda: base, "empty_batch"))
    for i in bconvs[:2]:
        add("empty_batch", f"op{i}_stride_2", lambda m, i=i: mu.set_option(m, i, "stride_height", 2),
            "empty_batch")

    # Tensor shapes, types, quantization.
    tensors = list(range(n_t))
    for t in rng.sample(tensors, min(n_t, 60)):
        shape = list(sg.tensors[t].shape if sg.tensors[t].shape is not None else [])
        for k in range(len(shape)):
            v = rng.choice(mu.INTERESTING_DIMS[:10])
            s = shape[:]
            s[k] = v
            add("shapes", f"t{t}_dim{k}_{v}", lambda m, t=t, s=s: mu.set_shape(m, t, s))
        add("shapes", f"t{t}_rank_up", lambda m, t=t, s=shape: mu.set_shape(m, t, s + [1]))
        if shape:
            add("shapes", f"t{t}_rank_down", lambda m, t=t, s=shape: mu.set_shape(m, t, s[:-1]))
        for code in rng.sample(mu.TENSOR_TYPES, 3):
            if code != sg.tensors[t].type:
                add("types", f"t{t}_type{code}", lambda m, t=t, c=code: mu.set_type(m, t, c))
        for label, scale, zp in (("zero_scale", [0.0], [0]), ("nan_scale", [float("nan")], [0]),
                                 ("inf_scale", [float("inf")], [0]), ("neg_scale", [-1.0], [0]),
                                 ("zp_300", [0.1], [300]), ("per_axis_3", [0.1] * 3, [0] * 3)):
            if rng.random() < 0.5:
                add("quantization", f"t{t}_{label}",
                    lambda m, t=t, s=scale, z=zp: mu.set_quantization(m, t, s, z))

    # Op input / output indices.
    for i in range(n_ops):
        op = sg.operators[i]
        for slot in range(len(op.inputs) + 1):
            for v in (-1, n_t, 2**31 - 1, rng.randrange(n_t)):
                add("indices", f"op{i}_in{slot}_{v}", lambda m, i=i, s=slot, v=v: mu.set_input(m, i, s, v))
        for v in (-1, n_t, int(op.inputs[0]) if len(op.inputs) else 0):
            add("indices", f"op{i}_out0_{v}", lambda m, i=i, v=v: mu.set_output(m, i, 0, v))
        add("indices", f"op{i}_drop_input", lambda m, i=i: mu.drop_input(m, i))

    # Opcode swaps.
    for i in range(n_ops):
        for k in range(n_codes):
            if k != sg.operators[i].opcodeIndex and (i in customs or rng.random() < 0.3):
                add("opcodes", f"op{i}_code{k}", lambda m, i=i, k=k: mu.set_opcode(m, i, k))

    # Custom option values (every key, interesting values, other encodings and widths).
    for i in customs:
        keys = sorted(mu.options(sg.operators[i]))
        for key in keys:
            for v in rng.sample(mu.INTERESTING_INTS, 8):
                add("option_values", f"op{i}_{key}_{v}", lambda m, i=i, k=key, v=v: mu.set_option(m, i, k, v))
            for enc in ("uint", "indirect_int", "float", "bool", "string", "null", "vector", "map"):
                add("option_values", f"op{i}_{key}_as_{enc}",
                    lambda m, i=i, k=key, e=enc: mu.set_option(m, i, k, 1, e))
            add("option_values", f"op{i}_{key}_dropped", lambda m, i=i, k=key: mu.drop_option(m, i, k))
            add("option_values", f"op{i}_{key}_renamed", lambda m, i=i, k=key: mu.rename_option(m, i, k, k + "_"))
        for w in (2, 4, 8):
            add("option_values", f"op{i}_width{w}", lambda m, i=i, w=w: mu.reencode_options(m, i, w))

    # Custom option bytes: flips, truncations, junk.
    for i in customs:
        raw = bytes(bytearray(sg.operators[i].customOptions))
        for p in rng.sample(range(len(raw)), min(len(raw), 6)):
            b = bytearray(raw)
            b[p] ^= 1 << rng.randrange(8)
            add("option_bytes", f"op{i}_flip{p}", lambda m, i=i, b=bytes(b): mu.raw_options(m, i, b))
        for n in (0, 1, 3, len(raw) // 2, len(raw) - 1):
            add("option_bytes", f"op{i}_trunc{n}", lambda m, i=i, b=raw[:n]: mu.raw_options(m, i, b))
        add("option_bytes", f"op{i}_junk", lambda m, i=i: mu.raw_options(m, i, bytes(range(40))))

    # SBF1 headers, payloads, truncations.
    for i, t, data in mu.sbf1_filters(m0)[:4]:
        for field, (off, fmt) in mu.SBF1_FIELDS.items():
            for v in (0, 1, 2, 25, 2**16, 2**26, 2**31 - 1, 2**32 - 1):
                add("sbf1", f"op{i}_{field}_{v}",
                    lambda m, t=t, d=mu.sbf1_set_field(data, off, fmt, v): mu.set_buffer(m, t, d))
        for p in rng.sample(range(32, len(data)), min(len(data) - 32, 12)):
            b = bytearray(data)
            b[p] ^= 1 << rng.randrange(8)
            add("sbf1", f"op{i}_payload_flip{p}", lambda m, t=t, d=bytes(b): mu.set_buffer(m, t, d))
        for n in (0, 16, 31, 32, 33, len(data) // 2, len(data) - 1):
            add("sbf1", f"op{i}_trunc{n}",
                lambda m, t=t, d=data[:n]: (mu.set_buffer(m, t, d), mu.set_shape(m, t, [len(d)])))

    # Huge dimensions of the model input and of intermediate tensors.
    x = int(sg.inputs[0])
    shape = list(sg.tensors[x].shape)
    for s in ([1, 65536, 65536, shape[-1]], [2**20] + shape[1:], [1, 2**16, shape[2], shape[3]],
              [1, shape[1], shape[2], 2**24], [2**31 - 1] + shape[1:]):
        add("huge_dims", f"input_{'x'.join(map(str, s))}", lambda m, s=s: mu.set_shape(m, x, s))
    for i in bconvs[:3]:
        out_t = int(sg.operators[i].outputs[0])
        o_shape = list(sg.tensors[out_t].shape)
        for k, v in ((1, 2**20), (2, 2**20), (3, 2**20)):
            s = o_shape[:]
            s[k] = v
            add("huge_dims", f"op{i}_out_dim{k}_{v}", lambda m, t=out_t, s=s: mu.set_shape(m, t, s))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/sbnn-campaign", help="directory for the case files and results")
    ap.add_argument("--paths", default=",".join(runner.PATHS), help=f"comma list of {runner.PATHS}")
    ap.add_argument("--classes", default=",".join(CLASSES))
    ap.add_argument("--models", default=",".join(BASES))
    ap.add_argument("--per-class", type=int, default=0, help="at most this many cases per class and model (0: all)")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds before a job counts as a hang")
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args(argv)
    paths = args.paths.split(",")
    classes = args.classes.split(",")
    out = Path(args.out)
    (out / "cases").mkdir(parents=True, exist_ok=True)

    jobs = []
    bases = base_models()
    for model in args.models.split(","):
        rng = random.Random(f"{args.seed}-{model}")
        per = cases_for(bases[model], rng)
        for cls in classes:
            chosen = per.get(cls, [])
            if args.per_class and len(chosen) > args.per_class:
                chosen = random.Random(f"{args.seed}-{model}-{cls}").sample(chosen, args.per_class)
            for name, make, action in chosen:
                try:
                    data = make()
                except Exception as err:  # noqa: BLE001 - an edit the object API cannot write
                    print(f"  skipped {cls}/{name}: {type(err).__name__}: {err}", file=sys.stderr)
                    continue
                f = out / "cases" / f"{model}.{cls}.{name}.tflite"
                f.write_bytes(data)
                for p in paths:
                    jobs.append({"id": len(jobs), "file": str(f), "path": p, "action": action,
                                 "model": model, "class": cls, "case": name})
    n_cases = len({j["file"] for j in jobs})
    print(f"{n_cases} cases x {len(paths)} paths = {len(jobs)} jobs", flush=True)

    t0 = time.time()

    def progress(n, r):
        if r["outcome"] in ("death", "hang", "unclean"):
            print(f"  [{n}] {r['outcome']:8} {r['path']:16} {Path(r['file']).name}: {r.get('detail', '')[:160]}"
                  + (f" (alone: {r.get('isolated')})" if "isolated" in r else ""), flush=True)
        if n % 500 == 0:
            print(f"  {n}/{len(jobs)} jobs, {time.time() - t0:.0f} s", flush=True)

    results = runner.run_jobs(jobs, str(out / "worker.log"), args.timeout, progress)
    seconds = time.time() - t0

    by_path = collections.defaultdict(collections.Counter)
    by_class = collections.defaultdict(collections.Counter)
    for r in results:
        by_path[r["path"]][r["outcome"]] += 1
        by_class[r["class"]][r["outcome"]] += 1
    kinds = ("ok", "error", "unclean", "death", "hang")
    print(f"\n{n_cases} cases, {len(results)} jobs, {seconds:.0f} s")
    print(f"{'path / class':<18}" + "".join(f"{k:>9}" for k in kinds))
    for table in (by_path, by_class):
        for key in sorted(table):
            print(f"{key:<18}" + "".join(f"{table[key][k]:>9}" for k in kinds))
        print()
    (out / "results.json").write_text(json.dumps(
        {"cases": n_cases, "jobs": len(results), "seconds": seconds,
         "by_path": by_path, "by_class": by_class, "results": results}, indent=1, default=dict))
    bad = sum(c[k] for c in by_path.values() for k in ("unclean", "death", "hang"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
