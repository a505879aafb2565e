"""What the remote backends (``mistral``, ``openai``) share.

Both SDKs speak ``httpx2`` and stream OpenAI-shaped chunks, so the hard parts live here once:

* **timeouts**: connect and read, from the settings (the SDKs' defaults are minutes or none);
* **retries**: 429 and 5xx answers are retried with exponential backoff, honouring the
  server's ``Retry-After``; only the opening of a stream is retried, never after the first
  token, so a reply is never shown twice;
* **errors**: every SDK or transport failure becomes one :mod:`mixchat.errors` class with a
  one-line message that never contains the API key (:meth:`RemoteBackend.failure`);
* **streams**: chunks become events (:class:`ReplyAssembler`); a stream that breaks or ends
  without a finish reason raises ``StreamCut``, so the text already shown stays and is marked;
  closing the generator (cancel) closes the HTTP response, which the server sees as a disconnect.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import random
import re
import time
from abc import abstractmethod
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterator,
    Mapping,
)
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx2

from mixchat.backends.base import Backend, ChatRequest, ToolCall
from mixchat.backends.events import TextDelta, Usage
from mixchat.config import SamplingParams, Settings
from mixchat.errors import (
    AuthError,
    BackendError,
    BadRequest,
    ContextOverflow,
    MixchatError,
    RateLimited,
    ServerError,
    StreamCut,
    Timeout,
    Unreachable,
)
from mixchat.outcome import Outcome

log = logging.getLogger(__name__)

ClientT = TypeVar("ClientT")
T = TypeVar("T")

#: Answers worth trying again: rate limits and a server that is (briefly) failing.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_OVERFLOW = re.compile(
    r"context (length|window|size)|too many tokens|exceeds? the (model|context)", re.IGNORECASE
)
_MAX_REASON = 240


@dataclass(frozen=True)
class HttpStatus:
    """An error answer, as each SDK's exception carries it."""

    code: int
    body: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Failure:
    """A mapped failure: the error to raise, and whether (and when) trying again may help."""

    error: BackendError
    retryable: bool = False
    retry_after: float | None = None


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter; a server's ``Retry-After`` wins when it sends one."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: A server that asks for a longer wait gets an error at once rather than a frozen UI.
    max_retry_after: float = 60.0

    def delay(self, attempt: int, failure: Failure) -> float | None:
        """Seconds to wait before retry ``attempt + 1``; None: give up."""
        if not failure.retryable or attempt >= self.max_retries:
            return None
        if failure.retry_after is not None:
            return failure.retry_after if failure.retry_after <= self.max_retry_after else None
        backoff = min(self.max_delay, self.base_delay * 2**attempt)
        return backoff * random.uniform(0.5, 1.0)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a 429/503 answer asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or
    as an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_reason(body: str) -> str:
    """The human part of an error body: OpenAI's ``error.message``, Mistral's ``message``,
    FastAPI's ``detail`` list, or the text itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    return _reason_from(data) or body


def _reason_from(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return "; ".join(filter(None, (_reason_from(item) for item in data[:3])))
    if isinstance(data, dict):
        if "msg" in data:  # a pydantic validation error: say which field
            where = ".".join(str(part) for part in data.get("loc", ()))
            return f"{where}: {data['msg']}" if where else str(data["msg"])
        for key in ("message", "error", "detail"):
            reason = _reason_from(data.get(key))
            if reason:
                return reason
    return ""


def one_line(text: str, secret: str | None = None, limit: int = _MAX_REASON) -> str:
    """``text`` squeezed onto one short line, with ``secret`` blanked out wherever it appears."""
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def display_url(url: str) -> str:
    """``url`` without credentials (``https://user:pass@host``), for messages."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def key_fingerprint(key: str | None) -> str | None:
    """A short hash that tells keys apart without revealing them (for instance keys)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else None


class RemoteBackend(Backend, Generic[ClientT]):
    """A backend that streams from an HTTP server through its SDK.

    Subclasses say how to build the SDK client (:meth:`_make_client`), open a stream
    (:meth:`_open`), and read a status error of their SDK (:meth:`_http_status`).
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
        )

    @property
    def api_key(self) -> str | None:
        secret = getattr(self.settings, self.api_key_field)
        return (secret.get_secret_value() or None) if secret else None

    @property
    def server(self) -> str:
        """How messages name the server: ``the server at http://...``."""
        return f"the server at {display_url(self.settings.base_url or '')}"

    @property
    def timeout(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.settings.read_timeout, connect=self.settings.connect_timeout)

    # -- what each backend provides

    @abstractmethod
    def _make_client(self) -> ClientT:
        """A new SDK client with this backend's URL, key and timeouts, and no SDK retries."""

    @abstractmethod
    async def _close_client(self, client: ClientT) -> None: ...

    @abstractmethod
    async def _open(self, request: ChatRequest) -> Any:
        """Open the reply stream (one attempt): an async iterator of chunks with ``close()``."""

    @abstractmethod
    def _http_status(self, exc: BaseException) -> HttpStatus | None:
        """The HTTP error answer ``exc`` carries, if it is this SDK's status error."""

    def _chunk(self, item: Any) -> Any:
        """The OpenAI-shaped chunk inside one streamed item."""
        return item

    def _unknown_model(self, status: HttpStatus, reason: str) -> str | None:
        """A message when the answer says the model does not exist; None otherwise."""
        return None

    # -- the shared machinery

    def client(self) -> ClientT:
        """The SDK client for the running event loop (connections cannot cross loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._make_client()
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await self._close_client(client)

    async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage | ToolCall]:
        stream = await self.with_retries(lambda: self._open(request))
        reply = ReplyAssembler(self.server, request.assistant_prefix)
        try:
            async with aclosing(self.guard(stream)) as items:
                async for item in items:
                    for event in reply.feed(self._chunk(item)):
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
                    raise self._given_up(failure, tries) from exc
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

    def _given_up(self, failure: Failure, tries: int) -> BackendError:
        """The final error, saying how hard we tried and how long the server asked to wait."""
        notes = []
        if tries:
            notes.append(f"gave up after {tries} {'retry' if tries == 1 else 'retries'}")
        wait = failure.retry_after
        if wait is not None and wait > self.retry.max_retry_after:
            notes.append(f"it asks to wait {wait:.0f} s")
        error = failure.error
        return type(error)(f"{error}; {', '.join(notes)}") if notes else error

    def failure(self, exc: BaseException, *, streaming: bool) -> Failure:
        """Map an SDK or transport exception to mixchat's error tree (the one place it happens)."""
        status = self._http_status(exc)
        if status is not None:
            return self._status_failure(status)
        transport = _transport_error(exc)
        if isinstance(transport, httpx2.ConnectTimeout):
            return Failure(
                Timeout(
                    f"could not connect to {self.server} within {self.settings.connect_timeout:g} s "
                    "(connect_timeout): is the host right and reachable?"
                )
            )
        if isinstance(transport, httpx2.TimeoutException):
            return Failure(
                Timeout(
                    f"{self.server} sent nothing for {self.settings.read_timeout:g} s (read_timeout): "
                    "it may be overloaded; try again, or raise read_timeout"
                )
            )
        if isinstance(transport, httpx2.ConnectError):
            cause = re.sub(r"^\[Errno -?\d+\]\s*", "", str(transport)) or "connection failed"
            return Failure(
                Unreachable(
                    f"cannot connect to {self.server}: {one_line(cause, self.api_key).lower()}; "
                    "is it running, and is the URL right?"
                )
            )
        if isinstance(transport, httpx2.TransportError):
            if streaming:
                return Failure(
                    StreamCut(
                        f"{self.server} broke off the reply mid-stream "
                        f"({type(transport).__name__}); the partial reply is kept"
                    )
                )
            return Failure(
                ServerError(f"{self.server} closed the connection without an answer"),
                retryable=True,
            )
        message = one_line(str(exc), self.api_key) or type(exc).__name__
        return Failure(ServerError(f"{self.server} failed: {message}"))

    def _status_failure(self, status: HttpStatus) -> Failure:
        reason = one_line(server_reason(status.body), self.api_key)
        code = status.code
        detail = f" (HTTP {code}: {reason})" if reason else f" (HTTP {code})"
        wait = retry_after(status.headers) if code in RETRY_STATUSES else None
        error: BackendError
        if code in (401, 403):
            error = AuthError(f"{self.server} refused the API key{detail}: {self.api_key_hint}")
        elif code == 429:
            error = RateLimited(f"{self.server} is rate limiting requests{detail}")
        elif code >= 500:
            error = ServerError(f"{self.server} failed{detail}")
        elif (unknown := self._unknown_model(status, reason)) is not None:
            error = BadRequest(unknown)
        elif _OVERFLOW.search(reason):
            error = ContextOverflow(f"the conversation is too long for the model: {reason}")
        else:
            error = BadRequest(
                f"{self.server} rejected the request (HTTP {code}): {reason or 'no reason given'}"
            )
        return Failure(error, retryable=code in RETRY_STATUSES, retry_after=wait)


def _transport_error(exc: BaseException) -> httpx2.TransportError | None:
    """The httpx2 transport error behind ``exc`` (the OpenAI SDK wraps them)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, httpx2.TransportError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


async def _close_quietly(stream: Any) -> None:
    """Close an SDK stream (and so its HTTP response); a failure here must not hide the reply."""
    try:
        await stream.close()
    except Exception:  # the connection may be broken already
        log.debug("closing the stream failed", exc_info=True)


_FINISH: dict[str, Outcome] = {"length": Outcome.LENGTH, "model_length": Outcome.LENGTH}


@dataclass
class _PendingCall:
    index: int | None
    id: str | None
    name: str
    arguments: list[str] = field(default_factory=list)


class ReplyAssembler:
    """Turns OpenAI-shaped stream chunks (both SDKs use that shape) into mixchat events.

    Text is yielded as it comes; tool calls are collected from their fragments and yielded at
    the end with the usage. A stream that ends without a finish reason was cut.
    """

    def __init__(self, server: str, prefix: str = "") -> None:
        self.server = server
        self.finish_reason: str | None = None
        self.usage: Any = None
        self._calls: list[_PendingCall] = []
        self._prefix = prefix
        self._echo_check = bool(prefix)  # until we know whether the server repeats the prefix
        self._held = ""

    def feed(self, chunk: Any) -> Iterator[TextDelta]:
        if getattr(chunk, "usage", None):
            self.usage = chunk.usage
        for choice in getattr(chunk, "choices", None) or ():
            delta = choice.delta
            text = _text_of(getattr(delta, "content", None))
            if text:
                text = self._without_echoed_prefix(text)
                if text:
                    yield TextDelta(text)
            for call in getattr(delta, "tool_calls", None) or ():
                self._add_call(call)
            if isinstance(choice.finish_reason, str):
                self.finish_reason = choice.finish_reason

    def finish(self) -> Iterator[ToolCall | Usage | TextDelta]:
        if self._held:
            yield TextDelta(self._held)
            self._held = ""
        if self.finish_reason is None:
            raise StreamCut(
                f"{self.server} ended the reply stream before the reply was "
                "complete; the partial reply is kept"
            )
        if self.finish_reason == "error":
            raise ServerError(f"{self.server} stopped the reply with an error")
        for call in self._calls:
            yield ToolCall(call.name, "".join(call.arguments) or "{}")
        usage = self.usage
        yield Usage(
            prompt_tokens=_int(getattr(usage, "prompt_tokens", None)),
            completion_tokens=_int(getattr(usage, "completion_tokens", None)),
            outcome=_FINISH.get(self.finish_reason, Outcome.STOP),
        )

    def _without_echoed_prefix(self, text: str) -> str:
        """Servers differ on whether a continued reply repeats the prefix: drop it if so."""
        if not self._echo_check:
            return text
        held = self._held + text
        if self._prefix.startswith(held):
            self._held = held  # still undecided
            return ""
        self._echo_check, self._held = False, ""
        return held.removeprefix(self._prefix)

    def _add_call(self, call: Any) -> None:
        function = call.function
        name = getattr(function, "name", None) or ""
        call_id = getattr(call, "id", None)
        index = getattr(call, "index", None)
        last = self._calls[-1] if self._calls else None
        starts = name and (
            last is None or index != last.index or (call_id and last.id and call_id != last.id)
        )
        if starts or last is None:
            last = _PendingCall(index, call_id, name)
            self._calls.append(last)
        arguments = getattr(function, "arguments", None)
        if isinstance(arguments, str):
            last.arguments.append(arguments)
        elif arguments:  # Mistral may send the arguments as an object
            last.arguments.append(json.dumps(arguments))


def _text_of(content: Any) -> str:
    """Text of a delta's content: a string, or (Mistral) a list of chunks of which the text
    ones count (reasoning chunks of thinking models do not)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            _text_of(getattr(part, "text", None))
            for part in content
            if getattr(part, "type", "text") == "text"
        )
    return ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


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
