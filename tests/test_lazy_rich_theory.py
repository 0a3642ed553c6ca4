"""Lazy-rich theory (Kumar et al. 2023): symbolic pieces vs independent computations."""
import math

import numpy as np
import pytest
import sympy as sp

from kernelphase.lazy_rich import (grokking_time, grokking_time_exponent, loss_terms,
                                   loss_terms_function, ntk_dot_kernel, target_second_moment,
                                   target_sector_power)
from kernelphase.solvers.learning_curve import LearningCurveResult, learning_curve


def _mc_loss(alpha, eps, wbar, M, beta, s, n, rng):
    D = beta.size
    X = rng.standard_normal((n, D)) / np.sqrt(D)
    f = alpha * X @ wbar + 0.5 * alpha * eps * np.einsum("ij,jk,ik->i", X, M, X)
    r2 = (f - 0.5 * s * (X @ beta) ** 2) ** 2
    return r2.mean(), r2.std() / np.sqrt(n)


@pytest.mark.parametrize("s", [1.0, 2.0])
def test_loss_decomposition_matches_monte_carlo(s):
    rng = np.random.default_rng(1)
    D, N, alpha, eps = 8, 5, 1.3, 0.4
    W = rng.standard_normal((N, D))
    beta = rng.standard_normal(D)
    wbar, M = W.mean(0), W.T @ W / N
    fn = loss_terms_function()
    # floats only: numba evaluates an integer D**-2 as 0
    t = fn(alpha, eps, float(D), s, beta @ beta, np.trace(M), beta @ M @ beta, np.sum(M * M),
           wbar @ wbar)
    mc, se = _mc_loss(alpha, eps, wbar, M, beta, s, 400_000, rng)
    assert abs(sum(t) - mc) < 5 * se
    # the check rejects a wrong law: dropping the factor 2 in Tr A^2 of t2 is detected
    assert abs(sum(t) + t[1] - mc) > 5 * se


def test_loss_terms_vanish_at_generalising_solution():
    (t1, t2, t3), (alpha, eps, D, s, b2, trM, bMb, trM2, w2) = loss_terms()
    # alpha eps M = s beta beta^T: Tr M = s b2/(alpha eps), bMb = s b2^2/(alpha eps), Tr M^2 = (s b2/(alpha eps))^2
    sub = {trM: s * b2 / (alpha * eps), bMb: s * b2 ** 2 / (alpha * eps),
           trM2: (s * b2 / (alpha * eps)) ** 2, w2: 0}
    assert all(sp.simplify(t.subs(sub)) == 0 for t in (t1, t2, t3))


def test_target_sector_power_matches_monte_carlo_projection():
    rng = np.random.default_rng(2)
    D, n = 12, 400_000
    beta = rng.standard_normal(D)
    b2 = float(beta @ beta)
    X = rng.standard_normal((n, D)) / np.sqrt(D)
    y = 0.5 * (X @ beta) ** 2
    r = (X * X).sum(1)
    c = np.mean(y * r) / np.mean(r * r)            # projection on |x|^2
    pw = {k: float(v) for k, v in target_sector_power(D, b2).items()}
    p_rad = c * c * np.mean(r * r)
    assert abs(pw["radial quadratic"] - p_rad) < 0.02 * p_rad
    resid = y - c * r
    assert abs(pw["traceless quadratic"] - np.mean(resid ** 2)) < 0.02 * pw["traceless quadratic"]
    assert abs(np.mean(resid)) < 0.02 * np.sqrt(pw["traceless quadratic"])   # no constant left
    total = target_second_moment().subs({sp.Symbol("D", positive=True): D,
                                         sp.Symbol("b2", positive=True): b2})
    assert abs(sum(pw.values()) - float(total)) < 1e-12 * float(total)


def test_target_power_theory_note_values():
    # theory note Sec. 3.3 (derived): radial b2^2(1+2/D)/(4D^2), traceless b2^2(D-1)/(2D^3)
    D, b2 = sp.symbols("D b2", positive=True)
    pw = target_sector_power()
    assert sp.simplify(pw["radial quadratic"] - b2 ** 2 * (1 + 2 / D) / (4 * D ** 2)) == 0
    assert sp.simplify(pw["traceless quadratic"] - b2 ** 2 * (D - 1) / (2 * D ** 3)) == 0


def test_ntk_dot_kernel_quadratic_and_cubic_vs_monte_carlo():
    h, eps, u = sp.Symbol("h"), sp.Symbol("eps"), sp.Symbol("u")
    assert sp.expand(ntk_dot_kernel(h + eps * h ** 2 / 2) - (u + eps ** 2 * u ** 2)) == 0
    phi = h + h ** 2 / 3 + h ** 3 / 5
    k = sp.lambdify(u, ntk_dot_kernel(phi))
    rng = np.random.default_rng(3)
    rho = 0.37
    n = 1_000_000
    a = rng.standard_normal(n)
    b = rho * a + math.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    dphi = sp.lambdify(h, sp.diff(phi, h))
    v = rho * dphi(a) * dphi(b)
    assert abs(k(rho) - v.mean()) < 5 * v.std() / math.sqrt(n)


def test_ntk_dot_kernel_rejects_non_polynomial():
    with pytest.raises(ValueError, match="not a polynomial"):
        ntk_dot_kernel(sp.sin(sp.Symbol("h")))


def test_grokking_time_rate_matches_population_dynamics():
    """Early growth rate of beta^T M beta in the population dynamics = 6 c eps b2/(alpha D^2)."""
    from kernelphase.solvers.order_dynamics import reduced_steps
    D, alpha, eps, c, N = 10, 1.0, 0.1, 0.5, 1
    beta = np.ones(D)
    gamma = 2 * c / alpha
    M = np.eye(D)
    wbar = np.zeros(D)
    T = np.outer(beta, beta)
    b = beta / np.linalg.norm(beta)
    reduced_steps(np.zeros((1, D)), np.zeros(1), wbar, M, alpha, eps, gamma, 1, 2,
                  np.zeros(D), np.eye(D), T, True)
    rate_sim = np.log(b @ M @ b)
    rate_th = 6 * c * eps * D / (alpha * D ** 2)
    assert abs(rate_sim - rate_th) < 0.05 * rate_th
    t = grokking_time(alpha, eps, D, c)
    assert math.isclose(t, math.log(D / (alpha * eps)) / rate_th)
    assert 0 < grokking_time_exponent(1.0, 0.02, 100) < 1


def test_learning_curve_single_sector_closed_form():
    # one sector of m equal eigenvalues, P < m, ridgeless: kappa = lam (m/P - 1),
    # L = P/m, E = P/(P - P^2/m) (1 - P/m)^2 p = (1 - P/m) p
    r = learning_curve([0.5], [40], [2.0], 10)
    assert isinstance(r, LearningCurveResult) and r.converged and r.status == 0
    assert isinstance(r.message, str) and r.residual < 1e-10
    assert math.isclose(r.kappa, 0.5 * 3, rel_tol=1e-10)
    assert math.isclose(r.test_mse, 2.0 * 0.75, rel_tol=1e-10)


def test_learning_curve_bad_input():
    with pytest.raises(ValueError, match="P=0"):
        learning_curve([1.0], [1], [1.0], 0)
    with pytest.raises(ValueError, match="ridge"):
        learning_curve([1.0], [1], [1.0], 5, ridge=-1)
    with pytest.raises(ValueError, match="eigenvalues"):
        learning_curve([-1.0], [1], [1.0], 5)
    r = learning_curve([1.0], [3], [1.0], 5)
    assert r.status == 5 and not r.converged
