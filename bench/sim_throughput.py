"""Verification throughput: FMA vectors per second of the cocotb regression on each
simulator, and (with --suite) the wall time of the default test suite.

    python bench/sim_throughput.py [--suite] [--out bench/sim_throughput.md]

Vectors/s is the slope between a short and a long run of the same testbench (bf16 x
bf16 + fp32 FMA, 2 pipeline stages, random valid/ready backpressure on), so build
time and the fixed per-run cost (simulator start, the special-value grid, reset and
timing tests) cancel out. Numbers are this machine's, on a shared and noisy host:
read the ratios, not the absolute values.
"""

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lpcores.hdl.fma import FMA
from lpcores.sim import runner
from lpcores.sim.tools import available

SIZES = {"verilator": (2000, 22000), "icarus": (500, 2500)}


def timed(core, sim, n, build):
    t = time.monotonic()
    res = runner.run(core, "lpcores.sim.fma", sim=sim, options={"mode": "random",
                     "random": n}, build_root=build, waves_on_failure=False)
    if not res.ok:
        sys.exit(f"the regression failed on {sim}: {res.summary()}")
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", action="store_true",
                    help="also time `pytest -n auto` (the default suite)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name(
        "sim_throughput.md"))
    args = ap.parse_args()
    core = FMA(a_fmt="bf16", b_fmt="bf16", acc_fmt="fp32", stages=2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sim in ("verilator", "icarus"):
            if not available(sim):
                print(f"{sim}: not installed, skipped")
                continue
            lo, hi = SIZES[sim]
            timed(core, sim, 10, Path(tmp))               # build once
            t_lo = timed(core, sim, lo, Path(tmp))
            t_hi = timed(core, sim, hi, Path(tmp))
            rate = (hi - lo) / max(t_hi - t_lo, 1e-9)
            rows.append((sim, rate))
            print(f"{sim}: {rate:,.0f} FMA vectors/s ({lo}: {t_lo:.1f} s, "
                  f"{hi}: {t_hi:.1f} s)")
    lines = ["## Verification throughput", "",
             f"`python bench/sim_throughput.py{' --suite' if args.suite else ''}` on "
             f"{platform.machine()}, {_cpus()} CPUs: cocotb 2 regression of "
             f"`{core.module_name}` with random backpressure, vectors per second as the "
             "slope between a short and a long run.", "",
             "| simulator | FMA vectors/s | relative to Verilator |", "|---|---:|---:|"]
    base = rows[0][1] if rows else 1
    lines += [f"| {s} | {r:,.0f} | {r / base:.2f}x |" for s, r in rows]
    if args.suite:
        root = Path(__file__).resolve().parent.parent
        t = time.monotonic()
        rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "auto"],
                            cwd=root, capture_output=True, text=True)
        wall = time.monotonic() - t
        last = (rc.stdout.strip().splitlines() or ["?"])[-1]
        lines += ["", f"Default test suite (`pytest -n auto`): {wall / 60:.1f} min wall "
                  f"time ({last.strip('= ')})."]
        print(lines[-1])
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


def _cpus():
    import os
    return os.cpu_count()


if __name__ == "__main__":
    main()
