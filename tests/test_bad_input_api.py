"""Bad input to every public function and class of sbnn_keras: a clear exception.

One table, module by module (quantizers, layers, regularizer, report, callbacks,
plot, convert, runtime, sparse_format, datasets, cli, math, stats): wrong types,
out-of-range values, empty models, unsupported layers. Each entry says which
exception it must raise and which words the message must contain: the argument's
name and the value received (its repr, or for large values such as models and
byte strings, what identifies them: the model name, the length, the shape).

Fast by design (no conversion reaches LCE's converter, models are tiny). The
delegate's own argument checks are in tests/test_runtime_bad_input.py and the
version gate in tests/test_version_guards.py.
"""

from __future__ import annotations

import dataclasses
import importlib
import math as pymath
from pathlib import Path
from typing import Callable

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
import sbnn_runtime as runtime
from sbnn_keras import layers, quantizers, regularizer
from sbnn_keras.metrics import callbacks, plot, report
from sbnn_zoo import datasets
from sbnn_keras import math as smath
from sbnn_keras.metrics import stats
from sbnn_runtime import sparse_format
from sbnn_keras.cli import main as cli_main

convert = importlib.import_module("sbnn_keras.export.convert")


@dataclasses.dataclass
class Case:
    fn: Callable
    exc: tuple
    words: tuple  # all must appear in the message


def _bench_run(path=None, **kwargs):
    """``sbnn_runtime.bench.run`` on a valid model unless ``path`` says otherwise."""
    from sbnn_runtime import bench

    if path is None:
        path = sorted((Path(__file__).parent / "golden" / "e2e").glob("*.tflite"))[0]
    return bench.run(path, **{"lce": "no", "runs": 1, "warmup": 0, **kwargs})


def case(fn, exc, *words):
    return Case(fn, exc if isinstance(exc, tuple) else (exc,), words)


# ---- small models, built lazily (the table is collected without TensorFlow work) ----


def sbnn_model():
    inp = tf.keras.Input((6, 6, 3))
    x = tf.keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = sbnn_keras.QuantConv2D(8, 3, padding="same", name="sbnn_conv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = sbnn_keras.QuantDense(3, name="sbnn_dense")(x)
    return tf.keras.Model(inp, x, name="tiny_sbnn")


def float_model():
    inp = tf.keras.Input((4,))
    return tf.keras.Model(inp, tf.keras.layers.Dense(2)(inp), name="tiny_float")


def unbuilt_model():
    return tf.keras.Sequential([sbnn_keras.QuantDense(3)], name="tiny_unbuilt")


def empty_model():
    return tf.keras.Sequential(name="tiny_empty")


def conv1d_model():
    inp = tf.keras.Input((8, 3))
    x = lq.layers.QuantConv1D(4, 3, input_quantizer="ste_sign", kernel_quantizer="sbnn")(inp)
    return tf.keras.Model(inp, x, name="tiny_conv1d")


def float_input_model():
    inp = tf.keras.Input((6, 6, 3))
    x = sbnn_keras.QuantConv2D(4, 3, input_quantizer=None, name="float_in")(inp)
    return tf.keras.Model(inp, x, name="tiny_float_in")


def _report():
    return report.sparsity_report(sbnn_model())


W4 = np.ones((2, 3, 3, 4), np.float32)


def _valid_sbf1():
    return sparse_format.encode_filter(np.where(np.arange(2 * 3 * 3 * 5).reshape(2, 3, 3, 5) % 7 == 0, 1, -1))


CASES = {
    # ---- quantizers
    "SbnnQuantizer.scale": case(lambda: quantizers.SbnnQuantizer(scale="optimal"), ValueError, "scale", "'optimal'"),
    "SbnnQuantizer.scale_type": case(lambda: quantizers.SbnnQuantizer(scale=3), ValueError, "scale", "3"),
    "SbnnQuantizer.per_channel": case(lambda: quantizers.SbnnQuantizer(per_channel="yes"), ValueError, "per_channel", "'yes'"),
    "SbnnQuantizer.clip_negative": case(lambda: quantizers.SbnnQuantizer(clip_value=-1), ValueError, "clip_value", "-1"),
    "SbnnQuantizer.clip_nan": case(lambda: quantizers.SbnnQuantizer(clip_value=float("nan")), ValueError, "clip_value", "nan"),
    "SbnnQuantizer.clip_str": case(lambda: quantizers.SbnnQuantizer(clip_value="1"), ValueError, "clip_value", "'1'"),
    "SbnnQuantizer.tau_initializer": case(lambda: quantizers.SbnnQuantizer(tau_initializer="golden"), ValueError, "tau_initializer", "'golden'"),
    "SbnnQuantizer.per_channel_scalar_kernel": case(
        lambda: quantizers.SbnnQuantizer("learned", per_channel=True).build(()), ValueError, "per_channel", "()"),
    "SiBnnQuantizer.per_channel": case(lambda: quantizers.SiBnnQuantizer(per_channel=1), ValueError, "per_channel", "1"),
    "SiBnnQuantizer.clip_zero": case(lambda: quantizers.SiBnnQuantizer(clip_value=0), ValueError, "clip_value", "0"),
    "SiBnnQuantizer.threshold_initializer": case(
        lambda: quantizers.SiBnnQuantizer(threshold_initializer=42), ValueError, "threshold_initializer", "42"),
    "SiBnnQuantizer.unknown_channels": case(
        lambda: quantizers.SiBnnQuantizer().build(tf.TensorShape([None, None])), ValueError, "per_channel", "None"),
    "sbnn_quantize.clip_value": case(
        lambda: quantizers.sbnn_quantize(W4, 1.0, 0.0, clip_value=-0.5), ValueError, "clip_value", "-0.5"),
    "si_bnn_heaviside.clip_value": case(
        lambda: quantizers.si_bnn_heaviside(W4, 0.0, clip_value="wide"), ValueError, "clip_value", "'wide'"),
    "optimal_scales_tf.per_channel_scalar": case(
        lambda: quantizers.optimal_scales_tf(tf.constant(1.0), per_channel=True), ValueError, "per_channel", "ndim=0"),
    # ---- layers
    "QuantConv2D.filters": case(lambda: sbnn_keras.QuantConv2D(-1, 3), ValueError, "filters", "-1"),
    "QuantConv2D.kernel_quantizer": case(
        lambda: sbnn_keras.QuantConv2D(4, 3, kernel_quantizer="sbnn_magic"), ValueError, "sbnn_magic"),
    "QuantConv2D.padding": case(lambda: sbnn_keras.QuantConv2D(4, 3, padding="diagonal"), ValueError, "padding", "diagonal"),
    "QuantDense.units": case(lambda: sbnn_keras.QuantDense(-2), ValueError, "units", "-2"),
    "QuantDense.input_quantizer": case(
        lambda: sbnn_keras.QuantDense(4, input_quantizer="sign_of_the_times"), ValueError, "sign_of_the_times"),
    "sbnn_layers.model": case(lambda: layers.sbnn_layers("my_model"), ValueError, "model", "'my_model'"),
    "sbnn_layers.none": case(lambda: layers.sbnn_layers(None), ValueError, "model", "None"),
    "latent_kernel.layer": case(lambda: layers.latent_kernel("conv"), ValueError, "layer", "'conv'"),
    "latent_kernel.no_kernel": case(
        lambda: layers.latent_kernel(tf.keras.layers.ReLU(name="relu_1")), ValueError, "layer", "relu_1"),
    # ---- regularizer
    "SparsityRegularizer.ec_above_1": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=1.5), ValueError, "expected_connections", "1.5"),
    "SparsityRegularizer.ec_zero": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0), ValueError, "expected_connections", "0"),
    "SparsityRegularizer.ec_str": case(
        lambda: regularizer.SparsityRegularizer(expected_connections="5%"), ValueError, "expected_connections", "'5%'"),
    "SparsityRegularizer.ec_and_bits": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1, bits_per_weight=0.5), ValueError,
        "expected_connections", "bits_per_weight", "0.5"),
    "SparsityRegularizer.neither": case(lambda: regularizer.SparsityRegularizer(), ValueError, "expected_connections", "None"),
    "SparsityRegularizer.gamma_one": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1, gamma=1.0), ValueError, "gamma", "1.0"),
    "SparsityRegularizer.gamma_nan": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1, gamma=float("nan")), ValueError, "gamma", "nan"),
    "SparsityRegularizer.bits_zero": case(
        lambda: regularizer.SparsityRegularizer(bits_per_weight=0.0), ValueError, "bits_per_weight", "0.0"),
    "SparsityRegularizer.lambda_threshold": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1, lambda_threshold=-1), ValueError,
        "lambda_threshold", "-1"),
    "SparsityRegularizer.per_layer": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1, per_layer="yes"), ValueError, "per_layer", "'yes'"),
    "SparsityRegularizer.loss_unknown": case(
        lambda: regularizer.SparsityRegularizer("hinge_of_fate", expected_connections=0.1), ValueError, "loss", "'hinge_of_fate'"),
    "SparsityRegularizer.loss_none": case(
        lambda: regularizer.SparsityRegularizer(None, expected_connections=0.1), ValueError, "loss", "None"),
    "SparsityRegularizer.bind_not_model": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1).bind("m"), ValueError, "model", "'m'"),
    "SparsityRegularizer.bind_no_sbnn_layer": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1).bind(float_model()), ValueError,
        "model", "'tiny_float'"),
    "SparsityRegularizer.bind_unbuilt": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1).bind(unbuilt_model()), ValueError,
        "tiny_unbuilt", "not"),
    "SparsityRegularizer.values_unbound": case(
        lambda: regularizer.SparsityRegularizer(expected_connections=0.1).values(), RuntimeError, "not bound"),
    "load_model.missing": case(lambda: regularizer.load_model("/nonexistent/m.keras"), (OSError, ValueError, IOError),
                               "/nonexistent/m.keras"),
    "load_model.type": case(lambda: regularizer.load_model(123), (OSError, ValueError), "filepath", "123"),
    "register_custom_objects": case(lambda: regularizer.register_custom_objects({"X": 1}), ValueError, "objects", "1"),
    # ---- report
    "sparsity_report.model": case(lambda: report.sparsity_report([1, 2]), ValueError, "model", "[1, 2]"),
    "sparsity_report.no_sbnn": case(lambda: report.sparsity_report(float_model()), ValueError, "'tiny_float'", "SBNN"),
    "sparsity_report.empty": case(lambda: report.sparsity_report(empty_model()), ValueError, "'tiny_empty'"),
    "sparsity_report.unbuilt": case(lambda: report.sparsity_report(unbuilt_model()), ValueError, "'tiny_unbuilt'", "built"),
    "SparsityReport.layer": case(lambda: _report().layer("nope"), KeyError, "'nope'", "sbnn_conv"),
    "SparsityReport.from_dict_empty": case(lambda: report.SparsityReport.from_dict({}), ValueError, "data", "{}"),
    "SparsityReport.from_dict_type": case(lambda: report.SparsityReport.from_dict("report"), ValueError, "data", "'report'"),
    "SparsityReport.from_json_garbage": case(
        lambda: report.SparsityReport.from_json("{not json"), ValueError, "text_or_path", "'{not json'"),
    "SparsityReport.from_json_type": case(lambda: report.SparsityReport.from_json(42), ValueError, "text_or_path", "42"),
    "SparsityReport.from_json_missing": case(
        lambda: report.SparsityReport.from_json("/nonexistent/r.json"), FileNotFoundError, "/nonexistent/r.json"),
    # ---- callbacks
    "SparsityCallback.per_layer": case(lambda: callbacks.SparsityCallback(per_layer=1), ValueError, "per_layer", "1"),
    "SparsityCallback.regularizer": case(
        lambda: callbacks.SparsityCallback(regularizer="reg"), ValueError, "regularizer", "'reg'"),
    "SparsityCallback.prefix": case(lambda: callbacks.SparsityCallback(prefix=7), ValueError, "prefix", "7"),
    "SparsityCallback.recalibrate": case(
        lambda: callbacks.SparsityCallback(recalibrate="x_train"), ValueError, "recalibrate", "'x_train'"),
    # ---- plot
    "plot.report_or_model": case(
        lambda: plot.plot_hamming_histograms("model.keras", "x.png"), ValueError, "report_or_model", "'model.keras'"),
    "plot.columns": case(lambda: plot.plot_hamming_histograms(_report(), "x.png", columns=0), ValueError, "columns", "0"),
    "plot.dpi": case(lambda: plot.plot_hamming_histograms(_report(), "x.png", dpi=-5), ValueError, "dpi", "-5"),
    "plot.layers_empty": case(lambda: plot.plot_hamming_histograms(_report(), "x.png", layers=[]), ValueError, "layers", "[]"),
    "plot.layers_name": case(lambda: plot.plot_hamming_histograms(_report(), "x.png", layers="conv9"), ValueError, "layers", "'conv9'"),
    "plot.layers_index": case(lambda: plot.plot_hamming_histograms(_report(), "x.png", layers=7), ValueError, "layers", "7"),
    "plot.layers_type": case(lambda: plot.plot_hamming_histograms(_report(), "x.png", layers=[1.5]), ValueError, "layers", "1.5"),
    "plot.layers_dense": case(
        lambda: plot.plot_hamming_histograms(_report(), "x.png", layers="sbnn_dense"), ValueError, "layers", "'sbnn_dense'"),
    "plot.path": case(lambda: plot.plot_hamming_histograms(_report(), 12), ValueError, "path", "12"),
    # ---- convert
    "convert.model": case(lambda: convert.convert("model.keras"), convert.ConversionError, "model", "'model.keras'"),
    "convert.flavor": case(lambda: convert.convert(sbnn_model(), flavor="tiny"), convert.ConversionError, "flavor", "'tiny'"),
    "convert.input_type": case(
        lambda: convert.convert(sbnn_model(), inference_input_type=tf.int16), convert.ConversionError,
        "inference_input_type", "int16"),
    "convert.output_type": case(
        lambda: convert.convert(sbnn_model(), inference_output_type="float16"), convert.ConversionError,
        "inference_output_type", "'float16'"),
    "convert.target": case(lambda: convert.convert(sbnn_model(), target="x86"), convert.ConversionError, "target", "'x86'"),
    "convert.float_layers_str": case(
        lambda: convert.convert(sbnn_model(), float_layers="sbnn_conv"), convert.ConversionError, "float_layers", "'sbnn_conv'"),
    "convert.float_layers_unknown": case(
        lambda: convert.convert(sbnn_model(), float_layers=["conv_9"]), convert.ConversionError, "float_layers", "conv_9"),
    "convert.float_layers_int": case(
        lambda: convert.convert(sbnn_model(), float_layers=[3]), convert.ConversionError, "float_layers", "[3]"),
    "convert.unbuilt": case(lambda: convert.convert(unbuilt_model()), convert.ConversionError, "'tiny_unbuilt'", "built"),
    "convert.empty": case(lambda: convert.convert(empty_model()), convert.ConversionError, "'tiny_empty'"),
    "convert.unsupported_layer": case(lambda: convert.convert(conv1d_model()), convert.ConversionError, "quant_conv1d"),
    "convert.float_input": case(lambda: convert.convert(float_input_model()), convert.ConversionError, "'float_in'", "input"),
    "convert_with_report.model": case(lambda: convert.convert_with_report(None), convert.ConversionError, "model", "None"),
    # ---- runtime
    "load_delegate.num_threads": case(lambda: runtime.load_delegate(num_threads=0), ValueError, "num_threads", "0"),
    "load_delegate.kernel": case(lambda: runtime.load_delegate(kernel="fastest"), ValueError, "kernel", "'fastest'"),
    "load_delegate.runtime": case(lambda: runtime.load_delegate(runtime="onnx"), ValueError, "runtime", "'onnx'"),
    "load_delegate.option": case(lambda: runtime.load_delegate(turbo=True), ValueError, "'turbo'"),
    "Interpreter.model": case(lambda: runtime.Interpreter(3.5), ValueError, "model_content_or_path", "float"),
    "Interpreter.short": case(lambda: runtime.Interpreter(b"TFL3"), ValueError, "model_content_or_path", "4 bytes"),
    "Interpreter.not_tflite": case(lambda: runtime.Interpreter(b"\0" * 64), ValueError, "model_content_or_path", "TFL3"),
    "Interpreter.missing": case(lambda: runtime.Interpreter("/nonexistent/m.tflite"), ValueError, "/nonexistent/m.tflite"),
    "Interpreter.num_threads": case(lambda: runtime.Interpreter(b"x" * 64, num_threads=100), ValueError, "num_threads", "100"),
    "Interpreter.runtime": case(lambda: runtime.Interpreter(b"x" * 64, runtime="tf"), ValueError, "runtime", "'tf'"),
    "check_model.type": case(lambda: runtime.check_model(1234), ValueError, "content", "int"),
    "check_model.garbage": case(lambda: runtime.check_model(b"0123TFL3" + b"\xff" * 40), ValueError, "truncated or corrupted"),
    "check_model.runtime": case(lambda: runtime.check_model(b"", runtime="jax"), ValueError, "runtime", "'jax'"),
    "describe.delegate": case(lambda: runtime.describe("delegate"), ValueError, "delegate", "'delegate'"),
    "runtime_version.runtime": case(lambda: runtime.runtime_version("torch"), ValueError, "runtime", "'torch'"),
    "resolve_runtime.runtime": case(lambda: runtime.resolve_runtime("onnx"), ValueError, "runtime", "'onnx'"),
    "declare_quantizer.cls": case(lambda: sbnn_keras.declare_quantizer(str), TypeError, "cls", "str"),
    "inspect.model": case(lambda: runtime.inspect(12), ValueError, "model", "int"),
    "inspect.missing": case(lambda: runtime.inspect("/nonexistent/m.tflite"), ValueError, "model", "/nonexistent/m.tflite"),
    "inspect.not_a_file": case(lambda: runtime.inspect(Path(__file__)), ValueError, "TFL3"),
    "inspect.not_tflite": case(lambda: runtime.inspect(b"\0" * 64), ValueError, "TFL3"),
    "format_inspection.info": case(lambda: runtime.format_inspection({"file": "x"}), ValueError, "info", "op_counts"),
    # (bench.run: the module function behind `sbnn-runtime bench`, given a model path)
    "bench.threads": case(lambda: _bench_run(threads=[0]), ValueError, "threads", "[0]"),
    "bench.runs": case(lambda: _bench_run(runs=0), ValueError, "runs", "0"),
    "bench.warmup": case(lambda: _bench_run(warmup=-1), ValueError, "warmup", "-1"),
    "bench.model": case(lambda: _bench_run(path=__file__), ValueError, "model", "TFL3"),
    "bench.missing": case(lambda: _bench_run(path="/nonexistent/m.tflite"), ValueError, "model", "/nonexistent"),
    # ---- sparse_format
    "encode_filter.shape": case(lambda: sparse_format.encode_filter(np.ones((3, 3))), ValueError, "wb", "(3, 3)"),
    "encode_filter.empty": case(lambda: sparse_format.encode_filter(np.ones((0, 3, 3, 1))), ValueError, "wb", "(0, 3, 3, 1)"),
    "encode_filter.values": case(
        lambda: sparse_format.encode_filter(np.zeros((1, 1, 1, 2))), ValueError, "wb", "0"),
    "encode_filter.rice_k": case(
        lambda: sparse_format.encode_filter(np.ones((1, 1, 1, 2)), rice_k=30), ValueError, "rice_k", "30"),
    "decode_filter.type": case(lambda: sparse_format.decode_filter(1234), ValueError, "data", "int"),
    "decode_filter.short": case(lambda: sparse_format.decode_filter(b"SBF1"), sparse_format.SparseFilterError, "SBF1", "4 bytes"),
    "decode_filter.magic": case(lambda: sparse_format.decode_filter(b"XBF1" + bytes(40)), sparse_format.SparseFilterError, "magic", "XBF1"),
    "decode_filter.expected_shape": case(
        lambda: sparse_format.decode_filter(_valid_sbf1(), expected_shape=(2, 3, 3, 6)), sparse_format.SparseFilterError,
        "(2, 3, 3, 5)", "(2, 3, 3, 6)"),
    "encoded_bits_per_weight.data": case(
        lambda: sparse_format.encoded_bits_per_weight(b"nope"), sparse_format.SparseFilterError, "SBF1", "4 bytes"),
    # ---- datasets
    "read_idx.missing": case(lambda: datasets.read_idx("/nonexistent/x-idx1-ubyte"), FileNotFoundError, "/nonexistent/x-idx1-ubyte"),
    "write_idx.dtype": case(lambda: datasets.write_idx("/tmp/x.idx", np.zeros(2, np.complex64)), ValueError, "array", "complex64"),
    "write_idx.ndim": case(lambda: datasets.write_idx("/tmp/x.idx", np.float32(1)), ValueError, "array", "0"),
    "load_fashion_mnist.source": case(lambda: datasets.load_fashion_mnist(source="web"), ValueError, "source", "'web'"),
    "find_idx_dir.type": case(lambda: datasets.find_idx_dir(data_dir=3.5), ValueError, "data_dir", "3.5"),
    # ---- math and stats
    "binarize.w": case(lambda: smath.binarize(["a", "b"]), ValueError, "w", "<U1"),
    "reduction_axes.per_channel": case(lambda: smath.reduction_axes(0, True), ValueError, "per_channel", "ndim=0"),
    "binary_entropy.p": case(lambda: smath.binary_entropy(1.5), ValueError, "p", "1.5"),
    "inverse_binary_entropy.h": case(lambda: smath.inverse_binary_entropy(2.0), ValueError, "h", "2.0"),
    "group_connection_counts.structure": case(lambda: smath.group_connection_counts(np.ones((3, 3, 2, 2)), "row"), ValueError, "structure", "'row'"),
    "group_connection_counts.w01": case(lambda: smath.group_connection_counts(np.ones(4), "kernel"), ValueError, "w01", "(4,)"),
    "structured_push.word_size": case(lambda: smath.structured_push(np.ones((3, 3, 2, 2)), "word", word_size=0), ValueError, "word_size", "0"),
    "structured_push.epsilon": case(lambda: smath.structured_push(np.ones((3, 3, 2, 2)), "kernel", epsilon=-1.0), ValueError, "epsilon", "-1.0"),
    "optimal_scales.empty": case(lambda: smath.optimal_scales(np.zeros(0)), ValueError, "w", "(0,)"),
    "optimal_scales.nan": case(lambda: smath.optimal_scales(np.array([1.0, np.nan])), ValueError, "w", "NaN"),
    "stats.hamming_histogram": case(lambda: stats.hamming_histogram(np.ones(5)), ValueError, "w01", "(5,)"),
    "stats.k_shares": case(lambda: stats.k_shares(np.zeros(10)), ValueError, "hist"),
    "stats.bops_sparse.groups": case(lambda: stats.bops_sparse(np.ones((3, 3, 4, 8)), groups=0), ValueError, "groups", "0"),
    "stats.bops_dense.out_pixels": case(lambda: stats.bops_dense(np.ones((3, 3, 4, 8)), out_pixels=-1), ValueError, "out_pixels", "-1"),
    "stats.connection_mask.nan": case(lambda: stats.connection_mask(np.array([np.nan])), ValueError, "latent", "NaN"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_raises_clear_error(name):
    c = CASES[name]
    with pytest.raises(c.exc) as info:
        c.fn()
    msg = str(info.value)
    missing = [w for w in c.words if w not in msg]
    assert not missing, f"{name}: message lacks {missing}: {msg!r}"


def test_every_public_name_is_covered():
    """Each public callable of the listed modules has a case in the table, or is
    listed here with the reason it needs none."""
    exempt = {
        # no arguments, or any value is a valid answer
        "custom_objects", "available_kernels", "library_path", "is_sbnn_layer", "tested_runtimes",
        # exception types and plain records
        "SparseFilterError", "ConversionError", "UnsupportedRuntimeError", "IdxFormatError",
        "DatasetNotFoundError", "LayerStats", "TotalStats", "LayerConversion", "ConversionReport",
        "FilterStorage",
    }
    covered = {key.split(".")[0] for key in CASES} | {"plot_hamming_histograms", "SparsityReport"}
    covered |= {key.split(".")[1] for key in CASES if key.startswith("stats.")}
    missing = []
    for module in (quantizers, layers, regularizer, report, callbacks, plot, convert, runtime, sparse_format,
                   datasets, smath):
        for name in getattr(module, "__all__", []):
            if callable(getattr(module, name)) and name not in exempt and name not in covered:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"public names without a bad-input case: {missing}"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["convert", "/nonexistent/m.keras", "-o", "x.tflite"], ["/nonexistent/m.keras"]),
        (["inspect", "/nonexistent/m.tflite"], ["/nonexistent/m.tflite"]),
        (["bench", "/nonexistent/m.tflite"], ["/nonexistent/m.tflite"]),
        (["bench", "README.md"], ["README.md", "not a .tflite"]),
    ],
)
def test_cli_bad_input(argv, words, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert cli_main(argv) != 0
    err = capsys.readouterr().err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["frobnicate"], ["invalid choice", "'frobnicate'"]),
        (["bench", "m.tflite", "--threads", "0"], ["--threads", "[0]"]),
        (["bench", "m.tflite", "--runs", "0"], ["--runs", "0"]),
        (["convert", "m.keras", "-o", "x", "--flavor", "fast"], ["--flavor", "'fast'"]),
    ],
)
def test_cli_usage_errors(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, err


def test_values_outside_range_are_quoted_exactly():
    """A float that prints differently from its source still appears as repr()."""
    value = 1 / 3 + 1
    with pytest.raises(ValueError) as info:
        regularizer.SparsityRegularizer(expected_connections=value)
    assert repr(value) in str(info.value)
    assert pymath.isfinite(value)
