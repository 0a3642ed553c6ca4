r"""Cubic teacher: GFL self-consistency, saddle points and the GFL -> GMFL-I transition.

Rubin, Seroussi & Ringel (2023), App. A.2-A.4, in the equivalent-kernel limit, :math:`d\to\infty`.
The per-d action :math:`\hat{\mathcal S}(\Phi;u,b,c,\sigma_w^2)` comes from
:func:`kernelphase.actions.cubic_action` and is compiled by :mod:`kernelphase.codegen`.

* **GFL** (single Gaussian at :math:`\Phi=0`): :math:`c=\epsilon` and :math:`b` solves

  .. math:: b\Big[1+\frac{4v}{\pi(1+2\sigma_w^2)\,\kappa(b)}\Big]=1,\qquad
            \kappa(b)=\partial_\Phi^2\hat{\mathcal S}(0)=\frac1{\sigma_w^2}-\frac{4ub^2}{\pi(1+2\sigma_w^2)},

  with :math:`v=n\sigma_a^2/(\sigma^2d)=\sqrt{u\rho}`, :math:`\rho=N\sigma_a^2/d` (the GP
  average of the (1,1) kernel entry over the Gaussian of variance :math:`1/(d\kappa)`).
* **Spinodal** :math:`u_s`: a nontrivial local minimum first exists, i.e.
  :math:`m(u)=\min_{\Phi>0}\hat{\mathcal S}'(\Phi)/\Phi` crosses zero (root-found).
* **First-order point** :math:`u_c`: the nontrivial minimum is degenerate with :math:`\Phi=0`,
  :math:`\hat{\mathcal S}(\Phi_*)=0` (root-found in :math:`u`, Claim IV).
* **GMFL-I** (:math:`u>u_c`): the minima stay degenerate; unknowns :math:`(b,c,\varphi,q_*)`,
  :math:`\varphi=d\times` droplet fraction, solve :math:`\hat{\mathcal S}(q_*)=\hat{\mathcal S}'(q_*)=0`
  and :math:`(b,\sqrt6c)^\top=[I+v(\hat Q_0+\varphi\hat Q(q_*))]^{-1}(1,\sqrt6\epsilon)^\top`.

All numerics run in numba (``cache=True``); :mod:`kernelphase.solvers.reference` holds a slow,
separately written scipy version used by the tests.
"""
import functools
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from kernelphase._checks import check_int, check_positive, check_range
from kernelphase.results import Result, status_message

__all__ = ["cubic_transition", "cubic_phase", "gfl_b", "action_minima", "CubicTransitionResult",
           "CubicPhaseResult", "compiled_action", "cubic_phase_scaled", "u_from_sigma2",
           "sigma2_from_u"]

_DETAIL = {1: "no transition (no nontrivial minimum for u <= u_max)"}

_NGRID = 400
_PHI_MAX = 4.0


@functools.lru_cache(maxsize=None)
def compiled_action():
    """numba functions (S, dS/dPhi, d2S/dPhi2) of (Phi, u, b, c, sigma_w2), and kernel entries."""
    import sympy as sp
    from kernelphase.actions import SYMBOLS, cubic_action, cubic_kernel_entries
    from kernelphase.codegen import numba_function
    s = SYMBOLS
    args = (s["Phi"], s["u"], s["b"], s["c"], s["sigma_w2"])
    S = cubic_action()
    fS = numba_function((S, sp.diff(S, s["Phi"]), sp.diff(S, s["Phi"], 2)), args, name="action")
    fQ = numba_function(cubic_kernel_entries(), (s["Phi"], s["sigma_w2"]), name="kernel")
    return fS, fQ


_fS, _fQ = compiled_action()


@njit(cache=True)
def _kappa(u, b, sw2):
    return _fS(0.0, u, b, 0.0, sw2)[2]


@njit(cache=True)
def _gfl_b(u, v, sw2):
    """Root of b (1 + 4 v / (pi (1 + 2 sw2) kappa(b))) - 1 on (0, b_max) by bisection."""
    bmax = 1.0
    bk = math.sqrt(math.pi * (1 + 2 * sw2) / (4 * sw2 * u)) if u > 0 else 2.0
    if bk < bmax:
        bmax = bk
    lo, hi = 0.0, bmax
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        k = _kappa(u, mid, sw2)
        if k <= 0:
            hi = mid
            continue
        f = mid * (1 + 4 * v / (math.pi * (1 + 2 * sw2) * k)) - 1
        if f > 0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)


@njit(cache=True)
def _refine_min(lo, hi, u, b, c, sw2):
    """Safeguarded Newton on dS in [lo, hi] with dS(lo) < 0 < dS(hi)."""
    x = 0.5 * (lo + hi)
    for _ in range(100):
        _, g, h = _fS(x, u, b, c, sw2)
        if g < 0:
            lo = x
        else:
            hi = x
        xn = x - g / h if h > 0 else 0.5 * (lo + hi)
        if not (lo < xn < hi):
            xn = 0.5 * (lo + hi)
        if abs(xn - x) < 1e-15 * (1 + abs(x)):
            x = xn
            break
        x = xn
    return x


@njit(cache=True)
def _minima(u, b, c, sw2, out):
    """All local minima with Phi > 0 of the action on (0, PHI_MAX]; returns their count.

    out[k] = (Phi_k, S_k, S''_k). Phi = 0 is always stationary (checked separately).
    """
    m = 0
    h = _PHI_MAX / _NGRID
    x0 = h * 1e-3
    g0 = _fS(x0, u, b, c, sw2)[1]
    for i in range(1, _NGRID + 1):
        x1 = i * h
        g1 = _fS(x1, u, b, c, sw2)[1]
        if g0 < 0 <= g1 and m < out.shape[0]:
            xm = _refine_min(x0, x1, u, b, c, sw2)
            val, _, curv = _fS(xm, u, b, c, sw2)
            out[m, 0] = xm
            out[m, 1] = val
            out[m, 2] = curv
            m += 1
        x0, g0 = x1, g1
    return m


@njit(cache=True)
def _min_slope(u, b, c, sw2):
    """m = min over Phi > 0 of S'(Phi)/Phi (negative iff a nontrivial minimum exists)."""
    best = 1e300
    h = _PHI_MAX / _NGRID
    ib = 1
    for i in range(1, _NGRID + 1):
        x = i * h
        r = _fS(x, u, b, c, sw2)[1] / x
        if r < best:
            best, ib = r, i
    lo, hi = max(ib - 1, 1e-3) * h, (ib + 1) * h
    for _ in range(80):  # golden section refine
        a = hi - 0.618033988749895 * (hi - lo)
        bb = lo + 0.618033988749895 * (hi - lo)
        if _fS(a, u, b, c, sw2)[1] / a < _fS(bb, u, b, c, sw2)[1] / bb:
            hi = bb
        else:
            lo = a
    x = 0.5 * (lo + hi)
    r = _fS(x, u, b, c, sw2)[1] / x
    return r if r < best else best


@njit(cache=True)
def _gfl_state(u, rho, eps, sw2, work):
    """GFL at u: (b, lowest nontrivial minimum Phi*, its action, count of nontrivial minima)."""
    b = _gfl_b(u, math.sqrt(u * rho), sw2)
    k = _minima(u, b, eps, sw2, work)
    phi, val = 0.0, np.inf
    for j in range(k):
        if work[j, 1] < val:
            phi, val = work[j, 0], work[j, 1]
    return b, phi, val, k


@njit(cache=True)
def _spinodal_fn(u, rho, eps, sw2):
    b = _gfl_b(u, math.sqrt(u * rho), sw2)
    return _min_slope(u, b, eps, sw2)


@njit(cache=True)
def _transition(rho, eps, sw2, u_max):
    """Return (status, u_s, u_c, phi_star, b_at_uc, residual, nit)."""
    work = np.empty((8, 3))
    # spinodal: bracket m(u) = 0 on a geometric ladder, then bisection
    lo = 1e-3
    if _spinodal_fn(lo, rho, eps, sw2) <= 0:
        return 3, np.nan, np.nan, np.nan, np.nan, np.nan, 0
    hi = lo
    while _spinodal_fn(hi, rho, eps, sw2) > 0:
        lo = hi
        hi *= 1.5
        if hi > u_max:
            return 1, np.nan, np.nan, np.nan, np.nan, np.nan, 0
    nit = 0
    for nit in range(200):
        mid = 0.5 * (lo + hi)
        if _spinodal_fn(mid, rho, eps, sw2) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * hi:
            break
    u_s = hi
    # first-order point: S(Phi*) = 0 (decreasing in u beyond the spinodal)
    lo = u_s
    hi = u_s * 1.05
    while _gfl_state(hi, rho, eps, sw2, work)[2] > 0:
        lo = hi
        hi *= 1.2
        if hi > u_max:
            return 1, u_s, np.nan, np.nan, np.nan, np.nan, nit
    for nit2 in range(200):
        mid = 0.5 * (lo + hi)
        st = _gfl_state(mid, rho, eps, sw2, work)
        if st[3] > 0 and st[2] > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-14 * hi:
            break
    u_c = 0.5 * (lo + hi)
    b, phi, val, k = _gfl_state(u_c, rho, eps, sw2, work)
    g = _fS(phi, u_c, b, eps, sw2)[1]
    return 0, u_s, u_c, phi, b, max(abs(val), abs(g)), nit + nit2


@dataclass(frozen=True)
class CubicTransitionResult(Result):
    """GFL -> GMFL-I transition of the cubic teacher.

    ``u_spinodal``: first appearance of the nontrivial (metastable) minimum; ``u_c``: equal
    action (first-order point); ``phi_star``: overlap of the droplet minimum at ``u_c``;
    ``b_at_uc``: linear discrepancy there; ``sigma2_c``: the noise level with that ``u``
    (only when n, d, N, sigma_a^2 are given). Between ``u_spinodal`` and ``u_c`` the droplet
    minimum exists but is metastable (hysteresis window).
    """
    u_spinodal: float
    u_c: float
    phi_star: float
    b_at_uc: float
    sigma2_c: float | None
    residual: float
    status: int
    message: str
    nit: int
    params: dict = field(default_factory=dict)


def _rho_from(rho, n, d, width, sigma_a2):
    phys = (n, d, width, sigma_a2)
    if rho is not None:
        if any(p is not None for p in phys):
            raise ValueError("give either rho or all of n, d, width, sigma_a2, not both")
        return check_positive("rho", rho), None
    if any(p is None for p in phys):
        raise ValueError("give rho, or all of n, d, width and sigma_a2")
    n = check_int("n", n, 1)
    d = check_int("d", d, 1)
    width = check_int("width", width, 1)
    sigma_a2 = check_positive("sigma_a2", sigma_a2)
    return width * sigma_a2 / d, (n, d, width, sigma_a2)


def sigma2_from_u(u, n, d, width, sigma_a2):
    r""":math:`\sigma^2=\sqrt{n^2\sigma_a^2/(u\,dN)}` (inverse of :math:`u=n^2\sigma_a^2/(\sigma^4dN)`)."""
    return math.sqrt(n * n * sigma_a2 / (u * d * width))


def u_from_sigma2(sigma2, n, d, width, sigma_a2):
    r""":math:`u=n^2\sigma_a^2/(\sigma^4dN)` (Rubin et al., App. A.2)."""
    return n * n * sigma_a2 / (sigma2 ** 2 * d * width)


def cubic_transition(eps, sigma_w2=0.5, rho=None, n=None, d=None, width=None, sigma_a2=None,
                     u_max=1e6):
    r"""Locate the spinodal and the first-order GFL -> GMFL-I point of the cubic teacher.

    Parameters
    ----------
    eps : float
        Cubic teacher coefficient, :math:`y=\mathrm{He}_1+\epsilon\,\mathrm{He}_3`.
    sigma_w2 : float
        Read-in prior variance times d, :math:`w\sim\mathcal N(0,\sigma_w^2/d\,I)`.
    rho : float, optional
        Scaling invariant :math:`\rho=N\sigma_a^2/d`; or give ``n, d, width, sigma_a2``
        (:math:`\sigma_a^2` the summed readout variance, :math:`a_i\sim\mathcal N(0,\sigma_a^2/N)`).

    Examples
    --------
    >>> r = cubic_transition(-0.3, 0.5, n=3000, d=150, width=700, sigma_a2=8/700)
    >>> round(r.u_c, 1), round(r.sigma2_c, 3)  # doctest: +SKIP
    """
    eps = check_range("eps", eps)
    sw2 = check_positive("sigma_w2", sigma_w2)
    rho_, phys = _rho_from(rho, n, d, width, sigma_a2)
    u_max = check_positive("u_max", u_max)
    params = {"eps": eps, "sigma_w2": sw2, "rho": rho_}
    if phys:
        params.update(zip(("n", "d", "width", "sigma_a2"), phys))
    if eps == 0.0:
        st, us, uc, phi, b, res, nit = 1, np.nan, np.nan, np.nan, np.nan, np.nan, 0
    else:
        st, us, uc, phi, b, res, nit = _transition(rho_, eps, sw2, u_max)
    s2 = sigma2_from_u(uc, *phys) if (phys and st == 0) else None
    return CubicTransitionResult(u_spinodal=float(us), u_c=float(uc), phi_star=float(phi),
                                 b_at_uc=float(b), sigma2_c=s2, residual=float(res),
                                 status=int(st), message=status_message(st, _DETAIL.get(int(st))),
                                 nit=int(nit), params=params)


def gfl_b(u, rho, sigma_w2=0.5):
    """Linear discrepancy b on the GFL branch (c = eps there)."""
    return float(_gfl_b(check_positive("u", u), math.sqrt(u * check_positive("rho", rho)),
                        check_positive("sigma_w2", sigma_w2)))


def action_minima(u, b, c, sigma_w2=0.5):
    """All local minima of the per-d action with Phi >= 0: array of rows (Phi, S, S'')."""
    work = np.empty((8, 3))
    k = _minima(float(u), float(b), float(c), float(sigma_w2), work)
    rows = [(0.0, 0.0, _fS(0.0, u, b, c, sigma_w2)[2])] if _fS(0.0, u, b, c, sigma_w2)[2] > 0 else []
    return np.array(rows + [tuple(r) for r in work[:k]]).reshape(-1, 3)


@dataclass(frozen=True)
class CubicPhaseResult(Result):
    """State of the cubic model at one noise level: phase, discrepancies, droplets."""
    phase: str
    u: float
    b: float
    c: float
    phi_star: float
    droplet_fraction: float
    learned_cubic: float
    metastable: bool
    residual: float
    status: int
    message: str
    params: dict = field(default_factory=dict)


@njit(cache=True, error_model="numpy")
def _gmfl1_residual(z, u, v, eps, sw2):
    """GMFL-I equations: 2x2 GPR for (b, sqrt6 c), S(q*) = 0 and S'(q*) = 0 (scaled by 100)."""
    b, c, phi_d, q = z[0], z[1], z[2], z[3]
    S, dS, _ = _fS(q, u, b, c, sw2)
    k = _kappa(u, b, sw2)
    Q11, Q12, Q22 = _fQ(q, sw2)
    m11 = 1.0 + v * (4.0 / (math.pi * (1 + 2 * sw2) * k) + phi_d * Q11)
    m12 = v * phi_d * Q12
    m22 = 1.0 + v * phi_d * Q22
    y1, y2 = 1.0, math.sqrt(6.0) * eps
    det = m11 * m22 - m12 * m12
    out = np.empty(4)
    out[0] = (m22 * y1 - m12 * y2) / det - b
    out[1] = (m11 * y2 - m12 * y1) / det - math.sqrt(6.0) * c
    out[2] = 100.0 * S
    out[3] = 100.0 * dS
    return out


@njit(cache=True, error_model="numpy")
def _gmfl1_newton(z0, u, v, eps, sw2):
    """Damped Gauss-Newton / Levenberg-Marquardt with a finite-difference Jacobian.

    Returns (z, max|F|, converged)."""
    z = z0.copy()
    F = _gmfl1_residual(z, u, v, eps, sw2)
    J = np.empty((4, 4))
    for _ in range(60):
        norm = np.max(np.abs(F))
        if norm < 1e-12:
            return z, norm, True
        for j in range(4):
            h = 1e-7 * max(1.0, abs(z[j]))
            zp = z.copy()
            zp[j] += h
            J[:, j] = (_gmfl1_residual(zp, u, v, eps, sw2) - F) / h
        JT = J.T
        A = JT @ J
        mu = 1e-12 * (np.trace(A) + 1e-300)
        for i in range(4):
            A[i, i] += mu
        dz = np.linalg.solve(A, -(JT @ F))  # Levenberg-Marquardt step (never singular)
        t = 1.0
        while t > 1e-4:
            zn = z + t * dz
            Fn = _gmfl1_residual(zn, u, v, eps, sw2)
            if np.all(np.isfinite(Fn)) and np.max(np.abs(Fn)) < norm:
                break
            t *= 0.5
        z, F = zn, Fn
    norm = np.max(np.abs(F))
    return z, norm, norm < 1e-10


def _gmfl1(u, rho, eps, sw2, d, start):
    """Solve the GMFL-I (Maxwell) system for (b, c, varphi, q*) starting at ``start``."""
    z, res, ok = _gmfl1_newton(np.asarray(start, float), u, math.sqrt(u * rho), eps, sw2)
    return z, float(res), bool(ok)


def cubic_phase_scaled(eps, u, rho, sigma_w2=0.5, d=150, transition=None):
    r"""Phase and order parameters at interaction ``u`` for invariants ``rho``, ``sigma_w2``.

    ``d`` converts :math:`\varphi` (droplet weight times d) to the droplet fraction.
    ``transition`` may pass a precomputed :func:`cubic_transition` result for these invariants.
    """
    u = check_positive("u", u)
    tr = transition or cubic_transition(eps, sigma_w2, rho=rho)
    params = {"eps": eps, "sigma_w2": sigma_w2, "rho": rho, "u": u, "d": d}
    work = np.empty((8, 3))
    if not tr.converged or u <= tr.u_c:
        b, phi, val, k = _gfl_state(u, rho, eps, sigma_w2, work)
        return CubicPhaseResult("GFL", u, float(b), eps, float(phi) if k else 0.0, 0.0, 0.0,
                                bool(k > 0), 0.0, 0, status_message(0), params)
    # continue GMFL-I from u_c in small steps in log u (no silent branch jumps)
    z0 = np.array([tr.b_at_uc, eps, 0.0, tr.phi_star])
    for steps in (2, 6, 24):  # direct first; finer continuation only if the solve fails
        z, res, ok = z0, 0.0, True
        for uu in np.geomspace(tr.u_c, u, steps)[1:]:
            z, res, ok = _gmfl1(uu, rho, eps, sigma_w2, d, z)
            if not ok or z[2] / d >= 1:
                break
        if ok and z[3] > 0:
            break
    frac = z[2] / d
    phase = "GMFL-II" if frac >= 1 else "GMFL-I"
    status = 0 if ok else 2
    learned = 1 - z[1] / eps if eps else 0.0
    return CubicPhaseResult(phase, u, float(z[0]), float(z[1]), float(z[3]), float(min(frac, 1.0)),
                            float(learned), False, res, status, status_message(status), params)


def cubic_phase(eps, sigma2, n, d, width, sigma_a2, sigma_w2=0.5):
    r"""Phase (GFL, GMFL-I or GMFL-II) and order parameters at noise level :math:`\sigma^2`.

    Below :math:`u_c` the GFL branch holds (``metastable`` flags a droplet minimum above the
    Phi = 0 one, between the spinodal and u_c: the hysteresis window); above it the GMFL-I
    (Maxwell) system is continued from :math:`u_c`; GMFL-II is reported when the droplet
    fraction reaches 1.
    """
    sigma2 = check_positive("sigma2", sigma2)
    tr = cubic_transition(eps, sigma_w2, n=n, d=d, width=width, sigma_a2=sigma_a2)
    u = u_from_sigma2(sigma2, n, d, width, sigma_a2)
    r = cubic_phase_scaled(eps, u, tr.params["rho"], sigma_w2, d, transition=tr)
    return CubicPhaseResult(**{**r.__dict__, "params": dict(tr.params, sigma2=sigma2)})
