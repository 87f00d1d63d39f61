"""Amaranth generators of lpcores (``lpcores.hdl``)."""

from .base import Field, StreamCore, generate, sidecar, verilog_text
from .convert import Convert

__all__ = ["Field", "StreamCore", "generate", "sidecar", "verilog_text", "Convert"]
