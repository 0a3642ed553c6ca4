r"""Adaptive-kernel single-neuron actions (Rubin, Seroussi & Ringel 2023), derived symbolically.

General single-neuron action (Sec. 2.4.2, Eq. 7), per read-in vector :math:`w`:

.. math:: \mathcal S[w]=\frac{d|w|^2}{2\sigma_w^2}-\frac{\sigma_a^2}{2N}
          \sum_{\mu\nu}\bar t_\mu\bar t_\nu\,\phi(w\cdot x_\mu)\phi(w\cdot x_\nu).

In the equivalent-kernel limit :math:`\sum_\mu\to n\,\mathbb E_x` and with the two-mode
discrepancy of Claim I, :math:`\sigma^2\bar t=b\,\mathrm{He}_1(w^*\cdot x)+c\,\mathrm{He}_3(w^*\cdot x)`,
the interaction is :math:`-\frac{n^2\sigma_a^2}{2N\sigma^4}\big(\mathbb E[(b\mathrm{He}_1+c\mathrm{He}_3)(z)\,
\mathrm{erf}(h)]\big)^2` with :math:`z=w^*\cdot x\sim\mathcal N(0,1)`,
:math:`h=w\cdot x\sim\mathcal N(0,|w|^2)`, :math:`\mathrm{Cov}(z,h)=\Phi=w\cdot w^*`.
Norm concentration :math:`|w|^2\to\Phi^2+\sigma_w^2` (Claim II) gives
:math:`\mathcal S=d\,\hat{\mathcal S}(\Phi)`, with :math:`u=n^2\sigma_a^2/(\sigma^4dN)`.
The expectations come from :func:`kernelphase.gaussian.erf_hermite_expectation`; nothing
is typed in. The result equals App. A.2 Eqs. 7-8 (checked in the tests).
"""
import functools

import sympy as sp

from .gaussian import erf_hermite_expectation

__all__ = ["cubic_action", "cubic_kernel_entries", "modular_action", "SYMBOLS"]

SYMBOLS = {name: sp.Symbol(name, real=True) for name in ("Phi", "b", "c")}
SYMBOLS.update({name: sp.Symbol(name, positive=True) for name in ("u", "sigma_w2", "g", "gamma")})


@functools.lru_cache(maxsize=None)
def _teacher_overlaps():
    """E[He_1(z) erf(h)] and E[He_3(z) erf(h)] at |w|^2 = Phi^2 + sigma_w2."""
    s = SYMBOLS
    var = s["Phi"] ** 2 + s["sigma_w2"]
    return erf_hermite_expectation(1, var, s["Phi"]), erf_hermite_expectation(3, var, s["Phi"])


@functools.lru_cache(maxsize=None)
def cubic_action(activation="erf"):
    r"""Per-d action :math:`\hat{\mathcal S}(\Phi;u,b,c,\sigma_w^2)` of the cubic teacher.

    .. math:: \hat{\mathcal S}=\frac{\Phi^2}{2\sigma_w^2}-\frac{u}{2}\Big(b\,
              \mathbb E[\mathrm{He}_1\mathrm{erf}]+c\,\mathbb E[\mathrm{He}_3\mathrm{erf}]\Big)^2
              =\frac{\Phi^2}{2\sigma_w^2}-\frac{2u}{\pi}\frac{\Phi^2}{D}\Big(b-\frac{2c\Phi^2}{D}\Big)^2,
              \quad D=1+2(\sigma_w^2+\Phi^2).

    Source: Rubin et al. (2023), App. A.2, Eqs. 6-8. Symbols: ``Phi, u, b, c, sigma_w2``.
    """
    if activation != "erf":
        raise NotImplementedError(f"activation={activation!r}: only 'erf' is derived so far")
    s = SYMBOLS
    e1, e3 = _teacher_overlaps()
    return s["Phi"] ** 2 / (2 * s["sigma_w2"]) - s["u"] / 2 * (s["b"] * e1 + s["c"] * e3) ** 2


@functools.lru_cache(maxsize=None)
def cubic_kernel_entries():
    r"""Single-neuron kernel on span{He_1, He_3/sqrt6}, divided by :math:`\sigma_a^2` (App. A.3).

    .. math:: \hat Q=\begin{pmatrix} I_1^2 & I_1I_3/\sqrt6\\ I_1I_3/\sqrt6 & I_3^2/6\end{pmatrix},
              \quad I_k=\mathbb E[\mathrm{He}_k(z)\,\mathrm{erf}(h)],

    i.e. :math:`4\Phi^2/(\pi D)`, :math:`-8\Phi^4/(\sqrt6\pi D^2)`, :math:`8\Phi^6/(3\pi D^3)`: the
    printed (1,1) entry :math:`2q^2/(\pi D)` is a misprint (it must be :math:`I_1^2`).
    Returns the tuple (Q11, Q12, Q22).
    """
    e1, e3 = _teacher_overlaps()
    return (sp.simplify(e1 ** 2), sp.simplify(e1 * e3 / sp.sqrt(6)), sp.simplify(e3 ** 2 / 6))


@functools.lru_cache(maxsize=None)
def modular_action():
    r"""Per-mode action of the modular-addition model at :math:`\Phi=\Psi`, divided by P.

    From Eq. 16 with the sextic stabiliser :math:`\Gamma` (App. B):
    :math:`\mathcal S_k/P=\tfrac12(\Phi+\Psi)-g\Phi\Psi+\tfrac\gamma6(\Phi^3+\Psi^3)` with
    :math:`\Phi=|w_k|^2`, :math:`\Psi=|v_k|^2`, :math:`g=ua^2`; on the symmetric line

    .. math:: \mathcal S_k/P=\Phi-g\Phi^2+\frac\gamma3\Phi^3 .
    """
    s = SYMBOLS
    Phi, Psi = s["Phi"], sp.Symbol("Psi", positive=True)
    full = (Phi + Psi) / 2 - s["g"] * Phi * Psi + s["gamma"] / 6 * (Phi ** 3 + Psi ** 3)
    return sp.expand(full.subs(Psi, Phi))
