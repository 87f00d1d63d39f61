"""Microscaling (MX) building blocks shared by ``MXQuant`` and ``MXDot``.

Everything here composes the blocks of :mod:`.fp`; nothing rounds on its own:

* :func:`unpack_elem` is :func:`.fp.unpack` plus MXINT8 (Q1.6) as an unpacked float;
* :func:`quantize_elem` rounds a value once into an element format with
  :func:`.fp.round_sig` and packs it with :func:`.fp.pack` (saturating). Ties away
  from zero is :func:`.fp.round_sig`'s RNE with its sticky input forced to 1, and
  MXINT8's Q1.6 grid is bf16's subnormal grid shifted by 2**127 (derivations at
  each function);
* :func:`mx_block_width` sizes the exact per-block (32-term) accumulator.
"""

from amaranth.hdl import Const, Mux, Signal, Value, signed

from lpcores.errors import check_choice
from lpcores.formats import get_format

from .fp import Unpacked, _table, pack, round_sig, sticky_compress, unpack

__all__ = ["MX_ELEM_FORMATS", "EMAX_ELEM", "MX_ROUNDINGS", "BLOCK", "unpack_elem",
           "unpack_elem_biased",
           "quantize_elem", "quantize_compress", "elem_lsb", "mx_block_width", "INT8_FRAC"]

BLOCK = 32
MX_ELEM_FORMATS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8")
MX_ROUNDINGS = ("rne", "away")
#: exponent of the element format's largest normal (SPEC §4.3)
EMAX_ELEM = {"e4m3": 8, "e5m2": 15, "e3m2": 4, "e2m3": 2, "e2m1": 2, "int8": 0}
INT8_FRAC = 6                       # MXINT8 elements are Q1.6: value = int8 * 2**-6
INT8_MAX = 127                      # the quantizer clamps symmetrically


def unpack_elem(m, code, fmt, name="x", pipe=None):
    """:func:`.fp.unpack` for float element formats; for ``int8`` (Q1.6) an
    :class:`.fp.Unpacked` with an 8-bit significand ``|x|`` (128 for -128) and
    ``exp = 1``: ``value = sig * 2**(exp - 7) = |x| * 2**-6``. With the int8 registry
    entry's ``man_bits = 7`` that is exactly what :func:`.fp.multiply` expects of a
    format with 8-bit significands, so int8 products need no code of their own."""
    f = get_format(fmt)
    if f.kind != "int":
        return unpack(m, code, f, name=name, pipe=pipe)
    if pipe is not None:
        pipe.charge(pipe.fab.carry(8) + pipe.fab.lut)     # |x|: a negation, a mux
    code = Value.cast(code)
    sign = code[7]
    sig = Signal(8, name=f"{name}_sig")
    m.d.comb += sig.eq(Mux(sign, -code.as_signed(), code))
    return Unpacked(sign, Const(1, signed(3)), sig, code == 0, Const(0, 1), Const(0, 1))


def unpack_elem_biased(m, code, fmt, name="x", pipe=None):
    """:func:`unpack_elem` whose ``exp`` is biased to be unsigned: ``exp - ebias``
    with ``ebias = elem_lsb(fmt) + man_bits`` (``emin`` for a float format, 1 for
    int8), so ``sig * 2**(exp + ebias - man_bits)`` is the value. For an exponent
    field of up to four bits it is a table of the field, ``max(e, 1) - 1`` (one LUT
    level a bit): a product's place in a block word whose LSB is the smallest
    product bit is then the sum of its two operands' biased exponents, one adder of
    two unsigned addends, where ``ea + eb - (Ma + Mb) - lsb`` is three (with a
    constant) that synthesis maps to full adders and a chain."""
    f = get_format(fmt)
    u = unpack_elem(m, code, f, name=name, pipe=pipe)
    bias = elem_lsb(f) + f.man_bits
    if f.kind == "int":
        exp = Const(0, 1)                                 # exp is the constant 1
    elif f.exp_bits <= 4:
        efield = Value.cast(code)[f.man_bits:f.man_bits + f.exp_bits]
        exp = _table(m, efield, lambda e: max(e, 1) - 1, f.exp_bits, name=f"{name}_expb")
    else:
        exp = Signal(f.exp_bits, name=f"{name}_expb")  # max(e, 1) - 1 <= 2**E - 2
        m.d.comb += exp.eq(Value.cast(u.exp) - bias)
    return Unpacked(u.sign, exp, u.sig, u.is_zero, u.is_inf, u.is_nan)


def elem_lsb(fmt):
    """Weight exponent of an element format's smallest bit (int8: -6)."""
    f = get_format(fmt)
    return -INT8_FRAC if f.kind == "int" else f.emin - f.man_bits


def mx_block_width(fa, fb, terms=BLOCK):
    """(width, lsb) of a two's-complement word that sums ``terms`` products of
    ``fa`` x ``fb`` exactly. LSB: the smallest product bit; width: the bit length of
    ``terms * max|a*b|`` in LSB units plus a sign bit. For float pairs this is
    :func:`.fp.kulisch_width`; int8 (Q1.6, |x| <= 128) may pair with any format.
    32-term examples: e4m3 x e4m3 42 bits (LSB 2**-18), e2m1 x e2m1 14,
    e5m2 x e5m2 70, int8 x int8 21 (LSB 2**-12)."""
    fa, fb = get_format(fa), get_format(fb)

    def top(f):               # (largest significand, its exponent of bit 0)
        if f.kind == "int":
            return 128, -INT8_FRAC
        return (1 << f.man_bits) | (f.max_mag_code & ((1 << f.man_bits) - 1)), \
            f.emax - f.man_bits
    (sa, ea), (sb, eb) = top(fa), top(fb)
    lsb = elem_lsb(fa) + elem_lsb(fb)
    return (terms * ((sa * sb) << (ea + eb - lsb))).bit_length() + 1, lsb


def quantize_compress(m, u, fmt, name="q", pipe=None):
    """``u``'s significand cut to what :func:`quantize_elem` into ``fmt`` reads (its
    rounder's top bits and one sticky bit, :func:`.fp.sticky_compress`; MXINT8
    rounds on bf16's grid). Same result, narrower registers and shifter after it."""
    f = get_format(fmt)
    return sticky_compress(m, "bf16" if f.kind == "int" else f, u, name=name, pipe=pipe)


def quantize_elem(m, u, fmt, rounding="rne", name="q", pipe=None):
    """Round an unpacked finite value ``u`` (significand MSB set, or zero) once into
    element format ``fmt``, saturating to ±max; returns the element code.

    Ties away from zero: :func:`.fp.round_sig` rounds up when
    ``rbit & (sticky | lsb)``; with ``sticky = 1`` that is ``rbit``: up exactly when
    the dropped part is at least one half, which is round-half-away on a magnitude.

    MXINT8 (Q1.6, clamp ±127): the result is ``n = round(|t| * 64)``. For ``|t| < 2``
    (always true here: the shared exponent makes ``|t| < 2**(emax_elem + 1) = 2``),
    ``|t| * 2**-127 < 2**-126`` lies in bf16's subnormal range, whose grid is
    ``2**-133``, so bf16's magnitude code of ``t * 2**-127`` *is* ``n`` (up to 128, the
    smallest normal, when rounding carries). ``round_sig(bf16)`` does that rounding;
    the clamp to 127 and the two's complement follow.

    ``pipe``: charge the delays and offer the rounder's fine cut points
    (:func:`.fp.round_sig`, clock-directed pipelining); the rounder then takes its
    exponent candidates straight from the exponent (``shallow``).
    """
    f = get_format(fmt)
    check_choice("rounding", rounding, MX_ROUNDINGS)
    sticky = Const(1, 1) if rounding == "away" else Const(0, 1)
    if f.kind != "int":
        r = round_sig(m, f, u, sticky, rounding="rne", name=name, pipe=pipe,
                      shallow=pipe is not None)
        return pack(m, f, r, saturate=True, name=f"{name}_p", pipe=pipe)
    exp = Value.cast(u.exp)
    e2 = Signal(signed(len(exp) + 2), name=f"{name}_e127")
    m.d.comb += e2.eq(exp - 127)
    if pipe is not None:
        pipe.charge(pipe.fab.carry(len(e2)))
        with pipe.carry(u) as c:
            e2 = pipe.cut(f"{name}.e", e2)
        (u,) = c.values
    r = round_sig(m, "bf16", Unpacked(u.sign, e2, u.sig, u.is_zero, u.is_inf, u.is_nan),
                  sticky, rounding="rne", name=name, pipe=pipe,
                  shallow=pipe is not None)
    if pipe is not None:
        # the compare with 127 and the negation, side by side, then the muxes
        r = pipe.cut(f"{name}_p.in", r)
        pipe.charge(pipe.fab.carry(8) + pipe.fab.luts(2))
    mag = Signal(8, name=f"{name}_mag")
    n = Value.cast(r.mag)[:8]
    # r's sign and zero flag are u's, registered with it at the rounder's cuts
    m.d.comb += mag.eq(Mux(r.is_zero, 0, Mux(n > INT8_MAX, INT8_MAX, n)))
    code = Signal(8, name=f"{name}_code")
    m.d.comb += code.eq(Mux(r.sign, -mag, mag))
    return code
