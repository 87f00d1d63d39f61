"""Generated output: deterministic, free of machine paths, lint-clean under
``verilator --lint-only -Wall``, with a sidecar that describes the ports truly."""

import json
import re

import pytest

from lpcores.cores import CORES
from lpcores.hdl import Convert, generate, verilog_text
from lpcores.sim.tools import lint

# one representative configuration per core (grows with every core)
REPRESENTATIVE = {
    "convert": [dict(in_fmt="fp32", out_fmt="e4m3", stages=s) for s in (0, 1, 2)]
    + [dict(in_fmt="e2m1", out_fmt="bf16"), dict(in_fmt="fp16", out_fmt="e5m2",
                                                 saturate=True, rounding="rtz")],
    "fma": [dict(a_fmt="e4m3", b_fmt="e4m3", acc_fmt="fp32", stages=s) for s in (0, 5)]
    + [dict(a_fmt="bf16", b_fmt="bf16", acc_fmt="fp32", stages=2),
       dict(a_fmt="e2m1", b_fmt="e5m2", acc_fmt="bf16", rounding="rtz")],
    "dot": [dict(a_fmt="e4m3", b_fmt="e4m3", lanes=8, stages=5, addend=True),
            dict(a_fmt="bf16", b_fmt="bf16", lanes=2, accumulate="fp", stages=2),
            dict(a_fmt="int8", b_fmt="int8", lanes=16, stages=3, addend=True)],
    "iternorm": [dict(fmt="bf16", lanes=4, max_d=64, mode="rmsnorm", iters=2,
                      affine=True)],
    "fisrnorm": [dict(fmt="fp32", lanes=2, max_d=64, iters=1)],
    "mxquant": [dict(in_fmt="fp32", elem_fmt="e4m3", lanes=8, stages=1),
                dict(in_fmt="bf16", elem_fmt="int8", lanes=32, rounding="away")],
    "mxdot": [dict(a_fmt="e4m3", b_fmt="e2m1", lanes=8, stages=1),
              dict(a_fmt="int8", b_fmt="int8", lanes=32)],
    "nmprune": [dict(n=2, m=4, fmt="bf16", groups=2, stages=1),
                dict(n=4, m=8, fmt="int8", scaled=True, selection="sortnet")],
    "nmdot": [dict(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3", groups=2, stages=1),
              dict(n=8, m=16, a_fmt="int8", b_fmt="int8", addend=True)],
    "sparselinear": [dict(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3", groups=2, scaled=True)],
}


def _configs():
    for name, spec in CORES.items():
        for kw in REPRESENTATIVE[name]:
            yield pytest.param(spec, kw, id=f"{name}-" + "-".join(map(str, kw.values())))


def test_every_core_has_a_representative():
    assert set(REPRESENTATIVE) == set(CORES)


@pytest.mark.parametrize("spec,kw", list(_configs()))
def test_lint_clean_and_deterministic(spec, kw, tmp_path):
    core = spec.build(**kw)
    v, j = generate(core, tmp_path / "a")
    text = v.read_text()
    ok, out = lint(v)
    assert ok, out
    # byte-identical on a second, independent elaboration
    assert verilog_text(spec.build(**kw)) == text
    assert not re.search(r"/(work|tmp|home|root|usr)/", text), "machine path in output"
    side = json.loads(j.read_text())
    assert side["module"] == core.module_name == v.stem
    assert f"module {core.module_name}(" in text
    # the sidecar's port widths are the Verilog's port widths
    for port in ("i", "o"):
        width = side["ports"][port]["width"]
        decl = re.search(rf"(input|output) \[(\d+):0\] {port}__payload;", text)
        assert decl and int(decl.group(2)) + 1 == width
        offs = [(f["offset"], f["width"]) for f in side["ports"][port]["fields"]]
        assert sum(w for _, w in offs) == width
        assert all(a + w == b for (a, w), (b, _) in zip(offs, offs[1:]))
    assert side["latency"] >= 1


def test_module_names_encode_parameters():
    a = Convert(in_fmt="fp32", out_fmt="e4m3", stages=1).module_name
    b = Convert(in_fmt="fp32", out_fmt="e4m3", stages=2).module_name
    c = Convert(in_fmt="fp32", out_fmt="e4m3", stages=1, saturate=True).module_name
    assert len({a, b, c}) == 3
    assert a == "convert_fp32_e4m3_s1"
