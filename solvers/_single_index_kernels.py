r"""numba kernels of the single-index engine, compiled once for every activation.

Each kernel takes the activation's moments as its first argument ``mfun``, a first-class
function :math:`v\mapsto(m_0(v),\dots,m_{12}(v))` of numba type
``FunctionType(float64[::1](float64))`` (:func:`kernelphase.moments.moments_vector`). The
entry points called from Python carry explicit signatures, so numba types ``mfun`` by its
signature rather than by its identity: one compilation, cached on disk, serves every
activation (a new activation compiles only its moment function). The action ``_fS`` is
:func:`kernelphase.single_index.compiled_action`. Equations: :mod:`kernelphase.solvers.single_index`.
"""
import math

import numpy as np
from numba import njit, types

from kernelphase.single_index import compiled_action

_fS = compiled_action()

_f8, _i8, _b1 = types.float64, types.int64, types.boolean
_vec, _mat, _ivec = types.float64[::1], types.float64[:, ::1], types.int64[::1]
#: numba type of the moments argument (see :func:`kernelphase.moments.moments_vector`)
MOMENTS = types.FunctionType(_vec(_f8))
_SCAN = types.Tuple((_f8, _f8, _f8, _f8, _i8, _b1, _b1, _f8))

_NM = 13          # moments M_0..M_12 the action takes
_NB = 11          # b[0..8] discrepancy by degree; b[9], b[10] stabiliser lam, power
_FAR = (1e2, 2e2)  # where the quadrature moments are still accurate (|h| <= 2000)
_GOLD = 0.618033988749895


@njit(cache=True)
def S3(phi, u, sw2, b, M):
    r"""(S, S', S'') at phi from b[0..8] and the moments M[0..12] at sw2 + phi^2, plus the
    stabiliser :math:`\lambda|\Phi|^p` with (lambda, p) = (b[9], b[10]) when lambda > 0."""
    S, g, h = _fS(phi, u, sw2, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8],
                  M[0], M[1], M[2], M[3], M[4], M[5], M[6], M[7], M[8], M[9], M[10], M[11],
                  M[12])
    lam, p = b[9], b[10]
    if lam > 0.0:
        a = phi * phi
        S += lam * a ** (0.5 * p)
        g += lam * p * phi * a ** (0.5 * p - 1.0)
        h += lam * p * (p - 1.0) * a ** (0.5 * p - 1.0)
    return S, g, h


@njit(types.UniTuple(_f8, 3)(MOMENTS, _f8, _f8, _f8, _f8, _vec), cache=True)
def point(mfun, x, s, u, sw2, b):
    """(S, S', S'') at Phi = s x."""
    return S3(s * x, u, sw2, b, mfun(sw2 + x * x))


@njit(_mat(MOMENTS, _f8, _vec), cache=True)
def grid_moments(mfun, sw2, xs):
    out = np.zeros((xs.shape[0], _NM))
    for i in range(xs.shape[0]):
        out[i] = mfun(sw2 + xs[i] * xs[i])
    return out


@njit(cache=True)
def gfl_b1(u, v, sw2, A, c1):
    """Root of b (1 + v A / kappa(b)) = |c1|, kappa = 1/sw2 - u b^2 A, times sign(c1)."""
    if c1 == 0.0 or A == 0.0:
        return c1
    target = abs(c1)
    lo, hi = 0.0, target
    bk = 1.0 / math.sqrt(u * A * sw2)
    if bk < hi:
        hi = bk
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        k = 1.0 / sw2 - u * mid * mid * A
        if k <= 0 or mid * (1.0 + v * A / k) > target:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-16 * hi:
            break
    b = 0.5 * (lo + hi)
    return b if c1 > 0 else -b


@njit(_vec(_f8, _f8, _f8, _vec, _f8, _f8), cache=True)
def gfl_discrepancy(u, rho, sw2, c, A, b0):
    b = c.copy()
    b[0] = b0
    b[1] = gfl_b1(u, math.sqrt(u * rho), sw2, A, c[1])
    return b


@njit(_f8(MOMENTS, _f8, _f8, _f8, _f8, _f8, _vec), cache=True)
def refine(mfun, lo, hi, s, u, sw2, b):
    """Safeguarded Newton on the outward slope r(x) = s S'(s x), r(lo) < 0 <= r(hi)."""
    x = 0.5 * (lo + hi)
    for _ in range(100):
        _, g, h = point(mfun, x, s, u, sw2, b)
        r = s * g
        if r < 0:
            lo = x
        else:
            hi = x
        xn = x - r / h if h > 0 else 0.5 * (lo + hi)
        if not (lo < xn < hi):
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 1e-15 * (1 + x) or hi - lo <= 1e-15 * (1 + x):
            x = xn
            break
        x = xn
    return x


@njit(_SCAN(MOMENTS, _f8, _f8, _vec, _vec, _mat, _b1, _b1, _b1), cache=True)
def scan(mfun, u, sw2, b, xs, Mg, both, fine, far):
    """Minima and slope of the action at fixed b.

    Returns (slope, phi*, S*, S''*, nmin, edge, unbounded, at): slope = min over x > 0 (both
    signs if ``both``) of r(x)/x, refined by golden section if ``fine``, reached at Phi = at;
    phi* the lowest nontrivial minimum (nan if none); edge: the slope is still negative at the
    window's edge; unbounded: S < 0 at |Phi| = 100 or 200 (checked if ``far``).
    """
    slope = np.inf
    best_i, best_s = 1, 1.0
    phi, val, curv = np.nan, np.inf, np.nan
    nmin = 0
    edge = False
    n = xs.shape[0]
    for si in range(2 if both else 1):
        s = 1.0 if si == 0 else -1.0
        r0 = s * S3(s * xs[1], u, sw2, b, Mg[1])[1]
        if r0 / xs[1] < slope:
            slope, best_i, best_s = r0 / xs[1], 1, s
        for i in range(2, n):
            r1 = s * S3(s * xs[i], u, sw2, b, Mg[i])[1]
            if r1 / xs[i] < slope:
                slope, best_i, best_s = r1 / xs[i], i, s
            if r0 < 0 <= r1:
                x = refine(mfun, xs[i - 1], xs[i], s, u, sw2, b)
                S, _, S2 = point(mfun, x, s, u, sw2, b)
                nmin += 1
                if S < val:
                    phi, val, curv = s * x, S, S2
            r0 = r1
        if r0 < 0:
            edge = True
    at = best_s * xs[best_i]
    if fine:
        lo = xs[best_i - 1] if best_i > 1 else 0.5 * xs[1]
        hi = xs[best_i + 1] if best_i + 1 < n else xs[n - 1]
        # golden section on r(x)/x, one new evaluation per step (the interior point is kept)
        p = hi - _GOLD * (hi - lo)
        q = lo + _GOLD * (hi - lo)
        fp = best_s * point(mfun, p, best_s, u, sw2, b)[1] / p
        fq = best_s * point(mfun, q, best_s, u, sw2, b)[1] / q
        for _ in range(40):
            if fp < fq:
                hi, q, fq = q, p, fp
                p = hi - _GOLD * (hi - lo)
                fp = best_s * point(mfun, p, best_s, u, sw2, b)[1] / p
            else:
                lo, p, fp = p, q, fq
                q = lo + _GOLD * (hi - lo)
                fq = best_s * point(mfun, q, best_s, u, sw2, b)[1] / q
        x = 0.5 * (lo + hi)
        rx = best_s * point(mfun, x, best_s, u, sw2, b)[1] / x
        if rx < slope:
            slope, at = rx, best_s * x
    unbounded = False
    if far:
        for X in _FAR:
            for s in (1.0, -1.0):
                if point(mfun, X, s, u, sw2, b)[0] < 0:
                    unbounded = True
    return slope, phi, val, curv, nmin, edge, unbounded, at


@njit(cache=True)
def objective(mfun, which, u, rho, sw2, c, A, b0, xs, Mg, both):
    """0: the refined slope (zero at the spinodal); 1: the lowest nontrivial minimum's action
    (1 if none; zero at the first-order point); 2: kappa (zero at a continuous transition)."""
    b = gfl_discrepancy(u, rho, sw2, c, A, b0)
    if which == 2:
        return S3(0.0, u, sw2, b, Mg[0])[2]
    st = scan(mfun, u, sw2, b, xs, Mg, both, which == 0, False)
    if which == 0:
        return st[0]
    return st[2] if st[4] > 0 and math.isfinite(st[2]) else 1.0


@njit(cache=True)
def brent(mfun, which, x0, x1, rho, sw2, c, A, b0, xs, Mg, both):
    """Brent's root finder on ``objective(mfun, which, .)`` over [x0, x1] (relative tolerance 1e-14:
    inverse quadratic or secant steps, bisection when they do not shrink the bracket fast
    enough). Returns (root, nit); nan if the ends do not bracket a sign change."""
    fpre = objective(mfun, which, x0, rho, sw2, c, A, b0, xs, Mg, both)
    fcur = objective(mfun, which, x1, rho, sw2, c, A, b0, xs, Mg, both)
    xpre, xcur = x0, x1
    if fpre == 0.0:
        return xpre, 0
    if fcur == 0.0:
        return xcur, 0
    if fpre * fcur > 0:
        return np.nan, 0
    xblk, fblk, spre, scur = 0.0, 0.0, 0.0, 0.0
    for it in range(200):
        if fpre * fcur < 0:
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = 0.5 * (1e-300 + 1e-14 * abs(xcur))
        sbis = 0.5 * (xblk - xcur)
        if fcur == 0.0 or abs(sbis) < delta:
            return xcur, it
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):
                spre, scur = scur, stry
            else:
                spre = scur = sbis
        else:
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = objective(mfun, which, xcur, rho, sw2, c, A, b0, xs, Mg, both)
    return xcur, 200


@njit(types.Tuple((_vec, _f8) + tuple(_SCAN.types))(MOMENTS, _f8, _f8, _f8, _vec, _f8, _f8, _vec, _mat, _b1, _b1, _b1), cache=True)
def state(mfun, u, rho, sw2, c, A, b0, xs, Mg, both, far, fine):
    b = gfl_discrepancy(u, rho, sw2, c, A, b0)
    kappa = S3(0.0, u, sw2, b, Mg[0])[2]
    return (b, kappa) + scan(mfun, u, sw2, b, xs, Mg, both, fine, far)


@njit(cache=True)
def _pair(mfun, which, phi, t, rho, sw2, c, A, b0):
    """which 0: (S', S'') (a fold: the spinodal); 1: (S/Phi^2, S'/Phi) (a minimum degenerate
    with Phi = 0: the first-order point); at Phi and u = e^t on the GFL branch."""
    u = math.exp(t)
    b = gfl_discrepancy(u, rho, sw2, c, A, b0)
    S, g, h = point(mfun, abs(phi), 1.0 if phi > 0 else -1.0, u, sw2, b)
    if which == 0:
        return g, h
    return S / (phi * phi), g / phi


@njit(cache=True)
def newton2(mfun, which, phi, t, rho, sw2, c, A, b0):
    """Newton (finite-difference Jacobian, backtracking) on ``_pair`` in (Phi, ln u), from
    (phi, t); returns (phi, t, ok) with ok when max|F| < 1e-12 and Phi kept its sign."""
    f1, f2 = _pair(mfun, which, phi, t, rho, sw2, c, A, b0)
    for _ in range(50):
        norm = max(abs(f1), abs(f2))
        if not math.isfinite(norm):
            return phi, t, False
        if norm < 1e-12:
            return phi, t, True
        hx = 1e-7 * max(abs(phi), 1e-3)
        hx = hx if phi > 0 else -hx
        a1, a2 = _pair(mfun, which, phi + hx, t, rho, sw2, c, A, b0)
        c1, c2 = _pair(mfun, which, phi, t + 1e-7, rho, sw2, c, A, b0)
        j11, j21 = (a1 - f1) / hx, (a2 - f2) / hx
        j12, j22 = (c1 - f1) / 1e-7, (c2 - f2) / 1e-7
        det = j11 * j22 - j12 * j21
        if det == 0.0 or not math.isfinite(det):
            return phi, t, False
        dp = -(j22 * f1 - j12 * f2) / det
        dt = -(j11 * f2 - j21 * f1) / det
        lam = 1.0
        while lam > 1e-6:
            pn, tn = phi + lam * dp, t + lam * dt
            if pn * phi > 0 and abs(pn) > 1e-6 and abs(lam * dt) < 1.0:
                n1, n2 = _pair(mfun, which, pn, tn, rho, sw2, c, A, b0)
                if max(abs(n1), abs(n2)) < norm:
                    break
            lam *= 0.5
        if lam <= 1e-6:
            return phi, t, False
        phi, t, f1, f2 = pn, tn, n1, n2
    return phi, t, max(abs(f1), abs(f2)) < 1e-12


# outcome codes of ``transition`` (messages in the Python wrapper)
OK, UNBOUNDED, MIN_AT_START, NO_TRANSITION, EDGE, METASTABLE_ONLY = 0, 1, 2, 3, 4, 5


@njit(types.UniTuple(_f8, 6)(MOMENTS, _f8, _f8, _vec, _f8, _f8, _vec, _mat, _b1, _b1, _f8), cache=True)
def transition(mfun, rho, sw2, c, A, b0, xs, Mg, both, far, u_max):
    """Spinodal and first-order (or continuous) point along u on the GFL branch.

    Returns (outcome, order, u_c, u_s, aux, nit): order 1 first, 2 continuous; aux the u of
    the outcome; nit the ladder steps and Brent iterations. A ladder in u brackets each point; Newton in (Phi, ln u) solves it
    (spinodal: S' = S'' = 0; first order: S = S' = 0), certified by full scans (no minimum
    just below the spinodal; the Newton minimum the lowest at u_c), with Brent on the scanned
    objective as the fallback.
    """
    nit = 0
    u = min(1.0, u_max)
    st = state(mfun, u, rho, sw2, c, A, b0, xs, Mg, both, far, False)
    while (st[2] < 0 or st[8]) and u > 1e-3:
        u /= 4.0
        st = state(mfun, u, rho, sw2, c, A, b0, xs, Mg, both, far, False)
    if st[8]:
        return UNBOUNDED, 0, np.nan, np.nan, u, nit
    if st[2] < 0:
        return MIN_AT_START, 0, np.nan, np.nan, u, nit
    lo = u
    while st[2] >= 0 and st[1] > 0:
        lo, u = u, u * 2.0
        if u > u_max:
            return NO_TRANSITION, 0, np.nan, np.nan, u_max, nit
        st = state(mfun, u, rho, sw2, c, A, b0, xs, Mg, both, far, False)
        nit += 1
        if st[8]:
            return UNBOUNDED, 0, np.nan, np.nan, u, nit
    if st[1] <= 0 and st[2] >= 0:  # continuous: kappa -> 0 first
        uc, k = brent(mfun, 2, lo, u, rho, sw2, c, A, b0, xs, Mg, both)
        return OK, 2, uc, uc, uc, k
    # spinodal
    x, t, ok = newton2(mfun, 0, st[9], math.log(u), rho, sw2, c, A, b0)
    u_s = math.exp(t)
    ok = ok and lo / 2.0 <= u_s <= u * 2.0 and \
        objective(mfun, 0, u_s * (1 - 1e-7), rho, sw2, c, A, b0, xs, Mg, both) >= -1e-9
    if not ok:
        while objective(mfun, 0, u, rho, sw2, c, A, b0, xs, Mg, both) >= 0:
            lo, u = u, u * 1.1
            if u > u_max:
                return NO_TRANSITION, 0, np.nan, np.nan, u_max, nit
        while objective(mfun, 0, lo, rho, sw2, c, A, b0, xs, Mg, both) < 0 and lo > 1e-3:
            lo /= 1.5
        u_s, k = brent(mfun, 0, lo, u, rho, sw2, c, A, b0, xs, Mg, both)
        nit += k
    # first-order point
    lo = u_s
    hi = u_s * 1.05
    while True:
        st = state(mfun, hi, rho, sw2, c, A, b0, xs, Mg, both, far, False)
        if st[8]:
            return UNBOUNDED, 0, np.nan, u_s, hi, nit
        if st[7] and st[6] == 0:
            return EDGE, 0, np.nan, u_s, hi, nit
        if st[6] > 0 and st[4] <= 0:
            break
        nit += 1
        lo, hi = hi, hi * 1.3
        if hi > u_max:
            return METASTABLE_ONLY, 0, np.nan, u_s, u_max, nit
    x, t, ok = newton2(mfun, 1, st[3], math.log(hi), rho, sw2, c, A, b0)
    uc = math.exp(t)
    if ok and lo <= uc <= hi:
        st = state(mfun, uc, rho, sw2, c, A, b0, xs, Mg, both, False, False)
        if st[6] > 0 and abs(st[4]) <= 1e-10 and abs(st[3] - x) <= 1e-6 * (1 + abs(x)):
            return OK, 1, uc, u_s, uc, nit
    uc, k = brent(mfun, 1, lo, hi, rho, sw2, c, A, b0, xs, Mg, both)
    return OK, 1, uc, u_s, uc, nit + k


# ------------------------------------------------------------------ mixed (GMFL) branch

@njit(cache=True)
def mixed_residual(mfun, z, modes, kfac, y, u, rho, sw2, A, b_base, s, d, mode):
    r"""Residual of the mixed-phase system in z = (r_k = b_k sqrt(k!) for k in modes, varphi, xi).

    The droplet sits at :math:`\Phi_*=s\,q`, :math:`q=e^{\xi/2}` (never the trivial root).
    GPR closure :math:`(I+v(Q_0+\varphi\hat Q(q)))r=y`, :math:`\hat Q_{jk}=q^{j+k}m_jm_k/
    \sqrt{j!k!}` at :math:`\sigma_w^2+q^2` (:math:`Q_0=A/\kappa` in the (1,1) entry, dropped in
    GMFL-II); mode 1 (GMFL-I): :math:`\hat S/q^2=0` and :math:`(\Phi\hat S'/2-\hat S)/q^2=0`;
    mode 2 (GMFL-II): :math:`\Phi\hat S'/(2q^2)=0` and :math:`\varphi=d`.
    """
    nm = modes.shape[0]
    phi_d, xi = z[nm], z[nm + 1]
    x = math.exp(xi)
    q = math.sqrt(x)
    b = b_base.copy()
    for i in range(nm):
        b[modes[i]] = z[i] / kfac[i]
    v = math.sqrt(u * rho)
    M = mfun(sw2 + x)
    feat = np.empty(nm)
    for i in range(nm):
        feat[i] = (s * q) ** modes[i] * M[modes[i]] / kfac[i]
    out = np.empty(nm + 2)
    for i in range(nm):
        acc = z[i] - y[i]
        for j in range(nm):
            acc += v * phi_d * feat[i] * feat[j] * z[j]
        if mode == 1 and modes[i] == 1:
            kappa = 1.0 / sw2 - u * b[1] * b[1] * A
            acc += v * A / kappa * z[i]
        out[i] = acc
    S, dS, _ = S3(s * q, u, sw2, b, M)
    if mode == 1:
        out[nm] = S / x
        out[nm + 1] = (s * q * dS / 2 - S) / x
    else:
        out[nm] = s * q * dS / (2 * x)
        out[nm + 1] = (phi_d - d) / d
    return out


@njit(cache=True)
def lm(mfun, z0, modes, kfac, y, u, rho, sw2, A, b_base, s, d, mode):
    """Levenberg-Marquardt with a finite-difference Jacobian; returns (z, max|F|, ok)."""
    n = z0.shape[0]
    z = z0.copy()
    F = mixed_residual(mfun, z, modes, kfac, y, u, rho, sw2, A, b_base, s, d, mode)
    if not np.all(np.isfinite(F)):
        return z, np.inf, False
    J = np.empty((n, n))
    for _ in range(60):
        norm = np.max(np.abs(F))
        if norm < 1e-12:
            return z, norm, True
        for j in range(n):
            h = 1e-7 * max(1.0, abs(z[j]))
            zp = z.copy()
            zp[j] += h
            J[:, j] = (mixed_residual(mfun, zp, modes, kfac, y, u, rho, sw2, A, b_base, s, d, mode)
                       - F) / h
        JtJ = J.T @ J
        mu = 1e-12 * (np.trace(JtJ) + 1e-300)
        for i in range(n):
            JtJ[i, i] += mu
        dz = np.linalg.solve(JtJ, -(J.T @ F))
        t = 1.0
        ok = False
        zn, Fn = z, F
        while t > 1e-4:
            zn = z + t * dz
            Fn = mixed_residual(mfun, zn, modes, kfac, y, u, rho, sw2, A, b_base, s, d, mode)
            if np.all(np.isfinite(Fn)) and np.max(np.abs(Fn)) < norm:
                ok = True
                break
            t *= 0.5
        if not ok:
            return z, norm, False
        z, F = zn, Fn
    norm = np.max(np.abs(F))
    return z, norm, norm < 1e-10


@njit(_i8(MOMENTS, _vec, _ivec, _vec, _vec, _f8, _f8, _f8, _vec, _f8, _f8, _f8, _vec, _mat, _ivec, _vec, _f8, _f8), cache=True)
def track(mfun, us, modes, kfac, y, rho, sw2, A, b_base, s, d, u_c, z_c, out, kinds, resid,
          max_step, min_step):
    """Continue the mixed branch from (u_c, z_c) through the sorted targets ``us`` (> u_c).

    Natural continuation in ln u, secant predictor, step halving: a step is taken only when
    the corrector converges close to the prediction with varphi >= 0. When varphi reaches d
    the system switches to GMFL-II (kind 2). Returns how many targets were reached; the rest
    are lost (a fold or the end of the branch).
    """
    nm = modes.shape[0]
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
            zpred = z0 + (z0 - zp) * (step / (t0 - tp)) if have_prev else z0.copy()
            if mode == 2:
                zpred[nm] = d
            u1 = math.exp(t1)
            z1, res, ok = lm(mfun, zpred, modes, kfac, y, u1, rho, sw2, A, b_base, s, d, mode)
            if ok:
                dev = abs(z1[nm + 1] - zpred[nm + 1])
                for j in range(nm):
                    dev = max(dev, abs(z1[j] - zpred[j]))
                ok = dev < 0.05 + 0.1 * step and z1[nm] >= -1e-9 * d
            if ok and mode == 1 and z1[nm] > d:  # every neuron in a droplet: GMFL-II
                z1[nm] = d
                z1, res, ok = lm(mfun, z1, modes, kfac, y, u1, rho, sw2, A, b_base, s, d, 2)
                if ok:
                    mode = 2
            if ok:
                tp, zp = t0, z0
                t0, z0 = t1, z1
                have_prev = True
                h = min(1.5 * h, max_step)
            else:
                h *= 0.5
                if h < min_step:
                    return i
        out[i] = z0
        kinds[i] = mode
        resid[i] = np.max(np.abs(mixed_residual(mfun, z0, modes, kfac, y, us[i], rho, sw2, A, b_base,
                                                s, d, mode)))
    return us.shape[0]
