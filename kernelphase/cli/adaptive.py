"""``kernelphase transition|phase|phase-diagram cubic|modular|single-index``: the adaptive-kernel
theory."""
import os

from ._lists import spec_options

__all__ = ["register"]


def _cubic_args(p, eps_required=True):
    p.add_argument("--eps", type=float, required=eps_required, default=None,
                   help="cubic teacher coefficient: y = He1 + eps He3 (finite, |eps| <= 100)")
    _cubic_args_common(p)


def _modular_args(p):
    p.add_argument("--P", type=int, default=401, help="prime modulus P (default 401)")
    p.add_argument("--width", type=int, default=1000, help="hidden width N >= 1 (default 1000)")
    p.add_argument("--sigma-a2", type=float, default=2e-6,
                   help="summed read-out variance sigma_a^2 > 0 (default 2e-6)")
    p.add_argument("--gamma", type=float, default=1e-4,
                   help="sextic weight-decay coefficient gamma > 0 (default 1e-4)")


def _single_index_args(p):
    spec_options(p, "erf")
    p.add_argument("--stabiliser", metavar="LAM*Phi**P",
                   help="term lam*|Phi|^p (lam > 0, p > 2) added to the action, e.g. "
                        "'1e-3*Phi**8': keeps it bounded below for activations growing faster "
                        "than linearly (default none)")
    _cubic_args_common(p)


def _cubic_args_common(p):
    p.add_argument("--sigma-w2", type=float, default=0.5,
                   help="read-in prior variance times d, sigma_w^2 > 0 (default 0.5)")
    p.add_argument("--rho", type=float,
                   help="scaling invariant rho = N sigma_a^2 / d > 0 (or give --n --d --width "
                        "--sigma-a2)")
    p.add_argument("--n", type=int, help="training set size n >= 1")
    p.add_argument("--d", type=int, help="input dimension d >= 1")
    p.add_argument("--width", type=int, help="hidden width N >= 1")
    p.add_argument("--sigma-a2", type=float,
                   help="summed read-out variance sigma_a^2 > 0 (a_i ~ N(0, sigma_a^2/N))")


def register(sub):
    for cmd, helptext in (("transition", "locate the phase transitions"),
                          ("phase", "phase and order parameters at one noise level")):
        p = sub.add_parser(cmd, help=f"adaptive-kernel theory: {helptext}")
        ms = p.add_subparsers(dest="model", metavar="MODEL", required=True)
        for model, add in (("cubic", _cubic_args), ("modular", _modular_args)):
            q = ms.add_parser(model, help=f"{model} teacher")
            add(q)
            if cmd == "phase":
                q.add_argument("--sigma2", type=float, required=True,
                               help="noise level sigma^2 > 0 (the posterior temperature)")
            q.add_argument("--json", action="store_true", help="print one JSON object")
            q.add_argument("--plot", help="write the figure to this file (.png, .pdf, .svg or "
                                          ".eps; parameters and versions in its metadata)")
            q.set_defaults(func=_transition if cmd == "transition" else _phase)
        q = ms.add_parser("single-index", help="any activation and single-index Hermite "
                                                "teacher (equivalent-kernel limit)")
        _single_index_args(q)
        if cmd == "phase":
            q.add_argument("--sigma2", type=float,
                           help="noise level sigma^2 > 0 (with --n --d --width --sigma-a2)")
            q.add_argument("--u", type=float, help="interaction u > 0 (with --rho), instead "
                                                   "of --sigma2")
        q.add_argument("--json", action="store_true", help="print one JSON object")
        q.set_defaults(func=_transition if cmd == "transition" else _phase, plot=None)
    p = sub.add_parser("phase-diagram", help="adaptive-kernel phase diagram over two parameters")
    ms = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    for model, add in (("cubic", lambda q: _cubic_args(q, eps_required=False)),
                       ("modular", _modular_args), ("single-index", _single_index_diagram_args)):
        q = ms.add_parser(model, help=f"{model} teacher" if model != "single-index" else
                          "any activation and single-index Hermite teacher")
        add(q)
        q.add_argument("--sigma2", type=float, help="noise level sigma^2 > 0, if not an axis")
        if model != "modular":
            q.add_argument("--u", type=float, help="interaction u > 0, if not an axis")
        example = {"cubic": "eps=-1.2:-0.1:100", "modular": "sigma2=0.1:0.3:50",
                   "single-index": "c3=-1.2:-0.1:100"}[model]
        q.add_argument("--x", required=True,
                       help=f"x axis as NAME=lo:hi:count (or NAME:lo:hi:count), e.g. {example}")
        q.add_argument("--y", required=True, help="y axis as NAME=lo:hi:count, e.g. u=5:120:100")
        q.add_argument("--out", required=True,
                       help="output folder for phase_diagram.csv, .json and .png (new, empty, "
                            "or one kernelphase wrote)")
        q.add_argument("--workers", type=int, default=2, help="worker processes >= 1 (default 2)")
        q.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the groups on this dask.distributed scheduler "
                            "(pip install 'kernelphase[cluster]'; default: local processes)")
        q.add_argument("--json", action="store_true", help="also print the diagram as one JSON object")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        q.set_defaults(func=_diagram)


def _single_index_diagram_args(p):
    _single_index_args(p)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="value of an activation parameter (beta in 'tanh(beta*z)') or of a "
                        "teacher coefficient c0..c8, if not an axis; a finite number such as "
                        "0.25 or 1/3")


_PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".eps")     # kernelphase.figures.FORMATS


def _cubic_transition(args):
    from ..solvers.cubic import cubic_transition
    return cubic_transition(args.eps, args.sigma_w2, rho=args.rho, n=args.n, d=args.d,
                            width=args.width, sigma_a2=args.sigma_a2)


def _modular_transition(args):
    from ..solvers.modular import modular_transition
    return modular_transition(args.P, args.width, args.sigma_a2, args.gamma)


def _print_result(d, keys):
    """Plain text: the chosen values, then converged and message (always)."""
    for k in keys:
        v = d.get(k)
        if isinstance(v, float):
            print(f"{k} = {v:.6g}")
        elif v is not None and not isinstance(v, (dict, list)):
            print(f"{k} = {v}")
    print(f"converged = {d['converged']}")
    print(f"message = {d['message']}")


def _transition(args):
    from ..io import check_output_file
    from ._output import print_json
    if getattr(args, "plot", None) is not None:
        check_output_file(args.plot, "--plot", _PLOT_SUFFIXES)
    if args.model == "single-index":
        from ..moments import activation_expr
        from ..teachers import as_teacher
        activation_expr(args.activation)  # parse (and reject) before the solver is loaded
        as_teacher(args.teacher)
        from ..solvers.single_index import single_index_transition
        tr = single_index_transition(args.activation, args.teacher, args.sigma_w2, rho=args.rho,
                                     n=args.n, d=args.d, width=args.width,
                                     sigma_a2=args.sigma_a2, stabiliser=args.stabiliser)
    else:
        tr = _cubic_transition(args) if args.model == "cubic" else _modular_transition(args)
    if getattr(args, "plot", None) is not None:
        from ..solvers import plots
        if args.model == "cubic":
            plots.plot_cubic_transition(tr, args.plot, d=args.d or 150, n=args.n,
                                        width=args.width, sigma_a2=args.sigma_a2)
        else:
            plots.plot_modular(tr, args.plot)
    d = tr.to_dict()
    if args.json:
        print_json(d)
        return 0
    keys = {"cubic": ("u_spinodal", "u_c", "phi_star", "b_at_uc", "sigma2_c"),
            "single-index": ("order", "u_spinodal", "u_c", "phi_star", "sigma2_c"),
            "modular": ("sigma2_gmfl1", "sigma2_gmfl2", "a_at_gmfl2", "g_c", "phi_plus")}
    _print_result(d, keys[args.model])
    bs = [f"b{k} = {v:.6g}" for k, v in enumerate(d.get("b") or []) if v]
    if args.model == "single-index" and bs:
        print("b: " + ", ".join(bs))
    if getattr(args, "plot", None) is not None:
        print(f"figure: {args.plot}")
    return 0


def _phase(args):
    from ..io import check_output_file
    from ._output import print_json
    if args.plot is not None:
        check_output_file(args.plot, "--plot", _PLOT_SUFFIXES)
    if args.model == "single-index":
        r = _single_index_phase(args)
    elif args.model == "cubic":
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
    if args.plot is not None:
        from ..solvers import plots
        plots.plot_phase_point(r, args.plot)
    d = r.to_dict()
    if args.json:
        print_json(d)
        return 0
    keys = ["phase"] + [k for k, v in d.items() if isinstance(v, (float, bool)) and
                        k not in ("converged", "residual")] + ["residual"]
    _print_result(d, keys)
    if args.model == "single-index":
        print("b: " + ", ".join(f"b{k} = {v:.6g}" for k, v in enumerate(d["b"]) if v))
    if args.plot is not None:
        print(f"figure: {args.plot}")
    return 0


def _single_index_phase(args):
    from ..moments import activation_expr
    from ..teachers import as_teacher
    activation_expr(args.activation)
    as_teacher(args.teacher)
    phys = (args.n, args.d, args.width, args.sigma_a2)
    if (args.sigma2 is None) == (args.u is None):
        raise ValueError("phase single-index needs exactly one of --sigma2 (with --n --d --width "
                         "--sigma-a2) and --u (with --rho)")
    from ..solvers.single_index import _rho_from, u_from_sigma2
    from ..solvers.single_index import single_index_phases
    rho, phys = _rho_from(args.rho, *phys)
    if args.sigma2 is not None:
        from .._checks import check_range
        if not phys:
            raise ValueError("--sigma2 needs --n --d --width --sigma-a2 (or give --u and --rho)")
        u = u_from_sigma2(check_range("sigma2", args.sigma2, 0, 1e12, lo_open=True), *phys)
    else:
        u = args.u
    return single_index_phases(args.activation, args.teacher, [u], rho, args.sigma_w2,
                               phys[1] if phys else 150, stabiliser=args.stabiliser)[0]


def _parse_axis(text, option):
    name, sep, rng = text.partition("=")
    parts = rng.split(":")
    if not sep and text.count(":") == 3:
        name, sep, rng = text.partition(":")
        parts = rng.split(":")
    if not sep or len(parts) != 3:
        raise ValueError(f"{option}={text!r} is not of the form NAME=lo:hi:count")
    try:
        return name.strip(), float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"{option}={text!r}: lo and hi must be numbers and count an integer") from None


def _diagram(args):
    from ..io import atomic_write_json, check_output_dir, provenance, staged_dir, write_csv
    from ..results import jsonable
    from ..solvers.phase_diagram import phase_diagram
    from ..solvers.plots import plot_phase_diagram
    from ._output import print_json
    check_output_dir(args.out, "--out")
    x, y = _parse_axis(args.x, "--x"), _parse_axis(args.y, "--y")
    names = {"cubic": ("eps", "sigma_w2", "rho", "n", "d", "width", "sigma_a2", "sigma2", "u"),
             "modular": ("P", "width", "sigma_a2", "gamma", "sigma2"),
             "single-index": ("activation", "teacher", "stabiliser", "sigma_w2", "rho", "n", "d",
                              "width", "sigma_a2", "sigma2", "u")}[args.model]
    fixed = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if args.model == "single-index":
        from ._output import parse_params
        fixed.update({k: float(v) for k, v in parse_params(args.param).items()})
    for axis in (x, y):
        fixed.pop(axis[0], None)
    client = None
    if args.scheduler is not None:
        from ..validation.ensemble import connect
        client = connect(args.scheduler)
    try:
        pd = phase_diagram(args.model, x, y, fixed, workers=args.workers,
                           progress=None if not args.no_progress else False, scheduler=client)
    finally:
        if client is not None:
            client.close()
    cols = [k for k in pd.order if k not in (pd.x_name, pd.y_name)]   # no column twice
    header = [pd.x_name, pd.y_name, "phase", *cols, "status", "residual"]
    rows = []
    for j, yv in enumerate(pd.y):
        for i, xv in enumerate(pd.x):
            code = pd.phase[j, i]
            rows.append([xv, yv, "unknown" if code < 0 else ("GFL", "GMFL-I", "GMFL-II")[code],
                         *(pd.order[k][j, i] for k in cols), pd.status[j, i], pd.residual[j, i]])
    prov = provenance({"model": args.model, "x": args.x, "y": args.y, **pd.params,
                       "workers": args.workers, "scheduler": args.scheduler})
    record = dict(pd.to_dict(), provenance=prov)
    with staged_dir(args.out, manifest=prov) as st:
        write_csv(os.path.join(st, "phase_diagram.csv"), header, rows)
        atomic_write_json(os.path.join(st, "phase_diagram.json"), record)
        plot_phase_diagram(pd, os.path.join(st, "phase_diagram.png"))
    if args.json:
        print_json(jsonable(record))
    else:
        print(f"wrote {os.path.join(args.out, 'phase_diagram.csv')}, .json, .png")
        print(f"converged = {pd.converged}")
        print(f"message = {pd.message}")
    return 0
