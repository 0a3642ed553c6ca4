r"""Early and late predictors of over-parameterised matrix completion (Lyu et al. 2023, Sec. 3.3.3).

Model :math:`W=UU^\top-VV^\top` from :math:`U=V=\alpha I`, squared loss on the observed set
:math:`\Omega`, weight decay :math:`\lambda`.

* Kernel phase (Cor. 3.11): the NTK at :math:`(I,I)` couples only identical unordered index
  pairs, so early GD returns the **zero-fill** predictor: :math:`X^*_{ij}` on
  :math:`\Omega\cup\Omega^\top`, zero elsewhere.
* Rich phase (Thm 3.10, App. F): the **minimum-nuclear-norm symmetric completion**
  :math:`\min\|W\|_*` s.t. :math:`W=W^\top`, :math:`W_{ij}=X^*_{ij}` on :math:`\Omega`,
  since :math:`\min\{\|U\|_F^2+\|V\|_F^2:UU^\top-VV^\top=W\}=\|W\|_*`.
  Solved here by ADMM on :math:`\min\|Z\|_*` s.t. :math:`Z=W`, :math:`W\in\mathcal A`
  (the affine set of symmetric matrices matching the observations), the nuclear-norm prox
  being soft-thresholding of the eigenvalues' magnitudes.
"""
from dataclasses import dataclass

import numpy as np

from kernelphase._checks import check_int, check_positive
from kernelphase.results import Result, status_message

__all__ = ["multiplication_table", "observation_mask", "zero_fill_completion",
           "nuclear_norm_completion", "CompletionResult", "heldout_mse", "check_memory",
           "MEMORY_LIMIT"]

#: largest working memory a run may ask for (bytes); above it the run is refused up front
MEMORY_LIMIT = 8 * 2**30


def check_memory(what, nbytes, limit=None):
    """Refuse, before allocating, a run whose arrays would need more than ``limit`` bytes.

    ``what`` names the sizes, e.g. ``"d=100000"``; the message reads
    ``d=100000 needs 596 GiB of memory; the limit is 8 GiB``. (Shared by the lazy-rich
    and dichotomy runs; it belongs beside the other checks in ``kernelphase._checks``.)

    Examples
    --------
    >>> from kernelphase.solvers.matrix_completion import check_memory
    >>> check_memory("a small table", 8 * 100**2)
    80000.0
    >>> check_memory("a huge table", 8 * 10**12)
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    limit = MEMORY_LIMIT if limit is None else limit
    nbytes = float(nbytes)
    if not nbytes <= limit:
        raise ValueError(f"{what} needs {nbytes / 2**30:.3g} GiB of memory; the limit is "
                         f"{limit / 2**30:.3g} GiB; choose smaller sizes")
    return nbytes


@dataclass(frozen=True)
class CompletionResult(Result):
    """A completed matrix with its nuclear norm and ADMM residuals."""
    W: np.ndarray
    nuclear_norm: float
    residual: float
    status: int
    message: str
    nit: int


def multiplication_table(d):
    r"""Scaled multiplication table :math:`X^*_{ij}=ij/d^2`, :math:`i,j=0..d-1` (rank one).

    Examples
    --------
    >>> from kernelphase.solvers.matrix_completion import multiplication_table
    >>> multiplication_table(3) * 9
    array([[0., 0., 0.],
           [0., 1., 2.],
           [0., 2., 4.]])
    """
    d = check_int("d", d, 2)
    check_memory(f"multiplication table d={d}", 8.0 * d * d)
    u = np.arange(d) / d
    return np.outer(u, u)


def observation_mask(d, n_obs, seed=0):
    """Boolean (d, d) mask of ``n_obs`` ordered entries drawn uniformly without replacement.

    Examples
    --------
    >>> from kernelphase.solvers.matrix_completion import observation_mask
    >>> m = observation_mask(5, 7, seed=0)
    >>> m.shape, int(m.sum())
    ((5, 5), 7)
    """
    d = check_int("d", d, 2)
    n_obs = check_int("n_obs", n_obs, 1, d * d - 1)
    check_memory(f"observation mask d={d}", 9.0 * d * d)
    rng = np.random.default_rng(seed)
    mask = np.zeros(d * d, bool)
    mask[rng.permutation(d * d)[:n_obs]] = True
    return mask.reshape(d, d)


def _check(Xstar, mask):
    Xstar = np.asarray(Xstar, float)
    mask = np.asarray(mask, bool)
    if Xstar.ndim != 2 or Xstar.shape[0] != Xstar.shape[1] or mask.shape != Xstar.shape:
        raise ValueError(f"Xstar.shape={Xstar.shape} and mask.shape={mask.shape} must be equal "
                         f"and square")
    if not np.all(np.isfinite(Xstar)):
        raise ValueError("Xstar must be finite (it holds NaN or inf)")
    return Xstar, mask


def zero_fill_completion(Xstar, mask):
    """Kernel-phase predictor of Cor. 3.11: observed entries and their mirrors, zeros elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.matrix_completion import multiplication_table, zero_fill_completion
    >>> X = multiplication_table(3)
    >>> mask = np.zeros((3, 3), bool); mask[1, 2] = True
    >>> zero_fill_completion(X, mask) * 9           # the observed entry and its mirror
    array([[0., 0., 0.],
           [0., 0., 2.],
           [0., 2., 0.]])
    """
    Xstar, mask = _check(Xstar, mask)
    sym = mask | mask.T
    return np.where(sym, Xstar, 0.0)


def heldout_mse(W, Xstar, mask):
    """Mean squared error over the unobserved ordered entries (the paper's test set).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.matrix_completion import heldout_mse
    >>> X = np.ones((2, 2)); mask = np.eye(2, dtype=bool)
    >>> heldout_mse(np.zeros((2, 2)), X, mask)       # two unobserved entries, each off by 1
    1.0
    """
    Xstar, mask = _check(Xstar, mask)
    return float(np.mean((np.asarray(W) - Xstar)[~mask] ** 2))


def nuclear_norm_completion(Xstar, mask, rho=None, tol=1e-8, maxiter=20000):
    r"""Minimum-nuclear-norm symmetric completion by ADMM.

    Iterates :math:`W\leftarrow P_{\mathcal A}(Z-Y)`,
    :math:`Z\leftarrow\mathrm{prox}_{\|\cdot\|_*/\rho}(W+Y)`, :math:`Y\leftarrow Y+W-Z`;
    converged when :math:`\|W-Z\|_F` and :math:`\rho\|Z-Z_{\rm prev}\|_F` fall below
    ``tol`` times :math:`\max(1,\|Z\|_F)`. The residual reported is the larger of the two
    and of the constraint violation of the returned ``Z``.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.matrix_completion import (multiplication_table, observation_mask,
    ...     nuclear_norm_completion, heldout_mse)
    >>> X = multiplication_table(8)
    >>> mask = observation_mask(8, 40, seed=0)
    >>> r = nuclear_norm_completion(X, mask)
    >>> r.converged, heldout_mse(r.W, X, mask) < 1e-3    # the rank-one table is recovered
    (True, True)
    """
    Xstar, mask = _check(Xstar, mask)
    check_memory(f"nuclear-norm completion d={Xstar.shape[0]}", 12 * 8.0 * Xstar.size)
    sym = mask | mask.T
    tol = check_positive("tol", tol)
    maxiter = check_int("maxiter", maxiter, 1)
    target = np.where(sym, (np.where(mask, Xstar, 0) + np.where(mask.T, Xstar.T, 0))
                      / np.maximum(mask.astype(int) + mask.T.astype(int), 1), 0.0)
    rho = check_positive("rho", rho) if rho is not None else 10.0 / max(
        np.abs(target).max(), 1e-12)

    def project(M):
        M = 0.5 * (M + M.T)
        return np.where(sym, target, M)

    Z = project(np.zeros_like(Xstar))
    Y = np.zeros_like(Xstar)
    status, k = 2, 0
    for k in range(1, maxiter + 1):
        W = project(Z - Y)
        lam, Q = np.linalg.eigh(W + Y)
        lam = np.sign(lam) * np.maximum(np.abs(lam) - 1.0 / rho, 0.0)
        Z_new = (Q * lam) @ Q.T
        Y += W - Z_new
        scale = max(1.0, np.linalg.norm(Z_new))
        r_primal = np.linalg.norm(W - Z_new) / scale
        r_dual = rho * np.linalg.norm(Z_new - Z) / scale
        Z = Z_new
        if max(r_primal, r_dual) < tol:
            status = 0
            break
    violation = float(np.max(np.abs(Z - target)[sym]))
    residual = max(r_primal, r_dual, violation)
    return CompletionResult(W=Z, nuclear_norm=float(np.abs(np.linalg.eigvalsh(Z)).sum()),
                            residual=residual, status=status,
                            message=status_message(status), nit=k)
