"""2 and 6. Concurrency and memory: 1, 2, 4, 8 browser sessions sending at once to one server.

All sessions press Enter together; the one model answers them in turn (FIFO). Per load level:
each session's completion time, the server event loop's lag (p99 and max, sampled inside the
server by ``probe_server.py``), and how long a new tab takes to show a usable chat box while
the replies stream. The server's resident memory is read idle and at its peak under load.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psutil
from common import LONG_PROMPT, Config, Section, Stopwatch, median
from web import ChatPage, Chromium, Server, cpu_seconds

MB = 1024 * 1024
SETTLE = 3.0  # seconds of streaming before the newcomer opens the app


async def _load(
    browser: Chromium, server: Server, sessions: int, prompt: str = LONG_PROMPT
) -> dict[str, Any]:
    """All sessions send at once; then, while they stream, a newcomer opens the app.

    The lag is read in two windows: the replies alone (until ``SETTLE`` seconds or the first
    reply's end), then the rest, during which the newcomer's page is built on the event loop.
    """
    pages = [(await browser.open_chat(server.url))[0] for _ in range(sessions)]
    me, serving = psutil.Process(), psutil.Process(server.process.pid)
    cpu = cpu_seconds(serving), cpu_seconds(me, "chrom")
    try:
        server.probe_report(reset=True)
        replies = asyncio.ensure_future(asyncio.gather(*(page.send(prompt) for page in pages)))
        await asyncio.wait([replies], timeout=SETTLE)
        streaming = server.probe_report(reset=True)
        newcomer, page_load = await browser.open_chat(server.url)
        done = await replies
        with_page = server.probe_report(reset=True)
        cpu = cpu_seconds(serving) - cpu[0], cpu_seconds(me, "chrom") - cpu[1]  # tabs still open
        await newcomer.page.close()
    finally:
        await asyncio.gather(*(page.page.close() for page in pages))
    return {
        "completion": [reply.finished for reply in done],
        "texts": [reply.text for reply in done],
        "page_load": page_load,
        "lag_p99": streaming["lag_p99"],
        "lag_max": streaming["lag_max"],
        "lag_p99_page": with_page["lag_p99"],
        "lag_max_page": with_page["lag_max"],
        "peak_rss": max(streaming["peak_rss"], with_page["peak_rss"]),
        "server_cpu": cpu[0],
        "browser_cpu": cpu[1],
    }


async def run(
    cfg: Config,
    browser: Chromium,
    server: Server,
    *,
    title: str = "Concurrency",
    sessions: tuple[int, ...] | None = None,
    prompt: str = LONG_PROMPT,
    lag_targets: dict[int, float] | None = None,
    expected: str | None = None,
) -> list[Section]:
    """Load levels on one server; ``expected``: the text every reply must be (echo)."""
    load, memory = Section(title), Section("Memory")
    clock = Stopwatch()
    idle = server.probe_report(reset=True)["rss"]
    warm: ChatPage = (await browser.open_chat(server.url))[0]
    await warm.send(prompt)  # loads the model
    await warm.page.close()
    loaded = server.probe_report(reset=True)["rss"]
    levels_run = sessions or cfg.sessions
    levels = {n: await _load(browser, server, n, prompt) for n in levels_run}
    top = max(levels_run)
    targets = lag_targets or {top: 50.0}
    for n, found in levels.items():
        if expected is not None:
            wrong = sum(text.strip() != expected for text in found["texts"])
            load.add(f"{n} sessions: replies not exactly as expected", wrong, "", target=0)
        times = found["completion"]
        load.add(
            f"{n} sessions: completion time, median / slowest",
            median(times),
            "s",
            note=f"slowest {max(times):.1f} s; CPU seconds: server "
            f"{found['server_cpu']:.0f}, browser {found['browser_cpu']:.0f}",
        )
        load.add(
            f"{n} sessions: event-loop lag p99, replies streaming",
            found["lag_p99"] * 1000,
            "ms",
            target=targets.get(n),
        )
        load.add(
            f"{n} sessions: event-loop lag max, replies streaming", found["lag_max"] * 1000, "ms"
        )
        load.add(
            f"{n} sessions: event-loop lag p99, while a new page opens",
            found["lag_p99_page"] * 1000,
            "ms",
            target=targets.get(n),
        )
        load.add(
            f"{n} sessions: event-loop lag max, while a new page opens",
            found["lag_max_page"] * 1000,
            "ms",
        )
        load.add(
            f"{n} sessions: new page load",
            found["page_load"],
            "s",
            target=2.0 if n == 8 or (n == top and top < 8) else None,
        )
    what = (
        f"echo replies of {len(prompt.split())} words"
        if expected is not None
        else f"{cfg.concurrent_tokens}-token greedy replies"
    )
    load.notes.append(
        f"{what}; completion time runs from the Enter key "
        "to the reply's finished footer; the model answers one request at a time, so it grows "
        "with the queue. Lag: how late a task on the server's event loop wakes from 10 ms sleeps, "
        f"read over the first {SETTLE:g} s of streaming, then over the rest, while a new tab "
        "opens the app (Panel builds each new page on the event loop)."
    )
    memory.add("server RSS idle (no page yet, model not loaded)", idle / MB, "MB")
    memory.add("server RSS idle (model loaded)", loaded / MB, "MB")
    memory.add(
        f"server peak RSS under {top} sessions", levels[top]["peak_rss"] / MB, "MB", target=1536
    )
    load.series = {
        n: {k: v for k, v in found.items() if k != "texts"} for n, found in levels.items()
    }
    load.seconds = clock()
    if expected is not None:  # the echo server's memory says nothing about the model's
        return [load]
    return [load, memory]
