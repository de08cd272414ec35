"""The adaptive sparsity regularizer of SBNN (paper eqs. 16-18).

``SparsityRegularizer`` is a Keras ``Loss`` that wraps the task loss. At every
training step it computes, in the same step and from the same forward pass:

    U   = sum over SBNN kernels of (ste_sign(w) + 1) / 2     (connections, via the STE)
    j   = relu(U / N - EC)                                    (eq. 16, global)
    lam = gamma * L / ((1 - gamma) * j)   without gradient    (eq. 18 solved for lambda)
    L_SBNN = L + lam * j                                      (eq. 17)

so that ``lam * j / L_SBNN == gamma`` exactly at every step.

With ``structure="kernel"`` or ``"word"`` (beyond the paper) ``U`` keeps its value
but its gradient is redistributed over groups of weights (whole 3x3 kernels, or
bitpacked filter words) with the log-sum group weights of
:func:`sbnn_keras.math.structured_push`, so connections in almost-empty groups are
pushed hardest and whole groups become all-alpha (skippable). ``L`` is the wrapped
task loss plus the model's other losses (``model.losses``, e.g. L2 terms), i.e.
everything Keras adds to the total loss. Under ``tf.distribute`` each replica
computes ``lam`` from its share of the loss; the sum over replicas is the
single-device gradient (the formula is linear in ``L``).
"""

from __future__ import annotations

import os

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import _checks  # noqa: E402
from sbnn_keras import layers as sbnn_layers_mod  # noqa: E402
from sbnn_keras import math as sbnn_math  # noqa: E402

__all__ = ["SparsityRegularizer", "load_model", "custom_objects", "register_custom_objects"]

AUTHORS_LAMBDA_THRESHOLD = 1e-4


def _number(value, argument, low, high, low_open=True, high_open=True):
    return _checks.number_in(value, argument, "SparsityRegularizer", low, high, low_open, high_open)


def _check_options(per_layer, include_model_losses, check_finite, structure, word_size) -> None:
    """SparsityRegularizer's switches and its structure options."""
    for arg, val in (
        ("per_layer", per_layer),
        ("include_model_losses", include_model_losses),
        ("check_finite", check_finite),
    ):
        if not isinstance(val, (bool, np.bool_)):
            raise ValueError(f"SparsityRegularizer: `{arg}` must be a bool, got {val!r}.")
    if not isinstance(structure, str) or structure not in sbnn_math.STRUCTURES:
        raise ValueError(
            f"SparsityRegularizer: `structure` must be one of {sbnn_math.STRUCTURES}, "
            f"got {structure!r}."
        )
    if isinstance(word_size, bool) or not isinstance(word_size, (int, np.integer)) or word_size < 1:
        raise ValueError(
            f"SparsityRegularizer: `word_size` must be a positive integer, got {word_size!r}."
        )


def _task_loss(loss, reduction):
    """The task loss as a Keras ``Loss`` (a plain function is wrapped)."""
    try:
        task_loss = tf.keras.losses.get(loss)
    except (ValueError, TypeError) as err:
        raise ValueError(f"SparsityRegularizer: unknown `loss` {loss!r}.") from err
    if task_loss is None:
        raise ValueError("SparsityRegularizer: argument `loss` is required, got None.")
    if not isinstance(task_loss, tf.keras.losses.Loss):
        task_loss = _FnLoss(task_loss, reduction)
    return task_loss


@tf.keras.utils.register_keras_serializable(package="sbnn_keras")
class SparsityRegularizer(tf.keras.losses.Loss):
    """Task loss plus the SBNN sparsity term with a weight that adapts every step.

    Use it as the model's loss; it wraps your usual loss::

        reg = sbnn_keras.SparsityRegularizer(
            "sparse_categorical_crossentropy", expected_connections=0.05, gamma=0.07)
        model.compile(optimizer="adam", loss=reg.bind(model), metrics=["accuracy"])
        model.fit(x, y)

    Args:
        loss: the task loss (name, function or ``tf.keras.losses.Loss``).
        expected_connections: EC, the target fraction of connections (``w = beta``)
            in (0, 1). Give this or ``bits_per_weight``.
        gamma: share of the regularization term in the total loss, in [0, 1).
            ``gamma = 0`` turns the term off.
        bits_per_weight: entropy target h* in (0, 1); ``EC = h^-1(h*)`` (paper eq. 8).
        per_layer: if False (default, as the authors do), one global constraint over
            all SBNN layers: ``j = relu(sum U / sum N - EC)``. If True, every layer
            is constrained: ``j = sum_l relu(U_l / N_l - EC)``.
        lambda_threshold: lambda is 0 when ``j <= lambda_threshold`` (the authors
            use 1e-4, the default). This avoids a huge lambda, and hence a huge
            uniform push on every weight, once the constraint is nearly met.
        include_model_losses: count ``model.losses`` in ``L`` so that the identity
            holds on the total loss Keras minimises.
        structure: which weights the push favours emptying together (beyond the
            paper). ``"none"`` (default): the paper's uniform push, every latent
            weight gets ``lambda / (2N)``. ``"kernel"``: groups are the ``kh x kw``
            kernels of one (input channel, output channel) pair; ``"word"``: groups
            are ``word_size`` consecutive input channels of one tap and output
            channel (one bitpacked filter word). The value of ``U`` (hence ``j``,
            EC and the lambda identity) is unchanged; its gradient on a weight of
            group ``g`` becomes ``1/2 * s * c_g`` with ``c_g = 1 / (n_g + group_epsilon)``
            (``n_g``: connections of the group, the gradient of the log-sum penalty
            ``sum_g log(n_g + eps)``) and ``s`` chosen so the push summed over the
            connections equals the unstructured one (:func:`sbnn_keras.math.structured_push`).
            Layers whose groups are single weights (dense layers and 1x1 convolutions
            with ``"kernel"``) keep the uniform push.
        word_size: input channels per group for ``structure="word"`` (32: one LCE
            filter word).
        group_epsilon: ``eps`` above, > 0; smaller values concentrate the push more
            on groups with few connections (with 1.0 a lone connection is pushed
            ``(9 + 1) / (1 + 1) = 5x`` harder than one in a full 3x3 kernel).
        check_finite: raise ``InvalidArgumentError`` naming the regularizer when the
            task loss is NaN or Inf (otherwise NaN propagates to the total loss and
            lambda is 0 for that step).
        name: name of the loss.

    Raises:
        ValueError: for out-of-range or conflicting arguments (the message names
            the argument and quotes the value).

    Notes:
        The latent-weight clamp of the authors' code (±1.5 after each step) is
        larq's ``kernel_constraint=lq.constraints.WeightClip(1.5)``; SBNN layers
        default to ``"weight_clip"`` (±1).
    """

    def __init__(
        self,
        loss="sparse_categorical_crossentropy",
        expected_connections: float | None = None,
        gamma: float = 0.05,
        *,
        bits_per_weight: float | None = None,
        per_layer: bool = False,
        lambda_threshold: float = AUTHORS_LAMBDA_THRESHOLD,
        include_model_losses: bool = True,
        check_finite: bool = True,
        structure: str = "none",
        word_size: int = 32,
        group_epsilon: float = 1.0,
        name: str = "sparsity_regularizer",
        reduction=tf.keras.losses.Reduction.AUTO,
    ):
        if (expected_connections is None) == (bits_per_weight is None):
            raise ValueError(
                "SparsityRegularizer: give exactly one of `expected_connections` "
                f"(got {expected_connections!r}) and `bits_per_weight` (got {bits_per_weight!r})."
            )
        if expected_connections is not None:
            self.expected_connections = _number(expected_connections, "expected_connections", 0, 1)
            self.bits_per_weight = None
        else:
            self.bits_per_weight = _number(bits_per_weight, "bits_per_weight", 0, 1)
            self.expected_connections = float(sbnn_math.inverse_binary_entropy(self.bits_per_weight))
        self.gamma = _number(gamma, "gamma", 0, 1, low_open=False)
        self.lambda_threshold = _number(
            lambda_threshold, "lambda_threshold", 0, np.inf, low_open=False
        )
        _check_options(per_layer, include_model_losses, check_finite, structure, word_size)
        self.structure = structure
        self.word_size = int(word_size)
        self.group_epsilon = _number(group_epsilon, "group_epsilon", 0, np.inf)
        self.per_layer = bool(per_layer)
        self.include_model_losses = bool(include_model_losses)
        self.check_finite = bool(check_finite)
        task_loss = _task_loss(loss, reduction)
        self.task_loss = task_loss
        super().__init__(reduction=self.task_loss.reduction, name=name)
        self._model = None
        self._entries = []
        self.state = None

    # ------------------------------------------------------------------ binding
    def bind(self, model) -> "SparsityRegularizer":
        """Attach to ``model``'s SBNN layers and return ``self`` (for ``compile``).

        Raises:
            ValueError: if ``model`` has no SBNN layer (a layer whose
                ``kernel_quantizer`` is an ``SbnnQuantizer``) or is not built.
        """
        if not isinstance(model, tf.keras.Model):
            raise ValueError(
                f"SparsityRegularizer.bind: argument `model` must be a tf.keras.Model, got {model!r}."
            )
        layers = sbnn_layers_mod.sbnn_layers(model)
        if not layers:
            raise ValueError(
                f"SparsityRegularizer.bind: model {model.name!r} has no SBNN layer "
                "(no layer with an SbnnQuantizer as kernel_quantizer), so there is "
                "nothing to sparsify."
            )
        unbuilt = [layer.name for layer in layers if not layer.built]
        if unbuilt:
            raise ValueError(
                f"SparsityRegularizer.bind: layers {unbuilt} of model {model.name!r} are not "
                "built yet; build the model (give it an Input or call it once) first."
            )
        self._model = model
        self._entries = []
        for layer in layers:
            kernel = sbnn_layers_mod.latent_kernel(layer)
            self._entries.append((layer.name, kernel, layer.kernel_quantizer.clip_value))
        with model.distribute_strategy.scope():
            self.state = {
                key: tf.Variable(
                    0.0,
                    trainable=False,
                    name=f"{self.name}_{key}",
                    synchronization=tf.VariableSynchronization.ON_WRITE,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
                )
                for key in ("lambda", "j", "task_loss", "total_loss", "connections")
            }
        return self

    @property
    def model(self):
        return self._model

    @property
    def layer_names(self) -> list[str]:
        return [name for name, _, _ in self._entries]

    # ------------------------------------------------------------------ the math
    def connection_counts(self):
        """Per-layer ``(U, N)`` tensors; ``U`` is differentiable through the STE.

        With ``structure != "none"`` the value of ``U`` is the same and its gradient
        is the structured one (:func:`sbnn_keras.math.structured_push`).
        """
        counts = []
        for _, kernel, clip in self._entries:
            w = tf.convert_to_tensor(kernel)
            wb = lq.quantizers.ste_sign(w, clip_value=clip)
            u01 = (wb + 1.0) / 2.0
            u = tf.reduce_sum(u01)
            if self.structure != "none":
                u = _structured_count(u01, u, self.structure, self.word_size, self.group_epsilon)
            counts.append((u, float(np.prod(w.shape.as_list()))))
        return counts

    def constraint_violation(self):
        """``(j, connections)``: the j term (differentiable) and the global fraction U/N."""
        counts = self.connection_counts()
        total_u = tf.add_n([u for u, _ in counts])
        total_n = sum(n for _, n in counts)
        fraction = total_u / total_n
        ec = self.expected_connections
        if self.per_layer:
            j = tf.add_n([tf.nn.relu(u / n - ec) for u, n in counts])
        else:
            j = tf.nn.relu(fraction - ec)
        return j, fraction

    def call(self, y_true, y_pred):  # pragma: no cover - __call__ is overridden
        raise NotImplementedError("SparsityRegularizer is used through __call__.")

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self._model is None:
            raise RuntimeError(
                "SparsityRegularizer is not bound to a model: call `reg.bind(model)` "
                "before `model.compile(loss=reg)`, or load saved models with "
                "`sbnn_keras.load_model`, which binds it again."
            )
        self._check_caller(y_pred)
        self.task_loss._allow_sum_over_batch_size = getattr(
            self, "_allow_sum_over_batch_size", False
        )
        task = self.task_loss(y_true, y_pred, sample_weight=sample_weight)
        base = task
        if self.include_model_losses and self._model.losses:
            base = task + tf.add_n([tf.cast(x, task.dtype) for x in self._model.losses])
        if self.check_finite:
            base = tf.debugging.assert_all_finite(
                base,
                f"{self.name}: the task loss is NaN or Inf at this step (SparsityRegularizer "
                "cannot compute lambda). Lower the learning rate or check the data.",
            )
        j, fraction = self.constraint_violation()
        j = tf.cast(j, task.dtype)
        if self.gamma == 0:
            lam = tf.zeros_like(task)
        else:
            base_sg = tf.stop_gradient(base)
            j_sg = tf.stop_gradient(j)
            active = (j_sg > self.lambda_threshold) & tf.math.is_finite(base_sg)
            lam = tf.where(
                active,
                self.gamma
                * tf.nn.relu(base_sg)
                / ((1.0 - self.gamma) * tf.where(active, j_sg, tf.ones_like(j_sg))),
                tf.zeros_like(base_sg),
            )
        reg = tf.stop_gradient(lam) * j
        total = task + reg
        updates = [
            self.state["lambda"].assign(tf.cast(lam, tf.float32)),
            self.state["j"].assign(tf.cast(j, tf.float32)),
            self.state["task_loss"].assign(tf.cast(base, tf.float32)),
            self.state["total_loss"].assign(tf.cast(base + reg, tf.float32)),
            self.state["connections"].assign(tf.cast(fraction, tf.float32)),
        ]
        with tf.control_dependencies(updates):
            return tf.identity(total)

    def _check_caller(self, y_pred) -> None:
        """Refuses predictions that the bound model did not compute.

        The loss only sees ``y_pred``; when it is traced (``fit``/``evaluate`` run the
        step as a ``tf.function``), its graph says which variables computed it. A
        regularizer bound to ``m2`` but compiled into ``m1`` would otherwise penalize
        ``m2``'s kernels while ``m1`` trains, without a word. Eager calls (no graph:
        ``run_eagerly=True``, direct calls) cannot be checked and pass.
        """
        graph = getattr(y_pred, "graph", None)
        captures = getattr(graph, "captures", None)
        variables = self._model.trainable_variables
        if not captures or not variables or tf.executing_eagerly():
            return
        ours = {id(v.handle) for v in variables}
        placeholders = {internal.op for external, internal in captures if id(external) in ours}
        if not placeholders:  # the step reads none of the bound model's variables
            raise ValueError(self._wrong_model_message())
        seen, stack = set(), [y_pred.op]
        while stack:
            op = stack.pop()
            if op in placeholders:
                return
            for t in op.inputs:
                if t.op not in seen:
                    seen.add(t.op)
                    stack.append(t.op)
        raise ValueError(self._wrong_model_message())

    def _wrong_model_message(self) -> str:
        return (
            f"SparsityRegularizer {self.name!r} is bound to model {self._model.name!r}, but the "
            "predictions it was given were not computed by that model's weights: it would "
            f"regularize {self._model.name!r} while another model trains. Bind it to the model "
            "that uses it: model.compile(loss=reg.bind(model))."
        )

    def values(self) -> dict:
        """Values of the last step: lambda, j, task loss L, total loss, connections."""
        if self.state is None:
            raise RuntimeError("SparsityRegularizer.values: the regularizer is not bound.")
        return {key: float(var.numpy()) for key, var in self.state.items()}

    def get_config(self):
        config = {
            "loss": (
                self.task_loss.serialize()
                if isinstance(self.task_loss, _FnLoss)
                else tf.keras.losses.serialize(self.task_loss)
            ),
            "gamma": self.gamma,
            "per_layer": self.per_layer,
            "lambda_threshold": self.lambda_threshold,
            "include_model_losses": self.include_model_losses,
            "check_finite": self.check_finite,
            "structure": self.structure,
            "word_size": self.word_size,
            "group_epsilon": self.group_epsilon,
            "name": self.name,
        }
        if self.bits_per_weight is not None:
            config["bits_per_weight"] = self.bits_per_weight
        else:
            config["expected_connections"] = self.expected_connections
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("reduction", None)
        config["loss"] = tf.keras.losses.deserialize(config["loss"])
        return cls(**config)


def _group_counts(u01: tf.Tensor, structure: str, word_size: int) -> tf.Tensor:
    """TensorFlow :func:`sbnn_keras.math.group_connection_counts` (differentiable)."""
    shape = u01.shape.as_list()
    if structure == "kernel":
        return tf.reduce_sum(tf.reshape(u01, [-1] + shape[-2:]), axis=0)
    cin = shape[-2]
    blocks = -(-cin // word_size)
    pad = [[0, 0]] * len(shape)
    pad[-2] = [0, blocks * word_size - cin]
    padded = tf.pad(u01, pad)
    return tf.reduce_sum(tf.reshape(padded, shape[:-2] + [blocks, word_size, shape[-1]]), axis=-2)


def _structured_count(u01: tf.Tensor, u: tf.Tensor, structure: str, word_size: int, epsilon: float):
    """``U`` in value, ``sum_g s * c_g * n_g`` in gradient (see ``math.structured_push``)."""
    shape = u01.shape.as_list()
    if len(shape) < 2 or (structure == "kernel" and int(np.prod(shape[:-2])) == 1):
        return u  # single-weight groups: the unstructured push
    counts = _group_counts(u01, structure, word_size)
    c = tf.stop_gradient(1.0 / (counts + epsilon))
    weighted = tf.reduce_sum(c * counts)
    w_sg = tf.stop_gradient(weighted)
    scale = tf.stop_gradient(tf.where(u > 0, tf.math.divide_no_nan(u, w_sg), tf.ones_like(u)))
    return tf.stop_gradient(u) + scale * (weighted - w_sg)


class _FnLoss(tf.keras.losses.Loss):
    """A plain loss function as a Loss object (like Keras' LossFunctionWrapper)."""

    def __init__(self, fn, reduction):
        super().__init__(reduction=reduction, name=getattr(fn, "__name__", "task_loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)

    def serialize(self):
        # Keras' built-in loss functions are found again by name.
        return getattr(self.fn, "__name__", None)


_REGISTERED: dict = {}


def register_custom_objects(objects: dict) -> None:
    """Adds classes to ``custom_objects()`` (and so to ``load_model``).

    Packages built on sbnn_keras (the zoo in ``sbnn_zoo``) register their layers and
    quantizers when they are imported, so the library never imports them.

    Raises:
        ValueError: ``objects`` is not a dict of names to classes.
    """
    if not isinstance(objects, dict) or not all(
        isinstance(k, str) and isinstance(v, type) for k, v in objects.items()
    ):
        raise ValueError(f"register_custom_objects: argument `objects` must map names to classes, got {objects!r}")
    _REGISTERED.update(objects)


#: entry-point group through which installed packages offer their classes
CUSTOM_OBJECTS_GROUP = "sbnn_keras.custom_objects"


def _entry_point_objects() -> dict:
    """Classes of installed packages that declare a ``sbnn_keras.custom_objects`` entry
    point (a function returning ``{name: class}``; the zoo's is
    ``sbnn_zoo.zoo:custom_objects``): found through package metadata, so the library
    never names the packages above it."""
    from importlib.metadata import entry_points

    found = entry_points()
    group = (found.select(group=CUSTOM_OBJECTS_GROUP) if hasattr(found, "select")
             else found.get(CUSTOM_OBJECTS_GROUP, ()))
    objects: dict = {}
    for entry in group:
        objects.update(entry.load()())
    return objects


def custom_objects() -> dict:
    """Every sbnn_keras class by name, for ``tf.keras.models.load_model``.

    Also holds the classes of packages built on sbnn_keras: those offered through the
    ``sbnn_keras.custom_objects`` entry point (the installed zoo: IR-Net's EDE sign,
    ReActNet's RPReLU, ...; so zoo models load without importing the zoo) and those
    registered with ``register_custom_objects``.
    """
    from sbnn_keras import layers, quantizers

    plugins = _entry_point_objects()

    return {
        "QuantConv2D": layers.QuantConv2D,
        "QuantDense": layers.QuantDense,
        "SbnnQuantizer": quantizers.SbnnQuantizer,
        "SiBnnQuantizer": quantizers.SiBnnQuantizer,
        "SparsityRegularizer": SparsityRegularizer,
        **plugins,
        **_REGISTERED,
    }


def _is_saved_model(filepath) -> bool:
    try:
        return os.path.isfile(os.path.join(os.fspath(filepath), "saved_model.pb"))
    except TypeError:
        return False


def load_model(filepath, compile: bool = True, **kwargs):
    """``tf.keras.models.load_model`` that also re-binds a saved SparsityRegularizer.

    Args:
        filepath: a ``.keras``, ``.h5`` or SavedModel path.
        compile: as in Keras; when True and the model was compiled with a
            ``SparsityRegularizer``, that regularizer is bound to the loaded model so
            ``fit`` resumes with the same EC and gamma. The optimizer's state
            (iterations, moments) comes back from every format, SavedModel included.
        **kwargs: passed to ``tf.keras.models.load_model``.
    """
    kwargs.setdefault("custom_objects", {}).update(
        {k: v for k, v in custom_objects().items() if k not in kwargs["custom_objects"]}
    )
    model = tf.keras.models.load_model(filepath, compile=compile, **kwargs)
    if compile and getattr(model, "optimizer", None) is not None and _is_saved_model(filepath):
        # tf_keras leaves a SavedModel's optimizer state (iterations, slots) behind
        # (tensorflow issue 44670); reading the checkpoint again restores it, so
        # training resumes exactly where it stopped, as from .keras / .h5.
        model.load_weights(filepath).expect_partial()
    loss = getattr(model, "loss", None)
    if isinstance(loss, SparsityRegularizer):
        loss.bind(model)
    return model
