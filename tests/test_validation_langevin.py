"""Langevin sampler (issue 4): exactness on a grid posterior, step bias, resume, engines, CLI."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.special import erf
from scipy.stats import kstest

from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run

SIGMA2, SA2, SW2 = 0.5, 1.5, 1.0


def _toy_data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 1))
    return X, np.tanh(1.5 * X[:, 0])


class _Copies:
    """``m`` independent one-unit, one-input erf networks stacked as one parameter vector, so
    thousands of independent chains run in one ``langevin_run`` call. Its likelihood gradient is
    checked against ``ErfNetworkPosterior.grad_loglik`` below."""

    def __init__(self, m, sigma2=SIGMA2):
        self.X, self.y = _toy_data()
        self.m, self.sigma2 = m, sigma2
        self.var_a, self.var_w = SA2, SW2

    def prior_sample(self, rng):
        return (rng.standard_normal(self.m) * math.sqrt(self.var_a),
                rng.standard_normal((self.m, 1)) * math.sqrt(self.var_w))

    def grad_loglik(self, a, W):
        x = self.X[:, 0]
        h = W[:, :1] * x                                     # (m, n)
        r = (a[:, None] * erf(h) - self.y) / self.sigma2
        ga = -(r * erf(h)).sum(1)
        gw = -(r * a[:, None] * 2 / math.sqrt(math.pi) * np.exp(-h * h) * x).sum(1)
        return ga, gw[:, None]


class _GibbsCopies(_Copies):
    """The same chains with the read-out drawn from its exact conditional (1-D Gaussians)."""
    readout = "gibbs"

    def sample_readout(self, W, rng):
        F = erf(W[:, :1] * self.X[:, 0])
        precision = (F * F).sum(1) / self.sigma2 + 1 / self.var_a
        return F @ self.y / self.sigma2 / precision + rng.standard_normal(self.m) / np.sqrt(precision)

    def gibbs_step(self, W, rng):
        a = self.sample_readout(W, rng)
        return a, self.grad_loglik(a, W)[1]


def _grid_posterior(sigma2=SIGMA2):
    """Exact 2-D posterior of (a, w) on a grid (independent of the sampler)."""
    X, y = _toy_data()
    a = np.linspace(-5, 5, 1201)
    w = np.linspace(-5, 5, 1201)
    A, Wg = np.meshgrid(a, w, indexing="ij")
    f = A[..., None] * erf(Wg[..., None] * X[:, 0])
    logp = -A ** 2 / (2 * SA2) - Wg ** 2 / (2 * SW2) - ((f - y) ** 2).sum(-1) / (2 * sigma2)
    p = np.exp(logp - logp.max())
    return a, w, p / p.sum()


def _cdf(grid, marg):
    c = np.cumsum(marg)
    return lambda x: np.interp(x, grid, c / c[-1])


def _final_states(lr, chains=4000, time_span=6.0, seed=0, model=_Copies):
    out = langevin_run(model(chains), int(time_span / lr), lr, seed)
    assert out.converged
    return out.a, out.W[:, 0]


def test_copies_gradient_is_the_model_gradient():
    X, y = _toy_data()
    copies = _Copies(3)
    a, W = np.array([0.3, -1.2, 2.0]), np.array([[0.7], [-0.4], [1.5]])
    ga, gW = copies.grad_loglik(a, W)
    for k in range(3):
        one = ErfNetworkPosterior(X, y, SIGMA2, SA2, SW2, width=1)
        g1a, g1W = one.grad_loglik(a[k:k + 1], W[k:k + 1])
        assert np.allclose([g1a[0], g1W[0, 0]], [ga[k], gW[k, 0]], rtol=1e-12)


@pytest.mark.parametrize("model", [_Copies, _GibbsCopies])
def test_sampler_matches_grid_posterior(model):
    """KS test of the marginals of 4000 independent chains at significance 0.001; the same check
    rejects a wrong law (the posterior at twice the noise). Langevin and Langevin-within-Gibbs."""
    a_s, w_s = _final_states(lr=2e-3, model=model)
    a, w, p = _grid_posterior()
    assert kstest(a_s, _cdf(a, p.sum(1))).pvalue > 1e-3
    assert kstest(w_s, _cdf(w, p.sum(0))).pvalue > 1e-3
    _, _, p_wrong = _grid_posterior(sigma2=2 * SIGMA2)
    assert kstest(w_s, _cdf(w, p_wrong.sum(0))).pvalue < 1e-3 or \
        kstest(a_s, _cdf(a, p_wrong.sum(1))).pvalue < 1e-3


def test_step_size_bias_shrinks():
    a, w, p = _grid_posterior()
    exact = (p.sum(0) * w ** 2).sum()
    errs = []
    for lr in (0.08, 0.02):
        _, w_s = _final_states(lr=lr, chains=20000, seed=1)
        errs.append(abs(np.mean(w_s ** 2) - exact))
    se = 3 * np.sqrt(2 / 20000) * exact
    assert errs[0] > 2 * se and errs[1] < errs[0] / 2


def test_prior_is_sampled_exactly_at_any_step():
    """With the likelihood switched off the exponential integrator is the exact OU step: the
    prior variances hold even at a step 50x the read-out prior variance."""
    class Flat(_Copies):
        def grad_loglik(self, a, W):
            return np.zeros_like(a), np.zeros_like(W)
    post = Flat(20000)
    post.var_a = 0.01
    out = langevin_run(post, 40, 0.5, seed=2)
    se = math.sqrt(2 / 20000)
    assert abs(out.a.var() / 0.01 - 1) < 4 * se
    assert abs(out.W.var() / SW2 - 1) < 4 * se


def _small_posterior(engine="numba", N=7, d=5, n=400):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((n, d))
    return ErfNetworkPosterior(X, X[:, 0] - 0.3 * (X[:, 0] ** 3 - 3 * X[:, 0]), 0.2, 0.5, 0.5, N,
                               engine=engine)


def test_gradient_matches_finite_differences():
    post = _small_posterior()
    rng = np.random.default_rng(0)
    a, W = rng.standard_normal(post.N), rng.standard_normal((post.N, post.d)) * 0.4

    def loglik(a, W):  # written out row by row, independently of both engines
        f = np.array([sum(a[i] * math.erf(W[i] @ x) for i in range(post.N)) for x in post.X])
        return -((f - post.y) ** 2).sum() / (2 * post.sigma2)
    ga, gW = post.grad_loglik(a, W)
    h = 1e-6
    for i in (0, 3):
        e = np.zeros_like(a)
        e[i] = h
        assert math.isclose(ga[i], (loglik(a + e, W) - loglik(a - e, W)) / (2 * h), rel_tol=1e-6)
        E = np.zeros_like(W)
        E[i, 2] = h
        assert math.isclose(gW[i, 2], (loglik(a, W + E) - loglik(a, W - E)) / (2 * h),
                            rel_tol=1e-6)


def test_numba_and_numpy_engines_agree():
    """The fused kernel (more rows than one chunk, so several chunks are summed) against the
    plain numpy step."""
    fast, ref = _small_posterior("numba", N=30, d=11), _small_posterior("numpy", N=30, d=11)
    rng = np.random.default_rng(1)
    a, W = fast.prior_sample(rng)
    for scale in (1.0, 4.0):     # 4: a third of the pre-activations beyond the series' range
        for g1, g2 in zip(fast.grad_loglik(a, scale * W), ref.grad_loglik(a, scale * W)):
            assert np.allclose(g1, g2, rtol=1e-12, atol=1e-12 * np.abs(g2).max())


@pytest.mark.parametrize("N,n", [(6, 300), (40, 30)])     # N > n: the n x n (wide) draw
def test_erf_gibbs_readout_is_the_gaussian_conditional(N, n):
    """``ErfNetworkPosterior.sample_readout`` (both engines) against the normal equations with
    scipy's erf features: the mean exactly, the covariance statistically."""
    post = _small_posterior(N=N, d=4, n=n)
    W = np.random.default_rng(5).standard_normal((post.N, post.d)) * 0.6
    F = erf(post.X @ W.T)
    A = F.T @ F / post.sigma2 + np.eye(post.N) / post.var_a
    mean = np.linalg.solve(A, F.T @ post.y / post.sigma2)

    class Zero:
        def standard_normal(self, shape):
            return np.zeros(shape)
    for engine in ("numba", "numpy"):
        one = _small_posterior(engine, N=N, d=4, n=n)
        assert np.allclose(one.sample_readout(W, Zero()), mean, rtol=1e-10, atol=1e-12)
        a, gW = one.gibbs_step(W, np.random.default_rng(7))     # one erf evaluation for both
        assert np.array_equal(a, one.sample_readout(W, np.random.default_rng(7)))
        assert np.allclose(gW, one.grad_loglik(a, W)[1], rtol=1e-12, atol=1e-12 * abs(gW).max())
    rng = np.random.default_rng(6)
    draws = np.array([post.sample_readout(W, rng) for _ in range(4000)])
    cov = np.linalg.inv(A)
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / len(draws))
    assert np.all(np.abs(np.cov(draws.T) - cov) < 5 * se)


def test_vectorised_erf_series_against_mpmath():
    """The kernel's branch-free erf and exp(-h^2) on |h| <= 2, to a few ulp, against mpmath."""
    import mpmath
    from numba import njit

    from kernelphase.validation.langevin import _erf_series
    both = njit(lambda h: _erf_series(h))
    hs = np.concatenate([np.linspace(-2, 2, 801), [1e-300, -1e-12, 0.0, 1.9999999999]])
    for h in hs:
        e, g = both(h)
        assert abs(e - float(mpmath.erf(h))) <= 4e-16 * max(abs(float(mpmath.erf(h))), 1e-300)
        assert abs(g - float(mpmath.exp(-mpmath.mpf(h) ** 2))) <= 4e-15 * math.exp(-h * h)


def test_erf_series_source_is_the_printed_horner_form():
    """The literal coefficients in ``_erf_series`` are exactly what ``_horner_lines`` prints
    from the Taylor coefficients (computed here again), so hand edits cannot drift."""
    import inspect

    from kernelphase.validation import langevin as L
    two = 2.0 / math.sqrt(math.pi)
    erf_c = tuple(two * (-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(31))
    exp_c = tuple(1.0 / math.factorial(k) for k in range(14))
    assert erf_c == L._ERF_TAYLOR and exp_c == L._EXP_TAYLOR
    body = inspect.getsource(L._erf_series.py_func)
    squares = ["    e = e * e"] * 4
    expected = "\n".join(["    s = h * h", f"    s = s if s < {L._SERIES_EDGE ** 2!r} else "
                          f"{L._SERIES_EDGE ** 2!r}", "    y = -0.0625 * s",
                          *L._horner_lines("e", exp_c, "y"), *squares,
                          *L._horner_lines("p", erf_c, "s"), "    return h * p, e", ""])
    assert body.endswith(expected)


def test_resume_after_kill_is_bit_identical(tmp_path):
    from kernelphase.io import RunDir
    post = _small_posterior()
    obs = lambda a, W: {"w2": (W ** 2).mean()}
    # lr 1e-4: at 1e-3 (read-out curvature n/sigma2 = 2000) the run diverges, which this
    # test silently accepted before runs had a status
    kw = dict(lr=1e-4, seed=5, key=(1, 2), burn_in=10, sample_every=3, observe=obs)
    straight = langevin_run(post, steps=60, **kw)
    assert straight.converged
    # a kill after the 40-step checkpoint leaves exactly this file behind
    with RunDir(tmp_path, {"seed": 5, "steps": 60}) as run:
        first = langevin_run(post, steps=40, checkpoint=(run, "k.npz"), checkpoint_every=20, **kw)
    with RunDir(tmp_path, {"seed": 5, "steps": 60}, resume=True) as run:
        resumed = langevin_run(post, steps=60, checkpoint=(run, "k.npz"), checkpoint_every=20,
                               **kw)
    assert first.step == 40 and resumed.step == 60 and resumed.converged
    assert np.array_equal(resumed.W, straight.W) and np.array_equal(resumed.a, straight.a)
    assert np.array_equal(resumed.acc["w2"], straight.acc["w2"])
    with pytest.raises(ValueError, match="seed=6"):
        RunDir(tmp_path, {"seed": 6, "steps": 60}, resume=True).__enter__()
    with RunDir(tmp_path, {"seed": 5, "steps": 60}, resume=True) as run, \
            pytest.raises(ValueError, match="steps=30 is below the 60 steps"):
        langevin_run(post, steps=30, checkpoint=(run, "k.npz"), **kw)


def test_diverged_network_has_status_6_and_its_nan_checkpoint_survives(tmp_path):
    """A step far too large blows the weights up: the run stops with status 6 instead of
    returning numbers; the saved state keeps its NaN/huge values and resuming reports the
    same status."""
    from kernelphase.io import RunDir, load_npz
    post = _small_posterior()
    with RunDir(tmp_path, {"lr": 5.0}) as run:
        res = langevin_run(post, steps=200, lr=5.0, seed=1, checkpoint=(run, "k.npz"))
    assert res.status == 6 and not res.converged and res.message.startswith("run diverged")
    assert res.step < 200
    st = load_npz(tmp_path / "k.npz")
    assert int(st["step"]) == res.step and np.array_equal(st["W"], res.W, equal_nan=True)
    with RunDir(tmp_path, {"lr": 5.0}, resume=True) as run:
        again = langevin_run(post, steps=200, lr=5.0, seed=1, checkpoint=(run, "k.npz"))
    assert again.status == 6 and again.step == res.step

    class NaNPost(_Copies):
        def grad_loglik(self, a, W):
            return np.full_like(a, np.nan), np.zeros_like(W)
    res = langevin_run(NaNPost(3), steps=50, lr=0.01, seed=0)
    assert res.status == 6 and res.step == 1 and np.isnan(res.a).all()


def test_diverged_cell_gives_report_status_6():
    from kernelphase.validation.teacher_student import run_cubic
    rep = run_cubic(preset="fig2", scale=0.02, sigma2=(0.3,), nets=2, steps=60, n_test=100,
                    lr=1.0, workers=1, progress=False)
    assert rep.status == 6 and not rep.converged
    assert rep.rows[0]["status"] == 6 and rep.rows[0]["diverged_networks"] == [0, 1]
    assert "b" not in rep.rows[0]


def test_ensemble_same_numbers_in_process_and_on_a_pool():
    from kernelphase.validation.teacher_student import run_cubic
    kw = dict(preset="fig2", scale=0.02, sigma2=(0.3,), nets=2, steps=60, n_test=100,
              progress=False)
    one, pool = run_cubic(workers=1, **kw), run_cubic(workers=2, **kw)
    assert one.rows[0]["b"] == pool.rows[0]["b"]


def test_dask_local_cluster_gives_the_same_numbers():
    distributed = pytest.importorskip("dask.distributed")
    from kernelphase.validation.teacher_student import run_cubic
    kw = dict(preset="fig2", scale=0.02, sigma2=(0.3,), nets=2, steps=60, n_test=100,
              progress=False)
    local = run_cubic(workers=1, **kw)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = run_cubic(scheduler=client, **kw)
        via_address = run_cubic(scheduler=cluster.scheduler_address, **kw)
    assert local.rows[0]["b"] == remote.rows[0]["b"] == via_address.rows[0]["b"]


def _has_dask():
    import importlib.util
    return importlib.util.find_spec("distributed") is not None


def test_cli_validate_small_and_errors(run_cli, tmp_path):
    st, out, err = run_cli("validate", "cubic", "--scale", 0.02, "--sigma2", "0.3", "--nets", 2,
                           "--steps", 40, "--workers", 1, "--out", tmp_path / "v")
    assert st == 0, err
    rep = json.loads((tmp_path / "v" / "report.json").read_text())
    row = rep["rows"][0]
    assert {"theory", "sim_mean", "std_error", "z_score", "rel_diff"} <= set(row["b"])
    assert rep["provenance"]["kernelphase_version"] and (tmp_path / "v" / "phi_and_b.png").exists()
    for argv, match in [(("--sigma2", "-0.1"), "sigma2=-0.1"), (("--nets", 0), "nets=0"),
                        (("--preset", "nope"), "preset='nope'"), (("--workers", 0), "workers=0"),
                        (("--readout", "exact"), "readout='exact'"),
                        (("--data-scale", "0"), "data_scale=0"),
                        (("--scheduler", "tcp://127.0.0.1:9"),
                         "unreachable" if _has_dask() else "needs dask.distributed")]:
        st, out, err = run_cli("validate", "cubic", "--out", tmp_path / "bad", *argv)
        assert st == 2 and match in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("preset,beta,alpha", [("appD", 0.25, None), ("appD", 4.0, None),
                                               ("appD", 0.25, 0.25), ("fig2", 0.25, None)])
def test_scaled_presets_leave_the_theory_invariant(preset, beta, alpha):
    """Table 1 family: u = n^2 s_a^2/(s^4 d N) and v = n s_a^2/(s^2 d) are invariant, and so are the
    EK order parameters b, c (scales chosen so that rounding of n, d, N is exact)."""
    from kernelphase.solvers.cubic import cubic_phase
    from kernelphase.validation.teacher_student import PRESETS, scaled_preset
    full, p = scaled_preset(preset, 1.0), scaled_preset(preset, beta, alpha)
    assert p["data_scale"] == (alpha or beta ** PRESETS[preset]["data_power"])
    if preset == "appD" and alpha is None:
        assert p["n"] / p["d"] == full["n"] / full["d"] == 4      # App. D keeps n/d
    for q in (full, p):
        q["N"], q["s2"] = q["width"][-1], q["sigma2"][-1]
    inv = [(q["n"] ** 2 * q["sigma_a2"] / (q["s2"] ** 2 * q["d"] * q["N"]),
            q["n"] * q["sigma_a2"] / (q["s2"] * q["d"])) for q in (full, p)]
    np.testing.assert_allclose(inv[1], inv[0], rtol=1e-12)
    ph = [cubic_phase(q["eps"], q["s2"], q["n"], q["d"], q["N"], q["sigma_a2"], q["sigma_w2"])
          for q in (full, p)]
    assert ph[0].phase == ph[1].phase
    np.testing.assert_allclose([ph[1].b, ph[1].c], [ph[0].b, ph[0].c], rtol=1e-9)


def test_grokking_summary_on_curves_with_known_answers():
    """Train loss 1 + 5 exp(-t/tau): 90 % of its drop by t = tau ln 10. A test loss falling by 1
    along 1/(1 + (10/t)^4) makes 90 % of that late drop at t = 10 * 9^(1/4); one that falls with
    the train loss leaves 10 % of its drop for later; one that rises has no late drop."""
    from kernelphase.validation.teacher_student import grokking_summary
    tau = 3e-3
    t = np.concatenate([[0.0], np.geomspace(1e-4, 100, 600)])     # records 2.3 % apart
    fit = np.exp(-t / tau)

    def summary(test):
        return grokking_summary({"curves": {"time": t, "ensemble_train_loss": 1 + 5 * fit,
                                            "ensemble_test_loss": test}})
    g = summary(9 - t ** 4 / (t ** 4 + 1e4))
    assert g.converged
    assert g.t_train == pytest.approx(tau * math.log(10), rel=0.03)
    assert g.late_drop == pytest.approx(1.0, abs=0.01)
    assert g.t_test == pytest.approx(10 * 9 ** 0.25, rel=0.03)
    assert g.delay == pytest.approx(10 * 9 ** 0.25 / (tau * math.log(10)), rel=0.06)
    g = summary(8 + fit)
    assert g.late_drop == pytest.approx(0.1, abs=0.01) and g.delay < 2.5 and g.status == 0
    g = summary(8.5 - 0.5 * fit)
    assert g.late_drop < 0 and math.isnan(g.delay) and g.status == 0


def test_grokking_summary_of_a_too_short_run_is_status_7():
    """The train loss still falling at the end (its 90 % drop inside the last 10 % of the
    records), a flat train loss, or too few records: status 7 and NaN delay, not a number."""
    from kernelphase.validation.teacher_student import grokking_summary
    t = np.concatenate([[0.0], np.geomspace(1e-4, 1e-2, 100)])

    def summary(train, test, time=t):
        return grokking_summary({"curves": {"time": time, "ensemble_train_loss": train,
                                            "ensemble_test_loss": test}})
    for g in (summary(1 + 5 * np.exp(-t / 1e-2), 9 - t),      # tau = 1e-2: not settled by 1e-2
              summary(1 + 5 * np.exp(-t / 3e-3), 9 - t),      # still falls 9 % in the last 10 %
              summary(np.ones_like(t), 9 - t),                # no drop at all
              summary(np.array([5.0, 1, 1, 1]), np.array([9.0, 8, 7, 6]), t[:4])):
        assert g.status == 7 and not g.converged and g.message.startswith("run too short")
        assert math.isnan(g.delay) and math.isnan(g.t_test) and math.isnan(g.late_drop)


def test_cli_width_sweep_writes_learning_curves(run_cli, tmp_path):
    st, out, err = run_cli("validate", "cubic-width", "--scale", 0.02, "--widths", "20,10",
                           "--nets", 2, "--steps", 200, "--workers", 1, "--out", tmp_path / "w")
    assert st == 0, err
    rep = json.loads((tmp_path / "w" / "report.json").read_text())
    assert [r["width"] for r in rep["rows"]] == [20, 10]
    c = rep["rows"][0]["curves"]
    assert np.shape(c["test_loss"]) == (2, len(c["steps"])) and c["steps"][0] == 0
    assert {"t_train", "t_test", "delay", "late_drop", "late_drop_fraction"} <= set(
        rep["rows"][0]["grokking"])
    assert (tmp_path / "w" / "losses.png").exists()


def test_cli_sigkill_then_resume_gives_the_uninterrupted_report(tmp_path):
    """Kill the CLI process group with SIGKILL after its first checkpoint, resume, and compare
    with an uninterrupted run of the same seed."""
    argv = [sys.executable, "-m", "kernelphase", "validate", "cubic", "--scale", "0.02",
            "--sigma2", "0.3", "--nets", "2", "--steps", "12000", "--workers", "1", "--out"]
    env = dict(os.environ, MPLBACKEND="Agg")
    subprocess.run(argv + [str(tmp_path / "straight")], check=True, env=env,
                   capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(argv + [str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / "checkpoints" / "N14_s0.3_net0.npz"
    t0 = time.time()
    while not ck.exists() and time.time() - t0 < 120:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    from kernelphase.io import load_npz
    assert 0 < int(load_npz(ck)["step"]) < 12000 and not (out / "report.json").exists()
    subprocess.run(argv + [str(out), "--resume"], check=True, env=env, capture_output=True)
    a = json.loads((tmp_path / "straight" / "report.json").read_text())
    b = json.loads((out / "report.json").read_text())
    assert a["rows"] == b["rows"]


def _live_session_members(sid):
    """Processes of session ``sid`` that are not zombies (Linux /proc)."""
    live = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                live.append(int(entry))
    return live


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs Linux /proc")
def test_pool_workers_end_when_the_run_is_killed(tmp_path):
    """SIGKILL of the CLI process alone (not its group) must not leave pool workers running on,
    which would overwrite the checkpoints of a resumed run."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "kernelphase", "validate", "cubic", "--scale", "0.02",
            "--sigma2", "0.3", "--nets", "2", "--steps", "2000000", "--workers", "2",
            "--out", str(out)]
    proc = subprocess.Popen(argv, env=dict(os.environ, MPLBACKEND="Agg"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not list(out.glob("checkpoints/*.npz")) and time.time() - t0 < 120:
        time.sleep(0.05)
    assert len(_live_session_members(proc.pid)) >= 3          # the CLI and its two workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.time()
    while _live_session_members(proc.pid) and time.time() - t0 < 20:
        time.sleep(0.1)
    left = _live_session_members(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left
