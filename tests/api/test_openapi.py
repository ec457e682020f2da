"""spec/openapi.json against the API's application: every route documented, every documented path routed with the
same methods; the document's examples fit their schemas. (tests/api/conftest.py also checks every answer the route
tests receive against the documented status and schema.)"""

from __future__ import annotations

from typing import Any, cast

from kefu.server.api.app import build_app
from kefu.server.api.context import ApiContext
from kefu.server.config import Config

from .openapi_check import document, problems, resolve

IGNORED_METHODS = {"HEAD", "OPTIONS"}
"""aiohttp adds HEAD to every GET; preflights are answered by the CORS middleware on every path."""


def routed() -> set[tuple[str, str]]:
    """(method, path template) of every route of the API's application (its own, the admin's, the webhooks')."""
    ctx = ApiContext(Config(), cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None))
    app = build_app(ctx)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method not in IGNORED_METHODS
    }


def documented() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }


def test_every_route_is_documented() -> None:
    assert sorted(routed() - documented()) == []


def test_every_documented_operation_is_routed() -> None:
    assert sorted(documented() - routed()) == []


def test_the_examples_fit_their_schemas() -> None:
    schemas = document()["components"]["schemas"]
    with_examples = {name: s for name, s in schemas.items() if "example" in s}
    assert len(with_examples) >= 10
    for name, schema in with_examples.items():
        assert problems(schema["example"], schema) == [], name


def test_the_check_fails_on_what_does_not_fit() -> None:
    sent = resolve({"$ref": "#/components/schemas/SendResult"})
    good = dict(sent["example"])
    assert problems(good, sent) == []
    assert problems({**good, "seq": "4"}, sent) == ["$.seq: '4' is not of type integer"]
    assert problems({**good, "extra": 1}, sent) == ["$: undocumented property 'extra'"]
    assert problems({k: v for k, v in good.items() if k != "duplicate"}, sent) == ["$: missing duplicate"]
    assert problems({**good, "conversation_id": "12a"}, sent)[0].startswith("$.conversation_id:")


def test_every_operation_documents_its_refusals_as_errors() -> None:
    for path, item in document()["paths"].items():
        for method, op in item.items():
            assert op.get("operationId"), (method, path)
            for status, answer in op["responses"].items():
                if "content" not in answer:
                    assert status == "204", (method, path, status)
                    continue
                schema = answer["content"]["application/json"]["schema"]
                if int(status) >= 400:
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
