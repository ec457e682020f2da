"""The contact-centre figures a supervisor watches: who waits and for how long, abandonment, agents by state, time to
first answer (published as the `kefu_service_*` metrics; systemd/OPERATIONS.md, "Monitoring").

Theory of operation: the desk's state lives on the event loop, while a scrape runs on the metrics thread (or, with
workers, in the core process between two loop callbacks). So the desk never hands its dicts to the metrics: at every
queue tick it builds a `DeskFigures`, an immutable snapshot, and the host swaps it in (one attribute store, which a
scrape on another thread sees whole or not at all). Waiting counts and agents are as of the last tick, at most
[service] queue_tick_ms old; the longest wait is computed at scrape time from the oldest arrival, so it grows between
ticks as the wall clock does. The desk also publishes whenever a queue changed (once per loop iteration, with the
queue positions it sends then), so a waiting count is current. The counters (abandoned, first answers) are cumulative
here and copied into each snapshot. Every figure is the desk's, and the desk runs in one process (the core, with
workers), so the host's totals over the workers are these numbers.

A first answer is timed only for conversations opened since this process started: for one opened before a restart
this process cannot know whether its agent had answered already, and a second "first" answer would skew the figure.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass

from kefu.protocol.frames import AgentState, ConversationState

from .model import ServiceConversation
from .router import AgentRuntime

__all__ = ["AGENT_STATES", "FIRST_ANSWER_BUCKETS", "DeskFigures", "FigureKeeper", "GroupFigures"]

FIRST_ANSWER_BUCKETS = (5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
"""Seconds from OPEN to the assigned agent's first message: 5 s (an agent free at once) to an hour; a common
contact-centre target ("80 % answered within 20 s") falls on a bound."""
AGENT_STATES = tuple(s.name.lower() for s in AgentState)
"""The `state` label of kefu_service_agents: the status an agent set, or offline with no device connected."""

GroupKey = tuple[str, str]
"""(tenant, group)."""
NO_ANSWERS = (0,) * (len(FIRST_ANSWER_BUCKETS) + 1)


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One group's figures."""

    waiting: int = 0
    oldest_since: float | None = None
    """Wall-clock seconds when the longest-waiting conversation entered the queue (None: nobody waits)."""
    abandoned: int = 0
    """Conversations closed while waiting (the visitor gave up), since the process started."""
    answer_counts: tuple[int, ...] = NO_ANSWERS
    """First answers per FIRST_ANSWER_BUCKETS bucket (not cumulative; the last is above the largest bound)."""
    answer_sum: float = 0.0


@dataclass(frozen=True, slots=True)
class DeskFigures:
    """A snapshot of the desk's figures (immutable: safe to read from another thread)."""

    groups: Mapping[GroupKey, GroupFigures]
    agents: Mapping[tuple[str, str], int]
    """(tenant, state) -> agents in that state."""


class FigureKeeper:
    """The desk's cumulative figures, and the snapshots of them with the current queues and agents."""

    def __init__(self) -> None:
        self._abandoned: Counter[GroupKey] = Counter()
        self._answers: dict[GroupKey, list[int]] = {}
        self._answer_sums: dict[GroupKey, float] = {}
        self._unanswered: dict[int, float] = {}
        """Conversations opened here and not yet answered: id -> when opened (wall-clock seconds)."""

    def opened(self, conv: ServiceConversation) -> None:
        """A conversation was created: its first answer will be timed."""
        self._unanswered[conv.id] = conv.created_ms / 1000

    def closing(self, conv: ServiceConversation) -> None:
        """A conversation is about to close (its state still the one before): closed while waiting is abandoned."""
        if conv.state is ConversationState.WAITING:
            self._abandoned[(conv.tenant, conv.group)] += 1
        self._unanswered.pop(conv.id, None)

    def message(self, conv: ServiceConversation, sender: str, now: float) -> None:
        """A message in `conv` is durable: the first of its assigned agent is the first answer."""
        if sender != conv.owner:
            return
        opened = self._unanswered.pop(conv.id, None)
        if opened is None:
            return
        key, seconds = (conv.tenant, conv.group), max(0.0, now - opened)
        counts = self._answers.setdefault(key, [0] * (len(FIRST_ANSWER_BUCKETS) + 1))
        counts[bisect.bisect_left(FIRST_ANSWER_BUCKETS, seconds)] += 1
        self._answer_sums[key] = self._answer_sums.get(key, 0.0) + seconds

    def snapshot(
        self,
        queues: Iterable[tuple[GroupKey, int, float | None]],
        agents: Iterable[AgentRuntime],
        groups: Iterable[GroupKey],
        open_ids: Container[int],
    ) -> DeskFigures:
        """The figures now: `queues` each queue's (group, length, oldest arrival) (`Router.waiting`), `groups` every
        configured group (shown even when idle), `open_ids` the conversations still open."""
        for gone in [cid for cid in self._unanswered if cid not in open_ids]:  # closed, or its creation failed
            del self._unanswered[gone]
        waiting = {key: (n, oldest) for key, n, oldest in queues}
        keys = {*groups, *waiting, *self._abandoned, *self._answers}
        figures = {
            key: GroupFigures(
                *waiting.get(key, (0, None)),
                self._abandoned[key],
                tuple(self._answers.get(key, NO_ANSWERS)),
                self._answer_sums.get(key, 0.0),
            )
            for key in keys
        }
        by_state: Counter[tuple[str, str]] = Counter()
        for runtime in agents:
            by_state[(runtime.tenant, runtime.status.name.lower() if runtime.devices else "offline")] += 1
        tenants = {tenant for tenant, _ in by_state}
        return DeskFigures(figures, {(t, s): by_state[(t, s)] for t in tenants for s in AGENT_STATES})
