"""cocotb testbench of ``FMA`` (driven by ``tests/test_fma.py``).

Vectors (options): ``mode="products"`` pairs every a code with every b code (all
65,536 e4m3 x e4m3 products) or, for wider formats, ``random`` seeded pairs; each
pair gets one addend ``c`` drawn from biased classes (FloPoCo style): random codes
of the accumulator format, the negated rounded product (cancellation), the product
scaled by [1/2, 2) (exponent difference 0 or 1), the product scaled far down (sticky
decisions near the LSB) and special values. ``mode="specials"`` is the full grid of
(±0, ±min/max subnormal, ±min normal, ±1, ±max, ±Inf, NaN)^3, which also leads every other run.
Expected codes from ``golden.fma``.

The same bench drives ``FMul`` (``r = round(a*b)``, no ``c`` port; its sidecar
names ``r_fmt``): the vectors are the same without the addends, and the expected
codes are ``golden.fma`` with ``c = -0`` (``x + -0 = x``, signed zeros included);
with ``a_normal`` every subnormal ``a`` code is made normal (exponent field 1).
And ``FAdd`` (``r = round(a + c)``, no ``b`` port; ``a`` in ``a_fmt`` where given):
the vectors are the FMA's with ``b = 1`` (the addends biased against ``a``: cancellation, exponent
difference 0 or 1, far below), the expected codes ``golden.fma`` with ``b = 1``;
with ``magnitude`` (``round(|a| + |c|)``) the same vectors, ``golden.fma`` of the
codes with their sign bits cleared.
"""

import numpy as np

from lpcores import golden
from lpcores.formats import get_format

from .stream import pack, standard_tests, unpack


def special_codes(fmt):
    """±0, ±min subnormal, ±max subnormal, ±min normal, ±1, ±max, ±Inf (those the
    format has), NaN."""
    f = get_format(fmt)
    s = 1 << (f.bits - 1)
    one = f.bias << f.man_bits
    mags = sorted({0, 1, (1 << f.man_bits) - 1, 1 << f.man_bits, one, f.max_mag_code})
    if f.has_inf:
        mags.append(f.inf_code)
    codes = mags + [m | s for m in mags]
    if f.has_nan:
        codes.append(f.nan_code)
    return np.array(codes, dtype=np.int64)


def _acc(p):
    """The result format, and whether the core has an addend port (FMA, FAdd) or
    not (FMul)."""
    if "fmt" in p:                                          # FAdd
        return p["fmt"], True
    return (p["acc_fmt"], True) if "acc_fmt" in p else (p["r_fmt"], False)


def _ab(p):
    """The formats of a and b; FAdd's b is the constant 1 of its format (a in
    ``a_fmt`` where it has one)."""
    if "fmt" in p:
        return p.get("a_fmt", p["fmt"]), p["fmt"]
    return p["a_fmt"], p["b_fmt"]


def _one(fmt, n):
    f = get_format(fmt)
    return np.full(n, f.bias << f.man_bits, dtype=np.int64)


def biased_addends(rng, a, b, p):
    """One addend per (a, b) pair, from the biased classes above."""
    (fa, fb), fc = _ab(p), _acc(p)[0]
    n = len(a)
    with np.errstate(all="ignore"):                          # Inf * 0, overflow
        prod = golden.decode(a, fa) * golden.decode(b, fb)   # exact in float64
        kind = rng.integers(0, 6, size=n)
        scale = rng.uniform(0.5, 2.0, size=n) * rng.choice([-1.0, 1.0], size=n)
        far = np.ldexp(1.0, -rng.integers(get_format(fc).man_bits, 40, size=n))
        cand = [
            rng.integers(0, 1 << get_format(fc).bits, size=n),
            golden.encode(-prod, fc),
            golden.encode(prod * scale, fc),
            golden.encode(prod * far * np.sign(scale), fc),
            golden.encode(-prod * (1 + np.ldexp(1.0, -get_format(fc).man_bits - 1)), fc),
            rng.choice(special_codes(fc), size=n),
        ]
    c = np.choose(kind, [np.asarray(x, dtype=np.int64) for x in cand])
    return c.astype(np.int64)


def special_grid(fa, fb, fc):
    sa, sb, sc = special_codes(fa), special_codes(fb), special_codes(fc)
    return [x.ravel() for x in np.meshgrid(sa, sb, sc, indexing="ij")]


def vectors(tb):
    p = tb.sidecar["params"]
    acc, has_c = _acc(p)
    fa, fb, fc = (get_format(x) for x in (*_ab(p), acc))
    rng = tb.nprng("vectors")
    mode = tb.options.get("mode", "products")
    if "fmt" in p:                      # FAdd: b = 1
        return _fadd_vectors(tb, p, fa, fc, rng, mode)
    if has_c:
        ga, gb, gc = special_grid(fa, fb, fc)
    else:                               # FMul: every (a, b) of the grid once
        ga, gb = (x.ravel() for x in np.meshgrid(special_codes(fa), special_codes(fb),
                                                 indexing="ij"))
    if mode == "specials":
        return ({"a": ga, "b": gb, "c": gc} if has_c else {"a": ga, "b": gb},
                "special-value grid")
    if fa.bits * 2 <= 16 and mode == "products":
        a, b = (x.ravel() for x in np.meshgrid(np.arange(1 << fa.bits),
                                              np.arange(1 << fb.bits), indexing="ij"))
        perm = rng.permutation(len(a))
        a, b = a[perm].astype(np.int64), b[perm].astype(np.int64)
        what = "every a x b product"
    else:
        n = int(tb.options.get("random", 20000))
        a = rng.integers(0, 1 << fa.bits, size=n)
        b = rng.integers(0, 1 << fb.bits, size=n)
        what = f"{n} random products"
    cat = np.concatenate
    if not has_c:
        if p.get("a_normal"):
            # FMul's a_normal: a is never subnormal; each subnormal a code becomes
            # the normal with the same fraction (exponent field 1)
            ga, a = (_normal(x, fa) for x in (ga, a))
            what += " (a never subnormal)"
        return ({"a": cat([ga, a]), "b": cat([gb, b])},
                what + ", after the special-value grid")
    c = biased_addends(rng, a, b, p)
    return ({"a": cat([ga, a]), "b": cat([gb, b]), "c": cat([gc, c])},
            what + " with biased addends, after the special-value grid")


def _normal(codes, f):
    """``codes`` with each subnormal's exponent field set to 1."""
    codes = np.asarray(codes, dtype=np.int64)
    sub = ((codes >> f.man_bits) & ((1 << f.exp_bits) - 1)) == 0
    return np.where(sub, codes | (1 << f.man_bits), codes)


def _fadd_vectors(tb, p, fa, fc, rng, mode):
    """FAdd's (a, c): the special grid, then (mode ``products``) random a with the
    biased addends against ``a * 1``."""
    ga, gc = (x.ravel() for x in np.meshgrid(special_codes(fa), special_codes(fc),
                                              indexing="ij"))
    if mode == "specials":
        return {"a": ga, "c": gc}, "special-value grid"
    n = int(tb.options.get("random", 20000))
    a = rng.integers(0, 1 << fa.bits, size=n)
    c = biased_addends(rng, a, _one(fc.name, n), p)
    return ({"a": np.concatenate([ga, a]), "c": np.concatenate([gc, c])},
            f"{n} random a with biased addends, after the special-value grid")


def _b(p, f):
    return _one(p["fmt"], len(f["a"])) if "fmt" in p else f["b"]


def _addends(p, f):
    acc, has_c = _acc(p)
    if has_c:
        return f["c"], acc
    return np.full(len(f["a"]), 1 << (get_format(acc).bits - 1), dtype=np.int64), acc


def _magnitudes(p, a, c):
    """FAdd with ``magnitude``: ``round(|a| + |c|)``, the sign bits cleared."""
    if not p.get("magnitude"):
        return a, c
    bits = (get_format(p.get("a_fmt", p["fmt"])).bits, get_format(p["fmt"]).bits)
    return (np.asarray(x) & ((1 << (w - 1)) - 1) for x, w in zip((a, c), bits))


def expected(tb, f):
    p = tb.sidecar["params"]
    c, acc = _addends(p, f)
    fa, fb = _ab(p)
    a, c = _magnitudes(p, f["a"], c)
    r = golden.fma(a, _b(p, f), c, fa, fb, acc, rounding=p["rounding"])
    return pack(tb.fo, r=r)


def describe(tb):
    p = tb.sidecar["params"]

    def render(bin_, exp, got):
        x = unpack(tb.fi, [bin_])
        fa, fb = _ab(p)
        cc, acc = _addends(p, x)
        aa, cc = _magnitudes(p, x["a"], cc)
        a = golden.decode(aa, fa)[0]
        b = golden.decode(_b(p, x), fb)[0]
        c = golden.decode(cc, acc)[0]
        e = golden.decode([exp], acc)[0]
        g = golden.decode([got], acc)[0]
        return f"a={a!r} b={b!r} c={c!r} expected={e!r} got={g!r}"
    return render


test_timing, test_vectors, test_reset_midstream = standard_tests(vectors, expected,
                                                                 describe)
