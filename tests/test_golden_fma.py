"""golden.fma against the exact rational oracle (tests/oracle.py), whose decode and
rounding are themselves held against ml_dtypes here."""

import zlib
import ml_dtypes
import numpy as np
import pytest

import oracle
from lpcores import golden
from lpcores.errors import ParamError
from lpcores.formats import get_format
from lpcores.sim.fma import biased_addends, special_codes


def _np(fmt):
    return {"fp32": np.float32, "fp16": np.float16}.get(fmt) or \
        getattr(ml_dtypes, get_format(fmt).mldtype)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "bf16", "fp16", "e2m1", "e3m2", "e2m3"])
def test_oracle_decode_matches_ml_dtypes(fmt):
    f = get_format(fmt)
    codes = np.arange(1 << f.bits)
    ref = codes.astype(np.uint8 if f.bits <= 8 else np.uint16).view(_np(fmt)).astype(float)
    got = np.array([oracle.as_float(c, fmt) for c in codes])
    assert np.array_equal(got, ref, equal_nan=True)


@pytest.mark.parametrize("fmt", ["fp32", "bf16", "fp16"])
def test_oracle_rounding_matches_ml_dtypes(fmt):
    from fractions import Fraction
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(3000) * np.exp2(rng.integers(-150, 120, 3000))).astype(np.float32)
    if fmt == "fp32":
        x = x.astype(np.float64) * (1 + rng.standard_normal(3000) * 2.0 ** -30)
    with np.errstate(all="ignore"):
        ref = x.astype(_np(fmt)).view(np.uint32 if fmt == "fp32" else np.uint16)
    for v, r in zip(x, ref):
        got = oracle.encode(int(np.signbit(v)), Fraction(abs(float(v))), fmt)
        assert got == int(r), (v, hex(got), hex(int(r)))


def _check(a, b, c, fa, fb, fc, rounding="rne"):
    got = golden.fma(a, b, c, fa, fb, fc, rounding=rounding)
    for k in range(len(a)):
        exp = oracle.fma(a[k], b[k], c[k], fa, fb, fc, rounding)
        assert int(got[k]) == exp, (
            f"fma({fa} {a[k]:#x}, {fb} {b[k]:#x}, {fc} {c[k]:#x}) {rounding}: "
            f"golden {int(got[k]):#x}, oracle {exp:#x}")


@pytest.mark.parametrize("fa,fb,fc,rounding", [
    ("e4m3", "e4m3", "fp32", "rne"), ("e4m3", "e4m3", "bf16", "rne"),
    ("e4m3", "e4m3", "fp16", "rtz"), ("e5m2", "e5m2", "fp32", "rne"),
    ("e4m3", "e5m2", "fp16", "rne"), ("e2m1", "e3m2", "bf16", "rne"),
    ("bf16", "bf16", "fp32", "rne"), ("bf16", "bf16", "bf16", "rtz"),
    ("fp16", "e2m3", "fp16", "rne"),
])
def test_fma_biased_random(fa, fb, fc, rounding):
    """FloPoCo-style biased addends: cancellation, exponent difference 0/1, sticky."""
    rng = np.random.default_rng(zlib.crc32(repr((fa, fb, fc, rounding)).encode()))
    n = 4000
    a = rng.integers(0, 1 << get_format(fa).bits, n)
    b = rng.integers(0, 1 << get_format(fb).bits, n)
    c = biased_addends(rng, a, b, {"a_fmt": fa, "b_fmt": fb, "acc_fmt": fc})
    _check(a, b, c, fa, fb, fc, rounding)


def test_fma_every_e4m3_product_sampled_addends():
    rng = np.random.default_rng(3)
    a, b = (x.ravel() for x in np.meshgrid(np.arange(256), np.arange(256)))
    c = biased_addends(rng, a, b, {"a_fmt": "e4m3", "b_fmt": "e4m3", "acc_fmt": "fp32"})
    idx = rng.choice(len(a), 12000, replace=False)
    _check(a[idx], b[idx], c[idx], "e4m3", "e4m3", "fp32")


@pytest.mark.parametrize("fa", ["e4m3", "e5m2", "bf16"])
@pytest.mark.parametrize("fb", ["e4m3", "e5m2", "bf16"])
@pytest.mark.parametrize("fc", ["fp32", "fp16", "bf16"])
def test_fma_special_grid(fa, fb, fc):
    g = [x.ravel() for x in np.meshgrid(special_codes(fa), special_codes(fb),
                                        special_codes(fc), indexing="ij")]
    _check(*g, fa, fb, fc)


def test_fma_signed_zero_rules():
    # (+0)*(+1) + (-0) = +0 ; (-0)*(+1) + (-0) = -0 ; 1*1 + (-1) = +0 (cancellation)
    a = [0x00, 0x80, 0x38]
    b = [0x38, 0x38, 0x38]
    c = [0x80000000, 0x80000000, 0xBF800000]
    assert golden.fma(a, b, c, "e4m3", "e4m3", "fp32").tolist() == [0, 0x80000000, 0]


def test_fma_bad_formats():
    with pytest.raises(ParamError) as e:
        golden.fma([0], [0], [0], "e4m3", "e4m3", "e4m3")
    assert str(e.value) == "acc_fmt must be one of fp32, fp16, bf16, got acc_fmt='e4m3'"


def test_biased_addends_warn_about_nothing():
    # the FMA testbench's addends come from a*b in float64: Inf * 0 must not print a
    # RuntimeWarning into the default test run
    import warnings

    import numpy as np

    from lpcores.sim.fma import biased_addends, special_codes
    a = special_codes("e4m3")
    b = special_codes("e5m2")
    A, B = np.meshgrid(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = biased_addends(np.random.default_rng(1), A.ravel(), B.ravel(),
                           {"a_fmt": "e4m3", "b_fmt": "e5m2", "acc_fmt": "fp32"})
    assert len(c) == A.size
