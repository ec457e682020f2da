"""Customer service end to end: the real server (subprocess, real LMDB, Lua, SnowNLP worker) and real clients."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from kefu.client import (
    AgentState,
    ContentType,
    ConversationState,
    DraftAction,
    QueueUpdate,
    RequestRefused,
    SendRefused,
    SentimentScore,
    new_conversation_id,
    staff_channel,
)
from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import SYSTEM_SENDER

from .conftest import ServerProcess
from .service_harness import drain, event_of, next_event, next_matching, service_server, users

pytestmark = pytest.mark.asyncio


@pytest.fixture
def desk_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = service_server(tmp_path)
    try:
        yield proc
    finally:
        proc.kill()


async def test_routing_by_skill_and_capacity_with_queue_positions(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)  # cards skill, capacity 1
        a2 = await connect("a2", status=AgentState.ONLINE)  # general only, capacity 1
        v1, v2, v3 = await connect("v1"), await connect("v2"), await connect("v3")

        first = await v1.service.open(attributes={"channel": "cards"}, first_message="谢谢，信用卡还款问题")
        assert (first.state, first.agent, first.group) == (ConversationState.ASSIGNED, "a1", "cards")
        # The new owner sees the history from seq 1: the opening, the visitor's first message, the assignment.
        history = await next_matching(a1, lambda m: m.conversation_id == first.conversation_id and m.sender == "v1")
        assert (history.seq, history.text) == (2, "谢谢，信用卡还款问题")
        assigned = await next_event(a1, "assigned", first.conversation_id)
        assert assigned["agent"] == "a1"

        # a1 is at capacity and a2 lacks the skill: the next two cards visitors wait, in order.
        second = await v2.service.open(attributes={"channel": "cards"})
        third = await v3.service.open(attributes={"channel": "cards"})
        assert (second.state, second.position) == (ConversationState.WAITING, 1)
        assert (third.state, third.position) == (ConversationState.WAITING, 2)
        assert await a2.receive(timeout=0.3) is None, "a2 has no cards skill: nothing was routed to it"

        # Capacity frees: the queue moves, the waiting visitor hears its new position.
        await a1.service.end(first.conversation_id, "resolved")
        event = await next_event(v2, "assigned", second.conversation_id)
        assert event["agent"] == "a1"
        position = await v3.service.next_event(timeout=5)
        while isinstance(position, QueueUpdate) and position.position != 1:
            position = await v3.service.next_event(timeout=5)
        assert isinstance(position, QueueUpdate)
        assert (position.conversation_id, position.position, position.waiting) == (third.conversation_id, 1, 1)

        # The trace explains the decision: who was refused and why.
        sup = await connect("sup")
        info = await sup.service.info(second.conversation_id)
        steps = [entry for entry in info["trace"] if entry.get("step") == "choose"]
        assert steps[0]["result"] == "no agent free"
        assert "a1" in steps[0]["refused"] and "capacity" in steps[0]["refused"]["a1"]
        assert steps[-1]["result"] == "a1"
        assert info["owner"] == "a1" and info["state"] == "assigned"


async def test_least_loaded_then_sticky(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        a2 = await connect("a2", status=AgentState.ONLINE)
        v1 = await connect("v1")
        opened = await v1.service.open()
        owner = opened.agent
        assert owner in ("a1", "a2")
        await v1.service.end(opened.conversation_id)
        # Both agents are free and equally loaded: the visitor goes back to the agent it last spoke with.
        again = await v1.service.open()
        assert again.agent == owner
        sup = await connect("sup")
        trace = (await sup.service.info(again.conversation_id))["trace"]
        assert trace[-1]["why"] == "least loaded, sticky"
        await drain(a1, 0.1)
        await drain(a2, 0.1)


async def test_angry_first_message_goes_to_the_senior_group(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        await connect("a1", status=AgentState.ONLINE)
        s1 = await connect("s1", status=AgentState.ONLINE)
        v1 = await connect("v1")
        opened = await v1.service.open(first_message="你们的服务太差了，我非常生气，要投诉！")
        assert (opened.group, opened.agent) == ("senior", "s1")
        sentiment = await s1.service.next_event(timeout=5)
        assert isinstance(sentiment, SentimentScore) and sentiment.score_permille < 200
        sup = await connect("sup")
        info = await sup.service.info(opened.conversation_id)
        rule = next(entry for entry in info["trace"] if entry.get("step") == "rule")
        assert rule["result"]["group"] == "senior" and rule["result"]["note"] == "unhappy customer"
        assert info["sentiment"] < 0.05


async def test_overflow_to_another_group_after_the_timeout(tmp_path: Path) -> None:
    proc = service_server(tmp_path, overflow_after_s=0.5)
    try:
        async with users(proc) as connect:
            b1 = await connect("b1", status=AgentState.ONLINE)  # serves only "backup"
            v1 = await connect("v1")
            opened = await v1.service.open()
            assert (opened.state, opened.group, opened.position) == (ConversationState.WAITING, "general", 1)
            overflow = await next_event(v1, "overflowed", opened.conversation_id)
            assert overflow["group"] == "backup"
            assert (await next_event(v1, "assigned", opened.conversation_id))["agent"] == "b1"
            await next_event(b1, "assigned", opened.conversation_id)
    finally:
        proc.kill()


async def test_two_racing_transfers_have_exactly_one_winner(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        await connect("a2", status=AgentState.ONLINE)
        await connect("s1", status=AgentState.ONLINE)
        sup = await connect("sup")
        v1 = await connect("v1")
        opened = await v1.service.open(attributes={"channel": "cards"})
        assert opened.agent == "a1"
        conv = opened.conversation_id
        results = await asyncio.gather(
            a1.service.transfer(conv, to_agent="a2", expect_owner="a1"),
            sup.service.transfer(conv, to_agent="s1", expect_owner="a1"),
            return_exceptions=True,
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, RequestRefused)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert losses[0].code in (ErrorCode.CONFLICT, ErrorCode.FORBIDDEN)
        winner = wins[0].detail["owner"]
        assert winner in ("a2", "s1")
        info = await sup.service.info(conv)
        assert info["owner"] == winner and info["state"] == "transferred"
        events = [event_of(m) for m in await drain(v1, 0.5)]
        transfers = [e for e in events if e and e["event"] == "transferred"]
        assert [t["agent"] for t in transfers] == [winner], "the visitor saw exactly one transfer"


async def test_transfer_to_group_and_new_agent_sees_history(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        v1 = await connect("v1")
        opened = await v1.service.open(attributes={"channel": "cards"}, first_message="余额")
        conv = opened.conversation_id
        await v1.send(conv, "ATM 在南京路")
        s1 = await connect("s1", status=AgentState.ONLINE)
        await a1.service.transfer(conv, to_group="senior", note="needs a senior")
        texts = []
        while len(texts) < 2:
            m = await next_matching(s1, lambda m: m.conversation_id == conv and m.sender == "v1")
            texts.append(m.text)
        assert texts == ["余额", "ATM 在南京路"]
        await next_event(a1, "transferred", staff_channel(conv))
        with pytest.raises(RequestRefused) as refused:
            await a1.service.transfer(conv, to_agent="a2")
        assert refused.value.code == ErrorCode.FORBIDDEN, "the old owner no longer owns it"


async def test_supervisor_watches_and_whispers(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        v1 = await connect("v1")
        sup = await connect("sup")
        opened = await v1.service.open(attributes={"channel": "cards"})
        conv = opened.conversation_id
        await sup.service.watch(conv)
        await v1.send(conv, "我要办卡")
        watched = await next_matching(sup, lambda m: m.conversation_id == conv and m.sender == "v1")
        assert watched.text == "我要办卡"
        await sup.send(staff_channel(conv), "先核实身份")
        whisper = await next_matching(a1, lambda m: m.conversation_id == staff_channel(conv) and m.sender == "sup")
        assert whisper.text == "先核实身份"
        with pytest.raises(RequestRefused) as refused:
            await sup.send(conv, "supervisors do not speak to visitors")
        assert refused.value.code == ErrorCode.FORBIDDEN
        leaked = [m for m in await drain(v1, 0.3) if m.sender == "sup" or m.conversation_id != conv]
        assert leaked == [], "the visitor never sees the staff channel or the watcher"


async def test_hostile_rules_are_stopped_and_routing_falls_back(desk_server: ServerProcess, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    async with users(desk_server) as connect:
        await connect("a2", status=AgentState.ONLINE)
        bystander, other = await connect("v5"), await connect("v4")
        talk = await bystander.service.open()
        v1 = await connect("v1")
        reasons = {}
        hostile = ("hostile-loop", "hostile-pcall", "hostile-os", "hostile-io", "hostile-mem", "hostile-rep",
                   "hostile-load")  # fmt: skip
        for channel in hostile:
            opened = await v1.service.open(attributes={"channel": channel, "marker": str(marker)})
            info = await v1.service.info(opened.conversation_id)
            assert info["state"] in ("waiting", "assigned")
            sup = await connect("sup")
            trace = (await sup.service.info(opened.conversation_id))["trace"]
            rule = next(entry for entry in trace if entry.get("step") == "rule")
            reasons[channel] = rule.get("error")
            assert rule.get("result") is None, f"{channel}: the hostile rule's decision was not used"
            # The server keeps serving everyone else meanwhile.
            receipt = await bystander.send(talk.conversation_id, f"still here after {channel}")
            assert receipt.seq > 0
        assert reasons["hostile-loop"] in ("instructions", "timeout")
        assert reasons["hostile-pcall"] in ("instructions", "timeout")
        assert reasons["hostile-mem"] == "memory"
        assert reasons["hostile-rep"] in ("memory", "instructions"), "string.rep is charged per byte it makes"
        assert reasons["hostile-os"] in ("error", "forbidden")
        assert reasons["hostile-io"] in ("error", "forbidden")
        assert reasons["hostile-load"] in ("error", "forbidden")
        assert not marker.exists()
        assert (await other.service.open()).conversation_id > 0
    assert desk_server.proc is not None and desk_server.proc.poll() is None


async def test_integration_acts_for_its_customers(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a2 = await connect("a2", status=AgentState.ONLINE)
        bank = await connect("bankapp")
        opened = await bank.service.open(customer="cust-42", attributes={"channel": "wechat"}, first_message="余额")
        assert opened.agent == "a2"
        conv = opened.conversation_id
        await next_matching(a2, lambda m: m.conversation_id == conv and m.sender == "bankapp")
        await a2.send(conv, "请稍等")
        reply = await next_matching(bank, lambda m: m.conversation_id == conv and m.sender == "a2")
        assert reply.text == "请稍等"
        with pytest.raises(RequestRefused):
            await bank.service.open(customer="")  # an integration always names its customer


async def test_history_paging_and_agent_search(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a2 = await connect("a2", status=AgentState.ONLINE)
        v1 = await connect("v1")
        opened = await v1.service.open()
        conv = opened.conversation_id
        for i in range(12):
            await v1.send(conv, f"第{i}条 账单问题" if i == 7 else f"message {i}")
        pages = []
        after = 0
        while True:
            page = await v1.sync(conv, after_seq=after, until_seq=after + 5, limit=5)
            if not page:
                break
            pages.append([m.seq for m in page])
            after = page[-1].seq
            if after >= 14:
                break
        assert [seq for page in pages for seq in page] == list(range(1, after + 1))
        assert all(len(p) <= 5 for p in pages)
        await asyncio.sleep(0.2)
        hits = await a2.service.search("账单")
        assert [(h.conversation_id, h.snippet) for h in hits] == [(conv, "第7条 账单问题")]
        with pytest.raises(RequestRefused) as refused:
            await v1.service.search("账单")
        assert refused.value.code == ErrorCode.FORBIDDEN


async def test_an_integration_transfers_and_searches_within_its_tenant(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        await connect("a2", status=AgentState.ONLINE)  # general, capacity 1
        bank, other, v1 = await connect("bankapp"), await connect("otherapp"), await connect("v1")
        opened = await bank.service.open(customer="c-1", first_message="账单 from the bank")
        assert opened.agent == "a2"
        queued = (await v1.service.open(first_message="账单 from v1")).conversation_id  # a2 is full: it waits
        theirs = (await other.service.open(customer="c-9", first_message="账单 elsewhere")).conversation_id
        with pytest.raises(RequestRefused) as refused:
            await other.service.transfer(opened.conversation_id, to_group="other-general")
        assert refused.value.code == ErrorCode.NOT_FOUND  # as if it did not exist
        moved = await bank.service.transfer(opened.conversation_id, to_group="backup", note="by the bank")
        assert (moved.detail["group"], moved.detail["owner"]) == ("backup", None)  # b1 is not connected
        hits = await bank.service.search("账单")
        assert [(h.conversation_id, h.snippet) for h in hits] == [
            (queued, "账单 from v1"), (opened.conversation_id, "账单 from the bank"),
        ]  # fmt: skip
        assert [h.conversation_id for h in await other.service.search("账单")] == [theirs]


async def test_authorization_crossings_are_refused(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        await connect("o1", status=AgentState.ONLINE)
        v1, v2 = await connect("v1"), await connect("v2")
        opened = await v1.service.open(attributes={"channel": "cards"}, first_message="私人信息")
        conv = opened.conversation_id
        assert opened.agent == "a1"

        async def refused(call: object) -> ErrorCode | int:
            with pytest.raises(RequestRefused) as caught:
                await call  # type: ignore[misc]
            return caught.value.code

        # A visitor reads only its own conversations. A conversation one may not read is refused exactly as one
        # that does not exist (NOT_FOUND): refusals do not tell which ids exist.
        assert await refused(v2.sync(conv, after_seq=0, until_seq=10)) == ErrorCode.NOT_FOUND
        assert await refused(v2.service.info(conv)) == ErrorCode.NOT_FOUND
        assert await refused(v2.send(conv, "hi")) == ErrorCode.NOT_FOUND
        assert await refused(v1.send(staff_channel(conv), "let me in")) == ErrorCode.NOT_FOUND
        assert await refused(v1.sync(staff_channel(conv), after_seq=0, until_seq=10)) == ErrorCode.NOT_FOUND
        assert await refused(v2.service.end(conv)) == ErrorCode.NOT_FOUND
        # An agent reads only what is assigned to it or its groups: a2 serves "general", not "cards".
        a2 = await connect("a2")
        assert await refused(a2.sync(conv, after_seq=0, until_seq=10)) == ErrorCode.NOT_FOUND
        assert await refused(a2.service.info(conv)) == ErrorCode.NOT_FOUND
        assert await refused(a2.service.transfer(conv, to_agent="a2")) == ErrorCode.NOT_FOUND
        o1 = await connect("o1")
        assert await refused(o1.sync(conv, after_seq=0, until_seq=10)) == ErrorCode.NOT_FOUND
        # A supervisor reads those of its groups; another tenant's supervisor does not.
        osup, sup = await connect("osup"), await connect("sup")
        assert await refused(osup.service.info(conv)) == ErrorCode.NOT_FOUND
        assert await refused(osup.service.watch(conv)) == ErrorCode.NOT_FOUND
        assert await refused(osup.sync(conv, after_seq=0, until_seq=10)) == ErrorCode.NOT_FOUND
        assert [m.text for m in await sup.sync(conv, after_seq=0, until_seq=10) if m.sender == "v1"] == ["私人信息"]
        # An integration reads only its tenant's.
        other, bank = await connect("otherapp"), await connect("bankapp")
        assert await refused(other.sync(conv, after_seq=0, until_seq=10)) == ErrorCode.NOT_FOUND
        assert await refused(other.service.info(conv)) == ErrorCode.NOT_FOUND
        assert [m.text for m in await bank.sync(conv, after_seq=0, until_seq=10) if m.sender == "v1"] == ["私人信息"]
        # Roles: a visitor has no status, cannot watch (its own: FORBIDDEN, it knows of it); an agent cannot open
        # as a visitor.
        assert await refused(v1.service.set_status(AgentState.ONLINE)) == ErrorCode.FORBIDDEN
        assert await refused(v1.service.watch(conv)) == ErrorCode.FORBIDDEN
        assert await refused(a1.service.open()) == ErrorCode.FORBIDDEN
        assert await refused(v1.service.open(customer="someone")) == ErrorCode.FORBIDDEN
        # A client cannot create a conversation in the server's range.
        assert await refused(v1.send(conv + 1000, "x", to=["a1"])) == ErrorCode.BAD_REQUEST


async def test_a_visitors_event_is_refused_and_the_servers_still_arrive(desk_server: ServerProcess) -> None:
    """Only the server's system sender writes EVENTs (section 13.2): a visitor's forged `transferred` is refused
    BAD_REQUEST, stored nowhere, delivered to no one, and the connection goes on; the desk's own events still come
    as EVENTs from the system sender."""
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        v1 = await connect("v1")
        conv = (await v1.service.open(attributes={"channel": "cards"})).conversation_id
        assigned = await next_matching(a1, lambda m: m.conversation_id == conv and event_of(m) == {
            "event": "assigned", "agent": "a1", "group": "cards"})  # fmt: skip
        assert assigned.is_system_event and assigned.sender == SYSTEM_SENDER
        last = (await v1.sync(conv, after_seq=0, until_seq=100))[-1].seq
        forged = b'{"event":"transferred","agent":"a2","group":"cards"}'
        for target in (conv, staff_channel(conv)):
            with pytest.raises(SendRefused) as refused:
                await v1.send(target, forged, content_type=ContentType.EVENT)
            assert refused.value.code == ErrorCode.BAD_REQUEST
        assert [m.seq for m in await a1.sync(conv, after_seq=0, until_seq=100)][-1] == last, "nothing stored"
        assert [m for m in await drain(a1) if m.sender == "v1"] == [], "nothing delivered"
        receipt = await v1.send(conv, "还在吗")  # the connection is still usable
        assert receipt.seq == last + 1
        told = await next_matching(a1, lambda m: m.conversation_id == conv and m.sender == "v1")
        assert (told.seq, told.text, told.is_system_event) == (last + 1, "还在吗", False)
        await a1.service.end(conv)
        assert await next_event(v1, "closed", conv) == {"event": "closed", "by": "a1"}, "the server's events go on"


async def test_a_conversation_one_may_not_read_is_refused_as_one_that_does_not_exist(
    desk_server: ServerProcess,
) -> None:
    """Every request naming a conversation gets, for one its sender may not know of, the same code and reason as
    for one that does not exist; so no request tells a peer which conversation ids exist."""
    async with users(desk_server) as connect:
        await connect("a1", status=AgentState.ONLINE)
        v1, v2, osup = await connect("v1"), await connect("v2"), await connect("osup")
        conv = (await v1.service.open(attributes={"channel": "cards"})).conversation_id
        plain = new_conversation_id()
        await v1.send(plain, "私聊", to=["a1"])
        missing_plain, missing_service = new_conversation_id(), conv + 1000

        async def refusal(call: Awaitable[object]) -> tuple[ErrorCode | int, str]:
            with pytest.raises(RequestRefused) as caught:
                await call
            return caught.value.code, caught.value.reason

        for stranger in (v2, osup):
            for existing, missing in ((plain, missing_plain), (conv, missing_service)):
                for until in (0, 10):  # resume and fetch
                    assert await refusal(stranger.sync(existing, 0, until)) == await refusal(
                        stranger.sync(missing, 0, until)
                    ) == (ErrorCode.NOT_FOUND, "not_found")  # fmt: skip
                assert await refusal(stranger.send(existing, "x")) == await refusal(
                    stranger.send(missing, "x")
                ) == (ErrorCode.NOT_FOUND, "")  # fmt: skip
            requests: list[Callable[[int], Awaitable[object]]] = [
                stranger.service.info, stranger.service.end, stranger.service.watch,
                lambda c, s=stranger: s.service.transfer(c, to_agent="a1"),
                lambda c, s=stranger: s.service.decide_draft(c, 1, DraftAction.APPROVE),
            ]  # fmt: skip
            for request in requests:
                assert await refusal(request(conv)) == await refusal(request(missing_service)) == (
                    ErrorCode.NOT_FOUND, "no such conversation")  # fmt: skip
        assert (await v2.send(new_conversation_id(), "still usable", to=["v1"])).seq == 1
        assert [m.text for m in await v1.sync(plain, 0, 10)] == ["私聊"], "nothing stored by the refused sends"


PLUGINS = """
[[plugins]]
name = "faq"
kind = "keyword"
modes = ["auto_reply", "classify"]
timeout_s = 2.0
[plugins.options]
tags = {{ card_loss = ["挂失", "丢了"] }}
[[plugins.options.faq]]
keywords = ["营业时间"]
answer = "我们的营业时间是每天 9:00-17:00。"

[[plugins]]
name = "llm"
kind = "openai"
modes = ["suggest"]
timeout_s = 5.0
options = {{ endpoint = "{url}", model = "qwen2-7b" }}
"""


async def test_suggest_approve_edit_reject_and_the_visitor_sees_only_approved_text(tmp_path: Path) -> None:
    from tests.server.fake_openai import FakeOpenAI, echo  # noqa: PLC0415 - a test helper module

    with FakeOpenAI(echo("草稿：")) as fake:
        proc = service_server(tmp_path, plugins=PLUGINS.format(url=fake.url))
        try:
            async with users(proc) as connect:
                a2 = await connect("a2", status=AgentState.ONLINE)
                v1 = await connect("v1")
                opened = await v1.service.open()
                conv, staff = opened.conversation_id, staff_channel(opened.conversation_id)
                await v1.send(conv, "我的卡丢了")

                def is_draft(m: object) -> bool:
                    return getattr(m, "conversation_id", 0) == staff and m.metadata.get("kefu.kind") == b"draft"  # type: ignore[attr-defined]

                tagged = await next_event(a2, "tagged", staff)  # classify runs before suggest
                assert tagged["tags"] == ["card_loss"]
                first = await next_matching(a2, is_draft)
                assert first.text == "草稿：我的卡丢了" and first.metadata["kefu.plugin"] == b"llm"
                assert fake.requests[-1].json["messages"][-1] == {"role": "user", "content": "我的卡丢了"}

                # Approve: the visitor receives the draft's text, once, from the agent.
                outcome = await a2.service.decide_draft(conv, first.seq, DraftAction.APPROVE)
                assert outcome.seq > 0
                again = await a2.service.decide_draft(conv, first.seq, DraftAction.APPROVE)
                assert again.seq == outcome.seq, "a draft is sent at most once"
                # Edit: the visitor receives the agent's text, not the draft's.
                await v1.send(conv, "怎么补办")
                second = await next_matching(a2, is_draft)
                edited = await a2.service.decide_draft(conv, second.seq, DraftAction.EDIT, "请带身份证到网点补办。")
                # Reject: nothing reaches the visitor.
                await v1.send(conv, "还有别的吗")
                third = await next_matching(a2, is_draft)
                rejected = await a2.service.decide_draft(conv, third.seq, DraftAction.REJECT)
                assert rejected.seq == 0
                with pytest.raises(RequestRefused) as refused:
                    await v1.service.decide_draft(conv, third.seq, DraftAction.APPROVE)
                assert refused.value.code == ErrorCode.FORBIDDEN

                seen = await drain(v1, 0.5)
                from_agent = [(m.seq, m.text) for m in seen if m.sender == "a2"]
                assert from_agent == [(outcome.seq, "草稿：我的卡丢了"), (edited.seq, "请带身份证到网点补办。")]
                assert all(m.conversation_id == conv for m in seen), "the visitor never sees the staff channel"
                assert not any("草稿：怎么补办" in m.text or "草稿：还有别的吗" in m.text for m in seen)
        finally:
            proc.kill()


async def test_faq_auto_reply_while_waiting_and_a_dead_plugin_never_blocks_delivery(tmp_path: Path) -> None:
    from tests.server.fake_openai import FakeOpenAI, delayed, reply  # noqa: PLC0415

    with FakeOpenAI(delayed(30, reply("too late"))) as fake:
        proc = service_server(tmp_path, plugins=PLUGINS.format(url=fake.url))
        try:
            async with users(proc) as connect:
                v1 = await connect("v1")
                opened = await v1.service.open()  # nobody online: it waits
                assert opened.state == ConversationState.WAITING
                conv = opened.conversation_id
                await v1.send(conv, "请问营业时间？")
                answer = await next_matching(v1, lambda m: m.sender == "#kefu" and m.content_type == 1)
                assert answer.text == "我们的营业时间是每天 9:00-17:00。"
                assert answer.metadata["kefu.plugin"] == b"faq"
                # The LLM plugin hangs for 30 s: an agent still gets the conversation and the messages at once.
                a2 = await connect("a2", status=AgentState.ONLINE)
                await v1.send(conv, "在吗")
                got = await next_matching(a2, lambda m: m.conversation_id == conv and m.text == "在吗", timeout=5)
                assert got.sender == "v1"
        finally:
            proc.kill()


async def test_queues_and_loads_survive_kill_9(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        await connect("a1", status=AgentState.ONLINE)  # capacity 1
        v1, v2 = await connect("v1"), await connect("v2")
        held = await v1.service.open(attributes={"channel": "cards"})
        waiting = await v2.service.open(attributes={"channel": "cards"})
        assert (held.agent, waiting.state) == ("a1", ConversationState.WAITING)
    desk_server.kill()
    desk_server.start()
    async with users(desk_server) as connect:
        a1 = await connect("a1", status=AgentState.ONLINE)
        v3 = await connect("v3")
        # a1 still holds its conversation (capacity 1 after the restart too): a newcomer waits behind v2.
        third = await v3.service.open(attributes={"channel": "cards"})
        assert (third.state, third.position) == (ConversationState.WAITING, 2)
        await a1.service.end(held.conversation_id)
        v2 = await connect("v2")
        assert (await v2.service.info(waiting.conversation_id))["owner"] == "a1"
        assert (await v3.service.info(third.conversation_id))["position"] == 1


async def test_sighup_reloads_the_directory(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        await connect("a2", status=AgentState.ONLINE)  # capacity 1
        v1, v2 = await connect("v1"), await connect("v2")
        assert (await v1.service.open()).agent == "a2"
        waiting = await v2.service.open()
        assert waiting.state == ConversationState.WAITING
        directory = desk_server.data_dir / "service.toml"
        directory.write_text(
            directory.read_text().replace(
                '[agents.a2]\ngroups = ["general"]\nmax_concurrent = 1',
                '[agents.a2]\ngroups = ["general"]\nmax_concurrent = 2',
            )
        )
        assert desk_server.proc is not None
        desk_server.proc.send_signal(signal.SIGHUP)
        # The waiting visitor is served first, in queue order, once the new capacity is read.
        assert (await next_event(v2, "assigned", waiting.conversation_id))["agent"] == "a2"
        v3 = await connect("v3")
        assert (await v3.service.open()).state == ConversationState.WAITING, "a2 is at its new capacity, 2"


async def test_open_is_idempotent_on_client_ref(desk_server: ServerProcess) -> None:
    async with users(desk_server) as connect:
        v1 = await connect("v1")
        ref = b"0123456789abcdef"
        first = await v1.service.open(client_ref=ref, first_message="你好")
        again = await v1.service.open(client_ref=ref, first_message="你好")
        other = await v1.service.open(client_ref=b"fedcba9876543210")
        assert again.conversation_id == first.conversation_id != other.conversation_id
        history = await v1.sync(first.conversation_id, after_seq=0, until_seq=100)
        assert [m.text for m in history if m.sender == "v1"] == ["你好"], "the first message is stored once"


async def test_bad_service_requests_get_codes_and_never_touch_others(desk_server: ServerProcess) -> None:
    from kefu.protocol import frames  # noqa: PLC0415
    from kefu.protocol.events import ConnectionTerminated  # noqa: PLC0415

    from .peer import Peer  # noqa: PLC0415

    async with users(desk_server) as connect:
        await connect("a2", status=AgentState.ONLINE)
        bystander = await connect("v2")
        talk = await bystander.service.open()
        hostile = await Peer.connect(desk_server.port, "v1", desk_server.secrets["v1"], desk_server.pins)
        bad = [
            frames.OpenConversation(b"x" * 16, "", "", (frames.MetaEntry("vip", b"\xff\xfe"),), b"", request_id=1),
            frames.OpenConversation(b"y" * 16, "", "no-such-group", (), b"", request_id=2),
            frames.AgentStatus(9, request_id=3),
            frames.Transfer(1 << 62, "", "a2", "", "", request_id=4),
            frames.DraftDecision(talk.conversation_id, 1, 1, b"", request_id=5),
            frames.Watch(talk.conversation_id, 1, request_id=6),
            frames.Search("", 10, request_id=7),
            frames.ConversationInfo(talk.conversation_id, request_id=8),
        ]
        for frame in bad:
            hostile.send_frame(frame)
        codes = {}
        for _ in bad:
            result = await hostile.next(frames.Result)
            codes[result.request_id] = result.status
        # 5, 6, 8 name another visitor's conversation: refused as one that does not exist.
        assert codes == {1: 400, 2: 404, 3: 403, 4: 404, 5: 404, 6: 404, 7: 403, 8: 404}
        # A body that does not parse is fatal for that connection only.
        hostile.conn._queue(frames.HEADER.pack(2, 1, frames.FrameType.OPEN_CONVERSATION, 0, 9) + b"\x00\x01")
        hostile.conn._flush()
        hostile._flush()
        ended = await hostile.next(ConnectionTerminated)
        assert ended.code == ErrorCode.MALFORMED_FRAME
        receipt = await bystander.send(talk.conversation_id, "still served")
        assert receipt.seq > 0
