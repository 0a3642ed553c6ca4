"""Figures of the adaptive-kernel theory (matplotlib, Agg): landscapes, components, diagrams."""
import numpy as np

from kernelphase.io import savefig_atomic

__all__ = ["plot_cubic_transition", "plot_phase_diagram", "plot_modular"]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_cubic_transition(tr, path, d=150, n=None, width=None, sigma_a2=None):
    """Left: action landscapes d*S(Phi) at the spinodal, at u_c and beyond (Fig. 1 insets);
    right: b and the learned cubic component 1 - c/eps against u (Fig. 2c)."""
    from .cubic import _fS, cubic_phase_scaled, gfl_b, sigma2_from_u
    plt = _plt()
    eps, sw2, rho = tr.params["eps"], tr.params["sigma_w2"], tr.params["rho"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    phi = np.linspace(-1.6, 1.6, 401)
    for u, lab in ((0.8 * tr.u_spinodal, "GFL"), (tr.u_spinodal, "spinodal"),
                   (tr.u_c, r"$u_c$ (degenerate)")):
        b = gfl_b(u, rho, sw2)
        S = [_fS(abs(p), u, b, eps, sw2)[0] for p in phi]
        a1.plot(phi, np.array(S), label=f"{lab}, u={u:.1f}")
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
    plt.close(fig)


def plot_modular(tr, path):
    """Per-mode action S_k/P in the three phases (Fig. 3a) and 1-|a| against sigma^2 (Fig. 3b)."""
    from .modular import modular_phase
    plt = _plt()
    p = tr.params
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    phi = np.linspace(0, 1.3 * tr.phi_plus, 300)
    for g, lab in ((0.8 * tr.g_c, "GFL"), (tr.g_c, "GMFL-I (degenerate)"), (1.1 * tr.g_c, "GMFL-II")):
        a1.plot(phi, phi - g * phi ** 2 + p["gamma"] / 3 * phi ** 3, label=lab)
    a1.set_ylim(-0.5 * tr.phi_plus, 0.5 * tr.phi_plus)
    a1.set_xlabel(r"$\Phi=\Psi$")
    a1.set_ylabel(r"$S_k/P$")
    a1.legend(fontsize=8)
    s2 = np.linspace(0.5 * tr.sigma2_gmfl2, 1.3 * tr.sigma2_gmfl1, 120)
    a2.plot(s2, [modular_phase(p["P"], p["width"], p["sigma_a2"], p["gamma"], s).target_component
                 for s in s2])
    for v in (tr.sigma2_gmfl1, tr.sigma2_gmfl2):
        a2.axvline(v, color="k", ls=":")
    a2.set_xlabel(r"$\sigma^2$")
    a2.set_ylabel(r"target component $1-|a|$")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)


def plot_phase_diagram(pd, path):
    """Phase regions (GFL / GMFL-I / GMFL-II) with the droplet order parameter as contours."""
    from matplotlib.colors import ListedColormap
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cmap = ListedColormap(["#f4d6a0", "#8fbcd4", "#6a4c93"])
    ax.pcolormesh(pd.x, pd.y, np.ma.masked_less(pd.phase, 0), cmap=cmap, vmin=-0.5, vmax=2.5,
                  shading="nearest")
    key = "learned_cubic" if pd.model == "cubic" else "target_component"
    if np.isfinite(pd.order[key]).any():
        cs = ax.contour(pd.x, pd.y, pd.order[key], levels=6, colors="k", linewidths=0.5)
        ax.clabel(cs, fontsize=6)
    ax.set_xlabel(pd.x_name)
    ax.set_ylabel(pd.y_name)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in range(3)]
    ax.legend(handles, ("GFL", "GMFL-I", "GMFL-II"), fontsize=8, loc="best")
    ax.set_title(f"{pd.model}: phases; contours: {key}")
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
