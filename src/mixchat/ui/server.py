"""Serving the web app: one Panel server, one page per browser session, one model per process."""

from __future__ import annotations

import gc
import logging
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

import panel as pn

from mixchat.api import ApiAccess, api_routes
from mixchat.config import Settings
from mixchat.config.catalog import Catalog
from mixchat.config.presets import operator_presets
from mixchat.errors import ConfigError
from mixchat.ui.app import TITLE, create_app
from mixchat.ui.render import ASSETS, ASSETS_ROUTE
from mixchat.ui.scheme import SCHEME_URL
from mixchat.ui.static_gzip import StaticGzip
from mixchat.ui.transcript import channel as transcript_channel

log = logging.getLogger("mixchat.ui")


def configure_panel() -> None:
    """Everything the page needs comes from this server (no CDN), and the chat looks right."""
    pn.config.js_files = {
        **pn.config.js_files,
        "mixchat_offline": f"{ASSETS_ROUTE}/offline.js",
        "mixchat_page": f"{ASSETS_ROUTE}/page.js",  # the colour scheme, the phone drawer
    }
    # KaTeX's @font-face rules belong to the page: browsers ignore them inside a shadow root.
    page_css = [
        f"{ASSETS_ROUTE}/katex/fonts.css",
        SCHEME_URL.lstrip("/"),
        f"{ASSETS_ROUTE}/page.css",
    ]
    pn.config.css_files = [
        *pn.config.css_files,
        *(c for c in page_css if c not in pn.config.css_files),
    ]
    pn.extension()
    # No pn.config.disconnect_notification: page.js shows a lost connection itself, which
    # spares every new page Panel's notification area (a ReactiveHTML model and its scripts).


def url(settings: Settings, address: str | None = None) -> str:
    host = address or settings.host
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    return f"http://{shown}:{settings.port}/"


@dataclass(frozen=True)
class Login:
    """How users log in: Panel's basic auth (a password, or a JSON file of user: password) or
    one of Panel's OAuth providers (``generic`` for any OIDC provider, ``github``, ``google``,
    ``azure``, ``gitlab``, ...). None of them: nobody logs in, so the server stays local."""

    basic_auth: str | None = None
    oauth_provider: str | None = None
    oauth_key: str | None = None
    oauth_secret: str | None = None
    oauth_redirect_uri: str | None = None
    oauth_extra_params: dict[str, str] = field(default_factory=dict)
    oauth_encryption_key: str | None = None
    cookie_secret: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.basic_auth or self.oauth_provider)

    def panel_options(self) -> dict[str, Any]:
        """The keyword arguments of ``pn.serve`` for this login."""
        if not self.configured:
            return {}
        options: dict[str, Any] = {"cookie_secret": self.cookie_secret or secrets.token_hex(32)}
        if self.basic_auth:
            options["basic_auth"] = self.basic_auth
        else:
            options.update(
                oauth_provider=self.oauth_provider,
                oauth_key=self.oauth_key,
                oauth_secret=self.oauth_secret,
                oauth_extra_params=dict(self.oauth_extra_params),
            )
            if self.oauth_redirect_uri:
                options["oauth_redirect_uri"] = self.oauth_redirect_uri
            if self.oauth_encryption_key:
                options["oauth_encryption_key"] = self.oauth_encryption_key
        return options


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_bind(host: str, login: Login, no_login: bool) -> str | None:
    """Refuse a public address without a login; the note to log when serving without one."""
    if login.configured:
        if login.basic_auth and login.oauth_provider:
            raise ConfigError("choose one login: --basic-auth or --oauth-provider, not both")
        return None
    if host not in LOCAL_HOSTS and not no_login:
        raise ConfigError(
            f"refusing to serve on {host} without a login: anyone who can reach it would share "
            "one history and your models; add --basic-auth or --oauth-provider, or --no-login "
            "if that is what you want"
        )
    if host in LOCAL_HOSTS:
        return "no login configured: serving on this machine only (localhost)"
    return f"no login configured (--no-login): everyone who can reach {host} is one user"


def serve(
    settings: Settings,
    *,
    num_procs: int = 1,
    show: bool = False,
    login: Login | None = None,
    no_login: bool = False,
    address: str | None = None,
    allow_websocket_origin: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """Start the server on ``settings.host:settings.port``; blocks until it stops."""
    login = login or Login()
    host = address or settings.host
    note = check_bind(host, login, no_login)
    catalog = Catalog.from_settings(settings)  # every bad entry is a line, before serving
    for preset in operator_presets(settings).values():  # likewise every bad preset
        preset.entry(catalog)
    configure_panel()
    options = login.panel_options()
    origins = websocket_origins(host, settings.port, allow_websocket_origin)
    compression = settings.websocket_compression or None
    # The API and the transcripts' own websocket beside the app, plus any routes the caller
    # adds (the benchmarks' probe).
    options["extra_patterns"] = [
        *api_routes(api_access(settings, login=login.configured, catalog=catalog)),
        transcript_channel.route(compression, origins),
        *kwargs.pop("extra_patterns", []),
    ]
    _log_to_stderr()
    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's full passes (Panel runs one after each closed session), which otherwise
    # walk the whole heap of Bokeh and Panel modules on the event loop.
    gc.collect()
    gc.freeze()
    if note:
        log.info("%s", note)
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
        websocket_origin=origins,
        num_procs=num_procs,
        show=show,
        title=TITLE,
        static_dirs={ASSETS_ROUTE: str(ASSETS)},
        # Each websocket message repeats ~250 bytes of Bokeh framing; deflate with context
        # takeover sends it as a few bytes (and the page's first document at ~1/4 its size)
        # for ~300 KB of zlib state per open page and microseconds per message.
        websocket_compression_level=compression,
        transforms=[StaticGzip],  # the page's ~3.8 MB of scripts as ~1 MB (static_gzip.py)
        start=True,
        verbose=False,
        **options,
        **kwargs,
    )


def api_access(settings: Settings, login: bool, catalog: Catalog | None = None) -> ApiAccess:
    """The API on the catalog, with the web app's per-user limits and usage; with a login it
    wants users' keys (from the store), without one it answers on localhost only."""
    from mixchat.api.access import AccountingGate
    from mixchat.ui.team import accounting_for

    gate = AccountingGate(accounting_for(settings))
    if not login:
        return ApiAccess(settings, gate=gate, catalog=catalog)
    from mixchat.store import ConversationStore
    from mixchat.store.api_keys import ApiKeys

    keys = ApiKeys(lambda: ConversationStore.from_settings(settings))
    return ApiAccess(settings, keys=keys, gate=gate, catalog=catalog)


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
