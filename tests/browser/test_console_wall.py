"""The supervisor's live wall in Debian's Chromium against a real `kefu serve`: its figures (from the HTTP API's
GET /v1/wall) against the server's own /metrics, and watching a conversation with negative sentiment from there.

With KEFU_SCREENSHOTS=DIR set, the test saves docs/console.md's picture of the wall there.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import KefuSite
from .test_console import TIMEOUT_S, end, log_line, shoot, show, sign_in, visitor

pytest.importorskip("playwright.sync_api", reason="needs the test extra: pip install -e '.[test]'")
from playwright.sync_api import expect

METRIC = re.compile(r"^(kefu_service_waiting_conversations|kefu_service_agents)\{([^}]*)\} ([0-9.e+-]+)$", re.M)
LONGEST = re.compile(r'^kefu_service_longest_wait_seconds\{[^}]*group="cards"[^}]*\} ([0-9.e+-]+)$', re.M)
ANGRY = "你们的服务太差了，太让人失望了，我非常生气，要投诉！"
"""A visitor message the sentiment model scores clearly negative."""


def metric_figures(text: str) -> dict[tuple[str, str, str], float]:
    """(metric, tenant, group or state) -> value, for the wall's series in a Prometheus text."""
    figures = {}
    for name, labels, value in METRIC.findall(text):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        figures[(name, pairs["tenant"], pairs.get("group", pairs.get("state", "")))] = float(value)
    return figures


def wall_figures(page: Any) -> dict[tuple[str, str, str], float]:
    """The same figures as the wall shows them."""
    rows = page.evaluate(
        """() => {
        const out = [];
        for (const r of document.querySelectorAll('[data-testid="wall-group-row"]'))
          out.push(["kefu_service_waiting_conversations", r.dataset.tenant, r.dataset.group,
                    r.querySelector('[data-testid="wall-waiting"]').dataset.value]);
        for (const r of document.querySelectorAll('[data-testid="wall-agent-row"]'))
          for (const c of r.querySelectorAll('td[data-state]'))
            out.push(["kefu_service_agents", r.dataset.tenant, c.dataset.state, c.textContent]);
        return out;
    }"""
    )
    return {(name, tenant, label): float(value) for name, tenant, label, value in rows}


def scored(agent: Any, angry: Any, conversation_id: int) -> None:
    """Wait until the agent's page shows the conversation's sentiment score. The scorer skips messages when it is
    overloaded (spec 13.10: unscored, never delayed), as on a busy test machine: then the visitor says it again."""
    for _ in range(3):
        try:
            expect(agent.get_by_test_id("sentiment")).to_contain_text("%")
            return
        except AssertionError:
            angry.send(conversation_id, ANGRY)
    expect(agent.get_by_test_id("sentiment")).to_contain_text("%")


def test_the_wall_matches_the_metrics_and_watches_from_there(kefu_site: KefuSite, new_page: Callable[..., Any]) -> None:
    supervisor = sign_in(new_page, kefu_site, "sup", locale="en-US")
    agent = sign_in(new_page, kefu_site, "a1")
    away = sign_in(new_page, kefu_site, "a2")
    away.get_by_test_id("status-select").select_option("away")
    expect(away.get_by_test_id("status-select")).to_have_attribute("data-applied", "away")
    with visitor(kefu_site) as angry, visitor(kefu_site) as v1, visitor(kefu_site) as v2:
        # One conversation with a1, scored negative; two waiting in "cards", which a1 does not serve now (away: a2).
        opened = angry.service.open(first_message=ANGRY)
        assert opened.agent == "a1", opened
        show(agent, opened.conversation_id)
        scored(agent, angry, opened.conversation_id)
        agent.get_by_test_id("status-select").select_option("busy")
        expect(agent.get_by_test_id("status-select")).to_have_attribute("data-applied", "busy")
        waiting = [v.service.open(group="cards", first_message="请问营业时间").conversation_id for v in (v1, v2)]
        cards = supervisor.locator('[data-testid="wall-group-row"][data-tenant="bank"][data-group="cards"]')
        try:
            expect(cards.get_by_test_id("wall-waiting")).to_have_attribute("data-value", "2")
        except AssertionError as exc:
            problem = supervisor.get_by_test_id("wall-error").text_content()
            raise AssertionError(f"the wall: {problem!r}; {supervisor.kefu_log}") from exc
        # The wall's counts are the metrics' (the page polls every 1.5 s: wait for a poll after the same state).
        deadline, wall, metrics = time.monotonic() + TIMEOUT_S, {}, {}
        while time.monotonic() < deadline:
            wall, metrics = wall_figures(supervisor), metric_figures(kefu_site.metrics())
            if metrics and wall == metrics:
                break
            time.sleep(0.3)
        assert wall == metrics, (wall, metrics)
        assert metrics[("kefu_service_waiting_conversations", "bank", "cards")] == 2
        assert metrics[("kefu_service_agents", "bank", "busy")] == 1
        assert metrics[("kefu_service_agents", "bank", "away")] == 1
        # The longest wait as shown was computed before this scrape: positive, and not above the scrape's figure.
        shown = float(cards.get_by_test_id("wall-longest-wait").get_attribute("data-value") or 0)
        scraped = LONGEST.search(kefu_site.metrics())
        assert scraped is not None
        assert 0 < shown <= float(scraped.group(1)), (shown, scraped.group(1))
        expect(supervisor.get_by_test_id("wall-agent").filter(has_text="a1")).to_contain_text("1/4")
        # The negative conversation is listed; Watch opens it with its history.
        row = supervisor.locator(f'[data-testid="wall-negative-row"][data-conversation-id="{opened.conversation_id}"]')
        expect(row).to_be_visible()
        shoot(supervisor, "console-wall.png")
        row.get_by_test_id("wall-watch").click()
        expect(supervisor.get_by_test_id("watched-title")).to_have_attribute(
            "data-conversation-id", str(opened.conversation_id)
        )
        expect(log_line(supervisor, "要投诉", log="watched-log").first).to_be_visible()  # said once or more
        for v, cid in ((angry, opened.conversation_id), *zip((v1, v2), waiting, strict=True)):
            end(v, cid)
