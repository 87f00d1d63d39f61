"""The one exception type for bad parameters and bad input.

Every generator, golden model and CLI entry point checks its arguments up front and
raises :class:`ParamError` with one sentence naming the parameter, the value and what
is allowed. The CLI prints that sentence and exits 2, never a traceback.
"""


class ParamError(ValueError):
    """A parameter or an input value is outside what the unit supports."""


class FmaxError(ParamError):
    """A clock (``fmax``) the delay model does not reach for the core as asked.

    Besides the sentence, the numbers a caller needs without parsing it:
    ``fastest_mhz`` (the model's fastest clock for this core, the other parameters as
    given), ``stages`` (its register count there, when known) and ``loop``: ``None``,
    or ``(depth, contexts)`` when the limit is an accumulate loop that needs ``depth``
    contexts (or partial sums) at the asked clock and has ``contexts``. A sweep lists
    such a configuration as refused, with these numbers, rather than failing."""

    def __init__(self, msg, *, fastest_mhz, stages=None, loop=None):
        super().__init__(msg)
        self.fastest_mhz = fastest_mhz
        self.stages = stages
        self.loop = loop

    def reworded(self, msg):
        """The same refusal in the words of an enclosing core."""
        return FmaxError(msg, fastest_mhz=self.fastest_mhz, stages=self.stages,
                         loop=self.loop)


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


def check_bool(name, value):
    """Return ``value`` if it is True or False, else raise ParamError."""
    if not isinstance(value, bool):
        raise ParamError(f"{name} must be True or False, not {value!r}")
    return value
