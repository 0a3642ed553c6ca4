"""Issue 14 item 4: the float32 Langevin step (``NetworkPosterior(dtype="float32")``).

References are independent of the float32 code: the float64 kernel and plain numpy/scipy for the
gradient, mpmath for the float32 erf series, and a float64 run with its own seed for the sampled
posterior (time averages compared within their autocorrelation-corrected standard errors,
:mod:`kernelphase.validation.autocorr`; the same check rejects a posterior with other data).
"""
import math
import pickle

import numpy as np
import pytest
from conftest import cubic_teacher_data

from kernelphase.validation.autocorr import integrated_time
from kernelphase.validation.langevin import (DTYPES, ErfNetworkPosterior, NetworkPosterior,
                                             langevin_run)


pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _data(n=500, d=9, seed=4):
    return cubic_teacher_data(n, d, seed)


def _max_rel(u, v):
    return float(np.max(np.abs(u - v)) / np.max(np.abs(v)))


@pytest.mark.parametrize("boost", [1.0, 4.0])     # 4: many |h| > 2 (the libm branch)
@pytest.mark.parametrize("activation", ["erf", "tanh"])
def test_float32_gradient_equals_float64_gradient(activation, boost):
    """One gradient evaluation, several row chunks (n = 500 > 192): float32 within 2e-5 of the
    float64 kernel, relative to the largest component; the numpy engine's float32 step too."""
    X, y = _data()
    args = (X, y, 0.4, 1.0, 1.0, 40)
    a, W = NetworkPosterior(*args, activation=activation).prior_sample(np.random.default_rng(1))
    a, W = 10.0 * a, boost * W
    ref = NetworkPosterior(*args, activation=activation, engine="numpy").grad_loglik(a, W)
    for engine in ("numba", "numpy"):
        post = NetworkPosterior(*args, activation=activation, engine=engine, dtype="float32")
        for g, g_ref in zip(post.grad_loglik(a, W), ref):
            assert g.dtype == np.float64 and g.shape == g_ref.shape
            assert _max_rel(g, g_ref) < 2e-5
            assert _max_rel(g, g_ref) > 1e-10        # it did run in single precision


@pytest.mark.parametrize("n,N", [(60, 90), (300, 40)])    # the wide draw and the N x N one
@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_float32_gibbs_step_equals_float64(engine, n, N):
    """Langevin-within-Gibbs: the float32 step draws the same read-out (same stream) and gives
    the same read-in gradient as plain numpy in float64, within 1e-4 relative: the read-out
    from the normal equations solved by ``numpy.linalg.solve``, the gradient by the chain rule."""
    from scipy.special import erf
    X, y = _data(n=n, d=7)
    args = (X, y, 0.3, 1.0, 1.0, N)
    a0, W = ErfNetworkPosterior(*args).prior_sample(np.random.default_rng(3))
    W = 2.0 * W
    post = ErfNetworkPosterior(*args, engine=engine, readout="gibbs", dtype="float32")
    ref = ErfNetworkPosterior(*args, engine="numpy", readout="gibbs")
    a, gW = post.gibbs_step(W, np.random.default_rng(9))
    a_ref, gW_ref = ref.gibbs_step(W, np.random.default_rng(9))
    assert a.dtype == gW.dtype == np.float64
    assert 1e-10 < _max_rel(a, a_ref) < 1e-4
    F = erf(X @ W.T)                      # independent: posterior mean by the normal equations
    mean = np.linalg.solve(F.T @ F / 0.3 + np.eye(N) * N, F.T @ y / 0.3)
    assert _max_rel(ref.sample_readout(W, _Zero()), mean) < 1e-8
    dF = 2 / math.sqrt(math.pi) * np.exp(-(X @ W.T) ** 2)
    for g, b, tol in ((gW, a, 1e-4), (gW_ref, a_ref, 1e-8)):
        r = (F @ b - y) / 0.3
        assert _max_rel(g, -((r[:, None] * dF * b).T @ X)) < tol


class _Zero:
    """A generator whose normals are all zero: the draw is the posterior mean."""

    def standard_normal(self, shape):
        return np.zeros(shape)


def test_default_float64_is_unchanged_and_dtype_is_checked():
    X, y = _data(n=50, d=3)
    post = ErfNetworkPosterior(X, y, 0.4, 1.0, 1.0, 5)
    assert post.dtype == "float64" == DTYPES[0]
    a, W = post.prior_sample(np.random.default_rng(2))
    ref = ErfNetworkPosterior(X, y, 0.4, 1.0, 1.0, 5, engine="numpy").grad_loglik(a, W)
    for g, g_ref in zip(post.grad_loglik(a, W), ref):
        assert np.allclose(g, g_ref, rtol=1e-12, atol=1e-12 * np.abs(g_ref).max())
    for bad in ("float16", "single", None):
        with pytest.raises(ValueError, match=r"dtype=.* is not one of 'float64', 'float32'"):
            ErfNetworkPosterior(X, y, 0.4, 1.0, 1.0, 5, dtype=bad)


def test_float32_posterior_pickles_and_keeps_its_gradient():
    X, y = _data(n=300, d=4)
    post = NetworkPosterior(X, y, 0.4, 1.0, 1.0, 7, activation="tanh", dtype="float32")
    a, W = post.prior_sample(np.random.default_rng(3))
    again = pickle.loads(pickle.dumps(post))
    assert again.dtype == "float32"
    for g1, g2 in zip(post.grad_loglik(a, W), again.grad_loglik(a, W)):
        assert np.array_equal(g1, g2)


def test_float32_erf_series_against_mpmath():
    """``_erf_series32`` on h^2 <= 8 in float32 arithmetic: erf to 3e-7 relative, exp(-h^2) to
    3.5e-7 absolute (float32 rounding of the Horner steps; an ulp at 1 is 1.2e-7)."""
    import mpmath
    from numba import njit

    from kernelphase.validation.langevin import _erf_series32
    both = njit(lambda h: _erf_series32(h))
    edge = np.float32(np.sqrt(8.0))
    hs = np.concatenate([np.linspace(-edge, edge, 2263),
                         [1e-30, -1e-6, 0.0, 2.828]]).astype(np.float32)
    assert edge * edge <= 8.0
    for h in hs:
        e, g = both(h)
        hd = mpmath.mpf(float(h))
        assert abs(float(e) - float(mpmath.erf(hd))) <= 3e-7 * max(abs(float(mpmath.erf(hd))), 1e-38)
        assert abs(float(g) - float(mpmath.exp(-hd ** 2))) <= 3.5e-7
    from numba import float32, types
    assert both.nopython_signatures[0].return_type == types.UniTuple(float32, 2)  # no promotion


def test_float32_series_source_is_the_printed_horner_form():
    """The literals in ``_erf_series32`` are what ``_horner_lines`` prints from the Chebyshev
    coefficients, computed here again."""
    import inspect

    from kernelphase.validation import langevin as L
    exp_c, erf_c = L._series32_coefficients()
    assert len(exp_c) == 13 and len(erf_c) == 12
    body = inspect.getsource(L._erf_series32.py_func)
    expected = "\n".join([*L._horner_lines("e", exp_c, "t", L._float32_literal),
                          *L._horner_lines("p", erf_c, "t", L._float32_literal),
                          "    return h * p, e", ""])
    assert body.endswith(expected)


def _time_averages(dtype, seed, y_scale=1.0, steps=24000):
    """Time averages of f at three test points, |a|^2 and |W|^2 over one run after a burn-in,
    with their standard errors (:func:`integrated_time`)."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((400, 3))           # three row chunks
    y = y_scale * (np.tanh(1.5 * X[:, 0]) + 0.3 * X[:, 1])
    X_test = rng.standard_normal((3, 3))
    post = ErfNetworkPosterior(X, y, 2.0, 1.0, 1.0, 6, dtype=dtype)

    def series(a, W):
        return np.concatenate([post.forward(a, W, X_test), [a @ a, (W * W).sum()]])
    out = langevin_run(post, steps, 4e-3, seed=seed, series=series, sample_every=10)
    assert out.converged
    rows = out.series[out.series.shape[0] // 10:]
    stats = [integrated_time(rows[:, k]) for k in range(rows.shape[1])]
    assert all(s.converged for s in stats)
    return np.array([s.mean for s in stats]), np.array([s.std_error for s in stats])


def test_float32_samples_the_float64_posterior():
    """A float32 and a float64 run (independent seeds, same step size, so the same
    discretisation bias) agree on every time average within 4 combined standard errors; the
    same check tells the float64 posterior from the one with targets scaled by 1.15."""
    m64, se64 = _time_averages("float64", seed=1)
    m32, se32 = _time_averages("float32", seed=2)
    assert np.all(np.abs(m32 - m64) < 4 * np.hypot(se32, se64))
    m_other, se_other = _time_averages("float64", seed=3, y_scale=1.15)
    assert np.any(np.abs(m_other - m64) > 4 * np.hypot(se_other, se64))
    assert math.isfinite(m32.sum())


def test_run_cubic_plan_takes_the_dtype():
    """``plan_cubic`` checks ``dtype``; a float32 run has its own checkpoint key, a float64 run
    the key it had before the option existed."""
    from kernelphase.validation.teacher_student import plan_cubic
    with pytest.raises(ValueError, match=r"dtype='float16' is not one of 'float64', 'float32'"):
        plan_cubic(scale=0.125, nets=1, steps=100, dtype="float16")
    assert plan_cubic(scale=0.125, nets=1, steps=100, dtype="float32")["key"]["dtype"] == "float32"
    assert "dtype" not in plan_cubic(scale=0.125, nets=1, steps=100)["key"]
