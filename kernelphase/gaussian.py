r"""Gaussian expectations in closed form (no ``sympy.stats``).

Conventions: probabilists' Hermite polynomials :math:`\mathrm{He}_k`, orthogonal
under :math:`\mathcal N(0,1)` with :math:`\mathbb E[\mathrm{He}_j\mathrm{He}_k]=k!\,\delta_{jk}`.
Variances are passed as they are (no :math:`1/d` hidden anywhere).
"""
import sympy as sp

from .parse import as_sympy

__all__ = ["erf_hermite_expectation", "erf_gaussian_exp_moment", "bivariate_moment",
           "expect_product", "erf_erf_expectation", "erf_prime_expectation",
           "relu_relu_expectation", "step_step_expectation"]


def erf_gaussian_exp_moment(power, var):
    r""":math:`\mathbb E_{u\sim\mathcal N(0,s)}[u^{p}e^{-u^2}]` in closed form.

    .. math:: \mathbb E[u^{2j}e^{-u^2}] = (1+2s)^{-1/2}\,(2j-1)!!\,\Big(\frac{s}{1+2s}\Big)^{j},
              \qquad \text{odd moments vanish.}

    Completing the square: :math:`e^{-u^2}\mathcal N(u;0,s)=(1+2s)^{-1/2}\mathcal N(u;0,s/(1+2s))`.

    Examples
    --------
    >>> from kernelphase.gaussian import erf_gaussian_exp_moment
    >>> erf_gaussian_exp_moment(0, 1)      # 1/sqrt(1 + 2s)
    sqrt(3)/3
    >>> erf_gaussian_exp_moment(2, 1)
    sqrt(3)/9
    """
    var = as_sympy(var, "var")
    if power % 2:
        return sp.Integer(0)
    j = power // 2
    return sp.factorial2(2 * j - 1) * (var / (1 + 2 * var)) ** j / sp.sqrt(1 + 2 * var)


def erf_hermite_expectation(k, var, cov):
    r""":math:`\mathbb E[\mathrm{erf}(u)\,\mathrm{He}_k(v)]` for jointly Gaussian :math:`(u,v)`.

    :math:`u\sim\mathcal N(0,s)`, :math:`v\sim\mathcal N(0,1)`, :math:`\mathrm{Cov}(u,v)=c`.
    By Gaussian integration by parts (Stein's lemma applied :math:`k` times),

    .. math:: \mathbb E[\mathrm{erf}(u)\,\mathrm{He}_k(v)] = c^k\,
              \mathbb E\big[\mathrm{erf}^{(k)}(u)\big],\qquad
              \mathrm{erf}^{(k)}(u)=\frac{2}{\sqrt\pi}\frac{d^{k-1}}{du^{k-1}}e^{-u^2},

    and each term of :math:`\frac{d^{k-1}}{du^{k-1}}e^{-u^2}=q(u)e^{-u^2}` is integrated
    with :func:`erf_gaussian_exp_moment`. For :math:`k=1`:
    :math:`2c/\sqrt{\pi(1+2s)}`; for :math:`k=3`: :math:`-4c^3/(\sqrt\pi(1+2s)^{3/2})`
    (Rubin et al. 2023, App. A.4, with :math:`s=|w|^2`, :math:`c=w\cdot w^*`).

    Parameters
    ----------
    k : int
        Hermite degree, ``k >= 0``.
    var, cov : sympy.Expr or number
        :math:`s>0` and :math:`c` (with :math:`c^2\le s`).

    Examples
    --------
    >>> from kernelphase.gaussian import erf_hermite_expectation
    >>> erf_hermite_expectation(1, 1, 1)   # 2/sqrt(pi (1 + 2 var))
    2*sqrt(3)/(3*sqrt(pi))
    """
    if int(k) != k or k < 0:
        raise ValueError(f"k={k!r} is outside the valid range [0, inf) (integers)")
    k = int(k)
    var, cov = as_sympy(var, "var"), as_sympy(cov, "cov")
    if k == 0:
        return sp.Integer(0)  # erf is odd and u is centred
    z = sp.Dummy("z")
    q = sp.Poly(sp.simplify(sp.diff(sp.exp(-z**2), z, k - 1) * sp.exp(z**2)), z)
    mean = sum(coef * erf_gaussian_exp_moment(p, var) for (p,), coef in q.terms())
    return sp.simplify(2 / sp.sqrt(sp.pi) * cov**k * mean)


def bivariate_moment(a, b, var_u, var_v, cov):
    r""":math:`\mathbb E[u^av^b]` for centred jointly Gaussian :math:`(u,v)` (Isserlis/Wick).

    Counting the Wick pairings with :math:`k` cross pairs :math:`(u,v)`:

    .. math:: \mathbb E[u^av^b]=\sum_{k\equiv a\ (2)}\binom ak\binom bk\,k!\,
              (a-k-1)!!\,(b-k-1)!!\;\Sigma_{uv}^k\,\Sigma_{uu}^{(a-k)/2}\,
              \Sigma_{vv}^{(b-k)/2},

    the coefficient :math:`a!\,b!\,[s^at^b]` of the moment generating function
    :math:`\exp\big(\tfrac12(s^2\Sigma_{uu}+2st\Sigma_{uv}+t^2\Sigma_{vv})\big)`, in
    :math:`O(\min(a,b))` terms (no polynomial expansion, so high degrees stay cheap).

    Examples
    --------
    >>> from kernelphase.gaussian import bivariate_moment
    >>> import sympy as sp
    >>> bivariate_moment(2, 2, 1, 1, sp.Rational(1, 2))   # 1 + 2 cov^2
    3/2
    >>> bivariate_moment(1, 3, 2, 1, 1)
    3
    """
    if (a + b) % 2:
        return sp.Integer(0)
    var_u, var_v, cov = (as_sympy(var_u, "var_u"), as_sympy(var_v, "var_v"),
                         as_sympy(cov, "cov"))
    total = sp.Integer(0)
    for k in range(a % 2, min(a, b) + 1, 2):
        total += (sp.binomial(a, k) * sp.binomial(b, k) * sp.factorial(k)
                  * sp.factorial2(a - k - 1) * sp.factorial2(b - k - 1)
                  * cov ** k * var_u ** ((a - k) // 2) * var_v ** ((b - k) // 2))
    return sp.expand(total)


def expect_product(p, q, z, var_u, var_v, cov):
    r""":math:`\mathbb E[p(u)\,q(v)]` for polynomials ``p``, ``q`` in the symbol ``z`` (``q=1``
    gives :math:`\mathbb E[p(u)]`), :math:`(u,v)` centred Gaussian with the given (co)variances.

    Examples
    --------
    >>> import sympy as sp
    >>> from kernelphase.gaussian import expect_product
    >>> z = sp.Symbol("z")
    >>> expect_product(z**3 - 3*z, z**3 - 3*z, z, 1, 1, 1)
    6
    >>> expect_product(z**4, 1, z, 2, 1, 0)
    12
    """
    var_u, var_v, cov = (as_sympy(var_u, "var_u"), as_sympy(var_v, "var_v"),
                         as_sympy(cov, "cov"))
    names = {z.name: z} if isinstance(z, sp.Symbol) else ()
    p, q = as_sympy(p, "p", variables=names), as_sympy(q, "q", variables=names)
    P = sp.Poly(sp.expand(p), z)
    Qp = sp.Poly(sp.expand(q), z)
    total = sp.Integer(0)
    for (i,), ci in P.terms():
        for (j,), cj in Qp.terms():
            total += ci * cj * bivariate_moment(i, j, var_u, var_v, cov)
    return sp.expand(total)


def erf_erf_expectation(var_u, var_v, cov):
    r""":math:`\mathbb E[\mathrm{erf}(u)\mathrm{erf}(v)]=\frac2\pi\arcsin\frac{2\Sigma_{uv}}
    {\sqrt{(1+2\Sigma_{uu})(1+2\Sigma_{vv})}}` (Williams 1997).

    Examples
    --------
    >>> from kernelphase.gaussian import erf_erf_expectation
    >>> erf_erf_expectation(1, 1, 1)
    2*asin(2/3)/pi
    """
    var_u, var_v, cov = (as_sympy(var_u, "var_u"), as_sympy(var_v, "var_v"),
                         as_sympy(cov, "cov"))
    return 2 / sp.pi * sp.asin(2 * cov / sp.sqrt((1 + 2 * var_u) * (1 + 2 * var_v)))


def erf_prime_expectation(var_u, var_v, cov):
    r""":math:`\mathbb E[\mathrm{erf}'(u)\mathrm{erf}'(v)]=\frac4\pi\big((1+2\Sigma_{uu})
    (1+2\Sigma_{vv})-4\Sigma_{uv}^2\big)^{-1/2}` (Gaussian integral of :math:`e^{-u^2-v^2}`).

    Examples
    --------
    >>> from kernelphase.gaussian import erf_prime_expectation
    >>> erf_prime_expectation(0, 0, 0)
    4/pi
    >>> import sympy as sp
    >>> erf_prime_expectation(1, 1, sp.Rational(1, 2))
    sqrt(2)/pi
    """
    var_u, var_v, cov = (as_sympy(var_u, "var_u"), as_sympy(var_v, "var_v"),
                         as_sympy(cov, "cov"))
    return 4 / sp.pi / sp.sqrt((1 + 2 * var_u) * (1 + 2 * var_v) - 4 * cov ** 2)


def _arccos_angle(var_u, var_v, cov):
    var_u, var_v, cov = (as_sympy(var_u, "var_u"), as_sympy(var_v, "var_v"),
                         as_sympy(cov, "cov"))
    return sp.acos(cov / sp.sqrt(var_u * var_v))


def relu_relu_expectation(var_u, var_v, cov):
    r""":math:`\mathbb E[\max(0,u)\max(0,v)]`, the arc-cosine kernel of order 1.

    .. math:: \mathbb E[\max(0,u)\max(0,v)]=\frac{\sqrt{\Sigma_{uu}\Sigma_{vv}}}{2\pi}
              \big(\sin\theta+(\pi-\theta)\cos\theta\big),\qquad
              \cos\theta=\frac{\Sigma_{uv}}{\sqrt{\Sigma_{uu}\Sigma_{vv}}}.

    Derivation: write :math:`u=\sqrt{\Sigma_{uu}}\,r\cos\alpha`,
    :math:`v=\sqrt{\Sigma_{vv}}\,r\cos(\alpha-\theta)` with :math:`(r,\alpha)` polar
    coordinates of a standard 2-D Gaussian; both are positive on an arc of length
    :math:`\pi-\theta`, :math:`\int_0^\infty r^3e^{-r^2/2}dr=2`, and
    :math:`\int_{\theta-\pi/2}^{\pi/2}\cos\alpha\cos(\alpha-\theta)\,d\alpha
    =\tfrac12\big(\sin\theta+(\pi-\theta)\cos\theta\big)`.
    Source: Cho & Saul 2009, Eq. (6) with :math:`J_1` (their kernel is twice this one).
    Needs :math:`\Sigma_{uu},\Sigma_{vv}>0`.

    Examples
    --------
    >>> relu_relu_expectation(1, 1, 1)   # E[max(0, z)^2] = 1/2
    1/2
    """
    var_u, var_v, cov = (as_sympy(var_u, "var_u"), as_sympy(var_v, "var_v"),
                         as_sympy(cov, "cov"))
    theta = _arccos_angle(var_u, var_v, cov)
    # sqrt(S_uu S_vv) sin(theta) written as sqrt(S_uu S_vv - S_uv^2), cos(theta) cancelled
    return (sp.sqrt(var_u * var_v - cov ** 2) + (sp.pi - theta) * cov) / (2 * sp.pi)


def step_step_expectation(var_u, var_v, cov):
    r""":math:`\mathbb E[\Theta(u)\Theta(v)]=\frac{\pi-\theta}{2\pi}`, the arc-cosine kernel of
    order 0 (:math:`\Theta` = Heaviside step = ReLU', :math:`\theta` as in
    :func:`relu_relu_expectation`: the probability of the wedge of angle :math:`\pi-\theta`).
    Source: Cho & Saul 2009, Eq. (6) with :math:`J_0=\pi-\theta`.

    Examples
    --------
    >>> step_step_expectation(1, 1, 0)
    1/4
    """
    return (sp.pi - _arccos_angle(var_u, var_v, cov)) / (2 * sp.pi)
