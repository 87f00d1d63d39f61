"""Amaranth generators of lpcores (``lpcores.hdl``).

Every core is an Amaranth :class:`~amaranth.lib.wiring.Component` with the stream
interface of SPEC §3 (``i`` and ``o``, ``lib.stream`` signatures over packed struct
payloads) and keyword arguments named as the CLI's flags (``--a-fmt`` is
``a_fmt=``; ``stages=`` or ``fmax=``/``family=``). Use one as a submodule of your own
design, simulate it with Amaranth's simulator and convert it with the rest of your
design (examples/), or write it out alone with :func:`generate`.
"""

from .base import Field, StreamCore, generate, sidecar, verilog_text
from .convert import Convert
from .dot import Dot
from .fma import FMA
from .iternorm import FisrNorm, IterNorm
from .mxdot import MXDot
from .mxquant import MXQuant
from .nm import NMDot, NMPrune, SparseLinear

__all__ = ["Field", "StreamCore", "generate", "sidecar", "verilog_text", "Convert", "FMA",
           "Dot", "MXDot", "MXQuant", "IterNorm", "FisrNorm", "NMPrune", "NMDot",
           "SparseLinear"]
