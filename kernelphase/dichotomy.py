r"""Dichotomy of early and late implicit biases (Lyu, Jin, Li, Du, Lee & Hu 2023).

Closed forms of arXiv 2311.18817, as SymPy expressions:

* grokking time :math:`t_g=\frac1\lambda\ln\alpha` (Thms 3.4/3.5, 3.9/3.10) and the
  second-order lower bound of Lemma C.5 for classification;
* the diagonal linear net :math:`w=u\odot u-v\odot v` under gradient flow on
  :math:`\mathcal L+\frac\lambda2\|\theta\|^2` from :math:`u=v=a\mathbf 1`, solved in
  closed form in the integrated residual :math:`G(t)=\int_0^tX^\top r` (App. E;
  derived here and verified in the tests by differentiating);
* the depth-L diagonal net :math:`w=u^{\odot L}-v^{\odot L}` (issue 15), reduced the same way
  (:func:`diagonal_net_flow` with ``L``), its NTK (:func:`diagonal_net_ntk`) and the late-phase
  objective :math:`\sum_k|w_k|^{2/L}` (:func:`diagonal_net_min_norm`);
* the generalisation bounds of App. E for the max-L1 and max-L2 margin classifiers.

Time is continuous, :math:`t=\eta\times\text{steps}`.
"""
import functools

import sympy as sp

__all__ = ["grokking_time", "grokking_time_second_order", "diagonal_net_flow",
           "diagonal_net_ntk", "diagonal_net_min_norm", "MAX_DEPTH", "check_depth",
           "kernel_exit_time",
           "l1_margin_error_bound", "l2_margin_error_bound", "SYMBOLS"]

SYMBOLS = dict(zip(("alpha", "lam", "L", "a", "t", "G", "n", "d", "k", "delta"),
                   sp.symbols("alpha lambda L a t G n d k delta", positive=True)))
SYMBOLS["G"] = sp.Symbol("G", real=True)


def grokking_time():
    r""":math:`t_g=\frac{1}{\lambda}\ln\alpha` (Lyu et al. 2023, Sec. 3.2, Thm 3.4/3.5).

    Examples
    --------
    >>> from kernelphase.dichotomy import grokking_time, SYMBOLS
    >>> grokking_time()
    log(alpha)/lambda
    >>> round(float(grokking_time().subs({SYMBOLS["alpha"]: 128, SYMBOLS["lam"]: 1e-3})), 2)
    4852.03
    """
    s = SYMBOLS
    return sp.log(s["alpha"]) / s["lam"]


def grokking_time_second_order():
    r"""Lemma C.5 lower bound on the end of the kernel regime (classification):

    .. math:: t \ge \frac1\lambda\Big(\ln\alpha-\frac1L\ln\ln\frac{\alpha^{2(L-1)}}{\lambda}\Big)
              \quad(\text{up to the constant }\Delta T/\lambda).

    Examples
    --------
    >>> from kernelphase.dichotomy import grokking_time_second_order
    >>> grokking_time_second_order()
    (log(alpha) - log(log(alpha**(2*L - 2)/lambda))/L)/lambda
    """
    s = SYMBOLS
    A = s["alpha"] ** (2 * (s["L"] - 1)) / s["lam"]
    return (sp.log(s["alpha"]) - sp.log(sp.log(A)) / s["L"]) / s["lam"]


#: largest depth of the diagonal nets (the flow's exponents grow like 2(L-1)/(L-2))
MAX_DEPTH = 8


def check_depth(L):
    """Return ``int(L)`` if it is an integer depth in ``[2, MAX_DEPTH]``, else raise ``ValueError``.

    Examples
    --------
    >>> from kernelphase.dichotomy import check_depth
    >>> check_depth(3.0)
    3
    >>> check_depth(1)
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    from ._checks import check_int
    return check_int("depth", L, 2, MAX_DEPTH)


@functools.lru_cache(maxsize=None)
def diagonal_net_flow(L=2):
    r"""Closed-form gradient flow of the depth-``L`` diagonal net (per coordinate).

    With :math:`r_i=\partial\mathcal L/\partial f_i`, :math:`g=X^\top r` and
    :math:`G=\int_0^t g`, the flow :math:`\dot u=-(2g+\lambda)u`,
    :math:`\dot v=(2g-\lambda)v` from :math:`u=v=a` gives

    .. math:: u=a e^{-\lambda t-2G},\quad v=a e^{-\lambda t+2G},\quad
              w=-2a^2e^{-2\lambda t}\sinh(4G),\quad
              u^2+v^2=2a^2e^{-2\lambda t}\cosh(4G).

    Depth :math:`L>2` (derived here, issue 15; verified in ``tests/test_dichotomy_depth.py`` by
    differentiating). The flow :math:`\dot u=-(Lu^{L-1}g+\lambda u)`,
    :math:`\dot v=(Lv^{L-1}g-\lambda v)`: with :math:`u=e^{-\lambda t}p`,
    :math:`\frac{d}{dt}p^{2-L}=L(L-2)e^{-(L-2)\lambda t}g`, so with the *weighted* integral
    :math:`G=\int_0^te^{-(L-2)\lambda s}g(s)\,ds` (the plain one at :math:`L=2`)

    .. math:: u=e^{-\lambda t}\big(a^{2-L}+L(L-2)G\big)^{-1/(L-2)},\quad
              v=e^{-\lambda t}\big(a^{2-L}-L(L-2)G\big)^{-1/(L-2)},

    :math:`w=u^L-v^L`, and the L = 2 formulas are the limit :math:`L\to2`. So the flow is
    again an n-dimensional ODE, :math:`G=X^\top\beta`,
    :math:`\dot\beta=e^{-(L-2)\lambda t}\,\partial\mathcal L/\partial f`; the bases stay
    positive along the flow (they vanish only if u or v diverge). ``time_weight`` is
    :math:`e^{-(L-2)\lambda t}`.

    Returns
    -------
    dict
        SymPy expressions ``u``, ``v``, ``w``, ``sq_norm`` (and, for ``L > 2``,
        ``time_weight``) in ``a, lambda, t, G``.
    """
    s = SYMBOLS
    a, lam, t, G = s["a"], s["lam"], s["t"], s["G"]
    L = check_depth(L)
    if L > 2:
        c = L * (L - 2)
        u = sp.exp(-lam * t) * (a ** (2 - L) + c * G) ** sp.Rational(-1, L - 2)
        v = sp.exp(-lam * t) * (a ** (2 - L) - c * G) ** sp.Rational(-1, L - 2)
        return {"u": u, "v": v, "w": u**L - v**L, "sq_norm": u**2 + v**2,
                "time_weight": sp.exp(-(L - 2) * lam * t)}
    u = a * sp.exp(-lam * t - 2 * G)
    v = a * sp.exp(-lam * t + 2 * G)
    return {"u": u, "v": v, "w": -2 * a**2 * sp.exp(-2 * lam * t) * sp.sinh(4 * G),
            "sq_norm": 2 * a**2 * sp.exp(-2 * lam * t) * sp.cosh(4 * G)}


def kernel_exit_time(L=2):
    r"""End of the kernel phase of the depth-L diagonal net (derived here, issue 15; a scale
    argument, not a theorem):

    .. math:: t_\times=\frac1\lambda\Big[\ln a+\frac1L\ln\frac{2L}{m\,\|w_2\|_\infty}\Big].

    Derivation. In the kernel phase :math:`x_k:=La^{L-2}G_k` is small and
    :math:`w\approx-2L^2a^{2L-2}e^{-L\lambda t}G` (:func:`diagonal_net_flow`). Fitting the
    data at margin :math:`m` (it grows only like the log of the inverse loss) with
    :math:`G=X^\top\beta` gives :math:`G=-\frac{m\,e^{L\lambda t}}{2L^2a^{2L-2}}w_2`, with
    :math:`w_2=X^\top(XX^\top)^{-1}y` the max-L2-margin solution (margin 1) when every point is
    a support vector (d >> n). The linearisation fails once :math:`\max_k|x_k|=1`, which is
    the formula. So the slope in :math:`\ln\alpha` is 1 at every depth (up to the slow
    growth of m), and the offset :math:`\lambda t_\times-\ln\alpha` is
    :math:`\ln(a/\alpha)+\frac1L\ln\frac{2L}{m\|w_2\|_\infty}`: it depends on L and
    on the normalisation of the start (``init="unit"``: :math:`\ln(a/\alpha)=-\frac12\ln 2d`,
    so the kernel phase *shortens* with depth; ``"ones"``: 0). Sparse task,
    :math:`\|w_2\|_\infty\approx n/(2d)`. Symbols: ``a``, ``lambda``, ``m`` and ``W`` for
    :math:`\|w_2\|_\infty`.

    Examples
    --------
    >>> from kernelphase.dichotomy import kernel_exit_time
    >>> kernel_exit_time(2)
    (log(a) + log(4/(W*m))/2)/lambda
    """
    L = check_depth(L)
    s = SYMBOLS
    m, W = sp.symbols("m W", positive=True)
    return (sp.log(s["a"]) + sp.log(2 * L / (m * W)) / L) / s["lam"]


def diagonal_net_ntk(L=2):
    r"""NTK of the depth-``L`` diagonal net at :math:`u=v=a\mathbf 1`, as the factor of
    :math:`\langle x,x'\rangle`.

    :math:`\nabla_uf=Lu^{L-1}\odot x`, :math:`\nabla_vf=-Lv^{L-1}\odot x`, so

    .. math:: K(x,x')=2L^2a^{2(L-1)}\langle x,x'\rangle ,

    a *uniformly* weighted linear kernel for every L (the diagonal reweighting
    :math:`u^{2(L-1)}+v^{2(L-1)}` is constant at a symmetric init). The early predictor is
    therefore the max-L2-margin classifier at every depth; only the kernel's scale, hence
    the length of the kernel phase at finite alpha, depends on L. L = 2: :math:`8a^2`.

    Examples
    --------
    >>> from kernelphase.dichotomy import diagonal_net_ntk
    >>> diagonal_net_ntk(), diagonal_net_ntk(3)
    (8*a**2, 18*a**4)
    """
    L = check_depth(L)
    return 2 * L**2 * SYMBOLS["a"] ** (2 * (L - 1))


def diagonal_net_min_norm(L=2):
    r"""Smallest :math:`u^2+v^2` with :math:`u^L-v^L=w` (one coordinate): :math:`|w|^{2/L}`.

    Attained at :math:`v=0,\ u=w^{1/L}` for :math:`w\ge0` (and mirrored): for
    :math:`u,v\ge0`, :math:`u^L=w+v^L\ge w` so :math:`u^2\ge w^{2/L}`. Hence the late-phase
    problem (R1) of the depth-L net is, in w, :math:`\min\sum_k|w_k|^{2/L}` s.t.
    :math:`y_i\langle w,x_i\rangle\ge1`: the L1 max margin at L = 2, an
    :math:`\ell_{2/L}` quasi-norm (non-convex) problem for L > 2. Returns the expression in
    a real symbol ``w``.

    Examples
    --------
    >>> from kernelphase.dichotomy import diagonal_net_min_norm
    >>> diagonal_net_min_norm(2), diagonal_net_min_norm(4)
    (Abs(w), sqrt(Abs(w)))
    """
    L = check_depth(L)
    w = sp.Symbol("w", real=True)
    return sp.Abs(w) ** sp.Rational(2, L)


def l1_margin_error_bound():
    r"""App. E, max-L1-margin classifier on :math:`\{\pm1\}^d` with a k-sparse teacher:

    .. math:: 4k\sqrt{\frac{2\log(2d)}{n}}+3\sqrt{\frac{\log(2/\delta)}{2n}} .

    Examples
    --------
    >>> from kernelphase.dichotomy import l1_margin_error_bound
    >>> l1_margin_error_bound()
    4*sqrt(2)*k*sqrt(log(2*d))/sqrt(n) + 3*sqrt(2)*sqrt(log(2/delta))/(2*sqrt(n))
    """
    s = SYMBOLS
    return (4 * s["k"] * sp.sqrt(2 * sp.log(2 * s["d"]) / s["n"])
            + 3 * sp.sqrt(sp.log(2 / s["delta"]) / (2 * s["n"])))


def l2_margin_error_bound():
    r"""App. E, max-L2-margin classifier: :math:`4\sqrt{kd/n}+3\sqrt{\log(2/\delta)/(2n)}`.

    Examples
    --------
    >>> from kernelphase.dichotomy import l2_margin_error_bound
    >>> l2_margin_error_bound()
    4*sqrt(d)*sqrt(k)/sqrt(n) + 3*sqrt(2)*sqrt(log(2/delta))/(2*sqrt(n))
    """
    s = SYMBOLS
    return (4 * sp.sqrt(s["k"] * s["d"] / s["n"])
            + 3 * sp.sqrt(sp.log(2 / s["delta"]) / (2 * s["n"])))
