"""``kernelphase reproduce``: every figure entry run with ``--quick`` and its JSON checked
against the numbers the papers state, within the stated tolerance; ``--list``; CLI errors.

The paper values are typed here with their source (not read back from the registry), so
a registry that drifts from the papers fails.
"""
import json
import math
import os

import pytest

from kernelphase.cli.reproduce import FIGURES, compare

# name -> {quantity: (paper value, tolerance, kind)}; sources:
#   Rubin et al. 2023: u_c ~ 30.2 at eps = -0.3, Fig. 2 (sigma^2_c ~ 0.18), the text
#   (saddles at Phi ~ +-1), Fig. 3 (GMFL-I from 0.227, GMFL-II from 0.175, a -> ~ -0.7),
#   App. D (N = 2800 before, 1400 just after, 700 inside GMFL-I); shared/theory/
#   adaptive_kernel.md Sec. 9;
#   Lyu et al. 2023: Fig. 1a (final norm 4.3, 100 % test accuracy, transition ~ 2.2/lambda
#   before ln(alpha)/lambda), Fig. 1b (99.9 % kernel phase), Fig. 3 (plateau 0.1022);
#   readings in shared/theory/dichotomy.md Sec. 3.7 and 4.4. Only numbers judged at the quick
#   size are listed.
PAPER = {
    "rubin-fig2": {"u_c": (30.2, 0.05, "rel"), "sigma2_c": (0.18, 0.05, "rel"),
                   "phi_star": (1.0, 0.35, "abs")},
    "rubin-fig2-langevin": {"sigma2_c": (0.18, 0.05, "rel")},
    "rubin-fig3": {"sigma2_gmfl1": (0.227, 0.05, "rel"), "sigma2_gmfl2": (0.175, 0.05, "rel"),
                   "a_at_gmfl2": (-0.7, 0.1, "rel")},
    "rubin-fig4": {"phase_N2800": ("GFL", None, "equal"), "phase_N1400": ("GMFL-I", None, "equal"),
                   "phase_N700": ("GMFL-I", None, "equal")},
    "lyu-fig1a": {"final_test_acc": (1.0, 0.01, "abs"), "final_norm": (4.3, 0.05, "rel"),
                  "lambda_t_transition_minus_ln_alpha": (-2.2, 0.5, "abs")},
    "lyu-fig1b": {"plateau_test_acc": (0.999, 0.01, "abs")},
    "lyu-fig3": {"plateau_test_mse": (0.1022, 0.01, "rel")},   # the transition: full only
}

#: entries over ~30 s in --quick (the theory-only ones stay in the fast suite)
SLOW = {"rubin-fig2-langevin", "kumar-fig1", "kumar-fig2", "kumar-fig3a", "kumar-fig3e",
        "kumar-fig4", "kumar-fig5", "kumar-fig12", "kumar-goldilocks", "lyu-fig1a",
        "lyu-fig1b", "lyu-fig3", "rubin-fig5", "lyu-fig2"}


#: quick runs whose function reports status 7 by design (stated in the entry's size)
TOO_SHORT_QUICK = {"lyu-fig3", "kumar-fig3e"}


def _entries():
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in FIGURES]


def test_every_entry_is_classified():
    fast = set(FIGURES) - SLOW
    assert {"rubin-fig2", "rubin-fig3", "rubin-fig4"} <= fast
    assert SLOW <= set(FIGURES)


def test_list(run_cli):
    status, out, err = run_cli("reproduce", "--list")
    assert status == 0 and not err
    lines = out.splitlines()
    for name, e in FIGURES.items():
        i = next(i for i, x in enumerate(lines) if x.startswith(name + ": "))
        assert e["figure"] in lines[i] and e["shows"] in lines[i + 1]
        assert e["cost_quick"] in lines[i + 2] and e["cost_full"] in lines[i + 2]
    status, out, _ = run_cli("reproduce", "--list", "--json")
    rows = json.loads(out)["figures"]
    assert [r["name"] for r in rows] == list(FIGURES)
    assert all(r["cost_quick"] and r["cost_full"] and r["shows"] for r in rows)


@pytest.mark.parametrize("name", _entries())
def test_quick(run_cli, tmp_path, name):
    out = tmp_path / "out"
    status, stdout, err = run_cli("reproduce", name, "--quick", "--out", out, "--json")
    assert status == 0, err
    rec = json.loads(stdout)
    with open(out / "reproduce.json") as fh:
        assert json.load(fh) == rec
    assert rec["mode"] == "quick" and rec["size"] == FIGURES[name]["reduced"]
    # the run's own status: 7 (too short to measure) where the quick size says so
    assert rec["status"] == (7 if name in TOO_SHORT_QUICK else 0), rec["message"]
    assert rec["all_within_tolerance"]
    assert rec["provenance"]["versions"]["kernelphase"] and "seed" in rec["provenance"]
    assert rec["parameters"] == json.loads(json.dumps(FIGURES[name]["quick"]))
    for f in rec["files"]:
        assert (out / f).is_file(), f
    assert any(f.endswith(".png") for f in rec["files"])
    # the paper's numbers, typed above, within their tolerance
    stated = PAPER.get(name, {})
    by_q = {r["quantity"]: r for r in rec["numbers"]}
    for q, (paper, tol, kind) in stated.items():
        r = by_q[q]
        assert (r["paper"], r["tolerance"], r["kind"]) == (paper, tol, kind), q
        ours = r["ours"]
        if kind == "equal":
            assert ours == paper, (q, ours)
        elif kind == "rel":
            assert abs(ours / paper - 1) <= tol, (q, ours, paper)
        else:
            assert abs(ours - paper) <= tol, (q, ours, paper)
        assert r["within"] is True
    for r in rec["numbers"]:   # not judged only when it applies to the paper's size
        assert r["within"] is not None or r["applies"] == "full", r
        if r["known_difference"] is None and r["applies"] != "full":
            assert r["within"], r
    failed = [c for c in rec["checks"] if not c["ok"]]
    assert not failed, failed


def test_compare_rejects_a_wrong_number():
    spec = FIGURES["rubin-fig2"]["numbers"]
    rows = compare(spec, {"u_c": 40.0, "sigma2_c": 0.18, "phi_star": float("nan")}, "quick")
    assert [r["within"] for r in rows] == [False, True, False]
    full_only = [dict(spec[0], applies="full")]
    assert compare(full_only, {"u_c": 30.2}, "quick")[0]["within"] is None
    assert compare(full_only, {"u_c": 30.2}, "full")[0]["within"] is True


def _one_line_exit_2(run_cli, *argv):
    status, out, err = run_cli(*argv)
    assert status == 2, (status, out, err)
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_unknown_name_lists_the_valid_ones(run_cli, tmp_path):
    err = _one_line_exit_2(run_cli, "reproduce", "rubin-fig99", "--out", tmp_path / "o")
    assert "rubin-fig99" in err and all(n in err for n in FIGURES)
    assert not (tmp_path / "o").exists()


def test_cli_errors_leave_nothing(run_cli, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    afile = tmp_path / "afile"
    afile.write_text("x")
    before = sorted(os.listdir(tmp_path))
    assert "non-empty folder" in _one_line_exit_2(run_cli, "reproduce", "rubin-fig3",
                                                  "--out", foreign)
    assert "existing file" in _one_line_exit_2(run_cli, "reproduce", "rubin-fig3",
                                               "--out", afile)
    assert "NAME" in _one_line_exit_2(run_cli, "reproduce")
    assert "--list" in _one_line_exit_2(run_cli, "reproduce", "--list", "rubin-fig2")
    assert "--resume" in _one_line_exit_2(run_cli, "reproduce", "rubin-fig3", "--resume",
                                          "--out", tmp_path / "r")
    assert "--resume" in _one_line_exit_2(run_cli, "reproduce", "lyu-fig3", "--resume",
                                          "--out", tmp_path / "r")
    assert sorted(os.listdir(tmp_path)) == before
    assert os.listdir(foreign) == ["notes.txt"]


def test_rerun_into_own_folder(run_cli, tmp_path):
    out = tmp_path / "o"
    assert run_cli("reproduce", "rubin-fig3", "--out", out)[0] == 0
    status, stdout, _ = run_cli("reproduce", "rubin-fig3", "--out", out)
    assert status == 0 and "sigma2_gmfl1" in stdout
    assert not any(n.startswith(".") for n in os.listdir(out))
    assert not any(n.startswith(".o.stage") for n in os.listdir(tmp_path))
    with open(out / "reproduce.json") as fh:
        rec = json.load(fh)
    assert rec["mode"] == "full" and math.isfinite(rec["elapsed_seconds"])


def test_interrupted_run_resumes(run_cli, tmp_path, monkeypatch):
    """A resumable entry stopped after its first checkpoint leaves only ``.checkpoint``;
    a plain rerun is refused, ``--resume`` continues from the saved state and cleans up."""
    from kernelphase.cli import reproduce as rp

    def fake(kw, out, checkpoint):
        ck = checkpoint({"x": kw["x"]})
        state = ck.load("state.npz")
        if state is None:
            ck.save("state.npz", step=7)
            raise ValueError("stopped after the first checkpoint")
        return {"step": int(state["step"])}, {}, []

    entry = dict(FIGURES["kumar-fig4"], runner="_fake_runner", quick={"x": 1}, full={"x": 1},
                 numbers=[], resumable=True)
    monkeypatch.setitem(rp.FIGURES, "fake-fig", entry)
    monkeypatch.setattr(rp, "_fake_runner", fake, raising=False)
    out = tmp_path / "o"
    assert "stopped" in _one_line_exit_2(run_cli, "reproduce", "fake-fig", "--out", out)
    assert os.listdir(out) == [".checkpoint"]
    assert "--resume" in _one_line_exit_2(run_cli, "reproduce", "fake-fig", "--out", out)
    status, stdout, err = run_cli("reproduce", "fake-fig", "--out", out, "--resume", "--json")
    assert status == 0, err
    assert json.loads(stdout)["result"] == {"step": 7}
    assert sorted(os.listdir(out)) == ["kernelphase-run.json", "reproduce.json"]


def test_full_sizes_pass_the_parameter_checks():
    """Every paper-size configuration is accepted by its function's own input checks (memory
    included), so a full run does not fail on its parameters after hours."""
    from kernelphase.validation.dichotomy_runs import check_diag_params, check_mc_params
    from kernelphase.validation.lazy_rich_figs import FIG2, FIG5, FIG12
    from kernelphase.validation.modular_net import alpha_from_scale, check_modular_params
    from kernelphase.validation.polynomial_net import PRESETS, check_train_params
    from kernelphase.validation.teacher_student import plan_cubic
    for name, e in FIGURES.items():
        kw = dict(e["full"])
        if name.startswith("lyu-fig1"):
            check_diag_params(**kw)
        elif name == "lyu-fig3":
            check_mc_params(**kw)
        elif name in ("rubin-fig2-langevin", "rubin-fig5"):
            plan_cubic(**kw)
        elif name == "lyu-fig2":
            from kernelphase.validation.modular_mlp import check_modular_mlp_params
            for s in kw.pop("scales"):
                check_modular_mlp_params(init_scale=s, **kw)
        elif name == "kumar-fig2":
            for s in kw["scales"]:
                check_modular_params(kw["p"], kw["N"], alpha_from_scale(s), kw["steps"],
                                     FIG2["train_fraction"], kw["seed"], 100, FIG2["lr0"])
        elif name.startswith("kumar-"):
            preset = {"kumar-fig5": dict(FIG5, convention="B"),
                      "kumar-fig12": dict(FIG12, convention="A"),
                      "kumar-goldilocks": dict(PRESETS["goldilocks"], eps=kw.get("eps"))}.get(
                name, PRESETS.get(kw.get("preset", name.split("-")[1])))
            for alpha in kw.get("alphas", (preset["alpha"],)):
                check_train_params(preset["D"], preset["P"], preset["N"], alpha, preset["eps"],
                                   preset["c"], kw["steps"], kw["seed"], preset["convention"],
                                   "network", 10)
