"""One browser session's page: the chat in the middle, settings and conversations aside."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import panel as pn
import param

from mixchat.config import Settings
from mixchat.config.catalog import Catalog
from mixchat.store import LOCAL_OWNER
from mixchat.ui.chat import ChatController
from mixchat.ui.conversation_list import ADDRESS_PARAM
from mixchat.ui.conversations import ConversationsPanel
from mixchat.ui.presets import PresetsPanel
from mixchat.ui.scheme import SchemeDesign
from mixchat.ui.sections import Section, Sections
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.status import StatusView, UsageView
from mixchat.ui.storage import StoreGateway
from mixchat.ui.team import SESSIONS, ActiveSession, accounting_for, is_admin

if TYPE_CHECKING:
    from panel.io.resources import ResourcesType

TITLE = "mixchat"
ACCENT = "#4f46e5"


class Page(pn.template.BootstrapTemplate):
    """Panel's Bootstrap page less what mixchat does not use (``page.html``): no modal, and so
    no template actions (a ReactiveHTML model per page), no JS area, no location model."""

    location = param.Boolean(default=False, readonly=True)  # nothing reads pn.state.location
    who = param.String(default="", doc="the header's 'USER (role)', HTML-escaped; '': no login")
    _template: ClassVar[Path] = Path(__file__).with_name("page.html")

    def _build_layout(self) -> pn.Column:
        """Nothing: Panel's is a launch-server button and a repr for notebooks, five Panel
        objects made for each page and never shown (so ``add_panel`` is not for this page)."""
        return pn.Column()

    def resolve_resources(
        self, cdn: bool | Literal["auto"] = "auto", extras: dict[str, dict[str, str]] | None = None
    ) -> ResourcesType:
        """Panel's, less its copies of the components' stylesheets in the page's head: each
        component loads its own inside its shadow root, where they apply; the head copy
        styled nothing and cost every new visitor one more request per file."""
        return super().resolve_resources(cdn=cdn, extras=None)

    def _update_vars(self, *args: Any) -> None:
        super()._update_vars(*args)
        self._render_variables["mixchat_who"] = self.who


def session_owner() -> str:
    """Whose conversations this session sees: the logged-in user, else the local owner."""
    return pn.state.user or LOCAL_OWNER  # None without auth (the user cookie is signed)


def create_app(settings: Settings, catalog: Catalog | None = None) -> Page:
    """The page for one session; the backend instance behind it is shared by all sessions."""
    owner = session_owner()
    gateway = StoreGateway(settings, owner)
    sidebar = SettingsPanel(settings, catalog)
    accounting = accounting_for(settings)
    chat = ChatController(sidebar, gateway, accounting)
    usage = UsageView(accounting, owner)
    admin = is_admin(settings, pn.state.user, pn.state.user_info)
    status = StatusView(sidebar.catalog, accounting) if admin else None
    _register_session(owner, sidebar)
    conversations = ConversationsPanel(
        gateway,
        on_open=chat.open,
        on_new=chat.new_chat,
        current=lambda: chat.conversation_id,
        say=chat.say,
        forget=lambda: setattr(chat, "conversation_id", None),
    )
    address = _address()
    presets = PresetsPanel(sidebar, gateway)
    chat.transcript.on_action = presets.intercept(chat.transcript.on_action, lambda: chat.busy)

    async def start() -> None:
        await chat.check_store()
        if address:
            await conversations.open_address(address)
        await conversations.refresh()
        await presets.refresh()
        if status is not None:
            await status.refresh()

    async def saved() -> None:
        await conversations.touched(chat.conversation_id)  # no store query when unchanged
        if usage.shown:  # two store queries per exchange otherwise, for a closed card
            await usage.refresh()

    chat.on_saved = saved

    pn.state.onload(start)
    template = Page(
        title=TITLE,
        header_background=ACCENT,
        busy_indicator=None,  # the transcript shows what is going on; no patch per callback
        sidebar_width=330,
        sidebar=[  # one component, not a card per section: each model costs the page
            Sections(
                [
                    Section("Conversations", conversations.list_section(), open=True),
                    Section("Model", sidebar.model_section(), open=True),
                    Section(  # the closed sections' widgets are made when first opened
                        "Generation",
                        lambda: pn.Column(sidebar.sampling_section(), presets.save_section()),
                    ),
                    Section("Agent", sidebar.agent_section),
                    Section("Import a conversation", conversations.import_section),
                    Section("Your usage", usage.layout, on_toggle=usage.toggled),
                    *([Section("Server status (admin)", status.layout)] if status else []),
                ],
                margin=(5, 0),
            )
        ],
        main=[chat.transcript],
        design=SchemeDesign,
        meta_viewport="width=device-width, initial-scale=1",
        who=_who(pn.state.user, admin),
    )
    return template


def _address() -> str | None:
    """The conversation the page's address names (``?c=ID``), if any."""
    values = pn.state.session_args.get(ADDRESS_PARAM) or []
    if not values:
        return None
    raw = values[0]
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).strip()[:64]


def _who(user: str | None, admin: bool) -> str:
    """The header's "USER (role) · log out" (page.html): escaped here, the template does not."""
    if not user:
        return ""
    return f"{html.escape(user)} ({'admin' if admin else 'user'})"


def _register_session(owner: str, sidebar: SettingsPanel) -> None:
    """Count this page among the active sessions until its browser goes away."""
    context = pn.state.curdoc.session_context if pn.state.curdoc else None
    if context is None:
        return
    session_id = context.id
    SESSIONS[session_id] = ActiveSession(owner, entry=lambda: sidebar.entry().display_name)

    def gone(_: object) -> None:
        SESSIONS.pop(session_id, None)

    pn.state.on_session_destroyed(gone)
