"""Step-size extrapolation of Langevin averages (issue 14, item 0)."""
import numpy as np
import pytest

from kernelphase.validation.autocorr import integrated_time
from kernelphase.validation.step_size import extrapolate_step


def test_exact_polynomial_is_recovered():
    eta = np.array([0.3, 0.2, 0.1, 0.05])
    r = extrapolate_step(eta, 2.0 - 3.0 * eta + 5.0 * eta ** 2, np.full(4, 1e-3), order=2)
    assert r.value == pytest.approx(2.0, abs=1e-10)
    assert r.coefficients == pytest.approx((-3.0, 5.0))
    assert r.chi2 == pytest.approx(0.0, abs=1e-12) and r.dof == 1 and r.status == 0


def test_standard_error_covers_at_the_nominal_rate():
    """Synthetic measurements with known limit and Gaussian errors: the 95 % interval covers
    the limit in 95 % of 2000 draws (binomial sd 0.5 %)."""
    rng = np.random.default_rng(0)
    eta = np.array([0.4, 0.2, 0.1])
    s = np.array([0.02, 0.03, 0.05])
    hits = 0
    for _ in range(2000):
        v = 1.0 + 0.7 * eta + s * rng.standard_normal(3)
        r = extrapolate_step(eta, v, s)
        hits += abs(r.value - 1.0) < 1.96 * r.std_error
    assert 0.93 < hits / 2000 < 0.97


def test_ula_on_a_gaussian_extrapolates_to_the_exact_variance():
    r"""The unadjusted Langevin step :math:`x'=x-\eta x+\sqrt{2\eta}\xi` on
    :math:`U=x^2/2` has :math:`\langle x^2\rangle_\eta=1/(1-\eta/2)` exactly; the simulated
    averages at three steps extrapolate to 1 within three standard errors, while the
    smallest step alone is biased by many."""
    rng = np.random.default_rng(1)
    eta = np.array([0.4, 0.2, 0.1])
    vals, ses = [], []
    for h in eta:
        n_steps = int(6e4)
        xi = rng.standard_normal((n_steps, 256))
        x = rng.standard_normal(256)
        acc = np.empty(n_steps)
        for t in range(n_steps):
            x = x - h * x + np.sqrt(2 * h) * xi[t]
            acc[t] = np.mean(x * x)
        ac = integrated_time(acc[1000:])
        vals.append(ac.mean)
        ses.append(ac.std_error)
        assert ac.mean == pytest.approx(1 / (1 - h / 2), abs=4 * ac.std_error)
    r = extrapolate_step(eta, vals, ses, order=2)
    assert abs(r.value - 1.0) < 3 * r.std_error
    assert abs(vals[-1] - 1.0) > 10 * ses[-1]          # the bias the extrapolation removes


def test_bad_input_names_the_parameter():
    for args, match in [(([0.1], [1.0], [0.1]), "needs at least 2"),
                        (([0.1, 0.1], [1, 1], [0.1, 0.1]), "distinct"),
                        (([0.1, -0.2], [1, 1], [0.1, 0.1]), "distinct"),
                        (([0.1, 0.2], [1, np.nan], [0.1, 0.1]), "values"),
                        (([0.1, 0.2], [1, 1], [0.1, 0.0]), "std_errors"),
                        (([0.1, 0.2], [1, 1, 1], [0.1, 0.1]), "one length")]:
        with pytest.raises(ValueError, match=match):
            extrapolate_step(*args)
    with pytest.raises(ValueError, match="order"):
        extrapolate_step([0.1, 0.2, 0.3], [1, 1, 1], [1, 1, 1], order=3)


def test_a_bias_of_higher_order_is_rejected():
    eta = np.array([0.8, 0.4, 0.2, 0.1])
    r = extrapolate_step(eta, 1 + 3 * eta ** 3, np.full(4, 1e-3))
    assert r.status == 4 and not r.converged and "chi2" in r.message
