"""The one vocabulary every layer shares: how a reply ended, its stats, an agent step."""

from __future__ import annotations

import json

import pytest

from mixchat.agent import (
    AgentFinished,
    AnswerDelta,
    Step,
    StepError,
    StepLog,
    StepStarted,
    ToolCalled,
    ToolResult,
)
from mixchat.backends import Done
from mixchat.messages import Message
from mixchat.outcome import STATUSES, Outcome, Stats


@pytest.mark.parametrize(
    ("outcome", "status", "ok"),
    [
        (Outcome.STOP, "complete", True),
        (Outcome.LENGTH, "complete", True),
        (Outcome.STEP_LIMIT, "complete", True),
        (Outcome.CANCELLED, "stopped", False),
        (Outcome.ERROR, "error", False),
    ],
)
def test_each_outcome_says_the_stored_status_and_whether_it_is_usable(
    outcome: Outcome, status: str, ok: bool
) -> None:
    assert (outcome.status, outcome.ok) == (status, ok)
    assert outcome.status in STATUSES
    assert Outcome.from_status(outcome.status).status == outcome.status
    assert outcome == outcome.value and f"{outcome}" == outcome.value  # a str enum


def test_stats_round_trip_through_json_and_accept_strings() -> None:
    stats = Stats("length", 12, 40, 0.25, 2.0, 21.3, agent_steps=2)
    assert stats.outcome is Outcome.LENGTH
    again = Stats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again == stats
    assert Stats.from_dict({"completion_tokens": "many", "ok": 1}) == Stats(Outcome.STOP)


def test_done_is_the_stats_of_a_stream_with_its_exception() -> None:
    error = TimeoutError("slow")
    done = Done(Outcome.ERROR, error="slow", exception=error)
    assert isinstance(done, Stats) and done.error_type == "TimeoutError"
    assert "exception" not in done.to_dict()
    assert done == Done(Outcome.ERROR, error="slow")  # the exception is not part of equality
    with pytest.raises(TimeoutError):
        done.raise_for_error()


def test_a_step_log_folds_a_runs_events_into_steps() -> None:
    log = StepLog()
    events = [
        StepStarted(1),
        ToolCalled(1, "Calculator", "2+2"),
        ToolResult(1, "Calculator", "4", True, 0.01234),
        StepStarted(2),
        StepError(2, "not JSON", "hmm"),
        StepStarted(3),
        AnswerDelta("It is 4."),
        AgentFinished("It is 4.", 3, Outcome.STOP),
    ]
    changed = [log.apply(event) for event in events]
    assert [step.number if step else None for step in changed] == [1, 1, 1, 2, 2, 3, None, None]
    assert log.without_answer() == [
        Step(1, tool="Calculator", input="2+2", output="4", ok=True, duration=0.012),
        Step(2, error="not JSON", raw="hmm", ok=False),
    ]
    stored = [Step.from_dict(json.loads(json.dumps(step.to_dict()))) for step in log.steps]
    assert stored == log.steps


def test_a_step_is_two_turns_of_the_agents_conversation() -> None:
    step = Step(
        1, tool="Search", input="q", reply='{"tool_name": "Search"}', feedback="Tool Output: x"
    )
    assert step.to_messages() == [
        Message(role="assistant", content='{"tool_name": "Search"}'),
        Message(role="user", content="Tool Output: x"),
    ]
