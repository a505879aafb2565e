"""The PNG plots the README shows, drawn from the sections' series (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from common import Section

PATHS = ("raw", "backend", "web", "api")
LABELS = {
    "raw": "llama-cpp-python\n(tutorial loop)",
    "backend": "mixchat backend",
    "web": "web app\n(browser)",
    "api": "OpenAI API\n(openai SDK)",
}
COLORS = ["#9ca3af", "#6366f1", "#4f46e5", "#0d9488"]


def streaming(section: Section, path: Path) -> None:
    speed, first = section.series["speed"], section.series["first"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    labels = [LABELS[p] for p in PATHS]
    bars = left.bar(labels, [speed[p] for p in PATHS], color=COLORS)
    left.bar_label(bars, fmt="%.1f")
    left.set_ylabel("tokens/s (median)")
    left.set_title("Streaming speed")
    bars = right.bar(labels, [first[p] * 1000 for p in PATHS], color=COLORS)
    right.bar_label(bars, fmt="%.0f")
    right.set_ylabel("ms (median)")
    right.set_title("Time to first token")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def concurrency(section: Section, path: Path) -> None:
    levels = sorted(section.series)
    data = section.series
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].boxplot([data[n]["completion"] for n in levels], tick_labels=[str(n) for n in levels])
    axes[0].set_title("Completion time per session")
    axes[0].set_ylabel("s")
    axes[1].plot(levels, [data[n]["lag_p99"] * 1000 for n in levels], "o-", label="p99, streaming")
    axes[1].plot(levels, [data[n]["lag_max"] * 1000 for n in levels], "s--", label="max, streaming")
    axes[1].plot(
        levels,
        [data[n]["lag_p99_page"] * 1000 for n in levels],
        "o-",
        label="p99, new page opening",
    )
    axes[1].plot(
        levels,
        [data[n]["lag_max_page"] * 1000 for n in levels],
        "s--",
        label="max, new page opening",
    )
    axes[1].axhline(50, color="#dc2626", linewidth=1, label="target p99 50 ms (8 sessions)")
    if max(levels) >= 32:
        axes[1].axhline(100, color="#f59e0b", linewidth=1, label="target p99 100 ms (32)")
    axes[1].set_title("Server event-loop lag")
    axes[1].set_ylabel("ms")
    axes[1].legend(fontsize="small")
    axes[2].plot(levels, [data[n]["page_load"] for n in levels], "o-")
    axes[2].axhline(2, color="#dc2626", linewidth=1, label="target 2 s")
    axes[2].set_title("New page load during the load")
    axes[2].set_ylabel("s")
    axes[2].legend()
    for axis in axes:
        axis.set_xlabel("sessions sending at once")
    for axis in axes[1:]:
        axis.set_xticks(levels)
        axis.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def multiturn(section: Section, path: Path) -> None:
    per_turn, evaluated = section.series["per_turn"], section.series["evaluated"]
    turns = list(range(1, len(per_turn["reuse"]) + 1))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for name, label in (
        ("reset", "without reuse (reset each turn)"),
        ("reuse", "with prefix reuse"),
    ):
        left.plot(turns, [s * 1000 for s in per_turn[name]], "o-", label=label)
        right.plot(turns, evaluated[name], "o-", label=label)
    left.set_title("Prompt processing time per turn")
    left.set_ylabel("ms")
    right.set_title("Prompt tokens evaluated per turn")
    right.set_ylabel("tokens")
    for axis in (left, right):
        axis.set_xlabel("turn")
        axis.set_xticks(turns)
        axis.set_ylim(bottom=0)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def webtier(section: Section, path: Path) -> None:
    cpu, ratio = section.series["cpu"], section.series["ratio"]
    turns = list(range(1, len(cpu) + 1))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(turns, cpu, "o-", color="#4f46e5", markersize=3)
    left.axhline(20, color="#dc2626", linewidth=1, label="target 20 ms")
    left.set_title("Server CPU per exchange (echo backend)")
    left.set_ylabel("ms of server CPU")
    right.plot(turns, ratio, "o-", color="#4f46e5", markersize=3)
    right.axhline(3, color="#dc2626", linewidth=1, label="target 3x")
    right.set_title("Websocket bytes per exchange / reply bytes")
    right.set_ylabel("x")
    for axis in (left, right):
        axis.set_xlabel("exchange number in the conversation")
        axis.set_ylim(bottom=0)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


DRAWERS = {
    "Web tier (echo backend)": ("webtier.png", webtier),
    "Concurrency (echo backend)": ("concurrency-echo.png", concurrency),
    "Streaming overhead": ("streaming.png", streaming),
    "Concurrency": ("concurrency.png", concurrency),
    "Multi-turn prefix reuse": ("multiturn.png", multiturn),
}


def draw(sections: list[Section], folder: Path) -> list[Path]:
    written = []
    for section in sections:
        if section.title in DRAWERS and section.series:
            name, drawer = DRAWERS[section.title]
            drawer(section, folder / name)
            written.append(folder / name)
    return written
