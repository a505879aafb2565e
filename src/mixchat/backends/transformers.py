"""The ``transformers`` backend: a Hugging Face model id or local directory, run in-process.

``generate`` runs in a worker thread and its text reaches the event loop through a
``TextIteratorStreamer`` as each word is decoded. A stopping criterion polls the request's
cancel token and the reader's stop event, so the stop button ends generation at the next
token. The model is loaded once per process (the registry shares the instance) and serves
one request at a time; the others wait in a :class:`RequestQueue` and see their place.

Mixtral-family models with Mistral's v1 vocabulary get mistral-common's exact prompt ids
(:func:`mixtral_token_ids`): their Hugging Face tokenizer splits runs of spaces differently
from sentencepiece (``"  Hi"``: ``▁▁ Hi`` instead of ``▁ ▁Hi``). Other models go through
their chat template.

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
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixchat.backends.base import Backend, CancelToken, Capability, ChatRequest
from mixchat.backends.events import Queued, TextDelta, Usage
from mixchat.backends.queue import RequestQueue
from mixchat.backends.threads import iterate_in_thread
from mixchat.config import SamplingParams, Settings
from mixchat.errors import (
    BackendError,
    BadRequest,
    ConfigError,
    ContextOverflow,
    MissingDependency,
    ModelLoadError,
)
from mixchat.messages import Message
from mixchat.outcome import Outcome
from mixchat.prompt import mistral_v1_sentencepiece, mixtral_prompt, mixtral_token_ids, split_system

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

PromptIds = Callable[[Sequence[Message], str], list[int]]


class TransformersBackend(Backend):
    name = "transformers"
    capabilities = frozenset({Capability.TOKENIZER})
    default_model = "mistralai/Mixtral-8x7B-Instruct-v0.1"
    known_models = (
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        "mistralai/Mistral-7B-Instruct-v0.2",
    )

    def __init__(self, settings: Settings) -> None:
        _require_libraries()
        super().__init__(settings)
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._prompt_ids: PromptIds | None = None
        self._queue = RequestQueue()
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
        async with aclosing(self._queue.wait_turn()) as turns:
            async for position in turns:
                yield Queued(position)
        try:
            produce = functools.partial(self._produce, ids, request.params, max_new, request.cancel)
            # aclosing: on an early exit the worker is stopped and awaited now, not at GC time
            async with aclosing(iterate_in_thread(produce, self._executor)) as items:
                async for item in items:
                    yield item
        finally:
            self._queue.release()

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
        job = _GenerateJob(model, kwargs, streamer, params.seed)
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
            raise _generation_error(job.error)
        if tail := text.flush():
            yield TextDelta(tail)
        yield job.usage(
            len(ids), max_new, stopped_by_text=text.stopped, eos_ids=_eos_ids(model, tokenizer)
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


# -- loading -------------------------------------------------------------------------------


def _require_libraries() -> None:
    """Fail at once, with the extra to install, when torch or transformers is missing."""
    for package in ("transformers", "torch"):
        if importlib.util.find_spec(package) is None:
            raise MissingDependency(
                package, extra="transformers", purpose="the transformers backend"
            )


def _has_bitsandbytes() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def load_model(settings: Settings, model_id: str) -> tuple[Any, Any, list[str]]:
    """Load the tokenizer and model (blocking); return them and notes for the user."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = model_source(model_id)
    quantization = quantization_config(settings.quantization)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=settings.trust_remote_code
        )
        model = AutoModelForCausalLM.from_pretrained(
            source,
            device_map=None if settings.device_map.lower() in ("", "none") else settings.device_map,
            dtype=settings.dtype if settings.dtype == "auto" else getattr(torch, settings.dtype),
            quantization_config=quantization,
            trust_remote_code=settings.trust_remote_code,
        )
    except (OSError, ValueError, ImportError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(
            f"cannot load {model_id!r} with transformers: {_first_line(exc)}"
        ) from exc
    model.eval()
    notes = [] if quantization is None else quantization_notes(model, settings.quantization)
    return model, tokenizer, notes


def model_source(model_id: str) -> str:
    """The directory or Hub id to load. A path must be a saved model: otherwise transformers
    would ask the Hub for it and fail with a less helpful message."""
    path = Path(model_id).expanduser()
    looks_local = (
        model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id
    )
    if looks_local and not path.is_dir():
        raise ModelLoadError(
            f"model directory {model_id} does not exist: give a directory saved with "
            "save_pretrained, or a Hugging Face model id such as "
            f"{TransformersBackend.default_model}"
        )
    if path.is_dir() and not (path / "config.json").is_file():
        raise ModelLoadError(
            f"{model_id} has no config.json, so it is not a model saved with save_pretrained "
            "(for a GGUF file, use the llamacpp backend)"
        )
    return str(path) if path.is_dir() else model_id


def quantization_config(kind: str) -> Any:
    """A ``BitsAndBytesConfig`` for 4bit/8bit, or None; a clear error where it cannot apply."""
    if kind == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if not torch.cuda.is_available():
        raise ConfigError(
            f"quantization={kind} needs a CUDA GPU (bitsandbytes) and none was found: set "
            "quantization=none, or use the llamacpp backend with a quantized GGUF on this machine"
        )
    if not _has_bitsandbytes():
        raise MissingDependency("bitsandbytes", extra="quantization", purpose=f"{kind} loading")
    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
    )


def quantization_notes(model: Any, kind: str) -> list[str]:
    """Say so when bitsandbytes left most weights unquantized (fused expert tensors).

    bitsandbytes quantizes ``nn.Linear`` layers only; transformers 5 stores a Mixtral layer's
    experts as fused 3-D parameters (``mlp.experts.gate_up_proj``), which it leaves at full size.
    """
    skipped = {
        id(p)
        for m in (model.get_input_embeddings(), model.get_output_embeddings())
        if m is not None
        for p in m.parameters()
    }
    total = full = 0
    example = ""
    for name, param in model.named_parameters():
        if id(param) in skipped or param.dim() < 2:
            continue
        total += param.numel()
        if param.is_floating_point():
            full += param.numel()
            example = example or (name if param.dim() > 2 else "")
    if not total or full / total < 0.1:
        return []
    where = f" (fused expert weights such as {example})" if example else ""
    size = model.get_memory_footprint() / 2**30
    return [
        (
            f"{kind} quantization applied to {1 - full / total:.0%} of the weights only: "
            f"bitsandbytes cannot quantize the rest{where}, which stay in {model.dtype} "
            f"(about {size:.1f} GiB in all)"
        )
    ]


# -- prompts -------------------------------------------------------------------------------


def choose_prompt_ids(tokenizer: Any, config: Any, model_id: str) -> PromptIds:
    """How this model's conversations become input ids."""
    if has_mistral_v1_vocab(tokenizer):
        return lambda messages, prefix: mixtral_token_ids(messages, prefix)
    if tokenizer.chat_template:
        return functools.partial(_template_ids, tokenizer)
    if getattr(config, "model_type", "") in ("mixtral", "mistral"):
        return functools.partial(_text_ids, tokenizer)
    raise ConfigError(
        f"{model_id} has no chat template and is not a Mixtral or Mistral model, so mixchat "
        "cannot format a conversation for it: choose an instruction-tuned model"
    )


def has_mistral_v1_vocab(tokenizer: Any) -> bool:
    """True when the tokenizer's vocabulary is Mistral's v1 sentencepiece one, id for id."""
    sp = mistral_v1_sentencepiece()
    vocab = tokenizer.get_vocab()
    size = sp.get_piece_size()
    if len(vocab) != size:
        return False
    return all(vocab.get(sp.id_to_piece(i)) == i for i in range(size))


def _template_ids(tokenizer: Any, messages: Sequence[Message], prefix: str) -> list[int]:
    import jinja2

    split_system(messages)  # the same clear errors as the other formats
    try:
        text = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )
    except jinja2.TemplateError as exc:  # e.g. "roles must alternate", "no system role"
        raise ValueError(f"the model's chat template rejected the conversation: {exc}") from exc
    return tokenizer(text + prefix, add_special_tokens=False)["input_ids"]


def _text_ids(tokenizer: Any, messages: Sequence[Message], prefix: str) -> list[int]:
    return tokenizer(mixtral_prompt(messages, prefix), add_special_tokens=False)["input_ids"]


# -- generation ----------------------------------------------------------------------------


def generation_kwargs(params: SamplingParams, max_new: int, tokenizer: Any) -> dict[str, Any]:
    """``generate`` arguments for these sampling parameters (temperature 0: greedy)."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_new}
    if params.temperature == 0:
        kwargs["do_sample"] = False
    else:
        kwargs.update(
            do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k
        )  # top_k 0: no top-k filter
    if params.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = params.repetition_penalty
    if params.stop:
        kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        kwargs["pad_token_id"] = pad
    return kwargs


@functools.cache
def _flag_criterion_class() -> type:
    import torch
    from transformers import StoppingCriteria

    class FlagCriterion(StoppingCriteria):
        """Ends generation once any flag is up: checked after every token."""

        def __init__(self, flags: tuple[Callable[[], bool], ...]) -> None:
            self.flags = flags

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = any(flag() for flag in self.flags)
            return torch.full(
                (input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device
            )

    return FlagCriterion


def flag_criterion(*flags: Callable[[], bool]) -> Any:
    """A ``StoppingCriteria`` that stops when any of ``flags()`` is true."""
    return _flag_criterion_class()(flags)


class _GenerateJob(threading.Thread):
    """``model.generate`` in its own thread; keeps the output or the error for the reader."""

    def __init__(self, model: Any, kwargs: dict[str, Any], streamer: Any, seed: int | None) -> None:
        super().__init__(name="mixchat-generate", daemon=True)
        self.model, self.kwargs, self.streamer, self.seed = model, kwargs, streamer, seed
        self.output: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        import torch

        try:
            if self.seed is not None:
                torch.manual_seed(self.seed)  # requests run one at a time, so this is per request
            with torch.inference_mode():
                self.output = self.model.generate(**self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - raised again in the reading thread
            self.error = exc
            self.streamer.end()  # wake the reader, which would otherwise wait forever

    def usage(
        self, prompt_tokens: int, max_new: int, *, stopped_by_text: bool, eos_ids: set[int]
    ) -> Usage:
        new = self.output[0, prompt_tokens:].tolist() if self.output is not None else []
        outcome = Outcome.STOP
        if len(new) >= max_new and not stopped_by_text and (not new or new[-1] not in eos_ids):
            outcome = Outcome.LENGTH
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=len(new), outcome=outcome)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found


def _generation_error(exc: BaseException) -> BackendError:
    if "out of memory" in str(exc).lower():
        return BackendError(f"the model ran out of memory while generating: {_first_line(exc)}")
    return BackendError(f"generation failed: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class StopText:
    """Cuts the reply at the first stop string, holding back text that may begin one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [stop for stop in stops if stop]
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of the reply so far that is safe to show."""
        if self.stopped:
            return ""
        self.pending += text
        found = [i for i in (self.pending.find(stop) for stop in self.stops) if i >= 0]
        if found:
            self.stopped = True
            shown, self.pending = self.pending[: min(found)], ""
            return shown
        keep = max(
            (
                k
                for stop in self.stops
                for k in range(1, len(stop))
                if self.pending.endswith(stop[:k])
            ),
            default=0,
        )
        split = len(self.pending) - keep
        shown, self.pending = self.pending[:split], self.pending[split:]
        return shown

    def flush(self) -> str:
        shown, self.pending = ("" if self.stopped else self.pending), ""
        return shown
