r"""Paper reproductions of Kumar et al. 2023 (arXiv 2310.06110) beyond the polynomial target:
Fig. 2 (modular addition without weight decay, :func:`fig2`), Fig. 5 / Sec. 6.1 (grokking on
arbitrary data through kernel eigenvectors, :func:`fig5`) and Fig. 12 (the Fig. 4 network with
trained read-outs, :func:`fig12`).

All return a :class:`kernelphase.results.Result`; with ``out`` (an existing folder) they
write CSV curves, a PNG and ``summary.json`` into it.
"""
import math
import os
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernelphase.figures import label, legend, save, styled, subplots
from kernelphase.io import atomic_write_json, provenance, write_csv
from kernelphase.results import Result

__all__ = ["FIG2", "FIG5", "FIG12", "Fig2Result", "Fig5Result", "Fig12Result", "fig2", "fig5",
           "fig12", "eigenvector_labels", "train_on_labels"]

#: Fig. 2 parameters (theory note Sec. 8): p = 23, 90 % of the table, N = 100,
#: lr = 100/alpha^2, alpha = scale^2, scales {0.5, 1, 1.5, 2}, 1e5 epochs in the sweep
FIG2 = dict(p=23, N=100, train_fraction=0.9, scales=(0.5, 1.0, 1.5, 2.0), steps=100_000,
            lr0=100.0, scale_power=2)

#: Fig. 5 parameters (theory note Sec. 8): convention B, P = D = 100, N = 2, alpha = 1,
#: eps = 0.25, eta = 0.5 N / alpha^2, 25 000 epochs, centred loss
FIG5 = dict(D=100, P=100, N=2, alpha=1.0, eps=0.25, c=0.5, steps=25_000,
            label_indices=(1, 5, 70, 75, 100, 150))

#: Fig. 12 parameters (theory note Sec. 8): Fig. 4 (convention A, D = 40, P = 120, N = 2,
#: alpha = 1, eps = 0.25, uncentred loss) with trained read-outs, eta = 0.05 N / alpha^2,
#: 1e5 epochs. Read-outs start at 1 (the Fig. 4 network; the paper's initial a is not known)
FIG12 = dict(D=40, P=120, N=2, alpha=1.0, eps=0.25, c=0.05, steps=100_000, centred=False,
             readout_init="ones")

#: where the (wbar, M) reduction stops being exact with trained read-outs (Fig12Result.reduction)
FIG12_REDUCTION = (
    "f = alpha wbar_a.x + (alpha eps/2) x^T M_a x with wbar_a = W^T a/N, M_a = W^T diag(a) W/N, "
    "so the test loss t1+t2+t3 stays exact in (wbar_a, M_a). The dynamics do not close: one GD "
    "step maps w_i -> w_i - gamma a_i (g + eps C w_i), which depends on a_i, and "
    "a_i -> a_i - gamma (g.w_i + (eps/2) w_i^T C w_i), which depends on w_i beyond the moments. "
    "Frozen read-outs with K distinct values close on K copies of (wbar, M) (K = 1 for a = 1: "
    "the reduction); trained read-outs split every neuron and no finite set of moments closes "
    "(M_a' needs sum_i a_i^2 w_i w_i^T, whose update needs sum_i a_i^3 w_i w_i^T and the "
    "fourth moments sum_i (w_i^T C w_i) w_i w_i^T). Replacement: the exact per-neuron state "
    "(a, W) driven by the order parameters (g, C from the residual of (wbar_a, M_a)), "
    "O(P D^2 + N D^2) per step; closure_defect measures the part of a true step the reduction "
    "misses.")


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

    Examples
    --------
    >>> from kernelphase.validation.lazy_rich_figs import fig2
    >>> r = fig2(scales=(0.5, 1.0), p=5, N=10, steps=300, record_every=100)
    >>> [run["scale"] for run in r.runs], sorted(r.runs[0])[:5]
    ([0.5, 1.0], ['alpha', 'delay', 'final_test_acc', 'final_test_loss', 'final_train_acc'])
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


@styled
def _plot_fig2(scales, curves, res, path):
    """Accuracy (and the weight norm), MSE against epoch per output scale; final accuracies."""
    fig, ax = subplots(1, 3, figsize=(12, 3.6))
    for j, (s, r) in enumerate(zip(scales, curves)):
        ep = np.maximum(r.epoch, 1)
        ax[0].semilogx(ep, r.train_acc, f"C{j}--", lw=1)
        ax[0].semilogx(ep, r.test_acc, f"C{j}-", label=f"scale {s:g}")
        ax[1].loglog(ep, r.train_loss, f"C{j}--", lw=1)
        ax[1].loglog(ep, r.test_loss, f"C{j}-", label=f"scale {s:g}")
    a2 = ax[0].twinx()
    i1 = scales.index(1.0) if 1.0 in scales else 0
    a2.semilogx(np.maximum(curves[i1].epoch, 1), curves[i1].weight_norm, "k:",
                label=f"$|W|+|A|$ (scale {scales[i1]:g})")
    a2.set_ylabel("weight norm")
    legend(a2, fontsize=7, loc="center right")
    ax[0].set_xlabel(label("epoch")); ax[0].set_ylabel("accuracy (dashed: train)")
    legend(ax[0], res.params, ("p", "N"), fontsize=7, loc="upper left")
    ax[1].set_xlabel(label("epoch")); ax[1].set_ylabel("MSE (dashed: train)")
    ax[2].plot(scales, [r.train_acc[-1] for r in curves], "o--", label="train")
    ax[2].plot(scales, [r.test_acc[-1] for r in curves], "o-", label="test")
    ax[2].set_xlabel("output scale"); ax[2].set_ylabel("final accuracy")
    legend(ax[2], fontsize=7)
    save(fig, path, res.params, dpi=120)


# --------------------------------------------------------------------------- Fig. 5

def eigenvector_labels(K, k):
    r"""Labels of Sec. 6.1: the ``k``-th eigenvector (1-based, eigenvalues in descending
    order) of the Gram matrix ``K`` with its mean subtracted.

    Sign fixed so that the entry of largest magnitude is positive. Returns
    ``(y, eigenvalues_descending)``; ``y`` has the eigenvector's unit norm before centring.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.lazy_rich_figs import eigenvector_labels
    >>> K = np.diag([3.0, 2.0, 1.0])
    >>> y, eigenvalues = eigenvector_labels(K, 1)    # e_1 with its mean removed
    >>> np.round(y, 6), round(float(y.sum()), 12), eigenvalues.tolist()
    (array([ 0.666667, -0.333333, -0.333333]), 0.0, [3.0, 2.0, 1.0])
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

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.lazy_rich_figs import train_on_labels
    >>> rng = np.random.default_rng(0)
    >>> X, Xt = rng.standard_normal((10, 4)) / 2, rng.standard_normal((10, 4)) / 2
    >>> w = rng.standard_normal(4)
    >>> y, yt = X @ w, Xt @ w                        # a linear rule
    >>> out = train_on_labels(rng.standard_normal((2, 4)), X, y, Xt, yt, alpha=1.0, eps=0.25,
    ...                       lr=0.5, steps=200, record_every=100)
    >>> epochs, train, test = out
    >>> epochs.tolist(), bool(train[-1] < train[0])
    ([0.0, 100.0, 200.0], True)
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

    Examples
    --------
    >>> from kernelphase.validation.lazy_rich_figs import fig5
    >>> r = fig5(label_indices=(1, 10), D=10, P=10, steps=200, record_every=50)
    >>> [run["k"] for run in r.runs], r.status
    ([1, 10], 0)
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


@styled
def _plot_fig5(ks, curves, res, path):
    """Relative train (dashed) and test loss per label eigenvector k, the threshold dotted;
    final test loss against the labels' alignment with the NTK at init."""
    fig, ax = subplots(1, 2, figsize=(9, 3.6))
    for j, (k, (ep, tr, te)) in enumerate(zip(ks, curves)):
        e = np.maximum(ep, 1)
        ax[0].loglog(e, tr / tr[0], f"C{j}--", lw=1)
        ax[0].loglog(e, te / te[0], f"C{j}-", label=f"$k={k}$")
    ax[0].axhline(res.threshold, color="0.5", ls=":", label="threshold")
    ax[0].set_xlabel(label("epoch")); ax[0].set_ylabel("MSE / initial (dashed: train)")
    legend(ax[0], res.params, ("D", "P", "N"), fontsize=7)
    ax[1].semilogx([r["alignment"] for r in res.runs], [r["final_test_rel"] for r in res.runs],
                   "o")
    for r in res.runs:
        ax[1].annotate(f"$k={r['k']}$", (r["alignment"], r["final_test_rel"]), fontsize=7,
                       textcoords="offset points", xytext=(4, 4))
    ax[1].set_xlabel("label alignment with the NTK at init")
    ax[1].set_ylabel("final test MSE / initial")
    save(fig, path, res.params, dpi=120)


# --------------------------------------------------------------------------- Fig. 12

@dataclass(frozen=True)
class Fig12Result(Result):
    r"""Fig. 12: the Fig. 4 network with trained read-outs, against the :math:`(\bar w, M)`
    reduction (read-outs frozen at their initial value).

    ``t_train``, ``t_test``: first record with the (trained-read-out) loss below
    ``threshold``; ``frozen_*``: the same for the reduction. ``max_test_gap``: largest
    :math:`|L^{\rm test}_{\rm trained} - L^{\rm test}_{\rm frozen}|` over the records, at
    ``max_gap_epoch``; ``gap_onset_epoch``: first record where that gap exceeds 1 % of the
    frozen test loss. ``closure_defect_max`` (and ``_final``): over the records,
    :math:`\|M_a(t{+}1) - R(M_a(t))\|_F/\|M_a(t{+}1) - M_a(t)\|_F`, where :math:`R` is one
    step of the reduction from the current :math:`(\bar w_a, M_a)`: the fraction of a true
    step the reduction misses (0 for frozen read-outs; measured every 10th record).
    ``readouts_initial``,
    ``readouts_final``: :math:`a`. ``test_loss_mc``: final test MSE on ``n_test`` fresh
    points (the paper's measure; the exact population loss is ``final_test_loss``).
    ``reduction``: the text :data:`FIG12_REDUCTION` (why the reduction is not exact here).
    ``status`` 0: both runs finished and both times were measured; 6: a run diverged; 7: a
    loss never fell below ``threshold``.
    """
    t_train: float
    t_test: float
    frozen_t_train: float
    frozen_t_test: float
    initial_test_loss: float
    final_train_loss: float
    final_test_loss: float
    frozen_final_test_loss: float
    final_terms: tuple
    test_loss_mc: float
    max_test_gap: float
    max_gap_epoch: float
    gap_onset_epoch: float
    closure_defect_max: float
    closure_defect_final: float
    readouts_initial: tuple
    readouts_final: tuple
    weight_norm_initial: float
    weight_norm_final: float
    threshold: float
    reduction: str
    provenance: dict
    status: int
    message: str
    params: Mapping = field(default_factory=dict)


def _fig12_setup(D, P, N, eps, seed, readout_init, n_test):
    """Data (convention A), W0, a0 and test points, in one order from ``default_rng(seed)``."""
    from .polynomial_net import init_weights, make_data
    rng = np.random.default_rng(seed)
    X, y, beta, s = make_data(D, P, rng, "A")
    W = init_weights(N, D, rng)
    a = np.ones(N) if readout_init == "ones" else rng.standard_normal(N)
    Xt, yt, _, _ = make_data(D, n_test, np.random.default_rng([seed, 1]), "A", beta=beta)
    return X, y, beta, s, W, a, Xt, yt


def fig12(D=FIG12["D"], P=FIG12["P"], N=FIG12["N"], alpha=FIG12["alpha"], eps=FIG12["eps"],
          c=FIG12["c"], steps=FIG12["steps"], seed=0, centred=FIG12["centred"],
          readout_init=FIG12["readout_init"], record_every=10, threshold=0.1, n_test=1000,
          out=None, checkpoint=None, checkpoint_seconds=30.0, progress=False,
          _stop_after_records=None):
    r"""Fig. 12: train :math:`f = \frac\alpha N\sum_ia_i\varphi(w_i\cdot x)` with both
    :math:`W` and the read-outs :math:`a` by full-batch GD (:math:`\eta = cN/\alpha^2`, MSE
    without ½), and beside it the :math:`(\bar w, M)` reduction with :math:`a` frozen.

    With trained read-outs the reduction is no longer closed (see
    :func:`kernelphase.solvers.order_dynamics.readout_steps`): the exact state is
    :math:`(a, W)`, advanced through the order parameters
    :math:`\bar w_a = W^\top a/N`, :math:`M_a = W^\top\mathrm{diag}(a)W/N`, in which the test
    loss :math:`t_1+t_2+t_3` stays exact. The frozen run is the reduction itself
    (:func:`~kernelphase.solvers.order_dynamics.reduced_steps` on :math:`(\bar w, M)` when
    ``readout_init="ones"``; otherwise the same per-neuron stepper with :math:`a` frozen).

    ``readout_init``: ``"ones"`` (the Fig. 4 network at t = 0) or ``"gaussian"``
    (:math:`a_i\sim\mathcal N(0,1)`). ``checkpoint``: a :class:`kernelphase.io.RunDir` whose key
    holds every parameter; saved atomically at most every ``checkpoint_seconds`` and at the
    end, resumed bit for bit. With ``out``: ``curves.csv``, ``fig12.png``, ``summary.json``.
    Returns a :class:`Fig12Result`.

    Examples
    --------
    >>> from kernelphase.validation.lazy_rich_figs import fig12
    >>> r = fig12(D=5, P=20, steps=200, record_every=100, n_test=100)
    >>> r.readouts_initial, len(r.readouts_final), r.threshold
    ((1.0, 1.0), 2, 0.1)
    """
    import time
    from threadpoolctl import threadpool_limits
    from kernelphase._checks import check_choice, check_int, check_range
    from kernelphase.progress import progress as pbar
    from kernelphase.results import status_message
    from kernelphase.solvers.order_dynamics import (population_loss, readout_order_parameters,
                                                    readout_steps, reduced_steps)
    from .polynomial_net import check_train_params, t_below
    check_train_params(D, P, N, alpha, eps, c, steps, seed, "A", "network", record_every)
    check_choice("readout_init", readout_init, ("ones", "gaussian"))
    threshold = check_range("threshold", threshold, 0, math.inf, lo_open=True)
    n_test = check_int("n_test", n_test, 1, 10**5)
    check_range("checkpoint_seconds", checkpoint_seconds, 0, 1e6)
    D, P, N, steps, record_every = int(D), int(P), int(N), int(steps), int(record_every)
    alpha, eps, c = float(alpha), float(eps), float(c)
    X, y, beta, s, W, a, Xt, yt = _fig12_setup(D, P, N, eps, seed, readout_init, n_test)
    lr = c * N / alpha ** 2
    gamma = 2.0 * lr * alpha / N
    T = s * np.outer(beta, beta)
    wb0, M0 = readout_order_parameters(W, a)
    f0 = alpha * X @ wb0 + 0.5 * alpha * eps * np.einsum("pi,ij,pj->p", X, M0, X)
    yeff = y + f0 if centred else y
    cen = (wb0, M0) if centred else (None, None)
    use_reduced = readout_init == "ones"
    fz = dict(W=W.copy(), a=a.copy(), wbar=wb0.copy(), M=M0.copy())     # frozen run state
    W0, a0 = W.copy(), a.copy()
    params = dict(D=D, P=P, N=N, alpha=alpha, eps=eps, c=c, steps=steps, seed=int(seed),
                  centred=bool(centred), readout_init=readout_init,
                  record_every=record_every, n_test=n_test)
    nrec = steps // record_every + 1
    names = ("epoch", "train", "test", "t1", "t2", "t3", "frozen_train", "frozen_test",
             "weight_norm", "closure_defect") + tuple(f"a{i}" for i in range(min(N, 8)))
    rec = {k: np.full(nrec, np.nan) for k in names}
    start, name = 0, "checkpoint_fig12.npz"
    if checkpoint is not None:
        from .polynomial_net import _check_key
        _check_key(checkpoint, params)
        ck = checkpoint.load(name)
        if ck is not None:
            start = int(ck["record"]) + 1
            W, a = ck["W"], ck["a"]
            fz = {k: ck["fz_" + k] for k in fz}
            rec = {k: ck["rec_" + k] for k in rec}

    def _loss(wb, M):
        return population_loss(wb, M, beta, alpha, eps, s, *cen)

    def _train_loss(wb, M):
        e = alpha * X @ wb + 0.5 * alpha * eps * np.einsum("pi,ij,pj->p", X, M, X) - yeff
        return float(np.mean(e * e))

    status, end, last_ck = 0, nrec, time.time()
    with threadpool_limits(1), np.errstate(over="ignore", invalid="ignore"):
        for r in pbar(range(start, nrec), total=nrec - start, desc="fig12", enabled=progress):
            if r > 0:
                readout_steps(X, yeff, W, a, alpha, eps, gamma, record_every, True)
                if use_reduced:
                    reduced_steps(X, yeff, fz["wbar"], fz["M"], alpha, eps, gamma,
                                  record_every, 0, wb0, M0, T, False)
                else:
                    readout_steps(X, yeff, fz["W"], fz["a"], alpha, eps, gamma, record_every,
                                  False)
            wb, M = readout_order_parameters(W, a)
            fwb, fM = ((fz["wbar"], fz["M"]) if use_reduced
                       else readout_order_parameters(fz["W"], fz["a"]))
            rec["epoch"][r] = r * record_every
            rec["train"][r] = _train_loss(wb, M)
            rec["frozen_train"][r] = _train_loss(fwb, fM)
            try:
                rec["test"][r], (rec["t1"][r], rec["t2"][r], rec["t3"][r]) = _loss(wb, M)
                rec["frozen_test"][r] = _loss(fwb, fM)[0]
            except (OverflowError, FloatingPointError, ZeroDivisionError):
                rec["test"][r] = rec["frozen_test"][r] = np.inf
            rec["weight_norm"][r] = math.sqrt(float(np.sum(W * W) + a @ a))
            for i in range(min(N, 8)):
                rec[f"a{i}"][r] = a[i]
            if r % 10 == 0 or r == nrec - 1:
                rec["closure_defect"][r] = _closure_defect(X, yeff, W, a, wb, M, alpha, eps,
                                                           gamma, wb0, M0, T)
            if not (np.isfinite(rec["test"][r]) and np.isfinite(rec["frozen_test"][r])
                    and np.all(np.isfinite(W)) and np.all(np.isfinite(a))):
                status, end = 6, r + 1
                break
            if _stop_after_records is not None and r >= _stop_after_records:
                end = r + 1
                break          # test hook: an interrupted run
            if checkpoint is not None and (time.time() - last_ck >= checkpoint_seconds
                                           or r == nrec - 1):
                checkpoint.save(name, params=params, record=r, W=W, a=a,
                                **{"fz_" + k: v for k, v in fz.items()},
                                **{"rec_" + k: v for k, v in rec.items()})
                last_ck = time.time()
    rec = {k: v[:end] for k, v in rec.items()}
    ep = rec["epoch"]
    tt, ts = t_below(ep, rec["train"], threshold), t_below(ep, rec["test"], threshold)
    ftt = t_below(ep, rec["frozen_train"], threshold)
    fts = t_below(ep, rec["frozen_test"], threshold)
    gap = np.abs(rec["test"] - rec["frozen_test"])
    ig = int(np.nanargmax(gap)) if np.any(np.isfinite(gap)) else 0
    onset = np.flatnonzero(gap > 0.01 * np.abs(rec["frozen_test"]))
    cd = rec["closure_defect"]
    wb, M = readout_order_parameters(W, a)
    ft = alpha * Xt @ wb + 0.5 * alpha * eps * np.einsum("pi,ij,pj->p", Xt, M, Xt)
    if centred:
        ft = ft - (alpha * Xt @ wb0 + 0.5 * alpha * eps * np.einsum("pi,ij,pj->p", Xt, M0, Xt))
    detail = None
    if status == 6:
        detail = f"non-finite loss or weights at step {int(ep[-1])}; lower c"
    elif _stop_after_records is None and not all(map(math.isfinite, (tt, ts, ftt, fts))):
        status, detail = 7, (f"a loss never fell below threshold={threshold:g} in {steps} "
                             f"steps; raise steps")
    nan = float("nan")
    res = Fig12Result(
        t_train=tt, t_test=ts, frozen_t_train=ftt, frozen_t_test=fts,
        initial_test_loss=float(rec["test"][0]), final_train_loss=float(rec["train"][-1]),
        final_test_loss=float(rec["test"][-1]),
        frozen_final_test_loss=float(rec["frozen_test"][-1]),
        final_terms=(float(rec["t1"][-1]), float(rec["t2"][-1]), float(rec["t3"][-1])),
        test_loss_mc=float(np.mean((ft - yt) ** 2)) if status != 6 else nan,
        max_test_gap=float(gap[ig]), max_gap_epoch=float(ep[ig]),
        gap_onset_epoch=float(ep[onset[0]]) if onset.size else nan,
        closure_defect_max=float(np.nanmax(rec["closure_defect"])),
        closure_defect_final=float(cd[np.isfinite(cd)][-1]),
        readouts_initial=tuple(float(v) for v in a0),
        readouts_final=tuple(float(v) for v in a),
        weight_norm_initial=float(rec["weight_norm"][0]),
        weight_norm_final=float(rec["weight_norm"][-1]), threshold=threshold,
        reduction=FIG12_REDUCTION, provenance=provenance(params, seed), status=status,
        message=status_message(status, detail), params=params)
    if out is not None:
        write_csv(os.path.join(out, "curves.csv"), list(rec), zip(*rec.values()))
        _plot_fig12(rec, res, os.path.join(out, "fig12.png"))
        atomic_write_json(os.path.join(out, "summary.json"), res)
    return res


def _closure_defect(X, yeff, W, a, wb, M, alpha, eps, gamma, wb0, M0, T):
    """One true step of (W, a) against one (wbar, M) reduction step from its statistics:
    ``|M_a' - R(M_a)|_F / |M_a' - M_a|_F``."""
    from kernelphase.solvers.order_dynamics import (readout_order_parameters, readout_steps,
                                                    reduced_steps)
    W1, a1, rw, rM = W.copy(), a.copy(), wb.copy(), M.copy()
    readout_steps(X, yeff, W1, a1, alpha, eps, gamma, 1, True)
    reduced_steps(X, yeff, rw, rM, alpha, eps, gamma, 1, 0, wb0, M0, T, False)
    M1 = readout_order_parameters(W1, a1)[1]
    step = np.linalg.norm(M1 - M)
    return float(np.linalg.norm(M1 - rM) / step) if step > 0 else 0.0


@styled
def _plot_fig12(rec, res, path):
    """Losses of the network and of the exact (w, M) reduction, the loss terms, the read-outs
    and the closure defect of the reduction against epoch."""
    fig, ax = subplots(1, 3, figsize=(12, 3.6))
    ep = np.maximum(rec["epoch"], 1)
    ax[0].loglog(ep, rec["train"], "C0--", label="train, read-outs trained")
    ax[0].loglog(ep, rec["test"], "C0-", label="test, read-outs trained")
    ax[0].loglog(ep, rec["frozen_train"], "k--", lw=1, label=r"train, $(\bar w, M)$ reduction")
    ax[0].loglog(ep, rec["frozen_test"], "k-", lw=1, label=r"test, $(\bar w, M)$ reduction")
    ax[0].set_xlabel(label("epoch")); ax[0].set_ylabel(label("loss"))
    legend(ax[0], res.params, ("D", "P", "alpha", "eps"), fontsize=7)
    for k, lab in (("t1", "variance"), ("t2", "alignment"), ("t3", "linear term")):
        ax[1].loglog(ep, rec[k], label=lab)
    ax[1].loglog(ep, rec["test"], "k", label="full test loss")
    ax[1].set_xlabel(label("epoch")); ax[1].set_ylabel("test-loss terms")
    ax[1].set_title(r"terms in $(\bar w_a, M_a)$ (exact)")
    legend(ax[1], fontsize=7)
    for k in rec:
        if k.startswith("a") and k[1:].isdigit():
            ax[2].semilogx(ep, rec[k], label=f"$a_{{{int(k[1:]) + 1}}}$")
    a2 = ax[2].twinx()
    ok = np.isfinite(rec["closure_defect"])
    a2.loglog(ep[ok], np.maximum(rec["closure_defect"][ok], 1e-17), color="0.5", lw=1)
    a2.set_ylabel("closure defect per step (grey)")
    ax[2].set_xlabel(label("epoch")); ax[2].set_ylabel("read-outs")
    legend(ax[2], fontsize=7)
    save(fig, path, res.params, dpi=120)
