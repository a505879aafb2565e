"""The ``mistral`` backend: Mistral's API (or a server speaking it) through the ``mistralai`` SDK.

The key comes from ``MISTRAL_API_KEY``, the config file or the app (``settings.mistral_api_key``);
``settings.base_url`` points the SDK at a self-hosted or proxied endpoint. Mistral rejects
fields it does not know, so only what it accepts is sent: no ``top_k`` or repetition penalty.
Timeouts, retries and error mapping are shared with ``openai`` in :mod:`mixchat.backends.remote`.
"""

from __future__ import annotations

from typing import Any

import httpx2

from mixchat.backends.base import Capability, ChatRequest
from mixchat.backends.remote import HttpStatus, RemoteBackend, sampling_fields
from mixchat.errors import ConfigError, MissingDependency

try:
    from mistralai.client import Mistral
    from mistralai.client.errors import MistralError
except ImportError as error:  # pragma: no cover - mistralai is a core dependency
    raise MissingDependency("mistralai", purpose="the mistral backend") from error

#: The hosted chat models to suggest (Mistral retires old names; the "-latest" aliases move on).
RECOMMENDED = ("mistral-small-latest", "mistral-medium-latest", "mistral-large-latest")


class _TimeoutClient(httpx2.AsyncClient):
    """Applies the client's connect and read timeouts to every request.

    The SDK stamps each request with one total timeout (5 minutes when none is given), which
    would override a client's own; this puts the configured ones back.
    """

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        request.extensions["timeout"] = self.timeout.as_dict()
        return await super().send(request, **kwargs)


class MistralBackend(RemoteBackend[Mistral]):
    name = "mistral"
    default_model = "mistral-small-latest"
    known_models = (
        *RECOMMENDED,
        "magistral-small-latest",
        "magistral-medium-latest",
        "ministral-8b-latest",
        "ministral-3b-latest",
        "codestral-latest",
        "open-mistral-nemo",
        "open-mixtral-8x7b",
        "open-mixtral-8x22b",
    )
    capabilities = frozenset({Capability.JSON_MODE, Capability.TOOL_CALLING})
    api_key_field = "mistral_api_key"
    api_key_hint = (
        "check MISTRAL_API_KEY, mistral_api_key in the config file, or the key entered in the app"
    )

    @property
    def server(self) -> str:
        return super().server if self.settings.base_url else "the Mistral API"

    @property
    def description(self) -> str:
        return f"{self.model_name} ({self.server})"

    async def load_model(self) -> None:
        if not self.api_key and not self.settings.base_url:
            raise ConfigError(
                "no Mistral API key: set MISTRAL_API_KEY, add mistral_api_key "
                "to the config file, or enter it in the app"
            )

    def make_client(self) -> Mistral:
        transport = self.transport()
        return Mistral(
            api_key=self.api_key,
            server_url=_server_url(self.settings.base_url),
            async_client=_TimeoutClient(
                timeout=self.timeout,
                follow_redirects=True,
                transport=transport,
                trust_env=transport is None,
            ),
        )

    async def close_client(self, client: Mistral) -> None:
        await client.sdk_configuration.async_client.aclose()  # type: ignore[union-attr]

    async def open_stream(self, request: ChatRequest) -> Any:
        return await self.client().chat.stream_async(**self._arguments(request))

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        """The SDK call's arguments: only fields the Mistral API accepts."""
        messages: list[dict[str, Any]] = [dict(m) for m in request.messages]
        if request.assistant_prefix:
            messages.append(
                {"role": "assistant", "content": request.assistant_prefix, "prefix": True}
            )
        arguments: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            **sampling_fields(request.params, seed_field="random_seed"),
        }
        if request.json_schema is not None:
            arguments["response_format"] = {"type": "json_object"}
        if request.tools:
            arguments["tools"] = request.tools
        return arguments

    def chunk(self, item: Any) -> Any:
        return item.data  # a CompletionEvent wraps the chunk

    def http_status(self, exc: BaseException) -> HttpStatus | None:
        if isinstance(exc, MistralError) and exc.status_code >= 400:  # not a parse failure
            return HttpStatus(exc.status_code, exc.body, exc.headers)
        return None

    def unknown_model(self, status: HttpStatus, reason: str) -> str | None:
        if status.code not in (400, 404) or not _says_invalid_model(status.body, reason):
            return None
        return (
            f"{self.server} does not know the model {self.model_name!r} (it may have been "
            f"retired): use one of {', '.join(RECOMMENDED)}, or see `mixchat models`"
        )


def _server_url(base_url: str | None) -> str | None:
    """The SDK adds ``/v1/...`` itself, so a URL given with ``/v1`` is trimmed."""
    if not base_url:
        return None
    url = base_url.rstrip("/")
    return url.removesuffix("/v1")


def _says_invalid_model(body: str, reason: str) -> bool:
    text = f"{body} {reason}".lower()
    return "invalid_model" in text or "invalid model" in text or "model not found" in text
