"""Issue 15: Kumar et al. 2023 Fig. 12 (trained read-outs). The per-neuron stepper driven by
the order parameters against plain numpy GD on (W, a); the (w_bar, M) reduction against it
with frozen and with trained read-outs; the test-loss decomposition in (w_bar_a, M_a) against
Monte Carlo; the preset's contract, checkpoint and CLI."""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from kernelphase.results import STATUS, Result
from kernelphase.solvers.order_dynamics import (population_loss, readout_order_parameters,
                                                readout_steps, reduced_steps)


def _gd_reference(W, a, X, y, alpha, eps, lr, steps, train_readouts=True):
    """Plain numpy GD on (W, a) of f = alpha/N sum_i a_i phi(w_i.x), L = mean(e^2)."""
    W, a = np.array(W, float), np.array(a, float)
    N, P = W.shape[0], X.shape[0]
    for _ in range(steps):
        H = X @ W.T
        e = alpha / N * (H + 0.5 * eps * H * H) @ a - y
        gW = 2 * alpha / (N * P) * (((1 + eps * H) * e[:, None]) * a[None, :]).T @ X
        ga = 2 * alpha / (N * P) * (H + 0.5 * eps * H * H).T @ e
        W -= lr * gW
        if train_readouts:
            a -= lr * ga
    return W, a


def _problem(seed=0, D=5, P=12, N=3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, D)) / np.sqrt(D)
    beta = rng.standard_normal(D)
    y = 0.5 * (X @ beta) ** 2
    return X, y, beta, rng.standard_normal((N, D)), rng.standard_normal(N)


@pytest.mark.parametrize("centred", [False, True])
def test_readout_steps_equal_plain_gd(centred):
    X, y, beta, W, a = _problem()
    alpha, eps, lr, steps = 1.3, 0.4, 0.3, 60
    N = W.shape[0]
    f0 = alpha / N * (X @ W.T + 0.5 * eps * (X @ W.T) ** 2) @ a if centred else 0.0
    Wr, ar = _gd_reference(W, a, X, y + f0, alpha, eps, lr, steps)
    W2, a2 = W.copy(), a.copy()
    readout_steps(X, y + f0, W2, a2, alpha, eps, 2 * lr * alpha / N, steps, True)
    assert np.abs(ar - a).max() > 1e-2 and np.abs(Wr - W).max() > 1e-2   # both layers moved
    assert np.abs(W2 - Wr).max() < 1e-12 and np.abs(a2 - ar).max() < 1e-12


def _unit_readouts(seed):
    X, y, beta, W, _ = _problem(seed)
    alpha, eps, lr = 1.0, 0.5, 0.4
    a = np.ones(W.shape[0])
    return X, y, beta, W, a, alpha, eps, lr, 2 * lr * alpha / W.shape[0]


def test_frozen_readouts_equal_the_reduction():
    """a = 1 frozen: the per-neuron stepper is the (w_bar, M) reduction."""
    X, y, beta, W, a, alpha, eps, lr, gamma = _unit_readouts(1)
    N = W.shape[0]
    wb, M = readout_order_parameters(W, a)
    readout_steps(X, y, W, a, alpha, eps, gamma, 80, False)
    reduced_steps(X, y, wb, M, alpha, eps, gamma, 80, 0, wb.copy(), M.copy(),
                  np.outer(beta, beta), False)
    wb2, M2 = readout_order_parameters(W, a)
    assert np.array_equal(a, np.ones(N))
    assert np.abs(M2 - M).max() < 1e-12 * (1 + np.abs(M).max())
    assert np.abs(wb2 - wb).max() < 1e-12


def test_trained_readouts_break_the_reduction():
    """Same start (a = 1): with trained read-outs the reduction drifts from the exact GD,
    from the first step on."""
    X, y, beta, W, a, alpha, eps, lr, gamma = _unit_readouts(2)
    N = W.shape[0]
    wb, M = readout_order_parameters(W, a)
    Wr, ar = _gd_reference(W, a, X, y, alpha, eps, lr, 1)
    r1 = (wb.copy(), M.copy())
    reduced_steps(X, y, r1[0], r1[1], alpha, eps, gamma, 1, 0, wb, M, np.outer(beta, beta),
                  False)
    M_true = readout_order_parameters(Wr, ar)[1]
    # with a = 1 both move W alike; the defect is the read-out change sum_i da_i w_i' w_i'^T / N
    da = ar - a
    assert np.allclose(M_true - r1[1], (Wr.T * da) @ Wr / N, atol=1e-13)
    assert np.linalg.norm(M_true - r1[1]) > 1e-3 * np.linalg.norm(M_true - M)


def test_decomposition_exact_with_readouts():
    """t1 + t2 + t3 at (w_bar_a, M_a) is the population MSE of the read-out network:
    Monte Carlo on 4e5 fresh points within 4 standard errors, and a wrong state is rejected."""
    rng = np.random.default_rng(5)
    D, N, alpha, eps = 6, 3, 1.2, 0.3
    beta = rng.standard_normal(D)
    W, a = rng.standard_normal((N, D)), rng.standard_normal(N)
    Xt = rng.standard_normal((400_000, D)) / np.sqrt(D)
    H = Xt @ W.T
    sq = (alpha / N * (H + 0.5 * eps * H * H) @ a - 0.5 * (Xt @ beta) ** 2) ** 2
    mc, se = sq.mean(), sq.std() / np.sqrt(sq.size)
    wb, M = readout_order_parameters(W, a)
    assert abs(population_loss(wb, M, beta, alpha, eps)[0] - mc) < 4 * se
    wrong = population_loss(W.mean(0), W.T @ W / N, beta, alpha, eps)[0]   # read-outs ignored
    assert abs(wrong - mc) > 10 * se


def _contract(r):
    assert isinstance(r, Result) and dataclasses.is_dataclass(r)
    assert r.status in STATUS and r.message.startswith(STATUS[r.status])
    assert r.converged == (r.status == 0)
    json.dumps(r.to_dict(), allow_nan=False)


_SMALL = dict(D=6, P=20, N=2, steps=400, record_every=20, c=0.2)


def test_fig12_small_run_contract_and_gap():
    from kernelphase.validation.lazy_rich_figs import fig12
    r = fig12(**_SMALL)
    _contract(r)
    assert r.status in (0, 7)
    assert r.readouts_initial == (1.0, 1.0) and r.readouts_final != r.readouts_initial
    assert r.closure_defect_max > 1e-3 and r.max_test_gap > 0
    assert "no finite set of moments closes" in r.reduction
    g = fig12(readout_init="gaussian", **_SMALL)
    assert g.readouts_initial != (1.0, 1.0)


def test_fig12_checkpoint_resume_bit_for_bit(tmp_path):
    from kernelphase.io import RunDir
    from kernelphase.validation.lazy_rich_figs import fig12
    key = dict(_SMALL, alpha=1.0, eps=0.25, seed=3, centred=False, readout_init="ones",
               n_test=1000)
    kw = dict(_SMALL, seed=3)
    whole = fig12(out=str(tmp_path), **kw)
    with RunDir(tmp_path / "r", key) as rd:
        part = fig12(checkpoint=rd, _stop_after_records=5, **kw)
    assert part.params["steps"] == _SMALL["steps"]
    with RunDir(tmp_path / "r", key, resume=True) as rd:
        again = fig12(checkpoint=rd, **kw)
    assert whole.status != 6 and again.readouts_final == whole.readouts_final
    for f in ("final_test_loss", "max_test_gap", "closure_defect_max", "test_loss_mc"):
        assert getattr(again, f) == getattr(whole, f), f
    assert (tmp_path / "fig12.png").exists() and (tmp_path / "curves.csv").exists()


@pytest.mark.parametrize("kw, match", [
    (dict(readout_init="normal"), "readout_init='normal'"),
    (dict(c=0.0), "c=0.0 is outside"),
    (dict(threshold=-1.0), "threshold=-1.0 is outside"),
    (dict(N=0), "N=0 is outside")])
def test_fig12_bad_input(kw, match):
    from kernelphase.validation.lazy_rich_figs import fig12
    with pytest.raises(ValueError, match=match):
        fig12(**dict(_SMALL, **kw))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "kernelphase", "lazy-rich", "train", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_fig12(tmp_path):
    out = tmp_path / "f12"
    p = _cli("--preset", "fig12", "--D", "6", "--P", "20", "--steps", "200", "--record-every",
             "20", "--out", str(out), "--json", "--no-progress")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["params"]["N"] == 2 and d["params"]["c"] == 0.05 and d["params"]["centred"] is False
    assert (out / "summary.json").exists() and (out / "fig12.png").exists()
    for args, msg in ((("--readout-init", "ones"), "--readout-init does not apply"),
                      (("--with-linearised",), "--with-linearised does not apply"),
                      (("--steps", "-1"), "steps=-1 is outside")):
        pre = "fig4" if args[0] == "--readout-init" else "fig12"
        p = _cli("--preset", pre, *args, "--out", str(tmp_path / "bad"))
        assert p.returncode == 2 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1
