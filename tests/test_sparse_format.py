"""SBF1 compact filter storage: exact round trips, the entropy bound, and hostile data."""

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sbnn_keras import math as sm
from sbnn_runtime.sparse_format import (
    HEADER_SIZE,
    SparseFilterError,
    decode_filter,
    encode_filter,
    encoded_bits_per_weight,
)


def random_filter(rng, shape, p):
    return np.where(rng.random(shape) < p, 1.0, -1.0)


@settings(max_examples=60, deadline=None)
@given(
    o=st.integers(1, 9), fh=st.integers(1, 3), fw=st.integers(1, 3), c=st.integers(1, 70),
    p=st.sampled_from([0.0, 0.01, 0.05, 0.3, 0.5, 0.9, 1.0]), seed=st.integers(0, 2**31 - 1),
)
def test_round_trip(o, fh, fw, c, p, seed):
    wb = random_filter(np.random.default_rng(seed), (o, fh, fw, c), p)
    data = encode_filter(wb)
    np.testing.assert_array_equal(decode_filter(data), wb)


@pytest.mark.parametrize("k", [0, 3, 9, 24])
def test_any_rice_parameter_round_trips(k):
    wb = random_filter(np.random.default_rng(k), (4, 3, 3, 40), 0.07)
    np.testing.assert_array_equal(decode_filter(encode_filter(wb, rice_k=k)), wb)


@pytest.mark.parametrize("p", [0.01, 0.05, 0.1, 0.25])
def test_size_is_near_entropy(p):
    shape = (128, 3, 3, 128)
    wb = random_filter(np.random.default_rng(1), shape, p)
    data = encode_filter(wb)
    n = wb.size
    h = float(sm.binary_entropy((wb > 0).mean()))
    # issue goal: <= 1.3 h(p) bits/weight plus a small constant per layer
    assert 8 * len(data) <= 1.3 * h * n + 8 * HEADER_SIZE + 64
    assert encoded_bits_per_weight(data) < 1.15 * h


def test_dense_filters_cost_about_one_bit():
    wb = random_filter(np.random.default_rng(2), (64, 3, 3, 64), 0.5)
    assert encoded_bits_per_weight(encode_filter(wb)) < 1.02


def test_structured_channels_cost_two_bits():
    wb = -np.ones((16, 3, 3, 32))
    wb[3] = 1.0  # an all-connection channel (the converter's q channel)
    data = encode_filter(wb)
    assert len(data) <= HEADER_SIZE + 4
    np.testing.assert_array_equal(decode_filter(data), wb)


@pytest.mark.parametrize(
    "bad, match",
    [(np.ones((2, 3)), "4-D"), (np.zeros((1, 1, 1, 1)), "-1 and \\+1"), (np.ones((0, 3, 3, 1)), "non-empty")],
)
def test_encode_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        encode_filter(bad)


def test_decode_rejects_header_problems():
    data = bytearray(encode_filter(random_filter(np.random.default_rng(3), (3, 3, 3, 8), 0.2)))
    cases = {
        "magic": (0, b"XXXX", "bad magic"),
        "version": (4, b"\x02", "unsupported version"),
        "zero dim": (8, struct.pack("<I", 0), "zero dimension"),
        "huge": (20, struct.pack("<I", 2**31 - 1), "too large"),
        "huge but few channels": (8, struct.pack("<I", 1) + struct.pack("<I", 2**15) * 3, "too large"),
        "total": (24, struct.pack("<I", 10**6), None),
        "payload bits": (28, struct.pack("<I", 3), None),
    }
    for name, (offset, patch, match) in cases.items():
        bad = bytearray(data)
        bad[offset : offset + len(patch)] = patch
        with pytest.raises(SparseFilterError, match=match or "SBF1"):
            decode_filter(bytes(bad))
    for cut in range(0, len(data) - 1):
        with pytest.raises(SparseFilterError):
            decode_filter(bytes(data[:cut]))
    with pytest.raises(SparseFilterError, match="SBF1"):
        decode_filter(bytes(data) + b"\x00")


def test_expected_shape_is_checked_first():
    data = encode_filter(random_filter(np.random.default_rng(5), (2, 3, 3, 4), 0.1))
    assert decode_filter(data, expected_shape=(2, 3, 3, 4)).shape == (2, 3, 3, 4)
    with pytest.raises(SparseFilterError, match="expected \\(2, 3, 3, 5\\)"):
        decode_filter(data, expected_shape=(2, 3, 3, 5))


def test_every_single_byte_mutation_is_rejected_or_consistent():
    wb = random_filter(np.random.default_rng(4), (4, 3, 3, 12), 0.1)
    data = encode_filter(wb)
    for i in range(len(data)):
        for value in (0x00, 0xFF, data[i] ^ 0x01, data[i] ^ 0x80):
            bad = bytearray(data)
            bad[i] = value
            try:
                out = decode_filter(bytes(bad))
            except SparseFilterError:
                continue
            # accepted: then it is a well-formed filter of the declared shape
            assert out.ndim == 4 and set(np.unique(out)) <= {-1, 1} and out.size <= 2**26
