"""Golden IterNorm and FisrNorm (SPEC §4.4), bit-exact to ``hdl/iternorm.py``.

The arithmetic (docs/iternorm.md has the derivations):

* Every internal value lives in **FX**: fp32's 24-bit significand with a 10-bit
  exponent (bias 511, normal range 2**-510 .. 2**512). Every internal operation is
  one fused ``RNE(a*b + c)`` at FX precision; a plain product is ``a*b + (-0)``, a
  plain sum ``a*1 + c``. The squares of fp32/bf16 inputs (down to 2**-298) and their
  sum over up to 2**16 elements (up to 2**271) never leave FX's range, so ``s`` can
  neither overflow nor underflow: this *is* the "scale first" of the issue, done by
  the exponent width instead of a pre-pass.
* Sums: element ``j`` goes to lane ``j % lanes``; each lane accumulates
  ``acc <- RNE(y*y + acc)`` beat by beat (the first beat adds to +0); the lanes are
  then added by a fixed pairwise tree, ``t[k] <- RNE(t[2k] + t[2k+1])``, level by
  level (lanes is a power of two). The fmax build's ``reduce="window"`` (l2,
  rmsnorm) instead floors every partial sum to a fixed-point window below a top
  the largest element sets, adds them exactly and rounds once (:func:`window_sum`);
  ``reduce="squares"`` does the same with the squares themselves (no lane sums:
  every ``y*y`` floored to the window, :func:`squares_sum`; the hardware reads the
  vector a second time for it).
* ``layernorm``: ``mean = RNE(sum_x * RN(1/d))`` (``sum_x`` by the same lane + tree
  order), ``y = RNE(x - mean)`` (an FX value), then ``s`` from those ``y``. The
  hardware reads the buffer twice for this (docs/iternorm.md, "LayerNorm"). A
  constant vector (every element equal; +0 and -0 count as equal) takes
  ``mean = RNE(x0 + 0)`` instead, which is ``x0`` exactly (+0 for a zero vector):
  every ``y`` is 0, ``s == 0``, and the output is zeros (affine: ``beta``).
* Start: IterNorm ``a0 = 2**-ceil(E/2)`` for ``s = m * 2**E, 1 <= m < 2``, or with
  ``start="rom"`` ``a0 = T[r][k] * 2**-q`` (``E = 2q + r``, ``k`` the leading
  ``ROM_B`` fraction bits of ``m``, :func:`rom_table`: the best constant for
  ``1/sqrt(x)`` over the table entry's interval of ``x = m * 2**r``, within
  ``2**-8``). FisrNorm
  the classic 0x5f3759df on the fp32 bits of ``s``, applied to ``s * 4**-q`` (``E =
  2q + r``, ``r`` in {0, 1}) and then scaled by ``2**-q``: identical, bit for bit, to
  the classic trick wherever ``s`` is a normal fp32, and defined on all of FX.
* ``K`` updates, three rounded operations each::

      u = RNE(a*a)          v = RNE(1 - s*u)          a = RNE(a*(lam*v) + a)

  (``lam * v`` is exact: ``lam`` is a power of two, applied to the exponent).
* Scale ``c = a_K`` (``l2``) or ``c = RNE(a_K * RN(sqrt(d)))`` (``rmsnorm``,
  ``layernorm``); output ``RNE_fmt(c * y)``, or with affine parameters
  ``RNE_fmt(RNE(c * y) * gamma + beta)`` (one rounding into ``fmt`` at the end).
* ``s == 0`` (a zero vector, or a constant one in layernorm) gives ``c = 0``, so the
  output is zeros (signed like ``y``; with affine: ``beta``), never NaN. Any NaN or
  ±Inf element makes every output of its vector the canonical NaN.

The FX operations are done in float64 (exact products of 24-bit significands) with
an error-free TwoSum and a midpoint correction, which equals one rounding of the
exact value; tests/test_golden_iternorm.py holds them against ``fractions``.
"""

import math
from fractions import Fraction

import numpy as np

from lpcores.errors import ParamError, check_choice, check_int
from lpcores.formats import Format, get_format

from .codec import decode, encode

__all__ = ["iternorm", "fisrnorm", "FX", "MODES", "STARTS", "fx_fma", "fx_round",
           "a0_iter", "a0_fisr", "a0_rom", "rom_table", "ROM_B", "ROM_W", "sqrt_rn",
           "inv_rn", "check_lam", "reference", "REDUCES", "window_bits", "window_top",
           "squares_sum",
           "fused_update",
           "window_sum", "window_headroom", "exp_key"]

MODES = ("l2", "layernorm", "rmsnorm")
#: how the lanes' (partial) sums of squares become s: the pairwise tree of rounded FX
#: adds, or one window sum rounded once (the fmax build's, l2 and rmsnorm)
REDUCES = ("tree", "window", "squares")
STARTS = ("iter", "fisr", "rom")
#: IterNorm's ``start`` parameter: the exponent-only start or the ROM-refined one
ITER_STARTS = ("exp", "rom")
#: The ROM start's table: indexed by E's parity and the leading ROM_B fraction bits
#: of s (2 * 2**ROM_B entries), each an unsigned ROM_W-bit fraction in (1/2, 1)
ROM_B = 6
ROM_W = 12
IO_FORMATS = ("fp32", "bf16")
MAGIC = 0x5F3759DF

#: The internal format. The hardware rounders accept only registry names, and read
#: nothing but the descriptor's fields, so it carries fp32's name (see hdl/iternorm.py).
FX = Format("fp32", 34, 10, 23, 511, "float", "ieee", "")
FX_P = 24                               # significand bits
FX_EMIN = FX.emin                       # -510
FX_EMAX = FX.emax                       # 511


def _round_to(s, e, p, emin):
    """RN-even of the exact value ``s + e`` (float64 pair, ``s = RN53(s + e)``) to
    ``p`` significand bits with minimum exponent ``emin`` (subnormal spacing below).

    If ``s`` is not a midpoint of the p-bit grid, no p-bit midpoint lies between
    ``s`` and the exact value (midpoints are on the 53-bit grid), so both round
    alike; if it is one, the sign of ``e`` breaks the tie (``e == 0``: even)."""
    s = np.asarray(s, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    fin = np.isfinite(s) & (s != 0)
    ss = np.where(fin, s, 1.0)
    _, ex = np.frexp(ss)                    # |s| = f * 2**ex, f in [0.5, 1)
    msb = np.maximum(ex - 1, emin)
    q = np.ldexp(ss, (p - 1) - msb)         # exact: a scaling by a power of two
    fl = np.floor(q)
    mid = (q - fl) == 0.5
    r = np.rint(q)                          # ties to even
    r = np.where(mid & (e > 0), fl + 1, np.where(mid & (e < 0), fl, r))
    out = np.ldexp(r, msb - (p - 1))
    return np.where(fin, out, s)


def _two_sum(a, b):
    s = a + b
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    err = np.where(np.isfinite(s), err, 0.0)
    return s, err


def fx_round(x):
    """Round float64 values to FX (RNE, 24 bits)."""
    x = np.asarray(x, dtype=np.float64)
    return _round_to(x, np.zeros_like(x), FX_P, FX_EMIN)


def fx_fma(a, b, c):
    """``RNE_FX(a*b + c)`` for FX (or narrower) operands given as float64.

    ``a*b`` is exact (24 x 24 bits); the sum is made exact by TwoSum. An exact zero
    sum is +0 unless both addends are -0 (IEEE; numpy's float64 add does this)."""
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.multiply(a, b)
        s, e = _two_sum(p, np.asarray(c, dtype=np.float64))
    return _round_to(s, e, FX_P, FX_EMIN)


def _round_fmt(s, e, fmt):
    """Exact ``s + e`` rounded once into ``fmt`` -> codes (overflow -> Inf, NaN -> NaN)."""
    f = get_format(fmt)
    v = _round_to(s, e, f.man_bits + 1, f.emin)
    return encode(v, f)                      # v is representable (or beyond max: Inf)


def inv_rn(d):
    """RN24(1/d) as a float64 (exact rational rounding)."""
    return _rn_fraction(Fraction(1, int(d)))


def sqrt_rn(d):
    """RN24(sqrt(d)) as a float64, for an integer 1 <= d < 2**46 (exact: isqrt)."""
    d = int(d)
    e = (d.bit_length() - 1) // 2            # 2**e <= sqrt(d) < 2**(e+1)
    n = d << (2 * (FX_P - 1 - e))            # sqrt(n) = sqrt(d) * 2**(23 - e)
    r = math.isqrt(n)
    # round up iff sqrt(n) > r + 1/2, i.e. n > r*r + r + 1/4 (no ties: n is an integer)
    q = r + int(n >= r * r + r + 1)
    return math.ldexp(q, e - (FX_P - 1))


def _rn_fraction(x):
    """RN24 of a positive Fraction (normal range)."""
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    scaled = x / Fraction(2) ** (e - (FX_P - 1))
    q = int(scaled)
    rem = scaled - q
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and q & 1):
        q += 1
    return math.ldexp(q, e - (FX_P - 1))


def a0_iter(s):
    """IterNorm's start ``2**-ceil(E/2)``, ``s = m * 2**E`` (s > 0, finite FX)."""
    _, ex = np.frexp(np.asarray(s, dtype=np.float64))
    E = ex.astype(np.int64) - 1
    return np.ldexp(1.0, -((E + 1) // 2))


def a0_fisr(s):
    """FisrNorm's start: 0x5f3759df - (bits >> 1) on ``s * 4**-q`` (see module doc)."""
    s = np.asarray(s, dtype=np.float64)
    f, ex = np.frexp(s)
    E = ex.astype(np.int64) - 1
    q = E >> 1                                # floor(E / 2)
    r = E - 2 * q
    man = (np.ldexp(f, 24).astype(np.int64)) & 0x7FFFFF       # s is an FX value
    bits = ((r + 127) << 23) | man
    i = MAGIC - (bits >> 1)
    y = i.astype(np.uint32).view(np.float32).astype(np.float64)
    return np.ldexp(y, -q)


def rom_table():
    """The ROM start's entries ``T[r][k]`` as integers: ``T / 2**ROM_W`` approximates
    ``1/sqrt(x)`` on ``x in [lo, hi)``, ``lo = (1 + k/2**ROM_B) * 2**r``, ``hi = lo +
    2**(r - ROM_B)``. The entry is ``RN(2 / (sqrt(lo) + sqrt(hi)))`` on the
    ``2**-ROM_W`` grid: ``2/(sqrt(lo) + sqrt(hi))`` is the constant whose largest
    relative error over the interval is least (it errs by the same amount at both
    ends, ``(sqrt(hi) - sqrt(lo)) / (sqrt(hi) + sqrt(lo))``, at most ``2**-(ROM_B+2)``);
    the grid adds at most ``2**-ROM_W`` relative. Computed in integers with 80 guard
    bits; a value within 2**-40 of a rounding tie would raise (none is)."""
    G = 80
    tab = []
    for r in (0, 1):
        row = []
        for k in range(1 << ROM_B):
            lo = ((1 << ROM_B) + k) << r            # the interval in units of 2**-ROM_B
            sl = math.isqrt(lo << (2 * G - ROM_B))   # floor(sqrt(lo) * 2**G)
            sh = math.isqrt((lo + (1 << r)) << (2 * G - ROM_B))
            # y * 2**ROM_W = 2**(ROM_W + 1 + G) / (sl + sh + e), 0 <= e < 2: v is
            # within 2**(ROM_W + 2 - G) of it
            num = 1 << (ROM_W + 1 + G)
            v = Fraction(num, sl + sh + 1)
            t = math.floor(v + Fraction(1, 2))
            if abs((v - t) - Fraction(1, 2)) < Fraction(1, 1 << 40) or \
                    abs((v - t) + Fraction(1, 2)) < Fraction(1, 1 << 40):
                raise AssertionError(f"ROM entry ({r}, {k}) is too close to a tie")
            assert (1 << (ROM_W - 1)) < t < (1 << ROM_W)
            row.append(t)
        tab.append(row)
    return tab


_ROM = None


def a0_rom(s):
    """IterNorm's ROM start ``T[r][k] * 2**(-ROM_W - q)`` (s > 0, finite FX)."""
    global _ROM
    if _ROM is None:
        _ROM = np.array(rom_table(), dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    f, ex = np.frexp(s)                        # s = f * 2**ex, f in [1/2, 1)
    E = ex.astype(np.int64) - 1
    q = E >> 1
    r = E - 2 * q
    k = (np.ldexp(f, ROM_B + 1).astype(np.int64)) & ((1 << ROM_B) - 1)
    return np.ldexp(_ROM[r, k], -ROM_W - q)


def check_lam(lam):
    """lam must be a power of two in 2**-8 .. 1; returns log2(lam)."""
    ok = isinstance(lam, (int, float)) and not isinstance(lam, bool) and lam > 0
    k = math.frexp(lam)[1] - 1 if ok else None
    if not ok or lam != 2.0 ** k or not -8 <= k <= 0:
        raise ParamError(f"lam must be a power of two in 2**-8..1 (0.5, 0.25, ...), "
                         f"got lam={lam!r}")
    return k


def _tree(t):
    """Fixed pairwise tree over the last axis: each level adds neighbours (0+1,
    2+3, ...); an odd level's last value goes up unchanged, the next level's last."""
    while t.shape[-1] > 1:
        h = t.shape[-1] // 2
        t = np.concatenate([fx_fma(t[..., 0:2 * h:2], 1.0, t[..., 1:2 * h:2]),
                            t[..., 2 * h:]], axis=-1)
    return t[..., 0]


def window_bits(max_d, partials):
    """``W``, the window sum's width in bits: ``35 + ceil(log2(max_d * partials))``,
    so that its truncation costs at most ``2**-32 * s`` (:func:`window_sum`)."""
    return 35 + (max_d * partials - 1).bit_length()


def exp_key(codes, fmt):
    """The exponent key of each element code: ``floor(log2|x|) + bias + man_bits``
    (1 .. 255 + man_bits for nonzero finite x, exact for subnormals too: their
    mantissa's bit length), 0 for a zero. What the hardware compares to find a
    vector's largest element (NaN and Inf take their field's key: their vector's
    output is NaN whatever s is)."""
    f = get_format(fmt)
    c = np.asarray(codes).astype(np.int64)
    ef = (c >> f.man_bits) & ((1 << f.exp_bits) - 1)
    mf = c & ((1 << f.man_bits) - 1)
    blen = np.zeros_like(mf)
    for b in range(f.man_bits):
        blen = np.where(mf >> b != 0, b + 1, blen)
    return np.where(ef != 0, ef + f.man_bits, blen)


def window_headroom(max_d, lanes):
    """``h = 3 + log2(max_d / lanes)``: the window's top lies ``h`` above twice the
    largest element's exponent (:func:`window_top`), so the largest square, at
    least ``2**(T - h)``, bounds s from below (the hardware's ``WindowSum``
    normalizes only the bits s's leading one can be in)."""
    return 3 + (max_d // lanes).bit_length() - 1


def window_top(key_max, fmt, lanes, max_d):
    """``T``: every lane's partial sum of squares is below ``2**T``. The largest
    element is below ``2**(e + 1)``, ``e = key_max - bias - man_bits``, its square
    below ``2**(2e + 2)``; a partial sum adds at most ``max_d / lanes`` squares, each
    rounding by at most ``2**-24`` relative, ``(1 + 2**-24)**65536 < 2``: below
    ``2**(2e + 3 + log2(max_d / lanes))`` (:func:`window_headroom`)."""
    f = get_format(fmt)
    return 2 * (np.asarray(key_max, dtype=np.int64) - f.bias - f.man_bits) + \
        window_headroom(max_d, lanes)


def window_sum(acc, top, W):
    """``s`` from the lanes' partial sums ``acc`` (n, P*lanes; FX values >= 0, each
    below ``2**top``): every sum truncated to the window's grid ``2**(top - W)``
    (its bits below it dropped), the integers added exactly, the total rounded once
    into FX (RNE). The truncation loses less than ``2**(top - W)`` a sum, so ``s``
    is within ``P*lanes*2**(top - W)`` of one rounding of the exact sum, below
    ``2**-32 * s`` for :func:`window_bits`'s ``W`` (s is at least the largest
    square, ``2**(top - 3 - log2(max_d/lanes))``)."""
    acc = np.asarray(acc, dtype=np.float64)
    top = np.asarray(top, dtype=np.int64)
    # exact: a power-of-two scaling, then the floor of a 24-bit significand
    t = np.floor(np.ldexp(acc, (W - top)[:, None]))
    out = np.zeros(len(acc))
    for v, row in enumerate(t):
        tot = sum(int(x) for x in row)
        # (FX's normal range: the window sum never reaches its subnormals)
        out[v] = _rn_fraction(tot * Fraction(2) ** (int(top[v]) - W)) if tot else 0.0
    return out


def squares_sum(vals, key_max, fmt, max_d):
    """``s`` of ``reduce="squares"``: the squares of ``vals`` (n, d; exact in float64:
    at most 48 significant bits) on the window of one square a value (top
    :func:`window_top` with one square a partial sum: every square is below
    ``2**top`` and the largest at least ``2**(top - 3)``; ``W`` =
    ``window_bits(max_d, 1)``, so the truncation of up to ``max_d`` squares costs
    less than ``2**-32 * s``), through :func:`window_sum`."""
    vals = np.asarray(vals, dtype=np.float64)
    top = window_top(key_max, fmt, max_d, max_d)
    return window_sum(vals * vals, top, window_bits(max_d, 1))


def _lane_sums(vals, lanes, square, partials=1):
    """Per-lane FX accumulation over beats: (n, partials*lanes), context-major (the
    lanes of sum 0, then of sum 1, ...); beat ``j`` goes to sum ``j % partials``."""
    n, d = vals.shape
    beats = vals.reshape(n, d // lanes, lanes)
    acc = np.zeros((n, partials, lanes))
    for j in range(d // lanes):
        v = beats[:, j, :]
        acc[:, j % partials] = fx_fma(v, v if square else 1.0, acc[:, j % partials])
    return acc.reshape(n, partials * lanes)


def _lane_sum(vals, lanes, square, partials=1):
    """Per-lane FX accumulation over beats, then the tree. vals: (n, d) float64.

    With ``partials`` P > 1 each lane keeps P sums, beat ``j`` going to sum
    ``j % P``; the P x lanes sums are then one pairwise tree, context-major (the
    lanes of sum 0, then of sum 1, ...): the first ``log2(lanes)`` levels add the
    lanes of each sum, the rest the P sums (P need not be a power of two: an odd
    level's last value goes up unchanged, :func:`_tree`). P = 1 is the single-sum
    order."""
    return _tree(_lane_sums(vals, lanes, square, partials))


def fused_update(s, a, lam_log2):
    """IterNorm's fused first update: ``RNE_FX(a + lam*a*(1 - s*a*a))``, the exact
    value rounded once (``lam = 2**lam_log2``; ``s > 0`` and ``a`` float64 arrays of
    FX values). Exact rational arithmetic a vector at a time (one scalar each)."""
    lam = Fraction(2) ** lam_log2
    out = [_rn_fraction(Fraction(ai) + lam * Fraction(ai)
                        * (1 - Fraction(si) * Fraction(ai) ** 2))
           for si, ai in zip(np.ravel(s), np.ravel(a))]
    return np.array(out, dtype=np.float64).reshape(np.shape(a))


def _norm(x, fmt, mode, iters, lam, gamma, beta, lanes, start, trace, partials=1,
          reduce="tree", max_d=None, fuse=False):
    f = get_format(fmt, param="fmt", allowed=IO_FORMATS)
    check_choice("mode", mode, MODES)
    check_int("iters", iters, lo=1, hi=64)
    lk = check_lam(lam)
    check_int("lanes", lanes, lo=1)
    if lanes & (lanes - 1):
        raise ParamError(f"lanes must be a power of two, got lanes={lanes}")
    check_int("partials", partials, lo=1, hi=64)
    check_choice("reduce", reduce, REDUCES)
    if reduce != "tree" and mode == "layernorm":
        raise ParamError(f"reduce={reduce!r} applies to modes l2 and rmsnorm "
                         f"(layernorm's sums take the tree), got mode='layernorm'")
    if reduce == "squares" and partials != 1:
        raise ParamError(f"partials applies to reduce='tree' and 'window' (the squares "
                         f"take no lane sums), got partials={partials}")
    codes = np.asarray(x)
    if codes.ndim == 0:
        raise ParamError("x must hold at least one vector of codes, got a scalar")
    d = codes.shape[-1]
    if d < 1 or d % lanes:
        raise ParamError(f"d (the last axis of x) must be a positive multiple of "
                         f"lanes={lanes}, got d={d}")
    if (gamma is None) != (beta is None):
        raise ParamError("gamma and beta must be given together (affine), got only "
                         f"{'gamma' if beta is None else 'beta'}")
    if reduce != "tree":
        check_int("max_d", max_d, lo=1)
        if max_d & (max_d - 1) or max_d < d or max_d % lanes:
            raise ParamError(f"max_d must be a power of two, a multiple of lanes and at "
                             f"least d={d} (reduce={reduce!r}), got max_d={max_d}")
    shape = codes.shape
    xv = decode(codes.reshape(-1, d), f)                 # exact, raises on bad codes
    n = xv.shape[0]
    bad = ~np.isfinite(xv).all(axis=1)
    xv = np.where(np.isfinite(xv), xv, 0.0)
    info = {}
    if mode == "layernorm":
        tot = _lane_sum(xv, lanes, square=False, partials=partials)
        mean = fx_fma(tot, inv_rn(d), -0.0)
        # a constant vector (all elements equal, +0 == -0): the mean is x0 exactly,
        # RNE_FX(x0 + 0) (+0 for a zero vector, like the computed mean), so every
        # y is 0 and s == 0; RN(1/d) is inexact for d not a power of two and the
        # computed mean could miss x0 by an ulp (docs/iternorm.md)
        same = (xv == xv[:, :1]).all(axis=1)
        mean = np.where(same, fx_fma(xv[:, 0], 1.0, 0.0), mean)
        y = fx_fma(xv, 1.0, -mean[:, None])
        info["mean"] = mean
        info["same"] = same
    else:
        y = xv
    if reduce == "squares":
        s = squares_sum(y, exp_key(codes.reshape(-1, d), f).max(axis=1), f, max_d)
    elif reduce == "window":
        top = window_top(exp_key(codes.reshape(-1, d), f).max(axis=1), f, lanes, max_d)
        s = window_sum(_lane_sums(y, lanes, True, partials), top,
                       window_bits(max_d, partials))
    else:
        s = _lane_sum(y, lanes, square=True, partials=partials)
    zero = s == 0
    s1 = np.where(zero, 1.0, s)
    a = {"iter": a0_iter, "fisr": a0_fisr, "rom": a0_rom}[start](s1)
    hist = [a]
    lamv = 2.0 ** lk
    for k in range(iters):
        if k == 0 and fuse:
            # a0 (the ROM start) is within 2**-8 of 1/sqrt(s): the hardware's
            # fixed-point unit (hdl/newton.py) relies on it
            a = fused_update(s1, a, lk)
            hist.append(a)
            continue
        u = fx_fma(a, a, -0.0)
        v = fx_fma(-s1, u, 1.0)
        a = fx_fma(a, v * lamv, a)
        hist.append(a)
    c = a if mode == "l2" else fx_fma(a, sqrt_rn(d), -0.0)
    c = np.where(zero, 0.0, c)
    with np.errstate(invalid="ignore", over="ignore"):
        prod = c[:, None] * y                            # exact: 24 x 24 bits
    if gamma is None:
        out = encode(prod, f).astype(np.int64)
    else:
        g = decode(np.broadcast_to(np.asarray(gamma), shape).reshape(-1, d), f)
        b = decode(np.broadcast_to(np.asarray(beta), shape).reshape(-1, d), f)
        z = fx_round(prod)
        with np.errstate(invalid="ignore", over="ignore"):
            ps, pe = _two_sum(z * g, b)                  # z*g exact: 24 x 24 bits
        pe = np.where(np.isfinite(ps), pe, 0.0)
        out = _round_fmt(ps, pe, f).astype(np.int64)
    out = np.where(bad[:, None], f.nan_code, out)
    out = out.astype(np.uint32 if f.bits > 16 else np.uint16).reshape(shape)
    if not trace:
        return out
    hist = [np.where(zero, 0.0, h) for h in hist]      # s == 0: no start, a = c = 0
    info.update(s=s, a=hist, c=c, bad=bad, zero=zero)
    return out, info


def iternorm(x, fmt, mode="l2", iters=5, lam=0.5, gamma=None, beta=None, lanes=16,
             *, partials=1, start="exp", reduce="tree", max_d=None, fuse=False,
             trace=False):
    """IterNorm of vectors ``x`` (codes of ``fmt``, ``fp32`` or ``bf16``; the last axis
    is the vector, its length ``d`` a multiple of ``lanes``) -> codes of ``fmt``.

    ``mode``: ``l2`` (``a_K * x``), ``rmsnorm`` (``sqrt(d) * a_K * x``) or
    ``layernorm`` (``sqrt(d) * a_K * (x - mean)``); ``gamma``/``beta``: codes of
    ``fmt`` broadcastable to ``x`` (affine). ``trace=True`` also returns a dict with
    ``s``, ``a`` (the list a_0..a_K), ``c`` (the final scale), ``mean`` and
    ``same`` (constant vectors; layernorm only), ``bad`` (NaN/Inf vectors) and
    ``zero`` (s == 0). ``partials``: the sums of squares (and of x) kept per lane
    (:func:`_lane_sum`; the hardware's ``fmax`` build, docs/iternorm.md).
    ``reduce``: ``tree`` (the pairwise tree of rounded adds), ``window`` (the fmax
    build's in l2 and rmsnorm: :func:`window_sum`, one rounding; needs ``max_d``,
    the hardware's, which sets the window's top, :func:`window_top`) or
    ``squares`` (l2 and rmsnorm: the squares themselves on the window,
    :func:`squares_sum`; ``partials`` 1).
    ``start``: ``exp`` (``2**-ceil(E/2)``, SPEC §4.4) or ``rom`` (:func:`a0_rom`).
    ``fuse``: the first update exact and rounded once (:func:`fused_update`; the
    fmax build's ``fuse``), for ``start="rom"`` only.
    """
    check_choice("start", start, ITER_STARTS)
    if not isinstance(fuse, bool):
        raise ParamError(f"fuse must be True or False, not {fuse!r}")
    if fuse and start != "rom":
        raise ParamError(f"fuse applies to start='rom' (the fused update relies on its "
                         f"2**-8 bound), got start={start!r}")
    return _norm(x, fmt, mode, iters, lam, gamma, beta, lanes,
                 "iter" if start == "exp" else "rom", trace, partials, reduce, max_d,
                 fuse)


def fisrnorm(x, fmt, mode="l2", iters=5, lam=0.5, gamma=None, beta=None, lanes=16,
             *, partials=1, reduce="tree", max_d=None, trace=False):
    """FisrNorm: :func:`iternorm` started from the fast inverse square root."""
    return _norm(x, fmt, mode, iters, lam, gamma, beta, lanes, "fisr", trace,
                 partials, reduce, max_d)


def reference(x, fmt, mode="l2", gamma=None, beta=None):
    """float64 reference of the normalized vectors (and s), from exact inputs."""
    f = get_format(fmt, param="fmt", allowed=IO_FORMATS)
    xv = decode(np.asarray(x), f)
    d = xv.shape[-1]
    y = xv - xv.mean(axis=-1, keepdims=True) if mode == "layernorm" else xv
    s = np.sum(y * y, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = y / np.sqrt(s)[..., None]
        if mode != "l2":
            r = r * math.sqrt(d)
    r = np.where((s == 0)[..., None], 0.0, r)
    if gamma is not None:
        r = r * decode(np.asarray(gamma), f) + decode(np.asarray(beta), f)
    return r, s
