"""Re-measure the delay model's primitives through the project's own flow.

Each primitive is a tiny stream core (``Pipeline`` with no cut: the input register of
the timing wrapper, the primitive, the core's output register), synthesized and
placed with nextpnr exactly like a core (``synth/flow.py``); the measured
register-to-register delay is printed beside what ``hdl/timing.py`` predicts
(``reg`` plus the primitive's charge). The constants in ``hdl/timing.py`` are set
from these tables (and from the critical paths of real cores, docs/timing.md).

    python bench/calibrate_timing.py --family ecp5     # ~5 minutes on 2 cores
    python bench/calibrate_timing.py --family ice40    # iCE40 UP5K

Writes ``docs/timing_<family>.md``.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from amaranth.hdl import Module, Signal

from lpcores.hdl import generate
from lpcores.hdl.base import Field, Pipeline, StreamCore
from lpcores.hdl.fp import lzc, shift_levels, multiply, unpack
from lpcores.hdl.timing import fabric
from lpcores.synth import run_synth


class Primitive(StreamCore):
    """``o = build(m, i)`` between two registers; ``charge(fab)`` is the model."""

    def __init__(self, name, in_w, out_w, build, charge):
        self.module_name = f"prim_{name}"
        self.params = {"primitive": name}
        self.latency = 1
        self.in_fields = [Field("x", in_w)]
        self.out_fields = [Field("y", out_w)]
        self._build, self.charge = build, charge
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        pipe = Pipeline(m, self, (), 0)
        pipe.output(y=self._build(m, self.i.payload.x))
        return m


def _add(w):
    return Primitive(f"add{w}", 2 * w, w + 1, lambda m, x: x[:w] + x[w:],
                     lambda f: f.carry(w + 1))


def _lzc(w):
    def build(m, x):
        _, c = lzc(x, name="l", m=m, pipe=_Probe())
        return c
    return Primitive(f"lzc{w}", w, max(1, (w - 1).bit_length()), build,
                     lambda f: (w - 1).bit_length() * f.lzc_level())


def _shift(w):
    k = (w - 1).bit_length()
    return Primitive(f"shift{w}", w + k, w,
                     lambda m, x: shift_levels(m, x[:w], x[w:], left=True),
                     lambda f: k * f.shift_level())


def _mul(fmt):
    from lpcores.formats import get_format
    f = get_format(fmt)

    def build(m, x):
        ua = unpack(m, x[:f.bits], fmt, name="a")
        ub = unpack(m, x[f.bits:], fmt, name="b")
        return multiply(m, ua, fmt, ub, fmt, name="p").mag
    w = f.man_bits + 1
    return Primitive(f"mul_{fmt}", 2 * f.bits, 2 * w, build,
                     lambda fab: fab.carry(f.exp_bits + 1) + fab.lut
                     + (fab.mul_lut(w, w) if w <= 5 else fab.dsp_mul))


class _Probe:
    """Stands in for a Pipeline inside a primitive: no cut, no charge."""
    fab = fabric("ecp5")
    wide = False
    spread = 1

    def charge(self, ns):
        pass

    def cut(self, point, *values):
        return values if len(values) != 1 else values[0]


def _reduce(w):
    return Primitive(f"or{w}", w, 1, lambda m, x: x.any(), lambda f: f.reduce(w))


PRIMITIVES = [lambda: _add(24), lambda: _add(32), lambda: _add(64),
              lambda: _reduce(16), lambda: _reduce(256),
              lambda: _lzc(32), lambda: _lzc(64), lambda: _shift(32),
              lambda: _shift(64), lambda: _mul("e4m3"), lambda: _mul("bf16")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="ecp5", choices=("ecp5", "ice40"))
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    fab = fabric(args.family)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lpcores_cal_") as tmp:
        for make in PRIMITIVES:
            core = make()
            bdir = Path(tmp) / core.module_name
            v, j = generate(core, bdir)
            rep = run_synth(v, json.loads(j.read_text()), args.family, pnr=True,
                            seeds=args.seeds, workdir=bdir)
            model = fab.reg + core.charge(fab)
            got = 1000.0 / rep["fmax_mhz"] if rep.get("fmax_mhz") else None
            rows.append((core.module_name[5:], rep["resources"]["luts"], model, got))
            print(f"{rows[-1][0]:>10}: model {model:5.2f} ns, measured "
                  f"{'-' if got is None else f'{got:5.2f}'} ns", file=sys.stderr)
    lines = [f"# Delay model against measurement: {args.family}", "",
             "`python bench/calibrate_timing.py --family " + args.family + "` (nextpnr "
             f"best of {args.seeds} seed(s)); register to register, ns.", "",
             "| primitive | LUTs | model ns | measured ns | measured / model |",
             "|---|---:|---:|---:|---:|"]
    for name, luts, model, got in rows:
        lines.append(f"| {name} | {luts} | {model:.2f} | "
                     + ("- | -" if got is None else f"{got:.2f} | {got / model:.2f}")
                     + " |")
    out = args.out or Path(__file__).resolve().parent.parent / "docs" / \
        f"timing_{args.family}.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
