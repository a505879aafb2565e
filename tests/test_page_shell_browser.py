"""The page around the chat, in a real browser: conversation addresses and menus, the colour
scheme, the phone layout, presets and the keyboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Browser

from browser_fixtures import INPUT, Server, Session, open_session, running_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CATALOG = """
[models.echo]
name = "Echo"
backend = "echo"

[models.other]
name = "Other echo"
backend = "echo"

[presets.terse]
description = "Three words at most"
system_prompt = "Answer in three words."
model = "other"
temperature = 0.25
max_tokens = 16
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("shell"),
        "--max-tokens",
        "1024",
        echo_delay=0.005,
        config=CATALOG,
    ) as started:
        yield started


def _address(session: Session) -> str | None:
    """The conversation the page's address names (?c=ID)."""
    values = parse_qs(urlparse(session.page.url).query).get("c")
    return values[0] if values else None


def _titles(session: Session) -> list[str]:
    return [t.strip() for t in session.page.locator(".mx-conv-open").all_inner_texts()]


def _item(session: Session, title: str):  # type: ignore[no-untyped-def]
    return session.page.locator(".mx-conv", has_text=title)


def _wait_until(session: Session, check, timeout_ms: int = 10_000) -> None:  # type: ignore[no-untyped-def]
    for _ in range(timeout_ms // 100):
        if check():
            return
        session.page.wait_for_timeout(100)
    assert check()


def test_a_new_chat_is_listed_and_addressed_at_once_and_a_reload_lands_in_it(
    session: Session,
) -> None:
    title = "address of the humpback " + " ".join(f"w{n}" for n in range(600))
    session.send(title)
    # listed (and the page addressed) while its first reply is still being written
    _item(session, "address of the humpback").wait_for()
    assert session.button("Stop").is_visible()
    _wait_until(session, lambda: _address(session) is not None)
    conversation = _address(session)
    assert _item(session, "address of the humpback").get_attribute("class") == (
        "mx-conv mx-conv-current"
    )
    session.wait_for_replies(1, timeout=60)
    session.page.reload()
    session.page.get_by_placeholder(INPUT).wait_for()
    # the same conversation, without touching the list
    session.page.locator(".mixchat-user", has_text="address of the humpback").wait_for()
    assert session.wait_for_replies(1) == [title]
    assert _address(session) == conversation
    session.send("and it goes on")
    assert session.wait_for_replies(2)[-1] == "and it goes on"
    # a new chat drops the address; Back returns to the conversation
    _new_chat(session)
    _wait_until(session, lambda: _address(session) is None)
    _wait_until(session, lambda: session.replies() == [])
    session.page.go_back()
    _wait_until(session, lambda: len(session.replies()) == 2)
    assert _address(session) == conversation


def test_each_item_has_a_menu_to_rename_export_and_delete(session: Session) -> None:
    session.send("menu first about otters")
    session.wait_for_replies(1)
    _new_chat(session)
    _wait_until(session, lambda: _address(session) is None)
    session.send("menu second about seals")
    session.wait_for_replies(1)
    open_now = _address(session)
    page = session.page
    otters = _item(session, "menu first about otters")
    otters.get_by_role("button", name="Menu of menu first about otters").click()
    page.get_by_role("menuitem", name="Rename").click()
    box = page.get_by_role("textbox", name="New title (Enter saves, Esc cancels)")
    box.fill("Otters, renamed")
    box.press("Enter")  # Enter renames
    _item(session, "Otters, renamed").wait_for()
    page.wait_for_timeout(500)
    page.reload()
    page.get_by_placeholder(INPUT).wait_for()
    _item(session, "Otters, renamed").wait_for()  # stored, and the open chat did not change
    assert _address(session) == open_now
    assert session.wait_for_replies(1) == ["menu second about seals"]
    renamed = _item(session, "Otters, renamed")
    renamed.get_by_role("button", name="Menu of Otters, renamed").click()
    with page.expect_download() as download:
        page.get_by_role("menuitem", name="Export Markdown").click()
    assert download.value.suggested_filename == "Otters-renamed.md"
    assert "menu first about otters" in Path(download.value.path()).read_text()
    renamed.get_by_role("button", name="Menu of Otters, renamed").click()
    with page.expect_download() as download:
        page.get_by_role("menuitem", name="Export JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["title"] == "Otters, renamed"
    renamed.get_by_role("button", name="Menu of Otters, renamed").click()
    page.get_by_role("menuitem", name="Delete").click()
    assert renamed.count() == 1  # the first click only asks
    page.get_by_role("menuitem", name="Click again to delete").click()
    _wait_until(session, lambda: renamed.count() == 0)
    assert session.replies() == ["menu second about seals"]  # the open chat stays
    session.screenshot("conversation-menu")


def test_undoing_the_only_turn_leaves_no_conversation_behind(session: Session) -> None:
    session.send("undo me entirely")
    session.wait_for_replies(1)
    _item(session, "undo me entirely").wait_for()
    session.button("Undo").click()
    _wait_until(session, lambda: _item(session, "undo me entirely").count() == 0)
    assert _address(session) is None
    session.page.reload()
    session.page.get_by_placeholder(INPUT).wait_for()
    session.page.wait_for_timeout(800)
    assert "undo me entirely" not in _titles(session)


def test_another_users_conversation_address_is_not_found(browser: Browser, tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "alice-pw", "bob": "bob-pw"}))
    with running_server(tmp_path, "--basic-auth", str(users), config=CATALOG) as team:
        alice = _log_in(browser, team.url, "alice", "alice-pw")
        alice.send("alice's private plan")
        alice.wait_for_replies(1)
        _wait_until(alice, lambda: _address(alice) is not None)
        link = alice.page.url
        bob = _log_in(browser, link, "bob", "bob-pw")
        bob.page.locator(".mixchat-notice", has_text="No conversation of yours").wait_for()
        assert bob.replies() == []
        assert "alice's private plan" not in " ".join(bob.texts("mixchat-user"))
        _wait_until(bob, lambda: _address(bob) is None)
        bob.send("bob's own chat")
        assert bob.wait_for_replies(1) == ["bob's own chat"]
        alice.page.goto(link)  # alice's own link still opens it for her
        alice.page.get_by_placeholder(INPUT).wait_for()
        assert alice.wait_for_replies(1) == ["alice's private plan"]
        alice.page.context.close()
        bob.page.context.close()


#: The computed colours of parts of the page, inside the components' shadow roots.
_COLOURS = """() => {
  const deep = (root, sel) => {
    const found = root.querySelector(sel);
    if (found) return found;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const inner = deep(el.shadowRoot, sel); if (inner) return inner; }
    }
    return null;
  };
  const look = (sel) => {
    const el = deep(document, sel);
    if (!el) return null;
    const style = getComputedStyle(el);
    return [style.backgroundColor, style.color];
  };
  return {
    body: look('body'), sidebar: look('#sidebar'), reply: look('.mx-assistant'),
    code: look('.mx-md pre code'), user: look('.mx-user'),
    item: look('.mx-conv:not(.mx-conv-current)'),
    itemText: look('.mx-conv:not(.mx-conv-current) .mx-conv-open'),
    cardHead: look('.mx-section-head'),
    input: look('textarea.mx-box'), select: look('select'),
  };
}"""


def _rgb(css: str) -> tuple[float, float, float]:
    parts = css[css.index("(") + 1 : css.index(")")].replace(",", " ").split()
    return float(parts[0]), float(parts[1]), float(parts[2])


def _luminance(css: str) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(css))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(one: str, two: str) -> float:
    high, low = sorted((_luminance(one), _luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _colours(session: Session) -> dict[str, list[str]]:
    return session.page.evaluate(_COLOURS)


def _check_scheme(session: Session, dark: bool) -> None:
    colours = _colours(session)
    for part in ("body", "sidebar", "reply", "code", "item", "input", "select"):
        background = colours[part][0]
        assert (_luminance(background) < 0.06) == dark, (part, background)
    for part in ("body", "reply", "code", "input", "itemText"):  # text readable on its ground
        ground = colours["item" if part == "itemText" else part][0]
        assert _contrast(colours[part][1], ground) >= 4.5, (part, colours[part], ground)
    head = colours["cardHead"]  # a sidebar section's title on its ground
    assert _contrast(head[1], head[0]) >= 4.5, head


def _with_code(session: Session) -> None:
    """Two conversations (one open, one not), the open one with a code block."""
    session.send("an earlier chat")
    session.wait_for_replies(1)
    _new_chat(session)
    session.page.wait_for_timeout(500)
    session.send("Some `code` here:\n\n```python\ndef add(x, y):\n    return x + y  # sum\n```")
    session.wait_for_replies(1)
    session.page.mouse.move(700, 600)  # no tooltip in the screenshots
    session.page.wait_for_timeout(500)


def test_the_page_follows_a_dark_system_scheme_and_the_toggle_is_remembered(
    browser: Browser, server: Server
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(server.url)
    page.get_by_placeholder(INPUT).wait_for(timeout=30_000)
    session = Session(page)
    _with_code(session)
    _check_scheme(session, dark=True)
    session.screenshot("dark")
    page.get_by_role("button", name="Switch between light and dark").click()
    page.wait_for_timeout(300)
    _check_scheme(session, dark=False)  # at once, no reload
    page.reload()
    page.get_by_placeholder(INPUT).wait_for()
    page.wait_for_timeout(800)
    assert page.evaluate("localStorage.getItem('mixchat-scheme')") == "light"
    _check_scheme(session, dark=False)  # remembered, though the system is dark
    page.get_by_role("button", name="Switch between light and dark").click()
    page.wait_for_timeout(300)
    _check_scheme(session, dark=True)
    context.close()


def test_the_light_scheme_is_readable(session: Session) -> None:
    _with_code(session)
    _check_scheme(session, dark=False)
    session.screenshot("light")


def test_a_phone_has_no_sideways_scroll_and_the_sidebar_is_a_drawer(
    browser: Browser, server: Server
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(server.url)
    page.get_by_placeholder(INPUT).wait_for(timeout=30_000)
    session = Session(page)
    assert page.evaluate("window.innerWidth") == 390  # the viewport tag: not laid out 980 wide
    assert not page.locator("#sidebar").is_visible()  # the drawer starts closed
    box = page.get_by_placeholder(INPUT).bounding_box()
    assert box is not None and box["width"] >= 330  # the whole width, buttons below
    session.send("phone drawer test " + "longword" * 12)
    session.wait_for_replies(1)
    session.send("Code:\n\n```python\ndef add(x, y):\n    return x + y  # a long comment here\n```")
    session.wait_for_replies(2)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    session.screenshot("phone")
    page.locator("#sidebar-toggle").click()
    page.locator("#sidebar").wait_for(state="visible")
    page.wait_for_timeout(500)
    session.screenshot("phone-drawer")
    _new_chat(session)  # a new chat closes the drawer
    page.locator("#sidebar").wait_for(state="hidden")
    page.locator("#sidebar-toggle").click()
    page.locator("#sidebar").wait_for(state="visible")
    page.wait_for_timeout(400)
    _item(session, "phone drawer test").locator(".mx-conv-open").click()  # so does picking one
    page.locator("#sidebar").wait_for(state="hidden")
    assert session.wait_for_replies(2)[0].startswith("phone drawer test")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 390
    context.close()


def _stored(server: Server, title: str):  # type: ignore[no-untyped-def]
    from mixchat.store import LOCAL_OWNER, ConversationStore

    data = Path(server.log).parent
    with ConversationStore(f"sqlite:///{data / 'mixchat.db'}") as store:
        found = [s for s in store.list(LOCAL_OWNER) if s.title.startswith(title)]
        return store.get(LOCAL_OWNER, found[0].id)


def test_a_preset_applies_its_system_prompt_model_and_sampling(
    session: Session, server: Server
) -> None:
    words = " ".join(f"p{n}" for n in range(40))
    session.send(f"/terse {words}")  # /NAME at the start of a message
    session.wait_for_replies(1)
    assert session.replies() == [" ".join(f"p{n}" for n in range(16))]  # its max_tokens
    assert session.texts("mixchat-user")[-1].strip() == words  # shown without the /terse
    footer = session.texts("mixchat-stats")[-1]
    assert footer.startswith("16 tokens") and "max new tokens limit" in footer, footer
    page = session.page
    assert _preset_list(page).input_value() == "terse"
    hint = " ".join(session.texts("mixchat-hint"))
    assert "Preset terse: model other, temperature 0.25, max tokens 16" in hint, hint
    session.page.wait_for_timeout(500)
    stored = _stored(server, "p0 p1")  # the conversation was saved with the preset
    assert stored.system_prompt == "Answer in three words."
    assert stored.settings["temperature"] == 0.25 and stored.settings["model_entry"] == "other"
    assert [m.content for m in stored.messages][0] == words  # without the /terse
    # a user's own preset: save the sidebar's settings, pick it after a reload
    page.get_by_text("Generation", exact=True).first.click()
    page.get_by_placeholder("e.g. You are a concise assistant.").fill("Talk like a pirate.")
    page.get_by_placeholder("a name, e.g. concise").fill("pirate")
    page.get_by_role("button", name="Save preset").click()
    page.locator(".mixchat-hint", has_text="Saved preset pirate").wait_for()
    page.reload()
    page.get_by_placeholder(INPUT).wait_for()
    page.wait_for_timeout(800)
    _new_chat(session)
    _preset_list(page).select_option("pirate")
    page.wait_for_timeout(300)
    session.send("arr " + words)
    session.wait_for_replies(1)
    page.wait_for_timeout(500)
    stored = _stored(server, "arr")
    assert stored.system_prompt == "Talk like a pirate."
    session.screenshot("presets")


def test_the_keyboard_focus_a_new_chat_shortcut_esc_and_switch_labels(session: Session) -> None:
    page = session.page
    page.wait_for_timeout(500)
    page.keyboard.type("typed without clicking")  # the message box has focus on load
    page.keyboard.press("Enter")
    assert session.wait_for_replies(1) == ["typed without clicking"]
    page.keyboard.type("and again")  # ...and again after a reply
    page.keyboard.press("Enter")
    assert session.wait_for_replies(2)[-1] == "and again"
    _wait_until(session, lambda: _address(session) is not None)
    page.get_by_placeholder(INPUT).fill(" ".join(f"e{n}" for n in range(3000)))
    page.keyboard.press("Enter")
    page.wait_for_timeout(800)
    page.keyboard.press("Escape")  # Esc stops the reply, keeping what was written
    session.wait_for_replies(3)
    assert "Stopped" in session.texts("mixchat-stats")[-1]
    assert 0 < len(session.replies()[-1].split()) < 3000
    page.keyboard.press("Control+Shift+O")  # a new chat, as in ChatGPT
    _wait_until(session, lambda: session.replies() == [] and _address(session) is None)
    new_chat = page.get_by_role("button", name="New chat", exact=True)
    assert new_chat.get_attribute("title") == "New chat (Ctrl+Shift+O)"  # its tooltip says so
    assert "Control+Shift+O" in (new_chat.get_attribute("aria-keyshortcuts") or "").split()
    agent = page.locator("summary", has_text="Agent")
    agent.focus()
    page.keyboard.press("Enter")  # a sidebar section opens from the keyboard...
    switch = page.locator("[role=switch]").first
    switch.wait_for()
    focused = "el => el.getRootNode().activeElement === el"
    _wait_until(session, lambda: agent.evaluate(focused))  # ...and keeps the focus
    page.wait_for_timeout(300)
    page.get_by_text("Agent mode", exact=True).click()  # the label flips the switch
    _wait_until(session, lambda: switch.get_attribute("aria-checked") == "true")
    page.get_by_text("Agent mode", exact=True).click()
    _wait_until(session, lambda: switch.get_attribute("aria-checked") == "false")


def test_the_search_box_filters_the_list_and_new_chat_starts_one(session: Session) -> None:
    page = session.page
    for words in ("search the walrus tusk", "search the narwhal horn", "search the orca fin"):
        session.send(words)
        _item(session, words).wait_for()
        session.wait_for_replies(1)
        _new_chat(session)
        _wait_until(session, lambda: session.replies() == [] and _address(session) is None)
    assert _titles(session)[:3] == [
        "search the orca fin",
        "search the narwhal horn",
        "search the walrus tusk",
    ]
    search = page.get_by_role("searchbox", name="Search conversations")
    assert search.get_attribute("placeholder") == "Search conversations…"
    search.press_sequentially("narwhal", delay=30)  # one query a moment after the last key
    _wait_until(session, lambda: _titles(session) == ["search the narwhal horn"])
    search.fill("no such animal")
    page.locator(".mixchat-hint", has_text="No conversation matches.").wait_for()
    assert _titles(session) == []
    search.fill("")
    _wait_until(session, lambda: len(_titles(session)) >= 3)
    assert page.locator(".mixchat-hint", has_text="No conversation matches.").count() == 0
    # New chat: the open conversation is left, the list stays, the address is the plain page
    _item(session, "search the walrus tusk").locator(".mx-conv-open").click()
    _wait_until(session, lambda: session.replies() == ["search the walrus tusk"])
    walrus = _address(session)
    assert walrus is not None
    page.get_by_role("button", name="New chat", exact=True).click()
    _wait_until(session, lambda: session.replies() == [] and _address(session) is None)
    assert page.locator(".mx-conv-current").count() == 0
    assert "search the walrus tusk" in _titles(session)
    page.go_back()  # Back returns to the conversation before
    _wait_until(session, lambda: session.replies() == ["search the walrus tusk"])
    session.screenshot("conversations-search")


def _log_in(browser: Browser, url: str, user: str, password: str) -> Session:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(url)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")
    page.get_by_placeholder(INPUT).wait_for(timeout=30_000)
    if urlparse(page.url).query != urlparse(url).query:  # the login page dropped the address
        page.goto(url)
        page.get_by_placeholder(INPUT).wait_for(timeout=30_000)
    return Session(page)


def _new_chat(session: Session) -> None:
    session.page.locator("button", has_text="New chat").first.click()


def _preset_list(page):  # type: ignore[no-untyped-def]
    return page.locator("select").nth(1)  # the Model card: the model, then the preset


def test_a_lost_server_shows_a_banner_that_says_to_reload(browser: Browser, tmp_path: Path) -> None:
    """The page's own banner (page.js), not Panel's notification area: kill the server."""
    with running_server(tmp_path, "--backend", "echo") as started:
        session = open_session(browser, started.url)
        session.send("still here")
        assert session.wait_for_replies(1) == ["still here"]
        assert session.page.locator(".mixchat-disconnected").count() == 0
        started.process.kill()
        banner = session.page.locator(".mixchat-disconnected")
        banner.wait_for(timeout=15_000)
        assert banner.get_attribute("role") == "alert"
        assert "reload the page" in banner.inner_text()
        session.screenshot("connection-lost")
