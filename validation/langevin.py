r"""Full-batch Langevin sampling of two-layer erf networks (Rubin et al. 2023, Sec. 2.3).

Network :math:`f(x)=\sum_{i=1}^N a_i\,\mathrm{erf}(w_i\cdot x)`. The target law is the stated
posterior (theory notes Sec. 1.4):

.. math:: \log p(\theta\mid\mathcal D)=-\sum_i\frac{a_i^2}{2\sigma_a^2/N}
          -\sum_i\frac{|w_i|^2}{2\sigma_w^2/d}-\sum_\mu\frac{(f(x_\mu)-y_\mu)^2}{2\sigma^2}+\text{const},

i.e. noisy GD on :math:`L/\sigma^2` with per-layer weight decay :math:`N/\sigma_a^2` and
:math:`d/\sigma_w^2` at unit temperature. Discretisation (Euler-Maruyama, step :math:`\eta`):

.. math:: \theta\leftarrow\theta+\eta\,\nabla\log p(\theta)+\sqrt{2\eta}\,\xi,\qquad\xi\sim\mathcal N(0,I),

whose stationary law differs from the posterior by :math:`O(\eta)` (the tests show the bias
shrinking with :math:`\eta`). An ensemble of ``nets`` independent networks is advanced at once
(BLAS-bound batched matmuls), float64, from a seeded ``numpy.random.Generator``.

Long runs go through :class:`Checkpoint` (emcee-style backend: ``reset``, ``save_step``,
``get_last_state``, ``iteration``), written atomically; a run killed at any moment resumes from
its last checkpoint and ends bit-identical to an uninterrupted run with the same seed.
"""
import math
import os

import numpy as np
from scipy.special import erf

from kernelphase._checks import check_int, check_positive
from kernelphase.io import atomic_savez, load_npz

__all__ = ["ErfNetworkPosterior", "Checkpoint", "langevin_run"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


class ErfNetworkPosterior:
    """Posterior of an erf two-layer network; ``grad`` works on a stacked ensemble.

    Parameters: data ``X`` (n, d), ``y`` (n,), ``sigma2`` (noise / temperature),
    ``sigma_a2`` (summed readout variance), ``sigma_w2`` (read-in variance times d).
    """

    def __init__(self, X, y, sigma2, sigma_a2, sigma_w2, width):
        self.X = np.asarray(X, float)
        self.y = np.asarray(y, float)
        self.n, self.d = self.X.shape
        self.sigma2 = check_positive("sigma2", sigma2)
        self.var_a = check_positive("sigma_a2", sigma_a2) / check_int("width", width, 1)
        self.var_w = check_positive("sigma_w2", sigma_w2) / self.d
        self.N = width

    def forward(self, a, W, X=None):
        """Outputs of each network of the ensemble: a (m, N), W (m, N, d) -> (m, n)."""
        X = self.X if X is None else X
        return np.einsum("mn,mpn->mp", a, erf(np.einsum("pd,mnd->mpn", X, W)))

    def grad(self, a, W):
        """Gradient of log p for each network: returns (grad_a, grad_W)."""
        H = np.einsum("pd,mnd->mpn", self.X, W)
        phi = erf(H)
        r = (np.einsum("mn,mpn->mp", a, phi) - self.y) / self.sigma2  # (m, n)
        ga = -a / self.var_a - np.einsum("mp,mpn->mn", r, phi)
        dphi = _TWO_OVER_SQRT_PI * np.exp(-H * H)
        gW = -W / self.var_w - np.einsum("mpn,pd->mnd", r[:, :, None] * a[:, None, :] * dphi, self.X)
        return ga, gW

    def prior_sample(self, nets, rng):
        a = rng.standard_normal((nets, self.N)) * math.sqrt(self.var_a)
        W = rng.standard_normal((nets, self.N, self.d)) * math.sqrt(self.var_w)
        return a, W


class Checkpoint:
    """Atomic on-disk state of a run (after emcee's backends): parameters, RNG, accumulators."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def reset(self):
        if os.path.exists(self.path):
            os.unlink(self.path)

    @property
    def iteration(self):
        return int(self.get_last_state()["step"]) if os.path.exists(self.path) else 0

    def save_step(self, state):
        atomic_savez(self.path, **state)

    def get_last_state(self):
        return load_npz(self.path)


def langevin_run(post, nets, steps, lr, seed, burn_in=0, sample_every=10, observe=None,
                 checkpoint=None, checkpoint_every=1000, resume=False, progress=None, params=None):
    """Run ``steps`` Langevin steps of ``nets`` networks; return the final state and observations.

    ``observe(a, W)`` returns a dict of arrays; after ``burn_in`` their running sums over every
    ``sample_every``-th step are accumulated (key ``count`` holds the number of samples).
    With ``checkpoint`` (a path) the state is saved every ``checkpoint_every`` steps; with
    ``resume=True`` the run continues from it (parameters must match).
    """
    nets = check_int("nets", nets, 1)
    steps = check_int("steps", steps, 1)
    lr = check_positive("lr", lr)
    sample_every = check_int("sample_every", sample_every, 1)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
    # ``steps`` is not part of the identity of a run: a resumed run may be extended
    params = dict(params or {}, nets=nets, lr=lr, seed=seed, burn_in=burn_in,
                  sample_every=sample_every)
    rng = np.random.default_rng(seed)
    ck = Checkpoint(checkpoint) if checkpoint else None
    acc = {}
    if ck and resume and os.path.exists(ck.path):
        st = ck.get_last_state()
        if st["params"] != _jsonable(params):
            raise ValueError(f"checkpoint {ck.path!r} was made with other parameters; "
                             f"remove it or run without --resume")
        a, W, step = st["a"], st["W"], int(st["step"])
        rng.bit_generator.state = st["rng"]
        acc = {k[4:]: st[k] for k in st if k.startswith("acc_")}
    else:
        if ck:
            ck.reset()
        a, W = post.prior_sample(nets, rng)
        step = 0
    bar = None
    if progress is not False:
        from kernelphase.progress import progress as _pb
        bar = _pb(total=steps, desc="Langevin", enabled=progress)
        bar.update(step)
    noise = math.sqrt(2 * lr)
    while step < steps:
        ga, gW = post.grad(a, W)
        a = a + lr * ga + noise * rng.standard_normal(a.shape)
        W = W + lr * gW + noise * rng.standard_normal(W.shape)
        step += 1
        if observe is not None and step > burn_in and step % sample_every == 0:
            for k, v in observe(a, W).items():
                acc[k] = acc.get(k, 0) + np.asarray(v, float)
            acc["count"] = acc.get("count", 0) + 1.0
        if bar is not None:
            bar.update(1)
        if ck and (step % checkpoint_every == 0 or step == steps):
            ck.save_step(dict(a=a, W=W, step=step, rng=rng.bit_generator.state, params=params,
                              **{"acc_" + k: v for k, v in acc.items()}))
    if bar is not None:
        bar.close()
    return {"a": a, "W": W, "acc": acc, "step": step}


def _jsonable(obj):
    from kernelphase.results import jsonable
    import json
    return json.loads(json.dumps(jsonable(obj)))
