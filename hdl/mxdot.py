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

from amaranth.hdl import Const, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib.fifo import SyncFIFOBuffered

from lpcores.errors import FmaxError, ParamError, check_int
from lpcores.formats import get_format

from .base import (Contexts, Field, Pipeline, StreamCore, check_loop_depth,
                   name_pipelined, pairwise_tree, plan_pipeline, reword_loop,
                   static_schedule, step_decoder, timing_suffix)
from .accum import fp_accumulate
from .fp import (_below, align_add, fixed_from_signed, fixed_to_unpacked, lane_products,
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
    partials : int
        One dot product at a block a cycle (1, 2, 4, 8 or 16; ``lanes=32``, with
        ``fmax``): block k into fp32 sum ``k mod partials``, the sums added by a
        pairwise tree at the end (``golden.mx_dot(..., partials=)``; docs/mx.md).
    stages : int
        Pipeline registers besides the output register (0..3).
    fmax, family : float, str
        Instead of ``stages``: the clock (MHz) to meet on ``family`` (default
        ``ecp5``); registers go where the delay model says, inside the fp32
        accumulate loop too (at most ``contexts - 1`` there).

    Payload: in ``{a0.., b0.., sa, sb, last}``, out ``{r}`` (fp32).
    """

    def __init__(self, *, a_fmt, b_fmt, lanes=32, contexts=1, partials=1, stages=None,
                 fmax=None, family=None):
        self.fa = get_format(a_fmt, param="a_fmt", allowed=MX_ELEM_FORMATS)
        self.fb = get_format(b_fmt, param="b_fmt", allowed=MX_ELEM_FORMATS)
        check_int("lanes", lanes, lo=1, hi=32)
        if lanes not in LANES:
            raise ParamError(f"lanes must divide 32 (1, 2, 4, 8, 16 or 32), got "
                             f"lanes={lanes}")
        self.lanes = lanes
        self.contexts = check_int("contexts", contexts, lo=1, hi=64)
        self.partials = check_int("partials", partials, lo=1, hi=16)
        if partials & (partials - 1):
            raise ParamError(f"partials must be a power of two in 1..16, got "
                             f"partials={partials}")
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
        if partials > 1:
            msg = (f"partials needs lanes=32 (a block a beat), got lanes={lanes}"
                   if lanes != 32 else
                   f"partials and contexts are alternatives (partials split one dot "
                   f"product, contexts interleave several), got contexts={contexts}"
                   if contexts != 1 else
                   f"partials applies to the fmax build only (give fmax, not stages), got "
                   f"stages={stages}" if stages is not None else
                   f"partials applies to the fmax build only (give fmax too), got "
                   f"partials={partials}" if fmax is None else None)
            if msg:
                self._MustUse__silence = True       # refused: never elaborated
                raise ParamError(msg)
            self._plan_partials(partials, fmax, family)
            return
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
        if self.partials > 1:
            s["accumulator"]["partials"] = self.partials
        return s

    # -- partials: one dot product at a block a cycle ---------------------------------

    def _plan_partials(self, P, fmax, family):
        """``partials`` P (docs/mx.md, "A single stream at speed"): an inner MXDot
        with ``contexts = P`` takes block j of a dot product into its sum ``j mod P``
        (its accumulate loop may be P cycles deep); after the dot product's last block
        P - 1 pad blocks (every product -0: they add nothing) close the other sums;
        the P sums are collected and added by a pairwise tree on one pipelined fp32
        adder (an :class:`.fma.FMA` with ``b = 1``), scheduled statically."""
        from .fma import FMA
        try:
            inner = MXDot(a_fmt=self.fa.name, b_fmt=self.fb.name, lanes=32, contexts=P,
                          fmax=fmax, family=family)
        except FmaxError as e:
            if e.loop is None:
                raise
            raise reword_loop(e, "partials", "the accumulate loop of this mxdot", fmax,
                              family or "ecp5") from None
        try:
            red = FMA(a_fmt="fp32", b_fmt="e2m1", acc_fmt="fp32", fmax=fmax,
                      family=family)
        except FmaxError as e:
            raise e.reworded(str(e).replace("for this fma", "for this mxdot's tree "
                                            "adder")) from None
        for c in (inner, red):
            c._MustUse__used = True
        self.inner, self.red = inner, red
        self.family = inner.family
        self.loop_cycles = inner.loop_cycles
        # the tree in level order, each add issued once its operands are written (the
        # operands registered first, so one cycle more than the adder's latency)
        self.red_lf = Lf = red.latency + 1
        prog = pairwise_tree(P)
        times, ready = static_schedule(([x, y], [dst], Lf) for x, y, dst in prog)
        self.program = list(zip(times, prog))
        self.t_fin = ready[0] - 1                    # the last write
        # last beat at 0, pads 1..P-1, results Li..Li+P-1, the program from Li+P, the
        # result register two cycles after its last write
        self.latency = inner.latency + P + self.t_fin + 2
        self.latency_formula = (
            f"{self.latency} cycles from the beat carrying last to the result (= the "
            f"inner accumulate's latency {inner.latency} + partials {P} + the tree "
            f"{self.t_fin} + 2); after each last beat the input takes no beat for "
            f"{P - 1} cycles (the pads)")
        self.beats_per_result = (f"variable: one result per beat with last=1 (a block a "
                                 f"beat), plus {P - 1} pad cycles per dot product")
        self.timing = {"family": self.family, "fmax_asked_mhz": fmax, "partials": P,
                       "accumulate": inner.timing, "tree_adder": red.timing,
                       "estimate_mhz": min(inner.timing["estimate_mhz"],
                                           red.timing["estimate_mhz"])}
        self.stages = None
        self.params = {"a_fmt": self.fa.name, "b_fmt": self.fb.name, "lanes": 32,
                       "partials": P, "fmax": fmax, "family": self.family}
        self.module_name = (f"mxdot_{self.fa.name}_{self.fb.name}_l32_p{P}"
                            + timing_suffix(None, fmax, self.family))

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
            # the products' exp0 is already their shift (lane_products(shift=))
            fx, cins = to_fixed_lanes(m, prods, 0, bw, name="k", pipe=pipe)
            s = sum_tree(m, fx, bw, name="t", pipe=pipe, carries=cins, leaf_bits=w1)
        return s, *c.values

    def elaborate(self, platform):
        if self.partials > 1:
            return self._elaborate_partials()
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
                # on biased exponents: each product's exp0 its shift into the
                # beat's word (the word's LSB the smallest product bit)
                prods = lane_products(m, [(getattr(pl, f"a{k}"), getattr(pl, f"b{k}"))
                                          for k in range(L)], self.fa, self.fb, tp,
                                      unpack_fn=unpack_elem_biased, shift=True)
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


def _pad_codes(fa, fb):
    """A pad block's element codes: every product -0 (a float -0 times +0; MXINT8 has
    no -0, so -128 x +0, whose sign is the XOR of the signs, SPEC §4.1)."""
    if fa.kind != "int":
        return 1 << (fa.bits - 1), 0
    if fb.kind != "int":
        return 0, 1 << (fb.bits - 1)
    return 0x80, 0


def _elaborate_partials(self):
    """``partials`` (:meth:`MXDot._plan_partials`): the input with the pads, the
    inner MXDot, the collection of its P sums, the static tree on one adder."""
    m = Module()
    P, inner, red = self.partials, self.inner, self.red
    m.submodules.acc = inner
    m.submodules.tree = red
    pb = (P - 1).bit_length()
    pl = self.i.payload

    # ---- the input and the pads ----------------------------------------------------
    pad_left = Signal(range(P), name="pad_left")     # pads still to send
    padding = pad_left != 0
    vph = Signal(pb, name="blk_pos")                 # block index mod P in the dot
    # the partial sum the inner's first result of a dot product is: (n - 1) mod P,
    # queued until its results come out (dot products in flight inside the inner)
    first = SyncFIFOBuffered(width=pb, depth=inner.latency // P + 3)
    m.submodules.first = first
    m.d.comb += self.i.ready.eq(inner.i.ready & ~padding & first.w_rdy & ~ResetSignal())
    take = self.i.valid & self.i.ready
    pad_a, pad_b = _pad_codes(self.fa, self.fb)
    for k in range(32):
        m.d.comb += [inner.i.payload[f"a{k}"].eq(Mux(padding, pad_a, pl[f"a{k}"])),
                     inner.i.payload[f"b{k}"].eq(Mux(padding, pad_b, pl[f"b{k}"]))]
    m.d.comb += [inner.i.payload.sa.eq(Mux(padding, 127, pl.sa)),
                 inner.i.payload.sb.eq(Mux(padding, 127, pl.sb)),
                 inner.i.payload.last.eq(padding | pl.last),
                 inner.i.valid.eq(Mux(padding, 1, self.i.valid & ~padding & first.w_rdy)),
                 first.w_data.eq(vph), first.w_en.eq(take & pl.last)]
    with m.If(take):
        m.d.sync += vph.eq(Mux(pl.last, 0, vph + 1))
        with m.If(pl.last):
            m.d.sync += pad_left.eq(P - 1)
    with m.If(padding & inner.i.ready):
        m.d.sync += pad_left.eq(pad_left - 1)

    # ---- the P sums collected into t[(first + k) mod P] ------------------------------
    t = [Signal(32, name=f"t{i}") for i in range(P)]
    b_run, b_done = Signal(name="b_run"), Signal(name="b_done")
    idle = ~b_run & ~b_done
    k = Signal(pb, name="got_n")
    idx = Signal(pb, name="got_idx")
    m.d.comb += [inner.o.ready.eq(idle), idx.eq(first.r_data + k)]
    got = inner.o.valid & idle
    hand = got & (k == P - 1)
    m.d.comb += first.r_en.eq(hand)
    with m.If(got):
        m.d.sync += k.eq(k + 1)
        for j in range(P):
            with m.If(idx == j):
                m.d.sync += t[j].eq(inner.o.payload.r)

    # ---- the tree: a static program on one adder --------------------------------------
    st = Signal(range(self.t_fin + 2), name="step")
    with m.If(hand):
        m.d.sync += [b_run.eq(1), st.eq(0)]
    with m.Elif(b_run):
        m.d.sync += st.eq(st + 1)
    fin = b_run & (st == self.t_fin)
    o_valid, o_r = Signal(name="o_valid"), Signal(32, name="o_r")
    push = b_done & (~o_valid | self.o.ready)
    with m.If(fin):
        m.d.sync += [b_run.eq(0), b_done.eq(1)]
    with m.Elif(push):
        m.d.sync += b_done.eq(0)
    with m.If(push):
        m.d.sync += [o_valid.eq(1), o_r.eq(t[0])]
    with m.Elif(self.o.ready):
        m.d.sync += o_valid.eq(0)
    m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.r.eq(o_r)]

    # the program's decode registered a cycle ahead (base.step_decoder)
    at = step_decoder(m, st, hand, b_run)

    Lf = self.red_lf
    opsel, writes = [{}, {}], {}
    for when, (x, y, dst) in self.program:
        opsel[0].setdefault(x, []).append(when)
        opsel[1].setdefault(y, []).append(when)
        writes.setdefault(dst, []).append(when + Lf)
    issue = at([w for w, _ in self.program], "tree_issue")
    operands = []
    for pos, srcs in enumerate(opsel):
        v = 0
        for src, whens in srcs.items():
            v = Mux(at(whens, f"tree_sel{'ac'[pos]}{src}"), t[src], 0) | v
        operands.append(v)
    ua_r, uc_r, issue_r = Signal(32, name="tree_a"), Signal(32, name="tree_c"), Signal()
    m.d.sync += [ua_r.eq(operands[0]), uc_r.eq(operands[1]), issue_r.eq(issue)]
    one = 0b0010                                     # e2m1 1.0
    m.d.comb += [red.i.valid.eq(issue_r), red.i.payload.a.eq(ua_r),
                 red.i.payload.b.eq(one), red.i.payload.c.eq(uc_r), red.o.ready.eq(1)]
    for dst, whens in writes.items():
        with m.If(at(whens, f"tree_wr{dst}")):
            m.d.sync += t[dst].eq(red.o.payload.r)
    return m


MXDot._elaborate_partials = _elaborate_partials
