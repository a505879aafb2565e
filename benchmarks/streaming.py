"""1. Streaming overhead: raw llama-cpp-python, mixchat's backend, the web path, and the API.

The four stream greedy replies to prompts of one length, interleaved repetition by repetition
(raw, backend, web, api, with a rest between) so that a noisy neighbour slows all four alike.
Every run is a new conversation (its number leads the prompt: see :func:`prompt`), so each
path's first token includes the same prompt evaluation and the difference is the path's own
overhead. Raw is the tutorials' loop: ``create_completion`` with ``stream=True`` in the calling
thread; the backend is ``LlamaCppBackend.stream``; the web path is a browser tab sending the
prompt to ``mixchat serve`` (timed at the websocket frames); the API path is the ``openai`` SDK
streaming ``/v1/chat/completions`` from the same server.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass

import openai
import psutil
from common import LONG_PROMPT, Config, Section, Stopwatch, median
from web import Chromium, Server, cpu_seconds

from mixchat.backends import ChatRequest, TextDelta
from mixchat.backends.llamacpp import LlamaCppBackend

_runs = itertools.count(10)


def prompt() -> str:
    """The prompt with this run's number first (10, 11, ...: the same length each time).

    Every run starts a new conversation, as a new tab does: the model's KV cache holds no
    prefix of it, so each path's first token includes the same prompt evaluation. With one
    repeated prompt, the cache decided instead: the embedded Gemma's sliding-window cache keeps
    a whole prefix one time and starts afresh the next (3 ms or 50 ms to the same first
    token), and a path came second to another prompt or reply (the web's, sampled) by chance.
    """
    return f"Request {next(_runs)}. {LONG_PROMPT}"


def messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt()}]


#: Seconds between two paths, so that each starts on a machine at rest: a closed tab's teardown
#: (in the browser and the server) and the store writes after a web reply would otherwise land in
#: the next path's first token (on 2 cores, the API's first chunk came ~100 ms late behind them).
REST = 0.5


@dataclass
class Run:
    """One reply: seconds to the first and the last token, and how many tokens."""

    first_token: float
    last_token: float
    tokens: int
    chars: int
    server_speed: float = float("nan")  # web only: the server's backend's own tokens/s
    server_cpu: float = float("nan")  # web only: CPU seconds of the server, and of the browser
    browser_cpu: float = float("nan")

    @property
    def tokens_per_second(self) -> float:
        """The user's view: tokens over the whole wait, first token included."""
        return self.tokens / self.last_token

    @property
    def steady_tokens_per_second(self) -> float:
        """The streaming rate once the reply has started."""
        return (self.tokens - 1) / (self.last_token - self.first_token)


class Tally:
    """Counts a reply's pieces as they arrive and times the first and the last."""

    def __init__(self) -> None:
        self.clock = Stopwatch()
        self.first, self.count, self.chars = float("nan"), 0, 0

    def add(self, piece: str | None) -> None:
        if piece:
            self.count += 1
            self.chars += len(piece)
            if self.count == 1:
                self.first = self.clock()

    def run(self) -> Run:
        return Run(self.first, self.clock(), self.count, self.chars)


def raw(backend: LlamaCppBackend, cfg: Config) -> Run:
    """The tutorials' way, on the same ``Llama`` and prompt ids as the backend."""
    llm, tokens = backend._llm, backend.prompt_tokens(messages())
    tally = Tally()
    for chunk in llm.create_completion(
        tokens,
        max_tokens=cfg.reply_tokens,
        temperature=0.0,
        seed=cfg.settings().seed,
        stop=["\nUser:"],
        stream=True,
    ):
        tally.add(chunk["choices"][0]["text"])
    return tally.run()


async def through_backend(backend: LlamaCppBackend, cfg: Config) -> Run:
    request = ChatRequest(messages(), params=cfg.sampling(cfg.reply_tokens))
    tally = Tally()
    async for event in backend.stream(request):
        if isinstance(event, TextDelta):
            tally.add(event.text)
    return tally.run()


async def through_api(client: openai.AsyncOpenAI, model: str, cfg: Config) -> Run:
    """The official ``openai`` SDK streaming from the server's ``/v1/chat/completions``.

    One client for the whole run, as an application keeps one: a new client per request
    takes ~45 ms longer to its first chunk here (sync or async alike), time spent in the
    client and its new connection pool, not in mixchat.
    """
    tally = Tally()
    stream = await client.chat.completions.create(
        model=model,
        messages=messages(),  # type: ignore[arg-type]
        max_tokens=cfg.reply_tokens,
        temperature=0.0,
        seed=cfg.settings().seed,
        stream=True,
    )
    async for chunk in stream:
        tally.add(chunk.choices[0].delta.content if chunk.choices else None)
    return tally.run()


async def through_web(browser: Chromium, server: Server) -> Run:
    """A new tab (so the conversation is this one message), the prompt typed and sent."""
    page, _ = await browser.open_chat(server.url)
    await asyncio.sleep(REST)  # as a user types: the new page's own loading is over
    me, serving = psutil.Process(), psutil.Process(server.process.pid)
    before = cpu_seconds(serving), cpu_seconds(me, "chrom")
    try:
        reply = await page.send(prompt())
        after = cpu_seconds(serving), cpu_seconds(me, "chrom")  # before the tab's process exits
    finally:
        await page.page.close()
    return Run(
        reply.first_token,
        reply.last_token,
        reply.tokens,
        len(reply.text),
        reply.server_speed,
        after[0] - before[0],
        after[1] - before[1],
    )


async def run(cfg: Config, backend: LlamaCppBackend, browser: Chromium, server: Server) -> Section:
    section = Section("Streaming overhead")
    clock = Stopwatch()
    runs: dict[str, list[Run]] = {"raw": [], "backend": [], "web": [], "api": []}
    raw(
        backend, cfg
    )  # warm-up: the prompt into the KV cache (the server was warmed up by the cold start)
    async with openai.AsyncOpenAI(base_url=f"{server.url}v1", api_key="-") as client:
        model = (await client.models.list()).data[0].id  # the server's first catalog model
        await through_api(client, model, cfg)  # warm-up: the client's connection
        for _ in range(cfg.repetitions):
            runs["raw"].append(raw(backend, cfg))
            await asyncio.sleep(REST)
            runs["backend"].append(await through_backend(backend, cfg))
            await asyncio.sleep(REST)
            runs["web"].append(await through_web(browser, server))
            await asyncio.sleep(REST)
            runs["api"].append(await through_api(client, model, cfg))
            await asyncio.sleep(REST)
    speed = {path: median(run.tokens_per_second for run in found) for path, found in runs.items()}
    first = {path: median(run.first_token for run in found) for path, found in runs.items()}
    steady = {
        path: median(run.steady_tokens_per_second for run in found) for path, found in runs.items()
    }
    for path in runs:
        section.add(f"{path}: tokens/s (median of {cfg.repetitions})", speed[path], "tok/s")
        section.add(f"{path}: tokens/s after the first token", steady[path], "tok/s")
        section.add(f"{path}: time to first token", first[path] * 1000, "ms")
    section.add(
        "backend / raw tokens/s",
        speed["backend"] / speed["raw"],
        "x",
        target=0.95,
        higher_is_better=True,
    )
    section.add(
        "web / raw tokens/s", speed["web"] / speed["raw"], "x", target=0.95, higher_is_better=True
    )
    section.add("web / raw tokens/s after the first token", steady["web"] / steady["raw"], "x")
    section.add(
        "api / raw tokens/s", speed["api"] / speed["raw"], "x", target=0.95, higher_is_better=True
    )
    web = runs["web"]
    section.add(
        "web: the server's own tokens/s (reply footer)",
        median(run.server_speed for run in web),
        "tok/s",
        note="as the server's backend measured it",
    )
    section.add(
        "web: CPU seconds per reply, server / browser",
        median(run.server_cpu for run in web),
        "s",
        note=f"browser {median(run.browser_cpu for run in web):.1f} s, on the same "
        f"{os.cpu_count()} cores",
    )
    section.add(
        "backend - raw time to first token",
        (first["backend"] - first["raw"]) * 1000,
        "ms",
        target=50,
    )
    section.add(
        "web - raw time to first token", (first["web"] - first["raw"]) * 1000, "ms", target=50
    )
    section.add(
        "api - raw time to first token", (first["api"] - first["raw"]) * 1000, "ms", target=50
    )
    counts = {path: found[0].tokens for path, found in runs.items()}
    section.notes.append(
        f"greedy replies of {counts['raw']}, {counts['backend']}, {counts['web']} and "
        f"{counts['api']} tokens (raw, backend, web, api: the web count is the reply footer's, "
        "the api count its content chunks); tokens/s = tokens / seconds from the request to the "
        "last token; web times run from the Enter key to the websocket frame carrying the text, "
        "api times from the request to the SSE chunk carrying it."
    )
    section.series = {
        "speed": speed,
        "first": first,
        "runs": {path: [vars(run) for run in found] for path, found in runs.items()},
    }
    section.seconds = clock()
    return section
