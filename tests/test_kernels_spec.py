"""NNGP/NTK for every activation (closed forms, quadrature, Monte Carlo over random weights),
spectral eigenfunctions checked by applying the kernel operator, one NTK derivation, the CLI
(issue 13 items 3 and 6)."""
import json
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy.special import erf as np_erf

from kernelphase.cli import main as cli
from kernelphase.gaussian import relu_relu_expectation, step_step_expectation
from kernelphase.activations import as_activation
from kernelphase.kernels import (has_closed_form, kernel_function, nngp_kernel,
                                 ntk_kernel)
from kernelphase.lazy_rich import ntk_dot_kernel
from kernelphase.spectra import (N1, N2, R2, U, X1, gaussian_dot_product_spectrum,
                                 sphere_dot_product_spectrum, zonal_harmonic)

# numpy sigma and sigma' of the activations under test (independent of the package's codegen)
NP = {"relu": (lambda h: np.maximum(h, 0), lambda h: (h > 0).astype(float)),
      "tanh": (np.tanh, lambda h: 1 / np.cosh(h) ** 2),
      "erf": (np_erf, lambda h: 2 / math.sqrt(math.pi) * np.exp(-h * h)),
      "sin(2*z)": (lambda h: np.sin(2 * h), lambda h: 2 * np.cos(2 * h)),
      "softplus": (lambda h: np.logaddexp(0, h), lambda h: 1 / (1 + np.exp(-h))),
      "z + z**2/2 - z**3/5": (lambda h: h + h * h / 2 - h ** 3 / 5,
                              lambda h: 1 + h - 3 * h * h / 5)}


def _data(n=3, D=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, D)) / math.sqrt(D) * [[1.0], [1.6], [0.7]][:n]


# ------------------------------------------------------------------ closed forms, independently

@pytest.mark.parametrize("v1, v2, c", [(0.9, 1.6, -0.7), (2.0, 0.5, 0.9), (1.0, 1.0, 0.0),
                                       (1.0, 1.0, 0.999)])
def test_arc_cosine_closed_forms_vs_mpmath(v1, v2, c):
    """Order 1 and 0 vs a 1-D mpmath integral: conditioning on h1 = s1 z, h2 | z is
    N(a z, b^2) and E[relu(m + bZ)] = m Phi(m/b) + b phi(m/b), P(m + bZ > 0) = Phi(m/b)."""
    mpmath.mp.dps = 30
    s1 = mpmath.sqrt(v1)
    a, b = c / s1, mpmath.sqrt(v2 - c * c / v1)
    phi = lambda t: mpmath.exp(-t * t / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
    ref1 = mpmath.quad(lambda z: phi(z) * s1 * z * (a * z * mpmath.ncdf(a * z / b)
                                                     + b * phi(a * z / b)), [0, mpmath.inf])
    ref0 = mpmath.quad(lambda z: phi(z) * mpmath.ncdf(a * z / b), [0, mpmath.inf])
    for val, ref in ((relu_relu_expectation(v1, v2, c), ref1), (step_step_expectation(v1, v2, c), ref0)):
        assert abs(float(val) - float(ref)) <= 1e-13 * (1 + abs(float(ref)))
    # symbolic identities: K(x, x) = E[relu^2] = v/2, step kernel at u = 0 is 1/4, NTK = u/2 on the diagonal
    n = sp.Symbol("n", positive=True)
    assert sp.simplify(nngp_kernel("relu").subs({U: n, N1: n, N2: n})) == n / 2
    assert ntk_kernel("relu").subs({N1: 1, N2: 1, U: 0}) == 0
    assert sp.simplify(ntk_kernel("relu").subs({N1: 1, N2: 1, U: 1})) == sp.Rational(1, 2)


def test_scaled_closed_forms_and_classification():
    """k*g(a z) uses G(a^2 Sigma); relu(-z) gives the same kernel as relu(z) (symmetry)."""
    sub = {U: 0.3, N1: 0.8, N2: 1.3}
    base = float(nngp_kernel("relu").subs(sub))
    assert abs(float(nngp_kernel("2*relu(3*z)").subs(sub)) - 36 * base) < 1e-12
    assert abs(float(nngp_kernel("relu(-z)").subs(sub)) - base) < 1e-12
    e = float(nngp_kernel("erf(z/2)").subs(sub))
    assert abs(e - float(nngp_kernel("erf", sp.Rational(1, 4)).subs(sub))) < 1e-12
    assert [has_closed_form(a) for a in ("relu", "erf", "z**3", "tanh", "relu(z) + z", "erf(z)**2")] \
        == [True, True, True, False, False, False]
    with pytest.raises(NotImplementedError, match="kernel_function"):
        nngp_kernel("tanh")


# ----------------------------------------------- quadrature vs closed forms, to ~1e-10 (in fact 1e-13)

@pytest.mark.parametrize("act", ["relu", "erf", "z + z**2/2 - z**3/5", "2*relu(3*z)", "erf(2*z)"])
@pytest.mark.parametrize("kind, trained", [("nngp", "first"), ("ntk", "first"), ("ntk", "both")])
def test_quadrature_matches_closed_form(act, kind, trained):
    x = np.vstack([_data(3, 5, 1), -_data(1, 5, 1)])  # includes rho = -1 and rho = 1
    ref = kernel_function(act, kind, trained, sigma_w2=0.7)
    quad = kernel_function(act, kind, trained, sigma_w2=0.7, method="quadrature")
    assert (ref.method, quad.method, quad.expr) == ("closed", "quadrature", None)
    K, Q = ref(x), quad(x)
    assert K.shape == (4, 4) and np.allclose(K, K.T, rtol=0, atol=1e-15)
    assert np.max(np.abs(K - Q) / (1 + np.abs(K))) <= 1e-10


# ---------------------------------------------- every kernel vs Monte Carlo over random weights

def _mc(act, x, sw2, N=200_000, seed=3):
    """Empirical NNGP E[s(h)s(h')] and first-layer NTK sw2 u E[s'(h)s'(h')] per pair, with the
    standard error of each entry."""
    f, df = NP[act]
    W = np.random.default_rng(seed).standard_normal((N, x.shape[1])) * math.sqrt(sw2)
    H = W @ x.T
    out = {}
    for kind, g, scale in (("nngp", f, np.ones((len(x), len(x)))), ("ntk", df, sw2 * x @ x.T)):
        G = g(H)
        terms = G[:, :, None] * G[:, None, :] * scale
        out[kind] = (terms.mean(0), terms.std(0) / math.sqrt(N))
    return out


@pytest.mark.parametrize("act", list(NP))
def test_kernel_vs_monte_carlo_over_random_weights(act):
    x, sw2 = _data(3, 4, 2), 1.5
    mc = _mc(act, x, sw2)
    for kind in ("nngp", "ntk"):
        K = kernel_function(act, kind, sigma_w2=sw2)(x)
        mean, se = mc[kind]
        assert np.all(np.abs(K - mean) <= 5 * se + 1e-12), (kind, K - mean, se)
    # the check has power: sigma_w2 off by 10 % is rejected
    wrong = kernel_function(act, "nngp", sigma_w2=1.1 * sw2)(x)
    assert np.any(np.abs(wrong - mc["nngp"][0]) > 5 * mc["nngp"][1])


def test_kernel_function_api():
    k = kernel_function("tanh", "ntk", "both")
    x1, x2 = _data(3, 4, 0), _data(2, 4, 5)
    assert k(x1, x2).shape == (3, 2) and np.allclose(k(x1, x2), k(x2, x1).T, atol=1e-15)
    assert k.method == "quadrature" and k.expr is None and "tanh" in repr(k)
    u, n1, n2 = x1 @ x2.T, (x1 ** 2).sum(1)[:, None], (x2 ** 2).sum(1)[None, :]
    assert np.allclose(k.evaluate(u, n1, n2), k(x1, x2), rtol=1e-14, atol=0)
    kp = kernel_function("tanh(a*z)", "nngp", params={"a": "1/2"})
    assert np.allclose(kp(x1), kernel_function("tanh(z/2)", "nngp")(x1), rtol=0, atol=1e-15)
    r = kernel_function("relu", "nngp")
    assert r._repr_latex_().startswith("$K_{\\rm NNGP}") and k._repr_latex_() is None
    # closed form of a polynomial: exact against the SymPy expression
    p = kernel_function("z + eps*z**2/2", "ntk", params={"eps": 0.5})
    assert abs(p.evaluate(0.3, 1, 1) - (0.3 + 0.25 * 0.09)) < 1e-15


@pytest.mark.parametrize("call, match", [
    (lambda: kernel_function("relu", "nngpp"), "kind='nngpp' is not one of"),
    (lambda: kernel_function("relu", trained="all"), "trained='all' is not one of"),
    (lambda: kernel_function("tanh", method="closed"), "method='closed' is not available"),
    (lambda: kernel_function("relu", method="exact"), "method='exact' is not one of"),
    (lambda: kernel_function("relu", nodes=4), r"nodes=4 is outside the valid range \[8, 400\]"),
    (lambda: kernel_function("relu", sigma_w2=-1), r"sigma_w2=-1 is outside the valid range \(0"),
    (lambda: kernel_function("z + eps*z**2"), r"parameters without values \['eps'\]"),
    (lambda: kernel_function("tanh(a*z)", params={"b": 1}), "parameter b=1 does not occur"),
    (lambda: kernel_function("relu")(np.ones((2, 3)), np.ones((2, 4))), "same number of columns"),
    (lambda: kernel_function("relu").evaluate(0.1, -1, 1), "n1, n2 must be finite"),
    (lambda: as_activation("__import__('os')"), "is not allowed"),
    (lambda: as_activation(3), "is not a name"),
])
def test_kernel_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_ntk_dot_kernel_is_the_kernels_ntk():
    """One derivation: lazy_rich's kernel is ntk_kernel at unit norms, for several activations."""
    h, eps = sp.Symbol("h"), sp.Symbol("eps")
    for phi in (h + eps * h ** 2 / 2, h ** 3 - h, 2 * h + h ** 4):
        ref = ntk_kernel(phi.subs(h, sp.Symbol("z"))).subs({N1: 1, N2: 1})
        assert sp.expand(ntk_dot_kernel(phi) - ref.subs(U, sp.Symbol("u"))) == 0


# ------------------------------------------------------------------------------ eigenfunctions

def _apply_operator(K, sec, x, D, M, measure, seed):
    """(T phi)(x) = E_x'[K(x, x') phi(x')] by Monte Carlo, with its standard error."""
    rng = np.random.default_rng(seed)
    xp = rng.standard_normal((M, D))
    xp = xp / np.linalg.norm(xp, axis=1, keepdims=True) if measure == "sphere" else xp / math.sqrt(D)
    phi = sec.values(xp)
    poly = sp.Poly(K, U, N1, N2)
    out = []
    for xi in x:
        u, n1, n2 = xp @ xi, xi @ xi, np.sum(xp * xp, axis=1)
        k = sum(float(c) * u ** a * n1 ** b * n2 ** d for (a, b, d), c in poly.terms())
        t = k * phi
        out.append((t.mean(), t.std() / math.sqrt(M)))
    return np.array(out)


@pytest.mark.parametrize("measure", ["gaussian", "sphere"])
def test_eigenfunctions_by_applying_the_kernel(measure):
    """T phi = lambda phi at test points within 5 standard errors, for every sector (including
    the two radial modes of the linear sector), and the other mode's eigenvalue is rejected."""
    D, M = 3, 200_000
    K = nngp_kernel("z + z**2/2 + z**3/3")      # n1 n2 u + n1 n2/4 + (n1 + n2) u + 2u^3/3 + ...
    spec = (gaussian_dot_product_spectrum if measure == "gaussian" else sphere_dot_product_spectrum)(K, D)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, D)) / math.sqrt(D) * np.array([[1.0], [1.5], [0.8]])
    if measure == "sphere":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert len(spec) == (5 if measure == "gaussian" else 4)
    lams = [float(s.eigenvalue) for s in spec]
    for i, sec in enumerate(spec):
        T = _apply_operator(K, sec, x, D, M, measure, seed=11 + i)
        lam_phi = float(sec.eigenvalue) * sec.values(x)
        assert np.all(np.abs(T[:, 0] - lam_phi) <= 5 * T[:, 1] + 1e-12), (sec, T, lam_phi)
        if sec.degree == 1 and measure == "gaussian":   # power: the other mode's eigenvalue fails
            other = [lam for j, lam in enumerate(lams) if spec[j].degree == 1 and j != i][0]
            assert np.any(np.abs(T[:, 0] - other * sec.values(x)) > 5 * T[:, 1])


def test_sector_fields_and_repr():
    eps, D = sp.Symbol("eps"), sp.Symbol("D", positive=True)
    sec = {s.name: s for s in gaussian_dot_product_spectrum(U + eps ** 2 * U ** 2, D)}
    tl = sec["traceless quadratic"]
    assert sp.simplify(tl.eigenfunction - (D * X1 ** 2 - R2) / (D - 1)) == 0
    assert sec["radial quadratic"].radial == R2 and sec["linear"].eigenfunction == X1
    assert "eigenfunction=" in repr(tl) and tl._repr_latex_().startswith("$\\text{traceless")
    with pytest.raises(ValueError, match=r"leaves symbols \['D'\]"):
        tl.values(np.ones((2, 3)))
    # harmonic: Laplacian zero in D coordinates, H(e1) = 1
    xs = sp.symbols("a0:4", real=True)
    for ell in range(5):
        H = zonal_harmonic(4, ell).subs({X1: xs[0], R2: sum(v ** 2 for v in xs)})
        assert sp.expand(sum(sp.diff(H, v, 2) for v in xs)) == 0
        assert H.subs({xs[0]: 1, xs[1]: 0, xs[2]: 0, xs[3]: 0}) == 1
    with pytest.raises(ValueError, match=r"ell=2 is outside the valid range \[0, 1\] for D=1"):
        zonal_harmonic(1, 2)


# --------------------------------------------------------------------------------------- CLI

def test_cli_derive_new_activations(capsys):
    assert cli(["derive", "nngp", "--activation", "relu"]) == 0
    assert "acos(u/sqrt(n1*n2))" in capsys.readouterr().out
    assert cli(["derive", "ntk", "--activation", "tanh", "--u", "0.3", "--n1", "1", "--n2", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("activation='tanh': no closed form") and "(quadrature)" in out[1]
    value = float(out[1].split(": ")[1].split()[0])
    ref = kernel_function("tanh", "ntk").evaluate(0.3, 1, 2)
    assert abs(value - ref) < 1e-13
    assert cli(["derive", "nngp", "--activation", "relu", "--u", "0.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["method"] == "closed" and abs(d["value"] - (math.sqrt(0.75) + (math.pi - math.acos(0.5)) * 0.5) / (2 * math.pi)) < 1e-14
    assert cli(["derive", "spectrum", "--activation", "z + eps*z**2/2", "--param", "eps=1/2",
                "--D", "10", "--eigenfunctions", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["sectors"]}
    assert rows["traceless quadratic"]["eigenfunction"] == "-r2/9 + 10*x1**2/9"


@pytest.mark.parametrize("argv, match", [
    (["derive", "nngp", "--activation", "relu", "--u", "2"], r"u=2.0 is outside the valid range \[-1, 1\]"),
    (["derive", "ntk", "--activation", "tanh", "--n1", "2"], "--n1/--n2 given without --u"),
    (["derive", "nngp", "--activation", "tanh"], "so its NNGP has no closed form; give --u"),
    (["derive", "spectrum", "--activation", "relu", "--D", "3"], "spectrum needs a polynomial"),
    (["derive", "nngp", "--activation", "tanh(a*z)", "--param", "b=1"], "parameter b=1 does not occur"),
])
def test_cli_derive_errors(argv, match, capsys):
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and pytest.importorskip("re").search(match, err)
