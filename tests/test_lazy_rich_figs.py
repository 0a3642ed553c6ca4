"""Issue 15: Kumar et al. 2023 Figs. 2 (modular addition, no weight decay) and 5 (kernel
eigenvector labels), their CLI presets, and ``kernel-regression --seeds``."""
import dataclasses
import json

import numpy as np
import pytest

from kernelphase.results import STATUS, Result


def _contract(r):
    assert isinstance(r, Result) and dataclasses.is_dataclass(r)
    names = {f.name for f in dataclasses.fields(r)}
    assert {"status", "message"} <= names and "converged" not in names
    assert r.status in STATUS and r.message.startswith(STATUS[r.status])
    assert r.converged == (r.status == 0)
    json.dumps(r.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- Fig. 2 network

def _explicit(p, mask):
    idx = np.flatnonzero(mask)
    X = np.zeros((idx.size, 2 * p))
    X[np.arange(idx.size), idx // p] = 1
    X[np.arange(idx.size), p + idx % p] = 1
    Y = np.eye(p)[(idx // p + idx % p) % p]
    return X, Y


def test_modular_table_step_equals_explicit_gd():
    from kernelphase.validation import modular_net as m
    p, N, alpha, lr, steps = 5, 7, 1.3, 50.0, 30
    rng = np.random.default_rng(1)
    mask = m.modular_split(p, 0.8, rng)
    W = rng.standard_normal((N, 2 * p))
    A = rng.standard_normal((p, N))
    X, Y = _explicit(p, mask)
    Wr, Ar, losses = m.modular_gd_reference(W, A, X, Y, alpha, lr, steps)
    assert losses[-1] < losses[0]                       # the reference does descend
    W2, A2 = W.copy(), A.copy()
    lab = (np.arange(p)[:, None] + np.arange(p)[None, :]).ravel() % p
    for _ in range(steps):
        m._step(W2, A2, p, alpha / (2 * p * N), lr, lab, mask.astype(float), int(mask.sum()))
    assert np.abs(Wr - W).max() > 0.1                   # the weights moved
    assert np.abs(W2 - Wr).max() < 1e-12 and np.abs(A2 - Ar).max() < 1e-12


def test_modular_train_matches_reference_losses():
    from kernelphase.validation import modular_net as m
    p, N, alpha, steps = 5, 6, 2.0, 20
    res = m.train_modular(p=p, N=N, alpha=alpha, steps=steps, train_fraction=0.8, seed=3,
                          record_every=steps, acc_level=0.01)
    rng = np.random.default_rng(3)
    mask = m.modular_split(p, 0.8, rng)
    W = rng.standard_normal((N, 2 * p))
    A = rng.standard_normal((p, N))
    X, Y = _explicit(p, mask)
    _, _, losses = m.modular_gd_reference(W, A, X, Y, alpha, m.LR0 / alpha ** 2, steps + 1)
    assert res.train_loss[0] == pytest.approx(losses[0], rel=1e-12)
    assert res.train_loss[-1] == pytest.approx(losses[-1], rel=1e-10)
    _contract(res)


def test_modular_checkpoint_resume_bit_for_bit(tmp_path):
    from kernelphase.io import RunDir
    from kernelphase.validation.modular_net import train_modular
    kw = dict(p=5, N=6, alpha=1.0, steps=60, train_fraction=0.8, seed=2, record_every=10,
              lr0=10.0)
    key = dict(kw)
    whole = train_modular(**kw)
    with RunDir(tmp_path / "r", key) as rd:
        part = train_modular(checkpoint=rd, _stop_after_records=3, **kw)
    assert len(part.epoch) == 4
    with RunDir(tmp_path / "r", key, resume=True) as rd:
        again = train_modular(checkpoint=rd, **kw)
    assert whole.status != 6 and np.all(np.isfinite(whole.train_loss))
    assert np.array_equal(again.train_loss, whole.train_loss)
    assert np.array_equal(again.weight_norm, whole.weight_norm)
    with RunDir(tmp_path / "s", dict(key, seed=3)) as rd:
        with pytest.raises(ValueError, match="seed=2 differs"):
            train_modular(checkpoint=rd, **kw)


@pytest.mark.parametrize("kw,match", [
    (dict(p=1), "p=1"), (dict(N=0), "N=0"), (dict(alpha=0), "alpha=0"),
    (dict(train_fraction=1.0), "train_fraction=1.0"), (dict(train_fraction=0.001, p=3),
                                                        "gives 0 of 9"),
    (dict(steps=-1), "steps=-1"), (dict(acc_level=1.5), "acc_level=1.5"),
])
def test_modular_bad_input(kw, match):
    from kernelphase.validation.modular_net import train_modular
    args = dict(p=5, N=4, steps=10)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        train_modular(**args)


# --------------------------------------------------------------------------- Fig. 5 labels

def _gram_by_jacobian(W, X, alpha, eps):
    """NTK Gram matrix from the explicit Jacobian d f / d W (independent of ntk_gram)."""
    N, D = W.shape
    H = X @ W.T                                          # (n, N)
    J = (alpha / N) * (1.0 + eps * H)[:, :, None] * X[:, None, :]   # (n, N, D)
    J = J.reshape(X.shape[0], N * D)
    return J @ J.T


@pytest.mark.parametrize("k", [1, 3, 11, 14])   # rank N*D = 16: above it degenerate
def test_fig5_labels_are_gram_eigenvectors(k):
    from kernelphase.validation.lazy_rich_figs import eigenvector_labels
    from kernelphase.validation.polynomial_net import init_weights, make_data, ntk_gram
    rng = np.random.default_rng(4)
    X = make_data(8, 20, rng, "B")[0]
    W = init_weights(2, 8, rng)
    y, lam = eigenvector_labels(ntk_gram(W, X, X, 1.0, 0.25), k)
    K = _gram_by_jacobian(W, X, 1.0, 0.25)
    ev, V = np.linalg.eigh(K)
    order = np.argsort(ev)[::-1]
    v = V[:, order[k - 1]]
    ref = v - v.mean()
    assert np.allclose(lam, ev[order], rtol=1e-10, atol=1e-12)
    assert min(np.abs(y - ref).max(), np.abs(y + ref).max()) < 1e-10
    assert abs(y.mean()) < 1e-14
    other = V[:, order[k]]                         # a different eigenvector fails
    assert min(np.abs(y - other + other.mean()).max(), np.abs(y + other - other.mean()).max()) > 1e-3


def test_fig5_aligned_labels_generalise_misaligned_do_not():
    from kernelphase.validation.lazy_rich_figs import fig5
    res = fig5(label_indices=(1, 40), D=20, P=20, steps=3000, record_every=10)
    _contract(res)
    top, bottom = res.runs
    assert top["alignment"] > 10 * bottom["alignment"] > 0
    assert top["eigenvalue_ratio"] == 1.0 and bottom["eigenvalue_ratio"] < 0.05
    assert top["final_test_rel"] < 0.2 < bottom["final_test_rel"]
    assert top["final_train_rel"] < 1e-3 and not bottom["groks"]


@pytest.mark.parametrize("kw,match", [
    (dict(label_indices=(0,)), "label_index=0"), (dict(label_indices=(41,)), "label_index=41"),
    (dict(label_indices=(1, 1)), "distinct"), (dict(threshold=1.0), "threshold=1.0"),
    (dict(P=0), "P=0"), (dict(min_delay=0.5), "min_delay=0.5"),
])
def test_fig5_bad_input(kw, match):
    from kernelphase.validation.lazy_rich_figs import fig5
    args = dict(D=5, P=20, steps=10, label_indices=(1,))
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        fig5(**args)


def test_fig2_runner_tiny(tmp_path):
    from kernelphase.validation.lazy_rich_figs import fig2
    res = fig2(scales=(1.0, 2.0), p=5, N=30, steps=40, record_every=20, lr0=5.0,
               acc_level=0.01, out=str(tmp_path))
    _contract(res)
    assert [r["alpha"] for r in res.runs] == [1.0, 4.0]
    for f in ("curves_scale1.csv", "curves_scale2.csv", "fig2.png", "summary.json"):
        assert (tmp_path / f).exists()
    with pytest.raises(ValueError, match="scale=-1"):
        fig2(scales=(-1.0,), p=5, N=3, steps=1)


# --------------------------------------------------------------------------- CLI

def test_cli_fig2_writes_figure_and_json(run_cli, tmp_path):
    out = tmp_path / "f2"
    st, o, e = run_cli("lazy-rich", "train", "--preset", "fig2", "--modulus", 5, "--N", 30,
                       "--steps", 60, "--record-every", 20, "--scales", "1,2", "--out", out,
                       "--json", "--no-progress")
    assert st == 0, e
    d = json.loads(o)
    assert [r["scale"] for r in d["runs"]] == [1.0, 2.0] and d["out"] == str(out)
    assert d["params"]["p"] == 5 and "versions" in d
    for f in ("fig2.png", "summary.json", "curves_scale1.csv"):
        assert (out / f).exists()
    # resume: same parameters continue, others are refused with one line
    st, o, e = run_cli("lazy-rich", "train", "--preset", "fig2", "--modulus", 5, "--N", 30,
                       "--steps", 60, "--record-every", 20, "--scales", "1,2", "--out", out,
                       "--json", "--no-progress", "--resume")
    assert st == 0, e and json.loads(o)["runs"] == d["runs"]
    st, o, e = run_cli("lazy-rich", "train", "--preset", "fig2", "--modulus", 5, "--N", 31,
                       "--steps", 60, "--record-every", 20, "--scales", "1,2", "--out", out,
                       "--resume")
    assert st == 2 and "N=31" in e and len(e.strip().splitlines()) == 1


def test_cli_fig5_label_index(run_cli, tmp_path):
    out = tmp_path / "f5"
    st, o, e = run_cli("lazy-rich", "train", "--preset", "fig5", "--D", 10, "--P", 12,
                       "--steps", 200, "--label-index", 3, "--out", out, "--json",
                       "--no-progress")
    assert st == 0, e
    d = json.loads(o)
    assert [r["k"] for r in d["runs"]] == [3] and d["params"]["convention"] == "B"
    assert 0 < d["runs"][0]["alignment"] < 1
    assert (out / "fig5.png").exists() and (out / "curves_k3.csv").exists()


@pytest.mark.parametrize("argv,match", [
    (("--preset", "fig12", "--c", 0), "c=0"),
    (("--preset", "fig12", "--scales", "1"), "--scales does not apply to --preset fig12"),
    (("--preset", "fig12", "--threshold", 0), "threshold=0"),
    (("--preset", "fig2", "--D", 5), "--D does not apply to --preset fig2"),
    (("--preset", "fig2", "--scales", "1,1"), "twice"),
    (("--preset", "fig2", "--scales", "0"), "--scales entry='0'"),
    (("--preset", "fig2", "--modulus", 1), "modulus=1"),
    (("--preset", "fig2", "--train-fraction", 0), "train_fraction=0"),
    (("--preset", "fig2", "--acc-level", 0), "acc_level=0"),
    (("--preset", "fig2", "--threshold", 0.2), "--threshold does not apply"),
    (("--preset", "fig5", "--label-index", 201), "label_index=201"),
    (("--preset", "fig5", "--scales", "1"), "--scales does not apply to --preset fig5"),
    (("--preset", "fig5", "--threshold", 1), "threshold=1"),
    (("--preset", "fig5", "--resume"), "--resume does not apply"),
    (("--preset", "fig5", "--checkpoint-every", 5), "--checkpoint-every does not apply"),
    (("--preset", "fig5", "--P", 0), "P=0"),
    (("--preset", "fig2", "--steps", -1), "steps=-1"),
    (("--preset", "fig1", "--label-index", 2), "--label-index does not apply"),
])
def test_cli_fig_bad_input_one_line_exit_2_no_files(run_cli, tmp_path, argv, match):
    out = tmp_path / "o"
    st, o, e = run_cli("lazy-rich", "train", *argv, "--out", out, "--no-progress")
    assert st == 2
    assert len(e.strip().splitlines()) == 1 and match in e, e
    assert not out.exists()


def test_cli_train_help_shows_new_defaults(run_cli):
    st, o, e = run_cli("lazy-rich", "train", "--help")
    assert st == 0
    text = " ".join(o.split())
    for frag in ("fig2", "fig5", "fig12", "--label-index", "1 to 2P", "--scales",
                 "(None: 0.5,1,1.5,2)", "--acc-level", "(default: 0.9)", "--modulus"):
        assert frag in text, frag


# --------------------------------------------------------------------------- --seeds

def test_cli_kernel_regression_seeds_mean_and_stderr(run_cli):
    pytest.importorskip("kernelphase.spectra")
    base = ("lazy-rich", "kernel-regression", "--D", 12, "--P", 40, "--eps", 0.1,
            "--n-test", 300, "--json")
    singles = []
    for s in (3, 4, 5):
        st, o, e = run_cli(*base, "--seed", s)
        assert st == 0, e
        singles.append(json.loads(o)["test_mse_empirical"])
    st, o, e = run_cli(*base, "--seed", 3, "--seeds", 3)
    assert st == 0, e
    d = json.loads(o)
    assert d["test_mse_draws"] == pytest.approx(singles, rel=1e-12)
    assert d["test_mse_empirical"] == pytest.approx(np.mean(singles), rel=1e-12)
    assert d["test_mse_stderr"] == pytest.approx(np.std(singles, ddof=1) / np.sqrt(3), rel=1e-9)
    assert d["seeds"] == 3 and d["draws_failed"] == 0
    z = (d["test_mse_theory"] - d["test_mse_empirical"]) / d["test_mse_stderr"]
    assert d["theory_minus_mean_in_stderr"] == pytest.approx(z)


@pytest.mark.slow
def test_kernel_regression_theory_within_stderr_of_mean(run_cli):
    """Learning-curve theory vs the mean of 16 draws (D = 30, P = 200): within 3 stderr."""
    pytest.importorskip("kernelphase.spectra")
    st, o, e = run_cli("lazy-rich", "kernel-regression", "--D", 30, "--P", 200, "--eps", 0.1,
                       "--seeds", 16, "--json")
    assert st == 0, e
    d = json.loads(o)
    assert abs(d["theory_minus_mean_in_stderr"]) < 3
    assert d["test_mse_stderr"] < 0.05 * d["test_mse_empirical"]


@pytest.mark.parametrize("val", [0, 1001, 2.5])
def test_cli_kernel_regression_seeds_bad(run_cli, val):
    st, o, e = run_cli("lazy-rich", "kernel-regression", "--seeds", val)
    assert st == 2 and len(e.strip().splitlines()) == 1 and "seeds" in e


@pytest.mark.slow
def test_fig2_small_table_groks_later_for_larger_scale():
    """Kumar et al. 2023, Fig. 2 (qualitative): without weight decay the test accuracy jumps
    after the train accuracy, later and with a larger delay ratio for a larger output scale,
    while the weight norm rises. Reduced size p = 11, N = 50 (measured, seed 0: scale 0.5
    t_train 200 / t_test 400; scale 1.5: 1500 / 10600)."""
    from kernelphase.validation.lazy_rich_figs import fig2
    res = fig2(scales=(0.5, 1.5), p=11, N=50, steps=20000, record_every=100, seed=0)
    assert res.converged, res.message
    small, large = res.runs
    for r in res.runs:
        assert r["t_test_acc"] > r["t_train_acc"]
        assert r["weight_norm_final"] > 1.5 * r["weight_norm_initial"]
    assert large["t_test_acc"] > 5 * small["t_test_acc"]
    assert (large["t_test_acc"] / large["t_train_acc"]
            > 2 * small["t_test_acc"] / small["t_train_acc"])
