"""FuseSoC runs this (interpreter python3, see lpcores.core) with its generator
input file; it hands over to ``lpcores.fusesoc.main``."""
import sys

try:
    from lpcores.fusesoc import main
except ImportError:
    sys.exit(f"lpcores: error: {sys.executable} (the python3 on PATH) cannot import "
             f"lpcores; put the bin/ directory of the environment where lpcores is "
             f"installed first on PATH")
sys.exit(main())
