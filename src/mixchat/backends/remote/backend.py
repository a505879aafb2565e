"""What the remote backends (``mistral``, ``openai``) share.

Both SDKs speak ``httpx2`` and stream OpenAI-shaped chunks, so the hard parts live here once:

* **timeouts**: connect and read, from the settings (the SDKs' defaults are minutes or none);
* **retries**: 429 and 5xx answers are retried with exponential backoff, honouring the
  server's ``Retry-After``; only the opening of a stream is retried, never after the first
  token, so a reply is never shown twice;
* **errors**: every SDK or transport failure becomes one :mod:`mixchat.errors` class with a
  one-line message that never contains the API key (:mod:`.failures`);
* **streams**: chunks become events (:class:`~.assembler.ReplyAssembler`); a stream that breaks or ends
  without a finish reason raises ``StreamCut``, so the text already shown stays and is marked;
  closing the generator (cancel) closes the HTTP response, which the server sees as a disconnect.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Hashable
from contextlib import aclosing
from typing import Any, ClassVar, Generic, TypeVar

import httpx2

from mixchat.backends.base import Backend, ChatRequest, ToolCall
from mixchat.backends.events import TextDelta, Usage
from mixchat.backends.guard import cause_of
from mixchat.backends.remote import failures
from mixchat.backends.remote.assembler import ReplyAssembler
from mixchat.backends.remote.failures import (
    Failure,
    HttpStatus,
    RetryPolicy,
    display_url,
    given_up,
    key_fingerprint,
)
from mixchat.config import SamplingParams, Settings
from mixchat.errors import AddressRefused, MixchatError

log = logging.getLogger(__name__)

ClientT = TypeVar("ClientT")
T = TypeVar("T")


class RemoteBackend(Backend, Generic[ClientT]):
    """A backend that streams from an HTTP server through its SDK.

    A subclass says how to build its SDK's client (:meth:`make_client`, :meth:`close_client`),
    open a stream (:meth:`open_stream`) and read its SDK's status error (:meth:`http_status`);
    optionally where the chunk is in a streamed item (:meth:`chunk`) and how the server says
    a model does not exist (:meth:`unknown_model`). The rest is shared.
    """

    #: The settings field holding the API key, and how users set it (for messages).
    api_key_field: ClassVar[str]
    api_key_hint: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.retry = RetryPolicy(max_retries=settings.max_retries)
        self._client: ClientT | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def instance_key(cls, settings: Settings) -> Hashable:
        secret = getattr(settings, cls.api_key_field)
        key = secret.get_secret_value() if secret else None
        return (
            cls.name,
            settings.model,
            settings.base_url,
            key_fingerprint(key),
            settings.connect_timeout,
            settings.read_timeout,
            settings.max_retries,
            settings.untrusted_endpoint,
        )

    @property
    def api_key(self) -> str | None:
        secret = getattr(self.settings, self.api_key_field)
        return (secret.get_secret_value() or None) if secret else None

    @property
    def server(self) -> str:
        """How messages name the server: ``the server at http://...``."""
        return f"the server at {display_url(self.settings.base_url or '')}"

    def transport(self) -> httpx2.AsyncHTTPTransport | None:
        """For a URL a user typed, a transport that checks every address it connects to."""
        if not self.settings.untrusted_endpoint:
            return None
        from mixchat.backends.guard import AddressGuard, guarded_transport

        return guarded_transport(AddressGuard(self.settings.user_endpoint_allow))

    @property
    def timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout)

    # -- what each backend provides

    @abstractmethod
    def make_client(self) -> ClientT:
        """A new SDK client with this backend's URL, key and timeouts, and no SDK retries."""

    @abstractmethod
    async def close_client(self, client: ClientT) -> None: ...

    @abstractmethod
    async def open_stream(self, request: ChatRequest) -> Any:
        """Open the reply stream (one attempt): an async iterator of chunks with ``close()``."""

    @abstractmethod
    def http_status(self, exc: BaseException) -> HttpStatus | None:
        """The HTTP error answer ``exc`` carries, if it is this SDK's status error."""

    def chunk(self, item: Any) -> Any:
        """The OpenAI-shaped chunk inside one streamed item."""
        return item

    def unknown_model(self, status: HttpStatus, reason: str) -> str | None:
        """A message when the answer says the model does not exist; None otherwise."""
        return None

    # -- the shared machinery

    def client(self) -> ClientT:
        """The SDK client for the running event loop (connections cannot cross loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self.make_client()
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await self.close_client(client)

    async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage | ToolCall]:
        stream = await self.with_retries(lambda: self.open_stream(request))
        reply = ReplyAssembler(self.server, request.assistant_prefix)
        try:
            async with aclosing(self.guard(stream)) as items:
                async for item in items:
                    for event in reply.feed(self.chunk(item)):
                        yield event
            for end in reply.finish():
                yield end
        finally:
            await _close_quietly(stream)

    async def with_retries(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it succeeds, retrying what :class:`RetryPolicy` allows."""
        for tries in range(self.retry.max_retries + 1):
            try:
                return await attempt()
            except MixchatError:
                raise
            except Exception as exc:
                failure = self.failure(exc, streaming=False)
                delay = self.retry.delay(tries, failure)
                if delay is None:
                    raise given_up(failure, tries, self.retry.max_retry_after) from exc
                log.info(
                    "%s; retrying in %.2f s (retry %d of %d)",
                    failure.error,
                    delay,
                    tries + 1,
                    self.retry.max_retries,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def guard(self, items: AsyncIterator[T]) -> AsyncGenerator[T, None]:
        """``items`` with every failure while streaming mapped to a mixchat error."""
        try:
            async for item in items:
                yield item
        except MixchatError:
            raise
        except Exception as exc:
            raise self.failure(exc, streaming=True).error from exc

    def failure(self, exc: BaseException, *, streaming: bool) -> Failure:
        """Map an SDK or transport exception to mixchat's error tree (the one place it happens)."""
        status = self.http_status(exc)
        if status is not None:
            return self.status_failure(status)
        refused = cause_of(exc, [AddressRefused])
        if isinstance(refused, AddressRefused):  # the address guard said no: not retryable
            return Failure(refused)
        return failures.transport_failure(
            exc,
            self.server,
            self.api_key,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            streaming=streaming,
        )

    def status_failure(self, status: HttpStatus) -> Failure:
        """What an HTTP error answer of this server means."""
        return failures.status_failure(
            status, self.server, self.api_key, self.api_key_hint, self.unknown_model
        )


async def _close_quietly(stream: Any) -> None:
    """Close an SDK stream (and so its HTTP response); a failure here must not hide the reply."""
    try:
        await stream.close()
    except Exception:  # the connection may be broken already
        log.debug("closing the stream failed", exc_info=True)


def sampling_fields(params: SamplingParams, seed_field: str) -> dict[str, Any]:
    """The sampling fields the Mistral and OpenAI APIs share; only the seed's name differs."""
    values: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
    }
    if params.stop:
        values["stop"] = list(params.stop)
    if params.seed is not None:
        values[seed_field] = params.seed
    return values
