"""The runtime's commands: ``python -m sbnn_runtime inspect|bench MODEL.tflite``.

They need only the runtime (no TensorFlow); ``sbnn-keras`` (``sbnn_keras.cli``) offers
the same two commands next to ``convert`` and ``demo`` and builds on this module.

Exit codes: 0 success, 1 a user error (one line on stderr starting with
``PROG: error:``), 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "CliError", "add_inspect", "add_bench"]

PROG = "python -m sbnn_runtime"


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def require_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{what} {path!r} does not exist")
    return p


def is_tflite(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) == 8 and head[4:8] == b"TFL3"


def inspect_tflite(path: Path, as_json: bool) -> int:
    from sbnn_runtime.inspection import format_inspection, inspect

    try:
        info = inspect(path)
    except ValueError as err:
        raise CliError(str(err).splitlines()[0]) from None
    print(json.dumps(info, indent=2) if as_json else format_inspection(info))
    return 0


def cmd_inspect(args) -> int:
    path = require_file(args.path, "file")
    if not is_tflite(path):
        raise CliError(f"{args.path!r} is not a .tflite file")
    return inspect_tflite(path, args.json)


def add_inspect(sub, command=cmd_inspect, what="a .tflite"):
    p = sub.add_parser("inspect", help=f"ops and bits/weight of {what}")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=command)
    return p


def bench_rows(data: bytes, args, others=()) -> list:
    """Rows of ``bench``: the sbnn runtime, then each ``(name, factory(threads))`` of others."""
    from sbnn_runtime.benchmark import random_input, time_predict
    from sbnn_runtime.interpreter import Interpreter

    progress = None
    if not args.quiet:
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is optional for the runtime
            tqdm = None
        if tqdm is not None:
            def progress(it, desc):
                return tqdm(it, desc=desc, leave=False)
    rows = []
    for threads in args.threads:
        candidates = [("sbnn", lambda t=threads: Interpreter(data, num_threads=t))]
        candidates += [(name, lambda t=threads, f=factory: f(data, t)) for name, factory in others]
        for name, factory in candidates:
            try:
                interp = factory()
            except Exception as err:  # any runtime failure becomes a row, not a crash
                rows.append({"runtime": name, "threads": threads, "error": str(err).splitlines()[0]})
                continue
            x = random_input(input_shape(interp))
            wrap = None if progress is None else (lambda it, n=name, t=threads: progress(it, f"{n} x{t}"))
            rows.append({"runtime": name, "threads": threads,
                         **time_predict(interp.predict, x, args.runs, args.warmup, wrap)})
    return rows


def input_shape(interp):
    details = interp.input_details if hasattr(interp, "input_details") else None
    if isinstance(details, list) and details and isinstance(details[0], dict):
        return details[0]["shape"]
    return interp.input_shapes[0]


def print_bench(path: Path, rows: list, json_path) -> None:
    print(f"{'runtime':<8} {'threads':>7} {'median ms':>10} {'min ms':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['runtime']:<8} {r['threads']:>7}  error: {r['error']}")
        else:
            print(f"{r['runtime']:<8} {r['threads']:>7} {r['median_ms']:>10.3f} {r['min_ms']:>8.3f}")
    if json_path:
        Path(json_path).write_text(json.dumps({"model": str(path), "rows": rows}, indent=2) + "\n")


def read_tflite_arg(model: str) -> tuple[Path, bytes]:
    path = require_file(model, "model")
    if not is_tflite(path):
        raise CliError(f"{model!r} is not a .tflite file")
    return path, path.read_bytes()


def cmd_bench(args) -> int:
    path, data = read_tflite_arg(args.model)
    print_bench(path, bench_rows(data, args), args.json)
    return 0


def add_bench(sub, command=cmd_bench, help="latency of a .tflite with the sbnn runtime"):
    p = sub.add_parser("bench", help=help)
    p.add_argument("model")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=command)
    return p


def check_bench_args(parser, args) -> None:
    """Usage errors of ``bench`` (exit code 2, like argparse's own)."""
    if args.runs < 1:
        parser.error(f"argument --runs: must be >= 1, got {args.runs}")
    if args.warmup < 0:
        parser.error(f"argument --warmup: must be >= 0, got {args.warmup}")
    if any(t < 1 or t > 64 for t in args.threads):
        parser.error(f"argument --threads: each must be in 1..64, got {args.threads}")


def run(parser, argv, prog: str, prepare=None) -> int:
    """Parses ``argv``, calls ``prepare(args)`` if given, and runs the chosen command's
    ``func``; a CliError becomes one line on stderr and exit code 1."""
    args = parser.parse_args(argv)
    if args.command == "bench":
        check_bench_args(parser, args)
    if prepare is not None:
        prepare(args)
    try:
        return args.func(args)
    except CliError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Inspect and time converted SBNN models.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_inspect(sub)
    add_bench(sub)
    return parser


def main(argv=None) -> int:
    """``python -m sbnn_runtime inspect MODEL.tflite [--json]`` or ``bench MODEL.tflite
    [--threads N ...] [--runs N] [--warmup N] [--json PATH] [-q]``; returns the exit code."""
    return run(build_parser(), argv, PROG)
