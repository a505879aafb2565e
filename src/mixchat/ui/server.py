"""Serving the web app: one Panel server, one page per browser session, one model per process."""

from __future__ import annotations

import logging
import secrets
import socket
from typing import Any

import panel as pn

from mixchat.api import ApiAccess, api_routes
from mixchat.config import Settings
from mixchat.config.catalog import Catalog
from mixchat.ui.app import TITLE, create_app
from mixchat.ui.render import ASSETS, ASSETS_ROUTE

log = logging.getLogger("mixchat.ui")


def configure_panel() -> None:
    """Everything the page needs comes from this server (no CDN), and the chat looks right."""
    pn.config.js_files = {**pn.config.js_files, "mixchat_offline": f"{ASSETS_ROUTE}/offline.js"}
    pn.extension()
    pn.config.disconnect_notification = "Connection to the mixchat server lost: reload the page."


def url(settings: Settings, address: str | None = None) -> str:
    host = address or settings.host
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    return f"http://{shown}:{settings.port}/"


def serve(
    settings: Settings,
    *,
    num_procs: int = 1,
    show: bool = False,
    basic_auth: str | None = None,
    cookie_secret: str | None = None,
    address: str | None = None,
    allow_websocket_origin: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Start the server on ``settings.host:settings.port``; blocks until it stops."""
    catalog = Catalog.from_settings(settings)  # every bad entry is a line, before serving
    configure_panel()
    options: dict[str, Any] = {}
    if basic_auth:
        options.update(basic_auth=basic_auth, cookie_secret=cookie_secret or secrets.token_hex(32))
    host = address or settings.host
    # The API beside the app, plus any routes the caller adds (the benchmarks' probe).
    options["extra_patterns"] = [
        *api_routes(api_access(settings, login=bool(basic_auth))),
        *kwargs.pop("extra_patterns", []),
    ]
    _log_to_stderr()
    log.info(
        "serving the chat app (%s) at %s",
        ", ".join(entry.display_name for entry in catalog.entries.values()),
        url(settings, host),
    )
    log.info("serving the OpenAI-compatible API at %sv1", url(settings, host))
    pn.serve(
        {"/": lambda: create_app(settings, catalog)},
        port=settings.port,
        address=host,
        websocket_origin=websocket_origins(host, settings.port, allow_websocket_origin),
        num_procs=num_procs,
        show=show,
        title=TITLE,
        static_dirs={ASSETS_ROUTE: str(ASSETS)},
        start=True,
        verbose=False,
        **options,
        **kwargs,
    )


def api_access(settings: Settings, login: bool) -> ApiAccess:
    """With a login the API wants users' keys (from the store); without, localhost only."""
    if not login:
        return ApiAccess(settings)
    from mixchat.store import ConversationStore
    from mixchat.store.api_keys import ApiKeys

    return ApiAccess(settings, keys=ApiKeys(lambda: ConversationStore.from_settings(settings)))


def websocket_origins(host: str, port: int, extra: list[str] | None = None) -> list[str]:
    """Pages that may open the app's websocket: this server's own names, and ``extra``.

    Never ``*``: with a login cookie, any site could otherwise drive a user's session. Behind
    a proxy, name its public host with ``--allow-websocket-origin chat.example.org``.
    """
    names = {"localhost", "127.0.0.1", host}
    if host in ("0.0.0.0", "::"):
        names |= {socket.gethostname(), socket.getfqdn()}
    return sorted(f"{name}:{port}" for name in names if name not in ("0.0.0.0", "::")) + list(
        extra or []
    )


def _log_to_stderr() -> None:
    """The startup line shows even when nobody configured logging."""
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("mixchat: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
