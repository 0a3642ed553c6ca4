r"""Gradient descent on over-parameterised symmetric matrix factorisation (Lyu et al. 2023, Sec. 3.3.3).

:math:`W=UU^\top-VV^\top`, :math:`U,V\in\mathbb R^{d\times d}`, start :math:`U=V=\alpha I`, loss
:math:`\frac1n\sum_{(i,j)\in\Omega}(W_{ij}-X^*_{ij})^2+\frac\lambda2(\|U\|_F^2+\|V\|_F^2)`,
full-batch GD with step :math:`\eta`. One step, with :math:`S=\sum_{(i,j)\in\Omega}r_{ij}
(e_ie_j^\top+e_je_i^\top)`, :math:`r_{ij}=\frac2n(W_{ij}-X^*_{ij})`:

.. math:: U\leftarrow U-\eta(SU+\lambda U),\qquad V\leftarrow V-\eta(-SV+\lambda V).

The numba kernel touches only the observed rows (:math:`O(nd)` per step instead of
:math:`O(d^3)`). Runs checkpoint atomically every ``checkpoint_every`` steps and resume.
"""
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from numba import njit

from kernelphase._checks import check_int, check_range
from kernelphase.results import Result

__all__ = ["mf_gd", "mf_gd_reference", "MFResult", "check_mf_params"]


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
    """Plain dense numpy GD, the slow reference for :func:`mf_gd` (tests, benchmarks).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.matrix_completion import multiplication_table, observation_mask
    >>> from kernelphase.validation.matrix_factorization import mf_gd, mf_gd_reference
    >>> X, mask = multiplication_table(6), observation_mask(6, 12, seed=0)
    >>> ref = mf_gd_reference(X, mask, alpha=1.0, lam=1e-3, lr=0.1, steps=20)
    >>> fast = mf_gd(X, mask, alpha=1.0, lam=1e-3, lr=0.1, steps=20, record_every=20)
    >>> U, V = ref
    >>> W_ref = fast.U @ fast.U.T - fast.V @ fast.V.T
    >>> bool(abs(U @ U.T - V @ V.T - W_ref).max() < 1e-10)     # the fast GD is the plain one
    True
    """
    d = Xstar.shape[0]
    n = int(mask.sum())
    U = alpha * np.eye(d)
    V = alpha * np.eye(d)
    for _ in range(steps):
        R = np.where(mask, 2.0 * (U @ U.T - V @ V.T - Xstar) / n, 0.0)
        S = R + R.T
        U, V = U - lr * (S @ U + lam * U), V - lr * (-S @ V + lam * V)
    return U, V


@dataclass(frozen=True)
class MFResult(Result):
    """Curves of :func:`mf_gd`: ``step, train_loss, test_mse, norm`` (one entry per record)
    and the final ``U``, ``V``. ``status`` 6: the iterates became non-finite (the curves
    stop at that record)."""
    step: np.ndarray
    train_loss: np.ndarray
    test_mse: np.ndarray
    norm: np.ndarray
    U: np.ndarray
    V: np.ndarray
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


#: bounds of a run (memory is checked separately)
MAX_STEPS = 10**9
MAX_RECORDS = 10**6


def check_mf_params(d, alpha, lam, lr, steps, record_every, checkpoint_every=None):
    """Check the arguments of :func:`mf_gd` (and its memory need); raise ``ValueError``.

    ``alpha`` in (0, 1e8], ``lam`` in [0, 1e3], ``lr`` in (0, 1e3], ``1 <= steps <= 1e9``,
    at most 1e6 records, at most 8 GiB of arrays.

    Examples
    --------
    >>> from kernelphase.validation.matrix_factorization import check_mf_params
    >>> check_mf_params(d=97, alpha=10.0, lam=1e-4, lr=0.1, steps=1000, record_every=100)
    >>> check_mf_params(d=97, alpha=10.0, lam=1e-4, lr=-0.1, steps=1000, record_every=100)
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    from kernelphase.solvers.matrix_completion import check_memory
    d = check_int("d", d, 2)
    check_memory(f"matrix factorisation d={d}", 8.0 * 12 * d * d)
    check_range("alpha", alpha, 0.0, 1e8, lo_open=True)
    check_range("lam", lam, 0.0, 1e3)
    check_range("lr", lr, 0.0, 1e3, lo_open=True)
    steps = check_int("steps", steps, 1, MAX_STEPS)
    record_every = check_int("record_every", record_every, 1, MAX_STEPS)
    if steps // record_every + 1 > MAX_RECORDS:
        raise ValueError(f"steps={steps} with record_every={record_every} gives "
                         f"{steps // record_every + 1} records; the valid range is at most "
                         f"{MAX_RECORDS} (raise record_every)")
    if checkpoint_every is not None:
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, record_every)
        if checkpoint_every % record_every:
            raise ValueError(f"checkpoint_every={checkpoint_every} must be a multiple of "
                             f"record_every={record_every}")


def mf_gd(Xstar, mask, alpha=10.0, lam=1e-4, lr=0.1, steps=10**6, record_every=1000,
          checkpoint=None, checkpoint_every=None, progress=None, _after_record=None):
    """Run GD and record (step, train loss, test MSE, ``|theta|``) every ``record_every`` steps.

    ``checkpoint``: a :class:`kernelphase.io.RunDir` whose key holds every parameter of the
    run (``alpha, lam, lr, steps, record_every, d, n``); the state is written into it
    atomically every ``checkpoint_every`` steps (default ``50 * record_every``) and at the
    end, and a run opened with ``resume=True`` continues from it: a killed run loses at most
    that much work and resuming gives bit-identical results (GD is deterministic).

    Returns an :class:`MFResult`.

    Examples
    --------
    >>> from kernelphase.solvers.matrix_completion import multiplication_table, observation_mask
    >>> from kernelphase.validation.matrix_factorization import mf_gd
    >>> X, mask = multiplication_table(8), observation_mask(8, 30, seed=0)
    >>> r = mf_gd(X, mask, alpha=1.0, lam=1e-4, lr=0.1, steps=200, record_every=100)
    >>> r.step.tolist(), bool(r.train_loss[-1] < r.train_loss[0]), r.status
    ([0, 100, 200], True, 0)
    """
    from kernelphase.results import status_message
    from .polynomial_net import _check_key
    Xstar = np.asarray(Xstar, float)
    mask = np.asarray(mask, bool)
    if Xstar.ndim != 2 or Xstar.shape[0] != Xstar.shape[1] or mask.shape != Xstar.shape:
        raise ValueError(f"Xstar.shape={Xstar.shape} and mask.shape={mask.shape} must be "
                         f"equal and square")
    if checkpoint_every is None:
        checkpoint_every = 50 * record_every
    check_mf_params(Xstar.shape[0], alpha, lam, lr, steps, record_every, checkpoint_every)
    alpha, lam, lr = float(alpha), float(lam), float(lr)
    steps, record_every = int(steps), int(record_every)
    rows, cols = np.nonzero(mask)
    vals = Xstar[rows, cols].copy()
    n = rows.size
    d = Xstar.shape[0]
    params = {"alpha": alpha, "lam": lam, "lr": lr, "steps": steps,
              "record_every": record_every, "d": d, "n": int(n)}
    st = None
    if checkpoint is not None:
        _check_key(checkpoint, params)
        st = checkpoint.load("checkpoint.npz")
    if st is not None:
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
        return np.isfinite(hist[1][-1]) and np.isfinite(hist[3][-1])

    status, detail = 0, None
    with np.errstate(over="ignore", invalid="ignore"):
        if step == 0 and not record():
            status, detail = 6, "non-finite loss at step 0"
        bar = None
        if progress is not False:
            from kernelphase.progress import progress as _pb
            bar = _pb(total=steps, desc="matrix completion GD", enabled=progress)
            bar.update(step)
        while step < steps and status == 0:
            chunk = min(record_every, steps - step)
            _mf_steps(U, V, rows, cols, vals, lr, lam, chunk)
            step += chunk
            if not record():
                status, detail = 6, f"non-finite loss or weights at step {step}"
                break
            if bar is not None:
                bar.update(chunk)
            if checkpoint is not None and (step % checkpoint_every == 0 or step == steps):
                checkpoint.save("checkpoint.npz", U=U, V=V, step=step, params=params,
                                step_h=hist[0], train_loss=hist[1], test_mse=hist[2],
                                norm=hist[3])
            if _after_record is not None:
                _after_record(step)   # test hook: simulates an interrupted run
        if bar is not None:
            bar.close()
    out = {k: np.asarray(v) for k, v in zip(("step", "train_loss", "test_mse", "norm"), hist)}
    return MFResult(U=U, V=V, status=status, message=status_message(status, detail),
                    params=params, **out)
