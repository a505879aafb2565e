"""A small OpenAI/Mistral-style chat server that misbehaves on purpose, for the remote tests.

Tests script what the next chat requests get (``server.script("429", "ok")``); once the script
is used up every request gets a good streamed reply. The server records what it received and
notices when a client hangs up mid-stream, so tests can check retries, the fields sent, and that
cancelling closes the HTTP stream.

    ok           a streamed reply: "Hello from the fault server." then stop, usage and [DONE]
    401          bad key; the body echoes the key, as some servers do, to test redaction
    429          rate limited, with ``Retry-After: <server.retry_after>``
    422          a validation error with a reason (FastAPI's shape, as Mistral answers)
    500          internal error
    404-model    the model does not exist (vLLM's shape)
    400-model    Mistral's answer to a retired model name
    cut          two deltas, then the connection drops in the middle of the chunked body
    cut-clean    two deltas, then a clean end of the body, without a finish reason or [DONE]
    stall        headers and one delta, then nothing (past the client's read timeout)
    slow         a long reply, one delta every 20 ms, until the client hangs up
    tool         a tool call streamed in fragments, as vLLM does
    tool-whole   a tool call in one delta with its arguments as an object, as Mistral does
    strict       (a flag, not a step) answer 400 to any field outside the OpenAI API
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from typing_extensions import Self

REPLY = ["Hello", " from", " the", " fault", " server."]
MODEL = "fault-model"
OPENAI_FIELDS = {
    "model",
    "messages",
    "stream",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "user",
    "max_completion_tokens",
}


@dataclass(frozen=True)
class Received:
    """One chat request the server got."""

    body: dict[str, Any]
    headers: dict[str, str]  # names in lower case
    at: float  # time.monotonic()


class FaultServer:
    """Serves on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, port: int = 0) -> None:
        self._steps: list[str] = []
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.disconnected = threading.Event()  # a client hung up while a reply streamed
        self.stopping = threading.Event()
        self.retry_after = "0"
        self.strict = False
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fault = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *steps: str) -> None:
        """What the next chat requests get, in order."""
        with self._lock:
            self._steps.extend(steps)

    def next_step(self) -> str:
        with self._lock:
            return self._steps.pop(0) if self._steps else "ok"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


def chunk(
    delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped stream chunk (Mistral's SDK parses the same shape)."""
    data: dict[str, Any] = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        data["usage"] = usage
    return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, *_: Any) -> None:  # keep test output clean
        pass

    @property
    def fault(self) -> FaultServer:
        return self.server.fault  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": MODEL,
                            "object": "model",
                            "created": 0,
                            "owned_by": "tests",
                            "max_model_len": 2048,
                        }
                    ],
                },
            )
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.fault.requests.append(
            Received(body, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
        )
        step = self.fault.next_step()
        unknown = sorted(set(body) - OPENAI_FIELDS)
        if self.fault.strict and unknown:
            self._json(
                400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}"}}
            )
            return
        getattr(self, "_" + step.replace("-", "_"))(body)

    # -- replies

    def _ok(self, body: dict[str, Any]) -> None:
        self._start_stream()
        for text in REPLY:
            self._event(chunk({"content": text}))
        self._event(
            chunk({}, "stop", {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12})
        )
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")

    def _401(self, body: dict[str, Any]) -> None:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self._json(
            401,
            {
                "error": {
                    "message": f"Incorrect API key provided: {key}",
                    "type": "invalid_request_error",
                }
            },
        )

    def _429(self, body: dict[str, Any]) -> None:
        self._json(
            429,
            {"message": "Requests rate limit exceeded"},
            {"Retry-After": self.fault.retry_after},
        )

    def _422(self, body: dict[str, Any]) -> None:
        self._json(
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "temperature"],
                        "type": "less_than_equal",
                        "msg": "Input should be less than or equal to 1.5",
                    }
                ]
            },
        )

    def _500(self, body: dict[str, Any]) -> None:
        self._json(500, {"error": {"message": "Internal failure\nwith a second line"}})

    def _404_model(self, body: dict[str, Any]) -> None:
        self._json(
            404,
            {
                "object": "error",
                "message": f"The model `{body.get('model')}` does not exist.",
                "type": "NotFoundError",
                "code": 404,
            },
        )

    def _400_model(self, body: dict[str, Any]) -> None:
        self._json(
            400,
            {
                "object": "error",
                "message": f"Invalid model: {body.get('model')}",
                "type": "invalid_model",
                "param": None,
                "code": "1500",
            },
        )

    def _cut(self, body: dict[str, Any]) -> None:
        self._start_stream()
        for text in REPLY[:2]:
            self._event(chunk({"content": text}))
        self.wfile.write(b"40\r\npartial")  # a chunk announced but never finished
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _cut_clean(self, body: dict[str, Any]) -> None:
        self._start_stream()
        for text in REPLY[:2]:
            self._event(chunk({"content": text}))
        self._send_chunk(b"")
        self.close_connection = True

    def _stall(self, body: dict[str, Any]) -> None:
        self._start_stream()
        self._event(chunk({"content": REPLY[0]}))
        self.fault.stopping.wait(30)
        self.close_connection = True

    def _slow(self, body: dict[str, Any]) -> None:
        self._start_stream()
        try:
            for index in range(500):
                self._event(chunk({"content": f" w{index}"}))
                time.sleep(0.02)
                if self.fault.stopping.is_set():
                    return
        except OSError:  # broken pipe, reset: the client hung up
            self.fault.disconnected.set()
        self.close_connection = True

    def _tool(self, body: dict[str, Any]) -> None:
        self._start_stream()
        call = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "calculator", "arguments": ""},
        }
        self._event(chunk({"role": "assistant", "tool_calls": [call]}))
        for part in ('{"expression"', ': "6*7"}'):
            self._event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        self._event(chunk({}, "tool_calls"))
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")

    def _tool_whole(self, body: dict[str, Any]) -> None:
        self._start_stream()
        call = {
            "id": "abc123XYZ",
            "index": 0,
            "function": {"name": "calculator", "arguments": {"expression": "6*7"}},
        }
        self._event(chunk({"role": "assistant", "content": "", "tool_calls": [call]}, "tool_calls"))
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")

    # -- HTTP plumbing

    def _json(
        self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _event(self, data: dict[str, Any]) -> None:
        self._send_chunk(f"data: {json.dumps(data)}\n\n".encode())

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
