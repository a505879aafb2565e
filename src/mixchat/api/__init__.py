"""An OpenAI-compatible API on the web app's server: ``/v1/models``, ``/v1/chat/completions``.

    mixchat serve          # then: OpenAI(base_url="http://localhost:5006/v1", api_key="-")

Streaming (SSE) and not, usage, stop, seed, max_tokens, temperature, top_p, OpenAI's error
format; ``tools`` even for models with no function calling (the agent's constrained JSON).
"""

from __future__ import annotations

from mixchat.api.access import ApiAccess, OpenGate, UsageGate
from mixchat.api.handlers import api_routes
from mixchat.api.schema import ApiError, ChatCompletionRequest

__all__ = ["ApiAccess", "ApiError", "ChatCompletionRequest", "OpenGate", "UsageGate", "api_routes"]
