"""Base class of every solver result, after ``scipy.optimize.OptimizeResult``.

Each solver defines a frozen dataclass with its own values plus the common
fields ``residual``, ``converged``, ``status`` and ``message``, and inherits
:class:`Result` for a JSON-ready :meth:`Result.to_dict`.
"""
import dataclasses
import math

import numpy as np

__all__ = ["Result", "jsonable"]


def jsonable(obj):
    """Convert numpy scalars/arrays, dataclasses and tuples to plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


class Result:
    """Mixin for frozen result dataclasses; adds :meth:`to_dict`."""

    def to_dict(self):
        """JSON-ready dict of all fields plus ``kernelphase_version``."""
        from . import __version__
        d = jsonable(self)
        d["kernelphase_version"] = __version__
        return d
