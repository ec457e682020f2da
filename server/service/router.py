"""Routing: which agent gets a conversation, and the queues of those still waiting (section 13.5).

Theory of operation: the router holds, in memory, each agent's status, online devices and current load, and
one queue per group (by `GroupKey`: tenant and name). It does no I/O and never waits; the desk calls it on the event
loop, so every decision sees every earlier one (this is what keeps capacity exact and makes racing transfers have
one winner).

`choose` applies the default policy to the agents that *may* take the conversation (online, serving the group
with the required skills, below capacity):

1. skill match: the conversation's required skills (its group's plus any a rule adds) are a subset of the agent's;
2. least loaded: the lowest load / capacity;
3. sticky: among equally loaded agents, the one the visitor last spoke with;
4. then the longest idle (least recently assigned), then the name, so the choice is deterministic.

It returns the choice and a trace entry that lists every candidate considered and why each was or was not
taken. A queue is ordered by priority (higher first) then by arrival; positions are 1-based.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kefu.protocol.frames import AgentState

from .directory import AgentEntry, Directory, GroupEntry, GroupKey

__all__ = ["AgentRuntime", "Router"]

MAX_TRACE_CANDIDATES = 20
"""Candidates listed by name in one trace entry; a large group's trace gives counts for the rest."""


@dataclass(slots=True)
class AgentRuntime:
    """An agent's live state."""

    name: str
    tenant: str
    status: AgentState = AgentState.OFFLINE
    devices: int = 0
    conversations: set[int] = field(default_factory=set)
    last_assigned: float = 0.0

    @property
    def available(self) -> bool:
        """Online with at least one device connected."""
        return self.status is AgentState.ONLINE and self.devices > 0


@dataclass(order=True, slots=True)
class _Entry:
    sort_key: tuple[int, float, int]
    conversation_id: int = field(compare=False)


class Router:
    """Agents, loads and queues of one server process."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory
        self.agents: dict[str, AgentRuntime] = {}
        self.queues: dict[GroupKey, list[_Entry]] = {}
        self._where: dict[int, tuple[GroupKey, _Entry]] = {}
        self._arrivals = itertools.count()

    # --- agents -----------------------------------------------------------------------------------------

    def agent(self, name: str, tenant: str) -> AgentRuntime:
        """The agent's runtime state (created offline on first mention)."""
        runtime = self.agents.get(name)
        if runtime is None:
            runtime = self.agents[name] = AgentRuntime(name, tenant)
        return runtime

    def capacity(self, name: str) -> int:
        """The most conversations the agent may hold."""
        return self.directory.agent(name).max_concurrent

    def has_room(self, runtime: AgentRuntime) -> bool:
        """Below capacity."""
        return len(runtime.conversations) < self.capacity(runtime.name)

    def eligible(self, runtime: AgentRuntime, group: GroupEntry, skills: Iterable[str]) -> str | None:
        """None if the agent may take a conversation of `group` needing `skills`; else why not."""
        entry: AgentEntry = self.directory.agent(runtime.name)
        if not self.directory.serves(entry, group, runtime.tenant):
            return "not in group"
        missing = set(skills) - entry.skills
        if missing:
            return "lacks skills " + ",".join(sorted(missing))
        if not runtime.available:
            return runtime.status.name.lower() if runtime.devices else "not connected"
        if not self.has_room(runtime):
            return f"at capacity {len(runtime.conversations)}/{entry.max_concurrent}"
        return None

    def choose(
        self, group: GroupEntry, skills: Iterable[str], sticky: str | None, *, exclude: str | None = None
    ) -> tuple[AgentRuntime | None, dict[str, Any]]:
        """The agent the default policy picks (or None), and the trace entry explaining it."""
        required = sorted(set(group.skills) | set(skills))
        taken: list[AgentRuntime] = []
        refused: dict[str, str] = {}
        for runtime in self.agents.values():
            if runtime.tenant != group.tenant or runtime.name == exclude:
                continue
            why = self.eligible(runtime, group, required)
            if why is None:
                taken.append(runtime)
            elif why != "not in group":
                refused[runtime.name] = why
        trace: dict[str, Any] = {"step": "choose", "group": group.name, "skills": required}
        if not taken:
            trace["result"] = "no agent free"
            trace["refused"] = dict(itertools.islice(sorted(refused.items()), MAX_TRACE_CANDIDATES))
            return None, trace
        best = min(
            taken,
            key=lambda r: (
                len(r.conversations) / max(1, self.capacity(r.name)),
                r.name != sticky,
                r.last_assigned,
                r.name,
            ),
        )
        trace["candidates"] = {
            r.name: f"{len(r.conversations)}/{self.capacity(r.name)}"
            for r in sorted(taken, key=lambda r: r.name)[:MAX_TRACE_CANDIDATES]
        }
        trace["refused"] = dict(itertools.islice(sorted(refused.items()), MAX_TRACE_CANDIDATES))
        ties = [r for r in taken if len(r.conversations) * self.capacity(best.name) == len(best.conversations)
                * self.capacity(r.name)]  # fmt: skip
        reason = "least loaded"
        if len(ties) > 1:
            reason += ", sticky" if best.name == sticky else ", longest idle"
        trace["result"] = best.name
        trace["why"] = reason
        return best, trace

    def assign(self, runtime: AgentRuntime, conversation_id: int, now: float) -> None:
        """Count the conversation against the agent."""
        runtime.conversations.add(conversation_id)
        runtime.last_assigned = now

    def release(self, owner: str | None, conversation_id: int) -> AgentRuntime | None:
        """The conversation no longer counts against `owner`; the runtime, if any."""
        runtime = self.agents.get(owner) if owner else None
        if runtime is not None:
            runtime.conversations.discard(conversation_id)
        return runtime

    # --- queues -----------------------------------------------------------------------------------------

    def enqueue(self, group: GroupKey, conversation_id: int, priority: int, since: float) -> None:
        """Add a waiting conversation to `group`'s queue."""
        self.dequeue(conversation_id)
        entry = _Entry((-priority, since, next(self._arrivals)), conversation_id)
        queue = self.queues.setdefault(group, [])
        bisect.insort(queue, entry)
        self._where[conversation_id] = (group, entry)

    def dequeue(self, conversation_id: int) -> GroupKey | None:
        """Remove a conversation from its queue; the group it was in, or None."""
        where = self._where.pop(conversation_id, None)
        if where is None:
            return None
        group, entry = where
        queue = self.queues[group]
        queue.pop(bisect.bisect_left(queue, entry))
        return group

    def queued_group(self, conversation_id: int) -> GroupKey | None:
        """The group whose queue holds the conversation."""
        where = self._where.get(conversation_id)
        return where[0] if where else None

    def queue_length(self, group: GroupKey) -> int:
        """Conversations waiting in `group`."""
        return len(self.queues.get(group, ()))

    def positions(self, group: GroupKey) -> list[tuple[int, int]]:
        """(conversation_id, 1-based position) of every conversation waiting in `group`."""
        return [(e.conversation_id, i) for i, e in enumerate(self.queues.get(group, ()), 1)]

    def waiting(self) -> list[tuple[GroupKey, int, float | None]]:
        """(group, conversations waiting, when the longest-waiting arrived) of every queue (for the metrics)."""
        return [(g, len(q), min((e.sort_key[1] for e in q), default=None)) for g, q in self.queues.items()]

    def position(self, conversation_id: int) -> int:
        """The conversation's position in its queue; 0 if it is not waiting."""
        where = self._where.get(conversation_id)
        if where is None:
            return 0
        group, entry = where
        return bisect.bisect_left(self.queues[group], entry) + 1

    def waiting_for(
        self, runtime: AgentRuntime, skills_of: Any, passed_by: Any = lambda _: ""
    ) -> tuple[GroupEntry, int] | None:
        """The first waiting conversation the agent may take: (group, id), over every group it serves, the
        highest priority and earliest arrival first. `skills_of(id)` gives a conversation's extra skills,
        `passed_by(id)` the agent who transferred it away (never offered it back)."""
        best: tuple[tuple[int, float, int], GroupEntry, int] | None = None
        for (tenant, name), queue in self.queues.items():
            group = self.directory.group(tenant, name)
            if group is None or not queue:
                continue
            for entry in queue:
                if passed_by(entry.conversation_id) == runtime.name:
                    continue
                if self.eligible(runtime, group, skills_of(entry.conversation_id)) is None:
                    if best is None or entry.sort_key < best[0]:
                        best = (entry.sort_key, group, entry.conversation_id)
                    break
        return (best[1], best[2]) if best else None

    def overdue(self, now: float) -> list[tuple[GroupEntry, int]]:
        """(group, id) of waiting conversations past their group's overflow time (with somewhere to go)."""
        out: list[tuple[GroupEntry, int]] = []
        for (tenant, name), queue in self.queues.items():
            group = self.directory.group(tenant, name)
            if group is None or group.overflow_to is None:
                continue
            out.extend((group, e.conversation_id) for e in queue if now - e.sort_key[1] >= group.overflow_after_s)
        return out
