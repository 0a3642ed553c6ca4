"""Issue "Trustworthy answers" for ``kernelphase lazy-rich`` and ``kernelphase dichotomy``.

Every ordinary mistake ends with exit 2, one stderr line, no traceback and no new files;
every run returns a :class:`kernelphase.results.Result`; resumable runs are keyed on every
parameter (seed included), locked, and bit-identical after a SIGKILL.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kernelphase.results import Result

TINY_LR = ("--D", 6, "--P", 20, "--N", 8, "--steps", 40, "--no-progress")
TINY_DIAG = ("--d", 40, "--n", 16, "--n-test", 20)


def _listing(root):
    out = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(folder, name), root))
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A current folder holding a file ``afile`` and a foreign non-empty folder ``adir``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "mine.txt").write_text("x")
    return tmp_path


REPROS = [
    # unwritable or odd --out
    (("lazy-rich", "train", *TINY_LR, "--out", "/proc/x"), "--out"),
    (("lazy-rich", "train", *TINY_LR, "--out", ""), "--out=''"),
    (("lazy-rich", "train", *TINY_LR, "--out", "afile"), "existing file"),
    (("lazy-rich", "train", *TINY_LR, "--out", "adir"), "did not make"),
    (("lazy-rich", "sweep", *TINY_LR, "--out", "afile"), "existing file"),
    (("lazy-rich", "sweep", *TINY_LR, "--out", ""), "--out=''"),
    (("dichotomy", "train", "diag", *TINY_DIAG, "--out", "/proc/x"), "--out"),
    (("dichotomy", "train", "diag", *TINY_DIAG, "--out", "afile"), "existing file"),
    (("dichotomy", "train", "mc", "--d", 10, "--steps", 100, "--out", "afile"), "existing file"),
    (("dichotomy", "sweep-alpha", *TINY_DIAG, "--out", "adir"), "did not make"),
    # overflow on huge alpha / eps, NaN
    (("lazy-rich", "train", *TINY_LR, "--alpha", "1e200", "--out", "o"), "alpha=1e+200"),
    (("lazy-rich", "train", *TINY_LR, "--eps", "1e200", "--out", "o"), "eps=1e+200"),
    (("lazy-rich", "train", *TINY_LR, "--eps", "nan", "--out", "o"), "eps=nan"),
    (("lazy-rich", "train", *TINY_LR, "--threshold", "nan", "--out", "o"), "threshold=nan"),
    (("lazy-rich", "spectrum", "--eps", "inf"), "eps=inf"),
    (("dichotomy", "train", "diag", *TINY_DIAG, "--alpha", "1e300", "--out", "o"), "alpha="),
    (("dichotomy", "train", "diag", *TINY_DIAG, "--lam", "nan"), "lam=nan"),
    (("dichotomy", "train", "diag", *TINY_DIAG, "--t-end", "nan"), "t_end_factor=nan"),
    # huge sizes: memory estimated before allocating
    (("lazy-rich", "train", *TINY_LR, "--D", 100000, "--out", "o"), "GiB"),
    (("lazy-rich", "kernel-regression", "--P", 100000), "GiB"),
    (("dichotomy", "train", "diag", "--d", 100000000, "--out", "o"), "GiB"),
    (("dichotomy", "train", "mc", "--d", 100000, "--out", "o"), "d=100000"),
    (("dichotomy", "predict", "diag", "--d", 100000000), "GiB"),
    # step counts, records, seeds bounded
    (("lazy-rich", "train", *TINY_LR, "--steps", 10**10, "--out", "o"), "steps="),
    (("lazy-rich", "train", *TINY_LR, "--record-every", 0, "--out", "o"), "record_every=0"),
    (("lazy-rich", "train", *TINY_LR, "--seed", -1, "--out", "o"), "seed=-1"),
    (("dichotomy", "train", "mc", "--d", 10, "--steps", 10**9, "--record-every", 1,
      "--out", "o"), "records"),
    (("dichotomy", "train", "mc", "--d", 10, "--resume"), "--resume needs --out"),
    (("dichotomy", "predict", "mc", "--frac", "0"), "frac=0"),
    # comma lists: empty, duplicates, non-finite, too long, not numbers
    (("lazy-rich", "sweep", *TINY_LR, "--alphas", "", "--out", "o"), "--alphas=''"),
    (("lazy-rich", "sweep", *TINY_LR, "--alphas", "2,2", "--out", "o"), "twice"),
    (("lazy-rich", "sweep", *TINY_LR, "--alphas", "1,nan", "--out", "o"), "nan"),
    (("lazy-rich", "sweep", *TINY_LR, "--alphas", ",".join(map(str, range(1, 60))),
      "--out", "o"), "entries"),
    (("lazy-rich", "sweep", *TINY_LR, "--eps-values", "0.1,,0.2", "--out", "o"), "empty entry"),
    (("dichotomy", "sweep-alpha", *TINY_DIAG, "--alphas", "2,2"), "twice"),
    (("dichotomy", "sweep-alpha", *TINY_DIAG, "--alphas", ""), "--alphas=''"),
    (("dichotomy", "sweep-alpha", *TINY_DIAG, "--alphas", "32"), "entries"),
    (("dichotomy", "sweep-alpha", *TINY_DIAG, "--alphas", "32,x"), "not a number"),
]


@pytest.mark.parametrize("argv,match", REPROS, ids=[" ".join(map(str, a[:3])) + f" [{i}]"
                                                     for i, (a, _) in enumerate(REPROS)])
def test_repro_exit_2_one_line_no_new_files(run_cli, workdir, argv, match):
    before = _listing(workdir)
    st, out, err = run_cli(*argv)
    assert st == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert match in err, err
    assert _listing(workdir) == before


# ------------------------------------------------------------------ check_list

def test_check_list():
    from kernelphase.cli._lists import check_list
    assert check_list("--a", " 1, 2.5 ,3", 0, 10) == [1.0, 2.5, 3.0]
    assert check_list("--a", "1,2", 0, 10, integer=True) == [1, 2]
    for text, match in [("", "empty"), (None, "empty"), ("1,,2", "empty entry"),
                        ("1,1", "twice"), ("1,inf", "inf"), ("0,1", r"\(0, 10\]"),
                        ("1.5", "not an integer"), ("a", "not a number"),
                        (",".join(["1"] * 3), "twice"), ("1", "entries")]:
        with pytest.raises(ValueError, match=match):
            check_list("--a", text, 0, 10, lo_open=True, min_len=2 if text == "1" else 1,
                       integer=text == "1.5")
    with pytest.raises(ValueError, match="entries"):
        check_list("--a", ",".join(str(i) for i in range(60)), 0, 100)


# ------------------------------------------------------------------ one measure, status 7 / 6

def test_mc_run_too_short_is_status_7_not_index_error(run_cli, tmp_path):
    """Was: IndexError in crossing_time when the run ends before 0.2 t_g."""
    st, out, err = run_cli("dichotomy", "train", "mc", "--d", 12, "--frac", 0.3, "--steps", 2000,
                           "--record-every", 100, "--lam", 1e-3, "--json", "--no-progress")
    assert st == 0, err
    d = json.loads(out)
    assert d["status"] == 7 and not d["converged"]
    assert d["message"].startswith("run too short to measure")
    assert d["t_transition_measured"] is None


def test_crossing_time_edges():
    from kernelphase.validation.dichotomy_runs import crossing_time, transition_time
    t = np.linspace(1, 10, 10)
    assert np.isnan(crossing_time(t, np.ones(10), 0))
    assert np.isnan(crossing_time(t, np.arange(10.0), 10))          # was IndexError
    m = np.r_[np.zeros(5), np.ones(5)]
    assert crossing_time(t, m, 0) == pytest.approx(5.5)
    tc, _, st, _ = transition_time(t, m, t_g=5.0)
    assert st == 0 and tc == pytest.approx(5.5)
    assert transition_time(t, m, t_g=100.0)[2] == 7                  # ends before 0.2 t_g
    assert transition_time(t, m, t_g=20.0)[2] == 7                   # ends before t_g
    assert transition_time(t, np.linspace(0, 1, 10), t_g=5.0)[2] == 7  # still moving


def test_lazy_rich_too_short_and_diverged(run_cli, tmp_path):
    st, out, err = run_cli("lazy-rich", "train", *TINY_LR, "--threshold", 1e-9, "--json",
                           "--out", tmp_path / "short")
    assert st == 0, err
    d = json.loads(out)
    assert d["status"] == 7 and d["t_test"] is None and "never fell below" in d["message"]
    # diverged run (step far too large): status 6; resuming it is not a TypeError
    argv = ("lazy-rich", "train", "--D", 5, "--P", 10, "--N", 5, "--steps", 200, "--c", 50,
            "--eps", 3, "--no-progress", "--json", "--out", tmp_path / "div")
    st, out, err = run_cli(*argv)
    assert st == 0, err
    d = json.loads(out)
    assert d["status"] == 6 and d["message"].startswith("run diverged") and not d["converged"]
    st2, out2, err2 = run_cli(*argv, "--resume")
    assert st2 == 0, err2
    assert json.loads(out2)["status"] == 6


def test_mc_diverged_then_resume(run_cli, tmp_path):
    argv = ("dichotomy", "train", "mc", "--d", 10, "--steps", 2000, "--record-every", 100,
            "--lr", 50, "--out", tmp_path / "m", "--json", "--no-progress")
    st, out, err = run_cli(*argv)
    assert st == 0 and json.loads(out)["status"] == 6, err
    st, out, err = run_cli(*argv, "--resume")
    assert st == 0 and json.loads(out)["status"] == 6, err


# ------------------------------------------------------------------ result contract, --json

def test_entry_points_return_results(tmp_path):
    from kernelphase.solvers.matrix_completion import multiplication_table, observation_mask
    from kernelphase.validation.diagonal_net import diagonal_flow, diagonal_gd, sparse_dataset
    from kernelphase.validation.dichotomy_runs import sweep_alpha, train_diag, train_mc
    from kernelphase.validation.lazy_rich_runs import sweep, train_and_report
    from kernelphase.validation.matrix_factorization import mf_gd
    from kernelphase.validation.polynomial_net import PRESETS, train
    cfg = dict(PRESETS["fig1"], D=6, P=20, N=8, steps=40)
    X, y, *_ = sparse_dataset(30, 12, 10)
    Xs = multiplication_table(8)
    m = observation_mask(8, 20)
    results = [
        train(6, 20, 8, 1.0, 0.1, 1.0, 40),
        train_and_report(cfg, kr_line=False),
        sweep(cfg, [1.0, 2.0], [0.1]),
        diagonal_gd(X, y, 8.0, 1e-2, 0.01, 5),
        diagonal_flow(X, y, 8.0, 1e-2, [0.5, 1.0]),
        mf_gd(Xs, m, 2.0, 1e-2, 0.05, 20, 10, progress=False),
        train_diag(d=30, n=12, n_test=10, alpha=8.0, lam=1e-2, points=20),
        train_mc(d=8, frac=0.3, alpha=2.0, lam=1e-2, lr=0.05, steps=200, record_every=10,
                 progress=False),
        sweep_alpha([4.0, 8.0], d=30, n=12, n_test=10, lam=1e-2, points=20),
    ]
    for r in results:
        assert isinstance(r, Result), type(r)
        assert isinstance(r.status, int) and isinstance(r.message, str)
        assert r.converged == (r.status == 0)
        with pytest.raises(Exception):
            r.status = 1                                  # frozen
    u, v, hist = results[3]                               # GDResult unpacks as before
    assert u.shape == (30,) and len(hist) == 0


@pytest.mark.parametrize("argv", [
    ("lazy-rich", "spectrum", "--D", 6, "--eps", 0.1),
    ("lazy-rich", "train", *TINY_LR, "--out", "OUT"),
    ("lazy-rich", "sweep", *TINY_LR, "--alphas", "1,2", "--out", "OUT"),
    ("dichotomy", "predict", "diag", *TINY_DIAG),
    ("dichotomy", "predict", "mc", "--d", 10, "--frac", 0.3),
    ("dichotomy", "train", "diag", *TINY_DIAG, "--alpha", 8, "--lam", 0.01, "--out", "OUT"),
    ("dichotomy", "train", "mc", "--d", 8, "--frac", 0.3, "--steps", 200, "--record-every", 10,
     "--out", "OUT", "--no-progress"),
    ("dichotomy", "sweep-alpha", *TINY_DIAG, "--alphas", "4,8", "--lam", 0.01, "--out", "OUT"),
])
def test_json_and_text_output(run_cli, tmp_path, argv):
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    st, out, err = run_cli(*argv, "--json")
    assert st == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    d = json.loads(lines[0])
    for k in ("converged", "status", "message", "params", "versions"):
        assert k in d, k
    assert d["versions"]["kernelphase"]
    if "seed" in d.get("params", {}):
        assert d["seed"] == d["params"]["seed"] == 0
    # plain text: the chosen values, then converged and message
    argv2 = [str(tmp_path / "o2") if a == str(tmp_path / "o") else a for a in argv]
    st, out, err = run_cli(*argv2)
    assert st == 0, err
    assert f"converged: {d['converged']}" in out and f"message: {d['message']}" in out


def test_help_shows_defaults(run_cli):
    """Every option of every lazy-rich / dichotomy command has help text stating its default;
    every long command has --no-progress."""
    import argparse
    from kernelphase.cli import build_parser
    from kernelphase.cli._lists import HelpFormatter

    def leaves(parser, path=()):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, parser
        for a in subs:
            for name, p in a.choices.items():
                yield from leaves(p, path + (name,))
    fmt = HelpFormatter("x")
    n = 0
    for path, p in leaves(build_parser()):
        if path[0] not in ("lazy-rich", "dichotomy"):
            continue
        opts = {s for a in p._actions for s in a.option_strings}
        if "train" in path or path[-1] in ("sweep", "sweep-alpha"):
            assert "--no-progress" in opts, path
        for a in p._actions:
            if not a.option_strings or a.dest == "help":
                continue
            assert a.help, (path, a.dest)
            if a.nargs != 0:
                h = fmt._get_help_string(a)
                assert "%(default)" in h or "None" in h, (path, a.dest)
                n += 1
    assert n > 60
    st, out, err = run_cli("lazy-rich", "train", "--help")
    assert st == 0 and "(None: 0.1;" in " ".join(out.split())   # --threshold states its default


# ------------------------------------------------------------------ resume after SIGKILL

def _spawn(argv, cwd):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.Popen([sys.executable, "-m", "kernelphase", *map(str, argv)], cwd=cwd,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_after_checkpoint(proc, path, field, timeout=60.0):
    """SIGKILL ``proc`` as soon as its checkpoint shows progress; return that progress."""
    from kernelphase.io import load_npz
    t0 = time.time()
    while True:
        if os.path.exists(path):
            done = int(load_npz(path)[field])
            if done > 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"run ended before a checkpoint: {proc.stderr.read()!r}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail("no checkpoint appeared")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return int(load_npz(path)[field])


def _same_summary(a, b):
    a, b = json.loads(a.read_text()), json.loads(b.read_text())
    for d in (a, b):
        d.pop("provenance", None)
    assert a == b


def _resume_roundtrip(run_cli, tmp_path, argv, ck_name, seed_argv, stepper, remaining,
                      monkeypatch):
    out = tmp_path / "killed"
    proc = _spawn([*argv, "--out", out], tmp_path)
    done = _kill_after_checkpoint(proc, out / ck_name, "record" if "lazy-rich" in argv else "step")
    assert not (out / "summary.json").exists(), "killed too late: the run had finished"
    # a second run on the same --out while one holds it is refused
    from kernelphase.io import RunDir
    key = json.loads((out / "kernelphase-run.json").read_text())["key"]
    with RunDir(out, key, resume=True):
        st, o, e = run_cli(*argv, "--out", out, "--resume")
        assert st == 2 and "in use" in e and len(e.strip().splitlines()) == 1
    # resume with the same parameters: continues (fewer stepper calls than a whole run) and
    # is bit-identical to one uninterrupted run
    import importlib
    mod, name = stepper
    mod = importlib.import_module(mod)
    calls = []
    real = getattr(mod, name)
    monkeypatch.setattr(mod, name, lambda *a: (calls.append(1), real(*a))[1])
    st, o, e = run_cli(*argv, "--out", out, "--resume")
    assert st == 0, e
    assert len(calls) == remaining(done), (len(calls), done)     # continued, not restarted
    monkeypatch.setattr(mod, name, real)
    st, o, e = run_cli(*argv, "--out", tmp_path / "straight")
    assert st == 0, e
    assert (out / "curves.csv").read_bytes() == (tmp_path / "straight" / "curves.csv").read_bytes()
    _same_summary(out / "summary.json", tmp_path / "straight" / "summary.json")
    # a different seed is refused, naming the parameter; nothing is changed
    before = (out / "curves.csv").read_bytes()
    st, o, e = run_cli(*[a for a in argv], *seed_argv, "--out", out, "--resume")
    assert st == 2 and "seed" in e and len(e.strip().splitlines()) == 1, e
    assert (out / "curves.csv").read_bytes() == before
    # without --resume an existing run is not overwritten
    st, o, e = run_cli(*argv, "--out", out)
    assert st == 2 and "--resume" in e


def test_lazy_rich_train_resume_after_sigkill(run_cli, tmp_path, monkeypatch):
    argv = ("lazy-rich", "train", "--D", 10, "--P", 30, "--N", 10, "--eps", 0.25, "--c", 0.5,
            "--steps", 60000, "--record-every", 50, "--checkpoint-every", 0.05, "--no-progress")
    _resume_roundtrip(run_cli, tmp_path, argv, "checkpoint_network.npz", ("--seed", 1),
                      ("kernelphase.solvers.order_dynamics", "reduced_steps"),
                      lambda record: 60000 // 50 - record, monkeypatch)


def test_dichotomy_train_mc_resume_after_sigkill(run_cli, tmp_path, monkeypatch):
    argv = ("dichotomy", "train", "mc", "--d", 12, "--frac", 0.3, "--lam", 1e-2,
            "--steps", 400000, "--record-every", 1000, "--checkpoint-every", 5000,
            "--no-progress")
    _resume_roundtrip(run_cli, tmp_path, argv, "checkpoint.npz", ("--seed", 1),
                      ("kernelphase.validation.matrix_factorization", "_mf_steps"),
                      lambda step: (400000 - step) // 1000, monkeypatch)


def test_lazy_rich_resume_with_other_parameters_is_refused(run_cli, tmp_path):
    out = tmp_path / "r"
    st, o, e = run_cli("lazy-rich", "train", *TINY_LR, "--out", out)
    assert st == 0, e
    st, o, e = run_cli("lazy-rich", "train", *TINY_LR, "--eps", 0.3, "--out", out, "--resume")
    assert st == 2 and "eps=0.3" in e and len(e.strip().splitlines()) == 1


def test_library_checkpoint_key_must_match(tmp_path):
    from kernelphase.io import RunDir
    from kernelphase.validation.polynomial_net import train
    key = dict(D=6, P=20, N=8, alpha=1.0, eps=0.1, c=1.0, steps=40, seed=0, convention="A",
               centred=True, model="network", record_every=10)
    with RunDir(tmp_path / "k", key) as rd:
        with pytest.raises(ValueError, match="seed=1"):
            train(6, 20, 8, 1.0, 0.1, 1.0, 40, seed=1, checkpoint=rd)


@pytest.mark.parametrize("argv", [
    ("lazy-rich", "sweep", *TINY_LR, "--alphas", "1,2"),
    ("dichotomy", "train", "diag", *TINY_DIAG, "--alpha", 8, "--lam", 0.01),
    ("dichotomy", "sweep-alpha", *TINY_DIAG, "--alphas", "4,8", "--lam", 0.01),
])
def test_staged_outputs_refuse_a_concurrent_run(run_cli, tmp_path, argv):
    from kernelphase.cli._lists import locked_output
    out = tmp_path / "o"
    with locked_output(out):                       # another run is writing there
        st, o, e = run_cli(*argv, "--out", out)
        assert st == 2 and "in use" in e and len(e.strip().splitlines()) == 1
        assert os.listdir(out) == []
    st, o, e = run_cli(*argv, "--out", out)
    assert st == 0, e
    assert "kernelphase-run.json" in os.listdir(out)
    st, o, e = run_cli(*argv, "--out", out)        # a finished folder is replaced, not mixed
    assert st == 0, e


def test_locked_output_removes_the_folder_it_made_on_failure(tmp_path):
    from kernelphase.cli._lists import locked_output
    with pytest.raises(RuntimeError):
        with locked_output(tmp_path / "new"):
            raise RuntimeError
    assert not (tmp_path / "new").exists()
