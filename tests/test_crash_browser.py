"""A web reply in progress survives a crash: kill -9 the real server mid-reply, restart it on
the same database, and the page shows the partial reply marked interrupted."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from browser_fixtures import chromium, open_session, running_server
from mixchat.store.store import STALE_AFTER

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _rows(database: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT role, content, status FROM messages ORDER BY id"
        ).fetchall()


def test_a_server_killed_mid_reply_shows_the_partial_reply_interrupted(tmp_path: Path) -> None:
    database = tmp_path / "mixchat.db"
    words = " ".join(f"w{i}" for i in range(400))
    args = ("--backend", "echo", "--max-tokens", "4096")
    with chromium() as browser:
        with running_server(tmp_path, *args, echo_delay=0.05) as server:
            session = open_session(browser, server.url)
            session.send("complete before")
            session.wait_for_replies(1)
            session.send(words)
            deadline = time.monotonic() + 60
            partial = ""
            while time.monotonic() < deadline and not partial.startswith("w0 w1"):
                time.sleep(0.3)
                streaming = [r for r in _rows(database) if r[2] == "streaming"]
                partial = streaming[0][1] if streaming else ""
            assert partial.startswith("w0 w1"), "no partial save within 60 s"
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            killed = time.monotonic()
            session.page.context.close()
        with sqlite3.connect(database) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = _rows(database)
        assert rows[:3] == [
            ("user", "complete before", "complete"),
            ("assistant", "complete before", "complete"),
            ("user", words, "complete"),
        ]
        assert rows[3][0] == "assistant" and rows[3][2] == "streaming"
        with running_server(tmp_path, *args, echo_delay=0.05) as again:
            time.sleep(max(0.0, killed + STALE_AFTER.total_seconds() + 1 - time.monotonic()))
            session = open_session(browser, again.url)
            page = session.page
            page.locator("button", has_text="complete before").first.click()
            page.locator(".mixchat-user", has_text="w0 w1").wait_for()
            replies = session.wait_for_replies(2)
            assert replies[0] == "complete before"
            assert replies[1].startswith("w0 w1") and len(replies[1]) < len(words)
            assert "Interrupted" in session.texts("mixchat-stats")[-1]
            session.screenshot("interrupted-reply")
            # it can be regenerated: the new reply is another version beside it
            session.button("Regenerate").click()
            page.wait_for_timeout(1500)
            session.button("Stop").click()
            page.locator(".mx-assistant .mx-branch-at").last.wait_for()
            assert page.locator(".mx-assistant .mx-branch-at").last.inner_text() == "2/2"
            page.get_by_role("button", name="Previous version").last.click()
            page.wait_for_timeout(500)
            assert "Interrupted" in session.texts("mixchat-stats")[-1]
            session.page.context.close()
