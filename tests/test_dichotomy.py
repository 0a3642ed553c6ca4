"""Lyu et al. (2023): closed forms, predictors, simulations, CLI (issue 6)."""
import dataclasses
import math

import numpy as np
import pytest
import sympy as sp

from kernelphase.dichotomy import (SYMBOLS, diagonal_net_flow, grokking_time,
                                   grokking_time_second_order)
from kernelphase.solvers.margins import (MarginResult, cosine, l1_max_margin, l2_max_margin,
                                         linear_accuracy)
from kernelphase.solvers.matrix_completion import (CompletionResult, multiplication_table,
                                                   nuclear_norm_completion, observation_mask,
                                                   heldout_mse, zero_fill_completion)
from kernelphase.validation.diagonal_net import (diagonal_flow, diagonal_gd, misgrok_dataset,
                                                 sparse_dataset)
from kernelphase.validation.matrix_factorization import mf_gd, mf_gd_reference

S = SYMBOLS


def test_flow_closed_form_solves_gradient_flow():
    """u, v of the closed form satisfy du/dt = -(2g + lam) u, dv/dt = (2g - lam) v, G' = g."""
    t = S["t"]
    Gt = sp.Function("G")(t)
    f = {k: e.subs(S["G"], Gt) for k, e in diagonal_net_flow().items()}
    g = sp.diff(Gt, t)
    assert sp.simplify(sp.diff(f["u"], t) + (2 * g + S["lam"]) * f["u"]) == 0
    assert sp.simplify(sp.diff(f["v"], t) - (2 * g - S["lam"]) * f["v"]) == 0
    assert sp.simplify((f["u"]**2 - f["v"]**2 - f["w"]).rewrite(sp.exp)) == 0
    assert sp.simplify((f["u"]**2 + f["v"]**2 - f["sq_norm"]).rewrite(sp.exp)) == 0
    assert f["u"].subs(t, 0).subs(Gt.subs(t, 0), 0) == S["a"]


def test_grokking_times_against_theory_note_arithmetic():
    # dichotomy.md Sec. 6: alpha=128, lam=1e-3: 4852 and (L=2) 3447 (time units), +-1
    vals = {S["alpha"]: 128, S["lam"]: sp.Rational(1, 1000), S["L"]: 2}
    assert abs(float(grokking_time().subs(vals)) - 4852) < 1
    assert abs(float(grokking_time_second_order().subs(vals)) - 3447) < 1


def _primal_l2_reference(X, y):
    """Independent reference: the primal QP by SLSQP."""
    from scipy.optimize import minimize
    Z = X * y[:, None]
    cons = {"type": "ineq", "fun": lambda w: Z @ w - 1, "jac": lambda w: Z}
    w0 = np.linalg.lstsq(Z, np.ones(len(y)), rcond=None)[0]
    r = minimize(lambda w: (0.5 * w @ w, w), w0, jac=True, constraints=[cons], method="SLSQP",
                 options={"ftol": 1e-14, "maxiter": 1000})
    return r.x


@pytest.mark.parametrize("seed", [0, 1])
def test_l2_margin_vs_primal_qp(seed):
    X, y, *_ = sparse_dataset(60, 20, 5, seed=seed)
    res = l2_max_margin(X, y)
    ref = _primal_l2_reference(X, y)
    assert res.converged and res.residual < 1e-8
    assert np.allclose(res.w, ref, rtol=1e-5, atol=1e-6)


def test_l1_margin_vs_epigraph_lp():
    """Independent LP formulation: min sum(s), -s <= w <= s."""
    from scipy.optimize import linprog
    X, y, *_ = sparse_dataset(80, 25, 5, seed=3)
    d = X.shape[1]
    Z = X * y[:, None]
    A = np.block([[-Z, np.zeros_like(Z)], [np.eye(d), -np.eye(d)], [-np.eye(d), -np.eye(d)]])
    b = np.concatenate([-np.ones(len(y)), np.zeros(2 * d)])
    ref = linprog(np.r_[np.zeros(d), np.ones(d)], A_ub=A, b_ub=b, bounds=[(None, None)] * d
                  + [(0, None)] * d, method="highs-ipm")
    res = l1_max_margin(X, y)
    assert res.converged
    assert abs(np.abs(res.w).sum() - ref.fun) <= 1e-7 * ref.fun


def test_margin_errors_and_contract():
    with pytest.raises(ValueError, match="labels -1 and \\+1"):
        l2_max_margin(np.eye(3), np.array([0.0, 1.0, 1.0]))
    X = np.array([[1.0], [1.0]])
    bad = l1_max_margin(X, np.array([1.0, -1.0]))  # not separable
    assert not bad.converged and bad.status == 5 and isinstance(bad.message, str)
    for cls in (MarginResult, CompletionResult):
        names = {f.name for f in dataclasses.fields(cls)}
        assert {"residual", "status", "message"} <= names and "converged" not in names


def test_flow_matches_gd_to_first_order_in_step():
    """GD on (u, v) converges to the reduced n-dim gradient flow as the step shrinks."""
    X, y, *_ = sparse_dataset(300, 30, 5, seed=2)
    alpha, lam, T = 6.0, 0.05, 3.0
    flow = diagonal_flow(X, y, alpha, lam, np.array([T]), rtol=1e-11, atol=1e-14)
    w_flow = flow.w(0)
    errs = []
    for lr in (2e-3, 1e-3):
        _, _, hist = diagonal_gd(X, y, alpha, lam, lr, int(round(T / lr)), record_every=int(round(T / lr)))
        errs.append(np.linalg.norm(hist[-1][1] - w_flow) / np.linalg.norm(w_flow))
    assert errs[1] < 0.02
    assert 1.6 < errs[0] / errs[1] < 2.4  # first-order (Euler) convergence


def test_kernel_then_rich_phase_small():
    """Reduced-size Fig. 1a: plateau = L2 SVM direction, late = L1 direction."""
    X, y, Xt, yt, _ = sparse_dataset(2000, 160, 1000, seed=0)
    l2, l1 = l2_max_margin(X, y), l1_max_margin(X, y)
    lam, alpha = 1e-3, 128.0
    tg = math.log(alpha) / lam
    tr = diagonal_flow(X, y, alpha, lam, np.array([0.1 * tg, 4.0 * tg]))
    assert cosine(tr.w(0), l2.w) > 0.99
    assert cosine(tr.w(1), l1.w) > 0.99
    assert linear_accuracy(tr.w(1), Xt, yt) == pytest.approx(linear_accuracy(l1.w, Xt, yt), abs=0.01)


def test_misgrok_dataset_gap():
    X, y, *_ , w = misgrok_dataset(50, 40, 10, gamma=4.0, seed=1)
    assert np.all(y * (X @ w) >= 2.0 - 1e-12)


def test_mf_numba_equals_dense_reference():
    Xs = multiplication_table(12)
    m = observation_mask(12, 30, seed=1)
    U, V = mf_gd_reference(Xs, m, 2.0, 1e-2, 0.05, 40)
    r = mf_gd(Xs, m, alpha=2.0, lam=1e-2, lr=0.05, steps=40, record_every=10, progress=False)
    assert np.allclose(r.U, U, rtol=0, atol=1e-12) and np.allclose(r.V, V, rtol=0, atol=1e-12)


def test_mf_plateau_equals_zero_fill():
    """Cor. 3.11: the kernel-phase test MSE is the zero-fill predictor's (to 1e-4)."""
    Xs = multiplication_table(97)
    m = observation_mask(97, 470, seed=0)
    r = mf_gd(Xs, m, alpha=10.0, lam=1e-4, lr=0.1, steps=30000, record_every=10000,
              progress=False)
    assert abs(r.test_mse[-1] - heldout_mse(zero_fill_completion(Xs, m), Xs, m)) < 1e-4
    # norm follows |theta_0| e^{-lam t} in the kernel phase (4 digits)
    t = r.step * 0.1
    assert np.allclose(r.norm, 10 * math.sqrt(2 * 97) * np.exp(-1e-4 * t), rtol=1e-3)


def test_mf_checkpoint_resume_is_exact(tmp_path):
    Xs = multiplication_table(10)
    m = observation_mask(10, 25, seed=2)
    kw = dict(alpha=2.0, lam=1e-3, lr=0.05, record_every=10, checkpoint_every=20, progress=False)
    from kernelphase.io import RunDir
    key = dict(alpha=2.0, lam=1e-3, lr=0.05, record_every=10, d=10, n=25, steps=100)

    class Killed(Exception):
        pass

    def kill_after_40(step, *a):
        if step >= 40:
            raise Killed
    with RunDir(tmp_path / "ck", key) as ck:                    # "killed" after 40 steps
        with pytest.raises(Killed):
            mf_gd(Xs, m, steps=100, checkpoint=ck, _after_record=kill_after_40, **kw)
    with RunDir(tmp_path / "ck", key, resume=True) as ck:
        resumed = mf_gd(Xs, m, steps=100, checkpoint=ck, **kw)
    straight = mf_gd(Xs, m, steps=100, **kw)
    assert np.array_equal(resumed.U, straight.U)
    assert np.array_equal(resumed.test_mse, straight.test_mse)
    with pytest.raises(ValueError, match="lr"):
        with RunDir(tmp_path / "ck", dict(key, lr=0.01), resume=True) as ck:
            mf_gd(Xs, m, steps=100, checkpoint=ck, **dict(kw, lr=0.01))


def test_nuclear_norm_completion_is_optimal():
    """Convex problem: no feasible direction decreases the nuclear norm; exact recovery when
    half the entries of an incoherent rank-1 matrix are observed."""
    rng = np.random.default_rng(0)
    Xs = multiplication_table(20)
    m = observation_mask(20, 40, seed=4)
    res = nuclear_norm_completion(Xs, m)
    assert res.converged
    free = ~(m | m.T)
    nuc = lambda A: np.abs(np.linalg.eigvalsh(A)).sum()
    for _ in range(100):
        E = rng.standard_normal(Xs.shape) * free
        E = E + E.T
        assert nuc(res.W + 1e-3 * E) >= res.nuclear_norm - 1e-6
    x = rng.uniform(1, 2, 15)
    full = np.outer(x, x)
    rec = nuclear_norm_completion(full, observation_mask(15, 150, seed=5))
    assert np.allclose(rec.W, full, atol=1e-5)


def test_cli_predict_and_errors(run_cli):
    import json
    st, out, err = run_cli("dichotomy", "predict", "diag", "--d", 300, "--n", 40, "--json")
    assert st == 0
    r = json.loads(out)
    assert 0.5 <= r["l2_svm_test_acc"] <= 1 and r["l1_margin_test_acc"] >= r["l2_svm_test_acc"]
    st, out, err = run_cli("dichotomy", "predict", "mc", "--d", 20, "--frac", 0.2, "--json")
    assert st == 0 and json.loads(out)["zero_fill_test_mse"] > json.loads(out)["nuclear_norm_test_mse"]
    for argv, match in [(("predict", "mc", "--frac", "1.5"), "frac=1.5"),
                        (("predict", "diag", "--n", "0"), "n=0"),
                        (("sweep-alpha", "--alphas", "x"), "--alphas"),
                        (("train", "diag", "--lam", "-1"), "lam=-1")]:
        st, out, err = run_cli("dichotomy", *argv)
        assert st == 2 and match in err and len(err.strip().splitlines()) == 1 and out == ""


def test_cli_train_mc_writes_outputs(run_cli, tmp_path):
    import json
    st, out, err = run_cli("dichotomy", "train", "mc", "--d", 12, "--frac", 0.3, "--steps",
                           2000, "--record-every", 100, "--lam", 1e-2, "--out", tmp_path, "--json")
    assert st == 0
    s = json.loads(out)
    assert {"t_g_predicted", "t_transition_measured", "plateau_test_mse",
            "final_test_mse"} <= set(s)
    rec = json.loads((tmp_path / "summary.json").read_text())
    assert rec["provenance"]["kernelphase_version"]
    assert (tmp_path / "run.png").stat().st_size > 0 and (tmp_path / "curves.csv").exists()
