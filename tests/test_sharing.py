"""Sharing one model fairly: users take turns in the queue, per-user limits say what stops a
request and when it frees up, and tokens are recorded per user and model."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from mixchat import backends
from mixchat.accounting import Accounting
from mixchat.backends import Backend, ChatRequest, TextDelta, Usage
from mixchat.backends.queue import RequestQueue
from mixchat.config import Settings, load_settings
from mixchat.config.limits import UserLimits
from mixchat.errors import LimitReached
from mixchat.store import ConversationStore
from mixchat.ui.chat import ChatController
from mixchat.ui.sidebar import SettingsPanel
from mixchat.ui.storage import StoreGateway, close_stores


class SlowSerialBackend(Backend):
    """A scripted model that serves one request at a time, slowly, behind the fair queue."""

    name = "slow-serial"

    def __init__(self, settings: Settings, seconds: float = 0.05) -> None:
        super().__init__(settings)
        self.queue = self._queue = RequestQueue()
        self.seconds = seconds
        self.started: list[str] = []  # the first message of each request, when it got the model

    async def generate(self, request: ChatRequest) -> AsyncIterator[TextDelta | Usage]:
        async with self._queue.slot(request.user):
            self.started.append(request.messages[-1]["content"])
            await asyncio.sleep(self.seconds)
            yield TextDelta(request.messages[-1]["content"])
            yield Usage(prompt_tokens=7, completion_tokens=3, finish_reason="stop")


def _request(user: str, text: str) -> ChatRequest:
    return ChatRequest([{"role": "user", "content": text}], user=user)


async def test_users_take_turns_so_one_users_burst_waits_for_the_others() -> None:
    backend = SlowSerialBackend(Settings(backend="echo"))
    burst = [asyncio.ensure_future(backend.complete(_request("A", f"A{i}"))) for i in range(4)]
    await asyncio.sleep(0.01)  # A's first request holds the model, three more wait
    late = asyncio.ensure_future(backend.complete(_request("B", "B0")))
    await asyncio.gather(*burst, late)
    started = backend.started
    assert started.index("B0") <= 1, started  # after at most one of A's requests
    assert [name for name in started if name.startswith("A")] == ["A0", "A1", "A2", "A3"]


async def test_three_users_are_served_round_robin_first_come_first_served_within_each() -> None:
    backend = SlowSerialBackend(Settings(backend="echo"), seconds=0.02)
    jobs = [backend.complete(_request("A", "A-first"))]
    jobs += [backend.complete(_request(user, f"{user}{i}")) for user in "ABC" for i in range(3)]
    await asyncio.gather(*jobs)
    assert backend.started == [
        "A-first",
        "B0",
        "C0",
        "A0",
        "B1",
        "C1",
        "A1",
        "B2",
        "C2",
        "A2",
    ]


async def test_waiters_see_their_place_in_the_fair_order() -> None:
    queue = RequestQueue()
    async with queue.slot("A"):
        first_positions: dict[str, list[int]] = {}

        async def wait(user: str, name: str) -> None:
            first_positions[name] = []
            async for position in queue.wait_turn(user):
                first_positions[name].append(position)
                break

        for user, name in (("A", "a2"), ("A", "a3"), ("B", "b1")):
            await wait(user, name)
        # a2 then a3 came first, but b1 goes next: B has not been served yet
        assert queue.waiting_by_user() == {"A": 2, "B": 1}
        assert queue._position(queue._lines["B"][0]) == 1
        assert queue._position(queue._lines["A"][0]) == 2
        assert queue._position(queue._lines["A"][1]) == 3
        assert queue.running == "A"


# -- limits ---------------------------------------------------------------------------------


async def test_over_the_in_flight_limit_says_so_and_the_next_request_works() -> None:
    accounting = Accounting(UserLimits(requests_in_flight=1))
    async with accounting.admit("alice", "team"):
        with pytest.raises(LimitReached) as raised:
            async with accounting.admit("alice", "team"):
                pass
        assert raised.value.limit == "requests_in_flight"
        assert "requests_in_flight = 1" in str(raised.value) and "when one of them" in str(
            raised.value
        )
        async with accounting.admit("bob", "team"):  # other users are not held up
            pass
    async with accounting.admit("alice", "team"):  # freed
        pass


async def test_over_the_daily_tokens_says_when_it_frees_and_the_next_day_works(
    tmp_path: Path,
) -> None:
    now = [datetime(2026, 5, 4, 21, 30, tzinfo=timezone.utc)]
    store = ConversationStore(f"sqlite:///{tmp_path / 'usage.db'}")
    accounting = Accounting(UserLimits(tokens_per_day=15), lambda: store, clock=lambda: now[0])
    async with accounting.admit("alice", "team") as ticket:
        ticket.used(7, 3)
    async with accounting.admit("alice", "team") as ticket:
        ticket.used(7, 3)
    with pytest.raises(LimitReached) as raised:
        async with accounting.admit("alice", "team"):
            pass
    message = str(raised.value)
    assert raised.value.limit == "tokens_per_day" and "20 of your 15 tokens" in message
    assert "00:00 UTC, in 2 h 30 min" in message
    assert raised.value.frees_at == datetime(2026, 5, 5, tzinfo=timezone.utc)
    now[0] += timedelta(hours=3)  # the next day: the next request works
    async with accounting.admit("alice", "team"):
        pass
    store.close()


async def test_the_max_tokens_cap_is_the_smaller_of_the_entry_and_the_user_limit() -> None:
    from mixchat.config.catalog import Catalog

    settings = load_settings(models={"m": {"backend": "echo", "max_tokens_limit": 300}})
    entry = Catalog.from_settings(settings).entries["m"]
    async with Accounting(UserLimits(max_tokens=100)).admit("u", "m") as ticket:
        assert ticket.cap(entry, 4096) == 100
    async with Accounting(UserLimits()).admit("u", "m") as ticket:
        assert ticket.cap(entry, 4096) == 300 and ticket.cap(entry, 50) == 50


# -- through the chat, with the store -------------------------------------------------------


@pytest.fixture(autouse=True)
async def _fresh() -> AsyncIterator[None]:
    yield
    await backends.close_all()
    close_stores()


def _controller(settings: Settings, user: str, accounting: Accounting) -> ChatController:
    return ChatController(SettingsPanel(settings), StoreGateway(settings, user), accounting)


async def _say(chat: ChatController, text: str) -> None:
    await chat.send(text)


async def test_the_chat_records_usage_per_user_and_a_limit_is_a_clear_reply(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        backend="echo",
        echo_delay=0.0,
        data_dir=tmp_path,
        limits={"tokens_per_day": 30},
        models={"quick": {"backend": "echo", "name": "Quick"}},
    )
    store = ConversationStore(settings.database)
    accounting = Accounting(settings.limits, lambda: store)
    alice = _controller(settings, "alice", accounting)
    bob = _controller(settings, "bob", accounting)
    await _say(alice, "one two three four five six")
    await _say(bob, "hello")
    totals = {(t.owner, t.model): t for t in store.usage(None)}
    assert set(totals) == {("alice", "quick"), ("bob", "quick")}
    assert totals[("alice", "quick")].completion_tokens == 6
    assert totals[("alice", "quick")].prompt_tokens > 0
    while await accounting.tokens_today("alice") < 30:
        await _say(alice, "one two three four five six")
    await _say(alice, "over the limit?")
    refused = alice.history.turns[-1]
    assert refused.status == "error"
    shown = [entry for entry in alice.transcript.entries if entry.role == "assistant"][-1]
    assert "tokens_per_day" in shown.error and "00:00 UTC" in shown.error
    await _say(bob, "bob still works")  # one user's limit is theirs alone
    assert bob.history.turns[-1].content == "bob still works"
    store.close()


def test_mixchat_usage_prints_tokens_per_user_and_model(tmp_path: Path) -> None:
    store = ConversationStore(f"sqlite:///{tmp_path / 'mixchat.db'}")
    store.record_usage("alice", "team", 100, 20)
    store.record_usage("alice", "team", 50, 5)
    store.record_usage("bob", "quick", 9, 1)
    store.close()
    env = {**os.environ, "MIXCHAT_DATA_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "mixchat", "usage"], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["user", "model", "requests", "prompt", "reply", "total"]
    assert lines[1].split() == ["alice", "team", "2", "150", "25", "175"]
    assert lines[2].split() == ["bob", "quick", "1", "9", "1", "10"]
    only = subprocess.run(
        [sys.executable, "-m", "mixchat", "usage", "--user", "bob"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "alice" not in only.stdout and "bob" in only.stdout


async def test_the_api_uses_the_catalog_and_the_same_limits(tmp_path: Path) -> None:
    from mixchat.api.access import AccountingGate, ApiAccess
    from mixchat.api.schema import ApiError
    from mixchat.config.catalog import Catalog

    settings = load_settings(
        data_dir=tmp_path,
        limits={"tokens_per_day": 10, "max_tokens": 64},
        models={"quick": {"backend": "echo", "max_tokens_limit": 32}, "other": {"backend": "echo"}},
    )
    store = ConversationStore(settings.database)
    accounting = Accounting(settings.limits, lambda: store)
    access = ApiAccess(
        settings, gate=AccountingGate(accounting), catalog=Catalog.from_settings(settings)
    )
    assert list(access.models()) == ["quick", "other"]
    assert access.max_tokens_cap("quick") == 32 and access.max_tokens_cap("other") == 64
    await access.gate.admit("carol", "quick")
    assert accounting.in_flight["carol"] == 1
    await access.gate.record("carol", "quick", 8, 4)
    assert accounting.in_flight["carol"] == 0
    assert [(t.owner, t.model, t.total_tokens) for t in store.usage(None)] == [
        ("carol", "quick", 12)
    ]
    with pytest.raises(ApiError) as raised:
        await access.gate.admit("carol", "other")
    assert raised.value.status == 429 and "tokens_per_day" in raised.value.message
    await access.gate.admit("dave", "other")  # another user is not held up
    store.close()
