"""The Calculator: correct on ordinary inputs, and an attack corpus refused or stopped within
its limits without touching the test process."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest

from mixchat.tools import calculator
from mixchat.tools.evaluator import evaluate

# (expression, expected): each is checked as a plain expression and in the walkthrough's form.
ORDINARY = [
    ("sqrt(512)*7", 158.39191898578665),
    ("sqrt(51)", 7.14142842854285),
    ("2 + 2", 4),
    ("7 * 6", 42),
    ("10 / 4", 2.5),
    ("10 // 4", 2),
    ("10 % 4", 2),
    ("2 ** 10", 1024),
    ("2 ** 0.5", math.sqrt(2)),
    ("-3 + 5 * (2 - 8)", -33),
    ("(1 + 2) * (3 + 4)", 21),
    ("round(3.14159, 2)", 3.14),
    ("abs(-12.5)", 12.5),
    ("max(3, 9, 4)", 9),
    ("min([5, 2, 8])", 2),
    ("sum([1, 2, 3, 4])", 10),
    ("sum(range(1, 101))", 5050),
    ("sum(i ** 2 for i in range(10))", 285),
    ("len([x for x in range(20) if x % 3 == 0])", 7),
    ("factorial(10)", 3628800),
    ("math.factorial(20)", 2432902008176640000),
    ("comb(10, 3)", 120),
    ("gcd(48, 180)", 12),
    ("lcm(4, 6)", 12),
    ("pi * 3 ** 2", math.pi * 9),
    ("math.e ** 2", math.e**2),
    ("log(100, 10)", 2.0),
    ("log10(1000)", 3.0),
    ("log2(1024)", 10.0),
    ("exp(1)", math.e),
    ("sin(pi / 2)", 1.0),
    ("cos(0)", 1.0),
    ("degrees(pi)", 180.0),
    ("radians(180)", math.pi),
    ("hypot(3, 4)", 5.0),
    ("floor(7.8)", 7),
    ("ceil(7.2)", 8),
    ("isqrt(99)", 9),
    ("pow(2, 8)", 256),
    ("pow(3, 4, 5)", 1),
    ("1e3 * 2.5", 2500.0),
    ("0.1 + 0.2", 0.1 + 0.2),
    ("100 * (1 + 0.05) ** 10", 100 * 1.05**10),
    ("2 ** 100", 2**100),
    ("int(7.9) + float('1.5')", 8.5),
    ("divmod(17, 5)", (3, 2)),
    ("3 if 2 > 1 else 4", 3),
    ("sorted([3, 1, 2])[0]", 1),
]

PROGRAMS = [
    ("from math import sqrt; output = sqrt(51)", 7.14142842854285),
    ("from math import sqrt\noutput = sqrt(512) * 7", 158.39191898578665),
    ("import math\noutput = math.sqrt(512) * 7", 158.39191898578665),
    ("import math as m\noutput = m.pi", math.pi),
    ("a = 3\nb = 4\noutput = (a ** 2 + b ** 2) ** 0.5", 5.0),
    ("total = 0\nfor i in range(1, 11):\n    total += i\noutput = total", 55),
    ("x, y = 10, 3\noutput = x // y", 3),
    ("print(6 * 7)", 42),
    ("price = 120\ndiscount = 0.15\noutput = round(price * (1 - discount), 2)", 102.0),
    ("```python\noutput = 1 + 1\n```", 2),
    ("n = 0\nfor i in range(100):\n    if i % 7 == 0:\n        n += 1\noutput = n", 15),
    ("output = f'{sqrt(2):.3f}'", 1.414),
]


def _value(text: str) -> object:
    """The calculator's text read back as a Python value, for comparison."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _assert_result(text: str, expected: object) -> None:
    assert not text.startswith("Error"), text
    value = _value(text)
    if isinstance(expected, float):
        assert value == pytest.approx(expected, rel=1e-12)
    else:
        assert value == expected


@pytest.mark.parametrize(("expression", "expected"), ORDINARY, ids=[e for e, _ in ORDINARY])
def test_ordinary_expressions_in_both_forms(expression: str, expected: object) -> None:
    _assert_result(calculator(expression), expected)
    _assert_result(calculator(f"import math\noutput = {expression}"), expected)


@pytest.mark.parametrize(("code", "expected"), PROGRAMS)
def test_walkthrough_style_programs(code: str, expected: object) -> None:
    _assert_result(calculator(code), expected)


def test_the_walkthrough_question_reaches_158_39() -> None:
    assert calculator("from math import sqrt; output = sqrt(512)*7").startswith("158.39")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("1 / 0", "Error: ZeroDivisionError"),
        ("", "Error: the input is empty"),
        ("output = undefined_name", "Error: name 'undefined_name' is not defined"),
        ("x = 1", "Error: the code computed nothing"),
        ("sqrt(", "Error: invalid syntax"),
        ("sqrt(-1)", "Error: ValueError"),
    ],
)
def test_mistakes_are_error_text(code: str, message: str) -> None:
    assert calculator(code).startswith(message)


MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / "mixchat-calculator-pwned"

ATTACKS = [
    # attribute traversal to object's subclasses, frames, globals
    "().__class__.__base__.__subclasses__()",
    "().__class__.__bases__[0].__subclasses__()",
    "[].__class__.__mro__[1].__subclasses__()",
    "(1).__class__",
    "sqrt.__self__",
    "print.__self__",
    "math.sqrt.__call__",
    "math.__dict__",
    "math.__loader__",
    "import math as m\noutput = m.__spec__",
    "from math import __loader__",
    "output = __name__",
    "__builtins__",
    "__builtins__['eval']('1+1')",
    # imports and builtins that reach the system
    "__import__('os').system('id')",
    "import os\noutput = os.getcwd()",
    "import subprocess",
    "from os import system",
    "import builtins",
    "from importlib import import_module",
    f"open('{MARKER}', 'w').write('x')",
    "open('/etc/passwd').read()",
    "exec('import os')",
    "eval('1+1')",
    "compile('1', 'x', 'eval')",
    "getattr(1, '__class__')",
    "setattr(math, 'pi', 3)",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "type(1)",
    "object.__subclasses__()",
    "breakpoint()",
    "input()",
    "exit()",
    "bytearray(10**9)",
    "memoryview(b'x')",
    # format strings reaching attributes
    "'{0.__class__.__base__}'.format(1)",
    "'{.__globals__}'.format(sqrt)",
    "f'{(1).__class__}'",
    "f'{1:>1000000000}'",
    # lambdas, comprehensions, generators, definitions reaching globals
    "(lambda: 0).__globals__",
    "(lambda f: f(f))(lambda f: f(f))",
    "[x for x in ().__class__.__base__.__subclasses__()]",
    "{k: v for k, v in globals().items()}",
    "(g for g in ()).gi_frame.f_globals",
    "def f():\n    return f()\noutput = f()",
    "class A:\n    pass",
    "(x := 5)",
    "with open('x') as f:\n    pass",
    "try:\n    pass\nexcept Exception:\n    pass",
    "raise SystemExit",
    "global output",
    "del sqrt",
    # huge numbers
    "9**9**9",
    "4000000**4000000",
    "2 ** 10 ** 10",
    "pow(10, 10**8)",
    "math.pow(10, 10**8)",
    "10**4000 * 10**4000",
    "1 << 10**10",
    "x = 2\nfor i in range(100):\n    x = x * x\noutput = x",
    "int('9' * 5000)",
    # huge factorials and combinatorics
    "math.factorial(10**6)",
    "factorial(100000)",
    "math.comb(10**9, 10**8)",
    "perm(10**6)",
    "prod(range(1, 10**6))",
    # string and list multiplication bombs
    "'a' * 10**10",
    "'a' * 10**5 * 10**5",
    "[0] * 10**10",
    "x = [1] * 100000\noutput = sum([x] * 100000, [])",
    "str([[0] * 10**5] * 10**5)",
    "list(range(10**7)) * 10",
    # deep nesting and recursion
    "(" * 50_000 + "1" + ")" * 50_000,
    "-" * 100_000 + "1",
    "[" * 10_000 + "]" * 10_000,
    "(" * 4_000 + "1" + ")" * 4_000,
    "-" * 9_000 + "1",
    "output = " + "1 + " * 2_400 + "1",
    "output = " + "[" * 3_000 + "]" * 3_000,
    # loops that do not end
    "while True:\n    pass",
    "for i in range(10**9):\n    pass",
    "for i in range(10**7):\n    for j in range(10**7):\n        pass",
    "sum(i * j for i in range(10**7) for j in range(10**7))",
]


def _children() -> set[int]:
    """This process's live child processes."""
    pid = os.getpid()
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.update(int(child) for child in children)
    return found


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_attack_corpus_is_refused_or_stopped_within_limits() -> None:
    assert len(ATTACKS) >= 50
    children_before, rss_before = _children(), _rss_mb()
    pi_before = math.pi
    failures = []
    for attack in ATTACKS:
        started = time.monotonic()
        result = calculator(attack)
        elapsed = time.monotonic() - started
        if not (isinstance(result, str) and result.startswith("Error")) or elapsed > 3.5:
            failures.append((attack[:60], result[:80], round(elapsed, 2)))
    assert failures == []
    assert not MARKER.exists()
    assert math.pi == pi_before
    assert _children() <= children_before  # every sandbox process is gone
    assert _rss_mb() - rss_before < 50  # the work happened elsewhere
    assert calculator("sqrt(512)*7").startswith("158.39")  # and the calculator still works


def test_limits_are_enforced_by_the_child_process() -> None:
    """What the static checks let through is still stopped by the wall clock and rlimits."""
    started = time.monotonic()
    assert calculator("x = [1] * 100000\noutput = sum([x] * 100000, [])", timeout=0.5).startswith(
        "Error: the calculation took longer than 0.5 s"
    )
    assert time.monotonic() - started < 1.5
    assert calculator("output = len(list(range(10**7)))", memory_mb=64).startswith("Error")


def test_evaluator_never_hands_model_text_to_exec_or_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only parsing: ``ast.parse`` calls ``compile`` with PyCF_ONLY_AST, which runs nothing."""
    import ast
    import builtins

    real_compile = builtins.compile
    calls: list[int] = []

    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("exec/eval called")

    def parse_only(
        source: object, filename: object, mode: str, flags: int = 0, *args: object, **kwargs: object
    ) -> object:
        assert flags & ast.PyCF_ONLY_AST, "compile() used to build code, not just an AST"
        calls.append(flags)
        return real_compile(source, filename, mode, flags, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "compile", parse_only)
    try:
        assert evaluate("from math import sqrt; output = sqrt(512)*7") == "158.39191898578665"
        assert evaluate("sum(i for i in range(4))") == "6"
    finally:
        monkeypatch.undo()
    assert calls
