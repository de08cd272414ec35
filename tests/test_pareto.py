"""Pareto-front utilities: the fast paths against an O(n^2) brute force, and the outputs."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sbnn_keras.tuning.pareto import ParetoFront, pareto_front, pareto_mask


def brute_force(points, maximize):
    """Reference: i is on the front unless some j is >= everywhere and > somewhere."""
    p = np.asarray(points, dtype=np.float64)
    p = np.where(np.asarray(maximize), p, -p)  # now every column is maximised
    keep = []
    for i in range(len(p)):
        if np.isnan(p[i]).any():
            continue
        dominated = False
        for j in range(len(p)):
            if j == i or np.isnan(p[j]).any():
                continue
            if np.all(p[j] >= p[i]) and np.any(p[j] > p[i]):
                dominated = True
                break
        if not dominated:
            keep.append(i)
    return np.array(keep, dtype=np.int64)


# Small integers make ties and duplicates common; NaN and infinities are mixed in.
values = st.one_of(
    st.integers(-3, 3).map(float),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.5, -0.0]),
)


@st.composite
def problems(draw, min_dims=1, max_dims=4):
    d = draw(st.integers(min_dims, max_dims))
    n = draw(st.integers(0, 40))
    pts = draw(hnp.arrays(np.float64, (n, d), elements=values))
    maximize = tuple(draw(st.lists(st.booleans(), min_size=d, max_size=d)))
    return pts, maximize


@settings(max_examples=300, deadline=None)
@given(problems(min_dims=2, max_dims=2))
def test_two_objectives_match_brute_force(problem):
    pts, maximize = problem
    np.testing.assert_array_equal(pareto_front(pts, maximize), brute_force(pts, maximize))


@settings(max_examples=200, deadline=None)
@given(problems(min_dims=1, max_dims=4))
def test_any_number_of_objectives_matches_brute_force(problem):
    pts, maximize = problem
    np.testing.assert_array_equal(pareto_front(pts, maximize), brute_force(pts, maximize))


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, (60, 2), elements=st.floats(-1e6, 1e6)))
def test_continuous_values(pts):
    np.testing.assert_array_equal(pareto_front(pts), brute_force(pts, (True, False)))


def test_documented_example_and_properties():
    pts = np.array([[0.90, 5e6], [0.88, 2e6], [0.85, 3e6], [0.91, 9e6]])
    np.testing.assert_array_equal(pareto_front(pts, (True, False)), [0, 1, 3])
    # duplicates of a front point are all on the front; NaN rows never are
    pts = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0], [np.nan, 0.0]])
    np.testing.assert_array_equal(pareto_front(pts), [0, 1])
    assert pareto_front(np.zeros((0, 2))).tolist() == []
    assert pareto_mask([[1.0, 2.0]]).tolist() == [True]


@pytest.mark.parametrize(
    "points, maximize, needle",
    [
        ([[1.0, 2.0]], (True,), "`maximize` has 1 entries"),
        ([[1.0, 2.0]], "max", "`maximize` must be a sequence of bools"),
        ([[1.0, 2.0]], (1, 0), "`maximize` must be a sequence of bools"),
        ([1.0, 2.0], (True, False), "must be 2-D"),
        ([["a", "b"]], (True, False), "`points` must be a 2-D array of numbers"),
    ],
)
def test_bad_input_names_the_argument(points, maximize, needle):
    with pytest.raises(ValueError, match=needle):
        pareto_front(points, maximize)


def _records():
    rng = np.random.default_rng(0)
    records = []
    for i in range(12):
        ec = float(rng.uniform(0.01, 0.25))
        records.append(
            {
                "id": f"{i:02d}",
                "params": {"expected_connections": ec, "gamma": 0.05, "tuner/epochs": 2},
                "metrics": {
                    "val_accuracy": float(0.8 + 0.4 * ec + rng.normal(0, 0.02)),
                    "cost": float(1e6 * ec + 1e4),
                },
            }
        )
    records.append({"id": "nan", "params": {}, "metrics": {"val_accuracy": None, "cost": 5.0}})
    return records


def test_front_object_table_json_and_plot(tmp_path):
    front = ParetoFront(_records(), ("val_accuracy", "cost"), (True, False), meta={"x": 1})
    expected = brute_force(front.points(), (True, False))
    assert sorted(r["id"] for r in front.front) == sorted(front.records[i]["id"] for i in expected)
    costs = [r["metrics"]["cost"] for r in front.front]
    assert costs == sorted(costs)
    assert "nan" not in [r["id"] for r in front.front]

    text = front.table()
    assert text.startswith(f"Pareto front: {len(front)} of 13 points")
    assert "expected_connections" in text and "tuner/epochs" not in text
    every = front.table(all_records=True)
    assert every.count("*") == len(front)

    path = tmp_path / "sub" / "front.json"
    front.to_json(path)
    data = json.loads(path.read_text())
    assert data["front"] == [r["id"] for r in front.front]
    assert data["meta"] == {"x": 1}
    assert sum(r["on_front"] for r in data["records"]) == len(front)
    again = ParetoFront.from_json(path)
    assert [r["id"] for r in again.front] == data["front"]

    png = tmp_path / "plots" / "front.png"
    fig = front.plot(png, annotate=["expected_connections"], title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes[0].get_xscale() == "log"  # costs span more than 20x


def test_front_object_rejects_mismatched_objectives():
    with pytest.raises(ValueError, match="`objectives`"):
        ParetoFront([], ("a", "b"), (True,))
    with pytest.raises(ValueError, match="no `metrics`"):
        ParetoFront([{"id": 1}], ("a",), (True,))
