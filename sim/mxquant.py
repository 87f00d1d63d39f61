"""cocotb testbench of ``MXQuant`` (driven by ``tests/test_mxquant.py``).

Blocks are drawn to hit every case of SPEC §4.3 (:func:`mx_blocks`): all-zero (with
-0), one outlier, max exactly a power of two and one ulp under it, values that clamp
the scale at -127, fp32 subnormals, NaN (quiet, signalling, negative) and ±Inf
anywhere in the block, values on element midpoints (the rounding ties), random
normal and heavy-tailed (Student t, LLM-activation-like) data, near fp32 max.
Expected output beats come from ``golden.mx_quantize``, itself checked against
ml_dtypes and microxcaling's semantics in tests/test_golden_mx.py.

A block spans ``32/lanes`` beats and the core finds block boundaries by counting, so
the mid-stream reset test runs at full throughput (then beat ``k`` is accepted in a
known cycle) and marks, after each reset, where the core's next block starts.
"""

import ml_dtypes
import numpy as np

import cocotb

from lpcores import golden
from lpcores.formats import get_format

from .stream import TB, pack, unpack


def mx_blocks(rng, n, elem_fmt):
    """n blocks of 32 fp32 values (float32 array, some NaN/Inf), every case."""
    f = get_format(elem_fmt)
    out = np.zeros((n, 32))
    for k in range(n):
        kind = k % 14
        x = rng.standard_normal(32)
        if kind == 1:
            x = rng.standard_t(2, 32) * 10.0 ** rng.integers(-4, 5)
        elif kind == 2:
            x *= 1e-3
            x[rng.integers(32)] = 1e3 * rng.choice([-1, 1])
        elif kind == 3:
            x[rng.integers(32)] = 2.0 ** int(rng.integers(-30, 30)) * rng.choice([-1, 1])
        elif kind == 4:
            p = 2.0 ** int(rng.integers(-30, 30))
            x = x * p / 8
            x[rng.integers(32)] = np.nextafter(np.float32(p), np.float32(0))
        elif kind == 5:
            x = np.ldexp(rng.integers(-(1 << 23), 1 << 23, 32).astype(np.float64), -149)
        elif kind == 6:
            x = x * 2.0 ** -140
        elif kind == 7:
            x = np.where(rng.random(32) < 0.5, 0.0, -0.0)
        elif kind == 8:
            x = np.zeros(32)
            x[rng.integers(32)] = rng.standard_normal() * 2.0 ** int(rng.integers(-149, 127))
        elif kind == 9:
            x = x * 1e37
        elif kind == 10:
            x[rng.integers(32)] = rng.choice([np.nan, np.inf, -np.inf])
        elif kind == 11:                      # rounding ties of the element format
            if f.kind == "int":
                g = np.arange(128) / 64.0
            else:
                g = golden.decode(np.arange(1 << (f.bits - 1)), f)
                g = g[np.isfinite(g)]
            mids = (g[:-1] + g[1:]) / 2
            x = rng.choice(mids, 32) * rng.choice([-1, 1], 32)
            x[0] = g.max()
            x *= 2.0 ** int(rng.integers(-20, 20))
        elif kind == 12:
            x = x * 2.0 ** rng.integers(-40, 40, 32)
        elif kind == 13:
            x = x * 2.0 ** int(rng.integers(-126, 110))
        out[k] = x
    return out.astype(np.float32)


def nan_codes(rng, codes, fin):
    """Replace each NaN by one of several NaN encodings (quiet, signalling, sign)."""
    nans = ([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFBFFFFF] if fin == "fp32"
            else [0x7FC0, 0xFFC0, 0x7F81, 0xFFFF])
    top = 0x7F800000 if fin == "fp32" else 0x7F80
    mant = 0x007FFFFF if fin == "fp32" else 0x7F
    isnan = ((codes & top) == top) & ((codes & mant) != 0)
    return np.where(isnan, rng.choice(nans, codes.shape), codes)


def vectors(tb, n=None):
    """(values as float32, input codes): blocks in stream order, shape (n, 32)."""
    p = tb.sidecar["params"]
    rng = tb.nprng("blocks")
    n = n or int(tb.options.get("blocks", 600))
    x = mx_blocks(rng, n, p["elem_fmt"])
    if p["in_fmt"] == "bf16":
        x = x.astype(ml_dtypes.bfloat16)
        codes = x.view(np.uint16).astype(np.int64)
        x = x.astype(np.float32)
    else:
        codes = x.view(np.uint32).astype(np.int64)
    return x, nan_codes(rng, codes, p["in_fmt"])


def beats_of(tb, codes):
    """Input beats (lanes values each) of blocks ``codes`` (n, 32)."""
    L = tb.sidecar["params"]["lanes"]
    flat = codes.reshape(-1, L)
    return pack(tb.fi, **{f"x{k}": flat[:, k] for k in range(L)})


def expected_fn(tb, x):
    """groups of beat indices -> expected output beats."""
    p = tb.sidecar["params"]
    L = p["lanes"]
    flat = x.reshape(-1, L)

    def expected(groups):
        blk = np.stack([flat[g].reshape(32) for g in groups])
        s, c = golden.mx_quantize(blk, p["elem_fmt"], rounding=p["rounding"])
        fields = {f"e{k}": c[:, k] for k in range(32)}
        fields["scale"] = s
        return pack(tb.fo, **fields)
    return expected


def describe(tb):
    p = tb.sidecar["params"]

    def render(bin_, exp, got):
        e, g = unpack(tb.fo, [exp]), unpack(tb.fo, [got])
        diff = [k for k in range(32) if e[f"e{k}"][0] != g[f"e{k}"][0]]
        return (f"(beat completing the block shown) scale expected={e['scale'][0]:#04x} "
                f"got={g['scale'][0]:#04x}; elements differing {diff[:8]}: expected "
                f"{[hex(e[f'e{k}'][0]) for k in diff[:8]]} got "
                f"{[hex(g[f'e{k}'][0]) for k in diff[:8]]} ({p['elem_fmt']})")
    return render


def ends_after(n_beats, B, starts=(0,)):
    """ends[k]: beat k completes a block, when the core starts a block at each index
    in ``starts`` (the first beat, and the first beat after each reset)."""
    ends = []
    bounds = list(starts) + [n_beats]
    for s, e in zip(bounds, bounds[1:]):
        ends += [((k - s) % B) == B - 1 for k in range(s, e)]
    return ends


@cocotb.test()
async def test_timing(dut):
    """Full throughput: a beat every cycle, each block's result `latency` cycles after
    the beat completing it."""
    tb = TB(dut)
    await tb.start()
    x, codes = vectors(tb, 60)
    B = tb.sidecar["beats_per_result"]
    beats = beats_of(tb, codes)
    await tb.check_timing(beats, expected_fn(tb, x), ends=ends_after(len(beats), B))


@cocotb.test()
async def test_vectors(dut):
    """Every block under random valid gaps and ready backpressure."""
    tb = TB(dut)
    await tb.start()
    x, codes = vectors(tb)
    B = tb.sidecar["beats_per_result"]
    beats = beats_of(tb, codes)
    await tb.check(beats, expected_fn(tb, x), ends=ends_after(len(beats), B),
                   what="blocks", rng=tb.rng("vectors"), p_valid=0.8, p_ready=0.6,
                   describe=describe(tb))


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-block: the partial block is discarded and the core starts a
    new block with the next beat; everything else is exact."""
    tb = TB(dut)
    await tb.start()
    x, codes = vectors(tb, 80)
    B = tb.sidecar["beats_per_result"]
    beats = beats_of(tb, codes)
    n = len(beats)
    # at full throughput beat k is accepted in cycle k (+1 per earlier reset cycle)
    r1 = 7 * B + B // 2 + (1 if B == 1 else 0)
    r2 = 20 * B + 1
    starts = (0, r1, r2 - 1)
    tr = await tb.check(beats, expected_fn(tb, x), ends=ends_after(n, B, starts),
                        what="reset", rng=tb.rng("reset"), reset_at=(r1, r2),
                        describe=describe(tb))
    assert len(tr.segments) == 3
    assert [len(s.accepted) for s in tr.segments[:2]] == [r1, r2 - 1 - r1]
