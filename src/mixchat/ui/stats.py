"""Per-reply statistics as the page shows them: the line under each reply, and error advice."""

from __future__ import annotations

from mixchat.errors import (
    AddressRefused,
    AuthError,
    ContextOverflow,
    LimitReached,
    MissingDependency,
    ModelLoadError,
    RateLimited,
    ServerError,
    Timeout,
    Unreachable,
)
from mixchat.outcome import Outcome, Stats

_OUTCOME_LABELS = {
    Outcome.STOP: "finished",
    Outcome.LENGTH: "hit the max new tokens limit",
    Outcome.STEP_LIMIT: "answered at the agent's step limit",
    Outcome.CANCELLED: "stopped",
    Outcome.ERROR: "failed",
}

#: What to do about a failure, by its type (the first match wins).
_ADVICE: tuple[tuple[type[BaseException], str], ...] = (
    (LimitReached, ""),  # its message says which limit and when it frees up
    (AddressRefused, "Use a public URL for your endpoint."),
    (AuthError, "Check the API key in the sidebar (or the environment variable)."),
    (RateLimited, "Wait a moment and send again, or switch to another backend."),
    (
        Unreachable,
        "Check that the server is running and the base URL is right, "
        "or switch backend in the sidebar.",
    ),
    (Timeout, "The server is slow or overloaded: try again, or lower max new tokens."),
    (ContextOverflow, "Start a new chat, or lower max new tokens."),
    (ServerError, "The server failed: try again in a moment."),
    (ModelLoadError, "Check the model path in the sidebar."),
    (MissingDependency, "Install the package named above, then restart mixchat."),
)
_DEFAULT_ADVICE = "Try again, or switch backend or model in the sidebar."


def format_stats(stats: Stats) -> str:
    """One short line: tokens, speed, time to first token, how the reply ended."""
    count = stats.completion_tokens
    parts = [f"{count} token{'' if count == 1 else 's'}"]
    if stats.tokens_per_second:
        parts.append(f"{stats.tokens_per_second:.1f} tok/s")
    if stats.load_time is not None:  # apart from the first token: once per server
        parts.append(f"model loaded in {stats.load_time:.1f} s")
    if stats.time_to_first_token is not None:
        parts.append(f"first token {stats.time_to_first_token:.2f} s")
    if stats.duration:
        parts.append(f"total {stats.duration:.1f} s")
    if stats.agent_steps:
        parts.append(f"{stats.agent_steps} agent step{'s' if stats.agent_steps > 1 else ''}")
    parts.append(_OUTCOME_LABELS[stats.outcome])
    return " · ".join(parts)


def error_advice(error: BaseException | None, message: str | None = None) -> str:
    """The error line (``message``, else the error's own) plus what to do about it."""
    advice = next((text for kind, text in _ADVICE if isinstance(error, kind)), _DEFAULT_ADVICE)
    line = message or (str(error) if error is not None else "") or "The model failed."
    return " ".join(part for part in (_sentence(line), advice) if part)


def _sentence(text: str) -> str:
    """``text`` as a sentence: a capital first letter, a full stop at the end."""
    text = text.strip()
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?:)" else f"{text}."
