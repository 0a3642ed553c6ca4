r"""Phase diagrams of the adaptive-kernel theory over any two parameters.

Each grid point carries its phase code (0 GFL, 1 GMFL-I, 2 GMFL-II), order parameters, status
and residual, as ``scipy.optimize.elementwise`` does, so one bad point never spoils a diagram.
Rows are distributed over a process pool (``workers``); numba's on-disk cache is shared.
"""
import functools
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kernelphase._checks import check_choice, check_grid
from kernelphase.results import Result

__all__ = ["PhaseDiagram", "phase_diagram", "PHASES", "AXES"]

PHASES = ("GFL", "GMFL-I", "GMFL-II")
AXES = {"cubic": ("eps", "u", "rho", "sigma_w2", "sigma2", "n", "d", "width", "sigma_a2"),
        "modular": ("sigma2", "width", "sigma_a2", "gamma")}
_ORDER = {"cubic": ("u", "b", "c", "phi_star", "droplet_fraction", "learned_cubic"),
          "modular": ("u", "a", "droplet_weight", "mode_power", "target_component")}


@dataclass(frozen=True)
class PhaseDiagram(Result):
    """Grid result: ``phase`` codes and ``order[name]`` arrays of shape (ny, nx)."""
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


@functools.lru_cache(maxsize=4096)
def _cubic_tr(eps, sw2, rho):
    from .cubic import cubic_transition
    return cubic_transition(eps, sw2, rho=rho)


def _point(model, p):
    if model == "modular":
        from .modular import modular_phase
        return modular_phase(p["P"], p["width"], p["sigma_a2"], p["gamma"], p["sigma2"])
    from .cubic import cubic_phase_scaled, u_from_sigma2
    if "u" in p:
        u, rho = p["u"], p.get("rho")
    else:
        u = u_from_sigma2(p["sigma2"], p["n"], p["d"], p["width"], p["sigma_a2"])
        rho = None
    if rho is None:
        rho = p["width"] * p["sigma_a2"] / p["d"]
    eps, sw2 = p["eps"], p.get("sigma_w2", 0.5)
    return cubic_phase_scaled(eps, u, rho, sw2, p.get("d", 150), transition=_cubic_tr(eps, sw2, rho))


def _row(args):
    model, fixed, x_name, xs, y_name, yv = args
    out = []
    for xv in xs:
        p = dict(fixed, **{x_name: float(xv), y_name: float(yv)})
        try:
            r = _point(model, p)
            out.append((PHASES.index(r.phase), [getattr(r, k) for k in _ORDER[model]],
                        r.status, r.residual))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            out.append((-1, [np.nan] * len(_ORDER[model]), 3, np.inf))
    return out


def phase_diagram(model, x, y, fixed, workers=2, progress=None):
    """Phase diagram over ``x = (name, lo, hi, count)`` and ``y`` with the ``fixed`` parameters."""
    from kernelphase.progress import progress as _pb
    check_choice("model", model, tuple(AXES))
    grids = []
    for axis in (x, y):
        name, lo, hi, count = axis
        check_choice("axis name", name, AXES[model])
        lo, hi, count = check_grid(name, lo, hi, count)
        grids.append(np.linspace(lo, hi, count))
    xs, ys = grids
    jobs = [(model, fixed, x[0], xs, y[0], yv) for yv in ys]
    if workers > 1 and len(ys) > 1:
        with ProcessPoolExecutor(workers) as ex:
            rows = list(_pb(ex.map(_row, jobs), total=len(jobs), desc="phase diagram",
                            enabled=progress))
    else:
        rows = [_row(j) for j in _pb(jobs, total=len(jobs), desc="phase diagram", enabled=progress)]
    phase = np.array([[c[0] for c in r] for r in rows])
    vals = np.array([[c[1] for c in r] for r in rows], dtype=float)
    order = {k: vals[:, :, i] for i, k in enumerate(_ORDER[model])}
    status = np.array([[c[2] for c in r] for r in rows])
    residual = np.array([[c[3] for c in r] for r in rows], dtype=float)
    ok = bool(np.all(status == 0))
    return PhaseDiagram(model, x[0], xs, y[0], ys, phase, order, status, residual,
                        "all points converged" if ok else f"{int((status != 0).sum())} points "
                        f"did not converge (see status)", dict(fixed))
