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
            Opt("--stages", "stages", "pipeline registers besides the output register",
                type=int, default=0),
        )),
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
            Opt("--stages", "stages", "pipeline registers besides the output register",
                type=int, default=0),
        )),
    CoreSpec(
        "dot", "lpcores.hdl.dot:Dot", "lpcores.sim.dot",
        "dot-product / MAC engine: exact (Kulisch) or per-beat fp accumulation",
        (
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
            Opt("--stages", "stages", "pipeline registers besides the output register",
                type=int, default=0),
        )),
]}
