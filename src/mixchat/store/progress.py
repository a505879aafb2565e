"""A reply in progress, saved every few seconds so that a crash loses at most those seconds.

The reply is stored as soon as it starts, with status ``"streaming"``; while it streams, a
task saves the text so far every ``every`` seconds in a worker thread (never on the event
loop), which is also its heartbeat. When the reply ends, :meth:`ReplyProgress.finish`
stores its final text, status and stats. If the process dies first, the heartbeat stops and
the store reads the message back as ``"interrupted"`` with the text last saved (see
``store.STALE_AFTER``); it can be regenerated like any other reply.

>>> progress = await ReplyProgress.start(store, owner, chat_id, parent=user_message_id)
>>> async for event in backend.stream(request):
...     if isinstance(event, TextDelta):
...         progress.grow(event.text)
>>> await progress.finish(done)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Literal

from mixchat.agent.steps import Step
from mixchat.outcome import Stats
from mixchat.store.errors import StoreError
from mixchat.store.store import CURRENT, SAVE_EVERY, ConversationStore

log = logging.getLogger(__name__)


class ReplyProgress:
    """One streaming reply's stored message: grows in memory, saved by a background task."""

    def __init__(
        self,
        store: ConversationStore,
        owner: str,
        message_id: int,
        *,
        every: float = SAVE_EVERY,
        text: str = "",
    ) -> None:
        self.store = store
        self.owner = owner
        self.message_id = message_id
        self.every = every
        self.parts: list[str] = [text] if text else []
        self._saver: asyncio.Task[None] | None = None
        self._finished = asyncio.Event()

    @classmethod
    async def start(
        cls,
        store: ConversationStore,
        owner: str,
        conversation_id: str,
        *,
        parent: int | None | Literal["current"] = CURRENT,
        prompt: dict[str, Any] | None = None,
        every: float = SAVE_EVERY,
    ) -> ReplyProgress:
        """Store an empty ``"streaming"`` reply below ``parent`` and start saving it."""
        message_id = await asyncio.to_thread(
            store.add_message,
            owner,
            conversation_id,
            "assistant",
            "",
            status="streaming",
            parent=parent,
            prompt=prompt,
        )
        progress = cls(store, owner, message_id, every=every)
        progress._saver = asyncio.create_task(progress._save_periodically())
        return progress

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def grow(self, text: str) -> None:
        """Add streamed text (kept in memory; the next periodic save writes it)."""
        self.parts.append(text)

    async def save(self) -> None:
        """Write the text so far now (also the heartbeat that says the reply is alive)."""
        text = self.text
        await asyncio.to_thread(
            self.store.update_message, self.owner, self.message_id, content=text
        )

    async def finish(
        self,
        stats: Stats,
        *,
        content: str | None = None,
        steps: Sequence[Step] | None = None,
        prompt: dict[str, Any] | None = None,
    ) -> None:
        """Stop the periodic saves and store the final reply (its text defaults to the
        streamed text), with the status its outcome stands for."""
        await self._stop()
        await asyncio.to_thread(
            self.store.update_message,
            self.owner,
            self.message_id,
            content=self.text if content is None else content,
            status=stats.outcome.status,
            stats=stats,
            steps=steps,
            prompt=prompt,
        )

    async def _stop(self) -> None:
        """End the saver, letting a save in flight finish first (it must not land after
        the final text)."""
        self._finished.set()
        if self._saver is not None:
            await self._saver
            self._saver = None

    async def _save_periodically(self) -> None:
        while not self._finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), self.every)
                return
            try:
                await self.save()
            except StoreError as error:  # history trouble must not stop the reply
                log.warning("could not save the reply in progress: %s", error)


__all__ = ["SAVE_EVERY", "ReplyProgress"]
