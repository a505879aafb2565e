"""4. Multi-turn: prompt processing per turn of a 10-turn chat, with and without prefix reuse.

Each turn sends the whole conversation, as the web app does. With reuse (the backend as is)
llama.cpp evaluates only what the KV cache lacks: the last reply's tail and the new message.
Without, the context is reset before each turn and the whole conversation is evaluated again.
"""

from __future__ import annotations

from common import Config, Section, Stopwatch
from prefix import EvalRecorder

from mixchat.backends import ChatRequest, Done, TextDelta
from mixchat.backends.llamacpp import LlamaCppBackend

QUESTIONS = [
    "Hello! Who are you?",
    "What is the capital of France?",
    "Tell me about the Eiffel Tower.",
    "How tall is it?",
    "When was it built?",
    "Who designed it?",
    "What other buildings did he design?",
    "Is Paris a good place to visit in winter?",
    "What food should I try there?",
    "Thank you, goodbye!",
]


async def conversation(
    backend: LlamaCppBackend, cfg: Config, reuse: bool
) -> list[dict[str, float]]:
    """One conversation of ``cfg.turns`` turns; per turn, what the prompt cost."""
    recorder = EvalRecorder()
    messages: list[dict[str, str]] = []
    turns = []
    backend._llm.reset()  # both variants start from an empty cache
    with recorder.watching(backend._llm, reset_each=not reuse):
        for question in (QUESTIONS * 2)[: cfg.turns]:
            messages.append({"role": "user", "content": question})
            request = ChatRequest(list(messages), params=cfg.sampling(cfg.turn_tokens))
            text, done = "", None
            async for event in backend.stream(request):
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, Done):
                    done = event
            messages.append({"role": "assistant", "content": text.strip() or "..."})
            completion = recorder.completions[-1]
            turns.append(
                {
                    "prompt_seconds": completion.prompt_seconds,
                    "evaluated": completion.prompt_tokens,
                    "prompt_tokens": done.prompt_tokens if done else 0,
                }
            )
    return turns


async def run(cfg: Config, backend: LlamaCppBackend) -> Section:
    section = Section("Multi-turn prefix reuse")
    clock = Stopwatch()
    runs: dict[str, list[list[dict[str, float]]]] = {"reuse": [], "reset": []}
    for _ in range(max(1, cfg.repetitions - 1)):
        runs["reuse"].append(await conversation(backend, cfg, reuse=True))
        runs["reset"].append(await conversation(backend, cfg, reuse=False))
    per_turn = {
        name: [min(rep[i]["prompt_seconds"] for rep in reps) for i in range(cfg.turns)]
        for name, reps in runs.items()
    }
    last, second = cfg.turns - 1, 1
    for name, seconds in per_turn.items():
        evaluated = runs[name][0][last]["evaluated"]
        section.add(
            f"{name}: turn {cfg.turns} prompt time ({evaluated} tokens evaluated)",
            seconds[last] * 1000,
            "ms",
        )
        section.add(
            f"{name}: turn 2 prompt time ({runs[name][0][second]['evaluated']} tokens evaluated)",
            seconds[second] * 1000,
            "ms",
        )
    section.add(
        f"with reuse: turn {cfg.turns} / turn 2 prompt time",
        per_turn["reuse"][last] / per_turn["reuse"][second],
        "x",
        target=1.5,
    )
    section.add(
        f"without reuse: turn {cfg.turns} / turn 2 prompt time",
        per_turn["reset"][last] / per_turn["reset"][second],
        "x",
    )
    section.add(
        f"turn {cfg.turns}: prompt time without / with reuse",
        per_turn["reset"][last] / per_turn["reuse"][last],
        "x",
    )
    section.notes.append(
        f"{cfg.turn_tokens}-token greedy replies; prompt time is the first llama.cpp `eval` of "
        f"each completion (the prompt's uncached tokens), best of {len(runs['reuse'])} runs; "
        f"the whole prompt had {runs['reuse'][0][last]['prompt_tokens']} tokens at turn {cfg.turns}."
    )
    section.series = {
        "per_turn": per_turn,
        "evaluated": {name: [t["evaluated"] for t in reps[0]] for name, reps in runs.items()},
    }
    section.seconds = clock()
    return section
