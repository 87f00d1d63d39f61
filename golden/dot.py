"""Golden Dot (SPEC §4.2, non-MX): reduces the last axis.

``accumulate="exact"``: every product and ``c`` summed exactly (Python integers at the
products' common LSB), one rounding. ``accumulate="fp"``: the accumulator starts at
``c`` (or -0, the IEEE additive identity) and each beat of ``lanes`` products is summed
exactly and added with one rounding. int8 x int8 -> int32: exact integer sum plus
``c``, wrapped to 32 bits (the hardware's accumulator cannot overflow for
``n <= max_terms``; an int32 addend can push the sum out of range, and then wraps).
"""

import numpy as np

from lpcores.errors import ParamError, check_choice
from lpcores.formats import FLOAT_FORMATS, get_format

from .codec import _codes
from .fma import ACC_FORMATS, exact_parts, round_sum

__all__ = ["dot"]

ELEM = FLOAT_FORMATS + ("int8",)


def _products(a, b, fa, fb):
    """Exact products as signed integers at the common LSB exponent, plus flags."""
    sa, ma, ea, za, ia, na = exact_parts(a, fa)
    sb, mb, eb, zb, ib, nb = exact_parts(b, fb)
    lsb = (fa.emin - fa.man_bits) + (fb.emin - fb.man_bits)
    sp = sa ^ sb
    sh = ea + eb - lsb
    wide = int(sh.max(initial=0)) + 48 > 62
    prod = (ma * mb).astype(object if wide else np.int64)
    val = np.left_shift(prod, sh.astype(object) if wide else sh)
    val = np.where(sp == 1, -val, val)
    nan = na | nb | (ia & zb) | (za & ib)
    inf = (ia | ib) & ~nan
    return val, lsb, nan, inf & (sp == 0), inf & (sp == 1), (za | zb) & (sp == 1)


def dot(a, b, a_fmt, b_fmt, out_fmt=None, accumulate="exact", c=None, lanes=None,
        rounding="rne"):
    """Dot products of codes ``a``, ``b`` (shape (..., n)) -> out_fmt codes (...).

    ``a`` and ``b`` are codes of their formats (int8: two's complement bit patterns
    0..255, so -1 is 255); anything outside 0..2**bits - 1 raises ParamError."""
    fa = get_format(a_fmt, param="a_fmt", allowed=ELEM)
    fb = get_format(b_fmt, param="b_fmt", allowed=ELEM)
    check_choice("accumulate", accumulate, ("exact", "fp"))
    # codes, as for every format: int8 elements are two's complement bit patterns
    # 0..255 (0xFF is -1); a value outside the format's codes is rejected (SPEC §7)
    a = _codes(a, fa, "a")
    b = _codes(b, fb, "b")
    if (fa.kind == "int") != (fb.kind == "int"):
        raise ParamError(f"int8 elements multiply only int8 elements, got "
                         f"a_fmt={fa.name!r}, b_fmt={fb.name!r}")
    if fa.kind == "int":
        if accumulate != "exact":
            raise ParamError(f"accumulate must be exact for int8 elements, got "
                             f"accumulate={accumulate!r}")
        sa = np.where(a >= 128, a - 256, a)
        sb = np.where(b >= 128, b - 256, b)
        total = (sa * sb).sum(axis=-1)
        if c is not None:
            total = total + np.asarray(c, dtype=np.int64)
        return (total & 0xFFFFFFFF).astype(np.uint32)
    out_fmt = out_fmt or "fp32"
    get_format(out_fmt, param="out_fmt", allowed=ACC_FORMATS)
    fo = get_format(out_fmt)
    val, lsb, nan, pinf, ninf, negz = _products(a, b, fa, fb)
    if accumulate == "exact":
        total = val.sum(axis=-1)
        return round_sum(total, lsb, nan=nan.any(-1), pinf=pinf.any(-1),
                         ninf=ninf.any(-1), negzero=negz.all(-1), c=c, out_fmt=out_fmt,
                         rounding=rounding)
    if lanes is None:
        raise ParamError("lanes is required with accumulate='fp'")
    n = a.shape[-1]
    if n % lanes:
        raise ParamError(f"the dot length must be a multiple of lanes, got n={n}, "
                         f"lanes={lanes}")
    acc = np.full(a.shape[:-1], 1 << (fo.bits - 1), dtype=np.int64) if c is None \
        else np.asarray(c, dtype=np.int64)
    for j in range(0, n, lanes):
        sl = slice(j, j + lanes)
        acc = round_sum(val[..., sl].sum(axis=-1), lsb, nan=nan[..., sl].any(-1),
                        pinf=pinf[..., sl].any(-1), ninf=ninf[..., sl].any(-1),
                        negzero=negz[..., sl].all(-1), c=acc, out_fmt=out_fmt,
                        rounding=rounding).astype(np.int64)
    return acc.astype(np.uint32 if fo.bits > 16 else np.uint16)
