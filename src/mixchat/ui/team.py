"""The web app's share of a team server: one Accounting per process, the sessions that are
open, and who is an admin.

The limits and usage themselves live in :mod:`mixchat.accounting` (the core), so the
OpenAI-compatible API applies the very same rules.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mixchat.accounting import Accounting
from mixchat.config import Settings
from mixchat.config.catalog import CatalogEntry
from mixchat.ui.reply import FinishedReply
from mixchat.ui.storage import _open

_ACCOUNTING: dict[str, Accounting] = {}
_LOCK = threading.Lock()


def accounting_for(settings: Settings) -> Accounting:
    """The process's Accounting for this database: every session counts against the same."""
    with _LOCK:
        key = settings.database
        if key not in _ACCOUNTING:
            _ACCOUNTING[key] = Accounting(settings.limits, lambda: _open(settings))
        return _ACCOUNTING[key]


async def metered(
    accounting: Accounting,
    user: str,
    entry: CatalogEntry,
    settings: Settings,
    run: Callable[[Settings], Awaitable[FinishedReply]],
) -> FinishedReply:
    """Run one reply within the user's limits (LimitReached before it starts) and record its
    tokens under the catalog entry's name."""
    async with accounting.admit(user, entry.name) as ticket:
        capped = settings.model_copy(update={"max_tokens": ticket.cap(entry, settings.max_tokens)})
        reply = await run(capped)
        ticket.used(reply.stats.prompt_tokens, reply.stats.completion_tokens)
        return reply


# -- who is here


@dataclass
class ActiveSession:
    user: str
    opened: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    entry: Callable[[], str] = lambda: ""


#: Open browser sessions of this process (for the admin's status view), by session id.
SESSIONS: dict[str, ActiveSession] = {}


def is_admin(settings: Settings, user: str | None, user_info: dict[str, Any] | None) -> bool:
    """An admin is named in ``admins`` or belongs to one of ``admin_groups`` (OIDC claims)."""
    if not user:
        return False
    if user in settings.admins:
        return True
    groups = (user_info or {}).get("groups") or []
    if isinstance(groups, str):
        groups = [groups]
    return any(group in settings.admin_groups for group in groups)
