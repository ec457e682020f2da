"""Prometheus metrics and the /metrics + /healthz HTTP endpoint.

Theory of operation: `Metrics` owns a private CollectorRegistry (never the global default, so tests and
embedded servers do not collide) and binds the label children of every hot-path series once, at start:
counting a received DELIVER_ACK is ``metrics.frame_in(FrameType.DELIVER_ACK)``, one dict lookup and one
``Counter.inc``. Label values come from closed sets (suites, frame types, error codes, a few results, the configured
tenants and groups) so the series count is bounded. One unit per metric name; no ``*_created`` series (the process's
start time is kefu_start_time_seconds); durations are read from time.monotonic(), never from the event loop's clock,
which uvloop rounds to the millisecond.

The contact-centre figures (`kefu.server.service.figures`) come from an immutable snapshot the desk publishes at
each queue tick (`publish_desk`), turned into series at scrape time (`_DeskCollector`).

`MetricsServer` serves the registry from a stdlib ThreadingHTTPServer on daemon threads: scraping never runs
on the event loop, and a stuck scraper cannot stall message traffic. The /healthz payload comes from a
callable the app provides (`Server.health`), merged over {status, connections, uptime_s, version}; it
answers 200 while the status is "ok" and 503 otherwise, so a load balancer stops routing to a draining node.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kefu.protocol.codes import ErrorCode
from kefu.protocol.frames import FrameType

from . import log
from .service.figures import FIRST_ANSWER_BUCKETS, DeskFigures

__all__ = [
    "AUTH_FAILURE_REASONS",
    "LATENCY_BUCKETS",
    "Exposition",
    "Metrics",
    "MetricsServer",
    "auth_failure_reason",
    "merge_expositions",
    "version",
]

# Process-wide: a `_created` series per counter child doubles the series for nothing (the start time is exported once).
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
"""0.5 ms to 5 s: a SEND_ACK within a group-commit window is ~1-3 ms; beyond 5 s a client has retried. Every
millisecond up to 5 ms and four more steps to 20 ms, so that a p99 near a 10 ms target can be placed (with a
jump from 5 to 10 ms it could not)."""
FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""0.1 ms (NVMe with a write cache) to 1 s (a disk in trouble)."""
BATCH_BUCKETS = tuple(float(1 << i) for i in range(14))
"""1 to 8192 writes per commit: powers of two up past [delivery] max_batch's default of 4096."""
SUITES = ("national", "international", "none")
"""Suite label values; "none" for a handshake that ended before the client named its suite."""
AUTH_FAILURE_REASONS: dict[str, str] = {
    "unknown app": "unknown_app",
    "malformed app id": "malformed_app_id",
    "app proof does not verify": "bad_secret",
    "client key not registered for this app": "unregistered_key",
    "client key type must be": "wrong_key_type",
    "client signature does not verify": "bad_signature",
    "auth mode RESUMED in a full handshake": "bad_auth_mode",
    "unknown auth mode": "bad_auth_mode",
    "a resumed handshake must use auth mode RESUMED": "bad_auth_mode",
}
"""Why a login failed (the start of the protocol's detail, kefu.protocol.serverconn) -> the `reason` label of
kefu_auth_failures_total; anything else is "other". A bounded set: the detail itself names the claimed app."""
HANDSHAKE_RESULTS = ("ok", "resumed", "failed", "timeout", "refused")
CONNECTION_STATES = ("handshake", "open", "draining")
HTTP_TIMEOUT_S = 10.0
"""A scraper that sends nothing for this long is dropped, so idle sockets cannot pin handler threads."""


class PlainHistogram:
    """A histogram for one thread's hot path: `observe` is a bisect and two list updates (prometheus_client's takes a
    lock per observation: a few microseconds per message, twice per message). Exported like any histogram, from a
    snapshot at scrape time. One writer thread per histogram (a scrape from another thread may read a count that is
    one observation behind the sum; Prometheus tolerates that)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> list[Metric]:
        """The histogram family (cumulative buckets), for the registry."""
        counts, total = list(self.counts), self.sum
        cumulative, buckets = 0, []
        for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
        return [HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)]


def auth_failure_reason(detail: str) -> str:
    """The `reason` label for a failed login's detail."""
    for start, reason in AUTH_FAILURE_REASONS.items():
        if detail.startswith(start):
            return reason
    return "other"


class _DeskCollector:
    """The contact-centre series, from the desk's last snapshot (none before the desk publishes one: a gateway
    process, or a server without the service layer, exports none)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.figures: DeskFigures | None = None
        registry.register(self)

    def collect(self) -> list[Metric]:
        figures, now = self.figures, time.time()
        if figures is None:
            return []
        labels = ["tenant", "group"]
        waiting = GaugeMetricFamily(
            "kefu_service_waiting_conversations",
            "Conversations waiting in a group's queue for an agent.",
            labels=labels,
        )
        longest = GaugeMetricFamily(
            "kefu_service_longest_wait_seconds", "How long the longest-waiting conversation of a group has waited"
            " (0: nobody waits).", labels=labels,
        )  # fmt: skip
        abandoned = CounterMetricFamily(
            "kefu_service_abandoned", "Conversations closed while waiting for an agent (the visitor gave up).",
            labels=labels,
        )  # fmt: skip
        answers = HistogramMetricFamily(
            "kefu_service_first_answer_seconds", "From OPEN_CONVERSATION to the assigned agent's first message.",
            labels=labels,
        )  # fmt: skip
        for (tenant, group), g in sorted(figures.groups.items()):
            key = [tenant, group]
            waiting.add_metric(key, g.waiting)
            longest.add_metric(key, 0.0 if g.oldest_since is None else max(0.0, now - g.oldest_since))
            abandoned.add_metric(key, g.abandoned)
            cumulative, buckets = 0, []
            for bound, n in zip((*FIRST_ANSWER_BUCKETS, math.inf), g.answer_counts, strict=True):
                cumulative += n
                buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
            answers.add_metric(key, buckets, g.answer_sum)
        agents = GaugeMetricFamily(
            "kefu_service_agents", "Agents by state: the status each set, offline with no device connected.",
            labels=["tenant", "state"],
        )  # fmt: skip
        for (tenant, state), n in sorted(figures.agents.items()):
            agents.add_metric([tenant, state], n)
        return [waiting, longest, abandoned, answers, agents]


def version() -> str:
    """The installed kefu version."""
    try:
        return metadata.version("kefu")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Metrics:
    """Every kefu series, on one registry, with hot-path label children bound up front."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        if process:
            ProcessCollector(registry=r)
        self.connections = Gauge("kefu_connections", "Open connections.", ["suite", "state"], registry=r)
        self.handshakes_total = Counter("kefu_handshakes", "Handshakes finished.", ["suite", "result"], registry=r)
        self.auth_failures_total = Counter(
            "kefu_auth_failures", "Logins refused AUTH_FAILED, by why (the client is told only that it failed).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.frames_total = Counter("kefu_frames", "Frames received and sent.", ["direction", "type"], registry=r)
        self.bytes_total = Counter(
            "kefu_bytes", "Bytes received and sent on client sockets.", ["direction"], registry=r
        )
        self.send_ack_latency = PlainHistogram(
            "kefu_send_ack_latency_seconds", "SEND read to its SEND_ACK queued (the message durable).",
            LATENCY_BUCKETS, r,
        )  # fmt: skip
        self.delivery_latency = PlainHistogram(
            "kefu_delivery_latency_seconds", "SEND read to the DELIVER of the message queued for a device.",
            LATENCY_BUCKETS, r,
        )  # fmt: skip
        self.commit_batch_size = PlainHistogram("kefu_commit_batch_size", "Writes per group commit.", BATCH_BUCKETS, r)
        self.fsync_seconds = PlainHistogram(
            "kefu_fsync_seconds", "Duration of a durable commit (write and fsync).", FSYNC_BUCKETS, r
        )
        self.store_written = Counter(
            "kefu_store_written_bytes", "Bytes the store wrote: its write-ahead log (page-granular appends) and the"
            " indexer's LMDB transactions.", ["part"], registry=r,
        )  # fmt: skip
        self.store_messages = Counter(
            "kefu_store_messages", "Messages made durable (log) and indexed behind it (index).", ["part"], registry=r
        )
        self.sealed_records = Gauge(
            "kefu_storage_sealed_records", "Values of the store sealed under each data key, as the last reseal pass"
            " counted them (older keys than the newest: still to reseal, or damaged).", ["key_id"], registry=r,
        )  # fmt: skip
        self.storage_damaged_total = Counter(
            "kefu_storage_damaged_records", "Stored values that failed to open or decode on read (reported and never"
            " served: spec section 12, \"Damage found on read\"), by table.", ["table"], registry=r,
        )  # fmt: skip
        self.retries_total = Counter("kefu_retries", "DELIVERs sent again for want of an ACK.", registry=r)
        self.refused_total = Counter("kefu_refused_connections", "Connections refused by a limit.", registry=r)
        self.commit_queue = Gauge("kefu_commit_queue_writes", "Writes waiting for a group commit.", registry=r)
        self.outbound_buffered_bytes = Gauge(
            "kefu_outbound_buffered_bytes", "Bytes written to client sockets that the clients have not read yet.",
            registry=r,
        )  # fmt: skip
        self.errors_total = Counter("kefu_errors", "Protocol errors, by wire code name.", ["code"], registry=r)
        self.loop_lag = Histogram(
            "kefu_event_loop_lag_seconds",
            "Lateness of a periodic event loop callback.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.loop_lag_last = Gauge("kefu_event_loop_lag_last_seconds", "The last event loop lag measured.", registry=r)
        self.service_events_total = Counter(
            "kefu_service_events",
            "Customer-service events: assignments, queueing, transfers, overflows, closes, rule failures, "
            "sentiment and AI plugin outcomes.",
            ["event"],
            registry=r,
        )
        self.webhook_deliveries_total = Counter(
            "kefu_webhook_deliveries", "Webhook delivery attempts, by result: ok (2xx), rejected (another status,"
            " redirects included), timeout, error (no answer).", ["result"], registry=r,
        )  # fmt: skip
        self.webhook_dead_letters_total = Counter(
            "kefu_webhook_dead_letters", "Webhook events given up, by why: attempts ([webhooks] max_attempts), age"
            " ([webhooks] max_age_s), backlog ([webhooks] max_backlog).", ["reason"], registry=r,
        )  # fmt: skip
        self.webhook_lag = Gauge(
            "kefu_webhook_lag_seconds", "Age of the oldest webhook event a subscription has not delivered yet (0: none"
            " waits).", ["subscription"], registry=r,
        )  # fmt: skip
        self.webhook_backlog = Gauge(
            "kefu_webhook_backlog_events", "Webhook events a subscription has queued.", ["subscription"], registry=r
        )
        self.api_requests_total = Counter(
            "kefu_api_requests", "HTTP integration API requests, by route (its template; unmatched: none) and"
            " status.", ["route", "status"], registry=r,
        )  # fmt: skip
        self.desk = _DeskCollector(r)
        Gauge("kefu_build_info", "Always 1; the version is a label.", ["version"], registry=r).labels(version()).set(1)
        Gauge("kefu_start_time_seconds", "Unix time the process started serving.", registry=r).set(time.time())
        self._bind()

    def _bind(self) -> None:
        frames = self.frames_total
        self._frames_in = {int(t): frames.labels("in", t.name.lower()) for t in FrameType}
        self._frames_out = {int(t): frames.labels("out", t.name.lower()) for t in FrameType}
        self._frames_in_unknown = frames.labels("in", "unknown")
        self._bytes_in = self.bytes_total.labels("in")
        self._bytes_out = self.bytes_total.labels("out")
        self._errors = {c.name: self.errors_total.labels(c.name) for c in ErrorCode if c is not ErrorCode.OK}
        self._auth_failures = {r: self.auth_failures_total.labels(r) for r in {*AUTH_FAILURE_REASONS.values(), "other"}}
        self._handshakes = {(s, r): self.handshakes_total.labels(s, r) for s in SUITES for r in HANDSHAKE_RESULTS}
        self._conns = {(s, st): self.connections.labels(s, st) for s in SUITES for st in CONNECTION_STATES}
        self._counts = {"retries": self.retries_total, "refused_connections": self.refused_total}
        self._latencies: dict[str, PlainHistogram | Histogram] = {
            "send_ack": self.send_ack_latency,
            "delivery": self.delivery_latency,
            "fsync": self.fsync_seconds,
            "loop_lag": self.loop_lag,
        }

    # --- hot path -------------------------------------------------------------------------------------

    def frames(self, received: Sequence[int], sent: Sequence[int]) -> None:
        """Frames received and sent since the last call, indexed by frame type (a `FrameTally`'s `take`, once a
        second: the core counts in plain lists, since these counters take a lock per increment)."""
        for frame_type, n in enumerate(received):
            if n:
                self._frames_in.get(frame_type, self._frames_in_unknown).inc(n)
        for frame_type, n in enumerate(sent):
            if n and (counter := self._frames_out.get(frame_type)) is not None:
                counter.inc(n)

    def bytes_in(self, n: int) -> None:
        """Bytes read from a client socket."""
        self._bytes_in.inc(n)

    def bytes_out(self, n: int) -> None:
        """Bytes written to a client socket."""
        self._bytes_out.inc(n)

    def error(self, code_name: str) -> None:
        """One protocol error, by ErrorCode name (OK is no error: not counted)."""
        if code_name == ErrorCode.OK.name:
            return
        child = self._errors.get(code_name)
        (child if child is not None else self.errors_total.labels(code_name)).inc()

    def handshake(self, suite: str, result: str) -> None:
        """One finished handshake: suite in SUITES, result in HANDSHAKE_RESULTS."""
        self._handshakes[(suite, result)].inc()

    def auth_failed(self, detail: str) -> None:
        """One failed login, by the protocol's detail of why (see AUTH_FAILURE_REASONS)."""
        self._auth_failures[auth_failure_reason(detail)].inc()

    def publish_desk(self, figures: DeskFigures) -> None:
        """The desk's latest figures (from its loop; read by scrapes on any thread)."""
        self.desk.figures = figures

    def connection_gauge(self, suite: str, state: str) -> Any:
        """The gauge child of (suite, state): hold it per connection and inc()/dec() it on transitions."""
        return self._conns[(suite, state)]

    def count(self, what: str, n: int = 1) -> None:
        """Increment a named counter: "retries" or "refused_connections"."""
        self._counts[what].inc(n)

    def service(self, event: str, n: int = 1) -> None:
        """A customer-service event (a bounded set of names: see kefu.server.service.desk)."""
        self.service_events_total.labels(event).inc(n)

    def api_request(self, route: str, status: int) -> None:
        """One HTTP API request answered (`route`: the route's template, a bounded set)."""
        self.api_requests_total.labels(route, str(status)).inc()

    def webhook_delivery(self, result: str) -> None:
        """One webhook delivery attempt (result: ok, rejected, timeout, error)."""
        self.webhook_deliveries_total.labels(result).inc()

    def webhook_dead_letter(self, reason: str) -> None:
        """One webhook event given up (reason: attempts, age, backlog)."""
        self.webhook_dead_letters_total.labels(reason).inc()

    def webhook_feed(self, subscription: str, lag_s: float, backlog: int) -> None:
        """A subscription's lag and backlog (set once a second by the dispatcher)."""
        self.webhook_lag.labels(subscription).set(lag_s)
        self.webhook_backlog.labels(subscription).set(backlog)

    def webhook_forget(self, subscription: str) -> None:
        """A subscription was removed: its series go."""
        for gauge in (self.webhook_lag, self.webhook_backlog):
            with contextlib.suppress(KeyError):
                gauge.remove(subscription)

    def observe(self, what: str, seconds: float) -> None:
        """Observe a named duration: "send_ack", "delivery", "fsync" or "loop_lag"."""
        self._latencies[what].observe(seconds)

    def observe_store_written(self, part: str, nbytes: int, messages: int) -> None:
        """The store wrote `nbytes` for `messages` (part "log": a group commit's append; "index": a batch indexed)."""
        self.store_written.labels(part).inc(nbytes)
        self.store_messages.labels(part).inc(messages)

    def observe_sealed(self, counts: Mapping[int, int]) -> None:
        """Values per data key id after a reseal pass (`kefu.server.storage.reseal.Resealer`)."""
        self.sealed_records.clear()
        for key_id, n in counts.items():
            self.sealed_records.labels(str(key_id)).set(n)

    def storage_damaged(self, table: str) -> None:
        """One stored value of `table` that did not open (a bounded set: the store's table names)."""
        self.storage_damaged_total.labels(table).inc()

    def observe_commit(self, batch_size: int, fsync_seconds: float) -> None:
        """One group commit: how many writes it held and how long its fsync took."""
        self.commit_batch_size.observe(batch_size)
        self.fsync_seconds.observe(fsync_seconds)

    def observe_loop_lag(self, seconds: float) -> None:
        """How late a periodic event loop callback ran."""
        self.loop_lag.observe(seconds)
        self.loop_lag_last.set(seconds)

    async def watch_loop_lag(self, interval_s: float = 0.5) -> None:
        """Run forever (as a task on the loop being measured), observing how late each wake-up comes."""
        while True:
            due = time.monotonic() + interval_s  # not loop.time(): uvloop's is in whole milliseconds
            await asyncio.sleep(interval_s)
            self.observe_loop_lag(max(0.0, time.monotonic() - due))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


# --- many processes, one endpoint ----------------------------------------------------------------------


HIGHEST: frozenset[str] = frozenset(
    {"kefu_event_loop_lag_last_seconds", "kefu_build_info", "process_max_fds", "kefu_service_longest_wait_seconds"}
)
"""Gauges whose host-wide value is the largest of the processes' (the others add up)."""
LOWEST: frozenset[str] = frozenset({"kefu_start_time_seconds", "process_start_time_seconds"})
"""Gauges whose host-wide value is the smallest of the processes'."""


class _Merged:
    """A collector of other processes' expositions: the host's totals, or every worker's series with a label."""

    def __init__(self, parts: Sequence[tuple[str, str]], *, per_worker: bool) -> None:
        self._parts = parts
        self._per_worker = per_worker

    def collect(self) -> list[Metric]:
        families: dict[str, Metric] = {}
        values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for worker, text in self._parts:
            for family in text_string_to_metric_families(text):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                for s in family.samples:
                    if self._per_worker:
                        merged.samples.append(Sample(s.name, {**s.labels, "worker": worker}, s.value))
                        continue
                    key = (family.name, s.name, tuple(sorted(s.labels.items())))
                    values[key] = _combine(family.name, s.name, values.get(key), s.value)
        for (family_name, name, labels), value in values.items():
            families[family_name].samples.append(Sample(name, dict(labels), value))
        return list(families.values())


def _combine(family: str, sample: str, old: float | None, new: float) -> float:
    if old is None:
        return new
    if family in HIGHEST:
        return max(old, new)
    if family in LOWEST:
        return min(old, new)
    return old + new


def merge_expositions(parts: Sequence[tuple[str, str]], *, per_worker: bool = False) -> bytes:
    """One exposition of several processes' (worker name, exposition text): the host's totals, series for series as
    one process would show them (counters, histograms and most gauges add up; see HIGHEST and LOWEST), or with
    `per_worker` every worker's own series with a `worker` label."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(parts, per_worker=per_worker))
    return generate_latest(registry)


class Exposition(Protocol):
    """Anything that renders a Prometheus exposition: a `Metrics`, or a supervisor merging its workers'."""

    def exposition(self) -> bytes:
        """The text format."""


# --- the HTTP endpoint ----------------------------------------------------------------------------------

HealthFn = Callable[[], Mapping[str, object]]


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    metrics: Exposition
    health: HealthFn
    started: float


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = HTTP_TIMEOUT_S
    server_version = "kefu-metrics"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, self.server.metrics.exposition())
        elif path == "/metrics/workers" and hasattr(self.server.metrics, "worker_exposition"):
            self._reply(200, CONTENT_TYPE_LATEST, self.server.metrics.worker_exposition())
        elif path == "/healthz":
            status, payload = self._health()
            self._reply(status, "application/json", json.dumps(payload, default=str).encode() + b"\n")
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

    def _health(self) -> tuple[int, dict[str, object]]:
        payload: dict[str, object] = {
            "status": "ok",
            "connections": 0,
            "uptime_s": round(time.monotonic() - self.server.started, 1),
            "version": version(),
        }
        try:
            payload.update(self.server.health())
        except Exception as exc:  # a broken health callback must answer, not hang the probe
            log.exception("metrics.health_failed", error=exc)
            return 500, {"status": "error", "error": type(exc).__name__}
        return (200 if payload["status"] == "ok" else 503), payload

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics.http", peer=self.client_address[0], request=format % args)


class MetricsServer:
    """/metrics and /healthz on a daemon thread. `start()` binds; `port` is the bound port (useful with 0)."""

    def __init__(
        self, metrics: Exposition, host: str, port: int, health: HealthFn | None = None, *, poll_interval_s: float = 0.5
    ) -> None:
        server_class = _HttpServer6 if ":" in host else _HttpServer
        self._httpd = server_class((host, port), _Handler, bind_and_activate=False)
        self._httpd.metrics = metrics
        self._httpd.health = health or dict
        self._httpd.started = time.monotonic()
        self._thread: threading.Thread | None = None
        self._poll_interval_s = poll_interval_s  # how soon stop() is noticed; serve_forever's own default

    @property
    def port(self) -> int:
        """The bound port."""
        port: int = self._httpd.server_address[1]
        return port

    def start(self) -> MetricsServer:
        """Bind, listen and serve on a daemon thread."""
        try:
            self._httpd.server_bind()
            self._httpd.server_activate()
        except OSError:
            self._httpd.server_close()
            raise
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(self._poll_interval_s,), name="kefu-metrics", daemon=True
        )
        self._thread.start()
        host, port = self._httpd.server_address[:2]
        log.event("metrics.listening", host=host, port=port)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=HTTP_TIMEOUT_S)
            self._thread = None
        self._httpd.server_close()
