"""Figures without pyplot: one helper that every plot in the package uses.

``matplotlib.figure.Figure`` objects draw with the Agg canvas on ``savefig`` and never touch
pyplot's global state or the user's backend, so plotting from a notebook or a GUI session is
unaffected (no ``matplotlib.use("Agg")`` inside the library) and nothing needs closing.
"""
__all__ = ["subplots"]


def subplots(nrows=1, ncols=1, figsize=None, **kw):
    """``(fig, axes)`` like ``pyplot.subplots``, on a detached ``Figure``."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kw)
