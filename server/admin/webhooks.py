"""Webhook subscriptions for the operator: `kefu webhook add/list/remove` (audited like `kefu app ...`).

The commands write the store's ``webhooks`` table beside a running server (as `kefu app add` writes ``apps``); the
server reads the table again within `kefu.server.webhooks.dispatcher.RELOAD_S`, so no restart and no poke is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..engine.audit import Action
from ..webhooks import subscriptions
from ..webhooks.subscriptions import Subscription, SubscriptionError
from .apps import store_of
from .audit import audited
from .errors import AdminError

__all__ = ["add_webhook", "list_webhooks", "remove_webhook"]


def add_webhook(
    config: Any, url: str, events: Sequence[str], *, tenant: str = "", algorithms: Sequence[str] = (), now_ms: int
) -> Subscription:
    """Subscribe `url` to `events` of `tenant`; the subscription holds its signing secret (shown once)."""
    details: dict[str, Any] = {"url": url, "events": list(events), "tenant": tenant}
    with store_of(config) as store, audited(store, Action.WEBHOOK_ADD, url, details) as more:
        try:
            sub = subscriptions.new_subscription(
                url, events, tenant, now_ms=now_ms, algorithms=algorithms, allowed_hosts=config.webhooks.allowed_hosts
            )
            subscriptions.add(store, sub)
        except SubscriptionError as exc:
            raise AdminError(str(exc)) from None
        more["id"] = sub.id
        return sub


def list_webhooks(config: Any) -> list[Subscription]:
    """Every subscription, by id."""
    with store_of(config) as store:
        return subscriptions.list_all(store)


def remove_webhook(config: Any, subscription_id: str) -> None:
    """Delete a subscription and its cursor (AdminError if there is none)."""
    with store_of(config) as store, audited(store, Action.WEBHOOK_REMOVE, subscription_id):
        if not subscriptions.remove(store, subscription_id):
            raise AdminError(f"no webhook subscription {subscription_id!r}")
