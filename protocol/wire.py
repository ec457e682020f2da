"""Declaring wire structures once (spec/PROTOCOL.md section 3.3).

Theory of operation: a frame body is a frozen dataclass whose fields are annotated with a wire kind, e.g.
``seq: U64`` or ``body: Bytes32``. From that single declaration `wire_struct` derives two codecs:

- a `construct` Struct, the readable reference declaration (used by the spec tooling and by the tests
  that prove the fast codec agrees with it for every frame type);
- a fast codec: Python source generated once per class (consecutive fixed-size fields merged into one
  `struct.Struct`), because the compiled construct parser costs about 3 us per frame and the record
  budget is 3 us in all.

Parsers take `bytes` (slices of it are bytes already, so opaque fields are not copied twice). Big-endian
throughout. Length prefixes count bytes (or items, for arrays). Bytes after the last known field
are ignored on parse: that is how later minor versions add optional fields (section 3.5).
"""

from __future__ import annotations

import dataclasses
import struct
import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

import construct as c

__all__ = [
    "U8",
    "U16",
    "U32",
    "U64",
    "Bytes8",
    "Bytes16",
    "Bytes32",
    "Fixed",
    "Fixed16",
    "Fixed32",
    "Int",
    "Seq",
    "Str8",
    "Str16",
    "Text",
    "Truncated",
    "Var",
    "notation",
    "wire_struct",
]  # fmt: skip


class Truncated(Exception):
    """A structure ran past the end of its buffer or held invalid UTF-8 (mapped to MALFORMED_FRAME)."""


@dataclass(frozen=True, slots=True)
class Int:
    """An unsigned big-endian integer of `size` bytes."""

    size: int


@dataclass(frozen=True, slots=True)
class Fixed:
    """Exactly `size` opaque bytes."""

    size: int


@dataclass(frozen=True, slots=True)
class Var:
    """Opaque bytes behind a length prefix of `prefix` bytes."""

    prefix: int


@dataclass(frozen=True, slots=True)
class Text:
    """UTF-8 text behind a byte-length prefix of `prefix` bytes."""

    prefix: int


@dataclass(frozen=True, slots=True)
class Seq:
    """A list of `item` (an Int kind or a wire_struct class) behind an item-count prefix. (A wire_struct class as a
    field's kind, ``Annotated[X, X]``, is that structure inline.)"""

    prefix: int
    item: Any


U8 = Annotated[int, Int(1)]
U16 = Annotated[int, Int(2)]
U32 = Annotated[int, Int(4)]
U64 = Annotated[int, Int(8)]
Fixed16 = Annotated[bytes, Fixed(16)]
Fixed32 = Annotated[bytes, Fixed(32)]
Bytes8 = Annotated[bytes, Var(1)]
Bytes16 = Annotated[bytes, Var(2)]
Bytes32 = Annotated[bytes, Var(4)]
Str8 = Annotated[str, Text(1)]
Str16 = Annotated[str, Text(2)]

_INT_FMT = {1: "B", 2: "H", 4: "I", 8: "Q"}
_INT_CONSTRUCT = {1: c.Int8ub, 2: c.Int16ub, 4: c.Int32ub, 8: c.Int64ub}
_PREFIX = {size: struct.Struct("!" + fmt) for size, fmt in _INT_FMT.items()}

T = TypeVar("T")


def wire_fields(cls: type) -> list[tuple[str, Any]]:
    """The (name, kind) pairs of a wire_struct class, in wire order (kw-only header fields excluded)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if f.kw_only:
            continue
        meta = getattr(hints[f.name], "__metadata__", ())
        if not meta:
            raise TypeError(f"{cls.__name__}.{f.name} has no wire kind")
        out.append((f.name, meta[0]))
    return out


def notation(kind: Any) -> str:
    """A wire kind in spec/PROTOCOL.md's notation (section 3.3): u64, opaque[16], opaque<u32>, utf8<u8>,
    Item list<u32>. The spec's tables and the generated Java docs both use it."""
    match kind:
        case Int(size):
            return f"u{size * 8}"
        case Fixed(size):
            return f"opaque[{size}]"
        case Var(prefix):
            return f"opaque<u{prefix * 8}>"
        case Text(prefix):
            return f"utf8<u{prefix * 8}>"
        case Seq(prefix, item):
            inner = item.__name__ if isinstance(item, type) else notation(item)
            return f"{inner} list<u{prefix * 8}>"
    raise TypeError(f"no notation for {kind!r}")


def to_construct(kind: Any) -> Any:
    """The construct declaration of one wire kind."""
    match kind:
        case Int(size):
            return _INT_CONSTRUCT[size]
        case Fixed(size):
            return c.Bytes(size)
        case Var(prefix):
            return c.Prefixed(_INT_CONSTRUCT[prefix], c.GreedyBytes)
        case Text(prefix):
            return c.PascalString(_INT_CONSTRUCT[prefix], "utf8")
        case Seq(prefix, item):
            return c.PrefixedArray(_INT_CONSTRUCT[prefix], to_construct(item))
        case type() if hasattr(kind, "CONSTRUCT"):
            return kind.CONSTRUCT
    raise TypeError(f"not a wire kind: {kind!r}")


class _Gen:
    """Generates the fast parse and build functions of one class."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.env: dict[str, Any] = {"_cls": cls, "_Truncated": Truncated}
        self.parse: list[str] = []
        self.build: list[str] = []
        self.run: list[tuple[str, Any]] = []
        self.n = 0

    def name(self, prefix: str, value: Any) -> str:
        self.n += 1
        key = f"_{prefix}{self.n}"
        self.env[key] = value
        return key

    def flush(self) -> None:
        if not self.run:
            return
        fmt = "!" + "".join(_INT_FMT[k.size] if isinstance(k, Int) else f"{k.size}s" for _, k in self.run)
        s = self.name("s", struct.Struct(fmt))
        names = ", ".join(n for n, _ in self.run)
        size = struct.calcsize(fmt)
        self.parse += [
            f"if o + {size} > end: raise _Truncated",
            f"({names},) = {s}.unpack_from(b, o); o += {size}",
        ]
        self.build.append(f"parts.append({s}.pack({', '.join('f.' + n for n, _ in self.run)}))")
        self.run = []

    def prefixed(self, prefix: int) -> str:
        p = self.name("p", _PREFIX[prefix])
        if prefix == 1:  # indexing bytes gives the int directly: cheaper than a struct call
            self.parse += ["if o >= end: raise _Truncated", "n = b[o]; o += 1"]
        else:
            self.parse += [
                f"if o + {prefix} > end: raise _Truncated",
                f"(n,) = {p}.unpack_from(b, o); o += {prefix}",
            ]
        return p

    def field(self, name: str, kind: Any) -> None:
        match kind:
            case Int() | Fixed():
                self.run.append((name, kind))
                return
        self.flush()
        match kind:
            case Var(prefix) | Text(prefix):
                p = self.prefixed(prefix)
                # `b` is bytes, so a slice is already bytes; text is decoded in place (UnicodeDecodeError is
                # turned into Truncated around the whole parse).
                conv = "" if isinstance(kind, Var) else ".decode()"
                self.parse += [
                    "if o + n > end: raise _Truncated",
                    f"{name} = b[o:o + n]{conv}; o += n",
                ]
                value = f"f.{name}" if isinstance(kind, Var) else f"f.{name}.encode()"
                self.build += [f"v = {value}", f"parts.append({p}.pack(len(v)))", "parts.append(v)"]
            case Seq(prefix, item):
                p = self.prefixed(prefix)
                item_parse, item_build = self.item_codec(item)
                self.parse += [
                    f"{name} = []",
                    "for _ in range(n):",
                    f"    x, o = {item_parse}(b, o, end)",
                    f"    {name}.append(x)",
                    f"{name} = tuple({name}) if n else ()",
                ]
                self.build += [
                    f"parts.append({p}.pack(len(f.{name})))",
                    f"parts.extend({item_build}(x) for x in f.{name})",
                ]
            case type() if hasattr(kind, "_wire_parse"):  # a nested wire_struct, inline
                parse = self.name("np", kind._wire_parse)
                build = self.name("nb", kind._wire_build)  # type: ignore[attr-defined]
                self.parse.append(f"{name}, o = {parse}(b, o, end)")
                self.build.append(f"parts.append({build}(f.{name}))")
            case _:
                raise TypeError(f"{self.cls.__name__}.{name}: not a wire kind {kind!r}")

    def item_codec(self, item: Any) -> tuple[str, str]:
        if isinstance(item, Int):
            s = struct.Struct("!" + _INT_FMT[item.size])
            size = item.size

            def parse_int(b: bytes, o: int, end: int) -> tuple[int, int]:
                if o + size > end:
                    raise Truncated
                return s.unpack_from(b, o)[0], o + size

            return self.name("ip", parse_int), self.name("ib", s.pack)
        return self.name("rp", item._wire_parse), self.name("rb", item._wire_build)

    def compile(self, fields: list[tuple[str, Any]]) -> tuple[Any, Any]:
        for name, kind in fields:
            self.field(name, kind)
        self.flush()
        names = ", ".join(n for n, _ in fields)
        src = "def parse(b, o, end, **header):\n    try:\n"
        src += "".join(f"        {line}\n" for line in self.parse)
        src += "    except UnicodeDecodeError:\n        raise _Truncated from None\n"
        src += f"    return _cls({names}{', ' if names else ''}**header), o\n"
        src += "def build(f):\n    parts = []\n"
        src += "".join(f"    {line}\n" for line in self.build)
        src += "    return b''.join(parts)\n"
        exec(compile(src, f"<wire {self.cls.__name__}>", "exec"), self.env)  # noqa: S102 - generated from our own declarations
        return self.env["parse"], self.env["build"]


def wire_struct(cls: type[T]) -> type[T]:
    """Class decorator: attach CONSTRUCT, _wire_parse and _wire_build derived from the annotations."""
    fields = wire_fields(cls)
    cls.CONSTRUCT = c.Struct(*(name / to_construct(kind) for name, kind in fields))  # type: ignore[attr-defined]
    parse, build = _Gen(cls).compile(fields)
    cls._wire_parse = staticmethod(parse)  # type: ignore[attr-defined]
    cls._wire_build = staticmethod(build)  # type: ignore[attr-defined]
    return cls


class WireStruct:
    """Base of wire structures: declares what wire_struct attaches, for type checkers."""

    CONSTRUCT: ClassVar[Any]
    _wire_parse: ClassVar[Any]
    _wire_build: ClassVar[Any]
