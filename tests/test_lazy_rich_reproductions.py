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
