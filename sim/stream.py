"""The one stream driver / monitor / scoreboard of every lpcores testbench.

Runs inside cocotb. A testbench builds a :class:`TB` from the config the runner
passes (sidecar, seed, options), packs its input vectors with the sidecar's field
offsets, and calls :meth:`TB.check` with the expected output beats from a golden
model. :meth:`TB.stream` drives ``i`` with random valid gaps, pulls ``o`` with random
``ready`` backpressure, can assert ``rst`` in mid-stream, and returns what came out.

Timing discipline (works the same on Verilator and Icarus): write inputs right after
the rising edge, then wait for ``ReadOnly`` and sample the handshake that the *next*
edge will complete. Nothing is written in the ReadOnly phase.
"""

import json
import os
import random
import zlib
from dataclasses import dataclass, field

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


def load_config():
    with open(os.environ["LPCORES_TB_CONFIG"]) as f:
        return json.load(f)


# -- payload packing ------------------------------------------------------------------

def pack(fields, **values):
    """Pack named field arrays (numpy ints or lists of Python ints) into beat ints
    using the sidecar field list (first field in the LSBs)."""
    n = None
    cols = []
    for f in fields:
        v = values[f["name"]]
        col = [int(x) & ((1 << f["width"]) - 1) for x in np.asarray(v, dtype=object).ravel()]
        n = len(col) if n is None else n
        if len(col) != n:
            raise ValueError(f"field {f['name']} has {len(col)} values, expected {n}")
        cols.append((f["offset"], col))
    return [sum(col[k] << off for off, col in cols) for k in range(n)]


def unpack(fields, beats):
    """Split beat ints into {field name: list of ints}."""
    out = {}
    for f in fields:
        mask = (1 << f["width"]) - 1
        out[f["name"]] = [(b >> f["offset"]) & mask for b in beats]
    return out


@dataclass
class Segment:
    """What happened between two resets: the input beats accepted (indices into
    the beat list) and the output beats emitted."""
    accepted: list = field(default_factory=list)
    outputs: list = field(default_factory=list)


@dataclass
class Trace:
    outputs: list = field(default_factory=list)      # every output beat (ints)
    accept_cycle: list = field(default_factory=list)
    output_cycle: list = field(default_factory=list)
    segments: list = field(default_factory=lambda: [Segment()])


def groups_of(accepted, ends, contexts=1):
    """Split accepted beat indices into results, in the order they complete: each
    group ends with a beat whose ``ends`` flag is set; a trailing group without its
    end is dropped. With ``contexts`` k (SPEC §4.2) the j-th accepted beat belongs to
    context ``j mod k`` and each context groups its own beats."""
    groups, cur = [], [[] for _ in range(contexts)]
    for j, k in enumerate(accepted):
        c = cur[j % contexts]
        c.append(k)
        if ends[k]:
            groups.append(c)
            cur[j % contexts] = []
    return groups


def interleave(lengths, contexts):
    """A beat order that interleaves dot products of ``lengths`` beats (given back to
    back) over ``contexts`` contexts, beat by beat: each dot product goes whole to
    the context with the fewest beats so far; every context is cut to the shortest
    one's beat count, its final beat closing its last (maybe shortened) dot product.
    Returns ``(order, last)``: indices into the back-to-back beats, and the last
    flags of the interleaved stream."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    queues = [[] for _ in range(contexts)]
    ends = [[] for _ in range(contexts)]
    for s, ln in zip(starts, lengths):
        c = min(range(contexts), key=lambda j: len(queues[j]))
        queues[c].extend(range(s, s + ln))
        ends[c].extend([0] * (ln - 1) + [1])
    n = min(len(q) for q in queues)
    order, last = [], []
    for t in range(n):
        for c in range(contexts):
            order.append(queues[c][t])
            last.append(1 if t == n - 1 else ends[c][t])
    return np.array(order, dtype=int), np.array(last, dtype=np.int64)


class TB:
    """Clock, reset and the stream loop for one DUT."""

    def __init__(self, dut, config=None):
        self.dut = dut
        self.cfg = config or load_config()
        self.sidecar = self.cfg["sidecar"]
        self.seed = int(self.cfg["seed"])
        self.options = self.cfg.get("options", {})
        self.fi = self.sidecar["ports"]["i"]["fields"]
        self.fo = self.sidecar["ports"]["o"]["fields"]
        self.unit = self.sidecar["module"]
        self.contexts = int(self.sidecar["params"].get("contexts", 1))
        self.log = dut._log
        self._clock = None

    def rng(self, salt):
        """A seeded Python RNG per test (``salt`` keeps the tests independent)."""
        return random.Random(f"{self.seed}:{salt}")

    def nprng(self, salt):
        return np.random.default_rng([self.seed, zlib.crc32(str(salt).encode())])

    async def start(self, reset_cycles=2):
        if self._clock is None:
            self._clock = Clock(self.dut.clk, 10, unit="ns")
            self._clock.start(start_high=False)
        # a beat is offered (and the output pulled) all through the reset: SPEC §3
        # says it must not be acknowledged
        self.dut.i__valid.value = 1
        self.dut.o__ready.value = 1
        self.dut.i__payload.value = 0
        self.dut.rst.value = 1
        for k in range(reset_cycles):
            await ReadOnly()
            self.check_reset(k, "power-up reset")
            await RisingEdge(self.dut.clk)
        self.dut.i__valid.value = 0
        self.dut.o__ready.value = 0
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def check_reset(self, k, when):
        """In the ReadOnly phase of the ``k``-th consecutive cycle with ``rst`` high
        (0 = the first) while a beat is offered: ``i__ready`` must be low, and from
        the second cycle on ``o__valid`` too (SPEC §3)."""
        if self.dut.i__ready.value != 0:
            raise AssertionError(
                f"{self.unit}: i__ready is high while rst is high ({when}, seed "
                f"{self.seed}): a beat offered during reset was acknowledged")
        if k > 0 and self.dut.o__valid.value != 0:
            raise AssertionError(
                f"{self.unit}: o__valid is still high after a cycle of reset ({when}, "
                f"seed {self.seed})")

    async def stream(self, beats, *, rng, ends=None, p_valid=1.0, p_ready=1.0,
                     reset_at=(), max_cycles=None):
        """Drive ``beats`` through the DUT and collect every output beat.

        ``ends[k]`` says whether beat ``k`` completes a result (default: every beat
        does). ``reset_at``: cycle numbers (counted from the call) at which ``rst``
        is high; each starts a new :class:`Segment` of the trace. Raises
        AssertionError on a timeout (a stuck stream).
        """
        dut = self.dut
        n = len(beats)
        ends = [True] * n if ends is None else list(ends)
        lat = self.sidecar["latency"] if isinstance(self.sidecar["latency"], int) else 0
        if max_cycles is None:
            slack = 1.0 / max(min(p_valid, p_ready), 0.05)
            max_cycles = int((n + 50) * slack * 4) + 20 * lat + 1000
        tr = Trace()
        resets = set(reset_at)
        idx = 0              # next input beat
        valid = False
        cycle = 0
        pending = 0          # results completed in this segment, not yet emitted
        while idx < n or pending:
            if cycle >= max_cycles:
                raise AssertionError(
                    f"{self.unit}: stream stuck after {cycle} cycles (seed {self.seed}): "
                    f"{idx}/{n} beats accepted, {len(tr.outputs)} results emitted")
            in_reset = cycle in resets
            if in_reset:
                dut.rst.value = 1
                valid = False
                # offer the next beat anyway: it must not be acknowledged
                offered = idx < n
                dut.i__valid.value = int(offered)
                if offered:
                    dut.i__payload.value = beats[idx]
            else:
                dut.rst.value = 0
                if not valid and idx < n:
                    valid = rng.random() < p_valid
                dut.i__valid.value = int(valid)
                if valid:
                    dut.i__payload.value = beats[idx]
            ready = (not in_reset) and rng.random() < p_ready
            dut.o__ready.value = int(ready)
            await ReadOnly()
            seg = tr.segments[-1]
            if in_reset:
                if offered:
                    self.check_reset(int(cycle - 1 in resets), f"cycle {cycle}")
                if seg.accepted or seg.outputs:
                    tr.segments.append(Segment())
                pending = 0
            else:
                if valid and dut.i__ready.value == 1:
                    tr.accept_cycle.append(cycle)
                    seg.accepted.append(idx)
                    pending += int(ends[idx])
                    idx += 1
                    valid = False
                if ready and dut.o__valid.value == 1:
                    beat = dut.o__payload.value.to_unsigned()
                    tr.outputs.append(beat)
                    seg.outputs.append(beat)
                    tr.output_cycle.append(cycle)
                    pending -= 1
                    if pending < 0:
                        raise AssertionError(
                            f"{self.unit}: an output beat appeared with no result due "
                            f"(seed {self.seed}, cycle {cycle})")
            await RisingEdge(dut.clk)
            cycle += 1
        dut.i__valid.value = 0
        dut.rst.value = 0
        return tr

    # -- scoreboard ---------------------------------------------------------------

    def compare(self, got, expected, inputs, *, what, describe=None, limit=8):
        """Compare output beats with expected beats (ints, or ``(value, mask)`` when
        only some bits are defined); on mismatch raise an
        AssertionError naming the unit, parameters, seed, inputs and both outputs.

        ``inputs`` are the input beats in the same order; ``describe(beat_in,
        beat_out)`` may add a decoded rendering.
        """
        if len(got) != len(expected):
            raise AssertionError(
                f"{self.unit} [{what}] seed {self.seed}: {len(got)} output beats, "
                f"expected {len(expected)} (params {self.sidecar['params']})")
        # an expected beat may be (value, mask): only the mask's bits are defined
        def want(k):
            e = expected[k]
            return e if isinstance(e, tuple) else (e, -1)
        bad = [k for k in range(len(got))
               if (got[k] & want(k)[1]) != (want(k)[0] & want(k)[1])]
        if not bad:
            return
        expected = [want(k)[0] for k in range(len(expected))]
        wo = self.sidecar["ports"]["o"]["width"]
        wi = self.sidecar["ports"]["i"]["width"]
        lines = [f"{self.unit} [{what}]: {len(bad)} of {len(got)} beats mismatch; "
                 f"params {self.sidecar['params']}, seed {self.seed}"]
        for k in bad[:limit]:
            line = (f"  | beat {k}: in=0x{inputs[k]:0{(wi + 3) // 4}x} "
                    f"expected=0x{expected[k]:0{(wo + 3) // 4}x} got=0x{got[k]:0{(wo + 3) // 4}x}")
            if describe:
                line += "  " + describe(inputs[k], expected[k], got[k])
            lines.append(line)
        raise AssertionError("\n".join(lines))

    async def check(self, beats, expected, *, what, rng, ends=None, p_valid=1.0,
                    p_ready=1.0, reset_at=(), describe=None):
        """Stream ``beats`` and compare what comes out with the golden results.

        ``expected`` is either a list with one output beat per input beat, or a
        callable ``expected(groups) -> list`` mapping groups of accepted beat
        indices (see :func:`groups_of`) to their output beats. Each segment between
        resets is checked on its own: results whose last beat was accepted before a
        reset may be flushed (only the tail of a segment), everything emitted must be
        exact, and after the last reset nothing may be missing.
        """
        n = len(beats)
        ends = [True] * n if ends is None else list(ends)
        tr = await self.stream(beats, rng=rng, ends=ends, p_valid=p_valid,
                               p_ready=p_ready, reset_at=reset_at)
        checked = flushed = 0
        for si, seg in enumerate(tr.segments):
            groups = groups_of(seg.accepted, ends, self.contexts)
            if callable(expected):
                exp = list(expected(groups)) if groups else []
            else:
                exp = [expected[g[-1]] for g in groups]
            got = seg.outputs
            last = si == len(tr.segments) - 1
            if len(got) > len(exp) or (last and len(got) != len(exp)):
                raise AssertionError(
                    f"{self.unit} [{what}] seed {self.seed}: segment {si} emitted "
                    f"{len(got)} results, expected {len(exp)} "
                    f"(params {self.sidecar['params']})")
            self.compare(got, exp[:len(got)], [beats[g[-1]] for g in groups[:len(got)]],
                         what=f"{what}, segment {si}", describe=describe)
            checked += len(got)
            flushed += len(exp) - len(got)
        self.log.info(f"{what}: {checked} results checked ({flushed} flushed by reset)")
        return tr

    async def check_timing(self, beats, expected, *, ends=None,
                           what="latency/throughput", pause_after_end=0):
        """At full throughput (valid and ready always high) every beat must be
        accepted on consecutive cycles (after a beat that ends a result, exactly
        ``pause_after_end`` cycles later: MXDot's partials pads), and each result must
        appear exactly ``latency`` cycles after the beat that completes it."""
        lat = self.sidecar["latency"]
        n = len(beats)
        ends = [True] * n if ends is None else list(ends)
        tr = await self.check(beats, expected, ends=ends, what=what, rng=self.rng(what))
        want = [tr.accept_cycle[0]]
        for j in range(n - 1):
            want.append(want[-1] + 1 + (pause_after_end if ends[j] else 0))
        assert tr.accept_cycle == want, (
            f"{self.unit}: input not accepted every cycle at full throughput"
            + (f" (with {pause_after_end} cycles after each last beat)"
               if pause_after_end else ""))
        end_cycles = [c for c, k in zip(tr.accept_cycle, range(n)) if ends[k]]
        delays = sorted({o - e for o, e in zip(tr.output_cycle, end_cycles)})
        assert delays == [lat], (f"{self.unit}: results came {delays} cycles after "
                                 f"their last beat; the sidecar says latency {lat}")
        return tr


def standard_tests(vectors, expected, describe=None, *, timing_n=300, reset_n=2000):
    """The three cocotb tests every one-result-per-beat core runs.

    ``vectors(tb) -> (fields, what)`` gives a dict of input field arrays (all the
    same length) and a label; ``expected(tb, fields) -> list`` gives the output beats
    from the golden model; ``describe(tb) -> callable(in, exp, got) -> str`` decodes
    a mismatching beat. Assign the returned tests to module-level names.
    """
    def take(fields, n):
        return {k: np.asarray(v)[:n] for k, v in fields.items()}

    def desc(tb):
        return describe(tb) if describe else None

    async def test_timing(dut):
        """Latency equals the sidecar's; one result a cycle at full throughput."""
        tb = TB(dut)
        await tb.start()
        f = take(vectors(tb)[0], timing_n)
        await tb.check_timing(pack(tb.fi, **f), expected(tb, f))

    async def test_vectors(dut):
        """Every vector under random valid gaps and ready backpressure."""
        tb = TB(dut)
        await tb.start()
        f, what = vectors(tb)
        await tb.check(pack(tb.fi, **f), expected(tb, f), what=what,
                       rng=tb.rng("vectors"), p_valid=0.8, p_ready=0.7,
                       describe=desc(tb))

    async def test_reset_midstream(dut):
        """A reset in mid-stream flushes only the beats in flight; the rest is exact."""
        tb = TB(dut)
        await tb.start()
        f = take(vectors(tb)[0], reset_n)
        n = len(next(iter(f.values())))
        tr = await tb.check(pack(tb.fi, **f), expected(tb, f), what="reset",
                            rng=tb.rng("reset"), p_valid=0.7, p_ready=0.6,
                            reset_at=(n // 5, n // 5 + 1, (3 * n) // 4),
                            describe=desc(tb))
        assert len(tr.outputs) > n // 2

    tests = (test_timing, test_vectors, test_reset_midstream)
    for t in tests:
        t.__qualname__ = t.__name__          # cocotb reports tests by qualname
    return tuple(cocotb.test()(t) for t in tests)
