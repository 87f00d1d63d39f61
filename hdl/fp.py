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

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed, unsigned

from lpcores.errors import check_choice
from lpcores.formats import FLOAT_FORMATS, get_format

__all__ = ["Unpacked", "Rounded", "Fixed", "Aligned", "Counted", "exp_shape", "unpack",
           "lzc", "normalize", "normalize_shift", "round_sig", "pack", "round_pack",
           "multiply", "align_add", "align", "add_aligned", "fixed_lzc",
           "counted_to_unpacked",
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


def unpack(m, code, fmt, exp_shape_=None, name="x"):
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
    m.d.comb += [
        exp.eq(Mux(sub, f.emin, efield - f.bias)),
        sig.eq(Cat(mfield, ~sub)),
    ]
    all_ones = efield == (1 << E) - 1
    if f.specials == "ieee":
        is_inf = all_ones & (mfield == 0)
        is_nan = all_ones & (mfield != 0)
    elif f.specials == "fn":
        is_inf = Const(0)
        is_nan = all_ones & (mfield == (1 << M) - 1)
    else:
        is_inf = is_nan = Const(0)
    return Unpacked(sign, exp, sig, sub & (mfield == 0), is_inf, is_nan)


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


def lzc(value):
    """Leading-zero count of ``value`` by a log-depth tree.

    Returns ``(all_zero, count)``; ``count`` is only meaningful when not all zero.
    """
    value = Value.cast(value)
    w = len(value)
    n = 1
    while n < w:
        n *= 2
    bits = [value[i] for i in reversed(range(w))] + [Const(0, 1)] * (n - w)
    return _lzc_tree(bits)


def normalize(m, sig, exp, name="n"):
    """Shift ``sig`` left until its MSB is set and lower ``exp`` to match.

    Returns ``(sig_n, exp_n, is_zero)``; the exponent shape grows by enough bits for
    the largest shift. (:func:`lzc` then :func:`normalize_shift`; a pipeline may cut
    between the two.)
    """
    sig = Value.cast(sig)
    zero, count = lzc(sig)
    return (*normalize_shift(m, sig, exp, count, name=name), zero)


def normalize_shift(m, sig, exp, count, name="n"):
    """The second half of :func:`normalize`: shift by a leading-zero ``count``;
    returns ``(sig_n, exp_n)``."""
    sig = Value.cast(sig)
    w = len(sig)
    ew = len(Value.cast(exp)) + max(1, w.bit_length())
    sig_n = Signal(w, name=f"{name}_sig")
    exp_n = Signal(signed(ew), name=f"{name}_exp")
    m.d.comb += [
        sig_n.eq((sig << count)[:w]),
        exp_n.eq(exp - count),
    ]
    return sig_n, exp_n


@dataclass
class Rounded:
    """A value rounded to a format's precision, not yet packed (see round_sig)."""
    sign: Value
    mag: Value          # magnitude code, meaningful when not overflow/special
    overflow: Value
    is_zero: Value
    is_inf: Value
    is_nan: Value


def round_sig(m, fmt, u, sticky=Const(0, 1), *, rounding="rne", name="r"):
    """Round an unpacked value once to the precision of ``fmt`` (SPEC §2).

    Precondition: ``u.sig``'s MSB is set, or ``u.exp <= fmt.emin`` (a subnormal that
    the input did not normalize). ``sticky`` ORs in nonzero bits below ``u.sig``.

    Derivation. With ``M = man_bits`` the result's LSB has weight
    ``2**(max(exp, emin) - M)``: shift ``sig`` right by ``d = max(0, emin - exp)``
    (clamped to ``M + 2``: beyond that every bit is sticky and the round bit is 0),
    keep its top ``M + 1`` bits ``n``, round with the next bit and the sticky OR of the
    rest. Then the magnitude code is ``((max(exp, emin) - emin) << M) + n``: for a
    normal result ``n`` carries the hidden bit, which adds the one missing from the
    biased exponent; for a subnormal ``n < 2**M``; a rounding carry out of ``n`` walks
    into the exponent field by itself. Overflow is that code exceeding the largest
    finite magnitude code, or ``exp > emax``.
    """
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    check_choice("rounding", rounding, ROUNDINGS)
    M = f.man_bits
    sig = Value.cast(u.sig)
    W = len(sig)
    exp = Value.cast(u.exp)

    under = exp < f.emin
    dmax = M + 2
    d_raw = Signal(unsigned(len(exp) + 1), name=f"{name}_d_raw")
    m.d.comb += d_raw.eq(Mux(under, f.emin - exp, 0))
    d = Signal(range(dmax + 1), name=f"{name}_d")
    m.d.comb += d.eq(Mux(d_raw > dmax, dmax, d_raw))

    wide = Cat(Const(0, dmax), sig)                  # W + M + 2 bits, nothing lost
    shifted = Signal(W + dmax, name=f"{name}_shifted")
    m.d.comb += shifted.eq(wide >> d)
    top = W + dmax
    mant = shifted[top - (M + 1):top]
    rbit = shifted[top - (M + 2)]
    stk = shifted[:top - (M + 2)].any() | sticky
    if rounding == "rne":
        up = rbit & (stk | mant[0])
    else:
        up = Const(0, 1)
    n = Signal(M + 2, name=f"{name}_n")
    m.d.comb += n.eq(mant + up)

    ebits = f.exp_bits + 2
    e_off = Signal(ebits, name=f"{name}_eoff")     # max(exp, emin) - emin, if in range
    m.d.comb += e_off.eq(Mux(under, 0, exp - f.emin))
    mag = Signal(ebits + M + 1, name=f"{name}_mag")
    m.d.comb += mag.eq((e_off << M) + n)
    overflow = Signal(name=f"{name}_ovf")
    m.d.comb += overflow.eq((exp > f.emax) | (mag > f.max_mag_code))
    return Rounded(u.sign, mag[:f.bits - 1], overflow, u.is_zero, u.is_inf, u.is_nan)


def pack(m, fmt, r, *, rounding="rne", saturate=False, name="p"):
    """Pack a :class:`Rounded` value into a code of ``fmt``, applying the special
    value and overflow rules of SPEC §2 (and the project's decisions in
    docs/numerics.md): NaN gives the canonical positive NaN (formats without NaN:
    the sign-only code, as ml_dtypes); Inf gives Inf, NaN for e4m3, max for formats
    without Inf; overflow gives Inf (IEEE), NaN (e4m3) or max (no specials), and
    max under RTZ or ``saturate``.
    """
    f = get_format(fmt, param="fmt", allowed=FLOAT_FORMATS)
    B = f.bits
    sbit = Value.cast(r.sign) << (B - 1)
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
    return out


def round_pack(m, fmt, u, sticky=Const(0, 1), *, rounding="rne", saturate=False,
               name="r"):
    """:func:`round_sig` then :func:`pack`, with no register between them."""
    r = round_sig(m, fmt, u, sticky, rounding=rounding, name=name)
    return pack(m, fmt, r, rounding=rounding, saturate=saturate, name=f"{name}_p")


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


def multiply(m, ua, fa, ub, fb, name="p"):
    """Exact product of two unpacked floats (significands not normalized).

    ``mag`` has ``(Ma + 1) + (Mb + 1)`` bits; ``exp0 = ea + eb - Ma - Mb``. Specials:
    NaN if either is NaN or Inf x 0; Inf if either is Inf; zero if either is zero.
    """
    fa, fb = get_format(fa), get_format(fb)
    ea, eb = Value.cast(ua.exp), Value.cast(ub.exp)
    shape = exp_shape((fa.emin + fb.emin - fa.man_bits - fb.man_bits - 1,
                       fa.emax + fb.emax + 1))
    exp0 = Signal(shape, name=f"{name}_exp0")
    mag = Signal(len(Value.cast(ua.sig)) + len(Value.cast(ub.sig)), name=f"{name}_mag")
    m.d.comb += [
        exp0.eq(ea + eb - (fa.man_bits + fb.man_bits)),
        mag.eq(ua.sig * ub.sig),
    ]
    is_nan = ua.is_nan | ub.is_nan | (ua.is_inf & ub.is_zero) | (ua.is_zero & ub.is_inf)
    return Fixed(ua.sign ^ ub.sign, mag, exp0, ua.is_zero | ub.is_zero,
                 ua.is_inf | ub.is_inf, is_nan)


def align_add(m, p, c, fc, name="s"):
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
    return add_aligned(m, align(m, p, c, fc, name=name), name=name)


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


def align(m, p, c, fc, name="s"):
    """The first half of :func:`align_add`: place ``p`` and ``c`` in the window."""
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
    # a zero product must not anchor the window either: then c alone is placed
    p_sticky = (delta > dmax) | p.is_zero
    sh = Signal(range(top + 1), name=f"{name}_sh")
    with m.If(p_sticky):
        m.d.comb += sh.eq(0)
    with m.Elif(delta < dmax - top):
        m.d.comb += sh.eq(top)
    with m.Else():
        m.d.comb += sh.eq(dmax - delta)

    # c aligned: placed at L + dmax, shifted right by sh; CW extra bits below for sticky
    cbig = Cat(Const(0, L + dmax + CW), Value.cast(c.sig))
    cshift = Signal(len(cbig), name=f"{name}_cshift")
    m.d.comb += cshift.eq(cbig >> sh)
    cwin = Signal(T, name=f"{name}_cwin")
    m.d.comb += cwin.eq(Cat(cshift[CW] | cshift[:CW].any(), cshift[CW + 1:CW + T]))
    pwin = Signal(T, name=f"{name}_pwin")
    m.d.comb += pwin.eq(Mux(p_sticky, (p.mag != 0).as_unsigned(),
                            Value.cast(p.mag) << L))
    return Aligned(pwin, cwin, p.sign, c.sign, p_sticky, ec0, Value.cast(p.exp0), L, dmax,
                   p.is_zero, c.is_zero, p.is_inf, c.is_inf, p.is_nan, c.is_nan)


def add_aligned(m, a, name="s"):
    """The second half of :func:`align_add`: the signed add of an :class:`Aligned`."""
    pwin, cwin = Value.cast(a.pwin), Value.cast(a.cwin)
    T = len(pwin)
    sub = a.p_sign ^ a.c_sign
    diff = Signal(signed(T + 1), name=f"{name}_diff")
    mag = Signal(T, name=f"{name}_mag")
    sign = Signal(name=f"{name}_sign")
    with m.If(sub):
        m.d.comb += diff.eq(pwin - cwin)
        m.d.comb += [mag.eq(Mux(diff < 0, -diff, diff)),
                     sign.eq(Mux(diff < 0, a.c_sign, a.p_sign))]
    with m.Else():
        m.d.comb += [mag.eq(pwin + cwin), sign.eq(a.p_sign)]

    # bit 0 weighs 2**(p.exp0 - L), unless c anchors the window (at L + dmax)
    ec0, L, dmax = Value.cast(a.ec0), a.L, a.dmax
    exp0 = Signal(signed(max(len(Value.cast(a.p_exp0)), len(ec0)) + 2), name=f"{name}_exp0")
    m.d.comb += exp0.eq(Mux(a.p_sticky, ec0 - (L + dmax), a.p_exp0 - L))
    zero = mag == 0
    both_zero = a.p_zero & a.c_zero
    zsign = Mux(both_zero, a.p_sign & a.c_sign, 0)
    out_sign = Mux(zero, zsign, sign)
    is_nan = a.p_nan | a.c_nan | (a.p_inf & a.c_inf & sub)
    is_inf = a.p_inf | a.c_inf
    inf_sign = Mux(a.p_inf, a.p_sign, a.c_sign)
    return Fixed(Mux(is_inf, inf_sign, out_sign), mag, exp0, zero, is_inf, is_nan)


def fixed_to_unpacked(m, x, name="u"):
    """Normalize a :class:`Fixed` into an :class:`Unpacked` (MSB set) for rounding:
    :func:`fixed_lzc` then :func:`counted_to_unpacked` (a pipeline may cut between)."""
    return counted_to_unpacked(m, fixed_lzc(x), name=name)


@dataclass
class Counted:
    """A :class:`Fixed` with its leading-zero count, between the two halves of
    :func:`fixed_to_unpacked` (a pipeline may cut here)."""
    x: Fixed
    count: Value


def fixed_lzc(x):
    """First half of :func:`fixed_to_unpacked`: the leading-zero count."""
    _, count = lzc(x.mag)
    return Counted(x, count)


def counted_to_unpacked(m, cx, name="u"):
    """Second half of :func:`fixed_to_unpacked`: the normalizing shift."""
    x = cx.x
    mag = Value.cast(x.mag)
    W = len(mag)
    sig, exp = normalize_shift(m, mag, x.exp0 + (W - 1), cx.count, name=name)
    return Unpacked(x.sign, exp, sig, x.is_zero, x.is_inf, x.is_nan)


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


def sum_tree(m, values, width, name="t"):
    """Balanced adder tree of signed ``values`` into ``width`` bits (the caller sizes
    ``width`` so nothing overflows)."""
    level = [Value.cast(v) for v in values]
    k = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            s = Signal(signed(width), name=f"{name}{k}_{i // 2}")
            m.d.comb += s.eq(level[i] + level[i + 1])
            nxt.append(s)
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        k += 1
    out = Signal(signed(width), name=f"{name}_sum")
    m.d.comb += out.eq(level[0])
    return out


def fixed_from_signed(m, s, lsb, *, is_nan, is_inf, inf_sign, zero_sign, name="f"):
    """A two's-complement fixed-point sum as a sign-magnitude :class:`Fixed`; an
    exact zero takes ``zero_sign`` (IEEE: negative only if every term was -0)."""
    s = Value.cast(s)
    neg = s < 0
    mag = Signal(len(s), name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(neg, -s, s))
    zero = s == 0
    sign = Mux(is_inf, inf_sign, Mux(zero, zero_sign, neg))
    return Fixed(sign, mag, Const(lsb, signed(max(2, abs(lsb).bit_length() + 2))), zero,
                 is_inf, is_nan)
