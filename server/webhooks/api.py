"""Webhook subscriptions over the HTTP API: ``/v1/webhooks`` (spec section 18.5), mounted by the API's application
builder with `add_routes(app, ctx)`.

Who may: an admin app (``[api] admin_apps``), for any tenant; an integration app, for its own tenant only. Every
change is recorded in the audit trail with the caller as actor, and reaches the dispatcher at once (or within
`dispatcher.RELOAD_S`).

- ``GET /v1/webhooks`` -> 200 ``{"subscriptions": [...]}`` (an integration sees its tenant's; no secrets);
- ``POST /v1/webhooks`` ``{"url", "events": [...], "tenant"?, "algorithms"?}`` -> 201 ``{"subscription": {...},
  "secret": "whsec_..."}``: the signing secret (the HMAC key is this text), shown only in this answer;
- ``DELETE /v1/webhooks/{id}`` -> 204; 404 NOT_FOUND if there is none (or it is another tenant's).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from ..api.context import ApiContext, ApiError, Caller, caller_of
from ..api.routes import json_body
from ..engine.audit import Action, Result
from ..engine.identity import Role
from . import subscriptions
from .subscriptions import Subscription, SubscriptionError

__all__ = ["EXTRAS_KEY", "add_routes"]

EXTRAS_KEY: Final = "kefu.server.webhooks"
"""Where the process's `dispatcher.Dispatcher` is found in `ApiContext.extras` (if webhooks are on)."""


def add_routes(app: web.Application, ctx: ApiContext) -> None:
    """Mount ``/v1/webhooks`` on the API's application."""
    routes = _Routes(ctx)
    app.router.add_get("/v1/webhooks", routes.list)
    app.router.add_post("/v1/webhooks", routes.add)
    app.router.add_delete("/v1/webhooks/{id}", routes.remove)


def _manager(request: web.Request) -> Caller:
    """The caller, if it may manage subscriptions (admin, or an integration for its tenant); else 403."""
    caller = caller_of(request)
    if not caller.admin and caller.role is not Role.INTEGRATION:
        raise ApiError(403, "FORBIDDEN", "only admin and integration apps manage webhooks")
    return caller


class _Routes:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def _visible(self, caller: Caller, sub: Subscription) -> bool:
        return caller.admin or sub.tenant == caller.tenant

    async def list(self, request: web.Request) -> web.Response:
        caller = _manager(request)
        found = await _off_loop(subscriptions.list_all, self.ctx.store)
        return web.json_response({"subscriptions": [s.public() for s in found if self._visible(caller, s)]})

    async def add(self, request: web.Request) -> web.Response:
        caller = _manager(request)
        body = await json_body(request)
        tenant = body.get("tenant", caller.tenant)
        url, events, algorithms = body.get("url"), body.get("events", []), body.get("algorithms", [])
        if not isinstance(url, str) or not _strings(events) or not _strings(algorithms) or not isinstance(tenant, str):
            raise ApiError(400, "BAD_REQUEST", "url (a string), events (a list of strings) are required")
        if tenant != caller.tenant and not caller.admin:
            raise ApiError(403, "FORBIDDEN", "an integration subscribes to its own tenant's events only")
        details = {"url": url, "events": events, "tenant": tenant}
        try:
            sub = subscriptions.new_subscription(
                url, events, tenant, now_ms=int(self.ctx.clock() * 1000), algorithms=algorithms,
                allowed_hosts=self.ctx.config.webhooks.allowed_hosts,
            )  # fmt: skip
            await _off_loop(subscriptions.add, self.ctx.store, sub)
        except SubscriptionError as exc:
            failed = {**details, "reason": str(exc)}
            self.ctx.audit.record(caller.app_id, Action.WEBHOOK_ADD, url, Result.FAILED, failed)
            raise ApiError(400, "BAD_REQUEST", str(exc)) from None
        self.ctx.audit.record(caller.app_id, Action.WEBHOOK_ADD, url, Result.OK, {**details, "id": sub.id})
        self._reload()
        return web.json_response({"subscription": sub.public(), "secret": sub.secret.decode()}, status=201)

    async def remove(self, request: web.Request) -> web.Response:
        caller = _manager(request)
        subscription_id = request.match_info["id"]
        found = {s.id: s for s in await _off_loop(subscriptions.list_all, self.ctx.store)}
        sub = found.get(subscription_id)
        if sub is None or not self._visible(caller, sub):
            raise ApiError(404, "NOT_FOUND", f"no webhook subscription {subscription_id!r}")
        await _off_loop(subscriptions.remove, self.ctx.store, subscription_id)
        self.ctx.audit.record(caller.app_id, Action.WEBHOOK_REMOVE, subscription_id, Result.OK, {"url": sub.url})
        self._reload()
        return web.Response(status=204)

    def _reload(self) -> None:
        dispatcher = self.ctx.extras.get(EXTRAS_KEY)
        if dispatcher is not None:
            dispatcher.reload_soon()


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


async def _off_loop(function: Any, *args: Any) -> Any:
    """A store call (a durable write takes an fsync) in a worker thread."""
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)
