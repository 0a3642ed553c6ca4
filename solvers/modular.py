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

from kernelphase._checks import check_int, check_positive
from kernelphase.results import Result, status_message

__all__ = ["modular_transition", "modular_phase", "ModularTransitionResult", "ModularPhaseResult",
           "degenerate_point"]



def _check(P, width, sigma_a2, gamma):
    P = check_int("P", P, 2)
    if any(P % q == 0 for q in range(2, int(math.isqrt(P)) + 1)):
        raise ValueError(f"P={P} is not prime; the modular-addition theory needs a prime modulus")
    return P, check_int("width", width, 1), check_positive("sigma_a2", sigma_a2), \
        check_positive("gamma", gamma)


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


def degenerate_point(gamma):
    r"""(g_c, Phi_+(g_c)) where the nontrivial per-mode minimum is degenerate with Phi = 0."""
    from kernelphase.actions import SYMBOLS
    gc, phic, _ = _symbolic()
    sub = {SYMBOLS["gamma"]: gamma}
    return float(gc.subs(sub)), float(phic.subs(sub))


def _phi_plus(g, gamma):
    from kernelphase.actions import SYMBOLS
    return float(_symbolic()[2].subs({SYMBOLS["g"]: g, SYMBOLS["gamma"]: gamma}))


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
    """GMFL-I onset, GMFL-II onset and the discrepancy amplitude there (Fig. 3 of the paper)."""
    P, width, sigma_a2, gamma = _check(P, width, sigma_a2, gamma)
    gc, phic = degenerate_point(gamma)
    s1 = math.sqrt(2 * sigma_a2 * P * P / (width * gc))
    s2 = s1 - sigma_a2 * phic ** 2
    # certificate: the action and its slope vanish at (g_c, Phi_+)
    res = abs(phic - gc * phic ** 2 + gamma / 3 * phic ** 3) + abs(1 - 2 * gc * phic + gamma * phic ** 2)
    st = 0 if s2 > 0 else 4
    return ModularTransitionResult(s1, s2, -s2 / s1, gc, phic, res, st, status_message(st),
                                   dict(P=P, width=width, sigma_a2=sigma_a2, gamma=gamma))


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
    :math:`\langle|w_k|^2|v_k|^2\rangle=p\,\Phi_+^2`, ``target_component`` :math:`1-|a|`."""
    from scipy.optimize import brentq
    sigma2 = check_positive("sigma2", sigma2)
    tr = modular_transition(P, width, sigma_a2, gamma)
    u = 2 * sigma_a2 * tr.params["P"] ** 2 / (width * sigma2 ** 2)
    params = dict(tr.params, sigma2=sigma2)
    if sigma2 >= tr.sigma2_gmfl1:
        phase, a_abs, p, res = "GFL", 1.0, 0.0, 0.0
        power = 0.0
    elif sigma2 >= tr.sigma2_gmfl2:
        phase, a_abs = "GMFL-I", sigma2 / tr.sigma2_gmfl1
        p = (tr.sigma2_gmfl1 - sigma2) / (sigma_a2 * tr.phi_plus ** 2)
        power, res = p * tr.phi_plus ** 2, 0.0
    else:
        lo = math.sqrt(math.sqrt(gamma) / u) * (1 + 1e-12)
        f = lambda x: x - sigma2 / (sigma2 + sigma_a2 * _phi_plus(u * x * x, gamma) ** 2)
        a_abs = brentq(f, lo, 1.0, xtol=1e-15) if f(lo) < 0 < f(1.0) else float("nan")
        phase, p = "GMFL-II", 1.0
        power = _phi_plus(u * a_abs ** 2, gamma) ** 2 if a_abs == a_abs else float("nan")
        res = abs(f(a_abs)) if a_abs == a_abs else float("inf")
    st = 0 if res < 1e-9 else 2
    return ModularPhaseResult(phase, -a_abs, p, power, 1 - a_abs, u, res, st, status_message(st),
                              params)
