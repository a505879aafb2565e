"""Driving the real web app: a server process, and a headless browser that chats with it.

The browser types into the chat box and presses Enter, as a person does. Timings are taken
where the reply arrives: every websocket frame the page receives is timestamped (Playwright's
``framereceived``), and the frames that carry the reply's text are recognised as the
transcript component's pushes (on its own websocket, or as Bokeh ``esm_event`` messages before
that opens: ``[n, op, ...]`` with a ``["d", id, text]`` delta; a
``["s", id, {"status": "complete"...}]`` ends the reply).

Playwright hands over each frame's payload inflated; the page's websocket is compressed
(permessage-deflate, the server's ``websocket_compression``), so each frame's bytes on the
wire are found by running the payloads, in order, through the same deflate stream the
server keeps for the connection (:class:`WireMeter`): checked once against Tornado's own
byte counters, it gives the same count to the byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import psutil
from playwright.async_api import Browser, Page, WebSocket, async_playwright

from mixchat.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CHAT_INPUT = 'textarea[placeholder^="Message the model"]'
#: The zlib level the benchmarks' servers compress their websockets with (the default).
COMPRESSION = Settings.model_fields["websocket_compression"].default


def cpu_seconds(process: psutil.Process, match: str = "") -> float:
    """CPU time used so far by a process and its descendants (those whose name has ``match``)."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            if match in each.name():
                times = each.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def run_seconds(process: psutil.Process) -> float:
    """A process's CPU time to the nanosecond: the run time the scheduler counted for each of
    its threads (``/proc/PID/task/*/schedstat``), where ``cpu_times`` counts 10 ms clock
    ticks, too coarse for one exchange. A thread that ended takes its time with it: meant for
    a server whose threads are an event loop and worker pools."""
    total = 0
    for task in Path(f"/proc/{process.pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process on a free port: ``mixchat serve`` or the probe server."""

    def __init__(self, argv: list[str], port: int, env: Mapping[str, str], log: Path) -> None:
        self.port = port
        self.url = f"http://localhost:{port}/"
        self.started = time.perf_counter()
        self._log = log.open("w")
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @classmethod
    def cli(cls, settings: Mapping[str, Any], env: Mapping[str, str], log: Path) -> Server:
        """``python -m mixchat serve`` with these settings as flags, as a user starts it."""
        port = free_port()
        flags = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
        return cls(
            [sys.executable, "-m", "mixchat", "serve", f"--port={port}", *flags], port, env, log
        )

    @classmethod
    def probe(cls, settings: Mapping[str, Any], env: Mapping[str, str], log: Path) -> Server:
        port = free_port()
        script = str(Path(__file__).with_name("probe_server.py"))
        return cls(
            [sys.executable, script, f"--port={port}", json.dumps(dict(settings))], port, env, log
        )

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from the process start to the first HTTP 200 of the page."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited ({self.process.returncode}); see {self._log.name}"
                )
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"the server did not answer within {timeout:.0f} s; see {self._log.name}"
        )

    def probe_report(self, reset: bool = False) -> dict[str, float]:
        with urllib.request.urlopen(
            f"{self.url}bench/probe?reset={int(reset)}", timeout=10
        ) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@dataclass
class Reply:
    """One reply as the browser received it (times in seconds, from the Enter key)."""

    first_token: float = float("nan")
    last_token: float = float("nan")
    finished: float = float("nan")
    bytes_received: int = 0  # the frames' payloads, inflated
    wire_bytes: int = 0  # the same frames as they crossed the network, compressed
    body_bytes: int = 0  # of the frames that carry the reply's text
    frames: int = 0
    text: str = ""
    sent_at: float = 0.0  # time.perf_counter() at the Enter key
    tokens: int = 0  # as the reply's footer counts them
    server_speed: float = float("nan")  # tokens/s as the server's backend measured it (footer)


@dataclass
class _Frame:
    time: float
    payload: str
    size: int  # the payload's bytes, inflated
    wire: int  # bytes on the wire: the compressed payload and the frame's header


class WireMeter:
    """What the server's permessage-deflate made of each frame of one websocket.

    Tornado compresses every message with one ``zlib`` stream per connection (context
    takeover, 15 window bits, memory level 8), flushes it after each message and drops the
    flush's last 4 bytes; doing the same to the payloads, in order, yields its bytes.
    """

    def __init__(self, level: int = COMPRESSION) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -15, 8) if level else None

    def bytes_for(self, payload: bytes) -> int:
        if self._deflate is not None:
            payload = self._deflate.compress(payload) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            payload = payload[:-4]
        size = len(payload)
        return size + (2 if size < 126 else 4 if size < 65536 else 10)  # + the frame header


@dataclass
class ChatPage:
    """One browser tab with the chat open; every received websocket frame is kept."""

    page: Page
    frames: list[_Frame] = field(default_factory=list)

    def _on_websocket(self, ws: WebSocket) -> None:
        meter = WireMeter()
        ws.on("framereceived", lambda payload: self._on_frame(payload, meter))

    def _on_frame(self, payload: str | bytes, meter: WireMeter) -> None:
        now = time.perf_counter()
        data = payload if isinstance(payload, bytes) else payload.encode()
        text = "" if isinstance(payload, bytes) else payload
        self.frames.append(_Frame(now, text, len(data), meter.bytes_for(data)))

    async def send(self, text: str, timeout: float = 600.0) -> Reply:
        """Type ``text``, press Enter, wait until the reply's footer shows it finished."""
        box = self.page.locator(CHAT_INPUT)
        await box.fill(text)
        start = len(self.frames)
        sent = time.perf_counter()
        await box.press("Enter")
        deadline = time.monotonic() + timeout
        while not finished_in(self.frames[start:]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no finished reply within {timeout:.0f} s")
            await asyncio.sleep(0.02)
        reply = _read_reply(self.frames[start:], sent)
        reply.text = await self.page.locator(".mixchat-reply").last.inner_text()
        footer = await self.page.locator(".mixchat-stats").last.inner_text()
        counted = re.match(r"\s*(\d+) tokens?", footer)
        reply.tokens = int(counted.group(1)) if counted else 0
        speed = re.search(r"([\d.]+) tok/s", footer)
        reply.server_speed = float(speed.group(1)) if speed else float("nan")
        return reply


class Chromium:
    """A headless Chromium that opens chat pages."""

    def __init__(self) -> None:
        self._playwright: Any = None
        self.browser: Browser | None = None

    async def __aenter__(self) -> Self:
        self._playwright = await async_playwright().start()
        self.browser = await self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.browser is not None:
            await self.browser.close()
        await self._playwright.stop()

    async def open_chat(self, url: str) -> tuple[ChatPage, float]:
        """A new tab with the chat page; also the seconds until the chat box was usable."""
        assert self.browser is not None
        page = await self.browser.new_page()
        chat = ChatPage(page)
        page.on("websocket", chat._on_websocket)
        started = time.perf_counter()
        await page.goto(url)
        await page.locator(CHAT_INPUT).wait_for(timeout=120_000)
        return chat, time.perf_counter() - started


def _pushes(frames: list[_Frame]) -> Iterator[tuple[int, list[Any]]]:
    """The transcript's pushes (``[n, op, ...]``) in the frames, with their frame's index: a
    frame of its own socket is one push; on Bokeh's, a push is a custom message's data."""
    for index, frame in enumerate(frames):
        if frame.payload.startswith("[") or '"esm_event"' in frame.payload:
            try:
                content = json.loads(frame.payload)
            except ValueError:
                continue
            if isinstance(content, list):
                yield index, content
                continue
            for event in content.get("events", ()) if isinstance(content, dict) else ():
                values = (event.get("msg_data") or {}).get("values") or {}
                data = dict(values.get("entries", [])).get("data")
                if isinstance(data, list):
                    yield index, data


def _transcript_ops(frames: list[_Frame]) -> Iterator[tuple[int, float, list[Any]]]:
    """The transcript component's ops (``[op, ...]``) in the frames, each once, in the order
    the page applies them (a push can come on both sockets)."""
    applied: set[int] = set()
    for index, push in _pushes(frames):
        if not push or not isinstance(push[0], int) or push[0] in applied:
            continue
        applied.add(push[0])
        for op in push[1:]:
            if isinstance(op, list) and op:
                yield index, frames[index].time, op


def _finished_op(op: list[Any]) -> bool:
    """A "set" message that ends a reply (status complete, stopped or error)."""
    if op[0] != "s" or len(op) < 3:
        return False
    return json.loads(op[2]).get("status") in ("complete", "stopped", "error")


def _message_frames(frames: list[_Frame], content: int) -> set[int]:
    """A Bokeh message's frames: its content and the header and metadata frames before it
    (a push on the transcript's own socket is one frame)."""
    found = {content}
    if frames[content].payload.startswith("["):
        return found
    for index in (content - 1, content - 2):
        if index >= 0 and (frames[index].payload == "{}" or '"msgid"' in frames[index].payload):
            found.add(index)
    return found


def finished_in(frames: list[_Frame]) -> bool:
    return any(_finished_op(op) for _, _, op in _transcript_ops(frames))


def _read_reply(frames: list[_Frame], sent: float) -> Reply:
    arrivals: list[float] = []
    carriers: set[int] = set()
    finished = float("nan")
    for index, when, op in _transcript_ops(frames):
        if op[0] == "d":  # a text delta of the reply
            arrivals.append(when - sent)
            carriers |= _message_frames(frames, index)
        elif _finished_op(op):
            finished = when
            break
    upto = [frame for frame in frames if frame.time <= finished]
    return Reply(
        first_token=min(arrivals, default=float("nan")),
        last_token=max(arrivals, default=float("nan")),
        finished=finished - sent,
        bytes_received=sum(frame.size for frame in upto),
        wire_bytes=sum(frame.wire for frame in upto),
        body_bytes=sum(frames[index].size for index in carriers if index >= 0),
        frames=len(upto),
        sent_at=sent,
    )
