"""Golden Microscaling (MX): the quantizer (SPEC §4.3) and the MX dot product (SPEC
§4.2, MX mode). Vectorized numpy, bit-exact to ``hdl/mxquant.py`` and ``hdl/mxdot.py``.

Blocks are 32 elements sharing one E8M0 scale ``2**(code - 127)`` (0xFF = NaN).

``mx_quantize(x, elem_fmt, rounding)`` (OCP MX v1.0 rule)
    ``shared = floor(log2(max|v|)) - emax_elem``, clamped to [-127, 127]; the scale
    code is ``shared + 127``. An all-zero block has ``max|v| = 0``, ``log2 = -inf``,
    so the same clamp gives scale 0x00 and its elements are (signed) zeros. A block
    holding any NaN or Inf gets scale 0xFF; its elements are then meaningless (the
    NaN scale makes every one NaN) and are set to the element format's canonical NaN
    (e4m3 0x7F, e5m2 0x7E) or +0 for formats without NaN (fp6, fp4, int8).
    Each element is ``v / 2**shared`` rounded once, RNE (``rounding="rne"``) or ties
    away from zero (``"away"``, microxcaling's "nearest"), then saturated to
    ``±max``. Float elements keep subnormals. MXINT8 elements are Q1.6
    (value = int8 * 2**-6) clamped to ±127 (symmetric; -128 is never produced).
    FP32 subnormal inputs are exact: ``floor(log2)`` of a subnormal is its true
    exponent (down to -149), never flushed.

``mx_dot(a_codes, a_scales, b_codes, b_scales, a_fmt, b_fmt, c=None)``
    Per block ``k``: ``S_k`` = the exact sum of the 32 products (integers at the
    products' common LSB), then ``acc <- RNE_fp32(acc + S_k * 2**(sa + sb - 254))``:
    one rounding per block, in block order, starting from ``c`` (an fp32 code) or -0
    (the IEEE additive identity). A NaN scale (0xFF) or a NaN element makes the
    block NaN; Inf x 0 is NaN; Inf terms follow IEEE (SPEC §4.1), including an Inf
    accumulator meeting an Inf of the other sign (NaN) and a scaled block sum that
    overflows fp32 (±Inf).

Why one rounding per 32-block rather than per 8 elements (what a chain of 8-wide
FP32 adders does): the block sum is exact in a small fixed-point word (e4m3: 42
bits), so the only error is the one rounding of each block into fp32, n roundings
for n blocks instead of 4n; the result does not depend on how many lanes the
hardware has (8, 16 and 32 lanes give identical bits, and the golden model needs no
``lanes`` parameter); cancellation inside a block is exact; and the scale applies to
an exact value, so scaling never adds a rounding of its own. The price is only the
block accumulator (tens of bits), not a wider fp32 datapath.
"""

import numpy as np

from lpcores.errors import ParamError, check_choice
from lpcores.formats import get_format

from .codec import encode_exact
from .fma import exact_parts, fma, round_sum

__all__ = ["mx_quantize", "mx_dot", "MX_ELEM_FORMATS", "EMAX_ELEM", "BLOCK",
           "MX_ROUNDINGS", "mx_decode"]

BLOCK = 32
MX_ELEM_FORMATS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8")
MX_ROUNDINGS = ("rne", "away")
#: exponent of the element format's largest normal (SPEC §4.3)
EMAX_ELEM = {"e4m3": 8, "e5m2": 15, "e3m2": 4, "e2m3": 2, "e2m1": 2, "int8": 0}
INT8_FRAC = 6           # MXINT8 is Q1.6
INT8_MAX = 127          # symmetric clamp


def _elem(fmt, param):
    return get_format(fmt, param=param, allowed=MX_ELEM_FORMATS)


def _bad_element_code(f):
    return f.nan_code if f.has_nan else 0


def mx_quantize(x, elem_fmt, rounding="rne"):
    """Quantize blocks of 32 fp32/bf16 values into MX.

    Parameters
    ----------
    x : array_like of float, shape (..., 32)
        fp32 (or bf16) values; float64 input must hold values exactly representable
        in fp32.
    elem_fmt : str
        ``e4m3``, ``e5m2``, ``e3m2``, ``e2m3``, ``e2m1`` or ``int8``.
    rounding : str
        ``"rne"`` (default) or ``"away"`` (ties away from zero).

    Returns
    -------
    scales : uint8 array, shape (...)
        E8M0 codes.
    codes : array, shape (..., 32)
        Element codes (uint8; int8 as its two's-complement byte).
    """
    f = _elem(elem_fmt, "elem_fmt")
    check_choice("rounding", rounding, MX_ROUNDINGS)
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise ParamError(f"x must be an array of floats (fp32 or bf16 values), got "
                         f"dtype {x.dtype}")
    if x.ndim == 0 or x.shape[-1] != BLOCK:
        raise ParamError(f"x must have shape (..., 32), got shape {x.shape}")
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        x32 = xd.astype(np.float32).astype(np.float64)
    if not np.array_equal(x32, xd, equal_nan=True):
        raise ParamError("x must hold fp32 (or bf16) values exactly; round it to fp32 "
                         "first")
    finite = np.isfinite(xd)
    bad = ~finite.all(axis=-1)
    xf = np.where(finite, xd, 0.0)
    m, e = np.frexp(np.abs(xf))                   # |v| = m * 2**e, m in [0.5, 1)
    mag = np.ldexp(m, 24).astype(np.int64)        # exact: fp32 has 24 bits
    exp = e.astype(np.int64) - 24
    sign = np.signbit(xf).astype(np.int64)
    nz = mag != 0
    flog = np.where(nz, e.astype(np.int64) - 1, np.iinfo(np.int64).min // 2)
    emax_blk = flog.max(axis=-1)                  # floor(log2(max|v|)); -inf if all 0
    shared = np.clip(emax_blk - EMAX_ELEM[f.name], -127, 127)
    scales = np.where(bad, 0xFF, shared + 127).astype(np.uint8)

    # v / 2**shared = ±mag * 2**t_exp; zeros get t_exp 0 (encode_exact's int8 path
    # saturates a zero whose exponent is large)
    t_exp = np.where(nz, exp - shared[..., None], 0)
    if rounding == "away":
        # Ties away from zero = RNE of the value plus a sticky bit far below the
        # rounding point (30 bits under a 24-bit significand; every element format
        # keeps at most 7 of them): an exact tie becomes "above half", nothing else
        # changes side.
        mag, t_exp = (mag << 30) + nz, t_exp - 30
    if f.kind == "int":
        # Q1.6: round v / 2**shared * 64 to an integer, clamp to ±127
        q = encode_exact(sign, mag, t_exp + INT8_FRAC, "int8").astype(np.int64)
        q = np.where(q >= 128, q - 256, q)
        codes = (np.clip(q, -INT8_MAX, INT8_MAX) & 0xFF).astype(np.uint8)
    else:
        codes = encode_exact(sign, mag, t_exp, f, saturate=True)
    codes = np.where(bad[..., None], _bad_element_code(f), codes).astype(codes.dtype)
    return scales, codes


def _parts(codes, f):
    """Element codes -> (sign, sig, exp0, zero, inf, nan): value = ±sig * 2**exp0."""
    if f.kind == "int":
        c = np.asarray(codes, dtype=np.int64)
        if c.size and (c.min() < 0 or c.max() > 255):
            raise ParamError(f"codes must be in 0..255 for int8, got "
                             f"{c.min() if c.min() < 0 else c.max()}")
        v = np.where(c >= 128, c - 256, c)
        z = v == 0
        no = np.zeros_like(z)
        return ((v < 0).astype(np.int64), np.abs(v), np.full_like(v, -INT8_FRAC), z,
                no, no)
    return exact_parts(codes, f)


def elem_lsb(f):
    """Weight exponent of an element format's smallest bit (int8: Q1.6)."""
    f = get_format(f)
    return -INT8_FRAC if f.kind == "int" else f.emin - f.man_bits


def _scales(s, n_blocks, shape, param):
    s = np.asarray(s)
    if s.dtype.kind not in "iu":
        raise ParamError(f"{param} must be integer E8M0 codes, got dtype {s.dtype}")
    s = s.astype(np.int64)
    if s.shape != shape[:-1] + (n_blocks,):
        raise ParamError(f"{param} must have shape {shape[:-1] + (n_blocks,)} (one scale "
                         f"per 32-element block), got {s.shape}")
    if s.size and (s.min() < 0 or s.max() > 255):
        raise ParamError(f"{param} must be E8M0 codes in 0..255, got "
                         f"{s.min() if s.min() < 0 else s.max()}")
    return s


def mx_dot(a_codes, a_scales, b_codes, b_scales, a_fmt, b_fmt, c=None, *, partials=1):
    """MX dot products over the last axis -> fp32 codes (uint32), shape (...).

    ``a_codes``, ``b_codes``: shape (..., n*32); ``a_scales``, ``b_scales``: E8M0
    codes, shape (..., n); ``c``: optional fp32 codes, the accumulator's start value.
    ``partials`` P (a power of two, 1..16): block ``k`` goes to partial sum ``k mod
    P``, each accumulated as above from -0; the P partials are then added by a fixed
    pairwise tree, level by level, ``t[i] <- RNE_fp32(t[2i] + t[2i+1])``
    (``MXDot(partials=P)``: one dot product at a block a cycle through a P-deep
    accumulate loop; docs/mx.md, "A single stream at speed"). P = 1 is the order
    above.
    """
    if not isinstance(partials, int) or isinstance(partials, bool) or \
            partials not in (1, 2, 4, 8, 16):
        raise ParamError(f"partials must be a power of two in 1..16, got "
                         f"partials={partials!r}")
    if partials > 1 and c is not None:
        raise ParamError("c (an accumulator start) applies to partials=1 only, got "
                         f"partials={partials}")
    fa = _elem(a_fmt, "a_fmt")
    fb = _elem(b_fmt, "b_fmt")
    a = np.asarray(a_codes, dtype=np.int64)
    b = np.asarray(b_codes, dtype=np.int64)
    if a.shape != b.shape or a.ndim == 0 or a.shape[-1] % BLOCK or a.shape[-1] == 0:
        raise ParamError(f"a_codes and b_codes must have the same shape (..., n*32), "
                         f"got {a.shape} and {b.shape}")
    nb = a.shape[-1] // BLOCK
    sa = _scales(a_scales, nb, a.shape, "a_scales")
    sb = _scales(b_scales, nb, a.shape, "b_scales")
    sga, ma, ea, za, ia, na = _parts(a, fa)
    sgb, mb, eb, zb, ib, nbn = _parts(b, fb)
    lsb = elem_lsb(fa) + elem_lsb(fb)
    sp = sga ^ sgb
    sh = ea + eb - lsb
    wide = int(sh.max(initial=0)) + 16 > 56        # products up to 16 bits x 2**sh
    prod = (ma * mb).astype(object if wide else np.int64)
    val = np.left_shift(prod, sh.astype(object) if wide else sh)
    val = np.where(sp == 1, -val, val)
    nan = na | nbn | (ia & zb) | (za & ib)
    inf = (ia | ib) & ~nan
    negz = (za | zb) & (sp == 1)
    blk = a.shape[:-1] + (nb, BLOCK)
    val, nan, inf, negz, spb = (v.reshape(blk) for v in (val, nan, inf, negz, sp))
    acc = (np.full(a.shape[:-1], 0x80000000, dtype=np.int64) if c is None
           else np.broadcast_to(np.asarray(c, dtype=np.int64), a.shape[:-1]))
    accs = [acc] * partials
    for k in range(nb):
        s_nan = (sa[..., k] == 0xFF) | (sb[..., k] == 0xFF)
        accs[k % partials] = round_sum(val[..., k, :].sum(axis=-1),
                                       lsb + sa[..., k] + sb[..., k] - 254,
                                       nan=nan[..., k, :].any(-1) | s_nan,
                                       pinf=(inf & (spb == 0))[..., k, :].any(-1),
                                       ninf=(inf & (spb == 1))[..., k, :].any(-1),
                                       negzero=negz[..., k, :].all(-1),
                                       c=accs[k % partials],
                                       out_fmt="fp32").astype(np.int64)
    # the tree's adds as the hardware does them: RNE_fp32(t[2i] * 1.0 + t[2i+1])
    one = np.full(a.shape[:-1], 0x3F800000, dtype=np.int64)
    while len(accs) > 1:
        accs = [fma(accs[2 * i], one, accs[2 * i + 1], "fp32", "fp32", "fp32")
                .astype(np.int64) for i in range(len(accs) // 2)]
    return np.asarray(accs[0]).astype(np.uint32)


def mx_decode(scales, codes, elem_fmt):
    """MX blocks -> float64 values, shape (..., 32) (NaN where the scale is 0xFF)."""
    f = _elem(elem_fmt, "elem_fmt")
    c = np.asarray(codes, dtype=np.int64)
    if f.kind == "int":
        v = np.where(c >= 128, c - 256, c).astype(np.float64) * 2.0 ** -INT8_FRAC
    else:
        from .codec import decode
        v = decode(c, f)
    s = np.asarray(scales, dtype=np.int64)
    scale = np.where(s == 0xFF, np.nan, np.ldexp(1.0, s - 127))
    return v * scale[..., None]
