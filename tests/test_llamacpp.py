"""The llama.cpp backend on the embedded model and on a tiny random-weight Mixtral GGUF."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mixchat.backends import ChatRequest, Done, Queued, TextDelta
from mixchat.backends.gguf_files import resolve_gguf
from mixchat.backends.llamacpp import LlamaCppBackend
from mixchat.config import SamplingParams, load_settings
from mixchat.errors import ConfigError, ModelLoadError
from test_prompt import mistral_common_encoding

GREEDY = SamplingParams(temperature=0, max_tokens=24, seed=1)
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  two  spaces\n\nand lines "},
    ],
    [
        {"role": "user", "content": "Bonjour, ça va ?"},
        {"role": "assistant", "content": "Oui 🙂"},
        {"role": "user", "content": "中文  </s> [INST]"},
    ],
]


def loaded(**settings: object) -> LlamaCppBackend:
    backend = LlamaCppBackend(load_settings(**settings))
    asyncio.run(backend.load())  # once per module: tests share the model, as sessions do
    return backend


@pytest.fixture(scope="module")
def embedded(embedded_gguf: Path) -> LlamaCppBackend:
    return loaded(n_ctx=2048)


@pytest.fixture(scope="module")
def mixtral(tiny_mixtral_gguf: Path) -> LlamaCppBackend:
    return loaded(model=str(tiny_mixtral_gguf), n_ctx=1024)


def record_evaluated(backend: LlamaCppBackend) -> list[list[int]]:
    """Wrap the model's eval to see every batch of token ids llama.cpp evaluates."""
    batches: list[list[int]] = []
    original = backend._llm.eval

    def eval_and_record(tokens):  # type: ignore[no-untyped-def]
        batches.append(list(tokens))
        return original(tokens)

    backend._llm.eval = eval_and_record
    return batches


async def events_of(backend: LlamaCppBackend, request: ChatRequest) -> list:
    return [event async for event in backend.stream(request)]


async def test_embedded_model_streams_a_reply(embedded: LlamaCppBackend) -> None:
    assert embedded.is_embedded and embedded.format_name == "transcript"
    assert "tiny" in embedded.description
    events = await events_of(
        embedded,
        ChatRequest([{"role": "user", "content": "What is the capital of France?"}], GREEDY),
    )
    deltas = [e for e in events if isinstance(e, TextDelta)]
    done = events[-1]
    assert len(deltas) >= 3 and "Paris" in "".join(d.text for d in deltas)
    assert isinstance(done, Done) and done.ok
    assert done.prompt_tokens == embedded.count_tokens(
        [{"role": "user", "content": "What is the capital of France?"}]
    )
    assert 1 <= done.completion_tokens <= GREEDY.max_tokens


async def test_mixtral_gguf_gets_mistral_commons_ids(mixtral: LlamaCppBackend) -> None:
    assert mixtral.format_name == "mixtral"
    for messages in CONVERSATIONS:
        ids = mistral_common_encoding(messages)[1]
        assert mixtral.prompt_tokens(messages) == ids
        mixtral._llm.reset()
        batches = record_evaluated(mixtral)
        reply = await mixtral.complete(
            ChatRequest(messages, SamplingParams(temperature=0, max_tokens=4))
        )
        assert reply.done.ok, reply.done.error
        evaluated = [token for batch in batches for token in batch]
        assert evaluated[: len(ids)] == ids  # exactly what llama.cpp saw: one BOS, no stray ▁


async def test_next_turn_reuses_the_kv_cache_of_the_shared_prefix(mixtral: LlamaCppBackend) -> None:
    first = [
        {"role": "user", "content": "Tell me about mixture of experts models in detail please."}
    ]
    reply = await mixtral.complete(ChatRequest(first, SamplingParams(temperature=0, max_tokens=8)))
    second = first + [
        {"role": "assistant", "content": reply.text or "ok"},
        {"role": "user", "content": "More."},
    ]
    batches = record_evaluated(mixtral)
    await mixtral.complete(ChatRequest(second, SamplingParams(temperature=0, max_tokens=2)))
    prompt = mixtral.prompt_tokens(second)
    prompt_batch = batches[0]
    assert len(prompt_batch) < len(prompt) - len(mixtral.prompt_tokens(first)) + 10
    assert prompt[-len(prompt_batch) :] == prompt_batch  # only the new suffix was evaluated


async def test_greedy_is_deterministic(mixtral: LlamaCppBackend) -> None:
    request = lambda: ChatRequest(CONVERSATIONS[1], GREEDY)  # noqa: E731
    first, second = await mixtral.complete(request()), await mixtral.complete(request())
    assert (
        first.text == second.text and first.done.completion_tokens == second.done.completion_tokens
    )


async def test_concurrent_requests_queue_and_each_gets_its_own_answer(
    mixtral: LlamaCppBackend,
) -> None:
    questions = [
        [{"role": "user", "content": q}] for q in ("first question", "second one", "third")
    ]
    alone = [(await mixtral.complete(ChatRequest(q, GREEDY))).text for q in questions]
    results = await asyncio.gather(*(events_of(mixtral, ChatRequest(q, GREEDY)) for q in questions))
    texts = ["".join(e.text for e in events if isinstance(e, TextDelta)) for events in results]
    assert texts == alone  # nothing interleaved or mixed between sessions
    assert any(isinstance(e, Queued) for events in results[1:] for e in events)
    assert all(events[-1].ok for events in results)


async def test_stop_ends_generation_early_and_frees_the_model(mixtral: LlamaCppBackend) -> None:
    request = ChatRequest(
        [{"role": "user", "content": "Go on forever."}],
        SamplingParams(temperature=1.0, max_tokens=900, seed=3),
    )
    deltas = 0
    async for event in mixtral.stream(request):
        if isinstance(event, TextDelta):
            deltas += 1
            if deltas == 3:
                request.cancel.cancel()
        elif isinstance(event, Done):
            done = event
    assert done.outcome == "cancelled" and done.completion_tokens < 50
    follow_up = await asyncio.wait_for(mixtral.complete(ChatRequest(CONVERSATIONS[0], GREEDY)), 30)
    assert follow_up.done.ok


async def test_the_event_loop_keeps_running_during_generation(embedded: LlamaCppBackend) -> None:
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    beat = asyncio.create_task(heartbeat())
    reply = await embedded.complete(
        ChatRequest(
            [{"role": "user", "content": "Count to twenty."}],
            SamplingParams(temperature=0, max_tokens=64),
        )
    )
    beat.cancel()
    assert reply.done.ok and ticks >= 0.5 * reply.done.duration / 0.005 * 0.2


async def test_json_schema_becomes_a_grammar(embedded: LlamaCppBackend) -> None:
    schema = {
        "type": "object",
        "properties": {
            "tool_name": {"enum": ["Calculator", "Search", "Final Answer"]},
            "input": {"type": "string"},
        },
        "required": ["tool_name", "input"],
    }
    reply = await embedded.complete(
        ChatRequest(
            [{"role": "user", "content": "What is 2+2? Answer in JSON."}],
            SamplingParams(temperature=0.7, max_tokens=200, seed=5),
            json_schema=schema,
        )
    )
    action = json.loads(reply.text)
    assert action["tool_name"] in ("Calculator", "Search", "Final Answer")
    assert isinstance(action["input"], str)


async def test_a_conversation_longer_than_the_context_is_a_clear_error(
    tiny_mixtral_gguf: Path,
) -> None:
    backend = LlamaCppBackend(load_settings(model=str(tiny_mixtral_gguf), n_ctx=256))
    done = (await backend.complete(ChatRequest([{"role": "user", "content": "word " * 400}]))).done
    assert done.error_type == "ContextOverflow" and "context of 256" in done.error


async def test_invalid_conversation_is_a_clear_error(mixtral: LlamaCppBackend) -> None:
    done = (await mixtral.complete(ChatRequest([{"role": "assistant", "content": "hi"}]))).done
    assert done.error_type == "ConfigError" and "user message was expected" in done.error


def test_unknown_chat_format_is_refused() -> None:
    with pytest.raises(ConfigError, match="chat_format='chatml'"):
        LlamaCppBackend(load_settings(chat_format="chatml"))


def test_model_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="GGUF file not found: .*missing.gguf"):
        resolve_gguf(str(tmp_path / "missing.gguf"), None, tmp_path)
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(ModelLoadError, match="is not a GGUF file"):
        resolve_gguf(str(text), None, tmp_path)
    with pytest.raises(ModelLoadError, match="name the GGUF file in it with --model-file"):
        resolve_gguf("TheBloke/Mixtral-8x7B-Instruct-v0.1-GGUF", None, tmp_path)
    with pytest.raises(ModelLoadError, match="no connection to the Hugging Face Hub.*cache"):
        resolve_gguf(
            "TheBloke/Mixtral-8x7B-Instruct-v0.1-GGUF:mixtral-8x7b-instruct-v0.1.Q4_0.gguf",
            None,
            tmp_path,
        )


async def test_a_corrupt_gguf_is_a_clear_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 40)
    done = (
        await LlamaCppBackend(load_settings(model=str(corrupt))).complete(
            ChatRequest(CONVERSATIONS[0])
        )
    ).done
    assert (
        done.error_type == "ModelLoadError"
        and "corrupt" in done.error
        and str(corrupt) in done.error
    )
