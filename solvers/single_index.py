r"""Single-index teacher, any activation: GFL closure, action minima and the GFL -> GMFL-I point.

Theory: theory/adaptive_kernel.md Sec. 12 [derived], equivalent-kernel limit, :math:`d\to\infty`.
The action :math:`\hat{\mathcal S}(\Phi)=\Phi^2/2\sigma_w^2-\tfrac u2\big(\sum_kb_k\Phi^kM_k\big)^2`,
:math:`M_k=m_k(\sigma_w^2+\Phi^2)`, and its two Phi-derivatives come from
:func:`kernelphase.single_index.compiled_action`; the moments :math:`m_k(v)` from
:func:`kernelphase.moments.moments_function`. The solver types no formula.

* **GFL discrepancy** (:func:`gfl_discrepancy`): in the GFL phase :math:`\Phi\sim d^{-1/2}`, so
  the kernel entries :math:`v\,d\,\langle\Phi^{j+k}\rangle m_jm_k` vanish for :math:`j+k\ge3`
  and :math:`b_k=c_k` (:math:`k\ge2`); the (1,1) entry gives

  .. math:: b_1\Big[1+\frac{vA}{\kappa(b_1)}\Big]=c_1,\quad A=m_1(\sigma_w^2)^2,\quad
            \kappa=\frac1{\sigma_w^2}-u\,b_1^2A,\quad v=\sqrt{u\rho},\ \rho=N\sigma_a^2/d,

  solved by bisection on :math:`0<|b_1|<\min(|c_1|,(uA\sigma_w^2)^{-1/2})` (one root: the
  left side increases). The constant mode has the entry :math:`v\,d\,m_0(\sigma_w^2)^2=O(d)`,
  so :math:`b_0=c_0/(1+vd\,m_0^2)\to0` when :math:`m_0(\sigma_w^2)\neq0` (the GP learns
  the constant), and :math:`b_0=c_0` when :math:`m_0(\sigma_w^2)=0` (the entry is then
  :math:`O(1/d)`). The term :math:`b_0M_0` is kept in the action with that value. With
  :math:`b_0\,m_0(\sigma_w^2)=0`, :math:`\Phi=0` is always stationary and its curvature is
  :math:`\kappa`.
* **Minima**: outward slope :math:`r(x)=s\,\hat{\mathcal S}'(sx)`, :math:`x>0`, on a sinh-spaced
  grid of :math:`x\in(0,50]` (both signs :math:`s=\pm1` when an even degree is present, as
  the action is then not symmetric), each sign change - to + refined by safeguarded Newton.
* **Spinodal** :math:`u_s`: the first u with :math:`\min_x r(x)/x<0` (a nontrivial minimum
  exists), root-found by Brent. **First-order point** :math:`u_c`: the lowest nontrivial
  minimum reaches :math:`\hat{\mathcal S}=0=\hat{\mathcal S}(0)` (Brent in u).
  **Continuous**: :math:`\kappa\le0` before any nontrivial minimum (cannot happen under the
  closure above, which keeps :math:`\kappa>0`; kept as a check).
* **Unbounded actions**: for activations that are not sublinear
  (:func:`kernelphase.moments.is_sublinear`), :math:`\hat{\mathcal S}(\pm\Phi)` is evaluated
  at :math:`\Phi=10^2,10^4,10^6`; a negative value means :math:`\hat{\mathcal S}\to-\infty`
  (no global minimum in the EK limit, Sec. 12) and gives status 5, never a minimum at the
  edge of the window.

The grid moments are computed once per (activation, :math:`\sigma_w^2`) and memoised.
"""
import functools
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from kernelphase._checks import check_int, check_positive, check_range
from kernelphase.results import Result, status_message

__all__ = ["single_index_transition", "SingleIndexTransitionResult", "gfl_discrepancy",
           "single_index_phases", "SingleIndexPhaseResult",
           "single_index_minima"]

_K = 8            # kernelphase.single_index.K_MAX
_NM = _K + 5      # moments M_0..M_12
_NGRID = 400
_PHI_MAX = 50.0
_FAR = (1e2, 1e4, 1e6)


def _compiled():
    from kernelphase.single_index import compiled_action
    return compiled_action()


_fS = _compiled()


@njit(cache=True)
def _S3(phi, u, sw2, b, M):
    """(S, S', S'') at phi from the discrepancy b[0..8] and moments M[0..12] at sw2 + phi^2."""
    return _fS(phi, u, sw2, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8],
               M[0], M[1], M[2], M[3], M[4], M[5], M[6], M[7], M[8], M[9], M[10], M[11], M[12])


@njit(cache=True)
def _gfl_b1(u, v, sw2, A, c1):
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


# The functions below take the activation's compiled moment function ``mfun`` as an
# argument, so numba cannot cache them (a dispatcher argument is typed by identity, like
# QuantEcon's root_finding); they compile once per activation and process.

@njit
def _point(mfun, x, s, u, sw2, b):
    mv = mfun(sw2 + x * x)
    M = np.zeros(_NM)
    for k in range(len(mv)):
        M[k] = mv[k]
    return _S3(s * x, u, sw2, b, M)


@njit
def _grid_moments(mfun, sw2, xs, out):
    for i in range(xs.shape[0]):
        mv = mfun(sw2 + xs[i] * xs[i])
        for k in range(len(mv)):
            out[i, k] = mv[k]


@njit
def _refine(mfun, lo, hi, s, u, sw2, b):
    """Safeguarded Newton on the outward slope r(x) = s S'(s x), r(lo) < 0 <= r(hi)."""
    x = 0.5 * (lo + hi)
    for _ in range(100):
        _, g, h = _point(mfun, x, s, u, sw2, b)
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


@njit
def _state(mfun, u, rho, sw2, c, A, b0, xs, Mg, both, far, fine):
    """Everything at one u: returns (b, kappa, slope, phi*, S*, S''*, nmin, edge, unbounded).

    slope = min over x > 0 (both signs if ``both``) of r(x)/x (refined by golden section only
    if ``fine``, else its grid value); phi* the lowest nontrivial
    minimum (nan if none); edge: the slope is still negative at the window edge.
    """
    b = c.copy()
    b[0] = b0
    b[1] = _gfl_b1(u, math.sqrt(u * rho), sw2, A, c[1])
    kappa = _S3(0.0, u, sw2, b, Mg[0])[2]
    slope = np.inf
    best_i, best_s = 1, 1.0
    phi, val, curv = np.nan, np.inf, np.nan
    nmin = 0
    edge = False
    n = xs.shape[0]
    for si in range(2 if both else 1):
        s = 1.0 if si == 0 else -1.0
        r0 = s * _S3(s * xs[1], u, sw2, b, Mg[1])[1]
        if r0 / xs[1] < slope:
            slope, best_i, best_s = r0 / xs[1], 1, s
        for i in range(2, n):
            r1 = s * _S3(s * xs[i], u, sw2, b, Mg[i])[1]
            if r1 / xs[i] < slope:
                slope, best_i, best_s = r1 / xs[i], i, s
            if r0 < 0 <= r1:
                x = _refine(mfun, xs[i - 1], xs[i], s, u, sw2, b)
                S, _, S2 = _point(mfun, x, s, u, sw2, b)
                nmin += 1
                if S < val:
                    phi, val, curv = s * x, S, S2
            r0 = r1
        if r0 < 0:
            edge = True
    if not fine:
        return _finish(mfun, u, sw2, b, kappa, slope, phi, val, curv, nmin, edge, far)
    # golden-section refinement of min r(x)/x around the best grid point
    lo = xs[best_i - 1] if best_i > 1 else 0.5 * xs[1]
    hi = xs[best_i + 1] if best_i + 1 < n else xs[n - 1]
    gr = 0.618033988749895
    for _ in range(40):
        p = hi - gr * (hi - lo)
        q = lo + gr * (hi - lo)
        if best_s * _point(mfun, p, best_s, u, sw2, b)[1] / p < \
                best_s * _point(mfun, q, best_s, u, sw2, b)[1] / q:
            hi = q
        else:
            lo = p
    x = 0.5 * (lo + hi)
    rx = best_s * _point(mfun, x, best_s, u, sw2, b)[1] / x
    if rx < slope:
        slope = rx
    return _finish(mfun, u, sw2, b, kappa, slope, phi, val, curv, nmin, edge, far)


@njit
def _finish(mfun, u, sw2, b, kappa, slope, phi, val, curv, nmin, edge, far):
    unbounded = False
    if far:
        for X in _FAR:
            for s in (1.0, -1.0):
                if _point(mfun, X, s, u, sw2, b)[0] < 0:
                    unbounded = True
    return b, kappa, slope, phi, val, curv, nmin, edge, unbounded


@dataclass(frozen=True)
class SingleIndexTransitionResult(Result):
    """GFL -> GMFL-I transition of a single-index teacher (Sec. 12 of the theory).

    ``u_c``: first-order point (lowest nontrivial minimum degenerate with Phi = 0) or, for
    ``order == "continuous"``, the u where Phi = 0 loses stability; ``u_spinodal``: first u
    with a nontrivial (metastable) minimum; ``phi_star``: overlap of the droplet minimum at
    ``u_c`` (may be negative when the teacher has even degrees); ``b``: discrepancy by Hermite
    degree 0..8 at ``u_c``; ``sigma2_c`` when n, d, width, sigma_a2 are given.
    """
    u_c: float
    order: str
    phi_star: float
    b: tuple
    u_spinodal: float
    sigma2_c: float | None
    residual: float
    status: int
    message: str
    nit: int
    params: dict = field(default_factory=dict)


#: invariants of a converged first-order result (checked before status 0 is given)
INVARIANTS = {"abs_phi_star": (1e-3, math.inf), "S_at_phi_star": 1e-9, "curvature": (0.0, math.inf)}


@functools.lru_cache(maxsize=64)
def _setup(activation, sw2, degree):
    """Memoised per (activation, sigma_w2, teacher degree): moment function m_0..m_{degree+4}
    (higher moments are multiplied by b_k = 0 and padded with zeros), grid, grid moments."""
    from kernelphase.moments import activation_expr, is_sublinear, moments_function
    expr = activation_expr(activation)
    mfun = moments_function(expr, max(degree, 1) + 4)
    t = np.linspace(0.0, math.asinh(_PHI_MAX / 0.5), _NGRID)
    xs = 0.5 * np.sinh(t)
    Mg = np.zeros((_NGRID, _NM))
    _grid_moments(mfun, sw2, xs, Mg)
    m_sw = np.asarray(mfun(sw2), dtype=float)
    return mfun, xs, Mg, m_sw, not is_sublinear(expr)


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


def _b0(c0, m0):
    """d -> infinity value of the constant discrepancy (see the module docstring)."""
    return c0 if abs(m0) <= 1e-12 else 0.0


def gfl_discrepancy(activation, teacher, u, rho, sigma_w2=0.5):
    """Discrepancy ``(b_0, ..., b_8)`` on the GFL branch at interaction ``u``."""
    from kernelphase.teachers import as_teacher
    sw2 = check_positive("sigma_w2", sigma_w2)
    u = check_positive("u", u)
    rho = check_positive("rho", rho)
    t = as_teacher(teacher)
    mfun, xs, Mg, m_sw, far = _setup(_key(activation), sw2, t.degree)
    c = t.vector(_K + 1)
    b = c.copy()
    b[0] = _b0(c[0], m_sw[0])
    b[1] = _gfl_b1(u, math.sqrt(u * rho), sw2, m_sw[1] ** 2, c[1])
    return tuple(float(x) for x in b)


def _key(activation):
    """Hashable canonical form (SymPy expression) of an activation."""
    from kernelphase.moments import activation_expr
    return activation_expr(activation)


def single_index_minima(activation, teacher, u, rho, sigma_w2=0.5):
    """Lowest nontrivial minimum on the GFL branch at u: dict(phi, S, curvature, count, b)."""
    from kernelphase.teachers import as_teacher
    sw2 = check_positive("sigma_w2", sigma_w2)
    t = as_teacher(teacher)
    mfun, xs, Mg, m_sw, far = _setup(_key(activation), sw2, t.degree)
    c = t.vector(_K + 1)
    both = bool(t.has_even)
    st = _state(mfun, check_positive("u", u), check_positive("rho", rho), sw2, c,
                m_sw[1] ** 2, _b0(c[0], m_sw[0]), xs, Mg, both, far, True)
    return {"phi": float(st[3]), "S": float(st[4]), "curvature": float(st[5]),
            "count": int(st[6]), "kappa": float(st[1]), "b": tuple(float(x) for x in st[0]),
            "edge": bool(st[7]), "unbounded": bool(st[8])}


def _brent(f, a, b, fa, fb, rtol=1e-14, maxiter=200):
    """Brent root of f on [a, b] with f(a) f(b) <= 0; returns (x, nit)."""
    from scipy.optimize import brentq
    x, r = brentq(f, a, b, xtol=1e-300, rtol=max(rtol, 4 * np.finfo(float).eps),
                  maxiter=maxiter, full_output=True, disp=False)
    return x, r.iterations


def single_index_transition(activation, teacher, sigma_w2=0.5, rho=None, n=None, d=None,
                            width=None, sigma_a2=None, u_max=1e6):
    r"""Spinodal and GFL -> GMFL-I transition of a single-index teacher, any activation.

    Parameters
    ----------
    activation : str, Activation or sympy.Expr
        E.g. ``"erf"``, ``"tanh"``, ``"sin"``, ``"relu"``, ``"z + z**3/3"``, or a SymPy
        expression in :data:`kernelphase.activations.Z` (see
        :func:`kernelphase.moments.activation_expr`).
    teacher : Teacher, mapping or polynomial
        :math:`y=\sum_kc_k\mathrm{He}_k(w^*\cdot x)`, degrees 0..8, e.g. ``{1: 1, 3: -0.3}``.
    sigma_w2 : float
        Read-in prior variance times d.
    rho : float, optional
        :math:`\rho=N\sigma_a^2/d`; or give ``n, d, width, sigma_a2`` (then ``sigma2_c`` is
        reported, :math:`\sigma^2_c=\sqrt{n^2\sigma_a^2/(u_cdN)}`).
    u_max : float
        Largest interaction searched.

    Returns
    -------
    SingleIndexTransitionResult
        ``status`` 0: converged; 1: no transition for ``u <= u_max`` (or a minimum beyond the
        window); 4: an invariant failed; 5: action unbounded below.

    Examples
    --------
    >>> r = single_index_transition("erf", {1: 1, 3: -0.3}, rho=8/150)
    >>> round(r.u_c, 2), r.order  # doctest: +SKIP
    (30.67, 'first')
    """
    from kernelphase.teachers import as_teacher
    t = as_teacher(teacher)
    key = _key(activation)
    sw2 = check_positive("sigma_w2", sigma_w2)
    rho_, phys = _rho_from(rho, n, d, width, sigma_a2)
    u_max = check_range("u_max", u_max, 1e-3, math.inf, lo_open=True)
    params = {"activation": str(key), "teacher": {int(k): float(c) for k, c in t.coeffs},
              "sigma_w2": sw2, "rho": rho_, "u_max": u_max}
    if phys:
        params.update(zip(("n", "d", "width", "sigma_a2"), phys))
    mfun, xs, Mg, m_sw, far = _setup(key, sw2, t.degree)
    c = t.vector(_K + 1)
    A = float(m_sw[1] ** 2)
    b0 = _b0(c[0], m_sw[0])
    both = bool(t.has_even)
    nan = float("nan")
    calls = [0]

    def state(u, fine=False):
        calls[0] += 1
        return _state(mfun, u, rho_, sw2, c, A, b0, xs, Mg, both, far, fine)

    def done(status, detail=None, u_c=nan, order="none", phi=nan, b=None, u_s=nan, res=nan):
        bb = tuple(float(x) for x in (b if b is not None else np.full(_K + 1, nan)))
        s2 = None
        if phys and status == 0:
            from kernelphase.solvers.cubic import sigma2_from_u
            s2 = sigma2_from_u(u_c, *phys)
        return SingleIndexTransitionResult(
            u_c=float(u_c), order=order, phi_star=float(phi), b=bb, u_spinodal=float(u_s),
            sigma2_c=s2, residual=float(res), status=status,
            message=status_message(status, detail), nit=calls[0], params=params)

    def unbounded(u):
        return done(5, f"action unbounded below (S -> -inf as |Phi| -> inf) at u={u:.6g}; "
                       f"the activation grows too fast for the EK action to have a minimum")

    # 1. ladder in u until a nontrivial minimum exists (or Phi = 0 loses stability); start
    # at u = 1 and step down first if a minimum exists there already
    u = min(1.0, u_max)
    st = state(u)
    while (st[2] < 0 or st[8]) and u > 1e-3:
        u /= 4.0
        st = state(u)
    if st[8]:
        return unbounded(u)
    if st[2] < 0:
        return done(1, f"a nontrivial minimum exists already at u={u:g}")
    lo = u
    while st[2] >= 0 and st[1] > 0:
        lo, u = u, u * 1.5
        if u > u_max:
            return done(1, f"no transition for u <= u_max={u_max:g}")
        st = state(u)
        if st[8]:
            return unbounded(u)
    if st[1] > 0:  # bracket the refined slope (the grid value may differ slightly)
        while state(u, True)[2] >= 0:
            lo, u = u, u * 1.1
            if u > u_max:
                return done(1, f"no transition for u <= u_max={u_max:g}")
        while state(lo, True)[2] < 0 and lo > 1e-3:
            lo /= 1.5
    if st[1] <= 0 and st[2] >= 0:  # continuous: kappa -> 0 first
        uc, _ = _brent(lambda x: state(x)[1], lo, u, None, None)
        st = state(uc)
        return done(0, u_c=uc, order="continuous", phi=0.0, b=st[0], u_s=uc,
                    res=abs(st[1]))
    # 2. spinodal: slope(u) = 0
    u_s, _ = _brent(lambda x: state(x, True)[2], lo, u, None, None)
    # 3. first-order point: lowest nontrivial minimum at S = 0
    def F(x):
        s_ = state(x)
        return s_[4] if s_[6] > 0 and math.isfinite(s_[4]) else 1.0
    lo = u_s
    hi = u_s * 1.05
    while True:
        st = state(hi)
        if st[8]:
            return unbounded(hi)
        if st[7] and st[6] == 0:
            return done(1, f"the action still decreases at |Phi| = {_PHI_MAX:g} (u={hi:.6g})",
                        u_s=u_s)
        if F(hi) <= 0:
            break
        lo, hi = hi, hi * 1.2
        if hi > u_max:
            return done(1, f"metastable minimum from u={u_s:.6g} but no first-order point for "
                           f"u <= u_max={u_max:g}", u_s=u_s)
    uc, _ = _brent(F, lo, hi, None, None)
    st = state(uc)
    b, phi, val, curv = st[0], st[3], st[4], st[5]
    res = max(abs(val), abs(_point(mfun, abs(phi), math.copysign(1.0, phi), uc, sw2, b)[1]))
    # 4. invariants
    bad = []
    if not abs(phi) > INVARIANTS["abs_phi_star"][0]:
        bad.append(f"|phi_star|={abs(phi):.3g} collapsed to the trivial root")
    if not abs(val) <= INVARIANTS["S_at_phi_star"]:
        bad.append(f"S(phi_star)={val:.3g} is not degenerate with S(0)=0")
    if not curv > 0:
        bad.append(f"S''(phi_star)={curv:.3g} is not a minimum")
    if not np.all(np.isfinite(b)):
        bad.append("b is not finite")
    if st[7]:
        bad.append(f"the action still decreases at |Phi| = {_PHI_MAX:g}")
    if bad:
        return done(4, "; ".join(bad), u_c=uc, order="first", phi=phi, b=b, u_s=u_s, res=res)
    return done(0, u_c=uc, order="first", phi=phi, b=b, u_s=u_s, res=res)


# --------------------------------------------------------------------------- mixed phase

@dataclass(frozen=True)
class SingleIndexPhaseResult(Result):
    """State of a single-index model at interaction ``u``: phase, discrepancy ``b`` by Hermite
    degree 0..8, the droplet overlap ``phi_star`` and fraction, the learned fraction
    ``learned[k] = 1 - b_k/c_k`` of each teacher component (NaN where c_k = 0)."""
    phase: str
    u: float
    b: tuple
    phi_star: float
    droplet_fraction: float
    learned: tuple
    metastable: bool
    residual: float
    status: int
    message: str
    params: dict = field(default_factory=dict)


def _mixed_F(z, modes, u, rho, sw2, mfun, y, A, b_base, s, d, Kfac):
    """GMFL-I residual in z = (r_k = b_k sqrt(k!) for k in modes, varphi, xi), q = e^{xi/2}.

    (I + v(Q0 + varphi Q(q))) r - y = 0 with Q_jk(q) = q^{j+k} m_j m_k / sqrt(j! k!) at
    v' = sigma_w^2 + q^2 and Q0 = A/kappa(b_1) in the (1,1) entry (theory notes Sec. 12,
    generalising Sec. 4.8), and S(sq)/q^2 = 0, (Phi S'(Phi)/2 - S)/q^2 = 0 at Phi = s q."""
    nm = len(modes)
    r, phi_d, xi = z[:nm], z[nm], z[nm + 1]
    x = math.exp(xi)
    q = math.sqrt(x)
    b = b_base.copy()
    for i, k in enumerate(modes):
        b[k] = r[i] / Kfac[i]
    v = math.sqrt(u * rho)
    mv = np.asarray(mfun(sw2 + x))
    feat = np.array([(s * q) ** k * mv[k] / Kfac[i] for i, k in enumerate(modes)])
    M = np.eye(nm) + v * phi_d * np.outer(feat, feat)
    if 1 in modes:
        i1 = modes.index(1)
        kappa = 1.0 / sw2 - u * b[1] ** 2 * A
        M[i1, i1] += v * A / kappa
    out = np.empty(nm + 2)
    out[:nm] = M @ r - y
    Mfull = np.zeros(_NM)
    Mfull[:len(mv)] = mv
    S, dS, _ = _S3(s * q, u, sw2, b, Mfull)
    out[nm] = S / x
    out[nm + 1] = (s * q * dS / 2 - S) / x
    return out, b


def single_index_phases(activation, teacher, us, rho, sigma_w2=0.5, d=150, transition=None):
    r"""Phases along the interactions ``us`` for any activation and single-index teacher.

    Below :math:`u_c` the GFL branch (:func:`gfl_discrepancy`); above it the GMFL-I (Maxwell)
    system is continued from :math:`u_c` in :math:`\ln u` as for the cubic model
    (:func:`kernelphase.solvers.cubic.cubic_phases`), with the discrepancy kept on the teacher's
    Hermite degrees (Claim I of Rubin et al. generalised; the constant mode is learned by the GP,
    :math:`b_0=0`, unless :math:`m_0\equiv0`) and the droplet at :math:`\Phi_*=s\,e^{\xi/2}`
    (:math:`s` the sign of the droplet at :math:`u_c`), which excludes the trivial root.
    Converged only when the invariants hold (droplet away from 0, fraction in [0, 1], a minimum,
    the global one, :math:`\kappa>0`, the GPR contraction); a droplet fraction reaching 1
    (GMFL-II) is reported as not solved (status 1) for general specs.
    """
    from scipy.optimize import root
    from kernelphase.teachers import as_teacher
    t = as_teacher(teacher)
    key = _key(activation)
    sw2 = check_range("sigma_w2", sigma_w2, 0, 1e6, lo_open=True)
    rho = check_range("rho", rho, 0, 1e12, lo_open=True)
    d = check_int("d", d, 1, 10 ** 12)
    us = np.array([check_range("u", u, 0, 1e12, lo_open=True) for u in np.atleast_1d(us)])
    tr = transition or single_index_transition(key, t, sw2, rho=rho)
    mfun, xs, Mg, m_sw, far = _setup(key, sw2, t.degree)
    c = t.vector(_K + 1)
    A = float(m_sw[1] ** 2)
    params = {"activation": str(key), "teacher": {int(k): float(v) for k, v in t.coeffs},
              "sigma_w2": sw2, "rho": rho, "d": d}
    nan = float("nan")
    learned_of = lambda b: tuple(1 - b[k] / c[k] if c[k] else nan for k in range(_K + 1))

    def result(phase, u, b, phi, frac, meta, res, status, detail=None):
        if status:
            phase = "unknown"
        b = tuple(float(x) for x in b)
        return SingleIndexPhaseResult(phase, float(u), b, float(phi), float(frac), learned_of(b),
                                      bool(meta), float(res), status,
                                      status_message(status, detail), dict(params, u=float(u)))

    out = [None] * len(us)
    mixed = []
    for i, u in enumerate(us):
        if tr.status == 0 and tr.order == "first" and u > tr.u_c:
            mixed.append(i)
            continue
        if tr.status not in (0, 1):
            out[i] = result("GFL", u, np.full(_K + 1, nan), nan, 0, False, nan, tr.status,
                            f"transition: {tr.message}")
            continue
        m = single_index_minima(key, t, u, rho, sw2)
        b = np.array(m["b"])
        detail = None
        if m["unbounded"]:
            out[i] = result("GFL", u, b, nan, 0, False, nan, 5, "action unbounded below")
            continue
        if not m["kappa"] > 0:
            detail = "Phi = 0 is not a minimum (kappa <= 0)"
        elif m["count"] and m["S"] < -1e-9:
            detail = f"a droplet minimum lies below Phi = 0 (S={m['S']:.3g}) on the GFL branch"
        out[i] = result("GFL", u, b, m["phi"] if m["count"] else 0.0, 0.0, m["count"] > 0, 0.0,
                        4 if detail else 0, detail)
    if not mixed:
        return out
    modes = [k for k in range(_K + 1) if c[k] != 0 and not (k == 0 and abs(m_sw[0]) > 1e-12)]
    if 1 not in modes:
        modes = sorted(modes + [1])
    Kfac = np.array([math.sqrt(math.factorial(k)) for k in modes])
    y = np.array([c[k] for k in modes]) * Kfac
    b_base = np.zeros(_K + 1)
    b_base[0] = _b0(c[0], m_sw[0])
    s = math.copysign(1.0, tr.phi_star)
    zc = np.r_[np.array([tr.b[k] for k in modes]) * Kfac, 0.0, 2 * math.log(abs(tr.phi_star))]
    order = sorted(mixed, key=lambda j: us[j])
    t0, z0, tp, zp, have_prev, h = math.log(tr.u_c), zc, None, None, False, 0.02
    lost = None
    for i in order:
        tt = math.log(us[i])
        while lost is None and t0 < tt:
            step = min(h, tt - t0)
            t1 = t0 + step
            zpred = z0 + (z0 - zp) * (step / (t0 - tp)) if have_prev else z0.copy()
            u1 = math.exp(t1)
            fun = lambda z: _mixed_F(z, modes, u1, rho, sw2, mfun, y, A, b_base, s, d, Kfac)[0]
            sol = root(fun, zpred, method="hybr", options={"xtol": 1e-13})
            z1 = sol.x
            F1 = fun(z1)
            ok = bool(np.all(np.isfinite(F1)) and np.max(np.abs(F1)) < 1e-10
                      and np.max(np.abs(np.delete(z1 - zpred, len(modes)))) < 0.05 + 0.1 * step
                      and z1[len(modes)] >= -1e-9 * d)
            if ok and z1[len(modes)] > d:
                lost = f"droplet fraction reaches 1 at u={u1:.6g}: GMFL-II (not solved for general specs)"
                break
            if ok:
                tp, zp, t0, z0, have_prev = t0, z0, t1, z1, True
                h = min(1.5 * h, 0.2)
            else:
                h *= 0.5
                if h < 1e-9:
                    lost = f"mixed branch lost above u={math.exp(t0):.6g} (a fold or the end of the branch)"
        if lost is not None:
            out[i] = result("GMFL-I", us[i], np.full(_K + 1, nan), nan, nan, False, nan,
                            1 if "GMFL-II" in lost else 2, lost)
            continue
        F, b = _mixed_F(z0, modes, us[i], rho, sw2, mfun, y, A, b_base, s, d, Kfac)
        phi_d, q = z0[len(modes)], math.exp(z0[len(modes) + 1] / 2)
        out[i] = result("GMFL-I", us[i], b, s * q, phi_d / d, False, np.max(np.abs(F)),
                        *_mixed_check(mfun, us[i], sw2, b, s * q, phi_d, d, y,
                                      np.array([b[k] for k in modes]) * Kfac, A, xs))
    return out


def _mixed_check(mfun, u, sw2, b, phi, phi_d, d, y, r, A, xs):
    """(status, detail) of a GMFL-I point: 0 when every invariant holds, else 4."""
    q = abs(phi)
    if not (np.all(np.isfinite(b)) and math.isfinite(phi) and math.isfinite(phi_d)):
        return 3, None
    if q < 1e-3:
        return 4, f"droplet at Phi*={phi:.3g}, the trivial root"
    if not -1e-9 <= phi_d / d <= 1 + 1e-9:
        return 4, f"droplet fraction {phi_d / d:.3g} outside [0, 1]"
    S, _, curv = _point(mfun, q, math.copysign(1.0, phi), u, sw2, b)
    if curv <= 0:
        return 4, f"Phi*={phi:.4g} is not a minimum"
    if not 1.0 / sw2 - u * b[1] ** 2 * A > 0:
        return 4, "Phi = 0 is not a minimum (kappa <= 0)"
    for sg in (1.0, -1.0):
        for x in xs[1:]:
            if _point(mfun, x, sg, u, sw2, b)[0] < S - 1e-9 * (1 + abs(S)):
                return 4, "a lower nontrivial minimum exists (droplet not the global minimum)"
    if not (r @ r <= (y @ y) * (1 + 1e-9) and r @ y > 0):
        return 4, "discrepancy not a contraction of the target (GPR with a PSD kernel)"
    return 0, None
