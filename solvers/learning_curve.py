r"""Kernel-regression learning curve from a kernel spectrum with degenerate sectors.

Self-consistent renormalised ridge (Bordelon, Canatar & Pehlevan 2020; Simon et al. 2021,
"eigenlearning"): for sectors :math:`k` with eigenvalue :math:`\lambda_k`, multiplicity
:math:`m_k` and target power :math:`p_k` (summed over the sector), ridge :math:`\lambda\ge0`
on :math:`K + \lambda P I`, and :math:`P` samples,

.. math::  \sum_k m_k\frac{\lambda_k}{\lambda_k+\kappa} + \frac{\lambda}{\kappa} = P,\qquad
           L_k = \frac{\lambda_k}{\lambda_k+\kappa},\qquad
           E = \frac{P}{P-\sum_k m_kL_k^2}\Big[\sum_k(1-L_k)^2p_k + p_{\rm null}\Big].

Ridgeless (:math:`\lambda = 0`) needs :math:`P < \sum_k m_k` (the kernel's rank).
Used by the lazy-rich theory (Kumar et al. 2023, Fig. 1 horizontal line) with the NTK
spectrum of :func:`kernelphase.spectra.gaussian_dot_product_spectrum`.
"""
from dataclasses import dataclass

import numpy as np

from kernelphase.results import Result, status_message

__all__ = ["LearningCurveResult", "learning_curve"]

_DETAIL = {1: None, 5: "ridgeless with P >= rank: interpolation impossible", 2: None}


@dataclass(frozen=True)
class LearningCurveResult(Result):
    P: float
    test_mse: float
    kappa: float
    learnability: tuple      # L_k per sector
    overfit: float           # E0 = P / (P - sum m L^2)
    residual: float          # |constraint - P| / P at kappa
    status: int
    message: str


def learning_curve(eigenvalues, multiplicities, powers, P, ridge=0.0, null_power=0.0):
    """Predicted test MSE of kernel regression with ``P`` samples (see module docstring).

    Parameters
    ----------
    eigenvalues, multiplicities, powers : array_like
        Per sector: eigenvalue > 0, multiplicity >= 1, total target power >= 0.
    P : float
        Number of samples (>= 1).
    ridge : float
        :math:`\\lambda\\ge0` (the regulariser is ``ridge * P * I`` on the Gram matrix).
    null_power : float
        Target power outside the kernel's range (never learned).

    Examples
    --------
    >>> from kernelphase.solvers.learning_curve import learning_curve
    >>> r = learning_curve([1.0, 0.1], [1, 10], [1.0, 0.5], P=5)
    >>> round(r.test_mse, 4), round(r.kappa, 4), r.converged
    (0.3715, 0.1424, True)
    >>> round(learning_curve([1.0], [1], [1.0], P=1000).test_mse, 6)   # one mode, many samples
    0.0
    """
    from scipy.optimize import brentq
    from kernelphase._checks import check_range
    check_range("P", P, 1, np.inf)
    check_range("ridge", ridge, 0, np.inf)
    lam = np.asarray(eigenvalues, float)
    m = np.asarray(multiplicities, float)
    p = np.asarray(powers, float)
    if lam.shape != m.shape or lam.shape != p.shape or lam.ndim != 1:
        raise ValueError("eigenvalues, multiplicities and powers must be 1-d of equal length")
    check_range("null_power", null_power, 0, np.inf)
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(m)) and np.all(np.isfinite(p))):
        raise ValueError("eigenvalues, multiplicities and powers must be finite")
    if lam.size > 10**6:
        raise ValueError(f"{lam.size} sectors; the valid range is at most 1e6")
    if np.any(lam <= 0) or np.any(m < 1) or np.any(p < 0):
        raise ValueError("eigenvalues must be > 0, multiplicities >= 1 and powers >= 0")

    def h(logk):
        k = np.exp(logk)
        return np.sum(m * lam / (lam + k)) + ridge * P / k - P

    rank = m.sum()
    if ridge == 0 and P >= rank:
        return LearningCurveResult(P, float(null_power + 0.0) if P > rank else np.inf, 0.0,
                                   tuple(np.ones_like(lam)), np.inf, np.nan, 5, status_message(5, _DETAIL[5]))
    lo, hi = np.log(lam.min()) - 60, np.log(max(lam.max() * m.sum(), ridge + 1e-300)) + 60
    try:
        logk = brentq(h, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)
        status = 0
    except (ValueError, RuntimeError):
        logk, status = np.nan, 2
    k = float(np.exp(logk))
    L = lam / (lam + k)
    e0 = P / (P - np.sum(m * L * L))
    E = e0 * (np.sum((1 - L) ** 2 * p) + null_power)
    res = abs(h(logk)) / P if status == 0 else np.nan
    return LearningCurveResult(float(P), float(E), k, tuple(float(v) for v in L), float(e0),
                               float(res), status, status_message(status))
