r"""LaTeX for the package's SymPy expressions, with the symbols named as in the papers.

SymPy prints a symbol named ``sigma_w2`` as :math:`\sigma_{w2}` and ``eps`` as ``eps``; the
package's symbols keep plain identifiers (they are also argument names of generated code),
and :func:`latex` prints them as :math:`\sigma_w^2`, :math:`\epsilon`, ...
"""
__all__ = ["latex", "SYMBOL_LATEX"]

#: LaTeX of the package's symbol names where SymPy's default differs from the papers'
SYMBOL_LATEX = {"sigma_w2": r"\sigma_w^2", "sigma_a2": r"\sigma_a^2", "sigma2": r"\sigma^2",
                "eps": r"\epsilon", "lam": r"\lambda", "gamma": r"\gamma"}


def latex(expr, **settings):
    r"""``sympy.latex(expr)`` with :data:`SYMBOL_LATEX` applied, e.g.
    ``sigma_w2 -> \sigma_w^2``, ``eps -> \epsilon``.

    >>> import sympy as sp
    >>> latex(sp.Symbol("eps") * sp.Symbol("sigma_w2"))
    '\\epsilon \\sigma_w^2'

    Examples
    --------
    >>> import sympy as sp
    >>> from kernelphase.printing import latex
    >>> latex(sp.Symbol("sigma_w2") + sp.Symbol("eps"))
    '\\epsilon + \\sigma_w^2'
    """
    import sympy as sp
    names = {s: SYMBOL_LATEX[s.name] for s in getattr(expr, "free_symbols", ())
             if s.name in SYMBOL_LATEX}
    return sp.latex(expr, symbol_names=names, **settings)
