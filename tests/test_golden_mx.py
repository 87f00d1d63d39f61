"""golden.mx_quantize and golden.mx_dot against independent references:

* the quantizer against a re-derivation through ml_dtypes (max via numpy, floor(log2)
  via np.log2, divide, clip to ±max, then cast: ml_dtypes does the RNE rounding);
* the quantizer against microxcaling's published semantics, re-implemented here from
  its source (mx/mx_ops.py: _shared_exponents, _quantize_mx; mx/elemwise_ops.py:
  _quantize_elemwise_core, _round_mantissa): "nearest" is ties away from zero, "even"
  is RNE; plus its own test vectors (test_fp8_e4m3_fix.py);
* mx_dot against exact rational arithmetic (tests/oracle.py plus an int8 Q1.6 decode).
"""

from fractions import Fraction

import zlib
import ml_dtypes
import numpy as np
import pytest

import oracle
from lpcores import golden
from lpcores.errors import ParamError
from lpcores.golden.mx import mx_decode

ELEMS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8")
EMAX = {"e4m3": 8, "e5m2": 15, "e3m2": 4, "e2m3": 2, "e2m1": 2, "int8": 0}
MAXV = {"e4m3": 448.0, "e5m2": 57344.0, "e3m2": 28.0, "e2m3": 7.5, "e2m1": 6.0,
        "int8": 127 / 64}
MLD = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2,
       "e3m2": ml_dtypes.float6_e3m2fn, "e2m3": ml_dtypes.float6_e2m3fn,
       "e2m1": ml_dtypes.float4_e2m1fn}


def blocks(rng, n):
    """n blocks of fp32 values, drawn to hit every case of SPEC §4.3."""
    out = []
    for k in range(n):
        kind = k % 10
        if kind == 0:
            x = rng.standard_normal(32)
        elif kind == 1:
            x = rng.standard_t(2, 32) * 10.0 ** rng.integers(-3, 4)      # heavy tails
        elif kind == 2:
            x = rng.standard_normal(32) * 1e-3
            x[rng.integers(32)] = 1e3 * rng.choice([-1, 1])              # one outlier
        elif kind == 3:
            x = rng.standard_normal(32)
            x[rng.integers(32)] = 2.0 ** int(rng.integers(-20, 20))      # max = 2**k
        elif kind == 4:                                                  # fp32 subnormals
            x = rng.integers(-(1 << 23), 1 << 23, 32).astype(np.int64)
            x = np.ldexp(x.astype(np.float64), -149)
        elif kind == 5:                                                  # clamp at -127
            x = rng.standard_normal(32) * 2.0 ** -140
        elif kind == 6:                                                  # near fp32 max
            x = rng.standard_normal(32) * 1e37
        elif kind == 7:                                                  # all zero
            x = np.where(rng.random(32) < 0.5, 0.0, -0.0)
        elif kind == 8:                                                  # mostly zero
            x = np.zeros(32)
            x[rng.integers(32)] = rng.standard_normal() * 2.0 ** int(rng.integers(-140, 120))
        else:                                                            # wide spread
            x = rng.standard_normal(32) * 2.0 ** rng.integers(-30, 30, 32)
        out.append(x)
    return np.array(out).astype(np.float32)


BITS = {"e4m3": 8, "e5m2": 8, "e3m2": 6, "e2m3": 6, "e2m1": 4}


def grid(fmt):
    """Every non-negative finite element value, from ml_dtypes (int8: Q1.6)."""
    if fmt == "int8":
        return np.arange(128) / 64.0
    g = np.arange(1 << (BITS[fmt] - 1), dtype=np.uint8).view(MLD[fmt]).astype(np.float64)
    return g[np.isfinite(g)]


def ties(rng, fmt, n):
    """Blocks whose elements sit exactly on midpoints between element values."""
    g = grid(fmt)
    mids = (g[:-1] + g[1:]) / 2
    x = np.zeros((n, 32))
    for r in range(n):
        x[r] = rng.choice(mids, 32) * rng.choice([-1, 1], 32)
        x[r, 0] = g.max()                     # pins max|v|, so shared = 0 ...
        x[r] *= 2.0 ** int(rng.integers(-10, 10))   # ... then shared = this exponent
    return x.astype(np.float32)


# -- ml_dtypes re-derivation ----------------------------------------------------------

def ref_ml_dtypes(x, fmt):
    """Scale code and element codes by clip-then-cast (RNE by ml_dtypes)."""
    x = x.astype(np.float64)
    amax = np.abs(x).max(axis=-1)
    with np.errstate(divide="ignore"):
        fl = np.floor(np.log2(amax))
    shared = np.clip(np.where(amax == 0, -np.inf, fl) - EMAX[fmt], -127, 127)
    scale = (shared + 127).astype(np.uint8)
    t = np.clip(x / 2.0 ** shared[..., None], -MAXV[fmt], MAXV[fmt])
    if fmt == "int8":
        q = np.clip(np.rint(t * 64), -127, 127).astype(np.int64)
        return scale, (q & 0xFF).astype(np.uint8)
    codes = t.astype(np.float32).astype(MLD[fmt]).view(np.uint8)
    return scale, codes


@pytest.mark.parametrize("fmt", ELEMS)
def test_quantize_rne_matches_ml_dtypes(fmt):
    rng = np.random.default_rng(1000 + ELEMS.index(fmt))
    x = np.concatenate([blocks(rng, 400), ties(rng, fmt, 40)])
    s, c = golden.mx_quantize(x, fmt)
    rs, rc = ref_ml_dtypes(x, fmt)
    assert np.array_equal(s, rs)
    bad = np.argwhere(c != rc)
    assert not len(bad), (f"{fmt}: {len(bad)} element codes differ, first at "
                          f"{bad[0]}: x={x[tuple(bad[0])]!r} got={c[tuple(bad[0])]:#x} "
                          f"ml_dtypes={rc[tuple(bad[0])]:#x}")


def test_quantize_bf16_inputs_match_ml_dtypes():
    rng = np.random.default_rng(7)
    x = blocks(rng, 200).astype(ml_dtypes.bfloat16).astype(np.float32)
    for fmt in ("e4m3", "e2m1", "int8"):
        s, c = golden.mx_quantize(x, fmt)
        rs, rc = ref_ml_dtypes(x, fmt)
        assert np.array_equal(s, rs) and np.array_equal(c, rc)


# -- microxcaling semantics -----------------------------------------------------------

# (ebits, mbits incl. sign and implicit bit, emax, max_norm): mx/formats.py
MX_PARAMS = {"e4m3": (4, 5, 8, 448.0), "e5m2": (5, 4, 15, 57344.0),
             "e3m2": (3, 4, 4, 28.0), "e2m3": (2, 5, 2, 7.5), "e2m1": (2, 3, 2, 6.0),
             "int8": (0, 8, 0, 127 / 64)}


def microxcaling(x, fmt, round_):
    """Dequantized values, per microxcaling's _quantize_mx (block = last axis)."""
    ebits, mbits, emax, max_norm = MX_PARAMS[fmt]
    A = x.astype(np.float64)
    amax = np.abs(A).max(axis=-1, keepdims=True)
    shared = np.floor(np.log2(amax + 2.0 ** -126 * (amax == 0)))
    shared = shared - emax
    shared = np.where(shared > 127, np.nan, shared)
    shared = np.where(shared < -127, -127, shared)
    A = A / 2.0 ** shared
    if ebits:
        pe = np.floor(np.log2(np.abs(A) + (A == 0)))
        pe = np.clip(pe, -(2 ** (ebits - 1)) + 2, None)
        out = A / 2.0 ** pe * 2.0 ** (mbits - 2)
    else:
        out = A * 2.0 ** (mbits - 2)
    absA = np.abs(out)
    if round_ == "nearest":
        out = np.sign(out) * np.floor(absA + 0.5)
    else:                                           # "even"
        mask = ((absA - 0.5) % 2 == 0).astype(np.float64)
        out = np.sign(out) * (np.floor(absA + 0.5) - mask)
    out = out / 2.0 ** (mbits - 2) * (2.0 ** pe if ebits else 1)
    out = np.clip(out, -max_norm, max_norm)
    return out * 2.0 ** shared


@pytest.mark.parametrize("fmt", ELEMS)
@pytest.mark.parametrize("rounding,mx_round", [("away", "nearest"), ("rne", "even")])
def test_quantize_matches_microxcaling(fmt, rounding, mx_round):
    rng = np.random.default_rng(2000 + ELEMS.index(fmt))
    x = np.concatenate([blocks(rng, 300), ties(rng, fmt, 60)])
    finite = np.isfinite(x).all(-1)
    s, c = golden.mx_quantize(x, fmt, rounding=rounding)
    got = mx_decode(s, c, fmt)
    ref = microxcaling(x, fmt, mx_round)
    # microxcaling loses the sign of zero (sign(-0) * 0 = 0); compare values
    assert np.array_equal(got[finite], ref[finite])


def test_microxcaling_published_e4m3_vector():
    """mx/tests/test_fp8_e4m3_fix.py: 400 -> 416 under "nearest" (ties away);
    RNE gives 384 (400 is the midpoint of 384 and 416, 384 has the even mantissa)."""
    x = np.zeros(32, np.float32)
    x[:8] = [485, 475, 400, -485, -475, -450, 2 ** -6, -(2 ** -6)]
    want = [448, 448, 416, -448, -448, -448, 2 ** -6, -(2 ** -6)]
    s, c = golden.mx_quantize(x, "e4m3", rounding="away")
    assert s == 127
    assert mx_decode(s, c, "e4m3")[:8].tolist() == want
    s, c = golden.mx_quantize(x, "e4m3", rounding="rne")
    assert mx_decode(s, c, "e4m3")[:8].tolist() == [448, 448, 384] + want[3:]


def test_microxcaling_published_round_vector():
    """mx/tests/test_fp8_e4m3_fix.py::test_mxfp8_e4m3_round (both modes agree)."""
    x = [-0.582733273506, -0.256973713636, 0.506033003330, 0.400039970875,
         -0.437093466520, 1.275019764900, -2.123294353485, 1.514909625053,
         -2.660086154938, -0.200791791081, -0.060985822231, -0.209203109145,
         2.385987281799, 0.062245476991, 0.217003762722, -0.857734560966,
         0.507945835590, 0.896152675152, -0.751049160957, -0.488164335489,
         0.805381953716, -0.172028362751, 0.271137863398, -0.503807783127,
         1.879478693008, -0.294227510691, 0.968807995319, 0.670037031174,
         -0.871595799923, 0.304561793804, -0.567594051361, -1.265962004662]
    t = [-0.5625, -0.25, 0.5, 0.40625, -0.4375, 1.25, -2.0, 1.5, -2.75, -0.203125,
         -0.0625, -0.203125, 2.5, 0.0625, 0.21875, -0.875, 0.5, 0.875, -0.75, -0.5,
         0.8125, -0.171875, 0.28125, -0.5, 1.875, -0.28125, 1.0, 0.6875, -0.875,
         0.3125, -0.5625, -1.25]
    for r in ("rne", "away"):
        s, c = golden.mx_quantize(np.array(x, np.float32), "e4m3", rounding=r)
        assert mx_decode(s, c, "e4m3").tolist() == t


# -- directed SPEC §4.3 cases ---------------------------------------------------------

def test_quantize_directed():
    z = np.zeros(32, np.float32)
    # all zero (with a -0): scale 0x00, signed zero elements
    x = z.copy()
    x[3] = -0.0
    s, c = golden.mx_quantize(x, "e4m3")
    assert s == 0 and c[3] == 0x80 and (np.delete(c, 3) == 0).all()
    s, c = golden.mx_quantize(x, "int8")
    assert s == 0 and (c == 0).all()
    # NaN / Inf anywhere: scale 0xFF, elements the canonical NaN (or 0)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.ones(32, np.float32)
        x[17] = bad
        assert golden.mx_quantize(x, "e4m3")[0] == 0xFF
        assert (golden.mx_quantize(x, "e4m3")[1] == 0x7F).all()
        assert (golden.mx_quantize(x, "e5m2")[1] == 0x7E).all()
        assert (golden.mx_quantize(x, "e2m1")[1] == 0).all()
    # max exactly a power of two: 2**5 in e2m1 (emax 2) -> shared 3, element 4.0
    x = z.copy()
    x[0], x[1] = 32.0, 31.0
    s, c = golden.mx_quantize(x, "e2m1")
    assert s == 127 + 3 and c[0] == 0b0110 and c[1] == 0b0110      # 31/8 = 3.875 -> 4
    # one ulp under the power of two keeps the lower scale and saturates to max
    x[0] = np.nextafter(np.float32(32), np.float32(0))
    s, c = golden.mx_quantize(x, "e2m1")
    assert s == 127 + 2 and c[0] == 0b0111                          # 7.99.. -> 6
    # fp32 subnormals: exact, and the scale clamps at -127 (code 0)
    x = z.copy()
    x[0] = np.ldexp(1.0, -149)
    x[1] = np.ldexp(3.0, -149)
    s, c = golden.mx_quantize(x, "e4m3")
    assert s == 0                                     # -148 - 8 clamps to -127
    # 3 * 2**-149 * 2**127 = 3 * 2**-22: below e4m3's smallest subnormal 2**-9 -> 0
    assert c[0] == 0 and c[1] == 0
    x[5] = np.ldexp(1.0, -130)                        # max 2**-130: shared -138 -> -127
    s, c = golden.mx_quantize(x, "e5m2")              # 2**-3 is normal in e5m2
    assert s == 0 and mx_decode(s, c, "e5m2")[5] == 2.0 ** -130
    # int8: Q1.6 symmetric clamp; 1.9921875 = 127.5/64 rounds to 128 -> 127
    x = z.copy()
    x[0], x[1] = 1.9921875, -1.9921875
    s, c = golden.mx_quantize(x, "int8")
    assert s == 127 and c[0] == 127 and c[1] == 0x81


@pytest.mark.parametrize("kwargs,msg", [
    (dict(x=np.zeros(32), elem_fmt="fp32"),
     "elem_fmt must be one of e4m3, e5m2, e3m2, e2m3, e2m1, int8, got elem_fmt='fp32'"),
    (dict(x=np.zeros(32), elem_fmt="e4m3", rounding="rtz"),
     "rounding must be one of rne, away, got rounding='rtz'"),
    (dict(x=np.zeros(16), elem_fmt="e4m3"), "x must have shape (..., 32), got shape (16,)"),
    (dict(x=np.full(32, 0.1), elem_fmt="e4m3"),
     "x must hold fp32 (or bf16) values exactly; round it to fp32 first"),
    (dict(x=np.zeros(32, dtype=np.int32), elem_fmt="e4m3"),
     "x must be an array of floats (fp32 or bf16 values), got dtype int32"),
])
def test_quantize_bad_input(kwargs, msg):
    with pytest.raises(ParamError) as e:
        golden.mx_quantize(**kwargs)
    assert str(e.value) == msg


# -- mx_dot against exact rationals ---------------------------------------------------

def _val(code, fmt):
    """(sign, magnitude) as in oracle.value, with int8 as Q1.6."""
    if fmt == "int8":
        v = int(code) - 256 if int(code) >= 128 else int(code)
        return (1 if v < 0 else 0), Fraction(abs(v), 64)
    return oracle.value(code, fmt)


def ref_mx_dot(a, sa, b, sb, fa, fb, c=None):
    """One dot product: exact block sums, scaled, one fp32 rounding per block."""
    acc = 0x80000000 if c is None else int(c)
    for k in range(len(sa)):
        terms, negz = [], []
        for x, y in zip(a[32 * k:32 * k + 32], b[32 * k:32 * k + 32]):
            (s1, v1), (s2, v2) = _val(x, fa), _val(y, fb)
            s = s1 ^ s2
            if oracle.NAN in (v1, v2) or (oracle.INF in (v1, v2) and 0 in (v1, v2)):
                v = oracle.NAN
            elif oracle.INF in (v1, v2):
                v = oracle.INF
            else:
                v = v1 * v2
            terms.append((s, v))
            negz.append(s == 1 and v == 0)
        bs, bv = oracle._sum(terms, negz)
        if int(sa[k]) == 0xFF or int(sb[k]) == 0xFF:
            bs, bv = 0, oracle.NAN
        elif bv not in (oracle.NAN, oracle.INF):
            bv = bv * Fraction(2) ** (int(sa[k]) + int(sb[k]) - 254)
        cs, cv = oracle.value(acc, "fp32")
        s, v = oracle._sum([(bs, bv), (cs, cv)],
                           [bs == 1 and bv == 0, cs == 1 and cv == 0])
        acc = oracle.encode(s, v, "fp32")
    return acc


def _codes(rng, fmt, shape, specials):
    if fmt == "int8":
        return rng.integers(0, 256, shape)
    bits = BITS[fmt]
    x = rng.integers(0, 1 << bits, shape)
    v = golden.decode(x.ravel(), fmt).reshape(shape)
    keep = np.isfinite(v) | (rng.random(shape) < specials)
    return np.where(keep, x, rng.integers(0, 1 << (bits - 2), shape))


PAIRS = [(f, f) for f in ELEMS] + [("e4m3", "e2m1"), ("e5m2", "e4m3"), ("int8", "e4m3"),
                                  ("e2m3", "e3m2")]


@pytest.mark.parametrize("fa,fb", PAIRS)
def test_mx_dot_vs_exact_rationals(fa, fb):
    rng = np.random.default_rng(zlib.crc32(repr((fa, fb)).encode()))
    rows, nb = 40, 3
    a = _codes(rng, fa, (rows, nb * 32), 0.003)
    b = _codes(rng, fb, (rows, nb * 32), 0.003)
    # scales: mostly mid-range, some at the ends (0x00, 0xFE) and NaN (0xFF)
    def scales():
        s = rng.integers(110, 145, (rows, nb))
        ends = rng.random((rows, nb))
        s = np.where(ends < 0.1, 0, np.where(ends < 0.2, 0xFE, s))
        return np.where(ends > 0.97, 0xFF, s)
    sa, sb = scales(), scales()
    sa[:4], sb[:4] = 0xFE, 0xFE                          # overflow to Inf
    sa[4:8], sb[4:8] = 0, 0                              # underflow (subnormal / 0)
    sa[8:12], sb[8:12] = 0xFE, 0                         # 2**0 exactly
    a[12:16, 32:64] = a[12:16, :32] ^ (0x80 if fa in ("e4m3", "e5m2", "int8") else 0)
    got = golden.mx_dot(a, sa, b, sb, fa, fb)
    for r in range(rows):
        want = ref_mx_dot(a[r], sa[r], b[r], sb[r], fa, fb)
        assert int(got[r]) == want, (fa, fb, r, hex(int(got[r])), hex(want))


def ref_mx_dot_partials(a, sa, b, sb, fa, fb, P):
    """Block k into partial k mod P (each the one-chain reference from -0), then the
    pairwise tree of exact sums, each rounded once to fp32 (docs/mx.md)."""
    nb = len(sa)
    t = []
    for i in range(P):
        ks = list(range(i, nb, P))
        idx = [32 * k + e for k in ks for e in range(32)]
        t.append(ref_mx_dot(a[idx], sa[ks], b[idx], sb[ks], fa, fb))
    while len(t) > 1:
        nxt = []
        for x, y in zip(t[0::2], t[1::2]):
            (xs, xv), (ys, yv) = oracle.value(x, "fp32"), oracle.value(y, "fp32")
            s_, v_ = oracle._sum([(xs, xv), (ys, yv)],
                                 [xs == 1 and xv == 0, ys == 1 and yv == 0])
            nxt.append(oracle.encode(s_, v_, "fp32"))
        t = nxt
    return t[0]


@pytest.mark.parametrize("fa,fb,P,nb", [("e4m3", "e4m3", 8, 19), ("e5m2", "e4m3", 4, 6),
                                        ("int8", "int8", 2, 5), ("e2m1", "e2m1", 16, 3),
                                        ("e4m3", "e4m3", 8, 8)])
def test_mx_dot_partials_vs_exact_rationals(fa, fb, P, nb):
    """partials=P: the blocks dealt round-robin to P sums, then a pairwise tree; fewer
    blocks than P leave sums at -0; specials (NaN scales, Inf, overflow) as above."""
    rng = np.random.default_rng(zlib.crc32(repr((fa, fb, P, nb)).encode()))
    rows = 30
    a = _codes(rng, fa, (rows, nb * 32), 0.002)
    b = _codes(rng, fb, (rows, nb * 32), 0.002)
    sa = rng.integers(100, 150, (rows, nb))
    sb = rng.integers(100, 150, (rows, nb))
    sa[0, 0] = 0xFF                                      # a NaN block
    sa[1:3], sb[1:3] = 0xFE, 0xFE                        # overflow to Inf
    a[3] = np.where(rng.random(nb * 32) < 0.5, 0x80 if fa != "int8" else 0, a[3]) \
        if fa in ("e4m3", "e5m2", "int8") else a[3]
    got = golden.mx_dot(a, sa, b, sb, fa, fb, partials=P)
    one = golden.mx_dot(a, sa, b, sb, fa, fb)
    for r in range(rows):
        want = ref_mx_dot_partials(a[r], sa[r], b[r], sb[r], fa, fb, P)
        assert int(got[r]) == want, (fa, fb, P, r, hex(int(got[r])), hex(want))
    if nb > P:
        assert (got != one).any()                        # another order of rounding
    # all -0 products: every partial -0, and -0 + -0 = -0
    z = np.full((1, nb * 32), 0x80 if fa != "int8" else 0x80)
    pos = np.full((1, nb * 32), 0x38 if fb == "e4m3" else 0)
    if fa == "e4m3" and fb == "e4m3":
        s1 = np.full((1, nb), 127)
        assert golden.mx_dot(z, s1, pos, s1, fa, fb, partials=P)[0] == 0x80000000


def test_mx_dot_partials_bad_input():
    a = np.zeros((1, 32), dtype=np.int64)
    s = np.full((1, 1), 127)
    with pytest.raises(ParamError) as e:
        golden.mx_dot(a, s, a, s, "e4m3", "e4m3", partials=3)
    assert str(e.value) == "partials must be a power of two in 1..16, got partials=3"
    with pytest.raises(ParamError) as e:
        golden.mx_dot(a, s, a, s, "e4m3", "e4m3", c=[0], partials=2)
    assert str(e.value) == "c (an accumulator start) applies to partials=1 only, got partials=2"


def test_mx_dot_with_addend_and_signed_zero():
    rng = np.random.default_rng(5)
    a = _codes(rng, "e4m3", (50, 64), 0.0)
    b = _codes(rng, "e4m3", (50, 64), 0.0)
    sa = rng.integers(100, 150, (50, 2))
    sb = rng.integers(100, 150, (50, 2))
    c = rng.integers(0, 1 << 32, 50)
    c = np.where(np.isfinite(golden.decode(c, "fp32")), c, 0x3F800000)
    got = golden.mx_dot(a, sa, b, sb, "e4m3", "e4m3", c=c)
    for r in range(50):
        assert int(got[r]) == ref_mx_dot(a[r], sa[r], b[r], sb[r], "e4m3", "e4m3", c[r])
    # all products -0: the result is -0 (the accumulator starts at -0); one +0 -> +0
    a = np.full((1, 32), 0x80)
    b = np.full((1, 32), 0x38)
    s = np.array([[127]])
    assert golden.mx_dot(a, s, b, s, "e4m3", "e4m3")[0] == 0x80000000
    a[0, 5] = 0
    assert golden.mx_dot(a, s, b, s, "e4m3", "e4m3")[0] == 0


def test_mx_dot_specials():
    s = np.array([[127, 127]])
    one = 0x38                                          # e4m3 1.0
    a = np.full((1, 64), one)
    b = np.full((1, 64), one)
    assert golden.mx_dot(a, s, b, s, "e4m3", "e4m3")[0] == np.float32(64).view(np.uint32)
    # NaN scale in the second block, NaN element, both give canonical NaN
    assert golden.mx_dot(a, np.array([[127, 0xFF]]), b, s, "e4m3", "e4m3")[0] == 0x7FC00000
    a2 = a.copy()
    a2[0, 40] = 0x7F
    assert golden.mx_dot(a2, s, b, s, "e4m3", "e4m3")[0] == 0x7FC00000
    # e5m2 Inf in block 0 and -Inf in block 1: NaN; Inf x 0: NaN; Inf alone: Inf
    a = np.full((1, 64), 0x3C)                          # e5m2 1.0
    b = np.full((1, 64), 0x3C)
    a[0, 3] = 0x7C
    assert golden.mx_dot(a, s, b, s, "e5m2", "e5m2")[0] == 0x7F800000
    a[0, 50] = 0xFC
    assert golden.mx_dot(a, s, b, s, "e5m2", "e5m2")[0] == 0x7FC00000
    a[0, 50] = 0x3C
    b[0, 3] = 0
    assert golden.mx_dot(a, s, b, s, "e5m2", "e5m2")[0] == 0x7FC00000
    # the largest e4m3 product at the largest scales overflows fp32 to +Inf
    a = np.full((1, 32), 0x7E)
    assert golden.mx_dot(a, np.array([[0xFE]]), a, np.array([[0xFE]]), "e4m3",
                         "e4m3")[0] == 0x7F800000


@pytest.mark.parametrize("kwargs,msg", [
    (dict(a_fmt="bf16"),
     "a_fmt must be one of e4m3, e5m2, e3m2, e2m3, e2m1, int8, got a_fmt='bf16'"),
    (dict(a_codes=np.zeros((1, 48), int), b_codes=np.zeros((1, 48), int)),
     "a_codes and b_codes must have the same shape (..., n*32), got (1, 48) and (1, 48)"),
    (dict(a_scales=np.zeros((1, 2), int)),
     "a_scales must have shape (1, 1) (one scale per 32-element block), got (1, 2)"),
    (dict(b_scales=np.full((1, 1), 256)), "b_scales must be E8M0 codes in 0..255, got 256"),
    (dict(a_codes=np.full((1, 32), 256)), "codes must be in 0..255 for e4m3, got 256"),
])
def test_mx_dot_bad_input(kwargs, msg):
    args = dict(a_codes=np.zeros((1, 32), int), a_scales=np.zeros((1, 1), int),
                b_codes=np.zeros((1, 32), int), b_scales=np.zeros((1, 1), int),
                a_fmt="e4m3", b_fmt="e4m3")
    args.update(kwargs)
    with pytest.raises(ParamError) as e:
        golden.mx_dot(**args)
    assert str(e.value) == msg
