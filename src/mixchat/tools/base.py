"""Tools the agent can call: a small class, a decorator, and the process's registry.

A tool returns one string. The walkthrough's tools take one string too
(``{"tool_name": ..., "input": "..."}``); a tool with ``parameters`` (an MCP tool) takes a
JSON object that follows that schema (``{"tool_name": "add", "input": {"a": 2, "b": 3}}``).
By convention a tool reports a failure the model should see with text that begins with
``Error``; an exception it raises becomes such a text.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, overload

from mixchat.errors import ConfigError

ToolFunction = Callable[[Any], "str | Awaitable[str]"]
#: What a tool is called with: one string, or the arguments object its ``parameters`` describe.
ToolInput = str | dict[str, Any]

FINAL_ANSWER = "Final Answer"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9 _-]{0,63}$")


@dataclass(frozen=True)
class Tool:
    """A named function: what it is for and what input it takes.

    ``description`` and ``input_description`` go into the system message and the JSON schema.
    ``parameters`` is the JSON schema of the arguments object the tool takes; None (the
    walkthrough's tools, ``@tool`` functions) means it takes one string.
    """

    name: str
    description: str
    function: ToolFunction
    input_description: str = "text"
    parameters: dict[str, Any] | None = None
    #: Where the tool comes from, for ``mixchat tools``: "built-in", "python", "mcp:SERVER".
    source: str = "python"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or normalize_name(self.name) == normalize_name(FINAL_ANSWER):
            raise ConfigError(
                f"invalid tool name {self.name!r}: use letters, digits, spaces, _ or -, "
                f"and not {FINAL_ANSWER!r}"
            )

    @property
    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of a call's ``"input"``: the arguments object, or a string."""
        if self.parameters is not None:
            return self.parameters
        return {"type": "string", "description": self.input_description}

    async def run(self, input: ToolInput) -> str:
        """Call the function; a sync function runs in a worker thread so it cannot block."""
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(input)
        else:
            result = await asyncio.to_thread(self.function, input)
            if inspect.isawaitable(result):
                result = await result
        return result if isinstance(result, str) else str(result)


def normalize_name(name: str) -> str:
    """Tool names as models misspell them: case, spaces and underscores do not matter."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


# -- the registry -----------------------------------------------------------------------------

_USER_TOOLS: dict[str, Tool] = {}


def register_tool(tool: Tool) -> Tool:
    """Add ``tool`` to :func:`registered_tools` (replacing a tool of the same name)."""
    _USER_TOOLS[tool.name] = tool
    return tool


def unregister_tool(name: str) -> None:
    _USER_TOOLS.pop(name, None)


def user_tools() -> list[Tool]:
    return list(_USER_TOOLS.values())


@overload
def tool(function: ToolFunction, /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    input_description: str | None = None,
    register: bool = True,
) -> Callable[[ToolFunction], Tool]: ...


def tool(
    function: ToolFunction | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    input_description: str | None = None,
    register: bool = True,
) -> Tool | Callable[[ToolFunction], Tool]:
    """Make a function of one string (sync or async) a :class:`Tool` and register it.

        @mixchat.tool
        def weather(city: str) -> str:
            \"\"\"Today's weather in a city.\"\"\"
            ...

        @mixchat.tool(name="Unit Converter", input_description="e.g. '3 miles in km'")
        async def convert(query: str) -> str: ...

    The name defaults to the function's name, the description to its docstring's first
    paragraph, the input description to its parameter's name.
    """

    def make(function: ToolFunction) -> Tool:
        parameter = _single_parameter(function)
        made = Tool(
            name=name or function.__name__,
            description=description or _first_paragraph(function.__doc__) or function.__name__,
            input_description=input_description or parameter,
            function=function,
        )
        return register_tool(made) if register else made

    return make(function) if function is not None else make


def _single_parameter(function: Callable[..., Any]) -> str:
    parameters = [
        p
        for p in inspect.signature(function).parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(parameters) != 1:
        raise ConfigError(
            f"a tool function takes one string argument; {function.__name__} takes "
            f"{len(parameters)} required arguments"
        )
    return parameters[0].name.replace("_", " ")


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
