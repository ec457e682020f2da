"""The webhook dispatcher: every subscription's events, from the durable log to its URL, in order per conversation.

Theory of operation (spec section 18)
-------------------------------------
The log is the outbox. Every webhook event is a message the group commit made durable (`events`), so nothing is
written for webhooks on the message path: the dispatcher watches the group commit's batches on the event loop
(`attach`, after each batch's callbacks) and, for each stored message of the service range that is an event some
subscription wants, queues a reference to it in that subscription's queue of its conversation (a staff channel's
events join its conversation's queue; commit order is kept across the two).

Each subscription delivers each conversation's queue in order, one event at a time (the next only after the previous
succeeded or was given up), and up to [webhooks] concurrency conversations at once. A failed attempt (a status
other than 2xx, a redirect, a timeout, a refused connection) is tried again after an exponential backoff with jitter
(`backoff`); after [webhooks] max_attempts attempts, or once the event is older than [webhooks] max_age_s, it is a
dead letter: counted (kefu_webhook_dead_letters_total), logged with its id, and passed, so that the conversation's
next event goes. A subscription whose queues hold [webhooks] max_backlog events dead-letters new ones at once
("backlog"): memory stays bounded when a receiver is gone for long.

The durable cursor (`subscriptions.Cursor`): per subscription, ``since_ms`` and ``done``. ``since_ms`` is the
oldest timestamp of an event still queued, and never later than the clock minus CLOCK_MARGIN_MS; ``done`` maps each
log conversation with an event delivered (or given up) at ``since_ms`` or later to the highest seq handled. At start,
before the log takes any write (the store then holds the whole log: its tail was replayed into it), `recover` reads
the ``expiry`` index (every stored message by (timestamp, conversation, seq)) from the smallest ``since_ms`` on and
queues what each subscription has not handled. So the work at a restart is bounded by how far the slowest
subscription is behind, and a crash redelivers at most what was handled in the last [webhooks] cursor_save_ms
(the cursors are written that often, off the loop). The margin covers the events already sequenced but not yet
seen here when a cursor is written, and a clock stepped back by less than it.

A subscription added while the server runs is read within RELOAD_S of `kefu webhook add` and caught up from the log
(the indexed store and what is not indexed yet) from its creation time; one added while the server is stopped starts
from its creation time too, through `recover`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from kefu.protocol.frames import SERVICE_BASE

from .. import log as logmod
from ..engine.messages import SendResult, StoredMessage
from ..storage.schema import TS_CONV_SEQ
from .events import WebhookEvent, base_conversation, classify, event_from, event_of, headers
from .subscriptions import Cursor, Subscription, list_all, load_cursors, save_cursors

__all__ = ["CLOCK_MARGIN_MS", "RELOAD_S", "Dispatcher", "Settings", "attach", "backoff"]

CLOCK_MARGIN_MS: Final = 10_000
"""How far before the clock a cursor's since_ms stays: longer than a group commit takes from sequencing a message
to reporting it here (milliseconds), and than the small steps NTP makes to the clock."""
RELOAD_S: Final = 1.0
"""How often the subscriptions table is read again (a change by `kefu webhook` reaches the server this fast)."""
CATCH_UP_MS: Final = 60_000
"""How far back a subscription picked up while the server runs is caught up from the log (it is read within RELOAD_S
of its creation; the bound keeps a subscription whose creation time is wrong from scanning the whole store)."""
IDLE_CURSOR_MS: Final = 60_000
"""A cursor with no delivery since it was written is written again when its since_ms moved this far (so that a
restart does not scan a long stretch of other tenants' messages for an idle subscription)."""
TENANT_CACHE: Final = 100_000
"""Conversations whose tenant is remembered (a tenant never changes); the cache is emptied when full."""
DEAD_LETTER_LOG_S: Final = 1.0
"""At most one `webhooks.dead_letter` line per this interval (a receiver gone for long, or a full backlog, makes
dead letters in bursts); the line counts those not logged since. The metric counts every one."""
SCAN_CHUNK: Final = 10_000
"""Index keys read per read transaction by `recover`."""

Scan = Callable[[int], list[tuple[int, int, int]]]
"""(timestamp_ms, conversation_id, seq) of every durable message of the service range from a time on, sorted."""
Read = Callable[[int, int], StoredMessage | None]
"""One stored message by (conversation_id, seq), or None once it is gone."""
TenantOf = Callable[[int], str | None]
"""The tenant of a service conversation, or None if there is no such conversation."""


@dataclass(frozen=True, slots=True)
class Settings:
    """[webhooks] settings the dispatcher works with."""

    max_attempts: int = 12
    max_age_s: float = 86400.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    timeout_s: float = 10.0
    concurrency: int = 8
    cursor_save_s: float = 1.0
    max_backlog: int = 100_000

    @classmethod
    def of(cls, config: Any) -> Settings:
        """From the configuration's [webhooks] section."""
        w = config.webhooks
        return cls(
            w.max_attempts, float(w.max_age_s), w.backoff_initial_ms / 1000, w.backoff_max_ms / 1000,
            w.timeout_ms / 1000, w.concurrency, w.cursor_save_ms / 1000, w.max_backlog,
        )  # fmt: skip


def backoff(attempts: int, settings: Settings, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt after `attempts` failed ones: the exponential step, capped, then "equal
    jitter" (between half of it and all of it), so that a receiver back from an outage is not hit by every
    subscription's retries at the same instant."""
    step: float = min(settings.backoff_max_s, settings.backoff_initial_s * float(2 ** min(attempts - 1, 60)))
    return step / 2 + rand() * step / 2


def stored_since(store: Any, since_ms: int) -> Iterator[tuple[int, int, int]]:
    """(timestamp_ms, conversation_id, seq) of every message of the service range indexed in `store` from `since_ms`
    on, in the ``expiry`` index's order, read in transactions of SCAN_CHUNK keys."""
    start = TS_CONV_SEQ.pack(max(0, since_ms), 0, 0)
    while True:
        keys = []
        with store.reading() as txn, txn.cursor(store.handle("expiry")) as cur:
            if cur.set_range(start):
                for key in cur.iternext(values=False):
                    keys.append(key)
                    if len(keys) >= SCAN_CHUNK:
                        break
        for key in keys:
            ts, conversation, seq = TS_CONV_SEQ.unpack(key)
            if conversation >= SERVICE_BASE:
                yield ts, conversation, seq
        if len(keys) < SCAN_CHUNK:
            return
        start = keys[-1] + b"\0"


class _Item:
    """One event of a subscription's queue: its stored message's place, and the event once read."""

    __slots__ = ("attempts", "conversation", "event", "order", "read", "seq", "ts")

    def __init__(self, ts: int, conversation: int, seq: int, event: WebhookEvent | None) -> None:
        self.ts, self.conversation, self.seq, self.event = ts, conversation, seq, event
        self.read = event is not None
        """False for a reference `recover` queued: the message is read when it reaches the head."""
        self.order = event.id if event is not None else 0
        self.attempts = 0


class _Feed:
    """One subscription at work: its queues (by service conversation), which of them may send now, its cursor."""

    def __init__(self, subscription: Subscription, cursor: Cursor) -> None:
        self.sub = subscription
        self.since_ms = cursor.since_ms
        self.queues: dict[int, deque[_Item]] = {}
        self.ready: deque[int] = deque()
        """Conversations whose head may be sent now."""
        self.busy: set[int] = set()
        """Conversations with a queue: in `ready`, being sent, or waiting for a retry."""
        self.inflight = 0
        self.backlog = 0
        self.done: dict[int, tuple[int, int]] = dict(cursor.done)
        """Log conversation -> (highest seq handled, its timestamp)."""
        self.saved: Cursor | None = cursor
        self.dirty = False
        self.removed = False
        self.timers: dict[int, asyncio.TimerHandle] = {}

    def cursor(self, now_ms: int) -> Cursor:
        """The cursor to store now (and `done` pruned to what it needs)."""
        since = now_ms - CLOCK_MARGIN_MS
        for queue in self.queues.values():
            if queue and queue[0].ts < since:
                since = queue[0].ts
        self.done = {c: v for c, v in self.done.items() if v[1] >= since}
        return Cursor(since, dict(self.done))

    def lag_s(self, now_ms: int) -> float:
        """How old the oldest queued event is (0 when none waits)."""
        oldest = min((q[0].ts for q in self.queues.values() if q), default=now_ms)
        return max(0.0, (now_ms - oldest) / 1000)


def attach(log: Any, on_batch: Callable[[Sequence[tuple[Any, SendResult | None]]], None]) -> None:
    """Have `on_batch(done)` called with each group commit's results, after the callbacks already registered (the
    log's `committer.on_committed`, which the cursors use)."""
    committer = log.committer
    previous = committer.on_committed

    def both(done: Sequence[tuple[Any, SendResult | None]]) -> None:
        if previous is not None:
            previous(done)
        try:
            on_batch(done)
        except Exception as exc:  # a bug here must cost the webhooks, never the commit path
            logmod.exception("webhooks.internal_error", error=repr(exc))

    committer.on_committed = both


class Dispatcher:
    """The webhooks of one core process (see the module docstring)."""

    def __init__(
        self, store: Any, read: Read, tenant_of: TenantOf, settings: Settings, loop: asyncio.AbstractEventLoop, *,
        metrics: Any = None, clock: Callable[[], float] = time.time, scan: Scan | None = None,
    ) -> None:  # fmt: skip
        """`scan`: what a subscription picked up while running catches up from (default: the indexed store only;
        the core process's also reads what the log holds that is not indexed yet)."""
        self.store, self.read, self.settings, self.loop = store, read, settings, loop
        self.metrics = metrics
        self.clock = clock
        self._tenant_of = tenant_of
        self._scan: Scan = scan or (lambda since: sorted(stored_since(self.store, since)))
        self._tenants: dict[int, str] = {}
        self.feeds: dict[str, _Feed] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._reload_now = asyncio.Event()
        self._closing = False
        self.delivered = 0
        self.dead_letters = 0
        self._dead_logged_at = -DEAD_LETTER_LOG_S
        self._dead_unlogged = 0

    # --- start-up and shutdown ------------------------------------------------------------------------------

    def recover(self) -> int:
        """Load the subscriptions and cursors, and queue what each has not handled (before the log takes writes);
        the number of events queued."""
        cursors = load_cursors(self.store)
        for sub in list_all(self.store):
            self.feeds[sub.id] = _Feed(sub, cursors.get(sub.id) or Cursor(sub.created_ms))
        if not self.feeds:
            return 0
        since = min(feed.since_ms for feed in self.feeds.values())
        queued = 0
        for ts, conversation, seq in stored_since(self.store, since):
            base = base_conversation(conversation)
            tenant = self.tenant(base)
            for feed in self.feeds.values():
                handled = feed.done.get(conversation)
                if ts < feed.since_ms or feed.sub.tenant != tenant or (handled and seq <= handled[0]):
                    continue
                self._push(feed, base, _Item(ts, conversation, seq, None))
                queued += 1
        if queued:
            logmod.event("webhooks.recovered", events=queued, since_ms=since, subscriptions=len(self.feeds))
        return queued

    async def start(self) -> None:
        """Open the HTTP client, start delivering, reading the subscriptions and writing the cursors."""
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s), trust_env=False,
            auto_decompress=False,
        )  # fmt: skip
        self._background = [self.loop.create_task(self._reload_forever()), self.loop.create_task(self._save_forever())]
        for feed in self.feeds.values():
            self._pump(feed)

    async def close(self) -> None:
        """Stop delivering (what is in flight is delivered again after a restart) and write the cursors."""
        self._closing = True
        for task in self._background:
            task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._background, *self._tasks, return_exceptions=True)
        for feed in self.feeds.values():
            for timer in feed.timers.values():
                timer.cancel()
        with contextlib.suppress(Exception):
            await self._save(force=True)
        if self._session is not None:
            await self._session.close()

    # --- the live feed ----------------------------------------------------------------------------------------

    def on_batch(self, done: Sequence[tuple[Any, SendResult | None]]) -> None:
        """A group commit's results (on the loop): queue the events of its stored messages."""
        if not self.feeds:
            return
        for _, result in done:
            if result is None or result.status or result.duplicate or result.message is None:
                continue
            message = result.message
            if message.conversation_id >= SERVICE_BASE:
                self._offer(message)

    def _offer(self, message: StoredMessage) -> None:
        base = base_conversation(message.conversation_id)
        tenant = self.tenant(base)
        if tenant is None:
            return
        feeds = [f for f in self.feeds.values() if f.sub.tenant == tenant]
        found = classify(message) if feeds else None
        if found is None:
            return
        feeds = [f for f in feeds if found[0] in f.sub.events]
        if not feeds:  # no JSON made for an event nobody wants
            return
        event = event_from(message, tenant, *found)
        for feed in feeds:
            self._push(feed, base, _Item(message.timestamp_ms, message.conversation_id, message.seq, event))

    def tenant(self, base: int) -> str | None:
        """The tenant of a service conversation (remembered: it never changes; "none" is not remembered, since the
        desk may yet create a conversation of that id)."""
        tenant = self._tenants.get(base)
        if tenant is None:
            tenant = self._tenant_of(base)
            if tenant is not None:
                if len(self._tenants) >= TENANT_CACHE:
                    self._tenants.clear()
                self._tenants[base] = tenant
        return tenant

    def _push(self, feed: _Feed, base: int, item: _Item) -> None:
        if feed.backlog >= self.settings.max_backlog:
            self._dead(feed, item, "backlog")  # not marked done: a restart may still deliver it
            return
        queue = feed.queues.get(base)
        if queue is None:
            queue = feed.queues[base] = deque()
        queue.append(item)
        feed.backlog += 1
        if base not in feed.busy:
            feed.busy.add(base)
            feed.ready.append(base)
            self._pump(feed)

    # --- delivering ---------------------------------------------------------------------------------------

    def _pump(self, feed: _Feed) -> None:
        """Start sending the heads of ready conversations, up to the subscription's concurrency."""
        if self._session is None or self._closing or feed.removed:
            return
        while feed.ready and feed.inflight < self.settings.concurrency:
            base = feed.ready.popleft()
            feed.inflight += 1
            task = self.loop.create_task(self._deliver(feed, base))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, feed: _Feed, base: int) -> None:
        try:
            item = self._head(feed, base)
            if item is None or item.event is None:
                self._next(feed, base)
                return
            result = await self._post(feed.sub, item.event)
            if feed.removed:
                return
            if self.metrics is not None:
                self.metrics.webhook_delivery(result)
            if result == "ok":
                self.delivered += 1
                self._handled(feed, base, item)
            else:
                item.attempts += 1
                reason = self._give_up(item)
                if reason is None:
                    delay = backoff(item.attempts, self.settings)
                    feed.timers[base] = self.loop.call_later(delay, self._retry, feed, base)
                    return
                self._dead(feed, item, reason)
                self._handled(feed, base, item)
            self._next(feed, base)
        finally:
            feed.inflight -= 1
            self._pump(feed)

    def _give_up(self, item: _Item) -> str | None:
        """Why a failed event is not tried again (None: it is)."""
        if item.attempts >= self.settings.max_attempts:
            return "attempts"
        if self.clock() * 1000 - item.ts > self.settings.max_age_s * 1000:
            return "age"
        return None

    def _head(self, feed: _Feed, base: int) -> _Item | None:
        """The conversation's first event to send; the events before it that the subscription does not want (read from
        the store when `recover` queued them) are passed in order. None if nothing is left."""
        queue = feed.queues.get(base)
        while queue:
            head = queue[0]
            if not head.read:
                self._read_millisecond(feed, queue, head.ts)
            elif head.event is None:
                queue.popleft()
                feed.backlog -= 1
                self._note_done(feed, head)
            else:
                return head
        return None

    def _read_millisecond(self, feed: _Feed, queue: deque[_Item], ts: int) -> None:
        """Read the events of the queued references of millisecond `ts` at the head (`recover` and a new subscription's
        catch-up queue references before any live event, in the index's order), and put them back in commit order
        (server_msg_id). A message that is not an event the subscription wants, or
        is gone from the store, stays as a reference to pass (event None): the cursor passes it in its turn."""
        same = []
        while queue and not queue[0].read and queue[0].ts == ts:  # references come first, in timestamp order
            same.append(queue.popleft())
        for item in same:
            message = self.read(item.conversation, item.seq)
            item.read, item.order = True, message.server_msg_id if message is not None else 0
            tenant = self.tenant(base_conversation(item.conversation))
            event = event_of(message, tenant) if message is not None and tenant is not None else None
            item.event = event if event is not None and event.type in feed.sub.events else None
        same.sort(key=lambda item: item.order)
        queue.extendleft(reversed(same))

    async def _post(self, sub: Subscription, event: WebhookEvent) -> str:
        """One attempt: "ok" (2xx), "rejected" (another status, redirects included: none is followed), "timeout"
        or "error" (no answer)."""
        assert self._session is not None
        sent = headers(
            event, subscription=sub.id, secret=sub.secret, algorithms=sub.algorithms, timestamp=int(self.clock())
        )
        try:
            async with self._session.post(sub.url, data=event.body, headers=sent, allow_redirects=False) as response:
                return "ok" if 200 <= response.status < 300 else "rejected"
        except TimeoutError:
            return "timeout"
        except (aiohttp.ClientError, OSError, ValueError):
            return "error"

    def _retry(self, feed: _Feed, base: int) -> None:
        feed.timers.pop(base, None)
        if not feed.removed:
            feed.ready.append(base)
            self._pump(feed)

    def _handled(self, feed: _Feed, base: int, item: _Item) -> None:
        """The head event was delivered or given up: the cursor moves past it."""
        queue = feed.queues.get(base)
        if queue and queue[0] is item:
            queue.popleft()
            feed.backlog -= 1
        self._note_done(feed, item)

    @staticmethod
    def _note_done(feed: _Feed, item: _Item) -> None:
        previous = feed.done.get(item.conversation)
        if previous is None or item.seq > previous[0]:
            feed.done[item.conversation] = (item.seq, item.ts)
        feed.dirty = True

    def _next(self, feed: _Feed, base: int) -> None:
        """After the head was handled: the conversation is ready again, or has no queue left."""
        if feed.queues.get(base):
            feed.ready.append(base)
        else:
            feed.queues.pop(base, None)
            feed.busy.discard(base)

    def _dead(self, feed: _Feed, item: _Item, reason: str) -> None:
        self.dead_letters += 1
        if self.metrics is not None:
            self.metrics.webhook_dead_letter(reason)
        now = time.monotonic()
        if now - self._dead_logged_at < DEAD_LETTER_LOG_S:
            self._dead_unlogged += 1
            return
        event_id = item.event.id if item.event is not None else 0
        logmod.warning(
            "webhooks.dead_letter", subscription=feed.sub.id, event=event_id, conversation=item.conversation,
            seq=item.seq, reason=reason, attempts=item.attempts, not_logged_before=self._dead_unlogged,
        )  # fmt: skip
        self._dead_logged_at, self._dead_unlogged = now, 0

    # --- subscriptions and cursors ---------------------------------------------------------------------------

    def reload_soon(self) -> None:
        """Read the subscriptions again now (after a change through the HTTP API)."""
        self._reload_now.set()

    async def _reload_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_now.wait(), RELOAD_S)
            self._reload_now.clear()
            try:
                self.reload()
            except Exception as exc:  # a store error: the next round tries again
                logmod.warning("webhooks.reload_failed", reason=repr(exc))

    def reload(self) -> None:
        """Take the subscriptions table as it is now: new ones start with the next event, removed ones stop."""
        found = {sub.id: sub for sub in list_all(self.store)}
        now_ms = int(self.clock() * 1000)
        for sid in [sid for sid in self.feeds if sid not in found]:
            feed = self.feeds.pop(sid)
            feed.removed = True
            for timer in feed.timers.values():
                timer.cancel()
            if self.metrics is not None:
                self.metrics.webhook_forget(sid)
            logmod.event("webhooks.removed", subscription=sid)
        for sid, sub in found.items():
            if sid not in self.feeds:
                self._added(sub, now_ms)

    def _added(self, sub: Subscription, now_ms: int) -> None:
        """A subscription made while the server runs: its events since it was made (at most CATCH_UP_MS back) are
        queued from the durable log, then it takes the live ones."""
        since = max(sub.created_ms, now_ms - CATCH_UP_MS)
        feed = self.feeds[sub.id] = _Feed(sub, Cursor(since))
        feed.saved = None
        caught = 0
        for ts, conversation, seq in self._scan(since):
            base = base_conversation(conversation)
            if self.tenant(base) == sub.tenant:
                self._push(feed, base, _Item(ts, conversation, seq, None))
                caught += 1
        logmod.event(
            "webhooks.added", subscription=sub.id, tenant=sub.tenant, events=",".join(sub.events), caught_up=caught
        )

    async def _save_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cursor_save_s)
            try:
                await self._save()
            except Exception as exc:  # a full disk: the cursors stay in memory, written at the next round
                logmod.warning("webhooks.cursor_save_failed", reason=repr(exc))

    async def _save(self, *, force: bool = False) -> None:
        """Write the cursors that moved (off the loop), and publish each subscription's lag."""
        now_ms = int(self.clock() * 1000)
        latest = now_ms - CLOCK_MARGIN_MS
        due: dict[str, Cursor] = {}
        for sid, feed in self.feeds.items():
            if self.metrics is not None:
                self.metrics.webhook_feed(sid, feed.lag_s(now_ms), feed.backlog)
            saved = feed.saved
            if not (feed.dirty or force or saved is None or latest - saved.since_ms >= IDLE_CURSOR_MS):
                continue  # idle, and its since_ms (never later than `latest`) cannot have moved IDLE_CURSOR_MS
            cursor = feed.cursor(now_ms)
            idle_moved = saved is None or cursor.since_ms - saved.since_ms >= IDLE_CURSOR_MS
            if feed.dirty or idle_moved or force:
                due[sid] = cursor
        if not due:
            return
        for sid in due:
            self.feeds[sid].dirty = False
        try:
            await self.loop.run_in_executor(None, save_cursors, self.store, due)
        except BaseException:
            for sid in due:
                if sid in self.feeds:
                    self.feeds[sid].dirty = True
            raise
        for sid, cursor in due.items():
            if sid in self.feeds:
                self.feeds[sid].saved = cursor

    def status(self) -> dict[str, Any]:
        """Per subscription: its backlog and lag (for tests and /healthz-like views)."""
        now_ms = int(self.clock() * 1000)
        return {sid: {"backlog": f.backlog, "lag_s": f.lag_s(now_ms)} for sid, f in self.feeds.items()}
