r"""Exact reduced gradient-descent dynamics of :math:`(\bar w, M)` (Kumar et al. 2023).

One full-batch GD step on :math:`L = \frac1P\sum_\mu e_\mu^2` (no ½) of
:math:`f = \alpha\bar w\cdot x + \frac{\alpha\varepsilon}2x^\top Mx` is affine in every neuron:

.. math::  w_i \leftarrow B w_i - \gamma g,\quad B = I - \gamma\varepsilon\hat C,\quad
           \gamma = 2\eta\alpha/N,\quad g = \tfrac1P\textstyle\sum_\mu e_\mu x_\mu,\quad
           \hat C = \tfrac1P\textstyle\sum_\mu e_\mu x_\mu x_\mu^\top,

so :math:`\bar w' = B\bar w - \gamma g`,
:math:`M' = BMB - \gamma(g(B\bar w)^\top + (B\bar w)g^\top) + \gamma^2gg^\top`
(theory note Sec. 4.4, re-derived and tested against full GD on W).

Three models share the stepper (``model``): 0 the network, 1 its linearisation at
:math:`W_0` (state :math:`\Delta\bar w` and :math:`S = \mathrm{sym}\frac1N\sum_iw_i^0\Delta w_i^\top`,
:math:`f_{\rm lin}-f_0 = \alpha x\cdot\Delta\bar w + \alpha\varepsilon x^\top Sx`), and the
population limit :math:`P\to\infty` (:math:`g = \alpha\bar w_e/D`,
:math:`\hat C = (\mathrm{Tr}A\,I + 2A)/(2D^2)`, :math:`A = \alpha\varepsilon M_e - T`, theory
note Sec. 4.5). Centred loss: residual of :math:`f - f_0`; the test loss is the exact
population loss :math:`t_1+t_2+t_3` (:func:`kernelphase.lazy_rich.loss_terms`) of the
effective state (:math:`M-M_0`, :math:`\bar w-\bar w_0` when centred).

Data are in convention A form (rows :math:`x_\mu`, pre-activation :math:`w\cdot x`);
convention B is mapped to it by :func:`kernelphase.validation.polynomial_net.make_data`.
"""
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
# numba's np.dot calls the OpenBLAS that scipy ships, loaded on first use. Load it with this
# module, so that a threadpool_limits(1) block entered before the first step (train(),
# run_order_dynamics, the benchmark) limits it too: a library loaded inside the block keeps
# its default threads and oversubscribes a shared machine.
import scipy.linalg.cython_blas  # noqa: F401
from numba import njit

from kernelphase.results import Result, status_message

__all__ = ["OrderState", "DynamicsResult", "reduced_steps", "run_order_dynamics",
           "population_loss", "MODELS", "readout_steps", "readout_order_parameters"]

MODELS = {"network": 0, "linearised": 1, "population": 2}


@dataclass
class OrderState:
    """Mutable state: ``wbar`` (D,), ``M`` (D, D) (or S for the linearised model)."""
    wbar: np.ndarray
    M: np.ndarray


@dataclass(frozen=True)
class DynamicsResult(Result):
    """Curves of a reduced run; ``epochs`` are the recorded step counts."""
    epochs: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    terms: np.ndarray            # (n_rec, 3): t1, t2, t3 of the test loss
    wbar: np.ndarray
    M: np.ndarray
    residual: float              # last train loss (the GD objective)
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


#: column blocks of the symmetric products (_sym_product, _quad_forms): one block per
#: _BLOCK columns, so that only the upper block rows are multiplied (10 measured fastest at
#: D = 100, P = 550 with one OpenBLAS thread: 25 loses 30 %, one block 60 %)
_BLOCK = 10


@njit(cache=True)
def _bounds(D):
    nb = max(1, D // _BLOCK)
    out = np.empty(nb + 1, np.int64)
    for k in range(nb + 1):
        out[k] = (k * D) // nb
    return out


@njit(cache=True)
def _sym_product(A, B, out, bounds):
    r"""``out = A @ B.T`` for a product known to be symmetric: only the upper block rows
    :math:`A_k B_{k:}^\top` are multiplied (nb(nb+1)/2 of nb^2 blocks) and mirrored, so
    ``out`` is exactly symmetric. ``A``, ``B``: (n, K) C-contiguous."""
    for k in range(bounds.size - 1):
        a, b = bounds[k], bounds[k + 1]
        blk = np.dot(A[a:b], B[a:].T)
        for i in range(b - a):
            for j in range(blk.shape[1]):
                out[a + i, a + j] = blk[i, j]
                out[a + j, a + i] = blk[i, j]


@njit(cache=True)
def _quad_forms(Xt, M, bounds, q):
    r""":math:`q_\mu = x_\mu^\top Mx_\mu` for symmetric ``M`` from ``Xt`` (D, P): per block
    row k, :math:`(M_{kk}, 2M_{k,>k})\,X^\top_{k:}`, then the column sums against
    :math:`X^\top_k` (about half the flops of :math:`XM`)."""
    D, P = Xt.shape
    q[:] = 0.0
    for k in range(bounds.size - 1):
        a, b = bounds[k], bounds[k + 1]
        Mk = np.empty((b - a, D - a))
        for i in range(b - a):
            for j in range(D - a):
                Mk[i, j] = M[a + i, a + j] * (1.0 if j < b - a else 2.0)
        Wk = np.dot(Mk, Xt[a:])
        for i in range(b - a):
            for mu in range(P):
                q[mu] += Xt[a + i, mu] * Wk[i, mu]


@njit(cache=True)
def _residual(X, y, wbar, M, alpha, eps, model, wbar0, M0):
    """Residual of the reduced model (``model`` 1: linearised) on ``(X, y)``; ``M``
    symmetric. ``wbar0``, ``M0`` are unused (kept for the callers' signature)."""
    q = np.empty(X.shape[0])
    _quad_forms(np.ascontiguousarray(X.T), M, _bounds(X.shape[1]), q)
    lin = np.dot(X, wbar)
    if model == 1:
        return alpha * lin + alpha * eps * q - y
    return alpha * lin + 0.5 * alpha * eps * q - y


@njit(cache=True)
def _population_C(wbar, M, alpha, eps, wbar0, M0, T, centred):
    D = wbar.shape[0]
    if centred:
        we = wbar - wbar0
        A = alpha * eps * (M - M0) - T
    else:
        we = wbar.copy()
        A = alpha * eps * M - T
    C = A / (D * D)
    trA = np.trace(A)
    for j in range(D):
        C[j, j] += trA / (2.0 * D * D)
    return alpha * we / D, C


@njit(cache=True)
def reduced_steps(X, y, wbar, M, alpha, eps, gamma, nsteps, model, wbar0, M0, T, centred):
    r"""Advance ``(wbar, M)`` in place by ``nsteps`` GD steps; return the last train loss.

    ``X`` (P, D), ``y`` (P,) the effective labels (``y + f_0`` for the centred network
    loss; the linearised model's state is the displacement, its labels ``y`` only).
    ``model``: 0 network, 1 linearised, 2 population (``X``, ``y`` unused, ``T`` the
    target matrix). Returns the train loss before the last step (population: ``nan``).

    Cost per step (models 0, 1): the quadratic forms :math:`x_\mu^\top Mx_\mu` and
    :math:`\hat C` are symmetric, so each is formed from the upper block rows only
    (:func:`_quad_forms`, :func:`_sym_product`; about :math:`(1+1/n_b)PD^2` flops each
    instead of :math:`2PD^2`), plus :math:`\hat CM` and :math:`\hat CM\hat C`
    (:math:`\approx3D^3`). Work arrays are allocated once per call; ``M`` is kept exactly
    symmetric.
    """
    D = wbar.shape[0]
    P = X.shape[0]
    loss = np.nan
    half = 1.0 if model == 1 else 0.5
    bounds = _bounds(D)
    Xt = np.ascontiguousarray(X.T)
    Xe = np.empty((D, P))
    q = np.empty(P)
    C = np.empty((D, D))
    CMC = np.empty((D, D))
    ge = gamma * eps
    for _ in range(nsteps):
        if model == 2:
            g, C = _population_C(wbar, M, alpha, eps, wbar0, M0, T, centred)
        else:
            _quad_forms(Xt, M, bounds, q)
            e = alpha * np.dot(wbar, Xt) + (half * alpha * eps) * q - y
            loss = np.mean(e * e)
            ep = e / P
            g = np.dot(Xt, ep)
            for j in range(D):
                for mu in range(P):
                    Xe[j, mu] = Xt[j, mu] * ep[mu]
            _sym_product(Xe, Xt, C, bounds)
        if model == 1:
            # linearised: d(dw) = -gamma (g + eps C wbar0); dS = -gamma(sym(wbar0 g^T) + eps sym(M0 C))
            CM0 = np.dot(C, M0)
            Cw0 = np.dot(C, wbar0)
            for i in range(D):
                for j in range(i, D):
                    v = M[i, j] - gamma * (0.5 * (wbar0[i] * g[j] + g[i] * wbar0[j])
                                           + 0.5 * eps * (CM0[i, j] + CM0[j, i]))
                    M[i, j] = v
                    M[j, i] = v
            for i in range(D):
                wbar[i] -= gamma * (g[i] + eps * Cw0[i])
        else:
            # BMB = M - ge(CM + MC) + ge^2 CMC, B = I - ge C; then the rank-2 terms in g
            CM = np.dot(C, M)
            _sym_product(CM, C, CMC, bounds)
            Bw = wbar - ge * np.dot(C, wbar)
            for i in range(D):
                for j in range(i, D):
                    v = (M[i, j] - ge * (CM[i, j] + CM[j, i]) + ge * ge * CMC[i, j]
                         - gamma * (g[i] * Bw[j] + Bw[i] * g[j]) + gamma * gamma * g[i] * g[j])
                    M[i, j] = v
                    M[j, i] = v
            for i in range(D):
                wbar[i] = Bw[i] - gamma * g[i]
    return loss


def population_loss(wbar, M, beta, alpha, eps, s=1.0, wbar0=None, M0=None, model=0):
    r"""Exact population test loss and its terms :math:`(t_1,t_2,t_3)` for a state.

    Centred when ``wbar0``/``M0`` are given (the state enters as differences). For the
    linearised model (``model=1``, state :math:`(\Delta\bar w, S)`) the quadratic matrix
    is :math:`2S`.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.order_dynamics import population_loss
    >>> D = 4
    >>> beta = np.ones(D)
    >>> loss, terms = population_loss(np.zeros(D), np.zeros((D, D)), beta, alpha=1.0, eps=0.1)
    >>> round(loss, 6), round(3 / 4 * (beta @ beta / D) ** 2, 6)   # f = 0: the loss is E[y^2]
    (0.75, 0.75)
    """
    from kernelphase.lazy_rich import loss_terms_function
    fn = loss_terms_function()
    D = beta.shape[0]
    if model == 1:
        we, Me = wbar, 2.0 * M
    else:
        we = wbar if wbar0 is None else wbar - wbar0
        Me = M if M0 is None else M - M0
    b2 = float(beta @ beta)
    t = fn(float(alpha), float(eps), float(D), float(s), b2, float(np.trace(Me)),
           float(beta @ Me @ beta), float(np.sum(Me * Me)), float(we @ we))
    return float(sum(t)), tuple(float(v) for v in t)


def run_order_dynamics(X, y, f0, wbar0, M0, beta, alpha, eps, lr, N, steps,
                       model="network", centred=True, s=1.0, record_every=10,
                       progress=False, callback=None):
    r"""Run the reduced dynamics and record train/test loss every ``record_every`` steps.

    Parameters
    ----------
    X, y : ndarray
        Training inputs (P, D) in convention-A form and labels (P,).
    f0 : ndarray
        Network output at initialisation on ``X`` (used when ``centred``).
    wbar0, M0 : ndarray
        Initial statistics of the weights.
    lr, N : float, int
        Learning rate :math:`\eta` and width; :math:`\gamma = 2\eta\alpha/N`.
    model : {"network", "linearised", "population"}

    Returns
    -------
    DynamicsResult

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.order_dynamics import run_order_dynamics
    >>> rng = np.random.default_rng(0)
    >>> D, P, N = 5, 20, 10
    >>> X = rng.standard_normal((P, D)) / np.sqrt(D)
    >>> beta = rng.standard_normal(D)
    >>> y = 0.5 * (X @ beta) ** 2
    >>> W = rng.standard_normal((N, D))
    >>> wbar0, M0 = W.mean(0), W.T @ W / N
    >>> f0 = X @ wbar0 + 0.5 * 0.1 * np.einsum("pi,ij,pj->p", X, M0, X)
    >>> r = run_order_dynamics(X, y, f0, wbar0, M0, beta, alpha=1.0, eps=0.1, lr=1.0, N=N,
    ...                        steps=200, record_every=100)
    >>> r.epochs.tolist(), bool(r.train_loss[-1] < r.train_loss[0])
    ([0, 100, 200], True)
    """
    from threadpoolctl import threadpool_limits
    from kernelphase._checks import check_choice, check_int, check_range
    from kernelphase.progress import progress as pbar
    check_choice("model", model, tuple(MODELS))
    check_int("steps", steps, 0, 10**9)
    check_int("record_every", record_every, 1)
    if steps // record_every + 1 > 10**6:
        raise ValueError(f"steps={steps} with record_every={record_every} gives more than "
                         f"1e6 records; raise record_every")
    check_range("lr", lr, 0, 1e12, lo_open=True)
    check_range("alpha", alpha, 0, 1e6, lo_open=True)
    check_range("eps", eps, 0, 1e6)
    check_range("s", s, 0, 1e6, lo_open=True)
    check_int("N", N, 1)
    mcode = MODELS[model]
    X = np.ascontiguousarray(X, dtype=float)
    D = X.shape[1]
    gamma = 2.0 * lr * alpha / N
    T = s * np.outer(beta, beta)
    if model == "linearised":
        state = OrderState(np.zeros(D), np.zeros((D, D)))
        yeff = np.asarray(y, float) - (0.0 if centred else f0)
    else:
        state = OrderState(np.array(wbar0, float), np.array(M0, float))
        yeff = np.asarray(y, float) + (f0 if centred else 0.0)
    wb0 = np.array(wbar0, float)
    Mz = np.array(M0, float)
    cen = centred if model != "linearised" else False

    def _test(st):
        if model == "linearised":
            if centred:
                return population_loss(st.wbar, st.M, beta, alpha, eps, s, model=1)
            return population_loss(wb0 + st.wbar, Mz + 2.0 * st.M, beta, alpha, eps, s)
        return population_loss(st.wbar, st.M, beta, alpha, eps, s,
                               wb0 if cen else None, Mz if cen else None)

    nrec = steps // record_every + 1
    epochs = np.zeros(nrec, int)
    tr = np.zeros(nrec)
    te = np.zeros(nrec)
    terms = np.zeros((nrec, 3))
    status = 0
    # the numba stepper calls BLAS on small matrices: one thread avoids oversubscription
    with threadpool_limits(1), np.errstate(over="ignore", invalid="ignore"):
        for r in pbar(range(nrec), total=nrec, desc=f"reduced {model}", enabled=progress):
            if r > 0:
                reduced_steps(X, yeff, state.wbar, state.M, float(alpha), float(eps), gamma,
                              record_every, mcode, wb0, Mz, T, cen)
            epochs[r] = r * record_every
            if mcode == 2:
                tr[r] = np.nan
            else:
                e = _residual(X, yeff, state.wbar, state.M, float(alpha), float(eps), mcode, wb0, Mz)
                tr[r] = float(np.mean(e * e))
            try:
                te[r], terms[r] = _test(state)
            except (OverflowError, FloatingPointError, ZeroDivisionError):
                te[r], terms[r] = np.inf, np.nan
            if callback is not None:
                callback(r, state)
            if not (np.isfinite(te[r]) and np.all(np.isfinite(state.M))):
                status = 6
                epochs, tr, te, terms = epochs[:r + 1], tr[:r + 1], te[:r + 1], terms[:r + 1]
                break
    return DynamicsResult(epochs=epochs, train_loss=tr, test_loss=te, terms=terms,
                          wbar=state.wbar, M=state.M, residual=float(tr[-1]),
                          status=status, message=status_message(status),
                          params=dict(alpha=alpha, eps=eps, lr=lr, N=N, steps=steps,
                                      model=model, centred=centred, s=s))


@njit(cache=True)
def readout_steps(X, y, W, a, alpha, eps, gamma, nsteps, train_readouts):
    r"""Advance ``(W, a)`` in place by ``nsteps`` exact GD steps with trained read-outs.

    Network :math:`f = \frac\alpha N\sum_ia_i\varphi(w_i\cdot x)
    = \alpha\,\bar w_a\cdot x + \frac{\alpha\varepsilon}2x^\top M_ax` with
    :math:`\bar w_a = W^\top a/N`, :math:`M_a = W^\top\mathrm{diag}(a)W/N`. On
    :math:`L = \frac1P\sum_\mu e_\mu^2` one step is, with :math:`\gamma = 2\eta\alpha/N` and
    :math:`g,\hat C` built from the residual of :math:`(\bar w_a, M_a)` alone,

    .. math::  w_i' = w_i - \gamma a_i(g + \varepsilon\hat Cw_i),\qquad
               a_i' = a_i - \gamma\big(g\cdot w_i + \tfrac\varepsilon2w_i^\top\hat Cw_i\big).

    The map of :math:`w_i` depends on :math:`a_i`, and :math:`a_i'` on
    :math:`w_i^\top\hat Cw_i`: neurons with equal read-outs share one affine map (so a
    frozen read-out vector with ``K`` distinct values closes on ``K`` copies of
    :math:`(\bar w, M)`), but trained read-outs drift apart neuron by neuron and no finite
    set of moments closes. The state is then :math:`(a, W)` itself; the order parameters
    still give the residual and the exact test loss. ``y``: effective labels
    (``y + f_0`` for the centred loss). ``train_readouts=False`` freezes ``a``. Cost per
    step :math:`O(PD^2 + ND^2)`. Returns the train loss before the last step.
    """
    N, D = W.shape
    P = X.shape[0]
    loss = np.nan
    for _ in range(nsteps):
        wbar = np.dot(a, W) / N
        M = np.dot(W.T, W * a.reshape(N, 1)) / N
        e = _residual(X, y, wbar, M, alpha, eps, 0, wbar, M)
        loss = np.mean(e * e)
        g = np.dot(e, X) / P
        C = np.dot((X * e.reshape(P, 1)).T, X) / P
        WC = np.dot(W, C)                   # row i: (C w_i)^T, C symmetric
        for i in range(N):
            da = 0.0
            if train_readouts:
                for j in range(D):
                    da += W[i, j] * (g[j] + 0.5 * eps * WC[i, j])
            ai = a[i]
            for j in range(D):
                W[i, j] -= gamma * ai * (g[j] + eps * WC[i, j])
            a[i] = ai - gamma * da
    return loss


def readout_order_parameters(W, a):
    r""":math:`(\bar w_a, M_a) = (W^\top a/N,\ W^\top\mathrm{diag}(a)W/N)`: the network
    :math:`\frac\alpha N\sum_ia_i\varphi(w_i\cdot x)` is
    :math:`\alpha\bar w_a\cdot x + \frac{\alpha\varepsilon}2x^\top M_ax`, so the test-loss
    decomposition :func:`population_loss` stays exact in them with trained read-outs.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.order_dynamics import readout_order_parameters
    >>> W = np.array([[1.0, 0.0], [0.0, 2.0]]); a = np.array([1.0, -1.0])
    >>> wbar, M = readout_order_parameters(W, a)
    >>> wbar, M
    (array([ 0.5, -1. ]), array([[ 0.5,  0. ],
           [ 0. , -2. ]]))
    """
    W = np.asarray(W, float)
    a = np.asarray(a, float)
    N = W.shape[0]
    return W.T @ a / N, (W.T * a) @ W / N
