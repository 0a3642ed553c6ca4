"""``kernelphase reproduce NAME [--quick] [--out DIR] [--json]``: one paper figure per entry.

The registry :data:`FIGURES` is a table: each entry names the figure, what it shows, the
numbers the paper states (with their source and a tolerance), the keyword arguments of a
quick and of a paper-size run, their cost, and the public function of
:mod:`kernelphase.solvers` / :mod:`kernelphase.validation` that makes it. Every run writes
into ``--out`` (staged, so a failed run leaves no partial output):

* ``reproduce.json``: our numbers beside the paper's, each with its tolerance and whether
  it is met, qualitative checks of what the figure shows, the run's size (``mode`` quick or
  full, and the reduction in words), parameters, seeds and versions
  (:func:`kernelphase.io.provenance`), and the full result of the underlying function;
* the figure (and whatever curves the underlying function writes).

A paper number is judged only where it applies: ``applies="full"`` marks a number that
depends on the paper's size, which a quick run reports but does not judge (``within`` is
``None``). ``known_difference`` marks a number the README documents as not reproduced,
with the reason. Entries whose function checkpoints (``resumable``) keep their state in
``OUT/.checkpoint`` while they run; ``--resume`` continues an interrupted run.

Nothing heavy is imported at import time.
"""
import math
import os
import time

__all__ = ["register", "FIGURES", "compare", "run_entry"]


def _n(quantity, paper, tol, kind="rel", source="", applies="all", known_difference=None):
    """One stated number: ``kind`` "rel" (|ours/paper - 1| <= tol), "abs" (|ours - paper|
    <= tol) or "equal" (categorical)."""
    return dict(quantity=quantity, paper=paper, tolerance=tol, kind=kind, source=source,
                applies=applies, known_difference=known_difference)


_RUBIN = "Rubin, Seroussi & Ringel 2023"
_KUMAR = "Kumar, Bordelon, Gershman & Pehlevan 2023"
_LYU = "Lyu, Jin, Li, Du, Lee & Hu 2023"

#: name -> entry. ``runner`` is the name of a function of this module taking
#: ``(kw, out, checkpoint)``; ``quick``/``full`` are its keyword arguments; costs are CPU or
#: wall times as stated, on the shared 2-core machine (measured where marked, else estimated).
#: Sources cite the paper as summarised in the theory notes (shared/theory/*.md, "What the
#: paper states numerically" and the figure readings).
FIGURES = {
    "rubin-fig2": dict(
        paper=_RUBIN, figure="Fig. 2 (theory lines)",
        shows="teacher-student GFL -> GMFL-I transition of the cubic teacher (eps = -0.3): "
              "u_c, sigma^2_c, the droplet Phi*, action at u_c (EK theory)",
        runner="_rubin_fig2",
        quick=dict(eps=-0.3, sigma_w2=0.5, n=3000, d=150, width=700, sigma_a2=8 / 700),
        full=dict(eps=-0.3, sigma_w2=0.5, n=3000, d=150, width=700, sigma_a2=8 / 700),
        reduced="none: the theory runs at the paper's parameters in both modes",
        cost_quick="5 s (measured)", cost_full="5 s (measured)",
        numbers=[_n("u_c", 30.2, 0.05, source="stated: u_c(eps = -0.3) ~ 30.2"),
                 _n("sigma2_c", 0.18, 0.05, source="Fig. 2: transition around sigma^2 ~ 0.18"),
                 _n("phi_star", 1.0, 0.35, "abs",
                    source="stated: nontrivial saddles at Phi ~ +-1")]),
    "rubin-fig2-langevin": dict(
        paper=_RUBIN, figure="Fig. 2 (crosses), App. C",
        shows="Langevin-trained erf networks at the Fig. 2 point against the theory: the "
              "linear discrepancy b and the mass of droplets (|Phi| > 0.5) above and below "
              "sigma^2_c",
        runner="_rubin_fig2_langevin",
        quick=dict(preset="fig2", scale=0.125, sigma2=(0.3, 0.1), nets=2, steps=1500,
                   readout="gibbs", seed=0, workers=1),
        full=dict(preset="fig2", scale=1.0, sigma2=(0.3, 0.25, 0.2, 0.15, 0.1), nets=200,
                  steps=360000, readout="langevin", seed=0, workers=None),
        reduced="scale 1/8 of the Table 1 family (N = 88, d = 53, n = 375), 2 noise levels, "
                "2 networks, 1500 Gibbs steps (paper: scale 1, 5 levels, 200 networks, "
                "360 000 epochs)",
        cost_quick="81 s wall at load 5 (measured)",
        cost_full="months of CPU (estimated; checkpointed)",
        resumable=True,
        numbers=[_n("sigma2_c", 0.18, 0.05, source="Fig. 2: transition around sigma^2 ~ 0.18 "
                                                     "(theory value of this run)")]),
    "rubin-fig3": dict(
        paper=_RUBIN, figure="Fig. 3, Sec. 3.2 and App. B",
        shows="modular-addition theory: GFL -> GMFL-I -> GMFL-II as sigma^2 falls, the "
              "discrepancy amplitude a at the GMFL-II boundary",
        runner="_rubin_fig3",
        quick=dict(P=401, width=1000, sigma_a2=2e-6, gamma=1e-4),
        full=dict(P=401, width=1000, sigma_a2=2e-6, gamma=1e-4),
        reduced="none: the theory runs at the paper's parameters in both modes",
        cost_quick="2 s (measured)", cost_full="2 s (measured)",
        numbers=[_n("sigma2_gmfl1", 0.227, 0.05, source="Fig. 3: GMFL-I from sigma^2 ~ 0.227"),
                 _n("sigma2_gmfl2", 0.175, 0.05, source="Fig. 3: GMFL-II from sigma^2 ~ 0.175"),
                 _n("a_at_gmfl2", -0.7, 0.1, source="Fig. 3: a goes from -1 to ~ -0.7 "
                                                     "across GMFL-I")]),
    "rubin-fig4": dict(
        paper=_RUBIN, figure="Fig. 4, App. D",
        shows="phase of the App. D networks (eps = -1.2, n = 600, d = 150, sigma^2 = 0.05) "
              "at the three widths, with the learned cubic component (EK theory)",
        runner="_rubin_fig4",
        quick=dict(eps=-1.2, sigma2=0.05, n=600, d=150, widths=(2800, 1400, 700),
                   sigma_a2=0.011, sigma_w2=0.5),
        full=dict(eps=-1.2, sigma2=0.05, n=600, d=150, widths=(2800, 1400, 700),
                  sigma_a2=0.011, sigma_w2=0.5),
        reduced="none: the theory runs at the paper's parameters in both modes",
        cost_quick="3 s (measured)", cost_full="3 s (measured)",
        numbers=[_n("phase_N2800", "GFL", None, "equal", "App. D: N = 2800 before the transition"),
                 _n("phase_N1400", "GMFL-I", None, "equal", "App. D: N = 1400 just after it"),
                 _n("phase_N700", "GMFL-I", None, "equal", "App. D: N = 700 inside GMFL-I")]),
    "kumar-fig1": dict(
        paper=_KUMAR, figure="Fig. 1(b, c), Sec. 5",
        shows="polynomial regression under plain GD: train and test loss, the linearised "
              "model, the kernel-regression line, weight norm and NTK alignment",
        runner="_kumar_poly",
        quick=dict(preset="fig1", steps=40000, with_linearised=True, align_points=200,
                   seed=0),
        full=dict(preset="fig1", steps=100000, with_linearised=True, align_points=1000,
                  seed=0),
        reduced="40 000 of the paper's 100 000 epochs and NTK alignment on 200 of 1000 test "
                "points (same network, D = 100, P = 550, N = 500)",
        cost_quick="45 s CPU; 64-90 s wall at load 5-7 (measured)",
        cost_full="2-4 min (README: 44 s CPU without alignment)",
        resumable=True,
        numbers=[_n("kernel_regression_mse", 0.41, 0.1, source="Fig. 1(b): kernel-regression "
                    "line ~ 0.41 (read from the figure)",
                    known_difference="the line scales as |beta|^4 and the paper's draw of beta "
                                     "is unknown; ours (E[y^2] = 0.652) gives 0.548 (README, "
                                     "'Lazy to rich')")]),
    "kumar-fig2": dict(
        paper=_KUMAR, figure="Fig. 2, Sec. 5",
        shows="modular addition without weight decay: test accuracy jumps after train "
              "accuracy, later for larger scale, while the weight norm rises",
        runner="_kumar_fig2",
        quick=dict(scales=(0.5, 1.0, 1.5), p=11, N=50, steps=15000, seed=0),
        full=dict(scales=(0.5, 1.0, 1.5, 2.0), p=23, N=100, steps=100000, seed=0),
        reduced="p = 11, N = 50, scales 0.5, 1, 1.5, 15 000 epochs (paper: p = 23, N = 100, "
                "scales up to 2, 1e5 epochs)",
        cost_quick="6 s CPU (measured)", cost_full="about 1 h CPU (estimated)",
        resumable=True, numbers=[]),
    "kumar-fig3a": dict(
        paper=_KUMAR, figure="Fig. 3(a), Sec. 5",
        shows="sweep over the output scale alpha (convention B, curves relative to their "
              "initial value): the delay of the test drop grows with alpha",
        runner="_kumar_fig3a",
        quick=dict(alphas=(0.25, 0.5, 1.0), steps=15000, threshold=0.2, seed=0),
        full=dict(alphas=(2 ** -5, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0), steps=60000,
                  threshold=0.2, seed=0),
        reduced="alpha = 1/4, 1/2, 1 of the paper's 2^-5 ... 16 and 15 000 of 60 000 steps",
        cost_quick="21 s CPU (measured)",
        cost_full="about 4 min CPU (estimated: 0.4 ms/step)", numbers=[]),
    "kumar-fig3e": dict(
        paper=_KUMAR, figure="Fig. 3(e), Sec. 5",
        shows="amount of grokking max(0, t_test - t_train) over laziness alpha and kernel "
              "alignment eps: largest at large alpha and small eps",
        runner="_kumar_fig3e",
        quick=dict(alphas=(0.4, 4.0), eps_values=(0.02, 0.2), steps=20000, seed=0),
        full=dict(alphas=tuple(round(0.4 * i, 1) for i in range(1, 15)),
                  eps_values=tuple(round(0.02 * i, 2) for i in range(1, 15)), steps=110000,
                  seed=0),
        reduced="a 2 x 2 grid (alpha 0.4, 4; eps 0.02, 0.2) of the paper's 14 x 14 and "
                "20 000 of 110 000 steps; the corner alpha 4, eps 0.2 never reaches the "
                "threshold (lazy memorisation, as at full length), so the run's status is 7",
        cost_quick="16 s CPU (measured)",
        cost_full="about 2.5 h CPU (estimated: 196 runs of 44 s)", numbers=[]),
    "kumar-fig4": dict(
        paper=_KUMAR, figure="Fig. 4, Sec. 5",
        shows="the N = 2 network with the uncentred loss: the late test drop behind the "
              "train drop (loss decomposition t1 + t2 + t3)",
        runner="_kumar_poly",
        quick=dict(preset="fig4", steps=50000, seed=0),
        full=dict(preset="fig4", steps=50000, seed=0),
        reduced="none: the paper's size (N = 2, 5e4 epochs) runs in seconds",
        cost_quick="about 10 s CPU (estimated: 4 s CPU for 1e4 epochs)",
        cost_full="about 10 s CPU (estimated)",
        resumable=True, numbers=[]),
    "kumar-fig5": dict(
        paper=_KUMAR, figure="Fig. 5, Sec. 6.1",
        shows="grokking on NTK-eigenvector labels: mid-spectrum eigenvectors grok, the "
              "smallest-eigenvalue ones do not",
        runner="_kumar_fig5",
        quick=dict(label_indices=(1, 5, 70, 75, 100, 150), steps=25000, seed=0),
        full=dict(label_indices=(1, 5, 70, 75, 100, 150), steps=25000, seed=0),
        reduced="none: the paper's size runs in seconds",
        cost_quick="9 s CPU (measured)", cost_full="9 s CPU (measured)",
        numbers=[]),
    "kumar-fig12": dict(
        paper=_KUMAR, figure="Fig. 12, App.",
        shows="the Fig. 4 network with trained read-outs against the frozen (w_bar, M) "
              "reduction; the test loss t1 + t2 + t3 in (w_bar_a, M_a)",
        runner="_kumar_fig12",
        quick=dict(steps=30000, seed=1),
        full=dict(steps=100000, seed=1),
        reduced="30 000 of the paper's 100 000 epochs",
        cost_quick="about 18 s CPU (estimated: 12 s for 20 000 epochs)", cost_full="about 1 min CPU (estimated)",
        resumable=True, numbers=[]),
    "kumar-goldilocks": dict(
        paper=_KUMAR, figure="Goldilocks appendix",
        shows="data window: P = 50 never generalises, P = 120 groks, P = 500 learns train "
              "and test together (eps = 0.1; see the known difference)",
        runner="_kumar_goldilocks",
        quick=dict(Ps=(50, 120, 500), eps=0.1, steps=50000, threshold=0.5, seed=0),
        full=dict(Ps=(50, 120, 500), eps=0.1, steps=50000, threshold=0.5, seed=0),
        reduced="none: the paper's size (D = 40, N = 100, 5e4 epochs) runs in seconds",
        cost_quick="11 s CPU (measured)", cost_full="11 s CPU (measured)",
        numbers=[_n("eps", 0.5, 0.0, "abs", "theory notes Sec. 8: Goldilocks eps = 0.5",
                    known_difference="at eps = 0.5 the lazy fit is as fast as feature learning "
                                     "and there is no window (README, 'Lazy to rich'); the "
                                     "window is reproduced at eps <= 0.1, so this entry runs "
                                     "eps = 0.1")]),
    "lyu-fig1a": dict(
        paper=_LYU, figure="Fig. 1a, Sec. 3.2.3",
        shows="diagonal linear net on a sparse teacher: kernel (L2 SVM) test accuracy, then "
              "grokking to the L1 max-margin predictor after ln(alpha)/lambda",
        runner="_lyu_diag",
        quick=dict(task="sparse", d=10000, n=256, n_test=2000, alpha=128.0, lam=1e-3,
                   lr=0.01, t_end_factor=2.0, seed=0),
        full=dict(task="sparse", d=100000, n=256, n_test=2000, alpha=128.0, lam=1e-3,
                  lr=0.01, t_end_factor=2.0, seed=0),
        reduced="d = 1e4 of the paper's 1e5 (2000 test points in both modes)",
        cost_quick="43 s CPU; 35 s wall at load 5, 150 s at load 9 (measured)",
        cost_full="about 10 min (estimated: 10x d)",
        resumable=True,
        numbers=[_n("final_test_acc", 1.0, 0.01, "abs", "Fig. 1a: test accuracy 100 % at the "
                    "end"),
                 _n("final_norm", 4.3, 0.05, source="Fig. 1a: final norm ~ 4.3 (read)"),
                 _n("plateau_test_acc", 0.5145, 0.01, "abs", "Fig. 1a: 51.4-51.5 % in the "
                    "kernel phase (read)", applies="full"),
                 _n("lambda_t_transition_minus_ln_alpha", -2.2, 0.5, "abs",
                    "Fig. 1a: transition centred ~ 2.2/lambda before ln(alpha)/lambda "
                    "(read; spans lambda t 1.9 -> 3.6)")]),
    "lyu-fig1b": dict(
        paper=_LYU, figure="Fig. 1b, Sec. 3.2.3",
        shows="misgrokking: L2-separated data, the kernel predictor generalises, the late "
              "L1 max-margin predictor does not",
        runner="_lyu_diag",
        quick=dict(task="misgrok", d=10000, n=32, n_test=2000, gamma=25.0, alpha=128.0,
                   lam=1e-3, lr=0.01, t_end_factor=4.0, seed=0),
        full=dict(task="misgrok", d=100000, n=32, n_test=2000, gamma=25.0, alpha=128.0,
                  lam=1e-3, lr=0.01, t_end_factor=41.2, seed=0),
        reduced="d = 1e4 of 1e5, run to 4 t_g (1.9e6 steps) instead of 2e7 steps",
        cost_quick="9 s CPU (measured)",
        cost_full="about 20 min (estimated: 10x d, 10x time)",
        resumable=True,
        numbers=[_n("plateau_test_acc", 0.999, 0.01, "abs", "Fig. 1b: 99.9 % in the kernel "
                    "phase (read)"),
                 _n("final_test_acc", 0.551, 0.05, "abs", "Fig. 1b: 55.1 % at 2e7 steps "
                    "(read; 57.1 % at 1e6)", applies="full"),
                 _n("final_norm", 3.22, 0.05, source="Fig. 1b: final norm ~ 3.22 (read)",
                    applies="full")]),
    "lyu-fig3": dict(
        paper=_LYU, figure="Fig. 3, Sec. 3.3.3",
        shows="matrix completion of the multiplication table: zero-fill plateau, then the "
              "minimum-nuclear-norm completion after ln(alpha)/lambda",
        runner="_lyu_mc",
        quick=dict(d=97, frac=0.05, alpha=10.0, lam=1e-4, lr=0.1, steps=60000,
                   record_every=1000, seed=0),
        full=dict(d=97, frac=0.05, alpha=10.0, lam=1e-4, lr=0.1, steps=10000000,
                  record_every=10000, seed=0),
        reduced="6e4 of the plotted 1e7 steps: the kernel-phase plateau only (the "
                "transition is at 3.6e5 steps), so the run's status is 7 (too short to "
                "measure the transition)",
        cost_quick="20 s wall at load 4 (measured; 24 s CPU of it can be the "
                   "nuclear-norm completion under load)",
        cost_full="about 40 min CPU (estimated: 0.22 ms/step; 5e5 steps took 135 s; "
                  "checkpointed)",
        resumable=True,
        numbers=[_n("plateau_test_mse", 0.1022, 0.01, source="Fig. 3: plateau ~ 0.1022 (read)"),
                 _n("t_transition_measured_steps", 3.6e5, 0.15, source="Fig. 3: half the "
                    "plateau at ~ 3.6e5 steps (read)", applies="full"),
                 _n("final_norm", 5.62, 0.03, source="Fig. 3: final norm ~ 5.62 (read, 1e7 "
                    "steps)", applies="full")]),
    "rubin-fig5": dict(
        paper=_RUBIN, figure="Figs. 5 and 6, App. D",
        shows="train and test loss over training at the three App. D widths (Fig. 5) and the "
              "learned linear and cubic parts on test points (Fig. 6): the narrowest network "
              "keeps lowering its test loss after its train loss has settled, by learning the "
              "cubic part, and the widest (GFL) does not",
        runner="_rubin_fig5",
        quick=dict(preset="appD", scale=0.125, nets=2, steps=6000, readout="gibbs", seed=0,
                   curves=True, n_test=500, workers=2),
        full=dict(preset="appD", scale=1.0, nets=50, steps=7000000, readout="langevin",
                  seed=0, curves=True, workers=None),
        reduced="scale 1/8 of the App. D family (N = 350, 175, 88; d = 53, n = 212), 2 "
                "networks, 6000 Gibbs steps, 500 test points (paper: scale 1, 50 networks, "
                "7e6 epochs)",
        cost_quick="62 s CPU; 3 min wall at load 12 (measured)",
        cost_full="years of CPU (estimated; checkpointed)",
        resumable=True, numbers=[]),
    "lyu-fig2": dict(
        paper=_LYU, figure="Fig. 2b, Sec. 2",
        shows="modular addition with a two-layer ReLU MLP, large initialisation and weight "
              "decay: the test accuracy jumps long after the train accuracy, later for a "
              "larger initialisation scale",
        runner="_lyu_fig2",
        quick=dict(p=23, scales=(1.0, 10.0, 100.0), lam=1e-3, lr=0.5, width=256,
                   train_frac=0.8, steps=40000, record_every=50, seed=0),
        full=dict(p=97, scales=(1.0, 10.0, 100.0), lam=1e-4, lr=0.002, width=1024,
                  train_frac=0.4, steps=30000000, record_every=10000, seed=0),
        reduced="p = 23, width 256, 80 % of the pairs, lr = 0.5, lambda = 1e-3 (paper: p = 97, "
                "width 1024, 40 %, lr = 0.002, lambda = 1e-4, 1e7 steps and more)",
        cost_quick="83 s CPU; 13 min wall at load 18 (measured)",
        cost_full="months of CPU (estimated: 0.7-1.2 s per step, README; checkpointed)",
        resumable=True,
        numbers=[_n("t_train_scale1", 1e6, 0.5, source="Sec. 2: train accuracy 100 % by "
                    "~1e6 steps (read)", applies="full"),
                 _n("t_test_scale1", 1e7, 0.5, source="Sec. 2: the test jump near 1e7 steps "
                    "(read)", applies="full")]),
}


# --------------------------------------------------------------------------- comparison

def compare(numbers, ours, mode):
    """Our values beside the paper's: one dict per stated number, with ``within`` True or
    False when judged, ``None`` when the number applies only to the paper-size run (and
    this is a quick one) or our value is missing."""
    rows = []
    for spec in numbers:
        row = dict(spec, ours=ours.get(spec["quantity"]))
        v, p, tol = row["ours"], spec["paper"], spec["tolerance"]
        if spec["applies"] == "full" and mode != "full":
            within = None
        elif spec["kind"] == "equal":
            within = None if v is None else v == p
        elif v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            within = None if v is None else False
        elif spec["kind"] == "rel":
            row["rel_diff"] = v / p - 1.0
            within = abs(v / p - 1.0) <= tol
        else:
            row["abs_diff"] = v - p
            within = abs(v - p) <= tol
        row["within"] = within
        rows.append(row)
    return rows


def _check(name, ok, detail):
    return dict(check=name, ok=bool(ok), detail=detail)


# --------------------------------------------------------------------------- runners
# each takes (kw, out, checkpoint) and returns (result dict, our numbers, qualitative checks),
# writing its figure into out; checkpoint(key) opens the run's RunDir with the key its
# function checks (resumable entries only); checkpoint(key, part) one of several runs

def _rubin_fig2(kw, out, checkpoint):
    from ..solvers.cubic import cubic_transition
    from ..solvers.plots import plot_cubic_transition
    tr = cubic_transition(kw["eps"], kw["sigma_w2"], n=kw["n"], d=kw["d"], width=kw["width"],
                          sigma_a2=kw["sigma_a2"])
    plot_cubic_transition(tr, os.path.join(out, "rubin_fig2.png"), d=kw["d"], n=kw["n"],
                          width=kw["width"], sigma_a2=kw["sigma_a2"])
    d = tr.to_dict()
    ours = {k: d.get(k) for k in ("u_c", "sigma2_c", "phi_star")}
    checks = [_check("converged", tr.converged, tr.message),
                _check("spinodal below u_c", d["u_spinodal"] < d["u_c"],
                       f"u_spinodal = {d['u_spinodal']:.4g}, u_c = {d['u_c']:.4g}")]
    return d, ours, checks


def _rubin_fig2_langevin(kw, out, checkpoint):
    from ..solvers.cubic import cubic_transition
    from ..validation.teacher_student import plot_cubic_report, run_cubic
    kw = dict(kw)
    workers = kw.pop("workers")     # None: one process per core; not part of the result
    rep = run_cubic(run_dir=checkpoint(kw), progress=False, workers=workers, **kw)
    plot_cubic_report(rep, os.path.join(out, "phi_and_b.png"))
    tr = cubic_transition(-0.3, 0.5, n=3000, d=150, width=700, sigma_a2=8 / 700)
    rows = [r for r in rep.rows if "b" in r]    # the fig2 preset keeps sigma^2 at every scale
    above = [r["droplet_mass_sim"] for r in rows if r["sigma2"] > tr.sigma2_c]
    below = [r["droplet_mass_sim"] for r in rows if r["sigma2"] < tr.sigma2_c]
    checks = [_check("droplets below sigma^2_c, not above",
                     above and below and min(below) > max(above),
                     f"droplet mass above {above}, below {below}")]
    checks += [_check(f"b at sigma^2 = {r['sigma2']:.3g} within 4 standard errors + 30 % of "
                      f"the theory", abs(r["b"]["sim_mean"] - r["b"]["theory"])
                      <= 4 * r["b"]["std_error"] + 0.3 * abs(r["b"]["theory"]),
                      f"sim {r['b']['sim_mean']:.4f} +- {r['b']['std_error']:.4f}, theory "
                      f"{r['b']['theory']:.4f}") for r in rows if r["phase_theory"] == "GFL"]
    return rep.to_dict(), {"sigma2_c": tr.sigma2_c}, checks


def _rubin_fig3(kw, out, checkpoint):
    from ..solvers.modular import modular_transition
    from ..solvers.plots import plot_modular
    tr = modular_transition(kw["P"], kw["width"], kw["sigma_a2"], kw["gamma"])
    plot_modular(tr, os.path.join(out, "rubin_fig3.png"))
    d = tr.to_dict()
    ours = {k: d.get(k) for k in ("sigma2_gmfl1", "sigma2_gmfl2", "a_at_gmfl2")}
    checks = [_check("converged", tr.converged, tr.message),
              _check("GMFL-I precedes GMFL-II", d["sigma2_gmfl1"] > d["sigma2_gmfl2"],
                     f"{d['sigma2_gmfl1']:.4g} > {d['sigma2_gmfl2']:.4g}")]
    return d, ours, checks


def _rubin_fig4(kw, out, checkpoint):
    from ..figures import label, param_text
    from ..solvers.cubic import cubic_phase
    rs = [cubic_phase(kw["eps"], kw["sigma2"], kw["n"], kw["d"], N, kw["sigma_a2"],
                      kw["sigma_w2"]) for N in kw["widths"]]
    _plot_lines(os.path.join(out, "rubin_fig4.png"), kw["widths"],
                {"EK": [r.learned_cubic for r in rs]}, label("width"),
                r"learned cubic $1-c/\epsilon$ (EK theory)",
                f"App. D: {param_text(kw, ('eps', 'sigma2'))}",
                labels=[(N, r.learned_cubic, r.phase) for N, r in zip(kw["widths"], rs)],
                params=kw)
    ours = {f"phase_N{N}": r.phase for N, r in zip(kw["widths"], rs)}
    checks = [_check(f"N = {N} converged", r.converged, r.message)
              for N, r in zip(kw["widths"], rs)]
    return {"points": [dict(r.to_dict(), width=N) for N, r in zip(kw["widths"], rs)]}, ours, checks


def _kumar_poly(kw, out, checkpoint):
    from ..validation.lazy_rich_runs import train_and_report
    from ..validation.polynomial_net import PRESETS
    kw = dict(kw)
    cfg = dict(PRESETS[kw.pop("preset")], steps=kw.pop("steps"))
    key = dict(cfg, model="network", record_every=10, threshold=0.1, relative=False, **kw)
    res = train_and_report(cfg, out=out, checkpoint=checkpoint(key), **kw)
    d = res.to_dict()
    kr = d.get("kernel_regression_mse") or {}
    ours = {"kernel_regression_mse": kr.get("empirical_ntk")}
    grok = (math.isfinite(res.t_train) and math.isfinite(res.t_test)
            and res.t_test > 2 * res.t_train)
    checks = [_check("test loss drops well after the train loss (t_test > 2 t_train)", grok,
                     f"t_train = {res.t_train}, t_test = {res.t_test}"),
              _check("weight norm rises", res.weight_norm_final > res.weight_norm_initial,
                     f"{res.weight_norm_initial:.4g} -> {res.weight_norm_final:.4g}")]
    if kw.get("with_linearised"):
        checks.append(_check("the linearised model does not generalise (test loss > 3x the "
                             "network's)", res.linearised_final_test_loss > 3 * res.final_test_loss,
                             f"linearised test {res.linearised_final_test_loss:.3g}, network "
                             f"{res.final_test_loss:.3g}"))
    if kw.get("align_points"):
        checks.append(_check("NTK alignment grows", res.alignment_final > res.alignment_initial,
                             f"{res.alignment_initial:.4g} -> {res.alignment_final:.4g}"))
    return d, ours, checks


def _kumar_fig2(kw, out, checkpoint):
    from ..validation.lazy_rich_figs import FIG2, fig2
    key = dict(FIG2, record_every=100, acc_level=0.9, **kw)
    res = fig2(out=out, checkpoint=checkpoint(key), **kw)
    runs = res.runs
    checks = []
    for r in runs:
        ok = r["t_test_acc"] is not None and r["t_train_acc"] is not None and \
            math.isfinite(r["t_test_acc"]) and r["t_test_acc"] > r["t_train_acc"]
        checks.append(_check(f"scale {r['scale']:g}: test accuracy jumps after train accuracy",
                             ok, f"t_train_acc = {r['t_train_acc']}, t_test_acc = "
                                 f"{r['t_test_acc']}"))
        checks.append(_check(f"scale {r['scale']:g}: weight norm rises",
                             r["weight_norm_final"] > r["weight_norm_initial"],
                             f"{r['weight_norm_initial']:.4g} -> {r['weight_norm_final']:.4g}"))
    t = [r["t_test_acc"] for r in runs]
    later = all(a is not None and b is not None and b > a for a, b in zip(t, t[1:]))
    checks.append(_check("larger scale groks later", later, f"t_test_acc = {t}"))
    return res.to_dict(), {}, checks


def _plot_lines(path, x, ys, xlabel, ylabel, title, logx=False, logy=False, labels=None,
                params=None):
    """A small line figure (``ys``: name -> values over ``x``), styled and written atomically
    with ``params`` in its metadata."""
    from ..figures import legend, save, styled, subplots

    @styled
    def draw():
        fig, ax = subplots(figsize=(5, 3.6))
        for name, y in ys.items():
            ax.plot(x, y, "o-", label=name)
        for xi, yi, lab in labels or ():
            ax.annotate(lab, (xi, yi), textcoords="offset points", xytext=(4, 6), fontsize=8)
        if labels:
            ax.margins(0.1, 0.15)       # room for the annotations inside the frame
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if len(ys) > 1:
            legend(ax)
        save(fig, path, params)
    draw()


def _kumar_fig3a(kw, out, checkpoint):
    from ..validation.lazy_rich_runs import sweep
    from ..validation.polynomial_net import PRESETS
    cfg = dict(PRESETS["fig3a"], steps=kw["steps"])
    res = sweep(cfg, kw["alphas"], [cfg["eps"]], seed=kw["seed"], out=out,
                threshold=kw["threshold"], relative=True)
    runs = res.runs
    _plot_lines(os.path.join(out, "kumar_fig3a.png"), [r["alpha"] for r in runs],
                {r"$t_\mathrm{train}$": [r["t_train"] for r in runs],
                 r"$t_\mathrm{test}$": [r["t_test"] for r in runs]},
                r"laziness $\alpha$", f"epochs to {kw['threshold']:g}" + r" $\times$ initial loss",
                r"Fig. 3(a): drop times over $\alpha$", logx=True, logy=True, params=kw)
    done = [r for r in runs if math.isfinite(r["gap"])]
    gaps = [r["gap"] for r in done]
    checks = [_check("at least three alpha measured", len(done) >= 3,
                     f"{len(done)} of {len(runs)}"),
              _check("the delay t_test - t_train grows with alpha",
                     all(b > a for a, b in zip(gaps, gaps[1:])),
                     ", ".join(f"alpha {r['alpha']:g}: {r['gap']:g}" for r in done))]
    return res.to_dict(), {}, checks


def _kumar_fig3e(kw, out, checkpoint):
    from ..validation.lazy_rich_runs import sweep
    from ..validation.polynomial_net import PRESETS
    cfg = dict(PRESETS["fig3e"], steps=kw["steps"])
    res = sweep(cfg, kw["alphas"], kw["eps_values"], seed=kw["seed"], out=out)
    g = {(r["alpha"], r["eps"]): r["grokking"] for r in res.runs}
    corner = (max(kw["alphas"]), min(kw["eps_values"]))
    best = max(g, key=lambda k: g[k] if math.isfinite(g[k]) else -1.0)
    checks = [_check("the most grokking at the largest alpha and the smallest eps",
                     g[best] > 0 and g[corner] >= g[best],
                     f"grokking at alpha {corner[0]:g}, eps {corner[1]:g}: {g[corner]:g}; "
                     f"largest {g[best]:g} at alpha {best[0]:g}, eps {best[1]:g}")]
    return res.to_dict(), {}, checks


def _kumar_goldilocks(kw, out, checkpoint):
    from ..figures import param_text
    from ..validation.lazy_rich_runs import train_and_report
    from ..validation.polynomial_net import PRESETS
    rs = {}
    for P in kw["Ps"]:
        cfg = dict(PRESETS["goldilocks"], P=P, eps=kw["eps"], steps=kw["steps"])
        rs[P] = train_and_report(cfg, seed=kw["seed"], threshold=kw["threshold"],
                                 relative=True, kr_line=False)
    rel = {P: r.final_test_loss / r.initial_test_loss for P, r in rs.items()}
    _plot_lines(os.path.join(out, "kumar_goldilocks.png"), list(rs),
                {"final test / initial": [rel[P] for P in rs]}, r"training points $P$",
                "final test loss / initial", f"Goldilocks window ({param_text(kw, ('eps',))})",
                logx=True, logy=True, params=kw)
    lo, mid, hi = sorted(rs)
    checks = [_check(f"P = {lo}: never generalises (final test above its initial value)",
                     rel[lo] > 1, f"final/initial {rel[lo]:.3g}"),
              _check(f"P = {mid}: groks (test drop > 5x later than train, final/initial "
                     f"< 0.5)", rs[mid].t_test > 5 * rs[mid].t_train and rel[mid] < 0.5,
                     f"t_train {rs[mid].t_train:g}, t_test {rs[mid].t_test:g}, final/initial "
                     f"{rel[mid]:.3g}"),
              _check(f"P = {hi}: train and test fall together (t_test < 2 t_train)",
                     rs[hi].t_test < 2 * rs[hi].t_train,
                     f"t_train {rs[hi].t_train:g}, t_test {rs[hi].t_test:g}")]
    return {"runs": {str(P): r.to_dict() for P, r in rs.items()}}, {"eps": kw["eps"]}, checks


def _kumar_fig5(kw, out, checkpoint):
    from ..validation.lazy_rich_figs import fig5
    res = fig5(out=out, **kw)
    by_k = {r["k"]: r for r in res.runs}
    mid = [k for k in by_k if 10 < k <= 80]
    low = [k for k in by_k if k > 90]
    checks = [_check(f"k = {k} (mid-spectrum) groks", by_k[k]["groks"],
                     f"t_train = {by_k[k]['t_train']}, t_test = {by_k[k]['t_test']}")
              for k in mid]
    checks += [_check(f"k = {k} (smallest eigenvalues) does not generalise",
                      not by_k[k]["groks"] and by_k[k]["final_test_rel"] > 0.5,
                      f"final test/initial = {by_k[k]['final_test_rel']:.3g}") for k in low]
    return res.to_dict(), {}, checks


def _kumar_fig12(kw, out, checkpoint):
    from ..validation.lazy_rich_figs import FIG12, fig12
    key = dict(FIG12, record_every=10, threshold=0.1, n_test=1000)
    key.update(kw)
    res = fig12(out=out, checkpoint=checkpoint(key), **kw)
    rel = abs(res.test_loss_mc - res.final_test_loss) / max(res.final_test_loss, 1e-300)
    checks = [_check("t1 + t2 + t3 in (w_bar_a, M_a) is the test loss (1000-point Monte "
                     "Carlo within 15 %)", rel < 0.15,
                     f"decomposition {res.final_test_loss:.4g}, Monte Carlo "
                     f"{res.test_loss_mc:.4g}"),
              _check("the (w_bar, M) dynamics do not close with trained read-outs (paper: "
                     "'the decomposition is then not exact')", res.closure_defect_max > 1e-3,
                     f"largest closure defect {res.closure_defect_max:.3g}")]
    return res.to_dict(), {}, checks


def _lyu_diag(kw, out, checkpoint):
    from ..validation.dichotomy_runs import plot_run, train_diag
    res = train_diag(checkpoint=checkpoint(dict(kw, model="diagonal")), **kw)
    plot_run(res, os.path.join(out, f"lyu_{kw['task']}.png"))
    d = {k: v for k, v in res.to_dict().items() if k != "curves"}
    ours = {k: d.get(k) for k in ("final_test_acc", "final_norm", "plateau_test_acc",
                                  "lambda_t_transition_minus_ln_alpha")}
    checks = [_check("kernel-phase accuracy equals the L2 SVM's (Cor. 3.6)",
                     abs(res.plateau_test_acc - res.l2_svm_test_acc) < 0.01,
                     f"plateau {res.plateau_test_acc:.4f}, L2 SVM {res.l2_svm_test_acc:.4f}")]
    if kw["task"] == "sparse":
        checks.append(_check("the late predictor is the L1 max-margin one (cosine > 0.99)",
                             res.cos_l1_final > 0.99, f"cosine {res.cos_l1_final:.5f}"))
    else:
        checks.append(_check("misgrokking: the test accuracy falls from the kernel plateau "
                             "towards the L1 max-margin predictor's",
                             res.final_test_acc < res.plateau_test_acc - 0.05
                             and res.l1_margin_test_acc < res.plateau_test_acc,
                             f"plateau {res.plateau_test_acc:.4f}, final "
                             f"{res.final_test_acc:.4f}, L1 max margin "
                             f"{res.l1_margin_test_acc:.4f}"))
    return d, ours, checks


def _lyu_mc(kw, out, checkpoint):
    from ..validation.dichotomy_runs import check_mc_params, plot_run, train_mc
    n_obs = check_mc_params(**kw)     # the key holds n, as for dichotomy train mc
    key = dict(kw, model="matrix_completion", n=n_obs)
    res = train_mc(checkpoint=checkpoint(key), progress=False, **kw)
    plot_run(res, os.path.join(out, "lyu_fig3.png"))
    d = {k: v for k, v in res.to_dict().items() if k != "curves"}
    ours = {k: d.get(k) for k in ("plateau_test_mse", "t_transition_measured_steps",
                                  "final_norm")}
    checks = [_check("kernel-phase test MSE equals the zero-fill completion's (Cor. 3.11)",
                     abs(res.plateau_test_mse / res.zero_fill_test_mse - 1) < 0.01,
                     f"plateau {res.plateau_test_mse:.5g}, zero-fill "
                     f"{res.zero_fill_test_mse:.5g}"),
              _check("the norm decays as |theta(0)| exp(-lambda t) in the kernel phase",
                     _kernel_phase_decay(res), "relative deviation below 1e-3 up to "
                                                "lambda t = 0.6")]
    if kw["steps"] * kw["lr"] * kw["lam"] > 6:   # past the transition (lambda t ~ 3.6)
        checks.append(_check("final test MSE far below the plateau",
                             res.final_test_mse < 0.1 * res.plateau_test_mse,
                             f"final {res.final_test_mse:.3g}"))
    return d, ours, checks


def _rubin_fig5(kw, out, checkpoint):
    from ..validation.teacher_student import plot_learning_curves, run_cubic
    kw = dict(kw)
    workers = kw.pop("workers")
    rep = run_cubic(run_dir=checkpoint(kw), progress=False, workers=workers, **kw)
    plot_learning_curves(rep, os.path.join(out, "rubin_fig5_6.png"))
    rows = sorted((r for r in rep.rows if "grokking" in r), key=lambda r: r["width"])
    d = rep.to_dict()
    ours = {f"late_drop_N{r['width']}": r["grokking"].late_drop for r in rows}
    # the cubic part of the ensemble-mean output on test points at the end (Fig. 6)
    cubic = {r["width"]: float(r["curves"]["cubic_learned"][-1]) for r in rows}
    ours.update({f"learned_cubic_N{w}": v for w, v in cubic.items()})
    checks = []
    if len(rows) >= 2:
        narrow, wide = rows[0], rows[-1]
        checks = [_check("the narrowest network's test loss falls further after its train "
                         "loss has settled than the widest's (Fig. 5)",
                         narrow["grokking"].late_drop > wide["grokking"].late_drop,
                         f"late drop N={narrow['width']}: {narrow['grokking'].late_drop:.3g}, "
                         f"N={wide['width']}: {wide['grokking'].late_drop:.3g}"),
                  _check("the narrowest network learns more of the cubic part (Fig. 6)",
                         cubic[narrow["width"]] > cubic[wide["width"]],
                         f"cubic part of the mean output at the end, N={narrow['width']}: "
                         f"{cubic[narrow['width']]:.3g}, N={wide['width']}: "
                         f"{cubic[wide['width']]:.3g}")]
    return d, ours, checks


def _lyu_fig2(kw, out, checkpoint):
    from ..validation.dichotomy_runs import plot_modular, train_modular
    from ..validation.modular_mlp import modular_run_key
    kw = dict(kw)
    scales = kw.pop("scales")
    rows = []
    for sc in scales:
        ck = checkpoint(modular_run_key(init_scale=sc, stop_when_grokked=True, **kw),
                        part=f"scale{sc:g}")
        r = train_modular(init_scale=sc, checkpoint=ck, stop_when_grokked=True, **kw)
        plot_modular(r, os.path.join(out, f"lyu_fig2_scale{sc:g}.png"))
        rows.append(dict(init_scale=sc, t_train=r.t_train, t_test=r.t_test, delay=r.delay,
                         t_test_50=r.t_test_50, t_g_steps=r.t_g_steps,
                         final_test_acc=r.final_test_acc, status=r.status, message=r.message))
    status = next((r["status"] for r in rows if r["status"]), 0)
    d = dict(rows=rows, status=status,
             message=next((r["message"] for r in rows if r["status"]), "converged"))
    ours = {"t_train_scale1": rows[0]["t_train"], "t_test_scale1": rows[0]["t_test"]}
    delays = [r["delay"] for r in rows]
    checks = [_check("every scale groks: test accuracy 95 % after train accuracy 95 %",
                     all(r["status"] == 0 and r["t_test"] > r["t_train"] for r in rows),
                     ", ".join(f"scale {r['init_scale']:g}: {r['t_train']} -> {r['t_test']}"
                               for r in rows)),
              _check("the delay grows with the initialisation scale (Fig. 2b)",
                     all(math.isfinite(a) and a < b for a, b in zip(delays, delays[1:])),
                     f"delays {delays}")]
    return d, ours, checks


def _kernel_phase_decay(res):
    """|theta| against the pure weight-decay curve ``norm_kernel`` up to lambda t = 0.6
    (the paper's figure: 4 digits up to 6e4 steps)."""
    import numpy as np
    c, lam = res.curves, res.params["lam"]
    t = np.asarray(c["t"], float)
    early = lam * t <= 0.6
    rel = np.abs(np.asarray(c["norm"], float)[early] /
                 np.asarray(c["norm_kernel"], float)[early] - 1)
    return bool(early.any() and np.all(rel < 1e-3))


# --------------------------------------------------------------------------- the command

def register(sub):
    p = sub.add_parser(
        "reproduce", help="reproduce a paper figure: figure plus JSON of our numbers beside "
                          "the paper's (--list shows all)",
        description="Reproduce one figure of Rubin et al., Kumar et al. or Lyu et al.; "
                    "'kernelphase reproduce --list' shows every entry and its cost.")
    p.add_argument("name", nargs="?", metavar="NAME", help="figure, e.g. rubin-fig2 "
                   "(see --list)")
    p.add_argument("--list", action="store_true", help="list every figure with its cost")
    p.add_argument("--quick", action="store_true",
                   help="reduced size, at most about two minutes on 2 cores (stated in the JSON)")
    p.add_argument("--out", help="output folder (new, empty, or one kernelphase wrote; "
                                 "default reproduce_out/NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of a checkpointing entry in --out")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_main)


def _listing():
    return [dict(name=k, paper=e["paper"], figure=e["figure"], shows=e["shows"],
                 cost_quick=e["cost_quick"], cost_full=e["cost_full"],
                 quick_size=e["reduced"], resumable=bool(e.get("resumable")))
            for k, e in FIGURES.items()]


def _check_name(name):
    if name not in FIGURES:
        raise ValueError(f"NAME={name!r} is not a reproducible figure; the valid names are "
                         f"{', '.join(FIGURES)}")
    return FIGURES[name]


def _main(args):
    from ._output import print_json
    if args.list:
        if args.name is not None or args.quick or args.out is not None or args.resume:
            raise ValueError("--list takes no NAME, --quick, --out or --resume")
        rows = _listing()
        if args.json:
            print_json({"figures": rows, "status": 0, "message": "listed"})
            return 0
        for r in rows:
            print(f"{r['name']}: {r['paper']}, {r['figure']}")
            print(f"    shows: {r['shows']}")
            print(f"    quick: {r['cost_quick']}; full: {r['cost_full']}"
                  f"{' (resumable)' if r['resumable'] else ''}")
        return 0
    if args.name is None:
        raise ValueError(f"give a NAME (one of {', '.join(FIGURES)}) or --list")
    _check_name(args.name)
    out = args.out if args.out is not None else os.path.join("reproduce_out", args.name)
    rec = run_entry(args.name, quick=args.quick, out=out, resume=args.resume)
    if args.json:
        print_json(rec)
        return 0
    print(f"{args.name} ({rec['mode']}): {rec['figure']}")
    for r in rec["numbers"]:
        verdict = {True: "ok", False: "OUTSIDE", None: "not judged"}[r["within"]]
        extra = f" [known difference: {r['known_difference']}]" if r["known_difference"] else ""
        print(f"  {r['quantity']}: ours {_fmt(r['ours'])}, paper {_fmt(r['paper'])} "
              f"(tolerance {_fmt_tol(r)}): {verdict}{extra}")
    for c in rec["checks"]:
        print(f"  {'ok' if c['ok'] else 'FAILED'}: {c['check']} ({c['detail']})")
    print(f"message: {rec['message']}")
    print(f"wrote {os.path.join(out, 'reproduce.json')} and "
          f"{', '.join(f for f in rec['files'] if f != 'reproduce.json')}")
    return 0


def _fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _fmt_tol(r):
    if r["kind"] == "equal":
        return "equal"
    return f"{r['tolerance']:.0%}" if r["kind"] == "rel" else f"+-{r['tolerance']:g}"


def run_entry(name, quick=False, out=None, resume=False):
    """Run entry ``name`` into folder ``out`` and return its record (also written to
    ``out/reproduce.json``). The folder is checked first and built by staging: a failed
    run leaves no partial output (only the checkpoint of a resumable entry, in
    ``out/.checkpoint``, for ``resume=True``)."""
    import shutil
    from ..io import RunDir, atomic_write_json, check_output_dir, provenance, staged_dir
    from ..results import jsonable
    from ._lists import locked_output
    entry = _check_name(name)
    mode = "quick" if quick else "full"
    kw = dict(entry[mode])
    if out is None:
        raise ValueError("out=None: give an output folder")
    out = check_output_dir(out, "--out")
    ck_path = os.path.join(out, ".checkpoint")
    if resume and not entry.get("resumable"):
        raise ValueError(f"--resume does not apply to {name} (it does not checkpoint)")
    if resume and not os.path.isdir(ck_path):
        raise ValueError(f"--resume: {out!r} holds no interrupted run of {name}")
    if not resume and os.path.isdir(ck_path):
        raise ValueError(f"--out={out!r} holds an interrupted run; pass --resume to continue "
                         f"it, or choose another folder")
    seed = kw.get("seed", 0)
    params = dict(name=name, mode=mode, **kw)
    runner = globals()[entry["runner"]]
    t0 = time.time()
    opened = []

    def checkpoint(key, part=None):
        # part: a run of its own inside the entry (its own folder, key and lock)
        path = ck_path if part is None else os.path.join(ck_path, part)
        rd = RunDir(path, dict(key, reproduce=name, mode=mode), resume=resume)
        opened.append(rd.__enter__())
        return rd

    with locked_output(out):
        try:
            prov = provenance(params, seed=seed)
            with staged_dir(out, manifest=prov) as stage:
                result, ours, checks = runner(kw, stage, checkpoint)
                numbers = compare(entry["numbers"], ours, mode)
                judged = [r["within"] for r in numbers
                          if r["within"] is not None and not r["known_difference"]]
                ok = all(judged) and all(c["ok"] for c in checks)
                files = sorted(f for f in os.listdir(stage) if not f.startswith("."))
                rec = dict(name=name, paper=entry["paper"], figure=entry["figure"],
                           shows=entry["shows"], mode=mode,
                           size=entry["reduced"] if quick else "the paper's size",
                           parameters=kw, numbers=numbers, checks=checks,
                           all_within_tolerance=ok, seed=seed,
                           elapsed_seconds=round(time.time() - t0, 1),
                           files=files + ["reproduce.json"], provenance=prov,
                           result=result)
                # the run's own status (e.g. 7: too short to measure) comes first
                status = int(result.get("status") or 0)
                rec.update(status=status, converged=status == 0, message=(
                    result.get("message") if status else "reproduced" if ok else
                    "ran; some numbers or checks are outside the paper's tolerance"))
                rec = jsonable(rec)
                atomic_write_json(os.path.join(stage, "reproduce.json"), rec)
        except BaseException:
            for rd in opened:
                rd.__exit__(None, None, None)
            _drop_empty_checkpoint(ck_path)
            raise
        for rd in opened:
            rd.__exit__(None, None, None)
        shutil.rmtree(ck_path, ignore_errors=True)
    return rec


def _drop_empty_checkpoint(path):
    """Remove a checkpoint folder that holds no state yet (only its manifest and lock)."""
    import shutil
    if os.path.isdir(path) and not [f for f in os.listdir(path)
                                    if f not in ("kernelphase-run.json", ".lock")]:
        shutil.rmtree(path, ignore_errors=True)
