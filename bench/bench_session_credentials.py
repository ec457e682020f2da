"""What session credentials (spec section 16) cost the server, on real LMDB with SM4-GCM sealing and the real
handshake core (issue #17).

- `handshake`: a full APP_SECRET handshake (client and server in one process, `tests/protocol/pairs.py`'s way), the
  app's verifiers from an `AppDirectory` over the store: with the app's own secret (the session table read and the 8
  padded slots checked on the way), and with one of 8 live session credentials. Median of --n handshakes per run.
- `slots`: the APP_SECRET check's added work alone: 8 `check_app_proof` (SM3) and one read of the app's session rows
  (`read_session_keys`, 0 and 8 rows).
- `scrypt`: one `staff.authenticate` (N=2**15, r=8, p=1), the CPU a sign-in holds a core for.

    .venv/bin/python bench/bench_session_credentials.py --n 300 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import KeyType, SigningKey, Suite
from kefu.protocol.events import HandshakeComplete
from kefu.protocol.handshake import MAX_SESSION_KEYS, ClientConfig, ServerConfig, app_proof, check_app_proof, stored_key
from kefu.protocol.serverconn import ServerConnection
from kefu.protocol.tickets import TicketGuard, TicketKeys
from kefu.server.identity import credentials, keys, staff
from kefu.server.storage.sealing import DataKey, Sealer
from kefu.server.storage.store import Store

KEY = DataKey(1, "sm4-gcm", bytes(range(16)))
SERVER_KEYS = {KeyType.SM2: SigningKey.generate(KeyType.SM2), KeyType.ED25519: SigningKey.generate(KeyType.ED25519)}
PINS = frozenset(k.verify_key.fingerprint() for k in SERVER_KEYS.values())


def handshake(server: ServerConfig, app_id: str, secret: bytes, now: float) -> None:
    client = ClientConnection(ClientConfig(app_id, PINS, (Suite.NATIONAL,), app_secret=secret), now=now)
    conn = ServerConnection(server, now=now)
    client.connect(now=now)
    for _ in range(3):
        conn.receive_data(client.data_to_send())
        client.receive_data(conn.data_to_send())
    assert any(isinstance(e, HandshakeComplete) for e in conn.events_received())


def median_us(work: Callable[[], None], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        work()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="handshakes per run")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "db", sealer=Sealer([KEY]), tables=staff.TABLES)
        _, own = keys.create_app(store, "agent-1", role="agent", tenant="bank")
        keys.create_app(store, "plain", role="app")
        _, plain_secret = keys.create_app(store, "plain2", role="app")
        now = time.time()
        issued = [credentials.issue(store, "agent-1", ttl_s=3600, now=now) for _ in range(MAX_SESSION_KEYS)]
        staff.add_staff(store, "agent-1", "correct horse battery", now_ms=1)
        server = ServerConfig(keys=SERVER_KEYS, apps=keys.AppDirectory(store), ticket_keys=TicketKeys(b"\x22" * 32),
                              ticket_guard=TicketGuard(), issue_tickets=False)  # fmt: skip
        covered = b"\x01" * 32
        stored = stored_key("sm3", "a", b"s" * 32)
        proof = app_proof("sm3", "a", b"s" * 32, covered)
        cases: dict[str, Callable[[], None]] = {
            "handshake_app_without_sessions_us": lambda: handshake(server, "plain2", plain_secret, now),
            "handshake_own_secret_8_sessions_us": lambda: handshake(server, "agent-1", own, now),
            "handshake_session_credential_us": lambda: handshake(server, "agent-1", issued[-1].secret, now),
            "slots_8_check_app_proof_sm3_us": lambda: (
                [check_app_proof("sm3", stored, proof, covered) for _ in range(8)] and None
            ),
            "slots_read_session_keys_0_rows_us": lambda: credentials.read_session_keys(store, "plain") and None,
            "slots_read_session_keys_8_rows_us": lambda: credentials.read_session_keys(store, "agent-1") and None,
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        scrypt: list[float] = []
        for _ in range(args.runs):  # interleaved: the machine's load drifts alike over every case
            for name, work in cases.items():
                results[name].append(median_us(work, args.n if name.startswith("handshake") else args.n * 10))
            t0 = time.perf_counter()
            staff.authenticate(store, "agent-1", "correct horse battery")
            scrypt.append((time.perf_counter() - t0) * 1e3)
        store.close()
    summary = {name: round(statistics.median(values), 1) for name, values in results.items()}
    summary["scrypt_authenticate_ms"] = round(statistics.median(scrypt), 1)
    summary["runs"], summary["n"] = args.runs, args.n
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
