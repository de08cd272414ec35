"""``sbnn-runtime`` / ``python -m sbnn_runtime``: inspect and bench a converted model on
the device, with the runtime alone (no TensorFlow, Keras or LCE needed).

    sbnn-runtime inspect model.tflite [--json]
    sbnn-runtime bench model.tflite [--threads 1 2 4] [--float-model float.tflite]

Exit codes: 0 success, 1 an error (one line on stderr) or a failed runtime in bench,
2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "sbnn-runtime"


def _inspect(args) -> int:
    from sbnn_runtime import Interpreter
    from sbnn_runtime.bench import interpreter_backend
    from sbnn_runtime.inspection import summarize

    path = Path(args.model)
    if not path.is_file():
        raise ValueError(f"model {args.model!r} does not exist")
    content = path.read_bytes()
    summary = summarize(content, str(path))
    backend = interpreter_backend()
    interp = Interpreter(content, num_threads=args.threads, kernel=args.kernel, runtime=backend)
    info = {
        "model": str(path),
        "size_bytes": summary["size_bytes"],
        "op_counts": summary["op_counts"],
        "binary_filters": summary["binary_filters"],
        "inputs": [[int(s) for s in d["shape"]] for d in interp.input_details],
        "outputs": [[int(s) for s in d["shape"]] for d in interp.output_details],
        "interpreter": backend,
        "delegate": interp.describe(),
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{path}: {len(content):,} bytes, inputs {info['inputs']}, outputs {info['outputs']}")
    for name, n in sorted(info["op_counts"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:>4} x {name}")
    print(f"delegate ({backend}):")
    print("  " + info["delegate"].strip().replace("\n", "\n  "))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from sbnn_runtime import bench

    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("inspect", help="ops of a .tflite and what the delegate runs")
    i.add_argument("model")
    i.add_argument("--threads", type=int, default=1)
    i.add_argument("--kernel", default="auto")
    i.add_argument("--json", action="store_true")
    b = sub.add_parser("bench", help="latency: sbnn delegate vs LCE's fastest vs XNNPACK float")
    bench.add_arguments(b)
    return p


def main(argv=None) -> int:
    from sbnn_runtime import bench

    args = build_parser().parse_args(argv)
    try:
        if args.command == "inspect":
            return _inspect(args)
        msg = bench.validate(args)
        if msg:
            raise ValueError(msg)
        return bench.execute(args)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"{PROG}: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
