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
  at :math:`\Phi=100, 200` (where quadrature moments are still accurate); a negative value
  means :math:`\hat{\mathcal S}\to-\infty` (no global minimum in the EK limit, Sec. 12) and gives status 5, never a minimum at the
  edge of the window.

The grid moments are computed once per (activation, :math:`\sigma_w^2`) and memoised.
"""
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from kernelphase._checks import check_int, check_range
from kernelphase.results import Result, status_message

from . import _single_index_kernels as _ker

__all__ = ["single_index_transition", "SingleIndexTransitionResult", "gfl_discrepancy",
           "single_index_phases", "SingleIndexPhaseResult",
           "single_index_minima"]

_K = 8            # kernelphase.single_index.K_MAX
_NGRID = 400
_PHI_MAX = 50.0
_U_MAX = 1e12     # largest interaction accepted
_MAX_STEP = 0.2   # largest continuation step in ln u
_MIN_STEP = 1e-9  # below this the branch is declared lost (fold or end)
_PHI_MIN = 1e-3   # a droplet closer to the trivial root than this is no droplet


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


@functools.lru_cache(maxsize=64)
def _setup(activation, sw2, degree):
    """Memoised per (activation, sigma_w2, teacher degree): the moments (m_0..m_7 for degrees
    up to 3, else m_0..m_12: the action needs m_0..m_{degree+4}), the grid, the grid moments,
    the moments at sigma_w2, and whether the far-field (unboundedness) check is needed."""
    from kernelphase.codegen import function_pointer
    from kernelphase.moments import is_sublinear, moments_vector
    mfun = function_pointer(moments_vector(activation, 7 if degree <= 3 else 12))
    t = np.linspace(0.0, math.asinh(_PHI_MAX / 0.5), _NGRID)
    xs = 0.5 * np.sinh(t)
    Mg = _ker.grid_moments(mfun, sw2, xs)
    return mfun, xs, Mg, Mg[0].copy(), not is_sublinear(activation)


def _rho_from(rho, n, d, width, sigma_a2):
    """``(rho, None)`` or, from the physical sizes, ``(N sigma_a2 / d, (n, d, N, sigma_a2))``."""
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


def _b0(c0, m0):
    """d -> infinity value of the constant discrepancy (see the module docstring)."""
    return c0 if abs(m0) <= 1e-12 else 0.0


def _stabiliser(spec):
    r"""(lambda, p) of a stabiliser :math:`\lambda|\Phi|^p` added to the action: None (none),
    a pair, or text such as ``"1e-3*Phi**6"`` (parsed from its syntax tree, never evaluated)."""
    if spec is None:
        return (0.0, 0.0)
    if isinstance(spec, str):
        import sympy as sp
        from kernelphase.parse import parse_formula
        phi = sp.Symbol("Phi")
        e = parse_formula(spec, variables={"Phi": phi}, params=None, name="stabiliser")
        lam, p = e.as_coeff_exponent(phi)
        if not (lam.is_number and p.is_number and sp.simplify(e - lam * phi ** p) == 0):
            raise ValueError(f"stabiliser={spec!r} must be a monomial lam*Phi**p")
        spec = (float(lam), float(p))
    lam, p = spec
    return (check_range("stabiliser lambda", lam, 0, 1e12, lo_open=True),
            check_range("stabiliser power", p, 2, 64, lo_open=True))


class _Model:
    """One (activation, teacher, sigma_w2): kernels, grid, and the GFL constants."""

    def __init__(self, activation, teacher, sigma_w2, stabiliser=None):
        from kernelphase.teachers import as_teacher
        self.teacher = as_teacher(teacher)
        self.key = _key(activation)
        self.sw2 = check_range("sigma_w2", sigma_w2, 0, 1e6, lo_open=True)
        self.mfun, self.xs, self.Mg, m_sw, self.far = _setup(self.key, self.sw2,
                                                             self.teacher.degree)
        self.stab = _stabiliser(stabiliser)
        self.c = self.full(self.teacher.vector(_K + 1))
        self.A = float(m_sw[1] ** 2)
        self.m0 = float(m_sw[0])
        self.b0 = _b0(self.c[0], self.m0)
        self.both = bool(self.teacher.has_even)

    def full(self, b):
        """The kernels' coefficient vector: b_0..b_8, then the stabiliser (lambda, p)."""
        out = np.zeros(_K + 3)
        out[:_K + 1] = b[:_K + 1]
        out[_K + 1:] = self.stab
        return out

    def params(self):
        p = {"activation": str(self.key),
             "teacher": {int(k): float(v) for k, v in self.teacher.coeffs},
             "sigma_w2": self.sw2}
        if self.stab[0]:
            p["stabiliser"] = {"lambda": self.stab[0], "power": self.stab[1]}
        return p

    def state(self, u, rho, fine=False):
        """(b, kappa, slope, phi*, S*, S''*, nmin, edge, unbounded, at) on the GFL branch; the
        slope is refined by golden section only if ``fine``."""
        return _ker.state(self.mfun, u, rho, self.sw2, self.c, self.A, self.b0, self.xs, self.Mg,
                          self.both, self.far, fine)

    def point(self, phi, u, b):
        return _ker.point(self.mfun, abs(phi), math.copysign(1.0, phi), u, self.sw2,
                          self.full(np.asarray(b, dtype=float)))


def gfl_discrepancy(activation, teacher, u, rho, sigma_w2=0.5):
    """Discrepancy ``(b_0, ..., b_8)`` on the GFL branch at interaction ``u``.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.single_index import gfl_discrepancy
    >>> from kernelphase.solvers.cubic import gfl_b
    >>> b = gfl_discrepancy("erf", "He1 - 0.3*He3", 20.0, 8/150)
    >>> np.round(b[:4], 4)                           # b_1 learned in part, b_3 = c_3
    array([ 0.    ,  0.3581,  0.    , -0.3   ])
    >>> round(b[1] - gfl_b(20.0, 8/150), 12)         # the cubic model is the erf preset
    0.0
    """
    m = _Model(activation, teacher, sigma_w2)
    u = check_range("u", u, 0, _U_MAX, lo_open=True)
    rho = check_range("rho", rho, 0, 1e12, lo_open=True)
    return tuple(float(x) for x in _ker.gfl_discrepancy(u, rho, m.sw2, m.c, m.A, m.b0)[:_K + 1])


def _key(activation):
    """Hashable canonical form (SymPy expression) of an activation."""
    from kernelphase.moments import activation_expr
    return activation_expr(activation)


def single_index_minima(activation, teacher, u, rho, sigma_w2=0.5, stabiliser=None):
    """Lowest nontrivial minimum on the GFL branch at u: dict(phi, S, curvature, count, b).

    Examples
    --------
    >>> from kernelphase.solvers.single_index import single_index_minima
    >>> m = single_index_minima("erf", "He1 - 0.3*He3", 40.0, 8/150)
    >>> sorted(m), round(m["phi"], 3)
    (['S', 'b', 'count', 'curvature', 'edge', 'kappa', 'phi', 'unbounded'], 0.903)
    """
    m = _Model(activation, teacher, sigma_w2, stabiliser)
    st = m.state(check_range("u", u, 0, _U_MAX, lo_open=True),
                 check_range("rho", rho, 0, 1e12, lo_open=True))
    return {"phi": float(st[3]), "S": float(st[4]), "curvature": float(st[5]),
            "count": int(st[6]), "kappa": float(st[1]),
            "b": tuple(float(x) for x in st[0][:_K + 1]),
            "edge": bool(st[7]), "unbounded": bool(st[8])}


#: invariants of a converged first-order result (checked before status 0 is given)
INVARIANTS = {"abs_phi_star": (_PHI_MIN, math.inf), "S_at_phi_star": 1e-9,
              "curvature": (0.0, math.inf)}


def single_index_transition(activation, teacher, sigma_w2=0.5, rho=None, n=None, d=None,
                            width=None, sigma_a2=None, u_max=1e6, stabiliser=None):
    r"""Spinodal and GFL -> GMFL-I transition of a single-index teacher, any activation.

    Parameters
    ----------
    activation : str, Activation or sympy.Expr
        E.g. ``"erf"``, ``"tanh"``, ``"sin"``, ``"relu"``, ``"z + z**3/3"``, or a SymPy
        expression in :data:`kernelphase.activations.Z` (see
        :func:`kernelphase.moments.activation_expr`).
    teacher : Teacher, mapping or polynomial
        :math:`y=\sum_kc_k\mathrm{He}_k(w^*\cdot x)`, degrees 0..8, e.g. ``{1: 1, 3: -0.3}``
        or ``"He1 - 0.3*He3"``.
    sigma_w2 : float
        Read-in prior variance times d.
    rho : float, optional
        :math:`\rho=N\sigma_a^2/d`; or give ``n, d, width, sigma_a2`` (then ``sigma2_c`` is
        reported, :math:`\sigma^2_c=\sqrt{n^2\sigma_a^2/(u_cdN)}`).
    u_max : float
        Largest interaction searched.
    stabiliser : str or (float, float), optional
        A term :math:`\lambda|\Phi|^p` (:math:`\lambda>0`, :math:`p>2`) added to the action,
        e.g. ``"1e-3*Phi**6"`` as in the modular model: it keeps the posterior proper where the
        activation grows faster than linearly and the EK action is unbounded below.

    Returns
    -------
    SingleIndexTransitionResult
        ``status`` 0: converged; 1: no transition for ``u <= u_max`` (or a minimum beyond the
        window); 4: an invariant failed; 5: action unbounded below.

    Examples
    --------
    >>> r = single_index_transition("erf", "He1 - 0.3*He3", rho=8/150)
    >>> round(r.u_c, 2), r.order
    (30.67, 'first')
    """
    m = _Model(activation, teacher, sigma_w2, stabiliser)
    rho_, phys = _rho_from(rho, n, d, width, sigma_a2)
    u_max = check_range("u_max", u_max, 1e-3, _U_MAX, lo_open=True)
    params = dict(m.params(), rho=rho_, u_max=u_max)
    if phys:
        params.update(zip(("n", "d", "width", "sigma_a2"), phys))
    out, order, uc, us, aux, nit = _ker.transition(m.mfun, rho_, m.sw2, m.c, m.A, m.b0, m.xs,
                                                   m.Mg, m.both, m.far, u_max)
    nan = float("nan")

    def done(status, detail=None, u_c=nan, order="none", phi=nan, b=None, u_s=nan, res=nan):
        bb = tuple(float(x) for x in (b[:_K + 1] if b is not None else np.full(_K + 1, nan)))
        s2 = sigma2_from_u(u_c, *phys) if (phys and status == 0) else None
        return SingleIndexTransitionResult(
            u_c=float(u_c), order=order, phi_star=float(phi), b=bb, u_spinodal=float(u_s),
            sigma2_c=s2, residual=float(res), status=status,
            message=status_message(status, detail), nit=int(nit), params=params)

    if out == _ker.UNBOUNDED:
        return done(5, f"action unbounded below (S -> -inf as |Phi| -> inf) at u={aux:.6g}; "
                       f"the activation grows too fast for the EK action to have a minimum "
                       f"(a stabiliser lam*Phi**p whose p exceeds the growth of the interaction "
                       f"term, e.g. stabiliser='1e-3*Phi**8' for a cubic, keeps it proper)",
                    u_s=us)
    if out == _ker.MIN_AT_START:
        return done(1, f"a nontrivial minimum exists already at u={aux:g}")
    if out == _ker.NO_TRANSITION:
        return done(1, f"no transition for u <= u_max={u_max:g}")
    if out == _ker.EDGE:
        return done(1, f"the action still decreases at |Phi| = {_PHI_MAX:g} (u={aux:.6g})",
                    u_s=us)
    if out == _ker.METASTABLE_ONLY:
        return done(1, f"metastable minimum from u={us:.6g} but no first-order point for "
                       f"u <= u_max={u_max:g}", u_s=us)
    st = m.state(uc, rho_)
    b = st[0]
    if order == 2:  # continuous: kappa -> 0 first
        return done(0, u_c=uc, order="continuous", phi=0.0, b=b, u_s=uc, res=abs(st[1]))
    phi, val, curv = st[3], st[4], st[5]
    res = max(abs(val), abs(m.point(phi, uc, b)[1]))
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
    return done(4 if bad else 0, "; ".join(bad) or None, u_c=uc, order="first", phi=phi, b=b,
                u_s=us, res=res)


# --------------------------------------------------------------------------- mixed phase

@dataclass(frozen=True)
class SingleIndexPhaseResult(Result):
    """State of a single-index model at interaction ``u``: phase (GFL, GMFL-I, GMFL-II),
    discrepancy ``b`` by Hermite degree 0..8, the droplet overlap ``phi_star`` and fraction,
    the learned fraction ``learned[k] = 1 - b_k/c_k`` of each teacher component (NaN where
    c_k = 0); ``metastable`` flags a droplet minimum above Phi = 0 on the GFL branch."""
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


def single_index_phases(activation, teacher, us, rho, sigma_w2=0.5, d=150, transition=None,
                        stabiliser=None):
    r"""Phases along the interactions ``us`` for any activation and single-index teacher.

    Below :math:`u_c` the GFL branch (:func:`gfl_discrepancy`). Above it the mixed (Maxwell)
    system is continued from :math:`u_c` in :math:`\ln u`, with the discrepancy on the
    teacher's Hermite degrees (Claim I of Rubin et al. generalised; the constant mode is
    learned by the GP, :math:`b_0=0`, unless :math:`m_0\equiv0`) and the droplet at
    :math:`\Phi_*=s\,e^{\xi/2}` (:math:`s` the sign of the droplet at :math:`u_c`), which
    excludes the trivial root: GMFL-I while the droplet fraction is below 1, GMFL-II (every
    neuron in a droplet, :math:`Q_0` dropped, :math:`\hat S'(\Phi_*)=0`) from there.
    ``d`` converts the droplet weight :math:`\varphi` to the fraction :math:`\varphi/d`.

    A result is converged only when its invariants hold. GFL: :math:`0<b_1/c_1\le1`,
    :math:`\kappa>0`, no droplet minimum below :math:`\Phi=0`. Mixed: :math:`|\Phi_*|\ge
    10^{-3}`, fraction in [0, 1], :math:`\hat S''(\Phi_*)>0`, the droplet the global minimum,
    :math:`\kappa>0` (GMFL-I) or :math:`\hat S(\Phi_*)\le0` (GMFL-II), and the GPR
    contraction :math:`|r|\le|y|`, :math:`r\cdot y>0`. Otherwise the status says what failed
    and the phase is ``"unknown"``.

    Examples
    --------
    >>> from kernelphase.solvers.single_index import single_index_phases
    >>> rs = single_index_phases("erf", "He1 - 0.3*He3", [10.0, 40.0], rho=8/150)
    >>> [r.phase for r in rs]
    ['GFL', 'GMFL-I']
    """
    m = _Model(activation, teacher, sigma_w2, stabiliser)
    rho = check_range("rho", rho, 0, 1e12, lo_open=True)
    d = check_int("d", d, 1, 10 ** 12)
    us = np.array([check_range("u", u, 0, _U_MAX, lo_open=True) for u in np.atleast_1d(us)],
                  dtype=float)
    tr = transition or single_index_transition(m.key, m.teacher, m.sw2, rho=rho,
                                               stabiliser=stabiliser)
    c = m.c
    params = dict(m.params(), rho=rho, d=d)
    nan = float("nan")
    learned_of = lambda b: tuple(1 - b[k] / c[k] if c[k] else nan for k in range(_K + 1))

    def result(phase, u, b, phi, frac, meta, res, status, detail=None):
        if status:
            phase = "unknown"
        b = tuple(float(x) for x in b[:_K + 1])
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
        b, kappa, _, phi, val, _, count, _, unbounded, _ = m.state(u, rho)
        if unbounded:
            out[i] = result("GFL", u, b, nan, 0, False, nan, 5, "action unbounded below")
            continue
        detail = None
        if c[1] and not 0 < b[1] / c[1] <= 1:
            detail = f"b_1/c_1={b[1] / c[1]:.4g} outside (0, 1]"
        elif not kappa > 0:
            detail = "Phi = 0 is not a minimum (kappa <= 0)"
        elif count and val < -1e-9:
            detail = f"a droplet minimum lies below Phi = 0 (S={val:.3g}) on the GFL branch"
        out[i] = result("GFL", u, b, phi if count else 0.0, 0.0, count > 0, 0.0,
                        4 if detail else 0, detail)
    if not mixed:
        return out
    modes = np.array([k for k in range(_K + 1)
                      if (c[k] != 0 and not (k == 0 and abs(m.m0) > 1e-12)) or k == 1])
    kfac = np.array([math.sqrt(math.factorial(k)) for k in modes])
    y = c[modes] * kfac
    b_base = m.full(np.zeros(_K + 1))
    b_base[0] = m.b0
    s = math.copysign(1.0, tr.phi_star)
    zc = np.r_[np.asarray(tr.b)[modes] * kfac, 0.0, 2 * math.log(abs(tr.phi_star))]
    order = sorted(mixed, key=lambda j: us[j])
    ut = us[order]
    z = np.empty((len(ut), len(modes) + 2))
    kinds = np.zeros(len(ut), np.int64)
    resid = np.full(len(ut), np.nan)
    reached = _ker.track(m.mfun, ut, modes, kfac, y, rho, m.sw2, m.A, b_base, s, float(d),
                         tr.u_c, zc, z, kinds, resid, _MAX_STEP, _MIN_STEP)
    nm = len(modes)
    for j, i in enumerate(order):
        if j >= reached:
            last = ut[reached - 1] if reached else tr.u_c
            out[i] = result("GMFL-I", us[i], np.full(_K + 1, nan), nan, nan, False, nan, 2,
                            f"mixed branch lost above u={last:.6g} (a fold or the end of "
                            f"the branch)")
            continue
        b = b_base.copy()
        b[modes] = z[j, :nm] / kfac
        phi_d, phi = z[j, nm], s * math.exp(z[j, nm + 1] / 2)
        status, detail = _mixed_check(m, us[i], b, phi, phi_d, d, y, z[j, :nm], kinds[j])
        out[i] = result("GMFL-II" if kinds[j] == 2 else "GMFL-I", us[i], b, phi,
                        min(phi_d / d, 1.0), False, resid[j], status, detail)
    return out


def _mixed_check(m, u, b, phi, phi_d, d, y, r, kind):
    """(status, detail) of a mixed-phase point: 0 when every invariant holds, else 3 or 4."""
    if not (np.all(np.isfinite(b)) and math.isfinite(phi) and math.isfinite(phi_d)):
        return 3, None
    if abs(phi) < _PHI_MIN:
        return 4, f"droplet at Phi*={phi:.3g}, the trivial root"
    if not -1e-9 <= phi_d / d <= 1 + 1e-9:
        return 4, f"droplet fraction {phi_d / d:.3g} outside [0, 1]"
    S, _, curv = m.point(phi, u, b)
    if curv <= 0:
        return 4, f"Phi*={phi:.4g} is not a minimum (S''={curv:.3g})"
    if kind == 1 and not 1.0 / m.sw2 - u * b[1] ** 2 * m.A > 0:
        return 4, "Phi = 0 is not a minimum (kappa <= 0)"
    if kind == 2 and S > 1e-9:
        return 4, f"droplet action S(Phi*)={S:.3g} above S(0) = 0 in GMFL-II"
    st = _ker.scan(m.mfun, u, m.sw2, b, m.xs, m.Mg, True, False, False)
    if st[4] and st[2] < S - 1e-9 * (1 + abs(S)):
        return 4, "a lower nontrivial minimum exists (droplet not the global minimum)"
    if not (r @ r <= (y @ y) * (1 + 1e-9) and r @ y > 0):
        return 4, "discrepancy not a contraction of the target (GPR with a PSD kernel)"
    return 0, None
