"""Finite-data adaptive kernel (solvers/finite_kernel.py): GP limit, quadrature, sampler, input."""
import math

import numpy as np
import pytest

from kernelphase.results import Result
from kernelphase.solvers.finite_kernel import (FiniteKernelResult, finite_data_kernel,
                                               nngp_erf_kernel, tilted_kernel)


def _max_z(est, se, ref):
    iu = np.triu_indices(est.shape[0])
    return float(np.max(np.abs(est[iu] - ref[iu]) / se[iu]))


# ------------------------------------------------------------------------------- GP limit
@pytest.fixture(scope="module")
def gp_case():
    rng = np.random.default_rng(7)
    d = 3
    X = rng.standard_normal((8, d))
    y = X[:, 0] - 0.5 * X[:, 1] ** 2
    Xt = rng.standard_normal((5, d))
    yt = Xt[:, 0] - 0.5 * Xt[:, 1] ** 2
    sa2, sw2, s2 = 1.3, 0.7, 0.2
    res = finite_data_kernel(X, y, width=10, sigma2=s2, sigma_a2=sa2, sigma_w2=sw2,
                             interaction=False, chains=1024, steps=100, burn=50, thin=5,
                             Xtest=Xt, ytest=yt, seed=3)
    K = nngp_erf_kernel(X, X, sa2, sw2)
    Kt = nngp_erf_kernel(Xt, X, sa2, sw2)
    f_gp = Kt @ np.linalg.solve(K + s2 * np.eye(len(y)), y)
    return dict(X=X, y=y, Xt=Xt, yt=yt, sa2=sa2, sw2=sw2, s2=s2, res=res, K=K, f_gp=f_gp)


def test_gp_limit_kernel_equals_nngp(gp_case):
    r, K = gp_case["res"], gp_case["K"]
    assert isinstance(r, FiniteKernelResult) and r.converged
    assert _max_z(r.Q, r.Q_se, K) < 5.0
    # the check rejects a wrong law: the NNGP of another sigma_w^2
    Kw = nngp_erf_kernel(gp_case["X"], gp_case["X"], gp_case["sa2"], 1.2 * gp_case["sw2"])
    assert _max_z(r.Q, r.Q_se, Kw) > 5.0


def test_gp_limit_predictor_equals_gp_regression(gp_case):
    r, f_gp = gp_case["res"], gp_case["f_gp"]
    assert np.all(r.f_test_se > 0)
    assert np.max(np.abs(r.f_test - f_gp) / r.f_test_se) < 5.0
    # train side: f_train = y - sigma^2 tbar must be the GP posterior mean on the training set
    K, s2, y = gp_case["K"], gp_case["s2"], gp_case["y"]
    f_tr = K @ np.linalg.solve(K + s2 * np.eye(len(y)), y)
    assert np.max(np.abs(r.f_train - f_tr)) < 0.05 * np.max(np.abs(f_tr))


def test_gp_limit_large_sample():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((6, 4))
    y = np.sin(X[:, 0])
    Xt = rng.standard_normal((4, 4))
    r = finite_data_kernel(X, y, 10, 0.1, 2.0, 0.5, interaction=False, chains=8192, steps=60,
                           burn=30, thin=3, Xtest=Xt, ytest=np.sin(Xt[:, 0]), seed=5)
    K = nngp_erf_kernel(X, X, 2.0, 0.5)
    f_gp = nngp_erf_kernel(Xt, X, 2.0, 0.5) @ np.linalg.solve(K + 0.1 * np.eye(6), y)
    assert np.max(np.abs(r.Q - K)) < 4e-3 * np.max(K)
    assert np.max(np.abs(r.f_test - f_gp)) < 0.02 * np.max(np.abs(f_gp))


def test_confined_law_is_the_prior_restricted_to_the_basin():
    """``confine=(u, cut)`` in the GP limit: the kernel is that of the prior truncated to
    |w . u| <= cut, by a grid over w in d = 2 (independent of the sampler); the untruncated
    NNGP is rejected; a cut no draw reaches changes nothing, bit for bit."""
    from scipy.special import erf
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 2))
    y = X[:, 0]
    sa2, sw2, cut, u = 1.0, 1.0, 0.3, np.array([1.0, 0.0])
    kw = dict(interaction=False, chains=8192, steps=60, burn=30, thin=3, seed=5)
    r = finite_data_kernel(X, y, 10, 0.2, sa2, sw2, confine=(u, cut), **kw)
    g1 = cut * ((np.arange(400) + 0.5) / 200 - 1)          # midpoints of [-cut, cut]
    g = np.linspace(-4, 4, 801)
    W = np.stack(np.meshgrid(g1, g, indexing="ij"), -1).reshape(-1, 2)
    p = np.exp(-(W ** 2).sum(1))                    # d |w|^2 / (2 sigma_w^2), d = 2
    F = erf(W @ X.T)
    K_ref = sa2 * (F.T * (p / p.sum())) @ F
    assert _max_z(r.Q, r.Q_se, K_ref) < 5.0
    assert _max_z(r.Q, r.Q_se, nngp_erf_kernel(X, X, sa2, sw2)) > 5.0
    free = finite_data_kernel(X, y, 10, 0.2, sa2, sw2, **kw)
    wide = finite_data_kernel(X, y, 10, 0.2, sa2, sw2, confine=(u, 50.0), **kw)
    assert np.array_equal(free.Q, wide.Q)
    for bad, match in (((np.ones(2), 0.3), "norm"), ((u, -1.0), r"confine\[1\]=-1\.0"),
                       ((np.ones(3) / 3 ** 0.5, 0.3), r"confine\[0\] has shape"),
                       ((u, 1e-12), "fell outside the basin")):
        with pytest.raises(ValueError, match=match):
            finite_data_kernel(X, y, 10, 0.2, sa2, sw2, confine=bad, **kw)


# ------------------------------------------------------------------- tiny network: quadrature
def _grid_average(X, tbar, kappa, sw2, metric, half=3.0, m=601):
    """<phi phi^T> for d = 2 by a fine grid over w (independent of the sampler), under
    p0 L^{-1/2} exp(kappa s^2 / 2L), L = 1 + kappa phi^T M phi (M = None: L = 1)."""
    from scipy.special import erf
    d = X.shape[1]
    g = np.linspace(-half, half, m)
    W = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    F = erf(W @ X.T)                       # (m^2, n)
    s = F @ tbar
    logw = -d * (W ** 2).sum(1) / (2 * sw2)
    L = 1.0 if metric is None else 1 + kappa * np.einsum("ij,jk,ik->i", F, metric, F)
    logw += -0.5 * np.log(L) + 0.5 * kappa * s ** 2 / L
    p = np.exp(logw - logw.max())
    p /= p.sum()
    return (F * p[:, None]).T @ F


_METRICS = {"eq7": None, "identity": np.eye(3) / 0.3,
            "general": np.array([[2.0, 0.9, -0.4], [0.9, 1.0, 0.3], [-0.4, 0.3, 3.0]])}


@pytest.mark.parametrize("metric", sorted(_METRICS))
def test_tiny_network_against_grid_integration(metric):
    """The sampled (and, with a general metric, reweighted) law against a grid over w; the
    tilt and L both matter: the prior and the law with L = 1 are rejected."""
    M = _METRICS[metric]
    X = np.array([[1.0, 0.3], [-0.4, 1.2], [0.8, -0.9]])
    tbar = np.array([1.5, -1.0, 0.8])
    sa2, width, sw2 = 1.0, 1, 0.5
    r = tilted_kernel(X, tbar, width, sa2, sw2, metric=M, chains=1024, burn=100, steps=300,
                      thin=5, seed=2)
    ref = sa2 * _grid_average(X, tbar, sa2 / width, sw2, M)
    assert 0.3 < r.acceptance < 0.9
    assert _max_z(r.Q, r.Q_se, ref) < 5.0
    prior = sa2 * _grid_average(X, tbar, 0.0, sw2, None)
    assert _max_z(r.Q, r.Q_se, prior) > 5.0
    if M is not None:
        assert _max_z(r.Q, r.Q_se, sa2 * _grid_average(X, tbar, sa2 / width, sw2, None)) > 5.0


# ----------------------------------------------------- sampler exactness: tilted Gaussian
def test_mala_exact_on_tilted_gaussian():
    """Linear activation: p(w) is Gaussian with precision (d/sw2) I - kappa v v^T, v = X^T tbar,
    so Q = sa2 X Sigma X^T exactly."""
    X = np.array([[1.0, 0.5], [0.2, -1.0], [-0.7, 0.4]])
    tbar = np.array([0.9, -0.6, 0.3])
    sa2, width, sw2 = 1.0, 1, 0.5
    d = X.shape[1]
    v = X.T @ tbar
    kappa = sa2 / width
    P = d / sw2 * np.eye(d) - kappa * np.outer(v, v)
    assert np.all(np.linalg.eigvalsh(P) > 0)
    ref = sa2 * X @ np.linalg.inv(P) @ X.T
    r = tilted_kernel(X, tbar, width, sa2, sw2, activation="z", chains=1024, burn=100,
                      steps=300, thin=5, seed=4)
    assert _max_z(r.Q, r.Q_se, ref) < 5.0
    wrong = sa2 * X @ (sw2 / d * np.eye(d)) @ X.T
    assert _max_z(r.Q, r.Q_se, wrong) > 5.0


# ------------------------------------------------------------------------ result contract
def test_result_contract_and_nonconvergence_status():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 3))
    y = X[:, 0]
    r = finite_data_kernel(X, y, 5, 0.3, 1.0, chains=128, steps=20, burn=10, thin=5, anneal=1,
                           maxiter=1, tol=1e-9, seed=1)
    assert isinstance(r, Result) and isinstance(r.message, str)
    assert r.status == 2 and not r.converged
    assert r.message.startswith("iteration limit reached")
    assert math.isfinite(r.residual) and r.iterations == 1
    assert math.isnan(r.b)                                    # no test data
    assert "converged" in r.to_dict()
    with pytest.raises(Exception):
        r.status = 0                                          # frozen


# ------------------------------------------------------------------------------ bad input
_X = np.zeros((4, 2))
_y = np.zeros(4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(X=np.zeros(4)), r"^X has shape"),
    (dict(X=np.full((4, 2), np.nan)), r"^X contains NaN"),
    (dict(y=np.zeros(3)), r"^y has shape"),
    (dict(width=0), r"^width=0 is outside"),
    (dict(sigma2=-0.1), r"^sigma2=-0.1 is outside"),
    (dict(sigma_a2=0.0), r"^sigma_a2=0.0 is outside"),
    (dict(sigma_w2=float("inf")), r"^sigma_w2=inf is outside"),
    (dict(damping=0.0), r"^damping=0.0 is outside"),
    (dict(chains=3), r"^chains=3 is outside"),
    (dict(anneal=0), r"^anneal=0 is outside"),
    (dict(Xtest=np.zeros((3, 5))), r"^Xtest has 5 columns"),
    (dict(ytest=np.zeros(3)), r"^ytest is given without Xtest"),
    (dict(activation="foo(z)"), r"activation"),
    (dict(chains=10 ** 7, X=np.zeros((400, 2)), y=np.zeros(400)), r"needs [0-9.]+ GiB"),
])
def test_bad_input_names_parameter(kwargs, match):
    args = dict(X=_X, y=_y, width=4, sigma2=0.3, sigma_a2=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as e:
        finite_data_kernel(**args)
    assert "\n" not in str(e.value)


def test_tilted_kernel_bad_tbar():
    with pytest.raises(ValueError, match=r"^tbar has shape"):
        tilted_kernel(_X, np.zeros(3), 4, 1.0)


# ------------------------------------------------------- finite-width read-out diagnostic
def test_random_feature_readout_matches_direct_solve():
    """The N x N (Woodbury) form of the width-N posterior mean equals the n x n solve."""
    from kernelphase.solvers.finite_kernel import _RandomFeatures
    rng = np.random.default_rng(9)
    n, m, N, s2, sa2 = 12, 7, 5, 0.2, 1.7
    F = rng.standard_normal((2 * N + 1, n))
    Ft = rng.standard_normal((2 * N + 1, m))
    y = rng.standard_normal(n)
    rf = _RandomFeatures(N, y, s2, sa2)
    rf(F, Ft)
    out = rf.outs[0]
    assert out.shape == (2, m)
    for g in range(2):
        P, Pt = F[g * N:(g + 1) * N], Ft[g * N:(g + 1) * N]
        K = sa2 / N * P.T @ P
        Kt = sa2 / N * Pt.T @ P
        ref = Kt @ np.linalg.solve(K + s2 * np.eye(n), y)
        assert np.allclose(out[g], ref, rtol=1e-10, atol=1e-12)


def test_random_feature_readout_in_result(gp_case):
    """The width-N read-out is reported with its standard error whenever test data are given."""
    r = gp_case["res"]
    assert r.f_test_rf.shape == r.f_test.shape and np.all(np.isfinite(r.f_test_rf))
    assert math.isfinite(r.b_rf) and r.b_rf_se > 0


# ---------------------------------------------------------- fixed-point certificate
def test_fixed_point_is_self_consistent_under_an_independent_sweep():
    """At the returned tbar, a fresh sampler run (other seed) must give back the same tbar
    within a few times the tolerance, and the interaction must have moved the solution off the
    NNGP. (A residual measured on the damped step would pass the loop at a point that fails
    this check: the damped step is ~damping times smaller than the self-consistency error.)"""
    rng = np.random.default_rng(21)
    n, d, N, s2, sa2 = 40, 4, 20, 0.1, 0.5
    X = rng.standard_normal((n, d))
    y = X[:, 0] - 0.3 * (X[:, 0] ** 3 - 3 * X[:, 0])
    r = finite_data_kernel(X, y, N, s2, sa2, 0.5, law="eq7", chains=512, steps=100, burn=50,
                           thin=5, anneal=2, tol=0.05, seed=8)
    assert r.converged, r.message
    assert r.residual < 0.05
    q = tilted_kernel(X, r.tbar, N, sa2, 0.5, chains=512, burn=100, steps=200, thin=5, seed=99)
    t2 = np.linalg.solve(q.Q + s2 * np.eye(n), y)
    assert np.linalg.norm(t2 - r.tbar) / np.linalg.norm(r.tbar) < 0.1
    gp = finite_data_kernel(X, y, N, s2, sa2, 0.5, interaction=False, chains=512, steps=100,
                            burn=50, thin=5, seed=8)
    assert np.linalg.norm(gp.tbar - r.tbar) / np.linalg.norm(r.tbar) > 0.3


# ------------------------------------------------------- reweighted fixed point (method="reweight")
@pytest.mark.parametrize("cavity", [False, True])
def test_reweighted_fixed_point_solves_the_weighted_equation(cavity):
    """``_self_consistent`` returns t with t = (Q_w(t) + sigma^2)^{-1} y, Q_w the kernel
    sum_s w_s phi_s phi_s^T / L_s of the samples importance-reweighted from their law (t0) to
    the law at t; checked in float64 with the tilt written out here, and the reweighting
    matters (the unweighted solve differs)."""
    from kernelphase.solvers.finite_kernel import _Samples, _self_consistent
    rng = np.random.default_rng(3)
    S, n, kappa, s2, sa2 = 4000, 12, 0.05, 0.3, 1.0
    F = np.tanh(rng.standard_normal((S, n))).astype(np.float32)
    y = rng.standard_normal(n)
    t0 = 0.5 * y
    q = (F.astype(float) ** 2).sum(1)

    L = 1 + kappa * q / s2 if cavity else np.ones(S)

    def tilt(t):
        s = F.astype(float) @ t
        return -0.5 * np.log(L) + 0.5 * kappa * s ** 2 / L
    smp = _Samples(F, q, tilt(t0), np.arange(S) % 4, qm=q / s2 if cavity else None)
    t, nev, ok = _self_consistent(smp, t0, y, kappa, s2, sa2, tol=1e-8, maxit=200)
    assert ok and nev < 200
    lw = tilt(t) - tilt(t0)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    Q = sa2 * (F.astype(float) * (w / L)[:, None]).T @ F.astype(float)
    ref = np.linalg.solve(Q + s2 * np.eye(n), y)
    assert np.linalg.norm(ref - t) < 1e-4 * np.linalg.norm(t)
    Q0 = sa2 * F.astype(float).T @ F.astype(float) / S
    plain = np.linalg.solve(Q0 + s2 * np.eye(n), y)
    assert np.linalg.norm(plain - t) > 1e-2 * np.linalg.norm(t)


def test_reweight_and_anneal_schemes_agree():
    """The two fixed-point schemes reach the same discrepancy within their Monte Carlo errors."""
    rng = np.random.default_rng(21)
    n, d, N, s2, sa2 = 40, 4, 20, 0.1, 0.5
    X = rng.standard_normal((n, d))
    y = X[:, 0] - 0.3 * (X[:, 0] ** 3 - 3 * X[:, 0])
    Xt = rng.standard_normal((200, d))
    yt = Xt[:, 0] - 0.3 * (Xt[:, 0] ** 3 - 3 * Xt[:, 0])
    kw = dict(law="eq7", chains=512, steps=100, burn=50, thin=5, tol=0.05, Xtest=Xt, ytest=yt)
    a = finite_data_kernel(X, y, N, s2, sa2, 0.5, method="reweight", seed=1, **kw)
    b = finite_data_kernel(X, y, N, s2, sa2, 0.5, method="anneal", anneal=2, seed=2, **kw)
    assert a.converged and b.converged
    assert abs(a.b - b.b) < 4 * math.hypot(a.b_se, b.b_se) + 0.01
    gp = finite_data_kernel(X, y, N, s2, sa2, 0.5, interaction=False, seed=3, **kw)
    assert abs(gp.b - a.b) > 4 * math.hypot(a.b_se, gp.b_se)
