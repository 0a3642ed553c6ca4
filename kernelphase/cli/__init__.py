"""Command-line interface: ``kernelphase <command> ...``.

Each command lives in its own module of this package, which defines
``register(subparsers)``; the module must import nothing heavy at import time
(SymPy, numba, matplotlib are imported inside the command), so that
``kernelphase --help`` stays fast. Invalid input raises ``ValueError``; it is
printed as one line on stderr and the exit status is 2.
"""
import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# command modules, in the order their commands are listed by --help
_COMMAND_MODULES = (
    "derive",
    "adaptive",
    "lazy_rich",
    "validate",
    "theory",
    "dichotomy",
    "reproduce",
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr with exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    from .. import __version__
    parser = _Parser(prog="kernelphase",
                     description="Phase boundaries, closed forms and simulations for "
                                 "the theory of grokking in two-layer networks.")
    parser.add_argument("--version", action="version", version=f"kernelphase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMAND_MODULES:
        importlib.import_module(f".{name}", __name__).register(sub)
    return parser


def main(argv=None):
    """Entry point of the ``kernelphase`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args.func(args)
    except ValueError as exc:
        return _fail(str(exc))
    except NotImplementedError as exc:
        return _fail(f"not supported: {exc}")
    except MemoryError:
        return _fail("not enough memory for this run; reduce the sizes")
    except (OverflowError, FloatingPointError, ZeroDivisionError) as exc:
        return _fail(f"numerical range exceeded ({type(exc).__name__}: {exc}); the inputs are "
                     f"too extreme for double precision")
    except OSError as exc:
        return _fail(f"cannot read or write {exc.filename or ''!s}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        print("kernelphase: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


def _fail(message):
    """One line on stderr and exit status 2 (invalid input or an impossible run)."""
    msg = " ".join(str(message).split())
    print(f"kernelphase: error: {msg}", file=sys.stderr)
    return 2
