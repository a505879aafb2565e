"""``mixchat chat``: a terminal conversation with line editing, input history and slash commands.

Lines read through :mod:`readline` (arrows edit and recall earlier lines, kept in
``<data_dir>/chat_history``). A line starting with ``/`` is a command for mixchat, never
sent to the model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer

from mixchat.agent import AgentFinished
from mixchat.backends import Backend, ChatRequest
from mixchat.cli.chatlog import ChatLog
from mixchat.cli.terminal import format_stats, stream_reply
from mixchat.config import Settings
from mixchat.errors import MixchatError
from mixchat.messages import Message
from mixchat.outcome import Outcome
from mixchat.prompt.inspector import PromptRecord, fit_context, record_prompt
from mixchat.store import LOCAL_OWNER

#: The agent's answer to a line, given the conversation so far (``mixchat chat --agent``),
#: with what the model received for its last call.
AgentAnswer = Callable[[str, list[Message]], Awaitable[tuple[AgentFinished, PromptRecord | None]]]

HELP = """\
/help            this list
/new             start a new conversation
/system [TEXT]   show or set the system prompt (for the next replies)
/preset [NAME]   apply a preset (its system prompt, model, sampling), or list them
/save [FILE]     write the conversation as Markdown (default: print its id)
/exit            quit (also Ctrl+D); Ctrl+C stops a reply"""


def _say(text: str) -> None:
    typer.echo(text, err=True)


def _input_history(settings: Settings) -> Callable[[], None]:
    """Line editing and ↑ history through readline; returns the function that saves it."""
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows
        return lambda: None
    path = settings.data_dir / "chat_history"
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)

    def save() -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)

    return save


class TerminalChat:
    """The conversation so far, the settings it runs with, and the log it is saved to."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        log: ChatLog,
        agent_answer: AgentAnswer | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.log = log
        self.agent_answer = agent_answer
        self.history: list[Message] = []

    def messages(self) -> list[Message]:
        prompt = self.settings.system_prompt
        system = [Message(role="system", content=prompt)] if prompt else []
        return [*system, *self.history]

    def command(self, line: str) -> bool:
        """Run a slash command; False means quit."""
        name, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            _say(HELP)
        elif name in ("/new", "/reset"):
            self.history.clear()
            self.log.new()
            _say("(new conversation)")
        elif name == "/system":
            if argument:
                self.settings = self.settings.model_copy(update={"system_prompt": argument})
                _say("(system prompt set)")
            else:
                _say(self.settings.system_prompt or "(no system prompt)")
        elif name == "/save":
            self._save(argument)
        elif name == "/preset":
            self._preset(argument)
        else:
            _say(f"unknown command {name}: /help lists them")
        return True

    def _preset(self, name: str) -> None:
        from mixchat.backends import get_backend
        from mixchat.cli.presets import all_presets, find_preset

        if not name:
            listed = all_presets(self.settings)
            _say("\n".join(f"{p.name}: {p.summary()}" for p in listed) or "(no presets)")
            return
        try:
            preset = find_preset(self.settings, name)
            settings = preset.apply(self.settings)
            backend = get_backend(settings)
        except MixchatError as error:
            _say(str(error))
            return
        self.settings, self.backend = settings, backend
        _say(f"(preset {preset.name}: {preset.summary()})")

    def _save(self, target: str) -> None:
        if self.log.store is None or self.log.conversation_id is None:
            _say("nothing saved yet" if self.log.store else "history is off (--no-log)")
            return
        if not target:
            _say(f"saved as {self.log.conversation_id[:8]} (mixchat history show ID)")
            return
        markdown = self.log.store.export_markdown(LOCAL_OWNER, self.log.conversation_id)
        try:
            Path(target).expanduser().write_text(markdown, encoding="utf-8")
        except OSError as error:
            _say(f"cannot write {target}: {error.strerror or error}")
            return
        _say(f"wrote {target}")

    async def send(self, line: str) -> None:
        if self.agent_answer is not None:
            await self._send_to_agent(line)
            return
        self.history.append(Message(role="user", content=line))
        await self.log.user(line)
        await self.backend.load()
        params = self.settings.sampling()
        messages, dropped = await asyncio.to_thread(
            fit_context,
            self.messages(),
            self.backend.count_tokens,
            self.backend.context_length,
            params.max_tokens,
        )
        if dropped:
            _say(f"({len(dropped)} oldest messages no longer fit in the context and are not sent)")
        request = ChatRequest(messages, params)
        progress = await self.log.reply(record_prompt(self.backend, request, dropped))
        reply, done = await stream_reply(self.backend, request, progress=progress)
        if done.error:
            _say(f"[error] {done.error}")
            self.history.pop()
            return
        self.history.append(Message(role="assistant", content=reply))
        _say(f"[{format_stats(done)}]")

    async def _send_to_agent(self, line: str) -> None:
        """The agent answers (its steps on stderr); the question and answer are saved."""
        assert self.agent_answer is not None
        finished, prompt = await self.agent_answer(line, self.history)
        if finished.outcome is Outcome.ERROR:
            _say(f"[error] {finished.error}")
            return
        await self.log.user(line)
        await self.log.answer(finished, prompt)
        self.history += [
            Message(role="user", content=line),
            Message(role="assistant", content=finished.answer),
        ]


def run_chat(chat: TerminalChat, runner: asyncio.Runner) -> None:
    """Read lines until /exit or Ctrl+D."""
    save_history = _input_history(chat.settings)
    try:
        while True:
            try:
                line = input("you> ")
            except (EOFError, KeyboardInterrupt):
                _say("")
                return
            if not line.strip():
                continue
            if line.lstrip().startswith("/"):
                if not chat.command(line):
                    return
                continue
            runner.run(chat.send(line))
    finally:
        save_history()
        chat.log.close()
