"""The examples/ designs run: lpcores cores as Amaranth submodules of a user's design,
simulated with Amaranth's simulator against the golden models, and converted with the
user's design into one Verilog file."""

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_fma_in_a_user_design(tmp_path, capsys):
    ex = _load("fma_in_design")
    (a, b, c), got, expected = ex.run(n=120, seed=4)
    assert len(got) == 120 and np.array_equal(got, expected)
    out = tmp_path / "design.v"
    assert ex.main(["--n", "20", "--verilog", str(out)]) == 0
    text = out.read_text()
    # the user's top and the FMA inside it, under the user's hierarchy name
    assert "module scaled_accumulator(" in text
    assert "module \\scaled_accumulator.fma " in text
    assert "20 FMAs through the user's design: 20 match" in capsys.readouterr().out


def test_mx_matvec_from_mxquant_and_mxdot(tmp_path):
    ex = _load("mx_matvec")
    # 10 rows: a group of 8 interleaved contexts, then 2 rows padded to a group
    got, expected, exact = ex.run(rows=10, blocks=2, seed=5)
    assert len(got) == 10 and np.array_equal(got, expected)
    from lpcores import golden
    vals = golden.decode(got, "fp32")
    # MXFP8 (e4m3) quantization of both operands: a few percent, not more
    assert np.all(np.abs(vals - exact) <= 0.1 * np.abs(exact).max())
    out = tmp_path / "mv.v"
    assert ex.main(["--rows", "1", "--blocks", "1", "--verilog", str(out)]) == 0
    assert "module mx_matvec(" in out.read_text()
