"""``kernelphase lazy-rich``: the lazy-to-rich theory of grokking (Kumar et al. 2023).

Subcommands: ``spectrum`` (NTK sectors, target power, alignment), ``kernel-regression``
(theory vs empirical ridgeless regression with the NTK at init), ``train`` (network /
linearised / population runs through the exact reduced dynamics; CSV, PNG, JSON),
``sweep`` (t_train, t_test over alpha, or over an alpha x eps grid).

``train --preset fig2`` trains the quadratic network on modular addition for several output
scales (accuracy-jump times, weight norm); ``train --preset fig5`` trains on NTK-eigenvector
labels (Sec. 6.1); ``train --preset fig12`` trains the Fig. 4 network with its read-outs
(exact per-neuron dynamics) beside the (w_bar, M) reduction with frozen read-outs.
"""
import math
import os

__all__ = ["register"]

_DEFAULT_ACT = "z + eps*z**2/2"


def register(subparsers):
    from ._lists import HelpFormatter
    p = subparsers.add_parser("lazy-rich", help="lazy-to-rich grokking (Kumar et al. 2023)",
                              description=__doc__, formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="lazy_rich_command", metavar="SUBCOMMAND")

    s = sub.add_parser("spectrum", help="NTK spectrum at init, target power per sector",
                       formatter_class=HelpFormatter)
    s.add_argument("--D", "--d", type=int, default=100, help="input dimension, 1 to 1e6")
    s.add_argument("--eps", type=float, default=0.02,
                   help="quadratic coefficient of the activation, 0 to 1e6")
    s.add_argument("--activation", default=_DEFAULT_ACT,
                   help="polynomial in z that may use eps (h is accepted as an alias of z); "
                        "parsed by kernelphase.parse, never evaluated; default %(default)r")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_spectrum)

    k = sub.add_parser("kernel-regression", help="learning curve of the NTK at init",
                       formatter_class=HelpFormatter)
    k.add_argument("--D", "--d", type=int, default=100, help="input dimension, 1 to 1e6")
    k.add_argument("--P", "--n", type=int, default=550, help="training points, 1 to 1e6")
    k.add_argument("--eps", type=float, default=0.02,
                   help="quadratic coefficient of the activation, 0 to 1e6")
    k.add_argument("--seed", type=int, default=0, help="random seed, >= 0")
    k.add_argument("--ridge", type=float, default=0.0,
                   help="ridge*P*I added to the Gram matrix (0: ridgeless), 0 to 1e6")
    k.add_argument("--n-test", type=int, default=2000, help="test points, 1 to 1e6")
    k.add_argument("--seeds", type=int, default=1,
                   help="data draws averaged (seeds SEED to SEED+K-1): mean test MSE and "
                        "its standard error, 1 to 1000")
    k.add_argument("--json", action="store_true", help="print one JSON object")
    k.set_defaults(func=_kernel_regression)

    for name, fn, hlp in (("train", _train, "train one network (reduced dynamics)"),
                          ("sweep", _sweep, "grokking times over alpha (x eps)")):
        t = sub.add_parser(name, help=hlp, formatter_class=HelpFormatter)
        t.add_argument("--preset", default="fig1",
                       choices=(("fig1", "fig3a", "fig3e", "fig4", "goldilocks")
                                + (("fig2", "fig5", "fig12") if name == "train" else ())),
                       help="paper parameter set (Kumar et al. 2023 figure); fig2: modular "
                            "addition over output scales, fig5: NTK-eigenvector labels, "
                            "fig12: trained read-outs against the (w_bar, M) reduction")
        for opt, typ, h in (("--D", int, "input dimension, 1 to 1e6"),
                            ("--P", int, "training points, 1 to 1e8"),
                            ("--N", int, "width, 1 to 1e8"),
                            ("--alpha", float, "output scale (laziness), (0, 1e6]"),
                            ("--eps", float, "quadratic coefficient, [0, 1e6]"),
                            ("--c", float, "learning rate c in lr = c N / alpha^2, (0, 1e6]"),
                            ("--steps", int, "GD steps, 0 to 1e9")):
            t.add_argument(opt, *_ALIASES.get(opt, ()), type=typ, default=None,
                           help=f"{h}; overrides the preset (None: the preset's value)")
        t.add_argument("--convention", choices=("A", "B"), default=None,
                       help="data convention (None: the preset's)")
        t.add_argument("--loss", choices=("centred", "uncentred"), default=None,
                       help="loss of f - f0 or of f (None: the preset's)")
        t.add_argument("--seed", type=int, default=0, help="random seed, >= 0")
        t.add_argument("--threshold", type=float, default=None,
                       help="loss level that defines t_train and t_test, > 0 (None: 0.1; "
                            "fig5: 0.5, a fraction of each initial loss, in (0, 1))")
        t.add_argument("--relative", action="store_true",
                       help="threshold as a fraction of each curve's initial loss (Fig. 3a)")
        t.add_argument("--record-every", type=int, default=10,
                       help="steps between records, >= 1 (at most 1e6 records)")
        t.add_argument("--json", action="store_true", help="print one JSON object")
        t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        if name == "train":
            t.add_argument("--out", default=None,
                           help="run folder (checkpoint, curves.csv, curves.png, summary.json);"
                                " None: lazy_rich_out/PRESET")
            t.add_argument("--model", choices=("network", "linearised", "population"),
                           default="network", help="what is trained")
            t.add_argument("--with-linearised", action="store_true",
                           help="also run the linearised model (Fig. 1 black curves)")
            t.add_argument("--align-points", type=int, default=0,
                           help="test points for the NTK alignment (0: off; paper 1000), "
                                "0 to 1e5")
            t.add_argument("--resume", action="store_true",
                           help="continue the run in --out (same parameters and seed)")
            t.add_argument("--checkpoint-every", type=float, default=30.0,
                           help="seconds between checkpoints, 0 to 1e6")
            t.add_argument("--scales", default=None,
                           help="fig2 only: comma list of output scales in (0, 1e3], distinct, "
                                "at most 50; the read-out multiplier is scale^2 "
                                "(None: 0.5,1,1.5,2)")
            t.add_argument("--modulus", type=int, default=None,
                           help="fig2 only: modulus p, 2 to 500 (None: 23)")
            t.add_argument("--train-fraction", type=float, default=None,
                           help="fig2 only: fraction of the p x p table used for training, "
                                "in (0, 1) (None: 0.9)")
            t.add_argument("--acc-level", type=float, default=0.9,
                           help="fig2 only: accuracy that defines the jump times, in (0, 1]")
            t.add_argument("--label-index", type=int, default=None,
                           help="fig5 only: labels are the K-th eigenvector (descending) of "
                                "the NTK Gram matrix at init, 1 to 2P (None: the paper's "
                                "1,5,70,75,100,150)")
            t.add_argument("--readout-init", choices=("ones", "gaussian"), default=None,
                           help="fig12 only: initial read-outs, all 1 (the Fig. 4 network) or "
                                "N(0, 1) (None: ones)")
        else:
            t.add_argument("--out", default=None,
                           help="output folder (sweep.csv, sweep.json, grokking_grid.png); "
                                "None: lazy_rich_out/sweep")
            t.add_argument("--alphas", default=None,
                           help="comma list of alpha in (0, 1e6], distinct, at most 50 "
                                "(None: 0.25,0.5,1,2; fig3e: 0.4,1.6,2.8,4.0,5.2)")
            t.add_argument("--eps-values", default=None,
                           help="comma list of eps in [0, 1e6]: alpha x eps grid (Fig. 3e) "
                                "(None: --eps; fig3e: 0.02,0.08,0.14,0.2,0.26)")
        t.set_defaults(func=fn)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _spectrum(args):
    from .._checks import check_int, check_range
    from ._lists import emit
    check_int("D", args.D, 1, 10**6)
    check_range("eps", args.eps, 0, 1e6)
    from ..lazy_rich import spectrum_report
    rep = spectrum_report(args.D, args.eps, args.activation)
    if not args.json:
        for sec in rep["sectors"]:
            print(f"{sec['name']:>22s}  degree {sec['degree']}  eigenvalue "
                  f"{sec['eigenvalue']:.6g}  multiplicity {sec['multiplicity']:g}  "
                  f"target power {sec['target_power']:.6g}")
    emit(args, dict(rep, params=dict(D=args.D, eps=args.eps, activation=args.activation)),
         ("alignment",))
    return 0


def _kernel_regression(args):
    from .._checks import check_int, check_range
    from ..solvers.matrix_completion import check_memory
    from ._lists import emit
    D = check_int("D", args.D, 1, 10**6)
    P = check_int("P", args.P, 1, 10**6)
    nt = check_int("n_test", args.n_test, 1, 10**6)
    check_int("seed", args.seed, 0, 2**63 - 1)
    check_range("eps", args.eps, 0, 1e6)
    check_range("ridge", args.ridge, 0, 1e6)
    K = check_int("seeds", args.seeds, 1, 1000)
    check_memory(f"D={D}, P={P}, n_test={nt}", 8.0 * (3 * P * P + 2 * nt * P + (P + nt) * D))
    from ..solvers.learning_curve import learning_curve
    from ..lazy_rich import spectrum_report
    from ..validation.polynomial_net import make_data, kernel_regression_empirical
    import numpy as np
    rep = spectrum_report(args.D, args.eps, _DEFAULT_ACT)
    secs = [s for s in rep["sectors"] if s["eigenvalue"] > 0]
    null = sum(s["target_power"] for s in rep["sectors"] if s["eigenvalue"] <= 0)
    th = learning_curve([s["eigenvalue"] for s in secs], [s["multiplicity"] for s in secs],
                        [s["target_power"] for s in secs], args.P, args.ridge, null)
    eps = args.eps
    draws = []
    for j in range(K):
        rng = np.random.default_rng(args.seed + j)
        X, y, beta, _ = make_data(args.D, args.P, rng, normalise=True)
        Xt, yt, _, _ = make_data(args.D, args.n_test, rng, beta=beta)
        try:
            draws.append(kernel_regression_empirical(lambda u: u + eps ** 2 * u ** 2, X, y,
                                                     Xt, yt, args.ridge))
        except np.linalg.LinAlgError:
            draws.append(float("nan"))  # singular Gram matrix: P above the kernel's rank
    ok = np.isfinite(draws)
    n_ok = int(ok.sum())
    emp = float(np.mean(np.asarray(draws)[ok])) if n_ok else float("nan")
    se = (float(np.std(np.asarray(draws)[ok], ddof=1) / np.sqrt(n_ok)) if n_ok > 1
          else float("nan"))
    z = (th.test_mse - emp) / se if se > 0 else float("nan")
    out = dict(test_mse_theory=th.test_mse, test_mse_empirical=emp, test_mse_stderr=se,
               theory_minus_mean_in_stderr=z, seeds=K, draws_failed=K - n_ok,
               test_mse_draws=draws, kappa=th.kappa, status=th.status, message=th.message,
               params=dict(D=args.D, P=args.P, eps=eps, seed=args.seed, seeds=K,
                           ridge=args.ridge, n_test=args.n_test))
    emit(args, out, ("test_mse_theory", "test_mse_empirical", "test_mse_stderr"))
    return 0


def _config(args):
    from ..validation.polynomial_net import PRESETS
    cfg = dict(PRESETS[args.preset])
    for key in ("D", "P", "N", "alpha", "eps", "c", "steps", "convention"):
        v = getattr(args, key)
        if v is not None:
            cfg[key] = v
    if args.loss is not None:
        cfg["centred"] = args.loss == "centred"
    return cfg


def _check_cfg(cfg, args, model="network", align_points=0):
    from .._checks import check_range
    from ..validation.polynomial_net import check_train_params
    check_train_params(cfg["D"], cfg["P"], cfg["N"], cfg["alpha"], cfg["eps"], cfg["c"],
                       cfg["steps"], args.seed, cfg["convention"], model, args.record_every,
                       align_points)
    check_range("threshold", args.threshold, 0, math.inf, lo_open=True)


#: the package-wide spellings (d, n, width, as in the adaptive and dichotomy commands) accepted
#: beside the paper's D, P, N
_ALIASES = {"--D": ("--d",), "--P": ("--n",), "--N": ("--width",)}

_FIG_OPTIONS = {   # option -> (attribute, default): must stay unset outside their preset
    "--scales": ("scales", None), "--modulus": ("modulus", None),
    "--train-fraction": ("train_fraction", None), "--acc-level": ("acc_level", 0.9),
    "--label-index": ("label_index", None), "--readout-init": ("readout_init", None)}
_FIG_USES = {"fig2": {"--scales", "--modulus", "--train-fraction", "--acc-level", "--N",
                      "--steps"},
             "fig5": {"--label-index", "--D", "--P", "--N", "--alpha", "--eps", "--c",
                      "--steps"},
             "fig12": {"--readout-init", "--D", "--P", "--N", "--alpha", "--eps", "--c",
                       "--steps", "--loss"}}
_MODEL_OPTIONS = {"--D": ("D", None), "--P": ("P", None), "--N": ("N", None),
                  "--alpha": ("alpha", None), "--eps": ("eps", None), "--c": ("c", None),
                  "--steps": ("steps", None), "--convention": ("convention", None),
                  "--loss": ("loss", None), "--model": ("model", "network"),
                  "--with-linearised": ("with_linearised", False),
                  "--align-points": ("align_points", 0), "--relative": ("relative", False)}


def _reject_foreign(args):
    """One line naming the first option given that the chosen preset does not use."""
    uses = _FIG_USES.get(args.preset)
    table = dict(_FIG_OPTIONS, **_MODEL_OPTIONS)
    for opt, (attr, default) in table.items():
        used = opt in uses if uses is not None else opt not in _FIG_OPTIONS
        if not used and getattr(args, attr) != default:
            where = (f"--preset {args.preset}" if uses is not None
                     else f"--preset {args.preset} (only fig2/fig5/fig12)")
            raise ValueError(f"{opt} does not apply to {where}")


def _train(args):
    _reject_foreign(args)
    if args.preset == "fig2":
        return _train_fig2(args)
    if args.preset == "fig12":
        return _train_fig12(args)
    if args.preset == "fig5":
        return _train_fig5(args)
    if args.threshold is None:
        args.threshold = 0.1
    return _train_poly(args)


def _train_poly(args):
    from .._checks import check_int, check_range
    from ..io import check_output_dir
    from ._lists import emit
    cfg = _config(args)
    check_int("align_points", args.align_points, 0, 10**5)
    _check_cfg(cfg, args, args.model, args.align_points)
    ck_sec = check_range("checkpoint_every", args.checkpoint_every, 0, 1e6)
    out = os.path.join("lazy_rich_out", args.preset) if args.out is None else args.out
    out = check_output_dir(out, "--out", resumable=True)
    from ..validation.lazy_rich_runs import train_and_report
    key = dict(cfg, seed=args.seed, model=args.model, record_every=args.record_every,
               threshold=args.threshold, relative=args.relative,
               with_linearised=args.with_linearised, align_points=args.align_points)
    res = _in_run_dir(out, key, args.resume, lambda run_dir: train_and_report(
        cfg, seed=args.seed, model=args.model, out=out, threshold=args.threshold,
        record_every=args.record_every, with_linearised=args.with_linearised,
        align_points=args.align_points, checkpoint=run_dir, checkpoint_seconds=ck_sec,
        progress=not args.no_progress, relative=args.relative))
    emit(args, res, ("t_train", "t_test", "final_test_loss"), extra={"out": out})
    return 0


def _in_run_dir(out, key, resume, run):
    """``run(run_dir)`` inside a :class:`kernelphase.io.RunDir` on ``out``; a run that fails
    before its first checkpoint leaves no folder behind."""
    import shutil
    from ..io import RunDir
    made = not os.path.exists(out)
    try:
        with RunDir(out, key, resume=resume) as run_dir:
            return run(run_dir)
    except BaseException:
        if made and os.path.isdir(out) and not any(
                n.startswith("checkpoint_") for n in os.listdir(out)):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _train_fig12(args):
    from .._checks import check_range
    from ..validation.lazy_rich_figs import FIG12, fig12
    from ..validation.polynomial_net import check_train_params
    from ._lists import emit
    cfg = {k: (FIG12[k] if getattr(args, k) is None else getattr(args, k))
           for k in ("D", "P", "N", "alpha", "eps", "c", "steps", "readout_init")}
    cfg["centred"] = FIG12["centred"] if args.loss is None else args.loss == "centred"
    check_train_params(cfg["D"], cfg["P"], cfg["N"], cfg["alpha"], cfg["eps"], cfg["c"],
                       cfg["steps"], args.seed, "A", "network", args.record_every)
    thr = check_range("threshold", 0.1 if args.threshold is None else args.threshold, 0,
                      math.inf, lo_open=True)
    ck_sec = check_range("checkpoint_every", args.checkpoint_every, 0, 1e6)
    out = _run_folder(args)
    key = dict(cfg, preset="fig12", seed=args.seed, record_every=args.record_every,
               threshold=thr, n_test=1000)
    res = _in_run_dir(out, key, args.resume, lambda run_dir: fig12(
        seed=args.seed, record_every=args.record_every, threshold=thr, out=out,
        checkpoint=run_dir, checkpoint_seconds=ck_sec, progress=not args.no_progress, **cfg))
    emit(args, res, ("t_train", "t_test", "frozen_t_test", "final_test_loss",
                     "frozen_final_test_loss", "max_test_gap", "readouts_final"),
         extra={"out": out})
    return 0


def _run_folder(args):
    from ..io import check_output_dir
    out = os.path.join("lazy_rich_out", args.preset) if args.out is None else args.out
    return check_output_dir(out, "--out", resumable=True)


def _train_fig2(args):
    from .._checks import check_int, check_range
    from ..validation.lazy_rich_figs import FIG2, fig2
    from ..validation.modular_net import alpha_from_scale, check_modular_params
    from ._lists import check_list, emit
    scales = check_list("--scales", args.scales if args.scales is not None else
                        ",".join(f"{s:g}" for s in FIG2["scales"]), 0, 1e3, lo_open=True)
    p = check_int("modulus", args.modulus if args.modulus is not None else FIG2["p"], 2, 500)
    frac = check_range("train_fraction", args.train_fraction if args.train_fraction is not None
                       else FIG2["train_fraction"], 0, 1, lo_open=True, hi_open=True)
    acc = check_range("acc_level", args.acc_level, 0, 1, lo_open=True)
    N = FIG2["N"] if args.N is None else args.N
    steps = FIG2["steps"] if args.steps is None else args.steps
    if args.threshold is not None:
        raise ValueError("--threshold does not apply to --preset fig2 (use --acc-level)")
    for s in scales:
        check_modular_params(p, N, alpha_from_scale(s), steps, frac, args.seed,
                             args.record_every, FIG2["lr0"])
    ck_sec = check_range("checkpoint_every", args.checkpoint_every, 0, 1e6)
    out = _run_folder(args)
    key = dict(preset="fig2", scales=scales, p=p, N=N, steps=steps, train_fraction=frac,
               seed=args.seed, record_every=args.record_every, acc_level=acc,
               lr0=FIG2["lr0"], scale_power=FIG2["scale_power"])
    # train_modular checks its own parameters against the key; alpha varies by scale
    res = _in_run_dir(out, key, args.resume, lambda run_dir: fig2(
        scales=scales, p=p, N=N, steps=steps, train_fraction=frac, seed=args.seed,
        record_every=args.record_every, acc_level=acc, out=out, checkpoint=run_dir,
        checkpoint_seconds=ck_sec, progress=not args.no_progress))
    if not args.json:
        for r in res.runs:
            print(f"scale={r['scale']:<5g} alpha={r['alpha']:<7g} t_train_acc={r['t_train_acc']}"
                  f"  t_test_acc={r['t_test_acc']}  final test acc={r['final_test_acc']:.3f}  "
                  f"weight norm {r['weight_norm_initial']:.1f} -> {r['weight_norm_final']:.1f}")
    emit(args, res, (), extra={"out": out})
    return 0


def _train_fig5(args):
    from .._checks import check_int, check_range
    from ..io import provenance, staged_dir
    from ..validation.lazy_rich_figs import FIG5, fig5
    from ..validation.polynomial_net import check_train_params
    from ._lists import emit, locked_output
    if args.resume:
        raise ValueError("--resume does not apply to --preset fig5 (its runs take seconds)")
    if args.checkpoint_every != 30.0:
        raise ValueError("--checkpoint-every does not apply to --preset fig5 (no checkpoints)")
    cfg = {k: (FIG5[k] if getattr(args, k) is None else getattr(args, k))
           for k in ("D", "P", "N", "alpha", "eps", "c", "steps")}
    check_train_params(cfg["D"], cfg["P"], cfg["N"], cfg["alpha"], cfg["eps"], cfg["c"],
                       cfg["steps"], args.seed, "B", "network", args.record_every)
    ks = (FIG5["label_indices"] if args.label_index is None else
          (check_int("label_index", args.label_index, 1, 2 * int(cfg["P"])),))
    ks = [k for k in ks if k <= 2 * int(cfg["P"])] or ks   # paper's list at smaller P
    thr = check_range("threshold", 0.5 if args.threshold is None else args.threshold,
                      0, 1, lo_open=True, hi_open=True)
    out = _run_folder(args)
    params = dict(cfg, label_indices=list(ks), threshold=thr, record_every=args.record_every)
    with locked_output(out), staged_dir(out, manifest=provenance(params, args.seed)) as stage:
        res = fig5(label_indices=ks, seed=args.seed, record_every=args.record_every,
                   threshold=thr, out=stage, **cfg)
    if not args.json:
        for r in res.runs:
            print(f"k={r['k']:<4d} eigenvalue/top={r['eigenvalue_ratio']:.4f}  alignment="
                  f"{r['alignment']:.4f}  t_train={r['t_train']}  t_test={r['t_test']}  "
                  f"final test/initial={r['final_test_rel']:.3f}  groks={r['groks']}")
    emit(args, res, (), extra={"out": out})
    return 0


def _sweep(args):
    from ..io import check_output_dir, provenance, staged_dir
    from ._lists import check_list, emit, locked_output
    if args.threshold is None:
        args.threshold = 0.1
    cfg = _config(args)
    grid = args.preset == "fig3e"
    alphas = check_list("--alphas", args.alphas if args.alphas is not None else
                        ("0.4,1.6,2.8,4.0,5.2" if grid else "0.25,0.5,1,2"),
                        0, 1e6, lo_open=True)
    eps_text = args.eps_values if args.eps_values is not None else (
        "0.02,0.08,0.14,0.2,0.26" if grid else None)
    epss = check_list("--eps-values", eps_text, 0, 1e6) if eps_text is not None else [cfg["eps"]]
    for e in epss:
        for a in alphas:
            _check_cfg(dict(cfg, alpha=a, eps=e), args)
    from ..validation.lazy_rich_runs import MAX_GRID, sweep
    if len(alphas) * len(epss) > MAX_GRID:
        raise ValueError(f"--alphas x --eps-values has {len(alphas)} x {len(epss)} points; "
                         f"the valid range is at most {MAX_GRID}")
    out = os.path.join("lazy_rich_out", "sweep") if args.out is None else args.out
    out = check_output_dir(out, "--out")
    params = dict(cfg, alphas=alphas, eps_values=epss, threshold=args.threshold,
                  relative=args.relative, record_every=args.record_every)
    with locked_output(out), staged_dir(out, manifest=provenance(params, args.seed)) as stage:
        res = sweep(cfg, alphas, epss, seed=args.seed, out=stage, threshold=args.threshold,
                    record_every=args.record_every, progress=not args.no_progress,
                    relative=args.relative)
    if not args.json:
        for r in res.runs:
            print(f"alpha={r['alpha']:<6g} eps={r['eps']:<6g} t_train={r['t_train']}  "
                  f"t_test={r['t_test']}  grokking={r['grokking']}")
    emit(args, res, ("fitted_exponent", "theory_exponent"), extra={"out": out})
    return 0
