"""Hysteresis protocol for modular addition (validation.hysteresis, modular part): the
network's target eigenvalue, the hot start, the theory of the hot state and its spinodal,
the hot branch holding its droplets below the spinodal and melting above it, resume, CLI."""
import json
import math

import numpy as np
import pytest

from kernelphase.validation.hysteresis import (modular_hysteresis_point,
                                               modular_hysteresis_theory,
                                               plan_modular_hysteresis, run_modular_hysteresis)
from kernelphase.validation.modular_addition import (MODULAR_PRESETS, ModularNetworkPosterior,
                                                     modular_hot_start, target_eigenvalue)

HYST = MODULAR_PRESETS["hyst"]
ARGS = (HYST["P"], HYST["width"], HYST["sigma_a2"], HYST["gamma"])


def test_target_eigenvalue_is_4p2_sigma_a2_times_the_mode_power():
    # the Fourier form against the projection of the P^2 x P^2 kernel on the target, for a
    # prior draw and for a hot start (droplets), which the printed normalisation misses by 4P^2
    post = ModularNetworkPosterior(11, 6, 0.1, 0.3, 1.0)
    for W in (post.prior_sample(np.random.default_rng(1))[1],
              modular_hot_start(post, 2.0, 0.5, np.random.default_rng(2))[1]):
        fourier, direct = target_eigenvalue(post, W)
        assert fourier == pytest.approx(direct, rel=1e-10)
        Phi, Psi = post.fourier_power(W)
        printed = post.sigma_a2 * np.mean(Phi[:, 1:] * Psi[:, 1:])
        assert direct == pytest.approx(4 * 11 ** 2 * printed, rel=1e-10)


def test_hot_start_puts_the_same_neurons_in_w_and_v_of_every_mode():
    post = ModularNetworkPosterior(13, 20, 0.1, 1e-3, 1.0)
    a, W = modular_hot_start(post, 3.0, 0.25, np.random.default_rng(0))
    Phi, Psi = post.fourier_power(W)
    hot = np.isclose(Phi, 3.0)
    assert np.array_equal(hot, np.isclose(Psi, 3.0)) and not hot[:, 0].any()
    assert list(hot[:, 1:].sum(0)) == [5] * 12                 # round(0.25 * 20) per mode
    assert set(hot[:, 1:7].sum(1)) == {1, 2}                    # 30 pairs spread over 20 neurons
    assert np.array_equal(hot[:, 1:7], hot[:, 12:6:-1])         # k and P - k together
    # the other coefficients keep the prior's power, E|w_k|^2 = 1/P
    assert np.mean(Phi[:, 1:][~hot[:, 1:]]) == pytest.approx(1 / 13, rel=0.15)
    assert a.shape == (20, 13) and W.shape == (20, 26)
    with pytest.raises(ValueError, match=r"hot_fraction=1\.5 is outside"):
        modular_hot_start(post, 3.0, 1.5, np.random.default_rng(0))


def _phi_plus(g, gamma):
    """Largest root of 1 - 2 g Phi + gamma Phi^2 (numpy), None when complex."""
    r = np.roots([gamma, -2 * g, 1.0])
    return float(np.max(r.real)) if np.all(np.isreal(r)) else None


def test_theory_against_brute_force():
    th = modular_hysteresis_theory(*ARGS, hot_fraction=0.25)
    P, gamma, lam = ARGS[0], ARGS[3], th["Lambda"]
    # the barrier: 2P max of the per-mode action on [0, Phi_+] at g_c, on a fine grid
    phi = np.linspace(0, th["phi_plus"], 200001)
    S = phi - th["g_c"] * phi ** 2 + gamma / 3 * phi ** 3
    assert th["barrier_pair_at_gc"] == pytest.approx(2 * P * S.max(), rel=1e-8)
    assert S[-1] == pytest.approx(0, abs=1e-12)                 # degenerate at g_c

    # the hot spinodal: the closure |a| = s2 / (s2 + Lambda p Phi_+(u a^2)^2) has a root with
    # the droplet minimum present just below it and none just above (dense grid in |a|)
    def has_root(s2):
        u = th["K"] / s2 ** 2
        xs = np.linspace(1e-4, 1, 20001)
        f = [x - s2 / (s2 + lam * 0.25 * _phi_plus(u * x * x, gamma) ** 2)
             if _phi_plus(u * x * x, gamma) else np.nan for x in xs]
        f = np.array(f)
        ok = np.isfinite(f)
        return bool(np.any(np.diff(np.sign(f[ok])) != 0))
    s_hot = th["sigma2_spinodal_hot"]
    assert has_root(0.995 * s_hot) and not has_root(1.005 * s_hot)
    assert th["sigma2_gmfl1"] < s_hot < th["sigma2_spinodal_lone"]
    # the GMFL-I onset is the printed one (solvers.modular); the window uses 4P^2 sigma_a^2
    from kernelphase.solvers.modular import modular_transition
    assert th["sigma2_gmfl1"] == pytest.approx(modular_transition(*ARGS).sigma2_gmfl1, rel=1e-12)
    # inside GMFL-I: g pinned at g_c and the closure satisfied by the equilibrium p
    s2 = 0.85 * th["sigma2_gmfl1"]
    eq = modular_hysteresis_point(th, s2)["equilibrium"]
    u = th["K"] / s2 ** 2
    assert eq["phase"] == "GMFL-I" and u * eq["a"] ** 2 == pytest.approx(th["g_c"], rel=1e-12)
    assert -eq["a"] == pytest.approx(s2 / (s2 + lam * eq["p"] * th["phi_plus"] ** 2), rel=1e-12)
    # the hot state keeps p0 and its own closure; beyond the spinodal it has melted
    for f in (0.8, 1.0, 1.03):
        hot = modular_hysteresis_point(th, f * th["sigma2_gmfl1"])["hot"]
        s2 = f * th["sigma2_gmfl1"]
        assert hot["p"] == 0.25 and -hot["a"] == pytest.approx(
            s2 / (s2 + lam * 0.25 * _phi_plus(hot["g"], gamma) ** 2), rel=1e-9)
    assert modular_hysteresis_point(th, 1.01 * s_hot)["hot"] == {"a": -1.0, "p": 0.0,
                                                                 "g": th["K"] / (1.01 * s_hot) ** 2}


@pytest.mark.parametrize("kw, match", [
    ({"hot_fraction": 2.0}, r"hot_fraction=2\.0 is outside the valid range \[0, 1\]"),
    ({"sigma2": (8e-4, 8e-4)}, "repeated values"), ({"nets": 0}, r"nets=0 is outside"),
    ({"preset": "nope"}, "preset"), ({"steps": 5}, r"steps=5 is outside"),
    ({"sigma2": (-1.0,)}, r"sigma2=-1\.0 is outside")])
def test_plan_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        plan_modular_hysteresis(**kw)


def test_resume_after_an_interruption_is_bit_identical(tmp_path):
    import os
    from kernelphase.io import RunDir
    kw = dict(sigma2=(8e-4, 9e-4), nets=1, steps=40, workers=1, progress=False)
    key = plan_modular_hysteresis(**{k: v for k, v in kw.items() if k != "progress"})["key"]
    with RunDir(tmp_path / "run", key) as rd:
        straight = run_modular_hysteresis(run_dir=rd, **kw)
    for name in os.listdir(tmp_path / "run" / "checkpoints"):     # killed before point 2
        if "_p1_" in name:
            os.remove(tmp_path / "run" / "checkpoints" / name)
    with RunDir(tmp_path / "run", key, resume=True) as rd:
        resumed = run_modular_hysteresis(run_dir=rd, **kw)
    assert json.dumps(resumed.to_dict()["rows"]) == json.dumps(straight.to_dict()["rows"])
    assert [(r["branch"], r["sigma2"]) for r in straight.rows] == [
        ("cold", 9e-4), ("cold", 8e-4), ("hot", 8e-4), ("hot", 9e-4)]


def test_cli_writes_the_loop_and_refuses_bad_input(run_cli, tmp_path):
    out = tmp_path / "hy"
    st, stdout, err = run_cli("validate", "hysteresis", "modular", "--sigma2", "8e-4,9e-4",
                              "--nets", "1", "--steps", "20", "--workers", "1",
                              "--no-progress", "--json", "--out", out)
    assert st == 0, err
    summary = json.loads(stdout)
    report = json.loads((out / "report.json").read_text())
    assert report["theory"]["sigma2_gmfl1"] < report["theory"]["sigma2_spinodal_hot"]
    assert (out / "hysteresis.png").exists()
    assert {r["branch"] for r in summary["rows"]} == {"cold", "hot"}
    st, stdout, err = run_cli("validate", "hysteresis", "modular", "--hot-fraction", "-0.1",
                              "--out", tmp_path / "bad")
    assert st == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "hot_fraction=-0.1 is outside the valid range [0, 1]" in err
    assert not (tmp_path / "bad").exists()



def test_hot_branch_holds_its_droplets_below_the_spinodal_and_melts_above():
    # hyst preset: at 0.93 sigma_1^2 (GMFL-I) the hot start keeps its droplet weight
    # p0 = 8/60 and learns |a| of the hot-state closure (4P^2 sigma_a^2 normalisation: the
    # printed one would give |a| = 1 - 3e-5); the cold start stays GFL (a = -1, no droplet);
    # at 1.2 sigma_1^2, beyond the hot spinodal 1.062 sigma_1^2, the droplets have melted
    th = modular_hysteresis_theory(*ARGS, hot_fraction=8 / 60)
    s1 = th["sigma2_gmfl1"]
    rep = run_modular_hysteresis(sigma2=(0.93 * s1, 1.2 * s1), nets=1, steps=300, workers=1,
                                 progress=False)
    assert rep.theory["hot_fraction"] == pytest.approx(8 / 60)
    row = {(r["branch"], round(r["sigma2"] / s1, 2)): r for r in rep.rows}
    hot, cold = row["hot", 0.93], row["cold", 0.93]
    assert hot["droplet_fraction"]["sim_mean"] == pytest.approx(8 / 60, abs=0.01)
    assert -hot["a"]["sim_mean"] == pytest.approx(-hot["theory"]["hot"]["a"], abs=0.01)
    assert -hot["a"]["sim_mean"] < 0.97 < 0.998 < -cold["a"]["sim_mean"]
    assert cold["droplet_fraction"]["sim_mean"] == 0
    assert 1.0 < th["sigma2_spinodal_hot"] / s1 < 1.2
    assert row["hot", 1.2]["droplet_fraction"]["sim_mean"] < 0.01
    assert row["hot", 1.2]["theory"]["hot"]["p"] == 0
