"""Adaptive-kernel solver speed, with ratios against a plain-scipy reference in the same run.

1. One cubic transition (after compilation) vs the same computation with scipy (brentq,
   bounded Brent, numpy action) as in tests/test_adaptive.py.
2. A 100 x 100 cubic phase diagram over (eps, u) on 2 worker processes.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from kernelphase.solvers.cubic import cubic_transition  # noqa: E402
from kernelphase.solvers.phase_diagram import phase_diagram  # noqa: E402
from test_adaptive import _transition_ref  # noqa: E402


def main():
    rho = 8 / 150
    cubic_transition(-0.3, 0.5, rho=rho)  # compile / load cache
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        cubic_transition(-0.3, 0.5, rho=rho)
    t_nb = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    _transition_ref(rho, -0.3, 0.5)
    t_ref = time.perf_counter() - t0
    print(f"cubic transition: numba {t_nb * 1e3:.2f} ms, scipy reference {t_ref * 1e3:.0f} ms, "
          f"ratio {t_ref / t_nb:.0f}x")
    t0 = time.perf_counter()
    pd = phase_diagram("cubic", ("eps", -1.2, -0.1, 100), ("u", 5.0, 120.0, 100),
                       {"rho": rho, "sigma_w2": 0.5, "d": 150}, workers=2, progress=False)
    t_pd = time.perf_counter() - t0
    counts = {name: int((pd.phase == i).sum()) for i, name in enumerate(("GFL", "GMFL-I", "GMFL-II"))}
    print(f"100 x 100 phase diagram (eps x u), 2 workers: {t_pd:.1f} s; phases {counts}; "
          f"{int((pd.status != 0).sum())} unconverged points")


if __name__ == "__main__":
    main()
