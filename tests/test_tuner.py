"""KerasTuner over EC and gamma with tf_keras models (sbnn_keras.tuning.tuner).

Tiny model (one float conv, one SBNN conv) on random 8x8 images whose label is
the sign of the top half's mean, so a few epochs learn something.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import sbnn_keras
import keras_tuner as kt
import tensorflow as tf
from sbnn_keras.tuning import tuner as st

EC_RANGE = (0.02, 0.3)
GAMMA_RANGE = (0.01, 0.2)


def make_data(n=192, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int32")
    return x, y


def build_model(hp):
    inputs = tf.keras.Input((8, 8, 1))
    h = tf.keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    h = tf.keras.layers.BatchNormalization()(h)
    h = sbnn_keras.QuantConv2D(
        hp.Choice("filters", [4, 8]), 3, padding="same", use_bias=False,
        kernel_quantizer=st.kernel_quantizer(hp),
    )(h)
    h = tf.keras.layers.BatchNormalization()(h)
    h = tf.keras.layers.GlobalAveragePooling2D()(h)
    outputs = tf.keras.layers.Dense(2, activation="softmax")(h)
    return tf.keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def data():
    x, y = make_data()
    return {"x": x, "y": y, "validation_data": (x[:64], y[:64]), "batch_size": 64, "verbose": 0}


def common(tmp_path, name, **kwargs):
    kwargs.setdefault("ec", EC_RANGE)
    kwargs.setdefault("gamma", GAMMA_RANGE)
    kwargs.setdefault("seed", 7)
    return dict(directory=str(tmp_path), project_name=name, overwrite=True, **kwargs)


def check_trials(tuner, expected_trials):
    trials = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
    assert len(trials) == expected_trials
    for trial in trials:
        values = trial.hyperparameters.values
        assert EC_RANGE[0] <= values[st.EC] <= EC_RANGE[1]
        assert GAMMA_RANGE[0] <= values[st.GAMMA] <= GAMMA_RANGE[1]
        recorded = trial.metrics.metrics
        for name in ("val_accuracy", "val_loss", "loss", "connections", "bits_per_weight",
                     "bops_dense", "bops_kernel_skip", "bops_sparse", "bops_ratio", "cost",
                     "score"):
            assert name in recorded, name
        get = trial.metrics.get_last_value
        assert 0.0 <= get("val_accuracy") <= 1.0
        assert 0.0 <= get("connections") <= 1.0
        assert 0.0 <= get("bits_per_weight") <= 1.0
        assert get("bops_sparse") <= get("bops_kernel_skip") <= get("bops_dense")
    best = tuner.get_best_hyperparameters(1)[0]
    assert EC_RANGE[0] <= best[st.EC] <= EC_RANGE[1]
    assert GAMMA_RANGE[0] <= best[st.GAMMA] <= GAMMA_RANGE[1]
    assert best["filters"] in (4, 8)
    return trials


def test_plain_keras_tuner_rejects_tf_keras_but_ours_works(tmp_path, data):
    """The problem (keras-tuner issue 1039) and its solution, on the same model."""

    def compiled(hp):
        model = build_model(hp)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    plain = kt.RandomSearch(
        compiled, objective="val_accuracy", max_trials=1,
        directory=str(tmp_path), project_name="plain", overwrite=True,
    )
    with pytest.raises(kt.errors.FatalTypeError, match="valid Keras Model instance"):
        plain.search(data["x"], data["y"], validation_data=data["validation_data"],
                     epochs=1, verbose=0)

    tuner = st.RandomSearch(
        build_model, max_trials=2, scale_modes=("learned", "closed_form"),
        metrics=["accuracy"], **common(tmp_path, "ours"),
    )
    tuner.search(data["x"], data["y"], validation_data=data["validation_data"],
                 epochs=3, batch_size=64, verbose=0)
    trials = check_trials(tuner, 2)
    for trial in trials:
        assert trial.hyperparameters.values[st.SCALE_MODE] in ("learned", "closed_form")
        info = tuner.trial_info(trial.trial_id)
        assert info["tuner_id"] == "tuner0" and info["epochs_run"] == 3

    # get_best_models: a compiled tf_keras model with the trial's weights
    best_trial = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]
    assert isinstance(model, tf.keras.Model)
    assert type(model).__module__.startswith("tf_keras")
    assert isinstance(model.loss, sbnn_keras.SparsityRegularizer)
    assert model.loss.expected_connections == pytest.approx(best_trial.hyperparameters[st.EC])
    _, accuracy = model.evaluate(*data["validation_data"], verbose=0)
    assert accuracy == pytest.approx(best_trial.metrics.get_last_value("val_accuracy"), abs=1e-6)
    report = sbnn_keras.sparsity_report(model)
    assert report.total.connections == pytest.approx(
        best_trial.metrics.get_last_value("connections"), abs=1e-9)

    # the Pareto front, as table / JSON / PNG
    front = tuner.pareto_front()
    assert 1 <= len(front) <= 2
    assert "expected_connections" in str(front) and "val_accuracy" in str(front)
    data_json = json.loads(front.to_json(tmp_path / "front.json"))
    assert data_json["objectives"] == ["val_accuracy", "cost"]
    assert {r["id"] for r in data_json["records"]} == {t.trial_id for t in trials}
    tuner.plot_pareto(tmp_path / "front.png")
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"

    # a new tuner object on the same project reloads it (no retraining) ...
    again = st.RandomSearch(build_model, max_trials=2, directory=str(tmp_path),
                            project_name="ours", ec=EC_RANGE, gamma=GAMMA_RANGE)
    again.search(data["x"], data["y"], validation_data=data["validation_data"], epochs=3,
                 verbose=0)
    assert [r["id"] for r in again.pareto_front().front] == [r["id"] for r in front.front]
    # ... and so does reading the directory
    from_files = st.pareto_front_from_directory(tmp_path, "ours")
    assert [r["id"] for r in from_files.front] == [r["id"] for r in front.front]


def test_bayesian_optimization_with_latency_cost_and_score(tmp_path, data):
    calls = []

    def latency_fn(model):  # a stand-in for the project's runtime: fewer connections, faster
        calls.append(model.name)
        return 1e-3 * (0.5 + sbnn_keras.sparsity_report(model).total.connections)

    tuner = st.BayesianOptimization(
        build_model, objective="score", max_trials=3, num_initial_points=2,
        cost="latency", latency_fn=latency_fn, latency_reference=1e-3,
        optimizer=lambda hp: tf.keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-2, sampling="log")),
        **common(tmp_path, "bayes"),
    )
    tuner.search(data["x"], data["y"], validation_data=data["validation_data"],
                 epochs=2, batch_size=64, verbose=0)
    trials = check_trials(tuner, 3)
    assert len(calls) == 3
    for trial in trials:
        get = trial.metrics.get_last_value
        assert get("cost") == get("latency")
        assert get("score") == pytest.approx(get("val_accuracy") - 0.1 * get("latency") / 1e-3)
        assert 1e-3 <= trial.hyperparameters.values["lr"] <= 1e-2
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == max(t.metrics.get_last_value("score") for t in trials)
    assert tuner.pareto_front().labels == ("val_accuracy", "latency [s]")


def test_hyperband_continues_trials_from_their_checkpoints(tmp_path, data):
    initial_weights = []

    class RecordStart(tf.keras.callbacks.Callback):
        log = initial_weights  # class attribute: survives the tuner's deepcopy

        def on_train_begin(self, logs=None):
            self.log.append([w.copy() for w in self.model.get_weights()])

    tuner = st.Hyperband(build_model, max_epochs=2, factor=2, cost="bops_sparse",
                         **common(tmp_path, "hyperband"))
    tuner.search(data["x"], data["y"], validation_data=data["validation_data"],
                 epochs=50, batch_size=64, verbose=0, callbacks=[RecordStart()])
    trials = sorted(
        (t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"),
        key=lambda t: t.trial_id,
    )
    check_trials(tuner, len(trials))
    assert len(trials) == len(initial_weights) >= 3
    continued = 0
    for index, trial in enumerate(trials):
        values = trial.hyperparameters.values
        info = tuner.trial_info(trial.trial_id)
        # epochs/initial_epoch come from the oracle, not from search(epochs=50)
        assert info["epochs_run"] == values["tuner/epochs"] - values["tuner/initial_epoch"]
        assert info["initial_epoch"] == values["tuner/initial_epoch"]
        assert trial.metrics.get_last_value("cost") == trial.metrics.get_last_value("bops_sparse")
        parent = values.get("tuner/trial_id")
        if parent:
            continued += 1
            assert info["continued_from"] == parent
            parent_model = tuner.load_model(tuner.oracle.get_trial(parent))
            for got, want in zip(initial_weights[index], parent_model.get_weights()):
                np.testing.assert_array_equal(got, want)
    assert continued >= 1
    assert all(isinstance(m, tf.keras.Model) for m in tuner.get_best_models(2))


def test_search_space_declares_log_scaled_ec():
    hp = kt.HyperParameters()
    values = st.search_space(hp, ec=(0.01, 0.25), gamma=(0.0, 0.2), scale_modes=["learned"])
    assert values == {st.EC: 0.01, st.GAMMA: 0.0, st.SCALE_MODE: "learned"}
    by_name = {p.name: p for p in hp.space}
    assert by_name[st.EC].sampling == "log"
    assert (by_name[st.EC].min_value, by_name[st.EC].max_value) == (0.01, 0.25)
    assert by_name[st.GAMMA].sampling == "linear"
    assert isinstance(by_name[st.SCALE_MODE], kt.engine.hyperparameters.Fixed)
    assert st.kernel_quantizer(hp) == "sbnn_learned"

    hp = kt.HyperParameters()
    values = st.search_space(hp, ec=0.05, gamma=0.07, scale_modes=("closed_form", "symmetric"))
    assert values[st.EC] == 0.05 and values[st.GAMMA] == 0.07
    assert isinstance(hp._hps[st.EC][0], kt.engine.hyperparameters.Fixed)
    assert st.kernel_quantizer(hp) == "sbnn"  # the Choice's default: its first value
    assert st.kernel_quantizer(kt.HyperParameters(), default="symmetric") == "sbnn_symmetric"


@pytest.mark.parametrize(
    "kwargs, argument, value",
    [
        ({"ec": (0.0, 0.3)}, "ec", "(0.0, 0.3)"),
        ({"ec": (0.1, 1.0)}, "ec", "(0.1, 1.0)"),
        ({"ec": 1.5}, "ec", "1.5"),
        ({"ec": (0.3, 0.1)}, "ec", "(0.3, 0.1)"),
        ({"ec": "0.1"}, "ec", "'0.1'"),
        ({"gamma": (0.1, 1.0)}, "gamma", "(0.1, 1.0)"),
        ({"gamma": -0.01}, "gamma", "-0.01"),
        ({"gamma": (0.0, 0.1), "gamma_sampling": "log"}, "gamma_sampling", "'log'"),
        ({"scale_modes": ["learned", "magic"]}, "scale_modes", "['learned', 'magic']"),
        ({"objective": "bops"}, "objective", "'bops'"),
        ({"objective": ["val_accuracy", "flops"]}, "objective", "['val_accuracy', 'flops']"),
        ({"objective": "latency"}, "objective", "'latency'"),
        ({"cost": "flops"}, "cost", "'flops'"),
        ({"cost": "latency"}, "cost='latency'", "latency_fn=None"),
        ({"latency_fn": 3}, "latency_fn", "3"),
        ({"objective": "score", "cost": "latency", "latency_fn": lambda m: 1.0},
         "latency_reference", "None"),
        ({"optimizer": "no_such_optimizer"}, "optimizer", "'no_such_optimizer'"),
        ({"regularizer_kwargs": {"gamma": 0.1}}, "regularizer_kwargs", "{'gamma': 0.1}"),
    ],
)
def test_bad_input_names_the_argument_and_value(tmp_path, kwargs, argument, value):
    with pytest.raises(ValueError) as info:
        st.RandomSearch(build_model, max_trials=1, directory=str(tmp_path), **kwargs)
    message = str(info.value)
    assert f"`{argument}" in message and value in message, message
    assert message.startswith("RandomSearch:")


def test_search_space_function_validates_too():
    with pytest.raises(ValueError, match=r"search_space: both ends of `ec`.*\(0, 0.5\)"):
        st.search_space(kt.HyperParameters(), ec=(0, 0.5))
    with pytest.raises(ValueError, match=r"`gamma` must be in \[0.0, 1.0\), got 1.0"):
        st.search_space(kt.HyperParameters(), gamma=1.0)


def test_build_model_must_return_a_tf_keras_sbnn_model(tmp_path):
    with pytest.raises(kt.errors.FatalTypeError, match="must return a tf_keras"):
        st.RandomSearch(lambda hp: "not a model", max_trials=1, directory=str(tmp_path))

    import keras  # Keras 3, which KerasTuner itself imports

    def keras3_model(hp):
        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    with pytest.raises(kt.errors.FatalTypeError, match="It is a Keras 3 model"):
        st.RandomSearch(keras3_model, max_trials=1, directory=str(tmp_path))

    def dense_only(hp):
        inputs = tf.keras.Input((8, 8, 1))
        outputs = tf.keras.layers.Dense(2)(tf.keras.layers.Flatten()(inputs))
        return tf.keras.Model(inputs, outputs)

    tuner = st.RandomSearch(dense_only, max_trials=1, directory=str(tmp_path), project_name="d")
    x, y = make_data(16)
    with pytest.raises(kt.errors.FatalValueError, match="no SBNN layer"):
        tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0)


def test_distribution_strategy_scope(tmp_path, data):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    tuner = st.RandomSearch(build_model, max_trials=1, distribution_strategy=strategy,
                            **common(tmp_path, "mirrored"))
    tuner.search(data["x"], data["y"], validation_data=data["validation_data"], epochs=1,
                 batch_size=64, verbose=0)
    check_trials(tuner, 1)
    model = tuner.get_best_models(1)[0]
    assert model.distribute_strategy is strategy


def test_missing_validation_data_is_a_clear_error(tmp_path, data):
    tuner = st.RandomSearch(build_model, max_trials=1, **common(tmp_path, "noval"))
    with pytest.raises(kt.errors.FatalValueError, match="pass `validation_data=`"):
        tuner.search(data["x"], data["y"], epochs=1, verbose=0)


# ------------------------------------------------------------- distributed
DIST_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import sbnn_keras
    import tensorflow as tf
    sys.path.insert(0, {tests_dir!r})
    from test_tuner import build_model, make_data
    from sbnn_keras.tuning import tuner as st

    directory = sys.argv[1]
    chief = st.is_chief()
    x, y = make_data(128)
    # overwrite=False everywhere: the directory is fresh, and a chief that wiped it
    # could race with workers that already started.
    tuner = st.RandomSearch(build_model, max_trials=4, seed=11, directory=directory,
                            project_name="dist", ec=(0.02, 0.3))
    tuner.search(x, y, validation_data=(x[:64], y[:64]), epochs=1, batch_size=64, verbose=0)
    if chief:
        trials = tuner.trials()
        summary = {{
            "trials": {{t.trial_id: {{"status": t.status,
                                   "metrics": sorted(t.metrics.metrics)}} for t in trials}},
            "front": [r["id"] for r in tuner.pareto_front().front],
        }}
        with open(os.path.join(directory, "chief_summary.json"), "w") as fh:
            json.dump(summary, fh)
    """
)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_distributed_chief_and_two_workers(tmp_path):
    """KerasTuner's own chief/worker mode (gRPC on localhost) with tf_keras models."""
    script = tmp_path / "dist_script.py"
    script.write_text(DIST_SCRIPT.format(tests_dir=str(Path(__file__).parent)))
    port = _free_port()
    base_env = dict(
        os.environ,
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join(
            [str(Path(sbnn_keras.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    base_env.pop("TF_USE_LEGACY_KERAS", None)
    processes, logs = {}, {}
    deadline = time.time() + 600
    try:
        for tuner_id in ("chief", "tuner0", "tuner1"):
            logs[tuner_id] = open(tmp_path / f"{tuner_id}.log", "w")
            processes[tuner_id] = subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / "project")],
                env=dict(base_env, KERASTUNER_TUNER_ID=tuner_id),
                stdout=logs[tuner_id], stderr=subprocess.STDOUT, cwd=str(tmp_path),
            )
            # workers may start before the chief serves: their gRPC calls wait for it
        for tuner_id in ("tuner0", "tuner1", "chief"):
            try:
                code = processes[tuner_id].wait(timeout=max(1.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                code = "timeout"
            logs[tuner_id].flush()
            assert code == 0, (tuner_id, code, (tmp_path / f"{tuner_id}.log").read_text()[-3000:])
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
        for log in logs.values():
            log.close()

    project = tmp_path / "project" / "dist"
    summary = json.loads((project.parent / "chief_summary.json").read_text())
    assert len(summary["trials"]) == 4
    assert all(t["status"] == "COMPLETED" for t in summary["trials"].values())
    assert all("bops_kernel_skip" in t["metrics"] for t in summary["trials"].values())
    assert summary["front"]
    runners = {}
    for trial_id in summary["trials"]:
        info = json.loads((project / f"trial_{trial_id}" / "sbnn_trial.json").read_text())
        runners.setdefault(info["tuner_id"], []).append(trial_id)
    assert set(runners) == {"tuner0", "tuner1"}, runners  # split across both workers
    assert all(len(ids) >= 1 for ids in runners.values())
    # the results are on disk for anyone: the front from the files
    front = st.pareto_front_from_directory(tmp_path / "project", "dist")
    assert [r["id"] for r in front.front] == summary["front"]
