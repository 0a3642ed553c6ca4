"""Time per single-index transition (after compilation) for erf, tanh and sin, and the ratio
to a plain scipy implementation of the same algorithm (theory Sec. 12), written here; and the
time of a 100 x 100 single-index phase diagram (erf, He1 + c3 He3 over (c3, u)) after
compilation, in one process and on 2 worker processes, against the plain reference of one
public-API call per point (no grouping by u: a transition and a continuation per point),
timed on a sample of points and scaled to the grid.

Run: ``python benchmarks/bench_single_index.py`` (``--diagram`` for the diagram only).
"""
import math
import time

import numpy as np
import sympy as sp
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar

from kernelphase.activations import Z
from kernelphase.moments import activation_expr
from kernelphase.solvers.single_index import single_index_transition

RHO = 8 / 150
MODELS = [("erf", {1: 1, 3: -0.3}), ("tanh", {1: 1, 3: -0.3}), ("sin", {1: 1, 3: 0.5})]


def scipy_transition(name, teacher, sw2=0.5, rho=RHO):
    """u_c by scipy: quad moments, brentq GFL closure, grid + minimize_scalar, brentq in u."""
    expr = activation_expr(name)
    ders = [sp.lambdify(Z, sp.diff(expr, Z, k) if k else expr, "math")
            for k in range(max(teacher) + 1)]

    def m(k, v):
        sv = math.sqrt(v)
        return quad(lambda t: ders[k](sv * t) * math.exp(-t * t / 2), -12, 12,
                    epsabs=1e-13, epsrel=1e-12, limit=200)[0] / math.sqrt(2 * math.pi)

    A = m(1, sw2) ** 2

    def b1(u):
        v, c1 = math.sqrt(u * rho), teacher[1]
        top = min(c1, 1 / math.sqrt(u * A * sw2)) * (1 - 1e-15)
        return brentq(lambda b: b * (1 + v * A / (1 / sw2 - u * b * b * A)) - c1, 0.0, top)

    grid = np.linspace(0.0, 5.0, 201)
    Mg = {k: [m(k, sw2 + p * p) for p in grid] for k in teacher}

    def S(p, u, b, M=None):
        g = sum((b if k == 1 else ck) * p ** k * (M[k] if M else m(k, sw2 + p * p))
                for k, ck in teacher.items())
        return p * p / (2 * sw2) - u / 2 * g * g

    def F(u):
        b = b1(u)
        vals = [S(p, u, b, {k: Mg[k][i] for k in teacher}) for i, p in enumerate(grid)]
        best = 1.0
        for i in range(1, len(grid) - 1):
            if vals[i] <= vals[i - 1] and vals[i] <= vals[i + 1]:
                r = minimize_scalar(lambda p: S(p, u, b), bounds=(grid[i - 1], grid[i + 1]),
                                    method="bounded", options={"xatol": 1e-10})
                best = min(best, r.fun)
        return best

    u = 1.0
    while F(u) > 0:
        u *= 1.2
    return brentq(F, u / 1.2, u, rtol=1e-12)


def _cpu():
    import resource
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def diagram(n=100, workers=2):
    """Seconds for an n x n (c3, u) diagram after compilation, and the per-point reference."""
    from kernelphase.solvers.phase_diagram import phase_diagram
    from kernelphase.solvers.single_index import single_index_phases
    x, y = ("c3", -1.2, -0.1, n), ("u", 5.0, 120.0, n)
    fixed = {"activation": "erf", "teacher": "He1", "rho": RHO, "sigma_w2": 0.5, "d": 150}
    phase_diagram("single-index", ("c3", -1.2, -0.1, 3), y, fixed, workers=1,
                  progress=False)   # compile in this process; forked workers inherit it
    times, cpu = {}, {}
    for w in (1, workers):
        t0, c0 = time.perf_counter(), _cpu()
        pd = phase_diagram("single-index", x, y, fixed, workers=w, progress=False)
        times[w], cpu[w] = time.perf_counter() - t0, _cpu() - c0
    rng = np.random.default_rng(0)
    sample = [(float(rng.choice(pd.x)), float(rng.choice(pd.y))) for _ in range(20)]
    t0, c0 = time.perf_counter(), _cpu()
    for c3, u in sample:
        single_index_phases("erf", {1: 1, 3: c3}, [u], RHO, 0.5, 150)
    t_ref = (time.perf_counter() - t0) / len(sample) * n * n
    c_ref = (_cpu() - c0) / len(sample) * n * n
    ok = int((pd.status == 0).sum())
    print(f"\n{n} x {n} single-index phase diagram (erf, He1 + c3 He3; {ok} of {n * n} points "
          f"converged)")
    print(f"{'':>24} {'time [s]':>9} {'CPU [s]':>8} {'ratio (time)':>13} {'ratio (CPU)':>12}")
    for w, t in times.items():
        print(f"{f'engine, {w} process(es)':>24} {t:9.2f} {cpu[w]:8.2f} {t_ref / t:13.1f} "
              f"{c_ref / cpu[w]:12.1f}")
    print(f"{'per-point reference':>24} {t_ref:9.1f} {c_ref:8.1f}   (20 points timed, scaled "
          f"to {n * n})")
    print("(CPU: user + system time of this process and its worker processes; on a busy "
          "machine the time exceeds CPU / processes, and the CPU ratio is the one to trust)")
    return times, cpu, t_ref, c_ref


def main():
    import sys
    if "--diagram" in sys.argv:
        diagram()
        return
    print(f"{'model':>6} {'u_c':>12} {'engine [ms]':>12} {'scipy [ms]':>11} {'ratio':>7}")
    for name, teacher in MODELS:
        r = single_index_transition(name, teacher, rho=RHO)  # compile, memoise the grid
        reps = 20
        t0 = time.perf_counter()
        for _ in range(reps):
            r = single_index_transition(name, teacher, rho=RHO)
        t_eng = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        uc = scipy_transition(name, teacher)
        t_ref = time.perf_counter() - t0
        assert abs(uc - r.u_c) < 1e-6 * uc, (uc, r.u_c)
        print(f"{name:>6} {r.u_c:12.6f} {1e3 * t_eng:12.3f} {1e3 * t_ref:11.1f} "
              f"{t_ref / t_eng:7.0f}")
    diagram()


if __name__ == "__main__":
    main()
