"""E[erf(u) He_k(v)] against 2-D mpmath quadrature at 30 digits."""
import mpmath
import pytest
import sympy as sp

from kernelphase.gaussian import erf_hermite_expectation


def _quad(k, s, c):
    """Inner integral over the independent part done exactly (E_z erf(a + r z) =
    erf(a / sqrt(1 + 2 r^2))), outer one by mpmath quadrature at 30 digits."""
    mpmath.mp.dps = 30
    r2 = s - c**2
    f = lambda z: (mpmath.erf(c * z / mpmath.sqrt(1 + 2 * r2))
                   * mpmath.hermite(k, z / mpmath.sqrt(2)) * 2 ** (-mpmath.mpf(k) / 2)
                   * mpmath.exp(-z**2 / 2) / mpmath.sqrt(2 * mpmath.pi))
    return mpmath.quad(f, [-mpmath.inf, 0, mpmath.inf])


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("s, c", [(0.7, 0.3), (1.6, -0.9)])
def test_erf_hermite_vs_quadrature(k, s, c):
    val = float(erf_hermite_expectation(k, sp.Rational(s).limit_denominator(100),
                                        sp.Rational(c).limit_denominator(100)))
    ref = float(_quad(k, mpmath.mpf(s), mpmath.mpf(c)))
    assert abs(val - ref) <= 1e-10 * (1 + abs(ref))


def test_rubin_closed_forms():
    s, c = sp.symbols("s c", positive=True)
    assert sp.simplify(erf_hermite_expectation(1, s, c) - 2 * c / sp.sqrt(sp.pi * (1 + 2 * s))) == 0
    assert sp.simplify(erf_hermite_expectation(3, s, c)
                       + 4 * c**3 / (sp.sqrt(sp.pi) * (1 + 2 * s) ** sp.Rational(3, 2))) == 0


def test_bad_degree():
    with pytest.raises(ValueError, match="k=-1"):
        erf_hermite_expectation(-1, 1, 0)
