"""Simulations of real networks (numpy/numba, no torch) compared with the theory.

Installed as ``kernelphase.validation``. The error analysis of the sampled series
(:mod:`.autocorr`: autocorrelation time, effective sample size, trusted standard errors) and
the hysteresis protocol (:mod:`.hysteresis`) and the step-size extrapolation
(:mod:`.step_size`) are re-exported here lazily.
"""
__all__ = ["integrated_time", "autocorr_function", "AutocorrResult", "run_hysteresis",
           "HysteresisResult", "extrapolate_step", "StepSizeExtrapolation"]

_LAZY = {"integrated_time": "autocorr", "autocorr_function": "autocorr",
         "AutocorrResult": "autocorr", "run_hysteresis": "hysteresis",
         "HysteresisResult": "hysteresis", "extrapolate_step": "step_size",
         "StepSizeExtrapolation": "step_size"}


def __getattr__(name):
    # lazy, as scipy's top __init__: importing the package does not load numba
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
