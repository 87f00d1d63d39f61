"""Compositions of the shared blocks of :mod:`.fp` that IterNorm needs: a fused
multiply-add with a power-of-two product scale, an adder, a rounded product.

Nothing here rounds on its own: each function is ``multiply -> align_add ->
fixed_to_unpacked -> round_pack`` (or a subset), i.e. exactly one RNE rounding of
the exact result, the hardware twin of ``golden.iternorm.fx_fma``.
"""

from amaranth.hdl import Signal, Value, signed

from lpcores.formats import get_format

from .fp import Fixed, align_add, fixed_to_unpacked, multiply, round_pack

__all__ = ["fma", "add", "mul", "as_fixed"]


def _scaled(m, p, shift, name):
    """The product ``p`` times ``2**shift`` (``shift`` a constant or a signed value):
    exact, only the exponent moves."""
    if isinstance(shift, int) and shift == 0:
        return p
    exp0 = Value.cast(p.exp0)
    e = Signal(signed(len(exp0) + 2), name=f"{name}_e0")
    m.d.comb += e.eq(exp0 + shift)
    return Fixed(p.sign, p.mag, e, p.is_zero, p.is_inf, p.is_nan)


def fma(m, a, fa, b, fb, c, fc, *, shift=0, name="fma"):
    """Code of ``RNE_fc(a * b * 2**shift + c)``; ``a``, ``b``, ``c`` are
    :class:`.fp.Unpacked` of formats ``fa``, ``fb``, ``fc``; the result is in ``fc``."""
    p = _scaled(m, multiply(m, a, fa, b, fb, name=f"{name}_p"), shift, name)
    s = align_add(m, p, c, fc, name=f"{name}_s")
    u = fixed_to_unpacked(m, s, name=f"{name}_u")
    return round_pack(m, fc, u, name=f"{name}_r")


def as_fixed(u, fmt):
    """An unpacked float as an exact :class:`.fp.Fixed` (for an addition)."""
    f = get_format(fmt)
    return Fixed(u.sign, u.sig, Value.cast(u.exp) - f.man_bits, u.is_zero, u.is_inf,
                 u.is_nan)


def add(m, a, b, fmt, *, fa=None, name="add"):
    """Code of ``RNE_fmt(a + b)``, both :class:`.fp.Unpacked` of ``fmt`` (or ``a`` of
    format ``fa``, e.g. a narrower input added to an internal value)."""
    s = align_add(m, as_fixed(a, fa or fmt), b, fmt, name=f"{name}_s")
    u = fixed_to_unpacked(m, s, name=f"{name}_u")
    return round_pack(m, fmt, u, name=f"{name}_r")


def mul(m, a, fa, b, fb, fout, *, name="mul"):
    """Code of ``RNE_fout(a * b)`` (one rounding of the exact product)."""
    p = multiply(m, a, fa, b, fb, name=f"{name}_p")
    u = fixed_to_unpacked(m, p, name=f"{name}_u")
    return round_pack(m, fout, u, name=f"{name}_r")
