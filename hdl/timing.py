"""Delay model of the FPGA fabrics, for clock-directed pipelining (``fmax=``).

Yosys does not retime: a register stays where the generator puts it. So the
generator places them, by delay: every shared block (:mod:`.fp`) charges its
estimated delay to the :class:`~.base.Pipeline` it is built into, from the few
primitives below, and the pipeline puts a register at the latest cut point before the
accumulated delay of a stage would exceed the clock period (FloPoCo's idea, for an
open flow).

A stage is modelled as ``reg + sum(block delays)``: ``reg`` is a register's
clock-to-out and setup plus the routing into the first logic cell; a LUT level is one
cell and the routing after it; a carry chain costs ``carry_base`` to enter and leave
and ``carry_bit`` a bit. The numbers are calibrated on measured primitives
(``bench/calibrate_timing.py`` re-measures them through the project's own flow, and
docs/timing.md holds its latest table): ECP5-25F speed 6 from that benchmark; iCE40
UP5K from the same; xc7, Gowin and the generic LUT4 target have no place and route
here, their rows are datasheet-order estimates, documented as such.

The model is deliberately simple and a little pessimistic: routing is 50-65 % of a
floating-point path on these fabrics and varies with placement, so the model is
checked against nextpnr on the results page (asked, estimated and achieved side by
side), not trusted blindly.
"""

import math
from dataclasses import dataclass

from lpcores.errors import ParamError, check_choice

__all__ = ["FAMILIES", "Fabric", "fabric", "check_fmax"]

FAMILIES = ("ecp5", "ice40", "xilinx", "gowin", "generic")


@dataclass(frozen=True)
class Fabric:
    """Primitive delays of one FPGA family, in ns."""
    name: str
    reg: float          # clock-to-out + setup + routing into the first cell
    lut: float          # one LUT level and the routing after it
    carry_base: float   # entering and leaving a carry chain
    carry_bit: float    # one bit of carry chain
    dsp_mul: float      # an inferred multiplier, fabric registers around it
    lzc_node: float = None  # one LZC tree level (default: a LUT level)
    # the emin floor marker ORed into the word in front of an LZC (fp.fixed_lzc):
    # free where the mapper folds it into the tree's first level (ECP5), a level of
    # its own where it does not (iCE40)
    floor_or: float = 0.0
    has_dsp: bool = True
    # a datapath wider than ``wide_bits`` (the FMA's 63-bit window, its 86-bit
    # alignment shifter): each shifter or LZC level costs ``wide`` more, the
    # routing of selects that fan out across the width and of a placement spread
    # over many slices (measured on the FMA; charged where a core asks for it,
    # Pipeline.wide)
    wide_bits: int = None
    wide: float = 0.0
    # a net broadcast into a group of identical lanes (MXQuant's block-wide shared
    # exponent into its 32 element rounders): the routing of a net that fans out
    # to ``n`` lanes costs ``fanout_ns`` for each doubling of the load beyond 4
    # lanes, on top of the first cell's routing that ``reg``/``lut`` already hold
    fanout_ns: float = 0.0
    # the stall-all pipeline's enable, o.valid to advance = o.ready | ~o.valid and
    # through the beat's valid into the clock enables of a core's registers (two
    # LUT levels, and routing to thousands of flip-flops): a clock faster than this
    # gets a registered ready instead (base.Pipeline's skid register); None: never
    enable: float = None
    # a block RAM's read into the register behind it, the RAM's clock-to-out
    # without its output register (Yosys never infers that register: ECP5's
    # DP16KD 5.8 ns) and a route; None: not modelled (buffers stay block RAM)
    bram_out: float = None

    # -- primitives ---------------------------------------------------------------
    def luts(self, levels):
        """``levels`` LUT levels."""
        return levels * self.lut

    def carry(self, width):
        """One carry chain of ``width`` bits (an add, subtract or compare)."""
        return self.carry_base + width * self.carry_bit

    def compare(self, width):
        """A magnitude compare of ``width``-bit operands built as the sign of their
        difference one bit wider (:func:`.fp.less`): one carry chain whose result is
        a sum output. (Yosys's own ``<`` takes the chain's carry out, which
        nextpnr-ecp5 brings into the fabric through one more CCU2C: about 1.3 ns
        more, measured in MXQuant's maximum tree and shared-exponent loop.)"""
        return self.carry(width + 1)

    def reduce(self, width):
        """An AND/OR reduction of ``width`` bits (LUT4 tree)."""
        return self.lut * _clog(max(2, width), 4)

    def mux(self, ways):
        """A ``ways``-to-1 multiplexer (one LUT4 level per 2:1 stage, PFU muxes
        merge two levels into about one and a half)."""
        return self.lut * _clog(max(2, ways), 2) * 0.75

    def _wide(self, width):
        return self.wide if width and self.wide_bits and width > self.wide_bits else 0.0

    def shift_level(self, width=None):
        """One level of a barrel shifter (a 2:1 mux a bit); ``width``: the
        shifter's, for the wide-datapath derate."""
        return self.lut + self._wide(width)

    def lzc_level(self, width=None):
        """One level of a leading-zero-count tree (its count muxes are steered by
        the upper half's all-zero flag: more than a LUT level on ECP5); ``width``:
        the counted word's, for the wide-datapath derate."""
        return (self.lzc_node or self.lut) + self._wide(width)

    def fanout(self, n):
        """Extra routing of a value read by ``n`` identical lanes (a broadcast:
        every lane's logic reads it, so its net spans the lanes' placement)."""
        if not n or n <= 4:
            return 0.0
        return self.fanout_ns * math.log2(n / 4)

    def mul_lut(self, wa, wb):
        """A ``wa`` x ``wb`` multiply in LUTs: partial products, then an adder tree of
        ``ceil(log2(min))`` carry chains."""
        lo, hi = sorted((wa, wb))
        if lo <= 1:
            return self.lut
        # adder-tree chains are short and placed together: ~0.6 of a lone chain's
        # entry and exit (4x4 measured 4.93 ns with the registers)
        return self.lut + _clog(lo, 2) * (0.6 * self.carry_base
                                          + (wa + wb) * self.carry_bit)


def _clog(n, base):
    return max(1, math.ceil(math.log(n, base) - 1e-9))


# Calibrated by bench/calibrate_timing.py (docs/timing.md) and on the FMA's own
# critical paths. ECP5: reg 1.2 + 5 levels of 0.9 = 5.7 ns for a 32-bit barrel shift
# (measured 5.7); carry_base includes the routing out of the chain (about 1.1 ns in
# the FMA's measured paths, so a short chain costs ~2.2 ns); carry_bit 0.045 is the
# FMA's 64-bit three-way add (both differences and the sum side by side, then two
# mux levels: 8.3 ns measured, the lone 64-bit add of FABRIC.md is 4.8); an inferred
# MULT18X18D 7.0 ns with its fabric registers (measured 6.9-7.1). A level of the FMA's
# 63-bit LZC tree measured 1.3 ns (9.1 ns for the six levels with the registers), a
# LUT level inside its shifters 0.95. Fanout: MXQuant's shared exponent read by 32
# element rounders measured 2.1 ns of routing into the first carry chain, about 1 ns
# more than a register's usual first hop (0.35 a doubling beyond 4 lanes: 1.05 at
# 32); the other families' values are estimates in the same proportion. Enable:
# MXDot e4m3 x8 with 16 contexts at 150 MHz measured 7.87 ns from o.valid through
# the advance and the block-sum ring's step into its 768 clock enables. bram_out:
# a DP16KD read without its output register into a fabric register through one LUT
# measured 7.37 ns alone (135.6 MHz; 2.4 ns with REGMODE "OUTREG") and 8.5 ns in
# IterNorm at 150 MHz (the buffer's read into C's register, 117 MHz).
FABRICS = {
    "ecp5": Fabric("ecp5", reg=1.2, lut=0.95, carry_base=2.1, carry_bit=0.045,
                   dsp_mul=5.8, lzc_node=1.3, wide_bits=48, wide=0.2, fanout_ns=0.35,
                   enable=7.9, bram_out=7.0),
    "ice40": Fabric("ice40", reg=3.0, lut=3.3, carry_base=6.1, carry_bit=0.35,
                    dsp_mul=5.5, wide_bits=48, wide=0.2, fanout_ns=0.8, floor_or=3.3),
    "xilinx": Fabric("xilinx", reg=0.9, lut=0.75, carry_base=0.9, carry_bit=0.02,
                     dsp_mul=3.5, fanout_ns=0.25),
    "gowin": Fabric("gowin", reg=1.2, lut=0.9, carry_base=1.3, carry_bit=0.04,
                    dsp_mul=6.0, fanout_ns=0.35),
    "generic": Fabric("generic", reg=1.2, lut=0.9, carry_base=1.3, carry_bit=0.036,
                      dsp_mul=5.8, fanout_ns=0.35),
}


def fabric(family):
    """The :class:`Fabric` of a family name."""
    check_choice("family", family, FAMILIES)
    return FABRICS[family]


def check_fmax(fmax):
    """``fmax`` as a float, or ParamError: a positive number of MHz."""
    if isinstance(fmax, bool) or not isinstance(fmax, (int, float)) \
            or not math.isfinite(fmax) or fmax <= 0:
        raise ParamError(f"fmax must be a positive number of MHz, got fmax={fmax!r}")
    return float(fmax)
