"""Files: atomic writes, checked output paths, staged output folders, provenance and the
one checkpoint backend of every resumable run.

* Every file goes to a temporary file in its folder, is fsynced and moved into place with
  ``os.replace``: a killed run leaves the old file or the new one, never a torn one. Files get
  the usual permissions (``0666 & ~umask``), not ``mkstemp``'s 0600.
* :func:`check_output_file` / :func:`check_output_dir` are called before any work starts, so a
  bad ``--out`` or ``--plot`` fails at once with one line, not after an hour's run.
* :func:`staged_dir` builds a folder of outputs beside its target and moves it into place
  only when complete: a failure leaves nothing behind.
* :class:`RunDir` is the checkpoint backend: a manifest holding the run's key (every
  parameter that determines the result, seed included), a lock that keeps a second run out,
  and atomic ``.npz`` state files in which NaN survives the round trip.
"""
import contextlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from .results import jsonable

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_savez", "load_npz", "write_csv", "provenance", "savefig_atomic",
           "check_output_file", "check_output_dir", "staged_dir", "RunDir", "versions"]

_MANIFEST = "kernelphase-run.json"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temp file + ``os.replace``).

    Examples
    --------
    >>> from kernelphase.io import atomic_write_bytes
    >>> atomic_write_bytes("data.bin", b"abc")
    >>> open("data.bin", "rb").read()
    b'abc'
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    r"""Write the string ``text`` to ``path`` atomically (UTF-8; see :func:`atomic_write_bytes`).

    Examples
    --------
    >>> from kernelphase.io import atomic_write_text
    >>> atomic_write_text("note.txt", "u_c = 30.67\n")
    >>> open("note.txt").read()
    'u_c = 30.67\n'
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj):
    r"""Write ``obj`` as JSON to ``path`` atomically, after
    :func:`kernelphase.results.jsonable` (numpy scalars and arrays, tuples, dataclasses).

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from kernelphase.io import atomic_write_json
    >>> atomic_write_json("result.json", {"u_c": np.float64(30.67), "phases": ("GFL", "GMFL-I")})
    >>> json.load(open("result.json"))
    {'phases': ['GFL', 'GMFL-I'], 'u_c': 30.67}
    """
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n")


def _keep_nan(obj):
    """Like :func:`jsonable`, but keeps NaN and inf (JSON's NaN/Infinity round-trip)."""
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, dict):
        return {str(k): _keep_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_keep_nan(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _keep_nan(obj.tolist())
    return jsonable(obj)


def atomic_savez(path, **arrays):
    """``numpy.savez`` written atomically; values may be arrays or JSON-able objects
    (NaN and inf inside those survive :func:`load_npz`).

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.io import atomic_savez, load_npz
    >>> atomic_savez("state.npz", W=np.eye(2), meta={"step": 10, "loss": float("nan")})
    >>> d = load_npz("state.npz")
    >>> d["W"].tolist(), d["meta"]["step"], d["meta"]["loss"]
    ([[1.0, 0.0], [0.0, 1.0]], 10, nan)
    """
    buf = io.BytesIO()
    packed = {}
    for k, v in arrays.items():
        if isinstance(v, (dict, list, str)) or v is None:
            packed["__json__" + k] = np.frombuffer(
                json.dumps(_keep_nan(v)).encode(), dtype=np.uint8)
        else:
            packed[k] = np.asarray(v)
    np.savez(buf, **packed)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path):
    """Inverse of :func:`atomic_savez`: a dict of arrays and JSON objects.

    Examples
    --------
    >>> import numpy as np
    >>> from kernelphase.io import atomic_savez, load_npz
    >>> atomic_savez("run.npz", x=np.arange(3), info={"seed": 0})
    >>> sorted(load_npz("run.npz")), load_npz("run.npz")["x"].tolist()
    (['info', 'x'], [0, 1, 2])
    """
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            if k.startswith("__json__"):
                out[k[8:]] = json.loads(z[k].tobytes().decode())
            else:
                out[k] = z[k]
    return out


def write_csv(path, header, rows):
    """Write a CSV atomically from a header list and an iterable of rows.

    Examples
    --------
    >>> from kernelphase.io import write_csv
    >>> write_csv("curve.csv", ["step", "loss"], [(0, 1.0), (10, 0.5)])
    >>> print(open("curve.csv").read().strip())
    step,loss
    0,1.0
    10,0.5
    """
    lines = [",".join(header)]
    for r in rows:
        lines.append(",".join(repr(float(x)) if isinstance(x, (float, np.floating))
                              else str(x) for x in r))
    atomic_write_text(path, "\n".join(lines) + "\n")


def savefig_atomic(fig, path, **kw):
    """Save a matplotlib figure atomically (``format`` from the extension unless given).

    Examples
    --------
    >>> import os
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from kernelphase.io import savefig_atomic
    >>> fig, ax = plt.subplots(figsize=(2, 2))
    >>> _ = ax.plot([0, 1], [1, 0])
    >>> savefig_atomic(fig, "line.png", dpi=50)
    >>> plt.close(fig)
    >>> os.path.getsize("line.png") > 0
    True
    """
    buf = io.BytesIO()
    fmt = kw.pop("format", None) or os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **kw)
    atomic_write_bytes(path, buf.getvalue())


def versions():
    """Versions of kernelphase, Python and the numerical libraries that made a result.

    Examples
    --------
    >>> from kernelphase.io import versions
    >>> sorted(versions())
    ['kernelphase', 'numba', 'numpy', 'python', 'scipy', 'sympy']
    """
    from importlib.metadata import PackageNotFoundError, version
    from . import __version__
    out = {"kernelphase": __version__, "python": sys.version.split()[0]}
    for pkg in ("numpy", "scipy", "sympy", "numba"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def provenance(params, seed=None):
    """Record of what made an output: parameters, seed, versions, time.

    Examples
    --------
    >>> from kernelphase.io import provenance
    >>> rec = provenance({"eps": -0.3}, seed=0)
    >>> rec["parameters"], rec["seed"], sorted(rec["versions"])
    ({'eps': -0.3}, 0, ['kernelphase', 'numba', 'numpy', 'python', 'scipy', 'sympy'])
    """
    from . import __version__
    rec = {"kernelphase_version": __version__, "parameters": jsonable(params),
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(),
           "python": sys.version.split()[0], "numpy": np.__version__}
    if seed is not None:
        rec["seed"] = seed
    return rec


# --------------------------------------------------------------------------- output paths

def _probe_writable(folder, option, path):
    """Create and remove a file in ``folder`` (root passes os.access, not /proc)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ValueError(f"{option}={path!r} is not writable ({exc.strerror or exc})") from None


def _existing_ancestor(path):
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder


def check_output_file(path, option="--plot", suffixes=None):
    """Check, before any work, that ``path`` can receive an output file.

    It must be a non-empty path that is not a folder, whose nearest existing parent is a
    writable folder; an existing regular file is replaced. ``suffixes`` (e.g. ``(".png",
    ".pdf")``) restricts the extension. Returns the path as a string.

    Examples
    --------
    >>> from kernelphase.io import check_output_file
    >>> check_output_file("figure.png", "--plot", suffixes=(".png", ".pdf")).endswith("figure.png")
    True
    >>> check_output_file("figure.txt", "--plot", suffixes=(".png", ".pdf"))
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    if path is None or not str(path).strip():
        raise ValueError(f"{option}={path!r} is empty; give a file name")
    path = os.fspath(path)
    if os.path.isdir(path) or path.endswith(os.sep):
        raise ValueError(f"{option}={path!r} is a folder; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{option}={path!r} exists and is not a regular file")
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise ValueError(f"{option}={path!r} must end in one of {', '.join(suffixes)}")
    folder = _existing_ancestor(path)
    if not os.path.isdir(folder):
        raise ValueError(f"{option}={path!r}: {folder!r} is not a folder")
    _probe_writable(folder, option, path)
    return path


def check_output_dir(path, option="--out", resumable=False):
    """Check, before any work, that ``path`` can receive a folder of outputs.

    It must not be a file, and an existing non-empty folder must be one that kernelphase
    made (it holds the run manifest, or, for non-resumable outputs, only files a previous
    run of kernelphase wrote, which are replaced). Returns the path as a string.

    Examples
    --------
    >>> import os
    >>> from kernelphase.io import check_output_dir
    >>> check_output_dir("runs/new", "--out").endswith(os.path.join("runs", "new"))
    True
    >>> os.makedirs("theirs"); open(os.path.join("theirs", "a.txt"), "w").close()
    >>> check_output_dir("theirs", "--out")      # not empty, not written by kernelphase
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    if path is None or not str(path).strip():
        raise ValueError(f"{option}={path!r} is empty; give a folder name")
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{option}={path!r} is an existing file; give a folder name")
    if os.path.isdir(path):
        entries = [e for e in os.listdir(path) if not e.startswith(".")]
        if entries and not os.path.exists(os.path.join(path, _MANIFEST)):
            raise ValueError(f"{option}={path!r} is a non-empty folder that kernelphase did "
                             f"not make; choose a new or empty folder")
        _probe_writable(path, option, path)
    else:
        folder = _existing_ancestor(path + os.sep + "x")
        if not os.path.isdir(folder):
            raise ValueError(f"{option}={path!r}: {folder!r} is not a folder")
        _probe_writable(folder, option, path)
    return path


@contextlib.contextmanager
def staged_dir(path, manifest=None):
    """Yield a temporary sibling folder; on success move its files into ``path``.

    The manifest (a dict, e.g. the provenance) is written last, so a folder holding it is
    complete. On any exception the staging folder is removed and ``path`` is untouched
    (a folder this call created is removed again).

    Examples
    --------
    >>> import os
    >>> from kernelphase.io import staged_dir
    >>> with staged_dir("out") as stage:
    ...     open(os.path.join(stage, "a.txt"), "w").close()
    ...     os.path.exists("out")                   # nothing visible until the block succeeds
    False
    >>> os.listdir("out")
    ['a.txt']
    >>> try:
    ...     with staged_dir("failed") as stage:
    ...         raise RuntimeError("run failed")
    ... except RuntimeError:
    ...     pass
    >>> os.path.exists("failed")
    False
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.stage-")
    try:
        yield stage
        if manifest is not None:
            atomic_write_json(os.path.join(stage, _MANIFEST), manifest)
        if not os.path.exists(path):
            os.chmod(stage, 0o777 & ~_umask())
            os.rename(stage, path)
            return
        for name in sorted(os.listdir(stage), key=lambda n: n == _MANIFEST):
            os.replace(os.path.join(stage, name), os.path.join(path, name))
        os.rmdir(stage)
    finally:
        if os.path.exists(stage):
            shutil.rmtree(stage, ignore_errors=True)


# --------------------------------------------------------------------------- checkpoints

def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


class RunDir:
    """The checkpoint backend of a resumable run in folder ``path``.

    ``key`` holds every parameter that determines the result (seed included). Opening
    takes an exclusive lock (a second run on the same folder is refused), then:

    * a new or empty folder gets a manifest with the key;
    * a folder with a manifest is continued only with ``resume=True`` and an identical key;
      otherwise ``ValueError`` names the first parameter that differs.

    State files are written with :meth:`save` (atomic ``.npz``) and read with :meth:`load`.
    Use as a context manager; the lock is released on exit or when the process dies.
    """

    def __init__(self, path, key, resume=False, option="--out"):
        self.path = os.fspath(path)
        self.key = json.loads(json.dumps(_keep_nan(key)))
        self.resume = bool(resume)
        self.option = option
        self._lock = None

    def __enter__(self):
        import fcntl
        check_output_dir(self.path, self.option, resumable=True)
        os.makedirs(self.path, exist_ok=True)
        self._lock = open(os.path.join(self.path, ".lock"), "a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            self._lock = None
            raise ValueError(f"{self.option}={self.path!r} is in use by another running "
                             f"kernelphase process; wait for it or choose another folder") from None
        try:
            self._check_manifest()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _check_manifest(self):
        mpath = os.path.join(self.path, _MANIFEST)
        if not os.path.exists(mpath):
            atomic_write_text(mpath, json.dumps({"key": self.key, "versions": versions()},
                                                indent=2, sort_keys=True) + "\n")
            return
        with open(mpath) as fh:
            old = json.load(fh).get("key", {})
        if not self.resume:
            raise ValueError(f"{self.option}={self.path!r} holds an earlier run; pass --resume "
                             f"to continue it, or choose another folder")
        for name in sorted(set(old) | set(self.key)):
            a, b = old.get(name, "<unset>"), self.key.get(name, "<unset>")
            if not _same(a, b):
                raise ValueError(f"--resume: parameter {name}={b!r} differs from the run in "
                                 f"{self.path!r} ({name}={a!r}); use the same parameters or "
                                 f"another folder")

    def __exit__(self, *exc):
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        return False

    def file(self, name):
        """Path of state file ``name`` inside the run folder."""
        return os.path.join(self.path, name)

    def save(self, name, **state):
        """Atomically write ``state`` (arrays and JSON-able values) to ``name``."""
        atomic_savez(self.file(name), **state)

    def load(self, name):
        """The state saved under ``name`` when resuming, else None."""
        p = self.file(name)
        return load_npz(p) if (self.resume and os.path.exists(p)) else None
