"""Regression tests of the reliability campaign (docs/reliability.md, "Campaign").

Each test reproduces one finding of the hostile-user campaign on the converted
VGG-like and ResNet-like models of the end-to-end tests. Anything that used to kill
the process runs in a subprocess (``scripts/reliability/runner.py``), so a
regression fails the test instead of taking pytest down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "reliability"))

import mutate as mu  # noqa: E402

from sbnn_keras import runtime  # noqa: E402


def golden(name: str) -> bytes:
    arch, flavor = name.split("-")
    (path,) = sorted((ROOT / "tests" / "golden" / "e2e").glob(f"{arch}-{flavor}-*.tflite"))
    return path.read_bytes()


def edited(name: str, fn) -> bytes:
    m = mu.read(golden(name))
    fn(m)
    return mu.write(m)


def first_op(data: bytes, names) -> int:
    m = mu.read(data)
    return next(i for i, op in enumerate(m.subgraphs[0].operators) if mu.op_name(m, op) in names)


def run_alone(tmp_path, data: bytes, path: str, action: str = "run") -> dict:
    """Runs one job of the campaign runner in a fresh process; returns its outcome."""
    f = tmp_path / f"case-{path}-{action}.tflite"
    f.write_bytes(data)
    job = {"id": 0, "file": str(f), "path": path, "action": action}
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reliability" / "runner.py"), "--one", json.dumps(job)],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    if p.returncode != 0:
        return {"outcome": "death", "detail": f"return code {p.returncode}: {p.stderr[-1500:]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


BCONV = ("LceBconv2d", "SbnnBconv2d")


def self_read(name):
    i = first_op(golden(name), BCONV)
    return edited(name, lambda m: mu.self_read(m, i, 0))


def read_later(name):
    i = first_op(golden(name), BCONV)
    return edited(name, lambda m: mu.read_later(m, i, 0))


def stride(name, value):
    i = first_op(golden(name), BCONV)
    return edited(name, lambda m: mu.set_option(m, i, "stride_height", value))


def mean_without_axis():
    return edited("resnet-lce", lambda m: mu.set_input(
        m, next(i for i, op in enumerate(m.subgraphs[0].operators)
                if mu.op_name(m, op) == "builtin_40"), 1, -1))


def pool_bool_padding():
    i = first_op(golden("vgg-lce"), ("LceBMaxPool2d",))
    return edited("vgg-lce", lambda m: (mu.set_option(m, i, "stride_height", 32767, "uint"),
                                        mu.set_option(m, i, "padding", True, "bool")))


# ---- 1. graph validator -------------------------------------------------------------


@pytest.mark.parametrize(
    "case,expect",
    [
        (lambda: self_read("vgg-lce"), "reads its own output"),
        (lambda: self_read("resnet-sparse"), "reads its own output"),
        (lambda: read_later("resnet-sparse"), "out of order"),
        (lambda: stride("vgg-lce", 33), "is declared"),
        (lambda: stride("resnet-sparse", 65536), "is declared"),
        # found by fuzz_runtime: MEAN without its axis tensor, SIGSEGV in TFLite's
        # reduce::PrepareSimple (stock tf.lite, after check_model)
        (mean_without_axis, "required input 1"),
        # found by fuzz_runtime (seed 0): a binary max-pool with stride 32767 stored as a
        # uint and padding stored as a bool; the validator skipped the mistyped map, the
        # delegate read the bool as 1, and the stock runtime aborted (SIGABRT)
        (pool_bool_padding, "is declared"),
    ],
    ids=["self_read_vgg", "self_read_resnet_sparse", "read_later", "stride_33", "stride_65536",
         "mean_without_axis", "maxpool_stride_with_bool_padding"],
)
def test_check_model_refuses_graphs_that_crash_the_stock_runtime(case, expect):
    with pytest.raises(ValueError, match=expect) as info:
        runtime.check_model(case())
    assert "op " in str(info.value) and "tensor " in str(info.value)


def test_check_model_accepts_every_golden_model():
    for path in sorted((ROOT / "tests" / "golden").glob("*/*.tflite")):
        runtime.check_model(path.read_bytes())


def strided_slice_without_strides():
    """Found by fuzz_runtime.py (seed 0, 300 s): LiteRT 2.3 dereferences the missing
    strides input of a STRIDED_SLICE (SIGSEGV), after check_model had accepted it."""
    def edit(m):
        i = next(i for i, op in enumerate(m.subgraphs[0].operators)
                 if mu.op_name(m, op) == "builtin_45" and len(op.inputs) == 4)
        mu.drop_input(m, i)
    return edited("quicknet-lce", edit)


CRASHERS = {
    "self_read": lambda: self_read("vgg-lce"),
    "read_later": lambda: read_later("resnet-lce"),
    "stride_33": lambda: stride("vgg-lce", 33),
    "pool_stride_10": lambda: edited("vgg-lce", lambda m: mu.set_option(
        m, first_op(golden("vgg-lce"), ("LceBMaxPool2d",)), "stride_width", 10)),
    "mean_without_axis": mean_without_axis,
    "pool_bool_padding": pool_bool_padding,
    "strided_slice_without_strides": strided_slice_without_strides,
}
# tf_raw / litert_raw: stock interpreter + load_delegate() without check_model; only the
# delegate's own graph check (tflite/delegate/graph_check.cc) stands between these files
# and the stock crashes (they died there before it)
CRASH_PATHS = ("sbnn", "tf", "litert", "tf_raw", "litert_raw", "cli_inspect", "cli_bench")


@pytest.fixture(scope="module")
def crasher_results(tmp_path_factory):
    """Every crasher on every path, through the campaign runner (one worker process,
    restarted after a death, so a regression is a 'death' outcome, not a dead pytest)."""
    import runner

    d = tmp_path_factory.mktemp("crashers")
    jobs = []
    for name, make in CRASHERS.items():
        f = d / f"{name}.tflite"
        f.write_bytes(make())
        for path in CRASH_PATHS:
            jobs.append({"id": len(jobs), "file": str(f), "path": path, "action": "run", "case": name})
    results = runner.run_jobs(jobs, str(d / "worker.log"), timeout=300, confirm=False)
    return {(r["case"], r["path"]): r for r in results}


@pytest.mark.parametrize("path", CRASH_PATHS)
@pytest.mark.parametrize("case", sorted(CRASHERS))
def test_crashing_graphs_give_clean_errors(crasher_results, case, path):
    """Each of these killed the process (SIGSEGV in TFLite's partitioner, or heap
    corruption after XNNPACK's pooling ran on a shrunken tensor) before check_model
    validated the graph."""
    r = crasher_results[(case, path)]
    # inspect only reads the file; bench reports a model that fails as a row of its table
    want = ("error",) if not path.startswith("cli_") else ("error", "ok")
    assert r["outcome"] in want, r
    if path.endswith("_raw"):  # refused by the delegate, naming the op and the tensor
        assert "sbnn delegate: the .tflite graph is inconsistent: op " in r["detail"], r
        assert "tensor " in r["detail"] or " inputs; builtin " in r["detail"], r


# ---- 2. Interpreter.predict ---------------------------------------------------------


@pytest.mark.parametrize("name", ["vgg-lce", "resnet-sparse"])
def test_empty_batch_is_refused_and_the_next_predict_works(tmp_path, name):
    r = run_alone(tmp_path, golden(name), "sbnn", "empty_batch")
    assert r["outcome"] == "ok", r
    assert "batch 0: ValueError" in r["detail"] and "batch" in r["detail"], r


def test_empty_batch_message_names_the_argument():
    interp = runtime.Interpreter(golden("vgg-lce"))
    shape = [0] + [int(s) for s in interp.input_details[0]["shape"][1:]]
    with pytest.raises(ValueError, match=r"x\[0\].*batch.*0"):
        interp.predict(np.zeros(shape, np.float32))
    assert interp.predict(np.ones([1] + shape[1:], np.float32)).shape[0] == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_non_finite_input(bad):
    interp = runtime.Interpreter(golden("vgg-lce"))
    x = np.zeros([1] + [int(s) for s in interp.input_details[0]["shape"][1:]], np.float32)
    x[0, 1, 2, 0] = bad
    with pytest.raises(ValueError, match=r"x\[0\].*(finite|NaN|inf)"):
        interp.predict(x)


@pytest.mark.parametrize("value", [None, "a", 1 + 2j])
def test_predict_refuses_non_numeric_input(value):
    interp = runtime.Interpreter(golden("vgg-lce"))
    shape = [1] + [int(s) for s in interp.input_details[0]["shape"][1:]]
    x = np.full(shape, value, dtype=object if value is None or isinstance(value, str) else complex)
    with pytest.raises(ValueError, match=r"x\[0\]"):
        interp.predict(x)


# ---- 6. no silent overwrite ----------------------------------------------------------


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    import larq as lq
    import tensorflow as tf

    tf.keras.backend.clear_session()
    inp = tf.keras.Input((8, 8, 3))
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = lq.layers.QuantConv2D(16, 3, padding="same", input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", use_bias=False)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(4)(x))
    path = tmp_path_factory.mktemp("keras") / "victim.keras"
    model.save(path)
    return path


def cli(argv, capsys):
    from sbnn_keras.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_convert_refuses_to_overwrite_its_input(keras_file, capsys):
    before = keras_file.read_bytes()
    code, err = cli(["convert", keras_file, "-o", keras_file, "-q"], capsys)
    assert code == 1 and "is the input" in err
    code, err = cli(["convert", keras_file, "-o", keras_file, "-q", "--force"], capsys)
    assert code == 1 and "is the input" in err
    assert keras_file.read_bytes() == before


def test_convert_refuses_an_existing_output_without_force(keras_file, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"precious")
    code, err = cli(["convert", keras_file, "-o", out, "-q"], capsys)
    assert code == 1 and "exists; pass --force" in err and out.read_bytes() == b"precious"
    code, _ = cli(["convert", keras_file, "-o", out, "-q", "--force"], capsys)
    assert code == 0 and out.read_bytes()[4:8] == b"TFL3"
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # not the temporary file's mode


def test_convert_checks_every_output_before_the_work(keras_file, tmp_path, capsys, monkeypatch):
    import sbnn_keras

    calls = []
    monkeypatch.setattr(sbnn_keras, "convert_with_report", lambda *a, **k: calls.append(1))
    out = tmp_path / "ok.tflite"
    for report in (tmp_path / "missing-dir" / "r.json", tmp_path):
        code, err = cli(["convert", keras_file, "-o", out, "-q", "--report-json", report], capsys)
        assert code == 1 and "--report-json" in err, err
    existing = tmp_path / "r.json"
    existing.write_text("{}")
    code, err = cli(["convert", keras_file, "-o", out, "-q", "--report-json", existing], capsys)
    assert code == 1 and "exists" in err
    assert calls == [] and not out.exists()


def test_a_failed_write_leaves_no_half_written_set(keras_file, tmp_path, capsys, monkeypatch):
    out, report = tmp_path / "m.tflite", tmp_path / "r.json"
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst) == str(report):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    code, err = cli(["convert", keras_file, "-o", out, "-q", "--report-json", report], capsys)
    assert code == 1 and "No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["m.tflite"])
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_bench_checks_its_json_path_first(tmp_path, capsys):
    model = tmp_path / "m.tflite"
    model.write_bytes(golden("vgg-lce"))
    code, err = cli(["bench", model, "--no-lce", "--runs", "1", "-q", "--json", tmp_path / "no" / "b.json"], capsys)
    assert code == 1 and "does not exist" in err
    code, err = cli(["bench", model, "--no-lce", "--runs", "1", "-q", "--json", model], capsys)
    assert code == 1 and "is the input" in err
    assert model.read_bytes() == golden("vgg-lce")


# ---- inspect on corrupt options ---------------------------------------------------------


@pytest.mark.parametrize(
    "edit,expect",
    [
        (lambda m, i: mu.set_input(m, i, 1, -1), "has no filter"),
        (lambda m, i: mu.raw_options(m, i, bytes([1, 4, 1])), "not a map"),
        (lambda m, i: mu.set_option(m, i, "channels_in", 1, "vector"), "channels_in"),
    ],
    ids=["filter_minus_1", "options_not_a_map", "channels_in_a_vector"],
)
def test_inspect_reports_corrupt_binary_ops_without_a_traceback(tmp_path, capsys, edit, expect):
    i = first_op(golden("vgg-lce"), ("LceBconv2d",))
    f = tmp_path / "bad.tflite"
    f.write_bytes(edited("vgg-lce", lambda m: edit(m, i)))
    code, err = cli(["inspect", f], capsys)
    assert code == 1 and expect in err, err


# ---- demo output directory ----------------------------------------------------------------


def test_demo_checks_out_before_training_and_keeps_earlier_runs(tmp_path, capsys):
    from sbnn_zoo import demo

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as info:  # before any data is loaded or trained
        demo.main(["--quick", "--out", str(blocker)])
    assert info.value.code == 2 and "is a file" in capsys.readouterr().err
    out = tmp_path / "artifacts"
    out.mkdir()
    (out / "demo_results.json").write_text("earlier")
    new = demo.output_dir(str(out), force=False)
    assert new.parent == out and new.name.startswith("run-")
    assert (out / "demo_results.json").read_text() == "earlier"
    assert demo.output_dir(str(out), force=True) == out
    os.chmod(tmp_path, 0o500)
    try:
        if not os.access(tmp_path, os.W_OK):  # root can write anyway
            with pytest.raises(ValueError, match="cannot write"):
                demo.output_dir(str(tmp_path / "new"), force=False)
    finally:
        os.chmod(tmp_path, 0o700)


# ---- 3. convert: nothing converts silently to something else ------------------------


def _model_with(layer, shape=(8, 8, 4)):
    import tensorflow as tf

    tf.keras.backend.clear_session()
    inp = tf.keras.Input(shape)
    x = tf.keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = layer(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, tf.keras.layers.Dense(2)(x))


@pytest.mark.parametrize(
    "make,expect",
    [
        (lambda lq: lq.layers.QuantDepthwiseConv2D(3, padding="same", input_quantizer="ste_sign",
                                                   depthwise_quantizer="ste_sign", name="dw"),
         "binary depthwise kernel"),
        (lambda lq: lq.layers.QuantSeparableConv2D(8, 3, padding="same", input_quantizer="ste_sign",
                                                   depthwise_quantizer="ste_sign",
                                                   pointwise_quantizer="ste_sign", name="sep"),
         "binary depthwise kernel"),
        (lambda lq: lq.layers.QuantConv2D(8, 3, padding="same", input_quantizer="ste_sign",
                                          kernel_quantizer=lambda w: w, name="lam"),
         "is not a larq or sbnn_keras quantizer"),
    ],
    ids=["depthwise", "separable", "lambda_kernel_quantizer"],
)
def test_convert_refuses_layers_it_would_convert_silently_to_something_else(make, expect):
    import larq as lq

    import sbnn_keras

    model = _model_with(make(lq))
    name = model.layers[2].name
    with pytest.raises(sbnn_keras.ConversionError, match=expect) as info:
        sbnn_keras.convert(model)
    assert repr(name) in str(info.value)



def test_a_declared_quantizer_subclass_converts_as_its_base_and_an_undeclared_one_is_refused():
    """A subclass that only changes the backward pass (as sbnn_zoo's EdeSign) converts
    once declared, to the same bytes as its larq base; undeclared it is refused."""
    import larq as lq
    import numpy as np

    import sbnn_keras

    import tensorflow as tf

    class OwnGradientSign(lq.quantizers.SteSign):
        pass

    # convert rebuilds layers from their configs: the class must be known by name
    tf.keras.utils.get_custom_objects()["OwnGradientSign"] = OwnGradientSign

    def model(q):
        tf.keras.utils.set_random_seed(4)
        return _model_with(lq.layers.QuantConv2D(8, 3, padding="same", input_quantizer=q,
                                                 kernel_quantizer="ste_sign", name="c"))

    with pytest.raises(sbnn_keras.ConversionError, match="declare_quantizer") as info:
        sbnn_keras.convert(model(OwnGradientSign()))
    assert "'c'" in str(info.value)
    sbnn_keras.declare_quantizer(OwnGradientSign)
    from sbnn_runtime.tflite_model import read_tflite

    files = [sbnn_keras.convert(model(q)) for q in (OwnGradientSign(), lq.quantizers.SteSign())]
    counts = [read_tflite(f).op_counts() for f in files]
    assert counts[0] == counts[1] and counts[0]["LceBconv2d"] == 1
    declared, base = (sbnn_keras.Interpreter(f) for f in files)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(declared.predict(x), base.predict(x))
    for bad in (OwnGradientSign(), np.sign, type("NotAQuantizer", (), {})):
        with pytest.raises(TypeError, match="declare_quantizer: argument `cls`"):
            sbnn_keras.declare_quantizer(bad)
    del tf.keras.utils.get_custom_objects()["OwnGradientSign"]

# ---- 5. SBF1 checksum, through the delegate ------------------------------------------------


def test_delegate_refuses_a_corrupt_sbf1_payload_and_runs_the_intact_one():
    from sbnn_runtime.sparse_format import decode_filter, encode_filter

    base = mu.read(golden("vgg-sparse"))
    i, t, data = mu.sbf1_filters(base)[0]
    v2 = encode_filter(decode_filter(data))
    assert v2[4] == 2
    flipped = bytearray(v2)
    flipped[40] ^= 0x10

    def with_filter(blob):
        m = mu.read(golden("vgg-sparse"))
        mu.set_buffer(m, t, blob)
        mu.set_shape(m, t, [len(blob)])
        return mu.write(m)

    interp = runtime.Interpreter(with_filter(v2))
    x = np.ones([1] + [int(s) for s in interp.input_details[0]["shape"][1:]], np.float32)
    np.testing.assert_array_equal(interp.predict(x), runtime.Interpreter(golden("vgg-sparse")).predict(x))
    with pytest.raises(RuntimeError, match="checksum"):
        runtime.Interpreter(with_filter(bytes(flipped)))


# ---- 4. the regularizer serves only the model it is bound to ----------------------------------


def _sbnn_model(name):
    import tensorflow as tf

    import sbnn_keras

    inp = tf.keras.Input((6, 6, 2))
    x = sbnn_keras.QuantConv2D(8, 3, padding="same", kernel_quantizer="sbnn", name=f"{name}_c")(inp)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inp, tf.keras.layers.Dense(2)(x), name=name)


@pytest.mark.parametrize("how", ["fit_other_model", "compile_other_model"])
def test_regularizer_refuses_a_model_it_is_not_bound_to(how):
    import tensorflow as tf

    import sbnn_keras

    tf.keras.backend.clear_session()
    m1, m2 = _sbnn_model("m1"), _sbnn_model("m2")
    reg = sbnn_keras.SparsityRegularizer("mse", expected_connections=0.1)
    if how == "fit_other_model":
        reg.bind(m2)
        m1.compile(optimizer="sgd", loss=reg)
    else:
        m1.compile(optimizer="sgd", loss=reg.bind(m2))
    x, y = np.ones((4, 6, 6, 2), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="bound to model 'm2'"):
        m1.fit(x, y, epochs=1, verbose=0)
    # the model it is bound to trains
    m2.compile(optimizer="sgd", loss=reg)
    m2.fit(x, y, epochs=1, verbose=0)
