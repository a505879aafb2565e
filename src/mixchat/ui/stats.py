"""Per-reply statistics: the line under each reply, and the dict the store keeps."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from mixchat.backends.events import Done

_FINISH_LABELS = {
    "stop": "finished",
    "length": "hit the max new tokens limit",
    "cancelled": "stopped",
    "error": "failed",
}


def done_stats(done: Done) -> dict[str, Any]:
    """What the store keeps of a reply's final event."""
    return {key: value for key, value in asdict(done).items() if value is not None}


def format_stats(stats: dict[str, Any]) -> str:
    """One short line: tokens, speed, time to first token, why it ended."""
    parts = [f"{stats.get('completion_tokens', 0)} tokens"]
    if stats.get("tokens_per_second"):
        parts.append(f"{stats['tokens_per_second']:.1f} tok/s")
    if stats.get("time_to_first_token") is not None:
        parts.append(f"first token {stats['time_to_first_token']:.2f} s")
    if stats.get("duration") is not None:
        parts.append(f"total {stats['duration']:.1f} s")
    if stats.get("agent_steps"):
        parts.append(f"{stats['agent_steps']} agent step{'s' if stats['agent_steps'] > 1 else ''}")
    reason = stats.get("finish_reason", "stop")
    parts.append(_FINISH_LABELS.get(reason, reason))
    return " · ".join(parts)


def error_advice(error: str | None, error_type: str | None) -> str:
    """The error line plus what to do about it."""
    advice = {
        "AuthError": "Check the API key in the sidebar (or the environment variable).",
        "RateLimited": "Wait a moment and send again, or switch to another backend.",
        "Unreachable": "Check that the server is running and the base URL is right, "
        "or switch backend in the sidebar.",
        "Timeout": "The server is slow or overloaded: try again, or lower max new tokens.",
        "ContextOverflow": "Start a new chat, or lower max new tokens.",
        "ServerError": "The server failed: try again in a moment.",
        "ModelLoadError": "Check the model path in the sidebar.",
        "MissingDependency": "Install the package named above, then restart mixchat.",
    }.get(error_type or "", "Try again, or switch backend or model in the sidebar.")
    return f"{error or 'The model failed.'} {advice}"
