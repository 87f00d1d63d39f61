"""Shared floating-point building blocks: unpack, count leading zeros, normalize,
round and pack.

Every core is assembled from these; no core carries its own rounding code. The
blocks are plain functions that add combinational logic to a Module and return
Amaranth values, so the generated Verilog stays one flat module.

The common intermediate form is an *unpacked float*: sign, a signed exponent ``exp``
and a significand ``sig`` of ``W`` bits whose MSB has weight ``2**exp``::

    value = (-1)**sign * sig * 2**(exp - (W - 1))

plus the class flags ``is_zero``, ``is_inf``, ``is_nan``.
"""

import contextlib
import dataclasses
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Mux, Signal, Value, signed, unsigned

from lpcores.errors import check_choice
from lpcores.formats import FLOAT_FORMATS, get_format

from .prims import dsp_products, use_registered_dsp

# Timing (clock-directed pipelining, :mod:`.timing`): every block takes an optional
# ``pipe`` (the core's :class:`~.base.Pipeline`); with it, the block charges its
# estimated delay on the pipe's fabric and offers fine cut points inside itself
# (``"<name>.<k>"``: between shifter levels, LZC tree levels, before a carry chain),
# which only ``fmax`` selects. Without it the block is plain logic.


def _charge(pipe, ns_of):
    if pipe is not None:
        pipe.charge(ns_of(pipe.fab))


def _cut(pipe, point, *values):
    if pipe is None:
        return values if len(values) != 1 else values[0]
    return pipe.cut(point, *values)


class _Plain:
    def __init__(self, values):
        self.values = list(values)


@contextlib.contextmanager
def _carry(pipe, *values):
    """Values live across the block built inside (see Pipeline.carry)."""
    if pipe is None:
        yield _Plain(values)
    else:
        with pipe.carry(*values) as c:
            yield c

__all__ = ["Unpacked", "Rounded", "Fixed", "Aligned", "Counted", "exp_shape", "unpack",
           "lzc", "normalize", "normalize_shift", "prenormalize", "prenormalize_shift",
           "round_sig", "round_decide",
           "round_apply", "pack", "round_pack", "round_decide_packed", "apply_pack",
           "shift_levels", "sticky_compress", "less",
           "multiply", "lane_products", "align_add", "align", "add_aligned", "fixed_lzc", "AlignPre",
           "align_pre", "align_packed", "floor_marker", "SwapPre", "swap_exps", "align_swap", "SwapX",
           "swap_pre_packed", "align_swap_packed",
           "counted_to_unpacked", "round_band", "product_to_unpacked",
           "fixed_to_unpacked", "kulisch_width", "to_fixed", "sum_tree",
           "fixed_from_signed", "ROUNDINGS"]

ROUNDINGS = ("rne", "rtz")


@dataclass
class Unpacked:
    sign: Value
    exp: Value      # signed, weight of the MSB of sig
    sig: Value      # unsigned, W bits
    is_zero: Value
    is_inf: Value
    is_nan: Value


def exp_shape(*ranges):
    """A signed shape wide enough for every (lo, hi) exponent range given."""
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    w = 2
    while not (-(1 << (w - 1)) <= lo and hi < (1 << (w - 1))):
        w += 1
    return signed(w)


def unpack(m, code, fmt, exp_shape_=None, name="x", pipe=None):
    """Split a code of ``fmt`` into an :class:`Unpacked` float.

    ``sig`` has ``man_bits + 1`` bits with the hidden bit explicit (0 for
    subnormals, whose ``exp`` is ``emin``), so subnormals are *not* normalized here:
    use :func:`normalize` where a later step needs the MSB set.
    """
    f = get_format(fmt)
    E, M = f.exp_bits, f.man_bits
    code = Value.cast(code)
    efield = code[M:M + E]
    mfield = code[:M]
    sign = code[f.bits - 1]
    shape = exp_shape_ or exp_shape((f.emin - 1, f.emax + 1))
    exp = Signal(shape, name=f"{name}_exp")
    sig = Signal(M + 1, name=f"{name}_sig")
    sub = efield == 0
    if E <= 4:
        # a narrow field's exponent as a table (one LUT level up to four bits), not
        # a carry chain and a mux; charged below as the chain (the plans keep their
        # margin)
        w = len(Value.cast(exp))
        exp_t = _table(m, efield, lambda e: (max(e, 1) - f.bias) % (1 << w), w,
                       name=f"{name}_expt")
        m.d.comb += exp.eq(exp_t.as_signed())
    else:
        m.d.comb += exp.eq(Mux(sub, f.emin, efield - f.bias))
    m.d.comb += sig.eq(Cat(mfield, ~sub))
    _, is_zero, is_inf, is_nan = code_class(code, f, sub=sub)
    # exponent: field - bias (one short carry chain), then the subnormal mux
    _charge(pipe, lambda fab: fab.carry(E + 1) + fab.lut)
    return Unpacked(sign, exp, sig, is_zero, is_inf, is_nan)


def code_class(code, fmt, sub=None):
    """The class of a packed code of ``fmt`` as :func:`unpack` sees it:
    ``(nrm, is_zero, is_inf, is_nan)``, ``nrm`` the hidden bit (exponent field not
    zero). Wide ANDs of the code's fields (31 bits for fp32: three LUT levels).
    ``sub``: the caller's ``efield == 0``, shared."""
    f = get_format(fmt)
    E, M = f.exp_bits, f.man_bits
    code = Value.cast(code)
    efield, mfield = code[M:M + E], code[:M]
    sub = efield == 0 if sub is None else sub
    all_ones = efield == (1 << E) - 1
    if f.specials == "ieee":
        is_inf = all_ones & (mfield == 0)
        is_nan = all_ones & (mfield != 0)
    elif f.specials == "fn":
        is_inf = Const(0)
        is_nan = all_ones & (mfield == (1 << M) - 1)
    else:
        is_inf = is_nan = Const(0)
    return ~sub, sub & (mfield == 0), is_inf, is_nan


def _lzc_tree(bits):
    # bits: list of 1-bit values, MSB first, length a power of two.
    # Returns (all_zero, count) with count of width log2(len(bits)).
    if len(bits) == 1:
        return ~bits[0], Const(0, 0)
    half = len(bits) // 2
    zh, ch = _lzc_tree(bits[:half])
    zl, cl = _lzc_tree(bits[half:])
    # count MSB is set when the upper half is all zero; the rest from that half.
    return zh & zl, Mux(zh, Cat(cl, Const(1, 1)), Cat(ch, Const(0, 1)))


def lzc(value, pipe=None, name="lzc", m=None):
    """Leading-zero count of ``value`` by a log-depth tree.

    Returns ``(all_zero, count)``; ``count`` is only meaningful when not all zero.
    With ``pipe``, the tree may be cut between its levels (``name.k``: after k levels,
    the pairs (all-zero, count) of the 2**k-bit groups are registered).
    """
    value = Value.cast(value)
    w = len(value)
    n = 1
    while n < w:
        n *= 2
    if pipe is None:
        bits = [value[i] for i in reversed(range(w))] + [Const(0, 1)] * (n - w)
        return _lzc_tree(bits)
    # level by level, MSB group first: (all_zero, count) per group
    nodes = [(~value[i], Const(0, 0)) for i in reversed(range(w))] + \
        [(Const(1, 1), Const(0, 0))] * (n - w)
    k = 0
    while len(nodes) > 1:
        nxt = []
        for j in range(0, len(nodes), 2):
            (zh, ch), (zl, cl) = nodes[j], nodes[j + 1]
            node = Signal(len(ch) + 2, name=f"{name}_t{k}_{j // 2}")
            m.d.comb += node.eq(Cat(Mux(zh, Cat(cl, Const(1, 1)), Cat(ch, Const(0, 1))),
                                    zh & zl))
            nxt.append((node[-1], node[:-1]))
        nodes = nxt
        k += 1
        pipe.charge(pipe.fab.lzc_level(w * pipe.spread if pipe.wide else None))
        if len(nodes) > 1:
            nodes = list(pipe.cut(f"{name}.{k}", *[Cat(c, z) if len(c) else z
                                                    for z, c in nodes]))
            nodes = [(Value.cast(v)[-1], Value.cast(v)[:-1]) for v in nodes]
    return nodes[0]


def shift_levels(m, value, amount, *, left, pipe=None, name="sh"):
    """Barrel shift of ``value`` (width kept) by ``amount``, one 2:1 mux level per
    bit of ``amount``, LSB first; with ``pipe`` it may be cut between levels
    (``name.k``: the partial shift and the amount bits still to apply)."""
    value, amount = Value.cast(value), Value.cast(amount)
    w = len(value)
    for k in range(len(amount)):
        step = 1 << k
        if step >= w:
            moved = Const(0, w)
        elif left:
            moved = Cat(Const(0, step), value[:w - step])
        else:
            moved = value[step:]
        level = Signal(w, name=f"{name}_l{k}")     # a signal a level: no expression
        m.d.comb += level.eq(Mux(amount[k], moved, value))     # tree blow-up
        value = level
        if pipe is not None:
            pipe.charge(pipe.fab.shift_level(w * pipe.spread if pipe.wide else None))
            if k + 1 < len(amount):
                value, rest = pipe.cut(f"{name}.{k + 1}", value, amount[k + 1:])
                amount = Cat(Const(0, k + 1), rest)
    return value


def normalize(m, sig, exp, name="n"):
    """Shift ``sig`` left until its MSB is set and lower ``exp`` to match.

    Returns ``(sig_n, exp_n, is_zero)``; the exponent shape grows by enough bits for
    the largest shift. (:func:`lzc` then :func:`normalize_shift`; a pipeline may cut
    between the two.)
    """
    sig = Value.cast(sig)
    zero, count = lzc(sig)
    return (*normalize_shift(m, sig, exp, count, name=name), zero)


def prenormalize(m, u, name="x", pipe=None, point=None):
    """An :class:`Unpacked` from :func:`unpack` with its significand normalized
    (MSB set unless zero; a subnormal's exponent lowered below ``emin`` by its
    leading-zero count): an LZC and a shifter as wide as the significand, where a
    core would otherwise count and shift the much wider product
    (:class:`.fma.FMul`'s ``a_normal``). ``u.exp`` must be wide enough for
    ``emin - man_bits`` (:func:`unpack`'s ``exp_shape_``). ``point``: the core's
    named cut point between the count and the shift (with ``pipe``)."""
    with _carry(pipe, u) as c:
        _, count = lzc(u.sig, pipe=pipe, name=f"{name}_lzc", m=m)
    (u,) = c.values
    if point is not None:
        u, count = pipe.cut(point, u, count)
    return prenormalize_shift(m, u, count, name=name, pipe=pipe)


def prenormalize_shift(m, u, count, name="x", pipe=None):
    """The second half of :func:`prenormalize`: the shift by the leading-zero
    ``count`` of ``u.sig`` (a caller with lanes side by side counts, cuts and
    shifts them itself)."""
    with _carry(pipe, u.sign, u.is_zero, u.is_inf, u.is_nan) as c:
        sig, exp = normalize_shift(m, u.sig, u.exp, count, name=f"{name}_n", pipe=pipe)
    sign, is_zero, is_inf, is_nan = c.values
    return Unpacked(sign, exp, sig, is_zero, is_inf, is_nan)


def normalize_shift(m, sig, exp, count, name="n", pipe=None, round_emin=None):
    """The second half of :func:`normalize`: shift by a leading-zero ``count``;
    returns ``(sig_n, exp_n)``.

    ``round_emin`` (with ``pipe``; an int, the ``emin`` of the format the result is
    rounded to next): also return the rounder's exponent bases ``exp_n - emin`` and
    ``exp_n - emin + 1``, each computed from ``exp`` and ``count`` in one carry chain
    beside ``exp_n``'s (off the rounder's path: :func:`round_decide`'s ``ebase``);
    returns ``(sig_n, exp_n, ebase)`` then."""
    sig = Value.cast(sig)
    w = len(sig)
    ew = len(Value.cast(exp)) + max(1, w.bit_length())
    sig_n = Signal(w, name=f"{name}_sig")
    exp_n = Signal(signed(ew), name=f"{name}_exp")
    ebase = None
    if pipe is None:
        m.d.comb += sig_n.eq((sig << count)[:w])
    else:
        exp_d = Signal(signed(ew), name=f"{name}_expd")
        m.d.comb += exp_d.eq(exp - count)    # beside the first shifter level
        carried = [exp_d]
        if round_emin is not None:
            # the same form as exp_d (exp's constant part folded), chains in parallel
            eb0 = Signal(signed(ew + 2), name=f"{name}_eb0")
            eb1 = Signal(signed(ew + 2), name=f"{name}_eb1")
            m.d.comb += [eb0.eq(exp - round_emin - count),
                         eb1.eq(exp - round_emin + 1 - count)]
            carried += [eb0, eb1]
        # the chains start from count beside the first level, and must end before
        # the first cut the shifter may take: charged as the longer of the two
        pipe.charge(max(0.0, pipe.fab.carry(ew + 2 if round_emin is not None else ew)
                        - pipe.fab.shift_level(w * pipe.spread if pipe.wide else None)))
        with pipe.carry(*carried) as c:  # the exponent rides along the shifter's cuts
            m.d.comb += sig_n.eq(shift_levels(m, sig, count, left=True, pipe=pipe,
                                              name=name))
        exp = c.values[0]
        if round_emin is not None:
            ebase = tuple(c.values[1:])
    m.d.comb += exp_n.eq(exp - count if pipe is None else exp)
    return (sig_n, exp_n) if round_emin is None else (sig_n, exp_n, ebase)


@dataclass
class Rounded:
    """A value rounded to a format's precision, not yet packed (see round_sig)."""
    sign: Value
    mag: Value          # magnitude code, meaningful when not overflow/special
    overflow: Value
    is_zero: Value
    is_inf: Value
    is_nan: Value


def round_sig(m, fmt, u, sticky=Const(0, 1), *, rounding="rne", exp_min=None,
              name="r", pipe=None, shallow=False):
    """Round an unpacked value once to the precision of ``fmt`` (SPEC §2).

    Precondition: ``u.sig``'s MSB is set, or ``u.exp <= fmt.emin`` (a subnormal that
    the input did not normalize). ``sticky`` ORs in nonzero bits below ``u.sig``.
    ``exp_min`` (a Python int, optional) is the lowest ``u.exp`` the caller can
    produce: when it is at least ``emin`` (an emin-clamped normalize, see
    :func:`fixed_lzc`) the rounder has no subnormal shifter at all.

    :func:`round_decide` (the round bit, sticky, the truncated code and overflow)
    then :func:`round_apply` (one increment); a pipeline may cut between them.
    """
    d = round_decide(m, fmt, u, sticky, rounding=rounding, exp_min=exp_min, name=name,
                     pipe=pipe, shallow=shallow)
    d = _cut(pipe, f"{name}.inc", d)
    return round_apply(m, d, name=name, pipe=pipe)


@dataclass
class Decided:
    """A value whose rounding is decided but not applied (see round_decide)."""
    sign: Value
    code: Value         # truncated magnitude code, bits - 1 wide
    up: Value           # add one ulp
    overflow: Value
    is_zero: Value
    is_inf: Value
    is_nan: Value
    # overflow also when ``up`` and this (:func:`round_decide_packed`: the part of
    # the overflow test that waits for the round bit, decided beside the increment)
    ovf_up: Value = None


def round_decide(m, fmt, u, sticky=Const(0, 1), *, rounding="rne", exp_min=None,
                 name="r", pipe=None, shallow=False, ebase=None):
    """The first half of :func:`round_sig`.

    ``ebase``: ``(u.exp - emin, u.exp - emin + 1)`` built earlier (beside the
    normalizing shift: :func:`counted_to_unpacked`'s ``round_fmt``), for a rounder
    without the subnormal shifter (``exp_min >= emin``): the exponent's carry chains
    are then off this stage, which keeps only their compares and muxes.

    Derivation. With ``M = man_bits`` the result's LSB has weight
    ``2**(max(exp, emin) - M)``. When ``exp < emin`` is possible, ``sig`` is first
    shifted right by ``d = emin - exp`` (clamped to ``M + 2``: beyond that every bit
    is sticky and the round bit is 0). Keep the top ``M + 1`` bits ``n`` (hidden bit
    first), the round bit below them and the sticky OR of the rest. The truncated
    magnitude code is ``((max(exp, emin) - emin) << M) + n``, that is the fraction
    bits of ``n`` under an exponent field ``e = exp - emin + n[M]`` (0 for a
    subnormal, whose ``n[M]`` is 0 and whose ``exp`` is ``emin``; the hidden bit of a
    normal adds the one missing from the biased exponent). Rounding adds one to that
    code: a carry out of the fraction walks into the exponent by itself, so the
    increment is one carry chain (:func:`round_apply`). Overflow is decided here, in
    parallel, from the code before the increment: ``code + up > max_mag_code``, i.e.
    ``code > max_mag_code`` or ``code == max_mag_code`` and ``up``, compared field by
    field (short exponent compares, a fraction compare against a constant).

    ``shallow`` (with a subnormal shifter; a rounder built for a clock, MXQuant's
    element rounders): the shift by ``d`` is one ``(M + 3)``-way mux a bit, and the
    sticky of the bits it drops is picked by ``d`` from prefix ORs of ``sig`` built
    beside the clamp (the dropped bits are ``sig[:W - M - 2 + d]``), beside the
    shift instead of an OR tree after it; the clamp's compares are sums
    (:func:`less`); and the exponent candidates and their
    compares are taken straight from ``exp``, side by side with the shift clamp,
    instead of from ``e_base = under ? 0 : exp - emin``: ``e0 = under ? 0 :
    exp - emin``, ``e1 = under ? 1 : exp - emin + 1``, ``e_base > K`` is
    ``exp > emin + K`` and ``e_base == K`` is ``exp == emin + K`` (or ``under``
    too when ``K = 0``). One carry chain and a mux level, hidden behind the
    clamp's chain and two muxes, where ``e_base``'s mux then ``e_base + 1`` or a
    compare are two chains in series (MXQuant's element rounders at 150 MHz on
    ECP5: 8.1 ns measured from ``exp`` to the registered candidates, where the
    clamp is charged 4.5). Same function; other cores keep their netlists.
    """
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    check_choice("rounding", rounding, ROUNDINGS)
    M = f.man_bits
    sig = Value.cast(u.sig)
    W = len(sig)
    exp = Value.cast(u.exp)
    shifter = exp_min is None or exp_min < f.emin
    emax_field = f.max_mag_code >> M
    fmax_field = f.max_mag_code & ((1 << M) - 1)
    ew = f.bits - 1 - M

    def exponent_part(e_base, e_plus1=None):
        # exponent field e = e_base + n[M] (n[M] the hidden bit after the shift):
        # both candidates, and e_base's compares against constants, need only
        # e_base, so they are built before the shift (off the post-shift path);
        # e_plus1: e_base + 1 when it was built earlier (ebase)
        e0 = Signal(ew, name=f"{name}_e0")
        e1 = Signal(ew, name=f"{name}_e1")
        m.d.comb += [e0.eq(e_base), e1.eq(e_base + 1 if e_plus1 is None else e_plus1)]
        return (e0, e1, e_base > emax_field, e_base == emax_field,
                e_base == emax_field - 1)

    def exponent_direct(under):
        # exponent_part of e_base = under ? 0 : exp - emin, every term from exp
        # (see shallow): the candidates' chains and the compares side by side
        x0 = Signal(signed(len(exp) + 2), name=f"{name}_x0")
        x1 = Signal(signed(len(exp) + 2), name=f"{name}_x1")
        e0 = Signal(ew, name=f"{name}_e0")
        e1 = Signal(ew, name=f"{name}_e1")
        m.d.comb += [x0.eq(exp - f.emin), x1.eq(exp - (f.emin - 1)),
                     e0.eq(Mux(under, 0, x0)), e1.eq(Mux(under, 1, x1))]

        def base_eq(k):                     # e_base == k
            if k < 0:
                return Const(0, 1)
            return under | (exp == f.emin) if k == 0 else exp == f.emin + k
        return (e0, e1, less(m, f.emin + emax_field, exp, name=f"{name}_bgt"),
                base_eq(emax_field), base_eq(emax_field - 1))

    if shifter:
        under = Signal(name=f"{name}_under")
        dmax = M + 2
        d_raw = Signal(unsigned(len(exp) + 1), name=f"{name}_d_raw")
        d = Signal(range(dmax + 1), name=f"{name}_d")
        # d = clamp(emin - exp, 0, dmax): the difference and both compares are taken
        # from exp side by side (three short carry chains in parallel), two muxes
        if shallow:      # the compares as sums (less): no carry-out feed-out
            big = less(m, exp, f.emin - dmax, name=f"{name}_big")
            m.d.comb += under.eq(less(m, exp, f.emin, name=f"{name}_lt"))
        else:
            big = exp < f.emin - dmax
            m.d.comb += under.eq(exp < f.emin)
        m.d.comb += [
            d_raw.eq(f.emin - exp),
            d.eq(Mux(big, dmax, Mux(under, d_raw, 0))),
        ]
        _charge(pipe, lambda fab: fab.carry(len(exp) + 1) + fab.luts(2))
        if shallow:
            epart = exponent_direct(under)
        else:
            e_base = Signal(signed(len(exp) + 2), name=f"{name}_ebase")
            m.d.comb += e_base.eq(Mux(under, 0, exp - f.emin))
            epart = exponent_part(e_base)
        top = W + dmax
        if shallow:
            # the bits the shift drops below the round bit are sig[:W - M - 2 + d]
            # (d <= dmax): their OR for every d, prefix ORs of sig built beside the
            # clamp, then picked by d beside the shift
            pre = [sig[:W - M - 2 + k].any() if W - M - 2 + k > 0 else Const(0, 1)
                   for k in range(dmax + 1)]
            prefix = Signal(dmax + 1, name=f"{name}_pre")
            m.d.comb += prefix.eq(Cat(*pre))
            with _carry(pipe, epart, sticky, u) as c:
                d, prefix = _cut(pipe, f"{name}_sh.0", d, prefix)
            epart, sticky, u = c.values
            wide = Cat(Const(0, dmax), Value.cast(u.sig))
            # the shift by d as one (dmax + 1)-way mux a bit, the sticky as another
            shifted = Signal(W + dmax, name=f"{name}_shifted")
            dropped = Signal(name=f"{name}_dropped")
            m.d.comb += [shifted.eq(Array([wide >> k for k in range(dmax + 1)])[d]),
                         dropped.eq(Array(list(prefix))[d])]
            _charge(pipe, lambda fab: fab.mux(dmax + 1))
            sticky = sticky | dropped
            low = None
        else:
            with _carry(pipe, epart, sticky, u) as c:
                d = _cut(pipe, f"{name}_sh.0", d)
            epart, sticky, u = c.values
            wide = Cat(Const(0, dmax), Value.cast(u.sig))    # W + M + 2 bits, nothing lost
            with _carry(pipe, epart, sticky, u) as c:
                shifted = Signal(W + dmax, name=f"{name}_shifted")
                m.d.comb += shifted.eq(shift_levels(m, wide, d, left=False, pipe=pipe,
                                                    name=f"{name}_sh"))
            epart, sticky, u = c.values
        e_path = lambda fab: fab.luts(2)                            # noqa: E731
    elif ebase is not None:
        shallow = False
        pad = max(0, M + 2 - W)
        shifted, top = Cat(Const(0, pad), sig), W + pad
        epart = exponent_part(*ebase)
        e_path = lambda fab: fab.luts(2)                            # noqa: E731
    else:
        shallow = False
        pad = max(0, M + 2 - W)
        shifted, top = Cat(Const(0, pad), sig), W + pad
        e_base = Signal(signed(len(exp) + 2), name=f"{name}_ebase")
        m.d.comb += e_base.eq(exp - f.emin)
        epart = exponent_part(e_base)
        e_path = lambda fab: fab.carry(len(e_base)) + fab.luts(2)   # noqa: E731
    e0, e1, b_gt, b_eq, b_eq1 = epart
    mant = shifted[top - (M + 1):top]
    rbit = shifted[top - (M + 2)] if top >= M + 2 else Const(0, 1)
    if shallow:
        stk = sticky            # the dropped bits' OR already in
    else:
        low = shifted[:top - (M + 2)] if top > M + 2 else Const(0, 1)
        stk = low.any() | sticky
    if rounding == "rne":
        up = rbit & (stk | mant[0])
    else:
        up = Const(0, 1)
    msb = mant[M]
    frac = mant[:M]
    code = Signal(f.bits - 1, name=f"{name}_code")
    m.d.comb += code.eq(Cat(frac, Mux(msb, e1, e0)))
    # overflow: e > emax_field, or e == emax_field and frac + up > fmax_field
    e_gt = b_gt | (msb & b_eq)
    e_eq = Mux(msb, b_eq1, b_eq)
    if fmax_field == (1 << M) - 1:
        frac_gt, frac_eq = Const(0, 1), frac.all()
    else:
        frac_gt, frac_eq = frac > fmax_field, frac == fmax_field
    overflow = Signal(name=f"{name}_ovf")
    m.d.comb += overflow.eq(e_gt | (e_eq & (frac_gt | (frac_eq & up))))
    # sticky OR tree then the round-up bit; beside it the exponent sums and compares
    if shallow:
        _charge(pipe, lambda fab: max(fab.lut, e_path(fab)))
    else:
        _charge(pipe, lambda fab: max(fab.reduce(max(1, top - (M + 2))) + fab.lut,
                                      e_path(fab)))
    return Decided(u.sign, code, up, overflow, u.is_zero, u.is_inf, u.is_nan)


def _below(x, k):
    """Unsigned ``x < k`` for a constant ``k`` as AND/OR logic, MSB first (a LUT
    tree after mapping; ``x < k`` itself maps to a carry chain)."""
    x = Value.cast(x)
    w = len(x)
    if k <= 0:
        return Const(0, 1)
    if k >= 1 << w:
        return Const(1, 1)
    top = 1 << (w - 1)
    if k & top:
        return ~x[w - 1] | _below(x[:w - 1], k - top)
    return ~x[w - 1] & _below(x[:w - 1], k)


def _table(m, x, fn, width, name):
    """``fn(x)`` for every value of the (narrow) unsigned ``x`` as logic: each
    output bit the OR of the values of ``x`` that set it (one LUT level up to four
    bits of ``x``)."""
    x = Value.cast(x)
    out = Signal(width, name=name)
    bits = []
    for j in range(width):
        terms = [x == v for v in range(1 << len(x)) if (fn(v) >> j) & 1]
        bits.append(Cat(*terms).any() if terms else Const(0, 1))
    m.d.comb += out.eq(Cat(*bits))
    return out


def round_decide_packed(m, fmt, code, fin, u, *, rounding="rne", name="r", pipe=None):
    """:func:`round_decide` (``shallow``) of a value unpacked from ``code``, a code
    of ``fin`` (``u = unpack(code)``), whose exponent range reaches below ``fmt``'s
    (``fin.emin < fmt.emin``): everything the rounder needs before its shift is
    decoded from the code's exponent field ``x`` directly, side by side, instead of
    from ``u.exp`` (one carry chain for ``x - bias``, then the clamp's chains and
    muxes behind it). With ``K = fmt.emin + fin.bias`` (the field of ``exp ==
    emin``):

    - the shift ``d = clamp(emin - exp, 0, M + 2)`` is ``M + 2`` when ``x < K - M -
      2`` (a subnormal input too: ``x = 0``, ``exp = fin.emin``, is clamped the same
      way when ``K - 1 > M + 2``), ``(K - x) mod 2**b`` when ``x < K`` (a function of
      the low bits of ``x``), else 0: compares against constants as LUT logic;
    - the exponent candidates ``e0 = under ? 0 : x - K``, ``e1 = under ? 1 : x - K
      + 1`` (``ew`` bits: a function of the low ``ew`` bits of ``x``, a LUT each);
    - the overflow, which needs ``exp >= fmt.emax``: then ``d == 0`` and the hidden
      bit is set (a normal input), so the field is ``e = x - K + 1`` and the
      fraction is the top ``M`` bits below the hidden bit of ``u.sig``, unshifted:
      ``e > emax_field``, or ``e == emax_field`` and the fraction above (or, with
      ``up``: at) the largest finite one. The part with ``up`` is returned in
      ``ovf_up`` and finished beside the increment (:func:`apply_pack`);
    - the sticky of the bits the shift drops, from prefix ORs of ``u.sig`` (as
      ``shallow``).

    A fine cut point ``<name>_sh.0`` then registers all of it; behind it the shift
    is one ``(M + 3)``-way mux a bit, then the round-up bit and the exponent mux.
    The same function as :func:`round_decide` of ``u`` (``exp_min = fin.emin``)."""
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    fin = get_format(fin)
    check_choice("rounding", rounding, ROUNDINGS)
    assert fin.emin < f.emin, "round_decide_packed: the input must reach below emin"
    M = f.man_bits
    code = Value.cast(code)
    x = code[fin.man_bits:fin.man_bits + fin.exp_bits]
    sig = Value.cast(u.sig)
    W = len(sig)
    dmax = M + 2
    K = f.emin + fin.bias
    emax_field = f.max_mag_code >> M
    fmax_field = f.max_mag_code & ((1 << M) - 1)
    assert emax_field >= 2      # a shifted (under) value cannot overflow
    ew = f.bits - 1 - M
    assert ew <= 6

    def clamp(v):               # d of the field value v
        exp = fin.emin if v == 0 else v - fin.bias
        return min(max(f.emin - exp, 0), dmax)
    db = dmax.bit_length()
    under = Signal(name=f"{name}_under")
    big = Signal(name=f"{name}_big")
    m.d.comb += [under.eq(_below(x, K)),
                 big.eq(_below(x, K - dmax) if K - 1 > dmax
                        else _below(x, K - dmax) & (x != 0))]
    # inside the window K - dmax <= x < K (never x = 0 there unless clamp(0) agrees):
    # d = K - x, a function of the low db bits of x
    mid = _table(m, x[:db], lambda v: (K - v) % (1 << db), db, f"{name}_dmid")
    d = Signal(range(dmax + 1), name=f"{name}_d")
    m.d.comb += d.eq(Mux(big, dmax, Mux(under, mid, 0)))
    for v in range(1 << fin.exp_bits):      # the decode agrees with the clamp
        ref = clamp(v)
        got = dmax if (v < K - dmax and (K - 1 > dmax or v != 0)) else (
            (K - v) % (1 << db) if v < K else 0)
        assert ref == got, (v, ref, got)
    t0 = _table(m, x[:ew], lambda v: (v - K) % (1 << ew), ew, f"{name}_t0")
    t1 = _table(m, x[:ew], lambda v: (v - K + 1) % (1 << ew), ew, f"{name}_t1")
    e0 = Signal(ew, name=f"{name}_e0")
    e1 = Signal(ew, name=f"{name}_e1")
    m.d.comb += [e0.eq(Mux(under, 0, t0)), e1.eq(Mux(under, 1, t1))]
    wide = Cat(Const(0, dmax), sig)          # W + dmax bits, nothing lost
    top = W + dmax
    # overflow (d == 0, hidden bit set): field e = x - K + 1, fraction unshifted
    frac0 = wide[top - 1 - M:top - 1]
    e_big = ~_below(x, K - 1 + emax_field + 1)              # e > emax_field
    e_top = x == K - 1 + emax_field                          # e == emax_field
    if fmax_field == (1 << M) - 1:
        frac_gt, frac_eq = Const(0, 1), frac0.all()
    else:
        frac_gt, frac_eq = ~_below(frac0, fmax_field + 1), frac0 == fmax_field
    ovf = Signal(name=f"{name}_ovf0")
    ovf_up = Signal(name=f"{name}_ovfup")
    m.d.comb += [ovf.eq(e_big | (e_top & frac_gt)), ovf_up.eq(e_top & frac_eq)]
    # the bits the shift drops below the round bit are sig[:W - M - 2 + d]
    pre = [sig[:W - M - 2 + k].any() if W - M - 2 + k > 0 else Const(0, 1)
           for k in range(dmax + 1)]
    prefix = Signal(dmax + 1, name=f"{name}_pre")
    m.d.comb += prefix.eq(Cat(*pre))
    # compares against constants (two LUT levels) then a mux: the clamp, the
    # candidates and the overflow terms side by side; beside them OR trees over up
    # to the whole magnitude (the widest prefix, and unpack's zero test, which
    # reads the exponent field and the fraction: fin.bits - 1 inputs)
    _charge(pipe, lambda fab: max(fab.luts(3), fab.reduce(fin.bits - 1)))
    with _carry(pipe, e0, e1, ovf, ovf_up, u) as c:
        d, prefix = _cut(pipe, f"{name}_sh.0", d, prefix)
    e0, e1, ovf, ovf_up, u = c.values
    wide = Cat(Const(0, dmax), Value.cast(u.sig))
    shifted = Signal(top, name=f"{name}_shifted")
    dropped = Signal(name=f"{name}_dropped")
    m.d.comb += [shifted.eq(Array([wide >> k for k in range(dmax + 1)])[d]),
                 dropped.eq(Array(list(prefix))[d])]
    mant = shifted[top - (M + 1):top]
    rbit = shifted[top - (M + 2)]
    up = rbit & (dropped | mant[0]) if rounding == "rne" else Const(0, 1)
    out = Signal(f.bits - 1, name=f"{name}_code")
    m.d.comb += out.eq(Cat(mant[:M], Mux(mant[M], e1, e0)))
    # the shift's mux, then the round-up bit and the exponent mux
    _charge(pipe, lambda fab: fab.mux(dmax + 1) + fab.lut)
    return Decided(u.sign, out, up, ovf, u.is_zero, u.is_inf, u.is_nan, ovf_up)


def less(m, a, b, name="lt"):
    """``a < b`` as the sign (or borrow) of ``a - b`` computed one bit wider: one
    carry chain whose result is its top sum bit. Yosys maps ``a < b`` to the chain's
    carry out instead, which nextpnr-ecp5 routes into the fabric through one more
    CCU2C (about 1.3 ns on a compare that steers a select); see
    :meth:`.timing.Fabric.compare`."""
    a, b = Value.cast(a), Value.cast(b)
    if a.shape().signed or b.shape().signed:
        # both signed (an unsigned operand zero-extended by one bit)
        a = a if a.shape().signed else Cat(a, Const(0, 1)).as_signed()
        b = b if b.shape().signed else Cat(b, Const(0, 1)).as_signed()
        d = Signal(signed(max(len(a), len(b)) + 1), name=name)
    else:
        d = Signal(max(len(a), len(b)) + 1, name=name)
    m.d.comb += d.eq(a - b)
    return d[-1]


def sticky_compress(m, fmt, u, name="r", pipe=None):
    """``u`` with its significand cut to what :func:`round_sig` into ``fmt`` reads
    bit by bit, the rest ORed into one sticky bit below it: the top ``M + 2`` bits
    (after any subnormal shift of up to ``M + 2`` the kept bits and the round bit
    come from them) and the sticky bit, ``M + 3`` bits. The rounded result is the
    same (every dropped bit only ever reached the sticky OR); the rounder's
    shifter, sticky tree and the registers in between are narrower. An OR tree
    over the dropped bits (charged on ``pipe``); ``u`` unchanged when there is
    nothing to drop."""
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    sig = Value.cast(u.sig)
    keep = f.man_bits + 2
    if len(sig) <= keep + 1:
        return u
    low = sig[:len(sig) - keep]
    stk = Signal(name=f"{name}_cstk")
    m.d.comb += stk.eq(low.any())
    _charge(pipe, lambda fab: fab.reduce(len(low)))
    return dataclasses.replace(u, sig=Cat(stk, sig[len(sig) - keep:]))


def round_apply(m, d, name="r", pipe=None):
    """The second half of :func:`round_sig`: the increment (one carry chain)."""
    code = Value.cast(d.code)
    mag = Signal(len(code), name=f"{name}_mag")
    m.d.comb += mag.eq(code + d.up)
    _charge(pipe, lambda fab: fab.carry(len(code)))
    return Rounded(d.sign, mag, d.overflow, d.is_zero, d.is_inf, d.is_nan)


def pack(m, fmt, r, *, rounding="rne", saturate=False, name="p", pipe=None):
    """Pack a :class:`Rounded` value into a code of ``fmt``, applying the special
    value and overflow rules of SPEC §2 (and the project's decisions in
    docs/numerics.md): NaN gives the canonical positive NaN (formats without NaN:
    the sign-only code, as ml_dtypes); Inf gives Inf, NaN for e4m3, max for formats
    without Inf; overflow gives Inf (IEEE), NaN (e4m3) or max (no specials), and
    max under RTZ or ``saturate``.
    """
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    B = f.bits
    r = _cut(pipe, f"{name}.in", r)          # a fine point after the increment
    sbit, nan, inf, ovf = _special_codes(f, r.sign, rounding, saturate)

    out = Signal(B, name=f"{name}_code")
    with m.If(r.is_nan):
        m.d.comb += out.eq(nan)
    with m.Elif(r.is_inf):
        m.d.comb += out.eq(inf)
    with m.Elif(r.is_zero):
        m.d.comb += out.eq(sbit)
    with m.Elif(r.overflow):
        m.d.comb += out.eq(ovf)
    with m.Else():
        m.d.comb += out.eq(sbit | r.mag)
    _charge(pipe, lambda fab: fab.luts(2))
    return out


def _special_codes(f, sign, rounding, saturate):
    """:func:`pack`'s codes: the sign bit in place, NaN, Inf and overflow."""
    B = f.bits
    sbit = Value.cast(sign) << (B - 1)
    maxc = sbit | f.max_mag_code
    if f.has_nan:
        nan = Const(f.nan_code, B)
    else:
        nan = Const(1 << (B - 1), B)
    if saturate or not (f.has_inf or f.specials == "fn"):
        inf = ovf = maxc
    elif f.has_inf:
        inf = sbit | f.inf_code
        ovf = maxc if rounding == "rtz" else inf
    else:                       # e4m3: no Inf, overflow and Inf give NaN
        inf = nan
        ovf = maxc if rounding == "rtz" else nan
    return sbit, nan, inf, ovf


def apply_pack(m, fmt, d, *, rounding="rne", saturate=False, name="p", pipe=None):
    """:func:`round_apply` then :func:`pack` of a :class:`Decided`, one carry chain
    and one LUT level deep: the special-value choice (NaN, Inf, zero, overflow: which
    code, and whether it replaces the rounded magnitude) depends on the flags and
    the overflow only, so it is made beside the increment's carry chain (with
    ``d.ovf_up``, the overflow's last term, ``ovf_up & up``, too), and the chain's
    sum meets it in one mux. The same function as ``pack(round_apply(d))``."""
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    B = f.bits
    code = Value.cast(d.code)
    mag = Signal(len(code), name=f"{name}_mag")
    m.d.comb += mag.eq(code + d.up)
    overflow = Signal(name=f"{name}_ovf")
    m.d.comb += overflow.eq(d.overflow if d.ovf_up is None
                            else d.overflow | (d.ovf_up & d.up))
    sbit, nan, inf, ovf = _special_codes(f, d.sign, rounding, saturate)
    forced = Signal(B, name=f"{name}_forced")
    force = Signal(name=f"{name}_force")
    with m.If(d.is_nan):
        m.d.comb += forced.eq(nan)
    with m.Elif(d.is_inf):
        m.d.comb += forced.eq(inf)
    with m.Elif(d.is_zero):
        m.d.comb += forced.eq(sbit)
    with m.Else():
        m.d.comb += forced.eq(ovf)
    m.d.comb += force.eq(d.is_nan | d.is_inf | d.is_zero | overflow)
    out = Signal(B, name=f"{name}_code")
    m.d.comb += out.eq(Mux(force, forced, sbit | mag))
    # the choice (two LUT levels) is shorter than the chain it works beside
    _charge(pipe, lambda fab: max(fab.carry(len(code)), fab.luts(2)) + fab.lut)
    return out


def round_pack(m, fmt, u, sticky=Const(0, 1), *, rounding="rne", saturate=False,
               exp_min=None, name="r", pipe=None):
    """:func:`round_sig` then :func:`pack`."""
    r = round_sig(m, fmt, u, sticky, rounding=rounding, exp_min=exp_min, name=name,
                  pipe=pipe)
    return pack(m, fmt, r, rounding=rounding, saturate=saturate, name=f"{name}_p",
                pipe=pipe)


@dataclass
class Fixed:
    """An exact product or sum: value = (-1)**sign * mag * 2**exp0 (``exp0`` is the
    weight of bit 0 of ``mag``), with class flags."""
    sign: Value
    mag: Value
    exp0: Value
    is_zero: Value
    is_inf: Value
    is_nan: Value


LUT_MUL_MAX = 5     # significands up to 5 x 5 bits multiply in LUTs (FABRIC.md)
DSP_WIDTH = 18      # one MULT18X18D (ECP5; Gowin's and Xilinx's take at least as much)


def multiply(m, ua, fa, ub, fb, name="p", pipe=None, lut=None, dsp_cut=False,
             b_normalized=False, a_normalized=False):
    """Exact product of two unpacked floats (significands not normalized).

    ``mag`` has ``(Ma + 1) + (Mb + 1)`` bits; ``exp0 = ea + eb - Ma - Mb``. Specials:
    NaN if either is NaN or Inf x 0; Inf if either is Inf; zero if either is zero.

    ``lut``: build the significand product from partial products in LUTs instead of
    an inferred multiplier (which synthesis maps to a DSP block). Default: LUTs when
    both significands have at most ``LUT_MUL_MAX`` bits (a 4x4 LUT product is faster
    than a fabric-registered MULT18X18D and costs about 60 LUTs), or when the
    family has no DSP blocks.

    ``dsp_cut``: on a pipe planned for a clock, a product wider than one DSP is
    built from partial products with a fine cut after them (``name.pp``,
    :func:`_multiply_wide`), and above the inferred DSP's clock every product is
    built on registered primitives (:func:`.prims.dsp_products`); the caller
    carries what crosses their cut points.

    ``b_normalized`` (``a_normalized``): ``ub`` (``ua``) came through
    :func:`prenormalize` (its exponent reaches ``emin - man_bits``).
    """
    fa, fb = get_format(fa), get_format(fb)
    ea, eb = Value.cast(ua.exp), Value.cast(ub.exp)
    ea_lo = fa.emin - (fa.man_bits if a_normalized else 0)
    eb_lo = fb.emin - (fb.man_bits if b_normalized else 0)
    shape = exp_shape((ea_lo + eb_lo - fa.man_bits - fb.man_bits - 1,
                       fa.emax + fb.emax + 1))
    exp0 = Signal(shape, name=f"{name}_exp0")
    mag = Signal(len(Value.cast(ua.sig)) + len(Value.cast(ub.sig)), name=f"{name}_mag")
    sa, sb = Value.cast(ua.sig), Value.cast(ub.sig)
    if lut is None:
        lut = max(len(sa), len(sb)) <= LUT_MUL_MAX or (
            pipe is not None and not pipe.fab.has_dsp)
    # for a clock: a product wider than a DSP, or any product above the inferred
    # DSP's clock (the significands unsigned, a zero sign bit each, on registered
    # primitives)
    if dsp_cut and not lut and pipe is not None and (
            (max(len(sa), len(sb)) > DSP_WIDTH
             and getattr(pipe.core, "_pipe_fmax", None) is not None)
            or use_registered_dsp(pipe, len(sa) + 1, len(sb) + 1)):
        return _multiply_wide(m, ua, ub, fa, fb, sa, sb, exp0, mag, name, pipe)
    if lut:
        # shift-and-add over the narrower operand: no $mul cell, so no DSP
        if len(sb) > len(sa):
            sa, sb = sb, sa
        if _digit_products(pipe, len(sa), len(sb)):
            # built for a clock the shift-and-add form does not meet: radix-4 digits
            # of sb, each partial product sa * digit a LUT function of len(sa) + 2
            # bits (3 * sa as gates, not a carry chain), then their sum: one carry
            # chain, where bit by bit it was two in series
            sa3 = _ripple(sa, Cat(Const(0, 1), sa))
            pps = []
            for i in range(0, len(sb), 2):
                d = sb[i:i + 2]
                pp = Signal(len(sa) + len(d), name=f"{name}_pp{i}")
                m.d.comb += pp.eq(Mux(d[0], sa, 0) if len(d) == 1 else
                                  Mux(d[1], Mux(d[0], sa3, sa << 1), Mux(d[0], sa, 0)))
                pps.append(pp << i)
            prod = sum_tree(m, pps, len(mag), name=f"{name}_pp", signed_=False)
        else:
            prod = _shift_add(m, sa, sb, name=f"{name}_pp")
    else:
        prod = sa * sb
    m.d.comb += [
        exp0.eq(ea + eb - (fa.man_bits + fb.man_bits)),
        mag.eq(prod),
    ]
    _charge(pipe, lambda fab: max(fab.mul_lut(len(sa), len(sb)) if lut else fab.dsp_mul,
                                  fab.carry(len(exp0))))
    is_nan = ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_zero) | (ua.is_zero & ub.is_inf)
    return Fixed(ua.sign ^ ub.sign, mag, exp0, ua.is_zero | ub.is_zero,
                 ua.is_inf | ub.is_inf, is_nan)


def _digit_products(pipe, wa, wb):
    """Whether a ``wa`` x ``wb`` LUT product (wb <= wa) on ``pipe`` is built from
    radix-4 digit products: for a clock whose period is below what the shift-and-add
    form takes in a stage of its own in context, 1.35 times the model's ``mul_lut``
    (measured on ECP5: NMDot's and SparseLinear's 4x4 at 150 MHz, 6.8 ns register to
    register, the critical path; the model says 5.4). Below that clock the
    shift-and-add form stays: it is smaller (MXDot e4m3 x32 at 100 MHz: 10,183 LUTs
    against 10,457 with digit products)."""
    fmax = getattr(getattr(pipe, "core", None), "_pipe_fmax", None)
    if fmax is None or wb <= 2:
        return False
    return 1000.0 / fmax < pipe.fab.reg + 1.35 * pipe.fab.mul_lut(wa, wb)


def _shift_add(m, sa, sb, name):
    """``sa * sb`` (unsigned) as shift-and-add: the partial products ``sa & sb[i]``
    summed pairwise, each adder taking only the bits where both addends overlap
    (the lower addend's bits below the other's shift pass through beside it), so
    every adder's operands are slices or concatenations around another adder's
    sum. Yosys' alumacc merges an adder into the one it feeds only when that
    operand is the whole sum; here none is, so each stays one carry chain (one
    LUT a bit) instead of a carry-save tree of full adders (two LUT4s a bit) and a
    final chain: a 4x4 product in 34 LUTs instead of 43 on ECP5."""
    terms = [(Mux(sb[i], sa, 0), i) for i in range(len(sb))]   # (value, shift)
    k = 0
    while len(terms) > 1:
        nxt = []
        for j in range(0, len(terms) - 1, 2):
            (a, sh_a), (b, sh_b) = terms[j], terms[j + 1]
            a, b = Value.cast(a), Value.cast(b)
            d = sh_b - sh_a
            s = Signal(max(len(a) - d, len(b)) + 1, name=f"{name}{k}_{j // 2}")
            m.d.comb += s.eq(a[d:] + b)
            nxt.append((Cat(a[:d], s), sh_a))
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
        k += 1
    v, sh = terms[0]
    out = Signal(len(sa) + len(sb), name=f"{name}_sum")
    m.d.comb += out.eq(Value.cast(v) << sh)
    return out


def _ripple(x, y):
    """``x + y`` (unsigned, one bit wider) as gates: a ripple of majority and XOR
    functions that LUT mapping absorbs into the logic around it, where ``+`` would
    be a carry chain of its own (for a few bits only)."""
    w = max(len(x), len(y))
    x, y = Value.cast(x), Value.cast(y)
    bit = lambda v, k: v[k] if k < len(v) else Const(0, 1)
    c, out = Const(0, 1), []
    for k in range(w):
        a, b = bit(x, k), bit(y, k)
        out.append(a ^ b ^ c)
        c = (a & b) | (a & c) | (b & c)
    return Cat(*out, c)


def _multiply_wide(m, ua, ub, fa, fb, sa, sb, exp0, mag, name, pipe):
    """:func:`multiply` of significands wider than one DSP, on a pipe: the partial
    products of ``DSP_WIDTH``-bit chunks, each its own inferred DSP, a fine cut after
    them (``name.pp``), then their sum, cuttable between levels. Inferred whole, the
    DSPs' combining adder would sit unregistered behind them (24x24 on ECP5:
    11.4 ns, FABRIC.md).

    For a clock above the inferred DSP's (:func:`.prims.use_registered_dsp`) the
    chunks are ``DSP_WIDTH - 1`` bits (unsigned, under the primitive's sign bit) and
    every partial product is a registered primitive (:func:`.prims.dsp_products`,
    its two forced cut points ``name_dsp.in`` and ``.out``): a product of one chunk
    each is the primitive alone, no sum."""
    def exp_and_flags(ua, ub):
        m.d.comb += exp0.eq(Value.cast(ua.exp) + Value.cast(ub.exp)
                            - (fa.man_bits + fb.man_bits))
        is_nan = (ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_zero)
                  | (ua.is_zero & ub.is_inf))
        return (ua.sign ^ ub.sign, ua.is_zero | ub.is_zero, ua.is_inf | ub.is_inf,
                is_nan)
    reg = use_registered_dsp(pipe, DSP_WIDTH, DSP_WIDTH)
    w = DSP_WIDTH - 1 if reg else DSP_WIDTH
    chunks = [(i, j, sa[i:i + w], sb[j:j + w])
              for i in range(0, len(sa), w) for j in range(0, len(sb), w)]
    pps = []
    if reg:
        # the operands' exponents and flags enter registers beside the primitives'
        # input registers as they are; their sum and the flags' logic are built
        # between those and the output registers, beside the multiply (a chain
        # there, not in front of the input register)
        fields = ("exp", "sign", "is_zero", "is_inf", "is_nan")
        with pipe.carry(*(getattr(u, k) for u in (ua, ub) for k in fields)) as cc:
            def between():
                va, vb = cc.values[:5], cc.values[5:]
                fl = exp_and_flags(*(dataclasses.replace(u, **dict(zip(fields, v)))
                                     for u, v in ((ua, va), (ub, vb))))
                pipe.charge(pipe.fab.carry(len(exp0)))
                return (exp0, *fl)
            qs, (exp0, *flags) = dsp_products(
                m, [(Cat(x, Const(0, 1)), Cat(y, Const(0, 1))) for _, _, x, y in chunks],
                pipe, name=f"{name}_dsp", between=between)
        for (i, j, x, y), q in zip(chunks, qs):
            pp = q.as_unsigned()[:len(x) + len(y)]
            pps.append(Cat(Const(0, i + j), pp) if i + j else pp)
        if len(pps) == 1:
            m.d.comb += mag.eq(pps[0])
            return Fixed(flags[0], mag, exp0, *flags[1:])
    else:
        flags = exp_and_flags(ua, ub)
        for i, j, x, y in chunks:
            pp = Signal(len(x) + len(y), name=f"{name}_pp{i}_{j}")
            m.d.comb += pp.eq(x * y)
            pps.append(Cat(Const(0, i + j), pp) if i + j else pp)
        pipe.charge(max(pipe.fab.dsp_mul, pipe.fab.carry(len(exp0))))
    pps, exp0_, flags = pipe.cut(f"{name}.pp", tuple(pps), exp0, flags)
    with pipe.carry(exp0_, *flags) as cc:           # across the sum's level cuts
        m.d.comb += mag.eq(sum_tree(m, list(pps), len(mag), name=f"{name}_ps",
                                    signed_=False, pipe=pipe))
    exp0_, *flags = cc.values
    return Fixed(flags[0], mag, exp0_, *flags[1:])


def lane_products(m, pairs, fa, fb, pipe, unpack_fn=None, shift=False,
                  normalized=False):
    """Exact products of lanes ``(a_code, b_code)`` side by side on ``pipe``: the
    lanes' unpacking, a fine cut point (``mul.u``), their :func:`multiply`.
    ``normalized``: each operand through :func:`prenormalize` after its unpacking
    (the products' MSB then at their top bit or the one below).
    ``unpack_fn`` (default :func:`unpack`) takes ``(m, code, fmt, name=, pipe=)``.
    ``shift``: ``unpack_fn`` returns biased, unsigned exponents
    (:func:`.mxarith.unpack_elem_biased`), and each product's ``exp0`` becomes the
    sum of its operands' two (``<name>_sh``), its shift into a word whose LSB is
    the smallest product bit: one adder of two unsigned addends."""
    unpack_fn = unpack_fn or unpack
    us = []
    if normalized:
        # every lane's unpacking and prenormalize as plain logic side by side, charged
        # once: the exponent's chain and the LZC's levels, a fine cut point
        # (mul.n), the shifter's levels
        ops = [(n, c, get_format(f)) for a, b in pairs
               for n, c, f in (("a", a, fa), ("b", b, fb))]
        cnt = []
        for j, (n, c, f) in enumerate(ops):
            u = unpack(m, c, f, name=f"{n}{j // 2}",
                       exp_shape_=exp_shape((f.emin - f.man_bits - 1, f.emax + 1)))
            cnt.append((u, lzc(u.sig, m=m)[1]))
        lv = max(f.man_bits for _, _, f in ops).bit_length()
        ew = max(f.exp_bits for _, _, f in ops)
        pipe.charge(pipe.fab.carry(ew + 1) + pipe.fab.lut + lv * pipe.fab.lzc_level())
        cnt = pipe.cut("mul.n", tuple(cnt))
        us = [prenormalize_shift(m, u, k, name=f"{n}{j // 2}")
              for j, ((u, k), (n, _, _)) in enumerate(zip(cnt, ops))]
        us = list(zip(us[::2], us[1::2]))
        pipe.charge(lv * pipe.fab.shift_level())
    else:
        with pipe.parallel():
            for k, (a, b) in enumerate(pairs):
                us.append((unpack_fn(m, a, fa, name=f"a{k}", pipe=pipe),
                           unpack_fn(m, b, fb, name=f"b{k}", pipe=pipe)))
    us = pipe.cut("mul.u", tuple(us))
    prods = []
    # one lane: no branches side by side, and a product wider than a DSP is a chain
    # of charges (the DSPs, then the sum of their partial products, with its fine
    # cuts) that parallel() would max, not add (IterNorm's layernorm lane Dots, FX x
    # FX: planned 9.6 ns, routed 14.1 before)
    one = len(us) == 1
    with contextlib.nullcontext() if one else pipe.parallel():
        for k, (ua, ub) in enumerate(us):
            p = multiply(m, ua, fa, ub, fb, name=f"p{k}", pipe=pipe, dsp_cut=one,
                         a_normalized=normalized, b_normalized=normalized)
            if shift:
                sh = Signal(max(len(Value.cast(ua.exp)), len(Value.cast(ub.exp))) + 1,
                            name=f"p{k}_sh")
                m.d.comb += sh.eq(ua.exp + ub.exp)
                p = dataclasses.replace(p, exp0=sh)
            prods.append(p)
    return prods


def align_add(m, p, c, fc, name="s", pipe=None):
    """Exact-then-sticky sum of a product ``p`` (:class:`Fixed`, PW bits) and an
    unpacked addend ``c`` of format ``fc`` (CW = man_bits + 1 bits), ready for
    :func:`normalize` and :func:`round_sig` at ``fc``'s precision.

    Window (bit 0 = LSB, weight ``2**(p.exp0 - L)``)::

        [ carry | c placed here when it is far above p | p at L .. L+PW | L guard ]

    with ``L = CW + 3``. The addend is placed with its LSB at ``L + delta``,
    ``delta = (ec - Mc) - p.exp0``, by a right shift from ``L + dmax``
    (``dmax = PW + 3``):

    * ``delta > dmax`` (or a zero product): the product lies 3+ bits below c's LSB,
      hence below the rounding point of any result; it is replaced by a sticky 1 at
      bit 0 (0 for a zero product) and c anchors the window: bit 0 then weighs
      ``2**(ec - Mc - L - dmax)``.
    * ``delta < -L``: low bits of c fall below bit 0 and are ORed into bit 0; the
      result's MSB is then at bit ``L - 1`` or higher, its LSB at 3 or higher, so the
      round bit is never contaminated.
    * otherwise both operands sit in the window exactly (cancellation is exact).

    The standard adder argument (a value in the same open interval below the round
    bit rounds the same way) makes the single rounding exact. Returns a
    :class:`Fixed` whose ``mag`` is the window magnitude and ``exp0`` its bit-0
    weight; an exact zero sum sets ``is_zero`` and takes the sign ``p.sign & c.sign``
    if both are zeros, else +0 (RNE/RTZ).

    It is :func:`align` (exponent difference, the addend's shift) then
    :func:`add_aligned` (the signed add and the magnitude); a pipeline may cut
    between the two.
    """
    return add_aligned(m, align(m, p, c, fc, name=name, pipe=pipe), name=name, pipe=pipe)


@dataclass
class Aligned:
    """Both operands of :func:`align_add` placed in one window, not yet added."""
    pwin: Value
    cwin: Value
    p_sign: Value
    c_sign: Value
    p_sticky: Value     # c anchors the window
    ec0: Value          # weight of c's LSB
    p_exp0: Value       # weight of p's LSB
    L: int
    dmax: int
    p_zero: Value
    c_zero: Value
    p_inf: Value
    c_inf: Value
    p_nan: Value
    c_nan: Value
    floor: Value = None     # lzc_floor's marker of the sum's window, when asked for
    room: Value = None      # or its room, not yet decoded (align's floor_room)
    room_lo: int = None     # the lowest value the room takes (None: unknown)


def align(m, p, c, fc, name="s", pipe=None, emin=None, p_bounds=None, floor_room=False):
    """The first half of :func:`align_add`: place ``p`` and ``c`` in the window.

    Timing: the exponent difference and the shift clamp (two short carry chains),
    then the addend's barrel shift (a cut point may sit between any two of its
    levels), then the sticky OR of the bits shifted below the window.

    ``emin``: also build :func:`lzc_floor`'s marker of the sum (``floor``) here,
    from the exponents, beside the shift clamp and off the adder's path;
    ``p_bounds``, the lowest ``p.exp0`` (a Python int), lets it drop the decode
    that can never fire (None: assume any). ``floor_room``: return the marker's
    room instead (``room``, ``room_lo``: the addend's or the product's, chosen here,
    12 bits or so to register instead of the window-wide marker), for
    :func:`floor_marker` to decode later, beside the adder; the clamp's stage then
    holds no window-wide mux steered by ``p_sticky``."""
    fc = get_format(fc)
    PW = len(Value.cast(p.mag))
    CW = fc.man_bits + 1
    L = CW + 3
    dmax = PW + 3
    T = L + dmax + CW + 1                         # + carry bit
    top = L + dmax + CW                           # shift at which c is all sticky

    ec0 = Value.cast(c.exp) - fc.man_bits
    delta = Signal(signed(max(len(Value.cast(p.exp0)), len(ec0)) + 2), name=f"{name}_delta")
    m.d.comb += delta.eq(ec0 - p.exp0)
    rooms = (None, None)
    if emin is not None:
        # lzc_floor's room (window MSB weight - emin) of either anchoring, beside
        # delta: exp0 is ec0 - L - dmax (c anchors) or p.exp0 - L (see add_aligned)
        rc = Signal(signed(len(delta) + 2), name=f"{name}_roomc")
        rp = Signal(signed(len(delta) + 2), name=f"{name}_roomp")
        m.d.comb += [rc.eq(ec0 + (T - 1 - L - dmax - emin)),
                     rp.eq(Value.cast(p.exp0) + (T - 1 - L - emin))]
        # static lower bounds: c's LSB weighs at least emin - Mc
        lo_c = (fc.emin - fc.man_bits) + (T - 1 - L - dmax - emin)
        lo_p = None if p_bounds is None else p_bounds + (T - 1 - L - emin)
        rooms = ((rc, lo_c), (rp, lo_p))
    _charge(pipe, lambda fab: fab.carry(len(delta)))
    with _carry(pipe, p, c, ec0, rooms) as cc:
        delta = _cut(pipe, f"{name}_al.d", delta)
    p, c, ec0, rooms = cc.values
    # a zero product must not anchor the window either: then c alone is placed
    p_sticky = Signal(name=f"{name}_psticky")
    m.d.comb += p_sticky.eq((delta > dmax) | p.is_zero)
    sh = Signal(range(top + 1), name=f"{name}_sh")
    with m.If(p_sticky):
        m.d.comb += sh.eq(0)
    with m.Elif(delta < dmax - top):
        m.d.comb += sh.eq(top)
    with m.Else():
        m.d.comb += sh.eq(dmax - delta)
    floor, room_lo = (None, None) if emin is None else \
        _floor_select(m, p_sticky, *rooms, T, name, floor_room)
    # the clamp: two compares and a subtract side by side, then a 3:1 mux; beside
    # it the floor markers' decodes, and the mux between them
    _charge(pipe, lambda fab: fab.carry(len(delta)) + fab.luts(2))
    with _carry(pipe, p, c, ec0, p_sticky, floor) as cc:
        sh = _cut(pipe, f"{name}_al.sh", sh)
    al = _align_place(m, *cc.values, sh, fc, name, pipe)
    return _room_aligned(al, room_lo) if floor_room and emin is not None else al


def _floor_select(m, p_sticky, room_c, room_p, T, name, floor_room):
    """The floor marker of whichever operand anchors the window (the addend's when
    ``p_sticky``), ``room_c``/``room_p`` each ``(room, lowest room)``: the
    window-wide marker, or with ``floor_room`` the room itself and the lowest room
    of either, for :func:`floor_marker` to decode later. Returns
    ``(floor, room_lo)``."""
    (rc, lo_c), (rp, lo_p) = room_c, room_p
    if floor_room:
        floor = Signal(signed(max(len(Value.cast(rc)), len(Value.cast(rp)))),
                       name=f"{name}_room")
        m.d.comb += floor.eq(Mux(p_sticky, rc, rp))
        return floor, (None if lo_p is None else min(lo_c, lo_p))
    floor = Signal(T, name=f"{name}_floor")
    m.d.comb += floor.eq(Mux(p_sticky, _floor_marker(m, rc, T, f"{name}_c", lo_c),
                             _floor_marker(m, rp, T, f"{name}_p", lo_p)))
    return floor, None


def _room_aligned(al, room_lo):
    """An :class:`Aligned` built with ``floor_room``: its ``floor`` field holds the
    room; moved to ``room`` for :func:`floor_marker`."""
    return dataclasses.replace(al, floor=None, room=al.floor, room_lo=room_lo)


def floor_marker(m, al, name="s"):
    """Decode the floor marker (:func:`lzc_floor`) of an :class:`Aligned` built with
    ``floor_room``: one equality decode a window bit, two LUT levels, off the
    adder's carry chains when built beside them."""
    T = len(Value.cast(al.pwin))
    return _floor_marker(m, al.room, T, f"{name}_f", al.room_lo)


def _align_place(m, p, c, ec0, p_sticky, floor, sh, fc, name, pipe, prefix=None):
    """The second part of :func:`align` (and :func:`align_packed`): both operands
    placed in the window, the addend by its barrel shift, then its sticky OR.

    ``prefix``: the prefix ORs of ``c.sig`` (bit ``j``: any of bits ``0..j``),
    built before; then the sticky is not an OR tree after the shift but rides the
    shifter: the word shifted carries, ``top`` zero bits above the addend, the
    sticky of every shift amount (``V[s]``: any bit of ``c.sig`` that a shift by
    ``s`` moves below the window), and bit ``V[sh]`` comes out where ``V``
    started, one mux a level beside the addend's."""
    PW = len(Value.cast(p.mag))
    CW = fc.man_bits + 1
    L = CW + 3
    dmax = PW + 3
    T = L + dmax + CW + 1
    top = L + dmax + CW
    pwin = Signal(T, name=f"{name}_pwin")
    m.d.comb += pwin.eq(Mux(p_sticky, (p.mag != 0).as_unsigned(),
                            Value.cast(p.mag) << L))
    # c aligned: placed at L + dmax, shifted right by sh; CW extra bits below for sticky
    cbig = Cat(Const(0, L + dmax + CW), Value.cast(c.sig))
    if prefix is not None:
        nb = len(cbig)
        vstk = Cat(Const(0, L + dmax), Value.cast(prefix), Value.cast(prefix)[-1])
        cbig = Cat(cbig, Const(0, top), vstk)
    cshift = Signal(len(cbig), name=f"{name}_cshift")
    rest = (pwin, p.sign, c.sign, p_sticky, ec0, Value.cast(p.exp0),
            p.is_zero, c.is_zero, p.is_inf, c.is_inf, p.is_nan, c.is_nan, floor)
    with _carry(pipe, *rest) as carried:
        m.d.comb += cshift.eq(shift_levels(m, cbig, sh, left=False, pipe=pipe,
                                           name=f"{name}_al"))
        cshift_ = _cut(pipe, f"{name}_al.stk", cshift)
    (pwin, p_sign, c_sign, p_sticky, ec0, p_exp0, p_zero, c_zero, p_inf, c_inf, p_nan,
     c_nan, floor) = carried.values
    cwin = Signal(T, name=f"{name}_cwin")
    if prefix is not None:
        m.d.comb += cwin.eq(Cat(cshift_[nb + top], cshift_[CW + 1:CW + T]))
    else:
        m.d.comb += cwin.eq(Cat(cshift_[CW] | cshift_[:CW].any(),
                                cshift_[CW + 1:CW + T]))
        _charge(pipe, lambda fab: fab.reduce(CW + 1))
    return Aligned(pwin, cwin, p_sign, c_sign, p_sticky, ec0, p_exp0, L, dmax,
                   p_zero, c_zero, p_inf, c_inf, p_nan, c_nan, floor)


@dataclass
class AlignPre:
    """What :func:`align_packed` needs of ``p`` alone, computed before a loop."""
    a: Value            # p.exp0 + dmax + bias + M: the addend's shift is a - ef1
    b: Value            # a - top - 1: b - ef1 >= 0 when the shift exceeds top
    rp: Value = None    # lzc_floor's room of p's anchoring (with emin)


def align_pre(m, p, fc, name="s", pipe=None, emin=None):
    """The exponent terms of :func:`align` that depend on ``p`` alone (one carry
    chain), for :func:`align_packed`: a loop whose addend is a loop-carried
    accumulator builds them before the loop, outside it."""
    fc = get_format(fc)
    PW = len(Value.cast(p.mag))
    CW = fc.man_bits + 1
    L, dmax = CW + 3, PW + 3
    T = L + dmax + CW + 1
    top = L + dmax + CW
    e = Value.cast(p.exp0)
    k = dmax + fc.bias + fc.man_bits
    w = max(len(e), (k + top + 1).bit_length() + 1, (T + abs(emin or 0)).bit_length() + 1) + 2
    a = Signal(signed(w), name=f"{name}_pa")
    b = Signal(signed(w), name=f"{name}_pb")
    m.d.comb += [a.eq(e + k), b.eq(e + (k - top - 1))]
    rp = None
    if emin is not None:
        rp = Signal(signed(w), name=f"{name}_roomp")
        m.d.comb += rp.eq(e + (T - 1 - L - emin))
    _charge(pipe, lambda fab: fab.carry(w))
    return AlignPre(a, b, rp)


def exp_field_min1(code, fc):
    """``max(efield, 1)`` of a packed code of ``fc`` (a subnormal's exponent field
    is that of emin): :func:`align_packed`'s ``ef1``."""
    fc = get_format(fc)
    efield = Value.cast(code)[fc.man_bits:fc.man_bits + fc.exp_bits]
    return Cat(efield[0] | (efield == 0), efield[1:])


def align_packed(m, p, code, fc, pre, name="s", pipe=None, emin=None, p_bounds=None,
                 prefix_sticky=False, ef1=None, floor_room=False, cls=None):
    """:func:`align` of ``p`` and an addend given as a packed code of ``fc``, with
    ``pre`` from :func:`align_pre`: the unpacking, the exponent difference and the
    shift clamp fuse into one carry chain (three side by side) and a mux. With
    ``ef1 = max(efield, 1)`` (a subnormal's exponent field is that of emin) the
    addend's exponent is ``ef1 - bias``, so :func:`align`'s ``delta > dmax`` is
    ``a - ef1 < 0`` and its shift ``dmax - delta`` is ``a - ef1`` (``a`` from
    ``pre``); the rest is :func:`align` exactly.

    ``prefix_sticky``: the addend's sticky rides its shifter (``_align_place``'s
    ``prefix``), from prefix ORs of its significand built here beside the chains:
    no OR tree between the shifter and the adder's low half. ``ef1``: the code's
    :func:`exp_field_min1`, built before (a loop stores it beside the code): the
    chains then start from it, with no LUT level in front. ``floor_room``: as
    :func:`align`'s (the marker's room, for :func:`floor_marker` beside the adder).
    ``cls``: the code's :func:`code_class` as a 4-bit value ``Cat(nrm, is_zero,
    is_inf, is_nan)``, built before (a loop stores it beside the code): the
    unpacking is then wires, with no field-wide AND in this stage."""
    fc = get_format(fc)
    E, M = fc.exp_bits, fc.man_bits
    PW = len(Value.cast(p.mag))
    CW = M + 1
    L, dmax = CW + 3, PW + 3
    T = L + dmax + CW + 1
    top = L + dmax + CW
    # unpack's sign, significand and class flags; its exponent (a subtract) is not
    # used: the exponent field enters the chains below directly
    if cls is None:
        c = unpack(m, code, fc, name=name + "_c")
    else:
        code, cls = Value.cast(code), Value.cast(cls)
        c = Unpacked(code[fc.bits - 1], None, Cat(code[:M], cls[0]), cls[1], cls[2],
                     cls[3])
    given = ef1 is not None
    if not given:
        ef1 = exp_field_min1(code, fc)
    ws = max(len(Value.cast(pre.a)), E + 2) + 1
    sh_raw = Signal(signed(ws), name=f"{name}_shraw")
    big = Signal(signed(ws), name=f"{name}_big")
    ec0 = Signal(signed(ws), name=f"{name}_ec0")
    m.d.comb += [sh_raw.eq(pre.a - ef1), big.eq(pre.b - ef1),
                 ec0.eq(ef1 - (fc.bias + M))]
    rc, rp = None, pre.rp
    if emin is not None:
        rc = Signal(signed(ws + 2), name=f"{name}_roomc")
        m.d.comb += rc.eq(ef1 + (T - 1 - L - dmax - emin - fc.bias - M))
    # a LUT level (ef1, the flags), then the chains side by side; a fine cut point
    # may sit before the clamp's muxes
    prefix = None
    if not prefix_sticky:
        _charge(pipe, lambda fab: fab.lut + fab.carry(ws))
    else:
        # any of c.sig's bits 0..j, for every j: an OR tree each, beside the chains
        sig = Value.cast(c.sig)
        prefix = Signal(len(sig), name=f"{name}_cpre")
        m.d.comb += prefix.eq(Cat(*(sig[:j + 1].any() for j in range(len(sig)))))
        with pipe.parallel():
            pipe.charge((0 if given else pipe.fab.lut) + pipe.fab.carry(ws))
            pipe.charge(pipe.fab.reduce(len(sig)))
    with _carry(pipe, p, c, ec0, rc, rp, prefix) as cc:
        sh_raw, big = _cut(pipe, f"{name}_al.raw", sh_raw, big)
    p, c, ec0, rc, rp, prefix = cc.values
    p_sticky = Signal(name=f"{name}_psticky")
    m.d.comb += p_sticky.eq((sh_raw < 0) | p.is_zero)
    sh = Signal(range(top + 1), name=f"{name}_sh")
    m.d.comb += sh.eq(Mux(p_sticky, 0, Mux(big >= 0, top, sh_raw)))
    floor = room_lo = None
    if emin is not None:
        lo_c = (fc.emin - M) + (T - 1 - L - dmax - emin)
        lo_p = None if p_bounds is None else p_bounds + (T - 1 - L - emin)
        floor, room_lo = _floor_select(m, p_sticky, (rc, lo_c), (rp, lo_p), T, name,
                                       floor_room)
    # the clamp's muxes; beside them the markers: a room-wide equality decode per
    # bit (two LUT levels), then the mux by p_sticky
    _charge(pipe, lambda fab: fab.luts(2 if emin is None or floor_room else 3))
    with _carry(pipe, p, c, ec0, p_sticky, floor, prefix) as cc:
        sh = _cut(pipe, f"{name}_al.sh", sh)
    *vals, prefix = cc.values
    al = _align_place(m, *vals, sh, fc, name, pipe, prefix=prefix)
    return _room_aligned(al, room_lo) if floor_room and emin is not None else al


def window_exp_min(p_exp0_min, T, fc, L, dmax):
    """The lowest exponent an emin-clamped normalize (:func:`fixed_lzc` with the
    floor of :func:`align`) hands the rounder for a window of ``T`` bits: ``emin``
    of ``fc`` when the window's MSB never weighs less (the rounder then needs no
    subnormal shifter), else None. Bit 0 weighs at least
    ``min(p_exp0_min - L, ec0_min - L - dmax)`` (see :func:`align`)."""
    fc = get_format(fc)
    bit0 = min(p_exp0_min - L, fc.emin - fc.man_bits - L - dmax)
    return fc.emin if bit0 + T - 1 >= fc.emin else None


@dataclass
class SwapPre:
    """The exponent terms of :func:`align_swap` that do not depend on the product's
    leading-zero count: built before (the FMA: beside the product's LZC), each then
    one subtract of the count away (six short carry chains side by side)."""
    base: Value     # ep - ec before the count: p.exp0 + PW - 1 - c.exp
    base_lo: Value  # base - S: d >= S (p far above c) is base_lo - count >= 0
    base_hi: Value  # base + S: -d >= S (p far below c) is count - base_hi >= 0
    e0p: Value      # window bit 0's weight when p anchors, before the count
    e0c: Value      # ... when c anchors
    rp: Value       # lzc_floor's room (window MSB weight - emin) when p anchors, before the count
    rc: Value       # ... when c anchors


def swap_exps(m, p, c, fc, name="s", pipe=None):
    """:class:`SwapPre` of a product ``p`` (:class:`Fixed`, not normalized) and an
    addend ``c`` (:class:`Unpacked`) of ``fc``: one carry chain deep."""
    fc = get_format(fc)
    PW = len(Value.cast(p.mag))
    W = max(PW, fc.man_bits + 1)
    S = W + 3
    e, ec = Value.cast(p.exp0), Value.cast(c.exp)
    w = max(len(e), len(ec), (abs(fc.emin) + PW + W + 8).bit_length() + 1) + 2
    names = ("base", "base_lo", "base_hi", "e0p", "e0c", "rp", "rc")
    sigs = [Signal(signed(w), name=f"{name}_{n}") for n in names]
    m.d.comb += [s.eq(v) for s, v in zip(sigs, (
        e - ec + (PW - 1), e - ec + (PW - 1 - S), e - ec + (PW - 1 + S),
        e + (PW - 1 - (W + 2)), ec - (W + 2),
        e + (PW - fc.emin), ec + (1 - fc.emin)))]
    _charge(pipe, lambda fab: fab.carry(w))
    return SwapPre(*sigs)


def align_swap(m, cp, c, fc, pre, name="s", pipe=None):
    """Place an exact product and an addend of ``fc`` in one narrow window, the
    operand with the larger exponent anchoring it (an adder's swap): the FMA's
    alignment, for a product of any width.

    ``cp``: the product (:class:`Fixed`, ``PW`` bits) with its leading-zero count
    (:func:`fixed_lzc`, no floor); ``c``: the addend (:class:`Unpacked`, its
    significand ``CW = man_bits + 1`` bits, exponent ``emin`` when subnormal or
    zero); ``pre``: :func:`swap_exps` of the two. Both significands are taken as
    ``W = max(PW, CW)`` bits, MSB at the top: the product normalized by its count
    (its MSB weighs ``ep = p.exp0 + PW - 1 - count``), the addend as it is (MSB
    weight ``ec``). Window, ``T = W + 4`` bits, bit 0 weighing ``big - (W + 2)``::

        [ carry | anchor's W bits | 3 guard bits ]

    The product anchors when ``d = ep - ec > 0`` (and it is not zero), else the
    addend; the other is shifted right by ``|d|`` (clamped at ``S = W + 3``, where
    it is all below), the bits below bit 0 ORed into bit 0 (sticky). Exact to the
    rounding of the sum to ``fc``, by the adder's argument:

    * ``|d| <= 1``: the shifted operand fits (it has at most ``W`` bits, moved at
      most 1 into 3 guard bits): the sum is exact, cancellation included.
    * ``|d| >= 2`` and the anchor normalized (the product always; the addend when
      normal): the sum is above half the anchor's MSB weight, so its rounding point
      is at most ``CW`` bits below that and the sticky lies 2+ bits under it.
    * the addend anchors subnormal or zero (``ec = emin``, ``ep < emin``): the sum
      is below ``2**(emin + 1)``, rounded on the subnormal grid ``2**(emin - M)``,
      which the window's guard bits lie under.

    The window's MSB weighs ``big + 1 > emin`` (``ec >= emin``, and the product
    anchors only above it), so an emin-clamped normalize (:func:`floor_marker` of
    the ``room`` returned) hands the rounder ``exp >= emin``: no subnormal shifter.
    Specials ride along swapped, for :func:`add_aligned`: its ``p`` is the anchor.

    Timing: the count enters six short chains side by side (the shift amount both
    ways, both clamps, the window's exponent and room) beside the product's
    normalizing shift (fine cut points ``<name>_pn.k``), then the clamp and the swap
    (two LUT levels, a cut point ``<name>_al.sh`` after them), the shifted operand's
    barrel shift (``<name>_al.k``) and its sticky OR (``<name>_al.stk`` before it).
    """
    fc = get_format(fc)
    p, count = cp.x, Value.cast(cp.count)
    PW = len(Value.cast(p.mag))
    CW = fc.man_bits + 1
    W = max(PW, CW)
    S = W + 3
    T = W + 4
    wd = len(Value.cast(pre.base)) + 2
    d, rd, dk, rdk, e0p, rp = (Signal(signed(wd), name=f"{name}_{n}")
                               for n in ("d", "rd", "dk", "rdk", "e0pn", "rpn"))
    m.d.comb += [d.eq(pre.base - count), rd.eq(count - pre.base),
                 dk.eq(pre.base_lo - count), rdk.eq(count - pre.base_hi),
                 e0p.eq(pre.e0p - count), rp.eq(pre.rp - count)]
    # the chains start from the count beside the shifter's first level (as
    # normalize_shift's exponent) and end before the first cut it may take
    width = PW * pipe.spread if pipe is not None and pipe.wide else None
    _charge(pipe, lambda fab: max(0.0, fab.carry(wd) - fab.shift_level(width)))
    pf = (p.sign, p.is_zero, p.is_inf, p.is_nan)
    cf = (c.sign, c.is_zero, c.is_inf, c.is_nan, c.sig)
    with _carry(pipe, pf, cf, d, rd, dk, rdk, e0p, rp, pre.e0c, pre.rc) as cc:
        pn = shift_levels(m, p.mag, count, left=True, pipe=pipe, name=f"{name}_pn")
    pf, cf, d, rd, dk, rdk, e0p, rp, e0c, rc = cc.values
    (p_sign, p_zero, p_inf, p_nan), (c_sign, c_zero, c_inf, c_nan, c_sig) = pf, cf
    pbig = Signal(name=f"{name}_pbig")
    m.d.comb += pbig.eq(rd[-1] & ~p_zero)
    sh = Signal(range(S + 1), name=f"{name}_sh")
    m.d.comb += sh.eq(Mux(pbig, Mux(dk[-1], d, S), Mux(rdk[-1], rd, S)))
    psig = Cat(Const(0, W - PW), pn)            # MSB-aligned, W bits
    csig = Cat(Const(0, W - CW), Value.cast(c_sig))
    return _swap_place(m, pbig, sh, psig, (p_sign, p_zero, p_inf, p_nan), csig,
                       (c_sign, c_zero, c_inf, c_nan), e0p, e0c, rp, rc, W, wd, name,
                       pipe)


def _swap_place(m, pbig, sh, psig, pf, csig, cf, e0p, e0c, rp, rc, W, wd, name, pipe):
    """The second part of :func:`align_swap` (and :func:`align_swap_packed`): the
    swap of the two ``W``-bit significands (MSB-aligned) by ``pbig`` (the product
    anchors), the clamp's shift ``sh`` of the other, its sticky OR; ``pf``, ``cf``:
    each operand's ``(sign, zero, inf, nan)``; ``e0p``/``e0c`` and ``rp``/``rc``:
    the window bit 0's weight and the floor's room of either anchoring."""
    T = W + 4
    (p_sign, p_zero, p_inf, p_nan), (c_sign, c_zero, c_inf, c_nan) = pf, cf
    sw = lambda x, y: Mux(pbig, x, y)           # noqa: E731
    big, small = Signal(W, name=f"{name}_big"), Signal(W, name=f"{name}_small")
    m.d.comb += [big.eq(sw(psig, csig)), small.eq(sw(csig, psig))]
    flags = [(sw(x, y), sw(y, x)) for x, y in ((p_sign, c_sign), (p_zero, c_zero),
                                                (p_inf, c_inf), (p_nan, c_nan))]
    (bs, ss), (bz, sz), (bi, si), (bn, sn) = flags
    e0 = Signal(signed(wd), name=f"{name}_e0")
    room = Signal(signed(wd), name=f"{name}_room")
    m.d.comb += [e0.eq(sw(e0p, e0c)), room.eq(sw(rp, rc))]
    _charge(pipe, lambda fab: fab.luts(2))
    rest = (big, bs, ss, bz, sz, bi, si, bn, sn, e0, room)
    with _carry(pipe, *rest) as cc:
        sh, small = _cut(pipe, f"{name}_al.sh", sh, small)
        word = Signal(2 * W + 3, name=f"{name}_word")
        m.d.comb += word.eq(shift_levels(m, Cat(Const(0, W + 3), small), sh, left=False,
                                         pipe=pipe, name=f"{name}_al"))
        word = _cut(pipe, f"{name}_al.stk", word)
    big, bs, ss, bz, sz, bi, si, bn, sn, e0, room = cc.values
    cwin = Signal(T, name=f"{name}_cwin")
    m.d.comb += cwin.eq(Cat(word[W] | word[:W].any(), word[W + 1:], Const(0, 1)))
    _charge(pipe, lambda fab: fab.reduce(W + 1))
    pwin = Cat(Const(0, 3), big, Const(0, 1))
    return Aligned(pwin, cwin, bs, ss, Const(0, 1), Const(0, signed(2)), e0, 0, 0,
                   bz, sz, bi, si, bn, sn, room=room, room_lo=1)


@dataclass
class SwapX:
    """An exact operand normalized before a loop (:func:`swap_pre_packed`), for
    :func:`align_swap_packed`: its significand MSB-aligned in ``W`` bits, its flags
    ``(sign, zero, inf, nan)``, and the exponent terms of the swap that do not
    depend on the addend (``ep`` its MSB's weight, ``S = W + 3`` the clamp)."""
    sig: Value
    flags: tuple
    a: Value        # ep + bias: the exponent difference d = ep - ec is a - ef1
    a_lo: Value     # a - S: d >= S is a_lo - ef1 >= 0
    a_hi: Value     # a + S: -d >= S is ef1 - a_hi >= 0
    e0p: Value      # the window's bit 0 weight when x anchors: ep - (W + 2)
    rp: Value       # lzc_floor's room when x anchors: ep + 1 - emin
    W: int


def swap_pre_packed(m, x, fc, name="s", pipe=None):
    """:func:`align_swap`'s product side, before a loop whose addend is a packed
    code of ``fc`` carried by the loop (:func:`.accum.fp_accumulate`): ``x``
    (:class:`Fixed`) normalized by its leading-zero count (fine cut points
    ``<name>_pn_lzc.k``, ``<name>_pn.k``), and the exponent terms that depend on it
    alone, five short carry chains beside the shift. Returns a :class:`SwapX`."""
    fc = get_format(fc)
    PW = len(Value.cast(x.mag))
    W = max(PW, fc.man_bits + 1)
    S = W + 3
    cp = fixed_lzc(x, m=m, pipe=pipe, name=f"{name}_pn")
    x, count = cp.x, Value.cast(cp.count)
    e = Value.cast(x.exp0)
    w = max(len(e), (abs(fc.emin) + fc.bias + PW + W + 8).bit_length() + 1) + 2
    names = ("xa", "xalo", "xahi", "e0pn", "rpn")
    a, a_lo, a_hi, e0p, rp = (Signal(signed(w), name=f"{name}_{n}") for n in names)
    k = PW - 1 + fc.bias
    m.d.comb += [a.eq(e + k - count), a_lo.eq(e + (k - S) - count),
                 a_hi.eq(e + (k + S) - count), e0p.eq(e + (PW - 1 - (W + 2)) - count),
                 rp.eq(e + (PW - fc.emin) - count)]
    width = PW * pipe.spread if pipe is not None and pipe.wide else None
    _charge(pipe, lambda fab: max(0.0, fab.carry(w) - fab.shift_level(width)))
    flags = (x.sign, x.is_zero, x.is_inf, x.is_nan)
    with _carry(pipe, flags, a, a_lo, a_hi, e0p, rp) as cc:
        pn = shift_levels(m, x.mag, count, left=True, pipe=pipe, name=f"{name}_pn")
    flags, a, a_lo, a_hi, e0p, rp = cc.values
    return SwapX(Cat(Const(0, W - PW), pn), flags, a, a_lo, a_hi, e0p, rp, W)


def align_swap_packed(m, xs, code, fc, ef1, cls, name="s", pipe=None):
    """:func:`align_swap` of an operand normalized before the loop (``xs``, a
    :class:`SwapX`) and an addend given as a packed code of ``fc`` with its
    :func:`exp_field_min1` ``ef1`` and :func:`code_class` ``cls`` (``Cat(nrm, zero,
    inf, nan)``), a loop's accumulator and what it stores beside it. The addend's
    MSB weighs ``ec = ef1 - bias`` (a subnormal's and a zero's: ``emin``), so the
    exponent difference and both clamps are one subtract of ``ef1`` each (five
    short chains side by side), its floor's room ``ec + 1 - emin`` is ``ef1``
    itself; a fine cut point ``<name>_al.raw`` may follow the chains, then
    :func:`align_swap`'s clamp, swap, shift and sticky, the same window of
    ``W + 4`` bits (exact to the rounding of the sum: :func:`align_swap`); for a
    fast clock a fine cut point ``<name>_al.win`` after it."""
    fc = get_format(fc)
    E, M = fc.exp_bits, fc.man_bits
    W, S = xs.W, xs.W + 3
    code, cls, ef1 = Value.cast(code), Value.cast(cls), Value.cast(ef1)
    c_sig = Cat(code[:M], cls[0])
    cf = (code[fc.bits - 1], cls[1], cls[2], cls[3])
    wd = max(len(Value.cast(xs.a)), E + 2) + 1
    d, rd, dk, rdk, e0c = (Signal(signed(wd), name=f"{name}_{n}")
                           for n in ("d", "rd", "dk", "rdk", "e0c"))
    m.d.comb += [d.eq(xs.a - ef1), rd.eq(ef1 - xs.a), dk.eq(xs.a_lo - ef1),
                 rdk.eq(ef1 - xs.a_hi), e0c.eq(ef1 - (fc.bias + W + 2))]
    rc = Signal(signed(wd), name=f"{name}_rc")
    m.d.comb += rc.eq(ef1)
    _charge(pipe, lambda fab: fab.carry(wd))
    with _carry(pipe, xs.sig, xs.flags, c_sig, cf, xs.e0p, xs.rp, rc) as cc:
        d, rd, dk, rdk, e0c = _cut(pipe, f"{name}_al.raw", d, rd, dk, rdk, e0c)
    psig, pf, c_sig, cf, e0p, rp, rc = cc.values
    pbig = Signal(name=f"{name}_pbig")
    m.d.comb += pbig.eq(rd[-1] & ~pf[1])
    sh = Signal(range(S + 1), name=f"{name}_sh")
    m.d.comb += sh.eq(Mux(pbig, Mux(dk[-1], d, S), Mux(rdk[-1], rd, S)))
    csig = Cat(Const(0, W - M - 1), c_sig)
    al = _swap_place(m, pbig, sh, psig, pf, csig, cf, e0p, e0c, rp, rc, W, wd, name,
                     pipe)
    # in a loop no core cut point follows the window (the FMA's ``align``): for a
    # clock whose period the sticky's OR tree and the add's low chain together do
    # not meet (5.6 ns on ECP5: the lane sums' floor near 147 MHz), a fine one here
    # parts them (only then: below it the plans keep their registers elsewhere)
    fmax = getattr(getattr(pipe, "core", None), "_pipe_fmax", None)
    if fmax is not None and 1000.0 / fmax - pipe.fab.reg < (
            pipe.fab.reduce(W + 1) + pipe.fab.carry((W + 5) // 2 + 1)):
        al = pipe.cut(f"{name}_al.win", al)
    return al


def add_aligned(m, a, name="s", pipe=None, split_hi=False, nonneg=False):
    """The second half of :func:`align_add`: the signed add of an :class:`Aligned`.

    ``nonneg``: both operands are magnitudes (their signs taken as +, as the
    callers' ``magnitude`` option clears them): the add alone, no differences, a
    +0 or positive result (two zeros give +0), NaN only from a NaN operand; its
    count is then :func:`carry_count`'s.

    An effective subtraction computes both differences side by side and keeps the
    non-negative one (one carry chain deep, not subtract-then-negate). With
    ``pipe``, a fine cut point (``<name>_add.lo``) may split the chains in halves;
    with ``split_hi`` a second one (``<name>_add.hi``) follows the chains, before
    the selection between the three sums (for a clock whose stage holds a half
    chain but not the selection after it; it registers all three sums), and an
    exact zero is then taken from the chains' borrows and the operands' flags
    instead of a window-wide equality beside the low half."""
    pwin, cwin = Value.cast(a.pwin), Value.cast(a.cwin)
    T = len(pwin)
    if nonneg:
        return _add_magnitudes(m, a, pwin, cwin, T, name, pipe, split_hi)
    # zero beside the adder, from its inputs: equal operands of a subtraction, or
    # two zero operands of an addition
    if not (split_hi and pipe is not None and pipe.will_cut(f"{name}_add.lo")):
        zero = Signal(name=f"{name}_zero")
        m.d.comb += zero.eq(Mux(a.p_sign ^ a.c_sign, pwin == cwin, (pwin | cwin) == 0))
        zero_now = True
    else:
        # split_hi with the chains split: zero from the chains' borrows, after them
        # (p - c >= 0 and c - p >= 0), and from the operands' flags for an addition
        # (a nonzero operand leaves a nonzero window: placed or as its sticky); the
        # window-wide equality is four LUT levels and more than a half chain
        zero_now = False
        # the result's sign for each outcome of the borrows, before the chains
        # (from the flags alone): after them one 5-input select, not the zero,
        # then the zero's sign, then the Inf's (four LUT levels behind the chain
        # on iCE40, measured in the FMA at --fmax 50); ``zero`` holds them till then
        zero = _signs_by_borrow(a)
    # a fine cut point splits the three carry chains in halves: the low halves and
    # their carries (borrows) are registered, the high halves take them as carry-in
    h = (T + 1) // 2
    point = f"{name}_add.lo"
    diff = Signal(signed(T + 1), name=f"{name}_diff")
    rdiff = Signal(T, name=f"{name}_rdiff")
    total = Signal(T, name=f"{name}_total")
    if pipe is not None and pipe.will_cut(point):
        lo_d = Signal(h + 1, name=f"{name}_lod")      # bit h: borrow out
        lo_r = Signal(h + 1, name=f"{name}_lor")
        lo_t = Signal(h + 1, name=f"{name}_lot")      # bit h: carry out
        m.d.comb += [lo_d.eq(pwin[:h] - cwin[:h]), lo_r.eq(cwin[:h] - pwin[:h]),
                     lo_t.eq(pwin[:h] + cwin[:h])]
        pipe.charge(pipe.fab.carry(h + 1))
        with pipe.carry(a, zero) as c:
            lo_d, lo_r, lo_t = pipe.cut(point, lo_d, lo_r, lo_t)
        a, zero = c.values
        pwin, cwin = Value.cast(a.pwin), Value.cast(a.cwin)
        ph, ch = pwin[h:], cwin[h:]
        d_hi = Signal(signed(T - h + 1), name=f"{name}_dhi")
        r_hi = Signal(signed(T - h + 1), name=f"{name}_rhi")
        # x - y - borrow as one carry chain: the borrow enters as the LSB of the
        # subtrahend under a zero LSB of the minuend ((2x - 2y - b) >> 1), so
        # synthesis maps no second (decrement) chain behind the first
        m.d.comb += [
            d_hi.eq((Cat(Const(0, 1), ph) - Cat(lo_d[h], ch))[1:]),
            r_hi.eq((Cat(Const(0, 1), ch) - Cat(lo_r[h], ph))[1:]),
            diff.eq(Cat(lo_d[:h], d_hi)),
            rdiff.eq(Cat(lo_r[:h], r_hi[:T - h])),
            total.eq(Cat(lo_t[:h], ph + ch + lo_t[h])),
        ]
        rneg = r_hi[T - h]
        pipe.charge(pipe.fab.carry(T - h + 1))
    else:
        m.d.comb += [diff.eq(pwin - cwin), rdiff.eq(cwin - pwin), total.eq(pwin + cwin)]
        if pipe is not None:        # charged as the split adder (a probe plans it)
            pipe.charge(pipe.fab.carry(h + 1))
            pipe.cut(point)
            pipe.charge(pipe.fab.carry(T - h + 1))
    if pipe is not None and split_hi:
        if zero_now:
            with pipe.carry(a, zero) as c:
                diff, rdiff, total = pipe.cut(f"{name}_add.hi", diff, rdiff, total)
            a, zero = c.values
        else:
            with pipe.carry(a, rneg, zero) as c:
                diff, rdiff, total = pipe.cut(f"{name}_add.hi", diff, rdiff, total)
            a, rneg, (e1, e01, e00) = c.values
            dneg = Value.cast(diff)[T]
            zero = Signal(name=f"{name}_zero")
            m.d.comb += zero.eq(Mux(a.p_sign ^ a.c_sign, ~dneg & ~rneg, a.p_zero & a.c_zero))
            final_sign = Mux(dneg, e1, Mux(rneg, e01, e00))
    if pipe is not None:
        pipe.charge(pipe.fab.luts(2))         # the selection, the sign
    sub = a.p_sign ^ a.c_sign
    mag = Signal(T, name=f"{name}_mag")
    neg = diff[T]          # the sign bit (a compare with 0 lints UNSIGNED once Yosys
    #                        proves a window's difference never negative)
    m.d.comb += mag.eq(Mux(sub, Mux(neg, rdiff, diff[:T]), total))
    if zero_now:
        sign = Signal(name=f"{name}_sign")
        m.d.comb += sign.eq(Mux(sub & neg, a.c_sign, a.p_sign))

    exp0 = _window_exp0(m, a, name)
    is_nan = a.p_nan | a.c_nan | (a.p_inf & a.c_inf & sub)
    is_inf = a.p_inf | a.c_inf
    if not zero_now:
        return Fixed(final_sign, mag, exp0, zero, is_inf, is_nan)
    both_zero = a.p_zero & a.c_zero
    zsign = Mux(both_zero, a.p_sign & a.c_sign, 0)
    out_sign = Mux(zero, zsign, sign)
    inf_sign = Mux(a.p_inf, a.p_sign, a.c_sign)
    return Fixed(Mux(is_inf, inf_sign, out_sign), mag, exp0, zero, is_inf, is_nan)


def _add_magnitudes(m, a, pwin, cwin, T, name, pipe, split_hi):
    """:func:`add_aligned` with ``nonneg``: one carry chain (split in halves at the
    fine cut point ``<name>_add.lo``, a second one ``<name>_add.hi`` after it with
    ``split_hi``, as the signed add's); the zero from the operands' flags (a nonzero
    operand leaves a nonzero window, placed or as its sticky)."""
    h = (T + 1) // 2
    total = Signal(T, name=f"{name}_total")
    if pipe is not None and pipe.will_cut(f"{name}_add.lo"):
        lo_t = Signal(h + 1, name=f"{name}_lot")      # bit h: carry out
        m.d.comb += lo_t.eq(pwin[:h] + cwin[:h])
        pipe.charge(pipe.fab.carry(h + 1))
        with pipe.carry(a) as c:
            lo_t = pipe.cut(f"{name}_add.lo", lo_t)
        a = c.values[0]
        pwin, cwin = Value.cast(a.pwin), Value.cast(a.cwin)
        m.d.comb += total.eq(Cat(lo_t[:h], pwin[h:] + cwin[h:] + lo_t[h]))
        pipe.charge(pipe.fab.carry(T - h + 1))
    else:
        m.d.comb += total.eq(pwin + cwin)
        if pipe is not None:
            pipe.charge(pipe.fab.carry(h + 1))
            pipe.cut(f"{name}_add.lo")
            pipe.charge(pipe.fab.carry(T - h + 1))
    if pipe is not None and split_hi:
        with pipe.carry(a) as c:
            total = pipe.cut(f"{name}_add.hi", total)
        a = c.values[0]
    return Fixed(Const(0, 1), total, _window_exp0(m, a, name), a.p_zero & a.c_zero,
                 a.p_inf | a.c_inf, a.p_nan | a.c_nan)


def _window_exp0(m, a, name):
    """The weight of bit 0 of an :class:`Aligned` window's sum: ``2**(p.exp0 - L)``,
    unless c anchors the window (at ``L + dmax``)."""
    ec0, L, dmax = Value.cast(a.ec0), a.L, a.dmax
    exp0 = Signal(signed(max(len(Value.cast(a.p_exp0)), len(ec0)) + 2), name=f"{name}_exp0")
    m.d.comb += exp0.eq(Mux(a.p_sticky, ec0 - (L + dmax), a.p_exp0 - L))
    return exp0


def _signs_by_borrow(a):
    """:func:`add_aligned`'s result sign from an :class:`Aligned`'s flags alone, for
    each outcome of its chains' borrows: ``(e1, e01, e00)`` for ``p - c < 0``;
    ``p - c >= 0`` and ``c - p < 0`` (a nonzero difference); both ``>= 0`` (a zero
    difference). An addition's sign does not depend on them (all three equal)."""
    sub = a.p_sign ^ a.c_sign
    both_zero = a.p_zero & a.c_zero
    zsign = Mux(both_zero, a.p_sign & a.c_sign, 0)     # +0 unless two zeros
    add_sign = Mux(both_zero, zsign, a.p_sign)
    is_inf = a.p_inf | a.c_inf
    inf_sign = Mux(a.p_inf, a.p_sign, a.c_sign)
    return tuple(Mux(is_inf, inf_sign, Mux(sub, s, add_sign))
                 for s in (a.c_sign, a.p_sign, zsign))


def product_to_unpacked(m, p, fmt, name="u", pipe=None):
    """The product of two normalized significands (:func:`multiply` of operands
    whose MSBs are set, or zero) as an :class:`Unpacked` for rounding into ``fmt``:
    its leading one is at the MSB or the bit below, so the normalize is one 2:1 mux
    on the MSB, not an LZC and a shifter; the significand is cut to ``M + 3`` bits
    (the top ``M + 2`` after the normalize and the sticky OR of the rest, as
    :func:`sticky_compress`), which the OR tree builds beside the mux. The result
    may fall below ``emin``: round it with the subnormal shifter
    (:func:`round_decide`'s ``exp_min`` None)."""
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    mag = Value.cast(p.mag)
    W = len(mag)
    keep = f.man_bits + 3                       # the top bits read after the mux
    exp_top = p.exp0 + (W - 1)                  # the weight of the MSB
    if W <= keep:                               # a narrow product: zeros below it
        mag = Cat(Const(0, keep + 1 - W), mag)
        W = keep + 1
    top = mag[W - keep:]
    stk = Signal(name=f"{name}_stk")
    m.d.comb += stk.eq(mag[:W - keep].any())
    msb = mag[-1]
    sig = Signal(keep, name=f"{name}_sig")
    # MSB set: the top M + 2 bits and the sticky with the last kept bit ORed in;
    # else the M + 2 bits below the MSB and the sticky
    m.d.comb += sig.eq(Mux(msb, Cat(stk | top[0], top[1:]), Cat(stk, top[:-1])))
    exp = Signal(signed(len(Value.cast(p.exp0)) + 1), name=f"{name}_exp")
    m.d.comb += exp.eq(exp_top - ~msb)
    _charge(pipe, lambda fab: max(fab.fanout(keep) + fab.lut,
                                  fab.reduce(W - keep) + fab.lut,
                                  fab.carry(len(exp))))
    return Unpacked(p.sign, exp, sig, p.is_zero, p.is_inf, p.is_nan)


def fixed_to_unpacked(m, x, name="u", emin=None, pipe=None):
    """Normalize a :class:`Fixed` into an :class:`Unpacked` (MSB set) for rounding:
    :func:`fixed_lzc` then :func:`counted_to_unpacked` (a pipeline may cut between).
    ``emin``: clamp the shift so the exponent stays at or above it (see
    :func:`fixed_lzc`)."""
    return counted_to_unpacked(m, fixed_lzc(x, m=m, emin=emin, pipe=pipe, name=name),
                               name=name, pipe=pipe)


@dataclass
class Counted:
    """A :class:`Fixed` with its leading-zero count, between the two halves of
    :func:`fixed_to_unpacked` (a pipeline may cut here)."""
    x: Fixed
    count: Value


def lzc_floor(m, x, emin, name="u", pipe=None):
    """The marker of :func:`fixed_lzc`'s clamp: a one-hot word with its bit at the
    weight ``emin`` inside ``x.mag`` (the MSB when ``emin`` is above the window,
    nothing when below it). It depends on the exponent only, so a core builds it
    beside the sum (in parallel with the adder) and registers it with the sum."""
    W = len(Value.cast(x.mag))
    top = Value.cast(x.exp0) + (W - 1)
    # top - emin: as wide as top or as emin needs (a narrow window's top next to
    # fp32's emin -126 wrapped around, marking the MSB)
    room = Signal(signed(max(len(top), abs(emin).bit_length() + 1) + 2),
                  name=f"{name}_room")
    m.d.comb += room.eq(top - emin)
    _charge(pipe, lambda fab: fab.carry(len(room)) + fab.luts(2))
    return _floor_marker(m, room, W, name)


def _floor_marker(m, room, W, name, lo=None):
    """One-hot ``W``-bit marker at the weight ``emin``, ``room = top - emin``;
    ``lo`` (a Python int, optional) is the lowest ``room`` can be: bits it never
    reaches are constant zeros."""
    lo = -1 if lo is None else lo
    marker = Signal(W, name=f"{name}_marker")
    # bit i weighs top - (W - 1 - i): set where that is emin, i.e. room == W - 1 - i
    bits = [room == (W - 1 - i) if W - 1 - i >= lo else Const(0, 1) for i in range(W - 1)]
    m.d.comb += marker.eq(Cat(*bits, room <= 0 if lo <= 0 else Const(0, 1)))
    return marker


def fixed_lzc(x, *, m=None, emin=None, floor=None, pipe=None, name="u"):
    """First half of :func:`fixed_to_unpacked`: the leading-zero count.

    With ``emin`` (the target format's smallest normal exponent), or with its
    marker ``floor`` from :func:`lzc_floor`, the count is clamped to ``top - emin``
    (``top`` the weight of the MSB of ``mag``): the marker bit ORed in at the weight
    ``emin`` stops the count there, so a result that would fall below ``emin`` comes
    out as the subnormal significand at exponent ``emin``, and the rounder needs no
    right shift (its ``exp_min``). A window whose MSB is below ``emin`` gets the
    marker at its MSB (count 0): the rounder shifts right then.
    """
    mag = Value.cast(x.mag)
    if floor is None and emin is not None:
        floor = lzc_floor(m, x, emin, name=name)
    if floor is not None:
        mag = mag | floor
        _charge(pipe, lambda fab: fab.floor_or)
    with _carry(pipe, x) as c:
        _, count = lzc(mag, pipe=pipe, name=f"{name}_lzc", m=m)
    return Counted(c.values[0], count)


def carry_count(x, *, m, name="u", pipe=None):
    """:func:`fixed_lzc` of an effective addition's sum on :func:`align_swap`'s
    window (``add_aligned(..., nonneg=True)``): 0 when the sum carried into the
    window's MSB, else 1, in one LUT level. The anchor's MSB is the bit below the
    carry and the sum is at least the anchor, so a normalized anchor leaves its MSB
    there or above; an anchor that is not normalized (the addend subnormal or
    zero) has exponent ``emin`` there, where the clamped count stops (its floor
    marker, room 1): both give the count the clamped LZC gives."""
    mag = Value.cast(x.mag)
    count = Signal(name=f"{name}_cnt")
    m.d.comb += count.eq(~mag[-1])
    # the carry steers the shift's mux in every bit of the window: a broadcast
    _charge(pipe, lambda fab: fab.fanout(len(mag)))
    return Counted(x, count)


def counted_to_unpacked(m, cx, name="u", pipe=None, round_fmt=None):
    """Second half of :func:`fixed_to_unpacked`: the normalizing shift.

    ``round_fmt`` (with ``pipe``): also build the rounder's exponent bases beside the
    shift (:func:`normalize_shift`'s ``round_emin``) and return ``(u, ebase)``, for
    :func:`round_decide`'s ``ebase``."""
    x = cx.x
    mag = Value.cast(x.mag)
    W = len(mag)
    emin = None if round_fmt is None or pipe is None else get_format(round_fmt).emin
    with _carry(pipe, x.sign, x.is_zero, x.is_inf, x.is_nan) as c:
        out = normalize_shift(m, mag, x.exp0 + (W - 1), cx.count, name=name,
                              pipe=pipe, round_emin=emin)
    u = Unpacked(*c.values[:1], out[1], out[0], *c.values[1:])
    if round_fmt is None:
        return u
    return u, (out[2] if emin is not None else None)


def round_band(m, fmt, value, lsb, lo1, *, pipe, exp_shape_, is_zero=Const(0, 1),
               name="n"):
    """A non-negative integer ``value`` (bit 0 weighs ``2**lsb``) rounded into
    ``fmt`` (RNE) and packed, when its leading one, unless it is zero, is at bit
    ``lo1`` or above: the leading-zero count covers only the bits from ``lo1`` up
    and the normalizing shift only their count, and the bits more than
    ``man_bits + 2`` below ``lo1`` become one sticky bit (the window sum's total,
    :class:`.wsum.WindowSum`; the fused update's product, :class:`.newton.NewtonStep`).
    The result must be normal or zero: no subnormal shifter (``exp_min`` is emin).
    The core's cut points ``lzc``, ``norm`` and ``round`` sit between the steps."""
    f = get_format(fmt)
    value = Value.cast(value)
    keep = max(0, lo1 - (f.man_bits + 2))
    mag = value if keep == 0 else Cat(value[:keep] != 0, value[keep:])
    exp0 = Signal(exp_shape_, name=f"{name}_exp0")
    # mag's bit 0 is the sticky, one below value's bit keep
    m.d.comb += exp0.eq(lsb + keep - (1 if keep else 0))
    x = Fixed(Const(0, 1), mag, exp0, is_zero, Const(0, 1), Const(0, 1))
    with pipe.carry(x) as cx_:
        _, count = lzc(value[lo1:], pipe=pipe, name=f"{name}_lzc", m=m)
    cx = pipe.cut("lzc", Counted(cx_.values[0], count))
    u, eb = counted_to_unpacked(m, cx, name=name, pipe=pipe, round_fmt=f)
    u, eb = pipe.cut("norm", u, eb)
    d = round_decide(m, f, u, exp_min=f.emin, name="r", pipe=pipe, ebase=eb)
    d = pipe.cut("round", d)
    r = round_apply(m, d, name="r", pipe=pipe)
    return pack(m, f, r, name="o", pipe=pipe)


def kulisch_width(fa, fb, max_terms):
    """Width and LSB exponent of a two's-complement fixed-point (Kulisch)
    accumulator that sums ``max_terms`` products of ``fa`` x ``fb`` exactly.

    LSB: the weight of the smallest product bit, ``(emin_a - Ma) + (emin_b - Mb)``
    (0 for int8). Width: the bound ``max_terms * max|a*b|`` in LSB units, its bit
    length, plus one sign bit. Examples at max_terms=1024: e4m3 x e4m3 47 bits
    (LSB 2**-18), e5m2 x e5m2 75 bits, bf16 x bf16 533 bits (LSB 2**-266),
    int8 x int8 26 bits (|a*b| <= 2**14).
    """
    fa, fb = get_format(fa), get_format(fb)
    if fa.kind == "int":
        return (max_terms * (1 << 14)).bit_length() + 1, 0
    lsb = (fa.emin - fa.man_bits) + (fb.emin - fb.man_bits)

    def max_sig(f):                       # largest finite significand, hidden bit set
        return (1 << f.man_bits) | (f.max_mag_code & ((1 << f.man_bits) - 1))
    top = (max_sig(fa) * max_sig(fb)) << (fa.emax - fa.man_bits + fb.emax - fb.man_bits - lsb)
    return (max_terms * top).bit_length() + 1, lsb


def to_fixed(m, p, lsb, width, name="k"):
    """Place an exact product (:class:`Fixed`) into a two's-complement fixed-point
    word of ``width`` bits whose bit 0 weighs ``2**lsb``. Zero, Inf and NaN products
    contribute 0 (their flags travel separately)."""
    exp0 = Value.cast(p.exp0)
    sh = Signal(range(max(2, width)), name=f"{name}_sh")
    m.d.comb += sh.eq(exp0 - lsb)
    mag = Signal(width, name=f"{name}_mag")
    live = ~(p.is_inf | p.is_nan)
    m.d.comb += mag.eq(Mux(live, Value.cast(p.mag) << sh, 0))
    out = Signal(signed(width), name=f"{name}_fx")
    m.d.comb += out.eq(Mux(p.sign, -mag, mag))
    return out


def to_fixed_lanes(m, prods, lsb, width, name="k", pipe=None):
    """:func:`to_fixed` of several lanes side by side, built level by level so a
    pipeline may cut between the levels of their shifters (``name.k``) and before
    the negation (``name.neg``), one register row across all lanes.

    Lanes 1.. come out in ones' complement (a negative lane is ``~mag``, an XOR the
    LUTs after the shifter absorb, instead of a carry chain each) and the +1 each
    owes is returned as a carry bit, for :func:`sum_tree` to take as its adders'
    carry-ins (exact: ``~mag + 1 == -mag`` in ``width`` bits, and a lane-sum tree of
    L lanes has L - 1 adders for the L - 1 carries); lane 0 negates. Returns
    ``(outs, carries)``."""
    sign, shs, mags = [], [], []
    for k, p in enumerate(prods):
        sh = Signal(range(max(2, width)), name=f"{name}{k}_sh")
        m.d.comb += sh.eq(Value.cast(p.exp0) - lsb)
        shs.append(sh)
        # Inf and NaN products contribute 0: gated on the narrow product, before the
        # shifter (the sign too), not on the shifted word
        ok = ~(p.is_inf | p.is_nan)
        sign.append(p.sign & ok)
        mag = Mux(ok, Value.cast(p.mag), 0)
        mags.append(Cat(mag, Const(0, max(0, width - len(mag))))[:width])
    _charge(pipe, lambda fab: fab.carry(len(Value.cast(prods[0].exp0)) + 1))
    nbits = len(shs[0])
    for j in range(nbits):
        step = 1 << j
        nxt = []
        for k, v in enumerate(mags):
            lv = Signal(width, name=f"{name}{k}_l{j}")
            m.d.comb += lv.eq(Mux(shs[k][j], Cat(Const(0, step), v[:width - step])
                                  if step < width else Const(0, width), v))
            nxt.append(lv)
        mags = nxt
        if pipe is not None:
            pipe.charge(pipe.fab.shift_level())
            point = f"{name}.{j + 1}" if j + 1 < nbits else f"{name}.neg"
            mags, shs, sign = (list(x) for x in pipe.cut(
                point, tuple(mags), tuple(shs), tuple(sign)))
    outs, cins = [], []
    for k, mag in enumerate(mags):
        out = Signal(signed(width), name=f"{name}{k}_fx")
        if k > 0:
            neg = Signal(name=f"{name}{k}_cin")
            m.d.comb += [neg.eq(sign[k]),
                         out.eq(mag ^ neg.replicate(width))]
            cins.append(neg)
        else:
            m.d.comb += out.eq(Mux(sign[k], -mag, mag))
        outs.append(out)
    _charge(pipe, lambda fab: fab.carry(width) + fab.lut)      # lane 0's negation
    if pipe is not None:
        cut = pipe.cut(f"{name}.out", *outs, *cins)
        cut = list(cut) if len(outs) + len(cins) > 1 else [cut]
        outs, cins = cut[:len(outs)], cut[len(outs):]
    return outs, cins


def sum_tree(m, values, width, name="t", signed_=True, pipe=None, carries=(),
             leaf_bits=None):
    """Balanced adder tree of signed ``values`` into ``width`` bits (the caller sizes
    ``width`` so nothing overflows). With ``pipe`` it may be cut between its levels
    (``name.k``). ``carries``: one-bit values added as the adders' carry-ins (one
    per adder, in the same carry chain; at most ``len(values) - 1``).

    ``leaf_bits``: every value fits in ``leaf_bits`` bits (signed, or unsigned
    without ``signed_``); an adder of level ``k`` (1 at the leaves) is then
    ``leaf_bits + k`` bits wide, not ``width``: two values of ``w`` bits plus a
    carry-in fit in ``w + 1`` (signed: ``2 * -2**(w-1)`` to ``2 * (2**(w-1) - 1) + 1``),
    so no level wraps, whatever the carries, and sign extension into the next level
    is exact. Levels reaching ``width`` stay ``width`` bits (modulo ``2**width``, as
    without ``leaf_bits``)."""
    level = [Value.cast(v) for v in values]
    pool = [Value.cast(c) for c in carries]
    assert len(pool) <= max(0, len(level) - 1), "more carries than adders"
    k = 0
    while len(level) > 1:
        nxt = []
        w = width if leaf_bits is None else min(width, leaf_bits + k + 1)
        shape = signed(w) if signed_ else unsigned(w)
        for i in range(0, len(level) - 1, 2):
            s = Signal(shape, name=f"{name}{k}_{i // 2}")
            if pool:
                # the carry-in as an unsigned one-bit addend of the sum already
                # extended to w bits (mod 2**w: the same value): Yosys' alumacc then
                # makes each adder one $alu with the carry as its CI and, the
                # addends' signedness differing, does not merge the levels between
                # two cuts into one carry-save $macc (its full adders cost two LUT4s
                # a bit a level, a carry chain level one: MXDot e4m3 x32 at 100 MHz
                # on ECP5, 10,253 -> 9,912 LUTs)
                s0 = Signal(shape, name=f"{name}{k}_{i // 2}s")
                m.d.comb += [s0.eq(level[i] + level[i + 1]),
                             s.eq((s0.as_unsigned() + pool.pop(0))[:w])]
            else:
                m.d.comb += s.eq(level[i] + level[i + 1])
            nxt.append(s)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        k += 1
        if pipe is not None:
            pipe.charge(pipe.fab.carry(width))
            if len(level) > 1:
                cut = list(pipe.cut(f"{name}.{k}", *level, *pool))
                level, pool = cut[:len(level)], cut[len(level):]
    out = Signal(signed(width) if signed_ else unsigned(width), name=f"{name}_sum")
    m.d.comb += out.eq(level[0])
    return out


def fixed_from_signed(m, s, lsb, *, is_nan, is_inf, inf_sign, zero_sign, name="f",
                      pipe=None):
    """A two's-complement fixed-point sum as a sign-magnitude :class:`Fixed`; an
    exact zero takes ``zero_sign`` (IEEE: negative only if every term was -0)."""
    s = Value.cast(s)
    _charge(pipe, lambda fab: fab.carry(len(s)) + fab.lut)
    neg = s < 0
    mag = Signal(len(s), name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(neg, -s, s))
    zero = s == 0
    sign = Mux(is_inf, inf_sign, Mux(zero, zero_sign, neg))
    return Fixed(sign, mag, Const(lsb, signed(max(2, abs(lsb).bit_length() + 2))), zero,
                 is_inf, is_nan)
