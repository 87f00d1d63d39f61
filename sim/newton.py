"""cocotb testbench of ``NewtonStep`` (driven by ``tests/test_newton.py``).

Inputs ``s`` (FX codes): every interval of the ROM start (both exponent parities, the
64 leading-fraction values) at its lowest, its highest and a middle significand, at
exponents spread over IterNorm's range of s (2**-298 .. 2**266); then seeded random
significands and exponents. Expected codes from ``golden.iternorm.fused_update`` (exact
rationals) of ``s`` and the ROM start ``a0_rom(s)``.
"""

import importlib

import numpy as np

from .stream import pack, standard_tests, unpack
from .wsum import fx_value
from .wsum import fx_code as _fx_code


def _G():
    return importlib.import_module("lpcores.golden.iternorm")


def fx_code(v):
    """FX codes of positive float64 FX values."""
    f, e = np.frexp(np.asarray(v, dtype=np.float64))
    return _fx_code(np.ldexp(f, 24).astype(np.int64), e - 1)


def vectors(tb):
    rng = tb.nprng("vectors")
    # the ROM's index: E's parity r and the 6 fraction bits k below the hidden one
    k = np.arange(64)
    frac = np.concatenate([k << 17, (k << 17) | 0x1FFFF, (k << 17) | 0x10000])
    ends = []
    for e in (-298, -133, -1, 0, 1, 2, 127, 265, 266):
        for r in (0, 1):
            ee = 2 * (e // 2) + r
            ends.append(np.ldexp((1 << 23 | frac).astype(np.float64), ee - 23))
    n = int(tb.options.get("random", 6000))
    sig = rng.integers(1 << 23, 1 << 24, n)
    e = rng.integers(-298, 267, n)
    s = np.concatenate([*ends, np.ldexp(sig.astype(np.float64), e - 23)])
    return {"s": fx_code(s)}, f"{len(s) - n} directed+{n} random"


def expected(tb, f):
    G = _G()
    s = fx_value(f["s"])
    r = G.fused_update(s, G.a0_rom(s), -tb.sidecar["params"]["lam_shift"])
    return pack(tb.fo, r=fx_code(r))


def describe(tb):
    def render(inp, exp, got):
        s = fx_value(unpack(tb.fi, [inp])["s"])[0]
        e, g = fx_value(unpack(tb.fo, [exp, got])["r"])
        return f"s={s!r}: a1 expected={e!r} got={g!r}"
    return render


test_timing, test_vectors, test_reset_midstream = standard_tests(vectors, expected,
                                                                 describe)
