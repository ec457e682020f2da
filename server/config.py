"""Server configuration: one frozen dataclass per TOML section, every key declared once.

Theory of operation: each field is declared with `setting(default, doc, ...)`, which stores its documentation,
unit, bounds and whether it may change on SIGHUP in the field's metadata. That declaration is the single
source for the example file (`render_example_toml`), `kefu serve --help`, `kefu check-config` and validation.

A value is looked up in four layers, later ones winning::

    embedded defaults  <-  TOML file (--config)  <-  KEFU_<SECTION>_<KEY> environment  <-  command-line flags

Each layer is parsed into ``{(section, key): value}`` with the value converted to the field's type and its
source remembered, so an error names the file, variable or flag it came from. Unknown sections and keys are
errors, never silently ignored: a misspelt limit must not leave a bank running on the default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import textwrap
import tomllib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import log

__all__ = [
    "ENV_PREFIX",
    "SECTIONS",
    "SUITE_NAMES",
    "ApiSection",
    "AuditSection",
    "Change",
    "Config",
    "ConfigError",
    "DeliverySection",
    "LimitsSection",
    "LogSection",
    "MetricsSection",
    "ServerSection",
    "ServiceSection",
    "Setting",
    "StorageSection",
    "WebSection",
    "WebhooksSection",
    "describe_settings",
    "env_var",
    "iter_settings",
    "load_config",
    "reloadable_fields",
    "render_example_toml",
    "render_toml",
]

ENV_PREFIX = "KEFU_"
CONFIG_ENV = "KEFU_CONFIG"
"""An environment variable naming the config file when --config is not given (handy in systemd units)."""

SUITE_NAMES = ("national", "international")
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_PORT = 65535
MAX_MESSAGE_BYTES = 1 << 20
"""The protocol's frame body limit (kefu.protocol.frames.MAX_BODY): no message can be larger."""
MAX_TICKET_LIFETIME_S = 86400
"""kefu.protocol.tickets.MAX_TICKET_LIFETIME_S: the handshake refuses longer ticket lifetimes."""


class ConfigError(Exception):
    """The configuration is invalid; the message names every problem with its source, section and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Setting:
    """What is declared about one key: documentation, unit, bounds and reloadability."""

    doc: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    reloadable: bool = False


def setting(
    default: Any,
    doc: str,
    *,
    unit: str = "",
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] = (),
    reloadable: bool = False,
) -> Any:
    """A dataclass field carrying its `Setting` in metadata."""
    spec = Setting(doc, unit, lo, hi, choices, reloadable)
    return field(default=default, metadata={"setting": spec})


# --- the sections ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerSection:
    """[server]: where to listen, where data lives, and the protocol's timing policy."""

    host: str = setting("127.0.0.1", "Address to listen on for clients; 0.0.0.0 or :: listens on all interfaces.")
    port: int = setting(7420, "TCP port for clients; 0 picks a free port (tests).", lo=0, hi=MAX_PORT)
    data_dir: str = setting(
        "./data", "Directory of the message store, keys and archives; created if missing (keys/ is 0700)."
    )
    suites: tuple[str, ...] = setting(
        SUITE_NAMES,
        "Cipher suites accepted, in server preference order: national (SM2/SM3/SM4, RFC 8998) and/or "
        "international (X25519/Ed25519/AES-128-GCM).",
        choices=SUITE_NAMES,
    )
    max_connections: int = setting(200_000, "Connections held at once; further connections are refused.", lo=1)
    workers: int = setting(
        -1,
        "Gateway processes holding the connections (accept, handshakes, encryption, delivery windows), beside one"
        " core process (sequencing, the write-ahead log, the desk) and a small supervisor. -1: one per usable core;"
        " 0: everything in one process (tests, tiny deployments).",
        lo=-1, hi=256,
    )  # fmt: skip
    handshake_timeout_s: float = setting(
        10.0, "Time a new connection has to complete its handshake before it is closed.", unit="seconds", lo=0.1
    )
    # Clients refuse a negotiated keepalive outside 5..300 s (protocol MIN/MAX_KEEPALIVE_MS), so the server's bounds
    # must stay inside that range.
    keepalive_min_s: int = setting(5, "Shortest keepalive a client may ask for.", unit="seconds", lo=5, hi=300)
    keepalive_max_s: int = setting(300, "Longest keepalive a client may ask for.", unit="seconds", lo=5, hi=300)
    ticket_lifetime_s: int = setting(
        600, "Lifetime of session resumption tickets.", unit="seconds", lo=1, hi=MAX_TICKET_LIFETIME_S
    )
    max_message_bytes: int = setting(
        65536, "Largest message body accepted in a SEND.", unit="bytes", lo=1, hi=MAX_MESSAGE_BYTES
    )
    drain_timeout_s: float = setting(
        10.0, "On SIGTERM, how long to wait after GOAWAY for clients to leave before closing.", unit="seconds", lo=0
    )
    goaway_reconnect_delay_ms: int = setting(
        1000, "Delay before reconnecting that GOAWAY asks of clients.", unit="milliseconds", lo=0
    )
    goaway_backoff_initial_ms: int = setting(
        500, "First reconnect backoff GOAWAY asks of clients if reconnecting fails.", unit="milliseconds", lo=1
    )
    goaway_backoff_max_ms: int = setting(
        30_000, "Largest reconnect backoff GOAWAY asks of clients.", unit="milliseconds", lo=1
    )
    goaway_jitter_permille: int = setting(
        200, "Random jitter clients add to reconnect delays, so they do not return at once.", unit="permille",
        lo=0, hi=1000,
    )  # fmt: skip

    def suite_ids(self) -> tuple[Any, ...]:
        """The suites as kefu.protocol.crypto.Suite members, in preference order."""
        from kefu.protocol.crypto import Suite  # noqa: PLC0415 - keeps `kefu --help` free of the crypto import

        return tuple(Suite[name.upper()] for name in self.suites)


@dataclass(frozen=True, slots=True)
class MetricsSection:
    """[metrics]: the Prometheus and health endpoint."""

    enabled: bool = setting(True, "Serve /metrics and /healthz over HTTP.")
    host: str = setting("127.0.0.1", "Address of the metrics HTTP server; keep it off public interfaces.")
    port: int = setting(7421, "Port of the metrics HTTP server; 0 picks a free port.", lo=0, hi=MAX_PORT)


@dataclass(frozen=True, slots=True)
class LimitsSection:
    """[limits]: rate limits (token buckets) and buffer bounds. All of them may change on SIGHUP."""

    conn_frames_per_s: int = setting(500, "Frames one connection may send.", unit="frames/s", lo=1, reloadable=True)
    conn_frames_burst: int = setting(1000, "Burst of frames one connection may send.", unit="frames", lo=1,
                                     reloadable=True)  # fmt: skip
    conn_bytes_per_s: int = setting(2_000_000, "Bytes one connection may send.", unit="bytes/s", lo=1,
                                    reloadable=True)  # fmt: skip
    conn_bytes_burst: int = setting(4_000_000, "Burst of bytes one connection may send.", unit="bytes", lo=1,
                                    reloadable=True)  # fmt: skip
    app_frames_per_s: int = setting(100_000, "Frames all connections of one app may send together.",
                                    unit="frames/s", lo=1, reloadable=True)  # fmt: skip
    app_frames_burst: int = setting(200_000, "Burst of frames all connections of one app may send together.",
                                    unit="frames", lo=1, reloadable=True)  # fmt: skip
    new_conns_per_ip_per_s: int = setting(500, "New connections accepted from one IP address.", unit="connections/s",
                                          lo=1, reloadable=True)  # fmt: skip
    new_conns_per_ip_burst: int = setting(2000, "Burst of new connections accepted from one IP address.",
                                          unit="connections", lo=1, reloadable=True)  # fmt: skip
    write_high_water: int = setting(
        262_144, "Bytes queued for one slow reader at which the server stops reading from it and delivering to it.",
        unit="bytes", lo=1, reloadable=True,
    )  # fmt: skip
    write_low_water: int = setting(
        65_536, "Bytes queued for one reader below which reading and delivering resume.", unit="bytes", lo=0,
        reloadable=True,
    )  # fmt: skip
    total_write_buffer_bytes: int = setting(
        1 << 30, "Bytes queued for all readers together; past it the connections with the most queued are closed.",
        unit="bytes", lo=1, reloadable=True,
    )  # fmt: skip
    max_handshakes_in_progress: int = setting(
        20_000, "Handshakes running at once; past it new connections are refused until some finish.", lo=1,
        reloadable=True,
    )  # fmt: skip
    handshake_cpu_share: float = setting(
        0.25,
        "Share of the host's usable cores that handshakes may use, split evenly over the gateways. What a handshake"
        " costs is measured when each gateway starts; one past the budget is refused before any public-key work with"
        " a GOAWAY (OVERLOADED) that says when to retry, and the address's connections until then are dropped unread,"
        " so that established sessions keep their latency during a flood. Under contention one address gets at most"
        " a tenth of the budget, and addresses without a recent full handshake keep a reserve of it. 0: no admission"
        " control.",
        unit="CPU seconds/s", lo=0, hi=1, reloadable=True,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeliverySection:
    """[delivery]: group commit, acknowledgement windows and redelivery."""

    commit_window_ms: float = setting(
        2.0,
        "Group commit: the shortest time between the starts of two fsync'd transactions; a SEND waits at most this"
        " long for its transaction to start (after the one running), and a SEND to an idle store not at all.",
        unit="milliseconds", lo=0,
    )  # fmt: skip
    cursor_save_delay_ms: int = setting(
        0,
        "The longest a user's acknowledged position in a conversation waits before it is logged (later changes"
        " meanwhile share that log entry); 0: with the next group commit. After a crash, what was acknowledged in"
        " this time (and in the commit in flight) is delivered again.",
        unit="milliseconds", lo=0,
    )  # fmt: skip
    max_batch: int = setting(4096, "Most writes committed in one transaction.", lo=1)
    commit_thread_nice: int = setting(
        -5,
        "Nice value of the group-commit thread relative to the server's: negative runs it ahead of the event loop"
        " when both are ready, so a finished fsync is acknowledged without waiting behind the loop's work. Lowering it"
        " needs CAP_SYS_NICE or an RLIMIT_NICE allowance (kefu.service sets LimitNICE=-5); without one the thread"
        " keeps the server's value and a warning is logged. 0 leaves it alone. Linux only.",
        lo=-20, hi=19,
    )  # fmt: skip
    inflight_window: int = setting(256, "Messages delivered to one connection and not yet acknowledged.", lo=1)
    retry_initial_ms: int = setting(
        1000, "Delay before an unacknowledged DELIVER is first sent again; it doubles on each retry.",
        unit="milliseconds", lo=1,
    )  # fmt: skip
    retry_max_ms: int = setting(30_000, "Largest delay between redeliveries.", unit="milliseconds", lo=1)
    sync_max_limit: int = setting(1000, "Most messages one SYNC returns.", lo=1)


@dataclass(frozen=True, slots=True)
class StorageSection:
    """[storage]: the LMDB store, duplicate suppression and retention."""

    map_size_mb: int = setting(64, "Initial size of the LMDB memory map; it grows as needed.", unit="MiB", lo=1)
    max_map_size_gb: int = setting(1024, "Size the LMDB map may grow to.", unit="GiB", lo=1)
    idempotency_window_s: int = setting(
        604_800, "How long a client message id is remembered, so a repeated SEND is not stored twice.",
        unit="seconds", lo=1,
    )  # fmt: skip
    retention_max_age_days: int = setting(
        0, "Messages older than this are moved to the archive; 0 keeps them forever.", unit="days", lo=0
    )
    retention_max_gb: int = setting(
        0, "When the store exceeds this size, the oldest messages are archived; 0 means no limit.", unit="GiB", lo=0
    )
    archive_dir: str = setting("archive", "Where archived messages go; a relative path is under data_dir.")
    sweep_interval_s: int = setting(3600, "How often retention is applied.", unit="seconds", lo=1)
    log_segment_mb: int = setting(
        16, "Size of a write-ahead log segment file (preallocated, recycled once indexed); a message, with its"
        " service records, must fit in one.", unit="MiB", lo=4, hi=1024,
    )  # fmt: skip
    index_interval_ms: int = setting(
        2000,
        "How often the LMDB tables are brought up to date from the write-ahead log, in one transaction: longer"
        " writes fewer B-tree pages per message and holds more in memory (and to replay after a crash).",
        unit="milliseconds", lo=10, hi=600_000,
    )  # fmt: skip
    index_batch_mb: int = setting(
        16, "Records that start an indexing transaction before the interval is over (and the most one holds).",
        unit="MiB", lo=1,
    )  # fmt: skip
    max_unindexed_mb: int = setting(
        256, "Records logged but not yet indexed that memory may hold; past it (indexing is failing: the map at"
        " max_map_size_gb, a disk error) new SENDs get STORAGE_UNAVAILABLE until indexing catches up.",
        unit="MiB", lo=1,
    )  # fmt: skip
    seal_cipher: str = setting(
        "sm4-gcm", "Cipher of the data key a new data directory gets (data_dir/keys/data-1.key) and of the key"
        " `kefu data-key rotate` adds; every stored record is sealed (encrypted and authenticated) under the newest"
        " data key. Existing keys keep their cipher.", choices=("sm4-gcm", "aes-gcm"),
    )  # fmt: skip
    check_at_open: str = setting(
        "full", "What the server checks of the store's file before it maps it at start: \"full\" reads every page"
        " (about 16,000 pages/s: 0.8 s for 100,000 messages, 12 s per GiB of file; a store whose tables are"
        " damaged is salvaged: its intact records are copied to a new file and the damaged one kept as"
        " data_dir/damaged-<UTC time>/data.mdb), \"tops\" only the tops of its B-trees (for very large stores;"
        " damage below them can then make LMDB abort the process that reads it).",
        choices=("full", "tops"),
    )  # fmt: skip
    seal: bool = setting(
        True, "Seal stored records at rest. false exists only to measure what sealing costs (bench/): it is fixed"
        " when the store is created, and a store is refused if opened with the other value.",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LogSection:
    """[log]: structured logging to stderr."""

    level: str = setting("info", "Lowest level logged.", choices=LOG_LEVELS, reloadable=True)
    json: bool = setting(False, "Write JSON lines instead of `ts level event key=value` text.")


@dataclass(frozen=True, slots=True)
class ServiceSection:
    """[service]: the customer-service layer (directory, routing rules, sentiment, AI plugins)."""

    directory: str = setting(
        "", "The service directory (tenants, groups, agents, supervisors, plugins; TOML). Empty: one default "
        "group 'general' that every agent serves. Relative paths are under data_dir. Re-read on SIGHUP.",
    )  # fmt: skip
    rule_instructions: int = setting(
        1_000_000, "Lua VM instructions one routing-rule evaluation may run.", lo=1000, reloadable=True
    )
    rule_memory_mb: int = setting(16, "Memory one routing-rule evaluation may allocate.", unit="MiB", lo=1)
    rule_timeout_ms: int = setting(
        50, "Wall-clock time one routing-rule evaluation may take.", unit="milliseconds", lo=1, reloadable=True
    )
    sentiment: bool = setting(True, "Score every visitor message with SnowNLP in a worker process.")
    sentiment_wait_ms: int = setting(
        300, "How long routing waits for the first message's sentiment before deciding without it.",
        unit="milliseconds", lo=0, reloadable=True,
    )  # fmt: skip
    queue_tick_ms: int = setting(
        500, "How often queue overflow timeouts are checked.", unit="milliseconds", lo=10, reloadable=True
    )
    plugin_history: int = setting(20, "Recent messages given to AI plugins as context.", lo=1, hi=200)


@dataclass(frozen=True, slots=True)
class AuditSection:
    """[audit]: the tamper-evident audit trail (who did what; `kefu audit verify`, `kefu audit export`)."""

    anchor_interval_s: int = setting(
        300, "How often the server logs the audit chain's head (audit.anchor, at info; also at stop). Keep these"
        " lines where the store cannot rewrite them (a log collector): `kefu audit verify --anchor SEQ:HASH` checks"
        " the trail against them, which is what catches a rewrite of the whole chain after an anchor.",
        unit="seconds", lo=1, hi=86400,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class WebSection:
    """[web]: the web port (the kefu protocol over WebSocket, the console, the widget, sign-in; every gateway)."""

    enabled: bool = setting(True, "Serve the web port: /ws (the kefu protocol in WebSocket messages, for browsers),"
                            " the agent console, the visitor widget, the JS client and staff sign-in.")  # fmt: skip
    host: str = setting("127.0.0.1", "Address of the web port; 0.0.0.0 or :: listens on all interfaces (put it behind"
                        " a TLS-terminating proxy: browsers need wss:// on an https:// page).")  # fmt: skip
    port: int = setting(7422, "Port of the web port; 0 picks a free port (tests).", lo=0, hi=MAX_PORT)
    allowed_origins: tuple[str, ...] = setting(
        (),
        "Origins (scheme://host[:port]) of other sites' pages that may use the web port: the bank's pages that embed"
        " the widget. A browser request from any other page is refused with 403 before the WebSocket upgrade; the"
        " port's own pages (same host and port) and clients that send no Origin are always allowed.",
    )
    request_timeout_s: float = setting(
        15.0, "Time an HTTP connection of the web port has to send a complete request (and an idle keep-alive"
        " connection is kept) before it is closed: until its upgrade a connection holds a descriptor outside"
        " [server] max_connections. A WebSocket is not subject to it once upgraded.", unit="seconds", lo=1, hi=3600,
    )  # fmt: skip
    session_ttl_s: int = setting(
        28800, "How long the session credential of a staff sign-in (POST /auth/signin) works: the protocol handshake"
        " and the HTTP API accept it until then, or until sign-out. Sessions it opened stay up until they close.",
        unit="seconds", lo=60, hi=7 * 86400,
    )  # fmt: skip
    visitor_ttl_s: int = setting(
        86400, "How long a visitor identity of the widget (POST /auth/visitor) works: the widget reconnects with it"
        " and shows the visitor's history until then.", unit="seconds", lo=60, hi=30 * 86400,
    )  # fmt: skip
    visitor_tenants: tuple[str, ...] = setting(
        (), "Tenants whose pages may get visitor identities from POST /auth/visitor; empty: every tenant that has a"
        " service group in the service directory (any tenant when the directory configures no group).",
    )  # fmt: skip
    signin_per_minute: int = setting(
        10, "Staff sign-in attempts one client address may make per minute (in a burst of as many); past it 429 with"
        " Retry-After.", lo=1, hi=10000,
    )  # fmt: skip
    visitors_per_minute: int = setting(
        30, "Visitor identities one client address may get per minute (in a burst of as many); past it 429 with"
        " Retry-After.", lo=1, hi=10000,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class WebhooksSection:
    """[webhooks]: committed events POSTed to the URLs bank systems subscribed (`kefu webhook add`; spec 18)."""

    enabled: bool = setting(True, "Deliver webhook events to the subscriptions in the store (kefu webhook list).")
    max_attempts: int = setting(
        12, "Attempts per event before it is given up (a dead letter, counted; the cursor moves past it).", lo=1,
        hi=1000,
    )  # fmt: skip
    max_age_s: int = setting(
        86400, "An event that failed and is older than this is given up (a dead letter) instead of tried again.",
        unit="seconds", lo=0,
    )  # fmt: skip
    backoff_initial_ms: int = setting(
        1000, "Wait after an event's first failed attempt; it doubles after each failure, with jitter (half to all"
        " of it).", unit="milliseconds", lo=1,
    )  # fmt: skip
    backoff_max_ms: int = setting(300_000, "Longest wait between two attempts.", unit="milliseconds", lo=1)
    timeout_ms: int = setting(
        10_000, "How long one attempt may take (connect, send, answer) before it counts as failed.",
        unit="milliseconds", lo=10,
    )  # fmt: skip
    concurrency: int = setting(
        8, "Requests in flight per subscription (each to a different conversation: one conversation's events go one"
        " at a time, in order).", lo=1, hi=256,
    )  # fmt: skip
    cursor_save_ms: int = setting(
        1000, "How often each subscription's cursor is written (a crash delivers again at most what was delivered in"
        " this last while).", unit="milliseconds", lo=10, hi=60_000,
    )  # fmt: skip
    max_backlog: int = setting(
        100_000, "Events a subscription may have queued in memory; new ones beyond are dead letters (a receiver gone"
        " for long must not exhaust the core's memory).", lo=1,
    )  # fmt: skip
    allowed_hosts: tuple[str, ...] = setting(
        (), "Hosts (names or addresses, as the URL writes them) a new subscription may deliver to; empty: any. Set it"
        " when integrations subscribe over the HTTP API, so that no app can have the server POST to an internal"
        " address. Checked when a subscription is made.", reloadable=True,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ApiSection:
    """[api]: the HTTP integration API for bank systems (spec 17, spec/openapi.json; served by the core process)."""

    enabled: bool = setting(True, "Serve the HTTP integration API (JSON over HTTP for bank systems, the console's"
                            " wall figures).")  # fmt: skip
    host: str = setting("127.0.0.1", "Address of the API; put it behind a TLS-terminating proxy before exposing it"
                        " (bodies are not encrypted by kefu on this port).")  # fmt: skip
    port: int = setting(7423, "Port of the API; 0 picks a free port (tests).", lo=0, hi=MAX_PORT)
    cors_origins: tuple[str, ...] = setting(
        (), "Origins (scheme://host:port) whose pages may call the API from a browser, besides the web port's own"
        " (the console's, always allowed).",
        reloadable=True,
    )  # fmt: skip
    admin_apps: tuple[str, ...] = setting(
        (), "Apps that may call the admin routes (apps, server keys, sessions) with signed requests.", reloadable=True
    )
    replay_window_s: int = setting(
        300, "How far a signed request's timestamp may be from the server's clock; its nonce is remembered twice as"
        " long.", unit="seconds", lo=5, hi=3600, reloadable=True,
    )  # fmt: skip
    max_body_bytes: int = setting(1 << 20, "Largest request body the API reads.", unit="bytes", lo=1024, hi=64 << 20)
    max_connections: int = setting(
        1024, "Connections the API holds at once (it shares the core process's file descriptors with the store and"
        " the links): past it a new connection is answered 503 and closed.", lo=1, hi=1_000_000,
    )  # fmt: skip


SECTIONS: dict[str, type] = {
    "server": ServerSection,
    "metrics": MetricsSection,
    "limits": LimitsSection,
    "delivery": DeliverySection,
    "storage": StorageSection,
    "log": LogSection,
    "service": ServiceSection,
    "audit": AuditSection,
    "api": ApiSection,
    "web": WebSection,
    "webhooks": WebhooksSection,
}


@dataclass(frozen=True, slots=True)
class Change:
    """One setting that differs between two configurations."""

    name: str
    """Dotted name, e.g. "limits.conn_frames_per_s"."""
    old: object
    new: object


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. `Config()` is the embedded defaults."""

    server: ServerSection = field(default_factory=ServerSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    storage: StorageSection = field(default_factory=StorageSection)
    log: LogSection = field(default_factory=LogSection)
    service: ServiceSection = field(default_factory=ServiceSection)
    audit: AuditSection = field(default_factory=AuditSection)
    api: ApiSection = field(default_factory=ApiSection)
    web: WebSection = field(default_factory=WebSection)
    webhooks: WebhooksSection = field(default_factory=WebhooksSection)

    @property
    def data_path(self) -> Path:
        """server.data_dir as a Path."""
        return Path(self.server.data_dir)

    @property
    def store_path(self) -> Path:
        """The store's directory (the LMDB environment, and the write-ahead log in log/): data_dir/store."""
        return self.data_path / "store"

    @property
    def keys_path(self) -> Path:
        """Where the server's long-term keys live: data_dir/keys."""
        return self.data_path / "keys"

    @property
    def directory_path(self) -> Path | None:
        """service.directory resolved against data_dir, or None for the embedded default."""
        return self.data_path / self.service.directory if self.service.directory else None

    @property
    def archive_path(self) -> Path:
        """storage.archive_dir, resolved against data_dir when relative."""
        return self.data_path / self.storage.archive_dir

    def value(self, name: str) -> object:
        """The value of a dotted setting name."""
        section, key = name.split(".", 1)
        return getattr(getattr(self, section), key)

    def diff(self, other: Config) -> list[Change]:
        """Every setting whose value differs in `other`."""
        names = (f"{s}.{k}" for s, k, _, _ in iter_settings())
        return [Change(n, self.value(n), other.value(n)) for n in names if self.value(n) != other.value(n)]

    def reload_changes(self, new: Config) -> tuple[list[Change], list[Change]]:
        """(applied, ignored): the differences `reload_from(new)` takes, and those needing a restart."""
        reloadable = reloadable_fields()
        changes = self.diff(new)
        return [c for c in changes if c.name in reloadable], [c for c in changes if c.name not in reloadable]

    def reload_from(self, new: Config, *, quiet: bool = False) -> Config:
        """This config with the reloadable values of `new` (SIGHUP). Logs what changed and what was ignored, unless
        `quiet` (a worker process: its supervisor logs them once for the whole server)."""
        applied, ignored = self.reload_changes(new)
        sections: dict[str, dict[str, object]] = {}
        for change in applied:
            section, key = change.name.split(".", 1)
            sections.setdefault(section, {})[key] = change.new
        result = dataclasses.replace(
            self, **{s: dataclasses.replace(getattr(self, s), **kv) for s, kv in sections.items()}
        )
        if quiet:
            return result
        for change in applied:
            log.event("config.reloaded", setting=change.name, old=change.old, new=change.new)
        for change in ignored:
            log.warning("config.reload_ignored", setting=change.name, reason="needs a restart")
        return result


# --- introspection --------------------------------------------------------------------------------------


def iter_settings() -> Iterator[tuple[str, str, type, dataclasses.Field[Any]]]:
    """(section, key, type, field) for every setting, in declaration order."""
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield section, f.name, hints[f.name], f


def setting_of(f: dataclasses.Field[Any]) -> Setting:
    """The declared `Setting` of a field."""
    spec: Setting = f.metadata["setting"]
    return spec


def env_var(section: str, key: str) -> str:
    """The environment variable that overrides a setting: KEFU_SERVER_PORT for server.port."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def reloadable_fields() -> frozenset[str]:
    """Dotted names of the settings a running server takes from a reloaded config (SIGHUP)."""
    return frozenset(f"{s}.{k}" for s, k, _, f in iter_settings() if setting_of(f).reloadable)


def _type_name(tp: type) -> str:
    return {int: "integer", float: "number", bool: "boolean", str: "string"}.get(tp, "list of strings")


def describe_settings() -> str:
    """Plain-text reference of every setting (for `kefu serve --help`)."""
    lines = []
    for section, cls in SECTIONS.items():
        lines += [f"[{section}]  {(cls.__doc__ or '').split(': ', 1)[-1]}"]
        for _, key, tp, f in (s for s in iter_settings() if s[0] == section):
            spec = setting_of(f)
            lines.append(f"  {key} ({_type_name(tp)}, default {_toml_value(f.default)}, env {env_var(section, key)})")
            lines += textwrap.wrap(spec.doc + _facts(spec), 100, initial_indent=" " * 6, subsequent_indent=" " * 6)
        lines.append("")
    return "\n".join(lines)


def _facts(spec: Setting) -> str:
    facts = []
    if spec.unit:
        facts.append(f"Unit: {spec.unit}.")
    if spec.choices:
        facts.append(f"Choices: {', '.join(spec.choices)}.")
    if spec.reloadable:
        facts.append("Reloadable on SIGHUP.")
    return (" " + " ".join(facts)) if facts else ""


# --- rendering ------------------------------------------------------------------------------------------

_EXAMPLE_HEADER = """\
# kefu server configuration: every key, with its default.
#
# Generated by kefu.server.config.render_example_toml(); do not edit by hand
# (tests/server/test_config.py checks that this file matches the code).
#
# Precedence, later wins: built-in defaults < this file (kefu serve --config PATH)
#   < environment KEFU_<SECTION>_<KEY> (e.g. KEFU_SERVER_PORT=7500; lists comma-separated)
#   < command-line flags (--host, --port, --data-dir, --metrics-port, --log-level, --log-json).
# Unknown keys are errors. `kefu check-config` validates a file and prints the effective configuration.
"""


def _toml_value(value: object) -> str:
    match value:
        case bool():
            return "true" if value else "false"
        case int() | float():
            return repr(value)
        case str():
            return json.dumps(value, ensure_ascii=False)
        case tuple() | list():
            return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def render_toml(config: Config, *, comments: bool = True) -> str:
    """`config` as TOML; with comments, each key is preceded by its documentation, unit, default and env var."""
    out = [_EXAMPLE_HEADER] if comments else []
    for section, cls in SECTIONS.items():
        if comments:
            out.append(f"# {cls.__doc__}")
        out.append(f"[{section}]")
        for _, key, _, f in (s for s in iter_settings() if s[0] == section):
            if comments:
                spec = setting_of(f)
                out += textwrap.wrap(spec.doc + _facts(spec), 100, initial_indent="# ", subsequent_indent="# ")
                out.append(f"# Default: {_toml_value(f.default)}. Environment: {env_var(section, key)}.")
            out.append(f"{key} = {_toml_value(config.value(f'{section}.{key}'))}")
        out.append("")
    return "\n".join(out)


def render_example_toml() -> str:
    """The example configuration file: every key set to its default, fully commented."""
    return render_toml(Config())


# --- loading --------------------------------------------------------------------------------------------

_Layer = dict[tuple[str, str], tuple[object, str]]
"""(section, key) -> (typed value, where it came from)."""


def _types() -> dict[tuple[str, str], type]:
    return {(s, k): tp for s, k, tp, _ in iter_settings()}


def _check_type(value: object, tp: type) -> object:
    """A TOML value as the field's type, or raise ValueError."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected {_type_name(tp)}, got {value!r}")


def _parse_text(text: str, tp: type) -> object:
    """An environment or command-line string as the field's type, or raise ValueError."""
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true"):
            return True
        if lowered in ("0", "false"):
            return False
        raise ValueError(f"expected 1/0/true/false, got {text!r}")
    if tp is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if tp is str:
        return text
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _file_layer(path: Path, problems: list[str]) -> _Layer:
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
        return {}
    types, layer = _types(), {}
    for section, table in doc.items():
        if section not in SECTIONS:
            problems.append(f"{path}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
            continue
        if not isinstance(table, dict):
            problems.append(f"{path}: {section} must be a [section] table")
            continue
        for key, raw in table.items():
            where = f"{path}: [{section}] {key}"
            if (section, key) not in types:
                known = [k for s, k in types if s == section]
                hint = difflib.get_close_matches(key, known, n=1)
                problems.append(
                    f"{where}: unknown key in [{section}]" + (f" (did you mean {hint[0]}?)" if hint else "")
                )
                continue
            try:
                layer[(section, key)] = (_check_type(raw, types[(section, key)]), where)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
    return layer


def _env_layer(env: Mapping[str, str], problems: list[str]) -> _Layer:
    types, layer = _types(), {}
    by_var = {env_var(s, k): (s, k) for s, k in types}
    prefixes = tuple(f"{ENV_PREFIX}{s.upper()}_" for s in SECTIONS)
    for var, text in env.items():
        if var in by_var:
            section, key = by_var[var]
            where = f"environment {var} ([{section}] {key})"
            try:
                layer[(section, key)] = (_parse_text(text, types[(section, key)]), where)
            except ValueError as exc:
                problems.append(f"{where}: {exc}")
        elif var.startswith(prefixes):
            problems.append(f"environment {var}: no such setting")
    return layer


def _override_layer(overrides: Mapping[str, object], problems: list[str]) -> _Layer:
    types, layer = _types(), {}
    for name, value in overrides.items():
        section, _, key = name.partition(".")
        where = f"command line ([{section}] {key})"
        if (section, key) not in types:
            problems.append(f"command line: no such setting {name!r}")
            continue
        tp = types[(section, key)]
        try:
            typed = _parse_text(value, tp) if isinstance(value, str) else _check_type(value, tp)
            layer[(section, key)] = (typed, where)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return layer


def _check_value(value: object, spec: Setting) -> str | None:
    """Why `value` is out of bounds for `spec`, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.lo is not None and value < spec.lo:
            return f"must be at least {spec.lo:g}" if spec.hi is None else f"must be in {spec.lo:g}..{spec.hi:g}"
        if spec.hi is not None and value > spec.hi:
            return f"must be at most {spec.hi:g}" if spec.lo is None else f"must be in {spec.lo:g}..{spec.hi:g}"
    if spec.choices:
        items = value if isinstance(value, tuple) else (value,)
        bad = [v for v in items if v not in spec.choices]
        if bad:
            return f"{', '.join(map(repr, bad))} not one of: {', '.join(spec.choices)}"
        if isinstance(value, tuple) and (not value or len(set(value)) != len(value)):
            return "must list at least one entry, each once"
    return None


_ORDERED = (
    ("server.keepalive_min_s", "server.keepalive_max_s"),
    ("server.goaway_backoff_initial_ms", "server.goaway_backoff_max_ms"),
    ("delivery.retry_initial_ms", "delivery.retry_max_ms"),
    ("limits.write_low_water", "limits.write_high_water"),
    ("limits.write_high_water", "limits.total_write_buffer_bytes"),
)
"""Pairs of settings where the first may not exceed the second."""


def _cross_checks(config: Config, where: Mapping[str, str]) -> list[str]:
    problems = []
    for low, high in _ORDERED:
        lo_v, hi_v = config.value(low), config.value(high)
        assert isinstance(lo_v, int | float) and isinstance(hi_v, int | float)
        if lo_v > hi_v:
            problems.append(f"{where.get(low) or where.get(high) or low}: {low} ({lo_v}) exceeds {high} ({hi_v})")
    s, m = config.server, config.metrics
    if m.enabled and s.port and s.port == m.port and s.host == m.host:
        where_port = where.get("metrics.port") or where.get("server.port") or "metrics.port"
        problems.append(f"{where_port}: server.port and metrics.port are both {s.port} on {s.host}")
    w = config.web
    if w.enabled and w.port:
        others = (("server.port", s.port, s.host), ("metrics.port", m.port if m.enabled else 0, m.host))
        for other, port, host in others:
            if port == w.port and host == w.host:
                at = where.get("web.port") or where.get(other) or "web.port"
                problems.append(f"{at}: web.port and {other} are both {w.port} on {w.host}")
    a, w = config.api, config.web
    if a.enabled and a.port:
        taken = {"server.port": (s.host, s.port), "metrics.port": (m.host, m.port if m.enabled else 0),
                 "web.port": (w.host, w.port if w.enabled else 0)}  # fmt: skip
        for other, address in taken.items():
            if address == (a.host, a.port):
                at = where.get("api.port") or where.get(other) or "api.port"
                problems.append(f"{at}: api.port and {other} are both {a.port} on {a.host}")
    if config.storage.map_size_mb > config.storage.max_map_size_gb * 1024:
        problems.append(f"{where.get('storage.map_size_mb', 'storage.map_size_mb')}: exceeds storage.max_map_size_gb")
    return problems


def load_config(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Config:
    """Defaults <- the TOML file at `path` <- `env` (default os.environ) <- `overrides` ({"server.port": 7500}).

    `path` None means $KEFU_CONFIG if set, else no file. Raises ConfigError listing every problem.
    """
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    problems: list[str] = []
    merged: _Layer = {}
    if path is not None:
        merged |= _file_layer(Path(path), problems)
    merged |= _env_layer(env, problems)
    merged |= _override_layer(overrides or {}, problems)
    specs = {(s, k): setting_of(f) for s, k, _, f in iter_settings()}
    for (section, key), (value, where) in merged.items():
        reason = _check_value(value, specs[(section, key)])
        if reason:
            problems.append(f"{where}: {reason}")
    if problems:
        raise ConfigError(problems)
    values: dict[str, dict[str, object]] = {s: {} for s in SECTIONS}
    for (section, key), (value, _) in merged.items():
        values[section][key] = value
    config = Config(**{s: SECTIONS[s](**kv) for s, kv in values.items()})
    problems = _cross_checks(config, {f"{s}.{k}": w for (s, k), (_, w) in merged.items()})
    if problems:
        raise ConfigError(problems)
    return config
