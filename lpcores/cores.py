"""The registry of generator cores: one entry per core, shared by the CLI, the
regression runner and the synthesis sweeps.

Each :class:`CoreSpec` names the generator class, its testbench module and its
command-line options; an option's ``dest`` is the generator's keyword argument.
"""

import importlib
from dataclasses import dataclass, field

from .formats import FLOAT_FORMATS


@dataclass(frozen=True)
class Opt:
    flag: str
    dest: str
    help: str
    type: type = str
    default: object = None
    required: bool = False
    choices: tuple = None
    boolean: bool = False     # --flag / --no-flag


def _timing_opts():
    """``--stages`` or ``--fmax`` (clock-directed pipelining) and its ``--family``."""
    from lpcores.hdl.timing import FAMILIES
    return (
        Opt("--stages", "stages", "pipeline registers besides the output register "
            "(default 0; alternative to --fmax)", type=int),
        Opt("--fmax", "fmax", "clock to meet in MHz: the generator places the fewest "
            "registers its delay model says meet it (alternative to --stages)",
            type=float),
        Opt("--family", "family", "FPGA family of the --fmax delay model (synth: the "
            "--target)", choices=FAMILIES),
    )


def _contexts_opt():
    return Opt("--contexts", "contexts", "independent dot products interleaved beat by "
               "beat (beat j belongs to context j mod K), so the accumulate loop may be "
               "K cycles deep at full throughput", type=int, default=1)


@dataclass(frozen=True)
class CoreSpec:
    name: str
    cls: str                  # "module:Class"
    testbench: str
    summary: str
    options: tuple = field(default_factory=tuple)

    def load(self):
        mod, cls = self.cls.split(":")
        return getattr(importlib.import_module(mod), cls)

    def build(self, **kwargs):
        return self.load()(**kwargs)

    def testbench_for(self, core):
        """The testbench module of a built core (``dot --mx`` builds an MXDot)."""
        for spec in CORES.values():
            if spec.cls.endswith(":" + type(core).__name__):
                return spec.testbench
        return self.testbench


CORES = {c.name: c for c in [
    CoreSpec(
        "convert", "lpcores.hdl.convert:Convert", "lpcores.sim.convert",
        "float format conversion (RNE or RTZ, subnormals kept, SPEC §2 specials)",
        (
            Opt("--in-fmt", "in_fmt", "input format", required=True, choices=FLOAT_FORMATS),
            Opt("--out-fmt", "out_fmt", "output format", required=True,
                choices=FLOAT_FORMATS),
            Opt("--saturate", "saturate", "clamp overflow and Inf to ±max", type=bool,
                default=False, boolean=True),
            Opt("--rounding", "rounding", "rounding mode", default="rne",
                choices=("rne", "rtz")),
        ) + _timing_opts()),
    CoreSpec(
        "fma", "lpcores.hdl.fma:FMA", "lpcores.sim.fma",
        "fused multiply-add r = round(a*b + c), one rounding, IEEE specials",
        (
            Opt("--a-fmt", "a_fmt", "format of a", required=True, choices=FLOAT_FORMATS),
            Opt("--b-fmt", "b_fmt", "format of b", required=True, choices=FLOAT_FORMATS),
            Opt("--acc-fmt", "acc_fmt", "format of c and r", default="fp32",
                choices=("fp32", "fp16", "bf16")),
            Opt("--rounding", "rounding", "rounding mode", default="rne",
                choices=("rne", "rtz")),
        ) + _timing_opts()),
    CoreSpec(
        "dot", "lpcores.hdl.dot:make_dot", "lpcores.sim.dot",
        "dot-product / MAC engine: exact (Kulisch) or per-beat fp accumulation; "
        "--mx: the MX engine (same as the mxdot core)",
        (
            Opt("--mx", "mx", "MX mode: E8M0 block scales with every beat, blocks of "
                "32, one fp32 rounding per block (builds the mxdot core)", type=bool,
                default=False, boolean=True),
            Opt("--a-fmt", "a_fmt", "element format of a", required=True,
                choices=FLOAT_FORMATS + ("int8",)),
            Opt("--b-fmt", "b_fmt", "element format of b", required=True,
                choices=FLOAT_FORMATS + ("int8",)),
            Opt("--out-fmt", "out_fmt", "result format (default fp32; int32 for int8)",
                choices=("fp32", "fp16", "bf16", "int32")),
            Opt("--lanes", "lanes", "element pairs per beat (1..64)", type=int, default=8),
            Opt("--accumulate", "accumulate",
                "exact (Kulisch) or fp (one rounding per beat); default exact for "
                "elements of 8 bits or fewer", choices=("exact", "fp")),
            Opt("--max-terms", "max_terms", "products per dot product the accumulator "
                "is sized for", type=int, default=1024),
            Opt("--addend", "addend", "carry an addend c with the first beat", type=bool,
                default=False, boolean=True),
            Opt("--rounding", "rounding", "rounding mode", default="rne",
                choices=("rne", "rtz")),
            Opt("--magnitude", "magnitude", "fp, no addend: the dot product of |a| and "
                "|b| (a loop with no leading-zero count)", type=bool, default=False,
                boolean=True),
            _contexts_opt(),
        ) + _timing_opts()),
]}

def _norm_opts():
    return (
        Opt("--fmt", "fmt", "element format (x, y, gamma, beta)", default="bf16",
            choices=("bf16", "fp32")),
        Opt("--lanes", "lanes", "elements per beat (power of two, 1..64)", type=int,
            default=16),
        Opt("--max-d", "max_d", "largest vector length (power of two, 64..65536)",
            type=int, default=1024),
        Opt("--mode", "mode", "l2: a*x; rmsnorm: sqrt(d)*a*x; layernorm: "
            "sqrt(d)*a*(x - mean)",
            default="l2", choices=("l2", "rmsnorm", "layernorm")),
        Opt("--iters", "iters", "Newton updates K", type=int, default=5),
        Opt("--lam", "lam", "update step, a power of two", type=float, default=0.5),
        Opt("--affine", "affine", "stream gamma and beta beside x", type=bool,
            default=False, boolean=True),
        *_timing_opts()[1:],
        Opt("--partials", "partials", "sums of squares (layernorm: and of x) kept per "
            "lane with --fmax (1..64; default: the fewest the accumulate loop needs, "
            "its depth)",
            type=int),
        Opt("--reduce", "reduce", "with --fmax, how the squares become s: window "
            "(the lanes' sums added exactly on a fixed-point window, rounded once; "
            "the default for l2 and rmsnorm from 8 lanes), tree (pairwise rounded "
            "adds on the scalar unit's multiply-add: no window-sum unit, more "
            "cycles; the default below 8 lanes and layernorm's) or squares (l2, "
            "rmsnorm: the squares themselves on the window, no lane sums, a second "
            "read of the vector: the smallest build, d/lanes cycles more)",
            choices=("tree", "window", "squares")),
    )


CORES.update({c.name: c for c in [
    CoreSpec(
        "iternorm", "lpcores.hdl.iternorm:IterNorm", "lpcores.sim.iternorm",
        "iterative L2/RMS normalization, start 2**-ceil(E/2), K Newton updates",
        _norm_opts() + (
            Opt("--start", "start", "exp (2**-ceil(E/2)) or rom (a 128-entry table on "
                "the leading bits of s, within 2**-8: fewer updates)", default="exp",
                choices=("exp", "rom")),
            Opt("--fuse", "fuse", "with --fmax and --start rom: the first update "
                "exact and rounded once, on a fixed-point unit (fewer cycles)",
                type=bool, default=False, boolean=True),)),
    CoreSpec(
        "fisrnorm", "lpcores.hdl.iternorm:FisrNorm", "lpcores.sim.iternorm",
        "the IterNorm baseline started from the fast inverse square root (0x5f3759df)",
        _norm_opts()),
]})

# -- Microscaling (SPEC §4.2 MX mode, §4.3) ---------------------------------------------
_MX_ELEMS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8")
CORES.update({c.name: c for c in [
    CoreSpec(
        "mxquant", "lpcores.hdl.mxquant:MXQuant", "lpcores.sim.mxquant",
        "fp32/bf16 blocks of 32 -> MX (E8M0 scale + 32 elements), OCP MX v1.0 rule",
        (
            Opt("--in-fmt", "in_fmt", "input format", default="fp32",
                choices=("fp32", "bf16")),
            Opt("--elem-fmt", "elem_fmt", "MX element format", required=True,
                choices=_MX_ELEMS),
            Opt("--lanes", "lanes", "values per input beat (divides 32)", type=int,
                default=32),
            Opt("--rounding", "rounding", "rne, or away (ties away from zero, as "
                "microxcaling)", default="rne", choices=("rne", "away")),
        ) + _timing_opts()),
    CoreSpec(
        "mxdot", "lpcores.hdl.mxdot:MXDot", "lpcores.sim.mxdot",
        "MX dot product: exact 32-element block sums, one fp32 rounding per block",
        (
            Opt("--a-fmt", "a_fmt", "MX element format of a", required=True,
                choices=_MX_ELEMS),
            Opt("--b-fmt", "b_fmt", "MX element format of b", required=True,
                choices=_MX_ELEMS),
            Opt("--lanes", "lanes", "element pairs per beat (divides 32)", type=int,
                default=32),
            _contexts_opt(),
            Opt("--partials", "partials", "one dot product at a block a cycle: its blocks "
                "dealt round-robin to P fp32 sums (a P-deep accumulate loop), added by "
                "a pairwise tree at the end (with --fmax, lanes 32; a power of two)",
                type=int, default=1),
        ) + _timing_opts()),
]})


# -- N:M sparsity (SPEC §4.5) ----------------------------------------------------------

_NM_FORMATS = ("bf16", "fp16", "e4m3", "e5m2", "int8")


def _nm_opts():
    return (
        Opt("--n", "n", "elements kept per group", type=int, required=True),
        Opt("--m", "m", "group size (n < m <= 16)", type=int, required=True),
        Opt("--groups", "groups", "groups per beat", type=int, default=1),
    )


def _nm_dot_opts():
    return (
        Opt("--out-fmt", "out_fmt", "result format (default fp32; int32 for int8)",
            choices=("fp32", "fp16", "bf16", "int32")),
        Opt("--accumulate", "accumulate",
            "exact (Kulisch) or fp (one rounding per beat); default exact for "
            "elements of 8 bits or fewer", choices=("exact", "fp")),
        Opt("--max-terms", "max_terms", "kept products per dot product the "
            "accumulator is sized for", type=int, default=1024),
        Opt("--addend", "addend", "carry an addend c with the first beat", type=bool,
            default=False, boolean=True),
        Opt("--rounding", "rounding", "rounding mode", default="rne",
            choices=("rne", "rtz")),
    )


def _nm_scale_opts():
    return (
        Opt("--scaled", "scaled", "score |x|*s_c with run-time loaded 8-bit "
            "per-channel scales", type=bool, default=False, boolean=True),
        Opt("--channels", "channels", "scaled: number of per-channel scales "
            "(a multiple of groups*m; default groups*m)", type=int),
    )


CORES.update({c.name: c for c in [
    CoreSpec(
        "nmprune", "lpcores.hdl.nm:NMPrune", "lpcores.sim.nmprune",
        "N:M pruner: keep the n highest-|x| (or |x|*s_c) of every m, values + indices",
        _nm_opts() + (
            Opt("--fmt", "fmt", "element format", required=True, choices=_NM_FORMATS),
        ) + _nm_scale_opts() + (
            Opt("--selection", "selection", "selection network (all-pairs ranking or "
                "Batcher sorting network)", default="allpairs",
                choices=("allpairs", "sortnet")),
        ) + _timing_opts()),
    CoreSpec(
        "nmdot", "lpcores.hdl.nm:NMDot", "lpcores.sim.nmdot",
        "N:M sparse dot product: compressed a (values + indices) x dense b, "
        "n multipliers per group",
        _nm_opts() + (
            Opt("--a-fmt", "a_fmt", "format of the compressed operand a", required=True,
                choices=FLOAT_FORMATS + ("int8",)),
            Opt("--b-fmt", "b_fmt", "format of the dense operand b", required=True,
                choices=FLOAT_FORMATS + ("int8",)),
        ) + _nm_dot_opts() + _timing_opts()),
    CoreSpec(
        "sparselinear", "lpcores.hdl.nm:SparseLinear", "lpcores.sim.nmlinear",
        "activation-sparse linear path: NMPrune on x, then NMDot with dense weights",
        _nm_opts() + (
            Opt("--x-fmt", "x_fmt", "activation format", required=True,
                choices=_NM_FORMATS),
            Opt("--w-fmt", "w_fmt", "weight format", required=True,
                choices=FLOAT_FORMATS + ("int8",)),
        ) + _nm_dot_opts() + _nm_scale_opts() + (
            Opt("--prune-stages", "prune_stages", "pipeline registers of the pruner "
                "(default 0; alternative to --fmax)", type=int),
        ) + _timing_opts()),
]})
