"""7. Cold start: ``mixchat serve`` to the first HTTP 200, and to the first token of a reply.

The server is the CLI as a user starts it; the model loads on the first reply, so the second
figure includes the model load. The embedded GGUF is already assembled (done once on install).
"""

from __future__ import annotations

import time

from common import LONG_PROMPT, Section
from web import Chromium, Server


async def run(browser: Chromium, server: Server) -> Section:
    """Measure on a just-started ``server`` (left running, warm, for the streaming benchmark)."""
    section = Section("Cold start")
    to_http = server.wait_ready()
    page, page_load = await browser.open_chat(server.url)
    reply = await page.send(LONG_PROMPT)
    await page.page.close()
    to_first_token = reply.sent_at + reply.first_token - server.started
    section.add("process start to first HTTP 200", to_http, "s")
    section.add("first page load (to a usable chat box)", page_load, "s")
    section.add(
        "process start to first token of the first reply",
        to_first_token,
        "s",
        note="includes loading the model",
    )
    section.seconds = time.perf_counter() - server.started
    return section
