"""Who may use the API and on which model: the narrow interface the handlers call.

``ApiAccess`` answers three questions: which models there are (the operator's catalog, by
entry name), who a request's key belongs to (with a login configured, ``Authorization: Bearer
KEY``; without one, anyone on localhost), and whether that user may run a request now,
recording the tokens it took (:class:`AccountingGate`: the web app's per-user limits).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Protocol

from mixchat.accounting import Accounting, Ticket
from mixchat.api.schema import ApiError
from mixchat.backends import Backend, get_backend
from mixchat.config import Settings
from mixchat.config.catalog import Catalog
from mixchat.errors import LimitReached
from mixchat.store import StoreError
from mixchat.store.api_keys import ApiKeys

log = logging.getLogger("mixchat.api")

LOCAL_USER = "local"


class UsageGate(Protocol):
    """Per-user limits and usage: ``admit`` raises :class:`ApiError` (429) with the reason."""

    async def admit(self, user: str, model: str) -> None: ...

    async def record(self, user: str, model: str, prompt: int, completion: int) -> None: ...


class OpenGate:
    """No limits; usage goes to the log (until a limits module is configured)."""

    async def admit(self, user: str, model: str) -> None:
        return None

    async def record(self, user: str, model: str, prompt: int, completion: int) -> None:
        log.debug("usage: %s on %s: %d in, %d out", user, model, prompt, completion)


class AccountingGate:
    """The web app's per-user limits and usage (:mod:`mixchat.accounting`) for the API."""

    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        self._tickets: dict[tuple[str, str], list[Ticket]] = {}

    async def admit(self, user: str, model: str) -> None:
        try:
            ticket = await self.accounting.start(user, model)
        except LimitReached as error:
            raise ApiError(429, str(error), type="rate_limit_error", code=error.limit) from None
        self._tickets.setdefault((user, model), []).append(ticket)

    async def record(self, user: str, model: str, prompt: int, completion: int) -> None:
        tickets = self._tickets.get((user, model))
        if not tickets:
            return
        ticket = tickets.pop(0)
        if not tickets:
            del self._tickets[(user, model)]
        ticket.used(prompt, completion)
        await self.accounting.finish(ticket)


@dataclass
class ApiAccess:
    settings: Settings
    keys: ApiKeys | None = None  # None: no login configured, open on localhost only
    gate: UsageGate = field(default_factory=OpenGate)
    #: The operator's catalog: its entry names are the API's model ids (None: the server's
    #: one model, under its own name).
    catalog: Catalog | None = None

    def models(self) -> dict[str, Backend]:
        """Model ids and the shared backend instance that serves each."""
        if self.catalog is not None:
            return {
                name: get_backend(entry.settings) for name, entry in self.catalog.entries.items()
            }
        backend = get_backend(self.settings)
        return {backend.model_name: backend}

    def settings_for(self, model: str) -> Settings:
        """The settings a request on ``model`` runs with (its catalog entry's)."""
        entry = self.catalog.get(model) if self.catalog is not None else None
        return entry.settings if entry is not None else self.settings

    def max_tokens_cap(self, model: str) -> int | None:
        """The longest reply allowed on ``model`` (the entry's and the user's limit)."""
        entry = self.catalog.get(model) if self.catalog is not None else None
        user_cap = self.settings.limits.max_tokens
        return entry.max_tokens_cap(user_cap) if entry is not None else user_cap

    def backend(self, model: str) -> Backend:
        models = self.models()
        if model not in models:
            raise ApiError(
                404,
                f"The model '{model}' does not exist; the models are: {', '.join(models)}",
                param="model",
                code="model_not_found",
            )
        return models[model]

    async def user(self, authorization: str | None, address: str | None) -> str:
        """The user a request acts for, or :class:`ApiError` (401, 403)."""
        if self.keys is None:
            if not _loopback(address):
                raise ApiError(
                    403,
                    "this server has no login: its API answers on localhost only",
                    type="permission_error",
                )
            return LOCAL_USER
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "You didn't provide an API key: send Authorization: Bearer KEY "
                "(make one with `mixchat api-key create USER`)",
                type="invalid_request_error",
                code="missing_api_key",
            )
        try:
            user = await asyncio.to_thread(self.keys.user_for, key.strip())
        except StoreError as error:
            raise ApiError(
                503, f"API keys cannot be checked now: {error}", "server_error"
            ) from None
        if user is None:
            raise ApiError(
                401,
                "Incorrect API key provided",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        return user


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
