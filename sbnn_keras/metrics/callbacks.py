"""Keras callbacks that log SBNN sparsity figures during training."""

from __future__ import annotations

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import tensorflow as tf  # noqa: E402

from sbnn_keras.metrics import report as report_mod  # noqa: E402

__all__ = ["SparsityCallback"]


class SparsityCallback(tf.keras.callbacks.Callback):
    """Add sparsity figures to the epoch logs (History, TensorBoard, CSVLogger, progress bar).

    At the end of every epoch it computes :func:`sbnn_keras.metrics.report.sparsity_report`
    of the model and writes into ``logs``:

    ========================== ====================================================
    ``connections``            global fraction p of connections (``sum U / sum N``)
    ``bits_per_weight``        ``h(p)`` of the global p
    ``k0``, ``k1``             shares of conv kernels with Hamming weight 0 / 1
                               (absent when the model has no conv SBNN layer)
    ``bops_ratio``             BOPs with kernel skipping / dense BOPs (absent when
                               the output size is unknown)
    ``connections/<layer>``    per layer, with ``per_layer=True``
    ``lambda``, ``j``          last step's lambda and j, with ``regularizer=``
    ========================== ====================================================

    every key prefixed with ``prefix``. Keras' ``History`` and progress bar run
    after user callbacks, so they record these keys; put a ``TensorBoard`` or
    ``CSVLogger`` callback *after* this one in the list. The last report is kept
    in :attr:`last_report`.

    Args:
        per_layer: also log ``connections/<layer name>`` for every SBNN layer.
        regularizer: a bound :class:`sbnn_keras.SparsityRegularizer` (anything with
            a ``values()`` method returning ``lambda`` and ``j``) to log too.
        prefix: string put before every key (e.g. ``"sbnn/"``).
        recalibrate: a
            :class:`sbnn_keras.training.recalibration.BatchNormRecalibration`
            (or any Keras callback) to run with this one: it gets the model, this
            callback's ``regularizer`` when it has none, and every epoch end
            *before* the figures are logged (its ``bn_recalibrated`` key lands in
            the same logs), so the BatchNorm statistics are recomputed the epoch
            the connections reach EC and at the end of training.

    Raises:
        ValueError: for a ``regularizer`` without ``values()``, a non-string
            ``prefix`` or a ``recalibrate`` that is not a Keras callback; at the
            start of training, if the model has no SBNN layer or the regularizer
            is not bound.

    Example::

        reg = sbnn_keras.SparsityRegularizer(expected_connections=0.05, gamma=0.07)
        model.compile("adam", loss=reg.bind(model))
        history = model.fit(x, y, callbacks=[
            SparsityCallback(per_layer=True, regularizer=reg),
            tf.keras.callbacks.TensorBoard("logs")])
        history.history["connections"]

        # BatchNorm statistics recomputed when EC is reached and at the end:
        from sbnn_keras.training.recalibration import BatchNormRecalibration
        SparsityCallback(regularizer=reg, recalibrate=BatchNormRecalibration(x, batch_size=128))
    """

    def __init__(self, per_layer: bool = False, regularizer=None, prefix: str = "", recalibrate=None):
        super().__init__()
        if not isinstance(per_layer, bool):
            raise ValueError(f"SparsityCallback: `per_layer` must be a bool, got {per_layer!r}.")
        if regularizer is not None and not callable(getattr(regularizer, "values", None)):
            raise ValueError(
                "SparsityCallback: `regularizer` must be a SparsityRegularizer (with a "
                f"values() method), got {regularizer!r}."
            )
        if not isinstance(prefix, str):
            raise ValueError(f"SparsityCallback: `prefix` must be a string, got {prefix!r}.")
        if recalibrate is not None and not isinstance(recalibrate, tf.keras.callbacks.Callback):
            raise ValueError(
                "SparsityCallback: `recalibrate` must be a Keras callback such as "
                f"sbnn_keras.training.recalibration.BatchNormRecalibration(x_train), got {recalibrate!r}."
            )
        self.per_layer = per_layer
        self.regularizer = regularizer
        self.prefix = prefix
        self.recalibrate = recalibrate
        self.last_report = None
        if recalibrate is not None and getattr(recalibrate, "regularizer", True) is None:
            recalibrate.regularizer = regularizer

    def set_model(self, model):
        super().set_model(model)
        if self.recalibrate is not None:
            self.recalibrate.set_model(model)

    def on_train_begin(self, logs=None):
        # Fail at the start rather than after a whole epoch.
        report_mod.sparsity_report(self.model)
        if self.recalibrate is not None:
            self.recalibrate.on_train_begin(logs)
        if self.regularizer is not None and getattr(self.regularizer, "state", True) is None:
            raise ValueError(
                "SparsityCallback: argument `regularizer` is not bound to a model; call "
                "`regularizer.bind(model)` before training."
            )

    def log_values(self, report=None) -> dict:
        """The logged values as a dict (computed from ``report`` or the model now)."""
        if report is None:
            report = report_mod.sparsity_report(self.model)
        total = report.total
        values = {
            "connections": total.connections,
            "bits_per_weight": total.bits_per_weight,
        }
        if total.k0 is not None:
            values["k0"] = total.k0
            values["k1"] = total.k1
        if total.bops_kernel_skip_ratio is not None:
            values["bops_ratio"] = total.bops_kernel_skip_ratio
        if self.per_layer:
            for entry in report.layers:
                values[f"connections/{entry.name}"] = entry.connections
        if self.regularizer is not None:
            last = self.regularizer.values()
            values["lambda"] = float(last["lambda"])
            values["j"] = float(last["j"])
        return {self.prefix + key: float(value) for key, value in values.items()}

    def on_epoch_end(self, epoch, logs=None):
        if self.recalibrate is not None:  # first: later callbacks see the new statistics
            self.recalibrate.on_epoch_end(epoch, logs)
        self.last_report = report_mod.sparsity_report(self.model)
        values = self.log_values(self.last_report)
        if logs is not None:
            logs.update(values)

    def on_train_end(self, logs=None):
        if self.recalibrate is not None:
            self.recalibrate.on_train_end(logs)
