"""Langevin sampler (issue 4): exactness on a grid posterior, step bias, resume, CLI errors."""
import json

import numpy as np
from scipy.stats import kstest

from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run

SIGMA2, SA2, SW2 = 0.5, 1.5, 1.0


def _toy():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 1))
    y = np.tanh(1.5 * X[:, 0])
    return ErfNetworkPosterior(X, y, SIGMA2, SA2, SW2, width=1)


def _grid_posterior(post, sigma2=SIGMA2):
    """Exact 2-D posterior of (a, w) on a grid (independent of the sampler)."""
    from scipy.special import erf
    a = np.linspace(-5, 5, 1201)
    w = np.linspace(-5, 5, 1201)
    A, Wg = np.meshgrid(a, w, indexing="ij")
    f = A[..., None] * erf(Wg[..., None] * post.X[:, 0])
    logp = -A ** 2 / (2 * SA2) - Wg ** 2 / (2 * SW2) - ((f - post.y) ** 2).sum(-1) / (2 * sigma2)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    return a, w, p


def _cdf(grid, marg):
    c = np.cumsum(marg)
    return lambda x: np.interp(x, grid, c / c[-1])


def _final_states(post, lr, chains=4000, steps=3000, seed=0):
    out = langevin_run(post, chains, steps, lr, seed, progress=False)
    return out["a"][:, 0], out["W"][:, 0, 0]


def test_sampler_matches_grid_posterior():
    """KS test of the marginals of 4000 independent chains at significance 0.001, and the
    check rejects a wrong law (the posterior at twice the noise)."""
    post = _toy()
    a_s, w_s = _final_states(post, lr=2e-3)
    a, w, p = _grid_posterior(post)
    assert kstest(a_s, _cdf(a, p.sum(1))).pvalue > 1e-3
    assert kstest(w_s, _cdf(w, p.sum(0))).pvalue > 1e-3
    _, _, p_wrong = _grid_posterior(post, sigma2=2 * SIGMA2)
    assert kstest(w_s, _cdf(w, p_wrong.sum(0))).pvalue < 1e-3 or \
        kstest(a_s, _cdf(a, p_wrong.sum(1))).pvalue < 1e-3


def test_step_size_bias_shrinks():
    post = _toy()
    a, w, p = _grid_posterior(post)
    exact = (p.sum(0) * w ** 2).sum()
    errs = []
    for lr in (0.08, 0.02):
        _, w_s = _final_states(post, lr=lr, chains=20000, steps=int(6 / lr), seed=1)
        errs.append(abs(np.mean(w_s ** 2) - exact))
    se = 3 * np.sqrt(2 / 20000) * exact
    assert errs[0] > 2 * se and errs[1] < errs[0] / 2


def test_resume_after_kill_is_bit_identical(tmp_path):
    post = _toy()
    obs = lambda a, W: {"w2": (W ** 2).mean()}
    kw = dict(nets=3, lr=1e-2, seed=5, burn_in=10, sample_every=3, observe=obs, progress=False)
    straight = langevin_run(post, steps=60, **kw)
    ck = tmp_path / "ck.npz"
    langevin_run(post, steps=60, checkpoint=ck, checkpoint_every=20, **kw)
    # simulate a kill after the 40-step checkpoint: rewind the file to that state
    first = langevin_run(post, steps=40, checkpoint=tmp_path / "k40.npz", checkpoint_every=20,
                         **kw)
    resumed = langevin_run(post, steps=60, checkpoint=tmp_path / "k40.npz", checkpoint_every=20,
                           resume=True, **dict(kw))
    assert first["step"] == 40
    assert np.array_equal(resumed["W"], straight["W"]) and np.array_equal(resumed["a"], straight["a"])
    assert np.array_equal(resumed["acc"]["w2"], straight["acc"]["w2"])


def test_gradient_matches_finite_differences():
    post = _toy()
    rng = np.random.default_rng(0)
    a, W = rng.standard_normal((2, 1)), rng.standard_normal((2, 1, 1))

    def logp(a, W):
        f = post.forward(a, W)
        return (-(a ** 2).sum(1) / (2 * post.var_a) - (W ** 2).sum((1, 2)) / (2 * post.var_w)
                - ((f - post.y) ** 2).sum(1) / (2 * post.sigma2))
    ga, gW = post.grad(a, W)
    h = 1e-6
    num = (logp(a + h, W) - logp(a - h, W)) / (2 * h)
    assert np.allclose(ga[:, 0], num, rtol=1e-6)
    num = (logp(a, W + h) - logp(a, W - h)) / (2 * h)
    assert np.allclose(gW[:, 0, 0], num, rtol=1e-6)


def test_cli_validate_small_and_errors(run_cli, tmp_path):
    st, out, err = run_cli("validate", "cubic", "--scale", 0.02, "--sigma2", "0.3", "--nets", 2,
                           "--steps", 40, "--out", tmp_path / "v")
    assert st == 0, err
    rep = json.loads((tmp_path / "v" / "report.json").read_text())
    row = rep["rows"][0]
    assert {"theory", "sim_mean", "std_error", "z_score", "rel_diff"} <= set(row["b"])
    assert rep["provenance"]["kernelphase_version"] and (tmp_path / "v" / "phi_and_b.png").exists()
    for argv, match in [(("--sigma2", "-0.1"), "sigma2=-0.1"), (("--nets", 0), "nets=0"),
                        (("--preset", "nope"), "preset='nope'")]:
        st, out, err = run_cli("validate", "cubic", "--out", tmp_path / "bad", *argv)
        assert st == 2 and match in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "bad").exists()
