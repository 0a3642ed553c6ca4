r"""Activation specs: any activation the package accepts, as one immutable spec.

A name (``erf``, ``tanh``, ``relu``, ... of :data:`kernelphase.moments.KNOWN_ACTIVATIONS`) or
a formula in ``z`` with symbolic parameters (``"z + eps*z**2/2"``, ``"tanh(beta*z)"``), read by
the whitelisting parser and never evaluated. The spec is the single source of the
expression, its derivative and its Hermite coefficients; the kernels, the solvers' moments and
the simulations all take it from here, so a new activation is one spec and nothing else.
"""
import functools
from dataclasses import dataclass, field

import sympy as sp

from .parse import as_sympy, parse_formula, parse_number

__all__ = ["Activation", "parse_activation", "as_activation", "Z"]

Z = sp.Symbol("z")


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
        """Expression with the given numeric parameter values substituted.

        Values are checked again (``subs`` would ``sympify``, i.e. evaluate, a string)."""
        return self.expr.subs({sp.Symbol(k): _param_value(k, v) for k, v in self.params
                               if v is not None})

    def replace(self, **values):
        """New spec with parameter values set (``Activation.replace(eps=0.25)``)."""
        return parse_activation(self.text, dict(dict(self.params), **values))

    def hermite_coeffs(self, var=1, kmax=None):
        r"""Hermite coefficients under a pre-activation of variance :math:`s`:

        .. math:: a_k=\mathbb E_{u\sim\mathcal N(0,s)}\big[\sigma(u)\,\mathrm{He}_k(u/\sqrt s)\big],
                  \qquad \sigma(u)=\sum_k\frac{a_k}{k!}\mathrm{He}_k(u/\sqrt s).
        """
        from .gaussian import erf_hermite_expectation, expect_product
        var = as_sympy(var, "var")
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


def _parse(text):
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"activation={text!r} is empty; give a name such as 'erf' or a "
                         f"formula in z")
    return _parse_cached(text)


@functools.lru_cache(maxsize=256)
def _parse_cached(text):
    from .moments import KNOWN_ACTIVATIONS, _named
    if text.strip() in KNOWN_ACTIVATIONS:
        return _named(text.strip())
    expr = parse_formula(text, variables={"z": Z}, params=True, name="activation")
    if Z not in expr.free_symbols:
        raise ValueError(f"activation={text!r} must be an expression in z")
    return expr


def _param_value(name, value):
    """Exact SymPy number of a parameter value: text via :func:`parse_number`, never sympify."""
    if isinstance(value, str):
        return parse_number(value, name, exact=True)
    try:
        v = as_sympy(value, name)
    except ValueError:
        raise ValueError(f"parameter {name}={value!r} is not a number") from None
    if not (isinstance(v, sp.Expr) and v.is_number):
        raise ValueError(f"parameter {name}={value!r} is not a number")
    parse_number(v, name)  # finite and real
    return v


def parse_activation(text, params=None):
    """Parse ``text`` (e.g. ``"tanh"``, ``"z + eps*z**2/2"``) with parameter values ``params``.

    A name of :data:`kernelphase.moments.KNOWN_ACTIVATIONS`, or a formula read by
    :func:`kernelphase.parse.parse_formula` (never evaluated): the variable ``z``, any
    parameter names, numbers, ``+ - * / **`` and the functions of
    :data:`kernelphase.parse.DEFAULT_FUNCTIONS`. Parameter values are numbers or text read by
    :func:`kernelphase.parse.parse_number` (``"0.25"``, ``"1/3"``; ``nan`` and ``inf`` are
    refused). What a consumer cannot do with a valid spec (a closed-form kernel of tanh, say)
    it says itself.

    Raises ``ValueError`` for text outside that grammar, parameter names that do not occur in
    the expression, and values that are not finite real numbers.

    Examples
    --------
    >>> from kernelphase.activations import parse_activation
    >>> act = parse_activation("z + eps*z**2/2", {"eps": 0.25})
    >>> act.expr
    eps*z**2/2 + z
    >>> parse_activation("tanh").expr
    tanh(z)
    """
    expr = _parse(text)
    names = {str(s) for s in expr.free_symbols} - {"z"}
    params = dict(params or {})
    for k, v in params.items():
        if k not in names:
            raise ValueError(f"parameter {k}={v!r} does not occur in activation={text!r}; "
                             f"valid names: {sorted(names) or 'none'}")
        params[k] = _param_value(k, v)
    return Activation(text, expr, tuple(sorted(params.items())))


def as_activation(activation, params=None):
    """The :class:`Activation` of a spec (returned as is), a SymPy expression in ``z``, or
    text for :func:`parse_activation`.

    Examples
    --------
    >>> import sympy as sp
    >>> from kernelphase.activations import as_activation, parse_activation
    >>> z = sp.Symbol("z")
    >>> as_activation(z**3 / 3).expr
    z**3/3
    >>> act = parse_activation("erf")
    >>> as_activation(act) is act
    True
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, sp.Basic):
        if not (isinstance(activation, sp.Expr) and Z in activation.free_symbols):
            raise ValueError(f"activation={activation!r} must be an expression in z")
        return Activation(sp.sstr(activation), activation, ())
    if not isinstance(activation, str):
        raise ValueError(f"activation={activation!r} is not a name, a formula in z, an "
                         f"Activation or a SymPy expression")
    return parse_activation(activation, params)
