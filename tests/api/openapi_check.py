"""spec/openapi.json as the tests use it: which documented operation a request is, and whether a JSON value fits a
schema (the subset of OpenAPI 3.0's schema objects the document uses; an unknown keyword fails, so that the document
cannot use one this check silently ignores)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DOCUMENT = Path(__file__).parents[2] / "spec" / "openapi.json"
_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float),
}  # fmt: skip
_KNOWN = {
    "type", "properties", "required", "items", "enum", "nullable", "allOf", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "additionalProperties", "description", "example", "$ref",
}  # fmt: skip


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document."""
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref followed."""
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document()["components"]["schemas"][name]
    return schema


def merged(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $ref followed and its allOf parts merged into one object schema."""
    schema = resolve(schema)
    if "allOf" not in schema:
        return schema
    out: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in map(merged, schema["allOf"]):
        out["properties"].update(part.get("properties", {}))
        out["required"] += part.get("required", [])
        if part.get("additionalProperties") is True:
            out["additionalProperties"] = True
    return out


def problems(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Why `value` does not fit `schema` (empty: it fits). An object's properties must all be documented unless
    additionalProperties says otherwise."""
    schema = merged(schema)
    unknown = set(schema) - _KNOWN
    if unknown:
        return [f"{where}: unsupported schema keywords {sorted(unknown)}"]
    if value is None:
        return [] if schema.get("nullable") or not schema.get("type") else [f"{where}: null"]
    kind = schema.get("type")
    if kind is not None:
        expected = _TYPES[kind]
        if not isinstance(value, expected) or (isinstance(value, bool) and kind in ("integer", "number")):
            return [f"{where}: {value!r} is not of type {kind}"]
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
            out.append(f"{where}: length {len(value)} out of bounds")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (value < schema.get("minimum", value) or value > schema.get("maximum", value)):
        out.append(f"{where}: {value} out of bounds")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += problems(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, dict):
        out += [f"{where}: missing {name}" for name in schema.get("required", []) if name not in value]
        properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                out += problems(item, properties[name], f"{where}.{name}")
            elif isinstance(extra, dict):
                out += problems(item, extra, f"{where}.{name}")
            elif extra is not True and properties:
                out.append(f"{where}: undocumented property {name!r}")
    return out


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def operation(method: str, target: str) -> dict[str, Any] | None:
    """The documented operation a request is (None: no documented path matches)."""
    path = urlsplit(target).path
    for template, item in document()["paths"].items():
        if _template_regex(template).match(path):
            found: dict[str, Any] | None = item.get(method.lower())
            return found
    return None


def response_problems(method: str, target: str, status: int, body: Any) -> list[str]:
    """Why an answer is not as documented (its status listed, its body fitting the schema)."""
    op = operation(method, target)
    if op is None:
        return []  # not a documented path (the 404 of an unknown route is checked by the tests themselves)
    answer = op["responses"].get(str(status))
    if answer is None:
        return [f"{method} {target}: status {status} is not documented ({sorted(op['responses'])})"]
    if "content" not in answer:
        return [] if body in (b"", None) else [f"{method} {target} {status}: a body where none is documented"]
    schema = answer["content"]["application/json"]["schema"]
    return [f"{method} {target} {status}: {p}" for p in problems(body, schema)]
