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
           "cosine"]




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
    """Accuracy of ``sign(X w)``; a tie (score exactly 0) counts as one half."""
    s = np.sign(np.asarray(X) @ np.asarray(w))
    return float(np.mean(np.where(s == 0, 0.5, s == np.asarray(y))))


def cosine(a, b):
    """Cosine of the angle between two vectors (0 if either is zero)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0
