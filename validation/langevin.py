r"""Full-batch Langevin sampling of two-layer networks (Rubin et al. 2023, Sec. 2.3).

The target law is the stated posterior (theory notes Sec. 1.4): Gaussian priors of variance
``var_a`` (read-out) and ``var_w`` (read-in) times a likelihood (plus, for the modular model, a
non-Gaussian weight decay) :math:`e^{\ell(\theta)}`,

.. math:: \log p(\theta\mid\mathcal D)=-\frac{|a|^2}{2v_a}-\frac{|W|^2}{2v_w}+\ell(a,W)+\text{const},
          \qquad \ell=-\sum_\mu\frac{|f(x_\mu)-y_\mu|^2}{2\sigma^2}\ (+\text{tilt}).

The Langevin diffusion :math:`d\theta=\nabla\log p\,dt+\sqrt2\,dB` is noisy GD on
:math:`L/\sigma^2` with per-layer weight decay :math:`1/v` at unit temperature (the paper's time
is ours divided by :math:`\sigma^2`). **Discretisation**: the Gaussian prior part is an
Ornstein-Uhlenbeck process and is integrated exactly (exponential Euler); only the likelihood
force is frozen over a step of length :math:`\eta`:

.. math:: \theta\leftarrow e^{-\eta/v}\theta+v\,(1-e^{-\eta/v})\,\nabla\ell(\theta)
          +\sqrt{v\,(1-e^{-2\eta/v})}\;\xi,\qquad\xi\sim\mathcal N(0,I).

With :math:`\ell=0` the prior is sampled exactly for any :math:`\eta`, so the stiff read-out
prior (:math:`v_a=\sigma_a^2/N`) no longer limits the step; the remaining bias is
:math:`O(\eta)` in the likelihood curvature (shown shrinking with :math:`\eta` in the tests).
For :math:`\eta\ll v` this is the Euler-Maruyama step
:math:`\theta\leftarrow\theta+\eta\nabla\log p+\sqrt{2\eta}\,\xi`.

A posterior with ``readout = "gibbs"`` (the modular model; the erf model on request) has its
read-out, whose conditional law is Gaussian, drawn exactly from :math:`p(a\mid W,\mathcal D)`
every step by ``gibbs_step(W, rng)``, which also returns the read-in gradient at the new
read-out (Langevin-within-Gibbs). The stationary law is the
same and the step is set by the read-in weights alone. The read-out is the fast variable (its
likelihood curvature :math:`\lambda_{max}(F^\top F)/\sigma^2` is the stiffest of the model), so
on the slow time scales of feature learning the Gibbs run follows the physical dynamics with
the read-out adiabatically eliminated; on times of order the read-out's relaxation it does not.

Each network has its own random stream (``numpy.random.SeedSequence`` keyed by the run's seed
and the network's index; the float32 step keys its numba noise by draws of it), so an
ensemble gives the same numbers whether its networks run in one process, on a local process
pool or on a Dask cluster (:mod:`.ensemble`). Long runs save their
state through the one checkpoint backend, :class:`kernelphase.io.RunDir` (its key holds every
parameter of the run, seed included; state files are atomic ``.npz``): a run killed at any
moment resumes from its last checkpoint and ends bit-identical to an uninterrupted run with the
same seed. :func:`langevin_run` returns a :class:`LangevinState`; a network whose weights turn
NaN or infinite stops there with status 6 ("run diverged").
"""
import dataclasses
import functools
import math
from typing import Any, Mapping

import numba
import numpy as np
from numba import njit, prange

from kernelphase._checks import check_choice, check_int, check_positive
from kernelphase.results import Result, status_message

__all__ = ["NetworkPosterior", "ErfNetworkPosterior", "LangevinState", "activation_pair",
           "gaussian_readout", "gaussian_readout_wide", "langevin_run", "network_rng"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def network_rng(seed, *key):
    """The random stream of one network: ``SeedSequence(seed, spawn_key=key)``.

    Examples
    --------
    >>> import numpy as np
    >>> ref = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(0, 1)))
    >>> bool(network_rng(3, 0, 1).random() == ref.random())
    True
    >>> bool(network_rng(3, 0, 1).random() == network_rng(3, 0, 2).random())
    False
    """
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)))


_CHUNK_ROWS = 192
#: precisions of the Langevin step's gradient (``NetworkPosterior(dtype=...)``)
DTYPES = ("float64", "float32")
_ERF_TAYLOR = tuple(_TWO_OVER_SQRT_PI * (-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(31))
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(14))
_SERIES_EDGE = 2.0          # |h| beyond which the series are not used (libm instead)


def _horner_lines(acc, coefficients, var, literal=repr):
    """Source lines of the Horner form of ``sum_k coefficients[k] var**k`` into ``acc``, the
    coefficients written as literals (``literal(c)``). The bodies of :func:`_erf_series` and
    :func:`_erf_series32` below were printed by this function (tests print them again and
    compare the text): unrolled by hand, the loop around the series vectorises; a loop over a
    tuple of coefficients does not (6x slower)."""
    lines = [f"    {acc} = {literal(coefficients[-1])}"]
    for c in reversed(coefficients[:-1]):
        lines.append(f"    {acc} = {acc} * {var} + {literal(c)}")
    return lines


def _float32_literal(c):
    """``np.float32(<c>)``: a float32 constant in numba code (a bare literal would promote the
    float32 arithmetic around it to float64)."""
    return f"np.float32({c!r})"


def _series32_coefficients():
    r"""Coefficients of :func:`_erf_series32`: the monomial coefficients in
    :math:`t=s/4-1` of the Chebyshev interpolants (at the Chebyshev points of the first kind,
    :func:`numpy.polynomial.chebyshev.chebinterpolate`) of :math:`e^{-s}` (degree 12) and
    :math:`\mathrm{erf}(\sqrt s)/\sqrt s` (degree 11) on :math:`s\in[0,8]`, rounded to float32."""
    from numpy.polynomial import chebyshev
    from scipy.special import erf

    def erf_over_h(t):
        h = np.sqrt(4.0 * t + 4.0)          # Chebyshev points are interior: h > 0
        return erf(h) / h
    return tuple(tuple(float(np.float32(c)) for c in chebyshev.cheb2poly(
        chebyshev.chebinterpolate(f, deg))) for f, deg in (
        (lambda t: np.exp(-4.0 * t - 4.0), 12), (erf_over_h, 11)))


@njit(inline="always", fastmath={"contract"})
def _erf_series(h):
    r"""``(erf h, exp(-h^2))`` for ``|h| <= 2`` by branch-free series, so that a loop over them
    vectorises (libm's erf and exp do not; this llvmlite has no SVML):

    .. math:: \mathrm{erf}\,h=\frac{2}{\sqrt\pi}\sum_{k=0}^{30}\frac{(-1)^k h^{2k+1}}{k!\,(2k+1)},
              \qquad e^{-h^2}=\Big(\sum_{k=0}^{13}\frac{(-h^2/16)^k}{k!}\Big)^{16}.

    Truncation errors at ``|h| = 2`` are below 2e-16 and 3e-18 (relative); the 16th power costs
    at most 16 ulp. Larger ``|h|`` are clamped here and recomputed by the caller. The
    coefficients are :data:`_EXP_TAYLOR` and :data:`_ERF_TAYLOR`, printed by
    :func:`_horner_lines`.
    """
    s = h * h
    s = s if s < 4.0 else 4.0
    y = -0.0625 * s
    e = 1.6059043836821613e-10
    e = e * y + 2.08767569878681e-09
    e = e * y + 2.505210838544172e-08
    e = e * y + 2.755731922398589e-07
    e = e * y + 2.7557319223985893e-06
    e = e * y + 2.48015873015873e-05
    e = e * y + 0.0001984126984126984
    e = e * y + 0.001388888888888889
    e = e * y + 0.008333333333333333
    e = e * y + 0.041666666666666664
    e = e * y + 0.16666666666666666
    e = e * y + 0.5
    e = e * y + 1.0
    e = e * y + 1.0
    e = e * e
    e = e * e
    e = e * e
    e = e * e
    p = 6.973730328792914e-35
    p = p * s + -2.1630383901171243e-33
    p = p * s + 6.492909974544561e-32
    p = p * s + -1.8841244217042036e-30
    p = p * s + 5.279103332510835e-29
    p = p * s + -1.4263930180784176e-27
    p = p * s + 3.71153285316323e-26
    p = p * s + -9.28672901131906e-25
    p = p * s + 2.2308786802746453e-23
    p = p * s + -5.136209054585811e-22
    p = p * s + 1.131218725924631e-20
    p = p * s + -2.3784598852774293e-19
    p = p * s + 4.763348040515068e-18
    p = p * s + -9.063970842808673e-17
    p = p * s + 1.6342614095367152e-15
    p = p * s + -2.7835162072109212e-14
    p = p * s + 4.4632242632864775e-13
    p = p * s + -6.7113668551641105e-12
    p = p * s + 9.422759064650411e-11
    p = p * s + -1.2290555301717926e-09
    p = p * s + 1.4807192815879218e-08
    p = p * s + -1.6365844691234924e-07
    p = p * s + 1.6462114365889246e-06
    p = p * s + -1.492565035840625e-05
    p = p * s + 0.00012055332981789664
    p = p * s + -0.0008548327023450852
    p = p * s + 0.005223977625442188
    p = p * s + -0.026866170645131252
    p = p * s + 0.11283791670955126
    p = p * s + -0.37612638903183754
    p = p * s + 1.1283791670955126
    return h * p, e


@njit(cache=True)
def _erf_block(H, E, G):
    """``E = erf(H)``, ``G = exp(-H^2)`` elementwise: one vectorised pass of
    :func:`_erf_series`, then libm for the rare ``|h| > 2`` (and NaN)."""
    outside = 0
    for p in range(H.shape[0]):
        for j in range(H.shape[1]):
            h = H[p, j]
            E[p, j], G[p, j] = _erf_series(h)
            outside += abs(h) > _SERIES_EDGE
    if outside:
        for p in range(H.shape[0]):
            for j in range(H.shape[1]):
                h = H[p, j]
                if not abs(h) <= _SERIES_EDGE:
                    E[p, j] = math.erf(h)
                    G[p, j] = math.exp(-h * h)


@njit(inline="always", fastmath={"contract"})
def _erf_series32(h):
    r"""float32 ``(erf h, exp(-h^2))`` for ``h^2 <= 8`` (:data:`_SERIES_EDGE2_32`), branch-free
    (the float32 path, ``dtype="float32"``): polynomials in :math:`t=h^2/4-1` from
    :func:`_series32_coefficients` (Chebyshev interpolants, printed by :func:`_horner_lines`),

    .. math:: \mathrm{erf}\,h\approx h\sum_{k=0}^{11}p_k t^k,\qquad
              e^{-h^2}\approx\sum_{k=0}^{12}e_k t^k .

    Evaluated in float32: relative error of erf below 3e-7, absolute error of ``exp(-h^2)``
    below 3.5e-7, a few float32 ulp (against mpmath in ``tests/test_langevin_float32.py``);
    23 multiply-adds instead of the 49 of :func:`_erf_series`, on twice as many SIMD lanes.
    The range reaches :math:`|h|=2\sqrt2`, so that pre-activations beyond it, left to libm, are
    rare (Fig. 2 networks: about :math:`10^{-4}` of them, so a few per cent of the rows; beyond
    :math:`|h|=2`, the float64 series' range, half a per cent, in most rows).
    """
    s = h * h
    s = s if s < np.float32(8.0) else np.float32(8.0)
    t = s * np.float32(0.25) - np.float32(1.0)
    e = np.float32(0.0008514020009897649)
    e = e * t + np.float32(-0.002673597540706396)
    e = e * t + np.float32(0.005018868483603001)
    e = e * t + np.float32(-0.012249174527823925)
    e = e * t + np.float32(0.0299376193434)
    e = e * t + np.float32(-0.06014290452003479)
    e = e * t + np.float32(0.10414627194404602)
    e = e * t + np.float32(-0.1561155766248703)
    e = e * t + np.float32(0.19537301361560822)
    e = e * t + np.float32(-0.19538919627666473)
    e = e * t + np.float32(0.14652489125728607)
    e = e * t + np.float32(-0.07326175272464752)
    e = e * t + np.float32(0.018315639346837997)
    p = np.float32(-0.0001751457602949813)
    p = p * t + np.float32(0.0005679180030710995)
    p = p * t + np.float32(-0.0011913932394236326)
    p = p * t + np.float32(0.0031203131657093763)
    p = p * t + np.float32(-0.008006298914551735)
    p = p * t + np.float32(0.017727771773934364)
    p = p * t + np.float32(-0.03527149185538292)
    p = p * t + np.float32(0.06367035210132599)
    p = p * t + np.float32(-0.1042826846241951)
    p = p * t + np.float32(0.15820759534835815)
    p = p * t + np.float32(-0.2384970635175705)
    p = p * t + np.float32(0.49766111373901367)
    return h * p, e


#: float32 series range: h^2 <= 8 (:func:`_erf_series32`)
_SERIES_EDGE2_32 = 8.0


@njit(cache=True, fastmath={"contract"})
def _erf_block32(H, E, G):
    """float32 :func:`_erf_block`: one vectorised pass of :func:`_erf_series32`, then, row by
    row, a vectorised test for ``h^2 > 8`` and libm for the rare rows that have one
    (:func:`_erf_row_libm32`). The test is a loop of its own: inside the series loop any
    reduction stops its vectorisation (several times slower)."""
    for p in range(H.shape[0]):
        for j in range(H.shape[1]):
            E[p, j], G[p, j] = _erf_series32(H[p, j])
    for p in range(H.shape[0]):
        outside = False
        for j in range(H.shape[1]):
            outside |= H[p, j] * H[p, j] > np.float32(_SERIES_EDGE2_32)
        if outside:
            _erf_row_libm32(H[p], E[p], G[p])


@njit(cache=True)
def _erf_row_libm32(h, e, g):
    """``e = erf(h)``, ``g = exp(-h^2)`` by libm where ``h^2 > 8`` (and NaN), in one row."""
    for j in range(h.size):
        if not h[j] * h[j] <= np.float32(_SERIES_EDGE2_32):
            e[j] = math.erf(h[j])
            g[j] = math.exp(-h[j] * h[j])


def gaussian_readout(FtF, FtY, var_a, sigma2, rng):
    r"""Exact draw of a read-out from its Gaussian conditional given the features ``F``.

    For :math:`f=Fa`, prior :math:`a\sim\mathcal N(0,v_a I)` and likelihood noise
    :math:`\sigma^2`, the precision is :math:`A=F^\top F/\sigma^2+I/v_a=LL^\top` and the mean
    :math:`A^{-1}F^\top Y/\sigma^2`; the draw is :math:`L^{-\top}(L^{-1}F^\top Y/\sigma^2+Z)`,
    :math:`Z\sim\mathcal N(0,I)` (one column per output when ``FtY`` is a matrix).

    Examples
    --------
    With a flat prior and almost no noise the draw is the least-squares read-out:

    >>> import numpy as np
    >>> F = np.random.default_rng(0).standard_normal((20, 3))
    >>> Y = F @ np.array([1.0, 2.0, 3.0])
    >>> gaussian_readout(F.T @ F, F.T @ Y, 1e6, 1e-8, network_rng(0)).round(3)
    array([1., 2., 3.])
    """
    from scipy.linalg.lapack import dtrtrs
    A = FtF / sigma2
    A[np.diag_indices_from(A)] += 1.0 / var_a
    L = _cholesky(A)
    Z = rng.standard_normal(FtY.shape)
    m = dtrtrs(L, np.asarray(FtY / sigma2, order="F"), lower=1)[0]
    return dtrtrs(L, m + Z, lower=1, trans=1)[0]


def gaussian_readout_wide(F, Y, var_a, sigma2, rng):
    r"""The draw of :func:`gaussian_readout` for more features than data (:math:`N>n`), by the
    :math:`n\times n` system of Bhattacharya, Chakraborty & Mallick (2016, Biometrika 103, 985):
    :math:`u\sim\mathcal N(0,v_aI_N)`, :math:`\delta\sim\mathcal N(0,I_n)`,
    :math:`(v_a\Phi\Phi^\top+I)\,w=Y/\sigma-\Phi u-\delta`, :math:`a=u+v_a\Phi^\top w` with
    :math:`\Phi=F/\sigma`; :math:`O(n^2N)` work instead of :math:`O(N^3)`.
    Float32 features (the Gibbs step of ``dtype="float32"``) give the products by sgemm and
    the system in float64.

    Examples
    --------
    Ten features, three data points: at almost no noise the drawn read-out interpolates
    the targets.

    >>> import numpy as np
    >>> F = np.random.default_rng(0).standard_normal((3, 10))
    >>> Y = np.array([1.0, -1.0, 0.5])
    >>> a = gaussian_readout_wide(F, Y, 1.0, 1e-8, network_rng(0))
    >>> a.shape, (F @ a).round(3)
    ((10,), array([ 1. , -1. ,  0.5]))
    """
    from scipy.linalg.lapack import dpotrs
    sigma = math.sqrt(sigma2)
    u = rng.standard_normal(F.shape[1]) * math.sqrt(var_a)
    delta = rng.standard_normal(F.shape[0])
    B = (F @ F.T).astype(float, copy=False) * (var_a / sigma2)
    B[np.diag_indices_from(B)] += 1.0
    w = dpotrs(_cholesky(B), (Y - F @ u.astype(F.dtype, copy=False)) / sigma - delta, lower=1)[0]
    return u + (var_a / sigma) * (F.T @ w.astype(F.dtype, copy=False))


def _cholesky(A):
    """Lower Cholesky factor of the symmetric positive definite ``A``, in place (LAPACK potrf on
    the Fortran-ordered view of ``A``: no copies; the strict upper triangle is left as it was)."""
    from scipy.linalg.lapack import dpotrf
    L, info = dpotrf(A.T if A.flags.c_contiguous else A, lower=1, clean=0, overwrite_a=1)
    if info:
        raise np.linalg.LinAlgError(f"read-out precision not positive definite (info={info})")
    return L


@njit(inline="always")
def _residual_pass(E, G, a, aE, y, lo, inv_sigma2, scale, ga_row):
    """One chunk's residual ``r = (E a - y)/sigma^2`` (``E aE`` by BLAS gemv, ``aE`` the
    read-out in the dtype of ``E``; numba's ``np.dot`` with ``out`` rounds differently); ``ga_row -= r E``; ``G *= r a scale`` (``G`` holds
    sigma'(H) / ``scale``: erf' / (2/sqrt(pi)) for erf, 1 otherwise). ``r``, ``ga_row`` and the
    products ``r a scale`` are float64 whatever the dtype of ``E`` and ``G``."""
    f = np.dot(E, aE)
    for p in range(E.shape[0]):
        rp = (f[p] - y[lo + p]) * inv_sigma2
        for j in range(E.shape[1]):
            ga_row[j] -= rp * E[p, j]
            G[p, j] *= rp * a[j] * scale


@njit(inline="always")
def _sum_parts(ga_part, gW_part):
    """Chunk partials summed in float64 in a fixed order (the result does not depend on the
    threads)."""
    ga = np.zeros(ga_part.shape[1])
    gW = np.zeros(gW_part.shape[1:])
    for c in range(ga_part.shape[0]):
        for j in range(ga.size):
            ga[j] += ga_part[c, j]
    for i in prange(gW.shape[0]):      # rows in parallel, chunks in order: the same sums
        for c in range(gW_part.shape[0]):
            for k in range(gW.shape[1]):   # element loops: no slice temporaries (2x faster)
                gW[i, k] -= gW_part[c, i, k]
    return ga, gW


# The kernels below call the activation's elementwise pass _BLOCK(H, E, G): E = sigma(H),
# G = sigma'(H) / _SCALE; _erf_block / _erf_block32 (series) for erf, otherwise _generic_block
# around the activation's pair function z -> (sigma(z), sigma'(z)) generated by
# kernelphase.codegen. numba cannot cache a kernel that takes a function as an argument (a
# dispatcher argument is typed by identity: QuantEcon's root_finding, numba/numba#3501), nor a
# cached caller of a parallel kernel (dynamic globals). So _fused_grad and _fused_pair are plain
# functions here: _kernels() copies their source into one small module per activation and dtype,
# with _BLOCK and _SCALE bound there, and compiles them @njit(parallel=True, cache=True). The
# code exists once, here; the module is regenerated whenever it (or a helper) changes.

#: the elementwise pass and the scale of sigma' in it; bound in each generated kernel module
_BLOCK = _SCALE = _ACT = None


def _generic_block(H, E, G):
    """``E = sigma(H)``, ``G = sigma'(H)`` elementwise by the generated pair function ``_ACT``."""
    for p in range(H.shape[0]):
        for j in range(H.shape[1]):
            E[p, j], G[p, j] = _ACT(H[p, j])


def _fused_pair(X, WT):
    """``sigma(X W^T)`` and ``sigma'(X W^T) / scale``, parallel over row chunks, in the dtype
    of ``X``."""
    n = X.shape[0]
    N = WT.shape[1]
    E = np.empty((n, N), X.dtype)
    G = np.empty((n, N), X.dtype)
    for c in prange((n + _CHUNK_ROWS - 1) // _CHUNK_ROWS):
        lo = c * _CHUNK_ROWS
        hi = min(n, lo + _CHUNK_ROWS)
        _BLOCK(np.dot(X[lo:hi], WT), E[lo:hi], G[lo:hi])
    return E, G


def _fused_grad(X, WT, a, aE, y, inv_sigma2, H, E, G, ga_part, gW_part):
    """Likelihood gradient, fused and parallel over fixed row chunks of the data.

    Per chunk: ``H = X_c W^T`` (BLAS gemm); one vectorised pass for ``sigma(H)`` and
    ``sigma'(H)`` (``_BLOCK``); the residual ``r = (sigma(H) a - y)/sigma^2`` and one pass for
    ``ga`` and ``G = r a sigma'(H)`` (:func:`_residual_pass`); then ``G^T X_c`` (BLAS gemm,
    written into ``gW_part[c]``). ``H``, ``E``, ``G`` are work arrays, one slab per
    thread (no allocation in the step); chunk partials are summed in float64 in a fixed order,
    so the result does not depend on the number of threads. The products run in the dtype of
    ``X`` and ``WT`` (float64 dgemm or float32 sgemm). BLAS must run single-threaded meanwhile
    (see ``_blas_single``).
    """
    n = X.shape[0]
    for c in prange(ga_part.shape[0]):
        t = numba.get_thread_id()
        lo = c * _CHUNK_ROWS
        hi = min(n, lo + _CHUNK_ROWS)
        Xc = X[lo:hi]
        Hc, Ec, Gc = H[t, :hi - lo], E[t, :hi - lo], G[t, :hi - lo]
        np.dot(Xc, WT, Hc)
        _BLOCK(Hc, Ec, Gc)
        ga_part[c] = 0.0
        _residual_pass(Ec, Gc, a, aE, y, lo, inv_sigma2, _SCALE, ga_part[c])
        np.dot(Gc.T, Xc, gW_part[c])
    return _sum_parts(ga_part, gW_part)


@functools.lru_cache(maxsize=64)
def _pair_of(expr):
    import sympy as sp
    from kernelphase.activations import Z
    from kernelphase.codegen import numba_function
    from kernelphase.moments import derivative_exprs
    ders = derivative_exprs(expr, 1)
    # constants as Floats: the generated function then returns a homogeneous float tuple
    ders = tuple(sp.Float(e, 20) if e.is_number else e for e in ders)
    try:
        fn = numba_function(ders, (Z,), name="sigma_pair")
    except Exception as exc:  # unprintable for numba (pycode strict) or not compilable
        raise ValueError(f"activation={str(expr)!r} cannot be compiled for simulation "
                         f"({type(exc).__name__}: {exc})") from None
    for z in (-3.0, 0.3, 3.0):
        if not all(math.isfinite(v) for v in fn(z)):
            raise ValueError(f"activation={str(expr)!r} is not finite at z={z}")
    return fn


_KERNEL_HEADER = """# generated by kernelphase.validation.langevin from {digest}; do not edit
import numba
import numpy as np
from numba import njit, prange

from kernelphase.validation.langevin import _CHUNK_ROWS, _residual_pass, _sum_parts
{binding}
_SCALE = {scale!r}
"""

#: the erf series' elementwise pass of each dtype, bound as _BLOCK in a fused erf kernel module
_ERF_BLOCKS = {"float64": "_erf_block", "float32": "_erf_block32"}


@functools.lru_cache(maxsize=64)
def _kernels(expr, series=None):
    """``(grad, pair)``: :func:`_fused_grad` and :func:`_fused_pair` bound to an elementwise
    pass: for ``series`` "float64" or "float32" the erf series (:func:`_erf_block`,
    :func:`_erf_block32`; ``expr`` unused), for ``series=None`` the activation ``expr``'s
    generated pair function (:func:`_generic_block`). From a generated module
    (:func:`kernelphase.codegen.module_from_source`: written once, named by the hash of its
    text, which includes a digest of the helpers it calls, cached by numba; style guide Sec. 6).
    """
    import hashlib
    import inspect
    from kernelphase.codegen import module_from_source
    kernels = [(_fused_grad, "parallel=True, "), (_fused_pair, "parallel=True, ")]
    if series is None:
        binding = f"from {_pair_of(expr).py_func.__module__} import sigma_pair as _ACT"
        kernels.insert(0, (_generic_block, ""))
        scale, tail = 1.0, "\n\n_BLOCK = _generic_block\n"
    else:
        binding = f"from kernelphase.validation.langevin import {_ERF_BLOCKS[series]} as _BLOCK"
        scale, tail = _TWO_OVER_SQRT_PI, ""
    body = "".join(f"\n\n@njit({opt}cache=True)\n{inspect.getsource(f)}" for f, opt in kernels)
    helpers = "".join(inspect.getsource(f.py_func) for f in (
        _residual_pass, _sum_parts, _erf_series, _erf_series32, _erf_block, _erf_block32,
        _erf_row_libm32))
    text = _KERNEL_HEADER.format(digest=hashlib.sha256(helpers.encode()).hexdigest()[:20],
                                 binding=binding, scale=scale) + body + tail
    mod = module_from_source(text)
    return mod._fused_grad, mod._fused_pair


def activation_pair(activation):
    r"""Compiled :math:`z\mapsto(\sigma(z),\sigma'(z))` of an activation spec.

    The expression and its SymPy derivative (:func:`kernelphase.moments.derivative_exprs`, the
    same spec the theory's moments come from) are compiled by
    :func:`kernelphase.codegen.numba_function` into a cached ``@njit`` module; the function is
    callable from Python and from numba code.

    Parameters
    ----------
    activation : str, Activation or sympy.Expr
        See :func:`kernelphase.moments.activation_expr` (``"erf"``, ``"tanh"``, ``"sin"``,
        ``"z + z**3/3"``, ...).

    Examples
    --------
    >>> import math
    >>> p, dp = activation_pair("erf")(0.5)
    >>> round(p, 4), round(math.erf(0.5), 4)
    (0.5205, 0.5205)
    >>> round(dp, 4), round(2 / math.sqrt(math.pi) * math.exp(-0.25), 4)
    (0.8788, 0.8788)
    """
    from kernelphase.moments import activation_expr
    return _pair_of(activation_expr(activation))


def _erf_expr():
    import sympy as sp
    from kernelphase.activations import Z
    return sp.erf(Z)


def _numpy_pair(expr):
    """Vectorised numpy/scipy (sigma, sigma') of ``expr`` (the reference engine): lambdify of
    the spec's expression, built from a whitelisted parse (no user text is evaluated)."""
    import sympy as sp
    from kernelphase.activations import Z
    from kernelphase.moments import derivative_exprs
    s, ds = derivative_exprs(expr, 1)
    f = sp.lambdify(Z, (s, ds), modules=["scipy", "numpy"])

    def pair(H):
        E, G = f(H)
        return np.broadcast_to(E, H.shape) + 0.0, np.broadcast_to(G, H.shape) + 0.0
    return pair


def _blas_single(post):
    """Context in which BLAS is single-threaded (the fused kernel owns the cores)."""
    import contextlib
    if getattr(post, "engine", None) != "numba":
        return contextlib.nullcontext()
    import scipy.linalg.cython_blas  # noqa: F401  (load numba's BLAS before limiting it)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(1, user_api="blas")


class NetworkPosterior:
    r"""Posterior of :math:`f(x)=\sum_{i=1}^N a_i\,\sigma(w_i\cdot x)` under the Gaussian
    likelihood of noise variance ``sigma2``; priors :math:`a_i\sim\mathcal N(0,\sigma_a^2/N)`,
    :math:`w_i\sim\mathcal N(0,\sigma_w^2 I/d)`; :math:`\sigma` any activation spec.

    :math:`\sigma` and :math:`\sigma'` come from the spec (:func:`activation_pair`: codegen of
    the expression and its SymPy derivative), so the theory's moments and the simulation use
    one source. ``kernel="generic"`` evaluates them inside a fused numba pass over the
    :math:`n\times N` pre-activations, parallel over row chunks, each chunk's two matrix
    products done by single-threaded BLAS. For erf, ``kernel="auto"`` (default) takes the
    ``"fused"`` fast path instead: erf and erf' by vectorised series (:func:`_erf_series`),
    the numbers of the erf sampler since issue 4. ``engine="numpy"`` is the plain BLAS-bound
    numpy step (scipy/numpy functions of the same expression; the benchmark's reference;
    ``benchmarks/bench_langevin.py`` measures all three).

    ``dtype="float32"`` runs the likelihood gradient (:meth:`grad_loglik`, the Langevin step's
    cost) in single precision: the two matrix products by sgemm on a float32 copy of the
    inputs and of :math:`W^\top`, erf and erf' by float32 series (:func:`_erf_series32`) or
    the activation's pair function on float32 arguments, while the residual :math:`r`, the
    read-out gradient and the sums over row chunks stay float64 and the weights ``a``, ``W``
    (hence every observable) are kept in float64. The gradient then agrees with the float64
    one to about 1e-6 relative, far below the Langevin noise of a step; the sampled posterior is
    the same within statistical error (``tests/test_langevin_float32.py``). The default
    ``"float64"`` gives the numbers of the float64 sampler bit for bit. :meth:`pair` and
    :meth:`sample_readout` are float64 in both; the Langevin-within-Gibbs step
    (:meth:`gibbs_step`) of ``"float32"`` takes its features, the read-out draw's products and
    the gradient's in float32 (the draw's linear system in float64). With ``engine="numba"`` the float32
    step also draws its Gaussian noise :math:`\xi` inside numba (``noise == "numba"``): float64
    normals from xoshiro256** streams by the ziggurat, fused with the exponential-Euler update
    and parallel over fixed blocks of weights, each keyed by one 63-bit draw of the network's
    stream per update (:func:`_ou_step_noise`); the same seed gives the same run on any number
    of threads, and a resumed run continues bit for bit (``tests/test_langevin_f32_noise.py``).
    Otherwise ``noise == "numpy"``: numpy's ``standard_normal`` from that stream.
    """

    def __init__(self, X, y, sigma2, sigma_a2, sigma_w2, width, activation="erf",
                 engine="numba", readout="langevin", kernel="auto", dtype="float64"):
        from kernelphase.moments import activation_expr
        self.X = np.ascontiguousarray(X, dtype=float)
        self.y = np.ascontiguousarray(y, dtype=float)
        if self.X.ndim != 2 or self.y.shape != self.X.shape[:1]:
            raise ValueError(f"X of shape {self.X.shape} and y of shape {self.y.shape} do not "
                             f"match; need X (n, d) and y (n,)")
        if not (np.isfinite(self.X).all() and np.isfinite(self.y).all()):
            raise ValueError("X or y contains NaN or inf; the data must be finite")
        self.n, self.d = self.X.shape
        self.sigma2 = check_positive("sigma2", sigma2)
        self.N = check_int("width", width, 1)
        self.var_a = check_positive("sigma_a2", sigma_a2) / self.N
        self.var_w = check_positive("sigma_w2", sigma_w2) / self.d
        self.engine = check_choice("engine", engine, ("numba", "numpy"))
        self.readout = check_choice("readout", readout, ("langevin", "gibbs"))
        kernel = check_choice("kernel", kernel, ("auto", "fused", "generic"))
        self.dtype = check_choice("dtype", dtype, DTYPES)
        self.expr = activation_expr(activation)
        is_erf = self.expr == _erf_expr()
        if kernel == "fused" and not is_erf:
            raise ValueError(f"kernel='fused' is for activation='erf' only, not "
                             f"activation={str(self.expr)!r}; valid: 'auto', 'generic'")
        self.kernel = "fused" if kernel == "auto" and is_erf else (
            "generic" if kernel == "auto" else kernel)
        self.__setstate__({})

    def __getstate__(self):
        # the compiled kernels live in generated modules that a spawned worker has not
        # imported: send the spec and rebuild them there (from numba's on-disk cache)
        return {k: v for k, v in self.__dict__.items()
                if k not in ("_act", "_act_step", "_np_pair", "_X_step", "_work")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("dtype", "float64")
        generic = self.kernel == "generic"
        self._np_pair = _numpy_pair(self.expr) if generic and self.engine == "numpy" else None
        self._act = self._act_step = None
        if self.engine == "numba":      # (grad, pair) kernels in float64 and in the step's dtype
            self._act = _kernels(self.expr, None if generic else "float64")
            self._act_step = self._act if self.dtype == "float64" else _kernels(
                self.expr, None if generic else self.dtype)
        self._X_step = self.X if self.dtype == "float64" else self.X.astype(self.dtype)
        # the float32 fused step draws its noise in numba (_ou_step_noise); the float64 step
        # keeps numpy's stream (its numbers bit for bit), the numpy engine too (the reference)
        self.noise = "numba" if self.engine == "numba" and self.dtype == "float32" else "numpy"
        self._work = {}                 # work arrays of the fused gradient, per calling thread

    def prior_sample(self, rng):
        """One network drawn from the prior: ``a`` (N,), ``W`` (N, d)."""
        return (rng.standard_normal(self.N) * math.sqrt(self.var_a),
                rng.standard_normal((self.N, self.d)) * math.sqrt(self.var_w))

    def features(self, W, X=None):
        r""":math:`\sigma(XW^\top)` on the rows of ``X`` (default: the training inputs)."""
        X = self.X if X is None else np.ascontiguousarray(X, dtype=float)
        if self.kernel == "fused":
            from scipy.special import erf
            return erf(X @ W.T)
        if self.engine == "numba":
            return self._act[1](X, np.ascontiguousarray(W.T))[0]
        return self._numpy_pair(X, W)[0]

    def forward(self, a, W, X=None):
        """Output on the rows of ``X`` (default: the training inputs)."""
        return self.features(W, X) @ a

    def pair(self, W):
        r""":math:`\sigma(H)` and :math:`\sigma'(H)/s` for :math:`H=XW^\top` on the training
        inputs, each (n, N); :math:`s=2/\sqrt\pi` on the erf fast path (the second array is
        then :math:`e^{-H^2}`), else 1."""
        if self.engine == "numba":
            return self._act[1](self.X, np.ascontiguousarray(W.T))
        return self._numpy_pair(self.X, W)

    def _numpy_pair(self, X, W):
        """:meth:`pair` of the numpy engine on the rows of ``X``, in the dtype of ``X``."""
        H = X @ W.T.astype(X.dtype, copy=False)
        if self.kernel == "fused":
            from scipy.special import erf
            return erf(H), np.exp(-H * H)
        return self._np_pair(H)

    def sample_readout(self, W, rng):
        r"""Exact draw of ``a`` from :math:`p(a\mid W,\mathcal D)`: :func:`gaussian_readout` with
        the features :math:`F=\sigma(XW^\top)` (:func:`gaussian_readout_wide` if
        :math:`N>n`)."""
        return self._draw_readout(self.pair(W)[0], rng)

    def _draw_readout(self, F, rng):
        if self.N > self.n:
            return gaussian_readout_wide(F, self.y, self.var_a, self.sigma2, rng)
        return gaussian_readout((F.T @ F).astype(float, copy=False), F.T @ self.y, self.var_a,
                                self.sigma2, rng)

    def gibbs_step(self, W, rng):
        """One Langevin-within-Gibbs update's inputs (``readout="gibbs"``): the read-out drawn by
        :meth:`sample_readout` and the read-in gradient at it, from one evaluation of the pair
        (with ``dtype="float32"`` the pair, the draw's products and the gradient's in float32,
        the draw's linear system in float64)."""
        if self.dtype == "float64":
            E, G = self.pair(W)
        elif self.engine == "numba":
            E, G = self._act_step[1](self._X_step, np.ascontiguousarray(W.T, dtype=self.dtype))
        else:
            E, G = self._numpy_pair(self._X_step, W)
        a = self._draw_readout(E, rng)
        return a, self._grad_from_pair(E, G, a, self._X_step)[1]

    def _grad_from_pair(self, E, G, a, X=None):
        """Gradient from fresh ``pair`` arrays on the rows of ``X`` (default: the training
        inputs); ``G`` is overwritten (no n x N temporaries). Float32 arrays: float32 products,
        the residual and the read-out gradient in float64."""
        X = self.X if X is None else X
        aE = a.astype(E.dtype, copy=False)
        r = (E @ aE - self.y) / self.sigma2
        G *= r[:, None]
        G *= (_TWO_OVER_SQRT_PI if self.kernel == "fused" else 1.0) * aE
        ga = -(r @ E) if E.dtype == np.float64 else -(E.T @ r.astype(E.dtype)).astype(float)
        return ga, (-(G.T @ X)).astype(float, copy=False)

    def _work_arrays(self):
        """Work arrays of the fused gradient for the calling thread (kept between steps): one
        chunk slab of ``H``, ``E``, ``G`` per numba thread, and the chunk partials."""
        import threading
        work = self._work.get(threading.get_ident())
        if work is None:
            slabs, rows = numba.config.NUMBA_NUM_THREADS, min(_CHUNK_ROWS, self.n)
            chunks = (self.n + _CHUNK_ROWS - 1) // _CHUNK_ROWS
            dt = self._X_step.dtype
            work = self._work[threading.get_ident()] = (
                *(np.empty((slabs, rows, self.N), dt) for _ in range(3)),
                np.empty((chunks, self.N)),
                np.empty((chunks, self.N, self.d), dt))
        return work

    def grad_loglik(self, a, W):
        r"""Gradient of :math:`\ell=-\sum_\mu(f(x_\mu)-y_\mu)^2/2\sigma^2` in ``a`` and ``W``:
        :math:`-\Phi^\top r` and :math:`-(r\,a\,\sigma'(H))^\top X`, with
        :math:`H=XW^\top`, :math:`\Phi=\sigma(H)`, :math:`r=(\Phi a-y)/\sigma^2`."""
        X = self._X_step
        if self.engine == "numba":
            # float32: a transposed view (BLAS transposes; cheaper than a copy); float64: the
            # contiguous copy it always used (the transposed gemm rounds differently)
            WT = (np.ascontiguousarray(W.T) if X.dtype == np.float64
                  else np.ascontiguousarray(W, dtype=X.dtype).T)
            aE = a if X.dtype == a.dtype else a.astype(X.dtype)
            return self._act_step[0](X, WT, a, aE, self.y, 1.0 / self.sigma2,
                                     *self._work_arrays())
        return self._grad_from_pair(*self._numpy_pair(X, W), a, X)

    def grad_logp(self, a, W):
        """Gradient of the full log posterior (prior included); used by the tests."""
        ga, gW = self.grad_loglik(a, W)
        return ga - a / self.var_a, gW - W / self.var_w


class ErfNetworkPosterior(NetworkPosterior):
    r"""The erf preset of :class:`NetworkPosterior`,
    :math:`f(x)=\sum_i a_i\,\mathrm{erf}(w_i\cdot x)` (Rubin et al. 2023, Sec. 2.1), on the
    fused fast path by default."""

    def __init__(self, X, y, sigma2, sigma_a2, sigma_w2, width, engine="numba",
                 readout="langevin", kernel="auto", dtype="float64"):
        super().__init__(X, y, sigma2, sigma_a2, sigma_w2, width, activation="erf",
                         engine=engine, readout=readout, kernel=kernel, dtype=dtype)

    def erf_pair(self, W):
        r""":math:`\mathrm{erf}(H)` and :math:`e^{-H^2}` (fast path) for :math:`H=XW^\top`."""
        return self.pair(W)


@dataclasses.dataclass(frozen=True, eq=False)
class LangevinState(Result):
    """Final state of one network's Langevin run (:func:`langevin_run`).

    ``a``, ``W`` are the weights after ``step`` steps; ``acc`` the sums of the observables
    (``acc["count"]`` samples); ``trace`` the recorded rows at ``trace_steps``; ``series`` the
    per-sample scalar series (row ``i`` at step ``(i + 1) * sample_every``, burn-in included),
    for autocorrelation times (:mod:`.autocorr`). ``status`` is 0,
    or 6 ("run diverged") when the weights turned NaN or infinite, in which case the run stopped
    at that ``step`` and ``acc`` holds only the samples taken before. "Diverged" means a weight
    is NaN, infinite or beyond :data:`DIVERGED_STDS` prior standard deviations.
    """
    a: np.ndarray
    W: np.ndarray
    acc: Mapping[str, Any]
    step: int
    trace: np.ndarray
    trace_steps: np.ndarray
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    series: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 0)))


def _ou_coefficients(var, lr):
    """Exact OU step of a Gaussian prior of variance ``var``: decay, force gain, noise scale."""
    decay = math.exp(-lr / var)
    return decay, var * -math.expm1(-lr / var), math.sqrt(var * -math.expm1(-2 * lr / var))


def langevin_run(post, steps, lr, seed, key=(), burn_in=0, sample_every=10, observe=None,
                 trace=None, checkpoint=None, checkpoint_every=1000, params=None, bar=None,
                 series=None, init=None):
    r"""Run one network for ``steps`` Langevin steps of length ``lr``; return its final state.

    Parameters
    ----------
    post : posterior with ``var_a``, ``var_w``, ``prior_sample(rng)``, ``grad_loglik(a, W)``;
        with ``readout = "gibbs"`` also ``gibbs_step(W, rng) -> (a, grad_W)``.
    seed, key : the network's random stream is :func:`network_rng` ``(seed, *key)``.
    observe : ``observe(a, W) -> dict`` of arrays; after ``burn_in`` their sums over every
        ``sample_every``-th step are accumulated (``acc["count"]`` holds the number of samples).
    trace : ``(steps_to_record, fn)``; ``fn(a, W)`` returns a 1-D array recorded at those steps
        (a learning curve), returned as ``trace`` (rows in the order of ``steps_to_record``).
    checkpoint : ``(run_dir, name)``: a :class:`kernelphase.io.RunDir` and this network's state
        file in it, saved every ``checkpoint_every`` steps, at the end and on divergence. When
        the run folder was opened with ``resume=True`` the run continues from that file (the
        folder's key, checked by ``RunDir``, guarantees the parameters match; ``steps`` must not
        be below the saved step).
    params : recorded in the result's ``params``.
    bar : a tqdm bar advanced once per step, or None.
    series : ``fn(a, W) -> 1-D array`` of scalars (e.g. b and c of the current output),
        recorded at every ``sample_every``-th step from the first, burn-in included, so that
        the burn-in can be judged from the autocorrelation time; returned as ``series``.
    init : ``(a, W)`` starting weights, shapes ``(N,)`` and ``(N, d)`` (default: a draw from
        the prior). The hysteresis protocol (:mod:`.hysteresis`) starts each point of a sweep
        from the previous point's final state. A checkpoint, when present, takes precedence.

    Returns
    -------
    LangevinState
        ``status`` 0, or 6 when the run diverged (a weight NaN, infinite or beyond
        :data:`DIVERGED_STDS` prior standard deviations; the run stops at that step).

    Examples
    --------
    Twenty steps of a width-8 erf network on ten points; an observable summed every fifth
    step gives four samples, and the same seed gives the same weights:

    >>> import numpy as np
    >>> from kernelphase.validation.langevin import ErfNetworkPosterior
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> post = ErfNetworkPosterior(X, X[:, 0], 0.2, 1.0, 0.5, 8)
    >>> st = langevin_run(post, 20, 0.01, seed=0, sample_every=5,
    ...                   observe=lambda a, W: {"a2": a @ a})
    >>> st.status, st.step, st.W.shape, int(st.acc["count"])
    (0, 20, (8, 3), 4)
    >>> bool(np.array_equal(st.W, langevin_run(post, 20, 0.01, seed=0).W))
    True
    """
    steps = check_int("steps", steps, 1)
    lr = check_positive("lr", lr)
    sample_every = check_int("sample_every", sample_every, 1)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    burn_in = check_int("burn_in", burn_in, 0)
    seed = check_int("seed", seed, 0)
    key = tuple(check_int("key", k, 0) for k in key)
    rng = network_rng(seed, *key)
    if init is not None:
        init = _check_init(post, init)
    rec_steps, rec_fn = trace if trace is not None else ((), None)
    rec_steps = np.asarray(rec_steps, dtype=np.int64)
    store, name = checkpoint if checkpoint is not None else (None, None)
    acc, rec, ser = {}, {}, []
    st = store.load(name) if store is not None else None
    if st is not None:
        a, W, step = st["a"], st["W"], int(st["step"])
        if step > steps:
            raise ValueError(f"steps={steps} is below the {step} steps already saved in "
                             f"{store.file(name)!r}")
        rng.bit_generator.state = st["rng"]
        acc = {k[4:]: st[k] for k in st if k.startswith("acc_")}
        rec = {int(s): row for s, row in zip(st.get("rec_steps", ()), st.get("rec_rows", ()))}
        ser = list(st.get("ser_rows", ()))
    else:
        a, W = post.prior_sample(rng) if init is None else init
        step = 0
        if rec_fn is not None and 0 in rec_steps:
            rec[0] = np.asarray(rec_fn(a, W), float)
    if bar is not None:
        bar.update(step)
    da, ka, na = _ou_coefficients(post.var_a, lr)
    dw, kw, nw = _ou_coefficients(post.var_w, lr)
    bounds = (DIVERGED_STDS * math.sqrt(post.var_a), DIVERGED_STDS * math.sqrt(post.var_w))
    wanted = set(rec_steps.tolist())
    save = None
    if store is not None:
        def save(step, a, W):
            keys = sorted(rec)
            extra = dict(rec_steps=np.asarray(keys, np.int64),
                         rec_rows=np.asarray([rec[s] for s in keys])) if keys else {}
            if ser:
                extra["ser_rows"] = np.asarray(ser)
            store.save(name, a=a, W=W, step=step, rng=rng.bit_generator.state,
                       **{"acc_" + k: v for k, v in acc.items()}, **extra)
    with _blas_single(post):
        step, a, W, failure = _steps(post, steps, step, a, W, rng, (da, ka, na, dw, kw, nw),
                                     bounds, burn_in, sample_every, observe, acc, wanted, rec_fn,
                                     rec, bar, save, checkpoint_every, series, ser)
    if bar is not None and step < steps:
        bar.update(steps - step)
    keys = [s for s in rec_steps.tolist() if s in rec]
    status, detail = (0, None) if failure is None else (
        6, f"{failure} at step {step} of network {tuple(key)} (lr={lr:g})")
    return LangevinState(a=a, W=W, acc=acc, step=step,
                         trace=np.asarray([rec[s] for s in keys]), trace_steps=np.asarray(keys),
                         status=status, message=status_message(status, detail),
                         params=dict(params or {}, lr=lr, seed=seed, key=tuple(key),
                                     burn_in=burn_in, sample_every=sample_every, steps=steps,
                                     init="given" if init is not None else "prior"),
                         series=np.asarray(ser, float) if ser else np.empty((0, 0)))


def _check_init(post, init):
    """``init = (a, W)`` as float arrays of the posterior's shapes, finite; else ValueError."""
    try:
        a, W = init
    except (TypeError, ValueError):
        raise ValueError("init must be a pair (a, W) of arrays") from None
    a = np.array(a, dtype=float)
    W = np.array(W, dtype=float)
    sa, sw = getattr(post, "shapes", ((post.N,), (post.N, getattr(post, "d", 0))))
    if a.shape != sa or W.shape != sw:
        raise ValueError(f"init has shapes {a.shape} and {W.shape}; need a {sa} and W {sw}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(W))):
        raise ValueError("init contains NaN or inf; the starting weights must be finite")
    return a, W


#: a weight beyond this many prior standard deviations means the run diverged (its prior
#: log-density alone would be below -5e7: no posterior of these models puts mass there)
DIVERGED_STDS = 1e4


_DIVERGED = f"weights NaN, infinite or beyond {DIVERGED_STDS:g} prior standard deviations"


@njit(cache=True)
def _in_bounds(a, W, bound_a, bound_w):
    """True when every ``|a| <= bound_a`` and ``|W| <= bound_w`` (False for NaN); no temporaries
    (checked every step). An and-reduction without early exit: it vectorises (3x faster)."""
    ok = True
    x = a.ravel()
    for i in range(x.size):
        ok &= abs(x[i]) <= bound_a
    x = W.ravel()
    for i in range(x.size):
        ok &= abs(x[i]) <= bound_w
    return ok


@njit(cache=True)
def _ou_step(x, g, xi, decay, gain, noise):
    """``decay x + gain g + noise xi`` (one exponential-Euler step, module docstring), written
    into the fresh noise array ``xi``: one pass, no temporaries. The same operations in the same
    order as the numpy expression, so the same numbers bit for bit."""
    out = xi.ravel()
    xs = x.ravel()
    gs = g.ravel()
    for i in range(out.size):
        out[i] = decay * xs[i] + gain * gs[i] + noise * out[i]
    return xi


# Gaussian noise of the float32 step, drawn inside a parallel numba loop and fused with the
# exponential-Euler update (``_ou_step_noise``): xoshiro256** bits, ziggurat normals.
#: elements per noise block: each block has its own stream, so the numbers do not depend on
#: the number of threads
_NOISE_BLOCK = 4096
#: up to this many blocks are drawn in the calling thread (a parallel region costs more)
_SERIAL_NOISE_BLOCKS = 4
_ZIG_LAYERS = 256
_ZIG_R = 3.6541528853610088     # Marsaglia & Tsang (2000), Sec. 2, n = 256: start of the tail
_GOLDEN = 0x9E3779B97F4A7C15


@functools.lru_cache(maxsize=4)
def _ziggurat_tables(layers=_ZIG_LAYERS, r=_ZIG_R):
    r"""Tables of the ziggurat for :math:`f(x)=e^{-x^2/2}` on :math:`x\ge0`
    (Marsaglia & Tsang 2000, J. Stat. Softw. 5(8), Sec. 2): ``layers`` strips of equal area

    .. math:: v=r f(r)+\int_r^\infty f(x)\,dx,\qquad x_0=v/f(r),\ x_1=r,\
              x_{i+1}=f^{-1}\big(f(x_i)+v/x_i\big),\ x_{\mathrm{layers}}=0 .

    Strip :math:`i` is the rectangle :math:`[0,x_i]\times[f(x_i),f(x_{i+1})]` (strip 0: the base,
    :math:`[0,x_0]\times[0,f(r)]` with the tail beyond :math:`r`). Returns ``k`` (uint64,
    :math:`\lfloor 2^{52}x_{i+1}/x_i\rfloor`: a 52-bit draw below it is inside the next strip's
    width, accepted at once), ``w`` (:math:`x_i/2^{52}`) and ``f`` (:math:`f(x_i)`, with
    :math:`f(x_{\mathrm{layers}})=1` appended).
    """
    f_r = math.exp(-0.5 * r * r)
    v = r * f_r + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))
    x = [v / f_r, r]
    for _ in range(layers - 2):
        x.append(math.sqrt(-2.0 * math.log(math.exp(-0.5 * x[-1] ** 2) + v / x[-1])))
    x.append(0.0)
    x = np.array(x)
    scale = 2.0 ** 52
    k = np.array([int(scale * x[i + 1] / x[i]) for i in range(layers)], dtype=np.uint64)
    return k, x[:layers] / scale, np.exp(-0.5 * x * x)


@njit(inline="always")
def _rotl(z, k):
    return (z << np.uint64(k)) | (z >> np.uint64(64 - k))


@njit(inline="always")
def _mix64(z):
    """The SplitMix64 output function (Steele, Lea & Flood 2014): a bijection of uint64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _xoshiro_seed(key, block):
    """xoshiro256** state of one noise block: four SplitMix64 outputs from
    ``mix(key ^ mix(block))`` (the seeding its authors recommend; never all zero)."""
    z = _mix64(key ^ _mix64(np.uint64(block) + np.uint64(_GOLDEN)))
    g = np.uint64(_GOLDEN)
    return _mix64(z + g), _mix64(z + g * np.uint64(2)), _mix64(z + g * np.uint64(3)), \
        _mix64(z + g * np.uint64(4))


@njit(inline="always")
def _xoshiro(s):
    """xoshiro256** (Blackman & Vigna 2021, ACM TOMS 47(4), 36): ``(next state, 64 bits)``."""
    s0, s1, s2, s3 = s
    out = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    return (s0, s1, s2, _rotl(s3, 45)), out


@njit(inline="always")
def _open_uniform(u):
    """A uniform on (0, 1) from the top 53 bits of ``u``."""
    return (float(u >> np.uint64(11)) + 0.5) * 2.0 ** -53


@njit(inline="always")
def _ziggurat_normal(s, k, w, f):
    """One standard normal by the ziggurat (Marsaglia & Tsang 2000) from the stream ``s``:
    ``(next state, z)``. Of each 64-bit draw, bits 0-7 pick the strip, bit 8 the sign and bits
    12-63 the abscissa (no bit serves twice, unlike the 32-bit original; Doornik 2005)."""
    while True:
        s, u = _xoshiro(s)
        i = np.intp(u & np.uint64(_ZIG_LAYERS - 1))
        sign = 1.0 - 2.0 * float((u >> np.uint64(8)) & np.uint64(1))
        m = u >> np.uint64(12)
        x = float(m) * w[i]
        if m < k[i]:                      # inside the next strip's width: accepted
            return s, sign * x
        if i == 0:                        # the tail beyond r (Marsaglia 1964)
            while True:
                s, u1 = _xoshiro(s)
                s, u2 = _xoshiro(s)
                t = -math.log(_open_uniform(u1)) / _ZIG_R
                if -2.0 * math.log(_open_uniform(u2)) > t * t:
                    return s, sign * (_ZIG_R + t)
        s, u1 = _xoshiro(s)               # the wedge: accept under f
        if f[i] + _open_uniform(u1) * (f[i + 1] - f[i]) < math.exp(-0.5 * x * x):
            return s, sign * x


def _ou_step_noise(x, g, key, decay, gain, noise):
    r"""``decay x + gain g + noise xi`` (the exponential-Euler step of :func:`_ou_step`) with
    :math:`\xi\sim\mathcal N(0,I)` drawn inside the numba loop, in float64: element ``i`` is in
    block ``i // _NOISE_BLOCK``, whose xoshiro256** stream is seeded from ``(key, block)``
    (:func:`_xoshiro_seed`), its normals by :func:`_ziggurat_normal`. Blocks run in parallel
    (up to :data:`_SERIAL_NOISE_BLOCKS` of them, as for the read-out, in the calling thread).
    One fresh float64 array and no noise array; the numbers depend on ``key`` alone, not on
    the number of threads, and the noise of a shorter array is a prefix of a longer one's."""
    x = np.ascontiguousarray(x, dtype=float)
    g = np.ascontiguousarray(g, dtype=float)
    args = (np.uint64(key), float(decay), float(gain), float(noise), *_ziggurat_tables())
    if x.size > _SERIAL_NOISE_BLOCKS * _NOISE_BLOCK:
        return _ou_noise_blocks(x, g, *args)
    out = np.empty_like(x)
    for b in range(-(-x.size // _NOISE_BLOCK)):
        _ou_noise_block(out.ravel(), x.ravel(), g.ravel(), b, *args)
    return out


@njit(parallel=True, cache=True)
def _ou_noise_blocks(x, g, key, decay, gain, noise, k, w, f):
    """:func:`_ou_step_noise`, its blocks in parallel."""
    out = np.empty_like(x)
    o, xs, gs = out.ravel(), x.ravel(), g.ravel()
    for b in prange((o.size + _NOISE_BLOCK - 1) // _NOISE_BLOCK):
        _ou_noise_block(o, xs, gs, b, key, decay, gain, noise, k, w, f)
    return out


@njit(cache=True)
def _ou_noise_block(o, xs, gs, b, key, decay, gain, noise, k, w, f):
    """Block ``b`` of :func:`_ou_step_noise` (serial: its own stream)."""
    s = _xoshiro_seed(key, b)
    for i in range(b * _NOISE_BLOCK, min(o.size, (b + 1) * _NOISE_BLOCK)):
        s, z = _ziggurat_normal(s, k, w, f)
        o[i] = decay * xs[i] + gain * gs[i] + noise * z


def _ou_update(x, g, rng, decay, gain, noise, fused):
    """One exponential-Euler step of ``x`` with force ``g``: noise by numpy's
    ``standard_normal`` and :func:`_ou_step`, or (``fused``) by :func:`_ou_step_noise` keyed by
    one 63-bit draw of ``rng`` (so the run's stream, and a checkpoint of it, fix the noise)."""
    if fused:
        return _ou_step_noise(x, g, rng.integers(2 ** 63), decay, gain, noise)
    return _ou_step(x, g, rng.standard_normal(x.shape), decay, gain, noise)


def _steps(post, steps, step, a, W, rng, coef, bounds, burn_in, sample_every, observe, acc,
           wanted, rec_fn, rec, bar, save, checkpoint_every, series_fn=None, ser=None):
    """Advance to ``steps``; return ``(step, a, W, failure)``, ``failure`` None or why the
    run stopped early."""
    da, ka, na, dw, kw, nw = coef
    gibbs = getattr(post, "readout", "langevin") == "gibbs"
    fused = getattr(post, "noise", "numpy") == "numba"
    if not _in_bounds(a, W, *bounds):   # resumed from the checkpoint of a diverged run
        return step, a, W, _DIVERGED
    while step < steps:
        if gibbs:
            try:
                a, gW = post.gibbs_step(W, rng)
            except np.linalg.LinAlgError:   # read-out precision lost positive definiteness
                return step, a, W, "read-out precision not positive definite"
        else:
            ga, gW = post.grad_loglik(a, W)
            a = _ou_update(a, ga, rng, da, ka, na, fused)
        W = _ou_update(W, gW, rng, dw, kw, nw, fused)
        step += 1
        if not _in_bounds(a, W, *bounds):
            if save is not None:
                save(step, a, W)
            return step, a, W, _DIVERGED
        if series_fn is not None and step % sample_every == 0:
            ser.append(np.asarray(series_fn(a, W), float).ravel())
        if observe is not None and step > burn_in and step % sample_every == 0:
            for k, v in observe(a, W).items():
                acc[k] = acc.get(k, 0) + np.asarray(v, float)
            acc["count"] = acc.get("count", 0) + 1.0
        if step in wanted:
            rec[step] = np.asarray(rec_fn(a, W), float)
        if bar is not None:
            bar.update(1)
        if save is not None and (step % checkpoint_every == 0 or step == steps):
            save(step, a, W)
    return step, a, W, None
