"""The write-ahead log's files (kefu.server.storage.logfile) on a real directory: records, chains, torn and stale
tails, segment switches, recycling and the backup pin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kefu.server.storage.logfile import (
    HEADER_SIZE,
    PAGE_SIZE,
    SPARE_SEGMENTS,
    LogWriter,
    SegmentFiles,
    pinned_for_backup,
    read_log,
    segment_name,
)
from kefu.server.storage.schema import LogPosition

SEGMENT = 64 << 10  # small segments, so that a few records cross them
LOG_ID = 42


def start() -> LogPosition:
    return LogPosition.first(LOG_ID)


def payloads(log_dir: Path, position: LogPosition | None = None) -> list[bytes]:
    return [payload for _, payload, _ in read_log(log_dir, position or start())]


def write(log_dir: Path, batches: list[list[bytes]], after: LogPosition | None = None) -> LogWriter:
    writer = LogWriter(SegmentFiles(log_dir, SEGMENT), after or start())
    for batch in batches:
        writer.append([(1, p) for p in batch])
    return writer


def test_records_round_trip_across_segments(tmp_path: Path) -> None:
    sent = [os.urandom(n) for n in (0, 1, 100, 5000, 30_000, 30_000, 30_000, 7)]
    writer = write(tmp_path, [sent[:3], sent[3:6], sent[6:]])
    assert writer.segment == 2, "the second 30 kB record did not fit in segment 1"
    found = list(read_log(tmp_path, start()))
    assert [p for _, p, _ in found] == sent and {k for k, _, _ in found} == {1}
    assert [pos.lsn for _, _, pos in found] == list(range(2, 10))
    assert found[-1][2] == writer.position, "the position after the last record is where the writer goes on"
    assert payloads(tmp_path, found[3][2]) == sent[4:], "reading starts anywhere a record ends"
    writer.close()


def test_appends_are_counted_by_the_pages_they_touch(tmp_path: Path) -> None:
    writer = write(tmp_path, [[bytes(PAGE_SIZE - HEADER_SIZE - 10)]])
    assert writer.written_bytes == PAGE_SIZE
    writer.append([(1, bytes(20 - HEADER_SIZE))])  # 10 bytes on the first page, 10 on the next: both written
    assert writer.written_bytes == 3 * PAGE_SIZE
    writer.close()


def last_record(tmp_path: Path) -> tuple[Path, int, int]:
    """A log of three records in segment 1: (its file, where the last record starts, where it ends)."""
    writer = write(tmp_path, [[b"first", b"second"], [b"third record, torn below"]])
    end = writer.position.offset
    writer.close()
    return tmp_path / segment_name(1), end - HEADER_SIZE - len(b"third record, torn below"), end


def test_a_tail_cut_at_any_byte_is_dropped_whole(tmp_path: Path) -> None:
    path, begin, end = last_record(tmp_path)
    whole = path.read_bytes()
    for cut in range(begin, end):
        path.write_bytes(whole[:cut])
        assert payloads(tmp_path) == [b"first", b"second"], f"cut at {cut}"
    path.write_bytes(whole)
    assert payloads(tmp_path) == [b"first", b"second", b"third record, torn below"]


def test_a_tail_corrupted_at_any_byte_is_dropped_whole(tmp_path: Path) -> None:
    path, begin, end = last_record(tmp_path)
    whole = path.read_bytes()
    for at in range(begin, end):
        torn = bytearray(whole)
        torn[at] ^= 0x5A
        path.write_bytes(bytes(torn))
        assert payloads(tmp_path) == [b"first", b"second"], f"byte {at} changed"


def test_a_torn_record_hides_everything_after_it(tmp_path: Path) -> None:
    path, _, _ = last_record(tmp_path)
    data = bytearray(path.read_bytes())
    data[HEADER_SIZE + 2] ^= 1  # inside "first"
    path.write_bytes(bytes(data))
    assert payloads(tmp_path) == [], "the chain breaks at the first bad record"


def test_the_writer_resumes_in_a_new_segment_after_a_torn_tail(tmp_path: Path) -> None:
    path, begin, _ = last_record(tmp_path)
    data = bytearray(path.read_bytes())
    data[begin + 3] ^= 1
    path.write_bytes(bytes(data))
    found = list(read_log(tmp_path, start()))
    writer = write(tmp_path, [[b"after the crash"]], after=found[-1][2])
    assert writer.segment == 2, "never writes behind the torn record"
    assert payloads(tmp_path) == [b"first", b"second", b"after the crash"], "the chain jumps to the next segment"
    writer.close()


def test_stale_records_of_a_recycled_segment_are_not_read(tmp_path: Path) -> None:
    files = SegmentFiles(tmp_path, SEGMENT)
    old = [bytes([i]) * 20_000 for i in range(7)]  # three per segment: segments 1, 2, 3
    writer = LogWriter(files, start())
    writer.append([(1, p) for p in old])
    assert writer.segment == 3
    indexed = list(read_log(tmp_path, start()))[6][2]  # everything is indexed: segments 1 and 2 are done
    files.maintain(indexed, writer.segment)
    assert files.numbers() == [3, 4, 5], "1 and 2 renamed ahead of the writer: spares full of old records"
    assert (tmp_path / segment_name(4)).read_bytes()[HEADER_SIZE : HEADER_SIZE + 4] == old[0][:4], "stale, not zeroed"
    assert payloads(tmp_path, indexed) == [], "the stale records after the tail are not the next ones"
    new = [b"n" * 30_000, b"m" * 30_000, b"short"]  # the second goes into recycled segment 4, over old records
    writer.append([(1, p) for p in new])
    assert writer.segment == 4
    assert payloads(tmp_path, indexed) == new, "and the stale records after them are ignored"
    writer.close()


def test_records_of_another_log_are_foreign(tmp_path: Path) -> None:
    write(tmp_path, [[b"theirs"]], after=LogPosition.first(7)).close()
    assert payloads(tmp_path, LogPosition.first(LOG_ID)) == [], "another chain seed: no record is ours"
    assert payloads(tmp_path, LogPosition.first(7)) == [b"theirs"]


def test_segments_are_preallocated_and_recycling_waits_for_a_backup(tmp_path: Path) -> None:
    files = SegmentFiles(tmp_path, SEGMENT)
    writer = LogWriter(files, start())
    files.maintain(start(), writer.segment)
    assert files.numbers() == list(range(1, 2 + SPARE_SEGMENTS))
    assert all((tmp_path / segment_name(n)).stat().st_size == SEGMENT for n in files.numbers())
    assert not list(tmp_path.glob(".*.tmp")), "made under a temporary name, then renamed"
    writer.append([(1, bytes(40_000)), (1, bytes(40_000)), (1, bytes(40_000))])
    assert writer.segment == 3
    with pinned_for_backup(tmp_path):
        files.maintain(writer.position, writer.segment)
        assert 1 in files.numbers(), "a backup reads the log: nothing is recycled"
    files.maintain(writer.position, writer.segment)
    assert min(files.numbers()) == 3 and len(files.numbers()) == 1 + SPARE_SEGMENTS
    writer.close()


@pytest.mark.parametrize("size", [0, SEGMENT // 2])
def test_a_short_segment_is_filled_up_before_use(tmp_path: Path, size: int) -> None:
    (tmp_path / segment_name(1)).write_bytes(b"\xff" * size)
    writer = write(tmp_path, [[b"x"]])
    assert (tmp_path / segment_name(1)).stat().st_size == SEGMENT and payloads(tmp_path) == [b"x"]
    writer.close()
