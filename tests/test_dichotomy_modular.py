"""Issue 15: modular addition with large initialisation and weight decay (Lyu et al. 2023,
Fig. 2), and the exact misgrokking population accuracy.

Every check compares with an independent computation: finite differences, a slow reference
GD, direct sums over all pairs, Monte Carlo sampling, an uninterrupted run.
"""
import json
import math

import numpy as np
import pytest

from kernelphase.validation import modular_mlp as mm


def _random_state(p, h, seed):
    rng = np.random.default_rng(seed)
    return mm.MLPState(rng.standard_normal((2 * p, h)), 0.3 * rng.standard_normal(h),
                       0.5 * rng.standard_normal((h, p)))


def _loss_direct(s, a, b, labels):
    """Cross-entropy written from the definition, with the concatenated one-hot input."""
    p = s.W2T.shape[1]
    tot = 0.0
    for ai, bi, li in zip(a, b, labels):
        x = np.zeros(2 * p)
        x[ai] = 1.0
        x[p + bi] = 1.0
        z = np.maximum(s.W1T.T @ x + s.b1, 0.0) @ s.W2T
        tot += math.log(np.sum(np.exp(z - z.max()))) + z.max() - z[li]
    return tot / len(a)


def test_gradient_matches_finite_differences():
    p, h = 5, 7
    a, b, labels, mask = mm.modular_pairs(p, 0.6, seed=3)
    a, b, labels = a[mask], b[mask], labels[mask]
    s = _random_state(p, h, 1)
    loss, g = mm.mlp_loss_grad(s, a, b, labels)
    assert abs(loss - _loss_direct(s, a, b, labels)) <= 1e-12 * (1 + abs(loss))
    eps = 1e-6
    rng = np.random.default_rng(0)
    for name in ("W1T", "b1", "W2T"):
        arr, grad = getattr(s, name), getattr(g, name)
        for _ in range(6):
            idx = tuple(rng.integers(0, m) for m in arr.shape)
            old = arr[idx]
            arr[idx] = old + eps
            lp = _loss_direct(s, a, b, labels)
            arr[idx] = old - eps
            lm = _loss_direct(s, a, b, labels)
            arr[idx] = old
            fd = (lp - lm) / (2 * eps)
            assert abs(fd - grad[idx]) <= 1e-6 * (1 + abs(fd)), (name, idx, fd, grad[idx])


def test_gradient_check_rejects_a_wrong_gradient():
    """The finite-difference check above would catch a dropped ReLU mask."""
    p, h = 5, 7
    a, b, labels, mask = mm.modular_pairs(p, 0.6, seed=3)
    s = _random_state(p, h, 1)
    _, g = mm.mlp_loss_grad(s, a[mask], b[mask], labels[mask])
    n = int(mask.sum())
    G = np.exp(mm._log_softmax(mm.mlp_logits(s, a[mask], b[mask])))
    G[np.arange(n), labels[mask]] -= 1.0
    wrong_b1 = (G / n @ s.W2T.T).sum(axis=0)          # no ReLU derivative
    assert np.max(np.abs(wrong_b1 - g.b1)) > 1e-3


def test_fast_step_equals_reference_gd():
    p, h = 7, 16
    a, b, labels, mask = mm.modular_pairs(p, 0.5, seed=2)
    s0 = _random_state(p, h, 4)
    ref = mm.mlp_gd_reference(s0, a[mask], b[mask], labels[mask], lr=0.05, lam=1e-2, steps=5)
    s = s0.copy()
    st = mm._Stepper(p, h, a[mask], b[mask], labels[mask])
    for _ in range(5):
        st.step(s, 0.05, 1e-2)
    for name in ("W1T", "b1", "W2T"):
        x, r = getattr(s, name), getattr(ref, name)
        assert np.max(np.abs(x - r)) <= 1e-12 * (1 + np.max(np.abs(r)))


def test_start_has_zero_output_and_he_scale():
    s = mm.init_mlp(31, 4000, 3.0, seed=0)
    assert not s.W2T.any() and not s.b1.any()
    # He normal (std sqrt(2 / fan_in), fan_in = 2p) times the scale, within 5 standard errors
    std = 3.0 * math.sqrt(2.0 / 62)
    se = std * math.sqrt(0.5 / s.W1T.size)
    assert abs(s.W1T.std() - std) <= 5 * se


def test_tiny_run_fits_and_loss_decreases():
    r = mm.train_modular_mlp(p=7, init_scale=1.0, lam=1e-3, lr=0.5, steps=300, width=32,
                             train_frac=0.6, record_every=50, seed=1)
    tl = r.curves["train_loss"]
    assert tl[0] == pytest.approx(math.log(7), rel=1e-12)       # zero output at the start
    assert tl[-1] < 0.5 * tl[0] and np.all(np.diff(tl) < 0)
    assert r.final_train_acc == 1.0 and r.t_train <= 300
    # the recorded accuracies equal a direct count over the pairs
    a, b, labels, mask = mm.modular_pairs(7, 0.6, seed=1)
    pred = np.argmax(mm.mlp_logits(r.state, a, b), axis=1)
    assert r.final_test_acc == np.mean(pred[~mask] == labels[~mask])
    assert r.n_train == int(mask.sum()) == round(0.6 * 49)
    assert r.final_norm == pytest.approx(math.sqrt(r.state.sq_norm()), rel=1e-12)
    # test accuracy never reached 95 %: status 7, t_test NaN (JSON null)
    if not r.final_test_acc >= 0.95:
        assert r.status == 7 and math.isnan(r.t_test) and r.to_dict()["t_test"] is None
        assert r.message.startswith("run too short to measure")


def test_first_step_at_least():
    assert mm.first_step_at_least([0, 10, 20, 30], [0.1, 0.96, 0.5, 0.99]) == 10
    assert math.isnan(mm.first_step_at_least([0, 10], [0.1, 0.94]))
    assert mm.first_step_at_least([0, 10], [0.95, 1.0]) == 0


def test_resume_is_bit_identical(tmp_path):
    from kernelphase.io import RunDir
    kw = dict(p=7, init_scale=2.0, lam=1e-2, lr=0.3, steps=120, width=16, train_frac=0.6,
              record_every=10, checkpoint_every=20, seed=5)
    whole = mm.train_modular_mlp(**kw)
    key = mm.modular_run_key(**{k: v for k, v in kw.items() if k != "checkpoint_every"})

    class Stop(Exception):
        pass

    def stop(step):
        if step == 70:
            raise Stop
    with pytest.raises(Stop):
        with RunDir(tmp_path / "run", key) as rd:
            mm.train_modular_mlp(checkpoint=rd, _after_record=stop, **kw)
    with RunDir(tmp_path / "run", key, resume=True) as rd:
        assert int(rd.load("checkpoint.npz")["step"]) == 60
        again = mm.train_modular_mlp(checkpoint=rd, **kw)
    for name in ("W1T", "b1", "W2T"):
        assert np.array_equal(getattr(whole.state, name), getattr(again.state, name))
    for k in whole.curves:
        assert np.array_equal(whole.curves[k], again.curves[k]), k
    with pytest.raises(ValueError, match="lam"):
        with RunDir(tmp_path / "run", dict(key, lam=0.5), resume=True) as rd:
            pass


@pytest.mark.parametrize("kw, match", [
    (dict(p=1), r"p=1 is outside the valid range \[2, 1000\]"),
    (dict(init_scale=0.0), r"init_scale=0.0 is outside the valid range \(0, 10000\]"),
    (dict(lam=-1e-3), r"lam=-0.001 is outside"),
    (dict(lr=float("nan")), r"lr=nan is outside"),
    (dict(train_frac=1.0), r"train_frac=1.0 is outside the valid range \(0, 1\)"),
    (dict(p=3, train_frac=0.01), r"train_frac=0.01 gives 0 of the 9 pairs"),
    (dict(steps=10, record_every=3, checkpoint_every=4), r"checkpoint_every=4 must be a multiple"),
    (dict(width=0), r"width=0 is outside"),
])
def test_bad_input_names_parameter(kw, match):
    with pytest.raises(ValueError, match=match):
        mm.train_modular_mlp(**kw)


def _cli(argv, capsys):
    from kernelphase.cli import main
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_file_and_figure(tmp_path, capsys):
    f, fig = tmp_path / "run.json", tmp_path / "run.png"
    code, out, err = _cli(["dichotomy", "train", "modular", "--p", "7", "--width", "16",
                           "--steps", "40", "--record-every", "10", "--lr", "0.3",
                           "--train-frac", "0.6", "--seed", "2", "--no-progress",
                           "--json", str(f), "--out", str(fig)], capsys)
    assert code == 0, err
    rec = json.loads(f.read_text())
    for k in ("t_train", "t_test", "delay", "curves", "params", "seed", "versions",
              "provenance", "status", "message", "converged"):
        assert k in rec, k
    assert rec["seed"] == 2 and rec["params"]["p"] == 7 and rec["versions"]["numpy"]
    assert rec["curves"]["step"][-1] == 40 and fig.stat().st_size > 1000
    assert "t_train:" in out


def test_cli_bad_input_one_line_no_output(tmp_path, capsys):
    f = tmp_path / "run.json"
    code, out, err = _cli(["dichotomy", "train", "modular", "--p", "7", "--lam", "-1",
                           "--json", str(f)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "lam=-1.0" in err
    assert not f.exists() and list(tmp_path.iterdir()) == []
    code, _, err = _cli(["dichotomy", "train", "modular", "--resume"], capsys)
    assert code == 2 and "--resume needs --run-dir" in err


# ------------------------------------------------------------------ misgrokking, exact accuracy

def test_misgrok_population_accuracy_against_monte_carlo():
    from kernelphase.validation.diagonal_net import misgrok_dataset, misgrok_population_accuracy
    from kernelphase.solvers.margins import linear_accuracy
    d, m, gamma = 40, 200000, 2.0
    _, _, Xt, yt, w_star = misgrok_dataset(d, 2, m, gamma=gamma, seed=7)
    rng = np.random.default_rng(1)
    for mix in (0.05, 0.2, 1.0):
        w = mix * w_star + rng.standard_normal(d) / math.sqrt(d)
        exact = misgrok_population_accuracy(w, w_star, gamma)
        mc = linear_accuracy(w, Xt, yt)
        se = math.sqrt(exact * (1 - exact) / m)
        assert abs(mc - exact) <= 5 * se + 1e-12, (mix, mc, exact)
    # and it rejects a wrong law: the gap gamma / 2 matters
    w = 0.2 * w_star + rng.standard_normal(d) / math.sqrt(d)
    assert abs(misgrok_population_accuracy(w, w_star, 0.0) - linear_accuracy(w, Xt, yt)) > 0.05
    assert misgrok_population_accuracy(w_star, w_star, gamma) == 1.0
    assert misgrok_population_accuracy(-w_star, w_star, gamma) == 0.0


def test_train_diag_misgrok_reports_population_accuracy():
    from kernelphase.validation.dichotomy_runs import train_diag
    r = train_diag(task="misgrok", d=40, n=8, n_test=4000, alpha=8.0, lam=1e-2, points=20,
                   gamma=4.0)
    pop, emp = np.asarray(r.curves["population_acc"]), np.asarray(r.curves["test_acc"])
    # 4000 test points: the empirical accuracy is within 5 standard errors of the exact one
    assert np.all(np.abs(pop - emp) <= 5 * np.sqrt(pop * (1 - pop) / 4000) + 1e-3)
    assert r.final_population_acc == pop[-1] and 0.5 <= r.l2_svm_population_acc <= 1.0
    sparse = train_diag(d=30, n=12, n_test=10, alpha=8.0, lam=1e-2, points=20)
    assert math.isnan(sparse.final_population_acc) and "population_acc" not in sparse.curves


def test_sweep_verdicts():
    from kernelphase.validation.dichotomy_runs import _monotone
    rows = [dict(init_scale=s, lam=1e-3, delay=d) for s, d in ((1, 100.0), (10, 300.0),
                                                               (100, 500.0))]
    assert _monotone(rows, "init_scale", "lam", +1) is True
    assert _monotone(rows, "init_scale", "lam", -1) is False
    rows[1]["delay"] = float("nan")
    assert _monotone(rows, "init_scale", "lam", +1) is True
    assert _monotone(rows[:1], "init_scale", "lam", +1) is None


@pytest.mark.slow
def test_delay_grows_with_scale_and_shrinks_with_lam():
    """Fig. 2b/2c of the paper at p = 23 (the defaults; about 2 minutes on one idle core).

    Theory (Thms 3.4/3.5): the kernel phase lasts ln(scale)/lambda + O(1/lambda), so from
    scale 10 to 1000 the delay grows by ln(100)/(lr lam) = 9210 steps; measured 7900 (README).
    Tolerance: 0.6 to 1.4 of the prediction (the theory is leading order in ln(scale))."""
    from kernelphase.validation.dichotomy_runs import sweep_modular
    res = sweep_modular(scales=(10.0, 1000.0), lams=(2e-3, 5e-4), scale_for_lams=10.0,
                        lam_for_scales=1e-3)
    assert res.converged, res.message
    rows = {(r["init_scale"], r["lam"]): r for r in res.rows}
    growth = rows[(1000.0, 1e-3)]["delay"] - rows[(10.0, 1e-3)]["delay"]
    predicted = math.log(100.0) / (0.5 * 1e-3)
    assert 0.6 <= growth / predicted <= 1.4, (growth, predicted)
    assert res.delay_grows_with_scale is True and res.delay_shrinks_with_lam is True


def test_sweep_contract_when_too_short():
    from kernelphase.validation.dichotomy_runs import ModularSweepResult, sweep_modular
    r = sweep_modular(scales=(1.0, 2.0), lams=(1e-3, 2e-3), p=7, steps=100, width=16,
                      record_every=10)
    assert isinstance(r, ModularSweepResult) and len(r.rows) == 3 and not r.converged
    assert r.message.startswith("run too short to measure") and r.delay_grows_with_scale is None
    json.dumps(r.to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match="init_scale=0.0"):
        sweep_modular(scales=(0.0, 2.0))
