"""Simulations of real networks (numpy/numba, no torch) compared with the theory.

Installed as ``kernelphase.validation``.
"""
