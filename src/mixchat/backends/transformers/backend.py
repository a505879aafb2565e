"""The ``transformers`` backend: a Hugging Face model id or local directory, run in-process.

``generate`` runs in a worker thread and its text reaches the event loop through a
``TextIteratorStreamer`` as each word is decoded. A stopping criterion polls the request's
cancel token and the reader's stop event, so the stop button ends generation at the next
token. The model is loaded once per process (the registry shares the instance) and serves
one request at a time; the others wait in a :class:`RequestQueue` and see their place.

How prompts become ids is in :mod:`.prompts`, loading in :mod:`.loading`, ``generate`` in
:mod:`.generation`.

torch and transformers are imported only when the model loads (``pip install
'mixchat[transformers]'``), so ``import mixchat`` never imports torch.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncIterator, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import TYPE_CHECKING

from mixchat.backends.base import Backend, CancelToken, Capability, ChatRequest
from mixchat.backends.events import Queued, TextDelta, Usage
from mixchat.backends.queue import RequestQueue
from mixchat.backends.stop_text import StopText
from mixchat.backends.threads import relay_in_turn
from mixchat.backends.transformers.generation import (
    GenerateJob,
    eos_ids,
    flag_criterion,
    generation_error,
    generation_kwargs,
)
from mixchat.backends.transformers.loading import DEFAULT_MODEL, load_model, require_libraries
from mixchat.backends.transformers.prompts import PromptIds, choose_prompt_ids
from mixchat.config import SamplingParams, Settings
from mixchat.errors import BadRequest, ContextOverflow
from mixchat.messages import Message

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


class TransformersBackend(Backend):
    name = "transformers"
    loads_model = True
    capabilities = frozenset({Capability.TOKENIZER})
    default_model = DEFAULT_MODEL
    known_models = (
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "mistralai/Mistral-7B-Instruct-v0.2",
    )

    def __init__(self, settings: Settings) -> None:
        require_libraries()
        super().__init__(settings)
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._prompt_ids: PromptIds | None = None
        self.queue = self._queue = RequestQueue()
        self._executor: ThreadPoolExecutor | None = None
        #: One-line notes for the user about how the model was loaded (e.g. 4-bit limits).
        self.notices: list[str] = []

    @classmethod
    def instance_key(cls, settings: Settings) -> Hashable:
        return (
            cls.name,
            settings.model,
            settings.device_map,
            settings.dtype,
            settings.quantization,
            settings.trust_remote_code,
        )

    @property
    def context_length(self) -> int | None:
        return getattr(self._model.config, "max_position_embeddings", None) if self._model else None

    def count_tokens(self, messages: list[Message]) -> int:
        if self._prompt_ids is None:  # not loaded yet: the base class's estimate
            return super().count_tokens(messages)
        return len(self._prompt_ids(messages, ""))

    async def load_model(self) -> None:
        model_id, settings = self.model_name, self.settings
        log.info(
            "loading %s with transformers (device_map=%s, dtype=%s, quantization=%s)",
            model_id,
            settings.device_map,
            settings.dtype,
            settings.quantization,
        )
        start = time.perf_counter()
        model, tokenizer, self.notices = await asyncio.to_thread(load_model, settings, model_id)
        self._prompt_ids = choose_prompt_ids(tokenizer, model.config, model_id)
        self._model, self._tokenizer = model, tokenizer
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mixchat-transformers")
        for notice in self.notices:
            log.warning("%s", notice)
        log.info("loaded %s on %s in %.1f s", model_id, model.device, time.perf_counter() - start)

    async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta | Queued | Usage]:
        assert self._prompt_ids is not None
        try:
            ids = self._prompt_ids(request.messages, request.assistant_prefix)
        except ValueError as exc:  # a malformed conversation, or a template that rejects it
            raise BadRequest(str(exc)) from exc
        max_new = self._room_for_reply(len(ids), request.params.max_tokens)
        produce = functools.partial(self._produce, ids, request.params, max_new, request.cancel)
        async with aclosing(
            relay_in_turn(self._queue, produce, self._executor, request.user)
        ) as items:
            async for item in items:
                yield item

    def _room_for_reply(self, prompt_tokens: int, max_tokens: int) -> int:
        """New tokens allowed: ``max_tokens``, or less where the context ends first."""
        context = self.context_length
        if context is None:
            return max_tokens
        if prompt_tokens >= context:
            raise ContextOverflow(
                f"the conversation takes {prompt_tokens} tokens but {self.model_name} reads at "
                f"most {context}: start a new chat or shorten the messages"
            )
        return min(max_tokens, context - prompt_tokens)

    def _produce(
        self,
        ids: list[int],
        params: SamplingParams,
        max_new: int,
        cancel: CancelToken,
        stop: threading.Event,
    ) -> Iterator[TextDelta | Usage]:
        """Runs in the worker thread: start ``generate`` in its own thread, relay its text."""
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        model, tokenizer = self._model, self._tokenizer
        assert model is not None and tokenizer is not None
        left = threading.Event()  # we stop reading (closed early): generate must end too
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        input_ids = torch.tensor([ids], device=model.device)
        kwargs = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList(
                [flag_criterion(cancel.is_set, stop.is_set, left.is_set)]
            ),
            **generation_kwargs(params, max_new, tokenizer),
        }
        job = GenerateJob(model, kwargs, streamer, params.seed)
        job.start()
        text = StopText(params.stop)
        try:
            for chunk in streamer:
                if piece := text.feed(chunk):
                    yield TextDelta(piece)
                if text.stopped:  # a stop string: generate may not have seen it in its tokens
                    break
        finally:
            left.set()
            job.join()
        if job.error is not None:
            raise generation_error(job.error)
        if tail := text.flush():
            yield TextDelta(tail)
        yield job.usage(
            len(ids), max_new, stopped_by_text=text.stopped, eos_ids=eos_ids(model, tokenizer)
        )

    async def aclose(self) -> None:
        """Drop the model and free its memory (the GPU's too)."""
        self._model = self._tokenizer = self._prompt_ids = None
        self._loaded = False
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        gc.collect()
        if importlib.util.find_spec("torch") is not None:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
