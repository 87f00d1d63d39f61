"""The command line: what users type, and what they get for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
     "--out-fmt must differ from --in-fmt, got --in-fmt=e4m3, --out-fmt=e4m3"),
    (["generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3", "--stages", "-2",
      "--out", "x"],
     "--stages must be at least 0, got --stages=-2"),
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
    assert r.stderr.startswith("lpcores: generating convert_e4m3_bf16_s0, then "
                               "synthesizing it for generic with Yosys")


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
     "--a-fmt must be one of e4m3, e5m2, e3m2, e2m3, e2m1, int8, got --a-fmt=bf16"),
    (["--a-fmt", "e4m3", "--b-fmt", "e4m3", "--lanes", "12"],
     "--lanes must divide 32 (1, 2, 4, 8, 16 or 32), got --lanes=12"),
    (["--a-fmt", "e4m3", "--b-fmt", "e4m3", "--addend"],
     "--addend is not a parameter of the MX dot product (fp32 result, exact block "
     "sums, RNE), got --addend=True with --mx=True"),
])
def test_dot_mx_bad_input(args, msg, tmp_path):
    r = lpcores("generate", "dot", "--mx", *args, "--out", tmp_path, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"lpcores: error: {msg}"


@pytest.mark.parametrize("args,msg", [
    (["--a-fmt", "e4m3", "--b-fmt", "e4m3", "--magnitude"],
     "--magnitude=True applies to --accumulate=fp without an addend, got "
     "--accumulate=exact"),
    (["--a-fmt", "bf16", "--b-fmt", "bf16", "--accumulate", "fp", "--addend",
      "--magnitude"],
     "--magnitude=True applies to --accumulate=fp without an addend, got --addend=True"),
    (["--a-fmt", "e4m3", "--b-fmt", "e4m3", "--mx", "--magnitude"],
     "--magnitude is not a parameter of the MX dot product (fp32 result, exact block "
     "sums, RNE), got --magnitude=True with --mx=True"),
])
def test_dot_magnitude_bad_input(args, msg, tmp_path):
    r = lpcores("generate", "dot", *args, "--out", tmp_path, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"lpcores: error: {msg}"


CONV = ["convert", "--in-fmt", "fp32", "--out-fmt", "e4m3"]


@pytest.mark.parametrize("args,msg", [
    (["sim", *CONV, "--seed", "-1"], "--seed must be a non-negative integer, got --seed=-1"),
    (["generate", "iternorm", "--stages", "2", "--out", "o"],
     "iternorm has no --stages option (lpcores generate iternorm --help lists the "
     "options it has)"),
    (["synth", *CONV, "--target", "generic", "--no-dsp"],
     "--no-dsp applies to targets with DSP blocks (ecp5, xilinx, gowin, ice40 up5k), "
     "got --target=generic"),
    (["synth", *CONV, "--target", "ice40", "--device", "hx8k", "--no-dsp"],
     "--no-dsp applies to targets with DSP blocks (ecp5, xilinx, gowin, ice40 up5k), "
     "got --target=ice40 --device=hx8k"),
    # sparselinear builds a Dot inside: its messages name the flags the user typed
    (["generate", "sparselinear", "--n", "2", "--m", "4", "--x-fmt", "e4m3", "--w-fmt",
      "int8", "--out", "o"],
     "int8 elements multiply only int8 elements, got --x-fmt=e4m3, --w-fmt=int8"),
    (["generate", "sparselinear", "--n", "2", "--m", "4", "--x-fmt", "e4m3", "--w-fmt",
      "e4m3", "--stages", "9", "--out", "o"],
     "--stages must be in 0..4 for sparselinear (it has 4 cut points), got --stages=9"),
    (["generate", "sparselinear", "--n", "4", "--m", "4", "--x-fmt", "e4m3", "--w-fmt",
      "e4m3", "--out", "o"], "--n must be < --m, got --n=4, --m=4"),
    (["generate", "dot", "--a-fmt", "bf16", "--b-fmt", "bf16", "--out-fmt", "int32",
      "--out", "o"], "--out-fmt must be one of fp32, fp16, bf16, got --out-fmt=int32"),
])
def test_bad_input_names_the_flag(args, msg, tmp_path):
    r = lpcores(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"lpcores: error: {msg}"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [
    ["generate", *CONV, "--out", ""],
    ["sim", *CONV, "--build", ""],
    ["demo", "--out", ""],
])
def test_empty_path_is_rejected(args, tmp_path):
    r = lpcores(*args, cwd=tmp_path)
    assert r.returncode == 2
    flag = args[args.index("") - 1]
    assert r.stderr.strip().splitlines()[-1] == \
        f"lpcores: error: argument {flag}: a path must not be empty, got ''"
    assert list(tmp_path.iterdir()) == []          # nothing written into the cwd


def test_sim_options_have_help():
    r = lpcores("sim", *CONV, "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "--sim {verilator,icarus,all} simulator: verilator (default), icarus, or " \
           "all installed" in text
    assert "--seed SEED seed of the random vectors" in text
    assert "--build BUILD build root, one directory per parameter set" in text


def test_generate_says_what_it_runs(tmp_path):
    r = lpcores("generate", *CONV, "--out", tmp_path)
    assert r.returncode == 0
    assert r.stderr.startswith("lpcores: generating convert_fp32_e4m3_s0 (Amaranth, "
                               "then Yosys)")
    assert r.stdout.split() == [str(tmp_path / "convert_fp32_e4m3_s0.v"),
                                str(tmp_path / "convert_fp32_e4m3_s0.json")]


def test_sim_without_make_or_compiler_is_one_sentence(tmp_path):
    # a PATH with neither make nor a C++ compiler (the venv's bin goes first anyway)
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("CXX", None)
    r = subprocess.run([sys.executable, "-m", "lpcores.cli", "sim", *CONV, "--sim",
                        "verilator", "--build", tmp_path / "b"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "lpcores: error: Verilator needs make and a C++ compiler (g++ or clang++) to "
        "build a simulation, and they are not on PATH (Debian: apt-get install make g++)")


def test_runner_puts_this_python_first_on_path():
    # Verilator's makefiles run `python`; a stock Debian PATH has none
    from lpcores.sim.tools import setup_env
    env = setup_env({"PATH": "/usr/bin:/bin"})
    path = env["PATH"].split(os.pathsep)
    pybin = str(Path(sys.executable).parent)
    assert pybin in path and path.index(pybin) < path.index("/usr/bin")
    assert path[-2:] == ["/usr/bin", "/bin"]


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    """Ctrl-C during a long step (here: a proof) ends with one line and exit 130, not
    a traceback."""
    import lpcores.prove as prove
    from lpcores.cli import main

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(prove, "cli", interrupted)
    assert main(["prove", "fma", "--a-fmt", "e4m3", "--b-fmt", "e4m3"]) == 130
    err = capsys.readouterr().err
    assert err == "lpcores: interrupted (prove)\n"
