"""IterNorm / FisrNorm: the generated Verilog against golden.iternorm / fisrnorm
(themselves checked against an exact-rational model in test_golden_iternorm.py),
with random backpressure, mid-stream resets and the sidecar's latency formula."""

import json

import pytest

from lpcores.errors import ParamError
from lpcores.golden.iternorm import window_bits
from lpcores.hdl.iternorm import FisrNorm, IterNorm
from lpcores.sim import runner


# (class, fmt, lanes, max_d, mode, iters, affine[, more keyword arguments])
ROM = {"start": "rom"}
FAST = [
    (FisrNorm, "fp32", 2, 64, "rmsnorm", 3, True),
    (IterNorm, "bf16", 2, 128, "layernorm", 3, True),
]
SLOW = [
    # the ROM start (the default suite's budget: the fmax build's 8-lane case has it)
    (IterNorm, "fp32", 2, 64, "rmsnorm", 2, False, ROM),
    (FisrNorm, "fp32", 4, 128, "rmsnorm", 3, True),
    (IterNorm, "bf16", 8, 128, "l2", 5, False),        # l2: the default suite's budget
    (IterNorm, "bf16", 16, 256, "l2", 5, False),
    (IterNorm, "bf16", 16, 1024, "rmsnorm", 5, False),
    (IterNorm, "fp32", 16, 256, "l2", 5, True),
    (FisrNorm, "bf16", 16, 1024, "l2", 5, False),
    (IterNorm, "bf16", 32, 1024, "rmsnorm", 4, True),
    (IterNorm, "bf16", 8, 512, "l2", 5, False),
    (IterNorm, "fp32", 1, 128, "rmsnorm", 2, False),
    (FisrNorm, "bf16", 64, 256, "rmsnorm", 2, True),
    (IterNorm, "bf16", 16, 1024, "layernorm", 5, False),
    (FisrNorm, "fp32", 16, 256, "layernorm", 3, True),
    (FisrNorm, "bf16", 8, 512, "layernorm", 2, True),
    (IterNorm, "fp32", 1, 64, "layernorm", 2, False),
    (IterNorm, "bf16", 16, 1024, "l2", 1, False, ROM),
    (IterNorm, "fp32", 4, 128, "layernorm", 2, True, ROM),
]


# the fmax build (lane sums on Dots with P partials, the scalar program on one
# pipelined FX FMA, output FMAs): (class, fmt, lanes, max_d, mode, iters, fmax)
FMAX = [
    # FisrNorm's start, fp32; gamma and beta beside x: the output multipliers into
    # FX, then affine FMAs
    (FisrNorm, "fp32", 1, 64, "rmsnorm", 2, 80, {"affine": True}),
    # P = 3 partials, the lanes' FAdd tree, u0 = a0*a0 from the ROM start
    (IterNorm, "bf16", 8, 64, "l2", 1, 50, ROM),
    # layernorm: the sums of x, the mean, a second pass of y = RNE(x - mean) into
    # the same Dots, a third in C; max_d 128: constant vectors whose computed mean
    # would miss x0 (d not a power of two)
    (IterNorm, "bf16", 2, 128, "layernorm", 2, 100, {"affine": True}),
    # a one-cycle output multiplier: the flags' FIFO beside it hands out an entry
    # the cycle after its write (the buffered one, two cycles: flags a beat late);
    # the window sum at 2 lanes, its rows waiting for the top (shallow lane Dots)
    (IterNorm, "bf16", 2, 64, "l2", 2, 10, {"reduce": "window"}),
    # 150 MHz: every product on registered MULT18X18Ds (the lanes' squares, the
    # FMA's and the output multipliers' chunk products), the lane loop's window cut
    (IterNorm, "bf16", 2, 64, "l2", 2, 150),
    # the squares on the window (a second read of the buffer, no lane sums), fused:
    # issue 12's 2-lane area build
    (IterNorm, "bf16", 2, 64, "l2", 1, 100, {**ROM, "fuse": True, "reduce": "squares"}),
    # the fused first update (NewtonStep), its result forwarded into the FMA's
    # second update, the window sum at 2 lanes
    (IterNorm, "fp32", 2, 64, "rmsnorm", 2, 100, {**ROM, "fuse": True,
                                                  "reduce": "window"}),
]
FMAX_SLOW = [
    # --reduce tree in l2 at 8 lanes (the lanes' FAdd tree, then B's FMA)
    (FisrNorm, "bf16", 8, 64, "l2", 2, 100, {"reduce": "tree"}),
    (FisrNorm, "fp32", 4, 128, "rmsnorm", 2, 80),
    (FisrNorm, "fp32", 1, 64, "rmsnorm", 2, 80),
    (IterNorm, "bf16", 2, 64, "rmsnorm", 2, 100, {"affine": True}),
    (IterNorm, "bf16", 2, 64, "l2", 5, 100),
    (FisrNorm, "bf16", 2, 64, "l2", 5, 100),
    (IterNorm, "bf16", 16, 256, "rmsnorm", 3, 100),
    (IterNorm, "bf16", 1, 64, "l2", 5, 125),
    (FisrNorm, "bf16", 8, 128, "l2", 4, 60),
    (IterNorm, "bf16", 2, 64, "l2", 1, 100, ROM),
    (IterNorm, "fp32", 16, 256, "rmsnorm", 2, 100, ROM),
    # the 85F build of docs/targets.md (16 lanes, max_d 1024, --fmax 125)
    (IterNorm, "bf16", 16, 1024, "l2", 5, 125),
    # issue 12's latency row: 16 lanes, max_d 1024, at 100 MHz, bf16 at its
    # rounding floor (ROM start, one update): 2*d/16 + 64, the window sum; fused
    # (no FMA at all), 2*d/16 + 46
    (IterNorm, "bf16", 16, 1024, "l2", 1, 100, ROM),
    (IterNorm, "bf16", 16, 1024, "l2", 1, 100, {**ROM, "fuse": True}),
    # fused with no FMA at 2 lanes (the window sum); lam = 1/4 at 10 MHz (a
    # one-cycle fused unit after the FMA's tree)
    (IterNorm, "bf16", 2, 64, "l2", 1, 100, {**ROM, "fuse": True, "reduce": "window"}),
    (IterNorm, "bf16", 2, 64, "l2", 3, 10, {**ROM, "fuse": True, "lam": 0.25}),
    # layernorm: the lanes' tree adding signed sums (8 and 16 lanes), fp32,
    # one-cycle sub-cores (fmax 10)
    (IterNorm, "bf16", 8, 128, "layernorm", 2, 100),
    (IterNorm, "bf16", 16, 256, "layernorm", 3, 100, ROM),
    (FisrNorm, "fp32", 2, 128, "layernorm", 3, 100, {"affine": True}),
    (IterNorm, "bf16", 2, 128, "layernorm", 2, 10, {"affine": True}),
    # 150 MHz: registered MULT18X18Ds for FX x FX (layernorm's lane products, four
    # chunk products each) and for fp32 squares; the buffers in LUT RAM
    (IterNorm, "bf16", 2, 64, "layernorm", 2, 150, {"affine": True}),
    (FisrNorm, "fp32", 2, 64, "rmsnorm", 2, 150),
]


def _id(c):
    cls, fmt, lanes, d, mode, k, aff, *more = c
    tail = f"-f{aff}" if not isinstance(aff, bool) else "-aff" if aff else ""
    tail += "".join("-aff" if k == "affine" else f"-{v}"
                    for k, v in (more[0].items() if more else ()))
    return f"{cls.__name__}-{fmt}-l{lanes}-d{d}-{mode}-k{k}{tail}"


def _run(case, sim, build_root, **opts):
    cls, fmt, lanes, max_d, mode, iters, affine, *more = case
    kw = dict(affine=affine) if isinstance(affine, bool) else dict(fmax=affine)
    kw.update(*more)
    core = cls(fmt=fmt, lanes=lanes, max_d=max_d, mode=mode, iters=iters, **kw)
    res = runner.run(core, "lpcores.sim.iternorm", sim=sim, seed=20261123,
                     build_root=build_root, options=opts)
    runner.assert_passes(res)
    assert res.tests == 4


@pytest.mark.sim
@pytest.mark.parametrize("case", FAST, ids=[_id(c) for c in FAST])
def test_iternorm_rtl(case, build_root):
    _run(case, "verilator", build_root, vectors=30)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[_id(c) for c in SLOW])
def test_iternorm_rtl_slow(case, build_root):
    _run(case, "verilator", build_root, vectors=60)


@pytest.mark.sim
@pytest.mark.parametrize("case", FMAX, ids=[_id(c) for c in FMAX])
def test_iternorm_fmax_rtl(case, build_root):
    _run(case, "verilator", build_root, vectors=20, b2b=6)


@pytest.mark.sim
@pytest.mark.slow
@pytest.mark.parametrize("case", FMAX_SLOW, ids=[_id(c) for c in FMAX_SLOW])
def test_iternorm_fmax_rtl_slow(case, build_root):
    _run(case, "verilator", build_root, vectors=40)


@pytest.mark.sim
@pytest.mark.slow
def test_iternorm_icarus(build_root):
    from lpcores.sim.tools import available
    if not available("icarus"):
        pytest.skip("Icarus Verilog (iverilog) is not installed")
    _run((IterNorm, "bf16", 4, 128, "rmsnorm", 2, True), "icarus", build_root,
         vectors=8)


def test_sidecar_latency_formula():
    core = IterNorm(fmt="bf16", lanes=16, max_d=1024, mode="rmsnorm", iters=5)
    sc = core.sidecar()
    # log2(16) + 3*5 + 1 (rmsnorm scale) + 6 fixed cycles, plus 2 * d/lanes beats
    assert "2*d/16 + 26 cycles" in sc["latency_formula"]
    assert sc["latency"] == 2 * 1024 // 16 + 26
    assert core.latency_of(64) == 34 and core.latency_of(1024) == 154
    json.dumps(sc)
    names = [f["name"] for f in sc["ports"]["i"]["fields"]]
    assert names[:2] == ["x0", "x1"] and names[-1] == "last" and len(names) == 17


def test_sidecar_latency_formula_layernorm():
    core = FisrNorm(fmt="bf16", lanes=16, max_d=1024, mode="layernorm", iters=5)
    sc = core.sidecar()
    # three buffer passes; 2*log2(16) (two trees) + 3*5 + 1 (scale) + 10 fixed cycles
    assert "3*d/16 + 34 cycles" in sc["latency_formula"]
    assert sc["latency"] == 3 * 1024 // 16 + 34
    assert core.latency_of(64) == 46 and core.latency_of(1024) == 226
    aff = IterNorm(fmt="fp32", lanes=4, max_d=64, mode="layernorm", iters=3, affine=True)
    assert aff.latency_of(64) == 3 * 16 + 2 * 2 + 9 + 1 + 11


@pytest.mark.parametrize("kwargs,msg", [
    (dict(fmt="fp16"), "fmt must be one of fp32, bf16, got fmt='fp16'"),
    (dict(lanes=12), "lanes must be a power of two in 1..64, got lanes=12"),
    (dict(lanes=128), "lanes must be in 1..64, got lanes=128"),
    (dict(max_d=1000), "max_d must be a power of two in 64..65536, got max_d=1000"),
    (dict(max_d=32), "max_d must be in 64..65536, got max_d=32"),
    (dict(iters=0), "iters must be in 1..64, got iters=0"),
    (dict(mode="batch"), "mode must be one of l2, layernorm, rmsnorm, got mode='batch'"),
    (dict(lam=0.3), "lam must be a power of two in 2**-8..1 (0.5, 0.25, ...), got lam=0.3"),
    (dict(affine="yes"), "affine must be True or False, not 'yes'"),
])
@pytest.mark.parametrize("cls", [IterNorm, FisrNorm])
def test_bad_params(cls, kwargs, msg):
    with pytest.raises(ParamError) as e:
        cls(**kwargs)
    assert str(e.value) == msg


def test_bad_start():
    with pytest.raises(ParamError) as e:
        IterNorm(start="fisr")
    assert str(e.value) == "start must be one of exp, rom, got start='fisr'"
    with pytest.raises(ParamError) as e:
        FisrNorm(start="rom")
    assert str(e.value) == ("start applies to iternorm only (fisrnorm starts from its "
                            "own fast inverse square root), got start='rom'")
    assert IterNorm(start="exp").module_name == IterNorm().module_name
    assert "start" not in IterNorm().sidecar()["params"]
    rom = IterNorm(start="rom")
    assert rom.sidecar()["params"]["start"] == "rom" and rom.module_name.endswith("_rom")


@pytest.mark.parametrize("kwargs,msg", [
    (dict(fmax=100, partials=2),
     "partials=2 is too few for fmax=100 MHz on ecp5: the lane sums' accumulate loop is "
     "4 cycles deep at that clock and needs partials >= 4; with partials=2 the delay "
     "model reaches about 56 MHz"),
    (dict(fmax=100, partials=65), "partials must be in 1..64, got partials=65"),
    (dict(fmax=300), "fmax=300 MHz is beyond what the delay model reaches for this "
     "{core}'s lane sums on ecp5: the fastest is about 185 MHz, with 15 stages"),
    (dict(fmax=0), "fmax must be a positive number of MHz, got fmax=0"),
    (dict(partials=4), "partials applies to the fmax build only (give fmax too), got "
     "partials=4"),
    (dict(family="ice40"), "family applies to the fmax build only (give fmax too), got "
     "family='ice40'"),
    (dict(reduce="tree"), "reduce applies to the fmax build only (give fmax too), got "
     "reduce='tree'"),
    (dict(fmax=100, reduce="sum"), "reduce must be one of tree, window, squares, got "
     "reduce='sum'"),
    (dict(fmax=100, mode="layernorm", reduce="window"), "reduce='window' applies to "
     "modes l2 and rmsnorm (layernorm's sums are signed: they take the tree), got "
     "mode='layernorm'"),
    (dict(fmax=100, mode="layernorm", reduce="squares"), "reduce='squares' applies to "
     "modes l2 and rmsnorm (layernorm's sums are signed: they take the tree), got "
     "mode='layernorm'"),
    (dict(fmax=100, reduce="squares", partials=3), "partials applies to reduce='tree' "
     "and 'window' (the squares take no lane sums), got partials=3"),
])
@pytest.mark.parametrize("cls", [IterNorm, FisrNorm])
def test_bad_params_fmax(cls, kwargs, msg):
    with pytest.raises(ParamError) as e:
        cls(lanes=2, max_d=64, **kwargs)
    assert str(e.value) == msg.format(core=cls.__name__.lower())


@pytest.mark.parametrize("cls,kwargs,msg", [
    (IterNorm, dict(fmax=100, fuse=True), "fuse applies to iternorm with start='rom' "
     "(the fused update relies on its 2**-8 bound), got start='exp'"),
    (FisrNorm, dict(fmax=100, fuse=True), "fuse applies to iternorm with start='rom' "
     "(the fused update relies on its 2**-8 bound), got fisrnorm"),
    (IterNorm, dict(start="rom", fuse=True), "fuse applies to the fmax build only "
     "(give fmax too), got fuse=True"),
    (IterNorm, dict(start="rom", fmax=100, fuse=1), "fuse must be True or False, not 1"),
])
def test_bad_fuse(cls, kwargs, msg):
    with pytest.raises(ParamError) as e:
        cls(lanes=2, max_d=64, **kwargs)
    assert str(e.value) == msg


def test_fmax_plan_fused():
    """fuse=True: the first update on NewtonStep, with the window sum taking s from
    its output in the cycle that starts the program (step -1), the start then
    writing s alone (step 0); the FMA only where an op needs it; named and in the
    sidecar."""
    l2 = IterNorm(fmt="bf16", lanes=16, max_d=1024, fmax=100, start="rom", iters=1,
                  fuse=True)
    Ln = l2.newton.latency
    assert l2.upd is None and l2.program == [(-1, "fused"), (0, "start")]
    assert l2.t_fin == Ln - 1 and not l2.u_from_start
    sc = l2.sidecar()
    assert sc["params"]["fuse"] is True and l2.module_name.endswith("_rom_fuse_p5_f100ecp5")
    assert "scalar_fma" not in sc["timing"] and sc["timing"]["fused_update"]["cuts"]
    plain = IterNorm(fmt="bf16", lanes=16, max_d=1024, fmax=100, start="rom", iters=1)
    assert plain.const - l2.const == plain.t_fin - l2.t_fin > 0
    # K = 2, rmsnorm: the FMA's first op reads a forwarded from the fused unit
    k2 = IterNorm(fmt="fp32", lanes=2, max_d=64, fmax=100, start="rom", iters=2,
                  mode="rmsnorm", fuse=True, reduce="window")
    assert k2.upd is not None
    # (at 2 lanes s does not land in a register first: a cycle less than at 16)
    assert k2.newton.latency == Ln - 1 and not k2.newton.land and l2.newton.land
    assert k2.program[:3] == [(-1, "fused"), (0, "start"),
                              (Ln - 2, ("a", "a", "negzero", "u"))]
    # with the tree (2 lanes' default) it reads t[0] after the tree's last op
    tree = IterNorm(fmt="bf16", lanes=2, max_d=64, fmax=100, start="rom", iters=1,
                    fuse=True)
    last = max(w for w, op in tree.program if op not in ("fused", "start"))
    assert [op for _, op in tree.program[-2:]] == ["fused", "start"]
    assert tree.program[-2][0] == last + tree.prog_lf + 1


def test_fmax_plan_squares():
    """reduce="squares": no lane Dots, the window sum squares the vector's elements
    on a second read of the buffer (three passes), its top one square's; named and
    in the sidecar."""
    c = IterNorm(fmt="bf16", lanes=2, max_d=64, fmax=100, start="rom", iters=1,
                 fuse=True, reduce="squares")
    assert c.dots == [] and c.upd is None and c.wsum.square.name == "bf16"
    assert (c.wsum.W, c.wsum.beats, c.wsum.headroom) == (41, 32, 3)
    assert c.passes == 3 and c.latency == 3 * 64 // 2 + c.const
    sc = c.sidecar()
    assert sc["params"]["reduce"] == "squares" and "lane_dot" not in sc["timing"]
    assert c.module_name == "iternorm_bf16_l2_d64_l2_k1_rom_fuse_squares_f100ecp5"
    assert c.program == [(-1, "fused"), (0, "start")]


def test_fmax_plan_and_sidecar():
    """The fmax build: sub-cores planned for the clock, the fewest partials the lane
    sums' loop needs (its depth), the scalar program's schedule respecting the FX
    FMA's latency, and the latency formula from its parts."""
    core = IterNorm(fmt="bf16", lanes=2, max_d=64, fmax=100)
    sc = core.sidecar()
    P = core.partials
    assert sc["params"]["partials"] == P and sc["params"]["fmax"] == 100
    loop = core.dots[0].loop_cycles
    assert P == loop
    assert core.module_name == f"iternorm_bf16_l2_d64_l2_k5_p{P}_f100ecp5"
    Lf = core.upd.latency + 1                  # the operands are registered first
    written = {}
    # every operand written before it is read: an FMA op's result forwarded into
    # the operand register of an op issued Lf cycles after it (the cycle it is
    # written), the start reading its register (a cycle later)
    for t, op in core.program:
        if op == "start":                      # s: the window sum's, before step 0
            assert t >= written.get(("t", 0), 0)
            written["a"] = written["negs"] = t + 1
            if core.u_from_start:              # IterNorm's starts: u0 = a0*a0 exact
                written["u"] = t + 1
            continue
        for src in op[:3]:
            src = "v" if src == "lamv" else src
            if src not in ("one", "negzero", "sqrt"):
                assert t >= written.get(src, 0), (t, op)
        written[op[3]] = t + Lf
    ops = [op for _, op in core.program]
    # below LANE_TREE lanes the default reduce is the tree: over 2P sums, start, K
    # updates (the first one's u written by the start)
    assert core.u_from_start and not core.window and core.wsum is None
    assert sc["params"]["reduce"] == "tree"
    assert len(ops) == (2 * P - 1) + 1 + 3 * 5 - 1
    assert core.latency_of(64) == 2 * 32 + core.const
    assert core.const == (P + core.dots[0].latency + core.t_fin
                          + core.outs[0].latency + 4)
    assert sc["timing"]["partials"] == P and sc["timing"]["estimate_mhz"] >= 100
    # --reduce window: the 2P sums through the window sum, B's program the start and
    # the updates alone; the window sum (and any wait for the top) in the latency
    win = IterNorm(fmt="bf16", lanes=2, max_d=64, fmax=100, reduce="window")
    ws = win.sidecar()
    assert win.window and win.partials == P and ws["params"]["reduce"] == "window"
    assert len(win.program) == 1 + 3 * 5 - 1
    assert ws["timing"]["window_bits"] == window_bits(64, P) == win.wsum.W
    assert win.wsum.lanes == 2 and win.wsum.beats == P
    Lw = win.wsum.latency + win.ws_wait
    assert win.const == (P + win.dots[0].latency + Lw + win.t_fin
                         + win.outs[0].latency + 4) < core.const
    assert win.module_name == f"iternorm_bf16_l2_d64_l2_k5_p{P}_window_f100ecp5"
    assert f"2*d/2 + {core.const} cycles" in sc["latency_formula"]


def test_fmax_plan_window_sum_16_lanes():
    """At 16 lanes (l2, rmsnorm) the 16 x P sums go through one window sum, no
    lanes' tree: B's program is the start and the updates alone; the latency
    formula counts the window sum (and the registers that hold the sums until the
    window's top is ready, none at 100 MHz). The ROM start writes the first
    update's u. 16 lanes, max_d 1024, ROM start, one update: 2*d/16 + 64 at 100 MHz
    (the issue's d = 64 target, <= 90 cycles, met: 72)."""
    from lpcores.hdl.iternorm import LANE_TREE
    core = IterNorm(fmt="bf16", lanes=16, max_d=1024, fmax=100, start="rom", iters=1)
    P = core.partials
    assert 16 >= LANE_TREE and not core.lane_tree and not core.adds
    assert core.wsum.lanes == 16 and core.ws_wait == 0
    ops = [op for _, op in core.program]
    assert len(ops) == 1 + 2                    # start, v and a
    Lw = core.wsum.latency
    assert core.const == (P + core.dots[0].latency + Lw + core.t_fin
                          + core.outs[0].latency + 5)
    assert f"the window sum's {Lw}" in core.sidecar()["latency_formula"]
    assert core.latency_of(64) <= 90
    # low clocks: shallow Dots, the sums wait for the top (levels + 2 - Ld)
    slow = IterNorm(fmt="bf16", lanes=16, max_d=1024, fmax=10, iters=1)
    assert slow.ws_wait == max(0, 4 + 2 - slow.dots[0].latency) > 0


def test_fmax_plan_lane_tree_layernorm():
    """layernorm (signed sums) keeps the trees: from LANE_TREE lanes on, A adds each
    partial sum's lanes on a tree of lanes - 1 FX adders and B's program adds the P
    partial sums only; the latency formula counts the tree's levels (each an
    adder's latency and its operands' landing register)."""
    from lpcores.hdl.iternorm import LANE_TREE
    core = IterNorm(fmt="bf16", lanes=16, max_d=1024, fmax=100, mode="layernorm",
                    iters=1)
    assert 16 >= LANE_TREE and core.lane_tree and len(core.adds) == 15
    assert not core.window and core.sidecar()["params"]["reduce"] == "tree"
    La = core.tree_latency
    assert La == (core.adds[0].latency + 1) * 4
    assert f"the lanes' tree {La}" in core.sidecar()["latency_formula"]
    assert not IterNorm(fmt="bf16", lanes=LANE_TREE // 2, max_d=64, fmax=100,
                        mode="layernorm").adds


def test_fmax_plan_affine():
    """The fmax build with affine: gamma and beta ports beside x, the output
    multipliers rounding into FX, an FMA a lane after them rounding into fmt, its
    latency counted in the formula."""
    from lpcores.golden.iternorm import FX
    core = IterNorm(fmt="bf16", lanes=2, max_d=64, mode="rmsnorm", fmax=100, affine=True)
    names = [f.name for f in core.in_fields]
    assert names == ["x0", "x1", "g0", "g1", "b0", "b1", "last"]
    assert core.outs[0].fc is FX and len(core.affs) == 2
    assert core.affs[0].fa is FX and core.affs[0].fc.name == "bf16"
    assert core.const == (core.partials + core.dots[0].latency + core.t_fin
                          + core.outs[0].latency + core.affs[0].latency + 4)
    sc = core.sidecar()
    assert sc["params"]["affine"] is True and "affine_fma" in sc["timing"]
    assert "multiply and affine FMA's latency" in sc["latency_formula"]
    assert core.module_name.startswith("iternorm_bf16_l2_d64_rmsnorm_k5_affine_p")


def test_fmax_plan_layernorm():
    """The fmax build in layernorm: the lane Dots take FX operands and add signed
    terms (x, then y*y), one FAdd a lane forms y = x - mean in A and another in C,
    the lanes' tree adds signed sums, the lane Dots run free at any lane count; a
    first program (tree over the sums of x, then the mean), then the second (tree,
    start, updates, the scale by sqrt(d)); three passes in the latency."""
    from lpcores.golden.iternorm import FX
    core = IterNorm(fmt="bf16", lanes=8, max_d=128, mode="layernorm", iters=2, fmax=100)
    P = core.partials
    d0 = core.dots[0]
    assert d0.fa is FX and d0.fb is FX and not d0.magnitude and P == d0.loop_cycles
    # the 24x24 product: the DSPs, a cut, the sum of their partial products (one
    # lane: its charges add up, not maxed as side-by-side branches)
    assert "p0.pp" in d0.timing["cuts"]
    assert len(core.ys) == len(core.ys_out) == 8 and core.ys[0].fa.name == "bf16"
    assert core.ys[0].fc is FX and not core.adds[0].magnitude and core.free_lanes
    assert IterNorm(fmt="bf16", lanes=2, max_d=64, mode="layernorm", fmax=100).free_lanes
    ops1 = [op for _, op in core.program1]
    assert len(ops1) == P - 1 + 1 and ops1[-1] == (("t", 0), "invd", "negzero", "mean")
    ops = [op for _, op in core.program]
    assert ops[P - 1] == "start" and ops[-1] == ("a", "sqrt", "negzero", "c")
    Ly = core.ys[0].latency
    lane_pass = P + Ly + d0.latency + core.tree_latency + 1
    Lc = core.ys_out[0].latency + core.outs[0].latency
    assert core.const == 2 * lane_pass + core.t_fin1 + core.t_fin + Lc + 6
    assert core.latency_of(128) == 3 * 16 + core.const
    assert f"3*d/8 + {core.const} cycles" in core.sidecar()["latency_formula"]


@pytest.mark.parametrize("n", range(1, 41))
def test_pairwise_tree_order(n):
    """The scalar program's tree (base.pairwise_tree), run in program order on
    symbols, adds in the golden model's order (golden.iternorm._tree: neighbours,
    an odd level's last value going up as it is), written here from its words."""
    from lpcores.hdl.base import pairwise_tree
    t = [str(i) for i in range(n)]
    for x, y, d in pairwise_tree(n):
        t[d] = f"({t[x]}+{t[y]})"
    want = [str(i) for i in range(n)]
    while len(want) > 1:
        want = ([f"({want[2 * k]}+{want[2 * k + 1]})" for k in range(len(want) // 2)]
                + want[len(want) // 2 * 2:])
    assert t[0] == want[0]
    assert len(pairwise_tree(n)) == n - 1


@pytest.mark.parametrize("cls,kw", [
    pytest.param(IterNorm, dict(fmt="bf16", lanes=16, max_d=1024, mode="rmsnorm"),
                 marks=pytest.mark.slow),
    (FisrNorm, dict(fmt="fp32", lanes=2, max_d=64, iters=2, affine=True)),
    (IterNorm, dict(fmt="bf16", lanes=2, max_d=64, mode="layernorm", iters=1,
                    affine=True)),
    (FisrNorm, dict(fmt="bf16", lanes=4, max_d=64, mode="rmsnorm", iters=2, fmax=100)),
])
def test_lint_clean_and_deterministic(cls, kw, tmp_path):
    # (tests/test_generate.py does this for every registered core once it lists a
    # representative configuration of these two)
    from lpcores.hdl import generate, verilog_text
    from lpcores.sim.tools import lint
    v, _ = generate(cls(**kw), tmp_path)
    ok, out = lint(v)
    assert ok, out
    assert verilog_text(cls(**kw)) == v.read_text()
    assert "mem" in v.read_text()              # the vector buffer is one memory
