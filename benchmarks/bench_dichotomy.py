"""Speed of the dichotomy simulations against plain references, measured in one process.

1. Diagonal net (Fig. 1a setting): exact n-dim gradient flow (LSODA) vs plain GD on (u, v)
   over the same continuous time (GD timed on a slice and extrapolated linearly).
2. Matrix completion: sparse numba GD kernel vs dense numpy GD, per step.
3. Depth-L diagonal nets (L = 3, 4; issue 15): the piecewise reduced flow vs plain GD, and the
   late-phase KKT solver (reweighted L1) at the same size.
4. Modular-addition MLP (issue 15): the preallocated BLAS step vs the plain numpy reference
   step, per step, at p = 23 (width 256) and the paper's p = 97 (width 1024).
"""
import math
import time

import numpy as np

from kernelphase.solvers.matrix_completion import multiplication_table, observation_mask
from kernelphase.validation.diagonal_net import diagonal_flow, diagonal_gd, sparse_dataset
from kernelphase.validation.matrix_factorization import mf_gd, mf_gd_reference


def main():
    X, y, *_ = sparse_dataset(10000, 256, 10, seed=0)
    lam, lr, alpha = 1e-3, 0.01, 128.0
    T = 2 * math.log(alpha) / lam
    t0 = time.perf_counter()
    diagonal_flow(X, y, alpha, lam, np.array([T]))
    t_flow = time.perf_counter() - t0
    steps = 2000
    t0 = time.perf_counter()
    diagonal_gd(X, y, alpha, lam, lr, steps)
    t_gd = (time.perf_counter() - t0) * (T / lr) / steps
    print(f"diagonal net d=1e4 n=256, t = 2 t_g ({T / lr:.3g} GD steps)")
    print(f"  reduced flow {t_flow:8.2f} s   plain GD (extrapolated) {t_gd:8.1f} s   "
          f"ratio {t_gd / t_flow:6.0f}x")
    from kernelphase.solvers.margins import depth_max_margin
    for L in (3, 4):
        t0 = time.perf_counter()
        tr = diagonal_flow(X, y, alpha, lam, np.array([T]), depth=L)
        t_flow = time.perf_counter() - t0
        t0 = time.perf_counter()
        diagonal_gd(X, y, alpha, lam, lr, steps, depth=L)
        t_gd = (time.perf_counter() - t0) * (T / lr) / steps
        t0 = time.perf_counter()
        depth_max_margin(X, y, L)
        t_km = time.perf_counter() - t0
        print(f"  depth {L}: reduced flow {t_flow:8.2f} s ({tr.restarts} restarts)   plain GD "
              f"(extrapolated) {t_gd:8.1f} s   ratio {t_gd / t_flow:6.0f}x   late KKT point "
              f"{t_km:6.1f} s")
    Xs, m = multiplication_table(97), observation_mask(97, 470, seed=0)
    mf_gd(Xs, m, steps=10, record_every=10, progress=False)  # compile
    n = 20000
    t0 = time.perf_counter()
    mf_gd(Xs, m, steps=n, record_every=n, progress=False)
    t_nb = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    mf_gd_reference(Xs, m, 10.0, 1e-4, 0.1, 2000)
    t_ref = (time.perf_counter() - t0) / 2000
    print("matrix completion d=97, 470 observed")
    print(f"  numba sparse {t_nb * 1e6:8.1f} us/step   dense numpy {t_ref * 1e6:8.1f} us/step   "
          f"ratio {t_ref / t_nb:5.1f}x   (1e6 steps: {t_nb * 1e6:.0f} s)")

    bench_modular()


def bench_modular():
    """Per-step time of the modular MLP: fast stepper vs plain reference (issue 15)."""
    from kernelphase.validation import modular_mlp as mm
    for p, h, frac in ((23, 256, 0.5), (97, 1024, 0.4)):
        a, b, lab, mask = mm.modular_pairs(p, frac, seed=0)
        s = mm.init_mlp(p, h, 1.0, seed=0)
        s.W2T[:] = 0.01
        st = mm._Stepper(p, h, a[mask], b[mask], lab[mask])
        k = 200 if p < 50 else 10
        t0 = time.perf_counter()
        for _ in range(k):
            st.step(s, 0.01, 1e-4)
        t_fast = (time.perf_counter() - t0) / k
        t0 = time.perf_counter()
        mm.mlp_gd_reference(s, a[mask], b[mask], lab[mask], 0.01, 1e-4, k)
        t_ref = (time.perf_counter() - t0) / k
        print(f"modular MLP p={p} width={h} n={int(mask.sum())}: fast {t_fast * 1e3:7.2f} ms/step"
              f"   reference {t_ref * 1e3:7.2f} ms/step   ratio {t_ref / t_fast:4.1f}x   "
              f"(1e7 steps: {t_fast * 1e7 / 86400:.1f} days)")


if __name__ == "__main__":
    main()
