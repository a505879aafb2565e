"""A fair slot in front of a model that serves one request at a time.

A llama.cpp context (or a transformers model on one GPU) is not thread-safe, and every web
session (and API client) shares the one instance of the process. Users take turns: the next
request to run belongs to the waiting user served least recently (round robin across users),
and each user's own requests run in the order they came (first come, first served). So one
user's five requests do not hold up five other users. Waiters learn their place in line,
which the UI shows.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

#: Whose request it is when nobody said (the CLI, a library call).
ANONYMOUS = "local"


class _Waiter:
    __slots__ = ("granted", "poked", "user")

    def __init__(self, user: str) -> None:
        self.user = user
        self.granted = False
        self.poked = asyncio.Event()


class RequestQueue:
    """A fair lock whose waiters can see how many requests are ahead of them."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[_Waiter]] = {}  # users in the order they started waiting
        self._served: dict[str, int] = {}  # user -> tick of their last turn
        self._ticks = itertools.count(1)
        self._busy = False
        self.running: str | None = None  # whose request holds the model

    @property
    def waiting(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def waiting_by_user(self) -> dict[str, int]:
        """How many requests each user has in line (for the admin's status view)."""
        return {user: len(line) for user, line in self._lines.items()}

    @property
    def busy(self) -> bool:
        return self._busy

    async def wait_turn(self, user: str = ANONYMOUS) -> AsyncGenerator[int, None]:
        """Yield the number of requests ahead each time it changes; end when this one may run.

        The caller must call :meth:`release` once it is done (or use :meth:`slot`).
        """
        if not self._busy and not self._lines:
            self._grant(user)
            return
        waiter = _Waiter(user)
        self._lines.setdefault(user, deque()).append(waiter)
        try:
            while not waiter.granted:
                yield self._position(waiter)
                await waiter.poked.wait()
                waiter.poked.clear()
        except BaseException:
            if waiter.granted:  # the slot came while we were leaving: pass it on
                self.release()
            else:
                self._remove(waiter)
                self._poke_all()
            raise

    def release(self) -> None:
        """Hand the model to the next user's first waiter, or mark it idle."""
        if not self._lines:
            self._busy = False
            self.running = None
            return
        user = self._next_user(self._lines, self._served)
        line = self._lines[user]
        waiter = line.popleft()
        if not line:
            del self._lines[user]
        self._grant(user)
        waiter.granted = True
        waiter.poked.set()
        self._poke_all()

    def _grant(self, user: str) -> None:
        self._busy = True
        self.running = user
        self._served[user] = next(self._ticks)

    @staticmethod
    def _next_user(lines: dict[str, deque[_Waiter]], served: dict[str, int]) -> str:
        """The waiting user served least recently; among equals, the one waiting longest."""
        return min(lines, key=lambda user: served.get(user, 0))  # min keeps the first of ties

    def _position(self, waiter: _Waiter) -> int:
        """1 + the requests that will run before ``waiter``, replaying the turns to come."""
        lines = {user: deque(line) for user, line in self._lines.items()}
        served = dict(self._served)
        ahead = 0
        while lines:
            user = self._next_user(lines, served)
            first = lines[user].popleft()
            if first is waiter:
                return ahead + 1
            if not lines[user]:
                del lines[user]
            served[user] = max(served.values(), default=0) + 1
            ahead += 1
        return ahead + 1  # pragma: no cover - the waiter is always in a line

    def _remove(self, waiter: _Waiter) -> None:
        line = self._lines.get(waiter.user)
        if line is not None and waiter in line:
            line.remove(waiter)
            if not line:
                del self._lines[waiter.user]

    def _poke_all(self) -> None:
        for line in self._lines.values():
            for waiter in line:
                waiter.poked.set()

    @asynccontextmanager
    async def slot(self, user: str = ANONYMOUS) -> AsyncIterator[None]:
        """Hold the model for the block, for callers that do not show positions."""
        async for _ in self.wait_turn(user):
            pass
        try:
            yield
        finally:
            self.release()
