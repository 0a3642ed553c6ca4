r"""Single-index teacher specs: :math:`y(x)=\sum_k c_k\,\mathrm{He}_k(w^*\cdot x)`, :math:`|w^*|=1`.

Probabilists' Hermite polynomials (:math:`\mathbb E[\mathrm{He}_j\mathrm{He}_k]=k!\,\delta_{jk}`
under :math:`\mathcal N(0,1)`). A teacher is given by its coefficients ``{k: c_k}`` or by a
polynomial :math:`p(z)` in :data:`kernelphase.activations.Z`, converted exactly (rationals stay
rational) by

.. math:: c_k=\frac1{k!}\,\mathbb E_{z\sim\mathcal N(0,1)}[p(z)\,\mathrm{He}_k(z)] ,

computed by triangular back-substitution on ``sympy.hermite_prob`` (Hermite polynomials
:math:`\mathrm{He}_k` are monic of degree k). The cubic teacher of Rubin et al. (2023),
Eq. (1), is ``Teacher.from_coeffs({1: 1, 3: eps})``.

Examples
--------
>>> Teacher.from_polynomial("z**3").coeffs
((1, 3), (3, 1))
"""
from dataclasses import dataclass

from .parse import as_sympy

__all__ = ["Teacher", "MAX_DEGREE", "as_teacher"]

#: Highest Hermite degree a teacher may carry.
MAX_DEGREE = 8


@dataclass(frozen=True)
class Teacher:
    """Immutable teacher: ``coeffs`` is a sorted tuple of ``(k, c_k)`` with ``c_k != 0``.

    ``c_k`` are SymPy numbers (exact when the input was exact); ``vector()`` gives floats.
    """
    coeffs: tuple

    @classmethod
    def from_coeffs(cls, coeffs):
        """From a mapping ``{k: c_k}``; ``0 <= k <= MAX_DEGREE``, ``c_k`` finite numbers."""
        if not hasattr(coeffs, "items"):
            raise ValueError(f"teacher={coeffs!r} is not a mapping {{degree: coefficient}}")
        out = {}
        for k, c in coeffs.items():
            try:
                kk = int(k)
                ok = kk == k
            except (TypeError, ValueError):
                ok = False
            if not ok or not 0 <= kk <= MAX_DEGREE:
                raise ValueError(f"teacher degree k={k!r} is outside the valid range "
                                 f"[0, {MAX_DEGREE}] (integers)")
            try:
                cc = as_sympy(c, f"c_{k}", params=None)
            except (ValueError, TypeError):
                cc = None
            if cc is None or not cc.is_number or not cc.is_real or not cc.is_finite:
                raise ValueError(f"teacher coefficient c_{k}={c!r} is not a finite real number")
            if cc != 0:
                out[kk] = cc
        if not out:
            raise ValueError(f"teacher={dict(coeffs)!r} has no nonzero coefficient")
        return cls(tuple(sorted(out.items())))

    @classmethod
    def from_polynomial(cls, poly):
        """From a polynomial in ``z`` or in ``He0 .. He8`` (SymPy expression or text such as
        ``"z**3 - z"`` or ``"He1 - 0.3*He3"``; text goes through the whitelisting parser)."""
        import sympy as sp
        from .activations import Z
        he = {f"He{k}": sp.Symbol(f"He{k}") for k in range(MAX_DEGREE + 1)}
        expr = as_sympy(poly, "teacher", variables={"z": Z, **he}, params=None)
        expr = expr.subs({s: sp.hermite_prob(int(n[2:]), Z) for n, s in he.items()})
        if not isinstance(expr, sp.Expr) or not expr.is_polynomial(Z) or (
                expr.free_symbols - {Z}):
            raise ValueError(f"teacher={poly!r} is not a polynomial in z with numeric "
                             f"coefficients")
        p = sp.Poly(sp.expand(expr), Z)
        deg = p.degree()
        if deg > MAX_DEGREE:
            raise ValueError(f"teacher degree {deg} of {poly!r} is outside the valid range "
                             f"[0, {MAX_DEGREE}]")
        coeffs = {}
        rest = p
        for k in range(deg, -1, -1):  # He_k is monic: peel off the leading term
            c = rest.coeff_monomial(Z ** k)
            if c != 0:
                coeffs[k] = c
                rest = rest - c * sp.Poly(sp.hermite_prob(k, Z), Z)
        return cls.from_coeffs(coeffs)

    @property
    def degree(self):
        """Highest Hermite degree with a nonzero coefficient."""
        return self.coeffs[-1][0]

    @property
    def has_even(self):
        """True if some even degree (including the constant) is present."""
        return any(k % 2 == 0 for k, _ in self.coeffs)

    def vector(self, size=MAX_DEGREE + 1):
        """Float coefficients ``c_0..c_{size-1}`` (zeros where absent)."""
        import numpy as np
        out = np.zeros(size)
        for k, c in self.coeffs:
            out[k] = float(c)
        return out

    def expr(self):
        """The teacher as a polynomial in ``z``."""
        import sympy as sp
        from .activations import Z
        return sp.expand(sum(c * sp.hermite_prob(k, Z) for k, c in self.coeffs))

    def replace(self, **coeffs):
        """New teacher with some coefficients changed, e.g. ``t.replace(c3=-1.2)``."""
        d = dict(self.coeffs)
        for name, c in coeffs.items():
            if not (name.startswith("c") and name[1:].isdigit()):
                raise ValueError(f"{name}={c!r}: coefficient names are c0..c{MAX_DEGREE}")
            d[int(name[1:])] = c
        return Teacher.from_coeffs(d)


def as_teacher(teacher):
    """Teacher from a :class:`Teacher`, a mapping ``{k: c_k}``, or a polynomial in ``z``.

    Examples
    --------
    >>> from kernelphase.teachers import as_teacher
    >>> t = as_teacher({1: 1.0, 3: -0.3})
    >>> t.degree
    3
    >>> as_teacher(t) is t
    True
    """
    if isinstance(teacher, Teacher):
        return teacher
    if hasattr(teacher, "items"):
        return Teacher.from_coeffs(teacher)
    return Teacher.from_polynomial(teacher)
