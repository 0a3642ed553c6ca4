r"""Modular addition with a quadratic two-layer network and no weight decay (Kumar et al. 2023,
arXiv 2310.06110, Fig. 2).

**Model.** Modulus :math:`p`, inputs the two concatenated one-hots
:math:`x_{nm} = e_n + e_{p+m}\in\mathbb R^{D}`, :math:`D = 2p`, one-hot targets
:math:`y_k(x_{nm}) = \delta_{k,(n+m)\bmod p}` (not centred), and

.. math::  f_k(x) = \frac{\alpha}{DN}\sum_{i=1}^N a_{ki}\,(w_i\cdot x)^2,\qquad
           w_i\cdot x_{nm} = W_{i,n} + W_{i,p+m},

no biases, all weights :math:`\mathcal N(0, 1)` at init, both layers trained.

**Training.** Full-batch GD on the plain mean squared error over the training pairs *and* the
:math:`p` outputs, :math:`L = \frac{1}{Pp}\sum_{\mu,k}(f_k(x_\mu)-y_{k\mu})^2`, learning rate
:math:`\eta = \eta_0/\alpha^2` (:math:`\eta_0 = 100`), no weight decay, no momentum.

**Conventions and sources.** Theory note ``theory/lazy_rich.md`` Sec. 8 "Fig. 2" and Sec. 10:
the authors' code divides the loss by scale² and uses lr = 100/scale², and applies ``scale``
twice to the output, so the multiplier of the read-out is :math:`\alpha = \mathrm{scale}^2`
(:func:`alpha_from_scale`); on the plain MSE that is exactly :math:`\eta = 100/\alpha^2`, the
same α-free function speed as the polynomial network's :math:`\eta = cN/\alpha^2`. The mean
over outputs as well as pairs (``jnp.mean``/``MSELoss`` default) is our reading of the code;
it is what makes the paper's 5·10⁴ to 10⁵ epochs the right time scale [derived — verify].

The step works on the whole :math:`p\times p` table at once (``H`` is ``U[:, n] + V[:, m]``
by broadcasting; the test pairs are masked out of the gradient), so test loss and accuracy
come for free with every record.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase.results import Result

__all__ = ["ModularRunResult", "train_modular", "modular_split", "alpha_from_scale",
           "first_epoch_at_least", "modular_gd_reference", "check_modular_params"]

#: the paper's base learning rate: lr = 100 / alpha^2 on the plain MSE
LR0 = 100.0


def alpha_from_scale(scale, power=2):
    """Read-out multiplier of the authors' code: ``scale`` applied ``power`` times (Sec. 10).

    Examples
    --------
    >>> from kernelphase.validation.modular_net import alpha_from_scale
    >>> alpha_from_scale(1.5), alpha_from_scale(1.5, power=1)
    (2.25, 1.5)
    """
    from kernelphase._checks import check_range
    return check_range("scale", scale, 0, 1e3, lo_open=True) ** power


def modular_split(p, train_fraction, rng):
    """Boolean mask (p*p,) of the training pairs, index ``n*p + m``; ``round(frac p^2)`` of them.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_net import modular_split
    >>> m = modular_split(5, 0.6, np.random.default_rng(0))
    >>> m.shape, int(m.sum())                        # round(0.6 * 25) training pairs
    ((25,), 15)
    """
    n_train = int(round(train_fraction * p * p))
    mask = np.zeros(p * p, bool)
    mask[rng.permutation(p * p)[:n_train]] = True
    return mask


def first_epoch_at_least(epochs, values, level):
    """First recorded epoch with ``values >= level``; ``nan`` if never (run too short).

    The accuracy-jump time of Fig. 2, one definition for train and test accuracy.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_net import first_epoch_at_least
    >>> first_epoch_at_least(np.array([0, 100, 200]), np.array([0.1, 0.95, 1.0]), 0.9)
    100.0
    """
    idx = np.flatnonzero(np.asarray(values) >= level)
    return float(epochs[idx[0]]) if idx.size else float("nan")


def check_modular_params(p, N, alpha, steps, train_fraction, seed, record_every, lr0=LR0):
    """Check every argument of :func:`train_modular`; raise one-line ``ValueError``.

    Examples
    --------
    >>> from kernelphase.validation.modular_net import check_modular_params
    >>> check_modular_params(p=23, N=100, alpha=1.0, steps=1000, train_fraction=0.9, seed=0,
    ...                      record_every=100) is None
    True
    >>> check_modular_params(p=23, N=100, alpha=1.0, steps=1000, train_fraction=1.5, seed=0,
    ...                      record_every=100)
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    from kernelphase._checks import check_int, check_range
    p = check_int("p", p, 2, 500)
    N = check_int("N", N, 1, 10**5)
    check_range("alpha", alpha, 0, 1e6, lo_open=True)
    check_range("lr0", lr0, 0, 1e9, lo_open=True)
    steps = check_int("steps", steps, 0, 10**8)
    f = check_range("train_fraction", train_fraction, 0, 1, lo_open=True, hi_open=True)
    n_train = int(round(f * p * p))
    if not 1 <= n_train < p * p:
        raise ValueError(f"train_fraction={train_fraction!r} gives {n_train} of {p * p} pairs "
                         f"for training; need at least one training and one test pair")
    check_int("seed", seed, 0, 2**63 - 1)
    record_every = check_int("record_every", record_every, 1, 10**8)
    if steps // record_every + 1 > 10**6:
        raise ValueError(f"steps={steps} with record_every={record_every} gives more than 1e6 "
                         f"records; raise record_every")
    if 8.0 * 6 * N * p ** 3 > 4 * 2**30:
        raise ValueError(f"p={p}, N={N} needs more than 4 GiB of work arrays; lower p or N")


@dataclass(frozen=True)
class ModularRunResult(Result):
    r"""Curves and jump times of one modular-addition run (:func:`train_modular`).

    ``epoch`` are the recorded step counts; losses are the MSE over pairs and outputs;
    ``weight_norm`` is :math:`\|W\|_F + \|A\|_F` (the paper's sum of the two layers' norms).
    ``t_train_acc``/``t_test_acc``: first recorded epoch with accuracy at least
    ``acc_level``. ``status`` 0: both measured; 6: diverged; 7: an accuracy never reached
    ``acc_level`` (time ``nan``).
    """
    epoch: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    train_acc: np.ndarray
    test_acc: np.ndarray
    weight_norm: np.ndarray
    t_train_acc: float
    t_test_acc: float
    acc_level: float
    alpha: float
    lr: float
    n_train: int
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


def _targets(p):
    lab = (np.arange(p)[:, None] + np.arange(p)[None, :]).ravel() % p
    return lab


def _forward(W, A, p, c):
    N = W.shape[0]
    H = (W[:, :p, None] + W[:, None, p:]).reshape(N, p * p)
    H2 = H * H
    return H, H2, c * (A @ H2)


def _step(W, A, p, c, lr, lab, mask_f, n_train):
    """One GD step in place; returns (F, H2) of the state *before* the step."""
    N = W.shape[0]
    H, H2, F = _forward(W, A, p, c)
    E = F.copy()
    E[lab, np.arange(p * p)] -= 1.0
    E *= mask_f
    k = 2.0 * c / (n_train * p)                 # dL/dF = 2 E / (P p)
    R = A.T @ E
    gA = k * (E @ H2.T)
    G = ((2.0 * k) * H * R).reshape(N, p, p)
    A -= lr * gA
    W[:, :p] -= lr * G.sum(axis=2)
    W[:, p:] -= lr * G.sum(axis=1)
    return F


def _measure(F, lab, mask):
    err = F.copy()
    err[lab, np.arange(F.shape[1])] -= 1.0
    se = np.mean(err * err, axis=0)             # per pair, mean over outputs
    hit = F.argmax(axis=0) == lab
    return (float(se[mask].mean()), float(se[~mask].mean()),
            float(hit[mask].mean()), float(hit[~mask].mean()))


def modular_gd_reference(W, A, X, Y, alpha, lr, steps):
    r"""Slow plain-numpy GD on explicit inputs ``X`` (P, D) and targets ``Y`` (P, p); the
    reference of the table step. Returns (W, A, losses per step).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_net import modular_gd_reference
    >>> rng = np.random.default_rng(0)
    >>> X = np.eye(4); Y = np.eye(4)[:, :2]
    >>> W, A = rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    >>> W1, A1, losses = modular_gd_reference(W, A, X, Y, alpha=1.0, lr=0.1, steps=20)
    >>> len(losses), bool(losses[-1] < losses[0])
    (20, True)
    """
    W, A = np.array(W, float), np.array(A, float)
    N, D = W.shape
    c = alpha / (D * N)
    P, p = Y.shape
    losses = np.empty(steps)
    for t in range(steps):
        H = X @ W.T                              # (P, N)
        F = c * (H * H) @ A.T                    # (P, p)
        E = F - Y
        losses[t] = np.mean(E * E)
        dF = 2.0 * E / (P * p)
        gA = c * dF.T @ (H * H)
        gW = (2.0 * c * H * (dF @ A)).T @ X
        A -= lr * gA
        W -= lr * gW
    return W, A, losses


def train_modular(p=23, N=100, alpha=1.0, steps=50_000, train_fraction=0.9, seed=0,
                  record_every=100, acc_level=0.9, lr0=LR0, checkpoint=None,
                  checkpoint_name="checkpoint_modular.npz", checkpoint_seconds=30.0,
                  progress=False, _stop_after_records=None):
    r"""Train the Fig. 2 network by full-batch GD; return a :class:`ModularRunResult`.

    ``lr = lr0 / alpha^2`` on the plain MSE (module docstring). Seeds: one
    ``numpy.random.default_rng(seed)`` draws the train/test split, then ``W`` (N, 2p), then
    ``A`` (p, N). ``checkpoint``: a :class:`kernelphase.io.RunDir` whose key holds every
    parameter of the run; the state is saved at most every ``checkpoint_seconds`` and at
    the end, and a run opened with ``resume=True`` continues from it bit for bit. BLAS is
    held to one thread (small matrices; more threads only oversubscribe the cores).

    Examples
    --------
    >>> from kernelphase.validation.modular_net import train_modular
    >>> r = train_modular(p=5, N=10, alpha=1.0, steps=200, record_every=100, seed=0)
    >>> r.epoch.tolist(), r.n_train, r.status                    # 200 epochs: too short to grok
    ([0.0, 100.0, 200.0], 22, 7)
    >>> bool(r.train_loss[-1] < r.train_loss[0])
    True
    """
    from threadpoolctl import threadpool_limits
    from kernelphase._checks import check_range
    from kernelphase.progress import progress as pbar
    from kernelphase.results import status_message
    check_modular_params(p, N, alpha, steps, train_fraction, seed, record_every, lr0)
    acc_level = check_range("acc_level", acc_level, 0, 1, lo_open=True)
    p, N, steps, record_every = int(p), int(N), int(steps), int(record_every)
    alpha, lr0, seed = float(alpha), float(lr0), int(seed)
    D = 2 * p
    rng = np.random.default_rng(seed)
    mask = modular_split(p, train_fraction, rng)
    W = rng.standard_normal((N, D))
    A = rng.standard_normal((p, N))
    lab = _targets(p)
    n_train = int(mask.sum())
    c = alpha / (D * N)
    lr = lr0 / alpha ** 2
    params = dict(p=p, N=N, alpha=alpha, steps=steps, train_fraction=float(train_fraction),
                  seed=seed, record_every=record_every, lr0=lr0)
    nrec = steps // record_every + 1
    names = ("train_loss", "test_loss", "train_acc", "test_acc", "weight_norm")
    rec = {k: np.full(nrec, np.nan) for k in names}
    epoch = np.arange(nrec, dtype=float) * record_every
    start = 0
    if checkpoint is not None:
        for k, v in params.items():
            if checkpoint.key.get(k, v) != v:
                raise ValueError(f"parameter {k}={v!r} differs from the checkpoint key of "
                                 f"{checkpoint.path!r} ({k}={checkpoint.key[k]!r})")
        ck = checkpoint.load(checkpoint_name)
        if ck is not None:
            start = int(ck["record"]) + 1
            W, A = ck["W"], ck["A"]
            for k in names:
                rec[k] = ck["rec_" + k]
    mask_f = mask.astype(float)
    status, end = 0, nrec
    last = time.time()

    def save(r):
        if checkpoint is not None:
            checkpoint.save(checkpoint_name, record=r, W=W, A=A,
                            **{"rec_" + k: v for k, v in rec.items()})

    r = start - 1
    with threadpool_limits(1), np.errstate(over="ignore", invalid="ignore"):
        for r in pbar(range(start, nrec), total=nrec - start, desc=f"modular alpha={alpha:g}",
                      enabled=progress):
            if r > 0:
                for _ in range(record_every):
                    _step(W, A, p, c, lr, lab, mask_f, n_train)
            F = _forward(W, A, p, c)[2]
            tl, sl, ta, sa = _measure(F, lab, mask)
            rec["train_loss"][r], rec["test_loss"][r] = tl, sl
            rec["train_acc"][r], rec["test_acc"][r] = ta, sa
            rec["weight_norm"][r] = np.linalg.norm(W) + np.linalg.norm(A)
            if not (math.isfinite(tl) and math.isfinite(sl) and np.all(np.isfinite(W))):
                status, end = 6, r + 1
                break
            if _stop_after_records is not None and r >= _stop_after_records:
                end = r + 1
                save(r)
                break
            if checkpoint is not None and time.time() - last > checkpoint_seconds:
                save(r)
                last = time.time()
    if status == 0 and end == nrec and r >= start:
        save(nrec - 1)
    cut = slice(0, end)
    ep = epoch[cut]
    t_tr = first_epoch_at_least(ep, rec["train_acc"][cut], acc_level)
    t_te = first_epoch_at_least(ep, rec["test_acc"][cut], acc_level)
    detail = None
    if status == 6:
        detail = f"non-finite loss at step {int(ep[-1])}; lower lr0"
    elif not (math.isfinite(t_tr) and math.isfinite(t_te)):
        status = 7
        which = " and ".join(n for n, t in (("train", t_tr), ("test", t_te))
                             if not math.isfinite(t))
        detail = (f"{which} accuracy never reached {acc_level:g} in {int(ep[-1])} steps; "
                  f"raise steps")
    return ModularRunResult(epoch=ep, t_train_acc=t_tr, t_test_acc=t_te, acc_level=acc_level,
                            alpha=alpha, lr=lr, n_train=n_train, status=status,
                            message=status_message(status, detail), params=params,
                            **{k: v[cut].copy() for k, v in rec.items()})
