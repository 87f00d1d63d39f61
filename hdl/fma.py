"""``FMA``: fused multiply-add ``r = round(a*b + c)``, exact then one rounding.

``a`` and ``b`` in any float format of SPEC §2 (mixed allowed), ``c`` and ``r`` in
``fp32``, ``fp16`` or ``bf16``. Built from the shared blocks of :mod:`.fp`:

    unpack a, b, c -> multiply (exact, PW = (Ma+1)+(Mb+1) bits)
    -> align_add (exact window of 2*CW + PW + 7 bits, sticky beyond it)
    -> normalize (log-depth LZC, left shift) -> round_sig -> pack

Pipelining (``stages``, 0..7): cut points in the order they are taken, chosen to
split the longest combinational segment each time:

1. ``add``: after the aligned add, before the LZC/normalize (halves the path).
2. ``round``: after normalize+round, before packing / the special-value mux.
3. ``mul``: after the significand multiply and the exponent difference.
4. ``norm``: between normalize and round.
5. ``unpack``: after unpacking, before the multiplier.
6. ``align``: inside the aligned add, between the addend's alignment shift and
   the signed add (the two carry chains of the add, then the shifter, are what is
   left of the longest segment).
7. ``lzc``: inside normalize, between the leading-zero count and the shift.

Latency ``stages + 1`` cycles, throughput one FMA a cycle.
"""

from amaranth.hdl import Module

from lpcores.errors import ParamError, check_choice
from lpcores.formats import FLOAT_FORMATS, get_format

from .base import Field, Pipeline, StreamCore, check_stages
from .fp import (ROUNDINGS, add_aligned, align, counted_to_unpacked, fixed_lzc,
                 multiply, pack, round_sig, unpack)

__all__ = ["FMA", "ACC_FORMATS"]

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
        Pipeline registers besides the output register, 0..7.

    Payload: in ``{a, b, c}``, out ``{r}``. Latency ``stages + 1``; throughput 1/cycle.
    """

    def __init__(self, *, a_fmt, b_fmt, acc_fmt="fp32", rounding="rne", stages=0):
        self.fa = get_format(a_fmt, param="a_fmt", allowed=FLOAT_FORMATS)
        self.fb = get_format(b_fmt, param="b_fmt", allowed=FLOAT_FORMATS)
        self.fc = get_format(acc_fmt, param="acc_fmt", allowed=ACC_FORMATS)
        self.rounding = check_choice("rounding", rounding, ROUNDINGS)
        self.stages = check_stages(stages, len(CUTS), "fma")
        self.params = {"a_fmt": self.fa.name, "b_fmt": self.fb.name,
                       "acc_fmt": self.fc.name, "rounding": rounding, "stages": stages}
        self.module_name = (f"fma_{self.fa.name}_{self.fb.name}_{self.fc.name}"
                            f"{'_rtz' if rounding == 'rtz' else ''}_s{stages}")
        self.in_fields = [Field("a", self.fa.bits, self.fa.name),
                          Field("b", self.fb.bits, self.fb.name),
                          Field("c", self.fc.bits, self.fc.name)]
        self.out_fields = [Field("r", self.fc.bits, self.fc.name)]
        self.latency = stages + 1
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        fa, fb, fc = self.fa, self.fb, self.fc
        pipe = Pipeline(m, self, CUTS, self.stages)
        pl = self.i.payload
        ua = unpack(m, pl.a, fa, name="a")
        ub = unpack(m, pl.b, fb, name="b")
        uc = unpack(m, pl.c, fc, name="c")
        ua, ub, uc = pipe.cut("unpack", ua, ub, uc)
        p = multiply(m, ua, fa, ub, fb, name="p")
        p, uc = pipe.cut("mul", p, uc)
        al = align(m, p, uc, fc, name="s")
        al = pipe.cut("align", al)
        s = add_aligned(m, al, name="s")
        s = pipe.cut("add", s)
        cx = pipe.cut("lzc", fixed_lzc(s))
        u = counted_to_unpacked(m, cx, name="n")
        u = pipe.cut("norm", u)
        r = round_sig(m, fc, u, rounding=self.rounding, name="r")
        r = pipe.cut("round", r)
        pipe.output(r=pack(m, fc, r, rounding=self.rounding, name="o"))
        return m
