"""kernelphase: theory of grokking and feature learning in two-layer networks.

Three rooms, one direction of data flow:

* ``kernelphase`` (this package): SymPy derivations and code generation;
* ``kernelphase.solvers``: numba numerics returning small result objects;
* ``kernelphase.validation``: numpy/numba simulations compared with theory.

Public names are re-exported lazily (SymPy and numba are imported only when a
name that needs them is first used), which keeps ``kernelphase --help`` fast.
"""
import importlib

__version__ = "0.1.0"

# module (relative to this package) -> public names it exports
_EXPORTS = {
    "actions": ("cubic_action", "cubic_kernel_entries", "modular_action"),
    "activations": ("parse_activation", "as_activation", "Activation"),
    "codegen": ("numba_function",),
    "dichotomy": ("grokking_time_second_order", "diagonal_net_flow"),
    "gaussian": ("erf_hermite_expectation", "expect_product", "bivariate_moment",
                 "erf_erf_expectation", "relu_relu_expectation"),
    "kernels": ("nngp_kernel", "ntk_kernel", "kernel_function", "KernelFunction",
                "has_closed_form"),
    "moments": ("moments_function", "moment_exprs", "activation_expr"),
    "single_index": ("single_index_action",),
    "teachers": ("Teacher",),
    "parse": ("parse_formula", "parse_number"),
    "printing": ("latex",),
    "lazy_rich": ("loss_terms", "target_sector_power", "ntk_dot_kernel",
                  "spectrum_report"),
    "results": ("Result",),
    "spectra": ("gaussian_dot_product_spectrum", "sphere_dot_product_spectrum", "Sector",
                "zonal_harmonic"),
}

_NAME_TO_MODULE = {n: m for m, names in _EXPORTS.items() for n in names}

__all__ = sorted(_NAME_TO_MODULE) + ["__version__"]


def __getattr__(name):
    mod = _NAME_TO_MODULE.get(name)
    if mod is None:
        raise AttributeError(f"module 'kernelphase' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
