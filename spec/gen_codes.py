"""Generate protocol/codes.py and the Java client's ErrorCode enum from spec/errors.toml, the single table of
wire error codes.

Run `python spec/gen_codes.py` after editing spec/errors.toml; tests/protocol/test_codes.py fails when either
generated file and the table disagree (`--check` names the stale ones).
"""

from __future__ import annotations

import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "spec" / "errors.toml"
TARGET = ROOT / "protocol" / "codes.py"
JAVA_TARGET = ROOT / "clients" / "java" / "src" / "main" / "java" / "io" / "kefu" / "protocol" / "ErrorCode.java"

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


JAVA_HEADER = """package io.kefu.protocol;

import java.util.Optional;

// GENERATED from spec/errors.toml by spec/gen_codes.py: do not edit.

/**
 * Every wire error code (spec/PROTOCOL.md section 9): the {@code u16} values of ERROR, CLOSE and GOAWAY's
 * {@code code} and of SEND_ACK's and RESULT's {@code status}.
 *
 * <p>Frames carry codes as plain {@code int}s, because a peer may send a code this version does not know.
 * {@link #of(int)} maps a wire value to a constant and gives empty for an unknown one; {@link #isFatalCode(int)}
 * applies section 4.7's rule to any value (an unknown code in 400-499 is a non-fatal request error, any other
 * unknown code is fatal and reported as INTERNAL_ERROR, see {@link #orInternalError(int)}).
 *
 * <p>Thread-safety: an enum; immutable and safe to share between threads.
 */
public enum ErrorCode {
"""

JAVA_FOOTER = """
    private final int code;
    private final boolean fatal;
    private final String description;

    ErrorCode(int code, boolean fatal, String description) {
        this.code = code;
        this.fatal = fatal;
        this.description = description;
    }

    /**
     * The value on the wire.
     *
     * @return the code, 0 to 65535
     */
    public int code() {
        return code;
    }

    /**
     * Whether the sender of this code closes the connection after sending it (section 4.7).
     *
     * @return true for a fatal code
     */
    public boolean fatal() {
        return fatal;
    }

    /**
     * The meaning of the code, as spec/errors.toml states it.
     *
     * @return one or two sentences of English
     */
    public String description() {
        return description;
    }

    /**
     * The constant of a wire value.
     *
     * @param code a wire value
     * @return the constant, or empty when this version does not define {@code code}
     */
    public static Optional<ErrorCode> of(int code) {
        for (ErrorCode c : values()) {
            if (c.code == code) {
                return Optional.of(c);
            }
        }
        return Optional.empty();
    }

    /**
     * The constant of a wire value received in an ERROR, with section 4.7's rule for unknown values: an unknown
     * code is reported as INTERNAL_ERROR. (Check {@link #isFatalCode(int)} first: an unknown code in 400-499 is a
     * non-fatal request error that the caller passes on with its number.)
     *
     * @param code a wire value
     * @return its constant, or {@link #INTERNAL_ERROR} when unknown
     */
    public static ErrorCode orInternalError(int code) {
        return of(code).orElse(INTERNAL_ERROR);
    }

    /**
     * Whether an ERROR carrying this wire value ends the connection (section 4.7): a known code's {@link #fatal()};
     * an unknown code in 400-499 is a non-fatal request error; any other unknown code is fatal.
     *
     * @param code a wire value
     * @return true if the connection ends
     */
    public static boolean isFatalCode(int code) {
        return of(code).map(ErrorCode::fatal).orElse(code < 400 || code > 499);
    }
}
"""


def _java_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _javadoc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*/", "*&#47;")


def _java_doc_lines(text: str) -> str:
    lines = textwrap.wrap(_javadoc(text), width=112, break_long_words=False, break_on_hyphens=False)
    if len(lines) == 1:
        return f"    /** {lines[0]} */\n"
    return "    /**\n" + "".join(f"     * {line}\n" for line in lines) + "     */\n"


def _java_string_lines(text: str) -> str:
    """A string literal, split into concatenated pieces that keep the lines short."""
    pieces = textwrap.wrap(text, width=96, break_long_words=False, break_on_hyphens=False, drop_whitespace=False)
    return "\n                + ".join(_java_string(piece) for piece in pieces)


def render_java(table: dict[str, dict[str, object]]) -> str:
    """Return the source of the Java client's ErrorCode enum for `table`."""
    entries = []
    for name, entry in table.items():
        description = str(entry["description"])
        fatal = "true" if entry["fatal"] else "false"
        entries.append(
            _java_doc_lines(description)
            + f"    {name}({entry['code']}, {fatal},\n            {_java_string_lines(description)})"
        )
    return JAVA_HEADER + ",\n".join(entries) + ";\n" + JAVA_FOOTER


def load() -> dict[str, dict[str, object]]:
    """Read spec/errors.toml."""
    with TABLE.open("rb") as f:
        return tomllib.load(f)


def main() -> int:
    """Write protocol/codes.py and ErrorCode.java, or with --check report whether both are current."""
    table = load()
    outputs = {TARGET: render(table), JAVA_TARGET: render_java(table)}
    if "--check" in sys.argv[1:]:
        stale = [path for path, source in outputs.items() if path.read_text(encoding="utf-8") != source]
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run python spec/gen_codes.py", file=sys.stderr)
        return 1 if stale else 0
    for path, source in outputs.items():
        path.write_text(source, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
