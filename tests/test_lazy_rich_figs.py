"""Issue 15: Kumar et al. 2023 Figs. 2 (modular addition, no weight decay) and 5 (kernel
eigenvector labels), their CLI presets, and ``kernel-regression --seeds``."""
import dataclasses
import json
import os

import numpy as np
import pytest

from kernelphase.results import STATUS, Result


def _contract(r):
    assert isinstance(r, Result) and dataclasses.is_dataclass(r)
    names = {f.name for f in dataclasses.fields(r)}
    assert {"status", "message"} <= names and "converged" not in names
    assert r.status in STATUS and r.message.startswith(STATUS[r.status])
    assert r.converged == (r.status == 0)
    json.dumps(r.to_dict(), allow_nan=False)


# --------------------------------------------------------------------------- Fig. 2 network

def _explicit(p, mask):
    idx = np.flatnonzero(mask)
    X = np.zeros((idx.size, 2 * p))
    X[np.arange(idx.size), idx // p] = 1
    X[np.arange(idx.size), p + idx % p] = 1
    Y = np.eye(p)[(idx // p + idx % p) % p]
    return X, Y


def test_modular_table_step_equals_explicit_gd():
    from kernelphase.validation import modular_net as m
    p, N, alpha, lr, steps = 5, 7, 1.3, 50.0, 30
    rng = np.random.default_rng(1)
    mask = m.modular_split(p, 0.8, rng)
    W = rng.standard_normal((N, 2 * p))
    A = rng.standard_normal((p, N))
    X, Y = _explicit(p, mask)
    Wr, Ar, losses = m.modular_gd_reference(W, A, X, Y, alpha, lr, steps)
    assert losses[-1] < losses[0]                       # the reference does descend
    W2, A2 = W.copy(), A.copy()
    lab = (np.arange(p)[:, None] + np.arange(p)[None, :]).ravel() % p
    for _ in range(steps):
        m._step(W2, A2, p, alpha / (2 * p * N), lr, lab, mask.astype(float), int(mask.sum()))
    assert np.abs(Wr - W).max() > 0.1                   # the weights moved
    assert np.abs(W2 - Wr).max() < 1e-12 and np.abs(A2 - Ar).max() < 1e-12


def test_modular_train_matches_reference_losses():
    from kernelphase.validation import modular_net as m
    p, N, alpha, steps = 5, 6, 2.0, 20
    res = m.train_modular(p=p, N=N, alpha=alpha, steps=steps, train_fraction=0.8, seed=3,
                          record_every=steps, acc_level=0.01)
    rng = np.random.default_rng(3)
    mask = m.modular_split(p, 0.8, rng)
    W = rng.standard_normal((N, 2 * p))
    A = rng.standard_normal((p, N))
    X, Y = _explicit(p, mask)
    _, _, losses = m.modular_gd_reference(W, A, X, Y, alpha, m.LR0 / alpha ** 2, steps + 1)
    assert res.train_loss[0] == pytest.approx(losses[0], rel=1e-12)
    assert res.train_loss[-1] == pytest.approx(losses[-1], rel=1e-10)
    _contract(res)


def test_modular_checkpoint_resume_bit_for_bit(tmp_path):
    from kernelphase.io import RunDir
    from kernelphase.validation.modular_net import train_modular
    kw = dict(p=5, N=6, alpha=1.0, steps=60, train_fraction=0.8, seed=2, record_every=10,
              lr0=10.0)
    key = dict(kw)
    whole = train_modular(**kw)
    with RunDir(tmp_path / "r", key) as rd:
        part = train_modular(checkpoint=rd, _stop_after_records=3, **kw)
    assert len(part.epoch) == 4
    with RunDir(tmp_path / "r", key, resume=True) as rd:
        again = train_modular(checkpoint=rd, **kw)
    assert whole.status != 6 and np.all(np.isfinite(whole.train_loss))
    assert np.array_equal(again.train_loss, whole.train_loss)
    assert np.array_equal(again.weight_norm, whole.weight_norm)
    with RunDir(tmp_path / "s", dict(key, seed=3)) as rd:
        with pytest.raises(ValueError, match="seed=2 differs"):
            train_modular(checkpoint=rd, **kw)


@pytest.mark.parametrize("kw,match", [
    (dict(p=1), "p=1"), (dict(N=0), "N=0"), (dict(alpha=0), "alpha=0"),
    (dict(train_fraction=1.0), "train_fraction=1.0"), (dict(train_fraction=0.001, p=3),
                                                        "gives 0 of 9"),
    (dict(steps=-1), "steps=-1"), (dict(acc_level=1.5), "acc_level=1.5"),
])
def test_modular_bad_input(kw, match):
    from kernelphase.validation.modular_net import train_modular
    args = dict(p=5, N=4, steps=10)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        train_modular(**args)
