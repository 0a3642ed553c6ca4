"""``kernelphase derive ntk|nngp|spectrum|action``: closed forms as text, LaTeX or JSON."""

__all__ = ["register"]


def register(sub):
    p = sub.add_parser("derive", help="print closed forms (kernels, spectra, actions)")
    ds = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    for name, helptext in (("ntk", "infinite-width NTK of a two-layer net"),
                           ("nngp", "infinite-width NNGP kernel"),
                           ("spectrum", "NTK eigenvalues and multiplicities, x ~ N(0, I/D)")):
        q = ds.add_parser(name, help=helptext)
        q.add_argument("--activation", required=True,
                       help='polynomial in z, e.g. "z + eps*z**2/2", or "erf"; numbers, z, '
                            'parameter names, + - * / ** and erf, exp, sqrt, ... (never '
                            'evaluated as Python)')
        q.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="parameter value, a finite number such as 0.25 or 1/3")
        q.add_argument("--sigma-w2", default="1", metavar="VALUE",
                       help="first-layer weight variance, a positive number (e.g. 1/2)")
        if name != "nngp":
            q.add_argument("--trained", choices=("first", "readout", "both"), default="first")
        if name == "spectrum":
            q.add_argument("--D", type=int, required=True, help="input dimension")
            q.add_argument("--measure", choices=("gaussian", "sphere"), default="gaussian")
        _fmt(q)
        q.set_defaults(func=_kernel_cmd, what=name)
    q = ds.add_parser("action", help="adaptive-kernel single-neuron action (Rubin et al.)")
    q.add_argument("teacher", choices=("cubic", "modular", "single-index"),
                   help="cubic: Rubin et al. App. A.2; modular: Sec. 3.2; single-index: any "
                        "activation and Hermite teacher (theory notes Sec. 12)")
    q.add_argument("--activation", default="erf",
                   help="activation: a name (erf, tanh, sin, relu, ...) or a formula in z "
                        "(default erf; never evaluated as Python)")
    q.add_argument("--teacher", dest="teacher_spec", default="He1 - 0.3*He3",
                   help="single-index teacher, a polynomial in He0..He8 or in z "
                        "(default 'He1 - 0.3*He3')")
    _fmt(q)
    q.set_defaults(func=_action_cmd)


def _fmt(q):
    g = q.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="one JSON object on stdout")
    g.add_argument("--latex", action="store_true", help="LaTeX instead of plain text")


def _show(args, expr, extra=None):
    import sympy as sp
    from ._output import print_json
    if args.json:
        print_json(dict({"expr": str(expr), "latex": sp.latex(expr)}, **(extra or {})))
    else:
        print(sp.latex(expr) if args.latex else sp.sstr(expr))


def _kernel_cmd(args):
    import sympy as sp
    from .._checks import check_int, check_positive
    from ..activations import parse_activation
    from ..kernels import nngp_kernel, ntk_kernel
    from ._output import parse_params
    from ..parse import parse_number
    sw2 = parse_number(args.sigma_w2, "sigma_w2", exact=True)
    check_positive("sigma_w2", float(sw2))
    act = parse_activation(args.activation, parse_params(args.param))
    subs = {sp.Symbol(k): v for k, v in act.params}
    if args.what == "nngp":
        return _show(args, nngp_kernel(act, sw2).subs(subs))
    K = ntk_kernel(act, args.trained, sw2)
    if args.what == "ntk":
        return _show(args, K.subs(subs), {"variables": {"u": "x.x'", "n1": "|x|^2", "n2": "|x'|^2"}})
    from ..spectra import gaussian_dot_product_spectrum, sphere_dot_product_spectrum
    D = check_int("D", args.D, 1)
    if not act.is_polynomial:
        raise ValueError(f"activation={args.activation!r}: spectrum needs a polynomial activation "
                         f"(the kernel must be a polynomial in u, n1, n2)")
    spec = (gaussian_dot_product_spectrum if args.measure == "gaussian"
            else sphere_dot_product_spectrum)(K, D)
    rows = []
    for s in spec:
        ev = s.eigenvalue.subs(subs)
        rows.append({"name": s.name, "degree": s.degree, "eigenvalue_expr": str(s.eigenvalue),
                     "eigenvalue": float(ev) if ev.is_number else None,
                     "multiplicity": int(s.multiplicity)})
    if args.json:
        from ._output import print_json
        print_json({"sectors": rows, "kernel": str(K), "D": D, "measure": args.measure,
                    "params": {k: str(v) for k, v in act.params}})
    else:
        for r in rows:
            ev = r["eigenvalue_expr"] if r["eigenvalue"] is None else f"{r['eigenvalue']:.6g}"
            print(f"{r['name']:<28} eigenvalue {ev:<14} multiplicity {r['multiplicity']}")
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
