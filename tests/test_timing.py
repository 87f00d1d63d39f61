"""Clock-directed pipelining (``fmax=``): the delay model's plan, its record in the
sidecar and the module name, bad input, and the regression of `fmax` configurations
on the generated Verilog (the numbers must not change with the registers)."""

import json
import re

import pytest

from lpcores.cli import main
from lpcores.errors import ParamError
from lpcores.hdl import Convert, Dot, sidecar
from lpcores.hdl.base import _place_cuts
from lpcores.hdl.fma import FMA
from lpcores.hdl.mxquant import MXQuant
from lpcores.hdl.nm import NMDot, NMPrune, SparseLinear
from lpcores.hdl.timing import FAMILIES, fabric
from lpcores.sim import runner


def _fma(**kw):
    return FMA(a_fmt="e4m3", b_fmt="e4m3", **kw)


@pytest.mark.parametrize("fmax", [60, 80, 100, 120])
def test_plan_meets_the_period_with_the_fewest_registers(fmax):
    core = _fma(fmax=fmax)
    t = core.timing
    period = 1000.0 / fmax
    assert t["fmax_asked_mhz"] == fmax and t["family"] == "ecp5"
    assert len(t["stage_ns"]) == core.stages + 1 == core.latency
    assert max(t["stage_ns"]) <= period + 1e-6
    assert t["estimate_mhz"] >= fmax
    # fewest: the same chain of segments cannot be cut into fewer stages
    segs = core.segments
    budget = period - fabric("ecp5").reg
    assert _min_cuts(segs, budget) == core.stages


def _min_cuts(segs, budget):
    # exhaustive dynamic programme over cut positions: the reference for the greedy
    n = len(segs)
    inf = float("inf")
    cost = [inf] * (n + 1)
    cost[0] = -1
    for i in range(n):
        if cost[i] == inf:
            continue
        t = 0.0
        for j in range(i, n):
            t += segs[j][1]
            if t > budget + 1e-9:
                break
            cost[j + 1] = min(cost[j + 1], cost[i] + 1)
    return cost[n]


def test_greedy_is_optimal_on_chains():
    import random
    rng = random.Random(5)
    for _ in range(300):
        segs = [(f"p{k}", rng.uniform(0.1, 4.0)) for k in range(rng.randint(1, 12))]
        segs[-1] = (None, segs[-1][1])
        budget = rng.uniform(2.0, 9.0)
        got = _place_cuts(segs, budget)
        ref = _min_cuts(segs, budget)
        if got is None:
            assert max(d for _, d in segs) > budget
        else:
            assert len(got) == ref


def test_stages_plan_keeps_the_named_cut_points_in_priority_order():
    core = _fma(stages=3)
    assert core.timing["cuts"] == ["mul", "add", "round"]      # datapath order
    assert core.timing["fmax_asked_mhz"] is None
    assert core.module_name == "fma_e4m3_e4m3_fp32_s3" and core.latency == 4


def test_sidecar_records_the_plan_and_the_name_encodes_it():
    core = _fma(fmax=100)
    sc = sidecar(core)
    assert sc["timing"] == core.timing
    assert sc["params"]["fmax"] == 100 and sc["params"]["family"] == "ecp5"
    assert sc["latency"] == core.stages + 1
    assert core.module_name == "fma_e4m3_e4m3_fp32_f100ecp5"
    assert _fma(fmax=31.25, family="ice40").module_name == "fma_e4m3_e4m3_fp32_f31p25ice40"


def test_a_slower_family_needs_more_registers():
    assert _fma(fmax=30, family="ice40").stages > _fma(fmax=30, family="ecp5").stages


@pytest.mark.parametrize("kwargs,msg", [
    (dict(fmax=100, stages=2), "fmax=100 and stages=2 are alternatives (a clock to "
     "meet, or a register count): give one"),
    (dict(fmax=0), "fmax must be a positive number of MHz, got fmax=0"),
    (dict(fmax=-5.0), "fmax must be a positive number of MHz, got fmax=-5.0"),
    (dict(fmax="fast"), "fmax must be a positive number of MHz, got fmax='fast'"),
    (dict(fmax=100, family="virtex"), "family must be one of "
     + ", ".join(FAMILIES) + ", got family='virtex'"),
])
def test_bad_fmax(kwargs, msg):
    with pytest.raises(ParamError) as e:
        _fma(**kwargs)
    assert str(e.value) == msg


def test_unreachable_fmax_names_the_fastest_clock_and_its_stages():
    with pytest.raises(ParamError) as e:
        _fma(fmax=1000)
    msg = str(e.value)
    assert msg.startswith("fmax=1000 MHz is beyond what the delay model reaches for "
                          "this fma on ecp5: the fastest is about ")
    fastest = float(msg.split("about ")[1].split(" MHz")[0])
    stages = int(msg.split("with ")[1].split(" stages")[0])
    core = _fma(fmax=fastest - 1)            # just below it is reachable
    assert core.stages <= stages


def test_wide_product_is_cut_after_its_partial_products():
    """Significands wider than one DSP (fp32's 24 bits): with fmax the product is
    built from 18-bit partial products with a fine cut after them; with stages (or
    no pipeline) it stays one inferred multiply (the netlist unchanged)."""
    core = FMA(a_fmt="fp32", b_fmt="fp32", fmax=100)
    assert "p.pp" in [p for p, _ in core.segments]
    assert "p.pp" in core.timing["cuts"]
    assert {"p.pp", "p_ps.1"} <= set(FMA(a_fmt="fp32", b_fmt="fp32", fmax=120).timing["cuts"])
    assert "p.pp" not in [p for p, _ in FMA(a_fmt="bf16", b_fmt="bf16",
                                             fmax=100).segments]
    from lpcores.hdl.base import verilog_text
    assert "p_pp0_18" not in verilog_text(FMA(a_fmt="fp32", b_fmt="fp32", stages=3))


def test_products_on_registered_dsps_above_the_inferred_clock():
    """Above the clock an inferred multiply meets (hdl/prims.py) a float product is
    built on MULT18X18D primitives with their registers (two forced cut points):
    one for bf16's 8x8 significands, four 17-bit chunk products for fp32's; below
    it the netlist has no primitive."""
    from lpcores.hdl.base import verilog_text
    from lpcores.hdl.prims import inferred_dsp_fmax
    cap = inferred_dsp_fmax("ecp5")
    assert 140 < cap < 150
    for fmt, n in (("bf16", 1), ("fp32", 4)):
        fast = FMA(a_fmt=fmt, b_fmt=fmt, fmax=150)
        assert {"p_dsp.in", "p_dsp.out"} <= set(fast.timing["cuts"])
        assert len(re.findall(r"\) p_dsp\d+ \(", verilog_text(fast))) == n
        slow = FMA(a_fmt=fmt, b_fmt=fmt, fmax=140)
        assert "MULT18X18D" not in verilog_text(slow)


# -- the regression of fmax configurations on the generated Verilog -----------------

FMAX_CASES = [
    (FMA, dict(a_fmt="e4m3", b_fmt="e4m3", fmax=120), "lpcores.sim.fma", {}),
    (FMA, dict(a_fmt="e4m3", b_fmt="e4m3", fmax=150), "lpcores.sim.fma", {}),
    (FMA, dict(a_fmt="bf16", b_fmt="bf16", fmax=125), "lpcores.sim.fma",
     {"random": 20000}),
    # 4 x 3 significands above ~148 MHz: radix-4 digit products (an odd last digit)
    (FMA, dict(a_fmt="e4m3", b_fmt="e5m2", acc_fmt="fp16", rounding="rtz", fmax=150),
     "lpcores.sim.fma", {}),
    (FMA, dict(a_fmt="bf16", b_fmt="bf16", fmax=100), "lpcores.sim.fma",
     {"random": 20000}),
    (FMA, dict(a_fmt="e5m2", b_fmt="e5m2", acc_fmt="bf16", fmax=30, family="ice40"),
     "lpcores.sim.fma", {}),
    # issue 11's iCE40 target: the add split at both fine points, every product
    (FMA, dict(a_fmt="e4m3", b_fmt="e4m3", fmax=50, family="ice40"), "lpcores.sim.fma", {}),
    # a 24x24 significand product: DSP-wide partial products, a cut, their sum (and a
    # cut inside the sum: p.pp and p_ps.1 at 120 MHz)
    (FMA, dict(a_fmt="fp32", b_fmt="fp32", fmax=120), "lpcores.sim.fma",
     {"random": 20000}),
    # above the inferred DSP's clock: every product on registered MULT18X18Ds, bf16's
    # one primitive, fp32's four 17-bit chunk products and their sum
    (FMA, dict(a_fmt="bf16", b_fmt="bf16", fmax=150), "lpcores.sim.fma",
     {"random": 20000}),
    (FMA, dict(a_fmt="fp32", b_fmt="fp32", fmax=150), "lpcores.sim.fma",
     {"random": 20000}),
    (Convert, dict(in_fmt="fp32", out_fmt="e4m3", fmax=150), "lpcores.sim.convert", {}),
    # 150 MHz: the rounder's exponent bases built beside the normalizing shift
    (Dot, dict(a_fmt="e4m3", b_fmt="e4m3", lanes=8, fmax=150), "lpcores.sim.dot", {}),
    (Dot, dict(a_fmt="e4m3", b_fmt="e4m3", lanes=4, max_terms=64, addend=True,
               fmax=100), "lpcores.sim.dot", {}),
    # int8 above the inferred multiplier's clock: MULT18X18D instantiated with its input
    # and output registers (hdl/prims.py), simulated on the model the sidecar lists
    (Dot, dict(a_fmt="int8", b_fmt="int8", lanes=8, max_terms=64, addend=True, fmax=180),
     "lpcores.sim.dot", {}),
    (Dot, dict(a_fmt="e2m1", b_fmt="e4m3", out_fmt="fp16", lanes=16, max_terms=128,
               fmax=110), "lpcores.sim.dot", {}),
    (Convert, dict(in_fmt="e4m3", out_fmt="fp32", fmax=160), "lpcores.sim.convert", {}),
    (Convert, dict(in_fmt="bf16", out_fmt="e2m1", saturate=True, fmax=120),
     "lpcores.sim.convert", {}),
    # MXQuant: fine cuts in every lane (LZC, shifter, maximum tree, each element's
    # rounder), the buffer of a multi-beat block between them
    (MXQuant, dict(in_fmt="fp32", elem_fmt="e4m3", lanes=8, fmax=150),
     "lpcores.sim.mxquant", {"blocks": 300}),
    (MXQuant, dict(in_fmt="bf16", elem_fmt="int8", lanes=4, rounding="away", fmax=100),
     "lpcores.sim.mxquant", {"blocks": 300}),
    (MXQuant, dict(in_fmt="fp32", elem_fmt="e2m1", lanes=32, fmax=140),
     "lpcores.sim.mxquant", {"blocks": 120}),
    (MXQuant, dict(in_fmt="fp32", elem_fmt="e5m2", lanes=2, rounding="away", fmax=45,
                   family="ice40"), "lpcores.sim.mxquant", {"blocks": 200}),
    # NMPrune: cuts between the keys and the comparators, inside the popcounts and
    # the positions' prefix sums (m > 5), between the sorting network's levels, inside
    # the scaled score (product, LZC, shifter)
    (NMPrune, dict(n=2, m=4, fmt="e4m3", groups=8, fmax=200), "lpcores.sim.nmprune",
     {"mode": "exhaustive"}),
    (NMPrune, dict(n=8, m=16, fmt="e5m2", fmax=150), "lpcores.sim.nmprune", {}),
    (NMPrune, dict(n=4, m=8, fmt="bf16", scaled=True, channels=16, fmax=100),
     "lpcores.sim.nmprune", {}),
    (NMPrune, dict(n=3, m=6, fmt="bf16", groups=2, selection="sortnet", fmax=150),
     "lpcores.sim.nmprune", {}),
    (NMPrune, dict(n=3, m=5, fmt="int8", groups=2, scaled=True, channels=30,
                   selection="sortnet", fmax=120), "lpcores.sim.nmprune", {"beats": 800}),
    (NMPrune, dict(n=4, m=8, fmt="e4m3", groups=2, fmax=55, family="ice40"),
     "lpcores.sim.nmprune", {}),
    # a narrow accumulator (max_terms 16, 13 bits) beside bf16's emin: the emin
    # clamp's `top - emin` once wrapped around (every result 2**9 off)
    (Dot, dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=2, max_terms=16,
               fmax=120), "lpcores.sim.dot", {}),
    # NMDot and SparseLinear: Dot's plan, the gather's register row in front of it
    (NMDot, dict(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", groups=2, addend=True,
                 max_terms=64, fmax=110), "lpcores.sim.nmdot", {}),
    (NMDot, dict(n=4, m=8, a_fmt="int8", b_fmt="int8", groups=2, addend=True,
                 max_terms=128, fmax=100), "lpcores.sim.nmdot", {}),
    (NMDot, dict(n=3, m=5, a_fmt="e5m2", b_fmt="e4m3", out_fmt="bf16", groups=2,
                 max_terms=48, fmax=30, family="ice40"), "lpcores.sim.nmdot", {}),
    # 150 MHz: the gather in two register rows (the muxes and the dropped terms'
    # flags, then lane 0's fix-up on the registered values)
    (SparseLinear, dict(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3", groups=2, fmax=150),
     "lpcores.sim.nmlinear", {}),
    (SparseLinear, dict(n=4, m=8, x_fmt="int8", w_fmt="int8", groups=2, scaled=True,
                        channels=48, addend=True, max_terms=128, fmax=40,
                        family="ice40"), "lpcores.sim.nmlinear", {}),
]


# the longest of them (MXQuant's 32 fp32 lanes: about 70 s on Verilator) and MXQuant's
# second ecp5 plan (the 150 MHz one has more cuts; the iCE40 one rounds away) under
# -m slow, to keep the default suite near its 20-minute budget on 2 cores; so are a
# core's second plan on the same family where the first covers its cut points (FMA
# e4m3 at 120 beside 150, bf16 at 100 beside 125, Convert e4m3 -> fp32 beside
# fp32 -> e4m3) and the NMPrune shapes tests/test_nmprune.py runs by stages
SLOW_FMAX = {"mxquant_fp32_e2m1_l32_f140ecp5", "mxquant_bf16_int8_l4_away_f100ecp5",
             "fma_e4m3_e4m3_fp32_f120ecp5", "fma_bf16_bf16_fp32_f100ecp5",
             "convert_e4m3_fp32_f160ecp5", "nmprune_8of16_e5m2_g1_f150ecp5",
             "nmprune_4of8_bf16_g1_sc16_f100ecp5",
             # one registered primitive: also in IterNorm's 150 MHz default case
             "fma_bf16_bf16_fp32_f150ecp5",
             # (2026-11-29) the inferred 24x24 product's cuts: also in IterNorm's
             # layernorm default case (its lane Dots' FX x FX products)
             "fma_fp32_fp32_fp32_f120ecp5",
             # a second iCE40 plan of a core whose first (FMA e4m3 at 50, NMPrune
             # 4:8 at 55) covers the family's fine cuts, or whose ECP5 plans cover
             # the datapath (MXQuant, NMDot, SparseLinear); Dot's 16 lanes at 110
             # beside its 8 at 150 and 4 at 100
             "fma_e5m2_e5m2_bf16_f30ice40", "mxquant_fp32_e5m2_l2_away_f45ice40",
             "nmdot_3of5_e5m2_e4m3_bf16_g2_exact_t48_f30ice40",
             "sparselinear_4of8_int8_int8_int32_g2_exact_t128_sc48_c_f40ice40",
             "dot_e2m1_e4m3_fp16_l16_exact_t128_f110ecp5"}
FMAX_IDS = [cls(**kw).module_name for cls, kw, _, _ in FMAX_CASES]    # one plan each


@pytest.mark.sim
@pytest.mark.parametrize("cls,kwargs,tb,opts", [
    pytest.param(*c, marks=pytest.mark.slow) if name in SLOW_FMAX else c
    for c, name in zip(FMAX_CASES, FMAX_IDS)], ids=FMAX_IDS)
def test_fmax_rtl(cls, kwargs, tb, opts, sim, build_root, icarus_subset):
    icarus_subset(kwargs.get("fmax") in (120, 180))
    core = cls(**kwargs)
    assert core.stages >= 1
    res = runner.run(core, tb, sim=sim, seed=11, options=opts, build_root=build_root)
    runner.assert_passes(res)


def test_registered_dsp_above_the_inferred_multipliers_clock(tmp_path):
    """Above the clock an inferred MULT18X18D with fabric registers meets, int8
    products go on the primitive with its own registers: two cut points the plan
    always takes, the simulation model written beside the Verilog and named in the
    sidecar. Below it the netlist keeps the inferred multiply."""
    from lpcores.hdl import generate, verilog_text
    from lpcores.hdl.prims import inferred_dsp_fmax
    kw = dict(a_fmt="int8", b_fmt="int8", lanes=4)
    assert 140 < inferred_dsp_fmax("ecp5") < 145
    fast = Dot(**kw, fmax=180)
    assert fast.timing["cuts"][:2] == ["mul_dsp.in", "mul_dsp.out"]
    assert fast.timing["estimate_mhz"] >= 180 and fast.latency == fast.stages + 1
    text = verilog_text(fast)
    assert text.count("MULT18X18D #(") == 4 and '.REG_OUTPUT_CLK("CLK0")' in text
    v, j = generate(fast, tmp_path)
    assert json.loads(j.read_text())["sim_sources"] == ["lpcores_ecp5_sim.v"]
    assert "module MULT18X18D" in (tmp_path / "lpcores_ecp5_sim.v").read_text()
    assert "module MULT18X18D" not in v.read_text()    # synthesis supplies it
    for slow in (Dot(**kw, fmax=125), Dot(**kw, fmax=180, family="xilinx"),
                 Dot(**kw, stages=2)):
        assert "MULT18X18D" not in verilog_text(slow)
        assert slow.sidecar()["sim_sources"] == []
        assert not any(c.startswith("mul_dsp") for c in (slow.timing or {}).get("cuts", []))


def test_no_dsp_with_an_instantiated_primitive_is_one_sentence(tmp_path, capsys):
    from lpcores.hdl import generate
    from lpcores.synth import run_synth
    v, j = generate(Dot(a_fmt="int8", b_fmt="int8", lanes=2, fmax=180), tmp_path)
    side = json.loads(j.read_text())
    with pytest.raises(ParamError) as e:
        run_synth(v, side, "ecp5", dsp=False, workdir=tmp_path / "s")
    assert str(e.value) == (
        "--no-dsp cannot apply to dot_int8_int8_int32_l2_exact_t1024_f180ecp5: at its "
        "clock it instantiates MULT18X18D blocks, whose own registers are how it meets "
        "that clock; drop --no-dsp, or ask for a clock the inferred multiplier meets "
        "(about 143 MHz or less)")
    with pytest.raises(ParamError, match="synthesize it with --target ecp5, got "
                       "--target=generic"):
        run_synth(v, side, "generic", workdir=tmp_path / "g")
    assert main(["synth", "dot", "--a-fmt", "int8", "--b-fmt", "int8", "--lanes", "2",
                 "--fmax", "180", "--target", "ecp5", "--no-dsp",
                 "--build", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "lpcores: error: --no-dsp cannot apply to dot_int8_int8_int32_l2_exact_t1024_"
        "f180ecp5")


def test_convert_200_is_planned_and_its_150_case_covers_it():
    """Issue 11's convert row: fp32 -> e4m3 at 200 MHz is accepted (the rounder
    decoded from the input's exponent field, fp.round_decide_packed, and the
    special-value choice beside the increment, fp.apply_pack); at 150 the plan is
    the same two cuts, so FMAX_CASES' 150 MHz case simulates the 200 MHz netlist
    (the same Verilog but for the module name)."""
    from lpcores.hdl.base import verilog_text
    c200 = Convert(in_fmt="fp32", out_fmt="e4m3", fmax=200)
    c150 = Convert(in_fmt="fp32", out_fmt="e4m3", fmax=150)
    assert c200.timing["cuts"] == c150.timing["cuts"] == ["r_sh.0", "round"]
    assert c200.timing["estimate_mhz"] >= 200
    v200 = verilog_text(c200).replace(c200.module_name, "M")
    assert v200 == verilog_text(c150).replace(c150.module_name, "M")
    # stages builds keep the old datapath (round_decide's clamp from the exponent)
    assert "r_dmid" in v200 and "r_dmid" not in verilog_text(
        Convert(in_fmt="fp32", out_fmt="e4m3", stages=2))


# the decoded rounder's other plans and modes (slow: the default suite runs the
# 150 MHz case above, the same netlist as 200)
CONVERT_DIRECT = [
    dict(in_fmt="fp32", out_fmt="e4m3", fmax=100),          # one cut: round
    dict(in_fmt="fp32", out_fmt="e4m3", fmax=80),           # no cut
    dict(in_fmt="fp32", out_fmt="e4m3", rounding="rtz", fmax=200),
    dict(in_fmt="fp32", out_fmt="e4m3", saturate=True, fmax=200),
    dict(in_fmt="fp32", out_fmt="fp16", fmax=200),
    dict(in_fmt="bf16", out_fmt="e2m1", fmax=200),
    dict(in_fmt="e5m2", out_fmt="e4m3", fmax=200),          # input narrower than output
    dict(in_fmt="fp16", out_fmt="e3m2", fmax=200),
]


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("kwargs", CONVERT_DIRECT,
                         ids=[Convert(**kw).module_name for kw in CONVERT_DIRECT])
def test_convert_decoded_rounder_rtl(kwargs, sim, build_root, icarus_subset):
    icarus_subset(False)
    core = Convert(**kwargs)
    res = runner.run(core, "lpcores.sim.convert", sim=sim, seed=20261122,
                     options={"directed": 60000}, build_root=build_root)
    runner.assert_passes(res)


# -- the command line ------------------------------------------------------------------

@pytest.mark.parametrize("argv,msg", [
    (["--fmax", "100", "--stages", "2"], "lpcores: error: --fmax=100.0 and --stages=2 "
     "are alternatives (a clock to meet, or a register count): give one"),
    (["--fmax", "-3"], "lpcores: error: --fmax must be a positive number of MHz, got "
     "--fmax=-3.0"),
    (["--fmax", "100", "--family", "stratix"], None),        # argparse: invalid choice
])
def test_cli_bad_fmax(argv, msg, tmp_path, capsys):
    base = ["generate", "fma", "--a-fmt", "e4m3", "--b-fmt", "e4m3",
            "--out", str(tmp_path)]
    if msg is None:
        with pytest.raises(SystemExit) as e:
            main(base + argv)
        assert e.value.code == 2
        assert "argument --family: invalid choice: 'stratix'" in capsys.readouterr().err
        return
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == msg and len([l for l in err if "error" in l]) == 1


def test_cli_unreachable_fmax_is_one_sentence(tmp_path, capsys):
    assert main(["generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3",
                 "--fmax", "900", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("lpcores: error: --fmax=900 MHz is beyond what the delay model "
                          "reaches for this convert on ecp5: the fastest is about ")
    assert err.endswith(" stages")


def test_cli_generate_with_fmax_writes_the_plan(tmp_path, capsys):
    assert main(["generate", "fma", "--a-fmt", "e4m3", "--b-fmt", "e4m3", "--fmax", "90",
                 "--family", "ecp5", "--out", str(tmp_path)]) == 0
    sc = json.loads((tmp_path / "fma_e4m3_e4m3_fp32_f90ecp5.json").read_text())
    core = FMA(a_fmt="e4m3", b_fmt="e4m3", fmax=90)
    assert sc["timing"]["cuts"] == core.timing["cuts"]
    assert sc["latency"] == len(sc["timing"]["cuts"]) + 1
    assert sc["timing"]["estimate_mhz"] >= 90


def test_cli_synth_family_must_be_the_target(capsys):
    assert main(["synth", "fma", "--a-fmt", "e4m3", "--b-fmt", "e4m3", "--fmax", "90",
                 "--family", "ice40", "--target", "ecp5"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "lpcores: error: --family must match --target in synth (the delay model is the "
        "target's), got --family=ice40 and --target=ecp5")


def test_synth_report_shows_estimate_asked_and_achieved():
    from lpcores.synth.flow import report_markdown
    rep = {"module": "m", "target": "ecp5", "device": "25k", "resources": {
        "luts": 1, "ffs": 1, "dsps": 0, "brams": 0, "carries": 0, "latches": 0},
        "wrapper": {"ffs": 1, "luts": 1}, "cells": {}, "tools": {}, "latency": 3,
        "fmax_mhz": 97.5, "seed": 1, "timing": {"family": "ecp5", "fmax_asked_mhz": 100.0,
                                                 "cuts": ["mul", "add"],
                                                 "estimate_mhz": 104.2}}
    text = report_markdown(rep)
    assert ("Pipelining: 2 registers besides the output (mul, add); delay model (ecp5): "
            "104.2 MHz, asked 100 MHz, achieved 97.5 MHz.") in text


def test_synth_report_of_a_core_built_from_sub_cores():
    """IterNorm's fmax build records each sub-core's plan (no top-level cut list):
    the report names them instead of failing (a KeyError once)."""
    from lpcores.hdl.iternorm import IterNorm
    from lpcores.synth.flow import report_markdown
    core = IterNorm(fmt="bf16", lanes=2, max_d=64, fmax=100)
    rep = {"module": "m", "target": "ecp5", "device": "25k", "resources": {
        "luts": 1, "ffs": 1, "dsps": 0, "brams": 0, "carries": 0, "latches": 0},
        "wrapper": {"ffs": 1, "luts": 1}, "cells": {}, "tools": {}, "latency": 3,
        "fmax_mhz": 97.5, "seed": 1, "timing": core.sidecar()["timing"]}
    t = core.timing
    text = report_markdown(rep)
    assert (f"Pipelining: sub-cores planned for the clock (lane_dot: "
            f"{len(t['lane_dot']['cuts'])} registers, model "
            f"{t['lane_dot']['estimate_mhz']} MHz, scalar_fma: "
            f"{len(t['scalar_fma']['cuts'])} registers") in text
    assert (f"partials {core.partials}); delay model (ecp5): {t['estimate_mhz']} MHz, "
            f"asked 100 MHz, achieved 97.5 MHz.") in text


def test_dot_fp_accumulation_needs_contexts_for_fmax():
    """The fp accumulator rounds in a loop: one context keeps it one cycle deep, so
    a clock that needs it deeper names the contexts it needs (docs/contexts.md)."""
    with pytest.raises(ParamError) as e:
        Dot(a_fmt="e4m3", b_fmt="e4m3", accumulate="fp", fmax=100)
    assert str(e.value) == ("contexts=1 is too few for fmax=100 MHz on ecp5: the "
                            "accumulate loop of this dot is 7 cycles deep at that clock "
                            "and needs contexts >= 7; with contexts=1 the delay model "
                            "reaches about 20 MHz")
    assert Dot(a_fmt="e4m3", b_fmt="e4m3", accumulate="fp", fmax=100,
               contexts=8).loop_cycles <= 8
    assert Dot(a_fmt="e4m3", b_fmt="e4m3", accumulate="fp", stages=1).timing is None
    # with stages, Dot keeps the netlist of its named cut points and records no model
    assert Dot(a_fmt="e4m3", b_fmt="e4m3", stages=2).timing is None


# -- MXQuant and NMPrune ---------------------------------------------------------------

@pytest.mark.parametrize("build,name", [
    (lambda **kw: MXQuant(elem_fmt="e4m3", lanes=8, **kw), "mxquant_fp32_e4m3_l8"),
    (lambda **kw: NMPrune(n=8, m=16, fmt="e5m2", **kw), "nmprune_8of16_e5m2_g1"),
    (lambda **kw: NMPrune(n=3, m=6, fmt="bf16", selection="sortnet", **kw),
     "nmprune_3of6_bf16_g1_sn"),
], ids=["mxquant", "nmprune", "nmprune-sortnet"])
def test_more_cores_take_fmax(build, name):
    for fmax, family in ((100, "ecp5"), (140, "ecp5"), (40, "ice40")):
        core = build(fmax=fmax, family=family)
        t = core.timing
        assert core.module_name == f"{name}_f{fmax}{family}"
        assert core.latency == core.stages + 1 == len(t["stage_ns"])
        assert len(t["cuts"]) == core.stages and max(t["stage_ns"]) <= 1000 / fmax
        assert sidecar(core)["timing"] == t and sidecar(core)["params"]["fmax"] == fmax
        # fewest registers for the chain of segments the probe measured
        assert _min_cuts(core.segments, 1000 / fmax - fabric(family).reg) == core.stages
    # stages: the named cut points, today's netlist, no model
    core = build(stages=1)
    assert core.timing is None and core.module_name == f"{name}_s1"
    assert "fmax" not in core.params and core.latency == 2


@pytest.mark.parametrize("build,name,extra", [
    (lambda **kw: NMDot(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", groups=2, **kw),
     "nmdot_2of4_e4m3_e4m3_fp32_g2_exact_t1024", 1),
    (lambda **kw: SparseLinear(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3", groups=2, **kw),
     "sparselinear_2of4_e4m3_e4m3_fp32_g2_exact_t1024", None),
], ids=["nmdot", "sparselinear"])
def test_dot_wrappers_take_fmax(build, name, extra):
    core = build(fmax=110)
    t = core.timing
    assert core.module_name == f"{name}_f110ecp5" and t["family"] == "ecp5"
    assert core.latency == len(t["stage_ns"]) == len(t["cuts"]) + 1
    assert max(t["stage_ns"]) <= 1000 / 110 and sidecar(core)["timing"] == t
    if extra:           # NMDot: Dot's plan and the gather's row in front of it
        assert t["cuts"][0] == "gather" and core.latency == core.dot.latency + 1
    core = build(stages=1)
    assert core.timing is None and core.module_name.endswith("_s1")


def test_more_cores_bad_fmax():
    with pytest.raises(ParamError) as e:
        MXQuant(elem_fmt="e4m3", fmax=120, stages=1)
    assert str(e.value) == ("fmax=120 and stages=1 are alternatives (a clock to meet, "
                            "or a register count): give one")
    with pytest.raises(ParamError) as e:
        NMPrune(n=2, m=4, fmt="bf16", fmax=500)
    assert str(e.value).startswith("fmax=500 MHz is beyond what the delay model reaches "
                                   "for this nmprune on ecp5: the fastest is about ")


@pytest.mark.parametrize("core,args", [
    ("mxquant", ["--elem-fmt", "e4m3", "--lanes", "8"]),
    ("nmprune", ["--n", "2", "--m", "4", "--fmt", "bf16"]),
])
def test_cli_more_cores_fmax(core, args, tmp_path, capsys):
    assert main(["generate", core, *args, "--fmax", "900", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"lpcores: error: --fmax=900 MHz is beyond what the delay "
                              f"model reaches for this {core} on ecp5: the fastest is "
                              f"about ") and err[-1].endswith(" stages")
    assert not any("Traceback" in line for line in err)
    assert main(["generate", core, *args, "--fmax", "90", "--stages", "1",
                 "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "lpcores: error: --fmax=90.0 and --stages=1 are alternatives (a clock to meet, "
        "or a register count): give one")
    assert main(["generate", core, *args, "--fmax", "45", "--family", "ice40",
                 "--out", str(tmp_path)]) == 0
    sc = json.loads(next(tmp_path.glob(f"{core}_*_f45ice40.json")).read_text())
    assert sc["timing"]["family"] == "ice40" and sc["latency"] == len(
        sc["timing"]["cuts"]) + 1


def test_dot_wrappers_bad_fmax():
    with pytest.raises(ParamError) as e:
        NMDot(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", fmax=400)
    assert str(e.value).startswith("fmax=400 MHz is beyond what the delay model reaches "
                                   "for this nmdot's dot engine on ecp5: the fastest is ")
    with pytest.raises(ParamError) as e:
        SparseLinear(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3", fmax=100, prune_stages=1)
    assert str(e.value) == ("fmax=100 and prune_stages=1 are alternatives (a clock to "
                            "meet, or a register count): give one")
    with pytest.raises(ParamError) as e:
        NMDot(n=8, m=16, a_fmt="e4m3", b_fmt="e4m3", fmax=145)
    assert str(e.value).startswith("fmax=145 MHz is beyond what the delay model reaches "
                                   "for this nmdot on ecp5: the fastest is about ")
    assert "(its gather stages), with " in str(e.value)


def test_nmdot_gather_takes_two_rows_when_one_does_not_fit():
    kw = dict(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", groups=2)
    one, two = NMDot(**kw, fmax=125), NMDot(**kw, fmax=150)
    assert one.gather_rows == 1 and one.timing["cuts"][:2] == ["gather", "mul.u"]
    assert one.latency == one.dot.latency + 1
    assert two.gather_rows == 2 and two.timing["cuts"][:2] == ["gather", "gather.2"]
    assert two.latency == two.dot.latency + 2 == len(two.timing["stage_ns"])
    assert max(two.timing["stage_ns"]) <= 1000 / 150
    # one row holds the gathered value's zero test after the muxes (the lane-0
    # fix-up), two rows split it from the muxes
    assert one.gather_ns(1)[0] > max(two.gather_ns(2))
    # int8: no dropped terms, the muxes alone
    i8 = NMDot(n=2, m=4, a_fmt="int8", b_fmt="int8", groups=2, fmax=150)
    assert i8.gather_rows == 1


def test_wide_datapath_derate_is_ecp5s_and_the_fmas():
    # a shifter or LZC level of a word wider than 48 bits costs more on ECP5 and
    # iCE40 (measured on the FMA); narrower words, other families and cores that do
    # not ask for it are charged as before
    for family in ("ecp5", "ice40"):
        fab = fabric(family)
        assert fab.shift_level(86) == pytest.approx(fab.shift_level() + 0.2)
        assert fab.lzc_level(63) == pytest.approx(fab.lzc_level() + 0.2)
        assert fab.shift_level(48) == fab.shift_level()
        assert fab.lzc_level(48) == fab.lzc_level()
    for family in FAMILIES:
        if family not in ("ecp5", "ice40"):
            assert fabric(family).shift_level(86) == fabric(family).shift_level()
            assert fabric(family).lzc_level(63) == fabric(family).lzc_level()
    assert _fma(fmax=150).wide_derate
    assert not getattr(Convert(in_fmt="fp32", out_fmt="e4m3", fmax=150), "wide_derate",
                       False)


def test_less_is_a_compare_and_the_new_charges():
    """fp.less (a compare as the sign of a difference one bit wider, the form whose
    result leaves the carry chain as a sum bit) against Python's ``<`` on every pair
    of 5-bit operands, signed, unsigned and mixed; the broadcast and compare charges
    of the delay model (MXQuant's measured ECP5 paths, docs/timing.md)."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from lpcores.hdl.fp import less
    m = Module()
    a, b, ua, ub = Signal(signed(5)), Signal(signed(5)), Signal(5), Signal(5)
    outs = [less(m, a, b, "s"), less(m, ua, ub, "u"), less(m, a, ub, "m"),
            less(m, a, -3, "c")]
    got = [Signal(name=f"o{k}") for k in range(len(outs))]
    m.d.comb += [g.eq(o) for g, o in zip(got, outs)]
    sim = Simulator(m)

    async def bench(ctx):
        for x in range(-16, 16):
            for y in range(-16, 16):
                ctx.set(a, x), ctx.set(b, y), ctx.set(ua, x & 31), ctx.set(ub, y & 31)
                assert [ctx.get(g) for g in got] == [
                    int(x < y), int((x & 31) < (y & 31)), int(x < (y & 31)), int(x < -3)]
    sim.add_testbench(bench)
    sim.run()
    e = fabric("ecp5")
    assert e.fanout(4) == e.fanout(None) == 0.0 and e.fanout(32) == pytest.approx(1.05)
    assert e.compare(10) == e.carry(11)


def test_sum_tree_narrow_levels_and_exponent_table():
    """sum_tree with ``leaf_bits`` (each level's adders ``leaf_bits + k`` bits wide)
    against Python's sum on leaves at the extremes of their width, ones' complement
    carries included; unpack's narrow-field exponent table against the format's
    ``max(e, 1) - bias`` for every code of e4m3, e3m2, e2m3 and e2m1."""
    import itertools
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from lpcores.formats import get_format
    from lpcores.hdl.fp import sum_tree, unpack
    m = Module()
    w, n, width = 4, 5, 10           # five 4-bit leaves, four adders, 10-bit result
    leaves = [Signal(signed(w), name=f"x{k}") for k in range(n)]
    cins = [Signal(name=f"c{k}") for k in range(n - 1)]
    out = sum_tree(m, leaves, width, carries=cins, leaf_bits=w)
    codes = {f: Signal(get_format(f).bits, name=f"code_{f}")
             for f in ("e4m3", "e3m2", "e2m3", "e2m1")}
    exps = {f: unpack(m, c, f, name=f"u_{f}").exp for f, c in codes.items()}
    sim = Simulator(m)
    vals = (-8, -7, -1, 0, 1, 6, 7)

    async def bench(ctx):
        for xs in itertools.product(vals, repeat=n):
            for cs in ((0,) * (n - 1), (1,) * (n - 1), (1, 0, 1, 0)):
                for s, v in zip(leaves, xs):
                    ctx.set(s, v)
                for s, v in zip(cins, cs):
                    ctx.set(s, v)
                assert ctx.get(out) == sum(xs) + sum(cs), (xs, cs)
        for f, c in codes.items():
            fmt = get_format(f)
            for code in range(1 << fmt.bits):
                ctx.set(c, code)
                e = (code >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
                assert ctx.get(exps[f]) == max(e, 1) - fmt.bias, (f, code)
    sim.add_testbench(bench)
    sim.run()


def test_registered_ready_above_the_enables_clock():
    """A core planned for a clock whose period is below the family's stall-all
    enable (ECP5 7.9 ns) gets the skid register and ``i.ready`` from it; slower
    clocks, --stages and families without the measurement keep the stall-all
    enable (and their netlists)."""
    from lpcores.hdl import FMA
    from lpcores.hdl.base import verilog_text
    fast = FMA(a_fmt="e4m3", b_fmt="e4m3", fmax=150)
    slow = FMA(a_fmt="e4m3", b_fmt="e4m3", fmax=100)
    assert fast._pipe_skid and not slow._pipe_skid
    assert not FMA(a_fmt="e4m3", b_fmt="e4m3", stages=7)._pipe_skid
    assert not FMA(a_fmt="e4m3", b_fmt="e4m3", fmax=30, family="ice40")._pipe_skid
    assert fabric("ecp5").enable == 7.9 and fabric("ice40").enable is None
    assert "skid_valid" in verilog_text(fast)
    assert "skid_valid" not in verilog_text(slow)


def test_small_buffer_in_lut_ram_above_the_block_ram_read():
    """A block RAM read without its output register (Yosys never infers it) caps a
    clock on ECP5 (Fabric.bram_out); above that a buffer of at most LUTRAM_MAX_BITS
    is written with ``ram_style = "distributed"``, below it (and larger buffers, and
    families without the number) keep the plain declaration."""
    from lpcores.hdl.base import verilog_text
    from lpcores.hdl.iternorm import IterNorm
    from lpcores.hdl.prims import LUTRAM_MAX_BITS, buffer_attrs
    fab = fabric("ecp5")
    cap = 1000.0 / (fab.reg + fab.bram_out)
    assert 110 < cap < 130
    assert buffer_attrs("ecp5", None, 64) == {}
    assert buffer_attrs("ecp5", cap - 1, 64) == {}
    assert buffer_attrs("ecp5", cap + 1, LUTRAM_MAX_BITS) == {"ram_style": "distributed"}
    assert buffer_attrs("ecp5", cap + 1, LUTRAM_MAX_BITS + 1) == {}
    assert buffer_attrs("ice40", 60, 64) == {}
    attr = '(* ram_style = "distributed" *)\n  reg [31:0] mem [63:0];'
    assert attr in verilog_text(IterNorm(fmt="bf16", lanes=2, max_d=64, iters=1,
                                         fmax=150))
    v = verilog_text(IterNorm(fmt="bf16", lanes=2, max_d=64, iters=1, fmax=100))
    assert "ram_style" not in v and "reg [31:0] mem [63:0];" in v
