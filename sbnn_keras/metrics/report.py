"""Sparsity report of a Keras model with SBNN layers.

``sparsity_report(model)`` reads every SBNN layer (a layer whose
``kernel_quantizer`` is an ``SbnnQuantizer``: ``sbnn_keras.QuantConv2D``,
``QuantDense`` or larq's own layers with an SBNN quantizer) and collects per layer
and in total: connections, bits/weight, the {alpha, beta} domain, the Hamming
histogram of the kernels, K0/K1, binary operations (dense, kernel skipping,
sparse) and the BParams storage estimate. The figures are defined in
:mod:`sbnn_keras.metrics.stats` and ``docs/metrics.md``.

Example::

    import sbnn_keras, tensorflow as tf
    from sbnn_keras.metrics.report import sparsity_report

    model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)),
        sbnn_keras.QuantConv2D(4, 3, input_quantizer=None), tf.keras.layers.Flatten(),
        sbnn_keras.QuantDense(2)])
    report = sparsity_report(model)
    report.print()              # boxed table like lq.models.summary
    report.total.connections    # global fraction p of connections
"""

from __future__ import annotations

import dataclasses
import json
import math as _pymath
import os
from typing import Any, Callable, Optional, Union

from sbnn_keras import _compat

_compat.ensure_legacy_keras()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sbnn_keras import layers as sbnn_layers_mod  # noqa: E402
from sbnn_keras import math as sbnn_math  # noqa: E402
from sbnn_keras.metrics import stats  # noqa: E402

__all__ = ["LayerStats", "TotalStats", "SparsityReport", "sparsity_report"]

Scale = Union[float, list]


@dataclasses.dataclass
class LayerStats:
    """Figures of one SBNN layer (see ``docs/metrics.md``).

    Attributes:
        name: layer name.
        class_name: layer class name.
        kernel_shape: Keras kernel shape (``[kh, kw, cin_per_group, cout]`` or ``[cin, cout]``).
        groups: convolution groups (1 for dense layers).
        out_pixels: output positions per sample (1 for dense layers); ``None`` if
            the output size is unknown (no fixed input size, or a shared layer).
        n: number of weights N.
        u: number of connections U (latent weight ``>= 0``).
        connections: ``p = U / N``.
        bits_per_weight: binary entropy ``h(p)``.
        tau, phi, alpha, beta: the binary domain (floats, or lists per output channel).
        hamming_histogram: kernels per Hamming weight ``0..kh*kw`` (``None`` for dense).
        k0, k1: shares of kernels with Hamming weight 0 and 1 (``None`` for dense).
        bops_dense, bops_kernel_skip, bops_sparse: binary operations per sample
            (``None`` when ``out_pixels`` is unknown or the layer kind is unsupported).
        bparams_bits: storage of the kernels with the paper's BParams scheme.
        dense_bits: dense storage, ``N`` bits.
    """

    name: str
    class_name: str
    kernel_shape: tuple
    groups: int
    out_pixels: Optional[int]
    n: int
    u: int
    connections: float
    bits_per_weight: float
    tau: Scale
    phi: Scale
    alpha: Scale
    beta: Scale
    hamming_histogram: Optional[list]
    k0: Optional[float]
    k1: Optional[float]
    bops_dense: Optional[int]
    bops_kernel_skip: Optional[int]
    bops_sparse: Optional[int]
    bparams_bits: int
    dense_bits: int

    @property
    def is_conv(self) -> bool:
        """True when the layer has convolution kernels (a Hamming histogram)."""
        return self.hamming_histogram is not None


@dataclasses.dataclass
class TotalStats:
    """Totals over all SBNN layers of a model.

    Attributes:
        layers: number of SBNN layers.
        n, u: total weights and connections.
        connections: global ``p = sum U / sum N``.
        bits_per_weight: ``h(p)`` of the global p.
        conv_kernels: number of convolution kernels (all conv SBNN layers).
        k0, k1: shares of those kernels with Hamming weight 0 and 1 (``None``
            without conv layers).
        bops_dense, bops_kernel_skip, bops_sparse: sums over layers (``None`` if a
            layer's value is unknown).
        bops_kernel_skip_ratio, bops_sparse_ratio: the sums divided by ``bops_dense``.
        bops_reduction: ``1 - bops_kernel_skip_ratio`` (the paper's "BOPs PR").
        bparams_bits, dense_bits: storage sums.
        bparams_ratio: ``bparams_bits / dense_bits``.
        bparams_reduction: ``1 - bparams_ratio`` (the paper's "BParams PR").
    """

    layers: int
    n: int
    u: int
    connections: float
    bits_per_weight: float
    conv_kernels: int
    k0: Optional[float]
    k1: Optional[float]
    bops_dense: Optional[int]
    bops_kernel_skip: Optional[int]
    bops_sparse: Optional[int]
    bops_kernel_skip_ratio: Optional[float]
    bops_sparse_ratio: Optional[float]
    bops_reduction: Optional[float]
    bparams_bits: int
    dense_bits: int
    bparams_ratio: float
    bparams_reduction: float


def _plain(value):
    """NumPy / tuples to plain JSON-able Python; non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if _pymath.isfinite(value) else None
    return value


class SparsityReport:
    """Per-layer and total sparsity figures of a model (see :func:`sparsity_report`).

    Attributes:
        model_name: name of the model.
        layers: list of :class:`LayerStats`, in model order.
        total: :class:`TotalStats`.
    """

    def __init__(self, model_name: str, layers: list, total: TotalStats):
        self.model_name = model_name
        self.layers = list(layers)
        self.total = total

    # ---------------------------------------------------------------- access
    def layer(self, name: str) -> LayerStats:
        """The stats of the layer called ``name``.

        Raises:
            KeyError: if no SBNN layer has that name.
        """
        for entry in self.layers:
            if entry.name == name:
                return entry
        raise KeyError(
            f"SparsityReport: no SBNN layer named {name!r} in model {self.model_name!r}; "
            f"layers are {[e.name for e in self.layers]}."
        )

    def __eq__(self, other):
        if not isinstance(other, SparsityReport):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        return (
            f"SparsityReport(model={self.model_name!r}, layers={len(self.layers)}, "
            f"connections={self.total.connections:.4f}, "
            f"bits_per_weight={self.total.bits_per_weight:.4f})"
        )

    # ---------------------------------------------------------------- export
    def to_dict(self) -> dict:
        """Plain-Python dict ``{"model", "layers": [...], "total": {...}}`` (JSON-able)."""
        return _plain(
            {
                "model": self.model_name,
                "layers": [dataclasses.asdict(entry) for entry in self.layers],
                "total": dataclasses.asdict(self.total),
            }
        )

    def to_json(self, path: Union[str, os.PathLike, None] = None, indent: int = 2) -> str:
        """The report as a JSON string; also written to ``path`` when given.

        Non-finite numbers are written as ``null`` so the output is strict JSON.
        """
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict) -> "SparsityReport":
        """Inverse of :meth:`to_dict`."""
        try:
            layers = []
            for entry in data["layers"]:
                entry = dict(entry)
                entry["kernel_shape"] = tuple(entry["kernel_shape"])
                layers.append(LayerStats(**entry))
            total = TotalStats(**data["total"])
            return cls(data["model"], layers, total)
        except (KeyError, TypeError) as err:
            shown = repr(data)
            shown = shown if len(shown) <= 200 else shown[:200] + "..."
            raise ValueError(
                f"SparsityReport.from_dict: argument `data` is not a sparsity report dict "
                f"({type(err).__name__}: {err}), got {shown}."
            ) from err

    @classmethod
    def from_json(cls, text_or_path: Union[str, os.PathLike]) -> "SparsityReport":
        """Read a report written by :meth:`to_json` (a JSON string or a file path)."""
        if not isinstance(text_or_path, (str, os.PathLike)):
            raise ValueError(
                f"SparsityReport.from_json: argument `text_or_path` must be a JSON string or a "
                f"path, got {text_or_path!r}."
            )
        text = os.fspath(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text, encoding="utf-8") as handle:
                text = handle.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            shown = text if len(text) <= 80 else text[:80] + "..."
            raise ValueError(
                f"SparsityReport.from_json: argument `text_or_path` is not valid JSON ({err}), "
                f"got {shown!r}."
            ) from None
        return cls.from_dict(data)

    # ---------------------------------------------------------------- table
    def __str__(self) -> str:
        return _format_report(self)

    def print(self, print_fn: Optional[Callable[[str], Any]] = None) -> None:
        """Print the table (or pass it to ``print_fn``, e.g. a logger's ``info``)."""
        (print_fn or print)(str(self))


# -------------------------------------------------------------------- building


def _scalar_or_list(value) -> Scale:
    arr = np.asarray(value, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else [float(v) for v in arr.ravel()]


def _out_pixels(layer, cout: int) -> Optional[int]:
    """Output positions per sample: ``prod(output_shape[1:]) / cout``; None if unknown."""
    try:
        shape = layer.output_shape
    except (AttributeError, RuntimeError, ValueError):
        return None
    if not isinstance(shape, tuple) or len(shape) < 2:
        return None
    dims = shape[1:]
    if any(d is None for d in dims):
        return None
    total = int(np.prod(dims, dtype=np.int64))
    if cout <= 0 or total % cout:
        return None
    return total // cout


def _layer_kind(layer, kernel_ndim: int) -> Optional[str]:
    """'conv' or 'dense' for the kernel layouts whose BOPs we know, else None.

    Transposed convolutions (kernel ``[..., cout, cin]``, work per *input* pixel)
    and unknown layer kinds get kernel statistics but no BOPs.
    """
    layers = tf.keras.layers
    transposed = tuple(
        getattr(layers, name)
        for name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
        if hasattr(layers, name)
    )
    if transposed and isinstance(layer, transposed):
        return None
    if isinstance(layer, layers.Dense) and kernel_ndim == 2:
        return "dense"
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)) and kernel_ndim >= 3:
        return "conv"
    return None


def _layer_stats(layer) -> LayerStats:
    latent = sbnn_layers_mod.latent_kernel(layer).numpy()
    w01 = stats.connection_mask(latent)
    shape = tuple(int(d) for d in latent.shape)
    n = int(w01.size)
    u = int(w01.sum())
    p = u / n
    scales = layer.kernel_quantizer.scales(latent)
    kind = _layer_kind(layer, latent.ndim)
    is_conv = latent.ndim >= 3
    groups = int(getattr(layer, "groups", 1) or 1) if kind == "conv" else 1

    if is_conv:
        hist = stats.hamming_histogram(w01)
        k0, k1 = stats.k_shares(hist)
        hist_list = [int(c) for c in hist]
    else:
        # a dense kernel is a set of 1x1 kernels: histogram [N - U, U] for BParams only
        hist = np.array([n - u, u], dtype=np.int64)
        k0 = k1 = None
        hist_list = None

    out_pixels = _out_pixels(layer, shape[-1]) if kind is not None else None
    if out_pixels is not None:
        bd = stats.bops_dense(w01, out_pixels)
        bk = stats.bops_kernel_skip(w01, out_pixels)
        bs = stats.bops_sparse(w01, out_pixels, groups=groups)
    else:
        bd = bk = bs = None

    return LayerStats(
        name=layer.name,
        class_name=type(layer).__name__,
        kernel_shape=shape,
        groups=groups,
        out_pixels=out_pixels,
        n=n,
        u=u,
        connections=float(p),
        bits_per_weight=float(sbnn_math.binary_entropy(p)),
        tau=_scalar_or_list(scales["tau"]),
        phi=_scalar_or_list(scales["phi"]),
        alpha=_scalar_or_list(scales["alpha"]),
        beta=_scalar_or_list(scales["beta"]),
        hamming_histogram=hist_list,
        k0=k0,
        k1=k1,
        bops_dense=bd,
        bops_kernel_skip=bk,
        bops_sparse=bs,
        bparams_bits=int(stats.bparams_bits(hist)),
        dense_bits=n,
    )


def _sum_or_none(values):
    values = list(values)
    if any(v is None for v in values):
        return None
    return int(sum(values))


def _ratio(num, den):
    if num is None or den is None or den == 0:
        return None
    return float(num / den)


def _totals(entries: list) -> TotalStats:
    n = sum(e.n for e in entries)
    u = sum(e.u for e in entries)
    p = u / n
    conv = [e for e in entries if e.is_conv]
    kernels = sum(sum(e.hamming_histogram) for e in conv)
    if kernels:
        k0 = sum(e.hamming_histogram[0] for e in conv) / kernels
        k1 = sum(e.hamming_histogram[1] for e in conv) / kernels
    else:
        k0 = k1 = None
    bd = _sum_or_none(e.bops_dense for e in entries)
    bk = _sum_or_none(e.bops_kernel_skip for e in entries)
    bs = _sum_or_none(e.bops_sparse for e in entries)
    skip_ratio = _ratio(bk, bd)
    bparams = sum(e.bparams_bits for e in entries)
    dense_bits = sum(e.dense_bits for e in entries)
    bparams_ratio = bparams / dense_bits
    return TotalStats(
        layers=len(entries),
        n=int(n),
        u=int(u),
        connections=float(p),
        bits_per_weight=float(sbnn_math.binary_entropy(p)),
        conv_kernels=int(kernels),
        k0=None if k0 is None else float(k0),
        k1=None if k1 is None else float(k1),
        bops_dense=bd,
        bops_kernel_skip=bk,
        bops_sparse=bs,
        bops_kernel_skip_ratio=skip_ratio,
        bops_sparse_ratio=_ratio(bs, bd),
        bops_reduction=None if skip_ratio is None else 1.0 - skip_ratio,
        bparams_bits=int(bparams),
        dense_bits=int(dense_bits),
        bparams_ratio=float(bparams_ratio),
        bparams_reduction=float(1.0 - bparams_ratio),
    )


def sparsity_report(model) -> SparsityReport:
    """Sparsity figures of every SBNN layer of ``model`` and their totals.

    Latent weights are read with ``latent_kernel(layer)``; a weight is a connection
    when its latent value is ``>= 0``. The domain (tau, phi, alpha, beta) comes from
    ``layer.kernel_quantizer.scales(latent)``; output positions from
    ``layer.output_shape``.

    Args:
        model: a built ``tf.keras.Model`` with at least one SBNN layer.

    Returns:
        A :class:`SparsityReport`.

    Raises:
        ValueError: if ``model`` is not a Keras model, is not built, or has no SBNN
            layer (the message names the model).

    Example::

        report = sparsity_report(model)
        print(report)                    # table
        report.to_json("sparsity.json")  # machine-readable
    """
    if not isinstance(model, tf.keras.Model):
        raise ValueError(
            f"sparsity_report: argument `model` must be a tf.keras.Model, got {model!r}."
        )
    found = sbnn_layers_mod.sbnn_layers(model)
    if not found:
        raise ValueError(
            f"sparsity_report: model {model.name!r} has no SBNN layer (no layer whose "
            "kernel_quantizer is an SbnnQuantizer), so there is nothing to report."
        )
    unbuilt = [layer.name for layer in found if not layer.built]
    if not model.built or unbuilt:
        detail = f" (layers {unbuilt} have no weights yet)" if unbuilt else ""
        raise ValueError(
            f"sparsity_report: model {model.name!r} is not built{detail}; give it an "
            "Input or call it once on data first."
        )
    entries = [_layer_stats(layer) for layer in found]
    return SparsityReport(model.name, entries, _totals(entries))


# -------------------------------------------------------------------- table


def _readable(num) -> str:
    """Integers below 10 000 exactly; larger ones with k / M / G / T."""
    if num is None:
        return "-"
    num = float(num)
    if abs(num) < 10_000:
        return f"{int(num)}"
    for unit in ("k", "M", "G", "T", "P"):
        num /= 1000.0
        if abs(num) < 1000 or unit == "P":
            return f"{num:.3g} {unit}" if abs(num) < 100 else f"{num:.0f} {unit}"
    return str(num)  # pragma: no cover


def _percent(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _scale(x) -> str:
    if isinstance(x, list):
        return "per-ch."
    if x is None:
        return "-"
    return f"{x:.3g}"


def _boxed(title: str, header: list, rows: list, footer: Optional[list] = None) -> str:
    """ASCII table in the style of ``lq.models.summary`` (first column left, others right)."""
    all_rows = [header] + rows + ([footer] if footer else [])
    widths = [max(len(str(r[i])) for r in all_rows) for i in range(len(header))]

    def line(row):
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "| " + "  ".join(cells) + " |"

    inner = sum(widths) + 2 * (len(widths) - 1) + 2
    rule = "+" + "-" * inner + "+"
    top = "+" + title[:inner] + "-" * max(0, inner - len(title)) + "+"
    out = [top, line(header), rule]
    out += [line(r) for r in rows]
    out.append(rule)
    if footer:
        out += [line(footer), rule]
    return "\n".join(out)


def _format_report(report: SparsityReport) -> str:
    header = [
        "Layer",
        "Kernel",
        "Weights",
        "Conn.",
        "p",
        "Bits/w",
        "alpha",
        "beta",
        "K0",
        "K1",
        "BOPs dense",
        "BOPs skip",
        "BOPs sparse",
        "BParams",
    ]
    rows = []
    for e in report.layers:
        rows.append(
            [
                e.name,
                "x".join(str(d) for d in e.kernel_shape),
                _readable(e.n),
                _readable(e.u),
                _percent(e.connections),
                f"{e.bits_per_weight:.3f}",
                _scale(e.alpha),
                _scale(e.beta),
                _percent(e.k0),
                _percent(e.k1),
                _readable(e.bops_dense),
                _readable(e.bops_kernel_skip),
                _readable(e.bops_sparse),
                _readable(e.bparams_bits),
            ]
        )
    t = report.total
    footer = [
        "Total",
        "",
        _readable(t.n),
        _readable(t.u),
        _percent(t.connections),
        f"{t.bits_per_weight:.3f}",
        "",
        "",
        _percent(t.k0),
        _percent(t.k1),
        _readable(t.bops_dense),
        _readable(t.bops_kernel_skip),
        _readable(t.bops_sparse),
        _readable(t.bparams_bits),
    ]
    table = _boxed(f"{report.model_name} sparsity", header, rows, footer)

    def ratio(x):
        return "-" if x is None else f"{x:.4f}"

    summary_rows = [
        ["SBNN layers", str(t.layers)],
        ["Connections p (global)", _percent(t.connections)],
        ["Bits/weight h(p)", f"{t.bits_per_weight:.4f}"],
        ["K0 / K1 (conv kernels)", f"{_percent(t.k0)} / {_percent(t.k1)}"],
        ["BOPs kernel skip / dense", ratio(t.bops_kernel_skip_ratio)],
        ["BOPs sparse / dense", ratio(t.bops_sparse_ratio)],
        ["BParams / dense bits", ratio(t.bparams_ratio)],
    ]
    width = max(len(r[0]) for r in summary_rows)
    vwidth = max(len(r[1]) for r in summary_rows)
    inner = width + vwidth + 4
    lines = ["+" + f"{report.model_name} totals"[:inner].ljust(inner, "-") + "+"]
    lines += [f"| {k.ljust(width)}  {v.rjust(vwidth)} |" for k, v in summary_rows]
    lines.append("+" + "-" * inner + "+")
    return table + "\n" + "\n".join(lines)
