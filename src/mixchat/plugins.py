"""Plugins: backends and tools that installed packages provide, found through entry points.

A package (``pip install mixchat-foo``) declares them in its ``pyproject.toml``; nothing in
mixchat changes, and ``--backend foo`` works in the CLI and the web app::

    [project.entry-points."mixchat.backends"]
    foo = "mixchat_foo:FooBackend"        # a mixchat.Backend subclass

    [project.entry-points."mixchat.tools"]
    Weather = "mixchat_foo:weather_tool"  # a mixchat.Tool, or a function that returns one

mixchat's own backends and tools are registered the same way, in its own ``pyproject.toml``.
Entry points are listed once per process (:func:`reload` lists them again) and imported only
when used, so ``import mixchat`` needs none of llama_cpp, torch, mistralai or openai.
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import EntryPoint, entry_points

log = logging.getLogger(__name__)

BACKENDS = "mixchat.backends"
TOOLS = "mixchat.tools"
OWN_DISTRIBUTION = "mixchat"


@functools.cache
def found(group: str) -> dict[str, EntryPoint]:
    """The group's entry points by name: mixchat's own first, then the others by name.

    When two packages use one name, mixchat's own wins, then the first in that order.
    """
    points = sorted(
        entry_points(group=group),
        key=lambda point: (_distribution(point) != OWN_DISTRIBUTION, point.name),
    )
    chosen: dict[str, EntryPoint] = {}
    for point in points:
        if point.name in chosen:
            log.warning("%s %r is provided twice; using %s", group, point.name, chosen[point.name])
            continue
        chosen[point.name] = point
    if not any(_distribution(p) == OWN_DISTRIBUTION for p in chosen.values()):
        log.warning(
            "no %s entry points of mixchat itself: it is not installed, so its built-in "
            "plugins are missing (run `pip install -e .` in the source tree)",
            group,
        )
    return chosen


def reload() -> None:
    """List the entry points again (after installing a package in a running process)."""
    found.cache_clear()


def _distribution(point: EntryPoint) -> str | None:
    dist = point.dist
    return dist.metadata["Name"] if dist is not None else None


__all__ = ["BACKENDS", "TOOLS", "found", "reload"]
