"""cocotb testbench of ``IterNorm`` / ``FisrNorm`` (driven by ``tests/test_iternorm.py``).

Vectors of random length ``d`` (multiples of ``lanes`` from 64 to ``max_d``), drawn
from classes: Gaussian with a few large outlier channels, zero vectors (mixed signed
zeros), vectors holding a NaN or an Inf, huge magnitudes (s overflows fp32), tiny
ones (subnormals: s underflows fp32), and vectors too short or too long (one
``err`` beat each); for layernorm also constant vectors (zero variance; d not a
power of two among them), nearly constant ones (one element one code away) and vectors
with a large common offset (mean >> spread, where a one-pass variance would cancel). Expected beats come from ``golden.iternorm`` /
``golden.fisrnorm``, themselves checked against an exact-rational model.

The stream driver is ``sim/stream.py``'s; a vector's last input beat is its "end"
and is worth ``d/lanes`` output beats (1 for an error vector).
"""

import importlib
import re

import numpy as np

import cocotb

from lpcores import golden
from lpcores.formats import get_format

from .stream import TB, groups_of, pack, unpack


def _p(tb):
    return tb.sidecar["params"]


def make_vectors(tb, n, rng, *, classes=True, d_choices=None, kinds=None):
    """n vectors: list of (codes (d,), gamma (d,), beta (d,)) or ("err", beats).
    ``kinds`` (a list of numbers in [0, 1)) picks the classes instead of chance."""
    p = _p(tb)
    f = get_format(p["fmt"])
    L, D = p["lanes"], p["max_d"]
    sb = 1 << (f.bits - 1)
    top = f.max_mag_code
    M = f.man_bits
    out = []
    for i in range(n if kinds is None else len(kinds)):
        d = int(rng.choice(d_choices)) if d_choices is not None else \
            int(rng.integers(64 // L, D // L + 1)) * L
        kind = kinds[i] if kinds is not None else rng.random() if classes else 1.0
        if kind < 0.04 and 64 // L > 1:
            out.append(("err", int(rng.integers(1, 64 // L))))       # too short
            continue
        if kind < 0.07:
            out.append(("err", D // L + int(rng.integers(1, 4))))    # too long
            continue
        x = rng.standard_normal(d)
        x[rng.integers(0, d, 3)] *= rng.uniform(10, 100)              # outlier channels
        x *= np.exp2(rng.integers(-8, 8))
        codes = golden.encode(x, f).astype(np.int64)
        if kind < 0.12:
            codes = rng.integers(0, 2, d) * sb                       # zero vector
        elif kind < 0.16:
            codes[rng.integers(0, d)] = f.nan_code if rng.random() < 0.5 else \
                (f.inf_code | (sb * int(rng.integers(0, 2))))
        elif kind < 0.21:
            codes = (top - (rng.integers(0, 4, d) << M)) & ~rng.integers(0, 1 << M, d)
            codes |= rng.integers(0, 2, d) * sb                      # huge
        elif kind < 0.26:
            codes = rng.integers(0, 1 << min(M, 6), d) | (rng.integers(0, 2, d) * sb)
        elif p["mode"] == "layernorm" and kind < 0.34:
            # constant: one random finite code everywhere (the mean is x0 exactly, so
            # zeros out, also for d not a power of two where RN(1/d) is inexact;
            # docs/iternorm.md); kind >= 0.32: nearly constant, one element one code
            # away (not constant: the flag must not fire)
            c = int(golden.encode(np.array([rng.standard_normal() * 2.0 ** int(
                rng.integers(-20, 20))]), f)[0])
            codes = np.full(d, c if rng.random() < 0.8 else int(rng.integers(0, 2)) * sb,
                            dtype=np.int64)
            if kind >= 0.32:
                codes[int(rng.integers(0, d))] ^= 1
        elif p["mode"] == "layernorm" and kind < 0.44:
            # a large common offset: mean / spread = 2**6..2**(M - 1)
            off = rng.choice([-1.0, 1.0]) * 2.0 ** int(rng.integers(6, M))
            x = (off + rng.standard_normal(d)) * np.exp2(rng.integers(-8, 8))
            codes = golden.encode(x, f).astype(np.int64)
        g = golden.encode(rng.standard_normal(d) * 0.5 + 1.0, f).astype(np.int64)
        b = golden.encode(rng.standard_normal(d) * 0.1, f).astype(np.int64)
        if p["affine"] and rng.random() < 0.25:
            # special gammas and betas: +-0, +-Inf, NaN, the largest finite, the
            # smallest subnormal; and gamma 1 with beta -x, so RNE(c*x)*1 - x
            # cancels where c is near 1
            for w in (g, b):
                at = rng.integers(0, d, 4)
                w[at] = rng.choice([0, sb, f.inf_code, f.inf_code | sb, f.nan_code,
                                    top, top | sb, 1, 1 | sb], 4)
            at = rng.integers(0, d, 2)
            g[at] = golden.encode(np.array([1.0]), f)[0]
            b[at] = codes[at] ^ sb
        out.append((codes, g, b))
    return out


def inexact_constant(tb, rng, d_choices, tries=400):
    """A constant vector (codes, gamma, beta) whose *computed* mean
    ``RNE_FX(sum * RN(1/d))`` misses x0 by an ulp or more (d not a power of two):
    the case the constant-vector rule exists for. None if none was found."""
    p = _p(tb)
    f = get_format(p["fmt"])
    G = importlib.import_module("lpcores.golden.iternorm")
    for _ in range(tries):
        d = int(rng.choice(d_choices))
        c = golden.encode(np.array([rng.standard_normal() * 2.0 ** int(
            rng.integers(-20, 20))]), f)[:1].astype(np.int64)
        x = golden.decode(np.repeat(c, d)[None, :], f)
        tot = G._lane_sum(x, p["lanes"], square=False)
        if G.fx_fma(tot, G.inv_rn(d), -0.0)[0] != x[0, 0]:
            g = golden.encode(rng.standard_normal(d) * 0.5 + 1.0, f).astype(np.int64)
            b = golden.encode(rng.standard_normal(d) * 0.1, f).astype(np.int64)
            return np.repeat(c, d), g, b
    return None


def beats_of(tb, vecs):
    """Input beats and ends (output beats due at each input beat)."""
    p = _p(tb)
    L = p["lanes"]
    f = get_format(p["fmt"])
    rows, ends = [], []
    for v in vecs:
        if isinstance(v[0], str):
            nb = v[1]
            x = np.full((nb, L), 0x3F80 if f.bits == 16 else 0x3F800000)
            g = b = np.zeros((nb, L), dtype=np.int64)
            outs = 1
        else:
            x, g, b = (a.reshape(-1, L) for a in v)
            nb = len(x)
            outs = nb
        for j in range(nb):
            fields = {f"x{k}": [x[j, k]] for k in range(L)}
            if p["affine"]:
                fields.update({f"g{k}": [g[j, k]] for k in range(L)})
                fields.update({f"b{k}": [b[j, k]] for k in range(L)})
            fields["last"] = [int(j == nb - 1)]
            rows.append(pack(tb.fi, **fields)[0])
            ends.append(outs if j == nb - 1 else 0)
    return rows, ends


def expected_beats(tb, vecs):
    """Per vector, the list of expected output beats."""
    p = _p(tb)
    L = p["lanes"]
    fn = golden.fisrnorm if tb.sidecar["core"] == "FisrNorm" else golden.iternorm
    res = []
    for v in vecs:
        if isinstance(v[0], str):
            res.append(pack(tb.fo, **{f"y{k}": [0] for k in range(L)}, last=[1], err=[1]))
            continue
        x, g, b = v
        kw = dict(gamma=g, beta=b) if p["affine"] else {}
        if "start" in p:
            kw["start"] = p["start"]
        if p.get("reduce") in ("window", "squares"):
            kw.update(reduce=p["reduce"], max_d=p["max_d"])
        if p.get("fuse"):
            kw["fuse"] = True
        y = fn(x[None, :], p["fmt"], mode=p["mode"], iters=p["iters"], lam=p["lam"],
               lanes=L, partials=p.get("partials", 1), **kw)[0].reshape(-1, L)
        nb = len(y)
        fields = {f"y{k}": y[:, k] for k in range(L)}
        fields["last"] = [int(j == nb - 1) for j in range(nb)]
        fields["err"] = [0] * nb
        res.append(pack(tb.fo, **fields))
    return res


def describe(tb, beat, exp, got):
    p = _p(tb)
    e, g = unpack(tb.fo, [exp]), unpack(tb.fo, [got])
    bad = [k for k in range(p["lanes"]) if e[f"y{k}"][0] != g[f"y{k}"][0]]
    txt = ", ".join(f"y{k} expected {golden.decode([e[f'y{k}'][0]], p['fmt'])[0]!r} "
                    f"got {golden.decode([g[f'y{k}'][0]], p['fmt'])[0]!r}"
                    for k in bad[:3])
    return (f"(vector {beat[0]}, output beat {beat[1]}) {txt} last {e['last'][0]}/"
            f"{g['last'][0]} err {e['err'][0]}/{g['err'][0]}")


async def run_and_check(tb, vecs, *, what, rng, p_valid=1.0, p_ready=1.0,
                        reset_at=()):
    """Stream the vectors; per segment between resets, everything emitted must be
    the exact prefix of the expected beats (only the tail may be flushed)."""
    beats, ends = beats_of(tb, vecs)
    exp_per_vec = expected_beats(tb, vecs)
    vec_of_end = {}
    k = 0
    for i, e in enumerate(ends):
        if e:
            vec_of_end[i] = k
            k += 1
    # a vector occupies the scalar unit for about its latency's constant (the fmax
    # build: hundreds of cycles), so the time budget grows with the vectors
    slack = 1.0 / max(min(p_valid, p_ready), 0.05)
    budget = (int((len(beats) + 50) * slack * 4) + 1000
              + (len(vecs) + 20) * (tb.sidecar["latency"] + 50))
    tr = await tb.stream(beats, rng=rng, ends=ends, p_valid=p_valid, p_ready=p_ready,
                         reset_at=reset_at, max_cycles=budget)
    checked = 0
    for si, seg in enumerate(tr.segments):
        groups = groups_of(seg.accepted, ends)
        exp, tags = [], []
        for g in groups:
            v = vec_of_end[g[-1]]
            exp += exp_per_vec[v]
            tags += [(v, j) for j in range(len(exp_per_vec[v]))]
        got = seg.outputs
        last = si == len(tr.segments) - 1
        if len(got) > len(exp) or (last and len(got) != len(exp)):
            raise AssertionError(
                f"{tb.unit} [{what}] seed {tb.seed}: segment {si} emitted {len(got)} "
                f"beats, expected {len(exp)} (params {tb.sidecar['params']})")
        _compare(tb, got, exp[:len(got)], tags, what=f"{what}, segment {si}")
        checked += len(got)
    tb.log.info(f"{what}: {checked} output beats checked")
    return tr


def _compare(tb, got, exp, tags, *, what):
    # tb.compare prints the *input* beat of each mismatch; here an output beat
    # belongs to (vector, beat) instead, so map the tag into the report
    bad = [k for k in range(len(got)) if got[k] != exp[k]]
    if not bad:
        return
    lines = [f"{tb.unit} [{what}]: {len(bad)} of {len(got)} beats mismatch; params "
             f"{tb.sidecar['params']}, seed {tb.seed}"]
    for k in bad[:6]:
        lines.append(f"  | beat {k}: expected=0x{exp[k]:x} got=0x{got[k]:x}  "
                     + describe(tb, tags[k], exp[k], got[k]))
    raise AssertionError("\n".join(lines))


def latency_const(tb):
    """(passes, c) of the sidecar's formula ``passes*d/lanes + c``."""
    mo = re.search(r"(\d+)\*d/\d+ \+ (\d+) cycles", tb.sidecar["latency_formula"])
    return int(mo.group(1)), int(mo.group(2))


@cocotb.test()
async def test_latency(dut):
    """One vector at a time at full throughput: first input beat to last output beat
    equals the sidecar's formula, for d from 64 to max_d."""
    tb = TB(dut)
    await tb.start()
    p = _p(tb)
    L, D = p["lanes"], p["max_d"]
    ds = sorted({64, 128, 256, 512, 1024, D} & set(range(64, D + 1, L)))
    rng = tb.nprng("latency")
    passes, c = latency_const(tb)
    measured = {}
    for d in ds:
        vecs = make_vectors(tb, 1, rng, classes=False, d_choices=[d])
        tr = await run_and_check(tb, vecs, what=f"latency d={d}", rng=tb.rng(d))
        n = d // L
        assert tr.accept_cycle == list(range(tr.accept_cycle[0], tr.accept_cycle[0] + n))
        assert tr.output_cycle == list(range(tr.output_cycle[0], tr.output_cycle[0] + n))
        lat = tr.output_cycle[-1] - tr.accept_cycle[0]
        measured[d] = lat
        assert lat == passes * n + c, (f"{tb.unit}: d={d} took {lat} cycles, the "
                                       f"sidecar formula says {passes * n + c}")
    tb.log.info(f"LATENCY {tb.unit} " + " ".join(f"{d}:{v}" for d, v in measured.items()))


@cocotb.test()
async def test_vectors(dut):
    """Random vectors of every class, back to back, random valid gaps and ready
    backpressure."""
    tb = TB(dut)
    await tb.start()
    rng = tb.nprng("vectors")
    vecs = make_vectors(tb, int(tb.options.get("vectors", 40)), rng)
    p = _p(tb)
    if p["mode"] == "layernorm":
        # at least three constant vectors (d not a power of two where the range
        # has one: RN(1/d) inexact), one whose computed mean would miss x0, one
        # nearly constant and three large-offset ones, shuffled in
        odd = [d for d in range(64, p["max_d"] + 1, p["lanes"]) if d & (d - 1)]
        extra = make_vectors(tb, 0, rng, kinds=[0.3] * 3 + [0.33],
                             d_choices=odd or None)
        extra += make_vectors(tb, 0, rng, kinds=[0.4] * 3)
        v = inexact_constant(tb, rng, odd) if odd else None
        extra += [v] if v is not None else []
        for v in extra:
            vecs.insert(int(rng.integers(0, len(vecs) + 1)), v)
    await run_and_check(tb, vecs, what="vectors", rng=tb.rng("vectors"), p_valid=0.8,
                        p_ready=0.6)


@cocotb.test()
async def test_back_to_back(dut):
    """Full throughput in and out: consecutive vectors overlap (input of one during
    the output of the previous)."""
    tb = TB(dut)
    await tb.start()
    rng = tb.nprng("b2b")
    vecs = make_vectors(tb, int(tb.options.get("b2b", 12)), rng, classes=False)
    tr = await run_and_check(tb, vecs, what="back-to-back", rng=tb.rng("b2b"))
    span = tr.output_cycle[-1] - tr.accept_cycle[0]
    beats = sum(len(v[0]) for v in vecs) // _p(tb)["lanes"]
    tb.log.info(f"BACK2BACK {tb.unit}: {beats} beats in, {span} cycles")


@cocotb.test()
async def test_reset_midstream(dut):
    """Resets in mid-vector (input half streamed), in the scalar phase and in the
    middle of a vector's output: what was in flight is dropped, what follows exact.

    (The driver counts output beats per input "end"; a vector cut by a reset would
    come out as a shorter vector, or an error beat, so each reset is placed where
    the driver knows what is due.)"""
    tb = TB(dut)
    await tb.start()
    p = _p(tb)
    L = p["lanes"]
    rng = tb.nprng("reset")
    # 1. half a vector, then a reset at the start of the next batch
    v = make_vectors(tb, 1, rng, classes=False, d_choices=[p["max_d"]])
    beats, _ = beats_of(tb, v)
    await tb.stream(beats[:len(beats) // 2], rng=tb.rng("r1"), ends=[0] * (len(beats) // 2))
    tr = await run_and_check(tb, make_vectors(tb, 3, rng), what="after input reset",
                             rng=tb.rng("r2"), reset_at=(0, 1), p_valid=0.8, p_ready=0.8)
    assert len(tr.segments) == 1
    # 2. a whole vector, reset while its scale is being computed
    v = make_vectors(tb, 1, rng, classes=False, d_choices=[128])
    beats, _ = beats_of(tb, v)
    await tb.stream(beats, rng=tb.rng("r3"), ends=[0] * len(beats))
    await run_and_check(tb, make_vectors(tb, 3, rng), what="after scalar-phase reset",
                        rng=tb.rng("r4"), reset_at=(0, 1), p_valid=0.8, p_ready=0.8)
    # 3. reset in the middle of a vector's output: at full throughput the first
    # output beat comes (passes - 1)*n + c + 1 cycles after the first input beat
    # (formula)
    d = p["max_d"]
    v = make_vectors(tb, 1, rng, classes=False, d_choices=[d])
    n = d // L
    passes, c = latency_const(tb)
    cut = (passes - 1) * n + c + 1 + n // 2
    tr = await run_and_check(tb, v, what="output reset", rng=tb.rng("r5"),
                             reset_at=(cut, cut + 1))
    assert len(tr.segments) == 2 and len(tr.segments[0].outputs) == n // 2
    await run_and_check(tb, make_vectors(tb, 4, rng), what="after output reset",
                        rng=tb.rng("r6"), p_valid=0.8, p_ready=0.8)
