"""golden.dot against the exact rational oracle (tests/oracle.py)."""

import zlib
import numpy as np
import pytest

import oracle
from lpcores import golden
from lpcores.errors import ParamError
from lpcores.formats import get_format
from lpcores.sim.fma import special_codes


def _elements(rng, fmt, shape, specials=0.0):
    f = get_format(fmt)
    x = rng.integers(0, 1 << f.bits, size=shape)
    vals = golden.decode(x.ravel(), fmt).reshape(shape)
    bad = ~np.isfinite(vals) & (rng.random(shape) >= specials)
    return np.where(bad, rng.integers(0, 1 << (f.bits - 2), size=shape), x)


CASES = [("e4m3", "e4m3", "fp32", "exact", 4), ("e4m3", "e4m3", "fp32", "fp", 4),
         ("e5m2", "e5m2", "fp32", "exact", 16), ("e2m1", "e4m3", "fp16", "exact", 8),
         ("bf16", "bf16", "fp32", "fp", 4), ("bf16", "bf16", "fp32", "exact", 2),
         ("e4m3", "e5m2", "bf16", "fp", 1), ("e4m3", "e4m3", "fp32", "fp", 32)]


@pytest.mark.parametrize("fa,fb,fo,acc,lanes", CASES)
@pytest.mark.parametrize("with_c", [False, True])
def test_dot_random_vs_oracle(fa, fb, fo, acc, lanes, with_c):
    rng = np.random.default_rng(zlib.crc32(repr((fa, fb, fo, acc, lanes, with_c)).encode()))
    for n_beats in (1, 3, 8):
        n = n_beats * lanes
        a = _elements(rng, fa, (60, n), specials=0.01)
        b = _elements(rng, fb, (60, n), specials=0.01)
        # cancellation: the second half of some rows negates the first
        h = n // 2
        if h:
            a[::3, h:2 * h] = a[::3, :h] ^ (1 << (get_format(fa).bits - 1))
            b[::3, h:2 * h] = b[::3, :h]
        c = _elements(rng, fo, (60,), specials=0.02) if with_c else None
        got = golden.dot(a, b, fa, fb, fo, accumulate=acc, c=c, lanes=lanes)
        for i in range(60):
            exp = oracle.dot(a[i], b[i], fa, fb, fo, acc, None if c is None else c[i],
                             lanes)
            assert int(got[i]) == exp, (fa, fb, fo, acc, lanes, i, hex(int(got[i])),
                                        hex(exp))


def test_dot_lanes1_fp_is_an_fma_chain():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, size=(200, 12))
    b = rng.integers(0, 256, size=(200, 12))
    a = np.where((a & 0x7F) == 0x7F, 0x38, a)
    b = np.where((b & 0x7F) == 0x7F, 0x38, b)
    got = golden.dot(a, b, "e4m3", "e4m3", "fp32", accumulate="fp", lanes=1)
    acc = np.full(200, 0x80000000)
    for j in range(12):
        acc = golden.fma(a[:, j], b[:, j], acc, "e4m3", "e4m3", "fp32").astype(np.int64)
    assert np.array_equal(got, acc)


def test_dot_extremes_and_specials():
    # products near the accumulator MSB and LSB, cancelling: max*max - max*max + tiny
    f = get_format("e4m3")
    big, tiny = f.max_mag_code, 0x01
    a = np.array([[big, big | 0x80, tiny]])
    b = np.array([[big, big, tiny]])
    assert golden.decode(golden.dot(a, b, "e4m3", "e4m3", "fp32"), "fp32")[0] == 2.0 ** -18
    sp = special_codes("e4m3")
    g = np.array([[x, y] for x in sp for y in sp])
    got = golden.dot(g, np.full_like(g, 0x38), "e4m3", "e4m3", "fp32")
    for row, r in zip(g, got):
        assert int(r) == oracle.dot(row, [0x38, 0x38], "e4m3", "e4m3", "fp32")


def test_int8_every_product_and_long_sums():
    x = np.arange(256)
    a, b = (v.ravel() for v in np.meshgrid(x, x))
    got = golden.dot(a[:, None], b[:, None], "int8", "int8", "int32").view(np.int32)
    assert np.array_equal(got, a.astype(np.uint8).view(np.int8).astype(np.int64)
                          * b.astype(np.uint8).view(np.int8))
    rng = np.random.default_rng(5)
    A = rng.integers(0, 256, size=(100, 4096))
    B = rng.integers(0, 256, size=(100, 4096))
    c = rng.integers(-(1 << 30), 1 << 30, size=100)
    ref = (A.astype(np.uint8).view(np.int8).astype(np.int64)
           * B.astype(np.uint8).view(np.int8)).sum(-1) + c
    got = golden.dot(A, B, "int8", "int8", "int32", c=c & 0xFFFFFFFF).view(np.int32)
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(accumulate="kahan"), "accumulate must be one of exact, fp, got accumulate='kahan'"),
    (dict(accumulate="fp"), "lanes is required with accumulate='fp'"),
    (dict(accumulate="fp", lanes=3), "the dot length must be a multiple of lanes, got n=4, lanes=3"),
])
def test_bad_input(kwargs, msg):
    with pytest.raises(ParamError) as e:
        golden.dot(np.zeros((1, 4), int), np.zeros((1, 4), int), "e4m3", "e4m3", "fp32",
                   **kwargs)
    assert str(e.value) == msg
    with pytest.raises(ParamError) as e:
        golden.dot([[0]], [[0]], "int8", "e4m3")
    assert str(e.value) == "int8 elements multiply only int8 elements, got a_fmt='int8', b_fmt='e4m3'"


INT8_HINT = " (codes are two's complement bit patterns: -1 is 255)"


@pytest.mark.parametrize("a,b,msg", [
    ([1000, 1], [1, 1], "a must be in 0..255 for int8, got 1000" + INT8_HINT),
    ([-1, 1], [1, 1], "a must be in 0..255 for int8, got -1" + INT8_HINT),
    ([1, 1], [1, 256], "b must be in 0..255 for int8, got 256" + INT8_HINT),
])
def test_int8_codes_are_checked(a, b, msg):
    # SPEC §7: golden models reject codes wider than their format (1000 used to be
    # computed as 744, -1 as -1)
    with pytest.raises(ParamError) as e:
        golden.dot(a, b, "int8", "int8")
    assert str(e.value) == msg
    assert int(golden.dot([255, 2], [255, 3], "int8", "int8")) == 7      # -1*-1 + 2*3


def test_float_codes_name_the_argument():
    with pytest.raises(ParamError) as e:
        golden.dot([1, 1], [1, 300], "e4m3", "e4m3")
    assert str(e.value) == "b must be in 0..255 for e4m3, got 300"
