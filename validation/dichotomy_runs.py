r"""Experiments of Lyu et al. (2023) with their theory overlaid: diagonal nets and matrix completion.

Each run returns a result (:class:`DiagRunResult`, :class:`MCRunResult`) with the predicted grokking time
:math:`t_g=\frac1\lambda\ln\alpha` (continuous time; steps :math:`=t/\eta`), the measured
transition (the time the test metric crosses halfway between its kernel-phase plateau and its
final value), the plateau and final metrics, the cosines to the early and late predictors,
and the curves.
"""
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase._checks import check_choice, check_int, check_range
from kernelphase.figures import label, legend, save, styled, subplots
from kernelphase.results import Result

#: the kernel-phase plateau is read at this fraction of t_g (well inside the kernel phase:
#: finite-alpha transitions start ~2/lambda before t_g, see the docs)
PLATEAU_FRACTION = 0.2
#: the metric must have settled by the end of the run: over the last SETTLE_FRACTION of the
#: records it may move by at most SETTLE_TOL of the plateau-to-final jump
SETTLE_FRACTION, SETTLE_TOL = 0.1, 0.1

__all__ = ["train_diag", "train_mc", "sweep_alpha", "crossing_time", "transition_time",
           "plot_run", "DiagRunResult", "MCRunResult", "SweepAlphaResult", "plot_modular",
           "ModularSweepResult", "MODULAR_DEFAULTS", "MODULAR_PAPER", "train_modular",
           "sweep_modular"]


def crossing_time(t, metric, start_index):
    """First time after ``t[start_index]`` where ``metric`` crosses halfway between its value at
    ``start_index`` (the plateau) and its final value, linearly interpolated; NaN if none
    (also when ``start_index`` is not inside the run).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.dichotomy_runs import crossing_time
    >>> t = np.array([0.0, 1.0, 2.0, 3.0]); acc = np.array([0.5, 0.5, 0.9, 1.0])
    >>> crossing_time(t, acc, 0)                     # halfway (0.75) between 0.5 and 1.0
    1.625
    """
    t = np.asarray(t, float)
    m = np.asarray(metric, float)
    if not 0 <= start_index < len(m) - 1:
        return float("nan")
    plateau, final = m[start_index], m[-1]
    if not (np.isfinite(plateau) and np.isfinite(final)) or plateau == final:
        return float("nan")
    half = 0.5 * (plateau + final)
    s = np.sign(m[start_index:] - half)
    idx = np.flatnonzero(s != s[0])
    if idx.size == 0:
        return float("nan")
    k = start_index + idx[0]
    t0, t1, m0, m1 = t[k - 1], t[k], m[k - 1], m[k]
    return float(t0 + (half - m0) * (t1 - t0) / (m1 - m0))


def transition_time(t, metric, t_g):
    r"""The one measured grokking time of the dichotomy runs: the halfway crossing.

    The plateau is the metric at :math:`0.2\,t_g` (``PLATEAU_FRACTION``); the time is
    :func:`crossing_time` from there. Returns ``(time, plateau_index, status, detail)``;
    ``status`` 7 (run too short to measure, time NaN) when the run ends before the plateau
    or before the predicted :math:`t_g`, the metric never leaves the plateau, or the metric is still moving at the end of the run (a
    halfway point taken then would be spurious).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.dichotomy_runs import transition_time
    >>> t = np.linspace(0.0, 10.0, 101)
    >>> acc = np.where(t < 5.0, 0.5, 1.0)
    >>> time, plateau_index, status, detail = transition_time(t, acc, t_g=4.0)
    >>> round(time, 3), status
    (4.95, 0)
    """
    t = np.asarray(t, float)
    m = np.asarray(metric, float)
    i_p = int(np.searchsorted(t, PLATEAU_FRACTION * t_g))
    if i_p >= len(t) - 1:
        return (float("nan"), min(i_p, len(t) - 1), 7,
                f"the run ends at t={t[-1]:.4g}, before the kernel-phase plateau at "
                f"{PLATEAU_FRACTION:g} t_g = {PLATEAU_FRACTION * t_g:.4g}")
    if t[-1] < t_g:
        return (float("nan"), i_p, 7, f"the run ends at t={t[-1]:.4g}, before the predicted "
                f"t_g={t_g:.4g}; run longer")
    tc = crossing_time(t, m, i_p)
    if not np.isfinite(tc):
        return (float("nan"), i_p, 7, f"the test metric did not leave its plateau by "
                f"t={t[-1]:.4g} (t_g={t_g:.4g}); run longer")
    tail = m[int(np.floor((1 - SETTLE_FRACTION) * (len(m) - 1))):]
    if np.ptp(tail) > SETTLE_TOL * abs(m[i_p] - m[-1]):
        return (float("nan"), i_p, 7, f"the test metric is still moving at the end of the "
                f"run (t={t[-1]:.4g}, t_g={t_g:.4g}); run longer")
    return tc, i_p, 0, None


#: training margin m at the end of the kernel phase in kernel_exit_time: it grows only like a
#: log; 2 fits depth 2 with the unit start at d = 1e4 (measured offset -2.40 to -2.51)
KERNEL_EXIT_MARGIN = 2.0


def _exit_offset(alpha, d, init, depth, w2):
    """lambda t_exit - ln(alpha) of kernel_exit_time (NaN if w2 is zero)."""
    from kernelphase.dichotomy import SYMBOLS, kernel_exit_time
    from .diagonal_net import init_scale
    import sympy as sp
    W = float(np.max(np.abs(w2)))
    if not W > 0:
        return float("nan")
    m, Ws = sp.symbols("m W", positive=True)
    e = kernel_exit_time(depth).subs({SYMBOLS["lam"]: 1, m: KERNEL_EXIT_MARGIN, Ws: W,
                                      SYMBOLS["a"]: init_scale(alpha, d, init)})
    return float(e) - float(np.log(alpha))


def _tg(alpha, lam):
    from kernelphase.dichotomy import SYMBOLS, grokking_time
    return float(grokking_time().subs({SYMBOLS["alpha"]: alpha, SYMBOLS["lam"]: lam}))


#: largest accepted sizes of the diagonal-net runs (memory is checked separately)
MAX_N = 10**5


def check_diag_params(task="sparse", d=10000, n=256, n_test=2000, alpha=128.0, lam=1e-3,
                      lr=0.01, t_end_factor=2.0, points=300, seed=0, gamma=25.0, init="unit",
                      loss="logistic", depth=2):
    r"""Check every argument of :func:`train_diag` and its memory need; raise ``ValueError``.

    ``alpha`` in (1, 1e6] (:math:`t_g=\ln\alpha/\lambda` must be positive; larger alpha
    stalls the stiff solver), ``lam`` in [1e-8, 1e3], ``lr`` in (0, 1e3], ``t_end_factor`` in (0, 100], ``points`` 10 to 1e5, ``depth`` 2 to 8, at most 8 GiB."""
    from kernelphase.dichotomy import check_depth
    from kernelphase.solvers.matrix_completion import check_memory
    check_depth(depth)
    check_choice("task", task, ("sparse", "misgrok"))
    d = check_int("d", d, 1, 10**8)
    n = check_int("n", n, 2, MAX_N)
    n_test = check_int("n_test", n_test, 1, 10**7)
    check_range("alpha", alpha, 1.0, 1e6, lo_open=True)
    check_range("lam", lam, 1e-8, 1e3)
    check_range("lr", lr, 0.0, 1e3, lo_open=True)
    check_range("t_end_factor", t_end_factor, 0.0, 100.0, lo_open=True)
    points = check_int("points", points, 10, 10**5)
    check_int("seed", seed, 0, 2**63 - 1)
    check_range("gamma", gamma, 0.0, 1e6)
    check_choice("init", init, ("unit", "ones"))
    check_choice("loss", loss, ("logistic", "exponential"))
    check_memory(f"d={d}, n={n}, n_test={n_test}",
                 8.0 * (3 * (n + n_test) * d + 8 * n * d + 4 * n * n + 6 * points * d))


def check_mc_params(d=97, frac=0.05, alpha=10.0, lam=1e-4, lr=0.1, steps=10**6,
                    record_every=1000, seed=0, checkpoint_every=None):
    """Check every argument of :func:`train_mc`; raise ``ValueError``. Returns ``n_obs``."""
    from .matrix_factorization import check_mf_params
    d = check_int("d", d, 2, 1000)   # ADMM: O(d^3) per iteration
    # alpha in (1, 1e8]: beyond, alpha^2 steps overflow at once (the run is then status 6)
    frac = check_range("frac", frac, 0.0, 1.0, lo_open=True, hi_open=True)
    n_obs = int(round(frac * d * d))
    if not 1 <= n_obs <= d * d - 1:
        raise ValueError(f"frac={frac!r} observes {n_obs} of the {d * d} entries; the valid "
                         f"range is 1 to {d * d - 1}")
    check_range("alpha", alpha, 1.0, 1e8, lo_open=True)
    check_range("lam", lam, 0.0, 1e3, lo_open=True)
    check_int("seed", seed, 0, 2**63 - 1)
    check_mf_params(d, alpha, lam, lr, steps, record_every, checkpoint_every)
    return n_obs


@dataclass(frozen=True)
class DiagRunResult(Result):
    r"""A diagonal-net run (:func:`train_diag`) against its two predictors.

    ``t_transition_measured`` is :func:`transition_time` of the test accuracy (NaN with
    status 7 when the run is too short to see the transition); ``t_g_predicted`` is
    :math:`\ln\alpha/\lambda`. ``status`` 6: the flow overflowed; 8: the ODE solver failed.

    Depth ``L`` (issue 15): the early predictor is the max-L2-margin classifier at every depth
    (:func:`kernelphase.dichotomy.diagonal_net_ntk`); the late one is the KKT point of
    :math:`\min\sum|w_k|^{2/L}` s.t. margin >= 1 found by
    :func:`kernelphase.solvers.margins.depth_max_margin` (the L1 max margin at L = 2).
    ``early_predictor_test_acc``/``late_predictor_test_acc`` are their test accuracies,
    ``cos_late_final`` the cosine of the final weights with the late predictor,
    ``late_predictor_objective``/``late_predictor_residual`` its objective and KKT residual.
    ``lambda_t_exit_predicted_minus_ln_alpha``: :func:`kernelphase.dichotomy.kernel_exit_time`
    with margin ``KERNEL_EXIT_MARGIN`` and the L2 solution of this data, minus ln(alpha).
    """
    model: str
    task: str
    depth: int
    t_g_predicted: float
    t_g_predicted_steps: float
    t_transition_measured: float
    t_transition_measured_steps: float
    lambda_t_transition_minus_ln_alpha: float
    plateau_test_acc: float
    final_test_acc: float
    l2_svm_test_acc: float
    l1_margin_test_acc: float
    cos_l2_plateau: float
    cos_l1_final: float
    final_norm: float
    lambda_t_exit_predicted_minus_ln_alpha: float
    early_predictor_test_acc: float
    late_predictor_test_acc: float
    cos_late_final: float
    late_predictor_objective: float
    late_predictor_residual: float
    curves: dict
    status: int
    message: str
    params: Mapping = field(default_factory=dict)
    #: misgrokking task only (NaN otherwise): exact population accuracies
    #: (:func:`~kernelphase.validation.diagonal_net.misgrok_population_accuracy`)
    plateau_population_acc: float = float("nan")
    final_population_acc: float = float("nan")
    l2_svm_population_acc: float = float("nan")
    l1_margin_population_acc: float = float("nan")


@dataclass(frozen=True)
class MCRunResult(Result):
    """A matrix-completion run (:func:`train_mc`) against its two predictors.

    ``status`` 6: GD diverged; 7: too short to measure the transition."""
    model: str
    t_g_predicted: float
    t_g_predicted_steps: float
    t_transition_measured: float
    t_transition_measured_steps: float
    zero_fill_test_mse: float
    nuclear_norm_test_mse: float
    nuclear_norm: float
    sqrt_nuclear_norm: float
    nuclear_norm_solver_residual: float
    plateau_test_mse: float
    final_test_mse: float
    final_norm: float
    final_distance_to_nuclear_norm_solution: float
    curves: dict
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class SweepAlphaResult(Result):
    r""":math:`\lambda t_{transition}-\ln\alpha` over alpha (:func:`sweep_alpha`).

    ``rows``: one dict per alpha with ``status``; the sweep's status is the first non-zero
    row status, or 7 when fewer than two transitions were measured (no slope)."""
    rows: tuple
    offset_spread: float
    slope_lambda_t_vs_ln_alpha: float
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


def _diag_problem(task, d, n, n_test, seed, gamma, depth=2):
    """Data set and its max-margin predictors (independent of alpha and lambda): L2, L1 and
    (``depth`` > 2) the depth-L late predictor, a :class:`DepthMarginResult` or None."""
    from kernelphase.solvers.margins import depth_max_margin, l1_max_margin, l2_max_margin
    from .diagonal_net import misgrok_dataset, sparse_dataset
    check_choice("task", task, ("sparse", "misgrok"))
    if task == "sparse":
        X, y, Xt, yt, w_star = sparse_dataset(d, n, n_test, seed=seed)
    else:
        X, y, Xt, yt, w_star = misgrok_dataset(d, n, n_test, gamma=gamma, seed=seed)
    late = depth_max_margin(X, y, depth) if depth != 2 else None
    return (X, y, Xt, yt, l2_max_margin(X, y), l1_max_margin(X, y), late, w_star)


def train_diag(task="sparse", d=10000, n=256, n_test=2000, alpha=128.0, lam=1e-3, lr=0.01,
               t_end_factor=2.0, points=300, seed=0, gamma=25.0, init="unit", loss="logistic",
               problem=None, depth=2, segments=10, checkpoint=None, progress=False):
    """Diagonal net on the sparse (grokking) or L2-separated (misgrokking) task.

    Integrates the exact gradient flow (:func:`~kernelphase.validation.diagonal_net.diagonal_flow`)
    of the depth-``depth`` net (2 to 8) up to ``t_end_factor * t_g`` and compares with the
    max-L2 and max-L1 margin classifiers and (depth > 2) the depth-L late predictor.
    ``problem`` may pass a precomputed ``_diag_problem`` (a sweep solves it once).
    The flow runs in ``segments`` pieces
    (:func:`~kernelphase.validation.diagonal_net.flow_in_segments`); ``checkpoint``, a
    :class:`kernelphase.io.RunDir`, saves the state after each and resumes after the last
    saved one (bit-identical). Returns a :class:`DiagRunResult`.

    Examples
    --------
    >>> from kernelphase.validation.dichotomy_runs import train_diag
    >>> r = train_diag(d=50, n=16, n_test=100, alpha=8.0, lam=0.05, lr=0.01, points=40)
    >>> r.task, r.model, r.status, round(r.final_test_acc, 2)
    ('sparse', 'diagonal', 0, 0.72)
    """
    from kernelphase.results import status_message
    from kernelphase.solvers.margins import cosine, linear_accuracy
    from .diagonal_net import flow_in_segments
    check_diag_params(task, d, n, n_test, alpha, lam, lr, t_end_factor, points, seed, gamma,
                      init, loss, depth)
    alpha, lam, lr, points, depth = float(alpha), float(lam), float(lr), int(points), int(depth)
    X, y, Xt, yt, l2, l1, late, w_star = problem or _diag_problem(task, d, n, n_test, seed,
                                                                   gamma, depth)
    if task == "misgrok":
        from .diagonal_net import misgrok_population_accuracy

        def pop_acc(w):
            return misgrok_population_accuracy(w, w_star, gamma)
    else:
        def pop_acc(w):
            return float("nan")
    w_late = l1.w if depth == 2 else late.w
    tg = _tg(alpha, lam)
    t = np.linspace(0.0, t_end_factor * tg, points + 1)[1:]
    traj = flow_in_segments(X, y, alpha, lam, t, segments, checkpoint, progress, init=init,
                            loss=loss, depth=depth)
    acc, tr_acc, c2, c1, norm, pop = [], [], [], [], [], []
    for i in range(len(t)):
        w = traj.w(i)
        acc.append(linear_accuracy(w, Xt, yt))
        pop.append(pop_acc(w))
        tr_acc.append(linear_accuracy(w, X, y))
        c2.append(cosine(w, l2.w))
        c1.append(cosine(w, l1.w))
        norm.append(np.sqrt(traj.sq_norm(i)))
    acc = np.array(acc)
    if traj.status != 0:
        t_cross, i_plateau, status, detail = (float("nan"), 0, traj.status,
                                              traj.message.partition(": ")[2] or None)
    else:
        t_cross, i_plateau, status, detail = transition_time(t, acc, tg)
    if status == 0 and late is not None and late.status != 0:
        status, detail = late.status, f"late predictor: {late.message}"
    with np.errstate(over="ignore", invalid="ignore"):
        kernel_norm = alpha * np.exp(-lam * t)
    params = dict(task=task, d=d, n=n, n_test=n_test, alpha=alpha, lam=lam, lr=lr, seed=seed,
                  gamma=gamma if task == "misgrok" else None, init=init, loss=loss,
                  t_end_factor=t_end_factor, points=points)
    if depth != 2:   # keeps the depth-2 summaries (and their provenance) as they were
        params["depth"] = depth
    return DiagRunResult(
        model="diagonal", task=task, depth=depth, params=params,
        t_g_predicted=tg, t_g_predicted_steps=tg / lr,
        t_transition_measured=t_cross, t_transition_measured_steps=t_cross / lr,
        lambda_t_transition_minus_ln_alpha=lam * t_cross - np.log(alpha),
        plateau_test_acc=float(acc[i_plateau]), final_test_acc=float(acc[-1]),
        l2_svm_test_acc=linear_accuracy(l2.w, Xt, yt),
        l1_margin_test_acc=linear_accuracy(l1.w, Xt, yt),
        cos_l2_plateau=c2[i_plateau], cos_l1_final=c1[-1],
        final_norm=float(norm[-1]),
        lambda_t_exit_predicted_minus_ln_alpha=_exit_offset(alpha, X.shape[1], init, depth,
                                                            l2.w),
        early_predictor_test_acc=linear_accuracy(l2.w, Xt, yt),
        late_predictor_test_acc=linear_accuracy(w_late, Xt, yt),
        cos_late_final=cosine(traj.w(len(t) - 1), w_late),
        late_predictor_objective=(float(np.abs(l1.w).sum()) if depth == 2
                                  else late.objective),
        late_predictor_residual=l1.residual if depth == 2 else late.residual,
        curves={"t": t, "steps": t / lr, "test_acc": acc, "train_acc": tr_acc,
                "cos_l2": c2, "cos_l1": c1, "norm": norm, "norm_kernel": kernel_norm,
                **({"population_acc": pop} if task == "misgrok" else {})},
        status=status, message=status_message(status, detail),
        plateau_population_acc=pop[i_plateau], final_population_acc=pop[-1],
        l2_svm_population_acc=pop_acc(l2.w), l1_margin_population_acc=pop_acc(l1.w))


def train_mc(d=97, frac=0.05, alpha=10.0, lam=1e-4, lr=0.1, steps=10**6, record_every=1000,
             seed=0, checkpoint=None, progress=None, checkpoint_every=None):
    """Matrix completion on the scaled multiplication table, GD against both predictors.

    ``checkpoint``: a :class:`kernelphase.io.RunDir` (see
    :func:`~kernelphase.validation.matrix_factorization.mf_gd`). Returns an
    :class:`MCRunResult`.

    Examples
    --------
    >>> from kernelphase.validation.dichotomy_runs import train_mc
    >>> r = train_mc(d=8, frac=0.4, alpha=2.0, lam=1e-2, lr=0.1, steps=2000, record_every=500)
    >>> r.model, round(r.zero_fill_test_mse, 4), r.status
    ('matrix_completion', 0.0793, 7)
    """
    from kernelphase.results import status_message
    from kernelphase.solvers.matrix_completion import (multiplication_table, nuclear_norm_completion,
                                                       observation_mask, heldout_mse,
                                                       zero_fill_completion)
    from .matrix_factorization import mf_gd
    n_obs = check_mc_params(d, frac, alpha, lam, lr, steps, record_every, seed,
                            checkpoint_every)
    d, alpha, lam, lr = int(d), float(alpha), float(lam), float(lr)
    Xs = multiplication_table(d)
    mask = observation_mask(d, n_obs, seed=seed)
    zf = zero_fill_completion(Xs, mask)
    nn = nuclear_norm_completion(Xs, mask)
    run = mf_gd(Xs, mask, alpha=alpha, lam=lam, lr=lr, steps=steps, record_every=record_every,
                checkpoint=checkpoint, progress=progress, checkpoint_every=checkpoint_every)
    t = run.step * lr
    tg = _tg(alpha, lam)
    if run.status != 0:
        tc, i_plateau, status, detail = (float("nan"), 0, run.status,
                                         run.message.partition(": ")[2] or None)
    else:
        tc, i_plateau, status, detail = transition_time(t, run.test_mse, tg)
    with np.errstate(over="ignore", invalid="ignore"):
        W = run.U @ run.U.T - run.V @ run.V.T
        dist = float(np.linalg.norm(W - nn.W) / np.linalg.norm(nn.W))
        kernel_norm = np.sqrt(2 * d) * alpha * np.exp(-lam * t)
    return MCRunResult(
        model="matrix_completion",
        params=dict(d=d, frac=frac, n_obs=n_obs, alpha=alpha, lam=lam, lr=lr,
                    steps=steps, record_every=record_every, seed=seed),
        t_g_predicted=tg, t_g_predicted_steps=tg / lr,
        t_transition_measured=tc, t_transition_measured_steps=tc / lr,
        zero_fill_test_mse=heldout_mse(zf, Xs, mask),
        nuclear_norm_test_mse=heldout_mse(nn.W, Xs, mask),
        nuclear_norm=nn.nuclear_norm, sqrt_nuclear_norm=float(np.sqrt(nn.nuclear_norm)),
        nuclear_norm_solver_residual=nn.residual,
        plateau_test_mse=float(run.test_mse[i_plateau]),
        final_test_mse=float(run.test_mse[-1]), final_norm=float(run.norm[-1]),
        final_distance_to_nuclear_norm_solution=dist,
        curves={"t": t, "steps": run.step, "test_mse": run.test_mse,
                "train_loss": run.train_loss, "norm": run.norm, "norm_kernel": kernel_norm},
        status=status, message=status_message(status, detail))


def sweep_alpha(alphas=(32, 64, 128), **kw):
    """Run :func:`train_diag` for each alpha; report lambda*t_transition - ln(alpha).

    ``alphas``: 2 to 50 distinct values in (1, 1e6]; ``depth`` (in ``kw``) 2 to 8. Returns a
    :class:`SweepAlphaResult`.

    Examples
    --------
    >>> from kernelphase.validation.dichotomy_runs import sweep_alpha
    >>> r = sweep_alpha(alphas=(4, 8), d=50, n=16, n_test=100, lam=0.05, lr=0.01, points=40)
    >>> len(r.rows), r.status
    (2, 7)
    """
    from kernelphase.results import status_message
    alphas = [float(a) for a in alphas]
    if len(alphas) < 2 or len(set(alphas)) != len(alphas) or len(alphas) > 50:
        raise ValueError(f"alphas={alphas!r} must hold 2 to 50 distinct values")
    for a in alphas:
        check_diag_params(**dict(kw, alpha=a))
    rows = []
    depth = kw.get("depth", 2)
    problem = _diag_problem(kw.get("task", "sparse"), kw.get("d", 10000), kw.get("n", 256),
                            kw.get("n_test", 2000), kw.get("seed", 0), kw.get("gamma", 25.0),
                            depth)
    for a in alphas:
        r = train_diag(alpha=a, problem=problem, **kw)
        row = {"alpha": a, "t_transition": r.t_transition_measured,
               "offset": r.lambda_t_transition_minus_ln_alpha,
               "plateau_test_acc": r.plateau_test_acc,
               "final_test_acc": r.final_test_acc, "status": r.status}
        if depth != 2:
            row.update(offset_predicted=r.lambda_t_exit_predicted_minus_ln_alpha,
                       early_predictor_test_acc=r.early_predictor_test_acc,
                       late_predictor_test_acc=r.late_predictor_test_acc,
                       cos_late_final=r.cos_late_final)
        rows.append(row)
    offs = np.array([r["offset"] for r in rows])
    ok = np.isfinite(offs)
    lam = kw.get("lam", 1e-3)
    if ok.sum() >= 2:
        spread = float(offs[ok].max() - offs[ok].min())
        slope = float(np.polyfit(np.log(np.array(alphas)[ok]),
                                 [lam * r["t_transition"] for r, g in zip(rows, ok) if g], 1)[0])
    else:
        spread = slope = float("nan")
    bad = [r for r in rows if r["status"] != 0]
    status, detail = 0, None
    if bad:
        status, detail = bad[0]["status"], (f"{len(bad)} of {len(rows)} alphas not measured "
                                            f"(first: alpha={bad[0]['alpha']:g})")
    elif ok.sum() < 2:
        status, detail = 7, "fewer than two transitions measured"
    return SweepAlphaResult(rows=tuple(rows), offset_spread=spread,
                            slope_lambda_t_vs_ln_alpha=slope, status=status,
                            message=status_message(status, detail),
                            params=dict(kw, alphas=alphas))


@styled
def plot_run(summary, path):
    """Figure of a run: test metric, cosines and norm against lambda*t, t_g marked.

    Examples
    --------
    >>> import os
    >>> from kernelphase.validation.dichotomy_runs import plot_run, train_diag
    >>> r = train_diag(d=50, n=16, n_test=100, alpha=8.0, lam=0.05, lr=0.01, points=40)
    >>> plot_run(r, "diag.png")
    >>> os.path.isfile("diag.png")
    True
    """
    c = summary.curves
    lam = summary.params["lam"]
    lt = lam * np.asarray(c["t"])
    diagonal = summary.model == "diagonal"
    fig, axes = subplots(1, 3 if diagonal else 2, figsize=(12 if diagonal else 8.5, 3.6))
    ax = axes[0]
    if diagonal:
        ax.plot(lt, c["test_acc"], label="test acc")
        ax.plot(lt, c["train_acc"], "--", label="train acc")
        ax.axhline(summary.l2_svm_test_acc, color="C2", lw=0.8, label="L2 SVM")
        ax.axhline(summary.l1_margin_test_acc, color="C3", lw=0.8, label="L1 max-margin")
        ax.set_ylabel(label("accuracy"))
        axes[1].plot(lt, c["cos_l2"], label="cos to L2 SVM")
        axes[1].plot(lt, c["cos_l1"], label="cos to L1 max-margin")
        axes[1].set_ylabel("cosine")
    else:
        ax.semilogy(lt, c["test_mse"], label="test MSE")
        ax.semilogy(lt, np.maximum(c["train_loss"], 1e-16), "--", label="train loss")
        ax.axhline(summary.zero_fill_test_mse, color="C2", lw=0.8, label="zero-fill")
        ax.axhline(summary.nuclear_norm_test_mse, color="C3", lw=0.8, label="min nuclear norm")
        ax.set_ylabel("MSE")
    for a in axes[:-1]:
        a.axvline(lam * summary.t_g_predicted, color="k", ls=":", lw=1, zorder=1,
                  label=r"$t_g=\ln\alpha/\lambda$")
    legend(ax, summary.params, ("alpha", "lam"), fontsize=7)
    if diagonal:
        legend(axes[1])
    axes[-1].semilogy(lt, c["norm"], label=r"$\|\theta\|$")
    axes[-1].semilogy(lt, c["norm_kernel"], ":", label=r"$\|\theta_0\|e^{-\lambda t}$")
    axes[-1].set_ylabel("parameter norm")
    legend(axes[-1])
    for a in axes:
        a.set_xlabel(label("lam_t"))
    save(fig, path, summary.params)


# --------------------------------------------------------------------------- modular addition

#: defaults of the modular-addition runs that the machine affords (p = 23; the paper's Fig. 2
#: uses p = 97, width 1024, train_frac 0.4, lr 0.002, lam 1e-4 and ~1e7 steps: MODULAR_PAPER)
MODULAR_DEFAULTS = dict(p=23, init_scale=1.0, lam=1e-3, lr=0.5, steps=40000, seed=0,
                        width=256, train_frac=0.8, record_every=50)
MODULAR_PAPER = dict(p=97, init_scale=1.0, lam=1e-4, lr=0.002, steps=10**7, seed=0,
                     width=1024, train_frac=0.4, record_every=10000)


def train_modular(p=23, init_scale=1.0, lam=1e-3, lr=0.5, steps=40000, seed=0, width=256,
                  train_frac=0.8, record_every=50, checkpoint=None, checkpoint_every=None,
                  progress=False, stop_when_grokked=False):
    r"""Modular addition with a two-layer ReLU MLP, large initialisation and weight decay
    (Lyu et al. 2023, Sec. 2, Fig. 2): the early (kernel) phase fits the training pairs and
    does not generalise; the late (margin) phase does, after
    :math:`t_g\approx\frac1\lambda\ln(\text{scale})+O(1/\lambda)`.

    Runs :func:`~kernelphase.validation.modular_mlp.train_modular_mlp` (same arguments) and
    returns its :class:`~kernelphase.validation.modular_mlp.ModularMLPResult`: ``t_train``,
    ``t_test`` (first steps with 95 % accuracy), ``delay = t_test - t_train`` and ``t_g_steps``
    :math:`=\ln(\text{scale})/(\eta\lambda)`.

    Examples
    --------
    >>> from kernelphase.validation.dichotomy_runs import train_modular
    >>> r = train_modular(p=5, width=16, steps=200, record_every=50, train_frac=0.8)
    >>> r.n_train, r.status
    (20, 7)
    """
    from .modular_mlp import train_modular_mlp
    return train_modular_mlp(p=p, init_scale=init_scale, lam=lam, lr=lr, steps=steps,
                             seed=seed, width=width, train_frac=train_frac,
                             record_every=record_every, checkpoint=checkpoint,
                             checkpoint_every=checkpoint_every, progress=progress,
                             stop_when_grokked=stop_when_grokked)


@dataclass(frozen=True)
class ModularSweepResult(Result):
    r"""Delays ``t_test - t_train`` over initialisation scales and weight decays
    (:func:`sweep_modular`, the paper's Fig. 2b and 2c).

    ``rows``: one dict per run (``init_scale, lam, t_train, t_test, delay, t_test_50,
    t_g_steps, final_test_acc, status``). ``delay_grows_with_scale``: the delays at fixed
    lambda increase with the scale; ``delay_shrinks_with_lam``: at fixed scale they decrease
    with lambda (None when fewer than two runs of that kind were measured). ``status`` is the first
    non-zero row status."""
    rows: tuple
    delay_grows_with_scale: object
    delay_shrinks_with_lam: object
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


def _monotone(rows, vary, fix, sign):
    """True/False if the measured delays along ``vary`` (at each fixed ``fix``) are strictly
    monotone in direction ``sign``; None when no group has two measured runs."""
    groups = {}
    for r in rows:
        if np.isfinite(r["delay"]):
            groups.setdefault(r[fix], []).append((r[vary], r["delay"]))
    verdict = None
    for pts in groups.values():
        if len(pts) < 2:
            continue
        pts.sort()
        dl = np.diff([d for _, d in pts])
        ok = bool(np.all(sign * dl > 0))
        verdict = ok if verdict is None else (verdict and ok)
    return verdict


def sweep_modular(scales=(1.0, 2.0, 4.0), lams=(3e-3,), scale_for_lams=1.0, lam_for_scales=None,
                  stop_when_grokked=True, **kw):
    """:func:`train_modular` over ``scales`` at ``lam_for_scales`` (default ``lams[0]``) and over
    ``lams`` at ``scale_for_lams``; returns a :class:`ModularSweepResult`. ``kw`` as
    :func:`train_modular` (``steps`` must cover the slowest run).

    Examples
    --------
    >>> from kernelphase.validation.dichotomy_runs import sweep_modular
    >>> r = sweep_modular(scales=(1.0, 2.0), lams=(1e-3,), p=5, width=16, steps=200,
    ...                   record_every=50, train_frac=0.8)
    >>> len(r.rows), r.status
    (2, 7)
    """
    from kernelphase.results import status_message
    from .modular_mlp import check_modular_mlp_params
    scales = [float(s) for s in scales]
    lams = [float(x) for x in lams]
    lam0 = float(lams[0] if lam_for_scales is None else lam_for_scales)
    runs = [(s, lam0) for s in scales] + [(float(scale_for_lams), x) for x in lams]
    runs = list(dict.fromkeys(runs))
    for s, x in runs:
        check_modular_mlp_params(**dict(MODULAR_DEFAULTS, **kw, init_scale=s, lam=x))
    rows = []
    for s, x in runs:
        r = train_modular(**dict(MODULAR_DEFAULTS, **kw, init_scale=s, lam=x,
                                 stop_when_grokked=stop_when_grokked))
        rows.append(dict(init_scale=s, lam=x, t_train=r.t_train, t_test=r.t_test,
                         delay=r.delay, t_test_50=r.t_test_50, t_g_steps=r.t_g_steps,
                         final_test_acc=r.final_test_acc, status=r.status))
    bad = [r for r in rows if r["status"] != 0]
    status = bad[0]["status"] if bad else 0
    detail = (f"{len(bad)} of {len(rows)} runs not measured (first: init_scale="
              f"{bad[0]['init_scale']:g}, lam={bad[0]['lam']:g})") if bad else None
    return ModularSweepResult(
        rows=tuple(rows),
        delay_grows_with_scale=_monotone([r for r in rows if r["lam"] == lam0], "init_scale",
                                         "lam", +1),
        delay_shrinks_with_lam=_monotone([r for r in rows if r["init_scale"] == scale_for_lams],
                                         "lam", "init_scale", -1),
        status=status, message=status_message(status, detail),
        params=dict(MODULAR_DEFAULTS, **kw, scales=scales, lams=lams,
                    scale_for_lams=scale_for_lams, lam_for_scales=lam0))


@styled
def plot_modular(res, path):
    """Figure of a modular run: train/test accuracy and the norm against steps (log axis),
    ``t_train``, ``t_test`` and the leading-order ``t_g`` marked.

    Examples
    --------
    >>> import os
    >>> from kernelphase.validation.dichotomy_runs import plot_modular, train_modular
    >>> r = train_modular(p=5, width=16, steps=200, record_every=50, train_frac=0.8)
    >>> plot_modular(r, "modular.png")
    >>> os.path.isfile("modular.png")
    True
    """
    c = res.curves
    s = np.maximum(np.asarray(c["step"], float), 1.0)
    fig, axes = subplots(1, 2, figsize=(9, 3.6))
    ax = axes[0]
    ax.semilogx(s, c["train_acc"], label="train acc")
    ax.semilogx(s, c["test_acc"], label="test acc")
    for v, ls, lab in ((res.t_train, "--", r"$t_\mathrm{train}$"),
                       (res.t_test, "-.", r"$t_\mathrm{test}$"),
                       (res.t_g_steps, ":", r"$\ln(\mathrm{scale})/(\eta\lambda)$")):
        if np.isfinite(v) and v > 0:
            ax.axvline(v, color="k", ls=ls, lw=0.8, zorder=1, label=lab)
    ax.set_xlabel(label("steps"))
    ax.set_ylabel(label("accuracy"))
    pr = res.params
    legend(ax, {"p": pr["p"], "scale": pr["init_scale"], "lam": pr["lam"]}, fontsize=7)
    axes[1].loglog(s, c["norm"], label=r"$\|\theta\|$")
    axes[1].set_xlabel(label("steps"))
    axes[1].set_ylabel(r"parameter norm $\|\theta\|$")
    save(fig, path, pr)
