"""One assistant reply on screen: streamed text, a status line while waiting, stats after.

Only the Markdown body changes while tokens arrive, and it streams (each update carries the
appended HTML, not the whole reply), so a long reply costs about its own size on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import panel as pn

from mixchat.ui.render import APP_CSS, markdown_pane, text_html
from mixchat.ui.stats import format_stats

ASSISTANT_AVATAR = "M"
USER_NAME = "You"
USER_AVATAR = "Y"


@dataclass
class Outcome:
    """How a reply ended: what the store keeps and what the footer shows."""

    text: str = ""
    status: str = "complete"
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    steps: list[dict[str, Any]] | None = None


class ReplyView:
    """The widgets of one reply, inside one ``ChatMessage``."""

    def __init__(self, user: str, steps: pn.Column | None = None) -> None:
        self.body = markdown_pane("", streaming=True, css_classes=["message", "mixchat-reply"])
        self.status = pn.pane.HTML("", css_classes=["mixchat-status"], margin=(2, 10))
        self.notice = pn.pane.HTML(
            "", css_classes=["mixchat-notice"], margin=(2, 10), visible=False
        )
        self.footer = pn.pane.HTML("", css_classes=["mixchat-stats"], margin=(2, 10))
        self.steps = steps or pn.Column(sizing_mode="stretch_width", margin=0)
        # the body joins the layout with the first text: an error leaves no empty bubble
        self.layout = pn.Column(
            self.notice, self.steps, self.status, self.footer, sizing_mode="stretch_width", margin=0
        )
        self.message = pn.chat.ChatMessage(
            self.layout,
            user=user,
            avatar=ASSISTANT_AVATAR,
            show_reaction_icons=False,
            show_copy_icon=False,
            sizing_mode="stretch_width",
            stylesheets=[APP_CSS],
        )

    def show(self, text: str) -> None:
        """Show the reply so far (Panel sends only what was appended)."""
        if not text:
            return
        self.body.object = text
        if self.body not in self.layout.objects:
            self.set_status("")
            self.layout.insert(2, self.body)

    def set_status(self, text: str) -> None:
        self.status.object = text_html(text) if text else ""

    def set_notice(self, text: str) -> None:
        self.notice.object = text_html(text)
        self.notice.visible = bool(text)

    def finish(self, status: str, stats: dict[str, Any] | None, error: str | None = None) -> None:
        """Replace the status line by the stats (and the error, if any)."""
        self.set_status("")
        parts = []
        if error:
            parts.append(text_html(error, "mixchat-error"))
        if status == "stopped":
            parts.append(text_html("Stopped: the reply is incomplete.", "mixchat-stopped"))
        if stats:
            parts.append(text_html(format_stats(stats), "mixchat-stats-line"))
        self.footer.object = "<br>".join(parts)
        self.footer.css_classes = ["mixchat-stats", f"mixchat-{status}"]


def user_message(text: str) -> pn.chat.ChatMessage:
    """A stored user message shown again (when a conversation is opened)."""
    return pn.chat.ChatMessage(
        markdown_pane(text, css_classes=["message"]),
        user=USER_NAME,
        avatar=USER_AVATAR,
        show_reaction_icons=False,
        show_copy_icon=False,
        stylesheets=[APP_CSS],
    )


def restored_reply(record: Any, user: str) -> pn.chat.ChatMessage:
    """A stored assistant message shown again, with its stats and agent steps."""
    steps = None
    if record.steps:
        from mixchat.ui.agent_view import AgentStepsView

        steps = AgentStepsView.from_records(record.steps).layout
    view = ReplyView(user, steps=steps)
    view.show(record.content)
    stats = record.stats or {}
    error = stats.get("error") if record.status == "error" else None
    view.finish(record.status, stats, error)
    return view.message
