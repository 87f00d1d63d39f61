"""NewtonStep (IterNorm's fused first update, fuse=True): the generated Verilog against
golden.iternorm.fused_update (exact rationals; held against rn24 of the exact value
and whole vectors against the exact model in test_golden_iternorm.py)."""

import pytest

from lpcores.errors import ParamError
from lpcores.hdl.newton import NewtonStep
from lpcores.sim import runner

CASES = [
    (1, dict(fmax=100), True),                  # lam = 1/2 at 100 MHz (IterNorm's)
    # lam = 1, the table's cut; s landing in a register first (IterNorm from 8 lanes)
    (0, dict(fmax=125, land=True), False),
    pytest.param(8, dict(fmax=100), False, marks=pytest.mark.slow),   # lam = 2**-8
    pytest.param(3, dict(stages=0), False, marks=pytest.mark.slow),   # no registers
]


@pytest.mark.sim
@pytest.mark.parametrize("lam_shift,kw,on_icarus", CASES,
                         ids=["l1-f100", "l0-f125-land", "l8-f100", "l3-s0"])
def test_newton_rtl(lam_shift, kw, on_icarus, sim, build_root, icarus_subset):
    icarus_subset(on_icarus)
    core = NewtonStep(lam_shift=lam_shift, **kw)
    res = runner.run(core, "lpcores.sim.newton", sim=sim, seed=7, build_root=build_root)
    runner.assert_passes(res)


def test_newton_land():
    """land: one register more, at the input, whatever the clock asks."""
    for f in (100, 125):
        a, b = NewtonStep(fmax=f), NewtonStep(fmax=f, land=True)
        assert b.latency == a.latency + 1 and b.timing["cuts"][0] == "in.land"
        assert b.module_name == a.module_name.replace("newton_l1", "newton_l1_land")
        assert b.params["land"] is True and "land" not in a.params


def test_newton_bad_params():
    with pytest.raises(ParamError) as e:
        NewtonStep(lam_shift=9)
    assert str(e.value) == "lam_shift must be in 0..8, got lam_shift=9"
