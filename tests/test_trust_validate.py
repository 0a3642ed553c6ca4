"""``kernelphase validate``: trustworthy answers (inputs checked before any work, one run folder
backend with key and lock, atomic reports with provenance, statuses instead of silent numbers)."""
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from kernelphase.cli import main

TINY = ["--scale", "0.02", "--sigma2", "0.3", "--nets", "2", "--steps", "40", "--workers", "1",
        "--no-progress"]
MODULAR_TINY = ["--scale", "1.6e-4", "--sigma2", "3000", "--nets", "2", "--steps", "20",
                "--workers", "1", "--no-progress"]


def _listing(*roots):
    out = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            out.update(os.path.join(folder, n) for n in dirs + files)
    return out


def _cli(capsys, *argv):
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:        # argparse
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


BAD = [
    (["cubic", "--scale", "nan"], "scale=nan"),
    (["cubic", "--scale", "inf"], "scale=inf"),
    (["cubic", "--scale", "-0.5"], "scale=-0.5"),
    (["cubic", "--data-scale", "inf"], "data_scale=inf"),
    (["cubic", "--lr", "nan"], "lr=nan"),
    (["cubic", "--lr", "-1"], "lr=-1"),
    (["cubic", "--sigma2", "0.3,nan"], "sigma2=nan"),
    (["cubic", "--sigma2", "inf"], "sigma2=inf"),
    (["cubic", "--sigma2", "0.3,,x"], "--sigma2='0.3,,x'"),
    (["cubic", "--workers", "0"], "workers=0"),
    (["cubic", "--workers", "-3"], "workers=-3"),
    (["cubic", "--nets", "-1"], "nets=-1"),
    (["cubic", "--steps", "-5"], "steps=-5"),
    (["cubic", "--seed", "-1"], "seed=-1"),
    (["cubic", "--n-test", "0"], "n_test=0"),
    (["cubic", "--readout", "exact"], "readout='exact'"),
    (["cubic", "--scale", "1e6"], "scale=1000000.0 is outside"),
    (["cubic", "--sigma2", "1e-300"], "sigma2=1e-300"),
    (["cubic-width", "--scale", "1000", "--widths", "700"], "needs"),   # huge: memory refused
    (["cubic", "--nets", "1000000", "--steps", "10"], "needs"),
    (["cubic-width", "--widths", "100000000"], "needs"),
    (["cubic-width", "--widths", "0"], "width=0"),
    (["cubic-width", "--widths", "1.5"], "--widths='1.5'"),
    (["modular", "--scale", "nan"], "scale=nan"),
    (["modular", "--scale", "1e30"], "scale=1e+30 is outside"),
    (["modular", "--scale", "3"], "needs"),
    (["modular", "--lr", "inf"], "lr=inf"),
    (["modular", "--sigma2", "-1"], "sigma2=-1"),
    (["modular", "--workers", "0"], "workers=0"),
]


@pytest.mark.parametrize("argv,match", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(capsys, tmp_path, argv, match,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path)
    st, out, err = _cli(capsys, "validate", *argv, "--out", tmp_path / "run")
    assert st == 2, err
    assert match in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and out == ""
    assert _listing(tmp_path) == before


def _bad_outs(tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("mine")
    return [("", "empty"), ("/proc/x", "not writable"), (tmp_path / "a_file", "existing file"),
            (tmp_path / "foreign", "did not make")]


@pytest.mark.parametrize("experiment", ["cubic", "modular"])
def test_bad_out_exits_2_before_any_work(capsys, tmp_path, monkeypatch, experiment):
    monkeypatch.chdir(tmp_path)
    for out_arg, match in _bad_outs(tmp_path):
        before = _listing(tmp_path)
        t0 = time.perf_counter()
        st, out, err = _cli(capsys, "validate", experiment, *(TINY if experiment == "cubic"
                                                             else MODULAR_TINY), "--out", out_arg)
        assert st == 2 and match in err and len(err.strip().splitlines()) == 1, (out_arg, err)
        assert "Traceback" not in err and out == ""
        assert _listing(tmp_path) == before
        assert time.perf_counter() - t0 < 10          # refused before the networks run
    assert (tmp_path / "foreign" / "thesis.tex").read_text() == "mine"


def test_every_option_shows_its_default():
    from kernelphase.cli import build_parser
    parser = build_parser()
    validate = next(a for a in parser._subparsers._group_actions[0].choices.items()
                    if a[0] == "validate")[1]
    subs = validate._subparsers._group_actions[0].choices
    assert set(subs) == {"cubic", "cubic-width", "modular", "single-index", "hysteresis"}
    leaves = []
    for name, sub in subs.items():        # validate hysteresis has one leaf per model
        leaves += ([(name, sub)] if sub._subparsers is None else
                   [(f"{name} {k}", v)
                    for k, v in sub._subparsers._group_actions[0].choices.items()])
    assert {n for n, _ in leaves} >= {"hysteresis cubic", "hysteresis modular"}
    for name, sub in leaves:
        opts = {o for a in sub._actions for o in a.option_strings}
        assert {"--json", "--no-progress", "--workers", "--out", "--resume"} <= opts, name
        for action in sub._actions:
            if action.option_strings == ["-h", "--help"]:
                continue
            assert action.help and ("default" in action.help or action.required), \
                (name, action.option_strings)


def test_json_summary_report_provenance_and_permissions(capsys, tmp_path):
    out = tmp_path / "v"
    st, stdout, err = _cli(capsys, "validate", "cubic", *TINY, "--json", "--out", out)
    assert st == 0, err
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert {"converged", "status", "message", "report", "rows"} <= set(summary)
    assert summary["converged"] == (summary["status"] == 0)
    rep = json.loads((out / "report.json").read_text())
    assert rep["status"] == summary["status"] and rep["message"] == summary["message"]
    prov = rep["provenance"]
    assert prov["seeds"]["seed"] == 0 and prov["parameters"]["seed"] == 0
    assert {"kernelphase", "numpy", "numba", "python"} <= set(prov["versions"])
    assert prov["run_key"]["seed"] == 0 and "workers" not in prov["run_key"]
    mask = os.umask(0)
    os.umask(mask)
    for f in ("report.json", "phi_and_b.png", "kernelphase-run.json"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o666 & ~mask, f
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]
    # modular too
    st, stdout, err = _cli(capsys, "validate", "modular", *MODULAR_TINY, "--json",
                           "--out", tmp_path / "m")
    assert st == 0, err
    summary = json.loads(stdout)
    assert summary["converged"] == (summary["status"] == 0) and summary["rows"]


def test_rerun_needs_resume_and_resume_of_a_finished_run_repeats_it(capsys, tmp_path):
    out = tmp_path / "v"
    assert _cli(capsys, "validate", "cubic", *TINY, "--out", out)[0] == 0
    first = json.loads((out / "report.json").read_text())
    st, stdout, err = _cli(capsys, "validate", "cubic", *TINY, "--out", out)
    assert st == 2 and "--resume" in err and len(err.strip().splitlines()) == 1, err
    st, stdout, err = _cli(capsys, "validate", "cubic", *TINY, "--out", out, "--resume",
                           "--workers", "2")               # workers are not part of the key
    assert st == 0, err
    assert json.loads((out / "report.json").read_text())["rows"] == first["rows"]
    st, stdout, err = _cli(capsys, "validate", "cubic", *TINY, "--out", out, "--resume",
                           "--steps", "50")
    assert st == 2 and "steps=50" in err and len(err.strip().splitlines()) == 1, err


def _start(out, steps, *extra):
    argv = [sys.executable, "-m", "kernelphase", "validate", "cubic", "--scale", "0.02",
            "--sigma2", "0.3", "--nets", "2", "--steps", str(steps), "--workers", "1",
            "--no-progress", "--out", str(out), *extra]
    return subprocess.Popen(argv, env=dict(os.environ, MPLBACKEND="Agg"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(path, proc, timeout=120):     # generous: a loaded machine, a cold numba cache
    t0 = time.time()
    while not path.exists() and time.time() - t0 < timeout and proc.poll() is None:
        time.sleep(0.01)
    return path.exists()


def test_sigkill_then_resume_with_another_seed_exits_2_naming_seed(capsys, tmp_path):
    out = tmp_path / "killed"
    proc = _start(out, 12000)
    try:
        assert _wait_for(out / "checkpoints" / "N14_s0.3_net0.npz", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "report.json").exists()
    before = _listing(out)
    st, stdout, err = _cli(capsys, "validate", "cubic", "--scale", "0.02", "--sigma2", "0.3",
                           "--nets", "2", "--steps", "12000", "--workers", "1", "--no-progress",
                           "--out", out, "--resume", "--seed", "1")
    assert st == 2 and "seed=1" in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert _listing(out) == before and not (out / "report.json").exists()


def test_second_concurrent_run_on_the_same_folder_is_refused(capsys, tmp_path):
    out = tmp_path / "busy"
    proc = _start(out, 2_000_000)
    try:
        assert _wait_for(out / "kernelphase-run.json", proc)
        for extra in ((), ("--resume",)):
            st, stdout, err = _cli(capsys, "validate", "cubic", "--scale", "0.02", "--sigma2",
                                   "0.3", "--nets", "2", "--steps", "2000000", "--workers", "1",
                                   "--no-progress", "--out", out, *extra)
            assert st == 2 and "in use" in err and len(err.strip().splitlines()) == 1, err
        assert proc.poll() is None                    # the first run goes on
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_python_api_checks_inputs_at_the_entry():
    import numpy as np

    from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run
    from kernelphase.validation.modular_addition import run_modular
    from kernelphase.validation.teacher_student import run_cubic
    X = np.random.default_rng(0).standard_normal((5, 2))
    post = ErfNetworkPosterior(X, X[:, 0], 0.5, 1.0, 1.0, 3)
    for kw, match in [(dict(lr=float("nan")), "lr=nan"), (dict(lr=float("inf")), "lr=inf"),
                      (dict(seed=-1), "seed=-1"), (dict(steps=0), "steps=0"),
                      (dict(burn_in=-2), "burn_in=-2")]:
        with pytest.raises(ValueError, match=match):
            langevin_run(post, **{"steps": 10, "lr": 0.01, "seed": 0, **kw})
    bad = X.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        ErfNetworkPosterior(bad, X[:, 0], 0.5, 1.0, 1.0, 3)
    with pytest.raises(ValueError, match="do not match"):
        ErfNetworkPosterior(X, X[:3, 0], 0.5, 1.0, 1.0, 3)
    for kw, match in [(dict(workers=0), "workers=0"), (dict(scale=1e3, width=(700,)), "needs"),
                      (dict(sigma2=(float("nan"),)), "sigma2=nan"), (dict(n_test=0), "n_test=0"),
                      (dict(width=(0,)), "width=0"), (dict(readout="x"), "readout='x'")]:
        with pytest.raises(ValueError, match=match):
            run_cubic(**{"scale": 0.02, "nets": 1, "steps": 10, "progress": False, **kw})
    for kw, match in [(dict(workers=0), "workers=0"), (dict(scale=3), "needs"),
                      (dict(lr=float("inf")), "lr=inf"), (dict(seed=-4), "seed=-4")]:
        with pytest.raises(ValueError, match=match):
            run_modular(**{"scale": 1.6e-4, "nets": 1, "steps": 10, "progress": False, **kw})


def test_public_runs_return_results():
    """Contract: every public run of the validation files returns a ``Result`` with
    ``status``, ``message`` and a derived ``converged``."""
    import dataclasses

    import numpy as np

    from kernelphase.results import Result
    from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run
    from kernelphase.validation.modular_addition import run_modular
    from kernelphase.validation.teacher_student import grokking_summary, run_cubic
    X = np.random.default_rng(0).standard_normal((5, 2))
    t = np.linspace(0, 1, 30)
    results = [langevin_run(ErfNetworkPosterior(X, X[:, 0], 0.5, 1.0, 1.0, 3), 10, 1e-3, 0),
               run_cubic(scale=0.02, sigma2=(0.3,), nets=1, steps=10, n_test=10, workers=1,
                         progress=False),
               run_modular(scale=1.6e-4, sigma2=(3000.0,), nets=1, steps=10, workers=1,
                           progress=False),
               grokking_summary({"curves": {"time": t, "ensemble_train_loss": 1 + np.exp(-20 * t),
                                            "ensemble_test_loss": 2 - t}})]
    for r in results:
        assert isinstance(r, Result) and dataclasses.is_dataclass(r)
        names = {f.name for f in dataclasses.fields(r)}
        assert {"status", "message", "params"} <= names and "converged" not in names
        assert isinstance(r.message, str) and r.converged == (r.status == 0)
        json.dumps(r.to_dict())
