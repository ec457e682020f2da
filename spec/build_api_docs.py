"""Build the API reference of the Python client (`kefu.client`) from its docstrings, with pdoc: HTML in build/api/.

::

    .venv/bin/pip install -e '.[docs]'
    .venv/bin/python spec/build_api_docs.py [--output build/api]

The reference covers what `kefu.client` exports (its ``__all__``) and the two modules whose docstrings define part of
the API: `kefu.client.options` (the kefu:// URL form) and `kefu.client.errors` (the error tree). The client's other
submodules are its internals and are left out. tests/client/test_api_docs.py builds it and checks it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

PUBLIC_MODULES = ("kefu.client", "kefu.client.options", "kefu.client.errors")
"""The modules the reference documents."""

INTERNAL = r"!kefu\.client\.(?!options$|errors$).*"
"""pdoc's exclusion pattern for every other submodule of kefu.client."""


LITERAL_MARKER = re.compile(r"(?m)^([ \t]*)(.*?)([ \t]*)::[ \t]*$")
"""A reST literal-block marker: a line that is only ``::``, or a paragraph ending in ``::``."""


def literal_markers(docstring: str) -> str:
    """reST's literal-block markers as Markdown wants them: a lone ``::`` line goes (the indented block after it is
    already a code block in Markdown), and ``text::`` becomes ``text:``. pdoc's reST conversion leaves both as
    written, so the pages showed a paragraph of two colons."""

    def one(m: re.Match[str]) -> str:
        indent, text, _ = m.groups()
        return f"{indent}{text}:" if text else ""

    return LITERAL_MARKER.sub(one, docstring)


def _with_literal_markers(rst: Callable[[str, Path | None], str]) -> Callable[[str, Path | None], str]:
    def converted(contents: str, source_file: Path | None) -> str:
        return rst(literal_markers(contents), source_file)

    return converted


def build(output: Path) -> list[Path]:
    """Render the reference into `output`; the HTML pages written."""
    import pdoc  # noqa: PLC0415 - the docs extra, needed only here
    import pdoc.docstrings  # noqa: PLC0415
    import pdoc.render  # noqa: PLC0415

    if not getattr(pdoc.docstrings.rst, "kefu_literal_markers", False):
        converted = _with_literal_markers(pdoc.docstrings.rst)
        converted.kefu_literal_markers = True  # type: ignore[attr-defined]
        pdoc.docstrings.rst = converted
        pdoc.docstrings.convert.cache_clear()

    pdoc.render.configure(
        docformat="restructuredtext", show_source=False, search=True, footer_text="kefu.client API reference"
    )
    pdoc.pdoc(*PUBLIC_MODULES, INTERNAL, output_directory=output)
    return sorted(output.rglob("*.html"))


def main(argv: list[str] | None = None) -> int:
    """Build into --output (default build/api) and list the pages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("build/api"))
    args = parser.parse_args(argv)
    for page in build(args.output):
        print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
