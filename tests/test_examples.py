"""The examples' quick forms (examples/*.py) and the zoo's building blocks (sbnn_zoo.zoo).

The CIFAR examples run in-process on ``tfds.testing.mock_data`` (random images; no
download); the Si-BNN and distributed examples on Fashion-MNIST (Debian's files).
The distributed example runs in subprocesses: its logical CPU devices must be set
before TensorFlow initializes its devices, which this process has long done.
"""

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
import sbnn_runtime
from sbnn_zoo import datasets, zoo

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

needs_fashion_mnist = pytest.mark.skipif(
    datasets.find_idx_dir() is None,
    reason="Fashion-MNIST IDX files not found (apt-get install dataset-fashion-mnist "
    "or set SBNN_FASHION_MNIST_DIR)",
)

# Smaller than --quick where it does not change what runs (tracing dominates anyway).
CIFAR_ARGS = [
    "--quick",
    "--train-limit",
    "128",
    "--test-limit",
    "64",
    "--tflite-check",
    "64",
    "--verbose",
    "0",
]


def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cifar(name, tmp_path, extra=()):
    import tensorflow_datasets as tfds

    module = load_example(name)
    out = tmp_path / "out"
    with tfds.testing.mock_data(num_examples=160):
        rc = module.main(
            CIFAR_ARGS + ["--out", str(out), "--data-dir", str(tmp_path / "tfds"), *extra]
        )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    conversion = json.loads((out / "conversion_report.json").read_text())
    assert (out / "model.tflite").stat().st_size == results["tflite_bytes"] > 0
    assert (out / "model.keras").exists() and (out / "sparsity_report.json").exists()
    assert conversion["flavor"] == "sparse"
    assert conversion["op_counts"]["SbnnBconv2d"] == 16  # every binary 3x3 conv
    assert all(layer["status"] != "STAYED FLOAT" for layer in conversion["layers"])
    check = results["tflite_check"]
    assert check["images"] == 64
    # random images and labels: the two must agree, not be accurate
    assert check["agreement"] >= 0.9, check
    assert abs(check["keras_accuracy"] - check["tflite_accuracy"]) <= 0.1, check
    for key in ("connections", "bits_per_weight", "k0", "k1", "bops_reduction"):
        assert 0.0 <= results[key] <= 1.0, (key, results[key])
    return results, conversion, out


@pytest.mark.slow  # ~1-2 min on 2 cores; CI runs the slow tests too (.ci/run)
def test_cifar10_resnet18_quick(tmp_path):
    results, conversion, out = run_cifar("cifar10_resnet18", tmp_path)
    assert results["dataset"] == "cifar10" and results["model"] == "authors_resnet18"
    assert results["arch"] == "authors" and results["recalibration"]["batches"] >= 1
    args = results["args"]
    assert (args["ec"], args["gamma"]) == (0.05, 0.07)  # the default pair, index 2
    assert (args["epochs"], args["width"]) == (1, 16)
    history = (out / "history.csv").read_text().splitlines()
    assert {"ede_t", "connections", "k0", "lambda"} <= set(history[0].split(","))
    assert "CONV_2D" in conversion["op_counts"]  # float stem and 1x1 shortcuts


@pytest.mark.slow  # ~1-2 min on 2 cores; CI runs the slow tests too (.ci/run)
def test_cifar100_reactnet18_quick(tmp_path):
    results, conversion, _ = run_cifar("cifar100_reactnet18", tmp_path, ["--pair", "4"])
    assert results["dataset"] == "cifar100" and results["model"] == "authors_reactnet18"
    assert (results["args"]["ec"], results["args"]["gamma"]) == (0.01, 0.07)
    assert conversion["op_counts"]["PRELU"] == 16  # RPReLU became one PRELU op each


@pytest.mark.slow  # ~1-2 min on 2 cores
def test_cifar10_project_variant_quick(tmp_path):
    results, _, _ = run_cifar("cifar10_resnet18", tmp_path, ["--arch", "project", "--no-recalibrate"])
    assert results["model"] == "irnet_resnet18" and results["recalibration"] is None


@needs_fashion_mnist
def test_si_bnn_fashion_mnist_quick(tmp_path):
    module = load_example("si_bnn_fashion_mnist")
    out = tmp_path / "out"
    rc = module.main(
        [
            "--quick",
            "--train-limit",
            "1024",
            "--test-limit",
            "500",
            "--verbose",
            "0",
            "--out",
            str(out),
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert rc == 0 and results["accuracy_matches"], results  # TFLite accuracy == Keras'
    assert abs(results["tflite_accuracy"] - results["keras_accuracy"]) <= 0.005
    assert (
        set(results["thresholds"])
        == set(results["activation_density"])
        == {"bconv1", "bconv2", "bconv3", "bconv4"}
    )
    assert all(0.0 < d < 1.0 for d in results["activation_density"].values())
    assert results["tflite_bytes"] == (out / "model.tflite").stat().st_size


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))


def _distributed_command(out, *options):
    """The quick distributed_training.py run of the two tests below (512 training and
    300 test images, results in ``out``), with ``options`` first."""
    return [sys.executable, str(EXAMPLES / "distributed_training.py"), *options, "--quick",
            "--train-limit", "512", "--test-limit", "300", "--verbose", "0", "--out", str(out)]


@pytest.mark.slow  # ~1-2 min on 2 cores; CI runs the slow tests too (.ci/run)
@needs_fashion_mnist
def test_distributed_training_quick(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        _distributed_command(out),
        check=False,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["replicas"] == 2 and results["global_batch"] == 128
    assert results["tflite_accuracy"] == pytest.approx(results["test_accuracy_saved"], abs=0.01)
    assert (out / "model.keras").exists() and (out / "model.tflite").exists()


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
@needs_fashion_mnist
def test_distributed_training_multiworker(tmp_path):
    """Two workers on localhost with TF_CONFIG, as the example's docstring shows."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        procs.append(
            subprocess.Popen(
                _distributed_command(tmp_path / "out", "--strategy", "multiworker"),
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, text in zip(procs, outputs):
        assert proc.returncode == 0, text[-4000:]
    assert (
        "2 replicas" in outputs[0] and "chief: True" in outputs[0] and "chief: False" in outputs[1]
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["strategy"] == "CollectiveAllReduceStrategy" and results["replicas"] == 2
    assert results["tflite_accuracy"] == pytest.approx(results["test_accuracy_saved"], abs=0.01)


def test_deployment_guide_bench_script(tmp_path):
    """docs/deployment.md's bench_litert.py (ai-edge-litert, no TensorFlow), run here with
    the x86-64 build of the delegate on a converted model."""
    pytest.importorskip("ai_edge_litert")
    from sbnn_zoo.models import fashion_mnist_cnn

    text = (ROOT / "docs" / "deployment.md").read_text()
    found = re.search(r"```python\n(# bench_litert\.py\n.*?)```", text, re.S)
    assert found, "bench_litert.py block not found in docs/deployment.md"
    script = tmp_path / "bench_litert.py"
    script.write_text(found.group(1))
    model = fashion_mnist_cnn(blocks=((32, False), (32, True)), stem_filters=8)
    (tmp_path / "model.tflite").write_bytes(sbnn_keras.convert(model, flavor="sparse"))
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "model.tflite"),
            "--delegate",
            sbnn_runtime.library_path(),
            "--threads",
            "1",
            "2",
            "--runs",
            "3",
            "--warmup",
            "1",
        ],
        check=False,
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.search(r"1 thread\(s\): median [0-9.]+ ms", proc.stdout), proc.stdout
    assert "2 thread(s): median" in proc.stdout


@pytest.mark.parametrize(
    "name",
    ["cifar10_resnet18", "cifar100_reactnet18", "si_bnn_fashion_mnist", "distributed_training"],
)
def test_example_help(name, capsys):
    module = load_example(name)
    with pytest.raises(SystemExit) as exc:
        module.parse_args(["--help"])
    assert exc.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_cifar_bad_arguments(capsys):
    module = load_example("cifar10_resnet18")
    for argv in (
        ["--pair", "7"],
        ["--ec", "0.07"],
        ["--pair", "1", "--ec", "0.1"],
        ["--epochs", "0"],
    ):
        with pytest.raises(SystemExit) as exc:
            module.parse_args(argv)
        assert exc.value.code == 2, argv
    err = capsys.readouterr().err
    assert "not one of the authors' pairs" in err and "0..6" in err
    args = module.parse_args(["--ec", "0.07", "--gamma", "0.05"])
    assert (args.ec, args.gamma) == (0.07, 0.05)
    quick = module.parse_args(["--quick", "--width", "32", "--batch-size", "512"])
    assert (quick.width, quick.batch_size, quick.epochs, quick.train_limit) == (32, 512, 1, 512)
    full = module.parse_args([])
    assert (full.epochs, full.batch_size, full.width, full.train_limit) == (500, 512, 64, None)


# ----------------------------------------------------------------- sbnn_zoo.zoo
def test_select_pair():
    assert zoo.select_pair(zoo.CIFAR10_PAIRS) == (0.05, 0.07)
    assert zoo.select_pair(zoo.CIFAR100_PAIRS) == (0.05, 0.05)
    assert zoo.select_pair(zoo.CIFAR10_PAIRS, ec=0.01) == (0.01, 0.10)
    assert zoo.select_pair(zoo.CIFAR100_PAIRS, pair=3) == (0.02, 0.06)
    assert zoo.select_pair(zoo.CIFAR10_PAIRS, pair=0, gamma=0.5) == (0.25, 0.5)
    with pytest.raises(ValueError, match="not both"):
        zoo.select_pair(zoo.CIFAR10_PAIRS, ec=0.05, pair=1)
    with pytest.raises(ValueError, match="0..4"):
        zoo.select_pair(zoo.CIFAR100_PAIRS, pair=5)


def test_ede_schedule_and_gradient():
    assert zoo.ede_t(0, 10) == pytest.approx(0.1)
    assert zoo.ede_t(5, 10) == pytest.approx(1.0)
    assert zoo.ede_t(10, 10) == pytest.approx(10.0)
    x = tf.constant([-2.0, -0.3, 0.0, 0.2, 1.5])
    for t in (0.1, 1.0, 10.0):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = zoo.ede_sign(x, t)
        grad = tape.gradient(y, x).numpy()
        k = max(1 / t, 1.0)
        np.testing.assert_allclose(
            grad, k * t * (1 - np.tanh(t * x.numpy()) ** 2), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_array_equal(y.numpy(), [-1, -1, 1, 1, 1])  # larq's sign(0) = +1


def test_irnet_quantizer_forward_and_config():
    q = zoo.IrNetSbnnQuantizer()
    w = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 4, 8)), tf.float32)
    q.build(w.shape)
    q.tau.assign(0.7)
    q.phi.assign(-0.2)
    np.testing.assert_allclose(q(w).numpy(), np.where(w.numpy() >= 0, 0.5, -0.9), rtol=1e-6)
    assert q.scales(w)["beta"] == pytest.approx(0.5)
    clone = zoo.IrNetSbnnQuantizer.from_config(q.get_config())
    assert (clone.scale, clone.t_min, clone.t_max, clone.clip_value, clone.standardize) == (
        "learned",
        0.1,
        10.0,
        1.5,
        "window",
    )
    # "window": the EDE's window in units of the channel's std, no 1/std gain
    q.t.assign(2.0)
    with tf.GradientTape() as tape:
        tape.watch(w)
        y = tf.reduce_sum(q(w))
    std = np.std(w.numpy().reshape(-1, 8), axis=0)
    expected = 0.7 * 1.0 * 2.0 * (1 - np.tanh(2.0 * w.numpy() / std) ** 2)
    np.testing.assert_allclose(tape.gradient(y, w).numpy(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="standardize"):
        zoo.IrNetSbnnQuantizer(standardize=True)
    sign = zoo.EdeSign.from_config(zoo.EdeSign(t_min=0.2).get_config())
    assert sign.t_min == 0.2 and sign.precision == 1


def test_mixup_keeps_label_mass():
    images = tf.random.uniform((16, 4, 4, 3)) * 255
    labels = tf.one_hot(tf.range(16) % 10, 10)
    mixed_x, mixed_y = zoo.mixup(images, labels, alpha=1.0)
    np.testing.assert_allclose(tf.reduce_sum(mixed_y, -1).numpy(), np.ones(16), rtol=1e-6)
    assert mixed_x.shape == images.shape


def test_zoo_models_schedule_and_save_load(tmp_path):
    """Both builders: SBNN layers found, EDE schedule applied, save/load round trip
    (training itself runs in the CIFAR tests above)."""
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    for build, kwargs in ((zoo.irnet_resnet18, {}), (zoo.reactnet18, {"num_classes": 5})):
        model = build(width=4, **kwargs)
        assert len(sbnn_keras.sbnn_layers(model)) == 16
        sbnn_keras.SparsityRegularizer(expected_connections=0.05, gamma=0.1).bind(model)
        schedule = zoo.EdeSchedule(4)
        schedule.set_model(model)
        schedule.on_epoch_begin(1)
        if build is zoo.irnet_resnet18:
            quantizers = schedule.quantizers(model)
            assert len(quantizers) == 32  # inputs and kernels of 16 layers
            assert all(float(q.t.numpy()) == pytest.approx(zoo.ede_t(1, 4)) for q in quantizers)
        for layer in model.layers:  # non-trivial values for every weight
            layer.set_weights(
                [
                    w + np.random.default_rng(2).normal(0, 0.1, w.shape).astype(w.dtype)
                    if w.ndim
                    else w
                    for w in layer.get_weights()
                ]
            )
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = sbnn_keras.load_model(path)
        np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), atol=1e-4)


def test_exclude_tf_keras_from_autograph_is_idempotent():
    from tensorflow.python.autograph.core import config as ag_config

    zoo.exclude_tf_keras_from_autograph()
    assert zoo.exclude_tf_keras_from_autograph() is False
    prefixes = [getattr(rule, "_prefix", None) for rule in ag_config.CONVERSION_RULES]
    assert prefixes.count("tf_keras") == 1
