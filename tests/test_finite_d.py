"""Finite-d single-neuron law of the cubic teacher (solvers/finite_d.py), checked against
independent computations: a Monte Carlo over w ~ prior reweighted by the tilt (numpy, here),
an mpmath double integral, the EK solver (q fixed, d -> infinity) and a scipy joint saddle in
(Phi, q) (exact law, d -> infinity) written here."""
import math

import numpy as np
import pytest

from kernelphase.solvers import finite_d as fd

RHO = 8 / 150
SW2 = 0.5
SQPI = math.sqrt(math.pi)


def _g(phi, q, b, c):
    """Overlap g = b Phi m1 + c Phi^3 m3 with the erf moments (notes Sec. 4.2), typed here."""
    V = 1 + 2 * (phi * phi + q)
    return b * phi * 2 / SQPI / np.sqrt(V) - c * phi ** 3 * 4 / SQPI / V ** 1.5


def _mc(u, b, c, d, width=None, M=400_000, seed=3):
    """Self-normalised importance sampling: w ~ N(0, sw2/d I_d), weight
    exp(d u g^2 / 2L) / sqrt(L)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((M, d)) * math.sqrt(SW2 / d)
    phi, q = w[:, 0], (w[:, 1:] ** 2).sum(axis=1)
    V = phi * phi + q
    L = 1.0
    if width is not None:
        L = 1 + math.sqrt(u * RHO) * d / width * 2 / math.pi * np.arcsin(2 * V / (1 + 2 * V))
    lw = 0.5 * d * u * _g(phi, q, b, c) ** 2 / L - 0.5 * np.log(L)
    wt = np.exp(lw - lw.max())
    wt /= wt.sum()
    m1 = 2 / SQPI / np.sqrt(1 + 2 * V)
    m3 = -4 / SQPI / (1 + 2 * V) ** 1.5
    out = {}
    for name, f in (("phi2", phi * phi), ("q", q), ("K11", phi * phi * m1 * m1),
                    ("K13", phi ** 4 * m1 * m3 / math.sqrt(6)),
                    ("K33", phi ** 6 * m3 * m3 / 6)):
        mean = float(wt @ f)
        se = math.sqrt(float((wt * wt) @ (f - mean) ** 2))   # delta-method standard error
        out[name] = (mean, se)
    return out


@pytest.mark.parametrize("width", [None, 50])
def test_small_d_averages_match_reweighted_monte_carlo(width):
    """d = 10: <Phi^2>, <q> and the kernel entries of the quadrature within 4 standard errors of MC;
    the law with q frozen at sigma_w^2 (the EK assumption) is rejected by the same check."""
    u, b, c, d = 5.0, 0.5, -0.5, 10
    mc = _mc(u, b, c, d, width)
    a = fd.finite_d_averages(u, b, c, d, SW2, "chi2", width, RHO)
    got = {"phi2": a["phi2"], "q": a["q"], "K11": a["K"][0, 0], "K13": a["K"][0, 1],
           "K33": a["K"][1, 1]}
    for k, (mean, se) in mc.items():
        assert abs(got[k] - mean) <= 4 * se, (k, got[k], mean, se)
    wrong = fd.finite_d_averages(u, b, c, d, SW2, "fixed", width, RHO)
    assert abs(wrong["q"] - mc["q"][0]) > 20 * mc["q"][1]
    assert abs(wrong["phi2"] - mc["phi2"][0]) > 4 * mc["phi2"][1]


def test_self_consistent_state_solves_gpr_with_monte_carlo_kernel():
    """d = 10: the (b, c) of finite_d_state satisfy (I + v d K) (b, sqrt6 c) = (1, sqrt6 eps)
    with K from the reweighted Monte Carlo, within 4 standard errors; the EK GFL (b, eps)
    does not."""
    from kernelphase.solvers.cubic import gfl_b
    u, d, eps = 4.0, 10, -0.3
    r = fd.finite_d_state(eps, u, RHO, d, SW2)
    assert r.converged
    vd = math.sqrt(u * RHO) * d
    y = np.array([1.0, math.sqrt(6) * eps])

    def resid(b, c, mc):
        K = np.array([[mc["K11"][0], mc["K13"][0]], [mc["K13"][0], mc["K33"][0]]])
        se = np.array([[mc["K11"][1], mc["K13"][1]], [mc["K13"][1], mc["K33"][1]]])
        x = np.array([b, math.sqrt(6) * c])
        return np.abs(x + vd * K @ x - y), vd * se @ np.abs(x)
    res, tol = resid(r.b, r.c, _mc(u, r.b, r.c, d))
    assert np.all(res <= 4 * tol + 1e-12), (res, tol)
    b0 = gfl_b(u, RHO, SW2)
    res0, tol0 = resid(b0, eps, _mc(u, b0, eps, d))
    assert np.any(res0 > 4 * tol0)


def test_quadrature_matches_mpmath_double_integral():
    """<Phi^2> and <q> at one point (d = 20) against mpmath.quad over (Phi, q) with the
    scaled chi-square density, to 1e-7 relative."""
    mp = pytest.importorskip("mpmath")
    u, b, c, d = 25.0, 0.45, -0.4, 20

    def dens(phi, q):
        V = 1 + 2 * (phi * phi + q)
        g = b * phi * 2 / mp.sqrt(mp.pi * V) - c * phi ** 3 * 4 / (mp.sqrt(mp.pi) * V ** 1.5)
        return mp.power(q, mp.mpf(d - 3) / 2) * mp.exp(
            -d * (phi * phi + q) / (2 * SW2) + d * u * g * g / 2)
    P, Q = [0, 0.6, 1.2, 2.5], [0, 0.4, 1.2, 4]
    quad = lambda f: mp.quad(f, P, Q, method="gauss-legendre")
    with mp.workdps(15):
        Z = quad(dens)
        p2 = quad(lambda p, q: p * p * dens(p, q)) / Z
        qm = quad(lambda p, q: q * dens(p, q)) / Z
    a = fd.finite_d_averages(u, b, c, d, SW2)
    assert abs(a["phi2"] - float(p2)) <= 1e-7 * float(p2)
    assert abs(a["q"] - float(qm)) <= 1e-7 * float(qm)


def test_fixed_q_tends_to_the_ek_solver():
    """perp='fixed' (|w_perp|^2 = sigma_w^2, only Phi fluctuations): u_c(d) -> u_c of
    solvers.cubic (30.669) as O(1/d): d = 1e5 within 0.05, and closer than d = 1e4."""
    from kernelphase.solvers.cubic import cubic_transition
    ek = cubic_transition(-0.3, SW2, rho=RHO).u_c
    r5 = fd.finite_d_transition(-0.3, RHO, 100_000, SW2, "fixed", u_lo=30, u_hi=31.5, n_scan=4)
    r4 = fd.finite_d_transition(-0.3, RHO, 10_000, SW2, "fixed", u_lo=30, u_hi=31.5, n_scan=4)
    assert r5.converged and r4.converged
    assert abs(r5.u_c - ek) <= 0.05
    assert abs(r5.u_c - ek) < abs(r4.u_c - ek)


def _joint_saddle_uc(eps=-0.3):
    """d -> infinity of the exact law: per-d action min_q[(Phi^2+q)/2sw2 - ln(q)/2 - u g^2/2]
    (minus its value at Phi = 0, u = 0), GFL b; u where the droplet minimum reaches 0."""
    from scipy.optimize import brentq, minimize_scalar
    A = 4 / (math.pi * (1 + 2 * SW2))

    def gfl_b(u):
        v = math.sqrt(u * RHO)
        return brentq(lambda b: b * (1 + v * A / (1 / SW2 - u * b * b * A)) - 1, 1e-9,
                      min(1, math.sqrt(1 / (SW2 * u * A))) * (1 - 1e-12))

    def S(phi, u, b):
        f = lambda q: ((phi * phi + q) / (2 * SW2) - 0.5 * math.log(q)
                       - u / 2 * _g(phi, q, b, eps) ** 2)
        r = minimize_scalar(f, bounds=(1e-6, 5 * SW2), method="bounded",
                            options={"xatol": 1e-12})
        return r.fun - (0.5 - 0.5 * math.log(SW2)), r.x

    def dS(u):
        b = gfl_b(u)
        xs = np.linspace(0.3, 2, 86)
        i = min(max(int(np.argmin([S(x, u, b)[0] for x in xs])), 1), len(xs) - 2)
        return minimize_scalar(lambda x: S(x, u, b)[0], bounds=(xs[i - 1], xs[i + 1]),
                               method="bounded", options={"xatol": 1e-10}).fun
    return brentq(dS, 20, 24, xtol=1e-8)


@pytest.mark.slow
def test_exact_law_tends_to_the_joint_saddle():
    """perp='chi2': as d grows u_c(d) approaches the joint (Phi, q) saddle (about 20.78),
    not the EK value with q fixed (30.67)."""
    ref = _joint_saddle_uc()
    r = fd.finite_d_transition(-0.3, RHO, 10_000, SW2, "chi2", u_lo=20, u_hi=23, n_scan=4)
    assert r.converged
    assert abs(r.u_c - ref) <= 0.3
    assert r.q_droplet < 0.4


@pytest.mark.slow
def test_gfl_branch_tends_to_the_ek_gfl_discrepancy():
    """branch='gfl' at d = 1e5: b within 1e-3 of solvers.cubic.gfl_b, c within 1e-3 of eps."""
    from kernelphase.solvers.cubic import gfl_b
    r = fd.finite_d_state(-0.3, 20.0, RHO, 100_000, SW2, "chi2", branch="gfl")
    assert r.converged
    assert abs(r.b - gfl_b(20.0, RHO, SW2)) <= 1e-3 and abs(r.c + 0.3) <= 1e-3


def test_bad_input_names_parameter():
    with pytest.raises(ValueError, match="d=2"):
        fd.finite_d_averages(1.0, 0.5, -0.3, d=2)
    with pytest.raises(ValueError, match="perp='gauss'"):
        fd.finite_d_averages(1.0, 0.5, -0.3, d=10, perp="gauss")
    with pytest.raises(ValueError, match="basin="):
        fd.finite_d_averages(1.0, 0.5, -0.3, d=10, basin="left")
    with pytest.raises(ValueError, match="rho="):
        fd.finite_d_averages(1.0, 0.5, -0.3, d=10, width=10)
    with pytest.raises(ValueError, match="u_hi="):
        fd.finite_d_transition(-0.3, RHO, 150, u_lo=30, u_hi=20)


def test_no_sign_change_is_a_status():
    r = fd.finite_d_transition(-0.3, RHO, 150, u_lo=5, u_hi=10, n_scan=2)
    assert r.status == 1 and not r.converged and math.isnan(r.u_c)


def test_doctests():
    import doctest
    res = doctest.testmod(fd, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted >= 3


def test_cli_finite_d(run_cli):
    """``kernelphase theory finite-d``: the exact-law u_c at d = 150 (independent of the test
    above only through the CLI path) and one-line errors."""
    import json
    st, out, err = run_cli("theory", "finite-d", "--u-lo", 20, "--u-hi", 29, "--json")
    assert st == 0, err
    d = json.loads(out)
    assert d["converged"] and abs(d["u_c"] - 27.24) < 0.05 and d["q_droplet"] < 0.4
    for bad, name in ((("--d", 1), "d=1"), (("--rho", -1), "rho=-1"), (("--eps", "nan"), "eps")):
        st, out, err = run_cli("theory", "finite-d", *bad)
        assert st == 2 and name in err and len(err.strip().splitlines()) == 1


def _quad_log_marginal(phis, u, b, c, d, sw2):
    """ln p(Phi) = ln int_0^inf q^((d-3)/2) exp(-d(Phi^2+q)/2sw2 + d u g^2/2) dq by scipy.quad
    around the maximum of the integrand over q (found by minimize_scalar)."""
    from scipy.integrate import quad
    from scipy.optimize import minimize_scalar
    out = []
    for phi in phis:
        f = lambda q: (0.5 * (d - 3) * math.log(q) - d * (phi * phi + q) / (2 * sw2)
                       + 0.5 * d * u * _g(phi, q, b, c) ** 2)
        qm = minimize_scalar(lambda q: -f(q), bounds=(1e-6, 4 * sw2), method="bounded",
                             options={"xatol": 1e-10}).x
        fm = f(qm)
        val = quad(lambda q: math.exp(f(q) - fm), 0, 10 * sw2, points=[qm], epsabs=0,
                   epsrel=1e-11, limit=200)[0]
        out.append(fm + math.log(val))
    return np.array(out)


def _second_peaks(lp):
    """Indices of the interior local maxima of a sampled log-density."""
    dl = np.diff(lp)
    return np.nonzero((dl[:-1] > 0) & (dl[1:] <= 0))[0] + 1


def test_droplet_spinodal_matches_scipy_scan_of_the_marginal():
    """hyst-wide at scale 1/4 (d = 75): 0.3 % below u_s the Phi-marginal on the GFL branch,
    integrated over q by scipy.quad on a Phi grid of step 0.002, is monotone on [0.3, 1.3];
    0.3 % above it has a local maximum near phi_droplet. The EK spinodal (1.532, q frozen)
    lies far above."""
    eps, rho, d, sw2 = -3.0, 1.0, 75, 0.25
    r = fd.finite_d_spinodal(eps, rho, d, sw2, u_lo=1.0, u_hi=1.6, n_scan=7, xtol=1e-4)
    assert r.converged and r.residual <= 1e-4
    phis = np.arange(0.3, 1.3, 0.002)
    for f, want in ((0.997, False), (1.003, True)):
        u = f * r.u_s
        s = fd.finite_d_state(eps, u, rho, d, sw2, branch="gfl", guess=(r.b_at_us, r.c_at_us))
        assert s.converged
        lp = _quad_log_marginal(phis, u, s.b, s.c, d, sw2)
        peaks = _second_peaks(lp)
        assert (peaks.size > 0) is want, (f, u)
        if want:
            assert peaks.size == 1 and abs(phis[peaks[0]] - r.phi_droplet) < 0.05
    assert r.u_s < 1.5


def test_spinodal_out_of_range_is_a_status():
    r = fd.finite_d_spinodal(-3.0, 1.0, 75, 0.25, u_lo=1.5, u_hi=1.6, n_scan=2)
    assert r.status == 1 and "already at u_lo" in r.message and math.isnan(r.u_s)
    r = fd.finite_d_spinodal(-3.0, 1.0, 75, 0.25, u_lo=0.5, u_hi=0.6, n_scan=2)
    assert r.status == 1 and "no droplet basin" in r.message
    with pytest.raises(ValueError, match="xtol="):
        fd.finite_d_spinodal(-3.0, 1.0, 75, 0.25, xtol=0)
