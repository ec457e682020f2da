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
from kefu.protocol.events import HandshakeComplete
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


def _shares(shares: dict[str, str]) -> dict[Suite, bytes]:
    return {SUITE_BY_NAME[name]: bytes.fromhex(v) for name, v in shares.items()}


def _k(inputs: dict[str, Any], name: str) -> int | None:
    return int(inputs[name], 16) if name in inputs else None


def _server(scenario: dict[str, Any]) -> ServerConfig:
    own = scenario["inputs"]
    keys = {
        KeyType[t.upper()]: SigningKey(KeyType[t.upper()], bytes.fromhex(v))
        for t, v in INPUTS["server_private_keys"].items()
    }
    client_pin = SigningKey(KeyType.SM2, bytes.fromhex(INPUTS["client_sm2_private_key"])).verify_key.fingerprint()
    app = AppCredential.from_secret(INPUTS["app_id"], bytes.fromhex(INPUTS["app_secret"]), frozenset({client_pin}))
    fixed = FixedRandoms(
        bytes.fromhex(INPUTS["server_random"]),
        _shares(INPUTS["server_ephemeral"]),
        sm2_k=_k(own, "server_signature_k"),
        ticket_nonce=bytes.fromhex(own["ticket_nonce"]),
        ticket_id=bytes.fromhex(own["ticket_id"]),
        age_add=own["ticket_age_add"],
    )
    return ServerConfig(
        keys=keys,
        apps={app.app_id: app},
        suites=tuple(Suite(s) for s in INPUTS["server_suites"]),
        ticket_keys=TicketKeys(bytes.fromhex(INPUTS["ticket_secret"])),
        ticket_guard=TicketGuard(),
        ticket_lifetime_s=INPUTS["ticket_lifetime_s"],
        fixed=fixed,
    )


def _ticket(given: dict[str, Any]) -> SessionTicket:
    return SessionTicket(
        Suite(given["suite"]),
        bytes.fromhex(given["ticket"]),
        bytes.fromhex(given["psk"]),
        given["lifetime_s"],
        given["age_add"],
        received_at=given["received_at_ms"] / 1000,
    )


def _client(scenario: dict[str, Any]) -> ClientConfig:
    own, options = scenario["inputs"], scenario["options"]
    keys = [SigningKey(KeyType[t.upper()], bytes.fromhex(v)) for t, v in INPUTS["server_private_keys"].items()]
    by_key = "client_key" in options
    config = ClientConfig(
        INPUTS["app_id"],
        frozenset(k.verify_key.fingerprint() for k in keys),
        (Suite(scenario["suite"]),),
        app_secret=None if by_key else bytes.fromhex(INPUTS["app_secret"]),
        client_key=SigningKey(KeyType.SM2, bytes.fromhex(INPUTS[options["client_key"]])) if by_key else None,
        keepalive_ms=INPUTS["keepalive_ms"],
        fixed=FixedRandoms(
            bytes.fromhex(INPUTS["client_random"]),
            _shares(INPUTS["client_ephemeral"]),
            sm2_k=_k(own, "client_signature_k"),
        ),
    )
    if "ticket" in own:
        config = replace(config, ticket=_ticket(own["ticket"]), psk_mode=PskMode(options["psk_mode"]))
    return config


def _frame(vector: dict[str, Any]) -> frames.Frame:
    (raw,) = FrameDecoder().feed(bytes.fromhex(vector["hex"]))
    frame = frames.decode_frame(raw)
    assert frame is not None and generator().as_json(frame) == vector["fields"]
    return frame


@pytest.mark.parametrize("scenario", HANDSHAKES["scenarios"], ids=lambda s: s["name"])
def test_handshake_transcript_replays_byte_for_byte(scenario: dict[str, Any]) -> None:
    """Both roles built from the file's inputs alone play every flight; what each opens, derives and reports is
    what the file says."""
    now = scenario["now_ms"] / 1000
    client = ClientConnection(_client(scenario), now=now)
    server = ServerConnection(_server(scenario), now=now)
    client.connect(now=now)
    sides = {"client": (client, server), "server": (server, client)}
    events: dict[str, list[Any]] = {"client": [], "server": []}
    secrets = {name: bytes.fromhex(v) for name, v in scenario["traffic_secrets"].items()}
    openers: dict[str, Direction] = {}
    for index, step in enumerate(scenario["steps"]):
        src, dst = sides[step["from"]]
        for sent in step["sends"]:
            src.send(_frame(sent))
        wire = src.data_to_send()
        assert wire.hex() == step["hex"], f"{scenario['name']} step {index}"
        records = [raw for raw in FrameDecoder().feed(wire) if raw.frame_type == frames.FrameType.RECORD]
        assert len(records) == len(step["records"])
        for raw, record in zip(records, step["records"], strict=True):
            opener = openers.setdefault(
                record["key"], Direction(SUITES[Suite(scenario["suite"])], secrets[record["key"]])
            )
            assert opener.seq == record["seq"]
            assert opener.open(raw.header, raw.body).hex() == record["plaintext"]
        dst.receive_data(wire)
        for name, (side, _) in sides.items():
            events[name] += side.events_received()
    final = scenario["final"]
    gen = generator()
    assert [gen.event_json(e) for e in events["client"]] == final["client_events"]
    assert [gen.event_json(e) for e in events["server"]] == final["server_events"]
    assert any(isinstance(e, HandshakeComplete) for e in events["server"]), scenario["name"]
    assert client._send is not None and server._send is not None
    assert client._send.secret.hex() == final["client_send_secret"] == scenario["traffic_secrets"]["c_ap"]
    assert server._send.secret.hex() == final["server_send_secret"] == scenario["traffic_secrets"]["s_ap"]
    assert client._resumption.hex() == final["resumption_secret"]


def test_a_resumption_presents_the_ticket_its_source_scenario_issued() -> None:
    """The ticket given as a resumption's input is the one the earlier scenario's client received, stamped with
    that scenario's clock; its PSK is the one derived from that scenario's resumption secret."""
    by_name = {s["name"]: s for s in HANDSHAKES["scenarios"]}
    resumptions = [s for s in HANDSHAKES["scenarios"] if "ticket" in s["inputs"]]
    assert len(resumptions) == 2
    for scenario in resumptions:
        source = by_name[scenario["options"]["ticket_from"]]
        given = scenario["inputs"]["ticket"]
        (issued,) = [e["fields"] for e in source["final"]["client_events"] if e["event"] == "TicketReceived"]
        assert {k: given[k] for k in issued} == issued
        assert given["received_at_ms"] == source["now_ms"] < scenario["now_ms"]
