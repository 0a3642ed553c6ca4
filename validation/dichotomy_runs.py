r"""Experiments of Lyu et al. (2023) with their theory overlaid: diagonal nets and matrix completion.

Each run returns a JSON-ready summary with the predicted grokking time
:math:`t_g=\frac1\lambda\ln\alpha` (continuous time; steps :math:`=t/\eta`), the measured
transition (the time the test metric crosses halfway between its kernel-phase plateau and its
final value), the plateau and final metrics, the cosines to the early and late predictors,
and the curves.
"""
import numpy as np

from kernelphase._checks import check_choice, check_int, check_positive

#: the kernel-phase plateau is read at this fraction of t_g (well inside the kernel phase:
#: finite-alpha transitions start ~2/lambda before t_g, see the docs)
PLATEAU_FRACTION = 0.2

__all__ = ["train_diag", "train_mc", "sweep_alpha", "crossing_time", "plot_run"]


def crossing_time(t, metric, start_index):
    """First time after ``t[start_index]`` where ``metric`` crosses halfway between its value at
    ``start_index`` (the plateau) and its final value, linearly interpolated; NaN if none."""
    t = np.asarray(t, float)
    m = np.asarray(metric, float)
    plateau, final = m[start_index], m[-1]
    half = 0.5 * (plateau + final)
    s = np.sign(m[start_index:] - half)
    idx = np.flatnonzero(s != s[0])
    if plateau == final or idx.size == 0:
        return float("nan")
    k = start_index + idx[0]
    t0, t1, m0, m1 = t[k - 1], t[k], m[k - 1], m[k]
    return float(t0 + (half - m0) * (t1 - t0) / (m1 - m0))


def _tg(alpha, lam):
    from kernelphase.dichotomy import SYMBOLS, grokking_time
    return float(grokking_time().subs({SYMBOLS["alpha"]: alpha, SYMBOLS["lam"]: lam}))


def _diag_problem(task, d, n, n_test, seed, gamma):
    """Data set and its two max-margin predictors (independent of alpha and lambda)."""
    from kernelphase.solvers.margins import l1_max_margin, l2_max_margin
    from .diagonal_net import misgrok_dataset, sparse_dataset
    check_choice("task", task, ("sparse", "misgrok"))
    if task == "sparse":
        X, y, Xt, yt, _ = sparse_dataset(d, n, n_test, seed=seed)
    else:
        X, y, Xt, yt, _ = misgrok_dataset(d, n, n_test, gamma=gamma, seed=seed)
    return X, y, Xt, yt, l2_max_margin(X, y), l1_max_margin(X, y)


def train_diag(task="sparse", d=10000, n=256, n_test=2000, alpha=128.0, lam=1e-3, lr=0.01,
               t_end_factor=2.0, points=300, seed=0, gamma=25.0, init="unit", loss="logistic",
               problem=None):
    """Diagonal net on the sparse (grokking) or L2-separated (misgrokking) task.

    Integrates the exact gradient flow (:func:`~kernelphase.validation.diagonal_net.diagonal_flow`)
    up to ``t_end_factor * t_g`` and compares with the max-L2 and max-L1 margin classifiers.
    ``problem`` may pass a precomputed ``_diag_problem`` (a sweep solves it once).
    """
    from kernelphase.solvers.margins import cosine, linear_accuracy
    from .diagonal_net import diagonal_flow
    lam = check_positive("lam", lam)
    lr = check_positive("lr", lr)
    alpha = check_positive("alpha", alpha)
    points = check_int("points", points, 10)
    X, y, Xt, yt, l2, l1 = problem or _diag_problem(task, d, n, n_test, seed, gamma)
    tg = _tg(alpha, lam)
    t = np.linspace(0.0, t_end_factor * tg, points + 1)[1:]
    traj = diagonal_flow(X, y, alpha, lam, t, init=init, loss=loss)
    acc, tr_acc, c2, c1, norm = [], [], [], [], []
    for i in range(len(t)):
        w = traj.w(i)
        acc.append(linear_accuracy(w, Xt, yt))
        tr_acc.append(linear_accuracy(w, X, y))
        c2.append(cosine(w, l2.w))
        c1.append(cosine(w, l1.w))
        norm.append(np.sqrt(traj.sq_norm(i)))
    acc = np.array(acc)
    i_plateau = int(np.searchsorted(t, PLATEAU_FRACTION * tg))
    t_cross = crossing_time(t, acc, i_plateau)
    return {
        "model": "diagonal", "task": task,
        "params": dict(d=d, n=n, n_test=n_test, alpha=alpha, lam=lam, lr=lr, seed=seed,
                       gamma=gamma if task == "misgrok" else None, init=init, loss=loss),
        "t_g_predicted": tg, "t_g_predicted_steps": tg / lr,
        "t_transition_measured": t_cross, "t_transition_measured_steps": t_cross / lr,
        "lambda_t_transition_minus_ln_alpha": lam * t_cross - np.log(alpha),
        "plateau_test_acc": float(acc[i_plateau]), "final_test_acc": float(acc[-1]),
        "l2_svm_test_acc": linear_accuracy(l2.w, Xt, yt),
        "l1_margin_test_acc": linear_accuracy(l1.w, Xt, yt),
        "cos_l2_plateau": c2[i_plateau], "cos_l1_final": c1[-1],
        "final_norm": norm[-1], "flow_converged": bool(traj.success),
        "curves": {"t": t, "steps": t / lr, "test_acc": acc, "train_acc": tr_acc,
                   "cos_l2": c2, "cos_l1": c1, "norm": norm,
                   "norm_kernel": alpha * np.exp(-lam * t)},
    }


def train_mc(d=97, frac=0.05, alpha=10.0, lam=1e-4, lr=0.1, steps=10**6, record_every=1000,
             seed=0, checkpoint=None, progress=None):
    """Matrix completion on the scaled multiplication table, GD against both predictors."""
    from kernelphase.solvers.matrix_completion import (multiplication_table, nuclear_norm_completion,
                                                       observation_mask, heldout_mse,
                                                       zero_fill_completion)
    from .matrix_factorization import mf_gd
    d = check_int("d", d, 2)
    if not 0 < frac < 1:
        raise ValueError(f"frac={frac!r} is outside the valid range (0, 1)")
    Xs = multiplication_table(d)
    mask = observation_mask(d, int(round(frac * d * d)), seed=seed)
    zf = zero_fill_completion(Xs, mask)
    nn = nuclear_norm_completion(Xs, mask)
    run = mf_gd(Xs, mask, alpha=alpha, lam=lam, lr=lr, steps=steps, record_every=record_every,
                checkpoint=checkpoint, progress=progress)
    t = run["step"] * lr
    tg = _tg(alpha, lam)
    i_plateau = int(np.searchsorted(t, PLATEAU_FRACTION * tg))
    W = run["U"] @ run["U"].T - run["V"] @ run["V"].T
    return {
        "model": "matrix_completion",
        "params": dict(d=d, frac=frac, n_obs=int(mask.sum()), alpha=alpha, lam=lam, lr=lr,
                       steps=steps, seed=seed),
        "t_g_predicted": tg, "t_g_predicted_steps": tg / lr,
        "t_transition_measured": crossing_time(t, run["test_mse"], i_plateau),
        "t_transition_measured_steps": crossing_time(t, run["test_mse"], i_plateau) / lr,
        "zero_fill_test_mse": heldout_mse(zf, Xs, mask),
        "nuclear_norm_test_mse": heldout_mse(nn.W, Xs, mask),
        "nuclear_norm": nn.nuclear_norm, "sqrt_nuclear_norm": float(np.sqrt(nn.nuclear_norm)),
        "nuclear_norm_solver_residual": nn.residual,
        "plateau_test_mse": float(run["test_mse"][i_plateau]),
        "final_test_mse": float(run["test_mse"][-1]), "final_norm": float(run["norm"][-1]),
        "final_distance_to_nuclear_norm_solution": float(np.linalg.norm(W - nn.W)
                                                         / np.linalg.norm(nn.W)),
        "curves": {"t": t, "steps": run["step"], "test_mse": run["test_mse"],
                   "train_loss": run["train_loss"], "norm": run["norm"],
                   "norm_kernel": np.sqrt(2 * d) * alpha * np.exp(-lam * t)},
    }


def sweep_alpha(alphas=(32, 64, 128), **kw):
    """Run :func:`train_diag` for each alpha; report lambda*t_transition - ln(alpha)."""
    rows = []
    problem = _diag_problem(kw.get("task", "sparse"), kw.get("d", 10000), kw.get("n", 256),
                            kw.get("n_test", 2000), kw.get("seed", 0), kw.get("gamma", 25.0))
    for a in alphas:
        r = train_diag(alpha=a, problem=problem, **kw)
        rows.append({"alpha": a, "t_transition": r["t_transition_measured"],
                     "offset": r["lambda_t_transition_minus_ln_alpha"],
                     "plateau_test_acc": r["plateau_test_acc"],
                     "final_test_acc": r["final_test_acc"]})
    offs = np.array([r["offset"] for r in rows])
    slope = np.polyfit(np.log(alphas), [kw.get("lam", 1e-3) * r["t_transition"] for r in rows], 1)[0]
    return {"rows": rows, "offset_spread": float(offs.max() - offs.min()),
            "slope_lambda_t_vs_ln_alpha": float(slope)}


def plot_run(summary, path):
    """Figure of a run: test metric, cosines and norm against lambda*t, t_g marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from kernelphase.io import savefig_atomic
    c = summary["curves"]
    lam = summary["params"]["lam"]
    lt = lam * np.asarray(c["t"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    if summary["model"] == "diagonal":
        ax.plot(lt, c["test_acc"], label="test acc")
        ax.plot(lt, c["train_acc"], "--", label="train acc")
        ax.axhline(summary["l2_svm_test_acc"], color="C2", lw=0.8, label="L2 SVM")
        ax.axhline(summary["l1_margin_test_acc"], color="C3", lw=0.8, label="L1 max-margin")
        ax.set_ylabel("accuracy")
        axes[1].plot(lt, c["cos_l2"], label="cos to L2 SVM")
        axes[1].plot(lt, c["cos_l1"], label="cos to L1 max-margin")
        axes[1].set_ylabel("cosine")
        axes[1].legend()
    else:
        ax.semilogy(lt, c["test_mse"], label="test MSE")
        ax.semilogy(lt, np.maximum(c["train_loss"], 1e-16), "--", label="train loss")
        ax.axhline(summary["zero_fill_test_mse"], color="C2", lw=0.8, label="zero-fill")
        ax.axhline(summary["nuclear_norm_test_mse"], color="C3", lw=0.8, label="min nuclear norm")
        ax.set_ylabel("MSE")
        axes[1].axis("off")
    for a in axes[:2]:
        a.axvline(lam * summary["t_g_predicted"], color="k", ls=":", label=r"$t_g=\ln\alpha/\lambda$")
    ax.legend(fontsize=7)
    axes[2].semilogy(lt, c["norm"], label=r"$\|\theta\|$")
    axes[2].semilogy(lt, c["norm_kernel"], ":", label=r"$\|\theta_0\|e^{-\lambda t}$")
    axes[2].legend()
    for a in axes:
        a.set_xlabel(r"$\lambda t$")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
