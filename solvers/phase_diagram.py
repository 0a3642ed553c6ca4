r"""Phase diagrams of the adaptive-kernel theory over any two parameters.

Each grid point carries its phase code (0 GFL, 1 GMFL-I, 2 GMFL-II, -1 unconverged), order
parameters, status and residual, as ``scipy.optimize.elementwise`` does, so one bad point never
spoils a diagram. Cubic points that share every parameter but u are solved together: one
transition, then one continuation of the mixed branch through their u values
(:func:`kernelphase.solvers.cubic.cubic_phases`), so neighbouring points lie on one branch.
Groups are distributed over a process pool (``workers``); numba's on-disk cache is shared.
"""
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kernelphase._checks import check_choice, check_grid, check_int, check_range
from kernelphase.results import Result

__all__ = ["PhaseDiagram", "phase_diagram", "PHASES", "AXES"]

PHASES = ("GFL", "GMFL-I", "GMFL-II")
AXES = {"cubic": ("eps", "u", "rho", "sigma_w2", "sigma2", "n", "d", "width", "sigma_a2"),
        "modular": ("sigma2", "width", "sigma_a2", "gamma", "P")}
_ORDER = {"cubic": ("u", "b", "c", "phi_star", "droplet_fraction", "learned_cubic"),
          "modular": ("u", "a", "droplet_weight", "mode_power", "target_component")}
_MAX_POINTS = 250_000
_U_MAX = 1e12


@dataclass(frozen=True)
class PhaseDiagram(Result):
    """Grid result: ``phase`` codes and ``order[name]`` arrays of shape (ny, nx); ``status``
    holds each point's code from :data:`kernelphase.results.STATUS`."""
    model: str
    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    phase: np.ndarray
    order: dict
    status: np.ndarray
    residual: np.ndarray
    message: str
    params: dict = field(default_factory=dict)


def _cubic_point(p):
    """(eps, sigma_w2, rho, d, u) of one grid point, every value checked."""
    def need(name, why=""):
        if name not in p:
            raise ValueError(f"phase-diagram cubic needs {name} (fixed or as an axis){why}")
        return p[name]
    eps = check_range("eps", need("eps"), -100, 100)
    sw2 = check_range("sigma_w2", p.get("sigma_w2", 0.5), 0, 1e6, lo_open=True)
    phys = [k for k in ("n", "d", "width", "sigma_a2") if k in p]
    for k in ("n", "d", "width"):
        if k in p:
            check_int(k, p[k], 1, 10 ** 12)
    if "sigma_a2" in p:
        check_range("sigma_a2", p["sigma_a2"], 0, 1e12, lo_open=True)
    if "rho" in p:
        rho = check_range("rho", p["rho"], 0, 1e12, lo_open=True)
    elif len(phys) == 4:
        rho = p["width"] * p["sigma_a2"] / p["d"]
    else:
        raise ValueError("phase-diagram cubic needs rho, or all of n, d, width and sigma_a2")
    if "u" in p:
        u = check_range("u", p["u"], 0, _U_MAX, lo_open=True)
    elif "sigma2" in p and len(phys) == 4:
        s2 = check_range("sigma2", p["sigma2"], 0, 1e12, lo_open=True)
        u = p["n"] ** 2 * p["sigma_a2"] / (s2 ** 2 * p["d"] * p["width"])
        if not 0 < u <= _U_MAX:
            raise ValueError(f"sigma2={s2!r} gives u={u:.3g}, outside the valid range "
                             f"(0, {_U_MAX:g}]")
    else:
        raise ValueError("phase-diagram cubic needs u, or sigma2 with n, d, width and sigma_a2")
    return eps, sw2, rho, int(p.get("d", 150)), u


def _cubic_group(args):
    """One transition and one branch continuation for points differing only in u."""
    from .cubic import cubic_phases
    (eps, sw2, rho, d), us = args
    out = []
    try:
        rs = cubic_phases(eps, us, rho, sw2, d)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return [(-1, [math.nan] * 6, 3, math.inf)] * len(us)
    for r in rs:
        out.append((PHASES.index(r.phase) if r.converged else -1,
                    [getattr(r, k) for k in _ORDER["cubic"]], r.status, r.residual))
    return out


def _modular_group(args):
    from .modular import modular_phase
    out = []
    for p in args:
        r = modular_phase(p["P"], p["width"], p["sigma_a2"], p["gamma"], p["sigma2"])
        out.append((PHASES.index(r.phase) if r.converged else -1,
                    [getattr(r, k) for k in _ORDER["modular"]], r.status, r.residual))
    return out


def phase_diagram(model, x, y, fixed, workers=2, progress=None):
    """Phase diagram over ``x = (name, lo, hi, count)`` and ``y`` with the ``fixed`` parameters.

    Every point's parameters are checked before any work starts.
    """
    from kernelphase.progress import progress as _pb
    check_choice("model", model, tuple(AXES))
    workers = check_int("workers", workers, 1, 256)
    grids = []
    for axis in (x, y):
        name, lo, hi, count = axis
        check_choice("axis name", name, AXES[model])
        lo, hi, count = check_grid(name, lo, hi, count)
        grids.append(np.linspace(lo, hi, count))
    if x[0] == y[0]:
        raise ValueError(f"x and y both vary {x[0]!r}; choose two different parameters")
    xs, ys = grids
    if xs.size * ys.size > _MAX_POINTS:
        raise ValueError(f"grid of {xs.size} x {ys.size} points exceeds the limit of "
                         f"{_MAX_POINTS} points")
    fixed = {k: v for k, v in dict(fixed).items() if v is not None}
    points = [[dict(fixed, **{x[0]: float(xv), y[0]: float(yv)}) for xv in xs] for yv in ys]
    if model == "cubic":
        groups = {}
        for j, row in enumerate(points):
            for i, p in enumerate(row):
                eps, sw2, rho, d, u = _cubic_point(p)
                groups.setdefault((eps, sw2, rho, d), []).append((u, j, i))
        keys = list(groups)
        jobs = [(k, [u for u, _, _ in groups[k]]) for k in keys]
        fn = _cubic_group
    else:
        from .modular import _check
        for row in points:
            for p in row:
                if "sigma2" not in p:
                    raise ValueError("phase-diagram modular needs sigma2 (fixed or as an axis)")
                check_range("sigma2", p["sigma2"], 0, 1e12, lo_open=True)
                _check(p.get("P", 401), p.get("width", 1000), p.get("sigma_a2", 2e-6),
                       p.get("gamma", 1e-4))
                p.setdefault("P", 401), p.setdefault("width", 1000)
                p.setdefault("sigma_a2", 2e-6), p.setdefault("gamma", 1e-4)
                p["P"], p["width"] = int(p["P"]), int(p["width"])
        keys = [(j, i) for j in range(len(ys)) for i in range(len(xs))]
        jobs = [[points[j][i] for i in range(len(xs))] for j in range(len(ys))]
        fn = _modular_group
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as ex:
            results = list(_pb(ex.map(fn, jobs, chunksize=max(1, len(jobs) // (8 * workers))),
                               total=len(jobs), desc="phase diagram", enabled=progress))
    else:
        results = [fn(j) for j in _pb(jobs, total=len(jobs), desc="phase diagram",
                                      enabled=progress)]
    shape = (len(ys), len(xs))
    phase = np.full(shape, -1, dtype=int)
    status = np.full(shape, 3, dtype=int)
    residual = np.full(shape, np.nan)
    vals = np.full(shape + (len(_ORDER[model]),), np.nan)
    if model == "cubic":
        cells = [[(j, i) for _, j, i in groups[k]] for k in keys]
    else:
        cells = [[(j, i) for i in range(len(xs))] for j in range(len(ys))]
    for where, res in zip(cells, results):
        for (j, i), (code, ov, st, rr) in zip(where, res):
            phase[j, i], status[j, i], residual[j, i] = code, st, rr
            vals[j, i] = ov
    order = {k: vals[:, :, n] for n, k in enumerate(_ORDER[model])}
    bad = int((status != 0).sum())
    msg = "converged" if not bad else (f"{bad} of {status.size} points did not converge "
                                      f"(see status)")
    return PhaseDiagram(model, x[0], xs, y[0], ys, phase, order, status, residual,
                        msg, dict(fixed))
