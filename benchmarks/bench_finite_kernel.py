"""Finite-data adaptive kernel at the Fig. 2 preset: time and answer of the two fixed-point
schemes of ``solvers.finite_kernel`` beside plain references (issue 14).

Same training and test sets as ``kernelphase validate cubic --seed DATA_SEED`` (n_test 2000).
One JSON line per (scale, sigma^2, method): wall and CPU seconds (CPU = all threads of this
process; on an idle 2-core machine wall ~ CPU / 2), iterations, the population b (Stein
moments of the sampled neurons, the quantity the simulation's ``b_exact`` measures) and the
test-point b with their Monte Carlo errors, and the plain references: EK b (``cubic_phase``)
and the b of plain GP regression with the closed-form erf NNGP kernel (no feature learning).

    python benchmarks/bench_finite_kernel.py --scales 0.25 --sigma2 0.3 --method reweight anneal

Measured (data seed 0, sigma^2 = 0.3, erf, Eq. 7 law; shared 2-core machine at load 6-20, so
CPU seconds, which count every thread, are the comparable number; idle wall ~ CPU / 2). "old" is
this script's call of the code at commit 45f55d3 (scalar numba MALA, 4 annealing steps x 3
damped iterations + up to 20, 512 chains x 200 steps, final sweep; tol 0.03):

    scale  code  CPU s  wall s  iterations  b (test points)   b_pop              EK b    NNGP GP b
    1/16   old   86.8   153     13          0.392 +- 0.004    -                  0.478
    1/16   new   39.9   37      6           0.395 +- 0.003    0.397 +- 0.003     0.478
    1/4    old   -      502 (previous session)  0.530         -                  0.475
    1/4    new   87-103 211 (load 10), 943 (load 20)  6  0.525 +- 0.002  0.491 +- 0.002  0.475  0.847

Per MALA step at 1/4 (512 chains) old 37 ms and new 40 ms CPU: the gain is the number of steps
(see docs/validation/finite-size.md).

With the conjugate-gradient fixed point and the default law (fluctuating), at load 0.1-2:
1/4, sigma^2 = 0.3 / 0.25 / 0.2: 35.3 / 26.4 / 33.9 s wall, 48 / 51 / 66 CPU s, 6 / 9 / 12
iterations, b_pop 0.5034 / 0.4236 / 0.3328.
"""
import argparse
import json
import math
import time

import numpy as np

from kernelphase.solvers.cubic import cubic_phase
from kernelphase.solvers.finite_kernel import finite_data_kernel, nngp_erf_kernel
from kernelphase.validation.teacher_student import (cubic_data, erf_population_moments,
                                                    scaled_preset)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=float, nargs="+", default=[0.0625, 0.125])
    ap.add_argument("--sigma2", type=float, nargs="+", default=[0.3])
    ap.add_argument("--method", nargs="+", default=["reweight"], choices=["reweight", "anneal"])
    ap.add_argument("--law", default="fluctuating", choices=["fluctuating", "cavity", "eq7"])
    ap.add_argument("--chains", type=int, default=512)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=0.02)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=2000)
    a = ap.parse_args(argv)
    for scale in a.scales:
        p = scaled_preset("fig2", scale)
        n, d, N, sa2, eps, sw2 = p["n"], p["d"], p["width"][0], p["sigma_a2"], p["eps"], 0.5
        X, y = cubic_data(n, d, eps, a.data_seed)
        Xt, yt = cubic_data(a.n_test, d, eps, a.data_seed + 10 ** 6)
        z = Xt[:, 0]
        K = nngp_erf_kernel(X, X, sa2, sw2)
        Kt = nngp_erf_kernel(Xt, X, sa2, sw2)
        for s2 in a.sigma2:
            ek = cubic_phase(eps, s2, n, d, N, sa2, sw2)
            f_gp = Kt @ np.linalg.solve(K + s2 * np.eye(n), y)
            for method in a.method:
                t0, c0 = time.time(), time.process_time()
                r = finite_data_kernel(X, y, N, s2, sa2, sw2, law=a.law, chains=a.chains,
                                       steps=a.steps, Xtest=Xt, ytest=yt, seed=a.seed,
                                       tol=a.tol, method=method,
                                       moments=erf_population_moments)
                row = dict(scale=scale, n=n, d=d, N=N, sigma2=s2, method=method,
                           law=a.law, data_seed=a.data_seed, seed=a.seed,
                           seconds=time.time() - t0, cpu_seconds=time.process_time() - c0,
                           status=r.status, iterations=r.iterations, residual=r.residual,
                           b_pop=1 - float(r.population[0]),
                           b_pop_se=float(r.population_se[0]), b=r.b, b_se=r.b_se,
                           c_pop=eps - float(r.population[1]) / 6, b_rf=r.b_rf,
                           b_ek=ek.b, b_nngp_gp=float(np.mean((yt - f_gp) * z)),
                           acceptance=r.acceptance)
                print(json.dumps({k: (round(v, 5) if isinstance(v, float) and math.isfinite(v)
                                      else v) for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
