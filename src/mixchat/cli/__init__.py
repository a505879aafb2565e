"""The ``mixchat`` command: serve the web app, chat in the terminal, ask one question."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mixchat.cli.history import history_app
from mixchat.cli.options import with_settings
from mixchat.cli.terminal import format_stats, stream_reply
from mixchat.config import Settings
from mixchat.errors import MixchatError
from mixchat.messages import Message

if TYPE_CHECKING:
    from mixchat.backends import Backend

app = typer.Typer(
    name="mixchat",
    help="A private, fast chat app for Mixtral-family models. With no configuration it runs "
    "offline on a small embedded model; point it at Mixtral with --model, --backend mistral, "
    "or --backend openai --base-url URL.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _messages(settings: Settings, history: list[Message]) -> list[Message]:
    prompt = settings.system_prompt
    return [Message(role="system", content=prompt), *history] if prompt else list(history)


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
) -> None:
    """Answer one question on stdout, streamed (usable in scripts)."""
    from mixchat.backends import ChatRequest, get_backend

    text = question if question is not None else sys.stdin.read()
    if not text.strip():
        _fail("nothing to ask: give a question, or pipe one on stdin")
    backend = get_backend(settings)
    if agent:
        asyncio.run(_ask_agent(settings, backend, text))
        return
    request = ChatRequest(
        _messages(settings, [Message(role="user", content=text)]), settings.sampling()
    )
    _, done = asyncio.run(stream_reply(backend, request))
    if done.error:
        _fail(done.error)
    if stats:
        typer.echo(format_stats(done), err=True)


async def _ask_agent(settings: Settings, backend: Backend, question: str) -> None:
    """Steps on stderr, the answer on stdout; Ctrl+C stops the agent."""
    from rich.console import Console

    from mixchat.agent import Agent
    from mixchat.backends import CancelToken
    from mixchat.cli.agent_view import print_agent_events
    from mixchat.outcome import Outcome

    cancel = CancelToken()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, cancel.cancel)
    agent = Agent(backend, max_steps=settings.agent_max_steps)
    finished = await print_agent_events(
        agent.run(question, cancel=cancel), Console(stderr=True), answer_out=sys.stdout
    )
    if finished.outcome is Outcome.ERROR:
        _fail(finished.error or "the agent failed")


@app.command()
@with_settings
def chat(settings: Settings) -> None:
    """Chat in the terminal, streamed, with the whole conversation sent each turn.

    Ctrl+C stops a reply; /reset starts over; /exit (or Ctrl+D) quits.
    """
    from mixchat.backends import ChatRequest, get_backend

    backend = get_backend(settings)
    typer.echo(
        f"mixchat: talking to {backend.description}. /reset starts over, /exit quits.", err=True
    )
    history: list[Message] = []
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            typer.echo("", err=True)
            return
        if line.strip() in ("/exit", "/quit"):
            return
        if line.strip() == "/reset":
            history.clear()
            typer.echo("(conversation cleared)", err=True)
            continue
        if not line.strip():
            continue
        history.append(Message(role="user", content=line))
        request = ChatRequest(_messages(settings, history), settings.sampling())
        reply, done = asyncio.run(stream_reply(backend, request))
        if done.error:
            typer.echo(f"[error] {done.error}", err=True)
            history.pop()
            continue
        history.append(Message(role="assistant", content=reply))
        typer.echo(f"[{format_stats(done)}]", err=True)


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
        typer.Option(help="a password, or a JSON file of user: password, to require a login"),
    ] = None,
    cookie_secret: Annotated[
        str | None, typer.Option(help="secret that signs login cookies (set it with --basic-auth)")
    ] = None,
    allow_websocket_origin: Annotated[
        list[str] | None,
        typer.Option(
            metavar="HOST",
            help="a public HOST[:PORT] the page is served from, behind a proxy (repeatable)",
        ),
    ] = None,
) -> None:
    """Serve the chat web app (http://localhost:5006 by default)."""
    from mixchat.ui import serve as serve_app

    updates = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    serve_app(
        settings.model_copy(update=updates),
        num_procs=num_procs,
        show=show,
        basic_auth=basic_auth,
        cookie_secret=cookie_secret,
        allow_websocket_origin=allow_websocket_origin,
    )


@app.command()
def models() -> None:
    """List the backends, whether they can run here, and the models they know."""
    from mixchat.backends import backend_class, names

    for name in names():
        try:
            cls = backend_class(name)
        except MixchatError as error:
            typer.echo(f"{name:<13} unavailable: {error}")
            continue
        listed = ", ".join(cls.known_models) or "any"
        default = cls.default_model or (
            cls.known_models[0] if cls.known_models else "the server's model"
        )
        typer.echo(f"{name:<13} default: {default}\n{'':<13} models: {listed}")


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
