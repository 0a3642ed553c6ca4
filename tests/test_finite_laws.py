"""The single-neuron laws of the finite-data theory (solvers/finite_kernel.py): the cavity law is
the exact conditional of one neuron given the others, the metrics are the stated formulas, and
the fluctuating law against Langevin networks (slow)."""
import numpy as np
import pytest

from kernelphase.solvers.finite_kernel import (LAWS, _log_tilt, _metric, _Samples, _set_metric,
                                               _weights)


def _gp_log_evidence(P, y, kappa, sigma2):
    """log N(y; 0, sigma^2 I + kappa P^T P): the read-out weights integrated out, by numpy."""
    A = sigma2 * np.eye(len(y)) + kappa * P.T @ P
    return -0.5 * np.linalg.slogdet(A)[1] - 0.5 * y @ np.linalg.solve(A, y)


def test_cavity_law_is_the_exact_conditional_of_one_neuron():
    """Given the other neurons, the exact density of neuron i over its prior is the ratio of
    GP evidences with and without it; the law's tilt -log(L)/2 + kappa m^2/(2L), with metric
    A_{-i}^{-1} and t = A_{-i}^{-1} y set through the solver's own functions, equals it, and
    the posterior mean read-out E[a_i | W] = kappa m / L."""
    rng = np.random.default_rng(4)
    n, N, kappa, s2 = 15, 9, 0.3, 0.2
    y = rng.standard_normal(n)
    others = np.tanh(rng.standard_normal((N - 1, n)))
    cand = np.tanh(1.5 * rng.standard_normal((40, n)))           # candidate neurons phi
    A = s2 * np.eye(n) + kappa * others.T @ others
    Ainv = np.linalg.inv(A)
    t = Ainv @ y
    base = _gp_log_evidence(others, y, kappa, s2)
    exact = np.array([_gp_log_evidence(np.vstack([others, c]), y, kappa, s2) - base
                      for c in cand])
    smp = _Samples(cand.astype(np.float32), (cand ** 2).sum(1), np.zeros(len(cand)),
                   np.zeros(len(cand), int))
    _set_metric(smp, Ainv)
    s = cand.astype(np.float32).astype(float) @ t
    law = _log_tilt(s, smp.L(kappa), kappa)
    assert np.allclose(law, exact, rtol=1e-4, atol=1e-4)
    # E[a | W] of the full network (GP posterior mean of the weights) for the last neuron
    P = np.vstack([others, cand[0]])
    a_mean = kappa * P @ np.linalg.solve(s2 * np.eye(n) + kappa * P.T @ P, y)
    L0 = 1 + kappa * cand[0] @ Ainv @ cand[0]
    assert a_mean[-1] == pytest.approx(kappa * (cand[0] @ t) / L0, rel=1e-10)
    # and the mean-field law without L (Eq. 7) is not the conditional
    assert np.max(np.abs(_log_tilt(s, np.ones_like(s), kappa) - exact)) > 0.1


def test_metrics_are_the_stated_formulas():
    """_metric against numpy: (sigma^2 I + K)^{-1} and, with the fluctuations,
    (sigma^2 I + K + sigma_a^4/N Cov_w(phi s/L))^{-1}, K = sigma_a^2 E_w[phi phi^T], with the
    importance weights w of the law written out here."""
    rng = np.random.default_rng(5)
    S, n, N, sa2, s2 = 3000, 7, 12, 1.5, 0.3
    kappa = sa2 / N
    F = np.tanh(rng.standard_normal((S, n))).astype(np.float32)
    Fd = F.astype(float)
    q = (Fd ** 2).sum(1)
    t0, t = 0.3 * rng.standard_normal(n), rng.standard_normal(n)
    M0 = np.diag(rng.uniform(0.5, 2.0, n))
    L = 1 + kappa * np.einsum("ij,jk,ik->i", Fd, M0, Fd)
    l0 = _log_tilt(Fd @ t0, L, kappa)
    smp = _Samples(F, q, l0, np.arange(S) % 4)
    _set_metric(smp, M0)
    s = Fd @ t
    lw = _log_tilt(s, L, kappa) - l0
    w = np.exp(lw - lw.max())
    w /= w.sum()
    assert np.allclose(_weights(smp, t, kappa)[0], w, rtol=1e-5)
    K = sa2 * (Fd * w[:, None]).T @ Fd
    ref_cav = np.linalg.inv(s2 * np.eye(n) + K)
    cov = np.cov((Fd * (s / L)[:, None]).T, aweights=w, bias=True)
    ref_fl = np.linalg.inv(s2 * np.eye(n) + K + sa2 ** 2 / N * cov)
    assert np.allclose(_metric(smp, t, kappa, s2, sa2, N, "cavity"), ref_cav, rtol=1e-4)
    assert np.allclose(_metric(smp, t, kappa, s2, sa2, N, "fluctuating"), ref_fl, rtol=1e-4)
    assert _metric(smp, t, kappa, s2, sa2, N, "eq7") is None
    # the fluctuations lower L on average: M_fluctuating <= M_cavity
    assert np.linalg.eigvalsh(ref_cav - ref_fl).min() > -1e-10
    assert set(LAWS) == {"eq7", "cavity", "fluctuating"}


@pytest.mark.slow
def test_fluctuating_law_against_langevin_networks():
    """Population b at 1/16 of Fig. 2 (sigma^2 = 0.3, data seed 0): Langevin ensemble (exact
    posterior, 4 networks x 4000 steps) against the three laws on the same training set. The
    fluctuating law is within 3 combined standard errors; Eq. 7 lies below and the cavity law
    above, each by more than 3."""
    from kernelphase.validation.teacher_student import finite_theory_cell, run_cubic
    sim = run_cubic("fig2", 0.0625, sigma2=0.3, nets=4, steps=4000, seed=0, workers=2,
                    progress=False)
    row = sim.rows[0]["b_exact"]
    b_sim, se_sim = row["sim_mean"], row["std_error"]
    z = {}
    for law in LAWS:
        cell = finite_theory_cell(0.3, "fig2", 0.0625, None, 0, law, chains=1024, steps=200,
                                  mc_seed=1, n_test=500, tol=0.02, maxiter=12)
        assert cell["status"] == 0, cell["message"]
        th = cell["b_exact"]
        z[law] = (th["value"] - b_sim) / np.hypot(se_sim, th["se"])
    assert abs(z["fluctuating"]) < 3, z
    assert z["eq7"] < -3 and z["cavity"] > 3, z


@pytest.mark.parametrize("sigma2, width", [(0.05, 10), (0.05, 40), (0.2, 10), (0.2, 40)])
@pytest.mark.parametrize("law", LAWS)
def test_every_law_is_self_consistent_over_a_grid(sigma2, width, law):
    """Invariants over a grid of noise, width and law: converged == (status == 0); the returned
    kernel Q (with its 1/L) is positive semi-definite and reproduces the returned discrepancy,
    tbar = (Q + sigma^2)^{-1} y, to the solver's tolerance; the fit is no worse than the zero
    predictor."""
    from kernelphase.solvers.finite_kernel import finite_data_kernel
    rng = np.random.default_rng(12)
    n, d = 24, 3
    X = rng.standard_normal((n, d))
    y = X[:, 0] - 0.5 * (X[:, 0] ** 3 - 3 * X[:, 0]) / 3
    r = finite_data_kernel(X, y, width, sigma2, 1.0, 0.5, law=law, chains=256, steps=60,
                           burn=30, thin=5, tol=0.05, seed=3)
    assert r.converged == (r.status == 0)
    assert r.status in (0, 2), r.message
    assert np.linalg.eigvalsh(r.Q).min() > -1e-8 * np.abs(r.Q).max()
    t = np.linalg.solve(r.Q + sigma2 * np.eye(n), y)
    assert np.linalg.norm(t - r.tbar) < 1e-3 * np.linalg.norm(r.tbar)
    assert np.sqrt(np.mean((y - r.f_train) ** 2)) <= np.sqrt(np.mean(y ** 2))
