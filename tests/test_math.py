"""sbnn_keras.math against independent references (numpy.linalg.lstsq, eq. 15)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbnn_keras import math as sm


def lstsq_scales(w, wb):
    a = np.stack([wb.ravel(), np.ones(w.size)], axis=1)
    (tau, phi), *_ = np.linalg.lstsq(a, w.ravel(), rcond=None)
    return tau, phi


def eq15(w, wb):
    """The paper's closed form with ||w||_1 generalised to dot(w, wb)."""
    n = w.size
    s = wb.mean()
    den = n * (1 - s**2)
    tau = (np.dot(w.ravel(), wb.ravel()) - s * w.sum()) / den
    phi = (w.sum() - s * np.dot(w.ravel(), wb.ravel())) / den
    return tau, phi


shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(shape=shapes, skew=st.floats(-3, 3), scale=st.floats(0.01, 10), seed=st.integers(0, 2**31 - 1))
def test_optimal_scales_equals_lstsq(shape, skew, scale, seed):
    rng = np.random.default_rng(seed)
    w = (rng.normal(size=shape) + skew) * scale
    wb = sm.binarize(w)
    tau, phi = sm.optimal_scales(w)
    ref_tau, ref_phi = lstsq_scales(w, wb)
    np.testing.assert_allclose([tau, phi], [ref_tau, ref_phi], rtol=1e-8, atol=1e-8 * scale)
    # the quantization error is minimal: no perturbation of (tau, phi) does better
    err = np.sum((w - (tau * wb + phi)) ** 2)
    for dt, dp in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert err <= np.sum((w - ((tau + dt) * wb + phi + dp)) ** 2) + 1e-12


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 200), p=st.floats(0.01, 0.99), seed=st.integers(0, 2**31 - 1))
def test_optimal_scales_equals_eq15_for_any_code(n, p, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n)
    wb = np.where(rng.random(n) < p, 1.0, -1.0)
    if abs(wb.mean()) == 1:
        wb[0] = -wb[0]
    np.testing.assert_allclose(sm.optimal_scales(w, wb), eq15(w, wb), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(sm.optimal_scales(w, wb), lstsq_scales(w, wb), rtol=1e-7, atol=1e-10)


def test_optimal_scales_eq15_with_sign_uses_l1_norm():
    w = np.array([0.5, 0.2, -0.1, 0.9, -2.0, 0.3])
    n, s = w.size, sm.binarize(w).mean()
    tau = (np.abs(w).sum() - s * w.sum()) / (n * (1 - s**2))
    phi = (w.sum() - s * np.abs(w).sum()) / (n * (1 - s**2))
    np.testing.assert_allclose(sm.optimal_scales(w), (tau, phi), rtol=1e-12)


@pytest.mark.parametrize("w", [np.array([0.3, 0.1, 2.0]), -np.array([0.3, 0.1, 2.0]), np.zeros(4)])
def test_degenerate_all_one_sign_is_finite_and_least_squares(w):
    tau, phi = sm.optimal_scales(w)
    assert np.isfinite(tau) and np.isfinite(phi)
    wb = sm.binarize(w)
    np.testing.assert_allclose(tau * wb + phi, np.full_like(w, w.mean()), atol=1e-12)
    np.testing.assert_allclose((tau, phi), lstsq_scales(w, wb), atol=1e-12)


def test_per_channel_matches_per_column_lstsq():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 4, 5)) + np.linspace(-1, 1, 5)
    w[..., 2] = np.abs(w[..., 2])  # one degenerate channel
    tau, phi = sm.optimal_scales(w, per_channel=True)
    assert tau.shape == (5,) and phi.shape == (5,)
    for c in range(5):
        ref = lstsq_scales(w[..., c], sm.binarize(w[..., c]))
        np.testing.assert_allclose((tau[c], phi[c]), ref, atol=1e-10)


def test_binarize_zero_is_plus_one():
    np.testing.assert_array_equal(sm.binarize([-0.5, 0.0, 0.5]), [-1, 1, 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"w": []}, "empty"),
        ({"w": [1.0, np.nan]}, "NaN"),
        ({"w": [1.0, 2.0], "wb": [1.0]}, "shape"),
        ({"w": [1.0, 2.0], "wb": [1.0, 0.0]}, "-1 and \\+1"),
    ],
)
def test_optimal_scales_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sm.optimal_scales(**kwargs)


def test_binary_entropy_values():
    assert sm.binary_entropy(0.5) == 1.0
    assert sm.binary_entropy(0.0) == 0.0 and sm.binary_entropy(1.0) == 0.0
    p = np.array([0.05, 0.25, 0.7])
    ref = -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    np.testing.assert_allclose(sm.binary_entropy(p), ref)


@settings(max_examples=200, deadline=None)
@given(p=st.floats(0, 0.5))
def test_inverse_binary_entropy_round_trip(p):
    assert abs(sm.inverse_binary_entropy(sm.binary_entropy(p)) - p) < 1e-9


def test_inverse_binary_entropy_array_and_known_value():
    h = sm.binary_entropy(np.array([0.01, 0.05, 0.5]))
    np.testing.assert_allclose(sm.inverse_binary_entropy(h), [0.01, 0.05, 0.5], atol=1e-10)
    # the paper's example: 95% sparsity is h(0.05) = 0.2864 bits/weight
    assert abs(float(sm.binary_entropy(0.05)) - 0.286397) < 1e-6


@pytest.mark.parametrize("bad", [-0.1, 1.1, np.nan])
def test_entropy_bad_input(bad):
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        sm.binary_entropy(bad)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        sm.inverse_binary_entropy(bad)
