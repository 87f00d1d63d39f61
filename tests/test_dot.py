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
    # contexts (SPEC §4.2): interleaved dot products; with fmax the fp loop is deep
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", max_terms=16,
          addend=True, contexts=10, fmax=125), {}),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", max_terms=16,
          contexts=8, fmax=125), {}),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=4, accumulate="fp", max_terms=64,
          addend=True, contexts=16, fmax=100), {}),
    (dict(a_fmt="bf16", b_fmt="e5m2", out_fmt="fp16", lanes=1, accumulate="fp",
          max_terms=16, rounding="rtz", contexts=6, fmax=70), {}),
    (dict(a_fmt="e4m3", b_fmt="e5m2", out_fmt="bf16", lanes=4, accumulate="fp",
          max_terms=64, rounding="rtz", contexts=3, stages=1), {}),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=4, max_terms=64, addend=True, contexts=5,
          stages=2), {}),
    (dict(a_fmt="int8", b_fmt="int8", lanes=8, max_terms=64, addend=True, contexts=2,
          stages=3), {}),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", max_terms=16,
          fmax=16), {}),
    # magnitude: the dot product of |a| and |b| (golden.dot of the codes with their
    # signs cleared); the loop adds magnitudes, no LZC. IterNorm's lane shape; fp16
    # with e5m2 (subnormal and overflowing sums); the one-cycle loop
    (dict(a_fmt="bf16", b_fmt="bf16", lanes=1, accumulate="fp", max_terms=64,
          contexts=5, fmax=100, magnitude=True), {}),
    (dict(a_fmt="e5m2", b_fmt="e5m2", out_fmt="fp16", lanes=4, accumulate="fp",
          max_terms=64, contexts=6, fmax=100, magnitude=True), {}),
    (dict(a_fmt="bf16", b_fmt="e5m2", out_fmt="fp16", lanes=1, accumulate="fp",
          max_terms=16, rounding="rtz", contexts=6, fmax=70, magnitude=True), {}),
    (dict(a_fmt="e4m3", b_fmt="e5m2", out_fmt="bf16", lanes=2, accumulate="fp",
          max_terms=64, stages=1, magnitude=True), {}),
]


def _id(kw, opts):
    pipe = f"f{kw['fmax']}" if "fmax" in kw else f"s{kw['stages']}"
    return (f"{kw['a_fmt']}x{kw['b_fmt']}-l{kw['lanes']}-"
            f"{kw.get('accumulate', 'exact')}-{pipe}"
            + (f"-k{kw['contexts']}" if "contexts" in kw else "")
            + ("-abs" if kw.get("magnitude") else "")
            + ("-exhaustive" if opts else ""))


# on Icarus by default: e4m3 exact, bf16 fp, int8, fp with 9 contexts, exact with 5,
# magnitude into fp16
ICARUS = {0, 4, 7, 9, 14, 18}


# under -m slow (2026-11-29, the default suite's 20-minute budget): a case whose
# datapath another default case covers: e5m2 16 lanes exact beside e2m1 x e4m3 16
# lanes; e4m3 x e5m2 rtz fp (one stage, no contexts) beside its 3-context twin;
# bf16 x e5m2 at 70 MHz beside its magnitude twin (the signed fp loop: e4m3 at 125)
SLOW = {2, 6, 12}


@pytest.mark.sim
@pytest.mark.parametrize("kw,opts,on_icarus", [
    pytest.param(*c, k in ICARUS, marks=pytest.mark.slow) if k in SLOW
    else c + (k in ICARUS,) for k, c in enumerate(CASES)],
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
    (dict(a_fmt="bf16", b_fmt="bf16", accumulate="fp", addend=True, magnitude=True),
     "magnitude=True applies to accumulate='fp' without an addend, got addend=True"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", magnitude=True),
     "magnitude=True applies to accumulate='fp' without an addend, got "
     "accumulate='exact'"),
    (dict(a_fmt="bf16", b_fmt="bf16", magnitude="yes"),
     "magnitude must be True or False, not 'yes'"),
    (dict(a_fmt="int8", b_fmt="int8", out_fmt="fp32"),
     "out_fmt must be int32 for int8 elements, got out_fmt='fp32'"),
    (dict(a_fmt="int8", b_fmt="int8", max_terms=1 << 20),
     "max_terms must be at most 131071 for int8 (int32 accumulator), got max_terms=1048576"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", accumulate="fp", stages=3),
     "stages must be in 0..2 for dot (it has 2 cut points), got stages=3"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", contexts=0), "contexts must be in 1..64, got contexts=0"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", contexts=-2),
     "contexts must be in 1..64, got contexts=-2"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", contexts=2.5),
     "contexts must be an integer, not 2.5"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", contexts=8, fmax=140),
     "contexts=8 is too few for fmax=140 MHz on ecp5: the accumulate loop of this dot "
     "is 10 cycles deep at that clock and needs contexts >= 10; with contexts=8 the "
     "delay model reaches about 129 MHz"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", fmax=50),
     "contexts=1 is too few for fmax=50 MHz on ecp5: the accumulate loop of this dot "
     "is 3 cycles deep at that clock and needs contexts >= 3; with contexts=1 the "
     "delay model reaches about 23 MHz"),
])
def test_dot_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        Dot(**kwargs)
    assert str(e.value) == msg


def test_contexts_one_keeps_the_netlist():
    """contexts=1 is the single accumulator of before: same module, same Verilog."""
    from lpcores.hdl.base import verilog_text
    for kw in (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", stages=1),
               dict(a_fmt="int8", b_fmt="int8", lanes=8, addend=True, stages=2)):
        a, b = Dot(**kw), Dot(**kw, contexts=1)
        assert a.module_name == b.module_name and "contexts" not in b.params
        assert verilog_text(a) == verilog_text(b)


def test_contexts_sidecar(tmp_path):
    """The sidecar records the contexts and the loop's depth (cycles); the module
    name carries _k<contexts>; the loop fits the contexts."""
    import json
    from lpcores.hdl.base import generate
    core = Dot(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", contexts=10,
               fmax=125)
    _, j = generate(core, tmp_path)
    side = json.loads(j.read_text())
    assert side["module"] == "dot_e4m3_e4m3_fp32_l1_fp_t1024_k10_f125ecp5"
    assert side["params"]["contexts"] == 10
    acc = side["accumulator"]
    assert acc["contexts"] == 10 and 2 <= acc["loop_cycles"] <= 10
    assert side["timing"]["estimate_mhz"] >= 125
    # stages alone: the loop stays one cycle deep
    assert Dot(a_fmt="e4m3", b_fmt="e4m3", lanes=1, accumulate="fp", contexts=4,
               stages=2).loop_cycles == 1


def test_interleave_and_groups_of():
    """The testbench's interleaving over contexts, grouped back by context, gives
    the dot products back (whole, or the last of a context shortened)."""
    import numpy as np
    from lpcores.sim.stream import groups_of, interleave
    lengths = [3, 1, 4, 1, 5, 9, 2, 6]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    dots = [list(range(s, s + n)) for s, n in zip(starts, lengths)]
    for k in (1, 2, 3, 5):
        order, last = interleave(lengths, k)
        assert len(order) % k == 0 and last[-k:].all()
        groups = [[int(order[j]) for j in g]
                  for g in groups_of(list(range(len(order))), last, k)]
        assert sum(len(g) for g in groups) == len(order)
        for g in groups:              # each a dot product, or a prefix of one
            d = next(d for d in dots if d[0] == g[0])
            assert g == d[:len(g)]
        # contexts=1: exactly the back-to-back dot products
        if k == 1:
            assert groups == dots
