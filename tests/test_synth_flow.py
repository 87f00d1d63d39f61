"""The synthesis flows (SPEC §6): every target runs, the report is honest about what it
counts, and a latch or a broken core is reported, not hidden."""

import json

import pytest

from lpcores.errors import ParamError
from lpcores.hdl import generate
from lpcores.hdl.convert import Convert
from lpcores.synth import SynthError, TARGETS, check_target, report_markdown, run_synth

pytestmark = pytest.mark.synth


@pytest.fixture(scope="module")
def convert_core(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    v, j = generate(Convert(in_fmt="fp32", out_fmt="e4m3", stages=1), d)
    return v, json.loads(j.read_text())


@pytest.fixture(scope="module")
def reports(convert_core, tmp_path_factory):
    v, side = convert_core
    d = tmp_path_factory.mktemp("syn")
    return {t: run_synth(v, side, t, workdir=d / t, pnr=t in ("ice40", "ecp5"),
                         progress=PROGRESS.append)
            for t in TARGETS}


PROGRESS = []          # what run_synth says it is running (lpcores synth: on stderr)


def test_pnr_says_which_seed_runs(reports):
    assert sorted(PROGRESS) == ["[1/1] nextpnr-ecp5, seed 1", "[1/1] nextpnr-ice40, seed 1"]


def test_every_target_synthesizes(reports, convert_core):
    _, side = convert_core
    iw, ow = side["ports"]["i"]["width"], side["ports"]["o"]["width"]
    ffs = set()
    for t, r in reports.items():
        res = r["resources"]
        assert res["latches"] == 0, t
        assert res["luts"] > 0, t
        # the output register (payload + valid) is always there
        assert res["ffs"] >= ow + 1, t
        # the wrapper: input shift register, output shift register, 5 control FFs
        assert r["wrapper"]["ffs"] == iw + ow + 5, t
        ffs.add(res["ffs"])
        assert r["latency"] == 2 and r["params"]["in_fmt"] == "fp32"
        md = report_markdown(r)
        assert r["module"] in md and "Cells by type" in md
    # flip-flops are not technology dependent: the same count on every target
    assert len(ffs) == 1, reports


def test_pnr_reports_fmax_and_path(reports):
    for t in ("ice40", "ecp5"):
        r = reports[t]
        assert r["fmax_mhz"] > 1.0
        cp = r["critical_path"]
        assert cp["delay_ns"] > 0 and cp["from"] and cp["to"]
        assert "yowasp-nextpnr-" + t in r["tools"]


def test_latches_are_counted(tmp_path):
    v = tmp_path / "latchy.v"
    v.write_text("""module latchy(input clk, input rst, input [1:0] i__payload,
  input i__valid, output i__ready, output reg [0:0] o__payload, output o__valid,
  input o__ready);
  always @* if (i__payload[1]) o__payload = i__payload[0];
  assign i__ready = o__ready; assign o__valid = i__valid;
endmodule
""")
    side = {"module": "latchy", "ports": {"i": {"width": 2}, "o": {"width": 1}}}
    r = run_synth(v, side, "generic", workdir=tmp_path / "w")
    assert r["resources"]["latches"] == 1


def test_broken_core_is_a_clear_error(tmp_path):
    v = tmp_path / "broken.v"
    v.write_text("module broken(input clk); assign x = ; endmodule\n")
    side = {"module": "broken", "ports": {"i": {"width": 2}, "o": {"width": 1}}}
    with pytest.raises(SynthError, match=r"synthesis of broken for ecp5 failed: .*ERROR"):
        run_synth(v, side, "ecp5", workdir=tmp_path / "w")


@pytest.mark.parametrize("args,msg", [
    (("vivado",), "--target must be one of generic, ice40, ecp5, xilinx, gowin, "
                  "got --target=vivado"),
    (("ecp5", "12k"), "--device for target ecp5 must be one of 25k, 45k, 85k, "
                      "got --device=12k"),
    (("xilinx", None, True), "--pnr needs a target with a place-and-route flow "
                             "(ice40, ecp5), got --target=xilinx"),
])
def test_bad_target(args, msg):
    with pytest.raises(ParamError) as e:
        check_target(*args)
    assert str(e.value) == msg
