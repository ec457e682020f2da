"""Refused commits are logged once per interval with a count (kefu.server.storage.committer.Refusals)."""

from __future__ import annotations

import logging

import pytest

from kefu.server.storage.committer import Refusals


def test_one_traceback_then_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = Refusals(10.0, clock=lambda: now[0])
    error = OSError(28, "No space left on device")
    with caplog.at_level(logging.WARNING, logger="kefu.server.storage.committer"):
        for _ in range(396):  # the 396 refusals in 4 s ...
            refusals.note("the log has no room", error)
            now[0] += 0.01
        now[0] = 10.5
        refusals.note("the log has no room", error)  # ... and one after the interval: the line for those 10 s
        now[0] = 12.0
        refusals.note("the log has no room", error)  # counted, not logged ...
        refusals.flush()  # ... until a commit succeeds
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert lines[0].startswith("commit refused (logged once per 10 s") and caplog.records[0].exc_info
    assert lines[1] == "396 commits refused in the last 10 s: the log has no room"
    assert lines[2] == "1 commits refused in the last 2 s: the log has no room"
    assert lines[3] == "commits succeed again (398 refused in all)"
    assert not any(r.exc_info for r in caplog.records[1:]), "the traceback only the first time"
    assert refusals.total == 0
