"""One assistant reply on screen: streamed text, a status line while waiting, stats after.

Only the Markdown body changes while tokens arrive, and it streams (each update carries the
appended HTML, not the whole reply), so a long reply costs about its own size on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import panel as pn

from mixchat.agent.steps import Step
from mixchat.outcome import Outcome, Stats, Status
from mixchat.store import MessageRecord
from mixchat.ui.render import APP_CSS, markdown_pane, text_html
from mixchat.ui.stats import format_stats

ASSISTANT_AVATAR = "M"
USER_NAME = "You"
USER_AVATAR = "Y"


STEP_LIMIT_NOTE = "The agent reached its step limit before a final answer."


@dataclass
class FinishedReply:
    """A reply as it ended: its text, its stats (with how it ended), its agent steps."""

    text: str
    stats: Stats
    steps: list[Step] = field(default_factory=list)

    @property
    def status(self) -> Status:
        return self.stats.outcome.status


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

    def finish(self, stats: Stats) -> None:
        """Replace the status line by the stats (and the error or a note, if any)."""
        self.set_status("")
        parts = []
        if stats.outcome is Outcome.ERROR:
            parts.append(text_html(stats.error or "The model failed.", "mixchat-error"))
        elif stats.outcome is Outcome.STEP_LIMIT:
            parts.append(text_html(STEP_LIMIT_NOTE, "mixchat-error"))
        elif stats.outcome is Outcome.CANCELLED:
            parts.append(text_html("Stopped: the reply is incomplete.", "mixchat-stopped"))
        parts.append(text_html(format_stats(stats), "mixchat-stats-line"))
        self.footer.object = "<br>".join(parts)
        self.footer.css_classes = ["mixchat-stats", f"mixchat-{stats.outcome.status}"]


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


def restored_reply(record: MessageRecord, user: str) -> pn.chat.ChatMessage:
    """A stored assistant message shown again, with its stats and agent steps."""
    steps = None
    if record.steps:
        from mixchat.ui.agent_view import AgentStepsView

        steps = AgentStepsView.from_steps(record.steps).layout
    view = ReplyView(user, steps=steps)
    view.show(record.content)
    view.finish(record.stats or Stats(Outcome.from_status(record.status)))
    return view.message
