"""Run a blocking generator (llama.cpp, transformers) in a worker thread, read it async.

The event loop never blocks on model code: items cross to the loop with
``call_soon_threadsafe``. When the reader stops early (the user pressed stop, the page was
closed) the worker is told to stop after its current item, and the reader waits for it, so
the next request never finds the model still busy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import TypeVar

from mixchat.backends.events import Queued
from mixchat.backends.queue import ANONYMOUS, RequestQueue

T = TypeVar("T")

_END = object()


async def iterate_in_thread(
    produce: Callable[[threading.Event], Iterator[T]],
    executor: ThreadPoolExecutor | None = None,
) -> AsyncGenerator[T, None]:
    """Yield what ``produce(stop)`` yields in a worker thread; ``stop`` is set when we leave."""
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in produce(stop):
                loop.call_soon_threadsafe(items.put_nowait, item)
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            loop.call_soon_threadsafe(items.put_nowait, _Failure(exc))
        finally:
            loop.call_soon_threadsafe(items.put_nowait, _END)

    worker = loop.run_in_executor(executor, work)
    try:
        while True:
            item = await items.get()
            if item is _END:
                break
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.shield(worker)


async def relay_in_turn(
    queue: RequestQueue,
    produce: Callable[[threading.Event], Iterator[T]],
    executor: ThreadPoolExecutor | None,
    user: str = ANONYMOUS,
) -> AsyncGenerator[Queued | T, None]:
    """How an in-process model streams: wait for ``user``'s turn in ``queue`` (yielding the
    place in line as ``Queued``), then relay ``produce(stop)`` from the worker thread.

    aclosing: when the reader stops early, the inner generators finish now (leave the line;
    stop and await the worker) rather than whenever they are collected, so the turn is never
    handed on while the worker still holds the model.
    """
    async with aclosing(queue.wait_turn(user)) as turns:
        async for position in turns:
            yield Queued(position)
    try:
        async with aclosing(iterate_in_thread(produce, executor)) as items:
            async for item in items:
                yield item
    finally:
        queue.release()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
