"""BatchNorm recalibration: moving statistics that match the final weights.

Keras' ``BatchNormalization`` keeps an exponential moving average of the batch
statistics seen during training (``moving = momentum * moving + (1 - momentum) *
batch``, momentum 0.99 by default, i.e. a memory of about 100 steps). The SBNN
regularizer can flip many binary weights within a few steps; the moving statistics
then describe a network that no longer exists, and a model evaluated or exported at
that moment computes with the wrong normalization. :func:`recalibrate_batchnorm`
recomputes them for the weights as they are now.

How (the update Keras itself makes, with a cumulative instead of an exponential
average): the model runs on ``steps`` batches of training data with
``training=True``, so that every BatchNorm layer normalizes with its batch
statistics exactly as during training and adds them to its moving statistics through
Keras' own update. For batch ``k`` (1-based) the layer's momentum is set to
``1 - 1/k``, so after ``K`` batches the moving statistics are the plain mean of the
``K`` batch statistics::

    moving_mean     = mean over batches of the batch mean
    moving_variance = mean over batches of the batch variance

with the batch variance Keras uses for its updates: Bessel-corrected
(``n / (n - 1)``, ``n`` the values per channel in the batch) in the fused
implementation that 4-D inputs (convolutions) use, uncorrected in the non-fused one
(2-D inputs, e.g. after global pooling). Weights, optimizer state and every other
variable are untouched; momenta are restored afterwards.

Layers excluded: BatchNorm layers with ``trainable=False`` (Keras runs them in
inference mode, they are frozen on purpose); the rest of the model runs in training
mode during the pass, so a ``Dropout`` layer drops as in training (as PyTorch's
``update_bn`` does).
"""

from __future__ import annotations

import numbers

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["WHEN", "BatchNormRecalibration", "batchnorm_layers", "recalibrate_batchnorm"]


def batchnorm_layers(model) -> list:
    """Every ``BatchNormalization`` layer of ``model``, nested models included."""
    if not isinstance(model, tf.keras.layers.Layer):
        raise ValueError(f"batchnorm_layers: `model` must be a Keras model, got {model!r}.")
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, tf.keras.layers.BatchNormalization)
    ]


def _batches(data, batch_size, steps):
    """Input batches (``x`` only) from an array, a tuple ``(x, y)`` or a dataset."""
    if isinstance(data, tf.data.Dataset):
        ds = data
    else:
        if isinstance(data, (tuple, list)):
            if not data:
                raise ValueError("recalibrate_batchnorm: argument `data` is empty.")
            data = data[0]
        x = np.asarray(data) if not tf.is_tensor(data) else data
        if x.shape[0] == 0:
            raise ValueError("recalibrate_batchnorm: argument `data` has no samples.")
        ds = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    count = 0
    for item in ds:
        if steps is not None and count >= steps:
            break
        if isinstance(item, (tuple, list)):
            item = item[0]
        elif isinstance(item, dict) and "x" in item:
            item = item["x"]
        yield item
        count += 1


def _check_pass_args(batch_size, steps, who):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"{who}: `batch_size` must be a positive int, got {batch_size!r}.")
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1
    ):
        raise ValueError(f"{who}: `steps` must be a positive int or None, got {steps!r}.")


def recalibrate_batchnorm(model, data, batch_size: int = 128, steps: int | None = None) -> dict:
    """Recompute the moving statistics of every BatchNorm layer of ``model``.

    Args:
        model: a built Keras model.
        data: training inputs: a NumPy array or tensor ``x``, a tuple ``(x, y)``
            (``y`` is ignored), or a ``tf.data.Dataset`` of ``x`` or ``(x, y, ...)``
            batches. Use training images without augmentation that changes their
            statistics (mixup, crops with padding are fine to leave out).
        batch_size: batch size for arrays (the statistics are per batch, as in
            training: use the training batch size). Ignored for datasets.
        steps: number of batches to use (default: all of ``data``).

    Returns:
        ``{"layers": [names], "skipped": [names of frozen BatchNorm layers],
        "batches": K, "samples": number of inputs seen}``.

    Raises:
        ValueError: not a model, no BatchNorm layer, a bad ``batch_size`` or
            ``steps``, empty data, or a BatchNorm layer with ``renorm`` or
            ``virtual_batch_size`` (their statistics are not plain averages).
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise ValueError(f"recalibrate_batchnorm: model {model.name!r} has no BatchNormalization layer.")
    _check_pass_args(batch_size, steps, "recalibrate_batchnorm")
    for layer in layers:
        if getattr(layer, "renorm", False) or getattr(layer, "virtual_batch_size", None):
            raise ValueError(
                f"recalibrate_batchnorm: layer {layer.name!r} uses renorm or virtual_batch_size; "
                "its moving statistics are not averages of batch statistics."
            )
    active = [layer for layer in layers if layer.trainable]
    skipped = [layer.name for layer in layers if not layer.trainable]
    if not active:
        raise ValueError(
            f"recalibrate_batchnorm: every BatchNormalization layer of {model.name!r} is frozen "
            f"(trainable=False): {skipped}."
        )
    momenta = {id(layer): layer.momentum for layer in active}
    batches = samples = 0
    try:
        for x in _batches(data, int(batch_size), steps):
            batches += 1
            samples += int(x.shape[0])
            for layer in active:  # cumulative average: moving = (1 - 1/k) moving + batch / k
                layer.momentum = 1.0 - 1.0 / batches
            # eager call: the momentum is read at every call (not frozen into a graph)
            model(x, training=True)
    finally:
        for layer in active:
            layer.momentum = momenta[id(layer)]
    if batches == 0:
        raise ValueError("recalibrate_batchnorm: argument `data` gave no batch.")
    return {
        "layers": [layer.name for layer in active],
        "skipped": skipped,
        "batches": batches,
        "samples": samples,
    }


#: When :class:`BatchNormRecalibration` runs: the end of the first epoch whose
#: connections satisfy the regularizer, and the end of training.
WHEN = ("ec", "end")


class BatchNormRecalibration(tf.keras.callbacks.Callback):
    """Runs :func:`recalibrate_batchnorm` during ``fit`` at the moments that matter.

    * ``"ec"``: at the end of the first epoch whose global connections are within
      the regularizer's ``lambda_threshold`` of its EC (lambda is 0 from there on:
      the sparsity target is reached, and a user may stop training here);
    * ``"end"``: at the end of training (skipped when no step was made since the
      last recalibration).

    Use it on its own in ``fit``'s callback list (before a ``ModelCheckpoint``, so
    that a checkpoint saved the same epoch has the new statistics), or as
    ``SparsityCallback(regularizer=reg, recalibrate=BatchNormRecalibration(x))``,
    which runs it before its own logging and hands it its regularizer. The
    validation figures Keras logs for an epoch are computed before any callback
    runs, so they still use the statistics training left.

    Args:
        data: training inputs for the pass (see :func:`recalibrate_batchnorm`).
        when: a subset of ``("ec", "end")``.
        regularizer: the bound ``SparsityRegularizer`` (needed for ``"ec"``; inside
            a ``SparsityCallback`` that has one, that one is used).
        batch_size, steps: as :func:`recalibrate_batchnorm`.
        verbose: print a line at each recalibration.

    Raises:
        ValueError: a bad ``when``, ``batch_size`` or ``steps``, no ``data``; at the
            start of training, ``"ec"`` without a regularizer.

    After a run, :attr:`events` lists ``(epoch or "end", info)`` per recalibration.
    """

    def __init__(self, data, when=WHEN, regularizer=None, batch_size: int = 128,
                 steps: int | None = None, verbose: bool = False):
        super().__init__()
        if isinstance(when, str):
            when = (when,)
        when = tuple(when)
        if not when or any(w not in WHEN for w in when):
            raise ValueError(f"BatchNormRecalibration: `when` must be a subset of {WHEN}, got {when!r}.")
        if data is None:
            raise ValueError("BatchNormRecalibration: argument `data` is required, got None.")
        _check_pass_args(batch_size, steps, "BatchNormRecalibration")
        self.data, self.when, self.regularizer = data, when, regularizer
        self.batch_size, self.steps, self.verbose = batch_size, steps, verbose
        self.events = []
        self._ec_done = False
        self._last_step = None

    def on_train_begin(self, logs=None):
        # checked here, not in __init__: a SparsityCallback may hand its regularizer over
        if "ec" in self.when and self.regularizer is None:
            raise ValueError(
                "BatchNormRecalibration: when='ec' needs the `regularizer` (its EC and "
                "lambda_threshold); pass regularizer= here or to the SparsityCallback that runs it."
            )

    def _iterations(self):
        opt = getattr(self.model, "optimizer", None)
        return int(opt.iterations.numpy()) if opt is not None else None

    def _run(self, tag):
        info = recalibrate_batchnorm(self.model, self.data, batch_size=self.batch_size, steps=self.steps)
        self._last_step = self._iterations()
        self.events.append((tag, info))
        if self.verbose:
            print(f"BatchNorm recalibrated ({tag}): {len(info['layers'])} layers, "
                  f"{info['batches']} batches")
        return info

    def connections_reached(self) -> bool:
        """Whether the model's global connections are within lambda_threshold of EC."""
        from sbnn_keras.metrics.report import sparsity_report

        conn = sparsity_report(self.model).total.connections
        reg = self.regularizer
        return conn - reg.expected_connections <= reg.lambda_threshold

    def on_epoch_end(self, epoch, logs=None):
        if "ec" in self.when and not self._ec_done and self.connections_reached():
            self._ec_done = True
            self._run(epoch + 1)
            if logs is not None:
                logs["bn_recalibrated"] = 1.0

    def on_train_end(self, logs=None):
        if "end" in self.when and self._iterations() != self._last_step:
            self._run("end")
