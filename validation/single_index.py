r"""Single-index Hermite teacher, any activation: Langevin-sampled networks against the theory.

Teacher :math:`y=\sum_kc_k\,\mathrm{He}_k(w^*\cdot x)` (:func:`kernelphase.teachers.as_teacher`,
probabilists' Hermite polynomials), :math:`x\sim\mathcal N(0,I_d)`, :math:`w^*=e_1`. Student
:math:`f(x)=\sum_{i=1}^Na_i\,\sigma(w_i\cdot x)`, priors :math:`a_i\sim\mathcal N(0,\sigma_a^2/N)`,
:math:`w_i\sim\mathcal N(0,\sigma_w^2I/d)`, sampled from the posterior of noise variance
:math:`\sigma^2` by :func:`kernelphase.validation.langevin.langevin_run` with
:class:`~kernelphase.validation.langevin.NetworkPosterior` (:math:`\sigma,\sigma'` generated from
the activation spec, the same spec the theory's moments come from). Theory: theory notes Sec. 12
(generalising Rubin et al. 2023, App. A.2-A.3) through the public solver API
:mod:`kernelphase.solvers.single_index` (``single_index_transition``, ``single_index_phases``,
``single_index_minima``); nothing is retyped here. Observables, generalising
:mod:`.teacher_student` from the cubic erf case by Hermite degree:

* the discrepancy :math:`\sigma^2\bar t=y-\bar f=\sum_kb_k\mathrm{He}_k`, measured on fresh test
  points as :math:`b_k=\mathbb E[(y-\bar f)\,\mathrm{He}_k]/k!` (:math:`\bar f` the posterior-mean
  output of a network), against ``single_index_phases(...).b``; the learned fraction
  :math:`1-b_k/c_k` of each teacher component;
* the histogram of :math:`\Phi=w_i\cdot w^*` over all neurons as :math:`-\log p(\Phi)`, against
  :math:`d\,[\hat{\mathcal S}(\Phi)-\hat{\mathcal S}(0)]` of the theory at the same :math:`b`;
* the droplet mass, the fraction of neurons with :math:`|\Phi|>3\Phi_*/4` (:math:`\Phi_*` the
  droplet overlap at :math:`u_c`; the barrier of :math:`\hat{\mathcal S}` lies near
  :math:`\Phi_*/2`), against the Gaussian tail of the GFL law
  :math:`\Phi\sim\mathcal N(0,1/d\kappa)` (what it would be without droplets) and the
  theory's droplet fraction.

Interaction :math:`u=n^2\sigma_a^2/(\sigma^4dN)`, :math:`\rho=N\sigma_a^2/d`; the theory is the
:math:`d\to\infty` equivalent-kernel limit, so finite-size corrections are expected.
"""
import dataclasses
import functools
import math
from typing import Any, Mapping

import numpy as np

from kernelphase._checks import check_choice, check_int, check_positive, check_range
from kernelphase.figures import label, legend, mark_transition, save, styled, subplots, with_gaps
from kernelphase.results import Result, status_message

__all__ = ["single_index_data", "plan_single_index", "run_single_index",
           "SingleIndexValidation", "plot_single_index_report"]

#: upper bounds of the integer inputs (memory is checked separately by the plan)
MAX_NETS, MAX_STEPS, MAX_SEED, MAX_SIZE = 10 ** 6, 10 ** 10, 2 ** 63 - 1 - 10 ** 6, 10 ** 8
SIGMA2_RANGE = (1e-12, 1e12)


def single_index_data(teacher, n, d, seed):
    """``(X, y)``: ``n`` inputs :math:`\\mathcal N(0,I_d)` from ``default_rng(seed)`` and the
    targets of ``teacher`` along :math:`w^*=e_1` (``numpy.polynomial.hermite_e``).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.validation.single_index import single_index_data
    >>> X, y = single_index_data("He1 - 0.5*He3", n=4, d=3, seed=0)
    >>> x1 = X[:, 0]
    >>> X.shape, bool(np.allclose(y, x1 - 0.5 * (x1**3 - 3 * x1)))
    ((4, 3), True)
    """
    from numpy.polynomial.hermite_e import hermeval
    from kernelphase.teachers import as_teacher
    c = as_teacher(teacher).vector()
    X = np.random.default_rng(seed).standard_normal((n, d))
    return X, hermeval(X[:, 0], c)


class _Observer:
    """Per-sample observables of one network: Phi histogram and test outputs."""

    def __init__(self, post, Xt, bins):
        self.post, self.Xt, self.bins = post, Xt, bins

    def __call__(self, a, W):
        return {"hist": np.histogram(W[:, 0], self.bins)[0],
                "f_test": self.post.forward(a, W, self.Xt),
                "f_train": self.post.forward(a, W)}


@dataclasses.dataclass(frozen=True, eq=False)
class SingleIndexValidation(Result):
    """Report of :func:`run_single_index`: one row per noise level, JSON-ready dicts.

    ``transition`` holds the theory's ``u_c``, ``sigma2_c``, ``phi_star`` and its status.
    ``status`` is 0; 6 when a network diverged (its row says which; the statistics use the
    finite networks).
    """
    activation: str
    teacher: Mapping[str, float]
    transition: Mapping[str, Any]
    rows: list
    status: int = 0
    message: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def plan_single_index(activation="tanh", teacher="He1 - 0.3*He3", sigma_w2=0.5, n=400, d=40,
                      width=100, sigma_a2=0.1, sigma2=(0.5,), nets=4, steps=4000, lr=None,
                      seed=0, n_test=2000, readout="langevin", workers=None, scheduler=None):
    """Check every input of :func:`run_single_index` before anything is allocated or compiled.

    Raises a one-line ``ValueError`` naming the parameter, its value and the valid range (or the
    memory the run would need). Returns a dict with the checked inputs, the activation's SymPy
    expression ``expr``, the teacher, and ``key`` (every parameter that determines the result,
    for :class:`kernelphase.io.RunDir`).

    Examples
    --------
    >>> from kernelphase.validation.single_index import plan_single_index
    >>> plan = plan_single_index(activation="erf", teacher="He1 - 0.3*He3", n=50, d=5, width=10,
    ...                          sigma2=(0.5,), nets=1, steps=20)
    >>> sorted(plan)[:5]
    ['d', 'expr', 'key', 'lr', 'memory_gib']
    """
    from kernelphase.moments import activation_expr
    from kernelphase.teachers import as_teacher
    from .ensemble import check_memory, concurrent_tasks
    expr = activation_expr(activation)
    t = as_teacher(teacher)
    sw2 = check_range("sigma_w2", sigma_w2, 0, 1e6, lo_open=True)
    sa2 = check_range("sigma_a2", sigma_a2, 0, 1e12, lo_open=True)
    n = check_int("n", n, 2, MAX_SIZE)
    d = check_int("d", d, 1, MAX_SIZE)
    width = check_int("width", width, 1, MAX_SIZE)
    nets = check_int("nets", nets, 1, MAX_NETS)
    steps = check_int("steps", steps, 10, MAX_STEPS)
    seed = check_int("seed", seed, 0, MAX_SEED)
    n_test = check_int("n_test", n_test, 1, MAX_SIZE)
    check_choice("readout", readout, ("langevin", "gibbs"))
    if lr is not None:
        lr = check_positive("lr", lr)
    if workers is not None:
        from .ensemble import _MAX_WORKERS
        workers = check_int("workers", workers, 1, _MAX_WORKERS)
    sigma2 = (sigma2,) if np.ndim(sigma2) == 0 else tuple(sigma2)
    if not sigma2:
        raise ValueError("sigma2=() is empty; give at least one noise level")
    sigma2 = tuple(check_range("sigma2", s2, *SIGMA2_RANGE) for s2 in sigma2)
    n_tasks = nets * len(sigma2)
    at_once = concurrent_tasks(n_tasks, workers, scheduler)
    per_net = 4 * n * width + 2 * n_test * width + min(n, width) ** 2 \
        + (n // 192 + 1) * width * d + (n + n_test) * d
    kept = n_tasks * (width * d + width + n + n_test + 64)
    nbytes = 8 * (at_once * per_net + kept + 2 * (n + n_test) * d)
    check_memory(nbytes, f"{at_once} network(s) at a time with n x N = {n} x {width} features, "
                         f"{n_test} test points, {n_tasks} results kept")
    from .langevin import activation_pair
    activation_pair(expr)           # compiles sigma, sigma' now: ValueError if it cannot
    for s2 in sigma2:               # the solvers take u <= 1e12
        u = n * n * sa2 / (s2 * s2 * d * width)
        if not u <= 1e12:
            raise ValueError(f"sigma2={s2!r} is outside the valid range for these sizes: the "
                             f"interaction u=n^2 sigma_a2/(sigma2^2 d width)={u:.3g} must be "
                             f"<= 1e12")
    theory = _theory(expr, t, sw2, n, d, width, sa2, sigma2)
    teacher_key = {str(k): float(c) for k, c in t.coeffs}
    key = {"activation": str(expr), "teacher": teacher_key, "sigma_w2": sw2, "n": n, "d": d,
           "width": width, "sigma_a2": sa2, "sigma2": list(sigma2), "nets": nets,
           "steps": steps, "lr": lr, "seed": seed, "n_test": n_test, "readout": readout}
    return {"expr": expr, "teacher": t, "sigma_w2": sw2, "n": n, "d": d, "width": width,
            "sigma_a2": sa2, "sigma2": sigma2, "nets": nets, "steps": steps, "lr": lr,
            "seed": seed, "n_test": n_test, "readout": readout, "workers": workers, "key": key,
            "memory_gib": nbytes / 2 ** 30, "theory": theory}


@functools.lru_cache(maxsize=16)
def _theory(expr, teacher, sw2, n, d, width, sa2, sigma2):
    """Transition and phase of every noise level, from :mod:`kernelphase.solvers.single_index`
    (memoised: the plan computes it before any output, the run reuses it)."""
    from kernelphase.solvers.cubic import u_from_sigma2
    from kernelphase.solvers.single_index import single_index_phases, single_index_transition
    tr = single_index_transition(expr, teacher, sw2, n=n, d=d, width=width, sigma_a2=sa2)
    us = [u_from_sigma2(s2, n, d, width, sa2) for s2 in sigma2]
    return tr, us, single_index_phases(expr, teacher, us, width * sa2 / d, sw2, d=d,
                                       transition=tr)


def run_single_index(activation="tanh", teacher="He1 - 0.3*He3", sigma_w2=0.5, n=400, d=40,
                     width=100, sigma_a2=0.1, sigma2=(0.5,), nets=4, steps=4000, lr=None, seed=0,
                     n_test=2000, readout="langevin", run_dir=None, progress=None,
                     scheduler=None, workers=None):
    """Sample ``nets`` networks per noise level and compare them with the single-index theory.

    Every network is one task of :func:`~kernelphase.validation.ensemble.run_ensemble`, with
    the random stream ``SeedSequence(seed, spawn_key=(width, round(1e6 * sigma2), k))``; the
    first half of its ``steps`` is burn-in, then 200 samples are taken. Training data come from
    ``default_rng(seed)``, test data from ``default_rng(seed + 10**6)``. ``run_dir``: an open
    :class:`kernelphase.io.RunDir` (key from :func:`plan_single_index`) that receives one state
    file per network, ``checkpoints/s{sigma2}_net{k}.npz``, and resumes from them.

    Returns
    -------
    SingleIndexValidation
        ``rows`` (one per noise level, JSON-ready) and the theory's ``transition``.

    Examples
    --------
    >>> from kernelphase.validation.single_index import run_single_index
    >>> rep = run_single_index(activation="erf", teacher="He1 - 0.3*He3", n=50, d=5, width=10,
    ...                        sigma2=(0.5,), nets=1, steps=20, n_test=50, workers=1,
    ...                        progress=False)
    >>> rep.activation, [row["sigma2"] for row in rep.rows], rep.transition["order"]
    ('erf(z)', [0.5], 'first')
    """
    from .ensemble import report_status, run_ensemble
    from .langevin import NetworkPosterior
    from .teacher_student import default_lr
    pl = plan_single_index(activation, teacher, sigma_w2, n, d, width, sigma_a2, sigma2, nets,
                           steps, lr, seed, n_test, readout, workers, scheduler)
    expr, t, sw2, sa2 = pl["expr"], pl["teacher"], pl["sigma_w2"], pl["sigma_a2"]
    n, d, N, nets, steps = pl["n"], pl["d"], pl["width"], pl["nets"], pl["steps"]
    tr, us, phases = pl["theory"]
    phi_star = abs(tr.phi_star) if tr.status == 0 and math.isfinite(tr.phi_star) else 1.0
    half = max(1.6, 1.5 * phi_star)
    bins = np.linspace(-half, half, 65)
    X, y = single_index_data(t, n, d, seed)
    Xt, yt = single_index_data(t, pl["n_test"], d, seed + 10 ** 6)
    cells, tasks = [], []
    for s2 in pl["sigma2"]:
        post = NetworkPosterior(X, y, s2, sa2, sw2, N, activation=expr, readout=readout)
        step = lr or default_lr(n, d, s2, sw2, N, sa2, readout)
        cells.append((s2, step, len(tasks)))
        for k in range(nets):
            tasks.append(dict(
                post=post, steps=steps, lr=step, seed=seed, key=(N, round(1e6 * s2), k),
                burn_in=steps // 2, sample_every=max(1, steps // 400),
                observe=_Observer(post, Xt, bins),
                checkpoint=((run_dir, f"checkpoints/s{s2:g}_net{k}.npz")
                            if run_dir is not None else None),
                checkpoint_every=max(1, steps // 20),
                params={"activation": str(expr), "sigma2": s2, "width": N}))
    results = run_ensemble(tasks, scheduler=scheduler, workers=workers, progress=progress)
    theory = _Theory(expr, t, sw2, d, N * sa2 / d, phi_star)
    rows = [_row(results[i0:i0 + nets], s2, step, u, ph, theory, N, y, Xt, yt, bins)
            for (s2, step, i0), u, ph in zip(cells, us, phases)]
    status, detail = report_status(rows)
    return SingleIndexValidation(
        activation=str(expr), teacher={str(k): float(c) for k, c in t.coeffs},
        transition={"u_c": tr.u_c, "sigma2_c": tr.sigma2_c, "phi_star": tr.phi_star,
                    "u_spinodal": tr.u_spinodal, "order": tr.order, "status": tr.status,
                    "message": tr.message},
        rows=rows, status=status, message=status_message(status, detail),
        params={k: v for k, v in pl["key"].items()})


class _Theory:
    """The theory's action and GFL law at one (activation, teacher, sigma_w^2, d)."""

    def __init__(self, expr, teacher, sw2, d, rho, phi_star):
        from kernelphase.moments import moments_function
        from kernelphase.single_index import M_MAX, compiled_action
        self.fS, self.nm = compiled_action(), M_MAX + 1
        self.mfun = moments_function(expr, teacher.degree)
        self.expr, self.teacher, self.sw2, self.d, self.rho = expr, teacher, sw2, d, rho
        self.cut = 0.75 * phi_star

    def action(self, phi, u, b):
        """:math:`\\hat{\\mathcal S}(\\Phi)` at the discrepancy ``b`` (9 entries)."""
        M = np.zeros(self.nm)
        mv = np.asarray(self.mfun(self.sw2 + phi * phi), float)
        M[:len(mv)] = mv
        return self.fS(phi, u, self.sw2, *b, *M)[0]

    def minus_log_p(self, centres, u, b):
        """:math:`d\\,[\\hat{\\mathcal S}(\\Phi)-\\hat{\\mathcal S}(0)]` at the bin centres."""
        if not np.all(np.isfinite(b)):
            return [float("nan")] * len(centres)
        s0 = self.action(0.0, u, b)
        return [self.d * (self.action(float(c), u, b) - s0) for c in centres]

    def gfl_tail(self, u):
        """Mass of :math:`|\\Phi|>` ``cut`` under the GFL law :math:`\\mathcal N(0,1/d\\kappa)`."""
        from kernelphase.solvers.single_index import single_index_minima
        kappa = single_index_minima(self.expr, self.teacher, u, self.rho, self.sw2)["kappa"]
        return math.erfc(self.cut * math.sqrt(self.d * kappa / 2)) if kappa > 0 else float("nan")


def _row(res, s2, step, u, ph, theory, N, y, Xt, yt, bins):
    """Ensemble statistics of one noise level against the theory, over its finite networks
    (a diverged network gives the row status 6 and is left out)."""
    from numpy.polynomial.hermite_e import hermeval
    from .ensemble import ensemble_means, network_status
    from .teacher_student import _obs
    ok, state = network_status(res)
    base = {"width": N, "sigma2": s2, "u": u, "phase_theory": ph.phase,
            "theory_status": ph.status, "theory_message": ph.message, "lr": step}
    if not ok:
        return {**base, **state}
    res = [res[i] for i in ok]
    nets = len(res)
    cnt, f_nets, f_train, hist = ensemble_means(res)
    c = theory.teacher.vector()
    zt = Xt[:, 0]
    resid = yt - f_nets.mean(0)
    spread = (lambda v: v.std(ddof=1) / math.sqrt(nets)) if nets > 1 else (lambda v: 0.0)
    b, learned = {}, {}
    for k in range(theory.teacher.degree + 1):
        He = hermeval(zt, np.eye(k + 1)[k])
        b_i = ((yt - f_nets) * He).mean(1) / math.factorial(k)
        se = float(math.hypot(spread(b_i), np.std(resid * He) / math.factorial(k)
                              / math.sqrt(len(yt))))
        b[str(k)] = _obs(ph.b[k], float(b_i.mean()), se)
        if c[k]:
            learned[str(k)] = _obs(ph.learned[k], 1 - float(b_i.mean()) / c[k], se / abs(c[k]))
    dens = hist / hist.sum() / np.diff(bins)
    centres = 0.5 * (bins[1:] + bins[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):     # empty bins: +inf (or NaN)
        mlogp = -np.log(dens)
        mlogp = mlogp - mlogp[np.argmin(np.abs(centres))]
    return {
        **base, "b": b, "learned": learned,
        "train_loss": float(np.mean((f_train - y) ** 2)), "test_loss": float(np.mean(resid ** 2)),
        "phi_hist": {"centres": centres, "minus_log_p": mlogp,
                     "theory": theory.minus_log_p(centres, u, ph.b)},
        "droplet_cut": theory.cut,
        "droplet_mass_sim": float(hist[np.abs(centres) > theory.cut].sum() / hist.sum()),
        "droplet_mass_gfl": theory.gfl_tail(u),
        "droplet_fraction_theory": ph.droplet_fraction,
        "samples": float(cnt.min()), **state}


@styled
def plot_single_index_report(report, path):
    """-log p(Phi) of the simulation (points) and d [S(Phi) - S(0)] of the theory (lines); b_k
    against sigma^2, simulation with error bars and theory (gaps where the theory did not
    converge), the theory's first-order sigma^2_c (solid).

    Examples
    --------
    >>> import os
    >>> from kernelphase.validation.single_index import plot_single_index_report, run_single_index
    >>> rep = run_single_index(activation="erf", teacher="He1 - 0.3*He3", n=50, d=5, width=10,
    ...                        sigma2=(0.5,), nets=1, steps=20, n_test=50, workers=1,
    ...                        progress=False)
    >>> plot_single_index_report(rep, "single_index.png")
    >>> os.path.isfile("single_index.png")
    True
    """
    rep = report if isinstance(report, dict) else {
        "rows": report.rows, "transition": report.transition, "params": report.params}
    rows = sorted((r for r in rep["rows"] if "b" in r), key=lambda r: r["sigma2"])
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 3.8))
    for i, r in enumerate(rows):
        h = r["phi_hist"]
        col = f"C{i % 10}"
        a1.plot(h["centres"], h["minus_log_p"], "x", color=col, ms=4,
                label=f"$\\sigma^2={r['sigma2']:g}$")
        a1.plot(h["centres"], h["theory"], "-", color=col, lw=1)
    a1.set_ylim(-1, 12)
    a1.set_xlabel(label("phi"))
    a1.set_ylabel(r"$-\log p(\Phi)$ (x: simulation, line: $d\hat S$)")
    legend(a1, fontsize=7)
    s2 = [r["sigma2"] for r in rows]
    ok = [r["phase_theory"] != "unknown" for r in rows]
    for j, k in enumerate(sorted({k for r in rows for k in r["learned"]}, key=int)):
        col = f"C{j % 10}"
        a2.errorbar(s2, [r["b"][k]["sim_mean"] for r in rows],
                    [r["b"][k]["std_error"] for r in rows], fmt="o", color=col,
                    label=f"$b_{k}$ simulation")
        a2.plot(*with_gaps(s2, [r["b"][k]["theory"] for r in rows], ok), "s-", color=col,
                mfc="none", label=f"$b_{k}$ theory")
    mark_transition(a2, rep["transition"].get("sigma2_c"), name="sigma2")
    a2.set_xlabel(label("sigma2"))
    a2.set_ylabel(r"discrepancy $b_k$")
    legend(a2, fontsize=7)
    save(fig, path, rep.get("params"))
