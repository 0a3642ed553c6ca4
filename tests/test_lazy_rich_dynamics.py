"""Issue 5: exact reduced (wbar, M) dynamics vs plain-numpy GD on W; linearised and population limits."""
import numpy as np
import pytest

from kernelphase.solvers.order_dynamics import (DynamicsResult, population_loss, reduced_steps,
                                                run_order_dynamics)
from kernelphase.validation.polynomial_net import (alignment, full_gd, init_weights, make_data,
                                                   network_output, train)


def _setup(convention, D=20, P=60, N=30, seed=0):
    rng = np.random.default_rng(seed)
    X, y, beta, s = make_data(D, P, rng, convention)
    W = init_weights(N, D, rng)
    return X, y, beta, s, W


@pytest.mark.parametrize("convention", ["A", "B"])
@pytest.mark.parametrize("centred", [True, False])
@pytest.mark.parametrize("D", [20, 37])     # 37: uneven column blocks of the stepper (gh 15)
def test_gh_5_reduced_equals_full_gd_1000_steps(convention, centred, D):
    X, y, beta, s, W = _setup(convention, D=D)
    N, D = W.shape
    alpha, eps, c = 1.0, 0.25, 0.5
    lr = c * N / alpha ** 2
    W1, losses = full_gd(W, X, y, alpha, eps, lr, 1000, centred=centred)
    f0 = network_output(W, X, alpha, eps)
    wb, M = W.mean(0), W.T @ W / N
    yeff = y + (f0 if centred else 0.0)
    last = reduced_steps(X, yeff, wb.copy(), M.copy(), alpha, eps, 2 * lr * alpha / N, 0, 0,
                         wb, M, s * np.outer(beta, beta), centred)
    wbr, Mr = wb.copy(), M.copy()
    last = reduced_steps(X, yeff, wbr, Mr, alpha, eps, 2 * lr * alpha / N, 1000, 0,
                         wb, M, s * np.outer(beta, beta), centred)
    Mf, wf = W1.T @ W1 / N, W1.mean(0)
    assert np.linalg.norm(Mr - Mf) <= 1e-8 * np.linalg.norm(Mf)
    assert np.linalg.norm(wbr - wf) <= 1e-8 * np.linalg.norm(wf)
    assert abs(last - losses[-1]) <= 1e-8 * losses[-1]
    assert losses[-1] < 0.5 * losses[0]          # the run actually moved


def test_linearised_reduced_equals_linearised_full_gd():
    X, y, beta, s, W = _setup("A")
    N, D = W.shape
    alpha, eps, lr = 2.0, 0.25, 0.5 * 30 / 4.0
    W1, losses = full_gd(W, X, y, alpha, eps, lr, 300, centred=True, linearised=True)
    res = run_order_dynamics(X, y, network_output(W, X, alpha, eps), W.mean(0), W.T @ W / N,
                             beta, alpha, eps, lr, N, 300, model="linearised", record_every=300)
    assert isinstance(res, DynamicsResult) and res.converged and isinstance(res.message, str)
    dW = W1 - W
    S = (W.T @ dW + dW.T @ W) / (2 * N)
    assert np.allclose(res.M, S, rtol=0, atol=1e-10 * np.abs(S).max())
    assert np.allclose(res.wbar, dW.mean(0), rtol=0, atol=1e-10 * np.abs(dW.mean(0)).max())


def test_linearised_model_matches_network_at_large_alpha():
    """f - f_lin = (alpha eps/2) x^T (dW^T dW/N) x = O(1/alpha) with lr = c N/alpha^2."""
    X, y, beta, s, W = _setup("A", D=15, P=40, N=20, seed=4)
    N = W.shape[0]
    gaps = []
    for alpha in (4.0, 64.0):
        kw = dict(X=X, y=y, f0=network_output(W, X, alpha, 0.25), wbar0=W.mean(0),
                  M0=W.T @ W / N, beta=beta, alpha=alpha, eps=0.25, lr=0.5 * N / alpha ** 2,
                  N=N, steps=400, record_every=20)
        net = run_order_dynamics(model="network", **kw)
        lin = run_order_dynamics(model="linearised", **kw)
        gaps.append(max(np.max(np.abs(net.train_loss - lin.train_loss)) / lin.train_loss[0],
                        np.max(np.abs(net.test_loss - lin.test_loss)) / lin.test_loss[0]))
    assert lin.train_loss[-1] < 0.2 * lin.train_loss[0]  # both models fit substantially
    assert gaps[1] < 0.02 and gaps[1] < gaps[0] / 8      # ~1/alpha: factor 16 expected


def test_population_limit_matches_large_P():
    D, P, N = 6, 40_000, 10
    rng = np.random.default_rng(5)
    X, y, beta, s = make_data(D, P, rng)
    W = init_weights(N, D, rng)
    kw = dict(f0=network_output(W, X, 1.0, 0.5), wbar0=W.mean(0), M0=W.T @ W / N, beta=beta,
              alpha=1.0, eps=0.5, lr=0.5 * N, N=N, steps=200, record_every=50)
    big = run_order_dynamics(X, y, model="network", **kw)
    pop = run_order_dynamics(X, y, model="population", **kw)
    assert np.all(np.abs(big.test_loss - pop.test_loss) < 0.05 * pop.test_loss[0])
    assert pop.test_loss[-1] < 0.5 * pop.test_loss[0]


def test_population_loss_equals_test_set_loss():
    X, y, beta, s, W = _setup("A", D=10, N=7)
    N = W.shape[0]
    rng = np.random.default_rng(9)
    Xt, yt, _, _ = make_data(10, 300_000, rng, beta=beta)
    W2 = W + 0.3 * rng.standard_normal(W.shape)
    r = network_output(W2, Xt, 1.5, 0.3) - network_output(W, Xt, 1.5, 0.3) - yt
    L, _ = population_loss(W2.mean(0), W2.T @ W2 / N, beta, 1.5, 0.3, 1.0, W.mean(0), W.T @ W / N)
    assert abs(L - np.mean(r ** 2)) < 5 * np.std(r ** 2) / np.sqrt(r.size)


def test_alignment_matches_explicit_centering_matrix():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((30, 30))
    K = A @ A.T
    y = rng.standard_normal(30)
    H = np.eye(30) - np.ones((30, 30)) / 30
    yc = H @ y
    ref = yc @ (H @ K) @ yc / (np.linalg.norm(H @ K) * (yc @ yc))
    assert abs(alignment(K, y) - ref) < 1e-12
    assert abs(alignment(3.7 * K, y) - ref) < 1e-12          # scale-free


def test_checkpoint_resume_equals_one_go(tmp_path):
    kw = dict(D=8, P=30, N=10, alpha=1.0, eps=0.25, c=0.5, steps=200, seed=3, record_every=10)
    from kernelphase.io import RunDir
    ref = train(**kw)
    key = dict(kw, convention="A", centred=True, model="network")
    with RunDir(tmp_path / "ck", key) as ck:
        part = train(checkpoint=ck, checkpoint_seconds=0.0, _stop_after_records=7, **kw)
    assert len(part.epoch) == 8
    with RunDir(tmp_path / "ck", key, resume=True) as ck:
        res = train(checkpoint=ck, checkpoint_seconds=0.0, **kw)
    for k in ("train", "test", "t1", "t2", "t3", "weight_norm"):
        assert np.array_equal(getattr(ref, k), getattr(res, k)), k
    with pytest.raises(ValueError, match="seed"):
        with RunDir(tmp_path / "ck", dict(key, seed=4), resume=True) as ck:
            pass


def test_train_bad_input():
    with pytest.raises(ValueError, match="P=0"):
        train(D=5, P=0, N=3, alpha=1.0, eps=0.1, c=1.0, steps=10)
    with pytest.raises(ValueError, match="alpha=-1"):
        train(D=5, P=10, N=3, alpha=-1, eps=0.1, c=1.0, steps=10)
    with pytest.raises(ValueError, match="model"):
        run_order_dynamics(np.zeros((2, 2)), np.zeros(2), np.zeros(2), np.zeros(2), np.eye(2),
                           np.ones(2), 1.0, 0.1, 1.0, 2, 10, model="lazy")


def test_gh_15_blocked_symmetric_products_match_numpy():
    """The half-flop symmetric products of the stepper, at a D with uneven blocks."""
    from kernelphase.solvers.order_dynamics import _bounds, _quad_forms, _sym_product
    rng = np.random.default_rng(7)
    D, P = 37, 53
    X = rng.standard_normal((P, D))
    A = rng.standard_normal((D, D))
    M = A + A.T
    e = rng.standard_normal(P)
    b = _bounds(D)
    assert b[0] == 0 and b[-1] == D and b.size > 2          # several blocks
    q = np.empty(P)
    _quad_forms(np.ascontiguousarray(X.T), M, b, q)
    assert np.allclose(q, np.einsum("pi,ij,pj->p", X, M, X), rtol=1e-12, atol=1e-12)
    C = np.empty((D, D))
    Xt = np.ascontiguousarray(X.T)
    _sym_product(Xt * e, Xt, C, b)
    assert np.allclose(C, X.T @ (X * e[:, None]), rtol=1e-12, atol=1e-11)
    assert np.array_equal(C, C.T)


def test_gh_15_numba_blas_held_to_one_thread():
    """numba calls scipy's OpenBLAS; importing the stepper loads it, so a threadpool_limits(1)
    entered afterwards (as train() does) holds it at one thread. Fresh process: in this one
    scipy is loaded already."""
    import subprocess
    import sys
    code = ("import numpy as np\n"
            "from kernelphase.solvers.order_dynamics import reduced_steps\n"
            "from threadpoolctl import threadpool_limits, threadpool_info\n"
            "with threadpool_limits(1):\n"
            "    X = np.ones((4, 3)); w = np.zeros(3); M = np.eye(3)\n"
            "    reduced_steps(X, np.ones(4), w, M, 1.0, 0.1, 0.1, 2, 0, w, M, M, True)\n"
            "    print(sorted({i['num_threads'] for i in threadpool_info()\n"
            "                  if i['user_api'] == 'blas'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1]"
