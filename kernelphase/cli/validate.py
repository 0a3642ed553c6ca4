"""``kernelphase validate cubic|cubic-width``: Langevin-sampled networks against the theory."""
import os

__all__ = ["register"]


def register(sub):
    p = sub.add_parser("validate", help="Langevin-trained networks vs the adaptive-kernel theory")
    vs = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, preset, helptext in (("cubic", "fig2", "teacher-student sigma^2 sweep (Fig. 2)"),
                                   ("cubic-width", "appD", "width sweep with finite data (App. D)")):
        q = vs.add_parser(name, help=helptext)
        q.add_argument("--preset", default=preset, help=f"fig2 or appD (default {preset})")
        q.add_argument("--scale", type=float, default=0.125, help="Table 1 scale (default 1/8)")
        q.add_argument("--sigma2", help="comma-separated noise levels (default: the preset's)")
        if name == "cubic-width":
            q.add_argument("--widths", help="comma-separated widths (default: the preset's, scaled)")
        q.add_argument("--nets", type=int, default=8, help="networks per ensemble")
        q.add_argument("--steps", type=int, default=4000, help="Langevin steps per network")
        q.add_argument("--lr", type=float, help="step size (default: 0.2 / largest curvature)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--out", required=True, help="output folder (report.json, PNG, checkpoints)")
        q.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
        q.set_defaults(func=_run)


def _floats(text, option):
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option}={text!r} is not a comma-separated list of numbers") from None


def _run(args):
    from .._checks import check_choice, check_int, check_positive
    from ..io import atomic_write_json, provenance
    from ..validation.teacher_student import PRESETS, plot_cubic_report, run_cubic
    # validate everything before any output is written
    check_choice("preset", args.preset, tuple(PRESETS))
    check_positive("scale", args.scale)
    check_int("nets", args.nets, 1)
    check_int("steps", args.steps, 10)
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 else None
    for s in sigma2 or ():
        check_positive("sigma2", s)
    widths = _floats(getattr(args, "widths", None), "--widths") if getattr(args, "widths", None) else (None,)
    reports = []
    for w in widths:
        reports.append(run_cubic(args.preset, args.scale, sigma2, args.nets, args.steps, args.lr,
                                 args.seed, checkpoint_dir=os.path.join(args.out, "checkpoints"),
                                 resume=args.resume, progress=True,
                                 width=None if w is None else check_int("width", w, 1)))
    report = dict(reports[0], rows=[r for rep in reports for r in rep["rows"]])
    report["provenance"] = provenance({k: v for k, v in vars(args).items() if k != "func"},
                                      seed=args.seed)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_json(os.path.join(args.out, "report.json"), report)
    plot_cubic_report(report, os.path.join(args.out, "phi_and_b.png"))
    for r in report["rows"]:
        b = r["b"]
        print(f"N={r['width']} sigma2={r['sigma2']:g} ({r['phase_theory']}): b theory "
              f"{b['theory']:.4f} sim {b['sim_mean']:.4f} +- {b['std_error']:.4f} "
              f"(rel {b['rel_diff']:+.1%}); droplet mass {r['droplet_mass_sim']:.3f}")
    print(f"wrote {os.path.join(args.out, 'report.json')}")
    return 0
