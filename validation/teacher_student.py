r"""Cubic teacher-student experiment of Rubin et al. (2023), Fig. 2 and App. D, against the theory.

Teacher :math:`y=\mathrm{He}_1(w^*\cdot x)+\epsilon\,\mathrm{He}_3(w^*\cdot x)`, :math:`x\sim\mathcal N(0,I_d)`,
:math:`w^*=e_1`. For each noise level an ensemble of networks is sampled by Langevin dynamics
(:mod:`kernelphase.validation.langevin`); the observables are

* the histogram of :math:`\Phi=w_i\cdot w^*` over all neurons, as :math:`-\log p(\Phi)`, against
  :math:`d\,\hat{\mathcal S}(\Phi)` of the theory (same normalisation: zero at :math:`\Phi=0`);
* :math:`b=\mathbb E[(y-\bar f)\mathrm{He}_1]` and :math:`c=\mathbb E[(y-\bar f)\mathrm{He}_3]/6` on fresh
  test points (:math:`\bar f` the ensemble mean), against ``cubic_phase``;
* train and test loss of the ensemble mean.

Presets move along the Table 1 family with two scales, :math:`\beta` (``scale``) and
:math:`\alpha` (``data_scale``): :math:`N\to\beta N`, :math:`d\to\sqrt\beta\,d`, :math:`n\to\alpha n`,
:math:`\sigma^2\to(\alpha/\beta)\sigma^2`, :math:`\sigma_a^2\to\sigma_a^2/\sqrt\beta`, which leaves
:math:`u=n^2\sigma_a^2/(\sigma^4dN)`, :math:`v=n\sigma_a^2/(\sigma^2d)` and hence the whole EK theory
invariant; the corrections to it are conjectured to scale as :math:`\sqrt\beta/\alpha`. Fig. 2 takes
:math:`\alpha=\beta`, so the corrections shrink as the scale grows (the trend it tests); App. D takes
:math:`\alpha=\sqrt\beta`, which keeps :math:`n/d=4` and :math:`\sqrt\beta/\alpha` at their full-scale
values: App. D is about that finite-data regime, and at :math:`\alpha=\beta` a reduced run would have
:math:`n/d=4\sqrt\beta` instead.
"""
import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from kernelphase._checks import check_choice, check_int, check_positive, check_range
from kernelphase.figures import label, legend, mark_transition, save, styled, subplots, with_gaps
from kernelphase.results import Result, status_message

__all__ = ["PRESETS", "scaled_preset", "cubic_data", "he13_fit", "trace_steps", "default_lr",
           "plan_cubic", "run_cubic", "CubicValidation", "GrokkingSummary", "report_rows",
           "plot_cubic_report", "learning_curves", "loss_drop_times", "grokking_summary",
           "plot_learning_curves", "exact_discrepancy", "series_statistics",
           "erf_population_moments", "plan_finite_theory", "finite_theory_cell",
           "run_finite_theory", "FiniteTheoryReport"]

#: upper bounds of the integer inputs (memory is checked separately by :func:`plan_cubic`)
MAX_NETS, MAX_STEPS, MAX_SEED, MAX_N_TEST = 10 ** 6, 10 ** 10, 2 ** 63 - 1 - 10 ** 6, 10 ** 8
#: ranges of scale / data_scale and of the noise levels the theory solvers handle
SCALE_RANGE, SIGMA2_RANGE = (1e-6, 1e3), (1e-12, 1e12)

PRESETS = {
    "fig2": dict(width=700, n=3000, d=150, sigma_w2=0.5, sigma_a2=8 / 700, eps=-0.3,
                 sigma2=(0.3, 0.25, 0.2, 0.15, 0.1), data_power=1.0),
    "appD": dict(width=(2800, 1400, 700), n=600, d=150, sigma_w2=0.5, sigma_a2=0.011, eps=-1.2,
                 sigma2=(0.05,), data_power=0.5),
    # the fig2 model at eps=-3, sigma_w^2=0.25, rho=N sigma_a^2/d=1: single-neuron barrier
    # d*DeltaS = 0.18 d at u_c (9.5 at scale 1/8, 13 at 1/4; fig2: 0.01 d), for hysteresis
    "hyst": dict(width=700, n=3000, d=150, sigma_w2=0.25, sigma_a2=150 / 700, eps=-3.0,
                 sigma2=(2.4, 2.7, 3.0, 3.1, 3.25, 3.4, 3.6, 4.0), data_power=1.0),
    # the same invariants with N/d six times larger (so sigma^2 six times smaller: sigma2_c =
    # 0.528, droplet spinodal 0.577): the GMFL-I droplets per network, N phi/d, are ~1 for
    # hyst (too few to hold a hot branch), 5 here at sigma^2 = 0.4
    "hyst-wide": dict(width=4200, n=3000, d=150, sigma_w2=0.25, sigma_a2=150 / 4200, eps=-3.0,
                      sigma2=(0.40, 0.45, 0.50, 0.54, 0.57, 0.62), data_power=1.0),
}


def scaled_preset(name, scale, data_scale=None):
    r"""Preset parameters moved along the Table 1 family: widths by :math:`\beta` = ``scale``, data
    by :math:`\alpha` = ``data_scale`` (default ``scale ** data_power`` of the preset).

    Examples
    --------
    At ``scale=0.25`` (fig2, ``data_power=1``): widths and n by 1/4, d by 1/2, and the noise
    levels by :math:`\alpha/\beta=1`:

    >>> p = scaled_preset("fig2", 0.25)
    >>> p["width"], p["n"], p["d"], p["sigma2"] == PRESETS["fig2"]["sigma2"]
    ((175,), 750, 75, True)
    >>> round(p["sigma_a2"] / PRESETS["fig2"]["sigma_a2"], 4)      # 1 / sqrt(scale)
    2.0
    """
    check_choice("preset", name, tuple(PRESETS))
    beta = check_positive("scale", scale)
    p = dict(PRESETS[name])
    power = p.pop("data_power")
    alpha = beta ** power if data_scale is None else check_positive("data_scale", data_scale)
    widths = p["width"] if isinstance(p["width"], tuple) else (p["width"],)
    p["width"] = tuple(max(1, round(w * beta)) for w in widths)
    p["d"] = max(2, round(p["d"] * math.sqrt(beta)))
    p["n"] = max(2, round(p["n"] * alpha))
    p["sigma_a2"] = p["sigma_a2"] / math.sqrt(beta)
    p["sigma2"] = tuple(s * alpha / beta for s in p["sigma2"])
    p["data_scale"] = alpha
    return p


def cubic_data(n, d, eps, seed):
    r"""Training inputs and targets of the cubic teacher (teacher direction e_1).

    Examples
    --------
    The targets are :math:`\mathrm{He}_1+\epsilon\,\mathrm{He}_3` of the first coordinate:

    >>> import numpy as np
    >>> X, y = cubic_data(5, 3, -0.3, seed=0)
    >>> z = X[:, 0]
    >>> X.shape, bool(np.allclose(y, z - 0.3 * (z ** 3 - 3 * z)))
    ((5, 3), True)
    >>> bool(np.array_equal(cubic_data(5, 3, -0.3, seed=0)[0], X))
    True
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    z = X[:, 0]
    return X, z + eps * (z ** 3 - 3 * z)


#: scalar series recorded per sample (:meth:`_CubicObserver.series`), in this order
SERIES = ("b", "c", "droplet_mass", "b_exact", "c_exact")
#: |Phi| above which a neuron counts as a droplet
DROPLET_PHI = 0.5


def exact_discrepancy(a, W, eps):
    r"""Population discrepancies :math:`(b, c)` of the erf network
    :math:`f=\sum_ia_i\,\mathrm{erf}(w_i\cdot x)` against the teacher
    :math:`\mathrm{He}_1+\epsilon\,\mathrm{He}_3` of direction :math:`e_1`, in closed form:
    no test-point error.

    By Stein's lemma :math:`\mathbb E[\sigma(w\cdot x)\mathrm{He}_k(x_1)]=w_1^k\,
    \mathbb E[\sigma^{(k)}(z)]`, :math:`z\sim\mathcal N(0,q)`, :math:`q=|w|^2`; for erf
    :math:`\mathbb E[\mathrm{erf}^{(1)}(z)]=\frac{2}{\sqrt\pi}(1+2q)^{-1/2}` and
    :math:`\mathbb E[\mathrm{erf}^{(3)}(z)]=-\frac{4}{\sqrt\pi}(1+2q)^{-3/2}`, so

    .. math:: b=1-\frac{2}{\sqrt\pi}\sum_i\frac{a_iw_{i1}}{\sqrt{1+2q_i}},\qquad
              c=\epsilon+\frac{4}{6\sqrt\pi}\sum_i\frac{a_iw_{i1}^3}{(1+2q_i)^{3/2}}

    (:math:`b=\mathbb E[(y-f)\mathrm{He}_1]`, :math:`c=\mathbb E[(y-f)\mathrm{He}_3]/6`, the
    definitions of :func:`run_cubic`; tested against test-point averages).

    Examples
    --------
    A network with zero read-out leaves the whole teacher: :math:`b=1`, :math:`c=\epsilon`.

    >>> import numpy as np
    >>> exact_discrepancy(np.zeros(3), np.ones((3, 4)), -0.3)
    (1.0, -0.3)

    One neuron, :math:`a=0.5`, :math:`w=(0.3, 0.4)`, :math:`q=0.25`, against the formulas above:

    >>> b, c = exact_discrepancy(np.array([0.5]), np.array([[0.3, 0.4]]), -0.3)
    >>> round(b, 4), round(1 - 2 / np.sqrt(np.pi) * 0.5 * 0.3 / np.sqrt(1.5), 4)
    (0.8618, 0.8618)
    >>> round(c, 4), round(-0.3 + 4 / (6 * np.sqrt(np.pi)) * 0.5 * 0.3 ** 3 / 1.5 ** 1.5, 4)
    (-0.2972, -0.2972)
    """
    g = erf_population_moments(W)
    return 1.0 - float(a @ g[:, 0]), eps - float(a @ g[:, 1]) / 6.0


def erf_population_moments(W):
    r"""Per neuron :math:`(\mathbb E_x[\mathrm{erf}(w\cdot x)\mathrm{He}_1(x_1)],
    \mathbb E_x[\mathrm{erf}(w\cdot x)\mathrm{He}_3(x_1)])
    =\big(\frac{2}{\sqrt\pi}\frac{w_1}{\sqrt{1+2q}},
    -\frac{4}{\sqrt\pi}\frac{w_1^3}{(1+2q)^{3/2}}\big)`, :math:`q=|w|^2`, :math:`x\sim
    \mathcal N(0,I)`, by Stein's lemma (:func:`exact_discrepancy`); an array (C, 2) for
    ``W`` (C, d).

    Examples
    --------
    >>> import numpy as np
    >>> g = erf_population_moments(np.array([[0.5, 0.0]]))
    >>> bool(np.isclose(g[0, 0], 2 / np.sqrt(np.pi) * 0.5 / np.sqrt(1.5)))
    True
    """
    W = np.asarray(W, float)
    s = 1.0 + 2.0 * np.einsum("ij,ij->i", W, W)
    w1 = W[:, 0]
    return np.stack([2.0 / math.sqrt(math.pi) * w1 / np.sqrt(s),
                     -4.0 / math.sqrt(math.pi) * w1 ** 3 / s ** 1.5], axis=1)


class _CubicObserver:
    """Per-sample observables of one network: Phi histogram, test and train outputs; and the
    scalar series b, c (of the current output on the test points) and droplet mass."""

    def __init__(self, post, Xt, bins, yt, eps):
        self.post, self.Xt, self.bins, self.yt, self.eps = post, Xt, bins, yt, eps
        self._last = (None, None, None)

    def _f_test(self, a, W):
        # observe and series run at the same step on the same arrays: one forward pass
        if self._last[0] is not a or self._last[1] is not W:
            self._last = (a, W, self.post.forward(a, W, self.Xt))
        return self._last[2]

    def __call__(self, a, W):
        return {"hist": np.histogram(W[:, 0], self.bins)[0],
                "f_test": self._f_test(a, W), "f_train": self.post.forward(a, W)}

    def series(self, a, W):
        z = self.Xt[:, 0]
        r = self.yt - self._f_test(a, W)
        return np.array([np.mean(r * z), np.mean(r * (z ** 3 - 3 * z)) / 6,
                         np.mean(np.abs(W[:, 0]) > DROPLET_PHI),
                         *exact_discrepancy(a, W, self.eps)])

    def __getstate__(self):
        return {**self.__dict__, "_last": (None, None, None)}


class _CubicTracer:
    """Snapshot of one network for its learning curve: outputs on the train and test points."""

    def __init__(self, post, Xt):
        self.post, self.Xt = post, Xt

    def __call__(self, a, W):
        return np.concatenate([self.post.forward(a, W), self.post.forward(a, W, self.Xt)])


def trace_steps(steps, points=60):
    """Log-spaced recording steps 0..steps for learning curves.

    Examples
    --------
    >>> trace_steps(1000, points=5)        # 0 and round(geomspace(1, 1000, 5))
    array([   0,    1,    6,   32,  178, 1000])
    """
    return np.unique(np.concatenate([[0], np.geomspace(1, steps, points).round()])).astype(int)


def default_lr(n, d, sigma2, sigma_w2, width, sigma_a2, readout="langevin"):
    r"""Step size: 0.1 over the largest likelihood curvature, :math:`n/\sigma^2` for the read-out
    (the priors are integrated exactly), and at most a tenth of the read-in prior variance
    :math:`\sigma_w^2/d`, the relaxation time of a single neuron (whose single-weight action
    :math:`d\,S(\Phi)` has curvature of order :math:`d/\sigma_w^2`). With ``readout="gibbs"``
    the read-out is not stepped and only the second bound applies.

    Examples
    --------
    :math:`\min(0.1\sigma^2/n,\ 0.1\sigma_w^2/d)`: here the read-out bound
    :math:`0.1\cdot0.2/60` is the smaller one; with Gibbs read-out :math:`0.1\cdot0.5/21`:

    >>> round(default_lr(60, 21, 0.2, 0.5, 14, 0.08), 6), round(0.1 * 0.2 / 60, 6)
    (0.000333, 0.000333)
    >>> round(default_lr(60, 21, 0.2, 0.5, 14, 0.08, readout="gibbs"), 6), round(0.05 / 21, 6)
    (0.002381, 0.002381)
    """
    if readout == "gibbs":
        return 0.1 * sigma_w2 / d
    return min(0.1 * sigma2 / n, 0.1 * sigma_w2 / d)


@dataclasses.dataclass(frozen=True, eq=False)
class CubicValidation(Result):
    """Report of :func:`run_cubic`: one row per (width, noise level), JSON-ready dicts.

    ``status`` is 0; 6 when a network diverged (its row says which; the statistics use the
    finite networks); 7 when a learning curve is too short for :func:`grokking_summary`.
    """
    preset: str
    scale: float
    transition: Mapping[str, Any]
    rows: list
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class GrokkingSummary(Result):
    """Late test-loss drop of one learning curve (:func:`grokking_summary`); times in Langevin
    time. ``status`` 7 ("run too short to measure") leaves ``t_test``, ``delay`` and the late
    drop NaN."""
    t_train: float
    t_test: float
    delay: float
    late_drop: float
    late_drop_fraction: float
    final_train_loss: float
    final_test_loss: float
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)



def _levels(sigma2, workers, p, scale, distinct=False):
    """Checked ``workers`` and the noise levels ``sigma2`` (given at full scale; None: the
    preset's) moved along the family of the scaled preset ``p``."""
    if workers is not None:
        from .ensemble import _MAX_WORKERS
        workers = check_int("workers", workers, 1, _MAX_WORKERS)
    if sigma2 is None:
        return p["sigma2"], workers
    sigma2 = (sigma2,) if np.ndim(sigma2) == 0 else tuple(sigma2)
    if not sigma2:
        raise ValueError("sigma2=() is empty; give at least one noise level")
    sigma2 = tuple(check_range("sigma2", s2, *SIGMA2_RANGE) for s2 in sigma2)
    if distinct and len(set(sigma2)) != len(sigma2):
        raise ValueError(f"sigma2={list(sigma2)} repeats a noise level")
    return tuple(s2 * p["data_scale"] / float(scale) for s2 in sigma2), workers

def plan_cubic(preset="fig2", scale=0.125, sigma2=None, nets=8, steps=4000, lr=None, seed=0,
               n_test=2000, width=None, curves=False, readout="langevin", data_scale=None,
               workers=None, scheduler=None, theory="ek", dtype="float64"):
    """Check every input of :func:`run_cubic` and resolve the run, before anything is allocated.

    Raises a one-line ``ValueError`` naming the parameter, its value and the valid range, or
    ``the run needs X GiB`` when the estimated memory (the n x N feature matrices of the
    networks that run at once, their data, and the results kept) is above
    :data:`~kernelphase.validation.ensemble.MEMORY_LIMIT`. Returns a dict with the scaled preset
    ``p``, ``sigma2s``, ``widths``, the checked inputs, ``key`` (every parameter that determines
    the result, for :class:`kernelphase.io.RunDir`) and ``memory_gib``.

    Examples
    --------
    >>> plan = plan_cubic(scale=0.02, sigma2=0.2, nets=1, steps=20, n_test=50)
    >>> plan["widths"], plan["sigma2s"], plan["p"]["n"], plan["p"]["d"]
    ((14,), (0.2,), 60, 21)
    >>> plan["memory_gib"] < 0.01
    True
    >>> plan_cubic(nets=0)
    Traceback (most recent call last):
    ...
    ValueError: nets=0 is outside the valid range [1, 1e+06]
    """
    from .ensemble import check_memory, concurrent_tasks
    from .langevin import DTYPES
    check_choice("readout", readout, ("langevin", "gibbs"))
    check_choice("theory", theory, ("ek", "finite"))
    check_choice("dtype", dtype, DTYPES)
    check_choice("preset", preset, tuple(PRESETS))
    check_range("scale", scale, *SCALE_RANGE)          # beyond: overflow in the theory
    if data_scale is not None:
        check_range("data_scale", data_scale, *SCALE_RANGE)
    p = scaled_preset(preset, scale, data_scale)
    nets = check_int("nets", nets, 1, MAX_NETS)
    steps = check_int("steps", steps, 10, MAX_STEPS)
    seed = check_int("seed", seed, 0, MAX_SEED)
    n_test = check_int("n_test", n_test, 1, MAX_N_TEST)
    if lr is not None:
        lr = check_positive("lr", lr)
    sigma2s, workers = _levels(sigma2, workers, p, scale)
    if width is None:
        widths = p["width"]
    else:
        widths = tuple(width) if np.ndim(width) else (width,)
        if not widths:
            raise ValueError("width=() is empty; give at least one width")
        widths = tuple(check_int("width", w, 1, 10 ** 12) for w in widths)
    for s2 in sigma2s:
        check_range("sigma2 (scaled)", s2, 0.0, math.inf, lo_open=True)
    n, d = p["n"], p["d"]
    n_tasks = nets * len(widths) * len(sigma2s)
    at_once = concurrent_tasks(n_tasks, workers, scheduler)
    N = max(widths)
    per_net = 4 * n * N + 2 * n_test * N + min(n, N) ** 2 + (n // 192 + 1) * N * d \
        + (n + n_test) * d
    kept = n_tasks * (N * d + N + n + n_test + 64 + (61 * (n + n_test) if curves else 0))
    nbytes = 8 * (at_once * per_net + kept + 2 * (n + n_test) * d)
    check_memory(nbytes, f"{at_once} network(s) at a time with n x N = {n} x {N} features, "
                         f"{n_test} test points, {n_tasks} results kept")
    if theory == "finite" and len(widths) != 1:
        raise ValueError(f"theory='finite' takes one width; got widths={list(widths)}")
    key = {"preset": preset, "scale": float(scale), "data_scale": p["data_scale"],
           "sigma2": list(sigma2s), "widths": list(widths), "n": n, "d": d, "nets": nets,
           "steps": steps, "lr": lr, "readout": readout, "seed": seed, "n_test": n_test,
           "curves": bool(curves)}
    if theory == "finite":
        key["theory_finite"] = dict(FINITE_DEFAULTS)
    if dtype != "float64":          # float64 runs keep the keys (and checkpoints) they had
        key["dtype"] = dtype
    return {"p": p, "sigma2s": sigma2s, "widths": widths, "nets": nets, "steps": steps,
            "lr": lr, "seed": seed, "n_test": n_test, "readout": readout, "curves": bool(curves),
            "workers": workers, "key": key, "memory_gib": nbytes / 2 ** 30, "preset": preset,
            "scale": float(scale), "theory": theory}


def run_cubic(preset="fig2", scale=0.125, sigma2=None, nets=8, steps=4000, lr=None, seed=0,
              n_test=2000, run_dir=None, progress=None, width=None, scheduler=None, workers=None,
              curves=False, readout="langevin", data_scale=None, theory="ek", dtype="float64"):
    r"""Sample each (width, noise level) and compare with the theory.

    Every network is one task of :func:`~kernelphase.validation.ensemble.run_ensemble` (local
    cores by default, a Dask cluster with ``scheduler``); with ``curves=True`` each network also
    records its outputs at log-spaced steps, from which :func:`learning_curves` builds the train
    and test losses of each network and of the ensemble-mean output. ``readout="gibbs"`` draws
    the read-out from its exact conditional every step (see :mod:`.langevin`). ``sigma2`` is
    given at full scale and moved along the family like the preset's (by ``data_scale / scale``).
    With ``theory="finite"`` every row's observables also get ``theory_finite`` and
    ``theory_finite_se``: the finite-data theory on the same training and test sets
    (:func:`finite_theory_cell`, budget :data:`FINITE_DEFAULTS`; one width only).
    ``dtype="float32"``: the Langevin step's gradient in single precision
    (:class:`~kernelphase.validation.langevin.NetworkPosterior`).
    Inputs are checked by :func:`plan_cubic` first. ``run_dir``: an open
    :class:`kernelphase.io.RunDir` (key from :func:`plan_cubic`) that receives one state file per
    network, ``checkpoints/N{N}_s{sigma2}_net{k}.npz``, and resumes from them.

    Returns
    -------
    CubicValidation
        ``preset``, ``scale``, ``params``, ``transition`` and ``rows`` (JSON-ready dicts).

    Examples
    --------
    One network of width 14 (fig2 at scale 0.02: n = 60, d = 21) for 20 steps, far too short
    to compare with the theory; the step is :func:`default_lr`, :math:`0.1\sigma^2/n`:

    >>> r = run_cubic(scale=0.02, sigma2=0.2, nets=1, steps=20, n_test=50, workers=1,
    ...               progress=False)
    >>> r.status, len(r.rows), r.rows[0]["width"], r.rows[0]["sigma2"]
    (0, 1, 14, 0.2)
    >>> round(r.rows[0]["lr"], 6), round(0.1 * 0.2 / 60, 6)
    (0.000333, 0.000333)
    >>> sorted(r.rows[0]["b"])[:4]
    ['ess', 'rel_diff', 'se_spread', 'se_test']
    """
    from kernelphase.solvers.cubic import action, cubic_phase, cubic_transition
    from .ensemble import report_status, run_ensemble
    from .langevin import ErfNetworkPosterior
    plan = plan_cubic(preset, scale, sigma2, nets, steps, lr, seed, n_test, width, curves,
                      readout, data_scale, workers, scheduler, theory, dtype)
    p, sigma2s, widths = plan["p"], plan["sigma2s"], plan["widths"]
    d, n, eps, sw2, sa2 = p["d"], p["n"], p["eps"], p["sigma_w2"], p["sigma_a2"]
    X, y = cubic_data(n, d, eps, seed)
    Xt, yt = cubic_data(n_test, d, eps, seed + 10 ** 6)
    bins = np.linspace(-1.6, 1.6, 65)
    rec = trace_steps(steps) if curves else None
    cells, tasks = [], []
    for N in widths:
        for s2 in sigma2s:
            post = ErfNetworkPosterior(X, y, s2, sa2, sw2, N, readout=readout, dtype=dtype)
            step = lr or default_lr(n, d, s2, sw2, N, sa2, readout)
            cells.append((N, s2, step, len(tasks)))
            for k in range(nets):
                tasks.append(dict(
                    post=post, steps=steps, lr=step, seed=seed, key=(N, round(1e6 * s2), k),
                    burn_in=steps // 2, sample_every=max(1, steps // 200),
                    observe=(obs := _CubicObserver(post, Xt, bins, yt, eps)),
                    series=obs.series,
                    trace=(rec, _CubicTracer(post, Xt)) if curves else None,
                    checkpoint=((run_dir, f"checkpoints/N{N}_s{s2:g}_net{k}.npz")
                                if run_dir is not None else None),
                    checkpoint_every=max(1, steps // 20),
                    params={"preset": preset, "sigma2": s2, "width": N}))
    results = run_ensemble(tasks, scheduler=scheduler, workers=workers, progress=progress)
    rows = []
    for N, s2, step, i0 in cells:
        res = results[i0:i0 + nets]
        rows.append(_cubic_row(res, N, s2, step, n, d, eps, sw2, sa2, y, Xt, yt, bins, action,
                               cubic_phase, rec))
    if theory == "finite":
        _add_finite_theory(rows, plan, run_dir, scheduler, workers)
    tr = cubic_transition(eps, sw2, n=n, d=d, width=widths[-1], sigma_a2=sa2)
    status, detail = report_status(rows)
    return CubicValidation(
        preset=preset, scale=float(scale),
        transition={"u_c": tr.u_c, "sigma2_c_last_width": tr.sigma2_c}, rows=rows,
        status=status, message=status_message(status, detail),
        params={**p, "width": widths, "sigma2": sigma2s, "nets": nets, "steps": steps,
                "seed": seed, "n_test": n_test, "readout": readout})


def _cubic_row(res, N, s2, step, n, d, eps, sw2, sa2, y, Xt, yt, bins, action, cubic_phase, rec):
    from .ensemble import ensemble_means, network_status
    """Ensemble statistics of one (width, sigma^2) cell against the theory, over its finite
    networks (a diverged network gives the row status 6 and is left out)."""
    ok, state = network_status(res)
    th = cubic_phase(eps, s2, n, d, N, sa2, sw2)
    if not ok:
        return {"width": N, "sigma2": s2, "u": th.u, "phase_theory": th.phase, "lr": step,
                **state}
    res = [res[i] for i in ok]
    cnt, f_nets, f_train, hist = ensemble_means(res)
    zt = Xt[:, 0]
    He1, He3 = zt, zt ** 3 - 3 * zt
    resid = yt - f_nets.mean(0)
    n_test = len(yt)
    se_test = {"b": float(np.std(resid * He1) / math.sqrt(n_test)),
               "c": float(np.std(resid * He3) / 6 / math.sqrt(n_test)), "droplet_mass": 0.0}
    stats, ac = series_statistics(res, se_test, step)
    b_sim, c_sim = stats["b"]["mean"], stats["c"]["mean"]
    b_se, c_se = stats["b"]["std_error"], stats["c"]["std_error"]
    lc = dict(stats["c"], mean=1 - c_sim / eps, std_error=c_se / abs(eps))
    for k in ("se_time", "se_spread", "se_test"):
        lc[k] = stats["c"][k] / abs(eps)
    dens = hist / hist.sum() / np.diff(bins)
    centres = 0.5 * (bins[1:] + bins[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):     # empty bins: +inf (or NaN)
        mlogp = -np.log(dens)
        mlogp = mlogp - mlogp[np.argmin(np.abs(centres))]
    row = {
        "width": N, "sigma2": s2, "u": th.u, "phase_theory": th.phase,
        "b": _obs(th.b, b_sim, b_se, stats["b"]), "c": _obs(th.c, c_sim, c_se, stats["c"]),
        "learned_cubic": _obs(th.learned_cubic, 1 - c_sim / eps, c_se / abs(eps), lc),
        "droplet_mass": _obs(th.droplet_fraction, stats["droplet_mass"]["mean"],
                             stats["droplet_mass"]["std_error"], stats["droplet_mass"]),
        "b_exact": _obs(th.b, stats["b_exact"]["mean"], stats["b_exact"]["std_error"],
                        stats["b_exact"]),
        "c_exact": _obs(th.c, stats["c_exact"]["mean"], stats["c_exact"]["std_error"],
                        stats["c_exact"]),
        "autocorr": ac,
        "train_loss": float(np.mean((f_train - y) ** 2)),
        "test_loss": float(np.mean(resid ** 2)),
        "phi_hist": {"centres": centres, "minus_log_p": mlogp,
                     "theory": list(d * action(np.abs(centres), th.u, th.b, th.c, sw2)[0])},
        "droplet_mass_sim": float(hist[np.abs(centres) > 0.5].sum() / hist.sum()),
        "lr": step, "samples": float(cnt.min()), **state,
    }
    if rec is not None and all(len(r.trace) == len(rec) for r in res):
        row["curves"] = learning_curves(np.array([r.trace for r in res]), y, yt, Xt[:, 0], eps)
        row["curves"].update(steps=rec, time=rec * step)
        row["grokking"] = grokking_summary(row)
    return row


#: observables of a cubic row that get the finite-data theory (row key -> cell key)
_FINITE_OBS = ("b", "c", "b_exact", "c_exact", "learned_cubic", "droplet_mass")


def _add_finite_theory(rows, plan, run_dir, scheduler, workers):
    """Put ``theory_finite`` and ``theory_finite_se`` beside ``theory`` in every observable of
    the rows, from :func:`finite_theory_cell` on the run's own data (checkpointed per noise
    level as ``checkpoints/finite_s{sigma2}.npz``); ``row["finite_theory"]`` keeps the solver's
    status, train and test loss."""
    fd = FINITE_DEFAULTS
    kw = dict(preset=plan["preset"], scale=plan["scale"], data_scale=plan["p"]["data_scale"],
              data_seed=plan["seed"], law=fd["law"], chains=fd["chains"], steps=fd["steps"],
              mc_seed=fd["mc_seed"], n_test=plan["n_test"], tol=fd["tol"],
              maxiter=fd["maxiter"])
    cells = _finite_rows(plan["sigma2s"], kw, run_dir, scheduler, workers, "finite")
    for row, cell in zip(rows, cells):
        for name in _FINITE_OBS:
            if name in row:
                row[name]["theory_finite"] = cell[name]["value"]
                row[name]["theory_finite_se"] = cell[name]["se"]
        row["finite_theory"] = {k: cell[k] for k in ("status", "message", "iterations",
                                                     "residual", "train_loss", "test_loss",
                                                     "seconds")}


def report_rows(report):
    """The rows of a report: a :class:`CubicValidation` (or modular report) or its dict.

    Examples
    --------
    >>> report_rows({"rows": [{"sigma2": 0.2}]})
    [{'sigma2': 0.2}]
    >>> report_rows(CubicValidation(preset="fig2", scale=1.0, transition={}, rows=[1, 2]))
    [1, 2]
    """
    return report.rows if isinstance(report, Result) else report["rows"]


def _obs(theory, mean, se, stats=None):
    z = (mean - theory) / se if se > 0 else float("nan")
    rel = (mean - theory) / abs(theory) if theory else float("nan")
    out = {"theory": theory, "sim_mean": mean, "std_error": se, "z_score": z, "rel_diff": rel}
    if stats is not None:
        out.update({k: stats[k] for k in ("tau_steps", "tau_time", "ess", "se_time",
                                          "se_spread", "se_test", "spread_ratio")})
    return out


def series_statistics(res, se_test, lr, names=SERIES):
    r"""Per-observable time averages with trusted errors from the networks' scalar series.

    ``res``: finite :class:`~.langevin.LangevinState` results of one cell, each with ``series``
    (columns ``names``) sampled every ``params["sample_every"]`` steps. The burn-in is chosen
    from the autocorrelation times (:func:`.autocorr.choose_burn_in`): at least the run's own
    (``params["burn_in"]``, over which the histogram and losses are accumulated) and at least
    5 tau of the slowest observable. Each observable gets :func:`.autocorr.ensemble_summary`
    with the test-point error ``se_test[name]``, and tau in steps and in Langevin time
    (``lr`` the step). Returns ``(stats, autocorr)``: a dict per observable, and the burn-in
    report (``burn_in_steps``, ``burn_in_tau`` = burn-in over the largest tau, ``enough``,
    ``tau_max_steps``, ``samples_used``, ``note``).

    Examples
    --------
    Four "networks" whose series are independent normal draws of mean 2: the mean is found
    within its error and the autocorrelation time is about one sample.

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> rng = np.random.default_rng(0)
    >>> res = [SimpleNamespace(series=2.0 + rng.standard_normal((2000, 1)),
    ...                        params={"sample_every": 1, "burn_in": 0}) for _ in range(4)]
    >>> stats, ac = series_statistics(res, {}, 0.01, names=("x",))
    >>> abs(stats["x"]["mean"] - 2.0) < 3 * stats["x"]["std_error"], round(stats["x"]["tau"])
    (True, 1)
    >>> ac["enough"], ac["samples_used"] > 1900
    (True, True)
    """
    from .autocorr import choose_burn_in, ensemble_summary
    every = int(res[0].params["sample_every"])
    floor = int(res[0].params["burn_in"]) // every
    ser = np.array([r.series[:, :len(names)] for r in res])
    burn, tau_max, enough = choose_burn_in(ser, floor=floor)
    stats = {}
    for j, name in enumerate(names):
        s = ensemble_summary(ser[:, :, j], burn, se_test.get(name, 0.0))
        s.update(tau_steps=s["tau"] * every, tau_time=s["tau"] * every * lr)
        stats[name] = s
    ac = {"burn_in_steps": burn * every, "burn_in_tau": burn / tau_max,
          "tau_max_steps": tau_max * every, "sample_every": every,
          "samples_used": int(ser.shape[1] - burn), "enough": bool(enough),
          "note": ("burn-in >= 5 tau of every observable" if enough else
                   f"5 tau = {5 * tau_max * every:.3g} steps is more than 3/4 of the run: the "
                   f"burn-in is capped there, {burn / tau_max:.2g} tau; run longer")}
    return stats, ac


#: Monte Carlo budget of the finite-data theory (solvers.finite_kernel) per noise level
FINITE_DEFAULTS = dict(law="fluctuating", chains=512, steps=100, tol=0.02, maxiter=12, mc_seed=0)


@dataclasses.dataclass(frozen=True, eq=False)
class FiniteTheoryReport(Result):
    """Report of :func:`run_finite_theory`: one row per noise level (JSON-ready dicts, see
    :func:`finite_theory_cell`). ``status`` is 0, or the first non-zero status of a row."""
    preset: str
    scale: float
    rows: list
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def plan_finite_theory(preset="fig2", scale=0.125, sigma2=None, data_seed=0, law="fluctuating",
                       chains=512, steps=100, mc_seed=0, n_test=2000, tol=0.02, maxiter=12,
                       data_scale=None, workers=None):
    """Check every input of :func:`run_finite_theory` before anything runs; returns the scaled
    preset ``p``, the scaled noise levels ``sigma2s``, the checked inputs (``kw``, for
    :func:`finite_theory_cell`) and ``key`` (for :class:`kernelphase.io.RunDir`).

    Examples
    --------
    >>> plan = plan_finite_theory(scale=0.02, sigma2=0.2, chains=16, steps=10, n_test=50)
    >>> plan["sigma2s"], plan["key"]["n"], plan["key"]["d"], plan["key"]["width"]
    ((0.2,), 60, 21, 14)
    >>> plan_finite_theory(chains=8)
    Traceback (most recent call last):
    ...
    ValueError: chains=8 is outside the valid range [16, 1e+06]
    """
    from kernelphase.solvers.finite_kernel import LAWS, _check_memory
    check_choice("preset", preset, tuple(PRESETS))
    check_choice("law", law, LAWS)
    check_range("scale", scale, *SCALE_RANGE)
    if data_scale is not None:
        check_range("data_scale", data_scale, *SCALE_RANGE)
    p = scaled_preset(preset, scale, data_scale)
    if len(p["width"]) != 1:
        raise ValueError(f"preset={preset!r} has several widths; the finite-data theory "
                         f"takes one (use preset='fig2')")
    data_seed = check_int("data_seed", data_seed, 0, MAX_SEED)
    chains = check_int("chains", chains, 16, 10 ** 6)
    steps = check_int("steps", steps, 10, 10 ** 6)
    mc_seed = check_int("mc_seed", mc_seed, 0, 2 ** 63 - 1)
    n_test = check_int("n_test", n_test, 1, 10 ** 6)
    tol = check_range("tol", tol, 0, 1, lo_open=True)
    maxiter = check_int("maxiter", maxiter, 1, 1000)
    sigma2s, workers = _levels(sigma2, workers, p, scale, distinct=True)
    for s2 in sigma2s:                          # the range of finite_data_kernel
        check_range("sigma2 (scaled)", s2, 0.0, 1e6, lo_open=True)
    _check_memory(chains, p["n"], n_test, 8, max(1, steps // 10))
    kw = dict(preset=preset, scale=float(scale), data_scale=p["data_scale"],
              data_seed=data_seed, law=law, chains=chains, steps=steps,
              mc_seed=mc_seed, n_test=n_test, tol=tol, maxiter=maxiter)
    key = {**kw, "sigma2": list(sigma2s), "n": p["n"], "d": p["d"], "width": p["width"][0]}
    return {"p": p, "sigma2s": sigma2s, "kw": kw, "key": key, "workers": workers}


def finite_theory_cell(sigma2, preset, scale, data_scale, data_seed, law, chains, steps,
                       mc_seed, n_test, tol, maxiter, X=None, y=None, basin="all"):
    r"""Finite-data adaptive-kernel theory (:func:`kernelphase.solvers.finite_kernel.
    finite_data_kernel`) of one noise level ``sigma2`` (already scaled) on the training set of
    ``cubic_data(n, d, eps, data_seed)`` and the test set of seed ``data_seed + 10**6`` (those
    of :func:`run_cubic` with ``seed=data_seed``). ``basin="gfl"`` confines the neuron law to
    :math:`|\Phi|\le` :data:`DROPLET_PHI` (the metastable GFL branch, no droplets).

    Returns a JSON-ready dict: ``b``, ``c`` (test points), ``b_train``, ``c_train`` (the
    predicted training residual :math:`y-f` fitted on He1, He3, :func:`he13_fit`: the tilt a
    lone neuron feels), ``b_exact``, ``c_exact`` (population,
    :math:`b=1-\sigma_a^2\langle g_1(w)\,\phi(Xw)\cdot\bar t\rangle` with :math:`g` of
    :func:`erf_population_moments`; :math:`c=\epsilon-\dots g_3/6`), ``learned_cubic``
    (:math:`1-c/\epsilon`, population), ``train_loss``, ``test_loss``, ``droplet_mass``
    (weight of :math:`|\Phi|>0.5`), each ``{"value", "se"}`` (Monte Carlo jackknife errors);
    ``phi_hist`` (``edges``, ``density``, ``se``), the EK values ``ek`` and the solver's
    ``status``, ``message``, ``iterations``, ``residual``, ``seconds``.

    Examples
    --------
    A tiny Monte Carlo budget on the fig2 preset at scale 0.02 (n = 60, d = 21, N = 14);
    ``learned_cubic`` is :math:`1-c/\epsilon` of the population ``c_exact``:

    >>> c = finite_theory_cell(0.2, "fig2", 0.02, None, 0, "fluctuating", chains=16, steps=10,
    ...                        mc_seed=0, n_test=50, tol=0.5, maxiter=2)
    >>> c["n"], c["d"], c["width"], c["sigma2"], c["status"] in (0, 2)
    (60, 21, 14, 0.2, True)
    >>> bool(np.isclose(c["learned_cubic"]["value"], 1 - c["c_exact"]["value"] / -0.3))
    True
    """
    import time
    from kernelphase.solvers.cubic import cubic_phase
    from kernelphase.solvers.finite_kernel import finite_data_kernel
    p = scaled_preset(preset, scale, data_scale)
    n, d, N, sa2, eps, sw2 = p["n"], p["d"], p["width"][0], p["sigma_a2"], p["eps"], \
        p["sigma_w2"]
    if X is None:
        X, y = cubic_data(n, d, eps, data_seed)
    Xt, yt = cubic_data(n_test, d, eps, data_seed + 10 ** 6)
    edges = np.linspace(-1.6, 1.6, 65)
    t0 = time.time()
    r = finite_data_kernel(X, y, N, sigma2, sa2, sw2, law=law, chains=chains,
                           steps=steps, Xtest=Xt, ytest=yt, seed=mc_seed, tol=tol,
                           maxiter=maxiter, moments=erf_population_moments, hist_edges=edges,
                           confine=None if check_choice("basin", basin, ("all", "gfl")) == "all"
                           else (np.eye(d)[0], DROPLET_PHI))
    th = cubic_phase(eps, sigma2, n, d, N, sa2, sw2)
    b_pop, c_pop = 1.0 - r.population[0], eps - r.population[1] / 6.0
    b_train, c_train, _ = he13_fit(X[:, 0], y - r.f_train)
    centre = 0.5 * (edges[1:] + edges[:-1])
    far = np.abs(centre) > DROPLET_PHI
    dens, dse = r.phi_hist[1], r.phi_hist_se
    width = np.diff(edges)

    def v(value, se):
        return {"value": float(value), "se": float(se)}
    return {
        "sigma2": float(sigma2), "width": N, "n": n, "d": d,
        "b": v(r.b, r.b_se), "c": v(r.c, r.c_se),
        "b_exact": v(b_pop, r.population_se[0]), "c_exact": v(c_pop, r.population_se[1] / 6),
        "b_train": float(b_train), "c_train": float(c_train),
        "learned_cubic": v(1 - c_pop / eps, r.population_se[1] / 6 / abs(eps)),
        "train_loss": v(r.train_loss, r.train_loss_se),
        "test_loss": v(r.test_loss, r.test_loss_se),
        # upper bound of the error: bins treated as fully correlated
        "droplet_mass": v(np.sum((dens * width)[far]), np.sum((dse * width)[far])),
        "phi_hist": {"edges": list(edges), "density": list(dens), "se": list(dse)},
        "ek": {"b": th.b, "c": th.c, "learned_cubic": th.learned_cubic, "phase": th.phase},
        "status": int(r.status), "message": r.message, "iterations": int(r.iterations),
        "residual": float(r.residual), "acceptance": float(r.acceptance),
        "seconds": time.time() - t0,
    }


def he13_fit(z, r):
    r"""Least squares of a residual on the teacher's two modes over the sample,
    :math:`\min_{b,c}\sum_\mu(r_\mu-b\,\mathrm{He}_1(z_\mu)-c\,\mathrm{He}_3(z_\mu))^2`
    (:math:`z=x_1`). Returns ``(b, c, rms)``, ``rms`` the root mean square of the rest.

    Examples
    --------
    >>> z = np.random.default_rng(0).standard_normal(100)
    >>> b, c, rms = he13_fit(z, 0.5 * z - 2 * (z ** 3 - 3 * z))
    >>> round(b, 12), round(c, 12), rms < 1e-12
    (0.5, -2.0, True)
    """
    A = np.stack([z, z ** 3 - 3 * z], axis=1)
    coef, *_ = np.linalg.lstsq(A, r, rcond=None)
    return float(coef[0]), float(coef[1]), float(np.sqrt(np.mean((r - A @ coef) ** 2)))


def _finite_task(kw):
    return finite_theory_cell(**kw)


def _map_tasks(fn, kws, scheduler=None, workers=None):
    """``[fn(kw) for kw in kws]`` on local worker processes (default one per core, each with its
    share of the cores), or on a Dask scheduler (an address or a client); ``fn`` must be a
    module-level function. Results in input order."""
    from .ensemble import _init_worker, connect, local_cores
    kws = list(kws)
    if scheduler is not None:
        client = connect(scheduler) if isinstance(scheduler, str) else scheduler
        try:
            return client.gather(client.map(fn, kws, pure=False))
        finally:
            if isinstance(scheduler, str):
                client.close()
    cores = local_cores()
    workers = min(len(kws), cores if workers is None else int(workers))
    if workers <= 1:
        return [fn(kw) for kw in kws]
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(max(1, cores // workers), os.getpid())) as pool:
        return list(pool.map(fn, kws))


def _finite_rows(sigma2s, kw, run_dir, scheduler, workers, name):
    """Rows of :func:`finite_theory_cell` per noise level, from ``run_dir`` checkpoints when
    resuming; each new row is saved as ``checkpoints/{name}_s{sigma2}.npz``."""
    rows, todo = {}, []
    for s2 in sigma2s:
        state = run_dir.load(f"checkpoints/{name}_s{s2:g}.npz") if run_dir is not None else None
        if state is not None:
            rows[s2] = state["row"]
        else:
            todo.append(s2)
    for s2, row in zip(todo, _map_tasks(_finite_task, [dict(kw, sigma2=s2) for s2 in todo],
                                       scheduler, workers)):
        rows[s2] = row
        if run_dir is not None:
            run_dir.save(f"checkpoints/{name}_s{s2:g}.npz", row=row)
    return [rows[s2] for s2 in sigma2s]


def run_finite_theory(preset="fig2", scale=0.125, sigma2=None, data_seed=0, law="fluctuating",
                      chains=512, steps=100, mc_seed=0, n_test=2000, tol=0.02, maxiter=12,
                      data_scale=None, run_dir=None, scheduler=None, workers=None):
    """Finite-data theory at each noise level of the scaled preset (:func:`finite_theory_cell`),
    on the training set of data seed ``data_seed``; noise levels run on local processes or
    ``scheduler``; ``run_dir`` (a :class:`kernelphase.io.RunDir`) keeps one checkpoint per
    noise level and resumes from them.

    Returns
    -------
    FiniteTheoryReport

    Examples
    --------
    >>> r = run_finite_theory(scale=0.02, sigma2=0.2, chains=16, steps=10, n_test=50, tol=0.5,
    ...                       maxiter=2, workers=1)
    >>> len(r.rows), r.rows[0]["sigma2"], r.rows[0]["width"], r.status in (0, 2)
    (1, 0.2, 14, True)
    """
    plan = plan_finite_theory(preset, scale, sigma2, data_seed, law, chains, steps, mc_seed,
                              n_test, tol, maxiter, data_scale, workers)
    rows = _finite_rows(plan["sigma2s"], plan["kw"], run_dir, scheduler, plan["workers"],
                        "finite")
    bad = [r for r in rows if r["status"]]
    status = bad[0]["status"] if bad else 0
    detail = (f"{len(bad)} of {len(rows)} noise levels; first: {bad[0]['message']}"
              if bad else None)
    return FiniteTheoryReport(preset=preset, scale=float(scale), rows=rows, status=status,
                              message=status_message(status, detail),
                              params={**plan["key"], "sigma_a2": plan["p"]["sigma_a2"]})


@styled
def plot_cubic_report(report, path):
    """-log p(Phi) of the simulation (points) and d*S(Phi) of the theory (lines); b against
    sigma^2 per width, simulation with standard errors and theory (gaps where the theory did
    not converge), with the theory's first-order sigma^2_c.

    Examples
    --------
    >>> import os
    >>> r = run_cubic(scale=0.02, sigma2=(0.2, 0.3), nets=1, steps=20, n_test=50, workers=1,
    ...               progress=False)
    >>> plot_cubic_report(r, "cubic.png")
    >>> os.path.isfile("cubic.png")
    True
    """
    rows = [r for r in report_rows(report) if "b" in r]      # rows of diverged cells have none
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 3.8))
    widths = sorted({r["width"] for r in rows})
    for i, r in enumerate(rows):
        h = r["phi_hist"]
        col = f"C{i % 10}"
        a1.plot(h["centres"], h["minus_log_p"], "x", color=col, ms=4,
                label=(f"$N={r['width']}$, " if len(widths) > 1 else "")
                + f"$\\sigma^2={r['sigma2']:g}$")
        a1.plot(h["centres"], h["theory"], "-", color=col, lw=1)
    a1.set_ylim(-1, 12)
    a1.set_xlabel(label("phi"))
    a1.set_ylabel(r"$-\log p(\Phi)$ (x: simulation, line: $d\hat S$)")
    legend(a1, {"width": widths[0]} if len(widths) == 1 else None, fontsize=7, ncols=2)
    for j, N in enumerate(widths):
        rs = sorted((r for r in rows if r["width"] == N), key=lambda r: r["sigma2"])
        s2 = [r["sigma2"] for r in rs]
        a2.errorbar(s2, [r["b"]["sim_mean"] for r in rs], [r["b"]["std_error"] for r in rs],
                    fmt="o", color=f"C{j}", label=f"simulation, $N={N}$")
        a2.plot(*with_gaps(s2, [r["b"]["theory"] for r in rs],
                           [r["phase_theory"] != "unknown" for r in rs]),
                "-", color=f"C{j}", lw=1, label=f"EK theory, $N={N}$")
        if rs and "theory_finite" in rs[0]["b"]:
            a2.errorbar(s2, [r["b"]["theory_finite"] for r in rs],
                        [r["b"]["theory_finite_se"] for r in rs], fmt="d--", color=f"C{j}",
                        lw=1, label=f"finite-data theory, $N={N}$")
    tr = report.transition if isinstance(report, Result) else report.get("transition", {})
    mark_transition(a2, tr.get("sigma2_c_last_width"), name="sigma2")
    a2.set_xlabel(label("sigma2"))
    a2.set_ylabel(label("b"))
    legend(a2)
    save(fig, path, report.params if isinstance(report, Result) else report.get("params"))


def learning_curves(outputs, y, yt, zt, eps):
    r"""Losses over training from recorded outputs (nets, times, n + n_test).

    Per network (``train_loss``, ``test_loss``: the grey lines of Fig. 5) and for the
    ensemble-mean output :math:`\bar f` (``ensemble_train_loss``, ``ensemble_test_loss``), with the
    learned fractions :math:`\langle\bar f H_1\rangle` and :math:`\langle\bar f H_3\rangle/6\epsilon`
    on the test points (Fig. 6; 1 = fully learned).

    Examples
    --------
    Two networks that output 0 on the training points and the teacher on the test points:
    the train loss is the mean of :math:`y^2`, the test loss 0, and both parts are learned
    (to the sampling error of the test points):

    >>> import numpy as np
    >>> zt = np.random.default_rng(0).standard_normal(20000)
    >>> yt = zt - 0.3 * (zt ** 3 - 3 * zt)
    >>> y = np.array([1.0, -1.0])
    >>> out = np.tile(np.concatenate([np.zeros(2), yt]), (2, 1, 1))     # (nets, times, n + m)
    >>> lc = learning_curves(out, y, yt, zt, -0.3)
    >>> lc["train_loss"].shape, lc["ensemble_train_loss"], lc["ensemble_test_loss"]
    ((2, 1), array([1.]), array([0.]))
    >>> bool(abs(lc["linear_learned"][0] - 1) < 0.05), bool(abs(lc["cubic_learned"][0] - 1) < 0.1)
    (True, True)
    """
    n = len(y)
    f_tr, f_te = outputs[:, :, :n], outputs[:, :, n:]
    m_tr, m_te = f_tr.mean(0), f_te.mean(0)
    return {"train_loss": ((f_tr - y) ** 2).mean(-1), "test_loss": ((f_te - yt) ** 2).mean(-1),
            "ensemble_train_loss": ((m_tr - y) ** 2).mean(-1),
            "ensemble_test_loss": ((m_te - yt) ** 2).mean(-1),
            "linear_learned": (m_te * zt).mean(-1),
            "cubic_learned": (m_te * (zt ** 3 - 3 * zt)).mean(-1) / (6 * eps)}


def loss_drop_times(curve, time, fraction=0.9):
    r"""First time at which ``curve`` has made ``fraction`` of its drop from its start to its end
    value (the mean of its last 10 % of records): :math:`t_{0.9}`.

    Examples
    --------
    A step from 1 to 0 at t = 5, and a linear fall from 1 to 0 over t = 0..10 (90 % of the
    drop at t = 9):

    >>> import numpy as np
    >>> loss_drop_times([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], np.arange(10))
    5.0
    >>> t = np.arange(11.0)
    >>> loss_drop_times(1 - t / 10, t)
    9.0
    """
    curve, time = np.asarray(curve, float), np.asarray(time, float)
    end = curve[-max(1, len(curve) // 10):].mean()
    target = curve[0] - fraction * (curve[0] - end)
    below = np.nonzero(curve <= target)[0]
    return float(time[below[0]]) if below.size else float("nan")


def grokking_summary(row):
    r"""How much, and how late, the test loss drops after the train loss has dropped (losses of the
    ensemble-mean output of one width).

    :math:`t_{train}` is :func:`loss_drop_times` of the train loss. ``late_drop`` is the test loss
    at :math:`t_{train}` (median of the three nearest records) minus its final value (mean of the
    last 10 % of records): positive when the test loss keeps falling after the fit, as in
    grokking; ``late_drop_fraction`` divides it by the test loss at :math:`t_{train}`.
    :math:`t_{test}` is the first time after :math:`t_{train}` by which 90 % of the late drop is
    made, and ``delay`` is :math:`t_{test}/t_{train}` (NaN without a late drop).

    Returns
    -------
    GrokkingSummary
        ``status`` 7 ("run too short to measure"), with ``t_test``, ``delay`` and the late drop
        NaN, when the curves have fewer than 10 records, the train loss does not drop, it
        has not made 90 % of its drop before the last 10 % of the records, or it still falls
        still falls there by more than 5 % of its drop (the "final" values would be taken while the losses
        still fall, and the delay would be spurious).

    Examples
    --------
    The train loss drops from 1 to 0 at t = 10; the test loss to 0.6 then, and to 0.2 only at
    t = 50: a late drop of 0.4 (2/3 of 0.6), delay 50/10 = 5.

    >>> import numpy as np
    >>> t = np.arange(100.0)
    >>> row = {"curves": {"time": t, "ensemble_train_loss": np.where(t < 10, 1.0, 0.0),
    ...        "ensemble_test_loss": np.where(t < 10, 1.0, np.where(t < 50, 0.6, 0.2))}}
    >>> g = grokking_summary(row)
    >>> g.status, g.t_train, g.t_test, g.delay, round(g.late_drop, 4)
    (0, 10.0, 50.0, 5.0, 0.4)
    >>> round(g.late_drop_fraction, 4)
    0.6667
    """
    c = row["curves"]
    tr, te = np.asarray(c["ensemble_train_loss"], float), np.asarray(c["ensemble_test_loss"], float)
    t = np.asarray(c["time"], float)
    tail = max(1, len(te) // 10)
    t_tr = loss_drop_times(tr, t) if len(tr) else float("nan")
    nan = float("nan")
    last = (float(tr[-1]) if len(tr) else nan, float(te[-1]) if len(te) else nan)
    why = None
    if len(t) < 10:
        why = f"{len(t)} records, at least 10 needed"
    elif not np.all(np.isfinite(tr)) or not np.all(np.isfinite(te)):
        why = "the losses are not finite"
    elif not tr[-tail:].mean() < tr[0]:
        why = "the train loss does not drop"
    elif not t_tr < t[len(t) - tail]:
        why = (f"the train loss has not made 90 % of its drop before the last 10 % of the run "
               f"(t={t[len(t) - tail]:.3g}); run longer")
    elif tr[len(tr) - tail - 1] - tr[-1] > 0.05 * (tr[0] - tr[-tail:].mean()):
        why = ("the train loss still falls by more than 5 % of its drop over the last 10 % of "
               "the run; run longer")
    if why is not None:
        return GrokkingSummary(t_train=t_tr, t_test=nan, delay=nan, late_drop=nan,
                               late_drop_fraction=nan, final_train_loss=last[0],
                               final_test_loss=last[1], status=7, message=status_message(7, why))
    end = te[-tail:].mean()
    i = int(np.searchsorted(t, t_tr))
    at = float(np.median(te[max(0, i - 1):i + 2]))
    after = np.nonzero((t >= t_tr) & (te <= end + 0.1 * (at - end)))[0]
    drop = at - end
    t_te = float(t[after[0]]) if drop > 0 and len(after) else nan
    return GrokkingSummary(t_train=t_tr, t_test=t_te, delay=t_te / t_tr,
                           late_drop=float(drop), late_drop_fraction=float(drop / at),
                           final_train_loss=last[0], final_test_loss=last[1])


@styled
def plot_learning_curves(report, path):
    """Per width, against Langevin time: train (dashed) and test (solid) loss, of the ensemble-mean
    output in colour and of individual networks in grey (Fig. 5 of the paper); below, the learned
    linear and cubic parts of the ensemble-mean output on test points (Fig. 6; 1 = learned).

    Examples
    --------
    >>> import os
    >>> r = run_cubic(scale=0.02, sigma2=0.2, nets=2, steps=20, n_test=50, workers=1,
    ...               progress=False, curves=True)
    >>> plot_learning_curves(r, "curves.png")
    >>> os.path.isfile("curves.png")
    True
    """
    rows = [r for r in report_rows(report) if "curves" in r]
    fig, axes = subplots(2, len(rows), figsize=(3.6 * len(rows) + 0.8, 5.6), squeeze=False,
                         sharex="col", sharey="row", gridspec_kw={"height_ratios": (3, 2)})
    for top, bottom, r in zip(axes[0], axes[1], rows):
        c = r["curves"]
        t = np.maximum(np.asarray(c["time"], float), np.asarray(c["time"], float)[1] / 2)
        for net in np.asarray(c["test_loss"]):
            top.plot(t, net, color="0.8", lw=0.5)
        top.plot(t, c["ensemble_train_loss"], "--", color="C0", label="train (ensemble mean)")
        top.plot(t, c["ensemble_test_loss"], "-", color="C1", label="test (ensemble mean)")
        g = grokking_summary(r)
        for key, col in (("t_train", "C0"), ("t_test", "C1")):
            if math.isfinite(getattr(g, key)):
                top.axvline(getattr(g, key), color=col, lw=0.6, ls=":")
                bottom.axvline(getattr(g, key), color=col, lw=0.6, ls=":")
        top.set_yscale("log")
        top.set_title(f"$N={r['width']}$, $\\sigma^2={r['sigma2']:.3g}$: delay "
                      + (f"$\\times{g.delay:.1f}$" if math.isfinite(g.delay) else "not measured"))
        bottom.plot(t, c["linear_learned"], color="C2", label="linear part")
        bottom.plot(t, c["cubic_learned"], color="C3", label="cubic part")
        bottom.axhline(r["learned_cubic"]["theory"], color="C3", lw=0.8, ls="--",
                       label="cubic part, EK theory")
        bottom.set_xscale("log")
        bottom.set_xlabel(label("time"))
    axes[0][0].set_ylabel(label("loss"))
    axes[1][0].set_ylabel("learned fraction (test)")
    legend(axes[0][0])
    legend(axes[1][0])
    save(fig, path, report.params if isinstance(report, Result) else report.get("params"))
