"""One connection per MCP server and process: started on first use, shared, restarted when it dies.

The SDK's ``Client`` is an async context manager whose task group must be entered and left
by one task, so each connection has an *owner task* that holds it open while tool calls from
any session's task go through it. A connection belongs to the event loop it started on (the
web server has one; each CLI command its own) and starts again on another. A call that finds
the server gone, or that times out (a hung server), drops the connection: the next call
starts the server afresh.

SDK and transport failures become :class:`~mixchat.errors.McpError` with one line that names
the server; a stdio server's own last stderr line says why it would not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any, TextIO, cast

from mixchat.config import McpServerConfig
from mixchat.errors import McpError, McpTimeout, MissingDependency

log = logging.getLogger(__name__)

_CONNECTION_CLOSED = -32000  # mcp_types.CONNECTION_CLOSED
_REQUEST_TIMEOUT = -32001  # mcp_types.REQUEST_TIMEOUT


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError:
        raise MissingDependency("mcp", purpose="MCP tools") from None
    return mcp


@dataclass
class _Session:
    """A started server: the SDK client, the task that holds it open, and how to stop it."""

    loop: asyncio.AbstractEventLoop
    client: Any  # mcp.Client
    owner: asyncio.Task[None]
    stop: asyncio.Event
    errlog: IO[str]  # the stdio server's stderr

    @property
    def alive(self) -> bool:
        return not self.owner.done() and not self.loop.is_closed()


class McpConnection:
    """The MCP server ``name`` of the config, for every agent of this process."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self._session: _Session | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self.starts = 0  # how many times the server was started (restarts show here)

    @property
    def target(self) -> str:
        """The command line or the URL, for messages."""
        return " ".join(self.config.command) if self.config.command else str(self.config.url)

    async def list_tools(self) -> list[Any]:
        """The server's tools (``mcp.types.Tool``: name, description, input_schema)."""
        session = await self._current()
        tools: list[Any] = []
        cursor: str | None = None
        try:
            while True:
                page = await asyncio.wait_for(
                    session.client.list_tools(cursor=cursor), self.config.start_timeout
                )
                tools += page.tools
                cursor = page.next_cursor
                if not cursor:
                    return tools
        except Exception as exc:
            await self._drop(session)
            raise self._mapped(exc, "listing its tools", self.config.start_timeout) from None

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """Call ``tool``; the ``CallToolResult`` (``is_error`` for a failure the tool reports)."""
        session = await self._current()
        timeout = self.config.timeout
        try:
            return await asyncio.wait_for(
                session.client.call_tool(tool, arguments, read_timeout_seconds=timeout),
                timeout + 1,
            )
        except Exception as exc:
            mcp = _import_mcp()
            if isinstance(exc, mcp.MCPError) and exc.code not in (
                _CONNECTION_CLOSED,
                _REQUEST_TIMEOUT,
            ):
                raise McpError(f"the MCP server {self.name!r} refused the call: {exc}") from None
            await self._drop(session)  # gone or hung: start afresh next time
            raise self._mapped(exc, f"calling {tool!r}", timeout) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await self._stop(session)

    # -- the owner task ----------------------------------------------------------------------

    async def _current(self) -> _Session:
        loop = asyncio.get_running_loop()
        lock = self._locks.setdefault(loop, asyncio.Lock())
        async with lock:
            session = self._session
            if session is not None and session.loop is loop and session.alive:
                return session
            if session is not None and session.loop is loop:
                await self._stop(session)
            self._session = await self._start(loop)
            return self._session

    async def _start(self, loop: asyncio.AbstractEventLoop) -> _Session:
        self.starts += 1
        ready: asyncio.Future[Any] = loop.create_future()
        stop = asyncio.Event()
        errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        owner = loop.create_task(self._hold(ready, stop, errlog), name=f"mcp:{self.name}")
        try:
            client = await asyncio.wait_for(asyncio.shield(ready), self.config.start_timeout)
        except asyncio.TimeoutError:
            stop.set()
            owner.cancel()
            raise McpTimeout(
                f"MCP server {self.name!r} ({self.target}) did not start within "
                f"{self.config.start_timeout:g} s"
            ) from None
        except Exception as exc:
            reason = _last_line(errlog) or _reason(exc)
            errlog.close()
            raise McpError(
                f"MCP server {self.name!r} ({self.target}) cannot start: {reason}"
            ) from None
        log.debug("MCP server %s started (%s)", self.name, self.target)
        return _Session(loop, client, owner, stop, errlog)

    async def _hold(self, ready: asyncio.Future[Any], stop: asyncio.Event, errlog: IO[str]) -> None:
        """Own the SDK client: enter it, hand it over, keep it open until asked to stop."""
        try:
            mcp = _import_mcp()
            async with mcp.Client(self._transport(errlog)) as client:
                ready.set_result(client)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(
                    exc if isinstance(exc, Exception) else ConnectionError("stopped")
                )
            elif not isinstance(exc, asyncio.CancelledError):
                log.debug("MCP server %s stopped: %s", self.name, _reason(exc))
            if not isinstance(exc, Exception):
                raise

    def _transport(self, errlog: IO[str]) -> Any:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        config = self.config
        if config.command:
            command, *args = config.command
            parameters = StdioServerParameters(command=command, args=args, env=config.env or None)
            return stdio_client(parameters, errlog=cast(TextIO, errlog))
        assert config.url is not None
        return _http_transport(config.url, dict(config.headers))

    async def _drop(self, session: _Session) -> None:
        if self._session is session:
            self._session = None
        await self._stop(session)

    async def _stop(self, session: _Session) -> None:
        session.stop.set()
        try:
            if session.loop is asyncio.get_running_loop() and not session.owner.done():
                try:
                    await asyncio.wait_for(asyncio.shield(session.owner), 5)
                except (asyncio.TimeoutError, Exception):
                    session.owner.cancel()
                    await asyncio.gather(session.owner, return_exceptions=True)
        finally:
            session.errlog.close()

    def _mapped(self, exc: BaseException, doing: str, seconds: float) -> McpError:
        mcp = _import_mcp()
        if isinstance(exc, asyncio.TimeoutError) or (
            isinstance(exc, mcp.MCPError) and exc.code == _REQUEST_TIMEOUT
        ):
            return McpTimeout(
                f"the MCP server {self.name!r} did not answer within {seconds:g} s "
                f"({doing}); it is restarted for the next call"
            )
        return McpError(
            f"the MCP server {self.name!r} stopped ({doing}: {_reason(exc)}); "
            "it is restarted for the next call"
        )


@contextlib.asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    """Streamable HTTP with the operator's headers, on a client this transport owns."""
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


def _reason(exc: BaseException) -> str:
    """One line for an exception, looking inside task-group exception groups."""
    while isinstance(inner := getattr(exc, "exceptions", None), tuple) and inner:
        exc = inner[0]
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _last_line(errlog: IO[str]) -> str:
    """The last line a stdio server wrote to stderr (its traceback's last line)."""
    try:
        errlog.seek(0)
        lines = [line.strip() for line in errlog.read()[-4000:].splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    return lines[-1][:300] if lines else ""
