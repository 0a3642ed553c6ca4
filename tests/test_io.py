"""The output path and checkpoint backend of kernelphase.io."""
import os
import stat

import numpy as np
import pytest

from kernelphase.io import (RunDir, atomic_savez, atomic_write_text, check_output_dir,
                            check_output_file, load_npz, staged_dir)


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_nan_survives_round_trip(tmp_path):
    atomic_savez(tmp_path / "s.npz", a=np.array([np.nan, 1.0]), meta={"x": float("nan"), "y": [np.inf]})
    z = load_npz(tmp_path / "s.npz")
    assert np.isnan(z["a"][0]) and np.isnan(z["meta"]["x"]) and z["meta"]["y"] == [np.inf]


@pytest.mark.parametrize("bad", ["", "/proc/x", "/proc/self/nope/x.png", "{dir}", "{file}/x.png"])
def test_bad_output_file(tmp_path, bad):
    (tmp_path / "f").write_text("x")
    path = bad.format(dir=tmp_path, file=tmp_path / "f")
    with pytest.raises(ValueError, match="--plot="):
        check_output_file(path)


def test_output_file_replaces_existing(tmp_path):
    (tmp_path / "a.png").write_text("old")
    assert check_output_file(tmp_path / "a.png") == str(tmp_path / "a.png")
    assert check_output_file(tmp_path / "new" / "deeper" / "a.png")
    assert not (tmp_path / "new").exists()


def test_output_dir_rules(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    for bad in ("", str(tmp_path / "f"), str(tmp_path / "foreign"), "/proc/kp-out"):
        with pytest.raises(ValueError, match="--out="):
            check_output_dir(bad)
    check_output_dir(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_staged_dir_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_dir(tmp_path / "out") as st:
            atomic_write_text(os.path.join(st, "a.csv"), "1")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with staged_dir(tmp_path / "out", manifest={"p": 1}) as st:
        atomic_write_text(os.path.join(st, "a.csv"), "1")
    assert sorted(os.listdir(tmp_path / "out")) == ["a.csv", "kernelphase-run.json"]
    check_output_dir(tmp_path / "out")  # ours: may be replaced
    with staged_dir(tmp_path / "out", manifest={"p": 2}) as st:
        atomic_write_text(os.path.join(st, "a.csv"), "2")
    assert (tmp_path / "out" / "a.csv").read_text() == "2" and len(os.listdir(tmp_path)) == 1


def test_rundir_key_lock_and_resume(tmp_path):
    key = {"seed": 0, "steps": 10, "lr": float("nan")}
    with RunDir(tmp_path / "run", key) as rd:
        rd.save("state.npz", x=np.arange(3.0))
        with pytest.raises(ValueError, match="in use"):
            RunDir(tmp_path / "run", key, resume=True).__enter__()
    with pytest.raises(ValueError, match="--resume"):
        RunDir(tmp_path / "run", key).__enter__()
    with pytest.raises(ValueError, match="seed=1 differs"):
        RunDir(tmp_path / "run", dict(key, seed=1), resume=True).__enter__()
    with RunDir(tmp_path / "run", key, resume=True) as rd:  # NaN in the key compares equal
        assert rd.load("state.npz")["x"].tolist() == [0.0, 1.0, 2.0]
