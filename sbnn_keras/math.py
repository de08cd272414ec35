"""Pure NumPy math of the SBNN method (no TensorFlow, no Keras).

Notation (paper sections 3.2-3.3): latent float weights ``w``, their binarization
``wb = sign(w)`` in {-1, +1} (``sign(0) = +1`` as in larq), the quantized weight
``tau * wb + phi`` in the binary domain {alpha, beta} with ``alpha = phi - tau``
(value of ``wb = -1``) and ``beta = phi + tau`` (value of ``wb = +1``, a
*connection*). ``p`` is the fraction of connections.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "binarize",
    "optimal_scales",
    "binary_entropy",
    "inverse_binary_entropy",
    "reduction_axes",
    "STRUCTURES",
    "group_connection_counts",
    "structured_push",
]

#: Groups of the structured sparsity term (``SparsityRegularizer(structure=...)``).
STRUCTURES = ("none", "kernel", "word")


def binarize(w) -> np.ndarray:
    """Return ``sign(w)`` in {-1, +1} with ``sign(0) = +1`` (larq's convention)."""
    w = np.asarray(w)
    if w.dtype.kind not in "biuf":
        raise ValueError(f"binarize: argument `w` must be numeric, got dtype {w.dtype}.")
    return np.where(w >= 0, 1.0, -1.0).astype(w.dtype if w.dtype.kind == "f" else float)


def reduction_axes(ndim: int, per_channel: bool) -> tuple[int, ...] | None:
    """Axes reduced to get one scale: all (``None``), or all but the last (output channel)."""
    if not per_channel:
        return None
    if ndim < 1:
        raise ValueError(f"per_channel=True needs a tensor with a channel axis, got ndim={ndim}.")
    return tuple(range(ndim - 1))


def optimal_scales(w, wb=None, per_channel: bool = False):
    """Least-squares scales of paper eq. 15: ``argmin ||w - (tau*wb + phi)||_2``.

    For the two-valued code ``wb`` the minimiser maps each group of weights to its
    mean: ``beta = mean(w[wb == +1])`` and ``alpha = mean(w[wb == -1])``, so
    ``tau = (beta - alpha) / 2`` and ``phi = (beta + alpha) / 2``. This equals the
    closed form of eq. 15 (with ``||w||_1`` replaced by ``dot(w, wb)`` when ``wb`` is
    not ``sign(w)``) and is numerically stabler than it when ``p`` is near 0 or 1.

    Degenerate case: when all codes agree (``p`` is 0 or 1) the problem has a line
    of solutions, all giving the single value ``mean(w)``. We return the
    minimum-norm one, as ``numpy.linalg.lstsq`` does: with ``c`` the common code,
    ``tau = c * mean(w) / 2`` and ``phi = mean(w) / 2``. Scales are always finite
    for finite input.

    Args:
        w: latent float weights, any shape.
        wb: the binary code in {-1, +1}, same shape as ``w``; defaults to ``sign(w)``.
        per_channel: one (tau, phi) pair per index of the last axis (the output
            channel of a Keras kernel) instead of one for the whole tensor.

    Returns:
        ``(tau, phi)``: NumPy float64 scalars, or arrays of shape ``[w.shape[-1]]``
        when ``per_channel``.

    Raises:
        ValueError: if ``w`` is empty, contains NaN/Inf, or ``wb`` has another
            shape or values other than -1 and +1.

    Example:
        >>> tau, phi = optimal_scales([0.1, 0.3, -0.2, -0.4])
        >>> round(float(tau), 3), round(float(phi), 3)
        (0.25, -0.05)
    """
    w = np.asarray(w, dtype=np.float64)
    if w.size == 0:
        raise ValueError(f"optimal_scales: argument `w` is empty (shape {w.shape}).")
    if not np.all(np.isfinite(w)):
        raise ValueError("optimal_scales: argument `w` contains NaN or Inf values.")
    if wb is None:
        wb = binarize(w)
    else:
        wb = np.asarray(wb, dtype=np.float64)
        if wb.shape != w.shape:
            raise ValueError(
                f"optimal_scales: `wb` has shape {wb.shape}, expected the shape of `w` {w.shape}."
            )
        if not np.all(np.abs(wb) == 1):
            raise ValueError("optimal_scales: `wb` must contain only -1 and +1.")
    axes = reduction_axes(w.ndim, per_channel)
    pos = wb > 0
    n_pos = np.sum(pos, axis=axes)
    n_neg = np.sum(~pos, axis=axes)
    sum_pos = np.sum(np.where(pos, w, 0.0), axis=axes)
    sum_neg = np.sum(np.where(pos, 0.0, w), axis=axes)
    n = n_pos + n_neg
    mean = (sum_pos + sum_neg) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = sum_pos / n_pos
        alpha = sum_neg / n_neg
    tau = (beta - alpha) / 2
    phi = (beta + alpha) / 2
    all_pos = n_neg == 0
    all_neg = n_pos == 0
    tau = np.where(all_pos, mean / 2, np.where(all_neg, -mean / 2, tau))
    phi = np.where(all_pos | all_neg, mean / 2, phi)
    return tau[()], phi[()]


def binary_entropy(p):
    """Binary entropy ``h(p)`` in bits (paper eq. 6), with ``h(0) = h(1) = 0``.

    Args:
        p: probability or array of probabilities in [0, 1].

    Returns:
        ``h(p)`` with the shape of ``p`` (a float for scalar input).

    Raises:
        ValueError: if any ``p`` is outside [0, 1] or NaN.

    Example:
        >>> float(binary_entropy(0.5))
        1.0
    """
    given = p
    p = np.asarray(p, dtype=np.float64)
    if np.any(~((p >= 0) & (p <= 1))):
        raise ValueError(f"binary_entropy: argument `p` must be in [0, 1], got {given!r}.")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p)) - (1 - p) * np.log2(1 - p)
    h = np.where((p == 0) | (p == 1), 0.0, h)
    return h[()]


def inverse_binary_entropy(h, tol: float = 1e-12):
    """Inverse of ``binary_entropy`` on [0, 1/2] (paper eq. 8: ``EC = h^-1(h*)``).

    Args:
        h: entropy in bits/weight, scalar or array, in [0, 1].
        tol: absolute tolerance on ``p`` of the bisection.

    Returns:
        ``p`` in [0, 1/2] with ``binary_entropy(p) == h``.

    Raises:
        ValueError: if any ``h`` is outside [0, 1] or NaN.

    Example:
        >>> round(float(inverse_binary_entropy(binary_entropy(0.05))), 6)
        0.05
    """
    given = h
    h = np.asarray(h, dtype=np.float64)
    if np.any(~((h >= 0) & (h <= 1))):
        raise ValueError(
            f"inverse_binary_entropy: argument `h` (bits/weight) must be in [0, 1], got {given!r}."
        )
    lo = np.zeros_like(h)
    hi = np.full_like(h, 0.5)
    # h is increasing on [0, 1/2]; 60 halvings reach below 1e-18.
    for _ in range(60):
        mid = (lo + hi) / 2
        below = binary_entropy(mid) < h
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
        if np.all(hi - lo < tol):
            break
    p = (lo + hi) / 2
    p = np.where(h == 0, 0.0, np.where(h == 1, 0.5, p))
    return p[()]


def _check_structure(structure, word_size, function):
    if structure not in STRUCTURES:
        raise ValueError(f"{function}: argument `structure` must be one of {STRUCTURES}, got {structure!r}.")
    if isinstance(word_size, bool) or not isinstance(word_size, (int, np.integer)) or word_size < 1:
        raise ValueError(f"{function}: argument `word_size` must be a positive integer, got {word_size!r}.")


def group_connection_counts(w01, structure: str, word_size: int = 32) -> np.ndarray:
    """Connections per group ``n_g`` of one kernel ``[..., cin, cout]`` (Keras layout).

    Groups (``structure``):

    * ``"kernel"``: one group per (input channel, output channel) pair, holding its
      ``K = kh*kw`` taps (the paper's kernels; Hamming weight 0 is K0). Returns
      ``[cin, cout]``.
    * ``"word"``: one group per (tap, output channel, block of ``word_size``
      consecutive input channels), i.e. one bitpacked filter word of the LCE layout
      (the last block of a channel count that is not a multiple is shorter). Returns
      ``[..., ceil(cin / word_size), cout]``.
    * ``"none"``: every weight is its own group (returns ``w01``).

    Args:
        w01: connection array (1 = connection, ``w >= 0``), at least 2-D.
        structure: one of :data:`STRUCTURES`.
        word_size: input channels per word (``"word"`` only).
    """
    _check_structure(structure, word_size, "group_connection_counts")
    w01 = np.asarray(w01, dtype=np.float64)
    if w01.ndim < 2:
        raise ValueError(
            f"group_connection_counts: argument `w01` must be a kernel [..., cin, cout], got shape {w01.shape}."
        )
    if structure == "none":
        return w01
    if structure == "kernel":
        return w01.reshape(-1, *w01.shape[-2:]).sum(axis=0)
    cin = w01.shape[-2]
    blocks = -(-cin // word_size)
    pad = [(0, 0)] * w01.ndim
    pad[-2] = (0, blocks * word_size - cin)
    padded = np.pad(w01, pad)
    return padded.reshape(*w01.shape[:-2], blocks, word_size, w01.shape[-1]).sum(axis=-2)


def structured_push(w01, structure: str, word_size: int = 32, epsilon: float = 1.0) -> np.ndarray:
    """Per-weight factor of the structured sparsity gradient (same shape as ``w01``).

    The unstructured term of the paper pushes every latent weight down by the same
    amount: ``dU/dw = 1/2`` (inside the STE window), with ``U`` the number of
    connections. The structured term keeps ``U`` as the *value* (so EC and the
    lambda identity are unchanged) and replaces its gradient by

        dU_s/dw_i = 1/2 * s * c_g(i),   c_g = 1 / (n_g + epsilon),   s = U / sum_g n_g c_g

    where ``n_g`` is the number of connections of the group of weight ``i``. ``c_g`` is
    the gradient of the log-sum group penalty ``sum_g log(n_g + epsilon)`` (reweighted
    L1 on group counts): a concave function of the group occupancy, so groups with
    few connections are pushed hardest and empty out completely, and groups that are
    empty are held there. ``s`` rescales so that the push summed over the connections
    equals the unstructured one (``sum_{i in S1} s c_g(i) = U``): the same total
    force, moved from connections in busy groups to connections in almost-empty ones.

    Layers whose groups are single weights (``"kernel"`` on a dense layer or a 1x1
    convolution) and ``structure="none"`` get the unstructured factor 1 everywhere,
    as does a kernel without any connection.

    Returns:
        ``s * c_g(i)`` for every weight, float64, the shape of ``w01``. Multiply by
        ``1/2`` (the STE count gradient) and the STE window to get ``dU_s/dw``.

    Example:
        >>> w01 = np.zeros((3, 3, 1, 2)); w01[0, 0, 0, 0] = 1; w01[:, :2, 0, 1] = 1
        >>> f = structured_push(w01, "kernel")
        >>> round(float(f[0, 0, 0, 0]), 4), round(float(f[0, 0, 0, 1]), 4)  # 1 vs 6 connections
        (2.5789, 0.7368)
    """
    _check_structure(structure, word_size, "structured_push")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.floating)) or not (
        np.isfinite(epsilon) and epsilon > 0
    ):
        raise ValueError(f"structured_push: argument `epsilon` must be a positive number, got {epsilon!r}.")
    w01 = np.asarray(w01, dtype=np.float64)
    counts = group_connection_counts(w01, structure, word_size)
    group = w01.shape[:-2] if structure == "kernel" else ()
    if structure == "none" or (structure == "kernel" and int(np.prod(group, dtype=np.int64)) == 1):
        return np.ones_like(w01)
    u = w01.sum()
    c = 1.0 / (counts + epsilon)
    weighted = float((counts * c).sum())
    scale = u / weighted if u > 0 else 1.0
    if structure == "kernel":
        factor = np.broadcast_to(c, w01.shape)
    else:
        cin = w01.shape[-2]
        factor = np.repeat(c, word_size, axis=-2)[..., :cin, :]
    return scale * factor
