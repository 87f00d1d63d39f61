"""IterNorm's starts (:func:`start_a0`, :func:`start_u0`) and ``NewtonStep``: the ROM
start's first update computed exactly and rounded once (``IterNorm(fuse=True)`` in
the fmax build; ``golden.iternorm(..., fuse=True)`` is the model, docs/iternorm.md
"The fused first update").

``NewtonStep`` takes ``s`` (an FX code, > 0) and returns ``r = RNE_FX(a0 + lam*a0*(1
- s*u0))``, one rounding of the exact value, where ``a0`` is the ROM start (at most
``ROM_W`` = 12 significant bits) and ``u0 = a0*a0`` (exact), both from a table on
``s`` in its first stage; the unfused update rounds three times (``u``, ``v = 1 -
s*u`` and ``a*lam*v + a``) on a general multiply-add.

The ROM start is within ``2**-8`` of ``1/sqrt(s)`` (golden ``rom_table``), so
``w = s*u0`` lies in ``1 +- (2**-7 + 2**-16)`` and everything is fixed point with no
alignment shifter and no wide leading-zero count. With ``s = m 2**E``, ``E = 2q + r``,
the start is ``a0 = T * 2**(e_a - 11)`` (``T`` its 12-bit significand, ``e_a = -1 -
q``), so ``e_s + 2 e_a = r - 2`` and, with ``lam = 2**-l``:

* ``w * 2**48 = Q << (r + 1)``, ``Q = sig(s) * T**3`` (24 x 36 bits, an integer);
* ``1 + lam*(1 - w) = Y * 2**(-48 - l)`` with ``Y = 2**(48 + l) + 2**48 - w * 2**48``,
  so ``r = RNE(N * 2**(e_a - 59 - l))`` with ``N = T*Y = (T*(2**l + 1) << 48) - (Q <<
  (r + 1))``: the table holds ``T*(2**l + 1)`` and ``T**3``, one product and one
  subtract remain;
* ``Y / 2**(48 + l)`` is within ``2**-6`` of 1, so N's leading one is at bit ``58 +
  l``, ``59 + l`` or ``60 + l``: the leading-zero count and the normalizing shift
  cover those three bits, the bits more than 25 below them are one sticky bit, and
  the result is FX-normal (``r`` is about ``1/sqrt(s)``, in ``2**-133 .. 2**149``
  for IterNorm's ``s``).

Built from the shared blocks (:func:`.fp.multiply`, :func:`.fp.round_band`: the
leading-zero count over the three bits, the normalizing shift, one rounding, pack);
``fmax`` places registers by the delay model. ``s = 0`` (a zero vector's) gives
some finite code, which IterNorm discards.

Latency ``stages + 1``; a beat a cycle.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed

from lpcores.errors import check_bool, check_int
from lpcores.golden.iternorm import FX, MAGIC, ROM_B, ROM_W, rom_table

from .base import Field, Pipeline, StreamCore, name_pipelined, plan_pipeline
from .fp import Unpacked, _table, multiply, round_band

__all__ = ["NewtonStep", "start_a0", "start_u0"]

CUTS = ("q", "n", "round", "norm", "lzc", "start")


def _rom_index(s):
    """The ROM start's table index from ``s`` (an FX code): its 6 fraction bits below
    the hidden one and E's parity ``r = E[0] = s_e[0] ^ bias[0]``; returns ``(index,
    r)``."""
    r = s[FX.man_bits] ^ (FX.bias & 1)
    return Cat(s[FX.man_bits - ROM_B:FX.man_bits], r), r


def _rom_entries():
    """The table's entries ``T`` in index order (r = 0's 64, then r = 1's)."""
    return [t for row in rom_table() for t in row]


class NewtonStep(StreamCore):
    """``lam = 2**-lam_shift`` (``lam_shift`` in 0..8). ``stages``/``fmax``/``family``
    as :class:`.fma.FMA`'s. Payload: in ``{s}``, out ``{r}`` (FX codes).

    ``land``: ``s`` lands in a register before the table (a cycle more, with
    ``fmax``): the net from a producer across a large device ends at a register, not
    in the table's stage (IterNorm from ``LANE_TREE`` lanes on: the window sum's
    output to the table measured 14.1 ns, 12.0 of it routing, on the 85F)."""

    def __init__(self, *, lam_shift=1, stages=None, fmax=None, family=None, land=False):
        self.l = check_int("lam_shift", lam_shift, lo=0, hi=8)
        self.land = check_bool("land", land)
        self.in_fields = [Field("s", FX.bits)]
        self.out_fields = [Field("r", FX.bits)]
        StreamCore.__init__(self)
        self.stages, self.timing = plan_pipeline(self, CUTS, stages=stages, fmax=fmax,
                                                 family=family, name="newton")
        name_pipelined(self, f"newton_l{self.l}{'_land' if land else ''}",
                       {"lam_shift": self.l, **({"land": True} if land else {})}, fmax)

    def elaborate(self, platform):
        m = Module()
        M, l = FX.man_bits, self.l
        pipe = Pipeline(m, self, CUTS, self.stages)
        s = Value.cast(self.i.payload.s)
        if self.land:
            s = pipe.cut("in.land", s, force=True)
        # the ROM start's entry T (a0 = T * 2**(e_a - 11), e_a = -1 - q) on E's parity
        # r and s's 6 leading fraction bits (start_a0's index), held here as the two
        # values the update needs: T * (2**l + 1) and T**3
        # (as logic, fp._table: a ROM read Yosys maps into block RAM, whose slow
        # clock-to-out then heads the product's stage: 13.1 ns at 100 MHz, measured)
        tab = _rom_entries()
        idx, r_ = _rom_index(s)
        ent = _table(m, idx,
                     lambda i: ((tab[i] * ((1 << l) + 1)) << 36) | tab[i] ** 3,
                     36 + ROM_W + l + 1, "ent")
        e_a = Signal(signed(FX.exp_bits + 2), name="e_a")
        m.d.comb += e_a.eq(((3 * FX.bias - 1 - s[M:M + FX.exp_bits]) >> 1) - FX.bias)
        # a 7-input table a bit: a 128-way mux of constants, its index fanned out to
        # every bit (measured: the table into the product's DSPs, 13.7 ns at 100 MHz
        # when charged as two LUT levels, IterNorm bf16 2 lanes --fuse)
        pipe.charge(pipe.fab.mux(2 << ROM_B) + pipe.fab.fanout(len(ent)))
        s, ent, e_a, r_ = pipe.cut("start", s, ent, e_a, r_)
        tc, t3 = ent[36:], ent[:36]
        # Q = sig(s) * T**3 (24 x 36 bits); w = s*a0*a0 = Q * 2**(r - 47) (e_s + 2 e_a
        # = r - 2), so X = w * 2**48 = Q << (r + 1) and N = T*Y = (T*(2**l + 1) << 48)
        # - X*T. The multiply's exponents and flags are not used
        zero = Const(0, 1)
        with pipe.carry(tc, e_a, r_) as cc:         # across the multiply's cuts
            q = multiply(m, Unpacked(zero, Const(0, 2), Cat(s[:M], Const(1, 1)), zero,
                                     zero, zero), FX,
                         Unpacked(zero, Const(0, 2), t3, zero, zero, zero), FX,
                         name="q", pipe=pipe, dsp_cut=True)
        Q, tc, e_a, r_ = pipe.cut("q", q.mag, *cc.values)
        N = Signal(61 + l, name="n")
        m.d.comb += N.eq((tc << 48) - Mux(r_, Q << 2, Q << 1))
        pipe.charge(pipe.fab.lut + pipe.fab.carry(61 + l))
        N, e_a = pipe.cut("n", N, e_a)
        # N's bit 0 weighs 2**(e_a - 59 - l); its leading one is at bit 58 + l or above
        pipe.output(r=round_band(m, FX, N, e_a - 59 - l, 58 + l, pipe=pipe,
                                 exp_shape_=signed(FX.exp_bits + 3)))
        return m


def start_a0(m, s_src, start):
    """The start ``a0`` from ``s`` (an FX code, positive): IterNorm's
    ``2**-ceil(E/2)``, or FisrNorm's magic constant on the fp32 bits of ``s*4**-q``
    scaled by ``2**-q`` (golden ``a0_iter`` / ``a0_fisr``)."""
    s_e = s_src[23:33]                             # biased exponent
    E = Signal(range(-FX.bias - 2, FX.bias + 3))
    m.d.comb += E.eq(s_e - FX.bias)
    a0 = Signal(FX.bits)
    if start == "iter":
        m.d.comb += a0.eq((FX.bias - ((E + 1) >> 1)) << 23)
    elif start == "rom":
        # T[r][k] * 2**(-ROM_W - q): the entry's ROM_W - 1 bits below its leading one
        # are a0's fraction, the exponent field bias - 1 - q = (3*bias - 1 - s_e) >> 1
        # (-floor(x/2) = floor((1 - x)/2): one chain); r = E[0] = s_e[0] ^ bias[0]
        rom = Array(Const(t & ((1 << (ROM_W - 1)) - 1), ROM_W - 1)
                    for t in _rom_entries())
        ent = Signal(ROM_W - 1)
        e_a = Signal(signed(12))
        m.d.comb += [ent.eq(rom[_rom_index(s_src)[0]]),
                     e_a.eq((3 * FX.bias - 1 - s_e) >> 1)]
        m.d.comb += a0.eq(Cat(Const(0, 24 - ROM_W), ent, e_a[:10]))
    else:
        # q = E >> 1; the fp32 bits of s * 4**-q have the exponent field 127 + E[0]
        # (E[0] = s_e[0] ^ bias[0], no chain); a0's exponent field is
        # i_[23:31] - 127 - q + bias = i_[23:31] + k with k = bias - 127 - q =
        # (3*bias - 253 - s_e) >> 1 (-floor(x/2) = floor((1 - x)/2)): one chain
        # beside MAGIC's, then one add, where q, then the three-term sum after
        # MAGIC's chain were three in series (FisrNorm's critical path at
        # --fmax 100, 10.1 ns)
        e0 = s_e[0] ^ (FX.bias & 1)
        bits = Cat(s_src[:23], *([~e0] * 7), e0)   # fp32 bits of s * 4**-q (127 + e0)
        i_ = Signal(32)
        k = Signal(signed(12))
        m.d.comb += [i_.eq(MAGIC - (bits >> 1)), k.eq((3 * FX.bias - 253 - s_e) >> 1)]
        m.d.comb += a0.eq(Cat(i_[:23], i_[23:31] + k))
    return a0


def start_u0(m, s_src, start):
    """The fmax build's ``u = RNE_FX(a0*a0)`` of the first update, from ``s`` beside
    :func:`start_a0`: exact for IterNorm's starts (``a0`` has at most ``ROM_W`` = 12
    significant bits), so no rounding. The exponent start: ``2**-2ceil(E/2)``, the
    exponent field ``2*bias - 1 - s_e + s_e[0]``. The ROM start: the entry's square
    ``t*t`` (23 or 24 bits) normalized, from a second table beside the first, with
    ``hi - s_e[0]`` (``hi``: ``t*t >= 2**23``; ``s_e[0] = ~r``), so the exponent
    field ``2*bias - 1 - s_e + (hi - s_e[0])`` is one add."""
    s_e = s_src[23:33]
    u0 = Signal(FX.bits)
    if start == "iter":
        m.d.comb += u0.eq(Cat(Const(0, 23), 2 * FX.bias - 1 - s_e + s_e[0]))
        return u0
    assert start == "rom" and FX.bias & 1
    ents = []
    for i, t in enumerate(_rom_entries()):
        r = i >> ROM_B
        hi = int(t * t >= 1 << 23)
        sig = t * t if hi else (t * t) << 1
        delta = hi - (1 - r)                       # in -1..1, as 2 bits
        ents.append(Const((sig & ((1 << 23) - 1)) | ((delta & 3) << 23), 25))
    rom = Array(ents)
    ent = Signal(25)
    m.d.comb += ent.eq(rom[_rom_index(s_src)[0]])
    e_u = Signal(signed(12))
    m.d.comb += e_u.eq(2 * FX.bias - 1 - s_e + ent[23:25].as_signed())
    m.d.comb += u0.eq(Cat(ent[:23], e_u[:10]))
    return u0
