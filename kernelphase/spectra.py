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

Eigenfunctions. If :math:`A` is the sector's radial matrix on the powers :math:`r^{q}` and
:math:`Av=\lambda v`, then :math:`\phi(x)=\sum_qv_q\,r^{q-\ell}\,H_\ell(x)` with
:math:`H_\ell(x)=r^\ell P^{(D)}_\ell(x_1/r)`, the zonal harmonic along the first axis (a
harmonic polynomial of degree :math:`\ell` in :math:`x_1` and :math:`r^2=|x|^2`), satisfies
:math:`\mathbb E_{x'}[K(x,x')\phi(x')]=\lambda\phi(x)`; every rotation of :math:`H_\ell` spans
the rest of the eigenspace. Each :class:`Sector` carries ``radial``
(:math:`\sum_qv_q(r^2)^{(q-\ell)/2}`, monic) and ``harmonic`` in the symbols
:data:`X1` and :data:`R2`.
"""
import functools
from dataclasses import dataclass

import sympy as sp

from ._checks import check_int
from .printing import latex
from .parse import as_sympy

__all__ = ["Sector", "gaussian_dot_product_spectrum", "sphere_dot_product_spectrum",
           "harmonic_multiplicity", "legendre_coefficient", "zonal_harmonic", "U", "N1", "N2",
           "X1", "R2"]

U, N1, N2 = sp.symbols("u n1 n2")
#: First coordinate :math:`x_1` and squared norm :math:`|x|^2` of the eigenfunctions.
X1, R2 = sp.Symbol("x1", real=True), sp.Symbol("r2", nonnegative=True)


@dataclass(frozen=True)
class Sector:
    r"""One eigenspace of a rotation-invariant kernel (all fields SymPy, exact).

    ``eigenvalue`` has ``multiplicity`` :math:`N(D,\ell)`; ``radial`` (a polynomial in
    :data:`R2`, the right eigenvector of the sector's radial matrix, monic) times ``harmonic``
    (the zonal harmonic :func:`zonal_harmonic`, degree ``degree``) is an eigenfunction,
    ``eigenfunction``; :meth:`values` evaluates it on data.
    """
    name: str
    degree: int
    eigenvalue: sp.Expr
    multiplicity: sp.Expr
    radial: sp.Expr = sp.Integer(1)
    harmonic: sp.Expr = sp.Integer(1)

    @property
    def eigenfunction(self):
        r""":math:`\phi(x)`, a polynomial in :data:`X1` (:math:`x_1`) and :data:`R2` (:math:`|x|^2`)."""
        return sp.expand(self.radial * self.harmonic)

    def values(self, x, subs=None):
        r""":math:`\phi` at the rows of ``x`` (shape ``(n, D)``, axis = first column); ``subs``
        gives numbers for the symbols left in the eigenfunction (e.g. ``{"eps": 0.5}``)."""
        import numpy as np
        from .parse import parse_number
        x = np.atleast_2d(np.asarray(x, dtype=float))
        subs = {sp.Symbol(k) if isinstance(k, str) else k: parse_number(v, str(k), exact=True)
                for k, v in (subs or {}).items()}
        poly = sp.Poly(self.eigenfunction.subs(subs), X1, R2)
        left = sorted({str(s) for c in poly.coeffs() for s in c.free_symbols})
        if left:
            raise ValueError(f"subs={sorted(map(str, subs))} leaves symbols {left} without values")
        x1, r2 = x[:, 0], np.sum(x * x, axis=1)
        return sum(float(c) * x1 ** a * r2 ** b for (a, b), c in poly.terms())

    def __repr__(self):
        return (f"Sector({self.name!r}, degree={self.degree}, eigenvalue={self.eigenvalue}, "
                f"multiplicity={self.multiplicity}, eigenfunction={self.eigenfunction})")

    def _repr_latex_(self):
        return (f"$\\text{{{self.name}}}:\\ \\lambda={latex(self.eigenvalue)}\\ "
                f"(\\times {latex(self.multiplicity)}),\\ "
                f"\\phi={latex(self.eigenfunction)}$")


def harmonic_multiplicity(D, ell):
    r""":math:`N(D,\ell)`, the dimension of degree-:math:`\ell` harmonics in :math:`\mathbb R^D`.

    Examples
    --------
    >>> from kernelphase.spectra import harmonic_multiplicity
    >>> [harmonic_multiplicity(3, l) for l in range(4)]
    [1, 3, 5, 7]
    >>> harmonic_multiplicity(100, 2) == 100 * 101 // 2 - 1
    True
    """
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


def zonal_harmonic(D, ell):
    r""":math:`H_\ell(x)=|x|^\ell P^{(D)}_\ell(x_1/|x|)`: the zonal harmonic of degree
    :math:`\ell` along the first axis, a polynomial in :data:`X1` and :data:`R2`,
    normalised by :math:`H_\ell(e_1)=1` (:math:`P^{(D)}_\ell` Gegenbauer, Chebyshev for D = 2).

    Examples
    --------
    >>> zonal_harmonic(3, 2)
    -r2/2 + 3*x1**2/2
    """
    ell = check_int("ell", ell, 0)
    D = D if isinstance(D, sp.Basic) and not D.is_number else sp.Integer(check_int("D", D, 1))
    if D == 1:
        if ell > 1:
            raise ValueError(f"ell={ell} is outside the valid range [0, 1] for D=1")
        return X1 ** ell
    P, t = _legendre(D, ell)
    return sp.expand(sum(c * X1 ** p * R2 ** ((ell - p) // 2)
                         for (p,), c in sp.Poly(P, t).terms()))


def _eigenpairs(A):
    """Eigenvalues with right eigenvectors of the radial matrix (repeated by multiplicity)."""
    if A.shape == (1, 1):
        return [(A[0, 0], [sp.Integer(1)])]
    out = []
    for e, m in A.eigenvals().items():
        vecs = (A - e * sp.eye(A.shape[0])).nullspace(simplify=True)
        for v in vecs[:m]:
            lead = next(c for c in reversed(list(v)) if sp.simplify(c) != 0)
            out.append((e, [sp.simplify(c / lead) for c in v]))
        out.extend((e, None) for _ in range(m - len(vecs)))  # defective: not for a valid kernel
    return out


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
        harmonic = zonal_harmonic(D, ell)
        for idx, (e, v) in enumerate(_eigenpairs(A)):
            e = sp.factor(sp.simplify(e))
            if e == 0:
                continue
            radial = (sp.nan if v is None else
                      sp.expand(sum(c * R2 ** ((q - ell) // 2) for c, q in zip(v, powers))))
            sectors.append(Sector(_name(ell, powers, idx), ell, e, mult, radial, harmonic))
    return tuple(sectors)


@functools.lru_cache(maxsize=256)
def gaussian_dot_product_spectrum(kernel, D):
    r"""Eigenvalues and multiplicities of ``kernel`` under :math:`x\sim\mathcal N(0,I/D)`.

    Parameters
    ----------
    kernel : sympy.Expr or str
        Polynomial in ``u`` (= x.x') and optionally ``n1``, ``n2`` (= ``|x|^2``, ``|x'|^2``), with any
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
