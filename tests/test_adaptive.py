"""Adaptive-kernel theory (Rubin, Seroussi & Ringel 2023): actions, transitions, CLI (issue 3)."""
import dataclasses
import json
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy.optimize import brentq, minimize_scalar

from kernelphase.actions import SYMBOLS, cubic_action, cubic_kernel_entries, modular_action
from kernelphase.solvers.cubic import (CubicPhaseResult, CubicTransitionResult, action_minima,
                                       cubic_phase_scaled, cubic_transition, gfl_b)
from kernelphase.solvers.modular import (ModularPhaseResult, ModularTransitionResult,
                                         modular_phase, modular_transition)

S = SYMBOLS


def _overlap_quad(k, s, phi):
    """E[He_k(z) erf(h)], Var h = s, Cov = phi: E over z of He_k(z) erf(phi z / sqrt(1+2(s-phi^2)))."""
    mpmath.mp.dps = 30
    r = mpmath.sqrt(1 + 2 * (s - phi ** 2))
    he = {1: lambda z: z, 3: lambda z: z ** 3 - 3 * z}[k]
    f = lambda z: he(z) * mpmath.erf(phi * z / r) * mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)
    return mpmath.quad(f, [-mpmath.inf, 0, mpmath.inf])


@pytest.mark.parametrize("phi, sw2, u, b, c", [(0.3, 0.5, 30.0, 0.3, -0.3), (1.1, 0.8, 5.0, 0.7, 0.4)])
def test_cubic_action_vs_quadrature(phi, sw2, u, b, c):
    """S = Phi^2/(2 sw2) - (u/2) (E[(b He1 + c He3) erf])^2 with |w|^2 = Phi^2 + sw2 (EK, Eq. 7)."""
    s = phi ** 2 + sw2
    inter = b * _overlap_quad(1, s, phi) + c * _overlap_quad(3, s, phi)
    ref = phi ** 2 / (2 * sw2) - u / 2 * inter ** 2
    val = cubic_action().subs({S["Phi"]: phi, S["sigma_w2"]: sw2, S["u"]: u, S["b"]: b, S["c"]: c})
    assert abs(float(val) - float(ref)) <= 1e-12 * (1 + abs(float(ref)))


def test_cubic_action_matches_paper_eq8_and_kernel_entries():
    D = 1 + 2 * (S["sigma_w2"] + S["Phi"] ** 2)
    boxed = (S["Phi"] ** 2 / (2 * S["sigma_w2"]) - 2 * S["u"] / sp.pi * S["Phi"] ** 2 / D
             * (S["b"] - 2 * S["c"] * S["Phi"] ** 2 / D) ** 2)
    assert sp.simplify(cubic_action() - boxed) == 0
    q11, q12, q22 = cubic_kernel_entries()
    assert sp.simplify(q11 - 4 * S["Phi"] ** 2 / (sp.pi * D)) == 0  # corrected A.3 (1,1) entry
    assert sp.simplify(q12 + 8 * S["Phi"] ** 4 / (sp.sqrt(6) * sp.pi * D ** 2)) == 0
    assert sp.simplify(q22 - 8 * S["Phi"] ** 6 / (3 * sp.pi * D ** 3)) == 0


def test_modular_action_stationarity_reproduces_eq40():
    g, gam, Phi = S["g"], S["gamma"], S["Phi"]
    roots = sp.solve(sp.diff(modular_action(), Phi), Phi)
    expect = {(g + sp.sqrt(g ** 2 - gam)) / gam, (g - sp.sqrt(g ** 2 - gam)) / gam}
    assert {sp.simplify(r) for r in roots} == {sp.simplify(e) for e in expect}


# ---- slow reference, written separately with plain numpy/scipy (boxed Eq. 8 typed here on purpose)
def _S_ref(phi, u, b, c, sw2):
    D = 1 + 2 * (sw2 + phi * phi)
    return phi * phi / (2 * sw2) - 2 * u / math.pi * phi * phi / D * (b - 2 * c * phi * phi / D) ** 2


def _b_ref(u, rho, sw2):
    v = math.sqrt(u * rho)
    kappa = lambda b: 1 / sw2 - 4 * u * b * b / (math.pi * (1 + 2 * sw2))
    bmax = min(1.0, math.sqrt(math.pi * (1 + 2 * sw2) / (4 * sw2 * u)))
    return brentq(lambda b: b * (1 + 4 * v / (math.pi * (1 + 2 * sw2) * kappa(b))) - 1,
                  1e-14, bmax * (1 - 1e-14), xtol=1e-15, rtol=1e-15)


def _star_ref(u, rho, eps, sw2):
    """Lowest interior local minimum of the action (grid + scipy's bounded Brent), or None."""
    b = _b_ref(u, rho, sw2)
    grid = np.linspace(0.005, 4, 4000)
    vals = _S_ref(grid, u, b, eps, sw2)
    idx = [i for i in range(1, len(grid) - 1) if vals[i] < vals[i - 1] and vals[i] <= vals[i + 1]]
    if not idx:
        return None
    i = min(idx, key=lambda j: vals[j])
    r = minimize_scalar(lambda p: _S_ref(p, u, b, eps, sw2), bounds=(grid[i - 1], grid[i + 1]),
                        method="bounded", options={"xatol": 1e-14})
    return r.x, r.fun


def _transition_ref(rho, eps, sw2):
    """u where the interior minimum becomes degenerate with Phi = 0 (scan, then brentq)."""
    F = lambda u: (lambda m: 1.0 if m is None else m[1])(_star_ref(u, rho, eps, sw2))
    lo = 1.0
    while F(lo * 1.05) > 0:
        lo *= 1.05
    return brentq(F, lo, lo * 1.05, xtol=1e-13, rtol=1e-13)


@pytest.mark.parametrize("eps, sw2, rho", [(-0.3, 0.5, 8 / 150), (-1.2, 0.5, 0.011 * 700 / 150),
                                           (-0.5, 1.0, 0.1), (-0.3, 0.3, 0.02)])
def test_transition_vs_scipy_reference(eps, sw2, rho):
    tr = cubic_transition(eps, sw2, rho=rho)
    assert tr.converged and tr.residual < 1e-10
    assert tr.u_spinodal < tr.u_c
    assert abs(tr.u_c - _transition_ref(rho, eps, sw2)) <= 1e-6 * tr.u_c
    assert abs(gfl_b(tr.u_c, rho, sw2) - _b_ref(tr.u_c, rho, sw2)) <= 1e-9
    # certificate at u_c: degenerate minima, S(Phi*) = S'(Phi*) = 0, positive curvature
    mins = action_minima(tr.u_c, tr.b_at_uc, eps, sw2)
    assert mins.shape[0] == 2 and abs(mins[1, 1]) < 1e-10 and mins[1, 2] > 0


def test_paper_reference_point():
    """Rubin et al. Sec. 3.1 / App. A: u_c ~ 30.2 and sigma^2_c ~ 0.18 at eps=-0.3 (3 % tolerance)."""
    tr = cubic_transition(-0.3, 0.5, n=3000, d=150, width=700, sigma_a2=8 / 700)
    assert abs(tr.u_c / 30.2 - 1) < 0.03
    assert abs(tr.sigma2_c / 0.18 - 1) < 0.03
    # u and sigma^2 conversion is exact
    assert tr.u_c == pytest.approx(3000 ** 2 * (8 / 700) / (tr.sigma2_c ** 2 * 150 * 700), rel=1e-12)


def test_hysteresis_and_branches():
    rho, eps, sw2 = 8 / 150, -0.3, 0.5
    tr = cubic_transition(eps, sw2, rho=rho)
    below = cubic_phase_scaled(eps, 0.9 * tr.u_spinodal, rho, sw2, transition=tr)
    meta = cubic_phase_scaled(eps, 0.5 * (tr.u_spinodal + tr.u_c), rho, sw2, transition=tr)
    above = [cubic_phase_scaled(eps, f * tr.u_c, rho, sw2, transition=tr) for f in (1.1, 1.5, 3)]
    assert below.phase == "GFL" and not below.metastable
    assert meta.phase == "GFL" and meta.metastable and meta.phi_star > 0.5
    assert all(r.phase == "GMFL-I" and r.converged and r.residual < 1e-9 for r in above)
    fr = [r.droplet_fraction for r in above]
    assert fr[0] < fr[1] < fr[2] and all(r.learned_cubic > 0 for r in above)


def test_no_transition_and_bad_input():
    r = cubic_transition(0.0, 0.5, rho=0.05)
    assert not r.converged and r.status == 1 and "no transition" in r.message
    with pytest.raises(ValueError, match="sigma_w2=-1"):
        cubic_transition(-0.3, -1, rho=0.05)
    with pytest.raises(ValueError, match="either rho or all"):
        cubic_transition(-0.3, 0.5, rho=0.05, n=10)
    with pytest.raises(ValueError, match="P=400 is not prime"):
        modular_transition(400, 1000, 2e-6, 1e-4)


def test_modular_against_paper_fig3():
    """Rubin et al. Fig. 3 (P=401, N=1000, sigma_a^2=0.002/N, gamma=1e-4): GMFL-I from ~0.227
    (5 %), GMFL-II from ~0.175 (5 %), a from -1 to ~-0.7 (10 %)."""
    tr = modular_transition(401, 1000, 2e-6, 1e-4)
    assert abs(tr.sigma2_gmfl1 / 0.227 - 1) < 0.05
    assert abs(tr.sigma2_gmfl2 / 0.175 - 1) < 0.05
    assert abs(tr.a_at_gmfl2 / -0.7 - 1) < 0.10
    assert tr.g_c == pytest.approx(2 * math.sqrt(1e-4 / 3), rel=1e-12)
    # continuity of a across the two boundaries and the closure a = -sigma^2/(lambda + sigma^2)
    for s2 in (tr.sigma2_gmfl1, tr.sigma2_gmfl2):
        lo = modular_phase(401, 1000, 2e-6, 1e-4, s2 * (1 - 1e-9))
        hi = modular_phase(401, 1000, 2e-6, 1e-4, s2 * (1 + 1e-9))
        assert abs(lo.a - hi.a) < 1e-6
    r = modular_phase(401, 1000, 2e-6, 1e-4, 0.12)
    assert r.phase == "GMFL-II" and r.converged
    assert r.a == pytest.approx(-0.12 / (2e-6 * r.mode_power + 0.12), rel=1e-9)


def test_result_contract():
    for cls in (CubicTransitionResult, CubicPhaseResult, ModularTransitionResult, ModularPhaseResult):
        names = {f.name for f in dataclasses.fields(cls)}
        assert {"residual", "status", "message"} <= names and "converged" not in names
    assert isinstance(cubic_transition(-0.3, rho=0.05).to_dict()["message"], str)


def test_cli_transition_phase_diagram(run_cli, tmp_path):
    st, out, err = run_cli("transition", "cubic", "--eps", -0.3, "--n", 3000, "--d", 150, "--width",
                           700, "--sigma-a2", 8 / 700, "--json", "--plot", tmp_path / "t.png")
    r = json.loads(out)
    assert st == 0 and {"u_spinodal", "u_c", "phi_star", "b_at_uc", "sigma2_c"} <= set(r)
    assert (tmp_path / "t.png").stat().st_size > 0
    st, out, err = run_cli("transition", "modular", "--P", 401, "--width", 1000, "--sigma-a2", 2e-6,
                           "--gamma", 1e-4, "--json")
    assert {"sigma2_gmfl1", "sigma2_gmfl2", "a_at_gmfl2"} <= set(json.loads(out))
    st, out, err = run_cli("phase", "modular", "--sigma2", 0.2, "--json")
    assert json.loads(out)["phase"] == "GMFL-I"
    st, out, err = run_cli("phase-diagram", "cubic", "--rho", 0.0533, "--x", "eps=-0.6:-0.2:4",
                           "--y", "u=10:60:4", "--out", tmp_path / "pd", "--workers", 1)
    assert st == 0
    meta = json.loads((tmp_path / "pd" / "phase_diagram.json").read_text())
    assert meta["provenance"]["kernelphase_version"] and len(meta["phase"]) == 4
    assert (tmp_path / "pd" / "phase_diagram.png").exists()
    for argv, match in [(("transition", "modular", "--P", 9), "P=9 is not prime"),
                        (("phase", "modular", "--sigma2", -1), "sigma2=-1"),
                        (("phase-diagram", "cubic", "--rho", 0.05, "--x", "eps=1:0:3", "--y",
                          "u=1:2:3", "--out", tmp_path / "bad"), "empty or reversed"),
                        (("transition", "cubic", "--eps", -0.3, "--sigma-w2", 0), "sigma_w2=0")]:
        st, out, err = run_cli(*argv)
        assert st == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_gmfl1_numba_vs_scipy_fsolve_reference():
    """GMFL-I (Maxwell) system solved by scipy's fsolve on formulas typed here (App. A.3 with the
    corrected (1,1) entry) agrees with the numba continuation to 1e-6."""
    from scipy.optimize import fsolve
    eps, sw2, rho = -0.3, 0.5, 8 / 150
    tr = cubic_transition(eps, sw2, rho=rho)
    u = 1.5 * tr.u_c
    got = cubic_phase_scaled(eps, u, rho, sw2, d=150, transition=tr)
    v = math.sqrt(u * rho)

    def F(z):
        b, c, phi, q = z
        D = 1 + 2 * (sw2 + q * q)
        Q = np.array([[4 * q ** 2 / (math.pi * D), -8 * q ** 4 / (math.sqrt(6) * math.pi * D ** 2)],
                      [-8 * q ** 4 / (math.sqrt(6) * math.pi * D ** 2), 8 * q ** 6 / (3 * math.pi * D ** 3)]])
        kappa = 1 / sw2 - 4 * u * b * b / (math.pi * (1 + 2 * sw2))
        Q0 = np.array([[4 / (math.pi * (1 + 2 * sw2) * kappa), 0], [0, 0]])
        r = np.linalg.solve(np.eye(2) + v * (Q0 + phi * Q), [1, math.sqrt(6) * eps])
        S = _S_ref(q, u, b, c, sw2)
        dS = (_S_ref(q + 1e-7, u, b, c, sw2) - _S_ref(q - 1e-7, u, b, c, sw2)) / 2e-7
        return [r[0] - b, r[1] - math.sqrt(6) * c, 100 * S, 100 * dS]

    ref = fsolve(F, [tr.b_at_uc, eps, 1.0, tr.phi_star], xtol=1e-13)
    assert np.allclose([got.b, got.c, got.droplet_fraction * 150, got.phi_star], ref, rtol=1e-6)
