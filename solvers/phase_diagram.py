r"""Phase diagrams of the adaptive-kernel theory over any two parameters.

Each grid point carries its phase code (0 GFL, 1 GMFL-I, 2 GMFL-II, -1 unconverged), order
parameters, status and residual, as ``scipy.optimize.elementwise`` does, so one bad point never
spoils a diagram. Cubic points that share every parameter but u are solved together: one
transition, then one continuation of the mixed branch through their u values
(:func:`kernelphase.solvers.cubic.cubic_phases`), so neighbouring points lie on one branch.
Single-index points (any activation, any Hermite teacher) are grouped the same way and solved by
:func:`kernelphase.solvers.single_index.single_index_transition` and
:func:`~kernelphase.solvers.single_index.single_index_phases`; their axes may also be teacher
coefficients ``c0 .. c8`` and the parameters of the activation text (``beta`` in
``"tanh(beta*z)"``). Groups are distributed over a process pool (``workers``; numba's on-disk
cache is shared) or, with ``scheduler``, over a ``dask.distributed`` cluster: the same group
function on the same inputs, so both give the same numbers.
"""
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from kernelphase._checks import check_choice, check_grid, check_int, check_range
from kernelphase.results import Result

__all__ = ["PhaseDiagram", "phase_diagram", "PHASES", "AXES"]

PHASES = ("GFL", "GMFL-I", "GMFL-II")
_K = 8   # highest teacher degree (kernelphase.teachers.MAX_DEGREE)
#: axis names per model; single-index also takes the activation's own parameters
AXES = {"cubic": ("eps", "u", "rho", "sigma_w2", "sigma2", "n", "d", "width", "sigma_a2"),
        "modular": ("sigma2", "width", "sigma_a2", "gamma", "P"),
        "single-index": ("u", "sigma2", "rho", "sigma_w2", "n", "d", "width", "sigma_a2")
                        + tuple(f"c{k}" for k in range(_K + 1))}
_ORDER = {"cubic": ("u", "b", "c", "phi_star", "droplet_fraction", "learned_cubic"),
          "modular": ("u", "a", "droplet_weight", "mode_power", "target_component"),
          "single-index": ("u", "u_c", "phi_star", "droplet_fraction")
                          + tuple(f"b{k}" for k in range(_K + 1))
                          + tuple(f"learned{k}" for k in range(_K + 1))}
_NOT_PARAMS = ("activation", "teacher", "stabiliser")   # single-index spec entries of ``fixed``
_MAX_POINTS = 250_000
_U_MAX = 1e12


@dataclass(frozen=True)
class PhaseDiagram(Result):
    """Grid result: ``phase`` codes and ``order[name]`` arrays of shape (ny, nx); ``status``
    holds each point's code from :data:`kernelphase.results.STATUS`."""
    model: str
    x_name: str
    x: np.ndarray
    y_name: str
    y: np.ndarray
    phase: np.ndarray
    order: dict
    status: np.ndarray
    residual: np.ndarray
    message: str
    params: dict = field(default_factory=dict)


def _need(p, name, model, why=""):
    if name not in p:
        raise ValueError(f"phase-diagram {model} needs {name} (fixed or as an axis){why}")
    return p[name]


def _rho_u(p, model):
    """(rho, u) of one grid point: rho given or N sigma_a^2/d; u given or
    n^2 sigma_a^2/(sigma^4 d N); every value checked."""
    phys = [k for k in ("n", "d", "width", "sigma_a2") if k in p]
    for k in ("n", "d", "width"):
        if k in p:
            check_int(k, p[k], 1, 10 ** 12)
    if "sigma_a2" in p:
        check_range("sigma_a2", p["sigma_a2"], 0, 1e12, lo_open=True)
    if "rho" in p:
        rho = check_range("rho", p["rho"], 0, 1e12, lo_open=True)
    elif len(phys) == 4:
        rho = p["width"] * p["sigma_a2"] / p["d"]
    else:
        raise ValueError(f"phase-diagram {model} needs rho, or all of n, d, width and sigma_a2")
    if "u" in p:
        u = check_range("u", p["u"], 0, _U_MAX, lo_open=True)
    elif "sigma2" in p and len(phys) == 4:
        s2 = check_range("sigma2", p["sigma2"], 0, 1e12, lo_open=True)
        u = p["n"] ** 2 * p["sigma_a2"] / (s2 ** 2 * p["d"] * p["width"])
        if not 0 < u <= _U_MAX:
            raise ValueError(f"sigma2={s2!r} gives u={u:.3g}, outside the valid range "
                             f"(0, {_U_MAX:g}]")
    else:
        raise ValueError(f"phase-diagram {model} needs u, or sigma2 with n, d, width and "
                         f"sigma_a2")
    return rho, u


def _cubic_point(p):
    """(eps, sigma_w2, rho, d, u) of one grid point, every value checked."""
    eps = check_range("eps", _need(p, "eps", "cubic"), -100, 100)
    sw2 = check_range("sigma_w2", p.get("sigma_w2", 0.5), 0, 1e6, lo_open=True)
    rho, u = _rho_u(p, "cubic")
    return eps, sw2, rho, int(p.get("d", 150)), u


def _cubic_group(args):
    """One transition and one branch continuation for points differing only in u."""
    from .cubic import cubic_phases
    (eps, sw2, rho, d), us = args
    out = []
    try:
        rs = cubic_phases(eps, us, rho, sw2, d)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return [(-1, [math.nan] * 6, 3, math.inf)] * len(us)
    for r in rs:
        out.append((PHASES.index(r.phase) if r.converged else -1,
                    [getattr(r, k) for k in _ORDER["cubic"]], r.status, r.residual))
    return out


def _single_index_group(args):
    """One transition and one continuation for single-index points differing only in u."""
    from .single_index import single_index_phases, single_index_transition
    (act, teacher, sw2, rho, d, stab), us = args
    try:
        tr = single_index_transition(act, teacher, sw2, rho=rho, stabiliser=stab)
        rs = single_index_phases(act, teacher, us, rho, sw2, d, tr, stabiliser=stab)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return [(-1, [math.nan] * len(_ORDER["single-index"]), 3, math.inf)] * len(us)
    u_c = tr.u_c if tr.converged else math.nan
    return [(PHASES.index(r.phase) if r.converged else -1,
             [r.u, u_c, r.phi_star, r.droplet_fraction, *r.b, *r.learned], r.status, r.residual)
            for r in rs]


def _activation_template(activation):
    """(SymPy expression, its parameter names, their given values) of an activation spec
    (:func:`kernelphase.activations.as_activation`: a name, text such as ``"tanh(beta*z)"``
    read by the whitelisting parser, an Activation or a SymPy expression)."""
    from kernelphase.activations import Z, as_activation
    act = as_activation(activation)
    expr = act.expr
    given = {k: v for k, v in act.params if v is not None}
    names = tuple(sorted(str(s) for s in expr.free_symbols - {Z}))
    clash = [n for n in names if n in AXES["single-index"] or n in _NOT_PARAMS]
    if clash:
        raise ValueError(f"activation={str(activation)!r}: parameter name {clash[0]!r} is "
                         f"also a model parameter; rename it")
    return expr, names, given


def _single_index_specs(fixed):
    """Builder of the (activation expression, Teacher) of a grid point, memoised over the
    activation parameters and teacher coefficients, which it checks; and the parameter names."""
    import sympy as sp
    from kernelphase.moments import activation_expr
    from kernelphase.teachers import as_teacher
    text = fixed.get("activation", "erf")
    expr, names, given = _activation_template(text)
    if "teacher" not in fixed:
        raise ValueError("phase-diagram single-index needs teacher, e.g. 'He1 - 0.3*He3'")
    base = as_teacher(fixed["teacher"])
    cache = {}

    def value(p, n):
        if n in p or n in given:
            return p[n] if n in p else given[n]
        raise ValueError(f"phase-diagram single-index needs {n}, a parameter of "
                         f"activation={str(text)!r} (fixed, e.g. --param {n}=1, or as an axis)")

    def spec(p):
        vals = tuple(check_range(n, value(p, n)) for n in names)
        coef = tuple((f"c{k}", check_range(f"c{k}", p[f"c{k}"], -100, 100))
                     for k in range(_K + 1) if f"c{k}" in p)
        key = (vals, coef)
        if key not in cache:
            act = expr.subs({sp.Symbol(n): sp.Float(v) for n, v in zip(names, vals)})
            try:
                act = activation_expr(act)
            except ValueError as exc:
                at = ", ".join(f"{n}={v!r}" for n, v in zip(names, vals))
                raise ValueError(f"{at} makes activation={str(text)!r} invalid: {exc}") from None
            cache[key] = (act, base.replace(**dict(coef)) if coef else base)
        return cache[key]
    return spec, names


def _modular_group(args):
    from .modular import modular_phase
    out = []
    for p in args:
        r = modular_phase(p["P"], p["width"], p["sigma_a2"], p["gamma"], p["sigma2"])
        out.append((PHASES.index(r.phase) if r.converged else -1,
                    [getattr(r, k) for k in _ORDER["modular"]], r.status, r.residual))
    return out


def _cubic_jobs(points):
    """Group cubic points by everything but u: {(eps, sw2, rho, d): [(u, j, i)]}."""
    groups = {}
    for j, row in enumerate(points):
        for i, p in enumerate(row):
            eps, sw2, rho, d, u = _cubic_point(p)
            groups.setdefault((eps, sw2, rho, d), []).append((u, j, i))
    return groups


def _single_index_jobs(points, fixed):
    """Group single-index points by everything but u:
    {(act, teacher, sw2, rho, d, stabiliser): [(u, j, i)]}."""
    from .single_index import _stabiliser
    spec, _ = _single_index_specs(fixed)
    stab = fixed.get("stabiliser")
    stab = _stabiliser(stab) if stab is not None else None
    groups = {}
    for j, row in enumerate(points):
        for i, p in enumerate(row):
            act, teacher = spec(p)
            sw2 = check_range("sigma_w2", p.get("sigma_w2", 0.5), 0, 1e6, lo_open=True)
            rho, u = _rho_u(p, "single-index")
            key = (act, teacher, sw2, rho, int(p.get("d", 150)), stab)
            groups.setdefault(key, []).append((u, j, i))
    return groups


def _run_local(fn, jobs, workers, bar):
    """Every job in job order, in this process or on ``workers`` processes. With a pool the
    first job runs here first: forked workers then inherit its compiled functions instead of
    each compiling them again."""
    out = []
    for job in jobs[:1] if workers > 1 and len(jobs) > 2 else jobs:
        out.append(fn(job))
        bar.update(1)
    if len(out) < len(jobs):
        rest = jobs[len(out):]
        with ProcessPoolExecutor(workers) as ex:
            for r in ex.map(fn, rest, chunksize=max(1, len(rest) // (8 * workers))):
                out.append(r)
                bar.update(1)
    return out


def _run_dask(fn, jobs, client, bar):
    """Every job on the cluster of ``client`` (a ``dask.distributed.Client``), in job order.

    The client is made by the caller (the CLI uses
    :func:`kernelphase.validation.ensemble.connect`, as ``validate`` does), which keeps this
    module free of imports from :mod:`kernelphase.validation`."""
    from dask.distributed import as_completed
    futures = client.map(fn, jobs, pure=False)
    index = {f.key: n for n, f in enumerate(futures)}
    out = [None] * len(jobs)
    for fut in as_completed(futures):
        out[index[fut.key]] = fut.result()
        bar.update(1)
    return out


def phase_diagram(model, x, y, fixed, workers=2, progress=None, scheduler=None):
    """Phase diagram over ``x = (name, lo, hi, count)`` and ``y`` with the ``fixed`` parameters.

    Every point's parameters are checked before any work starts.

    Parameters
    ----------
    model : {"cubic", "modular", "single-index"}
    x, y : tuple
        ``(name, lo, hi, count)``: a linear grid of ``count >= 2`` values of one of
        :data:`AXES` ``[model]`` or, for single-index, of a parameter of the activation.
    fixed : mapping
        Values of the other parameters. Single-index: ``activation`` (name, text such as
        ``"tanh(beta*z)"``, :class:`~kernelphase.activations.Activation` or SymPy expression;
        default ``"erf"``), ``teacher`` (required; ``{k: c_k}``, a polynomial in He0..He8 or
        z, or a :class:`~kernelphase.teachers.Teacher`), the activation's parameters, teacher
        coefficients ``c0 .. c8`` (replacing the teacher's), ``sigma_w2`` (default 0.5),
        ``rho`` or all of ``n, d, width, sigma_a2``, and ``u`` or ``sigma2`` (with the
        physical four); ``d`` (default 150) scales the droplet fraction.
    workers : int
        Local processes (1: in this process).
    progress : None or bool
        Progress bar over the groups (None: only on a terminal).
    scheduler : None or dask.distributed.Client
        Run the groups on this cluster instead of the local pool (same numbers); connect
        to an address with :func:`kernelphase.validation.ensemble.connect`.

    Returns
    -------
    PhaseDiagram
        ``phase`` codes (-1 where a point did not converge, never a phase label), the order
        parameters (single-index: ``u``, the transition ``u_c`` of the point's parameters,
        ``phi_star``, ``droplet_fraction``, and ``b_k``, ``learned_k`` for degree 1 and
        the degrees the teachers carry), ``status`` and ``residual`` per point.

    Examples
    --------
    >>> from kernelphase.solvers.phase_diagram import phase_diagram
    >>> pd = phase_diagram("cubic", ("eps", -0.6, -0.3, 2), ("u", 10.0, 60.0, 2),
    ...                    {"rho": 8/150}, workers=1, progress=False)
    >>> pd.phase.shape, pd.x.tolist(), pd.y.tolist()
    ((2, 2), [-0.6, -0.3], [10.0, 60.0])
    >>> pd.phase.tolist(), pd.message
    ([[1, 0], [1, 1]], 'converged')
    """
    from kernelphase.progress import progress as _pb
    check_choice("model", model, tuple(AXES))
    workers = check_int("workers", workers, 1, 256)
    if isinstance(scheduler, str):
        raise ValueError(f"scheduler={scheduler!r} is an address; pass a dask.distributed "
                         f"Client, e.g. kernelphase.validation.ensemble.connect(address)")
    fixed = {k: v for k, v in dict(fixed).items() if v is not None}
    valid = AXES[model]
    if model == "single-index":
        valid = valid + _activation_template(fixed.get("activation", "erf"))[1]
        unknown = sorted(set(fixed) - set(valid) - set(_NOT_PARAMS))
        if unknown:
            raise ValueError(f"{unknown[0]}={fixed[unknown[0]]!r} is not a parameter of "
                             f"phase-diagram single-index; valid names: {', '.join(valid)}")
    grids = []
    for axis in (x, y):
        name, lo, hi, count = axis
        check_choice("axis name", name, valid)
        lo, hi, count = check_grid(name, lo, hi, count)
        grids.append(np.linspace(lo, hi, count))
    if x[0] == y[0]:
        raise ValueError(f"x and y both vary {x[0]!r}; choose two different parameters")
    xs, ys = grids
    if xs.size * ys.size > _MAX_POINTS:
        raise ValueError(f"grid of {xs.size} x {ys.size} points exceeds the limit of "
                         f"{_MAX_POINTS} points")
    points = [[dict(fixed, **{x[0]: float(xv), y[0]: float(yv)}) for xv in xs] for yv in ys]
    if model in ("cubic", "single-index"):
        groups = _cubic_jobs(points) if model == "cubic" else _single_index_jobs(points, fixed)
        keys = list(groups)
        jobs = [(k, [u for u, _, _ in groups[k]]) for k in keys]
        fn = _cubic_group if model == "cubic" else _single_index_group
        cells = [[(j, i) for _, j, i in groups[k]] for k in keys]
    else:
        from .modular import _check
        for row in points:
            for p in row:
                if "sigma2" not in p:
                    raise ValueError("phase-diagram modular needs sigma2 (fixed or as an axis)")
                check_range("sigma2", p["sigma2"], 0, 1e12, lo_open=True)
                _check(p.get("P", 401), p.get("width", 1000), p.get("sigma_a2", 2e-6),
                       p.get("gamma", 1e-4))
                p.setdefault("P", 401), p.setdefault("width", 1000)
                p.setdefault("sigma_a2", 2e-6), p.setdefault("gamma", 1e-4)
                p["P"], p["width"] = int(p["P"]), int(p["width"])
        jobs = [[points[j][i] for i in range(len(xs))] for j in range(len(ys))]
        fn = _modular_group
        cells = [[(j, i) for i in range(len(xs))] for j in range(len(ys))]
    bar = _pb(total=len(jobs), desc="phase diagram", enabled=progress)
    try:
        results = (_run_dask(fn, jobs, scheduler, bar) if scheduler is not None
                   else _run_local(fn, jobs, workers, bar))
    finally:
        bar.close()
    shape = (len(ys), len(xs))
    phase = np.full(shape, -1, dtype=int)
    status = np.full(shape, 3, dtype=int)
    residual = np.full(shape, np.nan)
    vals = np.full(shape + (len(_ORDER[model]),), np.nan)
    for where, res in zip(cells, results):
        for (j, i), (code, ov, st, rr) in zip(where, res):
            phase[j, i], status[j, i], residual[j, i] = code, st, rr
            vals[j, i] = ov
    order = {k: vals[:, :, n] for n, k in enumerate(_ORDER[model])}
    if model == "single-index":   # b_k and learned_k of the degrees some teacher carries
        used = {1} | {k for key in keys for k, _ in key[1].coeffs}
        drop = {f"{n}{k}" for n in ("b", "learned") for k in range(_K + 1) if k not in used}
        order = {k: v for k, v in order.items() if k not in drop}
    bad = int((status != 0).sum())
    msg = "converged" if not bad else (f"{bad} of {status.size} points did not converge "
                                      f"(see status)")
    # JSON-ready: the spec as text, SymPy numbers (from --param) as floats
    params = {k: str(v) if k in _NOT_PARAMS else float(v) if hasattr(v, "is_number") else v
              for k, v in fixed.items()}
    return PhaseDiagram(model, x[0], xs, y[0], ys, phase, order, status, residual,
                        msg, params)
