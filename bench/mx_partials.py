"""MXDot's accumulation orders against the exact dot product (docs/mx.md, "A single
stream at speed").

    python bench/mx_partials.py [--rows N]

LLM-like operands (Gaussian activations with a few outlier channels 20-100x larger,
Gaussian weights) quantized to MX e4m3 by ``golden.mx_quantize``, dot products of n
blocks for n from 8 to 2048. Each order is the golden model's (bit-exact to the
generated Verilog):

* ``P = 1``: one fp32 rounding per block, in block order (the default, SPEC §4.2);
* ``P = 8, 16``: ``MXDot(partials=P)``, block k into sum k mod P, a pairwise tree;
* one rounding per dot product: the exact sum rounded once (the best any fp32 result
  can be; what a Kulisch accumulator across blocks would give).

The exact sum: a block's 32 products of e4m3 values are exact in float64 and their
sum spans at most 40 bits (2**-18 .. 2**17 at one scale, times 32), so ``math.fsum``
returns it exactly; the scale is a power of two; the blocks are added as Fractions.
The error is in ulps of fp32 at the exact value. Prints a Markdown table.
"""

import argparse
import math
from fractions import Fraction

import numpy as np

from lpcores import golden
from lpcores.golden.mx import mx_decode

NS = (8, 64, 512, 2048)
PS = (1, 8, 16)


def operands(rng, rows, n):
    d = 32 * n
    x = rng.standard_normal((rows, d))
    ch = rng.choice(d, 4, replace=False)
    x[:, ch] *= rng.uniform(20, 100, 4)
    w = rng.standard_normal((rows, d)) * 0.05
    q = []
    for v in (x, w):
        s, c = golden.mx_quantize(v.astype(np.float32).astype(np.float64)
                                  .reshape(rows, n, 32), "e4m3")
        q.append((c.reshape(rows, d), s.reshape(rows, n)))
    return q


def exact(a, sa, b, sb):
    """The exact dot product of one row, as a Fraction."""
    va = mx_decode(sa, a.reshape(-1, 32), "e4m3")
    vb = mx_decode(sb, b.reshape(-1, 32), "e4m3")
    tot = Fraction(0)
    for k in range(len(sa)):
        tot += Fraction(math.fsum(va[k] * vb[k]))       # exact: see the module doc
    return tot


def ulps(code, ex):
    got = Fraction(float(golden.decode(np.array([code]), "fp32")[0]))
    if ex == 0:
        return float(abs(got)) / 2.0 ** -149
    e = math.floor(math.log2(abs(float(ex))))
    return float(abs(got - ex) / Fraction(2) ** max(e - 23, -149))


def run(rows, seed=2026):
    out = []
    for n in NS:
        rng = np.random.default_rng([seed, n])
        (a, sa), (b, sb) = operands(rng, rows, n)
        ex = [exact(a[r], sa[r], b[r], sb[r]) for r in range(rows)]
        row = {"n": n}
        for P in PS:
            got = golden.mx_dot(a, sa, b, sb, "e4m3", "e4m3", partials=P)
            e = [ulps(int(g), x) for g, x in zip(got, ex)]
            row[P] = (float(np.mean(e)), float(np.max(e)))
        once = [golden.encode(np.array([float(x)]), "fp32")[0] for x in ex]
        e = [ulps(int(g), x) for g, x in zip(once, ex)]
        row["once"] = (float(np.mean(e)), float(np.max(e)))
        out.append(row)
    return out


def markdown(rows_out, rows):
    head = " | ".join(f"P = {P}" for P in PS)
    lines = [f"Error against the exact dot product, ulps of fp32, mean (max) over {rows} "
             f"dot products; MX e4m3 x e4m3:", "",
             f"| blocks n | {head} | one rounding |", "|---:|" + "---|" * (len(PS) + 1)]
    for r in rows_out:
        cells = " | ".join(f"{r[P][0]:.3g} ({r[P][1]:.3g})" for P in PS)
        lines.append(f"| {r['n']} | {cells} | {r['once'][0]:.3g} ({r['once'][1]:.3g}) |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32, help="dot products per n")
    args = ap.parse_args(argv)
    print(markdown(run(args.rows), args.rows))


if __name__ == "__main__":
    main()
