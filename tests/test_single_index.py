"""Single-index engine: moments, teachers, symbolic action, transition (theory Sec. 12).

References are independent of the engine: mpmath quadrature for m_k, Monte Carlo for Stein's
identity, the separately written erf solver ``solvers.cubic``, and a plain scipy
implementation of the transition written below.
"""
import json
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar

from kernelphase.activations import Z
from kernelphase.moments import (activation_expr, derivative_exprs, moment_exprs, moment_method,
                                 moments, moments_function)
from kernelphase.results import STATUS
from kernelphase.solvers.cubic import cubic_transition
from kernelphase.solvers.single_index import (SingleIndexTransitionResult, gfl_discrepancy,
                                              single_index_transition)
from kernelphase.teachers import MAX_DEGREE, Teacher, as_teacher

RHO = 8 / 150


# ---------------------------------------------------------------- moments vs mpmath

def _mp_moment(expr, k, v):
    """E[sigma^(k)(sqrt(v) t)], t ~ N(0,1), by mpmath.quad (k-th derivative by SymPy)."""
    d = sp.lambdify(Z, sp.diff(expr, Z, k) if k else expr, "mpmath")
    f = lambda t: d(mpmath.sqrt(v) * t) * mpmath.npdf(t)  # noqa: E731
    return float(mpmath.quad(f, [-mpmath.inf, -4, 0, 4, mpmath.inf]))


@pytest.mark.parametrize("name,kmax", [("erf", 5), ("tanh", 5), ("sin", 5), ("sigmoid", 4),
                                       ("z**3 - 2*z**2 + z/2", 4), ("z + erf(2*z)", 4),
                                       ("cos", 4)])
@pytest.mark.parametrize("v", [0.05, 0.5, 1.3, 4.0, 17.0])
def test_moments_against_mpmath(name, kmax, v):
    expr = activation_expr(name)
    got = moments(name, v, kmax)
    for k in range(kmax + 1):
        ref = _mp_moment(expr, k, v)
        assert abs(got[k] - ref) <= 1e-12 * (1 + abs(ref)), (name, k, v, got[k], ref)


@pytest.mark.parametrize("v", [0.1, 0.7, 3.0, 11.0])
def test_relu_moments(v):
    got = moments("relu", v, 6)
    # k <= 1 by quadrature of relu and its derivative (Heaviside)
    ref0 = float(mpmath.quad(lambda t: max(t, 0) * math.sqrt(v) * mpmath.npdf(t), [0, mpmath.inf]))
    ref1 = float(mpmath.quad(lambda t: mpmath.npdf(t), [0, mpmath.inf]))
    assert abs(got[0] - ref0) <= 1e-12 and abs(got[1] - ref1) <= 1e-12
    # k >= 2: relu'' = delta, so m_{j+2} = E[delta^(j)(h)] = (-1)^j p_v^(j)(0); the Gaussian
    # density's derivatives at 0 by mpmath.diff (independent of the Hermite closed form)
    p = lambda h: mpmath.npdf(h, 0, mpmath.sqrt(v))  # noqa: E731
    for j in range(5):
        ref = float((-1) ** j * mpmath.diff(p, 0, j))
        assert abs(got[j + 2] - ref) <= 1e-10 * (1 + abs(ref)), (j, got[j + 2], ref)
    # and by finite differences of the heat equation dm_0/dv = m_2 / 2 (smoothing in v)
    h = 1e-5
    dm0 = (moments("relu", v + h, 2)[0] - moments("relu", v - h, 2)[0]) / (2 * h)
    assert abs(dm0 - got[2] / 2) < 1e-8


def test_moment_methods_and_closed_forms():
    assert [moment_method(a) for a in ("erf", "sin", "relu", "z**3", "tanh", "sigmoid")] == \
        ["closed form"] * 4 + ["quadrature"] * 2
    v = sp.Symbol("v", positive=True)
    m = moment_exprs("erf", 3)
    assert sp.simplify(m[1] - 2 / sp.sqrt(sp.pi) / sp.sqrt(1 + 2 * v)) == 0
    assert sp.simplify(m[3] + 4 / sp.sqrt(sp.pi) * (1 + 2 * v) ** sp.Rational(-3, 2)) == 0
    assert moment_exprs("sin", 2)[0] == 0 and sp.simplify(moment_exprs("cos", 0)[0]
                                                          - sp.exp(-v / 2)) == 0
    # heat equation d m_k / dv = m_{k+2} / 2, symbolically, for every closed form
    for a in ("erf", "sin", "relu", "z**4 - z", "z + erf(2*z)"):
        ms = moment_exprs(a, 5)
        for k in range(4):
            assert sp.simplify(sp.diff(ms[k], v) - ms[k + 2] / 2) == 0, (a, k)


def test_moments_function_cached_and_numba_callable():
    from numba import njit
    f = moments_function("erf", 4)
    assert moments_function("erf", 4) is f

    @njit
    def use(v):
        return f(v)[1]
    assert abs(use(0.5) - 2 / math.sqrt(math.pi * 2)) < 1e-15


# ---------------------------------------------------------------- Stein by Monte Carlo

def _hermite(k, z):
    return np.polynomial.hermite_e.hermeval(z, [0] * k + [1])


@pytest.mark.parametrize("name", ["tanh", "sin", "erf"])
def test_stein_identity_monte_carlo(name):
    rng = np.random.default_rng(20240611)
    d, n, chunk = 20, 10 ** 6, 200_000
    wstar = rng.standard_normal(d)
    wstar /= np.linalg.norm(wstar)
    w = rng.standard_normal(d) * math.sqrt(0.8 / d) + 0.6 * wstar
    phi, w2 = float(w @ wstar), float(w @ w)
    sig = sp.lambdify(Z, activation_expr(name), ["scipy", "numpy"])
    ks = (1, 2, 3, 4)
    s1, s2 = np.zeros(len(ks)), np.zeros(len(ks))
    for _ in range(n // chunk):
        x = rng.standard_normal((chunk, d))
        z, h = x @ wstar, x @ w
        sh = sig(h)
        for i, k in enumerate(ks):
            y = _hermite(k, z) * sh
            s1[i] += y.sum()
            s2[i] += (y * y).sum()
    mean = s1 / n
    se = np.sqrt((s2 / n - mean ** 2) / n)
    m = moments(name, w2, 4)
    pred = np.array([phi ** k * m[k] for k in ks])
    assert np.all(np.abs(mean - pred) <= 5 * se), (mean, pred, se)
    # the check has power: the moments at a wrong variance (|w_perp|^2 dropped) are rejected
    wrong = np.array([phi ** k * moments(name, phi ** 2, 4)[k] for k in ks])
    assert np.any(np.abs(mean - wrong) > 5 * se)


# ---------------------------------------------------------------- teachers, symbolic action

def test_teacher_hermite_expansion_exact():
    t = Teacher.from_polynomial("z**3")
    assert t.coeffs == ((1, 3), (3, 1))
    t = Teacher.from_polynomial(sp.Rational(1, 3) * Z ** 4 - Z)
    assert all(isinstance(c, sp.Rational) for _, c in t.coeffs)
    assert sp.expand(t.expr() - (sp.Rational(1, 3) * Z ** 4 - Z)) == 0
    assert as_teacher({1: 1, 3: -0.3}).vector()[3] == -0.3 and not as_teacher({1: 1}).has_even


def test_action_reduces_to_cubic_action():
    from kernelphase.actions import SYMBOLS, cubic_action, cubic_kernel_entries
    from kernelphase.single_index import action_expr, kernel_entries, symbols
    s = symbols()
    rep = {SYMBOLS["Phi"]: s["Phi"], SYMBOLS["b"]: s["b"][1], SYMBOLS["c"]: s["b"][3],
           SYMBOLS["u"]: s["u"], SYMBOLS["sigma_w2"]: s["sigma_w2"]}
    assert sp.simplify(action_expr("erf", (1, 3)) - cubic_action().subs(rep)) == 0
    Q = kernel_entries("erf", (1, 3))
    for mine, ref in zip((Q[1, 1], Q[1, 3], Q[3, 3]), cubic_kernel_entries()):
        assert sp.simplify(mine - ref.subs(rep)) == 0


def test_composed_action_derivatives_match_closed_form():
    """The heat-equation chain rule of composed_action equals SymPy's own d/dPhi."""
    from kernelphase.single_index import action_expr, compiled_action, symbols
    s = symbols()
    f = compiled_action()
    S = action_expr("relu", (0, 1, 2, 3))
    vals = {s["u"]: 3.0, s["sigma_w2"]: 0.7, s["b"][0]: 0.2, s["b"][1]: 0.6, s["b"][2]: -0.4,
            s["b"][3]: 0.3}
    for phi in (-0.8, 0.3, 1.7):
        M = moments("relu", 0.7 + phi ** 2, 12)
        b = [vals.get(s["b"][k], 0.0) for k in range(9)]
        got = f(phi, 3.0, 0.7, *b, *M)
        for order in range(3):
            ref = float(sp.diff(S, s["Phi"], order).subs(vals).subs(s["Phi"], phi))
            assert abs(got[order] - ref) <= 1e-12 * (1 + abs(ref))


# ---------------------------------------------------------------- erf preset vs the old solver

# (u_c, u_spinodal, phi_star, b_at_uc, sigma2_c) of the hand-typed cubic solver that the erf
# preset replaced (solvers/cubic.py at commit 60aac4d, its own numba code and constants): the
# preset must reproduce them to 1e-8 (issue 13)
_OLD_CUBIC = {(-0.3, 0.5): (30.66913278406761, 26.947387391757275, 0.721371813013227,
                            0.2919583279588415, 0.1787194547350764),
              (-1.2, 0.5): (3.4809862360611117, 3.0764696070826174, 0.9246183516662435,
                            0.7407854538245009, 0.5304829446595434),
              (-0.3, 1.0): (24.58853491950314, 21.48180730111694, 0.9120541517241658,
                            0.2789412622846707, 0.19959803084504488)}


@pytest.mark.parametrize("eps,sw2", sorted(_OLD_CUBIC))
def test_erf_preset_reproduces_the_old_cubic_solver(eps, sw2):
    kw = dict(n=3000, d=150, width=700, sigma_a2=8 / 700)
    r = single_index_transition("erf", {1: 1, 3: eps}, sigma_w2=sw2, **kw)
    c = cubic_transition(eps, sw2, **kw)
    assert r.converged and c.converged and r.order == "first"
    mine = (r.u_c, r.u_spinodal, r.phi_star, r.b[1], r.sigma2_c)
    for got, alias, old in zip(mine, (c.u_c, c.u_spinodal, c.phi_star, c.b_at_uc, c.sigma2_c),
                               _OLD_CUBIC[eps, sw2]):
        assert abs(got - old) <= 1e-8 * abs(old) and got == alias, (got, old)
    assert r.b[3] == eps


def test_erf_reference_numbers():
    """u_c = 30.669... and sigma2_c = 0.17872 at n=3000, d=150, N=700 (theory Sec. 4.9)."""
    r = single_index_transition("erf", Teacher.from_polynomial(Z ** 3 * sp.Rational(-3, 10)
                                                               + sp.Rational(19, 10) * Z),
                                n=3000, d=150, width=700, sigma_a2=8 / 700)
    # z (1 + 0.9) - 0.3 z^3 = He1 - 0.3 He3
    assert abs(r.u_c - 30.669) < 1e-3 and abs(r.sigma2_c - 0.17872) < 1e-5


# ---------------------------------------------------------------- scipy reference

class _Reference:
    """Plain scipy implementation of theory Sec. 12 (no heat equation, no numba)."""

    def __init__(self, name, teacher, sw2, rho):
        expr = activation_expr(name)
        kmax = max(teacher)
        self.ders = [sp.lambdify(Z, sp.diff(expr, Z, k) if k else expr, "math")
                     for k in range(kmax + 1)]
        self.c, self.sw2, self.rho, self.kmax = dict(teacher), sw2, rho, kmax
        self.cache = {}

    def m(self, k, v):
        key = (k, v)
        if key not in self.cache:
            f = self.ders[k]
            sv = math.sqrt(v)
            self.cache[key] = quad(lambda t: f(sv * t) * math.exp(-t * t / 2), -12, 12,
                                   epsabs=1e-14, epsrel=1e-13, limit=200)[0] / math.sqrt(2 * math.pi)
        return self.cache[key]

    def b1(self, u):
        A = self.m(1, self.sw2) ** 2
        v = math.sqrt(u * self.rho)
        kap = lambda b: 1 / self.sw2 - u * b * b * A  # noqa: E731
        top = min(self.c[1], 1 / math.sqrt(u * A * self.sw2)) * (1 - 1e-15)
        return brentq(lambda b: b * (1 + v * A / kap(b)) - self.c[1], 0.0, top, xtol=1e-16,
                      rtol=1e-15)

    def S(self, phi, u, b1):
        g = sum((b1 if k == 1 else ck) * phi ** k * self.m(k, self.sw2 + phi * phi)
                for k, ck in self.c.items())
        return phi * phi / (2 * self.sw2) - u / 2 * g * g

    def lowest_min(self, u):
        b1 = self.b1(u)
        grid = np.linspace(0.0, 5.0, 401)
        vals = [self.S(p, u, b1) for p in grid]
        best = (math.inf, math.nan)
        for i in range(1, len(grid) - 1):
            if vals[i] <= vals[i - 1] and vals[i] <= vals[i + 1]:
                r = minimize_scalar(lambda p: self.S(p, u, b1), bounds=(grid[i - 1], grid[i + 1]),
                                    method="bounded", options={"xatol": 1e-12})
                if r.x > 1e-3 and r.fun < best[0]:
                    best = (r.fun, r.x)
        return best

    def u_c(self):
        F = lambda u: min(self.lowest_min(u)[0], 1.0)  # noqa: E731
        u = 5.0
        while F(u) > 0:
            u *= 1.1
        uc = brentq(F, u / 1.1, u, xtol=1e-13, rtol=1e-13)
        return uc, self.lowest_min(uc)[1], self.b1(uc)


@pytest.mark.parametrize("name,teacher", [("tanh", {1: 1, 3: -0.3}), ("sin", {1: 1, 3: 0.5}),
                                          ("erf", {1: 1, 3: -0.3, 5: 0.2})])
def test_transition_against_scipy_reference(name, teacher):
    ref = _Reference(name, teacher, 0.5, RHO)
    uc, phi, b1 = ref.u_c()
    r = single_index_transition(name, teacher, rho=RHO)
    assert r.converged and r.order == "first"
    assert abs(r.u_c - uc) <= 1e-6 * uc, (r.u_c, uc)
    assert abs(r.phi_star - phi) <= 1e-6 * phi, (r.phi_star, phi)
    assert abs(r.b[1] - b1) <= 1e-6 * b1
    assert r.u_spinodal < r.u_c


def test_even_teacher_breaks_symmetry():
    """An activation with m_2 != 0 and an He2 teacher term: the action is not even in Phi.
    S(-Phi; b1, b2, b3) = S(Phi; b1, -b2, b3), so flipping c_2 mirrors the droplet; the
    minimum at Phi < 0 must be found, and each is the global nontrivial one (dense grid)."""
    act = "tanh(z) + 0.4*tanh(z)**2"
    rp = single_index_transition(act, {1: 1, 2: 0.8, 3: -0.3}, rho=RHO)
    rm = single_index_transition(act, {1: 1, 2: -0.8, 3: -0.3}, rho=RHO)
    assert rp.converged and rm.converged
    assert abs(rp.u_c - rm.u_c) <= 1e-10 * rp.u_c
    assert abs(rp.phi_star + rm.phi_star) <= 1e-8 and min(rp.phi_star, rm.phi_star) < 0
    _check_global(rp, act, 0.5)
    _check_global(rm, act, 0.5)
    # tanh has m_2 = 0: an He2 term changes nothing
    r0 = single_index_transition("tanh", {1: 1, 3: -0.3}, rho=RHO)
    r2 = single_index_transition("tanh", {1: 1, 2: 0.6, 3: -0.3}, rho=RHO)
    assert abs(r0.u_c - r2.u_c) <= 1e-10 * r0.u_c


# ---------------------------------------------------------------- brute-force certificates

def _dense_S(name, b, u, sw2, phis):
    M = np.array([moments(name, sw2 + p * p, 8) for p in phis])
    g = sum(b[k] * phis ** k * M[:, k] for k in range(9))
    return phis ** 2 / (2 * sw2) - u / 2 * g ** 2


def _check_global(r, name, sw2):
    phis = np.linspace(-6, 6, 2401)
    S = _dense_S(name, r.b, r.u_c, sw2, phis)
    away = np.abs(phis) > 1e-3
    assert S[away].min() >= -1e-7, (phis[away][np.argmin(S[away])], S[away].min())
    i = int(np.argmin(np.abs(phis - r.phi_star)))
    assert S[i] <= min(S[i - 1], S[i + 1]) + 1e-12          # a local minimum of the grid
    Sstar = _dense_S(name, r.b, r.u_c, sw2, np.array([r.phi_star]))[0]
    assert abs(Sstar) < 1e-9


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None


if given is not None:
    @settings(max_examples=20)
    @given(name=st.sampled_from(["erf", "tanh", "sin"]),
           c1=st.floats(0.5, 1.5), c3=st.floats(-1.0, 1.0), c5=st.floats(-0.6, 0.6),
           deg=st.sampled_from([1, 3, 5]), sw2=st.sampled_from([0.3, 0.5, 1.0]),
           rho=st.floats(0.01, 0.3))
    def test_reported_minima_are_global_hypothesis(name, c1, c3, c5, deg, sw2, rho):
        teacher = {1: c1, 3: c3, 5: c5}
        teacher = {k: c for k, c in teacher.items() if k <= deg and c != 0}
        r = single_index_transition(name, teacher, sigma_w2=sw2, rho=rho, u_max=1e4)
        assert r.converged == (r.status == 0)
        if r.converged:
            assert abs(r.phi_star) > 1e-3 and np.all(np.isfinite(r.b))
            _check_global(r, name, sw2)
        else:
            assert r.status in (1, 4)


# ---------------------------------------------------------------- unbounded, errors, contract

@pytest.mark.parametrize("act,teacher", [("z**3", {1: 1, 3: -0.3}), ("z + z**2", {1: 1, 2: 1}),
                                         ("relu", {1: 1, 2: 1})])
def test_unbounded_action_is_reported(act, teacher):
    r = single_index_transition(act, teacher, rho=RHO)
    assert not r.converged and r.status == 5
    assert "action unbounded below" in r.message
    assert math.isnan(r.u_c) and math.isnan(r.phi_star)


def test_linear_growth_with_odd_teacher_has_no_transition():
    """relu + odd teacher: g = b1 Phi / 2 (m_3 = 0), S = kappa Phi^2 / 2 with kappa > 0."""
    r = single_index_transition("relu", {1: 1, 3: -0.3}, rho=RHO, u_max=1e4)
    assert r.status == 1 and r.order == "none"


@pytest.mark.parametrize("call,match", [
    (lambda: single_index_transition("erf", {9: 1}, rho=RHO), r"teacher degree k=9 .* \[0, 8\]"),
    (lambda: single_index_transition("erf", "z**10", rho=RHO), r"degree 10 .* \[0, 8\]"),
    (lambda: single_index_transition(sp.Function("f")(Z), {1: 1}, rho=RHO), "unknown function"),
    (lambda: single_index_transition("foo", {1: 1}, rho=RHO), "activation='foo'"),
    (lambda: single_index_transition("erf", {1: 1}, sigma_w2=-1, rho=RHO), "sigma_w2=-1"),
    (lambda: single_index_transition("erf", {1: 1}), "give rho"),
    (lambda: single_index_transition("erf", {1: "x"}, rho=RHO), "c_1='x'"),
    (lambda: single_index_transition(sp.tanh(Z) * sp.Symbol("a"), {1: 1}, rho=RHO), "unset"),
])
def test_bad_specs_raise_one_line_value_error(call, match):
    with pytest.raises(ValueError, match=match) as exc:
        call()
    assert "\n" not in str(exc.value)


def test_result_contract_and_json():
    for r in (single_index_transition("erf", {1: 1, 3: -0.3}, rho=RHO),
              single_index_transition("z**3", {1: 1, 3: -0.3}, rho=RHO),
              single_index_transition("erf", {1: 1}, rho=RHO, u_max=100)):
        assert isinstance(r, SingleIndexTransitionResult)
        assert r.converged == (r.status == 0) and r.status in STATUS
        assert isinstance(r.message, str) and r.message.startswith(STATUS[r.status])
        assert r.order in ("first", "continuous", "none") and len(r.b) == MAX_DEGREE + 1
        d = r.to_dict()
        json.loads(json.dumps(d))
        assert d["converged"] == r.converged and "converged" not in r.__dataclass_fields__


def test_gfl_discrepancy_constant_mode():
    """b_0 -> 0 when m_0(sigma_w^2) != 0 (sigmoid: the GP learns the constant), b_0 = c_0 for
    odd activations (no constant mode); b_k = c_k for k >= 2."""
    b = gfl_discrepancy("sigmoid", {0: 0.7, 1: 1, 2: 0.3}, u=10.0, rho=RHO)
    assert b[0] == 0.0 and b[2] == 0.3 and 0 < b[1] < 1
    b = gfl_discrepancy("tanh", {0: 0.7, 1: 1}, u=10.0, rho=RHO)
    assert b[0] == 0.7
