"""mixchat: a private, fast chat app and Python library for Mixtral-family models.

>>> import asyncio, mixchat
>>> backend = mixchat.get_backend(mixchat.load_settings(backend="echo"))
>>> reply = asyncio.run(backend.complete(mixchat.ChatRequest([{"role": "user", "content": "hi"}])))
>>> reply.text
'hi'
"""

from __future__ import annotations

import importlib
from typing import Any

from mixchat.backends import (
    Backend,
    CancelToken,
    Capability,
    ChatRequest,
    Done,
    Queued,
    Reply,
    TextDelta,
    get_backend,
    register,
)
from mixchat.config import SamplingParams, Settings, load_settings
from mixchat.errors import BackendError, ConfigError, MixchatError
from mixchat.messages import Message
from mixchat.outcome import Outcome, Stats
from mixchat.prompt import mixtral_prompt, mixtral_token_ids

__version__ = "0.1.0"

# Loaded on first use: the agent and tools pull in their own dependencies.
_LAZY = {
    "tool": "mixchat.tools",
    "Tool": "mixchat.tools",
    "Agent": "mixchat.agent",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mixchat' has no attribute {name!r}")


__all__ = [
    "Agent",
    "Backend",
    "BackendError",
    "CancelToken",
    "Capability",
    "ChatRequest",
    "ConfigError",
    "Done",
    "Message",
    "MixchatError",
    "Outcome",
    "Queued",
    "Reply",
    "SamplingParams",
    "Settings",
    "Stats",
    "TextDelta",
    "Tool",
    "__version__",
    "get_backend",
    "load_settings",
    "mixtral_prompt",
    "mixtral_token_ids",
    "register",
    "tool",
]
