"""Backends behind one streaming interface, found by name.

Every backend is a plugin: an entry point in the ``mixchat.backends`` group (mixchat's own
are declared in its ``pyproject.toml``, see :mod:`mixchat.plugins`), imported only when it is
used. :func:`register` adds one at run time (a script, a test), and wins over an entry point
of the same name.
"""

from __future__ import annotations

from collections.abc import Hashable
from importlib.metadata import EntryPoint

from mixchat import plugins
from mixchat.backends.base import (
    Backend,
    CancelToken,
    Capability,
    ChatRequest,
    Reply,
    ToolCall,
)
from mixchat.backends.events import Done, Event, Queued, TextDelta, Usage
from mixchat.config import Settings
from mixchat.errors import ConfigError, MixchatError

_REGISTERED: dict[str, type[Backend] | str] = {}
_LOADED: dict[str, type[Backend]] = {}
_INSTANCES: dict[Hashable, Backend] = {}


def register(name: str, backend: type[Backend] | str) -> None:
    """Make ``backend`` (a class, or ``"module:Class"`` imported on first use) available as
    ``name``, replacing any backend of that name."""
    _REGISTERED[name] = backend
    _LOADED.pop(name, None)


def names() -> list[str]:
    """Every backend's name: the installed plugins', then those registered at run time."""
    return list(dict.fromkeys([*plugins.found(plugins.BACKENDS), *_REGISTERED]))


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; importing it may raise ``MissingDependency``."""
    if name in _LOADED:
        return _LOADED[name]
    entry: object
    if name in _REGISTERED:
        entry = _REGISTERED[name]
        if isinstance(entry, str):
            entry = EntryPoint(name, entry, plugins.BACKENDS).load()
    elif name in (found := plugins.found(plugins.BACKENDS)):
        entry = _load(found[name])
    else:
        raise ConfigError(f"unknown backend {name!r}: choose one of {', '.join(names())}") from None
    if not (isinstance(entry, type) and issubclass(entry, Backend)):
        raise ConfigError(f"the backend {name!r} is not a mixchat Backend class ({entry!r})")
    _LOADED[name] = entry
    return entry


def _load(point: EntryPoint) -> object:
    """Import a backend plugin; a broken one is one clear line, not a traceback."""
    try:
        return point.load()
    except MixchatError:
        raise
    except Exception as error:
        raise ConfigError(
            f"the backend {point.name!r} ({point.value}) cannot be imported: "
            f"{type(error).__name__}: {error}"
        ) from error


def get_backend(settings: Settings) -> Backend:
    """The process's shared instance for these settings: one model loaded once, for all sessions."""
    cls = backend_class(settings.backend)
    key = cls.instance_key(settings)
    if key not in _INSTANCES:
        _INSTANCES[key] = cls(settings)
    return _INSTANCES[key]


def instances() -> list[Backend]:
    """The shared instances loaded in this process (for the admin's status view)."""
    return list(_INSTANCES.values())


async def close_all() -> None:
    """Release every shared instance (at shutdown, and between tests)."""
    instances = list(_INSTANCES.values())
    _INSTANCES.clear()
    for instance in instances:
        await instance.aclose()


__all__ = [
    "Backend",
    "CancelToken",
    "Capability",
    "ChatRequest",
    "Done",
    "Event",
    "Queued",
    "Reply",
    "TextDelta",
    "ToolCall",
    "Usage",
    "backend_class",
    "close_all",
    "get_backend",
    "instances",
    "names",
    "register",
]
