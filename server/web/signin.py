"""Staff sign-in and visitor identities on the web port (spec section 16).

Routes (JSON in, JSON out, ``Cache-Control: no-store``)::

    POST /auth/signin   {"name", "password"}  -> 200 {"app_id", "secret", "expires_at", "role", "tenant"}
    POST /auth/signout  {"app_id", "secret"}  -> 200 {"signed_out": true}
    POST /auth/visitor  {"tenant", "name"?}   -> 200 {"app_id", "secret", "expires_at", "role": "visitor", "tenant"}

Every authentication failure answers 401 with the one body FAILED, whatever failed (unknown name, wrong password,
disabled account, an app that is not staff): an unknown name costs the same scrypt as a known one
(`kefu.server.identity.staff.authenticate`), so neither the answer nor its time says which names exist. A request
that is not a JSON object with the expected string fields gets 400, one that is not ``application/json`` 415 (so a
page of another site cannot post it without the CORS preflight the web port's Origin policy answers), a body over
MAX_BODY_BYTES 413. Each client address has a token bucket per route ([web] signin_per_minute, visitors_per_minute):
past it, 429 with Retry-After.

The secret issued is a session credential (`kefu.server.identity.credentials`): the protocol's APP_SECRET handshake
and the HTTP API's ``Kefu-Session`` bearer accept it until it expires ([web] session_ttl_s, visitor_ttl_s) or is
signed out. A visitor identity is a new app ``visitor-<24 hex>`` of role visitor in the tenant asked for (allowed by
[web] visitor_tenants, or by the service directory's groups when that is empty) with one session credential; once
that has expired, the app record is deleted by the next purge (`_purge`, at most every PURGE_INTERVAL_S per process).

The scrypt and the store's writes run in the default executor, at most MAX_HASHING at a time (each scrypt holds 32 MiB
and a core for about 0.1 s); with more than MAX_WAITING requests waiting for one, a sign-in gets 503 with Retry-After.
Origins are the web port's business: its middleware (`kefu.server.web.app`) refuses pages that [web] allowed_origins
does not list before any route runs, and adds the CORS headers for those it does.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from aiohttp import web

from .. import log as logmod
from ..engine.audit import Action, Result
from ..engine.identity import Role
from ..engine.ratelimit import TokenBucket
from ..identity import credentials, staff
from ..identity.keys import AppRecord, create_app, decode_secret, encode_secret
from ..service.directory import DirectoryError, load_directory
from ..storage import audit

__all__ = ["FAILED", "MAX_BODY_BYTES", "SigninContext", "add_routes"]

T = TypeVar("T")

FAILED: Final = {"error": "authentication failed"}
"""The one body of every 401."""
MAX_BODY_BYTES: Final = 4096
"""A name and a password (at most staff.MAX_PASSWORD_BYTES) with room for JSON escapes; anything larger is 413."""
MAX_HASHING: Final = 2
"""scrypts (and store writes) running at once in one process: each holds 32 MiB and a core for about 0.1 s."""
MAX_WAITING: Final = 64
"""Sign-ins waiting for a MAX_HASHING slot before more are refused with 503: about 3 s of work on 2 cores."""
MAX_ADDRESSES: Final = 10_000
"""Client addresses whose token buckets are kept per route; past it the least recently seen is forgotten."""
PURGE_INTERVAL_S: Final = 60.0
"""How often a process drops expired session credentials (and expired visitors' app records)."""
DIRECTORY_RECHECK_S: Final = 30.0
"""How long the service directory's tenants are trusted for visitor_tenants' default before the file is read again."""
MAX_DISPLAY_NAME: Final = 64
VISITOR_PREFIX: Final = "visitor-"
STAFF_ROLES: Final = frozenset({Role.AGENT, Role.SUPERVISOR})


class AddressBuckets:
    """A token bucket per client address: `per_minute` requests in a burst, refilled at per_minute / 60 a second."""

    def __init__(self, per_minute: int, *, max_addresses: int = MAX_ADDRESSES) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max = max_addresses
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()

    def take(self, address: str, now: float) -> float:
        """Spend one token of `address`: 0.0 if it had one, else the seconds until it will."""
        bucket = self._buckets.pop(address, None) or TokenBucket(self._rate, self._capacity, now)
        self._buckets[address] = bucket
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return 0.0 if bucket.take(1.0, now) else (1.0 - bucket.level(now)) / self._rate


@dataclass
class SigninContext:
    """What the sign-in routes of one process need: the store (opened by `kefu.server.wiring.open_store`, so with the
    identity layer's tables), the configuration ([web] and [service]) and a clock (unix seconds)."""

    store: Any
    config: Any
    clock: Callable[[], float] = time.time
    signins: AddressBuckets = field(init=False)
    visitors: AddressBuckets = field(init=False)
    _slots: asyncio.Semaphore = field(init=False)
    _waiting: int = field(init=False, default=0)
    _purged_at: float = field(init=False, default=-math.inf)
    """When this process last purged expired credentials (`purge_due`)."""
    _tenants: tuple[float, frozenset[str] | None] = field(init=False, default=(-math.inf, None))

    def __post_init__(self) -> None:
        self.signins = AddressBuckets(self.config.web.signin_per_minute)
        self.visitors = AddressBuckets(self.config.web.visitors_per_minute)
        self._slots = asyncio.Semaphore(MAX_HASHING)

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` in the default executor, at most MAX_HASHING at a time."""
        self._waiting += 1
        try:
            async with self._slots:
                return await asyncio.get_running_loop().run_in_executor(None, work)
        finally:
            self._waiting -= 1

    def purge_due(self, now: float) -> bool:
        """Whether PURGE_INTERVAL_S has passed since the last purge (which then counts as done now)."""
        if now - self._purged_at < PURGE_INTERVAL_S:
            return False
        self._purged_at = now
        return True

    @property
    def busy(self) -> bool:
        """Too many requests already wait for the executor: refuse more."""
        return self._waiting >= MAX_WAITING

    def visitor_tenant_allowed(self, tenant: str, now: float) -> bool:
        """[web] visitor_tenants, or (empty) the tenants the service directory has groups for (None: any)."""
        listed = self.config.web.visitor_tenants
        if listed:
            return tenant in listed
        at, tenants = self._tenants
        if now - at > DIRECTORY_RECHECK_S:
            tenants = _directory_tenants(self.config.directory_path)
            self._tenants = (now, tenants)
        return tenants is None or tenant in tenants


def _directory_tenants(path: Path | None) -> frozenset[str] | None:
    """The tenants with a configured group; None when the directory configures none (every tenant has 'general')."""
    try:
        directory = load_directory(path)
    except DirectoryError as exc:
        logmod.warning("signin.directory_unreadable", reason=str(exc))
        return frozenset()
    return frozenset(g.tenant for g in directory.groups.values()) if directory.groups else None


def add_routes(app: web.Application, ctx: SigninContext) -> None:
    """Mount POST /auth/signin, /auth/signout and /auth/visitor on the web port's application."""
    app.router.add_post("/auth/signin", _signin(ctx))
    app.router.add_post("/auth/signout", _signout(ctx))
    app.router.add_post("/auth/visitor", _visitor(ctx))


# --- replies and requests ----------------------------------------------------------------------------------------

NO_STORE: Final = {"Cache-Control": "no-store"}


def _reply(body: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    return web.json_response(body, status=status, headers={**NO_STORE, **headers})


def _failed() -> web.Response:
    return _reply(FAILED, 401)


def _slow_down(wait: float, status: int = 429) -> web.Response:
    return _reply({"error": "too many requests"}, status, **{"Retry-After": str(max(1, math.ceil(wait)))})


class BadRequest(Exception):
    """The request is not what the route reads; its answer."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.response = _reply({"error": error}, status)


async def _fields(request: web.Request, *names: str, optional: tuple[str, ...] = ()) -> dict[str, str]:
    """The JSON object of the body, with each of `names` a string (and each of `optional` absent or a string)."""
    if request.content_type != "application/json":
        raise BadRequest(415, "the body must be application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    data = bytearray()
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(data)):
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise BadRequest(413, f"the body must be at most {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    out = {}
    for name in (*names, *optional):
        value = body.get(name)
        if value is None and name in optional:
            continue
        if not isinstance(value, str):
            raise BadRequest(400, f"{name} must be a string")
        out[name] = value
    return out


def _address(request: web.Request) -> str:
    return request.remote or ""


# --- POST /auth/signin -------------------------------------------------------------------------------------------


def _signin(ctx: SigninContext) -> Callable[[web.Request], Any]:
    async def signin(request: web.Request) -> web.Response:
        now = ctx.clock()
        wait = ctx.signins.take(_address(request), now)
        if wait:
            return _slow_down(wait)
        try:
            body = await _fields(request, "name", "password")
        except BadRequest as exc:
            return exc.response
        if ctx.busy:
            return _slow_down(1.0, 503)
        issued = await ctx.run(lambda: _sign_in(ctx, body["name"], body["password"], _address(request), now))
        return _failed() if issued is None else _reply(issued)

    return signin


def _sign_in(ctx: SigninContext, name: str, password: str, address: str, now: float) -> dict[str, Any] | None:
    """(In the executor.) Check the password, then issue a session credential to a staff app; None if refused."""
    store = ctx.store
    ok = staff.authenticate(store, name, password)
    record = _staff_app(store, name) if ok else None
    if record is None:
        logmod.event("signin.refused", name=name[:100], address=address)
        _audit(store, address, Action.SIGNIN, name[:100], result=Result.FAILED)
        _purge(ctx, now)
        return None
    issued = credentials.issue(store, name, ttl_s=ctx.config.web.session_ttl_s, now=now)
    logmod.event("signin.ok", name=name, address=address, expires_at=int(issued.expires_at))
    _audit(store, address, Action.SIGNIN, name, details={"expires_at": int(issued.expires_at)})
    _purge(ctx, now)
    return {"app_id": name, "secret": encode_secret(issued.secret), "expires_at": int(issued.expires_at),
            "role": record.role, "tenant": record.tenant}  # fmt: skip


def _staff_app(store: Any, name: str) -> AppRecord | None:
    raw = store.get_app(name)
    record = AppRecord.decode(raw) if raw is not None else None
    return record if record is not None and record.profile.role in STAFF_ROLES else None


def _audit(
    store: Any,
    address: str,
    action: Action,
    target: str,
    *,
    result: str = Result.OK,
    details: dict[str, Any] | None = None,
) -> None:
    """Record in the audit trail (actor ``web:<address>``); a failure to record is logged, not the request's."""
    try:
        audit.record(store, actor=f"web:{address}", action=action, target=target, result=result, details=details)
    except Exception as exc:
        logmod.error("signin.audit_failed", action=str(action), reason=str(exc))


# --- POST /auth/signout ------------------------------------------------------------------------------------------


def _signout(ctx: SigninContext) -> Callable[[web.Request], Any]:
    async def signout(request: web.Request) -> web.Response:
        try:
            body = await _fields(request, "app_id", "secret")
        except BadRequest as exc:
            return exc.response
        try:
            secret = decode_secret(body["secret"])
        except ValueError:
            return _failed()
        if len(secret) != credentials.SECRET_LEN:
            return _failed()
        if ctx.busy:
            return _slow_down(1.0, 503)
        done = await ctx.run(lambda: _sign_out(ctx, body["app_id"], secret, _address(request)))
        return _reply({"signed_out": True}) if done else _failed()

    return signout


def _sign_out(ctx: SigninContext, app_id: str, secret: bytes, address: str) -> bool:
    """(In the executor.) Revoke the credential and order its live sessions ended."""
    if not credentials.revoke(ctx.store, app_id, secret, now=ctx.clock()):
        return False
    logmod.event("signout", app=app_id, address=address)
    _audit(ctx.store, address, Action.SIGNOUT, app_id)
    return True


# --- POST /auth/visitor ------------------------------------------------------------------------------------------


def _visitor(ctx: SigninContext) -> Callable[[web.Request], Any]:
    async def visitor(request: web.Request) -> web.Response:
        now = ctx.clock()
        wait = ctx.visitors.take(_address(request), now)
        if wait:
            return _slow_down(wait)
        try:
            tenant, name = await _visitor_fields(request)
        except BadRequest as exc:
            return exc.response
        if ctx.busy:
            return _slow_down(1.0, 503)
        issued = await ctx.run(lambda: _new_visitor(ctx, tenant, _address(request), now))
        if issued is None:
            return _reply({"error": "this tenant takes no visitors here"}, 403)
        return _reply(issued | ({"name": name} if name else {}))

    return visitor


async def _visitor_fields(request: web.Request) -> tuple[str, str]:
    """The tenant and the display name ("" if none) asked for."""
    body = await _fields(request, "tenant", optional=("name",))
    tenant, name = body["tenant"], body.get("name", "")
    if len(tenant.encode()) > 255 or not tenant.isprintable():
        raise BadRequest(400, "tenant must be at most 255 bytes of printable text")
    if len(name) > MAX_DISPLAY_NAME or not name.isprintable():
        raise BadRequest(400, f"name must be at most {MAX_DISPLAY_NAME} printable characters")
    return tenant, name


def _new_visitor(ctx: SigninContext, tenant: str, address: str, now: float) -> dict[str, Any] | None:
    """(In the executor.) A new visitor app of `tenant` with one session credential; None if the tenant is refused."""
    if not ctx.visitor_tenant_allowed(tenant, now):
        logmod.event("signin.visitor_refused", tenant=tenant[:100], address=address)
        return None
    app_id = VISITOR_PREFIX + secrets.token_hex(12)
    create_app(ctx.store, app_id, role=Role.VISITOR.value, tenant=tenant)  # its own secret is never shown
    issued = credentials.issue(ctx.store, app_id, ttl_s=ctx.config.web.visitor_ttl_s, now=now)
    _audit(ctx.store, address, Action.VISITOR, app_id, details={"tenant": tenant})
    _purge(ctx, now)
    return {"app_id": app_id, "secret": encode_secret(issued.secret), "expires_at": int(issued.expires_at),
            "role": Role.VISITOR.value, "tenant": tenant}  # fmt: skip


# --- purging -----------------------------------------------------------------------------------------------------


def _purge(ctx: SigninContext, now: float) -> None:
    """(In the executor, at most every PURGE_INTERVAL_S.) Drop expired session credentials, and the app records of
    visitors left without one (their history stays in the store)."""
    if not ctx.purge_due(now):
        return
    try:
        emptied = credentials.purge_expired(ctx.store, now=now)
        for app_id in emptied:
            if app_id.startswith(VISITOR_PREFIX):
                raw = ctx.store.get_app(app_id)
                if raw is not None and AppRecord.decode(raw).profile.role is Role.VISITOR:
                    ctx.store.delete_app(app_id)
    except Exception as exc:  # a purge is housekeeping: a failure is logged and the next one tries again
        logmod.error("signin.purge_failed", reason=str(exc))
