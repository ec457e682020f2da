"""A webhook receiver for the tests: a real aiohttp server on loopback that records what it is sent, checks every
signature, and answers with the statuses the test asks for."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kefu.protocol.crypto import hmac_digest


def reference_hmac(algorithm: str, key: bytes, message: bytes) -> str:
    """HMAC by RFC 2104 over hashlib (SHA-256; SM3 through OpenSSL when it has it, else GmSSL's one-shot HMAC, which
    the protocol's tests check against GM/T 0042): computed apart from the server's signing code."""
    name = {"hmac-sha256": "sha256", "hmac-sm3": "sm3"}[algorithm]
    if name == "sha256":
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    try:
        return hmac.new(key, message, lambda: hashlib.new("sm3")).hexdigest()
    except ValueError:
        return hmac_digest("sm3", key, message).hex()


@dataclass
class Delivery:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    status: int
    at: float
    """When it arrived (time.monotonic)."""

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    def verify(self, secret: bytes) -> list[str]:
        """The algorithms whose signatures check out (every one named must)."""
        timestamp = self.headers["Kefu-Webhook-Timestamp"]
        signed = timestamp.encode() + b"." + self.body
        checked = []
        for entry in self.headers["Kefu-Webhook-Signature"].split(","):
            algorithm, _, value = entry.strip().partition("=")
            assert hmac.compare_digest(value, reference_hmac(algorithm, secret, signed)), f"bad {algorithm} signature"
            checked.append(algorithm)
        assert checked and ",".join(checked) == self.headers["Kefu-Webhook-Signature-Algorithms"]
        return checked


@dataclass
class Receiver:
    """Records deliveries; `answer(delivery_count)` -> status decides each answer (default 200)."""

    answer: Callable[[int], int] = lambda _: 200
    deliveries: list[Delivery] = field(default_factory=list)
    redirect_to: str = ""
    delay_s: float = 0.0
    """How long each answer takes."""
    pause_after: int | None = None
    """Deliveries after this many are recorded, then held unanswered until `resume` is set."""
    resume: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/elsewhere", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.answer(len(self.deliveries))
        self.deliveries.append(Delivery(dict(request.headers), body, status, time.monotonic()))
        self._changed.set()
        if self.pause_after is not None and len(self.deliveries) > self.pause_after:
            self.held += 1
            self._changed.set()
            await self.resume.wait()
        if self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        return web.Response(status=status)

    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 2xx, first arrival of each id only (what a receiver that deduplicates keeps)."""
        seen, out = set(), []
        for delivery in self.deliveries:
            if 200 <= delivery.status < 300 and delivery.event["id"] not in seen:
                seen.add(delivery.event["id"])
                out.append(delivery.event)
        return out

    async def wait_for(self, done: Callable[[Receiver], bool], timeout: float = 10.0) -> None:
        """Until `done(self)` holds (AssertionError with what arrived after `timeout`)."""
        async with asyncio.timeout(timeout):
            while not done(self):
                self._changed.clear()
                await self._changed.wait()


def per_conversation(events: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The events grouped by conversation, in arrival order."""
    out: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(event["conversation_id"], []).append(event)
    return out
