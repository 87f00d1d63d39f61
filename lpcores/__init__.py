"""lpcores: generators of bit-exact low-precision AI arithmetic cores.

Subpackages: ``lpcores.formats`` (the format registry), ``lpcores.golden`` (numpy
golden models), ``lpcores.hdl`` (Amaranth generators), ``lpcores.sim`` (cocotb
testbenches), ``lpcores.synth`` (Yosys / nextpnr flows), ``lpcores.cli``.
"""

import importlib

__version__ = "0.1.0"


def __getattr__(name):
    # `from lpcores import golden` etc. without importing Amaranth/cocotb eagerly.
    if name in ("golden", "hdl", "sim", "synth", "formats", "cli"):
        return importlib.import_module(f"lpcores.{name}")
    raise AttributeError(f"module 'lpcores' has no attribute {name!r}")
