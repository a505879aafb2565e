"""One chat completion: an OpenAI request turned into a mixchat ``ChatRequest``, its stream
turned back into OpenAI chunks (``chat.completion.chunk``) or one ``chat.completion``.

The backend's own stream does the work: the shared model instance, its queue, cancellation
(a client that goes away sets the request's cancel token), token counts. Requests with tools
are answered whole, then sent (a call is only known once its JSON is complete).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from mixchat.api.schema import ApiError, ChatCompletionRequest
from mixchat.api.tool_calls import ToolPlan, call_text, result_text, tool_plan
from mixchat.backends import Backend, CancelToken, Capability, ChatRequest, Done, TextDelta
from mixchat.backends.queue import ANONYMOUS
from mixchat.config import Settings, validate_sampling
from mixchat.errors import ConfigError, ContextOverflow, MixchatError
from mixchat.messages import Message
from mixchat.outcome import Outcome

#: OpenAI's finish_reason for each outcome (a cancelled reply's client is gone anyway).
_FINISH = {Outcome.LENGTH: "length"}
_CONSTRAINED = frozenset({Capability.JSON_SCHEMA, Capability.JSON_MODE})


@dataclass
class Completion:
    """A request on its way through a backend, and what the client is sent."""

    backend: Backend
    request: ChatCompletionRequest
    chat: ChatRequest
    plan: ToolPlan | None
    model: str
    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))
    done: Done | None = None

    @property
    def cancel(self) -> CancelToken:
        return self.chat.cancel

    def usage(self) -> dict[str, int]:
        done = self.done
        prompt = done.prompt_tokens if done and done.prompt_tokens is not None else None
        if prompt is None:
            prompt = self.backend.count_tokens(self.chat.messages)
        completion = done.completion_tokens if done else 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    # -- streaming ----------------------------------------------------------------------------

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """``chat.completion.chunk`` objects; the usage chunk last when asked for.

        The first chunk waits for the model's first event, so a request that fails before any
        text (a conversation too long for the context) raises before anything is sent."""
        if self.plan is not None:
            content, calls = await self._whole()
            yield self._chunk({"role": "assistant", "content": ""})
            if content:
                yield self._chunk({"content": content})
            if calls:
                yield self._chunk(
                    {"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]}
                )
            yield self._chunk({}, "tool_calls" if calls else self._finish())
        else:
            started = False
            async for event in self.backend.stream(self.chat):
                if isinstance(event, TextDelta):
                    if not started:
                        started = True
                        yield self._chunk({"role": "assistant", "content": ""})
                    yield self._chunk({"content": event.text})
                elif isinstance(event, Done):
                    self.done = event
            self._raise_error()
            if not started:
                yield self._chunk({"role": "assistant", "content": ""})
            yield self._chunk({}, self._finish())
        options = self.request.stream_options
        if options is not None and options.include_usage:
            yield {**self._envelope("chat.completion.chunk"), "choices": [], "usage": self.usage()}

    async def whole(self) -> dict[str, Any]:
        """One ``chat.completion`` object."""
        content, calls = await self._whole()
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else self._finish()
        return {
            **self._envelope("chat.completion"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self.usage(),
        }

    async def _whole(self) -> tuple[str | None, list[dict[str, Any]]]:
        reply = await self.backend.complete(self.chat)
        self.done = reply.done
        self._raise_error()
        if self.plan is None:
            return reply.text, []
        return self.plan.parse(reply.text)

    def _raise_error(self) -> None:
        """A failed reply as an API error: the client's fault (400) or the model's (502)."""
        done = self.done
        if done is None or done.outcome is not Outcome.ERROR:
            return
        message = done.error or "the model failed"
        if isinstance(done.exception, ContextOverflow | ConfigError):
            raise ApiError(400, message)
        raise ApiError(502, message, type="server_error")

    def _finish(self) -> str:
        return _FINISH.get(self.done.outcome, "stop") if self.done else "stop"

    def _envelope(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **self._envelope("chat.completion.chunk"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }


def start_completion(
    backend: Backend,
    settings: Settings,
    request: ChatCompletionRequest,
    model: str,
    user: str = ANONYMOUS,
    max_tokens_cap: int | None = None,
) -> Completion:
    """The completion of ``request`` on ``backend`` (sampling: the server's, then the request's)."""
    plan = tool_plan(request)
    messages, prefix = to_messages(request.messages, plan)
    # Without max_tokens a reply may fill the context, as with OpenAI (llama.cpp caps it there).
    limit = request.token_limit or min(backend.context_length or settings.max_tokens, 131072)
    if max_tokens_cap is not None:  # the operator's limit for this model and user
        limit = min(limit, max_tokens_cap)
    overrides: dict[str, Any] = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": limit,
        "seed": request.seed,
    }
    base = settings.sampling().model_dump()
    base.update({key: value for key, value in overrides.items() if value is not None})
    base["stop"] = request.stops
    try:
        params = validate_sampling(**base)
    except MixchatError as error:
        raise ApiError(400, str(error)) from None
    chat = ChatRequest(messages, params=params, assistant_prefix=prefix, user=user)
    if plan is not None and _CONSTRAINED & backend.capabilities:
        chat.json_schema = plan.schema()
    return Completion(backend, request, chat, plan, model)


def to_messages(raw: list[dict[str, Any]], plan: ToolPlan | None) -> tuple[list[Message], str]:
    """OpenAI messages as mixchat's (one system message first, then user and assistant turns
    alternating, ending with a user turn), and the text of a trailing assistant message."""
    system: list[str] = [plan.system()] if plan is not None else []
    turns: list[Message] = []
    for index, message in enumerate(raw):
        role = message.get("role")
        text = _content(message.get("content"), index)
        if role in ("system", "developer"):
            system.append(text)
            continue
        if role == "assistant":
            calls = message.get("tool_calls") or []
            text = "\n".join([text] * bool(text) + [call_text(call) for call in calls])
        elif role == "tool":
            role, text = "user", result_text(text)
        elif role != "user":
            raise ApiError(400, f"invalid role {role!r} in messages[{index}]", "messages")
        speaker: Literal["user", "assistant"] = "assistant" if role == "assistant" else "user"
        if turns and turns[-1]["role"] == speaker:
            turns[-1] = Message(role=speaker, content=f"{turns[-1]['content']}\n\n{text}")
        else:
            turns.append(Message(role=speaker, content=text))
    prefix = ""
    if turns and turns[-1]["role"] == "assistant":
        prefix = turns.pop()["content"]
    if not turns or turns[0]["role"] != "user":
        raise ApiError(400, "messages must contain a user message first", param="messages")
    head = [Message(role="system", content="\n\n".join(system))] if system else []
    return head + turns, prefix


def _content(content: Any, index: int) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise ApiError(
                    400, f"messages[{index}]: only text content is supported", "messages"
                )
        return "".join(parts)
    raise ApiError(400, f"messages[{index}].content must be a string", "messages")
