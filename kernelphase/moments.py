r"""Gaussian derivative moments :math:`m_k(v)=\mathbb E_{h\sim\mathcal N(0,v)}[\sigma^{(k)}(h)]`.

They are all a single-index theory needs of the activation: by Stein's lemma, for
:math:`z=w^*\cdot x\sim\mathcal N(0,1)` and :math:`h=w\cdot x` with :math:`\mathrm{Cov}(z,h)=\Phi`,

.. math:: \mathbb E[\mathrm{He}_k(z)\,\sigma(h)] = \Phi^k\,m_k(|w|^2),

and the heat equation :math:`\partial_v m_k(v)=\tfrac12 m_{k+2}(v)` gives every derivative in
:math:`v` (source: theory/adaptive_kernel.md, Sec. 12 [derived], and Sec. 4.2 for erf).
Conventions: probabilists' Hermite polynomials, :math:`v` is the pre-activation variance as
it is (no hidden :math:`1/d`).

Closed forms (exact SymPy expressions in ``v``, compiled by :mod:`kernelphase.codegen`)
exist for finite linear combinations of

* polynomials in ``z`` (Wick: :math:`\mathbb E[h^{2j}]=(2j-1)!!\,v^j`),
* ``erf(a*z)``: :math:`m_k=a^k\,m_k^{\mathrm{erf}}(a^2v)`, with
  :math:`m_k^{\mathrm{erf}}` from :func:`kernelphase.gaussian.erf_hermite_expectation`,
  e.g. :math:`m_1=\tfrac2{\sqrt\pi}(1+2v)^{-1/2}`, :math:`m_3=-\tfrac4{\sqrt\pi}(1+2v)^{-3/2}`,
* ``sin(a*z)``, ``cos(a*z)``: :math:`m_k=a^k\sin(k\pi/2)e^{-a^2v/2}` and
  :math:`a^k\cos(k\pi/2)e^{-a^2v/2}`,
* ``Max(0, z)`` (ReLU): :math:`m_0=\sqrt{v/2\pi}`, :math:`m_1=\tfrac12` and, since
  :math:`\sigma''=\delta`, :math:`m_k=\mathbb E[\delta^{(k-2)}(h)]=(-1)^{k}p_v^{(k-2)}(0)
  =\mathrm{He}_{k-2}(0)\,v^{-(k-2)/2}/\sqrt{2\pi v}` for :math:`k\ge2`
  (:math:`p_v` the :math:`\mathcal N(0,v)` density; so :math:`m_2=1/\sqrt{2\pi v}`,
  :math:`m_3=0`, :math:`m_4=-v^{-3/2}/\sqrt{2\pi}`).

Any other SymPy-differentiable activation (``tanh``, ``sigmoid``, ``softplus``, ...) uses a
trapezoidal rule in :math:`h` (exponentially accurate for analytic integrands): step
:math:`\Delta h=\min(0.2,\sqrt v/4)` over :math:`|h|\le 9\sqrt v`, cut at :math:`|h|\le 60`
for derivatives that vanish there; :math:`\sigma^{(k)}` are SymPy derivatives compiled by
codegen. The step resolves singularities at distance :math:`\ge\pi/2` from the real axis
(tanh), to about 1e-13; near :math:`v=10^4` and beyond, non-decaying derivatives are capped
at 20001 nodes and lose accuracy.

Examples
--------
>>> import sympy as sp
>>> from kernelphase.activations import Z
>>> moment_exprs(sp.erf(Z), 3)[1]
2/(sqrt(pi)*sqrt(2*v + 1))
>>> moment_method(sp.tanh(Z))
'quadrature'
"""
import functools
import math
import os
import sys

import numpy as np

__all__ = ["V", "activation_expr", "moment_exprs", "moment_method", "moments_function",
           "moments_vector",
           "moments", "derivative_exprs", "KNOWN_ACTIVATIONS", "is_sublinear"]

#: Names accepted as activation strings besides polynomials in ``z``.
KNOWN_ACTIVATIONS = ("erf", "tanh", "sin", "cos", "relu", "sigmoid", "softplus", "gelu", "silu")

_FUNCS = ("erf", "tanh", "sin", "cos", "exp", "log", "sqrt", "Max", "Abs", "cosh", "sinh",
          "erfc", "atan")


def __getattr__(name):
    if name == "V":
        import sympy as sp
        return sp.Symbol("v", positive=True)
    raise AttributeError(f"module 'kernelphase.moments' has no attribute {name!r}")


@functools.lru_cache(maxsize=None)
def _named(name):
    import sympy as sp
    from .activations import Z
    table = {"erf": sp.erf(Z), "tanh": sp.tanh(Z), "sin": sp.sin(Z), "cos": sp.cos(Z),
             "relu": sp.Max(0, Z), "sigmoid": 1 / (1 + sp.exp(-Z)),
             "softplus": sp.log(1 + sp.exp(Z)), "gelu": Z * (1 + sp.erf(Z / sp.sqrt(2))) / 2,
             "silu": Z / (1 + sp.exp(-Z))}
    return table[name]


def activation_expr(activation):
    """SymPy expression in ``z`` of an activation given by name, text, spec or expression
    (:func:`kernelphase.activations.as_activation`; parameters must have numeric values).

    The Gaussian moments below handle numbers and the functions erf, tanh, sin, cos, exp, log,
    sqrt, Max, Abs, cosh, sinh, erfc, atan of ``z``.

    Examples
    --------
    >>> from kernelphase.moments import activation_expr
    >>> activation_expr("erf"), activation_expr("z + z**3/3")
    (erf(z), z**3/3 + z)
    """
    import sympy as sp
    from .activations import Z, as_activation
    expr = as_activation(activation).substituted()
    if not isinstance(expr, sp.Expr) or Z not in expr.free_symbols:
        raise ValueError(f"activation={activation!r} must be an expression in z")
    extra = sorted(str(s) for s in expr.free_symbols - {Z})
    if extra:
        raise ValueError(f"activation={activation!r} has unset parameters {extra}; substitute "
                         f"numbers for them")
    for f in expr.atoms(sp.Function):
        fname = type(f).__name__
        if fname not in _FUNCS:
            raise ValueError(f"activation={activation!r} uses the unknown function {fname!r}; "
                             f"valid functions: {', '.join(_FUNCS)}")
    return expr


def _linear_arg(arg):
    """Return a if arg == a*z with a a nonzero real number, else None."""
    import sympy as sp
    from .activations import Z
    a = sp.simplify(arg / Z)
    return a if (a.is_number and a.is_real and a != 0) else None


def _term_moments(term, kmax, v):
    """Closed-form m_0..m_kmax of one additive term (numeric coefficient times a base)."""
    import sympy as sp
    from .activations import Z
    from .gaussian import erf_hermite_expectation
    coef, base = term.as_coeff_Mul()
    if Z not in base.free_symbols:
        return [coef * base] + [sp.Integer(0)] * kmax
    if base.is_polynomial(Z):
        p = sp.Poly(sp.expand(base), Z)
        out = []
        for k in range(kmax + 1):
            q = p.diff((Z, k)) if k else p
            out.append(coef * sum((c * sp.factorial2(j - 1) * v ** (j // 2)
                                   for (j,), c in q.terms() if j % 2 == 0), sp.Integer(0)))
        return out
    if base.func in (sp.erf, sp.sin, sp.cos):
        a = _linear_arg(base.args[0])
        if a is None:
            return None
        if base.func is sp.erf:
            return [coef * a ** k * erf_hermite_expectation(k, a ** 2 * v, 1)
                    for k in range(kmax + 1)]
        phase = sp.sin if base.func is sp.sin else sp.cos
        return [coef * a ** k * phase(k * sp.pi / 2) * sp.exp(-a ** 2 * v / 2)
                for k in range(kmax + 1)]
    if base == sp.Max(0, Z):
        out = [coef * sp.sqrt(v / (2 * sp.pi)), coef / 2]
        for k in range(2, kmax + 1):
            out.append(coef * sp.hermite_prob(k - 2, 0) * v ** sp.Rational(-(k - 2), 2)
                       / sp.sqrt(2 * sp.pi * v))
        return out[:kmax + 1]
    return None


@functools.lru_cache(maxsize=128)
def moment_exprs(activation, kmax):
    r"""Closed forms of :math:`m_0(v),\dots,m_{k_{\max}}(v)` as SymPy expressions in ``v``.

    Returns ``None`` when the activation has no closed form here (then
    :func:`moments_function` integrates numerically). See the module docstring for the
    formulas; sums of supported terms are handled term by term (moments are linear in
    :math:`\sigma`).
    """
    import sympy as sp
    from .activations import Z
    expr = activation_expr(activation)
    v = sp.Symbol("v", positive=True)
    total = [sp.Integer(0)] * (kmax + 1)
    poly_part = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr, deep=False)):
        if term.is_polynomial(Z):
            poly_part += term
            continue
        ms = _term_moments(term, kmax, v)
        if ms is None:
            return None
        total = [t + m for t, m in zip(total, ms)]
    if poly_part != 0:
        total = [t + m for t, m in zip(total, _term_moments(sp.expand(poly_part), kmax, v))]
    return tuple(sp.simplify(t) for t in total)


def moment_method(activation):
    """``'closed form'`` or ``'quadrature'``: how :func:`moments_function` evaluates m_k.

    Examples
    --------
    >>> from kernelphase.moments import moment_method
    >>> moment_method("erf"), moment_method("tanh")
    ('closed form', 'quadrature')
    """
    return "closed form" if moment_exprs(activation, 2) is not None else "quadrature"


@functools.lru_cache(maxsize=128)
def derivative_exprs(activation, kmax):
    r""":math:`(\sigma,\sigma',\dots,\sigma^{(k_{\max})})` as SymPy expressions in ``z``."""
    import sympy as sp
    from .activations import Z
    expr = activation_expr(activation)
    out = [expr]
    for _ in range(kmax):
        out.append(sp.diff(out[-1], Z))
    return tuple(out)


_H_CUT = 60.0
_MAX_NODES = 20001


#: largest variance at which the moments are checked to exist (the solvers' window,
#: |Phi| <= 50, reaches sigma_w^2 + 2500)
V_CHECK = 2600.0


def _check_gaussian_moments(activation, dsig):
    r"""Refuse an activation without finite Gaussian moments where the solvers need them:
    :math:`\sigma` and its derivatives finite on :math:`[-10, 10]`, and the integrand
    :math:`|\sigma(h)|e^{-h^2/2v}` negligible (below :math:`10^{-12}` of its peak) at the
    quadrature's cut :math:`|h|=9\sqrt v` for :math:`v=1` and :data:`V_CHECK` (an activation
    growing like :math:`e^{cz^2}` or faster has no such moments)."""
    for z in np.linspace(-10.0, 10.0, 81):
        try:
            vals = np.asarray(dsig(z), dtype=float)
        except (ZeroDivisionError, OverflowError, ValueError):
            vals = np.array([np.nan])
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"activation={activation!r} is not finite at z={z:g}: it has no "
                             f"Gaussian moments")
    for v in (1.0, V_CHECK):
        sv = math.sqrt(v)
        hs = np.linspace(-9.0 * sv, 9.0 * sv, 1801)
        with np.errstate(over="ignore", invalid="ignore"):
            w = np.array([abs(float(dsig(h)[0])) for h in hs]) * np.exp(-0.5 * hs * hs / v)
        tail = max(w[0], w[-1])
        if not (np.all(np.isfinite(w)) and tail <= 1e-12 * max(np.max(w), 1e-300)):
            raise ValueError(f"activation={activation!r} has no finite Gaussian moments at "
                             f"variance {v:g} (|sigma(h)| exp(-h^2/2v) does not decay by "
                             f"|h| = 9 sqrt(v)); the solvers need variances up to {V_CHECK:g}")


def _quadrature_header(activation, kmax, dsig):
    """Header defining ``dsig, NK, DECAYS, ZERO`` for the quadrature template; ``dsig`` the
    compiled derivatives of :func:`derivative_exprs`."""
    import sympy as sp
    from .activations import Z
    ders = derivative_exprs(activation, kmax)
    _check_gaussian_moments(activation, dsig)
    # which derivatives vanish beyond |h| = _H_CUT (then the integral is cut there), and
    # which are odd in z (their moments are exactly 0)
    decays = tuple(all(abs(float(sp.N(d.subs(Z, s * _H_CUT)))) < 1e-20 for s in (-1, 1))
                   for d in ders)
    zero = tuple(bool(sp.simplify(d.subs(Z, -Z) + d) == 0) for d in ders)
    return "\n".join([f"from {dsig.__module__} import derivatives as dsig",
                      f"NK = {kmax + 1}", f"DECAYS = {decays!r}", f"ZERO = {zero!r}",
                      f"H_CUT = {_H_CUT!r}", f"MAX_NODES = {_MAX_NODES}"])


@functools.lru_cache(maxsize=128)
def moments_header(activation, kmax):
    r"""Source lines that define ``mfun`` (:math:`v\mapsto m_0(v),\dots,m_{k_{\max}}(v)`) and
    ``NK`` for a kernel template (see :func:`kernelphase.codegen.specialised_module`)."""
    fn = moments_function(activation, kmax)
    return f"from {fn.__module__} import {fn.__name__} as mfun\nNK = {kmax + 1}"


@functools.lru_cache(maxsize=128)
def moments_function(activation, kmax):
    r"""numba-callable :math:`v\mapsto(m_0(v),\dots,m_{k_{\max}}(v))`.

    Closed forms are compiled by :func:`kernelphase.codegen.numba_function` (cached on disk,
    returns a tuple); otherwise a compiled quadrature (returns an array). Both index as
    ``m(v)[k]`` inside ``@njit`` code.

    Parameters
    ----------
    activation : str, Activation or sympy.Expr
        See :func:`activation_expr`.
    kmax : int
        Highest derivative order, ``0 <= kmax <= 16``.
    """
    import sympy as sp
    from ._checks import check_int
    from .activations import Z
    from .codegen import memoised_text, numba_function, specialised_module
    kmax = check_int("kmax", kmax, 0, 16)
    expr = activation_expr(activation)
    recipe = (sp.srepr(expr), str(kmax), _source())
    method = memoised_text(("moment_method",) + recipe,
                           lambda: "closed" if moment_exprs(expr, kmax) is not None else "quad")
    if method == "closed":
        # constants as Floats, so that the compiled function returns a homogeneous float tuple
        exprs = lambda: tuple(sp.Float(e, 20) if e.is_number else e
                              for e in moment_exprs(expr, kmax))
        return numba_function(exprs, (sp.Symbol("v", positive=True),), name="moments",
                              recipe=recipe)
    dsig = numba_function(lambda: derivative_exprs(expr, kmax), (Z,), name="derivatives",
                          recipe=recipe)
    header = memoised_text(("quadrature_header",) + recipe,
                           lambda: _quadrature_header(expr, kmax, dsig))
    template = os.path.join(os.path.dirname(__file__), "_moment_quadrature.py")
    return specialised_module(template, header).mfun


def _source():
    """Hash of the code the moments are derived by (part of every memoisation recipe)."""
    from . import activations, codegen, gaussian
    from .codegen import source_hash
    return source_hash(sys.modules[__name__], gaussian, activations, codegen)


@functools.lru_cache(maxsize=128)
def moments_vector(activation, kmax=12):
    r"""First-class numba function :math:`v\mapsto(m_0(v),\dots,m_{12}(v))` (a float64
    vector of length 13, zero above ``kmax``), for kernels compiled once for every activation
    (see :mod:`kernelphase.solvers._single_index_kernels`)."""
    from ._checks import check_int
    from .codegen import specialised_module
    kmax = check_int("kmax", kmax, 0, 12)
    template = os.path.join(os.path.dirname(__file__), "_moments_vector.py")
    return specialised_module(template, moments_header(activation, kmax)).moments_vector


def moments(activation, v, kmax):
    """:math:`m_0(v),\\dots,m_{k_{\\max}}(v)` as a numpy array (``v > 0``).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.moments import moments
    >>> np.round(moments("z + z**2/2", 2.0, 3), 10)
    array([1., 1., 1., 0.])
    >>> m = moments("erf", 0.5, 1)
    >>> round(m[1], 10) == round(2 / np.sqrt(np.pi * (1 + 2 * 0.5)), 10)
    True
    """
    from ._checks import check_positive
    v = check_positive("v", v)
    return np.asarray(moments_function(activation, kmax)(v), dtype=float)


@functools.lru_cache(maxsize=128)
def is_sublinear(activation):
    r"""True if :math:`\sigma(z)/z\to0` as :math:`z\to\pm\infty` (SymPy limits).

    Then :math:`|\Phi^km_k(\sigma_w^2+\Phi^2)|=|\mathbb E[\mathrm{He}_k(z)\sigma(h)]|\le
    \sqrt{k!\,\mathbb E[\sigma(h)^2]}=o(\Phi)`, so every single-index action is bounded below
    (the prior :math:`\Phi^2/2\sigma_w^2` wins). ``False`` when a limit cannot be decided.
    """
    import sympy as sp
    from .activations import Z
    from .codegen import memoised_text
    expr = activation_expr(activation)

    def decide():
        try:
            return str(all(sp.limit(expr / Z, Z, s * sp.oo) == 0 for s in (1, -1)))
        except Exception:  # sympy cannot decide: treat as growing (the far check then runs)
            return "False"
    return memoised_text(("is_sublinear", sp.srepr(expr), _source()), decide) == "True"
