"""spec/PROTOCOL.md agrees with the code: frame types, error codes, limits and link frames (spec/check_spec.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

CHECKER_PATH = Path(__file__).resolve().parents[2] / "spec" / "check_spec.py"


def load_checker() -> ModuleType:
    """spec/check_spec.py as a module (spec/ is not a package)."""
    spec = importlib.util.spec_from_file_location("check_spec", CHECKER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = load_checker()
DOC = checker.read_doc()


@pytest.mark.parametrize(
    "check", ["check_frame_types", "check_error_codes", "check_code_mentions", "check_limits", "check_link_frames"]
)
def test_protocol_md_agrees_with_the_code(check: str) -> None:
    problems = getattr(checker, check)(DOC)
    assert not problems, (
        "spec/PROTOCOL.md disagrees with the code; fix the document (or run python spec/check_spec.py --write for "
        "the error table):\n  " + "\n  ".join(problems)
    )


EDITS = [
    # (text in PROTOCOL.md, replacement, check that must object, words in its objection)
    ("| `0x13` | DELIVER_ACK |", "| `0x16` | DELIVER_ACK |", "check_frame_types", "0x16"),
    ("| `0x31` | GOAWAY |", "| `0x31` | GOAWAY_NOW |", "check_frame_types", "GOAWAY"),
    ("| 404 | NOT_FOUND | no |", "| 404 | NOT_FOUND | yes |", "check_error_codes", "out of date"),
    ("MESSAGE_TOO_LARGE (413). Only", "MESSAGE_TOO_LARGE (414). Only", "check_code_mentions", "code 414"),
    ("SHUTTING_DOWN (503) and nothing", "503 (OVERLOADED) and nothing", "check_code_mentions", "OVERLOADED"),
    ("(section 4.10, RATE_LIMITED)", "(section 4.7, RATE_LIMITED)", "check_code_mentions", "section 4.7"),
    (
        "or ignorable, is UNEXPECTED_FRAME (section 7.2)",
        "or ignorable, is UNEXPECTED_FRAME (section 7.3)",
        "check_code_mentions",
        "7.3",
    ),
    ("`1_048_576` | records", "`1_048_577` | records", "check_limits", "RECORD_LIMIT"),
    ("| `tickets.TicketGuard.MAX_ENTRIES`", "| TicketGuard", "check_limits", "MAX_ENTRIES"),
    ("| `crypto.TAG_LEN`", "| `crypto.TAG_SIZE`", "check_limits", "TAG_SIZE"),
    ("| `0x07` | CURSOR |", "| `0x08` | CURSOR |", "check_link_frames", "0x08"),
    ("| `0x46` | FETCHED |", "| `0x46` | FETCH_DONE |", "check_link_frames", "FETCHED"),
    (
        "| `ticket u64`, `conversation_id u64`, `items",
        "| `conversation_id u64`, `ticket u64`, `items",
        "check_link_frames",
        "FETCHED",
    ),
    ("| `sid u64`, `code u16` |", "| `sid u64`, `code u32` |", "check_link_frames", "ADMITTED"),
    ("| Item | `seq u64`, `frame opaque<u32>`", "| Item | `seq u64`, `frame opaque<u16>`", "check_link_frames", "Item"),
]


@pytest.mark.parametrize(("old", "new", "check", "expected"), EDITS)
def test_the_checks_catch_a_disagreement(old: str, new: str, check: str, expected: str) -> None:
    assert DOC.count(old) == 1, f"{old!r} is no longer in the document once: update this test"
    problems = getattr(checker, check)(DOC.replace(old, new))
    assert any(expected in p for p in problems), problems
