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
from typing import TypeVar

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


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
