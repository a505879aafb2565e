"""The ``llamacpp`` backend: a GGUF model in this process through llama-cpp-python.

One ``Llama`` per process serves every session: requests wait in a first-come-first-served
queue (a llama.cpp context is not thread-safe) and run in a worker thread (the event loop never
blocks). Prompts go in as token ids, so Mixtral gets exactly mistral-common's ids (tokenizing
the prompt text would add a stray ``▁`` after ``<s>``), and consecutive turns re-use the KV
cache of the prefix they share (llama-cpp-python keeps it when the new prompt extends the old).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Event
from typing import Any, cast

from mixchat.backends.base import Backend, Capability, ChatRequest
from mixchat.backends.events import Queued, TextDelta, Usage
from mixchat.backends.gguf_files import EMBEDDED_MODEL, resolve_gguf
from mixchat.backends.queue import RequestQueue
from mixchat.backends.threads import relay_in_turn
from mixchat.config import Settings
from mixchat.errors import ConfigError, ContextOverflow, MissingDependency, ModelLoadError
from mixchat.messages import Message
from mixchat.outcome import Outcome
from mixchat.prompt import (
    TRANSCRIPT_STOP,
    gemma_prompt,
    mistral_v1_sentencepiece,
    mixtral_prompt,
    mixtral_token_ids,
    transcript_prompt,
)

log = logging.getLogger(__name__)

Tokens = list[int]
Formatter = Callable[[list[Message], str], Tokens]
CHAT_FORMATS = ("mixtral", "gemma", "template", "transcript")


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise MissingDependency("llama-cpp-python", purpose="the llamacpp backend") from None
    return llama_cpp


class LlamaCppBackend(Backend):
    name = "llamacpp"
    loads_model = True
    default_model = None  # the embedded demo model
    known_models = (EMBEDDED_MODEL, "PATH.gguf", "REPO:FILE.gguf")
    capabilities = frozenset(
        {Capability.JSON_SCHEMA, Capability.PREFIX_CACHE, Capability.TOKENIZER}
    )

    def __init__(self, settings: Settings) -> None:
        if settings.chat_format not in (None, *CHAT_FORMATS):
            raise ConfigError(
                f"invalid setting chat_format={settings.chat_format!r}: choose one of "
                f"{', '.join(CHAT_FORMATS)}, or leave it empty to detect"
            )
        super().__init__(settings)
        self._llm: Any = None
        self._format: Formatter | None = None
        self.format_name = ""
        self.path: Path | None = None
        self.queue = self._queue = RequestQueue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")

    @classmethod
    def instance_key(cls, settings: Settings) -> Hashable:
        return (
            cls.name,
            settings.model,
            settings.model_file,
            settings.n_ctx,
            settings.n_gpu_layers,
            settings.n_threads,
            settings.chat_format,
        )

    @property
    def is_embedded(self) -> bool:
        return not self.settings.model

    @property
    def model_name(self) -> str:
        if self.is_embedded:
            return EMBEDDED_MODEL
        return Path(self.settings.model or "").name or str(self.settings.model)

    @property
    def description(self) -> str:
        if self.is_embedded:
            return (
                "Gemma 3 270M, a tiny *base* model embedded for a quick demo "
                "(llama.cpp, on this machine)"
            )
        return f"{self.model_name} (llama.cpp, on this machine)"

    @property
    def context_length(self) -> int:
        return self._llm.n_ctx() if self._llm is not None else self.settings.n_ctx

    async def load_model(self) -> None:
        self.path = await asyncio.to_thread(
            resolve_gguf, self.settings.model, self.settings.model_file, self.settings.data_dir
        )
        self._llm = await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        self.format_name, self._format = _choose_format(self._llm, self.settings.chat_format)
        log.info(
            "loaded %s (%s prompt format, %d context)",
            self.path,
            self.format_name,
            self._llm.n_ctx(),
        )

    def _open(self) -> Any:
        llama_cpp = _import_llama_cpp()
        try:
            return llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=self.settings.n_ctx,
                n_threads=self.settings.n_threads or os.cpu_count() or 1,
                n_gpu_layers=self.settings.n_gpu_layers,
                seed=self.settings.seed
                if self.settings.seed is not None
                else llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(
                f"llama.cpp cannot load {self.path}: the file is corrupt, truncated, or of a model "
                f"architecture this llama.cpp does not know ({exc})"
            ) from None

    def prompt_tokens(self, messages: list[Message], assistant_prefix: str = "") -> Tokens:
        """The token ids the model evaluates for ``messages`` (needs the model loaded)."""
        if self._format is None:
            raise RuntimeError("the model is not loaded yet: await backend.load() first")
        try:
            return self._format(messages, assistant_prefix)
        except ValueError as exc:  # an invalid conversation
            raise ConfigError(str(exc)) from None

    def count_tokens(self, messages: list[Message]) -> int:
        if self._format is None:
            return super().count_tokens(messages)
        return len(self.prompt_tokens(messages))

    @property
    def prompt_format(self) -> str | None:
        return self.format_name if self._format is not None else None

    def prompt_ids(self, messages: list[Message], assistant_prefix: str = "") -> list[int] | None:
        return list(self.prompt_tokens(messages, assistant_prefix)) if self._format else None

    def prompt_text(self, messages: list[Message], assistant_prefix: str = "") -> str | None:
        ids = self.prompt_ids(messages, assistant_prefix)
        if ids is None:
            return None
        return bytes(self._llm.detokenize(ids, special=True)).decode(errors="replace")

    async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta | Queued | Usage]:
        tokens = self.prompt_tokens(request.messages, request.assistant_prefix)
        room = self.context_length - len(tokens)
        if room < 1:
            raise ContextOverflow(
                f"the conversation takes {len(tokens)} tokens, more than the model's context of "
                f"{self.context_length}: start a new chat, or raise --n-ctx"
            )
        produce = functools.partial(
            self._produce, tokens, request, min(room, request.params.max_tokens)
        )
        async with contextlib.aclosing(
            relay_in_turn(self._queue, produce, self._executor, request.user)
        ) as items:
            async for item in items:
                yield item

    def _produce(
        self, tokens: Tokens, request: ChatRequest, max_tokens: int, stop: Event
    ) -> Iterator[TextDelta | Usage]:
        """Runs in the worker thread: stream one completion, stop at once when asked."""
        params = request.params
        generated = 0

        def keep_going(_ids: Any, _logits: Any) -> bool:  # called once per sampled token
            nonlocal generated
            generated += 1
            return stop.is_set() or request.cancel.is_set()

        llama_cpp = _import_llama_cpp()
        chunks = self._llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            min_p=0.0,
            repeat_penalty=params.repetition_penalty,
            stop=list(params.stop) + self._stop_strings(),
            seed=params.seed,
            # key order kept: the grammar makes the model write keys in the schema's order
            grammar=_grammar(json.dumps(request.json_schema)) if request.json_schema else None,
            stopping_criteria=llama_cpp.StoppingCriteriaList([keep_going]),
            stream=True,
        )
        finish = None
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["text"]:
                    yield TextDelta(choice["text"])
                finish = choice.get("finish_reason") or finish
        finally:
            chunks.close()
        # The criterion also sees the one token sampled past max_tokens, which is dropped.
        yield Usage(
            prompt_tokens=len(tokens),
            completion_tokens=min(generated, max_tokens),
            outcome=Outcome.LENGTH if finish == "length" else Outcome.STOP,
        )

    def _stop_strings(self) -> list[str]:
        return {"gemma": ["<end_of_turn>"], "transcript": [TRANSCRIPT_STOP]}.get(
            self.format_name, []
        )

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, llm.close)
        self._executor.shutdown(wait=False)


@functools.lru_cache(maxsize=16)
def _grammar(schema_json: str) -> Any:
    """A llama.cpp grammar that admits only JSON valid against the schema (cached: slow to build)."""
    return _import_llama_cpp().LlamaGrammar.from_json_schema(schema_json, verbose=False)


def _choose_format(llm: Any, wanted: str | None) -> tuple[str, Formatter]:
    """The prompt format for this GGUF: the one asked for, or detected.

    Detected: Mistral's v1 vocabulary gets exact Mixtral ids; a GGUF with a chat template
    (instruction-tuned models) gets its template; anything else is taken for a base model
    and gets a plain transcript.
    """
    template = llm.metadata.get("tokenizer.chat_template")
    if wanted is None:
        wanted = "mixtral" if has_mixtral_vocab(llm) else "template" if template else "transcript"
    if wanted == "mixtral" and has_mixtral_vocab(llm):
        sp = mistral_v1_sentencepiece()
        return "mixtral", lambda messages, prefix: mixtral_token_ids(messages, prefix, sp)
    if wanted == "template":
        if not template:
            raise ConfigError("chat_format=template, but this GGUF has no chat template")
        return "template", _template_formatter(llm, template)
    render = {"mixtral": mixtral_prompt, "gemma": gemma_prompt, "transcript": transcript_prompt}
    return wanted, _text_formatter(llm, render[wanted], add_bos=wanted == "transcript")


def has_mixtral_vocab(llm: Any) -> bool:
    """Mistral's v1 sentencepiece vocabulary (Mixtral-8x7B, Mistral-7B v0.1/v0.2)."""
    return llm.n_vocab() == 32000 and llm.detokenize([733, 16289, 28793]) == b" [INST]"


def _text_formatter(llm: Any, render: Callable[..., str], add_bos: bool) -> Formatter:
    """Render text (special tokens written out, or none), then let llama.cpp tokenize it."""

    def tokens(messages: list[Message], prefix: str) -> Tokens:
        return llm.tokenize(render(messages, prefix).encode(), add_bos=add_bos, special=True)

    return tokens


def _template_formatter(llm: Any, template: str) -> Formatter:
    """The GGUF's own Jinja chat template, rendered as llama-cpp-python does."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    bos = llm.detokenize([llm.token_bos()], special=True).decode(errors="ignore")
    eos = llm.detokenize([llm.token_eos()], special=True).decode(errors="ignore")
    formatter = Jinja2ChatFormatter(template=template, bos_token=bos, eos_token=eos)

    def tokens(messages: list[Message], prefix: str) -> Tokens:
        # llama-cpp-python types messages as its own TypedDicts; ours have the same shape.
        text = formatter(messages=cast(Any, messages)).prompt + prefix
        return llm.tokenize(text.encode(), add_bos=not text.startswith(bos), special=True)

    return tokens
