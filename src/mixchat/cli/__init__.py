"""The ``mixchat`` command: serve the web app, chat in the terminal, ask one question."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from mixchat.cli.api_keys import api_key_app
from mixchat.cli.history import history_app
from mixchat.cli.options import with_settings
from mixchat.cli.presets import presets, with_preset
from mixchat.cli.prompt_view import prompt
from mixchat.cli.terminal import format_stats, stream_reply
from mixchat.cli.usage import usage
from mixchat.config import Settings
from mixchat.errors import MixchatError
from mixchat.messages import Message

if TYPE_CHECKING:
    from mixchat.agent import AgentFinished
    from mixchat.backends import Backend, ChatRequest, Done
    from mixchat.cli.chatlog import ChatLog
    from mixchat.prompt.inspector import PromptRecord
    from mixchat.tools import Tool

app = typer.Typer(
    name="mixchat",
    help="A private, fast chat app for Mixtral-family models. With no configuration it runs "
    "offline on a small embedded model; point it at Mixtral with --model, --backend mistral, "
    "or --backend openai --base-url URL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_LOGIN = "Login"


def _messages(settings: Settings, history: list[Message]) -> list[Message]:
    prompt = settings.system_prompt
    return [Message(role="system", content=prompt), *history] if prompt else list(history)


McpOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mcp",
        metavar="COMMAND|URL",
        help='an MCP server whose tools the agent gets: "COMMAND ARGS" (stdio) or a URL '
        "(streamable HTTP); repeatable, added to [mcp_servers] of the config",
    ),
]


def _with_mcp(settings: Settings, mcp: list[str] | None) -> Settings:
    if not mcp:
        return settings
    from mixchat.tools.mcp import with_mcp_options

    return settings.model_copy(update={"mcp_servers": with_mcp_options(settings.mcp_servers, mcp)})


PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        "-p",
        metavar="NAME",
        help="a preset's system prompt, model and sampling (`mixchat presets` lists them)",
    ),
]


def _fail(message: str) -> None:
    typer.echo(f"mixchat: error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
@with_settings
def ask(
    settings: Settings,
    question: Annotated[
        str | None, typer.Argument(help="the question; read from stdin if omitted")
    ] = None,
    agent: Annotated[
        bool, typer.Option("--agent", help="answer with tools (Calculator, Search, ...)")
    ] = False,
    stats: Annotated[
        bool, typer.Option("--stats", help="print tokens, speed and finish reason to stderr")
    ] = False,
    mcp: McpOption = None,
    no_log: Annotated[
        bool, typer.Option("--no-log", help="do not save the question and answer to history")
    ] = False,
    file: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            "-f",
            help="a document to ask about: text, Markdown, code, CSV, HTML, PDF (repeatable)",
        ),
    ] = None,
    preset: PresetOption = None,
) -> None:
    """Answer one question on stdout, streamed (usable in scripts); saved to history.
    --mcp implies --agent."""
    from mixchat.backends import ChatRequest, get_backend
    from mixchat.cli.chatlog import ChatLog

    text = question if question is not None else sys.stdin.read()
    if not text.strip():
        _fail("nothing to ask: give a question, or pipe one on stdin")
    settings = _with_mcp(with_preset(settings, preset), mcp)
    backend = get_backend(settings)
    if file:
        from mixchat.documents import read_file, with_documents

        text = with_documents(text, [read_file(path) for path in file])
    if agent or mcp:
        asyncio.run(_ask_agent(settings, backend, text, ChatLog.open(settings, enabled=not no_log)))
        return
    request = ChatRequest(
        _messages(settings, [Message(role="user", content=text)]), settings.sampling()
    )
    log = ChatLog.open(settings, enabled=not no_log)
    try:
        done = asyncio.run(_ask(log, backend, request, text))
    finally:
        log.close()
    if done.error:
        _fail(done.error)
    if stats:
        typer.echo(format_stats(done), err=True)


async def _ask(log: ChatLog, backend: Backend, request: ChatRequest, text: str) -> Done:
    from mixchat.documents import check_fits
    from mixchat.prompt.inspector import record_prompt

    await backend.load()
    check_fits(backend, request.messages, request.params.max_tokens)
    await log.user(text)
    progress = await log.reply(record_prompt(backend, request))
    _, done = await stream_reply(backend, request, progress=progress)
    return done


async def _ask_agent(settings: Settings, backend: Backend, question: str, log: ChatLog) -> None:
    """Steps on stderr, the answer on stdout; Ctrl+C stops the agent. Saved as ``ask`` is."""
    from mixchat.outcome import Outcome
    from mixchat.tools.mcp import close_toolboxes

    try:
        finished, prompt = await _agent_answer(settings, backend, question, [], sys.stdout)
        if finished.outcome is not Outcome.ERROR:
            await log.user(question)
            await log.answer(finished, prompt)
    finally:
        log.close()
        await close_toolboxes()
    if finished.outcome is Outcome.ERROR:
        _fail(finished.error or "the agent failed")


async def _agent_answer(
    settings: Settings,
    backend: Backend,
    question: str,
    history: list[Message],
    answer_out: TextIO,
) -> tuple[AgentFinished, PromptRecord | None]:
    """One agent answer: steps on stderr, the answer to ``answer_out``; Ctrl+C stops it.
    Also what the model received for the agent's last call (for the prompt inspector)."""
    from rich.console import Console

    from mixchat.agent import Agent
    from mixchat.backends import CancelToken
    from mixchat.cli.agent_view import print_agent_events
    from mixchat.tools import agent_tools

    cancel = CancelToken()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, cancel.cancel)
    try:
        tools = await agent_tools(settings)
        agent = Agent(backend, tools, max_steps=settings.agent_max_steps)
        finished = await print_agent_events(
            agent.run(
                question, history=history, cancel=cancel, system_prompt=settings.system_prompt
            ),
            Console(stderr=True),
            answer_out=answer_out,
        )
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return finished, await asyncio.to_thread(agent.record_prompt)


@app.command()
@with_settings
def chat(
    settings: Settings,
    agent: Annotated[
        bool, typer.Option("--agent", help="answer with tools (Calculator, Search, ...)")
    ] = False,
    mcp: McpOption = None,
    continue_: Annotated[
        bool,
        typer.Option(
            "--continue", "-c", help="continue a stored conversation: the last one, or ID"
        ),
    ] = False,
    conversation: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="with --continue: the conversation's id")
    ] = None,
    no_log: Annotated[
        bool, typer.Option("--no-log", help="do not save this conversation to history")
    ] = False,
    preset: PresetOption = None,
) -> None:
    """Chat in the terminal, streamed, saved to history; /help lists the commands.

    Arrows edit the line and recall earlier ones; Ctrl+C stops a reply; /exit (or Ctrl+D)
    quits. --mcp implies --agent.
    """
    from mixchat.backends import get_backend
    from mixchat.cli.chatlog import ChatLog
    from mixchat.cli.repl import TerminalChat, run_chat

    if conversation is not None and not continue_:
        _fail("give --continue to continue conversation " + conversation)
    settings = _with_mcp(with_preset(settings, preset), mcp)
    backend = get_backend(settings)
    log = ChatLog.open(settings, enabled=not no_log)
    agent_answer = None
    if agent or mcp:

        async def agent_answer(
            line: str, history: list[Message]
        ) -> tuple[AgentFinished, PromptRecord | None]:
            return await _agent_answer(settings, backend, line, history, sys.stdout)

    terminal = TerminalChat(settings, backend, log, agent_answer)
    if continue_:
        try:
            terminal.history = log.resume(conversation)
        except MixchatError:
            log.close()
            raise
        typer.echo(
            f"(continuing {log.conversation_id} with {len(terminal.history)} messages)", err=True
        )
    typer.echo(
        f"mixchat: talking to {backend.description}. /help lists commands, /exit quits.", err=True
    )
    # One event loop for the whole chat: MCP servers started by the first answer stay up.
    with asyncio.Runner() as runner:
        try:
            run_chat(terminal, runner)
        finally:
            from mixchat.tools.mcp import close_toolboxes

            runner.run(close_toolboxes())


@app.command()
@with_settings
def serve(
    settings: Settings,
    host: Annotated[
        str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port [default: 5006]")] = None,
    num_procs: Annotated[int, typer.Option(help="server processes (each loads its own model)")] = 1,
    show: Annotated[bool, typer.Option("--show", help="open the app in a browser")] = False,
    basic_auth: Annotated[
        str | None,
        typer.Option(
            help="a password, or a JSON file of user: password, to require a login",
            rich_help_panel=_LOGIN,
        ),
    ] = None,
    oauth_provider: Annotated[
        str | None,
        typer.Option(
            help="log in through Panel's OAuth: generic (any OIDC provider), github, google, "
            "azure, gitlab, okta, auth0",
            rich_help_panel=_LOGIN,
        ),
    ] = None,
    oauth_key: Annotated[
        str | None, typer.Option(help="the OAuth client id", rich_help_panel=_LOGIN)
    ] = None,
    oauth_secret: Annotated[
        str | None,
        typer.Option(
            help="the OAuth client secret (or PANEL_OAUTH_SECRET)",
            envvar="PANEL_OAUTH_SECRET",
            rich_help_panel=_LOGIN,
        ),
    ] = None,
    oauth_redirect_uri: Annotated[
        str | None,
        typer.Option(help="the URL the provider sends users back to", rich_help_panel=_LOGIN),
    ] = None,
    oauth_extra: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KEY=VALUE",
            help="a provider parameter (repeatable): for generic, AUTHORIZE_URL, TOKEN_URL, "
            "USER_URL, USER_KEY; for azure, tenant; ...",
            rich_help_panel=_LOGIN,
        ),
    ] = None,
    oauth_encryption_key: Annotated[
        str | None,
        typer.Option(
            help="key that encrypts OAuth tokens in cookies (or PANEL_OAUTH_ENCRYPTION)",
            envvar="PANEL_OAUTH_ENCRYPTION",
            rich_help_panel=_LOGIN,
        ),
    ] = None,
    cookie_secret: Annotated[
        str | None,
        typer.Option(
            help="secret that signs login cookies (set it when several processes serve)",
            envvar="PANEL_COOKIE_SECRET",
            rich_help_panel=_LOGIN,
        ),
    ] = None,
    no_login: Annotated[
        bool,
        typer.Option(
            "--no-login",
            help="serve a non-local --host without any login (everyone is one user)",
            rich_help_panel=_LOGIN,
        ),
    ] = False,
    allow_websocket_origin: Annotated[
        list[str] | None,
        typer.Option(
            metavar="HOST",
            help="a public HOST[:PORT] the page is served from, behind a proxy (repeatable)",
        ),
    ] = None,
    mcp: McpOption = None,
) -> None:
    """Serve the chat web app (http://localhost:5006 by default)."""
    from mixchat.ui import serve as serve_app
    from mixchat.ui.server import Login

    updates = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    extra = {}
    for item in oauth_extra or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--oauth-extra takes KEY=VALUE, not {item!r}")
        extra[key.strip()] = value.strip()
    login = Login(
        basic_auth=basic_auth,
        oauth_provider=oauth_provider,
        oauth_key=oauth_key,
        oauth_secret=oauth_secret,
        oauth_redirect_uri=oauth_redirect_uri,
        oauth_extra_params=extra,
        oauth_encryption_key=oauth_encryption_key,
        cookie_secret=cookie_secret,
    )
    serve_app(
        _with_mcp(settings, mcp).model_copy(update=updates),
        num_procs=num_procs,
        show=show,
        login=login,
        no_login=no_login,
        allow_websocket_origin=allow_websocket_origin,
    )


@app.command()
@with_settings
def models(settings: Settings) -> None:
    """List the model catalog users choose from, then the backends and the models they know."""
    from mixchat.backends import backend_class, names
    from mixchat.config.catalog import Catalog

    catalog = Catalog.from_settings(settings)
    typer.echo("Catalog (what users of the web app can pick):")
    for entry in catalog.entries.values():
        where = entry.settings.base_url or ""
        model = entry.settings.model or "default model"
        limit = f", max_tokens up to {entry.max_tokens_limit}" if entry.max_tokens_limit else ""
        typer.echo(f"  {entry.name:<12} {entry.display_name}: {entry.backend} {model} {where}")
        if entry.description or limit:
            typer.echo(f"  {'':<12} {entry.description}{limit}")
    typer.echo("\nBackends:")
    for name in names():
        try:
            cls = backend_class(name)
        except MixchatError as error:
            typer.echo(f"  {name:<12} unavailable: {error}")
            continue
        listed = ", ".join(cls.known_models) or "any"
        default = cls.default_model or (
            cls.known_models[0] if cls.known_models else "the server's model"
        )
        typer.echo(f"  {name:<12} default: {default}\n  {'':<12} models: {listed}")


@app.command()
def tools(mcp: McpOption = None) -> None:
    """List every tool the agent would have: built-in, @mixchat.tool, and MCP servers'."""
    import json

    from mixchat.config import load_settings
    from mixchat.tools import agent_tools
    from mixchat.tools.mcp import close_toolboxes

    settings = _with_mcp(load_settings(), mcp)

    async def listed() -> list[Tool]:
        try:
            return await agent_tools(settings)
        finally:
            await close_toolboxes()

    for tool in asyncio.run(listed()):
        typer.echo(f"{tool.name}  ({tool.source})\n  {tool.description}")
        typer.echo(f"  input: {json.dumps(tool.input_schema, ensure_ascii=False)}")


app.add_typer(api_key_app, name="api-key")
app.command(name="usage")(usage)
app.command()(prompt)
app.command()(presets)
app.add_typer(
    history_app, name="history", help="List, show, export, delete and import stored conversations."
)


def main() -> None:
    """Entry point: every mixchat error is one line on stderr and exit status 1."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("mixchat: %(message)s"))
    logging.getLogger("mixchat").addHandler(handler)
    logging.getLogger("mixchat").setLevel(logging.INFO)
    try:
        app()
    except MixchatError as error:
        typer.echo(f"mixchat: error: {error}", err=True)
        sys.exit(1)
