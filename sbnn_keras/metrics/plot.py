"""Plots of SBNN sparsity figures (matplotlib, Agg canvas: no display, no global backend change)."""

from __future__ import annotations

import math as _pymath
import os
from typing import Sequence, Union

__all__ = ["plot_hamming_histograms"]


def _select(report, layers):
    """The conv LayerStats to plot, in the requested order."""
    conv = [entry for entry in report.layers if entry.is_conv]
    if layers is None:
        if not conv:
            raise ValueError(
                f"plot_hamming_histograms: model {report.model_name!r} has no convolutional "
                f"SBNN layer to plot (SBNN layers: {[e.name for e in report.layers]})."
            )
        return conv
    if isinstance(layers, (str, int)):
        layers = [layers]
    try:
        requested = list(layers)
    except TypeError:
        raise ValueError(
            "plot_hamming_histograms: argument `layers` must be None, a layer name, an index "
            f"or a list of them, got {layers!r}."
        ) from None
    if not requested:
        raise ValueError("plot_hamming_histograms: argument `layers` is empty, got [].")
    by_name = {entry.name: entry for entry in report.layers}
    chosen = []
    for item in requested:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(
                "plot_hamming_histograms: argument `layers` must hold layer names or "
                f"indices, got {item!r}."
            )
        if isinstance(item, int):
            if not -len(report.layers) <= item < len(report.layers):
                raise ValueError(
                    f"plot_hamming_histograms: argument `layers` index {item} is out of range "
                    f"for the {len(report.layers)} SBNN layers of model {report.model_name!r}."
                )
            entry = report.layers[item]
        elif item in by_name:
            entry = by_name[item]
        else:
            raise ValueError(
                f"plot_hamming_histograms: argument `layers` names {item!r}, which is not an "
                f"SBNN layer of model {report.model_name!r}; SBNN layers are "
                f"{[e.name for e in report.layers]}."
            )
        if not entry.is_conv:
            raise ValueError(
                f"plot_hamming_histograms: argument `layers` selects {entry.name!r}, which is "
                f"a {entry.class_name} without convolution kernels (no Hamming histogram); "
                f"conv SBNN layers are {[e.name for e in conv]}."
            )
        chosen.append(entry)
    return chosen


def plot_hamming_histograms(
    report_or_model,
    path: Union[str, os.PathLike],
    layers: Union[None, str, int, Sequence[Union[str, int]]] = None,
    *,
    columns: int = 3,
    dpi: int = 100,
) -> str:
    """Bar charts of the share of kernels per Hamming weight, one panel per conv layer.

    Like paper Fig. 2: for each selected convolutional SBNN layer, the percentage
    of its ``kh x kw`` kernels with Hamming weight ``0, 1, ..., kh*kw`` (K0 and K1
    are the first two bars). The panel title gives the layer name, p and K0/K1.

    Args:
        report_or_model: a :class:`sbnn_keras.metrics.report.SparsityReport` or a built
            Keras model (its report is computed).
        path: PNG file to write.
        layers: ``None`` (every conv SBNN layer), or a layer name, an index into
            ``report.layers``, or a list of them.
        columns: panels per row.
        dpi: resolution of the PNG.

    Returns:
        ``path`` as a string.

    Raises:
        ValueError: if no conv SBNN layer is selected, or a requested layer does
            not exist or is not a convolution (the message names the argument and
            the value).

    Example::

        plot_hamming_histograms(model, "hamming.png", layers=["quant_conv2d_4"])
    """
    import tensorflow as tf

    from sbnn_keras.metrics.report import SparsityReport, sparsity_report

    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(
            f"plot_hamming_histograms: argument `columns` must be a positive int, got {columns!r}."
        )
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not dpi > 0:
        raise ValueError(f"plot_hamming_histograms: argument `dpi` must be a positive number, got {dpi!r}.")
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"plot_hamming_histograms: argument `path` must be a file path, got {path!r}.")
    if not isinstance(report_or_model, (SparsityReport, tf.keras.Model)):
        raise ValueError(
            "plot_hamming_histograms: argument `report_or_model` must be a SparsityReport or a "
            f"Keras model, got {report_or_model!r}."
        )
    report = (
        report_or_model
        if isinstance(report_or_model, SparsityReport)
        else sparsity_report(report_or_model)
    )
    chosen = _select(report, layers)

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plot_hamming_histograms needs matplotlib (pip install matplotlib)."
        ) from err

    ncols = min(columns, len(chosen))
    nrows = _pymath.ceil(len(chosen) / ncols)
    fig = Figure(figsize=(4.0 * ncols, 3.0 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, entry in zip(axes.ravel(), chosen):
        counts = entry.hamming_histogram
        total = sum(counts)
        shares = [100.0 * c / total for c in counts]
        colors = ["tab:red", "tab:orange"] + ["tab:blue"] * (len(counts) - 2)
        ax.bar(range(len(counts)), shares, color=colors[: len(counts)])
        step = max(1, _pymath.ceil(len(counts) / 12))
        ax.set_xticks(range(0, len(counts), step))
        ax.set_ylim(0, 100)
        ax.set_xlabel("Hamming weight")
        ax.set_ylabel("kernels (%)")
        ax.set_title(
            f"{entry.name}\np={100 * entry.connections:.1f}%  "
            f"K0={100 * entry.k0:.1f}%  K1={100 * entry.k1:.1f}%",
            fontsize=9,
        )
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(chosen) :]:
        ax.set_visible(False)
    fig.suptitle(f"{report.model_name}: kernels per Hamming weight", fontsize=10)
    path = os.fspath(path)
    fig.savefig(path, dpi=dpi, format="png")
    return path
