"""``/v1/models`` and ``/v1/chat/completions`` as Tornado handlers on Panel's own server.

Mounted beside the web app (same port, same process), so API clients share its model
instances and queue. Every failure is OpenAI's error body with the matching status; a
client that disconnects mid-stream cancels its request, so the model is free at once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from mixchat.api.access import ApiAccess
from mixchat.api.completions import Completion, start_completion
from mixchat.api.schema import ApiError, parse_request
from mixchat.backends import CancelToken

log = logging.getLogger("mixchat.api")


class _ApiHandler(RequestHandler):
    access: ApiAccess

    def initialize(self, access: ApiAccess) -> None:
        self.access = access

    def check_xsrf_cookie(self) -> None:
        """Keys, not cookies, authenticate API calls: there is no session to forge."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    async def _user(self) -> str:
        return await self.access.user(
            self.request.headers.get("Authorization"), self.request.remote_ip
        )

    def _error(self, error: ApiError) -> None:
        self.set_status(error.status)
        self.finish(json.dumps(error.body()))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """An unexpected failure: still OpenAI's shape, never a traceback."""
        self.finish(json.dumps(ApiError(status_code, self._reason, type="server_error").body()))


class ModelsHandler(_ApiHandler):
    async def get(self) -> None:
        try:
            await self._user()
        except ApiError as error:
            return self._error(error)
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": backend.name}
            for model, backend in self.access.models().items()
        ]
        self.finish(json.dumps({"object": "list", "data": data}))


class ChatCompletionsHandler(_ApiHandler):
    _cancel: CancelToken | None = None

    async def post(self) -> None:
        try:
            user = await self._user()
            request = parse_request(self.request.body)
            backend = self.access.backend(request.model)
            await self.access.gate.admit(user, request.model)
        except ApiError as error:
            return self._error(error)
        try:
            completion = start_completion(
                backend,
                self.access.settings_for(request.model),
                request,
                request.model,
                user=user,
                max_tokens_cap=self.access.max_tokens_cap(request.model),
            )
        except ApiError as error:
            await self.access.gate.record(user, request.model, 0, 0)  # its place is free again
            return self._error(error)
        self._cancel = completion.cancel
        try:
            if request.stream:
                await self._stream(completion)
            else:
                try:
                    body = await completion.whole()
                except ApiError as error:
                    return self._error(error)
                self.finish(json.dumps(body))
        finally:
            usage = completion.usage()
            await self.access.gate.record(
                user, request.model, usage["prompt_tokens"], usage["completion_tokens"]
            )

    async def _stream(self, completion: Completion) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx: pass each event on at once
        sent = False
        try:
            try:
                async for chunk in completion.chunks():
                    await self._send(chunk)
                    sent = True
            except ApiError as error:
                if not sent:  # nothing sent yet: a plain error with its own status
                    self.set_header("Content-Type", "application/json")
                    return self._error(error)
                await self._send(error.body())  # mid-stream: report it in the stream
            self.write("data: [DONE]\n\n")
            self.finish()
        except StreamClosedError:
            completion.cancel.cancel()

    async def _send(self, data: dict[str, Any]) -> None:
        self.write(f"data: {json.dumps(data)}\n\n")
        await self.flush()

    def on_connection_close(self) -> None:
        """The client went away: stop generating for it."""
        if self._cancel is not None:
            self._cancel.cancel()


def api_routes(access: ApiAccess) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    """Tornado routes of the API, for Panel's ``extra_patterns``."""
    options = {"access": access}
    return [
        (r"/v1/models/?", ModelsHandler, options),
        (r"/v1/chat/completions/?", ChatCompletionsHandler, options),
    ]
