"""Figures of the adaptive-kernel theory: landscapes, components, diagrams (no pyplot state)."""
import numpy as np

from kernelphase.figures import subplots
from kernelphase.io import savefig_atomic

__all__ = ["plot_cubic_transition", "plot_phase_diagram", "plot_modular", "plot_phase_point"]


def plot_cubic_transition(tr, path, d=150, n=None, width=None, sigma_a2=None):
    """Left: action landscapes d*S(Phi) at the spinodal, at u_c and beyond (Fig. 1 insets);
    right: b and the learned cubic component 1 - c/eps against u (Fig. 2c)."""
    from .cubic import action, cubic_phase_scaled, gfl_b, sigma2_from_u
    eps, sw2, rho = tr.params["eps"], tr.params["sigma_w2"], tr.params["rho"]
    fig, (a1, a2) = subplots(1, 2, figsize=(11, 4))
    phi = np.linspace(-1.6, 1.6, 401)
    for u, lab in ((0.8 * tr.u_spinodal, "GFL"), (tr.u_spinodal, "spinodal"),
                   (tr.u_c, r"$u_c$ (degenerate)")):
        b = gfl_b(u, rho, sw2)
        S = action(np.abs(phi), u, b, eps, sw2)[0]
        a1.plot(phi, S, label=f"{lab}, u={u:.1f}")
    a1.axhline(0, color="k", lw=0.5)
    a1.set_xlabel(r"$\Phi=w\cdot w^*$")
    a1.set_ylabel(r"$\hat S(\Phi)=-\log p(\Phi)/d$")
    a1.set_ylim(-0.01, 0.1)
    a1.legend(fontsize=8)
    us = np.geomspace(0.3 * tr.u_c, 3 * tr.u_c, 40)
    rs = [cubic_phase_scaled(eps, u, rho, sw2, d, transition=tr) for u in us]
    xs, xl = us, "u"
    if n is not None:
        xs, xl = np.array([sigma2_from_u(u, n, d, width, sigma_a2) for u in us]), r"$\sigma^2$"
    a2.plot(xs, [r.b for r in rs], label="b (linear discrepancy)")
    a2.plot(xs, [r.learned_cubic for r in rs], label=r"learned cubic $1-c/\epsilon$")
    a2.axvline(tr.sigma2_c if n is not None else tr.u_c, color="k", ls=":", label="transition")
    a2.set_xlabel(xl)
    a2.legend(fontsize=8)
    fig.suptitle(f"cubic teacher, eps={eps}, sigma_w^2={sw2}, rho={rho:.4g}: "
                 f"u_c={tr.u_c:.2f}" + (f", sigma^2_c={tr.sigma2_c:.4f}" if tr.sigma2_c else ""))
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)


def plot_modular(tr, path):
    """Per-mode action S_k/P in the three phases (Fig. 3a) and ``1-|a|`` against sigma^2 (Fig. 3b)."""
    from .modular import _action_numeric, modular_phase
    S_mode = _action_numeric()
    p = tr.params
    fig, (a1, a2) = subplots(1, 2, figsize=(11, 4))
    phi = np.linspace(0, 1.3 * tr.phi_plus, 300)
    for g, lab in ((0.8 * tr.g_c, "GFL"), (tr.g_c, "GMFL-I (degenerate)"), (1.1 * tr.g_c, "GMFL-II")):
        a1.plot(phi, [S_mode(t, g, p["gamma"])[0] for t in phi], label=lab)
    a1.set_ylim(-0.5 * tr.phi_plus, 0.5 * tr.phi_plus)
    a1.set_xlabel(r"$\Phi=\Psi$")
    a1.set_ylabel(r"$S_k/P$")
    a1.legend(fontsize=8)
    lo = tr.sigma2_gmfl2 if np.isfinite(tr.sigma2_gmfl2) else 0.1 * tr.sigma2_gmfl1
    s2 = np.linspace(0.5 * lo, 1.3 * tr.sigma2_gmfl1, 120)
    a2.plot(s2, [modular_phase(p["P"], p["width"], p["sigma_a2"], p["gamma"], s).target_component
                 for s in s2])
    for v in (tr.sigma2_gmfl1, tr.sigma2_gmfl2):
        if np.isfinite(v):
            a2.axvline(v, color="k", ls=":")
    a2.set_xlabel(r"$\sigma^2$")
    a2.set_ylabel(r"target component $1-|a|$")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)


def plot_phase_diagram(pd, path):
    """Phase regions (GFL / GMFL-I / GMFL-II) coloured, unconverged points left as white gaps
    (never coloured as a phase), an order parameter as thin contours and, for single-index,
    the transition line :math:`u=u_c` of each point's parameters (dashed)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle
    fig, ax = subplots(figsize=(6, 4.5))
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
        cs = ax.contour(pd.x, pd.y, vals, levels=6, colors="k", linewidths=0.5)
        ax.clabel(cs, fontsize=6)
    handles, labels = [], []
    for code, name in enumerate(("GFL", "GMFL-I", "GMFL-II")):
        if (pd.phase == code).any():
            handles.append(Rectangle((0, 0), 1, 1, color=colours[code]))
            labels.append(name)
    if bad.any():
        handles.append(Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.5"))
        labels.append("unconverged (gap)")
    if "u_c" in pd.order:
        gap = pd.order["u"] - pd.order["u_c"]   # zero on the transition line, any two axes
        if np.isfinite(gap).sum() and np.nanmin(gap) < 0 < np.nanmax(gap):
            ax.contour(pd.x, pd.y, np.ma.masked_invalid(gap), levels=[0.0], colors="k",
                       linewidths=1.5, linestyles="--")
            handles.append(Line2D([], [], color="k", lw=1.5, ls="--"))
            labels.append("transition u = u_c")
    ax.set_xlabel(pd.x_name)
    ax.set_ylabel(pd.y_name)
    ax.legend(handles, labels, fontsize=8, loc="best")
    ax.set_title(f"{pd.model}: phases; contours: {key}", fontsize=10)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)


def plot_phase_point(r, path):
    """The action landscape at one solved state: cubic :math:`\\hat S(\\Phi)` at its (u, b, c)
    with the droplet marked, or the modular per-mode action at :math:`g=ua^2`."""
    fig, ax = subplots(figsize=(6, 4))
    p = r.params
    if "eps" in p:
        from .cubic import action
        top = 1.6 * max(r.phi_star if np.isfinite(r.phi_star) else 1.0, 1.0)
        phi = np.linspace(-top, top, 401)
        if np.isfinite(r.b):
            S = action(np.abs(phi), r.u, r.b, r.c, p["sigma_w2"])[0]
            ax.plot(phi, S, label=f"{r.phase}: u={r.u:.3g}, b={r.b:.3g}, c={r.c:.3g}")
        if r.phase != "GFL" and np.isfinite(r.phi_star):
            ax.axvline(r.phi_star, color="k", ls=":", label=f"droplet Phi*={r.phi_star:.3g}")
            ax.axvline(-r.phi_star, color="k", ls=":")
        ax.set_xlabel(r"$\Phi=w\cdot w^*$")
        ax.set_ylabel(r"$\hat S(\Phi)$")
    else:
        from .modular import _action_numeric, _phi_plus
        g = r.u * r.a ** 2 if np.isfinite(r.a) else 0.0
        top = 1.3 * _phi_plus(max(g, 1.01 * np.sqrt(p["gamma"])), p["gamma"])
        phi = np.linspace(0, top, 300)
        ax.plot(phi, [_action_numeric()(t, g, p["gamma"])[0] for t in phi],
                label=f"{r.phase}: a={r.a:.3g}, g=u a^2={g:.3g}")
        ax.set_xlabel(r"$\Phi=\Psi$")
        ax.set_ylabel(r"$S_k/P$")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(f"{r.phase}, sigma^2={p.get('sigma2', float('nan')):.4g} ({r.message})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
