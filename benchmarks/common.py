"""What every benchmark shares: the run's configuration, result rows, and small statistics."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixchat.config import SamplingParams, Settings, load_settings

#: The base model repeats its prompt forever, so greedy replies run to max_tokens.
LONG_PROMPT = "Count from 1 to 300, one number per line."
#: What each echo session sends (and must get back): 300 words, ~3 s at 10 ms a token.
ECHO_PROMPT = " ".join(f"echo{index:03d}" for index in range(300))
ECHO_DELAY = 0.01
SEED = 0


@dataclass(frozen=True)
class Config:
    """Sizes of one run: the default fits 20 minutes on 2 cores; ``quick`` is for the tests."""

    quick: bool = False
    reply_tokens: int = 256
    repetitions: int = 3
    sessions: tuple[int, ...] = (1, 8)
    #: Sessions streaming at once on the echo backend (the web tier alone).
    echo_sessions: tuple[int, ...] = (1, 8, 32)
    #: Exchanges of the one conversation whose CPU per exchange is plotted.
    web_turns: int = 40
    concurrent_tokens: int = 128
    wire_tokens: int = 1000
    turns: int = 10
    turn_tokens: int = 48
    agent_queries: tuple[str, ...] = (
        "What is the square root of 512 multiplied by 7?",
        "What is 17 times 23, plus 5?",
    )
    agent_steps: int = 4
    out: Path = Path(__file__).parent / "results"

    @classmethod
    def quick_run(cls, out: Path) -> Config:
        # The web app's sidebar allows 16 tokens at least.
        return cls(
            quick=True,
            reply_tokens=16,
            repetitions=1,
            sessions=(1, 2),
            echo_sessions=(1, 2),
            web_turns=3,
            concurrent_tokens=16,
            wire_tokens=32,
            turns=3,
            turn_tokens=8,
            agent_queries=("What is 2 + 2?",),
            agent_steps=2,
            out=out,
        )

    def settings(self, **overrides: Any) -> Settings:
        """The embedded model, greedy, fixed seed, everything else default."""
        values: dict[str, Any] = {
            "backend": "llamacpp",
            "temperature": 0.0,
            "seed": SEED,
            "max_tokens": self.reply_tokens,
        }
        return load_settings(**{**values, **overrides})

    def sampling(self, max_tokens: int) -> SamplingParams:
        return self.settings(max_tokens=max_tokens).sampling()


@dataclass
class Row:
    """One line of the results table: a measured figure, and its target if it has one."""

    section: str
    figure: str
    value: float
    unit: str = ""
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None or math.isnan(self.value):
            return None
        slack = 1e-9 * abs(self.target)  # a figure equal to its target, up to float rounding
        if self.higher_is_better:
            return self.value >= self.target - slack
        return self.value <= self.target + slack

    @property
    def verdict(self) -> str:
        """'met', or by how much it was missed; empty without a target."""
        if self.target is None:
            return ""
        if self.met is None:
            return "not measured"
        if self.met:
            return "met"
        miss = abs(self.value - self.target)
        relative = f" ({miss / abs(self.target):.0%})" if self.target else ""
        return f"missed by {miss:.3g} {self.unit}{relative}".replace("  ", " ")


@dataclass
class Section:
    """The rows of one benchmark plus the raw series its plot draws."""

    title: str
    rows: list[Row] = field(default_factory=list)
    series: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, figure: str, value: float, unit: str = "", **kwargs: Any) -> Row:
        row = Row(self.title, figure, value, unit, **kwargs)
        self.rows.append(row)
        return row


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of few samples is their max)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of a process (Linux /proc)."""
    statm = Path(f"/proc/{pid or os.getpid()}/statm").read_text().split()
    return int(statm[1]) * os.sysconf("SC_PAGE_SIZE")


class Stopwatch:
    """Seconds since it was made."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
