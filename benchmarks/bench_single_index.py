"""Time per single-index transition (after compilation) for erf, tanh and sin, and the ratio
to a plain scipy implementation of the same algorithm (theory Sec. 12), written here.

Run: ``python benchmarks/bench_single_index.py``.
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


def main():
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


if __name__ == "__main__":
    main()
