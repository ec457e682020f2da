"""Generate the JavaScript client's frame declarations and error codes from their single sources.

The frame structures are declared once, as data, in `kefu.protocol.frames` (a dataclass per frame whose fields carry
their wire kinds, see `kefu.protocol.wire`); the error codes in spec/errors.toml. This script writes
clients/js/src/frames.js: the frame type codes, the registered enums, the limits, every frame's fields in wire order as
a table (name in camelCase, kind), and the error codes with their fatality. The codec that reads those tables is
hand-written, clients/js/src/wire.js, as kefu.protocol.wire is for the Python declarations.

Run `python spec/gen_js_frames.py` after changing a frame or an error code; `--check` exits 1 and names the stale file
when it differs from what the sources give (tests/protocol/test_js_generated.py runs it).
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from kefu.protocol import frames
from kefu.protocol.wire import Fixed, Int, Seq, Text, Var, notation, wire_fields

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "clients" / "js" / "src" / "frames.js"
ERRORS = ROOT / "spec" / "errors.toml"
HEADER = (
    "// GENERATED from kefu.protocol.frames and spec/errors.toml by spec/gen_js_frames.py: do not edit.\n"
    "// The wire structures of spec/PROTOCOL.md section 3.3, as data: wire.js encodes and decodes them.\n"
)
STRUCTS = (frames.KeyShareEntry, frames.MetaEntry, frames.AckEntry, frames.SearchHit)
ENUMS = (frames.PskMode, frames.AuthMode, frames.ContentType, frames.AgentState, frames.ConversationState,
         frames.DraftAction)  # fmt: skip


def camel(name: str) -> str:
    """snake_case to lowerCamelCase."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def kind_js(kind: Any) -> str:
    """A wire kind as a JS descriptor literal: ["u", 8], ["fixed", 16], ["var", 2], ["text", 1], ["seq", 1, item]."""
    match kind:
        case Int(size):
            return f'["u", {size}]'
        case Fixed(size):
            return f'["fixed", {size}]'
        case Var(prefix):
            return f'["var", {prefix}]'
        case Text(prefix):
            return f'["text", {prefix}]'
        case Seq(prefix, Int() as item):
            return f'["seq", {prefix}, {kind_js(item)}]'
        case Seq(prefix, item):
            return f'["seq", {prefix}, "{item.__name__}"]'
    raise TypeError(f"not a wire kind: {kind!r}")


def fields_js(cls: type) -> str:
    rows = [f'    ["{camel(name)}", {kind_js(kind)}],  // {name}: {notation(kind)}' for name, kind in wire_fields(cls)]
    return "[\n" + "\n".join(rows) + "\n  ]" if rows else "[]"


def render() -> str:
    out = [HEADER, "\n"]
    out.append(f"export const PROTOCOL_VERSION = {frames.PROTOCOL_VERSION};\n")
    out.append(f"export const HEADER_LEN = {frames.HEADER_LEN};\n")
    out.append(f"export const MAX_BODY = {frames.MAX_BODY};\n")
    out.append(f"export const MAX_HANDSHAKE_BODY = {frames.MAX_HANDSHAKE_BODY};\n")
    out.append(f"export const MAX_RECORD_PLAINTEXT = {frames.MAX_RECORD_PLAINTEXT};\n")
    out.append(f"export const TAG_LEN = {frames.TAG_LEN};\n")
    out.append(f"export const MAX_RECORD_BODY = {frames.MAX_RECORD_BODY};\n")
    out.append(f"export const IGNORABLE_TYPE_MIN = {frames.IGNORABLE_TYPE_MIN};\n")
    out.append(f"export const SERVICE_BASE = {frames.SERVICE_BASE}n;\n")
    out.append(f"export const STAFF_BIT = {frames.STAFF_BIT}n;\n")
    out.append(f"export const SYSTEM_SENDER = {json.dumps(frames.SYSTEM_SENDER)};\n\n")
    out.append("/** Frame type codes (section 3.4). */\nexport const FrameType = Object.freeze({\n")
    out += [f"  {m.name}: 0x{m.value:02X},\n" for m in frames.FrameType]
    out.append("});\n\n")
    for enum in ENUMS:
        out.append(f"export const {enum.__name__} = Object.freeze({{\n")
        out += [f"  {m.name}: {m.value},\n" for m in enum]
        out.append("});\n\n")
    out.append(
        "/** Nested structures: fields in wire order, [name, kind]. */\nexport const STRUCTS = Object.freeze({\n"
    )
    for cls in STRUCTS:
        out.append(
            f"  {cls.__name__}: {fields_js(cls).replace(chr(10) + '    ', chr(10) + '      ')},\n".replace(
                "\n  ]", "\n    ]"
            )
        )
    out.append("});\n\n")
    out.append("/** Frame bodies by type: the frame's name and its fields in wire order, [name, kind]. */\n")
    out.append("export const FRAME_BODIES = Object.freeze({\n")
    for code, cls in sorted(frames.FRAME_CLASSES.items()):
        body = fields_js(cls).replace("\n    ", "\n      ").replace("\n  ]", "\n    ]")
        out.append(f'  0x{code:02X}: {{ name: "{frames.FrameType(code).name}", fields: {body} }},\n')
    out.append("});\n\n")
    table = tomllib.loads(ERRORS.read_text(encoding="utf-8"))
    out.append("/** Wire error codes (spec/errors.toml, section 9): name -> [code, fatal]. */\n")
    out.append("export const ERROR_CODES = Object.freeze({\n")
    out += [f"  {name}: [{entry['code']}, {'true' if entry['fatal'] else 'false'}],\n" for name, entry in table.items()]
    out.append("});\n")
    return "".join(out)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"stale: {TARGET.relative_to(ROOT)} (run python spec/gen_js_frames.py)", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
