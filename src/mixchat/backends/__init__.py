"""Backends behind one streaming interface, found by name.

Built-ins register the same way third-party backends do: a name and a class (or a
``"module:Class"`` string, imported only when the backend is used, so ``import mixchat``
needs none of llama_cpp, torch, mistralai or openai).
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable

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
from mixchat.errors import ConfigError

_REGISTRY: dict[str, type[Backend] | str] = {
    "echo": "mixchat.backends.echo:EchoBackend",
    "llamacpp": "mixchat.backends.llamacpp:LlamaCppBackend",
    "transformers": "mixchat.backends.transformers:TransformersBackend",
    "mistral": "mixchat.backends.mistral:MistralBackend",
    "openai": "mixchat.backends.openai:OpenAIBackend",
}
_INSTANCES: dict[Hashable, Backend] = {}


def register(name: str, backend: type[Backend] | str) -> None:
    """Make ``backend`` available as ``name`` (replacing any backend of that name)."""
    _REGISTRY[name] = backend


def names() -> list[str]:
    return list(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; importing it may raise ``MissingDependency``."""
    try:
        entry = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}: choose one of {', '.join(names())}") from None
    if isinstance(entry, str):
        module_name, _, class_name = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), class_name)
        _REGISTRY[name] = entry
    return entry


def get_backend(settings: Settings) -> Backend:
    """The process's shared instance for these settings: one model loaded once, for all sessions."""
    cls = backend_class(settings.backend)
    key = cls.instance_key(settings)
    if key not in _INSTANCES:
        _INSTANCES[key] = cls(settings)
    return _INSTANCES[key]


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
    "names",
    "register",
]
