"""GMFL-I of the general single-index engine against an action evaluated by direct quadrature
(tanh); the erf preset against the paper's Maxwell system is in test_single_index_engine.py."""
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import eval_hermitenorm

from kernelphase.solvers.single_index import single_index_phases

RHO = 8 / 150


def _m(k, v):
    """E[tanh^(k)(h)], h ~ N(0, v), by Stein: E[tanh(h) He_k(h/sqrt v)] / v^(k/2)."""
    sv = math.sqrt(v)
    f = lambda t: math.tanh(sv * t) * eval_hermitenorm(k, t) * math.exp(-t * t / 2)
    return quad(f, -12, 12, limit=200, epsabs=1e-13)[0] / math.sqrt(2 * math.pi) / sv ** k


def _S(phi, u, b, sw2):
    v = sw2 + phi * phi
    g = sum(b[k] * phi ** k * _m(k, v) for k in (1, 3) if b[k])
    return phi * phi / (2 * sw2) - u / 2 * g * g


def test_tanh_mixed_branch_is_a_degenerate_global_droplet():
    sw2 = 0.5
    rs = single_index_phases("tanh", {1: 1, 3: -0.3}, [40.0, 60.0, 100.0], RHO, sw2)
    fr = []
    for r in rs:
        assert r.converged and r.phase == "GMFL-I"
        q, h = r.phi_star, 1e-4
        S0 = _S(q, r.u, r.b, sw2)
        dS = (_S(q + h, r.u, r.b, sw2) - _S(q - h, r.u, r.b, sw2)) / (2 * h)
        assert abs(S0) < 1e-8 and abs(dS) < 1e-6
        grid = np.linspace(0.02, 4, 200)
        assert min(_S(p, r.u, r.b, sw2) for p in grid) > -1e-7
        assert 0 < r.droplet_fraction < 1 and 0 < r.learned[3] < 1
        fr.append(r.learned[3])
    assert fr[0] < fr[1] < fr[2]            # more of the cubic learned as u grows


def test_unbounded_and_contract():
    r = single_index_phases("z**3", {1: 1, 3: -0.3}, [10.0], RHO)[0]
    assert not r.converged and r.phase == "unknown" and r.status == 5
    assert r.converged == (r.status == 0)
