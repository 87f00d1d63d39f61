"""cocotb testbench of ``SparseLinear`` (driven by ``tests/test_sparselinear.py``).

Back-to-back dot products of random lengths (up to past ``max_terms`` kept
products: ``overflow``, ``r`` not compared) of activations ``x`` drawn 60 % from a
tie-heavy alphabet of the format (±0, ±1 ulp, ±max, NaN, ±Inf, 1.0, ...), so the
pruner's tie rule decides which weights meet which activations, and dense weights
``w`` from biased classes (zeros, tiny, huge, Inf/NaN also where ``x`` is pruned).
With ``scaled=True`` the stream starts with the scale table's load beats and
reloads it (0, 1, 255, powers of two, uniform codes) at random points, also in the
middle of a dot product; load beats produce nothing.

Expected results come from ``golden.sparse_linear`` (NMPrune's golden model, then
``golden.dot`` on the masked activations), checked against a stable-sort and
exact-rational oracle in tests/test_golden_nm.py.
"""

import numpy as np

import cocotb

from lpcores import golden
from lpcores.formats import get_format

from .nmdot import by_length, elements, result_beat
from .nmprune import _scales, tie_heavy
from .stream import TB, pack, unpack


def vectors(tb):
    """x, w (beats, G*m), c, last flags and load flags per beat."""
    p = tb.sidecar["params"]
    G, N, M = p["groups"], p["n"], p["m"]
    L = G * M
    rng = tb.nprng("vectors")
    n_dots = int(tb.options.get("dots", 250))
    max_beats = -(-p["max_terms"] // (G * N))
    lengths = []
    for _ in range(n_dots):
        r = rng.random()
        if r < 0.3:
            lengths.append(1)
        elif r < 0.36:
            lengths.append(max_beats + 1)                               # overflow
        else:
            lengths.append(int(rng.integers(1, max_beats + 1)))
    nb = sum(lengths)
    x = tie_heavy(rng, p["x_fmt"], (nb, L))
    w = elements(rng, p["w_fmt"], (nb, L))
    last = np.zeros(nb, dtype=bool)
    last[np.cumsum(lengths) - 1] = True
    if p["out_fmt"] == "int32":
        c = rng.integers(-(1 << 30), 1 << 30, size=nb) & 0xFFFFFFFF
    else:
        c = elements(rng, p["out_fmt"], nb, specials=0.02)
    load = np.zeros(nb, dtype=bool)
    if p["scaled"]:
        rows = p["channels"] // L
        xs, ws, cs, ls, lds, k = [], [], [], [], [], 0
        while k < nb:
            s = _scales(rng, (rows, L))
            xs.append(s)
            ws.append(np.zeros((rows, L), dtype=np.int64))
            cs.append(np.zeros(rows, dtype=np.int64))
            ls.append(np.zeros(rows, dtype=bool))
            lds.append(np.ones(rows, dtype=bool))
            step = int(rng.integers(20, 150))
            sl = slice(k, k + step)
            xs.append(x[sl])
            ws.append(w[sl])
            cs.append(c[sl])
            ls.append(last[sl])
            lds.append(np.zeros(len(x[sl]), dtype=bool))
            k += step
        x, w, c = np.concatenate(xs), np.concatenate(ws), np.concatenate(cs)
        last, load = np.concatenate(ls), np.concatenate(lds)
    return x, w, c, last, load


def beats_of(tb, x, w, c, last, load):
    p = tb.sidecar["params"]
    G, M = p["groups"], p["m"]
    fields = {}
    for g in range(G):
        for j in range(M):
            fields[f"x{g}_{j}"] = x[:, g * M + j]
            fields[f"w{g}_{j}"] = w[:, g * M + j]
    if p["scaled"]:
        fields["load"] = load.astype(np.int64)
    if p["addend"]:
        fields["c"] = c
    fields["last"] = last.astype(np.int64)
    return pack(tb.fi, **fields), [bool(e) for e in last & ~load]


def expected_fn(tb, x, w, c, last, load):
    """groups of beat indices -> expected results; the scale table is replayed from
    its reset state (all ones) per segment."""
    p = tb.sidecar["params"]
    G, N, M = p["groups"], p["n"], p["m"]
    L = G * M
    off = {f["name"]: (f["offset"], f["width"]) for f in tb.fo}

    def expected(groups):
        rows = (p["channels"] // L) if p["scaled"] else 1
        table = np.ones((rows, L), dtype=np.int64)
        lptr = dptr = 0
        data, scale = [], []                     # per group: data beats, their scales
        for grp in groups:
            d, s = [], []
            for k in grp:
                if load[k]:
                    table[lptr] = x[k] & 0xFF
                    lptr = (lptr + 1) % rows
                else:
                    d.append(k)
                    s.append(table[dptr].copy())
                    dptr = (dptr + 1) % rows
            data.append(d)
            scale.append(np.array(s))
        out = [None] * len(groups)
        for ln, which in by_length(data).items():
            ks = np.array([data[i] for i in which])                # (k, ln)
            X = x[ks].reshape(len(which), ln * L)
            W = w[ks].reshape(len(which), ln * L)
            S = (np.array([scale[i] for i in which]).reshape(len(which), ln * L)
                 if p["scaled"] else None)
            C = c[ks[:, 0]] if p["addend"] else None
            r = golden.sparse_linear(X, W, N, M, p["x_fmt"], p["w_fmt"], p["out_fmt"],
                                     accumulate=p["accumulate"], scale=S, c=C, groups=G,
                                     rounding=p["rounding"])
            ovf = ln * G * N > p["max_terms"]
            for t, i in enumerate(which):
                out[i] = result_beat(off, r[t], ovf)
        return out
    return expected


def describe(tb):
    p = tb.sidecar["params"]

    def render(bin_, exp, got):
        r = unpack(tb.fo, [exp, got])
        ov = f" overflow expected={r['overflow'][0]} got={r['overflow'][1]}"
        if p["out_fmt"] == "int32":
            return f"(last beat shown) r expected={r['r'][0]} got={r['r'][1]}" + ov
        e, g = golden.decode(r["r"], p["out_fmt"])
        return f"(last beat shown) r expected={e!r} got={g!r}" + ov
    return render


def _prefix(ends, beats):
    """The first `beats` beats or so, cut after a beat that ends a result."""
    cut = [k + 1 for k, e in enumerate(ends) if e and k + 1 >= beats]
    return cut[0] if cut else len(ends)


@cocotb.test()
async def test_timing(dut):
    """Latency (pruner + dot engine) as the sidecar says; one beat a cycle, load
    beats included."""
    tb = TB(dut)
    await tb.start()
    x, w, c, last, load = vectors(tb)
    beats, ends = beats_of(tb, x, w, c, last, load)
    n = _prefix(ends, 200)
    await tb.check_timing(beats[:n], expected_fn(tb, x, w, c, last, load), ends=ends[:n])


@cocotb.test()
async def test_vectors(dut):
    """Every dot product under random valid gaps and ready backpressure."""
    tb = TB(dut)
    await tb.start()
    x, w, c, last, load = vectors(tb)
    beats, ends = beats_of(tb, x, w, c, last, load)
    await tb.check(beats, expected_fn(tb, x, w, c, last, load), ends=ends,
                   what="sparse linear", rng=tb.rng("vectors"), p_valid=0.8,
                   p_ready=0.6, describe=describe(tb))


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-stream: partial sums, beats in flight in both cores and the
    scale table (back to s = 1) are discarded; what follows is exact."""
    tb = TB(dut)
    await tb.start()
    x, w, c, last, load = vectors(tb)
    beats, ends = beats_of(tb, x, w, c, last, load)
    n = _prefix(ends, 1000)
    tr = await tb.check(beats[:n], expected_fn(tb, x, w, c, last, load), ends=ends[:n],
                        what="reset", rng=tb.rng("reset"), p_valid=0.7, p_ready=0.7,
                        reset_at=(n // 4, n // 4 + 1, (2 * n) // 3),
                        describe=describe(tb))
    assert len(tr.segments) == 3
