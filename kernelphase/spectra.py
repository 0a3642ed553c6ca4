r"""Exact spectra of rotation-invariant kernels, in any dimension D.

A kernel built from :math:`u=x\cdot x'`, :math:`n_1=|x|^2`, :math:`n_2=|x'|^2` (a polynomial)
is diagonalised in the basis "degree-:math:`\ell` spherical harmonic times a radial polynomial".
With :math:`t=\hat x\cdot\hat x'`, :math:`t^k=\sum_\ell a_{k\ell}\,P_\ell^{(D)}(t)` (Legendre
polynomials of dimension D, :math:`P_\ell^{(D)}(1)=1`) and the addition theorem
:math:`\sum_mY_{\ell m}(\hat x)Y_{\ell m}(\hat x')=N(D,\ell)P_\ell^{(D)}(t)`, a term
:math:`c\,u^kn_1^in_2^j` acts on :math:`f(r)Y_{\ell m}(\hat x)` as

.. math:: f\mapsto c\,\frac{a_{k\ell}}{N(D,\ell)}\,r^{k+2i}\,\mathbb E\big[r^{k+2j}f(r)\big].

So in sector :math:`\ell` the operator is a small matrix on the radial powers, whose eigenvalues
each carry multiplicity :math:`N(D,\ell)=\binom{D+\ell-1}{\ell}-\binom{D+\ell-3}{\ell-2}`.

Measures: ``gaussian``, :math:`x\sim\mathcal N(0,I/D)` (so :math:`\mathbb E[r^{2m}]=
\prod_{i<m}(D+2i)/D^m`); ``sphere``, :math:`x` uniform on the unit sphere (:math:`r=1`).
Coordinate moments on the sphere: :math:`\mathbb E[t^{2m}]=(2m-1)!!/\prod_{i<m}(D+2i)`.
"""
import functools
from dataclasses import dataclass

import sympy as sp

from ._checks import check_int
from .parse import as_sympy

__all__ = ["Sector", "gaussian_dot_product_spectrum", "sphere_dot_product_spectrum",
           "harmonic_multiplicity", "legendre_coefficient", "U", "N1", "N2"]

U, N1, N2 = sp.symbols("u n1 n2")


@dataclass(frozen=True)
class Sector:
    """One eigenspace: a name, harmonic degree, eigenvalue and multiplicity (SymPy)."""
    name: str
    degree: int
    eigenvalue: sp.Expr
    multiplicity: sp.Expr


def harmonic_multiplicity(D, ell):
    r""":math:`N(D,\ell)`, the dimension of degree-:math:`\ell` harmonics in :math:`\mathbb R^D`."""
    D = as_sympy(D, "D")
    if ell == 0:
        return sp.Integer(1)
    if ell == 1:
        return D
    return sp.factor(sp.binomial(D + ell - 1, ell).expand(func=True)
                     - sp.binomial(D + ell - 3, ell - 2).expand(func=True))


def _sphere_moment(D, power):
    if power % 2:
        return sp.Integer(0)
    m = power // 2
    return sp.factorial2(2 * m - 1) / sp.prod([D + 2 * i for i in range(m)]) if m else sp.Integer(1)


def _radial_moment(D, power, measure):
    if measure == "sphere":
        return sp.Integer(1)
    if power % 2:
        raise ValueError("odd radial moment requested")  # cannot happen for a valid kernel
    m = power // 2
    return sp.prod([(D + 2 * i) / D for i in range(m)]) if m else sp.Integer(1)


@functools.lru_cache(maxsize=None)
def _legendre(D, ell):
    t = sp.Symbol("t")
    if D == 2:  # Gegenbauer index 0: the normalised limit is Chebyshev's T_ell
        return sp.expand(sp.chebyshevt(ell, t)), t
    return sp.expand(sp.gegenbauer(ell, (D - 2) / sp.Integer(2), t)
                     / sp.gegenbauer(ell, (D - 2) / sp.Integer(2), 1)), t


@functools.lru_cache(maxsize=None)
def legendre_coefficient(D, k, ell):
    r""":math:`a_{k\ell}` in :math:`t^k=\sum_\ell a_{k\ell}P_\ell^{(D)}(t)` (0 unless
    :math:`\ell\le k` and :math:`k-\ell` even)."""
    if ell > k or (k - ell) % 2:
        return sp.Integer(0)
    P, t = _legendre(D, ell)
    num = sum(c * _sphere_moment(D, k + p) for (p,), c in sp.Poly(P, t).terms())
    den = sum(c * _sphere_moment(D, p) for (p,), c in sp.Poly(sp.expand(P * P), t).terms())
    return sp.factor(sp.simplify(num / den))


def _name(ell, powers, idx):
    if len(powers) == 1:
        j = (powers[0] - ell) // 2
        if ell == 0:
            return "constant" if powers[0] == 0 else ("radial quadratic" if powers[0] == 2
                                                      else f"radial degree {powers[0]}")
        if j == 0:
            return {1: "linear", 2: "traceless quadratic"}.get(ell, f"degree {ell} harmonic")
        return f"degree {ell} harmonic, radial {j}"
    return f"degree {ell} harmonic, radial mode {idx}"


def _spectrum(kernel, D, measure):
    if not isinstance(D, sp.Symbol):
        D = sp.Integer(check_int("D", D, 1))
    kernel = sp.expand(as_sympy(kernel, "kernel", variables={"u": U, "n1": N1, "n2": N2}))
    try:
        poly = sp.Poly(kernel, U, N1, N2)
    except sp.PolynomialError:
        raise ValueError(f"kernel={kernel} is not a polynomial in u, n1, n2") from None
    terms = poly.terms()
    for (k, i, j), c in terms:
        if sp.simplify(c - poly.coeff_monomial(U ** k * N1 ** j * N2 ** i)) != 0:
            raise ValueError(f"kernel={kernel} is not symmetric in x and x'")
    if measure == "sphere":
        terms = [((k, 0, 0), c) for (k, i, j), c in terms]
    kmax = max(k for (k, _, _), _ in terms)
    sectors = []
    for ell in range(kmax + 1):
        mult = harmonic_multiplicity(D, ell)
        if mult == 0:  # D = 1: no harmonics of degree >= 2 (t = +-1 only)
            continue
        contrib = [(k, i, j, c * legendre_coefficient(D, k, ell)) for (k, i, j), c in terms
                   if legendre_coefficient(D, k, ell) != 0]
        if not contrib:
            continue
        powers = sorted({k + 2 * i for k, i, _, _ in contrib} if measure == "gaussian" else {ell})
        A = sp.zeros(len(powers), len(powers))
        for k, i, j, c in contrib:
            row = powers.index(k + 2 * i if measure == "gaussian" else ell)
            for col, q in enumerate(powers):
                A[row, col] += c / mult * _radial_moment(D, k + 2 * j + q, measure)
        eigs = [A[0, 0]] if len(powers) == 1 else [e for e, m in A.eigenvals().items()
                                                   for _ in range(m)]
        for idx, e in enumerate(eigs):
            e = sp.factor(sp.simplify(e))
            if e != 0:
                sectors.append(Sector(_name(ell, powers, idx), ell, e, mult))
    return tuple(sectors)


@functools.lru_cache(maxsize=256)
def gaussian_dot_product_spectrum(kernel, D):
    r"""Eigenvalues and multiplicities of ``kernel`` under :math:`x\sim\mathcal N(0,I/D)`.

    Parameters
    ----------
    kernel : sympy.Expr or str
        Polynomial in ``u`` (= x.x') and optionally ``n1``, ``n2`` (= |x|^2, |x'|^2), with any
        other symbols as parameters; text is read by :func:`kernelphase.parse.parse_formula`.
    D : int or sympy.Symbol
        Input dimension, ``D >= 1`` (``D = 2`` uses the Chebyshev limit of the Gegenbauer
        polynomials; ``D = 1`` has harmonics of degree 0 and 1 only).

    Returns
    -------
    tuple of Sector
        Ordered by harmonic degree; zero eigenvalues omitted.

    Examples
    --------
    >>> eps = sp.Symbol("eps")
    >>> [(s.name, s.eigenvalue, s.multiplicity) for s in
    ...  gaussian_dot_product_spectrum(U + eps**2 * U**2, 100)]  # doctest: +NORMALIZE_WHITESPACE
    [('radial quadratic', 51*eps**2/5000, 1), ('linear', 1/100, 100),
     ('traceless quadratic', eps**2/5000, 5049)]
    """
    return _spectrum(kernel, D, "gaussian")


@functools.lru_cache(maxsize=256)
def sphere_dot_product_spectrum(kernel, D):
    r"""Funk-Hecke eigenvalues :math:`\lambda_\ell=\sum_kc_ka_{k\ell}/N(D,\ell)` of a dot-product
    kernel for :math:`x` uniform on the unit sphere of :math:`\mathbb R^D` (norms set to 1)."""
    return _spectrum(kernel, D, "sphere")
