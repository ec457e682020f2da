"""Log lines for journald: "<N>" syslog priorities when stderr is the journal stream, unchanged otherwise."""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.server import log


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, kefu = logging.getLogger(), logging.getLogger("kefu")
    saved = (list(root.handlers), root.level, kefu.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    kefu.setLevel(saved[2])


def emit_all() -> None:
    log.debug("t.debug", n=1)
    log.event("t.info", app_secret="hunter2")
    log.warning("t.warning")
    log.error("t.error")
    logging.getLogger("other").critical("boom")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("json_lines", [False, True])
def test_journal_lines_carry_syslog_priorities(json_lines: bool) -> None:
    out = io.StringIO()
    log.configure("debug", json_lines=json_lines, stream=out, journal=True)
    emit_all()
    lines = out.getvalue().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert "hunter2" not in out.getvalue() and "<redacted>" in lines[1]
    assert (" info t.info app_secret=" in lines[1]) != json_lines, "the line after the prefix is unchanged"


@pytest.mark.usefixtures("restore_logging")
def test_journal_stream_is_detected_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stderr"
    with path.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert log.is_journal_stream(stream)
        log.configure("info", stream=stream)
        log.event("t.info")
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")  # stderr redirected elsewhere
        assert not log.is_journal_stream(stream)
        log.configure("info", stream=stream)
        log.event("t.plain")
    first, second = path.read_text().splitlines()
    assert first.startswith("<6>") and " info t.info" in first
    assert second[0].isdigit() and " info t.plain" in second


def test_no_journal_without_the_variable_or_a_file_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert not log.is_journal_stream(sys.stderr)
    assert not log.is_journal_stream(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_priorities() -> None:
    assert [log.syslog_priority(level) for level in (5, 10, 20, 30, 40, 50)] == [7, 7, 6, 4, 3, 2]
