"""Who may use the API and on which model: the narrow interface the handlers call.

``ApiAccess`` answers three questions: which models there are (today the server's one
model; issue 12's operator catalog plugs in here), who a request's key belongs to (with a
login configured, ``Authorization: Bearer KEY``; without one, anyone on localhost), and whether
that user may run a request now, recording the tokens it took (a per-user limits and usage
module plugs in as a :class:`UsageGate`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Protocol

from mixchat.api.schema import ApiError
from mixchat.backends import Backend, get_backend
from mixchat.config import Settings
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


@dataclass
class ApiAccess:
    settings: Settings
    keys: ApiKeys | None = None  # None: no login configured, open on localhost only
    gate: UsageGate = field(default_factory=OpenGate)

    def models(self) -> dict[str, Backend]:
        """Model ids and the shared backend instance that serves each."""
        backend = get_backend(self.settings)
        return {backend.model_name: backend}

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
