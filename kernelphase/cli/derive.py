"""``kernelphase derive ntk|nngp|spectrum|action``: closed forms as text, LaTeX or JSON."""

from ._lists import spec_options

__all__ = ["register"]


def register(sub):
    p = sub.add_parser("derive", help="print closed forms (kernels, spectra, actions)")
    ds = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    for name, helptext in (("ntk", "infinite-width NTK of a two-layer net"),
                           ("nngp", "infinite-width NNGP kernel"),
                           ("spectrum", "NTK eigenvalues and multiplicities, x ~ N(0, I/D)")):
        q = ds.add_parser(name, help=helptext)
        q.add_argument("--activation", required=True,
                       help='a name (relu, erf, tanh, sin, ...) or a formula in z, e.g. '
                            '"z + eps*z**2/2"; numbers, z, parameter names, + - * / ** and erf, '
                            'exp, sqrt, relu, ... (never evaluated as Python); closed forms for '
                            'polynomials, erf and relu, quadrature otherwise'
                            + ('' if name != "spectrum" else '; spectrum: polynomials only'))
        q.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="parameter value, a finite number such as 0.25 or 1/3")
        q.add_argument("--sigma-w2", default="1", metavar="VALUE",
                       help="first-layer weight variance, a positive number (e.g. 1/2)")
        if name != "nngp":
            q.add_argument("--trained", choices=("first", "readout", "both"), default="first")
        if name == "spectrum":
            q.add_argument("--D", type=int, required=True, help="input dimension")
            q.add_argument("--measure", choices=("gaussian", "sphere"), default="gaussian")
            q.add_argument("--eigenfunctions", action="store_true",
                           help="also print each sector's eigenfunction, radial polynomial in "
                                "r2 = |x|^2 times the zonal harmonic in x1")
        else:
            for var, what in (("u", "x.x'"), ("n1", "|x|^2"), ("n2", "|x'|^2")):
                q.add_argument(f"--{var}", default=None, metavar="VALUE",
                               help=f"{var} = {what}: with --u, also print the kernel's value "
                                    f"there" + ("" if var == "u" else " (default 1)"))
        _fmt(q)
        q.set_defaults(func=_kernel_cmd, what=name)
    q = ds.add_parser("action", help="adaptive-kernel single-neuron action (Rubin et al.)")
    q.add_argument("teacher", choices=("cubic", "modular", "single-index"),
                   help="cubic: Rubin et al. App. A.2; modular: Sec. 3.2; single-index: any "
                        "activation and Hermite teacher (theory notes Sec. 12)")
    spec_options(q, "erf", teacher_dest="teacher_spec")
    _fmt(q)
    q.set_defaults(func=_action_cmd)


def _fmt(q):
    g = q.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="one JSON object on stdout")
    g.add_argument("--latex", action="store_true", help="LaTeX instead of plain text")


def _show(args, expr, extra=None):
    import sympy as sp
    from ..printing import latex
    from ._output import print_json
    if args.json:
        print_json(dict({"expr": str(expr), "latex": latex(expr)}, **(extra or {})))
    else:
        print(latex(expr) if args.latex else sp.sstr(expr))


def _point(args):
    """``(u, n1, n2)`` as floats if ``--u`` is given (norms default to 1), else None."""
    import math
    from .._checks import check_range
    from ..parse import parse_number
    if args.u is None:
        if args.n1 is not None or args.n2 is not None:
            raise ValueError("--n1/--n2 given without --u; give --u VALUE as well")
        return None
    n1, n2 = (check_range(k, parse_number(v or "1", k), 0) for k, v in
              (("n1", args.n1), ("n2", args.n2)))
    lim = math.sqrt(n1 * n2)
    return check_range("u", parse_number(args.u, "u"), -lim, lim), n1, n2


def _kernel_cmd(args):
    import sympy as sp
    from .._checks import check_int, check_positive
    from ..activations import as_activation
    from ..kernels import has_closed_form, kernel_function, nngp_kernel, ntk_kernel
    from ._output import parse_params
    from ..parse import parse_number
    sw2 = parse_number(args.sigma_w2, "sigma_w2", exact=True)
    check_positive("sigma_w2", float(sw2))
    act = as_activation(args.activation, parse_params(args.param))
    subs = {sp.Symbol(k): v for k, v in act.params}
    if args.what in ("nngp", "ntk"):
        point = _point(args)
        closed = has_closed_form(act)
        if not closed and point is None:
            raise ValueError(f"activation={act.text!r} is not a polynomial, k*erf(a*z) or "
                             f"k*relu(a*z), so its {args.what.upper()} has no closed form; give "
                             f"--u (and --n1, --n2) for its value by quadrature")
        extra = {"variables": {"u": "x.x'", "n1": "|x|^2", "n2": "|x'|^2"}}
        if point is not None:
            kf = kernel_function(act, args.what, getattr(args, "trained", "first"), sw2)
            extra.update(point=dict(zip(("u", "n1", "n2"), point)), method=kf.method,
                         value=float(kf.evaluate(*point)))
        if closed:
            K = nngp_kernel(act, sw2) if args.what == "nngp" else ntk_kernel(act, args.trained, sw2)
            _show(args, K.subs(subs), extra)
        elif args.json:
            from ._output import print_json
            print_json(dict(extra, expr=None, closed_form=False, method="quadrature"))
        else:
            print(f"activation={act.text!r}: no closed form; the kernel is computed by "
                  f"quadrature (kernelphase.kernels.kernel_function)")
        if point is not None and not args.json:
            print(f"value at u={point[0]:g}, n1={point[1]:g}, n2={point[2]:g}: "
                  f"{extra['value']:.15g} ({extra['method']})")
        return 0
    from ..spectra import gaussian_dot_product_spectrum, sphere_dot_product_spectrum
    D = check_int("D", args.D, 1)
    if not act.is_polynomial:
        raise ValueError(f"activation={args.activation!r}: spectrum needs a polynomial activation "
                         f"(the kernel must be a polynomial in u, n1, n2)")
    K = ntk_kernel(act, args.trained, sw2)
    spec = (gaussian_dot_product_spectrum if args.measure == "gaussian"
            else sphere_dot_product_spectrum)(K, D)
    rows = []
    for s in spec:
        ev = s.eigenvalue.subs(subs)
        rows.append({"name": s.name, "degree": s.degree, "eigenvalue_expr": str(s.eigenvalue),
                     "eigenvalue": float(ev) if ev.is_number else None,
                     "multiplicity": int(s.multiplicity)})
        if args.eigenfunctions:
            rows[-1].update(radial=str(s.radial.subs(subs)), harmonic=str(s.harmonic),
                            eigenfunction=str(s.eigenfunction.subs(subs)))
    if args.json:
        from ._output import print_json
        print_json({"sectors": rows, "kernel": str(K), "D": D, "measure": args.measure,
                    "params": {k: str(v) for k, v in act.params},
                    "variables": {"x1": "x.e1", "r2": "|x|^2"}})
    else:
        for r in rows:
            ev = r["eigenvalue_expr"] if r["eigenvalue"] is None else f"{r['eigenvalue']:.6g}"
            print(f"{r['name']:<28} eigenvalue {ev:<14} multiplicity {r['multiplicity']}"
                  + (f"   phi = {r['eigenfunction']}" if args.eigenfunctions else ""))
        if args.eigenfunctions:
            print("phi(x): x1 = x.e1, r2 = |x|^2 (zonal harmonic along e1 times a radial "
                  "polynomial); E_x'[K(x, x') phi(x')] = eigenvalue * phi(x)")
    return 0


def _action_cmd(args):
    from ..actions import cubic_action, modular_action
    if args.teacher == "single-index":
        import sympy as sp
        from ..moments import activation_expr
        from ..single_index import action_expr, symbols
        from ..teachers import as_teacher
        teacher = as_teacher(args.teacher_spec)
        degrees = [k for k, _ in teacher.coeffs]
        activation_expr(args.activation)  # checks the activation
        extra = {"parameters": ["Phi", "u", "sigma_w2"] + [f"b{k}" for k in degrees],
                 "teacher": {str(k): str(c) for k, c in teacher.coeffs}, "moments": "closed form"}
        try:
            expr = action_expr(args.activation, degrees)
        except NotImplementedError:  # moments by quadrature: keep m_k(v) as functions
            s = symbols()
            v = s["sigma_w2"] + s["Phi"] ** 2
            g = sum(s["b"][k] * s["Phi"] ** k * sp.Function(f"m_{k}")(v) for k in degrees)
            expr = s["Phi"] ** 2 / (2 * s["sigma_w2"]) - s["u"] / 2 * g ** 2
            extra["moments"] = ("m_k(v) = E[sigma^(k)(h)], h ~ N(0, v), by quadrature "
                                "(no closed form)")
        return _show(args, expr, extra)
    if args.teacher == "modular" and args.activation != "erf":
        raise ValueError(f"activation={args.activation!r}: the modular action is for the "
                         f"square activation of the paper; leave --activation unset")
    if args.teacher == "cubic":
        if args.activation != "erf":
            raise ValueError(f"activation={args.activation!r}: the cubic-teacher action is derived "
                             f"for 'erf' only")
        return _show(args, cubic_action(), {"parameters": ["Phi", "u", "b", "c", "sigma_w2"]})
    return _show(args, modular_action(), {"parameters": ["Phi", "g", "gamma"]})
