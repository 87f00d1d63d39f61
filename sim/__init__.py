"""cocotb testbenches and the simulation plumbing (``lpcores.sim``).

``runner.run(core, "lpcores.sim.<core>")`` generates, builds and runs; the
testbench modules (``sim/<core>.py``) share one driver/monitor/scoreboard,
``sim/stream.py``. Importing this package does not import cocotb.
"""

from .tools import SIMULATORS, available, setup_env
