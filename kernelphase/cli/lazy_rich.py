"""``kernelphase lazy-rich``: the lazy-to-rich theory of grokking (Kumar et al. 2023).

Subcommands: ``spectrum`` (NTK sectors, target power, alignment), ``kernel-regression``
(theory vs empirical ridgeless regression with the NTK at init), ``train`` (network /
linearised / population runs through the exact reduced dynamics; CSV, PNG, JSON),
``sweep`` (t_train, t_test over alpha, or over an alpha x eps grid).
"""
import math
import os

__all__ = ["register"]

_DEFAULT_ACT = "h + eps*h**2/2"


def register(subparsers):
    p = subparsers.add_parser("lazy-rich", help="lazy-to-rich grokking (Kumar et al. 2023)",
                              description=__doc__)
    sub = p.add_subparsers(dest="lazy_rich_command", metavar="SUBCOMMAND")

    s = sub.add_parser("spectrum", help="NTK spectrum at init, target power per sector")
    s.add_argument("--D", type=int, default=100)
    s.add_argument("--eps", type=float, default=0.02)
    s.add_argument("--activation", default=_DEFAULT_ACT,
                   help="polynomial in z that may use eps (h is accepted as an alias of z); "
                        "parsed by kernelphase.parse, never evaluated; default %(default)r")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_spectrum)

    k = sub.add_parser("kernel-regression", help="learning curve of the NTK at init")
    k.add_argument("--D", type=int, default=100)
    k.add_argument("--P", type=int, default=550)
    k.add_argument("--eps", type=float, default=0.02)
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--ridge", type=float, default=0.0,
                   help="ridge*P*I added to the Gram matrix (0: ridgeless)")
    k.add_argument("--n-test", type=int, default=2000)
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=_kernel_regression)

    for name, fn, hlp in (("train", _train, "train one network (reduced dynamics)"),
                          ("sweep", _sweep, "grokking times over alpha (x eps)")):
        t = sub.add_parser(name, help=hlp)
        t.add_argument("--preset", default="fig1",
                       choices=("fig1", "fig3a", "fig3e", "fig4", "goldilocks"))
        for opt, typ in (("--D", int), ("--P", int), ("--N", int), ("--alpha", float),
                         ("--eps", float), ("--c", float), ("--steps", int)):
            t.add_argument(opt, type=typ, default=None, help="override the preset")
        t.add_argument("--convention", choices=("A", "B"), default=None)
        t.add_argument("--loss", choices=("centred", "uncentred"), default=None)
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--threshold", type=float, default=0.1)
        t.add_argument("--relative", action="store_true",
                       help="threshold as a fraction of each curve's initial loss (Fig. 3a)")
        t.add_argument("--record-every", type=int, default=10)
        t.add_argument("--out", default=None, help="output folder")
        t.add_argument("--json", action="store_true")
        t.add_argument("--no-progress", action="store_true")
        if name == "train":
            t.add_argument("--model", choices=("network", "linearised", "population"),
                           default="network")
            t.add_argument("--with-linearised", action="store_true",
                           help="also run the linearised model (Fig. 1 black curves)")
            t.add_argument("--align-points", type=int, default=0,
                           help="test points for the NTK alignment (0: off; paper 1000)")
            t.add_argument("--resume", action="store_true", help="resume from checkpoint")
        else:
            t.add_argument("--alphas", default=None,
                           help="comma list (default 0.25,0.5,1,2; fig3e: 5x5 grid, paper 14x14)")
            t.add_argument("--eps-values", default=None,
                           help="comma list: alpha x eps grid (Fig. 3e)")
        t.set_defaults(func=fn)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _floats(name, text):
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a comma-separated list of numbers") from None
    if not vals:
        raise ValueError(f"{name}={text!r} is empty")
    return vals


def _spectrum(args):
    from .._checks import check_int, check_range
    from ._output import print_json
    check_int("D", args.D, 1)
    check_range("eps", args.eps, 0, math.inf)
    from ..lazy_rich import spectrum_report
    rep = spectrum_report(args.D, args.eps, args.activation)
    if args.json:
        print_json(rep)
    else:
        for sec in rep["sectors"]:
            print(f"{sec['name']:>22s}  degree {sec['degree']}  eigenvalue "
                  f"{sec['eigenvalue']:.6g}  multiplicity {sec['multiplicity']:g}  "
                  f"target power {sec['target_power']:.6g}")
        print(f"population alignment {rep['alignment']:.6g}")
    return 0


def _kernel_regression(args):
    from .._checks import check_int, check_range
    from ._output import print_json
    check_int("D", args.D, 1)
    check_int("P", args.P, 1)
    check_int("n_test", args.n_test, 1)
    check_range("eps", args.eps, 0, math.inf)
    check_range("ridge", args.ridge, 0, math.inf)
    from ..solvers.learning_curve import learning_curve
    from ..lazy_rich import spectrum_report
    from ..validation.polynomial_net import make_data, kernel_regression_empirical
    import numpy as np
    rep = spectrum_report(args.D, args.eps, _DEFAULT_ACT)
    secs = [s for s in rep["sectors"] if s["eigenvalue"] > 0]
    null = sum(s["target_power"] for s in rep["sectors"] if s["eigenvalue"] <= 0)
    th = learning_curve([s["eigenvalue"] for s in secs], [s["multiplicity"] for s in secs],
                        [s["target_power"] for s in secs], args.P, args.ridge, null)
    rng = np.random.default_rng(args.seed)
    X, y, beta, _ = make_data(args.D, args.P, rng, normalise=True)
    Xt, yt, _, _ = make_data(args.D, args.n_test, rng, beta=beta)
    eps = args.eps
    emp = kernel_regression_empirical(lambda u: u + eps ** 2 * u ** 2, X, y, Xt, yt, args.ridge)
    out = dict(test_mse_theory=th.test_mse, test_mse_empirical=emp, D=args.D, P=args.P,
               eps=eps, seed=args.seed, ridge=args.ridge, kappa=th.kappa,
               status=th.status, message=th.message, converged=th.converged)
    if args.json:
        print_json(out)
    else:
        print(f"test MSE theory {th.test_mse:.6g}   empirical {emp:.6g}  ({th.message})")
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


def _check_cfg(cfg, args):
    from .._checks import check_int, check_positive, check_range
    check_int("D", cfg["D"], 1)
    check_int("P", cfg["P"], 1)
    check_int("N", cfg["N"], 1)
    check_positive("alpha", cfg["alpha"])
    check_range("eps", cfg["eps"], 0, math.inf)
    check_positive("c", cfg["c"])
    check_int("steps", cfg["steps"], 1)
    check_positive("threshold", args.threshold)
    check_int("record_every", args.record_every, 1)


def _train(args):
    from ._output import print_json
    cfg = _config(args)
    _check_cfg(cfg, args)
    from ..validation.lazy_rich_runs import train_and_report
    out = args.out or os.path.join("lazy_rich_out", args.preset)
    summary = train_and_report(cfg, seed=args.seed, model=args.model, out=out,
                               threshold=args.threshold, record_every=args.record_every,
                               with_linearised=args.with_linearised,
                               align_points=args.align_points, resume=args.resume,
                               progress=not args.no_progress, relative=args.relative)
    if args.json:
        print_json(summary)
    else:
        print(f"t_train={summary['t_train']}  t_test={summary['t_test']}  "
              f"final test loss {summary['final_test_loss']:.4g}  -> {out}")
    return 0


def _sweep(args):
    from ._output import print_json
    cfg = _config(args)
    grid = args.preset == "fig3e"
    alphas = _floats("alphas", args.alphas or ("0.4,1.6,2.8,4.0,5.2" if grid else "0.25,0.5,1,2"))
    eps_text = args.eps_values or ("0.02,0.08,0.14,0.2,0.26" if grid else None)
    epss = _floats("eps_values", eps_text) if eps_text else [cfg["eps"]]
    for a in alphas:
        _check_cfg(dict(cfg, alpha=a), args)
    for e in epss:
        from .._checks import check_range
        check_range("eps", e, 0, math.inf)
    from ..validation.lazy_rich_runs import sweep
    out = args.out or os.path.join("lazy_rich_out", "sweep")
    summary = sweep(cfg, alphas, epss, seed=args.seed, out=out, threshold=args.threshold,
                    record_every=args.record_every, progress=not args.no_progress,
                    relative=args.relative)
    if args.json:
        print_json(summary)
    else:
        for r in summary["runs"]:
            print(f"alpha={r['alpha']:<6g} eps={r['eps']:<6g} t_train={r['t_train']}  "
                  f"t_test={r['t_test']}  grokking={r['grokking']}")
        print(f"fitted exponent of t_test vs alpha: {summary['fitted_exponent']}; "
              f"theory {summary['theory_exponent']}")
    return 0
