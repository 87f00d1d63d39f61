"""Build generated Verilog and run a cocotb testbench on it.

:func:`run` generates the core's Verilog and sidecar into
``<build_root>/<sim>/<module>/`` (one directory per parameter set and simulator, so
``pytest -n auto`` never shares a build), builds it with the cocotb runner, runs the
core's testbench module with a config file (sidecar, seed, options) and returns a
:class:`SimResult`. When a test fails the same seed is run once more with waves on,
and the waveform is kept: its path is in the result and in the failure message.
"""

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lpcores.errors import ParamError, ToolError

from .tools import SIMULATORS, available, check_build_tools, setup_env, sources

DEFAULT_BUILD_ROOT = Path(os.environ.get("LPCORES_BUILD", "build"))


@dataclass
class SimResult:
    module: str
    sim: str
    tests: int
    failed: int
    log: str
    build_dir: Path
    waves: list = field(default_factory=list)

    @property
    def ok(self):
        return self.failed == 0 and self.tests > 0

    def summary(self):
        s = (f"{self.module} on {self.sim}: {self.tests - self.failed}/{self.tests} "
             f"cocotb tests passed (log {self.log})")
        if self.waves:
            s += f"; waveform kept at {', '.join(map(str, self.waves))}"
        return s


def _results(xml):
    from cocotb_tools.check_results import get_results
    try:
        return get_results(Path(xml))
    except RuntimeError:
        return (0, 1)


def _failure_text(log_path, limit=60):
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    keep = [l for l in lines if "FAIL" in l or "Error" in l or "mismatch" in l
            or "seed" in l or "|" in l or "AssertionError" in l]
    return "\n".join(keep[-limit:])


def _build_cause(log_path, exc):
    """The first error line of a failed simulator build (else the exception)."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for l in lines:
        if l.startswith("%Error") or "error:" in l.lower() or "not found" in l:
            return l.strip()[:300]
    return (str(exc) or type(exc).__name__)[:300]


def run(core, testbench, *, sim="verilator", seed=1, options=None, build_root=None,
        waves_on_failure=True):
    """Generate ``core``, build it for ``sim`` and run cocotb module ``testbench``.

    ``options`` is a JSON-able dict handed to the testbench next to the sidecar.
    """
    if sim not in SIMULATORS:
        raise ParamError(f"sim must be one of {', '.join(SIMULATORS)}, got sim={sim!r}")
    if not available(sim):
        raise ParamError(f"simulator {sim} is not installed on this machine")
    setup_env()
    if sim == "verilator":
        check_build_tools()
    from cocotb_tools.runner import get_runner

    from lpcores.hdl import generate

    build_root = Path(build_root or DEFAULT_BUILD_ROOT).resolve()
    bdir = build_root / sim / core.module_name
    bdir.mkdir(parents=True, exist_ok=True)
    vfile, jfile = generate(core, bdir)
    sidecar = json.loads(jfile.read_text())

    def once(waves, tag):
        cfg = {"sidecar": sidecar, "seed": seed, "options": options or {},
               "sim": sim}
        cfg_path = bdir / f"tb_config{tag}.json"
        cfg_path.write_text(json.dumps(cfg))
        runner = get_runner(sim)
        build_dir = bdir / f"sim{tag}"
        build_args = []
        if sim == "verilator":
            # no -Wno-fatal: generated Verilog builds warning-free (SPEC §3)
            build_args = ["-O2", "--x-assign", "0", "--x-initial", "0"]
        build_log = bdir / f"build{tag}.log"
        try:
            runner.build(sources=sources(vfile), hdl_toplevel=sidecar["module"],
                         build_dir=build_dir, timescale=("1ns", "1ps"), waves=waves,
                         build_args=build_args, log_file=build_log)
        except (Exception, SystemExit) as e:
            raise ToolError(f"the {sim} build of {sidecar['module']} failed "
                            f"({_build_cause(build_log, e)}); the full log is "
                            f"{build_log}") from None
        xml = bdir / f"results{tag}.xml"
        log = bdir / f"sim{tag}.log"
        if xml.exists():
            xml.unlink()
        try:
            runner.test(test_module=testbench, hdl_toplevel=sidecar["module"],
                        build_dir=build_dir, test_dir=bdir, results_xml=str(xml),
                        extra_env={"LPCORES_TB_CONFIG": str(cfg_path)}, waves=waves,
                        seed=seed, log_file=log)
        except (Exception, SystemExit):  # raised on failures and crashes; counted below
            pass
        tests, failed = _results(xml)
        return tests, failed, log

    tests, failed, log = once(False, "")
    result = SimResult(sidecar["module"], sim, tests, failed, str(log), bdir)
    if (failed or not tests) and waves_on_failure:
        once(True, "_waves")
        result.waves = sorted(str(p) for p in bdir.rglob("*")
                              if p.suffix in (".vcd", ".fst") and p.is_file())
    return result


def assert_passes(result):
    """pytest helper: fail with the testbench's own mismatch report."""
    if not result.ok:
        raise AssertionError(result.summary() + "\n" + _failure_text(result.log))
