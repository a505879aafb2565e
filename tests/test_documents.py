"""Attached documents: text out of real files, clear refusals for hostile ones."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from mixchat.backends import get_backend
from mixchat.config import load_settings
from mixchat.documents import (
    DocumentLimits,
    DocumentRefused,
    DocumentTooLong,
    check_fits,
    read_document,
    read_file,
    with_documents,
)
from pdf_files import bomb_pdf, many_pages_pdf, text_pdf


def test_text_markdown_code_csv_and_html_are_read_as_text(tmp_path: Path) -> None:
    assert read_document("a.txt", "caf\u00e9 \u2713\n".encode()).text == "caf\u00e9 \u2713\n"
    assert read_document("a.md", b"\xef\xbb\xbf# Title").kind == "markdown"
    assert read_document("main.py", b"print(1)\n").kind == "code"
    assert read_document("t.csv", b"a,b\n1,2\n").text == "a,b\n1,2\n"
    page = b"<html><head><style>p{}</style><script>alert(1)</script></head><body><h1>Hi</h1>" \
        b"<p>one &amp; two</p></body></html>"  # fmt: skip
    document = read_document("p.html", page)
    assert (document.kind, document.text) == ("html", "Hi\none & two")
    path = tmp_path / "notes.md"
    path.write_text("from disk")
    assert read_file(path).text == "from disk"


def test_a_pdf_gives_its_text_and_page_count() -> None:
    document = read_document("report.pdf", text_pdf(["Quarterly revenue grew", "Second page"]))
    assert (document.kind, document.pages) == ("pdf", 2)
    assert "Quarterly revenue grew" in document.text and "Second page" in document.text


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("photo.txt", os.urandom(4096), "binary data, not text"),
        ("fake.pdf", b"hello, not a pdf", "not a PDF"),
        ("app.exe", b"MZ...", ".exe files are not taken"),
        ("broken.pdf", b"%PDF-1.4\n garbage", "could not be read"),
    ],
)
def test_files_that_are_not_what_they_say_are_refused(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DocumentRefused, match=message):
        read_document(name, data)


def test_a_200_mb_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as file:  # sparse: no disk, no time
        file.truncate(200 * 1024 * 1024)
    started = time.monotonic()
    with pytest.raises(DocumentRefused, match=r"huge.txt is 200.0 MB; the limit .* is 10.0 MB"):
        read_file(huge)
    assert time.monotonic() - started < 1


def test_too_many_pages_are_refused() -> None:
    with pytest.raises(DocumentRefused, match="has 12 pages; the limit is 10"):
        read_document("long.pdf", many_pages_pdf(12), DocumentLimits(max_pages=10))


async def test_a_pdf_bomb_is_refused_and_the_server_keeps_answering() -> None:
    bomb = bomb_pdf(1024)  # 1 GB of page content in about 1 MB
    assert len(bomb) < 2 * 1024 * 1024
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        with pytest.raises(DocumentRefused, match="bomb.pdf has no text"):
            await asyncio.to_thread(
                read_document, "bomb.pdf", bomb, DocumentLimits(pdf_seconds=10, pdf_memory_mb=256)
            )
    finally:
        ticker.cancel()
    elapsed = time.monotonic() - started
    assert elapsed < 20
    assert ticks >= elapsed / 0.05 * 0.5  # the event loop ran all along


def test_the_document_goes_into_the_user_turn_and_too_long_says_by_how_much() -> None:
    document = read_document("a.txt", b"alpha beta gamma " * 200)
    turn = with_documents("What is this?", [document])
    assert turn.startswith("<document name='a.txt'>\nalpha beta") and turn.endswith("What is this?")
    backend = get_backend(load_settings(backend="echo", n_ctx=256))
    messages = [{"role": "user", "content": turn}]
    tokens = backend.count_tokens(messages)  # type: ignore[arg-type]
    with pytest.raises(
        DocumentTooLong, match=rf"takes {tokens} tokens .* {tokens + 50 - 256} more"
    ):
        check_fits(backend, messages, max_tokens=50)  # type: ignore[arg-type]
    small = [{"role": "user", "content": "hi"}]
    assert check_fits(backend, small, max_tokens=50) == backend.count_tokens(small)  # type: ignore[arg-type]


def test_ask_with_files_sends_their_text_and_refuses_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    notes, report, photo = tmp_path / "notes.md", tmp_path / "report.pdf", tmp_path / "photo.txt"
    notes.write_text("the launch is on Tuesday")
    report.write_bytes(text_pdf(["budget is 42 euros"]))
    photo.write_bytes(os.urandom(2048))

    def ask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mixchat", "ask", "--backend", "echo", "--no-log", *args],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "MIXCHAT_DATA_DIR": str(tmp_path)},
        )  # fmt: skip

    both = ask("-f", str(notes), "--file", str(report), "When?")
    assert both.returncode == 0, both.stderr
    assert "the launch is on Tuesday" in both.stdout and "budget is 42 euros" in both.stdout
    refused = ask("-f", str(photo), "What?")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "mixchat: error: photo.txt is binary data, not text"
    notes.write_text("word " * 400)
    long = ask("--n-ctx", "256", "-n", "64", "-f", str(notes), "Summarise")
    assert long.returncode == 1 and "more than the model's context of 256" in long.stderr
