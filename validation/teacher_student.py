r"""Cubic teacher-student experiment of Rubin et al. (2023), Fig. 2 and App. D, against the theory.

Teacher :math:`y=\mathrm{He}_1(w^*\cdot x)+\epsilon\,\mathrm{He}_3(w^*\cdot x)`, :math:`x\sim\mathcal N(0,I_d)`,
:math:`w^*=e_1`. For each noise level an ensemble of networks is sampled by Langevin dynamics
(:mod:`kernelphase.validation.langevin`); the observables are

* the histogram of :math:`\Phi=w_i\cdot w^*` over all neurons, as :math:`-\log p(\Phi)`, against
  :math:`d\,\hat{\mathcal S}(\Phi)` of the theory (same normalisation: zero at :math:`\Phi=0`);
* :math:`b=\mathbb E[(y-\bar f)\mathrm{He}_1]` and :math:`c=\mathbb E[(y-\bar f)\mathrm{He}_3]/6` on fresh
  test points (:math:`\bar f` the ensemble mean), against ``cubic_phase``;
* train and test loss of the ensemble mean.

Presets move along the Table 1 family with ``scale`` (alpha = beta = scale):
:math:`N\to sN`, :math:`d\to\sqrt s\,d`, :math:`n\to sn`, :math:`\sigma^2\to\sigma^2`,
:math:`\sigma_a^2\to\sigma_a^2/\sqrt s`, which leaves :math:`u`, :math:`\rho` invariant.
"""
import math

import numpy as np

from kernelphase._checks import check_choice, check_int, check_positive

__all__ = ["PRESETS", "scaled_preset", "cubic_data", "run_cubic", "plot_cubic_report"]

PRESETS = {
    "fig2": dict(width=700, n=3000, d=150, sigma_w2=0.5, sigma_a2=8 / 700, eps=-0.3,
                 sigma2=(0.3, 0.25, 0.2, 0.15, 0.1)),
    "appD": dict(width=(2800, 1400, 700), n=600, d=150, sigma_w2=0.5, sigma_a2=0.011, eps=-1.2,
                 sigma2=(0.05,)),
}


def scaled_preset(name, scale):
    """Preset parameters moved along the Table 1 scaling family by ``scale``."""
    check_choice("preset", name, tuple(PRESETS))
    s = check_positive("scale", scale)
    p = dict(PRESETS[name])
    widths = p["width"] if isinstance(p["width"], tuple) else (p["width"],)
    p["width"] = tuple(max(1, round(w * s)) for w in widths)
    p["d"] = max(2, round(p["d"] * math.sqrt(s)))
    p["n"] = max(2, round(p["n"] * s))
    p["sigma_a2"] = p["sigma_a2"] / math.sqrt(s)
    return p


def cubic_data(n, d, eps, seed):
    """Training inputs and targets of the cubic teacher (teacher direction e_1)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    z = X[:, 0]
    return X, z + eps * (z ** 3 - 3 * z)


def run_cubic(preset="fig2", scale=0.125, sigma2=None, nets=8, steps=4000, lr=None, seed=0,
              n_test=2000, checkpoint_dir=None, resume=False, progress=None, width=None):
    """Sample each noise level and compare with the theory. Returns a JSON-ready report."""
    from kernelphase.solvers.cubic import cubic_phase, cubic_transition, compiled_action
    from .langevin import ErfNetworkPosterior, langevin_run
    p = scaled_preset(preset, scale)
    nets = check_int("nets", nets, 1)
    steps = check_int("steps", steps, 10)
    sigma2s = tuple(sigma2) if sigma2 is not None else p["sigma2"]
    for s2 in sigma2s:
        check_positive("sigma2", s2)
    widths = (width,) if width is not None else p["width"]
    d, n, eps, sw2 = p["d"], p["n"], p["eps"], p["sigma_w2"]
    X, y = cubic_data(n, d, eps, seed)
    Xt, yt = cubic_data(n_test, d, eps, seed + 10 ** 6)
    zt = Xt[:, 0]
    bins = np.linspace(-1.6, 1.6, 65)
    fS, _ = compiled_action()
    rows = []
    for N in widths:
        tr = cubic_transition(eps, sw2, n=n, d=d, width=N, sigma_a2=p["sigma_a2"])
        for s2 in sigma2s:
            post = ErfNetworkPosterior(X, y, s2, p["sigma_a2"], sw2, N)
            # stable step: below 2 / (largest curvature) of the prior and likelihood terms
            step = lr or 0.2 / max(N / p["sigma_a2"], d / sw2, n / s2)

            def observe(a, W):
                phi = W[:, :, 0].ravel()
                f_test = post.forward(a, W, Xt)          # per network: error bars across nets
                f_train = post.forward(a, W).mean(0)
                return {"hist": np.histogram(phi, bins)[0], "f_test": f_test, "f_train": f_train,
                        "phi2": np.mean(phi ** 2)}

            ck = (f"{checkpoint_dir}/N{N}_s{s2:g}.npz" if checkpoint_dir else None)
            out = langevin_run(post, nets, steps, step, seed + 7919 * N + int(1e6 * s2),
                               burn_in=steps // 2, sample_every=max(1, steps // 200),
                               observe=observe, checkpoint=ck, checkpoint_every=max(1, steps // 10),
                               resume=resume, progress=progress,
                               params={"preset": preset, "scale": scale, "sigma2": s2, "width": N})
            acc = out["acc"]
            cnt = acc["count"]
            f_nets, f_train = acc["f_test"] / cnt, acc["f_train"] / cnt
            He1, He3 = zt, zt ** 3 - 3 * zt
            # b, c of each network's posterior-mean output; the ensemble value is their mean and
            # the standard error combines network-to-network and test-point fluctuations
            b_i = ((yt - f_nets) * He1).mean(1)
            c_i = ((yt - f_nets) * He3).mean(1) / 6
            resid = yt - f_nets.mean(0)
            b_sim, c_sim = float(b_i.mean()), float(c_i.mean())
            b_se = float(math.hypot(b_i.std(ddof=1) / math.sqrt(nets) if nets > 1 else 0.0,
                                    np.std(resid * He1) / math.sqrt(n_test)))
            c_se = float(math.hypot(c_i.std(ddof=1) / math.sqrt(nets) if nets > 1 else 0.0,
                                    np.std(resid * He3) / 6 / math.sqrt(n_test)))
            th = cubic_phase(eps, s2, n, d, N, p["sigma_a2"], sw2)
            hist = acc["hist"] / cnt
            dens = hist / hist.sum() / np.diff(bins)
            centres = 0.5 * (bins[1:] + bins[:-1])
            with np.errstate(divide="ignore"):
                mlogp = -np.log(dens)
            i0 = np.argmin(np.abs(centres))
            mlogp = mlogp - mlogp[i0]
            theory_curve = [d * fS(abs(c), th.u, th.b, th.c, sw2)[0] for c in centres]
            rows.append({
                "width": N, "sigma2": s2, "u": th.u, "phase_theory": th.phase,
                "b": _obs(th.b, b_sim, b_se), "c": _obs(th.c, c_sim, c_se),
                "learned_cubic": _obs(th.learned_cubic, 1 - c_sim / eps, c_se / abs(eps)),
                "train_loss": float(np.mean((f_train - y) ** 2)),
                "test_loss": float(np.mean(resid ** 2)),
                "phi_hist": {"centres": centres, "minus_log_p": mlogp, "theory": theory_curve},
                "droplet_mass_sim": float(hist[np.abs(centres) > 0.5].sum() / hist.sum()),
                "lr": step, "samples": cnt,
            })
    return {"preset": preset, "scale": scale, "params": {**p, "width": widths, "nets": nets,
                                                         "steps": steps, "seed": seed},
            "transition": {"u_c": tr.u_c, "sigma2_c_last_width": tr.sigma2_c},
            "rows": rows}


def _obs(theory, mean, se):
    z = (mean - theory) / se if se > 0 else float("nan")
    rel = (mean - theory) / abs(theory) if theory else float("nan")
    return {"theory": theory, "sim_mean": mean, "std_error": se, "z_score": z, "rel_diff": rel}


def plot_cubic_report(report, path):
    """-log p(Phi) of the simulation (points) and d*S(Phi) of the theory (lines); b vs sigma^2."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from kernelphase.io import savefig_atomic
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for i, r in enumerate(report["rows"]):
        h = r["phi_hist"]
        col = f"C{i % 10}"
        a1.plot(h["centres"], h["minus_log_p"], "x", color=col,
                label=f"N={r['width']}, sigma2={r['sigma2']:g}")
        a1.plot(h["centres"], h["theory"], "-", color=col, lw=0.8)
    a1.set_ylim(-1, 12)
    a1.set_xlabel(r"$\Phi=w\cdot w^*$")
    a1.set_ylabel(r"$-\log p(\Phi)$ (x: simulation, line: $d\hat S$)")
    a1.legend(fontsize=7)
    s2 = [r["sigma2"] for r in report["rows"]]
    a2.errorbar(s2, [r["b"]["sim_mean"] for r in report["rows"]],
                [r["b"]["std_error"] for r in report["rows"]], fmt="o", label="b simulation")
    a2.plot(s2, [r["b"]["theory"] for r in report["rows"]], "s-", label="b theory")
    a2.set_xlabel(r"$\sigma^2$")
    a2.legend()
    fig.tight_layout()
    savefig_atomic(fig, path, dpi=110)
    plt.close(fig)
