"""The terminal chat as a user runs it: saved to history, resumed, line editing, slash commands,
and a reply that survives a kill -9 of the process writing it."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

import mixchat.store.store
from mixchat.store import LOCAL_OWNER, ConversationStore


def run(
    data: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mixchat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MIXCHAT_DATA_DIR": str(data), **env},
    )


def stored(data: Path) -> list[list[tuple[str, str, str]]]:
    """Every conversation's current branch as (role, content, status), oldest first."""
    with ConversationStore(f"sqlite:///{data / 'mixchat.db'}") as store:
        return [
            [(m.role, m.content, m.status) for m in store.get(LOCAL_OWNER, s.id).messages]
            for s in reversed(store.list(LOCAL_OWNER))
        ]


def test_ask_saves_the_exchange_and_no_log_saves_nothing(tmp_path: Path) -> None:
    result = run(tmp_path, "ask", "--backend", "echo", "--stats", "hi")
    assert result.returncode == 0, result.stderr
    assert "1 token ·" in result.stderr  # not "1 tokens"
    assert stored(tmp_path) == [[("user", "hi", "complete"), ("assistant", "hi", "complete")]]
    assert run(tmp_path, "ask", "--backend", "echo", "--no-log", "secret").returncode == 0
    assert len(stored(tmp_path)) == 1


def test_chat_saves_continues_the_last_one_and_handles_slash_commands(tmp_path: Path) -> None:
    first = run(
        tmp_path, "chat", "--backend", "echo", stdin="one\n/help\n/system be brief\n/exit\n"
    )
    assert first.returncode == 0, first.stderr
    assert "/new" in first.stderr and "(system prompt set)" in first.stderr
    assert "/help" not in first.stdout  # handled locally, never sent to the model
    run(tmp_path, "ask", "--backend", "echo", "--no-log", "not saved")
    second = run(tmp_path, "chat", "--backend", "echo", "--continue", stdin="two\n/save\n/exit\n")
    assert second.returncode == 0, second.stderr
    assert "continuing" in second.stderr and "2 messages" in second.stderr
    assert "saved as" in second.stderr
    assert stored(tmp_path) == [
        [
            ("user", "one", "complete"),
            ("assistant", "one", "complete"),
            ("user", "two", "complete"),
            ("assistant", "two", "complete"),
        ]
    ]
    third = run(tmp_path, "chat", "--backend", "echo", stdin="/new\nthree\n/exit\n")
    assert third.returncode == 0 and len(stored(tmp_path)) == 2
    missing = run(tmp_path, "chat", "--backend", "echo", "--continue", "ffff", stdin="")
    assert missing.returncode == 1 and "no conversation 'ffff'" in missing.stderr


def test_save_writes_markdown(tmp_path: Path) -> None:
    target = tmp_path / "out.md"
    result = run(tmp_path, "chat", "--backend", "echo", stdin=f"hello there\n/save {target}\n")
    assert result.returncode == 0, result.stderr
    assert "hello there" in target.read_text()


def test_line_editing_recalls_earlier_lines_with_the_up_arrow(tmp_path: Path) -> None:
    """Through a real terminal: ↑ brings back the last line instead of printing ^[[A."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mixchat", "chat", "--backend", "echo", "--no-log"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "MIXCHAT_DATA_DIR": str(tmp_path), "TERM": "xterm"},
    )
    os.close(follower)
    seen = b""

    def wait_for(text: bytes, count: int = 1) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while seen.count(text) < count and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                seen += os.read(leader, 4096)
        assert seen.count(text) >= count, seen

    try:
        wait_for(b"you> ")
        os.write(leader, b"remember me\r")
        wait_for(b"you> ", 2)
        os.write(leader, b"\x1b[A\r")  # the up arrow, then Enter
        wait_for(b"you> ", 3)
        assert seen.count(b"remember me") >= 4  # typed, echoed, recalled, echoed again
        assert b"^[[A" not in seen
        os.write(leader, b"/exit\r")
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)


def test_a_reply_killed_mid_stream_is_kept_marked_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 a real `mixchat ask` while it streams a slow reply, then open the database."""
    assert run(tmp_path, "ask", "--backend", "echo", "complete before").returncode == 0
    words = " ".join(f"w{n}" for n in range(200))
    process = subprocess.Popen(
        [sys.executable, "-m", "mixchat", "ask", "--backend", "echo", words],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "MIXCHAT_DATA_DIR": str(tmp_path), "MIXCHAT_ECHO_DELAY": "0.05"},
    )
    try:
        deadline = time.monotonic() + 60
        partial = ""
        while not partial and time.monotonic() < deadline:  # until a periodic save landed
            time.sleep(0.3)
            with sqlite3.connect(tmp_path / "mixchat.db") as connection:
                row = connection.execute(
                    "SELECT content FROM messages WHERE role = 'assistant' AND status = 'streaming'"
                ).fetchone()
            partial = row[0] if row else ""
        assert partial.startswith("w0 w1"), "no partial save within 60 s"
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    with sqlite3.connect(tmp_path / "mixchat.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    monkeypatch.setattr(mixchat.store.store, "STALE_AFTER", timedelta(seconds=1))
    time.sleep(1.5)  # the dead process's heartbeat is now older than STALE_AFTER
    before, killed = stored(tmp_path)
    assert before == [
        ("user", "complete before", "complete"),
        ("assistant", "complete before", "complete"),
    ]
    assert killed[0] == ("user", words, "complete")
    role, text, status = killed[1]
    assert (role, status) == ("assistant", "interrupted")
    assert text.startswith("w0 w1") and len(text) < len(words)
