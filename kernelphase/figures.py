r"""Figures: one style, one symbol table and one writer for every plot in the package.

* No pyplot. ``matplotlib.figure.Figure`` objects draw with the Agg canvas on ``savefig`` and
  never touch pyplot's global state or the user's backend, so plotting from a notebook or a GUI
  session is unaffected (no ``matplotlib.use("Agg")`` inside the library) and nothing needs
  closing. :func:`subplots` makes them, with constrained layout.
* One style. :func:`style` is an ``rc_context`` (serif STIX text and math, 8-11 pt type,
  inward ticks on four sides, the colour-blind-safe palette of Okabe & Ito 2008);
  :func:`styled` wraps a plot function in it, because matplotlib reads most settings when an
  artist is made, some only when it is drawn.
* One name per quantity. :func:`symbol` and :func:`label` give the mathtext of the quantities
  we plot (:math:`\sigma^2`, :math:`u`, :math:`b`, :math:`\Phi^*`, ...), with the words or unit an
  axis needs; :func:`param_text` and :func:`legend` name the parameters of a figure.
* Physics marks. :func:`mark_transition` draws the first-order point (solid) and the spinodals
  (dashed), labelled for the legend; :func:`with_gaps` puts NaN where a solver did not
  converge, so a curve breaks there and never interpolates over a failure.
* One writer. :func:`save` honours the extension (``.png .pdf .svg .eps``), writes atomically
  and stores the parameters and the package versions in the file's metadata.
"""
import json
import math
import os
from functools import wraps

from .printing import SYMBOL_LATEX

__all__ = ["subplots", "style", "styled", "symbol", "label", "param_text", "legend",
           "mark_transition", "with_gaps", "save", "COLOURS", "SYMBOLS", "LABELS", "FORMATS"]

#: Okabe & Ito (2008) colour-blind-safe palette (yellow left out: too pale on white), black last
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

_RC = {
    "font.family": "STIXGeneral", "mathtext.fontset": "stix",
    "font.size": 10, "axes.labelsize": 11, "axes.titlesize": 10, "figure.titlesize": 11,
    "legend.fontsize": 8, "legend.title_fontsize": 8, "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "lines.linewidth": 1.5, "lines.markersize": 5, "axes.linewidth": 0.8,
    "errorbar.capsize": 2,
    "xtick.direction": "in", "ytick.direction": "in", "xtick.top": True, "ytick.right": True,
    "legend.frameon": True, "legend.framealpha": 1.0, "legend.edgecolor": "0.8",
    "legend.fancybox": False,
    "axes.formatter.use_mathtext": True, "axes.formatter.limits": (-3, 4),
    "image.cmap": "viridis", "pdf.fonttype": 42, "ps.fonttype": 42,
}

#: mathtext (without ``$``) of every quantity and parameter name we plot; the package's symbol
#: names as :data:`kernelphase.printing.SYMBOL_LATEX` prints them, plus the order parameters
SYMBOLS = {
    **SYMBOL_LATEX,
    "sigma2_c": r"\sigma^2_c", "u": "u", "u_c": "u_c", "u_spinodal": "u_s", "b": "b", "c": "c",
    "a": "a", "g": "g", "rho": r"\rho", "alpha": r"\alpha", "phi": r"\Phi", "phi_star": r"\Phi^*",
    "phi_plus": r"\Phi_+", "n": "n", "d": "d", "width": "N", "N": "N", "D": "D", "P": "P",
    "p": "p", "t": "t",
    "c3": "c_3", "learned_cubic": r"1-c/\epsilon",
}

#: axis labels: the symbol with the words or unit a reader needs (the symbol alone otherwise)
LABELS = {
    "sigma2": r"noise variance $\sigma^2$",
    "u": r"interaction $u=n^2\sigma_a^2/(\sigma^4dN)$",
    "b": r"linear discrepancy $b$",
    "c": r"cubic discrepancy $c$",
    "learned_cubic": r"learned cubic $1-c/\epsilon$",
    "phi": r"overlap $\Phi=w\cdot w^*$",
    "phi_star": r"droplet overlap $\Phi^*$",
    "droplet_fraction": "droplet fraction",
    "droplet_mass": r"droplet mass ($|\Phi|>0.5$)",
    "target_component": r"target component $1-|a|$",
    "action": r"action $\hat S(\Phi)=-\log p(\Phi)/d$",
    "minus_log_p": r"$-\log p(\Phi)$",
    "loss": "loss (MSE)",
    "mse": "test MSE",
    "accuracy": "accuracy",
    "time": r"Langevin time $t$ (steps $\times$ step size)",
    "steps": "step",
    "epoch": "epoch",
    "lam_t": r"$\lambda t$ (weight decay $\times$ time)",
    "width": r"width $N$",
    "eps": r"cubic coefficient $\epsilon$",
}

#: file formats :func:`save` writes, by extension
FORMATS = (".png", ".pdf", ".svg", ".eps")


def subplots(nrows=1, ncols=1, figsize=None, **kw):
    """``(fig, axes)`` like ``pyplot.subplots``, on a detached ``Figure`` with constrained layout.

    Parameters
    ----------
    nrows, ncols : int
        Grid of axes.
    figsize : tuple of float, optional
        Width and height in inches.
    **kw
        Passed to ``Figure.subplots`` (``sharex``, ``squeeze``, ...); ``layout`` to ``Figure``.

    Examples
    --------
    >>> fig, (a1, a2) = subplots(1, 2, figsize=(6, 3))
    >>> fig.get_layout_engine().__class__.__name__
    'ConstrainedLayoutEngine'
    """
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize, layout=kw.pop("layout", "constrained"))
    return fig, fig.subplots(nrows, ncols, **kw)


def style(**rc):
    """The package's matplotlib style as a context manager (``matplotlib.rc_context``).

    Parameters
    ----------
    **rc
        rcParams that override the style, with dots written as in matplotlib (pass a dict
        with ``**{"font.size": 12}``).

    Examples
    --------
    >>> import matplotlib
    >>> with style():
    ...     matplotlib.rcParams["mathtext.fontset"], matplotlib.rcParams["xtick.direction"]
    ('stix', 'in')
    """
    import matplotlib
    from cycler import cycler
    return matplotlib.rc_context({**_RC, "axes.prop_cycle": cycler(color=COLOURS), **rc})


def styled(plot):
    """Decorator: run a plot function inside :func:`style` (artists made and drawn in it).

    Examples
    --------
    >>> import matplotlib
    >>> @styled
    ... def show_font():
    ...     return matplotlib.rcParams["font.family"]
    >>> show_font()
    ['STIXGeneral']
    """
    @wraps(plot)
    def wrapper(*args, **kwargs):
        with style():
            return plot(*args, **kwargs)
    return wrapper


def _known(name, table):
    if name not in table:
        raise ValueError(f"name={name!r} is not one of {', '.join(sorted(table))}")


def symbol(name):
    r"""Mathtext of a quantity, ``$...$`` included: ``symbol("sigma2") == r"$\sigma^2$"``.

    Parameters
    ----------
    name : str
        A key of :data:`SYMBOLS` (package symbol names such as ``sigma_w2``, ``eps``, and the
        order parameters ``u``, ``b``, ``phi_star``, ...).

    Examples
    --------
    >>> symbol("sigma2"), symbol("phi_star"), symbol("sigma_w2")
    ('$\\sigma^2$', '$\\Phi^*$', '$\\sigma_w^2$')
    """
    _known(name, SYMBOLS)
    return f"${SYMBOLS[name]}$"


def label(name):
    r"""Axis label of a quantity: its symbol with the words or unit it needs.

    Parameters
    ----------
    name : str
        A key of :data:`LABELS` or of :data:`SYMBOLS` (then the bare symbol).

    Examples
    --------
    >>> label("b"), label("eps"), label("rho")
    ('linear discrepancy $b$', 'cubic coefficient $\\epsilon$', '$\\rho$')
    """
    if name in LABELS:
        return LABELS[name]
    _known(name, {**LABELS, **SYMBOLS})
    return symbol(name)


def param_text(params, names=None, fmt=".4g"):
    r"""The parameters of a figure as one line of mathtext, e.g. ``$\epsilon=-0.3$, ...``.

    Names in :data:`SYMBOLS` are printed as symbols, numbers in mathtext (``2e-06`` as
    :math:`2\times10^{-6}`); ``None`` values are left out.

    Parameters
    ----------
    params : Mapping
        Parameter name -> value.
    names : sequence of str, optional
        Which parameters, in order (all by default).
    fmt : str
        Format of numbers.

    Examples
    --------
    >>> param_text({"eps": -0.3, "sigma_w2": 0.5, "rho": 8 / 150, "n": None})
    '$\\epsilon=-0.3$, $\\sigma_w^2=0.5$, $\\rho=0.05333$'
    >>> param_text({"activation": "erf", "P": 401, "sigma_a2": 2e-6}, ["P", "sigma_a2"])
    '$P=401$, $\\sigma_a^2=2\\times10^{-6}$'
    """
    parts = []
    for k in params if names is None else names:
        v = params.get(k)
        if v is None:
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            mant, _, exp = format(v, fmt).partition("e")
            text = rf"{mant}\times10^{{{int(exp)}}}" if exp else mant
            parts.append(f"${SYMBOLS[k]}={text}$" if k in SYMBOLS else f"{k}=${text}$")
        else:
            parts.append(f"${SYMBOLS[k]}$={v}" if k in SYMBOLS else f"{k}={v}")
    return ", ".join(parts)


def legend(ax, params=None, names=None, **kw):
    r"""``ax.legend`` with the figure's parameters (:func:`param_text`) as its title.

    Returns the ``Legend``, or ``None`` when nothing on the axes has a label.

    Examples
    --------
    >>> fig, ax = subplots()
    >>> _ = ax.plot([0, 1], [0, 1], label="b")
    >>> legend(ax, {"eps": -0.3}).get_title().get_text()
    '$\\epsilon=-0.3$'
    """
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    title = param_text(params, names) if params else None
    return ax.legend(handles, labels, title=title or None, **kw)


def _finite(v):
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def mark_transition(ax, x_c, spinodals=(), name="u", label=None):
    r"""Mark a first-order transition on ``ax``: a solid vertical line at ``x_c`` and dashed ones
    at the spinodals, each labelled for the legend (``gid`` ``"transition"`` / ``"spinodal"``).

    Missing or non-finite positions (``None``, NaN) are skipped, so an unconverged
    transition draws nothing rather than a line in the wrong place.

    Parameters
    ----------
    ax : matplotlib Axes
    x_c : float or None
        The first-order point in the units of the x axis (:math:`u_c` or :math:`\sigma^2_c`).
    spinodals : sequence of float, or Mapping label -> float
        The spinodals; a Mapping gives each its own legend label.
    name : str
        The x quantity (a :data:`SYMBOLS` key): the label reads ``first-order $u_c$``.
    label : str, optional
        Legend label of the first-order line instead.

    Returns
    -------
    list of Line2D

    Examples
    --------
    >>> fig, ax = subplots()
    >>> lines = mark_transition(ax, 0.18, spinodals=[0.2, float("nan")], name="sigma2")
    >>> [ln.get_label() for ln in lines]
    ['first-order $\\sigma^2_c$', 'spinodal']
    """
    sym = SYMBOLS.get(name, name)
    lines = []
    if _finite(x_c):
        lines.append(ax.axvline(float(x_c), color="k", ls="-", lw=1.0, zorder=1,
                                label=label or f"first-order ${sym}_c$", gid="transition"))
    if not hasattr(spinodals, "items"):
        xs = [s for s in spinodals if _finite(s)]
        spinodals = {("spinodals" if len(xs) > 1 else "spinodal"): xs[0]} if xs else {}
        spinodals.update({f"_nolegend_{i}": s for i, s in enumerate(xs[1:])})
    dashes = ("--", "-.", (0, (5, 2, 1, 2, 1, 2)))
    shown = 0
    for lab, x in spinodals.items():
        if _finite(x):
            lines.append(ax.axvline(float(x), color="0.35", ls=dashes[shown % len(dashes)],
                                    lw=1.0, zorder=1, gid="spinodal", label=lab))
            shown += 1
    return lines


def with_gaps(x, y, converged):
    """``(x, y)`` as float arrays with ``y`` NaN wherever ``converged`` is False.

    matplotlib breaks a line at NaN, so a curve through solver output shows a gap at each
    failed point instead of a straight segment across it: a failure is drawn as a gap, not
    as data.

    Parameters
    ----------
    x : array_like, shape (n,)
    y : array_like, shape (n,) or (n, k)
    converged : array_like of bool, shape (n,)
        ``Result.converged`` of each point. Must be boolean: a status array (0 = converged)
        would mean the opposite, so integers are refused.

    Examples
    --------
    >>> x, y = with_gaps([1, 2, 3], [0.5, 0.7, 0.9], [True, False, True])
    >>> y
    array([0.5, nan, 0.9])
    """
    import numpy as np
    x = np.asarray(x, dtype=float)
    y = np.array(y, dtype=float)
    ok = np.asarray(converged)
    if ok.dtype != bool:
        raise ValueError(f"converged has dtype {ok.dtype}; give booleans (Result.converged), "
                         f"not statuses")
    if ok.ndim != 1 or len(ok) != len(x) or len(y) != len(x):
        raise ValueError(f"converged has shape {ok.shape}; x and y have lengths {len(x)} and "
                         f"{len(y)}: all must have the same length")
    y[~ok] = np.nan
    return x, y


def _metadata(fmt, params):
    """The file metadata of :func:`save`: a JSON description (kernelphase version, parameters,
    library versions) in the field each format has for it."""
    from . import __version__
    from .io import versions
    from .results import jsonable
    desc = json.dumps({"kernelphase": __version__, "parameters": jsonable(dict(params or {})),
                       "versions": versions()}, sort_keys=True, default=str)
    creator = f"kernelphase {__version__}"
    if fmt == "png":      # PNG text chunks
        return {"Software": creator, "Description": desc}
    if fmt == "pdf":      # document information dictionary
        keys = "; ".join(f"{k}={v}" for k, v in sorted(jsonable(dict(params or {})).items()))
        return {"Creator": creator, "Subject": desc, "Keywords": f"{creator}; {keys}"}
    if fmt == "svg":      # Dublin Core <metadata>
        return {"Creator": creator, "Description": desc}
    return {"Creator": f"{creator} {desc}"}   # eps: the one DSC comment matplotlib writes


def save(fig, path, params=None, dpi=150):
    r"""Write ``fig`` atomically, in the format of the extension, with its provenance.

    The metadata hold a JSON object ``{"kernelphase": version, "parameters": params,
    "versions": kernelphase.io.versions()}``: in a PNG text chunk ``Description``, in the PDF
    ``Subject`` (and ``Keywords``, ``Creator``), in the SVG ``<dc:description>``, in the EPS
    ``%%Creator`` comment.

    Parameters
    ----------
    fig : matplotlib Figure
    path : str or os.PathLike
        Ends in one of :data:`FORMATS` (any case).
    params : Mapping, optional
        The parameters that made the figure.
    dpi : float
        Resolution of raster output.

    Examples
    --------
    >>> import os, tempfile
    >>> fig, ax = subplots(figsize=(2, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "f.svg")
    >>> save(fig, path, {"eps": -0.3})
    >>> '"eps": -0.3' in open(path).read()
    True
    >>> save(fig, "f.jpg")
    Traceback (most recent call last):
    ...
    ValueError: path='f.jpg' has the extension '.jpg'; valid: .png, .pdf, .svg, .eps
    """
    from .io import savefig_atomic
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"path={path!r} has the extension {ext or '(none)'!r}; "
                         f"valid: {', '.join(FORMATS)}")
    if params is not None and not hasattr(params, "items"):
        raise ValueError(f"params={params!r} is not a mapping of parameter names to values")
    savefig_atomic(fig, path, format=ext[1:], metadata=_metadata(ext[1:], params), dpi=dpi)
