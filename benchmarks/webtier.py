"""8. The web tier alone: server CPU and websocket bytes per exchange, and per new page.

On the echo backend (it repeats the message, token by token, with a small delay), so all the
server's work is the app's own: the transcript, the store, Panel and Bokeh. One page holds a
conversation of ``cfg.web_turns`` exchanges of ~200 words each; for each exchange the server
process's CPU time (its threads' run time in ``/proc``, to the nanosecond: ``cpu_times``
counts 10 ms ticks) from the Enter key until the reply's footer
shows and the store writes after it are done, the bytes the page received meanwhile, and the
reply's own size. Then new pages: a fresh one (the welcome only), and a fresh one that opens
a stored conversation of 50 messages from the list.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import NamedTuple

import psutil
from common import ECHO_DELAY, Config, Section, Stopwatch, median
from web import ChatPage, Chromium, Server, run_seconds

from mixchat.backends import ChatRequest, get_backend
from mixchat.config import SamplingParams, load_settings
from mixchat.messages import Message
from mixchat.outcome import Outcome, Stats
from mixchat.store import ConversationStore

SETTLE = 0.3  # seconds after a reply for the store writes that follow it
WORDS = 200
FIFTY = "fifty stored messages"


def echo_message(turn: int, words: int = WORDS) -> str:
    return f"turn {turn}: " + " ".join(f"w{turn}x{index}" for index in range(words))


def seed_conversation(database_url: str, messages: int = 50) -> None:
    """A stored conversation of ``messages`` messages for the local owner, as if chatted."""
    with ConversationStore(database_url) as store:
        conversation = store.create(
            "local", title=FIFTY, backend="echo", model=None, settings={}, system_prompt=""
        )
        for index in range(messages // 2):
            text = echo_message(index)
            store.add_message("local", conversation.id, "user", text)
            stats = Stats(Outcome.STOP, completion_tokens=WORDS, duration=1.0)
            store.add_message("local", conversation.id, "assistant", text, stats=stats)


async def _exchange(page: ChatPage, server: psutil.Process, turn: int) -> dict[str, float]:
    start_frames = len(page.frames)
    before = run_seconds(server)
    reply = await page.send(echo_message(turn))
    await asyncio.sleep(SETTLE)
    cpu = run_seconds(server) - before
    frames = page.frames[start_frames:]
    return {
        "cpu": cpu,
        "bytes": sum(frame.wire for frame in frames),
        "inflated": sum(frame.size for frame in frames),
        "reply_bytes": len(reply.text.encode()),
        "first_token": reply.first_token,
        "correct": float(reply.text.strip() == echo_message(turn)),
    }


async def echo_alone(turns: int = 3) -> float:
    """CPU seconds of the echo backend alone for one reply (no web tier): the floor under
    an exchange's figure. Its token delay is a timer per word, and each wake-up of the event
    loop costs the CPU something whoever reads the tokens."""
    backend = get_backend(load_settings(backend="echo", echo_delay=ECHO_DELAY))
    spent = []
    for turn in range(turns):
        messages: list[Message] = [{"role": "user", "content": echo_message(turn)}]
        started = time.thread_time()  # the event loop's thread, where the echo runs
        await backend.complete(ChatRequest(messages, SamplingParams(max_tokens=4096)))
        spent.append(time.thread_time() - started)
    return median(spent)


class NewPage(NamedTuple):
    cpu: float  # server CPU seconds to build it (and open a conversation from its list)
    seconds: float  # until its chat box was usable
    wire: int  # its websocket's bytes as they crossed the network
    inflated: int  # the same, as the page's code read them


async def _new_page(
    browser: Chromium, url: str, server: psutil.Process, open_title: str = ""
) -> NewPage:
    before = run_seconds(server)
    page, seconds = await browser.open_chat(url)
    if open_title:
        await page.page.locator("button", has_text=open_title).first.click()
        await page.page.locator(".mixchat-user").nth(24).wait_for(timeout=60_000)
    await asyncio.sleep(SETTLE)
    cpu = run_seconds(server) - before
    await page.page.close()
    frames = page.frames
    return NewPage(cpu, seconds, sum(f.wire for f in frames), sum(f.size for f in frames))


async def run(cfg: Config, browser: Chromium, server: Server) -> Section:
    section = Section("Web tier (echo backend)")
    clock = Stopwatch()
    serving = psutil.Process(server.process.pid)
    page, _ = await browser.open_chat(server.url)
    try:
        await page.send("warm up")
        turns = [await _exchange(page, serving, turn) for turn in range(cfg.web_turns)]
    finally:
        await page.page.close()
    cpu = [t["cpu"] * 1000 for t in turns]
    ratio = [t["bytes"] / max(1, t["reply_bytes"]) for t in turns]
    inflated = [t["inflated"] / max(1, t["reply_bytes"]) for t in turns]
    head, tail = cpu[:3], cpu[-3:]
    section.add("server CPU per exchange, turns 1-3 (median)", median(head), "ms", target=20)
    section.add(
        f"server CPU per exchange, turns {len(cpu) - 2}-{len(cpu)} (median)",
        median(tail),
        "ms",
        target=20,
        note=f"flat: {median(tail) / max(median(head), 1e-9):.2f}x turns 1-3",
    )
    floor = await echo_alone() * 1000
    section.add(
        "echo backend alone, CPU per reply (no web tier)",
        floor,
        "ms",
        note="the same replies streamed in the benchmark's own process: the fake model's share",
    )
    section.add(
        "web tier's own CPU per exchange (turns 1-3 minus the echo alone)",
        median(head) - floor,
        "ms",
    )
    section.add(
        "websocket bytes per exchange / reply bytes",
        median(ratio),
        "x",
        target=3,
        note=f"median of {len(ratio)}; reply ~{median(t['reply_bytes'] for t in turns):.0f} "
        "bytes; compressed, as they crossed the network",
    )
    section.add(
        "the same frames inflated / reply bytes",
        median(inflated),
        "x",
        note="what the page's code reads, after permessage-deflate",
    )
    section.add(
        "first token, Enter to text on screen (echo)",
        median(t["first_token"] * 1000 for t in turns),
        "ms",
    )
    section.add("replies not exactly as sent", sum(1 - t["correct"] for t in turns), "", target=0)
    fresh = [await _new_page(browser, server.url, serving) for _ in range(3)]
    fifty = [await _new_page(browser, server.url, serving, FIFTY) for _ in range(3)]
    section.add(
        "server CPU per new page, 0 past messages",
        median(page.cpu * 1000 for page in fresh),
        "ms",
        target=100,
        note=f"page usable in {median(page.seconds for page in fresh):.2f} s",
    )
    section.add(
        "websocket bytes of a new page",
        median(page.wire for page in fresh),
        "bytes",
        note=f"{median(page.inflated for page in fresh):.0f} inflated; with 50 past messages "
        f"{median(page.wire for page in fifty):.0f} ({median(page.inflated for page in fifty):.0f})",
    )
    section.add(
        "server CPU per new page that opens 50 past messages",
        median(page.cpu * 1000 for page in fifty),
        "ms",
        target=100,
        note="the page, then a click on the stored conversation in its list",
    )
    section.notes.append(
        f"{len(turns)} exchanges of {WORDS}-word echo replies in one conversation; CPU of the "
        f"server process from the Enter key to {SETTLE:g} s after the reply's footer (its "
        "store writes included). Bytes: every websocket frame the page received meanwhile, "
        "compressed as on the network (and inflated)."
    )
    section.series = {"cpu": cpu, "ratio": ratio}
    section.seconds = clock()
    return section


def database_url(scratch: Path, name: str) -> str:
    return f"sqlite:///{scratch / name}.sqlite"
