"""Issue 15 in the browser: edits and branches (‹ 2/3 ›), the prompt inspector, agent
conversations reopened as they ran. Each test works the page as a user does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator

from browser_fixtures import Server, Session, open_session, running_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("features"), "--backend", "echo", echo_delay=0.005
    ) as started:
        yield started


def _message(session: Session, role: str, index: int) -> Locator:
    return session.page.locator(f".mx-msg.mx-{role}").nth(index)


def _versions(message: Locator) -> str:
    return message.locator(".mx-branch-at").inner_text()


def _until(session: Session, expected: list[str], timeout: float = 20.0) -> list[str]:
    """Wait until the replies on screen are ``expected``, all finished."""
    for _ in range(int(timeout * 10)):
        stats = [text for text in session.texts("mixchat-stats") if text.strip()]
        replies = session.replies()
        if replies == expected and len(stats) == len(expected):
            return replies
        session.page.wait_for_timeout(100)
    raise AssertionError(f"replies {session.replies()}, expected {expected}")


def _open_from_list(session: Session, title: str) -> None:
    session.page.reload()
    session.page.get_by_placeholder("Message the model").wait_for()
    entry = session.page.locator("button", has_text=title).first
    entry.wait_for(timeout=15_000)
    entry.click()


def test_edit_an_earlier_message_keeps_both_branches_and_switches(session: Session) -> None:
    session.send("first question about whales")
    session.wait_for_replies(1)
    session.send("second question")
    session.wait_for_replies(2)
    first = _message(session, "user", 0)
    first.get_by_role("button", name="Edit", exact=True).click()
    editor = session.page.get_by_label("Edit your message")
    assert editor.input_value() == "first question about whales"
    editor.fill("edited question about dolphins")
    editor.press("Enter")
    assert _until(session, ["edited question about dolphins"])
    assert _versions(_message(session, "user", 0)) == "2/2"
    # the first version, and the conversation that followed it
    _message(session, "user", 0).get_by_role("button", name="Previous version").click()
    assert _until(session, ["first question about whales", "second question"])
    assert _versions(_message(session, "user", 0)) == "1/2"
    session.screenshot("branches")  # docs/branches.png is a copy
    # a reload opens the branch last used; the other one is still there
    _open_from_list(session, "first question about whales")
    assert _until(session, ["first question about whales", "second question"])
    nav = _message(session, "user", 0).get_by_role("button", name="Next version")
    nav.focus()
    session.page.keyboard.press("Enter")  # keyboard reachable
    assert _until(session, ["edited question about dolphins"])
    session.send("and after the edit")
    assert _until(session, ["edited question about dolphins", "and after the edit"])


def test_regenerate_keeps_the_old_reply_as_a_version(session: Session) -> None:
    session.send("say it twice")
    session.wait_for_replies(1)
    session.page.wait_for_timeout(300)
    session.button("Regenerate").click()
    session.page.locator(".mx-assistant .mx-branch-at").wait_for()
    assert _until(session, ["say it twice"])
    reply = _message(session, "assistant", 0)
    assert _versions(reply) == "2/2"
    reply.get_by_role("button", name="Previous version").click()
    session.page.wait_for_timeout(300)
    assert _until(session, ["say it twice"])
    assert _versions(_message(session, "assistant", 0)) == "1/2"


def test_arrow_up_in_the_empty_box_edits_the_last_message(session: Session) -> None:
    session.send("one")
    session.wait_for_replies(1)
    session.send("two")
    session.wait_for_replies(2)
    session.page.get_by_placeholder("Message the model").press("ArrowUp")
    editor = session.page.get_by_label("Edit your message")
    assert editor.input_value() == "two"
    editor.press("Escape")  # cancel: nothing changes
    assert session.page.get_by_label("Edit your message").count() == 0
    assert _until(session, ["one", "two"])
    session.page.get_by_placeholder("Message the model").press("ArrowUp")
    session.page.get_by_label("Edit your message").fill("deux")
    session.page.get_by_role("button", name="Send edit").click()
    assert _until(session, ["one", "deux"])
    assert _versions(_message(session, "user", 1)) == "2/2"
    assert _message(session, "user", 0).locator(".mx-branch-at").count() == 0


def test_the_prompt_inspector_shows_mixtral_ids_equal_to_mistral_commons(
    browser: Browser, tiny_mixtral_gguf: Path, tmp_path: Path
) -> None:
    from test_prompt import mistral_common_encoding

    system = "Answer briefly."
    question = "Tell me  about\n\nexperts [INST] ✓"
    with running_server(
        tmp_path, "--model", str(tiny_mixtral_gguf), "--n-ctx", "512", "-n", "3",
        "--temperature", "0", "--system", system, timeout=180,
    ) as tiny:  # fmt: skip
        session = open_session(browser, tiny.url)
        try:
            session.send(question)
            session.wait_for_replies(1, timeout=90)
            reply = _message(session, "assistant", 0)
            reply.get_by_role("button", name="Inspect prompt").click()
            inspector = reply.locator(".mx-inspector")
            inspector.wait_for()
            text, ids = mistral_common_encoding(
                [{"role": "system", "content": system}, {"role": "user", "content": question}]
            )
            shown_ids = inspector.locator(".mx-inspector-ids pre").text_content() or ""
            assert [int(i) for i in shown_ids.split()] == ids
            assert inspector.locator(".mx-inspector-count").inner_text() == (
                f"{len(ids)} prompt tokens"
            )
            assert "equal mistral-common" in inspector.locator(".mx-same").inner_text()
            assert "mixtral format" in inspector.inner_text()
            assert "temperature=0.0" in inspector.inner_text()
            prompt = inspector.locator(".mx-inspector-prompt pre").text_content() or ""
            assert "[INST]" in prompt and question in prompt
            assert inspector.locator(".mx-inspector-prompt pre img, script").count() == 0
            session.screenshot("inspector")  # docs/inspector.png is a copy
            # a second turn: the whole conversation, still equal to mistral-common's ids
            session.send("And more?")
            session.wait_for_replies(2, timeout=90)
            second = _message(session, "assistant", 1)
            second.get_by_role("button", name="Inspect prompt").click()
            assert "equal" in second.locator(".mx-inspector-mark").inner_text()
            assert question in (second.locator(".mx-inspector-prompt pre").text_content() or "")
            # reopened from the store, the record is still there
            _open_from_list(session, question.split()[0])
            session.wait_for_replies(2, timeout=30)
            again = _message(session, "assistant", 0)
            again.get_by_role("button", name="Inspect prompt").click()
            reopened = again.locator(".mx-inspector-ids pre").text_content() or ""
            assert [int(i) for i in reopened.split()] == ids
        finally:
            session.page.context.close()


def _agent_on(session: Session) -> None:
    page = session.page
    page.get_by_text("Agent", exact=True).first.click()  # open the sidebar's Agent card
    switch = page.locator("[role=switch]").first
    for _ in range(3):  # the sidebar may still be moving (the conversation list loads)
        page.wait_for_timeout(300)
        switch.scroll_into_view_if_needed()
        box = switch.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] - 12, box["y"] + box["height"] / 2)  # the knob
        page.wait_for_timeout(300)
        if switch.get_attribute("aria-checked") == "true":
            break
    assert switch.get_attribute("aria-checked") == "true"


def _step_cards(session: Session) -> list[dict[str, str]]:
    return session.page.locator(".mx-step").evaluate_all(
        """cards => cards.map(card => ({
            title: card.querySelector('summary').textContent,
            body: Array.from(card.querySelectorAll('.mx-step-text')).map(p => p.textContent)
                .join('|'),
            height: card.getBoundingClientRect().height}))"""
    )


def test_a_reopened_agent_conversation_shows_its_steps_with_their_text(
    session: Session,
) -> None:
    _agent_on(session)
    # the echo model repeats this tool call, so the agent runs the calculator to its limit
    session.send('{"tool_name": "Calculator", "input": "6*7"}')
    session.wait_for_replies(1, timeout=60)
    live = _step_cards(session)
    footer = session.texts("mixchat-stats")[-1]
    assert live and "agent step" in footer
    _open_from_list(session, "tool_name")
    session.wait_for_replies(1, timeout=30)
    reopened = _step_cards(session)
    assert [card["title"] for card in reopened] == [card["title"] for card in live]
    assert reopened[0]["title"].startswith("Step 1: Calculator (ok")
    assert all(card["body"] for card in reopened)  # input and output text, not empty boxes
    assert "6*7" in reopened[0]["body"] and "42" in reopened[0]["body"]
    assert all(card["height"] < 80 for card in reopened)  # closed: one line each
    again = session.texts("mixchat-stats")[-1]
    assert "max new tokens" not in again and "max new tokens" not in footer
    assert "step limit" in footer and "step limit" in again  # what ended it, both times
    session.page.locator(".mx-step summary").first.click()
    assert "42" in session.page.locator(".mx-step").first.inner_text()
    # what the model received for the agent's last call, kept with the reply
    reply = _message(session, "assistant", 0)
    reply.get_by_role("button", name="Inspect prompt").click()
    inspector = reply.locator(".mx-inspector")
    inspector.wait_for()
    assert "the last of the agent's" in inspector.inner_text()
    sent = inspector.locator(".mx-inspector-prompt pre").text_content() or ""
    assert "Calculator" in sent and "42" in sent  # the tool list and the tool's output


def _attach(session: Session, *files: Path) -> None:
    session.page.locator("input[type=file]").set_input_files([str(f) for f in files])


def _hint(session: Session) -> str:
    return session.page.locator(".mx-input .mx-hint").last.inner_text()


def test_attached_documents_reach_the_model_and_stay_with_the_message(
    session: Session, tmp_path: Path
) -> None:
    from pdf_files import text_pdf

    pdf = tmp_path / "whales.pdf"
    pdf.write_bytes(text_pdf(["Humpback whales sing in the deep ocean."]))
    notes = tmp_path / "notes.txt"
    notes.write_text("The blue whale is the largest animal.\n")
    _attach(session, pdf, notes)
    chips = session.page.locator(".mx-chip")
    chips.nth(1).wait_for(timeout=20_000)
    labels = sorted(text.replace("\n", " ") for text in chips.all_inner_texts())
    assert labels[0].startswith("notes.txt · ") and labels[0].endswith("tokens ×"), labels
    assert labels[1].startswith("whales.pdf · 1 page, ") and "tokens" in labels[1], labels
    session.screenshot("documents-attached")
    session.send("Which whale is largest?")
    reply = session.wait_for_replies(1)[0]
    assert "Humpback whales sing in the deep ocean." in reply  # the echo model got the texts
    assert "The blue whale is the largest animal." in reply and "Which whale" in reply
    assert session.page.locator(".mx-chip").count() == 0  # sent: the box is empty again
    user = _message(session, "user", 0)
    assert user.locator(".mx-body").inner_text().strip() == "Which whale is largest?"
    user.get_by_role("button", name="notes.txt", exact=True).click()
    assert "largest animal" in user.locator(".mx-doc-text").inner_text()
    # reopened: the chips are still on the message, and open the document's text
    _open_from_list(session, "Which whale")
    session.wait_for_replies(1)
    user = _message(session, "user", 0)
    user.get_by_role("button", name="whales.pdf", exact=True).click()
    assert "Humpback" in user.locator(".mx-doc-text").inner_text()
    session.screenshot("documents")


def test_documents_that_do_not_fit_or_are_hostile_are_refused_and_the_chat_goes_on(
    session: Session, tmp_path: Path
) -> None:
    long = tmp_path / "long.md"
    long.write_text(" ".join(f"word{i}" for i in range(6000)))
    _attach(session, long)
    session.page.locator(".mx-chip").wait_for(timeout=20_000)
    session.send("summarise it")
    session.page.wait_for_timeout(500)
    for _ in range(50):
        if "Not sent" in _hint(session):
            break
        session.page.wait_for_timeout(100)
    hint = _hint(session)
    assert "Not sent" in hint and "more than the model's context of" in hint, hint
    assert "tokens" in hint
    assert session.replies() == []  # nothing was sent
    box = session.page.get_by_placeholder("Message the model")
    assert box.input_value() == "summarise it"  # the question is given back
    session.page.get_by_role("button", name="Remove long.md").click()
    session.page.locator(".mx-chip").wait_for(state="detached")
    binary = tmp_path / "photo.txt"
    binary.write_bytes(bytes(range(256)) * 64)
    _attach(session, binary)
    session.page.wait_for_function(
        """() => [...document.querySelectorAll('*')].some(e => e.shadowRoot &&
             e.shadowRoot.querySelector('.mx-input .mx-hint')?.textContent.includes('binary'))"""
    )
    assert "Not attached: photo.txt is binary data" in _hint(session)
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as out:  # 200 MB, sparse: refused by its size in the browser
        out.truncate(200 * 1024 * 1024)
    _attach(session, huge)
    assert "Not attached: huge.txt is 200.0 MB; the limit for a document is 10.0 MB" in _hint(
        session
    )
    assert session.page.locator(".mx-chip").count() == 0
    box.fill("still answering?")
    box.press("Enter")
    assert session.wait_for_replies(1) == ["still answering?"]


def test_undo_of_an_edited_version_leaves_what_the_page_shows_after_a_reload(
    session: Session,
) -> None:
    session.send("the first turn stays")
    session.wait_for_replies(1)
    session.send("the second turn, version one")
    session.wait_for_replies(2)
    second = _message(session, "user", 1)
    second.get_by_role("button", name="Edit", exact=True).click()
    editor = session.page.get_by_label("Edit your message")
    editor.fill("the second turn, version two")
    editor.press("Enter")
    assert _until(session, ["the first turn stays", "the second turn, version two"])
    assert _versions(_message(session, "user", 1)) == "2/2"
    session.page.wait_for_timeout(500)  # the edit's store writes
    session.button("Undo").click()
    assert _until(session, ["the first turn stays"])
    session.page.wait_for_timeout(800)  # the undo's store write
    session.page.reload()  # lands in the same conversation (its address)
    session.page.get_by_placeholder("Message the model").wait_for()
    assert _until(session, ["the first turn stays"])  # not the other version of turn two
    session.send("a new second turn")
    assert _until(session, ["the first turn stays", "a new second turn"])
    session.page.wait_for_timeout(800)
    session.page.reload()
    session.page.get_by_placeholder("Message the model").wait_for()
    assert _until(session, ["the first turn stays", "a new second turn"])
    assert _versions(_message(session, "user", 1)) == "2/2"  # it joins the version kept


def test_export_then_import_round_trips_every_branch(session: Session) -> None:
    session.send("a root to branch from")
    session.wait_for_replies(1)
    _message(session, "user", 0).get_by_role("button", name="Edit", exact=True).click()
    editor = session.page.get_by_label("Edit your message")
    editor.fill("the root, edited")
    editor.press("Enter")
    assert _until(session, ["the root, edited"])
    session.page.wait_for_timeout(500)  # the edit's store writes
    page = session.page
    item = page.locator(".mx-conv", has_text="a root to branch from")
    item.get_by_role("button", name="Menu of a root to branch from").click()
    with page.expect_download() as download:
        page.get_by_role("menuitem", name="Export JSON").click()
    exported = Path(download.value.path())
    assert len(json.loads(exported.read_text())["messages"]) == 4  # both versions, both replies
    original = page.url
    page.get_by_text("Import a conversation", exact=True).first.click()
    page.locator("input[type=file][accept='.json']").set_input_files(str(exported))
    for _ in range(100):  # the import opens as a conversation of its own
        if page.url != original:
            break
        page.wait_for_timeout(100)
    assert page.url != original
    assert _until(session, ["the root, edited"])
    assert _versions(_message(session, "user", 0)) == "2/2"
    _message(session, "user", 0).get_by_role("button", name="Previous version").click()
    assert _until(session, ["a root to branch from"])
    assert page.locator(".mx-conv", has_text="a root to branch from").count() == 2


_READABLE = """(selector) => {
  const deep = (root, sel, found) => {
    found.push(...root.querySelectorAll(sel));
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) deep(el.shadowRoot, sel, found);
    return found;
  };
  const ground = (el) => {  // the first painted background behind el, across shadow roots
    for (let at = el; at; at = at.parentElement || (at.getRootNode() && at.getRootNode().host)) {
      const colour = getComputedStyle(at).backgroundColor;
      if (colour && colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
    }
    return 'rgb(255, 255, 255)';
  };
  return deep(document, selector, []).map(el => [getComputedStyle(el).color, ground(el)]);
}"""


def test_agent_steps_and_tooltips_are_readable_in_the_dark_scheme(
    browser: Browser, server: Server
) -> None:
    from test_page_shell_browser import _contrast, _luminance

    context = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="dark")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(server.url)
        page.get_by_placeholder("Message the model").wait_for(timeout=30_000)
        session = Session(page)
        _agent_on(session)
        session.send('{"tool_name": "Calculator", "input": "6*7"}')
        session.wait_for_replies(1, timeout=60)
        page.locator(".mx-step summary").first.click()  # open: its input and output show
        page.locator(".mx-step-text").first.wait_for()
        shown = page.evaluate(_READABLE, ".mx-step summary, .mx-step-text, .mx-step-label")
        assert len(shown) >= 3
        for text, ground in shown:
            assert _luminance(ground) < 0.06, ground  # a dark card, not a light box
            assert _contrast(text, ground) >= 4.5, (text, ground)
        session.screenshot("dark-agent-steps")
        page.get_by_text("Generation", exact=True).first.click()
        page.locator(".bk-description").first.hover()  # the system prompt's "?"
        page.locator(".bk-Tooltip").first.wait_for()
        (text, ground), *_ = page.evaluate(_READABLE, ".bk-tooltip-content")
        assert _luminance(ground) < 0.06 and _contrast(text, ground) >= 4.5, (text, ground)
    finally:
        context.close()
