"""``MXQuant``: blocks of 32 fp32/bf16 values -> one E8M0 scale and 32 MX elements
(SPEC §4.3, OCP MX v1.0).

Stream: each input beat carries ``lanes`` values ``x0..x{lanes-1}``; a block is 32
values over ``32 / lanes`` consecutive beats (a counter, reset by ``rst``, tracks
the position: the first beat after reset starts a block). One output beat per block:
``e0..e31`` (element codes; MXINT8 as two's-complement bytes) and ``scale``.

Rule (bit-exact to ``golden.mx_quantize``):

* ``shared = floor(log2(max|v|)) - emax_elem``, clamped to >= -127, and
  ``scale = shared + 127``. ``floor(log2|v|)`` is the exponent of ``v`` once
  normalized (fp32 subnormals through a leading-zero count, so they are exact:
  down to -149), so the block maximum is a maximum of exponents, no magnitude
  compare. A zero lane takes the key -512; an all-zero block then clamps to -127,
  i.e. scale 0x00, and its elements are signed zeros (no special case). The upper
  clamp (127) cannot bind: ``floor(log2|v|) <= 127`` and ``emax_elem >= 0``.
* Element ``k`` is ``v_k * 2**-shared`` (only its exponent moves), rounded once into
  the element format by :func:`.mxarith.quantize_elem` (RNE, or ties away from zero
  with ``rounding="away"``), saturated to ±max; MXINT8 is Q1.6 clamped to ±127.
* A block with any NaN or Inf: scale 0xFF, every element the format's canonical
  NaN (e4m3 0x7F, e5m2 0x7E) or 0 for formats without NaN.

Buffering: lanes of the first ``32/lanes - 1`` beats are stored unpacked and
normalized (sign, exponent, significand: 34 bits a value for fp32) with a running
maximum exponent and NaN/Inf flag; the beat completing the block joins them
combinationally. ``lanes=32`` needs no buffer.

Pipelining (``stages``), cut points in the order taken: ``shared`` (after the
block maximum and the shared exponent, registering the whole block), ``unpack``
(after unpack and normalize of the incoming lanes). Latency: ``stages + 1`` cycles
from the beat completing a block to its output beat. Throughput: one input beat a
cycle (a block every ``32/lanes`` cycles).

Clock-directed (``fmax``, :mod:`.timing`): the blocks charge their delays and the
registers may also go at the fine cut points of every lane (between the levels of
the normalizing LZC and shifter, of the beat's maximum tree, of each element's
rounder: after ``t = e - shared``, after its shift clamp, before the increment,
before the pack), one register row across the lanes. The shared exponent is then
taken per beat before the buffer (``max(e - emax_elem, -127)`` is monotonic in
``e``, so the maximum of the beats' shared exponents is the block's): the running
maximum, a one-cycle loop, is one compare and one select. Each lane's significand
is cut to the bits its element rounder reads and a sticky before the buffer
(:func:`.mxarith.quantize_compress`), the element rounders are built ``shallow``
(:func:`.fp.round_decide`), compares are the sign of a difference
(:func:`.fp.less`), and a lane's normalized exponent is its own key (a zero's is
below every nonzero's). With ``stages`` the netlist is the one of the two named cut
points.
"""

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed

from lpcores.errors import ParamError, check_choice, check_int
from lpcores.formats import get_format

from .base import Field, Pipeline, StreamCore, name_pipelined, plan_pipeline
from .fp import Unpacked, less, lzc, normalize, normalize_shift, unpack
from .mxarith import (BLOCK, EMAX_ELEM, MX_ELEM_FORMATS, MX_ROUNDINGS, quantize_compress,
                      quantize_elem)

__all__ = ["MXQuant"]

IN_FORMATS = ("fp32", "bf16")
CUTS = ("shared", "unpack")
LANES = (1, 2, 4, 8, 16, 32)
EXP = signed(10)          # element exponents -149..127, and t = e - shared: -276..254
ZERO_KEY = -512


def _max_tree(m, values, name, pipe=None):
    """Maximum of signed ``values`` by a tree of compare-and-select nodes; with
    ``pipe`` cuttable after each level (``name.k``)."""
    level = list(values)
    k = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            s = Signal(EXP, name=f"{name}{k}_{i // 2}")
            a, b = level[i], level[i + 1]
            if pipe is None:
                m.d.comb += s.eq(Mux(a > b, a, b))
            else:
                # the compare as the sign of a difference (fp.less): a sum output
                # of the chain steers the select, no carry-out feed-out cell
                m.d.comb += s.eq(Mux(less(m, b, a, name=f"{name}{k}_{i // 2}_lt"), a, b))
            nxt.append(s)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        k += 1
        if pipe is not None:
            # the compare, then the select
            pipe.charge(pipe.fab.compare(EXP.width) + pipe.fab.lut)
            level = list(pipe.cut(f"{name}.{k}", *level, None))[:-1]
    return level[0]


class MXQuant(StreamCore):
    """FP32/BF16 -> MX block quantizer (see the module docstring).

    Parameters
    ----------
    in_fmt : str
        ``fp32`` or ``bf16``.
    elem_fmt : str
        ``e4m3``, ``e5m2``, ``e3m2``, ``e2m3``, ``e2m1`` or ``int8`` (MXINT8, Q1.6).
    lanes : int
        Values per input beat, a divisor of 32.
    rounding : str
        ``"rne"`` or ``"away"`` (ties away from zero, as microxcaling's "nearest").
    stages : int
        Pipeline registers besides the output register (0..2).
    fmax, family : float, str
        Instead of ``stages``: the clock (MHz) to meet on ``family`` (default
        ``ecp5``); registers go where the delay model says (:mod:`.timing`), at the
        named and the fine cut points.

    Payload: in ``{x0..x(lanes-1)}``, out ``{e0..e31, scale}``.
    """

    def __init__(self, *, in_fmt="fp32", elem_fmt, lanes=32, rounding="rne", stages=None,
                 fmax=None, family=None):
        self.fin = get_format(in_fmt, param="in_fmt", allowed=IN_FORMATS)
        self.fe = get_format(elem_fmt, param="elem_fmt", allowed=MX_ELEM_FORMATS)
        check_int("lanes", lanes, lo=1, hi=32)
        if lanes not in LANES:
            raise ParamError(f"lanes must divide 32 (1, 2, 4, 8, 16 or 32), got "
                             f"lanes={lanes}")
        self.lanes = lanes
        self.rounding = check_choice("rounding", rounding, MX_ROUNDINGS)
        self.in_fields = [Field(f"x{k}", self.fin.bits, self.fin.name)
                          for k in range(lanes)]
        self.out_fields = ([Field(f"e{k}", self.fe.bits, self.fe.name)
                            for k in range(BLOCK)] + [Field("scale", 8, "e8m0")])
        self.beats_per_result = BLOCK // lanes
        super().__init__()
        # with stages the netlist stays the one of the named cut points (no model)
        self.timed = fmax is not None
        self.wide_derate = self.timed
        self.stages, self.timing = plan_pipeline(self, CUTS, stages=stages, fmax=fmax,
                                                 family=family, name="mxquant")
        if not self.timed:
            self.timing = None
        name_pipelined(self, f"mxquant_{self.fin.name}_{self.fe.name}_l{lanes}"
                       f"{'_away' if rounding == 'away' else ''}",
                       {"in_fmt": self.fin.name, "elem_fmt": self.fe.name, "lanes": lanes,
                        "rounding": rounding}, fmax)

    def _lane(self, m, code, k):
        """(sign, exponent, normalized significand, zero, NaN-or-Inf) of one value."""
        u = unpack(m, code, self.fin, name=f"x{k}")
        sig, exp_n, _ = normalize(m, u.sig, u.exp, name=f"x{k}_n")
        exp = Signal(EXP, name=f"x{k}_e")
        m.d.comb += exp.eq(exp_n)
        key = Signal(EXP, name=f"x{k}_key")
        m.d.comb += key.eq(Mux(u.is_zero, ZERO_KEY, exp))
        return (u.sign, exp, sig, u.is_zero), key, u.is_inf | u.is_nan

    def _lane_timed(self, m, pipe, code, k):
        """:meth:`_lane` with delays charged and fine cut points (LZC and shifter
        levels), on a lane of ``pipe``."""
        u = unpack(m, code, self.fin, name=f"x{k}", pipe=pipe)
        with pipe.carry(u) as c:
            _, count = lzc(u.sig, pipe=pipe, name=f"x{k}_lzc", m=m)
        (u,) = c.values
        with pipe.carry(u) as c:
            sig, exp_n = normalize_shift(m, u.sig, u.exp, count, name=f"x{k}_n",
                                         pipe=pipe)
        (u,) = c.values
        exp = Signal(EXP, name=f"x{k}_e")
        m.d.comb += exp.eq(exp_n)
        # the normalized exponent is its own key: a zero's is emin minus the LZC of
        # zero (2**k - 1 >= W - 1), at most the smallest subnormal's, so it never
        # raises a block's maximum, and an all-zero block's shared exponent still
        # clamps to -127 (emin - M - emax_elem < -127): no zero-key mux in front of
        # the maximum tree's first compare
        return (u.sign, exp, sig, u.is_zero), exp, u.is_inf | u.is_nan

    def _shared_of(self, m, emax, name):
        """max(emax - emax_elem, -127): a compare with a constant beside the
        subtract, then a mux."""
        shared = Signal(signed(9), name=name)
        low = less(m, emax, EMAX_ELEM[self.fe.name] - 127, name=f"{name}_low")
        m.d.comb += shared.eq(Mux(low, -127, emax - EMAX_ELEM[self.fe.name]))
        return shared

    def elaborate(self, platform):
        if self.timed:
            return self._elaborate_timed()
        m = Module()
        L, B, fe = self.lanes, BLOCK // self.lanes, self.fe
        pipe = Pipeline(m, self, CUTS, self.stages)
        lanes, keys, bads = [], [], []
        for k in range(L):
            lane, key, bad = self._lane(m, getattr(self.i.payload, f"x{k}"), k)
            lanes.append(lane)
            keys.append(key)
            bads.append(bad)
        bmax = _max_tree(m, keys, "bmax")
        bbad = Signal(name="beat_bad")
        m.d.comb += bbad.eq(Value.cast(0) if not bads else
                            _or(bads))
        lanes, bmax, bbad = pipe.cut("unpack", tuple(lanes), bmax, bbad)

        if B == 1:
            elems, tmax, tbad, end = list(lanes), bmax, bbad, Const(1, 1)
        else:
            cnt = Signal(range(B), name="beat_pos")
            first = cnt == 0
            end = cnt == B - 1
            run_max = Signal(EXP, name="run_max")
            run_bad = Signal(name="run_bad")
            tmax = Signal(EXP, name="blk_max")
            tbad = Signal(name="blk_bad")
            prev = Signal(EXP, name="prev_max")
            m.d.comb += [prev.eq(Mux(first, ZERO_KEY, run_max)),
                         tmax.eq(Mux(prev > bmax, prev, bmax)),
                         tbad.eq(bbad | (~first & run_bad))]
            buf = [[tuple(Signal.like(Value.cast(v), name=f"buf{j}_{k}_{n}")
                          for n, v in enumerate(lane))
                    for k, lane in enumerate(lanes)] for j in range(B - 1)]
            with m.If(pipe.advance & pipe.valid):
                m.d.sync += [cnt.eq(Mux(end, 0, cnt + 1)), run_max.eq(tmax),
                             run_bad.eq(tbad)]
                for j in range(B - 1):
                    with m.If(cnt == j):
                        for k in range(L):
                            m.d.sync += [d.eq(s) for d, s in zip(buf[j][k], lanes[k])]
            elems = [e for row in buf for e in row] + list(lanes)
        pipe.gate(end)

        # shared = max(floor(log2 max|v|) - emax_elem, -127); the top clamp cannot bind
        raw = Signal(signed(11), name="shared_raw")
        m.d.comb += raw.eq(tmax - EMAX_ELEM[fe.name])
        shared = Signal(signed(9), name="shared")
        m.d.comb += shared.eq(Mux(raw < -127, -127, raw))
        elems, shared, tbad = pipe.cut("shared", tuple(elems), shared, tbad)

        codes = {}
        bad_code = fe.nan_code if fe.has_nan else 0
        for k, (sign, exp, sig, zero) in enumerate(elems):
            t = Signal(EXP, name=f"t{k}_e")
            m.d.comb += t.eq(exp - shared)
            u = Unpacked(sign, t, sig, zero, Const(0, 1), Const(0, 1))
            q = quantize_elem(m, u, fe, self.rounding, name=f"q{k}")
            codes[f"e{k}"] = Mux(tbad, bad_code, q)
        scale = Mux(tbad, 0xFF, (shared + 127)[:8])
        pipe.output(scale=scale, **codes)
        return m

    def _elaborate_timed(self):
        m = Module()
        L, B, fe = self.lanes, BLOCK // self.lanes, self.fe
        pipe = Pipeline(m, self, CUTS, self.stages)
        fab = pipe.fab
        lanes, keys, bads = [], [], []
        # the lanes' LZCs and normalizing shifters side by side: derated as one
        # shifter as wide as the group's (Pipeline.wide; measured at 150 MHz, 8
        # fp32 lanes: the last LZC level and four shifter levels 6.9 ns where
        # 1.3 + 4 x 0.95 and the register were charged 6.3)
        with pipe.lanes(spread=L) as group:
            for k in range(L):
                lane, key, bad = self._lane_timed(
                    m, group.lane(f"x{k}", "x"), getattr(self.i.payload, f"x{k}"), k)
                lanes.append(lane)
                keys.append(key)
                bads.append(bad)
        bbad = Signal(name="beat_bad")
        m.d.comb += bbad.eq(_or(bads))
        with pipe.carry(tuple(lanes), bbad) as c:
            bmax = _max_tree(m, keys, "bmax", pipe=pipe)
            # this beat's shared exponent (the block's is the largest of its beats')
            bshared = self._shared_of(m, bmax, "beat_shared")
            # the compare with a constant beside the subtract, then the clamp's mux
            pipe.charge(fab.compare(EXP.width) + fab.lut)
        lanes, bbad = c.values
        lanes, bshared, bbad = pipe.cut("unpack", tuple(lanes), bshared, bbad)

        # each lane's significand cut to the bits its element rounder reads and a
        # sticky (an OR tree), beside the running maximum: the buffer, the shared
        # row and the rounders' registers hold 6 bits of an fp32 significand's 24
        # for e4m3 (8,851 -> about 5,500 FFs at 150 MHz; every register's enable
        # is the stall-all advance, whose fanout is a critical path at 150 MHz)
        t0 = pipe.t
        with pipe.parallel():
            lanes = [(sign, exp, quantize_compress(
                m, Unpacked(sign, exp, sig, zero, Const(0, 1), Const(0, 1)), fe,
                name=f"x{k}", pipe=pipe).sig, zero)
                for k, (sign, exp, sig, zero) in enumerate(lanes)]
        t_compress, pipe.t = pipe.t, t0

        if B == 1:
            elems, shared, tbad, end = list(lanes), bshared, bbad, Const(1, 1)
            pipe.t = t_compress
        else:
            cnt = Signal(range(B), name="beat_pos")
            first = cnt == 0
            end = cnt == B - 1
            run_max = Signal(signed(9), name="run_shared")
            run_bad = Signal(name="run_bad")
            shared = Signal(signed(9), name="blk_shared")
            tbad = Signal(name="blk_bad")
            # the block's shared exponent so far: the first beat's is its own
            # (bshared >= -127), later ones the larger of it and the running one;
            # compared straight from the registers (fp.less), ``first`` folded
            # into the select
            run_gt = less(m, bshared, run_max, name="run_gt")
            m.d.comb += [shared.eq(Mux(~first & run_gt, run_max, bshared)),
                         tbad.eq(bbad | (~first & run_bad))]
            pipe.charge(fab.compare(9) + fab.lut)    # the loop: one cycle
            pipe.t = max(pipe.t, t_compress)         # beside it, the compression
            buf = [[tuple(Signal.like(Value.cast(v), name=f"buf{j}_{k}_{n}")
                          for n, v in enumerate(lane))
                    for k, lane in enumerate(lanes)] for j in range(B - 1)]
            with m.If(pipe.advance & pipe.valid):
                m.d.sync += [cnt.eq(Mux(end, 0, cnt + 1)), run_max.eq(shared),
                             run_bad.eq(tbad)]
            # a buffer row is written on every advance while the count points at
            # it, a bubble too: the block's beat at that position overwrites it
            # before the block completes. Its enable is then one LUT of o.ready,
            # o.valid and the count (ECP5 at 150 MHz: o.valid through the advance,
            # the stage's valid and the count's decode into the enables of the
            # whole buffer measured 7.5 ns, three LUTs and 4.6 ns of routing)
            with m.If(pipe.advance):
                for j in range(B - 1):
                    with m.If(cnt == j):
                        for k in range(L):
                            m.d.sync += [d.eq(s) for d, s in zip(buf[j][k], lanes[k])]
            elems = [e for row in buf for e in row] + list(lanes)
        pipe.gate(end)
        elems, shared, tbad = pipe.cut("shared", tuple(elems), shared, tbad)

        codes = {}
        bad_code = fe.nan_code if fe.has_nan else 0
        with pipe.carry(tbad, shared) as c:      # both read again after the lanes
            # shared fans out to every element's t = e - shared
            with pipe.lanes(broadcast=BLOCK) as group:
                for k, (sign, exp, sig, zero) in enumerate(elems):
                    lp = group.lane(f"q{k}", "q")
                    t = Signal(EXP, name=f"t{k}_e")
                    m.d.comb += t.eq(exp - shared)
                    lp.charge(fab.carry(EXP.width))
                    t, sign, sig, zero = lp.cut(f"q{k}.t", t, sign, sig, zero)
                    u = Unpacked(sign, t, sig, zero, Const(0, 1), Const(0, 1))
                    codes[f"e{k}"] = quantize_elem(m, u, fe, self.rounding, name=f"q{k}",
                                                   pipe=lp)
                    lp.charge(fab.lut)                       # the NaN block's mux
        tbad, shared = c.values
        codes = {k: Mux(tbad, bad_code, v) for k, v in codes.items()}
        scale = Mux(tbad, 0xFF, (shared + 127)[:8])
        pipe.output(scale=scale, **codes)
        return m


def _or(values):
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
