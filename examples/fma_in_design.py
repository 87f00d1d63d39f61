"""An lpcores FMA inside a user's own Amaranth design.

``ScaledAccumulator`` is the user's design: it takes e4m3 pairs (a, b) and an fp32
addend c on a plain valid/ready interface of its own, instantiates
``lpcores.hdl.FMA`` as a submodule (pipelined for 100 MHz on ECP5 by the delay
model), and returns ``round(a*b + c)``. The script simulates it with Amaranth's
simulator against the golden model ``lpcores.golden.fma`` (random valid gaps and
ready backpressure), then converts the whole design, FMA included, to Verilog.

    python examples/fma_in_design.py [--n 300] [--verilog out.v]
"""

import argparse
import random
import sys

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from lpcores import golden
from lpcores.hdl import FMA


class ScaledAccumulator(wiring.Component):
    """The user's design: their own port names around an lpcores FMA."""

    a: In(8)
    b: In(8)
    c: In(32)
    in_valid: In(1)
    in_ready: Out(1)
    r: Out(32)
    out_valid: Out(1)
    out_ready: In(1)

    def __init__(self, fmax=100.0):
        super().__init__()
        self.fma = FMA(a_fmt="e4m3", b_fmt="e4m3", acc_fmt="fp32", fmax=fmax,
                       family="ecp5")

    def elaborate(self, platform):
        m = Module()
        m.submodules.fma = fma = self.fma
        m.d.comb += [
            fma.i.payload.a.eq(self.a), fma.i.payload.b.eq(self.b),
            fma.i.payload.c.eq(self.c), fma.i.valid.eq(self.in_valid),
            self.in_ready.eq(fma.i.ready),
            self.r.eq(fma.o.payload.r), self.out_valid.eq(fma.o.valid),
            fma.o.ready.eq(self.out_ready),
        ]
        return m


def run(n=300, seed=1):
    """Simulate ``n`` random FMAs; return (inputs, outputs, expected) code arrays."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, n)
    b = rng.integers(0, 256, n)
    c = golden.encode(rng.standard_normal(n) * 4.0, "fp32")
    expected = golden.fma(a, b, c, "e4m3", "e4m3", "fp32")
    dut = ScaledAccumulator()
    got = []
    pyrng = random.Random(seed)

    async def feed(ctx):
        for k in range(n):
            ctx.set(dut.a, int(a[k]))
            ctx.set(dut.b, int(b[k]))
            ctx.set(dut.c, int(c[k]))
            while pyrng.random() < 0.3:             # a random gap
                ctx.set(dut.in_valid, 0)
                await ctx.tick()
            ctx.set(dut.in_valid, 1)
            await ctx.tick().until(dut.in_ready)
        ctx.set(dut.in_valid, 0)

    async def drain(ctx):
        while len(got) < n:
            ctx.set(dut.out_ready, int(pyrng.random() < 0.7))  # backpressure
            _, _, valid, ready, r = await ctx.tick().sample(dut.out_valid,
                                                            dut.out_ready, dut.r)
            if valid and ready:
                got.append(r)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(drain)
    sim.run()
    return (a, b, c), np.array(got, dtype=np.int64), np.asarray(expected, dtype=np.int64)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--verilog", default=None, help="write the whole design here")
    args = ap.parse_args(argv)
    _, got, expected = run(args.n)
    bad = int(np.sum(got != expected))
    print(f"{args.n} FMAs through the user's design: {args.n - bad} match the golden "
          f"model, {bad} differ")
    if args.verilog:
        dut = ScaledAccumulator()
        with open(args.verilog, "w") as f:
            f.write(verilog.convert(dut, name="scaled_accumulator", emit_src=False))
        print(f"wrote {args.verilog}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
