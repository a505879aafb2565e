"""One browser session's page: the chat in the middle, settings and conversations aside."""

from __future__ import annotations

import panel as pn

from mixchat.config import Settings
from mixchat.config.catalog import Catalog
from mixchat.store import LOCAL_OWNER
from mixchat.ui.chat import ChatController
from mixchat.ui.conversations import ConversationsPanel
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.storage import StoreGateway

TITLE = "mixchat"
ACCENT = "#4f46e5"


def session_owner() -> str:
    """Whose conversations this session sees: the logged-in user, else the local owner."""
    return pn.state.user or LOCAL_OWNER  # None without auth (the user cookie is signed)


def _section(title: str, body: pn.viewable.Viewable, collapsed: bool = False) -> pn.Card:
    return pn.Card(
        body,
        title=title,
        collapsed=collapsed,
        sizing_mode="stretch_width",
        margin=(5, 0),
        header_background="#f3f4f6",
    )


def create_app(settings: Settings, catalog: Catalog | None = None) -> pn.template.BootstrapTemplate:
    """The page for one session; the backend instance behind it is shared by all sessions."""
    gateway = StoreGateway(settings, session_owner())
    sidebar = SettingsPanel(settings, catalog)
    chat = ChatController(sidebar, gateway)
    conversations = ConversationsPanel(
        gateway, on_open=chat.open, on_new=chat.new_chat, current=lambda: chat.conversation_id
    )
    chat.on_saved = conversations.refresh

    async def start() -> None:
        await chat.check_store()
        await conversations.refresh()

    pn.state.onload(start)
    template = pn.template.BootstrapTemplate(
        title=TITLE,
        header_background=ACCENT,
        sidebar_width=330,
        sidebar=[
            _section("Conversations", conversations.list_section()),
            _section("Model", sidebar.model_section()),
            _section("Generation", sidebar.sampling_section(), collapsed=True),
            _section("Agent", sidebar.agent_section(), collapsed=True),
            _section("This conversation", conversations.manage_section(), collapsed=True),
        ],
        main=[chat.interface],
    )
    return template
