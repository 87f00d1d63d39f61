"""``FMA``: fused multiply-add ``r = round(a*b + c)``, exact then one rounding.

``a`` and ``b`` in any float format of SPEC §2 (mixed allowed), ``c`` and ``r`` in
``fp32``, ``fp16`` or ``bf16``. Built from the shared blocks of :mod:`.fp`:

    unpack a, b, c -> multiply (exact, PW = (Ma+1)+(Mb+1) bits)
    -> the product's leading-zero count
    -> align_swap (the product normalized; the operand with the larger exponent
       anchors a window of W + 4 bits, W = max(PW, CW), the other shifted right
       with a sticky, as in an adder)
    -> add_aligned -> normalize (log-depth LZC clamped at emin, left shift)
    -> round_decide -> round_apply (increment the packed code) -> pack

The window is as narrow as an adder's: for e4m3 x e4m3 + fp32, 28 bits (a window
anchored on the product, with room for the addend above and below it, takes
2*CW + PW + 7 = 63). The product is exact, so ``a*b + c`` rounded once is the sum
of two exact operands rounded once: :func:`.fp.align_swap` has the argument.

Pipelining (``stages``, 0..7): cut points in the order they are taken, chosen to
split the longest combinational segment each time:

1. ``add``: after the aligned add, before the LZC/normalize (halves the path).
2. ``round``: after the rounding decision (sticky, round bit, overflow), before the
   increment of the packed code and the special-value mux.
3. ``mul``: after the significand multiply and the exponent terms of the swap.
4. ``norm``: between normalize and round.
5. ``unpack``: after unpacking, before the multiplier.
6. ``align``: after the alignment, before the signed add.
7. ``lzc``: inside normalize, between the leading-zero count and the shift.

``fmax`` places registers by delay instead, at these and at the fine cut points
inside the blocks (between the levels of the product's LZC and normalizing shift,
the alignment shifter, the LZC tree and the normalizing shifter, inside the add).

Latency ``stages + 1`` cycles, throughput one FMA a cycle.
"""

from amaranth.hdl import Cat, Const, Module, Value

from lpcores.errors import check_bool, check_choice
from lpcores.formats import FLOAT_FORMATS, get_format

from .base import Field, Pipeline, StreamCore, name_pipelined, plan_pipeline
from .fparith import as_fixed
from .fp import (ROUNDINGS, add_aligned, align_swap, carry_count, counted_to_unpacked,
                 exp_shape, fixed_lzc, floor_marker, lzc_floor, multiply, pack,
                 prenormalize, product_to_unpacked, round_apply, round_decide,
                 swap_exps, unpack)

__all__ = ["FMA", "FMul", "FAdd", "ACC_FORMATS"]

ACC_FORMATS = ("fp32", "fp16", "bf16")
CUTS = ("add", "round", "mul", "norm", "unpack", "align", "lzc")


class FMA(StreamCore):
    """Fused multiply-add stream core.

    Parameters
    ----------
    a_fmt, b_fmt : str
        Element formats (any float format of SPEC §2).
    acc_fmt : str
        Addend / result format: ``fp32``, ``fp16`` or ``bf16``.
    rounding : str
        ``"rne"`` (default) or ``"rtz"``.
    stages : int
        Pipeline registers besides the output register, 0..7 (the named cut points,
        in priority order).
    fmax : float
        Instead of ``stages``: the clock (MHz) to meet on ``family``; the generator
        places the fewest registers its delay model says meet it, at the named and
        the fine cut points (:mod:`.timing`).
    family : str
        FPGA family of the delay model (``ecp5``, ``ice40``, ``xilinx``, ``gowin``,
        ``generic``; default ``ecp5``).

    Payload: in ``{a, b, c}``, out ``{r}``. Latency ``stages + 1``; throughput 1/cycle.
    """

    def __init__(self, *, a_fmt, b_fmt, acc_fmt="fp32", rounding="rne", stages=None,
                 fmax=None, family=None):
        _formats(self, a_fmt, b_fmt, ("acc_fmt", acc_fmt), rounding, addend=True)
        # the wide-datapath derate of the delay model (measured on this core's
        # paths, docs/timing.md): its alignment shifter's word is 2W + 3 bits
        self.wide_derate = True
        _plan(self, CUTS, "fma", "acc_fmt", stages, fmax, family)

    def elaborate(self, platform):
        m = Module()
        fa, fb, fc = self.fa, self.fb, self.fc
        pipe = Pipeline(m, self, CUTS, self.stages)
        pl = self.i.payload
        with pipe.parallel():
            ua = unpack(m, pl.a, fa, name="a", pipe=pipe)
            ub = unpack(m, pl.b, fb, name="b", pipe=pipe)
            uc = unpack(m, pl.c, fc, name="c", pipe=pipe)
        ua, ub, uc = pipe.cut("unpack", ua, ub, uc)
        with pipe.carry(uc) as cu:               # across a wide product's fine cut
            p = multiply(m, ua, fa, ub, fb, name="p", pipe=pipe, dsp_cut=True)
        (uc,) = cu.values
        p, uc = pipe.cut("mul", p, uc)
        _add_round(self, m, pipe, p, uc)
        return m

    def _exp_min(self):
        """The lowest exponent the emin-clamped normalize hands the rounder: the
        window's MSB always weighs more than ``emin`` (:func:`.fp.align_swap`)."""
        return self.fc.emin


MUL_CUTS = ("round", "mul", "norm", "unpack", "lzc")


def _formats(core, a_fmt, b_fmt, result, rounding, addend):
    """The FMA's and FMul's parameters checked, and their ports: ``a``, ``b`` (and
    the addend ``c`` in the result's format), ``r``; ``result`` is (parameter name,
    value)."""
    core.fa = get_format(a_fmt, param="a_fmt", allowed=FLOAT_FORMATS)
    core.fb = get_format(b_fmt, param="b_fmt", allowed=FLOAT_FORMATS)
    core.fc = get_format(result[1], param=result[0], allowed=ACC_FORMATS)
    core.rounding = check_choice("rounding", rounding, ROUNDINGS)
    core.in_fields = [Field("a", core.fa.bits, core.fa.name),
                      Field("b", core.fb.bits, core.fb.name)]
    if addend:
        core.in_fields.append(Field("c", core.fc.bits, core.fc.name))
    core.out_fields = [Field("r", core.fc.bits, core.fc.name)]
    StreamCore.__init__(core)


def _plan(core, cuts, name, result, stages, fmax, family):
    """Pipelining (``stages`` or ``fmax``), then the module name and parameters."""
    core.stages, core.timing = plan_pipeline(core, cuts, stages=stages, fmax=fmax,
                                             family=family, name=name)
    a_normal = getattr(core, "a_normal", False)
    name_pipelined(core, f"{name}_{core.fa.name}_{core.fb.name}_{core.fc.name}"
                   f"{'_rtz' if core.rounding == 'rtz' else ''}"
                   f"{'_anorm' if a_normal else ''}",
                   {"a_fmt": core.fa.name, "b_fmt": core.fb.name,
                    result: core.fc.name, "rounding": core.rounding,
                    **({"a_normal": True} if a_normal else {})}, fmax)


def _add_round(core, m, pipe, p, uc, magnitude=False):
    """The FMA's datapath from its exact "product" ``p`` (a :class:`.fp.Fixed`) and
    the unpacked addend ``uc`` on: the product normalized by its LZC, the narrow
    window's swap and alignment, the add, the normalize, the rounding and the
    output (shared by :class:`FMA` and :class:`FAdd`). ``magnitude``: the two are
    added as magnitudes (:func:`.fp.add_aligned`'s ``nonneg``; the normalize's
    count is then :func:`.fp.carry_count`'s)."""
    fc = core.fc
    # the exponent terms of the swap: short carry chains, beside the product's
    # LZC in the fabric (charged before it: the LZC may take fine cuts)
    pre = swap_exps(m, p, uc, fc, name="s", pipe=pipe)
    with pipe.carry(uc, pre) as cc:          # across the LZC's fine cuts
        cp = fixed_lzc(p, m=m, pipe=pipe, name="s_pn")
    uc, pre = cc.values
    al = pipe.cut("align", align_swap(m, cp, uc, fc, pre, name="s", pipe=pipe))
    if magnitude:
        s = add_aligned(m, al, name="s", pipe=pipe, split_hi=True, nonneg=True)
        cx = pipe.cut("lzc", carry_count(pipe.cut("add", s), m=m, name="n", pipe=pipe))
    else:
        # the LZC's floor marker decoded from its room beside the adder's chains
        with pipe.carry(floor_marker(m, al)) as c:   # across the adder's fine cut
            s = add_aligned(m, al, name="s", pipe=pipe, split_hi=True)
        s, floor = pipe.cut("add", s, *c.values)
        cx = pipe.cut("lzc", fixed_lzc(s, m=m, floor=floor, pipe=pipe, name="n"))
    # the rounder's exponent bases beside the normalizing shift (its carry
    # chains off the round stage)
    u, eb = counted_to_unpacked(m, cx, name="n", pipe=pipe, round_fmt=fc)
    _round_out(core, m, pipe, *pipe.cut("norm", u, eb))


def _round_out(core, m, pipe, u, ebase=None):
    """The rounding of a normalized ``u`` into the result's format, then the output:
    decided, a cut point, applied by incrementing the packed code, packed.
    ``ebase``: :func:`.fp.round_decide`'s, built beside the normalizing shift."""
    fc = core.fc
    d = round_decide(m, fc, u, rounding=core.rounding, exp_min=core._exp_min(),
                     name="r", pipe=pipe, ebase=ebase)
    d = pipe.cut("round", d)
    r = round_apply(m, d, name="r", pipe=pipe)
    pipe.output(r=pack(m, fc, r, rounding=core.rounding, name="o", pipe=pipe))


class FMul(StreamCore):
    """``r = round(a*b)``, the FMA's datapath without the addend: the exact product
    (:func:`.fp.multiply`) normalized by its leading-zero count (clamped at the
    result's emin) and rounded once. No alignment shifter, no window add: the
    window is the product itself, ``(Ma+1)+(Mb+1)`` bits. For every input it equals
    ``FMA(a, b, c=-0)`` (``x + -0 = x``, signed zeros included), which is how
    IterNorm's output lanes use it (its golden model's ``fx_fma(a, y, -0.0)``).

    Parameters as :class:`FMA`'s, with ``r_fmt`` for the result (``fp32``, ``fp16``
    or ``bf16``) and ``stages`` 0..5 (``round``, ``mul``, ``norm``, ``unpack``,
    ``lzc``). Payload: in ``{a, b}``, out ``{r}``. Latency ``stages + 1``;
    throughput one a cycle.

    ``a_normal``: the caller promises ``a`` is never subnormal (zero, normal, Inf
    or NaN): b is normalized before the multiply and the product's leading one is
    then at its MSB or the bit below, so the LZC and shifter over the product
    become a 2:1 mux and the rounder shifts ``M + 3`` bits right for a subnormal
    result (IterNorm's output multiply, whose scale is zero or normal). A
    subnormal ``a`` gives a wrong result there (the regression never drives
    one)."""

    def __init__(self, *, a_fmt, b_fmt, r_fmt="fp32", rounding="rne", stages=None,
                 fmax=None, family=None, a_normal=False):
        self.a_normal = check_bool("a_normal", a_normal)
        _formats(self, a_fmt, b_fmt, ("r_fmt", r_fmt), rounding, addend=False)
        _plan(self, MUL_CUTS, "fmul", "r_fmt", stages, fmax, family)

    def elaborate(self, platform):
        m = Module()
        fa, fb = self.fa, self.fb
        pipe = Pipeline(m, self, MUL_CUTS, self.stages)
        if self.a_normal:
            self._normal_datapath(m, pipe)
            return m
        with pipe.parallel():
            ua = unpack(m, self.i.payload.a, fa, name="a", pipe=pipe)
            ub = unpack(m, self.i.payload.b, fb, name="b", pipe=pipe)
        ua, ub = pipe.cut("unpack", ua, ub)
        p = multiply(m, ua, fa, ub, fb, name="p", pipe=pipe, dsp_cut=True)
        p = pipe.cut("mul", p)
        # the clamp's marker from the product's exponent (a chain and a decode; a
        # fine cut point after it), then the LZC over both
        floor = lzc_floor(m, p, self.fc.emin, name="n", pipe=pipe)
        p, floor = pipe.cut("n.floor", p, floor)
        cx = pipe.cut("lzc", fixed_lzc(p, m=m, floor=floor, pipe=pipe, name="n"))
        u = counted_to_unpacked(m, cx, name="n", pipe=pipe)
        _round_out(self, m, pipe, pipe.cut("norm", u))
        return m

    def _normal_datapath(self, m, pipe):
        """``a_normal``: b normalized before the multiply (an LZC and a shift as
        wide as its significand), so the product's leading one is at its MSB or
        the bit below (:func:`.fp.product_to_unpacked`: a 2:1 mux, where the
        general datapath counts and shifts the whole product), then the rounder
        with its subnormal shifter on ``M + 3`` bits."""
        fa, fb = self.fa, self.fb
        pl = self.i.payload
        with pipe.parallel():
            ua = unpack(m, pl.a, fa, name="a", pipe=pipe)
            ub = unpack(m, pl.b, fb, name="b", pipe=pipe,
                        exp_shape_=exp_shape((fb.emin - fb.man_bits - 1, fb.emax + 1)))
        with pipe.carry(ua) as c:
            ub = prenormalize(m, ub, name="b", pipe=pipe, point="lzc")
        ua, ub = pipe.cut("unpack", *c.values, ub)
        p = multiply(m, ua, fa, ub, fb, name="p", pipe=pipe, dsp_cut=True,
                     b_normalized=True)
        u = product_to_unpacked(m, pipe.cut("mul", p), self.fc, name="n", pipe=pipe)
        _round_out(self, m, pipe, pipe.cut("norm", u))

    def _exp_min(self):
        """``emin`` of the result when the product's MSB never weighs less (the
        clamped normalize then hands the rounder no exponent below it: no
        subnormal shifter), else None."""
        fa, fb, fc = self.fa, self.fb, self.fc
        if self.a_normal:
            # a normal (or zero) and b normalized: the lowest MSB is fa.emin + the
            # lowest normalized b's exponent
            top_min = fa.emin + fb.emin - fb.man_bits
            return fc.emin if top_min >= fc.emin else None
        pw = (fa.man_bits + 1) + (fb.man_bits + 1)
        top_min = fa.emin + fb.emin - fa.man_bits - fb.man_bits + pw - 1
        return fc.emin if top_min >= fc.emin else None


ADD_CUTS = ("add", "round", "norm", "unpack", "align", "lzc")


class FAdd(StreamCore):
    """``r = round(a + c)``, the FMA's datapath without the multiply: ``a`` taken as
    the exact "product" (:func:`.fparith.as_fixed`), normalized by its leading-zero
    count, then the FMA's :func:`.fp.align_swap` window, add, normalize and one
    rounding. For every input it equals ``FMA(a, 1, c)``, which is how IterNorm's
    lane tree uses it (its golden model's ``fx_fma(x, 1.0, y)``).

    Parameters as :class:`FMA`'s, with one format ``fmt`` for ``a``, ``c`` and ``r``
    (``fp32``, ``fp16`` or ``bf16``) and ``stages`` 0..6 (``add``, ``round``,
    ``norm``, ``unpack``, ``align``, ``lzc``). Payload: in ``{a, c}``, out ``{r}``.
    Latency ``stages + 1``; throughput one a cycle.

    ``magnitude=True``: ``r = round(|a| + |c|)`` (the sign bits ignored; ``FMA(|a|,
    1, |c|)``): never a cancellation, so one carry chain and, for the LZC and the
    normalizing shift of the sum, a carry test and one shift level
    (:func:`.fp.carry_count`). IterNorm's lane tree adds sums of squares with it.

    ``a_fmt``: ``a`` in another float format (any of SPEC §2; default ``fmt``), still
    ``FMA(a, 1, c)``: IterNorm's ``layernorm`` forms ``RNE(x - mean)`` from an input
    element and an internal mean with it."""

    def __init__(self, *, fmt="fp32", rounding="rne", stages=None, fmax=None,
                 family=None, magnitude=False, a_fmt=None):
        self.fc = get_format(fmt, param="fmt", allowed=ACC_FORMATS)
        self.fa = self.fc if a_fmt is None else get_format(a_fmt, param="a_fmt",
                                                             allowed=FLOAT_FORMATS)
        self.rounding = check_choice("rounding", rounding, ROUNDINGS)
        self.magnitude = check_bool("magnitude", magnitude)
        self.in_fields = [Field("a", self.fa.bits, self.fa.name),
                          Field("c", self.fc.bits, self.fc.name)]
        self.out_fields = [Field("r", self.fc.bits, self.fc.name)]
        StreamCore.__init__(self)
        self.wide_derate = True                 # the FMA's alignment shifter
        self.stages, self.timing = plan_pipeline(self, ADD_CUTS, stages=stages,
                                                 fmax=fmax, family=family, name="fadd")
        params = {"fmt": self.fc.name, "rounding": self.rounding}
        if magnitude:
            params["magnitude"] = True
        if a_fmt is not None:
            params["a_fmt"] = self.fa.name
        name_pipelined(self, f"fadd_{self.fc.name}"
                       f"{f'_a{self.fa.name}' if a_fmt is not None else ''}"
                       f"{'_rtz' if self.rounding == 'rtz' else ''}"
                       f"{'_abs' if magnitude else ''}", params, fmax)

    def elaborate(self, platform):
        m = Module()
        fa, fc = self.fa, self.fc
        pipe = Pipeline(m, self, ADD_CUTS, self.stages)
        pl = self.i.payload
        a, c = Value.cast(pl.a), Value.cast(pl.c)
        if self.magnitude:                     # the sign bits cleared: |a|, |c|
            a = Cat(a[:fa.bits - 1], Const(0, 1))
            c = Cat(c[:fc.bits - 1], Const(0, 1))
        with pipe.parallel():
            ua = unpack(m, a, fa, name="a", pipe=pipe)
            uc = unpack(m, c, fc, name="c", pipe=pipe)
        ua, uc = pipe.cut("unpack", ua, uc)
        _add_round(self, m, pipe, as_fixed(ua, fa), uc, magnitude=self.magnitude)
        return m

    def _exp_min(self):
        """As the FMA's: the window's MSB always weighs more than ``emin``."""
        return self.fc.emin
