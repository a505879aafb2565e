"""A hostile web user against a team server: the operator's keys and files stay out of reach.

A local "operator" server (the team's model, behind a key) and a local trap server run beside
``mixchat serve``. The user tries every choice the page offers, types foreign URLs and server
file paths into every field, and then rewrites every value of the page's Bokeh models
directly (what a user with the browser's console, or their own websocket client, can do).
The server records every file it opens (a Python audit hook, loaded by ``sitecustomize``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from browser_fixtures import Server, Session, chromium, open_session, running_server
from fault_server import FaultServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

TEAM_KEY = "sk-team-key-0123456789"
ENV_OPENAI_KEY = "sk-env-openai-key-9876"
ENV_MISTRAL_KEY = "sk-env-mistral-key-5555"
KEYS = (TEAM_KEY, ENV_OPENAI_KEY, ENV_MISTRAL_KEY)
OPERATOR_REPLY = "Hello from the fault server."

AUDIT = """
import os, sys
_log = open(os.environ["MIXCHAT_TEST_OPEN_LOG"], "a", buffering=1)
def _hook(event, args):
    if event in ("open", "os.listdir", "os.scandir", "os.chdir") and args:
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            _log.write(os.fsdecode(path) + "\\n")
sys.addaudithook(_hook)
"""

CONFIG = """
allow_user_endpoints = {allow}

[models.team]
name = "Team model"
description = "the operator's GPU server"
backend = "openai"
base_url = "{operator}/v1"
model = "fault-model"
api_key_env = "TEAM_KEY"

[models.local]
name = "Local echo"
backend = "echo"
"""

# Everything a session could send is the same value as far as the server is concerned: a
# string. These are the strings an attacker would try.
HOSTILE_PATHS = ("{sentinel}/secret.gguf", "{sentinel}", "/etc/passwd", "~/.ssh/id_rsa")
HOSTILE_URLS = ("{trap}/v1", "{trap}", "http://localhost:{trap_port}/v1")
HOSTILE_REPOS = ("TheBloke/Mixtral-8x7B-Instruct-v0.1-GGUF:mixtral-8x7b.Q4_K_M.gguf",)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _sitecustomize(tmp_path: Path) -> Path:
    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(AUDIT)
    return folder


def _type_everywhere(session: Session, value: str) -> int:
    """Fill every text field on the page with ``value`` and commit it (Enter); returns how many."""
    page = session.page
    fields = page.locator(
        "input[type=text]:visible, input[type=password]:visible, input:not([type]):visible, "
        "input[type=search]:visible, "  # the conversation list's search box
        "textarea:visible:not([placeholder^='Message the model'])"
    )
    count = fields.count()
    for index in range(count):
        field = fields.nth(index)
        try:
            field.fill(value, timeout=2000)
            field.press("Enter", timeout=2000)
        except Exception:  # a field that went away (the page re-rendered): try the others
            continue
    page.wait_for_timeout(200)
    return count


_REWRITE_BOKEH = """value => {
  let changed = 0;
  for (const doc of window.Bokeh.documents) {
    for (const model of doc._all_models.values()) {
      // query: the list's search; model, preset: the Model section's choices
      for (const name of ["value", "value_input", "query", "model", "preset"]) {
        try {
          const old = model[name];
          if (name in model.properties && (typeof old === "string" || old == null)) {
            model[name] = value;
            changed++;
          }
        } catch (e) {}  // unset or read-only
      }
    }
  }
  return changed;
}"""


def _send_and_wait(session: Session, text: str, count: int) -> str:
    session.send(text)
    return session.wait_for_replies(count, timeout=60)[-1]


@pytest.mark.parametrize("allow", ["false", "true"], ids=["catalog-only", "user-endpoints"])
def test_a_hostile_user_reaches_no_operator_key_and_no_server_file(
    browser: Browser, tmp_path: Path, allow: str
) -> None:
    """With user endpoints allowed too: the trap's loopback URL typed as "your endpoint" is
    refused by the address guard before any connection, and no server key goes with it."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    open_log = tmp_path / "opened.log"
    open_log.touch()
    with FaultServer() as operator, FaultServer() as trap:
        config = CONFIG.format(operator=operator.url, allow=allow)
        env = {
            "TEAM_KEY": TEAM_KEY,
            "OPENAI_API_KEY": ENV_OPENAI_KEY,
            "MISTRAL_API_KEY": ENV_MISTRAL_KEY,
            "OPENAI_BASE_URL": f"{trap.url}/v1",
            "PYTHONPATH": str(_sitecustomize(tmp_path)),
            "MIXCHAT_TEST_OPEN_LOG": str(open_log),
        }
        with running_server(tmp_path, config=config, env=env, timeout=240) as server:
            opened_before = len(open_log.read_text().splitlines())
            _attack(browser, server, sentinel, trap, operator, allow)
            server_log = server.log.read_text()
        opened = open_log.read_text().splitlines()[opened_before:]

    # the trap got nothing at all, so certainly no key
    assert trap.requests == []
    # the operator's server got only its own entry's key
    assert operator.requests, "the operator's model was never asked"
    assert {r.headers.get("authorization") for r in operator.requests} == {f"Bearer {TEAM_KEY}"}
    # no file the catalog does not name was opened after start-up (the hook does see opens)
    assert any(path.endswith(".js") or "mixchat.db" in path for path in opened)
    touched = [
        path
        for path in opened
        if str(sentinel) in path or path.startswith("/etc/passwd") or ".ssh" in path
    ]
    assert touched == []
    # no key in the server's log
    assert not any(key in server_log for key in KEYS)


def _attack(
    browser: Browser,
    server: Server,
    sentinel: Path,
    trap: FaultServer,
    operator: FaultServer,
    allow: str,
) -> None:
    session = open_session(browser, server.url)
    page = session.page
    values = [
        template.format(sentinel=sentinel, trap=trap.url, trap_port=trap.port)
        for template in (*HOSTILE_PATHS, *HOSTILE_URLS, *HOSTILE_REPOS)
    ]
    # open every collapsed card, so that every field is on the page
    for title in ("Generation", "Agent", "Import a conversation"):
        page.get_by_text(title, exact=True).first.click()
    page.wait_for_timeout(300)
    replies = 0
    selects = page.locator("select:visible")
    for index in range(selects.count()):
        options = selects.nth(index).locator("option")
        labels = [options.nth(i).inner_text() for i in range(options.count())]
        for label in labels:
            selects.nth(index).select_option(label=label)
            page.wait_for_timeout(150)
            for value in values[:: 2 if label != labels[0] else 1]:
                assert _type_everywhere(session, value) >= 2
            replies += 1
            text = f"try {label} {values[replies % len(values)]}"
            reply = _send_and_wait(session, text, replies)
            footer = session.texts("mixchat-stats")[-1]
            if "failed" in footer:  # only "your endpoint" fails: the URL typed is refused
                assert allow == "true" and "public" in footer, footer
            else:
                assert reply in (OPERATOR_REPLY, text), reply
    # the browser's console: rewrite every value of every model on the page
    for value in values:
        changed = page.evaluate(_REWRITE_BOKEH, value)
        assert changed > 5
        page.wait_for_timeout(150)
    page.wait_for_timeout(500)
    # the page still works, on a catalog model, and the operator's model still answers
    page.goto(server.url)  # a new chat (a reload would reopen the conversation above)
    page.get_by_placeholder("Message the model").wait_for()
    page.locator("select").first.select_option(label="Team model")
    page.wait_for_timeout(300)
    session.send("is the team model still there?")
    assert session.wait_for_replies(1, timeout=60)[-1] == OPERATOR_REPLY
    body = page.content()
    assert not any(key in body for key in KEYS)
    assert json.dumps(operator.requests[-1].body["messages"][-1]) == json.dumps(
        {"role": "user", "content": "is the team model still there?"}
    )
    session.screenshot("hostile-user")
    page.context.close()
