"""Benchmark (issue 5): Fig. 1 training speed; reduced (wbar, M) dynamics vs plain-numpy GD on W.

Run: python benchmarks/bench_lazy_rich.py [--full]
Times 2000 steps of each at the Fig. 1 size (D=100, P=550, N=500) in this process and prints
the ratio and the projected time for Fig. 1's 1e5 epochs; ``--full`` runs all 1e5 epochs
of the reduced dynamics (with population test loss every 10 steps).
"""
import os
import sys
import time

# one BLAS thread: on a shared 2-core machine threaded OpenBLAS inside the numba loop
# oversubscribes and runs ~8x slower (measured: 14 ms/step vs 1.5 ms/step)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from kernelphase.solvers.order_dynamics import reduced_steps  # noqa: E402
from kernelphase.validation.polynomial_net import (PRESETS, full_gd, init_weights,  # noqa: E402
                                                   make_data, network_output, train)


def main(full=False):
    cfg = PRESETS["fig1"]
    D, P, N, alpha, eps, c = (cfg[k] for k in ("D", "P", "N", "alpha", "eps", "c"))
    rng = np.random.default_rng(0)
    X, y, beta, s = make_data(D, P, rng)
    W = init_weights(N, D, rng)
    lr = c * N / alpha ** 2
    f0 = network_output(W, X, alpha, eps)
    wb, M = W.mean(0), W.T @ W / N
    T = np.outer(beta, beta)
    args = (X, y + f0, wb.copy(), M.copy(), alpha, eps, 2 * lr * alpha / N)
    reduced_steps(*args, 2, 0, wb, M, T, True)                     # compile / load cache
    n = 2000
    t0 = time.perf_counter()
    reduced_steps(*args, n, 0, wb, M, T, True)
    t_red = (time.perf_counter() - t0) / n
    nf = 200
    t0 = time.perf_counter()
    full_gd(W, X, y, alpha, eps, lr, nf)
    t_full = (time.perf_counter() - t0) / nf
    print(f"reduced (wbar, M) dynamics : {1e3 * t_red:.3f} ms/step")
    print(f"plain numpy GD on W        : {1e3 * t_full:.3f} ms/step")
    print(f"ratio numpy / reduced      : {t_full / t_red:.2f}")
    print(f"projected Fig. 1 (1e5 epochs): reduced {1e5 * t_red:.0f} s, numpy {1e5 * t_full:.0f} s")
    if full:
        t0 = time.perf_counter()
        train(D=D, P=P, N=N, alpha=alpha, eps=eps, c=c, steps=cfg["steps"], record_every=10)
        print(f"Fig. 1 full run, 1e5 epochs: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(full="--full" in sys.argv)
