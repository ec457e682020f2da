"""kefu.server.metrics: series on a private registry, and the /metrics + /healthz endpoint on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import prometheus_client
import pytest

from kefu.protocol.codes import ErrorCode
from kefu.protocol.frames import FrameTally, FrameType
from kefu.server.metrics import AUTH_FAILURE_REASONS, Metrics, MetricsServer, merge_expositions
from kefu.server.service.figures import FIRST_ANSWER_BUCKETS, DeskFigures, GroupFigures

TIMEOUT = 5.0


def sample(m: Metrics, name: str, **labels: str) -> float:
    value = m.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_own_registry_not_the_global_one() -> None:
    a, b = Metrics(process=False), Metrics(process=False)  # two instances: no duplicate-registration error
    a.bytes_in(10)
    assert sample(a, "kefu_bytes_total", direction="in") == 10
    assert sample(b, "kefu_bytes_total", direction="in") == 0
    assert prometheus_client.REGISTRY.get_sample_value("kefu_bytes_total", {"direction": "in"}) is None


def test_hot_path_helpers() -> None:
    m = Metrics(process=False)
    tally = FrameTally()
    tally.received[FrameType.SEND] += 2
    tally.received[0x99] += 1  # an ignorable unknown type
    tally.sent[FrameType.SEND_ACK] += 1
    m.frames(*tally.take())
    assert tally.received[FrameType.SEND] == 0, "take() resets the tally"
    m.bytes_out(100)
    m.error(ErrorCode.MALFORMED_FRAME.name)
    m.handshake("national", "ok")
    m.count("retries", 3)
    m.count("refused_connections")
    m.observe("send_ack", 0.002)
    m.observe_commit(17, 0.0004)
    m.observe_loop_lag(0.01)
    gauge = m.connection_gauge("international", "open")
    gauge.inc()
    m.outbound_buffered_bytes.set(4096)
    assert sample(m, "kefu_frames_total", direction="in", type="send") == 2
    assert sample(m, "kefu_frames_total", direction="in", type="unknown") == 1
    assert sample(m, "kefu_frames_total", direction="out", type="send_ack") == 1
    assert sample(m, "kefu_bytes_total", direction="out") == 100
    assert sample(m, "kefu_errors_total", code="MALFORMED_FRAME") == 1
    assert sample(m, "kefu_handshakes_total", suite="national", result="ok") == 1
    assert sample(m, "kefu_retries_total") == 3
    assert sample(m, "kefu_refused_connections_total") == 1
    assert sample(m, "kefu_send_ack_latency_seconds_bucket", le="0.002") == 1
    assert sample(m, "kefu_send_ack_latency_seconds_bucket", le="0.001") == 0
    assert sample(m, "kefu_commit_batch_size_sum") == 17
    assert sample(m, "kefu_fsync_seconds_count") == 1
    assert sample(m, "kefu_event_loop_lag_last_seconds") == 0.01
    assert sample(m, "kefu_connections", suite="international", state="open") == 1
    assert sample(m, "kefu_outbound_buffered_bytes") == 4096
    with pytest.raises(KeyError):
        m.count("no such counter")


def test_latency_buckets_span_half_a_millisecond_to_five_seconds() -> None:
    m = Metrics(process=False)
    m.observe("delivery", 0.0001)
    assert sample(m, "kefu_delivery_latency_seconds_bucket", le="0.0005") == 1
    assert sample(m, "kefu_delivery_latency_seconds_bucket", le="5.0") == 1


def test_watch_loop_lag_observes() -> None:
    m = Metrics(process=False)

    async def run() -> None:
        task = asyncio.create_task(m.watch_loop_lag(0.01))
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(run())
    assert sample(m, "kefu_event_loop_lag_seconds_count") >= 1


def test_loop_lag_is_finer_than_uvloops_millisecond_clock() -> None:
    """uvloop's loop.time() counts whole milliseconds: lags read from it would all be multiples of 1 ms."""
    uvloop = pytest.importorskip("uvloop")
    m = Metrics(process=False)

    async def run() -> None:
        task = asyncio.create_task(m.watch_loop_lag(0.003))
        await asyncio.sleep(0.1)
        task.cancel()

    uvloop.run(run())
    total_ms = 1000 * sample(m, "kefu_event_loop_lag_seconds_sum")
    assert sample(m, "kefu_event_loop_lag_seconds_count") >= 5
    assert abs(total_ms - round(total_ms)) > 1e-6, f"{total_ms} ms: whole milliseconds"


@pytest.fixture
def health() -> dict[str, object]:
    return {"status": "ok", "connections": 3}


@pytest.fixture
def server(health: dict[str, object]) -> Iterator[tuple[Metrics, str]]:
    m = Metrics()
    srv = MetricsServer(m, "127.0.0.1", 0, lambda: health, poll_interval_s=0.01).start()
    yield m, f"http://127.0.0.1:{srv.port}"
    srv.stop()


def get(url: str) -> tuple[int, Mapping[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_metrics_endpoint(server: tuple[Metrics, str]) -> None:
    m, base = server
    received = [0] * 256
    received[FrameType.PING] = 1
    m.frames(received, [0] * 256)
    status, headers, body = get(base + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert 'kefu_frames_total{direction="in",type="ping"} 1.0' in text
    assert "kefu_build_info" in text and "process_cpu_seconds_total" in text


def test_healthz(server: tuple[Metrics, str], health: dict[str, object]) -> None:
    _, base = server
    status, headers, body = get(base + "/healthz")
    payload = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert payload["status"] == "ok" and payload["connections"] == 3
    assert isinstance(payload["uptime_s"], float) and payload["version"]
    health["status"] = "draining"
    status, _, body = get(base + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "draining"


def test_health_callback_failure_is_a_500() -> None:
    def broken() -> Mapping[str, object]:
        raise RuntimeError("hub gone")

    srv = MetricsServer(Metrics(process=False), "127.0.0.1", 0, broken, poll_interval_s=0.01).start()
    try:
        status, _, body = get(f"http://127.0.0.1:{srv.port}/healthz")
    finally:
        srv.stop()
    assert status == 500 and json.loads(body) == {"status": "error", "error": "RuntimeError"}


def test_unknown_path_is_404(server: tuple[Metrics, str]) -> None:
    _, base = server
    assert get(base + "/")[0] == 404


def test_busy_port_raises_at_start() -> None:
    first = MetricsServer(Metrics(process=False), "127.0.0.1", 0, poll_interval_s=0.01).start()
    try:
        with pytest.raises(OSError):
            MetricsServer(Metrics(process=False), "127.0.0.1", first.port).start()
    finally:
        first.stop()


def test_exposition_has_no_created_series_and_no_ok_error() -> None:
    m = Metrics(process=False)
    m.error(ErrorCode.OK.name)
    m.error(ErrorCode.AUTH_FAILED.name)
    text = m.exposition().decode()
    assert "_created" not in text
    assert 'code="OK"' not in text and 'kefu_errors_total{code="AUTH_FAILED"} 1.0' in text
    assert 'kefu_errors_total{code="INTERNAL_ERROR"} 0.0' in text, "every other code is there from the start"


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ("unknown app", "unknown_app"),
        ("app proof does not verify", "bad_secret"),
        ("client key type must be SM2", "wrong_key_type"),
        ("client signature does not verify", "bad_signature"),
        ("unknown auth mode 9", "bad_auth_mode"),
        ("something new", "other"),
    ],
)
def test_auth_failures_by_reason(detail: str, reason: str) -> None:
    m = Metrics(process=False)
    m.auth_failed(detail)
    assert sample(m, "kefu_auth_failures_total", reason=reason) == 1
    assert sum(sample(m, "kefu_auth_failures_total", reason=r) for r in {*AUTH_FAILURE_REASONS.values(), "other"}) == 1


def test_queue_series_one_unit_each() -> None:
    m = Metrics(process=False)
    m.commit_queue.set(3)
    m.outbound_buffered_bytes.set(4096)
    assert sample(m, "kefu_commit_queue_writes") == 3 and sample(m, "kefu_outbound_buffered_bytes") == 4096


def desk_figures(waiting: int, oldest: float | None) -> DeskFigures:
    counts = [0] * (len(FIRST_ANSWER_BUCKETS) + 1)
    counts[2] = 1  # one answer between 10 and 20 s
    group = GroupFigures(waiting, oldest, 2, tuple(counts), 12.5)
    return DeskFigures({("bank", "general"): group}, {("bank", "online"): 1, ("bank", "offline"): 0})


def test_desk_figures_at_scrape_time() -> None:
    m = Metrics(process=False)
    assert "kefu_service" not in m.exposition().decode().replace("kefu_service_events", ""), "none before a snapshot"
    m.publish_desk(desk_figures(3, time.time() - 30))
    labels = {"tenant": "bank", "group": "general"}
    assert sample(m, "kefu_service_waiting_conversations", **labels) == 3
    assert 30 <= sample(m, "kefu_service_longest_wait_seconds", **labels) < 40, "now minus the oldest arrival"
    assert sample(m, "kefu_service_abandoned_total", **labels) == 2
    assert sample(m, "kefu_service_first_answer_seconds_bucket", le="10.0", **labels) == 0
    assert sample(m, "kefu_service_first_answer_seconds_bucket", le="20.0", **labels) == 1
    assert sample(m, "kefu_service_first_answer_seconds_bucket", le="+Inf", **labels) == 1
    assert sample(m, "kefu_service_first_answer_seconds_sum", **labels) == 12.5
    assert sample(m, "kefu_service_agents", tenant="bank", state="online") == 1
    m.publish_desk(desk_figures(0, None))
    assert sample(m, "kefu_service_longest_wait_seconds", **labels) == 0


def test_merged_desk_figures_are_the_cores() -> None:
    """With workers only the core has a desk: the host's figures are its own, the longest wait the largest."""
    core, gateway = Metrics(process=False), Metrics(process=False)
    core.publish_desk(desk_figures(3, time.time() - 30))
    merged = merge_expositions([("core", core.exposition().decode()), ("gateway-0", gateway.exposition().decode())])
    text = merged.decode()
    assert 'kefu_service_waiting_conversations{group="general",tenant="bank"} 3.0' in text
    assert 'kefu_service_abandoned_total{group="general",tenant="bank"} 2.0' in text
    assert "_created" not in text
