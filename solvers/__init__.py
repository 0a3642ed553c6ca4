"""Numerics (numba): saddle points, self-consistency, transitions, phase diagrams.

Installed as ``kernelphase.solvers``. Every solver returns one frozen result
dataclass with ``residual``, ``converged``, ``status`` and ``message``.
"""
