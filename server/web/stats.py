"""The web port's own figures, beside the gateway's (which count WebSocket sessions with the TCP ones).

A WebSocket session is a gateway session: it is counted in kefu_connections, kefu_handshakes, kefu_bytes and the
rest like any other. These series say how much of that came over the web port:

    kefu_websocket_connections              WebSocket connections open now (upgraded, in or past the handshake)
    kefu_websocket_bytes_total{direction}   bytes of the kefu stream carried in WebSocket messages (in, out)
    kefu_websocket_refused_total{reason}    upgrades refused before a session began: origin, subprotocol,
                                            not_websocket, draining; connections reset for the port's bound
                                            on HTTP connections (`kefu.server.web.port`)

Bytes are counted in plain ints and handed to Prometheus once a second (`publish`), as the gateway does.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge

__all__ = ["REFUSAL_REASONS", "WebStats"]

REFUSAL_REASONS = ("origin", "subprotocol", "not_websocket", "draining", "connections")


class WebStats:
    """Counts for one process's web port; `bind` puts them on that process's metrics registry."""

    def __init__(self) -> None:
        self.open = 0
        self.bytes_in = self.bytes_out = 0
        self._gauge: Any = None
        self._bytes: Any = None
        self._refused: dict[str, Any] = {}

    def bind(self, metrics: Any) -> None:
        """Register the series on `metrics` (a `kefu.server.metrics.Metrics`; None: count only)."""
        if metrics is None:
            return
        registry = metrics.registry
        self._gauge = Gauge("kefu_websocket_connections", "WebSocket connections open.", registry=registry)
        self._bytes = Counter("kefu_websocket_bytes", "Bytes of the kefu stream in WebSocket messages.",
                              ["direction"], registry=registry)  # fmt: skip
        refused = Counter("kefu_websocket_refused", "WebSocket upgrades refused, by reason.", ["reason"],
                          registry=registry)  # fmt: skip
        self._refused = {reason: refused.labels(reason) for reason in REFUSAL_REASONS}
        for direction in ("in", "out"):
            self._bytes.labels(direction)

    def opened(self) -> None:
        """A WebSocket connection was upgraded."""
        self.open += 1
        if self._gauge is not None:
            self._gauge.inc()

    def closed(self) -> None:
        """A WebSocket connection ended."""
        self.open -= 1
        if self._gauge is not None:
            self._gauge.dec()

    def refused(self, reason: str) -> None:
        """An upgrade refused before a session began."""
        counter = self._refused.get(reason)
        if counter is not None:
            counter.inc()

    def count_in(self, n: int) -> None:
        """Bytes received in binary messages."""
        self.bytes_in += n

    def count_out(self, n: int) -> None:
        """Bytes sent in binary messages."""
        self.bytes_out += n

    def publish(self) -> None:
        """Move the byte counts into the metrics (once a second)."""
        if self._bytes is not None:
            if self.bytes_in:
                self._bytes.labels("in").inc(self.bytes_in)
            if self.bytes_out:
                self._bytes.labels("out").inc(self.bytes_out)
            self.bytes_in = self.bytes_out = 0
