"""Hysteresis protocol (validation.hysteresis): hot start, continuation of a sweep from the
previous state, the theory's first-order point and spinodals, the CLI leaf."""
import json
import math

import numpy as np
import pytest

from kernelphase.validation.hysteresis import (cubic_hysteresis_theory, hot_start,
                                               plan_hysteresis, run_hysteresis)
from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run, network_rng
from kernelphase.validation.teacher_student import cubic_data, scaled_preset

TINY = dict(scale=0.02, sigma2=(0.15, 0.2), nets=1, steps=40, n_test=50, workers=1,
            progress=False)


def _post(N=40, d=12, n=30, s2=0.2):
    X, y = cubic_data(n, d, -0.3, 0)
    return ErfNetworkPosterior(X, y, s2, 0.5, 0.5, N)


def test_hot_start_places_the_fraction_at_plus_minus_phi_star():
    post = _post()
    a, W = hot_start(post, 0.72, 0.25, np.random.default_rng(1))
    hot = np.isclose(np.abs(W[:, 0]), 0.72)
    assert hot.sum() == 10 and {-0.72, 0.72} == set(np.round(W[hot, 0], 2))
    # the rest of the weights are prior draws: variance sigma_w^2/d on the other directions
    assert np.var(W[:, 1:]) == pytest.approx(0.5 / 12, rel=0.2)
    assert a.shape == (40,) and W.shape == (40, 12)
    # and a check that would fail for a cold start
    assert np.sum(np.isclose(np.abs(post.prior_sample(np.random.default_rng(1))[1][:, 0]),
                             0.72)) == 0


@pytest.mark.parametrize("kw, match", [({"fraction": 1.5}, r"hot_fraction=1\.5 is outside"),
                                       ({"phi_star": -1.0}, r"phi_star=-1\.0 is outside")])
def test_hot_start_bad_input(kw, match):
    args = dict(phi_star=0.7, fraction=0.3)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        hot_start(_post(), args["phi_star"], args["fraction"], np.random.default_rng(0))


def test_init_starts_the_run_from_the_given_weights():
    post = _post()
    a0, W0 = hot_start(post, 0.72, 1.0, np.random.default_rng(2))
    r = langevin_run(post, 1, 1e-9, 0, init=(a0, W0))
    assert np.allclose(r.W, W0, atol=1e-3) and r.params["init"] == "given"
    cold = langevin_run(post, 1, 1e-9, 0)
    assert not np.allclose(cold.W, W0, atol=1e-3) and cold.params["init"] == "prior"
    with pytest.raises(ValueError, match=r"init has shapes \(40,\) and \(40, 3\)"):
        langevin_run(post, 1, 1e-3, 0, init=(a0, W0[:, :3]))
    with pytest.raises(ValueError, match="init contains NaN"):
        langevin_run(post, 1, 1e-3, 0, init=(a0 * np.nan, W0))


def test_theory_orders_the_first_order_point_and_the_spinodal():
    from kernelphase.solvers.cubic import cubic_phase
    p = scaled_preset("fig2", 0.125)
    args = (p["n"], p["d"], p["width"][0], p["sigma_a2"])
    th = cubic_hysteresis_theory(-0.3, *args)
    # GFL at large sigma^2: the droplet minimum exists below sigma2_s, wins below sigma2_c
    assert th["sigma2_c"] < th["sigma2_spinodal_droplet"]
    assert th["sigma2_c"] == pytest.approx(0.1781, abs=5e-4)       # README: u_c = 30.7
    mid = 0.5 * (th["sigma2_c"] + th["sigma2_spinodal_droplet"])
    assert cubic_phase(-0.3, mid, *args).metastable                 # the hysteresis window
    assert cubic_phase(-0.3, 1.02 * th["sigma2_spinodal_droplet"], *args).metastable is False
    assert cubic_phase(-0.3, 0.98 * th["sigma2_c"], *args).phase == "GMFL-I"
    # Phi = 0 stays a minimum of the GFL action far beyond u_c at this preset
    assert th["sigma2_spinodal_gfl"] is None and th["gfl_curvature_min"] > 0
    # the barrier a neuron crosses at u_c is of order kT at this d: why the branches meet
    assert 0.3 < th["barrier_at_uc_times_d"] < 1.0
    assert th["barrier_at_uc_times_d"] == pytest.approx(p["d"] * th["barrier_at_uc"])


def test_sweep_continues_from_the_previous_state():
    # the protocol's numbers equal a chain run by hand: hot start at the smallest sigma^2,
    # then the next point started from the final state of the first
    rep = run_hysteresis(**TINY)
    assert [(r["branch"], r["sigma2"]) for r in rep.rows] == [
        ("cold", 0.2), ("cold", 0.15), ("hot", 0.15), ("hot", 0.2)]
    p = scaled_preset("fig2", 0.02)
    N, d, n = p["width"][0], p["d"], p["n"]
    X, y = cubic_data(n, d, -0.3, 0)
    posts = [ErfNetworkPosterior(X, y, s2, p["sigma_a2"], 0.5, N, readout="gibbs")
             for s2 in (0.15, 0.2)]
    init = hot_start(posts[0], rep.theory["phi_star"], 0.3, network_rng(0, N, 1, 0, 99))
    masses = []
    for j, post in enumerate(posts):
        r = langevin_run(post, 40, 0.1 * 0.5 / d, 0, key=(N, 1, j, 0), sample_every=1,
                         burn_in=20, init=init,
                         series=lambda a, W: [np.mean(np.abs(W[:, 0]) > 0.5)])
        init = (r.a, r.W)
        masses.append(np.mean(r.series[20:, 0]))
    hot = [r for r in rep.rows if r["branch"] == "hot"]
    assert [h["droplet_mass"]["per_network"][0] for h in hot] == pytest.approx(masses, abs=1e-12)
    # the hot start holds more droplets than the cold one at the first point
    assert hot[0]["droplet_mass"]["sim_mean"] > rep.rows[1]["droplet_mass"]["sim_mean"]
    for r in rep.rows:
        for key in ("droplet_mass", "learned_cubic"):
            o = r[key]
            assert o["std_error"] > 0 and o["ess"] > 0 and math.isfinite(o["tau_steps"])
    json.dumps(rep.to_dict())


@pytest.mark.parametrize("kw, match", [
    ({"hot_fraction": 2.0}, r"hot_fraction=2\.0 is outside the valid range \[0, 1\]"),
    ({"sigma2": (0.2, 0.2)}, "repeated values"), ({"nets": 0}, r"nets=0 is outside"),
    ({"preset": "appD"}, "one width"), ({"steps": 5}, r"steps=5 is outside"),
    ({"dtype": "float16"}, r"dtype='float16' is not one of 'float64', 'float32'")])
def test_plan_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        plan_hysteresis(**{"scale": 0.02, **kw})


def test_float32_is_part_of_the_run_key():
    """A float32 sweep cannot resume a float64 one (and float64 keys stay as they were)."""
    assert "dtype" not in plan_hysteresis(scale=0.02)["key"]
    assert plan_hysteresis(scale=0.02, dtype="float32")["key"]["dtype"] == "float32"


def test_sign_change_interpolates_the_first_zero():
    from kernelphase.validation.hysteresis import _sign_change
    x = np.array([0.4, 0.5, 0.6, 0.7])
    assert math.isclose(_sign_change(x, np.array([-3.0, -1.0, 1.0, 2.0])), 0.55)
    assert math.isclose(_sign_change(x, np.array([2.0, -2.0, np.nan, 1.0])), 0.45)
    assert math.isnan(_sign_change(x, np.array([1.0, 2.0, np.inf, 3.0])))


def test_cli_finite_data_window(run_cli, tmp_path):
    """``--theory finite`` adds the window at the network's size: per noise level the
    predicted training residual, and the finite-d barriers at it (checked against
    :func:`finite_d_averages` called directly), resumable from its checkpoints."""
    from kernelphase.solvers.finite_d import finite_d_averages
    out = tmp_path / "hf"
    args = ("validate", "hysteresis", "cubic", "--preset", "hyst-wide", "--scale", "0.03",
            "--sigma2", "0.5", "--nets", "1", "--steps", "20", "--n-test", "30",
            "--theory", "finite", "--workers", "1", "--no-progress", "--out", out)
    st, stdout, err = run_cli(*args)
    assert st == 0, err
    assert "finite-data theory (the network's size" in stdout
    fdd = json.loads((out / "report.json").read_text())["theory"]["finite_data"]
    assert [r["sigma2"] for r in fdd["rows"]] == [0.5] and fdd["mc_seeds"] == [0, 1]
    d, N, sa2 = fdd["d"], fdd["width"], scaled_preset("hyst-wide", 0.03)["sigma_a2"]
    for r in fdd["rows"]:
        assert abs(r["b_train"]) < 1 and -3 < r["c_train"] < 0 and r["c_train_se"] >= 0
        a = finite_d_averages(r["u"], r["b_train"], r["c_train"], d, 0.25, "chi2", N,
                              N * sa2 / d)
        assert math.isclose(r["dF_times_d"] or math.inf, d * a["dF"], rel_tol=1e-9)
        a1 = finite_d_averages(r["u"], r["b_train"], r["c_train"], d, 0.25, "chi2")
        assert math.isclose(r["no_cavity"]["dF_times_d"] or math.inf, d * a1["dF"],
                            rel_tol=1e-9)
        assert (r["no_cavity"]["dF_times_d"] or math.inf) <= (r["dF_times_d"] or math.inf)
    st, _, err = run_cli(*args[:-2], "--resume", "--out", out)
    assert st == 0, err


def test_cli_writes_the_loop_and_refuses_bad_input(run_cli, tmp_path):
    out = tmp_path / "hy"
    st, stdout, err = run_cli("validate", "hysteresis", "cubic", "--scale", "0.02", "--sigma2",
                              "0.15,0.2", "--nets", "1", "--steps", "20", "--n-test", "30",
                              "--workers", "1", "--no-progress", "--json", "--out", out)
    assert st == 0, err
    summary = json.loads(stdout)
    report = json.loads((out / "report.json").read_text())
    assert report["theory"]["sigma2_c"] < report["theory"]["sigma2_spinodal_droplet"]
    assert report["provenance"]["seeds"]["seed"] == 0 and (out / "hysteresis.png").exists()
    assert {r["branch"] for r in summary["rows"]} == {"cold", "hot"}
    st, stdout, err = run_cli("validate", "hysteresis", "cubic", "--hot-fraction", "-0.1",
                              "--out", tmp_path / "bad")
    assert st == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "hot_fraction=-0.1 is outside the valid range [0, 1]" in err
    assert not (tmp_path / "bad").exists()


def _closed_form_action(phi, u, b, c, sw2):
    # Rubin et al. App. A.2, Eq. 8 in closed form (kernelphase.actions.cubic_action docstring)
    D = 1 + 2 * (sw2 + phi ** 2)
    return phi ** 2 / (2 * sw2) - 2 * u / math.pi * phi ** 2 / D * (b - 2 * c * phi ** 2 / D) ** 2


@pytest.mark.parametrize("preset, scale, lo, hi", [("fig2", 0.125, 0.4, 0.7),
                                                   ("hyst", 0.125, 9.0, 10.0),
                                                   ("hyst", 0.25, 13.0, 14.0),
                                                   ("hyst-wide", 0.125, 9.0, 10.0)])
def test_barrier_of_the_presets_against_the_closed_form_action(preset, scale, lo, hi):
    # the single-neuron barrier d * DeltaS between Phi = 0 and Phi* at u_c, from the printed
    # action on a fine grid: ~0.5 kT for fig2 at 1/8 (no loop), 9.5 kT for hyst
    from kernelphase.solvers.cubic import cubic_transition
    p = scaled_preset(preset, scale)
    args = (p["n"], p["d"], p["width"][0], p["sigma_a2"])
    th = cubic_hysteresis_theory(p["eps"], *args, sigma_w2=p["sigma_w2"])
    tr = cubic_transition(p["eps"], p["sigma_w2"], n=p["n"], d=p["d"], width=p["width"][0],
                          sigma_a2=p["sigma_a2"])
    phi = np.linspace(0, tr.phi_star, 20001)
    S = _closed_form_action(phi, tr.u_c, tr.b_at_uc, p["eps"], p["sigma_w2"])
    assert S[-1] == pytest.approx(0, abs=1e-6)                  # degenerate at u_c
    assert th["barrier_at_uc"] == pytest.approx(S.max(), rel=2e-3)
    assert lo < th["barrier_at_uc_times_d"] < hi
