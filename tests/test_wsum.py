"""WindowSum (IterNorm's and FisrNorm's s in the fmax build): the generated Verilog
against golden.iternorm.window_sum (itself checked against exact rationals in
test_golden_iternorm.py)."""

import pytest

from lpcores.errors import ParamError
from lpcores.golden.iternorm import window_bits, window_headroom
from lpcores.hdl.wsum import WindowSum
from lpcores.sim import runner

# (lanes, beats, max_d of the IterNorm it serves, pipelining, on Icarus)
CASES = [
    (2, 5, 64, dict(fmax=100), True),           # IterNorm bf16 2 lanes at 100 MHz
    (16, 5, 1024, dict(fmax=100), False),       # 16 lanes: a 4-level tree
    pytest.param(1, 1, 64, dict(stages=0), False,   # one value a sum, no registers
                 marks=pytest.mark.slow),
    (4, 10, 256, dict(fmax=150), False),        # the loop and the shifter cut finer
    # the squares of bf16 codes (IterNorm's reduce="squares": a value a square, the
    # window of max_d 64, 32 beats a sum), and of fp32 codes (48-bit squares cut to
    # the window) with no registers
    (2, 32, 64, dict(fmax=100, square_fmt="bf16"), True),
    pytest.param(4, 8, 64, dict(stages=0, square_fmt="fp32"), False,
                 marks=pytest.mark.slow),
]


@pytest.mark.sim
@pytest.mark.parametrize("lanes,beats,max_d,kw,on_icarus", CASES,
                         ids=["l2-f100", "l16-f100", "l1-s0", "l4-f150", "sq-bf16-l2-f100",
                              "sq-fp32-l4-s0"])
def test_wsum_rtl(lanes, beats, max_d, kw, on_icarus, sim, build_root, icarus_subset):
    icarus_subset(on_icarus)
    # IterNorm's window and headroom for that max_d: 3 + log2(max_d / lanes), or
    # with squares one square a value (3), the window of one sum a lane
    sq = "square_fmt" in kw
    core = WindowSum(lanes=lanes, window=window_bits(max_d, 1 if sq else beats),
                     beats=beats, headroom=window_headroom(max_d, max_d if sq else lanes),
                     **kw)
    res = runner.run(core, "lpcores.sim.wsum", sim=sim, seed=5, build_root=build_root)
    runner.assert_passes(res)


def test_wsum_bad_params():
    with pytest.raises(ParamError) as e:
        WindowSum(lanes=2, window=10, beats=4)
    assert str(e.value) == "window must be in 25..256, got window=10"
    with pytest.raises(ParamError) as e:
        WindowSum(lanes=0, window=40, beats=4)
    assert str(e.value) == "lanes must be at least 1, got lanes=0"
    with pytest.raises(ParamError) as e:
        WindowSum(lanes=2, window=40, beats=4, headroom=41)
    assert str(e.value) == "headroom must be in 1..40, got headroom=41"
