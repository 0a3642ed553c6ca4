r"""Paper reproductions of Kumar et al. 2023 (arXiv 2310.06110) beyond the polynomial target:
Fig. 2 (modular addition without weight decay, :func:`fig2`) and Fig. 5 / Sec. 6.1 (grokking on
arbitrary data through kernel eigenvectors, :func:`fig5`).

Both return a :class:`kernelphase.results.Result`; with ``out`` (an existing folder) they
write CSV curves, a PNG and ``summary.json`` into it.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase.io import atomic_write_json, provenance, savefig_atomic, write_csv
from kernelphase.results import Result

__all__ = ["FIG2", "FIG5", "Fig2Result", "Fig5Result", "fig2", "fig5", "eigenvector_labels",
           "train_on_labels"]

#: Fig. 2 parameters (theory note Sec. 8): p = 23, 90 % of the table, N = 100,
#: lr = 100/alpha^2, alpha = scale^2, scales {0.5, 1, 1.5, 2}, 1e5 epochs in the sweep
FIG2 = dict(p=23, N=100, train_fraction=0.9, scales=(0.5, 1.0, 1.5, 2.0), steps=100_000,
            lr0=100.0, scale_power=2)

#: Fig. 5 parameters (theory note Sec. 8): convention B, P = D = 100, N = 2, alpha = 1,
#: eps = 0.25, eta = 0.5 N / alpha^2, 25 000 epochs, centred loss
FIG5 = dict(D=100, P=100, N=2, alpha=1.0, eps=0.25, c=0.5, steps=25_000,
            label_indices=(1, 5, 70, 75, 100, 150))


# --------------------------------------------------------------------------- Fig. 2

@dataclass(frozen=True)
class Fig2Result(Result):
    """Accuracy-jump times of the Fig. 2 runs, one dict per scale in ``runs``:
    ``scale, alpha, lr, t_train_acc, t_test_acc, delay, final_train_acc, final_test_acc,
    final_train_loss, final_test_loss, weight_norm_initial, weight_norm_final, status``.
    ``status`` 0 when every scale was measured, else the first non-zero run status."""
    runs: tuple
    acc_level: float
    provenance: dict
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


def fig2(scales=FIG2["scales"], p=FIG2["p"], N=FIG2["N"], steps=FIG2["steps"],
         train_fraction=FIG2["train_fraction"], seed=0, record_every=100, acc_level=0.9,
         lr0=FIG2["lr0"], scale_power=FIG2["scale_power"], out=None, checkpoint=None,
         checkpoint_seconds=30.0, progress=False):
    r"""Fig. 2: train the quadratic network on modular addition for each output ``scale``
    (:math:`\alpha = \mathrm{scale}^{\rm scale\_power}`), no weight decay; record train/test
    accuracy, MSE and weight norm against time, and the accuracy-jump times.

    ``checkpoint``: a :class:`kernelphase.io.RunDir` (one state file per scale). With
    ``out``: ``curves_scale<s>.csv``, ``fig2.png`` (accuracy and weight norm, MSE, accuracy
    against scale) and ``summary.json``. Returns a :class:`Fig2Result`.
    """
    from kernelphase._checks import check_int
    from kernelphase.results import status_message
    from .modular_net import alpha_from_scale, check_modular_params, train_modular
    scales = [float(s) for s in scales]
    if not scales or len(set(scales)) != len(scales) or len(scales) > 50:
        raise ValueError(f"scales={scales!r} must be 1 to 50 distinct values")
    power = check_int("scale_power", scale_power, 1, 4)
    alphas = [alpha_from_scale(s, power) for s in scales]
    for a in alphas:
        check_modular_params(p, N, a, steps, train_fraction, seed, record_every, lr0)
    runs, curves = [], []
    for i, (s, a) in enumerate(zip(scales, alphas)):
        r = train_modular(p=p, N=N, alpha=a, steps=steps, train_fraction=train_fraction,
                          seed=seed, record_every=record_every, acc_level=acc_level, lr0=lr0,
                          checkpoint=checkpoint, checkpoint_name=f"checkpoint_modular_{i}.npz",
                          checkpoint_seconds=checkpoint_seconds, progress=progress)
        curves.append(r)
        delay = (r.t_test_acc - r.t_train_acc if math.isfinite(r.t_test_acc)
                 and math.isfinite(r.t_train_acc) else float("nan"))
        runs.append(dict(scale=s, alpha=a, lr=r.lr, t_train_acc=r.t_train_acc,
                         t_test_acc=r.t_test_acc, delay=delay,
                         final_train_acc=float(r.train_acc[-1]),
                         final_test_acc=float(r.test_acc[-1]),
                         final_train_loss=float(r.train_loss[-1]),
                         final_test_loss=float(r.test_loss[-1]),
                         weight_norm_initial=float(r.weight_norm[0]),
                         weight_norm_final=float(r.weight_norm[-1]), status=r.status))
    bad = [r for r in runs if r["status"] != 0]
    status = bad[0]["status"] if bad else 0
    hint = "lower lr0" if status == 6 else "raise steps"
    detail = (f"{len(bad)} of {len(runs)} scales not measured (first: scale="
              f"{bad[0]['scale']:g}; {hint})" if bad else None)
    params = dict(scales=scales, p=p, N=N, steps=steps, train_fraction=train_fraction,
                  seed=seed, record_every=record_every, acc_level=acc_level, lr0=lr0,
                  scale_power=power)
    res = Fig2Result(runs=tuple(runs), acc_level=float(acc_level),
                     provenance=provenance(params, seed), status=status,
                     message=status_message(status, detail), params=params)
    if out is not None:
        cols = ["epoch", "train_loss", "test_loss", "train_acc", "test_acc", "weight_norm"]
        for s, r in zip(scales, curves):
            write_csv(os.path.join(out, f"curves_scale{s:g}.csv"), cols,
                      zip(*(getattr(r, k) for k in cols)))
        _plot_fig2(scales, curves, res, os.path.join(out, "fig2.png"))
        atomic_write_json(os.path.join(out, "summary.json"), res)
    return res


def _plot_fig2(scales, curves, res, path):
    from kernelphase.figures import subplots
    fig, ax = subplots(1, 3, figsize=(13, 3.6))
    for j, (s, r) in enumerate(zip(scales, curves)):
        ep = np.maximum(r.epoch, 1)
        ax[0].semilogx(ep, r.train_acc, f"C{j}--", lw=1)
        ax[0].semilogx(ep, r.test_acc, f"C{j}-", label=f"scale {s:g}")
        ax[1].loglog(ep, r.train_loss, f"C{j}--", lw=1)
        ax[1].loglog(ep, r.test_loss, f"C{j}-", label=f"scale {s:g}")
    a2 = ax[0].twinx()
    i1 = scales.index(1.0) if 1.0 in scales else 0
    a2.semilogx(np.maximum(curves[i1].epoch, 1), curves[i1].weight_norm, "k:",
                label=f"|W|+|A| (scale {scales[i1]:g})")
    a2.set_ylabel("weight norm")
    a2.legend(fontsize=7, loc="center right")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("accuracy (dashed train)")
    ax[0].legend(fontsize=7, loc="upper left")
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("MSE (dashed train)")
    ax[2].plot(scales, [r.train_acc[-1] for r in curves], "o--", label="train")
    ax[2].plot(scales, [r.test_acc[-1] for r in curves], "o-", label="test")
    ax[2].set_xlabel("output scale"); ax[2].set_ylabel("final accuracy"); ax[2].legend(fontsize=7)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)


# --------------------------------------------------------------------------- Fig. 5

def eigenvector_labels(K, k):
    r"""Labels of Sec. 6.1: the ``k``-th eigenvector (1-based, eigenvalues in descending
    order) of the Gram matrix ``K`` with its mean subtracted.

    Sign fixed so that the entry of largest magnitude is positive. Returns
    ``(y, eigenvalues_descending)``; ``y`` has the eigenvector's unit norm before centring.
    """
    from kernelphase._checks import check_int
    n = K.shape[0]
    k = check_int("label_index", k, 1, n)
    lam, vec = np.linalg.eigh(K)
    lam, vec = lam[::-1], vec[:, ::-1]
    v = vec[:, k - 1].copy()
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    return v - v.mean(), lam


def train_on_labels(W0, X, y, Xt, yt, alpha, eps, lr, steps, record_every=10, centred=True):
    r"""Full-batch GD on :math:`W` of :math:`f = \frac\alpha N\sum_i\varphi(w_i\cdot x)`,
    :math:`\varphi(h) = h + \frac\varepsilon2h^2`, on arbitrary labels; MSE without ½ of
    :math:`f - f_0` (``centred``) on ``(X, y)``, test MSE on ``(Xt, yt)``.

    Plain numpy (the reduced dynamics of :mod:`kernelphase.solvers.order_dynamics` assumes
    the quadratic teacher for its test loss). Returns ``(epochs, train, test)`` arrays;
    losses are ``nan`` after the first non-finite one.
    """
    W = np.array(W0, float)
    N = W.shape[0]
    P = X.shape[0]

    def out(W, X):
        H = X @ W.T
        return alpha * np.mean(H + 0.5 * eps * H * H, axis=1), H

    f0 = out(W, X)[0] if centred else 0.0
    ft0 = out(W, Xt)[0] if centred else 0.0
    nrec = steps // record_every + 1
    ep = np.arange(nrec, dtype=float) * record_every
    tr, te = np.full(nrec, np.nan), np.full(nrec, np.nan)
    with np.errstate(over="ignore", invalid="ignore"):
        for r in range(nrec):
            for j in range(record_every if r > 0 else 0):
                f, H = out(W, X)
                e = f - f0 - y
                W -= lr * (2.0 * alpha / (N * P)) * (((1.0 + eps * H) * e[:, None]).T @ X)
            f = out(W, X)[0]
            tr[r] = np.mean((f - f0 - y) ** 2)
            te[r] = np.mean((out(W, Xt)[0] - ft0 - yt) ** 2)
            if not (np.isfinite(tr[r]) and np.isfinite(te[r])):
                break
    return ep, tr, te


@dataclass(frozen=True)
class Fig5Result(Result):
    r"""Sec. 6.1 / Fig. 5: one dict per label index in ``runs``: ``k``, ``eigenvalue``,
    ``eigenvalue_ratio`` (:math:`\lambda_k/\lambda_1`), ``alignment`` (the paper's CKA of the
    labels with the initial NTK on all 2P points, theory note Sec. 3.6), ``t_train``,
    ``t_test`` (first recorded epoch with the loss below ``threshold`` times its initial
    value; ``nan``: never within the run), ``delay`` (t_test / t_train),
    ``final_train_rel``, ``final_test_rel``, ``min_test_rel`` (losses over their initial
    value), ``groks``: the test loss reaches the threshold at least ``min_delay`` times later
    than the train loss. ``status`` 0: every run finished with finite losses; 6: one
    diverged. A test loss that never falls is a result here (no grokking), not status 7.
    """
    runs: tuple
    threshold: float
    min_delay: float
    provenance: dict
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


def fig5(label_indices=FIG5["label_indices"], D=FIG5["D"], P=FIG5["P"], N=FIG5["N"],
         alpha=FIG5["alpha"], eps=FIG5["eps"], c=FIG5["c"], steps=FIG5["steps"], seed=0,
         record_every=10, threshold=0.5, min_delay=10.0, out=None):
    r"""Grokking on arbitrary data through kernel eigenvectors (Sec. 6.1, Fig. 5).

    Draw 2P convention-B inputs and :math:`W_0` (``default_rng(seed)``: inputs, then
    weights), form the empirical NTK Gram matrix at init on all 2P points
    (:func:`kernelphase.validation.polynomial_net.ntk_gram`), and for each ``k`` take its
    k-th eigenvector, mean subtracted (:func:`eigenvector_labels`), as labels; train on the
    first P points from :math:`W_0` (:func:`train_on_labels`, centred loss,
    :math:`\eta = cN/\alpha^2`) and test on the other P. With ``out``: ``curves_k<k>.csv``,
    ``fig5.png``, ``summary.json``. Returns a :class:`Fig5Result`.
    """
    from kernelphase._checks import check_int, check_range
    from kernelphase.results import status_message
    from .polynomial_net import alignment, check_train_params, init_weights, make_data, ntk_gram
    check_train_params(D, P, N, alpha, eps, c, steps, seed, "B", "network", record_every)
    D, P, N, steps = int(D), int(P), int(N), int(steps)
    if 2 * P > 20_000:
        raise ValueError(f"P={P} gives a {2 * P} x {2 * P} Gram matrix; the valid range is "
                         f"P <= 10000")
    ks = [check_int("label_index", k, 1, 2 * P) for k in label_indices]
    if not ks or len(set(ks)) != len(ks) or len(ks) > 50:
        raise ValueError(f"label_indices={list(label_indices)!r} must be 1 to 50 distinct "
                         f"integers in [1, {2 * P}]")
    threshold = check_range("threshold", threshold, 0, 1, lo_open=True, hi_open=True)
    min_delay = check_range("min_delay", min_delay, 1, 1e9)
    rng = np.random.default_rng(seed)
    X = make_data(D, 2 * P, rng, "B")[0]
    W0 = init_weights(N, D, rng)
    K = ntk_gram(W0, X, X, alpha, eps)
    lr = c * N / alpha ** 2
    runs, curves, status = [], [], 0
    from threadpoolctl import threadpool_limits
    for k in ks:
        y, lam = eigenvector_labels(K, k)
        with threadpool_limits(1):
            ep, tr, te = train_on_labels(W0, X[:P], y[:P], X[P:], y[P:], alpha, eps, lr, steps,
                                         record_every)
        curves.append((ep, tr, te))
        rtr, rte = tr / tr[0], te / te[0]
        ok = np.isfinite(rtr) & np.isfinite(rte)
        if not ok.all():
            status = status or 6
        i_tr = np.flatnonzero(ok & (rtr < threshold))
        i_te = np.flatnonzero(ok & (rte < threshold))
        t_tr = float(ep[i_tr[0]]) if i_tr.size else float("nan")
        t_te = float(ep[i_te[0]]) if i_te.size else float("nan")
        delay = t_te / t_tr if i_tr.size and i_te.size and t_tr > 0 else float("nan")
        runs.append(dict(k=k, eigenvalue=float(lam[k - 1]),
                         eigenvalue_ratio=float(lam[k - 1] / lam[0]),
                         alignment=alignment(K, y), t_train=t_tr, t_test=t_te, delay=delay,
                         final_train_rel=float(rtr[ok][-1]), final_test_rel=float(rte[ok][-1]),
                         min_test_rel=float(np.min(rte[ok])),
                         groks=bool(math.isfinite(delay) and delay >= min_delay)))
    params = dict(label_indices=ks, D=D, P=P, N=N, alpha=alpha, eps=eps, c=c, steps=steps,
                  seed=seed, record_every=record_every, threshold=threshold,
                  min_delay=min_delay, convention="B", centred=True)
    detail = "non-finite loss; lower c" if status == 6 else None
    res = Fig5Result(runs=tuple(runs), threshold=threshold, min_delay=min_delay,
                     provenance=provenance(params, seed), status=status,
                     message=status_message(status, detail), params=params)
    if out is not None:
        for k, (ep, tr, te) in zip(ks, curves):
            write_csv(os.path.join(out, f"curves_k{k}.csv"), ["epoch", "train", "test"],
                      zip(ep, tr, te))
        _plot_fig5(ks, curves, res, os.path.join(out, "fig5.png"))
        atomic_write_json(os.path.join(out, "summary.json"), res)
    return res


def _plot_fig5(ks, curves, res, path):
    from kernelphase.figures import subplots
    fig, ax = subplots(1, 2, figsize=(10, 3.6))
    for j, (k, (ep, tr, te)) in enumerate(zip(ks, curves)):
        e = np.maximum(ep, 1)
        ax[0].loglog(e, tr / tr[0], f"C{j}--", lw=1)
        ax[0].loglog(e, te / te[0], f"C{j}-", label=f"k={k}")
    ax[0].axhline(res.threshold, color="0.5", ls=":")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("MSE / initial (dashed train)")
    ax[0].legend(fontsize=7)
    ax[1].semilogx([r["alignment"] for r in res.runs], [r["final_test_rel"] for r in res.runs],
                   "o")
    for r in res.runs:
        ax[1].annotate(str(r["k"]), (r["alignment"], r["final_test_rel"]), fontsize=7)
    ax[1].set_xlabel("label alignment with NTK at init")
    ax[1].set_ylabel("final test MSE / initial")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)
