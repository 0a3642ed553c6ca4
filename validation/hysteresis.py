r"""Hysteresis protocol for the first-order GFL -> GMFL-I transition of the cubic model.

Rubin, Seroussi & Ringel (2023), Sec. 2.4.1 and theory notes Sec. 6: the transition is first
order, so between the spinodal :math:`u_s` (where the droplet minimum :math:`\Phi_*` of
:math:`\hat S` first exists) and the first-order point :math:`u_c` (where it is degenerate with
:math:`\Phi=0`) the droplet state is metastable, and beyond :math:`u_c` the Gaussian (GFL) state
is metastable for as long as :math:`\Phi=0` stays a minimum (:math:`\hat S''(0)>0`). In noise
level, :math:`u\propto\sigma^{-4}`: GFL is the large-:math:`\sigma^2` phase, GMFL-I the small one,
:math:`\sigma^2_c=\sigma^2(u_c)<\sigma^2_s=\sigma^2(u_s)`.

Two branches of the same ensemble, each a sweep in which every noise level starts from the final
state of the previous one (:func:`~.langevin.langevin_run` with ``init``):

* **cold**: from the prior at the largest :math:`\sigma^2`, swept down. It should stay GFL
  (droplet mass at the Gaussian tail, learned cubic near 0) past :math:`\sigma^2_c`, until a
  droplet nucleates over the barrier :math:`d\,\Delta\hat S`.
* **hot**: at the smallest :math:`\sigma^2` a fraction ``hot_fraction`` of the neurons starts in
  the droplet state, :math:`w=\pm\Phi_*w^*+w_\perp` (:math:`w_\perp` from the prior on the
  :math:`d-1` other directions, :math:`\Phi_*` of
  :func:`~kernelphase.solvers.cubic.cubic_transition`),
  then swept up. Its droplets should persist above :math:`\sigma^2_c` up to the spinodal
  :math:`\sigma^2_s` and melt beyond it.

The order parameters per point are the droplet mass (fraction of neurons with
:math:`|\Phi|>0.5`) and the learned cubic :math:`1-c/\epsilon`, time averages over the second half
of each point's run (burn-in at least 5 autocorrelation times, :mod:`.autocorr`), with standard
errors that include the time correlation, the network spread and the test points.

The single-neuron barrier :math:`d\,\Delta\hat S` at :math:`u_c` sets whether a loop can open:
0.55 at scale 1/8 of the fig2 preset (the branches meet), :math:`0.18\,d` for the ``hyst``
preset of :data:`~.teacher_student.PRESETS` (:math:`\epsilon=-3`, :math:`\sigma_w^2=0.25`,
:math:`\rho=1`; 9.5 at scale 1/8).

**At the network's own size.** :func:`finite_d_window` moves the window to the exact finite-d
law of the neuron with the cavity factor (:mod:`kernelphase.solvers.finite_d`; ``hyst-wide``
at 1/4: :math:`\sigma^2\in(0.554,0.612)` against the EK (0.527, 0.577)). What a droplet of a
simulated network feels, though, is the tilt of that network's own training residual
(:func:`training_discrepancy`): the rows' ``landscape`` gives its (b, c) and the droplet's
exit barrier in kT in the finite-d law so tilted, to compare with the log of the run length
in relaxation times :math:`\sigma_w^2/d` (a droplet holds for the run when the barrier
exceeds it by a few kT). :func:`finite_data_window` predicts that tilt instead of measuring
it: the finite-data theory on the run's own training set, with the neuron law confined to the
Phi = 0 basin, gives the GFL network's training residual (at 1/4 of ``hyst-wide`` within
0.006 in c of the simulated networks'), and the finite-d law tilted by it the window at the
network's size (CLI ``--theory finite``).

**Modular addition** (:func:`run_modular_hysteresis`): the same two branches, the hot one from
:func:`~.modular_addition.modular_hot_start` (a fraction :math:`p_0` of the neurons in every
Fourier mode at :math:`|w_k|^2=|v_k|^2=\Phi_+`). Per mode pair the barrier is
:math:`2P\,\mathcal S_k(\Phi_-)/P`, about 15 at the ``hyst`` modular preset (:math:`3.6\times10^3`
at scale 1/8 of fig3, where in addition one droplet at :math:`\Phi_+=173` would carry a kernel
eigenvalue far above :math:`\sigma^2`, outside the mean-field regime). The theory
(:func:`modular_hysteresis_theory`) uses the network's target eigenvalue
:math:`4P^2\sigma_a^2\langle\Phi\Psi\rangle` (:func:`~.modular_addition.target_eigenvalue`).
"""
import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from kernelphase._checks import check_int, check_range
from kernelphase.figures import label, legend, mark_transition, save, styled, subplots, with_gaps
from kernelphase.results import Result, status_message

__all__ = ["HysteresisResult", "hot_start", "cubic_hysteresis_theory", "finite_d_window",
           "finite_data_window",
           "training_discrepancy", "plan_hysteresis",
           "run_hysteresis", "plot_hysteresis", "modular_hysteresis_theory",
           "modular_hysteresis_point", "plan_modular_hysteresis", "run_modular_hysteresis",
           "plot_modular_hysteresis"]

#: default noise levels at full scale of the fig2 preset, around sigma2_c = 0.178 and the
#: droplet spinodal sigma2_s = 0.190
DEFAULT_SIGMA2 = (0.12, 0.15, 0.17, 0.185, 0.2, 0.25)
BRANCHES = ("cold", "hot")


@dataclasses.dataclass(frozen=True, eq=False)
class HysteresisResult(Result):
    """Report of :func:`run_hysteresis`: ``rows`` (one per branch and noise level, in sweep
    order) and ``theory`` (:func:`cubic_hysteresis_theory`). ``status`` 0; 6 when a network
    diverged (its row says which)."""
    preset: str
    scale: float
    theory: Mapping[str, Any]
    rows: list
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def hot_start(post, phi_star, fraction, rng, direction=0):
    r"""Weights with a fraction of the neurons in the droplet state.

    ``round(fraction * N)`` neurons get :math:`w_i=s_i\Phi_*e_{\rm direction}+w_{\perp,i}` with
    random signs :math:`s_i=\pm1` and :math:`w_\perp` drawn from the prior
    :math:`\mathcal N(0,\sigma_w^2/d)` on the other coordinates; the rest, and the read-out, are
    prior draws. Returns ``(a, W)``.

    Examples
    --------
    >>> from kernelphase.validation.langevin import ErfNetworkPosterior
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((30, 12))
    >>> post = ErfNetworkPosterior(X, X[:, 0], 0.2, 1.0, 0.5, 40)
    >>> a, W = hot_start(post, 1.2, 0.25, np.random.default_rng(1))
    >>> a.shape, W.shape, int(np.sum(np.abs(W[:, 0]) == 1.2))     # round(0.25 * 40) droplets
    ((40,), (40, 12), 10)
    """
    phi_star = check_range("phi_star", phi_star, 0.0, 10.0)
    fraction = check_range("hot_fraction", fraction, 0.0, 1.0)
    a, W = post.prior_sample(rng)
    k = int(round(fraction * post.N))
    idx = rng.choice(post.N, size=k, replace=False)
    W[idx, direction] = phi_star * rng.choice((-1.0, 1.0), size=k)
    return a, W


def cubic_hysteresis_theory(eps, n, d, width, sigma_a2, sigma_w2=0.5, u_max=1e5,
                            finite_d=False):
    r"""First-order point and spinodals of the cubic model in noise level :math:`\sigma^2`.

    ``sigma2_c`` from :math:`u_c`; ``sigma2_spinodal_droplet`` from :math:`u_s` (the droplet
    minimum exists only for :math:`\sigma^2<\sigma^2_s`); ``sigma2_spinodal_gfl``: the largest
    :math:`u\le` ``u_max`` at which :math:`\Phi=0` is no longer a minimum on the GFL branch,
    :math:`\hat S''(0;u,b_{GFL}(u),\epsilon)=0`, scanned on a log grid; ``None`` when
    :math:`\hat S''(0)>0` throughout (then the Gaussian state is metastable for every
    :math:`\sigma^2<\sigma^2_c` in the EK theory, and only nucleation over the barrier ends it).
    ``barrier_at_uc``: the per-d action barrier :math:`\Delta\hat S` between :math:`\Phi=0`
    and :math:`\Phi_*` at :math:`u_c` (equal from both sides there), and
    ``barrier_at_uc_times_d`` = :math:`d\,\Delta\hat S`, the barrier a single neuron crosses,
    in units of the temperature.

    ``finite_d=True`` adds ``finite_d``: the same window with the exact finite-d law of the
    neuron at the network's own d and the cavity factor of width N
    (:func:`finite_d_window`).

    Examples
    --------
    The fig2 preset at full scale; :math:`u\propto\sigma^{-4}`, so
    :math:`\sigma^2_s/\sigma^2_c=\sqrt{u_c/u_s}`:

    >>> th = cubic_hysteresis_theory(-0.3, 3000, 150, 700, 8 / 700)
    >>> s2_c, s2_s = th["sigma2_c"], th["sigma2_spinodal_droplet"]
    >>> round(s2_c, 4), round(s2_s, 4), th["sigma2_spinodal_gfl"]
    (0.1787, 0.1907, None)
    >>> round(s2_s / s2_c, 4), round(math.sqrt(th["u_c"] / th["u_spinodal_droplet"]), 4)
    (1.0668, 1.0668)
    """
    from kernelphase.solvers.cubic import action, cubic_transition, gfl_b, sigma2_from_u
    tr = cubic_transition(eps, sigma_w2, n=n, d=d, width=width, sigma_a2=sigma_a2)
    phys = (n, d, width, sigma_a2)
    out = {"u_c": tr.u_c, "u_spinodal_droplet": tr.u_spinodal, "phi_star": tr.phi_star,
           "sigma2_c": sigma2_from_u(tr.u_c, *phys),
           "sigma2_spinodal_droplet": sigma2_from_u(tr.u_spinodal, *phys),
           "u_spinodal_gfl": None, "sigma2_spinodal_gfl": None,
           "transition_status": tr.status, "transition_message": tr.message}
    if tr.status != 0:
        return out
    # the single-neuron barrier at u_c, between Phi = 0 and Phi*: d * DeltaS in units of the
    # temperature; hysteresis needs it well above the log of the run length in relaxation times
    phi = np.linspace(0.0, tr.phi_star, 121)
    S = action(phi, tr.u_c, tr.b_at_uc, eps, sigma_w2)[0]
    out["barrier_at_uc"] = float(S.max() - S[0])
    out["barrier_at_uc_times_d"] = float(d * (S.max() - S[0]))
    rho = tr.params["rho"]
    us = np.geomspace(tr.u_c, u_max, 60)
    curv = [action(np.zeros(1), u, gfl_b(u, rho, sigma_w2), eps, sigma_w2)[2][0] for u in us]
    neg = [i for i, s in enumerate(curv) if not s > 0]
    if neg:
        u_sg = float(us[neg[0]])
        out.update(u_spinodal_gfl=u_sg, sigma2_spinodal_gfl=sigma2_from_u(u_sg, *phys))
    out["gfl_curvature_min"] = float(np.min(curv))
    out["gfl_scan_u_max"] = float(u_max)
    if finite_d:
        out["finite_d"] = finite_d_window(eps, n, d, width, sigma_a2, sigma_w2, tr.u_spinodal,
                                          tr.u_c)
    return out


def finite_d_window(eps, n, d, width, sigma_a2, sigma_w2=0.5, u_spinodal_ek=None, u_c_ek=None):
    r"""The metastable window of a lone droplet with the exact finite-d law of the neuron.

    First-order point :math:`u_c(d)` (:func:`~kernelphase.solvers.finite_d.finite_d_transition`:
    equal basin masses on the GFL branch) and droplet spinodal :math:`u_s(d)`
    (:func:`~kernelphase.solvers.finite_d.finite_d_spinodal`: the droplet peak of the
    Phi-marginal first exists), both with the cavity factor of width N, in u and in
    :math:`\sigma^2=\sqrt{n^2\sigma_a^2/(u\,dN)}`. The u scans run over
    ``[u_s/2, 2 u_c]`` of the EK values (computed when not given). Failures are statuses in
    the dict (``status_c``, ``status_s``, ``message_c``, ``message_s``), never exceptions.

    Examples
    --------
    The ``hyst-wide`` preset at scale 1/4 (n = 750, d = 75, N = 1050): the window
    (sigma^2_c, sigma^2_s) moves up from the EK (0.527, 0.577):

    >>> w = finite_d_window(-3.0, 750, 75, 1050, 1 / 14, 0.25)
    >>> round(w["sigma2_c"], 3), round(w["sigma2_spinodal_droplet"], 3)
    (0.554, 0.612)
    """
    from kernelphase.solvers.cubic import cubic_transition
    from kernelphase.solvers.finite_d import finite_d_spinodal, finite_d_transition
    if u_spinodal_ek is None or u_c_ek is None:
        tr = cubic_transition(eps, sigma_w2, n=n, d=d, width=width, sigma_a2=sigma_a2)
        u_spinodal_ek, u_c_ek = tr.u_spinodal, tr.u_c
    rho = width * sigma_a2 / d
    lo, hi = 0.5 * u_spinodal_ek, 2.0 * u_c_ek
    args = (eps, rho, d, sigma_w2, "chi2", width, n, sigma_a2)
    tc = finite_d_transition(*args, u_lo=lo, u_hi=hi, n_scan=16)
    ts = finite_d_spinodal(*args, u_lo=lo, u_hi=tc.u_c if tc.converged else hi, n_scan=16,
                           xtol=1e-5)
    return {"u_c": tc.u_c, "sigma2_c": tc.sigma2_c, "phi_star": tc.phi_star,
            "q_droplet": tc.q_droplet, "u_spinodal_droplet": ts.u_s,
            "sigma2_spinodal_droplet": ts.sigma2_s, "status_c": tc.status,
            "message_c": tc.message, "status_s": ts.status, "message_s": ts.message,
            "d": d, "width": width, "cavity": True}


def finite_data_window(preset, scale, sigma2, seed=0, mc_seeds=(0, 1), data_scale=None,
                       run_dir=None, workers=None, scheduler=None, **budget):
    r"""The metastable window at the network's own size, from the finite-data theory.

    Per noise level (at full scale, moved along the family as in :func:`plan_hysteresis`):

    1. the finite-data adaptive kernel on the run's training set
       (:func:`~.teacher_student.finite_theory_cell`, budget :data:`~.teacher_student.
       FINITE_DEFAULTS` unless ``budget`` overrides it), with the neuron law confined to the
       Phi = 0 basin (``basin="gfl"``: the metastable GFL branch; unconfined, the law holds
       the equilibrium droplets below the first-order point, 0.0036 +- 0.0009 at sigma^2 = 0.5
       of ``hyst-wide`` at 1/4, and their learning), gives the predicted training residual
       of the GFL network fitted on the teacher's modes, :math:`(b,c)`;
    2. a lone neuron tilted by it has the finite-d law with the cavity factor of width N
       (:func:`~kernelphase.solvers.finite_d.finite_d_averages`), whose ``dF_times_d``
       (:math:`-\ln(M_{\rm drop}/M_0)`) and exit / entry barriers (kT) are returned.

    The first-order point ``sigma2_c`` is where ``dF_times_d`` changes sign (linear
    interpolation between grid points; NaN when the grid does not bracket it) and the droplet
    spinodal ``sigma2_spinodal_droplet`` the bracket ``[lo, hi]`` where the droplet basin ends
    (the last grid point with one and the next; None without). The cavity factor of
    :mod:`~kernelphase.solvers.finite_d` takes :math:`L=1+\kappa\,\phi^\top\phi/\sigma^2`,
    an upper bound on the exact :math:`1+\kappa\,\phi^\top(\sigma^2I+K)^{-1}\phi` of
    :mod:`~kernelphase.solvers.finite_kernel`; ``no_cavity`` (per row, and its window) gives
    the other bound, :math:`L=1`. A larger L weakens the tilt, so the exact window lies between
    the two (the spinodal from the cavity one up to the ``no_cavity`` one). Each of ``mc_seeds`` is
    an independent Monte Carlo solution: the rows give the mean and the standard error of
    :math:`(b,c)` over them, and the barriers of the mean. ``run_dir`` (a
    :class:`kernelphase.io.RunDir`) keeps one checkpoint per noise level and seed,
    ``checkpoints/finite_gfl_m{seed}_s{sigma2}.npz``, and resumes from them.

    Examples
    --------
    A tiny budget at scale 0.02 of ``hyst-wide`` (n = 60, d = 21):

    >>> w = finite_data_window("hyst-wide", 0.02, (0.5, 0.6), mc_seeds=(0,), workers=1,
    ...                        chains=16, steps=10, tol=0.5, maxiter=2)
    >>> [r["sigma2"] for r in w["rows"]], sorted(w["rows"][0])[:3]
    ([0.5, 0.6], ['b_train', 'b_train_se', 'c_train'])
    """
    from kernelphase.solvers.cubic import u_from_sigma2
    from kernelphase.solvers.finite_d import finite_d_averages
    from .teacher_student import FINITE_DEFAULTS, _finite_rows, plan_cubic
    plan = plan_cubic(preset, scale, tuple(sorted(sigma2)), 1, 10, None, seed, 1000, None,
                      False, "gibbs", data_scale, workers, scheduler)
    p, N = plan["p"], plan["widths"][0]
    fd = {**FINITE_DEFAULTS, **budget}
    kw = dict(preset=preset, scale=float(scale), data_scale=p["data_scale"], data_seed=seed,
              law=fd["law"], chains=fd["chains"], steps=fd["steps"], n_test=200, tol=fd["tol"],
              maxiter=fd["maxiter"], basin="gfl")
    per_seed = [_finite_rows(plan["sigma2s"], dict(kw, mc_seed=m), run_dir, scheduler,
                             plan["workers"], f"finite_gfl_m{m}") for m in mc_seeds]
    k = len(mc_seeds)

    def se(v):
        return float(v.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
    rows = []
    for j, s2 in enumerate(plan["sigma2s"]):
        cs = [cells[j] for cells in per_seed]
        bs = np.array([c["b_train"] for c in cs])
        cc = np.array([c["c_train"] for c in cs])
        b, c = float(bs.mean()), float(cc.mean())
        u = u_from_sigma2(s2, p["n"], p["d"], N, p["sigma_a2"])
        land = [finite_d_averages(u, b, c, p["d"], p["sigma_w2"], "chi2", *cav)
                for cav in ((N, N * p["sigma_a2"] / p["d"]), ())]
        a, a1 = ({"dF_times_d": float(p["d"] * x["dF"]),
                  "exit_barrier": float(x["exit_barrier"]),
                  "entry_barrier": float(x["entry_barrier"])} for x in land)
        rows.append({"sigma2": float(s2), "u": float(u), "b_train": b, "b_train_se": se(bs),
                     "c_train": c, "c_train_se": se(cc), **a, "no_cavity": a1,
                     "status": max(int(x["status"]) for x in cs)})
    s = np.array([r["sigma2"] for r in rows])
    return {"rows": rows, **_window(s, rows), "no_cavity": _window(s, [r["no_cavity"]
                                                                      for r in rows]),
            "width": N, "d": p["d"], "n": p["n"], "seed": seed, "mc_seeds": list(mc_seeds),
            "budget": fd}


def _window(s, rows):
    """First-order point and droplet-spinodal bracket of :func:`finite_data_window`."""
    basin = np.isfinite([r["exit_barrier"] for r in rows])
    ends = [i for i in range(len(s) - 1) if basin[i] and not basin[i + 1]]
    return {"sigma2_c": _sign_change(s, np.array([r["dF_times_d"] for r in rows])),
            "sigma2_spinodal_droplet": [float(s[ends[-1]]), float(s[ends[-1] + 1])] if ends
            else None}


def _sign_change(x, f):
    """First zero of the piecewise-linear interpolant of f(x) (NaN without one)."""
    for i in range(len(x) - 1):
        if np.isfinite(f[i]) and np.isfinite(f[i + 1]) and (f[i] > 0) != (f[i + 1] > 0):
            return float(x[i] + (x[i + 1] - x[i]) * f[i] / (f[i] - f[i + 1]))
    return math.nan


def training_discrepancy(a, W, X, y, cavity=None):
    r"""Discrepancy coefficients of one network on its own training set.

    Least squares of the training residual on the two teacher modes,

    .. math:: \min_{b,c}\sum_\mu\big(y_\mu-f(x_\mu)-b\,\mathrm{He}_1(x_{\mu1})
              -c\,\mathrm{He}_3(x_{\mu1})\big)^2,\qquad f(x)=\sum_ia_i\,
              \mathrm{erf}(w_i\cdot x),

    the :math:`(b, c)` of :math:`\sigma^2\bar t=b\,\mathrm{He}_1+c\,\mathrm{He}_3` that
    tilt the single-neuron law (Rubin et al. 2023, Eq. 7, with the sum over the training set
    in place of its EK limit). Unlike the population discrepancies
    (:func:`~.teacher_student.exact_discrepancy`) they include what the network fits of the
    teacher on the sample only. ``cavity=i`` leaves neuron i out of f (the tilt neuron i
    itself feels; its own read-out is the cavity factor of the law). Returns ``(b, c, rms)``,
    ``rms`` the root mean square of the rest of the residual.

    Examples
    --------
    A network with all read-outs zero leaves the teacher itself, :math:`b=1`,
    :math:`c=\epsilon`:

    >>> from kernelphase.validation.teacher_student import cubic_data
    >>> X, y = cubic_data(200, 5, -0.3, seed=0)
    >>> b, c, rms = training_discrepancy(np.zeros(4), np.ones((4, 5)), X, y)
    >>> round(b, 6), round(c, 6), rms < 1e-12
    (1.0, -0.3, True)
    """
    from scipy.special import erf
    from .teacher_student import he13_fit
    a = np.array(a, dtype=float)
    if cavity is not None:
        a[check_int("cavity", cavity, 0, a.size - 1)] = 0.0
    return he13_fit(X[:, 0], y - erf(X @ np.asarray(W).T) @ a)


def _landscape(res, X, y, u, p, width):
    """Per network at the end of a point: the training (b, c) and the barriers of the finite-d
    law of a neuron tilted by them (cavity factor of width N), in units of the temperature.
    With droplets (|Phi| > DROPLET_PHI) the (b, c) are those of the cavity of the neuron of
    largest |Phi| (the tilt that droplet feels), else of the whole network."""
    from kernelphase.solvers.finite_d import finite_d_averages
    from .teacher_student import DROPLET_PHI
    d, sw2 = p["d"], p["sigma_w2"]
    out = {k: [] for k in ("b_train", "c_train", "rms_rest", "exit_barrier", "entry_barrier",
                           "dF_times_d", "droplet_phi", "droplets")}
    for r in res:
        phi = np.abs(np.asarray(r.W)[:, 0])
        i = int(np.argmax(phi))
        out["droplets"].append(int(np.sum(phi > DROPLET_PHI)))
        b, c, rms = training_discrepancy(r.a, r.W, X, y, i if phi[i] > DROPLET_PHI else None)
        a = finite_d_averages(u, min(max(b, -10), 10), min(max(c, -100), 100), d, sw2, "chi2",
                              width, width * p["sigma_a2"] / d)
        for k, v in (("b_train", b), ("c_train", c), ("rms_rest", rms),
                     ("exit_barrier", a["exit_barrier"]), ("entry_barrier", a["entry_barrier"]),
                     ("dF_times_d", d * a["dF"]),
                     ("droplet_phi", a["droplet_phi"])):
            out[k].append(v)
    return out


def plan_hysteresis(preset="fig2", scale=0.125, sigma2=None, nets=2, steps=4000, lr=None,
                    seed=0, n_test=1000, hot_fraction=0.3, readout="gibbs", data_scale=None,
                    workers=None, scheduler=None, dtype="float64", theory="ek"):
    """Check every input of :func:`run_hysteresis` before anything is allocated.

    The checks and the memory estimate are those of
    :func:`~kernelphase.validation.teacher_student.plan_cubic` (for both branches' networks),
    plus ``hot_fraction`` in [0, 1]. ``sigma2`` is given at full scale (default
    :data:`DEFAULT_SIGMA2`) and moved along the family with the preset; it is sorted and must
    hold distinct values; ``dtype`` as for :func:`~.teacher_student.run_cubic` (the Langevin
    step's gradient in float32 with ``"float32"``), ``theory`` ``"ek"`` or ``"finite"``.
    Returns the cubic plan with ``hot_fraction`` and the sweep.

    Examples
    --------
    >>> plan = plan_hysteresis(scale=0.02, sigma2=(0.2, 0.15), nets=1, steps=40)
    >>> plan["sigma2s"], plan["nets"], plan["widths"], plan["hot_fraction"]
    ((0.15, 0.2), 1, (14,), 0.3)
    """
    from .teacher_student import MAX_NETS, PRESETS, plan_cubic
    hot_fraction = check_range("hot_fraction", hot_fraction, 0.0, 1.0)
    nets = check_int("nets", nets, 1, MAX_NETS // 2)
    if sigma2 is None:
        sigma2 = DEFAULT_SIGMA2 if preset == "fig2" else PRESETS.get(preset, {}).get("sigma2", ())
    sigma2 = (sigma2,) if np.ndim(sigma2) == 0 else tuple(sigma2)
    plan = plan_cubic(preset, scale, sigma2, 2 * nets, steps, lr, seed, n_test, None, False,
                      readout, data_scale, workers, scheduler, theory=theory, dtype=dtype)
    nets = plan["nets"] // 2
    sweep = tuple(sorted(plan["sigma2s"]))
    if len(set(sweep)) != len(sweep):
        raise ValueError(f"sigma2={sigma2!r} has repeated values; give distinct noise levels")
    if len(plan["widths"]) != 1:
        raise ValueError(f"preset={preset!r} has {len(plan['widths'])} widths; the hysteresis "
                         f"protocol takes a preset with one width (fig2)")
    key = dict(plan["key"], nets=nets, hot_fraction=hot_fraction, sigma2=list(sweep),
               protocol="hysteresis")
    return dict(plan, nets=nets, sigma2s=sweep, hot_fraction=hot_fraction, key=key)


def run_hysteresis(preset="fig2", scale=0.125, sigma2=None, nets=2, steps=4000, lr=None,
                   seed=0, n_test=1000, hot_fraction=0.3, readout="gibbs", data_scale=None,
                   run_dir=None, progress=None, scheduler=None, workers=None, dtype="float64",
                   theory="ek"):
    r"""Sweep the noise level down from a cold start and up from a hot start.

    At each point of a sweep, every network of both branches is one task of
    :func:`~kernelphase.validation.ensemble.run_ensemble` (so the branches run side by side),
    started from that network's final state at the previous point; the first point of the cold
    branch starts from the prior, of the hot branch from :func:`hot_start`. Each network runs
    ``steps`` steps per point (burn-in ``steps // 2``). ``run_dir`` receives one state file per
    network and point, ``checkpoints/{branch}_p{j}_net{k}.npz``, and resumes from them.

    Returns
    -------
    HysteresisResult
        ``rows``: per branch and point, ``sigma2``, ``u``, the EK theory (``phase_theory``,
        ``learned_cubic`` and ``droplet_mass`` with their ``theory`` values on the stable
        branch, and ``metastable_theory`` = the GFL values 0), and the simulated order
        parameters with ``std_error``, ``tau_steps`` and ``ess``; ``landscape``: per network
        at the end of the point, the training discrepancies (:func:`training_discrepancy`)
        and the ``exit_barrier`` / ``entry_barrier`` (kT) and ``dF_times_d``
        (:math:`-\ln(M_{\rm drop}/M_0)`, positive where a lone neuron prefers Phi = 0) of the
        finite-d law of a neuron tilted by them (NaN / inf without a droplet basin), to hold
        against
        ``run_length_relaxation_times`` (steps x lr over the relaxation time
        :math:`\sigma_w^2/d`). ``theory["finite_d"]``: :func:`finite_d_window`; with
        ``theory="finite"`` also ``theory["finite_data"]``: :func:`finite_data_window` on the
        sweep's noise levels and the run's training set (the window at the network's size).

    Examples
    --------
    The cold branch sweeps down, the hot one up; the EK phase changes at
    ``theory["sigma2_c"]`` (0.179, between the two noise levels):

    >>> rep = run_hysteresis(scale=0.02, sigma2=(0.15, 0.2), nets=1, steps=10, n_test=10,
    ...                      workers=1, progress=False)
    >>> rep.status, round(rep.theory["sigma2_c"], 4)
    (0, 0.1794)
    >>> [(r["branch"], r["sigma2"], r["phase_theory"]) for r in rep.rows]
    [('cold', 0.2, 'GFL'), ('cold', 0.15, 'GMFL-I'), ('hot', 0.15, 'GMFL-I'), ('hot', 0.2, 'GFL')]
    """
    from kernelphase.solvers.cubic import cubic_phase, u_from_sigma2
    from .ensemble import network_status, report_status
    from .langevin import ErfNetworkPosterior, network_rng
    from .teacher_student import _CubicObserver, cubic_data, default_lr, series_statistics
    plan = plan_hysteresis(preset, scale, sigma2, nets, steps, lr, seed, n_test, hot_fraction,
                           readout, data_scale, workers, scheduler, dtype, theory)
    p, sweep, nets = plan["p"], plan["sigma2s"], plan["nets"]
    N = plan["widths"][0]
    d, n, eps, sw2, sa2 = p["d"], p["n"], p["eps"], p["sigma_w2"], p["sigma_a2"]
    finite = plan["theory"] == "finite"
    theory = cubic_hysteresis_theory(eps, n, d, N, sa2, sw2, finite_d=True)
    X, y = cubic_data(n, d, eps, seed)
    Xt, yt = cubic_data(n_test, d, eps, seed + 10 ** 6)
    bins = np.linspace(-1.6, 1.6, 65)

    def cell(branch, s2):
        post = ErfNetworkPosterior(X, y, s2, sa2, sw2, N, readout=readout, dtype=dtype)
        return (post, lr or default_lr(n, d, s2, sw2, N, sa2, readout),
                lambda: _CubicObserver(post, Xt, bins, yt, eps))

    def start(post, k):
        return hot_start(post, theory["phi_star"], hot_fraction, network_rng(seed, N, 1, k, 99))

    if finite:                          # the sweep's levels at full scale
        full = [s2 * float(scale) / p["data_scale"] for s2 in sweep]
        theory["finite_data"] = finite_data_window(preset, scale, full, seed,
                                                   data_scale=data_scale, run_dir=run_dir,
                                                   workers=workers, scheduler=scheduler)
    rows = {b: [] for b in BRANCHES}
    for branch, j, s2, step, res in _sweeps(sweep, nets, steps, seed, N, cell, start, run_dir,
                                            {"preset": preset, "width": N}, scheduler, workers,
                                            progress):
        ok, st = network_status(res)
        th = cubic_phase(eps, s2, n, d, N, sa2, sw2)
        row = {"branch": branch, "point": j, "sigma2": s2, "u": u_from_sigma2(s2, n, d, N, sa2),
               "phase_theory": th.phase, "lr": step, **st}
        if ok:
            row.update(_point_stats([res[i] for i in ok], th, eps, Xt, yt, step,
                                    series_statistics))
            row["landscape"] = _landscape([res[i] for i in ok], X, y, row["u"], p, N)
            row["run_length_relaxation_times"] = steps * step * d / sw2
        rows[branch].append(row)
    flat = rows["cold"] + rows["hot"]
    status, detail = report_status(flat)
    return HysteresisResult(
        preset=preset, scale=float(scale), theory=theory, rows=flat, status=status,
        message=status_message(status, detail),
        params={**p, "width": N, "sigma2": sweep, "nets": nets, "steps": steps, "seed": seed,
                "n_test": n_test, "readout": readout, "hot_fraction": plan["hot_fraction"],
                "lr": lr, "dtype": dtype, "theory": plan["theory"]})


def _sweeps(sweep, nets, steps, seed, N, cell, start, run_dir, params, scheduler, workers,
            progress):
    """The two branches side by side: yields ``(branch, j, sigma2, lr, results)`` per point.

    ``cell(branch, sigma2) -> (post, lr, observer)``, ``observer()`` a new observer with a
    ``series`` method for each network; ``start(post, k)`` the hot start
    of network ``k``. Point ``j`` of a branch starts every network from its final state at
    point ``j - 1`` (a diverged network from its branch's start); the cold branch from the
    prior at the largest sigma^2, the hot one from ``start`` at the smallest.
    """
    from .ensemble import run_ensemble
    order = {"cold": sweep[::-1], "hot": sweep}
    state = {(b, k): None for b in BRANCHES for k in range(nets)}
    for j in range(len(sweep)):
        tasks, cells = [], []
        for bi, branch in enumerate(BRANCHES):
            s2 = order[branch][j]
            post, step, observer = cell(branch, s2)
            cells.append((branch, s2, step, len(tasks)))
            for k in range(nets):
                init = state[branch, k]
                if init is None and branch == "hot":
                    init = start(post, k)
                obs = observer()
                tasks.append(dict(
                    post=post, steps=steps, lr=step, seed=seed, key=(N, bi, j, k),
                    burn_in=steps // 2, sample_every=max(1, steps // 200), observe=obs,
                    series=obs.series, init=init,
                    checkpoint=((run_dir, f"checkpoints/{branch}_p{j}_net{k}.npz")
                                if run_dir is not None else None),
                    checkpoint_every=max(1, steps // 20),
                    params={**params, "sigma2": s2, "branch": branch, "point": j}))
        results = run_ensemble(tasks, scheduler=scheduler, workers=workers, progress=progress,
                               desc=f"hysteresis point {j + 1}/{len(sweep)}")
        for branch, s2, step, i0 in cells:
            res = results[i0:i0 + nets]
            for k, r in enumerate(res):     # a diverged network restarts from its branch's start
                state[branch, k] = (r.a, r.W) if r.status == 0 else None
            yield branch, j, s2, step, res


def _point_stats(res, th, eps, Xt, yt, lr, series_statistics):
    """Order parameters of one point of one branch with their trusted errors."""
    cnt = np.array([r.acc["count"] for r in res])
    f_nets = np.array([r.acc["f_test"] / c for r, c in zip(res, cnt)])
    z = Xt[:, 0]
    resid = yt - f_nets.mean(0)
    se_test = {"b": float(np.std(resid * z) / math.sqrt(len(yt))),
               "c": float(np.std(resid * (z ** 3 - 3 * z)) / 6 / math.sqrt(len(yt)))}
    stats, ac = series_statistics(res, se_test, lr)
    c, dm = stats["c"], stats["droplet_mass"]
    keys = ("tau_steps", "ess", "se_time", "se_spread", "spread_ratio")
    per_net = [float(np.mean(r.series[len(r.series) // 2:, 2])) for r in res]
    return {
        "learned_cubic": {"theory": th.learned_cubic, "sim_mean": 1 - c["mean"] / eps,
                          "std_error": c["std_error"] / abs(eps),
                          **{k: c[k] / (abs(eps) if k.startswith("se_") else 1) for k in keys}},
        "droplet_mass": {"theory": th.droplet_fraction, "sim_mean": dm["mean"],
                         "std_error": dm["std_error"], **{k: dm[k] for k in keys},
                         "per_network": per_net},
        "b": {"theory": th.b, "sim_mean": stats["b"]["mean"],
              "std_error": stats["b"]["std_error"]},
        "learned_cubic_exact": {"theory": th.learned_cubic,
                                "sim_mean": 1 - stats["c_exact"]["mean"] / eps,
                                "std_error": stats["c_exact"]["std_error"] / abs(eps)},
        "metastable_theory": {"learned_cubic": 0.0, "droplet_mass": 0.0} if th.metastable
        else None,
        "autocorr": ac}


@styled
def plot_hysteresis(report, path):
    """The two branches of the droplet mass and the learned cubic (from the population c of
    :func:`~.teacher_student.exact_discrepancy`, free of test-point error) against sigma^2,
    with the EK stable branch (gaps where it did not converge), the first-order point (solid)
    and the spinodals (dashed); the finite-d window (``theory["finite_d"]``, shaded between
    its first-order point and droplet spinodal) when present; and, when the rows carry
    ``landscape``, a third panel with the exit barrier of a droplet (kT) in the finite-d law
    tilted by each network's training discrepancies, against the log of the run length in
    relaxation times. With ``theory["finite_data"]`` (:func:`finite_data_window`): its
    first-order points (red, solid with the cavity factor, dashed without), the brackets of its
    droplet spinodal (hatched) and, in the third panel, the exit barriers at its predicted
    (b, c) (red lines).

    Examples
    --------
    >>> import os
    >>> rep = run_hysteresis(scale=0.02, sigma2=(0.15, 0.2), nets=1, steps=10, n_test=10,
    ...                      workers=1, progress=False)
    >>> plot_hysteresis(rep, "hysteresis.png")
    >>> os.path.isfile("hysteresis.png")
    True
    """
    rows = report.rows if isinstance(report, Result) else report["rows"]
    th = report.theory if isinstance(report, Result) else report["theory"]
    land = any("landscape" in r for r in rows)
    fig, axes = subplots(1, 3 if land else 2, figsize=(15 if land else 10, 3.8))
    fd = th.get("finite_d") or {}
    for ax, key in ((axes[0], "droplet_mass"), (axes[1], "learned_cubic_exact")):
        for branch, col, mk in (("cold", "C0", "v-"), ("hot", "C1", "^-")):
            rs = sorted((r for r in rows if r["branch"] == branch and key in r),
                        key=lambda r: r["sigma2"])
            ax.errorbar([r["sigma2"] for r in rs], [r[key]["sim_mean"] for r in rs],
                        [r[key]["std_error"] for r in rs], fmt=mk, color=col,
                        label=f"{branch} start, swept {'down' if branch == 'cold' else 'up'}")
        rs = sorted((r for r in rows if r["branch"] == "cold" and key in r),
                    key=lambda r: r["sigma2"])
        ax.plot(*with_gaps([r["sigma2"] for r in rs], [r[key]["theory"] for r in rs],
                           [r["phase_theory"] != "unknown" for r in rs]),
                "k:", lw=1, label="EK theory (stable branch)")
        mark_transition(ax, th.get("sigma2_c"), {
            "EK droplet spinodal": th.get("sigma2_spinodal_droplet"),
            "GFL spinodal": th.get("sigma2_spinodal_gfl")}, name="sigma2",
            label=r"EK $\sigma^2_c$")
        _finite_d_span(ax, fd)
        _finite_data_marks(ax, th.get("finite_data"))
        ax.set_xlabel(label("sigma2"))
    axes[0].set_ylabel(label("droplet_mass"))
    axes[1].set_ylabel(r"learned cubic $1-c/\epsilon$ (population $c$)")
    if land:
        ax = axes[2]
        for branch, col, mk in (("cold", "C0", "v"), ("hot", "C1", "^")):
            for r in (r for r in rows if r["branch"] == branch and "landscape" in r):
                e = np.asarray(r["landscape"]["exit_barrier"], dtype=float)
                ax.plot(np.full(e.size, r["sigma2"]), np.where(np.isfinite(e), e, 0.0), mk,
                        color=col, mfc="none" if branch == "cold" else col, ms=5)
            ax.plot([], [], mk, color=col, label=f"{branch}: exit barrier at its (b, c)"
                    " (0: no droplet basin)")
        T = [r["run_length_relaxation_times"] for r in rows if "run_length_relaxation_times" in r]
        if T:
            ax.axhline(math.log(max(T)), color="0.3", ls="--", lw=0.8,
                       label=r"$\ln$(run length / relaxation time)")
        mark_transition(ax, th.get("sigma2_c"), (), name="sigma2", label=r"EK $\sigma^2_c$")
        _finite_d_span(ax, fd)
        fdd = th.get("finite_data")
        if fdd:
            e = np.array([r["exit_barrier"] for r in fdd["rows"]], dtype=float)
            e1 = np.array([r["no_cavity"]["exit_barrier"] for r in fdd["rows"]], dtype=float)
            for v, ls, name in ((e, "-", "cavity"), (e1, "--", "L = 1")):
                ax.plot([r["sigma2"] for r in fdd["rows"]], np.where(np.isfinite(v), v, 0.0),
                        ls, color="C3", lw=1.2,
                        label=f"finite-data theory: exit barrier at its (b, c), {name}")
        _finite_data_marks(ax, fdd)
        ax.set_xlabel(label("sigma2"))
        ax.set_ylabel("droplet exit barrier (kT), finite-d law")
        legend(ax)
    legend(axes[0])
    save(fig, path, report.params if isinstance(report, Result) else report.get("params"))


def _finite_data_marks(ax, fdd):
    """The window at the network's size (:func:`finite_data_window`): first-order point and
    the bracket of the droplet spinodal, with the cavity factor (solid, /) and without (dashed,
    \\); the exact window lies between."""
    if not fdd:
        return
    for w, ls, hatch, name in ((fdd, "-", "//", "cavity"),
                               (fdd.get("no_cavity") or {}, "--", "\\\\", "L = 1")):
        if math.isfinite(w.get("sigma2_c") or math.nan):
            ax.axvline(w["sigma2_c"], color="C3", lw=1.2, ls=ls,
                       label=rf"finite-data $\sigma^2_c$ ({name})")
        if w.get("sigma2_spinodal_droplet"):
            ax.axvspan(*w["sigma2_spinodal_droplet"], facecolor="none", edgecolor="C3",
                       hatch=hatch, lw=0, label=f"finite-data droplet spinodal ({name})")


def _finite_d_span(ax, fd):
    """Shade the finite-d window (first-order point to droplet spinodal) when both exist."""
    lo, hi = fd.get("sigma2_c"), fd.get("sigma2_spinodal_droplet")
    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
        ax.axvspan(lo, hi, color="C2", alpha=0.15, lw=0,
                   label=f"finite-d window (d={fd.get('d')}, cavity N={fd.get('width')})")


# -- modular addition ---------------------------------------------------------------------------

#: default hot-start droplet weight per mode of the modular protocol
MODULAR_HOT_FRACTION = 0.125


def modular_hysteresis_theory(P, width, sigma_a2, gamma, hot_fraction=MODULAR_HOT_FRACTION):
    r"""Phase boundaries, spinodals and barriers of the modular model with the network's kernel.

    Per mode the action is :math:`\mathcal S_k/P=\Phi-g\Phi^2+\frac\gamma3\Phi^3`,
    :math:`g=ua^2`, :math:`u=2\sigma_a^2P^2/(N\sigma^4)` (Rubin et al. App. B; theory notes
    Sec. 5.5), with saddles :math:`\Phi_\pm=(g\pm\sqrt{g^2-\gamma})/\gamma` (Eq. 40) and the
    closure :math:`|a|=\sigma^2/(\sigma^2+\Lambda p\Phi_+^2)` with the network's
    :math:`\Lambda=4P^2\sigma_a^2` (:func:`~.modular_addition.target_eigenvalue`; the printed
    :math:`\Lambda=\sigma_a^2` of :func:`kernelphase.solvers.modular.modular_phase` is
    :math:`4P^2` smaller). Then

    * GMFL-I onset :math:`\sigma_1^2=\sqrt{2\sigma_a^2P^2/(Ng_c)}` (unchanged), GMFL-II onset
      :math:`\sigma_2^2=\sigma_1^2-\Lambda\Phi_+(g_c)^2` (``None`` when not positive);
    * a hot state with droplet weight :math:`p_0` per mode (:func:`modular_hot_start`) keeps
      its droplets while their minimum exists, :math:`ua^2\ge\sqrt\gamma`, where
      :math:`\Phi_+=1/\sqrt\gamma`; with the closure this gives the droplet spinodal
      :math:`\sigma^2_s(p_0)=\sqrt{2\sigma_a^2P^2/(N\sqrt\gamma)}-\Lambda p_0/\gamma`
      (``sigma2_spinodal_hot``; for a lone droplet, :math:`p_0\to0`, ``sigma2_spinodal_lone``);
    * the barrier of one mode pair of one neuron between :math:`\Phi=0` and :math:`\Phi_+` at
      :math:`g_c`, :math:`2P\,\mathcal S_k(\Phi_-)/P` in units of the temperature (both
      :math:`k` and :math:`P-k` carry the action).

    Examples
    --------
    >>> th = modular_hysteresis_theory(23, 40, 1.75e-8, 1 / 3, 0.25)
    >>> round(th["sigma2_gmfl1"], 7), round(th["sigma2_spinodal_hot"] / th["sigma2_gmfl1"], 3)
    (0.0008333, 1.041)
    """
    from kernelphase.solvers.modular import _check, _action_numeric, degenerate_point
    P, width, sigma_a2, gamma = _check(P, width, sigma_a2, gamma)
    p0 = check_range("hot_fraction", hot_fraction, 0.0, 1.0)
    lam = 4.0 * P * P * sigma_a2
    K = 2.0 * sigma_a2 * P * P / width
    g_c, phi_c = degenerate_point(gamma)
    s1 = math.sqrt(K / g_c)
    s2 = s1 - lam * phi_c ** 2
    lone = math.sqrt(K / math.sqrt(gamma))
    phi_minus = 1.0 / (gamma * phi_c)
    return {"Lambda": lam, "K": K, "g_c": g_c, "phi_plus": phi_c, "hot_fraction": p0,
            "sigma2_gmfl1": s1, "sigma2_gmfl2": s2 if s2 > 0 else None,
            "sigma2_spinodal_lone": lone, "sigma2_spinodal_hot": lone - lam * p0 / gamma,
            "barrier_pair_at_gc": 2 * P * _action_numeric()(phi_minus, g_c, gamma)[0],
            "P": P, "width": width, "sigma_a2": sigma_a2, "gamma": gamma}


def _closure_abs_a(sigma2, u, lam_p, gamma):
    r"""Largest root :math:`|a|\in(0,1]` of :math:`|a|=\sigma^2/(\sigma^2+\Lambda p\,
    \Phi_+(ua^2)^2)` with the droplet minimum present (:math:`ua^2\ge\sqrt\gamma`); None when
    there is none (beyond the spinodal)."""
    from scipy.optimize import brentq
    from kernelphase.solvers.modular import _phi_plus
    lo = math.sqrt(math.sqrt(gamma) / u)
    if lo > 1.0:
        return None
    f = lambda x: x - sigma2 / (sigma2 + lam_p * _phi_plus(max(u * x * x, math.sqrt(gamma)),
                                                           gamma) ** 2)
    xs = np.linspace(1.0, lo, 400)
    fs = [f(x) for x in xs]
    for i in range(1, len(xs)):
        if fs[i - 1] >= 0 >= fs[i] or fs[i - 1] <= 0 <= fs[i]:
            return float(brentq(f, xs[i], xs[i - 1], xtol=1e-14)) if fs[i] != fs[i - 1] \
                else float(xs[i])
    return None


def modular_hysteresis_point(theory, sigma2):
    r"""The three states of the modular protocol at noise level :math:`\sigma^2`.

    ``equilibrium``: GFL / GMFL-I / GMFL-II with the network's :math:`\Lambda`
    (:func:`modular_hysteresis_theory`); ``hot``: the hot start's droplet weight :math:`p_0`
    kept, :math:`|a|` from the closure, or melted (``p`` 0, ``|a|`` 1) beyond
    ``sigma2_spinodal_hot``; ``cold``: GFL (:math:`a=-1`, no droplets) with the barrier
    :math:`2P\,\mathcal S_k(\Phi_-(u))/P` a neuron crosses to nucleate a droplet.

    Examples
    --------
    >>> th = modular_hysteresis_theory(23, 40, 1.75e-8, 1 / 3, 0.25)
    >>> pt = modular_hysteresis_point(th, 0.9 * th["sigma2_gmfl1"])
    >>> pt["equilibrium"]["phase"], round(pt["equilibrium"]["p"], 3), round(pt["hot"]["a"], 3)
    ('GMFL-I', 0.25, -0.9)
    """
    from kernelphase.solvers.modular import _action_numeric
    th = theory
    sigma2 = check_range("sigma2", sigma2, 0, 1e12, lo_open=True)
    u = th["K"] / sigma2 ** 2
    lam, gamma, s1, s2 = th["Lambda"], th["gamma"], th["sigma2_gmfl1"], th["sigma2_gmfl2"]
    if sigma2 >= s1:
        eq = {"phase": "GFL", "a": -1.0, "p": 0.0}
    elif s2 is not None and sigma2 < s2:
        x = _closure_abs_a(sigma2, u, lam, gamma)
        eq = {"phase": "GMFL-II", "a": -x if x is not None else float("nan"), "p": 1.0}
    else:
        eq = {"phase": "GMFL-I", "a": -sigma2 / s1,
              "p": (s1 - sigma2) / (lam * th["phi_plus"] ** 2)}
    x = _closure_abs_a(sigma2, u, lam * th["hot_fraction"], gamma) \
        if th["hot_fraction"] > 0 else None
    hot = ({"a": -x, "p": th["hot_fraction"], "g": u * x * x} if x is not None
           else {"a": -1.0, "p": 0.0, "g": u})
    if u * u > gamma:
        phi_minus = (u - math.sqrt(u * u - gamma)) / gamma
        barrier = 2 * th["P"] * _action_numeric()(phi_minus, u, gamma)[0]
    else:
        barrier = None
    return {"sigma2": sigma2, "u": u, "equilibrium": eq, "hot": hot,
            "cold": {"a": -1.0, "p": 0.0, "nucleation_barrier": barrier}}


def plan_modular_hysteresis(preset="hyst", scale=1.0, sigma2=None, nets=2, steps=3000, lr=None,
                            seed=0, hot_fraction=MODULAR_HOT_FRACTION, workers=None,
                            scheduler=None):
    """Check every input of :func:`run_modular_hysteresis` before anything is allocated.

    The checks and the memory estimate are those of
    :func:`~kernelphase.validation.modular_addition.plan_modular` (for both branches'
    networks), plus ``hot_fraction`` in [0, 1] and distinct noise levels (sorted; absolute,
    default: the preset's, scaled).

    Examples
    --------
    >>> plan = plan_modular_hysteresis(sigma2=(9e-4, 8e-4), nets=2)
    >>> plan["sigma2s"], plan["nets"], plan["p"]["P"]
    ((0.0008, 0.0009), 2, 17)
    """
    from .modular_addition import MAX_NETS, plan_modular
    hot_fraction = check_range("hot_fraction", hot_fraction, 0.0, 1.0)
    nets = check_int("nets", nets, 1, MAX_NETS // 2)
    plan = plan_modular(preset, scale, sigma2, 2 * nets, steps, lr, seed, workers, scheduler)
    sweep = tuple(sorted(plan["sigma2s"]))
    if len(set(sweep)) != len(sweep):
        raise ValueError(f"sigma2={sigma2!r} has repeated values; give distinct noise levels")
    key = dict(plan["key"], nets=nets, hot_fraction=hot_fraction, sigma2=list(sweep),
               protocol="hysteresis")
    return dict(plan, nets=nets, sigma2s=sweep, hot_fraction=hot_fraction, key=key)


def run_modular_hysteresis(preset="hyst", scale=1.0, sigma2=None, nets=2, steps=3000, lr=None,
                           seed=0, hot_fraction=MODULAR_HOT_FRACTION, run_dir=None,
                           progress=None, scheduler=None, workers=None):
    r"""The hysteresis protocol for modular addition: a cold branch from the prior swept down
    in :math:`\sigma^2`, a hot branch from :func:`~.modular_addition.modular_hot_start`
    (droplet weight ``hot_fraction`` in every mode, at :math:`\Phi_+(g_c)`) swept up.

    Each point of a branch starts from its final state at the previous point (as in
    :func:`run_hysteresis`; checkpoints ``checkpoints/{branch}_p{j}_net{k}.npz`` in
    ``run_dir``). Step (default) :func:`~.modular_addition.default_modular_lr` divided by
    :math:`1+5\gamma\Phi_+^2`, the stabiliser's curvature at the droplet.

    Returns
    -------
    HysteresisResult
        ``theory`` from :func:`modular_hysteresis_theory`; ``rows`` per branch and point with
        the states of :func:`modular_hysteresis_point` and the simulated ``a``,
        ``droplet_fraction`` (modes with :math:`\Phi>\Phi_+/2`) and ``mode_power`` as time
        averages over each network's series after a burn-in of at least 5 autocorrelation
        times, with standard errors (:func:`~.teacher_student.series_statistics`).

    Examples
    --------
    The ``hyst`` preset (P = 17, N = 60) has :math:`\sigma_1^2=4.17\times10^{-4}`; the hot
    start puts round(0.125 * 60) = 8 of the 60 neurons in every mode's droplet, which
    ten steps do not melt, while the cold branch has none:

    >>> rep = run_modular_hysteresis(sigma2=(3.9e-4, 5e-4), nets=1, steps=10, workers=1,
    ...                              progress=False)
    >>> rep.status, round(rep.theory["sigma2_gmfl1"], 7), round(8 / 60, 4)
    (0, 0.0004167, 0.1333)
    >>> [(r["branch"], r["phase_theory"], round(r["droplet_fraction"]["sim_mean"], 4))
    ...  for r in rep.rows]
    [('cold', 'GFL', 0.0), ('cold', 'GMFL-I', 0.0), ('hot', 'GMFL-I', 0.1333),
     ('hot', 'GFL', 0.1333)]
    """
    from .ensemble import network_status, report_status
    from .langevin import network_rng
    from .modular_addition import (MODULAR_SERIES, LOG_PHI_BINS, ModularNetworkPosterior,
                                   _ModularObserver, default_modular_lr, modular_hot_start)
    from .teacher_student import series_statistics
    plan = plan_modular_hysteresis(preset, scale, sigma2, nets, steps, lr, seed, hot_fraction,
                                   workers, scheduler)
    p, sweep, nets = plan["p"], plan["sigma2s"], plan["nets"]
    P, N, sa2, gamma = p["P"], p["width"], p["sigma_a2"], p["gamma"]
    # the droplet weight the hot start realises: round(hot_fraction * N) neurons per mode
    theory = modular_hysteresis_theory(P, N, sa2, gamma, round(plan["hot_fraction"] * N) / N)
    phi_plus = theory["phi_plus"]

    def cell(branch, s2):
        post = ModularNetworkPosterior(P, N, s2, sa2, gamma)
        step = lr or default_modular_lr(P, N, s2, sa2) / (1 + 5 * gamma * phi_plus ** 2)
        return post, step, lambda: _ModularObserver(post, LOG_PHI_BINS, phi_plus / 2)

    def start(post, k):
        return modular_hot_start(post, phi_plus, plan["hot_fraction"],
                                 network_rng(seed, N, 1, k, 99))

    rows = {b: [] for b in BRANCHES}
    for branch, j, s2, step, res in _sweeps(sweep, nets, steps, seed, N, cell, start, run_dir,
                                            {"preset": preset, "width": N, "P": P,
                                             "model": "modular"}, scheduler, workers, progress):
        ok, st = network_status(res)
        th = modular_hysteresis_point(theory, s2)
        row = {"branch": branch, "point": j, "sigma2": s2, "u": th["u"],
               "phase_theory": th["equilibrium"]["phase"], "theory": th, "lr": step, **st}
        if ok:
            stats, ac = series_statistics([res[i] for i in ok], {}, step, MODULAR_SERIES)
            keys = ("mean", "std_error", "tau_steps", "ess", "se_time", "se_spread")
            row.update({name: {"sim_mean" if k == "mean" else k: stats[name][k] for k in keys}
                        for name in MODULAR_SERIES})
            row["per_network"] = {name: [float(np.mean(res[i].series[len(res[i].series) // 2:,
                                                                      c])) for i in ok]
                                  for c, name in enumerate(MODULAR_SERIES)}
            row["autocorr"] = ac
        rows[branch].append(row)
    flat = rows["cold"] + rows["hot"]
    status, detail = report_status(flat)
    from kernelphase.results import jsonable
    return HysteresisResult(
        preset=preset, scale=float(scale), theory=theory, rows=jsonable(flat), status=status,
        message=status_message(status, detail),
        params={**p, "sigma2": sweep, "nets": nets, "steps": steps, "seed": seed,
                "hot_fraction": plan["hot_fraction"], "lr": lr, "model": "modular"})


@styled
def plot_modular_hysteresis(report, path):
    """Droplet fraction and |a| of the two branches against sigma^2, with the equilibrium
    (GMFL-I window) and hot-state theory, sigma_1^2, sigma_2^2 and the hot droplet spinodal.

    Examples
    --------
    >>> import os
    >>> rep = run_modular_hysteresis(sigma2=(3.9e-4, 5e-4), nets=1, steps=10, workers=1,
    ...                              progress=False)
    >>> plot_modular_hysteresis(rep, "modular_hysteresis.png")
    >>> os.path.isfile("modular_hysteresis.png")
    True
    """
    rows = report.rows if isinstance(report, Result) else report["rows"]
    th = report.theory if isinstance(report, Result) else report["theory"]
    fig, axes = subplots(1, 2, figsize=(11, 4))
    for ax, key, ylab, f in ((axes[0], "droplet_fraction", r"droplet fraction ($\Phi>\Phi_+/2$)",
                               lambda s: s["p"]),
                              (axes[1], "a", r"$|a|$ (residual fraction)",
                               lambda s: abs(s["a"]))):
        for branch, col, mk in (("cold", "C0", "v-"), ("hot", "C3", "^-")):
            rs = sorted((r for r in rows if r["branch"] == branch and key in r),
                        key=lambda r: r["sigma2"])
            sgn = -1 if key == "a" else 1
            ax.errorbar([r["sigma2"] for r in rs], [sgn * r[key]["sim_mean"] for r in rs],
                        [r[key]["std_error"] for r in rs], fmt=mk, color=col, capsize=2,
                        label=f"{branch} start, swept {'down' if branch == 'cold' else 'up'}")
        rs = sorted((r for r in rows if r["branch"] == "hot"), key=lambda r: r["sigma2"])
        s2 = [r["sigma2"] for r in rs]
        ax.plot(s2, [f(r["theory"]["equilibrium"]) for r in rs], "k:", lw=1,
                label="theory, equilibrium")
        ax.plot(s2, [f(r["theory"]["hot"]) for r in rs], "--", color="C3", lw=0.8,
                label="theory, hot state (p fixed)")
        for name, ls, lab in (("sigma2_gmfl1", "-", r"$\sigma_1^2$ (GMFL-I onset)"),
                              ("sigma2_gmfl2", "--", r"$\sigma_2^2$ (GMFL-II)"),
                              ("sigma2_spinodal_hot", "-.", "hot droplet spinodal")):
            if th.get(name):
                ax.axvline(th[name], color="0.4", ls=ls, lw=0.8, label=lab)
        ax.set_xlabel(label("sigma2"))
        ax.set_ylabel(ylab)
    legend(axes[0])
    save(fig, path, report.params if isinstance(report, Result) else report.get("params"))
