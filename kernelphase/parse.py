r"""The one expression language of the package: a whitelisting formula parser.

Every option or argument that takes a formula (an activation, a kernel, a parameter value)
goes through :func:`parse_formula` or :func:`parse_number`. User text is never evaluated:
it is parsed with ``ast.parse(text, mode="eval")`` and the tree is walked node by node,
building SymPy objects from an allow-list (STYLE.md, Sec. 10). ``sympify``, ``parse_expr``,
``eval`` and ``exec`` are never applied to user text.

Grammar
-------
* numbers: ``int`` and ``float`` literals (``3``, ``0.25``, ``1e-3``), turned into exact
  rationals (``0.25`` becomes ``1/4``); no complex, string, bytes or boolean literals;
* names: the variables (usually ``z``), the allowed parameter names, the constants
  ``pi`` and ``E``;
* operators: unary ``+ -`` and binary ``+ - * / **``;
* calls ``f(x)`` with one positional argument to a function of ``functions``
  (default :data:`DEFAULT_FUNCTIONS`: ``erf, exp, sqrt, tanh, sin, cos, log, abs, relu,
  sigmoid``).

Bounds, checked before anything is built, so that no input can hang the parser: text of at
most :data:`MAX_LENGTH` printable ASCII characters, at most :data:`MAX_NODES` tree nodes, nesting
depth at most :data:`MAX_DEPTH`, literals finite with :math:`|x|\le 10^{12}`, exponents numeric
literals :math:`p/q` with :math:`|p/q|\le 16` and :math:`q\le 16` (``z**3``, ``z**(1/2)``,
``z**-2``), total polynomial degree at most :data:`MAX_DEGREE` and exact numbers of at most
:data:`MAX_BITS` bits. So ``9**9**9`` and ``z**(10**10)`` are refused in microseconds.

Every rejection is a ``ValueError`` with one line naming the option, its value and what is
allowed, e.g. ``activation='z.real' is not allowed: attribute access '.real' (allowed: ...)``.

Examples
--------
>>> parse_formula("z + eps*z**2/2", params=("eps",))
eps*z**2/2 + z
>>> parse_number("1/3")
0.3333333333333333
"""
import ast
import math
import numbers
import types
import warnings
from fractions import Fraction

__all__ = ["parse_formula", "parse_number", "as_sympy", "DEFAULT_FUNCTIONS", "CONSTANTS",
           "MAX_LENGTH", "MAX_NODES", "MAX_DEPTH", "MAX_LITERAL", "MAX_EXPONENT",
           "MAX_DEGREE", "MAX_BITS", "RESERVED"]

MAX_LENGTH = 500        # characters of text
MAX_NODES = 200         # AST nodes (operators and contexts not counted)
MAX_DEPTH = 30          # nesting depth of the tree
MAX_LITERAL = 1e12      # |numeric literal|
MAX_EXPONENT = 16       # |exponent| and its denominator
MAX_DEGREE = 32         # bound on the total degree in the variables and parameters
MAX_BITS = 1024         # bound on the size of exact numbers built from literals


def _sympy_function(attr):
    def build(x):
        import sympy as sp
        return getattr(sp, attr)(x)
    build.__name__ = attr
    return build


def _relu(x):
    import sympy as sp
    return sp.Max(sp.Integer(0), x)


def _sigmoid(x):
    import sympy as sp
    return 1 / (1 + sp.exp(-x))


#: Functions of one argument that a formula may call: name -> builder of the SymPy object.
DEFAULT_FUNCTIONS = types.MappingProxyType({
    "erf": _sympy_function("erf"),
    "exp": _sympy_function("exp"),
    "sqrt": _sympy_function("sqrt"),
    "tanh": _sympy_function("tanh"),
    "sin": _sympy_function("sin"),
    "cos": _sympy_function("cos"),
    "log": _sympy_function("log"),
    "abs": _sympy_function("Abs"),
    "cosh": _sympy_function("cosh"),
    "sinh": _sympy_function("sinh"),
    "erfc": _sympy_function("erfc"),
    "atan": _sympy_function("atan"),
    "relu": _relu,
    "sigmoid": _sigmoid,
})

#: Named constants: name -> attribute of ``sympy``.
CONSTANTS = types.MappingProxyType({"pi": "pi", "E": "E"})

_NODE_NAMES = {
    ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
    ast.ListComp: "comprehension", ast.SetComp: "comprehension", ast.DictComp: "comprehension",
    ast.GeneratorExp: "generator expression", ast.Compare: "comparison",
    ast.BoolOp: "boolean operator", ast.IfExp: "conditional expression",
    ast.NamedExpr: "assignment expression", ast.Starred: "starred argument",
    ast.keyword: "keyword argument", ast.List: "list", ast.Tuple: "tuple", ast.Set: "set",
    ast.Dict: "dict", ast.JoinedStr: "f-string", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield", ast.Slice: "slice", ast.FormattedValue: "f-string",
}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_NOT_COUNTED = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def _short(text, width=80):
    """``repr`` of ``text``, shortened to about ``width`` characters (one line)."""
    if isinstance(text, str) and len(text) > width:
        return repr(text[:width - 3]) + "..."
    return repr(text)


class _Formula:
    """One parse: the text, the allow-lists and the error messages."""

    def __init__(self, text, variables, params, functions, name):
        self.text, self.src, self.name, self.functions = text, text, name, functions
        self.variables = variables          # name -> sympy Symbol
        self.params = params                # None: any identifier; else name -> Symbol

    # -- messages ---------------------------------------------------------------------------
    def allowed(self):
        parts = ["numbers"]
        if self.variables:
            parts.append(", ".join(self.variables))
        if self.params is None:
            parts.append("parameter names such as eps")
        elif self.params:
            parts.append("parameters " + ", ".join(self.params))
        parts.append("constants " + ", ".join(CONSTANTS))
        parts.append("+ - * / **")
        if self.functions:
            parts.append("functions " + ", ".join(self.functions))
        return ", ".join(parts)

    def reject(self, what):
        what = " ".join(str(what).split())
        return ValueError(f"{self.name}={_short(self.text)} is not allowed: {what} "
                          f"(allowed: {self.allowed()})")

    def segment(self, node):
        seg = ast.get_source_segment(self.src, node) or type(node).__name__
        return _short(seg, 40)

    # -- checks before building -------------------------------------------------------------
    def check_size(self, tree):
        count, stack = 0, [(tree, 0)]
        while stack:
            node, depth = stack.pop()
            if isinstance(node, _NOT_COUNTED):
                continue
            count += 1
            if count > MAX_NODES:
                raise self.reject(f"more than {MAX_NODES} terms")
            if depth > MAX_DEPTH:
                raise self.reject(f"nesting deeper than {MAX_DEPTH} levels")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    # -- building ---------------------------------------------------------------------------
    def literal(self, node):
        """Exact value (Fraction) of a numeric literal; rejects every other constant."""
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            kind = {str: "string literal", bytes: "bytes literal", complex: "complex literal",
                    bool: "boolean literal"}.get(type(v), "literal")
            raise self.reject(f"{kind} {self.segment(node)}")
        if not (math.isfinite(v) and abs(v) <= MAX_LITERAL):
            raise self.reject(f"number {self.segment(node)} (literals must be finite with "
                              f"|x| <= {MAX_LITERAL:g})")
        if isinstance(v, int):
            return Fraction(v)
        src = (ast.get_source_segment(self.src, node) or repr(v)).replace("_", "")
        try:
            return Fraction(src)
        except (ValueError, ZeroDivisionError):  # pragma: no cover - Python float syntax
            return Fraction(repr(v))

    def exponent(self, node):
        """The exponent of ``**``: a numeric literal p/q, |p/q| <= 16, q <= 16."""
        value = self.signed_ratio(node, top=True)
        if abs(value) > MAX_EXPONENT or value.denominator > MAX_EXPONENT:
            raise self.reject(f"exponent {self.segment(node)} (exponents must satisfy "
                              f"|p/q| <= {MAX_EXPONENT} with denominator q <= {MAX_EXPONENT})")
        return value

    def signed_ratio(self, node, top=False):
        """Exact value of ``[+-]number`` or ``[+-]int / [+-]int`` (an exponent), else reject."""
        sign = 1
        while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -sign if isinstance(node.op, ast.USub) else sign
            node = node.operand
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return sign * self.literal(node)
        if top and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            num = self.signed_ratio(node.left)
            den = self.signed_ratio(node.right)
            if num.denominator == den.denominator == 1:
                if den == 0:
                    raise self.reject(f"division by zero in exponent {self.segment(node)}")
                return sign * num / den
        raise self.reject(f"exponent {self.segment(node)} (exponents must be numbers "
                          f"such as 3, -2, 1/2 or 0.5)")

    def build(self, node):
        """SymPy object of ``node`` with its (degree, bits) size bound."""
        import sympy as sp
        if isinstance(node, ast.Expression):
            return self.build(node.body)
        if isinstance(node, ast.Constant):
            f = self.literal(node)
            bits = f.numerator.bit_length() + f.denominator.bit_length()
            return sp.Rational(f.numerator, f.denominator), 0, bits
        if isinstance(node, ast.Name):
            return self.name_value(node), 1, 1
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            x, deg, bits = self.build(node.operand)
            return (-x if isinstance(node.op, ast.USub) else x), deg, bits
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            if isinstance(node.op, ast.Pow):
                x, deg, bits = self.build(node.left)
                e = self.exponent(node.right)
                p = abs(e.numerator)
                deg, bits = deg * p, max(bits, 1) * p
                self.check_bounds(node, deg, bits)
                if x == 0 and e < 0:
                    raise self.reject(f"division by zero in {self.segment(node)}")
                return self.apply(node, lambda: x ** sp.Rational(e.numerator, e.denominator)), \
                    deg, bits
            a, da, ba = self.build(node.left)
            b, db, bb = self.build(node.right)
            if isinstance(node.op, (ast.Add, ast.Sub)):
                deg, bits = max(da, db), max(ba, bb) + 1
            else:
                deg, bits = da + db, ba + bb
            self.check_bounds(node, deg, bits)
            if isinstance(node.op, ast.Div) and b == 0:
                raise self.reject(f"division by zero in {self.segment(node)}")
            op = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                  ast.Div: lambda: a / b}[type(node.op)]
            return self.apply(node, op), deg, bits
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            sym = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&",
                   ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
            raise self.reject(f"operator {sym.get(type(node.op), '?')} in {self.segment(node)}")
        if isinstance(node, ast.UnaryOp):
            op = {ast.Not: "not", ast.Invert: "~"}.get(type(node.op), "?")
            raise self.reject(f"operator {op} in {self.segment(node)}")
        if isinstance(node, ast.Attribute):
            raise self.reject(f"attribute access {_short('.' + node.attr, 40)}")
        kind = _NODE_NAMES.get(type(node), f"{type(node).__name__} expression")
        raise self.reject(f"{kind} {self.segment(node)}")

    def check_bounds(self, node, deg, bits):
        if deg > MAX_DEGREE:
            raise self.reject(f"{self.segment(node)} has degree above {MAX_DEGREE}")
        if bits > MAX_BITS:
            raise self.reject(f"{self.segment(node)} builds numbers above 2**{MAX_BITS}")

    def apply(self, node, op):
        try:
            return op()
        except (TypeError, ValueError, ArithmeticError, AttributeError,
                NotImplementedError, RecursionError) as exc:
            raise self.reject(f"{self.segment(node)} cannot be built "
                              f"({type(exc).__name__})") from None

    def name_value(self, node):
        import sympy as sp
        n = node.id
        if n in self.variables:
            return self.variables[n]
        if n in CONSTANTS:
            return getattr(sp, CONSTANTS[n])
        if self.params is None:
            if _plain_identifier(n) and n not in self.functions:
                return sp.Symbol(n)
        elif n in self.params:
            return self.params[n]
        if n in self.functions:
            raise self.reject(f"function {n!r} used without an argument")
        raise self.reject(f"unknown name {_short(n, 40)}")

    def call(self, node):
        f = node.func
        if not isinstance(f, ast.Name):
            if isinstance(f, ast.Attribute):
                raise self.reject(f"attribute access {_short('.' + f.attr, 40)}")
            raise self.reject(f"call of {self.segment(f)}")
        if f.id not in self.functions:
            raise self.reject(f"function {_short(f.id, 40)}")
        if node.keywords:
            raise self.reject(f"keyword argument in {self.segment(node)}")
        if len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise self.reject(f"{self.segment(node)} ({f.id} takes exactly one argument)")
        x, deg, bits = self.build(node.args[0])
        fn = self.functions[f.id]
        return self.apply(node, lambda: fn(x)), max(deg, 1), bits


#: Names that read like special values; never accepted as parameter or variable names.
RESERVED = frozenset({"nan", "NaN", "NAN", "inf", "Inf", "INF", "infinity", "Infinity", "oo",
                      "zoo", "I", "j", "J", "None", "True", "False"})


def _plain_identifier(n):
    return (n.isascii() and n.isidentifier() and not n.startswith("_")
            and not n.endswith("_") and len(n) <= 32 and n not in RESERVED)


def _symbol_table(names, what):
    """``names`` (iterable of str, or mapping str -> Symbol) as a dict name -> Symbol."""
    import sympy as sp
    items = names.items() if hasattr(names, "items") else ((n, None) for n in names)
    out = {}
    for n, sym in items:
        if not isinstance(n, str) or not _plain_identifier(n):
            raise ValueError(f"{what} name {n!r} is not allowed; use letters, digits and "
                             f"inner underscores")
        out[n] = sp.Symbol(n) if sym is None else sym
    return out


def parse_formula(text, variables=("z",), params=None, functions=DEFAULT_FUNCTIONS,
                  name="formula"):
    r"""Parse ``text`` into a SymPy expression without ever evaluating it as Python.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"z + eps*z**2/2"`` or ``"erf(z)"``; see the module docstring
        for the grammar and the bounds.
    variables : iterable of str or mapping str -> sympy.Symbol
        Names of the variables. A mapping may send several names to one symbol (lazy-rich
        accepts both ``z`` and the older ``h`` for the pre-activation).
    params : None, True, iterable of str or mapping str -> sympy.Symbol
        Names of the parameters; ``None`` (default) allows none, ``True`` allows any plain
        ASCII identifier (letters, digits, inner underscores, at most 32 characters) as a
        parameter ``sympy.Symbol(name)``.
    functions : mapping str -> callable
        Functions of one argument that may be called; default :data:`DEFAULT_FUNCTIONS`.
    name : str
        The option or parameter name used in error messages, e.g. ``"activation"``.

    Returns
    -------
    sympy.Expr
        Built with SymPy's normal evaluation (``1/2*z`` gives ``z/2``); decimal literals are
        exact (``0.25`` gives ``1/4``).

    Raises
    ------
    ValueError
        One line, ``name='text' is not allowed: <what> (allowed: ...)`` or
        ``name='text' cannot be parsed (...)``; also for a result that is not finite
        (``1/0``) or not real (``sqrt(-1)``).

    Examples
    --------
    >>> parse_formula("exp(-z**2/2)")
    exp(-z**2/2)
    >>> parse_formula("__import__('os')")
    Traceback (most recent call last):
    ...
    ValueError: formula="__import__('os')" is not allowed: function '__import__' (allowed: numbers, z, constants pi, E, + - * / **, functions erf, exp, sqrt, tanh, sin, cos, log, abs, cosh, sinh, erfc, atan, relu, sigmoid)
    """
    variables = _symbol_table(variables, "variable")
    if params is True:
        table = None
    else:
        table = _symbol_table(params or (), "parameter")
    functions = dict(functions)
    clash = (set(variables) | set(table or ())) & (set(functions) | set(CONSTANTS))
    if clash or (table and set(table) & set(variables)):
        bad = sorted(clash or set(table) & set(variables))
        raise ValueError(f"name {bad[0]!r} is used twice (variable, parameter, function or "
                         f"constant)")
    form = _Formula(text, variables, table, functions, name)
    if not isinstance(text, str):
        raise ValueError(f"{name}={_short(text)} is not a string; give a formula such as "
                         f"'z + eps*z**2/2'")
    if len(text) > MAX_LENGTH:
        raise form.reject(f"text of {len(text)} characters (at most {MAX_LENGTH})")
    bad = next((c for c in text if not (" " <= c <= "~" or c == "\t")), None)
    if bad is not None:
        raise form.reject(f"character {bad!r} (only printable ASCII)")
    if not text.strip():
        raise ValueError(f"{name}={text!r} is empty; give a formula such as 'z + eps*z**2/2'")
    try:
        with warnings.catch_warnings():   # "invalid decimal literal" etc.: stderr stays one line
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        msg = getattr(exc, "msg", None) or type(exc).__name__
        raise ValueError(f"{name}={_short(text)} cannot be parsed ({msg}); allowed: "
                         f"{form.allowed()}") from None
    form.src = text.strip()
    form.check_size(tree)
    expr = form.build(tree)[0]
    import sympy as sp
    if expr.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        raise form.reject("a non-finite value (division by zero?)")
    if expr.has(sp.I):
        raise form.reject("a complex value")
    return expr


def parse_number(text, name="value", exact=False):
    r"""A finite real number from ``text`` such as ``"0.25"``, ``"1/3"``, ``"sqrt(2)/2"``.

    The grammar of :func:`parse_formula` without variables or parameters; ``nan`` and ``inf``
    are unknown names. Numbers (``int``, ``float``, ``fractions.Fraction``, SymPy numbers) are
    accepted as they are if finite and real.

    Parameters
    ----------
    text : str or number
    name : str
        Parameter name for error messages (``eps='nan' is not allowed: ...``).
    exact : bool
        If true, return the exact SymPy number (``Rational(1, 3)``, ``sqrt(2)/2``) instead of
        a ``float``.

    Returns
    -------
    float or sympy.Expr

    Examples
    --------
    >>> parse_number("1/4", "eps"), parse_number("1/3", "eps", exact=True)
    (0.25, 1/3)
    """
    import sympy as sp
    if isinstance(text, str):
        expr = parse_formula(text, variables=(), params=None, name=name)
    else:
        expr = as_sympy(text, name)
    value = None
    if isinstance(expr, sp.Expr) and expr.is_number:
        try:
            value = complex(expr.evalf(20))
        except (TypeError, ValueError, OverflowError):
            value = None
    if value is None or value.imag != 0 or not math.isfinite(value.real):
        raise ValueError(f"{name}={_short(text)} is not a finite real number")
    return expr if exact else value.real


def as_sympy(value, name="value", variables=(), params=True):
    """``value`` as a SymPy object, never evaluating text: the safe ``sympify`` of the package.

    SymPy objects are returned unchanged; ``int`` and ``fractions.Fraction`` become exact
    rationals, finite ``float`` a ``sympy.Float``; ``str`` goes through :func:`parse_formula`
    with the given ``variables`` and ``params`` (any plain name by default). Anything else,
    ``bool`` and non-finite floats raise ``ValueError``.

    Examples
    --------
    >>> from kernelphase.parse import as_sympy
    >>> as_sympy("2*x + 1", variables=("x",))
    2*x + 1
    >>> as_sympy(0.5)
    0.500000000000000
    >>> as_sympy("__import__('os')", variables=("x",))
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    import sympy as sp
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, str):
        return parse_formula(value, variables=variables, params=params, name=name)
    if isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is a bool, not a number")
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Rational):
        return sp.Rational(int(value.numerator), int(value.denominator))
    if isinstance(value, numbers.Real):
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{name}={value!r} is outside the valid range (-inf, inf)")
        return sp.Float(v)
    raise ValueError(f"{name}={_short(value)} is not a number, formula or SymPy expression")
