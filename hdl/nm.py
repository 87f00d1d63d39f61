"""N:M structured sparsity (SPEC §4.5): ``NMPrune``.

``NMPrune`` takes ``groups`` groups of ``m`` elements a beat and keeps, in every
group, the ``n`` elements with the highest score. Per group it emits the ``n`` kept
values in ascending index order (``v{g}_{k}``), their indices packed into one field
(``idx{g}``: ``ceil(log2 m)`` bits each, slot 0 in the low bits, so 2:4 gives the
4-bit metadata nibble of NVIDIA sparse tensor cores) and the dense masked group
(``d{g}_{j}``: dropped elements replaced by the +0 code).

Score and ties
    score = |x|, or |x|·s_c with ``scaled=True``. NaN ranks above everything (also
    Inf·0, as in IEEE); all NaNs tie; +0 and -0 tie (they score 0). Ties go to the
    lower index. Under this rule the scores form a strict total order, so exactly
    ``n`` elements are kept.

Score key (a monotonic unsigned integer per element, so one ``>=`` compares scores)
    * floats, unscaled: the magnitude code (sign bit dropped) is monotonic in |x| for
      every IEEE-style format, Inf included; NaN codes are mapped to all ones, so
      all NaNs tie at the top.
    * int8, unscaled: |x| in 8 bits (|-128| = 128).
    * floats, scaled: the exact product P = sig·s (``man_bits + 9`` bits) is
      normalized with the shared :func:`.fp.normalize`; key = (biased exponent,
      fraction of P), 0 for P = 0, the all-ones exponent for Inf (s > 0), all ones
      for NaN and Inf·0. Exact: no score is rounded.
    * int8, scaled: |x|·s, 16 bits.

Scales (``scaled=True``)
    s_c is an unsigned 8-bit integer code per channel. Only ratios of scores matter
    to a ranking, so the binary point of s is irrelevant: read s as UQ8.0, UQ4.4 or
    UQ0.8 as the host likes; 8 bits give under 0.4 % (1/256 of the largest scale)
    resolution, finer than the e4m3 grid of the values being pruned. ``channels``
    scales (a multiple of ``groups·m``; default one beat) sit in an internal table of
    ``channels/(groups·m)`` rows, reset to s = 1 (plain |x|). A beat with ``load=1``
    writes its element fields' low 8 bits (element (g, j) -> scale of lane
    ``g·m + j``) into the next table row and produces no output; data beats use the
    rows in turn (data beat k after reset uses row ``k mod rows``, load beat l writes
    row ``l mod rows``), so a row of activations of ``channels`` elements meets
    channel c's scale at position c.

Selection network: all-pairs ranking
    For every pair i < j one comparator ``key_i >= key_j`` decides which of the two
    wins (the lower index on a tie); element i is kept iff fewer than n elements beat
    it. That is m(m-1)/2 comparators in a single level, a popcount of m-1 bits and a
    compare with n per element, then a compaction mux (slot k can only come from
    elements k .. k + m - n). The tie rule is exact by construction and the depth is
    one comparator plus a small popcount, whatever n; a sorting network needs
    ~log2(m)^2/2 comparator levels, each a compare *and* a swap of key and index
    (see docs/sparsity.md for the measured comparison).

Pipelining (``stages``): cut points, in the order taken: ``key`` (scaled only,
after the scale multipliers and normalizers), ``rank`` (after the kept bits, before
compaction), ``cmp`` (after the comparator matrix, before the popcounts). Latency
``stages + 1`` cycles; one beat a cycle.

Clock-directed (``fmax``, :mod:`.timing`): every block charges its delay and the
registers may also go at fine cut points, one register row across the elements or
groups: inside the scaled score (after the product, between the levels of the
normalizing LZC and shifter), between the comparator levels of the sorting network,
between the adder levels of the popcounts (m > 7) and of the positions' prefix sums
(m > 7). Small popcounts (up to 6 bits: m <= 7) are built as LUT tables, larger
positions of the compaction as a log-depth prefix sum instead of a ripple. With
``stages`` the netlist is the one of the named cut points.
"""

import contextlib
import math
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed

from lpcores.errors import FmaxError, ParamError, check_choice, check_int
from lpcores.formats import get_format

from .base import (Field, Pipeline, StreamCore, name_pipelined, plan_pipeline,
                   timing_suffix)
from .timing import fabric
from .fp import lzc, normalize, normalize_shift, sum_tree, unpack

__all__ = ["NMPrune", "PRUNE_FORMATS", "SELECTIONS", "index_bits"]

PRUNE_FORMATS = ("bf16", "fp16", "e4m3", "e5m2", "int8")
SCALE_BITS = 8
SELECTIONS = ("allpairs", "sortnet")


def index_bits(m):
    """Bits of one index into a group of ``m`` elements: ceil(log2 m)."""
    return max(1, (m - 1).bit_length())


def check_nm(n, m):
    check_int("m", m, lo=2, hi=16)
    check_int("n", n, lo=1)
    if n >= m:
        raise ParamError(f"n must be < m, got n={n}, m={m}")


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ParamError(f"{name} must be True or False, not {value!r}")
    return value


def _mul_ns(fab, wa, wb):
    # an inferred multiply: a DSP block where the family has them, else LUTs
    return fab.dsp_mul if fab.has_dsp else fab.mul_lut(wa, wb)


def score_key(m, x, f, s=None, name="k", pipe=None, s_ns=0.0):
    """The monotonic unsigned score key of element code ``x`` of format ``f``
    (scaled by the unsigned 8-bit ``s`` when given); see the module docstring.
    ``pipe``: charge the delays (``s_ns``: when ``s`` arrives), and when scaled
    offer fine cut points before and after the product and between the levels of
    the normalizing LZC and shifter."""
    x = Value.cast(x)
    if f.kind == "int":
        mag = Signal(8, name=f"{name}_abs")
        m.d.comb += mag.eq(Mux(x[7], -x, x))
        if pipe is not None:
            pipe.charge(max(pipe.fab.carry(8) + pipe.fab.lut, s_ns))
        if s is None:
            return mag
        if pipe is not None:
            mag, s = pipe.cut(f"{name}.u", mag, s)
        key = Signal(8 + SCALE_BITS, name=f"{name}_key")
        m.d.comb += key.eq(mag * s)
        if pipe is not None:
            pipe.charge(_mul_ns(pipe.fab, 8, SCALE_BITS))
        return key
    if s is None:
        u = unpack(m, x, f, name=name)
        key = Signal(f.bits - 1, name=f"{name}_key")
        m.d.comb += key.eq(Mux(u.is_nan, (1 << (f.bits - 1)) - 1, x[:f.bits - 1]))
        if pipe is not None:     # the NaN decode (no exponent arithmetic), the mux
            pipe.charge(pipe.fab.reduce(f.bits - 1) + pipe.fab.lut)
        return key
    # P = sig * s, exact; value = P * 2**(exp - man_bits). Biased exponent of P's
    # MSB: eb = exp - emin + W - count, in 1 .. emax - emin + W for P != 0.
    u = unpack(m, x, f, name=name)
    if pipe is not None:
        # the significand is a LUT level (the hidden bit), the exponent's subtract
        # beside it; the scale's read mux beside both
        pipe.charge(max(pipe.fab.carry(f.exp_bits + 1) + pipe.fab.lut, s_ns))
        u, s = pipe.cut(f"{name}.u", u, s)
    W = f.man_bits + 1 + SCALE_BITS
    prod = Signal(W, name=f"{name}_p")
    m.d.comb += prod.eq(u.sig * s)
    ebmax = f.emax - f.emin + W
    EB = (ebmax + 1).bit_length()          # ebmax < 2**EB - 1: all ones is free for Inf
    s_zero = Value.cast(s) == 0
    if pipe is None:
        sig_n, exp_n, zero = normalize(m, prod, u.exp - f.emin + W, name=f"{name}_n")
    else:
        pipe.charge(_mul_ns(pipe.fab, f.man_bits + 1, SCALE_BITS))
        eb0 = Signal(signed(len(Value.cast(u.exp)) + 2), name=f"{name}_eb0")
        m.d.comb += eb0.eq(u.exp - f.emin + W)          # beside the multiply
        fl = (u.is_nan, u.is_inf, s_zero, eb0)
        with pipe.carry(fl) as c:
            prod = pipe.cut(f"{name}.p", prod)
        (fl,) = c.values
        with pipe.carry(fl, prod) as c:
            zero, count = lzc(prod, pipe=pipe, name=f"{name}_lzc", m=m)
        fl, prod = c.values
        with pipe.carry(fl, zero) as c:
            sig_n, exp_n = normalize_shift(m, prod, fl[3], count, name=f"{name}_n",
                                           pipe=pipe)
        fl, zero = c.values
        u = SimpleNamespace(is_nan=fl[0], is_inf=fl[1])
        s_zero = fl[2]
        pipe.charge(pipe.fab.luts(2))                   # the key's 4-way mux
    key = Signal(EB + W - 1, name=f"{name}_key")
    with m.If(u.is_nan | (u.is_inf & s_zero)):
        m.d.comb += key.eq((1 << (EB + W - 1)) - 1)
    with m.Elif(u.is_inf):
        m.d.comb += key.eq(((1 << EB) - 1) << (W - 1))
    with m.Elif(zero):
        m.d.comb += key.eq(0)
    with m.Else():
        m.d.comb += key.eq(Cat(sig_n[:W - 1], exp_n[:EB]))
    return key


def compare_matrix(m, keys, name="c"):
    """ge[(i, j)] = key_i >= key_j for i < j: i beats j iff ge, j beats i iff not."""
    M = len(keys)
    ge = {}
    for i in range(M):
        for j in range(i + 1, M):
            s = Signal(name=f"{name}_{i}_{j}")
            m.d.comb += s.eq(keys[i] >= keys[j])
            ge[(i, j)] = s
    return ge


def kept_bits(m, ge, M, n, name="r"):
    """kept_i = (number of elements that beat i) < n."""
    kept = []
    for i in range(M):
        beaters = ([ge[(j, i)] for j in range(i)]
                   + [~ge[(i, j)] for j in range(i + 1, M)])
        cnt = Signal(range(M), name=f"{name}_cnt{i}")
        m.d.comb += cnt.eq(sum(b.as_unsigned() for b in beaters))
        k = Signal(name=f"{name}_kept{i}")
        m.d.comb += k.eq(cnt < n)
        kept.append(k)
    return kept


def batcher_pairs(n):
    """Comparators (a, b), a < b, of Batcher's odd-even merge sort of n = 2**k."""
    return [pair for layer in batcher_layers(n) for pair in layer]


def batcher_layers(n):
    """:func:`batcher_pairs` by comparator level: the comparators of one level touch
    disjoint lanes, so they work side by side (a pipeline may cut between levels)."""
    layers, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            layer = []
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        layer.append((i + j, i + j + k))
            if layer:
                layers.append(layer)
            k //= 2
        p *= 2
    return layers


def sortnet_kept(m, keys, n, name="q", pipe=None):
    """The sorting-network alternative to :func:`compare_matrix` + :func:`kept_bits`
    (``selection="sortnet"``, kept for the area/Fmax comparison): Batcher's network
    sorts (key, index) pairs best-first; a pair beats another on a higher key, or an
    equal key and a lower index, so the order is total and the result exact. Groups
    are padded to a power of two with entries below every real key; the top ``n``
    indices decode into the kept bits (comparators feeding only lower ranks are
    trimmed by synthesis). ``pipe``: charge the delays, cuttable between the
    comparator levels (``name.k``)."""
    M = len(keys)
    P = 1 << (M - 1).bit_length()
    KW = len(Value.cast(keys[0])) + 1
    IB = max(1, (P - 1).bit_length())
    lanes = [(Cat(Value.cast(k), Const(1, 1)), Const(i, IB)) for i, k in enumerate(keys)]
    lanes += [(Const(0, KW), Const(i, IB)) for i in range(M, P)]
    pad = [i >= M for i in range(P)]
    ends, total = {}, 0
    for lvl, layer in enumerate(batcher_layers(P)):
        total += len(layer)
        ends[total] = lvl + 1           # comparator index where level lvl+1 ends
    for c, (a, b) in enumerate(batcher_pairs(P)):
        if pipe is not None and c in ends:
            # a comparator level: the compare of key and index, the swap's muxes
            pipe.charge(pipe.fab.carry(KW) + pipe.fab.luts(2))
            lanes = _pairs(pipe.cut(f"{name}.{ends[c]}",
                                    *[v for ln in lanes for v in ln], None)[:-1])
        if pipe is not None and (pad[a] or pad[b]):
            # a padding entry loses to every element (the outcome is known, and the
            # entry stays a constant, never a register); two of them: either order
            if not pad[b]:
                lanes[a], lanes[b], pad[a], pad[b] = lanes[b], lanes[a], False, True
            continue
        (ka, ia), (kb, ib) = lanes[a], lanes[b]
        swap = Signal(name=f"{name}_sw{c}")
        m.d.comb += swap.eq((kb > ka) | ((kb == ka) & (ib < ia)))
        out = []
        for x, y in ((ka, kb), (ia, ib)):
            hi = Signal(len(x), name=f"{name}_{c}_h{len(out)}")
            lo = Signal(len(x), name=f"{name}_{c}_l{len(out)}")
            m.d.comb += [hi.eq(Mux(swap, y, x)), lo.eq(Mux(swap, x, y))]
            out.append((hi, lo))
        lanes[a] = (out[0][0], out[1][0])
        lanes[b] = (out[0][1], out[1][1])
    if pipe is not None:        # the last level, a cut point, then the decode
        pipe.charge(pipe.fab.carry(KW) + pipe.fab.luts(2))
        lanes = _pairs(pipe.cut(f"{name}.{len(ends)}",
                                *[v for ln in lanes[:n] for v in ln], None)[:-1])
    kept = []
    for i in range(M):
        k = Signal(name=f"{name}_kept{i}")
        m.d.comb += k.eq(Cat(*[lanes[r][1] == i for r in range(n)]).any())
        kept.append(k)
    if pipe is not None:
        pipe.charge(pipe.fab.luts(1) + pipe.fab.reduce(n))
    return kept


def _pairs(flat):
    flat = list(flat)
    return [(flat[k], flat[k + 1]) for k in range(0, len(flat), 2)]


def _table(m, bits, fn, name):
    """``fn(popcount)`` of up to 6 bits as LUT tables (a constant indexed by the
    bits, one table an output bit): no carry chain."""
    bits = Cat(*bits)
    width = max(1, max(fn(c) for c in range(len(bits) + 1)).bit_length())
    res = Signal(width, name=name)
    for b in range(width):
        table = sum(((fn(bin(v).count("1")) >> b) & 1) << v for v in range(1 << len(bits)))
        m.d.comb += res[b].eq(Const(table, 1 << len(bits)).bit_select(bits, 1))
    return res


def _table_ns(fab, nbits):
    return fab.luts(1 if nbits <= 4 else 2)


def kept_bits_timed(m, ge, M, n, name="r", pipe=None):
    """:func:`kept_bits` for clock-directed pipelining: the count of an element's
    beaters compared with ``n`` as a LUT table when it has at most 6 beaters, else an
    adder tree cuttable between its levels (``name_pc.k``)."""
    kept, beaters = [], []
    for i in range(M):
        beaters.append([ge[(j, i)] for j in range(i)]
                       + [~ge[(i, j)] for j in range(i + 1, M)])
    if M - 1 <= 6:
        for i in range(M):
            kept.append(_table(m, beaters[i], lambda c: int(c < n), f"{name}_kept{i}"))
        pipe.charge(_table_ns(pipe.fab, M - 1))
        return kept
    W = (M - 1).bit_length()
    cnts = [[b.as_unsigned() for b in bs] for bs in beaters]
    # all M popcounts level by level, one register row (sum_tree on each, side by
    # side, would cut each at its own points)
    level = cnts
    k = 0
    while len(level[0]) > 1:
        nxt = []
        for i, lv in enumerate(level):
            row = []
            for a in range(0, len(lv) - 1, 2):
                sgl = Signal(W, name=f"{name}_pc{i}_{k}_{a // 2}")
                m.d.comb += sgl.eq(lv[a] + lv[a + 1])
                row.append(sgl)
            if len(lv) % 2:
                row.append(lv[-1])
            nxt.append(row)
        level = nxt
        k += 1
        pipe.charge(pipe.fab.carry(W))
        if len(level[0]) > 1:
            flat = pipe.cut(f"{name}_pc.{k}", *[v for row in level for v in row], None)
            it = iter(flat)
            level = [[next(it) for _ in row] for row in level]
    for i in range(M):
        kp = Signal(name=f"{name}_kept{i}")
        m.d.comb += kp.eq(level[i][0] < n)
        kept.append(kp)
    pipe.charge(pipe.fab.luts(2))              # compare with the constant n
    return kept


def _slots(m, kept, pos, xs, n, name):
    """Slot k takes the kept element whose position ``pos`` is k (it lies in
    k .. k + (m - n)): a position compare and AND per candidate, then an OR tree."""
    M, IB = len(kept), index_bits(len(kept))
    vals, idxs = [], []
    for k in range(n):
        v = Signal(len(Value.cast(xs[0])), name=f"{name}_v{k}")
        ix = Signal(IB, name=f"{name}_i{k}")
        sel_v, sel_i = Const(0, len(v)), Const(0, IB)
        for i in range(k, k + M - n + 1):
            hit = kept[i] & (pos[i] == k)
            sel_v = sel_v | Mux(hit, xs[i], 0)
            sel_i = sel_i | Mux(hit, i, 0)
        m.d.comb += [v.eq(sel_v), ix.eq(sel_i)]
        vals.append(v)
        idxs.append(ix)
    return vals, idxs


def compact_timed(m, kept, xs, n, name="s", pipe=None):
    """:func:`compact` for clock-directed pipelining: the positions (kept elements
    below i) as LUT tables when m <= 7, else a log-depth prefix sum cuttable between
    its levels (``name_pos.k``), then per slot an AND-OR mux of m - n + 1 inputs."""
    M = len(kept)
    W = M.bit_length()
    if M - 1 <= 6:
        pos = [Const(0, 1)] + [_table(m, kept[:i], lambda c: c, f"{name}_pos{i}")
                               for i in range(1, M)]
        pipe.charge(_table_ns(pipe.fab, M - 1))
    else:
        # inclusive prefix sums by doubling (Kogge-Stone): after level l, pre[i] counts
        # kept[i - 2**l + 1 .. i]; pos[i] = pre[i - 1]
        pre = [k.as_unsigned() for k in kept]
        step, lvl = 1, 0
        while step < M - 1:
            nxt = []
            for i in range(M):
                if i >= step:
                    sgl = Signal(W, name=f"{name}_pre{i}_{lvl}")
                    m.d.comb += sgl.eq(pre[i] + pre[i - step])
                    nxt.append(sgl)
                else:
                    nxt.append(pre[i])
            pre = nxt
            step *= 2
            lvl += 1
            pipe.charge(pipe.fab.carry(W))
            with pipe.carry(tuple(kept), tuple(xs)) as c:
                pre = list(pipe.cut(f"{name}_pos.{lvl}", *pre, None))[:-1]
            kept, xs = (list(v) for v in c.values)
        pos = [Const(0, 1)] + pre[:M - 1]
    vals, idxs = _slots(m, kept, pos, xs, n, name)
    # the hit decode (position compare, AND), then the OR tree
    pipe.charge(pipe.fab.luts(1) + pipe.fab.reduce(2 * (M - n + 1)))
    return vals, idxs, kept, xs


def compact(m, kept, xs, n, name="s"):
    """The kept elements in ascending index order and their indices.

    pos_i = number of kept elements below i; slot k takes the kept element with
    pos_i == k, which lies in k .. k + (m - n) (n - k - 1 more are kept above it).
    """
    M = len(kept)
    pos = [Const(0, 1)]
    for i in range(1, M):
        p = Signal(range(i + 1), name=f"{name}_pos{i}")
        m.d.comb += p.eq(pos[-1] + kept[i - 1])
        pos.append(p)
    vals, idxs = _slots(m, kept, pos, xs, n, name)
    return vals, idxs


class NMPrune(StreamCore):
    """N:M pruning of ``groups`` groups of ``m`` elements a beat (module docstring).

    Parameters
    ----------
    n, m : int
        Keep ``n`` of every ``m`` elements; 1 <= n < m <= 16.
    fmt : str
        Element format: ``bf16``, ``fp16``, ``e4m3``, ``e5m2`` or ``int8``.
    groups : int
        Groups per beat, 1..64.
    scaled : bool
        Score |x|·s_c with run-time loaded unsigned 8-bit per-channel scales.
    channels : int
        Scaled mode: number of per-channel scales, a multiple of ``groups·m``
        (default ``groups·m``), at most 4096.
    selection : str
        ``"allpairs"`` (default) or ``"sortnet"`` (Batcher network, for comparison;
        no ``cmp`` cut point).
    stages : int
        Pipeline registers besides the output register (0..2, 0..3 scaled; one
        fewer with ``sortnet``).

    carry : sequence of Field
        Extra input fields passed to the output unchanged, in step with their beat
        (:class:`SparseLinear` carries the weights, ``last`` and ``c`` this way).
        Not a command-line option.

    Payload in: ``x{g}_{j}`` (and ``load`` when scaled). Out: ``v{g}_{k}``,
    ``idx{g}``, ``d{g}_{j}``. Latency ``stages + 1``; one beat a cycle.

    Raises
    ------
    ParamError
        On any parameter outside the ranges above.
    """

    def __init__(self, *, n, m, fmt, groups=1, scaled=False, channels=None,
                 selection="allpairs", stages=None, fmax=None, family=None, carry=()):
        check_nm(n, m)
        self.f = get_format(fmt, param="fmt", allowed=PRUNE_FORMATS)
        self.n, self.m = n, m
        self.groups = check_int("groups", groups, lo=1, hi=64)
        self.scaled = _check_bool("scaled", scaled)
        lanes = groups * m
        if channels is not None and not scaled:
            raise ParamError(f"channels needs scaled=True, got channels={channels}")
        if scaled:
            channels = lanes if channels is None else channels
            check_int("channels", channels, lo=1, hi=4096)
            if channels % lanes:
                raise ParamError(f"channels must be a multiple of groups*m = {lanes}, "
                                 f"got channels={channels}")
        self.channels = channels
        self.rows = channels // lanes if scaled else 0
        self.selection = check_choice("selection", selection, SELECTIONS)
        self.cuts = ((("key",) if scaled else ()) + ("rank",)
                     + (("cmp",) if selection == "allpairs" else ()))
        w, name = self.f.bits, self.f.name
        G, N, M = groups, n, m
        self.index_bits = index_bits(m)
        self.carry = tuple(carry)
        self.in_fields = ([Field(f"x{g}_{j}", w, name) for g in range(G) for j in range(M)]
                          + ([Field("load", 1)] if scaled else []) + list(self.carry))
        self.out_fields = ([Field(f"v{g}_{k}", w, name) for g in range(G) for k in range(N)]
                           + [Field(f"idx{g}", N * self.index_bits) for g in range(G)]
                           + [Field(f"d{g}_{j}", w, name) for g in range(G) for j in range(M)]
                           + list(self.carry))
        super().__init__()
        # with stages the netlist stays the one of the named cut points (no model)
        self.timed = fmax is not None
        self.stages, self.timing = plan_pipeline(self, self.cuts, stages=stages,
                                                 fmax=fmax, family=family, name="nmprune")
        if not self.timed:
            self.timing = None
        name_pipelined(self, f"nmprune_{n}of{m}_{self.f.name}_g{groups}"
                       f"{f'_sc{channels}' if scaled else ''}"
                       f"{'_sn' if selection == 'sortnet' else ''}",
                       {"n": n, "m": m, "fmt": self.f.name, "groups": groups,
                        "scaled": scaled, "channels": channels, "selection": selection},
                       fmax)

    def sidecar(self):
        s = super().sidecar()
        s["selection"] = ("all-pairs ranking (m(m-1)/2 comparators, one level)"
                          if self.selection == "allpairs" else
                          "Batcher odd-even merge sort on (key, index)")
        if self.scaled:
            s["scales"] = {"bits": SCALE_BITS, "format": "unsigned integer (ratio only)",
                           "rows": self.rows, "reset_value": 1,
                           "load": "load=1 beat: low 8 bits of x{g}_{j} -> lane g*m+j"}
        return s

    def _scales(self, m, pipe, ports, xs, load):
        """The scale table; returns each lane's scale for the current data beat."""
        G, M, R = self.groups, self.m, self.rows
        table = [[Signal(SCALE_BITS, init=1, name=f"scale_{r}_{ln}") for ln in range(G * M)]
                 for r in range(R)]
        lptr = Signal(range(R), name="load_row")
        dptr = Signal(range(R), name="data_row")
        take = pipe.advance & ports.i.valid
        with m.If(take & load):
            for r in range(R):
                with m.If(lptr == r):
                    m.d.sync += [table[r][g * M + j].eq(Value.cast(xs[g][j])[:SCALE_BITS])
                                 for g in range(G) for j in range(M)]
            if R > 1:
                m.d.sync += lptr.eq(Mux(lptr == R - 1, 0, lptr + 1))
        with m.If(take & ~load):
            if R > 1:
                m.d.sync += dptr.eq(Mux(dptr == R - 1, 0, dptr + 1))
        scales = []
        for ln in range(G * M):
            s = Signal(SCALE_BITS, name=f"scale_{ln}")
            sel = table[0][ln]
            for r in range(1, R):
                sel = Mux(dptr == r, table[r][ln], sel)
            m.d.comb += s.eq(sel)
            scales.append(s)
        return scales

    def elaborate(self, platform):
        m = Module()
        self.build(m, self)
        return m

    def build(self, m, ports):
        """Describe the pruner in module ``m`` between the streams ``ports.i`` and
        ``ports.o`` (the core's own, or interfaces of its signature that a composed
        core such as SparseLinear wires up in its own module)."""
        if ports is not self:             # the plan is the pruner's, not the ports'
            ports._pipe_selected = self._pipe_selected
            ports.family = self.family
        pipe = Pipeline(m, ports, self.cuts, self.stages)
        if self.timed:
            return self._build_timed(m, ports, pipe)
        pl = ports.i.payload
        G, M, N, f = self.groups, self.m, self.n, self.f
        xs = [[getattr(pl, f"x{g}_{j}") for j in range(M)] for g in range(G)]
        side = tuple(getattr(pl, c.name) for c in self.carry)
        if self.scaled:
            scales = self._scales(m, pipe, ports, xs, pl.load)
            pipe.gate(~pl.load)
            keys = [[score_key(m, xs[g][j], f, scales[g * M + j], name=f"k{g}_{j}")
                     for j in range(M)] for g in range(G)]
            keys, xs, side = pipe.cut("key", tuple(map(tuple, keys)),
                                      tuple(map(tuple, xs)), side)
        else:
            keys = [[score_key(m, xs[g][j], f, name=f"k{g}_{j}") for j in range(M)]
                    for g in range(G)]
        if self.selection == "sortnet":
            kept = [sortnet_kept(m, keys[g], N, name=f"q{g}") for g in range(G)]
        else:
            ges = [compare_matrix(m, keys[g], name=f"c{g}") for g in range(G)]
            pairs = [(i, j) for i in range(M) for j in range(i + 1, M)]
            ge_t = tuple(tuple(ge[p] for p in pairs) for ge in ges)
            ge_t, xs, side = pipe.cut("cmp", ge_t, tuple(map(tuple, xs)), side)
            ges = [dict(zip(pairs, t)) for t in ge_t]
            kept = [kept_bits(m, ges[g], M, N, name=f"r{g}") for g in range(G)]
        kept, xs, side = pipe.cut("rank", tuple(map(tuple, kept)), tuple(map(tuple, xs)),
                                  side)
        out = {}
        for g in range(G):
            vals, idxs = compact(m, kept[g], xs[g], N, name=f"s{g}")
            for k in range(N):
                out[f"v{g}_{k}"] = vals[k]
            out[f"idx{g}"] = Cat(*idxs)
            for j in range(M):
                out[f"d{g}_{j}"] = Mux(kept[g][j], xs[g][j], 0)
        for c, v in zip(self.carry, side):
            out[c.name] = v
        pipe.output(**out)

    def _build_timed(self, m, ports, pipe):
        """:meth:`build` with delays charged and fine cut points (module docstring):
        the elements' keys and the groups' selection built side by side."""
        pl = ports.i.payload
        G, M, N, f = self.groups, self.m, self.n, self.f
        fab = pipe.fab
        xs = tuple(tuple(getattr(pl, f"x{g}_{j}") for j in range(M)) for g in range(G))
        side = tuple(getattr(pl, c.name) for c in self.carry)
        scales, s_ns = None, 0.0
        if self.scaled:
            scales = self._scales(m, pipe, ports, xs, pl.load)
            pipe.gate(~pl.load)
            s_ns = fab.mux(self.rows) if self.rows > 1 else 0.0    # the row's read mux
        with pipe.carry(xs, side) as c:
            with pipe.lanes() as group:
                keys = tuple(tuple(
                    score_key(m, xs[g][j], f, None if scales is None else scales[g * M + j],
                              name=f"k{g}_{j}", pipe=group.lane(f"k{g}_{j}", "k"),
                              s_ns=s_ns)
                    for j in range(M)) for g in range(G))
        xs, side = c.values
        # the keys registered before the comparators (a fine point when unscaled)
        keys, xs, side = pipe.cut("key" if self.scaled else "k.out", keys, xs, side)
        if self.selection == "sortnet":
            with pipe.carry(xs, side) as c:
                with pipe.lanes() as group:
                    kept = tuple(tuple(sortnet_kept(m, keys[g], N, name=f"q{g}",
                                                    pipe=group.lane(f"q{g}", "q")))
                                 for g in range(G))
            xs, side = c.values
        else:
            KW = len(Value.cast(keys[0][0]))
            ges = [compare_matrix(m, keys[g], name=f"c{g}") for g in range(G)]
            pipe.charge(fab.carry(KW))                  # one comparator level
            pairs = [(i, j) for i in range(M) for j in range(i + 1, M)]
            ge_t = tuple(tuple(ge[p] for p in pairs) for ge in ges)
            ge_t, xs, side = pipe.cut("cmp", ge_t, xs, side)
            ges = [dict(zip(pairs, t)) for t in ge_t]
            with pipe.carry(xs, side) as c:
                with pipe.lanes() as group:
                    kept = tuple(tuple(kept_bits_timed(m, ges[g], M, N, name=f"r{g}",
                                                       pipe=group.lane(f"r{g}", "r")))
                                 for g in range(G))
            xs, side = c.values
        kept, xs, side = pipe.cut("rank", kept, xs, side)
        out = {}
        with pipe.carry(side) as c:
            with pipe.lanes() as group:
                for g in range(G):
                    vals, idxs, kept_g, xs_g = compact_timed(
                        m, list(kept[g]), list(xs[g]), N, name=f"s{g}",
                        pipe=group.lane(f"s{g}", "s"))
                    for k in range(N):
                        out[f"v{g}_{k}"] = vals[k]
                    out[f"idx{g}"] = Cat(*idxs)
                    for j in range(M):
                        out[f"d{g}_{j}"] = Mux(kept_g[j], xs_g[j], 0)
        (side,) = c.values
        for cf, v in zip(self.carry, side):
            out[cf.name] = v
        pipe.output(**out)


# -- NMDot ------------------------------------------------------------------------------

@contextlib.contextmanager
def _renamed(inner, outer):
    """An unreachable-clock sentence of a core built inside another names the outer
    one ("for this dot on" -> "for this nmdot's dot engine on")."""
    try:
        yield
    except FmaxError as e:
        msg = str(e).replace(f"for this {inner} on", f"for this {outer} on")
        if msg == str(e):
            raise
        raise e.reworded(msg) from None


def gather(m, idx, dense, n, name="g"):
    """Per slot k, the dense value its index names: ``dense[idx_k]``.

    Valid indices are strictly ascending and below m, so slot k's index lies in
    ``k .. k + m - n`` (k slots below it, n - k - 1 above): each slot is an AND-OR
    mux of ``m - n + 1`` inputs, not ``m``. Returns (values, bad): ``bad`` is set when
    the indices are not strictly ascending or not below m (then the values are
    undefined).
    """
    M = len(dense)
    ib = index_bits(M)
    idx = Value.cast(idx)
    ix = [idx[k * ib:(k + 1) * ib] for k in range(n)]
    width = len(Value.cast(dense[0]))
    out = []
    for k in range(n):
        sel = Const(0, width)
        for j in range(k, k + M - n + 1):
            sel = sel | Mux(ix[k] == j, dense[j], 0)
        v = Signal(width, name=f"{name}_b{k}")
        m.d.comb += v.eq(sel)
        out.append(v)
    bad = Const(0, 1)
    for k in range(n):
        if (1 << ib) > M:
            bad = bad | (ix[k] >= M)
        if k:
            bad = bad | (ix[k] <= ix[k - 1])
    b = Signal(name=f"{name}_bad")
    m.d.comb += b.eq(bad)
    return out, b


class NMDot(StreamCore):
    """Dot products of an N:M-compressed operand ``a`` with a dense operand ``b``.

    Each beat carries ``groups`` groups: per group the ``n`` kept values
    ``a{g}_{k}`` (ascending index order), their indices ``idx{g}`` (packed as
    NMPrune emits them: ``ceil(log2 m)`` bits each, slot 0 in the low bits) and all
    ``m`` dense values ``b{g}_{j}``; plus ``last`` (and ``c`` with ``addend``), as
    :class:`~lpcores.hdl.dot.Dot`.

    Datapath: per group, ``n`` index-steered muxes (:func:`gather`) pick the dense
    values the indices name; the ``groups * n`` pairs feed an unchanged
    :class:`~lpcores.hdl.dot.Dot` with ``lanes = groups * n``, so there are exactly
    ``n`` multipliers per group. The result is bit-identical to ``Dot`` on the
    *masked dense operand* (``a`` scattered to its indices, +0 elsewhere; golden
    :func:`lpcores.golden.nm_dot`): a dropped position is the term ``+0 * b_j``,
    which adds no value, but is NaN when ``b_j`` is Inf or NaN and is +0 (so an
    all-zero sum is +0, not -0) when ``b_j`` is positive. Those two effects are
    steered into lane ``(g, 0)`` of the group (:meth:`_dropped_terms`: a few gates
    per dense element, no multiplier). Same formats, accumulation modes, rounding,
    ``overflow`` and pipelining as ``Dot``; ``max_terms`` counts kept products
    (``groups * n`` a beat: ``Dot`` with ``lanes = groups * m`` and
    ``max_terms * m / n``).

    ``bad_index`` in the result is set when any beat of the dot product had a group
    whose indices were not strictly ascending or not below ``m``; ``r`` is then
    undefined (the bad group's products are not meaningful), never silently right.
    It rides a delay line that advances with Dot's stall-all pipeline (every register
    of a core advances on ``i.ready``: hdl/base.py), so it stays with its result.

    Clock-directed (``fmax``): Dot places its registers for the clock, and the
    gather (the index-steered muxes and the dropped terms' flags) gets a register
    row of its own in front of it (cut point ``gather``, latency one more), or two
    when one stage cannot hold it (``gather.2``: the muxes and the flags, then lane
    0's fix-up on the registered values; :meth:`gather_ns`).

    Parameters
    ----------
    n, m : int
        1 <= n < m <= 16.
    a_fmt, b_fmt, out_fmt, accumulate, max_terms, addend, rounding, stages, fmax, family
        As :class:`~lpcores.hdl.dot.Dot` (``a`` is the compressed operand).
    groups : int
        Groups per beat; ``groups * n`` <= 64 (Dot's lane limit).
    check : bool
        Build the index check (``bad_index``); SparseLinear, whose indices come
        from NMPrune, leaves it out.

    Latency ``stages + 1`` from the beat carrying ``last`` (``fmax``: Dot's latency
    plus the gather's one or two rows); one beat a cycle.
    """

    def __init__(self, *, n, m, a_fmt, b_fmt, out_fmt=None, groups=1, accumulate=None,
                 max_terms=1024, addend=False, rounding="rne", stages=None, fmax=None,
                 family=None, check=True):
        from .dot import Dot
        check_nm(n, m)
        check_int("groups", groups, lo=1, hi=64)
        if groups * n > 64:
            raise ParamError(f"groups*n must be at most 64 (Dot's lanes), got "
                             f"groups={groups}, n={n}")
        self.check = _check_bool("check", check)
        self._dot_kw = dict(a_fmt=a_fmt, b_fmt=b_fmt, out_fmt=out_fmt, lanes=groups * n,
                            accumulate=accumulate, max_terms=max_terms, addend=addend,
                            rounding=rounding)
        with _renamed("dot", "nmdot's dot engine"):
            self.dot = Dot(**self._dot_kw, stages=stages, fmax=fmax, family=family)
        self.dot._MustUse__used = True          # elaborated by hand in elaborate()
        self.n, self.m, self.groups = n, m, groups
        d = self.dot
        dp = d.params
        self.timed = fmax is not None
        self.family = d.family
        # the gather's register rows (fmax): one, or two when one stage cannot hold
        # the muxes and the dropped terms' lane-0 fix-up (gather_ns)
        self.gather_rows = 0
        if self.timed:
            self.gather_rows = 1 if self.gather_ns(1)[0] <= 1000.0 / fmax else 2
        self.stages = d.stages + self.gather_rows
        self.params = {"n": n, "m": m, "a_fmt": dp["a_fmt"], "b_fmt": dp["b_fmt"],
                       "out_fmt": dp["out_fmt"], "groups": groups,
                       "accumulate": dp["accumulate"], "max_terms": max_terms,
                       "addend": addend, "rounding": rounding, "stages": self.stages,
                       "check": check}
        if self.timed:
            self.params.update(fmax=fmax, family=d.family)
        self.module_name = (f"nmdot_{n}of{m}_{dp['a_fmt']}_{dp['b_fmt']}_{dp['out_fmt']}"
                            f"_g{groups}_{dp['accumulate']}_t{max_terms}"
                            f"{'_c' if addend else ''}{'_rtz' if rounding == 'rtz' else ''}"
                            f"{'' if check else '_nc'}"
                            f"{timing_suffix(self.stages, fmax, d.family)}")
        self.timing = self._plan(fmax) if self.timed else None
        fa, fb = d.fa, d.fb
        self.index_bits = index_bits(m)
        G, N, M = groups, n, m
        byname = {f.name: f for f in d.in_fields}
        self.in_fields = ([Field(f"a{g}_{k}", fa.bits, fa.name)
                           for g in range(G) for k in range(N)]
                          + [Field(f"idx{g}", N * self.index_bits) for g in range(G)]
                          + [Field(f"b{g}_{j}", fb.bits, fb.name)
                             for g in range(G) for j in range(M)]
                          + ([byname["c"]] if addend else []) + [byname["last"]])
        self.out_fields = list(d.out_fields) + ([Field("bad_index", 1)] if check else [])
        self.latency = d.latency + self.gather_rows
        self.beats_per_result = d.beats_per_result
        self.acc_width, self.acc_lsb = d.acc_width, d.acc_lsb
        super().__init__()

    def gather_ns(self, rows):
        """The delay model's estimate of the gather's stages (``fmax``) with ``rows``
        register rows: the index compares and the AND-OR muxes (``sel``); beside them
        the dropped terms' flags (index compares, an OR over the slots, an OR over the
        group: ``flags``); then lane 0's fix-up, which tests the gathered value for
        zero and muxes (``fix``). One row holds ``sel`` then ``fix``, and ``flags``
        then the muxes; two rows put ``sel`` and ``flags`` in the first, ``fix`` on
        the registered values in the second. A list of stage delays."""
        fab = fabric(self.family)
        N, M = self.n, self.m
        ib = index_bits(M)
        sel = fab.reduce(ib) + fab.reduce(2 * (M - N + 1))
        if self.dot.is_int:                 # no dropped terms: the muxes only
            return [round(fab.reg + sel, 2)] * rows
        flags = fab.reduce(ib) + fab.reduce(N) + fab.reduce(M + 1)
        fix = fab.reduce(self.dot.fb.bits - 1) + fab.luts(2)
        if rows == 1:
            return [round(fab.reg + max(sel + fix, flags + fab.luts(2)), 2)]
        return [round(fab.reg + max(sel, flags), 2), round(fab.reg + fix, 2)]

    def _plan(self, fmax):
        t = self.dot.timing
        g = self.gather_ns(self.gather_rows)
        if max(g) > 1000.0 / fmax:
            from .dot import Dot
            best = math.floor(10000.0 / max(g)) / 10     # the gather stages' clock
            with _renamed("dot", "nmdot's dot engine"):
                d = Dot(**self._dot_kw, fmax=best, family=self.family)
            d._MustUse__silence = True
            raise FmaxError(
                f"fmax={fmax:g} MHz is beyond what the delay model reaches for this "
                f"nmdot on {self.family}: the fastest is about {best:.0f} MHz (its "
                f"gather stages), with {d.stages + len(g)} stages", fastest_mhz=best,
                stages=d.stages + len(g))
        cuts = ["gather", "gather.2"][:len(g)]
        return dict(t, cuts=cuts + list(t["cuts"]), stage_ns=g + list(t["stage_ns"]),
                    estimate_mhz=round(1000.0 / max(g + list(t["stage_ns"])), 1))

    def sidecar(self):
        s = super().sidecar()
        s["accumulator"] = self.dot.sidecar()["accumulator"]
        s["multipliers"] = self.groups * self.n
        return s

    def elaborate(self, platform):
        d = self.dot
        # Dot's own module, extended in place (no submodule boundary: the flattened
        # netlist is Dot's plus the muxes, and lints as cleanly)
        m = d.elaborate(platform)
        G, N, M = self.groups, self.n, self.m
        fa, fb = d.fa, d.fb
        pl, dl = self.i.payload, d.i.payload
        bad_beat = Const(0, 1)
        feed = []                               # (Dot's input, its value)
        fixes = []                              # lane 0's fix-up, after row 1 (rows 2)
        for g in range(G):
            dense = [getattr(pl, f"b{g}_{j}") for j in range(M)]
            idx = getattr(pl, f"idx{g}")
            sel, bad = gather(m, idx, dense, N, name=f"g{g}")
            bad_beat = bad_beat | bad
            a = [Value.cast(getattr(pl, f"a{g}_{k}")) for k in range(N)]
            b = list(sel)
            if not d.is_int:
                fn, fpos = self._dropped_flags(m, g, idx, dense)
                if self.gather_rows == 2:
                    fixes.append((g, fn, fpos))
                else:
                    a[0], b[0] = self._dropped_fix(m, g, a[0], b[0], fn, fpos)
            for k in range(N):
                pair = [(getattr(dl, f"a{g * N + k}"), a[k]),
                        (getattr(dl, f"b{g * N + k}"), b[k])]
                if self.timed:
                    feed += pair
                else:
                    m.d.comb += [dst.eq(src) for dst, src in pair]
        if d.addend:
            feed.append((dl.c, pl.c))
            if not self.timed:
                m.d.comb += dl.c.eq(pl.c)
                feed = []
        feed.append((dl.last, pl.last))
        valid = self.i.valid
        if self.timed:
            # the gather's register rows, advancing with Dot's stall-all pipeline
            # (d.i.ready is its `advance`, low in reset; the valid bit resets)
            def row(values, name):
                regs = []
                for k, v in enumerate(values):
                    r = Signal(len(Value.cast(v)), name=f"{name}_{k}", reset_less=True)
                    with m.If(d.i.ready):
                        m.d.sync += r.eq(v)
                    regs.append(r)
                return regs
            if self.gather_rows == 2:
                # row 1: the gathered pairs and the dropped terms' flags; lane 0's
                # fix-up on the registered values, then row 2
                flat = [src for _, src in feed] + [f for _, fn, fp in fixes
                                                   for f in (fn, fp)]
                r1 = row(flat, "gather")
                srcs, flags = r1[:len(feed)], r1[len(feed):]
                for i, (g, _, _) in enumerate(fixes):
                    ka, kb = 2 * g * N, 2 * g * N + 1      # lane (g, 0)'s a and b
                    srcs[ka], srcs[kb] = self._dropped_fix(
                        m, g, srcs[ka], srcs[kb], flags[2 * i], flags[2 * i + 1])
                feed = [(dst, src) for (dst, _), src in zip(feed, srcs)]
                v1 = Signal(name="gather_valid")
                with m.If(d.i.ready):
                    m.d.sync += v1.eq(self.i.valid)
                valid = v1
            feed = list(zip([dst for dst, _ in feed],
                            row([src for _, src in feed],
                                "gather" if self.gather_rows == 1 else "gather_2")))
            v = Signal(name="gather_valid" if self.gather_rows == 1 else "gather_2_valid")
            with m.If(d.i.ready):
                m.d.sync += v.eq(valid)
            valid = v
        m.d.comb += [dst.eq(src) for dst, src in feed]
        m.d.comb += [d.i.valid.eq(valid),
                     self.i.ready.eq(d.i.ready),
                     self.o.valid.eq(d.o.valid), d.o.ready.eq(self.o.ready),
                     self.o.payload.r.eq(d.o.payload.r),
                     self.o.payload.overflow.eq(d.o.payload.overflow)]
        if self.check:
            # sticky over the dot product, then delayed as Dot delays its result:
            # d.i.ready is Dot's `advance`, on which all its registers move.
            first = Signal(init=1, name="bad_first")
            acc = Signal(name="bad_acc")
            tot = Signal(name="bad_tot")
            m.d.comb += tot.eq(Mux(first, 0, acc) | bad_beat)
            with m.If(d.i.ready & self.i.valid):
                m.d.sync += [first.eq(pl.last), acc.eq(tot)]
            line = tot
            for s in range(self.latency):
                r = Signal(name=f"bad_d{s}")
                with m.If(d.i.ready):
                    m.d.sync += r.eq(line)
                line = r
            m.d.comb += self.o.payload.bad_index.eq(line)
        return m

    def _dropped_flags(self, m, g, idx, dense):
        """What the dropped positions of the masked dense operand contribute to
        Dot's special-value flags, as two flags for lane (g, 0) (:meth:`_dropped_fix`
        applies them), so the result is Dot's on the masked operand bit for bit. A
        dropped position is the term ``+0 * b_j``: its value is 0, but it is NaN when
        b_j is Inf or NaN, and it is +0 (which makes an all-zero sum +0, not -0) when
        b_j is finite with sign 0. So
        * some dropped b_j non-finite (``force_nan``): lane b := NaN (the sum is NaN
          either way);
        * some dropped b_j finite and positive (``force_pos``), and lane (g, 0)'s
          product is a zero: give a the sign of b, making that product +0 (its value
          stays 0). When the lane's product is not zero the sum is no all-(-0) sum
          anyway."""
        fb = self.dot.fb
        N, M = self.n, self.m
        ib = self.index_bits
        idx = Value.cast(idx)
        ix = [idx[k * ib:(k + 1) * ib] for k in range(N)]
        force_nan = Const(0, 1)
        force_pos = Const(0, 1)
        for j in range(M):
            kept = Cat(*[ix[k] == j for k in range(N) if k <= j <= k + M - N]).any()
            bj = Value.cast(dense[j])
            ub = unpack(m, bj, fb, name=f"g{g}_d{j}")
            nonfinite = ub.is_nan | ub.is_inf
            force_nan = force_nan | (~kept & nonfinite)
            force_pos = force_pos | (~kept & ~nonfinite & ~bj[fb.bits - 1])
        fn = Signal(name=f"g{g}_force_nan")
        fp_ = Signal(name=f"g{g}_force_pos")
        m.d.comb += [fn.eq(force_nan), fp_.eq(force_pos)]
        return fn, fp_

    def _dropped_fix(self, m, g, a0, b0, fn, fp_):
        """Lane (g, 0)'s ``(a, b)`` with the flags of :meth:`_dropped_flags` applied."""
        fa, fb = self.dot.fa, self.dot.fb
        a0 = Value.cast(a0)
        b_out = b0
        if fb.has_nan:
            b_out = Signal(fb.bits, name=f"g{g}_b0")
            m.d.comb += b_out.eq(Mux(fn, fb.nan_code, b0))
        zero = lambda v, f: v[:f.bits - 1] == 0
        a_out = Signal(fa.bits, name=f"g{g}_a0")
        flip = fp_ & (zero(a0, fa) | zero(Value.cast(b0), fb))
        m.d.comb += a_out.eq(Mux(flip, Cat(a0[:fa.bits - 1], Value.cast(b0)[fb.bits - 1]),
                                 a0))
        return a_out, b_out


# -- SparseLinear -----------------------------------------------------------------------

class SparseLinear(StreamCore):
    """The activation-sparse linear path (Amber-Pruner-style prefill): activations
    ``x`` pruned online to N:M by :class:`NMPrune`, the kept ones multiplied with
    the dense weights ``w`` by :class:`NMDot`; one dot product per ``last``.

    The two cores are chained stream to stream: NMPrune carries ``w``, ``c`` and
    ``last`` beside its beat (``carry``), NMDot (without its index check: NMPrune's
    indices are valid by construction) takes the kept values, the indices and ``w``.
    Golden model: :func:`lpcores.golden.sparse_linear`.

    Parameters
    ----------
    n, m, groups : int
        N:M ratio and groups per beat (``groups * n`` <= 64).
    x_fmt : str
        Activation format: ``bf16``, ``fp16``, ``e4m3``, ``e5m2`` or ``int8``.
    w_fmt : str
        Weight format (int8 with int8: the W8A8 path, result int32).
    out_fmt, accumulate, max_terms, addend, rounding
        As :class:`~lpcores.hdl.dot.Dot`; ``max_terms`` counts kept products.
    scaled, channels
        Score |x|·s_c with run-time loaded per-channel scales (as NMPrune; a beat
        with ``load=1`` loads a table row and produces nothing).
    prune_stages, stages
        Pipeline registers of the pruner and of the dot engine (besides each one's
        output register).
    fmax, family
        Instead of ``prune_stages`` and ``stages``: the clock (MHz) both meet on
        ``family`` (:class:`NMPrune` and :class:`NMDot` each place their registers).

    Payload in: ``x{g}_{j}``, ``w{g}_{j}`` (and ``load``, ``c``), ``last``; out:
    ``r``, ``overflow``. Latency ``prune_stages + stages + 2`` (``fmax``: the
    pruner's latency plus NMDot's); one beat a cycle.
    """

    def __init__(self, *, n, m, x_fmt, w_fmt, out_fmt=None, groups=1, accumulate=None,
                 max_terms=1024, addend=False, rounding="rne", scaled=False,
                 channels=None, prune_stages=None, stages=None, fmax=None, family=None):
        if fmax is not None and prune_stages is not None:
            raise ParamError(f"fmax={fmax!r} and prune_stages={prune_stages!r} are "
                             f"alternatives (a clock to meet, or a register count): "
                             f"give one")
        with _renamed("nmdot's dot engine", "sparselinear's dot engine"), \
                _renamed("nmdot", "sparselinear"):
            self.nmdot = NMDot(n=n, m=m, a_fmt=x_fmt, b_fmt=w_fmt, out_fmt=out_fmt,
                               groups=groups, accumulate=accumulate, max_terms=max_terms,
                               addend=addend, rounding=rounding, stages=stages, fmax=fmax,
                               family=family, check=False)
        self.nmdot._MustUse__used = True        # elaborated by hand in elaborate()
        d = self.nmdot
        G, N, M = groups, n, m
        fw = d.dot.fb
        wf = [Field(f"w{g}_{j}", fw.bits, fw.name) for g in range(G) for j in range(M)]
        byname = {f.name: f for f in d.in_fields}
        tail = ([byname["c"]] if addend else []) + [byname["last"]]
        with _renamed("nmprune", "sparselinear's pruner"):
            self.prune = NMPrune(n=n, m=m, fmt=x_fmt, groups=groups, scaled=scaled,
                                 channels=channels, stages=prune_stages, fmax=fmax,
                                 family=family, carry=tuple(wf + tail))
        p = self.prune
        p._MustUse__used = True                 # built into this core's module
        self.n, self.m, self.groups, self.scaled = n, m, groups, scaled
        self.params = {"n": n, "m": m, "x_fmt": p.f.name, "w_fmt": fw.name,
                       "out_fmt": d.params["out_fmt"], "groups": groups,
                       "accumulate": d.params["accumulate"], "max_terms": max_terms,
                       "addend": addend, "rounding": rounding, "scaled": scaled,
                       "channels": p.channels, "prune_stages": p.stages,
                       "stages": d.stages}
        dp = self.params
        self.timing = None
        if fmax is not None:
            dp.update(fmax=fmax, family=d.family)
            pt, dt = p.timing, d.timing
            self.timing = dict(dt, cuts=[f"prune:{c}" for c in pt["cuts"]] + ["prune:out"]
                               + [f"dot:{c}" for c in dt["cuts"]],
                               stage_ns=list(pt["stage_ns"]) + list(dt["stage_ns"]),
                               estimate_mhz=min(pt["estimate_mhz"], dt["estimate_mhz"]))
        self.module_name = (f"sparselinear_{n}of{m}_{dp['x_fmt']}_{dp['w_fmt']}_"
                            f"{dp['out_fmt']}_g{groups}_{dp['accumulate']}_t{max_terms}"
                            f"{f'_sc{p.channels}' if scaled else ''}"
                            f"{'_c' if addend else ''}{'_rtz' if rounding == 'rtz' else ''}"
                            + (f"_p{p.stages}_s{d.stages}" if fmax is None else
                               timing_suffix(None, fmax, d.family)))
        self.in_fields = ([f for f in p.in_fields if f.name.startswith("x")] + wf
                          + ([Field("load", 1)] if scaled else []) + tail)
        self.out_fields = list(d.out_fields)
        self.latency = p.latency + d.latency
        self.stages = self.latency - 1              # registers besides the output's
        self.latency_formula = "prune_stages + 1 + stages + 1"
        self.beats_per_result = "variable: one result per beat with last=1 (load beats: none)"
        super().__init__()

    def sidecar(self):
        s = super().sidecar()
        s["accumulator"] = self.nmdot.sidecar()["accumulator"]
        s["multipliers"] = self.groups * self.n
        ps = self.prune.sidecar()
        s["selection"] = ps["selection"]
        if self.scaled:
            s["scales"] = ps["scales"]
        return s

    def elaborate(self, platform):
        p, d = self.prune, self.nmdot
        # one flat module: NMDot's (Dot's, extended), then the pruner built into it
        # between two stream interfaces of its signature. (Submodules would work
        # too, but Yosys then leaves undriven sign-extension bits that -Wall flags.)
        m = d.elaborate(platform)
        ports = SimpleNamespace(i=p.signature.members["i"].signature.create(),
                                o=p.signature.members["o"].signature.flip().create())
        p.build(m, ports)
        p = ports
        G, N, M = self.groups, self.n, self.m
        pi, po, di = p.i.payload, p.o.payload, d.i.payload
        pl = self.i.payload
        m.d.comb += [getattr(pi, f.name).eq(getattr(pl, f.name)) for f in self.in_fields]
        for g in range(G):
            m.d.comb += [getattr(di, f"a{g}_{k}").eq(getattr(po, f"v{g}_{k}"))
                         for k in range(N)]
            m.d.comb += [getattr(di, f"b{g}_{j}").eq(getattr(po, f"w{g}_{j}"))
                         for j in range(M)]
            m.d.comb += getattr(di, f"idx{g}").eq(getattr(po, f"idx{g}"))
        for f in d.in_fields:
            if f.name in ("c", "last"):
                m.d.comb += getattr(di, f.name).eq(getattr(po, f.name))
        m.d.comb += [p.i.valid.eq(self.i.valid), self.i.ready.eq(p.i.ready),
                     d.i.valid.eq(p.o.valid), p.o.ready.eq(d.i.ready),
                     self.o.valid.eq(d.o.valid), d.o.ready.eq(self.o.ready),
                     self.o.payload.eq(d.o.payload)]
        return m
