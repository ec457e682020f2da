"""spec/check_spec.py's vector checks pass on spec/vectors/ and object to vectors broken on purpose.

The broken handshakes are made by the generator itself (spec/gen_vectors.py) with one thing changed, so their
records still open: what the checker objects to is the broken rule, not a broken file.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kefu.protocol import frames

SPEC = Path(__file__).resolve().parents[2] / "spec"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SPEC / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


checker, gen = _load("check_spec"), _load("gen_vectors")
VECTORS = checker.load_vectors()


def test_the_vectors_obey_every_rule_the_checker_knows() -> None:
    assert checker.check_vectors(VECTORS) == []


def _objections(frames_doc: dict[str, Any] | None = None, handshakes: dict[str, Any] | None = None) -> list[str]:
    return checker.check_vectors(
        {
            "frames.json": frames_doc or VECTORS["frames.json"],
            "handshakes.json": handshakes or VECTORS["handshakes.json"],
        }
    )


def _assert_objects(problems: list[str], *words: str) -> None:
    assert any(all(w in p for w in words) for p in problems), problems


# --- CLIENT_HELLO key shares (section 5.2) --------------------------------------------------------------


def _frames_with_hello(hello: frames.ClientHello) -> dict[str, Any]:
    doc = copy.deepcopy(VECTORS["frames.json"])
    (vector,) = [v for v in doc["frames"] if v["name"] == "client-hello"]
    vector["hex"] = frames.encode(hello).hex()
    return doc


def test_a_hello_offering_two_suites_with_one_share_is_refused() -> None:
    hello = frames.ClientHello(bytes(32), (0x00C6, 0x1301), gen.HELLO_SHARES[1:], 30000, 0, b"", 0, b"")
    _assert_objects(_objections(_frames_with_hello(hello)), "client-hello", "[0x00C6, 0x1301]", "[0x1301]")


def test_a_share_of_the_wrong_length_or_for_a_suite_not_offered_is_refused() -> None:
    short = frames.KeyShareEntry(0x00C6, gen.HELLO_SHARES[0].key[:33])
    hello = frames.ClientHello(bytes(32), (0x00C6,), (short,), 30000, 0, b"", 0, b"")
    _assert_objects(_objections(_frames_with_hello(hello)), "33 bytes, not 65")
    extra = frames.ClientHello(bytes(32), (0x1301,), gen.HELLO_SHARES, 30000, 0, b"", 0, b"")
    _assert_objects(_objections(_frames_with_hello(extra)), "with key shares for [0x00C6, 0x1301]")


def test_a_psk_only_hello_may_omit_its_shares() -> None:
    hello = frames.ClientHello(bytes(32), (0x00C6,), (), 30000, 1, b"ticket", 7, bytes(32))
    assert checker.check_hello_shares(hello, "here") == []


# --- delivery rules (section 4.10) ----------------------------------------------------------------------

FULL = gen.SCENARIOS[0]


def _handshakes(*scenarios: Any) -> dict[str, Any]:
    doc: dict[str, Any] = gen.handshake_vectors(list(scenarios))
    return doc


@dataclasses.dataclass(frozen=True)
class OwnMessageBack(gen.Scenario):  # type: ignore[misc, name-defined]
    """The old vector's mistake: the server DELIVERs the client's own message back, under another sender."""

    def exchange(self, now_ms: int) -> tuple[list[frames.Frame], list[frames.Frame]]:
        sent, (ack, _) = super().exchange(now_ms)
        send = sent[0]
        back = frames.Deliver(send.conversation_id, 1, 1001, now_ms, send.client_msg_id, 1, "visitor:8812", send.body)
        return sent, [ack, back]


def test_a_deliver_of_the_connections_own_message_is_refused() -> None:
    problems = _objections(handshakes=_handshakes(OwnMessageBack(**_fields(FULL))))
    _assert_objects(problems, "seq 1", "own message back", "item 5")
    _assert_objects(problems, "names sender 'visitor:8812', not 'bank-crm'")


@dataclasses.dataclass(frozen=True)
class OwnMessageFetched(gen.Scenario):  # type: ignore[misc, name-defined]
    """Allowed: a SYNC fetch answers with the connection's own message too (REDELIVERY, the SYNC's request_id)."""

    def exchange(self, now_ms: int) -> tuple[list[frames.Frame], list[frames.Frame]]:
        sent, (ack, reply) = super().exchange(now_ms)
        send = sent[0]
        sync = frames.Sync(send.conversation_id, 0, 2, 0, request_id=2)
        fetched = [
            frames.Deliver(send.conversation_id, 1, 1001, now_ms, send.client_msg_id, 1, gen.APP_ID, send.body,
                           send.metadata, request_id=2, flags=frames.Flag.REDELIVERY),
            dataclasses.replace(reply, request_id=2, flags=frames.Flag.REDELIVERY),
        ]  # fmt: skip
        return [send, sync], [ack, reply, *fetched, frames.SyncDone(send.conversation_id, 2, 0, request_id=2)]


@dataclasses.dataclass(frozen=True)
class OtherDevice(gen.Scenario):  # type: ignore[misc, name-defined]
    """Allowed: a message the same user sent from another connection (section 4.10 item 1)."""

    def exchange(self, now_ms: int) -> tuple[list[frames.Frame], list[frames.Frame]]:
        sent, (ack, reply) = super().exchange(now_ms)
        other = dataclasses.replace(reply, seq=3, client_msg_id=b"\x77" * 16, sender=gen.APP_ID)
        return sent, [ack, reply, other]


@pytest.mark.parametrize("variant", [OwnMessageFetched, OtherDevice])
def test_what_section_4_10_allows_is_not_refused(variant: type) -> None:
    assert _objections(handshakes=_handshakes(variant(**_fields(FULL)))) == []


@dataclasses.dataclass(frozen=True)
class NoMembers(gen.Scenario):  # type: ignore[misc, name-defined]
    """A SEND without kefu.to acknowledged as the first message of a conversation."""

    def exchange(self, now_ms: int) -> tuple[list[frames.Frame], list[frames.Frame]]:
        sent, answered = super().exchange(now_ms)
        return [dataclasses.replace(sent[0], metadata=())], answered


def test_a_new_conversation_without_kefu_to_is_refused() -> None:
    _assert_objects(_objections(handshakes=_handshakes(NoMembers(**_fields(FULL)))), "without kefu.to", "item 2")


# --- inputs and nonces ----------------------------------------------------------------------------------


def _fields(scenario: Any) -> dict[str, Any]:
    return {f.name: getattr(scenario, f.name) for f in dataclasses.fields(scenario)}


def _edited(edit: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VECTORS["handshakes.json"])
    edit({s["name"]: s for s in doc["scenarios"]})
    return doc


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda s: s["national-full-app-secret"]["inputs"].pop("server_signature_k"), ["server_signature_k"]),
        (lambda s: s["national-full-client-key"]["inputs"].pop("client_signature_k"), ["client_signature_k"]),
        (lambda s: s["national-resumption-psk-only"]["inputs"].pop("ticket"), ["uses a ticket"]),
        (lambda s: s["national-resumption-psk-only"]["inputs"]["ticket"].pop("received_at_ms"), ["received_at_ms"]),
        (lambda s: s["international-resumption-psk-with-ecdhe"].update(now_ms=1), ["obfuscated_age"]),
        (lambda s: s["international-full-app-secret"]["inputs"].update(ticket_nonce="00" * 12), ["NEW_TICKET nonce"]),
        (lambda s: s["national-full-app-secret"].pop("now_ms"), ["now_ms"]),
    ],
)
def test_an_input_used_but_not_listed_or_listed_wrong_is_refused(edit: Any, words: list[str]) -> None:
    _assert_objects(_objections(handshakes=_edited(edit)), *words)


def test_a_record_whose_listed_plaintext_or_sends_differ_is_refused() -> None:
    def tamper(s: dict[str, Any]) -> None:
        record = s["international-full-app-secret"]["steps"][3]["records"][0]
        record["plaintext"] = record["plaintext"][:-2] + "ff"  # the DELIVER's metadata count, 00

    _assert_objects(_objections(handshakes=_edited(tamper)), "step 3", "opens to other bytes")
    unlisted = _edited(lambda s: s["national-full-app-secret"]["steps"][2]["sends"].clear())
    _assert_objects(_objections(handshakes=unlisted), "step 2", "not the step's `sends`")


def test_a_client_signing_with_the_servers_nonce_is_refused() -> None:
    client_key = gen.SCENARIOS[2]
    reused = dataclasses.replace(client_key, client_k=client_key.server_k)
    _assert_objects(_objections(handshakes=_handshakes(reused)), "under two keys", "server SM2 key", "client key")


def test_one_ticket_nonce_in_two_scenarios_is_refused() -> None:
    twin = dataclasses.replace(FULL, name="twin", server_k=gen.SERVER_K_CLIENT_KEY)  # same index: same ticket nonce
    _assert_objects(_objections(handshakes=_handshakes(FULL, twin)), "twin", "twice under one key", "ticket key")
