"""bench/mx_compat.py: golden.mx against microxcaling and torchao (docs/mx-compat.md).

The default run needs no torch: it checks the script's own pieces (its exact
statements of torchao's scale rules agree with golden.mx wherever they pick the same
scale and have the property their rule names; its block sets hit what they are
built to hit; its bf16 rounding is ml_dtypes'; bad input is one sentence).

``pytest -m mxcompat`` runs the libraries (torch, torchao, and a microxcaling
checkout named by ``$MICROXCALING``; skipped with one line when any is missing):
every documented example block gives the documented codes, every differing block
has a named cause, and the page's tables are what the script measures today.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from lpcores.golden.mx import EMAX_ELEM, mx_quantize

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import mx_compat as M  # noqa: E402

FLOAT_FORMATS = ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1")


def _script(*args):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "mx_compat.py"), *args],
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------------
# default run: no torch
# --------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--formats", "e9m9"], "unknown format 'e9m9'"),
    (["--configs", "mx-nearest,ao-round"], "unknown configuration 'ao-round'"),
    (["--dtypes", "fp64"], "unknown dtype 'fp64'"),
    (["--blocks", "0"], "--blocks must be at least 1"),
    (["--blocks", "many"], "invalid int value"),
    (["--microxcaling", "/nonexistent/mx", "--configs", "mx-even"], None),
])
def test_bad_input_is_one_sentence(args, words):
    r = _script(*args)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("mx_compat: ")
    if words:
        assert words in err
    else:       # no torch here: that is said first; with torch, the path is
        assert "torch is not importable" in err or "has no mx/ package" in err


def test_missing_library_is_one_sentence():
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here; this checks the message without it")
    r = _script("--configs", "ao-floor")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("mx_compat: torch is not importable")
    assert len(r.stderr.strip().splitlines()) == 1


def test_bf16_rounding_is_ml_dtypes():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)
    bits[:4] = [0x00000001, 0x80008000, 0x7F7FFFFF, 0x3F808000]   # tiny, tie, top, tie
    x = bits.view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    got = M.to_bf16_values(x)
    same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
    assert same.all(), x[~same][:5]


def _finite_sets(fmt, n=256):
    for name, (_, x) in M.block_sets(fmt, n, seed=7).items():
        x = x[np.isfinite(x).all(axis=1)]
        if len(x):
            yield name, x


@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
def test_floor_rule_is_golden(fmt):
    # the script's FLOOR statement (exact float64 frexp + codec.encode of x / 2^shared)
    # and golden.mx (integer significands + encode_exact) are two computations of
    # SPEC §4.3's rule: they must agree on every code
    for name, x in _finite_sets(fmt):
        gs, gc = mx_quantize(x, fmt, "rne")
        rs, rc = M.rule_quantize(x, fmt, "FLOOR")
        assert np.array_equal(gs, rs), name
        assert np.array_equal(gc, rc), name


@pytest.mark.parametrize("fmt", FLOAT_FORMATS)
@pytest.mark.parametrize("mode", ["CEIL", "EVEN", "RCEIL"])
def test_mode_rules(fmt, mode):
    f = M.get_format(fmt)
    emax = EMAX_ELEM[fmt]
    same_scale = 0
    for name, x in _finite_sets(fmt):
        a = np.abs(x.astype(np.float64)).max(axis=1)
        sh = M.rule_shared(x, fmt, mode)
        free = (sh > -127) & (sh < 127) & (a > 0)      # not clamped
        a, s = a[free], sh[free]
        if mode == "CEIL":      # 2^(s+emax-1) < max <= 2^(s+emax)
            assert np.all(a <= np.ldexp(1.0, s + emax)) and np.all(a > np.ldexp(1.0, s + emax - 1)), name
        elif mode == "RCEIL":   # max_pos 2^(s-1) < max <= max_pos 2^s
            assert np.all(a <= f.max_value * np.ldexp(1.0, s)), name
            assert np.all(a > f.max_value * np.ldexp(1.0, s - 1)), name
        else:                   # EVEN: the scale is floor's, or one more exactly when
            fl = np.frexp(a)[1] - 1 - emax     # max rounds up to 2^(floor+1) at mbits
            top = np.ldexp(2.0 - 2.0 ** -(f.man_bits + 1), fl + emax)
            assert np.array_equal(s, np.where(a >= top, fl + 1, fl)), name
        # where the mode picks OCP's scale, its elements are golden's
        gs, gc = mx_quantize(x, fmt, "rne")
        rs, rc = M.rule_quantize(x, fmt, mode)
        eq = gs == rs
        same_scale += eq.sum()
        assert np.array_equal(gc[eq], rc[eq]), name
    assert same_scale > 0


@pytest.mark.parametrize("fmt", M.FORMATS)
def test_block_sets_hit_their_targets(fmt):
    sets = M.block_sets(fmt, 256, seed=5)
    # ties: RNE and ties-away disagree on most blocks (every element but one is a
    # midpoint of the element grid); one fp32 ulp off the midpoints they never do
    x = sets["ties"][1]
    assert (mx_quantize(x, fmt, "rne")[1] != mx_quantize(x, fmt, "away")[1]).any(axis=1).mean() > 0.9
    x = sets["ties±ulp"][1]
    assert np.array_equal(mx_quantize(x, fmt, "rne")[1], mx_quantize(x, fmt, "away")[1])
    # max just below / exactly / just above a power of two
    for name, want in (("max<2^k", -1), ("max=2^k", 0), ("max>2^k", 1)):
        a = np.abs(sets[name][1].astype(np.float64)).max(axis=1)
        m = np.frexp(a)[0]
        assert np.all((m > 0.5) if want > 0 else (m == 0.5) if want == 0 else (m > 0.99)), name
    # saturate: some element above max_elem * 2^shared in every block
    x = sets["saturate"][1]
    s, c = mx_quantize(x, fmt, "rne")
    y = np.abs(x.astype(np.float64)) * np.ldexp(1.0, 127 - s.astype(np.int64))[:, None]
    assert np.all((y > M.elem_values(fmt)[-1]).any(axis=1))
    # tiny: the scale clamps at code 0 in some blocks, not in others
    s = mx_quantize(sets["tiny"][1], fmt, "rne")[0]
    assert (s == 0).any() and (s > 0).any()
    # signed zeros, NaN/Inf, subnormals are there
    assert (np.signbit(sets["signed-zero"][1]) & (sets["signed-zero"][1] == 0)).any()
    x = sets["nan-inf"][1]
    assert np.isnan(x).any(axis=1).sum() and np.isposinf(x).any() and np.isneginf(x).any()
    x = sets["subnormal"][1]
    assert ((x != 0) & (np.abs(x) < np.finfo(np.float32).tiny)).mean() > 0.5


# --------------------------------------------------------------------------------
# -m mxcompat: the libraries themselves
# --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def libs():
    for name in ("torch", "torchao"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed (pip install torch torchao to run these)")
    path = os.environ.get("MICROXCALING")
    if not path or not os.path.isdir(os.path.join(path, "mx")):
        pytest.skip("microxcaling not found: set MICROXCALING to a checkout of "
                    "github.com/microsoft/microxcaling")
    return M.load_microxcaling(path), M.load_torchao()


@pytest.mark.mxcompat
@pytest.mark.parametrize("ex", M.EXAMPLES, ids=lambda e: f"{e[0]}-{e[1]}-{e[2]}")
def test_examples_as_documented(libs, ex):
    ours, theirs, rule, _ = M.run_example(ex, *libs)
    assert M.example_as_documented(ex, ours, theirs, rule), (ours, theirs, rule)


@pytest.mark.mxcompat
def test_every_difference_has_a_cause(libs):
    rows = M.measure(list(M.CONFIGS), list(M.FORMATS), ["fp32", "bf16"], 150, 11, *libs)
    for r in rows:
        assert r.get("error") in (None, "unsupported"), r
        assert "unexplained" not in r.get("causes", {}), r
        assert "unexplained" not in r.get("rule_causes", {}), r


@pytest.mark.mxcompat
def test_tie_mapping(libs):
    # microxcaling's "nearest" is ties-away and "even" is RNE: on the ties blocks each
    # matches its counterpart and not the other one
    mx_ops, _ = libs
    x = M.block_sets("e4m3", 256, seed=2)["ties"][1]
    for rnd, ours, other in (("nearest", "away", "rne"), ("even", "rne", "away")):
        s, c, _ = M.run_microxcaling(mx_ops, x, "e4m3", rnd, "fp32")
        assert np.array_equal(s, mx_quantize(x, "e4m3", ours)[0])
        assert np.array_equal(c, mx_quantize(x, "e4m3", ours)[1])
        assert (c != mx_quantize(x, "e4m3", other)[1]).any(axis=1).mean() > 0.9


@pytest.mark.mxcompat
def test_page_tables_are_current(libs):
    page = (ROOT / "docs" / "mx-compat.md").read_text()
    m = re.search(r"<!-- mx_compat tables -->\n(.*?)<!-- /mx_compat tables -->", page, re.S)
    assert m, "docs/mx-compat.md lost its generated-tables markers"
    documented = m.group(1)
    vline = re.search(r"Measured with (.*?); command", documented).group(1)
    here = M.versions_line(os.environ["MICROXCALING"])
    if vline != here:
        pytest.skip(f"page measured with {vline}; this environment has {here}")
    rows = M.measure(list(M.CONFIGS), list(M.FORMATS), list(M.DTYPES), 2000, 1, *libs)
    text = M.markdown(rows, here, "python bench/mx_compat.py --microxcaling DIR")
    assert documented.strip() == text.strip()
