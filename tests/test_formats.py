"""The format registry against ml_dtypes (the independent oracle)."""

import ml_dtypes
import numpy as np
import pytest

from lpcores.errors import ParamError
from lpcores.formats import FORMATS, get_format


def _np_type(f):
    return np.dtype(f.mldtype) if f.mldtype in ("float32", "float16", "int8") \
        else np.dtype(getattr(ml_dtypes, f.mldtype))


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.kind != "int"])
def test_limits_match_ml_dtypes(name):
    f = FORMATS[name]
    fi = ml_dtypes.finfo(_np_type(f))
    assert f.max_value == float(fi.max)
    assert f.bits == fi.bits
    if f.kind == "float":
        assert 2.0 ** f.emin == float(fi.smallest_normal)
        assert 2.0 ** (f.emin - f.man_bits) == float(fi.smallest_subnormal)


@pytest.mark.parametrize("name", [n for n, f in FORMATS.items() if f.has_nan])
def test_canonical_nan_is_nan(name):
    f = FORMATS[name]
    code = np.array([f.nan_code], dtype=np.uint8 if f.bits <= 8 else
                    (np.uint16 if f.bits <= 16 else np.uint32))
    assert np.isnan(code.view(_np_type(f)).astype(np.float64))[0]
    if f.specials == "ieee":
        assert f.nan_code == f.inf_code | (1 << (f.man_bits - 1))     # quiet, positive


def test_spec_canonical_nans():
    assert {n: hex(FORMATS[n].nan_code) for n in ("fp32", "bf16", "fp16", "e5m2", "e4m3")} \
        == {"fp32": "0x7fc00000", "bf16": "0x7fc0", "fp16": "0x7e00", "e5m2": "0x7e",
            "e4m3": "0x7f"}


def test_unknown_format():
    with pytest.raises(ParamError) as e:
        get_format("fp8", param="a_fmt")
    assert str(e.value) == ("a_fmt must be one of fp32, fp16, bf16, e5m2, e4m3, e3m2, "
                            "e2m3, e2m1, int8, e8m0, got a_fmt='fp8'")
    with pytest.raises(ParamError) as e:
        get_format("int8", param="acc_fmt", allowed=("fp32", "bf16"))
    assert str(e.value) == "acc_fmt must be one of fp32, bf16, got acc_fmt='int8'"
