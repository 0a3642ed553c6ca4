r"""Gradient descent on over-parameterised symmetric matrix factorisation (Lyu et al. 2023, Sec. 3.3.3).

:math:`W=UU^\top-VV^\top`, :math:`U,V\in\mathbb R^{d\times d}`, start :math:`U=V=\alpha I`, loss
:math:`\frac1n\sum_{(i,j)\in\Omega}(W_{ij}-X^*_{ij})^2+\frac\lambda2(\|U\|_F^2+\|V\|_F^2)`,
full-batch GD with step :math:`\eta`. One step, with :math:`S=\sum_{(i,j)\in\Omega}r_{ij}
(e_ie_j^\top+e_je_i^\top)`, :math:`r_{ij}=\frac2n(W_{ij}-X^*_{ij})`:

.. math:: U\leftarrow U-\eta(SU+\lambda U),\qquad V\leftarrow V-\eta(-SV+\lambda V).

The numba kernel touches only the observed rows (:math:`O(nd)` per step instead of
:math:`O(d^3)`). Runs checkpoint atomically every ``checkpoint_every`` steps and resume.
"""
import os

import numpy as np
from numba import njit

from kernelphase._checks import check_int, check_positive, check_range
from kernelphase.io import atomic_savez, load_npz

__all__ = ["mf_gd", "mf_gd_reference"]


@njit(cache=True)
def _mf_steps(U, V, rows, cols, vals, lr, lam, steps):
    d = U.shape[0]
    n = rows.shape[0]
    SU = np.empty_like(U)
    SV = np.empty_like(V)
    r = np.empty(n)
    for _ in range(steps):
        for k in range(n):
            i, j = rows[k], cols[k]
            acc = 0.0
            for m in range(d):
                acc += U[i, m] * U[j, m] - V[i, m] * V[j, m]
            r[k] = 2.0 * (acc - vals[k]) / n
        SU[:] = 0.0
        SV[:] = 0.0
        for k in range(n):
            i, j = rows[k], cols[k]
            for m in range(d):
                SU[i, m] += r[k] * U[j, m]
                SU[j, m] += r[k] * U[i, m]
                SV[i, m] += r[k] * V[j, m]
                SV[j, m] += r[k] * V[i, m]
        for a in range(d):
            for m in range(d):
                U[a, m] -= lr * (SU[a, m] + lam * U[a, m])
                V[a, m] -= lr * (-SV[a, m] + lam * V[a, m])


def mf_gd_reference(Xstar, mask, alpha, lam, lr, steps):
    """Plain dense numpy GD, the slow reference for :func:`mf_gd` (tests, benchmarks)."""
    d = Xstar.shape[0]
    n = int(mask.sum())
    U = alpha * np.eye(d)
    V = alpha * np.eye(d)
    for _ in range(steps):
        R = np.where(mask, 2.0 * (U @ U.T - V @ V.T - Xstar) / n, 0.0)
        S = R + R.T
        U, V = U - lr * (S @ U + lam * U), V - lr * (-S @ V + lam * V)
    return U, V


def mf_gd(Xstar, mask, alpha=10.0, lam=1e-4, lr=0.1, steps=10**6, record_every=1000,
          checkpoint=None, checkpoint_every=None, progress=None):
    """Run GD and record (step, train loss, test MSE, |theta|) every ``record_every`` steps.

    If ``checkpoint`` (a path) exists, the run resumes from it; it is rewritten atomically
    every ``checkpoint_every`` steps (default ``50 * record_every``), so a killed run loses at most that much work and
    resuming gives bit-identical results (GD is deterministic).

    Returns a dict of arrays ``step, train_loss, test_mse, norm`` and the final ``U, V``.
    """
    Xstar = np.asarray(Xstar, float)
    mask = np.asarray(mask, bool)
    alpha = check_positive("alpha", alpha)
    lam = check_range("lam", lam, 0.0)
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, 1)
    record_every = check_int("record_every", record_every, 1)
    if checkpoint_every is None:
        checkpoint_every = 50 * record_every
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, record_every)
    if checkpoint and checkpoint_every % record_every:
        raise ValueError(f"checkpoint_every={checkpoint_every} must be a multiple of "
                         f"record_every={record_every}")
    rows, cols = np.nonzero(mask)
    vals = Xstar[rows, cols].copy()
    n = rows.size
    d = Xstar.shape[0]
    params = {"alpha": alpha, "lam": lam, "lr": lr, "record_every": record_every, "d": d,
              "n": n}
    if checkpoint and os.path.exists(checkpoint):
        st = load_npz(checkpoint)
        if st["params"] != params:
            raise ValueError(f"checkpoint {checkpoint!r} was made with other parameters "
                             f"({st['params']}); remove it or use another path")
        U, V, step = st["U"], st["V"], int(st["step"])
        hist = [list(st[k]) for k in ("step_h", "train_loss", "test_mse", "norm")]
    else:
        U, V, step = alpha * np.eye(d), alpha * np.eye(d), 0
        hist = [[], [], [], []]

    def record():
        W = U @ U.T - V @ V.T
        hist[0].append(step)
        hist[1].append(float(np.mean((W[mask] - Xstar[mask]) ** 2)))
        hist[2].append(float(np.mean((W[~mask] - Xstar[~mask]) ** 2)))
        hist[3].append(float(np.sqrt((U * U).sum() + (V * V).sum())))

    if step == 0:
        record()
    bar = None
    if progress is not False:
        from kernelphase.progress import progress as _pb
        bar = _pb(total=steps, desc="matrix completion GD", enabled=progress)
        bar.update(step)
    while step < steps:
        chunk = min(record_every, steps - step)
        _mf_steps(U, V, rows, cols, vals, lr, lam, chunk)
        step += chunk
        record()
        if bar is not None:
            bar.update(chunk)
        if checkpoint and (step % checkpoint_every == 0 or step == steps):
            atomic_savez(checkpoint, U=U, V=V, step=step, params=params,
                         step_h=hist[0], train_loss=hist[1], test_mse=hist[2], norm=hist[3])
    if bar is not None:
        bar.close()
    out = {k: np.asarray(v) for k, v in zip(("step", "train_loss", "test_mse", "norm"), hist)}
    out.update(U=U, V=V)
    return out
