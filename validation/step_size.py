r"""The step-size bias of a Langevin average, extrapolated to :math:`\eta\to0`.

The unadjusted Langevin algorithm with step :math:`\eta` samples a law whose averages differ
from the posterior's by a bias of first order in the step (Talay & Tubaro 1990, "Expansion of
the global error for numerical schemes solving stochastic differential equations", Eq. 1.3;
for the unadjusted Langevin algorithm, Durmus & Moulines 2019, Sec. 3):

.. math:: \langle O\rangle_\eta=\langle O\rangle_0+k_1\eta+k_2\eta^2+O(\eta^3).

Runs at several steps :math:`\eta_j` with standard errors :math:`s_j` give
:math:`\langle O\rangle_0` by weighted least squares on :math:`(1,\eta,\dots,\eta^{p})` (the
Richardson extrapolation of Talay & Tubaro, with the statistical errors propagated): the
intercept, its standard error from :math:`(A^\top WA)^{-1}`, and :math:`\chi^2` of the fit with
:math:`m-p-1` degrees of freedom as the check that the polynomial describes the bias.
"""
import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from kernelphase._checks import check_int
from kernelphase.results import Result, status_message

__all__ = ["StepSizeExtrapolation", "extrapolate_step"]


@dataclasses.dataclass(frozen=True, eq=False)
class StepSizeExtrapolation(Result):
    """Result of :func:`extrapolate_step`.

    ``value`` and ``std_error``: the :math:`\\eta\\to0` limit and its standard error;
    ``coefficients``: :math:`(k_1,\\dots,k_p)` of the bias; ``bias_at``: the bias
    :math:`\\langle O\\rangle_{\\eta_j}-\\langle O\\rangle_0` of each run; ``chi2``/``dof``:
    goodness of the fit (``p_value`` its upper tail; NaN without a degree of freedom).
    ``status`` 4 when the fit is rejected (``p_value < 1e-3``): the bias is not a polynomial
    of that order over the steps given (reduce the steps or raise ``order``).
    """
    value: float
    std_error: float
    coefficients: tuple
    bias_at: tuple
    chi2: float
    dof: int
    p_value: float
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def extrapolate_step(steps, values, std_errors, order=1):
    r"""Extrapolate a Langevin average measured at several step sizes to step zero.

    .. math:: \hat\theta=(A^\top WA)^{-1}A^\top W v,\quad A_{jk}=\eta_j^{\,k},\
              W=\mathrm{diag}(s_j^{-2}),\quad \mathrm{SE}(\hat\theta_0)=
              \sqrt{[(A^\top WA)^{-1}]_{00}} .

    Source: Talay & Tubaro (1990), Eq. 1.3 (the first-order weak expansion); the errors are
    those of a weighted linear fit.

    Parameters
    ----------
    steps : sequence of float
        Distinct step sizes :math:`\eta_j>0`, at least ``order + 1`` of them.
    values, std_errors : sequence of float
        The average measured at each step and its standard error (> 0, including the time
        correlation, e.g. from :func:`~kernelphase.validation.autocorr.integrated_time`).
    order : int
        Degree p of the bias polynomial, 1 or 2.

    Returns
    -------
    StepSizeExtrapolation

    Examples
    --------
    >>> r = extrapolate_step([0.4, 0.2, 0.1], [1.4, 1.2, 1.1], [0.01, 0.01, 0.01])
    >>> round(r.value, 10), round(r.coefficients[0], 10), r.dof
    (1.0, 1.0, 1)
    >>> round(r.std_error, 4)
    0.0122
    """
    order = check_int("order", order, 1, 2)
    eta = np.asarray(steps, float)
    v = np.asarray(values, float)
    s = np.asarray(std_errors, float)
    if eta.ndim != 1 or eta.shape != v.shape or v.shape != s.shape:
        raise ValueError(f"steps, values and std_errors must be 1-d of one length; got shapes "
                         f"{eta.shape}, {v.shape}, {s.shape}")
    if len(eta) < order + 1:
        raise ValueError(f"steps={list(eta)} has {len(eta)} entries; order={order} needs at "
                         f"least {order + 1}")
    if not (np.all(np.isfinite(eta)) and np.all(eta > 0) and len(set(eta)) == len(eta)):
        raise ValueError(f"steps={list(eta)} must be distinct finite numbers > 0")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError(f"values={list(v)} must be finite and std_errors={list(s)} finite "
                         f"and > 0")
    from scipy.stats import chi2 as chi2_law
    A = eta[:, None] ** np.arange(order + 1)
    w = 1.0 / s ** 2
    cov = np.linalg.inv(A.T @ (w[:, None] * A))
    theta = cov @ (A.T @ (w * v))
    resid = v - A @ theta
    chi2 = float(np.sum(w * resid ** 2))
    dof = len(eta) - order - 1
    p = float(chi2_law.sf(chi2, dof)) if dof > 0 else math.nan
    status = 4 if p < 1e-3 else 0
    detail = (f"chi2={chi2:.3g} with {dof} degrees of freedom: the bias is not of order "
              f"{order} over these steps" if status else None)
    return StepSizeExtrapolation(
        value=float(theta[0]), std_error=float(math.sqrt(cov[0, 0])),
        coefficients=tuple(float(c) for c in theta[1:]),
        bias_at=tuple(float(b) for b in A[:, 1:] @ theta[1:]), chi2=chi2, dof=dof,
        p_value=p, status=status, message=status_message(status, detail),
        params={"steps": eta.tolist(), "order": order})
