"""In-memory fakes of the delivery engine's ports (`kefu.server.engine.ports`), for tests of the core, the delivery
side and the desk with no storage, socket or protocol connection under them.

Each fake implements its Protocol, small and honest, and records what it was given:

- `MemoryLog` (MessageLog) does what the store's sequencer does (`kefu.server.storage.sequencer`): numbers each
  conversation's messages 1, 2, 3, ..., creates a conversation from `create_members`, refuses a non-member's write,
  deduplicates on (sender, client_msg_id), applies `set_members`, `silent` and `puts`, and names the old and the new
  members as a replacement's recipients. Like the group committer it sequences on a later loop iteration
  (`loop.call_soon`) and runs `done` then, once the write counts as durable; reads see a write only from then on.
  `failing` makes commits fail with STORAGE_UNAVAILABLE (nothing stored); `close()` makes `submit` raise LogClosed.
- `RecordingEndpoint` (Endpoint), `RecordingCore` (CorePort), `RecordingDevice` (Device), `RecordingPolicy`
  (ConversationPolicy) and `RecordingOutlet` (`kefu.server.engine.streams.Outlet`) keep every call.
- `ProfileTable` (Profiles) is a dict; `FakeHost` (ServiceHost) writes through a `MemoryLog` and keeps each write
  with its result.
- `ManualClock` is time that moves only when a test moves it.

Waiting is on events, never on sleeps: `MemoryLog.durable()` returns once every write submitted is done, and
`RecordingDevice.wait_for()` once a matching frame has arrived (both bounded by WAIT_S).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from kefu.protocol.delivery import DEFAULT_RTO_INITIAL, DEFAULT_RTO_MAX, DEFAULT_WINDOW, DeliveryWindow
from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import Frame, Send, Sync, decode_inner
from kefu.server.engine.identity import NOBODY, Profile
from kefu.server.engine.messages import Outgoing, SendRequest, SendResult, StoredMessage
from kefu.server.engine.ports import Device, Done, LogClosed, MessageLog, ResumePlan

__all__ = [
    "START_MS",
    "WAIT_S",
    "FakeHost",
    "FetchRequest",
    "ManualClock",
    "MemoryLog",
    "ProfileTable",
    "Published",
    "RecordingCore",
    "RecordingDevice",
    "RecordingEndpoint",
    "RecordingOutlet",
    "RecordingPolicy",
    "Written",
    "decode_one",
]

WAIT_S = 5.0
"""Every wait in these tests is bounded by this: a bug fails a test instead of hanging it."""
START_MS = 1_700_000_000_000
"""The timestamp a `MemoryLog` gives its messages (a fixed wall clock)."""

F = TypeVar("F", bound=Frame)


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _refused(code: ErrorCode) -> SendResult:
    return SendResult(int(code), False, None, ())


def decode_one(raw: bytes) -> Frame:
    """The one frame an encoded frame (header and body) holds."""
    [(frame, start, stop)] = decode_inner(raw)
    assert frame is not None and (start, stop) == (0, len(raw)), "exactly one known frame"
    return frame


class ManualClock:
    """Seconds that move only by `advance`; callable (the desk's `now`) and with `monotonic()` (for a module's
    `time`)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        """The same seconds, for code that calls `time.monotonic()`."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move on."""
        self.now += seconds


# --- the message log ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Conversation:
    members: tuple[str, ...]
    messages: list[StoredMessage] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.messages[-1].seq if self.messages else 0


class MemoryLog:
    """A `MessageLog` in memory (see the module docstring). `requests`: every request submitted, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, tables: Iterable[str] = ()) -> None:
        self.loop = loop
        self.tables: dict[str, dict[bytes, bytes]] = {name: {} for name in tables}
        self.conversations: dict[int, _Conversation] = {}
        self.requests: list[SendRequest] = []
        self.failing = False
        """While set, every commit fails with STORAGE_UNAVAILABLE and stores nothing."""
        self._by_id: dict[tuple[str, bytes], StoredMessage] = {}
        self._cursors: dict[tuple[str, int], int] = {}
        self._next_id = 1
        self._waiting = 0
        self._idle: asyncio.Future[None] | None = None
        self._closed = False

    def close(self) -> None:
        """Take no more writes (the server is draining)."""
        self._closed = True

    async def durable(self) -> None:
        """Return once every write submitted so far (and any its `done` submitted) is durable and answered."""
        if self._waiting:
            if self._idle is None:
                self._idle = self.loop.create_future()
            await asyncio.wait_for(asyncio.shield(self._idle), WAIT_S)

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """Every message of the conversation (empty if it does not exist)."""
        conv = self.conversations.get(conversation_id)
        return list(conv.messages) if conv is not None else []

    # --- MessageLog ---------------------------------------------------------------------------------------------

    def submit(self, request: SendRequest, done: Done) -> None:
        """Sequence and store `request` on a later iteration, then run `done`."""
        if self._closed:
            raise LogClosed
        self.requests.append(request)
        self._waiting += 1
        self.loop.call_soon(self._commit, request, done)

    def _commit(self, request: SendRequest, done: Done) -> None:
        result = _refused(ErrorCode.STORAGE_UNAVAILABLE) if self.failing else self._store(request)
        try:
            done(result)
        finally:
            self._waiting -= 1
            if not self._waiting and self._idle is not None:
                self._idle.set_result(None)
                self._idle = None

    def _store(self, r: SendRequest) -> SendResult:
        earlier = self._by_id.get((r.sender, r.client_msg_id))
        if earlier is not None:
            return SendResult(int(ErrorCode.OK), True, earlier, self.conversations[earlier.conversation_id].members)
        if any(table not in self.tables for table, _, _ in r.puts):
            return _refused(ErrorCode.BAD_REQUEST)
        conv = self.conversations.get(r.conversation_id)
        if conv is None:
            if r.silent or not r.create_members:
                return _refused(ErrorCode.NOT_FOUND)
            conv = _Conversation(_unique(r.create_members if r.system else (r.sender, *r.create_members)))
        elif r.sender not in conv.members and not r.system and not r.silent:
            return _refused(ErrorCode.FORBIDDEN)
        before = conv.members
        after = before if r.set_members is None else _unique(r.set_members)
        message = None
        if not r.silent:
            message = StoredMessage(
                r.conversation_id, conv.last_seq + 1, self._next_id, START_MS, r.sender, r.client_msg_id,
                r.content_type, r.body, r.metadata,
            )  # fmt: skip
            self._next_id += 1
            conv.messages.append(message)
            self._by_id[(r.sender, r.client_msg_id)] = message
        conv.members = after
        self.conversations[r.conversation_id] = conv
        for table, key, value in r.puts:
            if value is None:
                self.tables[table].pop(key, None)
            else:
                self.tables[table][key] = value
        return SendResult(int(ErrorCode.OK), False, message, after if r.silent else _unique((*before, *after)))

    def advance_cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """Kept as the store keeps it: a member's, at most the last seq, only ever growing."""
        conv = self.conversations.get(conversation_id)
        if conv is None or user not in conv.members:
            return
        key = (user, conversation_id)
        self._cursors[key] = max(self._cursors.get(key, 0), min(seq, conv.last_seq))

    def cursor(self, user: str, conversation_id: int) -> int:
        """The user's stored cursor; 0 if none."""
        return self._cursors.get((user, conversation_id), 0)

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of the user's conversations with unacknowledged messages, by id."""
        out = []
        for conversation_id, conv in sorted(self.conversations.items()):
            cursor = self.cursor(user, conversation_id)
            if user in conv.members and cursor < conv.last_seq:
                out.append((conversation_id, cursor, conv.last_seq))
        return out

    def read_range(self, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """Messages with after_seq < seq <= until_seq (0: the latest), at most `limit`, in seq order."""
        conv = self.conversations.get(conversation_id)
        if conv is None or limit <= 0:
            return []
        top = until_seq or conv.last_seq
        return [m for m in conv.messages if after_seq < m.seq <= top][:limit]

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's last seq; 0 if it has none."""
        conv = self.conversations.get(conversation_id)
        return conv.last_seq if conv is not None else 0

    def members(self, conversation_id: int) -> tuple[str, ...] | None:
        """The conversation's members; None if it does not exist."""
        conv = self.conversations.get(conversation_id)
        return conv.members if conv is not None else None

    def get_record(self, table: str, key: bytes) -> bytes | None:
        """One record of a registered table, or None."""
        return self.tables[table].get(key)

    def scan(self, table: str, prefix: bytes = b"", *, limit: int = 1 << 62) -> list[tuple[bytes, bytes]]:
        """Records of a registered table by key prefix, in key order."""
        return sorted((k, v) for k, v in self.tables[table].items() if k.startswith(prefix))[:limit]

    def last_key(self, table: str) -> bytes | None:
        """The greatest key of a registered table, or None."""
        return max(self.tables[table], default=None)

    @property
    def queue_depth(self) -> int:
        """Writes submitted and not yet durable."""
        return self._waiting


# --- the core's side: gateways, policy, profiles ------------------------------------------------------------------


class Published(NamedTuple):
    """One `Endpoint.publish` call."""

    message: Outgoing
    recipients: list[tuple[str, int]]
    origin: int
    t0: float


class RecordingEndpoint:
    """A gateway as the core sees it, keeping every call."""

    def __init__(self, name: str = "gateway") -> None:
        self.name = name
        self.acks: list[tuple[int, Send, SendResult, int]] = []
        self.published: list[Published] = []
        self.frames: list[tuple[int, Frame]] = []
        self.resumed: list[tuple[int, int, int, list[ResumePlan]]] = []
        self.verdicts: list[tuple[int, ErrorCode | None]] = []
        self.fetched_answers: list[tuple[int, list[Outgoing]]] = []

    def __repr__(self) -> str:
        return f"RecordingEndpoint({self.name!r})"

    def frames_for(self, sid: int) -> list[Frame]:
        """The frames the core sent connection `sid`, in order."""
        return [frame for to, frame in self.frames if to == sid]

    def submitted(self, sid: int, send: Send, result: SendResult, cursor: int) -> None:
        self.acks.append((sid, send, result, cursor))

    def publish(self, message: Outgoing, recipients: Sequence[tuple[str, int]], origin: int, t0: float) -> None:
        self.published.append(Published(message, list(recipients), origin, t0))

    def send(self, sid: int, frame: Frame) -> None:
        self.frames.append((sid, frame))

    def resume(self, sid: int, request_id: int, conversation_id: int, plans: Sequence[ResumePlan]) -> None:
        self.resumed.append((sid, request_id, conversation_id, list(plans)))

    def admitted(self, ticket: int, code: ErrorCode | None) -> None:
        self.verdicts.append((ticket, code))

    def fetched(self, ticket: int, messages: Sequence[Outgoing]) -> None:
        self.fetched_answers.append((ticket, list(messages)))


class RecordingPolicy:
    """A conversation policy that allows what it is told to, and keeps what it was told."""

    def __init__(self, *, send_code: ErrorCode | None = None, readable: Iterable[tuple[str, int]] = ()) -> None:
        self.send_code = send_code
        """What `check_send` answers."""
        self.readable = set(readable)
        """(user, conversation_id) pairs `can_read` allows."""
        self.checked: list[tuple[str, int, int]] = []
        """(user, conversation_id, content_type) of each `check_send`."""
        self.connected_devices: list[Device] = []
        self.disconnected_devices: list[Device] = []
        self.committed_results: list[SendResult] = []
        self.requests: list[tuple[Device, Frame]] = []

    def check_send(self, user: str, conversation_id: int, content_type: int) -> ErrorCode | None:
        self.checked.append((user, conversation_id, content_type))
        return self.send_code

    def can_read(self, user: str, conversation_id: int) -> bool:
        return (user, conversation_id) in self.readable

    def connected(self, device: Device) -> None:
        self.connected_devices.append(device)

    def disconnected(self, device: Device) -> None:
        self.disconnected_devices.append(device)

    def committed(self, result: SendResult) -> None:
        self.committed_results.append(result)

    def on_request(self, device: Device, frame: Frame) -> None:
        self.requests.append((device, frame))


class ProfileTable:
    """Profiles by user; a user not in the table has none (NOBODY, a plain app of tenant "")."""

    def __init__(self, profiles: dict[str, Profile] | None = None) -> None:
        self.profiles = dict(profiles or {})

    def profile(self, user: str) -> Profile:
        return self.profiles.get(user, NOBODY)


# --- the delivery side's view: the core and the connections ----------------------------------------------------


class FetchRequest(NamedTuple):
    """One `CorePort.fetch` call."""

    ticket: int
    conversation_id: int
    after_seq: int
    until_seq: int
    limit: int


class RecordingCore:
    """The core as one gateway sees it, keeping every request (a test answers fetches itself)."""

    def __init__(self) -> None:
        self.admits: list[tuple[int, str]] = []
        self.opens: list[tuple[int, str]] = []
        self.closes: list[int] = []
        self.submits: list[tuple[int, Send, float]] = []
        self.cursors: list[tuple[str, int, int]] = []
        self.syncs: list[tuple[int, Sync, int]] = []
        self.fetches: list[FetchRequest] = []
        self.services: list[tuple[int, Frame]] = []

    def admit(self, ticket: int, address: str) -> None:
        self.admits.append((ticket, address))

    def opened(self, sid: int, user: str) -> None:
        self.opens.append((sid, user))

    def closed(self, sid: int) -> None:
        self.closes.append(sid)

    def submit(self, sid: int, send: Send, t0: float) -> None:
        self.submits.append((sid, send, t0))

    def cursor(self, user: str, conversation_id: int, seq: int) -> None:
        self.cursors.append((user, conversation_id, seq))

    def sync(self, sid: int, sync: Sync, room: int) -> None:
        self.syncs.append((sid, sync, room))

    def fetch(self, ticket: int, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> None:
        self.fetches.append(FetchRequest(ticket, conversation_id, after_seq, until_seq, limit))

    def service(self, sid: int, frame: Frame) -> None:
        self.services.append((sid, frame))


class RecordingOutlet:
    """A connection as its delivery side sees it: every frame it was given, decoded, in order. `buffers_full`
    stands for a slow reader (`can_send_more` is False); `window_size` and `rto` shape its delivery window."""

    def __init__(
        self, user: str, *, window_size: int = DEFAULT_WINDOW, rto: float = DEFAULT_RTO_INITIAL,
        rto_max: float = DEFAULT_RTO_MAX,
    ) -> None:  # fmt: skip
        self.user = user
        self.ready = True
        self.window: DeliveryWindow | None = None
        self.buffers_full = False
        self.sent: list[Frame] = []
        self._shape = (window_size, rto, rto_max)

    def __repr__(self) -> str:
        return f"RecordingOutlet({self.user!r})"

    def delivery_window(self) -> DeliveryWindow:
        if self.window is None:
            self.window = DeliveryWindow(*self._shape)
        return self.window

    def can_send_more(self) -> bool:
        return not self.buffers_full

    def send(self, frame: Frame) -> None:
        self.sent.append(frame)

    def send_encoded(self, raw: bytes) -> None:
        self.sent.append(decode_one(raw))


# --- the desk's view: devices and the host ----------------------------------------------------------------------


class RecordingDevice:
    """A ready connection of `user`, keeping every frame sent to it; `wait_for` awaits one."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.frames: list[Frame] = []
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"RecordingDevice({self.user!r})"

    def send(self, frame: Frame) -> None:
        self.frames.append(frame)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def of_type(self, cls: type[F]) -> list[F]:
        """The frames of one type, in order."""
        return [frame for frame in self.frames if isinstance(frame, cls)]

    async def wait_for(self, match: Callable[[Frame], bool]) -> Frame:
        """The first frame (already here, or the next to arrive) that `match`es."""
        async with asyncio.timeout(WAIT_S):
            while True:
                for frame in self.frames:
                    if match(frame):
                        return frame
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter

    async def reply(self, request_id: int) -> Frame:
        """The answer to the request with this (nonzero) request_id."""
        return await self.wait_for(lambda frame: frame.request_id == request_id)


class Written(NamedTuple):
    """One `ServiceHost.write`, with its outcome."""

    request: SendRequest
    result: SendResult


class FakeHost:
    """The core as the desk sees it: writes go to the log, devices are those a test connected."""

    def __init__(self, config: Any, loop: asyncio.AbstractEventLoop, log: MessageLog) -> None:
        self.config = config
        self.loop = loop
        self.log = log
        self.online: dict[str, list[Device]] = {}
        self.writes: list[Written] = []
        """Every write that completed, in commit order."""
        self.events: list[tuple[str, dict[str, object]]] = []
        self.counts: list[str] = []
        self.errors: list[ErrorCode] = []
        self.waiting: list[int] = []
        """Conversations waiting in every queue, at each figures published."""
        self.figures: Any = None
        self.failures: list[BaseException | None] = []

    def devices(self, user: str) -> Iterable[Device]:
        return tuple(self.online.get(user, ()))

    def write(self, request: SendRequest, done: Done) -> None:
        def committed(result: SendResult) -> None:
            self.writes.append(Written(request, result))
            done(result)

        self.log.submit(request, committed)

    def event(self, name: str, /, **fields: object) -> None:
        self.events.append((name, fields))

    def count(self, event: str) -> None:
        self.counts.append(event)

    def refused(self, user: str, request: Frame, code: ErrorCode) -> None:
        self.errors.append(code)

    def publish_figures(self, figures: Any) -> None:
        self.figures = figures
        self.waiting.append(sum(g.waiting for g in figures.groups.values()))

    def background_error(self, exc: BaseException | None) -> None:
        self.failures.append(exc)
