"""What every HTTP API route works with: the process's core side (`ApiContext`), the authenticated caller (`Caller`),
and the one error type whose JSON body every refusal has (`ApiError`).

Other route modules mounted on the API's application (the webhooks' `kefu.server.webhooks.api.add_routes(app, ctx)`)
use these too: `caller_of(request)` after the API's authentication middleware, `require_admin(request)` for routes
only admin apps may call, `raise ApiError(status, code, message)` for a refusal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..engine.audit import NO_AUDIT, AuditTrail
from ..engine.core import Core
from ..engine.identity import Profile, Role
from ..identity.keys import AppDirectory
from ..service.desk import Desk
from ..storage.store import Store

__all__ = ["CALLER_KEY", "ApiContext", "ApiError", "AuthMethod", "Caller", "caller_of", "require_admin"]


@dataclass(slots=True)
class ApiContext:
    """The core process's parts the API routes use (built where the desk runs: the core process, or the one process
    of ``workers = 0``). `config` is replaced on SIGHUP (`reconfigure`)."""

    config: Any
    """The server's configuration (`kefu.server.config.Config`)."""
    core: Core
    desk: Desk
    store: Store
    """The process's open store (LMDB forbids a second open of it in the same process: use this one)."""
    apps: AppDirectory
    audit: AuditTrail = NO_AUDIT
    clock: Callable[[], float] = time.time
    """Wall-clock seconds (the signature's timestamp window)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Room for mounted modules' own state (keyed by module name)."""
    web_port: int = 0
    """The web port's actual port once known (0: [web] port): its origin may call the API (CORS)."""
    metrics: Any = None
    """The process's `kefu.server.metrics.Metrics` (kefu_api_requests_total), or None."""

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: adopt the new configuration (the admin apps, the replay window, CORS origins)."""
        self.config = config


class AuthMethod:
    """How a caller authenticated (`Caller.method`)."""

    SIGNED = "signed"
    """A request signed with the app's secret (spec section 17.2)."""
    SESSION = "session"
    """A staff session credential as a bearer (`Authorization: Kefu-Session app_id:secret`, spec section 16)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request, as the API's authentication middleware found it."""

    app_id: str
    profile: Profile
    admin: bool
    """Listed in ``[api] admin_apps`` and authenticated by a signed request: may call the admin routes."""
    method: str = AuthMethod.SIGNED

    @property
    def role(self) -> Role:
        """The app's role (the protocol's)."""
        return self.profile.role

    @property
    def tenant(self) -> str:
        """The app's tenant."""
        return self.profile.tenant


CALLER_KEY = web.RequestKey("kefu.caller", Caller)
"""Where the middleware leaves the caller, on the request (`request[CALLER_KEY]`)."""


class ApiError(Exception):
    """A refused request: its HTTP status and the body ``{"error": {"code": code, "message": message}}``. `code`
    is a stable upper-case token (the protocol's error names where one applies: NOT_FOUND, FORBIDDEN, ...)."""

    def __init__(self, status: int, code: str, message: str = "", **detail: Any) -> None:
        super().__init__(message or code)
        self.status, self.code, self.message, self.detail = status, code, message or code.lower(), detail

    def body(self) -> dict[str, Any]:
        """The JSON body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            error["detail"] = self.detail
        return {"error": error}


def caller_of(request: web.Request) -> Caller:
    """The authenticated caller of `request` (set by the authentication middleware on every /v1/ route but the
    OpenAPI document)."""
    caller: Caller | None = request.get(CALLER_KEY)
    if caller is None:
        raise ApiError(401, "UNAUTHENTICATED", "no credentials")
    return caller


def require_admin(request: web.Request) -> Caller:
    """The caller, if it may call admin routes; else ApiError 403 ADMIN_REQUIRED."""
    caller = caller_of(request)
    if not caller.admin:
        raise ApiError(403, "ADMIN_REQUIRED", "an admin app (listed in [api] admin_apps) signs admin requests")
    return caller
