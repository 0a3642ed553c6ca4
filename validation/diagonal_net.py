r"""Diagonal linear nets with large initialisation and weight decay (Lyu et al. 2023, Sec. 3.2.3).

Model :math:`f(x)=\langle u\odot u-v\odot v,x\rangle`, loss
:math:`\frac1n\sum_i\ell(y_if_i)+\frac\lambda2(\|u\|^2+\|v\|^2)`, logistic
:math:`\ell(z)=\ln(1+e^{-z})` or exponential :math:`e^{-z}`, start :math:`u=v=a\mathbf 1`.

Two integrators of the same dynamics:

* :func:`diagonal_gd`: plain full-batch gradient descent on :math:`(u,v)` (``2d`` numbers);
* :func:`diagonal_flow`: the exact gradient flow through its ``n``-dimensional reduction
  (:func:`kernelphase.dichotomy.diagonal_net_flow`): :math:`G=X^\top\beta`,
  :math:`\dot\beta=\ell'(f)/n`, integrated with an adaptive stiff solver (LSODA), which takes
  few steps where GD needs :math:`10^5`–:math:`10^6`. GD with step :math:`\eta` approximates the
  flow at :math:`t=\eta\times\text{steps}`; the tests check the two agree.

Depth (issue 15): ``depth=L`` gives :math:`w=u^{\odot L}-v^{\odot L}`, the same loss and
start; the flow's reduction is :func:`kernelphase.dichotomy.diagonal_net_flow` with ``L``
(:math:`G=X^\top\beta`, :math:`\dot\beta=e^{-(L-2)\lambda t}\ell'(f)/n`). ``depth=2`` runs
exactly the code of the depth-2 net.

Initialisation scale: ``init="unit"`` (the authors' code) uses :math:`a=\alpha/\sqrt{2d}`,
so :math:`\|\theta(0)\|=\alpha`; ``init="ones"`` (the paper's :math:`\bar\theta=(\mathbf1,\mathbf1)`)
uses :math:`a=\alpha`.
"""
import functools
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase._checks import check_choice, check_int, check_positive, check_range
from kernelphase.results import Result, status_message

__all__ = ["sparse_dataset", "misgrok_dataset", "init_scale", "diagonal_gd", "diagonal_flow",
           "FlowTrajectory", "DepthFlowTrajectory", "GDResult", "misgrok_population_accuracy",
           "flow_in_segments"]


def sparse_dataset(d, n, n_test, k=3, seed=0):
    r"""x uniform on :math:`\{\pm1\}^d`, :math:`y=\mathrm{sign}\langle w^*,x\rangle`, w* k-sparse with
    :math:`\pm1` entries on the first k coordinates (k odd, so no ties). Returns
    ``(X, y, X_test, y_test, w_star)``.

    Examples
    --------
    >>> X, y, X_test, y_test, w_star = sparse_dataset(10, 6, 4, k=3, seed=0)
    >>> X.shape, X_test.shape, int(np.count_nonzero(w_star))
    ((6, 10), (4, 10), 3)
    >>> bool(np.all(y == np.sign(X @ w_star)) and np.all(y_test == np.sign(X_test @ w_star)))
    True
    """
    d = check_int("d", d, 1)
    n = check_int("n", n, 1)
    n_test = check_int("n_test", n_test, 1)
    k = check_int("k", k, 1, d)
    if k % 2 == 0:
        raise ValueError(f"k={k} must be odd so that sign(<w*, x>) has no ties")
    from kernelphase.solvers.matrix_completion import check_memory
    check_memory(f"data d={d}, n={n}, n_test={n_test}", 8.0 * 2 * (n + n_test) * d)
    rng = np.random.default_rng(seed)
    w_star = np.zeros(d)
    w_star[:k] = rng.choice((-1.0, 1.0), size=k)
    X = rng.choice((-1.0, 1.0), size=(n + n_test, d))
    y = np.sign(X[:, :k] @ w_star[:k])
    return X[:n], y[:n], X[n:], y[n:], w_star


def misgrok_dataset(d, n, n_test, gamma=25.0, seed=0):
    r"""L2-separated data with gap :math:`\gamma` (Fig. 1b): :math:`w^*` a random unit vector,
    :math:`z\sim\mathcal N(0,I_d)`, :math:`y=\mathrm{sign}\langle z,w^*\rangle`,
    :math:`x=z+\frac\gamma2yw^*`. Returns ``(X, y, X_test, y_test, w_star)``.

    Examples
    --------
    >>> X, y, X_test, y_test, w_star = misgrok_dataset(5, 200, 10, gamma=4.0, seed=0)
    >>> X.shape, round(float(np.linalg.norm(w_star)), 4)
    ((200, 5), 1.0)
    >>> bool(np.all(y * (X @ w_star) >= 4.0 / 2))     # margin |s| + gamma/2 along w*
    True
    """
    d = check_int("d", d, 1)
    n = check_int("n", n, 1)
    n_test = check_int("n_test", n_test, 1)
    gamma = check_range("gamma", gamma, 0.0)
    from kernelphase.solvers.matrix_completion import check_memory
    check_memory(f"data d={d}, n={n}, n_test={n_test}", 8.0 * 2 * (n + n_test) * d)
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal(d)
    w_star /= np.linalg.norm(w_star)
    Z = rng.standard_normal((n + n_test, d))
    y = np.where(Z @ w_star >= 0, 1.0, -1.0)
    # X = Z + (gamma/2) y w*^T, in place and by row blocks (the same floating-point operations
    # as the one-line form, without its two extra (n + n_test) x d temporaries)
    for i in range(0, len(y), 256):
        Z[i:i + 256] += 0.5 * gamma * y[i:i + 256, None] * w_star[None, :]
    return Z[:n], y[:n], Z[n:], y[n:], w_star


def misgrok_population_accuracy(w, w_star, gamma):
    r"""Exact population accuracy of the linear classifier ``sign<w, x>`` on the misgrokking
    distribution of :func:`misgrok_dataset` (derived here, issue 15).

    Write :math:`z=s\,w^*+z_\perp` with :math:`s\sim\mathcal N(0,1)`, :math:`y=\mathrm{sign}\,s`,
    :math:`c=\langle w,w^*\rangle` and :math:`r=\|w-cw^*\|` (:math:`\|w^*\|=1`). Then
    :math:`y\langle w,x\rangle=c(|s|+\gamma/2)+r\xi` with :math:`\xi\sim\mathcal N(0,1)`
    independent of :math:`s`, so

    .. math:: \mathrm{acc}(w)=\mathbb E_{s}\big[\Phi\big(c(|s|+\gamma/2)/r\big)\big]
              =2\int_0^\infty\phi(s)\,\Phi\Big(\frac{c(s+\gamma/2)}{r}\Big)ds ,

    a one-dimensional integral (Gauss-Legendre on :math:`[0, 12]`); :math:`r=0` gives 1, 0
    or 1/2 (a tie counts as one half, as in
    :func:`kernelphase.solvers.margins.linear_accuracy`). It replaces a test set of
    :math:`n_{test}\times d` numbers (1.6 GB at the paper's d = 1e5, n_test = 2000).

    Examples
    --------
    The teacher itself classifies every point; at gamma = 0 a classifier at angle
    :math:`\theta` to :math:`w^*` errs with probability :math:`\theta/\pi` (here
    :math:`\pi/4`, accuracy 3/4):

    >>> w_star = np.array([1.0, 0.0, 0.0])
    >>> misgrok_population_accuracy(w_star, w_star, 4.0)
    1.0
    >>> round(misgrok_population_accuracy([1.0, 1.0, 0.0], w_star, 0.0), 4)
    0.75
    """
    from scipy.special import ndtr
    w = np.asarray(w, float)
    w_star = np.asarray(w_star, float)
    ws = w_star / np.linalg.norm(w_star)
    c = float(w @ ws)
    r = float(np.linalg.norm(w - c * ws))
    if r == 0.0 or (c != 0.0 and abs(c) / r > 1e12):
        return 1.0 if c > 0 else (0.0 if c < 0 else 0.5)
    x, wt = np.polynomial.legendre.leggauss(200)
    s = 6.0 * (x + 1.0)                       # [0, 12]
    phi = np.exp(-0.5 * s * s) / math.sqrt(2 * math.pi)
    return float(2.0 * 6.0 * np.sum(wt * phi * ndtr(c * (s + 0.5 * gamma) / r)))


def init_scale(alpha, d, init="unit"):
    r"""Per-coordinate initial value a of u and v.

    Examples
    --------
    ``"unit"``: :math:`\|\theta(0)\|=\sqrt{2d}\,a=\alpha`; ``"ones"``: :math:`a=\alpha`.

    >>> a = init_scale(8.0, 50)
    >>> round(a, 4), round(math.sqrt(2 * 50) * a, 4), init_scale(8.0, 50, "ones")
    (0.8, 8.0, 8.0)
    """
    alpha = check_positive("alpha", alpha)
    check_choice("init", init, ("unit", "ones"))
    return alpha / math.sqrt(2 * d) if init == "unit" else alpha


def _loss_derivative(kind):
    """Return (loss(z), dloss/dz, d2loss/dz2) of the margin z = y f, numerically stable."""
    check_choice("loss", kind, ("logistic", "exponential"))
    if kind == "logistic":
        def sig(z):  # 1 / (1 + e^{z})
            return np.exp(-np.logaddexp(0.0, z))
        return (lambda z: np.logaddexp(0.0, -z), lambda z: -sig(z),
                lambda z: sig(z) * (1.0 - sig(z)))
    return (lambda z: np.exp(-z), lambda z: -np.exp(-z), lambda z: np.exp(-z))


@dataclass(frozen=True)
class GDResult(Result):
    """Final ``u``, ``v`` of :func:`diagonal_gd` and ``history`` (``(step, w)`` pairs).

    Unpacks as ``u, v, history = diagonal_gd(...)``. ``status`` 6: the iterates became
    non-finite (step too large); the run stopped there.
    """
    u: np.ndarray
    v: np.ndarray
    history: list
    status: int
    message: str
    params: Mapping = field(default_factory=dict)

    def __iter__(self):
        return iter((self.u, self.v, self.history))


def diagonal_gd(X, y, alpha, lam, lr, steps, init="unit", loss="logistic", record_every=None,
                depth=2):
    r"""Full-batch GD with weight decay on :math:`(u,v)`. Returns a :class:`GDResult`.

    One step: :math:`u\leftarrow u-\eta(Lg\odot u^{L-1}+\lambda u)`,
    :math:`v\leftarrow v-\eta(-Lg\odot v^{L-1}+\lambda v)`, :math:`g=X^\top\ell'(yf)\,y/n`,
    :math:`w=u^L-v^L` (``depth`` L, 2 to 8). ``history`` holds ``(step, w)`` every
    ``record_every`` steps.

    Examples
    --------
    With a small step, GD after ``steps`` steps is the gradient flow at
    :math:`t=\eta\times\text{steps}` (here 2.0):

    >>> X, y, *_ = sparse_dataset(20, 8, 4, seed=0)
    >>> u, v, history = diagonal_gd(X, y, 4.0, 1e-2, lr=1e-3, steps=2000, record_every=1000)
    >>> [step for step, _ in history], bool(np.allclose(history[-1][1], u * u - v * v))
    ([0, 1000, 2000], True)
    >>> w_flow = diagonal_flow(X, y, 4.0, 1e-2, [2.0]).w(0)
    >>> round(float(history[-1][1][0]), 3), round(float(w_flow[0]), 3)
    (0.293, 0.293)
    >>> bool(np.max(np.abs(history[-1][1] - w_flow)) < 1e-3)
    True
    """
    from kernelphase.dichotomy import check_depth
    L = check_depth(depth)
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, d = X.shape
    a = init_scale(alpha, d, init)
    lam = check_range("lam", lam, 0.0)
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, 0, 10**9)
    if record_every:
        record_every = check_int("record_every", record_every, 1)
    _, dl, _ = _loss_derivative(loss)
    u = np.full(d, a)
    v = np.full(d, a)
    hist = []
    status, detail = 0, None
    with np.errstate(over="ignore", invalid="ignore"):
        for s in range(steps + 1):
            w = u * u - v * v if L == 2 else u**L - v**L
            if not np.all(np.isfinite(w)):
                status, detail = 6, f"non-finite weights at step {s}"
                break
            if record_every and s % record_every == 0:
                hist.append((s, w.copy()))
            if s == steps:
                break
            g = X.T @ (dl(y * (X @ w)) * y) / n
            if L == 2:
                u, v = u - lr * (2 * g * u + lam * u), v - lr * (-2 * g * v + lam * v)
            else:
                u, v = (u - lr * (L * g * u**(L - 1) + lam * u),
                        v - lr * (-L * g * v**(L - 1) + lam * v))
    params = dict(alpha=alpha, lam=lam, lr=lr, steps=steps, init=init, loss=loss)
    if L != 2:
        params["depth"] = L
    return GDResult(u=u, v=v, history=hist, status=status,
                    message=status_message(status, detail), params=params)


@functools.lru_cache(maxsize=None)
def _flow_functions(L=2):
    """numpy functions generated from the symbolic closed form (w, dw/dG, |theta|^2, and the
    time weight of dbeta/dt, 1 at L = 2)."""
    import sympy as sp
    from kernelphase.dichotomy import SYMBOLS, diagonal_net_flow
    s = SYMBOLS
    flow = diagonal_net_flow(L)
    args = (s["a"], s["lam"], s["t"], s["G"])
    mk = lambda e: sp.lambdify(args, e, modules="numpy")
    if L == 2:
        return mk(flow["w"]), mk(sp.diff(flow["w"], s["G"])), mk(flow["sq_norm"])
    tw = sp.lambdify((s["lam"], s["t"]), flow["time_weight"], modules="numpy")
    return (mk(flow["w"]), mk(sp.diff(flow["w"], s["G"])), mk(flow["sq_norm"]), tw)


@dataclass(frozen=True)
class FlowTrajectory(Result):
    """Gradient-flow trajectory of a diagonal net, evaluated at the requested times.

    Attributes: ``t`` (continuous time), ``beta`` (n-dim dual state, one row per time),
    ``a``, ``lam``, ``X``, ``depth``; methods :meth:`w` and :meth:`sq_norm` evaluate the
    closed form.
    ``status`` 0: integrated; 6: the solution overflowed; 8: the ODE solver failed
    (``beta`` is NaN then).
    """
    t: np.ndarray
    beta: np.ndarray
    a: float
    lam: float
    X: np.ndarray
    status: int
    message: str
    params: Mapping = field(default_factory=dict)
    depth: int = 2

    @property
    def success(self):
        return self.status == 0

    def w(self, i):
        wf = _flow_functions(self.depth)[0]
        with np.errstate(over="ignore", invalid="ignore"):
            return wf(self.a, self.lam, self.t[i], self.X.T @ self.beta[i])

    def sq_norm(self, i):
        nf = _flow_functions(self.depth)[2]
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.sum(nf(self.a, self.lam, self.t[i], self.X.T @ self.beta[i])))


def diagonal_flow(X, y, alpha, lam, t_eval, init="unit", loss="logistic", rtol=1e-8,
                  atol=1e-12, depth=2, method=None, start=None):
    r"""Exact gradient flow of the diagonal net through its n-dimensional reduction.

    .. math:: w(t)=-2a^2e^{-2\lambda t}\sinh\big(4X^\top\beta(t)\big),\qquad
              \dot\beta=\frac1n\,\ell'(y\odot Xw)\odot y,\quad\beta(0)=0 .

    Parameters
    ----------
    X, y : training data; t_eval : increasing times (continuous time :math:`t=\eta\cdot` steps).
    depth : int
        L in 2..8; for L > 2 see :func:`_diagonal_flow_depth` (the same reduction with
        :math:`\dot\beta` weighted by :math:`e^{-(L-2)\lambda t}`, restarted piecewise), which
        returns a :class:`DepthFlowTrajectory`.
    method : {None, "LSODA", "BDF", "Radau"}
        scipy's stiff integrator; None: LSODA at depth 2, BDF at depth > 2 (issue 15: at
        depth 4 from ``init="ones"``, alpha >= 64, LSODA's stiffness switching stalls for
        more than 10 minutes where BDF takes 14 s; at alpha = 32 the two agree to 1e-3 in
        the transition offset).
    start : tuple, optional
        Continue from a state of an earlier call instead of the initialisation:
        ``(t0, beta0)`` at depth 2, ``(t0, u0, v0)`` at depth > 2 (a restart of the
        reduction); every time in ``t_eval`` must be at least ``t0``. See
        :func:`flow_in_segments`.

    Examples
    --------
    At :math:`t=0`, :math:`w=0` and :math:`\|\theta\|^2=\alpha^2` (``init="unit"``); by
    :math:`t=2` the flow separates the training set:

    >>> X, y, *_ = sparse_dataset(20, 8, 4, seed=0)
    >>> fl = diagonal_flow(X, y, 4.0, 1e-2, [0.0, 2.0])
    >>> fl.status, float(np.abs(fl.w(0)).max()), round(fl.sq_norm(0), 4)
    (0, 0.0, 16.0)
    >>> float(np.mean(y * (X @ fl.w(1)) > 0))           # training accuracy at t = 2
    1.0
    """
    ODE_METHODS = (None, "LSODA", "BDF", "Radau")
    check_choice("method", method, ODE_METHODS)
    from kernelphase.dichotomy import check_depth
    if check_depth(depth) != 2:
        return _diagonal_flow_depth(X, y, alpha, lam, t_eval, init, loss, rtol, atol,
                                    int(depth), method or "BDF", start)
    method = method or "LSODA"
    from scipy.integrate import solve_ivp
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, d = X.shape
    a = init_scale(alpha, d, init)
    lam = check_range("lam", lam, 0.0)
    t_eval = _check_times(t_eval)
    t0, beta0 = (0.0, np.zeros(n)) if start is None else _check_start(start, t_eval, (n,))
    wf, dwf, _ = _flow_functions()
    _, dl, d2l = _loss_derivative(loss)

    def rhs(t, beta):
        w = wf(a, lam, t, X.T @ beta)
        return dl(y * (X @ w)) * y / n

    def jac(t, beta):
        G = X.T @ beta
        z = y * (X @ wf(a, lam, t, G))
        # d beta_i/dt = dl(z_i) y_i / n ; dz_i/dbeta_j = y_i sum_k X_ik w'(G_k) X_jk
        M = (X * dwf(a, lam, t, G)) @ X.T
        return (d2l(z) * y / n)[:, None] * (y[:, None] * M)

    a = float(a)
    if not math.isfinite(2.0 * a * a):
        return FlowTrajectory(t_eval, np.full((len(t_eval), n), np.nan), a, lam, X, 6,
                              status_message(6, f"initial scale a={a:g} overflows a^2"))
    try:
        with np.errstate(over="raise", invalid="raise"):
            sol = solve_ivp(rhs, (t0, float(t_eval[-1])), beta0, method=method,
                            jac=jac, t_eval=t_eval, rtol=rtol, atol=atol)
    except (OverflowError, FloatingPointError) as exc:
        return FlowTrajectory(t_eval, np.full((len(t_eval), n), np.nan), a, lam, X, 6,
                              status_message(6, f"overflow in the flow ({exc})"))
    if not sol.success:
        return FlowTrajectory(t_eval, np.full((len(t_eval), n), np.nan), a, lam, X, 8,
                              status_message(8, f"{method}: {sol.message}"))
    return FlowTrajectory(t_eval, sol.y.T, a, lam, X, 0, status_message(0))


def _check_start(start, t_eval, *shapes):
    """``(t0, arrays...)`` of a continued flow: finite, the given shapes, t0 <= t_eval[0]."""
    t0, *arrays = start
    t0 = float(t0)
    if not (math.isfinite(t0) and 0.0 <= t0 <= t_eval[0]):
        raise ValueError(f"start time t0={t0!r} must be finite, >= 0 and at most the first "
                         f"time of t_eval ({t_eval[0]!r})")
    arrays = [np.asarray(a, float) for a in arrays]
    if len(arrays) != len(shapes) or any(a.shape != sh or not np.all(np.isfinite(a))
                                         for a, sh in zip(arrays, shapes)):
        raise ValueError(f"start={start!r} must be (t0, {len(shapes)} finite arrays of shapes "
                         f"{shapes})")
    return (t0, *arrays)


def _check_times(t_eval):
    t_eval = np.asarray(t_eval, float)
    if (t_eval.ndim != 1 or t_eval.size < 1 or not np.all(np.isfinite(t_eval))
            or np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0):
        raise ValueError(f"t_eval={t_eval!r} must be a non-empty increasing array of finite "
                         f"times >= 0")
    return t_eval


@functools.lru_cache(maxsize=None)
def _depth_u_functions(L):
    """numpy u(a, lam, t, G) and du/dG from the symbolic depth-L closed form (v(G) = u(-G))."""
    import sympy as sp
    from kernelphase.dichotomy import SYMBOLS, diagonal_net_flow
    s = SYMBOLS
    u = diagonal_net_flow(L)["u"]
    args = (s["a"], s["lam"], s["t"], s["G"])
    return (sp.lambdify(args, u, modules="numpy"),
            sp.lambdify(args, sp.diff(u, s["G"]), modules="numpy"))


@dataclass(frozen=True)
class DepthFlowTrajectory(Result):
    """Gradient-flow trajectory of a depth-L (L > 2) diagonal net at the requested times.

    ``u``, ``v``: one row per time; :meth:`w` and :meth:`sq_norm` as for
    :class:`FlowTrajectory`. ``restarts``: segments of the piecewise reduction. ``status`` 0:
    integrated; 6: overflow; 8: the ODE solver failed (rows NaN from there on).
    """
    t: np.ndarray
    u: np.ndarray
    v: np.ndarray
    lam: float
    depth: int
    restarts: int
    status: int
    message: str
    params: Mapping = field(default_factory=dict)

    @property
    def success(self):
        return self.status == 0

    def w(self, i):
        return self.u[i] ** self.depth - self.v[i] ** self.depth

    def sq_norm(self, i):
        return float(np.sum(self.u[i] ** 2 + self.v[i] ** 2))


#: a segment of the depth-L reduction ends when a base a^(2-L) +- L(L-2)G has fallen to this
#: fraction of its start (u or v grew by RESTART_RATIO^(-1/(L-2)) times e^(-lam t)); the state
#: G then cancels against a^(2-L) and would lose digits, so the reduction restarts there
RESTART_RATIO = 0.1
#: trial steps are kept where every base is at least this fraction of its start (see
#: _diagonal_flow_depth); below RESTART_RATIO, so accepted points never feel it
BASE_FLOOR = 1e-3


def _diagonal_flow_depth(X, y, alpha, lam, t_eval, init, loss, rtol, atol, L, method="BDF",
                         start=None):
    r"""Depth-L (L > 2) exact flow through the reduction of
    :func:`kernelphase.dichotomy.diagonal_net_flow`, piecewise in time.

    On a segment starting at :math:`t_0` from :math:`(u_0,v_0)` (per coordinate):
    :math:`u=e^{-\lambda s}(u_0^{2-L}+L(L-2)G)^{-1/(L-2)}`, :math:`v` with :math:`-G`,
    :math:`s=t-t_0`, :math:`G=X^\top\beta`,
    :math:`\dot\beta=e^{-(L-2)\lambda s}\,\ell'(y\odot Xw)\odot y/n`, :math:`\beta(t_0)=0`;
    ``method`` (BDF by default) with the analytic Jacobian. A segment ends (an event) when a base has shrunk to
    ``RESTART_RATIO`` of its start; the next starts from the current (u, v). So the cancellation
    :math:`u_0^{2-L}-|L(L-2)G|` never costs more than one digit.
    """
    from scipy.integrate import solve_ivp
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, d = X.shape
    a = float(init_scale(alpha, d, init))
    lam = check_range("lam", lam, 0.0)
    t_eval = _check_times(t_eval)
    fu, dfu = _depth_u_functions(L)
    _, dl, d2l = _loss_derivative(loss)
    params = dict(alpha=alpha, lam=lam, init=init, loss=loss, depth=L)
    U = np.full((len(t_eval), d), np.nan)
    V = np.full((len(t_eval), d), np.nan)

    def done(status, detail, restarts):
        return DepthFlowTrajectory(t_eval, U, V, lam, L, restarts, status,
                                   status_message(status, detail), params)

    if not (math.isfinite(a ** (2 * L - 2)) and a ** (2 - L) > 0):
        return done(6, f"initial scale a={a:g} overflows a^(2L-2) at depth {L}", 0)
    if start is None:
        au, av, t0 = np.full(d, a), np.full(d, a), 0.0
    else:
        t0, au, av = _check_start(start, t_eval, (d,), (d,))
    j, restarts = 0, 0       # next t_eval index to fill
    while j < len(t_eval):
        # a trial step of the stiff solver may overshoot the restart event and drive a base
        # a^(2-L) +- L(L-2)G negative (NaN in u or v); keep G where both bases are at least
        # BASE_FLOOR of their start. Accepted points stop at RESTART_RATIO > BASE_FLOOR, so
        # there the clip is inactive; a clipped trial step has a large error and is rejected.
        g_lo = -(1.0 - BASE_FLOOR) * au ** (2 - L) / (L * (L - 2))
        g_hi = (1.0 - BASE_FLOOR) * av ** (2 - L) / (L * (L - 2))

        def uv(t, beta, g_lo=g_lo, g_hi=g_hi):
            G = np.clip(X.T @ beta, g_lo, g_hi)
            return fu(au, lam, t - t0, G), fu(av, lam, t - t0, -G), G

        def rhs(t, beta):
            u, v, _ = uv(t, beta)
            return math.exp(-(L - 2) * lam * (t - t0)) * dl(y * (X @ (u**L - v**L))) * y / n

        def jac(t, beta):
            u, v, G = uv(t, beta)
            z = y * (X @ (u**L - v**L))
            dw = L * u**(L - 1) * dfu(au, lam, t - t0, G) + L * v**(L - 1) * dfu(av, lam, t - t0, -G)
            M = (X * dw) @ X.T
            return (math.exp(-(L - 2) * lam * (t - t0)) * d2l(z) * y / n)[:, None] * (y[:, None] * M)

        def shrink(t, beta):
            G = L * (L - 2) * (X.T @ beta)
            return min(np.min(1.0 + G * au ** (L - 2)), np.min(1.0 - G * av ** (L - 2))) \
                - RESTART_RATIO
        shrink.terminal = True
        shrink.direction = -1
        try:
            with np.errstate(over="raise", divide="raise", invalid="raise"):
                sol = solve_ivp(rhs, (t0, float(t_eval[-1])), np.zeros(n), method=method,
                                jac=jac, t_eval=t_eval[j:], rtol=rtol, atol=atol,
                                events=shrink)
        except (OverflowError, FloatingPointError, ZeroDivisionError) as exc:
            return done(6, f"overflow in the flow ({exc})", restarts)
        if sol.status == -1:
            return done(8, f"{method}: {sol.message}", restarts)
        m = len(sol.t)          # t_eval points reached in this segment (maybe none)
        for k in range(m):
            U[j + k], V[j + k], _ = uv(sol.t[k], sol.y[:, k])
        j += m
        if sol.status == 1:          # restart from the event
            te, be = sol.t_events[0][0], sol.y_events[0][0]
            au, av, _ = uv(te, be)
            t0 = float(te)
            restarts += 1
            if restarts > 100000:
                return done(8, "more than 1e5 restarts of the reduction", restarts)
    if not (np.all(np.isfinite(U)) and np.all(np.isfinite(V))):
        return done(6, "non-finite weights", restarts)
    return done(0, None, restarts)


def flow_in_segments(X, y, alpha, lam, t_eval, segments=10, checkpoint=None, progress=None,
                     **kw):
    r"""The exact flow of :func:`diagonal_flow` integrated in ``segments`` pieces of ``t_eval``,
    each started from the state at the end of the previous one, with a checkpoint after each.

    The state is :math:`(t,\beta)` at depth 2 and :math:`(t,u,v)` at depth > 2 (where a
    segment boundary is a restart of the reduction). A fresh and a resumed run integrate the
    same segments from the same states, so a resumed trajectory is bit-identical.

    Parameters
    ----------
    segments : int
        1 to ``len(t_eval)``.
    checkpoint : kernelphase.io.RunDir, optional
        Saves ``flow.npz`` (the rows so far) after each segment; on resume continues after the
        last saved segment.
    progress : bool or None
        A bar over the segments (None: on a terminal).
    **kw
        ``init``, ``loss``, ``rtol``, ``atol``, ``depth``, ``method`` of :func:`diagonal_flow`.

    Returns
    -------
    FlowTrajectory or DepthFlowTrajectory
        As :func:`diagonal_flow` over the whole of ``t_eval``; rows after a failed segment are
        NaN and its status is kept.

    Examples
    --------
    >>> X, y, *_ = sparse_dataset(40, 12, 10, seed=0)
    >>> t = np.linspace(1.0, 40.0, 8)
    >>> one = diagonal_flow(X, y, 4.0, 1e-2, t)
    >>> four = flow_in_segments(X, y, 4.0, 1e-2, t, segments=4)
    >>> bool(np.allclose(one.beta, four.beta, rtol=1e-5, atol=1e-9)), four.status
    (True, 0)
    """
    from kernelphase.progress import progress as bar
    t_eval = _check_times(t_eval)
    segments = check_int("segments", segments, 1, len(t_eval))
    deep = kw.get("depth", 2) != 2
    pieces = np.array_split(np.arange(len(t_eval)), segments)
    names = ("u", "v") if deep else ("beta",)
    rows, done, state, restarts = {k: [] for k in names}, 0, None, 0
    st = checkpoint.load("flow.npz") if checkpoint is not None else None
    if st is not None:
        done, restarts = int(st["segment"]), int(st["restarts"])
        rows = {k: list(st[k]) for k in names}
        state = (float(st["t_last"]), *(st[k][-1] for k in names))
    status = 0
    for k in bar(range(done, segments), total=segments - done, desc="flow segments",
                 enabled=progress):
        last = diagonal_flow(X, y, alpha, lam, t_eval[pieces[k]], start=state, **kw)
        for name in names:
            rows[name].extend(getattr(last, name))
        if last.status != 0:
            status = last.status
            break
        restarts += getattr(last, "restarts", 0) + (k > 0)
        state = (float(t_eval[pieces[k][-1]]), *(getattr(last, n)[-1] for n in names))
        if checkpoint is not None:
            checkpoint.save("flow.npz", segment=k + 1, restarts=restarts, t_last=state[0],
                            **{n: np.asarray(rows[n]) for n in names})
    n_rows = len(rows[names[0]])
    full = {n: np.full((len(t_eval), *np.shape(rows[n][0])), np.nan) for n in names}
    for n in names:
        full[n][:n_rows] = rows[n]
    message = last.message if status else status_message(0)
    init, loss = kw.get("init", "unit"), kw.get("loss", "logistic")
    X = np.asarray(X, float)
    if deep:
        L = int(kw["depth"])
        return DepthFlowTrajectory(t_eval, full["u"], full["v"], float(lam), L, restarts, status,
                                   message, dict(alpha=alpha, lam=lam, init=init, loss=loss,
                                                 depth=L))
    a = float(init_scale(alpha, X.shape[1], init))
    return FlowTrajectory(t_eval, full["beta"], a, float(lam), X, status, message)
