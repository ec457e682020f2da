"""The web port's application: the WebSocket gateway at /ws, the page configuration, the static pages and the JS
client, and the staff sign-in routes (spec section 15; the contract of issue #17's design).

Routes::

    GET /ws            the kefu protocol over WebSocket (subprotocol kefu.v1), a `Session` of this process's gateway
    GET /config.json   what a page needs to connect: {"ws", "suites", "server_pins", "api"}
    GET /              302 to /console/
    GET /console/...   server/web/static/console/ (the agent and supervisor console)
    GET /widget/...    server/web/static/widget/ (the visitor widget)
    GET /js/...        the JavaScript client's ES modules (clients/js/src/, or the copy installed with the package)
    /auth/...          staff and visitor sign-in (`kefu.server.web.signin`, when present)

Every request passes the Origin policy first (`kefu.server.web.origins`): another page's request gets 403 before
anything else, the WebSocket upgrade included; an allowed cross-origin request gets the CORS headers that let the
page read the answer (the widget on a bank's page). Pages are served with a Content-Security-Policy that lets them
load only from this port and connect only here and to the integration API.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import log as logmod
from ..edge.gateway import printable
from ..engine.refusals import ThrottledLog
from .origins import OriginPolicy
from .stats import WebStats
from .transport import SUBPROTOCOL, WebSocketTransport, websocket_response

__all__ = ["WIDGET_FRAME_PREFIX", "WebContext", "api_origin", "build_app", "js_root", "static_root"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".mjs": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".map": "application/json",
}
"""What the static directories hold; anything else is served as application/octet-stream."""
CORS_MAX_AGE_S = 600
REFUSAL_LOG_PER_S = 5.0
REFUSAL_LOG_BURST = 20.0
"""web.origin_refused lines: any page can make a browser send requests here, so they are bounded like failed logins
(every refusal is still counted in kefu_websocket_refused_total)."""


def static_root() -> Path:
    """server/web/static (in the source tree and in the installed package alike)."""
    return Path(__file__).parent / "static"


def js_root() -> Path:
    """The JS client's modules: the copy installed with the package (kefu/server/web/jsclient, package data of a
    wheel), else clients/js/src of the source tree this module runs from (an editable install, a checkout)."""
    installed = Path(__file__).parent / "jsclient"
    if (installed / "index.js").is_file():
        return installed
    return Path(__file__).resolve().parents[2] / "clients" / "js" / "src"


@dataclass
class WebContext:
    """What the web port of one process serves from."""

    config: Any
    gateway: Any
    """This process's `kefu.server.edge.gateway.Gateway`: /ws connections are its sessions."""
    pins: Sequence[str]
    """The server key pins (public): what pages pin."""
    store: Any = None
    """The app store (for the sign-in routes)."""
    metrics: Any = None
    api_address: Callable[[], tuple[str, int] | None] = lambda: None
    """Where the integration API listens, when this process knows better than [api] host and port (it serves the
    API itself, on a port picked at start); None: the configured address."""
    stats: WebStats = field(default_factory=WebStats)


def build_app(ctx: WebContext) -> web.Application:
    """The aiohttp application of the web port."""
    web_config = ctx.config.web
    policy = OriginPolicy(web_config.allowed_origins)
    app = web.Application(middlewares=[_origin_middleware(policy, ctx), _page_headers(ctx)], client_max_size=1 << 16)
    app.router.add_get("/ws", _websocket(ctx))
    app.router.add_get("/config.json", _page_config(ctx))
    app.router.add_get("/", _to_console)
    static = static_root()
    for prefix, root in (("console", static / "console"), ("widget", static / "widget"), ("js", js_root())):
        app.router.add_get(f"/{prefix}", _redirect(f"/{prefix}/"))
        app.router.add_get(f"/{prefix}/{{tail:.*}}", _files(root))
    _add_signin(app, ctx)
    return app


def _add_signin(app: web.Application, ctx: WebContext) -> None:
    """Mount the staff sign-in routes (`kefu.server.web.signin.add_routes`) when that module is installed."""
    try:
        signin = importlib.import_module("kefu.server.web.signin")
    except ModuleNotFoundError:
        return
    signin.add_routes(app, signin.SigninContext(store=ctx.store, config=ctx.config, clock=time.time))


def api_origin(ctx: WebContext, request: web.Request) -> str | None:
    """The integration API's origin as a page at `request` reaches it (None: not served, or on a port this process
    does not know: [api] port 0 served by another process). An API on every interface is reached by the host name
    the page was loaded from."""
    api = getattr(ctx.config, "api", None)
    if api is None or not api.enabled:
        return None
    host, port = ctx.api_address() or (api.host, api.port)
    if not port:
        return None
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
        host = request.url.host or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"{request.scheme}://{shown}:{port}"


# --- the WebSocket gateway ------------------------------------------------------------------------------------


def _websocket(ctx: WebContext) -> Handler:
    gateway, stats = ctx.gateway, ctx.stats

    async def websocket(request: web.Request) -> web.StreamResponse:
        ws = websocket_response()
        ready = ws.can_prepare(request)
        if not ready.ok:
            stats.refused("not_websocket")
            return _error(400, "a WebSocket upgrade is expected here")
        if ready.protocol != SUBPROTOCOL:
            stats.refused("subprotocol")
            return _error(400, f"the WebSocket subprotocol {SUBPROTOCOL} is required")
        if gateway.draining:
            stats.refused("draining")
            return _error(503, "the server is stopping")
        await ws.prepare(request)
        transport = WebSocketTransport(ws, request, count_in=stats.count_in, count_out=stats.count_out)
        stats.opened()
        try:
            await transport.run(gateway.protocol_factory())
        finally:
            stats.closed()
        return ws

    return websocket


# --- pages ------------------------------------------------------------------------------------------------------


def _page_config(ctx: WebContext) -> Handler:
    async def page_config(request: web.Request) -> web.StreamResponse:
        body = {
            "ws": "/ws",
            "suites": list(ctx.config.server.suites),
            "server_pins": list(ctx.pins),
            "api": api_origin(ctx, request),
        }
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    return page_config


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


def _redirect(to: str) -> Handler:
    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(to)

    return redirect


def _files(root: Path) -> Handler:
    """Files under `root` (a directory's index.html for the directory); nothing outside it, no listing."""

    async def files(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        path = await asyncio.get_running_loop().run_in_executor(None, _resolve, root, tail)  # stat calls: off the loop
        if path is None:
            raise web.HTTPNotFound()
        content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})

    return files


def _resolve(root: Path, tail: str) -> Path | None:
    """The file `tail` names under `root`, or None (missing, hidden, or outside `root`)."""
    if any(part.startswith(".") for part in tail.split("/")) or "\\" in tail or "\0" in tail:
        return None
    with contextlib.suppress(OSError, ValueError):
        base = root.resolve()
        path = (base / tail).resolve()
        if not path.is_relative_to(base):
            return None
        if path.is_dir():
            path = path / "index.html"
        if path.is_file():
            return path
    return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# --- middlewares ------------------------------------------------------------------------------------------------


def _origin_middleware(policy: OriginPolicy, ctx: WebContext) -> Any:
    log = ThrottledLog("web.origin_refused", REFUSAL_LOG_PER_S, REFUSAL_LOG_BURST, time.monotonic, logmod.event)

    @web.middleware
    async def origins(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin, host = request.headers.get("Origin"), request.headers.get("Host")
        if not policy.allows(origin, host):
            ctx.stats.refused("origin")
            log(origin=printable(origin or "", 200), path=printable(request.path, 200), peer=request.remote or "?")
            return _error(403, "this page's origin may not use this server ([web] allowed_origins)")
        cross = policy.cross_origin(origin, host)
        if cross and request.method == "OPTIONS":  # a CORS preflight
            return web.Response(status=204, headers=_cors(origin or "", preflight=True))
        response = await handler(request)
        if cross and not response.prepared:
            response.headers.update(_cors(origin or "", preflight=False))
        return response

    return origins


def _cors(origin: str, *, preflight: bool) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if preflight:
        headers |= {
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": "Content-Type, Authorization",
            "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
        }
    return headers


WIDGET_FRAME_PREFIX = "/widget/"
"""The pages any page may frame: the widget's chat, in the iframe its script adds to a bank's page (which needs no
[web] allowed_origins entry: the frame is of this port's own origin). Every other page, the console first, may be
framed by no page: a framed console could be clicked through by a page that hides it (clickjacking)."""


def _page_headers(ctx: WebContext) -> Any:
    @web.middleware
    async def page_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if response.prepared:  # the WebSocket
            return response
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.content_type == "text/html" or response.headers.get("Content-Type", "").startswith("text/html"):
            api = api_origin(ctx, request)
            connect = f"'self' {api}" if api else "'self'"
            csp = f"default-src 'self'; connect-src {connect}"
            if not request.path.startswith(WIDGET_FRAME_PREFIX):
                csp += "; frame-ancestors 'none'"
                response.headers["X-Frame-Options"] = "DENY"  # browsers older than CSP's frame-ancestors
            response.headers["Content-Security-Policy"] = csp
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return page_headers
