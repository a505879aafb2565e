"""Streaming a reply to the terminal, shared by ``ask`` and ``chat``."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TextIO

from mixchat.backends import Backend, CancelToken, ChatRequest, Done, Queued, TextDelta
from mixchat.errors import MixchatError
from mixchat.outcome import Stats, plural
from mixchat.store.progress import ReplyProgress


def format_stats(stats: Stats) -> str:
    """One line: tokens, speed, time to first token, how the reply ended."""
    parts = [plural(stats.completion_tokens, "token")]
    if stats.tokens_per_second:
        parts.append(f"{stats.tokens_per_second:.1f} tok/s")
    if stats.load_time is not None:
        parts.append(f"model loaded in {stats.load_time:.1f} s")
    if stats.time_to_first_token is not None:
        parts.append(f"first token {stats.time_to_first_token * 1000:.0f} ms")
    parts.append(str(stats.outcome))
    return " · ".join(parts)


async def stream_reply(
    backend: Backend,
    request: ChatRequest,
    out: TextIO = sys.stdout,
    status: TextIO = sys.stderr,
    progress: ReplyProgress | None = None,
) -> tuple[str, Done]:
    """Print the reply as it streams (and save it as it grows, given ``progress``); Ctrl+C
    stops generation and keeps what was written."""
    loop = asyncio.get_running_loop()
    cancel: CancelToken = request.cancel
    try:
        loop.add_signal_handler(signal.SIGINT, cancel.cancel)
    except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
        pass
    parts: list[str] = []
    try:
        async for event in backend.stream(request):
            if isinstance(event, TextDelta):
                parts.append(event.text)
                if progress is not None:
                    progress.grow(event.text)
                out.write(event.text)
                out.flush()
            elif isinstance(event, Queued):
                status.write(f"\r[waiting: {event.position} ahead]")
                status.flush()
            elif isinstance(event, Done):
                if parts and not parts[-1].endswith("\n"):
                    out.write("\n")
                out.flush()
                if progress is not None:
                    await _finish(progress, event, status)
                return "".join(parts), event
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass
    raise AssertionError("stream ended without Done")  # pragma: no cover


async def _finish(progress: ReplyProgress, done: Done, status: TextIO) -> None:
    try:
        await progress.finish(done)
    except MixchatError as error:
        status.write(f"mixchat: could not save the reply: {error}\n")
