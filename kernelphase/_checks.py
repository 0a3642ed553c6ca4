"""Input validation shared by every public entry point.

Each helper raises ``ValueError`` with one line naming the parameter, its value
and the valid range, e.g. ``sigma2=-0.1 is outside the valid range (0, inf)``.
The CLI prints that line on stderr and exits with status 2.
"""
import math

__all__ = ["check_range", "check_int", "check_choice", "check_positive", "check_grid"]


def _span(lo, hi, lo_open, hi_open):
    left = "(" if lo_open or lo == -math.inf else "["
    right = ")" if hi_open or hi == math.inf else "]"
    return f"{left}{lo:g}, {hi:g}{right}"


def check_range(name, value, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False):
    """Return ``float(value)`` if it is finite and inside the interval, else raise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number; valid range "
                         f"{_span(lo, hi, lo_open, hi_open)}") from None
    ok = (math.isfinite(v) and (lo < v if lo_open else lo <= v)
          and (v < hi if hi_open else v <= hi))
    if not ok:
        raise ValueError(f"{name}={value!r} is outside the valid range "
                         f"{_span(lo, hi, lo_open, hi_open)}")
    return v


def check_positive(name, value):
    """Shorthand for ``check_range(name, value, 0, inf, lo_open=True)``."""
    return check_range(name, value, 0.0, math.inf, lo_open=True)


def check_int(name, value, lo=-math.inf, hi=math.inf):
    """Return ``int(value)`` if it is an integer in ``[lo, hi]``, else raise."""
    try:
        v = int(value)
        integral = float(value) == v
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral:
        raise ValueError(f"{name}={value!r} is not an integer; valid range "
                         f"{_span(lo, hi, False, False)}")
    if not lo <= v <= hi:
        raise ValueError(f"{name}={value!r} is outside the valid range "
                         f"{_span(lo, hi, False, False)}")
    return v


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``, else raise listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r} is not one of {listed}")
    return value


def check_grid(name, lo, hi, count, positive=False):
    """Validate a range ``lo:hi:count`` (lo < hi, count >= 2)."""
    lo_ = check_range(f"{name} lower end", lo, 0.0 if positive else -math.inf,
                      lo_open=positive)
    hi_ = check_range(f"{name} upper end", hi)
    if not hi_ > lo_:
        raise ValueError(f"{name}={lo!r}:{hi!r} is empty or reversed; the upper end "
                         f"must exceed the lower end")
    n = check_int(f"{name} count", count, 2, 100000)
    return lo_, hi_, n
