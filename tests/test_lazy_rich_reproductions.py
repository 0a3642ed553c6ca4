"""Issue 5 paper reproductions (slow: run with ``pytest -m slow``; ~3 min each on 2 cores)."""
import numpy as np
import pytest

from kernelphase.validation.lazy_rich_runs import kernel_regression_line, sweep
from kernelphase.validation.polynomial_net import PRESETS, make_data, t_below, train

pytestmark = pytest.mark.slow


def test_gh_5_fig1_grokking_weight_norm_grows():
    """Kumar et al. 2023, Fig. 1: test loss < 0.1 well after train loss; no weight decay;
    weight norm grows; NTK alignment rises. Measured (seed 0): t_train 7400, t_test 36340,
    |W| 224 -> 1562."""
    cfg = PRESETS["fig1"]
    run = train(**{k: cfg[k] for k in ("D", "P", "N", "alpha", "eps", "c", "steps",
                                       "convention", "centred")}, seed=0, n_test_align=1000,
                align_every=5000)
    tt = t_below(run.epoch, run.train, 0.1)
    ts = t_below(run.epoch, run.test, 0.1)
    assert np.isfinite(tt) and np.isfinite(ts) and ts > 2 * tt
    assert run.weight_norm[-1] > 3 * run.weight_norm[0]
    assert np.all(np.diff(run.weight_norm) > -1e-9 * run.weight_norm[0])
    assert run.alignment[-1] > run.alignment[0]


def test_gh_5_fig1_kernel_regression_line():
    """Paper: horizontal line ~0.41 [read off Fig. 1; beta un-normalised, JAX seeds].
    Ours differs by the teacher draw: compare loss / E[y^2] instead, within 30 %."""
    cfg = PRESETS["fig1"]
    ratios = []
    for seed in range(3):
        kr = kernel_regression_line(cfg, seed)
        _, _, beta, _ = make_data(cfg["D"], cfg["P"], np.random.default_rng(seed))
        ratios.append(kr["empirical_ntk"] / (0.75 * (beta @ beta / cfg["D"]) ** 2))
    # theory with |beta|^2 = D: 0.56 of E[y^2] = 0.75 -> ratio 0.75; paper 0.41/0.75 = 0.55
    assert 0.5 < np.mean(ratios) < 1.0


def test_gh_5_grokking_gap_grows_with_alpha(tmp_path):
    cfg = PRESETS["fig1"]
    res = sweep(cfg, [0.25, 0.5, 1.0, 2.0], [0.02], seed=0, out=str(tmp_path))
    gaps = [r["gap"] for r in res.runs]
    assert all(np.diff(gaps) > 0), gaps
    # measured 1.13; saddle-escape theory 0.89 (theory note Sec. 6)
    assert 0.7 < res.fitted_exponent < 1.5


def _window_run(P, eps):
    cfg = dict(PRESETS["goldilocks"], P=P, eps=eps)
    run = train(**{k: cfg[k] for k in ("D", "P", "N", "alpha", "eps", "c", "steps",
                                       "convention", "centred")}, seed=0)
    return run, run.test / run.test[0]


def test_gh_15_data_window_at_eps_0_1():
    """Goldilocks appendix (D = 40, N = 100): P = 50 never generalises, P = 120 groks (test
    below half its initial value > 5x later than train), P = 500 learns at once. Measured
    (seed 0, eps = 0.1): final test/initial 1.9, 0.33, 0.001; t 250 vs 4440 at P = 120."""
    r50, rel50 = _window_run(50, 0.1)
    assert rel50[-1] > 1.0
    r120, rel120 = _window_run(120, 0.1)
    tt = t_below(r120.epoch, r120.train / r120.train[0], 0.5)
    ts = t_below(r120.epoch, rel120, 0.5)
    assert rel120.max() > 1.2 and rel120[-1] < 0.5 and ts > 5 * tt
    r500, rel500 = _window_run(500, 0.1)
    assert rel500[-1] < 0.01 and rel500.max() < 1.2


def test_gh_15_no_window_at_eps_0_5():
    """The theory note's eps = 0.5: P = 120 interpolates within ~1e3 steps (train loss
    < 1e-10) with the test loss never above its initial value and stuck near half of it
    (measured 0.52), so a longer run cannot grok."""
    r, rel = _window_run(120, 0.5)
    assert r.train[-1] < 1e-10 and rel.max() <= 1.0 + 1e-9 and 0.3 < rel[-1] < 0.7


def test_gh_15_fig12_trained_readouts_seed_1_groks():
    """Fig. 12 (read-outs trained), seed 1: measured t_train 13080, t_test 25650 (reduction
    with frozen read-outs: 6320 / 18600); the gap to the reduction opens at the first record."""
    from kernelphase.validation.lazy_rich_figs import fig12
    r = fig12(seed=1)
    assert r.status == 0 and r.t_test > 1.5 * r.t_train
    assert r.frozen_t_test < r.t_test and r.gap_onset_epoch <= 100
    assert abs(r.test_loss_mc - r.final_test_loss) < 0.2 * r.final_test_loss
