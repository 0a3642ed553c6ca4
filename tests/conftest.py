import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

try:
    from hypothesis import settings
    settings.register_profile("kernelphase", deadline=None, max_examples=40,
                              derandomize=True)
    settings.load_profile("kernelphase")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process; return (status, stdout, stderr)."""
    from kernelphase.cli import main

    def _run(*argv):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            status = exc.code
        out, err = capsys.readouterr()
        return status, out, err
    return _run


@pytest.fixture
def one_numba_thread():
    """Small kernels: one numba thread avoids parallel-region overhead on a shared machine."""
    import numba
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(old)


def cubic_teacher_data(n, d, seed=4):
    """Gaussian inputs and the cubic teacher He1 - 0.3 He3 along the first coordinate."""
    import numpy as np
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, X[:, 0] - 0.3 * (X[:, 0] ** 3 - 3 * X[:, 0])
