"""Figures of the adaptive-kernel theory: landscapes, components, diagrams (no pyplot state)."""
import numpy as np

from kernelphase.figures import (LABELS, SYMBOLS, label, legend, mark_transition, param_text,
                                 save, styled, subplots, with_gaps)

__all__ = ["plot_cubic_transition", "plot_phase_diagram", "plot_modular", "plot_phase_point"]


@styled
def plot_cubic_transition(tr, path, d=150, n=None, width=None, sigma_a2=None):
    """Left: action landscapes d*S(Phi) below the spinodal, at it and at u_c (Fig. 1 insets);
    right: b, the learned cubic component 1 - c/eps and the droplet fraction against u, or
    sigma^2 when n, width, sigma_a2 are given (Fig. 2c), with the first-order point (solid) and
    the droplet spinodal (dashed) marked and gaps where the branch did not converge.

    Examples
    --------
    >>> import os
    >>> from kernelphase.solvers.cubic import cubic_transition
    >>> tr = cubic_transition(-0.3, 0.5, n=3000, d=150, width=700, sigma_a2=8/700)
    >>> round(tr.u_spinodal, 2), round(tr.u_c, 2)     # the droplet exists before it wins
    (26.95, 30.67)
    >>> plot_cubic_transition(tr, "cubic.png", n=3000, width=700, sigma_a2=8/700)
    >>> os.path.isfile("cubic.png")
    True
    """
    from .cubic import action, cubic_phases, gfl_b, sigma2_from_u
    eps, sw2, rho = tr.params["eps"], tr.params["sigma_w2"], tr.params["rho"]
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 3.8))
    phi = np.linspace(-1.4, 1.4, 401)
    for u, lab in ((0.8 * tr.u_spinodal, "GFL"), (tr.u_spinodal, "spinodal $u_s$"),
                   (tr.u_c, "first-order $u_c$")):
        b = gfl_b(u, rho, sw2)
        S = action(np.abs(phi), u, b, eps, sw2)[0]
        a1.plot(phi, S, label=f"{lab}, $u={u:.3g}$")
    a1.axhline(0, color="k", lw=0.5)
    a1.set_xlabel(label("phi"))
    a1.set_ylabel(label("action"))
    a1.set_ylim(-0.01, 0.1)
    legend(a1, loc="upper center")
    us = np.geomspace(0.3 * tr.u_c, 3 * tr.u_c, 60)
    rs = cubic_phases(eps, us, rho, sw2, d, transition=tr)
    ok = [r.converged for r in rs]
    xs, name, x_c, x_s = us, "u", tr.u_c, tr.u_spinodal
    if n is not None:
        xs = np.array([sigma2_from_u(u, n, d, width, sigma_a2) for u in us])
        name, x_c, x_s = "sigma2", tr.sigma2_c, sigma2_from_u(tr.u_spinodal, n, d, width,
                                                              sigma_a2)
    for key in ("b", "learned_cubic", "droplet_fraction"):
        a2.plot(*with_gaps(xs, [getattr(r, key) for r in rs], ok), label=label(key))
    mark_transition(a2, x_c, {"droplet spinodal": x_s}, name=name)
    a2.set_xscale("log" if name == "u" else "linear")
    a2.set_xlabel(label(name))
    a2.set_ylabel("order parameters")
    legend(a2, fontsize=7)
    head = f"cubic teacher: {param_text(tr.params, ('eps', 'sigma_w2', 'rho'))}; " \
           f"$u_c={tr.u_c:.4g}$"
    fig.suptitle(head + (f", $\\sigma^2_c={tr.sigma2_c:.4g}$" if tr.sigma2_c else ""))
    save(fig, path, dict(tr.params, d=d, n=n, width=width, sigma_a2=sigma_a2))


@styled
def plot_modular(tr, path):
    """Per-mode action S_k/P in the three phases (Fig. 3a) and ``1-|a|`` against sigma^2 (Fig. 3b),
    the GMFL-I onset (first order, solid) and the GMFL-II onset (dotted) marked, gaps where a
    point did not converge.

    Examples
    --------
    The two onsets are :math:`\\sigma_a^2\\Phi_+(g_c)^2=3\\sigma_a^2/\\gamma` apart (0.06 here;
    :math:`\\Phi_+(g_c)^2=3/\\gamma` at the degenerate point):

    >>> import os
    >>> from kernelphase.solvers.modular import modular_transition
    >>> tr = modular_transition(401, 1000, 2e-6, 1e-4)
    >>> round(tr.sigma2_gmfl1 - tr.sigma2_gmfl2, 6), round(3 * 2e-6 / 1e-4, 6)
    (0.06, 0.06)
    >>> plot_modular(tr, "modular.png")
    >>> os.path.isfile("modular.png")
    True
    """
    from .modular import _action_numeric, modular_phase
    S_mode = _action_numeric()
    p = tr.params
    fig, (a1, a2) = subplots(1, 2, figsize=(10, 3.8))
    phi = np.linspace(0, 1.3 * tr.phi_plus, 300)
    for g, lab in ((0.8 * tr.g_c, "GFL"), (tr.g_c, "GMFL-I (degenerate)"),
                   (1.1 * tr.g_c, "GMFL-II")):
        a1.plot(phi, [S_mode(t, g, p["gamma"])[0] for t in phi], label=f"{lab}, $g={g:.3g}$")
    a1.axhline(0, color="k", lw=0.5)
    a1.set_ylim(-0.5 * tr.phi_plus, 0.5 * tr.phi_plus)
    a1.set_xlabel(r"mode power $\Phi=\Psi$")
    a1.set_ylabel(r"per-mode action $S_k/P$")
    legend(a1, fontsize=7)
    lo = tr.sigma2_gmfl2 if np.isfinite(tr.sigma2_gmfl2) else 0.1 * tr.sigma2_gmfl1
    s2 = np.linspace(0.5 * lo, 1.3 * tr.sigma2_gmfl1, 120)
    rs = [modular_phase(p["P"], p["width"], p["sigma_a2"], p["gamma"], s) for s in s2]
    a2.plot(*with_gaps(s2, [r.target_component for r in rs], [r.converged for r in rs]))
    mark_transition(a2, tr.sigma2_gmfl1, name="sigma2", label=r"GMFL-I onset $\sigma^2_c$")
    if np.isfinite(tr.sigma2_gmfl2):
        a2.axvline(tr.sigma2_gmfl2, color="0.35", ls=":", lw=1.0, zorder=1,
                   label="GMFL-II onset")
    a2.set_xlabel(label("sigma2"))
    a2.set_ylabel(label("target_component"))
    legend(a2, p, ("P", "width", "sigma_a2", "gamma"), fontsize=7)
    save(fig, path, p)


def _cubic_u_c(pd):
    """u_c at each point of a cubic diagram (NaN where the transition fails), one
    transition per distinct (eps, sigma_w2, rho)."""
    from .cubic import cubic_transition
    from .phase_diagram import _cubic_point
    memo, out = {}, np.full(pd.phase.shape, np.nan)
    for j, yv in enumerate(pd.y):
        for i, xv in enumerate(pd.x):
            try:
                eps, sw2, rho, _, _ = _cubic_point({**pd.params, pd.x_name: xv, pd.y_name: yv})
                key = (eps, sw2, rho)
                if key not in memo:
                    tr = cubic_transition(eps, sw2, rho=rho)
                    memo[key] = tr.u_c if tr.converged else np.nan
                out[j, i] = memo[key]
            except (ValueError, ArithmeticError):
                pass
    return out


@styled
def plot_phase_diagram(pd, path):
    """Phase regions (GFL / GMFL-I / GMFL-II) coloured, unconverged points left as white gaps
    (never coloured as a phase), an order parameter as thin contours (positive levels: the
    zero level would only trace the grid cells of the GFL region) and the first-order line
    :math:`u=u_c` of each point's parameters (solid; single-index from the diagram's ``u_c``,
    cubic from one :func:`~.cubic.cubic_transition` per distinct (eps, sigma_w2, rho)).

    Examples
    --------
    >>> import os
    >>> from kernelphase.solvers.phase_diagram import phase_diagram
    >>> pd = phase_diagram("cubic", ("eps", -0.6, -0.3, 2), ("u", 10.0, 60.0, 2),
    ...                    {"rho": 8/150}, workers=1, progress=False)
    >>> pd.phase.tolist()                  # rows: u = 10, 60; columns: eps = -0.6, -0.3
    [[1, 0], [1, 1]]
    >>> plot_phase_diagram(pd, "diagram.png")
    >>> os.path.isfile("diagram.png")
    True
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    fig, ax = subplots(figsize=(6.6, 4.2))
    colours = ["#f4d6a0", "#8fbcd4", "#6a4c93"]
    cmap = ListedColormap(colours)
    bad = pd.phase < 0
    ax.pcolormesh(pd.x, pd.y, np.ma.masked_where(bad, pd.phase), cmap=cmap, vmin=-0.5,
                  vmax=2.5, shading="nearest")
    key = {"cubic": "learned_cubic", "modular": "target_component"}.get(pd.model, "phi_star")
    hide = bad | ~np.isfinite(pd.order[key])
    if key == "phi_star":   # the droplet exists in the mixed phases only
        hide |= pd.phase < 1
    vals = np.ma.masked_where(hide, pd.order[key])
    if vals.count() and np.ptp(vals.compressed()) > 0:
        from matplotlib.ticker import MaxNLocator
        lo, hi = vals.min(), vals.max()
        levels = [v for v in MaxNLocator(6).tick_values(lo, hi) if lo < v < hi]
        cs = ax.contour(pd.x, pd.y, vals, levels=levels, colors="k", linewidths=0.5)
        ax.clabel(cs, fontsize=7)
    handles, labels = [], []
    for code, name in enumerate(("GFL", "GMFL-I", "GMFL-II")):
        if (pd.phase == code).any():
            handles.append(Rectangle((0, 0), 1, 1, color=colours[code]))
            labels.append(name)
    if bad.any():
        handles.append(Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.5"))
        labels.append("unconverged (gap)")
    u_c = pd.order["u_c"] if "u_c" in pd.order else _cubic_u_c(pd) if pd.model == "cubic" \
        else None
    if u_c is not None:
        gap = pd.order["u"] - u_c   # zero on the transition line, any two axes
        if np.isfinite(gap).sum() and np.nanmin(gap) < 0 < np.nanmax(gap):
            ax.contour(pd.x, pd.y, np.ma.masked_invalid(gap), levels=[0.0], colors="k",
                       linewidths=1.5, linestyles="-")
            handles.append(Line2D([], [], color="k", lw=1.5, ls="-"))
            labels.append("first-order line $u=u_c$")
    known = {**LABELS, **SYMBOLS}
    ax.set_xlabel(label(pd.x_name) if pd.x_name in known else pd.x_name)
    ax.set_ylabel(label(pd.y_name) if pd.y_name in known else pd.y_name)
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    fixed = {k: v for k, v in pd.params.items() if k in SYMBOLS and k not in (pd.x_name, pd.y_name)}
    ax.set_title(f"{pd.model}: phases; contours: {label(key)}\n{param_text(fixed)}")
    save(fig, path, pd.params)


@styled
def plot_phase_point(r, path):
    """The action landscape at one solved state: cubic :math:`\\hat S(\\Phi)` at its (u, b, c)
    with the droplet marked, or the modular per-mode action at :math:`g=ua^2`.

    Examples
    --------
    Cubic (the droplet at :math:`\\Phi_*`), and modular in GMFL-I, where
    :math:`a=-\\sigma^2/\\sigma_1^2` (the GMFL-I closure):

    >>> import os
    >>> from kernelphase.solvers.cubic import cubic_phase
    >>> from kernelphase.solvers.modular import modular_phase, modular_transition
    >>> r = cubic_phase(-0.3, 0.1, n=3000, d=150, width=700, sigma_a2=8/700)
    >>> r.phase, round(r.phi_star, 4)
    ('GMFL-I', 0.9794)
    >>> plot_phase_point(r, "cubic_point.png")
    >>> m = modular_phase(401, 1000, 2e-6, 1e-4, 0.2)
    >>> s1 = modular_transition(401, 1000, 2e-6, 1e-4).sigma2_gmfl1
    >>> m.phase, round(m.a, 4), round(-0.2 / s1, 4)
    ('GMFL-I', -0.8474, -0.8474)
    >>> plot_phase_point(m, "modular_point.png")
    >>> os.path.isfile("cubic_point.png"), os.path.isfile("modular_point.png")
    (True, True)
    """
    fig, ax = subplots(figsize=(5.5, 3.8))
    p = r.params
    if "eps" in p:
        from .cubic import action
        top = 1.6 * max(r.phi_star if np.isfinite(r.phi_star) else 1.0, 1.0)
        phi = np.linspace(-top, top, 401)
        if np.isfinite(r.b):
            S = action(np.abs(phi), r.u, r.b, r.c, p["sigma_w2"])[0]
            ax.plot(phi, S, label=f"{r.phase}: $u={r.u:.3g}$, $b={r.b:.3g}$, $c={r.c:.3g}$")
        if r.phase != "GFL" and np.isfinite(r.phi_star):
            ax.axvline(r.phi_star, color="k", ls=":", label=f"droplet $\\Phi^*={r.phi_star:.3g}$")
            ax.axvline(-r.phi_star, color="k", ls=":")
        ax.set_xlabel(label("phi"))
        ax.set_ylabel(label("action"))
    else:
        from .modular import _action_numeric, _phi_plus
        g = r.u * r.a ** 2 if np.isfinite(r.a) else 0.0
        top = 1.3 * _phi_plus(max(g, 1.01 * np.sqrt(p["gamma"])), p["gamma"])
        phi = np.linspace(0, top, 300)
        ax.plot(phi, [_action_numeric()(t, g, p["gamma"])[0] for t in phi],
                label=f"{r.phase}: $a={r.a:.3g}$, $g=ua^2={g:.3g}$")
        ax.set_xlabel(r"mode power $\Phi=\Psi$")
        ax.set_ylabel(r"per-mode action $S_k/P$")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(f"{r.phase} ({r.message})")
    legend(ax, p, [k for k in p if k in SYMBOLS and k != "u"])
    save(fig, path, p)
