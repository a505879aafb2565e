"""Errors of remote servers, mapped once: every SDK or transport failure becomes one
:mod:`mixchat.errors` class with a one-line message that never contains the API key, and says
whether trying again may help (:class:`Failure`, :class:`RetryPolicy`).

429 and 5xx answers are retried with exponential backoff, honouring the server's
``Retry-After``; the backend retries only the opening of a stream, never after the first
token, so a reply is never shown twice.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2

from mixchat.errors import (
    AuthError,
    BackendError,
    BadRequest,
    ContextOverflow,
    RateLimited,
    ServerError,
    StreamCut,
    Timeout,
    Unreachable,
)

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


def given_up(failure: Failure, tries: int, max_retry_after: float) -> BackendError:
    """The final error, saying how hard we tried and how long the server asked to wait."""
    notes = []
    if tries:
        notes.append(f"gave up after {tries} {'retry' if tries == 1 else 'retries'}")
    wait = failure.retry_after
    if wait is not None and wait > max_retry_after:
        notes.append(f"it asks to wait {wait:.0f} s")
    error = failure.error
    return type(error)(f"{error}; {', '.join(notes)}") if notes else error


def transport_failure(
    exc: BaseException,
    server: str,
    secret: str | None,
    *,
    connect_timeout: float,
    read_timeout: float,
    streaming: bool,
) -> Failure:
    """A failure without an HTTP answer: timeouts, refused connections, a stream cut off;
    ``server`` names the server in messages, ``secret`` (the API key) never appears in them."""
    transport = _transport_error(exc)
    if isinstance(transport, httpx2.ConnectTimeout):
        return Failure(
            Timeout(
                f"could not connect to {server} within {connect_timeout:g} s "
                "(connect_timeout): is the host right and reachable?"
            )
        )
    if isinstance(transport, httpx2.TimeoutException):
        return Failure(
            Timeout(
                f"{server} sent nothing for {read_timeout:g} s (read_timeout): "
                "it may be overloaded; try again, or raise read_timeout"
            )
        )
    if isinstance(transport, httpx2.ConnectError):
        cause = re.sub(r"^\[Errno -?\d+\]\s*", "", str(transport)) or "connection failed"
        return Failure(
            Unreachable(
                f"cannot connect to {server}: {one_line(cause, secret).lower()}; "
                "is it running, and is the URL right?"
            )
        )
    if isinstance(transport, httpx2.TransportError):
        if streaming:
            return Failure(
                StreamCut(
                    f"{server} broke off the reply mid-stream "
                    f"({type(transport).__name__}); the partial reply is kept"
                )
            )
        return Failure(
            ServerError(f"{server} closed the connection without an answer"),
            retryable=True,
        )
    message = one_line(str(exc), secret) or type(exc).__name__
    return Failure(ServerError(f"{server} failed: {message}"))


def status_failure(
    status: HttpStatus,
    server: str,
    secret: str | None,
    key_hint: str,
    unknown_model: Callable[[HttpStatus, str], str | None],
) -> Failure:
    """An HTTP error answer as a mixchat error: 401/403, 429, 5xx, an unknown model, a
    conversation too long, or any other rejection with the server's own reason."""
    reason = one_line(server_reason(status.body), secret)
    code = status.code
    detail = f" (HTTP {code}: {reason})" if reason else f" (HTTP {code})"
    wait = retry_after(status.headers) if code in RETRY_STATUSES else None
    error: BackendError
    if code in (401, 403):
        error = AuthError(f"{server} refused the API key{detail}: {key_hint}")
    elif code == 429:
        error = RateLimited(f"{server} is rate limiting requests{detail}")
    elif code >= 500:
        error = ServerError(f"{server} failed{detail}")
    elif (unknown := unknown_model(status, reason)) is not None:
        error = BadRequest(unknown)
    elif _OVERFLOW.search(reason):
        error = ContextOverflow(f"the conversation is too long for the model: {reason}")
    else:
        error = BadRequest(
            f"{server} rejected the request (HTTP {code}): {reason or 'no reason given'}"
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
