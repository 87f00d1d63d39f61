"""cocotb testbench of ``MXDot`` (driven by ``tests/test_mxdot.py``).

A run streams back-to-back MX dot products of 1 to 6 blocks. Elements come from
biased classes (random codes, subnormals, values near max, rare specials); scales
are mostly mid-range with blocks at both ends of the range (0x00, 0xFE: underflow to
fp32 subnormals and zero, overflow to Inf) and NaN (0xFF); some dot products repeat a
block negated (cancellation), some are all -0 products (the sign of zero). The beats
before a block's last carry random scales: the core reads the scales of the beat
completing the block, and the testbench pins that. With ``lanes < 32`` a few dot
products end early, in mid-block (``last`` closes a short block). Expected results
come from ``golden.mx_dot``, itself checked against exact rational arithmetic in
tests/test_golden_mx.py; a short block is padded with zero products of sign -0
(the additive identity), which is what closing it early means.
"""

import numpy as np

import cocotb

from lpcores import golden
from lpcores.formats import get_format

from .stream import TB, interleave, pack, unpack


def elements(rng, fmt, n, specials=0.004):
    """n codes of an MX element format from biased classes."""
    f = get_format(fmt)
    if f.kind == "int":
        x = rng.integers(0, 256, n)
        return np.where(rng.random(n) < 0.05, rng.choice([0x80, 0x7F, 0x81, 0], n), x)
    x = rng.integers(0, 1 << f.bits, n)
    sign = rng.integers(0, 2, n) << (f.bits - 1)
    kind = rng.random(n)
    sub = rng.integers(0, 1 << f.man_bits, n) | sign
    big = (f.max_mag_code - rng.integers(0, 1 << f.man_bits, n)) | sign
    x = np.where(kind < 0.08, sub, np.where(kind < 0.16, big, x))
    v = golden.decode(x, f)
    keep = np.isfinite(v) | (rng.random(n) < specials)
    return np.where(keep, x, rng.integers(0, f.max_mag_code + 1, n) | sign)


def _neg(f):
    return 0 if f.kind == "int" else 1 << (f.bits - 1)


def vectors(tb, n_dots=None):
    """Returns (a, b, sa, sb, last): a, b of shape (beats, lanes), scales and the last
    flag per beat. With ``contexts`` k the dot products are interleaved over k
    contexts (:func:`.stream.interleave`)."""
    p = tb.sidecar["params"]
    L = p["lanes"]
    B = 32 // L
    fa, fb = get_format(p["a_fmt"]), get_format(p["b_fmt"])
    rng = tb.nprng("vectors")
    n_dots = n_dots or int(tb.options.get("dots", 250))
    lengths = []
    P = int(p.get("partials", 1))
    for _ in range(n_dots):
        # partials P: one to three times P blocks, so every sum count 0..P is seen
        ln = int(rng.integers(1, 7) if P == 1 else rng.integers(1, 3 * P + 1)) * B
        if B > 1 and rng.random() < 0.06:
            ln -= int(rng.integers(1, B))                # ends in mid-block
        lengths.append(ln)
    nbeats = sum(lengths)
    a = elements(rng, fa.name, nbeats * L).reshape(nbeats, L)
    b = elements(rng, fb.name, nbeats * L).reshape(nbeats, L)
    nblk = sum(-(-ln // B) for ln in lengths)
    sa = rng.integers(112, 143, nblk)
    sb = rng.integers(112, 143, nblk)

    def ends_of_range(s):                  # 0x00, 0xFE and NaN on some blocks
        r = rng.random(nblk)
        return np.where(r < 0.03, 0, np.where(r < 0.04, 0xFE, np.where(r > 0.985, 0xFF, s)))
    sa, sb = ends_of_range(sa), ends_of_range(sb)
    # per beat: the block's scales on the beat completing it, noise on the others
    start = 0
    SA = rng.integers(0, 256, nbeats)
    SB = rng.integers(0, 256, nbeats)
    blk = 0
    for ln in lengths:
        kind = rng.random()
        for j in range(0, ln, B):
            end = start + min(j + B, ln) - 1
            s_a, s_b = sa[blk], sb[blk]
            if kind < 0.04:
                s_a = s_b = 0xFE                          # overflow to Inf
            elif kind < 0.08:
                s_a = s_b = 0                             # underflow to zero
            elif kind < 0.16:                             # fp32 subnormal results
                s_a, s_b = 0, int(rng.integers(70, 124))
            elif kind < 0.19:
                s_a, s_b = 0xFE, 0                        # 2**0
            elif kind < 0.23 and j == 0:                  # a tiny sum rounded to 0,
                s_a = s_b = 0                             # then zero blocks (below)
            SA[end], SB[end] = s_a, s_b
            blk += 1
        if 0.19 <= kind < 0.23:              # +-0 from rounding, then exact +-0 sums
            for j in range(B, ln, B):
                neg = fa.kind != "int" and rng.random() < 0.5
                a[start + j:start + min(j + B, ln)] = _neg(fa) if neg else 0
                b[start + j:start + min(j + B, ln)] = 0
        if kind > 0.97:                                    # every product -0
            a[start:start + ln] = _neg(fa) if fa.kind != "int" else 0
            b[start:start + ln] = 0 if fa.kind != "int" else _neg(fb)
        elif kind > 0.85 and ln >= 2 * B:                  # block 2 = -block 1
            a[start + B:start + 2 * B] = (a[start:start + B] ^ _neg(fa)
                                          if fa.kind != "int" else
                                          (-(a[start:start + B].astype(np.int8)
                                             .astype(np.int64))) & 0xFF)
            b[start + B:start + 2 * B] = b[start:start + B]
            SA[start + 2 * B - 1] = SA[start + B - 1]
            SB[start + 2 * B - 1] = SB[start + B - 1]
        start += ln
    last = np.zeros(nbeats, dtype=np.int64)
    last[np.cumsum(lengths) - 1] = 1
    if tb.contexts > 1:                 # interleaved beat by beat over the contexts
        order, last = interleave(lengths, tb.contexts)
        a, b, SA, SB = a[order], b[order], SA[order], SB[order]
    return a, b, SA, SB, last


def beats_of(tb, a, b, sa, sb, last):
    L = tb.sidecar["params"]["lanes"]
    fields = {f"a{k}": a[:, k] for k in range(L)}
    fields.update({f"b{k}": b[:, k] for k in range(L)})
    fields.update(sa=sa, sb=sb, last=last)
    return pack(tb.fi, **fields), [bool(x) for x in last]


def expected_fn(tb, a, b, sa, sb):
    """groups of beat indices -> expected results. A group is split into blocks of
    32/lanes beats from its first beat; a short final block is padded with -0
    products (the additive identity); each block's scales are those of its last
    beat."""
    p = tb.sidecar["params"]
    L = p["lanes"]
    B = 32 // L
    fa, fb = get_format(p["a_fmt"]), get_format(p["b_fmt"])
    # a -0 product: -0 x 0 when a is a float, else 0 x -0; int8 x int8: the sign of
    # a zero product is the XOR of the signs (SPEC §4.1), so -128 x 0 is -0
    if fa.kind != "int":
        pad_a, pad_b = _neg(fa), 0
    elif fb.kind != "int":
        pad_a, pad_b = 0, _neg(fb)
    else:
        pad_a, pad_b = 0x80, 0

    def expected(groups):
        # one golden call per block count: padding whole blocks would not be neutral
        # (int8 x int8 has no -0 product, and -0 + +0 = +0)
        out = np.zeros(len(groups), dtype=np.uint32)
        nbs = np.array([-(-len(g) // B) for g in groups])
        for nb in np.unique(nbs):
            idx = np.where(nbs == nb)[0]
            A = np.full((len(idx), nb * B, L), pad_a, dtype=np.int64)
            Bm = np.full((len(idx), nb * B, L), pad_b, dtype=np.int64)
            SA = np.zeros((len(idx), nb), dtype=np.int64)
            SB = np.zeros((len(idx), nb), dtype=np.int64)
            for i, gi in enumerate(idx):
                g = groups[gi]
                A[i, :len(g)] = a[g]
                Bm[i, :len(g)] = b[g]
                for j in range(nb):
                    e = g[min(j * B + B, len(g)) - 1]
                    SA[i, j], SB[i, j] = sa[e], sb[e]
            out[idx] = golden.mx_dot(A.reshape(len(idx), -1), SA,
                                     Bm.reshape(len(idx), -1), SB, p["a_fmt"],
                                     p["b_fmt"], partials=int(p.get("partials", 1)))
        return pack(tb.fo, r=out)
    return expected


def describe(tb):
    def render(bin_, exp, got):
        e, g = golden.decode([exp, got], "fp32")
        return f"(last beat shown) expected={e!r} got={g!r}"
    return render


@cocotb.test()
async def test_timing(dut):
    """Full throughput: a beat every cycle, each result `latency` cycles after the
    beat carrying last, back-to-back dot products."""
    tb = TB(dut)
    await tb.start()
    if tb.sidecar["params"].get("partials", 1) > 1:
        await _timing_partials(tb)
        return
    a, b, sa, sb, last = vectors(tb, 40)
    beats, ends = beats_of(tb, a, b, sa, sb, last)
    await tb.check_timing(beats, expected_fn(tb, a, b, sa, sb), ends=ends)


async def _timing_partials(tb):
    """partials P: dot products at least as long as the latency (the tree keeps up),
    back to back at full throughput: a block every cycle within a dot product, P - 1
    cycles of pads after each last beat, each result ``latency`` cycles after it."""
    p = tb.sidecar["params"]
    P, lat = p["partials"], tb.sidecar["latency"]
    rng = tb.nprng("timing")
    lengths = [lat + int(rng.integers(0, P + 4)) for _ in range(6)]
    n = sum(lengths)
    # finite elements and mid-range scales: every result a number, so the order of
    # the sums shows (a NaN or Inf block would make any order right)
    a = elements(rng, p["a_fmt"], n * 32, specials=0).reshape(n, 32)
    b = elements(rng, p["b_fmt"], n * 32, specials=0).reshape(n, 32)
    sa, sb = rng.integers(112, 143, n), rng.integers(112, 143, n)
    last = np.zeros(n, dtype=np.int64)
    last[np.cumsum(lengths) - 1] = 1
    beats, ends = beats_of(tb, a, b, sa, sb, last)
    await tb.check_timing(beats, expected_fn(tb, a, b, sa, sb), ends=ends,
                          pause_after_end=P - 1)


@cocotb.test()
async def test_vectors(dut):
    """Every dot product under random valid gaps and ready backpressure."""
    tb = TB(dut)
    await tb.start()
    a, b, sa, sb, last = vectors(tb)
    beats, ends = beats_of(tb, a, b, sa, sb, last)
    await tb.check(beats, expected_fn(tb, a, b, sa, sb), ends=ends, what="dot products",
                   rng=tb.rng("vectors"), p_valid=0.8, p_ready=0.6, describe=describe(tb))


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-dot-product: the partial sums are discarded, the next beat
    starts a block; what follows is exact."""
    tb = TB(dut)
    await tb.start()
    a, b, sa, sb, last = vectors(tb, 60)
    beats, ends = beats_of(tb, a, b, sa, sb, last)
    n = len(beats)
    tr = await tb.check(beats, expected_fn(tb, a, b, sa, sb), ends=ends, what="reset",
                        rng=tb.rng("reset"), p_valid=0.7, p_ready=0.7,
                        reset_at=(n // 4, n // 4 + 1, (2 * n) // 3), describe=describe(tb))
    assert len(tr.segments) == 3
