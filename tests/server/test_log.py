"""kefu.server.log: one line per event, logfmt or JSON, levels, and redaction of secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from kefu.server import log

SECRET = "s3cr3t-Zm9vYmFy"
BODY = "转账到账户 6222 0000"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    root, kefu = logging.getLogger(), logging.getLogger("kefu")
    saved = (list(root.handlers), root.level, kefu.level)
    stream = io.StringIO()
    log.configure("debug", stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    kefu.setLevel(saved[2])


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_text_format_is_ts_level_event_then_fields(out: io.StringIO) -> None:
    log.event("conn.accepted", peer="127.0.0.1:5555", suite="national", resumed=False, n=3)
    [line] = lines(out)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info conn\.accepted peer=127\.0\.0\.1:5555 suite=national "
        r"resumed=false n=3",
        line,
    )


def test_logfmt_quotes_what_needs_quoting(out: io.StringIO) -> None:
    log.warning("x", a="two words", b='say "hi"', c="", d="line1\nline2", e="a=b", f=None, g="中文")
    [line] = lines(out)
    assert line.split(" ", 2)[1:] == [
        "warning",
        'x a="two words" b="say \\"hi\\"" c="" d="line1\\nline2" e="a=b" f="" g=中文',
    ]


def test_json_lines(out: io.StringIO) -> None:
    log.configure("info", json_lines=True, stream=out)
    log.event("conn.closed", peer="1.2.3.4:5", code="OK", level="shadowed")
    record = json.loads(lines(out)[0])
    assert record["event"] == "conn.closed" and record["level"] == "info"
    assert record["peer"] == "1.2.3.4:5" and record["_level"] == "shadowed"
    assert record["ts"].endswith("Z")


def test_level_filtering_and_set_level(out: io.StringIO) -> None:
    log.set_level("warning")
    log.debug("a")
    log.event("b")
    log.warning("c")
    log.error("d")
    assert [line.split()[2] for line in lines(out)] == ["c", "d"]
    log.set_level("debug")
    log.debug("e")
    assert lines(out)[-1].split()[1:3] == ["debug", "e"]
    with pytest.raises(ValueError, match="unknown log level"):
        log.set_level("loud")


@pytest.mark.parametrize("json_lines", [False, True])
def test_secrets_keys_and_bodies_never_reach_the_log(out: io.StringIO, json_lines: bool) -> None:
    log.configure("debug", json_lines=json_lines, stream=out)
    log.event(
        "everything",
        secret=SECRET,
        app_secret=SECRET,
        key=SECRET,
        private_key=SECRET,
        body=BODY,
        password=SECRET,
        proof=SECRET,
        psk=SECRET,
        ticket=SECRET,
        session_ticket_id=SECRET,
        Body=BODY,
        payload=BODY.encode(),
        nested={"secret": SECRET, "ok": 1},
        peer="kept",
    )
    text = out.getvalue()
    assert SECRET not in text and BODY not in text and "6222" not in text
    assert text.count(log.REDACTED) == 12
    assert "kept" in text and f"<{len(BODY.encode())} bytes>" in text


def test_redaction_also_covers_records_logged_around_the_helpers(out: io.StringIO) -> None:
    logging.getLogger("kefu.other").info("raw", extra={"kefu_fields": {"secret": SECRET, "app": "a"}})
    assert SECRET not in out.getvalue() and "app=a" in out.getvalue()


def test_handlers_other_than_ours_see_redacted_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kefu"):
        log.event("e", secret=SECRET)
    [record] = caplog.records
    assert record.kefu_fields == {"secret": log.REDACTED}
    assert record.getMessage() == "e"


def test_foreign_records_and_tracebacks_stay_on_one_line(out: io.StringIO) -> None:
    logging.getLogger("asyncio").error("Task exception was never retrieved")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        log.exception("handler.crashed", error=exc)
    first, second = lines(out)
    assert first.split()[1:] == [
        "error",
        "log",
        "logger=asyncio",
        'msg="Task',
        "exception",
        "was",
        "never",
        'retrieved"',
    ]
    assert 'error="RuntimeError: boom"' in second and 'traceback="Traceback' in second


def test_configure_twice_replaces_the_handler(out: io.StringIO) -> None:
    log.configure("info", stream=out)
    log.configure("info", stream=out)
    log.event("once")
    assert len(lines(out)) == 1
