"""Vectorized numpy golden models (``lpcores.golden``), bit-exact to the hardware.

Each is checked against an independent oracle in tests/: ml_dtypes for the codecs,
exact rational arithmetic for FMA and Dot.
"""

from .codec import ROUNDINGS, convert, decode, encode, encode_exact, fields
from .dot import dot
from .fma import fma

__all__ = ["ROUNDINGS", "convert", "decode", "encode", "encode_exact", "fields", "fma",
           "dot"]
from .iternorm import fisrnorm, iternorm  # noqa: E402  (IterNorm, SPEC §4.4)
from .mx import mx_dot, mx_quantize  # noqa: E402  (Microscaling, SPEC §4.2 MX / §4.3)
from .nm import nm_dot, nm_prune, sparse_linear  # noqa: E402  (N:M sparsity, SPEC §4.5)
__all__ += ["nm_prune", "nm_dot", "sparse_linear"]
