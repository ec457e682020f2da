"""A running server's state, read from its metrics endpoint (/healthz and /metrics)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import AdminError

__all__ = ["Status", "parse_exposition", "status"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Status:
    """What `status` found: the endpoint, whether the server is healthy, /healthz's payload, a summary of /metrics."""

    base: str
    healthy: bool
    health: dict[str, Any]
    summary: list[str]


def parse_exposition(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in Prometheus text exposition format."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = dict(_LABEL.findall(m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def _fetch(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - an http URL we built
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:  # 503 while draining still carries the JSON payload
        return exc.code, exc.read()


def summarise(samples: list[tuple[str, dict[str, str], float]]) -> list[str]:
    """A few lines an operator reads first: connections, handshakes, frames, latency, errors, queues, loop lag,
    stored values found damaged (summed over every worker process)."""

    def total(name: str, pred: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
        return sum(v for n, labels, v in samples if n == name and pred(labels))

    def by(name: str, label: str) -> str:
        values: dict[str, float] = {}
        for n, labels, v in samples:
            if n == name and v:
                values[labels.get(label, "")] = values.get(labels.get(label, ""), 0) + v
        return ", ".join(f"{k} {v:g}" for k, v in sorted(values.items())) or "none"

    def worst(name: str) -> float:
        return max((v for n, _, v in samples if n == name), default=0.0)

    count = total("kefu_send_ack_latency_seconds_count")
    ack = f"{1000 * total('kefu_send_ack_latency_seconds_sum') / count:.2f} ms" if count else "n/a"
    return [
        f"connections: {total('kefu_connections'):g} ({by('kefu_connections', 'state')})",
        f"handshakes: {by('kefu_handshakes_total', 'result')}",
        f"frames in/out: {total('kefu_frames_total', lambda x: x.get('direction') == 'in'):g}"
        f" / {total('kefu_frames_total', lambda x: x.get('direction') == 'out'):g}",
        f"mean SEND->SEND_ACK: {ack}; retries: {total('kefu_retries_total'):g}",
        f"errors: {by('kefu_errors_total', 'code')}",
        f"commit queue: {total('kefu_commit_queue_writes'):g} writes;"
        f" outbound buffered: {total('kefu_outbound_buffered_bytes'):g} bytes",
        f"event loop lag: {1000 * worst('kefu_event_loop_lag_last_seconds'):.1f} ms",
        f"damaged records found on read: {by('kefu_storage_damaged_records_total', 'table')}",
    ]


def status(config: Any, timeout: float) -> Status:
    """Ask the server on the configured metrics port how it is."""
    if not config.metrics.enabled:
        raise AdminError("status reads the metrics endpoint, and [metrics] enabled is false")
    host = config.metrics.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - mapping a wildcard to loopback
    base = f"http://[{host}]:{config.metrics.port}" if ":" in host else f"http://{host}:{config.metrics.port}"
    try:
        code, body = _fetch(base + "/healthz", timeout)
        health = json.loads(body)
        _, metrics = _fetch(base + "/metrics", timeout)
    except (OSError, ValueError) as exc:
        raise AdminError(f"no answer from {base}: {exc}") from None
    summary = summarise(parse_exposition(metrics.decode("utf-8", "replace")))
    return Status(base, code == 200, health, [*summary, marked(config)])


MARKS_SHOWN = 10
"""Conversations the status line names (kefu verify lists every one)."""


def marked(config: Any) -> str:
    """The line about the damage marks the server left in the store (``meta`` "damaged"): which conversations have
    records found damaged on read (seq 0: the conversation record, or a page of it LMDB could not read)."""
    try:
        from ..wiring import open_store  # noqa: PLC0415 - lmdb and the desk load only here

        store = open_store(config, readonly=True)
        try:
            marks = store.damage_marks()
        finally:
            store.close()
    except Exception as exc:  # a status line must not fail the command: say why it is missing
        return f"conversations marked damaged: not read ({type(exc).__name__}: {exc})"
    if not marks:
        return "conversations marked damaged: none"
    shown = "; ".join(
        f"{conv} (seqs {', '.join(map(str, seqs[:5]))}{', ...' if len(seqs) > 5 else ''})"
        for conv, seqs in sorted(marks.items())[:MARKS_SHOWN]
    )
    more = f"; and {len(marks) - MARKS_SHOWN} more" if len(marks) > MARKS_SHOWN else ""
    return f"conversations marked damaged: {len(marks)}: {shown}{more} (kefu verify checks them)"
