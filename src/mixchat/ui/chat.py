"""The chat itself: every message becomes a request built from the whole conversation.

The callback streams the backend's events into a :class:`ReplyView` (batched, at most one
update every 50 ms), shows queue positions and context trimming, keeps partial replies on
stop, turns failures into a clear message, and saves both sides of each turn to the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import panel as pn

from mixchat import backends
from mixchat.accounting import Accounting
from mixchat.backends import Backend, CancelToken, ChatRequest, Done, Queued, TextDelta
from mixchat.config import AGENT_SAMPLING, Settings
from mixchat.errors import MixchatError
from mixchat.outcome import Outcome, Stats
from mixchat.store import Conversation, title_from
from mixchat.ui.history import History, Turn, fit_context
from mixchat.ui.render import APP_CSS, markdown_pane, render_message
from mixchat.ui.reply import (
    USER_AVATAR,
    USER_NAME,
    FinishedReply,
    ReplyView,
    restored_reply,
    user_message,
)
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.stats import error_advice
from mixchat.ui.storage import StoreGateway
from mixchat.ui.team import accounting_for, metered
from mixchat.ui.throttle import Throttle

log = logging.getLogger(__name__)

SYSTEM_USER = "mixchat"
INPUT_PLACEHOLDER = "Message the model (Enter to send, Shift+Enter for a new line)"


def welcome_text(backend: Backend, settings: Settings) -> str:
    """Which model answers, and for the embedded demo model, how to get a real one."""
    text = f"Hi! You are chatting with **{backend.description}**."
    if settings.backend == "llamacpp" and not settings.model:
        text += (
            "\n\nThis is a tiny demo model that runs on your CPU, so expect short and simple "
            "answers. For Mixtral, start `mixchat serve --backend mistral` (with "
            "`MISTRAL_API_KEY` set) or `mixchat serve --model path/to/mixtral.gguf`, or pick "
            "a backend and model in the sidebar."
        )
    return text


class ChatController:
    """One browser session's chat: the ChatInterface, the history and the current reply."""

    def __init__(
        self, sidebar: SettingsPanel, gateway: StoreGateway, accounting: Accounting | None = None
    ) -> None:
        self.sidebar = sidebar
        self.gateway = gateway
        self.accounting = accounting or accounting_for(gateway.settings)
        self.history = History()
        self.conversation_id: str | None = None
        self.busy = False
        self._regenerating = False
        self._cancel: CancelToken | None = None
        self._views: dict[int, pn.chat.ChatMessage] = {}  # id(turn) -> its message
        self._saving: asyncio.Future[None] | None = None
        self._told_history_off = False
        #: Called after each save (the conversation list refreshes).
        self.on_saved: Callable[[], Awaitable[None]] | None = None
        self.input = pn.chat.ChatAreaInput(
            placeholder=INPUT_PLACEHOLDER, auto_grow=True, max_rows=8
        )
        self.interface = pn.chat.ChatInterface(
            callback=self._respond,
            callback_user="Assistant",
            user=USER_NAME,
            avatar=USER_AVATAR,
            renderers=[render_message],
            widgets=self.input,
            show_rerun=False,
            show_undo=False,
            show_clear=False,
            show_button_name=False,
            show_button_tooltips=True,
            button_properties={
                "regenerate": {"icon": "repeat", "callback": self._regenerate_clicked},
                "undo last": {"icon": "arrow-back", "callback": self._undo_clicked},
            },
            message_params={
                "show_reaction_icons": False,
                "show_copy_icon": False,
                "stylesheets": [APP_CSS],
            },
            callback_exception=self._callback_failed,
            sizing_mode="stretch_both",
            min_height=400,
            css_classes=["mixchat-chat"],
        )
        self.welcome()

    # -- messages on screen
    def welcome(self) -> None:
        settings = self.sidebar.settings()
        try:
            backend = backends.get_backend(settings)
            text = welcome_text(backend, settings)
        except MixchatError as error:
            text = f"The {settings.backend} backend cannot start: {error}"
        self.say(text)

    def say(self, text: str) -> None:
        """A message from the app itself (not part of the conversation)."""
        self.interface.send(
            markdown_pane(text, css_classes=["message"]),
            user=SYSTEM_USER,
            avatar="i",
            respond=False,
        )

    def _show(self, turn: Turn, message: pn.chat.ChatMessage) -> None:
        self._views[id(turn)] = message

    def _remove_views(self, turns: list[Turn]) -> None:
        gone = {id(self._views.pop(id(turn))) for turn in turns if id(turn) in self._views}
        self.interface.objects = [m for m in self.interface.objects if id(m) not in gone]

    # -- what the user does
    async def send(self, text: str) -> None:
        """What pressing Enter does: show ``text``, stream the reply; return once it is saved."""
        self.interface.send(text, user=USER_NAME, avatar=USER_AVATAR, respond=False)
        await self._respond(text, USER_NAME, self.interface)
        await self.settled()

    def regenerate(self) -> None:
        """Drop the last reply and answer the last user message again (the button)."""
        self._regenerate_clicked(self.interface, None)

    def undo(self) -> None:
        """Remove the last exchange and put its message back in the input (the button)."""
        self._undo_clicked(self.interface, None)

    # -- the callback
    async def _respond(self, contents: Any, user: str, instance: pn.chat.ChatInterface) -> None:
        self.busy = True
        try:
            if self._regenerating:
                self._regenerating = False
            else:
                turn = self.history.add(Turn("user", str(contents)))
                self._show(turn, instance.objects[-1])
                self._in_background(self._save_user(turn))
            await self._reply(instance)
        finally:
            self.busy = False

    async def _reply(self, instance: pn.chat.ChatInterface) -> None:
        settings = self.sidebar.settings()
        agent = self.sidebar.agent.value
        view = ReplyView(user=_speaker(settings))
        self._cancel = cancel = CancelToken()
        # Start the model first: its prompt is evaluated in a worker thread while the event
        # loop builds the reply's widgets.
        task = asyncio.ensure_future(self._generate(settings, view, cancel, agent))
        instance.send(view.message, respond=False)
        try:
            reply = await asyncio.shield(task)
        except asyncio.CancelledError:  # the stop button cancelled the callback
            cancel.cancel()
            reply = await task
        view.finish(reply.stats)
        turn = self.history.add(
            Turn("assistant", reply.text, reply.status, reply.stats, reply.steps or None)
        )
        self._show(turn, view.message)
        self._in_background(self._save_reply(turn, settings))  # the input frees up at once

    async def _generate(
        self, settings: Settings, view: ReplyView, cancel: CancelToken, agent: bool
    ) -> FinishedReply:
        """Stream one reply into ``view``; never raises, so the reply always gets a footer."""
        try:
            return await self._generate_or_raise(settings, view, cancel, agent)
        except MixchatError as error:
            return FinishedReply("", Stats(Outcome.ERROR, error=error_advice(error)))
        except Exception as error:  # a bug in mixchat: say so, keep the server and chat going
            log.exception("generating a reply failed")
            line = (
                f"Something went wrong in mixchat ({type(error).__name__}: {error}). "
                "Try again, or start a new chat."
            )
            return FinishedReply("", Stats(Outcome.ERROR, error=line))

    async def _generate_or_raise(
        self, settings: Settings, view: ReplyView, cancel: CancelToken, agent: bool
    ) -> FinishedReply:
        """The reply, within this user's limits (a LimitReached error says which and when)."""
        return await metered(
            self.accounting,
            self.gateway.owner,
            self.sidebar.entry(),
            settings,
            lambda capped: self._run(capped, view, cancel, agent),
        )

    async def _run(
        self, settings: Settings, view: ReplyView, cancel: CancelToken, agent: bool
    ) -> FinishedReply:
        backend = backends.get_backend(settings)
        if not backend.loaded:
            view.set_status("Loading the model (once per server)…")
        await backend.load()
        system, reply_tokens = settings.system_prompt, settings.max_tokens
        if agent:  # fit what the agent sends: the tool instructions, its reply length
            from mixchat.ui.agent_view import agent_system_message

            system = await agent_system_message(backend, settings, self.sidebar.selected_tools())
            reply_tokens = AGENT_SAMPLING.max_tokens
        messages, dropped = await asyncio.to_thread(
            fit_context,
            self.history.messages(system),
            backend.count_tokens,
            backend.context_length,
            reply_tokens,
        )
        if dropped:
            view.set_notice(
                f"The {dropped} oldest messages no longer fit in the model's context "
                f"({backend.context_length} tokens), so this reply does not see them."
            )
        view.set_status("Thinking…")
        if agent:
            from mixchat.ui.agent_view import run_agent

            tools = self.sidebar.selected_tools()
            owner = self.gateway.owner
            return await run_agent(backend, settings, tools, messages, view, cancel, owner)
        request = ChatRequest(
            messages, params=settings.sampling(), cancel=cancel, user=self.gateway.owner
        )
        return await stream_reply(backend.stream(request), view)

    # -- buttons
    def _regenerate_clicked(self, instance: pn.chat.ChatInterface, _: Any) -> None:
        """Drop the last reply and answer the last user message again."""
        index = self.history.last_user_index()
        if self.busy or index is None:
            return
        removed = self.history.truncate(index + 1)
        self._remove_views(removed)
        self._delete_stored(removed)
        self._regenerating = True
        instance.respond()

    def _undo_clicked(self, instance: pn.chat.ChatInterface, _: Any) -> None:
        """Remove the last user message and its reply; put the text back in the input."""
        index = self.history.last_user_index()
        if self.busy or index is None:
            return
        removed = self.history.truncate(index)
        self._remove_views(removed)
        self._delete_stored(removed)
        self.input.value_input = removed[0].content

    def stop(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    async def new_chat(self) -> None:
        """Empty the chat; the next message starts a new stored conversation."""
        self.stop()
        self.interface.stop()
        await self.settled()
        self.history = History()
        self._views.clear()
        self.conversation_id = None
        self.interface.objects = []
        self.welcome()

    async def open(self, conversation_id: str) -> None:
        """Show a stored conversation; the next message continues it with its settings."""
        conversation = await self.gateway.get(conversation_id)
        if conversation is None:
            self.say(f"Cannot open that conversation: {self.gateway.error or 'not found'}")
            return
        await self.new_chat()
        self.load(conversation)

    def load(self, conversation: Conversation) -> None:
        self.conversation_id = conversation.id
        self.sidebar.restore(
            conversation.backend,
            conversation.model,
            conversation.system_prompt,
            conversation.settings,
        )
        for record in conversation.messages:
            if record.role not in ("user", "assistant"):
                continue
            turn = self.history.add(
                Turn(
                    record.role,
                    record.content,
                    record.status,
                    record.stats,
                    record.steps,
                    record.id,
                )
            )
            if record.role == "user":
                message = user_message(record.content)
            else:
                message = restored_reply(record, _speaker(self.sidebar.settings()))
            self.interface.objects = [*self.interface.objects, message]
            self._show(turn, message)

    # -- the store
    def _in_background(self, save: Coroutine[Any, Any, None]) -> None:
        """Run a store write after the ones before it, without holding up the chat."""
        previous = self._saving

        async def chained() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await save

        self._saving = asyncio.ensure_future(chained())

    async def settled(self) -> None:
        """Wait for background writes (before a write that depends on them)."""
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)

    async def _save_user(self, turn: Turn) -> None:
        if self.conversation_id is None:
            settings = self.sidebar.settings()
            created = await self.gateway.create(
                title=title_from(turn.content),
                backend=settings.backend,
                model=settings.model,
                settings=self.sidebar.snapshot(),
                system_prompt=settings.system_prompt,
            )
            self.conversation_id = created.id if created is not None else None
        if self.conversation_id is not None:
            turn.store_id = await self.gateway.add_message(
                self.conversation_id, "user", turn.content
            )
        if not self.gateway.enabled:
            self._history_off()
        # The conversation list is refreshed once the reply is saved, not now: rebuilding it
        # on the event loop would delay the reply's first tokens.

    async def _save_reply(self, turn: Turn, settings: Settings) -> None:
        if self.conversation_id is None:
            return
        await self.gateway.update_settings(
            self.conversation_id,
            backend=settings.backend,
            model=settings.model,
            settings=self.sidebar.snapshot(),
            system_prompt=settings.system_prompt,
        )
        turn.store_id = await self.gateway.add_message(
            self.conversation_id,
            "assistant",
            turn.content,
            status=turn.status,
            stats=turn.stats,
            steps=turn.steps,
        )
        await self._saved()

    def _delete_stored(self, removed: list[Turn]) -> None:
        async def delete() -> None:
            first = next((turn.store_id for turn in removed if turn.store_id is not None), None)
            if first is not None and self.conversation_id is not None:
                await self.gateway.delete_messages_from(self.conversation_id, first)

        self._in_background(delete())

    async def _saved(self) -> None:
        if not self.gateway.enabled:
            self._history_off()
        if self.on_saved is not None:
            await self.on_saved()

    async def check_store(self) -> None:
        """At page load: open the store, or say that history is off."""
        if not await self.gateway.check():
            self._history_off()

    def _history_off(self) -> None:
        if not self._told_history_off:
            self._told_history_off = True
            self.say(
                f"Conversation history is off ({self.gateway.error}). "
                "The chat works, but nothing is saved."
            )

    async def _callback_failed(self, error: BaseException, instance: Any) -> None:
        """A bug in the app (not a model failure, which ends a stream normally)."""
        log.error("chat callback failed", exc_info=error)
        self.say(f"Something went wrong in mixchat: {error}. The chat keeps working.")


async def stream_reply(events: AsyncIterator[Any], view: ReplyView) -> FinishedReply:
    """Show a backend stream in ``view``; the final ``Done`` gives status and stats."""
    throttle = Throttle()
    done: Done | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            if throttle.push(event.text):
                view.show(throttle.flushed())
        elif isinstance(event, Queued):
            ahead = event.position
            view.set_status(
                f"Waiting for the model: {ahead} request{'s' if ahead > 1 else ''} ahead of you…"
            )
        elif isinstance(event, Done):
            done = event
    view.show(throttle.flushed())
    if done is None:  # pragma: no cover - stream() always ends with Done
        return FinishedReply(throttle.text, Stats(Outcome.ERROR, error="The reply ended early."))
    if done.outcome is Outcome.ERROR:  # the line shown and kept: the error, and what to do
        done = dataclasses.replace(done, error=error_advice(done.exception, done.error))
    return FinishedReply(throttle.text, done)


def _speaker(settings: Settings) -> str:
    """The name shown on replies: the model that answers."""
    try:
        return backends.get_backend(settings).model_name
    except MixchatError:
        return settings.model or settings.backend
