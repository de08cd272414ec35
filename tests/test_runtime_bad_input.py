"""Bad input for the sbnn delegate: a clear Python exception, never a crash.

Corrupted models (truncated files, mutated custom options, inconsistent shapes
and types, missing tensors) run in one subprocess, case after case, so that a
crash would show up as a signal (and name the case) instead of taking pytest
down; each case must end in an exception whose message names the problem.
Argument validation and the version gate run in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _runtime_helpers import (  # noqa: E402
    cached_convert,
    ops,
    read,
    set_options,
    sparsify_filters,
    write,
)
import tensorflow as tf  # noqa: E402

from sbnn_runtime import interpreter as runtime  # the module: monkeypatch its globals
from test_runtime_ops import build_bitpacked_chain, build_int8, build_quant  # noqa: E402


def _models():
    _, chain = cached_convert("bitpacked_chain", build_bitpacked_chain)
    _, int8 = cached_convert(
        "int8", build_int8, inference_input_type=tf.int8, inference_output_type=tf.int8
    )
    _, quant = cached_convert("quant", build_quant)
    return chain, int8, quant


def _mutate(fb, name, fn, which=0):
    """Applies fn(model, op) to the `which`-th op called `name`."""
    m = read(fb)
    _, op = ops(m, name)[which]
    fn(m, op)
    return write(m)


def _set_input(slot, value):
    def fn(m, op):
        inputs = list(op.inputs)
        inputs[slot] = value
        op.inputs = inputs

    return fn


def _tensor(m, index):
    return m.subgraphs[0].tensors[index]


def _set_shape(which_tensor, shape):
    """which_tensor(op) -> tensor index; sets that tensor's shape (and signature)."""

    def fn(m, op):
        t = _tensor(m, which_tensor(op))
        t.shape = list(shape)
        t.shapeSignature = None

    return fn


def _set_type(which_tensor, type_code):
    def fn(m, op):
        _tensor(m, which_tensor(op)).type = type_code

    return fn


def _bitpacked_conv_index(fb):
    """Index (among LceBconv2d ops) of the first one with bitpacked int32 output."""
    m = read(fb)
    for k, (_, op) in enumerate(ops(m, "LceBconv2d")):
        if _tensor(m, op.outputs[0]).type == 2:
            return k
    raise AssertionError("no bitpacked LceBconv2d")


def build_cases():
    """name -> (model bytes, substring the error message must contain, resize batch or None)."""
    chain, int8, quant = _models()
    bp = _bitpacked_conv_index(chain)
    cases = {}

    # Whole files.
    for n in (0, 8, 100, len(chain) // 2, len(chain) - 16):
        cases[f"truncated_{n}"] = (chain[:n], "", None)
    garbage = bytearray(chain)
    garbage[4:8] = b"XXXX"  # file identifier
    cases["bad_identifier"] = (bytes(garbage), "", None)

    # LceBconv2d options.
    for key, value, expect in [
        ("padding", 7, "padding"),
        ("padding", -1, "padding"),
        ("pad_values", 2, "pad_values"),
        ("stride_height", 0, "stride_height"),
        ("stride_width", -3, "stride_width"),
        ("dilation_height_factor", 0, "dilation_height_factor"),
        ("dilation_width_factor", 1 << 40, "dilation_width_factor"),
        ("channels_in", 1 << 30, "channels_in"),
        ("channels_in", 2**31 - 1, "channels_in"),
        ("channels_in", 0, "channels_in"),
        ("channels_in", 64, "channels_in"),  # the input has 2 words (40 channels)
        ("channels_in", 100, "words"),
        ("fused_activation_function", 9, "fused_activation_function"),
        ("channels_in", "forty", "channels_in"),
        ("stride_height", 1.5, "stride_height"),
    ]:
        cases[f"bconv_{key}_{value}"] = (
            set_options(chain, "LceBconv2d", **{key: value}),
            expect,
            None,
        )
    m = read(chain)
    from flatbuffers import flexbuffers

    _, op = ops(m, "LceBconv2d")[0]
    opts = flexbuffers.Loads(bytes(op.customOptions))
    del opts["stride_width"]
    cases["bconv_missing_stride_width"] = (
        set_options(chain, "LceBconv2d", raw=flexbuffers.Dumps(opts)),
        "stride_width",
        None,
    )
    for name, raw in [
        ("empty", b""),
        ("short", b"\x01\x02"),
        ("garbage", bytes(range(256)) * 2),
        ("not_a_map", flexbuffers.Dumps([1, 2, 3])),
        ("int_root", flexbuffers.Dumps(5)),
    ]:
        cases[f"bconv_options_{name}"] = (set_options(chain, "LceBconv2d", raw=raw), "option", None)
    valid_opts = bytes(op.customOptions)
    rng = np.random.default_rng(0)
    for k in range(12):  # random byte corruptions of a valid options buffer
        raw = bytearray(valid_opts)
        for pos in rng.integers(0, len(raw), size=3):
            raw[pos] = int(rng.integers(0, 256))
        cases[f"bconv_options_corrupt_{k}"] = (
            set_options(chain, "LceBconv2d", raw=bytes(raw)),
            None,
            None,
        )

    # LceBMaxPool2d options.
    for key, value in [
        ("filter_height", 0),
        ("filter_width", -2),
        ("stride_height", 0),
        ("padding", 3),
        ("filter_width", 1 << 20),
    ]:
        cases[f"bmaxpool_{key}_{value}"] = (
            set_options(chain, "LceBMaxPool2d", **{key: value}),
            key,
            None,
        )
    cases["bmaxpool_valid_window_too_big"] = (
        set_options(chain, "LceBMaxPool2d", padding=1, filter_height=50),
        "larger than",
        None,
    )

    # Shapes and types that do not match.
    conv_in = lambda op: op.inputs[0]  # noqa: E731
    conv_out = lambda op: op.outputs[0]  # noqa: E731
    # A consistent filter constant whose words per tap do not fit the input's.
    m = read(chain)
    wide = next(
        k
        for k, (_, op) in enumerate(ops(m, "LceBconv2d"))
        if _tensor(m, op.inputs[1]).shape[3] == 4
    )

    def filter_words(words):
        def fn(m, op):
            t = _tensor(m, op.inputs[1])
            t.shape = list(t.shape[:3]) + [words]
            n = int(np.prod(t.shape))
            m.buffers[t.buffer].data = np.zeros(n, np.int32).view(np.uint8)

        return fn

    cases["bconv_filter_words_not_dividing"] = (
        _mutate(chain, "LceBconv2d", filter_words(3), wide),
        "does not divide",
        None,
    )
    cases["bconv_groups_not_multiple_of_32"] = (
        _mutate(chain, "LceBconv2d", filter_words(2), wide),
        "groups of a multiple of 32",
        None,
    )
    m = read(chain)
    _, op = ops(m, "LceBconv2d")[bp]
    cases["bconv_threshold_missing"] = (
        _mutate(chain, "LceBconv2d", _set_input(4, -1), which=bp),
        "output_threshold",
        None,
    )
    cases["bconv_too_few_inputs"] = (
        _mutate(chain, "LceBconv2d", lambda m, op: setattr(op, "inputs", list(op.inputs)[:1])),
        "inputs",
        None,
    )
    cases["bconv_output_int16"] = (
        _mutate(chain, "LceBconv2d", _set_type(conv_out, 7)),
        "output type",
        None,
    )
    float_conv = next(
        k for k, (_, op) in enumerate(ops(read(chain), "LceBconv2d")) if op.inputs[2] >= 0
    )
    cases["bconv_filter_as_multiplier"] = (
        _mutate(chain, "LceBconv2d", lambda m, op: _set_input(2, op.inputs[1])(m, op), float_conv),
        "post_activation_multiplier type int32",
        None,
    )

    def short_bias(m, op):  # a consistent [3] constant where [channels_out] is needed
        t = _tensor(m, op.inputs[3])
        t.shape = [3]
        m.buffers[t.buffer].data = np.zeros(3, np.float32).view(np.uint8)

    cases["bconv_bias_wrong_length"] = (
        _mutate(chain, "LceBconv2d", short_bias, float_conv),
        "post_activation_bias must have shape",
        None,
    )
    cases["bconv_input_is_float"] = (
        _mutate(chain, "LceBconv2d", _set_type(conv_in, 0), which=1),
        "type",
        None,
    )
    cases["bconv_valid_too_small_after_resize"] = (chain, "VALID", (1, 2, 2, 40))

    # Quantize / dequantize.
    cases["quantize_output_float"] = (
        _mutate(quant, "LceQuantize", _set_type(lambda op: op.outputs[0], 0)),
        "output type",
        None,
    )
    cases["dequantize_channels_mismatch"] = (
        _mutate(
            quant, "LceDequantize", _set_shape(lambda op: op.outputs[0], [1, 5, 5, 64]), which=1
        ),
        "words",
        None,
    )
    cases["dequantize_input_float"] = (
        _mutate(quant, "LceDequantize", _set_type(lambda op: op.inputs[0], 0)),
        "",
        None,
    )

    # SbnnBconv2d: SBF1 filter bytes truncated or corrupted.
    from sbnn_keras.export.compress import compress_filters

    sparse, _ = compress_filters(sparsify_filters(chain, 0.05), only_if_smaller=False)

    def sbf1_bytes(edit):
        def fn(m, op):
            t = _tensor(m, op.inputs[1])
            data = bytearray(np.asarray(m.buffers[t.buffer].data, np.uint8).tobytes())
            data = edit(data)
            m.buffers[t.buffer].data = np.frombuffer(bytes(data), np.uint8).copy()
            t.shape = [len(data)]

        return fn

    def flip(pos, value):
        def edit(d):
            d[pos % len(d)] = value
            return d

        return edit

    for name, edit, expect in [
        ("truncated", lambda d: d[: len(d) // 2], "SBF1"),
        ("header_only", lambda d: d[:32], "SBF1"),
        ("short", lambda d: d[:7], "SBF1"),
        ("magic", flip(0, ord("X")), "magic"),
        ("version", flip(4, 9), "version"),
        ("out_channels", flip(8, 200), "SBF1"),
        ("channels", flip(20, 3), "SBF1"),
        ("huge_shape", lambda d: d[:20] + b"\xff\xff\xff\x7f" + d[24:], "SBF1"),
        ("payload_tail", flip(-1, 0xFF), "SBF1"),
    ]:
        cases[f"sbf1_{name}"] = (_mutate(sparse, "SbnnBconv2d", sbf1_bytes(edit)), expect, None)
    for k in range(6):
        pos = int(np.random.default_rng(k).integers(32, 200))
        cases[f"sbf1_payload_corrupt_{k}"] = (
            _mutate(sparse, "SbnnBconv2d", sbf1_bytes(flip(pos, 0x5A))),
            None,
            None,
        )
    cases["sbf1_filter_as_int32"] = (
        _mutate(sparse, "SbnnBconv2d", _set_type(lambda op: op.inputs[1], 2)),
        "",
        None,
    )

    def zero_scale(m, op):
        t = _tensor(m, op.outputs[0])
        t.quantization.scale = [0.0]

    cases["int8_output_zero_scale"] = (_mutate(int8, "LceBconv2d", zero_scale), "scale", None)
    return cases


# ---- the subprocess side --------------------------------------------------------


def _run_cases(case_dir: str) -> None:
    """Runs every case file in case_dir; prints one JSON line before and after each."""
    for path in sorted(Path(case_dir).glob("*.tflite")):
        spec = json.loads(path.with_suffix(".json").read_text())
        print(json.dumps({"start": path.stem}), flush=True)
        result = {"case": path.stem}
        try:
            interp = runtime.Interpreter(path.read_bytes(), num_threads=2)
            if spec["resize"] is not None:  # through the runtime's own API
                raw = interp.interpreter
                raw.resize_tensor_input(interp.input_details[0]["index"], spec["resize"])
                raw.allocate_tensors()
            xs = [np.zeros(d["shape"], d["dtype"]) for d in interp.input_details]
            interp.predict(xs if len(xs) > 1 else xs[0])
            result["outcome"] = "ok"
        except Exception as err:  # noqa: BLE001 - any clean exception is the point
            result["outcome"] = type(err).__name__
            result["message"] = str(err)
        print(json.dumps(result), flush=True)


@pytest.fixture(scope="module")
def case_results(tmp_path_factory):
    cases = build_cases()
    case_dir = tmp_path_factory.mktemp("bad_models")
    for name, (fb, _, resize) in cases.items():
        (case_dir / f"{name}.tflite").write_bytes(fb)
        (case_dir / f"{name}.json").write_text(json.dumps({"resize": resize}))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, __file__, str(case_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    results, started = {}, None
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if "start" in rec:
            started = rec["start"]
        else:
            results[rec["case"]] = rec
    assert proc.returncode == 0, (
        f"the case runner died (return code {proc.returncode}, i.e. signal "
        f"{-proc.returncode if proc.returncode < 0 else 'none'}) during case {started!r}\n"
        f"{proc.stderr[-3000:]}"
    )
    return cases, results


def test_no_case_crashes(case_results):
    cases, results = case_results
    assert set(results) == set(cases)


def test_every_bad_model_raises_a_clear_error(case_results):
    cases, results = case_results
    problems = []
    for name, (_, expect, _) in sorted(cases.items()):
        rec = results[name]
        if expect is None:  # random corruption: may still be a valid map of valid values
            if rec["outcome"] not in ("ok", "RuntimeError", "ValueError"):
                problems.append(f"{name}: {rec}")
            continue
        if rec["outcome"] not in ("RuntimeError", "ValueError"):
            problems.append(f"{name}: expected an error, got {rec}")
        elif expect and expect not in rec["message"]:
            problems.append(f"{name}: message lacks {expect!r}: {rec['message'][:300]}")
    assert not problems, "\n".join(problems)


def test_delegate_errors_name_the_node(case_results):
    _, results = case_results
    msg = results["bconv_padding_7"]["message"]
    assert "LceBconv2d (node" in msg and "padding" in msg and "7" in msg, msg
    msg = results["bmaxpool_stride_height_0"]["message"]
    assert "LceBMaxPool2d (node" in msg, msg


# ---- argument validation and the version gate (in-process) ------------------------


@pytest.mark.parametrize("value", [0, -1, 65, 1.5, True, "2", None])
def test_load_delegate_rejects_num_threads(value):
    with pytest.raises(ValueError, match="num_threads"):
        runtime.load_delegate(num_threads=value)


@pytest.mark.parametrize("value", ["nope", "", 3, None, "neon_but_not_here"])
def test_load_delegate_rejects_kernel(value):
    with pytest.raises(ValueError, match="kernel"):
        runtime.load_delegate(kernel=value)


def test_load_delegate_rejects_runtime_and_options():
    with pytest.raises(ValueError, match="runtime"):
        runtime.load_delegate(runtime="pytorch")
    with pytest.raises(ValueError, match="colour"):
        runtime.load_delegate(colour="blue")


def test_interpreter_rejects_bad_models(tmp_path):
    with pytest.raises(ValueError, match="model_content_or_path"):
        runtime.Interpreter(123)
    with pytest.raises(ValueError, match="no file"):
        runtime.Interpreter(str(tmp_path / "missing.tflite"))
    with pytest.raises(ValueError, match="model_content_or_path"):
        runtime.Interpreter(b"abc")
    with pytest.raises(ValueError, match="num_threads"):
        runtime.Interpreter(b"0" * 100, num_threads=0)


def test_predict_rejects_bad_input():
    _, quant = cached_convert("quant", build_quant)
    interp = runtime.Interpreter(quant)
    with pytest.raises(ValueError, match="4 inputs"):
        interp.predict(np.zeros((1, 7, 7, 1), np.float32))
    xs = [np.zeros((1,) + tuple(d["shape"][1:]), np.float32) for d in interp.input_details]
    xs[1] = np.zeros((1, 5, 5, 31), np.float32)
    with pytest.raises(ValueError, match=r"x\[1\]"):
        interp.predict(xs)


def test_untested_runtime_version_is_refused(monkeypatch):
    monkeypatch.setattr(runtime, "runtime_version", lambda rt="tensorflow": "2.99.0")
    with pytest.raises(runtime.UnsupportedRuntimeError, match="2.99.0"):
        runtime.load_delegate()
    # The escape hatch still goes through the native ABI checks.
    delegate = runtime.load_delegate(allow_untested_runtime=True)
    assert "2.99.0" in runtime.describe(delegate)


def test_native_version_gate_without_python_checks():
    path = runtime.library_path()
    with pytest.raises(ValueError, match="9.9.9"):
        tf.lite.experimental.load_delegate(
            path, {"runtime": "tensorflow", "runtime_version": "9.9.9"}
        )
    with pytest.raises(ValueError, match="runtime_version"):
        tf.lite.experimental.load_delegate(path, {})
    with pytest.raises(ValueError, match="unknown option"):
        tf.lite.experimental.load_delegate(
            path, {"runtime": "tensorflow", "runtime_version": "2.16.2", "x": "1"}
        )
    with pytest.raises(ValueError, match="num_threads"):
        tf.lite.experimental.load_delegate(
            path, {"runtime": "tensorflow", "runtime_version": tf.__version__, "num_threads": "0"}
        )


if __name__ == "__main__":
    _run_cases(sys.argv[1])
