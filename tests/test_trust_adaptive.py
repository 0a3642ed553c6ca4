"""Invariants of the adaptive-kernel solvers over dense parameter grids.

Every converged point is checked with formulas typed here (the boxed Eq. 8 action of Rubin et
al., App. A.2), not with the solver's own compiled action: a converged GMFL point must be a
real droplet (Phi* away from the trivial root, degenerate with Phi = 0, a minimum, the global
one), fractions lie in [0, 1], and b and the learned cubic are continuous along the branch.
"""
import math

import numpy as np
import pytest

from kernelphase.solvers.cubic import cubic_phases, cubic_transition, u_from_sigma2
from kernelphase.solvers.modular import modular_phase, modular_transition
from kernelphase.solvers.phase_diagram import phase_diagram

REF = dict(n=3000, d=150, width=700, sigma_a2=0.0114286)


def _S(phi, u, b, c, sw2):
    D = 1 + 2 * (sw2 + phi * phi)
    return phi * phi / (2 * sw2) - 2 * u / math.pi * phi * phi / D * (b - 2 * c * phi * phi / D) ** 2


def _check_point(eps, sw2, u, r):
    """Independent invariant check of one converged cubic result; returns a failure or None."""
    if r.phase == "GFL":
        if not 0 < r.b <= 1 or r.droplet_fraction != 0:
            return "GFL b or fraction"
        grid = np.linspace(1e-3, 6, 6000)
        if _S(grid, u, r.b, eps, sw2).min() < -1e-9:
            return "GFL with a droplet below Phi = 0"
        return None
    q = r.phi_star
    if not (q >= 1e-3 and 0 <= r.droplet_fraction <= 1):
        return f"trivial root or fraction: Phi*={q}, fraction={r.droplet_fraction}"
    h = 1e-5
    S0 = _S(q, u, r.b, r.c, sw2)
    dS = (_S(q + h, u, r.b, r.c, sw2) - _S(q - h, u, r.b, r.c, sw2)) / (2 * h)
    d2S = (_S(q + h, u, r.b, r.c, sw2) - 2 * S0 + _S(q - h, u, r.b, r.c, sw2)) / h ** 2
    if r.phase == "GMFL-I" and abs(S0) > 1e-8:
        return f"droplet not degenerate with Phi = 0: S={S0}"
    if abs(dS) > 1e-6 or d2S <= 0:
        return f"Phi* not a minimum: S'={dS}, S''={d2S}"
    grid = np.linspace(1e-3, 6, 6000)
    if _S(grid, u, r.b, r.c, sw2).min() < S0 - 1e-7:
        return "droplet not the global minimum"
    if r.b ** 2 + 6 * r.c ** 2 > 1 + 6 * eps ** 2 + 1e-9:
        return "discrepancy larger than the target"
    if not 0 <= r.learned_cubic <= 1:
        return f"learned cubic {r.learned_cubic} outside [0, 1]"
    return None


def _assert_continuous(solve, us, keys):
    """Continuity by refinement: on a 4x finer grid (a superset of ``us``) the largest step of
    each quantity shrinks at least 2x. A jump or an isolated wrong root (a spike) keeps its
    height under refinement; a continuous branch does not. ``solve(us)`` returns results."""
    us = np.asarray(us, float)
    fine = np.r_[(us[:-1, None] + np.outer(np.diff(us), np.arange(4) / 4)).ravel(), us[-1]]
    coarse, refined = solve(us), solve(fine)
    assert all(r.converged for r in coarse + refined)
    for key in keys:
        big = np.abs(np.diff([getattr(r, key) for r in coarse])).max()
        small = np.abs(np.diff([getattr(r, key) for r in refined])).max()
        assert small <= 0.5 * big + 1e-9, (key, big, small)


def test_reference_point_sigma2_sweep_has_no_wrong_roots():
    """400 noise levels at the README's reference point (eps = -0.3, Table 1): the 17 spikes of
    Phi* ~ 1e-22 labelled GMFL-I, converged, are gone; b and the learned cubic are continuous."""
    eps, sw2 = -0.3, 0.5
    tr = cubic_transition(eps, sw2, **REF)
    s2 = np.linspace(0.05, 0.178, 400)
    us = np.array([u_from_sigma2(s, **REF) for s in s2])
    rs = cubic_phases(eps, us, tr.params["rho"], sw2, REF["d"], tr)
    fails = [(s, _check_point(eps, sw2, u, r)) for s, u, r in zip(s2, us, rs) if r.converged]
    fails = [f for f in fails if f[1]]
    assert not fails, fails[:5]
    assert all(r.converged == (r.status == 0) for r in rs)
    assert all(r.converged and r.phase == "GMFL-I" for r in rs)   # all below sigma^2_c = 0.1787
    _assert_continuous(lambda x: cubic_phases(eps, x, tr.params["rho"], sw2, REF["d"], tr),
                       np.sort(us), ("b", "learned_cubic", "phi_star"))


def test_eps_u_grid_invariants_and_continuity():
    """100 x 100 (eps, u) grid at rho = 8/150: no converged point breaks an invariant; along u at
    each eps the phase goes GFL -> GMFL-I once (no isolated cells) and b, the learned cubic and
    Phi* are continuous on the GMFL-I branch."""
    sw2, rho = 0.5, 8 / 150
    pd = phase_diagram("cubic", ("eps", -1.2, -0.1, 100), ("u", 5.0, 120.0, 100),
                       {"rho": rho, "sigma_w2": sw2, "d": 150}, workers=1, progress=False)
    assert pd.converged and (pd.status == 0).all()
    from kernelphase.solvers.cubic import CubicPhaseResult
    fails = []
    for i, eps in enumerate(pd.x):
        col = pd.phase[:, i]
        assert np.all(np.diff(col) >= 0) and set(col) <= {0, 1}, (eps, col)
        for j, u in enumerate(pd.y):
            vals = {k: pd.order[k][j, i] for k in pd.order}
            r = CubicPhaseResult(("GFL", "GMFL-I")[col[j]], u, vals["b"], vals["c"],
                                 vals["phi_star"], vals["droplet_fraction"],
                                 vals["learned_cubic"], False, 0.0, 0, "", {})
            msg = _check_point(eps, sw2, u, r)
            if msg:
                fails.append((eps, u, msg))
        on = col == 1
        if i % 9 == 0 and on.sum() > 3:
            tr = cubic_transition(eps, sw2, rho=rho)
            _assert_continuous(lambda x: cubic_phases(eps, x, rho, sw2, 150, tr), pd.y[on],
                               ("b", "learned_cubic", "phi_star"))
    assert not fails, fails[:5]


def test_unconverged_points_are_not_labelled():
    """A failed transition gives an unconverged, 'unknown' phase, never 'GFL, converged'."""
    from kernelphase.solvers.cubic import CubicTransitionResult
    tr = CubicTransitionResult(np.nan, np.nan, np.nan, np.nan, None, np.nan, 2, "", 0, {})
    r = cubic_phases(-0.3, [40.0], 8 / 150, 0.5, 150, tr)[0]
    assert not r.converged and r.status == 2 and r.phase == "unknown"


@pytest.mark.parametrize("P", [3, 7, 101, 401])
def test_modular_grid_contract_and_invariants(P):
    """converged == (status == 0) everywhere; converged points have sigma2_gmfl2 > 0,
    a in [-1, 0], droplet weight in [0, 1], and a continuous in sigma^2."""
    for width in (1, 100, 1000):
        for sa2 in (2e-6, 1e-3, 1.0):
            for gamma in (1e-6, 1e-4, 1e-2):
                tr = modular_transition(P, width, sa2, gamma)
                assert tr.converged == (tr.status == 0)
                if tr.converged:
                    assert tr.sigma2_gmfl2 > 0 and -1 <= tr.a_at_gmfl2 <= 0
                else:
                    assert tr.status == 1 and math.isnan(tr.sigma2_gmfl2)
                s2 = np.geomspace(tr.sigma2_gmfl1 * 1e-3, tr.sigma2_gmfl1 * 3, 60)
                rs = [modular_phase(P, width, sa2, gamma, s) for s in s2]
                for r in rs:
                    assert r.converged == (r.status == 0)
                    if r.converged:
                        assert -1 <= r.a <= 0 and 0 <= r.droplet_weight <= 1
                    else:
                        assert r.phase == "unknown"
                a = np.array([r.a for r in rs if r.converged])
                assert np.all(np.diff(a) <= 1e-12)   # |a| grows with the noise


def test_large_prime_is_fast():
    import time
    t = time.perf_counter()
    with pytest.raises(ValueError, match="not prime"):
        modular_transition(999983 * 1000003, 10, 1e-3, 1e-4)
    modular_transition(999999999989, 10, 1e-3, 1e-4)
    assert time.perf_counter() - t < 5
