r"""Symbolic pieces of the lazy-to-rich theory of grokking (Kumar et al. 2023).

Model (arXiv 2310.06110, Sec. 5; theory note ``shared/theory/lazy_rich.md``):

.. math::  f(W, x) = \frac{\alpha}{N}\sum_{i=1}^N \varphi(w_i\cdot x)
           = \alpha\,\bar w\cdot x + \frac{\alpha\varepsilon}{2}\,x^\top M x,
           \qquad \varphi(h) = h + \frac{\varepsilon}{2}h^2,

with :math:`\bar w = \frac1N\sum_i w_i`, :math:`M = \frac1N\sum_i w_i w_i^\top`.

Conventions. Data convention A: :math:`x\sim\mathcal N(0, I_D/D)`, target
:math:`y = \frac{s}{2}(\beta\cdot x)^2` with ``s = 1``. Convention B
(:math:`x\sim\mathcal N(0,I)`, :math:`h = w\cdot x/\sqrt D`, :math:`y=(\beta\cdot x)^2/D`)
is convention A with ``s = 2`` after :math:`x\to x/\sqrt D`. The target matrix is
:math:`T = s\,\beta\beta^\top`, ``b2`` :math:`= |\beta|^2`.
"""
import functools
import math

__all__ = ["loss_terms", "loss_terms_function", "target_sector_power", "grokking_time",
           "grokking_time_exponent", "ntk_dot_kernel", "target_second_moment",
           "spectrum_report"]


def _syms():
    import sympy as sp
    names = "alpha eps D s b2 trM bMb trM2 w2"
    return sp.symbols(names, real=True)


@functools.lru_cache(maxsize=None)
def loss_terms():
    r"""Test-loss decomposition :math:`E_g = t_1 + t_2 + t_3` (convention A, uncentred).

    Derived from :math:`f - y = \alpha\bar w\cdot x + \tfrac12 x^\top A x`,
    :math:`A = \alpha\varepsilon M - T`, and the Gaussian identity
    :math:`E[(x^\top A x)^2] = (\mathrm{Tr}A^2 + 2\,\mathrm{Tr}A^2_{\rm F})/D^2`:

    .. math::  t_1 = \Big(\frac{\alpha\varepsilon\,\mathrm{Tr}M - s|\beta|^2}{2D}\Big)^2,\quad
               t_2 = \frac{\|\alpha\varepsilon M - T\|_F^2}{2D^2},\quad
               t_3 = \frac{\alpha^2|\bar w|^2}{D}.

    Source: Kumar et al. 2023, Fig. 4 ("variance", "alignment", "linear term");
    theory note Sec. 4.2. For the centred loss pass :math:`M - M_0`, :math:`\bar w-\bar w_0`.

    Returns
    -------
    (t1, t2, t3), symbols
        SymPy expressions in the invariants ``trM`` (Tr M), ``bMb``
        (:math:`\beta^\top M\beta`), ``trM2`` (Tr M^2), ``w2`` (:math:`|\bar w|^2`) and
        ``alpha, eps, D, s, b2``; ``symbols`` is that tuple of symbols.
    """
    alpha, eps, D, s, b2, trM, bMb, trM2, w2 = syms = _syms()
    t1 = ((alpha * eps * trM - s * b2) / (2 * D)) ** 2
    # ||a M - T||_F^2 = a^2 Tr M^2 - 2 a Tr(M T) + Tr T^2 with Tr(MT) = s bMb, Tr T^2 = s^2 b2^2
    a = alpha * eps
    t2 = (a ** 2 * trM2 - 2 * a * s * bMb + s ** 2 * b2 ** 2) / (2 * D ** 2)
    t3 = alpha ** 2 * w2 / D
    return (t1, t2, t3), syms


@functools.lru_cache(maxsize=None)
def loss_terms_function():
    """``numba`` function ``(alpha, eps, D, s, b2, trM, bMb, trM2, w2) -> (t1, t2, t3)``.

    Pass floats only: with an integer ``D`` numba evaluates ``D**-2`` in integers (0).
    """
    from .codegen import numba_function
    exprs, syms = loss_terms()
    return numba_function(exprs, syms, name="lazy_rich_loss_terms")


def _quad_inner(q1, q2, D, b2):
    """:math:`E[(x^\\top Q_1x)(x^\\top Q_2x)]` for :math:`Q = a\\beta\\beta^\\top + cI`, x~N(0,I/D)."""
    (a1, c1), (a2, c2) = q1, q2
    tr1, tr2 = a1 * b2 + c1 * D, a2 * b2 + c2 * D
    tr12 = a1 * a2 * b2 ** 2 + (a1 * c2 + a2 * c1) * b2 + c1 * c2 * D
    return (tr1 * tr2 + 2 * tr12) / D ** 2


def target_sector_power(D=None, b2=None, s=1):
    r"""Power of the target :math:`y = \frac s2(\beta\cdot x)^2` per NTK sector.

    Projections in :math:`L^2(\mathcal N(0, I/D))` onto the sectors of any dot-product
    kernel: linear (:math:`x_i`), radial (:math:`|x|^2`), traceless quadratic
    (:math:`x^\top A x`, Tr A = 0), and the null remainder (constant part orthogonal to
    :math:`|x|^2`). Derived here from
    :math:`E[(x^\top Ax)(x^\top Bx)] = (\mathrm{Tr}A\,\mathrm{Tr}B + 2\mathrm{Tr}AB)/D^2`
    (theory note Sec. 3.3). Convention A gives radial :math:`\frac{b_2^2}{4D^2}(1+\frac2D)`,
    traceless :math:`\frac{b_2^2(D-1)}{2D^3}`.

    Returns
    -------
    dict
        sector name -> SymPy expression (numbers if ``D``, ``b2`` are given).

    Examples
    --------
    >>> from kernelphase.lazy_rich import target_sector_power
    >>> for name, power in target_sector_power().items():
    ...     print(f"{name}: {power}")
    linear: 0
    radial quadratic: b2**2*(D + 2)/(4*D**3)
    traceless quadratic: b2**2*(D - 1)/(2*D**3)
    null: 0
    """
    import sympy as sp
    from .parse import as_sympy
    Ds, bs = sp.symbols("D b2", positive=True)
    half = sp.Rational(1, 2) * as_sympy(s, "s")
    y = (half, 0)                       # y = x^T (s/2 bb^T) x
    rad = (0, 1)                        # |x|^2 = x^T I x
    # radial projection coefficient and power
    c = _quad_inner(y, rad, Ds, bs) / _quad_inner(rad, rad, Ds, bs)
    p_rad = sp.simplify(c ** 2 * _quad_inner(rad, rad, Ds, bs))
    resid = (half, -c)                  # y - c|x|^2: quadratic form with zero trace
    tr_resid = sp.simplify(resid[0] * bs + resid[1] * Ds)
    if tr_resid != 0:  # pragma: no cover - identity check of the derivation
        raise RuntimeError("traceless remainder has nonzero trace")
    p_tl = sp.simplify(_quad_inner(resid, resid, Ds, bs))
    out = {"linear": sp.Integer(0), "radial quadratic": p_rad,
           "traceless quadratic": p_tl, "null": sp.Integer(0)}
    subs = {}
    if D is not None:
        subs[Ds] = _exact(D, "D")
    if b2 is not None:
        subs[bs] = _exact(b2, "b2")
    return {k: sp.nsimplify(v.subs(subs)) if subs else v for k, v in out.items()}


def _exact(value, name):
    """A user number as exact SymPy: text by ``parse_number``, floats rationalised, never run."""
    import sympy as sp
    from .parse import as_sympy, parse_number
    if isinstance(value, str):
        return parse_number(value, name, exact=True)
    v = as_sympy(value, name, params=None)
    if isinstance(v, sp.Float):
        parse_number(v, name)  # finite
        return sp.nsimplify(v)
    return v


def target_second_moment(s=1):
    r""":math:`E[y^2]` for :math:`y=\frac s2(\beta\cdot x)^2`: :math:`\frac{3s^2}{4}(|\beta|^2/D)^2`.

    Examples
    --------
    >>> from kernelphase.lazy_rich import target_second_moment
    >>> target_second_moment()
    3*b2**2/(4*D**2)
    """
    import sympy as sp
    from .parse import as_sympy
    Ds, bs = sp.symbols("D b2", positive=True)
    y = (sp.Rational(1, 2) * as_sympy(s, "s"), 0)
    return sp.simplify(_quad_inner(y, y, Ds, bs))


def grokking_time(alpha, eps, D, c, b2=None, s=1):
    r"""Saddle-escape estimate of the grokking time, in GD steps.

    .. math::  t_{\rm grok} \approx \frac{\alpha D^2}{6 c\,\varepsilon\, s|\beta|^2}
               \ln\frac{s|\beta|^2}{\alpha\varepsilon}

    With :math:`\eta = cN/\alpha^2` and the centred loss, :math:`\hat\beta^\top M\hat\beta`
    grows as :math:`\exp(6c\varepsilon s|\beta|^2 t/(\alpha D^2))` from O(1) until
    :math:`\alpha\varepsilon\,\hat\beta^\top\Delta M\hat\beta \approx s|\beta|^2`.
    Source: theory note Sec. 6 (derived; the paper gives no exponent). ``b2``
    defaults to ``D``.

    Examples
    --------
    >>> from kernelphase.lazy_rich import grokking_time
    >>> round(grokking_time(1.0, 0.02, 100, 0.1))
    70977
    """
    import math
    b2 = D if b2 is None else b2
    sb = s * b2
    return alpha * D ** 2 / (6.0 * c * eps * sb) * math.log(max(sb / (alpha * eps), math.e))


def grokking_time_exponent(alpha, eps, D, b2=None, s=1):
    r"""Local slope :math:`d\ln t_{\rm grok}/d\ln\alpha = 1 - 1/\ln(s|\beta|^2/(\alpha\varepsilon))`.

    Examples
    --------
    >>> from kernelphase.lazy_rich import grokking_time_exponent
    >>> round(grokking_time_exponent(1.0, 0.02, 100), 4)
    0.8826
    """
    import math
    b2 = D if b2 is None else b2
    return 1.0 - 1.0 / math.log(s * b2 / (alpha * eps))


def ntk_dot_kernel(phi, h=None):
    r"""Kumar et al.'s NTK: :func:`kernelphase.kernels.ntk_kernel` (first layer, :math:`\sigma_w^2=1`)
    at unit norms, per :math:`\alpha^2/N` of :math:`\frac{\alpha}{N}\sum_i\varphi(w_i\cdot x)`.

    .. math::  \kappa(u) = u\,\mathbb E[\varphi'(a)\varphi'(b)],\qquad
               \varphi = h + \tfrac{\varepsilon}{2}h^2 \;\Rightarrow\; \kappa = u + \varepsilon^2u^2

    (:math:`(a,b)` standard Gaussians of covariance :math:`u=x\cdot x'`; exact as
    :math:`D\to\infty` under :math:`x\sim\mathcal N(0,I/D)`). Source: Kumar et al. 2023,
    Sec. 5; the derivation is the package's one, in :mod:`kernelphase.kernels`.

    Parameters
    ----------
    phi : sympy.Expr or str
        Polynomial in ``h``: ``sympy.Symbol("h")`` unless given, or ``sympy.Symbol("z")``
        if ``phi`` contains ``z`` and not ``h``. Text is read by
        :func:`kernelphase.parse.parse_formula` with the variable ``z`` (``h`` accepted as an
        alias of the same symbol) and any parameter names.

    Returns
    -------
    sympy.Expr
        Polynomial in ``sympy.Symbol("u")``.

    Examples
    --------
    >>> from kernelphase.lazy_rich import ntk_dot_kernel
    >>> ntk_dot_kernel("z + eps*z**2/2")
    eps**2*u**2 + u
    """
    import sympy as sp
    from .activations import Z
    from .kernels import ntk_kernel
    from .parse import as_sympy
    from .spectra import N1, N2
    if h is None:
        h = sp.Symbol("h")
        if isinstance(phi, str):
            h = sp.Symbol("z")
        elif isinstance(phi, sp.Basic) and h not in phi.free_symbols:
            h = sp.Symbol("z") if sp.Symbol("z") in phi.free_symbols else h
    phi = as_sympy(phi, "activation", variables={"z": h, "h": h})
    if not phi.is_polynomial(h):
        raise ValueError(f"activation {phi} is not a polynomial in {h}")
    return sp.expand(ntk_kernel(phi.subs(h, Z)).subs({N1: 1, N2: 1}))


def spectrum_report(D, eps, activation="z + eps*z**2/2"):
    r"""NTK sectors at init with the target power and the population alignment.

    ``activation`` is a polynomial in the pre-activation ``z`` that may use ``eps``, read by
    :func:`kernelphase.parse.parse_formula` (never evaluated). For backward compatibility
    ``h`` is accepted as an alias of ``z`` (same symbol): ``"h + eps*h**2/2"`` and
    ``"z + eps*z**2/2"`` give the same report.

    Spectrum from :func:`kernelphase.spectra.gaussian_dot_product_spectrum` applied to
    :func:`ntk_dot_kernel` of the activation; target power by :func:`target_sector_power`
    (convention A, :math:`|\beta|^2 = D`). Population kernel-target alignment

    .. math::  A = \frac{\langle y, Ty\rangle}{\|T\|_{HS}\,\|y\|^2}
               = \frac{\sum_k\lambda_kp_k}{\sqrt{\sum_km_k\lambda_k^2}\,\sum_kp_k}

    (theory note Sec. 3.6, population version of the paper's CKA).

    Examples
    --------
    >>> from kernelphase.lazy_rich import spectrum_report
    >>> rep = spectrum_report(10, 0.1)
    >>> sorted(rep)
    ['D', 'activation', 'alignment', 'eps', 'kernel', 'sectors', 'target_power_total']
    >>> rep["target_power_total"], round(rep["alignment"], 6)
    (0.75, 0.001897)
    """
    import sympy as sp
    from ._checks import check_int
    from .parse import parse_formula
    D = check_int("D", D, 1)
    h, e = sp.Symbol("z"), sp.Symbol("eps")
    if isinstance(activation, sp.Basic):  # a SymPy expression in z (or h) and eps
        act = activation.subs(sp.Symbol("h"), h)
        if not act.free_symbols <= {h, e}:
            raise ValueError(f"activation={activation!r} may only use z (or h) and eps")
    else:
        act = parse_formula(activation, variables={"z": h, "h": h}, params={"eps": e},
                            name="activation")
    if not act.is_polynomial(h):
        raise ValueError(f"activation={activation!r} is not a polynomial in z")
    try:
        from .spectra import gaussian_dot_product_spectrum
    except ImportError:  # pragma: no cover - until the symbolic layer is merged
        raise NotImplementedError("kernelphase.spectra is not available yet") from None
    kernel = ntk_dot_kernel(act.subs(e, _exact(eps, "eps")), h)
    sectors = gaussian_dot_product_spectrum(kernel, D)
    power = target_sector_power(D, D)
    rows = []
    for sec in sectors:
        rows.append(dict(name=sec.name, degree=int(sec.degree),
                         eigenvalue=float(sec.eigenvalue), multiplicity=float(sec.multiplicity),
                         target_power=float(power.get(sec.name, 0))))
    num = sum(r["eigenvalue"] * r["target_power"] for r in rows)
    hs = math.sqrt(sum(r["multiplicity"] * r["eigenvalue"] ** 2 for r in rows))
    tot = float(sum(power.values()))
    return dict(D=D, eps=eps, activation=str(act), kernel=str(kernel), sectors=rows,
                alignment=num / (hs * tot) if hs > 0 else float("nan"),
                target_power_total=tot)
