"""SparseLinear (NMPrune -> NMDot in one core) end to end: the generated Verilog
against golden.sparse_linear (checked against a stable-sort + exact-rational oracle
in test_golden_nm.py), with run-time scale loads, W8A8 and minifloat paths."""

import pytest

from lpcores.errors import ParamError
from lpcores.hdl.nm import SparseLinear
from lpcores.sim import runner

from test_nmprune import need_sim, sim_params

SLOW = pytest.mark.slow

CASES = [
    (dict(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3", groups=2, max_terms=64, addend=True,
          prune_stages=1, stages=2), {}),
    # Amber-Pruner-style W8A8: scaled scores, int8 x int8 -> int32
    (dict(n=4, m=8, x_fmt="int8", w_fmt="int8", groups=2, scaled=True, channels=48,
          max_terms=128, addend=True, prune_stages=2, stages=1), {}),
    (dict(n=8, m=16, x_fmt="bf16", w_fmt="bf16", groups=1, accumulate="fp", scaled=True,
          channels=32, max_terms=64, stages=1), {}, SLOW),
    (dict(n=2, m=4, x_fmt="e5m2", w_fmt="e4m3", out_fmt="bf16", groups=4, max_terms=64,
          prune_stages=0, stages=0), {}, SLOW),
    (dict(n=1, m=2, x_fmt="fp16", w_fmt="fp16", groups=4, accumulate="fp",
          max_terms=64, addend=True, prune_stages=1, stages=1), {}, SLOW),
]

ICARUS = [
    (dict(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3", groups=2, scaled=True, channels=16,
          max_terms=32, addend=True, prune_stages=1, stages=1), {"dots": 50}),
]


def _id(kw, opts, *marks):
    return (f"{kw['n']}of{kw['m']}-{kw['x_fmt']}x{kw['w_fmt']}-g{kw['groups']}"
            f"{'-scaled' if kw.get('scaled') else ''}-p{kw.get('prune_stages', 0)}"
            f"-s{kw['stages']}")


def pytest_generate_tests(metafunc):
    if "simulator" in metafunc.fixturenames:
        metafunc.parametrize("simulator,kw,opts",
                             sim_params(metafunc.config, CASES, ICARUS, _id))


@pytest.mark.sim
def test_sparselinear_rtl(simulator, kw, opts, request, build_root):
    need_sim(request.config, simulator)
    core = SparseLinear(**kw)
    res = runner.run(core, "lpcores.sim.nmlinear", sim=simulator, seed=99, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)
    assert res.tests == 3


def test_sparselinear_interface():
    core = SparseLinear(n=2, m=4, x_fmt="int8", w_fmt="int8", groups=1, scaled=True,
                        addend=True, prune_stages=1, stages=2)
    assert core.module_name == "sparselinear_2of4_int8_int8_int32_g1_exact_t1024_sc4_c_p1_s2"
    assert [f.name for f in core.in_fields] == [
        "x0_0", "x0_1", "x0_2", "x0_3", "w0_0", "w0_1", "w0_2", "w0_3", "load", "c", "last"]
    assert [f.name for f in core.out_fields] == ["r", "overflow"]
    assert core.latency == 2 + 3
    assert core.sidecar()["multipliers"] == 2


@pytest.mark.parametrize("kwargs,msg", [
    (dict(n=2, m=2, x_fmt="e4m3", w_fmt="e4m3"), "n must be < m, got n=2, m=2"),
    (dict(n=2, m=4, x_fmt="e2m1", w_fmt="e4m3"),
     "fmt must be one of bf16, fp16, e4m3, e5m2, int8, got fmt='e2m1'"),
    (dict(n=2, m=4, x_fmt="int8", w_fmt="bf16"),
     "int8 elements multiply only int8 elements, got a_fmt='int8', b_fmt='bf16'"),
    (dict(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3", groups=2, scaled=True, channels=12),
     "channels must be a multiple of groups*m = 8, got channels=12"),
])
def test_sparselinear_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        SparseLinear(**kwargs)
    assert str(e.value) == msg


def test_sparselinear_generated(tmp_path):
    from test_nmprune import check_generated
    check_generated(lambda: SparseLinear(n=2, m=4, x_fmt="int8", w_fmt="int8", groups=2,
                                         scaled=True, addend=True, prune_stages=2,
                                         stages=1), tmp_path)
