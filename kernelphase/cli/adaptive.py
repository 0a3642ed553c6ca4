"""``kernelphase transition|phase|phase-diagram cubic|modular``: the adaptive-kernel theory."""
import os

__all__ = ["register"]


def _cubic_args(p):
    p.add_argument("--eps", type=float, required=True, help="cubic teacher coefficient")
    p.add_argument("--sigma-w2", type=float, default=0.5, help="read-in prior sigma_w^2 (default 0.5)")
    p.add_argument("--rho", type=float, help="invariant rho = N sigma_a^2 / d")
    p.add_argument("--n", type=int, help="training set size")
    p.add_argument("--d", type=int, help="input dimension")
    p.add_argument("--width", type=int, help="hidden width N")
    p.add_argument("--sigma-a2", type=float, help="summed readout variance sigma_a^2")


def _modular_args(p):
    p.add_argument("--P", type=int, default=401, help="prime modulus (default 401)")
    p.add_argument("--width", type=int, default=1000)
    p.add_argument("--sigma-a2", type=float, default=2e-6)
    p.add_argument("--gamma", type=float, default=1e-4, help="sextic weight-decay coefficient")


def register(sub):
    for cmd, helptext in (("transition", "locate the phase transitions"),
                          ("phase", "phase and order parameters at one noise level")):
        p = sub.add_parser(cmd, help=f"adaptive-kernel theory: {helptext}")
        ms = p.add_subparsers(dest="model", metavar="MODEL", required=True)
        for model, add in (("cubic", _cubic_args), ("modular", _modular_args)):
            q = ms.add_parser(model)
            add(q)
            if cmd == "phase":
                q.add_argument("--sigma2", type=float, required=True, help="noise level sigma^2")
            q.add_argument("--json", action="store_true")
            q.add_argument("--plot", help="write the figure to this PNG file")
            q.set_defaults(func=_transition if cmd == "transition" else _phase)
    p = sub.add_parser("phase-diagram", help="adaptive-kernel phase diagram over two parameters")
    ms = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for model, add in (("cubic", _cubic_args), ("modular", _modular_args)):
        q = ms.add_parser(model)
        add(q)
        if model == "cubic":
            q.set_defaults(eps=None)
            for a in q._actions:
                if a.dest == "eps":
                    a.required = False
        q.add_argument("--sigma2", type=float)
        q.add_argument("--u", type=float)
        q.add_argument("--x", required=True, help="NAME=lo:hi:count")
        q.add_argument("--y", required=True, help="NAME=lo:hi:count")
        q.add_argument("--out", required=True, help="output folder")
        q.add_argument("--workers", type=int, default=2)
        q.set_defaults(func=_diagram)


def _cubic_transition(args):
    from ..solvers.cubic import cubic_transition
    return cubic_transition(args.eps, args.sigma_w2, rho=args.rho, n=args.n, d=args.d,
                            width=args.width, sigma_a2=args.sigma_a2)


def _modular_transition(args):
    from ..solvers.modular import modular_transition
    return modular_transition(args.P, args.width, args.sigma_a2, args.gamma)


def _transition(args):
    from ._output import print_json
    tr = _cubic_transition(args) if args.model == "cubic" else _modular_transition(args)
    if args.plot:
        from ..solvers import plots
        if args.model == "cubic":
            plots.plot_cubic_transition(tr, args.plot, d=args.d or 150, n=args.n,
                                        width=args.width, sigma_a2=args.sigma_a2)
        else:
            plots.plot_modular(tr, args.plot)
    d = tr.to_dict()
    if args.json:
        print_json(d)
    elif args.model == "cubic" and not tr.converged:
        print(f"no transition: {tr.message}")
    else:
        keys = (("u_spinodal", "u_c", "phi_star", "b_at_uc", "sigma2_c") if args.model == "cubic"
                else ("sigma2_gmfl1", "sigma2_gmfl2", "a_at_gmfl2"))
        for k in keys:
            if d.get(k) is not None:
                print(f"{k} = {d[k]:.6g}")
        if args.plot:
            print(f"figure: {args.plot}")
    return 0


def _phase(args):
    from ._output import print_json
    if args.model == "cubic":
        from ..solvers.cubic import cubic_phase
        missing = [o for o, v in (("--n", args.n), ("--d", args.d), ("--width", args.width),
                                  ("--sigma-a2", args.sigma_a2)) if v is None]
        if missing:
            raise ValueError(f"phase cubic needs {', '.join(missing)} (the physical parameters)")
        r = cubic_phase(args.eps, args.sigma2, args.n, args.d, args.width, args.sigma_a2,
                        args.sigma_w2)
    else:
        from ..solvers.modular import modular_phase
        r = modular_phase(args.P, args.width, args.sigma_a2, args.gamma, args.sigma2)
    if args.json:
        print_json(r.to_dict())
    else:
        print(f"phase = {r.phase}")
        for k, v in r.to_dict().items():
            if isinstance(v, float):
                print(f"{k} = {v:.6g}")
    return 0


def _parse_axis(text, option):
    name, sep, rng = text.partition("=")
    parts = rng.split(":")
    if not sep or len(parts) != 3:
        raise ValueError(f"{option}={text!r} is not of the form NAME=lo:hi:count")
    try:
        return name.strip(), float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"{option}={text!r}: lo and hi must be numbers and count an integer") from None


def _diagram(args):
    from ..io import atomic_write_json, provenance, write_csv
    from ..solvers.phase_diagram import phase_diagram
    from ..solvers.plots import plot_phase_diagram
    x, y = _parse_axis(args.x, "--x"), _parse_axis(args.y, "--y")
    names = (("eps", "sigma_w2", "rho", "n", "d", "width", "sigma_a2", "sigma2", "u")
             if args.model == "cubic" else ("P", "width", "sigma_a2", "gamma", "sigma2"))
    fixed = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if x[0] == y[0]:
        raise ValueError(f"--x and --y both vary {x[0]!r}; choose two different parameters")
    pd = phase_diagram(args.model, x, y, fixed, workers=args.workers, progress=True)
    os.makedirs(args.out, exist_ok=True)
    header = [pd.x_name, pd.y_name, "phase", *pd.order, "status", "residual"]
    rows = []
    for j, yv in enumerate(pd.y):
        for i, xv in enumerate(pd.x):
            code = pd.phase[j, i]
            rows.append([xv, yv, "FAILED" if code < 0 else ("GFL", "GMFL-I", "GMFL-II")[code],
                         *(pd.order[k][j, i] for k in pd.order), pd.status[j, i], pd.residual[j, i]])
    write_csv(os.path.join(args.out, "phase_diagram.csv"), header, rows)
    atomic_write_json(os.path.join(args.out, "phase_diagram.json"),
                      dict(pd.to_dict(), provenance=provenance({"model": args.model, "x": args.x,
                                                               "y": args.y, **fixed})))
    plot_phase_diagram(pd, os.path.join(args.out, "phase_diagram.png"))
    print(f"wrote {args.out}/phase_diagram.csv, .json, .png ({pd.message})")
    return 0
