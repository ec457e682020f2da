"""The agent and supervisor console (server/web/static/console) in Debian's Chromium against a real `kefu serve`.

Staff sign in through the page (POST /auth/signin); visitors are Python clients with a visitor credential from
POST /auth/visitor, so that each test checks what the visitor really received. Covered: an agent chatting with a
visitor (attributes, routing trace, reply, search, end, the time-to-screen mark), a transfer between two agents'
consoles, a supervisor's whisper that the visitor never sees, an AI draft approved (the keyword plugin of the
fixture's directory), and both languages. The wall's figures against /metrics: test_console_wall.py.

With KEFU_SCREENSHOTS=DIR set, the draft test (and the wall's) also save the screenshots of docs/console.md there
(`KEFU_SCREENSHOTS=docs/screenshots .venv/bin/pytest -n 0 tests/browser/test_console*.py`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kefu.client import AuthFailed, BlockingClient, Message, RequestRefused
from kefu.protocol.frames import staff_channel

from .conftest import KefuSite

pytest.importorskip("playwright.sync_api", reason="needs the test extra: pip install -e '.[test]'")
from playwright.sync_api import expect

TIMEOUT_S = 10.0
expect.set_options(timeout=TIMEOUT_S * 1000)
DRAFT = "您的卡已临时挂失，请带身份证到任一网点补办。"
"""The keyword plugin's draft for a lost card (tests/browser/conftest.py's directory)."""
SCREENSHOTS = os.environ.get("KEFU_SCREENSHOTS", "")


# --- helpers -------------------------------------------------------------------------------------------------------


@contextmanager
def visitor(site: KefuSite) -> Iterator[BlockingClient]:
    """A visitor: a Python client with a fresh visitor credential (POST /auth/visitor), closed afterwards."""
    session = site.post_json("/auth/visitor", {"tenant": "bank"})
    pins = (site.server.data_dir / "keys" / "pins.txt").read_text().split()
    client = BlockingClient(
        "127.0.0.1", site.server.port, app_id=session["app_id"], app_secret=session["secret"],
        server_pins=frozenset(pins), reconnect=False,
    )  # fmt: skip
    client.connect()
    try:
        yield client
    finally:
        client.close()


def receive_until(client: BlockingClient, wanted: Callable[[Message], bool], seen: list[Message]) -> Message:
    """Receive until a message satisfies `wanted` (every message received is appended to `seen`)."""
    deadline = time.monotonic() + TIMEOUT_S
    while (left := deadline - time.monotonic()) > 0:
        message = client.receive(timeout=left)
        if message is None:
            break
        seen.append(message)
        if wanted(message):
            return message
    raise AssertionError(f"not received in {TIMEOUT_S} s; got {[(m.sender, m.text) for m in seen]}")


def sign_in(new_page: Callable[..., Any], site: KefuSite, name: str, *, locale: str = "zh-CN") -> Any:
    """A console page signed in as `name`; an agent's page waits until its status is online at the server."""
    page = new_page(locale=locale, viewport={"width": 1280, "height": 800})
    page.goto(site.console_url)
    page.get_by_test_id("signin-name").fill(name)
    page.get_by_test_id("signin-password").fill(site.passwords[name])
    page.get_by_test_id("signin-submit").click()
    try:
        if name.startswith("sup"):
            expect(page.get_by_test_id("wall")).to_be_visible()
        else:
            expect(page.get_by_test_id("status-select")).to_have_attribute("data-applied", "online")
        expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    except AssertionError as exc:
        raise AssertionError(f"{name} not signed in: {page.kefu_log}") from exc
    return page


def conversation(page: Any, conversation_id: int) -> Any:
    return page.locator(f'[data-testid="conversation-item"][data-conversation-id="{conversation_id}"]')


def show(page: Any, conversation_id: int) -> None:
    """Wait for the conversation to appear in the agent's list, then open it (as the agent would)."""
    item = conversation(page, conversation_id)
    expect(item).to_be_visible()
    item.get_by_role("button").click()
    expect(page.get_by_test_id("chat-title")).to_have_attribute("data-conversation-id", str(conversation_id))


def log_line(page: Any, text: str, *, log: str = "message-log") -> Any:
    return page.get_by_test_id(log).locator('[data-testid="message"]', has_text=text)


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages if not m.is_system_event]


def end(client: BlockingClient, conversation_id: int) -> None:
    """Free the agent's capacity for the next test (the server is shared by the module)."""
    client.service.end(conversation_id, "test done")


def shoot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name))


# --- tests ---------------------------------------------------------------------------------------------------------


def test_an_agent_chats_with_a_visitor(kefu_site: KefuSite, new_page: Callable[..., Any]) -> None:
    page = sign_in(new_page, kefu_site, "a1")
    with visitor(kefu_site) as v:
        opened = v.service.open(attributes={"channel": "web", "vip": "2"}, first_message="你好，我想查询账户余额")
        assert opened.agent == "a1", opened
        cid, seen = opened.conversation_id, []
        item = conversation(page, cid)
        show(page, cid)
        marks = page.evaluate(f"performance.getEntriesByName('kefu:conversation-shown:{cid}').length")
        assert marks == 1, page.kefu_log
        # The visitor's message, its attributes and the routing trace are on screen.
        expect(log_line(page, "查询账户余额")).to_have_attribute("data-kind", "visitor")
        expect(page.get_by_test_id("attributes")).to_contain_text("vip")
        expect(page.get_by_test_id("routing-trace")).to_contain_text("choose")
        # Reply with the keyboard: Alt+R to the reply box, Ctrl+Enter sends.
        page.keyboard.press("Alt+KeyR")
        expect(page.get_by_test_id("reply-input")).to_be_focused()
        page.keyboard.type("您好，请稍等，我帮您查一下。")
        page.keyboard.press("Control+Enter")
        receive_until(v, lambda m: m.text == "您好，请稍等，我帮您查一下。" and m.sender == "a1", seen)
        expect(log_line(page, "我帮您查一下")).to_have_attribute("data-kind", "me")
        v.send(cid, "谢谢")
        expect(log_line(page, "谢谢")).to_be_visible()
        # Search finds the conversation's message.
        page.get_by_test_id("search-input").fill("账户余额")
        page.get_by_test_id("search-submit").click()
        expect(page.get_by_test_id("search-hit").first).to_have_attribute("data-conversation-id", str(cid))
        # End: the visitor is told, the conversation shows closed and the reply box is off.
        page.get_by_test_id("end-button").click()
        receive_until(v, lambda m: m.is_system_event and '"closed"' in m.text, seen)
        expect(item).to_have_attribute("data-state", "closed")
        expect(page.get_by_test_id("reply-input")).to_be_disabled()
        # History: after a reload the closed conversation is not kept in the list (a late redelivery of its last
        # event may bring it back); a search hit opens it with its messages fetched with SYNC ranges.
        page.reload()
        expect(page.get_by_test_id("status-select")).to_have_attribute("data-applied", "online")
        page.keyboard.press("Alt+KeyK")
        expect(page.get_by_test_id("search-input")).to_be_focused()
        page.keyboard.type("账户余额")
        page.keyboard.press("Enter")
        page.get_by_test_id("search-hit").first.get_by_role("button").click()
        expect(log_line(page, "查询账户余额")).to_have_attribute("data-kind", "visitor")
        expect(log_line(page, "我帮您查一下")).to_have_attribute("data-kind", "me")
        expect(item).to_have_attribute("data-state", "closed")
    assert not [line for line in page.kefu_log if "pageerror" in line or "Content Security" in line], page.kefu_log


def test_an_agent_transfers_a_conversation_to_another(kefu_site: KefuSite, new_page: Callable[..., Any]) -> None:
    pages = {name: sign_in(new_page, kefu_site, name, locale="en-US") for name in ("a1", "a2")}
    with visitor(kefu_site) as v:
        opened = v.service.open(first_message="I want to raise my card limit")
        cid, seen = opened.conversation_id, []
        owner = opened.agent
        other = "a2" if owner == "a1" else "a1"
        page = pages[owner]
        show(page, cid)
        page.keyboard.press("Alt+KeyT")
        dialog = page.get_by_test_id("transfer-dialog")
        expect(dialog).to_be_visible()
        page.get_by_test_id("transfer-target").fill(other)
        page.get_by_test_id("transfer-note").fill("limits are a2's")
        page.get_by_test_id("transfer-confirm").click()
        expect(dialog).to_be_hidden()
        expect(conversation(page, cid)).to_have_attribute("data-state", "gone")
        expect(page.get_by_test_id("reply-input")).to_be_disabled()
        # The new owner sees it with its whole history, and may answer.
        target = pages[other]
        expect(log_line(target, "raise my card limit")).to_be_visible()
        receive_until(v, lambda m: m.is_system_event and '"transferred"' in m.text, seen)
        target.get_by_test_id("reply-input").fill("Hello, I can help with the limit.")
        target.get_by_test_id("reply-send").click()
        answer = receive_until(v, lambda m: m.text == "Hello, I can help with the limit.", seen)
        assert answer.sender == other
        end(v, cid)


def test_a_supervisor_whispers_and_the_visitor_never_sees_it(kefu_site: KefuSite, new_page: Callable[..., Any]) -> None:
    agent = sign_in(new_page, kefu_site, "a1")
    supervisor = sign_in(new_page, kefu_site, "sup")
    with visitor(kefu_site) as v:
        opened = v.service.open(first_message="你们的服务太差了，我非常生气！")
        cid, seen = opened.conversation_id, []
        show(agent, cid)
        # Watch from the wall (by id), then whisper.
        supervisor.get_by_test_id("watch-input").fill(str(cid))
        supervisor.get_by_test_id("watch-submit").click()
        expect(supervisor.get_by_test_id("watched-title")).to_have_attribute("data-conversation-id", str(cid))
        expect(log_line(supervisor, "服务太差", log="watched-log")).to_be_visible()
        supervisor.get_by_test_id("whisper-input").fill("先道歉，再提出补偿方案")
        supervisor.get_by_test_id("whisper-send").click()
        whisper = log_line(agent, "先道歉")
        expect(whisper).to_have_attribute("data-kind", "whisper")
        expect(whisper).to_have_attribute("data-channel", "1")
        # The agent answers; the visitor gets the answer and never the whisper, live or in its history.
        agent.get_by_test_id("reply-input").fill("非常抱歉给您带来不便")
        agent.get_by_test_id("reply-send").click()
        receive_until(v, lambda m: m.text == "非常抱歉给您带来不便", seen)
        expect(log_line(supervisor, "非常抱歉", log="watched-log")).to_be_visible()
        history = v.sync(cid, 0, 100)
        assert all("先道歉" not in m.text for m in [*seen, *history]), texts([*seen, *history])
        with pytest.raises(RequestRefused):
            v.sync(staff_channel(cid), 0, 100)
        end(v, cid)


def test_an_agent_approves_an_ai_draft(kefu_site: KefuSite, new_page: Callable[..., Any]) -> None:
    page = sign_in(new_page, kefu_site, "a1")
    with visitor(kefu_site) as v:
        opened = v.service.open(attributes={"channel": "app"}, first_message="你好")
        cid, seen = opened.conversation_id, []
        show(page, cid)
        v.send(cid, "我的卡丢了，怎么办？")
        draft = page.get_by_test_id("draft")
        expect(draft).to_contain_text(DRAFT)
        expect(page.get_by_test_id("visitor-facts")).to_contain_text("card_loss")
        if SCREENSHOTS:  # with the sentiment score in the picture (it comes from the scorer, a moment later)
            expect(page.get_by_test_id("sentiment")).to_contain_text("%")
        shoot(page, "console-agent.png")
        page.keyboard.press("Alt+KeyA")  # approve the newest draft
        expect(draft).to_have_count(0)
        answer = receive_until(v, lambda m: m.text == DRAFT, seen)
        assert answer.sender == "a1"
        expect(log_line(page, DRAFT)).to_have_count(1)
        # Edit: the visitor gets the agent's text, not the draft's.
        v.send(cid, "卡又丢了")
        expect(draft).to_have_count(1)
        page.keyboard.press("Alt+KeyE")
        editor = page.get_by_test_id("draft-editor")
        expect(editor).to_be_focused()
        editor.fill("请带身份证到网点补办新卡。")
        editor.press("Control+Enter")
        expect(draft).to_have_count(0)
        receive_until(v, lambda m: m.text == "请带身份证到网点补办新卡。", seen)
        # Reject: nothing reaches the visitor.
        v.send(cid, "我想挂失")
        expect(draft).to_have_count(1)
        page.get_by_test_id("draft-reject").click()
        expect(draft).to_have_count(0)
        v.send(cid, "好的")
        expect(log_line(page, "好的")).to_be_visible()
        history = [m.text for m in v.sync(cid, 0, 100)]
        assert history.count(DRAFT) == 1, history
        end(v, cid)


def test_a_reload_shows_the_agents_conversations_again(kefu_site: KefuSite, new_page: Callable[..., Any]) -> None:
    page = sign_in(new_page, kefu_site, "a1", locale="en-US")
    with visitor(kefu_site) as v:
        opened = v.service.open(first_message="Is my transfer through?")
        cid = opened.conversation_id
        show(page, cid)
        expect(log_line(page, "my transfer through")).to_be_visible()
        page.reload()  # the session and the conversations' ids are in this tab's sessionStorage
        expect(page.get_by_test_id("status-select")).to_have_attribute("data-applied", "online")
        show(page, cid)
        expect(log_line(page, "my transfer through")).to_have_attribute("data-kind", "visitor")
        page.get_by_test_id("reply-input").fill("Yes, it is.")
        page.keyboard.press("Control+Enter")
        receive_until(v, lambda m: m.text == "Yes, it is.", [])
        end(v, cid)


def test_signing_out_drops_and_revokes_the_credential(kefu_site: KefuSite, new_page: Callable[..., Any]) -> None:
    page = new_page(locale="en-US")
    page.goto(kefu_site.console_url)
    page.get_by_test_id("signin-name").fill("a2")
    page.get_by_test_id("signin-password").fill("not the password")
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-error")).to_contain_text("Sign-in failed")
    page = sign_in(new_page, kefu_site, "a2", locale="en-US")
    stored = page.evaluate("({session: sessionStorage, local: localStorage})")
    session = json.loads(stored["session"]["kefu.console.session"])
    assert session["app_id"] == "a2" and session["role"] == "agent"
    assert session["secret"] not in json.dumps(stored["local"]), "the credential is kept in sessionStorage only"
    page.get_by_test_id("signout-button").click()
    expect(page.get_by_test_id("signin")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    pins = (kefu_site.server.data_dir / "keys" / "pins.txt").read_text().split()
    client = BlockingClient(
        "127.0.0.1", kefu_site.server.port, app_id="a2", app_secret=session["secret"],
        server_pins=frozenset(pins), reconnect=False,
    )  # fmt: skip
    with pytest.raises(AuthFailed):
        client.connect()
    client.close()


def test_every_text_is_in_both_languages_and_the_switch_applies_it(
    kefu_site: KefuSite, new_page: Callable[..., Any]
) -> None:
    page = new_page(locale="en-US")
    page.goto(kefu_site.console_url)
    expect(page.get_by_test_id("signin-submit")).to_have_text("Sign in")
    missing = page.evaluate(
        r"""async () => {
        const { strings } = await import("./i18n.js");
        const all = strings();
        const used = [...document.querySelectorAll("[data-i18n],[data-i18n-label],[data-i18n-placeholder]")]
          .map((e) => e.dataset.i18n || e.dataset.i18nLabel || e.dataset.i18nPlaceholder);
        for (const file of ["app.js", "agent.js", "wall.js", "messagelog.js", "transfer.js"]) {
          const source = await (await fetch(file)).text();
          for (const m of source.matchAll(/\bt\("(\w+)"/g)) used.push(m[1]);
        }
        for (const s of ["waiting", "assigned", "transferred", "closed", "gone"]) used.push(`state_${s}`);
        for (const s of ["online", "busy", "away", "offline"]) used.push(`status_${s}`);
        const keys = new Set([...Object.keys(all.en), ...Object.keys(all.zh), ...used]);
        return { missing: [...keys].filter((k) => !(k in all.en) || !(k in all.zh)), used: used.length };
    }"""
    )
    assert missing["used"] > 100, missing  # the page's keys and the modules' t("...") calls were found
    assert missing["missing"] == [], missing
    page.get_by_test_id("language-select").select_option("zh")
    expect(page.get_by_test_id("signin-submit")).to_have_text("登录")
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.evaluate("document.activeElement.blur()")  # "?" opens the help outside a text box
    page.keyboard.press("?")
    expect(page.get_by_test_id("help-dialog")).to_be_visible()
    expect(page.get_by_test_id("shortcuts")).to_contain_text("Alt")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("help-dialog")).to_be_hidden()
    # The choice is remembered for the next visit (localStorage holds the language, never a credential).
    page.reload()
    expect(page.get_by_test_id("signin-submit")).to_have_text("登录")
    assert page.evaluate("Object.keys(localStorage)") == ["kefu.console.language"]
