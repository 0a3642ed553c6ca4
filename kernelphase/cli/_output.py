"""Shared output helpers of the CLI commands."""
import json
import sys

from ..results import jsonable

__all__ = ["print_json", "parse_params"]


def print_json(obj, stream=None):
    """One JSON object on stdout."""
    stream = stream or sys.stdout
    stream.write(json.dumps(jsonable(obj), sort_keys=True) + "\n")


def parse_params(items, option="--param"):
    """Parse ``["eps=0.25", "s=1/2"]`` into ``{"eps": Rational(1, 4), "s": Rational(1, 2)}``.

    Each value is read by :func:`kernelphase.parse.parse_number` (never evaluated) and must
    be a finite real number: ``0.25``, ``1/3``, ``sqrt(2)/2``; ``nan``, ``inf`` and anything
    that is not a number are refused with a one-line ``ValueError``.
    """
    from ..parse import parse_number
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not (name.isascii() and name.isidentifier()) or not value.strip():
            raise ValueError(f"{option}={item!r} is not of the form NAME=VALUE")
        out[name] = parse_number(value.strip(), f"{option} {name}", exact=True)
    return out
