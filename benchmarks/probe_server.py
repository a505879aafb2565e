"""``mixchat serve`` plus one JSON endpoint that measures the server from inside.

The benchmarks start this script instead of the CLI when they need the server's own view:
``GET /bench/probe`` returns the event loop's lag (a task that sleeps 10 ms and records how
late it wakes) and the process's resident memory, both since the last ``?reset=1``. The app
itself is exactly the one ``mixchat serve`` runs (:func:`mixchat.ui.server.serve`).

    python benchmarks/probe_server.py --port 5990 '{"temperature": 0, "max_tokens": 64}'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from tornado.web import RequestHandler

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentile, rss_bytes

from mixchat.config import load_settings

TICK = 0.010  # seconds the sampler sleeps between wake-ups
RSS_EVERY = 10  # read the memory every this many wake-ups (a read of /proc costs ~0.3 ms)


class LoopProbe:
    """Samples the running event loop's lag and the process's peak memory."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.peak_rss = 0
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        ticks = 0
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.perf_counter() - before - TICK))
            ticks += 1
            if ticks % RSS_EVERY == 0:
                self.peak_rss = max(self.peak_rss, rss_bytes())

    def report(self, reset: bool) -> dict[str, float]:
        lags = self.lags
        report = {
            "samples": len(lags),
            "lag_p99": percentile(lags, 99) if lags else 0.0,
            "lag_max": max(lags, default=0.0),
            "rss": rss_bytes(),
            "peak_rss": max(self.peak_rss, rss_bytes()),
        }
        if reset:
            self.lags, self.peak_rss = [], rss_bytes()
        return report


PROBE = LoopProbe()


class ProbeHandler(RequestHandler):
    def get(self) -> None:
        PROBE.ensure_running()
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(PROBE.report(reset=self.get_argument("reset", "0") == "1")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("settings", help="JSON object of mixchat settings")
    args = parser.parse_args()
    from mixchat.ui.server import serve

    settings = load_settings(**json.loads(args.settings), port=args.port)
    serve(settings, extra_patterns=[(r"/bench/probe", ProbeHandler)])


if __name__ == "__main__":
    main()
