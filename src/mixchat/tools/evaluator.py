"""A restricted arithmetic language: Python syntax, evaluated by walking an allow-listed AST.

Models write calculator input as Python (``from math import sqrt; output = sqrt(51)``), but
their text is never given to ``exec`` or ``eval``. This module parses it with :mod:`ast` and
evaluates only what is listed here: numbers, strings, lists and tuples; arithmetic,
comparisons and boolean logic; assignments, ``if`` and ``for`` over bounded ranges;
comprehensions; calls to the ``math`` module and a few safe builtins. There is no attribute
access except ``math.<name>``, no names starting with ``__``, no function definitions, no
``while``, no imports but ``math``. Sizes are checked *before* an operation can blow up
(``9**9**9``, ``"a" * 10**10``, ``1 << 10**9``); time and memory are bounded again by the
child process that runs this (:mod:`mixchat.tools.calculator`).
"""

from __future__ import annotations

import ast
import builtins
import itertools
import math
import operator
import re
import reprlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

MAX_INT_BITS = 13_000  # about 3,900 decimal digits, below Python's 4,300-digit str() limit
MAX_ITEMS = 100_000  # elements of a list, tuple, range or string
MAX_STEPS = 2_000_000  # AST nodes evaluated, across loops and comprehensions
MAX_FACTORIAL = 1_000
MAX_COMB = 100_000
MAX_OUTPUT_CHARS = 4_000


class CalcError(Exception):
    """Code the calculator refuses or cannot evaluate; the message is shown to the model."""


class _Math:
    """The ``math`` module as calculator code sees it: only its public names."""

    def __repr__(self) -> str:
        return "<module 'math'>"


MATH = _Math()


def _guarded_factorial(n: Any) -> int:
    if isinstance(n, int) and n > MAX_FACTORIAL:
        raise CalcError(f"factorial({n}) is too large (the limit is factorial({MAX_FACTORIAL}))")
    return math.factorial(n)


def _guarded_comb(name: str) -> Callable[..., int]:
    function = getattr(math, name)

    def guarded(n: Any, k: Any = None) -> int:
        if isinstance(n, int) and n > MAX_COMB:
            raise CalcError(f"{name}({n}, ...) is too large (the limit is n <= {MAX_COMB})")
        return function(n) if k is None else function(n, k)

    return guarded


def _guarded_prod(values: Iterable[Any], *, start: Any = 1) -> Any:
    result = start
    for value in values:
        result = _mul(result, value)
    return result


def _guarded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_ITEMS * 100:
        raise CalcError(f"range of {len(result)} numbers is too long (limit {MAX_ITEMS * 100})")
    return result


def _math_names() -> dict[str, Any]:
    names = {name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
    names.update(
        factorial=_guarded_factorial,
        comb=_guarded_comb("comb"),
        perm=_guarded_comb("perm"),
        prod=_guarded_prod,
        pow=math.pow,
    )
    return names


MATH_NAMES = _math_names()

_BUILTIN_NAMES = (
    "abs",
    "round",
    "min",
    "max",
    "sum",
    "len",
    "int",
    "float",
    "bool",
    "str",
    "divmod",
    "sorted",
    "list",
    "tuple",
    "complex",
    "reversed",
    "enumerate",
    "zip",
    "any",
    "all",
    "hex",
    "bin",
    "oct",
)


def _builtin_names() -> dict[str, Any]:
    names = {name: getattr(builtins, name) for name in _BUILTIN_NAMES}
    names.update(range=_guarded_range, pow=lambda *args: _pow(*args))
    return names


#: Names calculator code can use without importing anything (``sqrt(512) * 7``).
GLOBALS: dict[str, Any] = {**MATH_NAMES, **_builtin_names(), "math": MATH}
_CALLABLES = {id(value) for value in [*MATH_NAMES.values(), *GLOBALS.values()] if callable(value)}

# -- size-checked operations --------------------------------------------------------------


def _check(value: Any) -> Any:
    """Refuse a value too big to be useful (and to keep in memory)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise CalcError(f"the result has more than {MAX_INT_BITS} bits: too large")
    elif isinstance(value, (str, list, tuple)) and len(value) > MAX_ITEMS:
        raise CalcError(f"a value of {len(value)} items is too large (limit {MAX_ITEMS})")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int)


def _pow(base: Any, exponent: Any, modulo: Any = None) -> Any:
    if modulo is not None:
        return pow(base, exponent, modulo)
    if (
        _is_int(base)
        and _is_int(exponent)
        and exponent > 0
        and abs(base) > 1
        and exponent * math.log2(abs(base)) > MAX_INT_BITS
    ):
        raise CalcError(f"{base} ** {exponent} is too large to compute")
    return base**exponent


def _mul(left: Any, right: Any) -> Any:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise CalcError("the product is too large to compute")
    elif isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple)):
        sequence, count = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
        if _is_int(count) and len(sequence) * max(count, 0) > MAX_ITEMS:
            raise CalcError(f"repeating a sequence to over {MAX_ITEMS} items is not allowed")
    return left * right


def _lshift(left: Any, right: Any) -> Any:
    if _is_int(left) and _is_int(right) and left.bit_length() + right > MAX_INT_BITS:
        raise CalcError("the shifted number is too large")
    return left << right


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _pow,
    ast.LShift: _lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FORMAT_SPEC = re.compile(r"^(.?[<>=^])?[+\- ]?#?0?\d{0,3}[,_]?(\.\d{1,3})?[bcdeEfFgGnosxX%]?$")


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Evaluator:
    """Evaluates one program; the result is ``output``, else the printed text, else the last
    expression's value."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}
        self.printed: list[str] = []
        self.last: Any = None
        self.steps = 0
        self.print_function = self._print  # one bound method, so calls can be checked by identity

    def run(self, code: str) -> str:
        try:
            tree = ast.parse(code.strip(), mode="exec")
        except SyntaxError as error:
            raise CalcError(f"invalid syntax: {error.msg} (line {error.lineno})") from None
        self._block(tree.body)
        if "output" in self.scope:
            return format_value(self.scope["output"])
        if self.printed:
            return "\n".join(self.printed)
        if self.last is not None:
            return format_value(self.last)
        raise CalcError("the code computed nothing: assign the result to `output`")

    # -- statements --------------------------------------------------------------------------

    def _block(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self._statement(statement)

    def _statement(self, node: ast.stmt) -> None:
        self._tick()
        if isinstance(node, ast.Expr):
            self.last = self._eval(node.value, self.scope)
        elif isinstance(node, ast.Assign):
            value = self._eval(node.value, self.scope)
            for target in node.targets:
                self._assign(target, value, self.scope)
        elif isinstance(node, ast.AugAssign):
            if not isinstance(node.target, ast.Name):
                raise CalcError("only plain names can be updated with +=, -=, ...")
            current = self._name(node.target.id, self.scope)
            value = self._binary(node.op, current, self._eval(node.value, self.scope))
            self._assign(node.target, value, self.scope)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._assign(node.target, self._eval(node.value, self.scope), self.scope)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self._import(node)
        elif isinstance(node, ast.If):
            self._block(node.body if self._eval(node.test, self.scope) else node.orelse)
        elif isinstance(node, ast.For):
            self._for(node)
        elif isinstance(node, ast.Break):
            raise _Break
        elif isinstance(node, ast.Continue):
            raise _Continue
        elif not isinstance(node, ast.Pass):
            raise CalcError(f"{_describe(node)} is not supported by the calculator")

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name != "math":
                    raise CalcError(f"only the math module can be imported, not {alias.name}")
                self.scope[alias.asname or "math"] = MATH
            return
        if node.module != "math":
            raise CalcError(f"only the math module can be imported, not {node.module}")
        for alias in node.names:
            if alias.name == "*":
                self.scope.update(MATH_NAMES)
            elif alias.name in MATH_NAMES:
                self.scope[alias.asname or alias.name] = MATH_NAMES[alias.name]
            else:
                raise CalcError(f"math has no function {alias.name!r}")

    def _for(self, node: ast.For) -> None:
        if node.orelse:
            raise CalcError("for ... else is not supported by the calculator")
        for item in self._iterate(self._eval(node.iter, self.scope)):
            self._assign(node.target, item, self.scope)
            try:
                self._block(node.body)
            except _Break:
                break
            except _Continue:
                continue

    def _assign(self, target: ast.expr, value: Any, scope: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            scope[_identifier(target.id)] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = list(self._iterate(value))
            if len(values) != len(target.elts):
                raise CalcError(f"cannot unpack {len(values)} values into {len(target.elts)} names")
            for element, item in zip(target.elts, values):
                self._assign(element, item, scope)
        else:
            raise CalcError("only names can be assigned to")

    # -- expressions -------------------------------------------------------------------------

    def _eval(self, node: ast.expr, scope: dict[str, Any]) -> Any:
        self._tick()
        method = getattr(self, f"_eval_{type(node).__name__}", None)
        if method is None:
            raise CalcError(f"{_describe(node)} is not supported by the calculator")
        return _check(method(node, scope))

    def _eval_Constant(self, node: ast.Constant, scope: dict[str, Any]) -> Any:
        if isinstance(node.value, bytes) or node.value is Ellipsis:
            raise CalcError("bytes and ... are not supported by the calculator")
        return node.value

    def _eval_Name(self, node: ast.Name, scope: dict[str, Any]) -> Any:
        return self._name(node.id, scope)

    def _eval_Attribute(self, node: ast.Attribute, scope: dict[str, Any]) -> Any:
        owner = self._eval(node.value, scope)
        if owner is not MATH:
            raise CalcError(
                "attribute access is not supported by the calculator (only math.<name>)"
            )
        if node.attr not in MATH_NAMES:
            raise CalcError(f"math has no function {node.attr!r}")
        return MATH_NAMES[node.attr]

    def _eval_BinOp(self, node: ast.BinOp, scope: dict[str, Any]) -> Any:
        return self._binary(node.op, self._eval(node.left, scope), self._eval(node.right, scope))

    def _eval_UnaryOp(self, node: ast.UnaryOp, scope: dict[str, Any]) -> Any:
        return _UNARY[type(node.op)](self._eval(node.operand, scope))

    def _eval_BoolOp(self, node: ast.BoolOp, scope: dict[str, Any]) -> Any:
        value: Any = None
        for operand in node.values:
            value = self._eval(operand, scope)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _eval_Compare(self, node: ast.Compare, scope: dict[str, Any]) -> bool:
        left = self._eval(node.left, scope)
        for op, comparator in zip(node.ops, node.comparators):
            if type(op) not in _COMPARE:
                raise CalcError("'is' comparisons are not supported by the calculator")
            right = self._eval(comparator, scope)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def _eval_IfExp(self, node: ast.IfExp, scope: dict[str, Any]) -> Any:
        branch = node.body if self._eval(node.test, scope) else node.orelse
        return self._eval(branch, scope)

    def _eval_Call(self, node: ast.Call, scope: dict[str, Any]) -> Any:
        function = self._eval(node.func, scope)
        if id(function) not in _CALLABLES and function is not self.print_function:
            raise CalcError(f"{_source(node.func)} is not a function the calculator knows")
        args: list[Any] = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                args.extend(self._iterate(self._eval(arg.value, scope)))
            else:
                args.append(self._eval(arg, scope))
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                raise CalcError("**keyword arguments are not supported by the calculator")
            kwargs[_identifier(keyword.arg)] = self._eval(keyword.value, scope)
        return function(*args, **kwargs)

    def _eval_List(self, node: ast.List, scope: dict[str, Any]) -> list[Any]:
        return [self._eval(element, scope) for element in node.elts]

    def _eval_Tuple(self, node: ast.Tuple, scope: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(self._eval(element, scope) for element in node.elts)

    def _eval_Subscript(self, node: ast.Subscript, scope: dict[str, Any]) -> Any:
        container = self._eval(node.value, scope)
        if not isinstance(container, (list, tuple, str, range)):
            raise CalcError("only lists, tuples, strings and ranges can be indexed")
        return container[self._eval(node.slice, scope)]

    def _eval_Slice(self, node: ast.Slice, scope: dict[str, Any]) -> slice:
        parts = (node.lower, node.upper, node.step)
        return slice(*(None if part is None else self._eval(part, scope) for part in parts))

    def _eval_JoinedStr(self, node: ast.JoinedStr, scope: dict[str, Any]) -> str:
        return "".join(str(self._eval(value, scope)) for value in node.values)

    def _eval_FormattedValue(self, node: ast.FormattedValue, scope: dict[str, Any]) -> str:
        value = self._eval(node.value, scope)
        if node.conversion in (ord("r"), ord("a")):
            value = repr(value)
        elif node.conversion == ord("s"):
            value = str(value)
        spec = "" if node.format_spec is None else self._eval(node.format_spec, scope)
        if not _FORMAT_SPEC.match(spec):
            raise CalcError(f"the format {spec!r} is not supported by the calculator")
        return format(value, spec)

    def _eval_ListComp(self, node: ast.ListComp, scope: dict[str, Any]) -> list[Any]:
        return list(self._comprehend(node.elt, node.generators, dict(scope)))

    def _eval_GeneratorExp(self, node: ast.GeneratorExp, scope: dict[str, Any]) -> list[Any]:
        return list(self._comprehend(node.elt, node.generators, dict(scope)))

    def _comprehend(
        self, element: ast.expr, generators: list[ast.comprehension], scope: dict[str, Any]
    ) -> Iterator[Any]:
        first, rest = generators[0], generators[1:]
        produced = 0
        for item in self._iterate(self._eval(first.iter, scope)):
            self._assign(first.target, item, scope)
            if all(self._eval(condition, scope) for condition in first.ifs):
                inner = (
                    self._comprehend(element, rest, scope)
                    if rest
                    else iter([self._eval(element, scope)])
                )
                for value in inner:
                    produced += 1
                    if produced > MAX_ITEMS:
                        raise CalcError(f"a comprehension of over {MAX_ITEMS} items is too large")
                    yield value

    # -- helpers -----------------------------------------------------------------------------

    def _binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        if type(op) not in _BINARY:
            raise CalcError(f"the operator {type(op).__name__} is not supported by the calculator")
        return _BINARY[type(op)](left, right)

    def _name(self, name: str, scope: dict[str, Any]) -> Any:
        name = _identifier(name)
        if name == "print":
            return self.print_function
        if name in scope:
            return scope[name]
        if name in GLOBALS:
            return GLOBALS[name]
        raise CalcError(f"name {name!r} is not defined")

    def _print(self, *values: Any, **_: Any) -> None:
        self.printed.append(" ".join(format_value(value) for value in values))

    def _iterate(self, value: Any) -> Iterator[Any]:
        if not isinstance(value, (list, tuple, str, range, zip, enumerate, reversed)):
            raise CalcError(f"cannot loop over a {type(value).__name__}")
        for item in value:
            self._tick()
            yield item

    def _tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise CalcError(f"the calculation takes more than {MAX_STEPS} steps")


def _identifier(name: str) -> str:
    if name.startswith("__"):
        raise CalcError(f"the name {name!r} is not allowed in the calculator")
    return name


def _describe(node: ast.AST) -> str:
    names = {
        "Lambda": "lambda",
        "FunctionDef": "def",
        "AsyncFunctionDef": "async def",
        "ClassDef": "class",
        "While": "while",
        "With": "with",
        "Try": "try",
        "Raise": "raise",
        "Global": "global",
        "Nonlocal": "nonlocal",
        "Delete": "del",
        "Return": "return",
        "DictComp": "a dict comprehension",
        "SetComp": "a set comprehension",
        "Dict": "a dict",
        "Set": "a set",
        "Await": "await",
        "Yield": "yield",
        "NamedExpr": ":=",
    }
    return names.get(type(node).__name__, type(node).__name__)


def _source(node: ast.AST) -> str:
    try:
        return ast.unparse(node)[:60]
    except Exception:  # noqa: BLE001 - only used in a message
        return type(node).__name__


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple = 3, 200, 200
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = MAX_OUTPUT_CHARS


def format_value(value: Any) -> str:
    """The text the model sees for a result, bounded however large or nested the value is."""
    if isinstance(value, (range, zip, enumerate, reversed)):
        value = list(itertools.islice(value, _REPR.maxlist + 1))
    text = value if isinstance(value, str) else _REPR.repr(value)
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[:MAX_OUTPUT_CHARS] + f"... ({len(text) - MAX_OUTPUT_CHARS} more characters)"
    return text


def evaluate(code: str) -> str:
    """The result of ``code`` as text; raises :class:`CalcError` (or the arithmetic error)."""
    return Evaluator().run(code)


# -- the sandboxed child process ------------------------------------------------------------


def _limit(cpu_seconds: int, memory_bytes: int) -> None:
    """Cap this process's CPU time, address space and file writes (Linux, macOS)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _main(argv: list[str]) -> None:
    """``python -I -S evaluator.py CPU_SECONDS MEMORY_BYTES`` < code > JSON result."""
    import json
    import sys

    _limit(int(argv[1]), int(argv[2]))
    code = sys.stdin.read()
    try:
        result = {"ok": True, "output": evaluate(code)}
    except CalcError as error:
        result = {"ok": False, "error": str(error)}
    except MemoryError:
        result = {"ok": False, "error": "the calculation needs more memory than allowed"}
    except RecursionError:
        result = {"ok": False, "error": "the code is nested too deeply"}
    except Exception as error:  # noqa: BLE001 - arithmetic errors become the model's observation
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    import sys

    _main(sys.argv)
