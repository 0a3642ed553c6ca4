"""``kernelphase theory finite`` and ``validate cubic --theory finite`` (issue 14): bad input,
resume, JSON keys, and the population projection of the finite-data theory against its own
test-point average."""
import json
import math
import os

import numpy as np
import pytest

from kernelphase.cli import main

TINY = ["--scale", "0.01", "--chains", "32", "--steps", "10", "--maxiter", "1",
        "--n-test", "40", "--workers", "1"]


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, match", [
    (["--scale", "-1"], "scale=-1.0 is outside"),
    (["--sigma2", "0.3,0.3"], "repeats a noise level"),
    (["--sigma2", "0.3,abc"], "not a comma-separated list"),
    (["--sigma2", "1e300"], "sigma2"),
    (["--chains", "3"], "chains=3 is outside"),
    (["--steps", "5"], "steps=5 is outside"),
    (["--data-seed", "-2"], "data_seed=-2 is outside"),
    (["--tol", "0"], "tol=0.0 is outside"),
    (["--preset", "appD"], "several widths"),
])
def test_bad_input_exits_2_with_one_line_and_no_output(tmp_path, capsys, argv, match):
    out = tmp_path / "o"
    code, _, err = _run(["theory", "finite", "--out", str(out), *argv], capsys)
    assert code == 2
    assert match in err and err.count("\n") == 1
    assert not out.exists()


def test_resume_needs_a_folder(capsys):
    code, _, err = _run(["theory", "finite", *TINY, "--sigma2", "0.3", "--resume"], capsys)
    assert code == 2 and "--resume needs --run-dir" in err


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("th") / "run"
    code = main(["theory", "finite", *TINY, "--sigma2", "0.3,0.25", "--out", str(out)])
    assert code == 0
    with open(out / "report.json") as fh:
        return out, json.load(fh)


def test_report_json_keys(tiny_report):
    _, rep = tiny_report
    assert [r["sigma2"] for r in rep["rows"]] == pytest.approx([0.3, 0.25])
    for r in rep["rows"]:
        for k in ("b", "c", "b_exact", "c_exact", "learned_cubic", "train_loss", "test_loss",
                  "droplet_mass"):
            assert set(r[k]) == {"value", "se"} and math.isfinite(r[k]["value"]), k
            assert r[k]["se"] >= 0, k
        h = r["phi_hist"]
        assert len(h["edges"]) == len(h["density"]) + 1 == len(h["se"]) + 1
        assert set(r["ek"]) >= {"b", "c"} and "status" in r and "message" in r
    assert "provenance" in rep and "converged" in rep


def test_json_stdout_matches_report(tiny_report, capsys):
    out, rep = tiny_report
    code, text, _ = _run(["theory", "finite", *TINY, "--sigma2", "0.3,0.25", "--out", str(out),
                          "--resume", "--json"], capsys)
    assert code == 0
    got = json.loads(text)
    assert got["report"] == os.path.join(str(out), "report.json")
    # resumed from the checkpoints: the same numbers
    assert [r["b"]["value"] for r in got["rows"]] == [r["b"]["value"] for r in rep["rows"]]


def test_resume_refuses_changed_parameters_and_second_run(tiny_report, capsys):
    out, _ = tiny_report
    code, _, err = _run(["theory", "finite", *TINY, "--sigma2", "0.3,0.25", "--out", str(out),
                         "--resume", "--mc-seed", "3"], capsys)
    assert code == 2 and "mc_seed=3 differs" in err
    code, _, err = _run(["theory", "finite", *TINY, "--sigma2", "0.3,0.25", "--out", str(out)],
                        capsys)
    assert code == 2 and "pass --resume" in err


def test_population_b_agrees_with_test_point_average():
    """The population projection (Stein moments of the sampled neurons) against the average
    over many test points of the same predictor: equal within the test-set error."""
    from kernelphase.validation.teacher_student import finite_theory_cell
    r = finite_theory_cell(0.3, "fig2", 0.02, 0.02, 0, "eq7", 128, 20, 0, 20000, 0.5, 1)
    m = 20000
    # test-point error of b: std(resid He1)/sqrt(m) <= sqrt(E[y^2 He1^2])/sqrt(m) ~ 3/sqrt(m)
    for name in ("b", "c"):
        diff = abs(r[name]["value"] - r[f"{name}_exact"]["value"])
        assert diff < 4 * 3 / math.sqrt(m) * (1 if name == "b" else 2), (name, r)


def test_validate_cubic_theory_finite_adds_columns(tmp_path, capsys):
    out = tmp_path / "val"
    code, text, err = _run(["validate", "cubic", "--scale", "0.02", "--sigma2", "0.3",
                            "--nets", "1", "--steps", "20", "--workers", "1", "--n-test", "50",
                            "--theory", "finite", "--no-progress", "--out", str(out)], capsys)
    assert code == 0, err
    rep = json.load(open(out / "report.json"))
    row = rep["rows"][0]
    for k in ("b", "c", "b_exact", "c_exact", "learned_cubic"):
        assert "theory" in row[k] and "theory_finite" in row[k] and "theory_finite_se" in row[k]
    assert "finite_theory" in row
    assert "population b" in text
    assert os.path.exists(out / "checkpoints" / "finite_s0.3.npz")


def test_theory_finite_needs_one_width():
    from kernelphase.validation.teacher_student import plan_cubic
    with pytest.raises(ValueError, match="one width"):
        plan_cubic(scale=0.02, width=[4, 5], theory="finite")
    with pytest.raises(ValueError, match="theory='bogus' is not one of"):
        plan_cubic(scale=0.02, theory="bogus")


def test_theory_cell_uses_the_simulation_data():
    """Same training set as run_cubic(seed=K): finite_theory_cell with explicit (X, y) from
    cubic_data(.., K) gives bit-identical numbers to the default."""
    from kernelphase.validation.teacher_student import (cubic_data, finite_theory_cell,
                                                        scaled_preset)
    p = scaled_preset("fig2", 0.01)
    X, y = cubic_data(p["n"], p["d"], p["eps"], 4)
    a = finite_theory_cell(0.3, "fig2", 0.01, 0.01, 4, "fluctuating", 32, 10, 0, 30, 0.5, 1)
    b = finite_theory_cell(0.3, "fig2", 0.01, 0.01, 4, "fluctuating", 32, 10, 0, 30, 0.5, 1, X=X, y=y)
    c = finite_theory_cell(0.3, "fig2", 0.01, 0.01, 5, "fluctuating", 32, 10, 0, 30, 0.5, 1)
    assert a["b_exact"] == b["b_exact"] and a["b_exact"] != c["b_exact"]
    assert np.isfinite(a["b_exact"]["value"])
