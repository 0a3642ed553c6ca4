r"""Template: an activation's moments :math:`m_0(v),\dots,m_{12}(v)` as one float64 vector.

Not imported as it stands: :func:`kernelphase.moments.moments_vector` writes it below the
header of :func:`kernelphase.moments.moments_header` (which defines ``mfun`` and ``NK``)
through :func:`kernelphase.codegen.specialised_module`. The explicit signature makes the
compiled function a first-class numba function of type ``float64[::1](float64)``, which
kernels compiled once (:mod:`kernelphase.solvers._single_index_kernels`) take as an argument.
"""
import numpy as np
from numba import njit, types


@njit(types.float64[::1](types.float64), cache=True)
def moments_vector(v):
    m = mfun(v)  # noqa: F821 (generated header)
    out = np.zeros(13)
    for k in range(NK):  # noqa: F821
        out[k] = m[k]
    return out
