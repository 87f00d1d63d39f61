"""``WindowSum``: non-negative FX values summed on a fixed-point window whose top is
given with them, rounded once (IterNorm's and FisrNorm's ``s`` in the fmax build;
``golden.iternorm.window_sum`` is the model, docs/iternorm.md "The window sum").

A beat carries ``lanes`` FX values ``p0..`` (each ``>= 0`` and below ``2**top``),
the window's top ``top`` (a signed exponent) and ``last``. Every value is
truncated to the window's grid ``2**(top - W)``: its significand (hidden bit
explicit) is placed at the window's top bit and shifted right by ``top - 1 - E``
(``E`` its exponent: how far its MSB sits below the top bit), the bits shifted out
dropped; the lanes' integers are added exactly by a tree, the beats' sums by a
one-add accumulator loop, and the beat carrying ``last`` emits the total rounded
into FX (RNE): leading-zero count, normalizing shift, one rounding, pack. The
total is either 0 or at least ``2**(top - W)``, far above FX's subnormals for
IterNorm's tops (``>= 2**-297``, ``W <= 57``), so the rounder has no subnormal
shifter. Built from the shared blocks (:func:`.fp.shift_levels`'s levels side by
side, :func:`.fp.sum_tree`, :func:`.fp.round_band`: :func:`.fp.lzc`,
:func:`.fp.counted_to_unpacked`, :func:`.fp.round_decide`, :func:`.fp.pack`); ``fmax`` places registers by the
delay model, between the shifter's levels and the tree's, around the loop and
inside the normalize. With ``headroom`` h (a sum with a nonzero value has one of
at least ``2**(top - h)``: IterNorm's largest square) the leading-zero count and
the normalizing shift cover only the bits the total's leading one can be in, and
the bits more than 25 below them become one sticky bit.

``square_fmt`` (IterNorm's ``reduce="squares"``, ``golden.iternorm.squares_sum``):
the values are the squares of codes of that format (each below ``2**top``): each
lane's significand squared (:func:`.fp.lane_products`, exact), its MSB placed at
the window's top bit and shifted right as above; NaN and Inf codes square their
field's value (their vector's output is NaN whatever the sum).

Latency ``stages + 1`` from the beat carrying ``last``; a beat a cycle.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed

from lpcores.errors import check_int
from lpcores.golden.iternorm import FX

from lpcores.formats import get_format

from .base import Field, Pipeline, StreamCore, name_pipelined, plan_pipeline
from .fp import lane_products, round_band, sum_tree

__all__ = ["WindowSum"]

CUTS = ("acc", "align", "tree", "round", "norm", "lzc", "sq")
TOP_BITS = 12            # ``top``: signed, IterNorm's are in -297 .. 291


class WindowSum(StreamCore):
    """``lanes`` values a beat, a window of ``window`` bits, up to ``beats`` beats a
    sum (the accumulator's width: ``window + ceil(log2(lanes * beats))``).
    ``stages``/``fmax``/``family`` as :class:`.fma.FMA`'s. Payload: in ``{p0..,
    top, last}``, out ``{r}`` (FX)."""

    def __init__(self, *, lanes, window, beats, headroom=None, stages=None, fmax=None,
                 family=None, square_fmt=None):
        self.square = None if square_fmt is None else get_format(square_fmt,
                                                                 param="square_fmt")
        self.lanes = check_int("lanes", lanes, lo=1)
        self.W = check_int("window", window, lo=FX.man_bits + 2, hi=256)
        self.beats = check_int("beats", beats, lo=1)
        self.acc_width = self.W + (lanes * beats - 1).bit_length()
        # headroom h: a sum with any nonzero value has one of at least 2**(top - h)
        # (IterNorm: the largest element's square), so the total's leading one is
        # at or above bit W - h: the LZC looks at the bits from there up only, the
        # normalizing shift is at most acc_width - (W - h) - 1, and the bits more
        # than 25 below bit W - h are only a sticky (default: no bound)
        self.headroom = (self.W if headroom is None else
                         check_int("headroom", headroom, lo=1, hi=self.W))
        self.in_fields = [Field(f"p{k}", FX.bits) if self.square is None else
                          Field(f"p{k}", self.square.bits, self.square.name)
                          for k in range(lanes)]
        self.in_fields += [Field("top", TOP_BITS), Field("last", 1)]
        self.out_fields = [Field("r", FX.bits)]
        StreamCore.__init__(self)
        # the wide-datapath derate of the delay model for its shifter's levels
        # (lanes x W bits side by side) and its LZC (docs/timing.md)
        self.wide_derate = True
        self.stages, self.timing = plan_pipeline(self, CUTS, stages=stages, fmax=fmax,
                                                 family=family, name="wsum")
        sq = self.square
        name_pipelined(self, f"wsum_l{lanes}_w{window}_b{beats}_h{self.headroom}"
                       + (f"_sq{sq.name}" if sq else ""),
                       {"lanes": lanes, "window": window, "beats": beats,
                        "headroom": self.headroom,
                        **({"square_fmt": sq.name} if sq else {})}, fmax)

    def elaborate(self, platform):
        m = Module()
        L, W, M = self.lanes, self.W, FX.man_bits
        pipe = Pipeline(m, self, CUTS, self.stages)
        pl = self.i.payload
        top = Value.cast(pl.top).as_signed()
        last = pl.last
        # the shift of each value: its MSB's distance below the window's top bit,
        # (top - 1) - (field - bias); >= 0 for every value below 2**top
        nb = (W - 1).bit_length()                  # levels: shifts 0 .. 2**nb - 1
        words, shs = [], []
        if self.square is not None:
            # the squares' significands (exact, 2*(M + 1) bits; subnormals normalized
            # first, so the square's leading one is at p's MSB or the bit below); the
            # MSB of p weighs 2**(exp0 + 2*(M + 1) - 1), at most top - 1
            sf = self.square
            with pipe.carry(top, last) as cl:
                prods = lane_products(m, [(pl[f"p{k}"], pl[f"p{k}"]) for k in range(L)],
                                      sf, sf, pipe, normalized=True)
            top, last = cl.values
            *prods, top, last = pipe.cut("sq", *prods, top, last)
            pw = 2 * (sf.man_bits + 1)
            for k, p in enumerate(prods):
                rs = Signal(signed(TOP_BITS + 3), name=f"a{k}_rs")
                m.d.comb += rs.eq(top - pw - p.exp0)
                far = rs.as_unsigned()[nb:] != 0
                mag = Value.cast(p.mag)
                words.append(Cat(Const(0, W - pw), mag) if pw <= W else mag[pw - W:])
                shs.append(Cat(rs[:nb], far))
        else:
            for k in range(L):
                code = Value.cast(pl[f"p{k}"])
                ef = code[M:M + FX.exp_bits]
                rs = Signal(signed(TOP_BITS + 2), name=f"a{k}_rs")
                m.d.comb += rs.eq(top + (FX.bias - 1) - ef)
                # beyond the window (or negative): the value is cleared after the
                # shift, so this test runs beside the shifter's levels, not before them
                far = rs.as_unsigned()[nb:] != 0
                words.append(Cat(Const(0, W - M - 1), code[:M], ef != 0))
                shs.append(Cat(rs[:nb], far))
        # the top's net into every lane's chain (measured: the stage routed about a
        # LUT level over its plan without it, IterNorm bf16 2 lanes at 100 MHz)
        pipe.charge(pipe.fab.carry(TOP_BITS + 2) + pipe.fab.lut + pipe.fab.fanout(L))
        # the lanes' right shifts side by side, one register row a level (the
        # amounts may be registered first: a.0)
        with pipe.carry(top, last) as cl:
            cut = list(pipe.cut("a.0", *words, *shs))
            words, shs = cut[:L], cut[L:]
            for j in range(nb):
                step = 1 << j
                nxt = []
                for k, v in enumerate(words):
                    lv = Signal(W, name=f"a{k}_l{j}")
                    m.d.comb += lv.eq(Mux(shs[k][j], v[step:] if step < W else 0, v))
                    nxt.append(lv)
                words = nxt
                pipe.charge(pipe.fab.shift_level(W * L))
                if j + 1 < nb:
                    cut = list(pipe.cut(f"a.{j + 1}", *words, *shs))
                    words, shs = cut[:L], cut[L:]
            words = [Mux(sh[nb], 0, v) for v, sh in zip(words, shs)]
            pipe.charge(pipe.fab.lut)
        top, last = cl.values
        words, top, last = _split(pipe.cut("align", *words, top, last), L)
        with pipe.carry(top, last) as cl:
            row = sum_tree(m, words, self.acc_width, name="t", signed_=False,
                           pipe=pipe, leaf_bits=W) if L > 1 else words[0]
        top, last = cl.values
        row, top, last = pipe.cut("tree", row, top, last)
        # the loop: acc <- acc + row, cleared after the beat carrying last (and by
        # reset), so the loop is the add alone
        acc = Signal(self.acc_width, name="acc")
        total = Signal(self.acc_width, name="acc_next")
        m.d.comb += total.eq(acc + row)
        pipe.charge(pipe.fab.carry(self.acc_width) + pipe.fab.lut)
        with m.If(pipe.advance & pipe.valid):
            m.d.sync += acc.eq(Mux(last, 0, total))
        pipe.gate(last)
        total, top = pipe.cut("acc", total, top)
        # the bits that can hold the leading one: from bit W - h up
        pipe.output(r=round_band(m, FX, total, top - W, W - self.headroom, pipe=pipe,
                                 exp_shape_=signed(TOP_BITS + 1), is_zero=total == 0))
        return m


def _split(regs, L):
    regs = list(regs)
    return regs[:L], regs[L], regs[L + 1]
