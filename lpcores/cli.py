"""The ``lpcores`` command line.

    lpcores generate <core> [core flags] --out DIR
    lpcores sim      <core> [core flags] [--sim verilator|icarus|all] [--seed N]
    lpcores synth    <core> [core flags] --target T [--device D] [--pnr] [--json FILE]
    lpcores sweep    CONFIG.toml [-j N] [--out PAGE.md]
    lpcores demo     [--out DIR]

Bad parameters give one sentence on stderr and exit status 2, never a traceback.
"""

import argparse
import json
import sys
from pathlib import Path

from .cores import CORES
from .errors import ParamError
from lpcores.synth.flow import SynthError

from lpcores.synth.flow import TARGETS


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"lpcores: error: {message}\n")


def _add_core_flags(p, spec):
    for o in spec.options:
        if o.boolean:
            p.add_argument(o.flag, dest=o.dest, action=argparse.BooleanOptionalAction,
                           default=o.default, help=o.help)
        else:
            p.add_argument(o.flag, dest=o.dest, type=o.type, default=o.default,
                           required=o.required, choices=o.choices,
                           help=o.help + (f" (default {o.default})"
                                          if o.default is not None else ""))


def _core_kwargs(spec, args):
    return {o.dest: getattr(args, o.dest) for o in spec.options}


def _parser():
    p = _Parser(prog="lpcores", description="Generate, verify and synthesize "
                "bit-exact low-precision arithmetic cores.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    def per_core(cmd, help_, extra):
        sp = sub.add_parser(cmd, help=help_)
        cores = sp.add_subparsers(dest="core", required=True, parser_class=_Parser,
                                  metavar="core")
        for spec in CORES.values():
            cp = cores.add_parser(spec.name, help=spec.summary)
            _add_core_flags(cp, spec)
            extra(cp)

    def gen_extra(cp):
        cp.add_argument("--out", required=True, type=Path,
                        help="output directory for <module>.v and <module>.json")

    def sim_extra(cp):
        cp.add_argument("--sim", default="verilator",
                        choices=("verilator", "icarus", "all"))
        cp.add_argument("--seed", type=int, default=1)
        cp.add_argument("--build", type=Path, default=Path("build"),
                        help="build root (one directory per parameter set)")

    def synth_extra(cp):
        cp.add_argument("--target", required=True, choices=TARGETS)
        cp.add_argument("--device", default=None,
                        help="ice40: up5k (default) | hx8k; ecp5: 25k (default) | 45k | 85k")
        cp.add_argument("--pnr", action="store_true",
                        help="place and route with nextpnr (ice40, ecp5) for Fmax")
        cp.add_argument("--no-dsp", dest="dsp", action="store_false",
                        help="ecp5: map multipliers to LUTs")
        cp.add_argument("--seeds", type=int, default=1,
                        help="nextpnr seeds to try (the best Fmax is reported)")
        cp.add_argument("--json", type=Path, default=None, help="write the report here")
        cp.add_argument("--build", type=Path, default=Path("build"))

    per_core("generate", "write <module>.v and its sidecar <module>.json", gen_extra)
    per_core("sim", "run the cocotb regression of one core on the generated Verilog",
             sim_extra)
    per_core("synth", "synthesize one core and report its cost", synth_extra)
    sw = sub.add_parser("sweep", help="synthesize a grid of cores x parameters x "
                        "targets from a TOML config (cached, parallel); write the "
                        "results page, table and plots")
    sw.add_argument("config", type=Path)
    sw.add_argument("-j", "--jobs", type=int, default=None,
                    help="parallel jobs (default: one per CPU)")
    sw.add_argument("--out", type=Path, default=None,
                    help="the results page (default: the config's [sweep] output)")
    d = sub.add_parser("demo", help="generate a core, verify it, synthesize it for "
                       "ECP5 and print the result table")
    d.add_argument("--out", type=Path, default=Path("lpcores_demo"))
    return p


def _sims(choice):
    from lpcores.sim.tools import available
    if choice == "all":
        return [s for s in ("verilator", "icarus") if available(s)]
    return [choice]


def cmd_generate(spec, args):
    from lpcores.hdl import generate
    core = spec.build(**_core_kwargs(spec, args))
    if args.out.exists() and not args.out.is_dir():
        raise ParamError(f"--out must be a directory, got --out={args.out} (a file)")
    v, j = generate(core, args.out)
    print(v)
    print(j)
    return 0


def cmd_sim(spec, args):
    from lpcores.sim import runner
    core = spec.build(**_core_kwargs(spec, args))
    rc = 0
    for sim in _sims(args.sim):
        res = runner.run(core, spec.testbench_for(core), sim=sim, seed=args.seed,
                         build_root=args.build)
        print(res.summary())
        if not res.ok:
            print(runner._failure_text(res.log), file=sys.stderr)
            rc = 1
    return rc


def _synth(spec, core, args):
    from lpcores.hdl import generate
    from lpcores.synth import check_target, run_synth
    check_target(args.target, args.device, args.pnr)     # before any slow work
    bdir = Path(args.build) / "synth" / args.target / core.module_name
    v, j = generate(core, bdir)
    res = run_synth(v, json.loads(j.read_text()), args.target, device=args.device,
                    pnr=args.pnr, dsp=args.dsp, seeds=args.seeds, workdir=bdir)
    return res


def cmd_synth(spec, args):
    from lpcores.synth import report_markdown
    core = spec.build(**_core_kwargs(spec, args))
    res = _synth(spec, core, args)
    print(report_markdown(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


def cmd_demo(args):
    """fp32 -> e4m3 converter: generate, verify on every simulator present,
    synthesize for ECP5 with nextpnr, print one table."""
    from lpcores.hdl import generate
    from lpcores.sim import runner
    from lpcores.sim.tools import available
    from lpcores.synth import run_synth
    spec = CORES["convert"]
    core = spec.build(in_fmt="fp32", out_fmt="e4m3", stages=1)
    out = args.out
    v, j = generate(core, out)
    print(f"generated {v} and {j}")
    rows = []
    ok = True
    for sim in ("verilator", "icarus"):
        if not available(sim):
            print(f"{sim}: not installed, skipped")
            continue
        res = runner.run(core, spec.testbench, sim=sim, build_root=out / "build")
        print(res.summary())
        ok &= res.ok
        rows.append(("regression", sim, "PASS" if res.ok else "FAIL"))
    syn = run_synth(v, json.loads(j.read_text()), "ecp5", pnr=True,
                    workdir=out / "build" / "synth")
    r = syn["resources"]
    print()
    print(f"| core | regression | ECP5 LUTs | FFs | DSPs | Fmax (MHz) | latency |")
    print(f"|---|---|---|---|---|---|---|")
    reg = ", ".join(f"{s} {v}" for _, s, v in rows)
    print(f"| {core.module_name} | {reg} | {r['luts']} | {r['ffs']} | {r['dsps']} | "
          f"{syn['fmax_mhz']:.1f} | {syn['latency']} |")
    return 0 if ok else 1


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "demo":
            return cmd_demo(args)
        if args.cmd == "sweep":
            from lpcores.synth.sweep import run_sweep
            if args.jobs is not None and args.jobs < 1:
                raise ParamError(f"--jobs must be a positive integer, got --jobs={args.jobs}")
            res = run_sweep(args.config, jobs=args.jobs, out=args.out)
            return 1 if res["failures"] else 0
        spec = CORES[args.core]
        return {"generate": cmd_generate, "sim": cmd_sim,
                "synth": cmd_synth}[args.cmd](spec, args)
    except ParamError as e:
        print(f"lpcores: error: {e}", file=sys.stderr)
        return 2
    except SynthError as e:
        print(f"lpcores: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"lpcores: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
