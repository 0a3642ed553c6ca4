"""Finite-d side of the cubic hysteresis protocol (validation.hysteresis): the training
discrepancies of a network and the finite-d window, checked against independent computations."""
import math

import numpy as np
import pytest

from kernelphase.validation.hysteresis import finite_d_window, training_discrepancy
from kernelphase.validation.teacher_student import cubic_data, exact_discrepancy


def test_training_discrepancy_tends_to_the_population_one():
    """On a large sample the least-squares (b, c) of the training residual equal the population
    discrepancies of the closed form (Stein's lemma, exact_discrepancy) within 5 standard
    errors of the projection."""
    rng = np.random.default_rng(4)
    d, N, n = 6, 5, 200_000
    W = rng.standard_normal((N, d)) * 0.5
    a = rng.standard_normal(N) * 0.4
    X, y = cubic_data(n, d, -0.5, seed=7)
    b, c, rms = training_discrepancy(a, W, X, y)
    b0, c0 = exact_discrepancy(a, W, -0.5)
    # least-squares coefficients of a rest of rms `rms`: SE rms/sqrt(n E[He_k^2]), E = 1, 6
    assert abs(b - b0) < 5 * rms / math.sqrt(n)
    assert abs(c - c0) < 5 * rms / math.sqrt(6 * n)
    assert abs(c - c0) > 0 and rms > 0


def test_training_discrepancy_of_an_exact_fit():
    """A readout that reproduces y on the sample leaves b = c = 0 and no rest."""
    X, y = cubic_data(40, 3, -0.3, seed=1)
    from scipy.special import erf
    W = np.random.default_rng(0).standard_normal((60, 3))
    a = np.linalg.lstsq(erf(X @ W.T), y, rcond=None)[0]
    b, c, rms = training_discrepancy(a, W, X, y)
    assert abs(b) < 1e-8 and abs(c) < 1e-8 and rms < 1e-8


@pytest.mark.slow
def test_finite_d_window_of_hyst_wide_quarter():
    """hyst-wide at scale 1/4: the window lies inside the scanned range and is ordered
    (sigma2_c < sigma2_s), both above the EK values (u_c, u_s of the exact law are smaller);
    the spinodal's droplet peak is absent 1 % above sigma2_s and present 1 % below it, by the
    finite-d averages on the GFL branch."""
    from kernelphase.solvers.cubic import cubic_transition, u_from_sigma2
    from kernelphase.solvers.finite_d import finite_d_averages, finite_d_state
    n, d, N, sa2, sw2 = 750, 75, 1050, 1 / 14, 0.25
    w = finite_d_window(-3.0, n, d, N, sa2, sw2)
    assert w["status_c"] == 0 and w["status_s"] == 0
    ek = cubic_transition(-3.0, sw2, n=n, d=d, width=N, sigma_a2=sa2)
    assert w["sigma2_c"] < w["sigma2_spinodal_droplet"]
    assert w["u_c"] < ek.u_c and w["u_spinodal_droplet"] < ek.u_spinodal
    for f, has in ((1.01, False), (0.99, True)):
        u = u_from_sigma2(f * w["sigma2_spinodal_droplet"], n, d, N, sa2)
        s = finite_d_state(-3.0, u, 1.0, d, sw2, width=N, branch="gfl")
        a = finite_d_averages(u, s.b, s.c, d, sw2, width=N, rho=1.0)
        assert math.isfinite(a["exit_barrier"]) is has


def test_training_discrepancy_cavity_leaves_the_neuron_out():
    """The cavity of the only neuron of a network is the teacher itself, (b, c) = (1, eps);
    an index outside the network is refused."""
    X, y = cubic_data(300, 4, -0.4, seed=2)
    a, W = np.array([0.7]), np.array([[0.9, 0.1, 0.0, 0.2]])
    b, c, _ = training_discrepancy(a, W, X, y)
    assert abs(b - 1) > 0.1
    b, c, rms = training_discrepancy(a, W, X, y, cavity=0)
    assert abs(b - 1) < 1e-12 and abs(c + 0.4) < 1e-12 and rms < 1e-12
    with pytest.raises(ValueError, match="cavity=1"):
        training_discrepancy(a, W, X, y, cavity=1)
