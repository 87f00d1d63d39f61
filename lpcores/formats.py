"""The number-format registry (SPEC §2).

Every format is described once here; golden models, generators, the CLI and the
sidecar JSON all read these descriptors. Names follow ml_dtypes.

Special-value styles (``specials``):

``ieee``
    Exponent field all ones is Inf (mantissa 0) or NaN (otherwise).
``fn``
    "Finite + NaN" (float8_e4m3fn): no Inf; only S.1111.111 is NaN, so the all-ones
    exponent still holds normal numbers.
``none``
    Every code is a finite number (float6/float4 MX element formats, int8).
``e8m0``
    Unsigned powers of two 2^(code-127); 0xFF is NaN; there is no zero.
"""

from dataclasses import dataclass

from .errors import ParamError

__all__ = ["Format", "FORMATS", "FLOAT_FORMATS", "get_format"]


@dataclass(frozen=True)
class Format:
    """One number format.

    Attributes
    ----------
    name : str
        Registry name (``"e4m3"``, ``"bf16"``, ...).
    bits : int
        Width of a code.
    exp_bits, man_bits : int
        Exponent and stored-mantissa widths (0 and 7 for ``int8``, as a placeholder).
    bias : int
        Exponent bias.
    kind : str
        ``"float"``, ``"int"`` (two's complement) or ``"scale"`` (e8m0).
    specials : str
        ``"ieee"``, ``"fn"``, ``"none"`` or ``"e8m0"`` (see module docstring).
    mldtype : str
        The ml_dtypes / numpy dtype name used as the independent oracle.
    """

    name: str
    bits: int
    exp_bits: int
    man_bits: int
    bias: int
    kind: str
    specials: str
    mldtype: str

    # -- derived properties -------------------------------------------------------

    @property
    def signed(self):
        return self.kind != "scale"

    @property
    def emin(self):
        """Exponent of the smallest normal number (also the subnormal exponent)."""
        return 1 - self.bias

    @property
    def emax(self):
        """Exponent of the largest finite number."""
        top = (1 << self.exp_bits) - 1
        if self.specials == "ieee" or self.specials == "e8m0":
            top -= 1
        return top - self.bias

    @property
    def max_mag_code(self):
        """Magnitude bits (sign excluded) of the largest finite value."""
        if self.kind == "int":
            return (1 << (self.bits - 1)) - 1
        if self.specials == "ieee":
            return (((1 << self.exp_bits) - 2) << self.man_bits) | ((1 << self.man_bits) - 1)
        if self.specials in ("fn", "e8m0"):
            return (1 << (self.bits - (1 if self.signed else 0))) - 2
        return (1 << (self.bits - 1)) - 1

    @property
    def max_value(self):
        """Largest finite value, as a Python float."""
        if self.kind == "int":
            return float(self.max_mag_code)
        frac = (self.max_mag_code & ((1 << self.man_bits) - 1)) / (1 << self.man_bits)
        return (1.0 + frac) * 2.0 ** self.emax

    @property
    def has_inf(self):
        return self.specials == "ieee"

    @property
    def has_nan(self):
        return self.specials in ("ieee", "fn", "e8m0")

    @property
    def sign_bit(self):
        return self.bits - 1

    @property
    def inf_code(self):
        """Magnitude code of +Inf (IEEE formats only)."""
        assert self.has_inf
        return ((1 << self.exp_bits) - 1) << self.man_bits

    @property
    def nan_code(self):
        """The canonical quiet NaN, sign positive (SPEC §2)."""
        if self.specials == "ieee":
            return self.inf_code | (1 << (self.man_bits - 1))
        if self.specials == "fn":
            return (1 << (self.bits - 1)) - 1
        if self.specials == "e8m0":
            return 0xFF
        raise ParamError(f"format {self.name} has no NaN encoding")

    def describe(self):
        """A JSON-ready dict of the descriptor (used in sidecars)."""
        return {"name": self.name, "bits": self.bits, "exp_bits": self.exp_bits,
                "man_bits": self.man_bits, "bias": self.bias, "kind": self.kind,
                "specials": self.specials}


FORMATS = {f.name: f for f in [
    Format("fp32", 32, 8, 23, 127, "float", "ieee", "float32"),
    Format("fp16", 16, 5, 10, 15, "float", "ieee", "float16"),
    Format("bf16", 16, 8, 7, 127, "float", "ieee", "bfloat16"),
    Format("e5m2", 8, 5, 2, 15, "float", "ieee", "float8_e5m2"),
    Format("e4m3", 8, 4, 3, 7, "float", "fn", "float8_e4m3fn"),
    Format("e3m2", 6, 3, 2, 3, "float", "none", "float6_e3m2fn"),
    Format("e2m3", 6, 2, 3, 1, "float", "none", "float6_e2m3fn"),
    Format("e2m1", 4, 2, 1, 1, "float", "none", "float4_e2m1fn"),
    Format("int8", 8, 0, 7, 0, "int", "none", "int8"),
    Format("e8m0", 8, 8, 0, 127, "scale", "e8m0", "float8_e8m0fnu"),
]}

#: Signed floating-point formats (element / accumulator formats of the float cores).
FLOAT_FORMATS = tuple(n for n, f in FORMATS.items() if f.kind == "float")


def get_format(fmt, *, param="format", allowed=None):
    """Return the :class:`Format` for a registry name or descriptor.

    Raises :class:`ParamError` naming ``param`` if the format is unknown or not in
    ``allowed`` (a sequence of names).
    """
    if isinstance(fmt, Format):
        f = fmt
    elif isinstance(fmt, str) and fmt in FORMATS:
        f = FORMATS[fmt]
    else:
        choices = allowed if allowed is not None else tuple(FORMATS)
        raise ParamError(f"{param} must be one of {', '.join(choices)}, got {param}={fmt!r}")
    if allowed is not None and f.name not in allowed:
        raise ParamError(f"{param} must be one of {', '.join(allowed)}, got {param}={f.name!r}")
    return f
