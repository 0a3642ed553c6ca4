"""``kernelphase validate hysteresis modular``: the hysteresis protocol for modular addition.

A cold start (prior) swept down in sigma^2 beside a hot start (droplets of weight
``--hot-fraction`` in every Fourier mode) swept up, each point started from the previous state
(:func:`kernelphase.validation.hysteresis.run_modular_hysteresis`). Inputs, output folder,
``--resume`` and the report follow ``validate`` (:mod:`kernelphase.cli.validate`).
"""

__all__ = ["add_hysteresis_modular"]


def add_hysteresis_modular(sub):
    """Add the ``modular`` leaf to the ``validate hysteresis`` sub-parsers ``sub``."""
    from .validate import _add_common_options
    q = sub.add_parser("modular", help="modular addition: droplets of a Fourier mode held by "
                                       "a hot start, never formed from a cold one")
    q.add_argument("--preset", default="hyst",
                   help="parameter set: hyst (P=17, N=60, gamma=1/3, near the mean-field "
                        "regime) or fig3 (default hyst)")
    q.add_argument("--scale", type=float, default=1.0,
                   help="Table 1 scale beta, in [1e-6, 1e3] (default 1)")
    q.add_argument("--sigma2", help="comma-separated distinct noise levels sigma^2 in [1e-12, "
                                    "1e12] (default: the preset's, scaled)")
    q.add_argument("--nets", type=int, default=2,
                   help="networks per branch, integer in [1, 5e5] (default 2)")
    q.add_argument("--steps", type=int, default=3000,
                   help="Langevin steps per network and noise level, integer in [10, 1e10] "
                        "(default 3000)")
    q.add_argument("--lr", type=float,
                   help="step size in Langevin time, a number > 0 (default: 0.1 / read-in "
                        "curvature at the droplet)")
    q.add_argument("--hot-fraction", type=float, default=0.125,
                   help="droplet weight per Fourier mode of the hot start, in [0, 1] "
                        "(default 0.125)")
    _add_common_options(q)
    q.set_defaults(func=_run)


def _run(args):
    from ..validation.hysteresis import (plan_modular_hysteresis, plot_modular_hysteresis,
                                         run_modular_hysteresis)
    from .validate import _floats, _planned
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 is not None else None
    kw = dict(preset=args.preset, scale=args.scale, sigma2=sigma2, nets=args.nets,
              steps=args.steps, lr=args.lr, seed=args.seed, hot_fraction=args.hot_fraction)
    return _planned(args, plan_modular_hysteresis, run_modular_hysteresis,
                    plot_modular_hysteresis, "hysteresis.png", _lines, kw)


def _lines(report, as_json):
    th = report.theory
    out = [] if as_json else [
        f"theory (network kernel 4 P^2 sigma_a^2 <Phi Psi>): GMFL-I for "
        f"{th['sigma2_gmfl2'] or 0:.4g} < sigma2 < {th['sigma2_gmfl1']:.4g}; hot droplets "
        f"(p={th['hot_fraction']:g}) melt above sigma2_s={th['sigma2_spinodal_hot']:.4g}; "
        f"barrier per mode pair at g_c {th['barrier_pair_at_gc']:.3g}"]
    for r in report.rows:
        if "a" not in r:
            out.append({"branch": r["branch"], "sigma2": r["sigma2"], "status": r["status"],
                        "message": r["message"]} if as_json else
                       f"{r['branch']} sigma2={r['sigma2']:g}: {r['message']}")
            continue
        if as_json:
            out.append({k: r[k] for k in ("branch", "sigma2", "phase_theory", "theory", "a",
                                          "droplet_fraction", "status", "message")})
            continue
        t, a, p = r["theory"], r["a"], r["droplet_fraction"]
        state = t["hot" if r["branch"] == "hot" else "cold"]
        out.append(f"{r['branch']:4s} sigma2={r['sigma2']:.4g} ({r['phase_theory']}): droplet "
                   f"fraction {p['sim_mean']:.4f} +- {p['std_error']:.4f} (theory {state['p']:.3g},"
                   f" equilibrium {t['equilibrium']['p']:.3g}); a {a['sim_mean']:.4f} +- "
                   f"{a['std_error']:.4f} (theory {state['a']:.4f})")
        if r["status"]:
            out.append(f"  {r['message']}")
    return out
