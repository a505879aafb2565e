"""Tools for the agent: the walkthrough's Calculator and Search, plugins, and user tools.

Tools come from entry points in the ``mixchat.tools`` group (mixchat's own Calculator and
Search are declared that way; see :mod:`mixchat.plugins`), and from ``@mixchat.tool``.

>>> import mixchat
>>> @mixchat.tool
... def shout(text: str) -> str:
...     \"\"\"Repeats the text in capitals.\"\"\"
...     return text.upper()
>>> [t.name for t in mixchat.tools.registered_tools()]
['Calculator', 'Search', 'shout']
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mixchat import plugins
from mixchat.config import Settings
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

log = logging.getLogger(__name__)


def default_tools() -> list[Tool]:
    """The installed tools: the walkthrough's Calculator and Search (on the current search
    provider), then those of plugins. A plugin that fails to load is left out, and logged."""
    tools = []
    for point in plugins.found(plugins.TOOLS).values():
        try:
            made = point.load()
            tool = made if isinstance(made, Tool) else made()
        except Exception:  # a broken plugin must not take the agent down
            log.exception("the tool plugin %r (%s) failed to load", point.name, point.value)
            continue
        if not isinstance(tool, Tool):
            log.error("the tool plugin %r gave %r, not a mixchat Tool", point.name, tool)
            continue
        tools.append(tool)
    return tools


def registered_tools() -> list[Tool]:
    """The tools an agent gets by default: the installed ones, then every ``@tool`` function."""
    return default_tools() + user_tools()


async def agent_tools(settings: Settings, tools: Sequence[Tool] | None = None) -> list[Tool]:
    """``tools`` (default: :func:`registered_tools`) and the tools of ``settings.mcp_servers``,
    whose servers start on first use, once per process; one that cannot start is left out."""
    base = registered_tools() if tools is None else list(tools)
    if not settings.mcp_servers:
        return base
    from mixchat.tools.mcp import mcp_toolbox

    toolbox = mcp_toolbox(settings.mcp_servers)
    return base + await toolbox.tools(taken=[tool.name for tool in base])


__all__ = [
    "FINAL_ANSWER",
    "DdgsProvider",
    "SearchError",
    "SearchProvider",
    "SearchResult",
    "SearxngProvider",
    "Tool",
    "agent_tools",
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
