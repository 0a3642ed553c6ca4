r"""Cubic teacher with erf: the paper's model as a preset of the single-index engine.

Rubin, Seroussi & Ringel (2023), App. A.2-A.4, equivalent-kernel limit, :math:`d\to\infty`:
student :math:`\sigma=\mathrm{erf}`, teacher :math:`y=\mathrm{He}_1+\epsilon\,\mathrm{He}_3`.
Every number comes from :mod:`kernelphase.solvers.single_index` with activation ``"erf"`` and
teacher ``{1: 1, 3: eps}``; this module only renames its results (``b = b_1``, ``c = b_3``,
``learned_cubic = 1 - c/eps``). In that engine:

* **GFL** (single Gaussian at :math:`\Phi=0`): :math:`c=\epsilon` and :math:`b` solves
  :math:`b[1+vA/\kappa(b)]=1` with :math:`A=m_1(\sigma_w^2)^2` (for erf
  :math:`4/(\pi(1+2\sigma_w^2))`, derived by :mod:`kernelphase.moments`),
  :math:`\kappa=1/\sigma_w^2-ub^2A`, :math:`v=\sqrt{u\rho}`, :math:`\rho=N\sigma_a^2/d`.
* **Spinodal** :math:`u_s`: a nontrivial minimum first exists (:math:`\hat S'=\hat S''=0`).
* **First-order point** :math:`u_c`: it is degenerate with :math:`\Phi=0`,
  :math:`\hat S(\Phi_*)=\hat S'(\Phi_*)=0` (Claim IV).
* **GMFL-I / GMFL-II** (:math:`u>u_c`): the Maxwell system continued in :math:`\ln u`, with the
  closure :math:`(b,\sqrt6c)^\top=[I+v(\hat Q_0+\varphi\hat Q(q_*))]^{-1}(1,\sqrt6\epsilon)^\top`.

The action is :func:`kernelphase.actions.cubic_action` (the boxed Eq. 8); the tests check the
engine's action against it and against quadrature.
"""
from dataclasses import dataclass, field

import numpy as np

from kernelphase._checks import check_range
from kernelphase.results import Result, status_message

from . import _single_index_kernels as _ker
from .single_index import (SingleIndexTransitionResult, _Model, _U_MAX,
                           sigma2_from_u, single_index_phases, single_index_transition,
                           u_from_sigma2)

__all__ = ["cubic_transition", "cubic_phase", "cubic_phases", "gfl_b", "action_minima",
           "CubicTransitionResult", "CubicPhaseResult", "action", "cubic_phase_scaled",
           "u_from_sigma2", "sigma2_from_u"]

_ACT = "erf"


def _teacher(eps):
    return {1: 1.0, 3: float(eps)} if eps else {1: 1.0}


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
    >>> round(r.u_c, 2), round(r.sigma2_c, 4)
    (30.67, 0.1787)
    """
    eps = check_range("eps", eps, -100, 100)
    tr = single_index_transition(_ACT, _teacher(eps), sigma_w2, rho, n, d, width, sigma_a2,
                                 u_max)
    p = tr.params
    params = {"eps": eps, "sigma_w2": p["sigma_w2"], "rho": p["rho"]}
    params.update({k: p[k] for k in ("n", "d", "width", "sigma_a2") if k in p})
    status, message = tr.status, tr.message
    if eps == 0.0 and status == 1:
        message = status_message(1, "no transition (a linear teacher: no nontrivial minimum "
                                    f"for u <= u_max={u_max:g})")
    return CubicTransitionResult(u_spinodal=tr.u_spinodal, u_c=tr.u_c, phi_star=tr.phi_star,
                                 b_at_uc=tr.b[1], sigma2_c=tr.sigma2_c, residual=tr.residual,
                                 status=status, message=message, nit=tr.nit, params=params)


def _engine_transition(tr, eps):
    """The engine's view of a :class:`CubicTransitionResult`."""
    if isinstance(tr, SingleIndexTransitionResult):
        return tr
    b = [0.0] * 9
    b[1], b[3] = tr.b_at_uc, eps
    return SingleIndexTransitionResult(
        u_c=tr.u_c, order="first" if tr.status == 0 else "none", phi_star=tr.phi_star,
        b=tuple(b), u_spinodal=tr.u_spinodal, sigma2_c=tr.sigma2_c, residual=tr.residual,
        status=tr.status, message=tr.message, nit=tr.nit, params=tr.params)


def gfl_b(u, rho, sigma_w2=0.5):
    """Linear discrepancy b on the GFL branch (c = eps there; b does not depend on eps).

    Examples
    --------
    >>> from kernelphase.solvers.cubic import gfl_b
    >>> round(gfl_b(1e-9, 8/150), 6)       # no interaction: nothing is learned, b = 1
    0.999998
    >>> round(gfl_b(20.0, 8/150), 4)
    0.3581
    """
    from .single_index import gfl_discrepancy
    return gfl_discrepancy(_ACT, {1: 1.0}, u, rho, sigma_w2)[1]


def action(phi, u, b, c, sigma_w2=0.5):
    r"""Per-d action :math:`\hat S(\Phi)` and its two Phi-derivatives (arrays, shape of
    ``phi``) at discrepancy :math:`(b, c)` (Eq. 8).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.cubic import action
    >>> S, dS, d2S = action(np.array([0.0, 1.0]), u=30.0, b=0.5, c=-0.3)
    >>> float(S[0]), float(dS[0])                    # Phi = 0 is always stationary
    (0.0, 0.0)
    >>> round(float(d2S[0]), 6) == round(1 / 0.5 - 2 * (2 * 30.0 / np.pi) * 0.5**2 / 2, 6)
    True
    """
    m = _Model(_ACT, {1: 1.0, 3: 1.0}, sigma_w2)
    bb = np.zeros(9)
    bb[1], bb[3] = b, c
    out = np.array([m.point(float(p), float(u), bb) for p in np.ravel(phi)]).reshape(-1, 3)
    return tuple(out[:, k].reshape(np.shape(phi)) for k in range(3))


def action_minima(u, b, c, sigma_w2=0.5):
    """All local minima of the per-d action with Phi >= 0: array of rows (Phi, S, S'').

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.solvers.cubic import action_minima
    >>> m = action_minima(40.0, 0.3, -0.3)
    >>> m.shape[1], bool(np.all(m[:, 2] > 0))        # rows (Phi, S, S''), all minima
    (3, True)
    """
    m = _Model(_ACT, {1: 1.0, 3: 1.0}, sigma_w2)
    bb = np.zeros(9)
    bb[1], bb[3] = b, c
    bb = m.full(bb)
    rows = []
    S0 = m.point(0.0, u, bb)
    if S0[2] > 0:
        rows.append((0.0, 0.0, S0[2]))
    r = [m.point(x, u, bb)[1] for x in m.xs[1:]]
    for i in range(1, len(r)):
        if r[i - 1] < 0 <= r[i]:
            x = _ker.refine(m.mfun, m.xs[i], m.xs[i + 1], 1.0, u, m.sw2, bb)
            rows.append((x,) + tuple(m.point(x, u, bb)[k] for k in (0, 2)))
    return np.array(rows).reshape(-1, 3)


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


def cubic_phases(eps, us, rho, sigma_w2=0.5, d=150, transition=None):
    r"""Phases and order parameters of the cubic model along a set of interactions ``us``.

    Below :math:`u_c` the GFL branch (``metastable`` flags a droplet minimum above the
    Phi = 0 one: the hysteresis window); above it the mixed branch continued from :math:`u_c`,
    GMFL-I while the droplet fraction is below 1, GMFL-II from there
    (:func:`kernelphase.solvers.single_index.single_index_phases`, whose invariants decide
    ``converged``; for this model the GPR contraction reads :math:`b^2+6c^2\le1+6\epsilon^2`).
    An unconverged point has phase ``"unknown"``.

    Examples
    --------
    >>> from kernelphase.solvers.cubic import cubic_phases
    >>> rs = cubic_phases(-0.3, [10.0, 40.0], rho=8/150)
    >>> [r.phase for r in rs]
    ['GFL', 'GMFL-I']
    """
    eps = check_range("eps", eps, -100, 100)
    tr = _engine_transition(transition, eps) if transition is not None else None
    res = single_index_phases(_ACT, _teacher(eps), us, rho, sigma_w2, d, tr)
    out = []
    for r in res:
        p = r.params
        params = {"eps": eps, "sigma_w2": p["sigma_w2"], "rho": p["rho"], "d": p["d"],
                  "u": p["u"]}
        out.append(CubicPhaseResult(
            r.phase, r.u, r.b[1], r.b[3], abs(r.phi_star) if r.phase != "GFL" else r.phi_star,
            r.droplet_fraction, r.learned[3] if eps else 0.0, r.metastable, r.residual,
            r.status, r.message, params))
    return out


def cubic_phase_scaled(eps, u, rho, sigma_w2=0.5, d=150, transition=None):
    r"""Phase and order parameters at interaction ``u`` for invariants ``rho``, ``sigma_w2``.

    ``d`` converts :math:`\varphi` (droplet weight times d) to the droplet fraction.
    ``transition`` may pass a precomputed :func:`cubic_transition` result for these invariants.
    See :func:`cubic_phases` for the branches and the invariants checked.

    Examples
    --------
    >>> from kernelphase.solvers.cubic import cubic_phase_scaled
    >>> r = cubic_phase_scaled(-0.3, 20.0, rho=8/150)
    >>> r.phase, round(r.b, 4), r.converged
    ('GFL', 0.3581, True)
    """
    return cubic_phases(eps, [u], rho, sigma_w2, d, transition)[0]


def cubic_phase(eps, sigma2, n, d, width, sigma_a2, sigma_w2=0.5):
    r"""Phase (GFL, GMFL-I or GMFL-II) and order parameters at noise level :math:`\sigma^2`.

    Below :math:`u_c` the GFL branch holds (``metastable`` flags a droplet minimum above the
    Phi = 0 one, between the spinodal and u_c: the hysteresis window); above it the GMFL-I
    (Maxwell) system is continued from :math:`u_c`; GMFL-II is reported when the droplet
    fraction reaches 1.

    Examples
    --------
    >>> from kernelphase.solvers.cubic import cubic_phase
    >>> r = cubic_phase(-0.3, 0.1, n=3000, d=150, width=700, sigma_a2=8/700)
    >>> r.phase, round(r.b, 4), round(r.phi_star, 4), r.converged
    ('GMFL-I', 0.1304, 0.9794, True)
    >>> cubic_phase(-0.3, 0.3, n=3000, d=150, width=700, sigma_a2=8/700).phase
    'GFL'
    """
    sigma2 = check_range("sigma2", sigma2, 0, 1e12, lo_open=True)
    tr = cubic_transition(eps, sigma_w2, n=n, d=d, width=width, sigma_a2=sigma_a2)
    phys = tuple(tr.params[k] for k in ("n", "d", "width", "sigma_a2"))
    u = u_from_sigma2(sigma2, *phys)
    if not 0 < u <= _U_MAX:
        raise ValueError(f"sigma2={sigma2!r} gives u={u:.3g}, outside the valid range "
                         f"(0, {_U_MAX:g}]; the valid sigma2 range here is "
                         f"[{sigma2_from_u(_U_MAX, *phys):.3g}, 1e+12]")
    r = cubic_phase_scaled(eps, u, tr.params["rho"], sigma_w2, d, transition=tr)
    return CubicPhaseResult(**{**r.__dict__, "params": dict(tr.params, sigma2=sigma2)})
