"""``Dot``: dot-product / MAC engine over a stream of beats.

Each input beat carries ``lanes`` element pairs ``a{k}``, ``b{k}``, a ``last`` flag
and, with ``addend=True``, an addend ``c`` (read with the *first* beat of each dot
product). One result per dot product, emitted for the beat that carried ``last``.

``accumulate="exact"`` (default for elements of 8 bits or fewer)
    Every product is exact; the products of a beat are placed in a fixed-point
    (Kulisch) word and summed by a balanced adder tree; beats are summed into a
    Kulisch accumulator of :func:`.fp.kulisch_width` bits (sized from the formats
    and ``max_terms``); at ``last`` the sum (plus ``c``, through the same exact
    window adder as the FMA) is normalized and rounded **once** into ``out_fmt``.
``accumulate="fp"``
    Each beat's lanes are summed exactly and added to the accumulator with one
    rounding into ``out_fmt`` per beat (``lanes=1`` is a chain of FMAs). The
    accumulator starts at ``c`` (or -0, the IEEE additive identity).
int8 x int8
    Exact integer accumulation, result ``int32`` two's complement (plus ``c``,
    wrapping modulo 2**32 if c pushes it out of range).

``overflow`` in the output is set when a dot product had more than ``max_terms``
terms (the accumulator is only sized for ``max_terms``): never silent.

Special values: any NaN, Inf x 0, or +Inf and -Inf together give NaN; otherwise an
Inf term gives that Inf. An exact zero result is -0 only if every term (and c) was
-0.

``magnitude=True`` (fp, no addend): the dot product of ``|a|`` and ``|b|``, every
step an addition of magnitudes; built for a clock its loop has no leading-zero
count (IterNorm's lane sums of squares).

Pipelining (``stages``): cut points, in the order taken,

* exact: ``acc`` (after the accumulator, before the final rounding), ``beat``
  (after the lane adder tree), ``round`` (before packing), ``mul`` (after the
  multipliers), ``add`` (after adding c, with ``addend``).
* fp: ``beat``, ``mul``: the accumulate-and-round loop is one cycle deep; with
  ``contexts`` and ``fmax`` it may be up to ``contexts`` deep (docs/contexts.md).

``contexts`` k: k dot products interleaved beat by beat (the j-th beat since reset
belongs to context ``j mod k``), each with the semantics above.

Latency: ``stages + 1`` cycles from the beat carrying ``last`` to the result.
Throughput: one beat a cycle, back-to-back dot products included.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed

from lpcores.errors import ParamError, check_bool, check_choice, check_int
from lpcores.formats import FLOAT_FORMATS, get_format

from .base import (Contexts, Field, Pipeline, StreamCore, check_loop_depth,
                   name_pipelined, plan_pipeline)
from .fp import (ROUNDINGS, Fixed, add_aligned, align, align_add, counted_to_unpacked,
                 fixed_from_signed, fixed_lzc, fixed_to_unpacked, kulisch_width,
                 lane_products, multiply, pack, round_apply, round_decide, round_sig, sum_tree,
                 to_fixed, to_fixed_lanes, unpack, window_exp_min)
from .fp import _carry as _carry_opt
from .accum import fp_accumulate
from .prims import dsp_products, use_registered_dsp


__all__ = ["Dot"]

ELEM_FORMATS = FLOAT_FORMATS + ("int8",)
FLOAT_OUT = ("fp32", "fp16", "bf16")


class Dot(StreamCore):
    """Dot-product engine (see the module docstring).

    Parameters
    ----------
    a_fmt, b_fmt : str
        Element formats: any float format of SPEC §2, or ``int8`` for both.
    out_fmt : str
        ``fp32`` (default), ``fp16``, ``bf16``; ``int32`` for int8 elements.
    lanes : int
        Element pairs per beat, 1..64.
    accumulate : str
        ``"exact"`` or ``"fp"``; default exact for elements of 8 bits or fewer.
    max_terms : int
        Products per dot product the exact accumulator is sized for (>= 1).
    addend : bool
        Carry an addend ``c`` (in ``out_fmt``) with the first beat.
    rounding : str
        ``"rne"`` or ``"rtz"``.
    stages : int
        Pipeline registers besides the output register.
    contexts : int
        Dot products interleaved beat by beat, 1..64 (docs/contexts.md).
    fmax, family : float, str
        Instead of ``stages``: the clock (MHz) to meet on ``family`` (default
        ``ecp5``); registers go where the delay model says, also between the levels
        of the lanes' alignment shifters and adder tree and inside the final
        normalize/round (docs/timing.md). The exact accumulator's own loop (one add)
        stays one cycle; the fp round-per-beat loop may hold up to ``contexts - 1``
        registers (a clock that needs more is refused, naming the contexts needed).
    magnitude : bool
        ``accumulate="fp"`` without an addend: the dot product of ``|a|`` and ``|b|``
        (the elements' sign bits ignored), so each step adds magnitudes: built for
        a clock (``fmax`` or ``contexts``), the loop's add is one carry chain and
        its normalization a carry test and one shift level, no leading-zero count
        (:func:`.fp.carry_count`). IterNorm's sums of squares use it.
    """

    def __init__(self, *, a_fmt, b_fmt, out_fmt=None, lanes=8, accumulate=None,
                 max_terms=1024, addend=False, rounding="rne", contexts=1, stages=None,
                 fmax=None, family=None, magnitude=False):
        self.fa = get_format(a_fmt, param="a_fmt", allowed=ELEM_FORMATS)
        self.fb = get_format(b_fmt, param="b_fmt", allowed=ELEM_FORMATS)
        self.is_int = self.fa.kind == "int"
        if (self.fa.kind == "int") != (self.fb.kind == "int"):
            raise ParamError(f"int8 elements multiply only int8 elements, got "
                             f"a_fmt={self.fa.name!r}, b_fmt={self.fb.name!r}")
        if self.is_int:
            out_fmt = out_fmt or "int32"
            if out_fmt != "int32":
                raise ParamError(f"out_fmt must be int32 for int8 elements, got "
                                 f"out_fmt={out_fmt!r}")
            accumulate = accumulate or "exact"
            if accumulate != "exact":
                raise ParamError(f"accumulate must be exact for int8 elements, got "
                                 f"accumulate={accumulate!r}")
            self.fo = None
        else:
            out_fmt = out_fmt or "fp32"
            self.fo = get_format(out_fmt, param="out_fmt", allowed=FLOAT_OUT)
            if accumulate is None:
                accumulate = "exact" if max(self.fa.bits, self.fb.bits) <= 8 else "fp"
        self.out_fmt = out_fmt
        self.accumulate = check_choice("accumulate", accumulate, ("exact", "fp"))
        self.lanes = check_int("lanes", lanes, lo=1, hi=64)
        self.max_terms = check_int("max_terms", max_terms, lo=1)
        if self.is_int and kulisch_width("int8", "int8", max_terms)[0] > 32:
            raise ParamError(f"max_terms must be at most 131071 for int8 (int32 "
                             f"accumulator), got max_terms={max_terms}")
        if not isinstance(addend, bool):
            raise ParamError(f"addend must be True or False, not {addend!r}")
        self.addend = addend
        self.magnitude = check_bool("magnitude", magnitude)
        if magnitude and (self.accumulate != "fp" or addend):
            raise ParamError(
                f"magnitude=True applies to accumulate='fp' without an addend, got "
                f"{'addend=True' if addend else f'accumulate={self.accumulate!r}'}")
        self.rounding = check_choice("rounding", rounding, ROUNDINGS)
        self.contexts = check_int("contexts", contexts, lo=1, hi=64)
        self.cuts = self._cuts()
        L = lanes
        self.in_fields = ([Field(f"a{k}", self.fa.bits, self.fa.name) for k in range(L)]
                          + [Field(f"b{k}", self.fb.bits, self.fb.name) for k in range(L)]
                          + ([Field("c", 32 if self.is_int else self.fo.bits, out_fmt)]
                             if addend else [])
                          + [Field("last", 1)])
        self.out_fields = [Field("r", 32 if self.is_int else self.fo.bits, out_fmt),
                           Field("overflow", 1)]
        self.beats_per_result = "variable: one result per beat with last=1"
        self.acc_width, self.acc_lsb = (
            kulisch_width(self.fa, self.fb, max_terms) if accumulate == "exact"
            else kulisch_width(self.fa, self.fb, lanes))
        super().__init__()
        # clock-directed (or contexts): the blocks charge their delays and offer fine
        # cut points; with stages alone the netlist stays the one of the named cut
        # points (no model)
        self.timed = fmax is not None or contexts > 1
        self._loop_entry = None
        self.stages, self.timing = plan_pipeline(self, self.cuts, stages=stages,
                                                 fmax=fmax, family=family, name="dot")
        if fmax is None:
            self.timing = None
        # the fp accumulator's loop (round(acc + beat)) may be as deep as contexts
        self.loop_cycles = check_loop_depth(self, self._loop_entry, contexts, fmax,
                                            name="dot")
        params = {"a_fmt": self.fa.name, "b_fmt": self.fb.name, "out_fmt": out_fmt,
                  "lanes": lanes, "accumulate": accumulate, "max_terms": max_terms,
                  "addend": addend, "rounding": rounding}
        if contexts > 1:
            params["contexts"] = contexts
        if magnitude:                       # as contexts: named when not default
            params["magnitude"] = True
        name_pipelined(self, f"dot_{self.fa.name}_{self.fb.name}_{out_fmt}_l{lanes}_"
                       f"{accumulate}_t{max_terms}{'_c' if addend else ''}"
                       f"{'_abs' if magnitude else ''}"
                       f"{'_rtz' if rounding == 'rtz' else ''}"
                       f"{f'_k{contexts}' if contexts > 1 else ''}", params, fmax)

    def _cuts(self):
        if self.accumulate == "fp":
            return ("beat", "mul")
        if self.is_int:
            return ("acc", "beat", "mul")
        return ("acc", "beat", "round", "mul") + (("add",) if self.addend else ())

    def sidecar(self):
        s = super().sidecar()
        s["accumulator"] = {"width": self.acc_width, "lsb_exp": self.acc_lsb,
                            "formula": "see lpcores.hdl.fp.kulisch_width",
                            "contexts": self.contexts, "loop_cycles": self.loop_cycles}
        return s

    # -- datapath -----------------------------------------------------------------

    def _products(self, m, pl, pipe=None):
        """Per lane: a Fixed product (float) or a signed 16-bit product (int8)."""
        prods = []
        if self.is_int:
            if use_registered_dsp(pipe, 8, 8):      # a clock above the inferred DSP's
                return dsp_products(m, [(getattr(pl, f"a{k}"), getattr(pl, f"b{k}"))
                                        for k in range(self.lanes)], pipe, name="mul_dsp")
            for k in range(self.lanes):
                a, b = getattr(pl, f"a{k}"), getattr(pl, f"b{k}")
                p = Signal(signed(16), name=f"p{k}")
                m.d.comb += p.eq(a.as_signed() * b.as_signed())
                prods.append(p)
            if pipe is not None:
                pipe.charge(pipe.fab.dsp_mul if pipe.fab.has_dsp
                            else pipe.fab.mul_lut(8, 8))
            return prods

        def operand(name, f):
            v = Value.cast(getattr(pl, name))
            # magnitude: the sign bits cleared, the products |a*b|
            return Cat(v[:f.bits - 1], Const(0, 1)) if self.magnitude else v
        pairs = [(operand(f"a{k}", self.fa), operand(f"b{k}", self.fb))
                 for k in range(self.lanes)]
        if pipe is None:
            for k, (a, b) in enumerate(pairs):
                ua = unpack(m, a, self.fa, name=f"a{k}")
                ub = unpack(m, b, self.fb, name=f"b{k}")
                prods.append(multiply(m, ua, self.fa, ub, self.fb, name=f"p{k}"))
            return prods
        return lane_products(m, pairs, self.fa, self.fb, pipe)

    def _beat(self, m, prods, pipe=None):
        """The exact sum of one beat's products and the beat's class flags."""
        bw, blsb = kulisch_width(self.fa, self.fb, self.lanes)
        w1 = kulisch_width(self.fa, self.fb, 1)[0]       # one product, signed
        if self.is_int:
            return sum_tree(m, prods, bw, name="t", pipe=pipe, leaf_bits=w1), None
        if pipe is None:
            fx = [to_fixed(m, p, blsb, bw, name=f"k{k}") for k, p in enumerate(prods)]
            s = sum_tree(m, fx, bw, name="t", leaf_bits=w1)
        flags = {
            "nan": Value.cast(0),
            "pinf": Value.cast(0),
            "ninf": Value.cast(0),
            "negzero": Value.cast(1),
        }
        for p in prods:
            flags["nan"] = flags["nan"] | p.is_nan
            flags["pinf"] = flags["pinf"] | (p.is_inf & ~p.sign)
            flags["ninf"] = flags["ninf"] | (p.is_inf & p.sign)
            flags["negzero"] = flags["negzero"] & p.is_zero & p.sign
        sig = {}
        for k, v in flags.items():
            sig[k] = Signal(name=f"beat_{k}")
            m.d.comb += sig[k].eq(v)
        if pipe is None:
            return s, sig
        # the flags ride along the fine cuts of the shifters and the adder tree
        with pipe.carry(flags_tuple(sig)) as c:
            # negative lanes in ones' complement, their +1s the tree's carry-ins
            fx, cins = to_fixed_lanes(m, prods, blsb, bw, name="k", pipe=pipe)
            s = sum_tree(m, fx, bw, name="t", pipe=pipe, carries=cins, leaf_bits=w1)
        return s, flags_dict(c.values[0])

    def _count(self, m, pipe, ctx, first, last, ring=False):
        """Terms counter; overflow once a dot product has more than max_terms."""
        top = self.max_terms + self.lanes
        if ctx.k > 1 or self.timed:
            # the compare on the value read (through the context's read: a ring, or a
            # mux), beside the add, not after it (cnt saturates at max_terms + 1, so
            # cnt + lanes > max_terms is cnt > max_terms - lanes); built for a clock,
            # also with one context (after the add it was two carry chains in
            # series, the critical path of Dot int8 at 180 and NMDot at 150)
            make = ctx.ring if ring else ctx.reg
            cnt_r, ovf_r = make(range(top + 1), name="terms"), make(1, name="terms_ovf")
            cnt, ovf = cnt_r.now, ovf_r.now
            sat = Signal(name="terms_sat")
            m.d.comb += sat.eq(cnt > self.max_terms - self.lanes)
            ovf_t = Signal(name="ovf_next")
            m.d.comb += ovf_t.eq(Mux(first, self.lanes > self.max_terms, ovf | sat))
            cnt_r.set(Mux(first, min(self.lanes, self.max_terms + 1),
                          Mux(sat, self.max_terms + 1, cnt + self.lanes)))
            ovf_r.set(ovf_t)
            return ovf_t
        cnt = ctx.reg(range(top + 1), name="terms").now
        ovf = ctx.reg(1, name="terms_ovf").now
        cnt_t = Signal(range(top + 1), name="terms_next")
        m.d.comb += cnt_t.eq(Mux(first, 0, cnt) + self.lanes)
        ovf_t = Signal(name="ovf_next")
        m.d.comb += ovf_t.eq(Mux(first, 0, ovf) | (cnt_t > self.max_terms))
        with m.If(pipe.advance & pipe.valid):
            m.d.sync += [cnt.eq(Mux(cnt_t > self.max_terms, self.max_terms + 1, cnt_t)),
                         ovf.eq(ovf_t)]
        return ovf_t

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self, self.cuts, self.stages)
        pl = self.i.payload
        c = pl.c if self.addend else None
        last = pl.last
        tp = pipe if self.timed else None       # blocks charge delays / fine cuts
        with _carry_opt(tp, c, last) as cl:        # across the fine cut mul.u
            prods = self._products(m, pl, tp)
        c, last = cl.values
        prods, c, last = pipe.cut("mul", tuple(prods), c, last)
        if self.accumulate == "fp" and self.lanes == 1 and tp is not None:
            beat, flags = prods[0], None       # the product itself: an FMA chain
        else:
            with _carry_opt(tp, c, last) as cl:
                beat, flags = self._beat(m, prods, tp)
            c, last = cl.values
        beat, flags, c, last = pipe.cut("beat", beat, flags_tuple(flags), c, last)
        flags = flags_dict(flags)

        # the accumulators' stage: one register per context (contexts=1: one)
        ctx = Contexts(m, self.contexts, pipe.advance & pipe.valid)
        # state every beat reads and writes here: a ring with k contexts (no read
        # mux) where nothing else reads it through the index (fp, no addend)
        ring = self.contexts > 1 and self.accumulate == "fp" and not self.addend
        first = (ctx.ring(1, init=1, name="first") if ring
                 else ctx.reg(1, init=1, name="first"))  # next beat starts a dot
        ovf = self._count(m, pipe, ctx, first.now, last, ring=ring)
        if self.accumulate == "fp":
            if tp is None:
                code = self._fp_loop(m, pipe, first.now, last, beat, flags, c)
            else:
                code, last, ovf = self._fp_loop_timed(m, pipe, ctx, first, last, beat,
                                                      flags, c, ovf)
            pipe.gate(last)
            pipe.output(r=code, overflow=ovf)
            return m

        acc = ctx.reg(signed(self.acc_width), name="acc").now
        first = first.now
        total = Signal(signed(self.acc_width), name="acc_next")
        if tp is None:
            m.d.comb += total.eq(Mux(first, 0, acc) + beat)
        else:
            # built for a clock: acc is cleared after the beat carrying last (reset
            # clears it too), so it is 0 whenever first is set and the loop is the
            # add alone; the clear is the registers' synchronous reset, off the loop
            m.d.comb += total.eq(acc + beat)
        if tp is not None:               # the accumulator's loop: one add, one cycle
            tp.charge(ctx.read_ns(tp.fab) + tp.fab.carry(self.acc_width) + tp.fab.lut)
        if flags is not None:
            accf = {k: ctx.reg(1, name=f"acc_{k}").now for k in flags}
            totf = {}
            for k, v in flags.items():
                totf[k] = Signal(name=f"acc_{k}_next")
                if k == "negzero":
                    m.d.comb += totf[k].eq(Mux(first, 1, accf[k]) & v)
                else:
                    m.d.comb += totf[k].eq(Mux(first, 0, accf[k]) | v)
        with m.If(pipe.advance & pipe.valid):
            m.d.sync += [acc.eq(total if tp is None else Mux(last, 0, total)),
                         first.eq(last)]
            if flags is not None:
                m.d.sync += [accf[k].eq(totf[k]) for k in flags]
        cfirst = c
        if self.addend:
            # c comes with the first beat: hold it for the beat carrying last
            c_hold = ctx.reg(len(Value.cast(c)), name="c_hold").now
            with m.If(pipe.advance & pipe.valid & first):
                m.d.sync += c_hold.eq(c)
            cfirst = Mux(first, c, c_hold)
        pipe.gate(last)

        if self.is_int:
            total, cfirst, ovf = pipe.cut("acc", total, cfirst, ovf)
            r = Signal(32, name="r_int")
            extra = Value.cast(cfirst).as_signed() if self.addend else 0
            m.d.comb += r.eq(total + extra)
            if tp is not None:
                tp.charge(tp.fab.carry(32))
            pipe.output(r=r, overflow=ovf)
            return m

        total, ff, cfirst, ovf = pipe.cut("acc", total, flags_tuple(totf), cfirst, ovf)
        totf = flags_dict(ff)
        fo = self.fo
        nan = totf["nan"] | (totf["pinf"] & totf["ninf"])
        inf = totf["pinf"] | totf["ninf"]
        if tp is None:
            fx = fixed_from_signed(m, total, self.acc_lsb, is_nan=nan, is_inf=inf,
                                   inf_sign=totf["ninf"], zero_sign=totf["negzero"],
                                   name="sum")
            if self.addend:
                uc = unpack(m, cfirst, fo, name="c")
                fx = align_add(m, fx, uc, fo, name="s")
                fx, ovf = pipe.cut("add", fx, ovf)
            u = fixed_to_unpacked(m, fx, name="n")
            r = round_sig(m, fo, u, rounding=self.rounding, name="r")
            r, ovf = pipe.cut("round", r, ovf)
            pipe.output(r=pack(m, fo, r, rounding=self.rounding, name="o"), overflow=ovf)
            return m
        # timed: the blocks' fine cuts carry ovf along; the normalize is clamped at
        # emin (its marker built beside the align, or constant for the accumulator)
        with tp.carry(ovf, cfirst) as co:
            fx = fixed_from_signed(m, total, self.acc_lsb, is_nan=nan, is_inf=inf,
                                   inf_sign=totf["ninf"], zero_sign=totf["negzero"],
                                   name="sum", pipe=tp)
            fx = tp.cut("sum.abs", fx)
            cfirst = co.values[1]
            if self.addend:
                uc = unpack(m, cfirst, fo, name="c", pipe=tp)
                al = align(m, fx, uc, fo, name="s", pipe=tp, emin=fo.emin,
                           p_bounds=self.acc_lsb)
                with tp.carry(al.floor) as cf:
                    fx = add_aligned(m, al, name="s", pipe=tp)
                (floor,) = cf.values
                with tp.carry(floor) as cf:
                    fx = pipe.cut("add", fx)
                (floor,) = cf.values
                exp_min = window_exp_min(self.acc_lsb, len(Value.cast(al.pwin)) - 0, fo,
                                         al.L, al.dmax)
                cx = fixed_lzc(fx, m=m, floor=floor, pipe=tp, name="n")
            else:
                cx = fixed_lzc(fx, m=m, emin=fo.emin, pipe=tp, name="n")
                top = self.acc_lsb + self.acc_width - 1
                exp_min = fo.emin if top >= fo.emin else None
            # without a subnormal shifter in the rounder, its exponent bases are
            # built beside the normalizing shift
            early = exp_min is not None and exp_min >= fo.emin
            if early:
                u, eb = counted_to_unpacked(m, cx, name="n", pipe=tp, round_fmt=fo)
            else:
                u, eb = counted_to_unpacked(m, cx, name="n", pipe=tp), None
            d = round_decide(m, fo, u, rounding=self.rounding, exp_min=exp_min, name="r",
                             pipe=tp, ebase=eb)
        ovf = co.values[0]
        d, ovf = pipe.cut("round", d, ovf)
        with tp.carry(ovf) as co:           # across pack's fine point (o.in)
            r = round_apply(m, d, name="r", pipe=tp)
            code = pack(m, fo, r, rounding=self.rounding, name="o", pipe=tp)
        pipe.output(r=code, overflow=co.values[0])
        return m

    def _fp_loop_timed(self, m, pipe, ctx, first, last, beat, flags, c, ovf):
        """acc[ctx] = round(acc[ctx] + exact beat sum) on the fine-cut blocks
        (:func:`.accum.fp_accumulate`: the loop may hold up to ``contexts - 1``
        registers). Returns the rounded code and ``last``, ``ovf`` at the loop's
        end."""
        fa, fb, fo = self.fa, self.fb, self.fo

        def make_x():
            if self.lanes == 1:              # the beat is the exact product (a Fixed)
                return beat, fa.emin + fb.emin - fa.man_bits - fb.man_bits
            _, lsb = kulisch_width(fa, fb, self.lanes)
            nan = flags["nan"] | (flags["pinf"] & flags["ninf"])
            return fixed_from_signed(m, beat, lsb, is_nan=nan,
                                     is_inf=flags["pinf"] | flags["ninf"],
                                     inf_sign=flags["ninf"], zero_sign=flags["negzero"],
                                     name="beat", pipe=pipe), lsb
        if self.addend:                 # the first beat's c starts the sum
            init, first_ = c, first
        else:                           # -0, the IEEE additive identity
            init, first_ = Const((1 << (fo.bits - 1)), fo.bits), None
            first.set(last)                            # for the terms counter
        code, last, (ovf,) = fp_accumulate(m, pipe, ctx, make_x, fo, first=first_,
                                           index=ctx.index, init=init, last=last,
                                           carried=(ovf,), rounding=self.rounding,
                                           narrow=True, magnitude=self.magnitude)
        return code, last, ovf

    def _fp_loop(self, m, pipe, first, last, beat, flags, c):
        """acc = round(acc + exact beat sum), one cycle per beat."""
        fo = self.fo
        bw, blsb = kulisch_width(self.fa, self.fb, self.lanes)
        acc = Signal(fo.bits, name="acc")
        init = c if self.addend else Const((1 << (fo.bits - 1)), fo.bits)   # -0
        acc_in = Signal(fo.bits, name="acc_in")
        m.d.comb += acc_in.eq(Mux(first, init, acc))
        nan = flags["nan"] | (flags["pinf"] & flags["ninf"])
        inf = flags["pinf"] | flags["ninf"]
        fx = fixed_from_signed(m, beat, blsb, is_nan=nan, is_inf=inf,
                               inf_sign=flags["ninf"], zero_sign=flags["negzero"],
                               name="beat")
        ua = unpack(m, acc_in, fo, name="acc")
        s = align_add(m, fx, ua, fo, name="s")
        u = fixed_to_unpacked(m, s, name="n")
        r = round_sig(m, fo, u, rounding=self.rounding, name="r")
        code = pack(m, fo, r, rounding=self.rounding, name="o")
        with m.If(pipe.advance & pipe.valid):
            m.d.sync += [acc.eq(code), first.eq(last)]
        return code


_FLAG_KEYS = ("nan", "pinf", "ninf", "negzero")


def flags_tuple(flags):
    return None if flags is None else tuple(flags[k] for k in _FLAG_KEYS)


def flags_dict(t):
    return None if t is None else dict(zip(_FLAG_KEYS, t))



def make_dot(*, mx=False, **kwargs):
    """The ``dot`` entry of the CLI: :class:`Dot`, or with ``mx=True`` the MX engine
    :class:`.mxdot.MXDot` (SPEC §4.2, MX mode), which takes ``a_fmt``, ``b_fmt``,
    ``lanes``, ``contexts``, ``stages`` or ``fmax``/``family``; the other Dot parameters have no meaning there and are
    rejected unless left at their defaults."""
    if not isinstance(mx, bool):
        raise ParamError(f"mx must be True or False, not {mx!r}")
    if not mx:
        return Dot(**kwargs)
    from .mxdot import MXDot
    fixed = {"out_fmt": (None, "fp32"), "accumulate": (None,), "addend": (False,),
             "rounding": ("rne",), "max_terms": (1024,), "magnitude": (False,)}
    if kwargs.get("stages", 0) is None:
        kwargs.pop("stages")                # the CLI's "not given"
    for name, ok in fixed.items():
        if name in kwargs and kwargs[name] not in ok:
            raise ParamError(f"{name} is not a parameter of the MX dot product (fp32 "
                             f"result, exact block sums, RNE), got {name}="
                             f"{kwargs[name]!r} with mx=True")
        kwargs.pop(name, None)
    return MXDot(**kwargs)
