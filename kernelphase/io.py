"""Atomic file output and provenance records.

Every file a run writes goes to a temporary file in the same directory, is
flushed and fsynced, then moved into place with ``os.replace``: a killed run
leaves either the old file or the new one, never a torn one.
"""
import io
import json
import os
import sys
import tempfile
import time

import numpy as np

from .results import jsonable

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_savez", "load_npz", "write_csv", "provenance", "savefig_atomic"]


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temp file + ``os.replace``)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n")


def atomic_savez(path, **arrays):
    """``numpy.savez`` written atomically; values may be arrays or JSON-able objects."""
    buf = io.BytesIO()
    packed = {}
    for k, v in arrays.items():
        if isinstance(v, (dict, list, str)) or v is None:
            packed["__json__" + k] = np.frombuffer(
                json.dumps(jsonable(v)).encode(), dtype=np.uint8)
        else:
            packed[k] = np.asarray(v)
    np.savez(buf, **packed)
    atomic_write_bytes(path, buf.getvalue())


def load_npz(path):
    """Inverse of :func:`atomic_savez`: a dict of arrays and JSON objects."""
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            if k.startswith("__json__"):
                out[k[8:]] = json.loads(z[k].tobytes().decode())
            else:
                out[k] = z[k]
    return out


def write_csv(path, header, rows):
    """Write a CSV atomically from a header list and an iterable of rows."""
    lines = [",".join(header)]
    for r in rows:
        lines.append(",".join(repr(float(x)) if isinstance(x, (float, np.floating))
                              else str(x) for x in r))
    atomic_write_text(path, "\n".join(lines) + "\n")


def savefig_atomic(fig, path, **kw):
    """Save a matplotlib figure atomically."""
    buf = io.BytesIO()
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, **kw)
    atomic_write_bytes(path, buf.getvalue())


def provenance(params, seed=None):
    """Record of what made an output: parameters, seed, package version, time."""
    from . import __version__
    rec = {"kernelphase_version": __version__, "parameters": jsonable(params),
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "python": sys.version.split()[0], "numpy": np.__version__}
    if seed is not None:
        rec["seed"] = seed
    return rec
