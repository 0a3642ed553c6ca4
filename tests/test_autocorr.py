"""Autocorrelation time, ESS and the standard error of a time average (validation.autocorr),
against the AR(1) process, whose tau is known exactly: x_t = phi x_{t-1} + sqrt(1-phi^2) xi_t
has rho(t) = phi^t and tau = (1 + phi)/(1 - phi)."""
import math

import numpy as np
import pytest
from scipy.signal import lfilter

from kernelphase.validation.autocorr import (autocorr_function, combined_error,
                                             integrated_time)


def ar1(phi, n, seeds, rng_seed=0):
    """``seeds`` stationary AR(1) series of length ``n`` (unit variance, mean 0)."""
    rng = np.random.default_rng(rng_seed)
    xi = rng.standard_normal((seeds, n))
    x0 = rng.standard_normal(seeds)                     # stationary start
    return lfilter([math.sqrt(1 - phi ** 2)], [1.0, -phi], xi, axis=1,
                   zi=(phi * x0)[:, None])[0]


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_ar1_tau_within_10_percent(phi):
    # tolerance: the estimator's relative sd is about sqrt(2 (2M+1)/n) = 4 % at tau = 19,
    # n = 2e5 (Sokal 1997, Eq. 3.20): 10 % is 2.5 sd
    x = ar1(phi, 200_000, 1, rng_seed=int(10 * phi))[0]
    r = integrated_time(x)
    exact = (1 + phi) / (1 - phi)
    assert r.converged
    assert abs(r.tau - exact) <= 0.10 * exact, (r.tau, exact)
    assert r.ess == pytest.approx(x.size / r.tau)
    assert r.window >= 5 * r.tau - 1e-9


def test_ar1_wrong_phi_is_rejected():
    # the same check fails for a process with another tau: phi = 0.8 has tau = 9, not 19
    r = integrated_time(ar1(0.8, 200_000, 1, rng_seed=3)[0])
    assert not abs(r.tau - 19.0) <= 0.10 * 19.0


def test_autocorr_function_matches_direct_sum():
    x = np.random.default_rng(1).standard_normal(300).cumsum()
    y = x - x.mean()
    direct = np.array([np.dot(y[:len(y) - t], y[t:]) for t in range(len(y))]) / np.dot(y, y)
    assert np.allclose(autocorr_function(x), direct, atol=1e-12)


def test_standard_error_covers_the_true_mean_at_the_nominal_rate():
    # 400 AR(1) series with tau = 19 and n = 100 tau: the interval mean +- 1.96 SE must cover the
    # true mean 0 in 95 % of them (binomial sd 1.1 %; a short series' tau is biased low by a few
    # per cent, so the band is [0.91, 0.985]); the i.i.d. SE, which ignores tau, covers ~35 %
    x = ar1(0.9, 1900, 400, rng_seed=7)
    res = [integrated_time(row) for row in x]
    cover = np.mean([abs(r.mean) <= 1.96 * r.std_error for r in res])
    naive = np.mean([abs(row.mean()) <= 1.96 * row.std() / math.sqrt(row.size) for row in x])
    assert 0.91 <= cover <= 0.985, cover
    assert naive < 0.6, naive


def test_short_series_gets_status_7_and_keeps_numbers():
    r = integrated_time(ar1(0.99, 500, 1)[0])
    assert r.status == 7 and r.message.startswith("run too short to measure")
    assert math.isfinite(r.tau) and r.tau > 1


def test_constant_series_has_zero_error():
    r = integrated_time(np.full(50, 2.5))
    assert r.converged and r.std_error == 0 and r.tau == 1 and r.mean == 2.5


@pytest.mark.parametrize("x, match", [
    (np.ones(1), "outside the valid range"), (np.ones((3, 3)), "1-D"),
    (np.array([1.0, np.nan, 2.0]), "NaN or inf")])
def test_bad_series(x, match):
    with pytest.raises(ValueError, match=match):
        integrated_time(x)


@pytest.mark.parametrize("kw, match", [({"c": 0}, "c=0"), ({"tol": -1}, "tol=-1")])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        integrated_time(np.arange(10.0), **kw)


def test_combined_error_takes_the_larger_sampling_error():
    # networks that agree: the time-correlation error dominates
    e = combined_error([1.0, 1.0, 1.0, 1.0], [0.2] * 4, test_error=0.0)
    assert e["std_error"] == pytest.approx(0.1) and e["se_spread"] == 0
    # networks stuck in different states: the spread dominates, and the ratio flags it
    e = combined_error([0.0, 2.0, 0.0, 2.0], [0.01] * 4, test_error=0.3)
    assert e["std_error"] == pytest.approx(math.hypot(np.std([0, 2, 0, 2], ddof=1) / 2, 0.3))
    assert e["spread_ratio"] > 10
    one = combined_error([1.0], [0.2], 0.1)
    assert one["std_error"] == pytest.approx(math.hypot(0.2, 0.1))
    assert math.isnan(one["spread_ratio"])


def test_series_is_recorded_through_burn_in_and_survives_a_resume(tmp_path):
    # the sampler's scalar series: one row per sample_every steps from the first step, and a
    # run stopped at a checkpoint and resumed records exactly the uninterrupted series
    from kernelphase.io import RunDir
    from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run
    rng = np.random.default_rng(0)
    post = ErfNetworkPosterior(rng.standard_normal((20, 3)), rng.standard_normal(20), 0.5, 1.0,
                               1.0, 4)
    kw = dict(lr=1e-4, seed=5, burn_in=30, sample_every=3,
              series=lambda a, W: [np.mean(W ** 2), a.sum()])
    straight = langevin_run(post, steps=60, **kw)
    assert straight.series.shape == (20, 2)
    with RunDir(tmp_path, {"k": 1}) as run:
        langevin_run(post, steps=30, checkpoint=(run, "s.npz"), checkpoint_every=15, **kw)
    with RunDir(tmp_path, {"k": 1}, resume=True) as run:
        resumed = langevin_run(post, steps=60, checkpoint=(run, "s.npz"), **kw)
    assert np.array_equal(resumed.series, straight.series)


def test_exact_discrepancy_equals_the_test_point_average():
    # b = E[(y - f) He1], c = E[(y - f) He3]/6 in closed form (Stein's lemma for erf) against
    # the Monte Carlo average over 4e5 Gaussian inputs, within 4 standard errors
    from scipy.special import erf
    from kernelphase.validation.teacher_student import cubic_data, exact_discrepancy
    rng = np.random.default_rng(3)
    a, W = rng.standard_normal(6), 0.6 * rng.standard_normal((6, 4))
    X, y = cubic_data(400_000, 4, -0.3, 11)
    z = X[:, 0]
    r = y - erf(X @ W.T) @ a
    for k, (mc, ex) in enumerate(zip((r * z, r * (z ** 3 - 3 * z) / 6),
                                     exact_discrepancy(a, W, -0.3))):
        se = mc.std() / math.sqrt(mc.size)
        assert abs(mc.mean() - ex) <= 4 * se, (k, mc.mean(), ex, se)
    # the same check rejects a wrong law (erf' averaged with variance q instead of 2q)
    q = (W ** 2).sum(1)
    wrong = 1 - 2 / math.sqrt(math.pi) * np.sum(a * W[:, 0] / np.sqrt(1 + q))
    assert abs((r * z).mean() - wrong) > 4 * (r * z).std() / math.sqrt(r.size)
