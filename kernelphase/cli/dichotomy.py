"""``kernelphase dichotomy predict|train|sweep-alpha``: Lyu et al. (2023) predictors and runs."""
import os

__all__ = ["register"]


def _common_diag(p):
    p.add_argument("--task", choices=("sparse", "misgrok"), default="sparse")
    p.add_argument("--d", type=int, default=10000, help="input dimension (default 1e4)")
    p.add_argument("--n", type=int, default=256, help="training points (default 256)")
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--gamma", type=float, default=25.0, help="misgrok gap (default 25)")
    p.add_argument("--seed", type=int, default=0)


def _common_mc(p):
    p.add_argument("--d", type=int, default=97)
    p.add_argument("--frac", type=float, default=0.05, help="observed fraction (default 0.05)")
    p.add_argument("--seed", type=int, default=0)


def _train_opts(p, alpha, lam, lr):
    p.add_argument("--alpha", type=float, default=alpha)
    p.add_argument("--lam", type=float, default=lam, help="weight decay lambda")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="folder for summary.json, curves.csv and run.png")


def register(sub):
    p = sub.add_parser("dichotomy", help="Lyu et al.: kernel vs max-margin predictors, t_g")
    dsub = p.add_subparsers(dest="dichotomy_command", metavar="ACTION", required=True)
    pr = dsub.add_parser("predict", help="early and late predictors and their test metrics")
    prs = pr.add_subparsers(dest="model", metavar="MODEL", required=True)
    q = prs.add_parser("diag", help="max-L2 (SVM) and max-L1 margin classifiers")
    _common_diag(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_predict_diag)
    q = prs.add_parser("mc", help="zero-fill and minimum-nuclear-norm completions")
    _common_mc(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_predict_mc)
    tr = dsub.add_parser("train", help="simulate and compare with the predictors")
    trs = tr.add_subparsers(dest="model", metavar="MODEL", required=True)
    q = trs.add_parser("diag", help="diagonal linear net (exact gradient flow)")
    _common_diag(q)
    _train_opts(q, 128.0, 1e-3, 0.01)
    q.add_argument("--init", choices=("unit", "ones"), default="unit",
                   help="unit: |theta(0)| = alpha (authors' code); ones: u = v = alpha")
    q.add_argument("--t-end", type=float, default=2.0, help="horizon in units of t_g")
    q.set_defaults(func=_train_diag)
    q = trs.add_parser("mc", help="matrix completion W = UU^T - VV^T by GD")
    _common_mc(q)
    _train_opts(q, 10.0, 1e-4, 0.1)
    q.add_argument("--steps", type=int, default=10**6)
    q.add_argument("--record-every", type=int, default=1000)
    q.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    q.set_defaults(func=_train_mc)
    sw = dsub.add_parser("sweep-alpha", help="lambda*t_transition - ln(alpha) over alpha")
    _common_diag(sw)
    sw.add_argument("--alphas", default="32,64,128")
    sw.add_argument("--lam", type=float, default=1e-3)
    sw.add_argument("--init", choices=("unit", "ones"), default="unit")
    sw.add_argument("--json", action="store_true")
    sw.add_argument("--out")
    sw.set_defaults(func=_sweep)


def _emit(args, summary, text_keys):
    from ._output import print_json
    if args.json:
        print_json(summary)
    else:
        for k in text_keys:
            print(f"{k}: {summary[k]}")


def _dataset(args):
    from ..validation.diagonal_net import misgrok_dataset, sparse_dataset
    if args.task == "sparse":
        return sparse_dataset(args.d, args.n, args.n_test, seed=args.seed)
    return misgrok_dataset(args.d, args.n, args.n_test, gamma=args.gamma, seed=args.seed)


def _predict_diag(args):
    from ..solvers.margins import l1_max_margin, l2_max_margin, linear_accuracy
    X, y, Xt, yt, _ = _dataset(args)
    l2, l1 = l2_max_margin(X, y), l1_max_margin(X, y)
    s = {"l2_svm_test_acc": linear_accuracy(l2.w, Xt, yt),
         "l1_margin_test_acc": linear_accuracy(l1.w, Xt, yt),
         "l2_margin": l2.margin, "l1_margin": l1.margin,
         "l2_converged": l2.converged, "l1_converged": l1.converged,
         "l2_residual": l2.residual, "l1_residual": l1.residual,
         "l1_support": int((abs(l1.w) > 1e-9 * abs(l1.w).max()).sum())}
    _emit(args, s, ("l2_svm_test_acc", "l1_margin_test_acc", "l1_support"))
    return 0


def _predict_mc(args):
    from ..solvers.matrix_completion import (multiplication_table, nuclear_norm_completion,
                                             observation_mask, heldout_mse, zero_fill_completion)
    from .._checks import check_range
    check_range("frac", args.frac, 0, 1, lo_open=True, hi_open=True)
    Xs = multiplication_table(args.d)
    mask = observation_mask(args.d, int(round(args.frac * args.d ** 2)), seed=args.seed)
    nn = nuclear_norm_completion(Xs, mask)
    s = {"zero_fill_test_mse": heldout_mse(zero_fill_completion(Xs, mask), Xs, mask),
         "nuclear_norm_test_mse": heldout_mse(nn.W, Xs, mask), "nuclear_norm": nn.nuclear_norm,
         "n_obs": int(mask.sum()), "converged": nn.converged, "residual": nn.residual}
    _emit(args, s, ("zero_fill_test_mse", "nuclear_norm_test_mse", "nuclear_norm"))
    return 0


def _write(args, summary):
    if not args.out:
        return
    from ..io import atomic_write_json, provenance, write_csv
    from ..validation.dichotomy_runs import plot_run
    os.makedirs(args.out, exist_ok=True)
    c = summary["curves"]
    keys = list(c)
    write_csv(os.path.join(args.out, "curves.csv"), keys, zip(*(c[k] for k in keys)))
    rec = {k: v for k, v in summary.items() if k != "curves"}
    rec["provenance"] = provenance(summary["params"], seed=summary["params"].get("seed"))
    atomic_write_json(os.path.join(args.out, "summary.json"), rec)
    plot_run(summary, os.path.join(args.out, "run.png"))


_TRAIN_KEYS = ("t_g_predicted", "t_transition_measured")


def _train_diag(args):
    from ..validation.dichotomy_runs import train_diag
    s = train_diag(task=args.task, d=args.d, n=args.n, n_test=args.n_test, alpha=args.alpha,
                   lam=args.lam, lr=args.lr, seed=args.seed, gamma=args.gamma, init=args.init,
                   t_end_factor=args.t_end)
    _write(args, s)
    _emit(args, {k: v for k, v in s.items() if k != "curves"},
          _TRAIN_KEYS + ("plateau_test_acc", "final_test_acc", "cos_l2_plateau", "cos_l1_final"))
    return 0


def _train_mc(args):
    from ..validation.dichotomy_runs import train_mc
    ckpt = None
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        ckpt = os.path.join(args.out, "checkpoint.npz")
        if os.path.exists(ckpt) and not args.resume:
            os.unlink(ckpt)
    s = train_mc(d=args.d, frac=args.frac, alpha=args.alpha, lam=args.lam, lr=args.lr,
                 steps=args.steps, record_every=args.record_every, seed=args.seed,
                 checkpoint=ckpt, progress=True)
    _write(args, s)
    _emit(args, {k: v for k, v in s.items() if k != "curves"},
          _TRAIN_KEYS + ("plateau_test_mse", "final_test_mse", "zero_fill_test_mse",
                         "nuclear_norm_test_mse", "final_norm", "sqrt_nuclear_norm"))
    return 0


def _sweep(args):
    from ..validation.dichotomy_runs import sweep_alpha
    try:
        alphas = tuple(float(a) for a in args.alphas.split(","))
    except ValueError:
        raise ValueError(f"--alphas={args.alphas!r} is not a comma-separated list of numbers") from None
    if len(alphas) < 2:
        raise ValueError(f"--alphas={args.alphas!r} needs at least two values")
    s = sweep_alpha(alphas, task=args.task, d=args.d, n=args.n, n_test=args.n_test,
                    lam=args.lam, seed=args.seed, gamma=args.gamma, init=args.init)
    if args.out:
        from ..io import atomic_write_json, provenance
        atomic_write_json(os.path.join(args.out, "sweep.json"),
                          dict(s, provenance=provenance(vars(args).copy() | {"func": None})))
    _emit(args, s, ("offset_spread", "slope_lambda_t_vs_ln_alpha"))
    return 0
