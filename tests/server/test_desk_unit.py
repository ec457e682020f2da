"""The customer-service desk (kefu.server.service.desk.Desk, with its directory, router and model) against fakes of
its ServiceHost, Profiles and Device ports (spec/PROTOCOL.md section 13): opening and routing under capacity, queues
and positions, transfers, ending, watching, drafts, authorization per role, agents coming and going, and that every
change is written through `ServiceHost.write` as a system message with its records.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import (
    SERVICE_BASE,
    SYSTEM_SENDER,
    AgentState,
    AgentStatus,
    ContentType,
    ConversationInfo,
    ConversationState,
    DraftAction,
    DraftDecision,
    EndConversation,
    Frame,
    MetaEntry,
    OpenConversation,
    Opened,
    QueuePosition,
    Result,
    Search,
    SearchResult,
    Transfer,
    Watch,
    staff_channel,
)
from kefu.server.config import Config
from kefu.server.engine.identity import Profile, Role
from kefu.server.service import access
from kefu.server.service.assist import DRAFT_KIND
from kefu.server.service.desk import TABLES, Desk
from kefu.server.service.directory import AgentEntry, Directory, GroupEntry, TenantEntry
from kefu.server.service.journal import key
from kefu.server.service.model import ServiceConversation

from .fakes import FakeHost, ManualClock, MemoryLog, ProfileTable, RecordingDevice, Written

OK = ErrorCode.OK
S = ConversationState
FIRST = SERVICE_BASE + 1
"""The first service conversation's id."""

GROUPS = {
    "general": GroupEntry("general", "bank"),
    "cards": GroupEntry("cards", "bank", frozenset({"cards"})),
    "elsewhere": GroupEntry("elsewhere", "other"),
}
DIRECTORY = Directory(
    tenants={"bank": TenantEntry("bank", "general"), "other": TenantEntry("other", "elsewhere")},
    groups=GROUPS,
    agents={
        "a1": AgentEntry("a1", frozenset({"general"}), frozenset(), 1),
        "a2": AgentEntry("a2", frozenset({"general", "cards"}), frozenset({"cards"}), 2),
        "a3": AgentEntry("a3", frozenset({"general"}), frozenset(), 1),
        "a4": AgentEntry("a4", frozenset({"cards"}), frozenset({"cards"}), 1),
        "x1": AgentEntry("x1", frozenset({"elsewhere"}), frozenset(), 1),
    },
    supervisors={"s1": frozenset({"general"}), "s2": frozenset({"cards"}), "sx": frozenset({"general"})},
)
PROFILES = {
    **{v: Profile(Role.VISITOR, "bank") for v in ("v1", "v2", "v3", "v4")},
    "app1": Profile(Role.APP, "bank"),
    "vx": Profile(Role.VISITOR, "other"),
    **{a: Profile(Role.AGENT, "bank") for a in ("a1", "a2", "a3", "a4")},
    "x1": Profile(Role.AGENT, "other"),
    "s1": Profile(Role.SUPERVISOR, "bank"),
    "s2": Profile(Role.SUPERVISOR, "bank"),
    "sx": Profile(Role.SUPERVISOR, "other"),  # named on bank's group in the directory, but of another tenant
    "i1": Profile(Role.INTEGRATION, "bank"),
    "iy": Profile(Role.INTEGRATION, "other"),
}


class Rig:
    """A desk over a FakeHost and a MemoryLog, with the devices a test connects."""

    def __init__(self, directory: Directory = DIRECTORY, log: MemoryLog | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.clock = ManualClock(1_700_000_000.0)
        self.log = log or MemoryLog(loop, tables=TABLES)
        self.host = FakeHost(Config(), loop, self.log)
        self.desk = Desk(self.host, ProfileTable(PROFILES), directory, now=self.clock)
        self.devices: dict[str, list[RecordingDevice]] = {}
        self._request_ids = itertools.count(1)
        self._refs = itertools.count(1)

    async def close(self) -> None:
        await self.log.durable()
        await self.desk.aclose()
        assert self.host.failures == [], "no background work failed"

    # --- devices ---

    def connect(self, user: str) -> RecordingDevice:
        """A device of `user` finished its handshake (as the core tells the desk)."""
        device = RecordingDevice(user)
        self.devices.setdefault(user, []).append(device)
        self.host.online.setdefault(user, []).append(device)
        self.desk.connected(device)
        return device

    def disconnect(self, device: RecordingDevice) -> None:
        self.devices[device.user].remove(device)
        self.host.online[device.user].remove(device)
        self.desk.disconnected(device)

    def device(self, user: str) -> RecordingDevice:
        """The first device of `user` still connected (one connected now if it has none)."""
        return self.devices[user][0] if self.devices.get(user) else self.connect(user)

    # --- requests ---

    def request(self, device: RecordingDevice, frame: Frame) -> int:
        """Send `frame` as a request of `device`; its request_id."""
        frame.request_id = next(self._request_ids)
        self.desk.on_request(device, frame)
        return frame.request_id

    async def ask(self, device: RecordingDevice, frame: Frame) -> Frame:
        """The answer to a request (RESULT, or OPENED)."""
        return await device.reply(self.request(device, frame))

    async def result(self, device: RecordingDevice, frame: Frame) -> tuple[int, dict[str, Any]]:
        """(status, detail) of the RESULT a request gets."""
        answer = await self.ask(device, frame)
        assert isinstance(answer, Result), answer
        return answer.status, json.loads(answer.detail)

    async def online(self, agent: str) -> RecordingDevice:
        """An agent connected and online."""
        device = self.connect(agent)
        assert (await self.result(device, AgentStatus(AgentState.ONLINE)))[0] == OK
        return device

    async def open(self, device: RecordingDevice, *, group: str = "", first: bytes = b"", customer: str = "") -> Opened:
        """OPEN_CONVERSATION with a new client_ref; the OPENED it gets."""
        ref = next(self._refs).to_bytes(16, "big")
        answer = await self.ask(device, OpenConversation(ref, customer, group, (), first))
        assert isinstance(answer, Opened), answer
        return answer

    # --- what was stored ---

    def record(self, conversation_id: int) -> ServiceConversation:
        raw = self.log.get_record("service", key(conversation_id))
        assert raw is not None
        return ServiceConversation.decode(raw)

    def events(self, conversation_id: int) -> list[dict[str, Any]]:
        """The system EVENTs of a conversation (or staff channel), in order."""
        return [
            json.loads(m.body)
            for m in self.log.messages(conversation_id)
            if m.sender == SYSTEM_SENDER and m.content_type == ContentType.EVENT
        ]

    def writes(self, conversation_id: int) -> list[Written]:
        return [w for w in self.host.writes if w.request.conversation_id == conversation_id]

    def load(self, agent: str) -> set[int]:
        return set(self.desk.router.agents[agent].conversations)


@pytest_asyncio.fixture
async def make_rig() -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(directory: Directory = DIRECTORY, log: MemoryLog | None = None) -> Rig:
        rigs.append(Rig(directory, log))
        return rigs[-1]

    yield make
    for rig in rigs:
        await rig.close()


@pytest_asyncio.fixture
async def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


# --- opening and routing -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_open_assigns_a_free_agent_once_every_write_is_durable(rig: Rig) -> None:
    await rig.online("a1")
    v1 = rig.connect("v1")
    ref = b"\x07" * 16
    request_id = rig.request(v1, OpenConversation(ref, "", "", (MetaEntry("channel", b"app"),), b""))
    assert v1.frames == [], "nothing is answered before the writes are durable"
    opened = await v1.reply(request_id)
    assert opened == Opened(FIRST, S.ASSIGNED, "general", "a1", 0, request_id=request_id)
    assert rig.events(FIRST) == [
        {"event": "opened", "group": "general", "channel": "app"},
        {"event": "assigned", "agent": "a1", "group": "general"},
    ]
    assert rig.events(staff_channel(FIRST)) == [{"event": "assigned", "agent": "a1", "group": "general"}]
    assert rig.log.members(FIRST) == ("v1", "a1") and rig.log.members(staff_channel(FIRST)) == ("a1",)
    record = rig.record(FIRST)
    assert (record.state, record.owner, record.owners, record.groups, record.visitor) == (
        S.ASSIGNED, "a1", ["a1"], ["general"], "v1",
    )  # fmt: skip
    assert record.attributes == {"channel": "app"}
    assert rig.log.get_record("service_open", key(FIRST)) == b""
    assert rig.log.get_record("agent_convs", b"a1\0" + key(FIRST)) == b""
    assert json.loads(rig.log.get_record("visitors", b"v1") or b"") == {"last_agent": "a1"}
    assert rig.log.get_record("visitors", b"ref\0v1\0\0" + ref) == key(FIRST), "what makes OPEN idempotent"
    assert rig.load("a1") == {FIRST}


@pytest.mark.asyncio
async def test_every_change_is_a_system_message_written_with_its_record(rig: Rig) -> None:
    await rig.online("a1")
    await rig.online("a2")
    v1 = rig.connect("v1")
    await rig.open(v1)
    a1 = rig.device("a1")
    assert (await rig.result(a1, Transfer(FIRST, "", "a2", "", "")))[0] == OK
    assert (await rig.result(v1, EndConversation(FIRST, "thanks")))[0] == OK
    await rig.log.durable()
    assert rig.host.writes, "the desk writes through its host"
    for written in rig.host.writes:
        r = written.request
        assert (r.sender, r.system, written.result.status) == (SYSTEM_SENDER, True, OK)
        assert r.silent or r.content_type == ContentType.EVENT
    conversation = rig.writes(FIRST)
    assert names(rig.events(FIRST)) == ["opened", "assigned", "transferred", "closed"]
    states = []
    for written in conversation:
        [stored] = [value for table, k, value in written.request.puts if table == "service" and k == key(FIRST)]
        assert stored is not None
        states.append(ServiceConversation.decode(stored).state)
    assert states == [S.WAITING, S.ASSIGNED, S.TRANSFERRED, S.CLOSED], "each write carries the record as it is then"
    assert [[table for table, _, _ in w.request.puts] for w in conversation] == [
        ["service", "service_open", "visitors", "tenant_convs"],  # the open-request reference, the tenant's index
        ["service", "service_open", "agent_convs", "visitors"],  # whose it is, and the visitor's last agent
        ["service", "service_open", "agent_convs", "visitors"],
        ["service", "service_open", "visitors"],  # the visitor's history
    ]
    assert rig.log.get_record("service_open", key(FIRST)) is None, "closed: out of the open index"
    assert rig.record(FIRST).state is S.CLOSED


@pytest.mark.asyncio
async def test_the_first_message_is_the_visitors_and_follows_opened(rig: Rig) -> None:
    v1 = rig.connect("v1")
    opened = await rig.open(v1, first="你好".encode())
    assert (opened.state, opened.position) == (S.WAITING, 1)
    [opened_event, first, queued] = rig.log.messages(FIRST)
    assert (opened_event.seq, json.loads(opened_event.body)["event"]) == (1, "opened")
    assert (first.seq, first.sender, first.content_type, first.body) == (2, "v1", ContentType.TEXT, "你好".encode())
    assert json.loads(queued.body) == {"event": "queued", "group": "general"}


@pytest.mark.asyncio
async def test_an_integration_opens_for_a_customer(rig: Rig) -> None:
    await rig.online("a1")
    i1 = rig.connect("i1")
    opened = await rig.open(i1, customer="c-42")
    record = rig.record(opened.conversation_id)
    assert (record.visitor, record.customer, record.visitor_key) == ("i1", "c-42", "i1/c-42")
    assert json.loads(rig.log.get_record("visitors", b"i1/c-42") or b"") == {"last_agent": "a1"}


@pytest.mark.parametrize(
    ("user", "frame", "code"),
    [
        ("a1", OpenConversation(b"\x01" * 16, "", "", (), b""), ErrorCode.FORBIDDEN),
        ("s1", OpenConversation(b"\x01" * 16, "", "", (), b""), ErrorCode.FORBIDDEN),
        ("v1", OpenConversation(b"\x01" * 16, "c-1", "", (), b""), ErrorCode.FORBIDDEN),
        ("i1", OpenConversation(b"\x01" * 16, "", "", (), b""), ErrorCode.BAD_REQUEST),
        ("i1", OpenConversation(b"\x01" * 16, "c\n1", "", (), b""), ErrorCode.BAD_REQUEST),
        ("v1", OpenConversation(b"\x01" * 16, "", "nope", (), b""), ErrorCode.NOT_FOUND),
        ("v1", OpenConversation(b"\x01" * 16, "", "elsewhere", (), b""), ErrorCode.NOT_FOUND),
        ("v1", OpenConversation(b"\x01" * 16, "", "", tuple(MetaEntry(f"k{i}", b"") for i in range(33)), b""),
         ErrorCode.BAD_REQUEST),
        ("v1", OpenConversation(b"\x01" * 16, "", "", (MetaEntry("k", b"x" * 257),), b""), ErrorCode.BAD_REQUEST),
        ("v1", OpenConversation(b"\x01" * 16, "", "", (), b"\xff"), ErrorCode.BAD_REQUEST),
        ("v1", OpenConversation(b"\x01" * 16, "", "", (), b"x" * 65537), ErrorCode.MESSAGE_TOO_LARGE),
    ],
)  # fmt: skip
@pytest.mark.asyncio
async def test_open_refusals(rig: Rig, user: str, frame: OpenConversation, code: ErrorCode) -> None:
    device = rig.connect(user)
    status, detail = await rig.result(device, frame)
    assert status == code and detail["reason"]
    await rig.log.durable()
    assert rig.log.requests == [] and rig.desk.open == {} and rig.host.errors == [code]
    assert (await rig.open(rig.connect("v2"))).conversation_id == FIRST, "no id was taken"


@pytest.mark.asyncio
async def test_a_repeated_open_gets_the_same_conversation(rig: Rig) -> None:
    v1 = rig.connect("v1")
    frame = OpenConversation(b"\x01" * 16, "", "", (), b"")
    first = await rig.ask(v1, frame)
    again = await rig.ask(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    assert isinstance(first, Opened) and isinstance(again, Opened)
    assert again.conversation_id == first.conversation_id == FIRST and again.position == 1
    assert names(rig.events(FIRST)) == ["opened", "queued"] and list(rig.desk.open) == [FIRST]
    assert [type(f) for f in v1.frames] == [Opened, QueuePosition, Opened], "the place is told after OPENED, once"


@pytest.mark.asyncio
async def test_a_repeat_before_the_first_open_is_durable_waits_for_it(rig: Rig) -> None:
    await rig.online("a1")
    v1 = rig.connect("v1")
    first_id = rig.request(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    again_id = rig.request(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    assert v1.frames == [], "neither is answered before the writes are durable"
    first, again = await v1.reply(first_id), await v1.reply(again_id)
    assert isinstance(first, Opened) and isinstance(again, Opened)
    assert (again.conversation_id, again.state, again.agent) == (first.conversation_id, S.ASSIGNED, "a1")


@pytest.mark.asyncio
async def test_a_repeat_of_an_open_that_failed_fails_alike_and_a_later_one_opens_anew(rig: Rig) -> None:
    v1 = rig.connect("v1")
    rig.log.failing = True
    first_id = rig.request(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    again_id = rig.request(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    for answer in (await v1.reply(first_id), await v1.reply(again_id)):
        assert isinstance(answer, Result)
        assert (answer.status, answer.conversation_id) == (ErrorCode.STORAGE_UNAVAILABLE, FIRST)
    assert rig.desk.open == {} and rig.desk.router.queue_length(("bank", "general")) == 0, "it holds no queue place"
    assert v1.of_type(QueuePosition) == [], "no position of a conversation that was never stored"
    rig.log.failing = False
    retried = await rig.ask(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    assert isinstance(retried, Opened) and (retried.conversation_id, retried.position) == (FIRST + 1, 1)


@pytest.mark.asyncio
async def test_without_a_directory_every_tenant_has_its_own_general_group(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(Directory())
    ours = await rig.open(rig.connect("v1"))  # tenant bank
    theirs = await rig.open(rig.connect("vx"))  # tenant other
    assert [(o.group, o.state, o.position) for o in (ours, theirs)] == [("general", S.WAITING, 1)] * 2, "two queues"
    assert rig.desk.router.queue_length(("bank", "general")) == rig.desk.router.queue_length(("other", "general")) == 1
    await rig.online("x1")  # an agent of tenant other: it takes other's visitor, not the earlier one of bank
    assert rig.load("x1") == {theirs.conversation_id} and rig.record(ours.conversation_id).state is S.WAITING
    await rig.online("a3")
    assert rig.load("a3") == {ours.conversation_id}


# --- capacity, queues and positions -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_capacity_queues_positions_and_a_freed_slot(rig: Rig) -> None:
    a1 = await rig.online("a1")  # capacity 1
    v1, v2, v3 = rig.connect("v1"), rig.connect("v2"), rig.connect("v3")
    first = await rig.open(v1)
    second = await rig.open(v2)
    told_v2 = len(v2.of_type(QueuePosition))
    third = await rig.open(v3)
    assert (first.state, first.agent, first.position) == (S.ASSIGNED, "a1", 0)
    assert (second.state, second.agent, second.position) == (S.WAITING, "", 1)
    assert (third.state, third.position) == (S.WAITING, 2)
    c2, c3 = second.conversation_id, third.conversation_id
    assert rig.load("a1") == {FIRST}, "capacity is never exceeded"
    await v3.wait_for(lambda f: isinstance(f, QueuePosition) and f.position == 2)
    assert {(f.conversation_id, f.group, f.position) for f in v2.of_type(QueuePosition)} == {(c2, "general", 1)}
    assert len(v2.of_type(QueuePosition)) == told_v2, "v2's place did not change when v3 joined: not told again"
    assert v3.of_type(QueuePosition)[-1] == QueuePosition(c3, "general", 2, 2)
    assert rig.record(c2).state is S.WAITING and rig.log.members(c2) == ("v2",)
    assert rig.record(c2).trace[-1] == {
        "step": "choose", "group": "general", "skills": [], "result": "no agent free",
        "refused": {"a1": "at capacity 1/1"},
    }  # fmt: skip
    assert rig.host.waiting[-1] == 2

    assert (await rig.result(a1, EndConversation(FIRST, "")))[0] == OK
    await rig.log.durable()
    assert rig.load("a1") == {c2}, "the freed slot went to the first waiting"
    assert (rig.record(c2).state, rig.record(c2).owner) == (S.ASSIGNED, "a1")
    assert names(rig.events(c2)) == ["opened", "queued", "assigned"] and rig.log.members(c2) == ("v2", "a1")
    assert await v3.wait_for(lambda f: isinstance(f, QueuePosition) and f.position == 1) == QueuePosition(
        c3, "general", 1, 1
    )
    assert rig.desk.router.position(c3) == 1 and rig.desk.router.position(c2) == 0


@pytest.mark.asyncio
async def test_a_queued_visitor_is_told_its_position_once(rig: Rig) -> None:
    v1 = rig.connect("v1")
    assert (await rig.open(v1)).position == 1
    await rig.log.durable()
    assert len(v1.of_type(QueuePosition)) <= 1, v1.frames


@pytest.mark.asyncio
async def test_a_conversation_moved_to_another_queue_is_told_its_new_group(make_rig: Callable[..., Rig]) -> None:
    groups = {**GROUPS, "general": GroupEntry("general", "bank", overflow_to="backup", overflow_after_s=60.0),
              "backup": GroupEntry("backup", "bank")}  # fmt: skip
    rig = make_rig(Directory(tenants=DIRECTORY.tenants, groups=groups))
    v1 = rig.connect("v1")
    await rig.open(v1)
    rig.clock.advance(60.0)
    rig.desk.tick()
    await rig.log.durable()  # the positions pass was queued before the last of the tick's commits ran
    assert rig.desk.router.queued_group(FIRST) == ("bank", "backup")
    assert v1.of_type(QueuePosition)[-1] == QueuePosition(FIRST, "backup", 1, 1)


@pytest.mark.asyncio
async def test_a_full_queue_refuses_new_conversations(make_rig: Callable[..., Rig]) -> None:
    small = Directory(tenants=DIRECTORY.tenants, groups={**GROUPS, "general": GroupEntry("general", "bank",
                      max_queue=1)}, agents=DIRECTORY.agents)  # fmt: skip
    rig = make_rig(small)
    await rig.open(rig.connect("v1"))
    answer = await rig.ask(rig.connect("v2"), OpenConversation(b"\x02" * 16, "", "", (), b""))
    assert isinstance(answer, Result) and answer.status != OK
    assert rig.desk.router.queue_length(("bank", "general")) == 1


@pytest.mark.asyncio
async def test_the_last_queue_place_goes_to_one_open_and_the_other_is_refused_unwritten(
    make_rig: Callable[..., Rig],
) -> None:
    small = Directory(tenants=DIRECTORY.tenants, groups={**GROUPS, "general": GroupEntry("general", "bank",
                      max_queue=1)}, agents=DIRECTORY.agents)  # fmt: skip
    rig = make_rig(small)
    v1, v2 = rig.connect("v1"), rig.connect("v2")
    first_id = rig.request(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    second_id = rig.request(v2, OpenConversation(b"\x02" * 16, "", "", (), b""))
    repeat_id = rig.request(v2, OpenConversation(b"\x02" * 16, "", "", (), b""))
    first, second, repeat = await v1.reply(first_id), await v2.reply(second_id), await v2.reply(repeat_id)
    assert isinstance(first, Opened) and first.position == 1
    assert isinstance(second, Result) and (second.status, second.conversation_id) == (ErrorCode.CONFLICT, 0)
    assert "general" in json.loads(second.detail)["reason"]
    assert isinstance(repeat, Result) and (repeat.status, repeat.detail) == (second.status, second.detail)
    assert set(rig.log.conversations) == {FIRST} and list(rig.desk.open) == [FIRST], "nothing of it was written"
    assert rig.desk.router.queue_length(("bank", "general")) == 1 and v2.of_type(QueuePosition) == []


@pytest.mark.asyncio
async def test_a_full_queue_takes_no_transfer_and_no_overflow(make_rig: Callable[..., Rig]) -> None:
    groups = {**GROUPS, "general": GroupEntry("general", "bank", overflow_to="cards", overflow_after_s=60.0),
              "cards": GroupEntry("cards", "bank", frozenset({"cards"}), max_queue=1)}  # fmt: skip
    rig = make_rig(Directory(tenants=DIRECTORY.tenants, groups=groups, agents=DIRECTORY.agents))
    a1 = await rig.online("a1")  # capacity 1; no agent of cards is online
    await rig.open(rig.connect("v1"))  # a1's
    await rig.open(rig.connect("v2"), group="cards")  # the one place in the cards queue
    waiting = (await rig.open(rig.connect("v3"))).conversation_id  # waits in general
    status, detail = await rig.result(a1, Transfer(FIRST, "", "", "cards", ""))
    assert status == ErrorCode.CONFLICT and "cards" in detail["reason"]
    assert (rig.record(FIRST).state, rig.record(FIRST).owner, rig.load("a1")) == (S.ASSIGNED, "a1", {FIRST})
    rig.clock.advance(60.0)
    rig.desk.tick()
    await rig.log.durable()
    assert rig.desk.router.queued_group(waiting) == ("bank", "general"), "it keeps its place instead of overflowing"
    assert names(rig.events(waiting)) == ["opened", "queued"] and rig.desk.router.queue_length(("bank", "cards")) == 1


@pytest.mark.asyncio
async def test_a_waiting_conversation_overflows_to_its_groups_overflow_group(make_rig: Callable[..., Rig]) -> None:
    groups = {**GROUPS, "general": GroupEntry("general", "bank", overflow_to="backup", overflow_after_s=60.0),
              "backup": GroupEntry("backup", "bank")}  # fmt: skip
    agents = {"a3": AgentEntry("a3", frozenset({"backup"}), frozenset(), 1)}
    rig = make_rig(Directory(tenants=DIRECTORY.tenants, groups=groups, agents=agents))
    v1, v2 = rig.connect("v1"), rig.connect("v2")
    await rig.open(v1)
    rig.clock.advance(30.0)
    second = await rig.open(v2)
    rig.clock.advance(30.0)
    rig.desk.tick()
    await rig.log.durable()
    assert rig.record(FIRST).group == "backup" and rig.desk.router.queued_group(FIRST) == ("bank", "backup")
    assert rig.desk.router.queued_group(second.conversation_id) == ("bank", "general"), "not overdue yet"
    assert names(rig.events(FIRST)) == ["opened", "queued", "overflowed", "queued"]
    await rig.online("a3")
    await rig.log.durable()
    assert (rig.record(FIRST).state, rig.record(FIRST).owner) == (S.ASSIGNED, "a3")
    assert rig.load("a3") == {FIRST}


# --- agents coming and going ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_only_an_online_agent_with_a_device_is_given_conversations(rig: Rig) -> None:
    d1 = rig.connect("a2")  # capacity 2; connected, not online yet
    v1, v2, v3 = rig.connect("v1"), rig.connect("v2"), rig.connect("v3")
    assert (await rig.open(v1)).state is S.WAITING
    assert rig.record(FIRST).trace[-1]["refused"] == {"a2": "offline"}
    assert await rig.result(d1, AgentStatus(AgentState.ONLINE)) == (OK, {"status": "online"})
    await rig.log.durable()
    assert rig.load("a2") == {FIRST}, "an agent coming online is given the waiting conversations"
    d2 = rig.connect("a2")
    rig.disconnect(d1)
    assert (await rig.open(v2)).agent == "a2", "one device left: still online"
    rig.disconnect(d2)
    runtime = rig.desk.router.agents["a2"]
    assert (runtime.status, runtime.devices, runtime.available) == (AgentState.OFFLINE, 0, False)
    assert rig.load("a2") == {FIRST, FIRST + 1} and rig.record(FIRST).owner == "a2", "its conversations stay"
    third = await rig.open(v3)
    assert third.state is S.WAITING
    assert rig.record(third.conversation_id).trace[-1]["refused"] == {"a2": "not connected"}
    rig.connect("a2")
    assert not rig.desk.router.agents["a2"].available, "a new device does not make it online again"


@pytest.mark.asyncio
async def test_agent_status_refusals_and_away(rig: Rig) -> None:
    v1, a1 = rig.connect("v1"), rig.connect("a1")
    assert (await rig.result(v1, AgentStatus(AgentState.ONLINE)))[0] == ErrorCode.FORBIDDEN
    assert (await rig.result(a1, AgentStatus(9)))[0] == ErrorCode.BAD_REQUEST
    assert await rig.result(a1, AgentStatus(AgentState.AWAY)) == (OK, {"status": "away"})
    assert (await rig.open(v1)).state is S.WAITING
    assert rig.record(FIRST).trace[-1]["refused"] == {"a1": "away"}
    assert rig.host.errors == [ErrorCode.FORBIDDEN, ErrorCode.BAD_REQUEST]


# --- transfer --------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_transfer_to_an_agent_moves_owner_members_and_loads_in_one_step(rig: Rig) -> None:
    a1, a2 = await rig.online("a1"), await rig.online("a2")
    v1 = rig.connect("v1")
    assert (await rig.open(v1)).agent == "a1", "equal loads: by name"
    status, detail = await rig.result(a1, Transfer(FIRST, "", "a2", "", "cards question"))
    assert (status, detail) == (OK, {"state": "transferred", "owner": "a2", "group": "general"})
    assert rig.load("a1") == set() and rig.load("a2") == {FIRST}
    assert rig.log.members(FIRST) == ("v1", "a2") and rig.log.members(staff_channel(FIRST)) == ("a2",)
    told = rig.writes(staff_channel(FIRST))[-1]
    assert json.loads(told.request.body) == {"event": "transferred", "agent": "a2", "group": "general"}
    assert told.result.members == ("a1", "a2"), "the previous owner is told in the staff channel"
    visitor_told = rig.writes(FIRST)[-1]
    assert json.loads(visitor_told.request.body)["event"] == "transferred" and "v1" in visitor_told.result.members
    record = rig.record(FIRST)
    assert (record.state, record.owner, record.owners) == (S.TRANSFERRED, "a2", ["a1", "a2"])
    assert record.trace[-1]["step"] == "transfer" and record.trace[-1]["note"] == "cards question"
    assert rig.log.get_record("agent_convs", b"a2\0" + key(FIRST)) == b""

    status, _ = await rig.result(a1, Transfer(FIRST, "", "a1", "", ""))
    assert status == ErrorCode.FORBIDDEN, "of two racing transfers, the old owner's second is refused"
    status, _ = await rig.result(a2, Transfer(FIRST, "a1", "a1", "", ""))
    assert status == ErrorCode.CONFLICT, "expect_owner no longer holds"
    assert rig.record(FIRST).owner == "a2"


@pytest.mark.parametrize(
    ("sender", "frame", "code"),
    [
        ("a1", Transfer(FIRST, "", "a3", "", ""), ErrorCode.NOT_FOUND),  # never connected
        ("a1", Transfer(FIRST, "", "x1", "", ""), ErrorCode.NOT_FOUND),  # another tenant's
        ("a1", Transfer(FIRST, "", "a4", "", ""), ErrorCode.CONFLICT),  # connected, not online
        ("a1", Transfer(FIRST, "", "a1", "", ""), ErrorCode.CONFLICT),  # already the owner
        ("a1", Transfer(FIRST, "", "a2", "cards", ""), ErrorCode.BAD_REQUEST),
        ("a1", Transfer(FIRST, "", "", "", ""), ErrorCode.BAD_REQUEST),
        ("a1", Transfer(FIRST, "", "", "nope", ""), ErrorCode.NOT_FOUND),
        ("a1", Transfer(FIRST, "", "", "elsewhere", ""), ErrorCode.NOT_FOUND),
        ("a1", Transfer(FIRST, "a2", "a2", "", ""), ErrorCode.CONFLICT),
        ("a2", Transfer(FIRST, "", "a2", "", ""), ErrorCode.FORBIDDEN),  # not the owner
        ("v1", Transfer(FIRST, "", "a2", "", ""), ErrorCode.FORBIDDEN),
        ("s2", Transfer(FIRST, "", "a2", "", ""), ErrorCode.NOT_FOUND),  # supervises another group: may not know of it
        ("sx", Transfer(FIRST, "", "a2", "", ""), ErrorCode.NOT_FOUND),  # named on the group, of another tenant
        ("a1", Transfer(FIRST + 9, "", "a2", "", ""), ErrorCode.NOT_FOUND),
    ],
)
@pytest.mark.asyncio
async def test_transfer_refusals(rig: Rig, sender: str, frame: Transfer, code: ErrorCode) -> None:
    await rig.online("a1")
    rig.connect("x1")
    rig.connect("a4")
    await rig.open(rig.connect("v1"))
    await rig.online("a2")
    device = rig.device(sender)
    assert (await rig.result(device, frame))[0] == code
    assert rig.record(FIRST).owner == "a1" and rig.load("a1") == {FIRST} and rig.load("a2") == set()


@pytest.mark.asyncio
async def test_transfer_to_an_agent_at_capacity_is_a_conflict_and_a_supervisor_may_transfer(rig: Rig) -> None:
    await rig.online("a1")
    await rig.online("a3")
    v1, v2 = rig.connect("v1"), rig.connect("v2")
    await rig.open(v1)
    second = await rig.open(v2)
    assert {FIRST: "a1", second.conversation_id: "a3"} == {
        c: rig.record(c).owner for c in (FIRST, second.conversation_id)
    }
    s1 = rig.connect("s1")
    assert (await rig.result(s1, Transfer(FIRST, "", "a3", "", "")))[0] == ErrorCode.CONFLICT
    assert (await rig.result(s1, EndConversation(second.conversation_id, "")))[0] == OK
    status, detail = await rig.result(s1, Transfer(FIRST, "a1", "a3", "", ""))
    assert (status, detail["owner"]) == (OK, "a3")


@pytest.mark.asyncio
async def test_an_integration_transfers_its_tenants_conversations_to_an_agent_and_to_a_group(rig: Rig) -> None:
    await rig.online("a1")
    await rig.online("a2")
    i1 = rig.connect("i1")
    conv = (await rig.open(i1, customer="c-1")).conversation_id
    assert rig.record(conv).owner == "a1"
    status, detail = await rig.result(i1, Transfer(conv, "a1", "a2", "", "to a colleague"))
    assert (status, detail["owner"]) == (OK, "a2")
    assert rig.record(conv).trace[-1] == {"step": "transfer", "by": "i1", "from": "a1", "note": "to a colleague",
                                          "to": "a2"}  # fmt: skip
    assert rig.load("a1") == set() and rig.load("a2") == {conv}
    status, detail = await rig.result(i1, Transfer(conv, "", "", "cards", ""))
    assert (status, detail["group"], detail["owner"]) == (OK, "cards", None), "waits: not back to a2, a4 not online"
    assert rig.record(conv).state is S.WAITING and rig.load("a2") == set()
    # another conversation of its tenant, one it did not open (a visitor's), to a group with an agent free:
    await rig.open(rig.connect("v1"))
    other = conv + 1
    assert rig.record(other).owner == "a1"
    status, detail = await rig.result(i1, Transfer(other, "", "", "cards", ""))
    assert (status, detail["owner"]) == (OK, "a2")
    assert [t["by"] for t in rig.record(other).trace if t.get("step") == "transfer"] == ["i1"]


@pytest.mark.asyncio
async def test_an_integration_may_not_know_of_another_tenants_conversation(rig: Rig) -> None:
    await rig.online("a1")
    await rig.online("a2")
    await rig.open(rig.connect("v1"))
    iy = rig.connect("iy")
    known = await rig.ask(iy, Transfer(FIRST, "", "a2", "", ""))
    unknown = await rig.ask(iy, Transfer(FIRST + 9, "", "a2", "", ""))
    assert isinstance(known, Result) and isinstance(unknown, Result)
    assert known.status == unknown.status == ErrorCode.NOT_FOUND
    assert json.loads(known.detail) == json.loads(unknown.detail) == {"reason": access.NO_SUCH_CONVERSATION}
    assert rig.record(FIRST).owner == "a1" and rig.load("a1") == {FIRST}


async def searched(rig: Rig, user: str, query: str) -> list[tuple[int, int, str]]:
    """(conversation, seq, snippet) of the hits of `user`'s SEARCH."""
    answer = await rig.ask(rig.device(user), Search(query, 0))
    assert isinstance(answer, SearchResult), answer
    return [(h.conversation_id, h.seq, h.snippet) for h in answer.hits]


@pytest.mark.asyncio
async def test_an_integration_searches_its_tenants_conversations_newest_first(rig: Rig) -> None:
    await rig.online("a1")
    mine = (await rig.open(rig.connect("i1"), customer="c-1", first="账单 of c-1".encode())).conversation_id
    queued = (await rig.open(rig.connect("v1"), first="账单 of v1".encode())).conversation_id  # a1 is full: waits
    theirs = (await rig.open(rig.connect("vx"), first="账单 elsewhere".encode())).conversation_id
    assert rig.record(queued).owner is None and rig.record(theirs).tenant == "other"
    assert rig.log.get_record("tenant_convs", access.tenant_conv_key("bank", mine)) == b""
    assert await searched(rig, "i1", "账单") == [(queued, 2, "账单 of v1"), (mine, 2, "账单 of c-1")]
    assert await searched(rig, "iy", "账单") == [(theirs, 2, "账单 elsewhere")]
    assert await searched(rig, "i1", "elsewhere") == []
    assert await searched(rig, "a1", "账单") == [(mine, 2, "账单 of c-1")], "an agent: the conversations it owned"
    for user in ("v1", "s1", "app1"):
        answer = await rig.ask(rig.device(user), Search("账单", 0))
        assert isinstance(answer, Result) and answer.status == ErrorCode.FORBIDDEN


@pytest.mark.asyncio
async def test_an_integrations_search_finds_owned_conversations_stored_before_the_tenant_index(rig: Rig) -> None:
    await rig.online("a1")
    await rig.online("x1")
    old = (await rig.open(rig.connect("v1"), first=b"old balance")).conversation_id
    never_owned = (await rig.open(rig.connect("v2"), first=b"queued balance")).conversation_id
    theirs = (await rig.open(rig.connect("vx"), first=b"their balance")).conversation_id
    await rig.log.durable()
    for conv, tenant in ((old, "bank"), (never_owned, "bank"), (theirs, "other")):
        del rig.log.tables["tenant_convs"][access.tenant_conv_key(tenant, conv)]  # as a store from before the index
    new = (await rig.open(rig.connect("i1"), customer="c-1", first=b"new balance")).conversation_id
    hits = await searched(rig, "i1", "balance")
    assert [c for c, _, _ in hits] == [new, old], "the owned one through a1's agent_convs; the never-owned is lost"
    assert [c for c, _, _ in await searched(rig, "iy", "balance")] == [theirs], "through x1's"


@pytest.mark.asyncio
async def test_transfer_to_a_group_waits_for_its_next_agent_or_routes_at_once(rig: Rig) -> None:
    a1 = await rig.online("a1")  # capacity 1
    v1, v2 = rig.connect("v1"), rig.connect("v2")
    await rig.open(v1)
    waiting = (await rig.open(v2)).conversation_id
    status, detail = await rig.result(a1, Transfer(FIRST, "", "", "cards", ""))
    assert (status, detail) == (OK, {"state": "waiting", "owner": None, "group": "cards"}), "no cards agent online"
    assert rig.desk.router.queued_group(FIRST) == ("bank", "cards") and rig.log.members(FIRST) == ("v1",)
    staff = rig.writes(staff_channel(FIRST))[-1]
    assert json.loads(staff.request.body) == {"event": "transferred", "group": "cards"}
    assert staff.result.members == ("a1",), "the old owner's staff channel is told"
    assert await v1.wait_for(lambda f: isinstance(f, QueuePosition)) == QueuePosition(FIRST, "cards", 1, 1)
    await rig.log.durable()
    assert rig.load("a1") == {waiting}, "the slot the transfer freed went to the next waiting conversation"

    a2 = await rig.online("a2")
    await rig.log.durable()
    record = rig.record(FIRST)
    assert (record.state, record.owner, record.group, record.groups) == (
        S.TRANSFERRED, "a2", "cards", ["general", "cards"],
    ), "waiting, then transferred when an agent of the group takes it"  # fmt: skip
    assert names(rig.events(FIRST))[-1] == "transferred"

    await rig.online("a3")
    status, detail = await rig.result(a2, Transfer(FIRST, "", "", "general", ""))
    assert (status, detail) == (OK, {"state": "transferred", "owner": "a3", "group": "general"}), "a3 was free"
    assert rig.load("a2") == set() and rig.load("a3") == {FIRST}


@pytest.mark.asyncio
async def test_transfer_to_a_group_the_agent_serves_is_not_routed_back_to_them(rig: Rig) -> None:
    """An agent who hands a conversation to a group of their own does not get it straight back from its queue: it
    waits for another agent of the group (or a transfer to them by name)."""
    a1 = await rig.online("a1")  # capacity 1, serves general; alone online
    await rig.open(rig.connect("v1"))
    status, detail = await rig.result(a1, Transfer(FIRST, "", "", "general", "needs someone else"))
    assert (status, detail) == (OK, {"state": "waiting", "owner": None, "group": "general"})
    await rig.log.durable()
    assert rig.load("a1") == set() and rig.desk.router.queued_group(FIRST) == ("bank", "general")
    rig.desk.refill()  # however often a1 is offered work, this one is not offered back
    assert rig.load("a1") == set() and rig.record(FIRST).passed_by == "a1"

    await rig.online("a3")
    await rig.log.durable()
    record = rig.record(FIRST)
    assert (record.owner, record.passed_by) == ("a3", ""), "the next agent of the group takes it"
    a3 = rig.connect("a3")
    assert (await rig.result(a3, Transfer(FIRST, "", "a1", "", "")))[0] == OK, "by name it may go back"


# --- end, watch --------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_end_closes_frees_the_owner_and_keeps_the_visitors_history(rig: Rig) -> None:
    await rig.online("a1")
    v1 = rig.connect("v1")
    await rig.open(v1)
    rig.clock.advance(5.0)
    status, detail = await rig.result(v1, EndConversation(FIRST, "solved"))
    assert (status, detail) == (OK, {"state": "closed", "owner": "a1", "group": "general"})
    record = rig.record(FIRST)
    assert (record.state, record.closed_ms) == (S.CLOSED, int(rig.clock.now * 1000))
    assert record.trace[-1] == {"step": "close", "by": "v1", "reason": "solved"}
    assert rig.events(FIRST)[-1] == {"event": "closed", "by": "v1"}
    assert rig.writes(FIRST)[-1].result.members == ("v1", "a1")
    assert rig.log.get_record("service_open", key(FIRST)) is None
    assert json.loads(rig.log.get_record("visitors", b"v1") or b"") == {"last_agent": "a1", "conversations": 1}
    assert rig.load("a1") == set() and FIRST not in rig.desk.open
    assert (await rig.result(v1, EndConversation(FIRST, "")))[0] == ErrorCode.CONFLICT, "closed already"
    assert rig.desk.check_send("v1", FIRST, ContentType.TEXT) == ErrorCode.CONFLICT
    assert rig.desk.check_send("v2", FIRST, ContentType.TEXT) == ErrorCode.NOT_FOUND, "closed, but not v2's to know"


@pytest.mark.parametrize(
    ("user", "code"),
    [("v1", OK), ("a1", OK), ("s1", OK), ("v2", ErrorCode.NOT_FOUND), ("a3", ErrorCode.FORBIDDEN),
     ("s2", ErrorCode.NOT_FOUND), ("sx", ErrorCode.NOT_FOUND), ("i1", ErrorCode.FORBIDDEN)],
)  # fmt: skip
@pytest.mark.asyncio
async def test_who_may_end(rig: Rig, user: str, code: ErrorCode) -> None:
    await rig.online("a1")
    await rig.open(rig.connect("v1"))
    device = rig.device(user)
    assert (await rig.result(device, EndConversation(FIRST, "")))[0] == code
    conv = rig.desk.find(FIRST)
    assert conv is not None and access.may_end(rig.desk, user, conv) is (code == OK)


@pytest.mark.asyncio
async def test_ending_a_waiting_conversation_moves_the_queue(rig: Rig) -> None:
    v1, v2 = rig.connect("v1"), rig.connect("v2")
    await rig.open(v1)
    second = await rig.open(v2)
    assert second.position == 2
    assert (await rig.result(v1, EndConversation(FIRST, "")))[0] == OK
    assert await v2.wait_for(lambda f: isinstance(f, QueuePosition) and f.position == 1) == QueuePosition(
        second.conversation_id, "general", 1, 1
    )
    assert rig.desk.router.queue_length(("bank", "general")) == 1 and rig.host.waiting[-1] == 1
    assert (await rig.result(v1, EndConversation(FIRST + 5, "")))[0] == ErrorCode.NOT_FOUND


@pytest.mark.asyncio
async def test_a_watcher_joins_silently_and_is_told_in_the_staff_channel(rig: Rig) -> None:
    await rig.online("a1")
    await rig.open(rig.connect("v1"))
    before = rig.log.last_seq(FIRST)
    s1 = rig.connect("s1")
    status, detail = await rig.result(s1, Watch(FIRST, 1))
    assert (status, detail) == (OK, {"state": "assigned", "owner": "a1", "group": "general"})
    assert rig.log.members(FIRST) == ("v1", "a1", "s1") and rig.log.last_seq(FIRST) == before, "no message: silent"
    assert rig.log.members(staff_channel(FIRST)) == ("a1", "s1")
    assert rig.events(staff_channel(FIRST))[-1] == {"event": "watching", "supervisor": "s1"}
    assert rig.desk.check_send("s1", FIRST, ContentType.TEXT) == ErrorCode.FORBIDDEN, "a watcher reads; it whispers"
    assert rig.desk.check_send("s1", staff_channel(FIRST), ContentType.TEXT) is None
    assert (await rig.result(s1, Watch(FIRST, 0)))[0] == OK
    assert rig.log.members(FIRST) == ("v1", "a1") and rig.log.members(staff_channel(FIRST)) == ("a1",)
    assert rig.events(staff_channel(FIRST))[-1] == {"event": "unwatched", "supervisor": "s1"}
    for user, code in (("s2", ErrorCode.NOT_FOUND), ("a1", ErrorCode.FORBIDDEN), ("v1", ErrorCode.FORBIDDEN)):
        assert (await rig.result(rig.device(user), Watch(FIRST, 1)))[0] == code, user


@pytest.mark.asyncio
async def test_a_supervisor_of_another_tenant_may_not_watch(rig: Rig) -> None:
    await rig.online("a1")
    await rig.open(rig.connect("v1"))
    assert rig.desk.can_read("sx", FIRST) is False
    assert (await rig.result(rig.connect("sx"), Watch(FIRST, 1)))[0] == ErrorCode.NOT_FOUND, "as if there were none"
    assert rig.log.members(FIRST) == ("v1", "a1")


@pytest.mark.asyncio
async def test_the_directorys_agents_count_as_offline_before_they_connect(rig: Rig) -> None:
    """kefu_service_agents: an agent the directory names is offline until a device of theirs connects, not absent."""
    rig.desk.publish_figures()
    assert rig.host.figures.agents[("bank", "offline")] == 4 and rig.host.figures.agents[("other", "offline")] == 1
    await rig.online("a1")
    rig.desk.publish_figures()
    agents = rig.host.figures.agents
    assert (agents[("bank", "online")], agents[("bank", "offline")]) == (1, 3)


# --- drafts ------------------------------------------------------------------------------------------------------


async def draft(rig: Rig, text: bytes) -> int:
    """An AI draft in the first conversation's staff channel, as a plugin's is written; its seq."""
    meta = (("kefu.kind", DRAFT_KIND), ("kefu.plugin", b"faq"), ("kefu.reply_to", b"1"))
    conv = rig.desk.open[FIRST]
    result = await rig.desk.journal.write_staff(conv, text, content_type=ContentType.TEXT, metadata=meta)
    assert result.status == OK and result.message is not None
    return result.message.seq


@pytest.mark.asyncio
async def test_the_owner_approves_edits_or_rejects_drafts(rig: Rig) -> None:
    a1 = await rig.online("a1")
    v1 = rig.connect("v1")
    await rig.open(v1)
    first, second, third = await draft(rig, b"please wait"), await draft(rig, b"draft two"), await draft(rig, b"three")
    visitor_before = rig.log.last_seq(FIRST)

    def first_answers() -> int:
        figures = rig.desk.figures.snapshot((), (), (), rig.desk.open)
        return sum(sum(group.answer_counts) for group in figures.groups.values())

    assert first_answers() == 0
    answer = await rig.ask(a1, DraftDecision(FIRST, first, DraftAction.APPROVE, b""))
    assert isinstance(answer, Result) and answer.status == OK and answer.seq == visitor_before + 1
    assert first_answers() == 1, "the approved draft is the agent's first answer (kefu_service_first_answer_seconds)"
    posted = rig.log.messages(FIRST)[-1]
    assert (posted.seq, posted.sender, posted.content_type, posted.body) == (answer.seq, "a1", ContentType.TEXT,
                                                                             b"please wait")  # fmt: skip
    assert dict(posted.metadata) == {"kefu.draft": str(first).encode(), "kefu.edited": b"0"}
    assert rig.events(staff_channel(FIRST))[-1] == {"event": "draft_approve", "draft_seq": first}

    again = await rig.ask(a1, DraftDecision(FIRST, first, DraftAction.APPROVE, b""))
    assert isinstance(again, Result) and (again.status, again.seq) == (OK, answer.seq)
    assert rig.log.last_seq(FIRST) == answer.seq, "a draft reaches the visitor at most once"

    edited = await rig.ask(a1, DraftDecision(FIRST, second, DraftAction.EDIT, "改过的".encode()))
    assert isinstance(edited, Result) and (edited.status, edited.seq) == (OK, answer.seq + 1)
    posted = rig.log.messages(FIRST)[-1]
    assert posted.body == "改过的".encode() and dict(posted.metadata)["kefu.edited"] == b"1"

    assert first_answers() == 1, "only the first answer counts"
    rejected = await rig.ask(a1, DraftDecision(FIRST, third, DraftAction.REJECT, b""))
    assert isinstance(rejected, Result) and (rejected.status, rejected.seq) == (OK, 0)
    assert rig.log.last_seq(FIRST) == edited.seq, "a rejected draft sends nothing"
    assert rig.events(staff_channel(FIRST))[-1] == {"event": "draft_reject", "draft_seq": third}
    assert not any(m.body == b"three" for m in rig.log.messages(FIRST))


@pytest.mark.asyncio
async def test_draft_decisions_are_the_owners_and_name_a_draft(rig: Rig) -> None:
    a1 = await rig.online("a1")
    await rig.online("a2")
    await rig.open(rig.connect("v1"))
    seq = await draft(rig, b"text")
    s1 = rig.connect("s1")
    await rig.result(s1, Watch(FIRST, 1))
    cases = [
        (rig.device("a2"), DraftDecision(FIRST, seq, DraftAction.APPROVE, b""), ErrorCode.FORBIDDEN),
        (s1, DraftDecision(FIRST, seq, DraftAction.APPROVE, b""), ErrorCode.FORBIDDEN),
        (rig.device("v1"), DraftDecision(FIRST, seq, DraftAction.APPROVE, b""), ErrorCode.FORBIDDEN),
        (a1, DraftDecision(FIRST, 1, DraftAction.APPROVE, b""), ErrorCode.NOT_FOUND),  # the "assigned" event
        (a1, DraftDecision(FIRST, 99, DraftAction.APPROVE, b""), ErrorCode.NOT_FOUND),
        (a1, DraftDecision(FIRST, seq, DraftAction.EDIT, b""), ErrorCode.BAD_REQUEST),
        (a1, DraftDecision(FIRST, seq, 9, b""), ErrorCode.BAD_REQUEST),
        (a1, DraftDecision(FIRST + 3, seq, DraftAction.APPROVE, b""), ErrorCode.NOT_FOUND),
    ]
    before = rig.log.last_seq(FIRST)
    for device, frame, code in cases:
        assert (await rig.result(device, frame))[0] == code, frame
    assert rig.log.last_seq(FIRST) == before


# --- authorization -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_who_may_read_a_service_conversation(rig: Rig) -> None:
    a1 = await rig.online("a1")
    await rig.online("a2")
    a4 = await rig.online("a4")  # serves cards only
    await rig.online("x1")
    await rig.open(rig.connect("v1"))  # a1's
    customers = await rig.open(rig.connect("i1"), customer="c-1")  # a1 is full: a2's
    assert (await rig.result(a1, Transfer(FIRST, "", "a4", "", "")))[0] == OK  # a1 owned it
    assert (await rig.result(a4, Transfer(FIRST, "", "a2", "", "")))[0] == OK  # and so did a4
    others = await rig.open(rig.connect("vx"))  # tenant other: x1's
    apps = await rig.open(rig.connect("app1"))  # a1's again
    c, i, x, m = FIRST, customers.conversation_id, others.conversation_id, apps.conversation_id
    staff = {cid: staff_channel(cid) for cid in (c, i, x)}
    allowed = {
        *(("v1", c), ("i1", c), ("a1", c), ("a2", c), ("a3", c), ("s1", c)),
        *(("a4", c), ("a1", staff[c]), ("a2", staff[c]), ("a3", staff[c]), ("a4", staff[c]), ("s1", staff[c])),
        *(("i1", i), ("a1", i), ("a2", i), ("a3", i), ("s1", i)),
        *(("a1", staff[i]), ("a2", staff[i]), ("a3", staff[i]), ("s1", staff[i])),
        *(("vx", x), ("iy", x), ("x1", x), ("x1", staff[x])),
        *(("app1", m), ("i1", m), ("a1", m), ("a2", m), ("a3", m), ("s1", m)),
    }
    users = ("v1", "v2", "app1", "vx", "i1", "iy", "a1", "a2", "a3", "a4", "x1", "s1", "s2", "sx")
    conversations = (c, i, x, m, *staff.values(), FIRST + 99)
    readable = {(u, cid) for u in users for cid in conversations if rig.desk.can_read(u, cid)}
    assert readable == allowed


@pytest.mark.asyncio
async def test_who_may_send_in_a_service_conversation(rig: Rig) -> None:
    await rig.online("a1")
    await rig.open(rig.connect("v1"))
    await rig.result(rig.connect("s1"), Watch(FIRST, 1))
    sends = {u: rig.desk.check_send(u, FIRST, ContentType.TEXT) for u in ("v1", "a1", "s1", "a3", "v2")}
    assert sends == {"v1": None, "a1": None, "s1": ErrorCode.FORBIDDEN, "a3": ErrorCode.FORBIDDEN,
                     "v2": ErrorCode.NOT_FOUND}  # fmt: skip
    assert rig.desk.check_send("v2", staff_channel(FIRST), ContentType.TEXT) is None, "the store checks staff members"
    assert rig.desk.check_send("v1", FIRST + 7, ContentType.TEXT) == ErrorCode.NOT_FOUND


@pytest.mark.asyncio
async def test_no_client_may_send_an_event_in_the_service_range(rig: Rig) -> None:
    """System events are the server's (section 13.2): a client's EVENT is refused BAD_REQUEST whoever sends it and
    wherever, before anything else is checked (so the refusal says nothing of the conversation either)."""
    await rig.online("a1")
    await rig.open(rig.connect("v1"))
    await rig.result(rig.connect("s1"), Watch(FIRST, 1))
    for user in ("v1", "a1", "s1", "v2"):
        for conversation in (FIRST, staff_channel(FIRST), FIRST + 7):
            assert rig.desk.check_send(user, conversation, ContentType.EVENT) == ErrorCode.BAD_REQUEST, (
                user,
                conversation,
            )
    assert rig.desk.check_send("v1", FIRST, ContentType.TEXT) is None, "the visitor may send anything else"
    assert rig.desk.check_send("v1", FIRST, ContentType.JSON) is None
    assert all(w.request.sender == SYSTEM_SENDER for w in rig.host.writes), "the desk's own events still go out"
    assert names(rig.events(FIRST)) == ["opened", "assigned"]


@pytest.mark.asyncio
async def test_a_conversation_one_may_not_know_of_is_refused_as_one_that_does_not_exist(rig: Rig) -> None:
    """Every request naming a conversation gets, from someone who may not read it, the very RESULT that a
    conversation that does not exist gets: the same status, conversation_id, seq and reason (section 13.12)."""
    await rig.online("a1")
    await rig.open(rig.connect("v1"))
    seq = await draft(rig, b"text")
    await rig.open(rig.connect("v3"))
    assert (await rig.result(rig.device("v3"), EndConversation(FIRST + 1, "")))[0] == OK  # a closed one
    missing = FIRST + 99
    requests: list[Callable[[int], Frame]] = [
        lambda c: Transfer(c, "", "a1", "", ""),
        lambda c: EndConversation(c, ""),
        lambda c: Watch(c, 1),
        lambda c: DraftDecision(c, seq, DraftAction.APPROVE, b""),
        ConversationInfo,
    ]

    async def answer(user: str, frame: Frame) -> tuple[int, int, int, bytes]:
        result = await rig.ask(rig.device(user), frame)
        assert isinstance(result, Result), result
        return result.status, result.conversation_id, result.seq, result.detail

    not_found = (ErrorCode.NOT_FOUND, 0, 0, b'{"reason":"no such conversation"}')
    for make in requests:
        assert await answer("v2", make(missing)) == not_found, make(missing)
        for user in ("v2", "vx", "sx", "x1", "iy"):  # another visitor, other tenants
            for conversation in (FIRST, FIRST + 1, staff_channel(FIRST)):
                assert await answer(user, make(conversation)) == not_found, (user, make(conversation))
    for user in ("v2", "sx"):
        assert rig.desk.check_send(user, FIRST, ContentType.TEXT) == ErrorCode.NOT_FOUND
        assert rig.desk.check_send(user, FIRST + 1, ContentType.TEXT) == ErrorCode.NOT_FOUND, "closed"
        assert rig.desk.check_send(user, missing, ContentType.TEXT) == ErrorCode.NOT_FOUND
    assert (await rig.result(rig.device("v3"), EndConversation(FIRST + 1, "")))[0] == ErrorCode.CONFLICT, (
        "its visitor, who knows of it, is told it is closed"
    )
    assert rig.record(FIRST).state is S.ASSIGNED and rig.log.members(FIRST) == ("v1", "a1"), "nothing changed"


@pytest.mark.asyncio
async def test_conversation_info_shows_each_side_what_it_may_see(rig: Rig) -> None:
    a1 = await rig.online("a1")
    v1 = rig.connect("v1")
    await rig.open(v1)
    status, visitor_view = await rig.result(v1, ConversationInfo(FIRST))
    assert status == OK and set(visitor_view) == {*access.VISITOR_FIELDS, "position"}
    status, staff_view = await rig.result(a1, ConversationInfo(FIRST))
    assert status == OK and staff_view["trace"] and staff_view["staff_channel"] == staff_channel(FIRST)
    assert (
        await rig.result(rig.connect("v2"), ConversationInfo(FIRST))
        == await rig.result(v1, ConversationInfo(FIRST + 4))
        == (ErrorCode.NOT_FOUND, {"reason": access.NO_SUCH_CONVERSATION})
    ), "another's is told as one that does not exist"


# --- storage ------------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_failed_commit_is_answered_storage_unavailable(rig: Rig) -> None:
    v1 = rig.connect("v1")
    rig.log.failing = True
    answer = await rig.ask(v1, OpenConversation(b"\x01" * 16, "", "", (), b""))
    assert isinstance(answer, Result) and (answer.status, answer.conversation_id) == (
        ErrorCode.STORAGE_UNAVAILABLE, FIRST,
    )  # fmt: skip
    assert rig.log.conversations == {}


@pytest.mark.asyncio
async def test_a_conversation_whose_opening_failed_holds_no_agent(rig: Rig) -> None:
    await rig.online("a1")  # capacity 1
    rig.log.failing = True
    answer = await rig.ask(rig.connect("v1"), OpenConversation(b"\x01" * 16, "", "", (), b""))
    assert isinstance(answer, Result) and answer.status == ErrorCode.STORAGE_UNAVAILABLE
    rig.log.failing = False
    assert (await rig.open(rig.connect("v2"))).agent == "a1"


@pytest.mark.asyncio
async def test_a_new_desk_resumes_from_the_store(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    await rig.online("a1")
    await rig.open(rig.connect("v1"))
    second = await rig.open(rig.connect("v2"))
    third = await rig.open(rig.connect("v3"))
    await rig.log.durable()
    again = make_rig(log=rig.log)
    assert set(again.desk.open) == {FIRST, second.conversation_id, third.conversation_id}
    assert again.load("a1") == {FIRST} and again.desk.router.agents["a1"].available is False
    assert [c for c, _ in again.desk.router.positions(("bank", "general"))] == [
        second.conversation_id,
        third.conversation_id,
    ]
    fourth = await again.open(again.connect("v4"))
    assert fourth.conversation_id == third.conversation_id + 1, "ids are never reused"
