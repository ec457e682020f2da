"""spec/vectors/: every vector parsed, compared, re-serialised and replayed byte for byte.

The handshake replays build both roles from the JSON inputs alone (not from the generator's Python), so
the files are proven complete enough for a client in another language.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kefu.protocol import frames
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import SUITES, KeyType, SigningKey, Suite
from kefu.protocol.errors import RemoteProtocolError
from kefu.protocol.events import HandshakeComplete, TicketReceived
from kefu.protocol.frames import FrameDecoder, PskMode
from kefu.protocol.handshake import AppCredential, ClientConfig, FixedRandoms, ServerConfig
from kefu.protocol.keyschedule import expand_label
from kefu.protocol.records import Direction
from kefu.protocol.serverconn import ServerConnection
from kefu.protocol.tickets import SessionTicket, TicketGuard, TicketKeys

SPEC = Path(__file__).resolve().parents[2] / "spec"


def load(name: str) -> dict[str, Any]:
    return json.loads((SPEC / "vectors" / name).read_text(encoding="utf-8"))


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_vectors", SPEC / "gen_vectors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_vectors"] = module
    spec.loader.exec_module(module)
    return module


def test_files_match_what_the_code_produces() -> None:
    rendered = generator().render()
    for name, text in rendered.items():
        assert (SPEC / "vectors" / name).read_text(encoding="utf-8") == text, f"run python spec/gen_vectors.py ({name})"


FRAMES = load("frames.json")


def test_every_frame_type_has_a_vector() -> None:
    assert {v["type"] for v in FRAMES["frames"]} == set(frames.FRAME_CLASSES)


@pytest.mark.parametrize("vector", FRAMES["frames"], ids=lambda v: v["name"])
def test_frame_vector(vector: dict[str, Any]) -> None:
    wire = bytes.fromhex(vector["hex"])
    (raw,) = FrameDecoder().feed(wire)
    frame = frames.decode_frame(raw)
    assert frame is not None
    assert (frame.TYPE, frame.request_id, frame.flags) == (vector["type"], vector["request_id"], vector["flags"])
    assert generator().as_json(frame) == vector["fields"]
    assert frames.encode(frame) == wire


@pytest.mark.parametrize("vector", FRAMES["parse_only"], ids=lambda v: v["name"])
def test_parse_only_vector(vector: dict[str, Any]) -> None:
    wire = bytes.fromhex(vector["hex"])
    if vector["expect"] == "error":
        with pytest.raises(RemoteProtocolError) as info:
            for raw in FrameDecoder().feed(wire):
                frames.decode_frame(raw)
        assert info.value.code == vector["error"]
        return
    (raw,) = FrameDecoder().feed(wire)
    frame = frames.decode_frame(raw)
    if vector["expect"] == "skipped":
        assert frame is None
    else:
        assert frame is not None and frames.encode(frame).hex() == vector["parses_as"]


@pytest.mark.parametrize("vector", load("records.json")["suites"], ids=lambda v: v["suite_name"])
def test_record_vector(vector: dict[str, Any]) -> None:
    spec = SUITES[Suite(vector["suite"])]
    secret = bytes.fromhex(vector["secret"])
    assert expand_label(spec.hash_name, secret, b"key", b"", spec.key_len).hex() == vector["key"]
    assert expand_label(spec.hash_name, secret, b"iv", b"", 12).hex() == vector["iv"]
    sender, receiver = Direction(spec, secret), Direction(spec, secret)
    for record in vector["records"]:
        wire = bytes.fromhex(record["hex"])
        (raw,) = FrameDecoder().feed(wire)
        assert receiver.seq == record["seq"]
        assert receiver.open(raw.header, raw.body).hex() == record["plaintext"]
        assert sender.seal(bytes.fromhex(record["plaintext"])) == wire
    sender.update()
    after = vector["after_key_update"]
    assert sender.secret.hex() == after["secret"]
    assert sender.seal(bytes.fromhex(after["plaintext"])).hex() == after["hex"]


HANDSHAKES = load("handshakes.json")
INPUTS = HANDSHAKES["inputs"]
SUITE_BY_NAME = {spec.name: suite for suite, spec in SUITES.items()}


def _fixed(random: str, shares: dict[str, str], **extra: Any) -> FixedRandoms:
    return FixedRandoms(
        bytes.fromhex(random),
        {SUITE_BY_NAME[name]: bytes.fromhex(v) for name, v in shares.items()},
        sm2_k=int(INPUTS["sm2_signature_k"], 16),
        **extra,
    )


def _server() -> ServerConfig:
    keys = {
        KeyType[t.upper()]: SigningKey(KeyType[t.upper()], bytes.fromhex(v))
        for t, v in INPUTS["server_private_keys"].items()
    }
    client_pin = SigningKey(KeyType.SM2, bytes.fromhex(INPUTS["client_sm2_private_key"])).verify_key.fingerprint()
    app = AppCredential.from_secret(INPUTS["app_id"], bytes.fromhex(INPUTS["app_secret"]), frozenset({client_pin}))
    fixed = _fixed(
        INPUTS["server_random"],
        INPUTS["server_ephemeral"],
        ticket_nonce=bytes.fromhex(INPUTS["ticket_nonce"]),
        ticket_id=bytes.fromhex(INPUTS["ticket_id"]),
        age_add=INPUTS["ticket_age_add"],
    )
    return ServerConfig(
        keys=keys,
        apps={app.app_id: app},
        ticket_keys=TicketKeys(bytes.fromhex(INPUTS["ticket_secret"])),
        ticket_guard=TicketGuard(),
        fixed=fixed,
    )


def _client(scenario: dict[str, Any], tickets: dict[str, SessionTicket]) -> ClientConfig:
    keys = [SigningKey(KeyType[t.upper()], bytes.fromhex(v)) for t, v in INPUTS["server_private_keys"].items()]
    options = scenario["options"]
    config = ClientConfig(
        INPUTS["app_id"],
        frozenset(k.verify_key.fingerprint() for k in keys),
        (Suite(scenario["suite"]),),
        app_secret=None if "client_key" in options else bytes.fromhex(INPUTS["app_secret"]),
        client_key=SigningKey(KeyType.SM2, bytes.fromhex(INPUTS["client_sm2_private_key"]))
        if "client_key" in options
        else None,
        keepalive_ms=INPUTS["keepalive_ms"],
        fixed=_fixed(INPUTS["client_random"], INPUTS["client_ephemeral"]),
    )
    if "ticket_from" in options:
        config = replace(config, ticket=tickets[options["ticket_from"]], psk_mode=PskMode(options["psk_mode"]))
    return config


def test_handshake_transcripts_replay_byte_for_byte() -> None:
    tickets: dict[str, SessionTicket] = {}
    assert {s["name"] for s in HANDSHAKES["scenarios"]} >= {
        "national-full-app-secret",
        "international-full-app-secret",
        "national-resumption-psk-only",
        "international-resumption-psk-with-ecdhe",
    }
    for scenario in HANDSHAKES["scenarios"]:
        now = scenario["now_ms"] / 1000
        client = ClientConnection(_client(scenario, tickets), now=now)
        server = ServerConnection(_server(), now=now)
        client.connect(now=now)
        sides = {"client": (client, server), "server": (server, client)}
        events: list[Any] = []
        for index, step in enumerate(scenario["steps"]):
            src, dst = sides[step["from"]]
            if index == 2:
                client.send(frames.Send(bytes(range(16)), 42, 1, b"hello agent", request_id=1))
            if index == 3:
                server.send(frames.SendAck(bytes(range(16)), 0, 1001, 42, 1, scenario["now_ms"], request_id=1))
                server.send(
                    frames.Deliver(42, 1, 1001, scenario["now_ms"], bytes(range(16)), 1, "visitor:8812", b"hello agent")
                )
            assert src.data_to_send().hex() == step["hex"], f"{scenario['name']} step {index}"
            dst.receive_data(bytes.fromhex(step["hex"]))
            events += dst.events_received()
        assert any(isinstance(e, HandshakeComplete) for e in events), scenario["name"]
        assert client._send is not None and server._send is not None
        assert client._send.secret.hex() == scenario["final"]["client_send_secret"]
        assert server._send.secret.hex() == scenario["final"]["server_send_secret"]
        for event in events:
            if isinstance(event, TicketReceived) and scenario["name"] not in tickets:
                tickets[scenario["name"]] = replace(event.ticket, received_at=now)
