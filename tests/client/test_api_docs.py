"""The API reference (spec/build_api_docs.py, pdoc) builds from the docstrings and documents the public API only."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import kefu.client

ROOT = Path(__file__).resolve().parents[2]


def load_builder() -> object:
    spec = importlib.util.spec_from_file_location("build_api_docs", ROOT / "spec" / "build_api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_builds_and_documents_the_public_api(tmp_path: Path) -> None:
    pytest.importorskip("pdoc", reason="the docs extra: pip install -e '.[docs]'")
    pages = load_builder().build(tmp_path)  # type: ignore[attr-defined]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in pages) == [
        "index.html", "kefu/client.html", "kefu/client/errors.html", "kefu/client/options.html",
    ]  # fmt: skip
    page = (tmp_path / "kefu" / "client.html").read_text()
    documented = set(re.findall(r'id="([A-Za-z_][\w.]*)"', page))
    assert set(kefu.client.__all__) <= documented  # every export, and their members:
    assert {"Client.from_url", "Client.send", "Message.ack", "ClientOptions.explicit_ack", "BlockingClient.ack"} <= (
        documented
    )
    assert {"Opened", "SearchHit", "SearchResult", "QueuePosition", "Sentiment", "Deliver"}.isdisjoint(documented)
    assert "kefu://APP_ID" in (tmp_path / "kefu" / "client" / "options.html").read_text()
    for page in pages:  # reST literal-block markers become Markdown code blocks, not paragraphs of colons
        assert "::</p>" not in page.read_text(), page.name


def test_literal_markers() -> None:
    literal_markers = load_builder().literal_markers  # type: ignore[attr-defined]
    assert literal_markers("Intro.\n\n::\n\n    code\n") == "Intro.\n\n\n\n    code\n"
    assert literal_markers("For example::\n\n    code\n    a[::2]\n") == "For example:\n\n    code\n    a[::2]\n"
    assert literal_markers("  indented::  \n") == "  indented:\n"
