"""cocotb testbench of ``WindowSum`` (driven by ``tests/test_wsum.py``).

Sums of 1 .. ``beats`` beats of ``lanes`` FX values each (``last`` on a sum's final
beat), every sum with a window top of its own. The values are FX codes below
``2**top``: their exponents drawn from ``top - 1`` down to ``top - W - 30`` (whole,
cut by the window's grid, or below it), a fifth zeros, and as the core's contract
asks one value of at least ``2**(top - headroom)`` (a tenth of the sums all zero);
directed sums lead: one
value at the top (the largest a value may be: ``2**top - ulp``) in every lane, a
rounding tie left by the truncation (``1 + 2**-24`` exactly kept, the bits that
would break the tie below the grid), values all below the grid (the sum 0), and a
single value. Expected codes from ``golden.iternorm.window_sum``.

With ``square_fmt`` (the values are the squares of codes of that format) the sums
are IterNorm's: codes with exponent fields up to 24 below a sum's largest, a fifth
zeros, subnormals, every sign; the top from the sum's largest exponent key
(``golden.iternorm.window_top`` of one square a value); directed sums lead: the
format's largest finite values, all subnormal (their squares far below the
smallest FX normal's grid), one value. Expected: ``window_sum`` of the exact
squares.
"""

import importlib

import cocotb
import numpy as np

from lpcores.formats import get_format
from lpcores.golden import decode

from .stream import TB, pack, unpack

FXB = 511                     # FX's bias (golden.iternorm.FX)


def _G():
    return importlib.import_module("lpcores.golden.iternorm")


def fx_code(sig, e):
    """The FX code of ``sig * 2**(e - 23)`` (``sig`` in [2**23, 2**24)), or 0."""
    sig, e = np.asarray(sig, dtype=np.int64), np.asarray(e, dtype=np.int64)
    return np.where(sig == 0, 0, ((e + FXB) << 23) | (sig & 0x7FFFFF))


def fx_value(code):
    code = np.asarray(code, dtype=np.int64)
    ef = (code >> 23) & 0x3FF
    sig = (code & 0x7FFFFF) | (1 << 23)
    return np.where(ef == 0, 0.0, np.ldexp(sig.astype(np.float64), ef - FXB - 23))


def _params(tb):
    p = tb.sidecar["params"]
    return p["lanes"], p["window"], p["beats"]


def _headroom(tb):
    return tb.sidecar["params"]["headroom"]


def _square(tb):
    sq = tb.sidecar["params"].get("square_fmt")
    return None if sq is None else get_format(sq)


def square_sums(tb, n):
    """``square_fmt``'s (codes (beats, lanes) per sum, top per sum)."""
    L, W, P = _params(tb)
    f = _square(tb)
    G = _G()
    rng = tb.nprng("vectors")
    M, E = f.man_bits, f.exp_bits
    emax_f = (f.max_mag_code >> M)
    groups = [np.full((P, L), f.max_mag_code, dtype=np.int64),      # the largest
              rng.integers(0, 1 << M, (P, L)),                       # subnormals
              np.array([[int(f.bias << M)] + [0] * (L - 1)])]        # one value
    for _ in range(n):
        nb = int(rng.integers(1, P + 1))
        ef_hi = int(rng.integers(1, emax_f + 1))
        ef = np.clip(ef_hi - rng.integers(0, 25, (nb, L)), 0, emax_f)
        codes = (ef << M) | rng.integers(0, 1 << M, (nb, L))
        codes = np.where(rng.random((nb, L)) < 0.2, 0, codes)
        codes |= rng.integers(0, 2, (nb, L)) << (f.bits - 1)
        if rng.random() < 0.05:
            codes[:] = 0
        groups.append(codes.astype(np.int64))
    tops = [int(G.window_top(G.exp_key(g, f).max(), f, 1, 1)) for g in groups]
    return groups, tops


def sums(tb, n=None):
    """(codes (beats, lanes) per sum, top per sum): the directed sums, then random."""
    L, W, P = _params(tb)
    if _square(tb) is not None:
        return square_sums(tb, int(tb.options.get("sums", 400)) if n is None else n)
    rng = tb.nprng("vectors")
    n = int(tb.options.get("sums", 400)) if n is None else n
    one = 1 << 23
    groups, tops = [], []
    # every lane at the largest value below 2**top, every beat
    groups.append(fx_code(np.full((P, L), (1 << 24) - 1), 9))
    tops.append(10)
    # 1 + 2**-24 kept exactly (a tie), the bits that would break it below the grid
    g = np.zeros((P, L), dtype=np.int64)
    g[0, 0] = fx_code(one, 0)
    flat = g.reshape(-1)
    if L * P > 1:
        flat[1] = fx_code(one, -24)
    if L * P > 2:
        flat[2:] = fx_code(one, 3 - W - 2)         # each below the grid 2**(3 - W)
    groups.append(flat.reshape(P, L))
    tops.append(3)
    # all below the grid: 0
    groups.append(fx_code(np.full((P, L), one + 5), -W - 1))
    tops.append(0)
    # one value
    groups.append(fx_code(np.full((1, L), one + 12345), -100))
    tops.append(-99)
    for _ in range(n):
        nb = int(rng.integers(1, P + 1))
        top = int(rng.integers(-297, 292))
        sig = rng.integers(one, 1 << 24, size=(nb, L))
        e = top - 1 - rng.integers(0, W + 30, size=(nb, L))
        e = np.where(rng.random((nb, L)) < 0.3, top - 1 - rng.integers(0, 4, (nb, L)), e)
        sig = np.where(rng.random((nb, L)) < 0.2, 0, sig)
        # the core's contract: a sum with a nonzero value has one of at least
        # 2**(top - headroom) (IterNorm's largest square); a tenth are all zero
        if rng.random() < 0.1:
            sig[:] = 0
        else:
            sig[0, 0] = int(rng.integers(one, 1 << 24))
            e[0, 0] = top - 1 - int(rng.integers(0, _headroom(tb)))
        groups.append(fx_code(sig, e))
        tops.append(top)
    return groups, tops


def beats_of(tb, groups, tops):
    L, _, _ = _params(tb)
    rows, ends = [], []
    for g, top in zip(groups, tops):
        for j, row in enumerate(g):
            f = {f"p{k}": [int(row[k])] for k in range(L)}
            f["top"] = [top & 0xFFF]
            f["last"] = [int(j == len(g) - 1)]
            rows.append(pack(tb.fi, **f)[0])
            ends.append(j == len(g) - 1)
    return rows, ends


def expected_fn(tb, groups, tops):
    """groups of accepted beat indices -> expected beats (golden window_sum)."""
    L, W, P = _params(tb)
    flat = np.concatenate(groups)                  # beat j's row
    topb = np.concatenate([[t] * len(g) for g, t in zip(groups, tops)])

    def expected(gs):
        acc = np.zeros((len(gs), P * L))
        top = np.array([topb[g[0]] for g in gs])
        for i, g in enumerate(gs):
            if _square(tb) is not None:
                acc[i, :len(g) * L] = decode(flat[g], _square(tb)).reshape(-1) ** 2
                continue
            acc[i, :len(g) * L] = fx_value(flat[g]).reshape(-1)
        s = _G().window_sum(acc, top, W)
        f, e = np.frexp(s)
        codes = fx_code(np.ldexp(f, 24).astype(np.int64), e - 1)
        return [int(c) for c in pack(tb.fo, r=codes)]
    return expected


def describe(tb):
    def render(bin_, exp, got):
        r = unpack(tb.fo, [exp, got])
        e, g = fx_value(r["r"])
        return f"(last beat shown) s expected={e!r} got={g!r}"
    return render


@cocotb.test()
async def test_timing(dut):
    """A beat every cycle, each sum ``latency`` cycles after its last beat."""
    tb = TB(dut)
    await tb.start()
    g, t = sums(tb, 60)
    beats, ends = beats_of(tb, g, t)
    await tb.check_timing(beats, expected_fn(tb, g, t), ends=ends)


@cocotb.test()
async def test_vectors(dut):
    """Every sum under random valid gaps and ready backpressure."""
    tb = TB(dut)
    await tb.start()
    g, t = sums(tb)
    beats, ends = beats_of(tb, g, t)
    await tb.check(beats, expected_fn(tb, g, t), ends=ends, what="window sums",
                   rng=tb.rng("vectors"), p_valid=0.8, p_ready=0.6, describe=describe(tb))


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-sum: the partial sum is discarded, what follows exact."""
    tb = TB(dut)
    await tb.start()
    g, t = sums(tb, 200)
    beats, ends = beats_of(tb, g, t)
    n = len(beats)
    tr = await tb.check(beats, expected_fn(tb, g, t), ends=ends, what="reset",
                        rng=tb.rng("reset"), p_valid=0.7, p_ready=0.7,
                        reset_at=(n // 4, n // 4 + 1, (2 * n) // 3), describe=describe(tb))
    assert len(tr.segments) == 3
