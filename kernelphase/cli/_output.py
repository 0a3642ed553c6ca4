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
    """Parse ``["eps=0.25", "s=1/2"]`` into ``{"eps": "0.25", "s": "1/2"}``."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not value.strip():
            raise ValueError(f"{option}={item!r} is not of the form NAME=VALUE")
        out[name] = value.strip()
    return out
