"""Adaptive-kernel solver speed, with ratios against a plain-scipy reference in the same run.

1. One cubic transition (after compilation) against the same computation written with scipy
   (brentq for b and u_c, a dense grid plus bounded Brent for the minima; numpy action).
2. A 100 x 100 cubic phase diagram over (eps, u) on 2 worker processes, against the scipy
   reference per point (transition, then GMFL-I by fsolve from the transition, continued along
   u as the numba solver does) timed on a 5 x 10 sub-grid and scaled to the full grid.
"""
import math
import time

import numpy as np
from scipy.optimize import brentq, fsolve, minimize_scalar

from kernelphase.solvers.cubic import cubic_transition
from kernelphase.solvers.phase_diagram import phase_diagram


def _S(phi, u, b, c, sw2):
    D = 1 + 2 * (sw2 + phi * phi)
    return phi * phi / (2 * sw2) - 2 * u / math.pi * phi * phi / D * (b - 2 * c * phi * phi / D) ** 2


def _b(u, rho, sw2):
    v = math.sqrt(u * rho)
    kappa = lambda b: 1 / sw2 - 4 * u * b * b / (math.pi * (1 + 2 * sw2))
    bmax = min(1.0, math.sqrt(math.pi * (1 + 2 * sw2) / (4 * sw2 * u)))
    return brentq(lambda b: b * (1 + 4 * v / (math.pi * (1 + 2 * sw2) * kappa(b))) - 1,
                  1e-14, bmax * (1 - 1e-14), xtol=1e-15)


def _star(u, rho, eps, sw2):
    b = _b(u, rho, sw2)
    grid = np.linspace(0.005, 4, 4000)
    vals = _S(grid, u, b, eps, sw2)
    idx = [i for i in range(1, len(grid) - 1) if vals[i] < vals[i - 1] and vals[i] <= vals[i + 1]]
    if not idx:
        return None
    i = min(idx, key=lambda j: vals[j])
    r = minimize_scalar(lambda p: _S(p, u, b, eps, sw2), bounds=(grid[i - 1], grid[i + 1]),
                        method="bounded", options={"xatol": 1e-14})
    return r.x, r.fun, b


def _transition_ref(rho, eps, sw2):
    F = lambda u: (lambda m: 1.0 if m is None else m[1])(_star(u, rho, eps, sw2))
    lo = 1.0
    while F(lo * 1.05) > 0:
        lo *= 1.05
    uc = brentq(F, lo, lo * 1.05, xtol=1e-13, rtol=1e-13)
    return uc, _star(uc, rho, eps, sw2)


def _column_ref(eps, us, rho, sw2):
    """Reference phases along u at one eps: GFL below u_c, GMFL-I by fsolve above."""
    uc, (phi, _, b) = _transition_ref(rho, eps, sw2)
    z = np.array([b, eps, 0.0, phi])
    out = []
    for u in us:
        if u <= uc:
            out.append(("GFL", _b(u, rho, sw2)))
            continue
        v = math.sqrt(u * rho)

        def F(z):
            b, c, ph, q = z
            D = 1 + 2 * (sw2 + q * q)
            Q = np.array([[4 * q ** 2 / (math.pi * D), -8 * q ** 4 / (math.sqrt(6) * math.pi * D ** 2)],
                          [-8 * q ** 4 / (math.sqrt(6) * math.pi * D ** 2), 8 * q ** 6 / (3 * math.pi * D ** 3)]])
            kappa = 1 / sw2 - 4 * u * b * b / (math.pi * (1 + 2 * sw2))
            Q0 = np.array([[4 / (math.pi * (1 + 2 * sw2) * kappa), 0], [0, 0]])
            r = np.linalg.solve(np.eye(2) + v * (Q0 + ph * Q), [1, math.sqrt(6) * eps])
            h = 1e-7
            return [r[0] - b, r[1] - math.sqrt(6) * c, 100 * _S(q, u, b, c, sw2),
                    100 * (_S(q + h, u, b, c, sw2) - _S(q - h, u, b, c, sw2)) / (2 * h)]
        z = fsolve(F, z, xtol=1e-12, full_output=True)[0]
        out.append(("GMFL-I", z[0]))
    return out


def main():
    rho, sw2 = 8 / 150, 0.5
    cubic_transition(-0.3, sw2, rho=rho)  # compile / load cache
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        cubic_transition(-0.3, sw2, rho=rho)
    t_nb = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    _transition_ref(rho, -0.3, sw2)
    t_ref = time.perf_counter() - t0
    print(f"cubic transition: numba {t_nb * 1e3:.2f} ms, scipy reference {t_ref * 1e3:.0f} ms, "
          f"ratio {t_ref / t_nb:.0f}x")
    phase_diagram("cubic", ("eps", -1.2, -0.1, 4), ("u", 5.0, 120.0, 4),
                  {"rho": rho, "sigma_w2": sw2, "d": 150}, workers=2, progress=False)  # warm up
    t0 = time.perf_counter()
    pd = phase_diagram("cubic", ("eps", -1.2, -0.1, 100), ("u", 5.0, 120.0, 100),
                       {"rho": rho, "sigma_w2": sw2, "d": 150}, workers=2, progress=False)
    t_pd = time.perf_counter() - t0
    counts = {name: int((pd.phase == i).sum()) for i, name in enumerate(("GFL", "GMFL-I", "GMFL-II"))}
    t0 = time.perf_counter()
    for eps in np.linspace(-1.2, -0.1, 5):
        _column_ref(eps, np.linspace(5.0, 120.0, 10), rho, sw2)
    t_ref_pt = (time.perf_counter() - t0) / 50
    print(f"100 x 100 phase diagram (eps x u), 2 workers: {t_pd:.2f} s "
          f"({'under' if t_pd < 2 else 'OVER'} the 2 s target); phases {counts}; "
          f"{int((pd.status != 0).sum())} unconverged points")
    print(f"scipy reference: {t_ref_pt * 1e3:.0f} ms per point, {t_ref_pt * 1e4:.0f} s for the "
          f"grid serially; ratio {t_ref_pt * 1e4 / t_pd:.0f}x")


if __name__ == "__main__":
    main()
