"""Vectorized golden codecs: decode codes to float64, encode values to codes.

``encode_exact`` is the one rounding routine of every golden model: it rounds an exact
value ``(-1)**sign * mag * 2**exp`` (``mag`` a non-negative integer, int64 or Python
int in an object array) once into a format. ``encode`` decomposes float64 inputs
exactly (``frexp``) and calls it, so there is never a double rounding.

Semantics (SPEC §2 and docs/numerics.md):

* subnormals in and out; signed zeros kept (int8: -0 -> 0);
* overflow after rounding: IEEE formats -> ±Inf under RNE, ±max under RTZ; e4m3 ->
  NaN 0x7F under RNE, ±max under RTZ; formats without specials -> ±max;
  ``saturate=True`` -> ±max everywhere;
* Inf in: IEEE -> ±Inf; e4m3 -> 0x7F; no-specials -> ±max; ``saturate`` -> ±max;
* NaN in: the canonical positive quiet NaN; formats without NaN give the sign-only
  code (0x20 / 0x08) as ml_dtypes does; int8 gives 0;
* int8: round to an integer, saturate to -128..127;
* e8m0: positive values round to a power of two (RNE on a 0-bit mantissa, i.e. ties
  go up, as ml_dtypes); anything that rounds below 2**-127 (there is no zero),
  overflows, is zero, negative, NaN or Inf gives 0xFF.
"""

import numpy as np

from lpcores.errors import ParamError, check_choice
from lpcores.formats import get_format

__all__ = ["decode", "encode", "encode_exact", "convert", "fields", "ROUNDINGS"]

ROUNDINGS = ("rne", "rtz")


def _dtype(f):
    return np.uint8 if f.bits <= 8 else (np.uint16 if f.bits <= 16 else np.uint32)


def _codes(codes, f, param="codes"):
    c = np.asarray(codes)
    if c.dtype == object:
        c = c.astype(np.int64)
    if c.dtype.kind not in "iu":
        raise ParamError(f"{param} must be integer bit patterns, got dtype {c.dtype}")
    c = c.astype(np.int64)
    if c.size:
        lo, hi = int(c.min()), int(c.max())
        top = (1 << f.bits) - 1
        if lo < 0 or hi > top:
            bad = lo if lo < 0 else hi
            hint = (f" (codes are two's complement bit patterns: -1 is {top})"
                    if f.kind == "int" else "")
            raise ParamError(f"{param} must be in 0..{top} for {f.name}, got {bad}{hint}")
    return c


def fields(codes, fmt):
    """Split codes into (sign, exponent field, mantissa field) int64 arrays."""
    f = get_format(fmt)
    c = _codes(codes, f)
    if f.kind == "int":
        raise ParamError(f"fmt must be a float format for fields(), got fmt={f.name!r}")
    sign = (c >> (f.bits - 1)) & 1 if f.signed else np.zeros_like(c)
    return sign, (c >> f.man_bits) & ((1 << f.exp_bits) - 1), c & ((1 << f.man_bits) - 1)


def decode(codes, fmt):
    """Codes of ``fmt`` (unsigned bit patterns) -> exact float64 values."""
    f = get_format(fmt)
    c = _codes(codes, f)
    if f.kind == "int":
        return np.where(c >= 128, c - 256, c).astype(np.float64)
    if f.kind == "scale":
        out = np.ldexp(1.0, (c - f.bias).astype(np.int64))
        return np.where(c == 0xFF, np.nan, out)
    s, e, m = fields(c, f)
    sub = e == 0
    sig = np.where(sub, m, m + (1 << f.man_bits)).astype(np.float64)
    ex = np.where(sub, f.emin, e - f.bias) - f.man_bits
    val = np.ldexp(sig, ex.astype(np.int64))
    allones = e == (1 << f.exp_bits) - 1
    if f.specials == "ieee":
        val = np.where(allones & (m == 0), np.inf, val)
        val = np.where(allones & (m != 0), np.nan, val)
    elif f.specials == "fn":
        val = np.where(allones & (m == (1 << f.man_bits) - 1), np.nan, val)
    return np.where(s == 1, -val, val)


def _bitlen(mag):
    """Bit length of non-negative integers (int64 below 2**62, or object arrays)."""
    if mag.dtype == object:
        return np.vectorize(lambda x: int(x).bit_length(), otypes=[np.int64])(mag)
    e = np.frexp(mag.astype(np.float64))[1].astype(np.int64)   # bitlen, or +1 if the
    e = np.where(mag > 0, e, 0)                                 # float rounded up
    up = (e > 0) & (np.left_shift(np.int64(1), np.clip(e - 1, 0, 62)) > mag)
    return e - up


def _shift_round(mag, sh, rounding):
    """round(mag * 2**-sh) element-wise, RNE or RTZ, exact (sh may be negative)."""
    if mag.dtype == object:
        def one(x, s):
            x, s = int(x), int(s)
            if s <= 0:
                return x << -s
            q, r = x >> s, x & ((1 << s) - 1)
            half = 1 << (s - 1)
            if rounding == "rne" and (r > half or (r == half and q & 1)):
                q += 1
            return q
        return np.vectorize(one, otypes=[object])(mag, sh)
    s = np.clip(sh, 0, 62)
    q = np.right_shift(mag, s)
    r = mag - np.left_shift(q, s)
    if rounding == "rne":
        half = np.left_shift(np.int64(1), np.maximum(s - 1, 0))
        q = q + ((s > 0) & ((r > half) | ((r == half) & ((q & 1) == 1))))
    q = np.where(sh > 62, 0, q)          # mag < 2**62: below one half, rounds to 0
    return np.where(sh < 0, np.left_shift(mag, np.clip(-sh, 0, 62)), q)


def encode_exact(sign, mag, exp, fmt, rounding="rne", saturate=False):
    """Round ``(-1)**sign * mag * 2**exp`` once into ``fmt``; return codes.

    ``mag``: non-negative integers (int64 below 2**62, or an object array of Python
    ints for wide exact sums); ``exp``: integers; all broadcast together. ``mag == 0``
    gives a zero of that sign (int8: 0).

    Derivation (the hardware's ``round_sig`` uses the same identity): with
    ``E = exp + bitlen(mag) - 1`` the exponent of the MSB, the result's LSB weighs
    ``2**q``, ``q = max(E, emin) - M``; ``n = round(mag * 2**(exp - q))``; the magnitude
    code is ``((max(E, emin) - emin) << M) + n`` (hidden bit and rounding carry walk into
    the exponent field by themselves); overflow when it exceeds the largest finite code.
    """
    f = get_format(fmt)
    check_choice("rounding", rounding, ROUNDINGS)
    obj = np.asarray(mag).dtype == object
    sign, mag, exp = np.broadcast_arrays(np.asarray(sign, dtype=np.int64),
                                         np.asarray(mag, dtype=object if obj else np.int64),
                                         np.asarray(exp, dtype=np.int64))
    zero = np.asarray(mag == 0, dtype=bool)
    if f.kind == "int":
        # integer result: q = 0; anything of more than 9 bits saturates
        big = (exp + _bitlen(mag)) > 9
        n = _shift_round(mag, np.where(big, 0, -exp), rounding)
        n = np.where(big, 1 << 9, np.asarray(n, dtype=np.int64) if obj else n)
        val = np.clip(np.where(sign == 1, -n, n), -128, 127)
        return (val & 0xFF).astype(np.uint8)
    M = f.man_bits
    E = exp + _bitlen(mag) - 1
    Eeff = np.maximum(E, f.emin)
    big = E > f.emax + 1                              # certainly overflows
    n = _shift_round(mag, np.where(big, 0, Eeff - M - exp), rounding)
    n = np.where(big, 0, n)
    if obj:
        n = n.astype(np.int64)                        # now at most M + 2 bits
    code = np.left_shift(np.where(big, 0, Eeff - f.emin), M) + n
    over = big | (code > f.max_mag_code)
    if f.kind == "scale":                             # e8m0: unsigned, no zero
        return np.where(over | (sign == 1) | zero, 0xFF, code).astype(_dtype(f))
    sbit = sign << (f.bits - 1)
    if saturate or f.specials == "none" or rounding == "rtz":
        ovf = sbit | f.max_mag_code
    elif f.specials == "ieee":
        ovf = sbit | f.inf_code
    else:
        ovf = np.full_like(sbit, f.nan_code)
    out = np.where(zero, sbit, np.where(over, ovf, sbit | code))
    return out.astype(_dtype(f))


def _special_codes(f, x, saturate):
    """Codes for the non-finite entries of float64 array ``x`` (NaN, ±Inf)."""
    neg = np.signbit(x).astype(np.int64)
    sbit = neg << (f.bits - 1)
    if f.kind == "int":
        nan_c = 0
        inf_c = np.where(neg == 1, 0x80, 0x7F)
    elif f.kind == "scale":
        nan_c = inf_c = 0xFF
    else:
        nan_c = f.nan_code if f.has_nan else (1 << (f.bits - 1))
        if saturate or f.specials == "none":
            inf_c = sbit | f.max_mag_code
        elif f.specials == "ieee":
            inf_c = sbit | f.inf_code
        else:
            inf_c = f.nan_code
    return np.where(np.isnan(x), nan_c, inf_c)


def encode(values, fmt, rounding="rne", saturate=False):
    """float32/float64 values -> codes of ``fmt`` (one exact rounding)."""
    f = get_format(fmt)
    check_choice("rounding", rounding, ROUNDINGS)
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    xf = np.where(finite, x, 0.0)
    m, e = np.frexp(np.abs(xf))                        # |x| = m * 2**e, m in [0.5, 1)
    mag = np.ldexp(m, 53).astype(np.int64)             # exact: 53-bit integer
    exp = e.astype(np.int64) - 53
    sign = np.signbit(xf).astype(np.int64)
    out = encode_exact(sign, mag, exp, f, rounding=rounding, saturate=saturate)
    if not finite.all():
        out = np.where(finite, out, _special_codes(f, x, saturate))
    return out.astype(_dtype(f))


def convert(codes, in_fmt, out_fmt, rounding="rne", saturate=False):
    """Codes of ``in_fmt`` -> codes of ``out_fmt`` (decode is exact, so one rounding)."""
    fin = get_format(in_fmt, param="in_fmt")
    return encode(decode(codes, fin), out_fmt, rounding=rounding, saturate=saturate)
