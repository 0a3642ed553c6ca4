"""Package skeleton: namespace layout, input checks, codegen, atomic IO, CLI errors."""
import math
import os
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

import kernelphase
from kernelphase._checks import check_choice, check_grid, check_int, check_range
from kernelphase.codegen import generated_source, numba_function
from kernelphase.io import atomic_savez, atomic_write_json, load_npz


def test_namespace_layout():
    import kernelphase.solvers
    import kernelphase.validation
    root = os.path.dirname(os.path.dirname(os.path.abspath(kernelphase.__file__)))
    assert os.path.basename(os.path.dirname(kernelphase.solvers.__file__)) == "solvers"
    assert os.path.basename(os.path.dirname(kernelphase.validation.__file__)) == "validation"
    assert os.path.dirname(os.path.dirname(kernelphase.solvers.__file__)) == root


def test_lazy_exports_resolve():
    for name in kernelphase.__all__:
        assert getattr(kernelphase, name) is not None
    with pytest.raises(AttributeError):
        kernelphase.no_such_name


@pytest.mark.parametrize("call, match", [
    (lambda: check_range("sigma2", -0.1, 0, math.inf, lo_open=True), r"sigma2=-0.1 .*\(0, inf\)"),
    (lambda: check_range("x", float("nan")), "x=nan"),
    (lambda: check_range("x", "abc"), "not a number"),
    (lambda: check_int("D", 0.5, 1), "D=0.5 is not an integer"),
    (lambda: check_int("D", 0, 1), r"D=0 is outside the valid range \[1, inf\)"),
    (lambda: check_choice("method", "x", ("a", "b")), "method='x' is not one of 'a', 'b'"),
    (lambda: check_grid("u", 2.0, 1.0, 10), "empty or reversed"),
])
def test_checks_raise_one_line(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_checks_accept_valid():
    assert check_range("x", 0.5, 0, 1) == 0.5
    assert check_int("n", 3.0, 1) == 3
    assert check_grid("u", 0, 1, 5) == (0.0, 1.0, 5)


def test_codegen_matches_mpmath(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELPHASE_CACHE_DIR", str(tmp_path))
    x, s = sp.symbols("x s", real=True)
    expr = sp.erf(x / sp.sqrt(1 + 2 * s)) * sp.exp(-x**2) + sp.sqrt(s) * x**3
    f = numba_function((expr, sp.diff(expr, x)), (x, s))
    rng = np.random.default_rng(0)
    mpmath.mp.dps = 30
    for xv, sv in rng.uniform([-2, 0.1], [2, 3], size=(5, 2)):
        X, S = mpmath.mpf(xv), mpmath.mpf(sv)
        ref = mpmath.erf(X / mpmath.sqrt(1 + 2 * S)) * mpmath.exp(-X**2) + mpmath.sqrt(S) * X**3
        dref = mpmath.diff(lambda t: mpmath.erf(t / mpmath.sqrt(1 + 2 * S)) * mpmath.exp(-t**2)
                           + mpmath.sqrt(S) * t**3, X)
        val, dval = f(xv, sv)
        assert abs(val - float(ref)) <= 1e-12 * (1 + abs(float(ref)))
        assert abs(dval - float(dref)) <= 1e-12 * (1 + abs(float(dref)))
    # a real, named, cached file exists and is reused
    text, digest = generated_source((expr, sp.diff(expr, x)), (x, s))
    files = os.listdir(os.path.join(tmp_path, "codegen"))
    assert f"kernelphase_generated_{digest}.py" in files
    assert "do not edit" in text and "cache=True" in text


def test_codegen_rejects_missing_symbols(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNELPHASE_CACHE_DIR", str(tmp_path))
    x, y = sp.symbols("x y")
    with pytest.raises(ValueError, match=r"free symbols \['y'\]"):
        numba_function(x + y, (x,))


def test_atomic_npz_roundtrip(tmp_path):
    p = tmp_path / "state.npz"
    atomic_savez(p, a=np.arange(3.0), meta={"seed": 1, "name": "x"})
    back = load_npz(p)
    assert np.array_equal(back["a"], np.arange(3.0)) and back["meta"] == {"seed": 1, "name": "x"}
    atomic_write_json(tmp_path / "r.json", {"v": np.float64(1.5), "nan": float("nan")})
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]


def test_cli_help_and_errors(run_cli):
    status, out, err = run_cli("--version")
    assert status == 0 and kernelphase.__version__ in out
    status, out, err = run_cli("no-such-command")
    assert status == 2 and len(err.strip().splitlines()) == 1


def test_console_script_help_is_fast():
    # the installed entry point exists and --help imports no heavy module
    code = ("import sys, kernelphase.cli as c; c.build_parser().format_help();"
            "print(any(m in sys.modules for m in ('sympy', 'numba', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_codegen_integer_arguments_are_floats(tmp_path, monkeypatch):
    """An integer argument must not make D**-2 integer arithmetic (lazy-rich report)."""
    monkeypatch.setenv("KERNELPHASE_CACHE_DIR", str(tmp_path))
    D = sp.Symbol("D")
    f = numba_function(D ** -2 + 1 / D, (D,))
    assert f(4) == pytest.approx(1 / 16 + 1 / 4, rel=1e-15)
