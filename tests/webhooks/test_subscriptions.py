"""Subscription checks and the backoff schedule (no event loop)."""

from __future__ import annotations

import pytest

from kefu.server.webhooks import subscriptions
from kefu.server.webhooks.dispatcher import Settings, backoff


def test_backoff_doubles_to_its_cap_with_jitter_between_half_and_all_of_each_step() -> None:
    s = Settings(backoff_initial_s=1.0, backoff_max_s=30.0)
    assert [backoff(n, s, lambda: 0.0) for n in (1, 2, 3, 4, 5, 6, 7)] == [0.5, 1, 2, 4, 8, 15, 15]
    assert [backoff(n, s, lambda: 1.0) for n in (1, 2, 3, 6, 100)] == [1, 2, 4, 30, 30]


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "http://", "https://user:pw@example.com/", "http://a b/",
     "javascript:alert(1)", "http://example.com:99999/", "http://" + "a" * 3000 + ".com/"],
)  # fmt: skip
def test_only_http_urls_with_a_host_are_taken(url: str) -> None:
    with pytest.raises(subscriptions.SubscriptionError):
        subscriptions.check_url(url)


def test_event_types_are_checked() -> None:
    assert subscriptions.check_events(["draft.decided", "conversation.opened"]) == (
        "conversation.opened", "draft.decided",
    )  # fmt: skip
    assert len(subscriptions.check_events(["all"])) == 6
    with pytest.raises(subscriptions.SubscriptionError, match=r"unknown event types: message\.sent"):
        subscriptions.check_events(["message.sent"])
    with pytest.raises(subscriptions.SubscriptionError):
        subscriptions.check_events([])
    with pytest.raises(subscriptions.SubscriptionError):
        subscriptions.check_algorithms(["hmac-md5"])


def test_a_cursor_keeps_each_conversations_seq_and_time() -> None:
    cursor = subscriptions.Cursor(1000, {(1 << 62) + 1: (7, 1005), (1 << 63) + (1 << 62) + 1: (2, 1000)})
    assert subscriptions.Cursor.decode(cursor.encode()) == cursor


def test_allowed_hosts_limit_where_subscriptions_deliver() -> None:
    allowed = ("crm.bank.example", "10.1.2.3")
    assert subscriptions.check_url("https://CRM.bank.example/hook", allowed)
    assert subscriptions.check_url("http://10.1.2.3:8080/x", allowed)
    for url in ("http://127.0.0.1:7421/metrics", "https://crm.bank.example.evil.example/", "http://[::1]/"):
        with pytest.raises(subscriptions.SubscriptionError, match="allowed_hosts"):
            subscriptions.check_url(url, allowed)
    assert subscriptions.check_url("http://127.0.0.1:7421/x"), "empty: any host"
