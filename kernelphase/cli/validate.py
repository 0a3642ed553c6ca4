"""``kernelphase validate cubic|cubic-width|modular``: Langevin-sampled networks against the theory."""
import os

__all__ = ["register"]


def register(sub):
    p = sub.add_parser("validate", help="Langevin-trained networks vs the adaptive-kernel theory")
    vs = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, preset, helptext in (("cubic", "fig2", "teacher-student sigma^2 sweep (Fig. 2)"),
                                   ("cubic-width", "appD", "width sweep with finite data (App. D)")):
        q = vs.add_parser(name, help=helptext)
        q.add_argument("--preset", default=preset, help=f"fig2 or appD (default {preset})")
        q.add_argument("--scale", type=float, default=0.125,
                       help="Table 1 width scale beta (default 1/8)")
        q.add_argument("--data-scale", type=float,
                       help="Table 1 data scale alpha (default: beta for fig2, sqrt(beta) for "
                            "appD, which keeps n/d at its full-scale value)")
        q.add_argument("--sigma2", help="comma-separated noise levels at full scale, moved along "
                                        "the family with the preset (default: the preset's)")
        if name == "cubic-width":
            q.add_argument("--widths", help="comma-separated widths (default: the preset's, scaled)")
        q.add_argument("--nets", type=int, default=8, help="networks per ensemble")
        q.add_argument("--steps", type=int, default=4000 if name == "cubic" else 40000,
                       help="Langevin steps per network")
        q.add_argument("--lr", type=float,
                       help="step size (default: 0.1 / largest likelihood curvature)")
        q.add_argument("--readout", default="langevin",
                       help="langevin (default) or gibbs: draw the read-out from its exact "
                            "Gaussian conditional every step, which allows a step ~n/d larger")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--out", required=True, help="output folder (report.json, PNG, checkpoints)")
        q.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
        _add_ensemble_options(q)
        q.set_defaults(func=_run)
    q = vs.add_parser("modular", help="modular addition, square activation (Fig. 3 parameters)")
    q.add_argument("--preset", default="fig3", help="fig3 (default)")
    q.add_argument("--scale", type=float, default=0.125, help="Table 1 scale beta (default 1/8)")
    q.add_argument("--sigma2", help="comma-separated noise levels (default: the preset's, scaled)")
    q.add_argument("--nets", type=int, default=4, help="networks per noise level")
    q.add_argument("--steps", type=int, default=1500, help="Langevin steps per network")
    q.add_argument("--lr", type=float, help="step size (default: 0.1 / largest curvature)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", required=True, help="output folder (report.json, PNG, checkpoints)")
    q.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    _add_ensemble_options(q)
    q.set_defaults(func=_run_modular)


def _add_ensemble_options(q):
    q.add_argument("--workers", type=int, help="local processes (default: one per core)")
    q.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the networks on this dask.distributed scheduler "
                        "(pip install 'kernelphase[cluster]'); workers must share --out")


def _ensemble(args):
    """Check --workers and connect to --scheduler before anything is written."""
    from .._checks import check_int
    if args.workers is not None:
        check_int("workers", args.workers, 1)
    if args.scheduler is None:
        return None
    from ..validation.ensemble import connect
    return connect(args.scheduler)


def _run_and_save(args, run, *positional, **keywords):
    """Connect to --scheduler (if any), run the experiment, write report.json with provenance."""
    from ..io import atomic_write_json, provenance
    client = _ensemble(args)
    try:
        report = run(*positional, checkpoint_dir=os.path.join(args.out, "checkpoints"),
                     resume=args.resume, progress=True, scheduler=client, workers=args.workers,
                     **keywords)
    finally:
        if client is not None:
            client.close()
    report["provenance"] = provenance({k: v for k, v in vars(args).items() if k != "func"},
                                      seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_json(os.path.join(args.out, "report.json"), report)
    return report


def _floats(text, option):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option}={text!r} is not a comma-separated list of numbers") from None


def _run(args):
    from .._checks import check_choice, check_int, check_positive
    from ..validation.teacher_student import (PRESETS, plot_cubic_report,
                                              plot_learning_curves, run_cubic)
    # validate everything before any output is written
    check_choice("preset", args.preset, tuple(PRESETS))
    check_choice("readout", args.readout, ("langevin", "gibbs"))
    check_positive("scale", args.scale)
    if args.data_scale is not None:
        check_positive("data_scale", args.data_scale)
    check_int("nets", args.nets, 1)
    check_int("steps", args.steps, 10)
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 else None
    for s in sigma2 or ():
        check_positive("sigma2", s)
    widths = getattr(args, "widths", None)
    widths = tuple(check_int("width", w, 1) for w in _floats(widths, "--widths")) if widths else None
    width_sweep = args.experiment == "cubic-width"
    report = _run_and_save(args, run_cubic, args.preset, args.scale, sigma2, args.nets,
                           args.steps, args.lr, args.seed, width=widths, curves=width_sweep,
                           readout=args.readout, data_scale=args.data_scale)
    plot_cubic_report(report, os.path.join(args.out, "phi_and_b.png"))
    if width_sweep:
        plot_learning_curves(report, os.path.join(args.out, "losses.png"))
    for r in report["rows"]:
        b = r["b"]
        print(f"N={r['width']} sigma2={r['sigma2']:g} ({r['phase_theory']}): b theory "
              f"{b['theory']:.4f} sim {b['sim_mean']:.4f} +- {b['std_error']:.4f} "
              f"(rel {b['rel_diff']:+.1%}); droplet mass {r['droplet_mass_sim']:.3f}")
        if "grokking" in r:
            g = r["grokking"]
            print(f"  train loss drops by t={g['t_train']:.3g}; afterwards the test loss falls by "
                  f"{g['late_drop']:.3g} ({g['late_drop_fraction']:.0%}), 90% of that by "
                  f"t={g['t_test']:.3g} (delay x{g['delay']:.3g})")
    print(f"wrote {os.path.join(args.out, 'report.json')}")
    return 0


def _run_modular(args):
    from .._checks import check_int, check_positive
    from ..validation.modular_addition import (plot_modular_report, run_modular,
                                               scaled_modular_preset)
    scaled_modular_preset(args.preset, args.scale)          # checks preset and scale
    check_int("nets", args.nets, 1)
    check_int("steps", args.steps, 10)
    if args.lr is not None:
        check_positive("lr", args.lr)
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 else None
    for s in sigma2 or ():
        check_positive("sigma2", s)
    report = _run_and_save(args, run_modular, args.preset, args.scale, sigma2, args.nets,
                           args.steps, args.lr, args.seed)
    plot_modular_report(report, os.path.join(args.out, "modular.png"))
    for r in report["rows"]:
        a = r["a"]
        print(f"sigma2={r['sigma2']:g} ({r['phase_theory']}): a theory {a['theory']:.4f} "
              f"sim {a['sim_mean']:.4f} +- {a['std_error']:.4f}")
    print(f"wrote {os.path.join(args.out, 'report.json')}")
    return 0
