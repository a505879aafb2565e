"""The backend interface: streaming, stats, cancellation, the queue, the registry."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

import mixchat
from mixchat.backends import (
    Backend,
    CancelToken,
    ChatRequest,
    Done,
    TextDelta,
    backend_class,
    get_backend,
    register,
)
from mixchat.backends.queue import RequestQueue
from mixchat.backends.threads import iterate_in_thread
from mixchat.config import SamplingParams, load_settings
from mixchat.errors import ConfigError, RateLimited

USER = [{"role": "user", "content": "one two three four five"}]


async def collect(backend: Backend, request: ChatRequest) -> list:
    return [event async for event in backend.stream(request)]


async def test_echo_streams_word_by_word_and_ends_with_stats() -> None:
    backend = get_backend(load_settings(backend="echo", echo_delay=0.001))
    events = await collect(backend, ChatRequest(USER))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["one ", "two ", "three ", "four ", "five"]
    done = events[-1]
    assert isinstance(done, Done) and done.ok and done.outcome == "stop"
    assert done.completion_tokens == 5 and done.time_to_first_token is not None
    assert done.tokens_per_second and done.tokens_per_second > 0


async def test_max_tokens_ends_with_length() -> None:
    backend = get_backend(load_settings(backend="echo", echo_delay=0))
    reply = await backend.complete(ChatRequest(USER, SamplingParams(max_tokens=2)))
    assert reply.text == "one two " and reply.done.outcome == "length"


async def test_cancel_stops_promptly_and_keeps_the_partial_reply() -> None:
    backend = get_backend(load_settings(backend="echo", echo_delay=0.05))
    request = ChatRequest([{"role": "user", "content": " ".join(["w"] * 200)}])
    seen: list[str] = []
    started = time.perf_counter()
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            seen.append(event.text)
            if len(seen) == 3:
                request.cancel.cancel()
        elif isinstance(event, Done):
            done = event
    assert done.outcome == "cancelled" and len(seen) == 3
    assert time.perf_counter() - started < 1.0  # not the 10 s the whole reply takes


async def test_cancel_interrupts_a_stalled_backend() -> None:
    class Stalled(Backend):
        name = "stalled"
        closed = False

        async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta]:
            try:
                yield TextDelta("partial")
                await asyncio.sleep(60)
            finally:
                Stalled.closed = True

    backend = Stalled(load_settings())
    request = ChatRequest(USER)
    asyncio.get_running_loop().call_later(0.2, request.cancel.cancel)
    started = time.perf_counter()
    events = await collect(backend, request)
    assert time.perf_counter() - started < 2
    assert events[0] == TextDelta("partial") and events[-1].outcome == "cancelled"
    assert Stalled.closed  # the backend's cleanup ran (an HTTP stream would be closed)


async def test_a_stop_leaves_the_reader_task_uncancelled_and_outside_cancels_still_work() -> None:
    """The stop cancels the waiting reader and takes it back (as asyncio.timeout does): the
    task that read the stream is not left cancelling, and a cancellation from outside (a
    closed page) still reaches it."""

    class Stalled(Backend):
        name = "stalled"

        async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta]:
            yield TextDelta("partial")
            await asyncio.sleep(60)

    backend = Stalled(load_settings())
    request = ChatRequest(USER)
    asyncio.get_running_loop().call_later(0.1, request.cancel.cancel)
    events = await collect(backend, request)
    assert events[-1].outcome == "cancelled"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation is pending on this task

    reader = asyncio.create_task(collect(backend, ChatRequest(USER)))
    await asyncio.sleep(0.1)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader


async def test_failures_end_the_stream_with_one_line() -> None:
    class Failing(Backend):
        name = "failing"

        async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta]:
            yield TextDelta("so far")
            raise RateLimited("rate limited by the server: wait a minute and retry")

    events = await collect(Failing(load_settings()), ChatRequest(USER))
    done = events[-1]
    assert events[0] == TextDelta("so far")
    assert (done.outcome, done.error_type) == ("error", "RateLimited")
    assert done.error == "rate limited by the server: wait a minute and retry"


async def test_a_failure_keeps_its_type_to_the_caller() -> None:
    """The mapped exception rides on Done, so a library user can ``except RateLimited``."""

    class Failing(Backend):
        name = "failing"

        async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta]:
            yield TextDelta("so far")
            raise RateLimited("rate limited by the server")

    reply = await Failing(load_settings()).complete(ChatRequest(USER))
    assert isinstance(reply.done.exception, RateLimited) and reply.text == "so far"
    with pytest.raises(RateLimited, match="rate limited by the server"):
        reply.raise_for_error()
    fine = await get_backend(load_settings(backend="echo", echo_delay=0)).complete(
        ChatRequest(USER)
    )
    assert fine.raise_for_error() is fine and fine.done.exception is None


async def test_a_failing_load_is_reported_not_raised() -> None:
    class Unloadable(Backend):
        name = "unloadable"

        async def load_model(self) -> None:
            raise mixchat.errors.ModelLoadError("no such model")

        async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta]:
            yield TextDelta("never")

    done = (await Unloadable(load_settings()).complete(ChatRequest(USER))).done
    assert (done.outcome, done.error) == ("error", "no such model")


async def test_queue_is_first_come_first_served_and_reports_positions() -> None:
    queue = RequestQueue()
    order: list[str] = []
    positions: dict[str, list[int]] = {}

    async def request(name: str, hold: float) -> None:
        positions[name] = [p async for p in queue.wait_turn()]
        order.append(name)
        await asyncio.sleep(hold)
        queue.release()

    first = asyncio.create_task(request("a", 0.1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(request(n, 0.01)) for n in "bcd"]
    await asyncio.gather(first, *rest)
    assert order == ["a", "b", "c", "d"]
    assert positions == {"a": [], "b": [1], "c": [2, 1], "d": [3, 2, 1]}
    assert not queue.busy


async def test_a_waiter_that_leaves_the_queue_frees_its_place() -> None:
    queue = RequestQueue()
    async with queue.slot():
        waiter = asyncio.create_task(queue.slot().__aenter__())
        await asyncio.sleep(0.01)
        assert queue.waiting == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert queue.waiting == 0
    assert not queue.busy


async def test_iterate_in_thread_stops_the_worker_when_the_reader_leaves() -> None:
    produced: list[int] = []
    finished = threading.Event()

    def produce(stop: threading.Event) -> Iterator[int]:
        try:
            for index in range(1000):
                produced.append(index)
                yield index
                time.sleep(0.005)
        finally:
            finished.set()

    async with contextlib.aclosing(iterate_in_thread(produce)) as items:
        async for index in items:
            if index == 3:
                break
    assert finished.is_set() and len(produced) < 10


async def test_iterate_in_thread_raises_the_workers_error() -> None:
    def produce(stop: threading.Event) -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        async for _ in iterate_in_thread(produce):
            pass


async def test_cancel_token_wakes_waiters_from_another_thread() -> None:
    token = CancelToken()
    threading.Timer(0.05, token.cancel).start()
    await asyncio.wait_for(token.wait(), 2)
    assert token.is_set()


def test_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'nope': choose one of echo, llamacpp"):
        backend_class("nope")


async def test_third_party_backends_register_by_name() -> None:
    class Shout(Backend):
        name = "shout"

        async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta]:
            yield TextDelta(request.messages[-1]["content"].upper())

    register("shout", Shout)
    backend = get_backend(load_settings(backend="shout"))
    assert get_backend(load_settings(backend="shout")) is backend  # one instance per process
    assert (await backend.complete(ChatRequest(USER))).text == "ONE TWO THREE FOUR FIVE"


def test_import_mixchat_loads_no_model_library() -> None:
    code = (
        "import sys, mixchat; heavy = {'llama_cpp', 'torch', 'transformers', 'mistralai', 'openai', "
        "'panel', 'sqlalchemy'} & set(sys.modules); print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
