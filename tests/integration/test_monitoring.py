"""Monitoring end to end: a real `kefu serve` (alone, and with worker processes) driven through a customer-service
flow by real clients, scraped over HTTP. The contact-centre series say what happened; the exposition has the shape
issue #16 point 8 asks for; every metric the shipped dashboard and alert rules query is one the server exports."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kefu.client import AgentState, AuthFailed, Client
from kefu.protocol.frames import ContentType

from .conftest import ServerProcess
from .service_harness import service_server, users
from .workers_harness import metric

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "systemd" / "grafana" / "kefu-dashboard.json"
RULES = ROOT / "systemd" / "prometheus" / "kefu-alerts.yml"
OPERATIONS = ROOT / "systemd" / "OPERATIONS.md"
NAME = re.compile(r"\b(?:kefu|process)_[a-z0-9_]+\b")
PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus makes itself (the rules use `up`; it is matched as a word, not by NAME)."""
WAIT_S = 10.0


def scrape(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


def scrape_until(server: ServerProcess, ready: object) -> str:
    """Scrape until `ready(text)` holds (the desk publishes its figures every queue tick); the last text."""
    deadline = time.monotonic() + WAIT_S
    text = scrape(server)
    while not ready(text) and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)
        text = scrape(server)
    return text


@dataclass
class Observed:
    """What the scrapes showed at each step of the scenario."""

    queued: str
    abandoned: str
    after_login_failure: str


async def scenario(server: ServerProcess) -> Observed:
    """a1 online (capacity 1) and a2 away; v1 is assigned to a1 and answered; v2 waits; v3 waits and gives up; a
    login with a wrong secret fails."""
    async with users(server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        await connect("a2", status=AgentState.AWAY)
        v1, v2, v3 = await connect("v1"), await connect("v2"), await connect("v3")
        first = await v1.service.open()
        assert first.agent == "a1"
        await a1.send(first.conversation_id, "您好，请问有什么可以帮您？", content_type=ContentType.TEXT)
        await v2.service.open()
        queued = await asyncio.to_thread(
            scrape_until, server, lambda t: metric(t, "kefu_service_first_answer_seconds_count", tenant="bank") == 1
            and metric(t, "kefu_service_waiting_conversations", tenant="bank", group="general") == 1,
        )  # fmt: skip
        third = await v3.service.open()
        await v3.service.end(third.conversation_id, "gave up")
        abandoned = await asyncio.to_thread(
            scrape_until, server, lambda t: metric(t, "kefu_service_abandoned_total", tenant="bank") == 1
        )
        wrong = Client(
            "127.0.0.1", server.port, app_id="v4", app_secret=bytes(32), server_pins=server.pins, reconnect=False
        )
        with pytest.raises(AuthFailed):
            await wrong.connect()
        failed = await asyncio.to_thread(
            scrape_until, server, lambda t: metric(t, "kefu_auth_failures_total", reason="bad_secret") == 1
        )
    return Observed(queued, abandoned, failed)


@pytest.fixture(scope="module", params=["single", "workers"])
def observed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    env = {"KEFU_SERVICE_SENTIMENT": "false"}  # the scorer's start-up is seconds, and nothing here needs it
    if request.param == "workers":
        env["KEFU_SERVER_WORKERS"] = "2"
    server = service_server(tmp_path_factory.mktemp(request.param), env=env)
    try:
        yield asyncio.run(scenario(server))
    finally:
        server.kill()


def test_contact_centre_figures(observed: Observed) -> None:
    text = observed.queued
    assert metric(text, "kefu_service_waiting_conversations", tenant="bank", group="general") == 1
    assert metric(text, "kefu_service_waiting_conversations", tenant="bank", group="cards") == 0, "idle groups: 0"
    assert 0 < metric(text, "kefu_service_longest_wait_seconds", tenant="bank", group="general") < WAIT_S
    assert metric(text, "kefu_service_agents", tenant="bank", state="online") == 1
    assert metric(text, "kefu_service_agents", tenant="bank", state="away") == 1
    assert metric(text, "kefu_service_agents", tenant="bank", state="busy") == 0
    assert metric(text, "kefu_service_first_answer_seconds_count", tenant="bank", group="general") == 1
    assert metric(text, "kefu_service_first_answer_seconds_bucket", tenant="bank", group="general", le="5.0") == 1
    assert metric(text, "kefu_service_abandoned_total", tenant="bank") == 0
    after = observed.abandoned
    assert metric(after, "kefu_service_abandoned_total", tenant="bank", group="general") == 1
    assert metric(after, "kefu_service_waiting_conversations", tenant="bank", group="general") == 1, "v2 still waits"
    assert metric(after, "kefu_service_first_answer_seconds_count", tenant="bank") == 1, "v2 and v3 never answered"


def test_failed_login_counted_by_reason_with_its_suite(observed: Observed) -> None:
    text = observed.after_login_failure
    assert metric(text, "kefu_auth_failures_total", reason="bad_secret") == 1
    assert metric(text, "kefu_auth_failures_total") == 1
    assert metric(text, "kefu_handshakes_total", result="failed") == 1
    assert metric(text, "kefu_handshakes_total", result="failed", suite="none") == 0, "the suite was known"


def test_exposition_shape(observed: Observed) -> None:
    text = observed.after_login_failure
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert not [n for n in names if n.endswith("_created")]
    assert 'code="OK"' not in text
    assert metric(text, "kefu_errors_total", code="AUTH_FAILED") == 1
    assert "kefu_queue_depth" not in names
    assert {"kefu_commit_queue_writes", "kefu_outbound_buffered_bytes"} <= names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    return exprs + [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]


def rule_expressions() -> list[str]:
    """Every `expr:` of the rules file, one-line or a `|` block."""
    exprs: list[str] = []
    lines = RULES.read_text().splitlines()
    for i, line in enumerate(lines):
        key, _, value = line.strip().partition(": ")
        if key != "expr" and line.strip() != "expr: |":
            continue
        if line.strip() != "expr: |":
            exprs.append(value)
            continue
        indent = len(line) - len(line.lstrip())
        block = [b for b in lines[i + 1 :]]
        exprs.append(" ".join(b.strip() for b in _indented(block, indent)))
    return exprs


def _indented(lines: list[str], indent: int) -> Iterator[str]:
    for line in lines:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            return
        yield line


def test_dashboard_and_rules_query_only_exported_metrics(observed: Observed) -> None:
    exported = {line.split("{")[0].split(" ")[0] for line in observed.after_login_failure.splitlines() if line}
    exported |= {line.split(" ")[2] for line in observed.after_login_failure.splitlines() if line.startswith("# TYPE")}
    for source, exprs in (("dashboard", dashboard_expressions()), ("rules", rule_expressions())):
        assert len(exprs) >= 10, f"the {source} expressions were found"
        for expr in exprs:
            used = set(NAME.findall(expr)) | ({"up"} & set(re.findall(r"\w+", expr)))
            assert used, f"{source}: no metric in {expr!r}"
            assert used - PROMETHEUS_OWN <= exported, (
                f"{source}: {sorted(used - exported - PROMETHEUS_OWN)} in {expr!r}"
            )


def test_the_operations_guide_names_exported_metrics(observed: Observed) -> None:
    text = OPERATIONS.read_text()
    section = text[text.index("\n## Monitoring") : text.index("\n## ", text.index("\n## Monitoring") + 1)]
    named = {n for n in NAME.findall(section) if not n.endswith("_")}
    exported = {line.split(" ")[2] for line in observed.after_login_failure.splitlines() if line.startswith("# TYPE")}
    assert len(named) >= 20
    assert named <= exported, sorted(named - exported)
