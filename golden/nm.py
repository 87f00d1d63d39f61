"""Golden models of the N:M sparsity cores (SPEC §4.5), bit-exact to ``hdl/nm.py``:
``nm_prune`` (NMPrune), ``nm_dot`` (NMDot), ``sparse_linear`` (SparseLinear).

``nm_prune`` ranks every group of ``m`` elements by an integer *score key* that is
monotonic in the score (|x|, or |x|·s with an unsigned 8-bit scale s), exactly as the
hardware does, and keeps element i iff fewer than ``n`` elements beat it (j beats i
when key_j > key_i, or key_j == key_i and j < i). It is checked against an
independent oracle in tests/test_golden_nm.py: float64 scores from ml_dtypes and a
stable sort on (-score, index).

Rules (docs/sparsity.md): NaN ranks highest (so does Inf·0 in scaled mode, as in
IEEE); all NaNs tie; +0 and -0 tie; ties go to the lower index. Dropped elements of
the dense output are the +0 code (0 in every format).
"""

import numpy as np

from lpcores.errors import ParamError, check_int
from lpcores.formats import FLOAT_FORMATS, get_format

from .codec import _bitlen, _codes

__all__ = ["nm_prune", "nm_dot", "sparse_linear", "check_indices", "scale_rows", "score_keys", "pack_indices", "unpack_indices", "expand",
           "index_bits", "PRUNE_FORMATS", "SCALE_BITS"]

PRUNE_FORMATS = ("bf16", "fp16", "e4m3", "e5m2", "int8")
_DOT_ELEM = FLOAT_FORMATS + ("int8",)            # as golden.dot's elements
SCALE_BITS = 8


def index_bits(m):
    """Bits of one index into a group of ``m``: ceil(log2 m) (at least 1)."""
    return max(1, (m - 1).bit_length())


def _check_nm(n, m):
    check_int("m", m, lo=2, hi=16)
    check_int("n", n, lo=1)
    if n >= m:
        raise ParamError(f"n must be < m, got n={n}, m={m}")


def _scales(scale, shape):
    s = np.asarray(scale)
    if s.dtype == object:
        s = s.astype(np.int64)
    if s.dtype.kind not in "iu":
        raise ParamError(f"scale must be unsigned 8-bit integer codes, got dtype {s.dtype}")
    s = s.astype(np.int64)
    if s.size and (s.min() < 0 or s.max() > 255):
        bad = int(s.min()) if s.min() < 0 else int(s.max())
        raise ParamError(f"scale must be in 0..255, got {bad}")
    try:
        return np.broadcast_to(s, shape)
    except ValueError:
        raise ParamError(f"scale of shape {s.shape} does not broadcast to x of shape "
                         f"{shape}") from None


def score_keys(x, fmt, scale=None):
    """Integer keys, monotonic in the score (see ``hdl/nm.py: score_key``)."""
    f = get_format(fmt, param="fmt", allowed=PRUNE_FORMATS)
    c = _codes(x, f, "x")
    s = None if scale is None else _scales(scale, c.shape)
    if f.kind == "int":
        mag = np.where(c >= 128, 256 - c, c)
        return mag if s is None else mag * s
    M = f.man_bits
    e = (c >> M) & ((1 << f.exp_bits) - 1)
    man = c & ((1 << M) - 1)
    allones = e == (1 << f.exp_bits) - 1
    if f.specials == "ieee":
        nan, inf = allones & (man != 0), allones & (man == 0)
    else:                                        # e4m3 (fn): no Inf, one NaN
        nan, inf = allones & (man == (1 << M) - 1), np.zeros_like(allones)
    if s is None:
        return np.where(nan, (1 << (f.bits - 1)) - 1, c & ((1 << (f.bits - 1)) - 1))
    W = M + 1 + SCALE_BITS
    EB = (f.emax - f.emin + W + 1).bit_length()
    sig = np.where(e == 0, man, man | (1 << M))
    exp = np.where(e == 0, f.emin, e - f.bias)
    p = sig * s                                   # exact, < 2**W
    bl = _bitlen(p)
    frac = (p << np.maximum(W - bl, 0)) & ((1 << (W - 1)) - 1)
    key = np.where(p == 0, 0, ((exp - f.emin + bl) << (W - 1)) | frac)
    key = np.where(inf, ((1 << EB) - 1) << (W - 1), key)
    return np.where(nan | (inf & (s == 0)), (1 << (EB + W - 1)) - 1, key)


def nm_prune(x, n, m, fmt, scale=None):
    """Keep the ``n`` highest-scoring elements of every group of ``m``.

    Parameters
    ----------
    x : array of int
        Codes of ``fmt``, shape ``(..., L)`` with ``L`` a multiple of ``m``; groups
        are consecutive runs of ``m`` along the last axis.
    n, m : int
        1 <= n < m <= 16.
    fmt : str
        ``bf16``, ``fp16``, ``e4m3``, ``e5m2`` or ``int8``.
    scale : array of int, optional
        Unsigned 8-bit scale codes broadcastable to ``x`` (per channel: shape
        ``(L,)``); score |x|·s.

    Returns
    -------
    values : int64 array ``(..., L // m, n)``
        The kept codes in ascending index order.
    indices : int64 array ``(..., L // m, n)``
        Their indices in the group, ascending.
    masked : int64 array, shape of ``x``
        ``x`` with the dropped elements replaced by 0 (the +0 code).
    """
    _check_nm(n, m)
    f = get_format(fmt, param="fmt", allowed=PRUNE_FORMATS)
    c = _codes(x, f, "x")
    if c.ndim == 0 or c.shape[-1] % m:
        raise ParamError(f"x must have a last axis that is a multiple of m={m}, got "
                         f"shape {c.shape}")
    keys = score_keys(c, f, scale)
    shape = c.shape[:-1] + (c.shape[-1] // m, m)
    kg, xg = keys.reshape(shape), c.reshape(shape)
    ki, kj = kg[..., :, None], kg[..., None, :]
    lower = np.arange(m)[None, :] < np.arange(m)[:, None]          # [i, j]: j < i
    beaten = ((kj > ki) | ((kj == ki) & lower)).sum(axis=-1)
    kept = beaten < n
    idx = np.argsort(~kept, axis=-1, kind="stable")[..., :n]
    values = np.take_along_axis(xg, idx, axis=-1)
    masked = np.where(kept, xg, 0).reshape(c.shape)
    return values, idx.astype(np.int64), masked


def pack_indices(indices, m):
    """Pack the last axis of ``indices`` (slot 0 in the low bits), ``index_bits(m)``
    bits each: for 2:4 the NVIDIA sparse-metadata nibble."""
    ib = index_bits(m)
    idx = np.asarray(indices, dtype=np.int64)
    shifts = ib * np.arange(idx.shape[-1], dtype=np.int64)
    return (idx << shifts).sum(axis=-1)


def unpack_indices(packed, n, m):
    """Inverse of :func:`pack_indices`: shape ``(..., n)``."""
    ib = index_bits(m)
    p = np.asarray(packed, dtype=np.int64)[..., None]
    return (p >> (ib * np.arange(n, dtype=np.int64))) & ((1 << ib) - 1)


def expand(values, indices, m):
    """Scatter compressed groups back to dense ones.

    ``values``, ``indices``: shape ``(..., G, n)``. Returns ``(dense, bad)``:
    ``dense`` of shape ``(..., G * m)`` with 0 (+0) at positions not named, and
    ``bad`` of shape ``(..., G)``: the group's indices are not strictly ascending or
    not below ``m`` (its dense row is then undefined: zeros).
    """
    v = np.asarray(values, dtype=np.int64)
    ix = np.asarray(indices, dtype=np.int64)
    bad = (ix >= m).any(axis=-1) | (np.diff(ix, axis=-1) <= 0).any(axis=-1)
    dense = np.zeros(v.shape[:-1] + (m,), dtype=np.int64)
    safe = np.where(bad[..., None], 0, ix)
    np.put_along_axis(dense, safe, np.where(bad[..., None], 0, v), axis=-1)
    return dense.reshape(v.shape[:-2] + (v.shape[-2] * m,)), bad


def check_indices(indices, m):
    """``bad`` of shape ``indices.shape[:-1]``: the group's indices are not strictly
    ascending or not below ``m`` (what NMDot flags in ``bad_index``)."""
    ix = np.asarray(indices, dtype=np.int64)
    return (ix >= m).any(axis=-1) | (ix < 0).any(axis=-1) | (np.diff(ix, axis=-1) <= 0).any(axis=-1)


def nm_dot(values, indices, dense, n, m, a_fmt, b_fmt, out_fmt=None, accumulate="exact",
           c=None, groups=None, rounding="rne"):
    """Dot products of an N:M-compressed operand with a dense one (SPEC §4.5).

    Parameters
    ----------
    values, indices : arrays of int, shape ``(..., K, n)``
        Per group the kept codes of ``a_fmt`` and their strictly ascending indices
        (``K`` groups per dot product).
    dense : array of int, shape ``(..., K * m)``
        All ``m`` codes of ``b_fmt`` of every group.
    a_fmt, b_fmt, out_fmt, accumulate, c, rounding
        As :func:`lpcores.golden.dot`.
    groups : int
        Groups per beat (needed by ``accumulate="fp"``, which rounds once a beat).

    The result is :func:`golden.dot` on the *masked dense operand*: ``a`` scattered
    to its indices with +0 at the dropped positions (:func:`expand`), times all of
    ``dense`` (``lanes = groups * m`` for ``fp``). So a dropped position is the term
    ``+0 * b_j``: no value, but NaN when ``b_j`` is Inf or NaN, and +0 (not -0) in
    an all-zero sum when ``b_j`` is positive. NMDot multiplies only the kept pairs
    and reproduces these two effects with flags (docs/sparsity.md).

    Raises ParamError if a group's indices are not strictly ascending below ``m``.
    """
    from .dot import dot
    _check_nm(n, m)
    v = _codes(values, get_format(a_fmt, param="a_fmt", allowed=_DOT_ELEM), "values")
    ix = np.asarray(indices, dtype=np.int64)
    d = _codes(dense, get_format(b_fmt, param="b_fmt", allowed=_DOT_ELEM), "dense")
    if v.ndim < 2 or v.shape[-1] != n or ix.shape != v.shape:
        raise ParamError(f"values and indices must have shape (..., K, n={n}), got "
                         f"{v.shape} and {ix.shape}")
    K = v.shape[-2]
    if d.shape != v.shape[:-2] + (K * m,):
        raise ParamError(f"dense must have shape {v.shape[:-2] + (K * m,)} (K*m with "
                         f"K={K}, m={m}), got {d.shape}")
    bad = check_indices(ix, m)
    if bad.any():
        first = tuple(int(t) for t in np.argwhere(bad)[0])
        raise ParamError(f"indices must be strictly ascending and below m={m} in every "
                         f"group, got {ix[first].tolist()} at group {first}")
    masked, _ = expand(v, ix, m)
    lanes = None
    if accumulate == "fp":
        if groups is None:
            raise ParamError("groups is required with accumulate='fp'")
        check_int("groups", groups, lo=1)
        if K % groups:
            raise ParamError(f"the number of groups must be a multiple of groups per "
                             f"beat, got K={K}, groups={groups}")
        lanes = groups * m
    return dot(masked, d, a_fmt, b_fmt, out_fmt, accumulate=accumulate, c=c, lanes=lanes,
               rounding=rounding)


def sparse_linear(x, w, n, m, x_fmt, w_fmt, out_fmt=None, accumulate="exact", scale=None,
                  c=None, groups=None, rounding="rne"):
    """The activation-sparse linear path (SPEC §4.5): prune the activations ``x``
    online (:func:`nm_prune`, score |x| or |x|·scale), then :func:`nm_dot` of the kept
    activations with the dense weights ``w``; reduces the last axis.

    ``x``, ``w``: codes of shape ``(..., K * m)``; ``scale``: unsigned 8-bit codes
    broadcastable to ``x`` (per channel: ``(K * m,)``). Returns the result codes
    (``...``) as :func:`golden.dot`.
    """
    v, ix, _ = nm_prune(x, n, m, x_fmt, scale=scale)
    w = _codes(w, get_format(w_fmt, param="w_fmt", allowed=_DOT_ELEM), "w")
    w = np.broadcast_to(w, np.shape(x))
    return nm_dot(v, ix, w, n, m, x_fmt, w_fmt, out_fmt, accumulate=accumulate, c=c,
                  groups=groups, rounding=rounding)


def scale_rows(scale, channels, groups, m):
    """The load beats that put per-channel scales into NMPrune's table.

    ``scale``: ``channels`` unsigned 8-bit codes, channel ``c`` at position ``c`` of
    an activation row. Returns an int64 array ``(channels // (groups*m), groups*m)``:
    row ``r`` is the ``x{g}_{j}`` payload of the ``r``-th ``load=1`` beat (element
    ``(g, j)`` = lane ``g*m + j``). Raises ParamError on a wrong length.
    """
    lanes = groups * m
    s = np.asarray(scale)
    if s.ndim != 1 or s.shape[0] != channels:
        raise ParamError(f"scale must hold channels={channels} codes, got shape {s.shape}")
    s = _scales(s, s.shape)
    if channels % lanes:
        raise ParamError(f"channels must be a multiple of groups*m = {lanes}, got "
                         f"channels={channels}")
    return np.array(s, dtype=np.int64).reshape(channels // lanes, lanes)
