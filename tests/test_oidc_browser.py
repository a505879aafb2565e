"""Logging in with OpenID Connect: Panel's generic OIDC provider against a local provider
the test starts; the OIDC user owns their conversations, and an OIDC group makes an admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from browser_fixtures import INPUT, Session, chromium, running_server
from oidc_provider import OidcProvider

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CONFIG = """
admin_groups = ["mixchat-admins"]

[models.quick]
name = "Quick echo"
backend = "echo"
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def sign_in(browser: Browser, url: str, user: str) -> Session:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    page.get_by_placeholder("user name").fill(user)  # the provider's own page
    page.get_by_role("button", name="Sign in").click()
    page.get_by_placeholder(INPUT).wait_for(timeout=30_000)
    return Session(page)


def test_oidc_login_through_panels_generic_provider(browser: Browser, tmp_path: Path) -> None:
    with OidcProvider("mixchat-test", "client-s3cret") as provider:
        provider.users["carol"] = {"email": "carol@example.org", "groups": ["mixchat-admins"]}
        provider.users["dave"] = {"email": "dave@example.org", "groups": ["staff"]}
        with running_server(
            tmp_path,
            *provider.panel_params(),
            "--cookie-secret",
            "x" * 32,
            config=CONFIG,
        ) as server:
            carol = sign_in(browser, server.url, "carol")
            assert "carol (admin)" in " ".join(carol.texts("mixchat-who"))
            assert carol.page.get_by_text("Server status (admin)").count() == 1
            carol.send("carol signed in with OIDC")
            assert carol.wait_for_replies(1) == ["carol signed in with OIDC"]
            carol.screenshot("oidc-admin")

            dave = sign_in(browser, server.url, "dave")
            assert "dave (user)" in " ".join(dave.texts("mixchat-who"))
            assert dave.page.get_by_text("Server status (admin)").count() == 0
            dave.page.wait_for_timeout(500)
            assert dave.page.locator("button", has_text="carol signed in").count() == 0
            carol.page.context.close()
            dave.page.context.close()
        # the whole code flow ran: the form, the code, the token (checked secret and code)
        assert "POST /authorize 302" in provider.log and "POST /token 200" in provider.log
    from mixchat.store import ConversationStore

    store = ConversationStore(f"sqlite:///{tmp_path / 'mixchat.db'}")
    assert [c.title for c in store.list("carol")] == ["carol signed in with OIDC"]
    assert store.list("dave") == [] and store.list("local") == []
    store.close()
