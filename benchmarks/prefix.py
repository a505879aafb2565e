"""Watching and disabling llama.cpp's prefix reuse on a loaded ``LlamaCppBackend``.

``EvalRecorder`` wraps ``Llama.eval`` to time and count what the model evaluates: the first
``eval`` of a completion is its prompt (only the part not already in the KV cache); the rest
are the generated tokens, one at a time. ``no_reuse`` resets the context before each
completion, as a server without prefix caching would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Completion:
    """What one ``create_completion`` evaluated."""

    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    generated_tokens: int = 0
    calls: int = 0


@dataclass
class EvalRecorder:
    completions: list[Completion] = field(default_factory=list)

    @contextmanager
    def watching(self, llm: Any, reset_each: bool = False) -> Iterator[EvalRecorder]:
        """Record every completion on ``llm``; with ``reset_each``, start each from scratch."""
        original_eval, original_complete = llm.eval, llm.create_completion

        def create_completion(*args: Any, **kwargs: Any) -> Any:
            if reset_each:
                llm.reset()
            self.completions.append(Completion())
            return original_complete(*args, **kwargs)

        def eval(tokens: Sequence[int]) -> None:
            current = self.completions[-1] if self.completions else Completion()
            started = time.perf_counter()
            original_eval(tokens)
            if current.calls == 0:
                current.prompt_tokens = len(tokens)
                current.prompt_seconds = time.perf_counter() - started
            else:
                current.generated_tokens += len(tokens)
            current.calls += 1

        llm.eval, llm.create_completion = eval, create_completion
        try:
            yield self
        finally:
            llm.eval, llm.create_completion = original_eval, original_complete
