"""Depth-L diagonal nets w = u^L - v^L (issue 15 item 7): flow, late predictor, L = 2, CLI."""
import json

import numpy as np
import pytest
import sympy as sp

from kernelphase.dichotomy import (SYMBOLS, diagonal_net_flow, diagonal_net_min_norm,
                                   diagonal_net_ntk)
from kernelphase.solvers.margins import (DepthMarginResult, depth_max_margin,
                                         diagonal_kkt_residual, l1_max_margin)
from kernelphase.validation.diagonal_net import (diagonal_flow, diagonal_gd, misgrok_dataset,
                                                 sparse_dataset)

S = SYMBOLS


@pytest.mark.parametrize("L", [3, 4, 5])
def test_depth_flow_closed_form_solves_gradient_flow(L):
    """u, v solve du/dt = -(L u^(L-1) g + lam u), dv/dt = (L v^(L-1) g - lam v) when
    dG/dt = e^{-(L-2) lam t} g, and start at a."""
    t = S["t"]
    Gt = sp.Function("G")(t)
    g = sp.Function("g")(t)
    f = {k: e.subs(S["G"], Gt) for k, e in diagonal_net_flow(L).items()}
    rule = {sp.Derivative(Gt, t): f["time_weight"] * g}
    du = sp.diff(f["u"], t).subs(rule)
    dv = sp.diff(f["v"], t).subs(rule)
    assert sp.simplify(du + L * f["u"] ** (L - 1) * g + S["lam"] * f["u"]) == 0
    assert sp.simplify(dv - L * f["v"] ** (L - 1) * g + S["lam"] * f["v"]) == 0
    assert sp.simplify(f["u"].subs(t, 0).subs(Gt.subs(t, 0), 0) - S["a"]) == 0


def test_depth_ntk_and_min_norm():
    """NTK factor 2 L^2 a^(2L-2) (8 a^2 at L = 2); min u^2 + v^2 at u^L - v^L = w is |w|^(2/L),
    checked against a brute-force minimisation over v."""
    assert sp.simplify(diagonal_net_ntk(2) - 8 * S["a"] ** 2) == 0
    assert sp.simplify(diagonal_net_ntk(3) - 18 * S["a"] ** 4) == 0
    w = sp.Symbol("w", real=True)
    for L in (2, 3, 4):
        f = sp.lambdify(w, diagonal_net_min_norm(L))
        for wv in (0.7, -2.3):
            v = np.linspace(0, 3, 30001)
            u = (abs(wv) + v ** L) ** (1.0 / L)
            assert abs((u ** 2 + v ** 2).min() - f(wv)) < 1e-9


@pytest.mark.parametrize("L, steps", [(3, (4e-3, 2e-3, 1e-3)), (4, (1e-3, 5e-4, 2.5e-4))])
def test_depth_flow_matches_gd_linearly_in_step(L, steps):
    """Plain GD on (u, v) converges to the reduced flow with error falling linearly in the step;
    the run passes through restarts of the piecewise reduction."""
    X, y, *_ = sparse_dataset(40, 16, 5, seed=2)
    alpha, lam, T = 1.5, 0.2, 15.0
    flow = diagonal_flow(X, y, alpha, lam, np.array([T / 2, T]), init="ones", rtol=1e-12,
                         atol=1e-15, depth=L)
    assert flow.converged and flow.restarts >= 1
    w_flow = flow.w(1)
    errs = []
    for lr in steps:
        n = int(round(T / lr))
        r = diagonal_gd(X, y, alpha, lam, lr, n, init="ones", record_every=n, depth=L)
        assert r.converged
        errs.append(np.linalg.norm(r.history[-1][1] - w_flow) / np.linalg.norm(w_flow))
    assert errs[-1] < 2e-5
    assert 1.6 < errs[-2] / errs[-1] < 3.2     # first order (Euler), up to the eta^2 term
    assert errs[0] > errs[1] > errs[2]
    # the flow really left the kernel regime: w is sparse (3 coordinates hold 90 % of |w|_1)
    assert np.sort(np.abs(w_flow))[-3:].sum() > 0.9 * np.abs(w_flow).sum()


def _slsqp_best(X, y, L, starts=12, seed=1):
    """Independent reference: min |u|^2 + |v|^2 s.t. y_i <u^L - v^L, x_i> >= 1 by SLSQP in
    (u, v) from random starts; the best feasible objective."""
    from scipy.optimize import minimize
    Z = X * y[:, None]
    d = X.shape[1]
    rng = np.random.default_rng(seed)
    cons = {"type": "ineq", "fun": lambda th: Z @ (th[:d] ** L - th[d:] ** L) - 1,
            "jac": lambda th: np.hstack([L * th[:d] ** (L - 1) * Z, -L * th[d:] ** (L - 1) * Z])}
    best = np.inf
    for _ in range(starts):
        o = minimize(lambda th: (th @ th, 2 * th), rng.exponential(size=2 * d), jac=True,
                     constraints=[cons], method="SLSQP", options={"ftol": 1e-12, "maxiter": 3000})
        if o.success and cons["fun"](o.x).min() > -1e-8:
            best = min(best, o.fun)
    return best


@pytest.mark.parametrize("L, seed", [(3, 0), (3, 2), (4, 1), (4, 4)])
def test_depth_late_predictor_vs_slsqp(L, seed):
    """Exact vertex enumeration (the default at this size) is at least as good as SLSQP's
    best; the reweighted scheme (used at d = 1e4) is a certified KKT point no worse than its
    L1 start and than the kernel (L2) solution."""
    X, y, *_ = misgrok_dataset(8, 6, 5, gamma=1.0, seed=seed)
    res = depth_max_margin(X, y, L)
    rw = depth_max_margin(X, y, L, method="reweighted")
    obj = lambda w: np.sum(np.abs(w) ** (2 / L))
    from kernelphase.solvers.margins import l2_max_margin
    assert rw.converged and rw.residual < 1e-8
    assert rw.objective <= obj(l1_max_margin(X, y).w) + 1e-12
    assert rw.objective <= obj(l2_max_margin(X, y).w)
    assert res.objective <= rw.objective + 1e-12
    assert isinstance(res, DepthMarginResult) and res.converged
    assert res.residual < 1e-8 and np.all(res.mu >= 0)
    assert res.objective == pytest.approx(np.sum(np.abs(res.w) ** (2 / L)), rel=1e-12)
    assert (y * (X @ res.w)).min() >= 1 - 1e-9
    ref = _slsqp_best(X, y, L)
    assert np.isfinite(ref)
    assert res.objective <= ref + 1e-6 * (1 + ref)


def test_kkt_residual_rejects_non_kkt_points():
    """The certificate can fail: the (dense) L2 max margin is no KKT point at L = 3, and a
    scaled-up KKT point violates complementary slackness (no active constraint)."""
    from kernelphase.solvers.margins import l2_max_margin
    X, y, *_ = misgrok_dataset(8, 6, 5, gamma=1.0, seed=0)
    l1 = l1_max_margin(X, y)
    assert diagonal_kkt_residual(l1.w, X, y, 2)[0] < 1e-8
    assert diagonal_kkt_residual(l2_max_margin(X, y).w, X, y, 3)[0] > 0.1
    res = depth_max_margin(X, y, 3)
    assert diagonal_kkt_residual(1.1 * res.w, X, y, 3)[0] > 0.5


def test_depth_max_margin_l2_is_l1_and_errors():
    X, y, *_ = sparse_dataset(30, 12, 5, seed=0)
    r2 = depth_max_margin(X, y, 2)
    assert r2.converged and np.allclose(r2.w, l1_max_margin(X, y).w)
    for bad, match in [(1, "depth=1"), (9, "depth=9"), (float("nan"), "depth=nan")]:
        with pytest.raises(ValueError, match=match):
            depth_max_margin(X, y, bad)
        with pytest.raises(ValueError, match=match):
            diagonal_flow(X, y, 2.0, 0.1, [1.0], depth=bad)
        with pytest.raises(ValueError, match=match):
            diagonal_gd(X, y, 2.0, 0.1, 0.01, 3, depth=bad)
    bad = depth_max_margin(np.array([[1.0], [1.0]]), np.array([1.0, -1.0]), 3)
    assert bad.status == 5 and not bad.converged


def test_depth2_reproduces_todays_numbers():
    """L = 2 is main at 040d2a8 (numbers printed there by the same calls): the flow is
    bit-identical; train_diag, which now integrates it in ten segments (restarting the ODE
    solver at each, for the checkpoints), agrees to the integrator's tolerance."""
    from kernelphase.validation.dichotomy_runs import train_diag
    r = train_diag(d=60, n=20, n_test=200, alpha=8.0, lam=1e-2, points=40, depth=2)
    assert r.t_transition_measured == 90.97556744849285
    assert r.lambda_t_transition_minus_ln_alpha == -1.1696858671949073
    assert (r.final_test_acc, r.plateau_test_acc) == (0.85, 0.775)
    assert r.final_norm == pytest.approx(3.2647155335554623, rel=1e-8)
    assert r.cos_l1_final == pytest.approx(0.9630412663638134, rel=1e-8)
    assert "depth" not in r.params and r.depth == 2
    assert r.late_predictor_test_acc == r.l1_margin_test_acc
    assert r.early_predictor_test_acc == r.l2_svm_test_acc
    X, y, *_ = sparse_dataset(60, 20, 5, seed=1)
    f = diagonal_flow(X, y, 8.0, 1e-2, [1.0, 50.0])
    assert f.w(1)[:4].tolist() == [-0.735265433091607, 0.6312997755880185, 0.6559370203250036,
                                   -0.259477359879833]
    g = diagonal_gd(X, y, 8.0, 1e-2, 0.01, 100)
    assert g.u[:3].tolist() == [0.6135814491606564, 0.8495025824180602, 0.8232866667102012]
    assert g.v[:3].tolist() == [0.8516848585412164, 0.6151328533880817, 0.6348514736154981]


TINY = ("--d", 40, "--n", 16, "--n-test", 20)


def test_cli_train_and_sweep_depth(run_cli, tmp_path):
    st, out, err = run_cli("dichotomy", "train", "diag", *TINY, "--alpha", 8, "--lam", 0.01,
                           "--depth", 3, "--json")
    assert st == 0, err
    r = json.loads(out)
    assert r["depth"] == 3 and r["params"]["depth"] == 3
    for k in ("lambda_t_transition_minus_ln_alpha", "final_test_acc",
              "early_predictor_test_acc", "late_predictor_test_acc"):
        assert k in r
    assert r["late_predictor_residual"] < 1e-6
    st, out, err = run_cli("dichotomy", "sweep-alpha", *TINY, "--alphas", "4,8", "--lam", 0.01,
                           "--depth", 4, "--json")
    assert st == 0, err
    s = json.loads(out)
    assert s["params"]["depth"] == 4 and len(s["rows"]) == 2
    assert "late_predictor_test_acc" in s["rows"][0]


@pytest.mark.parametrize("cmd", [("train", "diag", "--alpha", 8), ("sweep-alpha",)])
@pytest.mark.parametrize("bad", ["1", "9", "nan", "x", "2.5"])
def test_cli_bad_depth(run_cli, tmp_path, cmd, bad):
    out_dir = tmp_path / "o"
    st, out, err = run_cli("dichotomy", *cmd, *TINY, "--depth", bad, "--out", out_dir)
    assert st == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "depth=" in err
    assert not out_dir.exists() and list(tmp_path.iterdir()) == []


def test_kernel_exit_offset_shift_between_starts():
    """kernel_exit_time depends on the start only through ln a, so the unit start
    (a = alpha/sqrt(2d)) and the paper's (a = alpha) differ by ln(2d)/2 in lambda*t - ln(alpha)
    at every depth and alpha; the depth-3 flow reproduces that shift (different alphas, so the
    slope-1 claim is tested too)."""
    import math
    from kernelphase.dichotomy import kernel_exit_time
    from kernelphase.validation.dichotomy_runs import train_diag
    e = kernel_exit_time(3)
    shift = sp.simplify(e.subs(S["a"], S["alpha"]) - e.subs(S["a"], S["alpha"] / sp.sqrt(2 * S["d"])))
    assert sp.simplify(shift - sp.log(2 * S["d"]) / (2 * S["lam"])) == 0
    unit = train_diag(d=200, n=40, n_test=400, alpha=128.0, depth=3, init="unit")
    ones = train_diag(d=200, n=40, n_test=400, alpha=8.0, depth=3, init="ones", t_end_factor=4.0)
    assert unit.converged and ones.converged
    diff = ones.lambda_t_transition_minus_ln_alpha - unit.lambda_t_transition_minus_ln_alpha
    assert abs(diff - 0.5 * math.log(400)) < 0.1
