"""``kernelphase validate cubic|cubic-width|modular|single-index|hysteresis``: Langevin-sampled
networks against the theory.

Every input is checked, and the memory of the run estimated, before anything is written; ``--out``
is checked by :func:`kernelphase.io.check_output_dir` and then opened as a
:class:`kernelphase.io.RunDir` whose key holds every parameter that determines the result (not
``--workers``, ``--scheduler`` or progress): a second run on the same folder is refused, a
finished or interrupted run continues only with ``--resume`` and identical parameters (else exit 2
naming the first parameter that differs). ``report.json`` (with provenance: parameters, seeds,
versions) and the figures are written atomically, the report last.
"""
import math
import os

from ._lists import spec_options

__all__ = ["register"]

#: parameters that do not change the result and stay out of the run folder's key
_NOT_IN_KEY = ("func", "command", "out", "resume", "workers", "scheduler", "no_progress", "json")


def _add_sampler_options(q, nets, steps, observables):
    """--nets, --steps, --lr, --readout, --n-test and the common options of a sampler run."""
    q.add_argument("--nets", type=int, default=nets,
                   help=f"networks per ensemble, integer in [1, 1e6] (default {nets})")
    q.add_argument("--steps", type=int, default=steps,
                   help=f"Langevin steps per network, integer in [10, 1e10] (default {steps})")
    q.add_argument("--lr", type=float,
                   help="step size in Langevin time, a number > 0 (default: 0.1 / largest "
                        "likelihood curvature)")
    q.add_argument("--readout", default="langevin",
                   help="langevin (default) or gibbs: draw the read-out from its exact "
                        "Gaussian conditional every step, which allows a step ~n/d larger")
    q.add_argument("--n-test", type=int, default=2000,
                   help=f"test points for {observables} and the test loss, integer in [1, 1e8] "
                        f"(default 2000)")
    _add_common_options(q)


def register(sub):
    p = sub.add_parser("validate", help="Langevin-trained networks vs the adaptive-kernel theory")
    vs = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, preset, helptext in (("cubic", "fig2", "teacher-student sigma^2 sweep (Fig. 2)"),
                                   ("cubic-width", "appD", "width sweep with finite data (App. D)")):
        q = vs.add_parser(name, help=helptext)
        q.add_argument("--preset", default=preset,
                       help=f"parameter set: fig2 or appD (default {preset})")
        q.add_argument("--scale", type=float, default=0.125,
                       help="Table 1 width scale beta, in [1e-6, 1e3] (default 0.125 = 1/8)")
        q.add_argument("--data-scale", type=float,
                       help="Table 1 data scale alpha, in [1e-6, 1e3] (default: beta for fig2, "
                            "sqrt(beta) for appD, which keeps n/d at its full-scale value)")
        q.add_argument("--sigma2", help="comma-separated noise levels sigma^2 in [1e-12, 1e12] at full scale, "
                                        "moved along the family with the preset "
                                        "(default: the preset's)")
        if name == "cubic":
            q.add_argument("--theory", default="ek",
                           help="ek (default) or finite: also the finite-data adaptive-kernel "
                                "theory on the run's own training set (theory_finite and "
                                "theory_finite_se in report.json)")
        if name == "cubic-width":
            q.add_argument("--widths", help="comma-separated widths N, integers >= 1 "
                                            "(default: the preset's, scaled)")
        _add_sampler_options(q, 8, 4000 if name == "cubic" else 40000, "b, c")
        _add_dtype_option(q)
        q.set_defaults(func=_run)
    q = vs.add_parser("modular", help="modular addition, square activation (Fig. 3 parameters)")
    q.add_argument("--preset", default="fig3", help="parameter set: fig3 (default fig3)")
    q.add_argument("--scale", type=float, default=0.125,
                   help="Table 1 scale beta, in [1e-6, 1e3] (default 0.125 = 1/8)")
    q.add_argument("--sigma2", help="comma-separated noise levels sigma^2 in [1e-12, 1e12] "
                                    "(default: the preset's, scaled)")
    q.add_argument("--nets", type=int, default=4,
                   help="networks per noise level, integer in [1, 1e6] (default 4)")
    q.add_argument("--steps", type=int, default=1500,
                   help="Langevin steps per network, integer in [10, 1e10] (default 1500)")
    q.add_argument("--lr", type=float,
                   help="step size in Langevin time, a number > 0 (default: 0.1 / largest "
                        "read-in curvature)")
    _add_common_options(q)
    q.set_defaults(func=_run_modular)
    q = vs.add_parser("single-index", help="any activation, single-index Hermite teacher "
                                           "(theory: solvers.single_index)")
    spec_options(q, "tanh")
    q.add_argument("--sigma-w2", type=float, default=0.5,
                   help="read-in prior variance times d, in (0, 1e6] (default 0.5)")
    q.add_argument("--n", type=int, default=400,
                   help="training points, integer in [2, 1e8] (default 400)")
    q.add_argument("--d", type=int, default=40,
                   help="input dimension, integer in [1, 1e8] (default 40)")
    q.add_argument("--width", type=int, default=100,
                   help="hidden units N, integer in [1, 1e8] (default 100)")
    q.add_argument("--sigma-a2", type=float, default=0.1,
                   help="summed read-out prior variance N Var(a_i), in (0, 1e12] (default 0.1)")
    q.add_argument("--sigma2", default="0.5",
                   help="comma-separated noise levels sigma^2 in [1e-12, 1e12] (default 0.5)")
    _add_sampler_options(q, 4, 4000, "b_k")
    q.set_defaults(func=_run_single_index)
    hs = vs.add_parser("hysteresis", help="first-order transition: cold start swept down "
                                          "beside a hot (droplet) start swept up")
    hs = hs.add_subparsers(dest="model", metavar="MODEL", required=True)
    q = hs.add_parser("cubic", help="the Fig. 2 teacher-student (presets fig2, hyst, hyst-wide)")
    q.add_argument("--preset", default="fig2",
                   help="parameter set: fig2, hyst (eps=-3, sigma_w^2=0.25, rho=1: barrier "
                        "0.18 d at u_c) or hyst-wide (hyst with N/d 6x larger) (default fig2)")
    q.add_argument("--scale", type=float, default=0.125,
                   help="Table 1 width scale beta, in [1e-6, 1e3] (default 0.125 = 1/8)")
    q.add_argument("--data-scale", type=float,
                   help="Table 1 data scale alpha, in [1e-6, 1e3] (default: beta)")
    q.add_argument("--sigma2", help="comma-separated distinct noise levels sigma^2 in [1e-12, "
                                    "1e12] at full scale, moved along the family with the "
                                    "preset (default 0.12,0.15,0.17,0.185,0.2,0.25: around "
                                    "sigma2_c = 0.178 and the droplet spinodal 0.190)")
    q.add_argument("--nets", type=int, default=2,
                   help="networks per branch, integer in [1, 5e5] (default 2)")
    q.add_argument("--steps", type=int, default=4000,
                   help="Langevin steps per network and noise level, integer in [10, 1e10] "
                        "(default 4000)")
    q.add_argument("--lr", type=float,
                   help="step size in Langevin time, a number > 0 (default: 0.1 sigma_w^2/d "
                        "with gibbs, else 0.1 / largest likelihood curvature)")
    q.add_argument("--readout", default="gibbs",
                   help="gibbs (default: exact Gaussian read-out every step) or langevin")
    q.add_argument("--hot-fraction", type=float, default=0.3,
                   help="fraction of neurons of the hot start placed at Phi = +-Phi*, in "
                        "[0, 1] (default 0.3)")
    q.add_argument("--n-test", type=int, default=1000,
                   help="test points for b, c, integer in [1, 1e8] (default 1000)")
    q.add_argument("--theory", default="ek",
                   help="ek (default) or finite: also the metastable window at the network's "
                        "size, from the finite-data theory's training residual on the run's "
                        "data (theory.finite_data in report.json, shaded in the figure)")
    _add_dtype_option(q)
    _add_common_options(q)
    q.set_defaults(func=_run_hysteresis)
    from .hysteresis import add_hysteresis_modular
    add_hysteresis_modular(hs)


def _add_dtype_option(q):
    q.add_argument("--dtype", default="float64",
                   help="float64 (default) or float32: the Langevin step's matrix products in "
                        "single precision (observables accumulated in double; about 3.7x less "
                        "CPU per step than float64 at scale 1/2)")


def _add_common_options(q):
    q.add_argument("--seed", type=int, default=0,
                   help="seed of the data and of every network's stream, integer >= 0 (default 0)")
    q.add_argument("--out", required=True,
                   help="output folder: report.json, figures, checkpoints/ (required; new, "
                        "empty, or made by an earlier run of this command)")
    q.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoints (same parameters "
                        "required; default: off)")
    q.add_argument("--workers", type=int,
                   help="local processes, integer in [1, 4096] (default: one per core)")
    q.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the networks on this dask.distributed scheduler "
                        "(pip install 'kernelphase[cluster]'); workers must share --out "
                        "(default: local)")
    q.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr (default: shown)")
    q.add_argument("--json", action="store_true",
                   help="print the report summary as one JSON object on stdout "
                        "(default: text lines)")


def _floats(text, option):
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option}={text!r} is not a comma-separated list of numbers") from None
    return values


def _ints(text, option):
    values = _floats(text, option)
    if any(v != int(v) for v in values if v == v and abs(v) != float("inf")):
        raise ValueError(f"{option}={text!r} is not a comma-separated list of integers")
    return values


def _key(args, plan):
    """Run-folder key: the command's parameters that determine the result, as given and as
    resolved by the plan."""
    given = {k: v for k, v in vars(args).items() if k not in _NOT_IN_KEY}
    return {**given, **plan["key"], "experiment": args.experiment}


def _execute(args, plan, run, plot, summary_lines, **run_kw):
    """Connect to --scheduler, open --out as a RunDir, run, plot, write report.json last."""
    from ..io import RunDir, atomic_write_json, check_output_dir, provenance, versions
    from ..validation.ensemble import connect
    check_output_dir(args.out, "--out", resumable=True)
    client = connect(args.scheduler) if args.scheduler is not None else None
    try:
        with RunDir(args.out, _key(args, plan), resume=args.resume) as run_dir:
            report = run(run_dir=run_dir, progress=not args.no_progress, scheduler=client,
                         workers=args.workers, **run_kw)
            params = {k: v for k, v in vars(args).items() if k != "func"}
            prov = provenance(params, seed=args.seed)
            prov.update(versions=versions(), run_key=run_dir.key, seeds=_seeds(args))
            figures = plot(report)
            out = report.to_dict()
            out["provenance"] = prov
            out["figures"] = figures
            path = os.path.join(args.out, "report.json")
            atomic_write_json(path, out)
    finally:
        if client is not None:
            client.close()
    summary = {"status": report.status, "message": report.message,
               "converged": report.converged, "report": path, "figures": figures,
               "rows": summary_lines(report, as_json=True)}
    if args.json:
        from ._output import print_json
        print_json(summary)
    else:
        for line in summary_lines(report, as_json=False):
            print(line)
        print(f"wrote {path}")
    if not report.converged:
        import sys
        print(f"kernelphase: warning: {report.message}", file=sys.stderr)
    return 0


def _seeds(args):
    return {"seed": args.seed,
            "data": "numpy default_rng(seed) for training data, default_rng(seed + 10**6) for "
                    "test data (cubic)",
            "networks": "network k of cell (width or P, sigma2): "
                        "SeedSequence(seed, spawn_key=(width or P, round(1e6 * sigma2), k))"}


def _run(args):
    from ..validation.teacher_student import (plan_cubic, plot_cubic_report,
                                              plot_learning_curves, run_cubic)
    # validate everything (inputs, output folder, memory) before any output is written
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 is not None else None
    widths = getattr(args, "widths", None)
    widths = _ints(widths, "--widths") if widths is not None else None
    width_sweep = args.experiment == "cubic-width"
    kw = dict(preset=args.preset, scale=args.scale, sigma2=sigma2, nets=args.nets,
              steps=args.steps, lr=args.lr, seed=args.seed, n_test=args.n_test, width=widths,
              curves=width_sweep, readout=args.readout, data_scale=args.data_scale,
              theory=getattr(args, "theory", "ek"), dtype=args.dtype)
    plan = plan_cubic(workers=args.workers, scheduler=args.scheduler, **kw)

    def plot(report):
        figures = [os.path.join(args.out, "phi_and_b.png")]
        plot_cubic_report(report, figures[0])
        if width_sweep and any("curves" in r for r in report.rows):
            figures.append(os.path.join(args.out, "losses.png"))
            plot_learning_curves(report, figures[1])
        return figures
    return _execute(args, plan, run_cubic, plot, _cubic_lines, **kw)


def _cubic_lines(report, as_json):
    out = []
    for r in report.rows:
        if "b" not in r:
            out.append({"width": r["width"], "sigma2": r["sigma2"], "status": r["status"],
                        "message": r["message"]} if as_json else
                       f"N={r['width']} sigma2={r['sigma2']:g}: {r['message']}")
            continue
        b = r["b"]
        if as_json:
            item = {"width": r["width"], "sigma2": r["sigma2"], "phase_theory": r["phase_theory"],
                    "b": b, "droplet_mass_sim": r["droplet_mass_sim"], "status": r["status"],
                    "message": r["message"]}
            if "grokking" in r:
                item["grokking"] = r["grokking"]
            if "finite_theory" in r:
                item["finite_theory"] = r["finite_theory"]
            out.append(item)
            continue
        out.append(f"N={r['width']} sigma2={r['sigma2']:g} ({r['phase_theory']}): b theory "
                   f"{b['theory']:.4f} sim {b['sim_mean']:.4f} +- {b['std_error']:.4f} "
                   f"(rel {b['rel_diff']:+.1%}; tau {b['tau_steps']:.3g} steps, ESS "
                   f"{b['ess']:.3g}); droplet mass {r['droplet_mass_sim']:.3f}")
        if "theory_finite" in r.get("b_exact", {}):
            be = r["b_exact"]
            out.append(f"  population b: sim {be['sim_mean']:.4f} +- {be['std_error']:.4f}, "
                       f"finite-data theory {be['theory_finite']:.4f} +- "
                       f"{be['theory_finite_se']:.4f}, EK {be['theory']:.4f}")
        if r["status"]:
            out.append(f"  {r['message']}")
        if "grokking" in r:
            g = r["grokking"]
            if g.status:
                out.append(f"  grokking: {g.message}")
            else:
                out.append(f"  train loss drops by t={g.t_train:.3g}; afterwards the test loss "
                           f"falls by {g.late_drop:.3g} ({g.late_drop_fraction:.0%}), 90% of "
                           f"that by t={g.t_test:.3g} (delay x{g.delay:.3g})")
    return out


def _run_modular(args):
    from ..validation.modular_addition import plan_modular, plot_modular_report, run_modular
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 is not None else None
    kw = dict(preset=args.preset, scale=args.scale, sigma2=sigma2, nets=args.nets,
              steps=args.steps, lr=args.lr, seed=args.seed)
    return _planned(args, plan_modular, run_modular, plot_modular_report, "modular.png",
                    _modular_lines, kw)


def _planned(args, plan_fn, run_fn, plot_fn, figure, lines, kw):
    """Check the plan (inputs, memory) before any output, then :func:`_execute` with one
    figure, ``figure`` in --out, drawn by ``plot_fn(report, path)``."""
    plan = plan_fn(workers=args.workers, scheduler=args.scheduler, **kw)

    def plot(report):
        path = os.path.join(args.out, figure)
        plot_fn(report, path)
        return [path]
    return _execute(args, plan, run_fn, plot, lines, **kw)


def _modular_lines(report, as_json):
    out = []
    for r in report.rows:
        if "a" not in r:
            out.append({"sigma2": r["sigma2"], "status": r["status"], "message": r["message"]}
                       if as_json else f"sigma2={r['sigma2']:g}: {r['message']}")
            continue
        a = r["a"]
        out.append({"sigma2": r["sigma2"], "phase_theory": r["phase_theory"], "a": a,
                    "status": r["status"], "message": r["message"]} if as_json else
                   f"sigma2={r['sigma2']:g} ({r['phase_theory']}): a theory {a['theory']:.4f} "
                   f"sim {a['sim_mean']:.4f} +- {a['std_error']:.4f}")
    return out


def _run_single_index(args):
    from ..validation.single_index import (plan_single_index, plot_single_index_report,
                                           run_single_index)
    kw = dict(activation=args.activation, teacher=args.teacher, sigma_w2=args.sigma_w2, n=args.n,
              d=args.d, width=args.width, sigma_a2=args.sigma_a2,
              sigma2=_floats(args.sigma2, "--sigma2"), nets=args.nets, steps=args.steps,
              lr=args.lr, seed=args.seed, n_test=args.n_test, readout=args.readout)
    return _planned(args, plan_single_index, run_single_index, plot_single_index_report,
                    "phi_and_b.png", _single_index_lines, kw)


def _single_index_lines(report, as_json):
    tr = report.transition
    s2c = tr["sigma2_c"] or float("nan")
    out = [] if as_json else [f"theory: u_c={tr['u_c']:.4g}, sigma2_c={s2c:.4g}, "
                              f"Phi*={tr['phi_star']:.3g} ({tr['message']})"]
    for r in report.rows:
        if "b" not in r:
            out.append({"sigma2": r["sigma2"], "status": r["status"], "message": r["message"]}
                       if as_json else f"sigma2={r['sigma2']:g}: {r['message']}")
            continue
        if as_json:
            out.append({k: r[k] for k in ("sigma2", "u", "phase_theory", "b", "learned",
                                          "droplet_mass_sim", "droplet_mass_gfl", "status",
                                          "message")})
            continue
        parts = [f"b_{k} theory {o['theory']:.4f} sim {o['sim_mean']:.4f} +- {o['std_error']:.4f}"
                 for k, o in r["b"].items() if k in r["learned"]]
        out.append(f"sigma2={r['sigma2']:g} ({r['phase_theory']}): " + "; ".join(parts)
                   + f"; droplet mass {r['droplet_mass_sim']:.4f} (GFL tail "
                     f"{r['droplet_mass_gfl']:.2g}, theory fraction "
                     f"{r['droplet_fraction_theory']:.3g})")
        if r["status"]:
            out.append(f"  {r['message']}")
    return out


def _run_hysteresis(args):
    from ..validation.hysteresis import plan_hysteresis, plot_hysteresis, run_hysteresis
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 is not None else None
    kw = dict(preset=args.preset, scale=args.scale, sigma2=sigma2, nets=args.nets,
              steps=args.steps, lr=args.lr, seed=args.seed, n_test=args.n_test,
              hot_fraction=args.hot_fraction, readout=args.readout, data_scale=args.data_scale,
              dtype=args.dtype, theory=args.theory)
    return _planned(args, plan_hysteresis, run_hysteresis, plot_hysteresis, "hysteresis.png",
                    _hysteresis_lines, kw)


def _hysteresis_lines(report, as_json):
    th = report.theory
    gfl = th["sigma2_spinodal_gfl"]
    out = [] if as_json else [
        f"theory: sigma2_c={th['sigma2_c']:.4g} (u_c={th['u_c']:.4g}), droplet spinodal "
        f"sigma2_s={th['sigma2_spinodal_droplet']:.4g}, Phi*={th['phi_star']:.3g}, GFL spinodal "
        + (f"sigma2={gfl:.4g}" if gfl else "none (Phi=0 stays a minimum on the GFL branch)")
        + (f"; single-neuron barrier d*DeltaS={th['barrier_at_uc_times_d']:.3g} at u_c"
           if "barrier_at_uc_times_d" in th else "")]
    fd = th.get("finite_d")
    if fd and not as_json:
        out.append(f"finite-d theory (d={fd['d']}, cavity N={fd['width']}): " + (
            f"sigma2_c={fd['sigma2_c']:.4g} (u_c={fd['u_c']:.4g})" if fd["status_c"] == 0
            else fd["message_c"]) + ", droplet spinodal " + (
            f"sigma2_s={fd['sigma2_spinodal_droplet']:.4g}" if fd["status_s"] == 0
            else fd["message_s"]))
    fdd = th.get("finite_data")
    if fdd and not as_json:
        def window(w):
            sp = w["sigma2_spinodal_droplet"]
            return ("sigma2_c=" + (f"{w['sigma2_c']:.4g}" if math.isfinite(w["sigma2_c"])
                                   else "not bracketed") + ", droplet spinodal in "
                    + (f"[{sp[0]:g}, {sp[1]:g}]" if sp else "(not bracketed)"))
        out.append("finite-data theory (the network's size; training residual on the run's "
                   f"data): with the cavity factor {window(fdd)}; with L = 1 "
                   f"{window(fdd['no_cavity'])}")
        for r in fdd["rows"]:
            e = r["exit_barrier"]
            out.append(f"  sigma2={r['sigma2']:g}: training (b, c) = ({r['b_train']:.3f} +- "
                       f"{r['b_train_se']:.3f}, {r['c_train']:.3f} +- {r['c_train_se']:.3f}); "
                       f"d dF = {r['dF_times_d']:.3g}; exit barrier "
                       + (f"{e:.3g} kT" if math.isfinite(e) else "none (no droplet basin)")
                       + f" (L = 1: d dF = {r['no_cavity']['dF_times_d']:.3g})")
    for r in report.rows:
        if "droplet_mass" not in r:
            out.append({"branch": r["branch"], "sigma2": r["sigma2"], "status": r["status"],
                        "message": r["message"]} if as_json else
                       f"{r['branch']} sigma2={r['sigma2']:g}: {r['message']}")
            continue
        dm, lc = r["droplet_mass"], r["learned_cubic_exact"]
        if as_json:
            out.append({k: r[k] for k in ("branch", "sigma2", "phase_theory", "droplet_mass",
                                          "learned_cubic", "learned_cubic_exact", "status",
                                          "message", "landscape") if k in r})
            continue
        out.append(f"{r['branch']:4s} sigma2={r['sigma2']:.4g} ({r['phase_theory']}): droplet "
                   f"mass {dm['sim_mean']:.4f} +- {dm['std_error']:.4f} (theory "
                   f"{dm['theory']:.3g}, tau {dm['tau_steps']:.3g} steps, ESS {dm['ess']:.3g}); "
                   f"learned cubic (population) {lc['sim_mean']:.3f} +- "
                   f"{lc['std_error']:.3f} (theory {lc['theory']:.3g})")
        if "landscape" in r:
            ls = r["landscape"]
            out.append("  training (b, c) per network: " + ", ".join(
                f"({b:.3f}, {c:.3f})" for b, c in zip(ls["b_train"], ls["c_train"]))
                + "; droplet exit barrier (finite-d, kT): " + ", ".join(
                f"{e:.3g}" if e is not None and math.isfinite(e) else "no basin"
                for e in ls["exit_barrier"])
                + f"; ln(run / relaxation time) = "
                  f"{math.log(r['run_length_relaxation_times']):.3g}")
        if r["status"]:
            out.append(f"  {r['message']}")
    return out
