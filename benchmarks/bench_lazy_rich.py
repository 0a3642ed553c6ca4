"""Benchmark (issues 5 and 15): Fig. 1 training speed as a ratio to plain-numpy GD on W.

Run: python benchmarks/bench_lazy_rich.py [--full] [--reps R]

At the Fig. 1 size (D=100, P=550, N=500) in one process, the reduced (wbar, M) stepper
(:func:`kernelphase.solvers.order_dynamics.reduced_steps`, run under
``threadpool_limits(1)`` exactly as ``train()`` runs it) and the plain-numpy GD step on W
(:func:`kernelphase.validation.polynomial_net.full_gd`, once with one BLAS thread and once
with the default threads) are timed in ``R`` interleaved rounds. Medians of wall time and of
process CPU time are printed: on a shared, loaded machine the wall times of single rounds
scatter by 3x or more, so only the ratio within a round and the medians mean anything.
``--full`` also times all 1e5 epochs of ``train()`` (records every 10 steps).

Importing the stepper loads the OpenBLAS that numba calls (scipy's), so the
``threadpool_limits(1)`` blocks here and in ``train()`` hold it at one thread too; before
issue 15 it was loaded inside the block and kept its default threads. Target (issue 15):
Fig. 1 in under 60 s, i.e. under 0.6 ms per step on one core.
"""
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from kernelphase.solvers.order_dynamics import reduced_steps
from kernelphase.validation.polynomial_net import (PRESETS, full_gd, init_weights, make_data,
                                                   network_output, train)


def _time(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main(full=False, reps=5):
    cfg = PRESETS["fig1"]
    D, P, N, alpha, eps, c = (cfg[k] for k in ("D", "P", "N", "alpha", "eps", "c"))
    rng = np.random.default_rng(0)
    X, y, beta, s = make_data(D, P, rng)
    W = init_weights(N, D, rng)
    lr = c * N / alpha ** 2
    f0 = network_output(W, X, alpha, eps)
    wb, M = W.mean(0), W.T @ W / N
    T = np.outer(beta, beta)
    gamma = 2 * lr * alpha / N
    n_red, n_np = 400, 40

    def reduced():
        with threadpool_limits(1):
            reduced_steps(X, y + f0, wb.copy(), M.copy(), alpha, eps, gamma, n_red, 0, wb, M,
                          T, True)

    def numpy1():
        with threadpool_limits(1):
            full_gd(W, X, y, alpha, eps, lr, n_np)

    def numpy_default():
        full_gd(W, X, y, alpha, eps, lr, n_np)

    with threadpool_limits(1):
        reduced_steps(X, y + f0, wb.copy(), M.copy(), alpha, eps, gamma, 2, 0, wb, M, T, True)
    rows = {"reduced": [], "numpy 1 thread": [], "numpy default threads": []}
    for _ in range(reps):
        for name, fn, n in (("reduced", reduced, n_red), ("numpy 1 thread", numpy1, n_np),
                            ("numpy default threads", numpy_default, n_np)):
            wall, cpu = _time(fn)
            rows[name].append((wall / n, cpu / n))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in rows.items()}
    for k, (w, cpu) in med.items():
        print(f"{k:<24s}: {1e3 * w:8.3f} ms/step wall, {1e3 * cpu:8.3f} ms/step CPU (median of "
              f"{reps})")
    red_w, red_c = med["reduced"]
    for k in ("numpy 1 thread", "numpy default threads"):
        print(f"ratio {k} / reduced : {med[k][0] / red_w:6.2f} wall, {med[k][1] / red_c:6.2f} CPU")
    per_round = [rows["numpy 1 thread"][i][0] / rows["reduced"][i][0] for i in range(reps)]
    print(f"per-round wall ratio (numpy 1 thread / reduced): "
          f"{', '.join(f'{r:.2f}' for r in per_round)}")
    print(f"projected Fig. 1 (1e5 epochs): reduced {1e5 * red_w:.0f} s wall here, "
          f"{1e5 * red_c:.0f} s CPU (= wall on an idle core; target < 60 s); numpy "
          f"{1e5 * med['numpy 1 thread'][0]:.0f} s wall")
    if full:
        w, cpu = _time(lambda: train(D=D, P=P, N=N, alpha=alpha, eps=eps, c=c,
                                     steps=cfg["steps"], record_every=10))
        print(f"Fig. 1 full run, 1e5 epochs: {w:.0f} s wall, {cpu:.0f} s CPU")


if __name__ == "__main__":
    reps = 5
    if "--reps" in sys.argv:
        reps = int(sys.argv[sys.argv.index("--reps") + 1])
    main(full="--full" in sys.argv, reps=reps)
