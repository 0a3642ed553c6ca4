r"""Cubic teacher at finite input dimension d: the exact single-neuron law in (Phi, q), integrated.

Rubin, Seroussi & Ringel (2023), Eqs. (7)-(10) in the equivalent-kernel (EK) limit, erf student,
teacher :math:`y=\mathrm{He}_1+\epsilon\mathrm{He}_3` (theory/adaptive_kernel.md Secs. 3-4).
Unlike :mod:`kernelphase.solvers.cubic` (saddle point in :math:`\Phi` and
:math:`|w_\perp|^2\to\sigma_w^2`), nothing is taken to :math:`d\to\infty` inside the law.

**Derivation** (re-derived here from Eq. 7 of the notes, Sec. 3.2). With
:math:`\sigma^2\bar t=b\,\mathrm{He}_1+c\,\mathrm{He}_3` and :math:`\sum_\mu\to n\int d\mu_x`,
Stein's lemma gives :math:`\mathbb E_x[\mathrm{He}_k(w^*\!\cdot x)\,\mathrm{erf}(w\cdot x)]
=\Phi^k m_k(|w|^2)` (:mod:`kernelphase.moments`), so the interaction of Eq. 7 is
:math:`\frac{\sigma_a^2n^2}{2N\sigma^4}g^2=\frac{d\,u}2g^2` with
:math:`u=n^2\sigma_a^2/(\sigma^4dN)` and

.. math:: g(\Phi,q)=b\,\Phi\,m_1(\Phi^2+q)+c\,\Phi^3m_3(\Phi^2+q),\qquad
          \Phi=w\cdot w^*,\quad q=|w_\perp|^2 .

It depends on :math:`w` only through :math:`(\Phi,q)`. Under the prior
:math:`w\sim\mathcal N(0,\sigma_w^2/d\,I_d)`, :math:`\Phi\sim\mathcal N(0,\sigma_w^2/d)` and
:math:`q\,d/\sigma_w^2\sim\chi^2_{d-1}` independently, so the exact single-neuron law is

.. math:: p(\Phi,q)\propto q^{\frac{d-3}2}\exp\Big[-\frac{d(\Phi^2+q)}{2\sigma_w^2}
          +\frac{d\,u}{2L}\,g(\Phi,q)^2\Big]L^{-1/2},

i.e. the whole exponent is :math:`d` times an O(1) function (no other d dependence) plus the
:math:`-\tfrac32\ln q` of the chi-square density. :math:`L=1` without the cavity factor;
with it (notes Sec. 3.4 [derived], re-derived by integrating out the readout :math:`a_i`),
:math:`L=1+\frac{n\sigma_a^2}{N\sigma^2}\mathbb E[\mathrm{erf}^2]=1+\frac{v\,d}{N}\,
\frac2\pi\arcsin\frac{2V}{1+2V}`, :math:`V=\Phi^2+q`, :math:`v=\sqrt{u\rho}`.
``perp="fixed"`` replaces the chi-square law by :math:`q=\sigma_w^2` (the EK assumption);
then only the Phi fluctuations are kept, and as :math:`d\to\infty` the results tend to
:mod:`~kernelphase.solvers.cubic`. With the exact law the :math:`d\to\infty` limit is instead
the **joint** saddle in :math:`(\Phi,q)`, with the per-d action
:math:`\min_q[(\Phi^2+q)/2\sigma_w^2-\tfrac12\ln q-\tfrac u2g^2]`: at a droplet the
interaction pulls q below :math:`\sigma_w^2` by O(1), which norm concentration under the prior
does not see.

**Averages.** Quadrature in :math:`(\Phi,y=\ln q)`: a uniform trapezoid grid in
:math:`\Phi\in[0,\Phi_{\max}]` (the law is even in Phi, so the half-line trapezoid is the
spectrally accurate full-line one) and, for each Phi, a trapezoid in y centred at the
maximum of the log-density over y with a step of 0.63 of its local width (Newton), or for
:math:`d\le400` one y grid of step :math:`0.35\sqrt{2/d}` on
:math:`[\ln\sigma_w^2-\ell,\ln\sigma_w^2+2]`, :math:`\ell=\min(14,\max(3,150/(d-1)))` (robust when the tilt makes the law of q skewed
or bimodal at small d).

**Self-consistency** (App. A.3, Eq. 12 with the corrected (1,1) entry, notes Sec. 4.5):

.. math:: \begin{pmatrix}b\\\sqrt6c\end{pmatrix}=\big[I_2+v\,d\,\hat K\big]^{-1}
          \begin{pmatrix}1\\\sqrt6\epsilon\end{pmatrix},\quad
          \hat K=\begin{pmatrix}\langle\Phi^2m_1^2\rangle&\langle\Phi^4m_1m_3\rangle/\sqrt6\\
          \langle\Phi^4m_1m_3\rangle/\sqrt6&\langle\Phi^6m_3^2\rangle/6\end{pmatrix},

with the averages over the integrated law (the paper's Claim I: two discrepancy modes).

**Transition.** ``branch="gfl"`` restricts the averages to the Phi = 0 basin (Phi below the
minimum of the Phi-marginal between the two peaks): the metastable GFL phase. The
first-order point :math:`u_c(d)` is where, on that branch, the two basins have equal free
energy, :math:`\Delta F=-\frac1d\ln(M_{\rm droplet}/M_0)=0` (:math:`M` the basin masses of
the integrated law): the finite-d counterpart of :math:`\hat S(\Phi_*)=\hat S(0)`.
The GFL-basin equations can have a second root (a smaller basin and a larger b), so the
branch is followed by continuation in u. When the droplet peak of the Phi-marginal appears
only where it already dominates, :math:`\Delta F` jumps from :math:`+\infty` to a negative
value; the point of the jump is returned with status 2.

**Measured** (eps = -0.3, :math:`\sigma_w^2=0.5`, :math:`\rho=8/150`; EK
:math:`u_c=30.669`, paper 30.2): exact law :math:`u_c(d)=27.243` at d = 150 (:math:`\sigma^2_c
=0.1896` for n = 3000, N = 700), 22.40 (d = 600), 21.20 (2000), 20.86 (1e4), tending to the
joint saddle 20.784 as about :math:`20.78+970/d`; with q frozen (``perp="fixed"``) 30.81
(1e4), 30.684 (1e5), about :math:`30.669+1450/d`, and a jump at 40.5 at d = 150; with the
cavity factor (N = 700) 33.157 at d = 150 (:math:`\sigma^2_c=0.1719`). The full
self-consistent solution (``branch="full"``) is unique along u at d = 150 (sweeps up and
down agree): a smooth crossover, droplet mass 1.4 % at u = 30.2 and 2.5 % at u = 98.

**Droplet spinodal** (:func:`finite_d_spinodal`): the smallest u at which the Phi-marginal on
the GFL branch has a second peak. At the ``hyst-wide`` preset, scale 1/4 (eps = -3,
:math:`\sigma_w^2=0.25`, :math:`\rho=1`, d = 75; EK :math:`u_s=1.532`, :math:`u_c=1.834`,
i.e. :math:`\sigma^2\in(0.527,0.577)` for n = 750, N = 1050): :math:`u_s=1.304`,
:math:`u_c=1.587` with the exact law; with the cavity factor (N = 1050) :math:`u_s=1.360`,
:math:`u_c=1.664`, the window :math:`\sigma^2\in(0.554,0.612)`. A lone droplet's exit
barrier there (``exit_barrier``) falls from 20 kT at :math:`\sigma^2=0.54` to 12 at 0.56 and
0 at the spinodal.
"""
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from kernelphase._checks import check_choice, check_int, check_range
from kernelphase.results import Result, status_message

__all__ = ["finite_d_averages", "finite_d_state", "finite_d_transition", "finite_d_spinodal",
           "FiniteDStateResult", "FiniteDTransitionResult", "FiniteDSpinodalResult"]

_PHI_MAX = 2.5     # upper end of the Phi grid (the law is checked to be negligible there)
_NT = 41           # nodes in y = ln q per Phi (t in [-_T, _T] local widths)
_T = 13.0
_CURV = 30.0       # largest per-d curvature in Phi resolved by the grid
_D_GLOBAL = 400    # up to this d one global grid in y = ln q; above, a window per Phi


@functools.lru_cache(maxsize=1)
def _erf_funcs():
    """numpy functions m_1(V), m_3(V) and E[erf(h)^2] (h ~ N(0, V)) from the symbolic layer."""
    import sympy as sp
    from kernelphase.activations import Z
    from kernelphase.gaussian import erf_erf_expectation
    from kernelphase.moments import moment_exprs
    m = moment_exprs(sp.erf(Z), 3)
    v = next(iter(m[1].free_symbols))
    return (sp.lambdify(v, m[1], "numpy"), sp.lambdify(v, m[3], "numpy"),
            sp.lambdify(v, erf_erf_expectation(v, v, v), "numpy"))


class _Law:
    """The integrated single-neuron law at one (u, b, c)."""

    def __init__(self, d, sw2, perp, cav):
        self.d, self.sw2, self.perp, self.cav = d, sw2, perp, cav
        self.m1, self.m3, self.e2 = _erf_funcs()
        h = min(0.01, 0.25 / math.sqrt(d * _CURV))
        self.phi = np.arange(0.0, _PHI_MAX + h / 2, h)
        self.wphi = np.full(self.phi.size, h)
        self.wphi[0] = h / 2

    def logp(self, phi, y, u, b, c):
        """Log-density in (Phi, y = ln q) up to a constant, and the moments at the points."""
        d, sw2 = self.d, self.sw2
        q = np.exp(y)
        V = phi * phi + q
        m1, m3 = self.m1(V), self.m3(V)
        g = b * phi * m1 + c * phi ** 3 * m3
        L = 1.0 + self.cav * self.e2(V) if self.cav else 1.0
        out = -d * V / (2 * sw2) + 0.5 * d * u * g * g / L
        if self.cav:
            out = out - 0.5 * np.log(L)
        if self.perp == "chi2":
            out = out + 0.5 * (d - 1) * y
        return out, m1, m3

    def _ysaddle(self, u, b, c):
        """Per-Phi global maximum y* of the log-density in y = ln q (coarse scan, then Newton)
        and the local width there."""
        yc = math.log(self.sw2) + np.linspace(-12.0, 2.0, 141)
        f = self.logp(self.phi[:, None], yc[None, :], u, b, c)[0]
        y = yc[np.argmax(f, axis=1)]
        e = 1e-4
        for _ in range(60):
            f0 = self.logp(self.phi, y, u, b, c)[0]
            fp = self.logp(self.phi, y + e, u, b, c)[0]
            fm = self.logp(self.phi, y - e, u, b, c)[0]
            g1, g2 = (fp - fm) / (2 * e), (fp - 2 * f0 + fm) / (e * e)
            step = np.where(g2 < 0, -g1 / np.where(g2 < 0, g2, -1.0), np.sign(g1) * 0.05)
            step = np.clip(step, -0.05, 0.05)
            y = y + step
            if np.max(np.abs(step)) < 1e-10:
                break
        g2 = (self.logp(self.phi, y + e, u, b, c)[0] - 2 * self.logp(self.phi, y, u, b, c)[0]
              + self.logp(self.phi, y - e, u, b, c)[0]) / (e * e)
        return y, 1.0 / np.sqrt(np.maximum(-g2, 1e-6))

    def grid(self, u, b, c):
        """(log-weight, m1, m3, phi, q) on the 2-D grid, and per-Phi log marginal."""
        phi = self.phi[:, None]
        if self.perp == "fixed":
            y = np.full((self.phi.size, 1), math.log(self.sw2))
            lw, m1, m3 = self.logp(phi, y, u, b, c)
            lw = lw + np.log(self.wphi)[:, None]
        else:
            if self.d <= _D_GLOBAL:   # one y grid for all Phi: robust to a skewed or
                hy = 0.35 * math.sqrt(2.0 / self.d)  # bimodal law of q at small d
                lo = min(14.0, max(3.0, 150.0 / (self.d - 1)))
                yg = np.arange(math.log(self.sw2) - lo, math.log(self.sw2) + 2.0, hy)
                y = np.broadcast_to(yg[None, :], (self.phi.size, yg.size))
                lw, m1, m3 = self.logp(phi, y, u, b, c)
                lw = lw + np.log(self.wphi * hy)[:, None]
            else:
                ys, s = self._ysaddle(u, b, c)
                t = np.linspace(-_T, _T, _NT)
                y = ys[:, None] + s[:, None] * t[None, :]
                lw, m1, m3 = self.logp(phi, y, u, b, c)
                lw = lw + np.log(self.wphi * s * (t[1] - t[0]))[:, None]
        return lw, m1, m3, np.broadcast_to(phi, lw.shape), np.exp(y) * np.ones(lw.shape)


def _basins(lmarg):
    """Index of the barrier (marginal minimum between the Phi = 0 peak and the droplet peak),
    or None when the Phi-marginal has no second peak."""
    dl = np.diff(lmarg)
    up = np.nonzero((dl[:-1] < 0) & (dl[1:] >= 0))[0]
    return int(up[0] + 1) if up.size else None


def _moments_of(law, u, b, c, basin):
    """Averages over the law (all, or the Phi = 0 basin only with basin='gfl')."""
    from scipy.special import logsumexp
    lw, m1, m3, phi, q = law.grid(u, b, c)
    lmax = lw.max()
    w = np.exp(lw - lmax)
    lmarg = logsumexp(lw, axis=1)
    bar = _basins(lmarg)
    m0 = w[:bar].sum() if bar is not None else w.sum()
    md = w[bar:].sum() if bar is not None else 0.0
    wd = np.exp(lw[bar:] - lw[bar:].max()) if bar is not None else None
    if basin == "gfl" and bar is not None:   # renormalised on the basin: no underflow
        w = np.zeros_like(lw)
        w[:bar] = np.exp(lw[:bar] - lw[:bar].max())
    Z = w.sum()
    p2 = phi * phi
    avg = lambda f: float((w * f).sum() / Z)
    k11, k13, k33 = avg(p2 * m1 * m1), avg(p2 * p2 * m1 * m3), avg(p2 ** 3 * m3 * m3)
    ldens = lmarg - np.log(law.wphi)          # log density of the Phi-marginal (kT units)
    pk = bar + int(np.argmax(ldens[bar:])) if bar is not None else None
    return {"K": np.array([[k11, k13 / math.sqrt(6)], [k13 / math.sqrt(6), k33 / 6]]),
            "phi2": avg(p2), "q": avg(q), "V": avg(p2 + q),
            "droplet_mass": float(md / (m0 + md)),
            "barrier": float(law.phi[bar]) if bar is not None else math.nan,
            "droplet_phi": float(law.phi[pk]) if bar is not None else math.nan,
            "q_droplet": float((wd * q[bar:]).sum() / wd.sum()) if bar is not None
            else math.nan,
            "dF": float((logsumexp(lw[:bar]) - logsumexp(lw[bar:])) / law.d)
            if bar is not None else math.inf,
            "edge": float(lmarg[-1] - lmarg.max()),
            "exit_barrier": float(ldens[pk] - ldens[bar]) if bar is not None else math.nan,
            "entry_barrier": float(ldens[:bar].max() - ldens[bar]) if bar is not None
            else math.nan}


def _setup(d, sigma_w2, perp, width, u, rho):
    d = check_int("d", d, 3, 10 ** 6)       # the quadrature grid grows with d: 1e7 takes minutes
    sw2 = check_range("sigma_w2", sigma_w2, 0, 1e3, lo_open=True)
    perp = check_choice("perp", perp, ("chi2", "fixed"))
    cav = 0.0
    if width is not None:
        width = check_int("width", width, 1, 10 ** 12)
        cav = math.sqrt(u * rho) * d / width
    return _Law(d, sw2, perp, cav)


def finite_d_averages(u, b, c, d, sigma_w2=0.5, perp="chi2", width=None, rho=None,
                      basin="all"):
    r"""Averages over the finite-d single-neuron law :math:`p(\Phi,q)` at fixed (b, c).

    .. math:: p(\Phi,q)\propto q^{\frac{d-3}2}e^{-d(\Phi^2+q)/2\sigma_w^2+d\,u\,g^2/2L}
              L^{-1/2},\quad g=b\Phi m_1(\Phi^2+q)+c\Phi^3m_3(\Phi^2+q)

    (module docstring; Rubin et al. 2023, Eq. 7 in the EK limit). ``width`` (N) switches on
    the cavity factor L (then ``rho`` is needed); ``basin="gfl"`` restricts to the Phi = 0
    basin. Returns a dict: ``K`` (the 2x2 matrix :math:`\hat K`), ``phi2`` =
    :math:`\langle\Phi^2\rangle`, ``q`` = :math:`\langle q\rangle`, ``V`` =
    :math:`\langle|w|^2\rangle`, ``droplet_mass`` (mass beyond the barrier), ``barrier``,
    ``droplet_phi`` (peak of the Phi-marginal), ``q_droplet`` (mean q there), ``dF``
    (:math:`-\ln(M_{\rm drop}/M_0)/d`),
    ``edge`` (log-marginal at the grid end relative to its maximum) and the barriers of the
    free energy :math:`-\ln p(\Phi)` of the Phi-marginal in units of the temperature:
    ``exit_barrier`` from the droplet peak, ``entry_barrier`` from the Phi = 0 side (NaN
    without a droplet basin).

    Examples
    --------
    >>> a = finite_d_averages(10.0, 0.5, -0.3, d=150)
    >>> round(a["q"], 3), a["droplet_mass"] < 1e-6
    (0.489, True)
    """
    u = check_range("u", u, 0, 1e6)
    b = check_range("b", b, -10, 10)
    c = check_range("c", c, -100, 100)
    basin = check_choice("basin", basin, ("all", "gfl"))
    if width is not None:
        rho = check_range("rho", rho, 0, 1e12, lo_open=True)
    return _moments_of(_setup(d, sigma_w2, perp, width, u, rho), u, b, c, basin)


@dataclass(frozen=True)
class FiniteDStateResult(Result):
    """Self-consistent state at one u: discrepancies, droplet mass and the law's averages."""
    u: float
    b: float
    c: float
    learned_cubic: float
    droplet_mass: float
    phi2: float
    q_mean: float
    dF: float
    residual: float
    status: int
    message: str
    nit: int
    params: dict = field(default_factory=dict)


def _solve(law, u, rho, eps, basin, guess):
    """Root of F(r) = (I + v d K(r)) r - y in r = (b, sqrt6 c): (r, averages, residual, nfev)."""
    from scipy.optimize import root
    y = np.array([1.0, math.sqrt(6) * eps])
    vd = math.sqrt(u * rho) * law.d

    def F(r):
        a = _moments_of(law, u, r[0], r[1] / math.sqrt(6), basin)
        return (np.eye(2) + vd * a["K"]) @ r - y
    sol = root(F, np.asarray(guess, dtype=float), method="hybr", options={"xtol": 1e-11})
    r = sol.x
    a = _moments_of(law, u, r[0], r[1] / math.sqrt(6), basin)
    res = float(np.max(np.abs((np.eye(2) + vd * a["K"]) @ r - y)))
    return r, a, res, int(sol.nfev)


def _gfl_guess(u, rho, sw2, eps):
    from .cubic import gfl_b
    return [gfl_b(u, rho, sw2), math.sqrt(6) * eps]


def finite_d_state(eps, u, rho, d, sigma_w2=0.5, perp="chi2", width=None, branch="full",
                   guess=None):
    r"""Self-consistent (b, c) at interaction u with the integrated finite-d law.

    .. math:: (b,\sqrt6c)^\top=[I_2+v\,d\,\hat K(b,c)]^{-1}(1,\sqrt6\epsilon)^\top,
              \quad v=\sqrt{u\rho}

    (module docstring). ``branch="gfl"`` averages over the Phi = 0 basin only (the metastable
    GFL phase). ``guess``: starting (b, c) (default: the EK GFL branch). Status 0 needs the
    residual below 1e-8, a law negligible at the grid end, and :math:`0<b\le1`.

    Examples
    --------
    >>> r = finite_d_state(-0.3, 20.0, 8 / 150, d=150)
    >>> r.converged, round(r.b, 3), r.droplet_mass < 1e-3
    (True, 0.342, True)
    """
    eps = check_range("eps", eps, -100, 100)
    u = check_range("u", u, 0, 1e6, lo_open=True)
    rho = check_range("rho", rho, 0, 1e12, lo_open=True)
    branch = check_choice("branch", branch, ("full", "gfl"))
    law = _setup(d, sigma_w2, perp, width, u, rho)
    g0 = _gfl_guess(u, rho, law.sw2, eps) if guess is None else [guess[0],
                                                                   math.sqrt(6) * guess[1]]
    r, a, res, nfev = _solve(law, u, rho, eps, "gfl" if branch == "gfl" else "all", g0)
    b, c = float(r[0]), float(r[1] / math.sqrt(6))
    bad = []
    if not (math.isfinite(b) and math.isfinite(c)):
        status, detail = 3, None
    else:
        if res > 1e-8:
            bad.append(f"residual {res:.3g}")
        if a["edge"] > -30:
            bad.append(f"law not negligible at Phi={_PHI_MAX}")
        if not 0 < b <= 1:
            bad.append(f"b={b:.4g} outside (0, 1]")
        status, detail = (4 if bad else 0), "; ".join(bad) or None
    params = {"eps": eps, "u": u, "rho": rho, "d": law.d, "sigma_w2": law.sw2, "perp": perp,
              "width": width, "branch": branch}
    return FiniteDStateResult(u, b, c, 1 - c / eps if eps else math.nan, a["droplet_mass"],
                              a["phi2"], a["q"], a["dF"], res, status,
                              status_message(status, detail), nfev, params)


@dataclass(frozen=True)
class FiniteDTransitionResult(Result):
    r"""Finite-d first-order point: equal basin free energies on the GFL branch.

    ``u_c``; ``b_at_uc``, ``c_at_uc`` (GFL branch there); ``phi_star`` (peak of the droplet
    Phi-marginal); ``q_droplet`` (mean :math:`|w_\perp|^2` in the droplet basin: below
    :math:`\sigma_w^2` with the exact law); ``sigma2_c`` when n, width, sigma_a2 are given;
    ``residual`` = :math:`|\Delta F(u_c)|`.
    """
    u_c: float
    b_at_uc: float
    c_at_uc: float
    phi_star: float
    q_droplet: float
    sigma2_c: float | None
    residual: float
    status: int
    message: str
    nit: int
    params: dict = field(default_factory=dict)


def finite_d_transition(eps, rho, d, sigma_w2=0.5, perp="chi2", width=None, n=None,
                        sigma_a2=None, u_lo=5.0, u_hi=60.0, n_scan=12):
    r"""First-order point :math:`u_c(d)`: :math:`\Delta F(u)=0` on the finite-d GFL branch.

    .. math:: \Delta F(u)=-\frac1d\ln\frac{\int_{\Phi>\Phi_b}p}{\int_{\Phi<\Phi_b}p}=0,

    with (b, c) self-consistent over the Phi = 0 basin (:func:`finite_d_state`,
    ``branch="gfl"``) and :math:`\Phi_b` the barrier of the Phi-marginal. Brent in u on
    ``[u_lo, u_hi]`` after a scan of ``n_scan`` points for the first sign change; the GFL
    branch is continued upward from ``u_lo`` (start ``u_lo`` where the law has one peak).
    ``width`` switches on the cavity factor;
    with ``n`` and ``sigma_a2``, :math:`\sigma^2_c=\sqrt{n^2\sigma_a^2/(u_cdN)}` is given
    (:math:`N=\rho d/\sigma_a^2`).

    Examples
    --------
    >>> r = finite_d_transition(-0.3, 8 / 150, d=150, u_lo=20, u_hi=29, n_scan=10)
    >>> r.converged, round(r.u_c, 1), r.q_droplet < 0.5
    (True, 27.2, True)
    """
    from scipy.optimize import brentq
    branch = _GflBranch(eps, rho, d, sigma_w2, perp, width)
    u_lo, u_hi, n_scan = _scan_range(u_lo, u_hi, n_scan)

    def dF(u):
        s = branch(u)
        return s.dF if math.isfinite(s.dF) else 1.0
    us = np.linspace(u_lo, u_hi, n_scan)
    vals = [dF(x) for x in us]
    k = next((i for i in range(1, len(us)) if vals[i - 1] > 0 >= vals[i]), None)
    nan = math.nan
    if k is None:
        return FiniteDTransitionResult(nan, nan, nan, nan, nan, None, nan, 1, status_message(
            1, f"Delta F does not change sign on u in [{u_lo:g}, {u_hi:g}]"), branch.nit,
            branch.params)
    uc = brentq(dF, us[k - 1], us[k], xtol=1e-9)
    s = branch(uc)
    a = branch.averages(uc)
    s2 = branch.sigma2(uc, n, sigma_a2)
    status = s.status if s.status else (0 if abs(s.dF) < 1e-8 else 2)
    detail = (s.message.partition(": ")[2] or None) if s.status else (
        None if status == 0 else f"|Delta F(u_c)|={abs(s.dF):.3g} (a jump in u)")
    return FiniteDTransitionResult(uc, s.b, s.c, a["droplet_phi"], a["q_droplet"], s2,
                                   abs(s.dF), status, status_message(status, detail), branch.nit,
                                   branch.params)


class _GflBranch:
    """The GFL branch (``finite_d_state(..., branch="gfl")``) along u, by continuation: each
    u starts from the nearest converged state already solved below it (the GFL-basin equations
    can have a second root with a smaller basin and a larger b)."""

    def __init__(self, eps, rho, d, sigma_w2, perp, width):
        self.eps = check_range("eps", eps, -100, 100)
        self.rho = check_range("rho", rho, 0, 1e12, lo_open=True)
        self.args = (d, sigma_w2, perp, width)
        self.cache, self.nit = {}, 0
        self.params = {"eps": self.eps, "rho": self.rho, "d": d, "sigma_w2": sigma_w2,
                       "perp": perp, "width": width}

    def __call__(self, u):
        if u not in self.cache:
            below = [x for x in self.cache if x < u and self.cache[x].converged]
            g = (self.cache[max(below)].b, self.cache[max(below)].c) if below else None
            self.cache[u] = finite_d_state(self.eps, u, self.rho, *self.args, "gfl", g)
            self.nit += 1
        return self.cache[u]

    def averages(self, u):
        """Averages of the whole law (both basins) at the branch's (b, c)."""
        s = self(u)
        return _moments_of(_setup(*self.args, u, self.rho), u, s.b, s.c, "all")

    def sigma2(self, u, n, sigma_a2):
        r""":math:`\sigma^2=\sqrt{n^2\sigma_a^2/(u\,dN)}` with :math:`N=\rho d/\sigma_a^2`,
        or None without ``n`` and ``sigma_a2``."""
        if n is None or sigma_a2 is None:
            return None
        n = check_int("n", n, 1, 10 ** 12)
        sigma_a2 = check_range("sigma_a2", sigma_a2, 0, 1e12, lo_open=True)
        d = self.args[0]
        return math.sqrt(n * n * sigma_a2 * sigma_a2 / (u * d * d * self.rho))


def _scan_range(u_lo, u_hi, n_scan):
    u_lo = check_range("u_lo", u_lo, 0, 1e6, lo_open=True)
    u_hi = check_range("u_hi", u_hi, u_lo, 1e6, lo_open=True)
    return u_lo, u_hi, check_int("n_scan", n_scan, 2, 1000)


@dataclass(frozen=True)
class FiniteDSpinodalResult(Result):
    r"""Finite-d droplet spinodal: where the droplet basin of the Phi-marginal first exists on
    the GFL branch.

    ``u_s``; ``b_at_us``, ``c_at_us`` (GFL branch there); ``phi_droplet`` (where the second
    peak of the Phi-marginal appears); ``sigma2_s`` when n and sigma_a2 are given;
    ``residual`` = width of the final bracket in u.
    """
    u_s: float
    b_at_us: float
    c_at_us: float
    phi_droplet: float
    sigma2_s: float | None
    residual: float
    status: int
    message: str
    nit: int
    params: dict = field(default_factory=dict)


def finite_d_spinodal(eps, rho, d, sigma_w2=0.5, perp="chi2", width=None, n=None,
                      sigma_a2=None, u_lo=5.0, u_hi=60.0, n_scan=12, xtol=1e-6):
    r"""Droplet spinodal :math:`u_s(d)`: the smallest u at which the Phi-marginal of the
    finite-d law has a second (droplet) peak on the GFL branch.

    .. math:: p(\Phi)=\int_0^\infty dq\,p(\Phi,q;u,b_{\rm GFL}(u),c_{\rm GFL}(u)),\qquad
              u_s=\inf\{u:\ p(\Phi)\ \text{has a local maximum at}\ \Phi>0\}

    (module docstring; the finite-d counterpart of the spinodal of
    :func:`~kernelphase.solvers.cubic.cubic_transition`, where :math:`\hat S` first has a
    minimum at :math:`\Phi_*\ne0`). Between :math:`u_s` and the first-order point
    :math:`u_c` (:func:`finite_d_transition`) a lone droplet on a GFL network is metastable;
    its exit barrier is ``exit_barrier`` of :func:`finite_d_averages`. The GFL branch is
    continued upward from ``u_lo`` (where the marginal has one peak); a scan of ``n_scan``
    points brackets the onset, bisection narrows it to ``xtol`` in u (the Phi grid, step
    :math:`\le0.01`, sets the accuracy: a peak narrower than a grid step is not seen). ``width``
    switches on the cavity factor; with ``n`` and ``sigma_a2``, ``sigma2_s`` is given as in
    :func:`finite_d_transition`.

    Examples
    --------
    The ``hyst-wide`` preset at scale 1/4 (d = 75, eps = -3, sigma_w^2 = 0.25, rho = 1): the
    droplet basin appears at u = 1.304 (EK spinodal 1.532), below u_c = 1.587:

    >>> r = finite_d_spinodal(-3.0, 1.0, d=75, sigma_w2=0.25, u_lo=1.0, u_hi=1.6, n_scan=7)
    >>> r.converged, round(r.u_s, 3), r.phi_droplet > 0.6
    (True, 1.304, True)
    """
    branch = _GflBranch(eps, rho, d, sigma_w2, perp, width)
    u_lo, u_hi, n_scan = _scan_range(u_lo, u_hi, n_scan)
    xtol = check_range("xtol", xtol, 0, 1, lo_open=True)
    has = lambda u: math.isfinite(branch(u).dF)
    us = np.linspace(u_lo, u_hi, n_scan)
    nan = math.nan
    k = next((i for i, x in enumerate(us) if has(x)), None)
    if not k:
        why = (f"a droplet basin already at u_lo={u_lo:g}" if k == 0 else
               f"no droplet basin on u in [{u_lo:g}, {u_hi:g}]")
        return FiniteDSpinodalResult(nan, nan, nan, nan, None, nan, 1, status_message(1, why),
                                     branch.nit, branch.params)
    lo, hi = float(us[k - 1]), float(us[k])
    while hi - lo > xtol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if has(mid) else (mid, hi)
    s = branch(hi)
    a = branch.averages(hi)
    status = s.status if s.status else 0
    detail = (s.message.partition(": ")[2] or None) if s.status else None
    return FiniteDSpinodalResult(hi, s.b, s.c, a["droplet_phi"], branch.sigma2(hi, n, sigma_a2),
                                 hi - lo, status, status_message(status, detail), branch.nit,
                                 branch.params)
