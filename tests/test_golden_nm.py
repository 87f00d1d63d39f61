"""golden.nm against independent oracles: nm_prune against float64 scores decoded by
ml_dtypes, ranked by a stable sort on (-score, index) (NaN first); nm_dot and
sparse_linear against the exact rational dot of tests/oracle.py on the masked dense
operand (scattered with plain loops)."""

import itertools

import ml_dtypes
import numpy as np
import pytest

from lpcores.errors import ParamError
from lpcores.formats import get_format
from lpcores.golden.nm import (expand, index_bits, nm_prune, pack_indices,
                               unpack_indices)

FORMATS = ("bf16", "fp16", "e4m3", "e5m2", "int8")
RATIOS = [(1, 2), (2, 4), (4, 8), (8, 16), (1, 3), (3, 5), (2, 7), (5, 16), (15, 16)]

# e4m3 values covering ties (±x), ±0, ±NaN, subnormals, the normal boundary and ±max
E4M3_SET = [0x00, 0x80, 0x01, 0x81, 0x06, 0x07, 0x08, 0x38, 0xB8, 0x39, 0x40, 0xC0,
            0x7E, 0xFE, 0x7F, 0xFF]


def ml_decode(codes, fmt):
    f = get_format(fmt)
    c = np.asarray(codes, dtype=np.int64)
    if f.kind == "int":
        return c.astype(np.uint8).view(np.int8).astype(np.float64)
    dt = np.dtype(getattr(ml_dtypes, f.mldtype, None) or f.mldtype)
    raw = c.astype(np.uint8 if f.bits == 8 else np.uint16)
    with np.errstate(invalid="ignore"):          # NaN payloads
        return raw.view(dt).astype(np.float64)


def oracle(x, n, m, fmt, scale=None):
    """Sort on (not NaN, -score, index) (``np.lexsort``); float64 scores are exact
    (at most 19 significant bits)."""
    score = np.abs(ml_decode(x, fmt))
    if scale is not None:
        with np.errstate(invalid="ignore"):
            score = score * np.broadcast_to(np.asarray(scale, dtype=np.float64), score.shape)
    nan = np.isnan(score)
    g = np.where(nan, 0, -score).reshape(score.shape[:-1] + (-1, m))
    nan = nan.reshape(g.shape)
    index = np.broadcast_to(np.arange(m), g.shape)
    order = np.lexsort((index, g, ~nan), axis=-1)[..., :n]   # NaN first, then -score
    idx = np.sort(order, axis=-1)
    xg = np.asarray(x, dtype=np.int64).reshape(g.shape)
    values = np.take_along_axis(xg, idx, axis=-1)
    keep = np.zeros(g.shape, dtype=bool)
    np.put_along_axis(keep, idx, True, axis=-1)
    return values, idx, np.where(keep, xg, 0).reshape(np.shape(x))


def assert_same(got, want):
    for a, b, what in zip(got, want, ("values", "indices", "masked")):
        bad = np.argwhere(np.asarray(a) != np.asarray(b))
        assert bad.size == 0, f"{what} differ first at {bad[0].tolist()}: {a[tuple(bad[0][:-1])]} vs {b[tuple(bad[0][:-1])]}"


def tie_heavy(rng, fmt, shape):
    """Codes from a small alphabet (many ties, ±0, NaN, Inf, subnormals, max)."""
    f = get_format(fmt)
    if f.kind == "int":
        alpha = np.array([0, 1, 0xFF, 2, 0xFE, 0x7F, 0x81, 0x80, 5, 0xFB])
    else:
        sb = 1 << (f.bits - 1)
        alpha = [0, sb, 1, sb | 1, f.max_mag_code, sb | f.max_mag_code,
                 f.nan_code, (1 << f.man_bits), (1 << f.man_bits) - 1,
                 (f.bias << f.man_bits), sb | (f.bias << f.man_bits)]
        if f.has_inf:
            alpha += [f.inf_code, sb | f.inf_code, f.inf_code | 1, sb | f.nan_code]
        alpha = np.array(alpha)
    mix = rng.integers(0, 1 << f.bits, size=shape)
    pick = alpha[rng.integers(0, len(alpha), size=shape)]
    return np.where(rng.random(shape) < 0.6, pick, mix)


def test_exhaustive_2of4_e4m3():
    x = np.array(list(itertools.product(E4M3_SET, repeat=4)))
    assert x.shape == (65536, 4)
    assert_same(nm_prune(x, 2, 4, "e4m3"), oracle(x, 2, 4, "e4m3"))


@pytest.mark.parametrize("fmt", ("e4m3", "e5m2", "int8"))
def test_exhaustive_1of2(fmt):
    c = np.arange(256)
    x = np.stack(np.meshgrid(c, c, indexing="ij"), axis=-1).reshape(-1, 2)
    assert_same(nm_prune(x, 1, 2, fmt), oracle(x, 1, 2, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n,m", RATIOS)
def test_random(fmt, n, m):
    rng = np.random.default_rng([n, m, len(fmt)])
    x = tie_heavy(rng, fmt, (500, 3 * m))
    assert_same(nm_prune(x, n, m, fmt), oracle(x, n, m, fmt))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("n,m", [(1, 2), (2, 4), (4, 8), (8, 16), (3, 7)])
def test_random_scaled(fmt, n, m):
    rng = np.random.default_rng([n, m, len(fmt), 7])
    x = tie_heavy(rng, fmt, (400, 2 * m))
    s = rng.integers(0, 256, size=(400, 2 * m))
    s = np.where(rng.random(s.shape) < 0.1, 0, s)                 # s = 0 and Inf*0
    s = np.where(rng.random(s.shape) < 0.2, 1 << rng.integers(0, 8, s.shape), s)
    assert_same(nm_prune(x, n, m, fmt, scale=s), oracle(x, n, m, fmt, scale=s))
    sc = rng.integers(0, 256, size=2 * m)                         # per channel
    assert_same(nm_prune(x, n, m, fmt, scale=sc), oracle(x, n, m, fmt, scale=sc))


def test_rules_directed():
    # ties: lower index wins; -0 ties +0; NaN ranks highest, any NaN payload/sign
    v, i, d = nm_prune([[0x38, 0xB8, 0x38, 0x00]], 2, 4, "e4m3")
    assert i.tolist() == [[[0, 1]]] and d.tolist() == [[0x38, 0xB8, 0, 0]]
    v, i, d = nm_prune([[0x80, 0x00, 0x00, 0x80]], 2, 4, "e4m3")
    assert i.tolist() == [[[0, 1]]] and v.tolist() == [[[0x80, 0x00]]]
    v, i, _ = nm_prune([[0x7E, 0xFF, 0x7E, 0x7F]], 2, 4, "e4m3")
    assert i.tolist() == [[[1, 3]]]
    v, i, _ = nm_prune([[0x7C00, 0x7E01, 0xFC00, 0xFE00]], 1, 4, "fp16")
    assert i.tolist() == [[[1]]]                              # NaN above Inf
    v, i, _ = nm_prune([[0x7F, 0x80, 0x81, 0x01]], 1, 4, "int8")
    assert v.tolist() == [[[0x80]]]                           # |-128| = 128 is largest
    # scaled: 1.0*4 beats 2.0*1; Inf*0 is NaN and ranks highest; 0*s ties 0
    v, i, _ = nm_prune([[0x40, 0x3C, 0x00, 0x7C]], 1, 4, "e5m2", scale=[1, 4, 255, 0])
    assert i.tolist() == [[[3]]]
    v, i, _ = nm_prune([[0x40, 0x3C, 0x00, 0x7C]], 2, 4, "e5m2", scale=[1, 4, 255, 0])
    assert i.tolist() == [[[1, 3]]]


def test_pack_indices_nvidia_2of4():
    # 2-bit indices, slot 0 in the low bits: (0,1) -> 0b0100, (1,3) -> 0b1101 ...
    idx = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])
    assert pack_indices(idx, 4).tolist() == [0x4, 0x8, 0xC, 0x9, 0xD, 0xE]
    assert unpack_indices(pack_indices(idx, 4), 2, 4).tolist() == idx.tolist()
    assert [index_bits(m) for m in (2, 3, 4, 5, 8, 9, 16)] == [1, 2, 2, 3, 3, 4, 4]


def test_expand_roundtrip_and_bad_indices():
    rng = np.random.default_rng(3)
    x = tie_heavy(rng, "bf16", (50, 32))
    v, i, d = nm_prune(x, 4, 8, "bf16")
    dense, bad = expand(v, i, 8)
    assert not bad.any() and dense.tolist() == d.tolist()
    dense, bad = expand([[[1, 2]], [[1, 2]], [[3, 4]]], [[[2, 2]], [[0, 4]], [[3, 1]]], 4)
    assert bad.tolist() == [[True], [True], [True]]
    dense, bad = expand([[[5, 6]]], [[[1, 3]]], 4)
    assert bad.tolist() == [[False]] and dense.tolist() == [[0, 5, 0, 6]]


@pytest.mark.parametrize("args,kw,msg", [
    (([[1, 2, 3, 4]], 4, 4, "e4m3"), {}, "n must be < m, got n=4, m=4"),
    (([[1, 2, 3, 4]], 0, 4, "e4m3"), {}, "n must be at least 1, got n=0"),
    (([[1, 2]], 1, 17, "e4m3"), {}, "m must be in 2..16, got m=17"),
    (([[1, 2, 3, 4]], 2, 4, "e2m1"), {},
     "fmt must be one of bf16, fp16, e4m3, e5m2, int8, got fmt='e2m1'"),
    (([[1, 2, 3, 256]], 2, 4, "e4m3"), {}, "x must be in 0..255 for e4m3, got 256"),
    (([[1, 2, 3]], 1, 2, "e4m3"), {},
     "x must have a last axis that is a multiple of m=2, got shape (1, 3)"),
    (([[1, 2, 3, 4]], 2, 4, "e4m3"), {"scale": [1, 2, 3, 256]},
     "scale must be in 0..255, got 256"),
    (([[1, 2, 3, 4]], 2, 4, "e4m3"), {"scale": [1, 2]},
     "scale of shape (2,) does not broadcast to x of shape (1, 4)"),
])
def test_bad_input(args, kw, msg):
    with pytest.raises(ParamError) as e:
        nm_prune(*args, **kw)
    assert str(e.value) == msg


# -- score keys: exhaustive against float64 scores ------------------------------------

def _rank(values):
    """Dense rank of float64 scores, NaN above everything, all NaNs tied."""
    v = np.where(np.isnan(values), np.inf, values)
    nan = np.isnan(values)
    order = np.lexsort((v, nan))
    s = np.stack([nan[order], v[order]])
    new = np.r_[True, (s[:, 1:] != s[:, :-1]).any(axis=0)]
    rank = np.empty(len(v), dtype=np.int64)
    rank[order] = np.cumsum(new)
    return rank


@pytest.mark.parametrize("fmt", FORMATS)
def test_score_keys_order_exhaustive(fmt):
    """The integer score key orders every (code, scale) exactly as the float64 score
    |x|*s does (equal keys iff equal scores): all 8-bit codes x all 256 scales; all
    16-bit codes x 12 scales."""
    from lpcores.golden.nm import score_keys
    f = get_format(fmt)
    codes = np.arange(1 << f.bits)
    for scales in ([None] + ([np.arange(256)] if f.bits == 8 else
                             [np.array([0, 1, 2, 3, 5, 7, 100, 127, 128, 129, 254, 255])])):
        if scales is None:
            c, s = codes, None
            score = np.abs(ml_decode(c, fmt))
        else:
            c = np.repeat(codes, len(scales))
            s = np.tile(scales, len(codes))
            with np.errstate(invalid="ignore"):
                score = np.abs(ml_decode(c, fmt)) * s
        keys = score_keys(c, fmt, s)
        assert (_rank(keys.astype(np.float64)) == _rank(score)).all()


# -- nm_dot: exact rational oracle on the masked dense operand ------------------------

import oracle as rational  # noqa: E402  (tests/oracle.py, independent of lpcores.golden)

from lpcores import golden  # noqa: E402
from lpcores.golden.nm import check_indices, nm_dot, sparse_linear  # noqa: E402


def _masked_rows(values, indices, m):
    """Scatter compressed groups into dense rows with +0 elsewhere (plain loops)."""
    out = []
    for vrow, irow in zip(values.tolist(), indices.tolist()):
        row = []
        for vg, ig in zip(vrow, irow):
            dense = [0] * m
            for v, i in zip(vg, ig):
                dense[i] = v
            row += dense
        out.append(row)
    return out


def _oracle_dot(a, b, fa, fb, fo, accumulate, c, lanes):
    if fa == "int8":
        def s8(v):
            return v - 256 if v >= 128 else v
        return [(sum(s8(x) * s8(y) for x, y in zip(ra, rb)) + (0 if c is None else
                 (int(c[k]) - (1 << 32) if int(c[k]) >= 1 << 31 else int(c[k]))))
                & 0xFFFFFFFF for k, (ra, rb) in enumerate(zip(a, b))]
    return [rational.dot(ra, rb, fa, fb, fo, accumulate=accumulate,
                       c=None if c is None else int(c[k]), lanes=lanes)
            for k, (ra, rb) in enumerate(zip(a, b))]


def _nm_dot_case(rng, n, m, fa, fb, K, rows, zero_rows=True):
    """Random compressed a, indices, dense b; a share of rows whose kept products are
    all -0 (the sign of the result then hangs on the dropped b), specials in b."""
    pats = np.array(list(itertools.combinations(range(m), n)))
    ix = pats[rng.integers(0, len(pats), size=(rows, K))]
    a = tie_heavy(rng, fa, (rows, K, n))
    b = tie_heavy(rng, fb, (rows, K * m))
    if zero_rows and get_format(fa).kind != "int":
        sa, sb = 1 << (get_format(fa).bits - 1), 1 << (get_format(fb).bits - 1)
        z = rng.random(rows) < 0.3
        neg = rng.random(rows) < 0.5
        bn = np.where(neg[:, None], b | sb, b)
        fbf = get_format(fb)
        if fbf.has_nan:                          # keep the zero rows finite
            bn = np.where(np.isnan(ml_decode(bn, fb)) | np.isinf(ml_decode(bn, fb)), sb, bn)
        b = np.where(z[:, None], bn, b)
        bsel = np.take_along_axis(b.reshape(rows, K, m), ix, axis=-1)
        a = np.where(z[:, None, None], np.where(bsel & sb, 0, sa), a)
    return a, ix, b


@pytest.mark.parametrize("n,m,fa,fb,fo,acc,G", [
    (2, 4, "e4m3", "e4m3", "fp32", "exact", 2),
    (4, 8, "int8", "int8", None, "exact", 1),
    (8, 16, "bf16", "bf16", "fp32", "fp", 1),
    (2, 4, "bf16", "bf16", "bf16", "fp", 2),
    (3, 5, "e5m2", "e4m3", "bf16", "exact", 2),
    (1, 2, "e4m3", "e5m2", "fp16", "fp", 4),
])
def test_nm_dot_against_rational_oracle(n, m, fa, fb, fo, acc, G):
    rng = np.random.default_rng([n, m, len(fa), len(fb)])
    K, rows = 2 * G, 300
    a, ix, b = _nm_dot_case(rng, n, m, fa, fb, K, rows)
    fof = "int32" if fa == "int8" else fo
    c = (rng.integers(0, 1 << 32, size=rows) if fa == "int8"
         else tie_heavy(rng, fo, rows))
    got = nm_dot(a, ix, b, n, m, fa, fb, fo, accumulate=acc, c=c, groups=G)
    want = _oracle_dot(_masked_rows(a, ix, m), b.tolist(), fa, fb, fof, acc, c, G * m)
    assert got.tolist() == want
    # and it is golden.dot on the masked dense operand that nm_prune-style masks give
    masked, _ = expand(a, ix, m)
    assert got.tolist() == golden.dot(masked, b, fa, fb, fo, accumulate=acc, c=c,
                                      lanes=G * m).tolist()


def test_nm_dot_dropped_positions_directed():
    """A dropped position is the term +0 * b_j: NaN for b_j = Inf/NaN, +0 for b_j >= 0
    (an all-(-0) sum then gives +0); the kept-pairs-only sum would differ there."""
    one, inf, pz, nz = 0x3F80, 0x7F80, 0x0000, 0x8000            # bf16
    # kept (0, 1); b at dropped position 2 is Inf: NaN
    r = nm_dot([[[one, one]]], [[[0, 1]]], [[one, one, inf, one]], 2, 4, "bf16", "bf16")
    assert r.tolist() == [0x7FC00000]
    # kept products -0 (+0 * -1, -0 * +1); dropped b negative: -0; one positive: +0
    r = nm_dot([[[pz, nz]]] * 2, [[[0, 1]]] * 2,
               [[0xBF80, one, 0xBF80, 0xBF80], [0xBF80, one, one, 0xBF80]], 2, 4,
               "bf16", "bf16")
    assert r.tolist() == [0x80000000, 0x00000000]
    # the kept pairs alone would give -0 in the second case
    assert golden.dot([[pz, nz]], [[0xBF80, one]], "bf16", "bf16").tolist() == [0x80000000]


def test_nm_dot_bad_input():
    with pytest.raises(ParamError) as e:
        nm_dot([[[1, 2]]], [[[2, 1]]], [[1, 2, 3, 4]], 2, 4, "e4m3", "e4m3")
    assert str(e.value) == ("indices must be strictly ascending and below m=4 in every "
                            "group, got [2, 1] at group (0, 0)")
    with pytest.raises(ParamError) as e:
        nm_dot([[[1, 2]]], [[[0, 1]]], [[1, 2, 3]], 2, 4, "e4m3", "e4m3")
    assert str(e.value) == "dense must have shape (1, 4) (K*m with K=1, m=4), got (1, 3)"
    with pytest.raises(ParamError) as e:
        nm_dot([[[1, 2]]], [[[0, 1]]], [[1, 2, 3, 4]], 2, 4, "e4m3", "e4m3",
               accumulate="fp")
    assert str(e.value) == "groups is required with accumulate='fp'"
    assert check_indices([[0, 1], [1, 1], [3, 2], [2, 5], [0, 3]], 4).tolist() == [
        False, True, True, True, False]


# -- sparse_linear: oracle selection, then the rational dot ----------------------------

@pytest.mark.parametrize("n,m,fx,fw,fo,acc,G,scaled", [
    (2, 4, "e4m3", "e4m3", "fp32", "exact", 2, False),
    (4, 8, "int8", "int8", None, "exact", 1, True),
    (8, 16, "bf16", "bf16", "fp32", "fp", 1, True),
    (1, 2, "fp16", "e5m2", "fp16", "exact", 4, False),
])
def test_sparse_linear_against_oracles(n, m, fx, fw, fo, acc, G, scaled):
    rng = np.random.default_rng([n, m, 11])
    rows, L = 200, 2 * G * m
    x = tie_heavy(rng, fx, (rows, L))
    w = tie_heavy(rng, fw, (rows, L))
    s = rng.integers(0, 256, size=L) if scaled else None
    got = sparse_linear(x, w, n, m, fx, fw, fo, accumulate=acc, scale=s, groups=G)
    _, _, masked = oracle(x, n, m, fx, scale=s)
    want = _oracle_dot(masked.tolist(), w.tolist(), fx, fw,
                       "int32" if fx == "int8" else fo, acc, None, G * m)
    assert got.tolist() == want


def test_scale_rows():
    from lpcores.golden.nm import scale_rows
    s = np.arange(24)
    assert scale_rows(s, 24, 3, 4).tolist() == [list(range(12)), list(range(12, 24))]
    for bad, msg in [(np.arange(20), "scale must hold channels=24 codes, got shape (20,)"),
                     (np.full(24, 256), "scale must be in 0..255, got 256")]:
        with pytest.raises(ParamError) as e:
            scale_rows(bad, 24, 3, 4)
        assert str(e.value) == msg
    with pytest.raises(ParamError) as e:
        scale_rows(np.ones(10), 10, 3, 4)
    assert str(e.value) == "scale must be unsigned 8-bit integer codes, got dtype float64"


INT8_HINT = " (codes are two's complement bit patterns: -1 is 255)"


@pytest.mark.parametrize("call,msg", [
    (lambda: nm_dot([[1, 1000]], [[0, 1]], [1, 1, 1, 1], 2, 4, "int8", "int8"),
     "values must be in 0..255 for int8, got 1000" + INT8_HINT),
    (lambda: nm_dot([[1, 1]], [[0, 1]], [1, 1, 1, -3], 2, 4, "int8", "int8"),
     "dense must be in 0..255 for int8, got -3" + INT8_HINT),
    (lambda: sparse_linear([1, 2, 3, 4], [1, 2, 3, 256], 2, 4, "int8", "int8"),
     "w must be in 0..255 for int8, got 256" + INT8_HINT),
    (lambda: sparse_linear([1, 2, 3, -4], [1, 2, 3, 4], 2, 4, "int8", "int8"),
     "x must be in 0..255 for int8, got -4" + INT8_HINT),
])
def test_int8_codes_are_checked(call, msg):
    with pytest.raises(ParamError) as e:
        call()
    assert str(e.value) == msg
