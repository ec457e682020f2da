"""Generate the language-neutral test vectors in spec/vectors/ (spec/PROTOCOL.md section 11).

    python spec/gen_vectors.py           # write frames.json, records.json, handshakes.json
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

from kefu.protocol import frames
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
SAMPLE_FRAMES: list[tuple[str, str, frames.Frame]] = [
    ("client-hello", "5.2", frames.ClientHello(
        bytes(range(32)), (0x00C6, 0x1301), (frames.KeyShareEntry(0x1301, bytes(range(32))),), 30000, 0, b"", 0, b"",
        request_id=0)),
    ("server-hello", "5.3", frames.ServerHello(bytes(range(32, 64)), 0x1301, bytes(range(32)), 0, 30000)),
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

APP_ID = "bank-crm"
APP_SECRET = bytes(range(200, 232))
SERVER_KEYS = {KeyType.SM2: bytes.fromhex("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8"),
               KeyType.ED25519: bytes(range(1, 33))}  # fmt: skip
CLIENT_SM2_KEY = bytes.fromhex("81eb26e941bb5af16df116495f90695272ae2cd63d6c4ae1678418be48230029")
SHARES_C = {Suite.NATIONAL: bytes.fromhex("d4de15474db74d06491c440d305e012400990f3e390c7e87153c12db2ea60bb3"),
            Suite.INTERNATIONAL: bytes(range(40, 72))}  # fmt: skip
SHARES_S = {Suite.NATIONAL: bytes.fromhex("7e07124814b309489125eaed101113164ebf0f3458c5bd88335c1f9d596243d6"),
            Suite.INTERNATIONAL: bytes(range(80, 112))}  # fmt: skip
SM2_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
TICKET_SECRET = bytes(range(150, 182))
NOW = 1_764_000_000.0
CLIENT_FIXED = FixedRandoms(bytes(range(32)), SHARES_C, sm2_k=SM2_K)
SERVER_FIXED = FixedRandoms(bytes(range(32, 64)), SHARES_S, sm2_k=SM2_K, ticket_nonce=bytes(range(12)),
                            ticket_id=bytes(range(16)), age_add=0x01020304)  # fmt: skip


def _keys() -> dict[KeyType, SigningKey]:
    return {t: SigningKey(t, raw) for t, raw in SERVER_KEYS.items()}


def server_config() -> ServerConfig:
    """The vector server: fixed keys, randoms, ticket secret; knows APP_ID by secret and client key."""
    client_pin = SigningKey(KeyType.SM2, CLIENT_SM2_KEY).verify_key.fingerprint()
    apps = {APP_ID: AppCredential.from_secret(APP_ID, APP_SECRET, frozenset({client_pin}))}
    return ServerConfig(keys=_keys(), apps=apps, ticket_keys=TicketKeys(TICKET_SECRET), ticket_guard=TicketGuard(),
                        fixed=SERVER_FIXED)  # fmt: skip


def client_config(suite: Suite, **changes: Any) -> ClientConfig:
    """The vector client: fixed randoms, pinning the vector server's keys."""
    pins = frozenset(k.verify_key.fingerprint() for k in _keys().values())
    return dataclasses.replace(
        ClientConfig(APP_ID, pins, (suite,), app_secret=APP_SECRET, fixed=CLIENT_FIXED), **changes
    )


def run_handshake(client_cfg: ClientConfig, server_cfg: ServerConfig, *, now: float) -> dict[str, Any]:
    """Run a handshake and an exchange of one SEND and one DELIVER; record every flight."""
    client = ClientConnection(client_cfg, now=now)
    server = ServerConnection(server_cfg, now=now)
    steps: list[dict[str, str]] = []
    client.connect(now=now)
    ticket = None

    def move(src: Any, dst: Any, name: str) -> None:
        data = src.data_to_send()
        if data:
            steps.append({"from": name, "hex": data.hex()})
            dst.receive_data(data)

    move(client, server, "client")
    move(server, client, "server")
    client.send(frames.Send(M16, 42, frames.ContentType.TEXT, b"hello agent", request_id=1))
    move(client, server, "client")
    server.send(frames.SendAck(M16, 0, 1001, 42, 1, int(now * 1000), request_id=1))
    server.send(frames.Deliver(42, 1, 1001, int(now * 1000), M16, 1, "visitor:8812", b"hello agent"))
    move(server, client, "server")
    for event in client.events_received():
        if isinstance(event, TicketReceived):
            ticket = dataclasses.replace(event.ticket, received_at=now)
    return {"steps": steps, "ticket": ticket, "client": client, "server": server}


SCENARIOS = [
    ("national-full-app-secret", Suite.NATIONAL, {}),
    ("international-full-app-secret", Suite.INTERNATIONAL, {}),
    ("national-full-client-key", Suite.NATIONAL, {"app_secret": None, "client_key": "sm2"}),
]


def _scenario_config(suite: Suite, changes: dict[str, Any]) -> ClientConfig:
    if changes.get("client_key") == "sm2":
        changes = {**changes, "client_key": SigningKey(KeyType.SM2, CLIENT_SM2_KEY)}
    return client_config(suite, **changes)


def handshake_vectors() -> dict[str, Any]:
    """Complete transcripts: full handshakes for both suites and both auth modes, then resumptions."""
    out = []
    tickets: dict[Suite, SessionTicket] = {}
    for name, suite, changes in SCENARIOS:
        run = run_handshake(_scenario_config(suite, changes), server_config(), now=NOW)
        if run["ticket"] is not None and suite not in tickets:
            tickets[suite] = run["ticket"]
        out.append(_describe(name, suite, changes, run, NOW))
    for suite, mode in ((Suite.NATIONAL, PskMode.PSK_ONLY), (Suite.INTERNATIONAL, PskMode.PSK_WITH_ECDHE)):
        later = NOW + 30
        config = client_config(suite, ticket=tickets[suite], psk_mode=mode)
        run = run_handshake(config, server_config(), now=later)
        name = f"{SUITES[suite].name}-resumption-{mode.name.lower().replace('_', '-')}"
        options = {"psk_mode": int(mode), "ticket_from": f"{SUITES[suite].name}-full-app-secret"}
        out.append(_describe(name, suite, options, run, later))
    return {"description": "Handshake transcripts with every input fixed (section 5).", "inputs": _inputs(),
            "scenarios": out}  # fmt: skip


def _inputs() -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "app_secret": APP_SECRET.hex(),
        "server_private_keys": {t.name.lower(): raw.hex() for t, raw in SERVER_KEYS.items()},
        "client_sm2_private_key": CLIENT_SM2_KEY.hex(),
        "client_random": CLIENT_FIXED.random.hex(),
        "server_random": SERVER_FIXED.random.hex(),
        "client_ephemeral": {SUITES[s].name: v.hex() for s, v in SHARES_C.items()},
        "server_ephemeral": {SUITES[s].name: v.hex() for s, v in SHARES_S.items()},
        "sm2_signature_k": f"{SM2_K:064x}",
        "ticket_secret": TICKET_SECRET.hex(),
        "ticket_nonce": SERVER_FIXED.ticket_nonce.hex(),
        "ticket_id": SERVER_FIXED.ticket_id.hex(),
        "ticket_age_add": SERVER_FIXED.age_add,
        "keepalive_ms": 30000,
    }


def _describe(name: str, suite: Suite, changes: dict[str, Any], run: dict[str, Any], now: float) -> dict[str, Any]:
    client, server = run["client"], run["server"]
    return {
        "name": name,
        "suite": int(suite),
        "options": {k: v for k, v in changes.items() if k != "client_key"} | (
            {"client_key": "client_sm2_private_key"} if "client_key" in changes else {}),
        "now_ms": int(now * 1000),
        "steps": run["steps"],
        "final": {
            "client_send_secret": client._send.secret.hex(),
            "server_send_secret": server._send.secret.hex(),
        },
    }  # fmt: skip


# --- files ----------------------------------------------------------------------------------------------


def render() -> dict[str, str]:
    """File name -> JSON text."""
    data = {"frames.json": frame_vectors(), "records.json": record_vectors(), "handshakes.json": handshake_vectors()}
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
