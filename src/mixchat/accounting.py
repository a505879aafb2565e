"""Who may run what, now: the per-user limits in front of every model, and the tokens used.

One place answers "may user U run a request on model M now, and if not, which limit stops it
and when does it free up", and records what each request used, per user and model. The web
app calls it for every reply; the OpenAI-compatible API calls it the same way::

    accounting = Accounting(settings.limits, book=lambda: store)
    async with accounting.admit(user, entry.name) as ticket:    # or LimitReached
        params = params.model_copy(update={"max_tokens": ticket.cap(entry, asked)})
        ... stream the reply ...
        ticket.used(done.prompt_tokens, done.completion_tokens)  # recorded on leaving

Requests in flight are counted in this process (a user's queued and streaming replies);
tokens per day are summed from the store, so every process sharing a database agrees.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from mixchat.config.catalog import CatalogEntry
from mixchat.config.limits import UserLimits
from mixchat.errors import LimitReached
from mixchat.store import UsageTotal

log = logging.getLogger(__name__)


class UsageBook(Protocol):
    """Where usage is kept: :class:`~mixchat.store.ConversationStore` is one."""

    def record_usage(
        self,
        owner: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        at: datetime | None = None,
    ) -> None: ...

    def tokens_since(self, owner: str, since: datetime) -> int: ...

    def usage(self, owner: str | None, since: datetime | None = None) -> list[UsageTotal]: ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def until(moment: datetime, now: datetime) -> str:
    """``in 3 h 12 min`` (or ``in 40 s``), for messages."""
    seconds = max(0, int((moment - now).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"in {hours} h {minutes} min"
    return f"in {minutes} min" if minutes else f"in {seconds} s"


@dataclass
class Ticket:
    """One admitted request: what it may ask for, and what it used."""

    user: str
    model: str
    max_tokens_cap: int | None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def cap(self, entry: CatalogEntry, asked: int) -> int:
        """``asked`` reply tokens, or fewer where the entry or the user's limit says so."""
        return min(asked, entry.max_tokens_cap(self.max_tokens_cap))

    def used(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Add a model call's tokens (an agent makes several calls per request)."""
        self.prompt_tokens += prompt_tokens or 0
        self.completion_tokens += completion_tokens or 0


class Accounting:
    """The limits of :class:`~mixchat.config.limits.UserLimits`, for every user and model."""

    def __init__(
        self,
        limits: UserLimits,
        book: Callable[[], UsageBook] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``book`` returns where usage is kept (the store); it may raise while the store is
        unavailable, and then tokens are counted in memory."""
        self.limits = limits
        self.book = book
        self.clock = clock
        self.in_flight: Counter[str] = Counter()
        #: Tokens counted here when the store is unavailable (history off): (user, day) -> n.
        self._unbooked: Counter[tuple[str, datetime]] = Counter()

    async def refusal(self, user: str, model: str) -> LimitReached | None:
        """Why ``user`` may not start a request on ``model`` now; None: they may."""
        busy = self._too_many_in_flight(user)
        if busy is not None:
            return busy
        now = self.clock()
        daily = self.limits.tokens_per_day
        if daily is not None:
            used = await self.tokens_today(user)
            if used >= daily:
                frees = start_of_day(now) + timedelta(days=1)
                return LimitReached(
                    f"You have used {used:,} of your {daily:,} tokens for today (limit "
                    f"tokens_per_day): it frees up at 00:00 UTC, {until(frees, now)}.",
                    "tokens_per_day",
                    frees,
                )
        return None

    def _too_many_in_flight(self, user: str) -> LimitReached | None:
        limit = self.limits.requests_in_flight
        if limit is None or self.in_flight[user] < limit:
            return None
        return LimitReached(
            f"You already have {self.in_flight[user]} requests running or waiting, the most "
            f"allowed (limit requests_in_flight = {limit}): send this one when one of them "
            "has finished.",
            "requests_in_flight",
        )

    @asynccontextmanager
    async def admit(self, user: str, model: str) -> AsyncIterator[Ticket]:
        """Hold a place among ``user``'s requests in flight; record the usage on leaving.

        Raises LimitReached (saying which limit and when it frees up) before anything runs.
        """
        ticket = await self.start(user, model)
        try:
            yield ticket
        finally:
            await self.finish(ticket)

    async def start(self, user: str, model: str) -> Ticket:
        """:meth:`admit` in two halves, for callers that cannot hold a block open (the API's
        handler): take a place in flight now (or LimitReached), and :meth:`finish` it later."""
        refused = await self.refusal(user, model) or self._too_many_in_flight(user)
        if refused is not None:  # (checked again: another tab may have started meanwhile)
            raise refused
        self.in_flight[user] += 1
        return Ticket(user, model, self.limits.max_tokens)

    async def finish(self, ticket: Ticket) -> None:
        """Give the place back and record the ticket's tokens."""
        self.in_flight[ticket.user] -= 1
        if self.in_flight[ticket.user] <= 0:
            del self.in_flight[ticket.user]
        if ticket.prompt_tokens or ticket.completion_tokens:
            await self.record(ticket)

    async def record(self, ticket: Ticket) -> None:
        """Keep a request's tokens in the store (or in memory while the store is off)."""
        if self.book is not None:
            book = self.book
            try:
                await asyncio.to_thread(
                    lambda: book().record_usage(
                        ticket.user,
                        ticket.model,
                        ticket.prompt_tokens,
                        ticket.completion_tokens,
                        self.clock(),
                    )
                )
                return
            except Exception as error:  # the store went away: keep counting here
                log.warning("cannot record usage: %s", error)
        day = start_of_day(self.clock())
        self._unbooked[(ticket.user, day)] += ticket.prompt_tokens + ticket.completion_tokens

    async def tokens_today(self, user: str) -> int:
        day = start_of_day(self.clock())
        booked = 0
        if self.book is not None:
            book = self.book
            try:
                booked = await asyncio.to_thread(lambda: book().tokens_since(user, day))
            except Exception as error:
                log.warning("cannot read usage: %s", error)
        return booked + self._unbooked[(user, day)]

    async def usage(self, user: str | None, since: datetime | None = None) -> list[UsageTotal]:
        """Totals per user and model (``user=None``: everyone, for admins)."""
        if self.book is None:
            return []
        book = self.book
        try:
            return await asyncio.to_thread(lambda: book().usage(user, since))
        except Exception as error:  # the store is off: nothing to show
            log.warning("cannot read usage: %s", error)
            return []
