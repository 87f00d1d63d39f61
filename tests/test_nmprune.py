"""NMPrune: the generated Verilog against golden.nm.nm_prune (itself checked against
a stable-sort oracle in test_golden_nm.py): exhaustive 2:4 over a 16-value e4m3 set,
random 1:2, 4:8, 8:16 and odd ratios in every format, scaled mode with run-time
scale loads, every cut point."""

import json
import subprocess
import sys

import pytest

from lpcores.errors import ParamError
from lpcores.hdl import generate
from lpcores.hdl.nm import NMPrune
from lpcores.sim import runner
from lpcores.sim.tools import available

SLOW = pytest.mark.slow

# (kwargs, testbench options[, marks]): the default run covers every ratio family,
# every format, the scaled mode and every stage count; the sorting network and the
# larger configurations run with -m slow.
CASES = [
    (dict(n=2, m=4, fmt="e4m3", groups=8, stages=1), {"mode": "exhaustive"}),
    (dict(n=1, m=2, fmt="int8", groups=4, scaled=True, channels=16, stages=1), {}),
    (dict(n=4, m=8, fmt="bf16", groups=1, scaled=True, channels=16, stages=2), {}),
    (dict(n=8, m=16, fmt="e5m2", groups=1, stages=2), {}),
    (dict(n=1, m=2, fmt="e5m2", groups=4, stages=0), {}, SLOW),
    (dict(n=8, m=16, fmt="fp16", groups=1, stages=2), {}, SLOW),
    (dict(n=3, m=5, fmt="int8", groups=2, scaled=True, channels=30, stages=3), {}, SLOW),
    (dict(n=2, m=4, fmt="int8", groups=2, stages=2), {}, SLOW),
    (dict(n=4, m=8, fmt="bf16", groups=2, stages=1), {}, SLOW),
    (dict(n=3, m=5, fmt="e4m3", groups=3, stages=0), {"beats": 1500}, SLOW),
    (dict(n=2, m=4, fmt="e4m3", groups=2, scaled=True, channels=24, stages=3), {}, SLOW),
    (dict(n=8, m=16, fmt="e5m2", groups=1, scaled=True, channels=32, stages=2),
     {"beats": 1500}, SLOW),
    (dict(n=15, m=16, fmt="e4m3", groups=1, stages=1), {}, SLOW),
    # the sorting-network alternative must be bit-identical
    (dict(n=2, m=4, fmt="e4m3", groups=8, selection="sortnet", stages=0),
     {"mode": "exhaustive"}, SLOW),
    (dict(n=3, m=6, fmt="bf16", groups=2, scaled=True, channels=24, selection="sortnet",
          stages=2), {}, SLOW),
    (dict(n=8, m=16, fmt="int8", groups=1, selection="sortnet", stages=1), {"beats": 1500},
     SLOW),
]

# Icarus is an order of magnitude slower: it runs a small subset.
ICARUS = [
    (dict(n=2, m=4, fmt="e4m3", groups=2, stages=1), {"beats": 400}),
    (dict(n=4, m=8, fmt="e5m2", groups=1, scaled=True, channels=16, stages=2),
     {"beats": 300}),
]


def _id(kw, opts, *marks):
    return (f"{kw['n']}of{kw['m']}-{kw['fmt']}-g{kw['groups']}"
            f"{'-scaled' if kw.get('scaled') else ''}"
            f"{'-sortnet' if kw.get('selection') == 'sortnet' else ''}-s{kw['stages']}"
            + (f"-{opts['mode']}" if "mode" in opts else ""))


def sim_params(config, cases, icarus, ident):
    """pytest params (simulator, kwargs, options): every case on Verilator, the
    ``icarus`` subset on Icarus (``--sim`` picks, as tests/conftest.py)."""
    choice = config.getoption("--sim")
    sims = ("verilator", "icarus") if choice == "all" else (choice,)
    out = []
    for s in sims:
        for c in (cases if s == "verilator" else icarus):
            out.append(pytest.param(s, c[0], c[1], id=f"{s}-{ident(*c)}",
                                    marks=list(c[2:])))
    return out


def need_sim(config, name):
    if not available(name):
        if config.getoption("--sim") == "all" and name == "icarus":
            pytest.skip("Icarus Verilog (iverilog) is not installed")
        pytest.fail(f"simulator {name} was asked for with --sim but is not installed")


def pytest_generate_tests(metafunc):
    if "simulator" in metafunc.fixturenames:
        metafunc.parametrize("simulator,kw,opts",
                             sim_params(metafunc.config, CASES, ICARUS, _id))


@pytest.mark.sim
def test_nmprune_rtl(simulator, kw, opts, request, build_root):
    need_sim(request.config, simulator)
    core = NMPrune(**kw)
    res = runner.run(core, "lpcores.sim.nmprune", sim=simulator, seed=4242, options=opts,
                     build_root=build_root)
    runner.assert_passes(res)
    assert res.tests == 3


def test_nmprune_interface(tmp_path):
    core = NMPrune(n=2, m=4, fmt="e4m3", groups=2, stages=1)
    assert core.module_name == "nmprune_2of4_e4m3_g2_s1"
    _, jpath = generate(core, tmp_path)
    side = json.loads(jpath.read_text())
    names = [f["name"] for f in side["ports"]["o"]["fields"]]
    assert names == ["v0_0", "v0_1", "v1_0", "v1_1", "idx0", "idx1",
                     "d0_0", "d0_1", "d0_2", "d0_3", "d1_0", "d1_1", "d1_2", "d1_3"]
    assert [f["width"] for f in side["ports"]["o"]["fields"]][4:6] == [4, 4]
    assert side["ports"]["i"]["width"] == 64 and side["latency"] == 2
    sc = NMPrune(n=3, m=5, fmt="bf16", groups=2, scaled=True, channels=30)
    assert sc.module_name == "nmprune_3of5_bf16_g2_sc30_s0"
    assert sc.rows == 3 and sc.in_fields[-1].name == "load"
    assert [f.width for f in sc.out_fields if f.name.startswith("idx")] == [9, 9]
    assert sc.sidecar()["scales"]["rows"] == 3


@pytest.mark.parametrize("kwargs,msg", [
    (dict(n=4, m=4, fmt="e4m3"), "n must be < m, got n=4, m=4"),
    (dict(n=0, m=4, fmt="e4m3"), "n must be at least 1, got n=0"),
    (dict(n=2, m=17, fmt="e4m3"), "m must be in 2..16, got m=17"),
    (dict(n=2, m=1, fmt="e4m3"), "m must be in 2..16, got m=1"),
    (dict(n=2, m=4, fmt="fp32"),
     "fmt must be one of bf16, fp16, e4m3, e5m2, int8, got fmt='fp32'"),
    (dict(n=2, m=4, fmt="e4m3", groups=0), "groups must be in 1..64, got groups=0"),
    (dict(n=2, m=4, fmt="e4m3", scaled=1), "scaled must be True or False, not 1"),
    (dict(n=2, m=4, fmt="e4m3", channels=8),
     "channels needs scaled=True, got channels=8"),
    (dict(n=2, m=4, fmt="e4m3", groups=2, scaled=True, channels=12),
     "channels must be a multiple of groups*m = 8, got channels=12"),
    (dict(n=2, m=4, fmt="e4m3", stages=3),
     "stages must be in 0..2 for nmprune (it has 2 cut points), got stages=3"),
    (dict(n=2, m=4, fmt="e4m3", selection="bitonic"),
     "selection must be one of allpairs, sortnet, got selection='bitonic'"),
    (dict(n=2, m=4, fmt="e4m3", selection="sortnet", stages=2),
     "stages must be in 0..1 for nmprune (it has 1 cut points), got stages=2"),
    (dict(n=2, m=4, fmt="e4m3", scaled=True, stages=4),
     "stages must be in 0..3 for nmprune (it has 3 cut points), got stages=4"),
])
def test_nmprune_bad_params(kwargs, msg):
    with pytest.raises(ParamError) as e:
        NMPrune(**kwargs)
    assert str(e.value) == msg


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lpcores.cli", *map(str, args)],
                          capture_output=True, text=True)


def test_nmprune_cli(tmp_path):
    r = _cli("generate", "nmprune", "--n", 2, "--m", 4, "--fmt", "e4m3", "--groups", 2,
             "--scaled", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "nmprune_2of4_e4m3_g2_sc8_s0.json").read_text())
    assert side["params"] == {"n": 2, "m": 4, "fmt": "e4m3", "groups": 2, "scaled": True,
                              "channels": 8, "selection": "allpairs", "stages": 0}
    text = (tmp_path / "nmprune_2of4_e4m3_g2_sc8_s0.v").read_text()
    assert "module nmprune_2of4_e4m3_g2_sc8_s0(" in text
    for args, msg in [(("--n", 4, "--m", 4), "--n must be < --m, got --n=4, --m=4"),
                      (("--n", 2, "--m", 17), "--m must be in 2..16, got --m=17")]:
        r = _cli("generate", "nmprune", *args, "--fmt", "e4m3", "--out", tmp_path)
        assert r.returncode == 2 and r.stderr.strip().endswith(msg), r.stderr
        assert "Traceback" not in r.stderr


def check_generated(build, tmp_path):
    """Lint-clean under verilator -Wall, byte-identical on a second elaboration, no
    machine paths, sidecar widths = Verilog port widths (as tests/test_generate.py)."""
    import re
    from lpcores.hdl import verilog_text
    from lpcores.sim.tools import lint
    core = build()
    v, j = generate(core, tmp_path)
    text = v.read_text()
    ok, out = lint(v)
    assert ok, out
    assert verilog_text(build()) == text
    assert not re.search(r"/(work|tmp|home|root|usr)/", text)
    side = json.loads(j.read_text())
    assert side["module"] == core.module_name == v.stem
    for port in ("i", "o"):
        decl = re.search(rf"(input|output) \[(\d+):0\] {port}__payload;", text)
        assert decl and int(decl.group(2)) + 1 == side["ports"][port]["width"]
    return text


@pytest.mark.parametrize("kw", [
    dict(n=2, m=4, fmt="e4m3", groups=2, stages=2),
    dict(n=3, m=5, fmt="bf16", groups=1, scaled=True, channels=10, stages=3),
    dict(n=8, m=16, fmt="int8", selection="sortnet", stages=1),
], ids=["2of4", "3of5-scaled", "8of16-sortnet"])
def test_nmprune_generated(kw, tmp_path):
    check_generated(lambda: NMPrune(**kw), tmp_path)
