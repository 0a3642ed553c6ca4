"""Langevin steps of the Fig. 2 network: the fused numba kernel in float64 and float32 against
the plain numpy step, as fractions of the machine's matrix-multiply throughput, measured in the
same process (issues 4 and 14).

For scale 1/8 and 1/2 of the Fig. 2 preset (Table 1 family) one network is advanced by
``langevin_run`` with ``engine="numba"`` (erf, erf' by vectorised series and the residual fused
in one pass, parallel over row chunks, single-threaded BLAS per chunk), in float64 and with
``dtype="float32"`` (sgemm and float32 series; Gaussian noise drawn in numba, xoshiro256**
and the ziggurat, fused with the weight update; weights and observables float64), and with
``engine="numpy"`` (X @ W.T, scipy erf, numpy exp, BLAS on every core). Printed: ms per step,
GFLOP/s counting the step's two products (4 n d N flops), and that rate as a fraction of the
same-shape products timed right beside the steps (dgemm for numpy and float64, sgemm for
float32; the faster of all-thread and one-thread BLAS). Each step is timed inside the run
through ``langevin_run``'s ``bar`` and the fastest step of several rounds is kept, likewise the
fastest product pair, so that other workers on a shared machine disturb the ratio least.
``... step 1`` runs this table with one thread everywhere (numba, BLAS, the reference). The
table is printed twice: by wall time, then by process CPU time (robust to time slicing on a
shared machine: see ``main``).
Second table: the App. D networks (narrowest width of scales 1/8, 1/4, 1/2) with the read-out
drawn from its exact conditional every step (``readout="gibbs"``) against plain Langevin steps:
ms per step, and Langevin time covered per second of each at its default step size.
Third table: the read-out draw of the App. D widest networks (N > n), by the n x n system
(``gaussian_readout_wide``) against the N x N Cholesky factorisation (``gaussian_readout``).
Fourth table (issue 13): the generic path of ``NetworkPosterior`` (sigma, sigma' generated from the
activation spec by codegen, libm calls) against the fused erf kernel and the plain numpy step, for
erf (same model, so the ratio is the price of the generic path) and tanh: ms per step, best of
interleaved repeats (robust on a shared machine).
Fifth table: the hysteresis protocol's Langevin-within-Gibbs step (``hyst-wide``, one thread)
in float32 against float64 and the numpy engine.
Run: ``python benchmarks/bench_langevin.py`` (``... step [threads]`` for the first table only,
``... generic`` for the fourth, ``... gibbs32`` for the fifth; ``--scales 0.25,0.5`` for other scales of the first table).
"""
import argparse
import time

import numpy as np

from kernelphase.validation.langevin import (ErfNetworkPosterior, NetworkPosterior,
                                             gaussian_readout, gaussian_readout_wide,
                                             langevin_run)
from kernelphase.validation.teacher_student import cubic_data, default_lr, scaled_preset


def product_pair_seconds(n, d, N, dtype, threads, clock=time.perf_counter):
    """Seconds of the step's two matrix products at its shape, ``(n x d)(d x N)`` and
    ``(N x n)(n x d)``, in ``dtype`` with BLAS on ``threads`` threads (None: BLAS default), by
    ``clock`` (wall or process CPU time)."""
    import contextlib
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)
    WT = rng.standard_normal((d, N)).astype(dtype)
    G = np.empty((n, N), dtype)
    out = np.empty((N, d), dtype)
    ctx = contextlib.nullcontext() if threads is None else threadpool_limits(threads, "blas")
    with ctx:
        return best_time(lambda: (np.dot(X, WT, out=G), np.dot(G.T, X, out=out)), reps=10,
                         clock=clock)


def matmul_seconds(n, d, N, dtype, threads=None, clock=time.perf_counter):
    """The machine's time for the two products: the faster of all-thread and single-thread BLAS
    (on a loaded machine threaded BLAS at these sizes can be far slower than one thread), or
    on ``threads`` threads."""
    if threads is not None:
        return product_pair_seconds(n, d, N, dtype, threads, clock)
    return min(product_pair_seconds(n, d, N, dtype, None, clock),
               product_pair_seconds(n, d, N, dtype, 1, clock))


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


def gibbs_table():
    print("App. D, narrowest width: Langevin-within-Gibbs against plain Langevin")
    for scale in (0.125, 0.25, 0.5):
        p = scaled_preset("appD", scale)
        N, d, n, s2 = p["width"][-1], p["d"], p["n"], p["sigma2"][0]
        X, y = cubic_data(n, d, p["eps"], 0)
        rate = {}
        for readout in ("langevin", "gibbs"):
            post = ErfNetworkPosterior(X, y, s2, p["sigma_a2"], p["sigma_w2"], N, readout=readout)
            lr = default_lr(n, d, s2, p["sigma_w2"], N, p["sigma_a2"], readout)
            rate[readout] = (steps_per_second(post, lr, seconds=2.0), lr)
        (sl, ll), (sg, lg) = rate["langevin"], rate["gibbs"]
        print(f"scale {scale:g} (N={N}, d={d}, n={n}): plain {1e3 / sl:.3f} ms/step, "
              f"gibbs {1e3 / sg:.3f} ms/step; Langevin time per second "
              f"{sl * ll:.3g} vs {sg * lg:.3g} ({sg * lg / (sl * ll):.1f}x)")


def best_time(fn, reps=7, clock=time.perf_counter):
    fn()
    times = []
    for _ in range(reps):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def readout_table():
    from threadpoolctl import threadpool_limits
    print("App. D, widest width: exact read-out draw, n x n (wide) against N x N system "
          "(single-threaded BLAS, as inside langevin_run)")
    rng = np.random.default_rng(0)
    with threadpool_limits(1, user_api="blas"):
        for scale in (0.125, 0.25, 0.5, 1.0):
            _readout_row(scale, rng)


def _readout_row(scale, rng):
    p = scaled_preset("appD", scale)
    N, d, n, s2 = p["width"][0], p["d"], p["n"], p["sigma2"][0]
    X, y = cubic_data(n, d, p["eps"], 0)
    post = ErfNetworkPosterior(X, y, s2, p["sigma_a2"], p["sigma_w2"], N)
    F = post.erf_pair(post.prior_sample(rng)[1])[0]
    t_wide = best_time(lambda: gaussian_readout_wide(F, y, post.var_a, s2, rng))
    t_full = best_time(lambda: gaussian_readout(F.T @ F, F.T @ y, post.var_a, s2, rng))
    print(f"scale {scale:g} (N={N}, n={n}): n x n {1e3 * t_wide:.2f} ms, N x N "
          f"{1e3 * t_full:.2f} ms ({t_full / t_wide:.1f}x)")


class _StepClock:
    """A ``bar`` for :func:`langevin_run` that records the ``clock`` at every step."""

    def __init__(self, clock):
        self.clock = clock
        self.times = [clock()]

    def update(self, k):
        self.times.append(self.clock())

    def best(self):
        return float(np.min(np.diff(self.times[1:])))


def best_step_seconds(post, lr, steps, clock=time.perf_counter):
    """Fastest single step of a run (the step is timed inside ``langevin_run`` through its
    ``bar``; the minimum is the step's cost without the other workers' interruptions)."""
    bar = _StepClock(clock)
    langevin_run(post, steps, lr, seed=0, bar=bar)
    return bar.best()


def main(scales=(0.125, 0.5), rounds=5, threads=None, clock=time.perf_counter):
    """Step time of the numpy step and of the fused kernel in float64 and float32, each as a
    fraction of the same-shape matrix-multiply throughput of its dtype. Steps and products are
    timed in turn, ``rounds`` times, keeping the fastest of each (robust on a shared machine).
    ``threads``: numba and BLAS threads of everything (default: numba's and BLAS's own);
    ``clock``: wall time, or ``time.process_time`` (CPU seconds of all threads: on a machine
    shared with other workers, a computation longer than the scheduler's time slice is
    interrupted in every round, and its wall-clock minimum is biased)."""
    if threads is not None:
        import numba
        from threadpoolctl import threadpool_limits
        numba.set_num_threads(threads)
        threadpool_limits(threads)
        print(f"threads: {threads} (numba, BLAS and the reference products)")
    print("Fig. 2 network, one Langevin step: numpy, fused float64, fused float32; fraction of "
          "the same-shape matmul throughput (4 n d N flops per step; dgemm for numpy and "
          "float64, sgemm for float32; best of all-thread and one-thread BLAS), same process")
    for scale in scales:
        p = scaled_preset("fig2", scale)
        N, d, n = p["width"][0], p["d"], p["n"]
        X, y = cubic_data(n, d, p["eps"], 0)
        lr = default_lr(n, d, 0.3, p["sigma_w2"], N, p["sigma_a2"])
        args = (X, y, 0.3, p["sigma_a2"], p["sigma_w2"], N)
        posts = {"numpy": ErfNetworkPosterior(*args, engine="numpy"),
                 "float64": ErfNetworkPosterior(*args),
                 "float32": ErfNetworkPosterior(*args, dtype="float32")}
        for post in posts.values():
            langevin_run(post, 5, lr, seed=0)             # compile / load the cache
        best = {k: float("inf") for k in (*posts, "dgemm", "sgemm")}
        for _ in range(rounds):
            for k, post in posts.items():
                best[k] = min(best[k], best_step_seconds(post, lr, 30, clock))
            best["dgemm"] = min(best["dgemm"], matmul_seconds(n, d, N, np.float64, threads, clock))
            best["sgemm"] = min(best["sgemm"], matmul_seconds(n, d, N, np.float32, threads, clock))
        ref = {"numpy": "dgemm", "float64": "dgemm", "float32": "sgemm"}
        flops = 4 * n * d * N
        unit = "CPU " if clock is time.process_time else ""
        print(f"scale {scale:g} (N={N}, d={d}, n={n}), {unit}seconds: dgemm {flops / best['dgemm'] / 1e9:.1f} "
              f"GFLOP/s, sgemm {flops / best['sgemm'] / 1e9:.1f} GFLOP/s")
        for k in posts:
            print(f"  {k:8s} {1e3 * best[k]:7.3f} {unit}ms/step  {flops / best[k] / 1e9:6.1f} GFLOP/s  "
                  f"{best[ref[k]] / best[k]:4.0%} of {ref[k]}  "
                  f"({best['numpy'] / best[k]:.2f}x numpy)")


def interleaved_ms(posts, lr, steps=40, reps=7):
    """ms per Langevin step of each posterior: best of ``reps`` runs, taken in turn."""
    for post in posts.values():
        langevin_run(post, 5, lr, seed=0)             # compile / load the cache
    best = {k: float("inf") for k in posts}
    for _ in range(reps):
        for k, post in posts.items():
            t0 = time.perf_counter()
            langevin_run(post, steps, lr, seed=0)
            best[k] = min(best[k], (time.perf_counter() - t0) / steps * 1e3)
    return best


def gibbs32_table(scales=(0.25, 0.5)):
    """The hysteresis protocol's step (``hyst-wide``, Langevin-within-Gibbs) in float64 and
    float32, one thread (as in the protocol's worker processes), with the plain numpy-engine
    Gibbs step as the reference."""
    from threadpoolctl import threadpool_limits
    import numba
    print("hyst-wide, Langevin-within-Gibbs step, one thread: numpy float64, fused float64, "
          "fused float32")
    numba.set_num_threads(1)
    with threadpool_limits(1):
        for scale in scales:
            p = scaled_preset("hyst-wide", scale)
            N, d, n = p["width"][0], p["d"], p["n"]
            X, y = cubic_data(n, d, p["eps"], 0)
            args = (X, y, 0.5, p["sigma_a2"], p["sigma_w2"], N)
            lr = default_lr(n, d, 0.5, p["sigma_w2"], N, p["sigma_a2"], "gibbs")
            ms = interleaved_ms({
                "numpy": ErfNetworkPosterior(*args, engine="numpy", readout="gibbs"),
                "float64": ErfNetworkPosterior(*args, readout="gibbs"),
                "float32": ErfNetworkPosterior(*args, readout="gibbs", dtype="float32")},
                lr, steps=10, reps=3)
            print(f"scale {scale:g} (N={N}, d={d}, n={n}): numpy {ms['numpy']:.1f} ms/step, "
                  f"float64 {ms['float64']:.1f}, float32 {ms['float32']:.1f}; "
                  f"float64/float32 {ms['float64'] / ms['float32']:.2f}x, "
                  f"numpy/float32 {ms['numpy'] / ms['float32']:.2f}x")


def generic_table():
    print("Generic activation path (codegen sigma, sigma') against the fused erf kernel and numpy")
    for scale in (0.125, 0.5):
        p = scaled_preset("fig2", scale)
        N, d, n = p["width"][0], p["d"], p["n"]
        X, y = cubic_data(n, d, p["eps"], 0)
        lr = default_lr(n, d, 0.3, p["sigma_w2"], N, p["sigma_a2"])
        args = (X, y, 0.3, p["sigma_a2"], p["sigma_w2"], N)
        ms = interleaved_ms({
            "fused": ErfNetworkPosterior(*args),
            "generic": NetworkPosterior(*args, activation="erf", kernel="generic"),
            "numpy": ErfNetworkPosterior(*args, engine="numpy"),
            "tanh": NetworkPosterior(*args, activation="tanh")}, lr)
        print(f"scale {scale:g} (N={N}, d={d}, n={n}): erf fused {ms['fused']:.3f} ms/step, "
              f"erf generic {ms['generic']:.3f}, numpy {ms['numpy']:.3f}, tanh generic "
              f"{ms['tanh']:.3f}; generic/fused {ms['generic'] / ms['fused']:.2f}x, "
              f"generic/numpy {ms['generic'] / ms['numpy']:.2f}x")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="?", choices=("all", "step", "generic", "gibbs32"),
                        default="all", help="all tables (default), the step table only, the "
                                            "generic one, or the float32 Gibbs one")
    parser.add_argument("threads", nargs="?", type=int, default=None,
                        help="with 'step': numba and BLAS threads of everything")
    parser.add_argument("--scales", default="0.125,0.5",
                        help="comma-separated scales of the Fig. 2 preset in the step table")
    args = parser.parse_args(argv)
    try:
        args.scales = tuple(float(v) for v in args.scales.split(","))
    except ValueError:
        parser.error(f"--scales={args.scales!r} is not a comma-separated list of numbers")
    return args


if __name__ == "__main__":
    args = parse_args()
    if args.table == "generic":
        generic_table()
    elif args.table == "gibbs32":
        gibbs32_table()
    elif args.table == "step":
        main(scales=args.scales, threads=args.threads)
        main(scales=args.scales, threads=args.threads, clock=time.process_time)
    else:
        main(scales=args.scales)
        main(scales=args.scales, clock=time.process_time)
        gibbs_table()
        readout_table()
        generic_table()
        gibbs32_table()
