r"""Paper reproductions of Kumar et al. 2023 (arXiv 2310.06110): Fig. 1, 3(a), 3(e), 4, data window.

Every run goes through :func:`kernelphase.validation.polynomial_net.train` (exact reduced
dynamics, checkpointed); outputs (CSV curves, PNG, JSON summary) record parameters, seed
and version via :func:`kernelphase.io.provenance`.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from kernelphase.figures import label, legend, save, styled, subplots
from kernelphase.io import atomic_write_json, provenance, write_csv

from kernelphase.results import Result

from .polynomial_net import (check_train_params, init_weights, kernel_regression_empirical,
                             make_data, ntk_gram, t_below, train)

__all__ = ["train_and_report", "sweep", "kernel_regression_line", "fit_exponent",
           "LazyRichRunResult", "LazyRichSweepResult"]


def kernel_regression_line(cfg, seed, n_test=1000):
    r"""Fig. 1 horizontal line: ridgeless regression with the NTK at init, test MSE.

    Two versions: the paper's (empirical finite-N NTK of the seed's :math:`W_0`,
    uncentred labels) and the infinite-width kernel :math:`u+\varepsilon^2u^2`.
    Same training data and :math:`W_0` as :func:`train` with this seed.

    Examples
    --------
    >>> from kernelphase.validation.lazy_rich_runs import kernel_regression_line
    >>> cfg = dict(D=5, P=30, N=10, alpha=1.0, eps=0.1, c=1.0, steps=100, convention="A",
    ...            centred=True)
    >>> line = kernel_regression_line(cfg, seed=0, n_test=200)
    >>> sorted(line)
    ['empirical_ntk', 'infinite_width']
    """
    rng = np.random.default_rng(seed)
    X, y, beta, s = make_data(cfg["D"], cfg["P"], rng, cfg["convention"])
    W = init_weights(cfg["N"], cfg["D"], rng)
    trng = np.random.default_rng([seed, 1])
    Xt, yt, _, _ = make_data(cfg["D"], n_test, trng, cfg["convention"], beta=beta)
    a, e = cfg["alpha"], cfg["eps"]
    K = ntk_gram(W, X, X, a, e)
    try:
        pred = ntk_gram(W, Xt, X, a, e) @ np.linalg.solve(K, y)
        emp = float(np.mean((pred - yt) ** 2))
    except np.linalg.LinAlgError:   # singular Gram matrix (P above the kernel's rank)
        emp = float("nan")
    try:
        inf = kernel_regression_empirical(lambda u: u + e ** 2 * u ** 2, X, y, Xt, yt)
    except np.linalg.LinAlgError:
        inf = float("nan")
    return dict(empirical_ntk=emp, infinite_width=inf)


def fit_exponent(x, t):
    """Least-squares slope of log t against log x over finite, positive t.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.lazy_rich_runs import fit_exponent
    >>> x = np.array([1.0, 2.0, 4.0, 8.0])
    >>> round(fit_exponent(x, 3 * x**1.5), 6), round(fit_exponent(x, [1.0, np.nan, 4.0, 8.0]), 6)
    (1.5, 1.0)
    """
    x, t = np.asarray(x, float), np.asarray(t, float)
    ok = np.isfinite(t) & (t > 0)
    if ok.sum() < 2 or np.unique(x[ok]).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(t[ok]), 1)[0])


@dataclass(frozen=True)
class LazyRichRunResult(Result):
    r"""Summary of one lazy-rich training run (:func:`train_and_report`).

    ``t_train``, ``t_test``: first recorded epoch with the loss below ``threshold``
    (:func:`~kernelphase.validation.polynomial_net.t_below`); ``grokking`` is
    :math:`\max(0, t_{test}-t_{train})`. ``status`` 0: both times measured; 6: the run
    diverged; 7: the run ended before a loss fell below the threshold (times ``nan``).
    Optional values that were not computed are ``nan`` (``None`` for
    ``kernel_regression_mse``).
    """
    t_train: float
    t_test: float
    grokking: float
    threshold: float
    relative_threshold: bool
    final_train_loss: float
    final_test_loss: float
    initial_test_loss: float
    weight_norm_initial: float
    weight_norm_final: float
    weight_decay: float
    model: str
    linearised_final_train_loss: float
    linearised_final_test_loss: float
    alignment_initial: float
    alignment_final: float
    kernel_regression_mse: Optional[dict]
    provenance: dict
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


def _measure(run, threshold, relative):
    """(t_train, t_test, grokking, status, detail) of a run: the one grokking measure."""
    ep = run.epoch
    thr_tr, thr_te = ((threshold * run.train[0], threshold * run.test[0]) if relative
                      else (threshold, threshold))
    tt = t_below(ep, run.train, thr_tr)
    ts = t_below(ep, run.test, thr_te)
    g = float(max(0.0, ts - tt)) if np.isfinite(ts) and np.isfinite(tt) else float("nan")
    if run.status != 0:
        return tt, ts, g, run.status, run.message.partition(": ")[2] or None
    missing = [n for n, v in (("train", tt), ("test", ts)) if not np.isfinite(v)
               and not (n == "train" and run.params.get("model") == "population")]
    if missing:
        return tt, ts, g, 7, (f"{' and '.join(missing)} loss never fell below the threshold "
                               f"in {int(ep[-1])} steps; raise --steps")
    return tt, ts, g, 0, None


def train_and_report(cfg, seed=0, model="network", out=None, threshold=0.1,
                     record_every=10, with_linearised=False, align_points=0,
                     progress=False, kr_line=True, relative=False, checkpoint=None,
                     checkpoint_seconds=30.0):
    """Run one training (and optionally its linearisation); return a
    :class:`LazyRichRunResult` and, with ``out`` (an existing folder), write
    ``curves.csv``, ``alignment.csv``, ``curves.png`` and ``summary.json`` into it.

    ``checkpoint``: a :class:`kernelphase.io.RunDir` (see
    :func:`~kernelphase.validation.polynomial_net.train`).

    Examples
    --------
    >>> from kernelphase.validation.lazy_rich_runs import train_and_report
    >>> cfg = dict(D=5, P=20, N=10, alpha=1.0, eps=0.1, c=1.0, steps=300, convention="A",
    ...            centred=True)
    >>> r = train_and_report(cfg, seed=0, record_every=100, threshold=0.5, kr_line=False)
    >>> r.model, r.t_train <= r.t_test or r.status == 7, r.final_test_loss < r.initial_test_loss
    ('network', True, True)
    """
    from kernelphase._checks import check_int, check_range
    from kernelphase.results import status_message
    check_range("threshold", threshold, 0, math.inf, lo_open=True)
    check_int("align_points", align_points, 0, 10**5)
    if kr_line and model == "network":
        from kernelphase.solvers.matrix_completion import check_memory
        P, D = int(cfg["P"]), int(cfg["D"])
        check_memory(f"kernel-regression line with P={P}, D={D}",
                     8.0 * (4 * P * P + 4000 * P + 1000 * D + 2 * P * cfg["N"]))
    kw = dict(D=cfg["D"], P=cfg["P"], N=cfg["N"], alpha=cfg["alpha"], eps=cfg["eps"],
              c=cfg["c"], steps=cfg["steps"], seed=seed, convention=cfg["convention"],
              centred=cfg["centred"], record_every=record_every, progress=progress)
    run = train(model=model, n_test_align=align_points, checkpoint=checkpoint,
                checkpoint_seconds=checkpoint_seconds, **kw)
    lin = train(model="linearised", **kw) if with_linearised and model != "linearised" else None
    tt, ts, g, status, detail = _measure(run, threshold, relative)
    nan = float("nan")
    kr = kernel_regression_line(cfg, seed) if kr_line and model == "network" else None
    params = dict(cfg, seed=seed, model=model, record_every=record_every, threshold=threshold,
                  relative=relative, with_linearised=with_linearised,
                  align_points=align_points)
    res = LazyRichRunResult(
        t_train=tt, t_test=ts, grokking=g, threshold=threshold, relative_threshold=relative,
        final_train_loss=float(run.train[-1]), final_test_loss=float(run.test[-1]),
        initial_test_loss=float(run.test[0]), weight_norm_initial=float(run.weight_norm[0]),
        weight_norm_final=float(run.weight_norm[-1]), weight_decay=0.0, model=model,
        linearised_final_train_loss=float(lin.train[-1]) if lin is not None else nan,
        linearised_final_test_loss=float(lin.test[-1]) if lin is not None else nan,
        alignment_initial=float(run.alignment[0]) if len(run.alignment) else nan,
        alignment_final=float(run.alignment[-1]) if len(run.alignment) else nan,
        kernel_regression_mse=kr,
        provenance=provenance(dict(cfg, model=model, record_every=record_every), seed),
        status=status, message=status_message(status, detail), params=params)
    if out is not None:
        _write_run(out, run, lin, res)
    return res


def _write_run(out, run, lin, res):
    cols = ["epoch", "train", "test", "t1", "t2", "t3", "weight_norm"]
    rows = [[getattr(run, k)[i] for k in cols] for i in range(len(run.epoch))]
    if lin is not None:
        cols += ["lin_train", "lin_test"]
        for i, r in enumerate(rows):
            r += ([lin.train[i], lin.test[i]] if i < len(lin.epoch) else [np.nan, np.nan])
    write_csv(os.path.join(out, "curves.csv"), cols, rows)
    if len(run.alignment):
        write_csv(os.path.join(out, "alignment.csv"), ["epoch", "alignment"],
                  zip(run.alignment_epoch, run.alignment))
    _plot(run, lin, res, os.path.join(out, "curves.png"))
    atomic_write_json(os.path.join(out, "summary.json"), res)


@styled
def _plot(run, lin, summary, path):
    """Losses (with the linearised model and kernel regression), weight norm and alignment,
    and the loss terms against epoch; the drop times t_train, t_test marked (dotted)."""
    fig, ax = subplots(1, 3, figsize=(12, 3.6))
    ep = np.maximum(run.epoch, 1)
    ax[0].loglog(ep, run.train, "C0--", label="train")
    ax[0].loglog(ep, run.test, "C0-", label="test")
    if lin is not None:
        lep = np.maximum(lin.epoch, 1)
        ax[0].loglog(lep, lin.train, "k--", lw=1, label="linearised train")
        ax[0].loglog(lep, lin.test, "k-", lw=1, label="linearised test")
    kr = summary.kernel_regression_mse
    if kr:
        ax[0].axhline(kr["empirical_ntk"], color="C2", ls=":", label="kernel regression (NTK$_0$)")
    for t, ls, lab in ((summary.t_train, "--", r"$t_\mathrm{train}$"),
                       (summary.t_test, ":", r"$t_\mathrm{test}$")):
        if math.isfinite(t):
            ax[0].axvline(max(t, 1), color="0.35", ls=ls, lw=0.8, zorder=1, label=lab)
    ax[0].set_xlabel(label("epoch"))
    ax[0].set_ylabel(label("loss"))
    legend(ax[0], summary.params, ("alpha", "eps", "P", "N"), fontsize=7)
    ax[1].semilogx(ep, run.weight_norm, "C1--", label=r"$\|W\|_F$")
    if len(run.alignment):
        a2 = ax[1].twinx()
        a2.semilogx(np.maximum(run.alignment_epoch, 1), run.alignment, color="0.5")
        a2.set_ylabel("NTK alignment (grey)")
    ax[1].set_xlabel(label("epoch"))
    ax[1].set_ylabel(r"weight norm $\|W\|_F$")
    for k, lab in (("t1", "variance"), ("t2", "alignment"), ("t3", "linear")):
        ax[2].loglog(ep, getattr(run, k), label=lab)
    ax[2].loglog(ep, run.test, "k", label="test")
    ax[2].set_xlabel(label("epoch"))
    ax[2].set_ylabel("test-loss terms")
    legend(ax[2], fontsize=7)
    save(fig, path, summary.params, dpi=120)


@dataclass(frozen=True)
class LazyRichSweepResult(Result):
    """Grokking times over an alpha x eps grid (:func:`sweep`).

    ``runs``: one dict per grid point with ``alpha, eps, t_train, t_test, grokking, gap,
    theory_t_grok, status``; ``status`` of the sweep is 0 when every point was measured,
    else the first non-zero point status (6 diverged, 7 run too short).
    """
    runs: tuple
    threshold: float
    relative_threshold: bool
    fitted_exponent: float
    theory_exponent: float
    provenance: dict
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


MAX_GRID = 400


def sweep(cfg, alphas, epss, seed=0, out=None, threshold=0.1, record_every=10,
          progress=False, relative=False):
    r"""t_train, t_test and the amount of grokking :math:`\max(0, t_{test}-t_{train})`
    (Fig. 3(e)) over ``alphas`` x ``epss``; fitted exponent of t_test vs alpha vs theory.

    ``relative``: the threshold is a fraction of each curve's initial value (Fig. 3(a)
    plots curves divided by their initial value); otherwise absolute (Fig. 3(e)).
    With ``out`` (an existing folder) ``sweep.csv``, ``sweep.json`` and, for a grid,
    ``grokking_grid.png`` are written into it. Returns a :class:`LazyRichSweepResult`.

    Examples
    --------
    >>> from kernelphase.validation.lazy_rich_runs import sweep
    >>> cfg = dict(D=5, P=20, N=10, alpha=1.0, eps=0.1, c=1.0, steps=200, convention="A",
    ...            centred=True)
    >>> r = sweep(cfg, alphas=[0.5, 1.0], epss=[0.1], record_every=100, threshold=0.5)
    >>> len(r.runs), sorted(r.runs[0])[:4]
    (2, ['alpha', 'diverged', 'eps', 'gap'])
    """
    from kernelphase._checks import check_range
    from kernelphase.lazy_rich import grokking_time
    from kernelphase.results import status_message
    alphas, epss = [float(a) for a in alphas], [float(e) for e in epss]
    for name, vals in (("alphas", alphas), ("eps_values", epss)):
        if not vals or len(set(vals)) != len(vals):
            raise ValueError(f"{name}={vals!r} must be a non-empty list of distinct values")
    if len(alphas) * len(epss) > MAX_GRID:
        raise ValueError(f"the grid has {len(alphas)} x {len(epss)} points; the valid range "
                         f"is at most {MAX_GRID}")
    check_range("threshold", threshold, 0, math.inf, lo_open=True)
    for e in epss:
        for a in alphas:
            check_train_params(cfg["D"], cfg["P"], cfg["N"], a, e, cfg["c"], cfg["steps"],
                               seed, cfg["convention"], "network", record_every)
    runs = []
    for e in epss:
        for a in alphas:
            c = dict(cfg, alpha=a, eps=e)
            r = train(D=c["D"], P=c["P"], N=c["N"], alpha=a, eps=e, c=c["c"], steps=c["steps"],
                      seed=seed, convention=c["convention"], centred=c["centred"],
                      record_every=record_every, progress=progress,
                      stop_threshold=None if relative else threshold)
            tt, ts, g, st, _ = _measure(r, threshold, relative)
            s = 2.0 if c["convention"] == "B" else 1.0
            try:
                th = grokking_time(a, e, c["D"], c["c"], s=s)
            except (ZeroDivisionError, ValueError, OverflowError):
                th = float("nan")   # eps = 0: no rich phase, no grokking time
            runs.append(dict(alpha=a, eps=e, t_train=tt, t_test=ts, grokking=g,
                             diverged=r.status == 6, gap=ts - tt, theory_t_grok=th, status=st))
    e0 = epss[0]
    sel = [r for r in runs if r["eps"] == e0]
    fitted = fit_exponent([r["alpha"] for r in sel], [r["t_test"] for r in sel])
    theory = fit_exponent([r["alpha"] for r in sel], [r["theory_t_grok"] for r in sel])
    bad = [r for r in runs if r["status"] != 0]
    status = bad[0]["status"] if bad else 0
    detail = (f"{len(bad)} of {len(runs)} points not measured (first: alpha={bad[0]['alpha']:g}, "
              f"eps={bad[0]['eps']:g})" if bad else None)
    params = dict(cfg, alphas=alphas, eps_values=epss, seed=seed, threshold=threshold,
                  relative=relative, record_every=record_every)
    res = LazyRichSweepResult(runs=tuple(runs), threshold=threshold,
                              relative_threshold=relative, fitted_exponent=fitted,
                              theory_exponent=theory,
                              provenance=provenance(dict(cfg, alphas=alphas, eps_values=epss),
                                                    seed),
                              status=status, message=status_message(status, detail),
                              params=params)
    if out is not None:
        write_csv(os.path.join(out, "sweep.csv"), list(runs[0]),
                  [list(r.values()) for r in runs])
        atomic_write_json(os.path.join(out, "sweep.json"), res)
        if len(epss) > 1 and len(alphas) > 1:
            _plot_grid(runs, alphas, epss, os.path.join(out, "grokking_grid.png"), params)
    return res


@styled
def _plot_grid(runs, alphas, epss, path, params=None):
    """Fig. 3(e): amount of grokking over (eps, alpha), nan (never below threshold) grey."""
    import matplotlib
    G = np.full((len(alphas), len(epss)), np.nan)
    for r in runs:
        G[alphas.index(r["alpha"]), epss.index(r["eps"])] = r["grokking"]
    fig, ax = subplots(figsize=(4.8, 3.8))
    cmap = matplotlib.colormaps["OrRd"].copy()
    cmap.set_bad("0.7")
    ia, ie = np.argsort(alphas), np.argsort(epss)   # cells centred on the values run
    xs, ys = np.asarray(epss, float)[ie], np.asarray(alphas, float)[ia]
    im = ax.pcolormesh(xs, ys, np.ma.masked_invalid(G[ia][:, ie]), cmap=cmap, shading="nearest")
    if len(xs) <= 8:
        ax.set_xticks(xs)
    if len(ys) <= 8:
        ax.set_yticks(ys)
    fig.colorbar(im, label=r"$t_\mathrm{test}-t_\mathrm{train}$ (epochs; grey: not reached)")
    ax.set_xlabel(r"kernel alignment $\epsilon$")
    ax.set_ylabel(r"laziness $\alpha$")
    save(fig, path, params, dpi=120)
