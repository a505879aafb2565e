"""The OpenAI-compatible API of ``mixchat serve``, driven by the official ``openai`` SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jsonschema
import openai
import pytest

from processes import free_port, running_process


def serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, ready: str = "/v1/models"
) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "mixchat", "serve", "--port", str(port), *args]
    url = f"http://127.0.0.1:{port}"
    with running_process(command, tmp_path / "serve.log", url + ready, timeout=90, env=env):
        yield url + "/v1"


@pytest.fixture(scope="module")
def echo_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("api"), "--backend", "echo")


@pytest.fixture
def client(echo_api: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=echo_api, api_key="unused", max_retries=0)


TEXT = "The quick brown fox jumps over the lazy dog, twice over."


def test_models_lists_the_servers_model(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["echo"]


def test_streaming_text_equals_the_echo_and_usage_comes_last(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": TEXT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(TEXT.split())
    assert len({c.id for c in chunks}) == 1


def test_a_whole_completion_with_usage_and_max_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": TEXT},
        ],
        max_tokens=3,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        stop=["never"],
    )
    assert reply.object == "chat.completion" and reply.model == "echo"
    assert reply.choices[0].message.content == "The quick brown "
    assert reply.choices[0].finish_reason == "length"
    usage = reply.usage
    assert usage is not None and usage.completion_tokens == 3
    # the echo backend counts a word per token and one per message
    assert usage.prompt_tokens == len("Be brief.".split()) + 1 + len(TEXT.split()) + 1
    assert usage.total_tokens == usage.prompt_tokens + 3


def test_bad_requests_get_openai_errors_and_statuses(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.status_code == 404 and missing.value.code == "model_not_found"
    assert "gpt-9" in missing.value.message
    with pytest.raises(openai.BadRequestError) as hot:
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}], temperature=5
        )
    assert hot.value.status_code == 400 and hot.value.param == "temperature"
    assert hot.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="echo", messages=[])


def test_curl_style_raw_http(echo_api: str) -> None:
    response = httpx.post(f"{echo_api}/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the request body is not valid JSON"


def test_role_tool_results_are_accepted(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        ],
    )
    assert reply.choices[0].message.content == "Tool Output: Sunny"  # echoed back


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALL = '{"tool_name": "get_weather", "input": {"city": "Paris"}}'


def test_tool_calls_are_parsed_from_the_reply_and_streamed(client: openai.OpenAI) -> None:
    """The echo backend repeats a call as a model would write it (no grammar there)."""
    ask = {"model": "echo", "messages": [{"role": "user", "content": CALL}], "tools": [WEATHER]}
    reply = client.chat.completions.create(**ask)  # type: ignore[call-overload]
    assert reply.choices[0].finish_reason == "tool_calls"
    call = reply.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')
    assert call.id.startswith("call_") and reply.choices[0].message.content is None
    chunks = list(client.chat.completions.create(**ask, stream=True))  # type: ignore[call-overload]
    streamed = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
    assert streamed[0][0].function.arguments == '{"city": "Paris"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # none: the tools are not offered, the text is the answer
    plain = client.chat.completions.create(**ask, tool_choice="none")  # type: ignore[call-overload]
    assert plain.choices[0].message.content == CALL and not plain.choices[0].message.tool_calls
    # a call that does not follow the schema is no call: the text comes back as content
    wrong = client.chat.completions.create(  # type: ignore[call-overload]
        **{**ask, "messages": [{"role": "user", "content": CALL.replace('"city"', '"town"')}]}
    )
    assert wrong.choices[0].finish_reason == "stop" and not wrong.choices[0].message.tool_calls
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.chat.completions.create(  # type: ignore[call-overload]
            **ask, tool_choice={"type": "function", "function": {"name": "nope"}}
        )


# -- a login: keys ----------------------------------------------------------------------------


def test_with_a_login_the_api_needs_a_users_key(tmp_path: Path) -> None:
    env = {**os.environ, "MIXCHAT_DATA_DIR": str(tmp_path / "data")}

    def api_key(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "mixchat", "api-key", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    key = api_key("create", "alice").strip().splitlines()[-1]
    assert key.startswith("mxc-")
    listed = api_key("list")
    assert "alice" in listed and key not in listed
    for url in serve(
        tmp_path, "--backend", "echo", "--basic-auth", "secret", env=env, ready="/login"
    ):
        good = openai.OpenAI(base_url=url, api_key=key, max_retries=0)
        reply = good.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.choices[0].message.content == "hello"
        wrong = openai.OpenAI(base_url=url, api_key=key[:-2] + "xx", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused:
            wrong.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
        assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        assert httpx.get(f"{url}/models").status_code == 401  # no key at all
        api_key("revoke", listed.split()[0])
        with pytest.raises(openai.AuthenticationError):
            good.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])


def _this_machines_address() -> str:
    """An address of this machine that is not loopback: a client there is "remote"."""
    import psutil

    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family.name == "AF_INET" and not address.address.startswith("127."):
                return address.address
    raise AssertionError("this machine has no IPv4 address besides loopback")


def test_without_a_login_the_api_refuses_other_machines_even_with_forged_headers(
    tmp_path: Path,
) -> None:
    """Served on every address with --no-login: the web app is everyone's (the operator said
    so), but the API, which spends the operator's models and keys, answers only this machine.
    A remote client that claims to be local in proxy headers is still remote."""
    outside = _this_machines_address()
    port = free_port()
    command = [
        *(sys.executable, "-m", "mixchat", "serve", "--port", str(port)),
        *("--host", "0.0.0.0", "--no-login", "--backend", "echo"),
    ]
    ready = f"http://127.0.0.1:{port}/v1/models"
    with running_process(command, tmp_path / "serve.log", ready, timeout=90):
        local = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        reply = local.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "from here"}]
        )
        assert reply.choices[0].message.content == "from here"

        remote = openai.OpenAI(base_url=f"http://{outside}:{port}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as refused:
            remote.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "from afar"}]
            )
        assert refused.value.status_code == 403
        forged = {"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1", "Host": "localhost"}
        for path in ("/v1/models", "/v1/chat/completions"):
            answer = httpx.request(
                "GET" if path.endswith("models") else "POST",
                f"http://{outside}:{port}{path}",
                headers=forged,
                json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert answer.status_code == 403, (path, answer.text)
            error = answer.json()["error"]  # the OpenAI error shape, one clear line
            assert error["message"] and error["type"]
        page = httpx.get(f"http://{outside}:{port}/", headers={"Host": f"{outside}:{port}"})
        assert page.status_code == 200  # the web app itself is open, as --no-login says


# -- the embedded model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_api(tmp_path_factory: pytest.TempPathFactory, embedded_gguf: Path) -> Iterator[str]:
    yield from serve(tmp_path_factory.mktemp("api-model"))


@pytest.mark.slow
def test_tools_on_the_embedded_model_return_valid_tool_calls(model_api: str) -> None:
    client = openai.OpenAI(base_url=model_api, api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    parameters = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city", "unit"],
    }
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather forecast for a city",
                "parameters": parameters,
            },
        }
    ]
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        max_tokens=200,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    jsonschema.validate(__import__("json").loads(calls[0].function.arguments), parameters)  # type: ignore[union-attr]


@pytest.mark.slow
def test_seed_repeats_and_a_disconnect_frees_the_model(model_api: str) -> None:
    client = openai.OpenAI(base_url=model_api, api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    ask = {"model": model, "messages": [{"role": "user", "content": "Once upon a time"}]}
    first = client.chat.completions.create(**ask, temperature=1.0, seed=11, max_tokens=12)  # type: ignore[call-overload]
    again = client.chat.completions.create(**ask, temperature=1.0, seed=11, max_tokens=12)  # type: ignore[call-overload]
    assert first.choices[0].message.content == again.choices[0].message.content

    # A long reply, abandoned after its first words: generation must stop with it.
    with httpx.stream(
        "POST",
        f"{model_api}/chat/completions",
        json={**ask, "stream": True, "max_tokens": 4000, "temperature": 1.0},
        timeout=60,
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    started = time.monotonic()
    short = client.chat.completions.create(**ask, max_tokens=4)  # type: ignore[call-overload]
    assert short.choices[0].finish_reason == "length"
    assert time.monotonic() - started < 20  # not behind 4000 abandoned tokens


async def test_without_a_login_only_localhost_may_call() -> None:
    from mixchat.api import ApiAccess, ApiError
    from mixchat.config import load_settings

    access = ApiAccess(load_settings(backend="echo"))
    assert await access.user(None, "127.0.0.1") == "local"
    assert await access.user(None, "::1") == "local"
    for address in ("192.168.1.20", "10.0.0.1", "2001:db8::1", None, "garbage"):
        with pytest.raises(ApiError) as refused:
            await access.user("Bearer anything", address)
        assert refused.value.status == 403


@pytest.mark.slow
def test_a_stream_that_fails_before_any_text_gets_its_own_status(model_api: str) -> None:
    client = openai.OpenAI(base_url=model_api, api_key="unused", max_retries=0)
    model = client.models.list().data[0].id
    too_long = "word " * 20_000  # far past the 4096-token context
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": too_long}], stream=True
        )


async def test_keys_that_cannot_be_checked_are_a_503() -> None:
    from mixchat.api import ApiAccess, ApiError
    from mixchat.config import load_settings
    from mixchat.store import StoreError
    from mixchat.store.api_keys import ApiKeys

    def broken() -> Any:
        raise StoreError("the database server is down")

    access = ApiAccess(load_settings(backend="echo"), keys=ApiKeys(broken))
    with pytest.raises(ApiError) as refused:
        await access.user("Bearer mxc-something", "127.0.0.1")
    assert refused.value.status == 503 and "database server is down" in refused.value.message
