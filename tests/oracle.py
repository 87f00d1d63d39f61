"""An exact-rational reference, written independently of lpcores.golden.

Per element, with Python ``fractions.Fraction``: its own decode from bit fields (held
against ml_dtypes in test_golden_fma.py) and its own rounding into a format. Slow and
simple on purpose; it is the oracle the vectorized golden models are checked against.
"""

from fractions import Fraction

NAN = "nan"
INF = "inf"

# name: (bits, exp_bits, man_bits, bias, specials)
FMT = {
    "fp32": (32, 8, 23, 127, "ieee"), "fp16": (16, 5, 10, 15, "ieee"),
    "bf16": (16, 8, 7, 127, "ieee"), "e5m2": (8, 5, 2, 15, "ieee"),
    "e4m3": (8, 4, 3, 7, "fn"), "e3m2": (6, 3, 2, 3, "none"),
    "e2m3": (6, 2, 3, 1, "none"), "e2m1": (4, 2, 1, 1, "none"),
}


def value(code, fmt):
    """(sign, magnitude) with magnitude a Fraction, INF or NAN."""
    bits, E, M, bias, sp = FMT[fmt]
    code = int(code)
    s = code >> (bits - 1)
    e = (code >> M) & ((1 << E) - 1)
    m = code & ((1 << M) - 1)
    if sp == "ieee" and e == (1 << E) - 1:
        return s, (INF if m == 0 else NAN)
    if sp == "fn" and e == (1 << E) - 1 and m == (1 << M) - 1:
        return s, NAN
    if e == 0:
        return s, Fraction(m) * Fraction(2) ** (1 - bias - M)
    return s, Fraction((1 << M) + m) * Fraction(2) ** (e - bias - M)


def as_float(code, fmt):
    s, v = value(code, fmt)
    x = float("nan") if v == NAN else (float("inf") if v == INF else float(v))
    return -x if s else x


def _floor_log2(x):
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    return e


def encode(sign, mag, fmt, rounding="rne"):
    """Round sign * mag (a Fraction >= 0, or INF/NAN) into an IEEE accumulator format
    (fp32, fp16, bf16); NaN is the canonical quiet NaN."""
    bits, E, M, bias, sp = FMT[fmt]
    assert sp == "ieee"
    sbit = sign << (bits - 1)
    inf = ((1 << E) - 1) << M
    maxc = inf - 1
    if mag == NAN:
        return inf | (1 << (M - 1))
    if mag == INF:
        return sbit | inf
    if mag == 0:
        return sbit
    emin, emax = 1 - bias, (1 << E) - 2 - bias
    e = max(_floor_log2(mag), emin)
    q = Fraction(2) ** (e - M)
    n = mag / q
    fl = n.numerator // n.denominator
    rem = n - fl
    if rounding == "rne" and (rem > Fraction(1, 2) or (rem == Fraction(1, 2) and fl % 2)):
        fl += 1
    v = fl * q
    if v == 0:
        return sbit
    vmax = Fraction((2 << M) - 1) * Fraction(2) ** (emax - M)
    if v > vmax:
        return sbit | (maxc if rounding == "rtz" else inf)
    if v < Fraction(2) ** emin:                      # subnormal
        return sbit | int(v / Fraction(2) ** (emin - M))
    e2 = _floor_log2(v)
    frac = v / Fraction(2) ** (e2 - M) - (1 << M)
    return sbit | ((e2 + bias) << M) | int(frac)


def _sum(terms, zero_signs):
    """terms: list of (sign, magnitude) with magnitudes Fraction/INF/NAN.
    Returns (sign, magnitude) of the exact IEEE sum."""
    if any(v == NAN for _, v in terms):
        return 0, NAN
    infs = {s for s, v in terms if v == INF}
    if len(infs) == 2:
        return 0, NAN
    if infs:
        return infs.pop(), INF
    tot = sum((-v if s else v) for s, v in terms)
    if tot == 0:
        return (1 if all(zero_signs) else 0), Fraction(0)
    return (1 if tot < 0 else 0), abs(tot)


def _product(a, fa, b, fb):
    sa, va = value(a, fa)
    sb, vb = value(b, fb)
    s = sa ^ sb
    if va == NAN or vb == NAN:
        return s, NAN
    if va == INF or vb == INF:
        return s, (NAN if (va == 0 or vb == 0) else INF)
    return s, va * vb


def fma(a, b, c, fa, fb, fc, rounding="rne"):
    p = _product(a, fa, b, fb)
    cc = value(c, fc)
    s, v = _sum([p, cc], [p[0] == 1 and p[1] == 0, cc[0] == 1 and cc[1] == 0])
    return encode(s, v, fc, rounding)


def dot(a, b, fa, fb, fo, accumulate="exact", c=None, lanes=None, rounding="rne"):
    prods = [_product(x, fa, y, fb) for x, y in zip(a, b)]
    negz = [p[0] == 1 and p[1] == 0 for p in prods]
    if accumulate == "exact":
        terms, zs = list(prods), list(negz)
        if c is not None:
            cc = value(c, fo)
            terms.append(cc)
            zs.append(cc[0] == 1 and cc[1] == 0)
        s, v = _sum(terms, zs)
        return encode(s, v, fo, rounding)
    acc = (1 << (FMT[fo][0] - 1)) if c is None else int(c)        # -0 identity
    for j in range(0, len(prods), lanes):
        beat = prods[j:j + lanes]
        bz = negz[j:j + lanes]
        bs, bv = _sum(beat, bz)
        cc = value(acc, fo)
        s, v = _sum([(bs, bv), cc], [bs == 1 and bv == 0, cc[0] == 1 and cc[1] == 0])
        acc = encode(s, v, fo, rounding)
    return acc
