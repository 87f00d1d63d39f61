"""FMA: the generated Verilog against golden.fma (itself checked against an exact
rational oracle in test_golden_fma.py)."""

import pytest

from lpcores.errors import ParamError
from lpcores.hdl.fma import FAdd, FMA, FMul
from lpcores.sim import runner


# (a, b, acc, rounding, stages, options)
CASES = [
    ("e4m3", "e4m3", "fp32", "rne", 3, {}),                    # every product
    ("e5m2", "e5m2", "fp32", "rne", 1, {}),                    # every product
    ("e4m3", "e5m2", "fp32", "rne", 0, {}),                    # mixed, every product
    ("bf16", "bf16", "fp32", "rne", 2, {"random": 30000}),
    ("bf16", "bf16", "bf16", "rne", 6, {"random": 20000}),
    ("fp32", "fp32", "fp32", "rne", 4, {"random": 20000}),    # a 48-bit product
    ("e4m3", "e4m3", "fp16", "rtz", 7, {}),
    ("e2m1", "e3m2", "bf16", "rne", 1, {}),
    ("e2m3", "e2m1", "fp16", "rne", 0, {}),
]
# every format pair's special grid (each CASES run also starts with its own grid)
SPECIALS = [(a, b, c) for a in ("e4m3", "e5m2", "bf16") for b in ("e4m3", "e5m2", "bf16")
            for c in ("fp32", "fp16", "bf16")]


ICARUS = {0, 3, 8}          # on Icarus by default: e4m3 exhaustive, bf16, fp16 out


@pytest.mark.sim
@pytest.mark.parametrize("a,b,acc,rnd,stages,opts,on_icarus",
                         [c + (k in ICARUS,) for k, c in enumerate(CASES)],
                         ids=[f"{a}x{b}+{c}-{r}-s{s}" for a, b, c, r, s, _ in CASES])
def test_fma_rtl(a, b, acc, rnd, stages, opts, on_icarus, sim, build_root,
                 icarus_subset):
    icarus_subset(on_icarus)
    core = FMA(a_fmt=a, b_fmt=b, acc_fmt=acc, rounding=rnd, stages=stages)
    res = runner.run(core, "lpcores.sim.fma", sim=sim, seed=7, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)


# FMul (r = round(a*b), IterNorm's output multiply): the same bench and golden.fma
# with c = -0. (a, b, r, kwargs, options)
FMUL = [
    ("e4m3", "e4m3", "fp32", dict(stages=2), {}),                    # every product
    ("e5m2", "e4m3", "bf16", dict(fmax=150), {}),                     # every product
    ("bf16", "bf16", "bf16", dict(fmax=100), {"random": 20000}),
    # above the inferred DSP's clock (IterNorm's output multiply at 150 MHz): fp32's
    # 24-bit significand in two chunk products on registered MULT18X18Ds, their sum
    ("fp32", "bf16", "bf16", dict(fmax=150), {"random": 20000}),
    ("e4m3", "e5m2", "fp16", dict(stages=0, rounding="rtz"), {}),     # every product
    # a_normal (b normalized before the multiply, the rounder's subnormal shifter):
    # every product with a normal a, fp16 results down to 2**-15 (subnormal)
    ("e4m3", "e4m3", "fp16", dict(stages=2, a_normal=True), {}),
    # IterNorm's output multiply at 100 and at 150 MHz (registered DSPs)
    ("fp32", "bf16", "bf16", dict(fmax=100, a_normal=True), {"random": 30000}),
    pytest.param("fp32", "bf16", "bf16", dict(fmax=150, a_normal=True),
                 {"random": 30000}, marks=pytest.mark.slow),
    ("bf16", "e5m2", "bf16", dict(stages=0, a_normal=True, rounding="rtz"),
     {"random": 20000}),
]


def _fmul_cases():
    for k, c in enumerate(FMUL):
        vals, marks = (c.values, c.marks) if hasattr(c, "values") else (c, ())
        a, b, r, kw, _ = vals
        yield pytest.param(*vals, k == 0, marks=marks, id=f"{a}x{b}-{r}-" + "-".join(
            f"{k}{v}" for k, v in kw.items()))


@pytest.mark.sim
@pytest.mark.parametrize("a,b,r,kw,opts,on_icarus", list(_fmul_cases()))
def test_fmul_rtl(a, b, r, kw, opts, on_icarus, sim, build_root, icarus_subset):
    icarus_subset(on_icarus)
    core = FMul(a_fmt=a, b_fmt=b, r_fmt=r, **kw)
    res = runner.run(core, "lpcores.sim.fma", sim=sim, seed=5, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)


# FAdd (r = round(a + c), IterNorm's lane tree): the same bench and golden.fma with
# b = 1. (fmt, kwargs, options)
FADD = [
    ("bf16", dict(stages=3), {"random": 30000}),
    ("fp32", dict(fmax=100), {"random": 30000}),
    pytest.param("fp16", dict(stages=0, rounding="rtz"), {"random": 20000},
                 marks=pytest.mark.slow),
    pytest.param("bf16", dict(fmax=150), {"random": 20000}, marks=pytest.mark.slow),
    # magnitude: round(|a| + |c|), golden.fma of the codes with their signs cleared
    # (IterNorm's lane tree: fp32 at 100 MHz; fp16: subnormal anchors and sums)
    ("fp32", dict(fmax=100, magnitude=True), {"random": 30000}),
    ("fp16", dict(stages=2, magnitude=True), {"random": 30000}),
    pytest.param("bf16", dict(fmax=150, magnitude=True), {"random": 20000},
                 marks=pytest.mark.slow),
    pytest.param("bf16", dict(stages=0, rounding="rtz", magnitude=True),
                 {"random": 20000}, marks=pytest.mark.slow),
    # a in a narrower format (IterNorm's layernorm: RNE(x - mean), x an input
    # element): bf16 + fp32 at 100 MHz; e5m2 + fp16, subnormal a into subnormal sums
    ("fp32", dict(fmax=100, a_fmt="bf16"), {"random": 30000}),
    ("fp16", dict(stages=2, a_fmt="e5m2"), {"random": 20000}),
]


def _fadd_id(c):
    f, kw, _ = c.values if hasattr(c, "values") else c
    return f"{f}-" + "-".join(f"{k}{v}" for k, v in kw.items())


@pytest.mark.sim
@pytest.mark.parametrize("fmt,kw,opts", FADD, ids=[_fadd_id(c) for c in FADD])
def test_fadd_rtl(fmt, kw, opts, sim, build_root, icarus_subset):
    icarus_subset(fmt == "bf16" and "stages" in kw)
    core = FAdd(fmt=fmt, **kw)
    res = runner.run(core, "lpcores.sim.fma", sim=sim, seed=11, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)


def test_fadd_bad_params():
    with pytest.raises(ParamError) as e:
        FAdd(fmt="e4m3")
    assert str(e.value) == "fmt must be one of fp32, fp16, bf16, got fmt='e4m3'"
    with pytest.raises(ParamError) as e:
        FAdd(stages=7)
    assert str(e.value) == ("stages must be in 0..6 for fadd (it has 6 cut points), "
                            "got stages=7")
    with pytest.raises(ParamError) as e:
        FAdd(magnitude="yes")
    assert str(e.value) == "magnitude must be True or False, not 'yes'"


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("a,b,acc", SPECIALS, ids=[f"{a}x{b}+{c}" for a, b, c in SPECIALS])
def test_fma_special_grid(a, b, acc, sim, build_root):
    core = FMA(a_fmt=a, b_fmt=b, acc_fmt=acc, stages=1)
    res = runner.run(core, "lpcores.sim.fma", sim=sim, seed=3,
                     options={"mode": "specials"}, build_root=build_root / "specials")
    runner.assert_passes(res)


@pytest.mark.parametrize("kwargs,msg", [
    (dict(a_fmt="int8", b_fmt="e4m3"),
     "a_fmt must be one of fp32, fp16, bf16, e5m2, e4m3, e3m2, e2m3, e2m1, got a_fmt='int8'"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", acc_fmt="e4m3"),
     "acc_fmt must be one of fp32, fp16, bf16, got acc_fmt='e4m3'"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", stages=8),
     "stages must be in 0..7 for fma (it has 7 cut points), got stages=8"),
])
def test_fma_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        FMA(**kwargs)
    assert str(e.value) == msg


def test_fmul_bad_params():
    with pytest.raises(ParamError) as e:
        FMul(a_fmt="e4m3", b_fmt="e4m3", r_fmt="e5m2")
    assert str(e.value) == "r_fmt must be one of fp32, fp16, bf16, got r_fmt='e5m2'"
    with pytest.raises(ParamError) as e:
        FMul(a_fmt="e4m3", b_fmt="e4m3", stages=6)
    assert str(e.value) == ("stages must be in 0..5 for fmul (it has 5 cut points), "
                            "got stages=6")
