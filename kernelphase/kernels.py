r"""NNGP and NTK of a two-layer network: closed forms, and numeric kernels on data arrays.

Parameterisation (stated once, used everywhere): :math:`f(x)=\frac1{\sqrt N}\sum_i a_i\,
\sigma(w_i\cdot x)` with :math:`w_i\sim\mathcal N(0,\sigma_w^2I)` and :math:`a_i\sim\mathcal N(0,1)`,
or with fixed unit readouts and the :math:`1/N` mean-field normalisation of Kumar et al.; in
both cases the infinite-width kernels are expectations over one neuron,
:math:`(h,h')=(w\cdot x,w\cdot x')` centred Gaussian with :math:`\Sigma_{hh}=\sigma_w^2n_1`,
:math:`\Sigma_{h'h'}=\sigma_w^2n_2`, :math:`\Sigma_{hh'}=\sigma_w^2u`
(:math:`u=x\cdot x'`, :math:`n_1=|x|^2`, :math:`n_2=|x'|^2`):

.. math:: K_{\rm NNGP}=\mathbb E[\sigma(h)\sigma(h')],\qquad
          K_{\rm NTK}^{\rm first}=\sigma_w^2\,u\,\mathbb E[\sigma'(h)\sigma'(h')],\qquad
          K_{\rm NTK}^{\rm readout}=K_{\rm NNGP},\qquad K^{\rm both}_{\rm NTK}=\text{sum}.

(The first-layer NTK carries :math:`\sigma_w^2` when the weights are written as
:math:`\sigma_w\tilde w`, :math:`\tilde w\sim\mathcal N(0,I)`, and trained in :math:`\tilde w`.)
For Kumar et al.'s model (:math:`\sigma_w^2=1`, unit readouts, first layer trained) and
:math:`\sigma(z)=z+\epsilon z^2/2` this gives :math:`u+\epsilon^2u^2`.

Closed forms (:func:`nngp_kernel`, :func:`ntk_kernel`, SymPy in ``u, n1, n2``) exist for
polynomials (Wick), :math:`k\,\mathrm{erf}(az)` (Williams 1997) and :math:`k\max(0,az)`
(arc-cosine kernels of order 1 and 0, Cho & Saul 2009). For any other activation (tanh, sin,
softplus, ...) they raise ``NotImplementedError`` and :func:`kernel_function` gives the kernel
numerically, by quadrature; :func:`kernel_function` is the one numeric entry for all of them,
a vectorised ``k(x1, x2)`` -> Gram matrix in the manner of neural-tangents' ``kernel_fn``.
"""
import functools
import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ._checks import check_choice, check_int
from .activations import Activation, Z, as_activation
from .gaussian import (erf_erf_expectation, erf_prime_expectation, expect_product,
                       relu_relu_expectation, step_step_expectation)
from .printing import latex
from .parse import as_sympy, parse_number
from .spectra import N1, N2, U

__all__ = ["nngp_kernel", "ntk_kernel", "kernel_function", "KernelFunction",
           "has_closed_form", "SIGMA_W2", "QUADRATURE_CUTOFF"]

SIGMA_W2 = sp.Symbol("sigma_w2", positive=True)

#: Gaussian coordinates are integrated over ``|z| <= QUADRATURE_CUTOFF`` (tail mass 1.5e-23).
QUADRATURE_CUTOFF = 10.0

# closed-form pairs g -> (E[g(u) g(v)], E[g'(u) g'(v)]) as functions of (var_u, var_v, cov)
_CLOSED = {"erf": (erf_erf_expectation, erf_prime_expectation),
           "relu": (relu_relu_expectation, step_step_expectation)}


def _sigma_w2(value):
    """``sigma_w2`` as SymPy: a symbol, or a finite positive number (text is parsed, not run)."""
    s = as_sympy(value, "sigma_w2")
    if s.is_number and not (s.is_extended_real and s.is_positive and s.is_finite):
        raise ValueError(f"sigma_w2={value!r} is outside the valid range (0, inf)")
    return s


def _closed_family(expr):
    """``(name, k, a)`` if ``expr`` is :math:`k\\,g(az)` with ``g`` in ``_CLOSED``, else None."""
    funcs = [f for f in expr.atoms(sp.Function, sp.Max) if Z in f.free_symbols]
    if len(funcs) != 1:
        return None
    f = funcs[0]
    if isinstance(f, sp.erf):
        name, arg = "erf", f.args[0]
    elif isinstance(f, sp.Max) and len(f.args) == 2 and 0 in f.args:
        name, arg = "relu", next(a for a in f.args if a != 0)
    else:
        return None
    k, a = sp.simplify(expr / f), sp.simplify(arg / Z)
    if Z in k.free_symbols or Z in a.free_symbols or a == 0:
        return None
    return name, k, a


def has_closed_form(activation):
    """True if :func:`nngp_kernel` and :func:`ntk_kernel` have a closed form for ``activation``:
    a polynomial in ``z``, :math:`k\\,\\mathrm{erf}(az)` or :math:`k\\max(0,az)`.

    Examples
    --------
    >>> from kernelphase.kernels import has_closed_form
    >>> has_closed_form("relu"), has_closed_form("2*erf(3*z)"), has_closed_form("tanh")
    (True, True, False)
    """
    expr = as_activation(activation).expr
    return bool(expr.is_polynomial(Z)) or _closed_family(expr) is not None


def _pair(activation, deriv, sigma_w2):
    r""":math:`\mathbb E[\sigma(h)\sigma(h')]` (or of :math:`\sigma'`) in closed form.

    For :math:`\sigma=k\,g(az)`: :math:`k^2\,G(a^2\Sigma)` and :math:`k^2a^2\,G'(a^2\Sigma)`, with
    :math:`G, G'` the pair expectations of ``g`` and ``g'`` (ReLU is even under
    :math:`(h,h')\to(-h,-h')`, so any real :math:`a\ne0` works)."""
    act = as_activation(activation)
    vu, vv, cv = sigma_w2 * N1, sigma_w2 * N2, sigma_w2 * U
    if act.is_polynomial:
        e = act.derivative if deriv else act.expr
        return expect_product(e, e, Z, vu, vv, cv)
    fam = _closed_family(act.expr)
    if fam is None:
        raise NotImplementedError(
            f"activation={act.text!r} has no closed-form kernel (closed: polynomials, "
            f"k*erf(a*z), k*relu(a*z)); use kernel_function({act.text!r}, ...) for the "
            f"numeric kernel by quadrature")
    name, k, a = fam
    G = _CLOSED[name][1 if deriv else 0]
    return k ** 2 * (a ** 2 if deriv else 1) * G(a ** 2 * vu, a ** 2 * vv, a ** 2 * cv)


def nngp_kernel(activation, sigma_w2=1):
    r"""NNGP kernel :math:`\mathbb E[\sigma(h)\sigma(h')]` as a SymPy expression in ``u, n1, n2``.

    For :math:`\sigma=\max(0,z)` this is the order-1 arc-cosine kernel
    :math:`\frac{\sigma_w^2}{2\pi}\big(\sqrt{n_1n_2-u^2}+(\pi-\arccos\frac{u}{\sqrt{n_1n_2}})u\big)`
    (Cho & Saul 2009, Eq. 6); for erf, :math:`\frac2\pi\arcsin\frac{2\sigma_w^2u}
    {\sqrt{(1+2\sigma_w^2n_1)(1+2\sigma_w^2n_2)}}` (Williams 1997).

    Raises ``NotImplementedError`` for activations without a closed form (see
    :func:`kernel_function` for those).

    Examples
    --------
    >>> nngp_kernel("relu").subs({U: 1, N1: 1, N2: 1})
    1/2
    """
    return sp.simplify(_pair(activation, False, _sigma_w2(sigma_w2)))


def ntk_kernel(activation, trained="first", sigma_w2=1):
    r"""Infinite-width NTK; ``trained`` is ``"first"``, ``"readout"`` or ``"both"``.

    .. math:: K^{\rm first}_{\rm NTK}=\sigma_w^2\,u\,\mathbb E[\sigma'(h)\sigma'(h')];
              \quad\text{ReLU: } \sigma_w^2\,u\,\frac{\pi-\arccos(u/\sqrt{n_1n_2})}{2\pi}

    (order-0 arc-cosine kernel, Cho & Saul 2009, Eq. 6; Jacot et al. 2018, Sec. 4).
    ``activation`` is anything :func:`~kernelphase.activations.as_activation` accepts; ``sigma_w2`` a positive number,
    a SymPy symbol, or text read by :func:`kernelphase.parse.parse_formula` (never evaluated).
    Raises ``NotImplementedError`` without a closed form (use :func:`kernel_function`).

    Examples
    --------
    >>> ntk_kernel("z + eps*z**2/2")
    eps**2*u**2 + u
    """
    check_choice("trained", trained, ("first", "readout", "both"))
    sigma_w2 = _sigma_w2(sigma_w2)
    poly = as_activation(activation).is_polynomial
    out = 0
    if trained in ("first", "both"):
        out += sigma_w2 * U * _pair(activation, True, sigma_w2)
    if trained in ("readout", "both"):
        out += _pair(activation, False, sigma_w2)
    return sp.expand(out) if poly else out


# ---------------------------------------------------------------------------- numeric kernels

def _real_derivative(expr):
    """:math:`\\sigma'` with ``z`` taken real (so ``Abs'`` is ``sign``, ``Max'`` is Heaviside)."""
    zr = sp.Symbol("z_real", real=True)
    return sp.diff(expr.subs(Z, zr), zr).subs(zr, Z)


def _clamped(expr):
    """Guard compiled closed forms against rounding at :math:`|u|=\\sqrt{n_1n_2}`: arguments of
    acos/asin clamped to [-1, 1], radicands to >= 0 (exact where the input is valid)."""
    clamp = lambda x: sp.Min(1, sp.Max(-1, x))  # noqa: E731
    expr = expr.replace(sp.acos, lambda x: sp.acos(clamp(x)))
    expr = expr.replace(sp.asin, lambda x: sp.asin(clamp(x)))
    return expr.replace(lambda e: e.is_Pow and e.exp in (sp.S.Half, -sp.S.Half),
                        lambda e: sp.Pow(sp.Max(0, e.base), e.exp))


@functools.lru_cache(maxsize=None)
def _numba_core():
    """The two Gram loops, compiled once and cached on disk.

    They take compiled functions as arguments through numba's first-class function type
    (a fixed signature, so unlike a Dispatcher argument it does not defeat ``cache=True``)."""
    from numba import njit, types
    f8, a8 = types.float64, types.float64[::1]
    F1 = types.FunctionType(f8(f8))
    F3 = types.FunctionType(f8(f8, f8, f8))

    # Each loop is self-contained (no call of another jitted closure): a closure variable would
    # give every process a new cache entry. rho = u / sqrt(n1 n2) is clipped to [-1, 1] (0 if
    # x or x' is 0): the kernels are non-smooth at |rho| = 1 (arc-cosine), so both routes take
    # the clipped cosine, and sqrt(1 - rho^2), acos(rho) are exactly 0 there, not noise ~1e-8.
    @njit(types.void(F3, a8, a8, a8, a8), cache=True)
    def closed_grid(k, u, n1, n2, out):
        for i in range(u.size):
            lim = math.sqrt(n1[i] * n2[i])
            rho = min(max(u[i] / lim, -1.0), 1.0) if lim > 0 else 0.0
            out[i] = k(rho, n1[i], n2[i])

    @njit(types.void(F1, f8, a8, a8, a8, a8, a8, f8, a8), cache=True)
    def quad_grid(f, sw2, u, n1, n2, t, w, L, out):
        # E[f(h1) f(h2)]: h1 = s1 z1, h2 = a z1 + b z2 with z1, z2 iid N(0, 1), a = s2 rho,
        # b = s2 sqrt(1 - rho^2); each axis split at the kink of f (h = 0) and integrated by
        # Gauss-Legendre on [-L, 0] and [0, L]
        norm = 1.0 / math.sqrt(2 * math.pi)
        for i in range(u.size):
            lim = math.sqrt(n1[i] * n2[i])
            rho = min(max(u[i] / lim, -1.0), 1.0) if lim > 0 else 0.0
            s1, s2 = math.sqrt(sw2 * n1[i]), math.sqrt(sw2 * n2[i])
            a, b = s2 * rho, s2 * math.sqrt(max(1.0 - rho * rho, 0.0))
            total = 0.0
            for half in range(2):
                lo, hi = (-L, 0.0) if half == 0 else (0.0, L)
                for p in range(t.size):
                    z1 = 0.5 * (lo + hi) + 0.5 * (hi - lo) * t[p]
                    w1 = 0.5 * (hi - lo) * w[p] * norm * math.exp(-0.5 * z1 * z1)
                    f1 = f(s1 * z1)
                    if f1 == 0.0:
                        continue
                    if b == 0.0:
                        total += w1 * f1 * f(a * z1)
                        continue
                    kink = min(max(-a * z1 / b, -L), L)
                    inner = 0.0
                    for side in range(2):
                        lo2, hi2 = (-L, kink) if side == 0 else (kink, L)
                        for q in range(t.size):
                            z2 = 0.5 * (lo2 + hi2) + 0.5 * (hi2 - lo2) * t[q]
                            inner += (0.5 * (hi2 - lo2) * w[q] * norm * math.exp(-0.5 * z2 * z2)
                                      * f(a * z1 + b * z2))
                    total += w1 * f1 * inner
            out[i] = total

    return closed_grid, quad_grid


@dataclass(frozen=True)
class KernelFunction:
    r"""A numeric NNGP/NTK, ``k(x1, x2)`` -> Gram matrix, like neural-tangents' ``kernel_fn``.

    Built by :func:`kernel_function`. ``method`` is ``"closed"`` (the SymPy closed form
    ``expr``, compiled by :mod:`kernelphase.codegen`) or ``"quadrature"`` (``expr`` is None:
    no closed form, or asked for). Quadrature: with :math:`h=s_1z_1`,
    :math:`h'=az_1+bz_2` (Cholesky factor of the covariance), the iterated integral over
    :math:`z_1,z_2\sim\mathcal N(0,1)` by Gauss-Legendre with ``nodes`` points on each side of
    the activation's kink (:math:`h=0`, resp. :math:`h'=0`), over
    :math:`|z|\le` :data:`QUADRATURE_CUTOFF`. Plain Gauss-Hermite converges only algebraically
    at a kink (1e-3 for ReLU with 64x64 nodes); the split rule reaches 1e-14 with 32 per side.

    Conditioning: at :math:`|\rho|=1` (:math:`\rho=u/\sqrt{n_1n_2}`) the ReLU kernels are
    non-smooth, :math:`\pi-\theta\approx\sqrt{2(1+\rho)}`, so a rounding of 1e-16 in
    :math:`u` moves them by ~1e-8 by either route. ``k(x)`` takes the norms from the Gram's own
    diagonal, so :math:`\rho=\pm1` is exact for :math:`x'=\pm x` there.
    """
    activation: str
    kind: str
    trained: str
    sigma_w2: float
    method: str
    expr: object = None
    nodes: int = 40
    _fns: tuple = field(default=(), repr=False, compare=False)

    def evaluate(self, u, n1, n2):
        """Kernel at :math:`u=x\\cdot x'`, :math:`n_1=|x|^2`, :math:`n_2=|x'|^2` (broadcast
        arrays; :math:`|u|` is clipped to :math:`\\sqrt{n_1n_2}`, Cauchy-Schwarz)."""
        u, n1, n2 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (u, n1, n2)))
        shape = u.shape
        u, n1, n2 = (np.ascontiguousarray(a).ravel() for a in (u, n1, n2))
        if np.any(n1 < 0) or np.any(n2 < 0) or not np.all(np.isfinite(u + n1 + n2)):
            raise ValueError("n1, n2 must be finite and >= 0 and u finite")
        closed_grid, quad_grid = _numba_core()
        out = np.empty(u.size)
        if self.method == "closed":
            closed_grid(self._fns[0], u, n1, n2, out)
            return out.reshape(shape)
        t, w = np.polynomial.legendre.leggauss(self.nodes)
        total = np.zeros(u.size)
        f, df = self._fns
        if self.kind == "nngp" or self.trained in ("readout", "both"):
            quad_grid(f, self.sigma_w2, u, n1, n2, t, w, QUADRATURE_CUTOFF, out)
            total += out
        if self.kind == "ntk" and self.trained in ("first", "both"):
            quad_grid(df, self.sigma_w2, u, n1, n2, t, w, QUADRATURE_CUTOFF, out)
            total += self.sigma_w2 * u * out
        return total.reshape(shape)

    def __call__(self, x1, x2=None):
        """Gram matrix of shape ``(n1, n2)`` for data arrays ``x1 (n1, D)``, ``x2 (n2, D)``
        (``x2=None``: ``x1`` with itself)."""
        x1 = np.atleast_2d(np.asarray(x1, dtype=float))
        x2 = x1 if x2 is None else np.atleast_2d(np.asarray(x2, dtype=float))
        if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
            raise ValueError(f"x1 of shape {x1.shape} and x2 of shape {x2.shape} must be 2-D "
                             f"with the same number of columns")
        u = x1 @ x2.T
        if x2 is not x1:
            sq1, sq2 = np.einsum("ij,ij->i", x1, x1), np.einsum("ij,ij->i", x2, x2)
            return self.evaluate(u, sq1[:, None], sq2[None, :])
        # one triangle, norms from the Gram's own diagonal (rho = 1 exactly at x = x')
        i, j = np.triu_indices(len(x1))
        sq = np.diag(u)
        out = np.empty_like(u)
        out[i, j] = out[j, i] = self.evaluate(u[i, j], sq[i], sq[j])
        return out

    def _repr_latex_(self):
        if self.expr is None:
            return None
        return f"$K_{{\\rm {self.kind.upper()}}} = {latex(self.expr)}$"


def kernel_function(activation, kind="nngp", trained="first", sigma_w2=1, params=None,
                    method=None, nodes=40):
    r"""A vectorised numeric kernel ``k(x1, x2)`` -> Gram matrix for any activation.

    Parameters
    ----------
    activation : str, sympy.Expr or Activation
        Anything :func:`~kernelphase.activations.as_activation` accepts (``"relu"``, ``"tanh"``, ``"erf"``,
        ``"z + eps*z**2/2"``, ``"sin(2*z)"``).
    kind : {"nngp", "ntk"}
    trained : {"first", "readout", "both"}
        Which layers the NTK trains (ignored for the NNGP).
    sigma_w2 : float
        First-layer weight variance, ``> 0``.
    params : dict, optional
        Values of the activation's parameters; all must be given.
    method : {None, "closed", "quadrature"}
        ``None`` picks the closed form when there is one (:func:`has_closed_form`).
    nodes : int
        Gauss-Legendre points per half-axis of the quadrature, 8 to 400.

    Returns
    -------
    KernelFunction
        ``method`` says which was used; ``expr`` is the closed form or None.

    Examples
    --------
    >>> k = kernel_function("tanh", "nngp")
    >>> k.method, k(np.eye(2)).shape
    ('quadrature', (2, 2))
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    check_choice("trained", trained, ("first", "readout", "both"))
    check_choice("method", method, (None, "closed", "quadrature"))
    nodes = check_int("nodes", nodes, 8, 400)
    sw2 = parse_number(sigma_w2, "sigma_w2", exact=True)
    if isinstance(sw2, sp.Float):   # 0.7 -> 7/10, so sigma_w2 cancels exactly in the cosine
        near = sp.Rational(repr(float(sw2))).limit_denominator(10 ** 6)
        sw2 = near if abs(float(near) - float(sw2)) <= 1e-15 * float(sw2) else sw2
    if not sw2 > 0:
        raise ValueError(f"sigma_w2={sigma_w2!r} is outside the valid range (0, inf)")
    act = as_activation(activation, params)
    expr = act.substituted()
    unset = sorted(str(s) for s in expr.free_symbols - {Z})
    if unset:
        raise ValueError(f"activation={act.text!r} has parameters without values {unset}; "
                         f"give them (params={{{unset[0]!r}: ...}}, or --param {unset[0]}=VALUE)")
    closed = has_closed_form(act)
    if method == "closed" and not closed:
        raise ValueError(f"method='closed' is not available for activation={act.text!r} (no "
                         f"closed form); valid: None, 'quadrature'")
    method = method or ("closed" if closed else "quadrature")
    spec = Activation(act.text, expr, ())
    from .codegen import numba_function
    if method == "closed":
        K = nngp_kernel(spec, sw2) if kind == "nngp" else ntk_kernel(spec, trained, sw2)
        rho = sp.Symbol("rho", real=True)
        compiled = _clamped(K.subs(U, rho * sp.sqrt(N1 * N2)))
        fns = (numba_function(compiled, (rho, N1, N2), name="kernel"),)
        out_expr = K
    else:
        fns = (numba_function(expr, (Z,), name="sigma"),
               numba_function(_real_derivative(expr), (Z,), name="dsigma"))
        out_expr = None
    return KernelFunction(act.text, kind, trained, float(sw2), method, out_expr, nodes, fns)
