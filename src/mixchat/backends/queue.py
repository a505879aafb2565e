"""A first-come-first-served slot in front of a model that serves one request at a time.

A llama.cpp context (or a transformers model on one GPU) is not thread-safe, and every web
session shares the one instance of the process. Waiters learn their place in line, which the
UI shows.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager


class _Waiter:
    __slots__ = ("granted", "poked")

    def __init__(self) -> None:
        self.granted = False
        self.poked = asyncio.Event()


class RequestQueue:
    """A FIFO lock whose waiters can see how many requests are ahead of them."""

    def __init__(self) -> None:
        self._line: deque[_Waiter] = deque()
        self._busy = False

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def busy(self) -> bool:
        return self._busy

    async def wait_turn(self) -> AsyncGenerator[int, None]:
        """Yield the number of requests ahead each time it changes; end when this one may run.

        The caller must call :meth:`release` once it is done (or use :meth:`slot`).
        """
        if not self._busy and not self._line:
            self._busy = True
            return
        waiter = _Waiter()
        self._line.append(waiter)
        try:
            while not waiter.granted:
                yield self._line.index(waiter) + 1
                await waiter.poked.wait()
                waiter.poked.clear()
        except BaseException:
            if waiter.granted:  # the slot came while we were leaving: pass it on
                self.release()
            else:
                self._line.remove(waiter)
                self._poke_all()
            raise

    def release(self) -> None:
        """Hand the model to the next waiter, or mark it idle."""
        if self._line:
            waiter = self._line.popleft()
            waiter.granted = True
            waiter.poked.set()
            self._poke_all()
        else:
            self._busy = False

    def _poke_all(self) -> None:
        for waiter in self._line:
            waiter.poked.set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold the model for the block, for callers that do not show positions."""
        async for _ in self.wait_turn():
            pass
        try:
            yield
        finally:
            self.release()
