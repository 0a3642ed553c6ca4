"""Single-index phase diagrams (issue 13): every converged cell against the single-point solver,
the GFL -> GMFL-I boundary crossing each u-line once at the group's u_c, erf He1 + c3 He3 against
the separately written cubic diagram, Dask against the local pool, and the CLI's error paths.

The theory (theory/adaptive_kernel.md Sec. 12): along u at fixed spec the transition is first
order at u_c; below it the GFL branch, above it the mixed (GMFL-I) branch continued from u_c.
"""
import json
import re

import numpy as np
import pytest
import sympy as sp

from kernelphase.activations import Z
from kernelphase.solvers.phase_diagram import phase_diagram
from kernelphase.solvers.single_index import single_index_phases

RHO, SW2, D = 8 / 150, 0.5, 150
ERF = ("single-index", ("c3", -0.6, -0.2, 4), ("u", 5.0, 120.0, 7),
       {"activation": "erf", "teacher": "He1", "rho": RHO, "sigma_w2": SW2, "d": D})


@pytest.fixture(scope="module")
def erf_pd():
    return phase_diagram(*ERF, workers=1, progress=False)


@pytest.fixture(scope="module")
def beta_pd():
    """An activation parameter as an axis: erf(beta z) at two beta, He1 - 0.3 He3."""
    return phase_diagram("single-index", ("beta", 0.8, 1.4, 2), ("u", 5.0, 150.0, 6),
                         {"activation": "erf(beta*z)", "teacher": "He1 - 0.3*He3", "rho": RHO},
                         workers=1, progress=False)


def _point_call(pd, j, i):
    """The single-point solver at cell (j, i), spec rebuilt here independently."""
    p = dict(pd.params, **{pd.x_name: pd.x[i], pd.y_name: pd.y[j]})
    coeffs = {1: 1.0, 3: p["c3"]} if "c3" in p else {1: 1.0, 3: -0.3}
    act = sp.erf(Z) if "beta" not in p else sp.erf(sp.Float(p["beta"]) * Z)
    return single_index_phases(act, coeffs, [p["u"]], RHO, SW2, D)[0]


@pytest.mark.parametrize("which", ["erf_pd", "beta_pd"])
def test_cells_agree_with_single_point_calls(which, request):
    pd = request.getfixturevalue(which)
    assert set(np.unique(pd.phase)) <= {-1, 0, 1, 2}
    assert np.array_equal(pd.phase < 0, pd.status != 0)      # unconverged <=> phase -1
    assert (pd.phase >= 0).sum() >= 0.8 * pd.phase.size
    for j in range(pd.y.size):
        for i in range(pd.x.size):
            if pd.phase[j, i] < 0:
                continue
            r = _point_call(pd, j, i)
            assert r.converged and r.phase == ("GFL", "GMFL-I", "GMFL-II")[pd.phase[j, i]]
            for key, got in (("phi_star", r.phi_star), ("droplet_fraction", r.droplet_fraction),
                             ("b1", r.b[1]), ("b3", r.b[3])):
                ref = pd.order[key][j, i]
                assert abs(got - ref) <= 1e-7 * (1 + abs(ref)), (which, j, i, key, got, ref)


@pytest.mark.parametrize("which", ["erf_pd", "beta_pd"])
def test_boundary_crosses_each_u_line_once_at_u_c(which, request):
    """Along u (the y axis) the converged phases never go back, and GMFL-I is exactly u > u_c."""
    pd = request.getfixturevalue(which)
    for i in range(pd.x.size):
        col, ok = pd.phase[:, i], pd.phase[:, i] >= 0
        assert np.all(np.diff(col[ok]) >= 0), (pd.x[i], col)
        u_c = pd.order["u_c"][:, i]
        assert np.ptp(u_c) == 0 and np.isfinite(u_c[0])        # one transition per group
        assert np.array_equal(col[ok] == 1, pd.y[ok] > u_c[0]), (pd.x[i], col, u_c[0])
        assert (col == 0).any() and (col == 1).any()            # the line is crossed


def test_erf_equals_cubic_diagram(erf_pd):
    """erf with He1 + c3 He3 over (c3, u) = the cubic solver's (eps, u) diagram to 1e-8."""
    cub = phase_diagram("cubic", ("eps",) + ERF[1][1:], ERF[2],
                        {"rho": RHO, "sigma_w2": SW2, "d": D}, workers=1, progress=False)
    assert np.array_equal(cub.phase, erf_pd.phase) and (cub.phase >= 0).all()
    for a, b in (("b", "b1"), ("c", "b3"), ("phi_star", "phi_star"),
                 ("droplet_fraction", "droplet_fraction")):
        np.testing.assert_allclose(erf_pd.order[b], cub.order[a], rtol=0, atol=1e-8, err_msg=a)


def _same(a, b):
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    for k in ("phase", "status", "residual"):
        assert np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True), k
    assert list(a.order) == list(b.order)
    for k in a.order:
        assert np.array_equal(a.order[k], b.order[k], equal_nan=True), k


def test_dask_equals_local_pool(erf_pd, run_cli, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    pool = phase_diagram(*ERF, workers=2, progress=False)
    _same(pool, erf_pd)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            _same(phase_diagram(*ERF, progress=False, scheduler=client), pool)
        st, out, err = run_cli("phase-diagram", "single-index", "--teacher", "He1", "--rho", RHO,
                               "--x", "c3=-0.6:-0.2:4", "--y", "u:5:120:7", "--out",
                               tmp_path / "pd", "--no-progress", "--scheduler",
                               cluster.scheduler_address)
    assert st == 0, err
    rec = json.loads((tmp_path / "pd" / "phase_diagram.json").read_text())
    assert np.array_equal(np.array(rec["phase"]), pool.phase)
    assert (tmp_path / "pd" / "phase_diagram.png").stat().st_size > 0
    with pytest.raises(ValueError, match="scheduler='tcp://x:1' is an address"):
        phase_diagram(*ERF, scheduler="tcp://x:1")


def test_cli_writes_csv_json_figure(run_cli, tmp_path):
    st, out, err = run_cli("phase-diagram", "single-index", "--activation", "erf(beta*z)",
                           "--param", "beta=0.8", "--teacher", "He1", "--x", "c3:-0.6:-0.1:4",
                           "--y", "u=5:120:7", "--rho", RHO, "--out", tmp_path / "pd",
                           "--workers", 1, "--no-progress", "--json")
    assert st == 0, err
    rec = json.loads(out)
    assert rec["model"] == "single-index" and len(rec["phase"]) == 7
    header = (tmp_path / "pd" / "phase_diagram.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["c3", "u", "phase"] and header.count("u") == 1 and "u_c" in header


BAD = [
    (("--x", "foo=1:2:3"), r"axis name='foo' is not one of .*'c3'"),
    (("--x", "c3=1:0:3"), "c3=1.0:0.0 is empty or reversed"),
    (("--x", "c3=-1:0:1"), r"c3 count=1 is outside the valid range \[2, 100000\]"),
    (("--x", "c3=-1:0"), "is not of the form NAME=lo:hi:count"),
    (("--x", "c3=-200:0:3"), r"c3=-200.0 is outside the valid range \[-100, 100\]"),
    (("--activation", "foo(z)"), r"activation='foo\(z\)' is not allowed: function 'foo'"),
    (("--activation", "tanh(beta*z)"), "needs beta, a parameter of activation='tanh"),
    (("--activation", "tanh(beta*z)", "--param", "beta=0"), "beta=0.0 makes activation"),
    (("--activation", "tanh(u*z)"), "parameter name 'u' is also a model parameter"),
    (("--param", "eps=0.5"), "eps=0.5 is not a parameter of phase-diagram single-index"),
    (("--teacher", "__import__('os')"), "teacher="),
    (("--rho", "-1"), r"rho=-1.0 is outside the valid range \(0, 1e\+12\]"),
]


@pytest.mark.parametrize("extra, match", BAD)
def test_cli_errors(run_cli, tmp_path, extra, match):
    argv = {"--teacher": "He1", "--rho": str(RHO), "--x": "c3=-0.6:-0.1:3", "--y": "u=5:60:3"}
    flags = list(extra)
    for k in list(argv):
        if k in flags:
            argv.pop(k)
    args = [a for kv in argv.items() for a in kv] + flags
    st, out, err = run_cli("phase-diagram", "single-index", *args, "--out", tmp_path / "pd",
                           "--workers", 1, "--no-progress")
    assert st == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(match, err), err
    assert not (tmp_path / "pd").exists() and list(tmp_path.iterdir()) == []


def test_api_errors():
    with pytest.raises(ValueError, match="needs teacher"):
        phase_diagram("single-index", ("c3", -1, 0, 2), ("u", 5, 60, 2), {"rho": RHO})
    with pytest.raises(ValueError, match="x and y both vary 'u'"):
        phase_diagram("single-index", ("u", 5, 60, 2), ("u", 5, 60, 2), ERF[3])
    with pytest.raises(ValueError, match="needs u, or sigma2 with n, d, width and sigma_a2"):
        phase_diagram("single-index", ("c3", -1, 0, 2), ("rho", 0.01, 0.1, 2),
                      {"teacher": "He1"})
