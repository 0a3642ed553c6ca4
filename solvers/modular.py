r"""Modular-addition teacher: per-mode saddles and the GFL -> GMFL-I -> GMFL-II boundaries.

Rubin, Seroussi & Ringel (2023), Sec. 3.2 and App. B. Per Fourier mode the action (from
:func:`kernelphase.actions.modular_action`) is :math:`\mathcal S_k/P=\Phi-g\Phi^2+\frac\gamma3\Phi^3`,
:math:`g=ua^2`, :math:`u=2\sigma_a^2P^2/(N\sigma^4)`; the discrepancy amplitude obeys the GPR
closure :math:`a=-\sigma^2/(\lambda+\sigma^2)` with :math:`\lambda=\sigma_a^2\,p\,\Phi_+^2`
(Eqs. 38, 41-42; ``p`` the weight of the nontrivial saddle, printed normalisation).

* the nontrivial minimum is degenerate with :math:`\Phi=0` at :math:`g_c`, :math:`\Phi_+(g_c)`
  (solved symbolically from :math:`\mathcal S=\mathcal S'=0`);
* GFL: :math:`a=-1`; GMFL-I (:math:`\sigma_2^2<\sigma^2<\sigma_1^2`): :math:`g=g_c` pinned,
  :math:`|a|=\sigma^2/\sigma_1^2`, :math:`\sigma_1^2=\sqrt{2\sigma_a^2P^2/(Ng_c)}`,
  :math:`p=(\sigma_1^2-\sigma^2)/(\sigma_a^2\Phi_+^2)`; GMFL-II when :math:`p=1`:
  :math:`\sigma_2^2=\sigma_1^2-\sigma_a^2\Phi_+(g_c)^2`, below which :math:`p=1` and
  :math:`|a|=\sigma^2/(\sigma^2+\sigma_a^2\Phi_+(ua^2)^2)` is root-found.
"""
import functools
import math
from dataclasses import dataclass, field

from kernelphase._checks import check_int, check_range
from kernelphase.results import Result, status_message

__all__ = ["modular_transition", "modular_phase", "ModularTransitionResult", "ModularPhaseResult",
           "degenerate_point"]



def _check(P, width, sigma_a2, gamma):
    from sympy import isprime  # deterministic (BPSW, exact below 2^64)
    P = check_int("P", P, 2, 10 ** 12)
    if not isprime(P):
        raise ValueError(f"P={P} is not prime; the modular-addition theory needs a prime modulus")
    return P, check_int("width", width, 1, 10 ** 12), \
        check_range("sigma_a2", sigma_a2, 0, 1e12, lo_open=True), \
        check_range("gamma", gamma, 1e-12, 1e6)


@functools.lru_cache(maxsize=None)
def _symbolic():
    import sympy as sp
    from kernelphase.actions import SYMBOLS, modular_action
    s = SYMBOLS
    S = modular_action()
    dS = sp.diff(S, s["Phi"])
    sols = sp.solve([S / s["Phi"], dS], [s["Phi"], s["g"]], dict=True)
    sol = [r for r in sols if r[s["Phi"]].is_positive is not False and r[s["g"]].is_positive][0]
    roots = sp.solve(dS, s["Phi"])
    phi_plus = max(roots, key=lambda r: float(r.subs({s["g"]: 1, s["gamma"]: sp.Rational(1, 4)})))
    return sol[s["g"]], sol[s["Phi"]], phi_plus


@functools.lru_cache(maxsize=None)
def _closed_forms():
    """(g_c, Phi_+(g_c)) of gamma and Phi_+ of (g, gamma) as plain functions, from SymPy."""
    import sympy as sp
    from kernelphase.actions import SYMBOLS
    gc, phic, phi_plus = _symbolic()
    g, gam = SYMBOLS["g"], SYMBOLS["gamma"]
    return (sp.lambdify(gam, [gc, phic], "math"), sp.lambdify((g, gam), phi_plus, "math"))


def degenerate_point(gamma):
    r"""(g_c, Phi_+(g_c)) where the nontrivial per-mode minimum is degenerate with Phi = 0.

    Examples
    --------
    >>> from kernelphase.solvers.modular import degenerate_point
    >>> g_c, phi = degenerate_point(1e-4)
    >>> round(g_c, 6), round(phi, 4)
    (0.011547, 173.2051)
    """
    gc, phic = _closed_forms()[0](float(gamma))
    return float(gc), float(phic)


@functools.lru_cache(maxsize=None)
def _action_numeric():
    """(S, dS/dPhi) of the per-mode action as plain functions of (Phi, g, gamma), from SymPy."""
    import sympy as sp
    from kernelphase.actions import SYMBOLS, modular_action
    s = SYMBOLS
    S = modular_action()
    return sp.lambdify((s["Phi"], s["g"], s["gamma"]), [S, sp.diff(S, s["Phi"])], "math")


def _phi_plus(g, gamma):
    return float(_closed_forms()[1](float(g), float(gamma)))


@dataclass(frozen=True)
class ModularTransitionResult(Result):
    """Noise levels bounding the mixed phase: GMFL-I for sigma2_gmfl2 < sigma^2 < sigma2_gmfl1."""
    sigma2_gmfl1: float
    sigma2_gmfl2: float
    a_at_gmfl2: float
    g_c: float
    phi_plus: float
    residual: float
    status: int
    message: str
    params: dict = field(default_factory=dict)


def modular_transition(P, width, sigma_a2, gamma):
    """GMFL-I onset, GMFL-II onset and the discrepancy amplitude there (Fig. 3 of the paper).

    Examples
    --------
    >>> from kernelphase.solvers.modular import modular_transition
    >>> r = modular_transition(401, 1000, 2e-6, 1e-4)
    >>> round(r.sigma2_gmfl1, 4), round(r.sigma2_gmfl2, 4), round(r.a_at_gmfl2, 3)
    (0.236, 0.176, -0.746)
    """
    P, width, sigma_a2, gamma = _check(P, width, sigma_a2, gamma)
    params = dict(P=P, width=width, sigma_a2=sigma_a2, gamma=gamma)
    gc, phic = degenerate_point(gamma)
    s1 = math.sqrt(2 * sigma_a2 * P * P / (width * gc))
    s2 = s1 - sigma_a2 * phic ** 2
    # certificate: the action and its slope vanish at (g_c, Phi_+) (over Phi_+ for scale)
    S, dS = _action_numeric()(phic, gc, gamma)
    res = abs(S) / phic + abs(dS)
    if not all(math.isfinite(t) for t in (s1, s2, gc, phic, res)):
        st, detail = 3, None
    elif res > 1e-8:
        st, detail = 4, f"degenerate-point certificate |S|/Phi + |S'| = {res:.3g}"
    elif s2 <= 0:
        st, detail = 1, (f"no GMFL-II boundary at sigma^2 > 0 (sigma_1^2 - sigma_a^2 Phi_+^2 = "
                         f"{s2:.4g}); GMFL-I extends to sigma^2 -> 0")
    else:
        st, detail = 0, None
    a2 = -s2 / s1 if st == 0 else float("nan")
    return ModularTransitionResult(s1, s2 if st == 0 else float("nan"), a2, gc, phic, res, st,
                                   status_message(st, detail), params)


@dataclass(frozen=True)
class ModularPhaseResult(Result):
    """Phase, discrepancy amplitude a (in [-1, 0]), droplet weight p and mode power at sigma^2."""
    phase: str
    a: float
    droplet_weight: float
    mode_power: float
    target_component: float
    u: float
    residual: float
    status: int
    message: str
    params: dict = field(default_factory=dict)


def modular_phase(P, width, sigma_a2, gamma, sigma2):
    r"""State of the modular model at noise :math:`\sigma^2`; ``mode_power`` is
    :math:`\langle|w_k|^2|v_k|^2\rangle=p\,\Phi_+^2`, ``target_component`` :math:`1-|a|`.

    Converged only when the invariants hold: :math:`a\in[-1,0]`, droplet weight
    :math:`p\in[0,1]`, and the closure :math:`|a|=\sigma^2/(\sigma^2+\sigma_a^2p\Phi_+^2)`
    satisfied (``residual``); otherwise the status says why and the phase is ``"unknown"``.

    Examples
    --------
    >>> from kernelphase.solvers.modular import modular_phase
    >>> [modular_phase(401, 1000, 2e-6, 1e-4, s2).phase for s2 in (0.3, 0.2, 0.1)]
    ['GFL', 'GMFL-I', 'GMFL-II']
    """
    from scipy.optimize import brentq
    sigma2 = check_range("sigma2", sigma2, 0, 1e12, lo_open=True)
    tr = modular_transition(P, width, sigma_a2, gamma)
    u = 2 * sigma_a2 * tr.params["P"] ** 2 / (width * sigma2 ** 2)
    params = dict(tr.params, sigma2=sigma2)
    nan = float("nan")
    if tr.status not in (0, 1):
        return ModularPhaseResult("unknown", nan, nan, nan, nan, u, nan, tr.status,
                                  status_message(tr.status, f"transition: {tr.message}"), params)
    s2_floor = tr.sigma2_gmfl2 if tr.status == 0 else 0.0
    detail, st = None, 0
    if sigma2 >= tr.sigma2_gmfl1:
        phase, a_abs, p, power = "GFL", 1.0, 0.0, 0.0
    elif sigma2 >= s2_floor:
        phase, a_abs = "GMFL-I", sigma2 / tr.sigma2_gmfl1
        p = (tr.sigma2_gmfl1 - sigma2) / (sigma_a2 * tr.phi_plus ** 2)
        power = p * tr.phi_plus ** 2
    else:
        phase, p = "GMFL-II", 1.0
        lo = math.sqrt(math.sqrt(gamma) / u) * (1 + 1e-12)
        f = lambda x: x - sigma2 / (sigma2 + sigma_a2 * _phi_plus(u * x * x, gamma) ** 2)
        if lo < 1.0 and f(lo) < 0 < f(1.0):
            a_abs = brentq(f, lo, 1.0, xtol=1e-15)
            power = _phi_plus(u * a_abs ** 2, gamma) ** 2
        else:
            a_abs, power, st = nan, nan, 1
            detail = "no root of the GMFL-II closure in the admissible range of |a|"
    res = abs(a_abs - sigma2 / (sigma2 + sigma_a2 * power)) if st == 0 else nan
    if st == 0:
        if not all(math.isfinite(t) for t in (a_abs, p, power, res)):
            st = 3
        elif not (0 <= a_abs <= 1 and -1e-12 <= p <= 1 + 1e-12 and power >= 0):
            st, detail = 4, f"a={-a_abs:.4g} or droplet weight p={p:.4g} outside [-1, 0] / [0, 1]"
        elif res > 1e-9:
            st, detail = 2, f"closure residual {res:.3g}"
    if st:
        phase = "unknown"
    return ModularPhaseResult(phase, -a_abs, p, power, 1 - a_abs, u, res, st,
                              status_message(st, detail), params)
