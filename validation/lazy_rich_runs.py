r"""Paper reproductions of Kumar et al. 2023 (arXiv 2310.06110): Fig. 1, 3(a), 3(e), 4, data window.

Every run goes through :func:`kernelphase.validation.polynomial_net.train` (exact reduced
dynamics, checkpointed); outputs (CSV curves, PNG, JSON summary) record parameters, seed
and version via :func:`kernelphase.io.provenance`.
"""
import os

import numpy as np

from kernelphase.io import atomic_write_json, provenance, savefig_atomic, write_csv

from .polynomial_net import (init_weights, kernel_regression_empirical, make_data, ntk_gram,
                             t_below, train)

__all__ = ["train_and_report", "sweep", "kernel_regression_line", "fit_exponent"]


def kernel_regression_line(cfg, seed, n_test=1000):
    r"""Fig. 1 horizontal line: ridgeless regression with the NTK at init, test MSE.

    Two versions: the paper's (empirical finite-N NTK of the seed's :math:`W_0`,
    uncentred labels) and the infinite-width kernel :math:`u+\varepsilon^2u^2`.
    Same training data and :math:`W_0` as :func:`train` with this seed.
    """
    rng = np.random.default_rng(seed)
    X, y, beta, s = make_data(cfg["D"], cfg["P"], rng, cfg["convention"])
    W = init_weights(cfg["N"], cfg["D"], rng)
    trng = np.random.default_rng([seed, 1])
    Xt, yt, _, _ = make_data(cfg["D"], n_test, trng, cfg["convention"], beta=beta)
    a, e = cfg["alpha"], cfg["eps"]
    K = ntk_gram(W, X, X, a, e)
    pred = ntk_gram(W, Xt, X, a, e) @ np.linalg.solve(K, y)
    emp = float(np.mean((pred - yt) ** 2))
    inf = kernel_regression_empirical(lambda u: u + e ** 2 * u ** 2, X, y, Xt, yt)
    return dict(empirical_ntk=emp, infinite_width=inf)


def fit_exponent(x, t):
    """Least-squares slope of log t against log x over finite, positive t."""
    x, t = np.asarray(x, float), np.asarray(t, float)
    ok = np.isfinite(t) & (t > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(t[ok]), 1)[0])


def train_and_report(cfg, seed=0, model="network", out="lazy_rich_out", threshold=0.1,
                     record_every=10, with_linearised=False, align_points=0, resume=False,
                     progress=False, kr_line=True, relative=False):
    """Run one training (and optionally its linearisation); write CSV, PNG, JSON."""
    os.makedirs(out, exist_ok=True)
    ck = os.path.join(out, f"checkpoint_{model}.npz")
    if not resume and os.path.exists(ck):
        os.unlink(ck)
    kw = dict(D=cfg["D"], P=cfg["P"], N=cfg["N"], alpha=cfg["alpha"], eps=cfg["eps"],
              c=cfg["c"], steps=cfg["steps"], seed=seed, convention=cfg["convention"],
              centred=cfg["centred"], record_every=record_every, progress=progress)
    run = train(model=model, n_test_align=align_points, checkpoint=ck, **kw)
    lin = train(model="linearised", **kw) if with_linearised and model != "linearised" else None
    ep = run["epoch"]
    cols = ["epoch", "train", "test", "t1", "t2", "t3", "weight_norm"]
    rows = [[run[k][i] for k in cols] for i in range(len(ep))]
    if lin is not None:
        cols += ["lin_train", "lin_test"]
        for i, r in enumerate(rows):
            r += [lin["train"][i], lin["test"][i]]
    write_csv(os.path.join(out, "curves.csv"), cols, rows)
    if len(run["alignment"]):
        write_csv(os.path.join(out, "alignment.csv"), ["epoch", "alignment"],
                  zip(run["alignment_epoch"], run["alignment"]))
    thr_tr, thr_te = ((threshold * run["train"][0], threshold * run["test"][0]) if relative
                      else (threshold, threshold))
    summary = dict(t_train=t_below(ep, run["train"], thr_tr),
                   t_test=t_below(ep, run["test"], thr_te), threshold=threshold,
                   relative_threshold=relative,
                   final_train_loss=float(run["train"][-1]), final_test_loss=float(run["test"][-1]),
                   initial_test_loss=float(run["test"][0]),
                   weight_norm_initial=float(run["weight_norm"][0]),
                   weight_norm_final=float(run["weight_norm"][-1]),
                   weight_decay=0.0, model=model)
    summary["grokking"] = float(max(0.0, summary["t_test"] - summary["t_train"])) \
        if np.isfinite(summary["t_test"]) and np.isfinite(summary["t_train"]) else float("nan")
    if lin is not None:
        summary["linearised_final_train_loss"] = float(lin["train"][-1])
        summary["linearised_final_test_loss"] = float(lin["test"][-1])
    if len(run["alignment"]):
        summary["alignment_initial"] = float(run["alignment"][0])
        summary["alignment_final"] = float(run["alignment"][-1])
    if kr_line and model == "network":
        summary["kernel_regression_mse"] = kernel_regression_line(cfg, seed)
    summary["provenance"] = provenance(dict(cfg, model=model, record_every=record_every), seed)
    atomic_write_json(os.path.join(out, "summary.json"), summary)
    _plot(run, lin, summary, os.path.join(out, "curves.png"))
    return summary


def _plot(run, lin, summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    ep = np.maximum(run["epoch"], 1)
    ax[0].loglog(ep, run["train"], "C0--", label="train")
    ax[0].loglog(ep, run["test"], "C0-", label="test")
    if lin is not None:
        ax[0].loglog(ep, lin["train"], "k--", label="linearised train")
        ax[0].loglog(ep, lin["test"], "k-", label="linearised test")
    kr = summary.get("kernel_regression_mse")
    if kr:
        ax[0].axhline(kr["empirical_ntk"], color="g", ls=":", label="kernel regression (NTK0)")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("MSE"); ax[0].legend(fontsize=7)
    ax[1].semilogx(ep, run["weight_norm"], "C1--", label="|W|_F")
    if len(run["alignment"]):
        a2 = ax[1].twinx()
        a2.semilogx(np.maximum(run["alignment_epoch"], 1), run["alignment"], "0.5")
        a2.set_ylabel("NTK alignment")
    ax[1].set_xlabel("epoch"); ax[1].legend(fontsize=7)
    for k, lab in (("t1", "variance"), ("t2", "alignment"), ("t3", "linear")):
        ax[2].loglog(ep, run[k], label=lab)
    ax[2].loglog(ep, run["test"], "k", label="test")
    ax[2].set_xlabel("epoch"); ax[2].legend(fontsize=7)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)
    plt.close(fig)


def sweep(cfg, alphas, epss, seed=0, out="lazy_rich_out/sweep", threshold=0.1,
          record_every=10, progress=False, relative=False):
    r"""t_train, t_test and the amount of grokking :math:`\max(0, t_{test}-t_{train})`
    (Fig. 3(e)) over ``alphas`` x ``epss``; fitted exponent of t_test vs alpha vs theory.

    ``relative``: the threshold is a fraction of each curve's initial value (Fig. 3(a)
    plots curves divided by their initial value); otherwise absolute (Fig. 3(e))."""
    from kernelphase.lazy_rich import grokking_time
    os.makedirs(out, exist_ok=True)
    runs = []
    for e in epss:
        for a in alphas:
            c = dict(cfg, alpha=a, eps=e)
            r = train(D=c["D"], P=c["P"], N=c["N"], alpha=a, eps=e, c=c["c"], steps=c["steps"],
                      seed=seed, convention=c["convention"], centred=c["centred"],
                      record_every=record_every, progress=progress,
                      stop_threshold=None if relative else threshold)
            k0, k1 = (r["train"][0], r["test"][0]) if relative else (1.0, 1.0)
            tt = t_below(r["epoch"], r["train"], threshold * k0)
            ts = t_below(r["epoch"], r["test"], threshold * k1)
            g = float(max(0.0, ts - tt)) if np.isfinite(ts) and np.isfinite(tt) else float("nan")
            s = 2.0 if c["convention"] == "B" else 1.0
            runs.append(dict(alpha=a, eps=e, t_train=tt, t_test=ts, grokking=g,
                             diverged=bool(not np.isfinite(r["test"][-1])),
                             gap=ts - tt, theory_t_grok=grokking_time(a, e, c["D"], c["c"], s=s)))
    res = dict(runs=runs, threshold=threshold, relative_threshold=relative)
    e0 = epss[0]
    sel = [r for r in runs if r["eps"] == e0]
    res["fitted_exponent"] = fit_exponent([r["alpha"] for r in sel], [r["t_test"] for r in sel])
    res["theory_exponent"] = fit_exponent([r["alpha"] for r in sel],
                                          [r["theory_t_grok"] for r in sel])
    res["provenance"] = provenance(dict(cfg, alphas=list(alphas), eps_values=list(epss)), seed)
    write_csv(os.path.join(out, "sweep.csv"), list(runs[0]),
              [list(r.values()) for r in runs])
    atomic_write_json(os.path.join(out, "sweep.json"), res)
    if len(epss) > 1 and len(alphas) > 1:
        _plot_grid(runs, alphas, epss, os.path.join(out, "grokking_grid.png"))
    return res


def _plot_grid(runs, alphas, epss, path):
    """Fig. 3(e): amount of grokking over (eps, alpha), nan (never below threshold) grey."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    G = np.full((len(alphas), len(epss)), np.nan)
    for r in runs:
        G[alphas.index(r["alpha"]), epss.index(r["eps"])] = r["grokking"]
    fig, ax = plt.subplots(figsize=(4.5, 3.8))
    cmap = plt.get_cmap("OrRd").copy()
    cmap.set_bad("0.7")
    im = ax.imshow(G, origin="lower", cmap=cmap, aspect="auto",
                   extent=(min(epss), max(epss), min(alphas), max(alphas)))
    fig.colorbar(im, label="t_test - t_train")
    ax.set_xlabel("kernel alignment eps")
    ax.set_ylabel("laziness alpha")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=100)
    plt.close(fig)
