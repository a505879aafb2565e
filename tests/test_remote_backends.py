"""The remote backends (``mistral``, ``openai``) against real local servers, no internet.

A llama-cpp-python server proves both SDKs stream from a real OpenAI-compatible server; the
fault server (tests/fault_server.py) misbehaves on purpose to cover every failure: each must
end the stream with a clear one-line error that never contains the key, and leave the backend
working for the next request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx2
import pytest

from fault_server import REPLY, FaultServer
from mixchat.backends import (
    CancelToken,
    ChatRequest,
    Done,
    TextDelta,
    ToolCall,
    backend_class,
    close_all,
    get_backend,
)
from mixchat.backends.base import Capability
from mixchat.backends.mistral import RECOMMENDED, _server_url
from mixchat.backends.openai import Dialect, _v1_url
from mixchat.backends.remote import (
    HttpStatus,
    RemoteBackend,
    display_url,
    one_line,
    retry_after,
    server_reason,
)
from mixchat.config import SamplingParams, load_settings
from mixchat.errors import ContextOverflow, ServerError, Timeout
from processes import free_port

pytest_plugins = ["remote_fixtures"]  # fixtures: fault, llama_server, make_backend
MakeBackend = Callable[..., RemoteBackend]
Remote = Callable[..., RemoteBackend]

KEY = "sk-test-SECRET-0123456789"
GOOD_TEXT = "".join(REPLY)
ASK = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(params=["openai", "mistral"])
def name(request: pytest.FixtureRequest) -> str:
    """Runs a test once per remote backend."""
    return request.param


@pytest.fixture
def remote(fault: FaultServer, make_backend: MakeBackend, name: str) -> Remote:
    """Builds the ``name`` backend pointed at the fault server."""
    path = "/v1" if name == "openai" else ""
    return lambda **overrides: make_backend(name, fault.url + path, **overrides)


def request(**kwargs: object) -> ChatRequest:
    return ChatRequest(list(ASK), **kwargs)  # type: ignore[arg-type]


def assert_clear_error(done: Done, error_type: str) -> str:
    """The stream ended in ``error_type`` with a one-line message free of the key."""
    assert done.outcome == "error"
    assert done.error_type == error_type, done.error
    assert done.error and "\n" not in done.error and len(done.error) < 400
    assert KEY not in repr(done)
    return done.error


async def assert_still_works(backend: RemoteBackend) -> None:
    reply = await backend.complete(request())
    assert reply.done.ok, reply.done.error
    assert reply.text == GOOD_TEXT


# -- against llama-cpp-python's OpenAI-compatible server


async def test_streams_from_a_local_llama_cpp_server(llama_server: str, name: str) -> None:
    path = "/v1" if name == "openai" else ""
    backend = get_backend(load_settings(backend=name, base_url=llama_server + path))
    params = SamplingParams(temperature=0.0, max_tokens=12, top_k=40, repetition_penalty=1.1)
    try:
        events = [event async for event in backend.stream(ChatRequest(list(ASK), params=params))]
    finally:
        await close_all()
    deltas = [event for event in events if isinstance(event, TextDelta)]
    done = events[-1]
    assert isinstance(done, Done) and done.ok, done
    assert len(deltas) >= 2  # streamed, not one block
    assert done.completion_tokens >= len(deltas)
    assert done.time_to_first_token is not None and done.time_to_first_token < done.duration
    if name == "openai":  # no model configured: the server's first (only) model is used
        assert backend.model_name.endswith(".gguf")


async def test_openai_json_schema_on_llama_cpp_server(
    llama_server: str, make_backend: MakeBackend
) -> None:
    backend = make_backend("openai", llama_server + "/v1", model=None)
    schema = {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}},
        "required": ["color"],
    }
    ask = [{"role": "user", "content": "Pick a color. Answer in JSON."}]
    reply = await backend.complete(
        ChatRequest(ask, params=SamplingParams(temperature=0.0, max_tokens=40), json_schema=schema)
    )
    assert reply.done.ok, reply.done.error
    assert json.loads(reply.text)["color"] in ("red", "green", "blue")
    # llama-cpp-python rejects the json_schema format by name: its own form is used from now on
    assert backend.dialect == Dialect(extras=True, schema_format="json_object")


async def test_mistral_json_mode_on_llama_cpp_server(
    llama_server: str, make_backend: MakeBackend
) -> None:
    backend = make_backend("mistral", llama_server)
    reply = await backend.complete(
        ChatRequest(
            [{"role": "user", "content": "Describe a cat in JSON."}],
            params=SamplingParams(temperature=0.0, max_tokens=16),
            json_schema={"type": "object"},
        )
    )
    assert reply.done.ok, reply.done.error
    assert reply.text.lstrip().startswith("{")  # the server's JSON grammar was applied


# -- every fault, for both backends


async def test_good_reply_usage_and_key(fault: FaultServer, remote: Remote, name: str) -> None:
    backend = remote(**{f"{name}_api_key": KEY})
    reply = await backend.complete(request())
    assert reply.text == GOOD_TEXT
    done = reply.done
    assert (done.outcome, done.prompt_tokens, done.completion_tokens) == ("stop", 7, 5)
    assert fault.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_bad_key(fault: FaultServer, remote: Remote, name: str) -> None:
    backend = remote(**{f"{name}_api_key": KEY})
    fault.script("401")
    reply = await backend.complete(request())
    message = assert_clear_error(reply.done, "AuthError")
    assert "refused the API key" in message and f"{name.upper()}_API_KEY" in message
    assert "***" in message  # the server echoed the key: it was blanked out
    assert len(fault.requests) == 1  # a bad key is not retried
    await assert_still_works(backend)


async def test_rate_limited_once_then_retried_after_retry_after(
    fault: FaultServer, remote: Remote
) -> None:
    backend = remote()
    fault.retry_after = "0.3"
    fault.script("429")
    reply = await backend.complete(request())
    assert reply.done.ok and reply.text == GOOD_TEXT
    first, second = fault.requests
    assert second.at - first.at >= 0.3  # honoured the server's wait, not the 10 ms backoff


async def test_rate_limited_for_good(fault: FaultServer, remote: Remote) -> None:
    backend = remote(max_retries=2)
    fault.script("429", "429", "429")
    message = assert_clear_error((await backend.complete(request())).done, "RateLimited")
    assert "HTTP 429" in message and "gave up after 2 retries" in message
    assert len(fault.requests) == 3
    await assert_still_works(backend)


async def test_too_long_a_retry_after_fails_at_once(
    fault: FaultServer, make_backend: MakeBackend
) -> None:
    backend = make_backend("openai", fault.url + "/v1")
    backend.retry.max_retry_after = 10
    fault.retry_after = "120"
    fault.script("429")
    message = assert_clear_error((await backend.complete(request())).done, "RateLimited")
    assert "asks to wait 120 s" in message
    assert len(fault.requests) == 1


async def test_bad_request_gives_the_server_reason(fault: FaultServer, remote: Remote) -> None:
    backend = remote()
    fault.script("422")
    message = assert_clear_error((await backend.complete(request())).done, "BadRequest")
    assert "HTTP 422" in message
    assert "temperature: Input should be less than or equal to 1.5" in message
    assert len(fault.requests) == 1
    await assert_still_works(backend)


async def test_server_error_retried_then_reported(fault: FaultServer, remote: Remote) -> None:
    backend = remote(max_retries=1)
    fault.script("500", "500")
    message = assert_clear_error((await backend.complete(request())).done, "ServerError")
    assert "HTTP 500: Internal failure with a second line" in message
    assert "gave up after 1 retry" in message
    fault.script("500")  # a passing failure is retried away
    await assert_still_works(backend)
    assert len(fault.requests) == 4


@pytest.mark.parametrize("step", ["cut", "cut-clean"])
async def test_stream_cut_keeps_the_partial_reply(
    fault: FaultServer, remote: Remote, step: str
) -> None:
    backend = remote()
    fault.script(step)
    reply = await backend.complete(request())
    assert reply.text == "".join(REPLY[:2])  # what arrived stays
    message = assert_clear_error(reply.done, "StreamCut")
    assert "partial reply is kept" in message
    assert len(fault.requests) == 1  # never retried once text was shown
    await assert_still_works(backend)


async def test_stall_past_the_read_timeout(fault: FaultServer, remote: Remote) -> None:
    backend = remote(read_timeout=0.5)
    fault.script("stall")
    started = time.monotonic()
    reply = await backend.complete(request())
    assert time.monotonic() - started < 3
    message = assert_clear_error(reply.done, "Timeout")
    assert "0.5 s (read_timeout)" in message
    assert reply.text == REPLY[0]
    await assert_still_works(backend)


async def test_connection_refused_then_server_comes_up(
    make_backend: MakeBackend, name: str
) -> None:
    port = free_port()
    path = "/v1" if name == "openai" else ""
    backend = make_backend(name, f"http://127.0.0.1:{port}{path}")
    message = assert_clear_error((await backend.complete(request())).done, "Unreachable")
    assert f"127.0.0.1:{port}" in message and "is it running" in message
    with FaultServer(port):
        await assert_still_works(backend)


async def test_cancel_closes_the_http_stream(fault: FaultServer, remote: Remote) -> None:
    backend = remote()
    fault.script("slow")
    cancel = CancelToken()
    events = []
    async for event in backend.stream(request(cancel=cancel)):
        events.append(event)
        if len(events) == 3:
            cancel.cancel()
    assert isinstance(events[-1], Done) and events[-1].outcome == "cancelled"
    assert len(events) == 4  # no text after the cancel
    assert await asyncio.to_thread(fault.disconnected.wait, 5)  # the server saw the hang-up
    await assert_still_works(backend)


async def test_cancel_during_a_retry_wait_is_prompt(
    fault: FaultServer, make_backend: MakeBackend
) -> None:
    backend = make_backend("mistral", fault.url)
    fault.retry_after = "30"
    fault.script("429")
    cancel = CancelToken()
    asyncio.get_running_loop().call_later(0.2, cancel.cancel)
    started = time.monotonic()
    reply = await backend.complete(request(cancel=cancel))
    assert reply.done.outcome == "cancelled"
    assert time.monotonic() - started < 2


async def test_native_tool_calls(fault: FaultServer, remote: Remote, name: str) -> None:
    backend = remote()
    assert Capability.TOOL_CALLING in backend.capabilities
    tools = [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": "Evaluate arithmetic",
                "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
            },
        }
    ]
    # vLLM streams a call in fragments; Mistral sends it whole, its arguments as an object
    steps = ["tool", "tool-whole"] if name == "openai" else ["tool-whole"]
    for step in steps:
        fault.script(step)
        reply = await backend.complete(request(tools=tools))
        assert reply.done.ok and reply.text == ""
        assert reply.tool_calls == [ToolCall("calculator", reply.tool_calls[0].arguments)]
        assert json.loads(reply.tool_calls[0].arguments) == {"expression": "6*7"}
        assert fault.requests[-1].body["tools"] == tools


# -- what each backend sends


async def test_mistral_sends_only_fields_it_accepts(
    fault: FaultServer, make_backend: MakeBackend
) -> None:
    backend = make_backend("mistral", fault.url + "/v1/")  # a trailing /v1 is tolerated
    params = SamplingParams(
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        max_tokens=64,
        repetition_penalty=1.2,
        stop=("###",),
        seed=7,
    )
    reply = await backend.complete(request(params=params, json_schema={"type": "object"}))
    assert reply.done.ok
    body = fault.requests[0].body
    assert "top_k" not in body and "repetition_penalty" not in body
    assert {
        key: body[key] for key in ("temperature", "top_p", "max_tokens", "stop", "random_seed")
    } == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "stop": ["###"], "random_seed": 7}
    assert body["response_format"] == {"type": "json_object"}
    assert Capability.JSON_MODE in backend.capabilities


async def test_openai_sends_extras_and_drops_them_for_a_strict_server(
    fault: FaultServer, make_backend: MakeBackend
) -> None:
    backend = make_backend("openai", fault.url)  # a bare host gets /v1
    params = SamplingParams(top_k=40, repetition_penalty=1.2, seed=7)
    assert (await backend.complete(request(params=params))).done.ok
    body = fault.requests[0].body
    assert (body["top_k"], body["repetition_penalty"], body["seed"]) == (40, 1.2, 7)
    assert body["stream_options"] == {"include_usage": True}

    fault.strict = True  # now it rejects what the OpenAI API does not have
    reply = await backend.complete(request(params=params))
    assert reply.done.ok and reply.text == GOOD_TEXT
    assert backend.dialect.extras is False
    assert "top_k" not in fault.requests[-1].body
    sent = len(fault.requests)
    assert (await backend.complete(request(params=params))).done.ok
    assert len(fault.requests) == sent + 1  # remembered: no rejected attempt first


async def test_openai_json_schema_format(fault: FaultServer, make_backend: MakeBackend) -> None:
    backend = make_backend("openai", fault.url + "/v1")
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert (await backend.complete(request(json_schema=schema))).done.ok
    assert fault.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": schema},
    }
    assert Capability.JSON_SCHEMA in backend.capabilities


async def test_openai_asks_the_server_for_its_model(
    fault: FaultServer, make_backend: MakeBackend
) -> None:
    backend = make_backend("openai", fault.url + "/v1", model=None)
    assert (await backend.complete(request())).done.ok
    assert backend.model_name == "fault-model" == fault.requests[0].body["model"]
    assert backend.context_length == 2048
    assert fault.requests[0].headers["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize("prefix", ["Hello", "Sure: "])
async def test_mistral_assistant_prefix(
    fault: FaultServer, make_backend: MakeBackend, prefix: str
) -> None:
    backend = make_backend("mistral", fault.url)
    reply = await backend.complete(request(assistant_prefix=prefix))
    # only new text is streamed: a prefix the server echoes ("Hello...") is dropped
    assert reply.text == (GOOD_TEXT.removeprefix("Hello") if prefix == "Hello" else GOOD_TEXT)
    assert fault.requests[0].body["messages"][-1] == {
        "role": "assistant",
        "content": prefix,
        "prefix": True,
    }


# -- unknown models and missing settings


async def test_mistral_unknown_model_lists_what_to_use(
    fault: FaultServer, make_backend: MakeBackend
) -> None:
    backend = make_backend("mistral", fault.url, model="open-mixtral-8x7b")
    fault.script("400-model")
    message = assert_clear_error((await backend.complete(request())).done, "BadRequest")
    assert "'open-mixtral-8x7b'" in message and "retired" in message
    assert all(name in message for name in RECOMMENDED)
    assert "open-mixtral-8x7b" in backend.known_models
    assert backend.default_model == "mistral-small-latest"


async def test_openai_unknown_model(fault: FaultServer, make_backend: MakeBackend) -> None:
    backend = make_backend("openai", fault.url + "/v1", model="nope")
    fault.script("404-model")
    message = assert_clear_error((await backend.complete(request())).done, "BadRequest")
    assert "has no model 'nope'" in message and f"{fault.url}/v1/models" in message


async def test_mistral_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MIXCHAT_MISTRAL_API_KEY", raising=False)
    backend = backend_class("mistral")(load_settings(backend="mistral"))
    message = assert_clear_error((await backend.complete(request())).done, "ConfigError")
    assert "MISTRAL_API_KEY" in message


async def test_openai_without_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "MIXCHAT_BASE_URL", "MIXCHAT_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    backend = backend_class("openai")(load_settings(backend="openai"))
    message = assert_clear_error((await backend.complete(request())).done, "ConfigError")
    assert "--base-url" in message


async def test_key_never_logged(
    fault: FaultServer, remote: Remote, caplog: pytest.LogCaptureFixture
) -> None:
    backend = remote(**{f"{backend_name}_api_key": KEY for backend_name in ("mistral", "openai")})
    fault.script("401", "429", "ok")
    with caplog.at_level(logging.DEBUG):
        await backend.complete(request())
        assert (await backend.complete(request())).done.ok
    assert "retrying" in caplog.text  # logging was on
    assert KEY not in caplog.text


async def test_timeouts_and_failure_mapping(remote: Remote, name: str) -> None:
    backend = remote(connect_timeout=1.5, read_timeout=7.0)
    client = backend.client()
    timeout = (
        client.sdk_configuration.async_client.timeout  # type: ignore[attr-defined]
        if name == "mistral"
        else client.timeout  # type: ignore[attr-defined]
    )
    assert (timeout.connect, timeout.read) == (1.5, 7.0)
    connect = backend.failure(httpx2.ConnectTimeout("timed out"), streaming=False)
    assert isinstance(connect.error, Timeout) and "1.5 s (connect_timeout)" in str(connect.error)
    overflow = HttpStatus(400, '{"message": "This model\'s maximum context length is 2048"}', {})
    assert isinstance(backend.status_failure(overflow).error, ContextOverflow)
    busy = backend.status_failure(HttpStatus(503, "busy", {"retry-after": "2"}))
    assert (type(busy.error), busy.retryable, busy.retry_after) == (ServerError, True, 2.0)
    assert not backend.status_failure(HttpStatus(501, "", {})).retryable


async def test_openai_served_models(fault: FaultServer, make_backend: MakeBackend) -> None:
    backend = make_backend("openai", fault.url + "/v1")
    assert await backend.served_models() == ["fault-model"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["mistral", "openai"])
def test_instance_key_tells_keys_apart_without_holding_them(name: str) -> None:
    cls = backend_class(name)
    first = cls.instance_key(load_settings(backend=name, **{f"{name}_api_key": KEY}))
    second = cls.instance_key(load_settings(backend=name, **{f"{name}_api_key": KEY + "x"}))
    assert first != second
    assert KEY not in repr(first)


# -- the shared helpers


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after": "0.25"}) == 0.25
    assert retry_after({"retry-after-ms": "150", "retry-after": "9"}) == 0.15
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after({"retry-after": later}) or 0) <= 30
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_server_reason_shapes() -> None:
    assert server_reason('{"error": {"message": "bad key"}}') == "bad key"  # OpenAI
    mistral = '{"object": "error", "message": "Invalid model: x"}'
    assert server_reason(mistral) == "Invalid model: x"
    fastapi = '{"detail": [{"loc": ["body", "top_p"], "msg": "too big"}]}'
    assert server_reason(fastapi) == "body.top_p: too big"
    assert server_reason('{"error": "Input validation error"}') == "Input validation error"  # TGI
    assert server_reason("<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"


def test_one_line_and_urls() -> None:
    assert one_line(f"key {KEY}\n  was   wrong", KEY) == "key *** was wrong"
    assert len(one_line("x" * 1000)) == 240
    assert display_url("https://user:pw@example.com:8443/v1") == "https://example.com:8443/v1"
    assert _v1_url("http://host:8000") == "http://host:8000/v1"
    assert _v1_url("http://host:11434/v1/") == "http://host:11434/v1"
    assert _server_url("http://host:8000/v1/") == "http://host:8000"
