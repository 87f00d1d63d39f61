"""Synthesis flows and reports (SPEC §6): ``run_synth``, ``report_markdown``."""

from .flow import (DEVICES, TARGETS, WRAPPER, SynthError, check_target, report_markdown,
                   run_synth, tool_versions)

__all__ = ["DEVICES", "TARGETS", "WRAPPER", "SynthError", "check_target",
           "report_markdown", "run_synth", "tool_versions"]
