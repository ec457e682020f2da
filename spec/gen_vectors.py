"""Generate the language-neutral test vectors in spec/vectors/ (spec/PROTOCOL.md section 11).

    python spec/gen_vectors.py           # write frames.json, records.json, handshakes.json, http-signatures.json
    python spec/gen_vectors.py --check   # exit 1 if the files differ from what the code produces now

Every value is fixed: hello randoms, ephemeral scalars, long-term keys, the SM2 signing nonce, ticket
nonces and ids, and the clock. The Python tests (tests/vectors/) parse, compare, re-serialise and replay
every vector byte for byte; a client in another language should do the same.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from kefu.protocol import frames, httpsig
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import SUITES, KeyType, SigningKey, Suite
from kefu.protocol.events import TicketReceived
from kefu.protocol.frames import PskMode
from kefu.protocol.handshake import AppCredential, ClientConfig, FixedRandoms, ServerConfig
from kefu.protocol.keyschedule import expand_label
from kefu.protocol.records import Direction
from kefu.protocol.serverconn import ServerConnection
from kefu.protocol.tickets import SessionTicket, TicketGuard, TicketKeys
from kefu.protocol.wire import wire_fields

OUT = Path(__file__).resolve().parent / "vectors"

# --- frames ---------------------------------------------------------------------------------------------

M16 = bytes(range(16))


def _share(suite: Suite, scalar: bytes) -> frames.KeyShareEntry:
    """The key share of the ephemeral key with private `scalar` (a valid point, as section 5.2 requires)."""
    return frames.KeyShareEntry(suite, SUITES[suite].share_from_private(scalar).public_bytes())


HELLO_SHARES = (_share(Suite.NATIONAL, bytes(range(64, 96))), _share(Suite.INTERNATIONAL, bytes(range(96, 128))))
"""One key share per offered suite, in the order of the offer (section 5.2)."""

SAMPLE_FRAMES: list[tuple[str, str, frames.Frame]] = [
    ("client-hello", "5.2", frames.ClientHello(
        bytes(range(32)), (0x00C6, 0x1301), HELLO_SHARES, 30000, 0, b"", 0, b"", request_id=0)),
    ("server-hello", "5.3", frames.ServerHello(bytes(range(32, 64)), 0x1301, HELLO_SHARES[1].key, 0, 30000)),
    ("server-finished", "5.4", frames.ServerFinished(2, bytes(32), bytes(64), bytes(32))),
    ("client-finished", "5.5", frames.ClientFinished("bank-crm", 1, 0, b"", bytes(32), bytes(32))),
    ("new-ticket", "5.6", frames.NewTicket(600, 0x01020304, bytes(12), b"opaque-ticket")),
    ("key-update", "6.4", frames.KeyUpdate(1)),
    ("send", "4.1", frames.Send(M16, 42, frames.ContentType.TEXT, "您好，我想查询账单".encode(),
                                (frames.MetaEntry("lang", b"zh-CN"),), request_id=7)),
    ("send-ack", "4.2", frames.SendAck(M16, 0, 1001, 42, 5, 1_764_000_000_000, request_id=7)),
    ("send-ack-duplicate", "4.2", frames.SendAck(M16, 0, 1001, 42, 5, 1_764_000_000_000, request_id=8,
                                                  flags=frames.Flag.DUPLICATE)),
    ("send-ack-refused", "4.2", frames.SendAck(M16, 413, 0, 42, 0, 0, request_id=9)),
    ("deliver", "4.3", frames.Deliver(42, 5, 1001, 1_764_000_000_000, M16, 1, "visitor:8812", "您好".encode())),
    ("deliver-ack", "4.4", frames.DeliverAck((frames.AckEntry(42, 5), frames.AckEntry(43, 17)))),
    ("sync", "4.5", frames.Sync(42, 5, 0, 100, request_id=11)),
    ("sync-done", "4.5", frames.SyncDone(42, 17, 0, request_id=11)),
    ("ping", "4.6", frames.Ping(0x0102030405060708, request_id=3)),
    ("pong", "4.6", frames.Pong(0x0102030405060708, request_id=3)),
    ("error", "4.7", frames.Error(429, "rate limited", request_id=12)),
    ("goaway", "4.8", frames.Goaway(503, 2000, 500, 30000, 200, "upgrade")),
    ("close", "4.9", frames.Close(0, "")),
    ("agent-status", "13.3", frames.AgentStatus(frames.AgentState.ONLINE, request_id=20)),
    ("open-conversation", "13.4", frames.OpenConversation(
        M16, "", "cards", (frames.MetaEntry("channel", b"app"), frames.MetaEntry("vip", b"3")),
        "我的信用卡丢了".encode(), request_id=21)),
    ("open-conversation-integration", "13.4", frames.OpenConversation(
        M16, "cust-42", "", (), b"", request_id=22)),
    ("opened", "13.4", frames.Opened((1 << 62) + 1, frames.ConversationState.WAITING, "cards", "", 3, request_id=21)),
    ("transfer", "13.6", frames.Transfer((1 << 62) + 1, "agent-7", "", "senior", "needs approval", request_id=23)),
    ("end-conversation", "13.2", frames.EndConversation((1 << 62) + 1, "resolved", request_id=24)),
    ("watch", "13.7", frames.Watch((1 << 62) + 1, 1, request_id=25)),
    ("draft-decision", "13.8", frames.DraftDecision((1 << 62) + 1, 4, frames.DraftAction.EDIT,
                                                    "您好，已为您挂失。".encode(), request_id=26)),
    ("search", "13.9", frames.Search("账单", 20, request_id=27)),
    ("search-result", "13.9", frames.SearchResult(
        (frames.SearchHit((1 << 62) + 1, 7, 1_764_000_000_000, "第7条 账单问题"),), 0, request_id=27)),
    ("queue-position", "13.5", frames.QueuePosition((1 << 62) + 1, "cards", 2, 5)),
    ("sentiment", "13.10", frames.Sentiment((1 << 62) + 1, 2, 67)),
    ("conversation-info", "13.11", frames.ConversationInfo((1 << 62) + 1, request_id=28)),
    ("result", "13.1", frames.Result(0, (1 << 62) + 1, 9, b'{"state":"transferred","owner":"agent-7"}',
                                     request_id=23)),
    ("result-refused", "13.1", frames.Result(403, (1 << 62) + 1, 0, b'{"reason":"not yours to read"}',
                                             request_id=28)),
]  # fmt: skip


def as_json(value: Any) -> Any:
    """Field values as JSON: bytes as lowercase hex, nested structures as objects."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: as_json(getattr(value, name)) for name, _ in wire_fields(type(value))}
    if isinstance(value, tuple | list):
        return [as_json(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool):
        return value
    return int(value) if isinstance(value, int) else value


def frame_vectors() -> dict[str, Any]:
    """Every frame type, encoded; plus the two forward-compatibility cases of section 3.5."""
    vectors = [
        {
            "name": name,
            "section": section,
            "type": int(frame.TYPE),
            "type_name": frame.TYPE.name,
            "request_id": frame.request_id,
            "flags": frame.flags,
            "fields": as_json(frame),
            "hex": frames.encode(frame).hex(),
        }
        for name, section, frame in SAMPLE_FRAMES
    ]
    ping = frames.encode(frames.Ping(5))
    trailing = frames.HEADER.pack(len(ping) - 12 + 4, 1, frames.FrameType.PING, 0, 0) + ping[12:] + b"\xde\xad\xbe\xef"
    parse_only = [
        {"name": "ping-with-unknown-trailing-field", "section": "3.5", "expect": "parses as", "hex": trailing.hex(),
         "parses_as": ping.hex()},
        {"name": "unknown-ignorable-type-0x80", "section": "3.4", "expect": "skipped",
         "hex": (frames.HEADER.pack(3, 1, 0x80, 0, 0) + b"abc").hex()},
        {"name": "unknown-critical-type-0x7f", "section": "3.4", "expect": "error", "error": 103,
         "hex": (frames.HEADER.pack(1, 1, 0x7F, 0, 0) + b"z").hex()},
        {"name": "oversize-send-header", "section": "3.1", "expect": "error", "error": 101,
         "hex": frames.HEADER.pack(frames.MAX_BODY + 1, 1, frames.FrameType.SEND, 0, 0).hex()},
        {"name": "version-2", "section": "3.1", "expect": "error", "error": 102,
         "hex": frames.HEADER.pack(0, 2, frames.FrameType.PING, 0, 0).hex()},
    ]  # fmt: skip
    return {"description": "One vector per frame type (section 3-5), then parse-only cases.", "frames": vectors,
            "parse_only": parse_only}  # fmt: skip


# --- records --------------------------------------------------------------------------------------------


def record_vectors() -> dict[str, Any]:
    """For each suite: key and IV from a traffic secret, three records in sequence, and a key update."""
    out = []
    for suite in Suite:
        spec = SUITES[suite]
        secret = bytes(range(100, 132))
        sender = Direction(spec, secret)
        batch = frames.encode(frames.Send(M16, 42, 1, b"hello")) + frames.encode(frames.Ping(1))
        plaintexts = [frames.encode(frames.Ping(7)), batch, frames.encode(frames.Close(0, ""))]
        records = []
        for plaintext in plaintexts:
            seq = sender.seq
            records.append({"seq": seq, "plaintext": plaintext.hex(), "hex": sender.seal(plaintext).hex()})
        sender.update()
        updated = {"secret": sender.secret.hex(), "seq": 0, "plaintext": plaintexts[0].hex(),
                   "hex": sender.seal(plaintexts[0]).hex()}  # fmt: skip
        out.append(
            {
                "suite": int(suite),
                "suite_name": spec.name,
                "secret": secret.hex(),
                "key": expand_label(spec.hash_name, secret, b"key", b"", spec.key_len).hex(),
                "iv": expand_label(spec.hash_name, secret, b"iv", b"", 12).hex(),
                "records": records,
                "after_key_update": updated,
            }
        )
    return {"description": "Records under fixed traffic secrets (section 6.3, 6.4).", "suites": out}


# --- handshakes -----------------------------------------------------------------------------------------
#
# Inputs shared by every scenario (`inputs` in the file) and, per scenario, its own: the clock, the SM2 signing
# nonces, the ticket nonce, id and age_add of the ticket it issues, and for a resumption the ticket it presents.
# No nonce serves twice: a signing nonce used under two keys (or twice under one) reveals the private keys to
# anyone who knows one of them, and a ticket nonce is also the AEAD nonce of the ticket under the ticket key.

APP_ID = "bank-crm"
APP_SECRET = bytes(range(200, 232))
SERVER_KEYS = {KeyType.SM2: bytes.fromhex("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"),
               KeyType.ED25519: bytes(range(1, 33))}  # fmt: skip
CLIENT_SM2_KEY = bytes.fromhex("81eb26e941bb5af16df116495f90695272ae2cd63d6c4ae1678418be48230029")
SHARES_C = {Suite.NATIONAL: bytes.fromhex("d4de15474db74d06491c440d305e012400990f3e390c7e87153c12db2ea60bb3"),
            Suite.INTERNATIONAL: bytes(range(40, 72))}  # fmt: skip
SHARES_S = {Suite.NATIONAL: bytes.fromhex("7e07124814b309489125eaed101113164ebf0f3458c5bd88335c1f9d596243d6"),
            Suite.INTERNATIONAL: bytes(range(80, 112))}  # fmt: skip
CLIENT_RANDOM = bytes(range(32))
SERVER_RANDOM = bytes(range(32, 64))
TICKET_SECRET = bytes(range(150, 182))
TICKET_LIFETIME_S = 600
KEEPALIVE_MS = 30000
SERVER_SUITES = (Suite.NATIONAL, Suite.INTERNATIONAL)
NOW = 1_764_000_000.0
RESUMED_AFTER_S = 30.0
"""A resumption's clock: this long after the receipt of its ticket."""

# SM2 signing nonces, each used once. The first is GB/T 32918.2's example k; the others are
# SHA-256("kefu vectors: <role> signature k, <scenario>") mod (n - 1) + 1.
SM2_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
SERVER_K_CLIENT_KEY = 0x7A996B15979D4FD58AE6725844BCC7838005CA728099E340C0AED66C049B55C7
CLIENT_K_CLIENT_KEY = 0xAAEB42D68932037411F84346E400FD8FB67E76723B5E2ACE43400603670C695C
AGENT = "agent-7"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One handshake and its exchange: the client SENDs the first message of a new conversation with AGENT; the
    server acknowledges it and DELIVERs AGENT's reply (never the client's own message: section 4.10 item 5)."""

    name: str
    suite: Suite
    index: int
    """Makes the scenario's ticket nonce and id, client_msg_ids and conversation its own."""
    server_k: int | None = None
    client_k: int | None = None
    client_key: bool = False
    ticket_from: str | None = None
    psk_mode: PskMode = PskMode.PSK_ONLY

    @property
    def ticket_nonce(self) -> bytes:
        return bytes(range(12 * self.index, 12 * self.index + 12))

    @property
    def ticket_id(self) -> bytes:
        return bytes(range(16 * self.index, 16 * self.index + 16))

    @property
    def conversation_id(self) -> int:
        return 42 + self.index

    def exchange(self, now_ms: int) -> tuple[list[frames.Frame], list[frames.Frame]]:
        """(what the client's application sends after the handshake, what the server's sends in answer)."""
        mine, theirs = bytes([0x10 + self.index]) * 16, bytes([0xA0 + self.index]) * 16
        conv = self.conversation_id
        send = frames.Send(mine, conv, frames.ContentType.TEXT, b"hello agent",
                           (frames.MetaEntry("kefu.to", AGENT.encode()),), request_id=1)  # fmt: skip
        ack = frames.SendAck(mine, 0, 1001, conv, 1, now_ms, request_id=1)
        reply = frames.Deliver(conv, 2, 1002, now_ms, theirs, frames.ContentType.TEXT, AGENT, b"how can I help?")
        return [send], [ack, reply]


SCENARIOS = [
    Scenario("national-full-app-secret", Suite.NATIONAL, 0, server_k=SM2_K),
    Scenario("international-full-app-secret", Suite.INTERNATIONAL, 1),
    Scenario("national-full-client-key", Suite.NATIONAL, 2, server_k=SERVER_K_CLIENT_KEY,
             client_k=CLIENT_K_CLIENT_KEY, client_key=True),
    Scenario("national-resumption-psk-only", Suite.NATIONAL, 3, ticket_from="national-full-app-secret"),
    Scenario("international-resumption-psk-with-ecdhe", Suite.INTERNATIONAL, 4,
             ticket_from="international-full-app-secret", psk_mode=PskMode.PSK_WITH_ECDHE),
]  # fmt: skip


def _keys() -> dict[KeyType, SigningKey]:
    return {t: SigningKey(t, raw) for t, raw in SERVER_KEYS.items()}


def server_config(scenario: Scenario) -> ServerConfig:
    """The vector server: fixed keys, randoms, ticket secret; knows APP_ID by secret and client key."""
    client_pin = SigningKey(KeyType.SM2, CLIENT_SM2_KEY).verify_key.fingerprint()
    apps = {APP_ID: AppCredential.from_secret(APP_ID, APP_SECRET, frozenset({client_pin}))}
    fixed = FixedRandoms(SERVER_RANDOM, SHARES_S, sm2_k=scenario.server_k, ticket_nonce=scenario.ticket_nonce,
                         ticket_id=scenario.ticket_id, age_add=_age_add(scenario))  # fmt: skip
    return ServerConfig(keys=_keys(), apps=apps, suites=SERVER_SUITES, ticket_keys=TicketKeys(TICKET_SECRET),
                        ticket_guard=TicketGuard(), ticket_lifetime_s=TICKET_LIFETIME_S, fixed=fixed)  # fmt: skip


def _age_add(scenario: Scenario) -> int:
    return 0x01020304 + scenario.index


def client_config(scenario: Scenario, ticket: SessionTicket | None) -> ClientConfig:
    """The vector client: fixed randoms, pinning the vector server's keys, authenticating as APP_ID."""
    pins = frozenset(k.verify_key.fingerprint() for k in _keys().values())
    fixed = FixedRandoms(CLIENT_RANDOM, SHARES_C, sm2_k=scenario.client_k)
    return ClientConfig(
        APP_ID, pins, (scenario.suite,), keepalive_ms=KEEPALIVE_MS, fixed=fixed, ticket=ticket,
        psk_mode=scenario.psk_mode,
        app_secret=None if scenario.client_key else APP_SECRET,
        client_key=SigningKey(KeyType.SM2, CLIENT_SM2_KEY) if scenario.client_key else None,
    )  # fmt: skip


def _traced(base: type[Any]) -> type[Any]:
    """`base` that remembers, for each RECORD it receives, the secret and sequence number it opens it under and the
    plaintext (the vectors list them; the core itself keeps neither)."""

    class Traced(base):  # type: ignore[misc, valid-type]
        __slots__ = ("opened",)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.opened: list[tuple[bytes, int, bytes]] = []

        def _dispatch_outer(self, raw: frames.RawFrame) -> None:
            recv = self._recv
            if raw.frame_type == frames.FrameType.RECORD and recv is not None:
                opener = Direction(recv.spec, recv.secret)
                opener.seq = recv.seq
                self.opened.append((recv.secret, recv.seq, opener.open(raw.header, raw.body)))
            super()._dispatch_outer(raw)

    return Traced


TracedClient, TracedServer = _traced(ClientConnection), _traced(ServerConnection)


def frame_json(frame: frames.Frame) -> dict[str, Any]:
    """A frame as frames.json writes it (without name and section)."""
    return {"type": int(frame.TYPE), "type_name": frame.TYPE.name, "request_id": frame.request_id,
            "flags": frame.flags, "fields": as_json(frame), "hex": frames.encode(frame).hex()}  # fmt: skip


def event_json(event: Any) -> dict[str, Any]:
    """An event of the core: a frame by its type name, HandshakeComplete and TicketReceived by theirs."""
    if isinstance(event, frames.Frame):
        return {"event": event.TYPE.name, "request_id": event.request_id, "flags": event.flags,
                "fields": as_json(event)}  # fmt: skip
    if isinstance(event, TicketReceived):  # received_at is the adapter's clock, not the core's: left out
        t = event.ticket
        fields = {"suite": int(t.suite), "ticket": t.ticket.hex(), "psk": t.psk.hex(), "lifetime_s": t.lifetime_s,
                  "age_add": t.age_add}  # fmt: skip
        return {"event": "TicketReceived", "fields": fields}
    fields = {f.name: as_json(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return {"event": type(event).__name__, "fields": fields}


def run_scenario(scenario: Scenario, ticket: SessionTicket | None, *, now: float) -> dict[str, Any]:
    """Run the handshake and the exchange; record every flight, what each side opened and its events."""
    client = TracedClient(client_config(scenario, ticket), now=now)
    server = TracedServer(server_config(scenario), now=now)
    client.connect(now=now)
    names = {id(client): "client", id(server): "server"}
    events: dict[str, list[Any]] = {"client": [], "server": []}
    keys: dict[bytes, str] = {}
    steps: list[dict[str, Any]] = []
    sent, answered = scenario.exchange(int(now * 1000))

    def move(src: Any, dst: Any, sends: list[frames.Frame]) -> None:
        for frame in sends:
            src.send(frame)
        data = src.data_to_send()
        before = len(dst.opened)
        dst.receive_data(data)
        prefix = "s" if names[id(src)] == "server" else "c"
        records = []
        for secret, seq, plaintext in dst.opened[before:]:
            taken = [k for k in keys.values() if k.startswith(prefix)]
            key = keys.setdefault(secret, f"{prefix}_{'hs' if not taken else 'ap'}")
            records.append({"key": key, "seq": seq, "plaintext": plaintext.hex()})
        steps.append({"from": names[id(src)], "sends": [frame_json(f) for f in sends], "hex": data.hex(),
                      "records": records})  # fmt: skip
        for side in (src, dst):
            events[names[id(side)]] += side.events_received()

    move(client, server, [])
    move(server, client, [])
    move(client, server, sent)
    move(server, client, answered)
    received = [e.ticket for e in events["client"] if isinstance(e, TicketReceived)]
    return {
        "steps": steps,
        "traffic_secrets": {name: secret.hex() for secret, name in sorted(keys.items(), key=lambda kv: kv[1])},
        "final": {
            "client_send_secret": client._send.secret.hex(),
            "server_send_secret": server._send.secret.hex(),
            "resumption_secret": client._resumption.hex(),
            "client_events": [event_json(e) for e in events["client"]],
            "server_events": [event_json(e) for e in events["server"]],
        },
        "ticket": dataclasses.replace(received[0], received_at=now) if received else None,
    }


def handshake_vectors(scenarios: list[Scenario] = SCENARIOS) -> dict[str, Any]:
    """Complete transcripts: full handshakes for both suites and both auth modes, then resumptions (a resumption
    follows the scenario its ticket comes from)."""
    out = []
    tickets: dict[str, SessionTicket] = {}
    for scenario in scenarios:
        ticket = tickets[scenario.ticket_from] if scenario.ticket_from else None
        now = ticket.received_at + RESUMED_AFTER_S if ticket else NOW
        run = run_scenario(scenario, ticket, now=now)
        if run["ticket"] is not None:
            tickets[scenario.name] = run["ticket"]
        out.append(_describe(scenario, ticket, run, now))
    return {"description": "Handshake transcripts with every input fixed (section 5, 11).", "inputs": _inputs(),
            "scenarios": out}  # fmt: skip


def _inputs() -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "app_secret": APP_SECRET.hex(),
        "server_private_keys": {t.name.lower(): raw.hex() for t, raw in SERVER_KEYS.items()},
        "client_sm2_private_key": CLIENT_SM2_KEY.hex(),
        "client_random": CLIENT_RANDOM.hex(),
        "server_random": SERVER_RANDOM.hex(),
        "client_ephemeral": {SUITES[s].name: v.hex() for s, v in SHARES_C.items()},
        "server_ephemeral": {SUITES[s].name: v.hex() for s, v in SHARES_S.items()},
        "server_suites": [int(s) for s in SERVER_SUITES],
        "ticket_secret": TICKET_SECRET.hex(),
        "ticket_lifetime_s": TICKET_LIFETIME_S,
        "keepalive_ms": KEEPALIVE_MS,
    }


def _describe(scenario: Scenario, ticket: SessionTicket | None, run: dict[str, Any], now: float) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if scenario.client_key:
        options |= {"app_secret": None, "client_key": "client_sm2_private_key"}
    inputs: dict[str, Any] = {}
    if scenario.server_k is not None:
        inputs["server_signature_k"] = f"{scenario.server_k:064x}"
    if scenario.client_k is not None:
        inputs["client_signature_k"] = f"{scenario.client_k:064x}"
    inputs |= {"ticket_nonce": scenario.ticket_nonce.hex(), "ticket_id": scenario.ticket_id.hex(),
               "ticket_age_add": _age_add(scenario)}  # fmt: skip
    if ticket is not None:
        options |= {"psk_mode": int(scenario.psk_mode), "ticket_from": scenario.ticket_from}
        inputs["ticket"] = {"suite": int(ticket.suite), "ticket": ticket.ticket.hex(), "psk": ticket.psk.hex(),
                            "lifetime_s": ticket.lifetime_s, "age_add": ticket.age_add,
                            "received_at_ms": int(ticket.received_at * 1000)}  # fmt: skip
    return {
        "name": scenario.name,
        "suite": int(scenario.suite),
        "options": options,
        "now_ms": int(now * 1000),
        "inputs": inputs,
        "steps": run["steps"],
        "traffic_secrets": run["traffic_secrets"],
        "final": run["final"],
    }


# --- signed HTTP API requests (section 17.2) ------------------------------------------------------------

HTTP_APP_SECRET = bytes(range(32))
HTTP_BODY = '{"conversation_id":"4611686018427387905","client_msg_id":"m-1","text":"你好"}'.encode()
HTTP_REQUESTS = [
    ("POST", "/v1/messages", [], HTTP_BODY),
    ("GET", "/v1/conversations/4611686018427387905/messages", [("limit", "50"), ("after", "0")], b""),
    ("GET", "/v1/search", [("q", "信用卡 额度"), ("limit", "5"), ("a", "x&y=z~")], b""),
]


def http_signature_vectors() -> list[dict[str, Any]]:
    """A signed request per scheme and request: the canonical request (17.2) and the Authorization header."""
    out = []
    for scheme in httpsig.SCHEMES:
        for i, (method, path, query, body) in enumerate(HTTP_REQUESTS):
            nonce = f"nonce-{scheme.rsplit('-', 1)[1].lower()}-{i:04d}-abcdef"
            params = httpsig.SigningParams(scheme, "bank-core", 1_796_000_000 + i, nonce)
            canonical = httpsig.canonical_request(params, method, path, httpsig.canonical_query(query), body)
            signature = httpsig.sign(params, HTTP_APP_SECRET, canonical)
            out.append({
                "scheme": scheme, "app_id": params.app_id, "app_secret": HTTP_APP_SECRET.hex(),
                "timestamp": params.timestamp, "nonce": params.nonce, "method": method, "path": path,
                "query": [list(q) for q in query], "body": body.hex(), "canonical": canonical.decode(),
                "signature": signature.hex(), "authorization": httpsig.authorization(params, signature),
            })  # fmt: skip
    return out


# --- files ----------------------------------------------------------------------------------------------


def render() -> dict[str, str]:
    """File name -> JSON text."""
    data = {"frames.json": frame_vectors(), "records.json": record_vectors(), "handshakes.json": handshake_vectors(),
            "http-signatures.json": http_signature_vectors()}  # fmt: skip
    return {name: json.dumps(value, indent=1, ensure_ascii=False) + "\n" for name, value in data.items()}


def main() -> int:
    """Write the vectors, or with --check report whether the files are current."""
    rendered = render()
    if "--check" in sys.argv[1:]:
        stale = [name for name, text in rendered.items() if (OUT / name).read_text(encoding="utf-8") != text]
        for name in stale:
            print(f"stale: spec/vectors/{name}")
        return 1 if stale else 0
    for name, text in rendered.items():
        (OUT / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
