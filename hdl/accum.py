"""The floating-point accumulate loop shared by ``Dot`` (``accumulate="fp"``; through
it IterNorm's and FisrNorm's lane sums) and ``MXDot``: ``acc[ctx] <- round(acc[ctx] +
x)``, one rounding per step, built from the fine-cut blocks of :mod:`.fp` so the loop
itself may hold registers.

The loop runs from the read of the context's accumulator to its write-back, which is
the output stage. With ``D`` registers on that path (the accumulator's own included)
a context's next step must enter at least ``D`` advances after its previous one; the
``contexts`` of :class:`.base.Contexts` guarantee ``k`` (``D <= k`` is checked by
:func:`.base.check_loop_depth` after planning). The arithmetic is the FMA's: the
exact window of :func:`.fp.align` / :func:`.fp.add_aligned` (with the addend's
unpacking and the exponent terms of x hoisted out of the loop:
:func:`.fp.align_pre`, :func:`.fp.align_packed`), the LZC clamped at emin,
the rounding decided then applied by incrementing the packed code. It computes
exactly what the one-cycle ``align_add``/``round_sig`` loop computes (one rounding
of the exact sum); the regression holds both against the same golden models.

``narrow`` (Dot's): the FMA's narrow window instead (:func:`.fp.align_swap`): the
step's operand normalized by its leading-zero count before the loop
(:func:`.fp.swap_pre_packed`), the operand with the larger exponent anchoring
``max(PW, 24) + 4`` bits inside it (:func:`.fp.align_swap_packed`) where the window
anchored on the operand takes ``PW + 55`` (fp32): the add, the LZC and the
normalizing shift in the loop are shorter. MXDot keeps the wide window: its block
sum's normalization before the loop measured slower than the loop it shortens
(docs/timing.md, "The accumulate loop on the narrow window").
"""

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from lpcores.formats import get_format

from .fp import (_special_codes, add_aligned, align_packed, align_pre,
                 align_swap_packed, carry_count, code_class, counted_to_unpacked,
                 exp_field_min1, fixed_lzc, floor_marker, pack, round_apply,
                 round_decide, swap_pre_packed, window_exp_min)

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
                  carried=(), rounding="rne", fast_read=False, narrow=False,
                  magnitude=False):
    """Build the loop; returns ``(code, last, carried)`` at the loop's end (the
    rounded code, and the values carried along the loop's registers).

    ``make_x()`` builds the step's exact operand and returns ``(x, lo)``: a
    :class:`.fp.Fixed` and the lowest ``x.exp0`` (a Python int); it is built beside
    the accumulator's read (both start at the stage's register). A sum starts from
    ``init``, a code of ``fmt``: with ``first`` (the context register saying the
    next step starts a new sum; the addend comes with that step) the loop selects
    ``init`` over the accumulator; without it ``init`` is a constant (-0), which is
    the accumulators' reset value and what the write-back stores after a step with
    ``last``, so the loop has no select at all. ``index`` is the context of the step
    (None for one context).

    Built for a clock (``fmax``) with the constant ``init``, each context keeps
    beside its accumulator the code's ``max(efield, 1)`` and class (the hidden bit,
    zero, Inf, NaN), decided at the write-back beside pack: the alignment's chains
    then start from the read and the addend's unpacking is wires.

    ``fast_read`` (with a clock): also the accumulator read through a binary mux
    tree and the addend's sticky riding its shifter (docs/timing.md, "The fp
    accumulate loop with contexts"). MXDot
    asks for it; Dot (and IterNorm's lane sums) does not yet: measured there, the
    context index's fanout and the prefix ORs' ripple made the loop's first stage
    slower (IterNorm 98.4 / FisrNorm 88.9 MHz at seed 1, from 99.9 / 98.6). With it
    come two more fine points for clocks near 150 MHz: ``s_add.hi`` (the window
    add's chains registered before their selection, :func:`.fp.add_aligned`) and
    ``n.out`` (after the normalizing shift, whose last level no longer meets the
    rounder's sticky OR in one stage; the rounder's exponent bases are built beside
    the shift, as the FMA's).

    ``magnitude`` (``narrow``): every step adds magnitudes (the caller's operands are
    +0, positive, +Inf or NaN, and the accumulator's sign is taken as +, so a sum
    started from -0 is +0 after its first step, as IEEE's ``-0 + +0``): the window's
    add is one carry chain (:func:`.fp.add_aligned` ``nonneg``) and its count one
    LUT (:func:`.fp.carry_count`) instead of the LZC."""
    fo = get_format(fmt)
    if narrow:
        return _accumulate_narrow(m, pipe, ctx, make_x, fo, index=index, init=init,
                                  last=last, first=first, carried=carried,
                                  rounding=rounding, magnitude=magnitude)
    assert not magnitude, "magnitude: the narrow window's loop only"
    pipe.core._loop_entry = len(pipe.segments)
    # built for a clock: the context's accumulator read through a binary mux tree
    # on the index bits (Contexts.read); --stages builds keep the one-hot read
    timed = getattr(pipe.core, "_pipe_fmax", None) is not None
    tree = fast_read and timed
    # built for a clock, a sum started from the constant: beside the accumulator its
    # exponent field's max(efield, 1), stored at the write-back, so the alignment's
    # chains start from the read (fp.align_packed's ef1), and its class
    # (fp.code_class), so the addend's unpacking is wires
    side = timed and first is None
    E = fo.exp_bits
    read_ns = (lambda fab: ctx.tree_read_ns(fab, bits=fo.bits + E + 4)) if tree \
        else ctx.read_ns
    ef_in = ef = ef_init = None
    if first is None:
        acc = ctx.reg(fo.bits, init=init.value, name="acc")
        acc_in = acc.read(index) if tree else acc.at(index)
        if side:
            ef, ef_init = _side_reg(ctx, fo, init)
            ef_in = ef.read(index) if tree else ef.at(index)
    else:
        acc = ctx.reg(fo.bits, name="acc")
        acc_in = Signal(fo.bits, name="acc_in")
        m.d.comb += acc_in.eq(Mux(first.at(index), init,
                                  acc.read(index) if tree else acc.at(index)))
        with m.If(pipe.advance & pipe.valid):
            m.d.sync += first.at(index).eq(last)
    with pipe.parallel():
        x, lo = make_x()
        # x's terms of the alignment, before the loop's own arithmetic
        pre = align_pre(m, x, fo, name="s", pipe=pipe, emin=fo.emin)
        # the context's accumulator, read beside it (charged from the stage's
        # start, as if x's path had been cut just before: conservative otherwise)
        pipe.charge(read_ns(pipe.fab) + (pipe.fab.lut if first is not None else 0))
    with pipe.carry(index, last, tuple(carried)) as cc:
        x, pre, acc_in, ef_in = pipe.cut("acc.rd", x, pre, acc_in, ef_in)
        ef1_in, cls_in = (None, None) if ef_in is None else (ef_in[:E], ef_in[E:])
        al = align_packed(m, x, acc_in, fo, pre, name="s", pipe=pipe, emin=fo.emin,
                          p_bounds=lo, prefix_sticky=tree, ef1=ef1_in,
                          floor_room=tree, cls=cls_in)
        # with the fast read, the LZC's floor marker is decoded from its room beside
        # the adder's chains (as the FMA's), not beside the shift clamp
        with pipe.carry(floor_marker(m, al) if tree else al.floor) as cf:
            s = add_aligned(m, al, name="s", pipe=pipe, split_hi=tree)
        s, floor = pipe.cut("s.sum", s, *cf.values)
        cx = fixed_lzc(s, m=m, floor=floor, pipe=pipe, name="n")
        exp_min = window_exp_min(lo, len(Value.cast(al.pwin)), fo, al.L, al.dmax)
        if tree and exp_min >= fo.emin:
            # no subnormal shifter in the rounder: its exponent bases built beside
            # the normalizing shift, and a fine point after the shift's last level
            u, eb = counted_to_unpacked(m, cx, name="n", pipe=pipe, round_fmt=fo)
            u, eb = pipe.cut("n.out", u, eb)
        else:
            u, eb = counted_to_unpacked(m, cx, name="n", pipe=pipe), None
        code, ef_new = _round_pack(m, pipe, fo, u, eb, exp_min, rounding, ef_init)
    index, last_end, carried = cc.values
    _write_back(m, pipe, acc, ef, index, last_end, code, ef_new, init, ef_init, first)
    return code, last_end, carried


def _accumulate_narrow(m, pipe, ctx, make_x, fo, *, index, init, last, first, carried,
                       rounding, magnitude):
    """:func:`fp_accumulate` on the FMA's narrow window (``narrow``): ``make_x()``
    built where the loop is entered, then normalized (fine cut points
    ``s_pn_lzc.k``, ``s_pn.k``, before the loop) with the step's context, its
    ``last``, whether it starts a sum and the caller's values riding along; inside
    the loop :func:`.fp.align_swap_packed` on the accumulator and what it stores
    beside it (``max(efield, 1)`` and class; with an addend, decoded from the code
    after the read's fine point), the window's add, the LZC clamped at emin (the
    window's MSB weighs more than emin: no subnormal shifter), the rounding."""
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
        x, _ = make_x()
        xs = swap_pre_packed(m, x, fo, name="s", pipe=pipe)
    index, last, carried, is_first, init = c0.values
    pipe.core._loop_entry = len(pipe.segments)
    ef = ef_init = None
    if first is None:
        acc = ctx.reg(fo.bits, init=init.value, name="acc")
        acc_in = acc.at(index)
        ef, ef_init = _side_reg(ctx, fo, init)
        ef_in = ef.at(index)
        # the read starts at the context registers, beside the normalizing
        # shift's last level
        pipe.charge(ctx.read_ns(pipe.fab), from_start=True)
    else:
        # the sum starts from an input code: the select; after the read's fine
        # point its max(efield, 1) and class decoded from the code (three LUT
        # levels)
        acc = ctx.reg(fo.bits, name="acc")
        acc_in = Signal(fo.bits, name="acc_in")
        m.d.comb += acc_in.eq(Mux(is_first, init, acc.at(index)))
        ef_in = None
        pipe.charge(ctx.read_ns(pipe.fab) + pipe.fab.lut, from_start=True)
    with pipe.carry(index, last, tuple(carried)) as cc:
        xs, acc_in, ef_in = pipe.cut("acc.rd", xs, acc_in, ef_in)
        if ef_in is None:
            ef_in = Cat(exp_field_min1(acc_in, fo), *code_class(acc_in, fo))
            pipe.charge(pipe.fab.luts(3))
        al = align_swap_packed(m, xs, acc_in, fo, ef_in[:E], ef_in[E:], name="s",
                               pipe=pipe)
        if magnitude:
            s = add_aligned(m, al, name="s", pipe=pipe, split_hi=True, nonneg=True)
            cx = carry_count(pipe.cut("s.sum", s), m=m, name="n", pipe=pipe)
        else:
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


def _side_reg(ctx, fo, init):
    """The per-context register of what a loop stores beside its accumulator
    (``Cat(max(efield, 1), nrm, zero, inf, nan)``, :func:`_packed_side`), and its
    value for the constant ``init`` a sum starts from (a zero: the reset value).
    Returns ``(register, init value)``."""
    E = fo.exp_bits
    efield = (init.value >> fo.man_bits) & ((1 << E) - 1)
    mzero = (init.value & ((1 << fo.man_bits) - 1)) == 0
    assert mzero and efield == 0, "a sum starts from a zero"
    ef_init = 1 | 0b0010 << E           # max(efield, 1); nrm 0, zero 1
    return ctx.reg(E + 4, init=ef_init, name="acc_ef"), ef_init


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
