"""An MX matrix-vector product built from two lpcores cores in one Amaranth design.

``MXMatVec`` quantizes fp32 blocks of 32 into MXFP8 (``MXQuant``: E8M0 scale + 32
e4m3 elements, OCP MX v1.0) and feeds them to an ``MXDot`` whose other operand, the
matrix row, arrives already in MX (weights are quantized offline, as in inference).
One row of W (``k`` blocks of 32) against x gives one fp32 result. The MXDot has
``contexts`` (default 8): that many rows are interleaved block by block (beat ``t``
belongs to row ``t mod contexts`` of the group), so its fp32 accumulate loop may be
pipelined ``contexts`` deep and the engine still takes a block every cycle
(docs/contexts.md); ``last`` marks each row's final block. The script simulates the design
with Amaranth's simulator, checks every result against the golden models
(``golden.mx_quantize`` then ``golden.mx_dot``), reports the error against the
float64 product, and converts the design to Verilog.

    python examples/mx_matvec.py [--rows 8] [--blocks 2] [--verilog out.v]
"""

import argparse
import sys

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from lpcores import golden
from lpcores.hdl import MXDot, MXQuant

BLOCK = 32


class MXMatVec(wiring.Component):
    """x block (fp32) and a row block (MX e4m3 + scale) in, a row's fp32 result out."""

    def __init__(self, contexts=8, fmax=100):
        self.contexts = contexts
        self.quant = MXQuant(in_fmt="fp32", elem_fmt="e4m3", lanes=BLOCK, stages=1)
        # the accumulate loop pipelined for fmax on ECP5, up to `contexts` deep
        self.dot = MXDot(a_fmt="e4m3", b_fmt="e4m3", lanes=BLOCK, contexts=contexts,
                         fmax=fmax)
        super().__init__({
            "x": In(32 * BLOCK), "w": In(8 * BLOCK), "w_scale": In(8), "last": In(1),
            "in_valid": In(1), "in_ready": Out(1),
            "r": Out(32), "out_valid": Out(1), "out_ready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.quant = q = self.quant
        m.submodules.dot = d = self.dot
        # the row block and last wait beside the quantizer, in a FIFO-free way: the
        # quantizer has a fixed latency and stalls with the dot, so they are delayed
        # by the same register chain (MXQuant's latency cycles, stalled together)
        w, ws, last = self.w, self.w_scale, self.last
        for k in range(q.latency):
            w_r, ws_r, last_r = (Signal(len(w), name=f"w_d{k}"), Signal(8, name=f"ws_d{k}"),
                                 Signal(name=f"last_d{k}"))
            with m.If(q.i.ready):               # advances exactly when the quantizer does
                m.d.sync += [w_r.eq(w), ws_r.eq(ws), last_r.eq(last)]
            w, ws, last = w_r, ws_r, last_r
        m.d.comb += [
            q.i.payload.as_value().eq(self.x), q.i.valid.eq(self.in_valid),
            self.in_ready.eq(q.i.ready),
            d.i.valid.eq(q.o.valid), q.o.ready.eq(d.i.ready),
            d.i.payload.sa.eq(q.o.payload.scale), d.i.payload.sb.eq(ws),
            d.i.payload.last.eq(last),
            self.r.eq(d.o.payload.r), self.out_valid.eq(d.o.valid),
            d.o.ready.eq(self.out_ready),
        ]
        for k in range(BLOCK):
            m.d.comb += [d.i.payload[f"a{k}"].eq(q.o.payload[f"e{k}"]),
                         d.i.payload[f"b{k}"].eq(w[8 * k:8 * k + 8])]
        return m


def run(rows=8, blocks=2, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(blocks * BLOCK).astype(np.float32)
    W = rng.standard_normal((rows, blocks * BLOCK)).astype(np.float32)
    xs, xc = golden.mx_quantize(x.reshape(blocks, BLOCK), "e4m3")
    ws, wc = golden.mx_quantize(W.reshape(rows, blocks, BLOCK), "e4m3")
    expected = golden.mx_dot(np.broadcast_to(xc.reshape(-1), (rows, blocks * BLOCK)),
                             np.broadcast_to(xs, (rows, blocks)),
                             wc.reshape(rows, -1), ws, "e4m3", "e4m3")
    xbits = x.view(np.uint32).astype(np.int64)
    dut = MXMatVec()
    K = dut.contexts
    got = []

    def word(vals, width):
        return sum(int(v) << (width * k) for k, v in enumerate(vals))

    # rows in groups of K, interleaved block by block; a short last group is padded
    # with zero rows whose results are dropped
    groups = -(-rows // K)

    async def feed(ctx):
        for g in range(groups):
            for j in range(blocks):
                for i in range(g * K, (g + 1) * K):
                    ctx.set(dut.x, word(xbits[j * BLOCK:(j + 1) * BLOCK], 32))
                    ctx.set(dut.w, word(wc[i, j], 8) if i < rows else 0)
                    ctx.set(dut.w_scale, int(ws[i, j]) if i < rows else 127)
                    ctx.set(dut.last, int(j == blocks - 1))
                    ctx.set(dut.in_valid, 1)
                    await ctx.tick().until(dut.in_ready)
        ctx.set(dut.in_valid, 0)

    async def drain(ctx):
        ctx.set(dut.out_ready, 1)
        while len(got) < groups * K:
            _, _, valid, r = await ctx.tick().sample(dut.out_valid, dut.r)
            if valid:
                got.append(r)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(drain)
    sim.run()
    exact = W.astype(np.float64) @ x.astype(np.float64)
    return (np.array(got[:rows], dtype=np.int64), np.asarray(expected, dtype=np.int64),
            exact)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--verilog", default=None)
    args = ap.parse_args(argv)
    got, expected, exact = run(args.rows, args.blocks)
    bad = int(np.sum(got != expected))
    vals = golden.decode(got, "fp32")
    rel = np.max(np.abs(vals - exact) / np.maximum(np.abs(exact), 1e-30))
    print(f"{args.rows} rows x {args.blocks * BLOCK}: {args.rows - bad} results match the "
          f"golden models, {bad} differ; largest error against float64 (MXFP8 "
          f"quantization included) {rel:.2%}")
    if args.verilog:
        with open(args.verilog, "w") as f:
            f.write(verilog.convert(MXMatVec(), name="mx_matvec", emit_src=False))
        print(f"wrote {args.verilog}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
