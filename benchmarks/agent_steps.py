"""5. Agent: time and prompt tokens evaluated per step, with and without prefix reuse.

Each step of :class:`mixchat.agent.Agent` sends the growing transcript (system message with the
tool descriptions, the question, every call and result so far) and gets one JSON tool call back,
constrained by a grammar. With reuse, llama.cpp evaluates only each step's new tail; without,
the context is reset before each step. Only the Calculator is offered (no network here).
"""

from __future__ import annotations

import time
from itertools import pairwise

from common import Config, Section, Stopwatch, median
from prefix import EvalRecorder

from mixchat.agent import Agent, AgentFinished, StepStarted
from mixchat.backends.llamacpp import LlamaCppBackend
from mixchat.config import AGENT_SAMPLING
from mixchat.tools import calculator_tool

#: The agent's sampling, made greedy with a fixed seed so that both variants take the same steps.
PARAMS = AGENT_SAMPLING.model_copy(update={"temperature": 0.0, "seed": 0})


async def one_run(
    backend: LlamaCppBackend, cfg: Config, query: str, reuse: bool
) -> list[dict[str, float]]:
    """The steps of one agent run: seconds each, and prompt tokens evaluated each."""
    recorder = EvalRecorder()
    agent = Agent(backend, tools=[calculator_tool()], max_steps=cfg.agent_steps, params=PARAMS)
    backend._llm.reset()
    starts: list[float] = []
    with recorder.watching(backend._llm, reset_each=not reuse):
        async for event in agent.run(query):
            if isinstance(event, (StepStarted, AgentFinished)):  # a step ends as the next starts
                starts.append(time.perf_counter())
    durations = [end - start for start, end in pairwise(starts)]
    return [
        {
            "seconds": seconds,
            "evaluated": completion.prompt_tokens,
            "prompt_seconds": completion.prompt_seconds,
        }
        for seconds, completion in zip(durations, recorder.completions)
    ]


async def run(cfg: Config, backend: LlamaCppBackend) -> Section:
    section = Section("Agent prefix reuse")
    clock = Stopwatch()
    steps: dict[str, list[dict[str, float]]] = {"reuse": [], "reset": []}
    per_query: dict[str, list[list[dict[str, float]]]] = {"reuse": [], "reset": []}
    for query in cfg.agent_queries:
        for name in ("reuse", "reset"):
            found = await one_run(backend, cfg, query, reuse=name == "reuse")
            steps[name] += found
            per_query[name].append(found)
    for name, found in steps.items():
        section.add(f"{name}: steps run", len(found), "steps")
        section.add(f"{name}: seconds per step (median)", median(s["seconds"] for s in found), "s")
        section.add(
            f"{name}: prompt tokens evaluated per step (median)",
            median(s["evaluated"] for s in found),
            "tokens",
        )
        section.add(
            f"{name}: prompt seconds per step (median)",
            median(s["prompt_seconds"] for s in found),
            "s",
        )
    later = {
        name: [s["evaluated"] for run in runs for s in run[1:]] for name, runs in per_query.items()
    }
    if later["reuse"] and later["reset"]:
        section.add(
            "steps 2+: prompt tokens evaluated, without / with reuse",
            sum(later["reset"]) / max(1, sum(later["reuse"])),
            "x",
        )
    section.notes.append(
        f"{len(cfg.agent_queries)} queries, up to {cfg.agent_steps} steps each; both variants "
        "get the same greedy calls (the agent's sampling with temperature 0, seed 0), so they "
        "differ only in what llama.cpp evaluates."
    )
    section.series = {
        name: [[s["evaluated"] for s in run] for run in runs] for name, runs in per_query.items()
    }
    section.seconds = clock()
    return section
