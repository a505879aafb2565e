"""Where ``mixchat ask`` and ``mixchat chat`` keep what was said: the same history as the web app.

A conversation is created with the first message; each reply is saved while it streams
(:class:`~mixchat.store.progress.ReplyProgress`), so a killed terminal leaves the words
already printed. ``--no-log`` keeps nothing; a store that cannot open prints one line and
the chat goes on without history.
"""

from __future__ import annotations

import asyncio

import typer

from mixchat.agent import AgentFinished
from mixchat.config import Settings
from mixchat.errors import MixchatError
from mixchat.messages import Message
from mixchat.prompt.inspector import PromptRecord
from mixchat.store import LOCAL_OWNER, ConversationStore, title_from
from mixchat.store.progress import ReplyProgress


class ChatLog:
    """One terminal conversation in the store (``store`` None: nothing is kept)."""

    def __init__(self, settings: Settings, store: ConversationStore | None) -> None:
        self.settings = settings
        self.store = store
        self.conversation_id: str | None = None

    @classmethod
    def open(cls, settings: Settings, *, enabled: bool = True) -> ChatLog:
        if not enabled:
            return cls(settings, None)
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            return cls(settings, ConversationStore.from_settings(settings))
        except (MixchatError, OSError) as error:
            typer.echo(f"mixchat: history is off: {error}", err=True)
            return cls(settings, None)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def resume(self, prefix: str | None) -> list[Message]:
        """Continue a stored conversation (the last one when ``prefix`` is None); its
        current branch, as messages to send again."""
        if self.store is None:
            raise MixchatError("cannot continue a conversation: history is off")
        if prefix is None:
            listed = self.store.list(LOCAL_OWNER)
            if not listed:
                raise MixchatError("no stored conversation to continue")
            self.conversation_id = listed[0].id
        else:
            self.conversation_id = self.store.resolve_id(LOCAL_OWNER, prefix)
        branch = self.store.branch_path(LOCAL_OWNER, self.conversation_id)
        return [
            Message(role=m.role, content=m.content)
            for m in branch
            if m.role in ("user", "assistant") and m.content
        ]

    def new(self) -> None:
        """The next message starts another conversation."""
        self.conversation_id = None

    async def user(self, text: str) -> None:
        """Save the user's message (creating the conversation with the first one)."""
        if self.store is None:
            return
        try:
            await self._user(self.store, text)
        except MixchatError as error:
            self._off(error)

    async def _user(self, store: ConversationStore, text: str) -> None:
        if self.conversation_id is None:
            created = await asyncio.to_thread(
                store.create,
                LOCAL_OWNER,
                title=title_from(text),
                backend=self.settings.backend,
                model=self.settings.model,
                settings=self.settings.sampling().model_dump(),
                system_prompt=self.settings.system_prompt,
            )
            self.conversation_id = created.id
        await asyncio.to_thread(store.add_message, LOCAL_OWNER, self.conversation_id, "user", text)

    async def reply(self, prompt: PromptRecord | None = None) -> ReplyProgress | None:
        """Start saving the reply to the last user message, with what the model received."""
        if self.store is None or self.conversation_id is None:
            return None
        try:
            return await ReplyProgress.start(
                self.store,
                LOCAL_OWNER,
                self.conversation_id,
                prompt=None if prompt is None else prompt.to_dict(),
            )
        except MixchatError as error:
            self._off(error)
            return None

    async def answer(self, finished: AgentFinished, prompt: PromptRecord | None) -> None:
        """Save an agent's answer to the last user message, with its last model call's prompt."""
        if self.store is None or self.conversation_id is None:
            return
        try:
            await asyncio.to_thread(
                self.store.add_message,
                LOCAL_OWNER,
                self.conversation_id,
                "assistant",
                finished.answer,
                status=finished.outcome.status,
                prompt=None if prompt is None else prompt.to_dict(),
            )
        except MixchatError as error:
            self._off(error)

    def _off(self, error: MixchatError) -> None:
        typer.echo(f"mixchat: history is off: {error}", err=True)
        self.close()
        self.store = None
