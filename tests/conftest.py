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
