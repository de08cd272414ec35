"""The ``sbnn-keras`` command: convert, inspect, bench, demo.

Exit codes: 0 success, 1 a user error (missing file, wrong format, unsupported model;
one line on stderr starting with ``sbnn-keras: error:``), 2 bad command-line usage.

Output files are never replaced silently: every output path is checked before any
work starts (not the input, not an existing file unless ``--force``, a writable
directory), and all outputs of a command are written to temporary files and renamed
into place together, so a failure leaves neither a half-written file nor half a set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

PROG = "sbnn-keras"


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


def _quiet_tensorflow(verbose: bool = False):
    """Silence TensorFlow's and absl's log lines (CUDA probing, SavedModel and
    "compiled metrics" warnings) unless --verbose; must run before TensorFlow loads.
    Errors the command reports itself are unaffected."""
    if verbose:
        return
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _require_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise CliError(f"{what} {path!r} does not exist")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _check_output(path, what: str, force: bool, inputs=()) -> Path:
    """Refuses an output path before any work: the input itself, an existing file
    without --force, a directory, or a place that cannot be written."""
    p = Path(path)
    for src in inputs:
        if _same_file(p, Path(src)):
            raise CliError(f"{what} {str(p)!r} is the input {str(src)!r}; choose another path")
    if p.is_dir():
        raise CliError(f"{what} {str(p)!r} is a directory")
    if p.exists() and not force:
        raise CliError(f"{what} {str(p)!r} exists; pass --force to replace it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"{what} {str(p)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CliError(f"{what} {str(p)!r}: directory {str(parent)!r} is not writable")
    return p


def _write_all(outputs) -> None:
    """Writes [(path, bytes)] atomically: every file goes to a temporary file in its
    directory first and the renames happen only once all of them are written, so a
    failure leaves neither a half-written file nor half of the set."""
    temps = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path, data in outputs:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            os.chmod(tmp, 0o666 & ~umask)  # what open() would have given, not mkstemp's 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    except OSError as err:
        raise CliError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _load_keras(path: str):
    import sbnn_keras

    p = _require_file(path, "model")
    try:
        return sbnn_keras.load_model(str(p), compile=False)
    except Exception as err:  # Keras raises many types for unreadable files
        raise CliError(f"cannot load {path!r} as a Keras model ({type(err).__name__}: {err})".splitlines()[0]) from None


def _is_tflite(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) == 8 and head[4:8] == b"TFL3"


def cmd_convert(args) -> int:
    _require_file(args.model, "model")
    out = _check_output(args.output, "output", args.force, inputs=[args.model])
    report_path = None
    if args.report_json:
        report_path = _check_output(args.report_json, "--report-json", args.force, inputs=[args.model])
        if _same_file(report_path, out):
            raise CliError(f"--report-json {args.report_json!r} is the output file too")
    import sbnn_keras

    model = _load_keras(args.model)
    try:
        data, report = sbnn_keras.convert_with_report(
            model, flavor=args.flavor, float_layers=args.float_layer or ()
        )
    except sbnn_keras.ConversionError as err:
        raise CliError(str(err).splitlines()[0]) from None
    outputs = [(out, data)]
    if report_path is not None:
        outputs.append((report_path, (report.to_json() + "\n").encode()))
    _write_all(outputs)
    if not args.quiet:
        report.print()
    print(f"wrote {out} ({len(data):,} bytes)")
    return 0


def _inspect_tflite(path: Path, as_json: bool) -> int:
    from sbnn_runtime.inspection import format_inspection, inspect

    try:
        info = inspect(path)
    except ValueError as err:
        raise CliError(str(err)) from None
    print(json.dumps(info, indent=2) if as_json else format_inspection(info))
    return 0


def cmd_inspect(args) -> int:
    path = _require_file(args.path, "file")
    if path.is_file() and _is_tflite(path):
        return _inspect_tflite(path, args.json)
    import sbnn_keras

    model = _load_keras(args.path)
    try:
        report = sbnn_keras.sparsity_report(model)
    except ValueError as err:
        raise CliError(str(err).splitlines()[0]) from None
    if args.json:
        print(report.to_json())
    else:
        report.print()
    return 0


def cmd_bench(args) -> int:
    from sbnn_runtime import bench

    path = _require_file(args.model, "model")
    if not (path.is_file() and _is_tflite(path)):
        raise CliError(f"{args.model!r} is not a .tflite file")
    if args.float_model is not None:
        fpath = _require_file(args.float_model, "--float-model")
        if not (fpath.is_file() and _is_tflite(fpath)):
            raise CliError(f"--float-model {args.float_model!r} is not a .tflite file")
    if not args.json:
        return _bench_status(bench.execute(args), args)
    inputs = [args.model] + ([args.float_model] if args.float_model is not None else [])
    json_path = _check_output(args.json, "--json", args.force, inputs=inputs)
    # bench writes its JSON to a temporary file that replaces --json only once written.
    fd, tmp = tempfile.mkstemp(prefix=f".{json_path.name}.", suffix=".tmp", dir=json_path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # what open() would have given, not mkstemp's 0600
    try:
        status = bench.execute(argparse.Namespace(**{**vars(args), "json": tmp}))
        os.replace(tmp, json_path)
    except OSError as err:
        raise CliError(f"cannot write {str(json_path)!r}: {err.strerror or err}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return _bench_status(status, args)


def _bench_status(status: int, args) -> int:
    """Exit 1 keeps the CLI's contract: one ``error:`` line on stderr (the table says
    which runtime failed and why)."""
    if status:
        raise CliError(f"a runtime that was asked for failed on {args.model!r} (see its row above)")
    return status


def cmd_demo(args) -> int:
    if {"-h", "--help"} & set(args.demo_args):
        from sbnn_zoo.recipe import parser

        parser().parse_args(args.demo_args)  # prints the help and exits, no TensorFlow
    from sbnn_zoo import demo

    return int(demo.main(args.demo_args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Sparse binary neural networks: convert, inspect, bench.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's and absl's log lines (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="Keras model (.keras/.h5/SavedModel) -> .tflite, with the conversion report")
    p.add_argument("model", help="saved Keras model")
    p.add_argument("-o", "--output", required=True, help="the .tflite to write")
    p.add_argument("--flavor", choices=["lce", "sparse", "auto"], default="lce")
    p.add_argument("--float-layer", action="append", help="binary layer to keep float on purpose (repeatable)")
    p.add_argument("--report-json", help="also write the conversion report as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the report")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("inspect", help="sparsity, K0/K1, ops and bits/weight of a Keras model or a .tflite")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("bench", help="latency: sbnn delegate vs LCE's fastest configuration (vs XNNPACK float)")
    from sbnn_runtime.bench import add_arguments as _bench_arguments

    _bench_arguments(p)
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="the Fashion-MNIST demo (python -m sbnn_zoo.demo)", add_help=False)
    p.add_argument("demo_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    """Run the ``sbnn-keras`` command (the console script); return its exit code.

    Commands (``sbnn-keras COMMAND --help`` lists every option):

    - ``convert MODEL -o OUT.tflite [--flavor lce|sparse|auto] [--float-layer NAME]
      [--report-json PATH] [-q] [--force]``: a saved Keras model (.keras, .h5,
      SavedModel) to .tflite, printing the conversion report. Existing outputs are
      replaced only with ``--force``, the input never.
    - ``inspect PATH [--json]``: connections, K0/K1, operations and bits/weight of a
      Keras model or a .tflite.
    - ``bench MODEL.tflite [--threads N ...] [--runs N] [--warmup N]
      [--lce auto|yes|no] [--float-model F.tflite] [--kernel K] [--json PATH] [-q]
      [--force]``:
      latency with the sbnn delegate, LCE's fastest configuration (XNNPACK + indirect
      BGEMM, in a child process; "not supported by LCE" for SbnnBconv2d files) and
      XNNPACK on a float model; exit 1 when a runtime that was asked for failed.
    - ``demo [ARGS]``: the Fashion-MNIST demo (``python -m sbnn_zoo.demo ARGS``).

    ``--verbose`` (before the command, or anywhere for ``demo``) shows TensorFlow's
    log lines, which are hidden by default.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_tensorflow("--verbose" in argv)  # demo --verbose too
    if argv[:1] == ["demo"] or argv[:2] == ["--verbose", "demo"]:
        # The demo parses its own arguments, --help included.
        rest = argv[argv.index("demo") + 1:]
        return cmd_demo(argparse.Namespace(demo_args=rest + (["--verbose"] if argv[0] == "--verbose" else [])))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        for name in ("runs", "warmup"):
            if getattr(args, name) < (1 if name == "runs" else 0):
                parser.error(f"argument --{name}: must be >= {1 if name == 'runs' else 0}, got {getattr(args, name)}")
        if any(t < 1 or t > 64 for t in args.threads):
            parser.error(f"argument --threads: each must be in 1..64, got {args.threads}")
    try:
        return args.func(args)
    except CliError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
