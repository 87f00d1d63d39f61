"""The results page cannot drift from the code: every registered core is on it, and
each default configuration, synthesized again now for ``generic``, has no latches and
the LUT count the page claims (within 5 %, for tool-version noise)."""

import csv
import json
from pathlib import Path

import pytest

from lpcores.cores import CORES
from lpcores.hdl import generate
from lpcores.synth import run_synth

pytestmark = pytest.mark.synth

DOCS = Path(__file__).resolve().parent.parent / "docs"
CSV = DOCS / "results" / "results.csv"


def _default_rows():
    rows = list(csv.DictReader(CSV.open()))
    return [r for r in rows if r["section"] == "0" and r["target"] == "generic"]


def _params(row):
    spec = CORES[row["core"]]
    out = {}
    for o in spec.options:
        v = row.get(o.dest, "")
        if v == "":
            continue
        out[o.dest] = (v == "True") if o.boolean or o.type is bool else o.type(v)
    return out


def test_every_core_is_on_the_page():
    cores = {r["core"] for r in _default_rows()}
    missing = sorted(set(CORES) - cores)
    assert not missing, f"cores missing from docs/results.md's first section: {missing}"
    page = (DOCS / "results.md").read_text()
    assert "**Incomplete" not in page


# Generic LUT4 synthesis of the normalization macros (24x24-bit multipliers in LUTs)
# takes about ten minutes each on this project's 2-core machine: they are checked
# with -m slow; every other core in the default run.
SLOW_CORES = {"iternorm", "fisrnorm"}


@pytest.mark.parametrize("row", [
    pytest.param(r, id=r["module"],
                 marks=[pytest.mark.slow] if r["core"] in SLOW_CORES else [])
    for r in _default_rows()])
def test_default_config_matches_the_page(row, tmp_path):
    core = CORES[row["core"]].build(**_params(row))
    assert core.module_name == row["module"]
    v, j = generate(core, tmp_path)
    rep = run_synth(v, json.loads(j.read_text()), "generic", workdir=tmp_path / "syn")
    assert rep["resources"]["latches"] == 0
    claimed = int(row["luts"])
    got = rep["resources"]["luts"]
    assert abs(got - claimed) <= 0.05 * claimed, \
        f"{row['module']}: {got} LUTs now, the page claims {claimed}: rerun " \
        f"`lpcores sweep docs/sweep.toml`"
