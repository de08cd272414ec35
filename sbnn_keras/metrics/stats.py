"""Kernel statistics of SBNN layers: Hamming weights, K0/K1, BOPs, BParams (pure NumPy).

Every function takes the *connection array* ``w01`` of one kernel in Keras layout:

* convolution: ``[kh, kw, cin_per_group, cout]`` (any number of leading spatial
  axes works: ``[k, cin, cout]`` for Conv1D, ``[kd, kh, kw, cin, cout]`` for Conv3D);
* dense: ``[cin, cout]`` (treated as a 1x1 convolution applied once).

``w01[..., i, o] == 1`` where the latent weight is ``>= 0`` (``sign(w) = +1``, value
beta): these are the *connections* (paper set S1); ``p = U / N`` with ``U`` the
number of connections and ``N`` the number of weights. A *kernel* is the
``kh x kw`` slice of one (input channel, output channel) pair, a ``kh*kw``-bit code;
its Hamming weight is its number of connections.

The definitions and their sources are collected in ``docs/metrics.md``.
"""

from __future__ import annotations

import math as _pymath

import numpy as np

__all__ = [
    "connection_mask",
    "kernel_size",
    "hamming_weights",
    "hamming_histogram",
    "k_shares",
    "bops_dense",
    "bops_kernel_skip",
    "bops_sparse",
    "bparams_bits",
]


def connection_mask(latent) -> np.ndarray:
    """``w01 = 1[w >= 0]`` (uint8): the connections of latent weights ``w``.

    ``sign(0) = +1``, as in larq and :func:`sbnn_keras.math.binarize`, so a latent
    weight of exactly 0 is a connection.

    Raises:
        ValueError: if ``latent`` contains NaN.

    Example:
        >>> connection_mask([-0.5, 0.0, 0.25]).tolist()
        [0, 1, 1]
    """
    latent = np.asarray(latent)
    if latent.dtype.kind == "f" and np.any(np.isnan(latent)):
        raise ValueError("connection_mask: argument `latent` contains NaN values.")
    return (latent >= 0).astype(np.uint8)


def _as_w01(w01, function: str, min_ndim: int = 2) -> np.ndarray:
    """Validate a connection array and return it as int64."""
    arr = np.asarray(w01)
    if arr.ndim < min_ndim:
        kind = (
            "a conv kernel [..., cin, cout] with spatial axes"
            if min_ndim > 2
            else "a kernel [..., cin, cout]"
        )
        raise ValueError(
            f"{function}: argument `w01` must be {kind}, got an array of shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"{function}: argument `w01` is empty (shape {arr.shape}).")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{function}: argument `w01` must be numeric, got dtype {arr.dtype}.")
    bad = (arr != 0) & (arr != 1)
    if np.any(bad):
        values = np.unique(arr[bad])[:5].tolist()
        raise ValueError(
            f"{function}: argument `w01` must contain only 0 and 1 (1 = connection), "
            f"got other values such as {values}. Use connection_mask(latent) to convert "
            "latent weights."
        )
    return arr.astype(np.int64)


def _check_positions(out_pixels, function: str) -> int:
    if isinstance(out_pixels, bool) or not isinstance(out_pixels, (int, np.integer)):
        raise ValueError(
            f"{function}: argument `out_pixels` must be a positive integer, got {out_pixels!r}."
        )
    if out_pixels < 1:
        raise ValueError(
            f"{function}: argument `out_pixels` must be a positive integer, got {out_pixels!r}."
        )
    return int(out_pixels)


def kernel_size(w01) -> int:
    """``K = kh * kw``: weights per kernel (product of the spatial axes; 1 for dense)."""
    shape = np.shape(w01)
    if len(shape) < 2:
        raise ValueError(
            f"kernel_size: argument `w01` must be a kernel [..., cin, cout], got shape {shape}."
        )
    return int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1


def hamming_weights(w01) -> np.ndarray:
    """Hamming weight of every kernel, shape ``[cin_per_group, cout]``.

    For a dense kernel ``[cin, cout]`` every kernel is a single weight, so this is
    ``w01`` itself.
    """
    arr = _as_w01(w01, "hamming_weights")
    k = kernel_size(arr)
    return arr.reshape(k, *arr.shape[-2:]).sum(axis=0)


def hamming_histogram(w01) -> np.ndarray:
    """Number of kernels with Hamming weight ``0, 1, ..., kh*kw``.

    Each (input channel, output channel) pair of a convolution kernel
    ``[kh, kw, cin_per_group, cout]`` is a ``kh*kw``-bit code; its Hamming weight is
    its number of connections. This is the distribution of paper Fig. 2.

    Args:
        w01: connection array of a convolution kernel (at least one spatial axis).

    Returns:
        int64 array of length ``kh*kw + 1`` summing to ``cin_per_group * cout``.

    Raises:
        ValueError: if ``w01`` has no spatial axis (a dense kernel), is empty or
            holds values other than 0 and 1.

    Example:
        >>> w01 = np.zeros((3, 3, 1, 2), dtype=int); w01[1, 1, 0, 1] = 1
        >>> hamming_histogram(w01).tolist()
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    """
    arr = _as_w01(w01, "hamming_histogram", min_ndim=3)
    k = kernel_size(arr)
    weights = arr.reshape(k, -1).sum(axis=0)
    return np.bincount(weights, minlength=k + 1).astype(np.int64)


def _as_hist(hist, function: str) -> np.ndarray:
    arr = np.asarray(hist)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(
            f"{function}: argument `hist` must be a 1-D histogram of length kh*kw + 1 >= 2, "
            f"got shape {arr.shape}."
        )
    if arr.dtype.kind not in "iuf" or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise ValueError(
            f"{function}: argument `hist` must hold non-negative integer counts, "
            f"got {arr.tolist()}."
        )
    return arr.astype(np.int64)


def k_shares(hist) -> tuple[float, float]:
    """``(K0, K1)``: shares of kernels with Hamming weight 0 and 1 (paper Tables 2-3).

    Raises:
        ValueError: if ``hist`` is not a histogram or counts no kernel.

    Example:
        >>> k_shares([6, 3, 1])
        (0.6, 0.3)
    """
    arr = _as_hist(hist, "k_shares")
    total = int(arr.sum())
    if total == 0:
        raise ValueError("k_shares: argument `hist` counts no kernel (all zeros).")
    return float(arr[0] / total), float(arr[1] / total)


def bops_dense(w01, out_pixels: int = 1) -> int:
    """Binary operations of the dense BNN layer per sample: ``2 * N * out_pixels``.

    A BNN output needs one XNOR and one popcount per weight (paper sec. 3.5,
    ``O_BNN = 2N``), repeated at every output position.
    """
    arr = _as_w01(w01, "bops_dense")
    out_pixels = _check_positions(out_pixels, "bops_dense")
    return 2 * int(arr.size) * out_pixels


def bops_kernel_skip(w01, out_pixels: int = 1) -> int:
    """Binary operations per sample when whole kernels are skipped (paper Table 2, "BOPs PR").

    ``2 * K * (#kernels with Hamming weight >= 2) * out_pixels`` with ``K = kh*kw``:
    a kernel with Hamming weight 0 is skipped, one with Hamming weight 1 is a
    shifted copy of one input plane (no binary operation); every other kernel
    costs its dense ``2K`` operations.

    For ``K = 1`` (dense layers, 1x1 convolutions) a kernel *is* one weight and a
    Hamming-weight-1 kernel is the whole kernel, so only the Hamming-weight-0
    kernels are skipped: ``2 * U * out_pixels`` (otherwise every 1x1 layer would
    count as free).
    """
    arr = _as_w01(w01, "bops_kernel_skip")
    out_pixels = _check_positions(out_pixels, "bops_kernel_skip")
    k = kernel_size(arr)
    hw = hamming_weights(arr)
    kept = int(np.sum(hw >= 2)) if k > 1 else int(np.sum(hw >= 1))
    return 2 * k * kept * out_pixels


def bops_sparse(w01, out_pixels: int = 1, groups: int = 1) -> int:
    """Binary operations per sample with sparse {0,1} operations (paper sec. 3.5).

    ``(U + K * cin) * out_pixels``: one popcount term per connection (no XNOR), plus
    the input-only term ``q = conv(x, 1)`` (``K * cin`` input bits, with
    ``cin = cin_per_group * groups``) computed once per output position and shared
    by all output channels.

    Args:
        w01: connection array, ``[..., cin_per_group, cout]``.
        out_pixels: output positions per sample (1 for dense layers).
        groups: convolution groups (``cin = cin_per_group * groups``).
    """
    arr = _as_w01(w01, "bops_sparse")
    out_pixels = _check_positions(out_pixels, "bops_sparse")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(
            f"bops_sparse: argument `groups` must be a positive integer, got {groups!r}."
        )
    k = kernel_size(arr)
    cin = int(arr.shape[-2]) * int(groups)
    return (int(arr.sum()) + k * cin) * out_pixels


def bparams_bits(hist, k=None) -> int:
    """Bits to store the kernels with the paper's BParams scheme (Table 3, "BParams PR").

    Per kernel a tag says Hamming weight 0 / Hamming weight 1 / other (2 bits);
    a Hamming-weight-1 kernel adds the index of its connection
    (``ceil(log2(K))`` bits, 4 for 3x3), any other kernel adds its ``K`` raw bits
    (9 for 3x3). ``K = kh*kw = len(hist) - 1``. Compare with the dense ``N`` bits.

    For ``K = 1`` only two classes exist (weight 0 or 1), so the tag takes 1 bit and
    the index 0 bits: exactly ``N`` bits, no gain and no loss.

    Args:
        hist: Hamming-weight histogram of the kernels (:func:`hamming_histogram`).
        k: optional kernel side (``3`` for 3x3) or ``(kh, kw)``; checked against
            ``len(hist) - 1``.

    Returns:
        The number of bits (int).

    Raises:
        ValueError: for a malformed histogram or a ``k`` that does not match it.

    Example:
        >>> bparams_bits([10, 5, 0, 1, 0, 0, 0, 0, 0, 0], 3)  # 16 kernels: 32 + 5*4 + 1*9
        61
    """
    arr = _as_hist(hist, "bparams_bits")
    size = arr.size - 1
    if k is not None:
        if isinstance(k, (tuple, list)):
            expected = int(np.prod(k)) if len(k) else 0
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            expected = int(k) * int(k)
        else:
            raise ValueError(f"bparams_bits: argument `k` must be an int or (kh, kw), got {k!r}.")
        if expected != size:
            raise ValueError(
                f"bparams_bits: argument `k` is {k!r} ({expected} weights per kernel) but "
                f"`hist` has length {arr.size}, i.e. {size} weights per kernel."
            )
    n0, n1, rest = int(arr[0]), int(arr[1]), int(arr[2:].sum())
    if size == 1:
        return n0 + n1
    index_bits = _pymath.ceil(_pymath.log2(size))
    return 2 * (n0 + n1 + rest) + index_bits * n1 + size * rest
