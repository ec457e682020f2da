"""The service layer's pure parts: the directory file, the lifecycle table, the router and its queues."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kefu.protocol.frames import AgentState, ConversationState
from kefu.server.engine.messages import SendRequest
from kefu.server.service.desk import TABLES as DESK_TABLES
from kefu.server.service.directory import (
    DEFAULT_GROUP,
    AgentEntry,
    Directory,
    DirectoryError,
    GroupEntry,
    load_directory,
)
from kefu.server.service.model import TRANSITIONS, IllegalTransition, ServiceConversation
from kefu.server.service.router import Router
from kefu.server.storage.store import Store

GROUPS = {
    "general": GroupEntry("general", "bank"),
    "cards": GroupEntry("cards", "bank", frozenset({"cards"})),
    "other": GroupEntry("other", "o"),
}
AGENTS = {
    "a1": AgentEntry("a1", frozenset({"general", "cards"}), frozenset({"cards"}), 2),
    "a2": AgentEntry("a2", frozenset({"general"}), frozenset(), 1),
    "a3": AgentEntry("a3", frozenset(), frozenset({"cards"}), 1),  # no list: every group it has the skills for
}


def router() -> Router:
    r = Router(Directory(groups=GROUPS, agents=AGENTS))
    for name in AGENTS:
        runtime = r.agent(name, "bank")
        runtime.status, runtime.devices = AgentState.ONLINE, 1
    return r


def test_choose_needs_skills_and_capacity_then_least_loaded() -> None:
    r = router()
    chosen, trace = r.choose(GROUPS["cards"], (), None)
    assert chosen is not None and chosen.name in ("a1", "a3")
    assert trace["refused"] == {}
    assert "a2" not in trace["candidates"], "a2 does not serve cards"
    r.assign(r.agents["a1"], 1, now=1.0)
    chosen, trace = r.choose(GROUPS["cards"], (), None)
    assert chosen is not None and chosen.name == "a3", "a1 is at 1/2, a3 at 0/1: a3 is less loaded"
    r.assign(r.agents["a3"], 2, now=2.0)
    chosen, trace = r.choose(GROUPS["cards"], (), None)
    assert chosen is not None and chosen.name == "a1"
    r.assign(r.agents["a1"], 3, now=3.0)
    chosen, trace = r.choose(GROUPS["cards"], (), None)
    assert chosen is None and trace["result"] == "no agent free"
    assert trace["refused"] == {"a1": "at capacity 2/2", "a3": "at capacity 1/1"}


def test_sticky_breaks_ties_only() -> None:
    r = router()
    chosen, trace = r.choose(GROUPS["general"], (), "a2")
    assert chosen is not None and chosen.name == "a2" and trace["why"] == "least loaded, sticky"
    r.assign(r.agents["a2"], 1, now=1.0)
    chosen, _ = r.choose(GROUPS["general"], (), "a2")
    assert chosen is not None and chosen.name == "a1", "the sticky agent is busier: least loaded wins"


def test_status_and_devices_gate_routing() -> None:
    r = router()
    r.agents["a1"].status = AgentState.AWAY
    r.agents["a3"].devices = 0
    chosen, trace = r.choose(GROUPS["cards"], (), None)
    assert chosen is None
    assert trace["refused"] == {"a1": "away", "a3": "not connected"}


def test_extra_skills_from_a_rule() -> None:
    r = router()
    chosen, trace = r.choose(GROUPS["general"], ("cards",), None)
    assert chosen is not None and chosen.name == "a1"
    assert trace["refused"] == {"a2": "lacks skills cards"}


def test_queue_order_positions_and_overflow() -> None:
    r = Router(Directory(groups={"g": GroupEntry("g", "", overflow_to="h", overflow_after_s=10), "h": GroupEntry("h")}))
    g = ("", "g")
    r.enqueue(g, 1, priority=0, since=100.0)
    r.enqueue(g, 2, priority=0, since=101.0)
    r.enqueue(g, 3, priority=5, since=102.0)
    assert r.positions(g) == [(3, 1), (1, 2), (2, 3)], "priority first, then arrival"
    assert [r.position(c) for c in (1, 2, 3)] == [2, 3, 1]
    assert r.dequeue(3) == g and r.position(1) == 1 and r.position(3) == 0
    assert [(group.key, c) for group, c in r.overdue(110.5)] == [(g, 1)]
    assert [(group.key, c) for group, c in r.overdue(111.0)] == [(g, 1), (g, 2)]


def test_waiting_for_takes_the_best_conversation_the_agent_may_take() -> None:
    r = router()
    r.enqueue(("bank", "general"), 10, priority=0, since=1.0)
    r.enqueue(("bank", "cards"), 11, priority=0, since=0.5)
    r.enqueue(("o", "other"), 9, priority=0, since=0.1)
    assert r.waiting_for(r.agents["a2"], lambda _: ()) == (GROUPS["general"], 10), "a2 cannot take cards"
    assert r.waiting_for(r.agents["a1"], lambda _: ()) == (GROUPS["cards"], 11), "the earliest of a1's groups"
    r.enqueue(("bank", "general"), 12, priority=9, since=2.0)
    assert r.waiting_for(r.agents["a1"], lambda _: ()) == (GROUPS["general"], 12), "priority before arrival"


def test_lifecycle_table() -> None:
    conv = ServiceConversation(1 << 62, "bank", "v1", "", "general", 0)
    assert conv.apply("assign") is ConversationState.ASSIGNED
    assert conv.apply("transfer_agent") is ConversationState.TRANSFERRED
    assert conv.apply("transfer_group") is ConversationState.WAITING
    assert conv.apply("close") is ConversationState.CLOSED
    for event in {e for _, e in TRANSITIONS}:
        with pytest.raises(IllegalTransition, match="state closed"):
            conv.apply(event)


def test_record_round_trip_and_trace_bound() -> None:
    conv = ServiceConversation((1 << 62) + 5, "bank", "app", "cust", "general", 7, {"vip": "3"})
    for i in range(100):
        conv.note({"step": "x", "i": i})
    conv.owner, conv.watchers = "a1", ["sup"]
    back = ServiceConversation.decode(conv.encode())
    assert back == conv
    assert len(back.trace) == 64 and back.trace[0]["i"] == 36
    assert back.members() == ("app", "a1", "sup") and back.staff_members() == ("a1", "sup")
    assert back.visitor_key == "app/cust" and back.staff == conv.id | 1 << 63


def test_directory_file(tmp_path: Path) -> None:
    (tmp_path / "r.lua").write_text("function route(v) return nil end")
    path = tmp_path / "service.toml"
    path.write_text(
        '[tenants.bank]\ndefault_group = "g"\nrules = "r.lua"\n'
        '[groups.g]\ntenant = "bank"\nskills = ["x"]\noverflow_to = "h"\noverflow_after_s = 5\n'
        '[groups.h]\ntenant = "bank"\n'
        '[agents.a]\ngroups = ["g"]\nmax_concurrent = 3\n'
        '[supervisors.s]\ngroups = ["g", "h"]\n'
    )
    d = load_directory(path)
    assert d.tenant("bank").rule_source == "function route(v) return nil end"
    assert d.group("bank", "g") == GroupEntry("g", "bank", frozenset({"x"}), "h", 5.0)
    assert d.group("other", "g") is None and d.group("bank", DEFAULT_GROUP) is None, "groups are the file's"
    assert d.agent("a").max_concurrent == 3 and d.agent("unlisted").max_concurrent == 5
    assert d.supervised_groups("s") == {"g", "h"}
    default = load_directory(None)
    assert default.group("", DEFAULT_GROUP) == GroupEntry(DEFAULT_GROUP)
    assert default.group("bank", DEFAULT_GROUP) == GroupEntry(DEFAULT_GROUP, "bank"), "every tenant has one"
    assert default.group("bank", "cards") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[groups.g]\noverflow_to = "nope"\n', "unknown group 'nope'"),
        ('[groups.g]\ncolour = "red"\n', "unknown keys"),
        ('[agents.a]\ngroups = ["missing"]\n', "unknown group 'missing'"),
        ("[agents.a]\nmax_concurrent = -1\n", "max_concurrent"),
        ("[groups.g]\nmax_queue = 0\n", "max_queue"),
        ('[tenants.t]\nrules = "missing.lua"\n', "rules"),
        ("[wat]\n", "unknown sections"),
        ("not toml [", "service.toml"),
    ],
)
def test_directory_errors_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "service.toml"
    path.write_text(text)
    with pytest.raises(DirectoryError, match=message):
        load_directory(path)


def test_store_membership_change_and_service_records(tmp_path: Path) -> None:
    store = Store(tmp_path / "wal", tables=DESK_TABLES)
    try:
        conv = (1 << 62) + 1
        sysmsg = SendRequest("#kefu", os.urandom(16), conv, 4, b"{}", (), create_members=("v",), system=True,
                             puts=(("service", b"k", b"record"),))  # fmt: skip
        [created] = store.commit([sysmsg], [], now_ms=1)
        assert created.status == 0 and created.members == ("v",) and store.members(conv) == ("v",)
        assert store.get_record("service", b"k") == b"record"
        change = SendRequest("#kefu", os.urandom(16), conv, 4, b"{}", (), system=True, set_members=("v", "a1"))
        [changed] = store.commit([change], [], now_ms=2)
        assert changed.members == ("v", "a1") and store.members(conv) == ("v", "a1")
        assert store.conversations_of("a1") == [conv]
        move = SendRequest("#kefu", os.urandom(16), conv, 4, b"{}", (), system=True, set_members=("v", "a2"))
        [moved] = store.commit([move], [], now_ms=3)
        assert moved.members == ("v", "a1", "a2"), "the old owner hears of the transfer, then is no member"
        assert store.members(conv) == ("v", "a2") and store.conversations_of("a1") == []
        silent = SendRequest("#kefu", os.urandom(16), conv, 4, b"", (), system=True, set_members=("v", "a2", "s"),
                             silent=True, puts=(("service", b"k", None),))  # fmt: skip
        [quiet] = store.commit([silent], [], now_ms=4)
        assert quiet.status == 0 and quiet.message is None and store.last_seq(conv) == 3
        assert store.members(conv) == ("v", "a2", "s") and store.get_record("service", b"k") is None
        [outsider] = store.commit([SendRequest("x", os.urandom(16), conv, 1, b"hi", ())], [], now_ms=5)
        assert outsider.status == 403, "a non-system sender must still be a member"
        bad = SendRequest("#kefu", os.urandom(16), conv, 4, b"{}", (), system=True, puts=(("messages", b"k", b""),))
        [refused] = store.commit([bad], [], now_ms=6)
        assert refused.status == 400, "puts may only touch the service databases"
    finally:
        store.close()
