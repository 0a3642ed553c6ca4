"""Issue 14 item 4: the Gaussian noise of the float32 step, drawn in numba (``_ou_step_noise``:
xoshiro256** bits, 256-strip ziggurat, one stream per block of elements).

References are independent of the generator: the normal law of scipy.stats (Kolmogorov-Smirnov,
tail mass), the strip area of Marsaglia & Tsang from scipy's survival function, and a straight
run for the reproducibility and resume checks.
"""
import math

import numba
import numpy as np
import pytest
from scipy import stats

from kernelphase.validation import langevin as L
from kernelphase.validation.langevin import ErfNetworkPosterior, langevin_run


def _normals(size, key=7):
    zeros = np.zeros(size)
    return L._ou_step_noise(zeros, zeros, key, 0.0, 0.0, 1.0)


def test_ziggurat_strips_have_equal_area():
    """Every strip of the tables has the area v = r f(r) + int_r^inf f (scipy), the top strip
    closes at f = 1 (the certificate of r), and k is the accept threshold 2^52 x_{i+1}/x_i."""
    k, w, f = L._ziggurat_tables()
    x = np.append(w * 2.0 ** 52, 0.0)
    r = L._ZIG_R
    v = r * math.exp(-r * r / 2) + math.sqrt(2 * math.pi) * stats.norm.sf(r)
    areas = np.append(x[0] * f[1], x[1:-1] * (f[2:] - f[1:-1]))
    assert areas.shape == (256,)
    assert np.allclose(areas, v, rtol=1e-9, atol=0)
    assert f[-1] == 1.0 and np.allclose(f, np.exp(-x * x / 2), rtol=1e-14)
    assert np.array_equal(k, np.floor(2.0 ** 52 * x[1:] / x[:-1]).astype(np.uint64))


def test_fused_noise_is_standard_normal():
    """300000 draws: Kolmogorov-Smirnov against N(0, 1) passes, the same test rejects
    N(0, 1.02^2); mass beyond the ziggurat's tail start r within 4 binomial standard errors;
    neighbours (also across a block boundary) uncorrelated within 4 standard errors."""
    z = _normals(300_000)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert stats.kstest(z, stats.norm(scale=1.02).cdf).pvalue < 1e-3
    p_tail = 2 * stats.norm.sf(L._ZIG_R)
    assert abs(np.mean(np.abs(z) > L._ZIG_R) - p_tail) < 4 * math.sqrt(p_tail / z.size)
    assert abs(np.mean(z[1:] * z[:-1])) < 4 / math.sqrt(z.size)
    b = L._NOISE_BLOCK
    assert abs(np.corrcoef(z[:b], z[b:2 * b])[0, 1]) < 4 / math.sqrt(b)
    assert abs(np.mean(z ** 4) - 3.0) < 4 * math.sqrt(96 / z.size)     # Var z^4 = 105 - 9


def test_fused_noise_is_the_ou_step_and_depends_on_key_alone():
    """decay x + gain g + noise z with the z of the same key; another key, other numbers; the
    same numbers on one thread and on two (blocks, not threads, own the streams)."""
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((350, 106)), rng.standard_normal((350, 106))
    z = _normals(x.shape, key=11)
    out = L._ou_step_noise(x, g, 11, 0.9, 0.3, 0.2)
    assert out.shape == x.shape and out.dtype == np.float64
    assert np.allclose(out, 0.9 * x + 0.3 * g + 0.2 * z, rtol=1e-14, atol=1e-14)
    assert not np.any(_normals(x.shape, key=12) == z)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = L._ou_step_noise(x, g, 11, 0.9, 0.3, 0.2)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = L._ou_step_noise(x, g, 11, 0.9, 0.3, 0.2)
    finally:
        numba.set_num_threads(old)
    assert np.array_equal(one, out) and np.array_equal(two, out)
    long = _normals(300_000, key=11)         # blocks in parallel; three and a bit in series:
    short = _normals(3 * L._NOISE_BLOCK + 5, key=11)     # the same numbers, a prefix
    assert np.array_equal(long[:short.size], short) and np.array_equal(long[:z.size], z.ravel())
    small = rng.standard_normal(40)          # one block: drawn in the calling thread
    assert np.allclose(L._ou_step_noise(small, small, 11, 1.0, 0.0, 0.5),
                       small + 0.5 * z.ravel()[:40], rtol=1e-14, atol=1e-14)


def _f32_posterior():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((250, 5))
    return ErfNetworkPosterior(X, np.tanh(X[:, 0]), 0.5, 1.0, 1.0, 1200, dtype="float32")


def test_float32_run_is_reproducible_and_resumes_bit_identical(tmp_path):
    """The float32 run draws its noise in numba (W has 6000 > one block of elements): same seed,
    same weights; another seed, others; killed after a checkpoint and resumed, the weights and
    sums of the straight run bit for bit."""
    from kernelphase.io import RunDir
    post = _f32_posterior()
    assert post.noise == "numba"
    assert ErfNetworkPosterior(post.X, post.y, 0.5, 1.0, 1.0, 4).noise == "numpy"
    kw = dict(lr=2e-5, seed=5, key=(1,), sample_every=3,
              observe=lambda a, W: {"w2": (W ** 2).mean()})
    straight = langevin_run(post, steps=30, **kw)
    assert straight.converged
    again = langevin_run(post, steps=30, **kw)
    assert np.array_equal(again.W, straight.W) and np.array_equal(again.a, straight.a)
    other = langevin_run(post, steps=30, **dict(kw, seed=6))
    assert not np.any(other.W == straight.W)
    with RunDir(tmp_path, {"seed": 5}) as run:
        langevin_run(post, steps=20, checkpoint=(run, "k.npz"), checkpoint_every=10, **kw)
    with RunDir(tmp_path, {"seed": 5}, resume=True) as run:
        resumed = langevin_run(post, steps=30, checkpoint=(run, "k.npz"), checkpoint_every=10,
                               **kw)
    assert np.array_equal(resumed.W, straight.W) and np.array_equal(resumed.a, straight.a)
    assert np.array_equal(resumed.acc["w2"], straight.acc["w2"])


@pytest.mark.parametrize("var", [0.05, 2.0])
def test_float32_noise_samples_the_prior_exactly(var):
    """Without likelihood force the fused update is the exact OU step: from x = 0, after one step
    of length lr, x ~ N(0, var (1 - e^{-2 lr/var})) (Kolmogorov-Smirnov on 60000 elements)."""
    lr = 0.01
    decay, gain, noise = L._ou_coefficients(var, lr)
    x = L._ou_step_noise(np.zeros(60_000), np.zeros(60_000), 3, decay, gain, noise)
    sd = math.sqrt(var * -math.expm1(-2 * lr / var))
    assert stats.kstest(x, stats.norm(scale=sd).cdf).pvalue > 1e-3
