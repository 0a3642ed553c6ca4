r"""SymPy expression -> numba-compiled function, written as a real, cached module.

``lambdify`` builds its function with ``exec``, and numba cannot cache a function
made that way (numba/numba#3501). So, as in the style guide (Sec. 6):

1. ``sympy.cse`` the expressions, print each line with
   ``sympy.pycode(..., fully_qualified_modules=True)`` (``math.erf`` etc., which
   numba compiles; unprintable functions fail here, early);
2. write a module headed "generated from <hash>; do not edit" whose function is
   ``@njit(cache=True)``, every parameter an argument (numba freezes globals);
3. name the file by the hash of its source, write it atomically into the cache
   folder (``$KERNELPHASE_CACHE_DIR`` or ``~/.cache/kernelphase``), import it
   with ``importlib.util`` and register it in ``sys.modules`` before executing,
   so that later processes load numba's on-disk cache instead of recompiling.

Examples
--------
>>> import sympy as sp
>>> x, a = sp.symbols("x a")
>>> f = numba_function(a * sp.erf(x), (x, a))
>>> round(f(0.5, 2.0), 12) == round(2 * 0.5204998778130465, 12)
True
"""
import hashlib
import importlib.util
import os
import sys

from .io import atomic_write_text

__all__ = ["numba_function", "generated_source", "specialised_module", "memoised_text",
           "source_hash", "function_pointer", "module_from_source", "cache_dir"]

_LOADED = {}


def cache_dir():
    """Folder holding generated modules (and, beside them, numba's cache).

    Examples
    --------
    >>> import os
    >>> from kernelphase.codegen import cache_dir
    >>> os.path.isdir(cache_dir())
    True
    """
    root = os.environ.get("KERNELPHASE_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "kernelphase")
    path = os.path.join(root, "codegen")
    os.makedirs(path, exist_ok=True)
    return path


def _printable_name(sym):
    name = str(sym)
    if not name.isidentifier():
        raise ValueError(f"argument name {name!r} is not a Python identifier")
    return name


def generated_source(exprs, args, name="f"):
    """Source text of the numba module for ``exprs`` with arguments ``args``.

    ``exprs`` is one SymPy expression (the function returns a float) or a
    tuple/list of them (the function returns a tuple).

    Examples
    --------
    >>> import sympy as sp
    >>> from kernelphase.codegen import generated_source
    >>> x = sp.Symbol("x")
    >>> src, key = generated_source(x**2 + 1, (x,), name="g")
    >>> print(src[src.index("@njit"):].replace(chr(34), ""))   # without the docstring quotes
    @njit(cache=True)
    def g(x):
        x^{2} + 1
        x = float(x)
        return x**2 + 1
    """
    import sympy as sp
    from .parse import as_sympy
    single = not isinstance(exprs, (list, tuple))
    names = {str(a): a for a in args}
    exprs = [as_sympy(e, "exprs", variables=names, params=None)
             for e in ([exprs] if single else exprs)]
    arg_names = [_printable_name(a) for a in args]
    free = set().union(*(e.free_symbols for e in exprs))
    missing = sorted(str(s) for s in free if str(s) not in arg_names)
    if missing:
        raise ValueError(f"expression has free symbols {missing} that are not in args={arg_names}")
    reps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_x"), optimizations="basic")
    body = []
    for sym, e in reps:
        body.append(f"    {sym} = {sp.pycode(e, fully_qualified_modules=True, strict=True)}")
    outs = [sp.pycode(e, fully_qualified_modules=True, strict=True) for e in reduced]
    ret = outs[0] if single else "(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")"
    latex = "; ".join(sp.latex(e) for e in exprs).replace("\\", "\\\\").replace('"""', "")
    # arguments are scalars: convert to float so that an integer argument never turns a
    # negative power such as D**-2 into integer arithmetic inside numba
    floats = [f"    {a} = float({a})" for a in arg_names]
    src = ["import math", "from numba import njit", "", "",
           "@njit(cache=True)", f"def {name}({', '.join(arg_names)}):",
           f'    """{latex}"""', *floats, *body, f"    return {ret}", ""]
    text = "\n".join(src)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return f"# generated from {digest} by kernelphase.codegen; do not edit\n" + text, digest


def numba_function(exprs, args, name="f", recipe=None):
    """Compile SymPy expression(s) into a cached ``@njit`` function of ``args``.

    Parameters
    ----------
    exprs : sympy.Expr or sequence of sympy.Expr
        What to evaluate; a sequence gives a function returning a tuple.
    args : sequence of sympy.Symbol
        Positional arguments of the compiled function, in order. Every free
        symbol of ``exprs`` must be among them.
    name : str
        Function name inside the generated module.
    recipe : tuple of str, optional
        Everything the expressions depend on (see :func:`memoised_text`); then ``exprs`` may
        be a callable returning them, and a later process skips the SymPy work entirely.

    Returns
    -------
    numba.core.registry.CPUDispatcher
        Callable from Python and from other ``@njit`` code (hot loops).

    Examples
    --------
    >>> import sympy as sp
    >>> from kernelphase.codegen import numba_function
    >>> x, y = sp.symbols("x y")
    >>> f = numba_function(x**2 + sp.sin(y), (x, y))
    >>> round(f(3.0, 0.0), 12)
    9.0
    """
    build = lambda: generated_source(exprs() if callable(exprs) else exprs, args, name)[0]
    text = build() if recipe is None else memoised_text(("numba_function", name) + tuple(recipe),
                                                        build)
    return getattr(_load(text), name)


def function_pointer(dispatcher):
    """A first-class numba function for a dispatcher compiled with one explicit signature,
    its address resolved once (numba's wrapper address protocol).

    Passed to ``@njit`` code whose argument is typed ``FunctionType(signature)``, it is
    called through a pointer: the calling kernel is compiled once for every such function.
    Passing the dispatcher itself works too but looks the address up on every call
    (about 0.2 ms each).

    Examples
    --------
    >>> from numba import njit, types
    >>> from kernelphase.codegen import function_pointer
    >>> @njit(types.float64(types.float64))
    ... def square(x):
    ...     return x * x
    >>> f = function_pointer(square)
    >>> @njit
    ... def apply(g, x):
    ...     return g(x) + 1.0
    >>> apply(f, 3.0), f(2.0)
    (10.0, 4.0)
    """
    from numba.core import types

    (sig,) = dispatcher.nopython_signatures
    cres = dispatcher.get_compile_result(sig)
    addr = cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name)

    class _Pointer(types.WrapperAddressProtocol):
        def __wrapper_address__(self):
            return addr

        def signature(self):
            return sig

        def __call__(self, *args):
            return dispatcher(*args)

        def __repr__(self):
            return f"<function pointer {dispatcher.__name__}{sig}>"

    ptr = _Pointer()
    ptr.dispatcher = dispatcher  # keeps the compiled library alive
    return ptr


def source_hash(*modules):
    """Hash of the source files of ``modules``: put it in a recipe, so that editing the
    code that builds a formula invalidates what was memoised from it.

    Examples
    --------
    >>> import kernelphase.gaussian
    >>> from kernelphase.codegen import source_hash
    >>> h = source_hash(kernelphase.gaussian)
    >>> isinstance(h, str), h == source_hash(kernelphase.gaussian)
    (True, True)
    """
    h = hashlib.sha256()
    for mod in modules:
        with open(mod.__file__, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:20]


def memoised_text(recipe, build):
    """``build()`` (a str), computed once per ``recipe`` and kept in the cache folder.

    ``recipe`` is a tuple of strings naming everything the text depends on (the inputs'
    ``srepr``, :func:`source_hash` of the modules that derive it, the SymPy version). This
    spares each new process the SymPy derivation behind a generated module (seconds), so
    that a cached kernel loads in milliseconds.

    Examples
    --------
    >>> from kernelphase.codegen import memoised_text
    >>> calls = []
    >>> def build():
    ...     calls.append(1)
    ...     return "x**2 + 1"
    >>> memoised_text(("doctest-memo", 1), build), memoised_text(("doctest-memo", 1), build)
    ('x**2 + 1', 'x**2 + 1')
    >>> len(calls) <= 1
    True
    """
    import sympy
    key = repr(tuple(recipe) + (sympy.__version__,))
    path = os.path.join(cache_dir(), f"recipe_{hashlib.sha256(key.encode()).hexdigest()[:20]}.txt")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        text = build()
        atomic_write_text(path, text)
        return text


def specialised_module(template, header):
    """Module made of ``header`` (source lines defining the template's free globals) followed
    by the text of the template file ``template``, cached like :func:`numba_function`.

    This is how a numba kernel is specialised on a compiled function (an activation's
    moments, say) and still cached on disk: the function is a global of the generated module,
    not an argument (numba cannot cache a function that takes a dispatcher argument). Modules
    that ``header`` imports by their ``kernelphase_generated_*`` name must be loaded first.

    Examples
    --------
    >>> from kernelphase.codegen import specialised_module
    >>> with open("template.py", "w") as fh:
    ...     _ = fh.write("def twice_scale(x):\\n    return 2 * SCALE * x\\n")
    >>> mod = specialised_module("template.py", "SCALE = 3")
    >>> mod.twice_scale(1.5)
    9.0
    """
    with open(template, encoding="utf-8") as fh:
        body = fh.read()
    return module_from_source(
        f"{header.rstrip()}\n\n# ---- template {os.path.basename(template)}\n{body}")


def module_from_source(text):
    """Import generated source ``text`` as a module, written once into :func:`cache_dir`
    under a name hashed from the text and registered in ``sys.modules`` before it runs, so
    that numba's ``cache=True`` works for its functions.

    Examples
    --------
    >>> from kernelphase.codegen import module_from_source
    >>> mod = module_from_source("def twice(x):\\n    return 2 * x\\n")
    >>> mod.twice(21)
    42
    """
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    return _load(f"# generated from {digest} by kernelphase.codegen; do not edit\n" + text)


def _load(text):
    """Import the module with source ``text``, written once and named by the digest on its
    first line (``# generated from <digest> ...``)."""
    digest = text.split(None, 4)[3]
    modname = f"kernelphase_generated_{digest}"
    if modname in _LOADED:
        return _LOADED[modname]
    path = os.path.join(cache_dir(), modname + ".py")
    if not os.path.exists(path):
        atomic_write_text(path, text)
    mod = sys.modules.get(modname)
    if mod is None:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[modname] = mod  # before exec: numba's cache locator needs it
        spec.loader.exec_module(mod)
    _LOADED[modname] = mod
    return mod
