"""The result contract over a registry of every public entry point of the solvers and the
simulations: each returns frozen ``Result`` dataclasses with ``status`` from the one table,
a ``message`` that starts with that status's text, ``converged == (status == 0)`` derived (never
stored), and a JSON-serialisable ``to_dict``. A public function that is neither registered nor
listed as a helper fails the completeness test, so a new entry point cannot skip the contract.
"""
import dataclasses
import importlib
import inspect
import json
import math

import numpy as np
import pytest

from kernelphase.results import STATUS, Result

MODULES = ["solvers.cubic", "solvers.modular", "solvers.phase_diagram", "solvers.single_index",
           "solvers.finite_kernel", "solvers.finite_d",
           "solvers.learning_curve", "solvers.order_dynamics", "solvers.margins",
           "solvers.matrix_completion", "validation.langevin", "validation.teacher_student",
           "validation.modular_addition", "validation.lazy_rich_runs",
           "validation.dichotomy_runs", "validation.diagonal_net",
           "validation.matrix_factorization", "validation.polynomial_net",
           "validation.modular_net", "validation.lazy_rich_figs", "validation.single_index",
           "validation.modular_mlp", "validation.autocorr", "validation.hysteresis",
           "validation.step_size", "figures"]


def _sparse():
    from kernelphase.validation.diagonal_net import sparse_dataset
    return sparse_dataset(30, 12, 10)[:2]


def _lr_cfg():
    from kernelphase.validation.polynomial_net import PRESETS
    return dict(PRESETS["fig1"], D=6, P=20, N=8, steps=40)


def _mc():
    from kernelphase.solvers.matrix_completion import multiplication_table, observation_mask
    return multiplication_table(8), observation_mask(8, 20)


# name -> zero-argument call returning a Result (or a list of them); tiny sizes
REGISTRY = {
    "solvers.cubic.cubic_transition": lambda m: m.cubic_transition(-0.3, 0.5, rho=8 / 150),
    "solvers.cubic.cubic_phase": lambda m: m.cubic_phase(-0.3, 0.15, 3000, 150, 700, 8 / 700),
    "solvers.cubic.cubic_phases": lambda m: m.cubic_phases(-0.3, [10.0, 40.0, 1e3], 8 / 150),
    "solvers.cubic.cubic_phase_scaled": lambda m: m.cubic_phase_scaled(-0.3, 40.0, 8 / 150),
    "solvers.modular.modular_transition": lambda m: [m.modular_transition(401, 1000, 2e-6, 1e-4),
                                                     m.modular_transition(3, 1, 1.0, 1e-6)],
    "solvers.modular.modular_phase": lambda m: [m.modular_phase(401, 1000, 2e-6, 1e-4, s)
                                                for s in (0.3, 0.2, 0.1)],
    "solvers.phase_diagram.phase_diagram": lambda m: m.phase_diagram(
        "cubic", ("eps", -0.6, -0.2, 3), ("u", 10, 60, 3), {"rho": 0.05}, workers=1),
    "solvers.single_index.single_index_transition": lambda m: [
        m.single_index_transition("erf", {1: 1, 3: -0.3}, rho=8 / 150),
        m.single_index_transition("z**3", {1: 1, 3: -0.3}, rho=8 / 150)],
    "solvers.single_index.single_index_phases": lambda m: m.single_index_phases(
        "erf", {1: 1, 3: -0.3}, [10.0, 40.0], 8 / 150),
    "solvers.finite_kernel.finite_data_kernel": lambda m: m.finite_data_kernel(
        np.eye(10, 3) + 0.1, np.arange(10.0) / 10, 5, 0.3, 1.0, chains=64, steps=20, burn=10,
        thin=5, anneal=1, maxiter=2, tol=0.5, seed=1),
    "validation.teacher_student.run_finite_theory": lambda m: m.run_finite_theory(
        scale=0.01, sigma2=[0.3], chains=64, steps=20, maxiter=2, n_test=50, workers=1),
    "solvers.finite_kernel.tilted_kernel": lambda m: m.tilted_kernel(
        np.eye(10, 3) + 0.1, np.zeros(10), 5, 1.0, chains=64, burn=10, steps=20),
    "solvers.finite_d.finite_d_state": lambda m: m.finite_d_state(-0.3, 10.0, 8 / 150, 20),
    "solvers.finite_d.finite_d_transition": lambda m: m.finite_d_transition(
        -0.3, 8 / 150, 20, u_lo=5, u_hi=6, n_scan=2),
    "solvers.finite_d.finite_d_spinodal": lambda m: m.finite_d_spinodal(
        -3.0, 1.0, 20, 0.25, u_lo=0.5, u_hi=0.6, n_scan=2),
    "solvers.learning_curve.learning_curve": lambda m: [m.learning_curve([1.0, 0.1], [1, 5], [1.0, 0.5], 3),
                                                        m.learning_curve([1.0], [3], [1.0], 5)],
    "solvers.order_dynamics.run_order_dynamics": None,   # covered through lazy_rich_runs
    "solvers.margins.l2_max_margin": lambda m: m.l2_max_margin(*_sparse()),
    "solvers.margins.l1_max_margin": lambda m: [m.l1_max_margin(*_sparse()),
                                                m.l1_max_margin(np.ones((2, 1)), np.array([1.0, -1.0]))],
    "solvers.margins.depth_max_margin": lambda m: [m.depth_max_margin(*_sparse(), 3),
                                                   m.depth_max_margin(*_sparse(), 4,
                                                                      method="reweighted")],
    "solvers.matrix_completion.nuclear_norm_completion": lambda m: m.nuclear_norm_completion(*_mc()),
    "validation.langevin.langevin_run": lambda m: m.langevin_run(
        m.ErfNetworkPosterior(np.eye(5, 2), np.ones(5), 0.5, 1.0, 1.0, 3), 10, 1e-3, 0),
    "validation.single_index.run_single_index": lambda m: m.run_single_index(
        "erf", "He1 - 0.3*He3", n=20, d=4, width=4, sigma_a2=0.5, sigma2=(0.5,), nets=1,
        steps=10, n_test=10, workers=1, progress=False),
    "validation.teacher_student.run_cubic": lambda m: m.run_cubic(
        scale=0.02, sigma2=(0.3,), nets=1, steps=10, n_test=10, workers=1, progress=False),
    "validation.teacher_student.grokking_summary": lambda m: m.grokking_summary(
        {"curves": {"time": np.linspace(0, 1, 30),
                    "ensemble_train_loss": 1 + np.exp(-20 * np.linspace(0, 1, 30)),
                    "ensemble_test_loss": 2 - np.linspace(0, 1, 30)}}),
    "validation.autocorr.integrated_time": lambda m: [
        m.integrated_time(np.random.default_rng(0).standard_normal(500)),
        m.integrated_time(np.random.default_rng(0).standard_normal(30).cumsum())],
    "validation.hysteresis.run_hysteresis": lambda m: m.run_hysteresis(
        scale=0.02, sigma2=(0.15, 0.2), nets=1, steps=10, n_test=10, workers=1, progress=False),
    "validation.hysteresis.run_modular_hysteresis": lambda m: m.run_modular_hysteresis(
        sigma2=(8e-4, 9e-4), nets=1, steps=10, workers=1, progress=False),
    "validation.modular_addition.run_modular": lambda m: m.run_modular(
        scale=1.6e-4, sigma2=(3000.0,), nets=1, steps=10, workers=1, progress=False),
    "validation.lazy_rich_runs.train_and_report": lambda m: m.train_and_report(_lr_cfg(), kr_line=False),
    "validation.lazy_rich_runs.sweep": lambda m: m.sweep(_lr_cfg(), [1.0, 2.0], [0.1]),
    "validation.polynomial_net.train": lambda m: m.train(6, 20, 8, 1.0, 0.1, 1.0, 40),
    "validation.diagonal_net.diagonal_gd": lambda m: m.diagonal_gd(*_sparse(), 8.0, 1e-2, 0.01, 5),
    "validation.diagonal_net.diagonal_flow": lambda m: m.diagonal_flow(*_sparse(), 8.0, 1e-2, [0.5, 1.0]),
    "validation.diagonal_net.flow_in_segments": lambda m: m.flow_in_segments(*_sparse(), 8.0, 1e-2, [0.5, 1.0, 1.5], segments=2),
    "validation.step_size.extrapolate_step": lambda m: m.extrapolate_step([0.2, 0.1], [1.2, 1.1], [0.01, 0.01]),
    "validation.matrix_factorization.mf_gd": lambda m: m.mf_gd(*_mc(), 2.0, 1e-2, 0.05, 20, 10,
                                                               progress=False),
    "validation.modular_net.train_modular": lambda m: m.train_modular(p=5, N=10, steps=20,
                                                                     record_every=10),
    "validation.lazy_rich_figs.fig2": lambda m: m.fig2(scales=(1.0,), p=5, N=10, steps=20,
                                                       record_every=10),
    "validation.dichotomy_runs.train_modular": lambda m: m.train_modular(p=5, width=8, steps=20,
                                                                         record_every=10),
    "validation.dichotomy_runs.sweep_modular": lambda m: m.sweep_modular(
        scales=(1.0,), lams=(1e-3,), p=5, width=8, steps=20, record_every=10),
    "validation.modular_mlp.train_modular_mlp": lambda m: m.train_modular_mlp(
        p=5, width=8, steps=20, record_every=10),
    "validation.lazy_rich_figs.fig12": lambda m: m.fig12(D=6, P=20, steps=40, record_every=10),
    "validation.lazy_rich_figs.fig5": lambda m: m.fig5(label_indices=(1,), D=10, P=10, steps=40),
    "validation.dichotomy_runs.train_diag": lambda m: m.train_diag(d=30, n=12, n_test=10, alpha=8.0,
                                                                   lam=1e-2, points=20),
    "validation.dichotomy_runs.train_mc": lambda m: m.train_mc(d=8, frac=0.3, alpha=2.0, lam=1e-2,
                                                               lr=0.05, steps=200, record_every=10,
                                                               progress=False),
    "validation.dichotomy_runs.sweep_alpha": lambda m: m.sweep_alpha([4.0, 8.0], d=30, n=12,
                                                                     n_test=10, lam=1e-2, points=20),
}

# public functions that are not entry points of a computation, with the reason
HELPERS = {
    "finite_d_averages": "averages of the law at fixed (b, c) (dict)",
    "finite_d_window": "dict of two finite-d solver results (tested in test_hysteresis_finite_d)",
    "training_discrepancy": "least-squares projection (tuple; test_hysteresis_finite_d)",
    "he13_fit": "least-squares projection (tuple; doctest and test_hysteresis)",
    "finite_data_window": "dict of finite-data theory cells and finite-d averages "
                          "(test_cli_finite_data_window)",
    "u_from_sigma2": "unit conversion", "sigma2_from_u": "unit conversion",
    "gfl_b": "scalar building block (tested in test_adaptive)",
    "action_minima": "array of minima for plots and tests", "compiled_action": "codegen handle",
    "action": "the action landscape (array) for plots",
    "readout_steps": "numba kernel", "readout_order_parameters": "formula",
    "misgrok_population_accuracy": "metric (1-d integral)", "modular_pairs": "data",
    "init_mlp": "initial state", "mlp_logits": "forward pass", "mlp_loss_grad": "gradient",
    "mlp_gd_reference": "slow reference for tests", "check_modular_mlp_params": "input check",
    "first_step_at_least": "metric", "modular_run_key": "checkpoint key",
    "degenerate_point": "closed form (g_c, Phi_+)", "gfl_discrepancy": "building block",
    "single_index_minima": "array of minima", "linear_accuracy": "metric", "cosine": "metric",
    "multiplication_table": "data", "observation_mask": "data", "zero_fill_completion": "predictor array",
    "heldout_mse": "metric", "diagonal_kkt_residual": "certificate", "check_memory": "input check", "reduced_steps": "numba kernel",
    "population_loss": "formula", "gaussian_readout": "sampler building block",
    "gaussian_readout_wide": "sampler building block", "network_rng": "random stream",
    "scaled_preset": "preset arithmetic", "cubic_data": "data", "trace_steps": "schedule",
    "default_lr": "default", "plan_cubic": "input check", "plan_modular": "input check",
    "learning_curves": "post-processing of a Result", "loss_drop_times": "measure",
    "scaled_modular_preset": "preset arithmetic", "nearest_prime": "number theory",
    "modular_targets": "data", "default_modular_lr": "default",
    "kernel_regression_line": "baseline curve", "fit_exponent": "fit",
    "crossing_time": "measure", "transition_time": "measure", "sparse_dataset": "data",
    "misgrok_dataset": "data", "init_scale": "initialisation", "mf_gd_reference": "slow reference",
    "check_mf_params": "input check", "make_data": "data", "init_weights": "initialisation",
    "report_rows": "accessor", "modular_split": "data", "alpha_from_scale": "convention",
    "first_epoch_at_least": "measure", "modular_gd_reference": "slow reference",
    "check_modular_params": "input check", "eigenvector_labels": "data",
    "train_on_labels": "GD kernel (inside fig5)", "nngp_erf_kernel": "closed-form kernel matrix",
    "network_output": "forward pass", "full_gd": "numba kernel",
    "kernel_regression_empirical": "baseline number", "alignment": "metric",
    "ntk_gram": "kernel matrix", "t_below": "measure", "check_train_params": "input check",
    "activation_pair": "codegen handle", "single_index_data": "data",
    "plan_single_index": "input check",
    "autocorr_function": "array (the normalised autocorrelation)",
    "combined_error": "dict of standard errors (building block)",
    "choose_burn_in": "burn-in in samples (building block)",
    "ensemble_summary": "dict of per-observable statistics (building block)",
    "series_statistics": "dicts of per-observable statistics (post-processing)",
    "exact_discrepancy": "closed form (b, c)",
    "erf_population_moments": "closed form per neuron", "plan_finite_theory": "input check",
    "finite_theory_cell": "dict of theory numbers (one noise level, inside run_finite_theory)",
    "hot_start": "initialisation", "cubic_hysteresis_theory": "dict of theory numbers",
    "plan_hysteresis": "input check", "plot_hysteresis": "figure",
    "subplots": "figure factory", "style": "rc context", "styled": "decorator",
    "symbol": "mathtext of a name", "label": "axis label of a name",
    "param_text": "mathtext of parameters", "legend": "legend with parameters",
    "mark_transition": "first-order point and spinodals on axes",
    "with_gaps": "arrays with NaN at unconverged points", "save": "figure writer",
    "modular_hysteresis_theory": "dict of theory numbers",
    "modular_hysteresis_point": "dict of theory states", "plan_modular_hysteresis": "input check",
    "plot_modular_hysteresis": "figure", "modular_hot_start": "initialisation",
    "target_eigenvalue": "pair of numbers (closed form and direct)",
}


def _check(r):
    assert isinstance(r, Result) and dataclasses.is_dataclass(r), type(r)
    names = {f.name for f in dataclasses.fields(r)}
    assert {"status", "message"} <= names and "converged" not in names
    st = r.status
    if isinstance(st, np.ndarray):
        assert set(np.unique(st).tolist()) <= set(STATUS)
        assert r.converged == bool(np.all(st == 0))
    else:
        assert st in STATUS and r.message.startswith(STATUS[st])
        assert r.converged == (st == 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.status = 0
    assert r["converged"] == r.converged and r.keys()[-1] == "converged"
    with pytest.raises(KeyError):
        r["no such field"]
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert '"converged"' in text


@pytest.mark.parametrize("name", sorted(k for k, v in REGISTRY.items() if v is not None))
def test_entry_point_contract(name):
    mod, func = name.rsplit(".", 1)
    m = importlib.import_module(f"kernelphase.{mod}")
    out = REGISTRY[name](m)
    for r in out if isinstance(out, list) else [out]:
        _check(r)


def test_registry_is_complete():
    """Every public function of the solver and simulation modules is registered or a helper."""
    missing = []
    for mod in MODULES:
        m = importlib.import_module(f"kernelphase.{mod}")
        for name in getattr(m, "__all__", ()):
            obj = getattr(m, name)
            if inspect.isfunction(obj) and not name.startswith("plot_") and \
                    f"{mod}.{name}" not in REGISTRY and name not in HELPERS:
                missing.append(f"{mod}.{name}")
    assert not missing, f"register these entry points in tests/test_contract.py: {missing}"


def test_nan_and_invariants_are_statuses():
    """A status that is not in the table, or a message that contradicts it, cannot be built."""
    from kernelphase.solvers.cubic import CubicTransitionResult
    with pytest.raises(ValueError, match="not in results.STATUS"):
        CubicTransitionResult(1, 1, 1, 1, None, 0, 42, "", 0, {})
    with pytest.raises(ValueError, match="does not match status"):
        CubicTransitionResult(1, 1, 1, 1, None, 0, 2, "converged", 0, {})
    r = CubicTransitionResult(math.nan, 1, 1, 1, None, 0, 3, "", 0, {})
    assert not r.converged and r.message == STATUS[3]


def test_results_print_like_scipy_and_render_in_notebooks():
    """print(res) gives aligned name: value lines, status first; Jupyter gets an HTML table."""
    from kernelphase.solvers.cubic import CubicTransitionResult
    r = CubicTransitionResult(u_spinodal=1.0, u_c=2.0, phi_star=0.5, b_at_uc=0.3, sigma2_c=None,
                              residual=0.0, status=1, message="", nit=3, params={"eps": -0.3})
    lines = str(r).splitlines()
    assert [ln.split(":")[0].strip() for ln in lines[:3]] == ["message", "converged", "status"]
    assert len({ln.index(":") for ln in lines}) == 1                     # aligned colons
    assert "u_c: 2" in str(r) and "converged: False" in str(r)
    html = r._repr_html_()
    assert html.startswith("<table>") and "CubicTransitionResult" in html and "#c62828" in html
