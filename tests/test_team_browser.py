"""Two users of one team server in the browser: each sees only their own conversations and
usage; the admin sees the server's status view, a user does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from browser_fixtures import INPUT, Session, chromium, running_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CONFIG = """
admins = ["alice"]

[limits]
requests_in_flight = 2

[models.quick]
name = "Quick echo"
backend = "echo"
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def log_in(browser: Browser, url: str, user: str, password: str) -> Session:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    assert "/login" in page.url
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.get_by_placeholder(INPUT).wait_for(timeout=30_000)
    return Session(page)


_DEEP_TEXT = """() => {
  const parts = [];
  const walk = root => {
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) walk(el.shadowRoot);
    }
    parts.push(root.textContent || "");
  };
  walk(document);
  return parts.join(" ");
}"""


def everything_shown(session: Session) -> str:
    """All text of the page, inside every shadow root (Panel renders into them)."""
    return session.page.evaluate(_DEEP_TEXT)


def open_card(session: Session, title: str) -> None:
    session.page.get_by_text(title, exact=True).first.click()
    session.page.wait_for_timeout(300)


def test_two_users_see_only_their_own_and_only_the_admin_sees_the_status(
    browser: Browser, tmp_path: Path
) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "alice-pw", "bob": "bob-pw"}))
    with running_server(tmp_path, "--basic-auth", str(users), config=CONFIG) as server:
        alice = log_in(browser, server.url, "alice", "alice-pw")
        alice.send("alice's secret plan")
        assert alice.wait_for_replies(1) == ["alice's secret plan"]
        bob = log_in(browser, server.url, "bob", "bob-pw")
        bob.send("bob asks something else")
        assert bob.wait_for_replies(1) == ["bob asks something else"]
        bob.page.wait_for_timeout(800)

        # bob: his own conversation only, his own usage only, no status view
        bob.page.reload()
        bob.page.get_by_placeholder(INPUT).wait_for()
        bob.page.locator("button", has_text="bob asks something else").first.wait_for()
        assert bob.page.locator("button", has_text="alice's secret plan").count() == 0
        open_card(bob, "Your usage")
        bob.page.locator(".usage-total").wait_for()  # read from the store when opened
        usage = " ".join(bob.texts("mixchat-usage"))
        assert "quick" in usage and "alice" not in usage
        assert "bob (user)" in " ".join(bob.texts("mixchat-who"))
        assert bob.page.get_by_text("Server status (admin)").count() == 0
        assert bob.texts("mixchat-status-view") == []
        shown = everything_shown(bob)
        assert "bob asks something else" in shown  # the check can see the page's text
        assert "alice" not in shown
        bob.screenshot("team-user-bob")

        # alice: her own conversation, and the status view with everyone's tokens
        alice.page.reload()
        alice.page.get_by_placeholder(INPUT).wait_for()
        alice.page.locator("button", has_text="alice's secret plan").first.wait_for()
        assert alice.page.locator("button", has_text="bob asks something else").count() == 0
        open_card(alice, "Your usage")
        alice.page.locator(".usage-total").wait_for()
        assert "bob" not in " ".join(alice.texts("mixchat-usage"))
        open_card(alice, "Server status (admin)")
        alice.page.get_by_role("button", name="Refresh").click()
        alice.page.wait_for_timeout(800)
        status = " ".join(alice.texts("mixchat-status-view"))
        assert "Quick echo" in status and "Active sessions" in status
        assert "alice" in status and "bob" in status  # sessions and tokens per user
        assert "Tokens today, per user" in status
        alice.screenshot("team-admin-alice")
        alice.page.context.close()
        bob.page.context.close()
