r"""NNGP and NTK of a two-layer network in closed form.

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
"""
import sympy as sp

from ._checks import check_choice
from .activations import Activation, Z, parse_activation
from .gaussian import erf_erf_expectation, erf_prime_expectation, expect_product
from .parse import as_sympy
from .spectra import N1, N2, U

__all__ = ["nngp_kernel", "ntk_kernel", "SIGMA_W2"]

SIGMA_W2 = sp.Symbol("sigma_w2", positive=True)


def _spec(activation):
    return activation if isinstance(activation, Activation) else parse_activation(activation)


def _sigma_w2(value):
    """``sigma_w2`` as SymPy: a symbol, or a finite positive number (text is parsed, not run)."""
    s = as_sympy(value, "sigma_w2")
    if s.is_number and not (s.is_extended_real and s.is_positive and s.is_finite):
        raise ValueError(f"sigma_w2={value!r} is outside the valid range (0, inf)")
    return s


def _pair(activation, deriv, sigma_w2):
    act = _spec(activation)
    vu, vv, cv = sigma_w2 * N1, sigma_w2 * N2, sigma_w2 * U
    if act.is_erf:
        return (erf_prime_expectation if deriv else erf_erf_expectation)(vu, vv, cv)
    e = act.derivative if deriv else act.expr
    return expect_product(e, e, Z, vu, vv, cv)


def nngp_kernel(activation, sigma_w2=1):
    r""":math:`\mathbb E[\sigma(h)\sigma(h')]` as a SymPy expression in ``u, n1, n2``."""
    return sp.simplify(_pair(activation, False, _sigma_w2(sigma_w2)))


def ntk_kernel(activation, trained="first", sigma_w2=1):
    r"""Infinite-width NTK; ``trained`` is ``"first"``, ``"readout"`` or ``"both"``.

    ``activation`` is an :class:`~kernelphase.activations.Activation` or text for
    :func:`~kernelphase.activations.parse_activation`; ``sigma_w2`` a positive number, a SymPy
    symbol, or text read by :func:`kernelphase.parse.parse_formula` (never evaluated)."""
    check_choice("trained", trained, ("first", "readout", "both"))
    sigma_w2 = _sigma_w2(sigma_w2)
    first = sigma_w2 * U * _pair(activation, True, sigma_w2)
    if trained == "first":
        return sp.expand(first) if _spec(activation).is_polynomial else first
    readout = _pair(activation, False, sigma_w2)
    out = readout if trained == "readout" else first + readout
    return sp.expand(out) if _spec(activation).is_polynomial else out
