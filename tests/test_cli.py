"""The command line: what users type, and what they get for bad input."""

import json
import subprocess
import sys

import pytest


def lpcores(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lpcores.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def test_generate_writes_verilog_and_sidecar(tmp_path):
    r = lpcores("generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3",
                "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    v = tmp_path / "convert_fp32_e4m3_s0.v"
    side = json.loads((tmp_path / "convert_fp32_e4m3_s0.json").read_text())
    assert v.exists()
    assert side["params"] == {"in_fmt": "fp32", "out_fmt": "e4m3", "saturate": False,
                              "rounding": "rne", "stages": 0}
    assert side["ports"]["i"]["fields"] == [
        {"name": "a", "offset": 0, "width": 32, "format": "fp32"}]
    # a second run gives byte-identical files
    first = v.read_bytes()
    assert lpcores("generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3",
                   "--out", tmp_path).returncode == 0
    assert v.read_bytes() == first


@pytest.mark.parametrize("args,msg", [
    (["generate", "convert", "--in-fmt", "fp8", "--out-fmt", "e4m3", "--out", "x"],
     "argument --in-fmt: invalid choice: 'fp8'"),
    (["generate", "convert", "--in-fmt", "e4m3", "--out-fmt", "e4m3", "--out", "x"],
     "out_fmt must differ from in_fmt, got in_fmt='e4m3', out_fmt='e4m3'"),
    (["generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3", "--stages", "-2",
      "--out", "x"],
     "stages must be at least 0, got stages=-2"),
    (["generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3"],
     "the following arguments are required: --out"),
    (["generate", "fma9", "--out", "x"], "argument core: invalid choice: 'fma9'"),
    (["synth", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3", "--target", "vivado"],
     "argument --target: invalid choice: 'vivado'"),
])
def test_bad_input_is_one_sentence(args, msg, tmp_path):
    r = lpcores(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert msg in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("lpcores: error:")


def test_out_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    r = lpcores("generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3", "--out", f)
    assert r.returncode == 2
    assert "--out must be a directory" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,msg", [
    (["--target", "ecp5", "--device", "up5k"],
     "--device for target ecp5 must be one of 25k, 45k, 85k, got --device=up5k"),
    (["--target", "generic", "--pnr"],
     "--pnr needs a target with a place-and-route flow (ice40, ecp5), "
     "got --target=generic"),
])
def test_synth_bad_device(args, msg, tmp_path):
    r = lpcores("synth", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3", *args,
                cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"lpcores: error: {msg}"


def test_synth_writes_json(tmp_path):
    r = lpcores("synth", "convert", "--in-fmt", "e4m3", "--out-fmt", "bf16",
                "--target", "generic", "--json", tmp_path / "r.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["module"] == "convert_e4m3_bf16_s0" and rep["resources"]["luts"] > 0
    assert "| LUTs |" in r.stdout


def test_dot_mx_builds_the_mx_engine(tmp_path):
    r = lpcores("generate", "dot", "--mx", "--a-fmt", "e4m3", "--b-fmt", "e2m1",
                "--lanes", "16", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "mxdot_e4m3_e2m1_l16_s0.json").read_text())
    assert side["core"] == "MXDot"
    names = [f["name"] for f in side["ports"]["i"]["fields"]]
    assert {"sa", "sb", "last"} <= set(names)
    from lpcores.cores import CORES
    core = CORES["dot"].build(mx=True, a_fmt="e4m3", b_fmt="e2m1", lanes=16)
    assert CORES["dot"].testbench_for(core) == "lpcores.sim.mxdot"


@pytest.mark.parametrize("args,msg", [
    (["--a-fmt", "bf16", "--b-fmt", "e4m3"],
     "a_fmt must be one of e4m3, e5m2, e3m2, e2m3, e2m1, int8, got a_fmt='bf16'"),
    (["--a-fmt", "e4m3", "--b-fmt", "e4m3", "--lanes", "12"],
     "lanes must divide 32 (1, 2, 4, 8, 16 or 32), got lanes=12"),
    (["--a-fmt", "e4m3", "--b-fmt", "e4m3", "--addend"],
     "addend is not a parameter of the MX dot product (fp32 result, exact block "
     "sums, RNE), got addend=True with mx=True"),
])
def test_dot_mx_bad_input(args, msg, tmp_path):
    r = lpcores("generate", "dot", "--mx", *args, "--out", tmp_path, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"lpcores: error: {msg}"
