"""The backend interface: one abstract streaming method, everything else built on it.

What a backend author writes (the whole contract, in one place)::

    class MyBackend(Backend):
        name = "mine"                      # its --backend name
        capabilities = frozenset()         # Capability flags: what the agent may rely on
        default_model = None               # and known_models, for `mixchat models`

        async def generate(self, request: ChatRequest) -> AsyncIterator[...]:
            ...  # required: yield TextDelta (and Queued, Usage, ToolCall) for the request

        async def load_model(self) -> None: ...    # optional: slow set-up, run once
        async def aclose(self) -> None: ...        # optional: release the model
        def count_tokens(self, messages) -> int: ...  # optional: exact (declare TOKENIZER)
        # optional too: the context_length and description properties, and the
        # instance_key classmethod (which settings make a separate instance).

Register it in its package's ``pyproject.toml`` (see CONTRIBUTING.md)::

    [project.entry-points."mixchat.backends"]
    mine = "mixchat_mine:MyBackend"

Callers use :meth:`Backend.stream` (or :meth:`Backend.complete`): it loads the model once,
watches the request's cancel token, turns every failure into a final ``Done`` that keeps the
exception, and measures time to first token and tokens per second the same way for every
backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from mixchat.backends.events import Done, Event, Queued, TextDelta, Usage
from mixchat.backends.queue import ANONYMOUS, RequestQueue
from mixchat.config import SamplingParams, Settings
from mixchat.errors import MixchatError
from mixchat.messages import Message
from mixchat.outcome import Outcome

log = logging.getLogger(__name__)
T = TypeVar("T")


class Capability(str, enum.Enum):
    """What a backend can do beyond streaming text; the agent picks its strategy from these."""

    JSON_SCHEMA = "json_schema"  # output constrained to a JSON schema (grammar, json_schema format)
    JSON_MODE = "json_mode"  # output is some valid JSON object
    TOOL_CALLING = "tool_calling"  # native tool calls (the agent may use them as an option)
    PREFIX_CACHE = "prefix_cache"  # a prompt that extends the last one re-uses its KV cache
    TOKENIZER = "tokenizer"  # count_tokens is exact, not an estimate


class CancelToken:
    """Set by whoever wants generation stopped (the stop button, a closed page).

    Thread-safe: worker threads poll :meth:`is_set`, coroutines ``await`` :meth:`wait`.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return
            self._waiters.append((loop, future))
        await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class ChatRequest:
    """One reply to generate.

    ``messages`` are OpenAI-style dicts: an optional leading system message, then user and
    assistant turns alternating, ending with a user turn. ``assistant_prefix`` starts the reply
    with given text; the stream carries only what follows it, never the prefix itself. ``json_schema`` asks for output valid against it, where
    the backend declares ``JSON_SCHEMA`` or ``JSON_MODE``; ``tools`` are native tool definitions
    (OpenAI function format) where it declares ``TOOL_CALLING``.
    """

    messages: list[Message]
    params: SamplingParams = field(default_factory=SamplingParams)
    json_schema: dict[str, Any] | None = None
    assistant_prefix: str = ""
    tools: list[dict[str, Any]] | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    #: Who asks: the queue in front of a local model takes users in turn.
    user: str = ANONYMOUS


@dataclass(frozen=True)
class ToolCall:
    """A native tool call the model made (backends with ``TOOL_CALLING``)."""

    name: str
    arguments: str  # JSON text


@dataclass
class Reply:
    """A whole reply: the text and the final summary."""

    text: str
    done: Done
    tool_calls: list[ToolCall] = field(default_factory=list)

    def raise_for_error(self) -> Reply:
        """The reply, or its exception raised (``except RateLimited:`` works around this).

        text = (await backend.complete(request)).raise_for_error().text
        """
        self.done.raise_for_error()
        return self


class Backend(ABC):
    """A model that streams replies. Subclasses live one per file in ``mixchat.backends``."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    default_model: ClassVar[str | None] = None
    #: Models to list in ``mixchat models`` (the backend may accept others).
    known_models: ClassVar[tuple[str, ...]] = ()
    #: The fair queue in front of a model that serves one request at a time (llama.cpp,
    #: transformers); None where requests run side by side (a remote server queues its own).
    queue: RequestQueue | None = None
    #: Whether loading means loading a model (weights, here), not just connecting: its
    #: loading time is then reported apart, on the first reply's ``Done.load_time``.
    loads_model: ClassVar[bool] = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._load_time: float | None = None

    @classmethod
    def instance_key(cls, settings: Settings) -> Hashable:
        """Settings that make a different instance; requests with the same key share one."""
        return (cls.name, settings.model, settings.base_url)

    @property
    def model_name(self) -> str:
        return self.settings.model or self.default_model or self.name

    @property
    def context_length(self) -> int | None:
        """Tokens the model can attend to, prompt and reply together; None: unknown."""
        return None

    @property
    def description(self) -> str:
        """What the welcome message says about the model that answers."""
        return f"{self.model_name} ({self.name})"

    def count_tokens(self, messages: list[Message]) -> int:
        """Tokens the prompt of ``messages`` takes; an estimate unless ``TOKENIZER`` is declared."""
        return sum(len(m["content"]) // 3 + 4 for m in messages) + 2

    @property
    def prompt_format(self) -> str | None:
        """The prompt format the model is fed (``mixtral``, ``template``...); None: the
        server formats the messages itself."""
        return None

    def prompt_ids(self, messages: list[Message], assistant_prefix: str = "") -> list[int] | None:
        """The exact token ids the model evaluates for ``messages`` (the prompt inspector);
        None where the backend sends messages, not ids."""
        return None

    def prompt_text(self, messages: list[Message], assistant_prefix: str = "") -> str | None:
        """The prompt as text, special tokens written out; None where the server formats it."""
        return None

    async def load(self) -> None:
        """Load the model if it is not loaded; safe to call from many sessions at once."""
        if self._loaded:
            return
        async with self._load_lock:
            if not self._loaded:
                started = time.perf_counter()
                await self.load_model()
                if self.loads_model:  # told once, with the first reply after it
                    self._load_time = time.perf_counter() - started
                self._loaded = True

    @property
    def loaded(self) -> bool:
        return self._loaded

    async def load_model(self) -> None:
        """Slow set-up (weights, clients); run blocking parts with ``asyncio.to_thread``."""

    @abstractmethod
    def generate(
        self, request: ChatRequest
    ) -> AsyncIterator[TextDelta | Queued | Usage | ToolCall]:
        """Stream the reply. Stop promptly when ``request.cancel`` is set or on ``aclose()``."""

    async def aclose(self) -> None:
        """Release the model and its connections."""

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Event | ToolCall, None]:
        """Stream the reply's events; the last one is always a :class:`Done`. Never raises
        for model or server failures: they end the stream with ``Outcome.ERROR`` and the
        exception on ``Done.exception``."""
        usage = Usage()
        outcome = Outcome.STOP
        error: BaseException | None = None
        try:
            await self.load()  # before the meter starts: loading is not time to first token
        except Exception as exc:
            yield _Meter().done(Outcome.ERROR, usage, exc)
            return
        meter = _Meter(load_time=self._load_time)
        self._load_time = None
        try:
            # aclosing: a reader that stops early closes the backend now, not when collected.
            async with contextlib.aclosing(
                _until_cancelled(self.generate(request), request.cancel)
            ) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        if event.text:
                            meter.text(event.text)
                            yield event
                    elif isinstance(event, Usage):
                        usage = event
                    else:
                        yield event
            if request.cancel.is_set():
                outcome = Outcome.CANCELLED
            else:
                outcome = usage.outcome or Outcome.STOP
        except MixchatError as exc:
            error = exc
        except Exception as exc:  # a library failure we did not map: still one clear line
            log.exception("%s backend failed", self.name)
            error = exc
        yield meter.done(Outcome.ERROR if error else outcome, usage, error)

    async def complete(self, request: ChatRequest) -> Reply:
        """Drain :meth:`stream` into a whole reply; a failure is kept on ``reply.done`` (with the
        text so far), and :meth:`Reply.raise_for_error` raises it."""
        parts: list[str] = []
        calls: list[ToolCall] = []
        async for event in self.stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, ToolCall):
                calls.append(event)
            elif isinstance(event, Done):
                return Reply("".join(parts), event, calls)
        raise AssertionError("stream ended without Done")  # pragma: no cover


async def _until_cancelled(
    events: AsyncIterator[T], cancel: CancelToken
) -> AsyncGenerator[T, None]:
    """Iterate ``events`` until they end or ``cancel`` is set, then close them at once.

    Closing the generator runs the backend's ``finally`` blocks: the worker thread is told to
    stop, the HTTP stream is closed. A stalled server or a long prefill cannot delay the stop:
    when the token is set while we wait for the next event, the waiting task is cancelled
    (the way ``asyncio.timeout`` does it) and the cancellation is taken back here. One watcher
    per stream, nothing per event: a task and a ``wait`` per token cost the web tier more than
    the rest of an exchange.
    """
    iterator = aiter(events)
    waiting: asyncio.Task[Any] | None = None  # the task awaiting the next event, if any
    interrupted = False

    def stop_waiting(_: object) -> None:
        nonlocal interrupted
        if waiting is not None and not interrupted:
            interrupted = True
            waiting.cancel()

    watcher = asyncio.ensure_future(cancel.wait())
    watcher.add_done_callback(stop_waiting)
    try:
        while not cancel.is_set():
            task = waiting = asyncio.current_task()
            assert task is not None
            before = task.cancelling()
            try:
                event = await anext(iterator)
            except StopAsyncIteration:
                break
            except asyncio.CancelledError:
                if interrupted and task.uncancel() <= before:
                    break  # our own stop: taken back, the stream ends as cancelled
                raise  # someone else cancelled the reader too
            finally:
                waiting = None
            if interrupted:  # the backend swallowed our cancellation: take it back, stop
                task.uncancel()
                break
            yield event
    finally:
        watcher.remove_done_callback(stop_waiting)
        watcher.cancel()
        if isinstance(events, AsyncGenerator):
            await events.aclose()


class _Meter:
    """Times one stream the same way for every backend."""

    def __init__(self, load_time: float | None = None) -> None:
        self.load_time = load_time  # the model's loading before this stream, if it just loaded
        self.start = time.perf_counter()
        self.first: float | None = None
        self.chunks = 0

    def text(self, _: str) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        self.chunks += 1

    def done(self, outcome: Outcome, usage: Usage, error: BaseException | None) -> Done:
        end = time.perf_counter()
        tokens = usage.completion_tokens if usage.completion_tokens is not None else self.chunks
        rate = None
        if self.first is not None and tokens > 1 and end > self.first:
            rate = (tokens - 1) / (end - self.first)  # decode speed, after the first token
        return Done(
            outcome=outcome,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=tokens,
            time_to_first_token=None if self.first is None else self.first - self.start,
            duration=end - self.start,
            tokens_per_second=rate,
            error=None if error is None else (str(error) or type(error).__name__),
            exception=error,
            load_time=self.load_time,
        )
