"""Pareto fronts of tuning results (pure NumPy; plots with matplotlib's Agg canvas).

KerasTuner's list of objectives is an unweighted signed sum, which cannot show the
trade-off between accuracy and cost (BOPs, latency) that choosing EC and gamma is
about. This module finds the non-dominated points instead.

A point ``a`` *dominates* ``b`` when ``a`` is at least as good as ``b`` in every
objective and strictly better in at least one. The Pareto front is the set of
points that no other point dominates. Consequences worth knowing:

- identical points do not dominate each other: all copies of a non-dominated
  point are on the front;
- points with a NaN in any objective are never on the front and dominate nothing.

Example::

    import numpy as np
    from sbnn_keras.tuning.pareto import pareto_front

    acc_and_bops = np.array([[0.90, 5e6], [0.88, 2e6], [0.85, 3e6], [0.91, 9e6]])
    pareto_front(acc_and_bops, maximize=(True, False))   # array([0, 1, 3])

:class:`ParetoFront` keeps labelled records (a trial's hyperparameters and
metrics) with the front, and formats them as a table, JSON or a PNG plot.
"""

from __future__ import annotations

import json
import math as _pymath
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["pareto_front", "pareto_mask", "ParetoFront"]

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------- the math
def _as_points(points, maximize) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(costs, finite_rows)``: every column to minimise."""
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"pareto_front: argument `points` must be a 2-D array of numbers, got {points!r}."
        ) from err
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, len(maximize) if _is_sequence(maximize) else 0)
    if array.ndim != 2:
        raise ValueError(
            "pareto_front: argument `points` must be 2-D (n_points, n_objectives), "
            f"got shape {array.shape}."
        )
    if not _is_sequence(maximize) or not all(
        isinstance(flag, (bool, np.bool_)) for flag in maximize
    ):
        raise ValueError(
            "pareto_front: argument `maximize` must be a sequence of bools (one per "
            f"objective), got {maximize!r}."
        )
    if len(maximize) != array.shape[1]:
        raise ValueError(
            f"pareto_front: argument `maximize` has {len(maximize)} entries but `points` "
            f"has {array.shape[1]} objectives (shape {array.shape}); got maximize={maximize!r}."
        )
    if array.shape[1] == 0:
        raise ValueError("pareto_front: argument `points` needs at least one objective column.")
    sign = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    costs = array * sign
    finite = ~np.isnan(costs).any(axis=1)
    return costs, finite


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _mask_2d(costs: np.ndarray) -> np.ndarray:
    """Non-dominated rows of an (n, 2) array of costs without NaN, in O(n log n)."""
    a, b = costs[:, 0], costs[:, 1]
    order = np.lexsort((b, a))  # by a, then b
    a_s, b_s = a[order], b[order]
    starts = np.flatnonzero(np.r_[True, a_s[1:] != a_s[:-1]])
    group = np.cumsum(np.r_[True, a_s[1:] != a_s[:-1]]) - 1
    group_min = b_s[starts]  # sorted by b inside each group of equal a
    # smallest b among points with a strictly smaller a
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]
    has_before = group > 0  # the first group has no point with a smaller a
    dominated = (has_before & (before[group] <= b_s)) | (group_min[group] < b_s)
    mask = np.empty(len(costs), dtype=bool)
    mask[order] = ~dominated
    return mask


def _mask_nd(costs: np.ndarray, block: int = 256) -> np.ndarray:
    """Non-dominated rows of an (n, d) array of costs without NaN, O(n^2 d) in blocks."""
    n = len(costs)
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, block):
        rows = costs[start : start + block]  # (k, d): candidates
        le = (costs[None, :, :] <= rows[:, None, :]).all(axis=2)  # (k, n)
        lt = (costs[None, :, :] < rows[:, None, :]).any(axis=2)
        mask[start : start + block] = ~(le & lt).any(axis=1)
    return mask


def pareto_mask(points, maximize: Sequence[bool] = (True, False)) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points``.

    Args:
        points: array-like ``(n_points, n_objectives)``.
        maximize: one bool per objective: True to maximise it, False to minimise.

    Returns:
        ``bool`` array of length ``n_points``; True on the Pareto front.

    Raises:
        ValueError: ``points`` is not a 2-D numeric array, or ``maximize`` is not
            a sequence of bools of matching length (the message quotes the value).
    """
    costs, finite = _as_points(points, maximize)
    mask = np.zeros(len(costs), dtype=bool)
    if finite.any():
        kept = costs[finite]
        mask[finite] = _mask_2d(kept) if kept.shape[1] == 2 else _mask_nd(kept)
    return mask


def pareto_front(points, maximize: Sequence[bool] = (True, False)) -> np.ndarray:
    """Indices of the non-dominated rows of ``points`` (ascending).

    Two objectives take O(n log n) (sort and sweep); more take O(n^2 d) in
    vectorised blocks.

    Args:
        points: array-like ``(n_points, n_objectives)``, e.g. columns
            (validation accuracy, BOPs).
        maximize: one bool per objective; the default ``(True, False)`` maximises
            the first column and minimises the second.

    Returns:
        ``int64`` array of row indices of the Pareto front, ascending.

    Raises:
        ValueError: see :func:`pareto_mask`.

    Example::

        pareto_front([[0.9, 5.0], [0.8, 6.0], [0.7, 1.0]])   # array([0, 2])
    """
    return np.flatnonzero(pareto_mask(points, maximize)).astype(np.int64)


# ------------------------------------------------------------------ the records
def _plain(value):
    """JSON-able Python value; non-finite floats become None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if _pymath.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}" if abs(int(value)) >= 10000 else str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not _pymath.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers=None) -> str:
    """A plain-text table of ``rows`` (dicts) with the given ``columns``."""
    headers = list(headers or columns)
    cells = [[_fmt(row.get(col)) for col in columns] for row in rows]
    widths = [
        max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def _column(records, name) -> np.ndarray:
    """One metric of every record (NaN where missing)."""
    return np.array(
        [np.nan if r["metrics"].get(name) is None else float(r["metrics"][name]) for r in records],
        dtype=np.float64,
    )


def _draw_front(ax, front, x, y, annotate) -> None:
    """The front as a red line, each point labelled with the ``annotate`` parameters."""
    fx, fy = _column(front, x), _column(front, y)
    if len(front):
        order = np.argsort(fx, kind="stable")
        ax.plot(
            fx[order], fy[order], "-o", color="tab:red", markersize=6,
            label=f"Pareto front ({len(front)})", zorder=3,
        )
        names = dict(annotate) if isinstance(annotate, Mapping) else {
            k: k for k in (annotate or [])
        }
        finite_x = fx[np.isfinite(fx)]
        middle = (finite_x.min() + finite_x.max()) / 2 if finite_x.size else 0.0
        for record, xv, yv in zip(front, fx, fy):
            text = ", ".join(
                f"{short}={_fmt(record['params'].get(k))}"
                for k, short in names.items()
                if k in record["params"]
            )
            if text:
                right = finite_x.size > 1 and xv > middle  # keep labels inside the axes
                ax.annotate(text, (xv, yv), textcoords="offset points",
                            xytext=(-5, 4) if right else (6, -10),
                            ha="right" if right else "left", fontsize=7, color="tab:red")


class ParetoFront:
    """Labelled points (e.g. tuner trials) and their Pareto front.

    Every record is a dict with an ``"id"``, a ``"params"`` dict (e.g. the trial's
    hyperparameters) and a ``"metrics"`` dict; ``objectives`` names the metrics
    that span the front.

    Args:
        records: the points.
        objectives: metric names, one per objective (e.g. ``("val_accuracy", "cost")``).
        maximize: one bool per objective.
        labels: optional display names per objective (axis labels, table headers).
        meta: optional JSON-able dict saved with :meth:`to_json` (e.g. the tuner's
            settings).

    Attributes:
        records: all records, in the order given.
        front: records on the front, sorted by the last objective, then the first.
        mask: bool array over ``records``; True on the front.

    Raises:
        ValueError: ``objectives`` and ``maximize`` differ in length, or a record
            lacks ``"metrics"``.
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]],
        objectives: Sequence[str] = ("val_accuracy", "cost"),
        maximize: Sequence[bool] = (True, False),
        labels: Optional[Sequence[str]] = None,
        meta: Optional[Mapping[str, Any]] = None,
    ):
        self.records = [dict(r) for r in records]
        self.objectives = tuple(objectives)
        self.maximize = tuple(bool(m) for m in maximize)
        if len(self.objectives) != len(self.maximize) or not self.objectives:
            raise ValueError(
                f"ParetoFront: `objectives` {objectives!r} and `maximize` {maximize!r} "
                "must be non-empty and of equal length."
            )
        self.labels = tuple(labels) if labels is not None else self.objectives
        self.meta = dict(meta or {})
        for record in self.records:
            if not isinstance(record.get("metrics"), Mapping):
                raise ValueError(f"ParetoFront: record {record!r} has no `metrics` dict.")
            record.setdefault("params", {})
        points = self.points()
        self.mask = pareto_mask(points, self.maximize) if len(points) else np.zeros(0, bool)
        on_front = [r for r, m in zip(self.records, self.mask) if m]
        self.front = sorted(on_front, key=self._sort_key)

    def _sort_key(self, record):
        values = [record["metrics"].get(name) for name in self.objectives]
        values = [np.nan if v is None else float(v) for v in values]
        return (values[-1], -values[0] if self.maximize[0] else values[0])

    def points(self) -> np.ndarray:
        """``(n_records, n_objectives)`` float array (NaN where a metric is missing)."""
        rows = [
            [
                np.nan if r["metrics"].get(name) is None else float(r["metrics"][name])
                for name in self.objectives
            ]
            for r in self.records
        ]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(self.objectives))

    def __len__(self) -> int:
        return len(self.front)

    def __iter__(self):
        return iter(self.front)

    # ------------------------------------------------------------- output
    def _columns(self, params=None, metrics=None):
        if params is None:
            params = []
            for r in self.records:
                for key in r["params"]:
                    if key not in params and not str(key).startswith("tuner/"):
                        params.append(key)
        if metrics is None:
            metrics = list(self.objectives)
        return list(params), list(metrics)

    def _rows(self, records, params, metrics):
        rows = []
        for r in records:
            row = {"id": r.get("id")}
            row.update({f"p:{k}": r["params"].get(k) for k in params})
            row.update({f"m:{k}": r["metrics"].get(k) for k in metrics})
            rows.append(row)
        return rows

    def table(self, all_records: bool = False, params=None, metrics=None) -> str:
        """The front (or every record, front marked ``*``) as a text table.

        Args:
            all_records: list every record, not only the front.
            params: parameter names to show (default: all but ``tuner/*``).
            metrics: metric names to show (default: the objectives).
        """
        params, metrics = self._columns(params, metrics)
        records = (
            sorted(self.records, key=self._sort_key) if all_records else list(self.front)
        )
        rows = self._rows(records, params, metrics)
        columns = ["id"] + [f"p:{k}" for k in params] + [f"m:{k}" for k in metrics]
        headers = ["trial"] + list(params) + list(metrics)
        if all_records:
            front_ids = {id(r) for r in self.front}
            for row, r in zip(rows, records):
                row["front"] = "*" if id(r) in front_ids else ""
            columns.insert(1, "front")
            headers.insert(1, "front")
        title = (
            f"Pareto front: {len(self.front)} of {len(self.records)} points, "
            + ", ".join(
                f"{'max' if m else 'min'} {name}" for name, m in zip(self.objectives, self.maximize)
            )
        )
        return title + "\n" + format_table(rows, columns, headers)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (
            f"ParetoFront({len(self.front)} of {len(self.records)} points, "
            f"objectives={self.objectives}, maximize={self.maximize})"
        )

    def to_dict(self) -> dict:
        """``{"objectives", "maximize", "meta", "front": [...], "records": [...]}``.

        ``front`` holds the ids of the front records in the order of :attr:`front`;
        every record gets ``"on_front"``. Non-finite numbers become ``null``.
        """
        front_ids = {id(r) for r in self.front}
        return _plain(
            {
                "objectives": list(self.objectives),
                "maximize": list(self.maximize),
                "labels": list(self.labels),
                "meta": self.meta,
                "front": [r.get("id") for r in self.front],
                "records": [dict(r, on_front=id(r) in front_ids) for r in self.records],
            }
        )

    def to_json(self, path: Optional[PathLike] = None, indent: int = 2) -> str:
        """The front as strict JSON (see :meth:`to_dict`); also written to ``path``."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ParetoFront":
        """Inverse of :meth:`to_dict` (the front is recomputed)."""
        records = [
            {k: v for k, v in r.items() if k != "on_front"} for r in data["records"]
        ]
        return cls(
            records,
            data["objectives"],
            data["maximize"],
            labels=data.get("labels"),
            meta=data.get("meta"),
        )

    @classmethod
    def from_json(cls, path: PathLike) -> "ParetoFront":
        """Read a file written by :meth:`to_json`."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    def plot(
        self,
        path: Optional[PathLike] = None,
        x: Optional[str] = None,
        y: Optional[str] = None,
        annotate: Optional[Sequence[str]] = None,
        title: Optional[str] = None,
        logx: Optional[bool] = None,
        dpi: int = 120,
    ):
        """Scatter plot of every record with the front highlighted (matplotlib Agg).

        Args:
            path: PNG file to write (directories are created); None: only return.
            x, y: metrics on the axes (default: the second and the first objective).
            annotate: parameter names written beside each front point, or a dict
                ``{name: short label}``.
            title: figure title.
            logx: log-scale x axis (default: when x spans more than a factor 20).
            dpi: resolution.

        Returns:
            The ``matplotlib.figure.Figure``.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as err:  # pragma: no cover - matplotlib is a dependency
            raise ImportError("ParetoFront.plot needs matplotlib (pip install matplotlib).") from err
        if x is None:
            x = self.objectives[1] if len(self.objectives) > 1 else self.objectives[0]
        if y is None:
            y = self.objectives[0]
        label = dict(zip(self.objectives, self.labels))
        fig = Figure(figsize=(6.4, 4.6), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        xs, ys = _column(self.records, x), _column(self.records, y)
        ax.scatter(xs, ys, s=22, color="0.6", label=f"all points ({len(self.records)})", zorder=2)
        _draw_front(ax, self.front, x, y, annotate)
        finite = xs[np.isfinite(xs) & (xs > 0)]
        if logx is None:
            logx = finite.size > 1 and finite.max() / finite.min() > 20
        if logx and finite.size:
            ax.set_xscale("log")
        ax.set_xlabel(label.get(x, x))
        ax.set_ylabel(label.get(y, y))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        if title:
            ax.set_title(title, fontsize=10)
        if path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            fig.savefig(path, dpi=dpi, format="png")
        return fig
