"""The prompt inspector in the web chat: a reply's :class:`PromptRecord` as the lines the
transcript shows under it (all plain text: the browser sets them with ``textContent``)."""

from __future__ import annotations

import json
from typing import Any

from mixchat.outcome import plural
from mixchat.prompt.inspector import PromptRecord


def prompt_view(record: PromptRecord) -> dict[str, Any]:
    """What the inspector panel shows: where the prompt went, its tokens, whether its ids
    equal mistral-common's, the sampling, what was dropped to fit, the text and the ids."""
    count = f"{plural(record.token_count, 'prompt token')}" if record.token_count else ""
    if record.token_ids is None and record.token_count:
        count += " (counted; the server formats the prompt itself)"
    sampling = " ".join(
        f"{key}={value}" for key, value in record.sampling.items() if value is not None
    )
    dropped = "\n\n".join(f"{m['role']}: {m['content']}" for m in record.dropped)
    if record.text is not None:
        text_label, text = "Prompt text (special tokens written out)", record.text
    else:
        text_label = "Messages sent (the server formats them)"
        text = json.dumps(record.messages, indent=2, ensure_ascii=False)
    ids = " ".join(map(str, record.token_ids)) if record.token_ids is not None else ""
    return {
        "where": record.destination,
        "count": count,
        "equal": record.equals_mistral_common,
        "sampling": f"Sampling: {sampling}" if sampling else "",
        "dropped": dropped,
        "dropped_label": f"Dropped to fit the context: the {len(record.dropped)} oldest messages",
        "text": text,
        "text_label": text_label,
        "ids": ids,
        "ids_label": f"Token ids ({len(record.token_ids or [])})",
    }


__all__ = ["prompt_view"]
