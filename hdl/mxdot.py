"""``MXDot``: the Microscaling dot-product engine (SPEC §4.2, MX mode).

Stream: each input beat carries ``lanes`` element pairs ``a{k}``, ``b{k}`` (MX
element codes: e4m3, e5m2, e3m2, e2m3, e2m1 or int8 = MXINT8 Q1.6; a and b may
differ), the two E8M0 block scales ``sa``, ``sb`` and a ``last`` flag. A 32-element
block spans ``32/lanes`` consecutive beats; the scales are read with the beat that
completes the block (the other beats' scales are ignored). ``last`` ends the dot
product and also closes the current block: a dot product of whole blocks has
``last`` on a block's final beat; an earlier ``last`` closes a short block (the
first beat after ``last``, and after reset, starts a new block). One fp32 result
``r`` per dot product, for the beat carrying ``last``.

Arithmetic (bit-exact to ``golden.mx_dot``):

* products exact (:func:`.fp.multiply`; MXINT8 through :func:`.mxarith.unpack_elem`),
  placed in fixed point (:func:`.fp.to_fixed`) and summed by a balanced tree
  (:func:`.fp.sum_tree`); the beats of a block are summed into an exact block word of
  :func:`.mxarith.mx_block_width` bits (e4m3 x e4m3: 42 bits, LSB 2**-18);
* at the block's end the block sum becomes a :class:`.fp.Fixed` whose bit-0 weight
  is ``2**(lsb + sa + sb - 254)``: the scale moves only the exponent, exactly;
* the fp32 accumulator takes it with one rounding: ``acc <- RNE(acc + block)``
  through :func:`.fp.align_add`, :func:`.fp.fixed_to_unpacked`, :func:`.fp.round_sig`,
  :func:`.fp.pack` (the FMA's exact window), starting from -0 (the IEEE additive
  identity). One rounding per block, not per beat: the result is the same for 8, 16
  and 32 lanes (docs/mx.md says why this beats rounding every 8 elements).

Special values: a NaN scale (0xFF) or a NaN element makes the block NaN; Inf x 0 is
NaN; +Inf and -Inf (in one block, or the accumulator and a block) give NaN;
otherwise an Inf element, or a scaled block sum beyond fp32, gives ±Inf.

Pipelining (``stages``), cut points in the order taken: ``block`` (after the block
sum and its scale, before the fp32 accumulate loop), ``beat`` (after the lane
adder tree), ``mul`` (after the multipliers). The accumulate-and-round loop is one
cycle deep; with ``contexts`` k (k dot products interleaved beat by beat) and
``fmax`` it may be up to k deep (:mod:`.accum`, docs/contexts.md). Latency: ``stages + 1`` cycles from the beat carrying ``last`` to
the result. Throughput: one beat a cycle; with ``lanes=32`` one block a cycle.
"""

import dataclasses

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed

from lpcores.errors import ParamError, check_int
from lpcores.formats import get_format

from .base import (Contexts, Field, Pipeline, StreamCore, check_loop_depth,
                   name_pipelined, plan_pipeline)
from .accum import fp_accumulate
from .fp import (_below, align_add, fixed_from_signed, fixed_to_unpacked,
                 multiply, pack, round_sig, sum_tree, to_fixed, to_fixed_lanes, unpack)
from .mxarith import (BLOCK, MX_ELEM_FORMATS, mx_block_width, unpack_elem,
                      unpack_elem_biased)

__all__ = ["MXDot"]

CUTS = ("block", "beat", "mul")
LANES = (1, 2, 4, 8, 16, 32)
FLAGS = ("nan", "pinf", "ninf", "negzero")
NEG_ZERO = 0x80000000


class MXDot(StreamCore):
    """MX dot-product engine (see the module docstring).

    Parameters
    ----------
    a_fmt, b_fmt : str
        MX element formats: ``e4m3``, ``e5m2``, ``e3m2``, ``e2m3``, ``e2m1``,
        ``int8`` (MXINT8, Q1.6). Mixed pairs allowed.
    lanes : int
        Element pairs per beat, a divisor of 32 (8, 16, 32 typical).
    contexts : int
        Independent dot products interleaved beat by beat (1..64, SPEC §4.2): the
        j-th beat since reset belongs to context ``j mod contexts``; the fp32
        accumulate loop may then be up to ``contexts`` cycles deep.
    stages : int
        Pipeline registers besides the output register (0..3).
    fmax, family : float, str
        Instead of ``stages``: the clock (MHz) to meet on ``family`` (default
        ``ecp5``); registers go where the delay model says, inside the fp32
        accumulate loop too (at most ``contexts - 1`` there).

    Payload: in ``{a0.., b0.., sa, sb, last}``, out ``{r}`` (fp32).
    """

    def __init__(self, *, a_fmt, b_fmt, lanes=32, contexts=1, stages=None, fmax=None,
                 family=None):
        self.fa = get_format(a_fmt, param="a_fmt", allowed=MX_ELEM_FORMATS)
        self.fb = get_format(b_fmt, param="b_fmt", allowed=MX_ELEM_FORMATS)
        check_int("lanes", lanes, lo=1, hi=32)
        if lanes not in LANES:
            raise ParamError(f"lanes must divide 32 (1, 2, 4, 8, 16 or 32), got "
                             f"lanes={lanes}")
        self.lanes = lanes
        self.contexts = check_int("contexts", contexts, lo=1, hi=64)
        L = lanes
        self.in_fields = ([Field(f"a{k}", self.fa.bits, self.fa.name) for k in range(L)]
                          + [Field(f"b{k}", self.fb.bits, self.fb.name) for k in range(L)]
                          + [Field("sa", 8, "e8m0"), Field("sb", 8, "e8m0"),
                             Field("last", 1)])
        self.out_fields = [Field("r", 32, "fp32")]
        self.beats_per_result = (f"variable: one result per beat with last=1; a block "
                                 f"of 32 elements is {BLOCK // L} beat{'s' if L < BLOCK else ''}")
        self.block_width, self.block_lsb = mx_block_width(self.fa, self.fb, BLOCK)
        super().__init__()
        # clock-directed (or contexts): the blocks charge their delays and offer fine
        # cut points; with stages alone the netlist is the one of the named cuts
        self.timed = fmax is not None or contexts > 1
        self._loop_entry = None
        self.stages, self.timing = plan_pipeline(self, CUTS, stages=stages, fmax=fmax,
                                                 family=family, name="mxdot")
        if fmax is None:
            self.timing = None
        self.loop_cycles = check_loop_depth(self, self._loop_entry, contexts, fmax,
                                            name="mxdot")
        params = {"a_fmt": self.fa.name, "b_fmt": self.fb.name, "lanes": lanes}
        if contexts > 1:
            params["contexts"] = contexts
        name_pipelined(self, f"mxdot_{self.fa.name}_{self.fb.name}_l{lanes}"
                       f"{f'_k{contexts}' if contexts > 1 else ''}", params, fmax)

    def sidecar(self):
        s = super().sidecar()
        s["accumulator"] = {"contexts": self.contexts, "loop_cycles": self.loop_cycles}
        return s

    def _beat(self, m, prods, pipe=None, carried=()):
        """Exact sum of one beat's products, and the beat's class flags (and the
        ``carried`` values, registered along any fine cut)."""
        bw, blsb = mx_block_width(self.fa, self.fb, self.lanes)
        w1 = mx_block_width(self.fa, self.fb, 1)[0]      # one product, signed
        if pipe is None:
            fx = [to_fixed(m, p, blsb, bw, name=f"k{k}") for k, p in enumerate(prods)]
            s = sum_tree(m, fx, bw, name="t", leaf_bits=w1)
        f = {"nan": Const(0, 1), "pinf": Const(0, 1), "ninf": Const(0, 1),
             "negzero": Const(1, 1)}
        for p in prods:
            f["nan"] = f["nan"] | p.is_nan
            f["pinf"] = f["pinf"] | (p.is_inf & ~p.sign)
            f["ninf"] = f["ninf"] | (p.is_inf & p.sign)
            f["negzero"] = f["negzero"] & p.is_zero & p.sign
        out = []
        for k in FLAGS:
            sig = Signal(name=f"beat_{k}")
            m.d.comb += sig.eq(f[k])
            out.append(sig)
        if pipe is None:
            return s, tuple(out), carried
        with pipe.carry(tuple(out), carried) as c:
            # negative lanes in ones' complement, their +1s the tree's carry-ins
            # the products' exp0 is already their shift (_lane_products)
            fx, cins = to_fixed_lanes(m, prods, 0, bw, name="k", pipe=pipe)
            s = sum_tree(m, fx, bw, name="t", pipe=pipe, carries=cins, leaf_bits=w1)
        return s, *c.values

    def _lane_products(self, m, pl, pipe):
        """:func:`.fp.lane_products` on biased exponents
        (:func:`.mxarith.unpack_elem_biased`): each product's ``exp0`` is its shift
        into the beat's word, ``exp0 - lsb = (ea - ebias_a) + (eb - ebias_b)``
        (the word's LSB is the smallest product bit), one adder of the two
        registered biased exponents; :func:`.fp.to_fixed_lanes` then takes
        ``lsb = 0``."""
        us = []
        with pipe.parallel():
            for k in range(self.lanes):
                us.append((unpack_elem_biased(m, getattr(pl, f"a{k}"), self.fa,
                                              name=f"a{k}", pipe=pipe),
                           unpack_elem_biased(m, getattr(pl, f"b{k}"), self.fb,
                                              name=f"b{k}", pipe=pipe)))
        us = pipe.cut("mul.u", tuple(us))
        prods = []
        with pipe.parallel():
            for k, (ua, ub) in enumerate(us):
                p = multiply(m, ua, self.fa, ub, self.fb, name=f"p{k}", pipe=pipe)
                sh = Signal(max(len(Value.cast(ua.exp)), len(Value.cast(ub.exp))) + 1,
                            name=f"p{k}_sh")
                m.d.comb += sh.eq(ua.exp + ub.exp)
                prods.append(dataclasses.replace(p, exp0=sh))
        return prods

    def elaborate(self, platform):
        m = Module()
        L, B = self.lanes, BLOCK // self.lanes
        pipe = Pipeline(m, self, CUTS, self.stages)
        tp = pipe if self.timed else None        # blocks charge delays / fine cuts
        pl = self.i.payload
        prods = []
        sa, sb, last = pl.sa, pl.sb, pl.last
        if tp is None:
            for k in range(L):
                ua = unpack_elem(m, getattr(pl, f"a{k}"), self.fa, name=f"a{k}")
                ub = unpack_elem(m, getattr(pl, f"b{k}"), self.fb, name=f"b{k}")
                prods.append(multiply(m, ua, self.fa, ub, self.fb, name=f"p{k}"))
        else:
            with tp.carry(sa, sb, last) as cl:
                prods = self._lane_products(m, pl, tp)
            sa, sb, last = cl.values
        prods, sa, sb, last = pipe.cut("mul", tuple(prods), sa, sb, last)
        beat, flags, (sa, sb, last) = self._beat(m, prods, tp, (sa, sb, last))
        beat, flags, sa, sb, last = pipe.cut("beat", beat, flags, sa, sb, last)

        # the accumulators' stage: one set of registers per context
        ctx = Contexts(m, self.contexts, pipe.advance & pipe.valid)
        # exact block sum over B beats
        W = self.block_width
        total = Signal(signed(W), name="blk_sum")
        if B == 1:
            m.d.comb += total.eq(beat)
            tflags, end = flags, Const(1, 1)
        else:
            # built for a clock with contexts: the block sums' state is read and
            # written by every beat here, so it is a ring (no read multiplexer)
            ring = self.contexts > 1 and self._pipe_fmax is not None
            make = ctx.ring if ring else ctx.reg
            cnt_r = make(range(B), name="beat_pos")
            cnt = cnt_r.now
            end = Signal(name="blk_end")
            m.d.comb += end.eq((cnt == B - 1) | last)
            # the ring's slots are cleared as a block ends (written back as the empty
            # block: sum 0, flags' identities), so the add has no select in front
            # (the count's decode and a mux before the carry chain: 7.6 ns at 150 MHz
            # on ECP5); the registers' reset values are the same empty block
            ident = {k: int(k == "negzero") for k in FLAGS}
            acc_r = make(signed(W), name="blk_acc")
            acc = acc_r.now
            accf_r = [make(1, init=ident[k] if ring else 0, name=f"blk_{k}")
                      for k in FLAGS]
            accf = [a.now for a in accf_r]
            bfirst = Const(0, 1) if ring else cnt == 0
            m.d.comb += total.eq(Mux(bfirst, 0, acc) + beat)
            tflags = []
            for k, a, v in zip(FLAGS, accf, flags):
                t = Signal(name=f"blk_{k}_next")
                if k == "negzero":
                    m.d.comb += t.eq(Mux(bfirst, 1, a) & v)
                else:
                    m.d.comb += t.eq(Mux(bfirst, 0, a) | v)
                tflags.append(t)
            if ring:
                cnt_r.set(Mux(end, 0, cnt + 1))
                acc_r.set(Mux(end, 0, total))
                for k, a, t in zip(FLAGS, accf_r, tflags):
                    a.set(Mux(end, ident[k], t))
            else:
                with m.If(pipe.advance & pipe.valid):
                    m.d.sync += [cnt.eq(Mux(end, 0, cnt + 1)), acc.eq(total)]
                    m.d.sync += [a.eq(t) for a, t in zip(accf, tflags)]
        if tp is not None:
            with tp.parallel():
                if B > 1:                # the block sum's loop: one add, one cycle
                    tp.charge((0.0 if ring else ctx.read_ns(tp.fab)) + tp.fab.carry(W)
                              + tp.fab.lut)
                # beside it the scales' sum and its tiny test (_fp32_loop)
                tp.charge(tp.fab.carry(9) + tp.fab.reduce(9) + tp.fab.lut)
        pipe.gate(end)
        if tp is not None:
            return self._fp32_loop(m, pipe, ctx, total, tuple(tflags), sa, sb, last)

        # the block as an exact Fixed scaled by 2**(sa + sb - 254)
        fl = dict(zip(FLAGS, tflags))
        snan = (sa == 0xFF) | (sb == 0xFF)
        nan = fl["nan"] | (fl["pinf"] & fl["ninf"]) | snan
        fx = fixed_from_signed(m, total, self.block_lsb, is_nan=nan,
                               is_inf=fl["pinf"] | fl["ninf"], inf_sign=fl["ninf"],
                               zero_sign=fl["negzero"], name="blk")
        exp0 = Signal(signed(11), name="blk_exp0")        # -286 .. 252
        m.d.comb += exp0.eq(self.block_lsb + sa + sb - 254)
        fx = dataclasses.replace(fx, exp0=exp0)
        fx, last = pipe.cut("block", fx, last)

        # fp32 accumulator: one rounding per block
        first = Signal(init=1, name="first")              # next block starts a dot
        acc32 = Signal(32, name="acc")
        acc_in = Signal(32, name="acc_in")
        m.d.comb += acc_in.eq(Mux(first, NEG_ZERO, acc32))
        uc = unpack(m, acc_in, "fp32", name="acc")
        s = align_add(m, fx, uc, "fp32", name="s")
        u = fixed_to_unpacked(m, s, name="n")
        r = round_sig(m, "fp32", u, name="r")
        code = pack(m, "fp32", r, name="o")
        with m.If(pipe.advance & pipe.valid):
            m.d.sync += [acc32.eq(code), first.eq(last)]
        pipe.gate(last)
        pipe.output(r=code)
        return m

    def _fp32_loop(self, m, pipe, ctx, total, tflags, sa, sb, last):
        """The block's scaling and the fp32 accumulate loop on the fine-cut blocks
        (:func:`.accum.fp_accumulate`), per context.

        A block whose every bit weighs less than a quarter of fp32's smallest
        subnormal (``2**-151``) is replaced by the smallest value of the same sign
        the window places (one bit at ``2**lo``): ``acc + x`` then lies strictly
        between ``acc`` and the nearest midpoint or grid point for both, so RNE and
        RTZ round them alike, and the window's MSB never falls below emin (the
        rounder needs no subnormal shifter inside the loop)."""
        W = self.block_width
        thr = -126 - 23 - 2
        lo = thr - (W - 1)
        # from the scales alone, beside the block sum: their sum and whether the
        # block is too small to matter (exp0 < lo, as a compare of the sum with a
        # constant in LUTs: one short chain, then a fine cut may follow); exp0
        # itself after the cut, beside the block's negation
        ssum = Signal(9, name="blk_ssum")
        tiny = Signal(name="blk_tiny")
        m.d.comb += [ssum.eq(sa + sb),
                     tiny.eq(_below(ssum, lo - self.block_lsb + 254))]
        total, tflags, ssum, tiny, sa, sb, last, index = pipe.cut(
            "blk.sum", total, tflags, ssum, tiny, sa, sb, last, ctx.index)
        exp0 = Signal(signed(11), name="blk_exp0")        # -286 .. 252
        m.d.comb += exp0.eq(ssum + (self.block_lsb - 254))
        fl = dict(zip(FLAGS, tflags))
        snan = (sa == 0xFF) | (sb == 0xFF)
        nan = fl["nan"] | (fl["pinf"] & fl["ninf"]) | snan
        fx = fixed_from_signed(m, total, self.block_lsb, is_nan=nan,
                               is_inf=fl["pinf"] | fl["ninf"], inf_sign=fl["ninf"],
                               zero_sign=fl["negzero"], name="blk", pipe=pipe)
        with pipe.carry(exp0, tiny, last, index) as c:
            fx = pipe.cut("blk.neg", fx)           # a fine point before the tiny test
        exp0, tiny, last, index = c.values
        mag = Signal(W, name="blk_mag")
        e0 = Signal(signed(11), name="blk_e0")
        m.d.comb += [mag.eq(Mux(tiny, ~fx.is_zero, fx.mag)), e0.eq(Mux(tiny, lo, exp0))]
        pipe.charge(pipe.fab.lut)
        fx = dataclasses.replace(fx, mag=mag, exp0=e0)
        fx, last, index = pipe.cut("block", fx, last, index)
        # every dot product starts from -0 (the accumulator's reset value, and what
        # the write-back stores after its last block)
        code, last, _ = fp_accumulate(m, pipe, ctx, lambda: (fx, lo), "fp32",
                                      index=index, init=Const(NEG_ZERO, 32), last=last,
                                      fast_read=True)
        pipe.gate(last)
        pipe.output(r=code)
        return m
