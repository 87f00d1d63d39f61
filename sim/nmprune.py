"""cocotb testbench of ``NMPrune`` (driven by ``tests/test_nmprune.py``).

Vectors (``options["mode"]``):

``exhaustive``
    every 4-tuple of 16 e4m3 values covering ties (±x), ±0, both NaNs, subnormals,
    the normal boundary and ±max: 16**4 = 65,536 groups, shuffled, ``groups`` a beat
    (2:4 e4m3 cores).
``random`` (default)
    ``options["beats"]`` beats of codes drawn 60 % from a tie-heavy alphabet of the
    format (±0, ±1 ulp, ±max, NaN, ±Inf, 1.0, the normal boundary), 40 % uniformly.

With ``scaled=True`` the stream starts with ``rows`` load beats and reloads new
scales (0, 1, 255, powers of two and uniform codes) every 50-300 data beats; load
beats produce no output, so they are each grouped with the data beat that follows
(``ends``) and the expected outputs replay the scale table from the reset state
(all ones) per segment. Expected beats come from ``golden.nm.nm_prune``, itself
checked against a stable-sort oracle in tests/test_golden_nm.py.
"""

import itertools

import numpy as np

import cocotb

from lpcores.formats import get_format
from lpcores.golden.nm import nm_prune, pack_indices

from .stream import TB, pack, unpack

# e4m3: ±0, ±min subnormal (a tie), subnormals, min normal, ±1.0, 1.125, ±2, ±max, ±NaN
E4M3_SET = [0x00, 0x80, 0x01, 0x81, 0x06, 0x07, 0x08, 0x38, 0xB8, 0x39, 0x40, 0xC0,
            0x7E, 0xFE, 0x7F, 0xFF]


def _params(tb):
    p = tb.sidecar["params"]
    return p, p["groups"], p["n"], p["m"]


def tie_heavy(rng, fmt, size):
    f = get_format(fmt)
    if f.kind == "int":
        alpha = [0, 1, 0xFF, 2, 0xFE, 0x7F, 0x81, 0x80]
    else:
        sb = 1 << (f.bits - 1)
        one = f.bias << f.man_bits
        alpha = [0, sb, 1, sb | 1, f.max_mag_code, sb | f.max_mag_code, f.nan_code,
                 sb | f.nan_code, 1 << f.man_bits, one, sb | one, one + 1]
        if f.has_inf:
            alpha += [f.inf_code, sb | f.inf_code, f.inf_code | 1]
    alpha = np.array(alpha, dtype=np.int64)
    pick = alpha[rng.integers(0, len(alpha), size=size)]
    return np.where(rng.random(size) < 0.6, pick, rng.integers(0, 1 << f.bits, size=size))


def _scales(rng, size):
    s = rng.integers(0, 256, size=size)
    r = rng.random(size)
    s = np.where(r < 0.1, 0, s)
    s = np.where((r >= 0.1) & (r < 0.2), 255, s)
    s = np.where((r >= 0.2) & (r < 0.4), 1 << rng.integers(0, 8, size=size), s)
    return s


def vectors(tb):
    """(x of shape (beats, groups*m), load flags, label)."""
    p, G, N, M = _params(tb)
    rng = tb.nprng("vectors")
    if tb.options.get("mode") == "exhaustive":
        assert (p["fmt"], N, M) == ("e4m3", 2, 4), "exhaustive mode is 2:4 e4m3"
        groups = np.array(list(itertools.product(E4M3_SET, repeat=4)), dtype=np.int64)
        groups = groups[rng.permutation(len(groups))]
        pad = (-len(groups)) % G
        groups = np.concatenate([groups, groups[:pad]])
        x = groups.reshape(-1, G * M)
        what = f"exhaustive 2:4 over {len(E4M3_SET)}**4 e4m3 groups"
    else:
        nb = int(tb.options.get("beats", 3000))
        x = tie_heavy(rng, p["fmt"], (nb, G * M))
        what = f"{nb} random beats"
    load = np.zeros(len(x), dtype=bool)
    if p["scaled"]:
        rows = p["channels"] // (G * M)
        parts, flags, k = [], [], 0
        while k < len(x):
            parts.append(_scales(rng, (rows, G * M)))
            flags.append(np.ones(rows, dtype=bool))
            step = int(rng.integers(50, 300))
            parts.append(x[k:k + step])
            flags.append(np.zeros(len(x[k:k + step]), dtype=bool))
            k += step
        x, load = np.concatenate(parts), np.concatenate(flags)
        near_ties(rng, p["fmt"], x, load, rows, G, M)
        what += " with scale reloads and near ties"
    return x, load, what


def near_tie(rng, fmt, s1, s2):
    """Two codes of one exponent whose scaled scores |x1|*s1 and |x2|*s2 are equal
    or one unit of the exact product apart (the last bit of the score key), or None
    if the two scales admit no such pair."""
    f = get_format(fmt)
    if f.kind == "int":
        a = np.arange(1, 128)
    else:
        a = np.arange(1 << f.man_bits, 2 << f.man_bits)
    b = np.rint(a * s1 / s2).astype(np.int64)
    ok = (np.abs(a * s1 - b * s2) <= 1) & (b >= a[0]) & (b <= a[-1])
    if not ok.any():
        return None
    k = rng.choice(np.nonzero(ok)[0])
    sign = [int(rng.integers(0, 2)) << (f.bits - 1) for _ in range(2)]
    if f.kind == "int":
        return [(-v & 0xFF) if sg else v for v, sg in zip((int(a[k]), int(b[k])), sign)]
    top = (1 << f.exp_bits) - 2                        # a normal exponent field
    e = int(rng.integers(1, top + 1)) << f.man_bits
    hid = 1 << f.man_bits
    return [sg | e | (v - hid) for v, sg in zip((int(a[k]), int(b[k])), sign)]


def near_ties(rng, fmt, x, load, rows, G, M, p=0.3):
    """Scaled mode: in a share of the data beats, overwrite two elements of each
    group with a near tie under the scales their lanes meet (replaying the table in
    stream order: load beats fill rows 0.., data beat k uses row k mod rows)."""
    table = np.ones((rows, G * M), dtype=np.int64)
    lptr = dptr = 0
    for k in range(len(x)):
        if load[k]:
            table[lptr] = x[k] & 0xFF
            lptr = (lptr + 1) % rows
            continue
        if rng.random() < p:
            for g in range(G):
                j1, j2 = rng.choice(M, size=2, replace=False)
                l1, l2 = g * M + j1, g * M + j2
                s1, s2 = table[dptr][l1], table[dptr][l2]
                if s1 and s2:
                    pair = near_tie(rng, fmt, int(s1), int(s2))
                    if pair:
                        x[k, l1], x[k, l2] = pair
        dptr = (dptr + 1) % rows


def beats_of(tb, x, load):
    p, G, N, M = _params(tb)
    fields = {f"x{g}_{j}": x[:, g * M + j] for g in range(G) for j in range(M)}
    if p["scaled"]:
        fields["load"] = load.astype(np.int64)
    return pack(tb.fi, **fields), [not b for b in load]


def expected_fn(tb, x, load):
    """groups of accepted beat indices -> expected output beats (one per data beat),
    replaying the scale table from its reset state."""
    p, G, N, M = _params(tb)
    L = G * M

    def expected(groups):
        data, scale = [], []
        if p["scaled"]:
            rows = p["channels"] // L
            table = np.ones((rows, L), dtype=np.int64)
            lptr = dptr = 0
        for grp in groups:
            for k in grp:
                if load[k]:
                    table[lptr] = x[k] & 0xFF
                    lptr = (lptr + 1) % rows
                else:
                    data.append(x[k])
                    if p["scaled"]:
                        scale.append(table[dptr].copy())
                        dptr = (dptr + 1) % rows
        X = np.array(data, dtype=np.int64)
        v, ix, d = nm_prune(X, N, M, p["fmt"], scale=np.array(scale) if scale else None)
        out = {}
        for g in range(G):
            for k in range(N):
                out[f"v{g}_{k}"] = v[:, g, k]
            out[f"idx{g}"] = pack_indices(ix[:, g], M)
            for j in range(M):
                out[f"d{g}_{j}"] = d[:, g * M + j]
        return pack(tb.fo, **out)
    return expected


def describe(tb):
    p, G, N, M = _params(tb)

    def render(bin_, exp, got):
        xin = unpack(tb.fi, [bin_])
        e, o = unpack(tb.fo, [exp]), unpack(tb.fo, [got])
        parts = []
        for g in range(G):
            xs = [xin[f"x{g}_{j}"][0] for j in range(M)]
            ev = [e[f"v{g}_{k}"][0] for k in range(N)]
            gv = [o[f"v{g}_{k}"][0] for k in range(N)]
            if ev != gv or e[f"idx{g}"] != o[f"idx{g}"] or any(
                    e[f"d{g}_{j}"] != o[f"d{g}_{j}"] for j in range(M)):
                parts.append(f"group {g}: x={[hex(v) for v in xs]} expected "
                             f"v={[hex(v) for v in ev]} idx=0x{e[f'idx{g}'][0]:x} got "
                             f"v={[hex(v) for v in gv]} idx=0x{o[f'idx{g}'][0]:x}")
        return "; ".join(parts[:2]) + (" (scaled: table state not shown)"
                                       if p["scaled"] else "")
    return render


@cocotb.test()
async def test_timing(dut):
    """Latency equals the sidecar's; one beat a cycle at full throughput (load beats
    included)."""
    tb = TB(dut)
    await tb.start()
    x, load, _ = vectors(tb)
    n = min(len(x), 400)
    beats, ends = beats_of(tb, x[:n], load[:n])
    await tb.check_timing(beats, expected_fn(tb, x, load), ends=ends)


@cocotb.test()
async def test_vectors(dut):
    """Every vector under random valid gaps and ready backpressure."""
    tb = TB(dut)
    await tb.start()
    x, load, what = vectors(tb)
    beats, ends = beats_of(tb, x, load)
    await tb.check(beats, expected_fn(tb, x, load), ends=ends, what=what,
                   rng=tb.rng("vectors"), p_valid=0.8, p_ready=0.7, describe=describe(tb))


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-stream flush only the beats in flight and restore the scale
    table (s = 1); what follows is exact."""
    tb = TB(dut)
    await tb.start()
    x, load, _ = vectors(tb)
    n = min(len(x), 2000)
    beats, ends = beats_of(tb, x[:n], load[:n])
    tr = await tb.check(beats, expected_fn(tb, x, load), ends=ends, what="reset",
                        rng=tb.rng("reset"), p_valid=0.7, p_ready=0.6,
                        reset_at=(n // 5, n // 5 + 1, (3 * n) // 4), describe=describe(tb))
    assert len(tr.segments) == 3 and len(tr.outputs) > n // 3
