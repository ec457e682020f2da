"""The admin routes: apps (list, add, revoke), the server's signing keys (list, add, retire: rotation), live
sessions (list, end). Only an admin app may call them: one listed in ``[api] admin_apps`` whose request is signed
(not a staff session bearer): the operator grants it in the configuration file, as with every other right over the
server.

They do what `kefu app ...`, `kefu keygen`, `kefu key list/retire` and `kefu session ...` do, on the store the
process has open (LMDB forbids opening it twice in one process), in a worker thread (a write waits for its fsync),
and are recorded in the audit trail with the admin app as the actor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from kefu.protocol.crypto import KeyType

from ..admin.apps import revoke_in
from ..admin.errors import AdminError
from ..admin.keys import generate, list_keys, retire
from ..admin.operator import Poke
from ..admin.sessions import end_in, list_sessions
from ..engine.audit import Action, Result
from ..engine.identity import ROLES, Role
from ..identity.keys import AppError, AppRecord, create_app, encode_secret, list_app_records
from .context import ApiError, require_admin
from .routes import CONTEXT_KEY, json_body, reply

__all__ = ["add_routes"]

T = TypeVar("T")
KEY_TYPES = {"sm2": KeyType.SM2, "ed25519": KeyType.ED25519}


async def _in_thread(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, work)


def _app_json(record: AppRecord) -> dict[str, Any]:
    return {
        "app_id": record.app_id,
        "role": record.role,
        "tenant": record.tenant,
        "created_ms": record.created_ms,
        "client_key_pins": list(record.pins),
    }


def _poke_json(result: Poke) -> dict[str, Any]:
    return {"sessions_ended": result.ended, "processes": result.reached, "unreachable": result.unreachable}


async def list_apps(request: web.Request) -> web.Response:
    """GET /v1/admin/apps."""
    require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    records = await _in_thread(lambda: list_app_records(ctx.store))
    return reply({"apps": [_app_json(r) for r in records]})


async def add_app(request: web.Request) -> web.Response:
    """POST /v1/admin/apps: register an app; its secret is in this answer only (the server keeps verifiers)."""
    caller = require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    data = await json_body(request)
    app_id, role, tenant = data.get("app_id"), data.get("role", Role.APP.value), data.get("tenant", "")
    pins = data.get("client_key_pins", [])
    if not isinstance(app_id, str) or not isinstance(role, str) or not isinstance(tenant, str):
        raise ApiError(400, "BAD_REQUEST", "app_id, role and tenant are strings")
    if role not in ROLES or not isinstance(pins, list) or not all(isinstance(p, str) for p in pins):
        raise ApiError(400, "BAD_REQUEST", f"role: one of {', '.join(ROLES)}; client_key_pins: a list of pins")
    details = {"role": role, "tenant": tenant, "client_key_pins": pins, "via": "api"}
    try:
        record, secret = await _in_thread(
            lambda: create_app(ctx.store, app_id, client_key_pins=pins, role=role, tenant=tenant)
        )
    except AppError as exc:
        ctx.audit.record(caller.app_id, Action.APP_ADD, app_id, Result.FAILED, {**details, "reason": str(exc)})
        status, code = (409, "CONFLICT") if "already exists" in str(exc) else (400, "BAD_REQUEST")
        raise ApiError(status, code, str(exc)) from None
    ctx.audit.record(caller.app_id, Action.APP_ADD, app_id, Result.OK, details)
    ctx.apps.forget(app_id)
    return reply({**_app_json(record), "secret": encode_secret(secret)}, 201)


async def revoke(request: web.Request) -> web.Response:
    """DELETE /v1/admin/apps/{app_id}: delete the app's credentials and end its live sessions."""
    caller = require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    app_id = request.match_info["app_id"]

    try:
        result = await _in_thread(lambda: revoke_in(ctx.store, ctx.config, app_id))
    except ValueError as exc:  # an id the store cannot hold
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None
    ctx.apps.forget(app_id)
    ctx.audit.record(caller.app_id, Action.APP_REVOKE, app_id, Result.OK if result else Result.FAILED, {"via": "api"})
    if result is None:
        raise ApiError(404, "NOT_FOUND", f"no app {app_id!r}")
    return reply({"app_id": app_id, "revoked": True, **_poke_json(result)})


async def list_server_keys(request: web.Request) -> web.Response:
    """GET /v1/admin/keys: the server's signing keys, and which sign."""
    require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    keys = await _in_thread(lambda: list_keys(ctx.config))
    rows = [{"pin": f.pin, "type": f.key_type.name.lower(), "index": f.index, "signing": signs} for f, signs in keys]
    return reply({"keys": rows})


async def add_server_keys(request: web.Request) -> web.Response:
    """POST /v1/admin/keys: a new signing key per type asked (rotation: it signs from the server's next start, so
    give clients its pin first)."""
    caller = require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    data = await json_body(request)
    names = data.get("types", ["sm2", "ed25519"])
    if not isinstance(names, list) or not names or any(n not in KEY_TYPES for n in names):
        raise ApiError(400, "BAD_REQUEST", f"types: a list of {', '.join(KEY_TYPES)}")
    try:
        added = await _in_thread(lambda: generate(ctx.config, [KEY_TYPES[n] for n in dict.fromkeys(names)]))
    except (AdminError, OSError) as exc:
        raise ApiError(500, "INTERNAL_ERROR", str(exc)) from None
    for key in added:
        ctx.audit.record(caller.app_id, Action.SERVER_KEY_ADD, key.pin, Result.OK, {"via": "api"})
    rows = [{"pin": f.pin, "type": f.key_type.name.lower(), "index": f.index, "signing": False} for f in added]
    return reply({"added": rows, "signs_after_restart": True}, 201)


async def retire_server_key(request: web.Request) -> web.Response:
    """DELETE /v1/admin/keys/{pin}: delete an old signing key once clients pin its successor (kefu key retire);
    refused (409) for a key that signs, and while the running server started before its successor existed."""
    caller = require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    pin = request.match_info["pin"]
    known = {f.pin for f, _ in await _in_thread(lambda: list_keys(ctx.config))}
    if pin not in known:
        raise ApiError(404, "NOT_FOUND", f"no server key with pin {pin!r}")
    try:
        removed = await _in_thread(lambda: retire(ctx.config, pin))
    except AdminError as exc:
        failed = {"reason": str(exc), "via": "api"}
        ctx.audit.record(caller.app_id, Action.SERVER_KEY_RETIRE, pin, Result.FAILED, failed)
        raise ApiError(409, "CONFLICT", str(exc)) from None
    ctx.audit.record(caller.app_id, Action.SERVER_KEY_RETIRE, pin, Result.OK, {"via": "api"})
    return reply({"retired": {"pin": removed.pin, "type": removed.key_type.name.lower(), "index": removed.index}})


async def sessions(request: web.Request) -> web.Response:
    """GET /v1/admin/sessions[?app=]: the live sessions of every process of the server."""
    require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    app = request.query.get("app", "")
    try:
        listing = await _in_thread(lambda: list_sessions(ctx.config, app))
    except AdminError as exc:
        raise ApiError(503, "UNAVAILABLE", str(exc)) from None
    return reply({"sessions": listing.sessions, "truncated": listing.truncated, "unreachable": listing.unreachable})


async def end_app_sessions(request: web.Request) -> web.Response:
    """DELETE /v1/admin/sessions/{app_id}: end every live session of the app (it stays registered)."""
    caller = require_admin(request)
    ctx = request.app[CONTEXT_KEY]
    app_id = request.match_info["app_id"]

    try:
        result = await _in_thread(lambda: end_in(ctx.store, ctx.config, app_id))
    except AppError as exc:
        ctx.audit.record(caller.app_id, Action.SESSION_END, app_id, Result.FAILED, {"reason": str(exc), "via": "api"})
        raise ApiError(404, "NOT_FOUND", str(exc)) from None
    except ValueError as exc:  # an id the store cannot hold
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None
    ctx.audit.record(caller.app_id, Action.SESSION_END, app_id, Result.OK, {"via": "api"})
    return reply({"app_id": app_id, **_poke_json(result)})


def add_routes(app: web.Application) -> None:
    """The admin routes (after `routes.add_routes`, which sets the context)."""
    app.router.add_get("/v1/admin/apps", list_apps)
    app.router.add_post("/v1/admin/apps", add_app)
    app.router.add_delete("/v1/admin/apps/{app_id}", revoke)
    app.router.add_get("/v1/admin/keys", list_server_keys)
    app.router.add_post("/v1/admin/keys", add_server_keys)
    app.router.add_delete("/v1/admin/keys/{pin}", retire_server_key)
    app.router.add_get("/v1/admin/sessions", sessions)
    app.router.add_delete("/v1/admin/sessions/{app_id}", end_app_sessions)
