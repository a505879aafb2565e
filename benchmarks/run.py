"""``make bench``: every benchmark side by side in one run; writes the table and the plots.

    .venv/bin/python benchmarks/run.py            # the full run (under 20 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick --out /tmp/bench   # tiny sizes, for the tests

Writes ``results/latest.md`` and ``results/*.png`` (or into ``--out``). A benchmark that fails
is reported in the table's notes and the others still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import agent_steps
import coldstart
import concurrency
import multiturn
import plots
import report
import streaming
import webtier
import wire
from common import ECHO_DELAY, ECHO_PROMPT, Config, Section
from web import Chromium, Server

from mixchat.backends import get_backend
from mixchat.backends.llamacpp import LlamaCppBackend

#: Every tab of a concurrency run is the same (local) user, which the per-user limit of two
#: requests in flight would refuse: lifted, so that N tabs stand for N users.
NO_USER_LIMITS = {"requests_in_flight": None}


def server_settings(cfg: Config, max_tokens: int) -> dict[str, Any]:
    return {"backend": "llamacpp", "temperature": 0.0, "seed": 0, "max_tokens": max_tokens}


class Runner:
    """Runs the benchmarks in order; collects their sections and the errors of those that fail."""

    streaming_only = False  # --streaming-only: cold start and streaming (raw, backend, web, api)

    def __init__(self, cfg: Config, scratch: Path) -> None:
        self.cfg = cfg
        self.scratch = scratch
        self.sections: list[Section] = []
        self.errors: list[str] = []
        self.only: set[str] = set()  # run only these benchmarks (all when empty)

    def env(self, name: str) -> dict[str, str]:
        """A fresh conversation store per server, so no earlier run's history is listed."""
        return {"MIXCHAT_DATABASE_URL": f"sqlite:///{self.scratch / name}.sqlite"}

    async def attempt(self, name: str, work: Awaitable[Any]) -> Any:
        if self.only and name not in self.only:
            work.close()  # type: ignore[attr-defined]
            return None
        started = time.perf_counter()
        print(f"[bench] {name}…", file=sys.stderr, flush=True)
        try:
            result = await work
        except Exception as exc:  # noqa: BLE001 - one failed benchmark must not lose the others
            traceback.print_exc()
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None
        found = result if isinstance(result, list) else [result]
        self.sections += [section for section in found if section is not None]
        print(
            f"[bench] {name} done in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        return result

    def server(self, name: str, max_tokens: int, probe: bool = False, echo: bool = False) -> Server:
        start = Server.probe if probe else Server.cli
        # echo: the web tier alone, a fast fake model and a conversation stored beforehand
        echoing = {"backend": "echo", "max_tokens": 4096}
        settings = echoing if echo else server_settings(self.cfg, max_tokens)
        if probe:  # the concurrency runs: N tabs stand for N users (one login, no auth)
            settings["limits"] = NO_USER_LIMITS
        if echo:
            env = {**self.env(name), "MIXCHAT_ECHO_DELAY": str(ECHO_DELAY)}
            webtier.seed_conversation(env["MIXCHAT_DATABASE_URL"])
            return start(settings, env, self.scratch / f"{name}.log")
        return start(settings, self.env(name), self.scratch / f"{name}.log")

    async def run(self) -> None:
        cfg = self.cfg
        backend = get_backend(cfg.settings())
        assert isinstance(backend, LlamaCppBackend)
        await backend.load()
        async with Chromium() as browser:
            main = self.server("main", cfg.reply_tokens)
            try:
                started = await self.attempt("cold start", coldstart.run(browser, main))
                if started is None and self.only and "cold start" not in self.only:
                    started = main.wait_ready()  # cold start not asked for
                if started:
                    await self.attempt("streaming", streaming.run(cfg, backend, browser, main))
            finally:
                main.stop()
            if self.streaming_only:
                await backend.aclose()
                return
            await self.attempt("multi-turn", multiturn.run(cfg, backend))
            await self.attempt("agent", agent_steps.run(cfg, backend))
            await self.with_server(
                "concurrency",
                cfg.concurrent_tokens,
                probe=True,
                work=lambda server: concurrency.run(cfg, browser, server),
            )
            await self.with_server(
                "web tier",
                0,
                probe=False,
                echo=True,
                work=lambda server: webtier.run(cfg, browser, server),
            )
            await self.with_server(
                "concurrency (echo)",
                0,
                probe=True,
                echo=True,
                work=lambda server: concurrency.run(
                    cfg,
                    browser,
                    server,
                    title="Concurrency (echo backend)",
                    sessions=cfg.echo_sessions,
                    prompt=ECHO_PROMPT,
                    lag_targets={8: 50.0, 32: 100.0},
                    expected=ECHO_PROMPT,
                ),
            )
            await self.with_server(
                "wire",
                cfg.wire_tokens,
                probe=False,
                work=lambda server: wire.run(cfg, browser, server, backend),
            )
        await backend.aclose()

    async def with_server(
        self, name: str, max_tokens: int, probe: bool, work: Any, echo: bool = False
    ) -> None:
        if self.only and name not in self.only:
            return
        server = self.server(name.replace(" ", "-"), max_tokens, probe, echo)
        try:
            server.wait_ready()
            await self.attempt(name, work(server))
        except RuntimeError as exc:
            self.errors.append(f"{name}: {exc}")
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="Run mixchat's benchmarks and write the results.")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds, for the tests)")
    parser.add_argument("--out", type=Path, default=None, help="folder for latest.md and the plots")
    parser.add_argument(
        "--streaming-only",
        action="store_true",
        help="only the cold start and the streaming paths (raw, backend, web, api)",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated benchmark names, e.g. 'web tier,wire'"
    )
    parser.add_argument("--repetitions", type=int, default=None, help="streaming repetitions")
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "results"
    cfg = Config.quick_run(out) if args.quick else Config(out=out)
    if args.repetitions:
        cfg = dataclasses.replace(cfg, repetitions=args.repetitions)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING)
    # Stopped with SIGTERM, still stop the servers and the browser (they run in sessions of their own).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mixchat-bench-") as scratch:
        runner = Runner(cfg, Path(scratch))
        runner.streaming_only = args.streaming_only
        runner.only = {name.strip() for name in args.only.split(",") if name.strip()}
        asyncio.run(runner.run())
    plots.draw(runner.sections, out)
    report.write(
        runner.sections, cfg, time.perf_counter() - started, runner.errors, out / "latest.md"
    )
    print((out / "latest.md").read_text())
    return 1 if runner.errors else 0


if __name__ == "__main__":
    sys.exit(main())
