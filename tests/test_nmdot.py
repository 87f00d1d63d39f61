"""NMDot: the generated Verilog against golden.nm_dot, which is golden.dot on the
masked dense operand (checked against an exact rational oracle in
test_golden_nm.py): the format pairs e4m3, int8 (W8A8, int8 x int8 -> int32) and
bf16 at 2:4, 4:8 and 8:16, odd ratios, both accumulation modes, invalid indices."""

import re

import pytest
from amaranth.back import rtlil

from lpcores.errors import ParamError
from lpcores.hdl.dot import Dot
from lpcores.hdl.nm import NMDot
from lpcores.sim import runner

from test_nmprune import need_sim, sim_params

SLOW = pytest.mark.slow

E4M3 = dict(a_fmt="e4m3", b_fmt="e4m3")
INT8 = dict(a_fmt="int8", b_fmt="int8")
BF16 = dict(a_fmt="bf16", b_fmt="bf16", accumulate="fp")

# (kwargs, testbench options[, marks])
CASES = [
    (dict(n=2, m=4, **E4M3, groups=4, max_terms=64, addend=True, stages=2), {}),
    (dict(n=4, m=8, **INT8, groups=2, max_terms=128, addend=True, stages=1), {}),
    (dict(n=3, m=5, **BF16, groups=1, max_terms=48, addend=True, stages=1), {}),
    (dict(n=8, m=16, a_fmt="e5m2", b_fmt="e4m3", out_fmt="bf16", groups=1, max_terms=64,
          stages=0), {}),
    (dict(n=8, m=16, **E4M3, groups=2, max_terms=256, stages=3), {}, SLOW),
    (dict(n=4, m=8, **E4M3, groups=2, max_terms=64, accumulate="fp", out_fmt="fp16",
          stages=1), {}, SLOW),
    (dict(n=2, m=4, **INT8, groups=8, max_terms=256, stages=0), {}, SLOW),
    (dict(n=8, m=16, **INT8, groups=1, max_terms=64, addend=True, stages=2), {}, SLOW),
    (dict(n=2, m=4, **BF16, groups=4, max_terms=64, addend=True, rounding="rtz",
          stages=2), {}, SLOW),
    (dict(n=4, m=8, **BF16, groups=2, max_terms=64, stages=0), {}, SLOW),
    (dict(n=8, m=16, **BF16, groups=1, max_terms=64, addend=True, stages=1), {}, SLOW),
    (dict(n=3, m=5, a_fmt="e5m2", b_fmt="e4m3", out_fmt="bf16", groups=2, max_terms=48,
          stages=0), {}, SLOW),
    (dict(n=1, m=2, a_fmt="e2m1", b_fmt="e4m3", groups=4, max_terms=64, stages=1), {},
     SLOW),
]

ICARUS = [
    (dict(n=2, m=4, **E4M3, groups=2, max_terms=32, addend=True, stages=1), {"dots": 60}),
]


def _id(kw, opts, *marks):
    return (f"{kw['n']}of{kw['m']}-{kw['a_fmt']}x{kw['b_fmt']}-g{kw['groups']}-"
            f"{kw.get('accumulate', 'exact')}{'-c' if kw.get('addend') else ''}"
            f"{'-rtz' if kw.get('rounding') == 'rtz' else ''}-s{kw['stages']}")


def pytest_generate_tests(metafunc):
    if "simulator" in metafunc.fixturenames:
        metafunc.parametrize("simulator,kw,opts",
                             sim_params(metafunc.config, CASES, ICARUS, _id))


@pytest.mark.sim
def test_nmdot_rtl(simulator, kw, opts, request, build_root):
    need_sim(request.config, simulator)
    core = NMDot(**kw)
    res = runner.run(core, "lpcores.sim.nmdot", sim=simulator, seed=77, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)
    assert res.tests == 3


def _muls(core):
    # a significand product is an inferred $mul, or (up to 5x5 bits, hdl/fp.py's
    # multiply) a partial-product adder tree in LUTs whose result is `<name>_pp_sum`
    il = rtlil.convert(core, name="t")
    return (len(re.findall(r"^\s*cell \$mul ", il, re.M))
            + len(re.findall(r"^\s*wire width \d+ \\\S*_pp_sum$", il, re.M)))


@pytest.mark.parametrize("fmts,ratios", [
    (E4M3, ((2, 4, 4), (8, 16, 1), (1, 2, 8))),
    (INT8, ((2, 4, 4), (8, 16, 1), (3, 5, 2))),
    pytest.param(BF16, ((1, 2, 2),), marks=SLOW),     # wide bf16 beats: slow to elaborate
], ids=["e4m3", "int8", "bf16"])
def test_nmdot_multipliers(fmts, ratios):
    """n multipliers per group, where the dense Dot of the same width has m."""
    for n, m, g in ratios:
        assert _muls(NMDot(n=n, m=m, groups=g, **fmts)) == g * n
        assert _muls(Dot(lanes=g * m, **fmts)) == g * m


def test_nmdot_interface():
    core = NMDot(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", groups=2, addend=True, stages=1)
    assert core.module_name == "nmdot_2of4_e4m3_e4m3_fp32_g2_exact_t1024_c_s1"
    ins = [(f.name, f.width) for f in core.in_fields]
    assert ins == [("a0_0", 8), ("a0_1", 8), ("a1_0", 8), ("a1_1", 8), ("idx0", 4),
                   ("idx1", 4)] + [(f"b{g}_{j}", 8) for g in range(2) for j in range(4)] \
        + [("c", 32), ("last", 1)]
    assert [f.name for f in core.out_fields] == ["r", "overflow", "bad_index"]
    assert core.latency == 2 and core.sidecar()["multipliers"] == 4
    w8 = NMDot(n=8, m=16, a_fmt="int8", b_fmt="int8", groups=1, check=False)
    assert w8.module_name == "nmdot_8of16_int8_int8_int32_g1_exact_t1024_nc_s0"
    assert [f.name for f in w8.out_fields] == ["r", "overflow"]
    assert [f.width for f in w8.in_fields if f.name == "idx0"] == [32]


@pytest.mark.parametrize("kwargs,msg", [
    (dict(n=4, m=4, a_fmt="e4m3", b_fmt="e4m3"), "n must be < m, got n=4, m=4"),
    (dict(n=0, m=4, a_fmt="e4m3", b_fmt="e4m3"), "n must be at least 1, got n=0"),
    (dict(n=2, m=17, a_fmt="e4m3", b_fmt="e4m3"), "m must be in 2..16, got m=17"),
    (dict(n=8, m=16, a_fmt="e4m3", b_fmt="e4m3", groups=9),
     "groups*n must be at most 64 (Dot's lanes), got groups=9, n=8"),
    (dict(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", groups=0),
     "groups must be in 1..64, got groups=0"),
    (dict(n=2, m=4, a_fmt="fp8", b_fmt="e4m3"),
     "a_fmt must be one of fp32, fp16, bf16, e5m2, e4m3, e3m2, e2m3, e2m1, int8, "
     "got a_fmt='fp8'"),
    (dict(n=2, m=4, a_fmt="int8", b_fmt="e4m3"),
     "int8 elements multiply only int8 elements, got a_fmt='int8', b_fmt='e4m3'"),
    (dict(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", check="yes"),
     "check must be True or False, not 'yes'"),
    (dict(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", accumulate="fp", stages=3),
     "stages must be in 0..2 for dot (it has 2 cut points), got stages=3"),
])
def test_nmdot_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        NMDot(**kwargs)
    assert str(e.value) == msg


@pytest.mark.parametrize("kw", [
    dict(n=2, m=4, **E4M3, groups=2, addend=True, stages=3),
    dict(n=3, m=5, **INT8, groups=1, stages=1),
    dict(n=1, m=2, a_fmt="e5m2", b_fmt="bf16", accumulate="fp", out_fmt="bf16", groups=2,
         check=False),
], ids=["2of4-e4m3", "3of5-int8", "1of2-fp-nocheck"])
def test_nmdot_generated(kw, tmp_path):
    from test_nmprune import check_generated
    check_generated(lambda: NMDot(**kw), tmp_path)
