"""Convert: the generated Verilog against golden.convert (itself checked against
ml_dtypes in test_golden_codec.py), exhaustive for every input of <= 16 bits."""

import pytest

from lpcores.errors import ParamError
from lpcores.hdl import Convert
from lpcores.sim import runner

# (in, out, saturate, rounding, stages): every ≤16-bit input format exhaustively,
# fp32 inputs with directed + random vectors, each stage count, both overflow modes.
CASES = [
    ("fp32", "e4m3", False, "rne", 1),
    ("fp32", "e5m2", False, "rne", 0),
    ("fp32", "bf16", False, "rne", 2),
    ("fp32", "fp16", False, "rne", 1),
    ("fp32", "e2m1", False, "rne", 0),
    ("fp32", "e4m3", True, "rne", 0),
    ("fp32", "e5m2", False, "rtz", 2),
    ("bf16", "e5m2", False, "rne", 1),
    ("bf16", "e4m3", True, "rne", 2),
    ("bf16", "fp16", False, "rne", 0),
    ("fp16", "bf16", False, "rne", 1),
    ("fp16", "e3m2", False, "rne", 0),
    ("e4m3", "fp32", False, "rne", 0),
    ("e5m2", "bf16", False, "rne", 1),
    ("e5m2", "e4m3", False, "rne", 2),
    ("e4m3", "e5m2", False, "rtz", 0),
    ("e2m1", "bf16", False, "rne", 0),
    ("e3m2", "fp16", False, "rne", 1),
    ("e2m3", "e4m3", False, "rne", 0),
    ("e4m3", "e2m1", True, "rne", 1),
]


# on Icarus by default: one of each input width class, both rounding and
# overflow modes, every stage count
ICARUS = {0, 8, 11, 13, 15, 18}


@pytest.mark.sim
@pytest.mark.parametrize("fin,fout,sat,rnd,stages,on_icarus",
                         [c + (k in ICARUS,) for k, c in enumerate(CASES)],
                         ids=[f"{a}-{b}{'-sat' if s else ''}-{r}-s{n}"
                              for a, b, s, r, n in CASES])
def test_convert_rtl(fin, fout, sat, rnd, stages, on_icarus, sim, build_root,
                     icarus_subset):
    icarus_subset(on_icarus)
    core = Convert(in_fmt=fin, out_fmt=fout, saturate=sat, rounding=rnd, stages=stages)
    res = runner.run(core, "lpcores.sim.convert", sim=sim, seed=20261122,
                     options={"directed": 60000}, build_root=build_root)
    runner.assert_passes(res)
    assert res.tests == 3


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("fout", ["fp16", "bf16"])
def test_convert_rtl_every_directed_point(fout, sim, build_root):
    """fp32 into a 16-bit format: every midpoint and neighbour (about 400k points)."""
    core = Convert(in_fmt="fp32", out_fmt=fout, stages=1)
    res = runner.run(core, "lpcores.sim.convert", sim=sim, seed=20261122,
                     build_root=build_root / "all-directed")
    runner.assert_passes(res)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(in_fmt="fp8", out_fmt="e4m3"),
     "in_fmt must be one of fp32, fp16, bf16, e5m2, e4m3, e3m2, e2m3, e2m1, got in_fmt='fp8'"),
    (dict(in_fmt="fp32", out_fmt="int8"),
     "out_fmt must be one of fp32, fp16, bf16, e5m2, e4m3, e3m2, e2m3, e2m1, got out_fmt='int8'"),
    (dict(in_fmt="e4m3", out_fmt="e4m3"),
     "out_fmt must differ from in_fmt, got in_fmt='e4m3', out_fmt='e4m3'"),
    (dict(in_fmt="fp32", out_fmt="e4m3", stages=-1),
     "stages must be at least 0, got stages=-1"),
    (dict(in_fmt="fp32", out_fmt="e4m3", stages=3),
     "stages must be in 0..2 for convert (it has 2 cut points), got stages=3"),
    (dict(in_fmt="fp32", out_fmt="e4m3", rounding="rna"),
     "rounding must be one of rne, rtz, got rounding='rna'"),
    (dict(in_fmt="fp32", out_fmt="e4m3", saturate=1),
     "saturate must be True or False, not 1"),
])
def test_convert_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        Convert(**kwargs)
    assert str(e.value) == msg
