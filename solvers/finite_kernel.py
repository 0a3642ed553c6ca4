r"""Adaptive-kernel mean-field equations on an actual training set (finite data, not EK).

For a two-layer network :math:`f(x)=\sum_{i=1}^N a_i\,\phi(w_i\cdot x)` with priors
:math:`a_i\sim\mathcal N(0,\sigma_a^2/N)`, :math:`w_i\sim\mathcal N(0,(\sigma_w^2/d)I_d)` and
Gaussian likelihood of variance :math:`\sigma^2` on :math:`n` training pairs
:math:`(x_\mu,y_\mu)`, the adaptive-kernel equations (Rubin, Seroussi & Ringel 2023, Sec. 2.4.2,
Eqs. 7-10; theory notes ``adaptive_kernel.md`` Secs. 3.2-3.3) read

.. math::
    \bar t=(Q+\sigma^2 I_n)^{-1}y,\qquad
    Q_{\mu\nu}=\sigma_a^2\,\langle\phi(w\cdot x_\mu)\,\phi(w\cdot x_\nu)\rangle_{p(w)},\qquad
    p(w)\propto\exp\Big(-\frac{d\,|w|^2}{2\sigma_w^2}
        +\frac{\sigma_a^2}{2N}\big(\bar t\cdot\phi(Xw)\big)^2\Big).

With ``cavity=True`` the single-neuron law is the exact cavity law (notes Sec. 3.4)

.. math::
    p(w)\propto p_0(w)\,L^{-1/2}\exp\Big[\frac{\sigma_a^2(\bar t\cdot\phi)^2}{2NL}\Big],\qquad
    L=1+\frac{\sigma_a^2\,\phi\cdot\phi}{N\sigma^2},\qquad \phi\equiv\phi(Xw)\in\mathbb R^n .

What was verified (by hand, for this module): write the likelihood as
:math:`\exp(-|r-a_i\phi|^2/2\sigma^2)` with the cavity residual
:math:`r=y-\sum_{j\ne i}a_j\phi(Xw_j)`. The Gaussian integral over :math:`a_i` with prior precision
:math:`N/\sigma_a^2` gives, relative to :math:`a_i=0` and up to :math:`w`-independent factors,
:math:`(A\sigma_a^2/N)^{-1/2}\exp[(r\cdot\phi)^2/(2\sigma^4A)]` with
:math:`A=N/\sigma_a^2+\phi\cdot\phi/\sigma^2`; since :math:`A\sigma_a^2/N=L`, the exponent is
:math:`\sigma_a^2(r\cdot\phi/\sigma^2)^2/(2NL)`. Mean field replaces :math:`r/\sigma^2` by its
average :math:`\bar t` (the fluctuations of the cavity residual are dropped, as in Eq. 7). For
:math:`L\to1` this is Eq. 7, and :math:`L-1=O(n\sigma_a^2/N\sigma^2)`. In both variants the kernel
stays :math:`Q=\sigma_a^2\langle\phi\phi^\top\rangle` under the respective law.

Algorithm (after Rubin, Fischer, Lindner, Seroussi, Ringel, Kraemer & Helias 2025, "From Kernels to
Features", ICML, arXiv 2502.03210, Algorithm 1): start from the NNGP (interaction off), switch the
interaction on in ``anneal`` equal steps :math:`\lambda=1/\mathrm{anneal},\dots,1` (the tilt
coefficient is :math:`\lambda\sigma_a^2/N`, i.e. the width is annealed from infinity to N), and at
each step iterate the fixed point with the update of :math:`Q` damped,
:math:`Q\leftarrow(1-\gamma)Q+\gamma Q_{\rm MC}[\bar t]`, warm-starting the Markov chains.

Neuron average: many parallel MALA chains (numba), preconditioned by the prior covariance
:math:`\sigma_w^2/d`, step size adapted in the burn-in of every iteration to an acceptance rate
near 0.6, then frozen. The activation and its derivative are compiled from the activation spec
(:func:`kernelphase.moments.activation_expr`, :func:`kernelphase.codegen.numba_function`). The
Monte Carlo standard errors come from batch means over chains (``batches`` contiguous groups of
chains); those of the predictor, of ``b`` and ``c`` are jackknife errors over the same batches and
include the propagation of the noise of :math:`Q` into :math:`\bar t`.

Hermite projections (same definition as ``validation/teacher_student.py`` and as
:func:`solvers.cubic.cubic_phase`, where
:math:`\sigma^2\bar t=b\,\mathrm{He}_1+c\,\mathrm{He}_3` in the EK limit, Sec. 4.1 of the
notes): on the test points, with teacher direction :math:`e_1` (:math:`z=x_1`),

.. math::  b=\overline{(y-\bar f)\,\mathrm{He}_1(z)},\qquad
           c=\overline{(y-\bar f)\,\mathrm{He}_3(z)}/6,

probabilists' Hermite polynomials, :math:`\mathrm{He}_3=z^3-3z`, bar = mean over the test points.
The errors of ``b``, ``c`` are Monte Carlo errors only (the test set is fixed); the test-set
sampling error is the same for a simulation evaluated on the same test points.

Not done: importance reweighting of the previous iteration's samples (the chains are warm-started
instead), and the fluctuations of the cavity residual around :math:`\bar t`.
"""
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase._checks import check_int, check_range
from kernelphase.results import Result, status_message

__all__ = ["FiniteKernelResult", "TiltedKernelResult", "finite_data_kernel", "tilted_kernel",
           "nngp_erf_kernel"]

_GIB = 1024 ** 3
_MAX_BYTES = 8 * _GIB
_TARGET_ACCEPT = 0.6


# ----------------------------------------------------------------------------------------------
# numba cores. They take the compiled activation ``act`` (returns (phi, phi')) as an argument;
# numba cannot cache a function whose arguments are other jitted functions (the dispatcher type
# is not picklable into the cache index), so these stay uncached: style guide Sec. 6.
# ----------------------------------------------------------------------------------------------
_CORES = {}


def _cores():
    if _CORES:
        return _CORES
    from numba import njit, prange

    @njit
    def _eval_one(act, w, X, tbar, kappa, sigma2, cavity, prec, out_logp, g, f, k):
        n, d = X.shape
        s = 0.0
        q = 0.0
        gs = np.zeros(d)
        gq = np.zeros(d)
        for mu in range(n):
            h = 0.0
            for j in range(d):
                h += X[mu, j] * w[j]
            p, dp = act(h)
            f[mu] = p
            s += tbar[mu] * p
            q += p * p
            a = tbar[mu] * dp
            bq = 2.0 * p * dp
            for j in range(d):
                gs[j] += a * X[mu, j]
                gq[j] += bq * X[mu, j]
        ww = 0.0
        for j in range(d):
            ww += w[j] * w[j]
        if cavity:
            L = 1.0 + kappa * q / sigma2
            out_logp[k] = -0.5 * prec * ww - 0.5 * math.log(L) + 0.5 * kappa * s * s / L
            cq = (-0.5 / L - 0.5 * kappa * s * s / (L * L)) * kappa / sigma2
            cs = kappa * s / L
            for j in range(d):
                g[j] = -prec * w[j] + cs * gs[j] + cq * gq[j]
        else:
            out_logp[k] = -0.5 * prec * ww + 0.5 * kappa * s * s
            for j in range(d):
                g[j] = -prec * w[j] + kappa * s * gs[j]

    @njit(parallel=True)
    def evaluate(act, W, X, tbar, kappa, sigma2, cavity, prec, lam_logp, grad, F):
        """log target, its gradient and the features phi(X w) of every chain."""
        C, d = W.shape
        for k in prange(C):
            _eval_one(act, W[k], X, tbar, kappa, sigma2, cavity, prec, lam_logp, grad[k], F[k], k)

    @njit(parallel=True)
    def mala_block(act, W, logp, grad, F, X, tbar, kappa, sigma2, cavity, prec, h, noise,
                   unif, accepted):
        """``noise.shape[1]`` MALA steps of every chain; proposal
        w' = w + (h/2) M grad + sqrt(h M) xi with M = 1/prec (the prior variance)."""
        C, d = W.shape
        n = X.shape[0]
        steps = noise.shape[1]
        m = 1.0 / prec
        for k in prange(C):
            w = W[k].copy()
            g = grad[k].copy()
            f = F[k].copy()
            lp = logp[k]
            wn = np.empty(d)
            gn = np.empty(d)
            fn = np.empty(n)
            lpn = np.empty(1)
            for t in range(steps):
                for j in range(d):
                    wn[j] = w[j] + 0.5 * h * m * g[j] + math.sqrt(h * m) * noise[k, t, j]
                _eval_one(act, wn, X, tbar, kappa, sigma2, cavity, prec, lpn, gn, fn, 0)
                # log q(w | wn) - log q(wn | w), q(a|b) = N(a; b + (h/2) M grad(b), h M)
                fwd = 0.0
                bwd = 0.0
                for j in range(d):
                    e1 = wn[j] - w[j] - 0.5 * h * m * g[j]
                    e2 = w[j] - wn[j] - 0.5 * h * m * gn[j]
                    fwd += e1 * e1
                    bwd += e2 * e2
                log_a = lpn[0] - lp - (bwd - fwd) / (2.0 * h * m)
                if math.log(unif[k, t]) < log_a:
                    w[:] = wn
                    g[:] = gn
                    f[:] = fn
                    lp = lpn[0]
                    accepted[k] += 1
            W[k] = w
            grad[k] = g
            F[k] = f
            logp[k] = lp

    @njit(parallel=True)
    def features(act, W, X, F):
        C = W.shape[0]
        n, d = X.shape
        for k in prange(C):
            for mu in range(n):
                h = 0.0
                for j in range(d):
                    h += X[mu, j] * W[k, j]
                F[k, mu] = act(h)[0]

    _CORES.update(evaluate=evaluate, mala_block=mala_block, features=features)
    return _CORES


def _activation(activation):
    """Compiled (phi, phi') of the activation spec, from its SymPy expression."""
    import sympy as sp
    from kernelphase.activations import Z
    from kernelphase.codegen import numba_function
    from kernelphase.moments import activation_expr
    expr = activation_expr(activation)
    return numba_function((expr, sp.diff(expr, Z)), (Z,), name="phi_dphi")


# ----------------------------------------------------------------------------------------------
# the sampler state
# ----------------------------------------------------------------------------------------------
class _Chains:
    """Persistent MALA chains for the tilted single-neuron law; one numpy Generator for all
    random numbers (drawn in blocks outside numba, so the run is reproducible per seed)."""

    def __init__(self, act, X, sigma_w2, chains, rng, h0=0.5):
        self.act, self.X, self.rng = act, X, rng
        n, d = X.shape
        self.prec = d / sigma_w2
        self.W = rng.standard_normal((chains, d)) / math.sqrt(self.prec)
        self.logp = np.empty(chains)
        self.grad = np.empty((chains, d))
        self.F = np.empty((chains, n))
        self.h = h0
        self.accept = float("nan")

    def set_target(self, tbar, kappa, sigma2, cavity):
        self.tbar, self.kappa, self.sigma2, self.cavity = (np.ascontiguousarray(tbar, float),
                                                           float(kappa), float(sigma2),
                                                           bool(cavity))
        _cores()["evaluate"](self.act, self.W, self.X, self.tbar, self.kappa, self.sigma2,
                             self.cavity, self.prec, self.logp, self.grad, self.F)

    def run(self, steps, adapt, block=10):
        C, d = self.W.shape
        mala = _cores()["mala_block"]
        acc_total, done = 0, 0
        while done < steps:
            k = min(block, steps - done)
            noise = self.rng.standard_normal((C, k, d))
            unif = self.rng.random((C, k))
            acc = np.zeros(C, dtype=np.int64)
            mala(self.act, self.W, self.logp, self.grad, self.F, self.X, self.tbar, self.kappa,
                 self.sigma2, self.cavity, self.prec, self.h, noise, unif, acc)
            rate = acc.sum() / (C * k)
            if adapt:  # Robbins-Monro on log h toward the target acceptance
                self.h = float(np.clip(self.h * math.exp(1.5 * (rate - _TARGET_ACCEPT)),
                                       1e-6, 4.0))
            acc_total += acc.sum()
            done += k
        self.accept = acc_total / (C * steps)


def _batch_ids(chains, batches):
    return np.array_split(np.arange(chains), batches)


def _sample_kernel(ch, burn, steps, thin, batches, Xtest=None, hist_edges=None,
                   on_snapshot=None):
    """Burn in (adapting h), then ``steps`` steps, accumulating per batch of chains
    sum phi phi^T (n x n) and, with Xtest, sum phi_test phi^T (m x n) every ``thin`` steps."""
    if burn:
        ch.run(burn, adapt=True)
    C, n = ch.F.shape
    groups = _batch_ids(C, batches)
    S = np.zeros((batches, n, n))
    T = None if Xtest is None else np.zeros((batches, Xtest.shape[0], n))
    Ft = None if Xtest is None else np.empty((C, Xtest.shape[0]))
    hist = None if hist_edges is None else np.zeros(len(hist_edges) - 1)
    snaps, acc = 0, []
    for _ in range(max(1, steps // thin)):
        ch.run(thin, adapt=False)
        acc.append(ch.accept)
        if Xtest is not None:
            _cores()["features"](ch.act, ch.W, Xtest, Ft)
        for b, g in enumerate(groups):
            Fb = ch.F[g]
            S[b] += Fb.T @ Fb
            if T is not None:
                T[b] += Ft[g].T @ Fb
        if hist is not None:
            hist += np.histogram(ch.W[:, 0], hist_edges)[0]
        if on_snapshot is not None:
            on_snapshot(ch.F, Ft)
        snaps += 1
    counts = np.array([len(g) * snaps for g in groups], dtype=float)
    ch.accept = float(np.mean(acc))
    return S, T, counts, hist


class _RandomFeatures:
    r"""Width-N read-out on neurons drawn from the mean-field law (finite-width diagnostic).

    Each group of ``width`` chains (independent given the law) forms one network :math:`W`.
    With :math:`K_W=(\sigma_a^2/N)\Phi^\top\Phi` the exact posterior-mean output of that
    network, given :math:`W`, is :math:`K_W(x,X)(K_W+\sigma^2 I)^{-1}y`; it is computed through
    the N x N system :math:`(\Phi\Phi^\top+N\sigma^2/\sigma_a^2)u=\Phi y`,
    :math:`(K_W+\sigma^2)^{-1}y=(y-\Phi^\top u)/\sigma^2`. Averaging over groups gives the
    predictor of a width-N network whose neurons follow the product of the single-neuron laws
    (mean-field law for W, exact read-out), instead of the GP with the mean kernel Q.
    """

    def __init__(self, width, y, sigma2, sigma_a2):
        self.N, self.y, self.s2, self.sa2 = width, y, sigma2, sigma_a2
        self.outs = []          # per snapshot: (groups, m) predictors

    def __call__(self, F, Ft):
        N, y = self.N, self.y
        G = F.shape[0] // N
        out = np.empty((G, Ft.shape[1]))
        ridge = N * self.s2 / self.sa2
        for g in range(G):
            P, Pt = F[g * N:(g + 1) * N], Ft[g * N:(g + 1) * N]
            u = np.linalg.solve(P @ P.T + ridge * np.eye(N), P @ y)
            t = (y - P.T @ u) / self.s2
            out[g] = self.sa2 / N * (Pt.T @ (P @ t))
        self.outs.append(out)


def _batch_stats(S, counts, scale):
    """Mean over all samples and batch-means standard error of scale * S_b / count_b."""
    B = len(counts)
    per = scale * S / counts[:, None, None]
    mean = scale * S.sum(0) / counts.sum()
    if B < 2:
        return mean, np.full_like(mean, np.nan)
    w = counts / counts.sum()
    var = (w[:, None, None] * (per - mean) ** 2).sum(0) * B / (B - 1) / B
    return mean, np.sqrt(var)


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TiltedKernelResult(Result):
    """Neuron average :math:`Q=\\sigma_a^2\\langle\\phi\\phi^\\top\\rangle` at a fixed
    :math:`\\bar t` (:func:`tilted_kernel`)."""
    Q: np.ndarray
    Q_se: np.ndarray
    acceptance: float
    step: float
    samples: int
    residual: float
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class FiniteKernelResult(Result):
    """Finite-data adaptive kernel (:func:`finite_data_kernel`).

    ``residual`` is the relative change of :math:`\\bar t` that an undamped update makes at the
    last fixed-point iteration, :math:`|(Q_{\\rm MC}[\\bar t]+\\sigma^2)^{-1}y-\\bar t|/|\\bar t|`
    (a self-consistency residual; its Monte Carlo floor falls like
    :math:`1/\\sqrt{\\rm samples}`); ``residual_history`` lists it per iteration and ends with the
    same quantity from the final measurement sweep; ``b``, ``c`` (and their ``_se``) are NaN
    without test data;
    ``phi_hist`` is ``(edges, density)`` of :math:`\\Phi=w_1` over the sampled neurons.
    ``f_test_rf``, ``b_rf``, ``c_rf`` are the finite-width diagnostic of
    :class:`_RandomFeatures`: width-N networks with neurons drawn from the converged law and the
    exact read-out (needs ``chains >= width``; errors over the network groups).
    """
    tbar: np.ndarray
    Q: np.ndarray
    Q_se: np.ndarray
    f_train: np.ndarray
    f_test: np.ndarray
    f_test_se: np.ndarray
    train_loss: float
    test_loss: float
    b: float
    b_se: float
    c: float
    c_se: float
    f_test_rf: np.ndarray
    b_rf: float
    b_rf_se: float
    c_rf: float
    c_rf_se: float
    phi_hist: tuple
    acceptance: float
    iterations: int
    residual: float
    residual_history: tuple
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------
def _check_matrix(name, A, cols=None):
    try:
        A = np.asarray(A, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a numeric array") from None
    if A.ndim != 2 or A.shape[0] < 1 or A.shape[1] < 1:
        raise ValueError(f"{name} has shape {A.shape}; expected a non-empty 2-D array (points, d)")
    if cols is not None and A.shape[1] != cols:
        raise ValueError(f"{name} has {A.shape[1]} columns; expected d={cols} as in X")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return np.ascontiguousarray(A)


def _check_vector(name, v, n):
    try:
        v = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a numeric array") from None
    if v.shape != (n,):
        raise ValueError(f"{name} has shape {v.shape}; expected ({n},)")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return np.ascontiguousarray(v)


def _check_memory(chains, n, m, batches):
    need = 8 * (chains * (3 * n + m) + batches * n * (n + m) + 4 * n * n + 3 * m * n)
    if need > _MAX_BYTES:
        raise ValueError(f"chains={chains} with n={n} training and {m} test points needs "
                         f"{need / _GIB:.1f} GiB (limit 8 GiB); use fewer chains or points")


def _common(X, width, sigma2, sigma_a2, sigma_w2, chains, batches):
    X = _check_matrix("X", X)
    width = check_int("width", width, 1, 10 ** 9)
    sigma2 = check_range("sigma2", sigma2, 0, 1e6, lo_open=True)
    sigma_a2 = check_range("sigma_a2", sigma_a2, 0, 1e6, lo_open=True)
    sigma_w2 = check_range("sigma_w2", sigma_w2, 0, 1e6, lo_open=True)
    batches = check_int("batches", batches, 2, 1000)
    chains = check_int("chains", chains, batches, 10 ** 7)
    return X, width, sigma2, sigma_a2, sigma_w2, chains, batches


def _seed_rng(seed):
    seed = check_int("seed", seed, 0, 2 ** 63 - 1)
    return np.random.default_rng(np.random.SeedSequence(seed)), seed


# ----------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------
def nngp_erf_kernel(X1, X2, sigma_a2, sigma_w2):
    r"""NNGP kernel of the erf network with prior :math:`w\sim\mathcal N(0,(\sigma_w^2/d)I)`:

    .. math:: K(x,x')=\sigma_a^2\frac2\pi\arcsin\frac{2\,x\cdot x'\,\sigma_w^2/d}
              {\sqrt{(1+2|x|^2\sigma_w^2/d)(1+2|x'|^2\sigma_w^2/d)}}

    (Williams 1997, with covariance :math:`\Sigma=(\sigma_w^2/d)I`)."""
    X1, X2 = np.asarray(X1, float), np.asarray(X2, float)
    s = sigma_w2 / X1.shape[1]
    n1 = 1 + 2 * s * (X1 ** 2).sum(1)
    n2 = 1 + 2 * s * (X2 ** 2).sum(1)
    return sigma_a2 * 2 / math.pi * np.arcsin(2 * s * X1 @ X2.T / np.sqrt(np.outer(n1, n2)))


def tilted_kernel(X, tbar, width, sigma_a2, sigma_w2=0.5, activation="erf", cavity=False,
                  sigma2=1.0, chains=1024, burn=200, steps=400, thin=5, batches=16, seed=0):
    r"""Neuron average :math:`Q=\sigma_a^2\langle\phi(Xw)\phi(Xw)^\top\rangle_{p(w)}` at a fixed
    discrepancy :math:`\bar t`, with :math:`p(w)` the tilted law of the module docstring (Eq. 7,
    or the cavity law with ``cavity=True``; ``sigma2`` enters only through :math:`L`). One
    MALA sweep of the solver, exposed for tests against quadrature.
    """
    X, width, sigma2, sigma_a2, sigma_w2, chains, batches = _common(
        X, width, sigma2, sigma_a2, sigma_w2, chains, batches)
    tbar = _check_vector("tbar", tbar, X.shape[0])
    burn = check_int("burn", burn, 0, 10 ** 7)
    steps = check_int("steps", steps, 1, 10 ** 7)
    thin = check_int("thin", thin, 1, steps)
    _check_memory(chains, X.shape[0], 0, batches)
    rng, seed = _seed_rng(seed)
    act = _activation(activation)
    ch = _Chains(act, X, sigma_w2, chains, rng)
    ch.set_target(tbar, sigma_a2 / width, sigma2, cavity)
    S, _, counts, _ = _sample_kernel(ch, burn, steps, thin, batches)
    Q, Q_se = _batch_stats(S, counts, sigma_a2)
    status = 0 if np.all(np.isfinite(Q)) else 3
    params = dict(width=width, sigma_a2=sigma_a2, sigma_w2=sigma_w2, sigma2=sigma2,
                  activation=str(activation), cavity=bool(cavity), chains=chains, burn=burn,
                  steps=steps, thin=thin, batches=batches, seed=seed)
    return TiltedKernelResult(Q=Q, Q_se=Q_se, acceptance=ch.accept, step=ch.h,
                              samples=int(counts.sum()), residual=0.0, status=status,
                              message=status_message(status), params=params)


def finite_data_kernel(X, y, width, sigma2, sigma_a2, sigma_w2=0.5, activation="erf",
                       cavity=False, chains=1024, steps=200, anneal=4, damping=0.25, seed=0,
                       Xtest=None, ytest=None, tol=0.02, progress=None, interaction=True,
                       burn=100, thin=10, batches=16, maxiter=20, final_steps=None,
                       hist_edges=None):
    r"""Solve the finite-data adaptive-kernel equations (module docstring) on ``(X, y)``.

    Parameters
    ----------
    X, y : arrays (n, d), (n,)
        Training inputs and targets.
    width, sigma2, sigma_a2, sigma_w2 : N, noise :math:`\sigma^2`, summed read-out variance
        :math:`\sigma_a^2` (``Var a_i = sigma_a2 / width``), read-in prior scale.
    activation : str or spec
        Anything :func:`kernelphase.moments.activation_expr` accepts.
    cavity : bool
        Use the cavity law with the factor :math:`L` instead of Eq. 7.
    chains, steps, burn, thin, batches : MALA budget per fixed-point iteration: ``burn``
        adaptation steps, then ``steps`` steps with a snapshot of every chain each ``thin``
        steps; standard errors from ``batches`` batches of chains.
    anneal : int
        Number of equal steps in which the interaction is switched on (Algorithm 1 of
        Rubin et al. 2025).
    damping : float in (0, 1]
        Weight :math:`\gamma` of the new Monte Carlo kernel in the update of :math:`Q`. Near the
        GFL spinodal the undamped map overshoots (in the EK reduction its slope in b is about
        -(1-b) 2 (1/(sigma_w^2 kappa) - 1), e.g. -3.6 at the Fig. 2 point, sigma^2 = 0.3), so
        :math:`\gamma\lesssim1/(1-\mathrm{slope})`; at full interaction it is halved whenever
        the residual grows.
    tol : float
        Convergence when the self-consistency residual (the relative change of :math:`\bar t`
        under an undamped update) is below ``tol`` at full interaction (``maxiter`` iterations
        at most there, 3 at each annealing step before). It cannot go below the Monte Carlo
        floor (about 0.02 at the Fig. 2 preset, scale 1/16, with 512 chains x 20 snapshots).
    interaction : bool
        ``False`` gives the NNGP (prior law); the GP limit of the theory.
    final_steps : int
        Steps of the final measurement sweep (default ``2 * steps``).
    Xtest, ytest : arrays (m, d), (m,), optional
        Test points for the predictor; ``b`` and ``c`` (module docstring) need both.
    progress : callable, optional
        Called as ``progress(iteration, lam, residual)`` after every iteration.

    Returns
    -------
    FiniteKernelResult
        Status 0 when converged, 2 when the fixed point did not converge, 3 on NaN.
    """
    X, width, sigma2, sigma_a2, sigma_w2, chains, batches = _common(
        X, width, sigma2, sigma_a2, sigma_w2, chains, batches)
    n, d = X.shape
    y = _check_vector("y", y, n)
    steps = check_int("steps", steps, 1, 10 ** 7)
    burn = check_int("burn", burn, 0, 10 ** 7)
    thin = check_int("thin", thin, 1, steps)
    anneal = check_int("anneal", anneal, 1, 1000)
    maxiter = check_int("maxiter", maxiter, 1, 10 ** 5)
    damping = check_range("damping", damping, 0, 1, lo_open=True)
    tol = check_range("tol", tol, 0, 1, lo_open=True)
    final_steps = 2 * steps if final_steps is None else check_int("final_steps", final_steps,
                                                                   thin, 10 ** 7)
    if Xtest is None and ytest is not None:
        raise ValueError("ytest is given without Xtest; pass both or neither")
    m = 0
    if Xtest is not None:
        Xtest = _check_matrix("Xtest", Xtest, cols=d)
        m = Xtest.shape[0]
        if ytest is not None:
            ytest = _check_vector("ytest", ytest, m)
    if hist_edges is None:
        hist_edges = np.linspace(-2.0, 2.0, 81)
    hist_edges = np.asarray(hist_edges, float)
    if hist_edges.ndim != 1 or len(hist_edges) < 2 or np.any(np.diff(hist_edges) <= 0):
        raise ValueError("hist_edges must be an increasing 1-D array of at least 2 edges")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress={progress!r} is not callable")
    _check_memory(chains, n, m, batches)
    rng, seed = _seed_rng(seed)
    act = _activation(activation)
    params = dict(n=n, d=d, width=width, sigma2=sigma2, sigma_a2=sigma_a2, sigma_w2=sigma_w2,
                  activation=str(activation), cavity=bool(cavity), chains=chains, steps=steps,
                  burn=burn, thin=thin, batches=batches, anneal=anneal, damping=damping,
                  tol=tol, maxiter=maxiter, final_steps=final_steps,
                  interaction=bool(interaction), seed=seed)

    ch = _Chains(act, X, sigma_w2, chains, rng)
    kappa_full = sigma_a2 / width if interaction else 0.0
    eye = sigma2 * np.eye(n)

    def solve(Q):
        try:
            return np.linalg.solve(Q + eye, y)
        except np.linalg.LinAlgError:
            return np.full(n, np.nan)

    # NNGP start (interaction off)
    ch.set_target(np.zeros(n), 0.0, sigma2, cavity)
    S, _, counts, _ = _sample_kernel(ch, burn, steps, thin, batches)
    Q, _ = _batch_stats(S, counts, sigma_a2)
    tbar = solve(Q)
    history, it, residual, status = [], 0, 0.0, 0
    gamma = damping
    lams = [(k + 1) / anneal for k in range(anneal)] if interaction else []
    for si, lam in enumerate(lams):
        last = si == len(lams) - 1
        for _ in range(maxiter if last else 3):
            ch.set_target(tbar, lam * kappa_full, sigma2, cavity)
            S, _, counts, _ = _sample_kernel(ch, burn, steps, thin, batches)
            Qn, _ = _batch_stats(S, counts, sigma_a2)
            it += 1
            # self-consistency residual at tbar: the change an undamped update would make
            # (the damped step is smaller by ~gamma and would flatter the convergence)
            tmap = solve(Qn)
            if not np.all(np.isfinite(tmap)):
                status = 3
                break
            prev = residual
            residual = float(np.linalg.norm(tmap - tbar) / max(np.linalg.norm(tbar), 1e-300))
            history.append(residual)
            if progress is not None:
                progress(it, lam, residual)
            if last and residual < tol:
                break
            if last and len(history) > 1 and residual > prev:
                # an overshooting (oscillating) iteration: damp harder
                gamma = max(0.5 * gamma, 0.1)
            Q = (1 - gamma) * Q + gamma * Qn
            tbar = solve(Q)
        if status:
            break
    if status == 0 and interaction and residual >= tol:
        status = 2

    # final measurement at the last tbar: Q, the test kernel, histogram, jackknife errors
    if status != 3:
        ch.set_target(tbar, kappa_full, sigma2, cavity)
        rf = (_RandomFeatures(width, y, sigma2, sigma_a2)
              if Xtest is not None and chains >= width else None)
        S, T, counts, hist = _sample_kernel(ch, burn, final_steps, thin, batches,
                                            Xtest=Xtest, hist_edges=hist_edges, on_snapshot=rf)
        Q, Q_se = _batch_stats(S, counts, sigma_a2)
        tfin = solve(Q)
    else:
        Q_se = np.full_like(Q, np.nan)
        tfin, T, hist, rf = tbar, None, np.zeros(len(hist_edges) - 1), None
    f_train = y - sigma2 * tfin
    train_loss = float(np.mean((y - f_train) ** 2))
    f_test = np.full(m, np.nan)
    f_test_se = np.full(m, np.nan)
    test_loss = b = b_se = c = c_se = b_rf = b_rf_se = c_rf = c_rf_se = float("nan")
    f_test_rf = np.full(m, np.nan)
    if T is not None and np.all(np.isfinite(tfin)):
        tot = counts.sum()
        f_test = sigma_a2 * (T.sum(0) / tot) @ tfin
        # jackknife over batches: leave one batch out of both Q and the test kernel
        fj = np.empty((batches, m))
        for bi in range(batches):
            rest = tot - counts[bi]
            Qj = sigma_a2 * (S.sum(0) - S[bi]) / rest
            Tj = sigma_a2 * (T.sum(0) - T[bi]) / rest
            fj[bi] = Tj @ solve(Qj)
        def jk(v):
            return math.sqrt((batches - 1) / batches * np.sum((v - v.mean()) ** 2))
        f_test_se = np.sqrt((batches - 1) / batches * ((fj - fj.mean(0)) ** 2).sum(0))
        if ytest is not None:
            test_loss = float(np.mean((ytest - f_test) ** 2))
            z = Xtest[:, 0]
            he1, he3 = z, z ** 3 - 3 * z
            b = float(np.mean((ytest - f_test) * he1))
            c = float(np.mean((ytest - f_test) * he3) / 6)
            b_se = jk(((ytest - fj) * he1).mean(1))
            c_se = jk(((ytest - fj) * he3).mean(1) / 6)
            if rf is not None and rf.outs:
                # per network group, averaged over snapshots (snapshots of one group are
                # correlated); standard error over the groups
                per = np.mean(rf.outs, axis=0)                   # (groups, m)
                f_test_rf = per.mean(0)
                bg = ((ytest - per) * he1).mean(1)
                cg = ((ytest - per) * he3).mean(1) / 6
                b_rf, c_rf = float(bg.mean()), float(cg.mean())
                if len(bg) > 1:
                    b_rf_se = float(bg.std(ddof=1) / math.sqrt(len(bg)))
                    c_rf_se = float(cg.std(ddof=1) / math.sqrt(len(cg)))
    if status == 0 and not (np.all(np.isfinite(tfin)) and np.all(np.isfinite(Q))):
        status = 3
    if status == 0 and interaction:
        final_res = float(np.linalg.norm(tfin - tbar) / max(np.linalg.norm(tbar), 1e-300))
    else:
        final_res = residual
    dens = hist / max(hist.sum(), 1) / np.diff(hist_edges)
    detail = None
    if status == 2:
        detail = (f"relative change of tbar {residual:.3g} >= tol={tol:g} after {maxiter} "
                  f"iterations")
    elif status == 3:
        detail = "non-finite discrepancy or kernel"
    return FiniteKernelResult(
        tbar=tfin, Q=Q, Q_se=Q_se, f_train=f_train, f_test=f_test, f_test_se=f_test_se,
        train_loss=train_loss, test_loss=test_loss, b=b, b_se=b_se, c=c, c_se=c_se,
        f_test_rf=f_test_rf, b_rf=b_rf, b_rf_se=b_rf_se, c_rf=c_rf, c_rf_se=c_rf_se,
        phi_hist=(hist_edges, dens), acceptance=float(ch.accept), iterations=it,
        residual=residual, residual_history=tuple(history + [final_res]), status=status,
        message=status_message(status, detail), params=params)
