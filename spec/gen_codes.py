"""Generate protocol/codes.py from spec/errors.toml, the single table of wire error codes.

Run `python spec/gen_codes.py` after editing spec/errors.toml; tests/protocol/test_codes.py fails when the
generated module and the table disagree.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "spec" / "errors.toml"
TARGET = ROOT / "protocol" / "codes.py"

HEADER = '''"""Wire error codes (spec/PROTOCOL.md section 9).

GENERATED from spec/errors.toml by spec/gen_codes.py: do not edit.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Every error code that may appear in an ERROR, CLOSE, SEND_ACK or GOAWAY frame."""

'''


def render(table: dict[str, dict[str, object]]) -> str:
    """Return the source of protocol/codes.py for `table`."""
    lines = [HEADER]
    for name, entry in table.items():
        lines.append(f"    {name} = {entry['code']}\n")
        lines.append(f'    """{entry["description"]}"""\n\n')
    fatal = sorted(name for name, entry in table.items() if entry["fatal"])
    lines.append("\n#: Codes after which the sender closes the connection.\n")
    lines.append("FATAL_CODES: frozenset[ErrorCode] = frozenset(\n    {\n")
    lines.extend(f"        ErrorCode.{name},\n" for name in fatal)
    lines.append("    }\n)\n")
    return "".join(lines)


def load() -> dict[str, dict[str, object]]:
    """Read spec/errors.toml."""
    with TABLE.open("rb") as f:
        return tomllib.load(f)


def main() -> int:
    """Write protocol/codes.py, or with --check report whether it is current."""
    source = render(load())
    if "--check" in sys.argv[1:]:
        return 0 if TARGET.read_text(encoding="utf-8") == source else 1
    TARGET.write_text(source, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
