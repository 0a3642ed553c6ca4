r"""Integrated autocorrelation time, effective sample size and the standard error of a time
average, for the scalar series a Langevin run records (Sokal 1997, Sec. 3; Goodman & Weare 2010).

For a stationary series :math:`x_1..x_n` with normalised autocorrelation
:math:`\rho(t)=\mathrm{Cov}(x_s,x_{s+t})/\mathrm{Var}(x)`, the integrated autocorrelation time is

.. math:: \tau=1+2\sum_{t\ge1}\rho(t),\qquad
          \mathrm{Var}(\bar x)\simeq\frac{\tau\,\mathrm{Var}(x)}{n},
          \qquad n_{\rm eff}=n/\tau .

:math:`\hat\rho(t)` is computed by FFT (zero-padded to a power of two at least ``2n``, so the
correlation is linear, not circular) with the biased :math:`1/n` normalisation, and the sum is
cut at Sokal's automatic window: the smallest :math:`M` with :math:`M\ge c\,\hat\tau(M)`,
:math:`\hat\tau(M)=1+2\sum_{t=1}^{M}\hat\rho(t)` (Sokal 1997, "Monte Carlo methods in statistical
mechanics", Eq. 3.19 and the text after it; ``c = 5`` as there and in emcee's
``autocorr.integrated_time``). The estimate is trusted when :math:`n\ge50\,\hat\tau` (emcee's
``tol``); shorter series get status 7 ("run too short to measure") and keep their numbers.

Test (``tests/test_autocorr.py``): AR(1), :math:`x_t=\phi x_{t-1}+\sqrt{1-\phi^2}\,\xi_t`, has
:math:`\tau=(1+\phi)/(1-\phi)` exactly; the estimate is within 10 % of it, and the interval
:math:`\bar x\pm1.96\,\mathrm{SE}` covers the true mean at the nominal rate over seeds (while the
i.i.d. standard error does not).
"""
import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from kernelphase._checks import check_positive
from kernelphase.results import Result, status_message

__all__ = ["AutocorrResult", "autocorr_function", "integrated_time", "combined_error",
           "choose_burn_in", "ensemble_summary"]


@dataclasses.dataclass(frozen=True, eq=False)
class AutocorrResult(Result):
    """Autocorrelation summary of one scalar series (:func:`integrated_time`).

    ``tau`` is in units of the series' spacing; ``ess = n / tau``; ``std_error`` is the standard
    error of ``mean`` including the correlation, :math:`\\sqrt{\\tau\\,\\mathrm{Var}(x)/n}`;
    ``window`` is Sokal's cut-off :math:`M`. An estimate below 1 is reported as 1 (conservative:
    ESS at most ``n``). ``status`` 7 when :math:`n < ` ``tol`` :math:`\\tau`
    (tau may then be underestimated); a constant series has ``tau = 1`` and ``std_error = 0``.
    """
    tau: float
    ess: float
    mean: float
    std_error: float
    window: int
    n: int
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _series(x):
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x has shape {x.shape}; need a 1-D series")
    if x.size < 2:
        raise ValueError(f"x has {x.size} values, outside the valid range [2, inf)")
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or inf; the series must be finite")
    return x


def autocorr_function(x):
    r"""Normalised autocorrelation :math:`\hat\rho(t)`, :math:`t=0..n-1`, of a 1-D series by FFT
    (biased estimator: lag sums divided by :math:`n`; :math:`\hat\rho(0)=1`; zeros for a
    constant series).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.autocorr import autocorr_function
    >>> np.round(autocorr_function(np.array([1.0, -1.0, 1.0, -1.0])), 4)   # alternating series
    array([ 1.  , -0.75,  0.5 , -0.25])
    >>> autocorr_function(np.ones(3))                                      # constant: zeros
    array([0., 0., 0.])
    """
    x = _series(x)
    n = x.size
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x - x.mean(), n=size)
    acov = np.fft.irfft(f * np.conjugate(f), n=size)[:n]
    if acov[0] <= 0:
        return np.zeros(n)
    return acov / acov[0]


def integrated_time(x, c=5.0, tol=50.0):
    r"""Integrated autocorrelation time of a scalar series with Sokal's automatic window.

    .. math:: \hat\tau(M)=1+2\sum_{t=1}^{M}\hat\rho(t),\qquad
              M=\min\{M: M\ge c\,\hat\tau(M)\}

    Source: Sokal (1997), Sec. 3, Eq. (3.19) and the window rule after it.

    Parameters
    ----------
    x : array_like, 1-D, at least 2 finite values.
    c : float > 0
        Window constant (default 5).
    tol : float > 0
        The estimate is trusted when ``n >= tol * tau`` (default 50); else status 7.

    Returns
    -------
    AutocorrResult

    Examples
    --------
    >>> r = integrated_time(np.random.default_rng(0).standard_normal(10000))
    >>> bool(abs(r.tau - 1) < 0.1), r.converged
    (True, True)
    """
    x = _series(x)
    c = check_positive("c", c)
    tol = check_positive("tol", tol)
    n = x.size
    rho = autocorr_function(x)
    if rho[0] == 0:             # constant series: no fluctuation, no error
        return AutocorrResult(tau=1.0, ess=float(n), mean=float(x[0]), std_error=0.0, window=0,
                              n=n, message=status_message(0, "constant series"),
                              params={"c": c, "tol": tol})
    taus = 2.0 * np.cumsum(rho) - 1.0          # taus[M] = 1 + 2 sum_{t=1}^{M} rho(t)
    ok = np.arange(n) >= c * taus
    window = int(np.argmax(ok)) if ok.any() else n - 1
    # an anticorrelated (or short, noisy) series may give tau < 1: reported as 1, so that the
    # error is never below the i.i.d. one and the ESS never above n
    tau = float(max(taus[window], 1.0))
    var = float(np.var(x))
    status, detail = 0, None
    if n < tol * tau:
        status, detail = 7, (f"n={n} samples is below tol*tau={tol:g}*{tau:.3g}; tau may be "
                             f"underestimated, run longer")
    return AutocorrResult(tau=tau, ess=n / tau, mean=float(x.mean()),
                          std_error=math.sqrt(var * tau / n), window=window, n=n,
                          status=status, message=status_message(status, detail),
                          params={"c": c, "tol": tol})


def combined_error(values, time_errors, test_error=0.0):
    r"""Standard error of an ensemble mean :math:`\bar v=\frac1K\sum_k v_k` of per-network time
    averages, combining the three sources of error.

    * time correlation: :math:`s_t^2=\frac1{K^2}\sum_k \mathrm{SE}_k^2`, the within-run standard
      errors of :func:`integrated_time`;
    * network spread: :math:`s_n^2=\mathrm{Var}(v_k)/K` (sample variance, ``ddof=1``; 0 for one
      network). For networks in equilibrium both estimate the same sampling error; a spread
      above the time-correlation error means the runs have not mixed (different metastable
      states, or a burn-in too short), so the larger of the two is used;
    * test points: ``test_error``, the error from averaging over a finite test set
      (independent of the sampling), added in quadrature.

    .. math:: \mathrm{SE}=\sqrt{\max(s_t^2,s_n^2)+s_{\rm test}^2}

    Returns a dict ``std_error``, ``se_time``, ``se_spread``, ``se_test`` and ``spread_ratio``
    :math:`s_n/s_t` (about 1 in equilibrium; NaN for one network).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.autocorr import combined_error
    >>> e = combined_error(np.array([1.0, 1.2, 0.8, 1.0]), np.array([0.05, 0.05, 0.05, 0.05]))
    >>> round(e["se_time"], 4), round(e["se_spread"], 4), round(e["std_error"], 4)
    (0.025, 0.0816, 0.0816)
    """
    v = np.asarray(values, dtype=float)
    e = np.asarray(time_errors, dtype=float)
    k = v.size
    se_time = float(math.sqrt(np.sum(e ** 2)) / k) if k else float("nan")
    se_spread = float(v.std(ddof=1) / math.sqrt(k)) if k > 1 else float("nan")
    big = se_time if not se_spread == se_spread else max(se_time, se_spread)
    ratio = se_spread / se_time if k > 1 and se_time > 0 else float("nan")
    return {"std_error": float(math.sqrt(big ** 2 + float(test_error) ** 2)),
            "se_time": se_time, "se_spread": se_spread, "se_test": float(test_error),
            "spread_ratio": ratio}


def _chains(series):
    x = np.asarray(series, dtype=float)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 4:
        raise ValueError(f"series has shape {x.shape}; need (chains >= 1, samples >= 4[, "
                         f"observables])")
    return x


def choose_burn_in(series, floor=0, multiple=5.0, c=5.0):
    r"""Burn-in, in samples, of an ensemble of runs: at least ``multiple`` autocorrelation times.

    ``series`` has shape (chains, samples[, observables]). Tau is estimated on each chain and
    observable after ``floor`` samples (:func:`integrated_time`); the burn-in is
    :math:`\max(\text{floor},\lceil m\,\tau_{max}\rceil)`, capped so that a
    quarter of the samples remain. Returns ``(burn_in, tau_max, enough)``, ``enough`` False when
    the cap was needed (the run is too short for its start not to bias the averages).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.autocorr import choose_burn_in
    >>> rng = np.random.default_rng(0)
    >>> burn_in, tau, enough = choose_burn_in(rng.standard_normal((4, 2000)))   # i.i.d.: tau = 1
    >>> burn_in, round(tau, 1), enough
    (7, 1.3, True)
    """
    x = _chains(series)
    n = x.shape[1]
    floor = int(min(max(0, floor), n - 4))
    tau = max(integrated_time(x[k, floor:, j], c=c).tau
              for k in range(x.shape[0]) for j in range(x.shape[2]))
    want = max(floor, int(math.ceil(multiple * tau)))
    cap = min(max(floor, (3 * n) // 4), n - 2)
    return min(want, cap), float(tau), want <= cap


def ensemble_summary(chains, discard=0, test_error=0.0, c=5.0, tol=50.0):
    r"""Mean over an ensemble of runs of one scalar observable, with its trusted error.

    ``chains`` (runs, samples): each run's series; the first ``discard`` samples are dropped.
    Per run :func:`integrated_time` gives the time average, tau and its within-run standard
    error; :func:`combined_error` combines those with the run-to-run spread and
    ``test_error``. Returns a dict: ``mean`` (of the run averages), ``tau`` (mean over runs, in
    samples), ``tau_max``, ``ess`` (summed over runs), ``std_error``, ``se_time``,
    ``se_spread``, ``se_test``, ``spread_ratio``, ``samples`` (per run, after the discard) and
    ``short`` (runs with fewer than ``tol`` tau samples, status 7 of :func:`integrated_time`).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.autocorr import ensemble_summary
    >>> rng = np.random.default_rng(0)
    >>> s = ensemble_summary(0.5 + rng.standard_normal((4, 4000)))
    >>> round(s["mean"], 2), round(s["tau"], 1), 0.005 < s["std_error"] < 0.02   # ~ 1/sqrt(16000)
    (0.5, 1.0, True)
    """
    x = _chains(chains)[:, :, 0]
    discard = int(discard)
    if not 0 <= discard <= x.shape[1] - 2:
        raise ValueError(f"discard={discard} is outside the valid range [0, {x.shape[1] - 2}]")
    res = [integrated_time(row[discard:], c=c, tol=tol) for row in x]
    out = combined_error([r.mean for r in res], [r.std_error for r in res], test_error)
    taus = [r.tau for r in res]
    out.update(mean=float(np.mean([r.mean for r in res])), tau=float(np.mean(taus)),
               tau_max=float(np.max(taus)), ess=float(sum(r.ess for r in res)),
               samples=int(x.shape[1] - discard), short=int(sum(r.status == 7 for r in res)))
    return out
