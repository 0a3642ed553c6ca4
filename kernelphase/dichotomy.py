r"""Dichotomy of early and late implicit biases (Lyu, Jin, Li, Du, Lee & Hu 2023).

Closed forms of arXiv 2311.18817, as SymPy expressions:

* grokking time :math:`t_g=\frac1\lambda\ln\alpha` (Thms 3.4/3.5, 3.9/3.10) and the
  second-order lower bound of Lemma C.5 for classification;
* the diagonal linear net :math:`w=u\odot u-v\odot v` under gradient flow on
  :math:`\mathcal L+\frac\lambda2\|\theta\|^2` from :math:`u=v=a\mathbf 1`, solved in
  closed form in the integrated residual :math:`G(t)=\int_0^tX^\top r` (App. E;
  derived here and verified in the tests by differentiating);
* the generalisation bounds of App. E for the max-L1 and max-L2 margin classifiers.

Time is continuous, :math:`t=\eta\times\text{steps}`.
"""
import functools

import sympy as sp

__all__ = ["grokking_time", "grokking_time_second_order", "diagonal_net_flow",
           "l1_margin_error_bound", "l2_margin_error_bound", "SYMBOLS"]

SYMBOLS = dict(zip(("alpha", "lam", "L", "a", "t", "G", "n", "d", "k", "delta"),
                   sp.symbols("alpha lambda L a t G n d k delta", positive=True)))
SYMBOLS["G"] = sp.Symbol("G", real=True)


def grokking_time():
    r""":math:`t_g=\frac{1}{\lambda}\ln\alpha` (Lyu et al. 2023, Sec. 3.2, Thm 3.4/3.5)."""
    s = SYMBOLS
    return sp.log(s["alpha"]) / s["lam"]


def grokking_time_second_order():
    r"""Lemma C.5 lower bound on the end of the kernel regime (classification):

    .. math:: t \ge \frac1\lambda\Big(\ln\alpha-\frac1L\ln\ln\frac{\alpha^{2(L-1)}}{\lambda}\Big)
              \quad(\text{up to the constant }\Delta T/\lambda).
    """
    s = SYMBOLS
    A = s["alpha"] ** (2 * (s["L"] - 1)) / s["lam"]
    return (sp.log(s["alpha"]) - sp.log(sp.log(A)) / s["L"]) / s["lam"]


@functools.lru_cache(maxsize=None)
def diagonal_net_flow():
    r"""Closed-form gradient flow of the depth-2 diagonal net (per coordinate).

    With :math:`r_i=\partial\mathcal L/\partial f_i`, :math:`g=X^\top r` and
    :math:`G=\int_0^t g`, the flow :math:`\dot u=-(2g+\lambda)u`,
    :math:`\dot v=(2g-\lambda)v` from :math:`u=v=a` gives

    .. math:: u=a e^{-\lambda t-2G},\quad v=a e^{-\lambda t+2G},\quad
              w=-2a^2e^{-2\lambda t}\sinh(4G),\quad
              u^2+v^2=2a^2e^{-2\lambda t}\cosh(4G).

    Returns
    -------
    dict
        SymPy expressions ``u``, ``v``, ``w``, ``sq_norm`` in ``a, lambda, t, G``.
    """
    s = SYMBOLS
    a, lam, t, G = s["a"], s["lam"], s["t"], s["G"]
    u = a * sp.exp(-lam * t - 2 * G)
    v = a * sp.exp(-lam * t + 2 * G)
    return {"u": u, "v": v, "w": -2 * a**2 * sp.exp(-2 * lam * t) * sp.sinh(4 * G),
            "sq_norm": 2 * a**2 * sp.exp(-2 * lam * t) * sp.cosh(4 * G)}


def l1_margin_error_bound():
    r"""App. E, max-L1-margin classifier on :math:`\{\pm1\}^d` with a k-sparse teacher:

    .. math:: 4k\sqrt{\frac{2\log(2d)}{n}}+3\sqrt{\frac{\log(2/\delta)}{2n}} .
    """
    s = SYMBOLS
    return (4 * s["k"] * sp.sqrt(2 * sp.log(2 * s["d"]) / s["n"])
            + 3 * sp.sqrt(sp.log(2 / s["delta"]) / (2 * s["n"])))


def l2_margin_error_bound():
    r"""App. E, max-L2-margin classifier: :math:`4\sqrt{kd/n}+3\sqrt{\log(2/\delta)/(2n)}`."""
    s = SYMBOLS
    return (4 * sp.sqrt(s["k"] * s["d"] / s["n"])
            + 3 * sp.sqrt(sp.log(2 / s["delta"]) / (2 * s["n"])))
