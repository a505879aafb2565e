"""The chat itself: every message becomes a request built from the whole conversation.

The controller streams the backend's events into the :class:`Transcript` (which batches the
text by time), shows queue positions and context trimming, keeps partial replies on stop,
turns failures into a clear message, and saves both sides of each turn to the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Literal

from mixchat import backends
from mixchat.accounting import Accounting
from mixchat.backends import Backend, CancelToken, ChatRequest, Done, Queued, TextDelta
from mixchat.config import AGENT_SAMPLING, Settings
from mixchat.documents import Document, check_fits, with_documents
from mixchat.errors import MixchatError
from mixchat.messages import Message
from mixchat.outcome import Outcome, Stats
from mixchat.prompt.inspector import PromptRecord, fit_context, record_prompt
from mixchat.store import Conversation, MessageRecord, title_from
from mixchat.store.progress import ReplyProgress
from mixchat.store.store import CURRENT
from mixchat.ui.attachments import Attached, read_attachment, split_documents
from mixchat.ui.history import History, Turn
from mixchat.ui.prompt_view import prompt_view
from mixchat.ui.reply import WRITING, FinishedReply, LiveReply, ended
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.stats import error_advice
from mixchat.ui.storage import StoreGateway
from mixchat.ui.team import accounting_for, metered
from mixchat.ui.transcript import Entry, Transcript

log = logging.getLogger(__name__)

#: The longest a new user message waits to be stored for its reply's first text (seconds):
#: it is kept in memory (and on screen) until then, so a crash in that second loses it.
USER_SAVE_WAIT = 1.0

INPUT_PLACEHOLDER = "Message the model (Enter to send, Shift+Enter for a new line)"
INTERRUPTED_NOTE = (
    "Interrupted: the server stopped while writing this reply; this is what it had saved. "
    "Regenerate to answer again."
)
BUSY_HINT = "Not sent: a reply is still being written. Wait for it, or press Stop (Esc)."


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
    """One browser session's chat: the transcript on screen, the history, the current reply."""

    def __init__(
        self, sidebar: SettingsPanel, gateway: StoreGateway, accounting: Accounting | None = None
    ) -> None:
        self.sidebar = sidebar
        self.gateway = gateway
        self.accounting = accounting or accounting_for(gateway.settings)
        self.history = History()
        self.conversation_id: str | None = None
        self.busy = False
        self._cancel: CancelToken | None = None
        self._task: asyncio.Future[None] | None = None
        self._attaching: asyncio.Future[None] | None = None
        self._inspecting: asyncio.Future[None] | None = None  # a prompt read from the store
        self._writing: LiveReply | None = None  # the reply this session writes now
        self._following: LiveReply | None = None  # one another page writes, shown here
        self._entries: dict[int, int] = {}  # id(turn) -> its entry in the transcript
        self._turns: dict[int, Turn] = {}  # entry id -> the turn it shows
        self._saving: asyncio.Future[None] | None = None
        self._told_history_off = False
        self._saved_settings: tuple[Any, ...] | None = None  # what the store has, if known
        self._attached: list[Attached] = []  # documents in the input box, sent with the next
        #: Called after each save (the conversation list refreshes).
        self.on_saved: Callable[[], Awaitable[None]] | None = None
        self.transcript = Transcript(
            placeholder=INPUT_PLACEHOLDER, min_height=400, css_classes=["mixchat-chat"]
        )
        self.transcript.on_action = self._on_action
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
        self.transcript.append("notice", text)

    def _show(self, turn: Turn, entry_id: int) -> None:
        self._entries[id(turn)] = entry_id
        self._turns[entry_id] = turn

    def _remove_from(self, removed: list[Turn]) -> None:
        ids = [self._entries.pop(id(turn)) for turn in removed if id(turn) in self._entries]
        for entry_id in ids:
            self._turns.pop(entry_id, None)
        if ids:
            self.transcript.remove_from(ids[0])

    # -- what the browser asks for
    def _on_action(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "stop":
            self.stop()
        elif self.busy and kind in ("send", "regenerate", "undo", "edit", "branch"):
            self.transcript.hint(BUSY_HINT)
        elif kind == "send":
            # typed: the page shows what was typed, unless a /preset prefix was taken off it
            typed = not data.get("rewritten")
            self._run(self.send(str(data.get("text", "")), typed=typed))
        elif kind == "regenerate":
            self._run(self.regenerate())
        elif kind == "undo":
            self._run(self.undo())
        elif kind == "edit" and isinstance(data.get("id"), int):
            self._run(self.edit(data["id"], str(data.get("text", ""))))
        elif kind == "branch" and isinstance(data.get("id"), int) and data.get("step") in (-1, 1):
            self._run(self.switch(data["id"], data["step"]))
        elif kind == "inspect" and isinstance(data.get("id"), int):
            self._inspecting = asyncio.ensure_future(self.inspect(data["id"]))
        elif kind == "attach" and isinstance(data.get("data"), str):
            self._attaching = asyncio.ensure_future(
                self.attach(str(data.get("name", "")), data["data"])
            )
        elif kind == "detach" and isinstance(data.get("index"), int):
            self.detach(data["index"])
        elif kind == "document" and isinstance(data.get("id"), int):
            self.open_document(data["id"], data.get("index"))

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        self._task = asyncio.ensure_future(work)

    # -- an exchange
    async def send(self, text: str, *, typed: bool = False) -> None:
        """The user's message, then the reply; returns once both are saved.

        ``typed``: sent from this page's input box, which already shows it.
        """
        if self.busy:
            self.transcript.hint(BUSY_HINT)
            return
        if not text.strip() and not self._attached:
            return
        documents = [attached.document for attached in self._attached]
        if documents:
            if not await self._fits(with_documents(text, documents), text):
                return
            self._attached = []
            self.transcript.chips([])
        await self._exchange(text, typed, documents=documents)
        await self.settled()

    # -- documents
    async def attach(self, name: str, data: str) -> None:
        """Read a document the page sent (off the event loop) and show it as a chip."""
        try:
            document = await asyncio.to_thread(read_attachment, name, data)
            backend = backends.get_backend(self.sidebar.settings())
            await backend.load()
            prompt = [Message(role="user", content=document.to_prompt())]
            tokens = await asyncio.to_thread(backend.count_tokens, prompt)
        except MixchatError as error:
            self.transcript.hint(f"Not attached: {error}.")
            return
        self._attached.append(Attached(document, tokens))
        self.transcript.chips([attached.chip() for attached in self._attached])
        self.transcript.hint("")

    def detach(self, index: int) -> None:
        if 0 <= index < len(self._attached):
            del self._attached[index]
            self.transcript.chips([attached.chip() for attached in self._attached])

    def open_document(self, entry_id: int, index: object) -> None:
        """The text of a document sent with a message, for its chip."""
        turn = self._turns.get(entry_id)
        if turn is None or not isinstance(index, int):
            return
        documents = split_documents(turn.content)[1]
        if 0 <= index < len(documents):
            self.transcript.document(entry_id, index, *documents[index])

    async def _fits(self, content: str, text: str) -> bool:
        """Whether the conversation with this message (and its documents) fits the model's
        context; if not, say by how much, send nothing and give the text back."""
        settings = self.sidebar.settings()
        try:
            backend = backends.get_backend(settings)
            await backend.load()
            messages = [
                *self.history.messages(settings.system_prompt),
                Message(role="user", content=content),
            ]
            await asyncio.to_thread(check_fits, backend, messages, settings.max_tokens)
        except MixchatError as error:
            self.transcript.set_input(text)
            self.transcript.hint(f"Not sent: {error}.")
            return False
        return True

    async def regenerate(self) -> None:
        """Answer the last user message again; the old reply stays, as another version."""
        index = self.history.last_user_index()
        if self.busy or index is None:
            return
        await self.settled()  # the old reply's store id
        removed = self.history.truncate(index + 1)
        self._remove_from(removed)
        await self._exchange(None, False, versions=_versions_after(removed[:1]))

    async def edit(self, entry_id: int, text: str) -> None:
        """Send an edited version of an earlier user message: a new branch from there (the
        old message and everything after it stay in the store, one ``‹ ›`` away)."""
        turn = self._turns.get(entry_id)
        index = None if turn is None else self.history.index_of(turn)
        if self.busy or turn is None or index is None or turn.role != "user" or not text.strip():
            return
        await self.settled()  # the store ids of the turns before it
        removed = self.history.truncate(index)
        self._remove_from(removed)
        kept = [Document(name, "text", body) for name, body in split_documents(turn.content)[1]]
        await self._exchange(text, False, _versions_after(removed[:1]), kept)

    async def switch(self, entry_id: int, step: int) -> None:
        """Show the previous (-1) or next (+1) version of a message, and the conversation
        that follows it; the store remembers the branch for the next visit."""
        turn = self._turns.get(entry_id)
        index = None if turn is None else self.history.index_of(turn)
        if self.busy or turn is None or index is None or turn.store_id is None:
            return
        if self.conversation_id is None:
            return
        self.busy = True
        try:
            await self.settled()
            conversation = await self.gateway.get(self.conversation_id)
            if conversation is None:
                self.transcript.hint(f"Cannot switch: {self.gateway.error or 'not found'}")
                return
            versions = [record.id for record in conversation.siblings(turn.store_id)]
            at = versions.index(turn.store_id) + step
            if not 0 <= at < len(versions):
                return
            path = await self.gateway.select_branch(self.conversation_id, versions[at])
            if path is None:
                return
            shown = [record for record in path if record.role in ("user", "assistant")]
            removed = self.history.truncate(index)
            self._remove_from(removed)
            views = _views(conversation, shown[index:], _speaker(self.sidebar.settings()))
            ids = self.transcript.extend([entry for _, entry in views])
            for (later, _), shown_id in zip(views, ids):
                self._show(self.history.add(later), shown_id)
        finally:
            self.busy = False

    async def inspect(self, entry_id: int) -> None:
        """Show what the model received for this reply (kept with it; read from the store
        the first time for a reply of an opened conversation)."""
        turn = self._turns.get(entry_id)
        if turn is not None and turn.prompt is None and turn.store_id is not None:
            turn.prompt = await self.gateway.prompt(turn.store_id)
        if turn is None or not turn.prompt:
            self.transcript.hint("No prompt was recorded for this reply.")
            return
        self.transcript.inspector(entry_id, prompt_view(PromptRecord.from_dict(turn.prompt)))

    async def undo(self) -> None:
        """Remove the last user message and its reply; put the text back in the input."""
        index = self.history.last_user_index()
        if self.busy or index is None:
            return
        removed = self.history.truncate(index)
        self._remove_from(removed)
        self._delete_stored(removed)
        self.transcript.set_input(split_documents(removed[0].content)[0])

    async def _exchange(
        self,
        text: str | None,
        typed: bool,
        versions: int = 0,
        documents: list[Document] | None = None,
    ) -> None:
        """The user's message (None: answer the last one again), then the reply.

        ``versions``: the new message (or reply) is the last of this many versions.
        """
        self.busy = True
        self.transcript.busy(True)
        try:
            if text is not None:
                before = self.history.turns[-1] if self.history.turns else None
                content = with_documents(text, documents) if documents else text
                turn = self.history.add(Turn("user", content, branch=_branch(versions)))
                shown = self.transcript.append(
                    "user",
                    text,
                    typed=typed,
                    branch=list(turn.branch or ()),
                    docs=[document.name for document in documents or ()],
                )
                self._show(turn, shown)
                await self._reply(0, saving=(turn, before))
            else:
                await self._reply(versions)
        except Exception as error:  # a bug in mixchat: say so, keep the chat going
            log.exception("the chat failed")
            self.say(f"Something went wrong in mixchat: {error}. The chat keeps working.")
        finally:
            self.busy = False
            self._cancel = None
            self.transcript.busy(False)

    async def _reply(
        self, versions: int = 0, saving: tuple[Turn, Turn | None] | None = None
    ) -> None:
        """Write the reply to the last user message; ``saving``: that message (and the turn
        before it) is new, and is stored once the reply's first text arrives."""
        settings = self.sidebar.settings()
        agent = self.sidebar.agent
        asked = self.history.turns[-1]  # the user's message it answers
        entry = self.transcript.append(
            "assistant",
            name=_speaker(settings),
            status="streaming",
            progress="Thinking…",
            branch=list(_branch(versions) or ()),
        )
        self._cancel = cancel = CancelToken()
        reply = self._writing = LiveReply(self.transcript, entry, cancel)
        if self.conversation_id is not None:
            WRITING[self.conversation_id] = reply
        if saving is not None:
            self._in_background(self._save_user(*saving, reply))
        self._in_background(self._start_reply(reply, asked))  # saved as it streams
        finished = await self._generate(settings, reply, cancel, agent)
        reply.finish(finished)
        self._writing = None
        turn = self.history.add(
            Turn(
                "assistant",
                finished.text,
                finished.status,
                finished.stats,
                finished.steps or None,
                branch=_branch(versions),
                prompt=reply.prompt,
            )
        )
        if reply.prompt is not None:
            self.transcript.set(entry, inspect=True)
        self._show(turn, entry)
        # the input frees up at once
        self._in_background(self._save_reply(turn, settings, reply, asked))

    async def _generate(
        self, settings: Settings, reply: LiveReply, cancel: CancelToken, agent: bool
    ) -> FinishedReply:
        """Stream one reply; never raises, so the reply always gets a footer."""
        try:
            return await self._generate_or_raise(settings, reply, cancel, agent)
        except MixchatError as error:
            return FinishedReply(reply.text, Stats(Outcome.ERROR, error=error_advice(error)))
        except Exception as error:  # a bug in mixchat: say so, keep the server and chat going
            log.exception("generating a reply failed")
            line = (
                f"Something went wrong in mixchat ({type(error).__name__}: {error}). "
                "Try again, or start a new chat."
            )
            return FinishedReply(reply.text, Stats(Outcome.ERROR, error=line))

    async def _generate_or_raise(
        self, settings: Settings, reply: LiveReply, cancel: CancelToken, agent: bool
    ) -> FinishedReply:
        """The reply, within this user's limits (a LimitReached error says which and when)."""
        return await metered(
            self.accounting,
            self.gateway.owner,
            self.sidebar.entry(),
            settings,
            lambda capped: self._answer(capped, reply, cancel, agent),
        )

    async def _answer(
        self, settings: Settings, reply: LiveReply, cancel: CancelToken, agent: bool
    ) -> FinishedReply:
        backend = backends.get_backend(settings)
        loading = not backend.loaded
        if loading:  # a remote backend loads nothing: it connects (and may find its model)
            server = getattr(backend, "server", None)
            reply.status(
                f"Connecting to {server}…" if server else "Loading the model (once per server)…"
            )
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
            reply.notice(
                f"The {len(dropped)} oldest messages no longer fit in the model's context "
                f"({backend.context_length} tokens), so this reply does not see them."
            )
        if loading:
            reply.status("Thinking…")
        if agent:
            from mixchat.ui.agent_view import run_agent

            tools = self.sidebar.selected_tools()
            owner = self.gateway.owner
            return await run_agent(
                backend, settings, tools, messages, reply, cancel, owner, dropped
            )
        request = ChatRequest(
            messages, params=settings.sampling(), cancel=cancel, user=self.gateway.owner
        )
        finished = await stream_reply(backend.stream(request), reply)
        # Recorded after the reply, not before: it would delay the first token.
        reply.prompt = await asyncio.to_thread(  # kept with the reply: "Inspect prompt"
            lambda: record_prompt(backend, request, dropped).to_dict()
        )
        return finished

    def stop(self) -> None:
        """Stop the reply being written (what was written so far is kept)."""
        if self._cancel is not None:
            self._cancel.cancel()
        elif self._following is not None:  # the Stop button of a page that follows it
            self._following.cancel.cancel()

    async def wait(self) -> None:
        """Until the current exchange and the store writes before it are done (for tests)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.settled()

    async def new_chat(self) -> None:
        """Empty the chat; the next message starts a new stored conversation."""
        self._unfollow()
        self.stop()
        # Not when this is the task: open() runs as it when a followed reply is read back.
        if self._task is not None and self._task is not asyncio.current_task():
            await asyncio.gather(self._task, return_exceptions=True)
        await self.settled()
        self.history = History()
        self._entries.clear()
        self._turns.clear()
        self.conversation_id = None
        self.transcript.load([])
        self.welcome()

    async def open(self, conversation_id: str) -> None:
        """Show a stored conversation; the next message continues it with its settings."""
        conversation = await self.gateway.get(conversation_id)
        if conversation is None:
            self.say(f"Cannot open that conversation: {self.gateway.error or 'not found'}")
            return
        await self.new_chat()
        writing = WRITING.get(conversation.id)
        live = writing is not None and writing.finished is None
        self.load(conversation, live=live)
        if writing is not None and live:
            self._follow(conversation.id, writing)

    def _follow(self, conversation_id: str, writing: LiveReply) -> None:
        """Another page of this user writes a reply here (a reload mid-reply): show it live."""
        self.busy = True
        self._following = writing
        self.transcript.busy(True)

        def saved() -> None:
            if self._following is not writing:
                return  # this page moved on
            self._unfollow()
            self._run(self.open(conversation_id))  # reread it, the reply included

        writing.follow(self.transcript, _speaker(self.sidebar.settings()), saved)

    def _unfollow(self) -> None:
        if self._following is not None:
            self._following.screens = [
                screen for screen in self._following.screens if screen[0] is not self.transcript
            ]
            self._following = None
            self.busy = False
            self.transcript.busy(False)

    def load(self, conversation: Conversation, *, live: bool = False) -> None:
        """The stored conversation (its current branch) becomes the history and the whole
        transcript, at once. ``live``: its last reply is being written here (it is shown
        as it streams, not as last saved)."""
        self.conversation_id = conversation.id
        self.sidebar.restore(
            conversation.backend,
            conversation.model,
            conversation.system_prompt,
            conversation.settings,
        )
        records = [m for m in conversation.messages if m.role in ("user", "assistant")]
        if live and records and records[-1].status == "streaming":
            records.pop()
        views = _views(conversation, records, _speaker(self.sidebar.settings()))
        shown = list(self.transcript.entries)  # the welcome notice stays on top
        self.transcript.load(shown + [entry for _, entry in views])
        offset = len(shown)
        for (turn, _), entry in zip(views, self.transcript.entries[offset:]):
            self._show(self.history.add(turn), entry.id)

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

    async def _save_user(self, turn: Turn, before: Turn | None, reply: LiveReply) -> None:
        """Store the user's message (and make the conversation, listed with its address)
        once the model has read the prompt, or after ``USER_SAVE_WAIT`` at the latest.

        The writes and the list's redraw cost ~25 ms of CPU (server and browser), on 2 cores
        taken from the model's prompt evaluation: the first token came that much later."""
        await reply.first_text(USER_SAVE_WAIT)
        if self.conversation_id is None:
            settings = self.sidebar.settings()
            created = await self.gateway.create(
                title=_title(turn.content),
                backend=settings.backend,
                model=settings.model,
                settings=self.sidebar.snapshot(),
                system_prompt=settings.system_prompt,
            )
            self.conversation_id = created.id if created is not None else None
            if self.conversation_id is not None and self._writing is not None:
                WRITING[self.conversation_id] = self._writing
        if self.conversation_id is not None:
            turn.store_id = await self.gateway.add_message(
                self.conversation_id, "user", turn.content, parent=_parent(before)
            )
        if not self.gateway.enabled:
            self._history_off()
        # The conversation list is refreshed once the reply is saved, not now: rebuilding it
        # on the event loop would delay the reply's first tokens.

    async def _save_reply(
        self, turn: Turn, settings: Settings, reply: LiveReply, asked: Turn
    ) -> None:
        try:
            await self._store_reply(turn, settings, asked, reply.saver)
        finally:
            for conversation, writing in list(WRITING.items()):
                if writing is reply:
                    del WRITING[conversation]
            reply.saved()

    async def _start_reply(self, reply: LiveReply, asked: Turn) -> None:
        """Store the reply as it starts (status ``streaming``) and save it every few seconds
        off the event loop, so that a crash keeps what was written (``interrupted``)."""
        await reply.started.wait()  # not during the prompt: a store write there slows it
        if self.conversation_id is None:
            return
        progress = await self.gateway.start_reply(self.conversation_id, _parent(asked))
        if progress is not None:
            progress.grow(reply.text)  # what streamed before the stored message existed
            reply.saver = progress

    async def _store_reply(
        self, turn: Turn, settings: Settings, asked: Turn, saver: ReplyProgress | None
    ) -> None:
        if self.conversation_id is None:
            return
        snapshot = self.sidebar.snapshot()
        saved = (
            self.conversation_id,
            settings.backend,
            settings.model,
            snapshot,
            settings.system_prompt,
        )
        if saved != self._saved_settings:  # most exchanges change no setting: no write
            await self.gateway.update_settings(
                self.conversation_id,
                backend=settings.backend,
                model=settings.model,
                settings=snapshot,
                system_prompt=settings.system_prompt,
            )
            self._saved_settings = saved
        if saver is not None and turn.stats is not None:
            await self.gateway.finish_reply(
                saver, turn.stats, content=turn.content, steps=turn.steps, prompt=turn.prompt
            )
            turn.store_id = saver.message_id
        else:
            turn.store_id = await self.gateway.add_message(
                self.conversation_id,
                "assistant",
                turn.content,
                status=turn.status,
                stats=turn.stats,
                steps=turn.steps,
                parent=_parent(asked),
                prompt=turn.prompt,
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


async def stream_reply(events: AsyncIterator[Any], reply: LiveReply) -> FinishedReply:
    """Show a backend stream in ``reply``; the final ``Done`` gives status and stats."""
    done: Done | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            reply.write(event.text)
        elif isinstance(event, Queued):
            ahead = event.position
            reply.status(
                f"Waiting for the model: {ahead} request{'s' if ahead > 1 else ''} ahead of you…"
            )
        elif isinstance(event, Done):
            done = event
    if done is None:  # pragma: no cover - stream() always ends with Done
        return FinishedReply(reply.text, Stats(Outcome.ERROR, error="The reply ended early."))
    if done.outcome is Outcome.ERROR:  # the line shown and kept: the error, and what to do
        done = dataclasses.replace(done, error=error_advice(done.exception, done.error))
    return FinishedReply(reply.text, done)


def _title(content: str) -> str:
    """A new conversation's title: the question, else the first document's name."""
    question, documents = split_documents(content)
    return title_from(question if question.strip() or not documents else documents[0][0])


def _parent(turn: Turn | None) -> int | None | Literal["current"]:
    """Where a message goes in the store: below ``turn`` (None: a first message); the end
    of the current branch when ``turn`` was not saved."""
    if turn is None:
        return None
    return CURRENT if turn.store_id is None else turn.store_id


def _versions_after(replaced: list[Turn]) -> int:
    """How many versions there will be once a new one of this stored turn is added (0: it
    was not stored, so no versions to switch between)."""
    if not replaced or replaced[0].store_id is None:
        return 0
    old = replaced[0].branch
    return (old[1] if old else 1) + 1


def _branch(versions: int) -> tuple[int, int] | None:
    """The newest of ``versions`` versions (``‹ 3/3 ›``), or None for a single one."""
    return (versions, versions) if versions > 1 else None


def _views(
    conversation: Conversation, records: list[MessageRecord], name: str
) -> list[tuple[Turn, Entry]]:
    """Stored messages as turns of the history and as messages on screen, each with its
    place among its versions (``‹ 2/3 ›``)."""
    from mixchat.ui.agent_view import step_views

    versions: dict[int | None, list[int]] = {}
    for record in conversation.tree:  # oldest first
        versions.setdefault(record.parent_id, []).append(record.id)
    views: list[tuple[Turn, Entry]] = []
    for record in records:
        same = versions.get(record.parent_id, [record.id])
        branch = (same.index(record.id) + 1, len(same)) if len(same) > 1 else None
        turn = Turn(
            record.role,
            record.content,
            record.status,
            record.stats,
            record.steps,
            record.id,
            branch=branch,
            prompt=record.prompt,
        )
        if record.role == "user":
            question, documents = split_documents(record.content)
            entry = Entry(
                0,
                "user",
                question,
                branch=list(branch or ()),
                docs=[name for name, _ in documents],
            )
        else:
            status, footer, error = ended(record.stats or Stats(Outcome.from_status(record.status)))
            if record.status == "interrupted":
                status, footer, error = "interrupted", "", INTERRUPTED_NOTE
            entry = Entry(
                0,
                "assistant",
                record.content,
                name=name,
                status=status,
                footer=footer,
                error=error,
                steps=step_views(record.steps or []),
                branch=list(branch or ()),
                inspect=record.has_prompt,
            )
        views.append((turn, entry))
    return views


def _speaker(settings: Settings) -> str:
    """The name shown on replies: the model that answers."""
    try:
        return backends.get_backend(settings).model_name
    except MixchatError:
        return settings.model or settings.backend
