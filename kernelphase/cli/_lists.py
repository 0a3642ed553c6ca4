"""Shared option handling of the ``lazy-rich`` and ``dichotomy`` commands.

* :func:`check_list` is the one parser of comma lists (``--alphas 32,64,128``): non-empty,
  finite, inside the valid range, no duplicates, bounded length; one-line ``ValueError``
  naming the option, the value and the range otherwise.
* :func:`emit` is the one output path of a result: ``--json`` prints one JSON object with
  ``converged``, ``status``, ``message``, the parameters, the seed and the versions;
  plain text prints the chosen values and then ``converged`` and ``message``.
* :class:`HelpFormatter` writes every option's default into its help.
* :func:`locked_output` keeps a second run off a (non-resumable) output folder while the
  first one works on it, and removes the folder again if it made it and the run failed.
"""
import argparse
import contextlib
import math
import os

__all__ = ["check_list", "emit", "HelpFormatter", "MAX_LIST", "locked_output"]

#: longest accepted comma list
MAX_LIST = 50


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` after every option's help, also for options without help."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or action.default is argparse.SUPPRESS:
            return text
        if action.default is None and "None" in text:   # the help says what None means
            return text
        if action.option_strings and action.nargs != 0:
            return f"{text} (default: %(default)s)".strip()
        return text


def spec_options(p, activation="erf", teacher_dest="teacher"):
    """``--activation`` and ``--teacher`` of every command that takes a single-index model
    (parsed by the whitelisting parser, never evaluated)."""
    p.add_argument("--activation", default=activation,
                   help=f"activation: a name (erf, tanh, sin, cos, relu, sigmoid, softplus, "
                        f"gelu, silu) or a formula in z such as 'tanh(z) + 0.1*z' (default "
                        f"{activation}; never evaluated as Python)")
    p.add_argument("--teacher", dest=teacher_dest, default="He1 - 0.3*He3",
                   help="teacher y = sum_k c_k He_k(w*.x), a polynomial in He0..He8 or in z "
                        "(default 'He1 - 0.3*He3')")


def check_list(name, text, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False,
               max_len=MAX_LIST, min_len=1, integer=False):
    """Parse a comma list of numbers; return a list of floats (ints with ``integer``).

    Every entry must be a finite number in the interval (checked with
    :func:`kernelphase._checks.check_range`), the list must have ``min_len`` to
    ``max_len`` entries and no value twice.

    >>> check_list("--alphas", "32, 64,128", lo=1, lo_open=True)
    [32.0, 64.0, 128.0]
    """
    from .._checks import check_int, check_range
    if text is None or not str(text).strip():
        raise ValueError(f"{name}={text!r} is empty; give {min_len} to {max_len} "
                         f"comma-separated numbers")
    parts = [p.strip() for p in str(text).split(",")]
    if any(not p for p in parts):
        raise ValueError(f"{name}={text!r} has an empty entry; give comma-separated numbers")
    if not min_len <= len(parts) <= max_len:
        raise ValueError(f"{name}={text!r} has {len(parts)} entries; the valid range is "
                         f"{min_len} to {max_len}")
    vals = []
    for p in parts:
        try:
            float(p)
        except ValueError:
            raise ValueError(f"{name}={text!r}: {p!r} is not a number; give comma-separated "
                             f"numbers") from None
        if integer:
            v = check_int(f"{name} entry", float(p), lo, hi)
        else:
            v = check_range(f"{name} entry", p, lo, hi, lo_open, hi_open)
        vals.append(v)
    seen = set()
    for v in vals:
        if v in seen:
            raise ValueError(f"{name}={text!r} lists {v:g} twice; give distinct values")
        seen.add(v)
    return vals


def emit(args, result, text_keys=(), extra=None):
    """Print ``result`` (a :class:`kernelphase.results.Result` or a dict with ``status``).

    ``--json``: one JSON object: all fields, ``converged``, ``seed`` (when the command has
    one), ``versions`` and ``extra``. Otherwise one ``key: value`` line per ``text_keys``,
    then ``converged`` and ``message``.
    """
    from ..io import versions
    from ..results import Result, jsonable, status_message
    from ._output import print_json
    if isinstance(result, Result):
        d = result.to_dict()
    else:
        d = jsonable(dict(result))
        d.setdefault("status", 0)
        d.setdefault("message", status_message(d["status"]))
        d["converged"] = d["status"] == 0
    if getattr(args, "seed", None) is not None:
        d["seed"] = args.seed
    d.setdefault("params", {})
    d["versions"] = versions()
    if extra:
        d.update(jsonable(extra))
    if getattr(args, "json", False):
        print_json(d)
        return d
    for k in text_keys:
        v = d.get(k)
        print(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    print(f"converged: {d['converged']}")
    print(f"message: {d['message']}")
    return d


@contextlib.contextmanager
def locked_output(path, option="--out"):
    """Hold an exclusive lock on output folder ``path`` (checked before with
    :func:`kernelphase.io.check_output_dir`) for the duration of a run.

    The folder is created if missing (and removed again, if still empty, when the run
    fails); a second kernelphase run on the same folder is refused with ``ValueError``.
    Outputs go in with :func:`kernelphase.io.staged_dir`. The lock dies with the process.
    """
    import fcntl
    path = os.path.abspath(os.fspath(path))
    made = not os.path.exists(path)
    os.makedirs(path, exist_ok=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"{option}={path!r} is in use by another running kernelphase "
                             f"process; wait for it or choose another folder") from None
        try:
            yield path
        except BaseException:
            if made and os.path.isdir(path) and not os.listdir(path):
                os.rmdir(path)
            raise
    finally:
        os.close(fd)
