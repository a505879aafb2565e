"""3. Bytes on the websocket for a long reply, against the size of the reply's text.

Counts every frame the page receives from the Enter key to the reply's finished footer: the
streamed text and everything else the app updates meanwhile (status line, buttons, stats,
conversation list). As they crossed the network (compressed, with each frame's header: the
target) and as the page read them (inflated).
"""

from __future__ import annotations

from common import LONG_PROMPT, Config, Section, Stopwatch
from web import Chromium, Server

from mixchat.backends.llamacpp import LlamaCppBackend


async def run(cfg: Config, browser: Chromium, server: Server, backend: LlamaCppBackend) -> Section:
    section = Section("Bytes on the websocket")
    clock = Stopwatch()
    page, _ = await browser.open_chat(server.url)
    try:
        reply = await page.send(LONG_PROMPT)
    finally:
        await page.page.close()
    size = len(reply.text.encode())
    tokens = len(backend._llm.tokenize(reply.text.encode(), add_bos=False))
    section.add("reply text", size, "bytes", note=f"{tokens} tokens")
    section.add(
        "received on the websocket", reply.wire_bytes, "bytes", note=f"{reply.frames} frames"
    )
    section.add("websocket bytes / reply bytes", reply.wire_bytes / max(1, size), "x", target=3)
    section.add(
        "the same frames inflated",
        reply.bytes_received,
        "bytes",
        note=f"{reply.bytes_received / max(1, size):.2f}x the reply: what the page's code reads",
    )
    section.add("of which frames carrying the text (inflated)", reply.body_bytes, "bytes")
    section.add(
        "text-carrying frames / reply bytes",
        reply.body_bytes / max(1, size),
        "x",
        note="the streaming's own cost, without the page's other updates",
    )
    section.notes.append(f"one greedy reply of up to {cfg.wire_tokens} tokens.")
    section.seconds = clock()
    return section
