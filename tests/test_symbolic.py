"""Symbolic layer (issue 2): Gaussian expectations, activations, kernels, spectra, derive CLI."""
import json
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, strategies as st
from numpy.polynomial.hermite_e import hermegauss

from kernelphase.activations import Z, parse_activation
from kernelphase.gaussian import (bivariate_moment, erf_erf_expectation, erf_prime_expectation,
                                  expect_product)
from kernelphase.kernels import nngp_kernel, ntk_kernel
from kernelphase.spectra import (N1, N2, U, gaussian_dot_product_spectrum, harmonic_multiplicity,
                                 sphere_dot_product_spectrum)

X, NODES = hermegauss(60)
W = NODES / NODES.sum()


def _gh2(f, s11, s22, s12):
    """E[f(u, v)] by tensor Gauss-Hermite (probabilists'), via a Cholesky factor."""
    L = np.linalg.cholesky(np.array([[s11, s12], [s12, s22]]))
    z1, z2 = np.meshgrid(X, X, indexing="ij")
    u = L[0, 0] * z1
    v = L[1, 0] * z1 + L[1, 1] * z2
    return float(np.sum(np.outer(W, W) * f(u, v)))


@pytest.mark.parametrize("a, b", [(0, 2), (1, 1), (2, 2), (3, 1), (3, 3), (4, 2), (2, 1)])
def test_bivariate_moment_vs_gauss_hermite(a, b):
    s11, s22, s12 = 1.3, 0.7, -0.4
    val = float(bivariate_moment(a, b, sp.Rational(13, 10), sp.Rational(7, 10), sp.Rational(-2, 5)))
    ref = _gh2(lambda u, v: u ** a * v ** b, s11, s22, s12)
    assert abs(val - ref) <= 1e-12 * (1 + abs(ref))


ACTS = ["z", "z**2", "z**3", "z + eps*z**2/2", "z + eps*z**3"]


@pytest.mark.parametrize("text", ACTS)
@pytest.mark.parametrize("eps", [0.25, -1.5])
def test_polynomial_ntk_nngp_vs_gauss_hermite(text, eps):
    n1, n2, u, sw2 = 0.8, 1.4, 0.5, 0.7
    act = parse_activation(text)
    f = sp.lambdify(Z, act.expr.subs(sp.Symbol("eps"), eps), "numpy")
    df = sp.lambdify(Z, act.derivative.subs(sp.Symbol("eps"), eps), "numpy")
    cov = (sw2 * n1, sw2 * n2, sw2 * u)
    ref_nngp = _gh2(lambda a, b: f(a) * f(b) + 0 * a, *cov)
    ref_first = sw2 * u * _gh2(lambda a, b: df(a) * df(b) + 0 * a, *cov)
    sub = {U: u, N1: n1, N2: n2, sp.Symbol("eps"): eps}
    for expr, ref in ((nngp_kernel(act, sp.Rational(7, 10)), ref_nngp),
                      (ntk_kernel(act, "first", sp.Rational(7, 10)), ref_first),
                      (ntk_kernel(act, "both", sp.Rational(7, 10)), ref_first + ref_nngp)):
        assert abs(float(expr.subs(sub)) - ref) <= 1e-10 * (1 + abs(ref))


def test_erf_kernels_vs_quadrature_and_monte_carlo():
    n1, n2, u = 0.9, 1.6, -0.7
    mpmath.mp.dps = 30
    # mpmath quadrature over the shared Gaussian, the independent part integrated exactly
    # (E_z erf(m + s z) = erf(m / sqrt(1 + 2 s^2)))
    L = np.linalg.cholesky(np.array([[n1, u], [u, n2]]))
    g = lambda t: mpmath.exp(-t * t / 2) / mpmath.sqrt(2 * mpmath.pi)
    c = mpmath.sqrt(1 + 2 * mpmath.mpf(L[1, 1]) ** 2)
    ref = mpmath.quad(lambda a: mpmath.erf(L[0, 0] * a) * mpmath.erf(L[1, 0] * a / c) * g(a),
                      [-mpmath.inf, 0, mpmath.inf])
    val = float(erf_erf_expectation(n1, n2, u))
    assert abs(val - float(ref)) < 1e-10
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 400000))
    h1, h2 = L[0, 0] * z[0], L[1, 0] * z[0] + L[1, 1] * z[1]
    dd = 4 / math.pi * np.exp(-h1 ** 2 - h2 ** 2)
    assert abs(float(erf_prime_expectation(n1, n2, u)) - dd.mean()) < 5 * dd.std() / math.sqrt(dd.size)


def test_ntk_monte_carlo_over_sampled_network():
    """Empirical first-layer NTK of a wide random network converges to the closed form."""
    rng = np.random.default_rng(1)
    D, N, eps = 6, 200000, 0.4
    x, xp = rng.standard_normal(D) / math.sqrt(D), rng.standard_normal(D) / math.sqrt(D)
    Wt = rng.standard_normal((N, D))
    dphi = lambda h: 1 + eps * h
    terms = dphi(Wt @ x) * dphi(Wt @ xp) * (x @ xp)
    K = ntk_kernel("z + eps*z**2/2").subs({U: x @ xp, sp.Symbol("eps"): eps})
    assert abs(float(K) - terms.mean()) < 5 * terms.std() / math.sqrt(N)
    assert sp.simplify(ntk_kernel("z + eps*z**2/2") - (U + sp.Symbol("eps") ** 2 * U ** 2)) == 0


def test_hermite_coefficients_vs_quadrature():
    act = parse_activation("z + eps*z**3", {"eps": 0.3}).replace(eps=0.3)
    s = 1.7
    coeffs = act.hermite_coeffs(sp.Rational(17, 10))
    for k, a in enumerate(coeffs):
        he = np.polynomial.hermite_e.HermiteE.basis(k)
        ref = np.sum(W * (math.sqrt(s) * X + 0.3 * (math.sqrt(s) * X) ** 3) * he(X))
        assert abs(float(a.subs(sp.Symbol("eps"), 0.3)) - ref) < 1e-10


def test_issue_spectrum_sectors():
    eps = sp.Symbol("eps")
    D = sp.Symbol("D", positive=True)
    sec = {s.name: s for s in gaussian_dot_product_spectrum(U + eps ** 2 * U ** 2, D)}
    assert sp.simplify(sec["linear"].eigenvalue - 1 / D) == 0 and sec["linear"].multiplicity == D
    assert sp.simplify(sec["radial quadratic"].eigenvalue - eps ** 2 * (D + 2) / D ** 2) == 0
    assert sp.simplify(sec["traceless quadratic"].eigenvalue - 2 * eps ** 2 / D ** 2) == 0
    assert sp.simplify(sec["traceless quadratic"].multiplicity - (D * (D + 1) / 2 - 1)) == 0


@pytest.mark.parametrize("kernel", [U ** 3 + N1 * N2 * U, U + U ** 2 / 2 + U ** 4 / 6,
                                    N1 * N2 * U ** 2 + U, (N1 + N2) * U ** 2 + U])
def test_spectrum_trace_and_hilbert_schmidt_monte_carlo(kernel):
    """sum mult*lam = E[k(x,x)] and sum mult*lam^2 = E[k(x,x')^2] (x, x' iid N(0, I/D), D = 3),
    by Monte Carlo within 5 standard errors: the HS identity fixes the whole spectrum's 2-norm."""
    D, M = 3, 400000
    spec = gaussian_dot_product_spectrum(kernel, D)
    lam = np.concatenate([[float(s.eigenvalue)] * int(s.multiplicity) for s in spec])
    rng = np.random.default_rng(2)
    f = sp.lambdify((U, N1, N2), kernel, "numpy")
    x, xp = rng.standard_normal((2, M, D)) / math.sqrt(D)
    n, np_ = (x ** 2).sum(1), (xp ** 2).sum(1)
    diag = f(n, n, n)
    off = f((x * xp).sum(1), n, np_) ** 2
    for val, samples in ((lam.sum(), diag), ((lam ** 2).sum(), off)):
        assert abs(val - samples.mean()) < 5 * samples.std() / math.sqrt(M)
    # a wrong spectrum (top eigenvalue perturbed by 50 %) is rejected by the HS check
    bad = lam.copy()
    bad[np.argmax(bad)] *= 1.5
    assert abs((bad ** 2).sum() - off.mean()) > 5 * off.std() / math.sqrt(M)


def test_sphere_spectrum_funk_hecke():
    """On the unit sphere, sum_l N(D,l) lambda_l P_l(1) = k(1) (the trace identity)."""
    D = 5
    for kernel in (U ** 2, U ** 3 + U, sp.Rational(1, 2) + U ** 4):
        spec = sphere_dot_product_spectrum(kernel, D)
        assert sum(s.eigenvalue * s.multiplicity for s in spec) == kernel.subs(U, 1)


@given(D=st.integers(1, 12), L=st.integers(0, 6))
def test_multiplicities_fill_polynomial_space(D, L):
    total = sum(harmonic_multiplicity(D, l) * ((L - l) // 2 + 1) for l in range(L + 1))
    assert total == math.comb(D + L, L)


@given(j=st.integers(0, 6), k=st.integers(0, 6))
def test_hermite_orthogonality(j, k):
    x = sp.Symbol("x")
    val = expect_product(sp.hermite_prob(j, x), sp.hermite_prob(k, x), x, 1, 1, 1)
    assert val == (math.factorial(k) if j == k else 0)


@given(eps=st.floats(-2, 2), seed=st.integers(0, 50))
def test_ntk_gram_psd_symmetric(eps, seed):
    K = sp.lambdify((U, N1, N2), ntk_kernel("z + eps*z**3").subs(sp.Symbol("eps"), eps), "numpy")
    rng = np.random.default_rng(seed)
    Xs = rng.standard_normal((12, 4))
    n = (Xs ** 2).sum(1)
    G = K(Xs @ Xs.T, n[:, None], n[None, :])
    assert np.allclose(G, G.T)
    assert np.linalg.eigvalsh(G).min() >= -1e-9 * abs(G).max()


def test_derive_cli(run_cli):
    st_, out, err = run_cli("derive", "spectrum", "--activation", "z + eps*z**2/2", "--param",
                            "eps=0.25", "--D", 100, "--json")
    sec = {s["name"]: s for s in json.loads(out)["sectors"]}
    assert st_ == 0 and sec["linear"]["multiplicity"] == 100
    assert sec["traceless quadratic"]["multiplicity"] == 5049
    assert sec["radial quadratic"]["eigenvalue"] == pytest.approx(0.0625 * 102 / 100 ** 2, rel=1e-12)
    st_, out, err = run_cli("derive", "ntk", "--activation", "z + eps*z**2/2", "--json")
    assert sp.simplify(sp.sympify(json.loads(out)["expr"]) - (sp.Symbol("u") + sp.Symbol("eps") ** 2
                                                               * sp.Symbol("u") ** 2)) == 0
    st_, out, err = run_cli("derive", "action", "cubic", "--json")
    assert st_ == 0 and "Phi" in json.loads(out)["expr"]
    for argv, match in [(("ntk", "--activation", "z + ("), "cannot be parsed"),
                        (("ntk", "--activation", "sin(z)"), "not a polynomial"),
                        (("ntk", "--activation", "z", "--param", "foo=1"), "foo"),
                        (("spectrum", "--activation", "z", "--D", 0), "D=0"),
                        (("ntk", "--activation", "z", "--sigma-w2", -1), "sigma_w2=-1"),
                        (("spectrum", "--activation", "erf", "--D", 3), "polynomial")]:
        st_, out, err = run_cli("derive", *argv)
        assert st_ == 2 and match in err and len(err.strip().splitlines()) == 1, (argv, err)
    with pytest.raises(ValueError, match="cannot be parsed"):
        parse_activation("z + (")
