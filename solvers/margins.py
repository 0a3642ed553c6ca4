r"""Max-margin linear classifiers: the early (L2) and late (L1) predictors of a diagonal net.

Lyu et al. (2023), Sec. 3.2.3 and App. E: a diagonal linear net
:math:`f=\langle u\odot u-v\odot v,x\rangle` behaves first as its NTK max-margin SVM,
which for the linear NTK :math:`K(x,x')=8\langle x,x'\rangle` is the max-L2-margin
classifier (Cor. 3.6), and late as the max-L1-margin classifier (Cor. 3.7).

* L2: :math:`\min\frac12\|w\|_2^2` s.t. :math:`y_i\langle w,x_i\rangle\ge1`, solved in its
  dual :math:`\max_{\mu\ge0}\ \mathbf 1^\top\mu-\frac12\mu^\top Q\mu`,
  :math:`Q_{ij}=y_iy_j\langle x_i,x_j\rangle` (L-BFGS-B, then an exact solve on the
  support set), :math:`w=X^\top(\mu\odot y)`.
* L1: :math:`\min\|w\|_1` s.t. :math:`y_i\langle w,x_i\rangle\ge1`, a linear program in
  :math:`w=p-q`, :math:`p,q\ge0`, solved with HiGHS.

The residual is the largest violation of the KKT conditions (primal feasibility,
and for L2 the stationarity/complementarity of the dual), relative to 1.
"""
from dataclasses import dataclass

import numpy as np

from kernelphase.results import Result, status_message

__all__ = ["MarginResult", "l2_max_margin", "l1_max_margin", "linear_accuracy",
           "DepthMarginResult", "depth_max_margin", "diagonal_kkt_residual", "cosine"]




@dataclass(frozen=True)
class MarginResult(Result):
    """A max-margin classifier.

    Attributes
    ----------
    w : ndarray
        The solution of the min-norm problem (margin exactly 1); ``direction`` is it normalised.
    margin : float
        Geometric margin :math:`\\min_i y_i\\langle w,x_i\\rangle/\\|w\\|_p`.
    norm : str
        ``"l2"`` or ``"l1"``.
    """
    w: np.ndarray
    margin: float
    norm: str
    residual: float
    status: int
    message: str

    @property
    def direction(self):
        return self.w / np.linalg.norm(self.w)


def _check_data(X, y):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X.shape={X.shape} and y.shape={y.shape} must be (n, d) and (n,)")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must be finite (it holds NaN or inf)")
    if not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError("y must contain only the labels -1 and +1")
    return X, y


def _result(w, X, y, norm, extra_residual=0.0):
    scores = y * (X @ w)
    viol = max(0.0, 1.0 - float(scores.min()))
    residual = max(viol, extra_residual)
    size = np.linalg.norm(w, 1 if norm == "l1" else 2)
    status = 0 if residual < 1e-6 else 4
    return MarginResult(w=w, margin=float(scores.min() / size), norm=norm,
                        residual=residual, status=status, message=status_message(
                            status, None if status == 0 else "KKT residual above tolerance"))


def l2_max_margin(X, y, tol=1e-12):
    r"""Max-L2-margin (hard-margin SVM) linear classifier through the origin.

    Parameters
    ----------
    X : (n, d) array
    y : (n,) array of +-1

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.margins import l2_max_margin
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    >>> y = np.array([1.0, 1.0, -1.0])
    >>> r = l2_max_margin(X, y)
    >>> np.round(r.w, 6), round(r.margin, 6), r.converged
    (array([1., 1.]), 0.707107, True)
    """
    from scipy.optimize import minimize
    X, y = _check_data(X, y)
    Z = X * y[:, None]
    Q = Z @ Z.T
    n = len(y)
    res = minimize(lambda m: (0.5 * m @ Q @ m - m.sum(), Q @ m - 1.0), np.zeros(n),
                   jac=True, method="L-BFGS-B", bounds=[(0, None)] * n,
                   options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12})
    mu = np.maximum(res.x, 0.0)
    # polish: the active constraints hold with equality, Q_SS mu_S = 1
    support = mu > 1e-8 * max(mu.max(), 1e-300)
    for _ in range(20):
        mu_s = np.linalg.lstsq(Q[np.ix_(support, support)], np.ones(support.sum()),
                               rcond=None)[0]
        if np.all(mu_s > 0):
            cand = np.zeros(n)
            cand[support] = mu_s
            slack = Q @ cand - 1.0
            if slack.min() >= -tol ** 0.5:
                mu = cand
                break
            support |= slack < 0
        else:
            support[np.flatnonzero(support)[mu_s <= 0]] = False
    grad = Q @ mu - 1.0
    kkt = max(float(np.max(np.abs(grad[mu > 0]), initial=0.0)),
              float(max(0.0, -grad.min())))
    return _result(Z.T @ mu, X, y, "l2", kkt)


def l1_max_margin(X, y):
    r"""Max-L1-margin linear classifier: :math:`\min\|w\|_1` s.t. :math:`y_i\langle w,x_i\rangle\ge1`.

    Solved as a linear program with scipy's HiGHS.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.margins import l1_max_margin
    >>> X = np.array([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.5], [-1.0, -0.5]])
    >>> y = np.array([1.0, 1.0, -1.0, -1.0])
    >>> r = l1_max_margin(X, y)
    >>> np.round(r.w, 6), r.converged                # all weight on the one relevant coordinate
    (array([1., 0.]), True)
    """
    from scipy.optimize import linprog
    X, y = _check_data(X, y)
    n, d = X.shape
    Z = X * y[:, None]
    res = linprog(np.ones(2 * d), A_ub=-np.hstack([Z, -Z]), b_ub=-np.ones(n),
                  bounds=(0, None), method="highs")
    if res.status == 2:
        return MarginResult(w=np.zeros(d), margin=float("nan"), norm="l1", residual=np.inf,
                            status=5, message=status_message(5, "data are not linearly separable"))
    if res.status != 0:
        return MarginResult(w=np.zeros(d), margin=float("nan"), norm="l1", residual=np.inf,
                            status=8, message=status_message(8, res.message))
    return _result(res.x[:d] - res.x[d:], X, y, "l1")


def linear_accuracy(w, X, y):
    """Accuracy of ``sign(X w)``; a tie (score exactly 0) counts as one half.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.margins import linear_accuracy
    >>> X = np.array([[1.0], [-2.0], [0.0], [3.0]])
    >>> linear_accuracy(np.array([1.0]), X, np.array([1, -1, 1, -1]))   # 2 right, 1 tie, 1 wrong
    0.625
    """
    s = np.sign(np.asarray(X) @ np.asarray(w))
    return float(np.mean(np.where(s == 0, 0.5, s == np.asarray(y))))


def cosine(a, b):
    """Cosine of the angle between two vectors (0 if either is zero).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.margins import cosine
    >>> round(cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])), 6)
    0.707107
    >>> cosine(np.zeros(2), np.ones(2))
    0.0
    """
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


@dataclass(frozen=True)
class DepthMarginResult(Result):
    r"""A KKT point of the depth-L late-phase problem (:func:`depth_max_margin`).

    Attributes
    ----------
    w : ndarray
        The point (margin exactly 1 on the active constraints).
    depth : int
        L; the objective is :math:`\sum_k|w_k|^{2/L}` (``objective``).
    objective : float
        :math:`\sum_k|w_k|^{2/L}=\min\{\|u\|^2+\|v\|^2:u^L-v^L=w\}`.
    margin : float
        :math:`\min_iy_i\langle w,x_i\rangle/(\sum_k|w_k|^{2/L})^{L/2}`, the margin of the
        L-homogeneous net at unit parameter norm.
    mu : ndarray
        Multipliers of the margin constraints in (u, v)-space (non-negative, zero off the
        active set).
    residual : float
        KKT residual in (u, v)-space (:func:`diagonal_kkt_residual`).
    nit : int
        Reweighted-LP iterations, summed over the starts.
    starts : int
        Starts tried; the best KKT point among them is returned.
    """
    w: np.ndarray
    depth: int
    objective: float
    margin: float
    mu: np.ndarray
    residual: float
    nit: int
    starts: int
    status: int
    message: str

    @property
    def direction(self):
        return self.w / np.linalg.norm(self.w)


def _uv_from_w(w, L):
    """Minimum-norm (u, v) >= 0 with u^L - v^L = w (v = 0 where w >= 0, u = 0 elsewhere)."""
    return np.maximum(w, 0.0) ** (1.0 / L), np.maximum(-w, 0.0) ** (1.0 / L)


def diagonal_kkt_residual(w, X, y, depth, active_tol=1e-7):
    r"""KKT residual of :math:`\min\|u\|^2+\|v\|^2` s.t. :math:`y_i\langle u^L-v^L,x_i\rangle\ge1`
    at the minimum-norm :math:`(u,v)` of ``w``.

    Stationarity :math:`2\theta=\sum_{i\in A}\mu_i\nabla_\theta(y_if_i)`, :math:`\mu\ge0`, over
    the active set :math:`A=\{i:y_i\langle w,x_i\rangle\le1+\text{active\_tol}\}` (so
    complementary slackness holds by construction); :math:`\mu` by non-negative least
    squares. Coordinates with :math:`w_k=0` have :math:`u_k=v_k=0` where both sides vanish.
    Returns ``(residual, mu)``: the larger of the relative stationarity error
    :math:`\|2\theta-J_A^\top\mu\|/\|2\theta\|` and the primal violation
    :math:`\max(0,1-\min_iy_i\langle w,x_i\rangle)`.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.margins import diagonal_kkt_residual
    >>> X = np.array([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.5], [-1.0, -0.5]])
    >>> y = np.array([1.0, 1.0, -1.0, -1.0])
    >>> residual, mu = diagonal_kkt_residual(np.array([1.0, 0.0]), X, y, depth=2)
    >>> round(float(residual), 10)                   # the L1 max-margin solution is a KKT point
    0.0
    """
    from scipy.optimize import nnls
    X, y = _check_data(X, y)
    w = np.asarray(w, float)
    L = int(depth)
    Z = X * y[:, None]
    scores = Z @ w
    viol = max(0.0, 1.0 - float(scores.min()))
    u, v = _uv_from_w(w, L)
    S = np.flatnonzero(w != 0)
    A = np.flatnonzero(scores <= 1.0 + active_tol)
    mu = np.zeros(len(y))
    if S.size == 0:
        return np.inf, mu
    rhs = 2.0 * np.concatenate([u[S], v[S]])
    if A.size == 0:
        return max(1.0, viol), mu
    J = np.hstack([L * u[S] ** (L - 1) * Z[np.ix_(A, S)], -L * v[S] ** (L - 1) * Z[np.ix_(A, S)]])
    m, _ = nnls(J.T, rhs, maxiter=50 * max(A.size, 10))
    mu[A] = m
    stat = float(np.linalg.norm(J.T @ m - rhs) / np.linalg.norm(rhs))
    return max(stat, viol), mu


def _weighted_l1_lp(Z, c, cols):
    """min sum_k c_k |w_k| s.t. Z w >= 1, over the columns ``cols``; (w, status)."""
    from scipy.optimize import linprog
    n, d = Z.shape
    Zc = Z[:, cols]
    k = len(cols)
    res = linprog(np.concatenate([c, c]), A_ub=-np.hstack([Zc, -Zc]), b_ub=-np.ones(n),
                  bounds=(0, None), method="highs")
    w = np.zeros(d)
    if res.status == 0:
        w[cols] = res.x[:k] - res.x[k:]
    return w, res.status, res.message


def _polish_vertex(w, Z, tol=1e-9):
    """Re-solve the active equations Z_AS w_S = 1 on a square, well-conditioned vertex."""
    scale = np.abs(w).max()
    S = np.flatnonzero(np.abs(w) > tol * scale)
    A = np.flatnonzero(Z @ w <= 1.0 + 1e-7)
    if len(S) != len(A) or len(S) == 0:
        return w
    M = Z[np.ix_(A, S)]
    if np.linalg.cond(M) > 1e10:
        return w
    ws = np.linalg.solve(M, np.ones(len(A)))
    if np.any(np.sign(ws) != np.sign(w[S])):
        return w
    out = np.zeros_like(w)
    out[S] = ws
    return out if (Z @ out).min() >= 1.0 - 1e-12 else w


def _irl1(Z, w0, cols, q, maxiter, tol):
    """Reweighted L1 from magnitudes ``w0`` over ``cols``; (w, iterations, status, message)."""
    d = Z.shape[1]
    cols = np.asarray(cols)
    scale = float(w0[cols].max()) if cols.size else 0.0
    if scale <= 0:
        return np.zeros(d), 0, 2, "empty start"
    eps = 0.1 * scale
    w, st, msg = _weighted_l1_lp(Z, (w0[cols] + eps) ** (q - 1.0), cols)
    nit = 1
    while st == 0 and nit < maxiter:
        scale = np.abs(w).max()
        cols = np.flatnonzero(np.abs(w) > 1e-13 * scale)
        eps = max(eps * 0.1, 1e-12 * scale)
        w_new, st, msg = _weighted_l1_lp(Z, (np.abs(w[cols]) + eps) ** (q - 1.0), cols)
        nit += 1
        if st != 0:
            break
        change = np.abs(w_new - w).max() / scale
        w = w_new
        if change <= tol and eps <= 1.0001e-12 * scale:
            break
    if st == 0:
        w = _polish_vertex(w, Z)
    return w, nit, st, msg


#: above this many columns the random starts and the local search of depth_max_margin use
#: only the columns on which the full-width starts ended
MAX_FULL_WIDTH = 1000


#: depth_max_margin enumerates the vertices exactly when there are at most this many
#: (support, active set) pairs to try
MAX_ENUMERATE = 200000


def _vertex_count(d, n, cap):
    """sum_k C(d, k) C(n, k), stopping once it exceeds ``cap``."""
    from math import comb
    total = 0
    for k in range(1, min(d, n) + 1):
        total += comb(d, k) * comb(n, k)
        if total > cap:
            break
    return total


def _enumerate_vertices(Z, q):
    """Global minimum of sum |w|^q over {Z w >= 1} by visiting every vertex: supports S and
    active sets A with |S| = |A| and Z_AS invertible, w_S = Z_AS^{-1} 1, kept if feasible."""
    from itertools import combinations
    n, d = Z.shape
    best, best_w, tried = np.inf, None, 0
    for k in range(1, min(d, n) + 1):
        for S in combinations(range(d), k):
            ZS = Z[:, S]
            for A in combinations(range(n), k):
                M = ZS[A, :]
                tried += 1
                try:
                    ws = np.linalg.solve(M, np.ones(k))
                except np.linalg.LinAlgError:
                    continue
                if not np.all(np.isfinite(ws)) or (ZS @ ws).min() < 1.0 - 1e-9:
                    continue
                f = float(np.sum(np.abs(ws) ** q))
                if f < best:
                    best, best_w = f, np.zeros(d)
                    best_w[list(S)] = ws
    return best_w, tried


def depth_max_margin(X, y, depth=3, n_random=4, n_drop=20, maxiter=200, tol=1e-10, seed=0,
                     kkt_tol=1e-6, w_start=None, max_starts=200, method=None):
    r"""A KKT point of the late-phase problem of the depth-L diagonal net.

    .. math:: \min_w\ \sum_k|w_k|^{2/L}\quad\text{s.t.}\quad y_i\langle w,x_i\rangle\ge1,

    which is (R1), :math:`\min\|u\|^2+\|v\|^2` s.t. :math:`y_if_i\ge1`, written in w
    (:func:`kernelphase.dichotomy.diagonal_net_min_norm`; Lyu et al. 2023, Thm 3.5/Cor. 3.7
    for L = 2, where it is :func:`l1_max_margin`). For L > 2 the objective is an
    :math:`\ell_{2/L}` quasi-norm, concave on each orthant, so the problem is non-convex and
    the theory promises only KKT points.

    Method: iteratively reweighted L1 (a majorise-minimise scheme: each step solves the LP
    :math:`\min\sum_kc_k|w_k|`, :math:`c_k=(|w_k|+\varepsilon)^{2/L-1}`, which cannot increase
    the objective), with :math:`\varepsilon` decreasing geometrically to
    :math:`10^{-12}\max|w|`; after the first LP only the current support is kept (a zero
    coordinate has infinite marginal cost). A fixed point is a KKT point: its LP optimality
    conditions are those of the quasi-norm problem. The vertex is then re-solved exactly on
    its active set and certified by :func:`diagonal_kkt_residual` in (u, v)-space. Starts:
    the L1 solution, the L2 (SVM) solution and ``n_random`` random weightings; the best
    certified point is returned. Then a local search between vertices: drop one support
    coordinate of the best point (smallest first, at most ``n_drop`` tries per round),
    re-run the reweighting, keep any better KKT point, repeat (at most ``max_starts`` runs in
    all). ``w_start``: an extra start (e.g. the network's own final weights). Above
    ``MAX_FULL_WIDTH`` columns the random starts and the local search use only the columns on
    which a full-width start ended.

    ``method="enumerate"`` (the default when there are at most ``MAX_ENUMERATE`` (support,
    active set) pairs) instead visits every vertex of the feasible polyhedron: the objective is
    concave on each orthant and non-decreasing along the recession directions, so its global
    minimum is at a vertex (support S, active set A, :math:`|S|=|A|`,
    :math:`w_S=Z_{AS}^{-1}\mathbf 1`). ``method="reweighted"`` is the scheme above.

    Returns a :class:`DepthMarginResult` (status 4 if no start gave a KKT residual below
    ``kkt_tol``, 5 if not separable, 8 if HiGHS failed on every start).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.margins import depth_max_margin
    >>> X = np.array([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.5], [-1.0, -0.5]])
    >>> y = np.array([1.0, 1.0, -1.0, -1.0])
    >>> r = depth_max_margin(X, y, depth=3)
    >>> np.round(r.w, 6), round(r.margin, 6), r.converged
    (array([1., 0.]), 1.0, True)
    """
    from kernelphase._checks import check_choice, check_int, check_range
    from kernelphase.dichotomy import check_depth
    X, y = _check_data(X, y)
    L = check_depth(depth)
    n_random = check_int("n_random", n_random, 0, 1000)
    n_drop = check_int("n_drop", n_drop, 0, 10**6)
    maxiter = check_int("maxiter", maxiter, 1, 10**6)
    tol = check_range("tol", tol, 0.0, 1.0, lo_open=True)
    n, d = X.shape
    if method is None:
        method = "enumerate" if _vertex_count(d, n, MAX_ENUMERATE) <= MAX_ENUMERATE \
            else "reweighted"
    check_choice("method", method, ("enumerate", "reweighted"))
    Z = X * y[:, None]
    q = 2.0 / L
    obj = lambda w: float(np.sum(np.abs(w) ** q))
    l1 = l1_max_margin(X, y)
    if l1.status != 0 and l1.status != 4:
        return DepthMarginResult(w=np.zeros(d), depth=L, objective=float("nan"),
                                 margin=float("nan"), mu=np.zeros(n), residual=np.inf, nit=0,
                                 starts=0, status=l1.status, message=l1.message)
    if L == 2 or method == "enumerate":
        w, nit = (l1.w, 0) if L == 2 else _enumerate_vertices(Z, q)
        res, mu = diagonal_kkt_residual(w, X, y, L)
        st = 0 if res < kkt_tol else 4
        return DepthMarginResult(w=w, depth=L, objective=obj(w),
                                 margin=float((Z @ w).min() / obj(w) ** (L / 2.0)), mu=mu,
                                 residual=res, nit=nit, starts=1, status=st,
                                 message=status_message(st, None if st == 0 else
                                                        "KKT residual above tolerance"))
    rng = np.random.default_rng(seed)
    best, nit_total, msg = None, 0, ""

    def consider(w, res, mu):
        nonlocal best
        cand = (res >= kkt_tol, obj(w), w, mu, res)
        if best is None or cand[:2] < best[:2]:
            best = cand
            return True
        return False

    # full-width starts (L1, L2 and w_start); when d > MAX_FULL_WIDTH the random starts and the
    # local search then use only the columns some full-width start ended on (each LP over all
    # d columns costs seconds at d = 1e4)
    starts = [np.abs(l1.w), np.abs(l2_max_margin(X, y).w)]
    if w_start is not None:
        starts.append(np.abs(np.asarray(w_start, float)))
    cand = np.flatnonzero(l1.w)
    for w0 in starts:
        w, nit, st, msg = _irl1(Z, w0, np.arange(d), q, maxiter, tol)
        nit_total += nit
        if st == 0:
            consider(w, *diagonal_kkt_residual(w, X, y, L))
            cand = np.union1d(cand, np.flatnonzero(w))
    cols_all = np.arange(d) if d <= MAX_FULL_WIDTH else cand
    for _ in range(n_random):
        w0 = np.zeros(d)
        w0[cols_all] = rng.exponential(size=cols_all.size) ** 3
        w, nit, st, msg = _irl1(Z, w0, cols_all, q, maxiter, tol)
        nit_total += nit
        if st == 0:
            consider(w, *diagonal_kkt_residual(w, X, y, L))
    n_drop_done = [0]
    # local search between vertices: drop one support coordinate at a time (smallest first)
    improved = best is not None
    while improved:
        improved = False
        w_b = best[2]
        supp = np.flatnonzero(w_b)
        for k in supp[np.argsort(np.abs(w_b[supp]))][:n_drop]:
            if len(starts) + n_random + n_drop_done[0] >= max_starts:
                break
            n_drop_done[0] += 1
            cols = cols_all[cols_all != k]
            w0 = np.abs(w_b).copy()
            w0[k] = 0.0
            w, nit, st, _ = _irl1(Z, w0 + 1e-3 * w0.max() * (w0 == 0), cols, q, maxiter, tol)
            nit_total += nit
            if st == 0 and consider(w, *diagonal_kkt_residual(w, X, y, L)):
                improved = True
                break
    if best is None:
        return DepthMarginResult(w=np.zeros(d), depth=L, objective=float("nan"),
                                 margin=float("nan"), mu=np.zeros(n), residual=np.inf,
                                 nit=nit_total, starts=len(starts) + n_random + n_drop_done[0], status=8,
                                 message=status_message(8, f"HiGHS: {msg}"))
    bad, f, w, mu, res = best
    status, detail = 0, None
    if bad:
        status, detail = 4, f"KKT residual {res:.3g} above {kkt_tol:g}"
    return DepthMarginResult(w=w, depth=L, objective=f,
                             margin=float((Z @ w).min() / f ** (L / 2.0)), mu=mu, residual=res,
                             nit=nit_total, starts=len(starts) + n_random + n_drop_done[0], status=status,
                             message=status_message(status, detail))
