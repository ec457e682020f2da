"""Which stored messages are webhook events, their JSON, and the signature (pure functions)."""

from __future__ import annotations

import json

import pytest

from kefu.protocol.frames import SERVICE_BASE, STAFF_BIT, SYSTEM_SENDER, ContentType
from kefu.server.engine.messages import StoredMessage
from kefu.server.webhooks.events import EventType, classify, event_of, headers

from .receiver import Delivery, reference_hmac

CONV = SERVICE_BASE + 7


def stored(conversation_id: int, body: bytes, *, sender: str = SYSTEM_SENDER, content_type: int = ContentType.EVENT,
           metadata: tuple[tuple[str, bytes], ...] = ()) -> StoredMessage:  # fmt: skip
    return StoredMessage(conversation_id, 3, 42, 1_765_000_000_000, sender, bytes(16), content_type, body, metadata)


@pytest.mark.parametrize(
    ("conversation_id", "body", "sender", "content_type"),
    [
        (5, b"hello", "v", ContentType.TEXT),  # not the service range: no tenant
        (CONV | STAFF_BIT, b"a draft", SYSTEM_SENDER, ContentType.TEXT),  # a draft: staff only
        (CONV | STAFF_BIT, b"a whisper", "sup", ContentType.TEXT),
        (CONV, b'{"event": "opened"}', "v", ContentType.EVENT),  # an EVENT not from #kefu is nobody's event
        (CONV, b"not json", SYSTEM_SENDER, ContentType.EVENT),
        (CONV, b'["opened"]', SYSTEM_SENDER, ContentType.EVENT),
        (CONV, b'{"event": 1}', SYSTEM_SENDER, ContentType.EVENT),
        (CONV, b'{"event": "queued", "group": "g"}', SYSTEM_SENDER, ContentType.EVENT),
        (CONV, b'{"event": "draft_approve", "draft_seq": 1}', SYSTEM_SENDER, ContentType.EVENT),  # only in staff
        (CONV | STAFF_BIT, b'{"event": "assigned", "agent": "a"}', SYSTEM_SENDER, ContentType.EVENT),  # told in c
        (CONV | STAFF_BIT, b'{"event": "transferred", "agent": "a"}', SYSTEM_SENDER, ContentType.EVENT),
        (CONV | STAFF_BIT, b'{"event": "tagged", "tags": ["x"]}', SYSTEM_SENDER, ContentType.EVENT),
    ],
)
def test_what_is_not_an_event(conversation_id: int, body: bytes, sender: str, content_type: int) -> None:
    assert classify(stored(conversation_id, body, sender=sender, content_type=content_type)) is None


def test_the_events_and_their_data() -> None:
    cases = {
        b'{"event":"opened","group":"g","channel":"web"}': (EventType.CONVERSATION_OPENED, ["group", "channel"]),
        b'{"event":"assigned","agent":"a","group":"g"}': (EventType.CONVERSATION_ASSIGNED, ["agent", "group"]),
        b'{"event":"transferred","agent":"b","group":"g"}': (EventType.CONVERSATION_TRANSFERRED, ["agent", "group"]),
        b'{"event":"closed","by":"a"}': (EventType.CONVERSATION_ENDED, ["by"]),
    }
    for body, (event_type, fields) in cases.items():
        expected = {k: v for k, v in json.loads(body).items() if k in fields}
        assert classify(stored(CONV, body)) == (event_type, expected)
    staff = CONV | STAFF_BIT
    assert classify(stored(staff, b'{"event":"draft_edit","draft_seq":9}')) == (
        EventType.DRAFT_DECIDED, {"decision": "edit", "draft_seq": 9},
    )  # fmt: skip
    assert classify(stored(staff, b'{"event":"transferred","group":"cards"}')) == (
        EventType.CONVERSATION_TRANSFERRED, {"group": "cards"},
    )  # fmt: skip
    binary = stored(CONV, b"\x00\xff", sender="v", content_type=ContentType.BINARY, metadata=(("k", "值".encode()),))
    assert classify(binary) == (
        EventType.MESSAGE_COMMITTED, {"sender": "v", "content_type": 3, "body_base64": "AP8=", "metadata": {"k": "值"}},
    )  # fmt: skip


def test_the_body_and_a_signature_checked_apart_from_the_signing_code() -> None:
    event = event_of(stored(CONV | STAFF_BIT, b'{"event":"draft_reject","draft_seq":2}'), "bank")
    assert event is not None and event.id == 42
    assert json.loads(event.body) == {
        "id": "42", "type": "draft.decided", "tenant": "bank", "conversation_id": CONV, "staff_channel": True,
        "seq": 3, "timestamp_ms": 1_765_000_000_000, "data": {"decision": "reject", "draft_seq": 2},
    }  # fmt: skip
    secret = b"whsec_test"
    sent = headers(event, subscription="wh_1", secret=secret, algorithms=("hmac-sha256", "hmac-sm3"), timestamp=1700)
    assert sent["Kefu-Webhook-Signature"] == (
        f"hmac-sha256={reference_hmac('hmac-sha256', secret, b'1700.' + event.body)}, "
        f"hmac-sm3={reference_hmac('hmac-sm3', secret, b'1700.' + event.body)}"
    )
    assert Delivery(sent, event.body, 200, 0.0).verify(secret) == ["hmac-sha256", "hmac-sm3"]
    with pytest.raises(AssertionError, match="bad hmac-sha256 signature"):
        Delivery(sent, event.body + b" ", 200, 0.0).verify(secret)
