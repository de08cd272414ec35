"""Save, restore, resume: nothing of a training run is lost.

Already elsewhere (not repeated): layer outputs and configs through .keras / .h5 /
SavedModel (tests/test_layers.py), the regularizer's config and binding through
.keras / .h5 and further training reducing connections (tests/test_regularizer.py).

Here:
* every format (.keras, .h5, SavedModel) keeps *the whole training state*: after
  loading, one more training step on the original and on the loaded model gives
  the same weights (so optimizer slots, its iteration count and learning-rate
  schedule, BatchNorm statistics, learned tau/phi and Si-BNN thresholds came back)
  and the same regularizer values (lambda, j, connections);
* training interrupted mid-way and resumed from a checkpoint, with
  ``tf.keras.callbacks.BackupAndRestore`` (in a fresh model, as after a crash) and
  with ``ModelCheckpoint`` + ``sbnn_keras.load_model`` + ``initial_epoch``, ends with
  the same weights and the same fraction of connections (EC) as an uninterrupted
  run (slow: one fresh process runs all three);
* converting a reloaded model gives the same .tflite: identical ops, tensors and
  constant buffers; the bytes differ only in tensor *names*, into which TensorFlow
  writes process-wide counters (``ste_sign_2`` vs ``ste_sign_14``, depending on
  how often the quantizer was traced before); two fresh processes that load and
  convert the model saved in different formats write byte-identical files (slow).

Tolerances: the resumed and uninterrupted runs execute the same float operations
on the same data in the same order (single-threaded, op determinism on, no
shuffling), from bit-identical restored state, so they are expected to agree
exactly; weights are compared with atol 1e-6 to allow a re-traced function to
reassociate a sum, and the connection counts (signs of latent weights) must match
exactly. The one-step checks compare float32 results of one Adam step: 1e-6.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import sbnn_keras
from sbnn_keras import SparsityRegularizer
from sbnn_keras.layers import latent_kernel, sbnn_layers

ROOT = Path(__file__).resolve().parents[1]

# The model and data used everywhere (also written into the subprocess scripts).
MODEL_SOURCE = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    import sbnn_keras

    def build():
        inp = tf.keras.Input((8, 8, 2))
        x = tf.keras.layers.Conv2D(8, 3, padding="same")(inp)
        x = tf.keras.layers.BatchNormalization()(x)
        x = sbnn_keras.QuantConv2D(16, 3, padding="same", use_bias=False)(x)
        x = tf.keras.layers.BatchNormalization()(x)
        x = sbnn_keras.QuantConv2D(
            16, 3, padding="same", use_bias=False, input_quantizer="si_bnn",
            kernel_quantizer=sbnn_keras.SbnnQuantizer("learned", per_channel=True))(x)
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
        x = sbnn_keras.QuantDense(4)(x)
        return tf.keras.Model(inp, x, name="m")

    def compile_model(model, gamma=0.3):
        reg = sbnn_keras.SparsityRegularizer(
            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            expected_connections=0.1, gamma=gamma)
        schedule = tf.keras.optimizers.schedules.CosineDecay(0.02, decay_steps=40, alpha=0.1)
        model.compile(tf.keras.optimizers.Adam(schedule), loss=reg.bind(model))
        return reg

    def data(n=32, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 8, 8, 2)).astype("float32")
        y = rng.integers(0, 4, n)
        return x, y
    """
)
_ns: dict = {}
exec(MODEL_SOURCE, _ns)  # noqa: S102 - our own source, shared with the subprocesses
build, compile_model, data = _ns["build"], _ns["compile_model"], _ns["data"]


def connections(model):
    ws = [latent_kernel(layer).numpy() for layer in sbnn_layers(model)]
    return int(sum(np.sum(w >= 0) for w in ws)), int(sum(w.size for w in ws))


def _save_path(tmp_path, fmt):
    return str(tmp_path / ("model" + fmt if fmt != "savedmodel" else "model_savedmodel"))


@pytest.fixture(scope="module")
def trained():
    """A model trained for 2 epochs (regularizer active, schedule half-way)."""
    tf.keras.utils.set_random_seed(0)
    model = build()
    reg = compile_model(model)
    x, y = data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    assert reg.values()["lambda"] > 0
    return model, reg


@pytest.mark.parametrize("fmt", [".keras", ".h5", "savedmodel"])
def test_every_format_keeps_the_training_state(trained, tmp_path, fmt):
    model, reg = trained
    x, y = data()
    path = _save_path(tmp_path, fmt)
    model.save(path)
    loaded = sbnn_keras.load_model(path)
    lreg = loaded.loss
    assert isinstance(lreg, SparsityRegularizer), f"{fmt}: the loss came back as {type(lreg).__name__}"
    assert lreg.get_config() == reg.get_config()
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 8
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    names = [w.name for w in model.weights]
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"{fmt}: {a.name}")
    assert any("tau" in n for n in names) and any("threshold" in n for n in names)
    assert any("moving_mean" in n for n in names)

    # One more step on the original (then put back as it was) and on the loaded model.
    weights = [v.numpy() for v in model.weights]
    slots = [v.numpy() for v in model.optimizer.variables]
    model.train_on_batch(x[:8], y[:8])
    want_weights = [v.numpy() for v in model.weights]
    want_values = reg.values()
    for v, w in zip(model.weights + list(model.optimizer.variables), weights + slots):
        v.assign(w)
    loaded.train_on_batch(x[:8], y[:8])
    for a, b, name in zip(want_weights, loaded.weights, names):
        np.testing.assert_allclose(b.numpy(), a, atol=1e-6, rtol=0, err_msg=f"{fmt}: {name}")
    got_values = lreg.values()
    for key in ("lambda", "j", "connections", "total_loss"):
        assert got_values[key] == pytest.approx(want_values[key], rel=1e-6, abs=1e-7), (fmt, key)


# ---- interrupted and resumed training ------------------------------------------------

RESUME_SCRIPT = MODEL_SOURCE + textwrap.dedent(
    """
    import json, os, sys
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    workdir, modes = sys.argv[1], sys.argv[2:]
    EPOCHS, STOP_AT = 5, 2
    x, y = data()

    class Crash(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == STOP_AT:
                raise KeyboardInterrupt("simulated crash")

    def fresh():
        tf.keras.utils.set_random_seed(0)
        model = build()
        return model, compile_model(model)

    def result(mode, model):
        ws = [sbnn_keras.layers.latent_kernel(l).numpy() for l in sbnn_keras.layers.sbnn_layers(model)]
        np.savez(os.path.join(workdir, mode + ".npz"), *model.get_weights())
        return {"mode": mode, "connections": int(sum((w >= 0).sum() for w in ws)),
                "weights": int(sum(w.size for w in ws)), "iterations": int(model.optimizer.iterations.numpy())}

    fit = dict(batch_size=8, verbose=0, shuffle=False)
    for mode in modes:
        if mode == "straight":
            model, reg = fresh()
            model.fit(x, y, epochs=EPOCHS, **fit)
        elif mode == "backup":
            backup = os.path.join(workdir, "backup")
            model, reg = fresh()
            try:
                model.fit(x, y, epochs=EPOCHS, callbacks=[tf.keras.callbacks.BackupAndRestore(backup), Crash()],
                          **fit)
                raise SystemExit("the crash did not happen")
            except KeyboardInterrupt:
                pass
            model, reg = fresh()  # a restarted process starts like this
            model.fit(x, y, epochs=EPOCHS, callbacks=[tf.keras.callbacks.BackupAndRestore(backup)], **fit)
        elif mode == "checkpoint":
            pattern = os.path.join(workdir, "ckpt-{epoch:02d}.keras")
            model, reg = fresh()
            try:
                model.fit(x, y, epochs=EPOCHS, callbacks=[tf.keras.callbacks.ModelCheckpoint(pattern), Crash()],
                          **fit)
                raise SystemExit("the crash did not happen")
            except KeyboardInterrupt:
                pass
            model = sbnn_keras.load_model(pattern.format(epoch=STOP_AT))
            model.fit(x, y, epochs=EPOCHS, initial_epoch=STOP_AT, **fit)
        print("RESULT " + json.dumps(result(mode, model)), flush=True)
    """
)


@pytest.fixture(scope="module")
def resume_runs(tmp_path_factory):
    """mode -> (result, weights) of the uninterrupted run and the two resumed ones,
    all in one fresh process (op determinism is process-wide)."""
    workdir = tmp_path_factory.mktemp("resume")
    script = workdir / "resume.py"
    script.write_text(RESUME_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    modes = ["straight", "backup", "checkpoint"]
    proc = subprocess.run([sys.executable, str(script), str(workdir), *modes], capture_output=True, text=True,
                          env=env, timeout=1800)
    results = [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and len(results) == 3, f"resume runs failed:\n{proc.stderr[-3000:]}"
    out = {}
    for r in results:
        weights = np.load(workdir / f"{r['mode']}.npz")
        out[r["mode"]] = (r, [weights[k] for k in weights.files])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["backup", "checkpoint"])
def test_interrupted_training_reaches_the_same_ec(resume_runs, mode):
    (ref, ref_w), (got, got_w) = resume_runs["straight"], resume_runs[mode]
    assert got["iterations"] == ref["iterations"] == 20
    assert got["connections"] == ref["connections"], (ref, got)
    assert got["connections"] / got["weights"] < 0.5  # the regularizer did work
    assert len(got_w) == len(ref_w)
    for i, (a, b) in enumerate(zip(ref_w, got_w)):
        np.testing.assert_allclose(b, a, atol=1e-6, rtol=0, err_msg=f"{mode}: weight {i}")


# ---- conversion of a reloaded model ------------------------------------------------


def _parse(data: bytes):
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))


def _structure(data: bytes):
    """Everything of a .tflite except tensor names: opcodes, operators (inputs,
    outputs, options), tensors (shape, type, quantization, buffer), buffers."""
    m = _parse(data)
    g = m.subgraphs[0]
    arr = lambda v: None if v is None else [float(x) for x in np.ravel(v)]  # noqa: E731
    return {
        "opcodes": [(c.builtinCode, c.deprecatedBuiltinCode, c.customCode, c.version) for c in m.operatorCodes],
        "ops": [(o.opcodeIndex, list(o.inputs), list(o.outputs), o.builtinOptionsType,
                 None if o.customOptions is None else bytes(o.customOptions)) for o in g.operators],
        "tensors": [(list(t.shape) if t.shape is not None else None, t.type, t.buffer,
                     None if t.quantization is None else (arr(t.quantization.scale), arr(t.quantization.zeroPoint)))
                    for t in g.tensors],
        "buffers": [None if b.data is None else bytes(b.data) for b in m.buffers],
        "io": (list(g.inputs), list(g.outputs)),
    }


def _names(data: bytes):
    return [t.name.decode() for t in _parse(data).subgraphs[0].tensors]


def _counter_free(name: str) -> str:
    """A tensor name without TensorFlow's uniquifying counters: every path part's
    ``_<n>`` suffix dropped (``ste_sign_14/Sign_1`` -> ``ste_sign/Sign``), including a
    counter cut short by the converter's 50-character limit on fused names, and the
    ``;`` that limit leaves or cuts before a suffix our converter appends
    (``Sign_1;/fused_q_A`` vs ``Sign_/fused_q_A``)."""
    return re.sub(r";(?=/)", "", re.sub(r"_\d*(?=[/;]|$)", "", name))


@pytest.mark.parametrize("flavor", ["lce", pytest.param("sparse", marks=pytest.mark.slow)])
def test_reloaded_model_converts_to_the_same_tflite(trained, tmp_path, flavor):
    model, _ = trained
    path = _save_path(tmp_path, ".keras")
    model.save(path)
    loaded = sbnn_keras.load_model(path)
    a = sbnn_keras.convert(model, flavor=flavor)
    b = sbnn_keras.convert(loaded, flavor=flavor)
    assert len(a) == len(b)
    assert _structure(a) == _structure(b)
    na, nb = _names(a), _names(b)
    differing = [(x, y) for x, y in zip(na, nb) if x != y]
    for x, y in differing:  # only counters differ (see the module docstring)
        cx, cy = _counter_free(x), _counter_free(y)
        n = min(len(cx), len(cy))
        assert cx[:n] == cy[:n] and n >= min(len(x), len(y)) - 8, (x, y)


CONVERT_SCRIPT = textwrap.dedent(
    """
    import sys
    import sbnn_keras
    model = sbnn_keras.load_model(sys.argv[1])
    open(sys.argv[2], "wb").write(sbnn_keras.convert(model, flavor=sys.argv[3]))
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["lce", "sparse"])
def test_fresh_processes_convert_every_format_byte_identically(trained, tmp_path, flavor):
    model, _ = trained
    script = tmp_path / "convert.py"
    script.write_text(CONVERT_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    outputs = {}
    for fmt in (".keras", ".h5", "savedmodel"):
        path = _save_path(tmp_path, fmt)
        model.save(path)
        out = tmp_path / f"{fmt.strip('.')}.tflite"
        proc = subprocess.run([sys.executable, str(script), path, str(out), flavor], capture_output=True,
                              text=True, env=env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs[fmt] = out.read_bytes()
    assert outputs[".keras"] == outputs[".h5"] == outputs["savedmodel"]
    assert _structure(outputs[".keras"]) == _structure(sbnn_keras.convert(model, flavor=flavor))


def test_zoo_models_load_without_importing_the_zoo(tmp_path):
    """A model built with ``sbnn_zoo.zoo`` (EDE sign, IR-Net quantizer, HardTanh) saved
    to .keras loads in a fresh process that never imported the zoo, through
    ``sbnn_keras.load_model`` (the zoo's ``sbnn_keras.custom_objects`` entry point):
    same outputs."""
    import sbnn_keras  # noqa: F401
    from sbnn_zoo import zoo

    model = zoo.irnet_resnet18(num_classes=3, width=8, input_shape=(8, 8, 3), normalize=None)
    path = tmp_path / "irnet.keras"
    model.save(path)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model(x, training=False).numpy())
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import sbnn_keras
        d = sys.argv[1]
        m = sbnn_keras.load_model(d + "/irnet.keras")
        kinds = {type(l.kernel_quantizer).__name__ for l in sbnn_keras.sbnn_layers(m)}
        y = m(np.load(d + "/x.npy"), training=False).numpy()
        np.testing.assert_allclose(y, np.load(d + "/y.npy"), rtol=1e-5, atol=1e-6)
        print("OK", sorted(kinds))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout and "IrNetSbnnQuantizer" in proc.stdout, proc.stdout
