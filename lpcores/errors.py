"""The one exception type for bad parameters and bad input.

Every generator, golden model and CLI entry point checks its arguments up front and
raises :class:`ParamError` with one sentence naming the parameter, the value and what
is allowed. The CLI prints that sentence and exits 2, never a traceback.
"""


class ParamError(ValueError):
    """A parameter or an input value is outside what the unit supports."""


class ToolError(RuntimeError):
    """A tool the step needs (make, a C++ compiler, a simulator) is missing or
    failed; the message is one sentence saying which and what to do."""


def check_int(name, value, *, lo=None, hi=None):
    """Return ``value`` if it is an int in [lo, hi], else raise ParamError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParamError(f"{name} must be an integer, not {value!r}")
    if lo is not None and value < lo:
        if hi is None:
            raise ParamError(f"{name} must be at least {lo}, got {name}={value}")
        raise ParamError(f"{name} must be in {lo}..{hi}, got {name}={value}")
    if hi is not None and value > hi:
        raise ParamError(f"{name} must be in {lo}..{hi}, got {name}={value}")
    return value


def check_choice(name, value, allowed):
    """Return ``value`` if it is one of ``allowed``, else raise ParamError."""
    if value not in allowed:
        raise ParamError(
            f"{name} must be one of {', '.join(map(str, allowed))}, got {name}={value!r}")
    return value
