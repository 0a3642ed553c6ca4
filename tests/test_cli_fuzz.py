"""Property-based test of the whole CLI: random argument vectors, fed in-process to every
subcommand, end with exit status 0 or 2, never a traceback or a hang, and a refused run
(status 2) prints one line and leaves no file behind.

The subcommands and their options are read from the parser itself, so a new command is fuzzed
without touching this file; ``BASE`` gives each a cheap valid call that the fuzz then mutates.
"""
import argparse
import contextlib
import io
import os
import signal

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from kernelphase.cli import build_parser, main  # noqa: E402

PAYLOAD = "z+0*__import__('os').system('touch CANARY')"

# a cheap valid call per subcommand (paths are relative to the sandbox folder)
BASE = {
    "derive ntk": ["--activation", "z + eps*z**2/2", "--param", "eps=0.25"],
    "derive nngp": ["--activation", "erf"],
    "derive spectrum": ["--activation", "z + eps*z**2/2", "--param", "eps=0.25", "--D", "5"],
    "derive action": ["cubic"],
    "transition single-index": ["--activation", "tanh", "--rho", "0.05"],
    "phase single-index": ["--activation", "erf", "--rho", "0.05", "--u", "40"],
    "transition cubic": ["--eps", "-0.3", "--rho", "0.05"],
    "transition modular": [],
    "phase cubic": ["--eps", "-0.3", "--n", "3000", "--d", "150", "--width", "700",
                    "--sigma-a2", "0.0114", "--sigma2", "0.15"],
    "phase modular": ["--sigma2", "0.2"],
    "phase-diagram cubic": ["--rho", "0.05", "--eps", "-0.3", "--x", "sigma_w2=0.3:0.6:2",
                            "--y", "u=10:40:2", "--out", "pd", "--workers", "1"],
    "phase-diagram modular": ["--x", "sigma2=0.1:0.3:2", "--y", "gamma=1e-5:1e-3:2",
                              "--out", "pd", "--workers", "1"],
    "phase-diagram single-index": ["--activation", "erf", "--teacher", "He1", "--rho", "0.05",
                                   "--x", "c3=-0.4:-0.2:2", "--y", "u=10:40:2", "--out", "pd",
                                   "--workers", "1"],
    "lazy-rich spectrum": ["--D", "10"],
    "lazy-rich kernel-regression": ["--D", "5", "--P", "20", "--n-test", "50"],
    "lazy-rich train": ["--D", "5", "--P", "10", "--N", "20", "--steps", "20",
                        "--record-every", "10", "--out", "lr"],
    "lazy-rich sweep": ["--D", "5", "--P", "10", "--N", "20", "--steps", "20",
                        "--record-every", "10", "--alphas", "1,2", "--out", "sw"],
    "validate cubic": ["--scale", "0.02", "--sigma2", "0.3", "--nets", "1", "--steps", "20",
                       "--workers", "1", "--out", "val"],
    "validate cubic-width": ["--scale", "0.02", "--widths", "8", "--nets", "1", "--steps",
                             "20", "--workers", "1", "--out", "valw"],
    "validate modular": ["--scale", "0.02", "--sigma2", "0.2", "--nets", "1", "--steps", "20",
                         "--workers", "1", "--out", "valm"],
    "validate hysteresis cubic": ["--scale", "0.02", "--sigma2", "0.15,0.2", "--nets", "1",
                                  "--steps", "20", "--n-test", "20", "--workers", "1", "--out",
                                  "vhy"],
    "validate hysteresis modular": ["--sigma2", "0.0004,0.0005", "--nets", "1", "--steps",
                                    "20", "--workers", "1", "--out", "vhm"],
    "validate single-index": ["--activation", "erf", "--n", "20", "--d", "4", "--width", "4",
                              "--sigma2", "0.5", "--nets", "1", "--steps", "20", "--n-test",
                              "20", "--workers", "1", "--out", "vsi"],
    "theory finite": ["--scale", "0.01", "--sigma2", "0.3", "--chains", "32", "--steps", "10",
                      "--maxiter", "1", "--n-test", "20", "--workers", "1", "--out", "thf"],
    "theory finite-d": ["--d", "20", "--u-lo", "5", "--u-hi", "8"],
    "dichotomy predict diag": ["--d", "20", "--n", "10", "--n-test", "20"],
    "dichotomy predict mc": ["--d", "5"],
    "dichotomy train diag": ["--d", "20", "--n", "10", "--n-test", "20", "--t-end", "1"],
    "dichotomy train mc": ["--d", "5", "--steps", "20", "--record-every", "10", "--out", "mc"],
    "dichotomy train modular": ["--p", "5", "--width", "8", "--steps", "20",
                                "--record-every", "10", "--no-progress"],
    "dichotomy sweep-alpha": ["--d", "20", "--n", "10", "--n-test", "20", "--alphas", "2,4"],
    "reproduce": ["rubin-fig3", "--quick", "--out", "rp"],
}


def _leaves(parser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
        return
    for name, sp in subs[0].choices.items():
        yield from _leaves(sp, path + (name,))


LEAVES = dict(_leaves(build_parser()))

NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1e-300", "1e300", "0.5", "3", "1e30",
           "2", "abc", "", "1/2", "10**9"]
TEXTS = NUMBERS + [PAYLOAD, "__import__('os')", "9**9**9*z", "x" * 5000, "erf", "z",
                   "eps=nan", "eps=" + PAYLOAD, "NAME=1:0:3", "eps=1:2:3", "u=1:2:1000000",
                   "2,2", ",", "1,nan", "/proc/x", "existing_file", "foreign_dir",
                   "new/deeper", "."]


def test_every_subcommand_has_a_base_call():
    assert set(LEAVES) == set(BASE), set(LEAVES) ^ set(BASE)


def _options(parser):
    out = []
    for a in parser._actions:
        if not a.option_strings or a.dest in ("help", "scheduler"):
            continue
        out.append(a)
    return out


@st.composite
def argvs(draw):
    only = os.environ.get("KP_FUZZ_ONLY", "")  # e.g. "phase" to fuzz one family locally
    path = draw(st.sampled_from(sorted(k for k in LEAVES if k.startswith(only))))
    opts = _options(LEAVES[path])
    chosen = draw(st.lists(st.sampled_from(opts), max_size=3, unique_by=lambda a: a.dest)) if opts else []
    argv = list(BASE[path])
    for a in chosen:
        flag = a.option_strings[-1]
        if flag in argv and a.nargs != 0:
            i = argv.index(flag)
            del argv[i:i + 2]
        if a.nargs == 0:
            argv.append(flag)
            continue
        pool = NUMBERS if a.type in (int, float) else TEXTS
        if a.choices:
            pool = list(a.choices) + ["bogus"]
        argv += [flag, draw(st.sampled_from(pool))]
    return path.split() + argv


class _Hang(Exception):
    pass


def _listing(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


@settings(max_examples=int(os.environ.get("KP_FUZZ_EXAMPLES", 120)), deadline=None,
          suppress_health_check=list(HealthCheck))
@given(argv=argvs())
def test_cli_never_tracebacks(tmp_path_factory, argv):
    box = tmp_path_factory.mktemp("fuzz")
    (box / "existing_file").write_text("x")
    (box / "foreign_dir").mkdir()
    (box / "foreign_dir" / "notes.txt").write_text("mine")
    before = _listing(box)
    cwd = os.getcwd()
    err, out = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise _Hang()
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    os.chdir(box)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                status = main(argv)
            except SystemExit as exc:
                status = exc.code
    except _Hang:
        pytest.fail(f"hang (> 60 s): {argv}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.chdir(cwd)
    text = err.getvalue()
    assert "Traceback" not in text, (argv, text)
    assert status in (0, 2), (argv, status, text[-2000:])
    assert not (box / "CANARY").exists(), argv
    if status == 2:
        assert len(text.strip().splitlines()) == 1, (argv, text)
        assert _listing(box) == before, (argv, _listing(box))
