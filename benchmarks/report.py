"""The results table (``latest.md``): one row per figure, targets and how far off a miss is."""

from __future__ import annotations

import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from common import Config, Row, Section

PLOTS = {
    "webtier.png": "Web tier: server CPU and websocket bytes per exchange over a conversation",
    "concurrency-echo.png": "Concurrency on the echo backend: the web tier under 1, 8, 32 sessions",
    "streaming.png": "Streaming: tokens/s and time to first token per path",
    "concurrency.png": "Concurrency: completion time, event-loop lag and page load per load level",
    "multiturn.png": "Multi-turn: prompt processing time per turn, with and without prefix reuse",
}


def _value(row: Row) -> str:
    if math.isnan(row.value):
        return "n/a"
    text = f"{row.value:.3g}" if abs(row.value) < 1000 else f"{row.value:,.0f}"
    return f"{text} {row.unit}".strip()


def _target(row: Row) -> str:
    if row.target is None:
        return ""
    return f"{'≥' if row.higher_is_better else '≤'} {row.target:g} {row.unit}".strip()


def table(sections: list[Section]) -> list[str]:
    lines = ["| Section | Figure | Value | Target | Verdict | Note |", "|---|---|---|---|---|---|"]
    for section in sections:
        for row in section.rows:
            verdict = {"met": "✅ met"}.get(row.verdict, f"❌ {row.verdict}" if row.verdict else "")
            lines.append(
                f"| {section.title} | {row.figure} | {_value(row)} | {_target(row)} | "
                f"{verdict} | {row.note} |"
            )
    return lines


def summary(sections: list[Section]) -> list[str]:
    targeted = [row for section in sections for row in section.rows if row.target is not None]
    missed = [row for row in targeted if row.met is False]
    lines = [f"**{len(targeted) - len(missed)} of {len(targeted)} targets met.**"]
    lines += [
        f"- Missed: {row.section}, {row.figure}: {_value(row)} ({row.verdict})" for row in missed
    ]
    return lines


def write(
    sections: list[Section], cfg: Config, seconds: float, errors: list[str], path: Path
) -> None:
    """Write the markdown report; sections that failed are listed with their error."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# mixchat benchmarks: latest run",
        "",
        (
            f"Run {now} by `make bench` (`benchmarks/run.py{' --quick' if cfg.quick else ''}`) in "
            f"{seconds / 60:.1f} minutes on {platform.machine()} Linux, Python "
            f"{platform.python_version()}, {os.cpu_count()} CPU cores, CPU only: **no GPU was lent "
            "for this run**. Model: the embedded Gemma 3 270M (Q4_K_M GGUF) through llama.cpp, "
            "greedy (temperature 0), seed 0."
        ),
        "",
        (
            "Every pass/fail figure is a ratio or difference between paths measured side by side "
            "in this same run (the machine is shared and noisy); absolute times are for context."
        ),
        "",
        *summary(sections),
        "",
        *table(sections),
        "",
    ]
    for section in sections:
        if section.notes:
            lines += [
                f"**{section.title}** ({section.seconds:.0f} s): " + " ".join(section.notes),
                "",
            ]
    for error in errors:
        lines += [f"**Failed**: {error}", ""]
    for name, caption in PLOTS.items():
        if (path.parent / name).exists():
            lines += [f"![{caption}]({name})", ""]
    path.write_text("\n".join(lines))
