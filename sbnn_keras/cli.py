"""The ``sbnn-keras`` command: convert, inspect, bench, demo.

``--help``, ``inspect`` of a ``.tflite`` and ``bench`` import no TensorFlow (they run
on ``sbnn_runtime.cli``); ``convert``, ``inspect`` of a Keras model and ``demo`` load
the training side when they run. TensorFlow's log lines are shown with ``--verbose``.

Exit codes: 0 success, 1 a user error (missing file, wrong format, unsupported model;
one line on stderr starting with ``sbnn-keras: error:``), 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sbnn_runtime import cli as rcli
from sbnn_runtime.cli import CliError

__all__ = ["main"]

PROG = "sbnn-keras"


def _quiet_tensorflow(verbose: bool) -> None:
    """TensorFlow's C++ and Python log lines only with ``--verbose``."""
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _load_keras(path: str):
    import sbnn_keras

    p = rcli.require_file(path, "model")
    try:
        return sbnn_keras.load_model(str(p), compile=False)
    except Exception as err:  # Keras raises many types for unreadable files
        raise CliError(f"cannot load {path!r} as a Keras model ({type(err).__name__}: {err})".splitlines()[0]) from None


def cmd_convert(args) -> int:
    import sbnn_keras

    model = _load_keras(args.model)
    try:
        data, report = sbnn_keras.convert_with_report(
            model, flavor=args.flavor, float_layers=args.float_layer or ()
        )
    except sbnn_keras.ConversionError as err:
        raise CliError(str(err).splitlines()[0]) from None
    out = Path(args.output)
    out.write_bytes(data)
    if not args.quiet:
        report.print()
    if args.report_json:
        report.to_json(args.report_json)
    print(f"wrote {out} ({len(data):,} bytes)")
    return 0


def cmd_inspect(args) -> int:
    path = rcli.require_file(args.path, "file")
    if rcli.is_tflite(path):
        return rcli.inspect_tflite(path, args.json)
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


def _lce_interpreter(data: bytes, threads: int):
    from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

    return LceInterpreter(data, num_threads=threads)


def cmd_bench(args) -> int:
    path, data = rcli.read_tflite_arg(args.model)
    others = [] if args.no_lce else [("lce", _lce_interpreter)]
    rcli.print_bench(path, rcli.bench_rows(data, args, others), args.json)
    return 0


def cmd_demo(args) -> int:
    from sbnn_zoo import demo

    return int(demo.main(args.demo_args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Sparse binary neural networks: convert, inspect, bench.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show TensorFlow's log lines")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="Keras model (.keras/.h5/SavedModel) -> .tflite, with the conversion report")
    p.add_argument("model", help="saved Keras model")
    p.add_argument("-o", "--output", required=True, help="the .tflite to write")
    p.add_argument("--flavor", choices=["lce", "sparse", "auto"], default="lce")
    p.add_argument("--float-layer", action="append", help="binary layer to keep float on purpose (repeatable)")
    p.add_argument("--report-json", help="also write the conversion report as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the report")
    p.set_defaults(func=cmd_convert)

    rcli.add_inspect(sub, cmd_inspect, what="a Keras model (sparsity, K0/K1) or a .tflite")
    p = rcli.add_bench(sub, cmd_bench, help="latency of a .tflite with the project's runtime vs LCE's")
    p.add_argument("--no-lce", action="store_true", help="skip LCE's interpreter")

    p = sub.add_parser("demo", help="the Fashion-MNIST demo (python -m sbnn_zoo.demo)", add_help=False)
    p.add_argument("demo_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    """Run the ``sbnn-keras`` command (the console script); return its exit code.

    Commands (``sbnn-keras COMMAND --help`` lists every option):

    - ``convert MODEL -o OUT.tflite [--flavor lce|sparse|auto] [--float-layer NAME]
      [--report-json PATH] [-q]``: a saved Keras model (.keras, .h5, SavedModel) to
      .tflite, printing the conversion report.
    - ``inspect PATH [--json]``: connections, K0/K1, operations and bits/weight of a
      Keras model or a .tflite.
    - ``bench MODEL.tflite [--threads N ...] [--runs N] [--warmup N] [--no-lce]
      [--json PATH] [-q]``: latency with the project's runtime and with LCE's.
    - ``demo [ARGS]``: the Fashion-MNIST demo (``python -m sbnn_zoo.demo ARGS``).

    ``-v``/``--verbose`` before the command shows TensorFlow's log lines.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).
    """
    return rcli.run(build_parser(), argv, PROG, prepare=lambda args: _quiet_tensorflow(args.verbose))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
