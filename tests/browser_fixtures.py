"""Browser-test helpers: the real server on a free port, Debian's chromium through Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from processes import free_port, running_process

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
INPUT = "Message the model"


#: The visible text of elements: the transcript's own (inside its shadow root, which locators
#: pierce), or a Panel pane's, which renders in a shadow root of its own.
_TEXT = """els => els.map(el => el.shadowRoot
  ? Array.from(el.shadowRoot.children)
      .filter(c => !['STYLE', 'LINK'].includes(c.tagName)).map(c => c.innerText).join('')
  : el.innerText)"""


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_server(
    data_dir: Path,
    *args: str,
    echo_delay: float = 0.01,
    timeout: float = 90.0,
    config: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``mixchat serve`` in a subprocess, ready when its page answers.

    ``config`` is the text of its config file; ``env`` is added to its environment (after the
    API keys of the test run's own environment are removed).
    """
    port = free_port()
    config_path = data_dir / ("config.toml" if config is not None else "absent.toml")
    if config is not None:
        config_path.write_text(config)
    environ = {
        **os.environ,
        "MIXCHAT_CONFIG": str(config_path),
        "MIXCHAT_ECHO_DELAY": str(echo_delay),
        "PYTHONUNBUFFERED": "1",
    }
    environ.pop("OPENAI_API_KEY", None)
    environ.pop("MISTRAL_API_KEY", None)
    environ.update(env or {})
    log = data_dir / f"server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "mixchat",
        "serve",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--data-dir",
        str(data_dir),
        *args,
    ]
    url = f"http://127.0.0.1:{port}/"
    with running_process(command, log, url, timeout, environ) as process:
        yield Server(url, port, process, log)


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Session:
    """A page plus what it saw: every request URL, dialogs, websocket bytes received."""

    page: Page
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    ws_bytes: list[int] = field(default_factory=lambda: [0])
    #: The extensions each websocket's handshake agreed on (``permessage-deflate``), in order.
    ws_extensions: list[str] = field(default_factory=list)

    def send(self, text: str) -> None:
        box = self.page.get_by_placeholder(INPUT)
        box.fill(text)
        box.press("Enter")

    def texts(self, css_class: str) -> list[str]:
        """The visible text of each element with ``css_class``, in order."""
        return self.page.locator(f".{css_class}").evaluate_all(_TEXT)

    def replies(self) -> list[str]:
        """The text of each assistant reply, in order."""
        return [text.strip() for text in self.texts("mixchat-reply")]

    def wait_for_replies(self, count: int, timeout: float = 30.0) -> list[str]:
        """Wait until ``count`` replies are finished (their stats line shows)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = [text for text in self.texts("mixchat-stats") if text.strip()]
            if len(stats) >= count:
                return self.replies()
            self.page.wait_for_timeout(100)
        raise AssertionError(
            f"{count} finished replies expected; stats: {self.texts('mixchat-stats')}"
        )

    def button(self, label: str):  # type: ignore[no-untyped-def]
        """A visible button, found by its label (as a screen reader names it)."""
        return self.page.get_by_role("button", name=label, exact=True)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


def open_session(browser: Browser, url: str) -> Session:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15_000)
    session = Session(page)
    page.on("request", lambda request: session.requests.append(request.url))

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        session.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def on_websocket(ws) -> None:  # type: ignore[no-untyped-def]
        def count(frame: str | bytes) -> None:
            session.ws_bytes[0] += len(frame.encode() if isinstance(frame, str) else frame)

        ws.on("framereceived", count)

    page.on("websocket", on_websocket)

    def on_handshake(event: dict) -> None:  # type: ignore[type-arg]
        headers = {k.lower(): v for k, v in event["response"]["headers"].items()}
        session.ws_extensions.append(headers.get("sec-websocket-extensions", ""))

    devtools = context.new_cdp_session(page)  # the handshake's headers, as Chromium got them
    devtools.send("Network.enable")
    devtools.on("Network.webSocketHandshakeResponseReceived", on_handshake)
    page.goto(url)
    page.get_by_placeholder(INPUT).wait_for(timeout=30_000)
    return session
