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

__all__ = ["cubic_transition", "cubic_phase", "cubic_phases", "gfl_b", "action_minima", "CubicTransitionResult",
           "CubicPhaseResult", "compiled_action", "cubic_phase_scaled", "u_from_sigma2",
           "sigma2_from_u"]

_DETAIL = {1: "no transition (no nontrivial minimum for u <= u_max)"}

_NGRID = 400
_PHI_MAX = 4.0


@functools.lru_cache(maxsize=None)
def compiled_action():
    """numba functions (S, dS/dPhi, d2S/dPhi2) of (Phi, u, b, c, sigma_w2), the kernel entries,
    and the GP average :math:`A=m_1(\sigma_w^2)^2` of the (1,1) entry (the erf moment from
    :func:`kernelphase.moments.moment_exprs`; :math:`4/(\pi(1+2\sigma_w^2))`)."""
    import sympy as sp
    from kernelphase.actions import SYMBOLS, cubic_action, cubic_kernel_entries
    from kernelphase.codegen import numba_function
    from kernelphase.moments import moment_exprs
    s = SYMBOLS
    args = (s["Phi"], s["u"], s["b"], s["c"], s["sigma_w2"])
    S = cubic_action()
    fS = numba_function((S, sp.diff(S, s["Phi"]), sp.diff(S, s["Phi"], 2)), args, name="action")
    fQ = numba_function(cubic_kernel_entries(), (s["Phi"], s["sigma_w2"]), name="kernel")
    m1 = moment_exprs("erf", 1)[1]
    fA = numba_function(m1.subs(sp.Symbol("v", positive=True), s["sigma_w2"]) ** 2,
                        (s["sigma_w2"],), name="gp_average")
    return fS, fQ, fA


_fS, _fQ, _fA = compiled_action()


@njit(cache=True)
def _kappa(u, b, sw2):
    return _fS(0.0, u, b, 0.0, sw2)[2]


@njit(cache=True)
def _gfl_b(u, v, sw2):
    """Root of b (1 + 4 v / (pi (1 + 2 sw2) kappa(b))) - 1 on (0, b_max) by bisection."""
    bmax = 1.0
    bk = math.sqrt(1.0 / (_fA(sw2) * sw2 * u)) if u > 0 else 2.0
    if bk < bmax:
        bmax = bk
    lo, hi = 0.0, bmax
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        k = _kappa(u, mid, sw2)
        if k <= 0:
            hi = mid
            continue
        f = mid * (1 + v * _fA(sw2) / k) - 1
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
    i = 1
    # the grid, then doubling steps while the action still descends at the window's edge
    # (the minimum lies beyond it: never report one at the edge)
    while (i <= _NGRID or (g0 < 0 and x0 < 1e6)) and m < out.shape[0]:
        x1 = i * h if i <= _NGRID else 2 * x0
        g1 = _fS(x1, u, b, c, sw2)[1]
        if g0 < 0 <= g1:
            xm = _refine_min(x0, x1, u, b, c, sw2)
            val, _, curv = _fS(xm, u, b, c, sw2)
            out[m, 0] = xm
            out[m, 1] = val
            out[m, 2] = curv
            m += 1
        x0, g0 = x1, g1
        i += 1
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
        return check_range("rho", rho, 0, 1e12, lo_open=True), None
    if any(p is None for p in phys):
        raise ValueError("give rho, or all of n, d, width and sigma_a2")
    n = check_int("n", n, 1, 10 ** 12)
    d = check_int("d", d, 1, 10 ** 12)
    width = check_int("width", width, 1, 10 ** 12)
    sigma_a2 = check_range("sigma_a2", sigma_a2, 0, 1e12, lo_open=True)
    return width * sigma_a2 / d, (n, d, width, sigma_a2)


def sigma2_from_u(u, n, d, width, sigma_a2):
    r""":math:`\sigma^2=\sqrt{n^2\sigma_a^2/(u\,dN)}` (inverse of :math:`u=n^2\sigma_a^2/(\sigma^4dN)`)."""
    return math.sqrt(n * n * sigma_a2 / (u * d * width))


def u_from_sigma2(sigma2, n, d, width, sigma_a2):
    r""":math:`u=n^2\sigma_a^2/(\sigma^4dN)` (Rubin et al., App. A.2)."""
    den = sigma2 ** 2 * d * width
    return n * n * sigma_a2 / den if den > 0 else math.inf


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
    eps = check_range("eps", eps, -100, 100)
    sw2 = check_range("sigma_w2", sigma_w2, 0, 1e6, lo_open=True)
    rho_, phys = _rho_from(rho, n, d, width, sigma_a2)
    u_max = check_range("u_max", u_max, 0, _U_MAX, lo_open=True)
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


_MAX_STEP = 0.2      # largest continuation step in ln u
_MIN_STEP = 1e-9     # below this the branch is declared lost (fold or end)
_PHI_MIN = 1e-3      # a droplet closer to the trivial root than this is no droplet
_U_MAX = 1e12        # largest interaction accepted


@njit(cache=True, error_model="numpy")
def _mixed_residual(z, u, v, eps, sw2, d, mode):
    r"""Residual of the mixed-phase system in the unknowns z = (b, c, varphi, xi).

    The droplet sits at :math:`q_*=e^{\xi/2}`, so :math:`q_*=0` (the trivial root, which solves
    :math:`\hat S=\hat S'=0` for any varphi) is excluded by construction. The equations are
    :math:`\hat S(q)/q^2=0` and :math:`\hat S'(q)/(2q)-\hat S(q)/q^2=q^2\,\partial_{q^2}(\hat S/q^2)=0`
    (mode 1, GMFL-I: degenerate with Phi = 0), or :math:`\hat S'(q)/(2q)=0` and varphi = d
    (mode 2, GMFL-II: every neuron in a droplet); and the 2x2 GPR closure
    :math:`(b,\sqrt6c)=[I+v(\hat Q_0+\varphi\hat Q(q))]^{-1}(1,\sqrt6\epsilon)`, where
    :math:`\hat Q_0` (the Phi = 0 Gaussian, theory notes Sec. 4.8) is dropped in GMFL-II. The
    droplet fraction :math:`\varphi/d` is O(1/d) in GMFL-I; at that order the bookkeeping keeps
    :math:`\hat Q_0` at full weight (the d -> infinity limit, so the solution depends on d only
    through the fraction), which leaves an O(1/d) step at the GMFL-II boundary, reached only at
    u = O(d^2).
    """
    b, c, phi_d, xi = z[0], z[1], z[2], z[3]
    x = math.exp(xi)
    q = math.sqrt(x)
    S, dS, _ = _fS(q, u, b, c, sw2)
    Q11, Q12, Q22 = _fQ(q, sw2)
    m11 = 1.0 + v * phi_d * Q11
    if mode == 1:
        m11 += v * _fA(sw2) / _kappa(u, b, sw2)
    m12 = v * phi_d * Q12
    m22 = 1.0 + v * phi_d * Q22
    y1, y2 = 1.0, math.sqrt(6.0) * eps
    det = m11 * m22 - m12 * m12
    out = np.empty(4)
    out[0] = (m22 * y1 - m12 * y2) / det - b
    out[1] = (m11 * y2 - m12 * y1) / det - math.sqrt(6.0) * c
    if mode == 1:
        out[2] = S / x
        out[3] = dS / (2 * q) - S / x
    else:
        out[2] = dS / (2 * q)
        out[3] = (phi_d - d) / d
    return out


@njit(cache=True, error_model="numpy")
def _lm(z0, u, v, eps, sw2, d, mode):
    """Levenberg-Marquardt with a finite-difference Jacobian; returns (z, max|F|, ok)."""
    z = z0.copy()
    F = _mixed_residual(z, u, v, eps, sw2, d, mode)
    if not np.all(np.isfinite(F)):
        return z, np.inf, False
    J = np.empty((4, 4))
    for _ in range(60):
        norm = np.max(np.abs(F))
        if norm < 1e-12:
            return z, norm, True
        for j in range(4):
            h = 1e-7 * max(1.0, abs(z[j]))
            zp = z.copy()
            zp[j] += h
            J[:, j] = (_mixed_residual(zp, u, v, eps, sw2, d, mode) - F) / h
        A = J.T @ J
        mu = 1e-12 * (np.trace(A) + 1e-300)
        for i in range(4):
            A[i, i] += mu
        dz = np.linalg.solve(A, -(J.T @ F))
        t = 1.0
        ok = False
        while t > 1e-4:
            zn = z + t * dz
            Fn = _mixed_residual(zn, u, v, eps, sw2, d, mode)
            if np.all(np.isfinite(Fn)) and np.max(np.abs(Fn)) < norm:
                ok = True
                break
            t *= 0.5
        if not ok:
            return z, norm, False
        z, F = zn, Fn
    norm = np.max(np.abs(F))
    return z, norm, norm < 1e-10


@njit(cache=True)
def _track(us, rho, eps, sw2, d, u_c, z_c, out, modes, resid):
    """Continue the mixed branch from (u_c, z_c) through the sorted targets ``us`` (> u_c).

    Natural continuation in ln u with a secant predictor and step control: a step is taken
    only when the corrector converges close to the prediction with 0 <= varphi; otherwise it
    is halved. When varphi reaches d the system switches to GMFL-II. Returns the number of
    targets reached; the rest are unconverged (branch lost: a fold or the end of the branch).
    """
    t0 = math.log(u_c)
    z0 = z_c.copy()
    tp = t0
    zp = z0.copy()
    have_prev = False
    mode = 1
    h = 0.02
    for i in range(us.shape[0]):
        tt = math.log(us[i])
        while t0 < tt:
            step = min(h, tt - t0)
            t1 = t0 + step
            if have_prev:
                zpred = z0 + (z0 - zp) * (step / (t0 - tp))
            else:
                zpred = z0.copy()
            if mode == 2:
                zpred[2] = d
            u1 = math.exp(t1)
            z1, res, ok = _lm(zpred, u1, math.sqrt(u1 * rho), eps, sw2, d, mode)
            if ok:
                dev = max(abs(z1[0] - zpred[0]), abs(z1[1] - zpred[1]), abs(z1[3] - zpred[3]))
                ok = dev < 0.05 + 0.1 * step and z1[2] >= -1e-9 * d
            if ok and mode == 1 and z1[2] > d:  # every neuron in a droplet: GMFL-II from here
                z1[2] = d
                z1, res, ok = _lm(z1, u1, math.sqrt(u1 * rho), eps, sw2, d, 2)
                if ok:
                    mode = 2
            if ok:
                tp, zp = t0, z0
                t0, z0 = t1, z1
                have_prev = True
                h = min(1.5 * h, _MAX_STEP)
            else:
                h *= 0.5
                if h < _MIN_STEP:
                    return i
        out[i] = z0
        modes[i] = mode
        resid[i] = max(np.max(np.abs(_mixed_residual(z0, us[i], math.sqrt(us[i] * rho), eps,
                                                     sw2, d, mode))), 0.0)
    return us.shape[0]


def _mixed_invariants(z, u, eps, sw2, d, mode):
    """Detail of the first broken invariant of a mixed-phase solution, or None."""
    b, c, phi_d, xi = (float(t) for t in z)
    q = math.exp(xi / 2)
    if not all(math.isfinite(t) for t in (b, c, phi_d, q)):
        return "non-finite value"
    if q < _PHI_MIN:
        return f"droplet at Phi*={q:.3g}, the trivial root"
    if not -1e-9 <= phi_d / d <= 1 + 1e-9:
        return f"droplet fraction {phi_d / d:.3g} outside [0, 1]"
    S, _, curv = _fS(q, u, b, c, sw2)
    if curv <= 0:
        return f"Phi*={q:.4g} is not a minimum (S''={curv:.3g})"
    if mode == 1 and _kappa(u, b, sw2) <= 0:
        return "Phi = 0 is not a minimum (kappa <= 0)"
    if mode == 2 and S > 1e-9:
        return f"droplet action S(Phi*)={S:.3g} above S(0) = 0 in GMFL-II"
    work = np.empty((8, 3))
    k = _minima(u, b, c, sw2, work)
    if any(work[j, 1] < S - 1e-9 * (1 + abs(S)) for j in range(k)):
        return "a lower nontrivial minimum exists (droplet not the global minimum)"
    # (b, sqrt6 c) = (I + M)^{-1} y with M positive semi-definite: |r| <= |y| and r.y > 0
    if not (b * b + 6 * c * c <= (1 + 6 * eps * eps) * (1 + 1e-9) and b + 6 * c * eps > 0):
        return "discrepancy not a contraction of the target (GPR with a PSD kernel)"
    return None


def _gfl_invariants(b, val, k, u, sw2):
    if not (0 < b <= 1 and math.isfinite(b)):
        return f"b={b:.4g} outside (0, 1]"
    if _kappa(u, b, sw2) <= 0:
        return "Phi = 0 is not a minimum (kappa <= 0)"
    if k and val < -1e-9:
        return f"a droplet minimum lies below Phi = 0 (S={val:.3g}) on the GFL branch"
    return None


def _phase_result(phase, u, b, c, phi, frac, learned, meta, res, detail, params, status=None):
    """A phase result; ``detail`` (a broken invariant) makes it status 4 unless ``status``
    says otherwise, and an unconverged result is labelled ``"unknown"``."""
    if status is None:
        status = 0 if detail is None else 4
    if status:
        phase = "unknown"
    return CubicPhaseResult(phase, u, float(b), float(c), float(phi), float(frac), float(learned),
                            bool(meta), float(res), status, status_message(status, detail), params)


def cubic_phases(eps, us, rho, sigma_w2=0.5, d=150, transition=None):
    r"""Phases and order parameters of the cubic model along a set of interactions ``us``.

    Below :math:`u_c` the GFL branch (``metastable`` flags a droplet minimum above the
    Phi = 0 one: the hysteresis window). Above it the mixed branch is continued from
    :math:`u_c` in :math:`\ln u` (:func:`_track`), GMFL-I while the droplet fraction is below 1,
    GMFL-II from there. Each result is ``converged`` only when its invariants hold: GFL has
    :math:`0<b\le1`, :math:`\kappa(b)>0` and no droplet minimum below :math:`\Phi=0`; a mixed
    state has :math:`\Phi_*\ge10^{-3}`, droplet fraction in [0, 1], :math:`\hat S''(\Phi_*)>0`,
    the droplet the global minimum, and the GPR contraction
    :math:`b^2+6c^2\le1+6\epsilon^2`. Otherwise the status says what failed and the phase is
    ``"unknown"``.
    """
    eps = check_range("eps", eps, -100, 100)
    rho = check_range("rho", rho, 0, 1e12, lo_open=True)
    sigma_w2 = check_range("sigma_w2", sigma_w2, 0, 1e6, lo_open=True)
    d = check_int("d", d, 1, 10 ** 12)
    us = np.array([check_range("u", u, 0, _U_MAX, lo_open=True) for u in np.atleast_1d(us)],
                  dtype=float)
    tr = transition or cubic_transition(eps, sigma_w2, rho=rho)
    params = {"eps": eps, "sigma_w2": sigma_w2, "rho": rho, "d": d}
    out = [None] * len(us)
    work = np.empty((8, 3))
    mixed = []
    for i, u in enumerate(us):
        p = dict(params, u=float(u))
        if tr.status == 0 and u > tr.u_c:
            mixed.append(i)
            continue
        if tr.status not in (0, 1):
            out[i] = _phase_result("GFL", u, np.nan, eps, np.nan, 0, 0, False, np.nan,
                                   f"transition: {tr.message}", p, tr.status)
            continue
        b, phi, val, k = _gfl_state(u, rho, eps, sigma_w2, work)
        detail = _gfl_invariants(b, val, k, u, sigma_w2)
        out[i] = _phase_result("GFL", u, b, eps, phi if k else 0.0, 0.0, 0.0, k > 0, 0.0,
                               detail, p)
    if mixed:
        order = sorted(mixed, key=lambda j: us[j])
        ut = us[order]
        z = np.empty((len(ut), 4))
        modes = np.zeros(len(ut), np.int64)
        resid = np.full(len(ut), np.nan)
        zc = np.array([tr.b_at_uc, eps, 0.0, 2 * math.log(tr.phi_star)])
        reached = _track(ut, rho, eps, sigma_w2, float(d), tr.u_c, zc, z, modes, resid)
        for j, i in enumerate(order):
            p = dict(params, u=float(us[i]))
            if j >= reached:
                last = ut[reached - 1] if reached else tr.u_c
                out[i] = _phase_result("GMFL-I", us[i], np.nan, np.nan, np.nan, np.nan, np.nan,
                                       False, np.nan, f"mixed branch lost above u={last:.6g} "
                                       f"(a fold or the end of the branch)", p, 2)
                continue
            b, c, phi_d, xi = z[j]
            detail = _mixed_invariants(z[j], us[i], eps, sigma_w2, d, modes[j])
            out[i] = _phase_result("GMFL-II" if modes[j] == 2 else "GMFL-I", us[i], b, c,
                                   math.exp(xi / 2), min(phi_d / d, 1.0), 1 - c / eps, False,
                                   resid[j], detail, p)
    return out


def cubic_phase_scaled(eps, u, rho, sigma_w2=0.5, d=150, transition=None):
    r"""Phase and order parameters at interaction ``u`` for invariants ``rho``, ``sigma_w2``.

    ``d`` converts :math:`\varphi` (droplet weight times d) to the droplet fraction.
    ``transition`` may pass a precomputed :func:`cubic_transition` result for these invariants.
    See :func:`cubic_phases` for the branches and the invariants checked.
    """
    return cubic_phases(eps, [u], rho, sigma_w2, d, transition)[0]


def cubic_phase(eps, sigma2, n, d, width, sigma_a2, sigma_w2=0.5):
    r"""Phase (GFL, GMFL-I or GMFL-II) and order parameters at noise level :math:`\sigma^2`.

    Below :math:`u_c` the GFL branch holds (``metastable`` flags a droplet minimum above the
    Phi = 0 one, between the spinodal and u_c: the hysteresis window); above it the GMFL-I
    (Maxwell) system is continued from :math:`u_c`; GMFL-II is reported when the droplet
    fraction reaches 1.
    """
    sigma2 = check_range("sigma2", sigma2, 0, 1e12, lo_open=True)
    tr = cubic_transition(eps, sigma_w2, n=n, d=d, width=width, sigma_a2=sigma_a2)
    u = u_from_sigma2(sigma2, *(tr.params[k] for k in ("n", "d", "width", "sigma_a2")))
    if not 0 < u <= _U_MAX:
        raise ValueError(f"sigma2={sigma2!r} gives u={u:.3g}, outside the valid range "
                         f"(0, {_U_MAX:g}]; the valid sigma2 range here is "
                         f"[{sigma2_from_u(_U_MAX, *(tr.params[k] for k in ('n', 'd', 'width', 'sigma_a2'))):.3g}, 1e+12]")
    r = cubic_phase_scaled(eps, u, tr.params["rho"], sigma_w2, d, transition=tr)
    return CubicPhaseResult(**{**r.__dict__, "params": dict(tr.params, sigma2=sigma2)})
