"""``kernelphase dichotomy predict|train|sweep-alpha``: Lyu et al. (2023) predictors and runs."""
import os

__all__ = ["register"]


def _common_diag(p):
    p.add_argument("--task", choices=("sparse", "misgrok"), default="sparse",
                   help="sparse teacher on {-1,1}^d (grokking) or L2-separated data (misgrokking)")
    p.add_argument("--d", type=int, default=10000, help="input dimension, 1 to 1e8")
    p.add_argument("--n", type=int, default=256, help="training points, 2 to 1e5")
    p.add_argument("--n-test", type=int, default=2000, help="test points, 1 to 1e7")
    p.add_argument("--gamma", type=float, default=25.0, help="misgrok gap, 0 to 1e6")
    p.add_argument("--seed", type=int, default=0, help="random seed, >= 0")


def _common_mc(p):
    p.add_argument("--d", type=int, default=97, help="matrix size d x d, 2 to 1000")
    p.add_argument("--frac", type=float, default=0.05, help="observed fraction, in (0, 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed, >= 0")


def _train_opts(p, alpha, lam, lr, out_help, alpha_max, lam_range):
    p.add_argument("--alpha", type=float, default=alpha,
                   help=f"initialisation scale, (1, {alpha_max}]")
    p.add_argument("--lam", type=float, default=lam, help=f"weight decay lambda, {lam_range}")
    p.add_argument("--lr", type=float, default=lr,
                   help="GD step eta, (0, 1e3]; steps = t / eta")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--out", help=out_help + "; None: no files")


def _checkpoint_every_opt(p):
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints, a multiple of --record-every "
                        "(None: 50 records)")


def _depth_opt(p):
    # a string, checked by kernelphase.dichotomy.check_depth: a bad value is then one line
    # (argparse's own type errors print the usage too)
    p.add_argument("--depth", default="2",
                   help="depth L of the diagonal net w = u^L - v^L, integer 2 to 8")


def _depth(args):
    from ..dichotomy import check_depth
    return check_depth(args.depth)


def register(sub):
    from ._lists import HelpFormatter
    fmt = dict(formatter_class=HelpFormatter)
    p = sub.add_parser("dichotomy", help="Lyu et al.: kernel vs max-margin predictors, t_g", **fmt)
    dsub = p.add_subparsers(dest="dichotomy_command", metavar="ACTION", required=True)
    pr = dsub.add_parser("predict", help="early and late predictors and their test metrics", **fmt)
    prs = pr.add_subparsers(dest="model", metavar="MODEL", required=True)
    q = prs.add_parser("diag", help="max-L2 (SVM) and max-L1 margin classifiers", **fmt)
    _common_diag(q)
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_predict_diag)
    q = prs.add_parser("mc", help="zero-fill and minimum-nuclear-norm completions", **fmt)
    _common_mc(q)
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_predict_mc)
    tr = dsub.add_parser("train", help="simulate and compare with the predictors", **fmt)
    trs = tr.add_subparsers(dest="model", metavar="MODEL", required=True)
    q = trs.add_parser("diag", help="diagonal linear net (exact gradient flow)", **fmt)
    _common_diag(q)
    _train_opts(q, 128.0, 1e-3, 0.01, "folder for summary.json, curves.csv and run.png", "1e6",
                "[1e-8, 1e3]")
    q.add_argument("--init", choices=("unit", "ones"), default="unit",
                   help="unit: |theta(0)| = alpha (authors' code); ones: u = v = alpha")
    q.add_argument("--t-end", type=float, default=2.0,
                   help="horizon in units of t_g = ln(alpha)/lambda, (0, 100]")
    _depth_opt(q)
    q.add_argument("--run-dir", default=None,
                   help="checkpoint folder (the flow's state after each tenth of the horizon); "
                        "None: no checkpoints")
    q.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir (same parameters and seed)")
    q.set_defaults(func=_train_diag)
    q = trs.add_parser("mc", help="matrix completion W = UU^T - VV^T by GD", **fmt)
    _common_mc(q)
    _train_opts(q, 10.0, 1e-4, 0.1, "run folder (checkpoint, summary.json, curves.csv, run.png)",
                "1e8", "(0, 1e3]")
    q.add_argument("--steps", type=int, default=10**6, help="GD steps, 1 to 1e9")
    q.add_argument("--record-every", type=int, default=1000,
                   help="steps between records, >= 1 (at most 1e6 records)")
    _checkpoint_every_opt(q)
    q.add_argument("--resume", action="store_true",
                   help="continue the run in --out (same parameters and seed)")
    q.set_defaults(func=_train_mc)
    q = trs.add_parser("modular", help="modular addition, two-layer ReLU MLP, large init and "
                       "weight decay (paper Fig. 2)", **fmt)
    _modular_opts(q)
    q.set_defaults(func=_train_modular)
    sw = dsub.add_parser("sweep-alpha", help="lambda*t_transition - ln(alpha) over alpha", **fmt)
    _common_diag(sw)
    sw.add_argument("--alphas", default="32,64,128",
                    help="comma list of 2 to 50 distinct alpha in (1, 1e6]")
    sw.add_argument("--lam", type=float, default=1e-3, help="weight decay lambda, [1e-8, 1e3]")
    sw.add_argument("--init", choices=("unit", "ones"), default="unit",
                    help="unit: |theta(0)| = alpha; ones: u = v = alpha")
    sw.add_argument("--json", action="store_true", help="print one JSON object")
    sw.add_argument("--no-progress", action="store_true", help="hide progress output")
    sw.add_argument("--out", help="folder for sweep.json; None: no files")
    _depth_opt(sw)
    sw.set_defaults(func=_sweep)


def _modular_opts(p):
    from ..validation.dichotomy_runs import MODULAR_DEFAULTS as D
    p.add_argument("--p", type=int, default=D["p"], help="modulus, 2 to 1000 (paper: 97)")
    p.add_argument("--init-scale", type=float, default=D["init_scale"],
                   help="multiplier of the He-normal first layer, (0, 1e4]; W2 starts at 0")
    p.add_argument("--lam", type=float, default=D["lam"], help="weight decay, [0, 1e3]")
    p.add_argument("--lr", type=float, default=D["lr"], help="GD step, (0, 1e3]")
    p.add_argument("--steps", type=int, default=D["steps"], help="GD steps, 1 to 1e9")
    p.add_argument("--seed", type=int, default=D["seed"], help="seed of split and weights, >= 0")
    p.add_argument("--width", type=int, default=D["width"], help="hidden units, 1 to 1e5")
    p.add_argument("--train-frac", type=float, default=D["train_frac"],
                   help="fraction of the p^2 pairs used for training, (0, 1)")
    p.add_argument("--record-every", type=int, default=D["record_every"],
                   help="steps between records (the resolution of t_train, t_test), >= 1")
    _checkpoint_every_opt(p)
    p.add_argument("--stop-when-grokked", action="store_true",
                   help="stop at the first record with train and test accuracy >= 95 %%")
    p.add_argument("--json", metavar="F", default=None,
                   help="write the summary (t_train, t_test, curves, parameters, seed, "
                        "versions) as JSON to file F; '-' prints it")
    p.add_argument("--out", metavar="FIG", default=None, help="figure file (.png, .pdf, .svg)")
    p.add_argument("--run-dir", default=None,
                   help="checkpoint folder of a long run (resumable); None: no checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir (same parameters and seed)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _train_modular(args):
    import shutil
    from ..io import (RunDir, atomic_write_json, check_output_dir, check_output_file,
                      provenance)
    from ..results import jsonable
    from ..validation.dichotomy_runs import plot_modular, train_modular
    from ..validation.modular_mlp import check_modular_mlp_params
    from ._output import print_json
    kw = dict(p=args.p, init_scale=args.init_scale, lam=args.lam, lr=args.lr, steps=args.steps,
              seed=args.seed, width=args.width, train_frac=args.train_frac,
              record_every=args.record_every, checkpoint_every=args.checkpoint_every)
    check_modular_mlp_params(**kw)
    if args.resume and args.run_dir is None:
        raise ValueError("--resume needs --run-dir, the folder of the run to continue")
    if args.json not in (None, "-"):
        check_output_file(args.json, "--json", (".json",))
    if args.out is not None:
        check_output_file(args.out, "--out", (".png", ".pdf", ".svg"))
    if args.run_dir is not None:
        check_output_dir(args.run_dir, "--run-dir", resumable=True)
    progress = False if args.no_progress else None
    kw.update(progress=progress, stop_when_grokked=args.stop_when_grokked)
    if args.run_dir is None:
        res = train_modular(**kw)
    else:
        from ..validation.modular_mlp import modular_run_key
        key = modular_run_key(**{k: kw[k] for k in ("p", "init_scale", "lam", "lr", "steps",
                                                     "seed", "width", "train_frac",
                                                     "record_every", "stop_when_grokked")})
        made = not os.path.exists(args.run_dir)
        try:
            with RunDir(args.run_dir, key, resume=args.resume, option="--run-dir") as rd:
                res = train_modular(checkpoint=rd, **kw)
        except BaseException:
            if made and os.path.isdir(args.run_dir) and not os.path.exists(
                    os.path.join(args.run_dir, "checkpoint.npz")):
                shutil.rmtree(args.run_dir, ignore_errors=True)
            raise
    rec = res.to_dict()
    rec["seed"] = args.seed
    rec["provenance"] = provenance(res.params, seed=args.seed)
    rec["versions"] = rec["provenance"]["versions"]
    if args.out is not None:
        plot_modular(res, args.out)
    if args.json == "-":
        print_json(jsonable(rec))
        return 0
    if args.json is not None:
        atomic_write_json(args.json, rec)
    for k in ("t_train", "t_test", "delay", "t_test_50", "t_g_steps", "final_train_acc",
              "final_test_acc"):
        v = rec.get(k)
        print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    print(f"converged: {rec['converged']}")
    print(f"message: {rec['message']}")
    return 0


def _check_data(args):
    from ..validation.dichotomy_runs import check_diag_params
    check_diag_params(args.task, args.d, args.n, args.n_test, seed=args.seed, gamma=args.gamma,
                      **({"init": args.init} if hasattr(args, "init") else {}))


def _dataset(args):
    from ..validation.diagonal_net import misgrok_dataset, sparse_dataset
    if args.task == "sparse":
        return sparse_dataset(args.d, args.n, args.n_test, seed=args.seed)
    return misgrok_dataset(args.d, args.n, args.n_test, gamma=args.gamma, seed=args.seed)


def _predict_diag(args):
    from ..results import status_message
    from ..solvers.margins import l1_max_margin, l2_max_margin, linear_accuracy
    from ._lists import emit
    _check_data(args)
    X, y, Xt, yt, _ = _dataset(args)
    l2, l1 = l2_max_margin(X, y), l1_max_margin(X, y)
    status = l2.status or l1.status
    s = {"l2_svm_test_acc": linear_accuracy(l2.w, Xt, yt),
         "l1_margin_test_acc": linear_accuracy(l1.w, Xt, yt),
         "l2_margin": l2.margin, "l1_margin": l1.margin,
         "l2_status": l2.status, "l1_status": l1.status,
         "l2_residual": l2.residual, "l1_residual": l1.residual,
         "l1_support": int((abs(l1.w) > 1e-9 * abs(l1.w).max()).sum()) if l1.w.any() else 0,
         "status": status,
         "message": (l2.message if l2.status else l1.message) if status else status_message(0),
         "params": dict(task=args.task, d=args.d, n=args.n, n_test=args.n_test,
                        gamma=args.gamma, seed=args.seed)}
    emit(args, s, ("l2_svm_test_acc", "l1_margin_test_acc", "l1_support"))
    return 0


def _predict_mc(args):
    from ..solvers.matrix_completion import (multiplication_table, nuclear_norm_completion,
                                             observation_mask, heldout_mse, zero_fill_completion)
    from ..validation.dichotomy_runs import check_mc_params
    from ._lists import emit
    n_obs = check_mc_params(args.d, args.frac, seed=args.seed, steps=1, record_every=1)
    Xs = multiplication_table(args.d)
    mask = observation_mask(args.d, n_obs, seed=args.seed)
    nn = nuclear_norm_completion(Xs, mask)
    s = {"zero_fill_test_mse": heldout_mse(zero_fill_completion(Xs, mask), Xs, mask),
         "nuclear_norm_test_mse": heldout_mse(nn.W, Xs, mask), "nuclear_norm": nn.nuclear_norm,
         "n_obs": int(mask.sum()), "residual": nn.residual, "status": nn.status,
         "message": nn.message, "params": dict(d=args.d, frac=args.frac, seed=args.seed)}
    emit(args, s, ("zero_fill_test_mse", "nuclear_norm_test_mse", "nuclear_norm"))
    return 0


def _write(folder, res):
    """curves.csv, run.png and summary.json of a run into an existing folder."""
    from ..io import atomic_write_json, provenance, write_csv
    from ..results import jsonable
    from ..validation.dichotomy_runs import plot_run
    c = res.curves
    keys = list(c)
    write_csv(os.path.join(folder, "curves.csv"), keys, zip(*(c[k] for k in keys)))
    plot_run(res, os.path.join(folder, "run.png"))
    rec = {k: v for k, v in res.to_dict().items() if k != "curves"}
    rec["provenance"] = provenance(res.params, seed=res.params.get("seed"))
    atomic_write_json(os.path.join(folder, "summary.json"), jsonable(rec))


_TRAIN_KEYS = ("t_g_predicted", "t_transition_measured")


def _no_curves(res):
    return {k: v for k, v in res.to_dict().items() if k != "curves"}


def _train_diag(args):
    from ..io import check_output_dir, provenance, staged_dir
    from ..validation.dichotomy_runs import check_diag_params, train_diag
    from ._lists import emit, locked_output
    kw = dict(task=args.task, d=args.d, n=args.n, n_test=args.n_test, alpha=args.alpha,
              lam=args.lam, lr=args.lr, seed=args.seed, gamma=args.gamma, init=args.init,
              t_end_factor=args.t_end)
    depth = _depth(args)
    if depth != 2:
        kw["depth"] = depth
    check_diag_params(**kw)
    kw["progress"] = False if args.no_progress else None
    if args.resume and args.run_dir is None:
        raise ValueError("--resume needs --run-dir, the folder of the run to continue")
    if args.out is None:
        res = _checkpointed(args, train_diag, kw)
    else:
        check_output_dir(args.out, "--out")
        with locked_output(args.out):
            res = _checkpointed(args, train_diag, kw)
            with staged_dir(args.out, manifest=provenance(res.params, args.seed)) as stage:
                _write(stage, res)
    emit(args, _no_curves(res),
         _TRAIN_KEYS + ("plateau_test_acc", "final_test_acc", "cos_l2_plateau", "cos_l1_final")
         + (("lambda_t_transition_minus_ln_alpha", "lambda_t_exit_predicted_minus_ln_alpha",
             "early_predictor_test_acc",
             "late_predictor_test_acc", "cos_late_final") if depth != 2 else ())
         + (("plateau_population_acc", "final_population_acc", "l2_svm_population_acc",
             "l1_margin_population_acc") if args.task == "misgrok" else ()))
    return 0


def _checkpointed(args, run, kw):
    """``run(**kw)``, with ``checkpoint=RunDir(--run-dir)`` when given; a new folder that got
    no checkpoint is removed when the run fails."""
    import shutil
    from ..io import RunDir, check_output_dir
    if args.run_dir is None:
        return run(**kw)
    check_output_dir(args.run_dir, "--run-dir", resumable=True)
    key = {k: v for k, v in kw.items() if k != "progress"}
    made = not os.path.exists(args.run_dir)
    try:
        with RunDir(args.run_dir, key, resume=args.resume, option="--run-dir") as rd:
            return run(checkpoint=rd, **kw)
    except BaseException:
        if made and os.path.isdir(args.run_dir) and not any(
                f.endswith(".npz") for f in os.listdir(args.run_dir)):
            shutil.rmtree(args.run_dir, ignore_errors=True)
        raise


def _train_mc(args):
    import shutil
    from ..io import RunDir, check_output_dir
    from ..validation.dichotomy_runs import check_mc_params, train_mc
    from ._lists import emit
    kw = dict(d=args.d, frac=args.frac, alpha=args.alpha, lam=args.lam, lr=args.lr,
              steps=args.steps, record_every=args.record_every, seed=args.seed,
              checkpoint_every=args.checkpoint_every)
    n_obs = check_mc_params(**kw)
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out, the folder of the run to continue")
    progress = None if not args.no_progress else False
    if args.out is None:
        res = train_mc(progress=progress, **kw)
    else:
        out = check_output_dir(args.out, "--out", resumable=True)
        key = dict(kw, model="matrix_completion", n=n_obs)
        key.pop("checkpoint_every")
        made = not os.path.exists(out)
        try:
            with RunDir(out, key, resume=args.resume) as run_dir:
                res = train_mc(checkpoint=run_dir, progress=progress, **kw)
                _write(out, res)
        except BaseException:
            if made and os.path.isdir(out) and not os.path.exists(
                    os.path.join(out, "checkpoint.npz")):
                shutil.rmtree(out, ignore_errors=True)
            raise
    emit(args, _no_curves(res),
         _TRAIN_KEYS + ("plateau_test_mse", "final_test_mse", "zero_fill_test_mse",
                        "nuclear_norm_test_mse", "final_norm", "sqrt_nuclear_norm"))
    return 0


def _sweep(args):
    from ..io import atomic_write_json, check_output_dir, provenance, staged_dir
    from ..validation.dichotomy_runs import check_diag_params, sweep_alpha
    from ._lists import check_list, emit, locked_output
    alphas = check_list("--alphas", args.alphas, 1.0, 1e6, lo_open=True, min_len=2)
    kw = dict(task=args.task, d=args.d, n=args.n, n_test=args.n_test, lam=args.lam,
              seed=args.seed, gamma=args.gamma, init=args.init)
    depth = _depth(args)
    if depth != 2:
        kw["depth"] = depth
    for a in alphas:
        check_diag_params(alpha=a, **kw)
    if args.out is None:
        res = sweep_alpha(alphas, **kw)
    else:
        check_output_dir(args.out, "--out")
        with locked_output(args.out):
            res = sweep_alpha(alphas, **kw)
            prov = provenance(res.params, args.seed)
            with staged_dir(args.out, manifest=prov) as stage:
                atomic_write_json(os.path.join(stage, "sweep.json"),
                                  dict(res.to_dict(), provenance=prov))
    emit(args, res, ("offset_spread", "slope_lambda_t_vs_ln_alpha"))
    return 0
