"""MXQuant: the generated Verilog against golden.mx_quantize (itself checked against
ml_dtypes and microxcaling's semantics in test_golden_mx.py)."""

import json
import pytest

from lpcores.errors import ParamError
from lpcores.hdl.base import generate
from lpcores.hdl.mxquant import MXQuant
from lpcores.sim import runner
from lpcores.sim.tools import lint


# (kwargs, testbench options, in the default run?)
CASES = [
    (dict(in_fmt="fp32", elem_fmt="e4m3", lanes=8, stages=1), {}, True),
    (dict(in_fmt="bf16", elem_fmt="e2m1", lanes=4, rounding="away", stages=0),
     {"blocks": 300}, True),
    (dict(in_fmt="fp32", elem_fmt="int8", lanes=32, stages=2), {}, False),
    (dict(in_fmt="fp32", elem_fmt="e5m2", lanes=16, rounding="away", stages=2), {}, False),
    (dict(in_fmt="fp32", elem_fmt="e3m2", lanes=32, stages=0), {}, False),
    (dict(in_fmt="fp32", elem_fmt="e2m3", lanes=2, stages=1), {}, False),
    (dict(in_fmt="fp32", elem_fmt="e2m1", lanes=32, rounding="away", stages=1), {}, False),
    (dict(in_fmt="fp32", elem_fmt="e4m3", lanes=1, rounding="away", stages=2),
     {"blocks": 200}, False),
    (dict(in_fmt="bf16", elem_fmt="int8", lanes=8, rounding="away", stages=1), {}, False),
    (dict(in_fmt="bf16", elem_fmt="e4m3", lanes=32, stages=0), {}, False),
]
# Icarus is slow on 32-element blocks: it runs the one small configuration
ICARUS = 1


def _id(kw):
    return (f"{kw['in_fmt']}-{kw['elem_fmt']}-l{kw['lanes']}-"
            f"{kw.get('rounding', 'rne')}-s{kw['stages']}")


@pytest.mark.sim
@pytest.mark.parametrize(
    "idx", [pytest.param(i, id=_id(c[0]), marks=() if c[2] else pytest.mark.slow)
            for i, c in enumerate(CASES)])
def test_mxquant_rtl(idx, sim, build_root):
    kw, opts, _ = CASES[idx]
    if sim == "icarus" and idx != ICARUS:
        pytest.skip("Icarus runs one small configuration (bf16-e2m1-l4)")
    core = MXQuant(**kw)
    res = runner.run(core, "lpcores.sim.mxquant", sim=sim, seed=4242, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)
    assert res.tests == 3


def test_mxquant_sidecar_and_lint(tmp_path):
    core = MXQuant(in_fmt="bf16", elem_fmt="e2m1", lanes=8, rounding="away", stages=2)
    v, j = generate(core, tmp_path)
    ok, out = lint(v)
    assert ok, out
    side = json.loads(j.read_text())
    assert side["module"] == "mxquant_bf16_e2m1_l8_away_s2"
    assert side["latency"] == 3 and side["beats_per_result"] == 4
    fi, fo = side["ports"]["i"]["fields"], side["ports"]["o"]["fields"]
    assert [f["name"] for f in fi] == [f"x{k}" for k in range(8)]
    assert all(f["width"] == 16 and f["format"] == "bf16" for f in fi)
    assert [f["name"] for f in fo] == [f"e{k}" for k in range(32)] + ["scale"]
    assert fo[-1] == {"name": "scale", "offset": 128, "width": 8, "format": "e8m0"}


@pytest.mark.parametrize("kwargs,msg", [
    (dict(in_fmt="fp16", elem_fmt="e4m3"),
     "in_fmt must be one of fp32, bf16, got in_fmt='fp16'"),
    (dict(elem_fmt="fp16"),
     "elem_fmt must be one of e4m3, e5m2, e3m2, e2m3, e2m1, int8, got elem_fmt='fp16'"),
    (dict(elem_fmt="e4m3", lanes=12),
     "lanes must divide 32 (1, 2, 4, 8, 16 or 32), got lanes=12"),
    (dict(elem_fmt="e4m3", lanes=64), "lanes must be in 1..32, got lanes=64"),
    (dict(elem_fmt="e4m3", rounding="rtz"),
     "rounding must be one of rne, away, got rounding='rtz'"),
    (dict(elem_fmt="e4m3", stages=3),
     "stages must be in 0..2 for mxquant (it has 2 cut points), got stages=3"),
])
def test_mxquant_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        MXQuant(**kwargs)
    assert str(e.value) == msg
