"""Issue 13 item 4: simulations from the activation spec (generic Langevin posterior) and the
single-index validation against the solver.

References are independent of the code under test: the fused erf kernel (typed by hand), numpy's
own tanh/sin and central differences, a grid integral of a 2-parameter posterior, and the
solver's theory (``kernelphase.solvers.single_index``), never numbers printed by this code.
"""
import math

import numpy as np
import pytest
from conftest import cubic_teacher_data

from kernelphase.validation.langevin import (ErfNetworkPosterior, NetworkPosterior,
                                             activation_pair, langevin_run)


pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _data(n=300, d=7, seed=4):
    return cubic_teacher_data(n, d, seed)


def _weights(post, seed=5, boost=(20.0, 3.0)):
    """Weights well away from the prior scale, so that |h| > 2 (the fused kernel's libm
    branch) and the nonlinearity both matter."""
    a, W = post.prior_sample(np.random.default_rng(seed))
    return a * boost[0], W * boost[1]


def test_generic_erf_gradient_equals_the_fused_kernel():
    X, y = _data()
    fused = ErfNetworkPosterior(X, y, 0.3, 0.8, 0.5, 9)
    generic = NetworkPosterior(X, y, 0.3, 0.8, 0.5, 9, activation="erf", kernel="generic")
    assert (fused.kernel, generic.kernel) == ("fused", "generic")
    a, W = _weights(fused)
    assert np.max(np.abs(X @ W.T)) > 2
    for f, g in zip(fused.grad_loglik(a, W), generic.grad_loglik(a, W)):
        assert np.max(np.abs(g - f)) <= 1e-12 * (1 + np.max(np.abs(f)))
    E, G = fused.pair(W)
    E2, G2 = generic.pair(W)
    assert np.max(np.abs(E2 - E)) <= 1e-13
    assert np.max(np.abs(G2 - 2 / math.sqrt(math.pi) * G)) <= 1e-13


def _loglik(sigma, X, y, sigma2, a, W):
    return -np.sum((sigma(X @ W.T) @ a - y) ** 2) / (2 * sigma2)


@pytest.mark.parametrize("name, sigma, engine", [
    ("tanh", np.tanh, "numba"), ("sin", np.sin, "numba"), ("tanh", np.tanh, "numpy"),
    ("z + z**3/3", lambda h: h + h ** 3 / 3, "numpy")])
def test_generic_gradient_matches_finite_differences(name, sigma, engine):
    X, y = _data(n=40, d=3)
    post = NetworkPosterior(X, y, 0.4, 1.0, 1.0, 4, activation=name, engine=engine)
    a, W = _weights(post, boost=(2.0, 1.5))
    assert np.allclose(post.forward(a, W), sigma(X @ W.T) @ a, rtol=1e-13, atol=1e-13)
    ga, gW = post.grad_loglik(a, W)
    rng = np.random.default_rng(0)
    for _ in range(3):
        da, dW = rng.standard_normal(a.shape), rng.standard_normal(W.shape)
        eps = 1e-6
        fd = (_loglik(sigma, X, y, 0.4, a + eps * da, W + eps * dW)
              - _loglik(sigma, X, y, 0.4, a - eps * da, W - eps * dW)) / (2 * eps)
        an = ga @ da + np.sum(gW * dW)
        assert abs(fd - an) <= 1e-6 * (1 + abs(an)), (name, fd, an)
    # the read-in part is not negligible: a wrong sigma' would fail the check above
    assert abs(np.sum(gW * dW)) > 1e-3 * (1 + abs(an))


def test_activation_pair_is_the_spec_and_errors_name_the_activation():
    s, ds = activation_pair("tanh")(0.7)
    assert abs(s - math.tanh(0.7)) <= 1e-15 and abs(ds - (1 - math.tanh(0.7) ** 2)) <= 1e-15
    X, y = _data(n=10, d=2)
    with pytest.raises(ValueError, match="kernel='fused' is for activation='erf' only"):
        NetworkPosterior(X, y, 0.4, 1.0, 1.0, 4, activation="tanh", kernel="fused")
    with pytest.raises(ValueError, match="activation="):
        NetworkPosterior(X, y, 0.4, 1.0, 1.0, 4, activation="__import__('os')")
    with pytest.raises(ValueError, match="kernel='bogus'"):
        NetworkPosterior(X, y, 0.4, 1.0, 1.0, 4, activation="tanh", kernel="bogus")


def test_generic_posterior_pickles_and_rebuilds_its_kernels():
    import pickle
    X, y = _data(n=20, d=3)
    post = NetworkPosterior(X, y, 0.4, 1.0, 1.0, 4, activation="sin")
    a, W = _weights(post, boost=(1.0, 1.0))
    back = pickle.loads(pickle.dumps(post))
    for u, v in zip(post.grad_loglik(a, W), back.grad_loglik(a, W)):
        assert np.array_equal(u, v)


# --------------------------------------------------------------------- stationary law, exact
SIGMA2, SA2, SW2 = 0.5, 1.5, 1.0


def _grid_moments(sigma2):
    """E[w^2], E[a^2], E[a sigma(w)] of the one-unit, one-input tanh network, by a 2-D grid
    integral of the exact posterior (independent of the sampler)."""
    X, y = _toy()
    a = np.linspace(-6, 6, 801)
    w = np.linspace(-6, 6, 801)
    A, Wg = np.meshgrid(a, w, indexing="ij")
    f = A[..., None] * np.tanh(Wg[..., None] * X[:, 0])
    logp = -A ** 2 / (2 * SA2) - Wg ** 2 / (2 * SW2) - ((f - y) ** 2).sum(-1) / (2 * sigma2)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    return np.array([(p * Wg ** 2).sum(), (p * A ** 2).sum(), (p * A * np.tanh(Wg)).sum()])


def _toy():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 1))
    return X, np.sin(1.5 * X[:, 0])


class _Moments:
    def __call__(self, a, W):
        return {"m": np.array([W[0, 0] ** 2, a[0] ** 2, a[0] * math.tanh(W[0, 0])])}


def test_tanh_sampler_matches_the_grid_posterior():
    """Batch means over chains give the standard error; 5 SE must hold for the right law and
    fail for the posterior at twice the noise (the check can reject a wrong law)."""
    X, y = _toy()
    post = NetworkPosterior(X, y, SIGMA2, SA2, SW2 * X.shape[1], 1, activation="tanh")
    chains = [langevin_run(post, 20000, 0.01, seed=7, key=(k,), burn_in=1000, sample_every=5,
                           observe=_Moments()) for k in range(8)]
    means = np.array([c.acc["m"] / c.acc["count"] for c in chains])
    est, se = means.mean(0), means.std(0, ddof=1) / math.sqrt(len(chains))
    exact = _grid_moments(SIGMA2)
    assert np.all(np.abs(est - exact) <= 5 * se + 0.01 * np.abs(exact)), (est, exact, se)
    wrong = _grid_moments(2 * SIGMA2)
    assert np.any(np.abs(est - wrong) > 5 * se + 0.01 * np.abs(wrong)), (est, wrong, se)


# --------------------------------------------------------------------- validation vs theory
def test_small_tanh_run_b1_matches_the_gfl_theory():
    """GFL phase (sigma^2 = 1.6 sigma^2_c): the measured b_1 within 20 % or 4 standard errors of
    ``single_index_phases`` (EK limit, d -> infinity: finite-size corrections of order
    d/n and 1/d are expected at d = 10), and far from c_1 = 1 (nothing learned), so the check
    can fail. The mass beyond the droplet cut is the GFL Gaussian's."""
    from kernelphase.solvers.single_index import single_index_transition
    from kernelphase.validation.single_index import run_single_index
    kw = dict(activation="tanh", teacher="He1 - 0.5*He3", sigma_w2=0.5, n=500, d=10, width=40,
              sigma_a2=0.05)
    tr = single_index_transition("tanh", "He1 - 0.5*He3", 0.5, n=500, d=10, width=40,
                                 sigma_a2=0.05)
    assert tr.converged
    s2 = 1.6 * tr.sigma2_c
    rep = run_single_index(**kw, sigma2=(s2,), nets=2, steps=1000, readout="gibbs", seed=2,
                           n_test=3000, workers=1, progress=False)
    assert rep.converged and rep.transition["sigma2_c"] == tr.sigma2_c
    row = rep.rows[0]
    assert row["phase_theory"] == "GFL"
    b1 = row["b"]["1"]
    assert 0.2 < b1["theory"] < 0.8
    assert abs(b1["sim_mean"] - b1["theory"]) <= max(0.2 * b1["theory"], 4 * b1["std_error"])
    assert abs(b1["sim_mean"] - 1.0) > 0.2
    # at d = 10 the GFL Gaussian itself reaches the droplet cut Phi*/2: compare with its tail
    assert abs(row["droplet_mass_sim"] - row["droplet_mass_gfl"]) < 0.1
    assert len(row["phi_hist"]["theory"]) == len(row["phi_hist"]["centres"])


def test_plan_refuses_bad_input_before_any_work():
    from kernelphase.validation.single_index import plan_single_index
    for kw, match in [(dict(sigma2=(-1,)), r"sigma2=-1 is outside the valid range"),
                      (dict(n=1), r"n=1 is outside the valid range \[2"),
                      (dict(teacher="He9"), "He9"),
                      (dict(activation="9**9**9*z"), "activation="),
                      (dict(sigma_w2=float("nan")), "sigma_w2=nan"),
                      (dict(sigma2=(1e-12,)), "sigma2=1e-12 is outside the valid range for"),
                      (dict(sigma2=()), "sigma2=\\(\\) is empty")]:
        with pytest.raises(ValueError, match=match):
            plan_single_index(**kw)
