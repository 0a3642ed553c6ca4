"""The ``Examples`` sections of the docstrings run as doctests, and every public function has one.

(a) The doctests of every module of ``kernelphase``, ``kernelphase.solvers`` and
``kernelphase.validation`` (found by :class:`doctest.DocTestFinder`, one test per module) pass;
floats are checked rounded or with ``...``.
(b) Every public function (a function in a module's ``__all__``, defined in that module) has an
``Examples`` section with at least one ``>>>`` line. Classes (result dataclasses, specs) are not
required to. Modules whose examples another helper is writing are listed in ``EXEMPT``.
"""
import doctest
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import kernelphase
import kernelphase.solvers
import kernelphase.validation

# modules whose Examples sections are being written elsewhere (to be shrunk)
EXEMPT = set()


def _modules():
    names = []
    for pkg in (kernelphase, kernelphase.solvers, kernelphase.validation):
        names.append(pkg.__name__)
        for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
            # private modules (helpers, and code templates that are not importable as they
            # stand, such as kernelphase/_moments_vector.py) are not part of the API
            if info.ispkg or info.name.rsplit(".", 1)[1].startswith("_"):
                continue
            names.append(info.name)
    return sorted(names)


MODULES = _modules()


def _public_functions(mod):
    out = []
    for name in getattr(mod, "__all__", ()):
        obj = mod.__dict__.get(name)
        if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
            out.append((name, obj))
    return out


@pytest.fixture(autouse=True)
def _quiet_numpy():
    with np.printoptions(legacy="1.25" if np.lib.NumpyVersion(np.__version__) >= "2.0.0"
                         else False):
        yield


@pytest.mark.parametrize("modname", MODULES)
def test_module_doctests(modname, tmp_path, monkeypatch):
    """Every example in the module's docstrings runs and prints what it shows."""
    monkeypatch.chdir(tmp_path)         # examples that write files write them here
    mod = importlib.import_module(modname)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mod, modname) if t.examples]
    if not tests:
        pytest.skip(f"{modname} has no doctests")
    report = []
    for t in sorted(tests, key=lambda t: t.name):
        res = runner.run(t, out=report.append)
        assert res.failed == 0, "".join(report)[-6000:]


def _missing_examples():
    missing = []
    for modname in MODULES:
        if modname in EXEMPT:
            continue
        mod = importlib.import_module(modname)
        for name, fn in _public_functions(mod):
            doc = inspect.getdoc(fn) or ""
            if "Examples" not in doc or ">>>" not in doc.split("Examples", 1)[1]:
                missing.append(f"{modname}.{name}")
    return missing


def test_every_public_function_has_examples():
    missing = _missing_examples()
    assert not missing, (f"{len(missing)} public functions lack an Examples section with a "
                         f"doctest:\n  " + "\n  ".join(missing))


def test_exempt_modules_exist():
    """The exemption list names real modules (a rename must not silently exempt nothing)."""
    assert EXEMPT <= set(MODULES), sorted(EXEMPT - set(MODULES))
