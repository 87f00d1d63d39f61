"""The README's two commands are what CI runs and what the project installs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(python3 -m venv[^\n]*)\n```", text)


def test_readme_opens_with_two_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert cmds[0].endswith("lpcores demo")
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = _readme_commands()[1]
    assert test_cmd in ci.splitlines()


def test_readme_fma_stages_match_the_core():
    from lpcores.hdl.fma import CUTS
    text = (ROOT / "README.md").read_text()
    row = next(l for l in text.splitlines() if l.startswith("| `fma` |"))
    assert f"0–{len(CUTS)} pipeline stages" in row


def test_a_passing_run_leaves_nothing_in_tmp(pytestconfig):
    # the session's build tree (every core's Verilator and Icarus builds) is removed
    # when the run passes; pytest keeps it only for failures
    assert pytestconfig.getini("tmp_path_retention_policy") == "failed"
