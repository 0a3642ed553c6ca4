"""CLI of issue 5: ``kernelphase lazy-rich ...``."""
import json
import os

import pytest


def test_cli_train_writes_outputs(run_cli, tmp_path):
    out = tmp_path / "run"
    st, o, e = run_cli("lazy-rich", "train", "--D", 10, "--P", 30, "--N", 20, "--eps", 0.25,
                       "--c", 0.5, "--steps", 300, "--out", out, "--json", "--no-progress",
                       "--with-linearised", "--align-points", 50)
    assert st == 0, e
    summary = json.loads(o)
    for key in ("t_train", "t_test", "final_test_loss", "weight_norm_final", "provenance"):
        assert key in summary
    for f in ("curves.csv", "curves.png", "summary.json", "alignment.csv"):
        assert os.path.exists(out / f)
    assert summary["provenance"]["parameters"]["D"] == 10
    assert summary["weight_decay"] == 0.0


def test_cli_sweep(run_cli, tmp_path):
    st, o, e = run_cli("lazy-rich", "sweep", "--preset", "fig3a", "--D", 10, "--P", 40,
                       "--N", 20, "--steps", 3000, "--alphas", "0.5,1", "--out", tmp_path,
                       "--json", "--no-progress", "--threshold", 0.3)
    assert st == 0, e
    res = json.loads(o)
    assert len(res["runs"]) == 2 and "fitted_exponent" in res and "theory_exponent" in res


@pytest.mark.parametrize("argv,match", [
    (("train", "--P", 0), "P=0"),
    (("train", "--D", 0), "D=0"),
    (("train", "--alpha", -1), "alpha=-1"),
    (("sweep", "--alphas", "1,x"), "alphas"),
    (("spectrum", "--activation", "sin(h)"), "not a polynomial"),
    (("kernel-regression", "--P", 0), "P=0"),
])
def test_cli_bad_input_one_line_exit_2(run_cli, argv, match):
    st, o, e = run_cli("lazy-rich", *argv)
    assert st == 2
    assert len(e.strip().splitlines()) == 1 and match in e


def test_cli_kernel_regression_json(run_cli):
    pytest.importorskip("kernelphase.spectra")
    st, o, e = run_cli("lazy-rich", "kernel-regression", "--D", 30, "--P", 90, "--eps", 0.1,
                       "--seed", 1, "--json")
    assert st == 0, e
    d = json.loads(o)
    assert set(("test_mse_theory", "test_mse_empirical")) <= set(d)
    assert abs(d["test_mse_theory"] - d["test_mse_empirical"]) < 0.3 * d["test_mse_empirical"]


def test_cli_spectrum_json(run_cli):
    pytest.importorskip("kernelphase.spectra")
    st, o, e = run_cli("lazy-rich", "spectrum", "--D", 10, "--eps", 0.1, "--json")
    assert st == 0, e
    d = json.loads(o)
    names = {s["name"] for s in d["sectors"]}
    assert {"linear", "radial quadratic", "traceless quadratic"} <= names
