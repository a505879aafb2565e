"""The transformers backend on a tiny random-weight Mixtral, on the CPU.

The model is built once per module (hidden size 64, 2 layers, 4 experts, Mixtral's real
tokenizer), so loading and generating take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from mixchat.backends import (
    CancelToken,
    Capability,
    ChatRequest,
    Done,
    Queued,
    TextDelta,
    Usage,
    close_all,
    get_backend,
)
from mixchat.backends.stop_text import StopText
from mixchat.backends.transformers import TransformersBackend, generation, loading, prompts
from mixchat.config import SamplingParams, load_settings
from mixchat.errors import ConfigError, MissingDependency, ModelLoadError
from mixchat.prompt import mistral_v1_sentencepiece
from tiny_mixtral_hf import build_tiny_mixtral

GREEDY = SamplingParams(temperature=0, max_tokens=40)
HI = [{"role": "user", "content": "hi"}]

CONVERSATIONS = [
    [{"role": "user", "content": "  Hi"}],
    [{"role": "user", "content": "two  spaces,   three, trailing "}],
    [{"role": "user", "content": "line one\nline two\n\n  indented"}],
    [{"role": "user", "content": "naïve café — 東京 🚀"}],
    [{"role": "system", "content": "Be  brief.\nAlways."}, {"role": "user", "content": " What?"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello  there"},
        {"role": "assistant", "content": "Hi!  How can I help?\n"},
        {"role": "user", "content": "[INST] is text here [/INST]"},
    ],
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mixtral(tmp_path_factory.mktemp("tiny-mixtral-hf"))


@pytest.fixture
async def backend(model_dir: Path) -> Any:
    instance = TransformersBackend(load_settings(backend="transformers", model=str(model_dir)))
    await instance.load()
    yield instance
    await instance.aclose()


class Recorder:
    """Wraps ``model.generate`` to see the ids that reach it and how many tokens it made."""

    def __init__(self, model: Any) -> None:
        self.original = model.generate
        self.inputs: list[list[int]] = []
        self.new_tokens: list[int] = []
        self.finished_at: list[float] = []
        model.generate = self

    def __call__(self, **kwargs: Any) -> Any:
        prompt = kwargs["input_ids"][0].tolist()
        self.inputs.append(prompt)
        output = self.original(**kwargs)
        self.finished_at.append(time.perf_counter())
        self.new_tokens.append(output.shape[1] - len(prompt))
        return output


async def collect(backend: Any, request: ChatRequest) -> tuple[list[Any], Done]:
    events = [event async for event in backend.stream(request)]
    assert isinstance(events[-1], Done)
    return events[:-1], events[-1]


def text_of(events: list[Any]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def mistral_common_ids(messages: list[dict[str, str]]) -> list[int]:
    kinds = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
    request = ChatCompletionRequest(
        messages=[kinds[m["role"]](content=m["content"]) for m in messages]
    )
    return MistralTokenizer.v1().encode_chat_completion(request).tokens


# -- streaming and stopping ----------------------------------------------------------------


async def test_streams_several_chunks_before_generation_ends(backend: Any) -> None:
    recorder = Recorder(backend._model)
    arrivals: list[float] = []
    events: list[Any] = []
    async for event in backend.stream(
        ChatRequest(HI, params=GREEDY.model_copy(update={"max_tokens": 100}))
    ):
        if isinstance(event, TextDelta):
            arrivals.append(time.perf_counter())
        events.append(event)
    done = events[-1]
    assert done.outcome == "length" and done.completion_tokens == 100
    assert done.prompt_tokens == len(mistral_common_ids(HI))
    # text arrived while generate was still running, not all at once after it returned
    generate_returned = recorder.finished_at[0]
    assert sum(arrival < generate_returned for arrival in arrivals) >= 5


async def test_cancel_after_first_chunk_stops_generation_promptly(backend: Any) -> None:
    recorder = Recorder(backend._model)
    request = ChatRequest(HI, params=SamplingParams(temperature=0, max_tokens=1500))
    cancelled_at = None
    async for event in backend.stream(request):
        if isinstance(event, TextDelta) and cancelled_at is None:
            cancelled_at = time.perf_counter()
            request.cancel.cancel()
        if isinstance(event, Done):
            done, ended = event, time.perf_counter()
    assert done.outcome == "cancelled"
    assert done.completion_tokens < 20
    assert ended - cancelled_at < 1.0
    assert recorder.new_tokens[0] < 30  # generate itself stopped, far before 1500
    assert not backend._queue.busy  # the model is free for the next request


async def test_leaving_the_stream_stops_generation_through_the_stop_event(backend: Any) -> None:
    recorder = Recorder(backend._model)
    stream = backend.generate(
        ChatRequest(HI, params=SamplingParams(temperature=0, max_tokens=1500))
    )
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # what Backend.stream does when the page closes
    assert recorder.new_tokens[0] < 30
    _, done = await collect(backend, ChatRequest(HI, params=GREEDY))
    assert done.outcome == "length"


def test_the_cancel_token_alone_stops_generate(backend: Any) -> None:
    """The criterion polls the token itself: no event loop needed to end generate."""
    recorder = Recorder(backend._model)
    cancel = CancelToken()
    ids = mistral_common_ids(HI)
    items = list(
        _cancel_after_first(
            backend._produce(ids, SamplingParams(temperature=0), 1500, cancel, threading.Event()),
            cancel,
        )
    )
    assert recorder.new_tokens[0] < 30
    assert isinstance(items[-1], Usage) and items[-1].completion_tokens == recorder.new_tokens[0]


def _cancel_after_first(items: Any, cancel: CancelToken) -> Any:
    for item in items:
        cancel.cancel()
        yield item


async def test_a_second_request_waits_in_the_queue(backend: Any) -> None:
    first = asyncio.ensure_future(collect(backend, ChatRequest(HI, params=GREEDY)))
    while not backend._queue.busy:  # let the first take the model
        await asyncio.sleep(0)
    second_events, second_done = await collect(backend, ChatRequest(HI, params=GREEDY))
    first_events, first_done = await first
    assert second_events[0] == Queued(1)
    assert first_done.ok and second_done.ok
    assert text_of(first_events) == text_of(second_events)


# -- prompts -------------------------------------------------------------------------------


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=range(len(CONVERSATIONS)))
async def test_prompt_ids_that_reach_generate_equal_mistral_common(
    backend: Any, messages: list[dict[str, str]]
) -> None:
    recorder = Recorder(backend._model)
    _, done = await collect(backend, ChatRequest(messages, params=SamplingParams(max_tokens=1)))
    assert done.ok, done.error
    expected = mistral_common_ids(messages)
    assert recorder.inputs == [expected]
    assert backend.count_tokens(messages) == len(expected)


async def test_an_assistant_prefix_continues_the_prompt(backend: Any) -> None:
    recorder = Recorder(backend._model)
    request = ChatRequest(HI, params=SamplingParams(max_tokens=1), assistant_prefix="Thought:  I")
    _, done = await collect(backend, request)
    assert done.ok
    sp = mistral_v1_sentencepiece()
    assert recorder.inputs == [mistral_common_ids(HI) + sp.encode("Thought:  I")]


def test_the_hf_tokenizer_alone_would_give_other_ids(model_dir: Path) -> None:
    """Why the backend feeds ids: the saved tokenizer splits runs of spaces its own way."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("  Hi", add_special_tokens=False)) == [
        "▁▁",
        "Hi",
    ]
    templated = tokenizer.apply_chat_template(
        CONVERSATIONS[0], tokenize=False, add_generation_prompt=True
    )
    assert tokenizer(templated, add_special_tokens=False)["input_ids"] != mistral_common_ids(
        CONVERSATIONS[0]
    )


def test_models_without_mistral_vocab_use_their_chat_template() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "</s>", "<user>", "<bot>", "hello", "there", "be", "kind"]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<s>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>")
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m.role }}> {{ m.content }} {% endfor %}<bot> "
    )
    config = type("Config", (), {"model_type": "llama"})()
    prompt_ids = prompts.choose_prompt_ids(tokenizer, config, "toy")
    assert prompt_ids([{"role": "user", "content": "hello there"}], "be") == [2, 4, 5, 3, 6]
    tokenizer.chat_template = "{{ raise_exception('System role not supported') }}"
    with pytest.raises(ValueError, match="chat template rejected the conversation: System role"):
        prompt_ids([{"role": "user", "content": "hello"}], "")
    tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="no chat template"):
        prompts.choose_prompt_ids(tokenizer, config, "toy")


async def test_a_malformed_conversation_is_a_clear_error(backend: Any) -> None:
    _, done = await collect(backend, ChatRequest([{"role": "assistant", "content": "hi"}]))
    assert done.outcome == "error" and done.error_type == "BadRequest"
    assert "user" in done.error


async def test_a_conversation_longer_than_the_context_is_refused(backend: Any) -> None:
    assert backend.context_length == 2048  # the config's max_position_embeddings
    long = [{"role": "user", "content": "word " * 2100}]
    _, done = await collect(backend, ChatRequest(long))
    assert done.error_type == "ContextOverflow" and "2048" in done.error


# -- sampling ------------------------------------------------------------------------------


async def test_greedy_output_is_deterministic(backend: Any) -> None:
    first, _ = await collect(backend, ChatRequest(HI, params=GREEDY))
    second, _ = await collect(backend, ChatRequest(HI, params=GREEDY))
    assert text_of(first) and text_of(first) == text_of(second)


async def test_a_seed_repeats_a_sampled_reply(backend: Any) -> None:
    def sampled(seed: int) -> ChatRequest:
        return ChatRequest(
            HI, params=SamplingParams(temperature=1.0, top_k=0, max_tokens=20, seed=seed)
        )

    one = text_of((await collect(backend, sampled(7)))[0])
    again = text_of((await collect(backend, sampled(7)))[0])
    other = text_of((await collect(backend, sampled(8)))[0])
    assert one == again != other


async def test_a_stop_string_ends_the_reply_before_it(backend: Any) -> None:
    full = text_of((await collect(backend, ChatRequest(HI, params=GREEDY)))[0])
    words = full.split(" ")
    stop = words[len(words) // 2]
    assert stop
    events, done = await collect(
        backend, ChatRequest(HI, params=GREEDY.model_copy(update={"stop": (stop,)}))
    )
    assert text_of(events) == full[: full.index(stop)]
    assert done.outcome == "stop" and done.completion_tokens < 40


def test_sampling_parameters_map_to_generate(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    greedy = generation.generation_kwargs(SamplingParams(temperature=0, top_k=40), 10, tokenizer)
    assert greedy == {"max_new_tokens": 10, "do_sample": False, "pad_token_id": 2}
    sampled = generation.generation_kwargs(
        SamplingParams(temperature=0.5, top_p=0.9, top_k=0, repetition_penalty=1.1, stop=("\n",)),
        7,
        tokenizer,
    )
    assert (
        sampled["do_sample"] is True and sampled["temperature"] == 0.5 and sampled["top_p"] == 0.9
    )
    assert sampled["top_k"] == 0  # transformers adds no top-k filter for 0
    assert sampled["repetition_penalty"] == 1.1
    assert sampled["stop_strings"] == ["\n"] and sampled["tokenizer"] is tokenizer


@pytest.mark.parametrize(
    ("chunks", "stops", "shown"),
    [
        (["Hello wor", "ld"], ["world"], "Hello "),
        (["a <", "/s", "> b"], ["</s>"], "a "),
        (["a <", "b"], ["</s>"], "a <b"),
        (["abc"], [], "abc"),
        (["x\n", "y"], ["\n", "y"], "x"),
    ],
)
def test_stop_text_cuts_at_the_first_stop_string(
    chunks: list[str], stops: list[str], shown: str
) -> None:
    cutter = StopText(stops)
    assert "".join(cutter.feed(chunk) for chunk in chunks) + cutter.flush() == shown


# -- loading and errors --------------------------------------------------------------------


def test_capabilities_and_defaults() -> None:
    assert Capability.TOKENIZER in TransformersBackend.capabilities
    assert Capability.PREFIX_CACHE not in TransformersBackend.capabilities
    assert TransformersBackend.default_model == "mistralai/Mixtral-8x7B-Instruct-v0.1"


async def test_a_missing_directory_is_a_model_load_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    backend = TransformersBackend(load_settings(backend="transformers", model=str(missing)))
    with pytest.raises(ModelLoadError, match="does not exist"):
        await backend.load()
    _, done = await collect(backend, ChatRequest(HI))
    assert done.error_type == "ModelLoadError" and str(missing) in done.error
    assert "\n" not in done.error


async def test_a_directory_that_is_not_a_saved_model_says_so(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    backend = TransformersBackend(load_settings(backend="transformers", model=str(tmp_path)))
    with pytest.raises(ModelLoadError, match="no config.json.*llamacpp backend"):
        await backend.load()


@pytest.mark.parametrize("kind", ["4bit", "8bit"])
async def test_bitsandbytes_on_a_cpu_says_what_to_do(model_dir: Path, kind: str) -> None:
    backend = TransformersBackend(
        load_settings(backend="transformers", model=str(model_dir), quantization=kind)
    )
    _, done = await collect(backend, ChatRequest(HI))
    assert done.error_type == "ConfigError"
    assert f"quantization={kind} needs a CUDA GPU" in done.error
    assert "quantization=none" in done.error and "\n" not in done.error


def test_4bit_without_bitsandbytes_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(loading, "_has_bitsandbytes", lambda: False)
    with pytest.raises(MissingDependency, match=r"mixchat\[quantization\]"):
        loading.quantization_config("4bit")


async def test_unquantized_fused_experts_are_reported(backend: Any) -> None:
    """transformers 5 fuses each layer's experts into 3-D tensors that bitsandbytes skips."""
    notes = loading.quantization_notes(backend._model, "4bit")
    assert len(notes) == 1
    assert "mlp.experts.gate_up_proj" in notes[0] and "float32" in notes[0]


def test_missing_transformers_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, model_dir: Path
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "transformers" else real(name, *a),
    )
    with pytest.raises(MissingDependency, match=r"pip install 'mixchat\[transformers\]'"):
        TransformersBackend(load_settings(backend="transformers", model=str(model_dir)))


def test_importing_mixchat_and_the_backend_does_not_import_torch() -> None:
    code = (
        "import sys, mixchat, mixchat.backends, mixchat.backends.transformers; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_shared_instance_streams_through_get_backend(model_dir: Path) -> None:
    """What `mixchat ask --backend transformers --model DIR "hi"` does."""
    settings = load_settings(backend="transformers", model=str(model_dir))
    try:
        backend = get_backend(settings)
        assert get_backend(settings) is backend
        events, done = await collect(backend, ChatRequest(HI, params=GREEDY))
        assert backend.loaded and done.ok and text_of(events)
    finally:
        await close_all()
