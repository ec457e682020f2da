"""kefu.server.service.figures: what the desk counts for the contact-centre metrics."""

from __future__ import annotations

from kefu.protocol.frames import AgentState, ConversationState
from kefu.server.service.figures import AGENT_STATES, FIRST_ANSWER_BUCKETS, FigureKeeper
from kefu.server.service.model import ServiceConversation
from kefu.server.service.router import AgentRuntime

GENERAL = ("bank", "general")


def conversation(cid: int, *, opened_s: float = 1000.0, owner: str | None = None) -> ServiceConversation:
    conv = ServiceConversation(cid, "bank", "v1", "", "general", int(opened_s * 1000))
    if owner is not None:
        conv.state, conv.owner = ConversationState.ASSIGNED, owner
    return conv


def test_first_answer_is_the_owners_first_message_of_a_conversation_opened_here() -> None:
    keeper = FigureKeeper()
    conv = conversation(1, owner="a1")
    keeper.opened(conv)
    keeper.message(conv, "v1", 1005.0)  # the visitor's own message answers nothing
    keeper.message(conv, "a1", 1012.0)
    keeper.message(conv, "a1", 1030.0)  # not a first answer
    before_restart = conversation(2, owner="a1")  # not opened in this process: its first answer is unknown
    keeper.message(before_restart, "a1", 1040.0)
    group = keeper.snapshot([], [], [GENERAL], {1, 2}).groups[GENERAL]
    assert sum(group.answer_counts) == 1 and group.answer_sum == 12.0
    assert group.answer_counts[FIRST_ANSWER_BUCKETS.index(20.0)] == 1


def test_abandoned_is_closed_while_waiting() -> None:
    keeper = FigureKeeper()
    waiting, assigned = conversation(1), conversation(2, owner="a1")
    keeper.opened(waiting)
    keeper.opened(assigned)
    keeper.closing(waiting)
    keeper.closing(assigned)
    keeper.message(assigned, "a1", 1001.0)  # closed: no answer counted after
    group = keeper.snapshot([], [], [], set()).groups[GENERAL]
    assert group.abandoned == 1 and sum(group.answer_counts) == 0


def test_snapshot_queues_groups_and_agents() -> None:
    keeper = FigureKeeper()
    keeper.opened(conversation(7))
    online = AgentRuntime("a1", "bank", AgentState.ONLINE, devices=1)
    gone = AgentRuntime("a2", "bank", AgentState.ONLINE, devices=0)
    away = AgentRuntime("a3", "bank", AgentState.AWAY, devices=2)
    figures = keeper.snapshot([(GENERAL, 2, 990.0)], [online, gone, away], [GENERAL, ("bank", "cards")], set())
    assert figures.groups[GENERAL].waiting == 2 and figures.groups[GENERAL].oldest_since == 990.0
    assert figures.groups[("bank", "cards")].waiting == 0 and figures.groups[("bank", "cards")].oldest_since is None
    assert figures.agents == {("bank", "online"): 1, ("bank", "offline"): 1, ("bank", "away"): 1, ("bank", "busy"): 0}
    assert {state for _, state in figures.agents} == set(AGENT_STATES)
    keeper.message(conversation(7, owner="a1"), "a1", 1001.0)
    assert GENERAL not in keeper.snapshot([], [], [], set()).groups, "7 was not open at the last snapshot: not timed"
