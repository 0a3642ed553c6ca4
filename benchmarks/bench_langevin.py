"""Langevin steps per second of the Fig. 2 network, fused numba kernel against the plain numpy
step, in the same process (issue 4).

For scale 1/8 and 1/2 of the Fig. 2 preset (Table 1 family) one network is advanced by
``langevin_run`` with ``engine="numba"`` (erf, erf' by vectorised series and the residual fused in one pass,
parallel over row chunks, single-threaded BLAS per chunk) and ``engine="numpy"`` (X @ W.T, scipy erf,
numpy exp, BLAS on every core). Printed: steps per second, the ratio, and the fraction of the
machine's float64 matrix-multiply throughput reached, counting the step's two products
(4 n d N flops) against a 2000 x 2000 matmul timed here.
Run: ``python benchmarks/bench_langevin.py``.
"""
import time

import numpy as np

from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run
from kernelphase.validation.teacher_student import cubic_data, default_lr, scaled_preset


def matmul_gflops(size=2000, reps=5):
    A = np.random.default_rng(0).standard_normal((size, size))
    A @ A
    t0 = time.perf_counter()
    for _ in range(reps):
        A @ A
    return 2 * size ** 3 * reps / (time.perf_counter() - t0) / 1e9


def steps_per_second(post, lr, seconds=4.0):
    langevin_run(post, 5, lr, seed=0)                 # compile / load the cache
    steps = 20
    while True:
        t0 = time.perf_counter()
        langevin_run(post, steps, lr, seed=0)
        dt = time.perf_counter() - t0
        if dt > seconds / 4 or steps > 10 ** 6:
            return steps / dt
        steps *= 4


def main():
    peak = matmul_gflops()
    print(f"float64 matmul throughput (2000 x 2000): {peak:.1f} GFLOP/s")
    for scale in (0.125, 0.5):
        p = scaled_preset("fig2", scale)
        N, d, n = p["width"][0], p["d"], p["n"]
        X, y = cubic_data(n, d, p["eps"], 0)
        lr = default_lr(n, d, 0.3, p["sigma_w2"], N, p["sigma_a2"])
        rate = {}
        for engine in ("numpy", "numba"):
            post = ErfNetworkPosterior(X, y, 0.3, p["sigma_a2"], p["sigma_w2"], N, engine=engine)
            rate[engine] = steps_per_second(post, lr)
        frac = {e: 4 * n * d * N * r / 1e9 / peak for e, r in rate.items()}
        print(f"scale {scale:g} (N={N}, d={d}, n={n}): numpy {rate['numpy']:.0f} steps/s "
              f"({frac['numpy']:.0%} of matmul peak), numba {rate['numba']:.0f} steps/s "
              f"({frac['numba']:.0%}); ratio {rate['numba'] / rate['numpy']:.2f}x")


if __name__ == "__main__":
    main()
