"""``model.generate`` for one request: its arguments, a stopping criterion that polls flags
(cancel, the reader's stop), and the job that runs it in its own thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from mixchat.backends.events import Usage
from mixchat.backends.transformers.loading import first_line
from mixchat.config import SamplingParams
from mixchat.errors import BackendError
from mixchat.outcome import Outcome


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


class GenerateJob(threading.Thread):
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


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = model.generation_config.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(tokenizer.eos_token_id)
    return found


def generation_error(exc: BaseException) -> BackendError:
    if "out of memory" in str(exc).lower():
        return BackendError(f"the model ran out of memory while generating: {first_line(exc)}")
    return BackendError(f"generation failed: {first_line(exc)}")
