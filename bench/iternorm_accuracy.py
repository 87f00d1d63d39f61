"""Accuracy study: IterNorm (both starts) vs FisrNorm vs float64 (docs/iternorm.md,
"Accuracy").

For fp32 and bf16, K = 1..6 updates and d in 64..1024 plus the OPT embedding widths,
on LLM-like activations (standard Gaussian plus a few outlier channels 20-100x
larger), the three starts' golden models (bit-exact to the RTL, lanes=16: IterNorm's
exponent-only start, its ROM start, FisrNorm's fast inverse square root) are
compared with a float64 reference:

* ``rel_a``: |a_K * sqrt(s64) - 1|, s64 the float64 sum of squares;
* ``ulp``: |out - ref64| in ulps of ref64 at the output format's precision.

Writes docs/iternorm/accuracy.csv, accuracy.png / .svg and accuracy.md (tables),
and docs/iternorm/partials.md (the fmax build's order of the sums, ``partials`` 5 and
6, its defaults at 100 MHz for bf16 and fp32 since the lane sums add magnitudes, 6 and
7 before, and 8, its default until 2026-11-29, against the one-sum order; and the
window sum of the fmax build's l2 and rmsnorm since 2026-11-29 with 5 and 10 partial
sums, its 100 and 150 MHz defaults), docs/iternorm/fused.md (the ROM start's first
update fused, ``fuse=True``, against its three roundings), and prints the summary. Run: ``python bench/iternorm_accuracy.py [--vectors N]``.
"""

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from lpcores import golden

G = sys.modules["lpcores.golden.iternorm"]
DS = [64, 128, 256, 512, 1024, 768, 2048, 2560, 4096, 5120, 7168, 9216, 12288]
KS = range(1, 7)
FMTS = ("fp32", "bf16")
def _rom(*a, **kw):
    return golden.iternorm(*a, start="rom", **kw)


METHODS = {"IterNorm": golden.iternorm, "IterNorm-ROM": _rom, "FisrNorm": golden.fisrnorm}
STYLE = {"IterNorm": "-", "IterNorm-ROM": ":", "FisrNorm": "--"}
OUT = Path(__file__).resolve().parent.parent / "docs" / "iternorm"


def activations(rng, n, d):
    """Gaussian activations with 4 outlier channels (fixed per d), 20-100x larger."""
    x = rng.standard_normal((n, d))
    ch = rng.choice(d, 4, replace=False)
    x[:, ch] *= rng.uniform(20, 100, 4)
    return x


def ulps(codes, ref, fmt):
    got = golden.decode(codes, fmt)
    M = 23 if fmt == "fp32" else 7
    _, e = np.frexp(np.where(ref == 0, 1.0, ref))
    return np.abs(got - ref) / np.ldexp(1.0, np.maximum(e - 1, -126) - M)


def study_inputs(n_vec, ds, seed=2026, mode="l2"):
    """(fmt, d, codes, float64 reference outputs, float64 sums of squares) for every
    format and d: ``n_vec`` LLM-like vectors each, seeded by ``(seed, d)``."""
    for fmt in FMTS:
        for d in ds:
            rng = np.random.default_rng([seed, d])
            codes = golden.encode(activations(rng, n_vec, d), fmt)
            yield (fmt, d, codes, *G.reference(codes, fmt, mode))


def run(n_vec, lanes=16, mode="l2", seed=2026):
    rows = []
    for fmt, d, codes, ref, s64 in study_inputs(n_vec, DS, seed, mode):
        for name, fn in METHODS.items():
            for K in KS:
                out, info = fn(codes, fmt, mode=mode, iters=K, lanes=lanes, trace=True)
                rel = np.abs(info["a"][-1] * np.sqrt(s64) - 1)
                u = ulps(out, ref, fmt)
                rows.append(dict(fmt=fmt, d=d, method=name, K=K,
                                 rel_a_max=float(rel.max()),
                                 rel_a_median=float(np.median(rel)),
                                 ulp_max=float(u.max()), ulp_mean=float(u.mean())))
    return rows


def converged_at(rows, fmt, method, d):
    """Smallest K whose mean ulp error is within 25% of the best K's (the rounding
    floor: from there on the error only jitters by the last bit)."""
    r = {x["K"]: x["ulp_mean"] for x in rows
         if x["fmt"] == fmt and x["method"] == method and x["d"] == d}
    floor = min(r.values())
    return min(K for K in KS if r[K] <= floor * 1.25)


def wins(rows):
    """Per (fmt, d, K): which start has the lowest mean ulp error; a tie when another
    is within 10% of it (the jitter of two converged results at the rounding floor)."""
    tally = dict.fromkeys([*METHODS, "tie"], 0)
    for fmt in FMTS:
        for d in DS:
            for K in KS:
                e = {x["method"]: x["ulp_mean"] for x in rows
                     if x["fmt"] == fmt and x["d"] == d and x["K"] == K}
                best = min(e.values())
                near = [m for m, v in e.items() if v <= 1.10 * best]
                tally[near[0] if len(near) == 1 else "tie"] += 1
    return tally


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "lpcores"       # deterministic SVG ids
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for j, fmt in enumerate(FMTS):
        for name, ls in STYLE.items():
            for d, col in ((64, "C0"), (1024, "C1"), (12288, "C2")):
                r = [x for x in rows if x["fmt"] == fmt and x["method"] == name
                     and x["d"] == d]
                r.sort(key=lambda x: x["K"])
                K = [x["K"] for x in r]
                axes[0, j].semilogy(K, [max(x["rel_a_max"], 1e-9) for x in r], ls,
                                    color=col, marker="o", ms=3, label=f"{name} d={d}")
                axes[1, j].semilogy(K, [max(x["ulp_mean"], 1e-3) for x in r], ls,
                                    color=col, marker="o", ms=3, label=f"{name} d={d}")
        axes[0, j].set_title(f"{fmt}: max |a_K sqrt(s) - 1|")
        axes[1, j].set_title(f"{fmt}: mean output error (ulps of {fmt})")
        axes[1, j].set_xlabel("K (updates)")
        axes[0, j].axhline(2.0 ** -24, color="gray", lw=0.8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("IterNorm (solid), IterNorm ROM start (dotted), FisrNorm (dashed) "
                 "against float64, l2 mode, lanes=16")
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=110)
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)


def markdown(rows):
    lines = []
    for fmt in FMTS:
        lines.append(f"**{fmt}**: mean output error in ulps (max |a_K sqrt(s) - 1| in "
                     f"brackets), " + " / ".join(METHODS))
        lines.append("")
        lines.append("| d | " + " | ".join(f"K={K}" for K in KS) + " | converged at K |")
        lines.append("|---" * (len(KS) + 2) + "|")
        for d in DS:
            cells = []
            for K in KS:
                e = {x["method"]: x for x in rows
                     if x["fmt"] == fmt and x["d"] == d and x["K"] == K}
                cells.append(" / ".join(f"{e[n]['ulp_mean']:.3g} ({e[n]['rel_a_max']:.1e})"
                                        for n in METHODS))
            conv = " / ".join(str(converged_at(rows, fmt, n, d)) for n in METHODS)
            lines.append(f"| {d} | " + " | ".join(cells) + f" | {conv} |")
        lines.append("")
    t = wins(rows)
    lines.append(f"Wins (lowest mean ulp error, a tie when another start is within 10%) "
                 f"over {sum(t.values())} (format, d, K) cases: "
                 + ", ".join(f"{k} {v}" for k, v in t.items()) + ".")
    return "\n".join(lines) + "\n"


PARTIALS = (1, 5, 6, 7, 8)
#: the fmax build's window sum (l2, rmsnorm; docs/iternorm.md "The window sum") with
#: the partials of 100 MHz (5) and 150 MHz (10), max_d = d
WINDOWS = (5, 10)


def partials_rows(n_vec, partials=PARTIALS, ds=(64, 256, 1024, 4096), Ks=(3, 5),
                  seed=2026):
    """The fmax build's order of the sums (``partials`` P per lane, lanes 2 as in
    its default configuration) against the one-sum order: mean ulp error."""
    rows = []
    for fmt, d, codes, ref, _ in study_inputs(n_vec, ds, seed):
        for name, fn in METHODS.items():
            for K in Ks:
                row = dict(fmt=fmt, d=d, method=name, K=K)
                for P in partials:
                    out = fn(codes, fmt, iters=K, lanes=2, partials=P)
                    row[f"P{P}"] = float(ulps(out, ref, fmt).mean())
                for P in WINDOWS:
                    out = fn(codes, fmt, iters=K, lanes=2, partials=P,
                             reduce="window", max_d=d)
                    row[f"W{P}"] = float(ulps(out, ref, fmt).mean())
                # the squares themselves on the window (--reduce squares)
                out = fn(codes, fmt, iters=K, lanes=2, reduce="squares", max_d=d)
                row["S"] = float(ulps(out, ref, fmt).mean())
                rows.append(row)
    return rows


def partials_markdown(rows, partials=PARTIALS):
    cols = [f"P{p}" for p in partials] + [f"W{p}" for p in WINDOWS] + ["S"]
    head = " | ".join([f"P={p}" for p in partials] + [f"P={p}, window" for p in WINDOWS]
                      + ["squares"])
    lines = [f"| fmt | d | method | K | {head} |",
             "|---|---|---|---|" + "---|" * len(cols)]
    for r in rows:
        cells = " | ".join(f"{r[c]:.3g}" for c in cols)
        lines.append(f"| {r['fmt']} | {r['d']} | {r['method']} | {r['K']} | {cells} |")
    return "\n".join(lines) + "\n"


def fused_rows(n_vec, ds=(64, 256, 1024, 4096, 12288), Ks=(1, 2, 3), seed=2026):
    """The ROM start's first update fused (``fuse=True``: one rounding of the exact
    value) against its three roundings: mean and max ulp error of the outputs, max
    ``|a_K sqrt(s) - 1|``, and how often ``a_1`` differs (lanes 16, one-sum order)."""
    rows = []
    for fmt, d, codes, ref, s64 in study_inputs(n_vec, ds, seed):
        for K in Ks:
            row = dict(fmt=fmt, d=d, K=K)
            a1 = {}
            for name, fuse in (("three", False), ("fused", True)):
                out, info = golden.iternorm(codes, fmt, iters=K, lanes=16,
                                            start="rom", fuse=fuse, trace=True)
                u = ulps(out, ref, fmt)
                row[f"{name}_mean"] = float(u.mean())
                row[f"{name}_max"] = float(u.max())
                row[f"{name}_rel"] = float(np.abs(info["a"][-1] * np.sqrt(s64)
                                                  - 1).max())
                a1[name] = info["a"][1]
            row["a1_differs"] = float((a1["three"] != a1["fused"]).mean())
            rows.append(row)
    return rows


def fused_markdown(rows):
    lines = ["| fmt | d | K | mean ulp, three / fused | max ulp, three / fused | "
             "max \\|a_K sqrt(s) - 1\\|, three / fused | a_1 differs |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['fmt']} | {r['d']} | {r['K']} | {r['three_mean']:.3g} / "
                     f"{r['fused_mean']:.3g} | {r['three_max']:.3g} / {r['fused_max']:.3g}"
                     f" | {r['three_rel']:.2e} / {r['fused_rel']:.2e} | "
                     f"{100 * r['a1_differs']:.1f} % |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=32, help="vectors per (fmt, d)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(args.vectors)
    with open(args.out / "accuracy.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = markdown(rows)
    (args.out / "accuracy.md").write_text(md)
    plot(rows, args.out / "accuracy")
    print(md)
    pmd = partials_markdown(partials_rows(args.vectors))
    (args.out / "partials.md").write_text(pmd)
    print(pmd)
    fmd = fused_markdown(fused_rows(args.vectors))
    (args.out / "fused.md").write_text(fmd)
    print(fmd)


if __name__ == "__main__":
    main()
