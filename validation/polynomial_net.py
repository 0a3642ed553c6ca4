r"""Simulations of the polynomial network of Kumar et al. 2023 (arXiv 2310.06110, Sec. 5).

:math:`f = \frac{\alpha}{N}\sum_i\varphi(w_i\cdot x)`, :math:`\varphi(h) = h+\frac\varepsilon2h^2`,
readouts fixed to 1, :math:`w_i\sim\mathcal N(0,I_D)`, full-batch GD, no weight decay,
:math:`\eta = cN/\alpha^2`, MSE without ½. ``full_gd`` is the plain-numpy reference on
:math:`W`; :func:`train` runs the exact reduced dynamics
(:mod:`kernelphase.solvers.order_dynamics`) and is what the presets use.

Data conventions (theory note Sec. 2.2): ``"A"``: :math:`x\sim\mathcal N(0,I/D)`,
:math:`y=(\beta\cdot x)^2/2`; ``"B"``: :math:`x\sim\mathcal N(0,I)`, :math:`h=w\cdot x/\sqrt D`,
:math:`y=(\beta\cdot x)^2/D`, returned in A form (:math:`x/\sqrt D`, ``s = 2``).
"""
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase.results import Result

__all__ = ["make_data", "init_weights", "network_output", "full_gd", "train",
           "kernel_regression_empirical", "alignment", "ntk_gram", "PRESETS", "t_below",
           "TrainResult", "check_train_params"]

# paper parameter sets (theory note Sec. 8)
PRESETS = {
    "fig1": dict(D=100, P=550, N=500, alpha=1.0, eps=0.02, c=1.0, steps=100_000,
                 convention="A", centred=True),
    "fig3a": dict(D=100, P=450, N=500, alpha=1.0, eps=0.25, c=0.5, steps=60_000,
                  convention="B", centred=True),
    "fig3e": dict(D=100, P=550, N=500, alpha=1.0, eps=0.1, c=20.0, steps=110_000,
                  convention="A", centred=True),
    "fig4": dict(D=40, P=120, N=2, alpha=1.0, eps=0.25, c=0.5, steps=50_000,
                 convention="A", centred=False),
    "goldilocks": dict(D=40, P=120, N=100, alpha=1.0, eps=0.5, c=0.5, steps=50_000,
                       convention="A", centred=True),
}


def make_data(D, P, rng, convention="A", beta=None, normalise=False):
    r"""Inputs (P, D) in A form, labels, teacher ``beta`` and the label factor ``s``.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import make_data
    >>> X, y, beta, s = make_data(D=4, P=3, rng=np.random.default_rng(0))
    >>> X.shape, y.shape, beta.shape, s
    ((3, 4), (3,), (4,), 1.0)
    >>> bool(np.allclose(y, s / 2 * (X @ beta) ** 2))      # y = (s/2) (beta.x)^2
    True
    """
    from kernelphase._checks import check_choice, check_int
    from kernelphase.solvers.matrix_completion import check_memory
    D, P = check_int("D", D, 1, 10**6), check_int("P", P, 1, 10**8)
    check_choice("convention", convention, ("A", "B"))
    check_memory(f"data D={D}, P={P}", 8.0 * 3 * P * D)
    if beta is None:
        beta = rng.standard_normal(D)
        if normalise:
            beta *= np.sqrt(D) / np.linalg.norm(beta)
    if convention == "A":
        X = rng.standard_normal((P, D)) / np.sqrt(D)
        s = 1.0
    elif convention == "B":
        X = rng.standard_normal((P, D)) / np.sqrt(D)  # x_B / sqrt(D)
        s = 2.0
    else:
        raise ValueError(f"convention={convention!r} is not one of ('A', 'B')")
    y = 0.5 * s * (X @ beta) ** 2
    return X, y, beta, s


def init_weights(N, D, rng, scale=1.0):
    """:math:`W_{ij}\\sim\\mathcal N(0, \\sigma^2)`.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import init_weights
    >>> W = init_weights(1000, 10, np.random.default_rng(0), scale=2.0)
    >>> W.shape, round(float(W.std()), 1)
    ((1000, 10), 2.0)
    """
    from kernelphase._checks import check_int, check_range
    from kernelphase.solvers.matrix_completion import check_memory
    N, D = check_int("N", N, 1, 10**8), check_int("D", D, 1, 10**6)
    check_range("scale", scale, 0, 1e6)
    check_memory(f"weights N={N}, D={D}", 8.0 * N * D)
    return scale * rng.standard_normal((N, D))


def network_output(W, X, alpha, eps):
    r"""Output :math:`f(x)=\frac{\alpha}{N}\sum_i\varphi(w_i\cdot x)`,
    :math:`\varphi(h)=h+\frac\varepsilon2h^2`, for the rows of ``X`` (Kumar et al. 2023, Sec. 3).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import network_output
    >>> W = np.array([[1.0, 0.0], [0.0, 2.0]]); X = np.array([[1.0, 1.0]])
    >>> network_output(W, X, alpha=1.0, eps=0.5)      # (1/2) [(1 + 1/4) + (2 + 1)]
    array([2.125])
    """
    H = X @ W.T
    return alpha * np.mean(H + 0.5 * eps * H * H, axis=1)


def full_gd(W, X, y, alpha, eps, lr, steps, centred=True, linearised=False):
    r"""Plain numpy full-batch GD on W (reference). Returns (W, train losses per step).

    Gradient :math:`\partial L/\partial w_i = \frac{2\alpha}{NP}\sum_\mu e_\mu\varphi'(h_{i\mu})x_\mu`;
    linearised: :math:`\varphi'` frozen at :math:`W_0` and
    :math:`f = f_0 + \nabla f(W_0)\cdot(W-W_0)`.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import full_gd, init_weights, make_data
    >>> rng = np.random.default_rng(0)
    >>> X, y, beta, s = make_data(5, 20, rng)
    >>> W, losses = full_gd(init_weights(10, 5, rng), X, y, alpha=1.0, eps=0.1, lr=1.0, steps=50)
    >>> W.shape, len(losses), bool(losses[-1] < losses[0])
    ((10, 5), 50, True)
    """
    from kernelphase._checks import check_int, check_range
    check_range("alpha", alpha, 0, 1e6, lo_open=True)
    check_range("eps", eps, 0, 1e6)
    check_range("lr", lr, 0, 1e12, lo_open=True)
    steps = check_int("steps", steps, 0, 10**7)
    W = np.array(W, float)
    W0 = W.copy()
    N = W.shape[0]
    P = X.shape[0]
    f0 = network_output(W0, X, alpha, eps)
    H0 = X @ W0.T
    dphi0 = 1.0 + eps * H0
    losses = np.empty(steps)
    for t in range(steps):
        if linearised:
            f = f0 + alpha / N * np.sum(dphi0 * (X @ (W - W0).T), axis=1)
            dphi = dphi0
        else:
            H = X @ W.T
            f = alpha * np.mean(H + 0.5 * eps * H * H, axis=1)
            dphi = 1.0 + eps * H
        e = f - y - (f0 if centred else 0.0)
        losses[t] = np.mean(e * e)
        W -= lr * (2.0 * alpha / (N * P)) * ((dphi * e[:, None]).T @ X)
    return W, losses


def ntk_gram(W, X1, X2, alpha, eps):
    r"""Empirical NTK :math:`\frac{\alpha^2}{N^2}\sum_i\varphi'(h_i)\varphi'(h_i')\,x\cdot x'`.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import ntk_gram
    >>> W = np.zeros((4, 3)); X = np.eye(3)
    >>> ntk_gram(W, X, X, alpha=2.0, eps=0.5)        # phi'(0) = 1: (alpha^2/N) x.x'
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    N = W.shape[0]
    A1 = 1.0 + eps * (X1 @ W.T)
    A2 = 1.0 + eps * (X2 @ W.T)
    return (alpha / N) ** 2 * (A1 @ A2.T) * (X1 @ X2.T)


def alignment(K, y):
    r"""Kernel-target alignment of the paper's code (theory note Sec. 3.6).

    .. math::  A = \frac{y_c^\top K_c y_c}{\|K_c\|_F\,\|y_c\|^2},\quad y_c = y-\bar y,\quad
               K_c = K - \tfrac1P\mathbf 1\mathbf 1^\top K\ \text{(column means removed)}

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import alignment
    >>> y = np.array([1.0, -1.0, 2.0])
    >>> round(alignment(np.outer(y, y), y), 6)       # a kernel made of the labels
    0.881917
    """
    yc = y - y.mean()
    Kc = K - K.mean(axis=0, keepdims=True)
    return float(yc @ Kc @ yc / (np.linalg.norm(Kc) * (yc @ yc)))


def kernel_regression_empirical(kernel, X, y, Xt, yt, ridge=0.0):
    """Test MSE of kernel regression ``K c = y`` (``(K + ridge P I)`` with a ridge).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import kernel_regression_empirical
    >>> X = np.eye(3); Xt = np.array([[1.0, 1.0, 0.0]])
    >>> y = np.array([1.0, 2.0, 3.0]); yt = np.array([3.0])
    >>> kernel_regression_empirical(lambda u: u, X, y, Xt, yt)   # linear kernel of u = x.x'
    0.0
    >>> kernel_regression_empirical(lambda u: u, X, y, Xt, np.array([2.0]))   # off by one
    1.0
    """
    K = kernel(X @ X.T)
    P = X.shape[0]
    if ridge > 0:
        K = K + ridge * P * np.eye(P)
    c = np.linalg.solve(K, y)
    pred = kernel(Xt @ X.T) @ c
    return float(np.mean((pred - yt) ** 2))


def t_below(epochs, loss, threshold):
    """First recorded epoch with ``loss < threshold``; ``nan`` if never (run too short).

    The lazy-rich grokking time (Kumar et al. 2023, Fig. 1 and 3): train and test loss each
    measured by this one definition. A ``nan`` means the run ended before the loss fell
    below the threshold; callers report it as status 7, never as a time.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.polynomial_net import t_below
    >>> t_below(np.array([0, 10, 20]), np.array([1.0, 0.2, 0.05]), 0.1)
    20.0
    >>> t_below([0, 10], [1.0, 0.5], 0.1)                 # never below: run too short
    nan
    """
    idx = np.flatnonzero(np.asarray(loss) < threshold)
    return float(epochs[idx[0]]) if idx.size else float("nan")


@dataclass(frozen=True)
class TrainResult(Result):
    """Curves of one run of :func:`train` (one entry per record, ``epoch`` the step count).

    ``status`` 0: the run completed; 6: it diverged (the curves stop at the first
    non-finite record).
    """
    epoch: np.ndarray
    train: np.ndarray
    test: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    t3: np.ndarray
    weight_norm: np.ndarray
    alignment_epoch: np.ndarray
    alignment: np.ndarray
    beta: np.ndarray
    s: float
    X: np.ndarray
    y: np.ndarray
    W0: np.ndarray
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


#: upper bounds of the run sizes (memory is checked separately)
MAX_STEPS = 10**9
MAX_RECORDS = 10**6


def check_train_params(D, P, N, alpha, eps, c, steps, seed=0, convention="A", model="network",
                       record_every=10, n_test_align=0, align_every=1000):
    """Check every argument of :func:`train` and its memory need; raise ``ValueError``.

    Ranges: ``alpha`` in (0, 1e6], ``eps`` in [0, 1e6], ``c`` in (0, 1e6] (beyond them
    ``lr = c N / alpha^2`` and the quadratic term overflow double precision), at most
    ``1e9`` steps and ``1e6`` records, and at most 8 GiB of arrays.

    Examples
    --------
    >>> from kernelphase.validation.polynomial_net import check_train_params
    >>> check_train_params(D=5, P=20, N=10, alpha=1.0, eps=0.1, c=1.0, steps=100) is None
    True
    >>> check_train_params(D=5, P=20, N=10, alpha=-1.0, eps=0.1, c=1.0, steps=100)
    Traceback (most recent call last):
        ...
    ValueError: alpha=-1.0 is outside the valid range (0, 1e+06]
    """
    from kernelphase._checks import check_choice, check_int, check_range
    from kernelphase.solvers.matrix_completion import check_memory
    from kernelphase.solvers.order_dynamics import MODELS
    D = check_int("D", D, 1, 10**6)
    P = check_int("P", P, 1, 10**8)
    N = check_int("N", N, 1, 10**8)
    check_range("alpha", alpha, 0, 1e6, lo_open=True)
    check_range("eps", eps, 0, 1e6)
    check_range("c", c, 0, 1e6, lo_open=True)
    steps = check_int("steps", steps, 0, MAX_STEPS)
    check_int("seed", seed, 0, 2**63 - 1)
    check_choice("convention", convention, ("A", "B"))
    check_choice("model", model, tuple(MODELS))
    record_every = check_int("record_every", record_every, 1, MAX_STEPS)
    nrec = steps // record_every + 1
    if nrec > MAX_RECORDS:
        raise ValueError(f"steps={steps} with record_every={record_every} gives {nrec} records; "
                         f"the valid range is at most {MAX_RECORDS} (raise record_every)")
    na = check_int("n_test_align", n_test_align, 0, 10**5)
    check_int("align_every", align_every, 1)
    check_memory(f"D={D}, P={P}, N={N}, n_test_align={na}",
                 8.0 * (8 * D * D + 4 * P * D + 2 * N * D + 2 * na * D + 4 * na * na
                        + 10 * nrec))


def _check_key(checkpoint, params):
    """The run folder's key must hold every parameter of this run with the same value."""
    for k, v in params.items():
        if k not in checkpoint.key:
            raise ValueError(f"checkpoint key of {checkpoint.path!r} lacks parameter {k}")
        if checkpoint.key[k] != v:
            raise ValueError(f"parameter {k}={v!r} differs from the checkpoint key of "
                             f"{checkpoint.path!r} ({k}={checkpoint.key[k]!r})")


def train(D, P, N, alpha, eps, c, steps, seed=0, convention="A", centred=True,
          model="network", record_every=10, n_test_align=0, align_every=1000,
          checkpoint=None, progress=False, stop_threshold=None,
          checkpoint_seconds=30.0, _stop_after_records=None):
    r"""Train the network through its exact reduced dynamics; return a :class:`TrainResult`.

    ``lr = c N / alpha^2``. Test loss is the exact population loss (the paper uses 1000
    fresh points; the population value is their expectation). With ``n_test_align > 0``
    the kernel alignment of the empirical NTK on that many test points is recorded every
    ``align_every`` steps (this needs the weights W: the run then also keeps W by the
    affine per-neuron map, which the reduced dynamics does not need otherwise).
    ``checkpoint``: a :class:`kernelphase.io.RunDir` whose key holds every parameter of the
    run; the state is saved in it atomically at most every ``checkpoint_seconds`` and at
    the end, and a run opened with ``resume=True`` continues from it bit for bit.
    ``stop_threshold``: stop once both losses are below it (sweeps only need t_train and
    t_test). BLAS is held to one thread inside the loop (the numba stepper calls it on
    small matrices, where more threads only oversubscribe the cores).

    Examples
    --------
    >>> from kernelphase.validation.polynomial_net import train
    >>> r = train(D=5, P=20, N=10, alpha=1.0, eps=0.1, c=1.0, steps=200, seed=0, record_every=100)
    >>> r.epoch.tolist(), bool(r.test[-1] < r.test[0]), r.status
    ([0.0, 100.0, 200.0], True, 0)
    """
    from threadpoolctl import threadpool_limits
    from kernelphase.results import status_message
    from kernelphase.solvers.order_dynamics import population_loss, reduced_steps, MODELS, _residual
    check_train_params(D, P, N, alpha, eps, c, steps, seed, convention, model, record_every,
                       n_test_align, align_every)
    D, P, N, steps, record_every = int(D), int(P), int(N), int(steps), int(record_every)
    alpha, eps, c = float(alpha), float(eps), float(c)
    rng = np.random.default_rng(seed)
    X, y, beta, s = make_data(D, P, rng, convention)
    W = init_weights(N, D, rng)
    f0 = network_output(W, X, alpha, eps)
    wbar0 = W.mean(axis=0)
    M0 = W.T @ W / N
    lr = c * N / alpha ** 2
    gamma = 2 * lr * alpha / N
    mcode = MODELS[model]
    cen = centred and model != "linearised"
    if model == "linearised":
        wbar, M = np.zeros(D), np.zeros((D, D))
        yeff = y - (0.0 if centred else f0)
    else:
        wbar, M = wbar0.copy(), M0.copy()
        yeff = y + (f0 if centred else 0.0)
    T = s * np.outer(beta, beta)
    Xt = None
    if n_test_align:
        Xt, yt, _, _ = make_data(D, n_test_align, rng, convention, beta=beta)
    params = dict(D=D, P=P, N=N, alpha=alpha, eps=eps, c=c, steps=steps, seed=int(seed),
                  convention=convention, centred=bool(centred), model=model,
                  record_every=record_every)
    nrec = steps // record_every + 1
    rec = dict(epoch=np.zeros(nrec), train=np.full(nrec, np.nan), test=np.full(nrec, np.nan),
               t1=np.zeros(nrec), t2=np.zeros(nrec), t3=np.zeros(nrec),
               weight_norm=np.zeros(nrec))
    al_ep, al_val = [], []
    start = 0
    name = f"checkpoint_{model}.npz"
    if checkpoint is not None:
        _check_key(checkpoint, params)
        ck = checkpoint.load(name)
        if ck is not None:
            start = int(ck["record"]) + 1
            wbar, M = ck["wbar"], ck["M"]
            for k in rec:
                rec[k] = ck["rec_" + k]
            al_ep, al_val = list(ck["al_ep"]), list(ck["al_val"])
    status, end = 0, nrec
    last_ck = time.time()
    from kernelphase.progress import progress as pbar
    with threadpool_limits(1), np.errstate(over="ignore", invalid="ignore"):
        for r in pbar(range(start, nrec), total=nrec - start, desc=f"train {model}",
                      enabled=progress):
            if r > 0:
                reduced_steps(X, yeff, wbar, M, alpha, eps, gamma, record_every,
                              mcode, wbar0, M0, T, cen)
            rec["epoch"][r] = r * record_every
            if mcode != 2:
                e = _residual(X, yeff, wbar, M, alpha, eps, mcode, wbar0, M0)
                rec["train"][r] = np.mean(e * e)
            try:
                if model == "linearised":
                    Mf = M0 + 2 * M
                    te, terms = (population_loss(wbar, M, beta, alpha, eps, s, model=1)
                                 if centred else
                                 population_loss(wbar0 + wbar, Mf, beta, alpha, eps, s))
                else:
                    Mf = M
                    te, terms = population_loss(wbar, M, beta, alpha, eps, s,
                                                wbar0 if cen else None, M0 if cen else None)
            except (OverflowError, FloatingPointError, ZeroDivisionError):
                te, terms = float("inf"), (np.nan, np.nan, np.nan)
            rec["test"][r] = te
            rec["t1"][r], rec["t2"][r], rec["t3"][r] = terms
            rec["weight_norm"][r] = np.sqrt(N * np.trace(Mf))   # ||W||_F
            if not (np.isfinite(te) and np.all(np.isfinite(M)) and np.all(np.isfinite(wbar))):
                status, end = 6, r + 1
                break
            if Xt is not None and (r * record_every) % align_every == 0 and model == "network":
                # kernel at the current weights: needs W; the NTK depends on W only via
                # sum_i phi'(h_i) phi'(h_i') = N(1 + eps wbar.(x+x') + eps^2 x^T M x')
                Kt = (alpha ** 2 / N) * (Xt @ Xt.T) * (1 + eps * np.add.outer(Xt @ wbar, Xt @ wbar)
                                                      + eps ** 2 * Xt @ M @ Xt.T)
                al_ep.append(r * record_every)
                al_val.append(alignment(Kt, yt))
            if _stop_after_records is not None and r >= _stop_after_records:
                end = r + 1
                break  # test hook: simulates an interrupted run
            if (stop_threshold is not None and te < stop_threshold
                    and rec["train"][r] < stop_threshold):
                end = r + 1
                break
            if checkpoint is not None and (time.time() - last_ck >= checkpoint_seconds
                                           or r == nrec - 1):
                checkpoint.save(name, params=params, record=r, wbar=wbar, M=M,
                                al_ep=np.array(al_ep, float), al_val=np.array(al_val, float),
                                **{"rec_" + k: v for k, v in rec.items()})
                last_ck = time.time()
    detail = None
    if status == 6:
        detail = f"non-finite loss or weights at step {int(rec['epoch'][end - 1])}"
    return TrainResult(**{k: v[:end] for k, v in rec.items()},
                       alignment_epoch=np.array(al_ep, float), alignment=np.array(al_val, float),
                       beta=beta, s=s, X=X, y=y, W0=W, status=status,
                       message=status_message(status, detail), params=params)
