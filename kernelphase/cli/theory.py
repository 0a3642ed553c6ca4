"""``kernelphase theory finite|finite-d``: theory at the sizes of a simulation.

``finite-d``: the first-order point of the cubic teacher with the exact finite-d single-neuron
law in (Phi, |w_perp|^2) integrated instead of the EK saddle point
(:func:`kernelphase.solvers.finite_d.finite_d_transition`).

``finite``: the finite-data adaptive-kernel prediction alone.

The theory of :func:`kernelphase.solvers.finite_kernel.finite_data_kernel` on the training set
that ``kernelphase validate cubic --seed K`` samples (:func:`kernelphase.validation.
teacher_student.run_finite_theory`): per noise level b, c (test points), population b, c, the
learned cubic component, train and test loss, droplet mass and the Phi histogram, each with its
Monte Carlo error. Noise levels run on local processes or on ``--scheduler``. Every input is
checked before anything is written; ``--out`` receives ``report.json`` (written atomically, last);
``--run-dir`` keeps one checkpoint per noise level and continues with ``--resume`` only under
identical parameters (else exit 2 naming the first that differs).
"""
import os

__all__ = ["register"]

#: parameters that do not change the result and stay out of the run folder's key
_NOT_IN_KEY = ("func", "command", "kind", "out", "run_dir", "resume", "workers", "scheduler",
               "json")


def register(sub):
    p = sub.add_parser("theory", help="theory predictions at the sizes of a simulation")
    ts = p.add_subparsers(dest="kind", metavar="THEORY", required=True)
    q = ts.add_parser("finite", help="finite-data adaptive kernel on a simulation's own "
                                     "training set (cubic teacher)")
    q.add_argument("--preset", default="fig2", help="parameter set: fig2 (default fig2)")
    q.add_argument("--scale", type=float, default=0.125,
                   help="Table 1 width scale beta, in [1e-6, 1e3] (default 0.125 = 1/8)")
    q.add_argument("--data-scale", type=float,
                   help="Table 1 data scale alpha, in [1e-6, 1e3] (default: beta)")
    q.add_argument("--sigma2", help="comma-separated distinct noise levels sigma^2 in "
                                    "[1e-12, 1e12] at full scale, moved along the family with "
                                    "the preset (default: the preset's)")
    q.add_argument("--data-seed", type=int, default=0,
                   help="seed of the training data, as --seed of validate cubic, integer >= 0 "
                        "(default 0)")
    q.add_argument("--law", default="fluctuating",
                   help="single-neuron law: fluctuating (cavity factor L with the "
                        "fluctuations of the cavity residual), cavity (factor L) or eq7 (the "
                        "paper's mean field) (default fluctuating)")
    q.add_argument("--chains", type=int, default=512,
                   help="MALA chains, integer in [16, 1e6] (default 512)")
    q.add_argument("--steps", type=int, default=100,
                   help="MALA steps per fixed-point iteration, integer in [10, 1e6] "
                        "(default 100)")
    q.add_argument("--mc-seed", type=int, default=0,
                   help="seed of the Monte Carlo, integer >= 0 (default 0)")
    q.add_argument("--n-test", type=int, default=2000,
                   help="test points, integer in [1, 1e6] (default 2000)")
    q.add_argument("--tol", type=float, default=0.02,
                   help="relative change of the discrepancy at convergence, in (0, 1] "
                        "(default 0.02)")
    q.add_argument("--maxiter", type=int, default=12,
                   help="fixed-point iterations at most, integer in [1, 1000] (default 12)")
    q.add_argument("--out", help="folder for report.json (new, empty, or made by an earlier "
                                 "run; default: none, print only)")
    q.add_argument("--run-dir", help="checkpoint folder, one file per noise level (default: "
                                     "--out if given)")
    q.add_argument("--resume", action="store_true",
                   help="continue from the checkpoints of --run-dir (same parameters required)")
    q.add_argument("--workers", type=int,
                   help="local processes, integer in [1, 4096] (default: one per core)")
    q.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the noise levels on this dask.distributed scheduler "
                        "(pip install 'kernelphase[cluster]'; default: local)")
    q.add_argument("--json", action="store_true",
                   help="print the report as one JSON object on stdout (default: text lines)")
    q.set_defaults(func=_run_finite)
    q = ts.add_parser("finite-d", help="first-order point of the cubic teacher with the exact "
                                       "finite-d law of the neuron (Phi and |w_perp|^2 "
                                       "integrated)")
    q.add_argument("--eps", type=float, default=-0.3,
                   help="cubic coefficient of the teacher, in [-100, 100] (default -0.3)")
    q.add_argument("--sigma-w2", type=float, default=0.5,
                   help="read-in prior variance sigma_w^2, > 0 (default 0.5)")
    q.add_argument("--d", type=int, default=150, help="input dimension, integer in [3, 1e6] "
                                                      "(default 150)")
    q.add_argument("--rho", type=float, default=8 / 150,
                   help="rho = N sigma_a^2 / d, > 0 (default 8/150, the Fig. 2 point)")
    q.add_argument("--perp", choices=("chi2", "fixed"), default="chi2",
                   help="law of |w_perp|^2: chi2 (exact) or fixed at sigma_w^2 (the EK "
                        "approximation; default chi2)")
    q.add_argument("--width", type=int,
                   help="network width N: switches on the cavity factor (default: off)")
    q.add_argument("--n", type=int, help="training points; with --width and --sigma-a2 the "
                                         "answer includes sigma^2_c")
    q.add_argument("--sigma-a2", type=float, help="read-out prior variance sigma_a^2, > 0")
    q.add_argument("--u-lo", type=float, default=5.0,
                   help="lower end of the u scan, where the law has one peak (default 5)")
    q.add_argument("--u-hi", type=float, default=60.0, help="upper end of the u scan "
                                                            "(default 60)")
    q.add_argument("--json", action="store_true", help="print one JSON object")
    q.set_defaults(func=_run_finite_d)


def _run_finite(args):
    import contextlib

    from ..io import RunDir, atomic_write_json, check_output_dir, provenance, versions
    from ..validation.teacher_student import plan_finite_theory, run_finite_theory
    from .validate import _floats
    sigma2 = _floats(args.sigma2, "--sigma2") if args.sigma2 is not None else None
    kw = dict(preset=args.preset, scale=args.scale, sigma2=sigma2, data_seed=args.data_seed,
              law=args.law, chains=args.chains, steps=args.steps, mc_seed=args.mc_seed,
              n_test=args.n_test, tol=args.tol, maxiter=args.maxiter,
              data_scale=args.data_scale)
    plan = plan_finite_theory(workers=args.workers, **kw)       # every input, before output
    run_path = args.run_dir if args.run_dir is not None else args.out
    if args.resume and run_path is None:
        raise ValueError("--resume needs --run-dir (or --out) holding the earlier run")
    if args.out is not None:
        check_output_dir(args.out, "--out", resumable=True)
    if run_path is not None and run_path != args.out:
        check_output_dir(run_path, "--run-dir", resumable=True)
    client = None
    if args.scheduler is not None:
        from ..validation.ensemble import connect
        client = connect(args.scheduler)
    key = {**{k: v for k, v in vars(args).items() if k not in _NOT_IN_KEY}, **plan["key"]}
    try:
        with (RunDir(run_path, key, resume=args.resume,
                     option="--run-dir" if args.run_dir is not None else "--out")
              if run_path is not None else contextlib.nullcontext()) as run_dir:
            report = run_finite_theory(run_dir=run_dir, scheduler=client,
                                       workers=args.workers, **kw)
            out = report.to_dict()
            out["provenance"] = provenance({k: v for k, v in vars(args).items()
                                            if k != "func"}, seed=args.mc_seed)
            out["provenance"]["versions"] = versions()
            path = None
            if args.out is not None:
                os.makedirs(args.out, exist_ok=True)
                path = os.path.join(args.out, "report.json")
                atomic_write_json(path, out)
    finally:
        if client is not None:
            client.close()
    if args.json:
        from ._output import print_json
        print_json({**out, "report": path})
    else:
        for r in report.rows:
            print(_line(r))
        if path:
            print(f"wrote {path}")
    if not report.converged:
        import sys
        print(f"kernelphase: warning: {report.message}", file=sys.stderr)
    return 0


def _line(r):
    def f(name):
        o = r[name]
        return f"{o['value']:.4f} +- {o['se']:.4f}"
    return (f"sigma2={r['sigma2']:g} (N={r['width']}, n={r['n']}, d={r['d']}): population b "
            f"{f('b_exact')} (EK {r['ek']['b']:.4f}), c {f('c_exact')}, learned cubic "
            f"{f('learned_cubic')}; test points b {f('b')}; train loss {f('train_loss')}, "
            f"test loss {f('test_loss')}; {r['message']} ({r['iterations']} iterations, "
            f"{r['seconds']:.0f} s)")


def _run_finite_d(args):
    from ..solvers.finite_d import finite_d_transition
    from ._lists import emit
    r = finite_d_transition(args.eps, args.rho, args.d, sigma_w2=args.sigma_w2, perp=args.perp,
                            width=args.width, n=args.n, sigma_a2=args.sigma_a2, u_lo=args.u_lo,
                            u_hi=args.u_hi)
    emit(args, r, ("u_c", "sigma2_c", "phi_star", "q_droplet", "b_at_uc", "c_at_uc"))
    return 0
