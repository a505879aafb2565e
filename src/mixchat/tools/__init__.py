"""Tools for the agent: the walkthrough's Calculator and Search, and user tools.

>>> import mixchat
>>> @mixchat.tool
... def shout(text: str) -> str:
...     \"\"\"Repeats the text in capitals.\"\"\"
...     return text.upper()
>>> [t.name for t in mixchat.tools.registered_tools()]
['Calculator', 'Search', 'shout']
"""

from __future__ import annotations

from mixchat.tools.base import (
    FINAL_ANSWER,
    Tool,
    register_tool,
    tool,
    unregister_tool,
    user_tools,
)
from mixchat.tools.calculator import calculator, calculator_tool
from mixchat.tools.search import (
    DdgsProvider,
    SearchError,
    SearchProvider,
    SearchResult,
    SearxngProvider,
    search,
    search_tool,
    use_search_provider,
)


def default_tools() -> list[Tool]:
    """The walkthrough's tools: Calculator and Search (on the current search provider)."""
    return [calculator_tool(), search_tool()]


def registered_tools() -> list[Tool]:
    """The tools an agent gets by default: the built-ins, then every ``@tool`` function."""
    return default_tools() + user_tools()


__all__ = [
    "FINAL_ANSWER",
    "DdgsProvider",
    "SearchError",
    "SearchProvider",
    "SearchResult",
    "SearxngProvider",
    "Tool",
    "calculator",
    "calculator_tool",
    "default_tools",
    "register_tool",
    "registered_tools",
    "search",
    "search_tool",
    "tool",
    "unregister_tool",
    "use_search_provider",
    "user_tools",
]
