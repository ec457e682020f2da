"""Generate the Java client's frame records and body codec from the Python frame declarations.

The frame structures are declared once, as data, in `kefu.protocol.frames` (a dataclass per frame whose fields
carry their wire kinds, see `kefu.protocol.wire`). This script turns those declarations into Java:

- `Frame.java`: the sealed interface with one record per frame type (components in wire order, after the header's
  `requestId` and `flags`), plus the RECORD frame and an unknown ignorable frame;
- `KeyShareEntry.java`, `MetaEntry.java`, `AckEntry.java`, `SearchHit.java`: the nested structures;
- `FrameBodies.java`: the package-private body encoder and decoder, a switch over the frame types.

Each record's javadoc takes its field meanings from the frame's table in spec/PROTOCOL.md. Run
`python spec/gen_java_frames.py` after changing a frame; `--check` exits 1 and names the stale files when the
Java sources differ from what the declarations give (tests/protocol/test_java_generated.py runs it).
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kefu.protocol import frames
from kefu.protocol.wire import Fixed, Int, Seq, Text, Var, notation, wire_fields

ROOT = Path(__file__).resolve().parents[1]

PACKAGE_DIR = ROOT / "clients" / "java" / "src" / "main" / "java" / "io" / "kefu" / "protocol"
SPEC = ROOT / "spec" / "PROTOCOL.md"
GENERATED = "// GENERATED from kefu.protocol.frames by spec/gen_java_frames.py: do not edit.\n"
STRUCTS = (frames.KeyShareEntry, frames.MetaEntry, frames.AckEntry, frames.SearchHit)
STRUCT_DOCS = {
    "KeyShareEntry": "One ephemeral public key offered in CLIENT_HELLO, tagged with its suite (section 3.3).",
    "MetaEntry": "One metadata pair of a message or one attribute of OPEN_CONVERSATION (section 3.3).",
    "AckEntry": "A cumulative acknowledgement in DELIVER_ACK: every message of the conversation up to and "
    "including {@code seq} is processed (sections 3.3, 4.4).",
    "SearchHit": "One message that matched a SEARCH, in SEARCH_RESULT (section 13.9).",
}


def camel(name: str) -> str:
    """snake_case to lowerCamelCase."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def javadoc_text(text: str) -> str:
    """Markdown-ish prose to javadoc: `code` to {@code code}, HTML specials escaped."""
    text = " ".join(text.split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*/", "*&#47;")
    text = text.replace("@", "&#64;")
    return re.sub(r"`([^`]+)`", r"{@code \1}", text)


@dataclass(frozen=True)
class Field:
    """One wire field, with what the Java side needs to know of it."""

    name: str  # Java name
    wire: str  # spec name
    kind: Any

    @property
    def java_type(self) -> str:
        match self.kind:
            case Int(size):
                return "int" if size <= 2 else "long"
            case Fixed() | Var():
                return "byte[]"
            case Text():
                return "String"
            case Seq(_, Int()):
                return "List<Integer>"
            case Seq(_, item):
                return f"List<{item.__name__}>"
        raise TypeError(self.kind)

    @property
    def spec_type(self) -> str:
        return notation(self.kind)

    @property
    def is_array(self) -> bool:
        return self.java_type == "byte[]"

    @property
    def is_list(self) -> bool:
        return self.java_type.startswith("List<")

    @property
    def is_u64(self) -> bool:
        return isinstance(self.kind, Int) and self.kind.size == 8


def fields_of(cls: type) -> list[Field]:
    """The wire fields of a frame or structure class, in wire order."""
    return [Field(camel(name), name, kind) for name, kind in wire_fields(cls)]


def spec_sections() -> dict[str, str]:
    """Frame type name -> its section, from the table of section 3.4."""
    out = {}
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `0x[0-9A-F]{2}` \| ([A-Z_]+) \|.*\| ([0-9.]+) \|$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def field_meanings(section: str, wire_names: list[str]) -> dict[str, str]:
    """Field -> meaning, from the first table of `section` whose fields are exactly `wire_names`."""
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"### {section} "))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    tables: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in lines[start:end]:
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = [c for c in cells if re.fullmatch(r"`[a-z_]+`", c)]
        if not names:
            continue
        if current is None:
            current = {}
            tables.append(current)
        current.setdefault(names[0].strip("`"), cells[-1])
    for table in tables:
        if list(table) == wire_names:
            return table
    return {}


MEANING_OVERRIDES = {
    ("SEND", "content_type"): "1 TEXT, 2 JSON, 3 BINARY, 4 EVENT (section 4.1); other values are passed through.",
    ("DELIVER", "content_type"): "As sent: 1 TEXT, 2 JSON, 3 BINARY, 4 EVENT (section 4.1), or another value.",
}
"""Meanings whose table text does not stand on its own (it points at a neighbouring table)."""

WIDTH = 118


def wrap(first: str, indent: str, cont: str) -> list[str]:
    """`first` wrapped to WIDTH columns: the first line after `indent`, the others after `cont`."""
    return textwrap.wrap(
        first, width=WIDTH, initial_indent=indent, subsequent_indent=cont, break_long_words=False,
        break_on_hyphens=False,
    )  # fmt: skip


def wrap_code(items: list[str], head: str, tail: str, indent: str, cont: str) -> list[str]:
    """`head` + `items` joined by ", " + `tail`, wrapped after commas only (a type stays with its name)."""
    glued = [item.replace(" ", "\0") for item in items]
    text = head.replace(" ", "\0") + ", ".join(glued) + tail.replace(" ", "\0")
    return [line.replace("\0", " ") for line in wrap(text, indent, cont)]


def class_doc(cls: type) -> str:
    """The Python docstring without its leading "Section N: " (the javadoc names the section itself)."""
    doc = re.sub(r"^Section [0-9.]*[0-9][.:,]? *", "", " ".join((cls.__doc__ or "").split()))
    return javadoc_text(doc[:1].upper() + doc[1:])


def header_params() -> list[str]:
    return [
        " * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed",
        " *     in the answer, 0 when unused (section 3.1)",
        " * @param flags the header's {@code flags} ({@code u16}, section 3.2)",
    ]


def param_doc(field: Field, meaning: str, indent: str = "") -> list[str]:
    text = f"{{@code {field.wire}}}, {{@code {field.spec_type}}}"
    if field.is_u64:
        text += " (unsigned)"
    if meaning:
        text += ": " + javadoc_text(meaning)
    return wrap(f"@param {field.name} {text}", indent + " * ", indent + " *     ")


def record_methods(name: str, fields: list[Field], header: bool, indent: str) -> list[str]:
    """equals, hashCode and toString by content, for records holding byte arrays (the defaults compare identity)."""
    all_names = (["requestId", "flags"] if header else []) + [f.name for f in fields]
    arrays = {f.name for f in fields if f.is_array}
    u64s = {f.name for f in fields if f.is_u64}
    out: list[str] = []
    if arrays:
        eq = [f"Arrays.equals({n}, o.{n})" if n in arrays else f"{n} == o.{n}" for n in all_names]
        for f in fields:
            if f.java_type in ("String",) or f.is_list:
                eq[all_names.index(f.name)] = f"{f.name}.equals(o.{f.name})"
        out += [
            "",
            f"{indent}/** Equal when every field is, byte arrays compared by content. */",
            f"{indent}@Override",
            f"{indent}public boolean equals(Object other) {{",
            f"{indent}    return other instanceof {name} o",
            *[f"{indent}            && {e}" for e in eq[:-1]],
            f"{indent}            && {eq[-1]};",
            f"{indent}}}",
            "",
            f"{indent}/** A hash of every field, byte arrays by content. */",
            f"{indent}@Override",
            f"{indent}public int hashCode() {{",
            f"{indent}    int h = 0;",
            *[
                f"{indent}    h = 31 * h + " + (f"Arrays.hashCode({n});" if n in arrays else f"Objects.hashCode({n});")
                for n in all_names
            ],
            f"{indent}    return h;",
            f"{indent}}}",
        ]
    parts = []
    for n in all_names:
        if n in arrays:
            parts.append(f'"{n}=" + Hex.encode({n})')
        elif n in u64s:
            parts.append(f'"{n}=" + Long.toUnsignedString({n})')
        else:
            parts.append(f'"{n}=" + {n}')
    out += [
        "",
        f"{indent}/** The fields, byte arrays in hex and {{@code u64}} values unsigned. */",
        f"{indent}@Override",
        f"{indent}public String toString() {{",
        f'{indent}    return "{name}["',
        *[f"{indent}            + {p}" + (' + ", "' if i < len(parts) - 1 else ' + "]";') for i, p in enumerate(parts)],
        f"{indent}}}",
    ]
    return out


def compact_constructor(name: str, fields: list[Field], indent: str, header: bool) -> list[str]:
    lists = [f for f in fields if f.is_list]
    doc = "Checks that no component is null" + (" and copies the lists" if lists else "")
    lines = ["", f"{indent}/**", f"{indent} * {doc}; value ranges are checked by the encoder.", f"{indent} *"]
    if header:
        lines += [
            f"{indent} * @param requestId the header's {{@code request_id}}",
            f"{indent} * @param flags the header's {{@code flags}}",
        ]
    lines += [f"{indent} * @param {f.name} {{@code {f.wire}}}" for f in fields]
    lines += [f"{indent} */", f"{indent}public {name} {{"]
    for f in fields:
        if f.is_list:
            lines.append(f"{indent}    {f.name} = List.copyOf({f.name});")
        elif f.java_type in ("byte[]", "String"):
            lines.append(f'{indent}    Objects.requireNonNull({f.name}, "{f.name}");')
    lines.append(f"{indent}}}")
    return lines if (lists or any(f.java_type in ("byte[]", "String") for f in fields)) else []


def render_frame_record(cls: type[frames.Frame], section: str) -> list[str]:
    name = cls.__name__
    fields = fields_of(cls)
    meanings = field_meanings(section, [f.wire for f in fields])
    doc = class_doc(cls)
    type_name = cls.TYPE.name
    for f in fields:
        meaning = MEANING_OVERRIDES.get((type_name, f.wire), meanings.get(f.wire, ""))
        meaning = meaning.replace("See below", f"See section {section}").replace(" (below)", f" (section {section})")
        meanings[f.wire] = meaning.replace(", below.", f" (section {section}).")
    ind = "        "
    components = ["long requestId", "int flags", *(f"{f.java_type} {f.name}" for f in fields)]
    lines = [
        "",
        "    /**",
        *wrap(f"{type_name} (section {section}). {doc}", "     * ", "     * "),
        "     *",
        *["    " + p for p in header_params()],
        *[line for f in fields for line in param_doc(f, meanings[f.wire], "    ")],
        "     */",
        *wrap_code(components, f"record {name}(", ") implements Frame {", "    ", "            "),
    ]
    lines += compact_constructor(name, fields, ind, header=True)
    lines += [
        "",
        f"{ind}/**",
        f"{ind} * A {type_name} with {{@code request_id}} 0 and no flags.",
        f"{ind} *",
        *[line for f in fields for line in param_doc(f, meanings[f.wire], ind)],
        f"{ind} */",
        *wrap_code([f"{f.java_type} {f.name}" for f in fields], f"public {name}(", ") {", ind, ind + "        "),
        f"{ind}    this(0, 0{''.join(', ' + f.name for f in fields)});",
        f"{ind}}}",
        "",
        f"{ind}@Override",
        f"{ind}public FrameType type() {{",
        f"{ind}    return FrameType.{type_name};",
        f"{ind}}}",
    ]
    lines += record_methods(name, fields, True, ind)
    lines.append("    }")
    return lines


FRAME_HEADER = """package io.kefu.protocol;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

{generated}
/**
 * A frame of protocol version 1 (spec/PROTOCOL.md sections 3 to 6 and 13): one record per frame type, its
 * components the header's {{@code request_id}} and {{@code flags}} followed by the body's fields in wire order, named
 * as the spec names them in lowerCamelCase. {{@link FrameCodec}} encodes and decodes them.
 *
 * <p>Field types: {{@code u8}} and {{@code u16}} are {{@code int}}; {{@code u32}} and {{@code u64}} are {{@code long}}
 * ({{@code u64}} values are unsigned: one with the top bit set, such as a staff channel id, is a negative
 * {{@code long}}); {{@code opaque}} fields are {{@code byte[]}}; {{@code utf8}} fields are {{@link String}}; lists are
 * unmodifiable {{@link List}}s (copied by the constructor). No component may be null (NullPointerException); value
 * ranges are checked when the frame is encoded (IllegalArgumentException). Every record also has a constructor
 * without {{@code requestId}} and {{@code flags}} (both 0). Records holding byte arrays compare them by content in
 * {{@code equals}}.
 *
 * <p>Thread-safety: the records are immutable, except that byte arrays are neither copied in by the constructors
 * nor out by the accessors, for speed (the decoder gives each frame arrays of its own); treat them as read-only,
 * and a frame may then be shared between threads freely.
 */
public sealed interface Frame {{
    /**
     * The frame's type.
     *
     * @return its type, or {{@code null}} for an {{@link Unknown}} frame
     */
    FrameType type();

    /**
     * The header's {{@code request_id}} ({{@code u32}}, section 3.1).
     *
     * @return 0 to 2^32 - 1
     */
    long requestId();

    /**
     * The header's {{@code flags}} ({{@code u16}}, section 3.2).
     *
     * @return 0 to 65535
     */
    int flags();

    /**
     * The header's type byte.
     *
     * @return the wire code of {{@link #type()}}, or the unknown code of an {{@link Unknown}} frame
     */
    default int typeCode() {{
        return type().code();
    }}

    /**
     * RECORD (section 6.3): an AEAD record, whose body is the ciphertext of one or more whole inner frames and the
     * 16-byte tag. Its header has {{@code flags}} 0 and {{@code request_id}} 0 and is the AEAD's additional data.
     *
     * @param requestId the header's {{@code request_id}}, 0 (not checked by a receiver)
     * @param flags the header's {{@code flags}}, 0 (not checked by a receiver)
     * @param body the ciphertext and tag
     */
    record Record(long requestId, int flags, byte[] body) implements Frame {{
        /**
         * Checks that the body is not null.
         *
         * @param requestId the header's {{@code request_id}}
         * @param flags the header's {{@code flags}}
         * @param body the ciphertext and tag
         */
        public Record {{
            Objects.requireNonNull(body, "body");
        }}

        /**
         * A RECORD with a zero header.
         *
         * @param body the ciphertext and tag
         */
        public Record(byte[] body) {{
            this(0, 0, body);
        }}

        @Override
        public FrameType type() {{
            return FrameType.RECORD;
        }}

        /** Equal when the header fields and the body's bytes are. */
        @Override
        public boolean equals(Object other) {{
            return other instanceof Record o && requestId == o.requestId && flags == o.flags
                    && Arrays.equals(body, o.body);
        }}

        /** A hash of the header fields and the body's bytes. */
        @Override
        public int hashCode() {{
            return Objects.hash(requestId, flags, Arrays.hashCode(body));
        }}

        /** The header fields and the body in hex. */
        @Override
        public String toString() {{
            return "Record[requestId=" + requestId + ", flags=" + flags + ", body=" + Hex.encode(body) + "]";
        }}
    }}

    /**
     * A frame of an ignorable type ({{@code 0x80}}-{{@code 0xFF}}) that this version does not know (section 3.4):
     * a receiver skips it. Its {{@link #type()}} is {{@code null}}; {{@link #typeCode()}} gives the code.
     *
     * @param requestId the header's {{@code request_id}}
     * @param flags the header's {{@code flags}}
     * @param code the type byte, {{@code 0x80}} to {{@code 0xFF}}
     * @param body the body, unparsed
     */
    record Unknown(long requestId, int flags, int code, byte[] body) implements Frame {{
        /**
         * Checks that the code is ignorable and the body not null.
         *
         * @param requestId the header's {{@code request_id}}
         * @param flags the header's {{@code flags}}
         * @param code the type byte, {{@code 0x80}} to {{@code 0xFF}}
         * @param body the body, unparsed
         */
        public Unknown {{
            if (!FrameType.isIgnorable(code)) {{
                throw new IllegalArgumentException("not an ignorable type: " + code);
            }}
            Objects.requireNonNull(body, "body");
        }}

        /**
         * There is no {{@link FrameType}} for an unknown code.
         *
         * @return {{@code null}}
         */
        @Override
        public FrameType type() {{
            return null;
        }}

        @Override
        public int typeCode() {{
            return code;
        }}

        /** Equal when the header fields, the code and the body's bytes are. */
        @Override
        public boolean equals(Object other) {{
            return other instanceof Unknown o && requestId == o.requestId && flags == o.flags && code == o.code
                    && Arrays.equals(body, o.body);
        }}

        /** A hash of the header fields, the code and the body's bytes. */
        @Override
        public int hashCode() {{
            return Objects.hash(requestId, flags, code, Arrays.hashCode(body));
        }}

        /** The header fields, the code and the body in hex. */
        @Override
        public String toString() {{
            return "Unknown[requestId=" + requestId + ", flags=" + flags + ", code=" + code + ", body="
                    + Hex.encode(body) + "]";
        }}
    }}
"""


def render_frame() -> str:
    sections = spec_sections()
    lines = [FRAME_HEADER.format(generated=GENERATED).rstrip("\n")]
    for cls in frames.FRAME_CLASSES.values():
        lines += render_frame_record(cls, sections[cls.TYPE.name])
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_struct(cls: type) -> str:
    name = cls.__name__
    fields = fields_of(cls)
    imports = ["import java.util.Arrays;"] if any(f.is_array for f in fields) else []
    if any(f.java_type in ("byte[]", "String") for f in fields) or any(f.is_array for f in fields):
        imports.append("import java.util.Objects;")
    lines = ["package io.kefu.protocol;", ""]
    if imports:
        lines += [*imports, ""]
    lines += [
        GENERATED.rstrip("\n"),
        "/**",
        *wrap(STRUCT_DOCS[name], " * ", " * "),
        " *",
        " * <p>Thread-safety: immutable, except that byte arrays are not copied (treat them as read-only).",
        " *",
        *[line for f in fields for line in param_doc(f, "")],
        " */",
        *wrap_code([f"{f.java_type} {f.name}" for f in fields], f"public record {name}(", ") {", "", "        "),
    ]
    body = compact_constructor(name, fields, "    ", header=False)
    if body:
        lines += body[1:]
    lines += record_methods(name, fields, False, "    ")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- the body codec ---------------------------------------------------------------------------------------------


def write_expr(f: Field, value: str, indent: str) -> list[str]:
    match f.kind:
        case Int(size):
            return [f'{indent}w.u{size * 8}({value}, "{f.wire}");']
        case Fixed(size):
            return [f'{indent}w.fixed({value}, {size}, "{f.wire}");']
        case Var(prefix):
            return [f'{indent}w.bytes({value}, {prefix}, "{f.wire}");']
        case Text(prefix):
            return [f'{indent}w.text({value}, {prefix}, "{f.wire}");']
        case Seq(prefix, item):
            var = f.name[0] if f.name[0] != "w" else "x"
            out = [f'{indent}w.count({value}.size(), {prefix}, "{f.wire}");']
            if isinstance(item, Int):
                out.append(f"{indent}for (int {var} : {value}) {{")
                out.append(f'{indent}    w.u{item.size * 8}({var}, "{f.wire}");')
            else:
                out.append(f"{indent}for ({item.__name__} {var} : {value}) {{")
                for sub in fields_of(item):
                    out += write_expr(sub, f"{var}.{sub.name}()", indent + "    ")
            out.append(f"{indent}}}")
            return out
    raise TypeError(f.kind)


def read_expr(f: Field) -> str:
    match f.kind:
        case Int(size):
            return f"r.u{size * 8}()"
        case Fixed(size):
            return f"r.fixed({size})"
        case Var(prefix):
            return f"r.bytes({prefix})"
        case Text(prefix):
            return f"r.text({prefix})"
    raise TypeError(f.kind)


def read_lines(f: Field, indent: str) -> list[str]:
    """Statements that read field `f` into a local of its name."""
    match f.kind:
        case Seq(prefix, item):
            out = [f"{indent}int {f.name}Count = r.count({prefix});"]
            elem = "Integer" if isinstance(item, Int) else item.__name__
            out.append(f"{indent}{elem}[] {f.name}Items = new {elem}[{f.name}Count];")
            out.append(f"{indent}for (int i = 0; i < {f.name}Count; i++) {{")
            if isinstance(item, Int):
                out.append(f"{indent}    {f.name}Items[i] = r.u{item.size * 8}();")
            else:
                subs = fields_of(item)
                args = ", ".join(read_expr(s) for s in subs)
                out.append(f"{indent}    {f.name}Items[i] = new {item.__name__}({args});")
            out.append(f"{indent}}}")
            out.append(f"{indent}List<{elem}> {f.name} = List.of({f.name}Items);")
            return out
    return [f"{indent}{f.java_type} {f.name} = {read_expr(f)};"]


def render_bodies() -> str:
    classes = list(frames.FRAME_CLASSES.values())
    lines = [
        "package io.kefu.protocol;",
        "",
        "import java.util.List;",
        "",
        GENERATED.rstrip("\n"),
        "/**",
        " * The body encoder and decoder of every frame type with a structure (section 3.3), generated from the",
        " * Python declarations so that the two cannot drift. {@link FrameCodec} is the public entry point.",
        " *",
        " * <p>Thread-safety: stateless.",
        " */",
        "final class FrameBodies {",
        "    private FrameBodies() {}",
        "",
        "    /** Writes the body of {@code frame} (not a RECORD or an unknown frame) to {@code w}. */",
        "    static void write(Frame frame, WireWriter w) {",
        "        switch (frame.type()) {",
    ]
    for cls in classes:
        name = cls.__name__
        var = "f"
        lines.append(f"            case {cls.TYPE.name} -> {{")
        lines.append(f"                Frame.{name} {var} = (Frame.{name}) frame;")
        for f in fields_of(cls):
            lines += write_expr(f, f"{var}.{f.name}()", "                ")
        lines.append("            }")
    lines += [
        '            default -> throw new IllegalArgumentException("no body structure: " + frame.type());',
        "        }",
        "    }",
        "",
        "    /**",
        "     * Reads the body of a frame of {@code type} (not RECORD) from {@code r}; bytes after the last field are",
        "     * left unread (section 3.5). MALFORMED_FRAME when the body does not fit the structure.",
        "     */",
        "    static Frame read(FrameType type, long requestId, int flags, WireReader r) throws ProtocolException {",
        "        switch (type) {",
    ]
    for cls in classes:
        name = cls.__name__
        fields = fields_of(cls)
        lines.append(f"            case {cls.TYPE.name}: {{")
        for f in fields:
            lines += read_lines(f, "                ")
        args = "".join(f", {f.name}" for f in fields)
        lines += wrap(f"return new Frame.{name}(requestId, flags{args});", " " * 16, " " * 24)
        lines.append("            }")
    lines += [
        "            default:",
        '                throw new IllegalArgumentException("no body structure: " + type);',
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    out = {PACKAGE_DIR / "Frame.java": render_frame(), PACKAGE_DIR / "FrameBodies.java": render_bodies()}
    for cls in STRUCTS:
        out[PACKAGE_DIR / f"{cls.__name__}.java"] = render_struct(cls)
    return out


def main() -> int:
    """Write the Java sources, or with --check report the stale ones."""
    generated = outputs()
    if "--check" in sys.argv[1:]:
        stale = [p for p, text in generated.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run python spec/gen_java_frames.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated.items():
        path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
