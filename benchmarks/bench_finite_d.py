"""Time of one finite-d average (the integrated single-neuron law at fixed b, c) and of one
finite-d first-order point u_c(d) for the cubic preset (eps = -0.3, rho = 8/150,
sigma_w^2 = 0.5) at d = 150 (exact chi-square law of |w_perp|^2) and d = 1e4, against the
EK saddle-point solver (solvers.cubic) for scale.

Run: ``python benchmarks/bench_finite_d.py``.
"""
import time

from kernelphase.solvers.cubic import cubic_transition
from kernelphase.solvers.finite_d import finite_d_averages, finite_d_transition

RHO = 8 / 150


def _time(f, repeat=1):
    f()                                  # warm up (imports, compilation)
    t = time.perf_counter()
    for _ in range(repeat):
        out = f()
    return (time.perf_counter() - t) / repeat, out


def main():
    t, _ = _time(lambda: finite_d_averages(25.0, 0.3, -0.29, 150), 5)
    print(f"finite_d_averages d=150 chi2: {1e3 * t:.1f} ms")
    t, _ = _time(lambda: finite_d_averages(25.0, 0.3, -0.29, 10_000), 2)
    print(f"finite_d_averages d=1e4 chi2: {1e3 * t:.1f} ms")
    t, r = _time(lambda: finite_d_transition(-0.3, RHO, 150, u_lo=20, u_hi=29, n_scan=10))
    print(f"finite_d_transition d=150 chi2: {t:.2f} s, u_c = {r.u_c:.4f} ({r.message})")
    t, r = _time(lambda: cubic_transition(-0.3, 0.5, rho=RHO), 5)
    print(f"cubic_transition (EK, saddle point): {1e3 * t:.2f} ms, u_c = {r.u_c:.4f}")


if __name__ == "__main__":
    main()
