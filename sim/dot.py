"""cocotb testbench of ``Dot`` (driven by ``tests/test_dot.py``).

A run streams many back-to-back dot products of random lengths, from one beat up to
past ``max_terms`` (those must raise ``overflow``; their ``r`` is undefined and not
compared). Elements are drawn from biased classes: random codes, values that cancel
earlier terms exactly (x then -x), tiny products near the accumulator LSB, huge ones
near its MSB, and (rarely) special values. ``options["mode"] == "int8-exhaustive"``
instead sends every int8 x int8 product as its own one-beat dot product (lane 0; the
other lanes zero). Expected results come from ``golden.dot``, itself checked against
an exact rational oracle.
"""

import numpy as np

import cocotb

from lpcores import golden
from lpcores.formats import get_format

from .stream import TB, interleave, pack, unpack


def _params(tb):
    p = tb.sidecar["params"]
    return p, p["lanes"]


def _elements(rng, fmt, n, *, specials=0.01):
    """n codes of fmt from biased classes."""
    f = get_format(fmt)
    if f.kind == "int":
        return rng.integers(0, 256, size=n)
    codes = rng.integers(0, 1 << f.bits, size=n)
    kind = rng.random(n)
    # mostly finite, moderate values; some tiny and huge; a few specials
    mag_bits = f.bits - 1
    finite_max = f.max_mag_code
    small = rng.integers(0, 1 << f.man_bits, size=n) if f.man_bits else np.zeros(n, int)
    big = finite_max - rng.integers(0, 1 << max(f.man_bits, 1), size=n)
    sign = rng.integers(0, 2, size=n) << mag_bits
    codes = np.where(kind < 0.05, small | sign, codes)                  # subnormal/tiny
    codes = np.where((kind >= 0.05) & (kind < 0.10), np.maximum(big, 0) | sign, codes)
    finite = ~np.isnan(golden.decode(codes, f)) & np.isfinite(golden.decode(codes, f))
    # replace non-finite draws unless they fall in the specials budget
    keep_special = rng.random(n) < specials
    repl = rng.integers(0, finite_max + 1, size=n) | sign
    return np.where(finite | keep_special, codes, repl)


def vectors(tb):
    """Returns (a, b, c, last): a, b of shape (beats, lanes), c and the last flag per
    beat. With ``contexts`` k the dot products are interleaved over k contexts
    (:func:`.stream.interleave`)."""
    a, b, c, lengths = _vectors(tb)
    last = np.zeros(len(a), dtype=np.int64)
    last[np.cumsum(lengths) - 1] = 1
    if tb.contexts > 1:
        order, last = interleave(lengths, tb.contexts)
        a, b, c = a[order], b[order], c[order]
    return a, b, c, last


def prefix(tb, a, b, c, last, n):
    """The first ``n`` beats (rounded up to whole rounds of the contexts), the
    final beat of each context closing its dot product."""
    k = tb.contexts
    n = min(len(a), -(-n // k) * k)
    last = last[:n].copy()
    last[n - k:] = 1
    return a[:n], b[:n], c[:n], last


def _vectors(tb):
    p, L = _params(tb)
    rng = tb.nprng("vectors")
    if tb.options.get("mode") == "int8-exhaustive":
        x = np.arange(256)
        a0, b0 = (v.ravel() for v in np.meshgrid(x, x, indexing="ij"))
        perm = rng.permutation(len(a0))
        a = np.zeros((len(a0), L), dtype=np.int64)
        b = np.zeros((len(a0), L), dtype=np.int64)
        a[:, 0], b[:, 0] = a0[perm], b0[perm]
        c = rng.integers(-(1 << 20), 1 << 20, size=len(a0)) & 0xFFFFFFFF
        return a, b, c, [1] * len(a0)
    n_dots = int(tb.options.get("dots", 400))
    max_beats = -(-p["max_terms"] // L)
    lengths = []
    for _ in range(n_dots):
        r = rng.random()
        if r < 0.25:
            lengths.append(1)
        elif r < 0.35:
            lengths.append(max_beats)                    # exactly max_terms (or just over)
        elif r < 0.40:
            lengths.append(max_beats + 1 + int(rng.integers(0, 3)))   # overflow
        else:
            lengths.append(int(rng.integers(1, max_beats + 1)))
    beats = sum(lengths)
    a = _elements(rng, p["a_fmt"], beats * L).reshape(beats, L)
    b = _elements(rng, p["b_fmt"], beats * L).reshape(beats, L)
    if get_format(p["a_fmt"]).kind != "int":
        # cancellation: in some dot products, the second half negates the first
        start = 0
        for ln in lengths:
            if ln >= 2 and rng.random() < 0.2:
                h = ln // 2
                sb = 1 << (get_format(p["a_fmt"]).bits - 1)
                a[start + h:start + 2 * h] = a[start:start + h] ^ sb
                b[start + h:start + 2 * h] = b[start:start + h]
            start += ln
    if p["out_fmt"] == "int32":
        c = rng.integers(-(1 << 30), 1 << 30, size=beats) & 0xFFFFFFFF
    else:
        c = _elements(rng, p["out_fmt"], beats, specials=0.02)
    return a, b, c, lengths


def beats_of(tb, a, b, c, last):
    p, L = _params(tb)
    fields = {f"a{k}": a[:, k] for k in range(L)}
    fields.update({f"b{k}": b[:, k] for k in range(L)})
    if p["addend"]:
        fields["c"] = c
    fields["last"] = last
    return pack(tb.fi, **fields), [bool(x) for x in last]


def expected_fn(tb, a, b, c):
    """groups of beat indices -> expected output beats (masked when overflowed)."""
    p, L = _params(tb)
    fa = get_format(p["a_fmt"])
    is_int = fa.kind == "int"
    pad_a = 0 if is_int else 1 << (fa.bits - 1)              # -0 x +0 = -0: neutral
    rmask = (1 << tb.fo[0]["width"]) - 1
    ovf_off = tb.fo[1]["offset"]

    def expected(groups):
        n = max(len(g) for g in groups)
        A = np.full((len(groups), n, L), pad_a, dtype=np.int64)
        B = np.zeros((len(groups), n, L), dtype=np.int64)
        for i, g in enumerate(groups):
            A[i, :len(g)] = a[g]
            B[i, :len(g)] = b[g]
        C = np.array([c[g[0]] for g in groups], dtype=np.int64) if p["addend"] else None
        if p.get("magnitude"):          # the dot product of |a| and |b|
            A &= (1 << (fa.bits - 1)) - 1
            B &= (1 << (get_format(p["b_fmt"]).bits - 1)) - 1
        r = golden.dot(A.reshape(len(groups), n * L), B.reshape(len(groups), n * L),
                       p["a_fmt"], p["b_fmt"], p["out_fmt"],
                       accumulate=p["accumulate"], c=C, lanes=L,
                       rounding=p["rounding"])
        out = []
        for i, g in enumerate(groups):
            ovf = len(g) * L > p["max_terms"]
            beat = (int(r[i]) & rmask) | (int(ovf) << ovf_off)
            out.append((beat, 1 << ovf_off) if ovf else beat)
        return out
    return expected


def describe(tb):
    p, _ = _params(tb)

    def render(bin_, exp, got):
        r = unpack(tb.fo, [exp, got])
        if p["out_fmt"] == "int32":
            return f"(last beat shown) r expected={r['r'][0]} got={r['r'][1]}"
        e, g = golden.decode(r["r"], p["out_fmt"])
        return (f"(last beat shown) expected={e!r} got={g!r} "
                f"overflow expected={r['overflow'][0]} got={r['overflow'][1]}")
    return render


@cocotb.test()
async def test_timing(dut):
    """Full throughput: a beat every cycle, each result `latency` cycles after the
    beat carrying last, back-to-back dot products."""
    tb = TB(dut)
    await tb.start()
    a, b, c, last = prefix(tb, *vectors(tb), 200)
    beats, ends = beats_of(tb, a, b, c, last)
    await tb.check_timing(beats, expected_fn(tb, a, b, c), ends=ends)


@cocotb.test()
async def test_vectors(dut):
    """Every dot product under random valid gaps and ready backpressure."""
    tb = TB(dut)
    await tb.start()
    a, b, c, last = vectors(tb)
    beats, ends = beats_of(tb, a, b, c, last)
    await tb.check(beats, expected_fn(tb, a, b, c), ends=ends, what="dot products",
                   rng=tb.rng("vectors"), p_valid=0.8, p_ready=0.6, describe=describe(tb))


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-dot-product (several contexts in flight with contexts > 1): the
    partial sums are discarded, what follows exact."""
    tb = TB(dut)
    await tb.start()
    a, b, c, last = prefix(tb, *vectors(tb), 1500)
    n = len(a)
    beats, ends = beats_of(tb, a, b, c, last)
    tr = await tb.check(beats, expected_fn(tb, a, b, c), ends=ends, what="reset",
                        rng=tb.rng("reset"), p_valid=0.7, p_ready=0.7,
                        reset_at=(n // 4, n // 4 + 1, (2 * n) // 3), describe=describe(tb))
    assert len(tr.segments) == 3
