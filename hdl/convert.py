"""``Convert``: float format conversion, one rounding (RNE or RTZ), subnormals kept.

Datapath: unpack the input code; when the input format reaches lower exponents than
the output (``e4m3 -> fp32``), normalize its subnormals with a leading-zero count so
the rounder sees an MSB-set significand; round once at the output precision; pack
with the special-value rules of SPEC §2.

Pipelining (``stages``): cut points in priority order

1. ``round``: between the rounding decision (the subnormal shift, sticky, round bit,
   overflow) and the increment of the packed code with the special-value mux.
2. ``unpack``: after unpack/normalize, before the rounder's alignment shift.

Built for a clock (``fmax``), a conversion whose input reaches below the output's
``emin`` (``fp32 -> e4m3``, ``bf16 -> e2m1``, ...) takes a shallower datapath:
the rounder's shift clamp, exponent candidates and overflow test are decoded from the
input's exponent field by compares against constants in LUTs
(:func:`.fp.round_decide_packed`), side by side, then a fine point ``r_sh.0``, the
subnormal shift as one mux a bit and the round-up bit, the point ``round``, and the
increment with the special-value choice made beside it (:func:`.fp.apply_pack`):
three stages of one carry chain or three LUT levels at most (fp32 -> e4m3: 230.7 MHz
on ECP5-25F -6, docs/timing.md). ``stages`` builds keep the datapath above.

Latency is ``stages + 1`` cycles (the output register is always there); throughput
one conversion a cycle.
"""

from lpcores.errors import ParamError, check_choice
from lpcores.formats import FLOAT_FORMATS, get_format

from .base import Field, Pipeline, StreamCore, name_pipelined, plan_pipeline
from .fp import (ROUNDINGS, Unpacked, apply_pack, exp_shape, lzc, normalize_shift, pack,
                 round_apply, round_decide, round_decide_packed, unpack)

__all__ = ["Convert"]

CUTS = ("round", "unpack")


class Convert(StreamCore):
    """Convert codes of ``in_fmt`` into ``out_fmt``.

    Parameters
    ----------
    in_fmt, out_fmt : str
        Float formats of SPEC §2 (``fp32``, ``fp16``, ``bf16``, ``e5m2``, ``e4m3``,
        ``e3m2``, ``e2m3``, ``e2m1``), different from each other.
    saturate : bool
        Overflow and Inf give ±max instead of Inf/NaN.
    rounding : str
        ``"rne"`` (default) or ``"rtz"``.
    stages : int
        Pipeline registers in addition to the output register (0..2).
    fmax, family : float, str
        Instead of ``stages``: the clock (MHz) to meet on ``family`` (default
        ``ecp5``); registers go where the delay model says (:mod:`.timing`), at the
        named cut points and inside the blocks (normalize, the rounder's shifter).

    Payload: in ``{a}``, out ``{r}``. Latency ``stages + 1``; throughput 1/cycle.
    """

    def __init__(self, *, in_fmt, out_fmt, saturate=False, rounding="rne", stages=None,
                 fmax=None, family=None):
        self.fin = get_format(in_fmt, param="in_fmt", allowed=FLOAT_FORMATS)
        self.fout = get_format(out_fmt, param="out_fmt", allowed=FLOAT_FORMATS)
        if self.fin is self.fout:
            raise ParamError(f"out_fmt must differ from in_fmt, got in_fmt={in_fmt!r}, "
                             f"out_fmt={out_fmt!r}")
        if not isinstance(saturate, bool):
            raise ParamError(f"saturate must be True or False, not {saturate!r}")
        self.saturate = saturate
        self.rounding = check_choice("rounding", rounding, ROUNDINGS)
        self.in_fields = [Field("a", self.fin.bits, self.fin.name)]
        self.out_fields = [Field("r", self.fout.bits, self.fout.name)]
        super().__init__()
        self.stages, self.timing = plan_pipeline(self, CUTS, stages=stages, fmax=fmax,
                                                 family=family, name="convert")
        name_pipelined(self, f"convert_{self.fin.name}_{self.fout.name}"
                       f"{'_sat' if saturate else ''}{'_rtz' if rounding == 'rtz' else ''}",
                       {"in_fmt": self.fin.name, "out_fmt": self.fout.name,
                        "saturate": saturate, "rounding": rounding}, fmax)

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        fin, fout = self.fin, self.fout
        pipe = Pipeline(m, self, CUTS, self.stages)
        shape = exp_shape((fin.emin - fin.man_bits - 1, fin.emax + 1),
                          (fout.emin - fout.man_bits - 3, fout.emax + 2))
        if getattr(self, "_pipe_fmax", None) is not None and fin.emin < fout.emin:
            # built for a clock, an input reaching below the output's emin: the
            # rounder's shift clamp, exponent and overflow decoded from the input's
            # exponent field, the special-value choice beside the increment
            u = unpack(m, self.i.payload.a, fin, shape, name="a")  # its exp unused
            d = round_decide_packed(m, fout, self.i.payload.a, fin, u,
                                    rounding=self.rounding, name="r", pipe=pipe)
            d = pipe.cut("round", d)
            pipe.output(r=apply_pack(m, fout, d, rounding=self.rounding,
                                     saturate=self.saturate, name="p", pipe=pipe))
            return m
        u = unpack(m, self.i.payload.a, fin, shape, name="a", pipe=pipe)
        if fin.emin > fout.emin:
            # input subnormals may be normal in the output: normalize them.
            with pipe.carry(u) as c:
                zero, count = lzc(u.sig, pipe=pipe, name="a_lzc", m=m)
            u = c.values[0]
            with pipe.carry(u) as c:
                sig, exp = normalize_shift(m, u.sig, u.exp, count, name="a_n", pipe=pipe)
            u = c.values[0]
            u = Unpacked(u.sign, exp, sig, u.is_zero, u.is_inf, u.is_nan)
        u = pipe.cut("unpack", u)
        # the lowest exponent reaching the rounder: emin of the input, less the
        # normalizing shift of its subnormals when they are normalized
        exp_min = fin.emin - (fin.man_bits if fin.emin > fout.emin else 0)
        d = round_decide(m, fout, u, rounding=self.rounding, exp_min=exp_min, name="r",
                         pipe=pipe)
        d = pipe.cut("round", d)
        r = round_apply(m, d, name="r", pipe=pipe)
        code = pack(m, fout, r, rounding=self.rounding, saturate=self.saturate, name="p",
                    pipe=pipe)
        pipe.output(r=code)
        return m
