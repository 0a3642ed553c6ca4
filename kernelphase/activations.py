r"""Activation specs: a polynomial in ``z`` with symbolic parameters, or ``erf``.

One immutable spec is the single source of the expression, its derivative and its Hermite
coefficients; kernels and simulations use the same spec.
"""
import functools
from dataclasses import dataclass, field

import sympy as sp

__all__ = ["Activation", "parse_activation", "Z"]

Z = sp.Symbol("z")
_ALLOWED = {"z": Z, "erf": sp.erf, "sqrt": sp.sqrt, "pi": sp.pi, "exp": sp.exp}


@dataclass(frozen=True)
class Activation:
    """An activation :math:`\\sigma(z)`; ``params`` maps parameter names to values (or None)."""
    text: str
    expr: sp.Expr
    params: tuple = field(default=())

    @property
    def is_polynomial(self):
        return self.expr.is_polynomial(Z)

    @property
    def is_erf(self):
        return self.expr == sp.erf(Z)

    @property
    def derivative(self):
        return sp.diff(self.expr, Z)

    def substituted(self):
        """Expression with the given numeric parameter values substituted."""
        return self.expr.subs({sp.Symbol(k): v for k, v in self.params if v is not None})

    def replace(self, **values):
        """New spec with parameter values set (``Activation.replace(eps=0.25)``)."""
        return parse_activation(self.text, dict(dict(self.params), **values))

    def hermite_coeffs(self, var=1, kmax=None):
        r"""Hermite coefficients under a pre-activation of variance :math:`s`:

        .. math:: a_k=\mathbb E_{u\sim\mathcal N(0,s)}\big[\sigma(u)\,\mathrm{He}_k(u/\sqrt s)\big],
                  \qquad \sigma(u)=\sum_k\frac{a_k}{k!}\mathrm{He}_k(u/\sqrt s).
        """
        from .gaussian import erf_hermite_expectation, expect_product
        var = sp.sympify(var)
        if self.is_polynomial:
            deg = sp.degree(self.expr, Z)
            kmax = deg if kmax is None else kmax
            x = sp.Dummy("x")
            return tuple(sp.simplify(expect_product(
                self.expr.subs(Z, x), sp.hermite_prob(k, x / sp.sqrt(var)), x, var, var, var))
                for k in range(kmax + 1))
        if self.is_erf:
            kmax = 5 if kmax is None else kmax
            return tuple(erf_hermite_expectation(k, var, sp.sqrt(var)) for k in range(kmax + 1))
        raise NotImplementedError(f"activation={self.text!r}: only polynomials and erf")


@functools.lru_cache(maxsize=256)
def _parse(text):
    from sympy.parsing.sympy_parser import parse_expr, standard_transformations
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"activation={text!r} is empty; give a polynomial in z or 'erf'")
    if text.strip() == "erf":
        return sp.erf(Z)
    try:
        expr = parse_expr(text, local_dict=dict(_ALLOWED), transformations=standard_transformations,
                          evaluate=True)
    except Exception as exc:  # the parser raises tokenize, syntax, type and sympify errors
        raise ValueError(f"activation={text!r} cannot be parsed ({type(exc).__name__}); "
                         f"write a polynomial in z such as 'z + eps*z**2/2', or 'erf'") from None
    if not isinstance(expr, sp.Expr) or Z not in expr.free_symbols:
        raise ValueError(f"activation={text!r} must be an expression in z")
    return expr


def parse_activation(text, params=None):
    """Parse ``text`` (e.g. ``"z + eps*z**2/2"`` or ``"erf"``) with parameter values ``params``.

    Raises ``ValueError`` for unparsable text, non-polynomials other than erf, and parameter
    names that do not occur in the expression.
    """
    expr = _parse(text)
    if not (expr.is_polynomial(Z) or expr == sp.erf(Z)):
        raise ValueError(f"activation={text!r} is not a polynomial in z (nor 'erf'); only "
                         f"polynomials with symbolic coefficients and erf are supported")
    names = {str(s) for s in expr.free_symbols} - {"z"}
    params = dict(params or {})
    for k, v in params.items():
        if k not in names:
            raise ValueError(f"parameter {k}={v!r} does not occur in activation={text!r}; "
                             f"valid names: {sorted(names) or 'none'}")
        try:
            params[k] = sp.nsimplify(v) if isinstance(v, str) else sp.sympify(v)
            if not params[k].is_number:
                raise TypeError
        except (TypeError, sp.SympifyError):
            raise ValueError(f"parameter {k}={v!r} is not a number") from None
    return Activation(text, expr, tuple(sorted(params.items())))
