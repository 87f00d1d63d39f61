"""Dot: the generated Verilog against golden.dot (itself checked against an exact
rational oracle in test_golden_dot.py)."""

import pytest

from lpcores.errors import ParamError
from lpcores.hdl.dot import Dot
from lpcores.sim import runner


# (kwargs, testbench options)
CASES = [
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=4, max_terms=64, addend=True, stages=2), {}),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", max_terms=16,
          addend=True, stages=1), {}),
    (dict(a_fmt="e5m2", b_fmt="e5m2", lanes=16, max_terms=256, stages=1), {}),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=32, max_terms=512, stages=3), {"dots": 200}),
    (dict(a_fmt="bf16", b_fmt="bf16", lanes=4, accumulate="fp", max_terms=64,
          addend=True, stages=2), {}),
    (dict(a_fmt="e2m1", b_fmt="e4m3", out_fmt="fp16", lanes=16, max_terms=128,
          accumulate="exact", stages=0), {}),
    (dict(a_fmt="e4m3", b_fmt="e5m2", out_fmt="bf16", lanes=4, accumulate="fp",
          max_terms=64, rounding="rtz", stages=0), {}),
    (dict(a_fmt="int8", b_fmt="int8", lanes=8, max_terms=64, addend=True, stages=3), {}),
    (dict(a_fmt="int8", b_fmt="int8", lanes=4, max_terms=8, addend=True, stages=0),
     {"mode": "int8-exhaustive"}),
]


def _id(kw, opts):
    return (f"{kw['a_fmt']}x{kw['b_fmt']}-l{kw['lanes']}-"
            f"{kw.get('accumulate', 'exact')}-s{kw['stages']}"
            + ("-exhaustive" if opts else ""))


ICARUS = {0, 4, 7}          # on Icarus by default: e4m3 exact, bf16 fp, int8


@pytest.mark.sim
@pytest.mark.parametrize("kw,opts,on_icarus",
                         [c + (k in ICARUS,) for k, c in enumerate(CASES)],
                         ids=[_id(*c) for c in CASES])
def test_dot_rtl(kw, opts, on_icarus, sim, build_root, icarus_subset):
    icarus_subset(on_icarus)
    core = Dot(**kw)
    res = runner.run(core, "lpcores.sim.dot", sim=sim, seed=11, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(a_fmt="int8", b_fmt="e4m3"),
     "int8 elements multiply only int8 elements, got a_fmt='int8', b_fmt='e4m3'"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=65), "lanes must be in 1..64, got lanes=65"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=0), "lanes must be in 1..64, got lanes=0"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", max_terms=0), "max_terms must be at least 1, got max_terms=0"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", accumulate="kahan"),
     "accumulate must be one of exact, fp, got accumulate='kahan'"),
    (dict(a_fmt="int8", b_fmt="int8", accumulate="fp"),
     "accumulate must be exact for int8 elements, got accumulate='fp'"),
    (dict(a_fmt="int8", b_fmt="int8", out_fmt="fp32"),
     "out_fmt must be int32 for int8 elements, got out_fmt='fp32'"),
    (dict(a_fmt="int8", b_fmt="int8", max_terms=1 << 20),
     "max_terms must be at most 131071 for int8 (int32 accumulator), got max_terms=1048576"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", accumulate="fp", stages=3),
     "stages must be in 0..2 for dot (it has 2 cut points), got stages=3"),
])
def test_dot_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        Dot(**kwargs)
    assert str(e.value) == msg
