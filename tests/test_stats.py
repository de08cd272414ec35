"""sbnn_keras.metrics.stats against brute-force references (loops over kernels) and hand-made kernels."""

import itertools
import math

import numpy as np
import pytest

from sbnn_keras.metrics import stats

# ---------------------------------------------------------------- references
# Written independently of the implementation: explicit loops over every
# (input channel, output channel) kernel and every tap.


def ref_kernel_weights(w01):
    """{(i, o): Hamming weight} by looping over every spatial tap."""
    w01 = np.asarray(w01)
    spatial = w01.shape[:-2]
    cin, cout = w01.shape[-2:]
    out = {}
    for i in range(cin):
        for o in range(cout):
            hw = 0
            for tap in itertools.product(*(range(s) for s in spatial)):
                hw += int(w01[tap + (i, o)])
            out[(i, o)] = hw
    return out


def ref_histogram(w01):
    w01 = np.asarray(w01)
    k = int(np.prod(w01.shape[:-2])) if w01.ndim > 2 else 1
    hist = [0] * (k + 1)
    for hw in ref_kernel_weights(w01).values():
        hist[hw] += 1
    return hist


def ref_bops(w01, out_pixels, groups=1):
    """(dense, kernel_skip, sparse) by summing per-kernel costs."""
    w01 = np.asarray(w01)
    k = int(np.prod(w01.shape[:-2])) if w01.ndim > 2 else 1
    dense = skip = 0
    for hw in ref_kernel_weights(w01).values():
        dense += 2 * k  # k XNOR + k popcount
        if k == 1:
            skip += 2 * k if hw == 1 else 0
        elif hw >= 2:
            skip += 2 * k
    connections = sum(ref_kernel_weights(w01).values())
    cin = w01.shape[-2] * groups
    sparse = connections + k * cin  # popcount per connection + shared q term
    return dense * out_pixels, skip * out_pixels, sparse * out_pixels


def ref_bparams(w01):
    w01 = np.asarray(w01)
    k = int(np.prod(w01.shape[:-2]))
    bits = 0
    for hw in ref_kernel_weights(w01).values():
        if k == 1:
            bits += 1  # a single weight: its own bit
        elif hw == 0:
            bits += 2
        elif hw == 1:
            bits += 2 + math.ceil(math.log2(k))
        else:
            bits += 2 + k
    return bits


# ---------------------------------------------------------------- hand-made kernels


def test_all_zero_3x3():
    w01 = np.zeros((3, 3, 4, 5), dtype=np.uint8)
    hist = stats.hamming_histogram(w01)
    assert hist.tolist() == [20] + [0] * 9
    assert stats.k_shares(hist) == (1.0, 0.0)
    assert stats.bops_dense(w01, 10) == 2 * 180 * 10
    assert stats.bops_kernel_skip(w01, 10) == 0
    assert stats.bops_sparse(w01, 10) == (0 + 9 * 4) * 10
    assert stats.bparams_bits(hist, 3) == 2 * 20


def test_one_hot_3x3():
    # every kernel has exactly one connection, at a different tap each time
    w01 = np.zeros((3, 3, 2, 3), dtype=np.uint8)
    for n, (i, o) in enumerate(itertools.product(range(2), range(3))):
        w01[n // 3, n % 3, i, o] = 1
    hist = stats.hamming_histogram(w01)
    assert hist.tolist() == [0, 6, 0, 0, 0, 0, 0, 0, 0, 0]
    assert stats.k_shares(hist) == (0.0, 1.0)
    assert stats.bops_kernel_skip(w01, 7) == 0  # HW-1 kernels are shifted copies
    assert stats.bops_sparse(w01, 7) == (6 + 9 * 2) * 7
    assert stats.bparams_bits(hist, 3) == 6 * (2 + 4)


def test_all_ones_3x3():
    w01 = np.ones((3, 3, 2, 2), dtype=bool)
    hist = stats.hamming_histogram(w01)
    assert hist.tolist() == [0] * 9 + [4]
    assert stats.k_shares(hist) == (0.0, 0.0)
    assert stats.bops_kernel_skip(w01, 5) == stats.bops_dense(w01, 5) == 2 * 36 * 5
    assert stats.bops_sparse(w01, 5) == (36 + 18) * 5
    assert stats.bparams_bits(hist, 3) == 4 * 11  # worse than the 36 dense bits


def test_1x1_kernels():
    w01 = np.array([[[[1, 0, 0], [1, 1, 0]]]], dtype=np.uint8)  # [1, 1, 2, 3]
    hist = stats.hamming_histogram(w01)
    assert hist.tolist() == [3, 3]
    assert stats.k_shares(hist) == (0.5, 0.5)
    # a 1x1 kernel is one weight: only HW-0 kernels are skipped
    assert stats.bops_kernel_skip(w01, 4) == 2 * 3 * 4
    assert stats.bops_sparse(w01, 4) == (3 + 2) * 4
    assert stats.bparams_bits(hist, 1) == 6 == w01.size


def test_5x5_mixed():
    w01 = np.zeros((5, 5, 1, 4), dtype=np.uint8)
    w01[2, 2, 0, 1] = 1  # HW 1
    w01[:2, :, 0, 2] = 1  # HW 10
    w01[..., 0, 3] = 1  # HW 25
    hist = stats.hamming_histogram(w01)
    expected = [0] * 26
    expected[0] = expected[1] = expected[10] = expected[25] = 1
    assert hist.tolist() == expected
    assert stats.k_shares(hist) == (0.25, 0.25)
    assert stats.bops_kernel_skip(w01, 3) == 2 * 25 * 2 * 3
    assert stats.bops_sparse(w01, 3) == (36 + 25) * 3
    # 4 tags of 2 bits + 5 index bits (ceil(log2 25)) + 2 * 25 raw bits
    assert stats.bparams_bits(hist, 5) == 8 + 5 + 50


def test_dense_kernel_is_1x1_applied_once():
    w01 = np.array([[1, 0], [0, 0], [1, 1]])
    assert stats.kernel_size(w01) == 1
    assert stats.hamming_weights(w01).tolist() == w01.tolist()
    assert stats.bops_dense(w01) == 12
    assert stats.bops_kernel_skip(w01) == 2 * 3
    assert stats.bops_sparse(w01) == 3 + 3


def test_groups_count_all_input_channels_in_q():
    w01 = np.zeros((3, 3, 2, 4), dtype=np.uint8)  # 2 channels per group
    assert stats.bops_sparse(w01, 1, groups=3) == 9 * 6


def test_connection_mask_zero_is_connection():
    assert stats.connection_mask([[-1e-9, 0.0], [0.3, -0.7]]).tolist() == [[0, 1], [1, 0]]


def test_bparams_paper_3x3_numbers():
    # 4 bits of index and 9 raw bits for 3x3 kernels, 2 tag bits each
    assert stats.bparams_bits([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == 2
    assert stats.bparams_bits([0, 1, 0, 0, 0, 0, 0, 0, 0, 0]) == 6
    assert stats.bparams_bits([0, 0, 0, 0, 0, 1, 0, 0, 0, 0]) == 11
    assert stats.bparams_bits([0, 1, 0], (1, 2)) == 2 + 1


# ---------------------------------------------------------------- sweep vs reference

SHAPES = [
    (3, 3, 1, 1),
    (3, 3, 3, 5),
    (3, 3, 8, 7),
    (1, 1, 6, 4),
    (5, 5, 2, 3),
    (1, 3, 4, 2),
    (7, 3, 2),  # Conv1D
    (2, 3, 3, 2, 2),  # Conv3D
]
DENSITIES = [0.0, 0.05, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("density", DENSITIES)
def test_against_reference(shape, density):
    rng = np.random.default_rng(hash((shape, density)) % 2**32)
    w01 = (rng.random(shape) < density).astype(np.uint8)
    hist = stats.hamming_histogram(w01)
    ref = ref_histogram(w01)
    assert hist.tolist() == ref, f"shape {shape} density {density}"
    assert hist.sum() == shape[-2] * shape[-1]
    k0, k1 = stats.k_shares(hist)
    kernels = sum(ref)
    assert k0 == pytest.approx(ref[0] / kernels, abs=0)
    assert k1 == pytest.approx(ref[1] / kernels, abs=0)
    for out_pixels, groups in [(1, 1), (13, 1), (4, 2)]:
        dense, skip, sparse = ref_bops(w01, out_pixels, groups)
        assert stats.bops_dense(w01, out_pixels) == dense
        assert stats.bops_kernel_skip(w01, out_pixels) == skip
        assert stats.bops_sparse(w01, out_pixels, groups=groups) == sparse
        assert skip <= dense
    assert stats.bparams_bits(hist) == ref_bparams(w01)
    assert stats.bparams_bits(hist, shape[:-2]) == ref_bparams(w01)


def test_float_and_bool_inputs_agree():
    rng = np.random.default_rng(0)
    w01 = rng.random((3, 3, 4, 4)) < 0.3
    ref = stats.hamming_histogram(w01.astype(np.uint8)).tolist()
    assert stats.hamming_histogram(w01).tolist() == ref
    assert stats.hamming_histogram(w01.astype(np.float32)).tolist() == ref


# ---------------------------------------------------------------- errors


def test_errors_name_argument_and_value():
    with pytest.raises(ValueError, match=r"`w01`.*0 and 1.*\[-1"):
        stats.hamming_histogram(np.full((3, 3, 1, 1), -1))
    with pytest.raises(ValueError, match=r"`w01`.*conv kernel.*\(4, 2\)"):
        stats.hamming_histogram(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"`w01` is empty"):
        stats.hamming_histogram(np.zeros((3, 3, 0, 2)))
    with pytest.raises(ValueError, match=r"`out_pixels`.*0"):
        stats.bops_dense(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match=r"`groups`.*0"):
        stats.bops_sparse(np.zeros((2, 2)), 1, groups=0)
    with pytest.raises(ValueError, match=r"`hist` counts no kernel"):
        stats.k_shares([0, 0, 0])
    with pytest.raises(ValueError, match=r"`hist`.*non-negative"):
        stats.k_shares([1, -1])
    with pytest.raises(ValueError, match=r"`k` is 3 \(9 weights.*length 5"):
        stats.bparams_bits([1, 0, 0, 0, 0], 3)
    with pytest.raises(ValueError, match=r"`latent` contains NaN"):
        stats.connection_mask([np.nan])
