"""The Calculator tool: model-written arithmetic, evaluated in a sandboxed child process.

The language is the allow-listed subset of Python in :mod:`mixchat.tools.evaluator` (never
``exec``/``eval``). Each call runs it in a fresh ``python -I -S`` process that caps its own CPU
time and address space with ``setrlimit`` and is killed at the wall-clock timeout, so neither a
slow nor a huge computation can reach the app's process. A fresh interpreter without
site-packages starts in about 20 ms and shares no state, threads or locks with the app (which
a forked worker would).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from mixchat.tools.base import Tool

TIMEOUT = 2.0  # seconds of wall-clock time
MEMORY_MB = 256
MAX_CODE_CHARS = 10_000
_EVALUATOR = Path(__file__).with_name("evaluator.py")

DESCRIPTION = (
    "the calculator should be used whenever you need to perform a calculation, no matter how "
    "simple. It uses Python so make sure to write complete Python code required to perform the "
    "calculation required and make sure the Python returns your answer to the `output` variable."
)


def calculator(code: str, timeout: float = TIMEOUT, memory_mb: int = MEMORY_MB) -> str:
    """Evaluate calculator code: the result as text, or a message beginning with ``Error``.

    Accepts statements (``from math import sqrt; output = sqrt(51)``) and plain expressions
    (``sqrt(512)*7``). Never raises.
    """
    code = _strip_fences(code)
    if not code.strip():
        return "Error: the input is empty: write the calculation, e.g. output = sqrt(51)"
    if len(code) > MAX_CODE_CHARS:
        return f"Error: the code is longer than {MAX_CODE_CHARS} characters"
    command = [
        sys.executable,
        "-I",
        "-S",
        str(_EVALUATOR),
        str(max(1, math.ceil(timeout))),
        str(memory_mb * 1024 * 1024),
    ]
    try:
        finished = subprocess.run(
            command, input=code, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"Error: the calculation took longer than {timeout:g} s and was stopped"
    except OSError as error:
        return f"Error: the calculator could not start: {error}"
    return _result(finished, memory_mb)


def _result(finished: subprocess.CompletedProcess[str], memory_mb: int) -> str:
    try:
        result = json.loads(finished.stdout)
    except ValueError:
        if finished.returncode < 0:  # killed by a signal: SIGXCPU, SIGKILL
            return "Error: the calculation was stopped: it exceeded the time limit"
        if "MemoryError" in finished.stderr:
            return f"Error: the calculation needs more than {memory_mb} MB of memory"
        return "Error: the calculator failed without a result"
    if result["ok"]:
        return str(result["output"])
    return f"Error: {result['error']}"


def _strip_fences(code: str) -> str:
    """Models often wrap code in a Markdown fence; keep what is inside."""
    text = code.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else text.strip("`")
        text = text.rsplit("```", 1)[0]
    return text


async def _run(code: str) -> str:
    import asyncio

    return await asyncio.to_thread(calculator, code)


def calculator_tool() -> Tool:
    """The walkthrough's Calculator tool."""
    return Tool(
        name="Calculator",
        description=DESCRIPTION,
        input_description="Python code that assigns the result to `output`",
        function=_run,
        source="built-in",
    )
