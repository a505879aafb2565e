"""The web app in a real browser: Debian's chromium against `mixchat serve` on a free port."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Browser, WebSocketRoute
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from browser_fixtures import INPUT, Server, Session, free_port, open_session, running_server
from mixchat.ui.render import ASSETS_ROUTE

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

ECHO_DELAY = 0.005


#: Two catalog entries: the echo model, and a server that is down (for the failure test).
CATALOG = """
[models.echo]
name = "Echo"
backend = "echo"

[models.down]
name = "Unreachable server"
backend = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
model = "m"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("ui"),
        "--max-tokens",
        "4096",
        echo_delay=ECHO_DELAY,
        config=CATALOG.format(closed=free_port()),
    ) as started:
        yield started


def _words(count: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{index:04d}" for index in range(count))


def _watch_states(session: Session, until: int, timeout: float = 30.0) -> list[str]:
    """Distinct texts of the latest reply, sampled while it streams, until ``until`` replies end."""
    states: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = session.replies()
        if replies and (not states or states[-1] != replies[-1]):
            states.append(replies[-1])
        if len([s for s in session.texts("mixchat-stats") if s.strip()]) >= until:
            break
        session.page.wait_for_timeout(30)
    states.append(session.replies()[-1])
    return states


def test_reply_streams_from_the_echo_backend(session: Session) -> None:
    message = _words(300)
    session.send(message)
    states = _watch_states(session, until=1)
    assert states[-1] == message
    partial = [s for s in states if s and s != message]
    assert len(partial) >= 3, f"expected several intermediate states, saw {len(partial)}"
    assert all(message.startswith(s) for s in partial)
    stats = session.texts("mixchat-stats")[-1]
    assert "300 tokens" in stats and "tok/s" in stats and "first token" in stats
    assert "finished" in stats
    session.screenshot("streamed-reply")


def test_stop_ends_a_long_reply_early(session: Session) -> None:
    message = _words(2000)
    session.send(message)
    session.page.wait_for_timeout(1200)
    session.button("Stop").click()
    replies = session.wait_for_replies(1)
    assert 0 < len(replies[-1]) < len(message)
    assert message.startswith(replies[-1].strip())
    assert "Stopped" in session.texts("mixchat-stats")[-1]
    # the chat goes on after a stop
    session.send("after the stop")
    assert session.wait_for_replies(2)[-1] == "after the stop"


def test_regenerate_shows_one_fresh_reply(session: Session) -> None:
    session.send("say it again")
    session.wait_for_replies(1)
    first_stats = session.texts("mixchat-stats")[-1]
    session.page.wait_for_timeout(300)
    session.button("Regenerate").click()
    session.page.wait_for_timeout(500)
    replies = session.wait_for_replies(1)
    assert replies == ["say it again"]  # one reply shown: the old one is a version away
    assert session.texts("mixchat-stats")[-1]  # a fresh footer
    assert first_stats.startswith("3 tokens")


def test_shift_enter_makes_a_new_line_and_enter_sends(session: Session) -> None:
    box = session.page.get_by_placeholder("Message the model")
    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two")
    assert session.replies() == []  # nothing sent yet
    box.press("Enter")
    assert session.wait_for_replies(1) == ["line one\nline two"]


def test_undo_removes_the_last_exchange(session: Session) -> None:
    session.send("first message")
    session.wait_for_replies(1)
    session.send("second message")
    session.wait_for_replies(2)
    session.button("Undo").click()
    session.page.wait_for_timeout(800)
    assert session.replies() == ["first message"]


def test_two_sessions_chat_at_the_same_time(browser: Browser, server: Server) -> None:
    one, two = open_session(browser, server.url), open_session(browser, server.url)
    try:
        one.send(_words(150, "alpha"))
        two.send(_words(150, "beta"))
        assert one.wait_for_replies(1) == [_words(150, "alpha")]
        assert two.wait_for_replies(1) == [_words(150, "beta")]
    finally:
        one.page.context.close()
        two.page.context.close()


def test_html_in_messages_never_runs(session: Session) -> None:
    attack = (
        '<img src=x onerror="window.__pwned=1;alert(1)"> '
        "<script>window.__pwned=2;alert(2)</script> "
        "[link](javascript:alert(3)) <svg onload=alert(4)> "
        '<a href="javascript:alert(5)">x</a> [data](data:text/html;base64,PHNjcmlwdD4=) '
        "$\\href{javascript:alert(6)}{math link}$ "
        "<iframe src=javascript:alert(7)></iframe>"
    )
    session.send(attack)
    replies = session.wait_for_replies(1)
    session.page.wait_for_timeout(500)
    for link in session.page.locator(".mx-msg a").all():  # clicking any link runs nothing
        link.click()
    session.page.wait_for_timeout(500)
    assert session.dialogs == []
    assert session.page.evaluate("window.__pwned") is None
    assert "<img src=x" in replies[0] and "<script>" in replies[0]  # shown as text
    assert session.page.locator("img[src=x]").count() == 0
    assert session.page.locator(".mx-msg svg[onload], .mx-msg iframe, .mx-msg script").count() == 0
    hrefs = session.page.locator(".mx-msg a").evaluate_all("as => as.map(a => a.href)")
    assert not [h for h in hrefs if h.startswith(("javascript:", "data:"))], hrefs
    session.screenshot("html-shown-as-text")


def test_page_loads_nothing_from_outside(session: Session, server: Server) -> None:
    session.send("offline?")
    session.wait_for_replies(1)
    session.page.get_by_text("Generation", exact=True).first.click()  # buttons with icons
    session.page.get_by_role("button", name="Reset to defaults").wait_for()
    session.page.wait_for_timeout(500)
    local = (f"http://127.0.0.1:{server.port}/", f"ws://127.0.0.1:{server.port}/", "data:", "blob:")
    outside = [url for url in session.requests if not url.startswith(local)]
    assert outside == []
    # the icon font is served by the app itself
    assert any(url.endswith(".woff2?v3.49.0") or "tabler-icons" in url for url in session.requests)
    # Bokeh's own bundle, but not its WebGL one (no plots: page.html leaves it out)
    scripts = [url.split("?")[0].rsplit("/", 1)[-1] for url in session.requests]
    assert "bokeh.min.js" in scripts and "bokeh-gl.min.js" not in scripts
    # each of mixchat's files once: a component's stylesheet only in its shadow root, not
    # again (with another query string) in the page's head
    own = [url.split("?")[0] for url in session.requests if f"/{ASSETS_ROUTE}/" in url]
    twice = sorted({url for url in own if own.count(url) > 1})
    assert any(url.endswith("/sections.css") for url in own) and twice == [], twice


def test_a_long_reply_costs_about_its_size_on_the_wire(session: Session) -> None:
    """Streaming sends appended text in batches, not the whole reply per token.

    The streamed part of a 1000-token reply must stay within 3x the reply's size as the
    page's code reads it; on the network it is compressed (permessage-deflate) besides.
    """
    message = _words(1000)  # 1000 echo tokens, 6 KB
    session.send("x")
    session.wait_for_replies(1)
    session.page.wait_for_timeout(500)
    before = session.ws_bytes[0]
    session.send(message)
    while len(session.replies()) < 2 or not session.replies()[-1]:
        session.page.wait_for_timeout(10)
    streaming_from = session.ws_bytes[0]
    assert session.wait_for_replies(2, timeout=60)[-1] == message
    session.page.wait_for_timeout(500)
    streamed = session.ws_bytes[0] - streaming_from
    total = session.ws_bytes[0] - before
    print(
        f"{len(message)}-character reply: {streamed} bytes streamed "
        f"({streamed / len(message):.2f}x), {total} bytes with the two new messages"
    )
    assert streamed <= 3 * len(message)
    assert session.ws_extensions and session.ws_extensions[-1].startswith("permessage-deflate")


def test_backend_failure_shows_an_error_and_the_next_message_works(session: Session) -> None:
    page = session.page
    page.locator("select").first.select_option(label="Unreachable server")
    page.wait_for_timeout(300)
    session.send("anyone there?")
    session.wait_for_replies(1, timeout=60)
    footer = session.texts("mixchat-stats")[-1]
    assert "failed" in footer
    assert any(word in footer for word in ("server", "key", "connect", "reach")), footer
    session.screenshot("backend-error")
    page.locator("select").first.select_option(label="Echo")
    page.wait_for_timeout(300)
    session.send("back to echo")
    assert session.wait_for_replies(2)[-1] == "back to echo"


def test_reload_keeps_the_conversation_and_it_continues(browser: Browser, server: Server) -> None:
    first = open_session(browser, server.url)
    title = "remember the blue whale"
    first.send(title)
    first.wait_for_replies(1)
    first.page.reload()
    first.page.get_by_placeholder("Message the model").wait_for()
    entry = first.page.locator("button", has_text=title).first
    entry.wait_for(timeout=15_000)
    entry.click()
    assert first.wait_for_replies(1) == [title]
    first.send("and the green turtle")
    assert first.wait_for_replies(2) == [title, "and the green turtle"]
    first.screenshot("conversation-continues")
    first.page.context.close()


def test_agent_steps_show_as_cards(session: Session) -> None:
    page = session.page
    page.get_by_text("Agent", exact=True).first.click()  # open the sidebar's Agent card
    switch = page.locator("[role=switch]").first
    for _ in range(3):  # the sidebar may still be moving (the conversation list loads)
        page.wait_for_timeout(300)
        switch.scroll_into_view_if_needed()
        box = switch.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] - 12, box["y"] + box["height"] / 2)  # the knob
        page.wait_for_timeout(300)
        if switch.get_attribute("aria-checked") == "true":
            break
    assert switch.get_attribute("aria-checked") == "true"
    # the echo model repeats this tool call, so the agent runs the calculator
    session.send('{"tool_name": "Calculator", "input": "6*7"}')
    session.wait_for_replies(1, timeout=60)
    titles = [t.strip() for t in session.texts("step-title")]
    assert any(t.startswith("Step 1: Calculator (ok") for t in titles), titles
    assert "agent step" in session.texts("mixchat-stats")[-1]
    session.screenshot("agent-steps")


def test_basic_auth_asks_for_a_login_and_keeps_each_users_chats(
    browser: Browser, tmp_path: Path
) -> None:
    with running_server(tmp_path, "--backend", "echo", "--basic-auth", "s3cret") as guarded:
        page = browser.new_page()
        page.goto(guarded.url)
        assert "/login" in page.url
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "s3cret")
        page.keyboard.press("Enter")
        page.get_by_placeholder("Message the model").wait_for()
        session = Session(page)
        session.send("alice's secret plan")
        assert session.wait_for_replies(1) == ["alice's secret plan"]
        page.close()
    from mixchat.store import ConversationStore

    store = ConversationStore(f"sqlite:///{tmp_path / 'mixchat.db'}")
    assert [c.title for c in store.list("alice")] == ["alice's secret plan"]
    assert store.list("local") == []
    store.close()


@pytest.mark.slow
def test_reply_streams_from_the_embedded_model(browser: Browser, tmp_path: Path) -> None:
    with running_server(
        tmp_path, "--backend", "llamacpp", "--max-tokens", "48", timeout=120
    ) as embedded:
        session = open_session(browser, embedded.url)
        welcome = session.texts("mixchat-notice")[0]
        assert "tiny demo model" in welcome
        session.send("Write one sentence about the sea.")
        states = _watch_states(session, until=1, timeout=120)
        assert len([s for s in states if s]) >= 3, states
        stats = session.texts("mixchat-stats")[-1]
        assert "tok/s" in stats and "first token" in stats
        assert "model loaded in" in stats  # the first reply: the loading apart from its first token
        session.screenshot("embedded-model")
        session.page.context.close()


def _log_position(session: Session) -> dict[str, float]:
    return session.page.locator(".mx-log").evaluate(
        "l => ({top: l.scrollTop, gap: l.scrollHeight - l.scrollTop - l.clientHeight})"
    )


def test_the_view_follows_a_long_streamed_reply_unless_scrolled_up(session: Session) -> None:
    lines = "\n".join(f"line {n}: " + _words(8, f"l{n}x") for n in range(80))
    session.send(lines)
    session.page.wait_for_timeout(800)
    gaps = []
    for _ in range(5):  # while it streams, the newest text is in view
        gaps.append(_log_position(session)["gap"])
        session.page.wait_for_timeout(150)
    assert max(gaps) < 60, gaps
    session.page.locator(".mx-log").evaluate("l => { l.scrollTop = 0 }")  # the user scrolls up
    session.page.wait_for_timeout(400)
    assert _log_position(session)["top"] < 50  # and stays there while text arrives
    assert session.button("Jump to the latest message ↓").is_visible()
    session.wait_for_replies(1)
    assert _log_position(session)["top"] < 50
    session.button("Jump to the latest message ↓").click()
    session.page.wait_for_timeout(300)
    assert _log_position(session)["gap"] < 60
    assert session.replies()[-1].endswith(_words(8, "l79x"))


def test_enter_while_a_reply_streams_says_why_nothing_was_sent(session: Session) -> None:
    session.send(_words(1500))
    session.page.wait_for_timeout(500)
    session.send("too soon")
    hint = session.page.locator(".mx-hint")
    assert "still being written" in hint.inner_text()
    assert session.button("Stop").is_visible()  # a clear, labelled stop button
    session.button("Stop").click()
    session.wait_for_replies(1)
    assert not session.button("Stop").is_visible() and session.button("Send").is_visible()
    assert len(session.texts("mixchat-user")) == 1  # "too soon" was not sent


def test_math_renders_with_katex_from_the_server(session: Session, server: Server) -> None:
    session.send("Euler: $e^{i\\pi} + 1 = 0$ and\n\n$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$")
    session.wait_for_replies(1)
    reply = session.page.locator(".mixchat-reply").last
    assert reply.locator(".katex").count() >= 2
    assert reply.locator(".katex-display").count() == 1
    assert reply.locator(".katex-error").count() == 0
    assert "$" not in reply.inner_text()
    session.page.wait_for_timeout(500)
    fonts = [url for url in session.requests if "KaTeX_" in url]
    assert fonts and all(url.startswith(server.url) for url in fonts)
    assert session.page.evaluate("document.fonts.check('16px KaTeX_Main')")
    session.screenshot("math")


def test_code_is_highlighted(session: Session) -> None:
    session.send("Here:\n\n```python\ndef add(x, y):\n    return x + y  # sum\n```")
    session.wait_for_replies(1)
    code = session.page.locator(".mixchat-reply pre code").last
    assert "language-python" in (code.get_attribute("class") or "")
    keywords = code.locator(".hljs-keyword").all_inner_texts()
    assert "def" in keywords and "return" in keywords
    assert code.locator(".hljs-comment").inner_text() == "# sum"


def test_copy_buttons_put_the_right_text_on_the_clipboard(session: Session, server: Server) -> None:
    session.page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/")
    )
    message = "Some **bold** text.\n\n```sh\necho 'hi there'\nls -la\n```\n\nThe end."
    session.send(message)
    session.wait_for_replies(1)
    reply = session.page.locator(".mx-assistant").last
    reply.get_by_role("button", name="Copy code").click()
    assert session.page.evaluate("navigator.clipboard.readText()") == "echo 'hi there'\nls -la\n"
    reply.get_by_role("button", name="Copy", exact=True).click()
    assert session.page.evaluate("navigator.clipboard.readText()") == message  # the Markdown
    assert reply.locator(".mx-copy").inner_text() == "Copied"  # it says so
    session.page.locator(".mx-user").last.get_by_role("button", name="Copy", exact=True).click()
    assert session.page.evaluate("navigator.clipboard.readText()") == message


def test_a_reload_in_the_middle_of_a_reply_shows_the_conversation(
    browser: Browser, server: Server
) -> None:
    first = open_session(browser, server.url)
    message = "midstream " + _words(1500)
    first.send(message)
    first.page.wait_for_timeout(1500)
    first.page.reload()
    first.page.get_by_placeholder("Message the model").wait_for()
    first.page.locator("button", has_text="midstream").first.click()
    first.page.locator(".mixchat-user", has_text="midstream").wait_for()
    partial = first.page.locator(".mixchat-reply").last.inner_text()
    assert partial and message.startswith(partial.strip())  # the reply so far...
    assert first.button("Stop").is_visible()
    assert first.wait_for_replies(1, timeout=60) == [message]  # ...followed to its end
    first.page.wait_for_timeout(1000)  # then read again from the store: still all there
    assert first.replies() == [message] and "finished" in first.texts("mixchat-stats")[-1]
    first.send("and after it")
    assert first.wait_for_replies(2)[-1] == "and after it"
    first.page.context.close()


#: The transcript socket's token, as the page got it in its Bokeh document.
_CHANNEL_TOKEN = """() => {
  for (const doc of window.Bokeh.documents)
    for (const model of doc._all_models.values())
      if (typeof model.channel === "string" && model.channel) return model.channel
  return null
}"""


def test_a_dropped_transcript_socket_loses_no_push(browser: Browser, server: Server) -> None:
    """The server's pushes come on the transcript's own websocket. Here the first one loses
    two pushes in the middle of a reply and then closes: the server goes on through Bokeh's
    socket, the page reopens its own, the server replays from the first push it missed, and
    the reply is whole, every word once."""
    connections: list[list[str]] = []

    def relay(route: WebSocketRoute) -> None:
        upstream = route.connect_to_server()
        got: list[str] = []
        connections.append(got)
        lossy = len(connections) == 1

        def forward(message: str | bytes) -> None:
            got.append(str(message))
            if not lossy or len(got) <= 3:
                route.send(message)
            elif len(got) == 6:
                route.close()
                upstream.close()

        upstream.on_message(forward)

    context = browser.new_context()
    page = context.new_page()
    page.route_web_socket(re.compile(r"/mixchat-transcript\?"), relay)
    page.goto(server.url)
    page.get_by_placeholder(INPUT).wait_for()
    session = Session(page)
    message = "dropped " + _words(600)  # ~3 s at the fixture's echo delay
    session.send(message)
    assert session.wait_for_replies(1, timeout=60) == [message]
    assert len(connections) >= 2 and len(connections[0]) == 6, connections
    numbers = [json.loads(push)[0] for push in connections[1]]
    assert numbers[0] == json.loads(connections[0][3])[0]  # replayed from the first lost
    context.close()


def test_the_transcript_socket_opens_only_with_the_pages_token_from_its_site(
    session: Session, server: Server
) -> None:
    """What an attacker can try on the socket: a guessed token is closed at once with
    nothing sent; the page's real token from another site's page is refused at the handshake.
    The same token from the page's own site does get the pushes (what the refusals kept out)."""
    session.send("a secret for this page only")
    session.wait_for_replies(1)
    token = session.page.evaluate(_CHANNEL_TOKEN)
    assert token
    socket = server.url.replace("http://", "ws://") + "mixchat-transcript"
    own_site = {"Origin": server.url.rstrip("/")}

    async def attempt() -> list[str]:
        guessed = await websocket_connect(
            HTTPRequest(f"{socket}?token={'A' * 24}", headers=own_site)
        )
        assert await guessed.read_message() is None and guessed.close_code == 4404
        with pytest.raises(HTTPClientError) as refused:
            await websocket_connect(
                HTTPRequest(f"{socket}?token={token}", headers={"Origin": "http://evil.example"})
            )
        assert refused.value.code == 403
        own = await websocket_connect(HTTPRequest(f"{socket}?token={token}", headers=own_site))
        pushes = []
        while (push := await asyncio.wait_for(own.read_message(), 5)) is not None:
            pushes.append(str(push))
            if "secret for this page only" in push or len(pushes) > 50:
                break
        own.close()
        return pushes

    with ThreadPoolExecutor(1) as thread:  # Playwright's own event loop runs in this one
        pushes = thread.submit(asyncio.run, attempt()).result()
    assert any("secret for this page only" in push for push in pushes), pushes


def _server_cpu(server: Server) -> float:
    times = psutil.Process(server.process.pid).cpu_times()
    return times.user + times.system


def test_the_30th_exchange_and_reopening_cost_what_the_first_does(
    browser: Browser, server: Server
) -> None:
    """Server CPU per exchange and per reopening stays flat with the conversation's length."""
    session = open_session(browser, server.url)
    title = "thirty turns " + _words(4, "t")
    costs = []
    for turn in range(30):
        before = _server_cpu(server)
        session.send(f"{title} turn {turn}: " + _words(200))
        session.wait_for_replies(turn + 1, timeout=60)
        session.page.wait_for_timeout(250)  # the store writes after the reply
        costs.append(_server_cpu(server) - before)
    first, last = statistics.median(costs[:3]), statistics.median(costs[-3:])
    print(f"server CPU per exchange: turns 1-3 {first * 1000:.0f} ms, 28-30 {last * 1000:.0f} ms")
    assert last <= 1.5 * first + 0.015, costs
    session.page.context.close()
    short = open_session(browser, server.url)
    short.send("one turn only " + _words(200))
    short.wait_for_replies(1)
    short.page.context.close()

    def reopen(name: str) -> tuple[float, int]:
        page = open_session(browser, server.url)
        page.page.wait_for_timeout(500)
        before = _server_cpu(server)
        page.page.locator("button", has_text=name).first.click()
        page.page.locator(".mixchat-user", has_text=name).first.wait_for()
        page.page.wait_for_timeout(500)
        cost = _server_cpu(server) - before
        shown = len(page.replies())
        page.page.context.close()
        return cost, shown

    one = [reopen("one turn only") for _ in range(3)]
    thirty = [reopen(title) for _ in range(3)]
    assert {shown for _, shown in one} == {1} and {shown for _, shown in thirty} == {30}
    one_cost = statistics.median(c for c, _ in one)
    thirty_cost = statistics.median(c for c, _ in thirty)
    print(f"reopening: 1 turn {one_cost * 1000:.0f} ms, 30 turns {thirty_cost * 1000:.0f} ms")
    assert thirty_cost <= 1.5 * one_cost + 0.03
