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

Three single-neuron laws (``law``), all of the form

.. math::
    p(w)\propto p_0(w)\,L^{-1/2}\exp\Big[\frac{\kappa(\bar t\cdot\phi)^2}{2L}\Big],\qquad
    L=1+\kappa\,\phi^\top M\phi,\qquad \kappa=\frac{\sigma_a^2}{N},\qquad
    \phi\equiv\phi(Xw)\in\mathbb R^n,

with the kernel :math:`Q=\sigma_a^2\langle\phi\phi^\top/L\rangle` in
:math:`\bar t=(Q+\sigma^2I)^{-1}y` and the predictor
:math:`\bar f(x)=\sigma_a^2\langle\phi(w\cdot x)\,\bar t\cdot\phi/L\rangle`:

* ``"eq7"``: :math:`M=0`, the paper's mean-field law (Eq. 7).
* ``"cavity"``: :math:`M=(\sigma^2I+\bar K)^{-1}`, :math:`\bar K=\sigma_a^2\langle\phi\phi^\top\rangle`.
* ``"fluctuating"`` (default): :math:`M=\big(\sigma^2I+\bar K+\frac{\sigma_a^4}{N}
  \mathrm{Cov}(\phi\,\bar t\cdot\phi/L)\big)^{-1}`.

Derivation (theory notes Sec. 3.4, re-derived here). Given all other neurons, integrating out
:math:`a` (a Gaussian process with kernel :math:`K_W=\kappa\sum_j\phi_j\phi_j^\top`) gives the
exact conditional law of neuron :math:`i` above with :math:`\bar t\to t_{-i}=A_{-i}^{-1}y` and
:math:`M\to A_{-i}^{-1}`, :math:`A_{-i}=\sigma^2I+K_{W,-i}` (matrix determinant lemma and
Sherman-Morrison), and :math:`\mathbb E[a_i\mid W]=\kappa\,t_{-i}\cdot\phi_i/L_i`, hence the
:math:`1/L` in :math:`Q` and :math:`\bar f`. Mean field replaces :math:`t_{-i}` by its mean,
which is :math:`\bar t` up to :math:`O(1/N)`, and :math:`A_{-i}` by its mean
(``"cavity"``). The other neurons fluctuate independently, so
:math:`t_{-i}=\bar t+\delta t` with :math:`\delta t\approx-\bar A^{-1}\xi`,
:math:`\mathrm{Cov}\,\xi=N\kappa^2\mathrm{Cov}(\phi\,\bar t\cdot\phi/L)`; the Gaussian average
:math:`\mathbb E_z\,e^{\kappa(m+z)^2/2L}\propto e^{\kappa m^2/2(L-\kappa v)}`,
:math:`v=\phi^\top\mathrm{Cov}(\delta t)\phi`, lowers :math:`L` by :math:`\kappa v`, which to
this order is ``"fluctuating"``'s metric (the same metric follows from the Gaussian
fluctuations of the Hubbard-Stratonovich field conjugate to the residual around its saddle
point). Both corrections are of relative order :math:`n\sigma_a^2/(N\sigma^2)`, not small at
the sizes one simulates; the fluctuations take back about 40 % of the cavity factor
(:math:`L-1` from 0.17 to 0.10 at 1/16 of Fig. 2).

Sampling with a metric: the chains sample the law with :math:`M=\rho I`,
:math:`\rho=\overline{\phi^\top M\phi}/\overline{\phi\cdot\phi}`, and every average is
importance-reweighted to the target :math:`M`; the metric is updated between outer iterations
and made self-consistent on the final samples.

Algorithm (``method="reweight"``, the default). The NNGP kernel comes from exact prior draws
(no Markov chain at zero interaction). Each outer iteration samples the law at the current
:math:`\bar t` with persistent MALA chains (a few adaptation steps, then ``steps`` steps with a
snapshot each ``thin``), and then solves the fixed point *on those samples*: importance weights
:math:`w_s\propto\exp[\ell(\bar t';\phi_s)-\ell_0(\phi_s)]`, with :math:`\ell` the log tilt
of the target law (:math:`-\frac12\log L+\kappa s^2/2L`, :math:`s=\bar t'\cdot\phi`) and
:math:`\ell_0` that of the law the chains sampled, make the kernel
:math:`Q_w(\bar t')=\sigma_a^2\sum_sw_s\phi_s\phi_s^\top/L_s` a deterministic function of
:math:`\bar t'`, and :math:`\bar t'=(Q_w(\bar t')+\sigma^2)^{-1}y` is solved by Anderson
acceleration (Walker & Ni 2011, SIAM J. Numer. Anal. 49, 1715, Eq. 2.2; the plain iteration
overshoots near the GFL spinodal, slope about -3.6 at the Fig. 2 point), each map evaluation a
conjugate-gradient solve with matrix-free products :math:`Q_wv`. The step towards the
solution is cut (halved) until the effective sample fraction :math:`(\sum w)^2/(S\sum w^2)` is
at least ``ess_min``. The loop stops when the relative change of :math:`\bar t` is below ``tol``
or below twice its Monte Carlo floor (estimated from the two halves of the chains); the
predictor, :math:`b`, :math:`c` and the errors are measured on the last iteration's samples,
at the self-consistent solution on them. Compared with the damped annealing below this needs
5-10 outer iterations instead of 15-30, no separate final sweep, and each iteration lands on
the fixed point of its samples instead of a damped fraction of the way.

``method="anneal"`` (after Rubin, Fischer, Lindner, Seroussi, Ringel, Kraemer & Helias 2025,
"From Kernels to Features", ICML, arXiv 2502.03210, Algorithm 1): start from the NNGP, switch the
interaction on in ``anneal`` equal steps :math:`\lambda=1/\mathrm{anneal},\dots,1` (tilt
coefficient :math:`\lambda\sigma_a^2/N`), and at each step iterate
:math:`Q\leftarrow(1-\gamma)Q+\gamma Q_{\rm MC}[\bar t]`, warm-starting the chains.

Neuron average: MALA chains preconditioned by the prior covariance :math:`\sigma_w^2/d`, all
chains advanced together (the pre-activations :math:`XW^\top` and the gradient are two float32
matrix products per step, the activation, the tilt and its coefficients one fused numba loop),
step size adapted in the burn-in of every iteration to an acceptance rate near 0.6, then
frozen. The activation and its derivative are compiled from the activation spec
(:func:`kernelphase.moments.activation_expr`, :func:`kernelphase.codegen.numba_function`).
Standard errors are jackknife errors over ``batches`` groups of chains: each leave-one-out
replicate re-solves the fixed point, so they include the propagation of the noise of :math:`Q`
through the self-consistency.

Hermite projections (same definition as ``validation/teacher_student.py`` and as
:func:`solvers.cubic.cubic_phase`, where
:math:`\sigma^2\bar t=b\,\mathrm{He}_1+c\,\mathrm{He}_3` in the EK limit, Sec. 4.1 of the
notes): on the test points, with teacher direction :math:`e_1` (:math:`z=x_1`),

.. math::  b=\overline{(y-\bar f)\,\mathrm{He}_1(z)},\qquad
           c=\overline{(y-\bar f)\,\mathrm{He}_3(z)}/6,

probabilists' Hermite polynomials, :math:`\mathrm{He}_3=z^3-3z`, bar = mean over the test points.
The errors of ``b``, ``c`` are Monte Carlo errors only (the test set is fixed); the test-set
sampling error is the same for a simulation evaluated on the same test points.

Not done: fluctuations beyond the Gaussian order above, and the finite-N fluctuation of
:math:`A_{-i}^{-1}` around :math:`\bar A^{-1}` (second order in :math:`K_W-\bar K`); the
finite-width diagnostic ``b_rf`` of :class:`_RandomFeatures` (``law="eq7"`` only) brackets
them from the other side.
"""
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase._checks import check_choice, check_int, check_range
from kernelphase.results import Result, status_message

__all__ = ["FiniteKernelResult", "TiltedKernelResult", "finite_data_kernel", "tilted_kernel",
           "nngp_erf_kernel"]

_GIB = 1024 ** 3
_MAX_BYTES = 8 * _GIB
_TARGET_ACCEPT = 0.6
#: single-neuron laws of :func:`finite_data_kernel` (module docstring)
LAWS = ("eq7", "cavity", "fluctuating")


# ----------------------------------------------------------------------------------------------
# numba core: the activation and its derivative on a matrix of pre-activations. It takes the
# compiled activation ``act`` as an argument; numba cannot cache a function whose arguments are
# other jitted functions (the dispatcher type is not picklable into the cache index), so it stays
# uncached: style guide Sec. 6. The products X w of all chains are BLAS calls (float32).
# ----------------------------------------------------------------------------------------------
_CORES = {}


def _cores():
    if _CORES:
        return _CORES
    from numba import njit, prange

    @njit(parallel=True)
    def act_arrays(act, H, P, DP):
        """P = phi(H), DP = phi'(H), elementwise (float32 in and out)."""
        C, n = H.shape
        for k in prange(C):
            for mu in range(n):
                p, dp = act(float(H[k, mu]))
                P[k, mu] = p
                DP[k, mu] = dp

    @njit(parallel=True)
    def tilt_rows(act, H, t, kappa, rho, P, C_out, s_out, q_out, lt_out):
        """Per chain k: P = phi(H_k), s = t.phi, q = phi.phi, the log tilt
        -log(L)/2 + kappa s^2/(2L) with L = 1 + kappa rho q, and in C_out the coefficients
        c_mu = d(log tilt)/d h_mu (their product with X is the tilt gradient)."""
        K, n = H.shape
        for k in prange(K):
            s = 0.0
            q = 0.0
            for mu in range(n):
                p, dp = act(float(H[k, mu]))
                P[k, mu] = p
                C_out[k, mu] = dp
                s += t[mu] * p
                q += p * p
            s_out[k] = s
            q_out[k] = q
            L = 1.0 + kappa * rho * q
            lt_out[k] = -0.5 * math.log(L) + 0.5 * kappa * s * s / L
            cs = kappa * s / L
            cq2 = -(1.0 / L + kappa * s * s / (L * L)) * kappa * rho
            for mu in range(n):
                C_out[k, mu] = (cs * t[mu] + cq2 * P[k, mu]) * C_out[k, mu]

    _CORES.update(act_arrays=act_arrays, tilt_rows=tilt_rows)
    return _CORES


def _activation(activation):
    """Compiled (phi, phi') of the activation spec, from its SymPy expression."""
    import sympy as sp
    from kernelphase.activations import Z
    from kernelphase.codegen import numba_function
    from kernelphase.moments import activation_expr
    expr = activation_expr(activation)
    return numba_function((expr, sp.diff(expr, Z)), (Z,), name="phi_dphi")


def _log_tilt(s, L, kappa):
    r"""log of the tilt of the single-neuron law over the prior, per sample:
    :math:`-\frac12\log L+\kappa s^2/(2L)` (:math:`L=1`: Eq. 7)."""
    return -0.5 * np.log(L) + 0.5 * kappa * s * s / L


# ----------------------------------------------------------------------------------------------
# the sampler state
# ----------------------------------------------------------------------------------------------
class _Chains:
    """Persistent MALA chains for the tilted single-neuron law, all chains advanced together
    (the products X w are two float32 matrix products per step). One numpy Generator for all
    random numbers, so the run is reproducible per seed. At zero interaction the law is the
    Gaussian prior and every 'step' is an exact independent draw."""

    def __init__(self, act, X, sigma_w2, chains, rng, h0=0.5, confine=None):
        self.act, self.rng = act, rng
        n, d = X.shape
        self.X32 = np.ascontiguousarray(X, np.float32)
        self.XT32 = np.ascontiguousarray(self.X32.T)
        self.prec = d / sigma_w2
        self.confine = confine
        self.W = self._prior((chains, d))
        self.h = h0
        self.accept = float("nan")
        self.kappa = 0.0

    def _outside(self, W):
        r"""Rows outside the basin :math:`|u\cdot w|\le\Phi_{max}` of ``confine``."""
        u, phi_max = self.confine
        return np.abs(W @ u) > phi_max

    def _prior(self, shape):
        """Exact prior draws (restricted to the basin by rejection with ``confine``)."""
        W = self.rng.standard_normal(shape) / math.sqrt(self.prec)
        if self.confine is None:
            return W
        for _ in range(1000):
            out = self._outside(W)
            if not out.any():
                return W
            W[out] = self.rng.standard_normal((int(out.sum()), shape[1])) / math.sqrt(self.prec)
        raise ValueError(f"confine[1]={self.confine[1]!r}: 1000 prior draws in a row fell "
                         f"outside the basin; give a wider one")

    def features(self, W, X32T):
        H = np.asarray(W, np.float32) @ X32T
        P = np.empty_like(H)
        _cores()["act_arrays"](self.act, H, P, np.empty_like(H))
        return P

    def _evaluate(self, W):
        """log target (up to a constant), its gradient and the features phi(X w)."""
        ww = np.einsum("ij,ij->i", W, W)
        lp = -0.5 * self.prec * ww
        if self.confine is not None:    # outside the basin: proposals are rejected
            lp[self._outside(W)] = -np.inf
        g = -self.prec * W
        if self.kappa == 0.0:
            return lp, g, self.features(W, self.XT32)
        H = np.asarray(W, np.float32) @ self.XT32
        K = H.shape[0]
        P = np.empty_like(H)
        coef = np.empty_like(H)
        s, q, lt = np.empty(K), np.empty(K), np.empty(K)
        _cores()["tilt_rows"](self.act, H, self.tbar, self.kappa, self.rho, P, coef, s, q, lt)
        lp += lt
        g += coef @ self.X32
        return lp, g, P

    def set_target(self, tbar, kappa, rho=0.0):
        r"""Sample the law with tilt :math:`-\frac12\log L+\kappa s^2/(2L)`,
        :math:`L=1+\kappa\rho\,\phi\cdot\phi` (:math:`\rho=0`: Eq. 7)."""
        self.tbar = np.ascontiguousarray(tbar, float)
        self.t32 = self.tbar.astype(np.float32)
        self.kappa, self.rho = float(kappa), float(rho)
        self.logp, self.grad, self.F = self._evaluate(self.W)

    def run(self, steps, adapt, block=10):
        C, d = self.W.shape
        if self.kappa == 0.0:               # the prior: exact independent draws
            self.W = self._prior((C, d))
            self.logp, self.grad, self.F = self._evaluate(self.W)
            self.accept = 1.0
            return
        acc_total, acc_block = 0, 0
        for t in range(steps):
            hm = self.h / self.prec
            xi = self.rng.standard_normal((C, d))
            Wn = self.W + 0.5 * hm * self.grad + math.sqrt(hm) * xi
            lpn, gn, Pn = self._evaluate(Wn)
            # log q(w | wn) - log q(wn | w), q(a|b) = N(a; b + (h/2) M grad(b), h M)
            e2 = self.W - Wn - 0.5 * hm * gn
            log_a = lpn - self.logp - (np.einsum("ij,ij->i", e2, e2)
                                       - hm * np.einsum("ij,ij->i", xi, xi)) / (2.0 * hm)
            acc = np.log(self.rng.random(C)) < log_a
            self.W[acc] = Wn[acc]
            self.grad[acc] = gn[acc]
            self.F[acc] = Pn[acc]
            self.logp[acc] = lpn[acc]
            na = int(acc.sum())
            acc_total += na
            acc_block += na
            if adapt and (t + 1) % block == 0:  # Robbins-Monro on log h toward the target
                rate = acc_block / (C * block)
                self.h = float(np.clip(self.h * math.exp(1.5 * (rate - _TARGET_ACCEPT)),
                                       1e-6, 4.0))
                acc_block = 0
        self.accept = acc_total / (C * steps)


def _batch_ids(chains, batches):
    return np.array_split(np.arange(chains), batches)


def _sample_kernel(ch, burn, steps, thin, batches):
    """Burn in (adapting h), then ``steps`` steps, accumulating per batch of chains
    sum phi phi^T (n x n) every ``thin`` steps; returns the sums and the sample counts."""
    if burn:
        ch.run(burn, adapt=True)
    C, n = ch.F.shape
    groups = _batch_ids(C, batches)
    S = np.zeros((batches, n, n))
    snaps, acc = 0, []
    for _ in range(max(1, steps // thin)):
        ch.run(thin, adapt=False)
        acc.append(ch.accept)
        for b, g in enumerate(groups):
            Fb = ch.F[g].astype(float)
            S[b] += Fb.T @ Fb
        snaps += 1
    ch.accept = float(np.mean(acc))
    return S, np.array([len(g) * snaps for g in groups], dtype=float)


class _Samples:
    r"""Snapshots of the chains at one target, kept for reweighting: features ``F`` (S x n,
    float32), ``q`` = phi.phi, ``l0`` the log tilt of the law they were drawn from, the batch
    (group of chains) of each sample, and optionally test features, moments and Phi = w_1.
    ``qm`` = :math:`\phi^\top M\phi` for the metric :math:`M` of the target law
    (:func:`_set_metric`), None for Eq. 7 (:math:`L=1`)."""

    def __init__(self, F, q, l0, batch, Ft=None, mom=None, phi=None, qm=None):
        self.F, self.q, self.l0, self.batch = F, q, l0, batch
        self.Ft, self.mom, self.phi, self.qm = Ft, mom, phi, qm

    def L(self, kappa):
        r"""The factor :math:`L=1+\kappa\,\phi^\top M\phi` of every sample."""
        return np.ones(len(self.q)) if self.qm is None else 1.0 + kappa * self.qm

    def subset(self, keep):
        pick = (lambda a: None if a is None else a[keep])
        return _Samples(self.F[keep], self.q[keep], self.l0[keep], self.batch[keep],
                        pick(self.Ft), pick(self.mom), pick(self.phi), pick(self.qm))


def _collect(ch, snaps, thin, batches, Xtest=None, moments=None, on_snapshot=None):
    """``snaps`` snapshots of every chain, ``thin`` steps apart, as :class:`_Samples`."""
    C = ch.W.shape[0]
    bid = np.empty(C, dtype=np.int64)
    for b, g in enumerate(_batch_ids(C, batches)):
        bid[g] = b
    XtT = None if Xtest is None else np.ascontiguousarray(np.asarray(Xtest, np.float32).T)
    F, Ft, mom, phi, acc = [], [], [], [], []
    for _ in range(snaps):
        ch.run(thin, adapt=False)
        acc.append(ch.accept)
        F.append(ch.F.copy())
        phi.append(ch.W[:, 0].copy())
        if Xtest is not None:
            Ft.append(ch.features(ch.W, XtT))
            if on_snapshot is not None:
                on_snapshot(ch.F.astype(float), Ft[-1].astype(float))
        if moments is not None:
            mom.append(np.asarray(moments(ch.W), float).reshape(C, -1))
    ch.accept = float(np.mean(acc))
    F = np.concatenate(F)
    q = np.einsum("ij,ij->i", F, F, dtype=float)
    s = (F @ ch.t32).astype(float)
    return _Samples(F, q, _log_tilt(s, 1.0 + ch.kappa * ch.rho * q, ch.kappa), np.tile(bid, snaps),
                    np.concatenate(Ft) if Ft else None,
                    np.concatenate(mom) if mom else None, np.concatenate(phi))


def _weights(smp, t, kappa):
    r"""Normalised importance weights of the samples for the target law at (t, kappa) (its
    :math:`L` from ``smp.qm``), and the ESS fraction :math:`(\sum w)^2/(S\sum w^2)`."""
    s = (smp.F @ t.astype(np.float32)).astype(float)
    lw = _log_tilt(s, smp.L(kappa), kappa) - smp.l0
    lw -= lw.max()
    w = np.exp(lw)
    w /= w.sum()
    return w, s, float(1.0 / (len(w) * np.sum(w * w)))


def _weighted_kernel(smp, w, sigma_a2):
    Fw = smp.F * w.astype(np.float32)[:, None]
    return sigma_a2 * (smp.F.T @ Fw).astype(float)


def _set_metric(smp, M):
    r"""Store :math:`\phi^\top M\phi` of every sample (None: Eq. 7)."""
    smp.qm = None if M is None else np.einsum(
        "ij,ij->i", smp.F @ M.astype(np.float32), smp.F, dtype=float)


def _metric(smp, t, kappa, sigma2, sigma_a2, width, law):
    r"""Metric :math:`M` of the factor :math:`L=1+\kappa\,\phi^\top M\phi` of ``law`` at
    :math:`\bar t`, from the samples reweighted to the current law (module docstring):
    :math:`M=(\sigma^2I+\bar K)^{-1}` (``"cavity"``), plus
    :math:`\frac{\sigma_a^4}{N}\mathrm{Cov}(\phi\,s/L)` inside the inverse
    (``"fluctuating"``), :math:`\bar K=\sigma_a^2\langle\phi\phi^\top\rangle`."""
    if law == "eq7":
        return None
    w, s, _ = _weights(smp, t, kappa)
    A = _weighted_kernel(smp, w, sigma_a2) + sigma2 * np.eye(smp.F.shape[1])
    if law == "fluctuating":
        v = s / smp.L(kappa)
        mu = smp.F.T.astype(float) @ (w * v)
        A += sigma_a2 ** 2 / width * (_weighted_kernel(smp, w * v * v, 1.0) - np.outer(mu, mu))
    return np.linalg.inv(A)


def _pcg(matvec, b, x, precond, rtol=1e-9, maxit=500):
    """Preconditioned conjugate gradients for a symmetric positive-definite operator
    (Hestenes & Stiefel 1952), started at ``x``; returns the solution."""
    r = b - matvec(x)
    z = precond(r)
    p, rz, bound = z.copy(), r @ z, rtol * np.linalg.norm(b)
    for _ in range(maxit):
        if np.linalg.norm(r) <= bound:
            break
        Ap = matvec(p)
        a = rz / (p @ Ap)
        x = x + a * p
        r = r - a * Ap
        z = precond(r)
        rz, rz_old = r @ z, rz
        p = z + (rz / rz_old) * p
    return x


def _self_consistent(smp, t0, y, kappa, sigma2, sigma_a2, tol=1e-4, maxit=40, mem=6, mix=0.5):
    r"""Solve :math:`t=(Q_w(t)+\sigma^2)^{-1}y` on fixed samples, :math:`Q_w(t)` the kernel
    :math:`\sigma_a^2\sum_sw_s\phi_s\phi_s^\top/L_s` of the samples importance-reweighted to
    the law at :math:`t` (a deterministic map for a fixed metric), by Anderson
    acceleration (type II, memory ``mem``, mixing ``mix``; Walker & Ni 2011, Eq. 2.2) started
    at ``t0``. Each map evaluation is a conjugate-gradient solve with matrix-free products
    :math:`Q_wv=\sigma_a^2F^\top(w/L\odot Fv)` (O(S n) instead of O(S n^2) to form
    :math:`Q_w`), preconditioned by the Cholesky factor of :math:`Q_w(t_0)+\sigma^2`.
    Returns ``(t, evaluations, converged)``."""
    import scipy.linalg as sla
    n = len(y)
    F = smp.F.astype(float)
    L = smp.L(kappa)
    try:
        w0 = _weights(smp, np.asarray(t0, float), kappa)[0]
        cho = sla.cho_factor(_weighted_kernel(smp, w0 / L, sigma_a2) + sigma2 * np.eye(n))
    except (np.linalg.LinAlgError, ValueError):
        return np.asarray(t0, float), 0, False
    last = [sla.cho_solve(cho, y)]

    def G(t):
        d = sigma_a2 * _weights(smp, t, kappa)[0] / L
        last[0] = _pcg(lambda v: F.T @ (d * (F @ v)) + sigma2 * v, y, last[0],
                       lambda r: sla.cho_solve(cho, r))
        return last[0]

    t = np.array(t0, float)
    dT, dR = [], []
    t_prev = r_prev = None
    for it in range(1, maxit + 1):
        r = G(t) - t
        if not np.all(np.isfinite(r)):
            return t, it, False
        if np.linalg.norm(r) <= tol * max(np.linalg.norm(t), 1e-300):
            return t, it, True
        if t_prev is not None:
            dT.append(t - t_prev)
            dR.append(r - r_prev)
            if len(dT) > mem:
                dT.pop(0)
                dR.pop(0)
        t_prev, r_prev = t, r
        if dR:
            A = np.array(dR).T
            gam = np.linalg.lstsq(A, r, rcond=None)[0]
            t = t + mix * r - (np.array(dT).T + mix * A) @ gam
        else:
            t = t + mix * r
    return t, maxit, False


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
    r"""Finite-data adaptive kernel (:func:`finite_data_kernel`).

    ``residual`` is the relative change of :math:`\bar t` in the last outer iteration
    (``method="reweight"``: the step to the self-consistent solution on that iteration's
    samples; ``"anneal"``: the change an undamped update would make); ``residual_history``
    lists it per iteration and ends with the change made by the final measurement.
    ``b``, ``c`` (and their ``_se``) are NaN without test data; ``population`` holds the
    population projections asked for with ``moments`` (empty otherwise);
    ``phi_hist`` is ``(edges, density)`` of :math:`\Phi=w_1` over the (reweighted) neurons,
    ``phi_hist_se`` its batch-means error; ``train_loss_se``, ``test_loss_se`` jackknife errors.
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
    train_loss_se: float
    test_loss: float
    test_loss_se: float
    b: float
    b_se: float
    c: float
    c_se: float
    f_test_rf: np.ndarray
    b_rf: float
    b_rf_se: float
    c_rf: float
    c_rf_se: float
    population: np.ndarray
    population_se: np.ndarray
    phi_hist: tuple
    phi_hist_se: np.ndarray
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


def _check_memory(chains, n, m, batches, snaps=1):
    need = (8 * (chains * (3 * n + m) + batches * n * (n + m) + 4 * n * n + 3 * m * n)
            + 4 * 2 * chains * snaps * (n + m))
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

    (Williams 1997, with covariance :math:`\Sigma=(\sigma_w^2/d)I`).

    Examples
    --------
    The closed form for one pair of points, written out by hand (:math:`d=3`):

    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> K = nngp_erf_kernel(X, X, 2.0, 0.5)
    >>> x, xp, s = X[0], X[1], 0.5 / 3
    >>> ref = 2.0 * 2 / np.pi * np.arcsin(2 * s * x @ xp
    ...                                   / np.sqrt((1 + 2 * s * x @ x) * (1 + 2 * s * xp @ xp)))
    >>> K.shape, bool(np.allclose(K, K.T)), round(float(K[0, 1]), 4), round(float(ref), 4)
    ((10, 10), True, 0.1171, 0.1171)
    """
    X1, X2 = np.asarray(X1, float), np.asarray(X2, float)
    s = sigma_w2 / X1.shape[1]
    n1 = 1 + 2 * s * (X1 ** 2).sum(1)
    n2 = 1 + 2 * s * (X2 ** 2).sum(1)
    return sigma_a2 * 2 / math.pi * np.arcsin(2 * s * X1 @ X2.T / np.sqrt(np.outer(n1, n2)))


def tilted_kernel(X, tbar, width, sigma_a2, sigma_w2=0.5, activation="erf", metric=None,
                  chains=1024, burn=200, steps=400, thin=5, batches=16, seed=0):
    r"""Neuron average :math:`Q=\sigma_a^2\langle\phi(Xw)\phi(Xw)^\top\rangle_{p(w)}` at a fixed
    discrepancy :math:`\bar t`, with :math:`p(w)\propto p_0(w)L^{-1/2}
    \exp[\kappa(\bar t\cdot\phi)^2/2L]`, :math:`\kappa=\sigma_a^2/N`,
    :math:`L=1+\kappa\,\phi^\top M\phi` for a symmetric positive semi-definite ``metric``
    :math:`M` (n x n; None: :math:`L=1`, Eq. 7). The laws of :func:`finite_data_kernel` are
    this law with their metric. One MALA sweep of the solver (chains at
    :math:`M\approx\rho I`, reweighted to :math:`M`), exposed for tests against quadrature.

    Examples
    --------
    At :math:`\bar t=0` and :math:`M=0` the tilt vanishes and :math:`Q` is the NNGP kernel
    (:func:`nngp_erf_kernel`) within a few standard errors:

    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> r = tilted_kernel(X, np.zeros(10), 100, 1.0, chains=256, burn=0, steps=20, thin=5,
    ...                   batches=4, seed=0)
    >>> r.status, r.Q.shape, r.samples
    (0, (10, 10), 1024)
    >>> K = nngp_erf_kernel(X, X, 1.0, 0.5)
    >>> bool(np.abs(r.Q - K).max() < 4 * r.Q_se.max())
    True
    """
    X, width, _, sigma_a2, sigma_w2, chains, batches = _common(
        X, width, 1.0, sigma_a2, sigma_w2, chains, batches)
    n = X.shape[0]
    tbar = _check_vector("tbar", tbar, n)
    if metric is not None:
        metric = _check_matrix("metric", metric, cols=n)
        if metric.shape != (n, n) or not np.allclose(metric, metric.T) \
                or np.linalg.eigvalsh(metric).min() < -1e-12 * max(np.abs(metric).max(), 1.0):
            raise ValueError(f"metric must be a symmetric positive semi-definite ({n}, {n}) "
                             f"matrix")
    burn = check_int("burn", burn, 0, 10 ** 7)
    steps = check_int("steps", steps, 1, 10 ** 7)
    thin = check_int("thin", thin, 1, steps)
    _check_memory(chains, n, 0, batches, max(1, steps // thin))
    rng, seed = _seed_rng(seed)
    ch = _Chains(_activation(activation), X, sigma_w2, chains, rng)
    kappa = sigma_a2 / width
    ch.set_target(tbar, kappa, 0.0 if metric is None else np.trace(metric) / n)
    if burn:
        ch.run(burn, adapt=True)
    smp = _collect(ch, max(1, steps // thin), thin, batches)
    _set_metric(smp, metric)
    w = _weights(smp, tbar, kappa)[0]
    Q = _weighted_kernel(smp, w, sigma_a2)
    Q_se = _kernel_se(smp, w, w, batches, sigma_a2)
    status = 0 if np.all(np.isfinite(Q)) else 3
    params = dict(width=width, sigma_a2=sigma_a2, sigma_w2=sigma_w2,
                  activation=str(activation), metric=metric is not None, chains=chains,
                  burn=burn, steps=steps, thin=thin, batches=batches, seed=seed)
    return TiltedKernelResult(Q=Q, Q_se=Q_se, acceptance=ch.accept, step=ch.h,
                              samples=len(w), residual=0.0, status=status,
                              message=status_message(status), params=params)


def _kernel_se(smp, wk, w, batches, sigma_a2):
    r"""Batch-means standard error of the kernel :math:`\sigma_a^2\sum_s wk_s\phi_s\phi_s^\top`
    (each batch normalised by its total weight ``w``)."""
    Sb = np.array([_weighted_kernel(smp.subset(smp.batch == bi), wk[smp.batch == bi], 1.0)
                   for bi in range(batches)])
    wb = np.array([w[smp.batch == bi].sum() for bi in range(batches)])
    return _batch_stats(Sb, wb, sigma_a2)[1]


def finite_data_kernel(X, y, width, sigma2, sigma_a2, sigma_w2=0.5, activation="erf",
                       law="fluctuating", chains=512, steps=100, anneal=4, damping=0.25, seed=0,
                       Xtest=None, ytest=None, tol=0.02, progress=None, interaction=True,
                       burn=50, thin=10, batches=8, maxiter=12, final_steps=None,
                       hist_edges=None, method="reweight", moments=None, ess_min=0.05,
                       confine=None):
    r"""Solve the finite-data adaptive-kernel equations (module docstring) on ``(X, y)``.

    Parameters
    ----------
    X, y : arrays (n, d), (n,)
        Training inputs and targets.
    width, sigma2, sigma_a2, sigma_w2 : N, noise :math:`\sigma^2`, summed read-out variance
        :math:`\sigma_a^2` (``Var a_i = sigma_a2 / width``), read-in prior scale.
    activation : str or spec
        Anything :func:`kernelphase.moments.activation_expr` accepts.
    law : {"fluctuating", "cavity", "eq7"}
        The single-neuron law (module docstring): ``"eq7"`` the paper's mean field,
        ``"cavity"`` the cavity factor :math:`L`, ``"fluctuating"`` (default) the cavity factor
        with the fluctuations of the cavity residual; ``method="anneal"`` solves ``"eq7"``
        only.
    chains, steps, burn, thin, batches : MALA budget per outer iteration: ``burn``
        adaptation steps, then ``steps`` steps with a snapshot of every chain each ``thin``
        steps; standard errors from ``batches`` batches of chains (jackknife).
    method : {"reweight", "anneal"}
        ``"reweight"`` (default): start from exact prior draws; at each outer iteration solve the
        fixed point :math:`\bar t=(Q_w(\bar t)+\sigma^2)^{-1}y` on the current samples, with
        :math:`Q_w` the kernel of the samples importance-reweighted to the law at
        :math:`\bar t` (Anderson acceleration, module docstring), moving at most as far as
        keeps the effective sample size above ``ess_min``; then resample there (warm chains).
        ``"anneal"``: the damped iteration of Rubin et al. 2025, Algorithm 1 (``anneal``
        equal steps of the interaction, damping ``damping``), kept for comparison.
    anneal, damping : int, float in (0, 1]
        Only for ``method="anneal"``: annealing steps and the weight :math:`\gamma` of the new
        Monte Carlo kernel in :math:`Q\leftarrow(1-\gamma)Q+\gamma Q_{\rm MC}`.
    tol : float
        Convergence when the relative change of :math:`\bar t` in an outer iteration is below
        ``tol`` (``maxiter`` iterations at most). It cannot go below the Monte Carlo floor.
    ess_min : float in (0, 1)
        Smallest effective-sample fraction of a reweighted step.
    interaction : bool
        ``False`` gives the NNGP (prior law); the GP limit of the theory.
    final_steps : int
        Steps of the final measurement sweep of ``method="anneal"`` (default ``2 * steps``);
        ``method="reweight"`` measures on the samples of its last iteration.
    Xtest, ytest : arrays (m, d), (m,), optional
        Test points for the predictor; ``b`` and ``c`` (module docstring) need both.
    moments : callable, optional
        ``moments(W)`` for the neurons ``W`` (C x d) returns (C, k) population projections
        :math:`g_j(w)=\mathbb E_x[\phi(w\cdot x)h_j(x)]`; the result's ``population`` then holds
        :math:`\mathbb E_x[\bar f(x)h_j(x)]=\sigma_a^2\langle g_j(w)\,\phi(Xw)\cdot\bar t\rangle`
        with jackknife errors.
    progress : callable, optional
        Called as ``progress(iteration, lam, residual)`` after every iteration.
    confine : (u, phi_max), optional
        Restrict the single-neuron law to the basin :math:`|u\cdot w|\le\Phi_{max}`
        (``u`` a unit vector in :math:`\mathbb R^d`): the metastable branch of a first-order
        transition, without the droplets along ``u`` (chains reject moves out of it; prior draws
        by rejection).

    Returns
    -------
    FiniteKernelResult
        Status 0 when converged, 2 when the fixed point did not converge, 3 on NaN.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((20, 3)); y = X[:, 0]
    >>> r = finite_data_kernel(X, y, 10, 0.3, 1.0, chains=64, steps=20, burn=10, thin=5,
    ...                        seed=1, tol=0.5)
    >>> r.tbar.shape, r.status in (0, 2)
    ((20,), True)
    """
    X, width, sigma2, sigma_a2, sigma_w2, chains, batches = _common(
        X, width, sigma2, sigma_a2, sigma_w2, chains, batches)
    n, d = X.shape
    y = _check_vector("y", y, n)
    check_choice("method", method, ("reweight", "anneal"))
    check_choice("law", law, LAWS)
    if method == "anneal" and law != "eq7":
        raise ValueError(f"method='anneal' solves law='eq7' only; got law={law!r}")
    steps = check_int("steps", steps, 1, 10 ** 7)
    burn = check_int("burn", burn, 0, 10 ** 7)
    thin = check_int("thin", thin, 1, steps)
    anneal = check_int("anneal", anneal, 1, 1000)
    maxiter = check_int("maxiter", maxiter, 1, 10 ** 5)
    damping = check_range("damping", damping, 0, 1, lo_open=True)
    tol = check_range("tol", tol, 0, 1, lo_open=True)
    ess_min = check_range("ess_min", ess_min, 0, 1, lo_open=True, hi_open=True)
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
    if moments is not None and not callable(moments):
        raise ValueError(f"moments={moments!r} is not callable")
    if confine is not None:
        u = _check_vector("confine[0]", confine[0], d)
        if not math.isclose(float(u @ u), 1.0, rel_tol=1e-9):
            raise ValueError(f"confine[0] has norm {float(np.sqrt(u @ u)):.6g}; give a unit "
                             f"vector")
        confine = (u, check_range("confine[1]", confine[1], 0, 1e6, lo_open=True))
    snaps = max(1, final_steps // thin)
    _check_memory(chains, n, m, batches, snaps)
    rng, seed = _seed_rng(seed)
    act = _activation(activation)
    params = dict(n=n, d=d, width=width, sigma2=sigma2, sigma_a2=sigma_a2, sigma_w2=sigma_w2,
                  activation=str(activation), law=law, chains=chains, steps=steps,
                  burn=burn, thin=thin, batches=batches, anneal=anneal, damping=damping,
                  tol=tol, maxiter=maxiter, final_steps=final_steps,
                  interaction=bool(interaction), seed=seed, method=method, ess_min=ess_min,
                  confine=None if confine is None else [list(confine[0]), confine[1]])

    ch = _Chains(act, X, sigma_w2, chains, rng, confine=confine)
    kappa = sigma_a2 / width if interaction else 0.0
    ctx = dict(y=y, kappa=kappa, sigma2=sigma2, sigma_a2=sigma_a2, law=law, width=width)
    loop = _loop_reweight if method == "reweight" else _loop_anneal
    rf = (_RandomFeatures(width, y, sigma2, sigma_a2)
          if Xtest is not None and chains >= width and (law == "eq7" or not interaction)
          else None)
    collect_kw = dict(Xtest=Xtest, moments=moments, on_snapshot=rf)
    tbar, it, history, residual, status, smp = loop(
        ch, ctx, burn=burn, steps=steps, thin=thin, batches=batches, maxiter=maxiter, tol=tol,
        progress=progress, ess_min=ess_min, anneal=anneal, damping=damping,
        interaction=interaction, collect_kw=collect_kw)
    if status == 0 and interaction and method == "anneal" and residual >= tol:
        status = 2
    if rf is not None and smp is not None:
        rf.outs = rf.outs[-max(1, steps // thin):]            # the last iteration's snapshots
    return _final(ch, ctx, tbar, status, it, history, residual, params, burn=burn, snaps=snaps,
                  thin=thin, batches=batches, Xtest=Xtest, ytest=ytest, moments=moments,
                  hist_edges=hist_edges, tol=tol, maxiter=maxiter, rf=rf, smp=smp,
                  interaction=interaction)


def _gp_solve(Q, y, sigma2):
    try:
        return np.linalg.solve(Q + sigma2 * np.eye(len(y)), y)
    except np.linalg.LinAlgError:
        return np.full(len(y), np.nan)


def _proposal(smp):
    r"""The chains' :math:`\rho` (:math:`L=1+\kappa\rho\,\phi\cdot\phi`) closest on average to
    the target metric of the samples: :math:`\rho=\overline{\phi^\top M\phi}/\overline{\phi\cdot\phi}`."""
    return 0.0 if smp.qm is None else float(smp.qm.mean() / smp.q.mean())


def _loop_reweight(ch, ctx, burn, steps, thin, batches, maxiter, tol, progress, ess_min,
                   interaction, collect_kw, **_):
    """Outer loop of ``method="reweight"``: returns (tbar, iterations, history, residual,
    status, samples of the last iteration, with the metric of the law set)."""
    y, kappa, s2, sa2, law, N = (ctx[k] for k in ("y", "kappa", "sigma2", "sigma_a2", "law",
                                                  "width"))
    snaps = max(1, steps // thin)
    ch.set_target(np.zeros(len(y)), 0.0)
    smp = _collect(ch, snaps, 1, batches, **collect_kw)      # exact prior draws
    K0 = _weighted_kernel(smp, np.full(len(smp.q), 1.0 / len(smp.q)), sa2)
    t = _gp_solve(K0, y, s2)
    history, it, residual = [], 0, 0.0
    if not interaction or not np.all(np.isfinite(t)):
        return t, 0, history, 0.0, 0 if np.all(np.isfinite(t)) else 3, smp
    M = None if law == "eq7" else np.linalg.inv(K0 + s2 * np.eye(len(y)))
    _set_metric(smp, M)
    ch.set_target(t, kappa, _proposal(smp))
    ch.run(2 * burn, adapt=True)
    status = 2
    for it in range(1, maxiter + 1):
        if it > 1:
            ch.set_target(t, kappa, _proposal(smp))
            ch.run(burn, adapt=True)
        smp = _collect(ch, snaps, thin, batches, **collect_kw)
        _set_metric(smp, M)
        ts, _, _ = _self_consistent(smp, t, y, kappa, s2, sa2)
        if not np.all(np.isfinite(ts)):
            return t, it, history, residual, 3, smp
        alpha = 1.0
        while alpha > 1e-3 and _weights(smp, t + alpha * (ts - t), kappa)[2] < ess_min:
            alpha *= 0.5
        norm = max(np.linalg.norm(t), 1e-300)
        residual = float(alpha * np.linalg.norm(ts - t) / norm)
        history.append(residual)
        if progress is not None:
            progress(it, alpha, residual)
        if alpha == 1.0:
            if residual < tol:
                status = 0
            else:
                # Monte Carlo floor of the step: split the chains in two halves
                half = smp.batch < batches // 2
                ta = _self_consistent(smp.subset(half), ts, y, kappa, s2, sa2)[0]
                tb = _self_consistent(smp.subset(~half), ts, y, kappa, s2, sa2)[0]
                if residual < np.linalg.norm(ta - tb) / norm:      # 2 x the floor
                    status = 0
        if status == 0:
            return t, it, history, residual, 0, smp
        t = t + alpha * (ts - t)
        M = _metric(smp, t, kappa, s2, sa2, N, law)
        _set_metric(smp, M)
    return t, it, history, residual, status, smp


def _loop_anneal(ch, ctx, burn, steps, thin, batches, maxiter, tol, progress, anneal, damping,
                 interaction, **_):
    """Outer loop of ``method="anneal"`` (Rubin et al. 2025, Algorithm 1); the last item
    returned (samples) is None: the final measurement draws its own."""
    y, kappa_full, s2, sa2 = (ctx[k] for k in ("y", "kappa", "sigma2", "sigma_a2"))
    ch.set_target(np.zeros(len(y)), 0.0)
    S, counts = _sample_kernel(ch, burn, steps, thin, batches)
    Q, _ = _batch_stats(S, counts, sa2)
    tbar = _gp_solve(Q, y, s2)
    history, it, residual, status = [], 0, 0.0, 0
    gamma = damping
    lams = [(k + 1) / anneal for k in range(anneal)] if interaction else []
    for si, lam in enumerate(lams):
        last = si == len(lams) - 1
        for _ in range(maxiter if last else 3):
            ch.set_target(tbar, lam * kappa_full)
            S, counts = _sample_kernel(ch, burn, steps, thin, batches)
            Qn, _ = _batch_stats(S, counts, sa2)
            it += 1
            # self-consistency residual at tbar: the change an undamped update would make
            tmap = _gp_solve(Qn, y, s2)
            if not np.all(np.isfinite(tmap)):
                return tbar, it, history, residual, 3, None
            prev = residual
            residual = float(np.linalg.norm(tmap - tbar) / max(np.linalg.norm(tbar), 1e-300))
            history.append(residual)
            if progress is not None:
                progress(it, lam, residual)
            if last and residual < tol:
                break
            if last and len(history) > 1 and residual > prev:
                gamma = max(0.5 * gamma, 0.1)     # an overshooting iteration: damp harder
            Q = (1 - gamma) * Q + gamma * Qn
            tbar = _gp_solve(Q, y, s2)
    return tbar, it, history, residual, status, None


def _final(ch, ctx, tbar, status, it, history, residual, params, burn, snaps, thin, batches,
           Xtest, ytest, moments, hist_edges, tol, maxiter, rf, smp, interaction):
    """Final measurement at ``tbar``: fresh samples, the self-consistent solution on them,
    predictor, b, c, population projections, histogram, and jackknife errors over batches."""
    y, kappa, s2, sa2, law, N = (ctx[k] for k in ("y", "kappa", "sigma2", "sigma_a2", "law",
                                                  "width"))
    n, m = len(y), 0 if Xtest is None else Xtest.shape[0]
    nan = float("nan")
    f_test = f_test_se = f_test_rf = np.full(m, nan)
    test_loss = b = b_se = c = c_se = b_rf = b_rf_se = c_rf = c_rf_se = nan
    pop = pop_se = np.full(0, nan)
    hist = hist_se = np.zeros(len(hist_edges) - 1)
    train_loss_se = test_loss_se = nan
    Q, Q_se, tfin = np.full((n, n), nan), np.full((n, n), nan), tbar
    final_res = residual
    if status != 3:
        if smp is None:
            ch.set_target(tbar, kappa)
            if burn:
                ch.run(burn, adapt=True)
            if rf is not None:
                rf.outs = []
            smp = _collect(ch, snaps, thin, batches, Xtest=Xtest, moments=moments,
                           on_snapshot=rf)
        solve_kw = dict(y=y, kappa=kappa, sigma2=s2, sigma_a2=sa2)
        t0 = tbar
        if interaction and law != "eq7":
            for _ in range(2):      # the metric made self-consistent on the final samples
                _set_metric(smp, _metric(smp, t0, kappa, s2, sa2, N, law))
                t0 = _self_consistent(smp, t0, **solve_kw)[0]

        def measure(sub, t0):
            if interaction:
                t = _self_consistent(sub, t0, **solve_kw)[0]
            else:
                uni = np.full(len(sub.q), 1.0 / len(sub.q))
                t = _gp_solve(_weighted_kernel(sub, uni, sa2), y, s2)
            w, s, _ = _weights(sub, t, kappa)
            ws = w * s / sub.L(kappa)
            f = (None if sub.Ft is None else
                 sa2 * (sub.Ft.T @ ws.astype(np.float32)).astype(float))
            p = None if sub.mom is None else sa2 * (sub.mom.T @ ws)
            return t, w, f, p

        tfin, w, f_test, pop = measure(smp, t0)
        Q = _weighted_kernel(smp, w / smp.L(kappa), sa2)
        hist = np.histogram(smp.phi, hist_edges, weights=w)[0]
        # jackknife over batches of chains: leave one batch out, re-solve, re-measure
        reps = [measure(smp.subset(smp.batch != bi), tfin) for bi in range(batches)]

        def jk(vals):
            v = np.asarray(vals, float)
            return np.sqrt((batches - 1) / batches * ((v - v.mean(0)) ** 2).sum(0))
        # batch means of the kernel (weights fixed at the full solution)
        Q_se = _kernel_se(smp, w / smp.L(kappa), w, batches, sa2)
        train_loss_se = float(jk([np.mean((s2 * r[0]) ** 2) for r in reps]))
        hb = np.array([np.histogram(smp.phi[smp.batch == bi], hist_edges,
                                    weights=w[smp.batch == bi])[0] for bi in range(batches)])
        hb = hb / np.maximum(hb.sum(1, keepdims=True), 1e-300) / np.diff(hist_edges)
        hist_se = hb.std(0, ddof=1) / math.sqrt(batches)
        if f_test is not None:
            f_test_se = jk([r[2] for r in reps])
        else:
            f_test = np.full(m, nan)
        if pop is not None:
            pop_se = jk([r[3] for r in reps])
        else:
            pop = np.full(0, nan)
        if ytest is not None:
            test_loss = float(np.mean((ytest - f_test) ** 2))
            test_loss_se = float(jk([np.mean((ytest - r[2]) ** 2) for r in reps]))
            z = Xtest[:, 0]
            he1, he3 = z, z ** 3 - 3 * z
            b = float(np.mean((ytest - f_test) * he1))
            c = float(np.mean((ytest - f_test) * he3) / 6)
            b_se = float(jk([np.mean((ytest - r[2]) * he1) for r in reps]))
            c_se = float(jk([np.mean((ytest - r[2]) * he3) / 6 for r in reps]))
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
        if interaction:
            final_res = float(np.linalg.norm(tfin - tbar) / max(np.linalg.norm(tbar), 1e-300))
    f_train = y - s2 * tfin
    train_loss = float(np.mean((y - f_train) ** 2))
    if status == 0 and not (np.all(np.isfinite(tfin)) and np.all(np.isfinite(Q))):
        status = 3
    dens = hist / max(hist.sum(), 1e-300) / np.diff(hist_edges)
    detail = None
    if status == 2:
        detail = (f"relative change of tbar {residual:.3g} >= tol={tol:g} after {maxiter} "
                  f"iterations")
    elif status == 3:
        detail = "non-finite discrepancy or kernel"
    return FiniteKernelResult(
        tbar=tfin, Q=Q, Q_se=Q_se, f_train=f_train, f_test=f_test, f_test_se=f_test_se,
        train_loss=train_loss, train_loss_se=train_loss_se, test_loss=test_loss,
        test_loss_se=test_loss_se, b=b, b_se=b_se, c=c, c_se=c_se,
        f_test_rf=f_test_rf, b_rf=b_rf, b_rf_se=b_rf_se, c_rf=c_rf, c_rf_se=c_rf_se,
        population=pop, population_se=pop_se,
        phi_hist=(hist_edges, dens), phi_hist_se=hist_se, acceptance=float(ch.accept), iterations=it,
        residual=residual, residual_history=tuple(history + [final_res]), status=status,
        message=status_message(status, detail), params=params)
