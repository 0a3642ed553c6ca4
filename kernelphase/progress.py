"""Progress bars on stderr (tqdm), off when asked or when stderr is not a terminal."""
import sys

__all__ = ["progress"]


def progress(iterable=None, total=None, desc=None, enabled=None):
    """Wrap ``iterable`` in a tqdm bar on stderr.

    ``enabled=None`` shows the bar only when stderr is a terminal; ``True``
    forces it (the CLI's long runs), ``False`` silences it (tests, library use).

    Examples
    --------
    >>> from kernelphase.progress import progress
    >>> sum(progress(range(5), enabled=False))
    10
    """
    from tqdm.auto import tqdm
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, leave=False)
