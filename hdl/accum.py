"""The floating-point accumulate loop shared by ``Dot`` (``accumulate="fp"``) and
``MXDot`` (and through Dot, IterNorm's and FisrNorm's lane sums):
``acc[ctx] <- round(acc[ctx] + x)``, one rounding per step, built from the fine-cut
blocks of :mod:`.fp` so the loop itself may hold registers.

The loop runs from the read of the context's accumulator to its write-back, which is
the output stage. With ``D`` registers on that path (the accumulator's own included)
a context's next step must enter at least ``D`` advances after its previous one; the
``contexts`` of :class:`.base.Contexts` guarantee ``k`` (``D <= k`` is checked by
:func:`.base.check_loop_depth` after planning). The arithmetic is the FMA's narrow
window (:func:`.fp.align_swap`): the step's operand ``x`` normalized by its
leading-zero count before the loop (:func:`.fp.swap_pre_packed`), then in the loop
the operand with the larger exponent anchoring ``max(PW, 24) + 4`` bits
(:func:`.fp.align_swap_packed`; the window the FMA's alignment replaced, anchored on
``x``, took ``PW + 55`` for fp32), the LZC clamped at emin, the rounding decided
then applied by incrementing the packed code. It computes exactly what the
one-cycle ``align_add``/``round_sig`` loop computes (one rounding of the exact sum;
the argument is :func:`.fp.align_swap`'s); the regression holds both against the
same golden models.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from lpcores.formats import get_format

from .fp import (_special_codes, add_aligned, align_swap_packed, code_class,
                 counted_to_unpacked, exp_field_min1, fixed_lzc, floor_marker, pack,
                 round_apply, round_decide, swap_pre_packed)

__all__ = ["fp_accumulate"]


def _packed_side(m, fo, rounding, zero, ez, mz, is_nan, is_inf, is_zero, overflow,
                 mag_e, sign):
    """What the loop stores beside :func:`.fp.pack`'s code, from pack's inputs:
    its ``exp_field_min1`` and its :func:`.fp.code_class` (``Cat(ef1, nrm, zero,
    inf, nan)``). The special codes' (constants but for the sign), a zero's (the
    constant ``zero``, also the accumulators' reset value), else
    the rounded code's, whose exponent field is zero iff ``ez`` and whose magnitude
    is zero iff ``mz``, both decided beside the increment (one LUT level, where the
    tests on pack's code are two and three after pack's two)."""
    _, nan, inf, ovf = _special_codes(fo, sign, rounding, False)
    E = fo.exp_bits

    def side(c):
        c = Value.cast(c)
        return Cat(exp_field_min1(c, fo), *code_class(c, fo))
    out = Signal(E + 4, name="o_side")
    with m.If(is_nan):
        m.d.comb += out.eq(side(nan))
    with m.Elif(is_inf):
        m.d.comb += out.eq(side(inf))
    with m.Elif(is_zero):
        m.d.comb += out.eq(zero)
    with m.Elif(overflow):
        m.d.comb += out.eq(side(ovf))
    with m.Else():
        # a finite result: no NaN, no Inf; zero when it rounded to zero
        m.d.comb += out.eq(Cat(Value.cast(mag_e)[0] | ez, Value.cast(mag_e)[1:],
                               ~ez, mz, Const(0, 2)))
    return out


def fp_accumulate(m, pipe, ctx, make_x, fmt, *, index, init, last, first=None,
                  carried=(), rounding="rne", fast_read=False):
    """Build the loop; returns ``(code, last, carried)`` at the loop's end (the
    rounded code, and the values carried along the loop's registers).

    ``make_x()`` builds the step's exact operand and returns it (a
    :class:`.fp.Fixed`); it is built at the stage where the loop is entered, then
    normalized
    (fine cut points ``s_pn_lzc.k``, ``s_pn.k``, before the loop), the step's
    context ``index``, its ``last`` and the ``carried`` values riding along. A sum
    starts from ``init``, a code of ``fmt``: with ``first`` (the context register
    saying the next step starts a new sum; the addend comes with that step, read
    where the loop is entered) the loop selects ``init`` over the accumulator;
    without it ``init`` is a constant (-0), which is the accumulators' reset value
    and what the write-back stores after a step with ``last``, so the loop has no
    select at all, and each context keeps beside its accumulator the code's
    ``max(efield, 1)`` and class (the hidden bit, zero, Inf, NaN), decided at the
    write-back beside pack: the exponent difference's chains then start from the
    read and the addend's unpacking is wires. ``index`` is the context of the step
    (None for one context).

    ``fast_read`` (built for a clock): the accumulator read through a binary mux
    tree and the shifted operand's sticky riding its shifter (prefix ORs of both
    operands: docs/timing.md, "The fp accumulate loop with contexts"). MXDot asks
    for it; Dot (and IterNorm's lane sums) does not: measured there, the context
    index's fanout made the loop's first stage slower. With ``--stages`` (no clock)
    the named cut points alone are placed: none is inside the loop."""
    fo = get_format(fmt)
    tree = fast_read and getattr(pipe.core, "_pipe_fmax", None) is not None
    E = fo.exp_bits
    # the step's operand normalized before the loop: what the step reads of its
    # context here (whether it starts a sum) and its context, its last flag and
    # the caller's values ride the normalization's registers
    is_first = None
    if first is not None:
        is_first = first.at(index)
        with m.If(pipe.advance & pipe.valid):
            m.d.sync += first.at(index).eq(last)
    with pipe.carry(index, last, tuple(carried), is_first, init) as c0:
        x = make_x()
        xs = swap_pre_packed(m, x, fo, name="s", pipe=pipe)
    index, last, carried, is_first, init = c0.values
    pipe.core._loop_entry = len(pipe.segments)
    read_ns = (lambda fab: ctx.tree_read_ns(fab, bits=fo.bits + E + 4)) if tree \
        else ctx.read_ns
    ef = ef_init = None
    if first is None:
        acc = ctx.reg(fo.bits, init=init.value, name="acc")
        acc_in = acc.read(index) if tree else acc.at(index)
        efield = (init.value >> fo.man_bits) & ((1 << E) - 1)
        mzero = (init.value & ((1 << fo.man_bits) - 1)) == 0
        assert mzero and efield == 0, "a sum starts from a zero"
        ef_init = 1 | 0b0010 << E           # max(efield, 1); nrm 0, zero 1
        ef = ctx.reg(E + 4, init=ef_init, name="acc_ef")
        ef_in = ef.read(index) if tree else ef.at(index)
        # the read starts at the context registers, beside the normalizing
        # shift's last level
        pipe.charge(read_ns(pipe.fab), from_start=True)
    else:
        # the sum starts from an input code: the select; after the read's fine
        # point its max(efield, 1) and class decoded from the code (three LUT
        # levels)
        acc = ctx.reg(fo.bits, name="acc")
        acc_in = Signal(fo.bits, name="acc_in")
        m.d.comb += acc_in.eq(Mux(is_first, init, acc.read(index) if tree
                                  else acc.at(index)))
        ef_in = None
        pipe.charge(read_ns(pipe.fab) + pipe.fab.lut, from_start=True)
    with pipe.carry(index, last, tuple(carried)) as cc:
        xs, acc_in, ef_in = pipe.cut("acc.rd", xs, acc_in, ef_in)
        if ef_in is None:
            ef_in = Cat(exp_field_min1(acc_in, fo), *code_class(acc_in, fo))
            pipe.charge(pipe.fab.luts(3))
        al = align_swap_packed(m, xs, acc_in, fo, ef_in[:E], ef_in[E:], name="s",
                               pipe=pipe, sticky_cut=tree)
        with pipe.carry(floor_marker(m, al)) as cf:
            s = add_aligned(m, al, name="s", pipe=pipe, split_hi=True)
        s, floor = pipe.cut("s.sum", s, *cf.values)
        cx = fixed_lzc(s, m=m, floor=floor, pipe=pipe, name="n")
        # the window's MSB weighs more than emin: no subnormal shifter in the
        # rounder, its exponent bases built beside the normalizing shift
        u, eb = counted_to_unpacked(m, cx, name="n", pipe=pipe, round_fmt=fo)
        u, eb = pipe.cut("n.out", u, eb)
        code, ef_new = _round_pack(m, pipe, fo, u, eb, fo.emin, rounding, ef_init)
    index, last_end, carried = cc.values
    _write_back(m, pipe, acc, ef, index, last_end, code, ef_new, init, ef_init, first)
    return code, last_end, carried


def _round_pack(m, pipe, fo, u, eb, exp_min, rounding, ef_init):
    """The loop's rounding of the normalized sum ``u`` (``eb``: its exponent bases,
    or None), decided, a fine cut point ``r.dec``, applied by incrementing the
    packed code, packed. ``ef_init`` (not None: the loop stores beside the code its
    ``max(efield, 1)`` and class): also that side value, decided beside pack.
    Returns ``(code, side)`` (side None without ``ef_init``)."""
    d = round_decide(m, fo, u, rounding=rounding, exp_min=exp_min, name="r",
                     pipe=pipe, ebase=eb)
    d = pipe.cut("r.dec", d)
    r = round_apply(m, d, name="r", pipe=pipe)
    if ef_init is None:
        return pack(m, fo, r, rounding=rounding, name="o", pipe=pipe), None
    # the stored max(efield, 1) and class of the result, beside pack instead of
    # after it: the rounded exponent field is zero iff the truncated code's is and
    # the increment does not carry into it, the magnitude zero iff the truncated
    # code is and is not incremented; specials take their code's
    ez, mz = Signal(name="o_ez"), Signal(name="o_mz")
    M = fo.man_bits
    dc = Value.cast(d.code)
    m.d.comb += [ez.eq((dc[M:] == 0) & ~(d.up & dc[:M].all())),
                 mz.eq((dc == 0) & ~d.up)]
    with pipe.carry(ez, mz, r.is_nan, r.is_inf, r.is_zero, r.overflow,
                    Value.cast(r.mag)[M:], r.sign) as ce:
        code = pack(m, fo, r, rounding=rounding, name="o", pipe=pipe)
    return code, _packed_side(m, fo, rounding, ef_init, *ce.values)


def _write_back(m, pipe, acc, ef, index, last_end, code, ef_new, init, ef_init, first):
    """The write-back that closes the loop: the step's context takes the rounded
    code, or after a ``last`` step (a constant ``init``) the start of the next sum;
    and the side value beside it (``ef``)."""
    new = code if first is not None else Mux(last_end, init, code)
    with m.If(pipe.advance & pipe.valid):
        m.d.sync += acc.at(index).eq(new)
        if ef is not None:
            m.d.sync += ef.at(index).eq(Mux(last_end, ef_init, ef_new))
    if ef is not None:                 # the select of init after pack's
        pipe.charge(pipe.fab.lut)
