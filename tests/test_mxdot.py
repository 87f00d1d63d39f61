"""MXDot: the generated Verilog against golden.mx_dot (itself checked against exact
rational arithmetic in test_golden_mx.py)."""

import json
import pytest

from lpcores.errors import ParamError
from lpcores.hdl.base import generate
from lpcores.hdl.fp import kulisch_width
from lpcores.hdl.mxarith import mx_block_width
from lpcores.hdl.mxdot import MXDot
from lpcores.sim import runner
from lpcores.sim.tools import lint


# (kwargs, testbench options, in the default run?): every element format on the
# diagonal, e4m3 x e2m1, lanes 8/16/32, each stage count (32 lanes by default with
# contexts and fmax, below; with stages under -m slow)
CASES = [
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=32, stages=1), {}, False),
    (dict(a_fmt="e2m1", b_fmt="e2m1", lanes=8, stages=0), {}, True),
    (dict(a_fmt="e4m3", b_fmt="e2m1", lanes=16, stages=3), {}, False),
    (dict(a_fmt="int8", b_fmt="int8", lanes=8, stages=2), {}, False),
    (dict(a_fmt="e5m2", b_fmt="e5m2", lanes=16, stages=2), {}, False),
    (dict(a_fmt="e3m2", b_fmt="e3m2", lanes=32, stages=0), {}, False),
    (dict(a_fmt="e2m3", b_fmt="e2m3", lanes=8, stages=3), {}, False),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=8, stages=0), {}, False),
    (dict(a_fmt="e2m1", b_fmt="e2m1", lanes=32, stages=2), {}, False),
    (dict(a_fmt="int8", b_fmt="int8", lanes=32, stages=1), {}, False),
    (dict(a_fmt="int8", b_fmt="e4m3", lanes=16, stages=1), {}, False),
    (dict(a_fmt="e5m2", b_fmt="e4m3", lanes=8, stages=1), {}, False),
    # contexts (SPEC §4.2): interleaved dot products; with fmax the fp32 loop is deep
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=32, contexts=8, fmax=100), {}, True),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=8, contexts=16, fmax=150), {}, False),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=8, contexts=8, fmax=100), {}, False),
    (dict(a_fmt="e2m3", b_fmt="int8", lanes=8, contexts=2, stages=3), {}, True),
    (dict(a_fmt="int8", b_fmt="e4m3", lanes=16, contexts=16, fmax=100), {}, False),
    (dict(a_fmt="e5m2", b_fmt="e5m2", lanes=4, contexts=12, fmax=60), {}, False),
    (dict(a_fmt="e2m1", b_fmt="e2m1", lanes=8, contexts=3, fmax=45), {}, False),
    # partials (docs/mx.md, "A single stream at speed"): one dot product over P sums
    # (the default run: the smallest elements, a Verilator build a third of e4m3's)
    (dict(a_fmt="e2m1", b_fmt="e2m1", lanes=32, partials=4, fmax=60), {}, True),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=32, partials=8, fmax=100), {}, False),
    (dict(a_fmt="int8", b_fmt="int8", lanes=32, partials=2, fmax=30), {}, False),
    (dict(a_fmt="e5m2", b_fmt="e2m1", lanes=32, partials=16, fmax=125), {}, False),
    (dict(a_fmt="e2m1", b_fmt="int8", lanes=32, partials=8, fmax=80), {}, False),
    (dict(a_fmt="int8", b_fmt="e4m3", lanes=32, partials=4, fmax=60), {}, False),
    # 150 MHz: the tree's fp32 adder on a registered MULT18X18D (refused before, the
    # inferred DSP's ~143 MHz)
    (dict(a_fmt="e2m1", b_fmt="e2m1", lanes=32, partials=16, fmax=150), {}, False),
]
ICARUS = 1                          # the one configuration Icarus runs


def _id(kw):
    pipe = f"f{kw['fmax']}" if "fmax" in kw else f"s{kw['stages']}"
    return (f"{kw['a_fmt']}x{kw['b_fmt']}-l{kw['lanes']}-{pipe}"
            + (f"-k{kw['contexts']}" if "contexts" in kw else "")
            + (f"-p{kw['partials']}" if "partials" in kw else ""))


@pytest.mark.sim
@pytest.mark.parametrize(
    "idx", [pytest.param(i, id=_id(c[0]), marks=() if c[2] else pytest.mark.slow)
            for i, c in enumerate(CASES)])
def test_mxdot_rtl(idx, sim, build_root):
    kw, opts, _ = CASES[idx]
    if sim == "icarus" and idx != ICARUS:
        pytest.skip("Icarus runs one small configuration (e2m1 x e2m1, 8 lanes)")
    res = runner.run(MXDot(**kw), "lpcores.sim.mxdot", sim=sim, seed=77, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)
    assert res.tests == 3


def test_block_width_matches_kulisch_width():
    """For float pairs the MX block word is the Kulisch word of 32 terms."""
    fl = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1")
    for a in fl:
        for b in fl:
            assert mx_block_width(a, b) == kulisch_width(a, b, 32)
    # int8 (Q1.6, |x| <= 128 * 2**-6): 32 * 2**14 at LSB 2**-12 needs 20 bits + sign
    assert mx_block_width("int8", "int8") == (21, -12)


def test_mxdot_sidecar_and_lint(tmp_path):
    core = MXDot(a_fmt="e4m3", b_fmt="e2m1", lanes=8, stages=2)
    v, j = generate(core, tmp_path)
    ok, out = lint(v)
    assert ok, out
    side = json.loads(j.read_text())
    assert side["module"] == "mxdot_e4m3_e2m1_l8_s2"
    assert side["latency"] == 3 and "a block of 32 elements is 4 beats" in \
        side["beats_per_result"]
    names = [f["name"] for f in side["ports"]["i"]["fields"]]
    assert names == ([f"a{k}" for k in range(8)] + [f"b{k}" for k in range(8)]
                     + ["sa", "sb", "last"])
    widths = {f["name"]: (f["width"], f["format"]) for f in side["ports"]["i"]["fields"]}
    assert widths["a0"] == (8, "e4m3") and widths["b7"] == (4, "e2m1")
    assert widths["sa"] == (8, "e8m0")
    assert side["ports"]["o"]["fields"] == [{"name": "r", "offset": 0, "width": 32,
                                             "format": "fp32"}]


@pytest.mark.parametrize("kwargs,msg", [
    (dict(a_fmt="bf16", b_fmt="e4m3"),
     "a_fmt must be one of e4m3, e5m2, e3m2, e2m3, e2m1, int8, got a_fmt='bf16'"),
    (dict(a_fmt="e4m3", b_fmt="fp16"),
     "b_fmt must be one of e4m3, e5m2, e3m2, e2m3, e2m1, int8, got b_fmt='fp16'"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=24),
     "lanes must divide 32 (1, 2, 4, 8, 16 or 32), got lanes=24"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=0), "lanes must be in 1..32, got lanes=0"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", stages=4),
     "stages must be in 0..3 for mxdot (it has 3 cut points), got stages=4"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", contexts=0),
     "contexts must be in 1..64, got contexts=0"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", contexts=4, fmax=100),
     "contexts=4 is too few for fmax=100 MHz on ecp5: the accumulate loop of this "
     "mxdot is 7 cycles deep at that clock and needs contexts >= 7; with contexts=4 "
     "the delay model reaches about 66 MHz"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", stages=1, fmax=100),
     "fmax=100 and stages=1 are alternatives (a clock to meet, or a register count): "
     "give one"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", partials=3, fmax=100),
     "partials must be a power of two in 1..16, got partials=3"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", partials=0), "partials must be in 1..16, got "
     "partials=0"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", lanes=8, partials=8, fmax=100),
     "partials needs lanes=32 (a block a beat), got lanes=8"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", contexts=8, partials=8, fmax=100),
     "partials and contexts are alternatives (partials split one dot product, contexts "
     "interleave several), got contexts=8"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", partials=8),
     "partials applies to the fmax build only (give fmax too), got partials=8"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", partials=16, fmax=160),
     "fmax=160 MHz is beyond what the delay model reaches for this mxdot on ecp5: the "
     "fastest is about 153 MHz, with 26 stages"),
    (dict(a_fmt="e4m3", b_fmt="e4m3", partials=4, fmax=100),
     "partials=4 is too few for fmax=100 MHz on ecp5: the accumulate loop of this mxdot "
     "is 7 cycles deep at that clock and needs partials >= 7; with partials=4 the delay "
     "model reaches about 66 MHz"),
])
def test_mxdot_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        MXDot(**kwargs)
    assert str(e.value) == msg


def test_partials_plan_and_sidecar(tmp_path):
    """partials: the tree's static schedule reads only written sums, the latency is
    its parts', and the generated Verilog lints clean."""
    core = MXDot(a_fmt="e4m3", b_fmt="e4m3", partials=8, fmax=100)
    assert core.module_name == "mxdot_e4m3_e4m3_l32_p8_f100ecp5"
    Lf = core.red.latency + 1
    written = {i: 0 for i in range(8)}               # the collected sums
    for t, (x, y, dst) in core.program:
        assert t >= written[x] and t >= written[y], (t, x, y)
        written[dst] = t + Lf + 1
    assert len(core.program) == 7 and core.t_fin == written[0] - 1
    assert core.latency == core.inner.latency + 8 + core.t_fin + 2
    assert core.inner.contexts == 8 and core.inner.loop_cycles <= 8
    v, j = generate(core, tmp_path)
    ok, out = lint(v)
    assert ok, out
    side = json.loads(j.read_text())
    assert side["params"]["partials"] == 8 and side["accumulator"]["partials"] == 8
    assert side["latency"] == core.latency
