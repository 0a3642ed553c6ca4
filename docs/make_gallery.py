"""Regenerate the figures of the gallery page (``docs/gallery.md``).

Runs ``kernelphase reproduce NAME --quick --out docs/_static/gallery/NAME`` for every entry of
``kernelphase reproduce --list`` (or only the ones given with ``--only``), skipping entries
whose folder already holds a ``reproduce.json`` unless ``--force``. Each run is niced
(``nice -n 5``). Only the figures (PNG), ``reproduce.json`` and the folder's manifest
(``kernelphase-run.json``, which lets a later run write into the folder again) are kept: curve
files are removed so the committed gallery stays small.

Usage (from the repository root; about 15-30 minutes on 2 cores for all entries)::

    python docs/make_gallery.py                   # every entry not yet present
    python docs/make_gallery.py --only lyu-fig1b  # one entry (repeat --only for more)
    python docs/make_gallery.py --force           # rerun all

The gallery page reads the JSON files at build time, so rebuilding the docs after this script
shows the new numbers.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
GALLERY = HERE / "_static" / "gallery"
KEEP = ("reproduce.json", "kernelphase-run.json")   # and the PNG figures
MAX_PNG_BYTES = 400_000


def entries():
    """Names of the reproduce entries, in the order of ``kernelphase reproduce --list``."""
    from kernelphase.cli.reproduce import FIGURES
    return list(FIGURES)


def _shrink(png):
    """Re-save an oversized PNG at a smaller size (keeps the committed gallery small)."""
    if png.stat().st_size <= MAX_PNG_BYTES:
        return
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    img = mpimg.imread(png)
    h, w = img.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    fig.figimage(img)
    fig.savefig(png, dpi=60)
    plt.close(fig)


def run(name, force=False):
    out = GALLERY / name
    if (out / "reproduce.json").is_file() and not force:
        print(f"{name}: present, skipped", flush=True)
        return 0
    if out.exists():
        shutil.rmtree(out)
    cmd = ["nice", "-n", "5", sys.executable, "-m", "kernelphase", "reproduce", name,
           "--quick", "--out", str(out)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(f"{name}: exit {proc.returncode} in {time.time() - t0:.0f} s", flush=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        sys.stdout.write(proc.stderr[-3000:])
        return proc.returncode
    for f in out.iterdir():
        if f.is_dir():
            shutil.rmtree(f)
        elif f.suffix == ".png":
            _shrink(f)
        elif f.name not in KEEP:
            f.unlink()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this entry (repeatable)")
    p.add_argument("--force", action="store_true", help="rerun entries already present")
    args = p.parse_args(argv)
    names = entries()
    todo = args.only or names
    unknown = [n for n in todo if n not in names]
    if unknown:
        p.error(f"--only={unknown[0]!r} is not a reproduce entry; valid: {', '.join(names)}")
    GALLERY.mkdir(parents=True, exist_ok=True)
    failed = [n for n in todo if run(n, force=args.force) != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
