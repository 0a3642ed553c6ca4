r"""Two-layer ReLU MLP on modular addition, full-batch GD with weight decay (Lyu et al. 2023,
arXiv 2311.18817, Sec. 2, Fig. 2).

**Model.** Modulus :math:`p`, input the concatenated one-hots
:math:`x_{ab}=e_a\oplus e_b\in\mathbb R^{2p}`, width :math:`h`, logits over the :math:`p`
classes

.. math:: f(x)=W_2\,\mathrm{ReLU}(W_1x+b_1),\qquad W_1\in\mathbb R^{h\times2p},\
          b_1\in\mathbb R^h,\ W_2\in\mathbb R^{p\times h},

target :math:`(a+b)\bmod p`. The model is 2-homogeneous in :math:`\theta=(W_1,b_1,W_2)`.

**Start** (paper Sec. 2, Fig. 2b): :math:`W_1` He-normal (std :math:`\sqrt{2/(2p)}`) times the
initialisation scale ``init_scale``, :math:`b_1=0`, :math:`W_2=0`, so the output is zero at
initialisation (Assumption 3.2). The paper's PyTorch model starts the bias at PyTorch's
default; we start it at zero (it keeps the output zero either way).

**Training.** Mean cross-entropy over the training pairs plus weight decay, as PyTorch SGD's
``weight_decay`` (on every parameter):
:math:`\theta\leftarrow\theta-\eta\,(\nabla\mathcal L(\theta)+\lambda\theta)`. Continuous time
is :math:`t=\eta\times\text{steps}`; the dichotomy predicts the test-accuracy jump near
:math:`t_g=\frac1\lambda\ln(\text{scale})+O(1/\lambda)`.

**Gradient** (by hand, tested against finite differences): with :math:`Z=HW_2^\top`,
:math:`G=(\mathrm{softmax}(Z)-Y)/n`,
:math:`\nabla_{W_2}=G^\top H`, :math:`\nabla_{\rm pre}=(GW_2)\odot\mathbb 1[\mathrm{pre}>0]`,
:math:`\nabla_{W_1}=\nabla_{\rm pre}^\top X`, :math:`\nabla_{b_1}=\mathbf 1^\top\nabla_{\rm pre}`
(ReLU'(0) := 0).

The step is plain numpy on BLAS (three :math:`n\times h\times p` products into preallocated
buffers, the first layer a row gather and its gradient a sorted ``np.add.reduceat``); the
weights are stored transposed (``W1T`` is :math:`2p\times h`, ``W2T`` is :math:`h\times p`).
"""
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase._checks import check_int, check_range
from kernelphase.results import Result, status_message

__all__ = ["MLPState", "ModularMLPResult", "modular_pairs", "init_mlp", "mlp_logits",
           "mlp_loss_grad", "mlp_gd_reference", "train_modular_mlp", "check_modular_mlp_params",
           "first_step_at_least", "modular_run_key", "ACC_LEVEL"]

#: t_train and t_test are the first recorded steps at which the accuracy reaches this level
ACC_LEVEL = 0.95
#: below this n * width * p the BLAS products run on one thread
SMALL_PRODUCT = 5e7
#: bounds of a run (memory is checked separately)
MAX_P, MAX_WIDTH, MAX_STEPS, MAX_RECORDS = 1000, 10**5, 10**9, 10**6


def check_modular_mlp_params(p=23, init_scale=1.0, lam=1e-3, lr=0.1, steps=10**5, seed=0,
                             width=256, train_frac=0.5, record_every=100,
                             checkpoint_every=None):
    """Check every argument of :func:`train_modular_mlp` (and its memory need); raise
    ``ValueError`` naming the parameter, its value and the valid range.

    ``p`` 2 to 1000, ``init_scale`` in (0, 1e4], ``lam`` in [0, 1e3], ``lr`` in (0, 1e3],
    ``steps`` 1 to 1e9, ``width`` 1 to 1e5, ``train_frac`` in (0, 1) with at least one
    training and one test pair, ``record_every`` >= 1 with at most 1e6 records,
    ``checkpoint_every`` a multiple of ``record_every``; at most 8 GiB of arrays.

    Examples
    --------
    >>> from kernelphase.validation.modular_mlp import check_modular_mlp_params
    >>> check_modular_mlp_params(p=23, width=256, train_frac=0.5)   # the number of training pairs
    264
    >>> check_modular_mlp_params(p=1)
    Traceback (most recent call last):
        ...
    ValueError: p=1 ...
    """
    from kernelphase.solvers.matrix_completion import check_memory
    p = check_int("p", p, 2, MAX_P)
    check_range("init_scale", init_scale, 0.0, 1e4, lo_open=True)
    check_range("lam", lam, 0.0, 1e3)
    check_range("lr", lr, 0.0, 1e3, lo_open=True)
    steps = check_int("steps", steps, 1, MAX_STEPS)
    check_int("seed", seed, 0, 2**63 - 1)
    width = check_int("width", width, 1, MAX_WIDTH)
    frac = check_range("train_frac", train_frac, 0.0, 1.0, lo_open=True, hi_open=True)
    n = int(round(frac * p * p))
    if not 1 <= n <= p * p - 1:
        raise ValueError(f"train_frac={train_frac!r} gives {n} of the {p * p} pairs; the valid "
                         f"range is 1 to {p * p - 1} training pairs")
    record_every = check_int("record_every", record_every, 1, MAX_STEPS)
    if steps // record_every + 1 > MAX_RECORDS:
        raise ValueError(f"record_every={record_every} gives {steps // record_every + 1} "
                         f"records for steps={steps}; the valid range is at most {MAX_RECORDS}")
    if checkpoint_every is not None:
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, record_every,
                                     MAX_STEPS)
        if checkpoint_every % record_every:
            raise ValueError(f"checkpoint_every={checkpoint_every} must be a multiple of "
                             f"record_every={record_every}")
    check_memory(f"modular MLP p={p}, width={width}",
                 8.0 * (p * p * (2 * width + 3 * p + 2 * p) + 8 * width * p
                        + 3 * (steps // record_every + 1) * 6))
    return n


def modular_pairs(p, train_frac, seed):
    """All :math:`p^2` pairs ``(a, b)``, their labels ``(a+b) mod p`` and a boolean training
    mask of ``round(train_frac p^2)`` pairs drawn by ``numpy.random.default_rng(seed)``.

    Examples
    --------
    >>> from kernelphase.validation.modular_mlp import modular_pairs
    >>> a, b, labels, train = modular_pairs(5, 0.4, seed=0)
    >>> len(a), int(train.sum()), bool(((a + b) % 5 == labels).all())
    (25, 10, True)
    """
    a, b = np.divmod(np.arange(p * p), p)
    labels = (a + b) % p
    n = int(round(train_frac * p * p))
    mask = np.zeros(p * p, bool)
    mask[np.random.default_rng(seed).permutation(p * p)[:n]] = True
    return a, b, labels, mask


@dataclass
class MLPState:
    """Weights (transposed storage): ``W1T`` (2p, h), ``b1`` (h,), ``W2T`` (h, p)."""
    W1T: np.ndarray
    b1: np.ndarray
    W2T: np.ndarray

    def sq_norm(self):
        return float(np.sum(self.W1T**2) + np.sum(self.b1**2) + np.sum(self.W2T**2))

    def copy(self):
        return MLPState(self.W1T.copy(), self.b1.copy(), self.W2T.copy())


def init_mlp(p, width, init_scale, seed):
    r"""He-normal :math:`W_1` times ``init_scale``, :math:`b_1=0`, :math:`W_2=0`.

    The weight stream is ``default_rng([seed, 1])``, independent of the split's stream.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_mlp import init_mlp
    >>> s = init_mlp(5, 8, init_scale=10.0, seed=0)
    >>> s.W1T.shape, s.W2T.shape, float(abs(s.W2T).max()), float(abs(s.b1).max())
    ((10, 8), (8, 5), 0.0, 0.0)
    """
    rng = np.random.default_rng([int(seed), 1])
    W1T = rng.standard_normal((2 * p, width)) * (init_scale * math.sqrt(2.0 / (2 * p)))
    return MLPState(W1T, np.zeros(width), np.zeros((width, p)))


def mlp_logits(state, a, b):
    """Logits ``(len(a), p)`` of the pairs ``(a, b)``.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_mlp import init_mlp, mlp_logits
    >>> s = init_mlp(5, 8, init_scale=1.0, seed=0)
    >>> mlp_logits(s, np.array([1, 2]), np.array([3, 4])).tolist()   # W2 = 0 at the start
    [[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    p = state.W2T.shape[1]
    H = np.maximum(state.W1T[a] + state.W1T[p + np.asarray(b)] + state.b1, 0.0)
    return H @ state.W2T


def _log_softmax(Z):
    m = Z.max(axis=1, keepdims=True)
    S = Z - m
    return S - np.log(np.exp(S).sum(axis=1, keepdims=True))


def mlp_loss_grad(state, a, b, labels):
    """Mean cross-entropy of the pairs and its gradient, an :class:`MLPState` (no weight
    decay). Straightforward numpy; the fast step is :class:`_Stepper`.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_mlp import init_mlp, mlp_loss_grad
    >>> s = init_mlp(5, 8, init_scale=1.0, seed=0)
    >>> loss, grad = mlp_loss_grad(s, np.array([1, 2]), np.array([3, 4]), np.array([4, 1]))
    >>> round(loss, 6) == round(np.log(5), 6)        # zero logits: cross-entropy ln p
    True
    """
    p = state.W2T.shape[1]
    n = len(a)
    pre = state.W1T[a] + state.W1T[p + np.asarray(b)] + state.b1
    H = np.maximum(pre, 0.0)
    Z = H @ state.W2T
    ls = _log_softmax(Z)
    loss = -float(np.mean(ls[np.arange(n), labels]))
    G = np.exp(ls)
    G[np.arange(n), labels] -= 1.0
    G /= n
    dW2T = H.T @ G
    dpre = (G @ state.W2T.T) * (pre > 0)
    dW1T = np.zeros_like(state.W1T)
    np.add.at(dW1T, a, dpre)
    np.add.at(dW1T, p + np.asarray(b), dpre)
    return loss, MLPState(dW1T, dpre.sum(axis=0), dW2T)


def mlp_gd_reference(state, a, b, labels, lr, lam, steps):
    """Slow reference GD (tests): :func:`mlp_loss_grad` plus weight decay, ``steps`` times.

    Examples
    --------
    >>> from kernelphase.validation.modular_mlp import init_mlp, mlp_gd_reference, modular_pairs
    >>> a, b, labels, train = modular_pairs(5, 0.8, seed=0)
    >>> s0 = init_mlp(5, 16, init_scale=1.0, seed=0)
    >>> s1 = mlp_gd_reference(s0, a[train], b[train], labels[train], lr=0.5, lam=1e-3, steps=30)
    >>> type(s1).__name__, s1.W2T.shape, bool(abs(s1.W2T).max() > 0)
    ('MLPState', (16, 5), True)
    """
    s = state.copy()
    for _ in range(steps):
        _, g = mlp_loss_grad(s, a, b, labels)
        s = MLPState(s.W1T - lr * (g.W1T + lam * s.W1T), s.b1 - lr * (g.b1 + lam * s.b1),
                     s.W2T - lr * (g.W2T + lam * s.W2T))
    return s


class _Stepper:
    """Full-batch GD steps into preallocated buffers (BLAS products, no allocation)."""

    def __init__(self, p, width, a, b, labels):
        n = len(a)
        self.p, self.n = p, n
        self.ia, self.ib = np.asarray(a), p + np.asarray(b)
        self.rows = np.arange(n)
        self.labels = np.asarray(labels)
        # the first-layer gradient is a scatter-add of the rows of dpre onto rows a and p + b:
        # sort the pairs by each index once, then one gather and one np.add.reduceat per step
        # (O(n h); the one-hot product X^T dpre would cost O(p n h))
        self.groups = []
        for idx in (self.ia, self.ib):
            order = np.argsort(idx, kind="stable")
            keys, starts = np.unique(idx[order], return_index=True)
            self.groups.append((order, keys, starts))
        self.sorted = np.empty((n, width))
        self.pre = np.empty((n, width))
        self.H = np.empty((n, width))
        self.Z = np.empty((n, p))
        self.dH = np.empty((n, width))
        self.gW1 = np.empty((2 * p, width))
        self.gW2 = np.empty((width, p))

    def step(self, s, lr, lam):
        np.take(s.W1T, self.ia, axis=0, out=self.pre)
        self.pre += s.W1T[self.ib]
        self.pre += s.b1
        np.maximum(self.pre, 0.0, out=self.H)
        np.matmul(self.H, s.W2T, out=self.Z)
        Z = self.Z
        Z -= Z.max(axis=1, keepdims=True)
        np.exp(Z, out=Z)
        Z /= Z.sum(axis=1, keepdims=True) * self.n
        Z[self.rows, self.labels] -= 1.0 / self.n        # Z is now G
        np.matmul(self.H.T, Z, out=self.gW2)
        np.matmul(Z, s.W2T.T, out=self.dH)
        self.dH *= self.pre > 0
        self.gW1[:] = 0.0
        for order, keys, starts in self.groups:
            np.take(self.dH, order, axis=0, out=self.sorted)
            self.gW1[keys] = np.add.reduceat(self.sorted, starts, axis=0)
        gb = self.dH.sum(axis=0)
        decay = 1.0 - lr * lam
        s.W1T *= decay
        s.W1T -= lr * self.gW1
        s.b1 *= decay
        s.b1 -= lr * gb
        s.W2T *= decay
        s.W2T -= lr * self.gW2


def _measure(state, a, b, labels, mask):
    """(train loss, train acc, test loss, test acc) over all p^2 pairs."""
    ls = _log_softmax(mlp_logits(state, a, b))
    nll = -ls[np.arange(len(a)), labels]
    right = np.argmax(ls, axis=1) == labels
    return (float(nll[mask].mean()), float(right[mask].mean()),
            float(nll[~mask].mean()), float(right[~mask].mean()))


def first_step_at_least(steps, values, level=ACC_LEVEL):
    """First recorded step with ``values >= level``; NaN if never.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_mlp import first_step_at_least
    >>> first_step_at_least(np.array([0, 50, 100]), np.array([0.2, 0.96, 1.0]))
    50.0
    >>> first_step_at_least(np.array([0, 50]), np.array([0.2, 0.5]))
    nan
    """
    v = np.asarray(values, float)
    idx = np.flatnonzero(v >= level)
    return float(np.asarray(steps)[idx[0]]) if idx.size else float("nan")


@dataclass(frozen=True)
class ModularMLPResult(Result):
    r"""A modular-addition MLP run (:func:`train_modular_mlp`).

    ``t_train``, ``t_test``: first recorded steps with train / test accuracy >=
    ``ACC_LEVEL`` (NaN, JSON null, if never; resolution ``record_every``); ``delay`` is
    ``t_test - t_train``; ``t_test_50``: first recorded step with test accuracy >= 0.5 (the
    middle of the jump, less sensitive to its slow tail). ``t_g_steps`` is
    :math:`\ln(\text{scale})/(\eta\lambda)` (NaN when scale <= 1 or lambda = 0), the
    leading-order grokking time. ``curves``: ``step``, ``train_loss``, ``train_acc``,
    ``test_loss``, ``test_acc``, ``norm``. ``state``: the
    final weights. ``status`` 0: both accuracies reached the level; 6: non-finite loss or
    weights (the curves stop there); 7: the run ended first.
    """
    t_train: float
    t_test: float
    delay: float
    t_test_50: float
    t_g_steps: float
    final_train_acc: float
    final_test_acc: float
    final_norm: float
    n_train: int
    curves: dict
    state: MLPState
    status: int
    message: str
    params: Mapping = field(default_factory=dict)

    def to_dict(self):
        """JSON-ready dict of every field but ``state`` (the weights), with ``converged``
        and ``kernelphase_version``."""
        from kernelphase import __version__
        from kernelphase.results import jsonable
        d = {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
             if f.name != "state"}
        d["converged"] = self.converged
        d["kernelphase_version"] = __version__
        return d


def modular_run_key(p=23, init_scale=1.0, lam=1e-3, lr=0.1, steps=10**5, seed=0, width=256,
                    train_frac=0.5, record_every=100, stop_when_grokked=False):
    """Checked parameters that determine a run of :func:`train_modular_mlp`: its ``params``
    and the key of its :class:`kernelphase.io.RunDir` (``checkpoint_every`` is not part of
    it: it does not change the result).

    Examples
    --------
    >>> from kernelphase.validation.modular_mlp import modular_run_key
    >>> key = modular_run_key(p=23, init_scale=10.0)
    >>> key["model"], key["init_scale"], key["n_train"]
    ('modular_mlp', 10.0, 264)
    """
    n = check_modular_mlp_params(p, init_scale, lam, lr, steps, seed, width, train_frac,
                                 record_every)
    return dict(model="modular_mlp", p=int(p), init_scale=float(init_scale), lam=float(lam),
                lr=float(lr), steps=int(steps), seed=int(seed), width=int(width),
                train_frac=float(train_frac), n_train=n, record_every=int(record_every),
                acc_level=ACC_LEVEL, stop_when_grokked=bool(stop_when_grokked))


def train_modular_mlp(p=23, init_scale=1.0, lam=1e-3, lr=0.1, steps=10**5, seed=0, width=256,
                      train_frac=0.5, record_every=100, checkpoint=None, checkpoint_every=None,
                      progress=False, stop_when_grokked=False, _after_record=None):
    """Train the MLP by full-batch GD with weight decay; return a :class:`ModularMLPResult`.

    ``checkpoint``: a :class:`kernelphase.io.RunDir` whose key holds every parameter of the
    run; the state is saved in it atomically every ``checkpoint_every`` steps (default
    ``50 * record_every``) and at the end, and a run opened with ``resume=True`` continues
    from it bit for bit (GD is deterministic; the random numbers are drawn only at the
    start, from ``seed``). ``stop_when_grokked``: stop at the first record at which the
    test accuracy has reached ``ACC_LEVEL`` (and the training accuracy has too).

    Examples
    --------
    >>> from kernelphase.validation.modular_mlp import train_modular_mlp
    >>> r = train_modular_mlp(p=5, width=16, steps=200, record_every=50, lr=0.5, train_frac=0.8)
    >>> r.n_train, r.final_train_acc, r.status
    (20, 1.0, 7)
    """
    from .polynomial_net import _check_key
    check_modular_mlp_params(p, init_scale, lam, lr, steps, seed, width, train_frac,
                             record_every, checkpoint_every)
    params = modular_run_key(p, init_scale, lam, lr, steps, seed, width, train_frac,
                             record_every, stop_when_grokked)
    p, width, steps, record_every = params["p"], params["width"], params["steps"], \
        params["record_every"]
    init_scale, lam, lr, train_frac = (params["init_scale"], params["lam"], params["lr"],
                                       params["train_frac"])
    n = params["n_train"]
    if checkpoint_every is None:
        checkpoint_every = 50 * record_every
    a, b, labels, mask = modular_pairs(p, train_frac, seed)
    st = None
    if checkpoint is not None:
        _check_key(checkpoint, params)
        st = checkpoint.load("checkpoint.npz")
    names = ("step", "train_loss", "train_acc", "test_loss", "test_acc", "norm")
    if st is not None:
        state = MLPState(st["W1T"], st["b1"], st["W2T"])
        step = int(st["step"])
        hist = {k: list(np.asarray(st["h_" + k]).tolist()) for k in names}
    else:
        state = init_mlp(p, width, init_scale, seed)
        step = 0
        hist = {k: [] for k in names}
    stepper = _Stepper(p, width, a[mask], b[mask], labels[mask])

    def record():
        m = _measure(state, a, b, labels, mask)
        for k, v in zip(names, (step,) + m + (math.sqrt(state.sq_norm()),)):
            hist[k].append(v)
        return all(math.isfinite(v) for v in m) and math.isfinite(hist["norm"][-1])

    def grokked():
        return (stop_when_grokked and hist["test_acc"][-1] >= ACC_LEVEL
                and hist["train_acc"][-1] >= ACC_LEVEL)

    status, detail = 0, None
    bar = None
    # small products run faster on one BLAS thread (threads cost more than they save, and the
    # machine is often shared); the paper's size (p = 97, width 1024) keeps all of them
    import contextlib
    from threadpoolctl import threadpool_limits
    small = n * width * p < SMALL_PRODUCT
    with (threadpool_limits(1) if small else contextlib.nullcontext()), \
            np.errstate(over="ignore", invalid="ignore"):
        if step == 0 and not hist["step"] and not record():
            status, detail = 6, "non-finite loss at step 0"
        if progress is not False:
            from kernelphase.progress import progress as _pb
            bar = _pb(total=steps, desc="modular MLP GD", enabled=progress)
            bar.update(step)
        while step < steps and status == 0 and not grokked():
            chunk = min(record_every, steps - step)
            for _ in range(chunk):
                stepper.step(state, lr, lam)
            step += chunk
            if not record():
                status, detail = 6, f"non-finite loss or weights at step {step}"
            if bar is not None:
                bar.update(chunk)
            if checkpoint is not None and (step % checkpoint_every == 0 or step == steps
                                           or grokked() or status):
                checkpoint.save("checkpoint.npz", W1T=state.W1T, b1=state.b1, W2T=state.W2T,
                                step=step, params=params,
                                **{"h_" + k: np.asarray(v) for k, v in hist.items()})
            if _after_record is not None:
                _after_record(step)   # test hook: simulates an interrupted run
    if bar is not None:
        bar.close()
    curves = {k: np.asarray(v) for k, v in hist.items()}
    t_train = first_step_at_least(curves["step"], curves["train_acc"])
    t_test = first_step_at_least(curves["step"], curves["test_acc"])
    if status == 0 and not (math.isfinite(t_train) and math.isfinite(t_test)):
        status = 7
        which = "train and test" if not math.isfinite(t_train) else "test"
        detail = (f"{which} accuracy below {ACC_LEVEL:g} at the last step {int(step)}; "
                  f"run longer")
    tg = (math.log(init_scale) / (lr * lam) if init_scale > 1 and lam > 0 else float("nan"))
    return ModularMLPResult(
        t_train=t_train, t_test=t_test, delay=t_test - t_train,
        t_test_50=first_step_at_least(curves["step"], curves["test_acc"], 0.5), t_g_steps=tg,
        final_train_acc=float(curves["train_acc"][-1]),
        final_test_acc=float(curves["test_acc"][-1]), final_norm=float(curves["norm"][-1]),
        n_train=n, curves=curves, state=state, status=status,
        message=status_message(status, detail), params=params)
