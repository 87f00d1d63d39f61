# amaranth: UnusedElaboratable=no
# (the fmax build tries lane sums of 1, 2, 4, ... partials until one meets the clock:
# the refused ones are never elaborated)
"""``IterNorm`` and ``FisrNorm``: vector normalization without a divider or a square
root (SPEC §4.4), bit-exact to ``golden.iternorm`` / ``golden.fisrnorm``.

Interface. Input beats carry ``lanes`` elements ``x0..x{L-1}`` (``fmt``), with
``--affine`` also ``g0..``, ``b0..`` (gamma and beta of the same channels: streamed
beside x, so a weight change costs nothing and no load port is needed), and a
``last`` flag that ends the vector: ``d = beats * lanes`` (always a multiple of
lanes by construction). Output beats carry ``y0..y{L-1}``, ``last`` on the final
beat of a vector and ``err``: a vector with ``d < 64`` or ``d > max_d`` gives one
beat with ``err = last = 1`` and zero data, and everything after it goes on.

Structure (three units that overlap across vectors):

A. **Accumulate** (one beat a cycle): the beat is written into the vector buffer
   (``amaranth.lib.memory``, two slots of ``max_d/lanes`` words, so vector n+1
   streams in while vector n streams out); each lane squares its element exactly
   (registered), then ``acc <- RNE_FX(y*y + acc)`` (a one-cycle loop). In
   ``layernorm`` the registered term is ``x`` itself (``acc <- RNE_FX(x*1 + acc)``).
B. **Scalar**: the lanes' sums are added by a fixed pairwise tree, one level a cycle
   on ``lanes/2`` adders; then the start (exponent arithmetic, or the fast inverse
   square root's subtraction), and ``K`` updates on *one* FX fused multiply-add, three
   cycles each (``u = a*a``, ``v = 1 - s*u``, ``a = a*(lam*v) + a``), and for
   ``rmsnorm``/``layernorm`` one more, ``c = a*sqrt(d)`` (``RN(sqrt(d))`` from a ROM
   indexed by the beat count).
   ``layernorm`` first runs the tree on the sums of x, ``mean = RNE_FX(sum *
   RN(1/d))`` on the same multiply-add (``RN(1/d)``: a second ROM), or, for a
   constant vector (A compares every element with the first one; the verdict
   travels with the vector like its NaN/Inf flag), ``RNE_FX(x0 + 0) = x0``; then
   a second read of the buffer (its own read port) feeds ``y = RNE_FX(x - mean)``
   and ``y*y`` into A's stage and accumulators, one beat a cycle; then tree,
   start, updates and scale as ``rmsnorm``.
C. **Emit**: reads the buffer and writes ``RNE_fmt(c*y)`` (with affine
   ``RNE_fmt(RNE_FX(c*y)*g + b)``), one beat a cycle under ``o.ready``; in
   ``layernorm`` a registered stage first forms ``y = RNE_FX(x - mean)`` again (the
   third buffer pass).

FX is fp32's significand with a 10-bit exponent (golden/iternorm.py): ``s`` can
neither overflow nor underflow for fp32 or bf16 inputs, so no pre-scaling pass.

**The fmax build** (``fmax=``, every mode, with or without affine): the same
three units built from the project's pipelined stream cores, each planned for the
clock by its own delay model, so no loop is one cycle:

A. each lane's squares accumulate on a :class:`.dot.Dot` (``accumulate="fp"``,
   ``lanes=1``, result format FX) with ``contexts = partials`` (P): beat j of a
   vector goes to the lane's sum ``j mod P``, so the accumulate loop may be P
   cycles deep. After the vector's last beat A feeds P pad beats (``+0``, each
   ``last`` for one sum): they emit the P sums, in the order ``(n + i) mod P``, into
   B's registers ``t[(j)*lanes + k]``. The next vector streams in meanwhile (only its
   sums wait until B is idle: the Dots stall; from ``FREE_LANES`` lanes on the Dots
   never stall and the pads wait instead, their operands registered once here).
   In ``l2`` and ``rmsnorm`` with ``reduce="window"`` (the default from
   ``LANE_TREE`` lanes on) the P rows of lanes' sums go into a
   :class:`.wsum.WindowSum`: added exactly on a window below
   the top the vector's largest element sets (computed here as the beats come in,
   :func:`_window_top`), rounded once: s (golden ``window_sum``). Otherwise
   (``layernorm``, ``reduce="tree"``: the default below ``LANE_TREE`` lanes), from
   ``LANE_TREE`` lanes on, the lanes' P
   sums pass a tree of ``lanes - 1`` pipelined FX adders (:class:`.fma.FAdd`,
   ``log2(lanes)`` levels) on their way out: one partial sum a cycle reaches B, into
   ``t[j]``.
B. a static program on one FX :class:`.fma.FMA`: with the tree, first the
   pairwise tree over the ``P*lanes`` sums (context-major: the lanes of each sum
   first; with A's lanes' tree, over its P results); then the start, ``K`` updates
   (``lam*v`` by lowering v's
   exponent field: exact, a nonzero ``v = RNE(1 - s*u)`` is at least 2**-48; with
   IterNorm's starts the first update's ``u = RNE(a0*a0)``, exact, is written by
   the start), the scale; each op issues as soon as its operands are written (the
   FMA's latency apart when dependent: a result is forwarded from the FMA's output
   into the operand register of an op issued in the cycle it is written), the
   schedule computed here and decoded from a step counter. With ``fuse=True`` (the
   ROM start) the first update is one op on a :class:`.newton.NewtonStep` instead,
   ``RNE(a0 + lam*a0*(1 - s*a0*a0))`` exact and rounded once from s (the table
   inside it), fed from the window sum's output in the cycle that starts the program
   (with the tree, from ``t[0]`` after the tree); the FMA is built only when an op
   needs it. P need not be a power
   of two: an odd level of the tree passes its last value up
   (:func:`.base.pairwise_tree`).
C. the buffer streams through one :class:`.fma.FMul` a lane, ``RNE_fmt(c*x)`` (the
   golden model's ``fx_fma(c, x, -0.0)``, the same for every input: the FMA's
   datapath without the addend's alignment and window add), the beats' flags in a
   FIFO beside them. With affine the multipliers round into FX and an
   :class:`.fma.FMA` a lane after them forms ``RNE_fmt(z*g + b)`` (gamma and beta
   stored beside x in the buffer, waiting beside the multipliers in a FIFO).

``layernorm`` (fmax): the lane Dots take FX operands and add signed terms; each lane
has an :class:`.fma.FAdd` in front of its Dot (``a`` in fmt, ``c`` in FX) forming
``y = RNE_FX(x + c)``: ``c = -0`` in the first pass (x exactly) and the pads, ``c =
-mean`` in the second, with the Dot's other operand 1 or ``y``. Pass 1 streams the
input; B's first program adds the P sums (the tree) and forms ``mean = RNE(sum *
RN(1/d))`` (or, for a constant vector, ``x0``: lane 0's ``y`` of the first beat);
A then reads the vector again (the buffer's second read port), P pads, the sums of
``y*y``; B's second program as ``rmsnorm``'s. C forms ``y`` again on an FAdd a lane
before its multipliers (the scale waits beside them in a FIFO). A takes no beat of the
next vector from a vector's last beat until its second pass's sums are in (its Dots
do both passes); the next vector streams in during B's second program and C's output.
The lane Dots run free at any lane count in this mode.

The golden model takes the same ``partials`` (P = 1 is the order above).
Latency: ``2*d/lanes + P + Ld + La + Lw + T + Lc + 4`` (Ld, Lc: the lane Dot's and
the output unit's latency, La the lanes' tree's, Lw the window sum's with the rows'
wait for the window's top, T: the program's last write; one more with free-running
Dots); layernorm ``3*d/lanes + 2*(P + Ly + Ld + La + 1) + T1
+ T + Lc + 6`` (Ly: the FAdd's, T1: the first program's last write), in the sidecar.

Latency (first input beat to last output beat, ``o.ready`` high, unit idle):
``2*d/lanes + log2(lanes) + 3*K + R + 6`` cycles, ``R = 1`` for rmsnorm, else 0;
layernorm ``3*d/lanes + 2*log2(lanes) + 3*K + 11`` (``affine`` adds 1 to either).
A accepts a beat only while B is idle (a beat may be the last one, and B must be
free to take the sums): a new vector streams in during the previous one's output,
not during its ``~3K`` scalar cycles (nor, in layernorm, its second pass).
"""

import math
import re

from amaranth.hdl import (Cat, Const, Module, Mux, ResetSignal, Signal, Value,
                          signed)
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory

from lpcores.errors import FmaxError, ParamError, check_choice, check_int
from lpcores.formats import get_format
from lpcores.golden.iternorm import (FX, ITER_STARTS, REDUCES, check_lam, inv_rn,
                                     sqrt_rn, window_bits, window_headroom)

from .base import (Field, StreamCore, pairwise_tree, reword_loop, static_schedule,
                   step_decoder, timing_suffix)
from .prims import buffer_attrs
from .timing import check_fmax
from .wsum import TOP_BITS, WindowSum
from .newton import NewtonStep, start_a0, start_u0
from .fp import Fixed, align_add, fixed_to_unpacked, lzc, multiply, round_pack, unpack
from .fparith import add, as_fixed, fma, mul

__all__ = ["IterNorm", "FisrNorm"]

HW_MODES = ("l2", "layernorm", "rmsnorm")
#: the fmax build's lane Dots run free (never stall) from this many lanes on: the
#: stall-all enable of every lane's pipeline, and the pads' select into every lane's
#: multipliers, were the nets that crossed an 85F (docs/iternorm.md)
FREE_LANES = 8
#: from this many lanes on (free-running lane Dots) the lanes' sums of each partial
#: sum are added in A by a tree of ``lanes - 1`` pipelined FX adders (:class:`.fma.FAdd`)
#: as the Dots drain, and B's program adds only the P partial sums: at 16 lanes the
#: tree on B's one FMA was 95 of its 191 cycles (docs/iternorm.md)
LANE_TREE = 8
IO_FORMATS = ("fp32", "bf16")


def _fx_code(v):
    """FX code of a positive float64 that is an FX value."""
    mnt, e = math.frexp(v)
    sig = int(mnt * (1 << 24))
    return ((e - 1 + FX.bias) << 23) | (sig & 0x7FFFFF)


FX_ONE = _fx_code(1.0)
FX_NEGZERO = 1 << 33


class _Norm(StreamCore):
    start = None            # "iter", "rom" or "fisr"
    start_choices = None    # the ``start`` parameter's values, where it has one
    core_name = None

    def __init__(self, *, fmt="bf16", lanes=16, max_d=1024, mode="l2", iters=5,
                 lam=0.5, affine=False, fmax=None, family=None, partials=None,
                 start=None, reduce=None, fuse=False):
        if self.start_choices is None:
            if start is not None:
                raise ParamError(f"start applies to iternorm only ({self.core_name} "
                                 f"starts from its own {self.start_name}), got "
                                 f"start={start!r}")
        else:
            start = check_choice("start", self.start_choices[0] if start is None
                                 else start, self.start_choices)
            self.start = "iter" if start == "exp" else start
        self.f = get_format(fmt, param="fmt", allowed=IO_FORMATS)
        self.lanes = check_int("lanes", lanes, lo=1, hi=64)
        if lanes & (lanes - 1):
            raise ParamError(f"lanes must be a power of two in 1..64, got lanes={lanes}")
        self.max_d = check_int("max_d", max_d, lo=64, hi=65536)
        if max_d & (max_d - 1):
            raise ParamError(f"max_d must be a power of two in 64..65536, got "
                             f"max_d={max_d}")
        self.mode = check_choice("mode", mode, HW_MODES)
        self.iters = check_int("iters", iters, lo=1, hi=64)
        self.lam_log2 = check_lam(lam)
        if not isinstance(affine, bool):
            raise ParamError(f"affine must be True or False, not {affine!r}")
        self.affine = affine
        if not isinstance(fuse, bool):
            raise ParamError(f"fuse must be True or False, not {fuse!r}")
        if fuse and self.start != "rom":
            raise ParamError(f"fuse applies to iternorm with start='rom' (the fused "
                             f"update relies on its 2**-8 bound), got "
                             + (f"start={start!r}" if self.start_choices else
                                f"{self.core_name}"))
        self.fuse = fuse
        self.fmax = fmax
        if fmax is None:
            if fuse:
                raise ParamError("fuse applies to the fmax build only (give fmax too), "
                                 "got fuse=True")
            for name_, v in (("family", family), ("partials", partials),
                             ("reduce", reduce)):
                if v is not None:
                    raise ParamError(f"{name_} applies to the fmax build only (give "
                                     f"fmax too), got {name_}={v!r}")
            self.partials = 1
        else:
            fmax = check_fmax(fmax)
            family = family or "ecp5"
        L = lanes
        self.n_max = max_d // L
        # a buffer word: a beat's x (with affine its gamma and beta beside it)
        self.buf_width = L * self.f.bits * (3 if affine else 1)
        self.n_min = 64 // L
        self.levels = L.bit_length() - 1
        self.params = {"fmt": self.f.name, "lanes": L, "max_d": max_d, "mode": mode,
                       "iters": iters, "lam": lam, "affine": affine}
        if self.start == "rom":                 # as Dot's contexts: named when not default
            self.params["start"] = "rom"
        if fuse:
            self.params["fuse"] = True
        self.module_name = (f"{self.core_name}_{self.f.name}_l{L}_d{max_d}_{mode}_k{iters}"
                            f"{'' if lam == 0.5 else f'_lam{-self.lam_log2}'}"
                            f"{'_affine' if affine else ''}"
                            f"{'_rom' if self.start == 'rom' else ''}"
                            f"{'_fuse' if fuse else ''}")
        if fmax is not None:
            self._plan_fast(fmax, family, partials, reduce)
            return
        self._fields()
        aff = 1 if affine else 0
        if mode == "layernorm":
            # a third buffer pass, a second tree, the mean, the pass's pipeline (2)
            # and the (x - mean) stage of the output unit
            self.passes = 3
            self.const = 2 * self.levels + 3 * iters + 1 + 10 + aff
            expl = (f"3*d/lanes + 2*log2(lanes) + 3*iters + 1 + {10 + aff}")
        else:
            self.passes = 2
            R = 1 if mode == "rmsnorm" else 0
            self.const = self.levels + 3 * iters + R + 6 + aff
            expl = f"2*d/lanes + log2(lanes) + 3*iters + {R} + {6 + aff}"
        self.latency = self.latency_of(max_d)
        self.latency_formula = (
            f"first input beat to last output beat: {self.passes}*d/{L} + {self.const} "
            f"cycles (= {expl}); 'latency' is its value at d = max_d")
        self.beats_per_result = "d/lanes input beats give d/lanes output beats"
        super().__init__()

    def _fields(self):
        """The ports' fields (module doc, "Interface")."""
        f, L = self.f, self.lanes
        self.in_fields = [Field(f"{n}{k}", f.bits, f.name)
                          for n in ("xgb" if self.affine else "x") for k in range(L)]
        self.in_fields.append(Field("last", 1))
        self.out_fields = [Field(f"y{k}", f.bits, f.name) for k in range(L)]
        self.out_fields += [Field("last", 1), Field("err", 1)]

    def latency_of(self, d):
        return self.passes * d // self.lanes + self.const

    # -- the fmax build: three units on pipelined sub-cores -------------------------------

    def _plan_fast(self, fmax, family, partials, reduce=None):
        """Plan the ``fmax`` build (module doc, "The fmax build"): the lanes' sums on
        :class:`.dot.Dot` (fp, ``contexts = partials``), the scalar unit's one FX
        :class:`.fma.FMA` and the output lanes' multipliers (:class:`.fma.FMul`), each planned for the clock by
        its own delay model; the scalar program's static schedule; the latency."""
        from .dot import Dot
        from .fma import FMA, FAdd, FMul
        f, L, K = self.f, self.lanes, self.iters
        NB = self.n_max

        def sub(build, what):
            # a sub-core's refusal, in the words of this core's parameters
            try:
                return build()
            except FmaxError as e:
                if e.loop is not None:
                    raise reword_loop(e, "partials", "the lane sums' accumulate loop",
                                      fmax, family) from None
                raise e.reworded(re.sub(r"for this (dot|fma|fmul|fadd)", f"for this "
                                        f"{self.core_name}'s {what}", str(e))) from None

        ln = self.mode == "layernorm"
        # the default: the window sum from LANE_TREE lanes on (l2, rmsnorm), where
        # it takes the place of the lanes' FAdd tree; below, B's program adds the
        # few sums on its FMA (no LUTs, more cycles)
        dflt = "window" if L >= LANE_TREE and not ln else "tree"
        reduce = check_choice("reduce", dflt if reduce is None else reduce, REDUCES)
        if ln and reduce != "tree":
            raise ParamError(f"reduce={reduce!r} applies to modes l2 and rmsnorm "
                             "(layernorm's sums are signed: they take the tree), got "
                             "mode='layernorm'")
        # squares: no lane sums; A reads the vector a second time into the window
        # sum, which squares the elements itself
        self.squares = reduce == "squares"
        if self.squares and partials is not None:
            raise ParamError(f"partials applies to reduce='tree' and 'window' (the "
                             f"squares take no lane sums), got partials={partials}")

        def lane_dot(P):
            # squares are magnitudes: the lanes' loops add them with no LZC; in
            # layernorm the same Dots also add x (signed), both passes on FX operands
            # (x*1, then y*y with y = RNE_FX(x - mean))
            return sub(lambda: Dot(a_fmt=FX if ln else f.name, b_fmt=FX if ln else f.name,
                                   out_fmt=FX, lanes=1, accumulate="fp",
                                   max_terms=NB + 2 * P, contexts=P, fmax=fmax,
                                   family=family, magnitude=not ln),
                       "lane sums")
        if self.squares:
            P, dots = 1, []
        elif partials is None:
            # the fewest sums per lane the accumulate loop needs (its depth; not
            # rounded up to a power of two: the tree takes any count)
            P = 1
            while True:
                try:
                    dots = [lane_dot(P)]
                    break
                except FmaxError as e:
                    if P >= 64 or e.loop is None:
                        raise
                    P += 1
        else:
            P = check_int("partials", partials, lo=1, hi=64)
            dots = [lane_dot(P)]
        dots += [lane_dot(P) for _ in range(L - 1)] if dots else []
        self.partials = P
        self.dots = dots
        # the fused first update's unit (hdl/newton.py), beside the FMA
        # (from LANE_TREE lanes on, s lands in a register before its table: the
        # window sum and the unit sit apart on a large device)
        self.newton = sub(lambda: NewtonStep(lam_shift=-self.lam_log2, fmax=fmax,
                                             family=family, land=L >= LANE_TREE),
                          "fused first update") if self.fuse else None
        # C: RNE_fmt(c*x); with affine RNE_FX(c*x), then RNE_fmt(z*g + b) on an FMA
        # beside it (the golden model's fx_round, then one rounding into fmt)
        # (c is zero or normal: 1/sqrt(s) of an s inside FX's range, so b is
        # normalized before the multiply, FMul's a_normal)
        r_fmt = FX if self.affine else f.name
        self.outs = [sub(lambda: FMul(a_fmt=FX, b_fmt=FX if ln else f.name, r_fmt=r_fmt,
                                      fmax=fmax, family=family, a_normal=True),
                         "output multiply")
                     for _ in range(L)]
        # layernorm: y = RNE_FX(x - mean) a lane, in A (pass 1 adds -0: x exactly in
        # FX; pass 2 -mean) and in C (the output pass), FMA(x, 1, -mean) on FAdds
        self.ys, self.ys_out = ([[sub(lambda: FAdd(a_fmt=f.name, fmt=FX, fmax=fmax,
                                                   family=family), "x - mean")
                                  for _ in range(L)] for _ in "AC"] if ln else ([], []))
        self.affs = [sub(lambda: FMA(a_fmt=FX, b_fmt=f.name, acc_fmt=f.name, fmax=fmax,
                                     family=family), "affine multiply-add")
                     for _ in range(L)] if self.affine else []
        # l2, rmsnorm: the P*L sums of squares are reduced by one window sum
        # (WindowSum: truncated to a window below the top the largest element sets,
        # added exactly, rounded once); layernorm's sums (signed) by trees
        self.window = reduce == "window"
        # (its headroom: the largest square is at least 2**(T - h), golden
        # window_headroom)
        self.wsum = sub(lambda: WindowSum(lanes=L, window=window_bits(self.max_d, P),
                                          beats=P,
                                          headroom=window_headroom(self.max_d, L),
                                          fmax=fmax, family=family),
                        "window sum") if self.window else None
        if self.squares:
            # the squares themselves, a beat of lanes elements a cycle, up to max_d
            # / lanes beats; the top bounds one square (golden squares_sum)
            self.wsum = sub(lambda: WindowSum(
                lanes=L, window=window_bits(self.max_d, 1), beats=NB,
                headroom=window_headroom(self.max_d, self.max_d), fmax=fmax,
                family=family, square_fmt=f.name), "window sum")
        # the lanes' tree in A (LANE_TREE): level l's adders add level l - 1's
        # neighbours, the lanes of one partial sum a cycle
        self.lane_tree = L >= LANE_TREE and reduce == "tree"
        self.adds = ([sub(lambda: FAdd(fmt=FX, fmax=fmax, family=family,
                                       magnitude=not ln),
                          "lane tree") for _ in range(L - 1)] if self.lane_tree else [])
        # each tree level's operands land in a register beside its adders first
        # (they come from lanes or adders placed elsewhere on the device)
        La = (self.adds[0].latency + 1) * (L.bit_length() - 1) if self.adds else 0
        self.tree_latency = La
        for c in [*self.dots, *self.outs, *self.affs, *self.adds, *self.ys,
                  *self.ys_out, *([self.wsum] if self.wsum else []),
                  *([self.newton] if self.newton else [])]:
            c._MustUse__used = True
        self.family = family
        # above the block RAM read's clock a small buffer goes into LUT RAM
        style = buffer_attrs(family, fmax, self.buf_width * 2 * NB)
        self.memory_attrs = {"mem": style} if style else {}
        # the scalar program: the tree over the P*L sums (context-major), the start,
        # K updates, the scale; each FMA op issues once its operands are written
        # (its operands are registered first: the step counter's decode and the
        # operand muxes get their own cycle, so one more than the FMA's latency)
        tree_ops = [] if reduce != "tree" else [
            (("t", x), "one", ("t", y), ("t", d))
            for x, y, d in pairwise_tree(P if self.lane_tree else P * L)]
        # layernorm: a first program, the tree over the sums of x and the mean
        # (RN(1/d) from a ROM); then A's second pass; then the program below
        prog1 = tree_ops + [(("t", 0), "invd", "negzero", "mean")] if ln else []
        prog = list(tree_ops)
        # fused: the first update from s itself (NewtonStep looks the start up),
        # first; the start then writes s alone
        prog += ["fused", "start"] if self.fuse else ["start"]
        # IterNorm's starts have at most 12 significant bits: the first update's
        # u = RNE(a0*a0) is exact, written by the start (newton.start_u0), not computed
        self.u_from_start = self.start != "fisr" and not self.fuse
        for k in range(K):
            if k == 0 and self.fuse:
                continue
            if k or not self.u_from_start:
                prog.append(("a", "a", "negzero", "u"))
            prog += [("negs", "u", "one", "v"), ("a", "lamv", "a", "a")]
        if self.mode != "l2":
            prog.append(("a", "sqrt", "negzero", "c"))
        # the FMA, where the programs have an op for it (l2 with the window sum and
        # one fused update has none)
        self.upd = sub(lambda: FMA(a_fmt=FX, b_fmt=FX, acc_fmt=FX, fmax=fmax,
                                   family=family), "FX multiply-add") \
            if any(op not in ("start", "fused") for op in prog1 + prog) else None
        if self.upd is not None:
            self.upd._MustUse__used = True
        self.prog_lf = Lf = self.upd.latency + 1 if self.upd else 0
        Ln = self.newton.latency if self.newton else 0
        # the start and the fused unit read t[0] as a register: one cycle after a
        # forwarded read of the tree's last op; the window sum's s is in t[0] when the
        # program starts, and the fused unit takes it from the window sum's output
        # a cycle earlier still, in the cycle that starts the program (step -1)
        t0_later = 0 if reduce != "tree" else 1
        self.fused_early = self.fuse and reduce != "tree"

        def timed(op):
            if op == "start":                       # s, a0 (u0) <- t[0], registered
                return ([("t", 0)], ["s", "negs"] + ["a"] * (not self.fuse)
                        + ["u"] * self.u_from_start, 0, t0_later)
            if op == "fused":
                return ([] if self.fused_early else [("t", 0)]), ["a"], Ln - 1, \
                    t0_later
            srcs = [x for x in op[:3] if x not in ("one", "negzero", "sqrt", "invd")]
            # the FMA's result at its output in cycle t + Lf (written at its end):
            # a dependent op issued then takes it forwarded into its operand register
            return ["v" if x == "lamv" else x for x in srcs], [op[3]], Lf - 1
        def scheduled(prog):
            # (the program, its last write: an FMA op's in cycle t + Lf, its result
            # forwarded to a reader issued then, the start's in its own cycle)
            times, _ = static_schedule((timed(op) for op in prog),
                                       first=-1 if prog[:1] == ["fused"]
                                       and self.fused_early else 0)
            program = list(zip(times, prog))
            return program, max((t + {"start": 0, "fused": Ln}.get(op, Lf)
                                 for t, op in program), default=0)
        self.program1, self.t_fin1 = scheduled(prog1)
        self.program, self.t_fin = scheduled(prog)
        Ld = dots[0].latency if dots else 0
        # the window's top: the largest element's exponent key, a register a level of
        # the lanes' max tree and the running max (_window_top), ready levels + 3
        # cycles after the last beat; the first sums come 1 + Ld cycles after it (or
        # later): the sums wait in registers for the difference
        self.ws_wait = max(0, self.levels + 2 - Ld) if self.window else 0
        Lw = self.wsum.latency + self.ws_wait if self.window else 0
        # squares: A's second pass starts once the top is ready (levels + 3 cycles
        # after the last beat: levels + 1 after the pass's first read would see it)
        self.p2_wait = self.levels + 1 if self.squares else 0
        # C: (layernorm: y = x - mean,) the multiply, (affine: the FMA)
        self.const_out = Lc = sum(u[0].latency
                                  for u in (self.ys_out, self.outs, self.affs) if u)
        tim = {"family": family, "fmax_asked_mhz": fmax, "partials": P,
               **({"lane_dot": dots[0].timing} if dots else {}),
               **({"scalar_fma": self.upd.timing} if self.upd else {}),
               **({"fused_update": self.newton.timing} if self.newton else {}),
               "out_mul": self.outs[0].timing,
               **({"affine_fma": self.affs[0].timing} if self.affs else {}),
               **({"lane_add": self.adds[0].timing} if self.adds else {}),
               **({"window_bits": self.wsum.W, "window_sum": self.wsum.timing}
                  if self.wsum else {}),
               "estimate_mhz": min(c.timing["estimate_mhz"]
                                   for c in (*dots[:1], *([self.upd] if self.upd else []),
                                             *([self.newton] if self.newton else []),
                                             self.outs[0],
                                             *self.affs[:1], *self.adds[:1],
                                             *([self.wsum] if self.wsum else [])))}
        self.timing = tim
        self.params.update(fmax=fmax, family=family, partials=P, reduce=reduce)
        # named when not the default (squares: no partials)
        self.module_name += (("" if self.squares else f"_p{P}")
                             + (f"_{reduce}" if reduce != dflt else "")
                             + timing_suffix(None, fmax, family))
        self._fields()
        # from 8 lanes on the lane Dots never stall (_elaborate_fast): their operands
        # registered once in A, one cycle more; layernorm's always do
        self.free_lanes = (L >= FREE_LANES or ln) and not self.squares
        tree = f" + the lanes' tree {La}" if self.adds else ""
        out = ("x - mean, multiply" if ln else "multiply") + (" and affine FMA"
                                                             if self.affs else "")
        if ln:
            # each lane pass: the pads, A's FAdd, the lane sum, the tree, and the
            # lanes' operand register; the second pass's first read a cycle after the
            # mean's write, its data a cycle later; the 4 of the other modes
            Ly = self.ys[0].latency
            self.passes = 3
            self.const = (2 * (P + Ly + Ld + La + 1) + self.t_fin1 + self.t_fin + Lc
                          + 2 + 4)
            expl = (f"3*d/lanes + 2 x (partials + x - mean's latency {Ly} + the lane "
                    f"sum's {Ld}{tree} + 1) + the mean's program {self.t_fin1} + the "
                    f"scalar program {self.t_fin} + the output ({out})'s latency {Lc} "
                    f"+ 6")
        elif self.squares:
            # the second pass's first read p2_wait + 1 cycles after the last beat,
            # its data a cycle later, registered, into the window sum; from its
            # result on as the other modes (the program, the output pass)
            self.passes = 3
            Lw = self.wsum.latency
            self.const = self.p2_wait + Lw + self.t_fin + Lc + 6
            expl = (f"3*d/lanes + the wait for the top {self.p2_wait} + the window "
                    f"sum's latency {Lw} + the scalar program {self.t_fin} + the output "
                    f"{out}'s latency {Lc} + 6")
        else:
            self.passes = 2
            self.const = P + Ld + La + Lw + self.t_fin + Lc + 4 + int(self.free_lanes)
            if self.window:
                tree = f" + the window sum's {Lw}"
            expl = (f"2*d/lanes + partials + the lane sum's latency {Ld}{tree} + the "
                    f"scalar program {self.t_fin} + the output {out}'s latency {Lc} + "
                    f"{4 + int(self.free_lanes)}")
        self.latency = self.latency_of(self.max_d)
        self.latency_formula = (
            f"first input beat to last output beat: {self.passes}*d/{L} + {self.const} "
            f"cycles (= {expl}); 'latency' is its value at d = max_d")
        self.beats_per_result = "d/lanes input beats give d/lanes output beats"
        StreamCore.__init__(self)

    # -- the datapath ---------------------------------------------------------------

    def elaborate(self, platform):
        if self.fmax is not None:
            return self._elaborate_fast()
        m = Module()
        f, L, K = self.f, self.lanes, self.iters
        ln = self.mode == "layernorm"
        B = f.bits
        NB = self.n_max
        aw = max(1, (NB - 1).bit_length())            # word address within a slot
        mem = Memory(shape=self.buf_width, depth=2 * NB, init=[])
        m.submodules.mem = mem
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")
        # layernorm: B's second pass reads the buffer while C may read the other slot
        rp2 = mem.read_port(domain="sync") if ln else None
        pay = self.i.payload

        # ---- A: accept, buffer, square, accumulate --------------------------------
        wslot = Signal()
        wcnt = Signal(range(NB + 2))                   # beats so far, saturating
        busy = Signal(2)                               # buffer slots in use
        b_idle = Signal()
        hand = Signal()                                # acc holds a finished vector
        p_valid, p_first, p_last = (Signal(name="p_valid"), Signal(name="p_first"),
                                    Signal(name="p_last"))
        p_bad = Signal()
        p_cnt = Signal(range(NB + 2))
        p_slot = Signal()
        pending = (p_valid & p_last) | hand
        slot_ok = (wcnt != 0) | ~busy.bit_select(wslot, 1)
        # SPEC §3: no beat is acknowledged while rst is high
        m.d.comb += self.i.ready.eq(slot_ok & b_idle & ~pending & ~ResetSignal())
        take = self.i.valid & self.i.ready
        xs = [pay[f"x{k}"] for k in range(L)]
        word = Cat(*xs)
        if self.affine:
            word = Cat(word, *[pay[f"g{k}"] for k in range(L)],
                       *[pay[f"b{k}"] for k in range(L)])
        cnt1, beat_bad, busy_clr = _buffer_in(m, f, xs, word, take, pay.last, NB, aw,
                                               wp, wcnt, wslot, busy)
        # layernorm's second pass (driven by B, below) feeds the same stage
        p_src2 = Signal()                              # stage holds a pass-2 beat
        r2_valid, r2_first, r2_last = (Signal(name="r2_valid"), Signal(name="r2_first"),
                                       Signal(name="r2_last"))
        m.d.sync += [p_valid.eq(take | r2_valid),
                     p_first.eq(Mux(r2_valid, r2_first, wcnt == 0)),
                     p_last.eq(Mux(r2_valid, r2_last, pay.last)),
                     p_src2.eq(r2_valid),
                     p_cnt.eq(cnt1), p_slot.eq(wslot), p_bad.eq(beat_bad)]
        if ln:
            # constant vector: x0_reg holds element 0 (lane 0 of the first beat);
            # every element of every beat is compared with it (code equality, or
            # both zero), and the beat's verdict travels like p_bad. x0_reg stays
            # put until the vector's mean is taken: A accepts nothing from the
            # last beat (pending, hand) through B's run.
            x0_reg = Signal(B)
            p_same = Signal()
            m.d.sync += p_same.eq(_same_as(xs, Mux(wcnt == 0, xs[0], x0_reg), B))
            with m.If(take & (wcnt == 0)):
                m.d.sync += x0_reg.eq(xs[0])
        mean_reg = Signal(FX.bits)
        um = unpack(m, mean_reg ^ (1 << 33), FX, name="qm") if ln else None  # -mean
        prods = []
        for k in range(L):
            u = unpack(m, xs[k], f, name=f"x{k}")
            if not ln:
                p = multiply(m, u, f, u, f, name=f"sq{k}")
            else:
                # pass 1: x*1 (exact); pass 2: y*y with y = RNE_FX(x - mean)
                u2 = unpack(m, rp2.data[k * B:(k + 1) * B], f, name=f"q{k}")
                y2 = add(m, u2, um, FX, fa=f, name=f"qy{k}")
                uy = unpack(m, y2, FX, name=f"qyu{k}")
                p = _mux_fixed(r2_valid, multiply(m, uy, FX, uy, FX, name=f"sq{k}"),
                               as_fixed(u, f))
            rp_ = _reg_fixed(m, p, f"sqr{k}")
            prods.append(rp_)
        acc = [Signal(FX.bits, name=f"acc{k}") for k in range(L)]
        zero_fx = Const(0, FX.bits)
        for k in range(L):
            ua = unpack(m, Mux(p_first, zero_fx, acc[k]), FX, name=f"acc{k}_u")
            s_ = align_add(m, prods[k], ua, FX, name=f"acc{k}_s")
            nu = fixed_to_unpacked(m, s_, name=f"acc{k}_n")
            code = round_pack(m, FX, nu, name=f"acc{k}_r")
            with m.If(p_valid):
                m.d.sync += acc[k].eq(code)
        vbad = Signal()
        h_bad, h_cnt, h_slot = (Signal(name="h_bad"),
                                Signal(range(NB + 2), name="h_cnt"),
                                Signal(name="h_slot"))
        hand2 = Signal()                               # acc holds a vector's sum of y*y
        m.d.sync += [hand.eq(p_valid & p_last & ~p_src2),
                     hand2.eq(p_valid & p_last & p_src2)]
        with m.If(p_valid & ~p_src2):
            nb = Mux(p_first, p_bad, vbad | p_bad)
            m.d.sync += vbad.eq(nb)
            with m.If(p_last):
                m.d.sync += [h_bad.eq(nb), h_cnt.eq(p_cnt), h_slot.eq(p_slot)]
        if ln:
            vsame, h_same = (Signal(name="vsame"), Signal(name="h_same"))
            with m.If(p_valid & ~p_src2):
                ns = Mux(p_first, p_same, vsame & p_same)
                m.d.sync += vsame.eq(ns)
                with m.If(p_last):
                    m.d.sync += h_same.eq(ns)

        # ---- B: tree, start, K updates, scale ---------------------------------------
        t = [Signal(FX.bits, name=f"t{k}") for k in range(L)]
        s_reg = Signal(FX.bits)
        a_reg = Signal(FX.bits)
        u_reg = Signal(FX.bits)
        v_reg = Signal(FX.bits)
        b_bad, b_err, b_slot = (Signal(name="b_bad"), Signal(name="b_err"),
                                Signal(name="b_slot"))
        b_cnt = Signal(range(NB + 2))
        ops = (["tree"] * self.levels + ["start"] + ["u", "v", "a"] * K
               + (["c"] if self.mode != "l2" else []))
        if ln:
            # sum of x, mean, then the second buffer pass (sum of (x - mean)^2)
            ops = ["tree"] * self.levels + ["mean", "pass"] + ops
        step = Signal(range(len(ops) + 1))
        b_run = Signal()
        b_done = Signal()                              # result waits for C
        m.d.comb += b_idle.eq(~b_run & ~b_done)
        # job register B -> C
        j_valid = Signal()
        j_c, j_bad, j_zero, j_err, j_slot = (Signal(FX.bits, name="j_c"),
                                             Signal(name="j_bad"),
                                             Signal(name="j_zero"),
                                             Signal(name="j_err"),
                                             Signal(name="j_slot"))
        j_cnt = Signal(range(NB + 2))

        h_err = (h_cnt < self.n_min) | (h_cnt > NB)
        with m.If(hand):
            m.d.sync += [b_bad.eq(h_bad), b_err.eq(h_err), b_slot.eq(h_slot),
                         b_cnt.eq(h_cnt)]
        if ln:
            b_same = Signal()
            with m.If(hand):
                m.d.sync += b_same.eq(h_same)

        # the tree: t[k] <- t[2k] + t[2k+1], one level a cycle
        tree_next = []
        for k in range(L // 2):
            ua_ = unpack(m, t[2 * k], FX, name=f"t{2 * k}_u")
            ub_ = unpack(m, t[2 * k + 1], FX, name=f"t{2 * k + 1}_u")
            tree_next.append(add(m, ua_, ub_, FX, name=f"tree{k}"))

        # the start, from s = t[0] (an FX value, positive, MSB set unless zero)
        s_src = t[0]
        a0 = start_a0(m, s_src, self.start)

        # the one FX fused multiply-add of the updates
        fa_sel = Signal(FX.bits)
        fb_sel = Signal(FX.bits)
        fc_sel = Signal(FX.bits)
        sh_sel = Signal()
        sqrt_code, inv_code = _count_codes(m, b_cnt, self.n_min, NB, L, ln)
        def at(kind):
            idxs = [i for i, op in enumerate(ops) if op == kind]
            return Cat(*[step == i for i in idxs]).any() if idxs else Const(0, 1)
        is_tree, is_start = at("tree"), at("start")
        is_u, is_v, is_a, is_c = at("u"), at("v"), at("a"), at("c")
        is_mean, is_pass = at("mean"), at("pass")
        neg_s = s_reg ^ (1 << 33)
        m.d.comb += [
            fa_sel.eq(Mux(is_v, neg_s, Mux(is_mean, t[0], a_reg))),
            fb_sel.eq(Mux(is_u, a_reg, Mux(is_v, u_reg, Mux(is_a, v_reg,
                                                              Mux(is_mean, inv_code,
                                                                  sqrt_code))))),
            fc_sel.eq(Mux(is_v, FX_ONE, Mux(is_a, a_reg, FX_NEGZERO))),
            sh_sel.eq(is_a),
        ]
        ufa = unpack(m, fa_sel, FX, name="fa")
        ufb = unpack(m, fb_sel, FX, name="fb")
        ufc = unpack(m, fc_sel, FX, name="fc")
        shift = Mux(sh_sel, self.lam_log2, 0) if self.lam_log2 else 0
        res = fma(m, ufa, FX, ufb, FX, ufc, FX, shift=shift, name="upd")

        run = Signal()
        m.d.comb += run.eq(b_run)
        fin = run & (step == len(ops) - 1)
        push = b_done & ~j_valid
        adv = run & (~is_pass | hand2)                 # "pass" waits for the sums
        m.d.sync += [
            step.eq(Mux(hand, 0, Mux(adv, step + 1, step))),
            b_run.eq(Mux(hand, ~h_err, b_run & ~fin)),
            b_done.eq(Mux(hand, h_err, (b_done & ~push) | fin)),
            s_reg.eq(Mux(run & is_start, s_src, s_reg)),
            a_reg.eq(Mux(run & is_start, a0, Mux(run & (is_a | is_c), res, a_reg))),
            u_reg.eq(Mux(run & is_u, res, u_reg)),
            v_reg.eq(Mux(run & is_v, res, v_reg)),
        ]
        j_mean = Signal(FX.bits)
        if ln:
            # a constant vector's mean is x0 exactly: RNE_FX(x0 + 0) (+0 for a zero
            # vector, as the computed mean), not RNE_FX(sum * RN(1/d))
            x0_fx = add(m, unpack(m, x0_reg, f, name="x0"),
                        unpack(m, zero_fx, FX, name="zfx"), FX, fa=f, name="x0fx")
            m.d.sync += mean_reg.eq(Mux(run & is_mean, Mux(b_same, x0_fx, res),
                                        mean_reg))
            # the second pass: read beats 0..n-1 of the vector's slot, from the mean
            # step on; y = RNE_FX(x - mean) and y*y in the A stage above
            q_act = Signal()
            q_cnt = Signal(range(NB + 1))
            q_issue = (run & is_mean) | q_act
            q_end = q_cnt == b_cnt - 1
            m.d.comb += [rp2.addr.eq(Cat(q_cnt[:aw], b_slot) if NB > 1 else b_slot),
                         rp2.en.eq(1)]
            m.d.sync += [r2_valid.eq(q_issue), r2_first.eq(q_cnt == 0),
                         r2_last.eq(q_end)]
            with m.If(q_issue):
                m.d.sync += [q_act.eq(~q_end), q_cnt.eq(Mux(q_end, 0, q_cnt + 1))]
            with m.If(push):
                m.d.sync += j_mean.eq(mean_reg)
        for k in range(L):
            nxt = tree_next[k] if k < L // 2 else t[k]
            m.d.sync += t[k].eq(Mux(hand | hand2, acc[k],
                                    Mux(run & is_tree, nxt, t[k])))
        with m.If(push):
            m.d.sync += [j_c.eq(a_reg), j_bad.eq(b_bad), j_zero.eq(s_reg[:33] == 0),
                         j_err.eq(b_err), j_slot.eq(b_slot), j_cnt.eq(b_cnt)]

        # ---- C: read the buffer, scale, emit ------------------------------------------
        advance = Signal()
        m.d.comb += advance.eq(self.o.ready | ~self.o.valid)
        c_act = Signal()
        c_cnt = Signal(range(NB + 1))
        c_n = Signal(range(NB + 2))
        c_c, c_bad, c_zero, c_err, c_slot = (Signal(FX.bits, name="c_c"),
                                             Signal(name="c_bad"),
                                             Signal(name="c_zero"),
                                             Signal(name="c_err"),
                                             Signal(name="c_slot"))
        c_take = ~c_act & j_valid
        m.d.sync += j_valid.eq((j_valid & ~c_take) | push)
        c_mean, r_mean = (Signal(FX.bits, name="c_mean"),
                          Signal(FX.bits, name="r_mean"))
        with m.If(c_take):
            m.d.sync += [c_n.eq(j_cnt), c_c.eq(j_c), c_bad.eq(j_bad), c_zero.eq(j_zero),
                         c_err.eq(j_err), c_slot.eq(j_slot), c_mean.eq(j_mean)]
        is_last = c_err | (c_cnt == c_n - 1)
        m.d.comb += [rp.addr.eq(Cat(c_cnt[:aw], c_slot) if NB > 1 else c_slot),
                     rp.en.eq(advance)]
        # stage R: memory data register plus what travels with it
        r_valid, r_last, r_bad, r_zero, r_err = (Signal(name="r_valid"),
                                                 Signal(name="r_last"),
                                                 Signal(name="r_bad"),
                                                 Signal(name="r_zero"),
                                                 Signal(name="r_err"))
        r_c = Signal(FX.bits)
        with m.If(advance):
            m.d.sync += [r_valid.eq(c_act), r_last.eq(is_last), r_c.eq(c_c),
                         r_bad.eq(c_bad), r_zero.eq(c_zero), r_err.eq(c_err)]
            if ln:
                m.d.sync += r_mean.eq(c_mean)
        issue = advance & c_act
        done = issue & is_last
        m.d.sync += [
            c_act.eq(Mux(c_take, 1, c_act & ~done)),
            c_cnt.eq(Mux(c_take, 0, Mux(issue, c_cnt + 1, c_cnt))),
        ]
        m.d.comb += busy_clr.eq(Mux(done, Mux(c_slot, 0b10, 0b01), 0))
        data = rp.data
        xsrc = [(data[k * B:(k + 1) * B], f) for k in range(L)]
        gbsrc = [Cat(data[(L + k) * B:(L + k + 1) * B],
                     data[(2 * L + k) * B:(2 * L + k + 1) * B]) if self.affine else None
                 for k in range(L)]
        c_val = Mux(r_zero, 0, r_c)
        stage = (r_valid, r_last, r_bad, r_err)
        if ln:
            # stage Y (layernorm): y = RNE_FX(x - mean) registered
            y_valid, y_last, y_bad, y_err = (Signal(name="y_valid"),
                                             Signal(name="y_last"),
                                             Signal(name="y_bad"), Signal(name="y_err"))
            y_c = Signal(FX.bits)
            yv = [Signal(FX.bits, name=f"yv{k}") for k in range(L)]
            ygb = [Signal(2 * B, name=f"ygb{k}") for k in range(L)] if self.affine \
                else gbsrc
            ucm = unpack(m, r_mean ^ (1 << 33), FX, name="cm")
            ycode = [add(m, unpack(m, xsrc[k][0], f, name=f"cx{k}"), ucm, FX, fa=f,
                         name=f"cy{k}") for k in range(L)]
            with m.If(advance):
                m.d.sync += [y_valid.eq(r_valid), y_last.eq(r_last), y_bad.eq(r_bad),
                             y_err.eq(r_err), y_c.eq(c_val)]
                for k in range(L):
                    m.d.sync += yv[k].eq(ycode[k])
                    if self.affine:
                        m.d.sync += ygb[k].eq(gbsrc[k])
            xsrc = [(yv[k], FX) for k in range(L)]
            gbsrc = ygb
            c_val = y_c
            stage = (y_valid, y_last, y_bad, y_err)
        uc = unpack(m, c_val, FX, name="c")
        ys = []
        for k in range(L):
            ux = unpack(m, xsrc[k][0], xsrc[k][1], name=f"ry{k}")
            if not self.affine:
                ys.append(mul(m, uc, FX, ux, xsrc[k][1], f, name=f"out{k}"))
            else:
                ys.append(mul(m, uc, FX, ux, xsrc[k][1], FX, name=f"z{k}"))
        if self.affine:
            # stage Z: RN_FX(c*y) registered, then RNE_fmt(z*g + b)
            z_valid, z_last, z_bad, z_err = (Signal(name="z_valid"),
                                             Signal(name="z_last"),
                                             Signal(name="z_bad"), Signal(name="z_err"))
            zs = [Signal(FX.bits, name=f"zr{k}") for k in range(L)]
            gb = [Signal(2 * B, name=f"gb{k}") for k in range(L)]
            with m.If(advance):
                m.d.sync += [z_valid.eq(stage[0]), z_last.eq(stage[1]),
                             z_bad.eq(stage[2]), z_err.eq(stage[3])]
                for k in range(L):
                    m.d.sync += [zs[k].eq(ys[k]), gb[k].eq(gbsrc[k])]
            outs = []
            for k in range(L):
                uz = unpack(m, zs[k], FX, name=f"za{k}")
                ug = unpack(m, gb[k][:B], f, name=f"ga{k}")
                ub = unpack(m, gb[k][B:], f, name=f"ba{k}")
                outs.append(fma(m, uz, FX, ug, f, ub, f, name=f"aff{k}"))
            ys = outs
            stage = (z_valid, z_last, z_bad, z_err)
        v_, last_, bad_, err_ = stage
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v_), self.o.payload.last.eq(last_),
                         self.o.payload.err.eq(err_)]
            for k in range(L):
                m.d.sync += self.o.payload[f"y{k}"].eq(
                    Mux(err_, 0, Mux(bad_, f.nan_code, ys[k])))
        return m


def _inc_mod(v, P):
    """``(v + 1) mod P`` for a counter ``v`` of ``max(1, (P - 1).bit_length())`` bits
    (a power of two P: the counter's own wrap-around)."""
    if P == 1:
        return 0
    if P & (P - 1) == 0:
        return v + 1
    return Mux(v == P - 1, 0, v + 1)


def _buffer_in(m, f, xs, word, take, last, NB, aw, wp, wcnt, wslot, busy):
    """A's side of the two-slot vector buffer: write the accepted beat (``word``)
    at its slot and beat count (saturating past ``max_d``), mark the slot busy at a
    vector's first beat. Returns the count after the beat, whether the beat holds
    a NaN/Inf element, and the slots-to-free signal (C drives it)."""
    cnt1 = Signal(range(NB + 2))
    m.d.comb += cnt1.eq(Mux(wcnt > NB, wcnt, wcnt + 1))
    m.d.comb += [wp.addr.eq(Cat(wcnt[:aw], wslot) if NB > 1 else wslot),
                 wp.data.eq(word), wp.en.eq(take & (wcnt < NB))]
    emax_field = (1 << f.exp_bits) - 1
    beat_bad = Cat(*[x[f.man_bits:f.man_bits + f.exp_bits] == emax_field
                     for x in xs]).any()
    busy_set = Signal(2)
    busy_clr = Signal(2)
    m.d.comb += busy_set.eq(Mux(take & (wcnt == 0), Mux(wslot, 0b10, 0b01), 0))
    m.d.sync += busy.eq((busy | busy_set) & ~busy_clr)
    m.d.sync += [wcnt.eq(Mux(take, Mux(last, 0, cnt1), wcnt)),
                 wslot.eq(wslot ^ (take & last))]
    return cnt1, beat_bad, busy_clr


def _lam_v(v, lam_log2):
    """``lam * v`` (an FX code): v's exponent field lowered by ``-log2(lam)``, v == 0
    kept; exact, since a nonzero v = RNE(1 - s*u) is at least 2**-48
    (docs/iternorm.md)."""
    k_ = -lam_log2
    return Mux((v[23:33] == 0) | (k_ == 0), v, v - (k_ << 23))


def _elaborate_fast(self):
    """The fmax build (module doc): A feeds the lanes' Dots (and P pad beats with
    ``last`` after a vector), collects their P sums each; B runs the static
    program on one FX FMA; C streams the buffer through the lanes' output
    multipliers."""
    m = Module()
    f, L, P = self.f, self.lanes, self.partials
    B = f.bits
    NB = self.n_max
    aw = max(1, (NB - 1).bit_length())
    mem = Memory(shape=self.buf_width, depth=2 * NB, init=[])   # memory_attrs: its style
    m.submodules.mem = mem
    wp = mem.write_port()
    rp = mem.read_port(domain="sync")
    ln = self.mode == "layernorm"
    # layernorm: A's second pass reads the buffer while C may read the other slot
    # (squares: A's second pass, the same)
    rp2 = mem.read_port(domain="sync") if ln or self.squares else None
    for k, (y, yc) in enumerate(zip(self.ys, self.ys_out)):
        m.submodules[f"xm{k}"] = y
        m.submodules[f"out_xm{k}"] = yc
    for k, d in enumerate(self.dots):
        m.submodules[f"sum{k}"] = d
    if self.upd is not None:
        m.submodules.upd = self.upd
    if self.newton is not None:
        m.submodules.newton = self.newton
    for k, o in enumerate(self.outs):
        m.submodules[f"out{k}"] = o
    for k, a in enumerate(self.adds):
        m.submodules[f"tree{k}"] = a
    if self.wsum is not None:
        m.submodules.wsum = self.wsum
    dots, upd, outs = self.dots, self.upd, self.outs
    pay = self.i.payload
    xs = [pay[f"x{k}"] for k in range(L)]

    # ---- A: accept, buffer, feed the lanes' sums, pad, collect ----------------------
    wslot = Signal()
    wcnt = Signal(range(NB + 2))                   # beats so far, saturating
    busy = Signal(2)                               # buffer slots in use
    b_idle = Signal()
    a_busy = Signal()                              # a vector's sums are on their way
    pad_left = Signal(range(P + 1))
    pb = max(1, (P - 1).bit_length())
    vph = Signal(pb)                               # beat index mod P in the vector
    cap = Signal(pb)                               # the sum the next result is
    ncap = Signal(range(P + 1))                    # results still to collect
    slot_ok = (wcnt != 0) | ~busy.bit_select(wslot, 1)
    free = self.free_lanes
    lane_rdy = Const(1, 1) if free or not dots else dots[0].i.ready
    # the next vector streams in while B works on this one: only its sums wait (the
    # Dots stall until B is idle; free-running Dots: the pads wait for it)
    m.d.comb += self.i.ready.eq(slot_ok & ~a_busy & lane_rdy & ~ResetSignal())
    take = self.i.valid & self.i.ready
    cnt1, beat_bad, busy_clr = _buffer_in(m, f, xs, Cat(*[pay[x.name] for x in
                                                          self.in_fields[:-1]]),
                                           take, pay.last, NB, aw, wp, wcnt, wslot, busy)
    padding = pad_left != 0                        # A takes no beat meanwhile
    if self.wsum is not None:
        # (squares: the top of one square)
        top_r = _window_top(m, f, xs, take, wcnt == 0, window_headroom(
            self.max_d, self.max_d if self.squares else L))
    if ln:
        # the second pass: B's first program wrote the mean; the vector's beats
        # read again (r2: the read port's data), y = RNE_FX(x - mean) into the sums
        p2_act = Signal()
        p2_cnt = Signal(range(NB + 1))
        r2_valid, r2_last = Signal(name="r2_valid"), Signal(name="r2_last")
        mean_reg = Signal(FX.bits, reset_less=True)
    if free:
        # the Dots never stall: their results come out only for the pads, which
        # start when B is idle, and B stays idle until it has them all; the
        # operands registered here (no enable: nothing downstream stalls)
        pad = padding & b_idle
        l_valid, l_last = Signal(name="lane_valid"), Signal(name="lane_last")
        l_x = [Signal(B, name=f"lane_x{k}", reset_less=True) for k in range(L)]
        m.d.sync += [l_valid.eq((take | pad | r2_valid) if ln else (take | pad)),
                     l_last.eq(pad)]
        # the pads' zero select: each lane counts the pads down on a copy of
        # pad_left of its own (a copy's next value reads the copy itself, so the
        # synthesizer keeps them apart), read beside the lane's operand register;
        # the select fanned out from pad_left to every lane's operands was an 85F
        # critical path (docs/iternorm.md)
        pads_go = (take & pay.last) | (r2_valid & r2_last) if ln else take & pay.last
        for k in range(L):
            own = Signal.like(pad_left, name=f"lane_pads{k}")
            with m.If(pads_go):
                m.d.sync += own.eq(P)
            with m.Elif(pad):
                m.d.sync += own.eq(own - 1)
            src = Mux(r2_valid, rp2.data[k * B:(k + 1) * B], xs[k]) if ln else xs[k]
            m.d.sync += l_x[k].eq(Mux(own != 0, 0, src))
        if ln:
            # y = RNE_FX(x + c): c = -0 in pass 1 and the pads (x exactly, +0),
            # -mean in pass 2; the sums take y*1, then y*y. The beat's flags
            # beside the free-running adders: a delay line as deep as they are
            l_c = Signal(FX.bits, name="lane_c", reset_less=True)
            l_p2, l_first = Signal(name="lane_p2"), Signal(name="lane_first")
            m.d.sync += [l_c.eq(Mux(r2_valid, mean_reg ^ (1 << 33), FX_NEGZERO)),
                         l_p2.eq(r2_valid), l_first.eq(take & (wcnt == 0))]
            flags = Cat(l_last, l_p2, l_first)
            for j in range(self.ys[0].latency):
                nxt = Signal(3, name=f"lane_flags{j}")
                m.d.sync += nxt.eq(flags)
                flags = nxt
            y_last, y_p2, y_first = flags[0], flags[1], flags[2]
            for k, (y, d) in enumerate(zip(self.ys, dots)):
                r = y.o.payload.r
                m.d.comb += [y.i.valid.eq(l_valid), y.i.payload.a.eq(l_x[k]),
                             y.i.payload.c.eq(l_c), y.o.ready.eq(1),
                             d.i.valid.eq(y.o.valid), d.i.payload.a0.eq(r),
                             d.i.payload.b0.eq(Mux(y_p2, r, FX_ONE)),
                             d.i.payload.last.eq(y_last), d.o.ready.eq(1)]
            # x0 in FX (lane 0's y of a vector's first beat in pass 1): a
            # constant vector's mean, RNE_FX(x0 + 0)
            x0_fx = Signal(FX.bits, reset_less=True)
            with m.If(self.ys[0].o.valid & y_first):
                m.d.sync += x0_fx.eq(self.ys[0].o.payload.r)
        for k, d in enumerate(dots if not ln else ()):
            m.d.comb += [d.i.valid.eq(l_valid), d.i.payload.a0.eq(l_x[k]),
                         d.i.payload.b0.eq(l_x[k]), d.i.payload.last.eq(l_last),
                         d.o.ready.eq(1)]
    else:
        pad = padding & lane_rdy
        for k, d in enumerate(dots):
            # the pads' zeros selected by registers alone: the Dots' ready (B's idle
            # through their stall-all advance) stays out of their first stage's data
            m.d.comb += [d.i.valid.eq(take | pad),
                         d.i.payload.a0.eq(Mux(padding, 0, xs[k])),
                         d.i.payload.b0.eq(Mux(padding, 0, xs[k])),
                         d.i.payload.last.eq(pad),
                         d.o.ready.eq(b_idle)]
    vbad = Signal()
    h_bad, h_cnt, h_slot = (Signal(name="h_bad"), Signal(range(NB + 2), name="h_cnt"),
                            Signal(name="h_slot"))
    nb_ = Mux(wcnt == 0, beat_bad, vbad | beat_bad)
    with m.If(take):
        m.d.sync += [vbad.eq(nb_), vph.eq(Mux(pay.last, 0, _inc_mod(vph, P)))]
        with m.If(pay.last):
            # the P pads give the P sums, in the order (n + i) mod P
            m.d.sync += [h_bad.eq(nb_), h_cnt.eq(cnt1), h_slot.eq(wslot),
                         a_busy.eq(1), pad_left.eq(P), ncap.eq(P),
                         cap.eq(_inc_mod(vph, P))]
    if ln:
        # a constant vector (every element equal to the first, +0 == -0): the
        # verdict of its beats, compared with x0 as they come in
        cap0 = Signal(pb)                          # cap's start, again for pass 2
        x0_code = Signal(B, reset_less=True)
        vsame, h_same = Signal(name="vsame"), Signal(name="h_same")
        same = _same_as(xs, Mux(wcnt == 0, xs[0], x0_code), B)
        ns = Mux(wcnt == 0, same, vsame & same)
        with m.If(take):
            m.d.sync += vsame.eq(ns)
            with m.If(wcnt == 0):
                m.d.sync += x0_code.eq(xs[0])
            with m.If(pay.last):
                m.d.sync += [h_same.eq(ns), cap0.eq(_inc_mod(vph, P))]
        # pass 2's pads (they follow its last beat's data), and its P sums
        with m.If(r2_valid & r2_last):
            m.d.sync += [pad_left.eq(P), ncap.eq(P), cap.eq(cap0)]
    with m.If(pad):
        m.d.sync += pad_left.eq(pad_left - 1)
    # the sums that reach B: each lane's (t[j*L + k]), or with the lanes' tree its
    # root's, one partial sum a cycle (t[j])
    sums = [d.o for d in dots]
    if self.squares:
        # the second pass: p2_wait cycles after the last beat (the top is ready
        # then) the vector's beats are read again (rp2) into the window sum, which
        # squares them; s = its result
        go = take & pay.last
        for j in range(self.p2_wait):
            nxt = Signal(name=f"p2_go{j}")
            m.d.sync += nxt.eq(go)
            go = nxt
        p2_act = Signal()
        p2_cnt = Signal(range(NB + 2))
        p2_end = p2_act & (p2_cnt == h_cnt - 1)
        r2_valid, r2_last = Signal(name="r2_valid"), Signal(name="r2_last")
        m.d.comb += [rp2.addr.eq(Cat(p2_cnt[:aw], h_slot) if NB > 1 else h_slot),
                     rp2.en.eq(1)]
        m.d.sync += [r2_valid.eq(p2_act), r2_last.eq(p2_end)]
        # and not before B is idle: its result, s, starts B's program (B may still
        # wait for C to take the previous vector's scale)
        p2_pend = Signal()
        with m.If((go | p2_pend) & b_idle):
            m.d.sync += [p2_act.eq(1), p2_cnt.eq(0), p2_pend.eq(0)]
        with m.Elif(go):
            m.d.sync += p2_pend.eq(1)
        with m.If(p2_act):
            m.d.sync += [p2_cnt.eq(p2_cnt + 1), p2_act.eq(~p2_end)]
        # the read data land in a register first (the block RAM's clock-to-out in
        # front of the squares' unpacking was the critical path: 12.1 ns at 100 MHz)
        r3_valid, r3_last = Signal(name="r3_valid"), Signal(name="r3_last")
        r3_x = Signal(L * B, name="r3_x", reset_less=True)
        m.d.sync += [r3_valid.eq(r2_valid), r3_last.eq(r2_last),
                     r3_x.eq(rp2.data[:L * B])]
        ws = self.wsum
        hand = Signal()                            # s is in (t[0])
        m.d.comb += [ws.i.valid.eq(r3_valid), ws.i.payload.top.eq(top_r),
                     ws.i.payload.last.eq(r3_last), ws.o.ready.eq(1),
                     *[ws.i.payload[f"p{k}"].eq(r3_x[k * B:(k + 1) * B])
                       for k in range(L)],
                     hand.eq(ws.o.valid)]
        t = [Signal(FX.bits, name="t0", reset_less=True)]
        with m.If(ws.o.valid):
            m.d.sync += t[0].eq(ws.o.payload.r)
    if self.adds:
        # the tree's adders, in the pairwise order of B's program and the golden
        # model (base.pairwise_tree), run free like the Dots (results always taken)
        for k, ((x, y, dst), a) in enumerate(zip(pairwise_tree(L), self.adds)):
            # a landing register for the adder's operands: the nets from two lanes
            # (or two adders) across the device end at a register, not in the
            # adder's first stage (an 85F critical path, docs/iternorm.md)
            lv = Signal(name=f"tree{k}_in_valid")
            la, lc = (Signal(FX.bits, name=f"tree{k}_in_{n}", reset_less=True)
                      for n in "ac")
            m.d.sync += [lv.eq(sums[x].valid), la.eq(sums[x].payload.r),
                         lc.eq(sums[y].payload.r)]
            m.d.comb += [a.i.valid.eq(lv), a.i.payload.a.eq(la),
                         a.i.payload.c.eq(lc), a.o.ready.eq(1)]
            sums[dst] = a.o
        sums = sums[:1]
    W = len(sums)
    got = sums[0].valid & (Const(1, 1) if free else b_idle) if sums else None
    if self.window:
        hand = Signal()                            # s is in (t[0])
        with m.If(got):                            # (the rows' order is immaterial)
            m.d.sync += ncap.eq(ncap - 1)
        # the P rows of the lanes' sums into the window sum (after the top is ready:
        # ws_wait registers), s = its result
        rv, rl, rows = got, got & (ncap == 1), [x.payload.r for x in sums]
        for j in range(self.ws_wait):
            nv, nl = Signal(name=f"ws_wait{j}_valid"), Signal(name=f"ws_wait{j}_last")
            nr = [Signal(FX.bits, name=f"ws_wait{j}_p{k}", reset_less=True)
                  for k in range(W)]
            m.d.sync += [nv.eq(rv), nl.eq(rl), *[a.eq(b) for a, b in zip(nr, rows)]]
            rv, rl, rows = nv, nl, nr
        ws = self.wsum
        m.d.comb += [ws.i.valid.eq(rv), ws.i.payload.top.eq(top_r),
                     ws.i.payload.last.eq(rl), ws.o.ready.eq(1),
                     *[ws.i.payload[f"p{k}"].eq(rows[k]) for k in range(W)],
                     hand.eq(ws.o.valid)]
        t = [Signal(FX.bits, name="t0", reset_less=True)]
        with m.If(ws.o.valid):
            m.d.sync += t[0].eq(ws.o.payload.r)
    elif not self.squares:                          # (squares: s and t[0] above)
        # (the data registers below need no reset: each is written before it is
        # read, every read qualified by a valid or a step of B's program; fewer
        # loads on rst)
        t = [Signal(FX.bits, name=f"t{i}", reset_less=True) for i in range(P * W)]
        hand = Signal()                            # the last sum is in
        m.d.comb += hand.eq(got & (ncap == 1))
        with m.If(got):
            m.d.sync += [ncap.eq(ncap - 1), cap.eq(_inc_mod(cap, P))]
            for j in range(P):
                with m.If(cap == j):
                    m.d.sync += [t[j * W + k].eq(sums[k].payload.r) for k in range(W)]
    h_err = (h_cnt < self.n_min) | (h_cnt > NB)
    if ln:
        a_p2 = Signal()                            # the sums on their way: pass 2's
        hand1, hand2 = hand & ~a_p2, hand & a_p2
        with m.If(hand2 | (hand1 & h_err)):        # (a bad length: no second pass)
            m.d.sync += a_busy.eq(0)
        with m.If(hand2):
            m.d.sync += a_p2.eq(0)
    else:
        hand1 = hand
        with m.If(hand):
            m.d.sync += a_busy.eq(0)

    # ---- B: the static program on one FX FMA ------------------------------------------
    s_reg, a_reg, u_reg, v_reg, c_reg = (Signal(FX.bits, name=n_, reset_less=True)
                                         for n_ in ("s_reg", "a_reg", "u_reg", "v_reg",
                                                    "c_reg"))
    b_bad, b_err, b_slot = (Signal(name="b_bad"), Signal(name="b_err"),
                            Signal(name="b_slot"))
    b_cnt = Signal(range(NB + 2))
    st = Signal(range(max(self.t_fin, self.t_fin1) + 2))
    b_run, b_done = (Signal(name="b_run"), Signal(name="b_done"))
    b_ph = Signal(name="b_ph") if ln else None      # layernorm: 0 = the mean's
    m.d.comb += b_idle.eq(~b_run & ~b_done)
    with m.If(hand1):
        m.d.sync += [b_bad.eq(h_bad), b_err.eq(h_err), b_slot.eq(h_slot),
                     b_cnt.eq(h_cnt), b_run.eq(~h_err), b_done.eq(h_err), st.eq(0)]
        if ln:
            m.d.sync += b_ph.eq(0)
    if ln:
        with m.Elif(hand2):
            m.d.sync += [b_run.eq(1), b_ph.eq(1), st.eq(0)]
    with m.Elif(b_run):
        m.d.sync += st.eq(st + 1)
    fin = b_run & (st == self.t_fin) & b_ph if ln else b_run & (st == self.t_fin)
    # layernorm: the mean written, B waits (idle: the second pass's pads go) while
    # A reads the vector again
    fin1 = b_run & ~b_ph & (st == self.t_fin1) if ln else None
    j_valid = Signal()
    push = b_done & ~j_valid
    with m.If(fin):
        m.d.sync += [b_run.eq(0), b_done.eq(1)]
    if ln:
        with m.Elif(fin1):
            m.d.sync += b_run.eq(0)
    with m.Elif(push):
        m.d.sync += b_done.eq(0)
    if ln:
        p2_end = p2_act & (p2_cnt == b_cnt - 1)
        m.d.comb += [rp2.addr.eq(Cat(p2_cnt[:aw], b_slot) if NB > 1 else b_slot),
                     rp2.en.eq(1)]
        m.d.sync += [r2_valid.eq(p2_act), r2_last.eq(p2_end)]
        with m.If(fin1):
            m.d.sync += [p2_act.eq(1), p2_cnt.eq(0), a_p2.eq(1)]
        with m.Elif(p2_act):
            m.d.sync += [p2_cnt.eq(p2_cnt + 1), p2_act.eq(~p2_end)]

    # the start, from s = t[0]
    s_src = t[0]
    a0 = None if self.fuse else start_a0(m, s_src, self.start)   # (fused: NewtonStep's)
    sqrt_code, inv_code = _count_codes(m, b_cnt, self.n_min, NB, L, ln)
    # lam * v: v's exponent field lowered by -log2(lam) (v == 0 kept); exact, since
    # a nonzero v = RNE(1 - s*u) is at least 2**-48 (docs/iternorm.md)
    lamv = _lam_v(v_reg, self.lam_log2)
    srcs = {"one": Const(FX_ONE, FX.bits), "negzero": Const(FX_NEGZERO, FX.bits),
            "negs": s_reg ^ (1 << 33), "a": a_reg, "u": u_reg, "lamv": lamv,
            "sqrt": sqrt_code}
    dsts = {"u": u_reg, "v": v_reg, "a": a_reg, "c": c_reg}
    # the program's decode registered a cycle ahead (base.step_decoder)
    if ln:
        progs = [(self.program, step_decoder(m, st, hand2, b_run & b_ph)),
                 (self.program1, step_decoder(m, st, hand1, b_run & ~b_ph))]
        srcs["invd"] = inv_code
    else:
        progs = [(self.program, step_decoder(m, st, hand, b_run))]

    Lf = self.prog_lf                              # with the operand registers
    Ln = self.newton.latency if self.newton else 0
    opsel = [{}, {}, {}]                           # operand -> (program, source) -> steps
    writes = {}                                    # (program, dst) -> {step: unit}
    fused = []                                     # the fused unit's issue steps
    for pi, (program, at) in enumerate(progs):
        for when, op in program:
            if op == "start":
                with m.If(at([when], "b_start")):
                    m.d.sync += s_reg.eq(s_src)
                    if not self.fuse:
                        m.d.sync += a_reg.eq(a0)
                    if self.u_from_start:
                        m.d.sync += u_reg.eq(start_u0(m, s_src, self.start))
                continue
            if op == "fused":
                fused.append(when)
                writes.setdefault((pi, "a"), {})[when + Ln] = "newton"
                continue
            for pos in range(3):
                opsel[pos].setdefault((pi, op[pos]), []).append(when)
            writes.setdefault((pi, op[3]), {})[when + Lf] = "fma"
    results = {}
    if self.upd is not None:
        results["fma"] = upd.o.payload.r
    if self.newton is not None:
        # s from its register t[0] (the start looked up inside), or with the window
        # sum from its output in the cycle that starts the program (step -1)
        nst = self.newton
        if self.fused_early:
            assert fused == [-1]
            m.d.comb += [nst.i.valid.eq(hand), nst.i.payload.s.eq(self.wsum.o.payload.r)]
        else:
            m.d.comb += [nst.i.valid.eq(progs[0][1](fused, "b_fused")),
                         nst.i.payload.s.eq(s_src)]
        m.d.comb += nst.o.ready.eq(1)
        results["newton"] = nst.o.payload.r
    if self.upd is not None:
        issue = progs[0][1]([w for w, op in progs[0][0]
                             if op not in ("start", "fused")], "b_issue")
        for program, at in progs[1:]:
            issue = issue | at([w for w, op in program], "b_issue1")
        # a source read in the cycle a unit writes it is forwarded from its output
        operands = []
        for pos, srcs_ in enumerate(opsel):
            terms = []
            for (pi, src), whens in srcs_.items():
                at = progs[pi][1]
                name = (f"b_sel{'abc'[pos]}_{src[0]}{src[1]}" if isinstance(src, tuple)
                        else f"b_sel{'abc'[pos]}_{src}") + ("_1" if pi else "")
                wr = writes.get((pi, "v" if src == "lamv" else src), {})
                reg = [w for w in whens if w not in wr]
                val = t[src[1]] if isinstance(src, tuple) else srcs[src]
                if reg:
                    terms.append(Mux(at(reg, name), val, 0))
                for unit in sorted(set(wr[w] for w in whens if w in wr)):
                    fwd = [w for w in whens if wr.get(w) == unit]
                    res = results[unit]
                    v_ = _lam_v(res, self.lam_log2) if src == "lamv" else res
                    terms.append(Mux(at(fwd, name + "_fwd" + ("_n" if unit == "newton"
                                                             else "")), v_, 0))
            v = terms[0]
            for x in terms[1:]:
                v = v | x                           # one-hot selects: an AND-OR
            operands.append(v)
        ua_r, ub_r, uc_r = (Signal(FX.bits, name=f"upd_{x}_r", reset_less=True)
                            for x in "abc")
        issue_r = Signal()
        m.d.sync += [ua_r.eq(operands[0]), ub_r.eq(operands[1]), uc_r.eq(operands[2]),
                     issue_r.eq(issue)]
        m.d.comb += [upd.i.valid.eq(issue_r), upd.i.payload.a.eq(ua_r),
                     upd.i.payload.b.eq(ub_r), upd.i.payload.c.eq(uc_r),
                     upd.o.ready.eq(1)]
    for (pi, dst), steps in writes.items():
        for unit in sorted(set(steps.values())):
            whens = [w for w, u_ in steps.items() if u_ == unit]
            res = results[unit]
            if dst == "mean":
                # a constant vector's mean: RNE_FX(x0 + 0), x0 (+0 for a zero vector)
                reg = mean_reg
                val = Mux(h_same, Mux(x0_fx[:33] == 0, 0, x0_fx), res)
            else:
                reg = t[dst[1]] if isinstance(dst, tuple) else dsts[dst]
                val = res
            name = (f"b_wr_{dst[0]}{dst[1]}" if isinstance(dst, tuple)
                    else f"b_wr_{dst}") + ("_n" if unit == "newton" else "")
            with m.If(progs[pi][1](whens, name + ("_1" if pi else ""))):
                m.d.sync += reg.eq(val)
    c_fin = a_reg if self.mode == "l2" else c_reg

    # job register B -> C
    j_c, j_bad, j_zero, j_err, j_slot = (Signal(FX.bits, name="j_c", reset_less=True),
                                         Signal(name="j_bad"), Signal(name="j_zero"),
                                         Signal(name="j_err"), Signal(name="j_slot"))
    j_cnt = Signal(range(NB + 2))
    with m.If(push):
        m.d.sync += [j_c.eq(c_fin), j_bad.eq(b_bad), j_zero.eq(s_reg[:33] == 0),
                     j_err.eq(b_err), j_slot.eq(b_slot), j_cnt.eq(b_cnt)]
    if ln:
        # the mean travels with the job (the next vector's first program may write
        # mean_reg while C still reads this one), to C's x - mean
        j_mean, c_mean, r_mean, q_negmean = (Signal(FX.bits, name=n_, reset_less=True)
                                             for n_ in ("j_mean", "c_mean", "r_mean",
                                                        "q_negmean"))
        with m.If(push):
            m.d.sync += j_mean.eq(mean_reg)

    # ---- C: read the buffer, the output multipliers, emit -----------------------------
    c_act = Signal()
    c_cnt = Signal(range(NB + 1))
    c_n = Signal(range(NB + 2))
    c_c, c_bad, c_zero, c_err, c_slot = (Signal(FX.bits, name="c_c", reset_less=True),
                                         Signal(name="c_bad"), Signal(name="c_zero"),
                                         Signal(name="c_err"), Signal(name="c_slot"))
    c_take = ~c_act & j_valid
    m.d.sync += j_valid.eq((j_valid & ~c_take) | push)
    with m.If(c_take):
        m.d.sync += [c_n.eq(j_cnt), c_c.eq(j_c), c_bad.eq(j_bad), c_zero.eq(j_zero),
                     c_err.eq(j_err), c_slot.eq(j_slot)]
    is_last = c_err | (c_cnt == c_n - 1)
    r_valid, r_last, r_bad, r_zero, r_err = (Signal(name="r_valid"),
                                             Signal(name="r_last"),
                                             Signal(name="r_bad"),
                                             Signal(name="r_zero"),
                                             Signal(name="r_err"))
    r_c = Signal(FX.bits, reset_less=True)
    # stage Q: the memory's data registered before the multipliers (a block RAM's output
    # is slow: it was the critical path into their unpacking)
    q_valid, q_last, q_bad, q_err = (Signal(name="q_valid"), Signal(name="q_last"),
                                     Signal(name="q_bad"), Signal(name="q_err"))
    q_c = Signal(FX.bits, reset_less=True)
    q_x = Signal(self.buf_width, reset_less=True)
    heads = self.ys_out or outs                    # the units the beats enter
    q_adv = ~q_valid | heads[0].i.ready
    advance = ~r_valid | q_adv
    with m.If(q_adv):
        m.d.sync += [q_valid.eq(r_valid), q_last.eq(r_last), q_bad.eq(r_bad),
                     q_err.eq(r_err), q_c.eq(Mux(r_zero, 0, r_c)), q_x.eq(rp.data)]
    m.d.comb += [rp.addr.eq(Cat(c_cnt[:aw], c_slot) if NB > 1 else c_slot),
                 rp.en.eq(advance)]
    with m.If(advance):
        m.d.sync += [r_valid.eq(c_act), r_last.eq(is_last), r_c.eq(c_c),
                     r_bad.eq(c_bad), r_zero.eq(c_zero), r_err.eq(c_err)]
    if ln:
        with m.If(c_take):
            m.d.sync += c_mean.eq(j_mean)
        with m.If(advance):
            m.d.sync += r_mean.eq(c_mean)
        with m.If(q_adv):
            m.d.sync += q_negmean.eq(r_mean ^ (1 << 33))
    go = advance & c_act
    done = go & is_last
    m.d.sync += [c_act.eq(Mux(c_take, 1, c_act & ~done)),
                 c_cnt.eq(Mux(c_take, 0, Mux(go, c_cnt + 1, c_cnt)))]
    m.d.comb += busy_clr.eq(Mux(done, Mux(c_slot, 0b10, 0b01), 0))
    gbw, gb_in = q_x[L * B:], q_valid & outs[0].i.ready
    if ln:
        # y = RNE_FX(x - mean) first (the third pass); the scale (and gamma and
        # beta) wait beside those adders in a FIFO as deep as they hold beats
        ys = self.ys_out
        cs = _beside(m, "cs", FX.bits + (2 * L * B if self.affine else 0), ys[0].latency)
        m.d.comb += [cs.w_en.eq(q_valid & ys[0].i.ready),
                     cs.w_data.eq(Cat(q_c, q_x[L * B:]) if self.affine else q_c),
                     cs.r_en.eq(ys[0].o.valid & outs[0].i.ready)]
        for k, (yc, o) in enumerate(zip(ys, outs)):
            m.d.comb += [yc.i.valid.eq(q_valid), yc.i.payload.a.eq(q_x[k * B:(k + 1) * B]),
                         yc.i.payload.c.eq(q_negmean), yc.o.ready.eq(o.i.ready),
                         o.i.valid.eq(yc.o.valid), o.i.payload.a.eq(cs.r_data[:FX.bits]),
                         o.i.payload.b.eq(yc.o.payload.r)]
        gbw, gb_in = cs.r_data[FX.bits:], ys[0].o.valid & outs[0].i.ready
    else:
        for k, o in enumerate(outs):
            m.d.comb += [o.i.valid.eq(q_valid), o.i.payload.a.eq(q_c),
                         o.i.payload.b.eq(q_x[k * B:(k + 1) * B])]
    ends = outs                                    # the units the results leave
    if self.affine:
        # RNE_fmt(z*g + b) after each multiplier, z = RNE_FX(c*x); gamma and beta
        # wait beside the multipliers in a FIFO as deep as they hold beats
        gb = _beside(m, "gb", 2 * L * B, outs[0].latency)
        ends = self.affs
        m.d.comb += [gb.w_en.eq(gb_in), gb.w_data.eq(gbw),
                     gb.r_en.eq(outs[0].o.valid & ends[0].i.ready)]
        for k, (o, a) in enumerate(zip(outs, ends)):
            m.submodules[f"aff{k}"] = a
            m.d.comb += [a.i.valid.eq(o.o.valid), a.i.payload.a.eq(o.o.payload.r),
                         a.i.payload.b.eq(gb.r_data[k * B:(k + 1) * B]),
                         a.i.payload.c.eq(gb.r_data[(L + k) * B:(L + k + 1) * B]),
                         o.o.ready.eq(a.i.ready)]
    for e in ends:
        m.d.comb += e.o.ready.eq(self.o.ready)
    # the beat's flags beside the multipliers: a FIFO as deep as they hold beats
    fl = _beside(m, "flags", 3, self.const_out)
    m.d.comb += [fl.w_en.eq(q_valid & heads[0].i.ready),
                 fl.w_data.eq(Cat(q_last, q_bad, q_err)),
                 fl.r_en.eq(ends[0].o.valid & self.o.ready)]
    o_last, o_bad, o_err = fl.r_data[0], fl.r_data[1], fl.r_data[2]
    m.d.comb += [self.o.valid.eq(ends[0].o.valid), self.o.payload.last.eq(o_last),
                 self.o.payload.err.eq(o_err)]
    for k, e in enumerate(ends):
        m.d.comb += self.o.payload[f"y{k}"].eq(
            Mux(o_err, 0, Mux(o_bad, f.nan_code, e.o.payload.r)))
    return m


_Norm._elaborate_fast = _elaborate_fast


def _window_top(m, f, xs, take, first, headroom):
    """The window sum's top (golden ``window_top``): each accepted element's
    exponent key (``floor(log2|x|) + bias + man_bits``: the exponent field plus
    ``man_bits``, or a subnormal mantissa's bit length, 0 for a zero;
    ``golden.exp_key``), the largest of the beat by a tree of compares (a register a
    level), the largest of the vector by a running max (restarted by its first
    beat), then ``2*(key - bias - man_bits) + headroom`` (golden
    ``window_headroom``), registered: valid ``log2(lanes) + 3`` cycles after the
    vector's last beat is taken, until its next first beat."""
    M, E = f.man_bits, f.exp_bits
    kw = (f.max_mag_code >> M).bit_length() + 1
    keys = []
    for k, x in enumerate(xs):
        ef, mf = x[M:M + E], x[:M]
        _, lz = lzc(mf)
        key = Signal(kw, name=f"key{k}", reset_less=True)
        m.d.sync += key.eq(Mux(ef != 0, ef + M, Mux(mf == 0, 0, M - lz)))
        keys.append(key)
    kv, kf = Signal(name="key_valid"), Signal(name="key_first")
    m.d.sync += [kv.eq(take), kf.eq(take & first)]
    j = 0
    while len(keys) > 1:
        nxt = [Signal(kw, name=f"key_t{j}_{i}", reset_less=True)
               for i in range(len(keys) // 2)]
        for i, n in enumerate(nxt):
            a, b = keys[2 * i], keys[2 * i + 1]
            m.d.sync += n.eq(Mux(a > b, a, b))
        nv, nf = Signal(name=f"key_t{j}_valid"), Signal(name=f"key_t{j}_first")
        m.d.sync += [nv.eq(kv), nf.eq(kf)]
        keys, kv, kf, j = nxt, nv, nf, j + 1
    vmax = Signal(kw, name="key_max", reset_less=True)
    with m.If(kv):
        m.d.sync += vmax.eq(Mux(kf | (keys[0] > vmax), keys[0], vmax))
    top = Signal(TOP_BITS, name="ws_top", reset_less=True)
    m.d.sync += top.eq((vmax << 1) + (headroom - 2 * (f.bias + M)))
    return top


def _same_as(xs, ref, B):
    """Whether every element code of a beat equals ``ref`` (+0 equal to -0): a
    constant vector's verdict, beat by beat."""
    ref_zero = ref[:B - 1] == 0
    return Cat(*[(x[:B - 1] == ref[:B - 1]) & ((x[B - 1] == ref[B - 1]) | ref_zero)
                 for x in xs]).all()


def _count_codes(m, cnt, n_min, NB, L, inv):
    """FX codes from a vector's beat count ``cnt`` (``d = cnt * L``): RN(sqrt(d)),
    the scale of rmsnorm and layernorm, and with ``inv`` RN(1/d), layernorm's mean."""
    sqrt_code = Signal(FX.bits, name="sqrt_code")
    inv_code = Signal(FX.bits, name="inv_code")
    with m.Switch(cnt):
        for n in range(n_min, NB + 1):
            with m.Case(n):
                m.d.comb += sqrt_code.eq(_fx_code(sqrt_rn(n * L)))
                if inv:
                    m.d.comb += inv_code.eq(_fx_code(inv_rn(n * L)))
    return sqrt_code, inv_code


def _beside(m, name, width, latency):
    """A FIFO for what travels beside a pipeline ``latency`` cycles deep (written as
    a beat enters it, read as the beat leaves): as deep as it holds beats. The
    buffered FIFO (registered read) hands an entry out two cycles after its write,
    so a one-cycle pipeline (a low ``fmax``) takes the unbuffered one."""
    cls = SyncFIFOBuffered if latency >= 2 else SyncFIFO
    fifo = m.submodules[name] = cls(width=width, depth=latency + 1)
    return fifo


def _mux_fixed(sel, a, b):
    """``a`` if ``sel`` else ``b``, field by field (two :class:`.fp.Fixed`)."""
    return Fixed(*[Mux(sel, getattr(a, fld), getattr(b, fld))
                   for fld in ("sign", "mag", "exp0", "is_zero", "is_inf", "is_nan")])


def _reg_fixed(m, p, name):
    """Register every field of a :class:`.fp.Fixed` (no enable: the A stage never
    stalls once a beat is accepted)."""
    regs = {}
    for fld in ("sign", "mag", "exp0", "is_zero", "is_inf", "is_nan"):
        v = Value.cast(getattr(p, fld))
        r = Signal(v.shape(), name=f"{name}_{fld}")
        m.d.sync += r.eq(v)
        regs[fld] = r
    return Fixed(**regs)


class IterNorm(_Norm):
    """Iterative L2 / RMS normalization, started from ``2**-ceil(E/2)`` (module doc).

    Parameters
    ----------
    fmt : str
        ``bf16`` or ``fp32`` (input, output, gamma, beta).
    lanes : int
        Elements per beat, a power of two in 1..64.
    max_d : int
        Largest vector (power of two, 64..65536); the buffer holds two of them.
    mode : str
        ``l2`` (``a_K*x``), ``rmsnorm`` (``sqrt(d)*a_K*x``) or ``layernorm``
        (``sqrt(d)*a_K*(x - mean)``, three buffer passes).
    iters : int
        Newton updates K (1..64).
    lam : float
        Update step, a power of two (default 1/2, Newton's).
    affine : bool
        Stream gamma and beta beside x; output ``RNE(RNE_FX(c*y)*g + b)``
        (``y = x``, or ``RNE_FX(x - mean)`` in layernorm).
    start : str
        ``exp`` (default: ``2**-ceil(E/2)``, exponent arithmetic only) or ``rom``
        (``2**-q`` times a 128-entry table on E's parity and the leading 6 fraction
        bits of s, within ``2**-8`` of ``1/sqrt(s)``: bf16 at its rounding floor
        after one update, fp32 after two; ``golden.iternorm(..., start="rom")``).
    """
    start = "iter"
    start_choices = ITER_STARTS
    core_name = "iternorm"


class FisrNorm(_Norm):
    """The baseline: :class:`IterNorm` started from the fast inverse square root
    (0x5f3759df on the fp32 bits of s); same parameters."""
    start = "fisr"
    start_name = "fast inverse square root"
    core_name = "fisrnorm"
