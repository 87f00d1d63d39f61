"""cocotb testbench of ``NMDot`` (driven by ``tests/test_nmdot.py``).

A run streams back-to-back dot products of random lengths (one beat up to past
``max_terms`` kept products, where ``overflow`` must rise and ``r`` is not compared).
Per group: a random index pattern (every pattern of the ratio turns up; about 3 % of
the beats carry an invalid one, which must raise ``bad_index`` for that dot product,
whose ``r`` is then not compared), kept values ``a`` and all ``m`` dense values
``b`` from biased classes: random codes, zeros of both signs (whole dot products of
zeros, where the sign of the result hangs on the dropped positions), values that
cancel earlier terms, tiny and huge values, and Inf/NaN, also at dropped positions.

Expected results come from ``golden.nm_dot``, which *is* ``golden.dot`` on the masked
dense operand (``a`` scattered to its indices, +0 elsewhere; golden.dot itself is
checked against an exact rational oracle, nm_dot against one in
tests/test_golden_nm.py).
"""

import itertools

import numpy as np

import cocotb

from lpcores import golden
from lpcores.formats import get_format
from lpcores.golden.nm import index_bits, pack_indices

from .stream import TB, pack, unpack


def elements(rng, fmt, size, *, specials=0.02, zeros=0.1):
    """Codes of ``fmt`` from biased classes (see the module docstring)."""
    f = get_format(fmt)
    if f.kind == "int":
        c = rng.integers(0, 256, size=size)
        return np.where(rng.random(size) < zeros, 0, c)
    sb = 1 << (f.bits - 1)
    sign = rng.integers(0, 2, size=size) * sb
    mag = rng.integers(0, f.max_mag_code + 1, size=size)              # finite
    r = rng.random(size)
    tiny = rng.integers(0, 1 << f.man_bits, size=size)
    huge = f.max_mag_code - rng.integers(0, 1 << f.man_bits, size=size)
    mag = np.where(r < 0.08, tiny, mag)
    mag = np.where((r >= 0.08) & (r < 0.12), huge, mag)
    mag = np.where((r >= 0.12) & (r < 0.12 + zeros), 0, mag)
    code = mag | sign
    if f.has_nan:
        spec = [f.nan_code, sb | f.nan_code] + ([f.inf_code, sb | f.inf_code]
                                                if f.has_inf else [])
        pick = np.array(spec)[rng.integers(0, len(spec), size=size)]
        code = np.where(rng.random(size) < specials, pick, code)
    return code


def index_patterns(n, m):
    return np.array(list(itertools.combinations(range(m), n)), dtype=np.int64)


def has_bad_patterns(n, m):
    """Whether an invalid index tuple can be encoded at all (1:2 has none: one 1-bit
    index, both values valid)."""
    return n > 1 or (1 << index_bits(m)) > m


def bad_pattern(rng, n, m):
    """A strictly-invalid index tuple: a repeat, a descent or (m not a power of
    two) an index >= m."""
    assert has_bad_patterns(n, m)
    ib = index_bits(m)
    while True:
        ix = rng.integers(0, 1 << ib, size=n)
        if (ix >= m).any() or (np.diff(ix) <= 0).any():
            return ix


def vectors(tb):
    """Per beat: a (beats, G, n), idx (beats, G, n), b (beats, G*m), c, plus the
    dot-product lengths in beats and the per-beat 'bad' flags."""
    p = tb.sidecar["params"]
    G, N, M = p["groups"], p["n"], p["m"]
    rng = tb.nprng("vectors")
    n_dots = int(tb.options.get("dots", 300))
    max_beats = -(-p["max_terms"] // (G * N))
    lengths = []
    for _ in range(n_dots):
        r = rng.random()
        if r < 0.3:
            lengths.append(1)
        elif r < 0.38:
            lengths.append(max_beats)
        elif r < 0.42:
            lengths.append(max_beats + 1 + int(rng.integers(0, 2)))      # overflow
        else:
            lengths.append(int(rng.integers(1, max_beats + 1)))
    nb = sum(lengths)
    pats = index_patterns(N, M)
    idx = pats[rng.integers(0, len(pats), size=(nb, G))]
    bad = np.zeros((nb, G), dtype=bool)
    if tb.options.get("bad", True) and has_bad_patterns(N, M):
        bad = rng.random((nb, G)) < 0.03
        for b_, g in zip(*np.nonzero(bad)):
            idx[b_, g] = bad_pattern(rng, N, M)
    a = elements(rng, p["a_fmt"], (nb, G, N))
    b = elements(rng, p["b_fmt"], (nb, G * M))
    c_negzero = []
    if get_format(p["a_fmt"]).kind != "int":
        fa, fb = get_format(p["a_fmt"]), get_format(p["b_fmt"])
        start = 0
        for ln in lengths:
            u = rng.random()
            sl = slice(start, start + ln)
            if u < 0.1:
                # all-zero dot products whose kept products are all -0 (a zero with
                # the sign opposite to its dense partner): the result is -0 iff the
                # dropped positions are negative too (+0 * b_j is -0 iff b_j < 0)
                sa, sbit = 1 << (fa.bits - 1), 1 << (fb.bits - 1)
                bb = b[sl].reshape(ln, G, M)
                if rng.random() < 0.5:
                    bb |= sbit                              # dropped ones negative
                    if fb.has_nan:                          # no -NaN: 0 * NaN is NaN
                        bb[:] = np.where(bb == (fb.nan_code | sbit), sbit, bb)
                elif rng.random() < 0.5:
                    bb[:] = np.where(rng.random(bb.shape) < 0.9, bb | sbit, bb)
                bsel = np.take_along_axis(bb, np.minimum(idx[sl], M - 1), axis=-1)
                a[sl] = np.where(bsel & sbit, 0, sa)
                b[sl] = bb.reshape(ln, G * M)
                c_negzero.append(start)
            elif u < 0.2 and ln >= 2:
                # cancellation: the second half repeats the first with a negated
                h = ln // 2
                a[start + h:start + 2 * h] = a[start:start + h] ^ (1 << (fa.bits - 1))
                b[start + h:start + 2 * h] = b[start:start + h]
                idx[start + h:start + 2 * h] = idx[start:start + h]
                bad[start + h:start + 2 * h] = bad[start:start + h]
            start += ln
    if p["out_fmt"] == "int32":
        c = rng.integers(-(1 << 30), 1 << 30, size=nb) & 0xFFFFFFFF
    else:
        c = elements(rng, p["out_fmt"], nb, specials=0.02)
        fo = get_format(p["out_fmt"])
        c[c_negzero] = 1 << (fo.bits - 1)                # c = -0 with the zero sums
    return a, idx, b, c, lengths, bad.any(axis=1)


def beats_of(tb, a, idx, b, c, lengths):
    p = tb.sidecar["params"]
    G, N, M = p["groups"], p["n"], p["m"]
    last = np.zeros(len(a), dtype=np.int64)
    last[np.cumsum(lengths) - 1] = 1
    fields = {}
    for g in range(G):
        for k in range(N):
            fields[f"a{g}_{k}"] = a[:, g, k]
        fields[f"idx{g}"] = pack_indices(idx[:, g], M)
        for j in range(M):
            fields[f"b{g}_{j}"] = b[:, g * M + j]
    if p["addend"]:
        fields["c"] = c
    fields["last"] = last
    return pack(tb.fi, **fields), [bool(x) for x in last]


def by_length(items):
    """``{length: [positions]}`` of a list of beat-index lists, so that dot products
    of one length go through the golden model as one array."""
    out = {}
    for i, it in enumerate(items):
        out.setdefault(len(it), []).append(i)
    return out


def result_beat(off, r, ovf, undefined=False, bad=None):
    """Expected result beat ``(value, mask)``: ``r`` is masked out (undefined) on
    overflow or when ``undefined``; ``bad`` is the expected ``bad_index`` flag when
    the port has one."""
    rmask = (1 << off["r"][1]) - 1
    beat = (int(r) & rmask) | (int(ovf) << off["overflow"][0])
    mask = (1 << off["overflow"][0]) | (0 if (ovf or undefined) else rmask)
    if bad is not None and "bad_index" in off:
        beat |= int(bad) << off["bad_index"][0]
        mask |= 1 << off["bad_index"][0]
    return beat, mask


def expected_fn(tb, a, idx, b, c, bad):
    """groups of beat indices -> expected output beats. Dot products that overflow
    or carry a bad index pattern have an undefined ``r`` (masked out)."""
    p = tb.sidecar["params"]
    G, N, M = p["groups"], p["n"], p["m"]
    off = {f["name"]: (f["offset"], f["width"]) for f in tb.fo}
    good_idx = np.arange(N)

    def expected(groups):
        out = [None] * len(groups)
        for ln, which in by_length(groups).items():
            rows = np.array([groups[i] for i in which])            # (k, ln)
            A = a[rows].reshape(len(which), ln * G, N)
            IX = idx[rows].reshape(len(which), ln * G, N)
            B = b[rows].reshape(len(which), ln * G * M)
            isbad = bad[rows].any(axis=1)
            IX = np.where(isbad[:, None, None], good_idx, IX)      # any valid pattern
            C = c[rows[:, 0]] if p["addend"] else None
            r = golden.nm_dot(A, IX, B, N, M, p["a_fmt"], p["b_fmt"], p["out_fmt"],
                              accumulate=p["accumulate"], c=C, groups=G,
                              rounding=p["rounding"])
            ovf = ln * G * N > p["max_terms"]
            for t, i in enumerate(which):
                out[i] = result_beat(off, r[t], ovf, undefined=isbad[t], bad=isbad[t])
        return out
    return expected


def describe(tb):
    p = tb.sidecar["params"]

    def render(bin_, exp, got):
        r = unpack(tb.fo, [exp, got])
        flags = "".join(f" {k} expected={r[k][0]} got={r[k][1]}"
                        for k in ("overflow", "bad_index") if k in r)
        if p["out_fmt"] == "int32":
            return f"(last beat shown) r expected={r['r'][0]} got={r['r'][1]}" + flags
        e, g = golden.decode(r["r"], p["out_fmt"])
        return f"(last beat shown) r expected={e!r} got={g!r}" + flags
    return render


def _prefix(lengths, beats):
    k = int(np.searchsorted(np.cumsum(lengths), beats, side="right"))
    k = max(k, 1)
    return int(sum(lengths[:k])), lengths[:k]


@cocotb.test()
async def test_timing(dut):
    """Full throughput: a beat every cycle, each result `latency` cycles after the
    beat carrying last, back-to-back dot products."""
    tb = TB(dut)
    await tb.start()
    a, idx, b, c, lengths, bad = vectors(tb)
    n, ls = _prefix(lengths, 200)
    beats, ends = beats_of(tb, a[:n], idx[:n], b[:n], c[:n], ls)
    await tb.check_timing(beats, expected_fn(tb, a, idx, b, c, bad), ends=ends)


@cocotb.test()
async def test_vectors(dut):
    """Every dot product under random valid gaps and ready backpressure."""
    tb = TB(dut)
    await tb.start()
    a, idx, b, c, lengths, bad = vectors(tb)
    beats, ends = beats_of(tb, a, idx, b, c, lengths)
    await tb.check(beats, expected_fn(tb, a, idx, b, c, bad), ends=ends,
                   what="sparse dot products", rng=tb.rng("vectors"), p_valid=0.8,
                   p_ready=0.6, describe=describe(tb))


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-dot-product: the partial sum and the sticky bad_index are
    discarded, what follows is exact."""
    tb = TB(dut)
    await tb.start()
    a, idx, b, c, lengths, bad = vectors(tb)
    n, ls = _prefix(lengths, 1000)
    beats, ends = beats_of(tb, a[:n], idx[:n], b[:n], c[:n], ls)
    tr = await tb.check(beats, expected_fn(tb, a, idx, b, c, bad), ends=ends,
                        what="reset", rng=tb.rng("reset"), p_valid=0.7, p_ready=0.7,
                        reset_at=(n // 4, n // 4 + 1, (2 * n) // 3),
                        describe=describe(tb))
    assert len(tr.segments) == 3
