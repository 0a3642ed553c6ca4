r"""Single-index adaptive-kernel action for any activation and Hermite teacher (SymPy only).

Source: theory/adaptive_kernel.md, Sec. 12 [derived — verified in tests/test_single_index.py],
generalising Rubin, Seroussi & Ringel (2023), App. A.2 Eqs. 6-8. Student
:math:`f(x)=\sum_i a_i\sigma(w_i\cdot x)`, :math:`w\sim\mathcal N(0,\sigma_w^2/d\,I)`; teacher
:math:`y=\sum_k c_k\mathrm{He}_k(w^*\cdot x)`; discrepancy :math:`\sigma^2\bar t=\sum_kb_k\mathrm{He}_k`.
In the equivalent-kernel limit, :math:`d\to\infty`, with :math:`|w_\perp|^2\to\sigma_w^2`,
the single-neuron action is :math:`d\,\hat{\mathcal S}(\Phi)`, :math:`\Phi=w\cdot w^*`:

.. math:: \hat{\mathcal S}(\Phi)=\frac{\Phi^2}{2\sigma_w^2}-\frac u2\,g(\Phi)^2,\qquad
          g(\Phi)=\sum_{k=0}^{K}b_k\,\Phi^k\,M_k,\quad M_k=m_k(\sigma_w^2+\Phi^2),\quad
          u=\frac{n^2\sigma_a^2}{\sigma^4dN},

with :math:`m_k` from :mod:`kernelphase.moments` (Stein: :math:`\mathbb E[\mathrm{He}_k\sigma]=
\Phi^km_k`). Derivatives in :math:`\Phi` use the heat equation
:math:`\mathrm dM_k/\mathrm d\Phi=2\Phi\,m_k'=\Phi\,M_{k+2}`, so one generic compiled function
of :math:`(\Phi,u,\sigma_w^2,b_0..b_8,M_0..M_{12})` serves every activation. The constant
term :math:`b_0M_0` is kept in :math:`g` (it does enter the square); see
:func:`kernelphase.solvers.single_index.gfl_discrepancy` for the value of :math:`b_0`.

Kernel on normalised modes :math:`\mathrm{He}_k/\sqrt{k!}`, divided by :math:`\sigma_a^2`:
:math:`\hat Q_{jk}(\Phi)=\Phi^{j+k}M_jM_k/\sqrt{j!\,k!}`.
"""
import functools

__all__ = ["K_MAX", "symbols", "action_expr", "single_index_action", "composed_action", "kernel_entries",
           "compiled_action"]

#: Highest Hermite degree of the discrepancy (equals ``kernelphase.teachers.MAX_DEGREE``).
K_MAX = 8
#: Highest moment order the action and its two Phi-derivatives need.
M_MAX = K_MAX + 4


@functools.lru_cache(maxsize=None)
def symbols():
    """Dict of the symbols: ``Phi, u, sigma_w2``, ``b`` (tuple b_0..b_8), ``M`` (M_0..M_12)."""
    import sympy as sp
    return {"Phi": sp.Symbol("Phi", real=True), "u": sp.Symbol("u", positive=True),
            "sigma_w2": sp.Symbol("sigma_w2", positive=True),
            "b": tuple(sp.Symbol(f"b{k}", real=True) for k in range(K_MAX + 1)),
            "M": tuple(sp.Symbol(f"M{k}", real=True) for k in range(M_MAX + 1))}


def _dphi(expr):
    r"""Total :math:`\mathrm d/\mathrm d\Phi` with :math:`\mathrm dM_k/\mathrm d\Phi=\Phi M_{k+2}`."""
    import sympy as sp
    s = symbols()
    out = sp.diff(expr, s["Phi"])
    for k, Mk in enumerate(s["M"]):
        if expr.has(Mk):
            if k + 2 > M_MAX:
                raise ValueError(f"moment order {k + 2} is outside the valid range [0, {M_MAX}]")
            out += sp.diff(expr, Mk) * s["Phi"] * s["M"][k + 2]
    return out


@functools.lru_cache(maxsize=None)
def composed_action():
    r""":math:`(\hat{\mathcal S},\hat{\mathcal S}',\hat{\mathcal S}'')` in terms of the symbols
    ``M_k`` (moments at :math:`\sigma_w^2+\Phi^2`), for discrepancy degrees 0..8.

    .. math:: \hat{\mathcal S}'=\frac{\Phi}{\sigma_w^2}-u\,g\,g',\quad
              \hat{\mathcal S}''=\frac1{\sigma_w^2}-u\,(g'^2+g\,g''),\quad
              g'=\sum_kb_k\big(k\Phi^{k-1}M_k+\Phi^{k+1}M_{k+2}\big).
    """
    s = symbols()
    g = sum(s["b"][k] * s["Phi"] ** k * s["M"][k] for k in range(K_MAX + 1))
    S = s["Phi"] ** 2 / (2 * s["sigma_w2"]) - s["u"] / 2 * g ** 2
    dS = _dphi(S)
    return S, dS, _dphi(dS)


@functools.lru_cache(maxsize=None)
def compiled_action():
    """numba ``f(Phi, u, sigma_w2, b0..b8, M0..M12) -> (S, S', S'')`` (cached on disk)."""
    import sys
    from .codegen import numba_function, source_hash
    s = symbols()
    args = (s["Phi"], s["u"], s["sigma_w2"], *s["b"], *s["M"])
    return numba_function(composed_action, args, name="single_index_action",
                          recipe=(source_hash(sys.modules[__name__]),))


def _moment_subs(activation, degrees, extra=0):
    import sympy as sp
    from .moments import moment_exprs
    s = symbols()
    kmax = max(degrees) + extra
    ms = moment_exprs(activation, kmax)
    if ms is None:
        raise NotImplementedError(f"activation={activation!r} has no closed-form moments; use "
                                  f"composed_action() with numerical M_k")
    v = sp.Symbol("v", positive=True)
    var = s["sigma_w2"] + s["Phi"] ** 2
    return [m.subs(v, var) for m in ms]


def action_expr(activation, degrees):
    r"""Closed-form :math:`\hat{\mathcal S}(\Phi;u,b_k,\sigma_w^2)` for discrepancy degrees
    ``degrees`` (iterable of ints in [0, 8]).

    .. math:: \hat{\mathcal S}=\frac{\Phi^2}{2\sigma_w^2}-\frac u2\Big(\sum_{k\in\mathrm{degrees}}
              b_k\,\Phi^k\,m_k(\sigma_w^2+\Phi^2)\Big)^2

    For erf and degrees (1, 3) this equals :func:`kernelphase.actions.cubic_action` with
    ``b = b1``, ``c = b3`` (Sec. 4.4; checked in the tests).

    Examples
    --------
    >>> import sympy as sp
    >>> from kernelphase.single_index import action_expr, symbols
    >>> S = action_expr("erf", (1,))
    >>> sorted(str(s) for s in S.free_symbols)
    ['Phi', 'b1', 'sigma_w2', 'u']
    """
    degrees = tuple(sorted(set(int(k) for k in degrees)))
    if not degrees or degrees[0] < 0 or degrees[-1] > K_MAX:
        raise ValueError(f"degrees={degrees!r} is outside the valid range [0, {K_MAX}]")
    s = symbols()
    ms = _moment_subs(activation, degrees)
    g = sum(s["b"][k] * s["Phi"] ** k * ms[k] for k in degrees)
    return s["Phi"] ** 2 / (2 * s["sigma_w2"]) - s["u"] / 2 * g ** 2


def kernel_entries(activation, degrees):
    r"""Single-neuron kernel entries :math:`\hat Q_{jk}(\Phi)=\Phi^{j+k}m_jm_k/\sqrt{j!\,k!}`,
    :math:`m=m(\sigma_w^2+\Phi^2)`, as a dict ``{(j, k): expr}`` for ``j <= k`` in ``degrees``.

    Source: theory Sec. 12; for erf on (1, 3) these are App. A.3's entries with the (1,1)
    misprint corrected (:func:`kernelphase.actions.cubic_kernel_entries`).

    Examples
    --------
    >>> from kernelphase.single_index import kernel_entries
    >>> Q = kernel_entries("z", (1, 2))
    >>> sorted(Q)
    [(1, 1), (1, 2), (2, 2)]
    >>> Q[(1, 1)]
    Phi**2
    """
    import sympy as sp
    degrees = tuple(sorted(set(int(k) for k in degrees)))
    s = symbols()
    ms = _moment_subs(activation, degrees)
    return {(j, k): s["Phi"] ** (j + k) * ms[j] * ms[k] / sp.sqrt(sp.factorial(j) * sp.factorial(k))
            for j in degrees for k in degrees if j <= k}


#: Package-level name of :func:`action_expr` (``kernelphase.single_index_action``).
single_index_action = action_expr
