r"""Template of the quadrature moments :math:`m_k(v)=\mathbb E_{h\sim\mathcal N(0,v)}[\sigma^{(k)}(h)]`.

Not imported as it stands: :func:`kernelphase.moments.moments_function` writes it below a
header that defines ``dsig`` (the compiled derivatives :math:`\sigma,\dots,\sigma^{(K)}`),
``NK`` (= K + 1), ``DECAYS`` and ``ZERO`` (per order: the derivative vanishes beyond
``H_CUT``; the derivative is odd, so its moment is exactly 0), through
:func:`kernelphase.codegen.specialised_module`, so that the compiled quadrature is cached on
disk. Trapezoidal rule in h with step :math:`\min(0.2, \sqrt v/4)` over :math:`|h|\le9\sqrt v`,
spectrally accurate for activations analytic in a strip (see :mod:`kernelphase.moments`).
"""
import math

import numpy as np
from numba import njit


@njit(cache=True)
def mfun(v):
    out = np.zeros(NK)  # noqa: F821 (generated header)
    sv = math.sqrt(v)
    step = min(0.2, 0.25 * sv)
    full = 9.0 * sv
    half = np.empty(NK)  # noqa: F821
    hmax = 0.0
    for k in range(NK):  # noqa: F821
        half[k] = min(full, H_CUT) if DECAYS[k] else full  # noqa: F821
        if not ZERO[k] and half[k] > hmax:  # noqa: F821
            hmax = half[k]
    npts = min(int(math.ceil(hmax / step)), MAX_NODES // 2)  # noqa: F821
    if npts < 1:
        return out
    hstep = hmax / npts
    for i in range(-npts, npts + 1):
        h = i * hstep
        wgt = math.exp(-0.5 * h * h / v)
        d = dsig(h)  # noqa: F821
        for k in range(NK):  # noqa: F821
            if not ZERO[k] and abs(h) <= half[k] * (1 + 1e-12):  # noqa: F821
                out[k] += d[k] * wgt
    for k in range(NK):  # noqa: F821
        out[k] *= hstep / math.sqrt(2.0 * math.pi * v)
    return out
