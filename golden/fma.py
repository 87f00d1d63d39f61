"""Golden FMA: ``r = round(a*b + c)``, exact then one rounding (SPEC §4.1).

Also home of :func:`round_sum`, the exact "signed sum plus addend, rounded once" step
shared with :mod:`golden.dot` (it is the golden twin of the hardware's
``align_add -> normalize -> round_sig -> pack``).
"""

import numpy as np

from lpcores.errors import ParamError
from lpcores.formats import FLOAT_FORMATS, get_format

from .codec import encode_exact, fields

__all__ = ["fma", "round_sum", "exact_parts", "ACC_FORMATS"]

ACC_FORMATS = ("fp32", "fp16", "bf16")


def exact_parts(codes, fmt):
    """Codes -> (sign, sig, exp0, is_zero, is_inf, is_nan): value = ±sig * 2**exp0."""
    f = get_format(fmt)
    s, e, m = fields(codes, f)
    sub = e == 0
    sig = np.where(sub, m, m | (1 << f.man_bits)).astype(np.int64)
    exp0 = (np.where(sub, f.emin, e - f.bias) - f.man_bits).astype(np.int64)
    allones = e == (1 << f.exp_bits) - 1
    if f.specials == "ieee":
        inf, nan = allones & (m == 0), allones & (m != 0)
    elif f.specials == "fn":
        inf, nan = np.zeros_like(sub), allones & (m == (1 << f.man_bits) - 1)
    else:
        inf = nan = np.zeros_like(sub)
    zero = sub & (m == 0)
    sig = np.where(inf | nan, 0, sig)
    return s.astype(np.int64), sig, exp0, zero, inf, nan


def _obj(x):
    return np.asarray(x).astype(object)


def round_sum(total, e0, *, nan, pinf, ninf, negzero, c, out_fmt, rounding="rne"):
    """Round ``total * 2**e0 (+ c)`` once into ``out_fmt`` (fp32/fp16/bf16).

    ``total``: exact signed integers (int64 or object); ``nan``/``pinf``/``ninf``: the
    terms' class flags; ``negzero``: every term was a zero of negative sign; ``c``:
    addend codes of ``out_fmt`` or None. Special values: NaN if any NaN or +Inf and
    -Inf meet; else ±Inf; an exact zero is -0 only if every term (and c) was -0.
    """
    fo = get_format(out_fmt)
    total = _obj(total)
    e0 = np.asarray(e0, dtype=np.int64)
    if c is not None:
        cs, csig, cexp, cz, cinf, cnan = exact_parts(c, fo)
        emin = np.minimum(e0, cexp)
        cval = np.where(cs == 1, -_obj(csig), _obj(csig))
        total = np.left_shift(total, _obj(e0 - emin)) + np.left_shift(cval, _obj(cexp - emin))
        e0 = emin
        nan = nan | cnan
        pinf = pinf | (cinf & (cs == 0))
        ninf = ninf | (cinf & (cs == 1))
        negzero = negzero & cz & (cs == 1)
    total, e0, nan, pinf, ninf, negzero = np.broadcast_arrays(
        total, e0, nan, pinf, ninf, negzero)
    neg = np.asarray(total < 0, dtype=bool)
    mag = np.where(neg, -total, total)
    zero = np.asarray(total == 0, dtype=bool)
    sign = np.where(zero, negzero, neg).astype(np.int64)
    small = all(int(x) < (1 << 62) for x in mag.ravel()) if mag.size else True
    mag = mag.astype(np.int64) if small else mag
    out = encode_exact(sign, mag, e0, fo, rounding=rounding).astype(np.int64)
    nan = np.asarray(nan | (pinf & ninf), dtype=bool)
    inf = np.asarray(pinf | ninf, dtype=bool) & ~nan
    out = np.where(inf, np.where(ninf, 1 << (fo.bits - 1), 0) | fo.inf_code, out)
    out = np.where(nan, fo.nan_code, out)
    return out.astype(np.uint32 if fo.bits > 16 else np.uint16)


def fma(a, b, c, a_fmt, b_fmt, acc_fmt, rounding="rne"):
    """Vectorized ``round(a*b + c)``: a, b codes of a_fmt/b_fmt, c and the result
    codes of acc_fmt (fp32, fp16 or bf16)."""
    fa = get_format(a_fmt, param="a_fmt", allowed=FLOAT_FORMATS)
    fb = get_format(b_fmt, param="b_fmt", allowed=FLOAT_FORMATS)
    get_format(acc_fmt, param="acc_fmt", allowed=ACC_FORMATS)
    sa, ma, ea, za, ia, na = exact_parts(a, fa)
    sb, mb, eb, zb, ib, nb = exact_parts(b, fb)
    sp = sa ^ sb
    prod = ma * mb                                   # exact: at most 48 bits
    total = np.where(sp == 1, -prod, prod)
    nan = na | nb | (ia & zb) | (za & ib)
    inf = (ia | ib) & ~nan
    return round_sum(total, ea + eb, nan=nan, pinf=inf & (sp == 0), ninf=inf & (sp == 1),
                     negzero=(za | zb) & (sp == 1), c=np.asarray(c), out_fmt=acc_fmt,
                     rounding=rounding)
