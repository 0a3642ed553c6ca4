r"""Modular-addition model of Rubin, Seroussi & Ringel (2023), sampled by Langevin dynamics.

Source: Rubin, Seroussi & Ringel, "Grokking as a first order phase transition in two layer
networks" (2023), Sec. 2.2 (model), Sec. 3.2 and App. B (per-mode Fourier action, sextic
stabiliser, GFL -> GMFL-I -> GMFL-II); theory side in :mod:`kernelphase.solvers.modular`.

**Model.** Modulus :math:`P` prime, the whole table of :math:`P^2` two-hot inputs
:math:`x_{nm}=e_n+e_{P+m}\in\mathbb R^{2P}`, centred one-hot targets and a square-activation
student with :math:`P` outputs,

.. math:: y_p(x_{nm})=\delta_{p,(n+m)\bmod P}-\frac1P,\qquad
          f_p(x_{nm})=\sum_{i=1}^N a_{ip}\,h_{i,nm}^2,\qquad h_{i,nm}=w_i\cdot x_{nm}=W_{i,n}+W_{i,P+m}.

(``a`` is stored as an :math:`N\times P` array, ``W`` as :math:`N\times 2P`.) Priors
:math:`a_{ip}\sim\mathcal N(0,\sigma_a^2/N)`, :math:`W_{ij}\sim\mathcal N(0,1)`.

**Posterior.** With Fourier variables
:math:`w_k=\frac1P\sum_n W_{n}e^{2\pi ikn/P}`, :math:`v_k=\frac1P\sum_m W_{P+m}e^{2\pi ikm/P}`
of each neuron and the paper's sextic stabiliser

.. math:: \Gamma[w]=\sum_{k=0}^{P-1}P\,\frac{\gamma}{6}\big(|w_k|^6+|v_k|^6\big),

the sampled law is

.. math:: \log p(a,W\mid\mathcal D)=-\frac{N|a|^2}{2\sigma_a^2}-\frac{|W|^2}{2}
          -\sum_{nm,p}\frac{(f_p(x_{nm})-y_p(x_{nm}))^2}{2\sigma^2}-\sum_i\Gamma[w_i]+\text{const}.

By Parseval :math:`\sum_nW_n^2/2=P\sum_k|w_k|^2/2`, so per mode the action is
:math:`\mathcal S_k/P=(\Phi+\Psi)/2-g\Phi\Psi+\frac\gamma6(\Phi^3+\Psi^3)`,
:math:`\Phi=|w_k|^2`, :math:`\Psi=|v_k|^2`. The gradient of :math:`\Gamma` in the real weights is
:math:`\partial\Gamma/\partial W_n=\gamma\,\mathrm{Re}\,\big[\mathrm{IFFT}\big(|w_k|^4\,F_k\big)\big]_n`
with :math:`F_k=\mathrm{FFT}(W)_k` (so :math:`|w_k|=|F_k|/P`).

**Observables** (per network, averaged over its samples; ensemble statistics across networks):

* discrepancy amplitude :math:`a_{\rm sim}=-\langle(y-\bar f)\cdot y\rangle/\langle y\cdot y\rangle`
  (sums over the table and the outputs, :math:`\bar f` the network's posterior-mean output):
  :math:`-1` when nothing is learned, the theory's :math:`a\in[-1,0]`;
* mode power :math:`\langle\Phi_k\Psi_k\rangle` averaged over neurons and modes
  :math:`k=1..P-1`, against ``modular_phase(...).mode_power``;
* the histogram of :math:`\log_{10}\Phi` over all (neuron, mode) pairs and the droplet fraction
  (pairs with :math:`\Phi>\Phi_+/2`) against the theory's droplet weight;
* train loss (mean over the :math:`P^3` entries) of the ensemble-mean output, computed from its
  projection on shift-symmetric functions :math:`\bar f_p(x_{nm})=F[(p-n-m)\bmod P]` (the exact
  posterior mean is shift-symmetric and the target lies in that space, so this only drops
  sampling noise; it keeps the accumulated state at :math:`P` numbers per network).

Presets move along the Table 1 family with ``scale`` (:math:`\beta`):
:math:`N\to\beta^2N`, :math:`P\to\sqrt\beta\,P` (nearest prime), :math:`\sigma^2\to\sigma^2/\beta`,
:math:`\sigma_a^2\to\sigma_a^2/\beta`, which keeps :math:`u=2\sigma_a^2P^2/(N\sigma^4)` invariant.
"""
import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from kernelphase._checks import check_choice, check_int, check_positive
from kernelphase.figures import label, legend, mark_transition, save, styled, subplots, with_gaps
from kernelphase.results import Result, status_message
from .langevin import gaussian_readout

__all__ = ["ModularNetworkPosterior", "MODULAR_PRESETS", "scaled_modular_preset", "nearest_prime",
           "modular_targets", "default_modular_lr", "plan_modular", "run_modular",
           "ModularValidation", "plot_modular_report", "modular_hot_start", "target_eigenvalue"]

MODULAR_PRESETS = {
    "fig3": dict(width=1000, P=401, sigma_a2=0.002 / 1000, gamma=1e-4,
                 sigma2=(0.30, 0.236, 0.2, 0.176, 0.15)),
    # hysteresis preset, near the mean-field regime at small P: gamma = 1/3, so Phi_+(g_c) = 3;
    # with the network's target eigenvalue 4 P^2 sigma_a^2 <Phi Psi> (:func:`target_eigenvalue`)
    # sigma_1^2 = 4.17e-4 and GMFL-I for 0.7 sigma_1^2 < sigma^2 < sigma_1^2; barrier 15 per
    # mode pair at g_c; a neuron with one droplet pair has a kernel norm (sigma_a^2/N)|h^2|^2 of
    # 0.08 sigma_1^2 (the mean field needs it << sigma^2)
    "hyst": dict(width=60, P=17, sigma_a2=0.09 / (4 * 60 * 27) / (4 * 17 ** 2), gamma=1 / 3,
                 sigma2=tuple(f * 0.3 / (4 * 60 * 3) for f in
                              (0.75, 0.85, 0.93, 0.98, 1.02, 1.05, 1.08, 1.12, 1.2))),
}

#: log10(Phi) bins of the Fourier-power histogram
LOG_PHI_BINS = np.linspace(-6.0, 4.0, 81)


def _check_prime(P):
    from kernelphase.solvers.modular import _check
    return _check(P, 1, 1.0, 1.0)[0]


def _is_prime(n):
    return n >= 2 and all(n % q for q in range(2, math.isqrt(n) + 1))


def nearest_prime(x):
    """The prime closest to ``x`` (the smaller one on a tie); at least 2.

    Examples
    --------
    >>> from kernelphase.validation.modular_addition import nearest_prime
    >>> nearest_prime(100), nearest_prime(12), nearest_prime(0.5)
    (101, 11, 2)
    """
    x = float(x)
    lo = max(2, math.floor(x))
    hi = max(2, math.ceil(x))
    while not _is_prime(hi):
        hi += 1
    while lo > 2 and not _is_prime(lo):
        lo -= 1
    if not _is_prime(lo):
        return hi
    return lo if x - lo <= hi - x else hi


def modular_targets(P):
    """Target table ``y`` of shape (P^2, P), row ``n*P+m`` (for tests and small P).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.modular_addition import modular_targets
    >>> y = modular_targets(3)
    >>> y.shape, np.round(y[0], 4).tolist()        # one-hot of (0 + 0) mod 3, centred
    ((9, 3), [0.6667, -0.3333, -0.3333])
    """
    P = _check_prime(P)
    n, m = np.divmod(np.arange(P * P), P)
    y = np.full((P * P, P), -1.0 / P)
    y[np.arange(P * P), (n + m) % P] += 1.0
    return y


class ModularNetworkPosterior:
    r"""Posterior of the square-activation student on the modular-addition table.

    Parameters
    ----------
    P : int
        Prime modulus.
    width : int
        Number of hidden neurons :math:`N`.
    sigma2 : float
        Likelihood noise variance :math:`\sigma^2`.
    sigma_a2 : float
        Summed read-out prior variance :math:`\sigma_a^2` (each :math:`a_{ip}` has
        :math:`\sigma_a^2/N`).
    gamma : float
        Strength of the sextic stabiliser :math:`\Gamma`.

    Notes
    -----
    Interface of :func:`kernelphase.validation.langevin.langevin_run`: ``var_a``, ``var_w``,
    ``prior_sample(rng)``, ``grad_loglik(a, W)`` (gradient of the log-likelihood minus
    :math:`\Gamma`; the Gaussian priors are integrated exactly by the sampler). The
    pre-activations :math:`h_{i,nm}=W_{i,n}+W_{i,P+m}` are formed as a :math:`P^2\times N` array
    (the two-hot input matrix never is); the outputs and the read-out gradient are matrix
    products, the read-in gradient a reduction over :math:`m` or :math:`n`.
    """

    readout = "gibbs"      # the read-out is drawn from its Gaussian conditional every step

    def __init__(self, P, width, sigma2, sigma_a2, gamma):
        self.P = _check_prime(P)
        self.N = check_int("width", width, 1)
        self.sigma2 = check_positive("sigma2", sigma2)
        self.sigma_a2 = check_positive("sigma_a2", sigma_a2)
        self.gamma = check_positive("gamma", gamma)
        self.var_a = self.sigma_a2 / self.N
        self.var_w = 1.0
        self.shapes = ((self.N, self.P), (self.N, 2 * self.P))     # of a and W
        n, m = np.divmod(np.arange(self.P * self.P), self.P)
        self._target_col = (n + m) % self.P          # the output p with y_p = 1 - 1/P per row
        self._by_sum = np.argsort(self._target_col, kind="stable")   # rows grouped by (n+m)%P

    # -- model -------------------------------------------------------------------------------
    def prior_sample(self, rng):
        """One network from the prior: ``a`` (N, P), ``W`` (N, 2P)."""
        return (rng.standard_normal((self.N, self.P)) * math.sqrt(self.var_a),
                rng.standard_normal((self.N, 2 * self.P)) * math.sqrt(self.var_w))

    def preactivations(self, W):
        """``H`` of shape (P^2, N): ``H[n*P+m, i] = W[i, n] + W[i, P+m]``."""
        P = self.P
        WT = np.ascontiguousarray(W.T)
        return (WT[:P, None, :] + WT[None, P:, :]).reshape(P * P, self.N)

    def forward(self, a, W):
        """Outputs on the whole table, shape (P^2, P), row ``n*P+m``."""
        H = self.preactivations(W)
        return (H * H) @ a

    def fourier_power(self, W):
        r""":math:`\Phi=|w_k|^2` and :math:`\Psi=|v_k|^2`, each (N, P), k = 0..P-1."""
        P = self.P
        F = np.fft.fft(W[:, :P], axis=1)
        G = np.fft.fft(W[:, P:], axis=1)
        return (F.real ** 2 + F.imag ** 2) / P ** 2, (G.real ** 2 + G.imag ** 2) / P ** 2

    def gamma_term(self, W):
        r""":math:`\sum_i\Gamma[w_i]` (FFT)."""
        Phi, Psi = self.fourier_power(W)
        return self.P * self.gamma / 6 * float(np.sum(Phi ** 3) + np.sum(Psi ** 3))

    def gamma_grad(self, W):
        r"""Gradient of :math:`\sum_i\Gamma[w_i]` in ``W``:
        :math:`\gamma\,\mathrm{Re}\,\mathrm{IFFT}(|w_k|^4F_k)` per half."""
        P = self.P
        out = np.empty_like(W, dtype=float)
        for sl in (slice(0, P), slice(P, 2 * P)):
            F = np.fft.fft(W[:, sl], axis=1)
            m2 = ((F.real ** 2 + F.imag ** 2) / P ** 2) ** 2
            out[:, sl] = self.gamma * np.fft.ifft(m2 * F, axis=1).real
        return out

    def residual(self, F):
        """``F - y`` in place (``F`` the (P^2, P) outputs)."""
        F += 1.0 / self.P
        F[np.arange(F.shape[0]), self._target_col] -= 1.0
        return F

    def loglik(self, a, W):
        r"""Log-likelihood minus :math:`\Gamma` (no priors)."""
        R = self.residual(self.forward(a, W))
        return -float(np.sum(R * R)) / (2 * self.sigma2) - self.gamma_term(W)

    def grad_loglik(self, a, W):
        r"""Gradient of :math:`\ell-\Gamma` in ``a`` (N, P) and ``W`` (N, 2P).

        With :math:`R=(f-y)/\sigma^2` (:math:`P^2\times P`):
        :math:`\partial_a=-(H^2)^\top R`, :math:`\partial_h=-2h\,(Ra^\top)`, summed over
        :math:`m` for :math:`W_{i,n}` and over :math:`n` for :math:`W_{i,P+m}`.
        """
        P, N = self.P, self.N
        H = self.preactivations(W)
        H2 = H * H
        R = self.residual(H2 @ a)
        R *= 1.0 / self.sigma2
        ga = -(H2.T @ R)
        M = (R @ a.T)
        M *= H
        M = M.reshape(P, P, N)
        gW = np.empty((N, 2 * P))
        gW[:, :P] = -2.0 * M.sum(axis=1).T
        gW[:, P:] = -2.0 * M.sum(axis=0).T
        gW -= self.gamma_grad(W)
        return ga, gW

    def sample_readout(self, W, rng):
        r"""Exact draw of the read-out from its Gaussian conditional :math:`p(a\mid W,\mathcal D)`:
        :func:`~.langevin.gaussian_readout` with the (P^2, N) squared pre-activations as features
        and one column per output. Used by ``langevin_run`` in place of Langevin steps of ``a``
        (Langevin-within-Gibbs: same stationary law, no read-out stiffness).
        """
        H2 = self.preactivations(W) ** 2
        # H2^T Y: rows grouped by their target output, minus the centring 1/P
        grouped = H2[self._by_sum].reshape(self.P, self.P, self.N).sum(axis=1)    # (p, N)
        return gaussian_readout(H2.T @ H2, (grouped - H2.sum(axis=0) / self.P).T,
                                self.var_a, self.sigma2, rng)

    def gibbs_step(self, W, rng):
        """The read-out drawn by :meth:`sample_readout` and the read-in gradient at it."""
        a = self.sample_readout(W, rng)
        return a, self.grad_loglik(a, W)[1]

    def grad_logp(self, a, W):
        """Gradient of the full log posterior (priors included)."""
        ga, gW = self.grad_loglik(a, W)
        return ga - a / self.var_a, gW - W / self.var_w

    # -- observables -------------------------------------------------------------------------
    def symmetric_projection(self, F):
        r"""Projection of outputs on shift-symmetric functions:
        :math:`\mathrm{fsym}[c]=P^{-2}\sum_{nm}f_{(n+m+c)\bmod P}(x_{nm})`, c = 0..P-1."""
        P = self.P
        G = F[self._by_sum].reshape(P, P, P).sum(axis=1)          # G[s, p]: rows with n+m=s
        cols = (np.arange(P)[:, None] + np.arange(P)[None, :]) % P  # (s, c) -> p = s + c
        return np.take_along_axis(G, cols, axis=1).sum(axis=0) / P ** 2


def default_modular_lr(P, width, sigma2, sigma_a2):
    r"""Default step: a tenth of the inverse read-in curvature, prior plus likelihood.

    The read-out is drawn exactly from its Gaussian conditional every step
    (:meth:`ModularNetworkPosterior.sample_readout`), so its stiff likelihood Hessian
    :math:`H^{2\top}H^2/\sigma^2` (top eigenvalue :math:`\approx P^2(4N+8)/\sigma^2` at the prior)
    does not limit the step. The read-in curvature is the prior's 1 plus the likelihood's
    :math:`\approx8P^2\sigma_a^2/(N\sigma^2)` (prior-typical :math:`h^2=2`, :math:`a^2=\sigma_a^2/N`),
    so :math:`\eta=0.1/(1+8P^2\sigma_a^2/(N\sigma^2))`; the read-in prior relaxes in about ten
    steps.

    Examples
    --------
    >>> from kernelphase.validation.modular_addition import default_modular_lr
    >>> lr = default_modular_lr(401, 1000, 0.2, 2e-6)
    >>> lr > 0
    True
    """
    return 0.1 / (1 + 8 * P * P * sigma_a2 / (width * sigma2))


def scaled_modular_preset(name, scale):
    """Preset moved along the Table 1 modular family by ``scale`` (beta).

    ``N -> beta^2 N`` (at least 1), ``P -> sqrt(beta) P`` (nearest prime),
    ``sigma2 -> sigma2/beta``, ``sigma_a2 -> sigma_a2/beta``; ``gamma`` unchanged.

    Examples
    --------
    >>> from kernelphase.validation.modular_addition import scaled_modular_preset
    >>> p = scaled_modular_preset("fig3", 0.125)
    >>> sorted(p)
    ['P', 'gamma', 'sigma2', 'sigma_a2', 'width']
    >>> p["width"], p["P"]
    (16, 139)
    """
    check_choice("preset", name, tuple(MODULAR_PRESETS))
    s = check_positive("scale", scale)
    p = dict(MODULAR_PRESETS[name])
    p["width"] = max(1, round(p["width"] * s * s))
    p["P"] = nearest_prime(p["P"] * math.sqrt(s))
    p["sigma2"] = tuple(v / s for v in p["sigma2"])
    p["sigma_a2"] = p["sigma_a2"] / s
    return p


#: columns of :meth:`_ModularObserver.series`
MODULAR_SERIES = ("a", "droplet_fraction", "mode_power")


def target_eigenvalue(post, W):
    r"""Eigenvalue of the network's kernel on the target, and its Fourier form.

    With :math:`K(x,x')=\frac{\sigma_a^2}N\sum_ih_i(x)^2h_i(x')^2` (the read-out integrated out),
    the shift symmetry makes the target an eigenvector of the ensemble kernel, and per network

    .. math:: \lambda=\frac{\sum_py_p^\top Ky_p}{\sum_py_p^\top y_p}
              =4P^2\sigma_a^2\,\overline{\Phi_k\Psi_k},

    the bar the mean over neurons and modes :math:`k=1..P-1`, because
    :math:`\sum_{nm}y_p(x_{nm})h(x_{nm})^2=2P\sum_{k\ne0}w_kv_ke^{-2\pi ikp/P}`
    (Parseval; derived here, the paper's Eq. 38 prints :math:`\sigma_a^2\langle\Phi\Psi\rangle`
    without the :math:`4P^2`, theory notes Sec. 5.5 and Sec. 10 item 5). The GPR closure is then
    :math:`|a|=\sigma^2/(\sigma^2+\lambda)`. Returns ``(lambda_fourier, lambda_direct)``,
    the direct one from the :math:`P^2\times P^2` kernel (small P only).

    Examples
    --------
    >>> post = ModularNetworkPosterior(5, 3, 1.0, 0.7, 0.1)
    >>> lf, ld = target_eigenvalue(post, post.prior_sample(np.random.default_rng(0))[1])
    >>> bool(abs(lf - ld) < 1e-9 * ld)
    True
    """
    Phi, Psi = post.fourier_power(W)
    fourier = 4 * post.P ** 2 * post.sigma_a2 * float(np.mean(Phi[:, 1:] * Psi[:, 1:]))
    H2 = post.preactivations(W) ** 2
    y = modular_targets(post.P)
    proj = H2.T @ y                                        # (N, P): h_i^2 . y_p
    direct = post.sigma_a2 / post.N * float(np.sum(proj * proj)) / float(np.sum(y * y))
    return fourier, direct


def modular_hot_start(post, phi_plus, fraction, rng):
    r"""Weights with a fraction of the neurons in the droplet state of every Fourier mode.

    For each mode pair :math:`(k,P-k)`, :math:`k=1..(P-1)/2`, ``round(fraction * N)`` neurons
    (consecutive in one random order of the neurons, so every neuron holds as many droplet pairs
    as any other, up to one) get :math:`|w_k|^2=|v_k|^2=\Phi_+` with uniform random phases (the
    saddle of the per-mode action, Rubin et al. App. B, Eq. 40); every other Fourier
    coefficient, and the read-out, are prior draws. So the droplet weight of every mode is
    ``fraction`` (the theory's :math:`p`, up to the rounding). Returns ``(a, W)``.

    Examples
    --------
    >>> post = ModularNetworkPosterior(7, 10, 0.1, 1e-3, 1.0)
    >>> a, W = modular_hot_start(post, 2.0, 0.3, np.random.default_rng(0))
    >>> Phi, Psi = post.fourier_power(W)
    >>> hot = np.isclose(Phi[:, 1:], 2.0)
    >>> int(hot.sum()), bool(np.array_equal(hot, np.isclose(Psi[:, 1:], 2.0)))
    (18, True)
    """
    from kernelphase._checks import check_range
    phi_plus = check_range("phi_plus", phi_plus, 0.0, 1e6)
    fraction = check_range("hot_fraction", fraction, 0.0, 1.0)
    a, W = post.prior_sample(rng)
    P, N = post.P, post.N
    k_hot = int(round(fraction * N))
    F = np.fft.fft(W.reshape(N, 2, P), axis=2)               # w_k and v_k of every neuron
    order = rng.permutation(N)
    for k in range(1, (P - 1) // 2 + 1):                     # the same neurons in w and v
        idx = order[((k - 1) * k_hot + np.arange(k_hot)) % N]
        F[idx, :, k] = P * math.sqrt(phi_plus) * np.exp(2j * math.pi * rng.random((k_hot, 2)))
        F[idx, :, P - k] = np.conj(F[idx, :, k])
    W = np.fft.ifft(F, axis=2).real.reshape(N, 2 * P)
    return a, W


class _ModularObserver:
    """Per-sample observables of one network (picklable; a few P-vectors per sample)."""

    def __init__(self, post, bins, phi_cut):
        self.post, self.bins, self.phi_cut = post, bins, phi_cut

    def __call__(self, a, W):
        post = self.post
        F = post.forward(a, W)
        fsym = post.symmetric_projection(F)
        Phi, Psi = post.fourier_power(W)
        Phi, Psi = Phi[:, 1:], Psi[:, 1:]                 # modes k = 1..P-1
        with np.errstate(divide="ignore"):
            lp = np.log10(Phi.ravel())
        R = post.residual(F)
        return {"fsym": fsym, "loss": np.sum(R * R) / R.size,
                "phipsi": (Phi * Psi).mean(axis=0),
                "hist": np.histogram(np.clip(lp, self.bins[0], self.bins[-1]), self.bins)[0],
                "droplet": np.mean(Phi > self.phi_cut)}

    def series(self, a, W):
        """Scalars per sample: the discrepancy amplitude of the current output, the droplet
        fraction and the mode power (columns :data:`MODULAR_SERIES`)."""
        post = self.post
        fsym = post.symmetric_projection(post.forward(a, W))
        ysym = np.full(post.P, -1.0 / post.P)
        ysym[0] += 1.0
        yy = float(ysym @ ysym)
        Phi, Psi = post.fourier_power(W)
        return np.array([-(yy - fsym @ ysym) / yy, np.mean(Phi[:, 1:] > self.phi_cut),
                         np.mean(Phi[:, 1:] * Psi[:, 1:])])


@dataclasses.dataclass(frozen=True, eq=False)
class ModularValidation(Result):
    """Report of :func:`run_modular`: one row per noise level (JSON-ready dicts); ``status`` 6
    when a network diverged (its row says which; the statistics use the finite networks)."""
    preset: str
    scale: float
    transition: Mapping[str, Any]
    rows: list
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


#: upper bounds of the integer inputs (memory is checked separately by :func:`plan_modular`)
MAX_NETS, MAX_STEPS, MAX_SEED = 10 ** 6, 10 ** 10, 2 ** 63 - 1


def plan_modular(preset="fig3", scale=0.125, sigma2=None, nets=4, steps=1500, lr=None, seed=0,
                 workers=None, scheduler=None):
    """Check every input of :func:`run_modular` before anything is allocated and resolve the run.

    Raises a one-line ``ValueError`` (parameter, value, valid range), or ``the run needs X GiB``
    when the estimated memory (the P^2 x N pre-activation arrays of the networks that run at
    once and the results kept) is above :data:`~kernelphase.validation.ensemble.MEMORY_LIMIT`.
    Returns a dict with the scaled preset ``p``, ``sigma2s``, the checked inputs, ``key``
    (every parameter that determines the result) and ``memory_gib``.

    Examples
    --------
    >>> from kernelphase.validation.modular_addition import plan_modular
    >>> plan = plan_modular(scale=0.125, sigma2=(0.3,), nets=1, steps=10)
    >>> sorted(plan)[:6]
    ['key', 'lr', 'memory_gib', 'nets', 'p', 'seed']
    """
    from .ensemble import _MAX_WORKERS, check_memory, concurrent_tasks
    from kernelphase._checks import check_range
    from .teacher_student import SCALE_RANGE, SIGMA2_RANGE
    check_choice("preset", preset, tuple(MODULAR_PRESETS))
    check_range("scale", scale, *SCALE_RANGE)           # beyond: overflow, slow prime search
    p = scaled_modular_preset(preset, scale)
    nets = check_int("nets", nets, 1, MAX_NETS)
    steps = check_int("steps", steps, 10, MAX_STEPS)
    seed = check_int("seed", seed, 0, MAX_SEED)
    if lr is not None:
        lr = check_positive("lr", lr)
    if workers is not None:
        workers = check_int("workers", workers, 1, _MAX_WORKERS)
    if sigma2 is not None:
        sigma2 = (sigma2,) if np.ndim(sigma2) == 0 else tuple(sigma2)
        if not sigma2:
            raise ValueError("sigma2=() is empty; give at least one noise level")
    sigma2s = tuple(check_range("sigma2", s2, *SIGMA2_RANGE) for s2 in
                    (sigma2 if sigma2 is not None else p["sigma2"]))
    P, N = p["P"], p["width"]
    n_tasks = nets * len(sigma2s)
    at_once = concurrent_tasks(n_tasks, workers, scheduler)
    per_net = 7 * P * P * N + 4 * P ** 3 + N * N + 6 * N * P
    kept = n_tasks * (3 * N * P + 4 * P + 100)
    nbytes = 8 * (at_once * per_net + kept)
    check_memory(nbytes, f"{at_once} network(s) at a time with P^2 x N = {P * P} x {N} "
                         f"pre-activations, {n_tasks} results kept")
    key = {"preset": preset, "scale": float(scale), "P": P, "width": N,
           "sigma2": list(sigma2s), "nets": nets, "steps": steps, "lr": lr, "seed": seed}
    return {"p": p, "sigma2s": sigma2s, "nets": nets, "steps": steps, "lr": lr, "seed": seed,
            "workers": workers, "key": key, "memory_gib": nbytes / 2 ** 30}


def run_modular(preset="fig3", scale=0.125, sigma2=None, nets=4, steps=1500, lr=None, seed=0,
                run_dir=None, progress=None, scheduler=None, workers=None):
    """Sample each noise level with ``nets`` networks and compare with ``modular_phase``.

    Parameters
    ----------
    preset, scale : starting point in :data:`MODULAR_PRESETS` and Table 1 scale (beta).
    sigma2 : noise levels (default: the preset's, scaled).
    nets, steps : networks per noise level and Langevin steps per network (the second half is
        sampled every ``steps // 100`` steps).
    lr : step size (default :func:`default_modular_lr`).
    run_dir : an open :class:`kernelphase.io.RunDir` (key from :func:`plan_modular`) receiving
        one state file per network, ``checkpoints/P{P}_s{sigma2}_net{k}.npz``, and resuming
        from them.
    scheduler, workers, progress : passed to
        :func:`~kernelphase.validation.ensemble.run_ensemble`.

    Returns
    -------
    ModularValidation
        ``preset``, ``scale``, ``params``, ``transition`` and ``rows`` (JSON-ready dicts);
        ``status`` 6 when a network diverged (left out of its row's statistics).

    Notes
    -----
    With the default step (set by the stiff read-out curvature, about 1.7e-7 at scale 1/8) the
    default run covers a Langevin time ``steps * lr`` of order 1e-4, while the read-in weights
    relax on times of order 1 (their prior variance): they stay prior-like, so the run measures
    the random-feature (GFL-like) posterior, not an equilibrated GMFL state. Set
    ``OPENBLAS_NUM_THREADS=1`` (or ``OMP_NUM_THREADS=1``) when using several local workers: the
    worker processes do not limit BLAS threads for this posterior, and oversubscription was
    measured to slow the run by an order of magnitude on 2 cores.

    Examples
    --------
    >>> from kernelphase.validation.modular_addition import run_modular
    >>> rep = run_modular(scale=0.05, sigma2=(0.3,), nets=1, steps=10, workers=1, progress=False)
    >>> rep.preset, [row["sigma2"] for row in rep.rows]
    ('fig3', [0.3])
    """
    from kernelphase.solvers.modular import modular_transition
    from .ensemble import network_status, report_status, run_ensemble
    plan = plan_modular(preset, scale, sigma2, nets, steps, lr, seed, workers, scheduler)
    p, sigma2s = plan["p"], plan["sigma2s"]
    P, N, sa2, gamma = p["P"], p["width"], p["sigma_a2"], p["gamma"]
    tr = modular_transition(P, N, sa2, gamma)
    cells, tasks = [], []
    for s2 in sigma2s:
        post = ModularNetworkPosterior(P, N, s2, sa2, gamma)
        step = lr or default_modular_lr(P, N, s2, sa2)
        cells.append((s2, step, len(tasks)))
        for k in range(nets):
            tasks.append(dict(
                post=post, steps=steps, lr=step, seed=seed, key=(P, round(1e6 * s2), k),
                burn_in=steps // 2, sample_every=max(1, steps // 100),
                observe=_ModularObserver(post, LOG_PHI_BINS, tr.phi_plus / 2),
                checkpoint=((run_dir, f"checkpoints/P{P}_s{s2:g}_net{k}.npz")
                            if run_dir is not None else None),
                checkpoint_every=max(1, steps // 20),
                params={"preset": preset, "sigma2": s2, "width": N, "P": P, "model": "modular"}))
    results = run_ensemble(tasks, scheduler=scheduler, workers=workers, progress=progress)
    rows = [_modular_row(results[i0:i0 + nets], P, N, s2, sa2, gamma, step, tr, network_status)
            for s2, step, i0 in cells]
    from kernelphase.results import jsonable
    status, detail = report_status(rows)
    return ModularValidation(
        preset=preset, scale=float(scale),
        transition={"sigma2_gmfl1": tr.sigma2_gmfl1, "sigma2_gmfl2": tr.sigma2_gmfl2,
                    "phi_plus": tr.phi_plus, "g_c": tr.g_c},
        rows=jsonable(rows), status=status, message=status_message(status, detail),
        params={**p, "sigma2": sigma2s, "nets": nets, "steps": steps, "seed": seed})


def _modular_row(res, P, N, s2, sa2, gamma, step, tr, network_status):
    """Ensemble statistics of one noise level against the theory, over its finite networks (a
    diverged network gives the row status 6 and is left out)."""
    from kernelphase.solvers.modular import modular_phase
    from .teacher_student import _obs
    ok, state = network_status(res)
    th = modular_phase(P, N, sa2, gamma, s2)
    if not ok:
        return {"sigma2": s2, "u": th.u, "phase_theory": th.phase, "lr": step, **state}
    res = [res[i] for i in ok]
    nets = len(res)
    cnt = res[0].acc["count"]
    fsym = np.array([r.acc["fsym"] for r in res]) / cnt              # (nets, P)
    ysym = np.full(P, -1.0 / P)
    ysym[0] += 1.0
    yy = float(ysym @ ysym)                                           # y.y / P^2
    a_i = -(yy - fsym @ ysym) / yy
    power_i = np.array([r.acc["phipsi"].mean() for r in res]) / cnt
    drop_i = np.array([r.acc["droplet"] for r in res]) / cnt
    se = (lambda v: float(np.std(v, ddof=1) / math.sqrt(nets))) if nets > 1 else (lambda v: 0.0)
    hist = np.sum([r.acc["hist"] for r in res], 0) / cnt
    fbar = fsym.mean(0)
    return {
        "sigma2": s2, "u": th.u, "phase_theory": th.phase,
        "a": _obs(th.a, float(a_i.mean()), se(a_i)),
        "mode_power": _obs(th.mode_power, float(power_i.mean()), se(power_i)),
        "droplet_fraction": {"theory": th.droplet_weight, "sim_mean": float(drop_i.mean()),
                             "std_error": se(drop_i)},
        "train_loss": float(np.mean((fbar - ysym) ** 2)),
        "train_loss_samples": float(np.mean([r.acc["loss"] for r in res]) / cnt),
        "phi_hist": {"log10_edges": LOG_PHI_BINS, "counts": hist,
                     "phi_plus": tr.phi_plus},
        "a_per_network": a_i, "lr": step, "samples": cnt,
        "langevin_time": step * res[0].step, **state,
    }


@styled
def plot_modular_report(report, path):
    """``|a|`` against sigma^2 (simulation points, theory line with gaps where it did not
    converge, the GMFL-I onset solid and the GMFL-II onset dotted) and the log10(Phi)
    histograms.

    Examples
    --------
    >>> import os
    >>> from kernelphase.validation.modular_addition import plot_modular_report, run_modular
    >>> rep = run_modular(scale=0.05, sigma2=(0.3,), nets=1, steps=10, workers=1, progress=False)
    >>> plot_modular_report(rep, "modular.png")
    >>> os.path.isfile("modular.png")
    True
    """
    from .teacher_student import report_rows
    rows = sorted((r for r in report_rows(report) if "a" in r),   # diverged cells have none
                  key=lambda r: r["sigma2"])
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 3.8))
    s2 = [r["sigma2"] for r in rows]
    a1.errorbar(s2, [abs(r["a"]["sim_mean"]) for r in rows], [r["a"]["std_error"] for r in rows],
                fmt="o", label="simulation")
    a1.plot(*with_gaps(s2, [abs(r["a"]["theory"]) for r in rows],
                       [r["phase_theory"] != "unknown" for r in rows]), "-", label="EK theory")
    tr = report.transition if isinstance(report, Result) else report.get("transition", {})
    mark_transition(a1, tr.get("sigma2_gmfl1"), name="sigma2", label=r"GMFL-I onset $\sigma^2_c$")
    if tr.get("sigma2_gmfl2") is not None and math.isfinite(tr["sigma2_gmfl2"]):
        a1.axvline(tr["sigma2_gmfl2"], color="0.35", ls=":", lw=1.0, zorder=1,
                   label="GMFL-II onset")
    a1.set_xlabel(label("sigma2"))
    a1.set_ylabel(r"$|a|$ (residual fraction)")
    legend(a1)
    for i, r in enumerate(rows):
        h = r["phi_hist"]
        edges = np.asarray(h["log10_edges"], float)
        counts = np.asarray(h["counts"], float)
        dens = counts / max(counts.sum(), 1e-300) / np.diff(edges)
        a2.step(edges[:-1], dens, where="post", color=f"C{i % 10}",
                label=f"$\\sigma^2={r['sigma2']:g}$")
    if rows:
        a2.axvline(math.log10(rows[0]["phi_hist"]["phi_plus"]), color="k", ls="--", lw=0.8,
                   label=r"theory $\Phi_+$")
    a2.set_xlabel(r"$\log_{10}\Phi$, $\Phi=|w_k|^2$")
    a2.set_ylabel("density")
    legend(a2, fontsize=7)
    save(fig, path, report.params if isinstance(report, Result) else report.get("params"))
