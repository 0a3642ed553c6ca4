"""One result contract for every public entry point, after ``scipy.optimize.OptimizeResult``.

Every solver, simulation and experiment returns a frozen dataclass that inherits
:class:`Result` and declares, besides its own values, the common fields ``status`` (an
int from the package-wide table :data:`STATUS`), ``message`` and ``params``. ``converged``
is derived from ``status`` and never stored, so it cannot disagree with it; NaN results and
broken physical invariants are statuses, not silent numbers.
"""
import dataclasses
import math

import numpy as np

__all__ = ["Result", "STATUS", "jsonable", "status_message"]

#: The one status table of the package. ``message`` starts with this text, optionally
#: followed by ": " and a detail.
STATUS = {
    0: "converged",
    1: "no solution in the range searched",
    2: "iteration limit reached without convergence",
    3: "NaN or infinite result encountered",
    4: "result violates a physical invariant",
    5: "problem has no solution (infeasible)",
    6: "run diverged",
    7: "run too short to measure",
    8: "external solver failed",
}


def status_message(status, detail=None):
    """``STATUS[status]``, with ``": detail"`` appended when a detail is given.

    Examples
    --------
    >>> from kernelphase.results import status_message
    >>> status_message(0)
    'converged'
    >>> status_message(1, "no transition up to u_max = 1e6")
    'no solution in the range searched: no transition up to u_max = 1e6'
    """
    base = STATUS[int(status)]
    return f"{base}: {detail}" if detail else base


def jsonable(obj):
    """Convert numpy scalars/arrays, dataclasses and tuples to plain JSON types.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.results import jsonable
    >>> jsonable({"a": np.float64(0.5), "b": np.arange(3), "c": (1, 2)})
    {'a': 0.5, 'b': [0, 1, 2], 'c': [1, 2]}
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, Result):
            out["converged"] = obj.converged
        return out
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
    """Mixin for frozen result dataclasses with fields ``status`` and ``message``.

    ``converged`` is ``status == 0``. An empty ``message`` is filled from :data:`STATUS`;
    a given one must start with the table's text for its status.
    """

    def __post_init__(self):
        st = getattr(self, "status")
        if isinstance(st, np.ndarray):  # grids: per-point statuses, message for the whole
            bad = set(np.unique(st).tolist()) - set(STATUS)
            if bad:
                raise ValueError(f"status codes {sorted(bad)} are not in results.STATUS")
            return
        if int(st) not in STATUS:
            raise ValueError(f"status={st!r} is not in results.STATUS")
        object.__setattr__(self, "status", int(st))
        msg = getattr(self, "message", "") or ""
        if not msg:
            object.__setattr__(self, "message", STATUS[int(st)])
        elif not msg.startswith(STATUS[int(st)]):
            raise ValueError(f"message {msg!r} does not match status {st} "
                             f"({STATUS[int(st)]!r})")

    @property
    def converged(self):
        """True exactly when ``status == 0`` (all statuses for a grid)."""
        st = self.status
        return bool(np.all(np.asarray(st) == 0))

    def __getitem__(self, name):
        """``res["u_c"]`` as ``res.u_c`` (scipy's ``OptimizeResult`` reads both ways)."""
        if name == "converged" or name in {f.name for f in dataclasses.fields(self)}:
            return getattr(self, name)
        raise KeyError(name)

    def keys(self):
        """Field names, then ``converged``."""
        return [f.name for f in dataclasses.fields(self)] + ["converged"]

    def _rows(self):
        """(name, short text) for each field: status first, as scipy's OptimizeResult prints."""
        names = ["message", "converged", "status"] + [
            f.name for f in dataclasses.fields(self) if f.name not in ("message", "status")]
        out = []
        for name in names:
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                text = np.array2string(v, threshold=8, edgeitems=2, precision=6)
            elif isinstance(v, float):
                text = f"{v:.10g}"
            elif isinstance(v, (tuple, list)) and len(v) and all(
                    isinstance(x, (float, int, np.floating)) for x in v):
                text = "(" + ", ".join(f"{float(x):.6g}" for x in v) + ")"
            else:
                text = repr(v)
            out.append((name, text if len(text) <= 300 else text[:297] + "..."))
        return out

    def __str__(self):
        """Aligned ``name: value`` lines (``print(res)``), as ``scipy.optimize`` results print."""
        rows = self._rows()
        w = max(len(n) for n, _ in rows)
        return "\n".join(f"{n.rjust(w)}: {t}" for n, t in rows)

    def _repr_pretty_(self, p, cycle):
        """IPython and Jupyter show the aligned form of :meth:`__str__`."""
        p.text(f"{type(self).__name__}(...)" if cycle else f"{type(self).__name__}\n{self}")

    def _repr_html_(self):
        """A two-column table in Jupyter; the status row is green when converged."""
        import html
        colour = "#2e7d32" if self.converged else "#c62828"
        rows = "".join(
            f"<tr><th style='text-align:right'>{html.escape(n)}</th>"
            f"<td style='text-align:left{';color:' + colour if n in ('status', 'converged') else ''}'>"
            f"<code>{html.escape(t)}</code></td></tr>" for n, t in self._rows())
        return f"<table><caption>{html.escape(type(self).__name__)}</caption>{rows}</table>"

    def to_dict(self):
        """JSON-ready dict of all fields, ``converged`` and ``kernelphase_version``."""
        from . import __version__
        d = jsonable(self)
        d["kernelphase_version"] = __version__
        return d
