"""KerasTuner search over the SBNN sparsity target (EC) and its weight (gamma).

KerasTuner 1.4 imports Keras 3 and rejects the legacy-Keras (tf_keras) models that
larq and sbnn_keras need: ``keras_tuner.Tuner`` checks
``isinstance(model, keras.Model)`` against Keras 3, and its compile, checkpoint and
``clear_session`` calls go to Keras 3 too (keras-tuner issue 1039). The tuners
here keep everything of KerasTuner that has nothing to do with Keras (oracles,
hyperparameters, trials, the project directory, the chief/worker gRPC mode) and
replace the Keras part: they derive from ``keras_tuner``'s ``BaseTuner`` and
implement ``run_trial``, ``save_model`` and ``load_model`` with tf_keras:

1. build the trial's tf_keras model with your ``build_model(hp)``;
2. compile it with a fresh :class:`~sbnn_keras.SparsityRegularizer` using the
   trial's ``expected_connections`` (EC) and ``gamma``;
3. fit it (Hyperband: ``epochs``/``initial_epoch`` from the trial, and weights of
   the trial it continues, as ``keras_tuner.Hyperband`` does);
4. save its weights (tf_keras HDF5, ``trial_<id>/checkpoint.h5``) and
   return the metrics of the last epoch plus the sparsity figures of
   :func:`~sbnn_keras.sparsity_report` (and the latency, if you give a
   ``latency_fn``) as the trial's metrics.

Every trial records: the last epoch's logs (``loss``, ``accuracy``, ``val_loss``,
``val_accuracy``, ...), ``connections``, ``bits_per_weight``, ``k0``, ``k1``,
``bops_dense``, ``bops_kernel_skip``, ``bops_sparse``, ``bops_ratio``
(cost / dense BOPs), ``cost`` (the chosen cost: BOPs with kernel skipping, sparse
BOPs, or latency), ``latency`` (with ``latency_fn``) and ``score``
(``accuracy - cost_weight * normalised cost``).

The oracle optimises one ``objective`` (default ``"val_accuracy"``); the
trade-off itself is the Pareto front of all trials over (accuracy, cost):
:meth:`SbnnTuner.pareto_front`.

Example::

    import sbnn_keras, tensorflow as tf
    from sbnn_keras.tuning import tuner as sbnn_tuner
    from sbnn_zoo.models import fashion_mnist_cnn

    def build_model(hp):                      # uncompiled tf_keras model
        return fashion_mnist_cnn(kernel_quantizer=sbnn_tuner.kernel_quantizer(hp))

    tuner = sbnn_tuner.RandomSearch(
        build_model, max_trials=8, ec=(0.01, 0.25), gamma=(0.01, 0.2),
        loss="sparse_categorical_crossentropy", optimizer="adam",
        metrics=["accuracy"], cost="bops_kernel_skip",
        directory="tuning", project_name="fmnist")
    tuner.search(x, y, validation_data=(xv, yv), epochs=3, batch_size=128)
    front = tuner.pareto_front()
    print(front)                              # table of the non-dominated trials
    front.to_json("front.json"); tuner.plot_pareto("front.png")
    best = tuner.get_best_models(1)[0]        # a compiled tf_keras model
"""

from __future__ import annotations

import copy
import gc
import inspect
import json
import os
import socket
import time
from typing import Callable, Optional, Sequence

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import keras_tuner as kt  # noqa: E402  (imports Keras 3; tf.keras stays tf_keras)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras_tuner.src.distribute import utils as _dist_utils  # noqa: E402

from sbnn_keras import _checks  # noqa: E402
from sbnn_keras.tuning import pareto as pareto_mod  # noqa: E402
from sbnn_keras import quantizers as quantizers_mod  # noqa: E402
from sbnn_keras.metrics import report as report_mod  # noqa: E402
from sbnn_keras.regularizer import SparsityRegularizer  # noqa: E402

__all__ = [
    "EC",
    "GAMMA",
    "SCALE_MODE",
    "COSTS",
    "search_space",
    "kernel_quantizer",
    "SbnnTuner",
    "RandomSearch",
    "BayesianOptimization",
    "Hyperband",
    "load_trials",
    "pareto_front_from_directory",
    "is_chief",
    "is_worker",
]

#: Hyperparameter names used by :func:`search_space` and read by the tuners.
EC = "expected_connections"
GAMMA = "gamma"
SCALE_MODE = "scale_mode"

#: Costs the Pareto front can use (the ``cost`` argument).
COSTS = ("bops_kernel_skip", "bops_sparse", "latency")
_COST_LABELS = {
    "bops_kernel_skip": "BOPs per sample (kernel skipping)",
    "bops_sparse": "BOPs per sample (sparse)",
    "latency": "latency [s]",
}
_SAMPLINGS = ("linear", "log", "reverse_log")
_SCALE_TO_QUANTIZER = {"closed_form": "sbnn", "learned": "sbnn_learned", "symmetric": "sbnn_symmetric"}

#: Recorded metrics that can be an objective, with their direction.
_SBNN_METRICS = {
    "connections": "min",
    "bits_per_weight": "min",
    "bops_dense": "min",
    "bops_kernel_skip": "min",
    "bops_sparse": "min",
    "bops_ratio": "min",
    "cost": "min",
    "latency": "min",
    "score": "max",
}

CHECKPOINT_NAME = "checkpoint.h5"  # tf_keras HDF5 weights (no optimizer state)
TRIAL_INFO_NAME = "sbnn_trial.json"


# ------------------------------------------------------------------ validation
_is_number = _checks.is_number


def _check_range(value, argument, owner, low, high, low_open, high_open):
    """A number or a ``(low, high)`` pair inside the interval; returns floats."""
    text = _checks.interval(low, high, low_open, high_open)
    if _is_number(value):
        return _checks.number_in(value, argument, owner, low, high, low_open, high_open)
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(_is_number(v) for v in value)
    ):
        lo, hi = float(value[0]), float(value[1])
        if not all(_checks.inside(v, low, high, low_open, high_open) for v in (lo, hi)):
            raise ValueError(
                f"{owner}: both ends of `{argument}` must be in {text}, got {value!r}."
            )
        if lo > hi:
            raise ValueError(
                f"{owner}: `{argument}` must be (low, high) with low <= high, got {value!r}."
            )
        return (lo, hi)
    raise ValueError(
        f"{owner}: `{argument}` must be a number or a (low, high) pair of numbers in "
        f"{text}, got {value!r}."
    )


def _check_sampling(value, argument, owner, rng):
    if value not in _SAMPLINGS:
        raise ValueError(f"{owner}: `{argument}` must be one of {_SAMPLINGS}, got {value!r}.")
    if value != "linear" and isinstance(rng, tuple) and rng[0] <= 0:
        raise ValueError(
            f"{owner}: `{argument}={value!r}` needs a range above 0, got {rng!r}."
        )
    return value


def _check_scale_modes(value, owner):
    if value is None:
        return None
    modes = (value,) if isinstance(value, str) else value
    if (
        not isinstance(modes, (tuple, list))
        or not modes
        or any(m not in quantizers_mod.SCALE_MODES for m in modes)
        or len(set(modes)) != len(modes)
    ):
        raise ValueError(
            f"{owner}: `scale_modes` must be None, one of {quantizers_mod.SCALE_MODES} or a "
            f"sequence of distinct ones, got {value!r}."
        )
    return tuple(modes)


def _check_space(ec, gamma, scale_modes, ec_sampling, gamma_sampling, owner):
    ec = _check_range(ec, "ec", owner, 0.0, 1.0, True, True)
    gamma = _check_range(gamma, "gamma", owner, 0.0, 1.0, False, True)
    return {
        "ec": ec,
        "gamma": gamma,
        "scale_modes": _check_scale_modes(scale_modes, owner),
        "ec_sampling": _check_sampling(ec_sampling, "ec_sampling", owner, ec),
        "gamma_sampling": _check_sampling(gamma_sampling, "gamma_sampling", owner, gamma),
    }


def _declare(hp, name, value, sampling):
    if isinstance(value, tuple):
        lo, hi = value
        if lo == hi:
            return hp.Fixed(name, lo)
        return hp.Float(name, lo, hi, sampling=sampling)
    return hp.Fixed(name, value)


# ------------------------------------------------------------ search-space API
def search_space(
    hp: kt.HyperParameters,
    ec=(0.01, 0.25),
    gamma=(0.01, 0.2),
    scale_modes=None,
    *,
    ec_sampling: str = "log",
    gamma_sampling: str = "linear",
) -> dict:
    """Declare the SBNN hyperparameters on ``hp`` and return their current values.

    The tuners call this for you with their ``ec``/``gamma``/``scale_modes``
    arguments; call it yourself only with plain KerasTuner code.

    Args:
        hp: a ``keras_tuner.HyperParameters``.
        ec: expected connections EC: a ``(low, high)`` range inside (0, 1),
            sampled on a log scale by default, or a single number (fixed).
        gamma: share of the sparsity term in the loss: a ``(low, high)`` range
            inside [0, 1) (linear by default) or a single number (fixed).
        scale_modes: None (not tuned), one of ``"closed_form"``, ``"learned"``,
            ``"symmetric"``, or a sequence of them (a ``Choice``); read it in
            ``build_model`` with :func:`kernel_quantizer`.
        ec_sampling, gamma_sampling: ``"linear"``, ``"log"`` or ``"reverse_log"``.

    Returns:
        ``{"expected_connections": ..., "gamma": ...[, "scale_mode": ...]}``.

    Raises:
        ValueError: a range outside its interval, low > high, an unknown scale
            mode or sampling (the message names the argument and quotes the value).

    Example::

        hp = keras_tuner.HyperParameters()
        search_space(hp, ec=(0.02, 0.2), gamma=0.05)
        # {'expected_connections': 0.02, 'gamma': 0.05}
    """
    space = _check_space(ec, gamma, scale_modes, ec_sampling, gamma_sampling, "search_space")
    values = {
        EC: _declare(hp, EC, space["ec"], space["ec_sampling"]),
        GAMMA: _declare(hp, GAMMA, space["gamma"], space["gamma_sampling"]),
    }
    modes = space["scale_modes"]
    if modes is not None:
        values[SCALE_MODE] = (
            hp.Fixed(SCALE_MODE, modes[0]) if len(modes) == 1 else hp.Choice(SCALE_MODE, list(modes))
        )
    return values


def kernel_quantizer(hp: kt.HyperParameters, default: str = "learned") -> str:
    """The larq/sbnn_keras quantizer name for the trial's ``scale_mode``.

    Returns ``"sbnn"`` (closed form), ``"sbnn_learned"`` or ``"sbnn_symmetric"``,
    for ``kernel_quantizer=`` of sbnn_keras layers and
    :func:`sbnn_zoo.models.fashion_mnist_cnn`; ``default`` when ``scale_mode``
    is not tuned.

    Raises:
        ValueError: ``default`` is not a scale mode.
    """
    if default not in _SCALE_TO_QUANTIZER:
        raise ValueError(
            f"kernel_quantizer: `default` must be one of {quantizers_mod.SCALE_MODES}, "
            f"got {default!r}."
        )
    mode = hp.values.get(SCALE_MODE, default)
    return _SCALE_TO_QUANTIZER[mode]


# ----------------------------------------------------------------- hypermodel
def _accepts_argument(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return bool(positional)


class _SbnnHyperModel(kt.HyperModel):
    """Wraps ``build_model(hp)``: declares EC/gamma first, checks the model type."""

    def __init__(self, build_model, space, optimizer):
        super().__init__(name=getattr(build_model, "__name__", None))
        if isinstance(build_model, kt.HyperModel):
            self._build_fn = build_model.build
        else:
            self._build_fn = build_model
        self._space = space
        self._optimizer = optimizer

    def declare_hyperparameters(self, hp):
        self._declare(hp)
        # Let an optimizer factory register its hyperparameters (learning rate...).
        if callable(self._optimizer) and not isinstance(
            self._optimizer, (str, tf.keras.optimizers.Optimizer)
        ) and _accepts_argument(self._optimizer):
            self._optimizer(hp)

    def _declare(self, hp):
        space = self._space
        search_space(
            hp,
            space["ec"],
            space["gamma"],
            space["scale_modes"],
            ec_sampling=space["ec_sampling"],
            gamma_sampling=space["gamma_sampling"],
        )

    def build(self, hp):
        self._declare(hp)
        model = self._build_fn(hp)
        if not isinstance(model, tf.keras.Model):
            kind = type(model)
            hint = (
                " It is a Keras 3 model: build it with `tf.keras` after `import sbnn_keras`."
                if kind.__module__.startswith("keras")
                else ""
            )
            raise kt.errors.FatalTypeError(
                "sbnn_keras tuner: `build_model(hp)` must return a tf_keras (legacy Keras, "
                f"`tf.keras.Model`) model, got {model!r} of type {kind}.{hint}"
            )
        return model


# ---------------------------------------------------------------------- tuner
def _check_tuner_arguments(owner, build_model, loss, optimizer, metrics, cost, latency_fn,
                           accuracy_metric, cost_weight, latency_reference, regularizer_kwargs):
    """SbnnTuner's checks of everything but the search space and the objective;
    returns ``(metrics as a list, regularizer_kwargs as a dict)``."""
    if not (callable(build_model) or isinstance(build_model, kt.HyperModel)):
        raise ValueError(
            f"{owner}: `build_model` must be a function build_model(hp) returning a "
            f"tf_keras model, got {build_model!r}."
        )
    if cost not in COSTS:
        raise ValueError(f"{owner}: `cost` must be one of {COSTS}, got {cost!r}.")
    if latency_fn is not None and not callable(latency_fn):
        raise ValueError(
            f"{owner}: `latency_fn` must be None or a callable latency_fn(model) -> "
            f"seconds, got {latency_fn!r}."
        )
    if cost == "latency" and latency_fn is None:
        raise ValueError(
            f"{owner}: `cost='latency'` needs `latency_fn` (a callable "
            "latency_fn(model) -> seconds), got latency_fn=None."
        )
    if not isinstance(accuracy_metric, str) or not accuracy_metric:
        raise ValueError(
            f"{owner}: `accuracy_metric` must be a logs key such as 'val_accuracy', "
            f"got {accuracy_metric!r}."
        )
    if not _is_number(cost_weight) or cost_weight < 0:
        raise ValueError(f"{owner}: `cost_weight` must be a number >= 0, got {cost_weight!r}.")
    if latency_reference is not None and (
        not _is_number(latency_reference) or latency_reference <= 0
    ):
        raise ValueError(
            f"{owner}: `latency_reference` must be None or seconds > 0, "
            f"got {latency_reference!r}."
        )
    if isinstance(metrics, (str, tf.keras.metrics.Metric)) or metrics is None:
        metrics = [] if metrics is None else [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise ValueError(f"{owner}: `metrics` must be a list of metrics, got {metrics!r}.")
    if not (
        optimizer is None
        or isinstance(optimizer, (str, tf.keras.optimizers.Optimizer))
        or callable(optimizer)
    ):
        raise ValueError(
            f"{owner}: `optimizer` must be a name, a tf_keras optimizer or a factory, "
            f"got {optimizer!r}."
        )
    if isinstance(optimizer, str):
        try:
            tf.keras.optimizers.get(optimizer)
        except ValueError as err:
            raise ValueError(f"{owner}: unknown `optimizer` {optimizer!r}.") from err
    regularizer_kwargs = dict(regularizer_kwargs or {})
    for key in ("loss", "expected_connections", "gamma", "bits_per_weight"):
        if key in regularizer_kwargs:
            raise ValueError(
                f"{owner}: `regularizer_kwargs` must not set {key!r} (the tuner does), "
                f"got {regularizer_kwargs!r}."
            )
    # Fail now, not in the first trial, on a bad loss or regularizer argument.
    SparsityRegularizer(loss, expected_connections=0.1, gamma=0.05, **regularizer_kwargs)

    return list(metrics), regularizer_kwargs


class _TrialScoring:
    """What a trial records and which of it the oracle optimises (objectives, metrics)."""

    # ------------------------------------------------------------ objectives
    def known_metrics(self) -> dict:
        """Metric names a trial records (objective candidates) and their direction."""
        names = dict(_SBNN_METRICS)
        if self.latency_fn is None:
            names.pop("latency")
        names.update({"loss": "min", "val_loss": "min"})
        acc = self.accuracy_metric
        names[acc] = "max"
        if acc.startswith("val_"):
            names[acc[4:]] = "max"
        for metric in self.metrics:
            name = metric if isinstance(metric, str) else getattr(metric, "name", None)
            if not name:
                name = getattr(metric, "__name__", None)
            if not name:
                continue
            direction = kt.engine.metrics_tracking.infer_metric_direction(name)
            names.setdefault(name, direction)
            names.setdefault("val_" + name, direction)
        return names

    def _resolve_objective(self, objective, owner):
        known = self.known_metrics()

        def one(item):
            if isinstance(item, kt.Objective):
                name, direction = item.name, item.direction
            elif isinstance(item, str):
                name, direction = item, known.get(item)
            else:
                name, direction = None, None
            if name not in known:
                extra = ""
                if name == "latency":
                    extra = " ('latency' needs `latency_fn`)"
                raise ValueError(
                    f"{owner}: unknown `objective` {objective!r}{extra}; use one of "
                    f"{sorted(known)}, a keras_tuner.Objective naming one, or a list of these."
                )
            if direction is None:
                raise ValueError(
                    f"{owner}: cannot tell whether to minimise or maximise `objective` "
                    f"{item!r}; pass keras_tuner.Objective({name!r}, 'max' or 'min')."
                )
            if name == "score" and self.cost == "latency" and self.latency_reference is None:
                raise ValueError(
                    f"{owner}: `objective='score'` with `cost='latency'` needs "
                    "`latency_reference` (seconds that count as 1), got None."
                )
            return kt.Objective(name, direction)

        if isinstance(objective, (list, tuple)):
            if not objective:
                raise ValueError(f"{owner}: `objective` must not be empty, got {objective!r}.")
            return [one(item) for item in objective]
        return one(objective)

    def trial_metrics(self, model, logs_history: dict) -> dict:
        """The metrics of a trained model: last-epoch logs plus sparsity figures.

        Args:
            model: the trained tf_keras model.
            logs_history: ``History.history`` (metric name -> list of values).

        Raises:
            keras_tuner.errors.FatalValueError: ``accuracy_metric`` is not in the
                logs (no validation data?) or BOPs are unknown for a BOPs cost.
        """
        metrics = {}
        for name, values in logs_history.items():
            if len(values) and _is_number(_to_float(values[-1])):
                metrics[name] = _to_float(values[-1])
        if self.accuracy_metric not in metrics:
            raise kt.errors.FatalValueError(
                f"{type(self).__name__}: `accuracy_metric` {self.accuracy_metric!r} is not in "
                f"the training logs {sorted(logs_history)}; pass `validation_data=` (or "
                "`validation_split=`) to search(), or set `accuracy_metric`."
            )
        total = report_mod.sparsity_report(model).total
        for name in ("connections", "bits_per_weight", "k0", "k1", "bops_dense",
                     "bops_kernel_skip", "bops_sparse"):
            value = getattr(total, name)
            if value is not None:
                metrics[name] = float(value)
        if self.latency_fn is not None:
            seconds = self.latency_fn(model)
            if not _is_number(seconds) or seconds < 0:
                raise ValueError(
                    f"{type(self).__name__}: `latency_fn` must return seconds >= 0, "
                    f"got {seconds!r}."
                )
            metrics["latency"] = float(seconds)
        if self.cost == "latency":
            metrics["cost"] = metrics["latency"]
            normalised = (
                metrics["latency"] / self.latency_reference if self.latency_reference else None
            )
        else:
            if self.cost not in metrics or not metrics.get("bops_dense"):
                raise kt.errors.FatalValueError(
                    f"{type(self).__name__}: cannot count {self.cost!r} for this model (unknown "
                    "output sizes); give the model a fixed input shape or use cost='latency'."
                )
            metrics["cost"] = metrics[self.cost]
            normalised = metrics["cost"] / metrics["bops_dense"]
        if metrics.get("bops_dense"):
            bops = metrics.get(self.cost if self.cost != "latency" else "bops_kernel_skip")
            if bops is not None:
                metrics["bops_ratio"] = bops / metrics["bops_dense"]
        if normalised is not None:
            metrics["score"] = metrics[self.accuracy_metric] - self.cost_weight * normalised
        return metrics



class _TrialRecords:
    """Per-trial files (the trial record, the weights) and the Pareto front over them."""

    def _write_trial_info(self, trial, metrics, reg, **extra):
        """``trial_<id>/sbnn_trial.json``: who ran the trial, how long, what came out."""
        info = {
            "trial_id": trial.trial_id,
            "tuner_id": self.tuner_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **extra,
            "hyperparameters": dict(trial.hyperparameters.values),
            "metrics": metrics,
            "regularizer_last_step": reg.values() if reg.state is not None else None,
        }
        path = os.path.join(self.get_trial_dir(trial.trial_id), TRIAL_INFO_NAME)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(pareto_mod._plain(info), handle, indent=2)

    def trial_info(self, trial_id) -> dict:
        """The ``sbnn_trial.json`` of a trial: ``tuner_id``, ``host``, ``seconds``,
        ``epochs_run``, ``initial_epoch``, ``continued_from``, metrics."""
        path = os.path.join(self.get_trial_dir(trial_id), TRIAL_INFO_NAME)
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_path(self, trial_id) -> str:
        return os.path.join(self.get_trial_dir(trial_id), CHECKPOINT_NAME)

    def save_model(self, trial_id, model, step=0):
        """Save the trained model's weights (tf_keras HDF5) in the trial directory."""
        model.save_weights(self._checkpoint_path(trial_id))

    def load_model(self, trial):
        """Rebuild the trial's model, compile it with its regularizer, load its weights.

        Returns:
            A compiled tf_keras model, ready for ``evaluate``/``fit``/``convert``.
        """
        model, _ = self.build_and_compile(trial.hyperparameters)
        model.load_weights(self._checkpoint_path(trial.trial_id))
        return model

    def get_best_models(self, num_models: int = 1) -> list:
        """The best trials' trained tf_keras models (compiled), best first."""
        return super().get_best_models(num_models)

    # ------------------------------------------------------------ the front
    def trials(self) -> list:
        """All trials known to this process's oracle (workers read the project files)."""
        if hasattr(self.oracle, "trials"):
            return list(self.oracle.trials.values())
        return load_trials(self.project_dir)

    def pareto_front(self) -> pareto_mod.ParetoFront:
        """Completed trials on the Pareto front of (accuracy, cost).

        Returns:
            A :class:`sbnn_keras.tuning.pareto.ParetoFront`: ``str(front)`` is a table of
            the non-dominated trials, ``front.front`` their records (``id``,
            ``params`` = hyperparameters, ``metrics``), ``front.to_json(path)``,
            ``front.plot(path)``.
        """
        return _front_from_trials(
            self.trials(),
            self.accuracy_metric,
            self.cost,
            meta={
                "project_dir": os.path.abspath(self.project_dir),
                "tuner": type(self).__name__,
                "objective": str(self.oracle.objective),
                "search_space": self._space,
                "cost_weight": self.cost_weight,
            },
        )

    def plot_pareto(self, path=None, **kwargs):
        """PNG of all trials (grey) and the Pareto front (red); see ``ParetoFront.plot``.

        Returns:
            The matplotlib ``Figure``.
        """
        kwargs.setdefault("annotate", {EC: "EC", GAMMA: "gamma"})
        kwargs.setdefault(
            "title", f"{type(self).__name__}: {self.accuracy_metric} vs {self.cost}"
        )
        return self.pareto_front().plot(path, **kwargs)


class SbnnTuner(_TrialScoring, _TrialRecords, kt.engine.base_tuner.BaseTuner):
    """KerasTuner tuner for tf_keras SBNN models (base of the three tuners).

    Subclasses choose the oracle (:class:`RandomSearch`,
    :class:`BayesianOptimization`, :class:`Hyperband`); you can also pass any
    ``keras_tuner.Oracle`` as ``oracle``.

    Args:
        build_model: ``build_model(hp) -> tf.keras.Model``, an *uncompiled* tf_keras
            model with SBNN layers (or a ``keras_tuner.HyperModel`` whose ``build``
            does that). It may use ``hp`` for its own hyperparameters;
            EC, gamma and ``scale_mode`` are declared by the tuner.
        objective: what the oracle optimises: ``"val_accuracy"`` (the default;
            more precisely ``accuracy_metric``), ``"score"`` (maximise
            ``accuracy - cost_weight * normalised cost``), ``"cost"``, one of the
            recorded metrics (``"connections"``, ``"bits_per_weight"``,
            ``"bops_kernel_skip"``, ``"bops_sparse"``, ``"bops_ratio"``,
            ``"latency"``, ``"loss"``, ``"val_loss"``, a compiled metric with or
            without ``val_``), a ``keras_tuner.Objective`` naming one of them, or a
            list of these (KerasTuner sums them, unweighted).
        loss: the task loss wrapped by the regularizer (name, function, Loss).
        optimizer: ``"adam"``-style name, a tf_keras optimizer (cloned for each
            trial) or a factory ``optimizer()`` / ``optimizer(hp)`` returning a new
            tf_keras optimizer (hyperparameters it declares are tuned too).
        metrics: compile metrics (names or tf_keras metrics, cloned per trial).
        ec, gamma, scale_modes, ec_sampling, gamma_sampling: the search space,
            see :func:`search_space`.
        cost: second axis of the Pareto front and the ``cost`` metric:
            ``"bops_kernel_skip"`` (default), ``"bops_sparse"`` or ``"latency"``.
        latency_fn: optional ``latency_fn(model) -> seconds`` measured after each
            trial (recorded as ``latency``); required for ``cost="latency"``.
        accuracy_metric: the logs key used as accuracy (first Pareto axis).
        cost_weight: weight of the normalised cost in ``score``; the normalised
            cost is BOPs / dense BOPs, or latency / ``latency_reference``.
        latency_reference: seconds that count as 1 in ``score`` with
            ``cost="latency"`` (required for ``objective="score"`` then).
        regularizer_kwargs: more arguments of :class:`~sbnn_keras.SparsityRegularizer`
            (``per_layer``, ``lambda_threshold``, ...).
        distribution_strategy: optional ``tf.distribute`` strategy (single worker)
            under which each trial's model is built and compiled.
        oracle: a ``keras_tuner.Oracle`` to use instead of the subclass's one.
        directory, project_name, overwrite: the KerasTuner project directory.
        **oracle_kwargs: arguments of the subclass's oracle (``max_trials``,
            ``seed``, ``hyperparameters``, ``max_retries_per_trial``, ...).

    Raises:
        ValueError: bad ranges, an unknown ``cost`` or ``objective``, a
            ``latency`` cost or objective without ``latency_fn``, bad types (the
            message names the argument and quotes the value).

    Distributed tuning: set ``KERASTUNER_TUNER_ID`` (``"chief"`` for the oracle
    process, any other id for workers), ``KERASTUNER_ORACLE_IP`` and
    ``KERASTUNER_ORACLE_PORT`` and run the same script everywhere, with one shared
    ``directory``: the chief serves the oracle over gRPC, workers run trials.
    See ``docs/tuning.md``.
    """

    _oracle_class: Optional[type] = None

    def __init__(
        self,
        build_model: Callable,
        objective="val_accuracy",
        *,
        loss="sparse_categorical_crossentropy",
        optimizer="adam",
        metrics: Sequence = ("accuracy",),
        ec=(0.01, 0.25),
        gamma=(0.01, 0.2),
        scale_modes=None,
        ec_sampling: str = "log",
        gamma_sampling: str = "linear",
        cost: str = "bops_kernel_skip",
        latency_fn: Optional[Callable] = None,
        accuracy_metric: str = "val_accuracy",
        cost_weight: float = 0.1,
        latency_reference: Optional[float] = None,
        regularizer_kwargs: Optional[dict] = None,
        distribution_strategy=None,
        oracle=None,
        directory=None,
        project_name=None,
        overwrite: bool = False,
        **oracle_kwargs,
    ):
        owner = type(self).__name__
        self._space = _check_space(ec, gamma, scale_modes, ec_sampling, gamma_sampling, owner)
        metrics, self.regularizer_kwargs = _check_tuner_arguments(
            owner, build_model, loss, optimizer, metrics, cost, latency_fn, accuracy_metric,
            cost_weight, latency_reference, regularizer_kwargs,
        )

        self.loss = loss
        self.optimizer = optimizer
        self.metrics = list(metrics)
        self.cost = cost
        self.latency_fn = latency_fn
        self.accuracy_metric = accuracy_metric
        self.cost_weight = float(cost_weight)
        self.latency_reference = None if latency_reference is None else float(latency_reference)
        self.distribution_strategy = distribution_strategy

        kt_objective = self._resolve_objective(objective, owner)
        if oracle is None:
            if self._oracle_class is None:
                raise ValueError(f"{owner}: give an `oracle` (a keras_tuner.Oracle), got None.")
            oracle = self._oracle_class(objective=kt_objective, **oracle_kwargs)
        elif oracle_kwargs:
            raise ValueError(
                f"{owner}: oracle arguments {sorted(oracle_kwargs)} cannot be combined with "
                "`oracle`; configure the oracle itself."
            )
        elif not isinstance(oracle, kt.Oracle):
            raise ValueError(f"{owner}: `oracle` must be a keras_tuner.Oracle, got {oracle!r}.")
        else:
            names = getattr(oracle.objective, "name_to_direction", None) or {
                oracle.objective.name: None
            }
            for name in names:
                self._resolve_objective(name if isinstance(name, str) else name.name, owner)

        super().__init__(
            oracle=oracle,
            hypermodel=_SbnnHyperModel(build_model, self._space, optimizer),
            directory=directory,
            project_name=project_name,
            overwrite=overwrite,
        )

    # ---------------------------------------------------------------- trials
    def _make_optimizer(self, hp):
        opt = self.optimizer
        if opt is None:
            return tf.keras.optimizers.Adam()
        if isinstance(opt, str):
            return tf.keras.optimizers.get(opt)
        if isinstance(opt, tf.keras.optimizers.Optimizer):
            return opt.__class__.from_config(opt.get_config())
        result = opt(hp) if _accepts_argument(opt) else opt()
        if isinstance(result, str):
            return tf.keras.optimizers.get(result)
        if not isinstance(result, tf.keras.optimizers.Optimizer):
            raise kt.errors.FatalTypeError(
                f"{type(self).__name__}: the `optimizer` factory must return a tf_keras "
                f"optimizer, got {result!r}."
            )
        return result

    def _make_metrics(self):
        out = []
        for metric in self.metrics:
            if isinstance(metric, tf.keras.metrics.Metric):
                out.append(metric.__class__.from_config(metric.get_config()))
            else:
                out.append(metric)
        return out

    def regularizer(self, hp) -> SparsityRegularizer:
        """A fresh (unbound) regularizer with the EC and gamma of ``hp``."""
        return SparsityRegularizer(
            self.loss,
            expected_connections=float(hp.get(EC)),
            gamma=float(hp.get(GAMMA)),
            **self.regularizer_kwargs,
        )

    def build_and_compile(self, hp):
        """Build the model of ``hp`` and compile it with its regularizer.

        Returns:
            ``(model, regularizer)``.
        """
        scope = (
            self.distribution_strategy.scope()
            if self.distribution_strategy is not None
            else _null_scope()
        )
        with scope:
            model = self.hypermodel.build(hp)
            reg = self.regularizer(hp)
            try:
                reg.bind(model)
            except ValueError as err:
                raise kt.errors.FatalValueError(str(err)) from err
            model.compile(
                optimizer=self._make_optimizer(hp), loss=reg, metrics=self._make_metrics()
            )
        return model, reg

    def _prepare_callbacks(self, callbacks, trial):
        try:
            callbacks = copy.deepcopy(list(callbacks or []))
        except Exception as err:  # noqa: BLE001 - any deepcopy failure
            raise kt.errors.FatalValueError(
                "All callbacks passed to search() must be deep-copyable (they are reused "
                f"across trials); copying {callbacks!r} failed: {err}"
            ) from err
        for callback in callbacks:
            if isinstance(callback, tf.keras.callbacks.TensorBoard):
                callback.log_dir = os.path.join(str(callback.log_dir), str(trial.trial_id))
        return callbacks

    def run_trial(self, trial, *fit_args, **fit_kwargs):
        """Build, compile with the trial's EC/gamma, fit, checkpoint; return metrics.

        Hyperband trials get ``epochs``/``initial_epoch`` from
        ``tuner/epochs``/``tuner/initial_epoch`` and start from the weights of
        ``tuner/trial_id`` when set, as in ``keras_tuner.Hyperband``.

        Returns:
            A dict of floats: the last epoch's logs and the sparsity figures.
        """
        start = time.time()
        hp = trial.hyperparameters
        fit_kwargs = dict(fit_kwargs)
        if "tuner/epochs" in hp.values:
            fit_kwargs["epochs"] = hp.values["tuner/epochs"]
            fit_kwargs["initial_epoch"] = hp.values["tuner/initial_epoch"]
        fit_kwargs["callbacks"] = self._prepare_callbacks(fit_kwargs.get("callbacks"), trial)

        tf.keras.backend.clear_session()
        gc.collect()
        model, reg = self.build_and_compile(hp)
        parent = hp.values.get("tuner/trial_id")
        if parent:
            model.load_weights(self._checkpoint_path(parent))
        history = model.fit(*fit_args, **fit_kwargs)
        self.save_model(trial.trial_id, model)
        metrics = self.trial_metrics(model, history.history)
        self._write_trial_info(
            trial,
            metrics,
            reg,
            seconds=time.time() - start,
            epochs_run=len(history.epoch),
            initial_epoch=fit_kwargs.get("initial_epoch", 0),
            continued_from=parent or None,
        )
        return metrics

class _null_scope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


# -------------------------------------------------------------- the tuners
class RandomSearch(SbnnTuner):
    """Random search over EC, gamma (and your own hyperparameters).

    Args:
        build_model: ``build_model(hp)`` returning an uncompiled tf_keras model.
        objective: see :class:`SbnnTuner`.
        max_trials: number of trials.
        seed: oracle seed.
        hyperparameters: as in ``keras_tuner.RandomSearch`` (also
            ``tune_new_entries``, ``allow_new_entries``, ``max_retries_per_trial``,
            ``max_consecutive_failed_trials``).
        **kwargs: the options of :class:`SbnnTuner` (``loss``, ``optimizer``,
            ``metrics``, ``ec``, ``gamma``, ``scale_modes``, ``cost``,
            ``latency_fn``, ``directory``, ``project_name``, ...).

    Example::

        tuner = RandomSearch(build_model, max_trials=10, directory="tuning")
        tuner.search(x, y, validation_data=(xv, yv), epochs=3)
    """

    _oracle_class = kt.oracles.RandomSearchOracle

    # The oracle's options written out, as KerasTuner's own tuners do, so that help()
    # and the API docs show them (BayesianOptimization and Hyperband likewise).

    def __init__(
        self,
        build_model,
        objective="val_accuracy",
        max_trials: int = 10,
        seed: Optional[int] = None,
        hyperparameters=None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs,
    ):
        super().__init__(
            build_model,
            objective,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            **kwargs,
        )


class BayesianOptimization(SbnnTuner):
    """Gaussian-process Bayesian optimisation over EC, gamma (and your own hyperparameters).

    Args:
        build_model: ``build_model(hp)`` returning an uncompiled tf_keras model.
        objective: see :class:`SbnnTuner`.
        max_trials: number of trials.
        num_initial_points: random trials before the GP is used (default 3 x the
            number of hyperparameters).
        alpha, beta: GP noise and exploration factor, as in
            ``keras_tuner.BayesianOptimization``.
        seed: oracle seed; ``hyperparameters``, ``tune_new_entries``,
            ``allow_new_entries``, ``max_retries_per_trial`` and
            ``max_consecutive_failed_trials`` are as in KerasTuner.
        **kwargs: the options of :class:`SbnnTuner`.
    """

    _oracle_class = kt.oracles.BayesianOptimizationOracle

    def __init__(
        self,
        build_model,
        objective="val_accuracy",
        max_trials: int = 10,
        num_initial_points: Optional[int] = None,
        alpha: float = 1e-4,
        beta: float = 2.6,
        seed: Optional[int] = None,
        hyperparameters=None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs,
    ):
        super().__init__(
            build_model,
            objective,
            max_trials=max_trials,
            num_initial_points=num_initial_points,
            alpha=alpha,
            beta=beta,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            **kwargs,
        )


class Hyperband(SbnnTuner):
    """Hyperband over EC, gamma (and your own hyperparameters).

    Trials of later rounds continue from the weights of the trial they were
    promoted from (``tuner/trial_id``) with ``initial_epoch`` and ``epochs`` from
    the oracle; the ``epochs`` passed to ``search()`` is ignored. As in
    KerasTuner, the optimizer state is not carried over.

    Args:
        build_model: ``build_model(hp)`` returning an uncompiled tf_keras model.
        objective: see :class:`SbnnTuner`.
        max_epochs: most epochs any model is trained.
        factor: reduction factor of epochs and models per bracket.
        hyperband_iterations: times to run the full Hyperband algorithm.
        seed: oracle seed; ``hyperparameters``, ``tune_new_entries``,
            ``allow_new_entries``, ``max_retries_per_trial`` and
            ``max_consecutive_failed_trials`` are as in KerasTuner.
        **kwargs: the options of :class:`SbnnTuner`.
    """

    _oracle_class = kt.oracles.HyperbandOracle

    def __init__(
        self,
        build_model,
        objective="val_accuracy",
        max_epochs: int = 100,
        factor: int = 3,
        hyperband_iterations: int = 1,
        seed: Optional[int] = None,
        hyperparameters=None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs,
    ):
        super().__init__(
            build_model,
            objective,
            max_epochs=max_epochs,
            factor=factor,
            hyperband_iterations=hyperband_iterations,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            **kwargs,
        )


# ------------------------------------------------------- reading a project
def load_trials(project_dir) -> list:
    """Every ``trial_*/trial.json`` of a KerasTuner project directory, by trial id."""
    import glob

    trials = [
        kt.engine.trial.Trial.load(path)
        for path in glob.glob(os.path.join(str(project_dir), "trial_*", "trial.json"))
    ]
    return sorted(trials, key=lambda t: str(t.trial_id))


def _record(trial) -> dict:
    metrics = {
        name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics
    }
    return {
        "id": trial.trial_id,
        "params": dict(trial.hyperparameters.values),
        "metrics": {k: (None if v is None else float(v)) for k, v in metrics.items()},
    }


def _front_from_trials(trials, accuracy_metric, cost, meta=None):
    completed = [t for t in trials if t.status == kt.engine.trial.TrialStatus.COMPLETED]
    records = [_record(t) for t in completed]
    return pareto_mod.ParetoFront(
        records,
        objectives=(accuracy_metric, "cost"),
        maximize=(True, False),
        labels=(accuracy_metric, _COST_LABELS.get(cost, cost)),
        meta=dict(meta or {}, cost=cost, accuracy_metric=accuracy_metric),
    )


def pareto_front_from_directory(
    directory, project_name, accuracy_metric: str = "val_accuracy", cost: str = "bops_kernel_skip"
) -> pareto_mod.ParetoFront:
    """The Pareto front of a finished project, read from its files (no tuner needed).

    Args:
        directory, project_name: as given to the tuner.
        accuracy_metric: accuracy key recorded by the trials.
        cost: the tuner's ``cost`` (only used for the axis label; every trial
            records the chosen cost as ``cost``).
    """
    project_dir = os.path.join(str(directory), str(project_name))
    if not os.path.isdir(project_dir):
        raise ValueError(
            f"pareto_front_from_directory: no project directory {project_dir!r}."
        )
    return _front_from_trials(
        load_trials(project_dir), accuracy_metric, cost, meta={"project_dir": project_dir}
    )


def is_chief() -> bool:
    """True in the chief process of KerasTuner's distributed mode."""
    return _dist_utils.is_chief_oracle()


def is_worker() -> bool:
    """True in a worker process of KerasTuner's distributed mode."""
    return _dist_utils.has_chief_oracle() and not _dist_utils.is_chief_oracle()

