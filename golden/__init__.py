"""Vectorized numpy golden models (``lpcores.golden``), bit-exact to the hardware.

Each is checked against an independent oracle in tests/: ml_dtypes for the codecs,
exact rational arithmetic for FMA and Dot.
"""

from .codec import ROUNDINGS, convert, decode, encode, encode_exact, fields
from .dot import dot
from .fma import fma

__all__ = ["ROUNDINGS", "convert", "decode", "encode", "encode_exact", "fields", "fma",
           "dot"]
