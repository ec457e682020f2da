"""The HTTP integration API's aiohttp application and server (spec section 17; the contract is spec/openapi.json).

Every response to a refused request is JSON, ``{"error": {"code": ..., "message": ...}}`` (`ApiError`), whatever
refused it: the authentication, a route, aiohttp itself (no such route 404, a method not allowed 405, a body too
large 413), or a bug (500, logged). Middlewares, outermost first: the request count, errors, CORS, authentication.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path

from aiohttp import web

from kefu.protocol.httpsig import canonical_query, canonical_request

from .. import log as logmod
from ..engine.audit import Action
from ..identity import credentials
from ..webhooks import api as webhooks
from .auth import NonceCache, check_signature, parse_authorization
from .context import CALLER_KEY, ApiContext, ApiError, AuthMethod, Caller
from .routes import CONTEXT_KEY, reply
from .site import BoundedSite

__all__ = ["IDLE_TIMEOUT_S", "OPENAPI_PATH", "ApiServer", "build_app", "openapi_document"]

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
"""The OpenAPI document (a link to spec/openapi.json in the source tree, a copy in an installed package)."""
PUBLIC_PATHS = frozenset({"/v1/openapi.json"})
"""Routes served without authentication."""
CORS_MAX_AGE_S = 600
"""How long a browser may cache a preflight's answer."""
SHUTDOWN_TIMEOUT_S = 2.0
"""How long a stopping server lets requests in progress finish."""
IDLE_TIMEOUT_S = 30.0
"""A connection that has sent no complete request for this long is closed (aiohttp's keep-alive timeout, which also
runs from the connection's start; its default is an hour): with [api] max_connections, idle or half-sent requests
must not hold the API's connections for long. Bank systems' connection pools reconnect."""
NONCES_KEY = web.AppKey("kefu.api.nonces", NonceCache)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@cache
def openapi_document() -> bytes:
    """The OpenAPI document's bytes."""
    return OPENAPI_PATH.read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """GET /v1/openapi.json."""
    return web.Response(body=openapi_document(), content_type="application/json")


# --- middlewares ---------------------------------------------------------------------------------------------


@web.middleware
async def counted(request: web.Request, handler: Handler) -> web.StreamResponse:
    """kefu_api_requests_total{route, status}: the route's template (not the path: a bounded set)."""
    response = await handler(request)
    metrics = request.app[CONTEXT_KEY].metrics
    if metrics is not None:
        resource = request.match_info.route.resource
        metrics.api_request(resource.canonical if resource is not None else "unmatched", response.status)
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as the JSON error body; a bug as 500 INTERNAL_ERROR (logged with its traceback)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return reply(exc.body(), exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(exc.status, "BAD_REQUEST")
        return reply(ApiError(exc.status, code, exc.reason).body(), exc.status)
    except Exception as exc:
        logmod.exception("api.internal_error", path=request.path, error=repr(exc))
        return reply(ApiError(500, "INTERNAL_ERROR", "internal error").body(), 500)


def _origins(ctx: ApiContext) -> frozenset[str]:
    """The origins whose pages may call the API: the web port's (the console's), and [api] cors_origins."""
    configured = frozenset(ctx.config.api.cors_origins)
    web_section = ctx.config.web
    port = ctx.web_port or web_section.port
    if not web_section.enabled or not port:
        return configured
    host = web_section.host
    names = {host, "localhost", "127.0.0.1"} if host in ("127.0.0.1", "localhost", "0.0.0.0") else {host}  # noqa: S104
    return configured | {f"http://{name}:{port}" for name in names}


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS for the allowed origins: preflights answered here; others' responses carry Allow-Origin."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in _origins(request.app[CONTEXT_KEY])
    response: web.StreamResponse
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            raise ApiError(403, "ORIGIN_NOT_ALLOWED", "this origin may not call the API")
        response = web.Response(status=204)
        response.headers.update({
            "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
        })  # fmt: skip
    else:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = reply(exc.body(), exc.status)
    if allowed and origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /v1/ route but the public ones: a signed request or a session bearer (spec 17.2)."""
    if request.path in PUBLIC_PATHS or not request.path.startswith("/v1/"):
        return await handler(request)
    value = request.headers.get("Authorization", "")
    if not value:
        raise ApiError(401, "UNAUTHENTICATED", "sign the request (spec section 17.2)")
    ctx = request.app[CONTEXT_KEY]
    if value.split(" ", 1)[0].lower() == credentials.BEARER_SCHEME.lower():
        request[CALLER_KEY] = _session_caller(ctx, value, request.remote or "")
    else:
        request[CALLER_KEY] = await _signed_caller(request, ctx, value)
    return await handler(request)


async def _signed_caller(request: web.Request, ctx: ApiContext, value: str) -> Caller:
    signed = parse_authorization(value)
    window = ctx.config.api.replay_window_s
    if abs(ctx.clock() - signed.timestamp) > window:
        raise ApiError(401, "STALE_TIMESTAMP", f"the timestamp is more than {window} s from the server's clock")
    body = await request.read()
    path, query = request.rel_url.raw_path, canonical_query(list(request.query.items()))
    canonical = canonical_request(signed.params, request.method, path, query, body)
    record = ctx.apps.record(signed.app_id)
    if not check_signature(signed, record, canonical) or record is None:
        ctx.audit.tally(signed.app_id, Action.AUTH_FAILED, "api", "AUTH_FAILED", request.remote or "")
        raise ApiError(401, "AUTH_FAILED", "authentication failed")
    request.app[NONCES_KEY].claim(signed.app_id, signed.nonce, 2 * window)
    admin = signed.app_id in ctx.config.api.admin_apps
    return Caller(signed.app_id, record.profile, admin, AuthMethod.SIGNED)


def _session_caller(ctx: ApiContext, value: str, remote: str) -> Caller:
    """A staff session credential as a bearer (spec 16), checked as the sign-in issued it: unexpired, unrevoked."""
    parsed = credentials.parse_bearer(value)
    if parsed is None:
        raise ApiError(401, "MALFORMED_AUTHORIZATION", "Kefu-Session <app_id>:<base64url secret>")
    app_id, secret = parsed
    record = ctx.apps.record(app_id)
    if record is None or not credentials.check_secret(ctx.apps, app_id, secret, now=ctx.clock()):
        ctx.audit.tally(app_id, Action.AUTH_FAILED, "api", "AUTH_FAILED", remote)
        raise ApiError(401, "AUTH_FAILED", "authentication failed")
    return Caller(app_id, record.profile, False, AuthMethod.SESSION)


# --- the application -----------------------------------------------------------------------------------------


def build_app(ctx: ApiContext) -> web.Application:
    """The API's application: its routes, the admin routes and the webhook subscriptions' (spec 18)."""
    from . import admin, routes  # noqa: PLC0415 - admin imports this package's routes; keep the order explicit

    middlewares = [counted, errors, cors, authenticate]
    app = web.Application(middlewares=middlewares, client_max_size=ctx.config.api.max_body_bytes)
    app[NONCES_KEY] = NonceCache()
    routes.add_routes(app, ctx)
    admin.add_routes(app)
    app.router.add_get("/v1/openapi.json", openapi)
    webhooks.add_routes(app, ctx)
    return app


class ApiServer:
    """The API's listening socket on [api] host and port."""

    def __init__(self, ctx: ApiContext, *, reuse_port: bool = False) -> None:
        """`reuse_port`: bind with SO_REUSEPORT (the supervisor of worker processes holds the port)."""
        self.ctx = ctx
        self.reuse_port = reuse_port
        self.runner = web.AppRunner(
            build_app(ctx), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            keepalive_timeout=IDLE_TIMEOUT_S,
        )  # fmt: skip
        self.address: tuple[str, int] = ("", 0)
        self.site: BoundedSite | None = None

    async def start(self) -> tuple[str, int]:
        """Listen; the address bound (port 0 picks a free one). Prints ``kefu: api on http://HOST:PORT``."""
        api = self.ctx.config.api
        await self.runner.setup()
        limit = api.max_connections
        self.site = BoundedSite(self.runner, api.host, api.port, max_connections=limit, reuse_port=self.reuse_port)
        await self.site.start()
        host, port = self.runner.addresses[0][:2]
        self.address = (str(host), int(port))
        logmod.event("api.listening", host=host, port=port)
        shown = f"[{host}]" if ":" in str(host) else host
        print(f"kefu: api on http://{shown}:{port}", flush=True)
        return self.address

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish (SHUTDOWN_TIMEOUT_S), close."""
        await self.runner.cleanup()
