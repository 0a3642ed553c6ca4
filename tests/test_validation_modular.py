"""Modular-addition Langevin validation: gradients, stabiliser, sampler interface, exactness."""
import cmath
import json
import math

import numpy as np
import pytest

from kernelphase.validation.langevin import langevin_run
from kernelphase.validation.modular_addition import (
    ModularNetworkPosterior, modular_targets, nearest_prime, plot_modular_report, run_modular,
    scaled_modular_preset)


# -- independent reference implementations (explicit two-hot X, explicit DFT) ----------------

def _two_hot(P):
    X = np.zeros((P * P, 2 * P))
    for n in range(P):
        for m in range(P):
            X[n * P + m, n] = 1.0
            X[n * P + m, P + m] = 1.0
    return X


def _gamma_explicit(W, P, gamma):
    total = 0.0
    for row in W:
        for half in (row[:P], row[P:]):
            for k in range(P):
                wk = sum(half[n] * cmath.exp(2j * math.pi * k * n / P) for n in range(P)) / P
                total += P * gamma / 6 * abs(wk) ** 6
    return total


def _loglik_explicit(a, W, P, sigma2, gamma):
    X = _two_hot(P)
    loss = 0.0
    for r in range(P * P):
        n, m = divmod(r, P)
        for p in range(P):
            f = sum(a[i, p] * (X[r] @ W[i]) ** 2 for i in range(W.shape[0]))
            y = (1.0 if p == (n + m) % P else 0.0) - 1.0 / P
            loss += (f - y) ** 2
    return -loss / (2 * sigma2) - _gamma_explicit(W, P, gamma)


def test_gamma_fft_matches_explicit_dft():
    P, gamma = 7, 0.3
    post = ModularNetworkPosterior(P, 3, 1.0, 0.5, gamma)
    W = np.random.default_rng(1).standard_normal((3, 2 * P)) * 2
    assert post.gamma_term(W) == pytest.approx(_gamma_explicit(W, P, gamma), rel=1e-12)


def test_grad_loglik_matches_finite_differences():
    P, N, sigma2, gamma = 5, 3, 0.7, 0.2
    post = ModularNetworkPosterior(P, N, sigma2, 2.0, gamma)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((N, P)) * 0.5
    W = rng.standard_normal((N, 2 * P))
    assert post.loglik(a, W) == pytest.approx(_loglik_explicit(a, W, P, sigma2, gamma), rel=1e-12)
    ga, gW = post.grad_loglik(a, W)
    h = 1e-5
    for arr, grad in ((a, ga), (W, gW)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + h
            up = _loglik_explicit(a, W, P, sigma2, gamma)
            arr[idx] = old - h
            dn = _loglik_explicit(a, W, P, sigma2, gamma)
            arr[idx] = old
            num[idx] = (up - dn) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-6 * np.abs(num).max())
    # the stabiliser part on its own (likelihood switched off by a huge sigma2)
    post_g = ModularNetworkPosterior(P, N, 1e30, 2.0, gamma)
    _, gW = post_g.grad_loglik(a, W)
    num = np.zeros_like(W)
    for idx in np.ndindex(W.shape):
        old = W[idx]
        W[idx] = old + h
        up = _gamma_explicit(W, P, gamma)
        W[idx] = old - h
        dn = _gamma_explicit(W, P, gamma)
        W[idx] = old
        num[idx] = -(up - dn) / (2 * h)
    np.testing.assert_allclose(gW, num, rtol=1e-6, atol=1e-9)


def test_forward_and_targets_match_two_hot():
    P, N = 5, 4
    post = ModularNetworkPosterior(P, N, 1.0, 1.0, 1e-3)
    rng = np.random.default_rng(3)
    a, W = post.prior_sample(rng)
    X = _two_hot(P)
    np.testing.assert_allclose(post.forward(a, W), ((X @ W.T) ** 2) @ a, rtol=1e-12)
    y = modular_targets(P)
    np.testing.assert_allclose(y.sum(1), 0.0, atol=1e-14)
    F = post.forward(a, W)
    np.testing.assert_allclose(post.residual(F.copy()), F - y, atol=1e-14)


class _Moments:
    def __call__(self, a, W):
        return {"a2": np.mean(a * a), "w2": np.mean(W * W)}


class _ZeroNormal:
    def standard_normal(self, shape):
        return np.zeros(shape)


def test_sample_readout_is_the_gaussian_conditional():
    """Mean and covariance of the exact read-out draw against the normal equations written with
    the explicit two-hot X and targets."""
    P, N, sigma2, sa2 = 5, 3, 0.7, 0.9
    post = ModularNetworkPosterior(P, N, sigma2, sa2, 1e-3)
    W = np.random.default_rng(2).standard_normal((N, 2 * P))
    H2 = (_two_hot(P) @ W.T) ** 2
    A = H2.T @ H2 / sigma2 + np.eye(N) * N / sa2
    mean = np.linalg.solve(A, H2.T @ modular_targets(P) / sigma2)
    assert np.allclose(post.sample_readout(W, _ZeroNormal()), mean, rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(3)
    draws = np.array([post.sample_readout(W, rng)[:, 1] for _ in range(5000)])
    cov = np.linalg.inv(A)
    emp = np.cov(draws.T)
    assert np.allclose(emp, cov, atol=4 * np.sqrt(2 / 5000) * np.sqrt(np.outer(np.diag(cov), np.diag(cov))).max())
    assert np.allclose(draws.mean(0), mean[:, 1], atol=4 * np.sqrt(np.diag(cov).max() / 5000))


def test_langevin_reproduces_prior_when_likelihood_is_negligible():
    P, N = 5, 4
    post = ModularNetworkPosterior(P, N, 1e12, 0.8, 1e-12)
    res = langevin_run(post, steps=4000, lr=0.5, seed=5, key=(1,), burn_in=100, sample_every=4,
                       observe=_Moments())
    assert res.converged
    cnt = res.acc["count"]
    # a: lr >> var_a, so every step is an exact independent prior draw; W: decay e^-2 per sample
    for key, var, n_el, corr in (("a2", post.var_a, N * P, 1.0), ("w2", 1.0, 2 * N * P, 1.3)):
        est = res.acc[key] / cnt
        se = var * math.sqrt(2 / (n_el * cnt)) * corr
        assert abs(est - var) < 4 * se, (key, est, var, se)


class _FY:
    def __init__(self, post, y):
        self.post, self.y = post, y

    def __call__(self, a, W):
        return {"fy": np.sum(self.post.forward(a, W) * self.y), "a2": np.sum(a * a)}


def test_langevin_matches_importance_sampling_reference():
    """P=3, N=1: E[f.y] and E[|a|^2] against importance sampling from the prior
    (weights = likelihood * exp(-Gamma), written independently with the two-hot X)."""
    P, N, sigma2, sa2, gamma = 3, 1, 0.5, 1.0, 0.05
    post = ModularNetworkPosterior(P, N, sigma2, sa2, gamma)
    X, y = _two_hot(P), modular_targets(P)
    rng = np.random.default_rng(7)
    fy, a2, wsum, w2sum = 0.0, 0.0, 0.0, 0.0
    for _ in range(8):
        M = 250_000
        a = rng.standard_normal((M, P)) * math.sqrt(sa2 / N)
        W = rng.standard_normal((M, 2 * P))
        f = ((W @ X.T) ** 2)[:, :, None] * a[:, None, :]       # one neuron: f[s, row, p]
        logw = -np.sum((f - y) ** 2, axis=(1, 2)) / (2 * sigma2)
        Fw = np.fft.fft(W[:, :P], axis=1)
        Fv = np.fft.fft(W[:, P:], axis=1)
        logw -= P * gamma / 6 * (np.sum((np.abs(Fw) / P) ** 6, 1) + np.sum((np.abs(Fv) / P) ** 6, 1))
        w = np.exp(logw)
        fy += np.sum(w * np.sum(f * y, axis=(1, 2)))
        a2 += np.sum(w * np.sum(a * a, 1))
        wsum += w.sum()
        w2sum += np.sum(w * w)
    ref_fy, ref_a2 = fy / wsum, a2 / wsum
    assert wsum ** 2 / w2sum > 2e4                         # effective sample size of the reference
    chains, steps, lr = 6, 6_000, 0.004
    vals = []
    for k in range(chains):
        res = langevin_run(post, steps=steps, lr=lr, seed=11, key=(k,), burn_in=500,
                           sample_every=5, observe=_FY(post, y))
        cnt = res.acc["count"]
        vals.append([res.acc["fy"] / cnt, res.acc["a2"] / cnt])
    vals = np.array(vals)
    mean, se = vals.mean(0), vals.std(0, ddof=1) / math.sqrt(chains)
    for m_, s_, ref in zip(mean, se, (ref_fy, ref_a2)):
        # 4 standard errors of the chains plus an O(lr) discretisation allowance of 3 %
        assert abs(m_ - ref) < 4 * s_ + 0.03 * abs(ref), (m_, s_, ref)
    # the posterior differs clearly from the prior (E[f.y] = 0, E|a|^2 = P sigma_a^2/N = 3)
    assert ref_fy > 0.15 and ref_a2 < 0.5 * P * sa2 / N


def test_bad_inputs_name_parameter():
    with pytest.raises(ValueError, match="P=9"):
        ModularNetworkPosterior(9, 2, 1.0, 1.0, 1e-3)
    with pytest.raises(ValueError, match="sigma2=0"):
        ModularNetworkPosterior(5, 2, 0.0, 1.0, 1e-3)
    with pytest.raises(ValueError, match="sigma2=-1"):
        ModularNetworkPosterior(5, 2, -1.0, 1.0, 1e-3)
    with pytest.raises(ValueError, match="nets=0"):
        run_modular(scale=1.6e-4, nets=0, steps=10)
    with pytest.raises(ValueError, match="scale=-1"):
        scaled_modular_preset("fig3", -1)
    with pytest.raises(ValueError, match="preset='nope'"):
        scaled_modular_preset("nope", 1)


def test_scaled_preset_follows_table1_family():
    assert nearest_prime(141.8) == 139 and nearest_prime(4) == 3 and nearest_prime(1) == 2
    p = scaled_modular_preset("fig3", 0.125)
    assert p["width"] == 16 and p["P"] == 139
    assert p["sigma2"][1] == pytest.approx(0.236 * 8)
    assert p["sigma_a2"] == pytest.approx(0.002 / 1000 * 8)
    assert scaled_modular_preset("fig3", 1)["P"] == 401


def test_run_modular_tiny_report(tmp_path):
    from kernelphase.io import RunDir
    from kernelphase.validation.modular_addition import ModularValidation, plan_modular
    kw = dict(scale=1.6e-4, sigma2=(3000.0, 1500.0), nets=2, steps=40)
    with RunDir(tmp_path, plan_modular(**kw)["key"]) as run_dir:
        rep = run_modular(workers=1, run_dir=run_dir, progress=False, **kw)
    assert isinstance(rep, ModularValidation) and rep.converged and rep.status == 0
    json.dumps(rep.to_dict())
    assert rep.params["P"] == 5 and rep.params["width"] == 1
    assert set(rep.transition) >= {"sigma2_gmfl1", "sigma2_gmfl2", "phi_plus"}
    assert len(rep.rows) == 2
    for r in rep.rows:
        assert r["phase_theory"] in ("GFL", "GMFL-I", "GMFL-II")
        for key in ("a", "mode_power"):
            assert set(r[key]) == {"theory", "sim_mean", "std_error", "z_score", "rel_diff"}
        assert -1.5 < r["a"]["sim_mean"] < 0.5
        assert set(r["droplet_fraction"]) == {"theory", "sim_mean", "std_error"}
        assert r["train_loss"] >= 0
    assert len(list(tmp_path.glob("checkpoints/*.npz"))) == 4
    out = tmp_path / "modular.png"
    plot_modular_report(rep, out)
    assert out.stat().st_size > 1000
