"""The ``openai`` backend: any OpenAI-compatible server (vLLM, llama.cpp's server, TGI's
messages API, Ollama) through the ``openai`` SDK.

``settings.base_url`` (or ``OPENAI_BASE_URL``) names the server; the API key is optional, as
local servers ignore it; an empty ``settings.model`` means the first model the server lists.
Servers differ in what they accept beyond the OpenAI fields, so the extras (``top_k``,
repetition penalty, usage in the stream) and the JSON-schema format are tried first and given
up, for this server, when it rejects them by name (:class:`Dialect`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from mixchat.backends.base import Capability, ChatRequest
from mixchat.backends.remote import HttpStatus, RemoteBackend, display_url, sampling_fields
from mixchat.config import SamplingParams, Settings
from mixchat.errors import ConfigError, MissingDependency

try:
    from openai import APIStatusError, AsyncOpenAI, DefaultAsyncHttpxClient
except ImportError as error:  # pragma: no cover - openai is a core dependency
    raise MissingDependency("openai", purpose="the openai backend") from error

#: Sent to servers that need no key: the SDK refuses to run without one.
NO_KEY = "not-needed"
#: Fields outside the OpenAI API that the servers we target understand; a server that rejects
#: one of them by name gets requests without any of them from then on.
EXTRA_FIELDS = (
    "top_k",
    "repetition_penalty",
    "repeat_penalty",
    "stream_options",
    "continue_final_message",
    "add_generation_prompt",
)


@dataclass(frozen=True)
class Dialect:
    """What a server accepts, learned from the reasons of its error answers."""

    extras: bool = True
    schema_format: Literal["json_schema", "json_object"] = "json_schema"

    def fallback(self, reason: str, wants_schema: bool) -> Dialect | None:
        """The next thing to try after a rejection for ``reason``; None: nothing left."""
        reason = reason.lower()
        if (
            wants_schema
            and self.schema_format == "json_schema"
            and ("response_format" in reason or "json_schema" in reason)
        ):
            return replace(self, schema_format="json_object")  # llama-cpp-python's form
        if self.extras and any(name in reason for name in EXTRA_FIELDS):
            return replace(self, extras=False)
        return None


class OpenAIBackend(RemoteBackend[AsyncOpenAI]):
    name = "openai"
    default_model = None  # the server's first model
    capabilities = frozenset(
        {Capability.JSON_SCHEMA, Capability.JSON_MODE, Capability.TOOL_CALLING}
    )
    api_key_field = "openai_api_key"
    api_key_hint = (
        "check OPENAI_API_KEY, openai_api_key in the config file, or the key entered in the app"
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.dialect = Dialect()
        self._model: str | None = self.settings.model
        self._context_length: int | None = None

    @property
    def model_name(self) -> str:
        return self._model or "the server's first model"

    @property
    def context_length(self) -> int | None:
        return self._context_length

    @property
    def base_url(self) -> str | None:
        return _v1_url(self.settings.base_url)

    @property
    def server(self) -> str:
        return f"the server at {display_url(self.base_url)}" if self.base_url else "the OpenAI API"

    async def load_model(self) -> None:
        if not self.base_url and not self.api_key:
            raise ConfigError(
                "the openai backend needs a server URL: set --base-url (for "
                "example http://127.0.0.1:8000/v1 for vLLM) or OPENAI_BASE_URL"
            )
        if not self._model:
            await self._discover_model()

    async def served_models(self) -> list[str]:
        """The names of the models the server serves (its ``/v1/models``)."""
        return [model.id for model in await self._listed_models()]

    async def _listed_models(self) -> list[Any]:
        page = await self.with_retries(lambda: self.client().models.list())
        return list(page.data)

    async def _discover_model(self) -> None:
        """Use the first model the server lists (servers that serve one model list just it)."""
        listed = await self._listed_models()
        if not listed:
            raise ConfigError(
                f"{self.server} lists no models: set the model name "
                "(--model, or model in the config file)"
            )
        self._model = listed[0].id
        length = (listed[0].model_extra or {}).get("max_model_len")  # vLLM says it
        self._context_length = length if isinstance(length, int) else None

    def make_client(self) -> AsyncOpenAI:
        transport = self.transport()
        return AsyncOpenAI(
            api_key=self.api_key or NO_KEY,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
            http_client=None
            if transport is None
            else DefaultAsyncHttpxClient(transport=transport, trust_env=False),
        )

    async def close_client(self, client: AsyncOpenAI) -> None:
        await client.close()

    async def open_stream(self, request: ChatRequest) -> Any:
        """Open the stream, falling back through what this server turns out not to accept."""
        dialect = self.dialect
        while True:
            try:
                stream = await self.client().chat.completions.create(
                    **self._arguments(request, dialect)
                )
            except APIStatusError as exc:
                # Some servers answer 500, not 400, to a field they do not know: the reason decides.
                error = self.failure(exc, streaming=False).error
                next_dialect = dialect.fallback(str(error), request.json_schema is not None)
                if next_dialect is None:
                    raise
                dialect = next_dialect
                continue
            self.dialect = dialect
            return stream

    def _arguments(self, request: ChatRequest, dialect: Dialect) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [dict(m) for m in request.messages]
        extras: dict[str, Any] = {
            "stream_options": {"include_usage": True},
            **_extra_sampling(request.params),
        }
        if request.assistant_prefix:  # vLLM's way to continue a reply; others start a new turn
            messages.append({"role": "assistant", "content": request.assistant_prefix})
            extras.update(continue_final_message=True, add_generation_prompt=False)
        arguments: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "stream": True,
            **sampling_fields(request.params, seed_field="seed"),
        }
        if request.json_schema is not None:
            arguments["response_format"] = _response_format(request.json_schema, dialect)
        if request.tools:
            arguments["tools"] = request.tools
        if dialect.extras:
            arguments["extra_body"] = extras
        return arguments

    def http_status(self, exc: BaseException) -> HttpStatus | None:
        if isinstance(exc, APIStatusError):
            return HttpStatus(exc.status_code, exc.response.text, exc.response.headers)
        return None

    def unknown_model(self, status: HttpStatus, reason: str) -> str | None:
        if status.code != 404 or "model" not in reason.lower():
            return None
        listing = f"{display_url(self.base_url or '')}/models"
        return (
            f"{self.server} has no model {self._model!r} ({reason}): leave the model empty "
            f"to use the server's first one, or pick one from {listing}"
        )


def _extra_sampling(params: SamplingParams) -> dict[str, Any]:
    """Samplers outside the OpenAI API, by their names in vLLM (``repetition_penalty``) and
    llama.cpp (``repeat_penalty``); servers ignore the name they do not use."""
    values: dict[str, Any] = {}
    if params.top_k > 0:
        values["top_k"] = params.top_k
    if params.repetition_penalty != 1.0:
        values["repetition_penalty"] = values["repeat_penalty"] = params.repetition_penalty
    return values


def _response_format(schema: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    if dialect.schema_format == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}


def _v1_url(base_url: str | None) -> str | None:
    """``base_url`` with ``/v1`` added when it is a bare host (``http://host:8000``)."""
    if not base_url:
        return None
    url = base_url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url
