"""Issue 15: the diagonal-net flow checkpoints after each segment and resumes bit-identically."""
import json

import numpy as np
import pytest

from kernelphase.io import RunDir
from kernelphase.validation.diagonal_net import (diagonal_flow, flow_in_segments,
                                                 misgrok_dataset)
from kernelphase.validation.dichotomy_runs import train_diag

SMALL = dict(task="sparse", d=60, n=20, n_test=200, alpha=8.0, lam=1e-2, points=40)


class _Killed(Exception):
    pass


class _DiesAfter(RunDir):
    """A RunDir whose process 'dies' right after its k-th checkpoint."""

    def __init__(self, *a, k, **kw):
        super().__init__(*a, **kw)
        self.k = k

    def save(self, name, **state):
        super().save(name, **state)
        self.k -= 1
        if self.k == 0:
            raise _Killed


@pytest.mark.parametrize("depth", [2, 3])
def test_segments_follow_the_one_piece_flow(depth):
    """Restarting from the saved state is the same flow: the segmented trajectory equals
    one uninterrupted integration within the integrator's tolerance (an independent path
    through the ODE solver)."""
    X, y, *_ = misgrok_dataset(30, 12, 5, gamma=1.0, seed=3)
    t = np.linspace(0.5, 60.0, 30)
    one = diagonal_flow(X, y, 6.0, 2e-2, t, depth=depth)
    seg = flow_in_segments(X, y, 6.0, 2e-2, t, segments=7, depth=depth)
    assert one.status == seg.status == 0
    w1 = np.array([one.w(i) for i in range(len(t))])
    w7 = np.array([seg.w(i) for i in range(len(t))])
    assert np.max(np.abs(w1 - w7)) < 1e-5 * np.max(np.abs(w1))
    # and a wrong start state is refused with the parameter named
    with pytest.raises(ValueError, match="start"):
        diagonal_flow(X, y, 6.0, 2e-2, t, depth=depth, start=(100.0, np.zeros(12)))


@pytest.mark.parametrize("depth", [2, 3])
def test_interrupted_run_resumes_bit_identically(tmp_path, depth):
    key = dict(SMALL, depth=depth)
    fresh = train_diag(**SMALL, depth=depth)
    assert fresh.status == 0 and np.isfinite(fresh.t_transition_measured)
    with pytest.raises(_Killed):
        with _DiesAfter(tmp_path / "r", key, k=4, option="--run-dir") as rd:
            train_diag(**SMALL, depth=depth, checkpoint=rd)
    assert int(np.load(tmp_path / "r" / "flow.npz")["segment"]) == 4
    with RunDir(tmp_path / "r", key, resume=True, option="--run-dir") as rd:
        resumed = train_diag(**SMALL, depth=depth, checkpoint=rd)
    for k, v in fresh.curves.items():
        assert np.array_equal(np.asarray(v), np.asarray(resumed.curves[k]), equal_nan=True), k
    assert fresh.t_transition_measured == resumed.t_transition_measured
    assert fresh.status == resumed.status


def test_cli_run_dir_resume_and_refusals(run_cli, tmp_path):
    base = ("dichotomy", "train", "diag", "--d", 60, "--n", 20, "--n-test", 200, "--alpha", 8,
            "--lam", 1e-2, "--json", "--no-progress")
    rd = tmp_path / "run"
    st, out, err = run_cli(*base, "--run-dir", rd)
    assert st == 0, err
    first = json.loads(out)
    assert (rd / "flow.npz").exists()
    st, out, err = run_cli(*base, "--run-dir", rd)            # again without --resume
    assert st == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    st, out, err = run_cli(*base, "--run-dir", rd, "--resume", "--seed", 1)
    assert st == 2 and "seed" in err
    st, out, err = run_cli(*base, "--run-dir", rd, "--resume")
    assert st == 0, err
    assert json.loads(out)["t_transition_measured"] == first["t_transition_measured"]
    st, out, err = run_cli(*base, "--resume")
    assert st == 2 and "--run-dir" in err
