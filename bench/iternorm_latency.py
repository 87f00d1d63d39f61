"""IterNorm latency against the vector length d: the table and the plot.

    python bench/iternorm_latency.py [--out docs/iternorm]

Cycles from the first input beat to the last output beat (``o.ready`` high, unit
idle) for l2, rmsnorm and layernorm at 8, 16 and 32 lanes, K = 5, bf16, from each
generator's ``latency_of(d)``: the formula in its sidecar, which the regression
(tests/test_iternorm.py, sim/iternorm.py) checks cycle-exactly against the generated
Verilog, and which docs/iternorm.md also measured in simulation. The paper's
IterNorm (32/28 nm, 100 MHz) takes 112 cycles at d = 64 and 227 at d = 1024.

Beside them the fmax build at 100 MHz (16 lanes, l2, ``max_d`` 1024): the
exponent-only start with K = 5, and the ROM start with the updates that reach the
rounding floor (K = 1 for bf16, 2 for fp32; docs/iternorm.md, "Accuracy").
"""

import argparse
from pathlib import Path

from lpcores.hdl.iternorm import IterNorm

DS = (64, 128, 256, 512, 768, 1024)
LANES = (8, 16, 32)
MODES = ("l2", "rmsnorm", "layernorm")
PAPER = {64: 112, 1024: 227}
#: the fmax build's rows: (label, keyword arguments)
FMAX = (("fmax 100, exp start, K = 5", dict(iters=5)),
        ("fmax 100, ROM start, K = 1 (bf16 floor)", dict(iters=1, start="rom")),
        ("fmax 100, ROM start, K = 2 (fp32 floor)", dict(iters=2, start="rom")))


def table():
    rows = []
    for mode in MODES:
        for lanes in LANES:
            core = IterNorm(fmt="bf16", lanes=lanes, max_d=1024, mode=mode, iters=5)
            rows.append((mode, lanes, [core.latency_of(d) for d in DS],
                         core.latency_formula))
    return rows


def fmax_table(lanes=16):
    rows = []
    for label, kw in FMAX:
        core = IterNorm(fmt="bf16", lanes=lanes, max_d=1024, mode="l2", fmax=100, **kw)
        rows.append((label, lanes, [core.latency_of(d) for d in DS]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent.parent / "docs" / "iternorm")
    args = ap.parse_args()
    rows = table()
    lines = ["Cycles from the first input beat to the last output beat (bf16, K = 5, "
             "`o.ready` high), from the sidecar's formula, which the regression checks "
             "cycle-exactly on the generated Verilog. Paper (IterNorm, 100 MHz): 112 "
             "cycles at d = 64, 227 at d = 1024.", "",
             "| mode | lanes | " + " | ".join(f"d={d}" for d in DS) + " |",
             "|---|---:|" + "---:|" * len(DS)]
    for mode, lanes, lat, _ in rows:
        lines.append(f"| {mode} | {lanes} | " + " | ".join(map(str, lat)) + " |")
    lines.append("| paper | - | " + " | ".join(str(PAPER.get(d, "")) for d in DS) + " |")
    frows = fmax_table()
    core = IterNorm(fmt="bf16", lanes=16, max_d=1024, fmax=100, start="rom", iters=1)
    tree = core.tree_latency
    lines += ["", "The fmax build (`--fmax 100`, l2, bf16, max_d 1024): at 100 MHz each "
              f"dependent FX multiply-add takes {core.prog_lf} cycles (its result "
              "forwarded into the next op's operand register), an update "
              f"{3 * core.prog_lf} ({2 * core.prog_lf} for the first after IterNorm's "
              f"starts, which write u = a0*a0); the {core.partials} partial sums' 16 "
              f"lanes are added on a tree of FX adders ({tree} cycles, its operands "
              "registered at each level), then on the "
              "scalar unit.", "",
              "| build | lanes | " + " | ".join(f"d={d}" for d in DS) + " |",
              "|---|---:|" + "---:|" * len(DS)]
    for label, lanes, lat in frows:
        lines.append(f"| {label} | {lanes} | " + " | ".join(map(str, lat)) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.md").write_text("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matplotlib.rcParams["svg.hashsalt"] = "lpcores"
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    styles = {"l2": "-", "rmsnorm": "--", "layernorm": ":"}
    for mode, lanes, lat, _ in rows:
        ax.plot(DS, lat, styles[mode], marker="o", ms=3, label=f"{mode}, {lanes} lanes")
    for (label, lanes, lat), col in zip(frows, ("firebrick", "navy", "darkgreen")):
        ax.plot(DS, lat, "-.", color=col, lw=2, marker="s", ms=4,
                label=f"{label}, {lanes} lanes")
    ax.plot(list(PAPER), list(PAPER.values()), "k*-", ms=10, label="paper (IterNorm)")
    ax.set_xlabel("d (vector length)")
    ax.set_ylabel("cycles, first beat in to last beat out")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("IterNorm latency against d (bf16; one-cycle build K = 5; "
                 "fmax build dash-dot)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out / "latency.png", dpi=110, metadata={"Software": None})
    fig.savefig(args.out / "latency.svg", metadata={"Date": None, "Creator": None})
    print("\n".join(lines))
    print(f"wrote {args.out / 'latency.md'}, latency.png, latency.svg")


if __name__ == "__main__":
    main()
